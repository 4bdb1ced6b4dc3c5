"""A setting is declared once, in the settings dataclasses, and every way in is derived from it.

The first test adds a field to a copy of the package's declaration (one line in
contract/settings.py) and finds it, unchanged, in `train --help`, `multi-run --help`, the
Python API, the environment, the web UI's form and the generated settings reference.
"""

import json
import re
import warnings

import pytest

from backpropagate.options import grouped_options
from backpropagate.settings_reference import settings_markdown

from tests.conftest import ROOT
from tests.unit.package_copy import edited_package, run_python

NEW_FIELD = ('    probe_width: int = field(7, check=at_least(3), allowed="an integer of at least 3", '
             'help="Width of the probe.", flag="--probe-width", group="Optimisation")\n')

PROBE = r'''
import json, re, subprocess, sys, warnings
from pathlib import Path
warnings.filterwarnings("ignore")
from backpropagate.api import Trainer
from backpropagate.config import env_variables, load_settings
from backpropagate.contract.errors import BackpropError
from backpropagate.options import settings_from_arguments
from backpropagate.settings_reference import settings_markdown
from backpropagate.ui.app import UiConfig, create_app
from backpropagate.ui.form import train_flags
from backpropagate.ui.sandbox import Sandbox
from starlette.testclient import TestClient

def cli(*args):
    return subprocess.run([sys.executable, "-m", "backpropagate", *args], capture_output=True, text=True)

found = {"train_help": cli("train", "--help").stdout, "multi_run_help": cli("multi-run", "--help").stdout}
refused = cli("train", "--data", "d.jsonl", "--model", "m", "--probe-width", "2")
found["train_refusal"] = [refused.returncode, refused.stderr]
found["api_options"] = Trainer.options().get("probe_width")
found["api_value"] = settings_from_arguments({"probe_width": 9}, call="Trainer()").training.probe_width
try:
    Trainer("m", probe_width=1)
except BackpropError as error:
    found["api_refusal"] = error.render()
found["env"] = "BACKPROPAGATE_TRAINING__PROBE_WIDTH" in env_variables()
found["env_value"] = load_settings({"BACKPROPAGATE_TRAINING__PROBE_WIDTH": "11"}).training.probe_width
page = TestClient(create_app(UiConfig(sandbox=Sandbox(Path(sys.argv[1])), credentials=None))).get("/runs/new").text
found["form_input"] = re.search(r'<input name="probe_width"[^>]*>', page).group(0)
found["form_flags"] = train_flags({"probe_width": "12"}, load_settings({}))
found["docs"] = [line for line in settings_markdown().splitlines() if "probe" in line]
print(json.dumps(found))
'''


def test_a_setting_added_in_one_place_is_a_flag_an_argument_a_variable_a_form_field_and_documented(tmp_path):
    copy = edited_package(tmp_path, "contract/settings.py", "    seed: int = field(42", NEW_FIELD)  # the one place
    probe = run_python(copy, PROBE, str(tmp_path / "ui"), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)

    for help_text in (found["train_help"], found["multi_run_help"]):
        optimisation = help_text.split("\nOptimisation:\n")[1].split("\n\n")[0]  # under its group's panel
        assert re.search(r"--probe-width INTEGER\s+Width of the probe\. \[default 7; env\s+"
                         r"BACKPROPAGATE_TRAINING__PROBE_WIDTH\]", optimisation), help_text
    code, stderr = found["train_refusal"]
    assert code == 2 and "[CONFIG_VALUE_INVALID]: --probe-width" in stderr and "at least 3" in stderr
    assert found["api_options"] == "Width of the probe. [default 7; env BACKPROPAGATE_TRAINING__PROBE_WIDTH]"
    assert found["api_value"] == 9
    assert found["api_refusal"].startswith("[CONFIG_VALUE_INVALID]: probe_width")
    assert found["env"] and found["env_value"] == 11
    assert found["form_input"] == '<input name="probe_width" type="number" step="1" min="3" value="7">'
    assert found["form_flags"] == ["--probe-width=12"]
    assert found["docs"] == ["| `--probe-width` | `probe_width` | `BACKPROPAGATE_TRAINING__PROBE_WIDTH` | `7` | "
                             "an integer of at least 3 | Width of the probe. |"]


def test_the_forms_limits_are_the_settings_limits(tmp_path):
    pytest.importorskip("starlette", reason="the web UI needs the ui extra")
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from backpropagate.ui.app import UiConfig, create_app
    from backpropagate.ui.sandbox import Sandbox
    from starlette.testclient import TestClient

    page = TestClient(create_app(UiConfig(sandbox=Sandbox(tmp_path / "ui"), credentials=None))).get("/runs/new").text
    inputs = {m.group(1): m.group(0) for m in re.finditer(r'<input name="(\w+)" type="number"[^>]*>', page)}
    numeric = {name: o for name, o in grouped_options().items() if o.kind in (int, float)}  # the campaign's too
    assert set(inputs) == set(numeric)
    for name, option in numeric.items():
        low = re.search(r' min="([^"]+)"', inputs[name])
        high = re.search(r' max="([^"]+)"', inputs[name])
        assert (float(low.group(1)) if low else None) == (option.limit.low if option.limit else None), name
        assert (float(high.group(1)) if high else None) == (option.limit.high if option.limit else None), name
    assert ' min="1"' in inputs["lora_r"] and ' min="16"' in inputs["max_seq_length"]
    assert 'value="16"' in inputs["lora_r"]  # the default is shown


def test_the_committed_settings_reference_is_generated_from_the_declaration():
    assert (ROOT / "docs" / "reference" / "settings.md").read_text() == settings_markdown(), \
        "run: python scripts/gen_settings_docs.py"


def test_the_form_passes_on_what_differs_from_what_the_run_would_take_so_a_preset_keeps_its_rank():
    from backpropagate.config import load_settings
    from backpropagate.ui.form import train_flags

    values = {"lora_preset": "quality", "lora_r": "16", "packing": "off", "runtime": "local", "steps": ""}
    assert train_flags(values, load_settings({})) == ["--lora-preset=quality", "--no-packing", "--runtime=local"]
    assert train_flags({"runtime": "local"}, load_settings({"BACKPROPAGATE_RUNTIME": "local"})) == []
