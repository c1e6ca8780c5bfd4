"""The systolic GEMM engines' ports, as field tables (:mod:`accel.interfaces.packing`).

:class:`accel.rtl.gemm.SystolicGemm` (output-stationary) and :class:`accel.rtl.gemm.SystolicGemmWS`
(weight-stationary) derive their stream layouts from these tables; the per-cycle models
(:mod:`accel.emulator.units.gemm`), the operand packing (:mod:`accel.emulator.gemm_driver`) and the equivalence
harness use the same ones. Element widths come from :class:`accel.config.GemmConfig` (``data_bits``, ``acc_bits``).
"""
from __future__ import annotations

from ..config import GemmConfig
from .packing import Array, SInt, Struct, UInt

__all__ = ["ab_layout", "gemm_o_layout", "w_layout", "ws_a_layout", "ws_o_layout"]


def _size(n: int) -> UInt:
    """A count of 0 .. ``n`` (a fold's used rows or columns)."""
    return UInt(n.bit_length())


def ab_layout(cfg: GemmConfig) -> Struct:
    """Operand beat (output-stationary): column ``t`` of the fold's A tile (row ``i`` in element ``i`` of ``a``) and
    row ``t`` of its B tile (column ``j`` in element ``j`` of ``b``); ``rows`` and ``cols`` (the fold's used rows and
    columns, 1 .. ``rows``/``cols``) are taken from the fold's first beat; ``last`` marks the fold's last beat."""
    return Struct({
        "a": Array(SInt(cfg.data_bits), cfg.rows),
        "b": Array(SInt(cfg.data_bits), cfg.cols),
        "rows": _size(cfg.rows),
        "cols": _size(cfg.cols),
        "last": UInt(1),
    })


def gemm_o_layout(cfg: GemmConfig) -> Struct:
    """Result beat (output-stationary): a fold's ``rows`` x ``cols`` output tile (``data[i][j]``; elements beyond the
    fold's used rows and columns hold stale values) and the fold's used ``rows`` and ``cols``."""
    return Struct({
        "data": Array(Array(SInt(cfg.acc_bits), cfg.cols), cfg.rows),
        "rows": _size(cfg.rows),
        "cols": _size(cfg.cols),
    })


def w_layout(cfg: GemmConfig) -> Array:
    """Weight beat (weight-stationary): one row of the fold's ``rows`` x ``cols`` weight tile; a fold's tile is
    ``rows`` beats, its last row first."""
    return Array(SInt(cfg.data_bits), cfg.cols)


def ws_a_layout(cfg: GemmConfig) -> Struct:
    """Input beat (weight-stationary): row ``m`` of the fold's input slice (``a[i]`` meets weight row ``i``);
    ``rows``/``cols`` (the fold's used weight rows and columns) from the fold's first beat; ``last`` on its last."""
    return Struct({
        "a": Array(SInt(cfg.data_bits), cfg.rows),
        "rows": _size(cfg.rows),
        "cols": _size(cfg.cols),
        "last": UInt(1),
    })


def ws_o_layout(cfg: GemmConfig) -> Struct:
    """Result beat (weight-stationary): the partial sums of output row ``m`` over the fold's weight rows (one per
    column), the fold's used ``cols`` and ``last`` on the fold's last row."""
    return Struct({
        "data": Array(SInt(cfg.acc_bits), cfg.cols),
        "cols": _size(cfg.cols),
        "last": UInt(1),
    })
