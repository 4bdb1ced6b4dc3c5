"""Which Host headers the no-login UI answers: its own loopback names, never a rebound DNS name.

A page on evil.example can make its own name resolve to 127.0.0.1 (DNS rebinding); the browser
then sends it to the UI with ``Host: evil.example`` and, without this check, reads the answers:
the CSRF token of a session that needs no login. With credentials the login stops it instead.
"""

from dataclasses import dataclass

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class AllowedHosts:
    names: frozenset[str]  # lower case; an IPv6 address in brackets, as in a Host header
    port: int | None  # None: any port (a container's published port may differ from the one it listens on)

    @classmethod
    def loopback(cls, listen_host: str, port: int | None) -> "AllowedHosts":
        """The loopback names, and the address the UI was started on (such as 127.0.0.2)."""
        own = f"[{listen_host}]" if ":" in listen_host else listen_host
        names = {*LOOPBACK_NAMES} | ({own.lower()} if listen_host not in ("0.0.0.0", "::") else set())
        return cls(frozenset(names), port)

    def accepts(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name, port = _split(host_header.strip().lower())
        if name not in self.names:
            return False
        return self.port is None or port == self.port or (port is None and self.port == 80)


def _split(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name, port = name + "]", rest[1:] if rest.startswith(":") else None
    else:
        name, _, port = host.partition(":")
        port = port or None
    if port is None:
        return name, None
    return (name, int(port)) if port.isdigit() else ("", None)
