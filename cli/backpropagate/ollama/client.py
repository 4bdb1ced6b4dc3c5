"""Ollama's HTTP API, the parts registration needs: blobs, create, tags, delete, version.

Stdlib only (urllib). Where the server is comes from OLLAMA_HOST as the ollama CLI
reads it (``host``, ``host:port`` or a URL; default http://127.0.0.1:11434). A
refused or reset connection is retried a few times with backoff, since a server
that was just started takes a moment to listen; a timeout is not retried. Every wait
for an answer is bounded by ``timeout_s`` and, while it lasts, ``on_wait`` hears a
line every few seconds, so a server that accepts and never answers is never a silent hang.
"""

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from backpropagate.contract.errors import BackpropError
from backpropagate.waiting import line_every_s, waited

DEFAULT_PORT = 11434
_TRANSIENT = (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected)


def ollama_url(host: str | None = None) -> str:
    """The server's base URL from an OLLAMA_HOST-style value."""
    host = (host if host is not None else os.environ.get("OLLAMA_HOST", "")).strip()
    if not host:
        return f"http://127.0.0.1:{DEFAULT_PORT}"
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    port = parts.port or (DEFAULT_PORT if parts.scheme == "http" else 443)
    hostname = parts.hostname or "127.0.0.1"
    if hostname == "0.0.0.0":  # a bind address: the server is reached on this machine
        hostname = "127.0.0.1"
    return f"{parts.scheme}://{hostname}:{port}{parts.path.rstrip('/')}"


