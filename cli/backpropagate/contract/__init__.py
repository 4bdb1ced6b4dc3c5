"""The contract line: everything the host and the stages share, and all that a stage may import.

Events, errors, settings sections and stage specs with their typed results define the
wire between host and stage; dataset reading, redaction and model references are the
checks both sides make; the workspace modules (layout, files, manifest, history,
records) name and write every file of a run folder. Nothing here imports the host's
orchestration (runs/, runtimes/, commands/): a unit test walks the imports to keep it so.
"""
