"""Packed group-quantised weights for the GPU kernels: the format on both sides (host packing, in-kernel decoding).

A weight matrix ``W`` (``N`` output rows x ``K`` inputs) quantised by :func:`accel.numerics.quantize_weights` is
stored as three tensors (:class:`PackedWeights`):

``qweight``: int32 ``(N, words_per_row)``, the codes of each row packed along ``K``, little end first:

* **8 bits**: 4 codes per word, code ``k`` in bits ``8*(k%4) .. 8*(k%4)+7`` of word ``k//4`` (``K/4`` words).
* **4 bits**: 8 codes per word, code ``k`` in bits ``4*(k%8) ..`` of word ``k//8`` (``K/8`` words).
* **3 bits**: 32 codes in 3 words, as bit planes: for unit ``u`` (codes ``32u .. 32u+31``) word ``3u`` holds the low
  two bits of codes ``0..15`` (code ``j`` at bits ``2j, 2j+1``), word ``3u+1`` those of codes ``16..31``, and word
  ``3u+2`` bit 2 of all 32 codes (code ``j`` at bit ``j``). Exactly 3 bits per weight (a row is padded with zero codes
  to whole units, ``3*ceil(K/32)`` words); decoding a code takes two loads, two shifts, two masks and an or, against
  one of each for 4 bits. Packing 10 codes per word instead would waste 2 bits of 32 (3.2 bits per weight) and
  needs a division by 10 (not a power of two) to find a code.

``meta``: int32 ``(N, K / group_size)``, per group ``scale_int << 8 | datatype_code``: the unsigned integer group
scale (``scale_bits <= 16``) and the datatype's index in :data:`accel.config.BITSERIAL_DATATYPES` (int8, int4, int3,
the four FP4 variants, the four FP3 variants). 4 bytes per group: 6.25% on top of the 64 bytes of a 128-weight 4-bit
group.

``row_scale``: float32 ``(N,)``, the float scale of each row (``QuantizedWeights.row_scale``).

Codes are decoded in registers through a value table (:func:`value_table`): int8 ``(datatypes, 2**bits)``, entry
``[d, c]`` = ``DATATYPES[BITSERIAL_DATATYPES[d]].values[c]`` (taken from :mod:`accel.numerics`, the one definition
of the datatypes), 0 past a datatype's last code. A 4-bit table is 176 bytes and stays in L1.

Rules (checked when a :class:`PackedWeights` is made, so no kernel ever sees a bad one): ``bits`` is 3, 4 or 8;
``group_size`` divides ``K`` and is a multiple of 16 (the kernels step through ``K`` in tiles of at least 16 that lie
inside one group, the smallest ``tl.dot`` tile); every datatype code is in the set; every datatype fits ``bits``; every
weight code fits its group's datatype; every scale is ``0 .. 65535``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .backend import KernelInputError, kernel_device, kernel_mode
from .layout import GROUP_STEP, PACK_BITS, words_per_row

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from ..config import BITSERIAL_DATATYPES  # noqa: E402
from ..numerics import DATATYPES, QuantizedWeights  # noqa: E402

__all__ = ["PACK_BITS", "DATATYPE_CODE", "MAX_SCALE", "PackedWeights", "pack_codes", "unpack_codes", "value_table",
           "pack_quantized", "pack_arrays", "random_packed", "words_per_row", "decode_codes"]

#: Datatype name -> its code in ``meta`` (the order of :data:`accel.config.BITSERIAL_DATATYPES`).
DATATYPE_CODE: dict[str, int] = {name: i for i, name in enumerate(BITSERIAL_DATATYPES)}
#: Largest group scale ``meta`` holds (16 bits; :func:`accel.numerics.quantize_weights` allows ``scale_bits <= 16``).
MAX_SCALE = (1 << 16) - 1


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``(N, K)`` codes (each ``0 .. 2**bits - 1``) into ``(N, words_per_row)`` int32 words (see module doc).

    ``K`` must be a multiple of ``32 // bits`` for 8 and 4 bits; 3-bit rows are padded to whole 32-code units.
    """
    c = np.asarray(codes, dtype=np.int64)
    n, k = c.shape
    u = c.astype(np.uint64)
    if bits == 3:
        pad = -k % 32
        u = np.pad(u, ((0, 0), (0, pad))).reshape(n, -1, 32)
        lo, hi = u & 3, u >> 2
        sh2 = (2 * np.arange(16, dtype=np.uint64))
        lo0 = (lo[..., :16] << sh2).sum(-1, dtype=np.uint64)
        lo1 = (lo[..., 16:] << sh2).sum(-1, dtype=np.uint64)
        hiw = (hi << np.arange(32, dtype=np.uint64)).sum(-1, dtype=np.uint64)
        words = np.stack([lo0, lo1, hiw], axis=-1).reshape(n, -1)
    else:
        per = 32 // bits
        shifts = bits * np.arange(per, dtype=np.uint64)
        words = (u.reshape(n, k // per, per) << shifts).sum(-1, dtype=np.uint64)
    return words.astype(np.uint32).view(np.int32)


def unpack_codes(words: np.ndarray, bits: int, k: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``(N, K)`` int64 codes."""
    w = np.asarray(words).astype(np.int32).view(np.uint32).astype(np.int64)
    n = w.shape[0]
    if bits == 3:
        w = w.reshape(n, -1, 3)
        j = np.arange(16)
        lo = np.concatenate([(w[..., :1] >> (2 * j)) & 3, (w[..., 1:2] >> (2 * j)) & 3], axis=-1)
        hi = (w[..., 2:3] >> np.arange(32)) & 1
        return (lo | (hi << 2)).reshape(n, -1)[:, :k]
    per = 32 // bits
    return ((w[..., None] >> (bits * np.arange(per))) & ((1 << bits) - 1)).reshape(n, -1)[:, :k]


@lru_cache(maxsize=None)
def _value_table_np(bits: int) -> np.ndarray:
    table = np.zeros((len(BITSERIAL_DATATYPES), 1 << bits), np.int8)
    for d, name in enumerate(BITSERIAL_DATATYPES):
        vals = DATATYPES[name].values
        if len(vals) <= (1 << bits):
            table[d, :len(vals)] = vals
    table.setflags(write=False)
    return table


def value_table(bits: int, device: Any = None) -> torch.Tensor:
    """int8 ``(len(BITSERIAL_DATATYPES), 2**bits)``: the value of every code of every datatype (0 past its codes and
    for datatypes wider than ``bits``, which the packer refuses)."""
    return torch.from_numpy(_value_table_np(bits).copy()).to(kernel_device() if device is None else device)


@dataclass(frozen=True)
class PackedWeights:
    """Group-quantised weights in the kernels' format (see the module doc). Make them with :func:`pack_quantized`
    or :func:`pack_arrays`, which check every rule.

    Members
    -------
    bits:
        Code width (3, 4 or 8 bits).
    n, k:
        Output rows and inputs of ``W`` (``y = W @ x``).
    group_size:
        Weights per group along ``K``.
    qweight:
        int32 ``(n, words_per_row(k, bits))`` packed codes.
    meta:
        int32 ``(n, k // group_size)``: ``scale_int << 8 | datatype_code``.
    row_scale:
        float32 ``(n,)`` row scales.
    lut:
        int8 value table :func:`value_table` ``(bits)``.
    """

    bits: int
    n: int
    k: int
    group_size: int
    qweight: torch.Tensor
    meta: torch.Tensor
    row_scale: torch.Tensor
    lut: torch.Tensor

    @property
    def nbytes(self) -> int:
        """Bytes a kernel reads for the weights: packed codes, group metadata and row scales."""
        return sum(t.numel() * t.element_size() for t in (self.qweight, self.meta, self.row_scale))

    def to(self, device: Any) -> "PackedWeights":
        return PackedWeights(self.bits, self.n, self.k, self.group_size, self.qweight.to(device),
                             self.meta.to(device), self.row_scale.to(device), self.lut.to(device))


def pack_arrays(codes: np.ndarray, datatype_codes: np.ndarray, scale_int: np.ndarray, row_scale: np.ndarray,
                group_size: int, bits: int, device: Any = None) -> PackedWeights:
    """Pack integer weights given as arrays and check every rule of the format.

    Parameters
    ----------
    codes:
        ``(N, K)`` weight codes.
    datatype_codes:
        ``(N, K // group_size)`` datatype code of every group (index into :data:`accel.config.BITSERIAL_DATATYPES`).
    scale_int:
        ``(N, K // group_size)`` unsigned integer group scales, ``0 .. 65535``.
    row_scale:
        ``(N,)`` float row scales.
    group_size, bits:
        Weights per group; code width (3, 4 or 8 bits).
    device:
        Where the tensors go (default :func:`accel.gpu.backend.kernel_device`).

    Raises
    ------
    KernelInputError
        Naming the first value that breaks a rule, the rule and the fix.
    """
    if isinstance(bits, bool) or bits not in PACK_BITS:
        raise KernelInputError(f"bits = {bits!r}: the kernels read 3-, 4- or 8-bit codes; use one of {PACK_BITS}")
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.size == 0 or codes.dtype.kind not in "iu":
        raise KernelInputError(f"weight codes of shape {codes.shape} and dtype {codes.dtype}: they must be a "
                               f"non-empty (N, K) integer matrix")
    n, k = codes.shape
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1 \
            or group_size % GROUP_STEP:
        raise KernelInputError(f"group_size = {group_size!r}: the GPU kernels need a positive multiple of "
                               f"{GROUP_STEP} (their K tiles lie inside one group and tl.dot tiles are at least "
                               f"16 deep); quantise with group_size 32, 64 or 128")
    if k % group_size:
        raise KernelInputError(f"K = {k} is not a multiple of group_size {group_size}; choose a group size that "
                               f"divides {k} or pad K with zero weights")
    groups = k // group_size
    dcode = np.asarray(datatype_codes)
    scale = np.asarray(scale_int)
    rs = np.asarray(row_scale, dtype=np.float64)
    for arr, what in ((dcode, "datatype codes"), (scale, "group scales")):
        if arr.shape != (n, groups) or arr.dtype.kind not in "iu":
            raise KernelInputError(f"{what} of shape {arr.shape} and dtype {arr.dtype}: they must be integers of "
                                   f"shape (N, K // group_size) = ({n}, {groups})")
    if rs.shape != (n,) or not np.all(np.isfinite(rs)):
        raise KernelInputError(f"row scales of shape {rs.shape}: they must be {n} finite floats")
    bad = (dcode < 0) | (dcode >= len(BITSERIAL_DATATYPES))
    if bad.any():
        r, g = np.argwhere(bad)[0]
        raise KernelInputError(f"datatype code {int(dcode[r, g])} of group ({r}, {g}) is outside the set 0.."
                               f"{len(BITSERIAL_DATATYPES) - 1} ({', '.join(BITSERIAL_DATATYPES)})")
    widths = np.array([DATATYPES[d].code_bits for d in BITSERIAL_DATATYPES])[dcode]
    if (widths > bits).any():
        r, g = np.argwhere(widths > bits)[0]
        name = BITSERIAL_DATATYPES[int(dcode[r, g])]
        raise KernelInputError(f"group ({r}, {g}) is {name}, which needs {DATATYPES[name].code_bits}-bit codes, "
                               f"but the weights are packed at {bits} bits; pack at {DATATYPES[name].code_bits} "
                               f"bits or more")
    limit = np.repeat(1 << widths, group_size, axis=1)
    bad = (codes < 0) | (codes >= limit)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        name = BITSERIAL_DATATYPES[int(dcode[r, c // group_size])]
        raise KernelInputError(f"weight code {int(codes[r, c])} at ({r}, {c}) does not fit its group's datatype "
                               f"{name} (codes 0..{int(limit[r, c]) - 1})")
    if (scale < 0).any() or (scale > MAX_SCALE).any():
        r, g = np.argwhere((scale < 0) | (scale > MAX_SCALE))[0]
        raise KernelInputError(f"group scale {int(scale[r, g])} of group ({r}, {g}) is outside 0..{MAX_SCALE} "
                               f"(16 bits); quantise with scale_bits <= 16")
    dev = kernel_device() if device is None else device
    meta = ((scale.astype(np.int64) << 8) | dcode.astype(np.int64)).astype(np.int32)
    return PackedWeights(
        bits=int(bits), n=int(n), k=int(k), group_size=int(group_size),
        qweight=torch.from_numpy(pack_codes(codes, bits)).to(dev),
        meta=torch.from_numpy(meta).to(dev),
        row_scale=torch.from_numpy(rs.astype(np.float32)).to(dev),
        lut=value_table(bits, dev),
    )


def pack_quantized(qw: QuantizedWeights, bits: int | None = None, device: Any = None) -> PackedWeights:
    """Pack :class:`accel.numerics.QuantizedWeights` for the kernels.

    ``bits`` defaults to the narrowest width of :data:`PACK_BITS` that holds every datatype of ``qw.datatypes``
    (3 for the FP3/INT3 set, 4 for FP4/INT4, 8 when INT8 is allowed).
    """
    if bits is None:
        need = max(DATATYPES[d].code_bits for d in qw.datatypes)
        bits = min(b for b in PACK_BITS if b >= need)
    dcode = np.vectorize(DATATYPE_CODE.__getitem__, otypes=[np.int64])(qw.dtypes)
    return pack_arrays(qw.codes, dcode, qw.scale_int, qw.row_scale, qw.group_size, bits, device)


def random_packed(n: int, k: int, bits: int, group_size: int, seed: int, device: Any = None) -> PackedWeights:
    """Random packed weights for benchmarks (quantising a real 8192 x 8192 matrix takes minutes on the host).

    Groups draw their datatype from those whose codes are exactly ``bits`` wide (int8; int4 and the FP4 variants;
    int3 and the FP3 variants), so every random code is valid; scales are 1..255. Valid by construction: every rule
    :func:`pack_arrays` checks holds.
    """
    if bits not in PACK_BITS:
        raise KernelInputError(f"bits = {bits!r}: use one of {PACK_BITS}")
    if group_size % GROUP_STEP or k % group_size:
        raise KernelInputError(f"group_size {group_size} must be a multiple of {GROUP_STEP} that divides K = {k}")
    dev = kernel_device() if device is None else device
    gen = torch.Generator(device=dev).manual_seed(seed)
    words = torch.randint(0, 1 << 32, (n, words_per_row(k, bits)), generator=gen, device=dev,
                          dtype=torch.int64).to(torch.int32)
    names = torch.tensor([DATATYPE_CODE[d] for d in BITSERIAL_DATATYPES if DATATYPES[d].code_bits == bits],
                         device=dev, dtype=torch.int32)
    pick = torch.randint(0, len(names), (n, k // group_size), generator=gen, device=dev)
    scale = torch.randint(1, 256, (n, k // group_size), generator=gen, device=dev, dtype=torch.int32)
    row_scale = torch.rand((n,), generator=gen, device=dev) * 1e-3 + 1e-4
    return PackedWeights(bits, n, k, group_size, words, (scale << 8) | names[pick], row_scale,
                         value_table(bits, dev))


@triton.jit
def decode_codes(qw_row_ptrs, k, mask, BITS: tl.constexpr):
    """Codes at inputs ``k`` of the rows whose packed words start at ``qw_row_ptrs`` (broadcast against ``k``).

    Masked-off lanes read code 0.
    """
    if BITS == 3:
        unit = k // 32
        j = k % 32
        lo = tl.load(qw_row_ptrs + 3 * unit + j // 16, mask=mask, other=0)
        hi = tl.load(qw_row_ptrs + 3 * unit + 2, mask=mask, other=0)
        # int32 shifts are arithmetic; the masks keep only the wanted bits
        code = ((lo >> (2 * (j % 16))) & 3) | (((hi >> j) & 1) << 2)
    else:
        PER: tl.constexpr = 32 // BITS
        w = tl.load(qw_row_ptrs + k // PER, mask=mask, other=0)
        code = (w >> (BITS * (k % PER))) & ((1 << BITS) - 1)
    return code
