"""Golden numerics: integer formats, BitMoD-style datatypes, bit-serial decomposition, group dot products.

Everything here is integer and bit-exact: the RTL and the per-cycle models compute exactly these functions. The
weight datatypes and their bit-serial terms (``DataType``, ``DATATYPES``, ``Term``, ``booth_terms``, ``wrap``) are
defined in :mod:`accel.datatypes`, which needs no numpy (loading a device checks its datatypes), and re-exported here.

Group dot product
-----------------
A group of ``group_size`` weights shares a datatype and an unsigned integer scale. The unit computes
``psum = sum(a_i * w_i)`` over the group, then the bit-serial dequantiser multiplies by the scale MSB first
(``r = (r << 1) + (psum if scale_bit else 0)``) and adds ``r`` into the result. Partial sums and the result wrap at
``acc_bits`` (two's complement), as the registers do.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .datatypes import DATATYPES, DataType, Term, booth_terms, wrap
from .errors import StimulusError

__all__ = [
    "DataType", "DATATYPES", "Term", "wrap", "booth_terms", "dequant_serial", "group_dot", "bitserial_dot",
]


def dequant_serial(psum: int, scale: int, scale_bits: int, acc_bits: int) -> int:
    """The dequantiser's result for one group: ``psum * scale`` computed MSB first, wrapped at ``acc_bits``."""
    r = 0
    for i in reversed(range(scale_bits)):
        r = wrap((r << 1) + (psum if (scale >> i) & 1 else 0), acc_bits)
    return r


def group_dot(acts: np.ndarray, values: np.ndarray, acc_bits: int) -> int:
    """Partial sum of one group, wrapped at ``acc_bits``."""
    return wrap(int(np.dot(np.asarray(acts, dtype=np.int64), np.asarray(values, dtype=np.int64))), acc_bits)


