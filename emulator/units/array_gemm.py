"""GEMM timing on the attention array's 2D PE array: closed forms for two timing modes and three dataflows.

The array is ``rows`` x ``cols`` PEs (``R`` x ``C``); the GEMM is ``(M x K) @ (K x N)``. Each dataflow puts two
dimensions on the array and loops the third in time (the operand mapping of SCALE-Sim v3, whose GEMM mode takes the
``M x K`` operand as the ifmap and the ``K x N`` operand as the filter):

=========  ================================  ==============  ===========================
dataflow   on the array (rows x cols)        in time (``T``)  folds ``F``
=========  ================================  ==============  ===========================
``os``     output rows ``M`` x out cols ``N``  ``K``           ``ceil(M/R) * ceil(N/C)``
``ws``     ``K`` x ``N`` (weights held)        ``M``           ``ceil(K/R) * ceil(N/C)``
``is``     ``K`` x ``M`` (inputs held)         ``N``           ``ceil(K/R) * ceil(M/C)``
=========  ================================  ==============  ===========================

Timing modes
------------
``scalesim``
    SCALE-Sim v3's conventions exactly (read from its ``compute/systolic_compute_{os,ws,is}.py`` and
    ``memory/double_buffered_scratchpad_mem.py``): every fold is a separate block of demand lines that pays its
    full pipeline fill and drain; weight- and input-stationary folds first preload the stationary operand (``R``
    lines, plus ``R - 1`` for it to settle); the reported number is ``Total Cycles`` = the index of the last demand
    line served, i.e. the line count minus one (no stalls: the compute-only ``CALC`` bandwidth mode). Per fold the
    line count is ``T + R + C - 2`` (os) or ``2R + C + T - 2`` (ws, is), so ``cycles = F * lines - 1``.
``native``
    The array's own overlapped timing with the same operand mapping: one pipeline fill and drain per GEMM, the folds
    issued back to back. Output-stationary folds swap into shadow accumulators so the next fold's operands follow
    immediately (``F*T + R + C - 2`` cycles); weight-/input-stationary folds preload the next fold's stationary
    operand into a second register bank while the current fold streams, so a fold costs ``max(T, R)`` and only
    the first preload is exposed (``R + (F-1)*max(T, R) + T + R + C - 2`` cycles). The count is a number of cycles.

Both are never below ``ceil(M*K*N / (R*C))`` (a fold does at most ``R*C`` MACs per cycle). Native mode is never
slower than SCALE-Sim's model: its cycle count is at most SCALE-Sim's line count (``scalesim cycles + 1``; the ``+1``
is SCALE-Sim's last-index convention, without which a 1x1 array would report ``K - 1`` cycles for ``K`` MACs, below
the ideal bound).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from accel.errors import ConfigError, StimulusError

__all__ = ["DATAFLOWS", "TIMINGS", "GemmTiming", "gemm_timing", "mapping", "ideal_cycles", "MAX_DIM", "MAX_ARRAY"]

DATAFLOWS = ("os", "ws", "is")
TIMINGS = ("native", "scalesim")
#: Largest GEMM dimension accepted (keeps every count an exact integer well inside 64 bits).
MAX_DIM = 1 << 24
#: Largest array side accepted (the attention array's config allows up to 1024).
MAX_ARRAY = 1 << 16


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class GemmTiming:
    """Timing of one GEMM on an ``rows`` x ``cols`` array.

    Members
    -------
    cycles:
        The mode's count: native, cycles from the first operand entering to the last MAC (inclusive); scalesim,
        SCALE-Sim v3's ``Total Cycles`` (the index of the last cycle).
    folds:
        Array-sized tiles the work is cut into.
    macs:
        ``M * K * N``.
    utilisation:
        ``macs / (rows * cols * cycles)`` (SCALE-Sim's own ``Overall Util`` divides by the same ``cycles``).
    ideal_cycles:
        ``ceil(macs / (rows * cols))``.
    spatial_rows, spatial_cols, temporal:
        The GEMM dimensions mapped onto the array's rows and columns and looped in time.
    """

    M: int
    K: int
    N: int
    rows: int
    cols: int
    dataflow: str
    timing: str
    cycles: int
    folds: int
    macs: int
    utilisation: float
    ideal_cycles: int
    spatial_rows: int
    spatial_cols: int
    temporal: int

    def to_json(self) -> dict:
        return asdict(self)


def _check_int(name: str, value: object, hi: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StimulusError(f"{name} = {value!r}: must be an integer; {fix}")
    if not 1 <= value <= hi:
        raise StimulusError(f"{name} = {value}: must be between 1 and {hi}; {fix}")
    return value


def mapping(M: int, K: int, N: int, dataflow: str) -> tuple[int, int, int]:
    """(dimension on the array's rows, on its columns, in time) for ``dataflow``."""
    if dataflow == "os":
        return M, N, K
    if dataflow == "ws":
        return K, N, M
    if dataflow == "is":
        return K, M, N
    raise StimulusError(f"dataflow = {dataflow!r}: must be one of {', '.join(DATAFLOWS)} "
                        f"(output-, weight- or input-stationary)")


def ideal_cycles(M: int, K: int, N: int, rows: int, cols: int) -> int:
    """``ceil(M*K*N / (rows*cols))``: no schedule on the array can take fewer cycles."""
    return _ceil(M * K * N, rows * cols)


def gemm_timing(M: int, K: int, N: int, rows: int, cols: int, dataflow: str = "os",
                timing: str = "native") -> GemmTiming:
    """Cycles of an ``(M x K) @ (K x N)`` GEMM on a ``rows`` x ``cols`` array (closed form, O(1)).

    Parameters
    ----------
    M, K, N:
        GEMM dimensions (elements), each 1 .. :data:`MAX_DIM`.
    rows, cols:
        Array size (PEs), each 1 .. :data:`MAX_ARRAY`.
    dataflow:
        ``"os"``, ``"ws"`` or ``"is"``.
    timing:
        ``"native"`` (the array's own, folds overlapped) or ``"scalesim"`` (SCALE-Sim v3's count).

    Raises
    ------
    StimulusError
        A GEMM dimension that is not a positive integer within range, or an unknown dataflow/timing.
    ConfigError
        An array size that is not a positive integer within range.
    """
    for name, v in (("M", M), ("K", K), ("N", N)):
        _check_int(name, v, MAX_DIM, "give the GEMM as positive integer dimensions")
    for name, v in (("rows", rows), ("cols", cols)):
        try:
            _check_int(name, v, MAX_ARRAY, "give the array size in PEs")
        except StimulusError as e:
            raise ConfigError(str(e)) from None
    if timing not in TIMINGS:
        raise StimulusError(f"timing = {timing!r}: must be one of {', '.join(TIMINGS)}")
    sr, sc, t = mapping(M, K, N, dataflow)
    folds = _ceil(sr, rows) * _ceil(sc, cols)
    R, C = rows, cols
    if timing == "scalesim":
        lines = t + R + C - 2 if dataflow == "os" else 2 * R + C + t - 2
        cycles = folds * lines - 1
    elif dataflow == "os":
        cycles = folds * t + R + C - 2
    else:
        cycles = R + (folds - 1) * max(t, R) + t + R + C - 2
    macs = M * K * N
    return GemmTiming(M=M, K=K, N=N, rows=rows, cols=cols, dataflow=dataflow, timing=timing, cycles=cycles,
                      folds=folds, macs=macs, utilisation=macs / (rows * cols * max(cycles, 1)),
                      ideal_cycles=ideal_cycles(M, K, N, rows, cols), spatial_rows=sr, spatial_cols=sc, temporal=t)
