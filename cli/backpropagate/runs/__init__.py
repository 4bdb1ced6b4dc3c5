"""Orchestration: planning runs and exports into pipelines of stage steps, and running them in a session."""
