"""Partitioning: which unit runs each operator of a workload.

Each operator goes to a unit that can run it, and among those to the one whose roofline time is lowest: ``max(MACs /
peak MAC rate, bytes / bandwidth of the path its operands take)`` on that unit — Duplex's operational-intensity rule
(ops per byte against each unit's ridge point) and PIM-GPT's split (GEMV in the banks, nonlinear work in the ASIC).

============================  ===============================================================================
operator                      rule
============================  ===============================================================================
GEMV/GEMM (``Gemm``)          PIM channels: the weights live in the banks and stream at bank bandwidth; with M > 1
                              each DRAM row activation serves all M input rows (:mod:`.schedule`). On a device with
                              an attention array, when ``M > 1`` and the array's roofline time (its peak MAC rate,
                              the weights and activations moved over the link) is lower: the array.
attention score + context     PIM channels (score and context as GEMVs over the KV cache in the banks, as CENT and
(``AttentionMatmul`` pairs)   AiM do; softmax on the vector unit); or the array (ATTEND: score, online softmax and
                              context in one, K/V moved over the link from the vector unit) where it has one, the
                              keys are all new (a prefill step), the head dimension fits its buffers and its roofline
                              time is lower. Both products of a pair go to the same unit.
norms, activations, adds,     the vector unit (its closed form, :func:`accel.interfaces.vector.vector_cycles`), when
softmax, rotary, top-k,       it has the op and a row fits a third of its buffer; otherwise the GPU fallback
MoE combine (``Vector``)
KV cache writes               PIM channels (column writes of the banks holding the cache)
embedding lookups             the host: it has the token ids and a copy of the tables, and sends the rows over the
                              link (a table the device reads for nothing else is not placed in its banks)
anything else                 the GPU fallback: the time of :func:`accel.gpu.roofline_time` on the named GPU, plus
                              the link transfers to and from the host (the report lists these operators)
============================  ===============================================================================

Every figure comes from the device description: :meth:`accel.config.DeviceConfig.peak_macs_per_s`, the bank
bandwidth :attr:`accel.config.PimConfig.internal_bandwidth_bytes_per_s`, :meth:`accel.config.PimConfig.bytes_per_weight`,
the array's and the link's figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Union

from accel.config import DeviceConfig
from accel.errors import AccelError
from accel.interfaces import vector as vec_iface
from accel.isa import TABLES, Family, VectorOp

from .workload import AttentionMatmul, Gemm, KvWrite, Lookup, Operator, Vector, Workload

__all__ = ["MappingError", "UNITS", "VECTOR_OPS", "Decision", "Partition", "partition", "op_key", "kv_datatype",
           "vector_row_fits", "gpu_time", "gpu_kernel"]

#: The units an operator can go to.
UNITS = ("pim", "array", "vector", "host", "gpu")

#: Vector unit commands of each workload vector kind (ReLU has none: the vector unit's ISA lacks it).
VECTOR_OPS: dict[str, tuple[VectorOp, ...]] = {
    "layer_norm": (VectorOp.LAYERNORM,), "rms_norm": (VectorOp.RMSNORM,), "gelu": (VectorOp.GELU,),
    "silu": (VectorOp.SILU,), "mul": (VectorOp.MUL,), "add": (VectorOp.ADD,), "softmax": (VectorOp.SOFTMAX,),
    "rope": (VectorOp.ROPE,), "topk": (VectorOp.TOPK,), "moe_combine": (VectorOp.MUL, VectorOp.REDUCE),
}

#: The GPU roofline kind (:data:`accel.gpu.OP_KINDS`) of each workload vector kind for the fallback's time (ReLU,
#: top-k and the MoE combine move the bytes of the kind named; all are memory bound on every GPU of the table).
_GPU_KIND = {"layer_norm": "layernorm", "rms_norm": "rmsnorm", "gelu": "gelu", "silu": "silu", "mul": "silu_mul",
             "add": "residual_add", "softmax": "softmax", "relu": "gelu", "rope": "softmax", "topk": "softmax",
             "moe_combine": "residual_add"}


#: Vector ops that work on whole rows (a row must fit the buffer); the others are elementwise.
_ROW_OPS = (VectorOp.LAYERNORM, VectorOp.RMSNORM, VectorOp.SOFTMAX, VectorOp.TOPK)


class MappingError(AccelError, ValueError):
    """A model cannot be mapped as asked: it does not fit, its context exceeds the KV capacity, ..."""


def op_key(section: str, block: Union[int, None], name: str) -> str:
    """The key of an operator of a workload: ``prologue/embed_tokens``, ``block0/attn.c_attn``, ``epilogue/lm_head``."""
    return f"block{block}/{name}" if section == "layer" else f"{section}/{name}"


def kv_datatype(device: DeviceConfig, kv_bits: int) -> str:
    """The datatype KV entries take in the banks (int8: the MAC lanes' activation format)."""
    if kv_bits != 8:
        raise MappingError(f"kv_bits = {kv_bits}: the PIM banks hold the KV cache as int8 (kv_bits 8)")
    if device.pim.lane == "bitserial" and "int8" not in device.bitserial.datatypes:
        raise MappingError(f"device {device.name}: its bit-serial lanes do not decode int8, the KV cache's format")
    return "int8"


def vector_row_fits(op: VectorOp, length: int, src2: int, device: DeviceConfig) -> bool:
    """Whether one row of ``length`` elements fits the third of the vector buffer that each operand gets
    (:mod:`.codegen` splits longer ops by rows, elementwise ones also by length)."""
    budget = device.vector.buffer_lines // 3
    if op not in _ROW_OPS:
        return True   # elementwise: any length is cut into pieces
    return length < 1 << TABLES[Family.VECTOR].width("length") and \
        all(n <= budget for _, _, n in vec_iface.regions(op, length, 1, 0, src2, 0, device.vector))


@dataclass(frozen=True)
class Decision:
    """Where one operator runs and why.

    Members
    -------
    unit:
        One of :data:`UNITS`.
    rule:
        The rule that decided, in words.
    times_s:
        Roofline time (s) on every unit that can run it.
    intensity:
        Operational intensity (FLOP per byte moved, :attr:`mapping.workload.ops._Op.intensity`).
    ridge:
        The chosen unit's ridge point (FLOP/B at which its compute and bandwidth ceilings meet; 0 where none).
    """

    unit: str
    rule: str
    times_s: dict[str, float]
    intensity: float
    ridge: float

    @property
    def bound(self) -> str:
        """The roofline ceiling on the chosen unit: ``"bandwidth"`` below its ridge point, else ``"compute"``."""
        return "bandwidth" if self.intensity < self.ridge else "compute"

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "rule": self.rule, "times_s": self.times_s, "intensity": self.intensity,
                "ridge": self.ridge, "bound": self.bound}


