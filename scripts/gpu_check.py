"""The GPU path, proven in one go on one NVIDIA GPU, with nothing to download; one JSON report and a summary.

    python scripts/gpu_check.py --out gpu_report.json                   # on the GPU machine: under 8 minutes
    python scripts/gpu_check.py --wheels wheels/ --out gpu_report.json  # installs bitsandbytes and TRL from wheels/
    python scripts/gpu_check.py --dry-run --out report.json             # on the CPU: what needs no GPU, tiny shapes
    python scripts/gpu_check.py --list-wheels                           # the wheels to carry, and how to fetch them

The GPU machine is expected to have CUDA PyTorch, transformers, PEFT and accelerate, and no network:
bitsandbytes, TRL and the CLI's own small dependencies travel as wheels (WHEELS below, 50 MB) in a
folder given to --wheels, installed with `pip install --no-index`. What it checks, each a section of
the report:

- environment: torch, CUDA, the GPU as torch and NVML see it, NVML's temperature (before and after).
- lora_cli: LoRA in bf16 on the tiny model through the real CLI (`backprop train --device cuda`):
  the loss falls, the adapter is saved, and a run killed after step 15 resumes from its step-10
  checkpoint (`backprop resume`) and finishes.
- oom: a planted out-of-memory (the stage's fault injection) at step 2 of a batch-4 run: the run halves
  the micro-batch, doubles accumulation and finishes.
- qlora: for each preset shape (from its config file; weights random, nothing downloaded), one
  QLoRA model (NF4 through bitsandbytes) at sequence 2048: the train stage's own loop for some steps,
  with torch.cuda.max_memory_allocated, NVML's peak reading and tokens/s; then the same model and
  settings under TRL's SFTTrainer with packing, and the ratio of the two speeds; and beside each
  measured peak, `backprop plan`'s estimate and its error.

--dry-run does all of that the CPU can: the CLI sections on the CPU, and the QLoRA section with LoRA
in fp32 on tiny random models of the presets' families (bitsandbytes needs CUDA), TRL included when
installed; NVML is read where present. tests/local/test_gpu_check.py runs it. The report's schema is
in docs/guides/training.md.
"""

import argparse
import gc
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "cli"), str(ROOT / "stages")]

# What a GPU image with CUDA torch, transformers, PEFT and accelerate lacks, by the module that shows it:
# the pin, and the manylinux CPython 3.12 wheel's size in MB (pip download, 2026-12-06). 50.0 MB in all,
# under the 64 MiB that may travel. TRL's `datasets` also needs pyarrow and pandas (about 55 MB more): where
# the image lacks them, the TRL comparison is skipped and the report names them.
WHEELS = [
    ("bitsandbytes", "bitsandbytes==0.50.2", 43.14),  # QLoRA
    ("trl", "trl==1.16.0", 0.95), ("datasets", "datasets==5.2.0", 0.61), ("dill", "dill==0.4.1", 0.12),
    ("multiprocess", "multiprocess==0.70.19", 0.15), ("xxhash", "xxhash==4.1.0", 0.47),  # the TRL baseline
    ("typer", "typer==0.29.2", 0.12), ("annotated_doc", "annotated-doc==0.0.7", 0.01),  # the `backprop` CLI
    ("shellingham", "shellingham==1.5.4", 0.01), ("rich", "rich==15.0.0", 0.31),
    ("markdown_it", "markdown-it-py==4.3.0", 0.10), ("mdurl", "mdurl==0.1.2", 0.01),
    ("pygments", "pygments==2.21.0", 1.25), ("pydantic", "pydantic==2.14.4", 0.49),
    ("pydantic_core", "pydantic-core==2.50.5", 2.26), ("annotated_types", "annotated-types==0.8.0", 0.01),
    ("typing_inspection", "typing-inspection==0.4.5", 0.01),
]
TRL_NEEDS = ("trl", "datasets", "pyarrow", "pandas")
DEFAULT_PRESETS = ("qwen2.5-7b", "llama3.2-3b", "phi4-mini")
SEQ_LEN, DRY_SEQ_LEN = 2048, 128
REPORT_VERSION = 1


