"""Log redaction: secrets never reach log.txt, events or history.

Applied to every line a stage's libraries print before it is written to the
run's log. Patterns cover Hugging Face tokens, OpenAI-style keys, Bearer
headers, AWS keys and ``password=``/``token=`` style pairs.
"""

import re

MASK = "***"

_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\bhf_[A-Za-z0-9]{16,}"), MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), MASK),
    (re.compile(r"\b(Bearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), r"\1" + MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"(?i)\b(aws_secret_access_key\s*[=:]\s*)[\"']?[A-Za-z0-9/+=]{40}[\"']?"), r"\1" + MASK),
    # key=value pairs: the key stays so the log still says what was there.
    (re.compile(r"(?i)\b((?:password|passwd|pwd|token|secret|api_key|apikey|access_token)[\"']?\s*[=:]\s*)"
                r"(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"), r"\1" + MASK),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_data(value):
    """Redact every string inside JSON-like data (dicts, lists), leaving its structure intact."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_data(item) for item in value]
    return value
