"""The train stage: a LoRA adapter from a dataset file and a base model."""
