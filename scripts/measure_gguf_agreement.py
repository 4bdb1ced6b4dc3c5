"""Top-1 agreement and perplexity change of each GGUF type against the Hugging Face model, on a dataset's rows.

The figures behind the thresholds in stages/backpropagate_stages/gguf/verify.py. The model folder is
converted and quantized once per type with the stage's own pinned llama.cpp and checked with the
stage's own verify.compare, on the same rows an export verifies on (the first 16, through the chat
template). Give it a fine-tune's merged/ folder, or a base model.

    python scripts/measure_gguf_agreement.py --model models/smollm2-135m-instruct --data examples/quickstart.jsonl
    python scripts/measure_gguf_agreement.py --model output/RUN/merged --data my.jsonl --types q8_0,q4_k_m --json
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path


def measure(model: Path, data: Path, types: list[str]) -> list[dict]:
    from backpropagate.contract.dataset import load_dataset
    from transformers import AutoTokenizer

    from backpropagate_stages.gguf import llama_tools, verify

    log = logging.getLogger("measure_gguf_agreement")
    tokenizer = AutoTokenizer.from_pretrained(model)
    cases = verify.verification_cases(tokenizer, list(load_dataset(data, skip_invalid=True).examples))
    rows = []
    with tempfile.TemporaryDirectory(prefix="gguf_agreement_") as work:
        f16 = Path(work) / "model-f16.gguf"
        llama_tools.convert(model, f16, "f16", log)
        for quantization in types:
            target = Path(work) / f"model-{quantization}.gguf"
            if quantization in llama_tools.CONVERTER_TYPES and quantization != "f16":
                llama_tools.convert(model, target, quantization, log)
            elif quantization != "f16":
                llama_tools.quantize(f16, target, quantization)
            result = verify.compare(f16 if quantization == "f16" else target, model, cases, quantization)
            rows.append({key: result[key] for key in ("quantization", "predictions", "top1_agreement",
                                                      "perplexity_gguf", "perplexity_merged", "passed")}
                        | {"perplexity_change": round(result["perplexity_gguf"] / result["perplexity_merged"] - 1, 4)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a Hugging Face folder (a run's merged/)")
    parser.add_argument("--data", type=Path, required=True, help="the rows to verify on (a run's data)")
    parser.add_argument("--types", default="q8_0,q6_k,q4_k_m", help="comma-separated GGUF types")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    rows = measure(args.model, args.data, [t.strip() for t in args.types.split(",") if t.strip()])
    if args.json:
        print(json.dumps({"model": str(args.model), "data": str(args.data), "types": rows}))
        return 0
    print(f"model {args.model}, rows of {args.data}")
    print(f"{'type':8} {'predictions':>11} {'top-1':>7} {'ppl gguf':>9} {'ppl hf':>8} {'change':>7}")
    for row in rows:
        print(f"{row['quantization']:8} {row['predictions']:>11} {row['top1_agreement']:>7.2%} "
              f"{row['perplexity_gguf']:>9.3f} {row['perplexity_merged']:>8.3f} {row['perplexity_change']:>+7.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
