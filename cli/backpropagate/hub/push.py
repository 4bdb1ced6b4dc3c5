"""Uploading a push source to a Hub repository with huggingface_hub: create_repo, then upload_folder.

The token comes from ``--token-file``, else ``HF_TOKEN``, else huggingface_hub's saved login; it is
handed to huggingface_hub only and never printed, logged or recorded. What is uploaded is a staging
folder beside the files (hard links to them, the model card and the loss plot), so the run's own
folders are never changed. Network failures and the Hub's 5xx answers are retried. Every answer is
awaited at most ``timeout_s`` (huggingface_hub's own client waits forever), with a line every few
seconds while it is awaited; a Hub that does not answer in time is not asked again.
"""

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backpropagate.contract.campaign import CampaignFolder, read_plan
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.history import iso_time
from backpropagate.contract.records import RunRecord, load_record
from backpropagate.hub.card import PLOT_FILE, CampaignCard, model_card
from backpropagate.contract.user_files import read_user_text
from backpropagate.hub.target import PushSource
from backpropagate.waiting import line_every_s, waited

ATTEMPTS = 3  # for network errors and 5xx answers; waits 1 s, then 2 s


@dataclass(frozen=True)
class PushRequest:
    repo: str
    private: bool = False
    revision: str | None = None
    commit_message: str | None = None
    token_file: Path | None = None
    timeout_s: float = 60.0  # for each answer from the Hub


@dataclass(frozen=True)
class PushResult:
    repo: str
    url: str
    revision: str
    commit: str
    files: list[dict]  # path in the repo, bytes, sha256


def read_token(token_file: Path | None) -> str:
    if token_file is not None:
        return read_user_text(token_file, "--token-file", 64 << 10, "token file").strip()
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token() or ""


def push(output: Path, source: PushSource, request: PushRequest,
         on_wait: Callable[[str], None] | None = None) -> PushResult:
    """Push, and keep the commit on the run's history row beside its Ollama registrations; ``on_wait`` hears a
    line every few seconds while an answer from the Hub is awaited."""
    from backpropagate.publishers import publish

    return publish(HubPublisher(source, request, on_wait), output)


class HubPublisher:
    name = "hub"

    def __init__(self, source: PushSource, request: PushRequest,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.source, self.request, self.on_wait = source, request, on_wait
        self.run_id = source.run_id

    def publish(self, workspace: Path) -> tuple[dict, PushResult]:
        result = _upload(workspace, self.source, self.request, self.on_wait)
        record = {"repo": result.repo, "revision": result.revision, "commit": result.commit, "url": result.url,
                  "what": self.source.what, "files": len(result.files), "pushed_at": iso_time(time.time())}
        return record, result

    def replaces(self, record: dict, earlier: dict) -> bool:
        return (earlier["repo"], earlier["revision"], earlier["what"]) == (record["repo"], record["revision"],
                                                                           record["what"])


def _upload(output: Path, source: PushSource, request: PushRequest,
            on_wait: Callable[[str], None] | None) -> PushResult:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as exc:
        raise BackpropError("DEP_HUB_NOT_INSTALLED", reason=str(exc)) from None
    from huggingface_hub import HfApi

    _bound_answers(request.timeout_s)

    token = read_token(request.token_file)
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or False)
    record = load_record(output, source.run_id) if source.run_id else None
    campaign = _campaign(output, record) if source.campaign else None
    revision = request.revision or "main"
    message = request.commit_message or f"backpropagate: {source.what}" + (
        f" of {'campaign' if campaign else 'run'} {source.run_id}" if source.run_id else "")
    staging = _staging(source)
    try:  # the staging folder goes however the push ends (Ctrl-C, SIGTERM); one a kill left, the next push removes
        _stage(staging, source, request.repo, record, campaign)
        url = _attempt(request, api, "create_repo", on_wait,
                       lambda: api.create_repo(request.repo, private=request.private, exist_ok=True))
        if revision != "main":
            _attempt(request, api, "create_branch", on_wait,
                     lambda: api.create_branch(request.repo, branch=revision, exist_ok=True))
        commit = _attempt(request, api, "upload_folder", on_wait,
                          lambda: api.upload_folder(repo_id=request.repo, folder_path=staging, revision=revision,
                                                    commit_message=message))
        files = [_file(staging, path) for path in sorted(staging.rglob("*")) if path.is_file()]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PushResult(repo=request.repo, url=str(url), revision=revision, commit=commit.oid, files=files)


def _campaign(output: Path, record: RunRecord) -> CampaignCard:
    plan = read_plan(CampaignFolder.of(output, record.row.run_id).plan)
    return CampaignCard(plan=plan, runs=[load_record(output, run_id) for run_id in record.row.campaign_runs])


def _staging(source: PushSource) -> Path:
    return source.folder.parent / f".push-{source.folder.name}"


