"""Top-1 agreement and perplexity change of each GGUF type against the Hugging Face model, and what quantizing
does to each tensor.

The figures behind the limits in stages/backpropagate_stages/gguf/verify.py. Each model folder is converted
and quantized once per type with the stage's own pinned llama.cpp and checked with the stage's own
verify.compare on two sets of texts: the rows an export verifies on (drawn from every --data file, through
the chat template; a campaign gives one file per run) and verify.FALLBACK_TEXTS, what an export with no data
verifies on. With --base, each model's tensors are also set against the base's: the largest absolute value
and the norm (outliers a fine-tune may add), and the relative error that each type leaves in them.

    python scripts/measure_gguf_agreement.py --model models/smollm2-135m-instruct --data examples/quickstart.jsonl
    python scripts/measure_gguf_agreement.py --base models/smollm2-135m-instruct \\
        --model base=models/smollm2-135m-instruct --model campaign=output/CAMPAIGN/merged \\
        --data output/CAMPAIGN/data --json
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

TEXTS = ("rows", "fallback")


def measure(model: Path, data: list[Path], types: list[str], work: Path, base_f16: Path | None = None,
            exported: dict[str, Path] | None = None) -> dict:
    """Agreement and perplexity per type and texts, and (with ``base_f16``) the tensors against the base.

    ``exported`` (type -> GGUF file) checks GGUFs an export already wrote instead of converting the model.
    """
    from transformers import AutoTokenizer

    from backpropagate_stages.gguf import llama_tools, verify
    from backpropagate_stages.gguf.run import read_datasets

    log = logging.getLogger("measure_gguf_agreement")
    tokenizer = AutoTokenizer.from_pretrained(model)
    cases = {"rows": verify.verification_cases(tokenizer, read_datasets(data)),
             "fallback": verify.verification_cases(tokenizer, [])}
    rows, files = [], dict(exported or {})
    if not files:
        work.mkdir(parents=True, exist_ok=True)
        files["f16"] = work / "model-f16.gguf"
        llama_tools.convert(model, files["f16"], "f16", log)
    for quantization in types if not exported else list(files):
        target = files.get(quantization)
        if target is None:
            target = files[quantization] = work / f"model-{quantization}.gguf"
            if quantization in llama_tools.CONVERTER_TYPES:
                llama_tools.convert(model, target, quantization, log)
            else:
                llama_tools.quantize(files["f16"], target, quantization)
        for texts in TEXTS:
            result = verify.compare(target, model, cases[texts], quantization)
            rows.append({"texts": texts} | {key: result[key] for key in (
                "quantization", "predictions", "top1_agreement", "perplexity_gguf", "perplexity_merged", "passed")}
                | {"perplexity_change": round(result["perplexity_gguf"] / result["perplexity_merged"] - 1, 4)})
    measured = {"model": str(model), "data": [str(path) for path in data], "types": rows}
    if base_f16 is not None and "f16" in files:
        measured["tensors"] = tensors_against_base(files["f16"], base_f16, files)
    return measured


def tensors_against_base(f16: Path, base_f16: Path, quantized: dict[str, Path]) -> dict:
    """Per tensor: largest |w| and norm over the base's, how far it moved, and each type's relative error."""
    import numpy as np

    ours, base = _tensors(f16), _tensors(base_f16)
    max_ratio = {name: float(np.abs(w).max() / np.abs(base[name]).max()) for name, w in ours.items()}
    norm_ratio = {name: float(np.linalg.norm(w) / np.linalg.norm(base[name])) for name, w in ours.items()}
    moved = {name: float(np.linalg.norm(w - base[name]) / np.linalg.norm(base[name])) for name, w in ours.items()}
    errors = {}
    for quantization, path in quantized.items():
        if quantization == "f16":
            continue
        rounded = _tensors(path)
        errors[quantization] = {name: float(np.linalg.norm(rounded[name] - w) / np.linalg.norm(w))
                                for name, w in ours.items()}
    worst = max(max_ratio, key=max_ratio.get)
    return {
        "tensors": len(ours),
        "largest_max_ratio": {"tensor": worst, "ratio": round(max_ratio[worst], 4)},
        "median_max_ratio": round(float(np.median(list(max_ratio.values()))), 4),
        "largest_norm_ratio": round(max(norm_ratio.values()), 4),
        "median_moved": round(float(np.median(list(moved.values()))), 5),
        "largest_moved": round(max(moved.values()), 5),
        "quantization_error": {q: {"median": round(float(np.median(list(e.values()))), 5),
                                   "largest": round(max(e.values()), 5)} for q, e in errors.items()},
    }


def _tensors(path: Path) -> dict:
    """Every 2-D weight of a GGUF as float32, dequantized."""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    return {t.name: dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
            for t in GGUFReader(path).tensors if len(t.shape) == 2}


def _named(value: str) -> tuple[str, Path]:
    label, _, path = value.rpartition("=")
    return label or Path(path).name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=_named, action="append", required=True,
                        help="a Hugging Face folder (a merged/ folder), as PATH or LABEL=PATH; repeat for more")
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="the rows to verify on: a dataset file or a campaign's data/ folder; repeat for more")
    parser.add_argument("--base", type=Path, help="the base model folder: compare every model's tensors to it")
    parser.add_argument("--types", default="f16,q8_0,q6_k,q4_k_m", help="comma-separated GGUF types")
    parser.add_argument("--gguf", type=_named, action="append", default=[],
                        help="check this exported GGUF (TYPE=FILE) against the one --model instead of converting")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    measured = {}
    with tempfile.TemporaryDirectory(prefix="gguf_agreement_") as work:
        base_f16 = None
        if args.base is not None:
            from backpropagate_stages.gguf import llama_tools

            base_f16 = Path(work) / "base-f16.gguf"
            llama_tools.convert(args.base, base_f16, "f16", logging.getLogger("measure_gguf_agreement"))
        for n, (label, model) in enumerate(args.model):
            measured[label] = measure(model, args.data, types, Path(work) / str(n), base_f16,
                                      {quantization: path for quantization, path in args.gguf})
    if args.json:
        print(json.dumps(measured))
        return 0
    for label, figures in measured.items():
        print(f"{label}: {figures['model']}, verified on {', '.join(figures['data'])}")
        print(f"  {'texts':8} {'type':7} {'predictions':>11} {'top-1':>7} {'ppl gguf':>9} {'ppl hf':>8} {'change':>7}")
        for row in figures["types"]:
            print(f"  {row['texts']:8} {row['quantization']:7} {row['predictions']:>11} {row['top1_agreement']:>7.2%} "
                  f"{row['perplexity_gguf']:>9.3f} {row['perplexity_merged']:>8.3f} {row['perplexity_change']:>+7.2%}")
        if "tensors" in figures:
            print(f"  tensors against the base: {json.dumps(figures['tensors'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
