"""`backprop export`: turn a trained adapter into a model folder others can load."""

from pathlib import Path
from typing import Annotated, Literal

import typer

from backpropagate.commands._options import JsonOpt, OutputOpt
from backpropagate.config import load_settings, output_dir
from backpropagate.output import Output
from backpropagate.runs.export import execute_export, plan_export
from backpropagate.runtimes import get_runtime

EXAMPLES = """
Examples:

  backprop export 3f2a --format merged

  backprop export output/3f2a9c1e-.../adapter --format merged --dtype bfloat16
"""


def export(
    run: Annotated[str, typer.Argument(help="Run id or prefix, run folder, or adapter folder.")],
    export_format: Annotated[Literal["merged"], typer.Option("--format", help="merged: the adapter folded into "
                                                                              "the base, as safetensors.")
                             ] = "merged",
    dtype: Annotated[Literal["float16", "bfloat16", "float32"], typer.Option(help="Weights of the merged model.")
                     ] = "float16",
    output: OutputOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Merge a run's adapter into its base model, shard by shard, never holding the whole model in memory."""
    settings = load_settings(overrides={"output": str(output) if output else None, "log_json": json_output})
    out = Output(json_mode=settings.log_json)
    plan = plan_export(output_dir(settings), run, dtype)
    out.note(f"export run_id={plan.spec.run_id}: merge {Path(plan.spec.adapter)} into {plan.spec.base_model}")
    outputs = execute_export(plan, get_runtime("local"), out.event)
    out.result(f"merged: {outputs['merged']} ({outputs['shards']} shard(s), {outputs['dtype']})",
               {"run_id": plan.spec.run_id, "format": export_format, **outputs})
