"""The eval stage: the quality report of a trained run (held-out loss, answers of base and fine-tune)."""
