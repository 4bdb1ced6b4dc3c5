"""Run ids: a uuid4 for each run; any unique prefix selects it."""

import uuid

from backpropagate.contract.errors import BackpropError


def new_run_id() -> str:
    return str(uuid.uuid4())


def match_run(prefix: str, run_ids: list[str], history: str, output: str) -> str:
    """The run id equal to ``prefix``, else the one that starts with it; coded errors for none or several.
    An exact id wins: a run `abc` beside `abcd` can always be named."""
    prefix = prefix.strip()
    if prefix in run_ids:
        return prefix
    matches = [run_id for run_id in run_ids if prefix and run_id.startswith(prefix)]
    if not matches:
        raise BackpropError("INPUT_RUN_NOT_FOUND", run_id=prefix, history=history, output=output)
    if len(set(matches)) > 1:
        shown = ", ".join(m[:12] for m in matches[:10])
        raise BackpropError("INPUT_RUN_AMBIGUOUS", run_id=prefix, count=len(matches), candidates=shown)
    return matches[0]
