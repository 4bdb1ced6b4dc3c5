"""The new-run form: its fields come from the settings declaration (group, default, limits), and the model
field offers the presets and the model folders inside the UI's folder while taking any hub id."""

import html
import os
import re
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.options import run_options
from backpropagate.planning.presets import presets
from backpropagate.ui.form import SET_BY_THE_UI, as_text

from tests.unit.test_ui_security import client_for, logged_in


def fieldsets(page: str) -> dict[str, str]:
    return dict(re.findall(r'<fieldset id="group-([a-z]+)"><legend>[^<]+</legend>(.*?)</fieldset>', page, re.DOTALL))


def test_each_run_option_sits_in_its_declared_group_showing_its_default_and_limits(tmp_path, monkeypatch):
    for name in [key for key in os.environ if key.startswith("BACKPROPAGATE_")]:  # the defaults, not this shell's
        monkeypatch.delenv(name)
    client = client_for(tmp_path / "ui")
    logged_in(client)
    groups = fieldsets(client.get("/runs/new").text)
    assert {"basics", "lora", "optimisation", "reliability", "tracking"} <= set(groups)
    for name, option in run_options().items():
        if name in SET_BY_THE_UI:
            continue
        body = groups[option.group.lower()]
        tag = re.search(rf'<(input|select) name="{name}"[^>]*>(.*?</select>)?', body, re.DOTALL)
        assert tag, f"{name} is not in the {option.group} group"
        shown = as_text(option, option.default)
        if tag.group(1) == "input":
            assert f'value="{html.escape(shown)}"' in tag.group(0), (name, tag.group(0))
            if option.limit and option.limit.low is not None:
                assert f'min="{option.limit.low}"' in tag.group(0), name
            if option.limit and option.limit.high is not None:
                assert f'max="{option.limit.high}"' in tag.group(0), name
        else:
            assert re.search(rf'<option value="{re.escape(shown)}" selected>', tag.group(2)), (name, tag.group(2))


def test_the_model_picker_offers_every_preset_and_each_model_folder_but_takes_any_hub_id(tmp_path):
    root = tmp_path / "ui"
    (root / "models" / "tiny-llama").mkdir(parents=True)
    (root / "models" / "tiny-llama" / "config.json").write_text("{}")
    (root / "models" / "not-a-model").mkdir()
    client = client_for(root)
    logged_in(client)
    page = client.get("/runs/new").text
    picker = page.split('<datalist id="model-choices">')[1].split("</datalist>")[0]
    offered = re.findall(r'<option value="([^"]+)">', picker)
    assert offered == [*presets(), "models/tiny-llama"]
    listed = re.findall(r'data-model="([^"]+)"', page)
    assert listed == offered
    field = re.search(r'<input name="model"[^>]*>', page).group(0)
    assert 'list="model-choices"' in field and "required" in field and "pattern" not in field
    assert 'id="device-note"' in page and "auto trains on" in page
