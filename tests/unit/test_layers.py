"""The layers of the code, checked by walking every import (also those inside functions).

- A stage may import only the contract line: ``backpropagate.contract`` (and the package's
  ``__version__``). What runs in an image never reaches into the host's orchestration.
- The contract imports nothing of the host outside itself.
- Below the orchestration (runs/) and the commands, nothing imports upward into them.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = ROOT / "cli" / "backpropagate"
STAGES = ROOT / "stages" / "backpropagate_stages"

# Host modules that orchestrate or face the user: they may import anything below them.
ORCHESTRATION = ("runs", "sinks")
FACING = ("commands", "app", "api", "__main__", "__init__", "ui")


def imported_modules(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # The code base uses absolute imports only (a test below keeps it so), so a relative
            # import cannot hide a host module from this walk.
            found.append((node.lineno, "." * node.level + (node.module or ""), [a.name for a in node.names]))
    return found


def host_imports(path: Path) -> list[tuple[int, str]]:
    """The ``backpropagate.*`` modules a file imports, as (line, dotted name)."""
    result = []
    for line, module, names in imported_modules(path):
        if module == "backpropagate":
            result += [(line, f"backpropagate.{name}") for name in names] or [(line, module)]
        elif module.startswith("backpropagate."):
            result.append((line, module))
    return result


def layer_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_stages_import_only_the_contract_line():
    allowed = ("backpropagate.contract", "backpropagate.__version__")
    offending = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for path in sorted(STAGES.rglob("*.py")) for line, module in host_imports(path)
                 if not module.startswith(allowed)]
    assert offending == []


def test_the_contract_imports_nothing_of_the_host_outside_itself():
    offending = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for path in sorted((HOST / "contract").rglob("*.py")) for line, module in host_imports(path)
                 if not module.startswith(("backpropagate.contract", "backpropagate.__version__"))]
    assert offending == []


def test_nothing_below_imports_up_into_orchestration_or_commands():
    offending = []
    for path in sorted(HOST.rglob("*.py")):
        own = path.relative_to(HOST).parts[0].removesuffix(".py")
        for line, module in host_imports(path):
            target = layer_of(module)
            upward = (target in FACING and own not in FACING) or \
                     (target in ORCHESTRATION and own not in ORCHESTRATION + FACING)
            if upward:
                offending.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offending == []


def test_imports_are_absolute():
    relative = [f"{path.relative_to(ROOT)}:{line}" for tree in (HOST, STAGES) for path in sorted(tree.rglob("*.py"))
                for line, module, _ in imported_modules(path) if module.startswith(".")]
    assert relative == []


def test_the_walk_sees_imports_inside_functions(tmp_path):
    # The guard is only as good as its walk: an import hidden in a function body must count.
    sample = STAGES / "train" / "run.py"
    modules = {module for _, module in host_imports(sample)}
    assert "backpropagate.contract.events" in modules or "backpropagate.contract" in modules
    hidden = tmp_path / "probe.py"
    hidden.write_text("def f():\n    from backpropagate.runs.plan import plan_train\n", encoding="utf-8")
    assert host_imports(hidden) == [(2, "backpropagate.runs.plan")]
