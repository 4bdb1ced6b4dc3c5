"""`backprop plan`: a run's peak memory and pace, from the model's config and the run's flags, before any weight."""

from backpropagate.commands._options import JsonOpt, takes_run_options
from backpropagate.options import settings_from_arguments
from backpropagate.output import Output
from backpropagate.planning.run_plan import plan_run

EXAMPLES = """
Examples:

  backprop plan --model qwen2.5-7b

  backprop plan --model mistral-7b --batch-size 4 --max-seq-length 2048 --json

  backprop plan --model ./models/tiny-llama --device cpu --memory-limit-gb 2
"""


# What decides a run's memory: the model, the batch, the length, the adapter, the device and its limit.
MEMORY_OPTIONS = ("model", "batch_size", "gradient_accumulation", "max_seq_length", "device", "lora_preset", "lora_r",
                  "lora_dropout", "lora_targets", "dora", "qlora", "memory_limit_gb")


@takes_run_options(only=MEMORY_OPTIONS)
def plan(json_output: JsonOpt = None, **options) -> None:
    """Show a run's peak memory, whether it fits, and its pace, without loading the model."""
    settings = settings_from_arguments(options, call="backprop plan", log_json=json_output)
    result = plan_run(settings)
    Output(json_mode=settings.log_json).result(result.text(), result.to_dict())
