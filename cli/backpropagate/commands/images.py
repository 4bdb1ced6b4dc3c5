"""`backprop images build|ls`: the pinned stage images on this Docker engine."""

from typing import Annotated

import typer

from backpropagate.commands._options import JsonOpt
from backpropagate.config import load_settings
from backpropagate.contract.errors import BackpropError
from backpropagate.images.recipes import RECIPES, build_plan, checkout_root, recipe_for
from backpropagate.output import Output

EXAMPLES = """
Examples:

  backprop images build   # every stage, CPU variant

  backprop images build train --variant cuda

  backprop images build --base-image my-python:3.11 --ca-cert /etc/ssl/certs/ca-certificates.crt

  backprop images ls --json
"""

app = typer.Typer(help="Build and list the stage images (train, merge, gguf-convert) and the web UI's (ui).",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("build", epilog=EXAMPLES)
def build(
    stages: Annotated[list[str] | None, typer.Argument(help="Stages to build: " + ", ".join(RECIPES) +
                                                            " [default all].")] = None,
    variant: Annotated[str, typer.Option(help="cpu or cuda (cuda exists for train; the others are CPU only).")
                       ] = "cpu",
    base_image: Annotated[str | None, typer.Option(help="Base image instead of the pinned python:3.11-slim "
                                                        "[env BACKPROPAGATE_DOCKER__BASE_IMAGE].")] = None,
    ca_cert: Annotated[str | None, typer.Option(help="CA certificate for pip behind a TLS-intercepting proxy; "
                                                     "a build secret, never in the image "
                                                     "[env BACKPROPAGATE_DOCKER__CA_CERT].")] = None,
    wheelhouse: Annotated[str | None, typer.Option(help="Folder of wheels pip may install from (offline builds, "
                                                        "torch's CPU build) [env BACKPROPAGATE_DOCKER__WHEELHOUSE].")
                          ] = None,
    json_output: JsonOpt = None,
) -> None:
    """Build stage images from this checkout's images/ folder."""
    from backpropagate.images.build import build_image, is_step
    from backpropagate.runtimes.engine import connect

    settings = load_settings(overrides={"log_json": json_output, "docker.base_image": base_image,
                                        "docker.ca_cert": ca_cert, "docker.wheelhouse": wheelhouse})
    out = Output(json_mode=settings.log_json)
    recipes = [recipe_for(name) for name in (stages or list(RECIPES))]
    root = checkout_root()
    if root is None:
        raise BackpropError("DEP_IMAGE_MISSING", stage=", ".join(r.name for r in recipes), image="(any)",
                            reason="this installation has no images/ folder to build from")
    connect()
    built = []
    for recipe, chosen in build_plan(recipes, variant):
        out.note(f"building {recipe.name} ({chosen})")
        ref = build_image(root, recipe, chosen, lambda line: out.note(f"  {line}") if is_step(line) else None,
                          base_image=settings.docker.base_image,
                          ca_cert=settings.docker.ca_cert, wheelhouse=settings.docker.wheelhouse)
        built.append({"stage": recipe.name, "variant": chosen, "image": ref})
    out.result("\n".join(f"{item['stage']:<13} {item['image']}" for item in built), {"images": built})


@app.command("ls")
def ls(json_output: JsonOpt = None) -> None:
    """Each stage's image for this version: present, stale (an older build is here) or missing."""
    from backpropagate.images.status import image_statuses
    from backpropagate.runtimes.engine import connect

    settings = load_settings(overrides={"log_json": json_output})
    rows = [{key: value for key, value in vars(status).items() if value not in (None, ())}
            for status in image_statuses(connect(), settings.docker.base_image)]
    text = "\n".join(f"{r['stage']:<13} {r['variant']:<5} {r['status']:<8} {r['image']}"
                     + (f"  {r['size_mb']:,} MB" if "size_mb" in r else "") for r in rows)
    Output(json_mode=settings.log_json).result(text, {"images": rows})
