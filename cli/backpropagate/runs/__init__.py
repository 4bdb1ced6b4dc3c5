"""Runs: ids, the run folder, the run history, and planning and executing a run."""
