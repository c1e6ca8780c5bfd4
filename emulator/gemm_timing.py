"""GEMM timing on a systolic array: closed forms for two timing modes and three dataflows, and the GEMM RTL's exact
count.

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
    immediately (fold ``f`` enters at ``f*T``); weight-/input-stationary folds shift the next fold's stationary tile
    down a load chain and latch it into a shadow bank while the current fold streams, so a fold costs ``max(T, R)``
    and only the first preload is exposed (fold ``f`` streams from ``R + f*max(T, R)``). The count runs from the first
    operand in to the last MAC, inclusive: with full last folds ``F*T + R + C - 2`` (os) and
    ``R + (F-1)*max(T, R) + T + R + C - 2`` (ws, is); ragged last folds finish their skew sooner (see
    :func:`_native_cycles`). :func:`accel.emulator.gemm_reference.simulate_native` moves the operands PE by PE and
    checks this count.

Both are never below ``ceil(M*K*N / (R*C))`` (a fold does at most ``R*C`` MACs per cycle). Native mode is never
slower than SCALE-Sim's model: its cycle count is at most SCALE-Sim's line count (``scalesim cycles + 1``; the ``+1``
is SCALE-Sim's last-index convention, without which a 1x1 array would report ``K - 1`` cycles for ``K`` MACs, below
the ideal bound).

:func:`rtl_gemm_cycles` is the exact count of the GEMM RTL (:mod:`accel.rtl.gemm`; its per-cycle models in
:mod:`accel.emulator.units.gemm`), also in O(1). These are the closed forms the cost model builds on: everything here
depends on the shape alone, nothing on operand values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from accel.errors import ConfigError, StimulusError

__all__ = ["DATAFLOWS", "TIMINGS", "MAX_DIM", "MAX_ARRAY", "GemmTiming", "gemm_timing", "mapping", "ideal_cycles",
           "rtl_gemm_cycles"]

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


def _native_cycles(sr: int, sc: int, t: int, R: int, C: int, dataflow: str) -> int:
    """Native count: one past the last MAC of any fold. Folds run column-fold outer, row-fold inner (SCALE-Sim's
    order); fold ``f`` enters at ``f*T`` (os) or ``R + f*max(T, R)`` (ws, is) and its last MAC is
    ``T + used_rows + used_cols - 3`` cycles later. Only the last fold of each ragged/full row-by-column class can
    finish last, so four candidates suffice."""
    fr_n, fc_n = _ceil(sr, R), _ceil(sc, C)

    def start(f: int) -> int:
        return f * t if dataflow == "os" else R + f * max(t, R)

    best = 0
    for fc in {fc_n - 1, max(fc_n - 2, 0)}:
        for fr in {fr_n - 1, max(fr_n - 2, 0)}:
            used_r = R if fr < fr_n - 1 else sr - (fr_n - 1) * R
            used_c = C if fc < fc_n - 1 else sc - (fc_n - 1) * C
            best = max(best, start(fc * fr_n + fr) + t + used_r + used_c - 3)
    return best + 1


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
    else:
        cycles = _native_cycles(sr, sc, t, R, C, dataflow)
    macs = M * K * N
    return GemmTiming(M=M, K=K, N=N, rows=rows, cols=cols, dataflow=dataflow, timing=timing, cycles=cycles,
                      folds=folds, macs=macs, utilisation=macs / (rows * cols * max(cycles, 1)),
                      ideal_cycles=ideal_cycles(M, K, N, rows, cols), spatial_rows=sr, spatial_cols=sc, temporal=t)


# --------------------------------------------------------------------------------------------------------------------
# The GEMM RTL's own count (accel.rtl.gemm), in closed form


class _OsSchedule:
    """The output-stationary RTL's fold schedule with beats always offered and ``o`` always ready: fold ``f``'s first
    beat enters at ``s_f = max(s_(f-1) + T, c_(f-2) + 1)`` (its result bank is free the cycle after fold ``f-2`` was
    copied out), its last MAC is ``X_f = s_f + T + used_rows + used_cols - 3`` and it is copied out at
    ``c_f = max(X_f + 1, c_(f-1) + 1)`` (in order). Runs of equal folds reach a periodic state (a max-plus system),
    so they are jumped over in O(1) once the state relative to ``s`` repeats."""

    def __init__(self, T: int) -> None:
        self.T = T
        self.f = 0                     # folds done
        self.s = self.c1 = self.c2 = None
        self.best = -1                 # latest last MAC so far
        self.group_best = -1           # latest last MAC since the caller reset it

    def state(self) -> tuple:
        return (self.c1 - self.s, self.c2 - self.s if self.c2 is not None else None)

    def fold(self, ur: int, uc: int) -> None:
        T = self.T
        s = 0 if self.f == 0 else self.s + T
        if self.f >= 2:
            s = max(s, self.c2 + 1)
        x = s + T + ur + uc - 3
        c = x + 1 if self.c1 is None else max(x + 1, self.c1 + 1)
        self.best = max(self.best, x)
        self.group_best = max(self.group_best, x)
        self.s, self.c2, self.c1 = s, self.c1, c
        self.f += 1

    def shift(self, folds: int, delta: int) -> None:
        """Skip ``folds`` more folds whose schedule repeats with a shift of ``delta`` cycles over them (the caller
        accounts for their last MACs)."""
        self.s += delta
        self.c1 += delta
        self.c2 += delta
        self.f += folds

    def run(self, n: int, ur: int, uc: int) -> None:
        """``n`` equal folds."""
        seen: dict[tuple, tuple[int, int]] = {}
        done = 0
        while done < n:
            if self.f >= 2:
                key = self.state()
                if key in seen:
                    k0, s0 = seen[key]
                    period, delta = done - k0, self.s - s0
                    reps = (n - done) // period
                    if reps:
                        # equal folds: the last one skipped ends last
                        self.shift(reps * period, reps * delta)
                        self.best = max(self.best, self.s + self.T + ur + uc - 3)
                        self.group_best = max(self.group_best, self.s + self.T + ur + uc - 3)
                        done += reps * period
                        seen.clear()
                        continue
                seen[key] = (done, self.s)
            self.fold(ur, uc)
            done += 1


def rtl_gemm_cycles(M: int, K: int, N: int, rows: int, cols: int, dataflow: str = "os") -> int:
    """Cycles of ``(M x K) @ (K x N)`` on the GEMM RTL (:class:`accel.rtl.gemm.SystolicGemm`,
    :class:`accel.rtl.gemm.SystolicGemmWS`) with every beat offered at once and ``o`` always ready, as
    :func:`accel.emulator.gemm_driver.run_systolic` counts them; O(1) in the fold count.

    ``ws`` and ``is``: the native closed form (the RTL meets it for every shape). ``os``: the native count, except
    that a fold shorter than ``rows + cols - 1`` may wait for one of the two result banks."""
    t = gemm_timing(M, K, N, rows, cols, dataflow, "native")
    if dataflow != "os":
        return t.cycles
    R, C = rows, cols
    fr_n, fc_n = _ceil(M, R), _ceil(N, C)
    r_last, c_last = M - (fr_n - 1) * R, N - (fc_n - 1) * C
    sched = _OsSchedule(K)

    def group(uc: int) -> int:
        """One column group; returns its latest last MAC relative to its last fold's start."""
        sched.group_best = -1
        if fr_n > 1:
            sched.run(fr_n - 1, R, uc)
        sched.run(1, r_last, uc)
        return sched.group_best - sched.s

    # column groups: all but the last are equal; jump over them once the state at a group boundary repeats
    seen: dict[tuple, tuple[int, int]] = {}
    g = 0
    while g < fc_n - 1:
        if sched.f >= 2:
            key = sched.state()
            if key in seen:
                g0, s0 = seen[key]
                period, delta = g - g0, sched.s - s0
                reps = (fc_n - 1 - g) // period
                if reps:
                    # the skipped groups repeat the last one shifted: their latest last MAC is its, shifted
                    sched.shift(reps * period * fr_n, reps * delta)
                    sched.best = max(sched.best, sched.s + rel)
                    g += reps * period
                    seen.clear()
                    continue
            seen[key] = (g, sched.s)
        rel = group(C)
        g += 1
    group(c_last)
    return sched.best + 1
