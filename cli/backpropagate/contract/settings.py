"""The settings sections a run is made of: model, training, LoRA, Docker.

The train spec embeds ``TrainingSettings`` and ``LoraSettings``, so the host that
writes a spec and the stage that reads it share these definitions. How they are
resolved (defaults, environment, flags) lives in the host's ``config.py``.

This is also the one declaration of a run's options: a field with a ``flag`` is a flag of
`train` and `multi-run`, a keyword of the Python API, a field of the web UI's form and a row
of docs/reference/settings.md, with the help, default and limits written here.
"""

from dataclasses import dataclass
from typing import Literal

from backpropagate.contract.schema import at_least, between, field, fraction, positive

SEED_MAX = 2**32 - 1
LORA_R_MAX = 4096

# The headings options are listed under, in this order (help panels, form sections, docs). Options of the
# Campaign group belong to `multi-run` (and the API's ``multi_run``) only: a single run has no earlier runs.
CAMPAIGN_GROUP = "Campaign"
GROUPS = ("Basics", "LoRA", "Optimisation", "Reliability", "Evaluation", "Tracking", "Runtime", CAMPAIGN_GROUP)


@dataclass(frozen=True)
class ModelSettings:
    name: str = field("", help="Base model: a preset (`backprop presets`), hub id or local folder.", flag="--model",
                     short="-m", group="Basics")

# Positions whose logits exist at once in the train stage's loss (and in `backprop plan`'s arithmetic).
# At a 152k vocabulary that is 0.3 GB of fp32 logits, where the whole batch at 4 x 2048 tokens would be
# 5 GB (and as much again for their gradient).
LOSS_CHUNK_TOKENS = 512


@dataclass(frozen=True)
class TrainingSettings:
    steps: int = field(100, check=at_least(1), allowed="an integer of at least 1", help="Optimizer steps.",
                       flag="--steps", group="Basics")
    batch_size: int = field(2, check=at_least(1), allowed="an integer of at least 1", help="Rows per micro-batch.",
                            flag="--batch-size", group="Optimisation")
    gradient_accumulation: int = field(4, check=at_least(1), allowed="an integer of at least 1",
                                       help="Micro-batches per step.", flag="--gradient-accumulation",
                                       group="Optimisation")
    learning_rate: float = field(2e-4, check=positive, allowed="a number greater than 0, such as 2e-4",
                                 help="Peak learning rate.", flag="--learning-rate", group="Optimisation")
    lr_scheduler: Literal["cosine", "linear", "constant"] = field(
        "cosine", help="Learning-rate schedule after warmup.", flag="--lr-scheduler", group="Optimisation")
    warmup_steps: int = field(5, check=at_least(0), allowed="an integer of at least 0", help="Linear warmup steps.",
                              flag="--warmup-steps", group="Optimisation")
    weight_decay: float = field(0.0, check=at_least(0.0), allowed="a number of at least 0",
                                help="AdamW weight decay.", flag="--weight-decay", group="Optimisation")
    max_grad_norm: float = field(1.0, check=positive, allowed="a number greater than 0",
                                 help="Gradient clipping norm.", flag="--max-grad-norm", group="Optimisation")
    max_seq_length: int = field(1024, check=at_least(16), allowed="an integer of at least 16",
                                help="Tokens per row; longer examples are cut.", flag="--max-seq-length",
                                group="Optimisation")
    packing: bool = field(True, help="Pack several examples per row.", flag="--packing/--no-packing",
                          group="Optimisation")
    train_on_inputs: bool = field(False, help="Also take loss on prompts (off: on replies only).",
                                  flag="--train-on-inputs/--train-on-replies", group="Optimisation")
    # The range every seeded library takes (numpy's is the narrowest); a larger one fails inside torch.
    seed: int = field(42, check=between(0, SEED_MAX), allowed=f"an integer from 0 to {SEED_MAX}",
                      help="Seed for adapter init and data order.", flag="--seed", group="Optimisation")
    device: Literal["auto", "cpu", "cuda"] = field(
        "auto", help="Where training runs: auto is the GPU, or the CPU (with a warning) where there is none; cuda "
        "never falls back.", flag="--device", group="Runtime")
    checkpoint_every: int = field(50, check=at_least(0), allowed="an integer of at least 0 (0 turns checkpoints off)",
                                  help="Steps between checkpoints, 0 for none.", flag="--checkpoint-every",
                                  group="Reliability")
    keep_checkpoints: int = field(3, check=at_least(1), allowed="an integer of at least 1", help="Checkpoints kept.",
                                  flag="--keep-checkpoints", group="Reliability")
    unsloth: Literal["auto", "on", "off"] = field(
        "auto", help="Unsloth kernels: auto (when installed, on a GPU, for a supported model), on or off.",
        flag="--unsloth", group="Optimisation")
    oom_recovery: bool = field(True, help="On out-of-memory, halve the micro-batch and double accumulation, "
                               "up to 3 times.", flag="--oom-recovery/--no-oom-recovery", group="Reliability")
    memory_limit_gb: float = field(0.0, check=at_least(0.0), allowed="GiB as a number of at least 0 (0: the device's own)",
                                   help="Refuse a run whose planned peak memory exceeds this many GiB; 0: the device's "
                                        "own (the GPU's memory, or the RAM available for a CPU run).",
                                   flag="--memory-limit-gb", group="Reliability")
    checkpoint_on_interrupt: bool = field(False, help="On Ctrl-C, save a checkpoint after the current step.",
                                          flag="--checkpoint-on-interrupt/--no-checkpoint-on-interrupt",
                                          group="Reliability")
    # Quality report: held-out loss every eval_every steps (0: before and after only), and answers.
    eval_every: int = field(0, check=at_least(0), allowed="an integer of at least 0 (0: before and after only)",
                            help="Steps between held-out evaluations (0: before and after only).",
                            flag="--eval-every", group="Evaluation")
    eval_split: float = field(0.0, check=fraction, allowed="a fraction in [0, 1), such as 0.1",
                              help="Hold out this fraction of --data (seeded; 0: none).", flag="--eval-split",
                              group="Evaluation")
    eval_max_tokens: int = field(48, check=at_least(1), allowed="an integer of at least 1",
                                 help="Length of the eval prompts' answers in tokens.", flag="--eval-max-tokens",
                                 group="Evaluation")
    # Thermal guard (NVML): pause between steps at pause_c, go on at resume_c, give up after timeout_s.
    thermal_pause_c: float = field(85.0, check=positive, allowed="degrees Celsius greater than 0",
                                   help="Pause between steps at this GPU temperature.", flag="--thermal-pause-c",
                                   group="Reliability")
    thermal_resume_c: float = field(75.0, check=positive, allowed="degrees Celsius greater than 0",
                                    help="Go on below this temperature.", flag="--thermal-resume-c",
                                    group="Reliability")
    thermal_timeout_s: float = field(900.0, check=positive, allowed="seconds greater than 0",
                                     help="Fail if still hot after this long.", flag="--thermal-timeout-s",
                                     group="Reliability")
    thermal_poll_s: float = field(5.0, check=positive, allowed="seconds greater than 0",
                                  help="Seconds between readings while paused.", flag="--thermal-poll-s",
                                  group="Reliability")


