"""Planning a multi-run campaign: split the data into runs, write campaign.json, or find one to continue.

One file is split into ``runs`` parts of ``samples`` rows: a seeded draw without replacement
(``random.Random(seed).sample`` over the row numbers), run 1 taking the first ``samples`` drawn,
run 2 the next, and so on; without ``samples`` every row is used, ``rows // runs`` per run. With
one file per run (``--data A --data B``), each run trains on its own file, whole.
"""

import hashlib
import json
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

from backpropagate.config import Settings, output_dir
from backpropagate.contract.campaign import CampaignFolder, CampaignPlan, read_plan, write_plan
from backpropagate.contract import bounded_json
from backpropagate.contract.dataset import dataset_file, load_dataset
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.files import atomic_write_text, sha256_file
from backpropagate.contract.history import HistoryRow, RunHistory, iso_time
from backpropagate.contract.ids import new_run_id
from backpropagate.contract.model_ref import check_model_ref
from backpropagate.contract.quality import load_prompts, prompts_file, split_held_out
from backpropagate.contract.redact import redact
from backpropagate.contract.schema import to_dict
from backpropagate.contract.merges import MERGES
from backpropagate.contract.specs import DataSpec, PromptsSpec
from backpropagate.runs.campaign_replay import replayed_rows, write_replay_record
from backpropagate.runs.plan import check_conflicts


def plan_campaign(settings: Settings, data: list[Path], runs: int | None, samples: int | None, merge: str,
                  data_format: str = "auto", skip_invalid: bool = False, eval_data: list[Path] = (),
                  eval_prompts: list[Path] = ()) -> tuple[CampaignPlan, CampaignFolder, bool]:
    """(plan, folder, continued): an unfinished campaign of the same key in the output folder is
    continued rather than started again."""
    check_conflicts(settings)
    data = [dataset_file(p, "--data") for p in data]
    runs = _check_shape(data, runs, samples, merge, list(eval_data), list(eval_prompts))
    replay = settings.campaign.replay_fraction
    model = settings.model.name
    check_model_ref(model)
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    for path in data:
        load_dataset(path, data_format, skip_invalid)  # a bad file costs nothing
    rows_of = [_raw_rows(path) for path in data]
    evals = [dataset_file(p, "--eval-data") for p in eval_data]
    prompts = [prompts_file(p) for p in eval_prompts]
    for path in evals:
        load_dataset(path, "auto", skip_invalid)
    for path in prompts:
        load_prompts(path, redact(str(path)))
    training = settings.training
    key = hashlib.sha256(json.dumps({
        "model": model, "merge": merge, "runs": runs, "samples": samples, "format": data_format,
        "data": [sha256_file(p) for p in data], "eval": [sha256_file(p) for p in evals + prompts],
        "training": to_dict(training), "lora": to_dict(settings.lora)} | ({"replay": replay} if replay else {}),
        sort_keys=True).encode()).hexdigest()

    parts, drawing = _split(rows_of, data, runs, samples, settings.training.seed)
    held = [[] for _ in parts]
    if replay and training.eval_split and not evals:
        # The stage would hold out rows of each run's data file, replayed rows included, so a row held out of
        # one run could be trained on in a later one: the rows are held out here, before any is replayed.
        parts, held = _hold_out(parts, data, training.eval_split, training.seed)
        drawing += f"; {training.eval_split:g} of each run's rows held out before replay"
        training = replace(training, eval_split=0.0)
    replays = replayed_rows(parts, replay, training.seed) if replay else [[] for _ in parts]
    if replay:
        drawing += f"; each run from run 2 also replays {replay:g} x its rows from earlier runs"
    output = output_dir(settings).resolve()
    history = RunHistory(output)
    unfinished = find_unfinished(history, output, key)
    if unfinished is not None:
        return read_plan(unfinished.plan), unfinished, True

    campaign_id = new_run_id()
    folder = CampaignFolder.of(output, campaign_id)
    folder.data.mkdir(parents=True)
    planned = []
    for index, rows in enumerate(parts, start=1):
        path = folder.run_data(index)
        replayed = [parts[run - 1][line - 1] for run, line in replays[index - 1]]
        atomic_write_text(path, "".join(row + "\n" for row in rows + replayed))
        if replayed:
            write_replay_record(folder.run_replayed(index), replay, training.seed, len(rows), replays[index - 1])
        source = redact(str(data[0] if len(data) == 1 else data[index - 1]))
        eval_data = _spec(evals, index, DataSpec)
        if held[index - 1]:
            held_path = folder.run_held_out(index)
            atomic_write_text(held_path, "".join(row + "\n" for row in held[index - 1]))
            eval_data = DataSpec(path=str(held_path), format=data_format, skip_invalid=skip_invalid,
                                 sha256=sha256_file(held_path), source=f"{source} (run {index}, held out)")
        planned.append({
            "data": DataSpec(path=str(path), format=data_format, skip_invalid=skip_invalid, sha256=sha256_file(path),
                             source=f"{source} (run {index} of {runs})"),
            "eval_data": eval_data,
            "eval_prompts": _spec(prompts, index, PromptsSpec)})
    plan = CampaignPlan(campaign_id=campaign_id, model=model, merge=merge, runs=planned, training=training,
                        lora=settings.lora, log_level=settings.log_level, data_format=data_format,
                        skip_invalid=skip_invalid, drawing=drawing, key=key, replay_fraction=replay)
    write_plan(plan, folder.plan)
    history.append(HistoryRow(run_id=campaign_id, status="running", stage="campaign", model=model,
                              dataset=", ".join(redact(str(p)) for p in data), steps=training.steps * runs,
                              run_dir=str(folder.root), started_at=iso_time(time.time()), merge=merge))
    return plan, folder, False


