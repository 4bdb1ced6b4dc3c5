"""Train-stage throughput: backpropagate's train stage against TRL's SFTTrainer with packing.

    python scripts/bench_train.py                       # under a minute on 2 idle CPU cores
    python scripts/bench_train.py --repeat 3            # each side three times, alternating; medians and their ratio
    python scripts/bench_train.py --steps 60 --batch-size 4 --max-length 1024 --json
    python scripts/bench_train.py --model models/smollm2-135m-instruct --steps 8 --examples 100 --repeat 3

Builds the tiny Llama model (scripts/make_tiny_model.py), or takes --model (a Hugging Face folder with a
ChatML template, such as scripts/fetch_model.py's SmolLM2), and a synthetic chat dataset of
mixed lengths (OpenAI `messages` rows) in a temp folder, then trains the same LoRA adapter
twice, each in its own process, with the same model, rows, sequence length, batch, steps,
LoRA rank/alpha/dropout/targets, learning-rate schedule, seed and loss mask (replies only):

- ours: `backprop train --json` through the real CLI;
- TRL: `SFTTrainer` with `packing=True` and TRL's default packing strategy.

Both count the tokens that are not padding fed through the model during the timed
optimizer steps, and time only those steps (fetching and collating the batch included;
model loading and dataset preparation excluded). End-to-end wall times are shown too.

TRL's default "bfd" packing turns on padding-free batches: each batch becomes one sequence of
batch x max-length tokens. Without FlashAttention's varlen kernels (on CPU, say) attention then
spans the whole batch under a block mask, where ours attends within each row; that cost is
part of what TRL's figure measures here.
Run it on an otherwise idle machine: torch's threads spin-wait, so any busy neighbour
distorts the figures.
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "cli")]
LORA = {"r": 16, "alpha": 32}
LEARNING_RATE, WARMUP_STEPS = 2e-4, 5
WORDS = """cat dog bird fish horse river lake hill road bridge house garden field forest city town school market
table chair door window book letter song story boat ship train apple bread cheese milk water stone cloud storm
island castle tower lamp candle basket small big red blue green old new quick slow happy quiet warm cold bright
dark tall soft heavy gentle brave clever busy sees likes finds makes holds carries paints watches follows""".split()
# ChatML as the tiny model's own template renders it, with the {% generation %} markers TRL needs for
# assistant_only_loss; the marked span matches what our stage trains on (reply plus <|im_end|>).
TRL_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>\\n' }}{% endgeneration %}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def sentences(rng: random.Random, count: int) -> str:
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
                    for _ in range(count))


def make_dataset(path: Path, examples: int, seed: int) -> None:
    """Conversations from one line to several hundred tokens, so packing has something to do."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for _ in range(examples):
            messages = [{"role": "system", "content": sentences(rng, 1)}] if rng.random() < 0.3 else []
            # Mostly short replies with a long tail, as in real chat data.
            reply = rng.choice([1, 1, 2, 2, 3, 4, 6, 10, 16, 24])
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                messages.append({"role": "user", "content": sentences(rng, rng.randint(1, 3))})
                messages.append({"role": "assistant", "content": sentences(rng, max(1, reply + rng.randint(-1, 1)))})
            out.write(json.dumps({"messages": messages}) + "\n")


def run_ours(args, model: Path, data: Path, work: Path) -> dict:
    command = [sys.executable, "-m", "backpropagate", "train", "--data", str(data), "--model", str(model),
               "--steps", str(args.steps), "--device", "cpu", "--runtime", "local", "--report-to", "none",
               "--output", str(work / "runs"), "--json",
               "--batch-size", str(args.batch_size), "--gradient-accumulation", "1",
               "--max-seq-length", str(args.max_length), "--lora-r", str(LORA["r"]),
               "--lora-alpha", str(LORA["alpha"]), "--lora-dropout", str(args.lora_dropout),
               "--lora-targets", "all-linear", "--learning-rate", str(LEARNING_RATE),
               "--warmup-steps", str(WARMUP_STEPS), "--lr-scheduler", "cosine", "--packing",
               "--checkpoint-every", "0", "--seed", str(args.seed), "--unsloth", "off"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"backprop train failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    result = lines[-1]["result"]
    # The stage reports the tokens it fed (padding excluded) and the seconds its optimizer steps took.
    return {"name": "backpropagate", "tokens": result["tokens"], "seconds": result["train_seconds"],
            "steps": result["steps"], "wall_s": wall, "mean_loss": sum(result["losses"]) / len(result["losses"])}


def run_trl(args, model: Path, data: Path, work: Path) -> dict:
    """Run TRL in a fresh process, like ours, so neither inherits the other's threads or caches."""
    command = [sys.executable, __file__, "--trl-worker", str(model), str(data), str(work),
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
               "--seed", str(args.seed), "--lora-dropout", str(args.lora_dropout)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"TRL run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall}


def trl_worker(args, model_dir: str, data: str, work: str) -> None:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    meter = {"tokens": 0, "seconds": 0.0, "began": 0.0}

    class TimedTrainer(SFTTrainer):
        # The trainer fetches and collates a step's batches before on_step_begin; ours does it inside
        # its timed step, so time the fetch here and count the tokens as they go to the model.
        def get_batch_samples(self, *a, **kw):
            began = time.perf_counter()
            batches, items = super().get_batch_samples(*a, **kw)
            meter["seconds"] += time.perf_counter() - began
            meter["tokens"] += sum(real_tokens(b) for b in batches)
            return batches, items

    def real_tokens(batch) -> int:
        # A padded batch marks its padding in the attention mask; a padding-free one has none to count.
        # (Counting ids != pad would miss real tokens where pad is <|im_end|>, as in SmolLM2.)
        if "attention_mask" in batch:
            return int(batch["attention_mask"].sum())
        return batch["input_ids"].numel()

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            meter["began"] = time.perf_counter()

        def on_step_end(self, *_, **__):
            meter["seconds"] += time.perf_counter() - meter["began"]

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = TRL_TEMPLATE
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = SFTConfig(
        output_dir=work + "/trl", max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1, max_length=args.max_length, packing=True,
        assistant_only_loss=True, learning_rate=LEARNING_RATE, lr_scheduler_type="cosine",
        warmup_steps=WARMUP_STEPS, weight_decay=0.0, max_grad_norm=1.0, seed=args.seed,
        # TRL 1.16 defaults to bf16 and activation (gradient) checkpointing, which fail or slow down on CPU.
        bf16=False, fp16=False, activation_checkpointing=False, use_cpu=True, report_to="none",
        save_strategy="no", logging_steps=args.steps, dataloader_num_workers=0, disable_tqdm=True)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=args.lora_dropout,
                             target_modules="all-linear", bias="none", task_type="CAUSAL_LM")
    dataset = load_dataset("json", data_files=data, split="train")
    trainer = TimedTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                           peft_config=peft_config, callbacks=[StepTimer()])
    output = trainer.train()
    print(json.dumps({"name": f"TRL SFTTrainer (packing_strategy={config.packing_strategy}, "
                              f"padding_free={trainer.padding_free})",
                      "tokens": meter["tokens"], "seconds": meter["seconds"], "steps": trainer.state.global_step,
                      "mean_loss": output.training_loss}))