def bitserial_dot(acts: np.ndarray, codes: np.ndarray, dtypes: list[str], scales: list[int], group_size: int,
                  scale_bits: int, acc_bits: int) -> int:
    """Golden result of one dot product through the bit-serial unit.

    ``acts`` and ``codes`` hold ``len(dtypes) * group_size`` elements; group ``g`` uses ``dtypes[g]`` and
    ``scales[g]``.
    """
    acts = np.asarray(acts, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    acc = 0
    for g, (dt, sc) in enumerate(zip(dtypes, scales)):
        sl = slice(g * group_size, (g + 1) * group_size)
        psum = group_dot(acts[sl], DATATYPES[dt].decode(codes[sl]), acc_bits)
        acc = wrap(acc + dequant_serial(psum, sc, scale_bits, acc_bits), acc_bits)
    return acc


# ---------------------------------------------------------------------------------------------------------------------
# Quantisation: integer activations, BitMoD-style per-group weights, the integer matrix-vector product
# ---------------------------------------------------------------------------------------------------------------------
#
# Floats enter here and leave as the integers the unit consumes (activation integers, weight codes, per-group datatypes
# and integer scales); everything after ``quantize_weights`` is integer and bit-exact with ``bitserial_dot``.

from .errors import EncodingError  # noqa: E402  (kept with the section that uses it)

__all__ += [
    "int_range", "check_int", "QuantizedTensor", "quantize_symmetric", "quantize_with_scale", "scale_max",
    "round_to_grid", "QuantizedWeights", "quantize_weights", "matvec_int", "matvec",
]


def int_range(bits: int) -> tuple[int, int]:
    """Smallest and largest ``bits``-wide two's complement integer."""
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 2 <= bits <= 32:
        raise EncodingError(f"integer width {bits!r} is not supported; use a width of 2 to 32 bits")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def check_int(values: np.ndarray, bits: int, what: str = "activation") -> np.ndarray:
    """Check that ``values`` are integers that fit ``bits``-bit two's complement; return them as ``int64``.

    Raises
    ------
    StimulusError
        Naming the first value (and its index) that is not an integer or lies outside the format.
    """
    lo, hi = int_range(bits)
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind not in "fb" and arr.size:
            raise StimulusError(f"{what} values must be integers, not {arr.dtype}; quantise them first")
        bad = ~np.isfinite(arr.astype(np.float64)) | (arr != np.round(arr))
        if bad.any():
            idx = _first_bad(np.atleast_1d(bad))
            raise StimulusError(f"{what} {np.atleast_1d(arr)[idx].item()!r} at index {list(idx)} is not an integer; "
                                f"{what}s must be integers (quantise them first)")
    arr = arr.astype(np.int64)
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        idx = _first_bad(np.atleast_1d(bad))
        raise StimulusError(f"{what} {int(np.atleast_1d(arr)[idx])} at index {list(idx)} does not fit int{bits} "
                            f"({lo}..{hi}); quantise with a larger scale or use more bits")
    return arr


def _check_finite(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise StimulusError(f"{what} must be a real numeric array, not {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = _first_bad(np.atleast_1d(bad))
        raise StimulusError(f"{what} has {np.atleast_1d(arr)[idx]} at index {list(idx)}; values must be finite "
                            f"(replace NaN/inf before quantising)")
    return arr


@dataclass(frozen=True)
class QuantizedTensor:
    """Symmetric integer quantisation: ``x ≈ q * scale``.

    Members
    -------
    q:
        Integers in ``bits``-bit two's complement (``int64`` array, the input's shape).
    scale:
        Float step per integer (same units as ``x``), broadcastable against ``q``: shape ``()`` per tensor, or the
        input's shape with every axis but the channel axis of length 1.
    bits:
        Integer width (bits).
    """

    q: np.ndarray
    scale: np.ndarray
    bits: int

    def dequantize(self) -> np.ndarray:
        return self.q * self.scale


def quantize_symmetric(x: np.ndarray, bits: int = 8, axis: int | None = None) -> QuantizedTensor:
    """Quantise ``x`` symmetrically to ``bits``-bit integers, per tensor or per channel.

    The scale maps the largest magnitude to ``2**(bits-1) - 1`` (the most negative code is left unused so that the
    range is symmetric); values round half to even. An all-zero tensor (or channel) gets scale 1.

    Parameters
    ----------
    x:
        Real values (any shape, finite).
    bits:
        Integer width (bits), 2..32; activations of the bit-serial unit use its ``act_bits`` (8).
    axis:
        ``None`` for one scale for the whole tensor; otherwise the channel axis, which gets one scale per index.

    Raises
    ------
    StimulusError
        ``x`` holds NaN or inf.
    EncodingError
        ``bits`` or ``axis`` is out of range.
    """
    lo, hi = int_range(bits)
    arr = _check_finite(x, "tensor to quantise")
    if axis is None:
        absmax = np.max(np.abs(arr)) if arr.size else np.float64(0.0)
    else:
        if not -arr.ndim <= axis < arr.ndim:
            raise EncodingError(f"channel axis {axis} does not exist in a {arr.ndim}-D tensor; "
                                f"use -{arr.ndim}..{arr.ndim - 1} or None for per-tensor")
        others = tuple(i for i in range(arr.ndim) if i != axis % arr.ndim)
        absmax = np.max(np.abs(arr), axis=others, keepdims=True)
    scale = np.where(absmax > 0, absmax / hi, 1.0)
    q = np.clip(np.rint(arr / scale), lo, hi).astype(np.int64)
    return QuantizedTensor(q, np.asarray(scale, dtype=np.float64), int(bits))


def quantize_with_scale(x: np.ndarray, scale: float | np.ndarray, bits: int = 8, *,
                        saturate: bool = False) -> np.ndarray:
    """Quantise ``x`` with a given (e.g. calibrated) scale: ``q = round(x / scale)``.

    A value whose ``q`` falls outside ``bits``-bit two's complement is an error unless ``saturate`` is set, in which
    case it is clipped to the nearest end of the range (what a saturating converter does).

    Raises
    ------
    StimulusError
        NaN/inf in ``x``, or (without ``saturate``) a value out of range, named with its index.
    EncodingError
        A scale that is not positive and finite.
    """
    lo, hi = int_range(bits)
    arr = _check_finite(x, "tensor to quantise")
    sc = np.asarray(scale, dtype=np.float64)
    if not (np.all(np.isfinite(sc)) and np.all(sc > 0)):
        raise EncodingError(f"scale {scale!r} must be positive and finite")
    q = np.rint(arr / sc)
    if saturate:
        return np.clip(q, lo, hi).astype(np.int64)
    bad = (q < lo) | (q > hi)
    if bad.any():
        idx = _first_bad(np.atleast_1d(bad))
        xv = float(np.atleast_1d(arr)[idx])
        raise StimulusError(f"value {xv!r} at index {list(idx)} quantises to {int(np.atleast_1d(q)[idx])}, outside "
                            f"int{bits} ({lo}..{hi}); use a larger scale or saturate=True")
    return q.astype(np.int64)


def _datatype(name: object) -> DataType:
    if not isinstance(name, str) or name not in DATATYPES:
        raise EncodingError(f"datatype {name!r} is not one of {', '.join(DATATYPES)}")
    return DATATYPES[name]


def scale_max(name: str) -> int:
    """The grid value a group's largest magnitude maps to (the divisor of its float scale).

    INT types use the symmetric maximum ``2**(bits-1) - 1`` (7 for INT4, 3 for INT3), as BitMoD's symmetric INT
    quantiser does; FP types use the largest magnitude of their value set *including* the special value (12 for the
    FP4 extra-resolution types, 16 for extra-asymmetry, 4 and 6 for FP3), as BitMoD's ``quant_datatype`` does.
    """
    dt = _datatype(name)
    return (1 << (dt.code_bits - 1)) - 1 if dt.kind == "int" else dt.max_abs


def _grid_index(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    # side="left" sends a value exactly on a midpoint to the lower grid value, the tie rule of BitMoD's quantiser;
    # values beyond the ends saturate to the end values.
    mids = (grid[1:] + grid[:-1]) / 2.0
    return np.searchsorted(mids, x, side="left")


def round_to_grid(x: np.ndarray, name: str) -> np.ndarray:
    """Nearest value of datatype ``name`` for every element of ``x`` (ties to the lower value, ends saturate)."""
    grid = _datatype(name).grid
    return grid[_grid_index(np.asarray(x, dtype=np.float64), grid.astype(np.float64))]


@dataclass(frozen=True)
class QuantizedWeights:
    """A weight matrix quantised per group, in the form the bit-serial unit consumes.

    ``W[r, k] ≈ row_scale[r] * scale_int[r, g] * value(codes[r, k])`` with ``g = k // group_size`` and ``value``
    the decoding of group ``(r, g)``'s datatype ``dtypes[r, g]``.

    Members
    -------
    group_size, scale_bits:
        Weights per group; width of the unsigned integer group scale (bits).
    datatypes:
        The allowed set, in preference order (first wins a tie in squared error).
    codes:
        ``(rows, K)`` weight codes (``int64``).
    dtypes:
        ``(rows, K // group_size)`` datatype name of every group.
    scale_int:
        ``(rows, groups)`` unsigned integer group scales, ``1 .. 2**scale_bits - 1``.
    row_scale:
        ``(rows,)`` float scale of each row (units of ``W`` per integer step of ``scale_int * value``).
    group_scale:
        ``(rows, groups)`` float group scales ``absmax / scale_max(dtype)`` before integer scale quantisation.
    weights:
        ``(rows, K)`` dequantised weights with the integer scales (what the integer datapath computes with).
    float_weights:
        ``(rows, K)`` dequantised weights with the float group scales (BitMoD's float-scale result).
    """

    group_size: int
    scale_bits: int
    datatypes: tuple[str, ...]
    codes: np.ndarray
    dtypes: np.ndarray
    scale_int: np.ndarray
    row_scale: np.ndarray
    group_scale: np.ndarray
    weights: np.ndarray
    float_weights: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def groups(self) -> int:
        return self.codes.shape[1] // self.group_size

    @cached_property
    def values(self) -> np.ndarray:
        """``(rows, K)`` integer weight values (the codes decoded by their group's datatype)."""
        rows, k = self.codes.shape
        lut = np.zeros((len(self.datatypes), 1 << max(DATATYPES[d].code_bits for d in self.datatypes)), np.int64)
        index = np.zeros(self.dtypes.shape, np.int64)
        for i, name in enumerate(self.datatypes):
            vals = DATATYPES[name].values
            lut[i, :len(vals)] = vals
            index[self.dtypes == name] = i
        per_weight = np.repeat(index, self.group_size, axis=1)
        return lut[per_weight, self.codes]


def _check_datatype_set(datatypes: object) -> tuple[str, ...]:
    if isinstance(datatypes, str):
        datatypes = (datatypes,)
    names = tuple(datatypes)  # type: ignore[arg-type]
    if not names:
        raise EncodingError(f"the datatype set is empty; name at least one of {', '.join(DATATYPES)}")
    for n in names:
        _datatype(n)
    if len(set(names)) != len(names):
        raise EncodingError(f"the datatype set {list(names)} repeats a datatype; name each once")
    return names


def quantize_weights(w: np.ndarray, datatypes: tuple[str, ...] | list[str] | str, group_size: int = 128,
                     scale_bits: int = 8) -> QuantizedWeights:
    """Quantise a weight matrix per group, choosing each group's datatype by least squared error (after BitMoD).

    Procedure
    ---------
    1. ``W`` (``rows x K``) is cut into groups of ``group_size`` consecutive weights along ``K`` (the input
       dimension, the one a dot product reduces).
    2. For every allowed datatype ``d``, the group's float scale is ``s = absmax(group) / scale_max(d)`` and every
       weight rounds to the nearest value of ``d``'s grid (ties to the lower value, beyond the ends saturate). The
       datatype whose dequantised group ``s * values`` has the least squared error wins (the first in ``datatypes``
       on a tie). This is BitMoD's ``search_datatype``/``quant_datatype`` (abdelfattah-lab/BitMoD-HPCA-25,
       ``bitmod_quant/quant_utils/quant_weight.py``): the scale divides by the largest magnitude *including* the
       special value, so an extra-asymmetry type such as ``fp4_ea_pos`` maps the group's absmax onto +16 and spends
       the finer remaining grid on the other weights — this pays off only when the group's absmax is positive (a
       negative extreme saturates to -12), and the error search then picks the ``_neg`` twin instead. INT types divide
       by ``2**(bits-1) - 1`` (symmetric, as BitMoD's INT baseline).
    3. The float group scales become unsigned ``scale_bits``-bit integers against one float scale per row:
       ``S_row = max_g s_g / (2**scale_bits - 1)``, ``scale_int = clip(round(s_g / S_row), 1, 2**scale_bits - 1)``
       (at least 1 so that no group with non-zero weights is scaled to nothing). An all-zero row gets ``S_row = 1``.
    4. With datatype and integer scale fixed, every weight re-rounds to the nearest grid value of
       ``W / (S_row * scale_int)``: for a fixed scale the nearest value is the least-error choice, so this is never
       worse than keeping the codes found with the float scale. Its result is ``weights``; the float-scale result of
       step 2 is kept as ``float_weights``.

    The integer datapath then computes ``y_int[r] = sum_g scale_int[r, g] * sum_{i in g} a_i * value_i`` (see
    :func:`matvec_int`, equal to :func:`bitserial_dot` per row) and ``y ≈ row_scale * act_scale * y_int``.

    Parameters
    ----------
    w:
        ``(rows, K)`` real weights, finite.
    datatypes:
        Allowed datatype names (from :data:`DATATYPES`), in tie-break order; one name gives plain per-group
        quantisation in that datatype.
    group_size:
        Weights per group (``K`` must be a multiple).
    scale_bits:
        Width of the integer group scale (bits), 1..16.

    Raises
    ------
    StimulusError
        ``w`` is not a non-empty 2-D matrix, holds NaN/inf, or ``K`` is not a multiple of ``group_size``.
    EncodingError
        A datatype name not in :data:`DATATYPES`, an empty or repeating set, or ``group_size``/``scale_bits`` out of
        range.
    """
    names = _check_datatype_set(datatypes)
    if not isinstance(group_size, (int, np.integer)) or isinstance(group_size, bool) or group_size < 1:
        raise EncodingError(f"group_size {group_size!r} must be a positive integer (weights per group)")
    if not isinstance(scale_bits, (int, np.integer)) or isinstance(scale_bits, bool) or not 1 <= scale_bits <= 16:
        raise EncodingError(f"scale_bits {scale_bits!r} must be an integer of 1 to 16 bits")
    arr = np.asarray(w)
    if arr.ndim != 2 or arr.size == 0:
        raise StimulusError(f"weights of shape {arr.shape} are not a non-empty (rows, K) matrix")
    arr = _check_finite(arr, "weight matrix")
    rows, k = arr.shape
    if k % group_size:
        raise StimulusError(f"K = {k} is not a multiple of group_size {group_size}; pad K with zero weights to "
                            f"{-(-k // group_size) * group_size} or choose a group size that divides {k}")
    groups = k // group_size
    wg = arr.reshape(rows, groups, group_size)
    absmax = np.max(np.abs(wg), axis=-1)

    # Step 2: float scale per candidate datatype, nearest grid value, squared error; keep the best.
    best_err = np.full((rows, groups), np.inf)
    best = np.zeros((rows, groups), np.int64)
    best_scale = np.zeros((rows, groups))
    float_weights = np.zeros_like(wg)
    for i, name in enumerate(names):
        grid = DATATYPES[name].grid.astype(np.float64)
        s = absmax / scale_max(name)
        safe = np.where(s > 0, s, 1.0)[..., None]
        deq = grid[_grid_index(wg / safe, grid)] * safe
        err = np.sum((deq - wg) ** 2, axis=-1)
        take = err < best_err  # strict: the earlier datatype keeps a tie
        best_err[take] = err[take]
        best[take] = i
        best_scale[take] = s[take]
        float_weights[take] = deq[take]

    # Step 3: integer group scales against one float scale per row.
    smax = np.max(best_scale, axis=1)
    top = (1 << scale_bits) - 1
    row_scale = np.where(smax > 0, smax / top, 1.0)
    scale_int = np.clip(np.rint(best_scale / row_scale[:, None]), 1, top).astype(np.int64)

    # Step 4: re-round to the effective (integer-scaled) step, per datatype.
    eff = (row_scale[:, None] * scale_int)[..., None]
    codes = np.zeros((rows, groups, group_size), np.int64)
    weights = np.zeros_like(wg)
    for i, name in enumerate(names):
        mask = best == i
        if not mask.any():
            continue
        dt = DATATYPES[name]
        grid = dt.grid.astype(np.float64)
        idx = _grid_index(wg[mask] / eff[mask], grid)
        code_lut = np.array([dt.code_of[int(v)] for v in dt.grid], np.int64)
        codes[mask] = code_lut[idx]
        weights[mask] = grid[idx] * eff[mask]

    dtypes = np.asarray(names)[best]
    out = QuantizedWeights(
        group_size=int(group_size), scale_bits=int(scale_bits), datatypes=names,
        codes=codes.reshape(rows, k), dtypes=dtypes, scale_int=scale_int, row_scale=row_scale,
        group_scale=best_scale, weights=weights.reshape(rows, k), float_weights=float_weights.reshape(rows, k),
    )
    for a in (out.codes, out.dtypes, out.scale_int, out.row_scale, out.group_scale, out.weights, out.float_weights):
        a.setflags(write=False)
    return out


def matvec_int(acts: np.ndarray, qw: QuantizedWeights, acc_bits: int = 32, act_bits: int = 8) -> np.ndarray:
    """Integer matrix-vector product of the bit-serial unit: ``bitserial_dot`` of every row, vectorised.

    ``y[r] = wrap(sum_g scale_int[r, g] * wrap(sum_{i in g} a_i * value_{r,i}))`` with every register wrapping at
    ``acc_bits``. Two's complement wrapping commutes with addition and multiplication (both are arithmetic modulo
    ``2**acc_bits``), so this computes everything modulo ``2**64`` in ``uint64`` and wraps once at the end; the result
    equals the per-step wrapping of :func:`bitserial_dot` bit for bit.

    Parameters
    ----------
    acts:
        ``K`` integer activations, each fitting ``act_bits``-bit two's complement.
    qw:
        The quantised weights.
    acc_bits:
        Width of the partial sum and result registers (bits), 2..64.

    Returns
    -------
    ``(rows,)`` ``int64`` results.
    """
    a = check_int(acts, act_bits)
    if a.ndim != 1 or a.shape[0] != qw.codes.shape[1]:
        raise StimulusError(f"activations of shape {a.shape} do not match K = {qw.codes.shape[1]} of the weights; "
                            f"give one activation per weight column")
    if not isinstance(acc_bits, (int, np.integer)) or isinstance(acc_bits, bool) or not 2 <= acc_bits <= 64:
        raise EncodingError(f"acc_bits {acc_bits!r} must be an integer of 2 to 64 bits")
    rows, k = qw.codes.shape
    g, gs = qw.groups, qw.group_size
    vals = qw.values.astype(np.uint64).reshape(rows, g, gs)
    psum = (vals * a.astype(np.uint64).reshape(g, gs)).sum(axis=-1, dtype=np.uint64)
    acc = (psum * qw.scale_int.astype(np.uint64)).sum(axis=-1, dtype=np.uint64)
    if acc_bits < 64:
        acc &= np.uint64((1 << acc_bits) - 1)
        neg = (acc >> np.uint64(acc_bits - 1)) & np.uint64(1)
        return acc.astype(np.int64) - (neg.astype(np.int64) << np.int64(acc_bits))
    return acc.view(np.int64)


def matvec(x: np.ndarray, qw: QuantizedWeights, act_bits: int = 8, acc_bits: int = 32) -> np.ndarray:
    """Float ``W @ x`` through the integer datapath: ``row_scale * act_scale * matvec_int(q(x))``.

    ``x`` is quantised per tensor to ``act_bits`` (:func:`quantize_symmetric`). ``acc_bits`` must hold the sums
    (the registers wrap; see :class:`accel.config.BitSerialConfig` for the bound).
    """
    qx = quantize_symmetric(x, act_bits)
    return qw.row_scale * float(qx.scale) * matvec_int(qx.q, qw, acc_bits, act_bits).astype(np.float64)


# ---------------------------------------------------------------------------------------------------------------------
# Attention: fixed-point exp2 and the one-pass online-softmax cascade (FuseMax)
# ---------------------------------------------------------------------------------------------------------------------
#
# Q, K and V are ``data_bits``-bit signed integers. A score ``s = q . k`` is read as a log2-domain logit
# ``x = s / 2**F`` (``F`` = ``score_frac_bits``, chosen per Q tile: software folds ``log2(e) / sqrt(d)`` and the Q/K
# quantisation scales into it, see :func:`quantize_attention`). Keys are processed in chunks of ``rows`` keys. Per
# chunk and query (FuseMax's cascade): LM = max of the chunk's scores; RM' = max(RM, LM); PRM = 2**((RM - RM') / 2**F);
# SLN = 2**((s - RM') / 2**F); SLD = sum SLN; RD = RD * PRM + SLD; SLNV = sum SLN * v; RNV = RNV * PRM + SLNV. At the
# end, one division per query: a reciprocal of RD, then ``O = RNV * recip`` per head dimension.
#
# exp2 of a non-positive fixed-point ``-t / 2**F``: ``t`` is rounded to ``E = exp_table_bits`` fraction bits
# (``u = round(t * 2**E / 2**F)``), its integer part ``u >> E`` becomes a right shift and its fraction indexes a
# ``2**E``-entry table of ``round(2**P * 2**(-i / 2**E))`` (``P`` = ``prob_frac_bits``); the result is an unsigned
# fixed-point probability with ``P`` fraction bits (``2**P`` is 1.0, exact for ``t = 0``). Products ``RD * PRM`` and
# ``RNV * PRM`` are shifted right by ``P`` (floor). ``RD >= 2**P`` always (the running maximum's own term is exactly
# 1.0), so the reciprocal is taken of ``RD`` normalised to ``P + 1`` bits: ``z = bitlen(RD) - (P + 1)``,
# ``recip = 2**(2P+1) // (RD >> z)``, and ``O = (RNV * recip) >> (2P + 1 + z - G)`` (floor; ``G`` =
# ``out_frac_bits``): O is in V's integer units with ``G`` fraction bits.

__all__ += [
    "ATTN_MAX_KEYS_LOG2", "AttnFormat", "attn_format", "exp2_table", "exp2_neg", "attn_reciprocal", "attn_divide",
    "AttnState", "attn_chunk_update", "attention_fixed", "causal_mask", "QuantizedAttention", "quantize_attention",
]

#: The largest key count the accumulators are sized for is ``2**ATTN_MAX_KEYS_LOG2`` (their width, not any buffer,
#: depends on it).
ATTN_MAX_KEYS_LOG2 = 20


@dataclass(frozen=True)
class AttnFormat:
    """Bit widths of the attention datapath (all derived from :class:`accel.config.AttentionConfig`).

    Members
    -------
    data_bits:
        Q, K, V elements (signed, bits).
    head_dim:
        Largest head dimension.
    exp_table_bits:
        ``E``: log2 of the exp2 fraction table's entries.
    prob_frac_bits:
        ``P``: fraction bits of a probability (SLN, PRM); a probability is ``P + 1`` bits unsigned.
    out_frac_bits:
        ``G``: fraction bits of an output element.
    score_bits:
        Width of a score ``q . k`` (signed).
    max_score_frac_bits:
        Largest ``F`` a Q tile may ask for.
    rd_bits, rnv_bits:
        Widths of the running denominator (unsigned) and numerator (signed), for ``2**ATTN_MAX_KEYS_LOG2`` keys.
    out_bits:
        Width of an output element (signed).
    """

    data_bits: int
    head_dim: int
    exp_table_bits: int
    prob_frac_bits: int
    out_frac_bits: int

    @property
    def score_bits(self) -> int:
        return 2 * self.data_bits + max(1, (self.head_dim - 1).bit_length())

    @property
    def max_score_frac_bits(self) -> int:
        return self.score_bits

    @property
    def rd_bits(self) -> int:
        return self.prob_frac_bits + 1 + ATTN_MAX_KEYS_LOG2

    @property
    def rnv_bits(self) -> int:
        return self.prob_frac_bits + self.data_bits + 1 + ATTN_MAX_KEYS_LOG2

    @property
    def recip_bits(self) -> int:
        return self.prob_frac_bits + 2

    @property
    def out_bits(self) -> int:
        # +2: the truncated reciprocal can overshoot the most negative V by a fraction of an LSB
        return self.data_bits + self.out_frac_bits + 2


def attn_format(cfg) -> AttnFormat:
    """The :class:`AttnFormat` of an :class:`accel.config.AttentionConfig`: ``P = 2 * data_bits - 1`` (a
    probability is as wide as a product of two elements), ``G = data_bits``."""
    return AttnFormat(data_bits=cfg.data_bits, head_dim=cfg.head_dim, exp_table_bits=cfg.exp_table_bits,
                      prob_frac_bits=2 * cfg.data_bits - 1, out_frac_bits=cfg.data_bits)


def exp2_table(exp_table_bits: int, prob_frac_bits: int) -> tuple[int, ...]:
    """``round(2**P * 2**(-i / 2**E))`` for ``i`` in ``0 .. 2**E - 1`` (entry 0 is exactly ``2**P``)."""
    n = 1 << exp_table_bits
    # float64 is exact enough: entries have at most 32 significant bits and no entry lies near a rounding tie
    return tuple(int(np.floor(2.0 ** prob_frac_bits * 2.0 ** (-i / n) + 0.5)) for i in range(n))


def exp2_neg(t, score_frac_bits: int, fmt: AttnFormat):
    """``2**(-t / 2**F)`` as a ``P``-fraction-bit unsigned integer, for integer ``t >= 0`` (scalar or ``int64``
    array)."""
    E, P, F = fmt.exp_table_bits, fmt.prob_frac_bits, score_frac_bits
    table = np.asarray(exp2_table(E, P), dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    if np.any(t < 0):
        raise ValueError("exp2_neg takes t >= 0 (the exponent is -t)")
    u = (t + (1 << (F - E - 1))) >> (F - E) if F > E else t << (E - F)
    shift = u >> E
    val = table[u & ((1 << E) - 1)] >> np.minimum(shift, 62)
    return val if val.ndim else int(val)


def attn_reciprocal(rd: int, fmt: AttnFormat) -> tuple[int, int]:
    """``(recip, z)`` of a running denominator ``rd >= 2**P``: ``recip = 2**(2P+1) // (rd >> z)`` with ``rd >> z``
    normalised to ``P + 1`` bits."""
    P = fmt.prob_frac_bits
    rd = int(rd)
    if rd < (1 << P):
        raise ValueError(f"running denominator {rd} is below 2**P = {1 << P}; no key was attended")
    z = rd.bit_length() - (P + 1)
    return (1 << (2 * P + 1)) // (rd >> z), z


def attn_divide(rnv, rd: int, fmt: AttnFormat):
    """``O = (rnv * recip) >> (2P + 1 + z - G)`` for one query's numerators ``rnv`` (integers or an array)."""
    recip, z = attn_reciprocal(rd, fmt)
    sh = 2 * fmt.prob_frac_bits + 1 + z - fmt.out_frac_bits
    if isinstance(rnv, (int, np.integer)):
        return (int(rnv) * recip) >> sh
    arr = np.asarray(rnv)
    return ((arr.astype(object) if arr.dtype == object else arr) * recip) >> sh


@dataclass
class AttnState:
    """Per-query running state of the cascade: ``valid`` (a key has been seen), RM, RD and RNV (one per head dim).

    Buffers hold this state for one Q tile only; its size does not depend on the number of keys.
    """

    valid: np.ndarray   # (nq,) bool
    rm: np.ndarray      # (nq,) int: running max score
    rd: np.ndarray      # (nq,) int: running denominator, P fraction bits
    rnv: np.ndarray     # (nq, d) int: running numerator, P fraction bits, V's units

    @classmethod
    def empty(cls, nq: int, d: int, fmt: AttnFormat | None = None) -> "AttnState":
        dt = _attn_dtype(fmt)
        return cls(np.zeros(nq, bool), np.zeros(nq, np.int64), np.zeros(nq, dt), np.zeros((nq, d), dt))


def _attn_dtype(fmt: AttnFormat | None) -> type:
    """``int64`` when every product fits 63 bits (exact and fast), else Python integers (object arrays)."""
    if fmt is not None and fmt.rnv_bits + fmt.recip_bits <= 62 and fmt.rnv_bits + fmt.prob_frac_bits + 1 <= 62:
        return np.int64
    return object


def attn_chunk_update(state: AttnState, scores: np.ndarray, v: np.ndarray, mask: np.ndarray | None,
                      score_frac_bits: int, fmt: AttnFormat) -> None:
    """One chunk of the cascade for every query: ``scores`` (nq, nk) integers, ``v`` (nk, d), ``mask`` (nq, nk)
    True where a key may be attended (None: all). Updates ``state`` in place (exact integers)."""
    P = fmt.prob_frac_bits
    dt = state.rd.dtype
    scores = np.asarray(scores, dtype=np.int64)
    allowed = np.ones(scores.shape, bool) if mask is None else np.asarray(mask, bool)
    any_key = allowed.any(axis=1)
    lm = np.where(allowed, scores, np.iinfo(np.int64).min).max(axis=1)
    rm_old = state.rm
    upd = any_key & state.valid
    rm_new = np.where(upd, np.maximum(rm_old, lm), np.where(any_key, lm, rm_old))
    prm = exp2_neg(np.where(upd, rm_new - rm_old, 0), score_frac_bits, fmt).astype(dt)
    diff = np.where(allowed, rm_new[:, None] - scores, 0)
    sln = np.where(allowed, exp2_neg(diff, score_frac_bits, fmt), 0).astype(dt)
    sld = sln.sum(axis=1)
    slnv = sln.dot(np.asarray(v, dtype=np.int64).astype(dt))
    keep = upd.astype(dt)  # 0 for a query's first chunk: nothing to rescale
    rd = ((state.rd * prm) >> P) * keep + sld
    rnv = ((state.rnv * prm[:, None]) >> P) * keep[:, None] + slnv
    state.rd = np.where(any_key, rd, state.rd)
    state.rnv = np.where(any_key[:, None], rnv, state.rnv)
    state.rm = rm_new
    state.valid = state.valid | any_key


def causal_mask(nq: int, nk: int) -> np.ndarray:
    """Torch's ``is_causal`` mask (top-left aligned): query ``i`` may attend key ``j`` iff ``j <= i``."""
    return np.tril(np.ones((nq, nk), bool))


def _check_attn_inputs(q, k, v, fmt: AttnFormat, score_frac_bits: int, mask) -> tuple:
    q = check_int(q, fmt.data_bits, "Q element")
    k = check_int(k, fmt.data_bits, "K element")
    v = check_int(v, fmt.data_bits, "V element")
    if q.ndim != 2 or k.ndim != 2 or v.ndim != 2:
        raise StimulusError(f"Q {q.shape}, K {k.shape} and V {v.shape} must be 2-D (tokens x head_dim)")
    d = q.shape[1]
    if not 1 <= d <= fmt.head_dim:
        raise StimulusError(f"head dimension {d} is beyond this array's head_dim = {fmt.head_dim} "
                            f"(AttentionConfig.head_dim); split the head or build the array with a larger head_dim")
    if k.shape[1] != d or v.shape[1] != d:
        raise StimulusError(f"K {k.shape} and V {v.shape} must have Q's head dimension {d}")
    if k.shape[0] != v.shape[0] or k.shape[0] < 1 or q.shape[0] < 1:
        raise StimulusError(f"K has {k.shape[0]} keys and V {v.shape[0]} values: give one value per key "
                            f"(and at least one query and key)")
    if k.shape[0] > (1 << ATTN_MAX_KEYS_LOG2):
        raise StimulusError(f"{k.shape[0]} keys exceed the accumulators' limit of 2**{ATTN_MAX_KEYS_LOG2} = "
                            f"{1 << ATTN_MAX_KEYS_LOG2} keys; split the sequence")
    if isinstance(score_frac_bits, bool) or not isinstance(score_frac_bits, (int, np.integer)) or \
            not 0 <= score_frac_bits <= fmt.max_score_frac_bits:
        raise StimulusError(f"score_frac_bits = {score_frac_bits!r}: must be an integer between 0 and "
                            f"{fmt.max_score_frac_bits} (the score width)")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (q.shape[0], k.shape[0]):
            raise StimulusError(f"mask of shape {mask.shape} and dtype {mask.dtype}: must be a boolean "
                                f"(queries x keys) = ({q.shape[0]}, {k.shape[0]}) array, True where attended")
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise StimulusError(f"mask row {int(empty[0])} attends no key; every query must attend at least one key")
    return q, k, v, mask


def attention_fixed(q, k, v, fmt: AttnFormat, chunk: int, score_frac_bits: int,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Bit-exact fixed-point attention: the cascade over key chunks of ``chunk`` keys, then one division per query.

    Parameters
    ----------
    q, k, v:
        ``(nq, d)``, ``(nk, d)``, ``(nk, d)`` integers of ``data_bits`` bits.
    fmt:
        Datapath widths (:func:`attn_format`).
    chunk:
        Keys per chunk (the 2D array's rows).
    score_frac_bits:
        ``F``: a score ``s`` stands for the log2-domain logit ``s / 2**F``.
    mask:
        ``(nq, nk)`` booleans, True where a query may attend a key (None: all keys).

    Returns
    -------
    ``(nq, d)`` ``int64``: outputs in V's units with ``out_frac_bits`` fraction bits.
    """
    q, k, v, mask = _check_attn_inputs(q, k, v, fmt, score_frac_bits, mask)
    nq, d = q.shape
    state = AttnState.empty(nq, d, fmt)
    for c0 in range(0, k.shape[0], chunk):
        sl = slice(c0, c0 + chunk)
        attn_chunk_update(state, q @ k[sl].T, v[sl], None if mask is None else mask[:, sl], score_frac_bits, fmt)
    return np.stack([attn_divide(state.rnv[i], int(state.rd[i]), fmt) for i in range(nq)]).astype(np.int64)


@dataclass(frozen=True)
class QuantizedAttention:
    """Float attention inputs as the array's integers: ``q``, ``k``, ``v``, the score fraction bits ``F`` and the
    float value of one output LSB (``out_scale``: multiply the integer outputs by it)."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    score_frac_bits: int
    out_scale: float
    q_scale: float
    k_scale: float
    v_scale: float


def quantize_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, fmt: AttnFormat,
                       sm_scale: float | None = None) -> QuantizedAttention:
    """Quantise float Q, K, V (``(n, d)``) for :func:`attention_fixed`, computing ``softmax(sm_scale * Q K^T) V``.

    ``log2(e) * sm_scale`` (default ``1 / sqrt(d)``) is folded into Q. K and V are quantised per tensor to
    ``data_bits``; Q's step is then chosen so that ``q_step * k_step = 2**-F`` exactly, with ``F`` the largest that
    keeps Q within ``data_bits`` (so the score integer is the log2-domain logit in units of ``2**-F``).
    """
    q = _check_finite(q, "Q")
    k = _check_finite(k, "K")
    v = _check_finite(v, "V")
    d = q.shape[-1]
    s = (1.0 / np.sqrt(d)) if sm_scale is None else float(sm_scale)
    qf = q * (s * np.log2(np.e))
    hi = (1 << (fmt.data_bits - 1)) - 1
    k_step = max(float(np.abs(k).max()), 1e-30) / hi
    v_step = max(float(np.abs(v).max()), 1e-30) / hi
    q_need = max(float(np.abs(qf).max()), 1e-30) / hi  # smallest Q step that keeps Q in range
    F = int(np.floor(-np.log2(q_need * k_step)))
    F = max(0, min(F, fmt.max_score_frac_bits))
    q_step = 2.0 ** -F / k_step
    qi = np.clip(np.round(qf / q_step), -hi - 1, hi).astype(np.int64)
    ki = np.clip(np.round(k / k_step), -hi - 1, hi).astype(np.int64)
    vi = np.clip(np.round(v / v_step), -hi - 1, hi).astype(np.int64)
    return QuantizedAttention(qi, ki, vi, F, v_step / (1 << fmt.out_frac_bits), q_step, k_step, v_step)
