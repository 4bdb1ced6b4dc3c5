"""A STAND-IN for an Ollama server: the documented endpoints registration uses, implemented strictly.

No Ollama runs on these machines, so contract tests talk to this local HTTP server
instead. It follows Ollama's API documentation (docs/api.md: "Create a Model",
"Check if a Blob Exists", "Push a Blob", "List Local Models", "Delete a Model"):

- ``HEAD /api/blobs/sha256:<hex>``: 200 if the blob exists, 404 if not.
- ``POST /api/blobs/sha256:<hex>``: the body's sha256 must equal the digest, else 400
  (as Ollama answers); 201 when stored.
- ``POST /api/create``: checks every field (a valid model name; ``files``/``adapters``
  naming blobs it holds; ``from`` naming a model it has; ``template``/``system`` strings;
  ``parameters`` an object with ``stop`` a list of strings and ``num_ctx`` an integer),
  answers 400 ``{"error": ...}`` otherwise, then streams ``{"status": ...}`` lines ending
  in ``success``. It is stricter than Ollama in one way: unknown fields are refused
  (Ollama ignores them), so that a typo in our request cannot pass unnoticed.
- ``GET /api/tags``, ``DELETE /api/delete`` (404 for an unknown model), ``GET /api/version``.

It does not load or run models: it cannot show that Ollama answers well, only that
what we send is what the API documents. Knobs for failure tests: ``stream_error``
(create streams an error after a status line), ``stall_s`` (create waits before
answering), ``drop_connections`` (the next N connections are closed unanswered),
``never_answer`` (every request is read and never answered: a server that hangs),
``fail_with`` ((status, text): every request answered with that HTTP status and Ollama's
error body ``{"error": text}``, as Ollama does on a 500 and a proxy in front of it on a 401).
"""

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREATE_FIELDS = {"model", "from", "files", "adapters", "template", "renderer", "parser", "license", "system",
                 "parameters", "messages", "stream", "quantize"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*){0,2}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class OllamaStandIn:
    """Start with ``with OllamaStandIn() as server:``; ``server.host`` is an OLLAMA_HOST value."""

    def __init__(self, port: int = 0) -> None:
        self.blobs: dict[str, bytes] = {}
        self.models: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.stream_error: str | None = None
        self.stall_s = 0.0
        self.drop_connections = 0
        self.never_answer = False
        self.fail_with: tuple[int, str] | None = None
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "OllamaStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()  # lets go of requests held by never_answer
        self._server.shutdown()
        self._server.server_close()


def full_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _handler(state: OllamaStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet test output
            pass

        def handle_one_request(self) -> None:
            if state.drop_connections > 0:
                state.drop_connections -= 1
                self.close_connection = True
                self.rfile.readline()
                self.request.close()
                return
            if state.never_answer:
                self.rfile.readline()
                state._closing.wait()
                self.close_connection = True
                return
            super().handle_one_request()

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            if state.fail_with is not None:
                state.requests.append((self.command, self.path))
                self.close_connection = True  # a body the server did not read must not be taken for a request
                self._reply(state.fail_with[0], {"error": state.fail_with[1]})
                return False  # answered: the method's handler is not called
            return True

        def do_HEAD(self) -> None:
            state.requests.append(("HEAD", self.path))
            digest = self._blob_digest()
            if digest is None:
                return self._reply(400, None)
            self._reply(200 if digest in state.blobs else 404, None)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if self.path == "/api/version":
                return self._reply(200, {"version": "0.0.0-standin"})
            if self.path == "/api/tags":
                models = [{"name": name, "model": name, "size": sum(len(state.blobs.get(d, b""))
                                                                    for d in m.get("files", {}).values()),
                           "digest": hashlib.sha256(name.encode()).hexdigest(), "modified_at": "2025-01-01T00:00:00Z",
                           "details": {"format": "gguf"}} for name, m in state.models.items()]
                return self._reply(200, {"models": models})
            self._reply(404, {"error": "not found"})

        def do_DELETE(self) -> None:
            state.requests.append(("DELETE", self.path))
            body = self._json()
            name = full_name(body.get("model", "")) if isinstance(body, dict) else ""
            if self.path != "/api/delete" or name not in state.models:
                return self._reply(404, {"error": f"model '{body.get('model')}' not found"})
            del state.models[name]
            self._reply(200, None)

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            if self.path.startswith("/api/blobs/"):
                return self._push_blob()
            if self.path == "/api/create":
                return self._create()
            self._reply(404, {"error": "not found"})

        def _push_blob(self) -> None:
            digest = self._blob_digest()
            length = int(self.headers.get("Content-Length", "0"))
            sha, left = hashlib.sha256(), length
            data = bytearray()
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                sha.update(chunk)
                data += chunk
                left -= len(chunk)
            if digest is None or "sha256:" + sha.hexdigest() != digest:
                return self._reply(400, {"error": "digest mismatch, expected \"%s\", got \"sha256:%s\""
                                                  % (digest, sha.hexdigest())})
            state.blobs[digest] = bytes(data)
            self._reply(201, None)

        def _create(self) -> None:
            request = self._json()
            problem = _check_create(request, state)
            if problem:
                return self._reply(400, {"error": problem})
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if state.stall_s:
                threading.Event().wait(state.stall_s)
            lines = [{"status": "parsing GGUF"}]
            lines += [{"status": f"using existing layer {d}"} for d in list(request.get("files", {}).values())
                      + list(request.get("adapters", {}).values())]
            if state.stream_error:
                lines.append({"error": state.stream_error})
            else:
                lines += [{"status": "creating new layer sha256:" + hashlib.sha256(
                    json.dumps(request, sort_keys=True).encode()).hexdigest()},
                          {"status": "writing manifest"}, {"status": "success"}]
                state.models[full_name(request["model"])] = request
            try:
                for line in lines:
                    self.wfile.write((json.dumps(line) + "\n").encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _blob_digest(self) -> str | None:
            digest = self.path.rsplit("/", 1)[-1]
            return digest if DIGEST.match(digest) else None

        def _json(self):
            length = int(self.headers.get("Content-Length", "0"))
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                return None

        def _reply(self, code: int, body) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _check_create(request, state: OllamaStandIn) -> str | None:
    """What Ollama would refuse in a create request, as its error text; None when it is valid."""
    if not isinstance(request, dict):
        return "invalid request body"
    unknown = set(request) - CREATE_FIELDS
    if unknown:
        return f"unknown fields {sorted(unknown)} (the stand-in refuses them; Ollama would ignore them)"
    if not isinstance(request.get("model"), str) or not NAME.match(request["model"]):
        return "invalid model name"
    if "files" not in request and "from" not in request:
        return "neither 'from' or 'files' was specified"
    for key in ("files", "adapters"):
        files = request.get(key, {})
        if not isinstance(files, dict) or not all(isinstance(v, str) and DIGEST.match(v) for v in files.values()):
            return f"'{key}' must map file names to sha256 digests"
        missing = [digest for digest in files.values() if digest not in state.blobs]
        if missing:
            return f"blob {missing[0]} not found"
    if "adapters" in request and full_name(request.get("from", "")) not in state.models:
        return f"base model '{request.get('from')}' not found"
    for key in ("template", "system"):
        if key in request and not isinstance(request[key], str):
            return f"'{key}' must be a string"
    parameters = request.get("parameters", {})
    if not isinstance(parameters, dict):
        return "'parameters' must be an object"
    stop = parameters.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        return "'stop' must be a list of strings"
    if "num_ctx" in parameters and not isinstance(parameters["num_ctx"], int):
        return "'num_ctx' must be an integer"
    return None
