"""Decoder-only transformers as operator lists, from a shape-only :class:`Architecture`.

The four families follow their Hugging Face ``transformers`` implementations (5.24) operator for operator:

* ``gpt2``: learned positions added to the token embeddings; pre-norm blocks of layer norm, one fused ``c_attn``
  GEMM for Q, K and V (``Conv1D``: weights stored in x out, layout ``"kn"``), GELU (tanh form) MLP, biases
  everywhere; final ``ln_f``; LM head tied to the token embeddings.
* ``opt``: learned positions from a table of ``positions + 2`` rows (OPT's offset of 2); separate Q/K/V projections
  with biases, ReLU MLP; pre-norm except OPT-350m (``do_layer_norm_before = False``: norms after the residual adds,
  and no final norm); OPT-350m also projects its 512-wide embeddings in to and out of the 1024-wide layers
  (``project_in``/``project_out``); LM head tied.
* ``llama``: RMS norm, rotary position embedding on Q and K, grouped-query attention (``kv_heads`` <= ``heads``),
  gated SiLU MLP (``down(silu(gate(x)) * up(x))``), no biases; LM head untied unless the config ties it.
* ``mixtral``: LLaMA's attention with a mixture-of-experts MLP: a router GEMV over ``experts``, softmax, top-k, the
  chosen experts' gated SiLU MLPs (``w1`` gate, ``w3`` up, ``w2`` down), and the routing-weighted combine.

Which experts a shape-only workload reads is an assumption (:func:`expert_tokens`); tokens are routed by their
values, which a shape-only workload does not have.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .ops import (LAYER, PHASES, AttentionMatmul, Gemm, KvWrite, Lookup, Operator, Precision, Tensor, Vector,
                  WeightFormat, Workload, WorkloadError, operator_tensors)

__all__ = ["Architecture", "FAMILIES", "EXPERT_POLICIES", "expert_tokens", "build_workload", "model_tensors",
           "weight_matrices"]

#: Families (Hugging Face ``model_type``) this module builds.
FAMILIES: tuple[str, ...] = ("gpt2", "opt", "llama", "mixtral")

#: Named assumptions for the experts a shape-only MoE layer reads (an integer count is accepted too).
EXPERT_POLICIES: tuple[str, ...] = ("worst", "expected", "best")


@dataclass(frozen=True)
class Architecture:
    """The shapes of a decoder-only transformer (what its Hugging Face config says; no weights).

    Parameters
    ----------
    name:
        Model name.
    family:
        One of :data:`FAMILIES` (the Hugging Face ``model_type``).
    layers, hidden, heads, kv_heads, head_dim:
        Decoder layers; width of the residual stream; query heads; key/value heads; elements per head.
    ffn:
        Width of the MLP's hidden layer (per expert in a mixture of experts).
    vocab:
        Vocabulary size (rows of the token embedding, outputs of the LM head).
    positions:
        Most tokens a sequence may hold (``max_position_embeddings`` / ``n_positions``).
    experts, top_k:
        Experts per MoE layer and experts per token (0 and 0 for a dense model).
    embed_dim:
        Width of the token embeddings (OPT's ``word_embed_proj_dim``; ``hidden`` for the others).
    pre_norm:
        Norm before attention and MLP (False: after the residual adds, OPT-350m).
    final_norm:
        A norm after the last layer.
    tied:
        The LM head reads the token embedding table.
    activation:
        The MLP's activation: ``"gelu"``, ``"relu"`` or ``"silu"``.
    bias:
        Linear layers carry biases (GPT-2, OPT).
    """

    name: str
    family: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    positions: int
    experts: int
    top_k: int
    embed_dim: int
    pre_norm: bool
    final_norm: bool
    tied: bool
    activation: str
    bias: bool

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise WorkloadError(f"model family {self.family!r}: must be one of {', '.join(FAMILIES)}")
        for f in ("layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab", "positions", "embed_dim"):
            v = getattr(self, f)
            if not (isinstance(v, int) and v >= 1):
                raise WorkloadError(f"{self.name}: {f} = {v!r}: must be a positive integer")
        if self.heads % self.kv_heads:
            raise WorkloadError(f"{self.name}: heads = {self.heads}: must be a multiple of kv_heads "
                                f"({self.kv_heads})")
        if (self.experts > 0) != (self.family == "mixtral") or not 0 <= self.top_k <= self.experts:
            raise WorkloadError(f"{self.name}: experts = {self.experts}, top_k = {self.top_k}: a mixture of experts "
                                f"(mixtral) needs 1 <= top_k <= experts; dense families have none")
        if self.activation not in ("gelu", "relu", "silu"):
            raise WorkloadError(f"{self.name}: activation {self.activation!r}: must be gelu, relu or silu")
        if self.embed_dim != self.hidden and self.family != "opt":
            raise WorkloadError(f"{self.name}: embed_dim = {self.embed_dim}: only OPT projects its embeddings "
                                f"(must equal hidden = {self.hidden})")

    @property
    def rotary(self) -> bool:
        return self.family in ("llama", "mixtral")

    @property
    def norm(self) -> str:
        return "layer_norm" if self.family in ("gpt2", "opt") else "rms_norm"

    @property
    def gated(self) -> bool:
        return self.rotary

    @property
    def position_table_rows(self) -> int:
        """Rows of the learned position table (0: rotary positions, no table)."""
        return {"gpt2": self.positions, "opt": self.positions + 2}.get(self.family, 0)  # OPT's offset of 2

    @property
    def base_prefix(self) -> str:
        """Prefix of the base model's tensor names (a checkpoint of the base model omits it)."""
        return "transformer." if self.family == "gpt2" else "model."

    def summary(self) -> dict[str, Union[int, str, bool]]:
        """The figures ``accel models`` lists."""
        return {"name": self.name, "family": self.family, "parameters": sum(t.elements for t in model_tensors(self)),
                "layers": self.layers, "hidden": self.hidden, "heads": self.heads, "kv_heads": self.kv_heads,
                "head_dim": self.head_dim, "ffn": self.ffn, "experts": self.experts, "top_k": self.top_k,
                "positions": self.positions, "vocab": self.vocab, "tied_lm_head": self.tied}


def expert_tokens(experts: int, top_k: int, tokens: int, policy: Union[str, int]) -> tuple[tuple[int, int], ...]:
    """The distinct experts one MoE layer reads and the tokens routed to each: ``((expert, tokens), ...)``.

    ``tokens`` tokens each choose ``top_k`` distinct experts, ``tokens * top_k`` assignments in all. The policy
    says how many distinct experts ``e`` they hit:

    * ``"worst"``: as many as possible, ``min(experts, tokens * top_k)`` (the most weight bytes: decode's bound);
    * ``"best"``: all tokens choose the same ``top_k``;
    * ``"expected"``: the expectation under independent uniform routing, ``experts * (1 - (1 - top_k /
      experts) ** tokens)``, rounded to the nearest integer;
    * an integer ``e`` with ``top_k <= e <= min(experts, tokens * top_k)``.

    The assignments are spread as evenly as possible over experts ``0 .. e - 1`` (labels only: which experts a
    token picks depends on its values).
    """
    most = min(experts, tokens * top_k)
    if isinstance(policy, bool) or not isinstance(policy, (int, str)):
        raise WorkloadError(f"experts {policy!r}: must be one of {', '.join(EXPERT_POLICIES)} or a count")
    if isinstance(policy, int):
        e = policy
        if not top_k <= e <= most:
            raise WorkloadError(f"experts {e}: must be between top_k ({top_k}) and {most} (min(experts, tokens x "
                                f"top_k) for {tokens} tokens)")
    elif policy == "worst":
        e = most
    elif policy == "best":
        e = top_k
    elif policy == "expected":
        e = min(most, max(top_k, round(experts * (1 - (1 - top_k / experts) ** tokens))))
    else:
        raise WorkloadError(f"experts {policy!r}: must be one of {', '.join(EXPERT_POLICIES)} or a count")
    assignments = tokens * top_k
    base, extra = divmod(assignments, e)
    return tuple((j, base + (1 if j < extra else 0)) for j in range(e))


# --------------------------------------------------------------------------------------------------------------------
# Tensor names per family (the checkpoint's, as ``save_pretrained`` writes them and the Hub holds them)

_LAYER_PREFIX = {"gpt2": f"transformer.h.{LAYER}.", "opt": f"model.decoder.layers.{LAYER}.",
                 "llama": f"model.layers.{LAYER}.", "mixtral": f"model.layers.{LAYER}."}
_EMBED = {"gpt2": "transformer.wte.weight", "opt": "model.decoder.embed_tokens.weight",
          "llama": "model.embed_tokens.weight", "mixtral": "model.embed_tokens.weight"}
_FINAL_NORM = {"gpt2": "transformer.ln_f", "opt": "model.decoder.final_layer_norm", "llama": "model.norm",
               "mixtral": "model.norm"}
#: Module names inside a layer: first norm, second norm, attention, Q/K/V (or fused QKV), output projection, MLP.
_MODULES = {
    "gpt2": dict(norm1="ln_1", norm2="ln_2", attn="attn", qkv="attn.c_attn", o="attn.c_proj", mlp="mlp",
                 up="mlp.c_fc", down="mlp.c_proj"),
    "opt": dict(norm1="self_attn_layer_norm", norm2="final_layer_norm", attn="self_attn", q="self_attn.q_proj",
                k="self_attn.k_proj", v="self_attn.v_proj", o="self_attn.out_proj", mlp="mlp", up="fc1", down="fc2"),
    "llama": dict(norm1="input_layernorm", norm2="post_attention_layernorm", attn="self_attn", q="self_attn.q_proj",
                  k="self_attn.k_proj", v="self_attn.v_proj", o="self_attn.o_proj", mlp="mlp", gate="mlp.gate_proj",
                  up="mlp.up_proj", down="mlp.down_proj"),
    "mixtral": dict(norm1="input_layernorm", norm2="post_attention_layernorm", attn="self_attn",
                    q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj", o="self_attn.o_proj",
                    mlp="block_sparse_moe", router="block_sparse_moe.gate",
                    expert="block_sparse_moe.experts.{e}"),
}


class _Builder:
    """Makes the operators of one forward step; tensor formats come from ``formats`` or the precision's default."""

    def __init__(self, arch: Architecture, precision: Precision, formats: dict[str, WeightFormat]):
        self.a, self.p, self.formats = arch, precision, formats
        self.layer: Union[int, None] = None

    def fmt(self, tensor: str) -> WeightFormat:
        return self.formats.get(Workload.tensor_name(tensor, self.layer), self.p.weights)

    def gemm(self, name: str, module: str, m: int, k: int, n: int, *, bias: bool, expert: Union[int, None] = None,
             layout: str = "nk", weight: Union[str, None] = None) -> Gemm:
        weight = weight or f"{module}.weight"
        return Gemm(name, m, k, n, weight, layout, f"{module}.bias" if bias else None, expert, self.fmt(weight),
                    self.p.act_bits, self.p.param_bits)

    def vector(self, name: str, kind: str, rows: int, width: int, *, inputs: int = 1,
               out_width: Union[int, None] = None, params: tuple[str, ...] = ()) -> Vector:
        return Vector(name, kind, rows, width, inputs, width if out_width is None else out_width, params,
                      len(params) * width, self.p.act_bits, self.p.param_bits)

    def norm(self, name: str, module: str, rows: int) -> Vector:
        layer_norm = self.a.norm == "layer_norm"  # a layer norm has a gain and a bias, an RMS norm a gain
        params = (f"{module}.weight", f"{module}.bias") if layer_norm else (f"{module}.weight",)
        return self.vector(name, self.a.norm, rows, self.a.hidden, params=params)

    def prologue(self, batch: int, tokens: int) -> list[Operator]:
        a, t = self.a, batch * tokens
        ops: list[Operator] = [Lookup("embed_tokens", t, a.embed_dim, _EMBED[a.family], a.vocab,
                                      self.fmt(_EMBED[a.family]), self.p.act_bits)]
        if a.family == "opt" and a.embed_dim != a.hidden:
            ops.append(self.gemm("project_in", "model.decoder.project_in", t, a.embed_dim, a.hidden, bias=False))
        if a.position_table_rows:
            table = "transformer.wpe.weight" if a.family == "gpt2" else "model.decoder.embed_positions.weight"
            ops.append(Lookup("embed_positions", t, a.hidden, table, a.position_table_rows, self.fmt(table),
                              self.p.act_bits))
            ops.append(self.vector("embed_add", "add", t, a.hidden, inputs=2))
        return ops

    def block(self, layer: int, batch: int, tokens: int, kv_len: int,
              experts: tuple[tuple[int, int], ...]) -> tuple[Operator, ...]:
        a, mod, pre = self.a, _MODULES[self.a.family], _LAYER_PREFIX[self.a.family]
        self.layer = layer
        t, d, hd = batch * tokens, a.hidden, a.head_dim
        q_out, kv_out = a.heads * hd, a.kv_heads * hd
        ops: list[Operator] = []
        attn = mod["attn"]
        if a.pre_norm:
            ops.append(self.norm(mod["norm1"], pre + mod["norm1"], t))
        if "qkv" in mod:
            ops.append(self.gemm(mod["qkv"], pre + mod["qkv"], t, d, q_out + 2 * kv_out, bias=a.bias, layout="kn"))
        else:
            for key, n in (("q", q_out), ("k", kv_out), ("v", kv_out)):
                ops.append(self.gemm(mod[key], pre + mod[key], t, d, n, bias=a.bias))
        if a.rotary:
            ops.append(self.vector(f"{attn}.rope", "rope", t, q_out + kv_out))
        ops.append(KvWrite(f"{attn}.kv_write", batch, tokens, a.kv_heads, hd, self.p.act_bits, self.p.kv_bits))
        causal = tokens > 1
        ops.append(AttentionMatmul(f"{attn}.score", "attn_score", batch, a.heads, a.kv_heads, hd, tokens, kv_len,
                                   causal, self.p.act_bits, self.p.kv_bits))
        ops.append(self.vector(f"{attn}.softmax", "softmax", batch * a.heads * tokens, kv_len))
        ops.append(AttentionMatmul(f"{attn}.context", "attn_context", batch, a.heads, a.kv_heads, hd, tokens, kv_len,
                                   causal, self.p.act_bits, self.p.kv_bits))
        ops.append(self.gemm(mod["o"], pre + mod["o"], t, q_out, d, bias=a.bias,
                             layout="kn" if "qkv" in mod else "nk"))
        ops.append(self.vector("residual_attn", "add", t, d, inputs=2))
        if not a.pre_norm:
            ops.append(self.norm(mod["norm1"], pre + mod["norm1"], t))
        if a.pre_norm:
            ops.append(self.norm(mod["norm2"], pre + mod["norm2"], t))
        if a.experts:
            ops += self._moe(pre, mod, t, experts)
        else:
            ops += self._mlp(pre, mod, t, "qkv" in mod)
        ops.append(self.vector("residual_mlp", "add", t, d, inputs=2))
        if not a.pre_norm:
            ops.append(self.norm(mod["norm2"], pre + mod["norm2"], t))
        self.layer = None
        return tuple(ops)

    def _mlp(self, pre: str, mod: dict[str, str], t: int, conv1d: bool) -> list[Operator]:
        a, layout = self.a, "kn" if conv1d else "nk"
        ops: list[Operator] = []
        if a.gated:
            ops.append(self.gemm(mod["gate"], pre + mod["gate"], t, a.hidden, a.ffn, bias=False))
        ops.append(self.gemm(mod["up"], pre + mod["up"], t, a.hidden, a.ffn, bias=a.bias, layout=layout))
        ops.append(self.vector(f"{mod['mlp']}.act", a.activation, t, a.ffn))
        if a.gated:
            ops.append(self.vector(f"{mod['mlp']}.mul", "mul", t, a.ffn, inputs=2))
        ops.append(self.gemm(mod["down"], pre + mod["down"], t, a.ffn, a.hidden, bias=a.bias, layout=layout))
        return ops

    def _moe(self, pre: str, mod: dict[str, str], t: int, experts: tuple[tuple[int, int], ...]) -> list[Operator]:
        a, moe = self.a, mod["mlp"]
        ops: list[Operator] = [self.gemm(mod["router"], pre + mod["router"], t, a.hidden, a.experts, bias=False),
                               self.vector(f"{moe}.softmax", "softmax", t, a.experts),
                               self.vector(f"{moe}.topk", "topk", t, a.experts, out_width=a.top_k)]
        for e, m in experts:
            ex = mod["expert"].format(e=e)
            ops.append(self.gemm(f"{ex}.w1", pre + f"{ex}.w1", m, a.hidden, a.ffn, bias=False, expert=e))
            ops.append(self.gemm(f"{ex}.w3", pre + f"{ex}.w3", m, a.hidden, a.ffn, bias=False, expert=e))
            ops.append(self.vector(f"{ex}.act", "silu", m, a.ffn))
            ops.append(self.vector(f"{ex}.mul", "mul", m, a.ffn, inputs=2))
            ops.append(self.gemm(f"{ex}.w2", pre + f"{ex}.w2", m, a.ffn, a.hidden, bias=False, expert=e))
        ops.append(self.vector(f"{moe}.combine", "moe_combine", t, a.hidden, inputs=a.top_k))
        return ops

    def epilogue(self, rows: int) -> list[Operator]:
        a = self.a
        ops: list[Operator] = []
        if a.final_norm:
            ops.append(self.norm("final_norm", _FINAL_NORM[a.family], rows))
        if a.family == "opt" and a.embed_dim != a.hidden:
            ops.append(self.gemm("project_out", "model.decoder.project_out", rows, a.hidden, a.embed_dim, bias=False))
        weight = _EMBED[a.family] if a.tied else "lm_head.weight"
        ops.append(self.gemm("lm_head", "lm_head", rows, a.embed_dim, a.vocab, bias=False, weight=weight))
        return ops


def _every_operator(arch: Architecture) -> list[tuple[Union[int, None], Operator]]:
    """(layer, operator) of a one-token step that reads every expert: each parameter tensor at least once."""
    shapes_only = Precision(WeightFormat("int8", ("int8",), None, 1, 1, 0), 1, 1, 1)  # formats do not change shapes
    b = _Builder(arch, shapes_only, {})
    every = tuple((e, 1) for e in range(arch.experts))
    out: list[tuple[Union[int, None], Operator]] = [(None, op) for op in b.prologue(1, 1)]
    for layer in range(arch.layers):
        out += [(layer, op) for op in b.block(layer, 1, 1, 1, every)]
    return out + [(None, op) for op in b.epilogue(1)]


def model_tensors(arch: Architecture) -> tuple[Tensor, ...]:
    """Every parameter tensor of the model (all experts; a tied LM head once), with the checkpoint's names."""
    return operator_tensors(_every_operator(arch))


def weight_matrices(arch: Architecture) -> dict[str, tuple[int, int, str]]:
    """Every tensor stored in the weight format: expanded name -> ``(K, N, layout)``, layout ``"nk"``, ``"kn"`` or
    ``"table"`` (an embedding table: ``N`` rows of ``K`` elements, groups along a row)."""
    out: dict[str, tuple[int, int, str]] = {}
    for layer, op in _every_operator(arch):
        if isinstance(op, Gemm):
            out.setdefault(Workload.tensor_name(op.weight, layer), (op.k, op.n, op.layout))
        elif isinstance(op, Lookup):
            out.setdefault(op.table, (op.width, op.table_rows, "table"))
    return out


def build_workload(arch: Architecture, phase: str, *, precision: Precision, batch: int = 1,
                   prompt: Union[int, None] = None, context: Union[int, None] = None,
                   experts: Union[str, int] = "worst", logits: str = "last",
                   formats: Union[dict[str, WeightFormat], None] = None, source: str = "",
                   checkpoint_dtypes: tuple[tuple[str, str], ...] = ()) -> Workload:
    """The operators of one prefill or decode step of ``arch``.

    Parameters
    ----------
    phase:
        ``"prefill"`` (``prompt`` tokens per sequence) or ``"decode"`` (one new token attending to ``context``
        tokens, itself included: ``context - 1`` cached).
    precision:
        Number formats (:func:`mapping.workload.precision_for` makes them from a device).
    batch:
        Sequences.
    experts:
        Which experts an MoE layer reads (:func:`expert_tokens`); ignored for dense models.
    logits:
        ``"last"``: final norm and LM head on the last token of each sequence (what generation needs); ``"all"``:
        on every token (what a plain forward pass of ``transformers`` computes).
    formats:
        Weight format per expanded tensor name, overriding ``precision.weights`` (a checkpoint's exact mix).
    """
    if phase not in PHASES:
        raise WorkloadError(f"phase {phase!r}: must be one of {', '.join(PHASES)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise WorkloadError(f"batch {batch!r}: must be at least 1 (sequences processed together)")
    if logits not in ("last", "all"):
        raise WorkloadError(f"logits {logits!r}: must be 'last' or 'all'")
    if phase == "prefill":
        tokens = _length("prompt", prompt, arch, f"a prompt holds at most {arch.positions} tokens")
        kv_len = tokens
    else:
        kv_len = _length("context", context, arch, f"a decode step attends to at most {arch.positions} tokens "
                                                   f"({arch.positions - 1} cached + the new one)")
        tokens = 1
    b = _Builder(arch, precision, formats or {})
    routed = expert_tokens(arch.experts, arch.top_k, batch * tokens, experts) if arch.experts else ()
    blocks: dict[tuple[Operator, ...], int] = {}
    layers = []
    for layer in range(arch.layers):
        body = b.block(layer, batch, tokens, kv_len, routed)
        layers.append(blocks.setdefault(body, len(blocks)))
    moe = (f"{experts}: {len(routed)} of {arch.experts} experts read per layer, {batch * tokens * arch.top_k} "
           f"token-expert assignments" if arch.experts else "")
    return Workload(arch.name, phase, batch, tokens, kv_len, precision, tuple(b.prologue(batch, tokens)),
                    tuple(blocks), tuple(layers), tuple(b.epilogue(batch * (tokens if logits == "all" else 1))),
                    model_tensors(arch), source or f"name:{arch.name}", moe, checkpoint_dtypes)


def _length(what: str, value: Union[int, None], arch: Architecture, rule: str) -> int:
    if value is None:
        raise WorkloadError(f"{what} is missing: give the {what} length (at most {arch.positions}, the positions "
                            f"of {arch.name})")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkloadError(f"{what} {value!r}: must be at least 1 token")
    if value > arch.positions:
        raise WorkloadError(f"{what} {value} > {arch.positions} positions of {arch.name}: {rule}; use a {what} of "
                            f"{arch.positions} or less")
    return value
