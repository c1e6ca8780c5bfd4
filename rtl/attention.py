"""The spatial attention array (after FuseMax) in Amaranth: stream layouts and the ``AttentionArray`` component.

A ``rows`` x ``cols`` 2D array of PEs (keys of a chunk on the rows, queries on the columns, the head dimension looped
in time) plus a 1D array of ``cols`` PEs (one per query). Each PE keeps its score from QK through the V product. The
exact cycle behaviour is specified in ``docs/attention.md`` and implemented identically by
``emulator/units/attention.py``.
"""
from __future__ import annotations

from amaranth.hdl import *
from amaranth.lib import data

from accel.config import AttentionConfig
from accel.numerics import ATTN_MAX_KEYS_LOG2, attn_format

__all__ = ["POS_BITS", "q_layout", "k_layout", "v_layout", "o_layout", "shift_bits", "keys_bits"]

#: Width of a token position (query or key), enough for ``2**ATTN_MAX_KEYS_LOG2`` keys.
POS_BITS = ATTN_MAX_KEYS_LOG2 + 1


def shift_bits(cfg: AttentionConfig) -> int:
    """Width of the Q tile's ``shift`` field (the score fraction bits ``F``)."""
    return max(1, attn_format(cfg).max_score_frac_bits.bit_length())


def keys_bits(cfg: AttentionConfig) -> int:
    """Width of a K beat's ``keys`` field (valid keys in the chunk, 1 .. rows)."""
    return max(1, cfg.rows.bit_length())


def q_layout(cfg: AttentionConfig) -> data.StructLayout:
    """Q beat: one head dimension of every query of the tile (query ``j`` in element ``j``), ``last`` on the tile's
    last head dimension; ``shift`` (F), ``causal`` and ``pos`` (position of query 0) are taken from the last beat."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.data_bits), cfg.cols),
        "last": unsigned(1),
        "shift": unsigned(shift_bits(cfg)),
        "causal": unsigned(1),
        "pos": unsigned(POS_BITS),
    })


def k_layout(cfg: AttentionConfig) -> data.StructLayout:
    """K beat: one head dimension of every key of a chunk (key ``i`` in element ``i``); ``keys`` (valid keys,
    1 .. rows), ``pos`` (position of key 0) and ``last`` (last chunk) are taken from the chunk's first beat."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(cfg.data_bits), cfg.rows),
        "last": unsigned(1),
        "keys": unsigned(keys_bits(cfg)),
        "pos": unsigned(POS_BITS),
    })


def v_layout(cfg: AttentionConfig) -> data.ArrayLayout:
    """V beat: one head dimension of every value of a chunk."""
    return data.ArrayLayout(signed(cfg.data_bits), cfg.rows)


def o_layout(cfg: AttentionConfig) -> data.StructLayout:
    """O beat: one head dimension of every query's output (``out_frac_bits`` fraction bits), ``last`` on the last."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(attn_format(cfg).out_bits), cfg.cols),
        "last": unsigned(1),
    })
