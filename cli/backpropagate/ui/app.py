"""The Starlette app: configuration, the guard every request passes, and the route table.

The guard refuses a Host header the no-login UI does not answer to (DNS rebinding), gives
each visitor a session cookie, answers 401 with the login page where
credentials are required, and refuses any POST whose form lacks the session's CSRF token.
"""

import asyncio
import hmac
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from backpropagate.ui import routes_campaigns, routes_compare, routes_export, routes_runs, routes_session, routes_train
from backpropagate.ui.auth import COOKIE, Credentials, LoginLimiter, Sessions
from backpropagate.ui.hosts import AllowedHosts
from backpropagate.ui.jobs import Jobs
from backpropagate.ui.pages import cookie_header, render
from backpropagate.ui.sandbox import Sandbox

HERE = Path(__file__).parent
OPEN_PATHS = ("/login", "/static/")  # reachable before logging in
MAX_FORM_BYTES = 64 * 1024  # a form without a file: a few fields


@dataclass(frozen=True)
class UiConfig:
    sandbox: Sandbox
    credentials: Credentials | None
    max_upload_bytes: int = 50 * 1024 * 1024
    runtime: str = "auto"  # the runtime the new-run form starts with
    default_model: str = ""
    secure_cookie: bool = False  # set when served behind HTTPS
    allowed_hosts: AllowedHosts | None = None  # the Host headers answered; None: any (a login guards it)


def create_app(config: UiConfig) -> Starlette:
    routes = [
        Route("/login", routes_session.login_page, methods=["GET"]),
        Route("/login", routes_session.login, methods=["POST"]),
        Route("/logout", routes_session.logout, methods=["POST"]),
        Route("/", routes_runs.runs_page),
        Route("/runs/new", routes_train.new_run_page, methods=["GET"]),
        Route("/runs/new", routes_train.start_run, methods=["POST"]),
        Route("/datasets", routes_train.upload_dataset, methods=["POST"]),
        Route("/datasets/preview", routes_train.preview_dataset, methods=["POST"]),
        Route("/runs/plan", routes_train.plan_page, methods=["POST"]),
        Route("/compare", routes_compare.compare_page),
        Route("/campaigns/new", routes_train.start_campaign, methods=["POST"]),
        Route("/campaigns/{campaign_id}", routes_campaigns.campaign_page),
        Route("/runs/{run_id}", routes_runs.run_page),
        Route("/runs/{run_id}/events", routes_runs.run_events),
        Route("/runs/{run_id}/log", routes_runs.run_log),
        Route("/runs/{run_id}/files/{path:path}", routes_runs.run_file),
        Route("/runs/{run_id}/stop", routes_runs.stop_run, methods=["POST"]),
        Route("/runs/{run_id}/resume", routes_runs.resume_run, methods=["POST"]),
        Route("/runs/{run_id}/replay", routes_train.replay_run, methods=["POST"]),
        Route("/runs/{run_id}/export", routes_export.start_export, methods=["POST"]),
        Route("/runs/{run_id}/ollama", routes_export.register_ollama, methods=["POST"]),
        Route("/runs/{run_id}/chat", routes_export.chat, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[])
    app.state.config = config
    app.state.sessions = Sessions(config.credentials)
    app.state.limiter = LoginLimiter()
    app.state.jobs = Jobs(config.sandbox.root)
    app.state.chat_lock = asyncio.Lock()  # one generation at a time
    app.add_middleware(_Guard)
    return app


class _Guard:
    """Session cookie, login and CSRF, before any route runs (pure ASGI, so SSE streams pass untouched)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        state = request.app.state
        allowed = state.config.allowed_hosts
        if allowed is not None and not allowed.accepts(request.headers.get("host")):
            # Before any session or token exists: a rebound page learns nothing it could replay.
            await HTMLResponse("<h1>421: wrong host</h1><p>This UI answers only to the address it was started "
                               "on, such as http://127.0.0.1.</p>", status_code=421)(scope, receive, send)
            return
        sid = request.cookies.get(COOKIE)
        session = state.sessions.get(sid)
        new_sid = None
        if session is None:
            new_sid, session = state.sessions.new()
            sid = new_sid
        scope.setdefault("state", {})
        scope["state"]["sid"], scope["state"]["session"] = sid, session
        path = scope["path"]
        response: Response | None = None
        if _is_small_form(request):
            body = await _read_capped(request, MAX_FORM_BYTES)
            if body is None:
                await HTMLResponse("<h1>413: form too large</h1>", status_code=413)(scope, receive, send)
                return
            receive = _replaying(body, receive)
        else:
            body = b""
        if not session.logged_in and not path.startswith(OPEN_PATHS):
            response = render(request, "login.html", {"error": None, "next": path}, status_code=401)
        elif request.method == "POST" and not _csrf_ok(request, body, session.csrf):
            response = HTMLResponse("<h1>403: form refused</h1><p>Its CSRF token is missing or stale: reload the "
                                    "page and send the form again.</p>", status_code=403)
        if response is not None:
            if new_sid:
                response.headers.append("set-cookie", cookie_header(new_sid, state.config.secure_cookie))
            await response(scope, receive, send)
            return

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start" and new_sid:
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", cookie_header(new_sid, state.config.secure_cookie).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _is_small_form(request: Request) -> bool:
    """A POST whose body the guard reads itself (to find the token), then replays to the route."""
    return request.method == "POST" and not request.headers.get("content-type", "").startswith("multipart/form-data")


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` (whatever Content-Length claims, or without one)."""
    if int(request.headers.get("content-length") or 0) > limit:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body


def _replaying(body: bytes, receive_more):
    """The body once, then the client's own messages: a streamed answer to a form must still hear the
    client go away, not be told it left as soon as the form was read."""
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive_more()

    return receive


def _csrf_ok(request: Request, body: bytes, expected: str) -> bool:
    """The token from the X-CSRF-Token header, the form's `csrf` field or (uploads) the action URL's."""
    given = request.headers.get("x-csrf-token")
    if given is None:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            given = request.query_params.get("csrf")  # so an upload is not parsed before it is allowed
        else:
            given = (parse_qs(body.decode("latin-1")).get("csrf") or [None])[0]
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
