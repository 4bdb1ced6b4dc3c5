"""Extract the published chat templates of the Ollama template corpus from two pinned PyPI packages.

    python scripts/extract_chat_templates.py    # writes tests/unit/chat_templates/{llama.cpp,trl}/, corpus.json

Sources, each checked against its sha256 before anything is read:
- the llama-cpp-python 0.3.36 sdist (the pin of images/gguf-convert/llama-cpp.lock, cached in .cache/llama-cpp/ by
  scripts/setup_llama_cpp.sh): llama.cpp's models/templates/*.jinja, each named after the Hub repo it was fetched
  from, and the templates that llama.cpp's tests/test-chat-template.cpp quotes with the model they come from
  (except those it marks as modified, and its tool-call variants);
- the trl 1.16.0 wheel: trl/chat_templates/*.jinja, the originals only (not the *_training ones TRL patched).
Identical templates are kept once. The existing hand-placed fixtures (tests/unit/chat_templates/*.jinja) are
listed in corpus.json too. The special tokens are those of the model where it is known, else llama.cpp's test
defaults (<s>, </s>).
"""

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "unit" / "chat_templates"
LOCK = ROOT / "images" / "gguf-convert" / "llama-cpp.lock"
TRL = ("trl==1.16.0", "c4726e139dd40e1a41661511c639c8a68416782b2e3e8c0befebd77bb7ba0396")

