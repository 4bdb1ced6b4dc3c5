"""What reaches the terminal: user text with control characters written out, brackets kept as text.

Every test reads the real CLI's output in a child process, as a user's terminal would get it.
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env, run_cli

CLEAR = "\x1b[2J\x1b[H"  # clears the screen and homes the cursor when a terminal obeys it
RUN_A = "0123abcd-0000-4000-8000-000000000000"
RUN_B = "4567cdef-0000-4000-8000-000000000000"


def _workspace(root: Path) -> Path:
    """Two completed runs whose model and dataset names hold an escape and a newline."""
    rows = []
    for run_id in (RUN_A, RUN_B):
        folder = root / run_id
        folder.mkdir(parents=True)
        (folder / "spec.json").write_text(json.dumps({"model": "org/m", "training": {
            "steps": 2, "checkpoint_on_interrupt": False}, "lora": {"r": 16}}))
        rows.append({"run_id": run_id, "status": "completed", "model": f"org/{CLEAR}model",
                     "dataset": f"/data/evil{CLEAR}\nname.jsonl", "steps": 2, "run_dir": str(folder)})
    (root / "run_history.json").write_text(json.dumps({"version": 1, "runs": rows}))
    return root


def test_list_runs_writes_out_escapes_and_newlines_in_names_and_keeps_one_line_per_run(tmp_path):
    result = run_cli("list-runs", "--output", str(_workspace(tmp_path / "out")))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # the header and one line per run
    assert all("evil\\x1b[2J\\x1b[Hname.jsonl" not in line for line in lines)  # the folder part is not shown
    assert all(line.split()[3] == "evil\\x1b[2J\\x1b[H\\nname.jsonl" for line in lines[1:])


def test_show_run_writes_out_escapes_and_keeps_a_space_between_a_long_setting_and_its_value(tmp_path):
    result = run_cli("show-run", RUN_A[:8], "--output", str(_workspace(tmp_path / "out")))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "  dataset         /data/evil\\x1b[2J\\x1b[H\\nname.jsonl" in result.stdout.splitlines()
    assert "  training.checkpoint_on_interrupt  false" in result.stdout.splitlines()


def test_an_error_naming_a_file_with_an_escape_and_a_newline_prints_it_written_out_on_one_line(tmp_path):
    name = tmp_path / f"rows{CLEAR}\nmore.jsonl"
    name.write_text("not json\n")
    result = run_cli("validate", "--data", str(name))
    assert result.returncode == 3
    assert "\x1b" not in result.stderr
    message, fix = result.stderr.splitlines()
    assert message.startswith("[INPUT_") and "rows\\x1b[2J\\x1b[H\\nmore.jsonl" in message
    assert fix.startswith("  fix: ")


def test_the_first_event_of_a_run_keeps_the_bracketed_extra_in_its_fix(tmp_path):
    """A machine without tensorboardX, as most users' are: this one has it, so the child hides it."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "one"}\n{"text": "two"}\n')
    hide = "import sys; sys.modules['tensorboardX'] = None; from backpropagate.app import main; main()"
    result = subprocess.run([sys.executable, "-c", hide, "train", "--data", str(data), "--model", "org/none",
                             "--steps", "1", "--device", "cpu", "--output", str(tmp_path / "out")],
                            capture_output=True, text=True, env=cli_env({"HF_HUB_OFFLINE": "1"}))
    trackers = next(line for line in result.stderr.splitlines() if line.startswith("trackers: "))
    assert trackers.startswith("trackers: tensorboard off: tensorboardX is not installed "
                               "(pip install 'backpropagate[tensorboard]'); mlflow off: ")
