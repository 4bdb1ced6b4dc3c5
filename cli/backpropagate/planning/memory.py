"""Peak memory of a training run, from the model's shape and the run's settings alone.

The arithmetic follows what the train stage does (stages/backpropagate_stages/train/):

- weights: fp32 on the CPU; bf16 on CUDA. QLoRA stores each decoder linear layer in NF4 with
  double quantization (half a byte per weight, one byte of scale per 64 weights, and a float per
  256 of those), and PEFT's prepare_model_for_kbit_training casts every other parameter (the
  embedding, an untied head, the norms) to fp32.
- the adapter: rank x (fan-in + fan-out) per adapted layer, in fp32 (PEFT keeps adapters in fp32),
  plus as much again for its gradient and twice that for AdamW's two moments.
- activations, per token of a micro-batch (batch size x max sequence length, the worst case a
  packed row reaches): what autograd keeps per decoder layer. Plain LoRA trains without gradient
  checkpointing; QLoRA trains with it (prepare_model_for_kbit_training turns it on), keeping only
  each layer's input plus one layer's activations while it is recomputed.
- the chunked loss: at most LOSS_CHUNK_TOKENS positions' logits exist at once: in the compute
  dtype, their fp32 copy, log-softmax and its gradient on CUDA; on the CPU the logits are fp32
  already, so three buffers of them (log-softmax, its gradient, the logits' gradient) is the most.

What the CPU estimate adds, because a CPU run is measured by the process's resident memory (RSS), not
by what torch allocates:

- the runtime: the train process itself, with torch, transformers and PEFT imported, their code paged
  in by a training step, and the data (384 MiB: the peak RSS of the train stage training the tiny
  model on 1 x 32-token rows, 397 MiB, less this plan's other parts for that run); and the tokenizer
  (1,150 bytes per vocabulary entry: loading SmolLM2's 49,152 entries took 56 MiB, the tiny model's
  1,024 took 3 MiB). Both measured on Debian 12, CPython 3.11, torch 2.13 CPU, transformers 5.23.
- the allocator's slack: glibc does not hand back freed memory that lies below the top of its heap.
  The largest blocks a decoder layer's forward pass frees are the three temporaries of the MLP's
  intermediate width that each adapted gate and up projection makes (the base layer's output, the
  adapter's output, its scaled copy). Once they are freed, the next layer's narrower tensors split
  those holes, so its own wide temporaries no longer fit there and go on top of the heap: three such
  blocks per adapted projection and layer stay free but resident. A block of 32 MiB or more is mapped
  on its own and unmapped when freed, so it leaves no hole. (Seen in the stage's heap figures and the
  allocations' addresses: scripts/where_peak_memory.py, docs/measurements.md.)

On CUDA neither applies: the context and the caching allocator's reserve, which
torch.cuda.max_memory_allocated does not count, are kept aside as headroom instead (device.py).

Each figure is bytes. tests/unit/test_plan_memory.py checks them against hand-computed values;
scripts/measure_plan.py against the peak RSS of real CPU runs (docs/measurements.md).
"""

from dataclasses import dataclass

from backpropagate.contract.settings import LOSS_CHUNK_TOKENS
from backpropagate.planning.shape import ModelShape

RUNTIME_CPU_BYTES = 384 * 2**20  # the train process with no model to speak of
TOKENIZER_BYTES_PER_ENTRY = 1150  # RSS a loaded tokenizer adds per vocabulary entry
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc on 64-bit: blocks this big are mapped alone and unmapped when freed
MLP_INPUTS = {"gate_proj", "up_proj", "gate_up_proj"}  # the projections to the MLP's intermediate width
ATTENTION_INPUTS = {"q_proj", "k_proj", "v_proj", "qkv_proj"}
OWN_INPUTS = {"o_proj", "down_proj"}  # their inputs are attention's output and the MLP's product, counted anyway
NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weights, fp8 block scales, fp32 scales of scales


@dataclass(frozen=True)
class RunShape:
    """What of a run decides its memory."""

    batch_size: int
    seq_len: int
    lora_r: int
    targets: tuple[str, ...]  # module names, or ("all-linear",)
    qlora: bool
    device: str  # "cpu" | "cuda"
    dropout: bool = True  # LoRA dropout above 0 keeps a dropped copy of each adapted layer's input
    dora: bool = False

    @property
    def dtype_bytes(self) -> int:
        return 4 if self.device == "cpu" else 2

    @property
    def tokens(self) -> int:
        return self.batch_size * self.seq_len


@dataclass(frozen=True)
class MemoryPlan:
    """Peak memory, broken down; ``peak`` is their sum."""

    weights: int
    lora: int
    gradients: int
    optimizer: int
    activations: int
    loss_chunk: int
    runtime: int
    allocator_slack: int
    gradient_checkpointing: bool
    activations_other_way: int  # activations had gradient checkpointing been the other way

    @property
    def peak(self) -> int:
        return (self.weights + self.lora + self.gradients + self.optimizer + self.activations + self.loss_chunk
                + self.runtime + self.allocator_slack)

    def parts(self) -> dict[str, int]:
        return {"weights": self.weights, "lora": self.lora, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations, "loss_chunk": self.loss_chunk,
                "runtime": self.runtime, "allocator_slack": self.allocator_slack}


