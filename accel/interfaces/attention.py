"""The spatial attention array's ports and state codes, shared by the RTL and the per-cycle model.

:class:`accel.rtl.attention.AttentionArray` derives its stream layouts from these field tables
(:mod:`accel.interfaces.packing`) and encodes its mode, phase and score-register state with these codes; the per-cycle
model (:mod:`accel.emulator.units.attention`) and the equivalence harness use the same ones.
"""
from __future__ import annotations

from ..config import AttentionConfig
from ..numerics import ATTN_MAX_KEYS_LOG2, attn_format
from .packing import Array, SInt, Struct, UInt

__all__ = ["POS_BITS", "shift_bits", "keys_bits", "q_layout", "k_layout", "v_layout", "o_layout",
           "LOADQ", "RUN", "DIV", "OUT", "IDLE", "QK", "V", "FREE", "SM0", "SM1", "SLN"]

#: Width of a token position (query or key), enough for ``2**ATTN_MAX_KEYS_LOG2`` keys.
POS_BITS = ATTN_MAX_KEYS_LOG2 + 1

#: Modes of a tile (``docs/attention.md``): loading Q, running the cascade, the division, offering O.
LOADQ, RUN, DIV, OUT = range(4)
#: Phases of the 2D array's multipliers in RUN.
IDLE, QK, V = range(3)
#: States of the PEs' score register: free, softmax step 0 and 1, holding SLN for the V phase.
FREE, SM0, SM1, SLN = range(4)


def shift_bits(cfg: AttentionConfig) -> int:
    """Width of the Q tile's ``shift`` field (the score fraction bits ``F``)."""
    return max(1, attn_format(cfg).max_score_frac_bits.bit_length())


def keys_bits(cfg: AttentionConfig) -> int:
    """Width of a K beat's ``keys`` field (valid keys in the chunk, 1 .. rows)."""
    return max(1, cfg.rows.bit_length())


def q_layout(cfg: AttentionConfig) -> Struct:
    """Q beat: one head dimension of every query of the tile (query ``j`` in element ``j``), ``last`` on the tile's
    last head dimension; ``shift`` (F), ``causal`` and ``pos`` (position of query 0) are taken from the last beat."""
    return Struct({
        "data": Array(SInt(cfg.data_bits), cfg.cols),
        "last": UInt(1),
        "shift": UInt(shift_bits(cfg)),
        "causal": UInt(1),
        "pos": UInt(POS_BITS),
    })


def k_layout(cfg: AttentionConfig) -> Struct:
    """K beat: one head dimension of every key of a chunk (key ``i`` in element ``i``); ``keys`` (valid keys,
    1 .. rows), ``pos`` (position of key 0) and ``last`` (last chunk) are taken from the chunk's first beat."""
    return Struct({
        "data": Array(SInt(cfg.data_bits), cfg.rows),
        "last": UInt(1),
        "keys": UInt(keys_bits(cfg)),
        "pos": UInt(POS_BITS),
    })


def v_layout(cfg: AttentionConfig) -> Array:
    """V beat: one head dimension of every value of a chunk."""
    return Array(SInt(cfg.data_bits), cfg.rows)


def o_layout(cfg: AttentionConfig) -> Struct:
    """O beat: one head dimension of every query's output (``out_frac_bits`` fraction bits), ``last`` on the last."""
    return Struct({
        "data": Array(SInt(attn_format(cfg).out_bits), cfg.cols),
        "last": UInt(1),
    })
