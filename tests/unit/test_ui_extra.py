"""`backprop ui` without its extra's packages stops at once with a DEP_ code, and takes --output like every
other command."""

import re
import socket
import subprocess
import sys
import tomllib

from backpropagate.commands.ui import UI_PACKAGES

from tests.conftest import ROOT, cli_env


def ui_cli(*args: str, hide: tuple[str, ...] = (), timeout: float = 20) -> subprocess.CompletedProcess:
    """The real CLI in a child process where the modules ``hide`` names cannot be imported (their entry in
    sys.modules is None: find_spec answers None and an import fails, as for a package never installed)."""
    code = (f"import sys\nfor name in {hide!r}:\n    sys.modules[name] = None\n"
            f"sys.argv = ['backprop', *{args!r}]\nfrom backpropagate.app import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(),
                          timeout=timeout)


def test_the_checked_packages_are_the_ui_extra_of_pyproject():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ui"]
    assert sorted(UI_PACKAGES) == sorted(re.split(r"[=<>\[;]", requirement)[0] for requirement in extra)


def test_ui_without_python_multipart_exits_with_the_install_line_before_it_serves(tmp_path):
    result = ui_cli("ui", "--output", str(tmp_path / "ui"), hide=("python_multipart", "multipart"))
    assert result.returncode == 4
    assert result.stderr.splitlines() == [
        "[DEP_UI_EXTRA_MISSING]: the web UI needs python-multipart, which is not installed",
        "  fix: pip install 'backpropagate[ui]'"]
    assert "http://" not in result.stdout and not (tmp_path / "ui").exists()


def test_ui_names_every_missing_package_at_once(tmp_path):
    result = ui_cli("ui", hide=("uvicorn", "starlette"))
    assert result.returncode == 4
    assert result.stderr.splitlines()[0] == "[DEP_UI_EXTRA_MISSING]: the web UI needs starlette, uvicorn, which " \
                                            "are not installed"


def test_ui_serves_the_folder_output_names(tmp_path):
    folder = tmp_path / "ui-runs"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "backpropagate", "ui", "--port", str(port), "--output",
                               str(folder)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        first = server.stdout.readline()
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert first.startswith("backprop ui: http://127.0.0.1:") and first.rstrip().endswith(f"(folder {folder})")
    assert folder.is_dir()
