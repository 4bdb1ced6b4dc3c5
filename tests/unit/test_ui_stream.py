"""The run page's event stream: each events.jsonl line is one server-sent event, its line number the id."""

import json
import warnings

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra (bash scripts/test.sh installs it)")
warnings.filterwarnings("ignore", message=".*httpx.*")

from backpropagate.contract.events import Envelope, Progress
from backpropagate.ui.app import UiConfig, create_app
from backpropagate.ui.sandbox import Sandbox
from starlette.testclient import TestClient

RUN = "0123abcd-0000-4000-8000-000000000000"


def finished_run(root, steps: int = 3) -> TestClient:
    (root / RUN).mkdir(parents=True)
    lines = [Envelope(run_id=RUN, stage="train", event=Progress(step=step, total=steps, loss=3.0 - step / 10, lr=1e-3,
                                                                tokens_per_s=100.0, eta_s=1.0)).to_line()
             for step in range(1, steps + 1)]
    (root / RUN / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    (root / "run_history.json").write_text(json.dumps({"version": 1, "runs": [
        {"run_id": RUN, "status": "completed", "model": "m", "run_dir": str(root / RUN)}]}))
    return TestClient(create_app(UiConfig(sandbox=Sandbox(root), credentials=None)))


def events_of(text: str) -> list[tuple[str, str]]:
    """(id, event name) of each event in an SSE body."""
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["id"], fields["event"]))
    return found


def test_a_reconnect_with_last_event_id_gets_only_the_lines_after_it_then_the_end(tmp_path):
    client = finished_run(tmp_path / "ui")
    response = client.get(f"/runs/{RUN}/events", headers={"Last-Event-ID": "1"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events_of(response.text) == [("2", "run"), ("3", "run"), ("3", "end")]


def test_a_reloaded_page_streams_after_the_last_line_it_was_rendered_with(tmp_path):
    client = finished_run(tmp_path / "ui")
    page = client.get(f"/runs/{RUN}").text
    assert 'data-after="3"' in page and '"step": 3' in page  # the points so far are in the page itself
    assert events_of(client.get(f"/runs/{RUN}/events?after=3").text) == [("3", "end")]
    assert [i for i, _ in events_of(client.get(f"/runs/{RUN}/events?after=0").text)] == ["1", "2", "3", "3"]


def test_the_page_gives_the_chart_each_steps_learning_rate_and_the_held_out_losses(tmp_path):
    from backpropagate.contract.events import Metric

    client = finished_run(tmp_path / "ui")
    held_out = [Envelope(run_id=RUN, stage="train", event=Metric(key="eval_loss", value=value, step=step)).to_line()
                for step, value in ((0, 3.5), (3, 2.25))]
    other = Envelope(run_id=RUN, stage="train", event=Metric(key="tokens", value=99, step=3)).to_line()
    with (tmp_path / "ui" / RUN / "events.jsonl").open("a") as log:
        log.write("".join(line + "\n" for line in [*held_out, other]))
    page = client.get(f"/runs/{RUN}").text
    points = json.loads(page.split('<script type="application/json" id="points">')[1].split("</script>")[0])
    evals = json.loads(page.split('<script type="application/json" id="evals">')[1].split("</script>")[0])
    assert [(p["step"], p["lr"]) for p in points] == [(1, 1e-3), (2, 1e-3), (3, 1e-3)]
    assert evals == [{"step": 0, "loss": 3.5}, {"step": 3, "loss": 2.25}]


def test_the_log_pane_starts_with_the_logs_last_lines_and_streams_whole_lines_after_them(tmp_path):
    root = tmp_path / "ui"
    client = finished_run(root)
    first = "loading the model\nstep 1 done\n"
    (root / RUN / "log.txt").write_text(first + "token hf_abcdefghijklmnopqrstuvwxyz0123456789\nhalf a li")
    page = client.get(f"/runs/{RUN}").text
    shown = page.split('<pre id="log" class="log" tabindex="0">')[1].split("</pre>")[0]
    assert shown.startswith("loading the model\nstep 1 done\ntoken ") and "half a li" not in shown
    assert "hf_abcdefghijklmnopqrstuvwxyz0123456789" not in page  # redacted
    whole = len(first) + len("token hf_abcdefghijklmnopqrstuvwxyz0123456789\n")
    assert f'<section id="log-pane" data-after="{whole}">' in page
    streamed = client.get(f"/runs/{RUN}/log?after={len(first)}").text
    assert events_of(streamed) == [(str(whole), "log"), (str(whole), "end")]
    assert "hf_abcdefghijklmnopqrstuvwxyz0123456789" not in streamed
    from_start = client.get(f"/runs/{RUN}/log", headers={"Last-Event-ID": "0"}).text
    lines = [json.loads(line[6:]) for line in from_start.splitlines() if line.startswith("data: \"")]
    assert lines[:2] == ["loading the model", "step 1 done"] and len(lines) == 3
