"""Logging in and out: the login form, the credential check and the failed-login limit."""

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from backpropagate.ui.auth import COOKIE
from backpropagate.ui.pages import cookie_header, render


def login_page(request: Request) -> Response:
    if request.scope["state"]["session"].logged_in:
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", {"error": None, "next": "/"})


async def login(request: Request) -> Response:
    state = request.app.state
    client = request.client.host if request.client else "unknown"
    wait = state.limiter.blocked_for(client)
    if wait:
        return render(request, "login.html", {"error": f"Too many failed logins: try again in {wait:.0f} s.",
                                              "next": "/"}, status_code=429)
    form = await request.form()
    credentials = state.config.credentials
    if credentials is None:
        return RedirectResponse("/", status_code=303)
    if not credentials.accepts(str(form.get("user", "")), str(form.get("password", ""))):
        state.limiter.failed(client)
        return render(request, "login.html", {"error": "Wrong user or password.", "next": "/"}, status_code=401)
    sid = state.sessions.log_in(request.scope["state"]["sid"])
    target = str(form.get("next") or "/")
    response = RedirectResponse(target if target.startswith("/") and not target.startswith("//") else "/",
                                status_code=303)
    response.headers.append("set-cookie", cookie_header(sid, state.config.secure_cookie))
    return response


async def logout(request: Request) -> Response:
    request.app.state.sessions.log_out(request.scope["state"]["sid"])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
