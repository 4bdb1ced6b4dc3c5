"""Rendering a page: the templates, and what every page is given (its CSRF token, whether a login is on)."""

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from backpropagate.output import for_people
from backpropagate.ui.auth import COOKIE

# Jinja2's HTML autoescaping is on for .html templates: every value a user or a run supplied is escaped.
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
# A run stopped on request (Stop, Ctrl-C) is `interrupted` in the history; people read "stopped", not a failure.
STATUS_WORDS = {"interrupted": "stopped"}
TEMPLATES.env.filters["status_word"] = lambda status: STATUS_WORDS.get(status, status)
TEMPLATES.env.filters["for_people"] = for_people  # recorded values rounded as the CLI shows them


def render(request: Request, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
    session = request.scope["state"]["session"]
    full = {"csrf": session.csrf, "auth": request.app.state.config.credentials is not None, **context}
    return TEMPLATES.TemplateResponse(request, template, full, status_code=status_code)


def cookie_header(sid: str, secure: bool) -> str:
    return f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
