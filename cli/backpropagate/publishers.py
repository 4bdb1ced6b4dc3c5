"""Publishers: where a run's model is sent to be used. Each is one module; ``PUBLISHERS`` lists them.

A publisher sends a run's files somewhere (Ollama registers a GGUF as a model, the Hugging Face Hub
receives a commit) and says what it published. ``publish`` keeps that record on the run's history
row, in the row's field named after the publisher, so `show-run`, `export-runs` and the web UI tell
where each run went, whichever publisher took it. A new publisher is its module, one entry here
and its field on ``HistoryRow``.
"""

from pathlib import Path
from typing import Any, Protocol

from backpropagate.contract.history import RunHistory

PUBLISHERS: dict[str, str] = {
    "ollama": "backpropagate.ollama.register:OllamaPublisher",
    "hub": "backpropagate.hub.push:HubPublisher",
}


class Publisher(Protocol):
    name: str  # a key of PUBLISHERS, and the history row's field its records go in
    run_id: str | None  # the run the files come from, when known

    def publish(self, workspace: Path) -> tuple[dict[str, Any], Any]:
        """Send the files: (the record kept on the run's row, the result the caller reports)."""

    def replaces(self, record: dict[str, Any], earlier: dict[str, Any]) -> bool:
        """Whether ``record`` is a newer publication to the same place as ``earlier`` (which it then replaces)."""


def publish(publisher: Publisher, workspace: Path) -> Any:
    """Publish, and keep the record on the run's history row (when the files come from a run it has)."""
    record, result = publisher.publish(workspace)
    if publisher.run_id:
        history = RunHistory(workspace)
        row = history.get(publisher.run_id)
        if row is not None:
            kept = [earlier for earlier in getattr(row, publisher.name) if not publisher.replaces(record, earlier)]
            history.update(publisher.run_id, **{publisher.name: kept + [record]})
    return result
