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

__all__ = ["DATAFLOWS", "TIMINGS", "GemmTiming", "gemm_timing", "mapping", "ideal_cycles", "MAX_DIM", "MAX_ARRAY",
           "GemmRun", "simulate_native"]

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