class OllamaClient:
    def __init__(self, host: str | None = None, timeout_s: float = 120.0, retries: int = 4,
                 backoff_s: float = 0.25, on_wait: Callable[[str], None] | None = None) -> None:
        self.url = ollama_url(host)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.on_wait = on_wait
        self.wait_line_every_s = line_every_s(timeout_s)

    def version(self) -> str:
        return self._json("GET", "/api/version").get("version", "")

    def has_blob(self, digest: str) -> bool:
        try:
            with self._request("HEAD", f"/api/blobs/{digest}"):
                return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise self._failure("HEAD /api/blobs", error) from None

    def push_blob(self, path: Path, digest: str) -> None:
        """Stream the file to the server (never read whole into memory); Ollama checks the digest."""
        size = Path(path).stat().st_size

        def body() -> BinaryIO:
            return open(path, "rb")

        try:
            with self._request("POST", f"/api/blobs/{digest}", body=body,
                               headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"}):
                return
        except urllib.error.HTTPError as error:
            reason = _error_text(error)
            if error.code == 400:
                raise BackpropError("RUNTIME_OLLAMA_DIGEST_MISMATCH", path=path, digest=digest, reason=reason) from None
            raise self._failure("POST /api/blobs", error) from None

    def create(self, request: dict[str, Any]) -> Iterator[str]:
        """POST /api/create and yield each status line until ``success``; a streamed error is a coded error."""
        name = request.get("model", "")
        try:
            response = self._request("POST", "/api/create", body=json.dumps({**request, "stream": True}).encode(),
                                     headers={"Content-Type": "application/json"})
        except urllib.error.HTTPError as error:
            if error.code in (401, 403) or error.code >= 500:
                raise self._failure("POST /api/create", error) from None
            raise BackpropError("RUNTIME_OLLAMA_CREATE_FAILED", name=name, reason=_error_text(error)) from None
        succeeded = False
        with response:
            for line in self._lines(response, "POST /api/create"):
                try:
                    message = json.loads(line)
                except ValueError:
                    message = {"error": f"a status line that is not JSON: {line[:80]!r}"}
                if "error" in message:
                    raise BackpropError("RUNTIME_OLLAMA_CREATE_FAILED", name=name, reason=message["error"])
                status = message.get("status", "")
                succeeded = status == "success"
                yield status
        if not succeeded:
            raise BackpropError("RUNTIME_OLLAMA_CREATE_FAILED", name=name,
                                reason="the status stream ended before success")

    def tags(self) -> list[dict[str, Any]]:
        return self._json("GET", "/api/tags").get("models", [])

    def _json(self, method: str, path: str) -> dict[str, Any]:
        """A JSON object answer; any HTTP error, or an answer that is not one, is a coded error."""
        try:
            with self._request(method, path) as response:
                text = self._answered(f"{method} {path}", response.read)
        except urllib.error.HTTPError as error:
            raise self._failure(f"{method} {path}", error) from None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise BackpropError("RUNTIME_OLLAMA_REFUSED", host=self.url, request=f"{method} {path}", status=200,
                                reason=f"the answer is not a JSON object: {text[:80]!r}", remedy=_NOT_OLLAMA)
        return answer

    def delete(self, name: str) -> None:
        try:
            with self._request("DELETE", "/api/delete", body=json.dumps({"model": name}).encode(),
                               headers={"Content-Type": "application/json"}):
                return
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise BackpropError("INPUT_OLLAMA_MODEL_NOT_FOUND", host=self.url, name=name) from None
            raise self._failure("DELETE /api/delete", error) from None

    def _request(self, method: str, path: str, body: bytes | Callable[[], BinaryIO] | None = None,
                 headers: dict[str, str] | None = None):
        """The open response; HTTP errors are raised as urllib's HTTPError for the caller to name."""
        for attempt in range(self.retries + 1):
            data = body() if callable(body) else body
            request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
            try:
                return self._answered(f"{method} {path}",
                                      lambda: urllib.request.urlopen(request, timeout=self.timeout_s))
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    raise self._timeout(f"{method} {path}") from None
                if not isinstance(reason, _TRANSIENT) or attempt == self.retries:
                    raise BackpropError("DEP_OLLAMA_REGISTRATION_FAILED", host=self.url,
                                        reason=f"{method} {path}: {reason}") from None
                time.sleep(self.backoff_s * 2 ** attempt)
            finally:
                if callable(body) and data is not None:
                    data.close()

    def _lines(self, response, request: str) -> Iterator[str]:
        try:
            while raw := self._answered(request, response.readline):
                if raw.strip():
                    yield raw.decode("utf-8", errors="replace")
        except (TimeoutError, socket.timeout):
            raise self._timeout(request) from None

    def _answered(self, request: str, call: Callable[[], Any]) -> Any:
        """``call()``, which the socket's timeout bounds; while it waits, a line for ``on_wait`` every few seconds."""
        def say(seconds: float) -> None:
            self.on_wait(f"waiting for Ollama at {self.url} to answer {request}: {seconds:.0f}s, "
                         f"at most {self.timeout_s:g}s (--timeout)")

        return waited(call, say if self.on_wait else None, self.wait_line_every_s)

    def _timeout(self, request: str) -> BackpropError:
        return BackpropError("RUNTIME_OLLAMA_TIMEOUT", host=self.url, request=request, timeout_s=self.timeout_s)

    def _failure(self, request: str, error: urllib.error.HTTPError) -> BackpropError:
        """An HTTP error status: a server answered, so the fix depends on what it said."""
        if error.code in (401, 403):
            remedy = ("Ollama itself asks for no credentials, so a proxy in front of it does: point OLLAMA_HOST at "
                      "the server itself (default http://127.0.0.1:11434), or register on the machine it runs on")
        elif error.code >= 500:
            remedy = ("the server failed on its side: read its log (journalctl -u ollama, or `docker logs` of its "
                      "container), then register again")
        else:
            remedy = _NOT_OLLAMA
        return BackpropError("RUNTIME_OLLAMA_REFUSED", host=self.url, request=request, status=error.code,
                             reason=_error_text(error), remedy=remedy)


_NOT_OLLAMA = "check that OLLAMA_HOST names an Ollama server (`curl $OLLAMA_HOST/api/version` answers its version)"


def _error_text(error: urllib.error.HTTPError) -> str:
    """Ollama answers errors as {"error": "..."}; anything else is shown as it came."""
    text = error.read().decode("utf-8", errors="replace").strip()
    try:
        return json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return text or f"HTTP {error.code}"
