"""Making sure the image a stage needs is on the engine: there already, pulled, or built on first use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.contract.settings import DockerSettings
from backpropagate.images.build import build_image, is_step
from backpropagate.images.recipes import RECIPES, checkout_root, image_ref


def ensure_image(client, name: str, variant: str, settings: DockerSettings, note: Callable[[str], None],
                 checkout: Callable[[], Path | None] = checkout_root) -> str:
    """The reference of an up-to-date ``name`` image on the engine, pulling or building it if missing.

    ``checkout`` finds the project checkout to build from (None for an installed wheel)."""
    from docker.errors import APIError, ImageNotFound

    recipe = RECIPES[name]
    root = checkout()
    ref = image_ref(recipe, variant, settings.base_image, root)
    try:
        client.images.get(ref)
        return ref
    except ImageNotFound:
        pass
    if settings.registry:
        remote = f"{settings.registry.rstrip('/')}/{ref}"
        note(f"pulling {remote}")
        try:
            client.images.pull(remote).tag(ref)
            return ref
        except APIError as exc:
            note(f"pull failed ({exc.explanation or exc}); building instead")
    if root is None:
        raise BackpropError("DEP_IMAGE_MISSING", stage=name, image=ref,
                            reason="this installation has no images/ folder to build it from")
    note(f"building {ref} (first use of this version; later runs reuse it)")
    return build_image(root, recipe, variant, lambda line: note(f"  {line}") if is_step(line) else None,
                       base_image=settings.base_image,
                       ca_cert=settings.ca_cert, wheelhouse=settings.wheelhouse)
