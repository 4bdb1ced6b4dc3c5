"""`backprop presets`: the models `--model` knows by a short name, with the memory `backprop plan` gives each."""

from dataclasses import replace

from backpropagate.commands._options import JsonOpt
from backpropagate.config import Settings, load_settings
from backpropagate.contract.settings import LoraSettings, ModelSettings, TrainingSettings
from backpropagate.output import Output
from backpropagate.planning.presets import presets
from backpropagate.planning.run_plan import gib, plan_run

EXAMPLES = """
Examples:

  backprop presets

  backprop presets --json

  backprop train --data my.jsonl --model qwen2.5-7b
"""


def presets_command(json_output: JsonOpt = None) -> None:
    """List the model presets: hub id, license, method, chat family and planned GPU memory."""
    settings = load_settings(overrides={"log_json": json_output})
    rows = []
    for preset in presets().values():
        # At the training defaults, on a GPU, with the preset's own method; the limit only keeps the plan
        # from looking for a GPU, since the table is about the model, not this machine.
        run = Settings(model=ModelSettings(name=preset.name),
                       training=replace(TrainingSettings(), device="cuda", memory_limit_gb=1e6),
                       lora=replace(LoraSettings(), qlora=preset.method == "qlora"))
        plan = plan_run(run)
        rows.append({"name": preset.name, "hub_id": preset.hub_id, "parameters": plan.shape.parameters(),
                     "license": preset.license, "method": preset.method, "chat_family": preset.chat_family,
                     "peak_memory_bytes": plan.memory.peak, "source": preset.source})
    defaults = TrainingSettings()
    header = (f"{'preset':<13} {'hub id':<36} {'params':>7}  {'license':<14} {'method':<6} {'chat':<8} "
              f"{'GPU memory':>10}")
    lines = [header] + [f"{r['name']:<13} {r['hub_id']:<36} {r['parameters'] / 1e9:>6.2f}B  {r['license']:<14} "
                        f"{r['method']:<6} {r['chat_family']:<8} {gib(r['peak_memory_bytes']):>10}" for r in rows]
    lines.append(f"\nGPU memory: `backprop plan`'s peak at the defaults (batch {defaults.batch_size} x "
                 f"{defaults.max_seq_length} tokens, rank {LoraSettings().r}, all linear layers), bf16 or 4-bit "
                 "as the method says. `backprop plan --model NAME` shows it for other flags.")
    Output(json_mode=settings.log_json).result("\n".join(lines), {"presets": rows})
