"""`backprop show-run`: everything recorded about one run, with its loss curve; or a campaign and its runs."""

from pathlib import Path
from typing import Annotated

import typer

from backpropagate.charts import png_writer, text_curve
from backpropagate.commands._campaign import campaign_view
from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.commands._quality import quality_lines
from backpropagate.config import load_settings, output_dir
from backpropagate.contract.printable import one_line
from backpropagate.contract.outputs import named_output, write_named_output
from backpropagate.contract.records import RunRecord, flatten, load_record
from backpropagate.output import Output, for_people
from backpropagate.publishers import PUBLISHERS
from backpropagate.runs.ownership import as_shown

EXAMPLES = """
Examples:

  backprop show-run 3f2a

  backprop show-run 3f2a --plot loss.png --json
"""


def show_run(
    run: Annotated[str, typer.Argument(help="Run or campaign id, or any unique prefix of it.")],
    plot: Annotated[Path | None, typer.Option(help="Also write the loss and learning-rate curves to this PNG.")
                    ] = None,
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Show a run's settings, data, versions, status, incidents, checkpoints, artifacts and loss curve."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    if plot is not None:
        named_output(plot, "--plot")  # refused before anything is read or drawn
    record = load_record(output_dir(settings), run)
    record.row = as_shown(record.row, output_dir(settings))
    if record.row.stage == "campaign":
        Output(json_mode=settings.log_json).result(*campaign_view(output_dir(settings), record, plot))
        return
    data = record.to_dict()
    if plot is not None:
        steps = sorted(record.losses)
        draw = png_writer(steps, [record.losses[s] for s in steps], [record.learning_rates[s] for s in steps],
                          f"run {record.row.run_id[:8]}", record.quality.eval_loss if record.quality else None)
        data["plot"] = str(write_named_output(plot, "--plot", draw))
    Output(json_mode=settings.log_json).result(_text(record, data.get("plot")), data)


def _text(record: RunRecord, plot: str | None) -> str:
    row, spec = record.row.to_dict(), record.spec
    lines = [f"run {row['run_id']}  {row['status']}" + (f"  {row['error_code']}" if row.get("error_code") else "")]
    if row["status"] == "dead":
        lines.append(f"  its host died while it ran: `backprop resume {row['run_id']}` continues it from its "
                     "newest valid checkpoint")
    for key in ("model", "dataset", "dataset_sha256", "runtime", "workers", "device", "started_at", "finished_at",
                "duration_s", "steps", "steps_done", "final_loss", "adapter", "replay_of", "resumed_at"):
        if row.get(key) is not None:
            value = row[key]
            lines.append(f"  {key:<16}{for_people(value) if isinstance(value, float) else one_line(str(value))}")
    settings = {k: v for k, v in flatten({"training": spec.get("training", {}), "lora": spec.get("lora", {})}).items()}
    if settings:
        lines.append("settings:")
        width = max(len(key) for key in settings) + 2  # training.checkpoint_on_interrupt is 32 long
        lines += [f"  {key:<{width}}{for_people(value)}" for key, value in settings.items()]
    versions = {**spec.get("versions", {}), **record.manifest.get("versions", {})}
    if versions:
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for key in ("oom_adjustments", "thermal_pauses", "restarts"):
        for item in row.get(key) or []:
            lines.append(f"{key[:-1].replace('_', ' ')}: {item}")
    for publisher in PUBLISHERS:  # where the run went: Ollama models, Hub commits
        for item in row.get(publisher) or []:
            lines.append(f"{publisher}: " + "  ".join(f"{key} {value}" for key, value in item.items()))
    lines.append("checkpoints: " + (", ".join(record.checkpoints) or "none"))
    for artifact in record.manifest.get("artifacts", []):
        lines.append(f"artifact {artifact['kind']}: {artifact['path']} ({artifact['bytes']:,} bytes, "
                     f"sha256 {artifact['sha256']})")
    lines += ["loss:", text_curve([record.losses[s] for s in sorted(record.losses)])]
    if record.quality:
        lines += quality_lines(record.quality)
    if plot:
        lines.append(f"plot: {plot}")
    return "\n".join(lines)
