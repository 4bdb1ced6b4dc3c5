"""Secrets never reach log.txt."""

import pytest
from backpropagate.contract.redact import redact


@pytest.mark.parametrize("line, secret", [
    ("using token hf_abcdefghijklmnopqrstuvwxyz123456", "hf_abcdefghijklmnopqrstuvwxyz123456"),
    ("OPENAI key sk-proj-ABCDEFGHIJKLMNOPQRSTUV", "sk-proj-ABCDEFGHIJKLMNOPQRSTUV"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9.payload.sig"),
    ("aws id AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("connect password=hunter2 host=db", "hunter2"),
    ("url?token=abc123&x=1", "abc123"),
    ('config {"api_key": "s3cr3t"}', "s3cr3t"),
])
def test_secret_is_masked(line, secret):
    cleaned = redact(line)
    assert secret not in cleaned
    assert "***" in cleaned


def test_ordinary_log_lines_are_untouched():
    line = "step 10/30 loss 2.3141 lr 2.0e-04 tokens 1234"
    assert redact(line) == line


def test_the_key_name_stays_so_the_log_still_says_what_was_there():
    assert redact("password=hunter2") == "password=***"
