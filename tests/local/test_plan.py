"""`backprop plan` against the real thing: transformers' own models of the presets' shapes, and `train`
showing the plan before it trains the tiny model."""

import pytest

from backpropagate.planning.presets import presets

from tests.conftest import ROOT, run_cli


@pytest.mark.parametrize("name", sorted(presets()))
def test_each_presets_shape_has_the_parameters_and_linear_layers_transformers_builds(name):
    """The preset's config, built by transformers on the meta device (no memory, no weights): the plan
    counts the same parameters and offers LoRA the same linear layers."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    preset = presets()[name]
    config = AutoConfig.for_model(**preset.config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == preset.shape.parameters()
    linears = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert sorted(linears - {"lm_head"}) == preset.shape.linear_names()


def test_train_shows_the_plan_before_the_first_step(tiny_model, tmp_path):
    result = run_cli("train", "--data", str(ROOT / "examples" / "quickstart.jsonl"), "--model", str(tiny_model),
                     "--device", "cpu", "--steps", "1", "--output", str(tmp_path), "--report-to", "none",
                     "--checkpoint-every", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    plan = next(i for i, line in enumerate(lines) if line.startswith("plan: peak memory about"))
    first_step = next(i for i, line in enumerate(lines) if line.startswith("train step 1/1"))
    assert plan < first_step
    assert "fits the RAM available now" in lines[plan]
