"""The stage images: what goes into each one, and the tag that names exactly those inputs.

An image is built from ``images/<name>/`` (Dockerfile and locked requirements) plus the project's
code, which every image carries (stages import the host package's shared definitions). The tag is
``<version>-<variant>-<hash>``, the hash covering every input file and the base image, so the
CLI knows an image is stale when any of them changed, and builds or pulls the one it needs.
An image with a parent (the web UI's, on the train image) is built FROM that image's exact tag,
which its own hash covers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import backpropagate
from backpropagate import __version__
from backpropagate.contract.errors import BackpropError

REPOSITORY = "backpropagate/{name}"


@dataclass(frozen=True)
class Recipe:
    name: str  # the folder under images/, and the image repository's last part
    locks: dict[str, str]  # variant -> lock file in that folder, copied into the context as requirements.lock
    extra_files: tuple[str, ...] = ()  # more files of that folder the Dockerfile copies
    parent: str = ""  # a recipe whose image (same variant) this one is built FROM, as PARENT_IMAGE


RECIPES: dict[str, Recipe] = {
    "train": Recipe("train", {"cpu": "requirements-cpu.lock", "cuda": "requirements-cuda.lock"}),
    "merge": Recipe("merge", {"cpu": "requirements.lock"}),
    "gguf-convert": Recipe("gguf-convert", {"cpu": "requirements.lock"},
                           extra_files=("requirements-build.lock", "llama-cpp.lock")),
    # `backprop ui` with its stages in-process: the train image's layers plus the ui extra.
    "ui": Recipe("ui", {"cpu": "requirements.lock"}, parent="train"),
}


def checkout_root() -> Path | None:
    """The project checkout this CLI runs from (it holds images/), or None for an installed wheel."""
    root = Path(backpropagate.__file__).resolve().parents[2]
    return root if (root / "images").is_dir() and (root / "pyproject.toml").exists() else None


def context_files(root: Path, recipe: Recipe, variant: str) -> list[tuple[str, Path]]:
    """(name in the build context, file here) for every input of the image, in a stable order."""
    if variant not in recipe.locks:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--variant", value=variant,
                            reason=f"the {recipe.name} image has no such variant",
                            allowed=" or ".join(recipe.locks))
    folder = root / "images" / recipe.name
    files = [("Dockerfile", folder / "Dockerfile"), ("requirements.lock", folder / recipe.locks[variant])]
    files += [(extra, folder / extra) for extra in recipe.extra_files]
    for package in ("cli", "stages"):
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append((f"backpropagate/{package}/{path.relative_to(root / package).as_posix()}", path))
    return files


def image_ref(recipe: Recipe, variant: str, base_image: str = "", root: Path | None = None) -> str:
    """``backpropagate/<name>:<version>-<variant>-<hash of inputs>``; without a checkout, the release
    tag ``<version>-<variant>`` (what a registry holds)."""
    root = root or checkout_root()
    repository = REPOSITORY.format(name=recipe.name)
    if root is None:
        return f"{repository}:{__version__}-{variant}"
    digest = hashlib.sha256(f"base={base_image}\n".encode())
    if recipe.parent:
        digest.update(f"parent={parent_ref(recipe, variant, base_image, root)}\n".encode())
    for name, path in context_files(root, recipe, variant):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f"{repository}:{__version__}-{variant}-{digest.hexdigest()[:12]}"


def parent_ref(recipe: Recipe, variant: str, base_image: str = "", root: Path | None = None) -> str:
    """The exact image ``recipe`` is built FROM ("" for one built from the base image)."""
    return image_ref(RECIPES[recipe.parent], variant, base_image, root) if recipe.parent else ""


def build_plan(recipes: list[Recipe], variant: str) -> list[tuple[Recipe, str]]:
    """(recipe, variant) to build, in order: each image's parent first, each pair once. A recipe without
    ``variant`` is built as cpu (only train has cuda), and so is the parent it is built FROM."""
    plan: list[tuple[Recipe, str]] = []
    for recipe in recipes:
        chosen = variant if variant in recipe.locks else "cpu"
        for needed in ([RECIPES[recipe.parent]] if recipe.parent else []) + [recipe]:
            if (needed, chosen) not in plan:
                plan.append((needed, chosen))
    return plan


def recipe_for(name: str) -> Recipe:
    if name not in RECIPES:
        raise BackpropError("CONFIG_VALUE_INVALID", name="STAGE", value=name, reason="not a stage image",
                            allowed=", ".join(RECIPES))
    return RECIPES[name]
