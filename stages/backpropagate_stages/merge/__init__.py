"""The merge stage: a LoRA adapter folded into its base model, written as safetensors shards."""