def report(args, ours: list[dict], trl: list[dict]) -> dict:
    """Each side's median tokens/s over its runs, and the ratio of the medians."""
    def side(runs: list[dict]) -> dict:
        rates = [run["tokens"] / run["seconds"] for run in runs]
        middle = runs[rates.index(statistics.median_high(rates))]
        return {**middle, "tokens_per_s": statistics.median(rates), "tokens_per_s_runs": rates}

    runs = {run["name"]: run for run in (side(ours), side(trl))}
    ours_rate, trl_rate = (runs[name]["tokens_per_s"] for name in (ours[0]["name"], trl[0]["name"]))
    return {"model": str(args.model or "tiny-llama (built)"), "steps": args.steps, "batch_size": args.batch_size,
            "max_length": args.max_length, "examples": args.examples, "seed": args.seed,
            "lora_dropout": args.lora_dropout, "repeat": args.repeat, "runs": runs,
            "ratio_ours_over_trl": ours_rate / trl_rate}


def print_table(figures: dict) -> None:
    print(f"model {figures['model']}")
    print(f"steps {figures['steps']}, rows/batch {figures['batch_size']}, grad accumulation 1, "
          f"max length {figures['max_length']}, {figures['examples']} examples, seed {figures['seed']}, "
          f"LoRA r {LORA['r']} alpha {LORA['alpha']} dropout {figures['lora_dropout']} all-linear")
    print(f"{'':58} {'tokens':>8} {'train s':>8} {'tokens/s':>9} {'mean loss':>9} {'wall s':>7}")
    for name, run in figures["runs"].items():
        print(f"{name:58} {run['tokens']:>8} {run['seconds']:>8.2f} {run['tokens_per_s']:>9.0f} "
              f"{run['mean_loss']:>9.3f} {run['wall_s']:>7.1f}")
    if figures["repeat"] > 1:
        for name, run in figures["runs"].items():
            print(f"{name[:40]} tokens/s of each run: {', '.join(f'{rate:.0f}' for rate in run['tokens_per_s_runs'])}")
    median = " (medians)" if figures["repeat"] > 1 else ""
    print(f"ours / TRL tokens/s{median}: {figures['ratio_ours_over_trl']:.2f}x")


def default_dropout() -> float:
    from backpropagate.contract.settings import LoraSettings

    return LoraSettings().dropout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lora-dropout", type=float, default=default_dropout(), help="default: the train stage's")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating; the figures are medians")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--model", type=Path, help="a Hugging Face folder to train (default: the tiny Llama, built)")
    parser.add_argument("--trl-worker", nargs=3, help=argparse.SUPPRESS)  # MODEL DATA WORK, internal
    args = parser.parse_args(argv)
    if args.trl_worker:
        trl_worker(args, *args.trl_worker)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        model, data = args.model or work / "tiny-llama", work / "chat.jsonl"
        if args.model is None:
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), "--arch", "llama",
                            "--out", str(model)], check=True, capture_output=True)
        make_dataset(data, args.examples, args.seed)
        ours, trl = [], []
        for _ in range(args.repeat):  # alternating, so a slow minute of the machine falls on both sides
            ours.append(run_ours(args, model, data, work))
            trl.append(run_trl(args, model, data, work))
        figures = report(args, ours, trl)
    if args.json:
        print(json.dumps(figures))
    else:
        print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