def _stage(staging: Path, source: PushSource, repo: str, record: RunRecord | None,
           campaign: CampaignCard | None) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    names = []
    for path in sorted(source.folder.rglob("*")):
        if path.is_file() and path.name != "README.md":
            target = staging / path.relative_to(source.folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)  # no copy of a large model
            except OSError:
                shutil.copy2(path, target)
            names.append(target.relative_to(staging).as_posix())
    staging.mkdir(parents=True, exist_ok=True)
    if campaign:
        plot = any(run.losses for run in campaign.runs) and _plot_campaign(record, campaign, staging / PLOT_FILE)
    else:
        plot = bool(record and record.losses) and _plot(record, staging / PLOT_FILE)
    (staging / "README.md").write_text(model_card(repo, source.what, record, plot, names, campaign),
                                       encoding="utf-8")


def _plot(record: RunRecord, path: Path) -> bool:
    """The loss plot, when matplotlib is installed; the card goes without it otherwise."""
    from backpropagate.charts import png_writer

    steps = sorted(record.losses)
    try:
        png_writer(steps, [record.losses[s] for s in steps], [record.learning_rates[s] for s in steps],
                   f"run {record.row.run_id[:8]}", record.quality.eval_loss if record.quality else None)(path)
    except BackpropError:
        return False
    return True


def _plot_campaign(record: RunRecord, campaign: CampaignCard, path: Path) -> bool:
    """The campaign's runs one after another on one step axis, as `show-run CAMPAIGN --plot` draws them."""
    from backpropagate.charts import png_writer

    losses, learning_rates = [], []
    for run in campaign.runs:
        losses += [run.losses[s] for s in sorted(run.losses)]
        learning_rates += [run.learning_rates[s] for s in sorted(run.learning_rates)]
    try:
        png_writer(list(range(1, len(losses) + 1)), losses, learning_rates,
                   f"campaign {record.row.run_id[:8]} ({len(campaign.runs)} runs)")(path)
    except BackpropError:
        return False
    return True


def _file(staging: Path, path: Path) -> dict:
    from backpropagate.contract.files import sha256_file

    return {"path": path.relative_to(staging).as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _bound_answers(timeout_s: float) -> None:
    """huggingface_hub's shared client, as it makes it, but waiting at most ``timeout_s`` for each answer."""
    from huggingface_hub.utils import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    def bounded():
        client = default_client_factory()
        client.timeout = timeout_s  # connect, each read, each write and the wait for a pooled connection
        return client

    set_client_factory(bounded)


def _attempt(request: PushRequest, api, name: str, on_wait: Callable[[str], None] | None, call):
    """One Hub call, retried on network errors and 5xx answers; the Hub's refusals become HUB_ errors."""
    import httpx2  # the HTTP client huggingface_hub 2.x uses
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    def say(seconds: float) -> None:
        on_wait(f"waiting for the Hub at {api.endpoint} ({name}): {seconds:.0f}s so far, each answer within "
                f"{request.timeout_s:g}s (--timeout)")

    for attempt in range(1, ATTEMPTS + 1):
        try:
            return waited(call, say if on_wait else None, line_every_s(request.timeout_s))
        except httpx2.TimeoutException as exc:
            raise BackpropError("HUB_TIMEOUT", endpoint=api.endpoint, request=name, timeout_s=f"{request.timeout_s:g}",
                                reason=type(exc).__name__) from None
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise _rejected(request, status, exc) from None
            raise BackpropError("HUB_REPO_NOT_FOUND", repo=request.repo, revision=request.revision or "main",
                                reason=_reason(exc)) from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise _rejected(request, status, exc) from None
            if status in (409, 412):
                raise BackpropError("HUB_CONFLICT", repo=request.repo, reason=_reason(exc)) from None
            if status is None or status < 500 or attempt == ATTEMPTS:
                raise BackpropError("HUB_CONFLICT" if status == 422 else "HUB_NETWORK", repo=request.repo,
                                    endpoint=api.endpoint, attempts=attempt, reason=_reason(exc)) from None
        except (httpx2.TransportError, OSError) as exc:
            if attempt == ATTEMPTS:
                raise BackpropError("HUB_NETWORK", endpoint=api.endpoint, attempts=attempt,
                                    reason=f"{type(exc).__name__}: {exc}") from None
        time.sleep(attempt)


def _rejected(request: PushRequest, status: int, exc: Exception) -> BackpropError:
    return BackpropError("HUB_TOKEN_REJECTED", repo=request.repo, status=status, reason=_reason(exc))


def _reason(exc: Exception) -> str:
    """The Hub's own words (its error message), else the first line of huggingface_hub's."""
    server = getattr(exc, "server_message", None)
    if server:
        return server.strip().splitlines()[0]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
