"""The bit-serial MAC unit's ports, as field tables (:mod:`accel.interfaces.packing`).

:class:`accel.rtl.bitserial.BitSerialUnit` derives its stream layouts from these tables; the per-cycle model
(:mod:`accel.emulator.units.bitserial`) and the equivalence harness pack and unpack beats with them.
"""
from __future__ import annotations

from ..config import BitSerialConfig
from .packing import Array, SInt, Struct, UInt

__all__ = ["act_layout", "wgt_layout", "res_layout"]


def act_layout(cfg: BitSerialConfig) -> Array:
    """Activation beat: ``lanes`` signed ``act_bits``-bit activations, lane 0 in the low bits."""
    return Array(SInt(cfg.act_bits), cfg.lanes)


def wgt_layout(cfg: BitSerialConfig) -> Struct:
    """Weight beat: codes, then the group's datatype code, scale and ``last`` (end of the dot product)."""
    return Struct({
        "codes": Array(UInt(cfg.max_weight_bits), cfg.lanes),
        "dtype": UInt(cfg.dtype_bits),
        "scale": UInt(cfg.scale_bits),
        "last": UInt(1),
    })


def res_layout(cfg: BitSerialConfig) -> SInt:
    """Result beat: one dot product, ``acc_bits`` wide (two's complement, wrapping)."""
    return SInt(cfg.acc_bits)
