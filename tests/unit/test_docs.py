"""The README is a front door and the docs site is the manual: the site builds with every link and
anchor resolved, its CLI reference is generated from the app and names every command."""

import importlib.util
import os
import re
import subprocess
import sys

from backpropagate.app import app

from tests.conftest import ROOT

README = ROOT / "README.md"
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"


def gen_cli_docs():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered_commands() -> list[str]:
    """Every command path as typer registered it (not as the generator walks it)."""
    def name(info):
        return info.name or info.callback.__name__.replace("_", "-")

    paths = [name(info) for info in app.registered_commands]
    for group in app.registered_groups:
        paths.append(group.name)
        paths += [f"{group.name} {name(info)}" for info in group.typer_instance.registered_commands]
    return paths


def test_the_cli_reference_page_is_generated_from_the_app():
    assert CLI_PAGE.read_text() == gen_cli_docs().cli_reference(), "run: python scripts/gen_cli_docs.py"


def test_the_cli_reference_gives_every_registered_command_its_help():
    page = CLI_PAGE.read_text()
    commands = registered_commands()
    assert "train" in commands and "ollama register" in commands and "images build" in commands
    for path in commands:
        assert f"\n## backprop {path}\n" in page, path
        assert f"Usage: backprop {path} " in page, path
        assert f"[`backprop {path}`](#backprop-{path.replace(' ', '-')})" in page, path


def test_the_cli_reference_does_not_depend_on_the_terminal_width():
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('g', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(m.cli_reference(), end='')")
    narrow = subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts" / "gen_cli_docs.py")],
                            capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "40"})
    assert narrow.stdout == CLI_PAGE.read_text()


def test_the_docs_site_builds_with_strict_links_and_anchors(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stdout + built.stderr
    assert (site / "reference" / "cli" / "index.html").is_file()
    assert (site / "reference" / "errors" / "index.html").is_file()


def test_the_readme_is_a_front_door_whose_links_resolve():
    text = README.read_text()
    assert len(text.encode()) <= 12 * 1024, f"README.md is {len(text.encode())} bytes: move the detail into docs/"
    # CI runs the README's test command (.ci/run).
    assert "\n    bash scripts/test.sh\n" in text and "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links, "the README links into docs/"
    for link in links:
        assert (ROOT / link).exists(), link

