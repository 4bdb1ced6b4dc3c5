"""Who may use the UI: credentials from --auth or --auth-file, sessions, and a failed-login limit.

A session is a random id in an HttpOnly cookie, kept in memory; each carries its CSRF token.
Without credentials (loopback only) every visitor gets a session that counts as logged in.
"""

import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.user_files import FileRefused, open_user_file

COOKIE = "bp_session"
MAX_AUTH_FILE_BYTES = 4096  # one line USER:PASSWORD; read no further than this
MAX_SESSIONS = 10_000  # visitors who never log in are dropped first, oldest first


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def accepts(self, user: str, password: str) -> bool:
        # Both compared, always, in constant time: neither the name nor the length of a match leaks.
        user_ok = hmac.compare_digest(user.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok & password_ok


def parse_credentials(text: str, source: str) -> Credentials:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise BackpropError("CONFIG_VALUE_INVALID", name=source, value="***", reason="not USER:PASSWORD",
                            allowed="USER:PASSWORD with a non-empty name and password")
    return Credentials(user, password)


def read_auth_file(path: Path) -> Credentials:
    try:
        with open_user_file(path, "--auth-file", "auth file") as handle:
            data = handle.read(MAX_AUTH_FILE_BYTES + 1)
    except FileRefused as refused:
        raise BackpropError("INPUT_AUTH_FILE_INVALID", path=path, reason=refused.reason,
                            remedy=refused.remedy) from None
    if len(data) > MAX_AUTH_FILE_BYTES:
        raise _not_one_line(path, f"it is over {MAX_AUTH_FILE_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BackpropError("INPUT_AUTH_FILE_INVALID", path=path, reason=f"it is not UTF-8 (byte "
                            f"0x{data[exc.start]:02x} at offset {exc.start})",
                            remedy=f"save {path} as UTF-8 (iconv -f LATIN1 -t UTF-8 if it was written as latin-1), "
                                   "one line USER:PASSWORD") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1 or ":" not in lines[0]:
        raise _not_one_line(path, "it must hold exactly one line USER:PASSWORD")
    return parse_credentials(lines[0], "--auth-file")


def _not_one_line(path: Path, reason: str) -> BackpropError:
    return BackpropError("INPUT_AUTH_FILE_INVALID", path=path, reason=reason,
                         remedy=f"write one line USER:PASSWORD into {path}")


@dataclass
class UiSession:
    logged_in: bool
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Sessions:
    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self._sessions: dict[str, UiSession] = {}

    def get(self, sid: str | None) -> UiSession | None:
        return self._sessions.get(sid or "")

    def new(self) -> tuple[str, UiSession]:
        if len(self._sessions) >= MAX_SESSIONS:
            stale = next((sid for sid, s in self._sessions.items() if not s.logged_in), next(iter(self._sessions)))
            del self._sessions[stale]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = UiSession(logged_in=self.credentials is None)
        return sid, self._sessions[sid]

    def log_in(self, sid: str) -> str:
        """A fresh id for a session that just logged in, so an id seen before login is worth nothing."""
        old = self._sessions.pop(sid)
        new = secrets.token_urlsafe(32)
        self._sessions[new] = UiSession(logged_in=True, csrf=old.csrf)
        return new

    def log_out(self, sid: str) -> None:
        self._sessions.pop(sid, None)


class LoginLimiter:
    """At most ``limit`` failed logins per client address within ``window_s`` seconds."""

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}

    def blocked_for(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        failures = self._recent(client)
        if len(failures) < self.limit:
            return 0.0
        return max(0.0, failures[0] + self.window_s - time.monotonic())

    def failed(self, client: str) -> None:
        self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] < time.monotonic() - self.window_s:
            failures.popleft()
        return failures