@dataclass
class Partition:
    """Every operator's :class:`Decision`, by :func:`op_key`; ``fallback`` lists the keys sent to the GPU."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    gpu: str = ""

    @property
    def fallback(self) -> list[str]:
        return [k for k, d in self.decisions.items() if d.unit == "gpu"]

    def __getitem__(self, key: str) -> Decision:
        return self.decisions[key]


def _sections(w: Workload) -> Iterator[tuple[str, Union[int, None], tuple[Operator, ...]]]:
    yield "prologue", None, w.prologue
    for b, ops in enumerate(w.blocks):
        yield "layer", b, ops
    yield "epilogue", None, w.epilogue


def _pim_gemm_s(dev: DeviceConfig, op: Gemm) -> float:
    """PIM roofline time of a weight GEMM: the weights' DRAM columns at bank bandwidth, or the MACs at the lanes'
    pace for the weights' (slowest) datatype, whichever is longer."""
    p = dev.pim
    dt = max(op.weights.datatypes, key=dev.mac_column_cycles)
    cols = -(-op.k // p.weights_per_column(op.weights.code_bits)) * op.n
    return max(cols * p.column_bytes / p.internal_bandwidth_bytes_per_s, op.macs / dev.peak_macs_per_s(dt))


def _array_s(dev: DeviceConfig, macs: int, link_bytes: float) -> float:
    a = dev.attention
    return max(macs / a.peak_macs_per_s, link_bytes / dev.link.bytes_per_s)


def _pim_attention_s(dev: DeviceConfig, ops: tuple[AttentionMatmul, ...]) -> float:
    """PIM roofline time of a score/context pair over the KV cache: its columns at bank bandwidth or its MACs at
    int8 pace (the KV cache's format, packed as the banks hold it)."""
    p = dev.pim
    dt = kv_datatype(dev, ops[0].kv_bits)
    cols = sum(o.batch * o.kv_heads * o.kv_len * o.head_dim for o in ops) / p.weights_per_column(8)
    macs = sum(o.macs for o in ops)
    return max(cols * p.column_bytes / p.internal_bandwidth_bytes_per_s, macs / dev.peak_macs_per_s(dt))


def gpu_kernel(op: Operator) -> tuple[str, dict[str, int], float] | None:
    """The GPU kernel an operator runs as (:data:`accel.gpu.OP_KINDS`): ``(kind, shape, fraction)``, the operator
    taking ``fraction`` of that kernel's time (the fused attention kernel computes score and context: each takes
    half); fp16 activations, weights at their width where the kernels pack it (3, 4, 8 bits), else dense fp16.
    None for the operators no kernel runs (a KV-cache write, an embedding lookup: plain copies, timed at the GPU's
    bandwidth)."""
    if isinstance(op, Gemm):
        bits = round(op.weights.code_bits)
        return "matmul", {"M": op.m, "N": op.n, "K": op.k, "weight_bits": bits if bits in (3, 4, 8) else 16}, 1.0
    if isinstance(op, AttentionMatmul):
        return "attention", {"batch": op.batch, "q_heads": op.heads, "kv_heads": op.kv_heads, "q_len": op.queries,
                             "kv_len": op.kv_len, "head_dim": op.head_dim}, 0.5
    if isinstance(op, Vector):
        return _GPU_KIND[op.kind], {"rows": op.rows, "cols": op.width * op.inputs}, 1.0
    return None


def gpu_time(op: Operator, gpu: str) -> float:
    """Roofline time (s) of an operator on a GPU of :data:`accel.gpu.GPU_PEAKS` (its :func:`gpu_kernel`'s share of
    the kernel's roofline; a copy's bytes at the GPU's bandwidth)."""
    from accel.gpu import find_peak, roofline_time

    k = gpu_kernel(op)
    if k is None:
        return op.bytes / find_peak(gpu).bandwidth
    kind, shape, fraction = k
    return fraction * roofline_time(kind, shape, "fp16", gpu)


def partition(workload: Workload, device: DeviceConfig, gpu: str = "h100-sxm") -> Partition:
    """Decide the unit of every operator (module docstring). ``gpu`` names the fallback GPU (a key of
    :data:`accel.gpu.GPU_PEAKS`)."""
    from accel.gpu import find_peak

    find_peak(gpu)   # an unknown GPU is refused whether or not an operator falls back to it
    part = Partition(gpu=gpu)
    p = device.pim
    pim_ridge = 2 * device.peak_macs_per_s(device.bitserial.datatypes[0] if p.lane == "bitserial" else "int8") \
        / p.internal_bandwidth_bytes_per_s
    arr = device.attention
    arr_ridge = 2 * arr.peak_macs_per_s / device.link.bytes_per_s if arr is not None else 0.0
    vec_ridge = 0.0
    for section, block, ops in _sections(workload):
        pairs = _attention_pairs(ops)
        for i, op in enumerate(ops):
            key = op_key(section, block, op.name)
            if isinstance(op, Gemm):
                t = {"pim": _pim_gemm_s(device, op)}
                if arr is not None and op.m > 1:
                    t["array"] = _array_s(device, op.macs, op.weight_bytes + op.act_in_bytes + op.act_out_bytes)
                unit = min(t, key=t.get)
                rule = (f"GEMM M={op.m}: array {t['array'] * 1e6:.3g} us < PIM {t['pim'] * 1e6:.3g} us (rooflines)"
                        if unit == "array" else
                        f"GEMM M={op.m}: PIM {t['pim'] * 1e6:.3g} us < array {t['array'] * 1e6:.3g} us (rooflines); "
                        f"one row activation serves the {op.m} input rows" if "array" in t else
                        f"GEMV: weights in the banks, streamed at bank bandwidth" if op.m == 1 else
                        f"GEMM M={op.m}: weights in the banks; one row activation serves the {op.m} input rows "
                        f"(no array on {device.name})")
                ridge = arr_ridge if unit == "array" else pim_ridge
            elif isinstance(op, AttentionMatmul):
                pair = pairs[i]
                t = {"pim": _pim_attention_s(device, pair)}
                # the array takes attention whose keys are all new (prefill): cached keys would come from the banks
                if arr is not None and op.head_dim <= arr.head_dim and op.queries == op.kv_len:
                    t["array"] = _array_s(device, sum(o.macs for o in pair),
                                          sum(o.kv_read_bytes + o.act_in_bytes + o.act_out_bytes for o in pair))
                unit = min(t, key=t.get)
                why = ("score and context as GEMVs over the KV cache in the banks, softmax on the vector unit"
                       if unit == "pim" else "ATTEND on the array (online softmax), K/V moved over the link")
                alt = " vs ".join(f"{u} {v * 1e6:.3g} us" for u, v in t.items())
                rule = f"attention pair ({alt}, rooflines): {why}" if len(t) > 1 else why
                ridge = arr_ridge if unit == "array" else pim_ridge
            elif isinstance(op, Vector):
                if _absorbed_softmax(ops, i, pairs, part, section, block):
                    t = {"array": 0.0}
                    unit, rule, ridge = "array", "softmax inside the array's ATTEND (online softmax)", arr_ridge
                else:
                    vops = VECTOR_OPS.get(op.kind)
                    src2 = op.out_width if op.kind == "topk" else 0
                    if vops is None:
                        unit, rule = "gpu", f"the vector unit has no {op.kind} operation"
                        t = {}
                    elif not all(vector_row_fits(v, op.width, src2, device) for v in vops):
                        unit, rule = "gpu", (f"a row of {op.width} elements does not fit a third of the vector "
                                             f"buffer ({device.vector.buffer_bytes} bytes)")
                        t = {}
                    else:
                        cyc = sum(vec_iface.vector_cycles(v, op.width, op.rows * (op.inputs if v == VectorOp.MUL
                                                          and op.kind == "moe_combine" else 1), src2, device.vector)
                                  for v in vops)
                        t = {"vector": cyc / (device.vector.clock_mhz * 1e6)}
                        unit, rule = "vector", f"{'+'.join(v.name for v in vops)} on the vector unit"
                    ridge = vec_ridge
            elif isinstance(op, KvWrite):
                t, unit, ridge = {}, "pim", 0.0
                rule = "KV entries written into the banks' rows (column writes)"
            elif isinstance(op, Lookup):
                t, unit, ridge = {}, "host", 0.0
                rule = "the host sends the table rows of the step's tokens over the link"
            else:  # pragma: no cover - every operator class is handled above
                raise MappingError(f"{op.name}: unknown operator class {type(op).__name__}")
            if unit == "gpu":
                t = {**t, "gpu": gpu_time(op, gpu)}
            part.decisions[key] = Decision(unit, rule, t, op.intensity, ridge)
    return part


def _attention_pairs(ops: tuple[Operator, ...]) -> dict[int, tuple[AttentionMatmul, ...]]:
    """Index of every attention product -> its pair (score and the next context), or itself alone."""
    out: dict[int, tuple[AttentionMatmul, ...]] = {}
    idx = [i for i, o in enumerate(ops) if isinstance(o, AttentionMatmul)]
    j = 0
    while j < len(idx):
        i = idx[j]
        if ops[i].kind == "attn_score" and j + 1 < len(idx) and ops[idx[j + 1]].kind == "attn_context":
            pair = (ops[i], ops[idx[j + 1]])
            out[i] = out[idx[j + 1]] = pair
            j += 2
        else:
            out[i] = (ops[i],)
            j += 1
    return out


def _absorbed_softmax(ops: tuple[Operator, ...], i: int, pairs: dict, part: Partition, section: str,
                      block: Union[int, None]) -> bool:
    """A softmax between a score and its context product that went to the array is part of the array's ATTEND."""
    op = ops[i]
    if op.kind != "softmax":
        return False
    before = [j for j in range(i) if isinstance(ops[j], AttentionMatmul)]
    if not before or ops[before[-1]].kind != "attn_score" or len(pairs[before[-1]]) != 2:
        return False
    d = part.decisions.get(op_key(section, block, ops[before[-1]].name))
    return d is not None and d.unit == "array"