def lora_dropout() -> float:
    """The train stage's default, for both sides of the comparison."""
    from backpropagate.contract.settings import LoraSettings

    return LoraSettings().dropout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_report.json"), help="the JSON report")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU: tiny shapes, no GPU figures")
    parser.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="preset shapes for the QLoRA section")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--wheels", type=Path, help="folder of the wheels to install first (pip --no-index)")
    parser.add_argument("--list-wheels", action="store_true", help="print the wheels to carry and exit")
    args = parser.parse_args(argv)
    if args.list_wheels:
        print(wheels_text())
        return 0
    started = time.monotonic()
    report = {"version": REPORT_VERSION, "dry_run": args.dry_run, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "wheels": install_wheels(args.wheels) if args.wheels else missing_wheels()}
    report["environment"] = environment()
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not report["environment"]["cuda_available"]:
        report["error"] = "no CUDA device: run with --dry-run on a machine without a GPU"
        return finish(report, args.out, started)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tiny = make_tiny(work)
        report["lora_cli"] = section(lambda: lora_cli(tiny, work, device))
        report["oom"] = section(lambda: planted_oom(tiny, work, device))
        report["qlora"] = [section(lambda name=name: qlora_shape(name, args, device, tiny))
                           for name in args.presets.split(",") if name]
    report["environment"]["temperature_c_after"] = nvml_reading().get("temperature_c")
    return finish(report, args.out, started)


def section(run) -> dict:
    """A section's figures, or the error that stopped it: one failing check still leaves a full report."""
    started = time.monotonic()
    try:
        result = run()
    except Exception as exc:  # the report records any failure; the exit code says there was one
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def finish(report: dict, out: Path, started: float) -> int:
    report["seconds"] = round(time.monotonic() - started, 1)
    sections = [report.get("lora_cli"), report.get("oom"), *report.get("qlora", [])]
    report["ok"] = "error" not in report and all(s and s.get("ok") for s in sections)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(summary(report))
    print(f"report: {out}")
    return 0 if report["ok"] else 1


def wheels_text() -> str:
    pins = " ".join(pin for _, pin, _ in WHEELS)
    return (f"carry {len(WHEELS)} wheels, {sum(size for _, _, size in WHEELS):.1f} MB: bitsandbytes (QLoRA), trl and "
            "datasets with their small dependencies (the TRL baseline; pyarrow and pandas must be in the image), "
            "typer and rich with theirs (the backprop CLI).\n"
            "fetch them on a machine with network, for the GPU machine's Python (3.12 here):\n"
            "  pip download --no-deps --only-binary=:all: --platform manylinux_2_24_x86_64 --platform "
            f"manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --python-version 3.12 -d wheels {pins}\n"
            "then: python scripts/gpu_check.py --wheels wheels")


def missing_wheels() -> dict:
    missing = [(module, pin) for module, pin, _ in WHEELS if importlib.util.find_spec(module) is None]
    return {"installed": [], "missing": [module for module, _ in missing], "carry": [pin for _, pin in missing]}


def install_wheels(folder: Path) -> dict:
    """Install what is missing from ``folder``, offline."""
    wanted = missing_wheels()["carry"]
    if wanted:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links",
                        str(folder), *wanted], check=True)
        importlib.invalidate_caches()
    return {**missing_wheels(), "installed": wanted}


