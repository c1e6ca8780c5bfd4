"""Sizes of the packed weight format (no torch, no Triton): what :mod:`accel.gpu.quant_pack` stores, counted in bytes
for the roofline. The format itself is described in :mod:`accel.gpu.quant_pack`."""
from __future__ import annotations

__all__ = ["PACK_BITS", "GROUP_STEP", "META_BYTES", "words_per_row", "packed_weight_bytes"]

#: Code widths the kernels read (bits).
PACK_BITS = (3, 4, 8)
#: Group sizes must be multiples of this (the kernels' K tiles lie inside one group and are at least 16 deep).
GROUP_STEP = 16
#: Bytes of metadata per group (one int32: ``scale_int << 8 | datatype_code``).
META_BYTES = 4


def words_per_row(k: int, bits: int) -> int:
    """int32 words that hold one row of ``k`` codes at ``bits`` bits (3-bit rows are padded to 32-code units)."""
    if bits == 3:
        return 3 * (-(-k // 32))
    return k * bits // 32


def packed_weight_bytes(n: int, k: int, bits: int, group_size: int) -> int:
    """Bytes of an ``n x k`` packed matrix: codes, per-group metadata and the float32 row scales."""
    return n * words_per_row(k, bits) * 4 + n * (k // group_size) * META_BYTES + n * 4