@dataclass(frozen=True)
class LoraSettings:
    preset: Literal["quality", "fast"] | None = field(
        None, allowed="quality or fast", help="quality (rank 256, all linear layers) or fast (rank 16, "
        "q_proj,v_proj); explicit LoRA flags win over it.", flag="--lora-preset", group="LoRA")
    # A rank past any model's width only allocates memory until the process dies.
    r: int = field(16, check=between(1, LORA_R_MAX), allowed=f"an integer from 1 to {LORA_R_MAX}", help="LoRA rank.",
                   flag="--lora-r", group="LoRA")
    alpha: int = field(32, check=at_least(1), allowed="an integer of at least 1", help="LoRA alpha.",
                       flag="--lora-alpha", group="LoRA")
    # 0 as Unsloth defaults: dropout's random masks cost a fifth of a CPU step, and short runs gain little from them.
    dropout: float = field(0.0, check=fraction, allowed="a number in [0, 1)", help="LoRA dropout.",
                           flag="--lora-dropout", group="LoRA")
    targets: tuple[str, ...] = field(("all-linear",), allowed="module names such as q_proj,v_proj, or all-linear",
                                     help="Comma-separated module names, or all-linear.", flag="--lora-targets",
                                     group="LoRA")
    dora: bool = field(False, help="Weight-decomposed LoRA (DoRA).", flag="--dora/--no-dora", group="LoRA")
    qlora: bool = field(False, help="Load the base in 4 bits (bitsandbytes; CUDA only); when not given, a preset's method.",
                        flag="--qlora/--no-qlora",
                        group="LoRA")


# Each earlier run keeps at most this many of its rows for later runs to replay (a seeded sample, drawn once):
# a fixed memory per task, as replay methods of continual learning keep, so every earlier run stays as likely
# to be replayed however large its file was, and a long campaign's data files do not grow with its history.
REPLAY_ROWS_PER_RUN = 1000


@dataclass(frozen=True)
class CampaignSettings:
    # 1 by default: on the continual benchmark (docs/measurements.md) SLAO alone still lost the first fact sets,
    # and SLAO with as many replayed rows as new ones kept them, with the best ACC and a BWT near 0.
    replay_fraction: float = field(
        1.0, check=between(0.0, 1.0), allowed="a fraction from 0 to 1, such as 0.2",
        help="Rows from earlier runs mixed into each run from run 2 on, as a share of the run's own rows "
             "(0.2: 100 rows of its own and 20 replayed); drawn with --seed, evenly over the earlier runs; "
             "0: none, each run on its own rows only.",
        flag="--replay", keyword="replay_fraction", group=CAMPAIGN_GROUP)


@dataclass(frozen=True)
class DockerSettings:
    gpus: str = field("auto", help="GPUs for the train container: auto, all, none, a count, or device ids such as 0,1.",
                      flag="--gpus", group="Runtime")
    base_image: str = field("", help="base image for image builds (default: the one each Dockerfile pins)")
    ca_cert: str = field("", help="CA certificate file for image builds behind a TLS-intercepting proxy")
    wheelhouse: str = field("", help="folder of wheels that image builds may install from")
    registry: str = field("", help="registry to pull stage images from, such as ghcr.io/me")
