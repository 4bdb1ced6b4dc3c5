"""Runtimes, trackers and publishers are each one registry: a new one is its module and one entry there.

The tests add an entry to a copy of the package (a `slurm` runtime, a `neptune` tracker) and find it
wherever the names are offered: the settings' choices, `--help`, the settings reference, the UI's form.
"""

import dataclasses
import json

from backpropagate.config import TRACKER_NAMES, Settings
from backpropagate.contract.history import HistoryRow
from backpropagate.publishers import PUBLISHERS
from backpropagate.runtimes.registry import RUNTIME_NAMES, runtime_class
from backpropagate.tracker_registry import TRACKERS

from tests.unit.package_copy import edited_package, run_python

READ_NAMES = r'''
import json, subprocess, sys
from backpropagate.config import TRACKER_NAMES, load_settings
from backpropagate.options import option_for
from backpropagate.settings_reference import settings_markdown
help_text = subprocess.run([sys.executable, "-m", "backpropagate", "train", "--help"], capture_output=True,
                           text=True).stdout
print(json.dumps({"runtimes": list(option_for("runtime").choices), "trackers": list(TRACKER_NAMES),
                  "slurm": load_settings({"BACKPROPAGATE_RUNTIME": "slurm"}).runtime if "slurm" in sys.argv else None,
                  "neptune": load_settings({}, {"report_to": "neptune"}).report_to if "neptune" in sys.argv else None,
                  "help": " ".join(help_text.split()), "docs": settings_markdown()}))
'''


def names_with_an_entry(tmp_path, registry: str, anchor: str, entry: str, name: str) -> dict:
    """What the package offers once ``entry`` is added to ``registry`` (in a copy of it)."""
    copy = edited_package(tmp_path, registry, anchor, entry)
    return json.loads(run_python(copy, READ_NAMES, name, cwd=tmp_path).stdout)


def test_the_runtime_choices_are_the_registry_and_auto():
    choices = dataclasses.fields(Settings)[[f.name for f in dataclasses.fields(Settings)].index("runtime")].type
    assert choices.__args__ == ("auto", *RUNTIME_NAMES) and RUNTIME_NAMES == ("docker", "local", "ray")
    assert [runtime_class(name).name for name in RUNTIME_NAMES] == list(RUNTIME_NAMES)


def test_a_runtime_added_to_the_registry_is_a_choice_everywhere(tmp_path):
    found = names_with_an_entry(tmp_path, "runtimes/registry.py", "}\nRUNTIME_NAMES",
                                '    "slurm": "backpropagate.runtimes.local:LocalRuntime",\n', "slurm")
    assert found["runtimes"] == ["auto", "docker", "local", "ray", "slurm"] and found["slurm"] == "slurm"
    assert "--runtime auto|docker|local|ray|slurm Where stages run" in found["help"]
    assert "| one of auto, docker, local, ray, slurm |" in found["docs"]


def test_the_tracker_names_are_the_registry():
    assert TRACKER_NAMES == tuple(TRACKERS) == ("tensorboard", "mlflow", "wandb")
    for tracker in TRACKERS.values():
        sink = tracker.sink_class()
        assert sink.name == tracker.name and callable(sink.configured)


def test_a_tracker_added_to_the_registry_is_accepted_by_report_to(tmp_path):
    found = names_with_an_entry(tmp_path, "tracker_registry.py", "}\nTRACKER_NAMES", '    "neptune": Tracker('
                                '"neptune", "neptune", "backpropagate.sinks.wandb:WandbSink"),\n', "neptune")
    assert found["trackers"] == ["tensorboard", "mlflow", "wandb", "neptune"] and found["neptune"] == "neptune"
    assert "tracker names separated by commas: tensorboard, mlflow, wandb, neptune" in found["docs"]


def test_each_publisher_keeps_its_records_in_the_history_rows_field_of_its_name():
    from importlib import import_module

    row_fields = {f.name for f in dataclasses.fields(HistoryRow)}
    for name, where in PUBLISHERS.items():
        module, _, cls = where.partition(":")
        publisher = getattr(import_module(module), cls)
        assert publisher.name == name and name in row_fields
        assert callable(publisher.publish) and callable(publisher.replaces)
