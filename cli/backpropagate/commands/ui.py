"""`backprop ui`: the web UI, where runs are started, followed, stopped and exported in a browser."""

import importlib.util
import ipaddress
import socket
from pathlib import Path
from typing import Annotated

import typer

from backpropagate.commands._options import setting_option
from backpropagate.config import load_settings
from backpropagate.options import option_for
from backpropagate.contract.errors import BackpropError

EXAMPLES = """
Examples:

  backprop ui   # http://127.0.0.1:7862, this machine only

  backprop ui --port 7860 --runtime local --output ~/ui-runs

  backprop ui --host 0.0.0.0 --auth-file ~/.backpropagate/ui-auth   # other machines, with a login

  backprop ui --share --auth me:a-long-password
"""


RUNTIME = option_for("runtime")
# The `ui` extra of pyproject.toml, package -> the module it installs (a unit test holds the two equal).
UI_PACKAGES = {"starlette": "starlette", "uvicorn": "uvicorn", "python-multipart": "python_multipart"}


def check_ui_extra() -> None:
    """Refuse to start without the `ui` extra: a missing python-multipart would otherwise answer every upload
    with a bare 500, long after the UI seemed to start."""
    missing = [package for package, module in UI_PACKAGES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise BackpropError("DEP_UI_EXTRA_MISSING", packages=", ".join(missing),
                            verb="is" if len(missing) == 1 else "are")


def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7862,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --auth.")
                    ] = "127.0.0.1",
    auth: Annotated[str | None, typer.Option(help="USER:PASSWORD for the login page (shows in `ps`: prefer "
                                                  "--auth-file).")] = None,
    auth_file: Annotated[Path | None, typer.Option(help="A file holding one line USER:PASSWORD.")] = None,
    share: Annotated[bool, typer.Option("--share", help="Listen on every interface and print the addresses "
                                                        "(needs --auth; no public tunnel is made).")] = False,
    runtime: Annotated[str | None, typer.Option(metavar="|".join(RUNTIME.choices),
                                                help=f"Runtime the new-run form starts with [default "
                                                     f"{RUNTIME.default}; env {RUNTIME.env}].")] = None,
    max_upload_mb: Annotated[int, typer.Option(min=1, help="Largest dataset upload, in MB.")] = 50,
    output: setting_option(option_for("ui.output_dir")) = None,
) -> None:
    """Serve the web UI: start runs, follow their loss live, stop, export and register them."""
    check_ui_extra()
    if auth and auth_file:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--auth-file", value=str(auth_file),
                            reason="--auth already gives the credentials", allowed="one of --auth or --auth-file")
    listen = "0.0.0.0" if share else host
    credentials = _credentials(auth, auth_file)
    settings = load_settings(overrides={"runtime": runtime, "ui.output_dir": str(output) if output else None},
                             names={"ui.output_dir": "--output"})
    # Inside a container the UI must listen on 0.0.0.0 for a published port to reach it, and it cannot
    # see whether that port is published on 127.0.0.1 only: the operator says so (compose.yaml does).
    behind_loopback = host == "0.0.0.0" and not share and settings.ui.published_on_loopback
    exposed = share or not (_is_loopback(host) or behind_loopback)
    if exposed and credentials is None:
        raise BackpropError("INPUT_AUTH_REQUIRED", option="--share" if share else f"--host {host}")

    # The web stack is imported here only: `backprop --help` and every other command stay without it.
    import uvicorn

    from backpropagate.ui.app import UiConfig, create_app
    from backpropagate.ui.hosts import AllowedHosts
    from backpropagate.ui.sandbox import Sandbox

    sandbox = Sandbox(Path(settings.ui.output_dir))
    # Without a login, only the UI's own loopback names are answered (a rebound DNS name is not).
    allowed_hosts = None if credentials else AllowedHosts.loopback(host, None if behind_loopback else port)
    config = UiConfig(sandbox=sandbox, credentials=credentials, max_upload_bytes=max_upload_mb * 1024 * 1024,
                      runtime=settings.runtime, default_model=settings.model.name, allowed_hosts=allowed_hosts)
    app = create_app(config)
    for address in _addresses(listen):
        print(f"backprop ui: http://{address}:{port}  (folder {sandbox.root})", flush=True)
    if behind_loopback and credentials is None:
        print("backprop ui: no login: BACKPROPAGATE_UI__PUBLISHED_ON_LOOPBACK=1 says this port is published on "
              "127.0.0.1 only", flush=True)
    if share:
        print("backprop ui: --share listens on every interface; a public tunnel needs an outside service",
              flush=True)
    try:
        # uvicorn would take X-Forwarded-For from any local process as the client (its default trusts
        # 127.0.0.1), and the failed-login limit keys on the client: only configured proxies are believed.
        proxies = settings.ui.trusted_proxies.strip()
        uvicorn.run(app, host=listen, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                    proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)
    finally:
        app.state.jobs.stop_all()  # like Ctrl-C in each run's terminal: they end as `interrupted`


def _credentials(auth: str | None, auth_file: Path | None):
    from backpropagate.ui.auth import parse_credentials, read_auth_file

    if auth:
        return parse_credentials(auth, "--auth")
    if auth_file:
        return read_auth_file(auth_file.expanduser())
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _addresses(listen: str) -> list[str]:
    if listen != "0.0.0.0":
        return [listen]
    found = {"127.0.0.1"}
    try:
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        pass
    return sorted(found)