def find_unfinished(history: RunHistory, output: Path, key: str) -> CampaignFolder | None:
    """The newest campaign in ``output`` that has not completed and was planned with the same key."""
    for row in reversed(history.rows()):
        if row.stage != "campaign" or row.status == "completed":
            continue
        folder = CampaignFolder.of(output, row.run_id)
        if folder.holds_campaign and read_plan(folder.plan).key == key:
            return folder
    return None


def campaign_of(output: Path, campaign: str) -> tuple[CampaignPlan, CampaignFolder]:
    """A recorded campaign by id or prefix, to resume."""
    output = Path(output).resolve()
    row = RunHistory(output).find(campaign)
    folder = CampaignFolder.of(output, row.run_id)
    if row.stage != "campaign" or not folder.holds_campaign:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--resume", value=campaign, reason=f"{row.run_id} is a run, "
                            "not a campaign", allowed="a campaign id (`backprop list-runs` marks them), or "
                            f"`backprop resume {row.run_id[:8]}` for the run")
    if row.status == "completed":
        raise BackpropError("STATE_NOTHING_TO_RESUME", run_id=row.run_id, status=row.status)
    return read_plan(folder.plan), folder


def _check_shape(data: list[Path], runs: int | None, samples: int | None, merge: str, evals: list,
                 prompts: list) -> int:
    if not data:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--data", value=None, reason="no dataset given",
                            allowed="one file to split (--data FILE --runs N) or one per run (--data A --data B)")
    if merge not in MERGES:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--merge", value=merge, reason="unknown merge",
                            allowed=", ".join(MERGES))
    if len(data) > 1:
        if runs is not None and runs != len(data):
            raise BackpropError("CONFIG_VALUE_INVALID", name="--runs", value=runs, reason=f"{len(data)} --data "
                                "files give one run each", allowed=f"--runs {len(data)}, or leave --runs out")
        if samples is not None:
            raise BackpropError("CONFIG_VALUE_INVALID", name="--samples", value=samples, reason="--samples splits "
                                "one --data file into runs", allowed="one --data file, or leave --samples out")
        runs = len(data)
    runs = 2 if runs is None else runs
    if runs < 2:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--runs", value=runs, reason="a campaign has several runs",
                            allowed="2 or more (one run is `backprop train`)")
    for name, given in (("--eval-data", evals), ("--eval-prompts", prompts)):
        if given and len(given) != runs:
            raise BackpropError("CONFIG_VALUE_INVALID", name=name, value=len(given), reason=f"the campaign has "
                                f"{runs} runs", allowed=f"{name} once per run ({runs} times), in run order")
    return runs


def _hold_out(parts: list[list[str]], data: list[Path], fraction: float,
              seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """(rows each run trains on, rows held out of it), by the stages' own --eval-split rule."""
    kept, held = [], []
    for index, rows in enumerate(parts, start=1):
        if len(rows) < 2:
            source = data[0] if len(data) == 1 else data[index - 1]
            raise BackpropError("INPUT_EVAL_SPLIT_TOO_FEW", split=fraction, path=f"{redact(str(source))} (run {index})",
                                count=len(rows))
        run_kept, run_held = split_held_out(rows, fraction, f"{seed}:held-out:{index}")
        kept.append(run_kept)
        held.append(run_held)
    return kept, held


def _raw_rows(path: Path) -> list[str]:
    """The file's rows as JSON lines: the elements of a JSON array, else the non-blank lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackpropError("INPUT_DATASET_NOT_FOUND", path=redact(str(path))) from None
    if text.lstrip().startswith("["):
        try:
            return [json.dumps(row, ensure_ascii=False) for row in bounded_json.loads(text)]
        except ValueError:
            pass  # not one array after all: load_dataset reports what is wrong with it
    return [line for line in text.splitlines() if line.strip()]


def _split(rows_of: list[list[str]], data: list[Path], runs: int, samples: int | None,
           seed: int) -> tuple[list[list[str]], str]:
    if len(rows_of) > 1:
        return rows_of, "one file per run, every row of it"
    rows = rows_of[0]
    per_run = samples if samples is not None else len(rows) // runs
    if per_run < 1 or per_run * runs > len(rows):
        raise BackpropError("CONFIG_VALUE_INVALID", name="--samples", value=samples, reason=f"{runs} runs of "
                            f"{per_run} rows need {per_run * runs}, and {redact(str(data[0]))} has {len(rows)}",
                            allowed=f"at most {len(rows) // runs} rows per run, or fewer --runs")
    drawn = random.Random(seed).sample(range(len(rows)), per_run * runs)
    parts = [[rows[i] for i in drawn[k * per_run:(k + 1) * per_run]] for k in range(runs)]
    return parts, (f"{per_run} rows per run drawn without replacement from {len(rows)} "
                   f"(random.Random({seed}).sample over the row numbers)")


def _spec(paths: list[Path], index: int, cls):
    if not paths:
        return None
    path = paths[index - 1]
    return cls(path=str(path), sha256=sha256_file(path), source=redact(str(path)))


def copy_adapter(source: Path, target: Path) -> None:
    """The campaign's adapter folder: a whole copy of the newest merged adapter, never half of one."""
    from backpropagate.contract.files import publish_folder
    from backpropagate.contract.layout import partial

    temporary = partial(target)
    if temporary.exists():
        shutil.rmtree(temporary)
    shutil.copytree(source, temporary)
    publish_folder(temporary, target)