def environment() -> dict:
    import peft
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "bitsandbytes": _version("bitsandbytes"), "trl": _version("trl"), "cuda_available": cuda,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_memory_bytes": torch.cuda.get_device_properties(0).total_memory if cuda else None,
            "bf16": bool(cuda and torch.cuda.is_bf16_supported()), "nvml": nvml_reading()}


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nvml_reading() -> dict:
    """GPU 0 as NVML reads it: name, temperature, memory used; or why there is no reading."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        return {"name": name.decode() if isinstance(name, bytes) else name,
                "temperature_c": float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
                "memory_used_bytes": pynvml.nvmlDeviceGetMemoryInfo(handle).used}
    except Exception as exc:  # no library, no driver, no GPU: the reading says so
        return {"unavailable": f"{type(exc).__name__}: {exc}"}


class NvmlPeak:
    """The highest memory NVML reports while a block runs (sampled every 50 ms in a thread)."""

    def __enter__(self):
        self.peak, self._stop = None, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            used = nvml_reading().get("memory_used_bytes")
            if used is not None:
                self.peak = max(self.peak or 0, used)
            self._stop.wait(0.05)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_tiny(work: Path) -> Path:
    out = work / "tiny-llama"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", "llama", "--out",
                    str(out)], check=True, capture_output=True)
    return out


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "BACKPROPAGATE_RUNTIME": "local", "PYTHONPATH": os.pathsep.join(sys.path[:2]),
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "backpropagate", *args], capture_output=True, text=True,
                          env=full_env)


def last_result(done: subprocess.CompletedProcess) -> dict:
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"result"')]
    if not lines:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-800:]}")
    return json.loads(lines[-1])["result"]


def lora_cli(tiny: Path, work: Path, device: str) -> dict:
    """LoRA through the real CLI: loss falls, adapter saved; killed after step 15, resumed from its step-10
    checkpoint to step 20 (on the CPU a quarter of that: 6 steps, checkpoint 3, killed after 5)."""
    steps, every, kill = (20, 10, 15) if device == "cuda" else (6, 3, 5)
    # One warmup step and, for the CPU's six steps, a higher rate: the loss must fall within the run.
    rate = "2e-4" if device == "cuda" else "1e-3"
    data, output = str(ROOT / "examples" / "quickstart.jsonl"), str(work / "runs")
    common = ["--data", data, "--model", str(tiny), "--device", device, "--output", output, "--json",
              "--report-to", "none", "--steps", str(steps), "--checkpoint-every", str(every), "--warmup-steps", "1",
              "--learning-rate", rate]
    first = last_result(cli("train", *common))
    adapter = Path(first["adapter"]) / "adapter_model.safetensors"
    killed = cli("train", *common, env={"BACKPROP_FAULTS": json.dumps({"kill_at_step": kill})})
    run_id = next(json.loads(line)["run_id"] for line in killed.stdout.splitlines() if '"run_id"' in line)
    resumed = last_result(cli("resume", run_id, "--output", output, "--json", "--report-to", "none"))
    return {"ok": first["final_loss"] < first["losses"][0] and adapter.is_file() and killed.returncode != 0
            and resumed["resumed_from_step"] == every and resumed["steps"] == steps,
            "device": first["device"], "loss_first": first["losses"][0], "loss_last": first["final_loss"],
            "adapter_bytes": adapter.stat().st_size if adapter.is_file() else None,
            "killed_exit_code": killed.returncode, "resumed_from_step": resumed["resumed_from_step"],
            "resumed_steps": resumed["steps"], "tokens_per_s": first["tokens_per_s"]}


def planted_oom(tiny: Path, work: Path, device: str) -> dict:
    """An out-of-memory planted at step 2 of a batch-4 run: the micro-batch halves and the run finishes."""
    done = cli("train", "--data", str(ROOT / "examples" / "quickstart.jsonl"), "--model", str(tiny), "--device",
               device, "--output", str(work / "oom"), "--json", "--report-to", "none", "--steps", "4",
               "--batch-size", "4", "--gradient-accumulation", "1", "--checkpoint-every", "0",
               env={"BACKPROP_FAULTS": json.dumps({"oom_at_steps": [2]})})
    result = last_result(done)
    adjustments = result["oom_adjustments"]
    return {"ok": result["steps"] == 4 and adjustments[:1] == [{"step": 2, "micro_batch": 2,
                                                              "gradient_accumulation": 2}],
            "oom_adjustments": adjustments, "steps": result["steps"]}


def qlora_shape(name: str, args, device: str, tokenizer: Path) -> dict:
    """One preset's shape: our loop and TRL's SFTTrainer on the same random QLoRA model, and the plan beside."""
    import torch

    from backpropagate.planning.memory import RunShape, estimate
    from backpropagate.planning.presets import presets

    preset = presets()[name]
    config = preset.config if device == "cuda" else tiny_config(preset.config)
    seq_len = SEQ_LEN if device == "cuda" else DRY_SEQ_LEN
    shape = preset.shape if device == "cuda" else type(preset.shape).from_config(config, name)
    run = RunShape(batch_size=args.batch_size, seq_len=seq_len, lora_r=16, targets=("all-linear",),
                   qlora=device == "cuda", device=device)
    planned = estimate(shape, run).peak
    ours = our_steps(config, run, args.steps)
    with tempfile.TemporaryDirectory() as work:
        lacking = [module for module in TRL_NEEDS if importlib.util.find_spec(module) is None]
        theirs = trl_steps(config, run, args.steps, Path(work), tokenizer) if not lacking else {
            "skipped": f"not installed: {', '.join(lacking)} (--list-wheels)"}
    row = {"preset": name, "shape": "preset" if device == "cuda" else "tiny, of the preset's family",
           "method": "qlora" if run.qlora else "lora (fp32; bitsandbytes needs CUDA)", "seq_len": seq_len,
           "batch_size": run.batch_size, "plan_peak_bytes": planned, "ours": ours, "trl": theirs}
    if "tokens_per_s" in theirs:
        row["speed_ratio"] = round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3)
    peak = ours.get("max_memory_allocated_bytes")
    if peak:
        row["plan_error"] = round((planned - peak) / peak, 4)
    row["ok"] = "error" not in ours and "error" not in theirs
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def tiny_config(config: dict) -> dict:
    """The preset's family at a size the CPU trains in seconds."""
    return {**config, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 512, "pad_token_id": 0, "bos_token_id": 1,
            "eos_token_id": 2}


