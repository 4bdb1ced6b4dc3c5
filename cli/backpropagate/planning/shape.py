"""A model's shape read from its config.json: what memory planning needs, without loading a weight.

Only decoder-only models with softmax attention and a gated MLP (Llama, Qwen2/3, Mistral,
SmolLM3, Phi-3) have a shape here; anything else is refused by name rather than guessed.
"""

from dataclasses import dataclass

from backpropagate.contract.errors import BackpropError

# model_type -> (q, k and v fused into one layer; gate and up fused; q, k, v carry a bias)
FAMILIES = {
    "llama": (False, False, False),
    "mistral": (False, False, False),
    "qwen2": (False, False, True),
    "qwen3": (False, False, False),
    "smollm3": (False, False, False),
    "phi3": (True, True, False),
}
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


@dataclass(frozen=True)
class Linear:
    name: str  # the module name LoRA targets (q_proj, gate_up_proj, ...)
    fan_in: int
    fan_out: int
    bias: bool = False


@dataclass(frozen=True)
class ModelShape:
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict, model: str) -> "ModelShape":
        """The shape of ``config`` (a config.json as a dict); ``model`` names it in errors."""
        kind = config.get("model_type", "")
        if kind not in FAMILIES:
            raise BackpropError("INPUT_MODEL_SHAPE_UNKNOWN", model=model, reason=f"model_type {kind!r} is not one "
                                f"of {', '.join(sorted(FAMILIES))}")
        missing = [key for key in REQUIRED if not isinstance(config.get(key), int)]
        if missing:
            raise BackpropError("INPUT_MODEL_SHAPE_UNKNOWN", model=model,
                                reason=f"config.json has no {', '.join(missing)}")
        heads = config["num_attention_heads"]
        return cls(model_type=kind, hidden=config["hidden_size"], intermediate=config["intermediate_size"],
                   layers=config["num_hidden_layers"], heads=heads,
                   kv_heads=config.get("num_key_value_heads") or heads,
                   head_dim=config.get("head_dim") or config["hidden_size"] // heads,
                   vocab=config["vocab_size"],
                   # transformers' default differs by family; an explicit value always wins
                   tied=bool(config.get("tie_word_embeddings", kind in ("qwen3", "smollm3"))))

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> list[Linear]:
        """The linear layers of one decoder layer, as the model names them."""
        fused_qkv, fused_mlp, qkv_bias = FAMILIES[self.model_type]
        h, i, q, kv = self.hidden, self.intermediate, self.q_width, self.kv_width
        attention = ([Linear("qkv_proj", h, q + 2 * kv)] if fused_qkv else
                     [Linear("q_proj", h, q, qkv_bias), Linear("k_proj", h, kv, qkv_bias),
                      Linear("v_proj", h, kv, qkv_bias)])
        mlp = ([Linear("gate_up_proj", h, 2 * i)] if fused_mlp else
               [Linear("gate_proj", h, i), Linear("up_proj", h, i)])
        return [*attention, Linear("o_proj", q, h), *mlp, Linear("down_proj", i, h)]

    def linear_names(self) -> list[str]:
        return sorted(linear.name for linear in self.linears())

    def layer_linear_parameters(self) -> int:
        return sum(lin.fan_in * lin.fan_out + (lin.fan_out if lin.bias else 0) for lin in self.linears())

    def embedding_parameters(self) -> int:
        """The input embedding and, when not tied to it, the output head."""
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def other_parameters(self) -> int:
        """RMSNorm weights (two per layer and the final one); Qwen3's q/k norms are head_dim each."""
        per_layer = 2 * self.hidden + (2 * self.head_dim if self.model_type == "qwen3" else 0)
        return self.layers * per_layer + self.hidden

    def parameters(self) -> int:
        return self.layers * self.layer_linear_parameters() + self.embedding_parameters() + self.other_parameters()
