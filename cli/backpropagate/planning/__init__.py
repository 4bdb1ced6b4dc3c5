"""Planning a training run from a model's config alone: its shape, its peak memory, whether it fits, its pace."""
