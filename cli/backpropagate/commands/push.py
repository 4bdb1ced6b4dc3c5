"""`backprop push`: upload a run's or campaign's adapter, merged model or GGUF files to the Hugging Face Hub,
with a model card."""

from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import command_settings, output_dir
from backpropagate.contract.errors import BackpropError
from backpropagate.hub.push import PushRequest, push
from backpropagate.hub.target import WHATS, check_repo, resolve_push_target
from backpropagate.output import Output

EXAMPLES = """
Examples:

  backprop push 3f2a --repo me/my-adapter

  backprop push 3f2a --repo me/my-model --what merged --private

  backprop push ./output/3f2a/gguf --repo me/my-model-gguf --revision q4 --commit-message "q4_k_m GGUF"

  HF_TOKEN=... backprop push 3f2a --repo me/my-adapter --json   # or --token-file FILE, or `hf auth login`
"""

RepoOpt = Annotated[str, typer.Option("--repo", help="The Hub repository, OWNER/NAME (created when missing).")]


def push_command(
    target: Annotated[str, typer.Argument(help="A run or campaign id (or prefix), a run or campaign folder, or a "
                                               "folder to push as it is.")],
    repo: RepoOpt,
    what: Annotated[str | None, typer.Option(help="adapter, merged or gguf [default adapter for a run; for a "
                                                  "folder, what it holds].")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    revision: Annotated[str | None, typer.Option(help="Branch to commit to (created from main) [default main].")
                        ] = None,
    commit_message: Annotated[str | None, typer.Option(help="The commit's message.")] = None,
    token_file: Annotated[Path | None, typer.Option(help="A file holding the token [default HF_TOKEN, else "
                                                         "huggingface_hub's login].")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer from the Hub.", min=0.1)] = 60.0,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Upload to the Hugging Face Hub with a model card (front matter, training settings, loss plot, usage)."""
    settings = command_settings(output, json_output)
    out = Output(json_mode=settings.log_json)
    check_repo(repo)
    if what is not None and what not in WHATS:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--what", value=what, reason="not a kind of push",
                            allowed=", ".join(WHATS))
    source = resolve_push_target(output_dir(settings), target, what)
    out.note(f"pushing {source.what} from {source.folder} to {repo}")
    result = push(output_dir(settings), source, PushRequest(repo, private, revision, commit_message, token_file,
                                                            timeout), on_wait=out.waiting)
    out.result(f"pushed {len(result.files)} files to {result.url} ({result.revision}, commit {result.commit[:12]})",
               {"repo": result.repo, "url": result.url, "revision": result.revision, "commit": result.commit,
                "what": source.what, "files": result.files})