def measure(setup, steps, device: str) -> dict:
    """Tokens/s of ``steps(setup())`` and its peak memory: torch's allocator peak and NVML's reading on a GPU.
    The peak is counted from after the setup, as a run's would be from its loaded model."""
    import torch

    gc.collect()  # the previous model's memory, before this one is made
    try:
        ready = setup()
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        with NvmlPeak() as nvml:
            tokens, seconds = steps(ready)
    except Exception as exc:  # an OOM on a big shape is a finding, not the end of the report
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    out = {"tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
           "nvml_peak_bytes": nvml.peak}
    if device == "cuda":
        out["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    del ready
    return out


def random_model(config: dict, run):
    """A model of ``config`` with random weights, made on the device; for QLoRA its decoder linear layers
    become NF4 and the model is prepared as the train stage prepares a 4-bit base."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    hf_config = AutoConfig.for_model(**config)
    if run.device == "cpu":
        return AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    import bitsandbytes as bnb
    from peft import prepare_model_for_kbit_training

    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16)
    quantize_linear_layers(model, bnb)
    torch.cuda.empty_cache()
    model.is_loaded_in_4bit = True  # what transformers' bitsandbytes loader marks, and PEFT reads
    return prepare_model_for_kbit_training(model)


def quantize_linear_layers(model, bnb) -> None:
    """Each decoder linear layer becomes a bitsandbytes Linear4bit (NF4, double quantization, bf16 compute) of
    its random weights, as `BitsAndBytesConfig(load_in_4bit=True, ...)` loads one; the head stays bf16."""
    import torch

    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, torch.nn.Linear) or child_name == "lm_head":
                continue
            layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=torch.bfloat16, compress_statistics=True, quant_type="nf4",
                                      device="cuda")
            layer.weight = bnb.nn.Params4bit(child.weight.data.cpu(), requires_grad=False, quant_type="nf4",
                                             compress_statistics=True).to("cuda")
            if child.bias is not None:
                layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, child_name, layer)


def random_rows(config: dict, run, count: int) -> list:
    """Packed-length rows of random tokens, each a few examples long, as the train stage's Tokenized."""
    import random

    from backpropagate_stages.train.data import Tokenized

    rng = random.Random(0)
    piece = run.seq_len // 4
    return [Tokenized(ids, list(ids)) for ids in
            ([rng.randrange(config["vocab_size"]) for _ in range(piece)] for _ in range(4 * count))]


def our_steps(config: dict, run, steps: int) -> dict:
    """The train stage's own loop (train_loop, token_losses, AdamW) on a random model; timed after step 1."""
    import torch
    from peft import LoraConfig, get_peft_model

    from backpropagate.contract.settings import TrainingSettings
    from backpropagate_stages.train.data import BatchStream
    from backpropagate_stages.train.loop import Hooks, LoopState, make_optimizer, train_loop

    def setup():
        return get_peft_model(random_model(config, run), LoraConfig(
            r=run.lora_r, lora_alpha=32, lora_dropout=lora_dropout(), target_modules="all-linear", task_type="CAUSAL_LM"))

    def train(model) -> tuple[int, float]:
        settings = replace(TrainingSettings(), steps=steps + 1, batch_size=run.batch_size, gradient_accumulation=1,
                           max_seq_length=run.seq_len, warmup_steps=0)
        stream = BatchStream(random_rows(config, run, run.batch_size * (steps + 1)), run.seq_len, True, 0, 0)
        optimizer, scheduler = make_optimizer(model, settings)
        seen: list = []

        def after_step(state) -> None:
            if run.device == "cuda":
                torch.cuda.synchronize()
            seen.append((time.perf_counter(), state.tokens))

        hooks = Hooks(before_step=lambda step: None, before_micro_batch=lambda step: None, after_step=after_step,
                      stop_requested=lambda: False)
        train_loop(model, optimizer, scheduler, stream, settings, torch.device(run.device), lambda event: None,
                   hooks, LoopState(micro_batch=run.batch_size, accumulation=1))
        (start, tokens_before), (end, tokens_after) = seen[0], seen[-1]
        return tokens_after - tokens_before, end - start

    return measure(setup, train, run.device)


def trl_steps(config: dict, run, steps: int, work: Path, tokenizer: Path) -> dict:
    """TRL's SFTTrainer with packing on the same kind of model, rows and settings; timed after step 1.
    The rows are token ids already; the tokenizer (the tiny model's) only gives TRL its padding token."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    times: list = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if run.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

    def setup():
        rows = random_rows(config, run, run.batch_size * (steps + 1))
        return SFTTrainer(
            model=random_model(config, run), processing_class=AutoTokenizer.from_pretrained(tokenizer),
            callbacks=[Clock()],
            train_dataset=Dataset.from_dict({"input_ids": [row.input_ids for row in rows]}),
            peft_config=LoraConfig(r=run.lora_r, lora_alpha=32, lora_dropout=lora_dropout(), target_modules="all-linear",
                                   task_type="CAUSAL_LM"),
            args=SFTConfig(output_dir=str(work / "trl"), max_steps=steps + 1,
                           per_device_train_batch_size=run.batch_size, max_length=run.seq_len, packing=True,
                           learning_rate=2e-4, bf16=run.device == "cuda", gradient_checkpointing=run.qlora,
                           use_cpu=run.device == "cpu", report_to=[], save_strategy="no", logging_steps=10_000,
                           dataset_num_proc=1))

    def train(trainer) -> tuple[int, float]:
        trainer.train()
        return run.batch_size * run.seq_len * (len(times) - 1), times[-1] - times[0]

    return measure(setup, train, run.device)


def summary(report: dict) -> str:
    env = report["environment"]
    lines = [f"gpu_check {'(dry run, CPU) ' if report['dry_run'] else ''}{'PASSED' if report['ok'] else 'FAILED'} "
             f"in {report['seconds']:.0f} s",
             f"device: {env.get('gpu') or 'no GPU'}; torch {env['torch']} (CUDA {env['torch_cuda']}); NVML: "
             + (f"{env['nvml']['temperature_c']:.0f} °C" if "temperature_c" in env["nvml"]
                else env["nvml"]["unavailable"])]
    if report["wheels"]["missing"]:
        lines.append(f"missing wheels: {', '.join(report['wheels']['carry'])} (--list-wheels)")
    if "error" in report:
        return "\n".join(lines + [f"error: {report['error']}"])
    lora, oom = report["lora_cli"], report["oom"]
    lines.append(f"lora_cli: {'ok' if lora.get('ok') else 'FAILED'}  " + (
        lora.get("error") or f"loss {lora['loss_first']:.3f} -> {lora['loss_last']:.3f}, adapter "
                             f"{lora['adapter_bytes']:,} bytes, resumed from step {lora['resumed_from_step']}"))
    lines.append(f"oom: {'ok' if oom.get('ok') else 'FAILED'}  " + (oom.get("error") or str(oom["oom_adjustments"])))
    for row in report["qlora"]:
        if "error" in row and "preset" not in row:
            lines.append(f"qlora: FAILED {row['error']}")
            continue
        ours, trl = row["ours"], row["trl"]
        mib = (lambda n: f"{n / 2**20:,.0f} MiB" if n else "n/a")
        lines.append(f"{row['preset']:<12} {row['method']}, {row['batch_size']} x {row['seq_len']}: "
                     + (ours.get("error") or f"{ours['tokens_per_s']:,.0f} tok/s, peak "
                        f"{mib(ours.get('max_memory_allocated_bytes'))} (NVML {mib(ours.get('nvml_peak_bytes'))}), "
                        f"plan {mib(row['plan_peak_bytes'])}"
                        + (f" ({row['plan_error']:+.1%})" if "plan_error" in row else ""))
                     + (f"; TRL {trl['tokens_per_s']:,.0f} tok/s, ours/TRL {row['speed_ratio']:.2f}x"
                        if "speed_ratio" in row else f"; TRL: {trl.get('skipped') or trl.get('error')}"))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