# (bos, eos) of the models whose tokens are known, by a prefix of the fixture's name.
TOKENS = (("meta-llama-Llama-3", "<|begin_of_text|>", "<|eot_id|>"), ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
          ("Llama-3", "<|begin_of_text|>", "<|eot_id|>"), ("meetkai", "<|begin_of_text|>", "<|eot_id|>"),
          ("fireworks", "<|begin_of_text|>", "<|eot_id|>"), ("Qwen", "", "<|im_end|>"), ("qwen", "", "<|im_end|>"),
          ("google-gemma", "<bos>", "<eos>"), ("gemma", "<bos>", "<eos>"), ("google_gemma", "<bos>", "<eos>"),
          ("deepseek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
          ("DeepSeek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
          ("CohereForAI", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"), ("cohere", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
          ("microsoft-Phi-3", "<s>", "<|endoftext|>"), ("phi3", "<s>", "<|endoftext|>"),
          ("Phi-3", "<s>", "<|endoftext|>"), ("phi-4", "<|endoftext|>", "<|im_end|>"))
# The fixtures that were in the repo before this script: the models they come from (see the fixtures' README).
HAND_PLACED = {
    "cohere": "CohereLabs/aya-expanse-8b", "deepseekv3": "deepseek-ai/DeepSeek-V3", "gemma": "google/gemma-2-2b-it",
    "gemma3": "google/gemma-3-*-it", "llama2": "meta-llama/Llama-2-7b-chat-hf",
    "llama3": "meta-llama/Meta-Llama-3-8B-Instruct",
    "llama3_1": "meta-llama/Llama-3.1-8B-Instruct", "llama3_2": "meta-llama/Llama-3.2-1B-Instruct",
    "mistral_v0_1": "mistralai/Mistral-7B-Instruct-v0.1", "mistral_v0_2": "mistralai/Mistral-7B-Instruct-v0.2",
    "phi3": "microsoft/Phi-3-mini-4k-instruct", "phi3_5": "microsoft/Phi-3.5-mini-instruct",
    "qwen2_5": "Qwen/Qwen2.5-7B-Instruct", "qwen3": "Qwen/Qwen3-0.6B",
    "qwen3_instruct_2507": "Qwen/Qwen3-4B-Instruct-2507",
    "zephyr": "HuggingFaceH4/zephyr-7b-beta",
}


def main() -> int:
    entries: list[dict] = []
    seen: set[str] = set()
    for path in sorted(FIXTURES.glob("*.jinja")):
        origin = "TRL 1.16 trl/chat_templates/" if path.stem not in ("llama2", "mistral_v0_1", "mistral_v0_2",
                                                                     "zephyr") else "Ollama's template/index.json"
        _add(entries, seen, path.name, path.read_text(encoding="utf-8"), HAND_PLACED[path.stem],
             f"in the repo before the corpus (from {origin})", write=False)
    version, sha256 = _llama_cpp_pin()
    sdist = _fetch(f"llama-cpp-python=={version}", sha256, ROOT / ".cache" / "llama-cpp", no_binary=True)
    where = f"llama-cpp-python {version} sdist (sha256 {sha256})"
    with tarfile.open(sdist) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if "/vendor/llama.cpp/models/templates/" in member.name and member.name.endswith(".jinja"):
                name = member.name.rsplit("/", 1)[-1]
                text = tar.extractfile(member).read().decode("utf-8")
                _add(entries, seen, f"llama.cpp/{name}", text, name.removesuffix(".jinja"),
                     f"{where}: vendor/llama.cpp/models/templates/{name}")
            elif member.name.endswith("/vendor/llama.cpp/tests/test-chat-template.cpp"):
                source = tar.extractfile(member).read().decode("utf-8")
                for model, text in _test_cases(source):
                    slug = re.sub(r"[^A-Za-z0-9.]+", "-", model).strip("-")
                    _add(entries, seen, f"llama.cpp/tests-{slug}.jinja", text, model,
                         f"{where}: vendor/llama.cpp/tests/test-chat-template.cpp, the case named {model!r}")
    wheel = _fetch(TRL[0], TRL[1], ROOT / ".cache" / "trl", no_binary=False)
    with zipfile.ZipFile(wheel) as archive:
        readme = archive.read("trl/chat_templates/README.md").decode("utf-8")
        for name in sorted(archive.namelist()):
            stem = name.rsplit("/", 1)[-1].removesuffix(".jinja")
            if name.startswith("trl/chat_templates/") and name.endswith(".jinja") and not stem.endswith("_training"):
                shipped = re.search(rf"### `{re.escape(stem)}\.jinja`\n\n[^\n]*?shipped by `([^`]+)`", readme)
                _add(entries, seen, f"trl/{stem}.jinja", archive.read(name).decode("utf-8"),
                     shipped.group(1) if shipped else f"TRL's {stem}",
                     f"trl 1.16.0 wheel (sha256 {TRL[1]}): {name}")
    (FIXTURES / "corpus.json").write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(entries)} templates in {FIXTURES / 'corpus.json'}")
    return 0


def _add(entries: list[dict], seen: set[str], file: str, text: str, model: str, source: str,
         write: bool = True) -> None:
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest in seen:
        return
    seen.add(digest)
    if write:
        (FIXTURES / file).parent.mkdir(parents=True, exist_ok=True)
        (FIXTURES / file).write_text(text, encoding="utf-8")
    stem = file.rsplit("/", 1)[-1].removeprefix("tests-")
    bos, eos = next(((b, e) for prefix, b, e in TOKENS if stem.startswith(prefix)), ("<s>", "</s>"))
    entries.append({"file": file, "model": model, "source": source, "sha256": digest, "bos_token": bos,
                    "eos_token": eos})


def _test_cases(source: str) -> list[tuple[str, str]]:
    """(model, template) for each case of test-chat-template.cpp that quotes a published template as it is."""
    cases = []
    literal = r'"((?:[^"\\]|\\.)*)"'
    pattern = re.compile(r"/\* \.name= \*/\s*" + literal + r",.*?/\* \.template_str=? \*/\s*(?:U8C\()?" + literal, re.S)
    for match in pattern.finditer(source):
        name = _c_string(match.group(1))
        if "modified" in name or "tool call" in name or name == "Orca-Vicuna":
            continue
        cases.append((re.sub(r"\s*\(.*\)$", "", name), _c_string(match.group(2))))
    return cases


def _c_string(literal: str) -> str:
    """The text of a C string literal's body: \\n, \\t, \\", \\\\ (what these tests use)."""
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes[m.group(1)], literal)


def _llama_cpp_pin() -> tuple[str, str]:
    line = LOCK.read_text().splitlines()[-1]
    match = re.match(r"llama-cpp-python==(\S+) --hash=sha256:([0-9a-f]{64})", line)
    return match.group(1), match.group(2)


def _fetch(requirement: str, sha256: str, cache: Path, no_binary: bool) -> Path:
    """The package file from the cache, else downloaded with pip; refused unless its sha256 is the pinned one."""
    name, version = requirement.split("==")
    found = [p for p in cache.glob(f"{name.replace('-', '_')}-{version}*") if p.suffix in (".gz", ".whl")]
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        options = ["--no-binary", ":all:"] if no_binary else ["--only-binary", ":all:"]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *options, requirement,
                        "-d", str(cache)], check=True)
        found = [p for p in cache.glob(f"{name.replace('-', '_')}-{version}*") if p.suffix in (".gz", ".whl")]
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{found[0]}: sha256 {digest} is not the pinned {sha256}")
    return found[0]


if __name__ == "__main__":
    sys.exit(main())
