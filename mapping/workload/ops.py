"""The operator model: plain, frozen, JSON-serialisable data that partition, cost model, codegen and report share.

A :class:`Workload` is one forward step of a model (a prefill of ``tokens`` new tokens per sequence, or a decode step
of one) for ``batch`` sequences: a *prologue* (embedding lookups), the layers, and an *epilogue* (final norm, LM head).
Layers are stored as distinct *blocks* (operator lists) plus, for every layer, the index of its block: two layers are
identical exactly when their block indices are equal, which is an integer comparison and holds by construction (the
same block object), so an engine may run one and jump the rest. Names inside a block are relative to the layer
(``attn.c_attn``); tensor names carry a ``{layer}`` placeholder (``transformer.h.{layer}.attn.c_attn.weight``) that
:meth:`Workload.tensor_name` fills in.

Units: shapes in elements, ``*_bits`` in bits, every ``*_bytes`` in bytes (a ``float``: a mixed weight format has a
fractional average), ``macs`` in multiply-accumulates, ``flops`` in floating-point (or integer) operations with a MAC
counted as two, as :class:`torch.utils.flop_counter.FlopCounterMode` counts them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator, Union

from accel.errors import AccelError

__all__ = [
    "WorkloadError", "PHASES", "WeightFormat", "Precision", "Gemm", "AttentionMatmul", "Vector", "KvWrite", "Lookup",
    "Operator", "OPERATOR_CLASSES", "VECTOR_KINDS", "VECTOR_OPS_PER_ELEMENT", "Tensor", "Placed", "Workload", "LAYER",
    "operator_tensors", "op_to_dict", "plain",
]

#: Placeholder for the layer index in tensor names inside a block.
LAYER = "{layer}"

PHASES: tuple[str, ...] = ("prefill", "decode")


class WorkloadError(AccelError, ValueError):
    """A model, model directory, operator list or workload parameter breaks a rule."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise WorkloadError(message)


def _positive(what: str, value: Any) -> None:
    _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
           f"{what} = {value!r}: must be a positive integer")


# --------------------------------------------------------------------------------------------------------------------
# Number formats


