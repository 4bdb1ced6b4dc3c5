"""Building a stage image: assemble its context, run BuildKit through the `docker` CLI, tag it.

BuildKit, because the CA certificate of a TLS-intercepting proxy is passed as a build secret: it
exists only while pip runs and never lands in a layer. The Docker SDK builds with the legacy
builder only, so this runs the CLI: ``docker buildx build --load`` where buildx is installed, else
a pre-23 client with DOCKER_BUILDKIT=1 (its built-in BuildKit, e.g. Debian's docker.io 20.10).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

from backpropagate.contract.errors import BackpropError
from backpropagate.images.recipes import Recipe, context_files, image_ref, parent_ref


def buildkit_command() -> tuple[list[str], dict[str, str]]:
    """The command that starts a BuildKit build, and the environment it needs."""
    candidates = []
    for candidate in (shutil.which("docker"), "/usr/bin/docker"):
        if candidate and os.path.exists(candidate) and candidate not in candidates:
            candidates.append(candidate)
    for docker in candidates:
        if _succeeds([docker, "buildx", "version"]):
            return [docker, "buildx", "build", "--load"], {}
        version = subprocess.run([docker, "version", "--format", "{{.Client.Version}}"], capture_output=True,
                                 text=True).stdout.strip()
        major = re.match(r"(\d+)\.", version)
        if major and int(major.group(1)) < 23:
            return [docker, "build"], {"DOCKER_BUILDKIT": "1"}
    raise BackpropError("RUNTIME_IMAGE_BUILD_FAILED", image="the stage images",
                        reason="no docker CLI here can build with BuildKit (install docker-buildx, or the `docker` "
                               "CLI of Docker Desktop / docker-ce)")


def _succeeds(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def build_image(root: Path, recipe: Recipe, variant: str, on_line: Callable[[str], None], base_image: str = "",
                ca_cert: str = "", wheelhouse: str = "") -> str:
    """Build ``recipe``'s image for ``variant``; returns its reference. The CA certificate is a secret."""
    ref = image_ref(recipe, variant, base_image, root)
    command, env = buildkit_command()
    if ca_cert and not Path(ca_cert).is_file():
        raise BackpropError("CONFIG_VALUE_INVALID", name="--ca-cert", value=ca_cert, reason="no such file",
                            allowed="a PEM file of CA certificates")
    if wheelhouse and not Path(wheelhouse).is_dir():
        raise BackpropError("CONFIG_VALUE_INVALID", name="--wheelhouse", value=wheelhouse, reason="no such folder",
                            allowed="a folder of .whl files")
    with tempfile.TemporaryDirectory(prefix=f"backprop-{recipe.name}-") as context:
        _assemble(Path(context), context_files(root, recipe, variant), wheelhouse)
        # Also tagged <version>-<variant>: the name compose.yaml and registries use for this version.
        alias = ref.rsplit("-", 1)[0]
        arguments = [*command, "--progress=plain", "--tag", ref, "--tag", alias,
                     "--label", f"backpropagate.variant={variant}",
                     "--label", f"backpropagate.stage={recipe.name}"]
        if base_image:
            # One base for both stages of a Dockerfile that has a build stage: it must hold a compiler.
            arguments += ["--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", f"BUILD_IMAGE={base_image}"]
        if recipe.parent:
            arguments += ["--build-arg", f"PARENT_IMAGE={parent_ref(recipe, variant, base_image, root)}"]
        if variant != "cpu" or wheelhouse:
            arguments += ["--build-arg", "TORCH_INDEX="]  # PyPI's torch (CUDA), or the wheelhouse's CPU build
        if ca_cert:
            arguments += ["--secret", f"id=ca,src={Path(ca_cert).resolve()}"]
        arguments.append(context)
        tail: deque[str] = deque(maxlen=15)
        with tempfile.NamedTemporaryFile("w", prefix=f"backprop-build-{recipe.name}-", suffix=".log", delete=False,
                                         encoding="utf-8") as log:
            log_path = log.name
            process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       errors="replace", env={**os.environ, **env})
            for line in process.stdout:
                log.write(line)
                tail.append(line.rstrip())
                on_line(line.rstrip())
        if process.wait() != 0:
            errors = [line for line in tail if "error" in line.lower()] or list(tail)
            reason = errors[-1] if errors else f"exit code {process.returncode}"
            raise BackpropError("RUNTIME_IMAGE_BUILD_FAILED", image=ref, reason=f"{reason[-300:]} (full log: {log_path})")
    return ref


def is_step(line: str) -> bool:
    """A BuildKit step header (``#7 [3/6] RUN pip install ...``): the lines worth showing as progress."""
    return re.match(r"#\d+ \[", line) is not None


def _assemble(context: Path, files: list[tuple[str, Path]], wheelhouse: str) -> None:
    for name, source in files:
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    wheels = context / "wheelhouse"
    wheels.mkdir()
    if wheelhouse:
        for wheel in Path(wheelhouse).glob("*.whl"):
            _link_or_copy(wheel, wheels / wheel.name)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # wheels can be large; a hard link costs nothing on the same filesystem
    except OSError:
        shutil.copyfile(source, target)