def adapted(shape: ModelShape, run: RunShape) -> list:
    """The linear layers of one decoder layer that carry an adapter."""
    if run.targets == ("all-linear",):
        return shape.linears()
    return [linear for linear in shape.linears() if linear.name in run.targets]


def lora_parameters(shape: ModelShape, run: RunShape) -> int:
    per_layer = sum(run.lora_r * (lin.fan_in + lin.fan_out) + (lin.fan_out if run.dora else 0)
                    for lin in adapted(shape, run))
    return shape.layers * per_layer


def weight_bytes(shape: ModelShape, run: RunShape) -> int:
    linear = shape.layers * shape.layer_linear_parameters()
    rest = shape.embedding_parameters() + shape.other_parameters()
    if run.qlora:
        return round(linear * NF4_BYTES_PER_WEIGHT) + rest * 4
    return (linear + rest) * run.dtype_bytes


def layer_activation_bytes(shape: ModelShape, run: RunShape) -> int:
    """Bytes autograd keeps per token for one decoder layer (no gradient checkpointing).

    Counted from the layer as PEFT and transformers run it (and checked against the tensors autograd
    saves on SmolLM2-135M): the inputs of the two RMSNorms; for each adapted layer its dropped-out input
    and the dropout mask (without dropout the adapters keep the input they share) and its rank-r
    projection; attention's query, key, value and output at full head count (SDPA gets keys and values
    repeated per query head) with its fp32 log-sum-exp; the MLP's gate, up and activation at the
    intermediate width; and the attention mask, one row of it per token, which every layer keeps.
    """
    h, i, q = shape.hidden, shape.intermediate, shape.q_width
    layers = adapted(shape, run)
    if run.dropout:
        inputs = 2 * sum(lin.fan_in for lin in layers)
    else:  # the adapters of attention share one normed input, those of the MLP the other
        shared = {lin.name in ATTENTION_INPUTS for lin in layers if lin.name not in OWN_INPUTS}
        inputs = h * len(shared) + sum(lin.fan_in for lin in layers if lin.name in OWN_INPUTS)
    elements = 2 * h + inputs + len(layers) * run.lora_r + 4 * q + 3 * i + run.seq_len
    return elements * run.dtype_bytes + 4 * shape.heads


def activation_bytes(shape: ModelShape, run: RunShape, checkpointing: bool) -> int:
    """Activations of one micro-batch at its peak, the backward pass's working set included."""
    t, p = run.tokens, run.dtype_bytes
    per_layer = layer_activation_bytes(shape, run)
    kept = shape.layers * (shape.hidden * p if checkpointing else per_layer)
    recomputed = per_layer if checkpointing else 0  # the layer whose backward runs, computed again
    # The backward pass's working set, the gradients of a layer's activations: about one layer's worth.
    # Around the decoder: embedding output, final norm input, the gathered positions with a label.
    around = 3 * shape.hidden * p
    return t * (kept + recomputed + per_layer + around)


def loss_chunk_bytes(shape: ModelShape, run: RunShape) -> int:
    """Logits of one loss chunk at the backward pass's peak: log-softmax, its gradient and the logits'
    gradient in fp32; on CUDA also the logits in the compute dtype and the gradient cast back to it."""
    positions = min(LOSS_CHUNK_TOKENS, run.tokens)
    compute_dtype_copies = 0 if run.dtype_bytes == 4 else 2 * run.dtype_bytes  # .float() of fp32 is no copy
    return positions * shape.vocab * (compute_dtype_copies + 12)


def runtime_bytes(shape: ModelShape, run: RunShape) -> int:
    """On the CPU, the train process itself (its imports, the code a step pages in, the data) and the tokenizer;
    none on CUDA, where this is host memory, not the GPU's."""
    if run.device != "cpu":
        return 0
    return RUNTIME_CPU_BYTES + shape.vocab * TOKENIZER_BYTES_PER_ENTRY


def allocator_slack_bytes(shape: ModelShape, run: RunShape) -> int:
    """On the CPU, the freed forward temporaries glibc's heap keeps: three of the MLP's intermediate width per
    adapted gate and up projection, every layer (none on CUDA: torch's caching allocator reuses its blocks,
    and what it reserves beyond them is the headroom device.py keeps)."""
    if run.device != "cpu" or run.qlora:  # QLoRA trains on CUDA only, and checkpointed
        return 0
    widths = [lin.fan_out for lin in adapted(shape, run) if lin.name in MLP_INPUTS]
    held = [width for width in widths if run.tokens * width * run.dtype_bytes < MMAP_THRESHOLD_MAX]
    return shape.layers * run.tokens * 3 * sum(held) * run.dtype_bytes


def estimate(shape: ModelShape, run: RunShape) -> MemoryPlan:
    """Peak memory of training ``shape`` as ``run`` says."""
    lora = lora_parameters(shape, run) * 4
    checkpointing = run.qlora
    return MemoryPlan(
        weights=weight_bytes(shape, run),
        lora=lora,
        gradients=lora,
        optimizer=2 * lora,
        activations=activation_bytes(shape, run, checkpointing),
        loss_chunk=loss_chunk_bytes(shape, run),
        runtime=runtime_bytes(shape, run),
        allocator_slack=allocator_slack_bytes(shape, run),
        gradient_checkpointing=checkpointing,
        activations_other_way=activation_bytes(shape, run, not checkpointing),
    )
