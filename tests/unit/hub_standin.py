"""A STAND-IN for the Hugging Face Hub's HTTP API: what huggingface_hub 2.4 calls for ``create_repo``,
``create_branch`` and ``upload_folder`` with Xet off (``HF_HUB_DISABLE_XET=1``), implemented strictly.

The Hub cannot be reached from these machines. The calls, read from huggingface_hub's source
(hf_api.py ``create_repo``/``create_branch``/``create_commit``, _commit_api.py ``_fetch_upload_modes``
and ``_prepare_commit_payload``, lfs.py ``post_lfs_batch_info``/``lfs_upload``):

- ``POST /api/repos/create`` ``{"name", "organization", "visibility"?, "type"?}``: 200 ``{"url"}``; 409 when
  it exists (``create_repo(exist_ok=True)`` reads that as success); 403 for another user's namespace.
- ``POST /api/models/{repo}/branch/{branch}``: 200, 409 when it exists.
- ``POST /api/validate-yaml`` ``{"content", "repoType"}``: the README's front matter must be a YAML
  mapping, and ``base_model`` a Hub id (the Hub refuses a path); 400 ``{"error"}`` otherwise.
- ``POST /api/models/{repo}/preupload/{rev}`` ``{"files": [{"path", "sample" (base64), "size"}]}``:
  ``uploadMode`` lfs for binary extensions or 10 MB and more, else regular; ``oid`` of a file already there.
- ``POST /{repo}.git/info/lfs/objects/batch`` (``operation: upload``, ``hash_algo: sha256``): upload and
  verify actions for each object it lacks.
- ``PUT`` to the upload href (presigned: no token), body's sha256 must be the oid; ``POST`` verify.
- ``POST /api/models/{repo}/commit/{rev}`` (``application/x-ndjson``: a header line, then ``file``
  (base64) and ``lfsFile`` (oid of an uploaded object, right size) lines): ``{"commitUrl", "commitOid"}``;
  a ``parentCommit`` that is not the head is 412.

Every API call needs ``Authorization: Bearer <token>`` with the stand-in's token, else 401 with the Hub's
words ("Invalid credentials in Authorization header"). An unknown repo or revision is 404 with the Hub's
``X-Error-Code`` (RepoNotFound, RevisionNotFound). It does not show the real Hub's rendering of the card,
its Xet storage, rate limits, multipart uploads or large-file behaviour.
"""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_EXTENSIONS = (".safetensors", ".gguf", ".bin", ".png", ".pt")
LFS_SIZE = 10 * 1024 * 1024
_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class HubStandIn:
    def __init__(self, token: str, user: str = "me") -> None:
        self.token, self.user = token, user
        # Knobs for failure tests: repos vanish right after they are created (as if deleted at once);
        # the next commit meets another that landed first.
        self.vanish = False
        self.conflict_next_commit = False
        self.repos: dict[str, dict] = {}  # repo -> {"private": bool, "branches": {name: {"head": oid, "files": {}}}}
        self.lfs: dict[str, bytes] = {}  # oid -> content
        self.requests: list[tuple[str, str, dict]] = []  # method, path, headers: what was asked, to check
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo: str, revision: str = "main") -> dict[str, bytes]:
        return self.repos[repo]["branches"][revision]["files"]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def _route(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hub.requests.append((method, self.path, dict(self.headers)))
                path = self.path.split("?")[0]
                if method == "PUT" and (match := re.fullmatch(r"/lfs-upload/(?P<oid>[0-9a-f]{64})", path)):
                    return self._upload(match["oid"], body)  # a presigned URL: no token
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._answer(401, {"error": "Invalid credentials in Authorization header"})
                routes = [
                    (r"/api/repos/create", self._create_repo),
                    (rf"/api/models/{_REPO}/branch/(?P<branch>[^/]+)", self._create_branch),
                    (r"/api/validate-yaml", self._validate_yaml),
                    (rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", self._preupload),
                    (rf"/{_REPO}\.git/info/lfs/objects/batch", self._lfs_batch),
                    (rf"/{_REPO}\.git/info/lfs/objects/verify", self._lfs_verify),
                    (rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", self._commit),
                ]
                for pattern, handle in routes:
                    if method == "POST" and (match := re.fullmatch(pattern, path)):
                        return handle(body, **match.groupdict())
                self._answer(404, {"error": f"no route {method} {path}"})

            def _answer(self, status: int, data: dict, headers: dict | None = None) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _json(self, body: bytes, required: dict) -> dict | None:
                try:
                    data = json.loads(body)
                except ValueError:
                    self._answer(400, {"error": "body is not JSON"})
                    return None
                bad = [key for key, kind in required.items() if not isinstance(data.get(key), kind)]
                if not isinstance(data, dict) or bad:
                    self._answer(400, {"error": f"bad or missing fields: {bad}"})
                    return None
                return data

            def _branch(self, repo: str, rev: str) -> dict | None:
                if repo not in hub.repos:
                    self._answer(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    return None
                branch = hub.repos[repo]["branches"].get(rev)
                if branch is None:
                    self._answer(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
                return branch

            def _create_repo(self, body: bytes) -> None:
                data = self._json(body, {"name": str})
                if data is None:
                    return
                if data.get("type", "model") != "model" or data.get("visibility", "public") not in ("public", "private"):
                    return self._answer(400, {"error": "bad type or visibility"})
                owner = data.get("organization") or hub.user
                if owner != hub.user:
                    return self._answer(403, {"error": f"You don't have the rights to create a model under {owner}"})
                repo = f"{owner}/{data['name']}"
                url = f"{hub.url}/{repo}"
                if repo in hub.repos:
                    return self._answer(409, {"error": "You already created this model repo", "url": url})
                hub.repos[repo] = {"private": data.get("visibility") == "private",
                                   "branches": {"main": {"head": "0" * 40, "files": {}}}}
                if not hub.vanish:
                    self._answer(200, {"url": url, "name": repo})
                    return
                del hub.repos[repo]
                self._answer(200, {"url": url, "name": repo})

            def _create_branch(self, body: bytes, repo: str, branch: str) -> None:
                if self._branch(repo, "main") is None:
                    return
                if branch in hub.repos[repo]["branches"]:
                    return self._answer(409, {"error": "Reference already exists"})
                main = hub.repos[repo]["branches"]["main"]
                hub.repos[repo]["branches"][branch] = {"head": main["head"], "files": dict(main["files"])}
                self._answer(200, {})

            def _validate_yaml(self, body: bytes) -> None:
                import yaml

                data = self._json(body, {"content": str, "repoType": str})
                if data is None:
                    return
                match = re.match(r"---\n(.*?)\n---\n", data["content"], re.DOTALL)
                meta = yaml.safe_load(match[1]) if match else {}
                if not isinstance(meta, dict):
                    return self._answer(400, {"error": "metadata is not a mapping"})
                base = meta.get("base_model")
                if base is not None and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(base)):
                    return self._answer(400, {"error": f'"base_model" with value "{base}" is not valid'})
                self._answer(200, {"errors": [], "warnings": []})

            def _preupload(self, body: bytes, repo: str, rev: str) -> None:
                data = self._json(body, {"files": list})
                if data is None or (branch := self._branch(repo, rev)) is None:
                    return
                answers = []
                for entry in data["files"]:
                    if not (isinstance(entry.get("path"), str) and isinstance(entry.get("size"), int)
                            and isinstance(entry.get("sample"), str)):
                        return self._answer(400, {"error": f"bad file entry {entry}"})
                    base64.b64decode(entry["sample"], validate=True)
                    lfs = entry["path"].endswith(LFS_EXTENSIONS) or entry["size"] >= LFS_SIZE
                    answer = {"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
                    old = branch["files"].get(entry["path"])
                    if old is not None:
                        answer["oid"] = hashlib.sha256(old).hexdigest() if lfs else git_blob_oid(old)
                    answers.append(answer)
                self._answer(200, {"files": answers, "commitOid": branch["head"]})

            def _lfs_batch(self, body: bytes, repo: str) -> None:
                data = self._json(body, {"operation": str, "objects": list})
                if data is None or self._branch(repo, "main") is None:
                    return
                if data["operation"] != "upload" or data.get("hash_algo") != "sha256" \
                        or "basic" not in data.get("transfers", []):
                    return self._answer(422, {"message": "bad batch request"})
                objects = []
                for item in data["objects"]:
                    if not (re.fullmatch(r"[0-9a-f]{64}", str(item.get("oid"))) and isinstance(item.get("size"), int)):
                        return self._answer(422, {"message": f"bad object {item}"})
                    answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
                    if item["oid"] not in hub.lfs:
                        answer["actions"] = {
                            "upload": {"href": f"{hub.url}/lfs-upload/{item['oid']}", "header": {}},
                            "verify": {"href": f"{hub.url}/{repo}.git/info/lfs/objects/verify", "header": {}}}
                    objects.append(answer)
                self._answer(200, {"transfer": "basic", "objects": objects})

            def _upload(self, oid: str, body: bytes) -> None:
                if hashlib.sha256(body).hexdigest() != oid:
                    return self._answer(400, {"error": "content does not match its oid"})
                hub.lfs[oid] = body
                self._answer(200, {})

            def _lfs_verify(self, body: bytes, repo: str) -> None:
                data = self._json(body, {"oid": str, "size": int})
                if data is None:
                    return
                stored = hub.lfs.get(data["oid"])
                if stored is None or len(stored) != data["size"]:
                    return self._answer(404, {"error": "object not uploaded"})
                self._answer(200, {})

            def _commit(self, body: bytes, repo: str, rev: str) -> None:
                if self.headers.get("Content-Type") != "application/x-ndjson":
                    return self._answer(400, {"error": "expected application/x-ndjson"})
                if (branch := self._branch(repo, rev)) is None:
                    return
                if hub.conflict_next_commit:
                    hub.conflict_next_commit = False
                    return self._answer(409, {"error": "A commit has happened since. Please refresh and try again."})
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                if not lines or lines[0].get("key") != "header" or not lines[0]["value"].get("summary"):
                    return self._answer(400, {"error": "the first line must be the header, with a summary"})
                parent = lines[0]["value"].get("parentCommit")
                if parent is not None and parent != branch["head"]:
                    return self._answer(412, {"error": "A commit has happened since. Please refresh and try again."})
                changes = {}
                for line in lines[1:]:
                    value = line.get("value", {})
                    path = value.get("path", "")
                    if not path or path.startswith("/") or ".." in path.split("/"):
                        return self._answer(400, {"error": f"bad path {path!r}"})
                    if line.get("key") == "file" and value.get("encoding") == "base64":
                        changes[path] = base64.b64decode(value["content"], validate=True)
                    elif line.get("key") == "lfsFile" and value.get("algo") == "sha256":
                        stored = hub.lfs.get(value.get("oid"))
                        if stored is None or len(stored) != value.get("size"):
                            return self._answer(422, {"error": f"Your push was rejected because an LFS pointer "
                                                               f"pointed to a file that does not exist: {path}"})
                        changes[path] = stored
                    else:
                        return self._answer(400, {"error": f"unknown line {line.get('key')!r}"})
                branch["files"].update(changes)
                branch["head"] = hashlib.sha1(body).hexdigest()
                self._answer(200, {"commitUrl": f"{hub.url}/{repo}/commit/{branch['head']}",
                                   "commitOid": branch["head"], "pullRequestUrl": None})

        return Handler
