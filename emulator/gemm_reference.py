"""Register-level reference of the native GEMM schedule: operands move one PE per cycle and MACs happen where they
meet. Deliberately naive (O(cycles * rows * cols)), written from the schedule's description rather than from the
RTL, to check the native closed form of :mod:`accel.emulator.gemm_timing` on small shapes.
"""
from __future__ import annotations

import numpy as np

from accel.errors import StimulusError

from .gemm_driver import GemmRun
from .gemm_timing import mapping

__all__ = ["simulate_native"]


def _fold_starts(folds: int, first: int, period: int) -> list[int]:
    return [first + f * period for f in range(folds)]


def simulate_native(a, b, rows: int, cols: int, dataflow: str = "os") -> GemmRun:
    """Run ``a @ b`` on a ``rows`` x ``cols`` systolic array cycle by cycle with the native (folds overlapped)
    schedule, moving operands one PE per cycle; returns the product and the cycle count. Slow (O(cycles * R * C)):
    for checking :func:`accel.emulator.gemm_timing.gemm_timing` on small shapes.

    ``os``: A rows enter the left edge (row ``i`` skewed by ``i``), B columns the top edge (column ``j`` by ``j``);
    PE ``(i, j)`` accumulates output ``(i, j)`` of its fold, and a PE that meets the next fold's operands hands its
    sum to a shadow register (drained off the array without stopping it). Fold ``f`` enters at ``f*T``.
    ``ws``: fold ``f``'s ``R x C`` tile of B is shifted down a load chain into every column (column ``j`` skewed by
    ``j``), latched into a shadow bank once the chain is full and the column has switched to the previous fold, and
    made active by the first A element of fold ``f`` that reaches the PE; A rows enter the left edge and partial sums
    flow down the columns. Fold ``f`` streams from ``s_f = R + f * max(T, R)``.
    ``is``: ``ws`` on the transposed problem (``(b^T @ a^T)^T``), as SCALE-Sim maps it.
    """
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
