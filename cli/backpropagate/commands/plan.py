"""`backprop plan`: a run's peak memory and pace, from the model's config and the run's flags, before any weight."""

from backpropagate.commands._options import (
    BatchSizeOpt,
    DeviceOpt,
    DoraOpt,
    GradientAccumulationOpt,
    JsonOpt,
    LoraDropoutOpt,
    LoraPresetOpt,
    LoraROpt,
    LoraTargetsOpt,
    MaxSeqLengthOpt,
    MemoryLimitOpt,
    ModelOpt,
    QloraOpt,
)
from backpropagate.config import settings_from_arguments
from backpropagate.output import Output
from backpropagate.planning.run_plan import plan_run

EXAMPLES = """
Examples:

  backprop plan --model qwen2.5-7b

  backprop plan --model mistral-7b --batch-size 4 --max-seq-length 2048 --json

  backprop plan --model ./models/tiny-llama --device cpu --memory-limit-gb 2
"""


def plan(
    model: ModelOpt = None,
    batch_size: BatchSizeOpt = None,
    gradient_accumulation: GradientAccumulationOpt = None,
    max_seq_length: MaxSeqLengthOpt = None,
    device: DeviceOpt = None,
    lora_preset: LoraPresetOpt = None,
    lora_r: LoraROpt = None,
    lora_dropout: LoraDropoutOpt = None,
    lora_targets: LoraTargetsOpt = None,
    dora: DoraOpt = None,
    qlora: QloraOpt = None,
    memory_limit_gb: MemoryLimitOpt = None,
    json_output: JsonOpt = None,
) -> None:
    """Show a run's peak memory, whether it fits, and its pace, without loading the model."""
    flags = {name: value for name, value in locals().items() if name != "json_output"}
    settings = settings_from_arguments(flags, call="backprop plan", log_json=json_output)
    result = plan_run(settings)
    Output(json_mode=settings.log_json).result(result.text(), result.to_dict())
