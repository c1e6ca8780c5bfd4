"""FLOPs and bytes of every operator kind the GPU kernels run, and the roofline time on a GPU of the peak table.

This is the one place where an operator's work is counted: the kernels' benchmarks divide these counts by measured
time (achieved FLOP/s and bytes/s), ``accel gpu bench --estimate`` and :func:`roofline_time` divide them by the peaks.

Bytes are the compulsory traffic: every input read once and every output written once (a kernel that re-reads, such
as attention re-reading K/V per query tile or split-K decode writing partial results, moves more; its *achieved*
bandwidth is then an effective figure). FLOPs count a multiply-add as 2; the vector operators' per-element counts
are nominal (they are memory bound on every GPU of the table).

Operator kinds and their shape keys (integers):

============================  =====================================================  ==============================
kind                          shape keys (defaults)                                   dtype (activations)
============================  =====================================================  ==============================
``matmul`` (``gemv``,         ``M, N, K``, ``weight_bits`` (16: dense fp16 weights;   ``fp16``, ``bf16`` or ``int8``
``gemm``, ``linear``)         3/4/8: packed), ``group_size`` (128)                    (int8 writes int32 outputs)
``attention``                 ``batch, q_heads, kv_heads, q_len, kv_len, head_dim``,  ``fp16``, ``bf16``, ``fp32``
                              ``causal`` (1 if ``q_len > 1`` else 0; bottom-right
                              aligned)
``layernorm``, ``rmsnorm``,   ``rows, cols``                                          ``fp16``, ``bf16``, ``fp32``
``gelu``, ``silu``,
``silu_mul``,
``residual_add``,
``softmax``
``rotary``                    ``batch, heads, seq, head_dim``                         ``fp16``, ``bf16``, ``fp32``
============================  =====================================================  ==============================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .backend import GpuError
from .layout import PACK_BITS, packed_weight_bytes
from .peaks import find_peak

__all__ = ["OpCost", "OP_KINDS", "DTYPE_BYTES", "op_cost", "roofline_time", "attention_pairs", "achieved"]

#: Bytes per element of each activation dtype name.
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4, "int8": 1}


@dataclass(frozen=True)
class OpCost:
    """Work of one operator: ``flops`` (2 per multiply-add), ``bytes`` (compulsory traffic) and the compute class
    whose peak bounds it (``fp16``/``int8`` tensor cores or ``fp32``)."""

    flops: float
    bytes: float
    compute: str

    @property
    def intensity(self) -> float:
        """FLOPs per byte."""
        return self.flops / self.bytes


def attention_pairs(q_len: int, kv_len: int, causal: bool) -> int:
    """(query, key) pairs attention computes: all ``q_len * kv_len``, or with a causal mask aligned bottom-right
    (query ``i`` sees keys ``0 .. i + kv_len - q_len``)."""
    if not causal:
        return q_len * kv_len
    offset = kv_len - q_len
    return q_len * (offset + 1) + q_len * (q_len - 1) // 2


def _matmul(s: Mapping[str, int], dtype: str) -> OpCost:
    m, n, k, bits, gs = s["M"], s["N"], s["K"], s["weight_bits"], s["group_size"]
    if bits == 16:
        weights = n * k * 2
    elif bits in PACK_BITS:
        weights = packed_weight_bytes(n, k, bits, gs)
    else:
        raise GpuError(f"weight_bits = {bits}: use 16 (dense fp16) or one of {PACK_BITS} (packed)")
    out = 4 if dtype == "int8" else DTYPE_BYTES[dtype]
    return OpCost(2.0 * m * n * k, weights + m * k * DTYPE_BYTES[dtype] + m * n * out,
                  "int8" if dtype == "int8" else "fp16")


def _attention(s: Mapping[str, int], dtype: str) -> OpCost:
    b, hq, hkv, sq, skv, d = (s[x] for x in ("batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim"))
    causal = bool(s["causal"]) if s.get("causal") is not None else sq > 1
    if causal and skv < sq:
        raise GpuError(f"causal attention with kv_len {skv} < q_len {sq}: every query needs a key it may attend; "
                       f"give kv_len >= q_len")
    e = DTYPE_BYTES[dtype]
    flops = 4.0 * b * hq * d * attention_pairs(sq, skv, causal)
    return OpCost(flops, e * (2 * b * hq * sq * d + 2 * b * hkv * skv * d), "fp32" if dtype == "fp32" else "fp16")


def _rowwise(flops_per_elem: float, tensors: int, vectors: int = 0) -> Callable[[Mapping[str, int], str], OpCost]:
    """``tensors`` (rows, cols) tensors moved (inputs + outputs) and ``vectors`` per-column parameter vectors."""

    def cost(s: Mapping[str, int], dtype: str) -> OpCost:
        r, c, e = s["rows"], s["cols"], DTYPE_BYTES[dtype]
        return OpCost(flops_per_elem * r * c, e * (tensors * r * c + vectors * c), "fp32")

    return cost


def _rotary(s: Mapping[str, int], dtype: str) -> OpCost:
    b, h, sq, d, e = s["batch"], s["heads"], s["seq"], s["head_dim"], DTYPE_BYTES[dtype]
    return OpCost(3.0 * b * h * sq * d, e * (2 * b * h * sq * d + 2 * sq * d), "fp32")


@dataclass(frozen=True)
class OpKind:
    """An operator kind: its required shape keys, defaults, allowed dtypes and cost function."""

    keys: tuple[str, ...]
    defaults: Mapping[str, int | None]
    dtypes: tuple[str, ...]
    cost: Callable[[Mapping[str, int], str], OpCost]


_FLOAT = ("fp16", "bf16", "fp32")
_MATMUL = OpKind(("M", "N", "K"), {"weight_bits": 16, "group_size": 128}, ("fp16", "bf16", "int8"), _matmul)
_ROWS = ("rows", "cols")

#: Every operator kind by name (``gemv``, ``gemm`` and ``linear`` are ``matmul``).
OP_KINDS: dict[str, OpKind] = {
    "matmul": _MATMUL, "gemv": _MATMUL, "gemm": _MATMUL, "linear": _MATMUL,
    "attention": OpKind(("batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim"), {"causal": None}, _FLOAT,
                        _attention),
    "layernorm": OpKind(_ROWS, {}, _FLOAT, _rowwise(8, 2, 2)),
    "rmsnorm": OpKind(_ROWS, {}, _FLOAT, _rowwise(4, 2, 1)),
    "gelu": OpKind(_ROWS, {}, _FLOAT, _rowwise(10, 2)),
    "silu": OpKind(_ROWS, {}, _FLOAT, _rowwise(5, 2)),
    "silu_mul": OpKind(_ROWS, {}, _FLOAT, _rowwise(6, 3)),
    "residual_add": OpKind(_ROWS, {}, _FLOAT, _rowwise(1, 3)),
    "softmax": OpKind(_ROWS, {}, _FLOAT, _rowwise(5, 2)),
    "rotary": OpKind(("batch", "heads", "seq", "head_dim"), {}, _FLOAT, _rotary),
}


def op_cost(op_kind: str, shape: Mapping[str, int], dtype: str = "fp16") -> OpCost:
    """FLOPs and bytes of one operator (see the module doc for kinds and shape keys).

    Raises
    ------
    GpuError
        Unknown kind or dtype, a missing or unknown shape key, or a size that is not a positive integer.
    """
    kind = OP_KINDS.get(op_kind)
    if kind is None:
        raise GpuError(f"operator kind {op_kind!r} is not one of {', '.join(OP_KINDS)}")
    if dtype not in kind.dtypes:
        raise GpuError(f"dtype {dtype!r} for {op_kind}: use one of {', '.join(kind.dtypes)}")
    unknown = set(shape) - set(kind.keys) - set(kind.defaults)
    missing = [k for k in kind.keys if k not in shape]
    if unknown or missing:
        raise GpuError(f"{op_kind} shape {dict(shape)}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) +
            ([f"unknown {', '.join(sorted(unknown))}"] if unknown else [])) +
            f" (keys: {', '.join(kind.keys)}; optional: {', '.join(kind.defaults) or 'none'})")
    full = {**kind.defaults, **shape}
    for k, v in full.items():
        if v is None and k in kind.defaults:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "causal" else 1):
            raise GpuError(f"{op_kind} shape {k} = {v!r}: it must be a positive integer")
    return kind.cost(full, dtype)


def roofline_time(op_kind: str, shape: Mapping[str, int], dtype: str, gpu_name: str) -> float:
    """Roofline time (seconds) of one operator on a GPU of the peak table: ``max(FLOPs / peak compute, bytes /
    peak bandwidth)``, a lower bound that no launch overhead or imperfect overlap is added to.

    Parameters
    ----------
    op_kind, shape, dtype:
        The operator (see the module doc).
    gpu_name:
        A key of :data:`accel.gpu.peaks.GPU_PEAKS` or a device name as ``torch.cuda.get_device_name`` reports it.
    """
    cost = op_cost(op_kind, shape, dtype)
    peak = find_peak(gpu_name)
    return max(cost.flops / peak.peak_ops(cost.compute), cost.bytes / peak.bandwidth)


def achieved(timing: Mapping[str, float], cost: OpCost) -> dict:
    """A measured timing (``median_ms`` ...) with the counted work and the achieved rates: ``gbs`` (GB/s) and
    ``tflops`` (10^12 FLOP/s) over the median time."""
    s = timing["median_ms"] * 1e-3
    return {**timing, "bytes": cost.bytes, "flops": cost.flops, "gbs": cost.bytes / s / 1e9,
            "tflops": cost.flops / s / 1e12}
