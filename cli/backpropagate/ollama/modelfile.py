"""The Modelfile equivalent of a create request, for people who prefer `ollama create -f Modelfile`."""

import json
from pathlib import Path
from typing import Any


def modelfile(request: dict[str, Any], gguf: Path) -> str:
    """FROM, ADAPTER, TEMPLATE, PARAMETER and SYSTEM lines saying what ``request`` says."""
    lines = [f"# made by backpropagate; register with: ollama create {request['model']} -f Modelfile"]
    if "from" in request:
        lines += [f"FROM {request['from']}", f"ADAPTER {gguf}"]
    else:
        lines.append(f"FROM {gguf}")
    lines.append(f'TEMPLATE """{request["template"]}"""')
    for key, value in request["parameters"].items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {json.dumps(item) if isinstance(item, str) else item}")
    if request.get("system"):
        lines.append(f'SYSTEM """{request["system"]}"""')
    return "\n".join(lines) + "\n"
