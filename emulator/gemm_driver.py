"""Whole GEMMs through the per-cycle models of the GEMM RTL: operand matrices packed into port beats fold by fold
(in SCALE-Sim's fold order), the golden product, the product assembled from the result beats, and
:func:`run_systolic`, which drives a model with every beat offered as soon as possible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.config import GemmConfig
from accel.errors import StimulusError
from accel.interfaces.gemm import ab_layout, gemm_o_layout, w_layout, ws_a_layout, ws_o_layout
from accel.interfaces.packing import Packer
from accel.numerics import wrap

from .gemm_timing import mapping
from .units.gemm import SystolicGemm, SystolicGemmWS

__all__ = ["GemmRun", "gemm_folds", "ws_folds", "gemm_beats", "gemm_ws_beats", "gemm_golden", "gemm_assemble",
           "gemm_ws_assemble", "run_systolic"]


@dataclass(frozen=True)
class GemmRun:
    """Result of :func:`run_systolic` and :func:`accel.emulator.gemm_reference.simulate_native`: the product
    (``M x N`` integers), cycles (first operand in to last MAC, inclusive) and MACs done."""

    out: np.ndarray
    cycles: int
    macs: int


def gemm_folds(rows: int, cols: int, M: int, N: int) -> list[tuple[int, int, int, int]]:
    """Output-stationary folds ``(r0, c0, used_rows, used_cols)`` in SCALE-Sim's order (column folds outer)."""
    return [(r0, c0, min(rows, M - r0), min(cols, N - c0)) for c0 in range(0, N, cols) for r0 in range(0, M, rows)]


def _operands(config: GemmConfig, a, b) -> tuple[np.ndarray, np.ndarray]:
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


def gemm_beats(config: GemmConfig, a, b) -> list[int]:
    """Packed ``ab`` beats of ``a @ b`` (``M x K`` by ``K x N``) for :class:`SystolicGemm`: one fold per
    :func:`gemm_folds` entry, ``K`` beats each (unused rows and columns zero)."""
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


def gemm_golden(config: GemmConfig, a, b) -> np.ndarray:
    """``a @ b`` as the array computes it: exact, wrapped to the accumulator width (two's complement)."""
    a, b = _operands(config, a, b)
    return wrap(a @ b, config.acc_bits)


def gemm_assemble(config: GemmConfig, tiles: list[dict], M: int, N: int) -> np.ndarray:
    """The ``M x N`` product from the unpacked ``o`` beats (one per fold, in fold order)."""
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


def gemm_ws_beats(config: GemmConfig, a, b) -> tuple[list[int], list[int]]:
    """Packed ``(w, a)`` beats of ``a @ b`` for :class:`SystolicGemmWS`: per :func:`ws_folds` entry, the weight
    tile's rows (last first, unused rows and columns zero) and the ``M`` input rows."""
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


def gemm_ws_assemble(config: GemmConfig, rows_out: list[dict], M: int, K: int, N: int) -> np.ndarray:
    """The ``M x N`` product from the unpacked ``o`` beats of a weight-stationary run (partial sums of every fold
    added, wrapped to the accumulator width)."""
    folds = ws_folds(config.rows, config.cols, K, N)
    if len(rows_out) != len(folds) * M:
        raise StimulusError(f"{len(rows_out)} result rows for {len(folds)} folds of {M} rows")
    out = np.zeros((M, N), np.int64)
    for f, (_, c0, _, uc) in enumerate(folds):
        for mm in range(M):
            out[mm, c0:c0 + uc] += np.array(rows_out[f * M + mm]["data"][:uc], dtype=np.int64)
    return wrap(out, config.acc_bits)


def run_systolic(config: GemmConfig, a, b, dataflow: str = "os") -> GemmRun:
    """Run ``a @ b`` through the per-cycle model of the GEMM RTL with every beat offered as soon as possible and
    ``o`` always ready. ``os``: :class:`SystolicGemm`, ``cycles`` from the first MAC to the last; ``ws``:
    :class:`SystolicGemmWS`, from the first weight beat to the last MAC; ``is``: ``ws`` on ``b^T @ a^T`` (SCALE-Sim's
    input-stationary mapping). Each equals :func:`accel.emulator.gemm_timing.rtl_gemm_cycles` (and the native closed
    form, except for output-stationary folds shorter than ``rows + cols - 1``)."""
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
