"""The eval stage as a recipe: load the base and the run's adapter, measure, write quality.json.

    python -m backpropagate_stages.eval --spec output/<run_id>/eval.spec.json

Held-out loss of the base (adapter off) and of the fine-tune, on the given eval data, else on the
run's own held-out split (the same seeded split training made); greedy answers of both to the eval
prompts. It replaces the run's quality.json.
"""

import logging
from pathlib import Path

from backpropagate.contract import events
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.layout import RunFolder
from backpropagate.contract.quality import QualityReport, load_prompts, split_held_out, write_report
from backpropagate.contract.settings import LoraSettings
from backpropagate.contract.specs import EvalResult, EvalSpec

from backpropagate_stages.eval import quality
from backpropagate_stages.train import data, model

log = logging.getLogger("backpropagate.eval")


def run(spec: EvalSpec, emit) -> EvalResult:
    device = model.resolve_device(spec.training.device, LoraSettings())
    tokenizer = model.load_tokenizer(spec.model)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = data.CHATML_TEMPLATE  # as training used it
    held_out, source = _held_out(spec, tokenizer)
    prompts = load_prompts(spec.eval_prompts.path, spec.eval_prompts.source) if spec.eval_prompts else []
    if not held_out and not prompts:
        raise BackpropError("CONFIG_VALUE_INVALID", name="--eval-data", value=None,
                            reason=f"run {spec.run_id} has no held-out rows and no eval prompts were given",
                            allowed="a dataset file (--eval-data FILE) and/or prompts (--eval-prompts FILE)")
    fine_tune = _load(spec, device)
    losses = []
    if held_out:
        with fine_tune.disable_adapter():
            losses.append([0, quality.held_out_loss(fine_tune, held_out, tokenizer.pad_token_id, device)])
        losses.append([spec.training.steps, quality.held_out_loss(fine_tune, held_out, tokenizer.pad_token_id,
                                                                  device)])
        for step, loss in losses:
            emit(events.Metric(key="eval_loss", value=loss, step=step))
    answers = []
    if prompts:
        limit = spec.training.eval_max_tokens
        answers = quality.answered(prompts, quality.answer(fine_tune, tokenizer, prompts, limit, device, adapter=False),
                                   quality.answer(fine_tune, tokenizer, prompts, limit, device))
    report = QualityReport(eval_source=source, eval_examples=len(held_out), eval_loss=losses, answers=answers)
    write_report(RunFolder(Path(spec.run_dir)).quality, report)
    return EvalResult(quality=report.summary())


def _held_out(spec: EvalSpec, tokenizer) -> tuple[list, str]:
    settings = spec.training
    if spec.eval_data is not None:
        return (quality.tokenize_file(spec.eval_data, tokenizer, settings.max_seq_length, settings.train_on_inputs),
                spec.eval_data.source)
    if spec.data is None or not settings.eval_split:
        return [], ""
    examples = quality.tokenize_file(spec.data, tokenizer, settings.max_seq_length, settings.train_on_inputs)
    held = split_held_out(examples, settings.eval_split, settings.seed)[1] if len(examples) > 1 else []
    return held, f"{len(held)} of {len(examples)} examples of {spec.data.source} held out (the run's --eval-split)"


def _load(spec: EvalSpec, device):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    try:
        base = AutoModelForCausalLM.from_pretrained(spec.model, dtype=torch.float32).to(device)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors... all mean "cannot load"
        raise BackpropError("DEP_MODEL_LOAD_FAILED", model=spec.model, reason=str(exc).splitlines()[0]) from None
    return PeftModel.from_pretrained(base, spec.adapter)
