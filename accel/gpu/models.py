"""The models the GPU benchmark runs, and their operators per layer, for decode and prefill.

This is the one place the benchmark's shapes come from; the mapper's workload (``accel.mapping.workload``) will
replace :func:`layer_ops` once it exists. Hyper-parameters are those of the published ``config.json`` files:

* ``gpt2-xl``: Hugging Face ``openai-community/gpt2-xl`` — ``n_embd`` 1600, ``n_layer`` 48, ``n_head`` 25,
  ``n_inner`` null (4 x 1600), ``n_positions`` 1024, ``vocab_size`` 50257, ``activation_function`` ``gelu_new``
  (GELU, tanh form), ``layer_norm_epsilon`` 1e-5; one fused QKV projection (``c_attn``, 1600 -> 4800).
* ``llama2-7b``: ``meta-llama/Llama-2-7b-hf`` — ``hidden_size`` 4096, ``intermediate_size`` 11008,
  ``num_hidden_layers`` 32, ``num_attention_heads`` 32, ``num_key_value_heads`` 32, ``max_position_embeddings``
  4096, ``rms_norm_eps`` 1e-5, ``vocab_size`` 32000, ``rope_theta`` 10000, ``hidden_act`` ``silu``.
* ``llama3-8b``: ``meta-llama/Meta-Llama-3-8B`` — ``hidden_size`` 4096, ``intermediate_size`` 14336,
  ``num_hidden_layers`` 32, ``num_attention_heads`` 32, ``num_key_value_heads`` 8 (grouped-query attention),
  ``max_position_embeddings`` 8192, ``rms_norm_eps`` 1e-5, ``vocab_size`` 128256, ``rope_theta`` 500000.

Decode at context ``C`` attends ``C`` keys (the new token's own included), as ``accel.mapping`` counts it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .backend import GpuError

__all__ = ["ModelShape", "MODELS", "Op", "layer_ops", "find_model", "group_size_for"]


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's hyper-parameters (see the module doc for the sources)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_positions: int
    norm: str         # "layernorm" (GPT-2) or "rmsnorm" (LLaMA)
    mlp: str          # "gelu" (GPT-2: fc, GELU tanh form, proj) or "silu_mul" (LLaMA: gate, up, SiLU(gate)*up, down)
    rope_theta: float | None
    source: str

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linears(self) -> list[tuple[str, int, int]]:
        """``(name, N, K)`` of each weight matrix of one layer (``y = W x``, ``W`` is ``N x K``)."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        if self.mlp == "gelu":
            return [("qkv", 3 * h, h), ("attn_out", h, h), ("fc", self.intermediate, h),
                    ("proj", h, self.intermediate)]
        return [("q", h, h), ("k", kv, h), ("v", kv, h), ("o", h, h), ("gate", self.intermediate, h),
                ("up", self.intermediate, h), ("down", h, self.intermediate)]


MODELS: dict[str, ModelShape] = {m.name: m for m in (
    ModelShape("gpt2-xl", 1600, 48, 25, 25, 6400, 50257, 1024, "layernorm", "gelu", None,
               "huggingface.co/openai-community/gpt2-xl config.json"),
    ModelShape("llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096, "rmsnorm", "silu_mul", 10000.0,
               "huggingface.co/meta-llama/Llama-2-7b-hf config.json"),
    ModelShape("llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, "rmsnorm", "silu_mul", 500000.0,
               "huggingface.co/meta-llama/Meta-Llama-3-8B config.json"),
)}


def find_model(name: str) -> ModelShape:
    """The model of that name; :class:`GpuError` listing the names otherwise."""
    if name not in MODELS:
        raise GpuError(f"model {name!r} is not one of {', '.join(MODELS)} (the GPU benchmark's models)")
    return MODELS[name]


def group_size_for(k: int) -> int:
    """The quantisation group size used for an input width ``k``: 128 (BitMoD's) when it divides ``k``, else the
    largest of 64, 32, 16 that does (GPT-2-XL's 1600 = 25 x 64)."""
    for g in (128, 64, 32, 16):
        if k % g == 0:
            return g
    raise GpuError(f"input width {k} is not a multiple of 16; the packed kernels need group sizes that are")


@dataclass(frozen=True)
class Op:
    """One operator of a layer: ``kind`` and ``shape`` as :mod:`accel.gpu.roofline` takes them."""

    name: str
    kind: str
    shape: dict = field(hash=False)
    dtype: str = "fp16"


def layer_ops(model: ModelShape, phase: str, tokens: int, batch: int = 1, weight_bits: int = 4) -> list[Op]:
    """The operators of one transformer layer (and the LM head with its softmax, once).

    Parameters
    ----------
    phase:
        ``decode`` (one new token per sequence, attending ``tokens`` keys) or ``prefill`` (a prompt of ``tokens``).
    tokens:
        Context length (decode) or prompt length (prefill).
    batch:
        Sequences.
    weight_bits:
        Width the weights are packed at (3, 4 or 8; 16 for dense fp16).
    """
    if phase not in ("decode", "prefill"):
        raise GpuError(f"phase {phase!r}: use decode or prefill")
    if not 1 <= tokens <= model.max_positions:
        raise GpuError(f"{phase} at {tokens} tokens: {model.name} has {model.max_positions} positions; give "
                       f"1..{model.max_positions}")
    if batch < 1:
        raise GpuError(f"batch {batch}: give at least one sequence")
    rows = batch if phase == "decode" else batch * tokens
    q_len = 1 if phase == "decode" else tokens
    h, d = model.hidden, model.head_dim
    ops = [Op("norm", model.norm, {"rows": rows, "cols": h})]
    lin = {name: Op(name, "matmul", {"M": rows, "N": n, "K": k, "weight_bits": weight_bits,
                                     "group_size": group_size_for(k)}) for name, n, k in model.linears()}
    attn = Op("attention", "attention", {"batch": batch, "q_heads": model.heads, "kv_heads": model.kv_heads,
                                         "q_len": q_len, "kv_len": tokens, "head_dim": d, "causal": int(q_len > 1)})
    res = Op("residual", "residual_add", {"rows": rows, "cols": h})
    if model.mlp == "gelu":
        ops += [lin["qkv"], attn, lin["attn_out"], res, Op("norm2", model.norm, {"rows": rows, "cols": h}),
                lin["fc"], Op("gelu", "gelu", {"rows": rows, "cols": model.intermediate}), lin["proj"], res]
    else:
        ops += [lin["q"], lin["k"], lin["v"],
                Op("rotary_q", "rotary", {"batch": batch, "heads": model.heads, "seq": q_len, "head_dim": d}),
                Op("rotary_k", "rotary", {"batch": batch, "heads": model.kv_heads, "seq": q_len, "head_dim": d}),
                attn, lin["o"], res, Op("norm2", model.norm, {"rows": rows, "cols": h}), lin["gate"], lin["up"],
                Op("silu_mul", "silu_mul", {"rows": rows, "cols": model.intermediate}), lin["down"], res]
    head_rows = batch  # the LM head and sampling softmax only need the last position
    ops += [Op("lm_head", "matmul", {"M": head_rows, "N": model.vocab, "K": h, "weight_bits": weight_bits,
                                     "group_size": group_size_for(h)}),
            Op("softmax", "softmax", {"rows": head_rows, "cols": model.vocab})]
    return ops
