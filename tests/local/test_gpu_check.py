"""scripts/gpu_check.py on the CPU (--dry-run): every section a GPU machine will run, at tiny shapes, and the
report a GPU run writes, field by field."""

import json
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.py"


def test_list_wheels_names_the_pinned_wheels_to_carry_and_how_to_fetch_them():
    out = subprocess.run([sys.executable, str(SCRIPT), "--list-wheels"], capture_output=True, text=True, check=True)
    assert "bitsandbytes==0.50.2" in out.stdout and "trl==1.16.0" in out.stdout and "typer==" in out.stdout
    assert "pip download --no-deps" in out.stdout and "--wheels wheels" in out.stdout
    assert "50.0 MB" in out.stdout  # under the 64 MiB that may travel with the tree


def test_dry_run_checks_every_section_on_the_cpu_and_writes_the_report(tmp_path):
    report_path = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(report_path), "--presets",
                           "llama3.2-1b,phi4-mini", "--steps", "2"], capture_output=True, text=True)
    report = json.loads(report_path.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["ok"] is True and report["dry_run"] is True and report["version"] == 1
    assert "unavailable" in report["environment"]["nvml"]  # no GPU here, and the report says why
    lora = report["lora_cli"]
    assert lora["loss_last"] < lora["loss_first"] and lora["adapter_bytes"] > 0
    assert (lora["resumed_from_step"], lora["resumed_steps"]) == (3, 6) and lora["killed_exit_code"] != 0
    assert report["oom"]["oom_adjustments"][0] == {"step": 2, "micro_batch": 2, "gradient_accumulation": 2}
    assert [row["preset"] for row in report["qlora"]] == ["llama3.2-1b", "phi4-mini"]
    for row in report["qlora"]:
        assert row["ours"]["tokens_per_s"] > 0 and row["plan_peak_bytes"] > 0
        assert row["trl"]["tokens_per_s"] > 0 and row["speed_ratio"] > 0  # TRL is in the dev extra
        assert "max_memory_allocated_bytes" not in row["ours"]  # no GPU figures without a GPU
    assert "gpu_check (dry run, CPU) PASSED" in done.stdout  # TRL prints its own lines on stdout too
