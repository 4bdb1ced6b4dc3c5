"""The web UI behind `backprop ui`: server-rendered pages that start ordinary runs through the CLI.

Nothing here imports torch: a run started in the UI is the `backprop` CLI in a child process,
on the same session and runtime as a terminal's, so `list-runs` shows it like any other.
"""
