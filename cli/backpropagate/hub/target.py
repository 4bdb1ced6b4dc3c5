"""What `backprop push` uploads: a run's or a campaign's adapter, merged model or GGUF files, or a folder as it is."""

from dataclasses import dataclass
from pathlib import Path

from backpropagate.contract.campaign import CampaignFolder
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import RunHistory
from backpropagate.contract.layout import RunFolder

WHATS = ("adapter", "merged", "gguf")


@dataclass(frozen=True)
class PushSource:
    folder: Path  # the files to upload
    what: str  # adapter, merged or gguf
    run_id: str | None = None  # the run they come from, when known: its card tells how it was trained
    campaign: bool = False  # run_id is a multi-run campaign's: its card tells of its runs


def check_repo(repo: str) -> None:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name or any(part.startswith((".", "-")) for part in (owner, name)):
        raise BackpropError("CONFIG_VALUE_INVALID", name="--repo", value=repo, reason="not OWNER/NAME",
                            allowed="a Hub repository id such as me/my-model")


def resolve_push_target(output: Path, target: str, what: str | None) -> PushSource:
    """RUN or CAMPAIGN (an id or prefix in the workspace's history), a run or campaign folder, or a folder
    of files to push. A campaign is pushed as a run is: its merged adapter, or what `export` wrote beside it."""
    path = Path(target).expanduser()
    campaign = path.is_dir() and CampaignFolder(path).holds_campaign
    if path.is_dir() and not campaign and not RunFolder(path).holds_run:
        return PushSource(folder=path.resolve(), what=what or _what_folder_holds(path))
    if path.is_dir():
        run_id, folder = path.name, RunFolder(path.resolve())
    else:
        row = RunHistory(output).find(target)
        run_id, campaign = row.run_id, row.stage == "campaign"
        folder = RunFolder.of(Path(output).resolve(), run_id)
    what = what or "adapter"
    adapter = CampaignFolder(folder.root).adapter if campaign else folder.adapter
    files = {"adapter": adapter, "merged": folder.merged, "gguf": folder.gguf}[what]
    if not files.is_dir() or not any(files.iterdir()):
        raise BackpropError("STATE_NOTHING_TO_PUSH", target=target, what=what, reason=f"{files} does not exist")
    return PushSource(folder=files, what=what, run_id=run_id, campaign=campaign)


def _what_folder_holds(folder: Path) -> str:
    if (folder / "adapter_config.json").exists():
        return "adapter"
    if any(folder.glob("*.gguf")):
        return "gguf"
    return "merged"