@dataclass(frozen=True)
class WeightFormat:
    """How a weight matrix is stored: per-group datatypes of :data:`accel.numerics.DATATYPES` plus group metadata.

    Groups of ``group_size`` consecutive weights run along the reduction dimension ``K`` (as
    :func:`accel.numerics.quantize_weights` cuts them); a matrix of ``K x N`` weights has ``N * ceil(K / group_size)``
    groups, each carrying ``scale_bits`` of scale and, when more than one datatype is allowed, ``dtype_bits`` naming
    the group's datatype.

    Parameters
    ----------
    name:
        The spec it was made from (``"int4"``, ``"mixed"``, ``"mixed:int8=0.25,int4=0.75"``), for display.
    datatypes:
        Datatypes a group may take.
    fractions:
        Fraction of the groups in each datatype (sums to 1), or ``None`` when unknown (a shape-only workload of
        equal-width datatypes, where the fractions do not change the size).
    group_size:
        Weights per group.
    scale_bits:
        Bits of one group's scale (bits).
    dtype_bits:
        Bits naming one group's datatype (0 for a single datatype; bits).
    """

    name: str
    datatypes: tuple[str, ...]
    fractions: Union[tuple[float, ...], None]
    group_size: int
    scale_bits: int
    dtype_bits: int

    def __post_init__(self) -> None:
        from accel.numerics import DATATYPES

        _check(len(self.datatypes) > 0, f"weight format {self.name!r}: needs at least one datatype")
        for dt in self.datatypes:
            _check(dt in DATATYPES, f"weight format {self.name!r}: datatype {dt!r} is not one of "
                                    f"{', '.join(DATATYPES)}")
        _check(len(set(self.datatypes)) == len(self.datatypes), f"weight format {self.name!r}: repeats a datatype")
        _positive(f"weight format {self.name!r}: group_size", self.group_size)
        _positive(f"weight format {self.name!r}: scale_bits", self.scale_bits)
        _check(self.dtype_bits >= 0, f"weight format {self.name!r}: dtype_bits = {self.dtype_bits}: must be >= 0")
        if self.fractions is not None:
            _check(len(self.fractions) == len(self.datatypes) and all(f >= 0 for f in self.fractions)
                   and math.isclose(sum(self.fractions), 1.0, abs_tol=1e-9),
                   f"weight format {self.name!r}: fractions {list(self.fractions)} must be one non-negative number "
                   f"per datatype, summing to 1")
        else:
            widths = {DATATYPES[d].code_bits for d in self.datatypes}
            _check(len(widths) == 1,
                   f"weight format {self.name!r}: datatypes of different widths ({', '.join(self.datatypes)}) need "
                   f"the fraction of groups in each (mixed:int8=0.25,int4=0.75) or a checkpoint to count them")

    @property
    def code_bits(self) -> float:
        """Average bits of one weight code (bits)."""
        from accel.numerics import DATATYPES

        if self.fractions is None:
            return float(DATATYPES[self.datatypes[0]].code_bits)
        return sum(f * DATATYPES[d].code_bits for d, f in zip(self.datatypes, self.fractions))

    @property
    def metadata_bits(self) -> int:
        """Bits of metadata per group: scale and datatype field (bits)."""
        return self.scale_bits + self.dtype_bits

    @property
    def bits_per_weight(self) -> float:
        """Average stored bits per weight, metadata included, for ``K`` a multiple of the group size (bits)."""
        return self.code_bits + self.metadata_bits / self.group_size

    def matrix_bytes(self, k: int, n: int) -> float:
        """Bytes of a ``K x N`` weight matrix (groups along ``K``; a short last group pays full metadata)."""
        groups = n * -(-k // self.group_size)
        return (k * n * self.code_bits + groups * self.metadata_bits) / 8


@dataclass(frozen=True)
class Precision:
    """Number formats of a workload.

    Parameters
    ----------
    weights:
        Format of the weight matrices and embedding tables.
    act_bits:
        Bits of an activation element passed between operators (bits).
    kv_bits:
        Bits of one cached key or value element (bits).
    param_bits:
        Bits of a bias or norm parameter element (bits).
    """

    weights: WeightFormat
    act_bits: int
    kv_bits: int
    param_bits: int

    def __post_init__(self) -> None:
        for f in ("act_bits", "kv_bits", "param_bits"):
            _positive(f, getattr(self, f))


# --------------------------------------------------------------------------------------------------------------------
# Operators


class _Op:
    """What every operator offers (the fields are the subclass's)."""

    OP: ClassVar[str]
    name: str

    @property
    def macs(self) -> int:
        return 0

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def weight_bytes(self) -> float:
        """Bytes of weight matrices or embedding rows read."""
        return 0.0

    @property
    def param_bytes(self) -> float:
        """Bytes of biases and norm parameters read."""
        return 0.0

    @property
    def act_in_bytes(self) -> float:
        """Bytes of activations read."""
        return 0.0

    @property
    def act_out_bytes(self) -> float:
        """Bytes of activations written."""
        return 0.0

    @property
    def kv_read_bytes(self) -> float:
        """Bytes of the KV cache read."""
        return 0.0

    @property
    def kv_write_bytes(self) -> float:
        """Bytes of the KV cache written."""
        return 0.0

    @property
    def bytes(self) -> float:
        """All bytes moved: weights, parameters, activations in and out, KV read and written."""
        return (self.weight_bytes + self.param_bytes + self.act_in_bytes + self.act_out_bytes + self.kv_read_bytes
                + self.kv_write_bytes)

    @property
    def intensity(self) -> float:
        """Operational intensity: FLOPs per byte moved."""
        return self.flops / self.bytes if self.bytes else 0.0

    def tensors(self) -> tuple[str, ...]:
        """Names of the parameter tensors the operator reads (with the ``{layer}`` placeholder inside blocks)."""
        return ()

    @property
    def kind_name(self) -> str:
        """The operator's kind: ``gemm``, ``attn_score``/``attn_context``, a vector kind, ``kv_write``, ``lookup``."""
        return getattr(self, "kind", self.OP)

    def totals(self) -> dict[str, float]:
        """MACs, FLOPs and every byte count, by name."""
        return {"macs": self.macs, "flops": self.flops, "weight_bytes": self.weight_bytes,
                "param_bytes": self.param_bytes, "act_in_bytes": self.act_in_bytes,
                "act_out_bytes": self.act_out_bytes, "kv_read_bytes": self.kv_read_bytes,
                "kv_write_bytes": self.kv_write_bytes, "bytes": self.bytes}


@dataclass(frozen=True)
class Gemm(_Op):
    """A weight GEMM ``Y[m, n] = X[m, k] @ W[k, n] (+ bias)``; a GEMV when ``m`` is 1.

    Parameters
    ----------
    name:
        Operator name (relative to its layer inside a block).
    m, k, n:
        Rows of the input (tokens), reduction dimension (input features), output features.
    weight:
        Name of the weight tensor read (the checkpoint's name, ``{layer}`` inside blocks).
    layout:
        How the checkpoint stores it: ``"nk"`` (``torch.nn.Linear``: out x in) or ``"kn"`` (GPT-2's ``Conv1D``).
    bias:
        Name of the bias tensor (``n`` elements), or ``None``.
    expert:
        Index of the mixture-of-experts expert whose matrix this is, or ``None``.
    weights, act_bits, param_bits:
        Number formats (see :class:`Precision`).
    """

    OP: ClassVar[str] = "gemm"
    name: str
    m: int
    k: int
    n: int
    weight: str
    layout: str
    bias: Union[str, None]
    expert: Union[int, None]
    weights: WeightFormat
    act_bits: int
    param_bits: int

    def __post_init__(self) -> None:
        for f in ("m", "k", "n"):
            _positive(f"{self.name}: {f}", getattr(self, f))
        _check(self.layout in ("nk", "kn"), f"{self.name}: layout = {self.layout!r}: must be 'nk' or 'kn'")

    @property
    def weight_shape(self) -> tuple[int, int]:
        """Shape of the weight tensor as the checkpoint stores it."""
        return (self.n, self.k) if self.layout == "nk" else (self.k, self.n)

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n

    @property
    def weight_bytes(self) -> float:
        return self.weights.matrix_bytes(self.k, self.n)

    @property
    def param_bytes(self) -> float:
        return self.n * self.param_bits / 8 if self.bias is not None else 0.0

    @property
    def act_in_bytes(self) -> float:
        return self.m * self.k * self.act_bits / 8

    @property
    def act_out_bytes(self) -> float:
        return self.m * self.n * self.act_bits / 8

    def tensors(self) -> tuple[str, ...]:
        return (self.weight,) if self.bias is None else (self.weight, self.bias)

    def shape_text(self) -> str:
        expert = f" expert {self.expert}" if self.expert is not None else ""
        return f"M={self.m} K={self.k} N={self.n}{expert}"


@dataclass(frozen=True)
class AttentionMatmul(_Op):
    """An attention product per sequence and query head: the score ``S = Q K^T`` or the context ``O = P V``.

    ``kind = "attn_score"``: ``Q[queries, head_dim] @ K^T[head_dim, kv_len]``; ``kind = "attn_context"``:
    ``P[queries, kv_len] @ V[kv_len, head_dim]``. Query heads share key/value heads in groups of
    ``heads // kv_heads`` (grouped-query attention), so the KV cache is read once per key/value head. MACs count the
    full ``queries x kv_len`` rectangle, as a dense matmul computes it (and as ``FlopCounterMode`` counts eager
    attention); with ``causal`` only ``queries * kv_len - queries * (queries - 1) / 2`` score entries per head are
    unmasked (:attr:`causal_macs`). The KV cache (``kv_len`` tokens, the new ones included) is read in both phases.

    Parameters
    ----------
    batch:
        Sequences.
    heads, kv_heads, head_dim:
        Query heads, key/value heads (``heads`` a multiple), elements per head.
    queries:
        Query tokens per sequence (the prompt in prefill, 1 in decode).
    kv_len:
        Key/value tokens per sequence (the prompt in prefill, the context in decode).
    causal:
        Query ``i`` sees keys ``0 .. kv_len - queries + i`` only.
    """

    OP: ClassVar[str] = "attention"
    KINDS: ClassVar[tuple[str, ...]] = ("attn_score", "attn_context")
    name: str
    kind: str
    batch: int
    heads: int
    kv_heads: int
    head_dim: int
    queries: int
    kv_len: int
    causal: bool
    act_bits: int
    kv_bits: int

    def __post_init__(self) -> None:
        _check(self.kind in self.KINDS, f"{self.name}: kind = {self.kind!r}: must be one of {', '.join(self.KINDS)}")
        for f in ("batch", "heads", "kv_heads", "head_dim", "queries", "kv_len"):
            _positive(f"{self.name}: {f}", getattr(self, f))
        _check(self.heads % self.kv_heads == 0,
               f"{self.name}: heads = {self.heads}: must be a multiple of kv_heads ({self.kv_heads})")
        _check(self.queries <= self.kv_len,
               f"{self.name}: queries = {self.queries}: must not exceed kv_len ({self.kv_len})")

    @property
    def macs(self) -> int:
        return self.batch * self.heads * self.queries * self.kv_len * self.head_dim

    @property
    def causal_macs(self) -> int:
        """MACs of the unmasked entries only."""
        q, lk = self.queries, self.kv_len
        seen = q * lk - q * (q - 1) // 2 if self.causal else q * lk
        return self.batch * self.heads * seen * self.head_dim

    @property
    def _scores(self) -> int:
        return self.batch * self.heads * self.queries * self.kv_len

    @property
    def _vectors(self) -> int:
        return self.batch * self.heads * self.queries * self.head_dim

    @property
    def act_in_bytes(self) -> float:
        return (self._vectors if self.kind == "attn_score" else self._scores) * self.act_bits / 8

    @property
    def act_out_bytes(self) -> float:
        return (self._scores if self.kind == "attn_score" else self._vectors) * self.act_bits / 8

    @property
    def kv_read_bytes(self) -> float:
        return self.batch * self.kv_heads * self.kv_len * self.head_dim * self.kv_bits / 8

    def shape_text(self) -> str:
        return (f"B={self.batch} heads={self.heads}/{self.kv_heads} d={self.head_dim} q={self.queries} "
                f"kv={self.kv_len}{' causal' if self.causal else ''}")


#: Operations per output element of the elementwise/row-wise vector kinds (a convention of this model, from the
#: reference formula; ``FlopCounterMode`` counts none of them, so they are not cross-checked against torch): add,
#: mul, relu 1; GELU in GPT-2's tanh form (cube: 2, scale, add, scale, tanh, add 1, times x, times 1/2) 9; SiLU
#: (x / (1 + e^-x): exp, add, divide, multiply) 4; layer norm (mean, subtract, square, variance sum, normalise, gain,
#: bias) 7; RMS norm (square, sum, normalise, gain) 4; softmax (max, subtract, exp, sum, divide) 5; rotary embedding
#: (x cos + rot(x) sin) 3.
VECTOR_OPS_PER_ELEMENT: dict[str, int] = {
    "add": 1, "mul": 1, "relu": 1, "gelu": 9, "silu": 4, "layer_norm": 7, "rms_norm": 4, "softmax": 5, "rope": 3,
}

#: Every vector kind: the elementwise ones, top-k routing (one compare per candidate per chosen expert) and the MoE
#: combine (a multiply-add per chosen expert's output element).
VECTOR_KINDS: tuple[str, ...] = (*VECTOR_OPS_PER_ELEMENT, "topk", "moe_combine")


@dataclass(frozen=True)
class Vector(_Op):
    """A row-wise or elementwise operation on activations (the vector unit's work).

    Parameters
    ----------
    kind:
        One of :data:`VECTOR_KINDS`.
    rows:
        Independent rows (tokens; ``batch x heads x queries`` for attention's softmax).
    width:
        Elements per row of each input.
    inputs:
        Input tensors of ``rows x width`` read (2 for a residual add or the gated MLP's multiply; top-k experts' outputs
        for ``moe_combine``).
    out_width:
        Elements per row written (``width``, or ``k`` for ``topk``).
    params:
        Names of the parameter tensors read (a norm's gain and bias).
    param_elems:
        Elements of those parameters.
    """

    OP: ClassVar[str] = "vector"
    name: str
    kind: str
    rows: int
    width: int
    inputs: int
    out_width: int
    params: tuple[str, ...]
    param_elems: int
    act_bits: int
    param_bits: int

    def __post_init__(self) -> None:
        _check(self.kind in VECTOR_KINDS,
               f"{self.name}: kind = {self.kind!r}: must be one of {', '.join(VECTOR_KINDS)}")
        for f in ("rows", "width", "inputs", "out_width"):
            _positive(f"{self.name}: {f}", getattr(self, f))
        _check(self.param_elems >= 0, f"{self.name}: param_elems = {self.param_elems}: must be >= 0")

    @property
    def flops(self) -> int:
        if self.kind == "topk":
            return self.rows * self.width * self.out_width
        if self.kind == "moe_combine":
            return 2 * self.rows * self.width * self.inputs
        return self.rows * self.out_width * VECTOR_OPS_PER_ELEMENT[self.kind]

    @property
    def param_bytes(self) -> float:
        return self.param_elems * self.param_bits / 8

    @property
    def act_in_bytes(self) -> float:
        return self.inputs * self.rows * self.width * self.act_bits / 8

    @property
    def act_out_bytes(self) -> float:
        return self.rows * self.out_width * self.act_bits / 8

    def tensors(self) -> tuple[str, ...]:
        return self.params

    def shape_text(self) -> str:
        ins = f"{self.inputs} x " if self.inputs > 1 else ""
        out = f" -> {self.out_width}" if self.out_width != self.width else ""
        return f"{ins}{self.rows} x {self.width}{out}"


@dataclass(frozen=True)
class KvWrite(_Op):
    """Writing the new tokens' keys and values into the KV cache.

    Parameters
    ----------
    batch, tokens:
        Sequences; new tokens per sequence.
    kv_heads, head_dim:
        Key/value heads and elements per head.
    """

    OP: ClassVar[str] = "kv_write"
    name: str
    batch: int
    tokens: int
    kv_heads: int
    head_dim: int
    act_bits: int
    kv_bits: int

    def __post_init__(self) -> None:
        for f in ("batch", "tokens", "kv_heads", "head_dim"):
            _positive(f"{self.name}: {f}", getattr(self, f))

    @property
    def _elems(self) -> int:
        return 2 * self.batch * self.tokens * self.kv_heads * self.head_dim  # keys and values

    @property
    def act_in_bytes(self) -> float:
        return self._elems * self.act_bits / 8

    @property
    def kv_write_bytes(self) -> float:
        return self._elems * self.kv_bits / 8

    def shape_text(self) -> str:
        return f"B={self.batch} tokens={self.tokens} kv_heads={self.kv_heads} d={self.head_dim}"


@dataclass(frozen=True)
class Lookup(_Op):
    """An embedding lookup: ``rows`` rows of ``width`` elements read from a table of ``table_rows`` rows.

    Not a matmul (no MACs); the rows read are stored in the weight format, groups along ``width``.
    """

    OP: ClassVar[str] = "lookup"
    name: str
    rows: int
    width: int
    table: str
    table_rows: int
    weights: WeightFormat
    act_bits: int

    def __post_init__(self) -> None:
        for f in ("rows", "width", "table_rows"):
            _positive(f"{self.name}: {f}", getattr(self, f))

    @property
    def weight_bytes(self) -> float:
        return self.weights.matrix_bytes(self.width, self.rows)

    @property
    def act_out_bytes(self) -> float:
        return self.rows * self.width * self.act_bits / 8

    def tensors(self) -> tuple[str, ...]:
        return (self.table,)

    def shape_text(self) -> str:
        return f"{self.rows} of {self.table_rows} x {self.width}"


Operator = Union[Gemm, AttentionMatmul, Vector, KvWrite, Lookup]

#: Operator classes by their ``op`` tag in the dict/JSON/YAML form.
OPERATOR_CLASSES: dict[str, type] = {c.OP: c for c in (Gemm, AttentionMatmul, Vector, KvWrite, Lookup)}


# --------------------------------------------------------------------------------------------------------------------
# Workload


@dataclass(frozen=True)
class Tensor:
    """A parameter tensor of the model: its name (expanded, no placeholder) and shape as stored."""

    name: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Placed:
    """An operator at its place in the workload: section (``prologue``/``layer``/``epilogue``) and layer index."""

    section: str
    layer: Union[int, None]
    op: Operator


@dataclass(frozen=True)
class Workload:
    """One forward step of a model for ``batch`` sequences.

    Parameters
    ----------
    model:
        Model name.
    phase:
        ``"prefill"`` (``tokens`` new tokens per sequence, attending to each other) or ``"decode"`` (one new token).
    batch:
        Sequences processed together.
    tokens:
        New tokens per sequence (the prompt length in prefill, 1 in decode).
    context:
        Tokens the last new token attends to, itself included (``tokens`` in prefill; ``C`` in decode: ``C - 1``
        cached tokens and the new one).
    precision:
        Default number formats (operators hold their own; a checkpoint's mixed format may differ per matrix).
    prologue, epilogue:
        Operators before the first and after the last layer.
    blocks:
        Distinct layer bodies.
    layers:
        Block index of every layer, in order: layers ``i`` and ``j`` are identical iff ``layers[i] == layers[j]``.
    tensors:
        Every parameter tensor of the model (unread experts included; a tied LM head once), as stored.
    source:
        Where the workload came from (``"name:gpt2"``, ``"directory:/path"``, ``"trace:Module"``, ``"yaml:file"``).
    moe:
        Mixture-of-experts routing assumption (``""`` for a dense model), e.g. ``"worst: 2 of 8 experts"``.
    checkpoint_dtypes:
        ``(tensor, dtype)`` of every tensor found in a checkpoint (empty without one).
    """

    model: str
    phase: str
    batch: int
    tokens: int
    context: int
    precision: Precision
    prologue: tuple[Operator, ...]
    blocks: tuple[tuple[Operator, ...], ...]
    layers: tuple[int, ...]
    epilogue: tuple[Operator, ...]
    tensors: tuple[Tensor, ...]
    source: str
    moe: str = ""
    checkpoint_dtypes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _check(self.phase in PHASES, f"phase = {self.phase!r}: must be one of {', '.join(PHASES)}")
        for f in ("batch", "tokens", "context"):
            _positive(f, getattr(self, f))
        _check(self.tokens <= self.context, f"tokens = {self.tokens}: must not exceed context ({self.context})")
        _check(self.phase != "decode" or self.tokens == 1, f"tokens = {self.tokens}: a decode step has 1 new token")
        for i, b in enumerate(self.layers):
            _check(0 <= b < len(self.blocks), f"layers[{i}] = {b}: no such block (there are {len(self.blocks)})")
        for section in (self.prologue, *self.blocks, self.epilogue):
            names = [op.name for op in section]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise WorkloadError(f"operator name {dup[0]!r} appears twice in one section; names must be unique")

    @staticmethod
    def tensor_name(name: str, layer: Union[int, None]) -> str:
        """A tensor name with the layer placeholder filled in."""
        return name.replace(LAYER, str(layer)) if layer is not None else name

    def operators(self) -> Iterator[Placed]:
        """Every operator in execution order, with its section and layer."""
        for op in self.prologue:
            yield Placed("prologue", None, op)
        for i, b in enumerate(self.layers):
            for op in self.blocks[b]:
                yield Placed("layer", i, op)
        for op in self.epilogue:
            yield Placed("epilogue", None, op)

    def totals(self) -> dict[str, float]:
        """Sums of :meth:`_Op.totals` over all operators (a block's sums times the layers using it)."""
        out: dict[str, float] = {}
        counts = [self.layers.count(b) for b in range(len(self.blocks))]
        sections = [(self.prologue, 1), (self.epilogue, 1)] + list(zip(self.blocks, counts))
        for ops, times in sections:
            for op in ops:
                for key, v in op.totals().items():
                    out[key] = out.get(key, 0) + v * times
        return out

    @property
    def parameters(self) -> int:
        """Elements of all parameter tensors of the model."""
        return sum(t.elements for t in self.tensors)

    def read_tensors(self) -> set[str]:
        """Names (expanded) of the tensors this step reads."""
        return {self.tensor_name(t, p.layer) for p in self.operators() for t in p.op.tensors()}

    # ---------------------------------------------------------------------------------------------------------------
    # Plain-data form

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; :func:`mapping.workload.workload_from_dict` reads it back equal."""
        return {
            "model": self.model, "phase": self.phase, "batch": self.batch, "tokens": self.tokens,
            "context": self.context, "source": self.source, "moe": self.moe,
            "precision": plain(self.precision),
            "prologue": [op_to_dict(op) for op in self.prologue],
            "blocks": [[op_to_dict(op) for op in b] for b in self.blocks],
            "layers": list(self.layers),
            "epilogue": [op_to_dict(op) for op in self.epilogue],
            "tensors": [{"name": t.name, "shape": list(t.shape)} for t in self.tensors],
            "checkpoint_dtypes": [list(p) for p in self.checkpoint_dtypes],
        }


def operator_tensors(placed: Iterable[tuple[Union[int, None], Operator]]) -> tuple[Tensor, ...]:
    """The parameter tensors that ``(layer, operator)`` pairs read, each once, with shapes as stored (a norm's
    parameters are ``width`` long each)."""
    seen: dict[str, Tensor] = {}
    for layer, op in placed:
        found: list[Tensor] = []
        if isinstance(op, Gemm):
            found.append(Tensor(Workload.tensor_name(op.weight, layer), op.weight_shape))
            if op.bias is not None:
                found.append(Tensor(Workload.tensor_name(op.bias, layer), (op.n,)))
        elif isinstance(op, Lookup):
            found.append(Tensor(op.table, (op.table_rows, op.width)))
        elif isinstance(op, Vector):
            found += [Tensor(Workload.tensor_name(p, layer), (op.width,)) for p in op.params]
        for t in found:
            if seen.setdefault(t.name, t).shape != t.shape:  # a tied table is read by lookup and LM head alike
                raise WorkloadError(f"tensor {t.name}: read as shape {seen[t.name].shape} and as {t.shape}")
    return tuple(seen.values())


def plain(obj: Any) -> Any:
    """Dataclasses as dicts and tuples as lists, recursively (JSON-serialisable)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [plain(v) for v in obj]
    return obj


def op_to_dict(op: Operator) -> dict[str, Any]:
    """An operator as plain data, tagged with its class's ``op``."""
    return {"op": op.OP, **plain(op)}
