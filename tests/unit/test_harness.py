"""The stage harness: stdout carries events only; everything else lands in log.txt, redacted."""

import json
import subprocess
import sys
import textwrap

from backpropagate.contract.events import parse_line

STAGE = textwrap.dedent("""
    import os, sys
    from backpropagate.contract.errors import BackpropError
    from backpropagate.contract.specs import MergeResult
    from backpropagate_stages.harness import stage_main

    def run(spec, emit):
        print("library chatter with token hf_abcdefghijklmnopqrstuvwxyz0123")
        os.write(2, b"C-level stderr password=hunter2\\n")
        behaviour = os.environ["BEHAVIOUR"]
        if behaviour == "coded":
            raise BackpropError("RUNTIME_GPU_OOM", step=7)
        if behaviour == "crash":
            raise ZeroDivisionError("boom")
        if behaviour == "untyped":
            return {"merged": "m"}
        return MergeResult(merged="m", shards=1, dtype="float16", bytes=42)

    sys.exit(stage_main("merge", run))
""")


def _spec(tmp_path) -> str:
    spec = {"run_id": "run-1", "run_dir": str(tmp_path / "run-1"), "base_model": "org/m", "adapter": "a"}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


def _run(tmp_path, behaviour: str) -> subprocess.CompletedProcess:
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    return subprocess.run([sys.executable, str(script), "--spec", _spec(tmp_path)], capture_output=True,
                          text=True, env={"BEHAVIOUR": behaviour, "PATH": "/usr/bin:/bin"})


def test_stdout_carries_only_events_and_the_log_is_redacted(tmp_path):
    result = _run(tmp_path, "ok")
    assert result.returncode == 0
    names = [parse_line(line).event.name for line in result.stdout.splitlines()]
    assert names == ["started", "finished"]
    assert parse_line(result.stdout.splitlines()[-1]).event.outputs == {"merged": "m", "shards": 1,
                                                                         "dtype": "float16", "bytes": 42}
    log = (tmp_path / "run-1" / "log.txt").read_text()
    assert "library chatter with token ***" in log and "password=***" in log
    assert "hf_abcdefghijklmnopqrstuvwxyz0123" not in log and "hunter2" not in log
    events_file = (tmp_path / "run-1" / "events.jsonl").read_text().splitlines()
    assert events_file == result.stdout.splitlines()


def test_a_coded_error_becomes_an_error_event_and_its_exit_code(tmp_path):
    result = _run(tmp_path, "coded")
    assert result.returncode == 5
    error = parse_line(result.stdout.splitlines()[-2]).event
    assert (error.code, error.message) == ("RUNTIME_GPU_OOM", "out of GPU memory at step 7")
    assert parse_line(result.stdout.splitlines()[-1]).event.status == "failed"


def test_an_unexpected_exception_is_reported_with_the_traceback_kept_in_the_log(tmp_path):
    result = _run(tmp_path, "crash")
    assert result.returncode == 5
    error = parse_line(result.stdout.splitlines()[-2]).event
    assert error.code == "RUNTIME_STAGE_FAILED"
    assert error.message == "stage merge failed: ZeroDivisionError: boom"
    assert error.fix == f"see {tmp_path / 'run-1' / 'log.txt'} for the traceback and the full log"
    assert "Traceback" not in result.stdout + result.stderr
    assert "ZeroDivisionError" in (tmp_path / "run-1" / "log.txt").read_text()


def test_an_invalid_spec_lists_every_problem(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(STAGE)
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"run_id": 1, "base_model": "m", "adapter": "a", "dtype": "fp8", "colour": "red"}))
    result = subprocess.run([sys.executable, str(script), "--spec", str(spec)], capture_output=True, text=True,
                            env={"BEHAVIOUR": "ok", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    error = parse_line(result.stdout.splitlines()[0]).event
    assert error.code == "CONFIG_SPEC_INVALID"
    assert error.message == (
        f"spec {spec} is not valid: colour: unknown key (known: run_id, run_dir, base_model, adapter, dtype, "
        "log_level, stage); run_id: expected text, got int 1; run_dir: missing; "
        "dtype: 'fp8' is not one of float16, bfloat16, float32")
    assert error.fix == "let `backprop train` or `backprop export` write the spec, or fix what is named above"


def test_a_result_that_is_not_the_stages_result_type_is_a_stage_failure(tmp_path):
    result = _run(tmp_path, "untyped")
    assert result.returncode == 5
    error = parse_line(result.stdout.splitlines()[-2]).event
    assert error.code == "RUNTIME_STAGE_FAILED"
    assert error.message == "stage merge failed: TypeError: the merge stage returned dict, not MergeResult"
