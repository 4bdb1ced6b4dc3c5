"""A campaign pushed to the Hub stand-in (tests/unit/hub_standin.py) as a run is, and shown by the web UI.

One 2-run campaign of 2 steps a run on the tiny model, with held-out data: about 40 s on 2 cores, most of
it making the campaign.
"""

import hashlib
import re
import warnings
from pathlib import Path

import pytest
import yaml
from backpropagate.contract.merges import MERGES

from tests.conftest import run_cli
from tests.local.test_resilience import chat_data  # noqa: F401  (the fixture: 40 short conversations)
from tests.local.test_multi_run import two_sets_with_held_out_rows
from tests.unit.hub_standin import HubStandIn

TOKEN = "hf_" + "StandInToken0123456789abcdefghijk"


@pytest.fixture(scope="module")
def campaign(tiny_model, chat_data, tmp_path_factory):  # noqa: F811
    from backpropagate import Trainer

    root = tmp_path_factory.mktemp("campaign")
    files = two_sets_with_held_out_rows(chat_data, root)
    trainer = Trainer(str(tiny_model), output=root / "out", device="cpu", max_seq_length=64, batch_size=2,
                      gradient_accumulation=2, checkpoint_every=0, learning_rate=1e-3, progress=False,
                      runtime="local")  # a module fixture starts before the autouse one that sets it
    result = trainer.multi_run([files[0], files[2]], steps_per_run=2, eval_data=[files[1], files[3]])
    return root / "out", result


@pytest.fixture
def hub(tmp_path, monkeypatch):
    stand_in = HubStandIn(token=TOKEN)
    env = {"HF_ENDPOINT": stand_in.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # huggingface_hub reads HF_HUB_DISABLE_XET when it is imported, which the whole suite does at collection.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    yield stand_in, env
    stand_in.close()


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_push_campaign_uploads_its_merged_adapter_with_a_card_telling_of_its_runs(campaign, hub):
    output, result = campaign
    stand_in, env = hub
    pushed = run_cli("push", result.campaign_id[:8], "--repo", "me/tiny-campaign", "--output", str(output), env=env)
    assert pushed.returncode == 0, pushed.stderr
    files = stand_in.files("me/tiny-campaign")
    assert {name: hashlib.sha256(files[name]).hexdigest() for name in digests(result.adapter_path)} == \
        digests(result.adapter_path)
    card = files["README.md"].decode()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "peft" and "lora" in front["tags"]
    assert f"a campaign of 2 runs (campaign `{result.campaign_id}`) with merge `slao`, {MERGES['slao'].help}" in card
    for run in result.runs:
        assert f"| {run['index']} | `{run['run_id']}` |" in card
        assert f"{run['merge_lambda']:.4f}" in card  # 1.0000, then 0.7071
    assert "0.7071" in card and "| training.steps | `2` |" in card
    assert "loss.png" in files and TOKEN not in pushed.stdout + pushed.stderr


def test_trainer_push_of_a_campaign_takes_what_export_wrote_into_its_folder(campaign, hub):
    from backpropagate import Trainer

    output, result = campaign
    exported = run_cli("export", result.campaign_id, "--format", "merged", "--output", str(output))
    assert exported.returncode == 0, exported.stderr
    merged = output / result.campaign_id / "merged"
    pushed = Trainer("unused", output=output).push("me/tiny-campaign-merged", "merged", run=result.campaign_id)
    stand_in, _ = hub
    files = stand_in.files("me/tiny-campaign-merged")
    assert {name: hashlib.sha256(files[name]).hexdigest() for name in digests(merged)} == digests(merged)
    front = yaml.safe_load(files["README.md"].decode().split("---\n")[1])
    assert "library_name" not in front and "a campaign of 2 runs" in files["README.md"].decode()
    assert {f["path"] for f in pushed.files} >= set(digests(merged))


def test_the_ui_marks_the_campaign_and_its_page_lists_its_runs_in_order_with_its_adapter(campaign):
    pytest.importorskip("starlette", reason="the web UI needs the ui extra")
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from tests.unit.test_ui_security import client_for, logged_in

    output, result = campaign
    client = client_for(output)
    logged_in(client)
    runs_page = client.get("/").text
    assert f'<a href="/campaigns/{result.campaign_id}">' in runs_page and "campaign of 2 runs" in runs_page
    assert runs_page.count(f'href="/campaigns/{result.campaign_id}">run ') == 2  # each run names its campaign
    assert client.get(f"/runs/{result.campaign_id}").headers["location"] == f"/campaigns/{result.campaign_id}"

    page = client.get(f"/campaigns/{result.campaign_id}")
    assert page.status_code == 200
    table = page.text.split('id="campaign-runs"')[1].split("</table>")[0]
    links = re.findall(r'<a href="/runs/([0-9a-f-]+)">', table)
    assert links == [run["run_id"] for run in result.runs]  # in order
    for run in result.runs:
        assert f"{run['merge_lambda']:.4f}" in table and f"{run['final_loss']:.4f}" in table
    evals = page.text.split('id="campaign-evals"')[1].split("</table>")[0]
    assert [tuple(map(int, pair)) for pair in re.findall(r"<tr><td>(\d)</td><td>(\d)</td>", evals)] == \
        [(e["after_run"], e["on_run"]) for e in result.evals] == [(1, 1), (2, 1), (2, 2)]
    assert all(f"{e['eval_loss']:.4f}" in evals for e in result.evals)
    heatmap = page.text.split('id="campaign-heatmap"')[1].split("</table>")[0]
    rows = [re.findall(r'<td class="(cell|empty)"(?: data-loss="([^"]+)")?', row) for row in heatmap.split("<tr>")[2:]]
    loss = {(e["after_run"], e["on_run"]): e["eval_loss"] for e in result.evals}
    assert [[float(value) if kind == "cell" else None for kind, value in row] for row in rows] == \
        [[loss[1, 1], None], [loss[2, 1], loss[2, 2]]]  # after run 1 nothing is measured on run 2's data
    assert "adapter_model.safetensors" in page.text and str(result.adapter_path) in page.text
    link = f'href="/runs/{result.campaign_id}/files/adapter/adapter_model.safetensors" download'
    assert link in page.text  # the merged adapter downloads like a run's artifacts
    downloaded = client.get(f"/runs/{result.campaign_id}/files/adapter/adapter_model.safetensors")
    assert downloaded.status_code == 200
    assert downloaded.content == (Path(result.adapter_path) / "adapter_model.safetensors").read_bytes()
    for run in result.runs:
        run_page = client.get(f"/runs/{run['run_id']}").text
        assert f'href="/campaigns/{result.campaign_id}">run {run["index"]} of campaign' in run_page
    assert client.get("/campaigns/" + result.runs[0]["run_id"]).status_code == 404  # a run is not a campaign
    assert "completed" in page.text
