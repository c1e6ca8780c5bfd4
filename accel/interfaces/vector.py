"""The vector unit's interface: the passes of every op, its one closed-form cost, its event counts and the buffer
regions it touches.

An op works on ``count`` rows of ``length`` elements; a row is ``R = ceil(length / lanes)`` beats (buffer lines).
It runs as a sequence of *passes*; a pass issues its beats one per cycle into a pipeline of ``depth`` cycles (a beat
issued in cycle ``c`` has its result in cycle ``c + depth``), and the next pass starts when the last result of this
one is there, after the pass's scalar stage if it has one (a row statistic's reciprocal or reciprocal square root).
The unit runs one op at a time, in program order: an op accepted in cycle ``s`` issues its first beat in ``s`` and
has completed (its results in the buffer) in cycle ``s + vector_cycles(...)``, when the next op may be accepted.

Passes per op (``s`` sram_latency, ``a`` add, ``m`` mul, ``e`` exp, ``g`` activation, ``r`` reduce_latency,
``q`` recip_latency; beats ``n = count * R``):

=========  ==========================================================================================
COPY       n beats, depth s
ADD, MUL   n beats, depth s + a (s + m); two operands per beat
QUANT      n beats, depth s + m + a (scale, round)
GELU/SILU  n beats, depth s + g
ROPE       n beats, depth s + m + a (x cos + rot(x) sin); two operands per beat
REDUCE     n beats, depth s + a (``count`` partial-sum rows accumulate into one)
RMSNORM    n beats, depth s + m + r, scalar q; then n beats, depth s + 2m (x * rstd * gamma)
LAYERNORM  n beats, depth s + m + r, scalar q; then n beats, depth s + 2a + 2m ((x - mean) * rstd * gamma + beta)
SOFTMAX    n beats, depth s + r (max); n beats, depth s + a + e + r, scalar q (exp, sum); n beats, depth s + m
TOPK       k passes of n beats, depth s + r (find the largest, mask it); k = ``src2``
NOP        one beat, depth 1
=========  ==========================================================================================

Assumption (stated in docs/system.md): the buffer delivers every operand a beat needs in its cycle (one bank per
operand), so no pass is slowed by buffer ports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..config import VectorConfig
from ..isa import VectorOp

__all__ = ["Pass", "passes", "vector_cycles", "vector_events", "regions", "beats_per_row"]


class Pass(NamedTuple):
    """One pass of an op: beats issued (one per cycle), pipeline depth (cycles), scalar stage after it (cycles, 0:
    none), buffer lines read per beat; and the work each lane of a beat does, for the energy table: adds (and
    compares), multiplies, exponentials, activations (GELU/SiLU)."""

    beats: int
    depth: int
    scalar: int
    reads: int
    adds: int = 0
    muls: int = 0
    exps: int = 0
    acts: int = 0


def beats_per_row(length: int, cfg: VectorConfig) -> int:
    """Beats (buffer lines) of one row of ``length`` elements."""
    return -(-length // cfg.lanes)


def passes(op: int, length: int, count: int, src2: int, cfg: VectorConfig) -> tuple[Pass, ...]:
    """The passes of one op (``count`` 0 means 1; ``src2`` is k for TOPK)."""
    op = VectorOp(op)
    n = max(1, count) * beats_per_row(length, cfg)
    s, a, m, e, g = cfg.sram_latency, cfg.add_latency, cfg.mul_latency, cfg.exp_latency, cfg.activation_latency
    r, q = cfg.reduce_latency, cfg.recip_latency
    if op == VectorOp.NOP:
        return (Pass(1, 1, 0, 0),)
    if op == VectorOp.COPY:
        return (Pass(n, s, 0, 1),)
    if op == VectorOp.ADD:
        return (Pass(n, s + a, 0, 2, adds=1),)
    if op == VectorOp.MUL:
        return (Pass(n, s + m, 0, 2, muls=1),)
    if op == VectorOp.QUANT:
        return (Pass(n, s + m + a, 0, 1, adds=1, muls=1),)
    if op in (VectorOp.GELU, VectorOp.SILU):
        return (Pass(n, s + g, 0, 1, acts=1),)
    if op == VectorOp.ROPE:
        return (Pass(n, s + m + a, 0, 2, adds=1, muls=2),)
    if op == VectorOp.REDUCE:
        return (Pass(n, s + a, 0, 1, adds=1),)
    if op == VectorOp.RMSNORM:
        return (Pass(n, s + m + r, q, 1, adds=1, muls=1), Pass(n, s + 2 * m, 0, 2, muls=2))
    if op == VectorOp.LAYERNORM:
        return (Pass(n, s + m + r, q, 1, adds=2, muls=1), Pass(n, s + 2 * a + 2 * m, 0, 3, adds=2, muls=2))
    if op == VectorOp.SOFTMAX:
        return (Pass(n, s + r, 0, 1, adds=1), Pass(n, s + a + e + r, q, 1, adds=2, exps=1),
                Pass(n, s + m, 0, 1, muls=1))
    if op == VectorOp.TOPK:
        return tuple(Pass(n, s + r, 0, 1, adds=1) for _ in range(max(1, src2)))
    raise AssertionError(f"vector op {op!r} has no pass table")  # pragma: no cover - every VectorOp is listed


def vector_cycles(op: int, length: int, count: int, src2: int, cfg: VectorConfig) -> int:
    """Cycles (of the vector clock) the unit is busy with one op: ``sum(beats + depth - 1 + scalar)`` over its
    passes. The one cost formula of the vector unit: the system engine, the cost model and the report use it."""
    return sum(p.beats + p.depth - 1 + p.scalar for p in passes(op, length, count, src2, cfg))


def regions(op: int, length: int, count: int, src: int, src2: int, dst: int,
            cfg: VectorConfig) -> list[tuple[str, int, int]]:
    """``(operand, first line, lines)`` of every buffer region an op reads or writes."""
    op = VectorOp(op)
    if op == VectorOp.NOP:
        return []
    rows = max(1, count)
    R = beats_per_row(length, cfg)
    out = [("src", src, rows * R)]
    if op in (VectorOp.ADD, VectorOp.MUL, VectorOp.ROPE):
        out.append(("src2", src2, rows * R))
    elif op == VectorOp.LAYERNORM:
        out.append(("src2", src2, 2 * R))
    elif op == VectorOp.RMSNORM:
        out.append(("src2", src2, R))
    if op == VectorOp.REDUCE:
        out.append(("dst", dst, R))
    elif op == VectorOp.TOPK:
        out.append(("dst", dst, -(-2 * rows * max(1, src2) // cfg.lanes)))  # k values and k indices per row
    else:
        out.append(("dst", dst, rows * R))
    return out


@dataclass(frozen=True)
class VectorEvents:
    """Event counts of vector ops for the energy table (:data:`accel.energy.EVENTS`): ops, beats, lane slots, lane
    adds/compares, multiplies, exponentials and activations, scalar reciprocals, buffer line reads/writes."""

    ops: int = 0
    beats: int = 0
    lane_ops: int = 0
    add_ops: int = 0
    mul_ops: int = 0
    exp_ops: int = 0
    act_ops: int = 0
    recips: int = 0
    sram_reads: int = 0
    sram_writes: int = 0


def vector_events(op: int, length: int, count: int, src2: int, cfg: VectorConfig) -> VectorEvents:
    """Events of one op: every beat of every pass works on ``lanes`` lanes (each doing the pass's work) and reads
    its operands' lines; a pass with a scalar stage takes one reciprocal per row; the op writes its destination
    region once."""
    ps = passes(op, length, count, src2, cfg)
    beats = sum(p.beats for p in ps)
    writes = sum(n for name, _, n in regions(op, length, count, 0, src2, 0, cfg) if name == "dst")
    lanes = cfg.lanes

    def work(name: str) -> int:
        return sum(p.beats * getattr(p, name) for p in ps) * lanes

    recips = sum(1 for p in ps if p.scalar) * max(1, count)
    return VectorEvents(1, beats, beats * lanes, work("adds"), work("muls"), work("exps"), work("acts"), recips,
                        sum(p.beats * p.reads for p in ps), writes)
