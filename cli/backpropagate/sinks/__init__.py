"""Event sinks: where a run's events go as they arrive (the terminal, the history, the events file).

A session hands every event, the stage's and the host's own, to each sink in turn. New
consumers (trackers, the web UI's stream) are new sinks: one module each, implementing
``Sink`` from base.py.
"""
