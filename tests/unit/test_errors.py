"""The error catalog: every code raised exists, messages read as documented, docs stay in step."""

import ast
import re
from pathlib import Path

import pytest
from backpropagate.contract.errors import CATALOG, EXIT_CODES, BackpropError, catalog_markdown

from tests.conftest import ROOT


def raised_codes() -> set[str]:
    pattern = re.compile(r"BackpropError\(\s*\"([A-Z_]+)\"")
    codes = set()
    for path in list((ROOT / "cli").rglob("*.py")) + list((ROOT / "stages").rglob("*.py")):
        codes |= set(pattern.findall(path.read_text()))
    return codes


def test_every_code_raised_in_the_code_is_in_the_catalog():
    raised = raised_codes()
    assert raised, "the scan found no raise sites; the pattern is broken"
    assert raised - set(CATALOG) == set()


def test_every_catalog_code_has_a_known_prefix_and_exit_code():
    for code, kind in CATALOG.items():
        prefix = code.split("_", 1)[0]
        assert prefix in EXIT_CODES, code
        assert kind.exit_code == EXIT_CODES[prefix] or code == "RUNTIME_INTERRUPTED"
    assert CATALOG["RUNTIME_INTERRUPTED"].exit_code == 130


def test_an_error_renders_code_message_and_fix():
    error = BackpropError("INPUT_DATASET_INVALID", location="data.jsonl:3", reason="text is empty")
    assert error.render() == (
        "[INPUT_DATASET_INVALID]: data.jsonl:3: text is empty\n"
        "  fix: fix that row, or pass --skip-invalid to train on the valid rows only"
    )
    assert error.exit_code == 3


def test_an_unknown_code_cannot_be_raised():
    with pytest.raises(KeyError):
        BackpropError("INPUT_NOT_A_CODE")


def test_the_error_reference_page_is_generated_from_the_catalog():
    assert (ROOT / "docs" / "reference" / "errors.md").read_text() == catalog_markdown(), \
        "run: python scripts/gen_error_docs.py"


def longest_literal(template: str) -> str:
    """The longest part of a message or fix template with no placeholder in it."""
    return max(re.split(r"\{[^}]*\}", template), key=len).strip()


def string_constants(path: Path) -> list[str]:
    """Every string in a file as Python reads it: implicitly joined literals are one string, and an
    f-string contributes its literal parts."""
    return [node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_every_catalog_code_is_met_by_a_test_that_checks_its_message_and_fix():
    # A test meets a code by triggering it for real; it shows it checked the words by naming the code
    # and quoting (a placeholder-free part of) its message and its fix in the same file.
    this = Path(__file__).resolve()
    files = [string_constants(path) for path in sorted((ROOT / "tests").rglob("test_*.py")) if path != this]
    unmet = []
    for code, kind in CATALOG.items():
        fix, message = longest_literal(kind.fix), longest_literal(kind.message)
        if not any(any(code in s for s in strings) and any(fix in s for s in strings)
                   and any(message in s for s in strings) for strings in files):
            unmet.append(code)
    assert unmet == []
