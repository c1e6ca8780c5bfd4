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
    immediately (fold ``f`` enters at ``f*T``); weight-/input-stationary folds shift the next fold's stationary tile
    down a load chain and latch it into a shadow bank while the current fold streams, so a fold costs ``max(T, R)``
    and only the first preload is exposed (fold ``f`` streams from ``R + f*max(T, R)``). The count runs from the first
    operand in to the last MAC, inclusive: with full last folds ``F*T + R + C - 2`` (os) and
    ``R + (F-1)*max(T, R) + T + R + C - 2`` (ws, is); ragged last folds finish their skew sooner (see
    :func:`_native_cycles`). :func:`simulate_native` moves the operands PE by PE and checks this count.

Both are never below ``ceil(M*K*N / (R*C))`` (a fold does at most ``R*C`` MACs per cycle). Native mode is never
slower than SCALE-Sim's model: its cycle count is at most SCALE-Sim's line count (``scalesim cycles + 1``; the ``+1``
is SCALE-Sim's last-index convention, without which a 1x1 array would report ``K - 1`` cycles for ``K`` MACs, below
the ideal bound).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from accel.errors import ConfigError, StimulusError
from accel.numerics import wrap

__all__ = ["DATAFLOWS", "TIMINGS", "GemmTiming", "gemm_timing", "mapping", "ideal_cycles", "MAX_DIM", "MAX_ARRAY",
           "GemmRun", "simulate_native", "SystolicGemm", "gemm_folds", "gemm_beats", "gemm_golden", "gemm_assemble",
           "run_systolic", "SystolicGemmWS", "ws_folds", "gemm_ws_beats", "gemm_ws_assemble", "rtl_gemm_cycles"]

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
    """Cycles of ``(M x K) @ (K x N)`` on the GEMM RTL (:class:`SystolicGemm`, :class:`SystolicGemmWS`) with every
    beat offered at once and ``o`` always ready, as :func:`run_systolic` counts them; O(1) in the fold count.

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


# --------------------------------------------------------------------------------------------------------------------
# Register-level model of native timing: operands move one PE per cycle, MACs happen where they meet


@dataclass(frozen=True)
class GemmRun:
    """Result of :func:`simulate_native`: the product, cycles (first operand in to last MAC, inclusive), MACs done."""

    out: "np.ndarray"
    cycles: int
    macs: int


def _fold_starts(folds: int, first: int, period: int) -> list[int]:
    return [first + f * period for f in range(folds)]


def simulate_native(a, b, rows: int, cols: int, dataflow: str = "os") -> GemmRun:
    """Run ``a @ b`` on a ``rows`` x ``cols`` systolic array cycle by cycle with the native (folds overlapped)
    schedule, moving operands one PE per cycle; returns the product and the cycle count. Slow (O(cycles * R * C)):
    for checking :func:`gemm_timing` on small shapes.

    ``os``: A rows enter the left edge (row ``i`` skewed by ``i``), B columns the top edge (column ``j`` by ``j``);
    PE ``(i, j)`` accumulates output ``(i, j)`` of its fold, and a PE that meets the next fold's operands hands its
    sum to a shadow register (drained off the array without stopping it). Fold ``f`` enters at ``f*T``.
    ``ws``: fold ``f``'s ``R x C`` tile of B is shifted down a load chain into every column (column ``j`` skewed by
    ``j``), latched into a shadow bank once the chain is full and the column has switched to the previous fold, and
    made active by the first A element of fold ``f`` that reaches the PE; A rows enter the left edge and partial sums
    flow down the columns. Fold ``f`` streams from ``s_f = R + f * max(T, R)``.
    ``is``: ``ws`` on the transposed problem (``(b^T @ a^T)^T``), as SCALE-Sim maps it.
    """
    import numpy as np

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise StimulusError(f"operands of shapes {a.shape} and {b.shape} do not multiply: give (M x K) and (K x N)")
    if dataflow == "is":
        r = simulate_native(b.T, a.T, rows, cols, "ws")
        return GemmRun(r.out.T.copy(), r.cycles, r.macs)
    M, K = a.shape
    N = b.shape[1]
    R, C = rows, cols
    mapping(M, K, N, dataflow)  # checks the dataflow name
    out = np.zeros((M, N), np.int64)
    last_mac = -1
    macs = 0
    if dataflow == "os":
        T = K
        tiles = [(r0, c0) for c0 in range(0, N, C) for r0 in range(0, M, R)]
        starts = _fold_starts(len(tiles), 0, T)
        end = starts[-1] + T + R + C
        # a_reg/b_reg: value and fold tag (-1: no operand) of the operand each PE holds this cycle
        a_val = np.zeros((R, C), np.int64)
        a_tag = np.full((R, C), -1)
        b_val = np.zeros((R, C), np.int64)
        b_tag = np.full((R, C), -1)
        acc = np.zeros((R, C), np.int64)
        acc_tag = np.full((R, C), -1)
        for cyc in range(end):
            a_val[:, 1:], a_tag[:, 1:] = a_val[:, :-1].copy(), a_tag[:, :-1].copy()
            b_val[1:, :], b_tag[1:, :] = b_val[:-1, :].copy(), b_tag[:-1, :].copy()
            a_tag[:, 0] = -1
            b_tag[0, :] = -1
            for f, (r0, c0) in enumerate(tiles):
                for i in range(R):
                    t = cyc - starts[f] - i
                    if 0 <= t < T and r0 + i < M:
                        a_val[i, 0], a_tag[i, 0] = a[r0 + i, t], f
                for j in range(C):
                    t = cyc - starts[f] - j
                    if 0 <= t < T and c0 + j < N:
                        b_val[0, j], b_tag[0, j] = b[t, c0 + j], f
            meet = (a_tag >= 0) & (b_tag >= 0)
            if np.any(meet & (a_tag != b_tag)):
                raise AssertionError(f"cycle {cyc}: operands of different folds met in a PE")
            swap = meet & (acc_tag != a_tag)
            for i, j in zip(*np.nonzero(swap & (acc_tag >= 0))):
                r0, c0 = tiles[acc_tag[i, j]]
                out[r0 + i, c0 + j] = acc[i, j]
            acc = np.where(swap, 0, acc) + np.where(meet, a_val * b_val, 0)
            acc_tag = np.where(meet, a_tag, acc_tag)
            if meet.any():
                last_mac = cyc
                macs += int(meet.sum())
        for i, j in zip(*np.nonzero(acc_tag >= 0)):
            r0, c0 = tiles[acc_tag[i, j]]
            out[r0 + i, c0 + j] = acc[i, j]
        return GemmRun(out, last_mac + 1, macs)

    # weight-stationary
    T = M
    tiles = [(k0, c0) for c0 in range(0, N, C) for k0 in range(0, K, R)]
    F = len(tiles)
    starts = _fold_starts(F, R, max(T, R))
    end = starts[-1] + T + R + C + 1
    used_rows = np.array([[k0 + i < K for i in range(R)] for k0, _ in tiles])   # (F, R)
    used_cols = np.array([[c0 + j < N for j in range(C)] for _, c0 in tiles])   # (F, C)
    chain = np.zeros((R, C), np.int64)       # load chain: shifts down one row per cycle
    shadow = np.zeros((R, C), np.int64)
    shadow_tag = np.full((R, C), -1)
    active = np.zeros((R, C), np.int64)
    active_tag = np.full((R, C), -1)
    a_val = np.zeros((R, C), np.int64)
    a_tag = np.full((R, C), -1)
    a_row = np.zeros((R, C), np.int64)      # the A row (output row m) an operand belongs to
    p_val = np.zeros((R, C), np.int64)      # partial sum leaving each PE downwards
    p_tag = np.full((R, C), -1)
    cols_idx = np.arange(C)[None, :]
    for cyc in range(end):
        # A operands move right; row i of fold f enters at s_f + m + i
        a_val[:, 1:], a_tag[:, 1:], a_row[:, 1:] = a_val[:, :-1].copy(), a_tag[:, :-1].copy(), a_row[:, :-1].copy()
        a_tag[:, 0] = -1
        for f, (k0, c0) in enumerate(tiles):
            for i in range(R):
                m = cyc - starts[f] - i
                if 0 <= m < T and k0 + i < K:
                    a_val[i, 0], a_tag[i, 0], a_row[i, 0] = a[m, k0 + i], f, m
        p_in_val = np.zeros((R, C), np.int64)
        p_in_tag = np.full((R, C), -1)
        p_in_val[1:, :], p_in_tag[1:, :] = p_val[:-1, :], p_tag[:-1, :]
        # a PE makes its shadow bank active when the first operand of the shadow's fold reaches it
        switch = (a_tag >= 0) & (a_tag == shadow_tag) & (active_tag != a_tag)
        active = np.where(switch, shadow, active)
        active_tag = np.where(switch, shadow_tag, active_tag)
        col_ok = np.where(a_tag >= 0, used_cols[np.maximum(a_tag, 0), np.broadcast_to(cols_idx, (R, C))], False)
        meet = (a_tag >= 0) & col_ok
        if np.any(meet & (active_tag != a_tag)):
            raise AssertionError(f"cycle {cyc}: an operand met the weights of another fold")
        p_val = np.where(meet, a_val * active, 0) + np.where(meet & (p_in_tag >= 0), p_in_val, 0)
        p_tag = np.where(meet, a_tag, -1)
        if meet.any():
            last_mac = cyc
            macs += int(meet.sum())
        # a partial sum leaving a fold's last used row is an output (summed over the K folds)
        for i, j in zip(*np.nonzero(meet)):
            f = p_tag[i, j]
            k0, c0 = tiles[f]
            if i == R - 1 or not used_rows[f, i + 1]:
                out[a_row[i, j], c0 + j] += p_val[i, j]
        # load chain of fold f, column j: rows R-1 .. 0 enter at s_f - R + j .. s_f - 1 + j; latched at the end,
        # after this cycle's switches read the shadow bank (the fold before must have switched in every used row)
        chain[1:, :] = chain[:-1, :].copy()
        for f, (k0, c0) in enumerate(tiles):
            for j in range(C):
                r = cyc - (starts[f] - R) - j
                if 0 <= r < R:
                    kk = k0 + (R - 1 - r)
                    chain[0, j] = b[kk, c0 + j] if kk < K and c0 + j < N else 0
                if r == R - 1:
                    prev = shadow_tag[:, j]
                    if prev[0] >= 0 and np.any(used_rows[prev[0]] & (active_tag[:, j] != prev) & used_cols[prev[0], j]):
                        raise AssertionError(f"cycle {cyc}: fold {f} weights latched over a shadow bank still "
                                             f"waiting for its fold")
                    shadow[:, j] = chain[:, j]
                    shadow_tag[:, j] = f
    return GemmRun(out, last_mac + 1, macs)


# --------------------------------------------------------------------------------------------------------------------
# Per-cycle model of the output-stationary systolic GEMM in RTL (accel.rtl.gemm.SystolicGemm)


class SystolicGemm:
    """Per-cycle model of :class:`accel.rtl.gemm.SystolicGemm` (same ports; see :mod:`accel.sim.harness`).

    Cycle behaviour (the specification, ``docs/attention.md`` "GEMM in RTL")
    -------------------------------------------------------------------------
    ``ab.ready`` is high inside a fold, and before a fold's first beat while the fold's result bank is free (two
    banks, folds alternate between them). A beat taken in cycle ``c`` puts its row-``i`` A element and column-``j``
    B element into PE ``(i, j)`` in cycle ``c + i + j`` (skew registers at the edges, one register per PE hop); the PE
    multiplies and accumulates when both are valid (``i`` below the fold's used rows, ``j`` below its used columns),
    and ``busy`` is high in every cycle with a MAC. The fold's last operand writes the sum into the fold's bank and
    clears the accumulator; the MAC in PE ``(rows-1, cols-1)`` of the last beat finishes the fold. In the next cycle
    the finished bank is copied into the output register (oldest fold first, when the register is empty or being
    read), which frees the bank; ``o`` offers the register.

    With beats offered every cycle and ``o`` always ready, fold ``f`` of ``K`` beats enters at ``f*K`` and the
    count of :func:`gemm_timing` (``os``, ``native``) is exact whenever ``K >= rows + cols - 1`` (a bank is free again
    before the fold after next); shorter folds wait for a bank, and :func:`rtl_gemm_cycles` gives the count.
    """

    def __init__(self, config) -> None:
        from accel.rtl.gemm import ab_layout, gemm_acc_bits, gemm_o_layout
        from accel.sim.packing import Packer

        self.config = config
        self.acc_bits = gemm_acc_bits(config)
        self._ab = Packer(ab_layout(config))
        self._o = Packer(gemm_o_layout(config))
        self.reset()

    def reset(self) -> None:
        R, C = self.config.rows, self.config.cols
        za, zb = (0, 0, 0, 0, 0), (0, 0, 0)            # (val, v, last, end, tag) and (val, v, end)
        self.askew = [[za] * i for i in range(R)]        # askew[i][s]: s + 1 cycles after the beat
        self.bskew = [[zb] * j for j in range(C)]
        self.a_reg = [[za] * C for _ in range(R)]        # a_reg[i][j]: operand in PE (i, j), j >= 1
        self.b_reg = [[zb] * C for _ in range(R)]        # b_reg[i][j]: operand in PE (i, j), i >= 1
        self.acc = [[0] * C for _ in range(R)]
        self.res = [[[0] * C for _ in range(R)] for _ in range(2)]
        self.par = self.infold = 0
        self.bank_free = [1, 1]
        self.done = [0, 0]
        self.out_ptr = 0
        self.fold_rows = self.fold_cols = 0
        self.bank_rows, self.bank_cols = [0, 0], [0, 0]
        self.err = 0
        self.o_valid = 0
        self.oreg = {"data": [[0] * C for _ in range(R)], "rows": 0, "cols": 0}
        self.cycle = 0
        self.macs = 0

    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        cfg = self.config
        R, C = cfg.rows, cfg.cols
        ready = int(self.infold or self.bank_free[self.par])
        fire = int(inputs["ab__valid"] and ready)
        pl = self._ab.unpack(inputs["ab__payload"])
        first = fire and not self.infold
        rows = self.fold_rows if self.infold else pl["rows"]
        cols = self.fold_cols if self.infold else pl["cols"]
        a_ent = [(pl["a"][i], int(fire and i < rows), pl["last"], int(pl["last"] and rows == i + 1), self.par)
                 for i in range(R)]
        b_ent = [(pl["b"][j], int(fire and j < cols), int(cols == j + 1)) for j in range(C)]
        a_in = [[a_ent[i] if i == 0 else self.askew[i][i - 1]] + self.a_reg[i][1:] for i in range(R)]
        b_col0 = [b_ent[j] if j == 0 else self.bskew[j][j - 1] for j in range(C)]
        b_in = [b_col0] + [self.b_reg[i] for i in range(1, R)]
        busy = 0
        final = [0, 0]
        for i in range(R):
            ai_row, bi_row, acc_row = a_in[i], b_in[i], self.acc[i]
            for j in range(C):
                av, a_v, a_last, a_end, tag = ai_row[j]
                bv, b_v, b_end = bi_row[j]
                if a_v and b_v:
                    busy = 1
                    self.macs += 1
                    s = wrap(acc_row[j] + av * bv, self.acc_bits)
                    if a_last:
                        acc_row[j] = 0
                        self.res[tag][i][j] = s
                    else:
                        acc_row[j] = s
                    if a_end and b_end:
                        final[tag] = 1
        outs = {"ab__ready": ready, "o__valid": self.o_valid, "o__payload": self._o.pack(self.oreg),
                "busy": busy, "error": self.err}
        # registers
        for i in range(R):
            self.askew[i] = [a_ent[i]] + self.askew[i][:-1] if i else []
            self.a_reg[i] = [None] + a_in[i][:-1]
        for j in range(C):
            self.bskew[j] = [b_ent[j]] + self.bskew[j][:-1] if j else []
        self.b_reg = [[None] * C] + b_in[:-1]
        done = [self.done[p] or final[p] for p in range(2)]
        free = list(self.bank_free)
        if self.done[self.out_ptr] and (not self.o_valid or inputs["o__ready"]):
            p = self.out_ptr
            # a bank being copied out is never written in the same cycle (its fold is finished, no new one started)
            self.oreg = {"data": [list(r) for r in self.res[p]], "rows": self.bank_rows[p], "cols": self.bank_cols[p]}
            self.o_valid = 1
            self.out_ptr ^= 1
            done[p], free[p] = 0, 1
        elif inputs["o__ready"]:
            self.o_valid = 0
        if first:
            free[self.par] = 0
            self.fold_rows, self.fold_cols = pl["rows"], pl["cols"]
            self.bank_rows[self.par], self.bank_cols[self.par] = pl["rows"], pl["cols"]
            if not (1 <= pl["rows"] <= R and 1 <= pl["cols"] <= C):
                self.err = 1
        if fire:
            if pl["last"]:
                self.infold, self.par = 0, self.par ^ 1
            else:
                self.infold = 1
        self.done, self.bank_free = done, free
        self.cycle += 1
        return outs


def gemm_folds(rows: int, cols: int, M: int, N: int) -> list[tuple[int, int, int, int]]:
    """Output-stationary folds ``(r0, c0, used_rows, used_cols)`` in SCALE-Sim's order (column folds outer)."""
    return [(r0, c0, min(rows, M - r0), min(cols, N - c0)) for c0 in range(0, N, cols) for r0 in range(0, M, rows)]


def _operands(config, a, b):
    import numpy as np

    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or 0 in a.shape or 0 in b.shape:
        raise StimulusError(f"operands of shapes {a.shape} and {b.shape} do not multiply: give non-empty (M x K) "
                            f"and (K x N) matrices")
    lo, hi = -(1 << (config.data_bits - 1)), (1 << (config.data_bits - 1)) - 1
    for name, x in (("A", a), ("B", b)):
        if not np.issubdtype(x.dtype, np.integer):
            raise StimulusError(f"{name} has dtype {x.dtype}: the array takes integers (data_bits = "
                                f"{config.data_bits}); quantise first")
        if x.min() < lo or x.max() > hi:
            bad = int(x.min()) if x.min() < lo else int(x.max())
            raise StimulusError(f"{name} holds {bad}, outside the array's signed {config.data_bits}-bit range "
                                f"{lo}..{hi}; quantise to data_bits = {config.data_bits}")
    return a.astype(np.int64), b.astype(np.int64)


def gemm_beats(config, a, b) -> list[int]:
    """Packed ``ab`` beats of ``a @ b`` (``M x K`` by ``K x N``) for :class:`SystolicGemm`: one fold per
    :func:`gemm_folds` entry, ``K`` beats each (unused rows and columns zero)."""
    from accel.rtl.gemm import ab_layout
    from accel.sim.packing import Packer

    a, b = _operands(config, a, b)
    (M, K), N = a.shape, b.shape[1]
    R, C = config.rows, config.cols
    pk = Packer(ab_layout(config))
    beats = []
    for r0, c0, ur, uc in gemm_folds(R, C, M, N):
        for t in range(K):
            beats.append(pk.pack({"a": [int(a[r0 + i, t]) if i < ur else 0 for i in range(R)],
                                  "b": [int(b[t, c0 + j]) if j < uc else 0 for j in range(C)],
                                  "rows": ur, "cols": uc, "last": int(t == K - 1)}))
    return beats


def gemm_golden(config, a, b):
    """``a @ b`` as the array computes it: exact, wrapped to the accumulator width (two's complement)."""
    from accel.rtl.gemm import gemm_acc_bits

    a, b = _operands(config, a, b)
    return wrap(a @ b, gemm_acc_bits(config))


def gemm_assemble(config, tiles: list[dict], M: int, N: int):
    """The ``M x N`` product from the unpacked ``o`` beats (one per fold, in fold order)."""
    import numpy as np

    folds = gemm_folds(config.rows, config.cols, M, N)
    if len(tiles) != len(folds):
        raise StimulusError(f"{len(tiles)} result tiles for {len(folds)} folds")
    out = np.zeros((M, N), np.int64)
    for (r0, c0, ur, uc), tile in zip(folds, tiles):
        out[r0:r0 + ur, c0:c0 + uc] = np.array(tile["data"], dtype=np.int64)[:ur, :uc]
    return out


def ws_folds(rows: int, cols: int, K: int, N: int) -> list[tuple[int, int, int, int]]:
    """Weight-stationary folds ``(k0, c0, used_rows, used_cols)`` in SCALE-Sim's order (column folds outer)."""
    return [(k0, c0, min(rows, K - k0), min(cols, N - c0)) for c0 in range(0, N, cols) for k0 in range(0, K, rows)]


def gemm_ws_beats(config, a, b) -> tuple[list[int], list[int]]:
    """Packed ``(w, a)`` beats of ``a @ b`` for :class:`SystolicGemmWS`: per :func:`ws_folds` entry, the weight
    tile's rows (last first, unused rows and columns zero) and the ``M`` input rows."""
    from accel.rtl.gemm import w_layout, ws_a_layout
    from accel.sim.packing import Packer

    a, b = _operands(config, a, b)
    (M, K), N = a.shape, b.shape[1]
    R, C = config.rows, config.cols
    pw, pa = Packer(w_layout(config)), Packer(ws_a_layout(config))
    w_beats, a_beats = [], []
    for k0, c0, ur, uc in ws_folds(R, C, K, N):
        for r in range(R - 1, -1, -1):
            w_beats.append(pw.pack([int(b[k0 + r, c0 + j]) if r < ur and j < uc else 0 for j in range(C)]))
        for mm in range(M):
            a_beats.append(pa.pack({"a": [int(a[mm, k0 + i]) if i < ur else 0 for i in range(R)], "rows": ur,
                                    "cols": uc, "last": int(mm == M - 1)}))
    return w_beats, a_beats


def gemm_ws_assemble(config, rows_out: list[dict], M: int, K: int, N: int):
    """The ``M x N`` product from the unpacked ``o`` beats of a weight-stationary run (partial sums of every fold
    added, wrapped to the accumulator width)."""
    import numpy as np

    from accel.rtl.gemm import gemm_acc_bits

    folds = ws_folds(config.rows, config.cols, K, N)
    if len(rows_out) != len(folds) * M:
        raise StimulusError(f"{len(rows_out)} result rows for {len(folds)} folds of {M} rows")
    out = np.zeros((M, N), np.int64)
    for f, (_, c0, _, uc) in enumerate(folds):
        for mm in range(M):
            out[mm, c0:c0 + uc] += np.array(rows_out[f * M + mm]["data"][:uc], dtype=np.int64)
    return wrap(out, gemm_acc_bits(config))


def run_systolic(config, a, b, dataflow: str = "os") -> GemmRun:
    """Run ``a @ b`` through the per-cycle model of the GEMM RTL with every beat offered as soon as possible and
    ``o`` always ready. ``os``: :class:`SystolicGemm`, ``cycles`` from the first MAC to the last; ``ws``:
    :class:`SystolicGemmWS`, from the first weight beat to the last MAC; ``is``: ``ws`` on ``b^T @ a^T`` (SCALE-Sim's
    input-stationary mapping). Each equals :func:`rtl_gemm_cycles` (and the native closed form, except for
    output-stationary folds shorter than ``rows + cols - 1``)."""
    from accel.rtl.gemm import gemm_o_layout, ws_o_layout
    from accel.sim.packing import Packer

    a, b = _operands(config, a, b)
    mapping(a.shape[0], a.shape[1], b.shape[1], dataflow)  # checks the name
    if dataflow == "is":
        r = run_systolic(config, b.T, a.T, "ws")
        return GemmRun(r.out.T.copy(), r.cycles, r.macs)
    M, K, N = a.shape[0], a.shape[1], b.shape[1]
    if dataflow == "os":
        streams = {"ab": gemm_beats(config, a, b)}
        model = SystolicGemm(config)
        po = Packer(gemm_o_layout(config))
        n_out = len(gemm_folds(config.rows, config.cols, M, N))
    else:
        w_beats, a_beats = gemm_ws_beats(config, a, b)
        streams = {"w": w_beats, "a": a_beats}
        model = SystolicGemmWS(config)
        po = Packer(ws_o_layout(config))
        n_out = len(a_beats)
    pos = {k: 0 for k in streams}
    got, busy, first_in = [], [], None
    limit = 4 * (sum(map(len, streams.values())) + n_out * (config.rows + config.cols + 4)) + 16
    while len(got) < n_out:
        if model.cycle > limit:
            raise AssertionError(f"the systolic GEMM model stopped after {model.cycle} cycles")
        ins = {"o__ready": 1}
        for k, beats in streams.items():
            ins[f"{k}__valid"] = int(pos[k] < len(beats))
            ins[f"{k}__payload"] = beats[pos[k]] if pos[k] < len(beats) else 0
        outs = model.step(ins)
        for k in streams:
            if ins[f"{k}__valid"] and outs[f"{k}__ready"]:
                pos[k] += 1
                if first_in is None:
                    first_in = model.cycle - 1
        if outs["o__valid"]:
            got.append(po.unpack(outs["o__payload"]))
        busy.append(outs["busy"])
    cyc = [c for c, x in enumerate(busy) if x]
    if dataflow == "os":
        return GemmRun(gemm_assemble(config, got, M, N), cyc[-1] - cyc[0] + 1, model.macs)
    return GemmRun(gemm_ws_assemble(config, got, M, K, N), cyc[-1] - first_in + 1, model.macs)


class SystolicGemmWS:
    """Per-cycle model of :class:`accel.rtl.gemm.SystolicGemmWS` (same ports; see :mod:`accel.sim.harness`).

    Cycle behaviour (the specification, ``docs/attention.md`` "GEMM in RTL")
    -------------------------------------------------------------------------
    Everything below is frozen in a cycle where a result waits on ``o`` (``o.valid`` and not ``o.ready``); then no
    beat is taken and no MAC happens. A fold's weight tile is ``rows`` ``w`` beats (its last row first); the beat
    taken in cycle ``x`` enters the top of column ``j``'s load chain in cycle ``x + j`` and shifts it down one row;
    the tile's ``rows``-th beat also latches the shifted chain into column ``j``'s shadow bank. That beat is taken only
    when the shadow bank is not waiting for its fold, and ``rows - 1`` cycles after the current fold's first input beat
    (the shadow bank must have become active in every row). A fold's first ``a`` beat is taken only after its tile's
    last ``w`` beat (in a later cycle). The ``a`` beat taken in cycle ``c`` is in PE ``(i, j)`` in cycle ``c + i + j``;
    the fold's first beat makes the shadow bank the PE's active weights as it passes (and uses it). Partial sums
    move down one row per cycle, a PE adds its product when its row and column are used by the fold, and row
    ``m``'s sums leave the bottom row, are deskewed to the last column, and reach ``o`` ``rows + cols`` cycles after
    its beat.

    With ``w`` and ``a`` offered every cycle and ``o`` always ready, fold ``f`` streams from ``rows + f * max(M,
    rows)`` and the first-``w``-beat-to-last-MAC count is :func:`gemm_timing` (``ws``, ``native``) for every shape.
    """

    def __init__(self, config) -> None:
        from accel.rtl.gemm import gemm_acc_bits, w_layout, ws_a_layout, ws_o_layout
        from accel.sim.packing import Packer

        self.config = config
        self.acc_bits = gemm_acc_bits(config)
        self._a = Packer(ws_a_layout(config))
        self._w = Packer(w_layout(config))
        self._o = Packer(ws_o_layout(config))
        self.reset()

    def reset(self) -> None:
        R, C = self.config.rows, self.config.cols
        za, zw = (0, 0, 0, 0, 0, 0), (0, 0, 0)       # (val, p, v, first, last, cols) and (val, v, latch)
        self.askew = [[za] * i for i in range(R)]
        self.a_reg = [[za] * C for _ in range(R)]    # a_reg[i][j]: input in PE (i, j), j >= 1
        self.wskew = [[zw] * j for j in range(C)]
        self.chain = [[0] * C for _ in range(R)]
        self.shadow = [[0] * C for _ in range(R)]
        self.active = [[0] * C for _ in range(R)]
        self.p_out = [[0] * C for _ in range(R)]
        self.bot = (0, 0, 0)
        self.dsk = [[0] * (C - 1 - j) for j in range(C)]
        self.o_valid = 0
        self.oreg = {"data": [0] * C, "cols": 0, "last": 0}
        self.infold = self.w_count = self.pending = 0
        self.age = R
        self.fold_rows = self.fold_cols = 0
        self.err = 0
        self.cycle = 0
        self.macs = 0

    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        cfg = self.config
        R, C = cfg.rows, cfg.cols
        en = int(not self.o_valid or inputs["o__ready"])
        a_ready = int(en and (self.infold or self.pending))
        a_fire = int(bool(inputs["a__valid"]) and a_ready)
        a_first = int(a_fire and not self.infold)
        latch_ok = int((not self.pending and (R < 2 or self.age >= R - 2)) or (R == 1 and a_first))
        w_ready = int(en and (self.w_count != R - 1 or latch_ok))
        w_fire = int(bool(inputs["w__valid"]) and w_ready)
        pa = self._a.unpack(inputs["a__payload"])
        pw = self._w.unpack(inputs["w__payload"])
        rows = self.fold_rows if self.infold else pa["rows"]
        cols = self.fold_cols if self.infold else pa["cols"]
        a_ent = [(pa["a"][i], a_fire, int(a_fire and i < rows), a_first, pa["last"], cols) for i in range(R)]
        w_ent = [(pw[j], w_fire, int(w_fire and self.w_count == R - 1)) for j in range(C)]
        a_in = [[a_ent[i] if i == 0 else self.askew[i][i - 1]] + self.a_reg[i][1:] for i in range(R)]
        w_top = [w_ent[j] if j == 0 else self.wskew[j][j - 1] for j in range(C)]
        busy = 0
        p_new = [[0] * C for _ in range(R)]
        act_new = [list(r) for r in self.active]
        for i in range(R):
            for j in range(C):
                val, _, v, first, _, acols = a_in[i][j]
                wgt = self.shadow[i][j] if first else self.active[i][j]
                p_in = self.p_out[i - 1][j] if i else 0
                if v and j < acols:
                    busy = 1
                    if en:
                        self.macs += 1
                    p_new[i][j] = wrap(p_in + val * wgt, self.acc_bits)
                else:
                    p_new[i][j] = p_in
                if first:
                    act_new[i][j] = self.shadow[i][j]
        outs = {"w__ready": w_ready, "a__ready": a_ready, "o__valid": self.o_valid,
                "o__payload": self._o.pack(self.oreg), "busy": int(en and busy), "error": self.err}
        self.cycle += 1
        if not en:
            return outs
        # registers (the clock edge, enabled)
        row = [self.dsk[j][-1] if self.dsk[j] else self.p_out[R - 1][j] for j in range(C)]
        if self.bot[0]:
            self.oreg = {"data": row, "cols": self.bot[2], "last": self.bot[1]}
        self.o_valid = self.bot[0]
        self.dsk = [([self.p_out[R - 1][j]] + self.dsk[j])[:C - 1 - j] for j in range(C)]
        self.bot = (a_in[R - 1][C - 1][1], a_in[R - 1][C - 1][4], a_in[R - 1][C - 1][5])
        for j in range(C):
            val, v, latch = w_top[j]
            if v:
                shifted = [val] + [self.chain[i - 1][j] for i in range(1, R)]
                for i in range(R):
                    self.chain[i][j] = shifted[i]
                    if latch:
                        self.shadow[i][j] = shifted[i]
        self.active = act_new
        self.p_out = p_new
        for i in range(R):
            self.askew[i] = [a_ent[i]] + self.askew[i][:-1] if i else []
            self.a_reg[i] = [None] + a_in[i][:-1]
        for j in range(C):
            self.wskew[j] = [w_ent[j]] + self.wskew[j][:-1] if j else []
        if a_first:
            self.fold_rows, self.fold_cols, self.age = pa["rows"], pa["cols"], 0
            if not (1 <= pa["rows"] <= R and 1 <= pa["cols"] <= C):
                self.err = 1
        elif self.age < R:
            self.age += 1
        if a_fire:
            self.infold = int(not pa["last"])
        if a_first:
            self.pending = 0
        if w_fire:
            if self.w_count == R - 1:
                self.pending = 1
            self.w_count = 0 if self.w_count == R - 1 else self.w_count + 1
        return outs
