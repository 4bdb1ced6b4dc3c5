"""The settings sections a run is made of: model, training, LoRA, Docker.

The train spec embeds ``TrainingSettings`` and ``LoraSettings``, so the host that
writes a spec and the stage that reads it share these definitions. How they are
resolved (defaults, environment, flags) lives in the host's ``config.py``.
"""

from dataclasses import dataclass
from typing import Literal

from backpropagate.contract.schema import at_least, between, field, fraction, positive

SEED_MAX = 2**32 - 1
LORA_R_MAX = 4096


@dataclass(frozen=True)
class ModelSettings:
    name: str = field("", help="hub id or local folder of the base model")

# Positions whose logits exist at once in the train stage's loss (and in `backprop plan`'s arithmetic).
# At a 152k vocabulary that is 0.3 GB of fp32 logits, where the whole batch at 4 x 2048 tokens would be
# 5 GB (and as much again for their gradient).
LOSS_CHUNK_TOKENS = 512


@dataclass(frozen=True)
class TrainingSettings:
    steps: int = field(100, check=at_least(1), allowed="an integer of at least 1")
    batch_size: int = field(2, check=at_least(1), allowed="an integer of at least 1")
    gradient_accumulation: int = field(4, check=at_least(1), allowed="an integer of at least 1")
    learning_rate: float = field(2e-4, check=positive, allowed="a number greater than 0, such as 2e-4")
    lr_scheduler: Literal["cosine", "linear", "constant"] = field("cosine")
    warmup_steps: int = field(5, check=at_least(0), allowed="an integer of at least 0")
    weight_decay: float = field(0.0, check=at_least(0.0), allowed="a number of at least 0")
    max_grad_norm: float = field(1.0, check=positive, allowed="a number greater than 0")
    max_seq_length: int = field(1024, check=at_least(16), allowed="an integer of at least 16")
    packing: bool = field(True)
    train_on_inputs: bool = field(False)
    # The range every seeded library takes (numpy's is the narrowest); a larger one fails inside torch.
    seed: int = field(42, check=between(0, SEED_MAX), allowed=f"an integer from 0 to {SEED_MAX}")
    device: Literal["auto", "cpu", "cuda"] = field("auto")
    checkpoint_every: int = field(50, check=at_least(0), allowed="an integer of at least 0 (0 turns checkpoints off)")
    keep_checkpoints: int = field(3, check=at_least(1), allowed="an integer of at least 1")
    unsloth: Literal["auto", "on", "off"] = field("auto")
    oom_recovery: bool = field(True, help="on out-of-memory, halve the micro-batch and double accumulation")
    memory_limit_gb: float = field(0.0, check=at_least(0.0),
                                   allowed="GiB as a number of at least 0 (0: the device's own)",
                                   help="refuse a run whose planned peak memory exceeds this many GiB; 0: the device's "
                                        "own (the GPU's memory, or the RAM available for a CPU run)")
    checkpoint_on_interrupt: bool = field(False)
    # Quality report: held-out loss every eval_every steps (0: before and after only), and answers.
    eval_every: int = field(0, check=at_least(0), allowed="an integer of at least 0 (0: before and after only)")
    eval_split: float = field(0.0, check=fraction, allowed="a fraction in [0, 1), such as 0.1")
    eval_max_tokens: int = field(48, check=at_least(1), allowed="an integer of at least 1")
    # Thermal guard (NVML): pause between steps at pause_c, go on at resume_c, give up after timeout_s.
    thermal_pause_c: float = field(85.0, check=positive, allowed="degrees Celsius greater than 0")
    thermal_resume_c: float = field(75.0, check=positive, allowed="degrees Celsius greater than 0")
    thermal_timeout_s: float = field(900.0, check=positive, allowed="seconds greater than 0")
    thermal_poll_s: float = field(5.0, check=positive, allowed="seconds greater than 0")


@dataclass(frozen=True)
class LoraSettings:
    preset: Literal["quality", "fast"] | None = field(None, allowed="quality or fast")
    # A rank past any model's width only allocates memory until the process dies.
    r: int = field(16, check=between(1, LORA_R_MAX), allowed=f"an integer from 1 to {LORA_R_MAX}")
    alpha: int = field(32, check=at_least(1), allowed="an integer of at least 1")
    dropout: float = field(0.05, check=fraction, allowed="a number in [0, 1)")
    targets: tuple[str, ...] = field(("all-linear",), allowed="module names such as q_proj,v_proj, or all-linear")
    dora: bool = field(False)
    qlora: bool = field(False)


@dataclass(frozen=True)
class DockerSettings:
    gpus: str = field("auto", help="GPUs for stage containers: auto, all, none, a count, or device ids such as 0,1")
    base_image: str = field("", help="base image for image builds (default: the one each Dockerfile pins)")
    ca_cert: str = field("", help="CA certificate file for image builds behind a TLS-intercepting proxy")
    wheelhouse: str = field("", help="folder of wheels that image builds may install from")
    registry: str = field("", help="registry to pull stage images from, such as ghcr.io/me")
