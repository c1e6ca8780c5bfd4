"""GEMV ``y = W x`` as PIM channel programs, in the three layouts the mapper uses.

* ``layout="rows"`` (AiM): output rows go to banks (one row per bank per *block*), channels split the output rows. The
  input vector is written to each channel's global buffer as the MACs need it; all-bank MACs stream the weight columns
  through all banks at once; RDMAC returns each bank's accumulators and the host adds them.
* ``layout="ksplit"``: the K dimension is split across channels; every channel computes all output rows (rows per bank)
  on its K slice; the host adds the channels' partial sums.
* ``layout="lanes"``: output rows go to banks *and* to the accumulators of a bank's MAC register (``banks x``
  :func:`lane_outputs` rows per block): each accumulator sums a whole output, so RDMAC returns finished outputs (no
  host sum), at the price of the global buffer holding each input element once per accumulator. Bit-serial banks:
  accumulator ``u`` is unit ``u``'s, whose groups (``group u, u + active_units, ...`` of a row, :func:`granule_layout`)
  then hold its own output row's groups, each with its own datatype and scale in the row's metadata; int8 lanes:
  lane ``u`` takes every ``mac_lanes``-th weight of a column. Built as the ``rows`` layout of *virtual* rows that
  interleave the block's outputs so (:func:`_interleave`).

Weights are packed at their width (docs/pim.md, "Data layout"): a bank's row holds ``granules_per_row`` granules of
packed codes after its metadata columns, which hold each group's datatype code and scale. An output row's K (padded
with zero weights to whole groups and whole granules: the last group may be short, GPT-2's K = 1600 is 12.5 groups of
128) fills whole rows of its bank and leaves a *tail* of granules; the tails of consecutive blocks share a row. Every
block's full rows sit at the same columns, so the global buffer's contents serve every block; a column's activations
are written (WRGB) only when the buffer holds other ones (a tail's, a chunk of a row that does not fit, another input
vector's). Before the MACs of a row's data columns, a MAC of its metadata columns loads them into the banks' metadata
registers; the banks' format register is written once (CFR), from the widest datatype of the matrix. Results are
bit-exact against :func:`accel.numerics.bitserial_dot` (and the int8 dot product for int8 lanes).

A plan can be built from operands (:func:`gemv_plan`) or, for timing-only programs, from the shape alone
(:func:`gemv_program`); ``row0`` places the matrix from that DRAM row on; ``act_first`` opens each DRAM row before
writing the global-buffer columns its first MACs read, so that the writes run under the activate-to-MAC delay; with
several input vectors each activated row serves them all (per input: CLRMAC, the global-buffer writes, the MACs,
RDMAC; the host adds the rows' partial sums).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from accel.config import BITSERIAL_DATATYPES, DeviceConfig, storage_bits
from accel.errors import AccelError
from accel.isa import PimOp, encode

from accel.interfaces.pim import (
    ACC_BITS, CFR_FORMAT, column_bytes, granule_layout, pack_entries, pack_fields, unpack_words,
)

__all__ = ["GemvPlan", "LAYOUTS", "gemv_plan", "gemv_program", "gemv_shape", "lane_outputs", "lane_unit", "run_gemv",
           "golden_gemv", "random_operands"]

#: The layouts (module docstring).
LAYOUTS = ("rows", "ksplit", "lanes")


@dataclass
class GemvPlan:
    """A GEMV program for a device: command words with data, DRAM preloads, and how to read the results back.

    ``preload``: ``(channel, bank, row, bytes)`` with ``bytes`` the row's ``columns x column_bits / 8`` bytes;
    ``readout[ch]`` lists, per RDMAC beat of channel ``ch`` in order, ``(register_rows, bank, input)``: the output row
    each accumulator of that bank's MAC register adds to (-1: none) and the input vector it belongs to;
    ``rows_used``: DRAM rows per bank the matrix occupies from ``row0`` on; ``inputs``: input vectors (``Y = X W^T``
    for ``X`` of ``inputs`` rows)."""

    device: DeviceConfig
    m: int
    k: int
    layout: str
    program: list[tuple[int, Any]] = field(default_factory=list)
    preload: list[tuple[int, int, int, np.ndarray]] = field(default_factory=list)
    readout: list[list[tuple[tuple[int, ...], int, int]]] = field(default_factory=list)
    rows_used: int = 0
    inputs: int = 1

    def results(self, reads: Sequence[Sequence[tuple[int, int]]]) -> np.ndarray:
        """Host side: per-channel read beats (RDMAC words in order) -> ``y`` (int64, wrapped to 32 bits; ``inputs x
        M`` for several input vectors)."""
        regs = self.device.bank.mac_registers
        y = np.zeros((self.inputs, self.m), dtype=np.int64)
        for ch, beats in enumerate(reads):
            expect = self.readout[ch]
            if len(beats) != len(expect):
                raise AccelError(f"channel {ch} returned {len(beats)} MAC registers, the plan expects {len(expect)}")
            for (_, word), (reg_rows, _, i) in zip(beats, expect):
                acc = unpack_words(word, regs, ACC_BITS)
                acc = acc - ((acc >> (ACC_BITS - 1)) << ACC_BITS)
                for row, v in zip(reg_rows, acc.tolist()):
                    if row >= 0:
                        y[i, row] += v
        y &= (1 << ACC_BITS) - 1
        y = y - ((y >> (ACC_BITS - 1)) << ACC_BITS)
        return y[0] if self.inputs == 1 else y


@lru_cache(maxsize=65536)
def _word(op: PimOp, fields: tuple[tuple[str, int], ...]) -> int:
    return encode("pim", op, **dict(fields))


def _cmd(plan: GemvPlan, ch: int, op: PimOp, data: Any = None, **f: int) -> None:
    plan.program.append((_word(op, tuple(sorted(f.items())) + (("channel", ch),)), data))


def _weight_format(device: DeviceConfig, dtypes: np.ndarray | None) -> int:
    """The banks' column format for a matrix: int8 for int8 lanes, else that of its widest datatype."""
    unit = device.bank
    if unit.bitserial is None:
        return 8
    codes = sorted({int(c) for c in np.unique(dtypes)})
    names = []
    for c in codes:
        if not 0 <= c < len(BITSERIAL_DATATYPES) or BITSERIAL_DATATYPES[c] not in unit.bitserial.datatypes:
            raise AccelError(f"dtypes holds datatype code {c}; the device's units are built for "
                             f"{', '.join(f'{n} ({unit.bitserial.dtype_codes[n]})' for n in unit.bitserial.datatypes)}")
        names.append(BITSERIAL_DATATYPES[c])
    return max(unit.format_of(n) for n in names)


def _format_of_bits(device: DeviceConfig, code_bits: float) -> int:
    """The column format of weights of ``code_bits`` bits (the mapper's average width: the widest format it needs)."""
    unit = device.bank
    if unit.bitserial is None:
        return 8
    fmt = storage_bits(int(np.ceil(code_bits)))
    return min((f for f in unit.formats if f >= fmt), default=max(unit.formats))


def _stride(device: DeviceConfig, fmt: int) -> tuple[int, int]:
    """``(weights, outputs)`` of layout ``lanes``: each accumulator's runs of consecutive weights (a group for
    bit-serial units, one weight for int8 lanes) and the accumulators of one bank that get them."""
    unit = device.bank
    if unit.bitserial is None:
        return 1, unit.mac_registers
    return unit.bitserial.group_size, unit.active_units(fmt)


def lane_outputs(device: DeviceConfig, code_bits: float = 8) -> int:
    """Output rows one bank computes per block in layout ``lanes`` for weights of ``code_bits`` bits."""
    return _stride(device, _format_of_bits(device, code_bits))[1]


def _rows_of(unit: Any, fmt: int, kk: int, blocks: int) -> tuple[list[list[tuple[int, int, int, int]]], int, int]:
    """Where each block's granules go for a K slice of ``kk`` weights: per block ``(DRAM row from row0, first granule
    slot, granules, block's first granule)``, the rows used, and the granules of one block."""
    gw = unit.granule_columns(fmt) * unit.weights_per_column(fmt)     # weights per granule
    per_row = unit.granules_per_row(fmt)
    grans = -(-kk // gw)
    full, tail = divmod(grans, per_row)
    segs: list[list[tuple[int, int, int, int]]] = []
    nxt, t_row, t_used = 0, None, 0
    for _ in range(blocks):
        s = [(nxt + r, 0, per_row, r * per_row) for r in range(full)]
        nxt += full
        if tail:
            if t_row is None or t_used + tail > per_row:
                t_row, t_used = nxt, 0
                nxt += 1
            s.append((t_row, t_used, tail, full * per_row))
            t_used += tail
        segs.append(s)
    return segs, nxt, grans


def lane_unit(device: DeviceConfig, k: int, code_bits: float = 8) -> tuple[int, int]:
    """``(outputs, DRAM rows)`` of the smallest layout-``lanes`` GEMV of reduction ``k`` that fills its DRAM rows:
    blocks of ``banks x`` :func:`lane_outputs` outputs whose granules share rows (one block when a block's K fills
    a row itself). The mapper's unit of the key cache."""
    unit = device.bank
    fmt = _format_of_bits(device, code_bits)
    s, n = _stride(device, fmt)
    kv = n * -(-k // s) * s
    grans = -(-kv // (unit.granule_columns(fmt) * unit.weights_per_column(fmt)))
    share = max(1, unit.granules_per_row(fmt) // grans)
    return device.pim.banks * n * share, _rows_of(unit, fmt, kv, share)[1]


def gemv_shape(device: DeviceConfig, m: int, k: int, layout: str, code_bits: float = 8) -> tuple[int, int, int]:
    """``(columns, DRAM rows per block, blocks)`` of one channel's ``m x k`` slice of ``code_bits``-bit weights in a
    layout: the data columns of one block's K in each bank (whole granules), the DRAM rows per bank it takes per
    block (the rows :func:`gemv_plan` uses over all blocks, tails shared, divided by the blocks and rounded up) and
    the blocks."""
    unit = device.bank
    fmt = _format_of_bits(device, code_bits)
    s, n = _stride(device, fmt) if layout == "lanes" else (1, 1)
    kv = n * -(-k // s) * s if layout == "lanes" else k
    blocks = -(-m // (device.pim.banks * n))
    _, rows, grans = _rows_of(unit, fmt, kv, blocks)
    return grans * unit.granule_columns(fmt), -(-rows // blocks), blocks


def gemv_plan(device: DeviceConfig, w: np.ndarray, x: np.ndarray, layout: str = "rows",
              dtypes: np.ndarray | None = None, scales: np.ndarray | None = None, channels: int | None = None,
              data: bool = True, *, row0: int = 0, act_first: bool = False) -> GemvPlan:
    """Build the program for ``y = W x``.

    Parameters
    ----------
    w:
        ``M x K`` int8 weights (``lane="int8"``) or weight codes (``lane="bitserial"``).
    x:
        ``K`` int8 activations, or ``inputs x K`` for several input vectors (each DRAM row activation then serves
        every input: per input the global-buffer writes, the MACs and a readout of the row's partial sums).
    layout:
        ``"rows"``, ``"ksplit"`` or ``"lanes"`` (module docstring).
    dtypes, scales:
        Bit-serial lanes: ``M x ceil(K / group_size)`` datatype codes and unsigned scales per group.
    channels:
        Channels to use (default: all of the device's).
    data:
        False builds a timing-only program (no preloads, WRGB data words are zeros); its commands are the same.
    row0:
        First DRAM row of the matrix in every bank (rows ``row0 .. row0 + rows_used - 1``).
    act_first:
        Activate each DRAM row before writing the global-buffer columns its first MACs read (the writes then run
        under the activate-to-MAC delay); by default they are written first.
    """
    w = np.asarray(w)
    x = np.asarray(x)
    m, k = w.shape
    if x.shape[-1:] != (k,) or x.ndim not in (1, 2):
        raise AccelError(f"x has shape {x.shape}; W is {m} x {k}, so x must have shape ({k},) or (inputs, {k})")
    inputs = 1 if x.ndim == 1 else x.shape[0]
    return _plan(device, m, k, w if data else None, x.reshape(inputs, k) if data else None, layout, dtypes, scales,
                 channels, row0, act_first, inputs, "data" if data else "zeros")


def gemv_program(device: DeviceConfig, m: int, k: int, layout: str = "rows", dtypes: np.ndarray | None = None,
                 scales: np.ndarray | None = None, channels: int | None = None, *, row0: int = 0,
                 act_first: bool = False, inputs: int = 1) -> GemvPlan:
    """The timing-only plan of an ``m x k`` GEMV (``inputs`` input vectors) from its shape (no operands, no data
    words, no preloads): the command stream :func:`gemv_plan` builds for any operands with these datatypes and
    scales. Parameters as :func:`gemv_plan`."""
    return _plan(device, m, k, None, None, layout, dtypes, scales, channels, row0, act_first, inputs, "none")


def _interleave(device: DeviceConfig, fmt: int, rows: np.ndarray, k: int, w: np.ndarray | None,
                x: np.ndarray | None, dtypes: np.ndarray | None, scales: np.ndarray | None) -> tuple:
    """Layout ``lanes`` as layout ``rows`` of virtual rows: bank ``b`` of block ``blk`` gets the virtual row of
    outputs ``rows[(blk * banks + b) * n + u]`` for its accumulators ``u < n``, their runs of ``s`` weights
    interleaved (virtual weight ``(j * n + u) * s + t`` is output ``u``'s weight ``j * s + t``; :func:`_stride`), the
    activations repeated so. Returns the virtual weights, activations, datatypes, scales, K, and each virtual row's
    accumulator rows."""
    unit = device.bank
    s, n = _stride(device, fmt)
    regs = unit.mac_registers
    runs = -(-k // s)
    kv = n * runs * s
    nv = -(-len(rows) // n)
    src = np.full((nv, n), -1, dtype=np.int64)                # the real row of each virtual row's accumulator
    src.reshape(-1)[:len(rows)] = np.arange(len(rows))
    reg_rows = [tuple([int(rows[i]) if i >= 0 else -1 for i in r] + [-1] * (regs - n)) for r in src]
    # virtual index -> (accumulator u, real k)
    v = np.arange(kv)
    j, u, t = v // (n * s), (v // s) % n, v % s
    kr = j * s + t
    wv = xv = dv = sv = None
    if w is not None:
        wpad = np.zeros((len(rows) + 1, runs * s), dtype=np.int64)
        wpad[:len(rows), :k] = w[rows]
        wv = wpad[src[:, u], kr]                              # -1 -> the zero row
        xpad = np.zeros((x.shape[0], runs * s), dtype=np.int64)
        xpad[:, :k] = x
        xv = xpad[:, kr]
    if dtypes is not None:
        bs = unit.bitserial
        ng = -(-k // bs.group_size)
        gv = np.arange(n * ng)
        gj, gu = gv // n, gv % n
        first = bs.dtype_codes[unit.datatypes_of(fmt)[0]]
        dpad = np.vstack([np.asarray(dtypes)[rows], np.full((1, ng), first)])
        spad = np.vstack([np.asarray(scales)[rows], np.zeros((1, ng), dtype=np.int64)])
        dv, sv = dpad[src[:, gu], gj], spad[src[:, gu], gj]
    return wv, xv, dv, sv, kv, reg_rows


def _plan(device: DeviceConfig, m: int, k: int, w: np.ndarray | None, x: np.ndarray | None, layout: str,
          dtypes: np.ndarray | None, scales: np.ndarray | None, channels: int | None, row0: int, act_first: bool,
          inputs: int, words: str) -> GemvPlan:
    p = device.pim
    unit = device.bank
    if layout not in LAYOUTS:
        raise AccelError(f"layout = {layout!r}: must be 'rows' (output rows per bank), 'ksplit' (K split across "
                         f"channels, host reduction) or 'lanes' (output rows per bank and accumulator)")
    nch = channels or p.channels
    if not 1 <= nch <= p.channels:
        raise AccelError(f"channels = {nch}: the device has {p.channels}")
    if inputs < 1:
        raise AccelError(f"inputs = {inputs}: a GEMV has at least one input vector")
    bs = unit.bitserial
    if bs is not None:
        if dtypes is None or scales is None:
            raise AccelError("bit-serial lanes need dtypes and scales (M x K/group_size) for the weight codes")
        ng = -(-k // bs.group_size)
        if np.shape(dtypes) != (m, ng) or np.shape(scales) != (m, ng):
            raise AccelError(f"dtypes and scales must be {m} x {ng} (one per row and group of {bs.group_size}); "
                             f"got {np.shape(dtypes)} and {np.shape(scales)}")
    fmt = _weight_format(device, dtypes)
    plan = GemvPlan(device, m, k, layout, inputs=inputs)
    plan.readout = [[] for _ in range(p.channels)]
    regs = unit.mac_registers

    if layout == "ksplit":
        kc = -(-k // nch)
        if bs is not None:
            kc = -(-kc // bs.group_size) * bs.group_size
        parts = [(ch, np.arange(m), ch * kc, min(k, (ch + 1) * kc)) for ch in range(nch) if ch * kc < k]
    else:
        rows_per_ch = -(-m // nch)
        if layout == "lanes":   # channels split at whole banks' rows (the rows sharing a bank's MAC register)
            n = _stride(device, fmt)[1]
            rows_per_ch = -(-rows_per_ch // n) * n
        parts = [(ch, np.arange(ch * rows_per_ch, min(m, (ch + 1) * rows_per_ch)), 0, k) for ch in range(nch)]
    for ch, rows, k0, k1 in parts:
        if not len(rows) or k1 <= k0:
            continue
        ws = w[:, k0:k1] if w is not None else None
        xs = x[:, k0:k1] if x is not None else None
        g0, g1 = (k0 // bs.group_size, -(-k1 // bs.group_size)) if bs is not None else (0, 0)
        ds = np.asarray(dtypes)[:, g0:g1] if bs is not None else None
        ss = np.asarray(scales)[:, g0:g1] if bs is not None else None
        if layout == "lanes":
            ws, xs, ds, ss, kk, reg_rows = _interleave(device, fmt, rows, k1 - k0, ws, xs, ds, ss)
            vrows = np.arange(len(reg_rows))
        else:
            kk = k1 - k0
            reg_rows = [(int(r),) * regs for r in rows]
            vrows = rows
        _channel(plan, ch, vrows, kk, reg_rows, ws, xs, ds, ss, fmt, words, row0, act_first)
    return plan


def _channel(plan: GemvPlan, ch: int, rows: np.ndarray, kk: int, reg_rows: list[tuple[int, ...]],
             w: np.ndarray | None, x: np.ndarray | None, dtypes: np.ndarray | None, scales: np.ndarray | None,
             fmt: int, words: str, row0: int, act_first: bool) -> None:
    """One channel's program: blocks of one (virtual) output row per bank over a K slice of ``kk`` weights (``w``,
    ``x``, ``dtypes``, ``scales`` of that slice, indexed by ``rows``); ``reg_rows[i]``: the output rows row ``i``'s
    accumulators add to."""
    device = plan.device
    p, unit = device.pim, device.bank
    bs = unit.bitserial
    B, C = p.banks, p.columns
    inputs = plan.inputs
    data = w is not None
    meta = unit.metadata_columns(fmt) if bs is not None else 0
    gc = unit.granule_columns(fmt)
    gw = gc * unit.weights_per_column(fmt)      # weights per granule
    lay_k, _ = granule_layout(unit, fmt)
    blocks = -(-len(rows) // B)
    segs, nxt, grans = _rows_of(unit, fmt, kk, blocks)
    if row0 + nxt > p.rows:
        raise AccelError(f"channel {ch} needs DRAM rows {row0} .. {row0 + nxt - 1} per bank for {len(rows)} output "
                         f"rows of K = {kk}; the device has {p.rows}")
    plan.rows_used = max(plan.rows_used, nxt)
    # the activations each granule position needs: K index per code (kk: past K, zero)
    xs = np.zeros((inputs, grans * gw + 1), dtype=np.int64)
    if data:
        xs[:, :kk] = x
    r = unit.gb_columns_per_mac(fmt)
    per_gb = p.column_bytes                     # int8 activations per global-buffer column
    window = p.gb_columns // r                  # columns a global-buffer fill covers

    def gb_tags(i: int, g: int, c: int) -> list[tuple[int, ...]]:
        """Tags (input, K indices) of the r global-buffer columns that column c of block granule g reads."""
        ks = g * gw + lay_k[c]
        return [(i, *ks[j * per_gb:(j + 1) * per_gb].tolist()) for j in range(r)]

    if bs is not None:
        _cmd(plan, ch, PimOp.CFR, all_banks=1, col=CFR_FORMAT, row=fmt)
    gb: list[tuple[int, ...] | None] = [None] * p.gb_columns
    preload: dict[tuple[int, int], np.ndarray] = {}
    entries: dict[tuple[int, int], list[tuple[int, int]]] = {}
    first_code = bs.dtype_codes[unit.datatypes_of(fmt)[0]] if bs is not None else 0

    def write_gb(i: int, ca: int, cb: int, g0: int, slot: int) -> None:
        """The global-buffer columns MAC columns ``ca .. cb - 1`` read for input ``i``, written where the buffer
        holds other activations."""
        want: dict[int, tuple[int, ...]] = {}
        for c in range(ca, cb):
            g = g0 + (c - meta) // gc - slot
            for j, tag in enumerate(gb_tags(i, g, (c - meta) % gc)):
                want[(c * r + j) % p.gb_columns] = tag
        stale = sorted(a for a, tag in want.items() if gb[a] != tag)
        runs: list[list[int]] = []
        for a in stale:
            if runs and runs[-1][-1] == a - 1:
                runs[-1].append(a)
            else:
                runs.append([a])
        for run in runs:
            cols = None
            if words != "none":
                cols = np.zeros((len(run), per_gb), dtype=np.uint8)
                for n_, a in enumerate(run):
                    idx = np.array(want[a][1:])
                    cols[n_] = (xs[i, np.where(idx < kk, idx, grans * gw)] & 0xFF).astype(np.uint8)
            _cmd(plan, ch, PimOp.WRGB, cols, col=run[0], count=len(run))
            for a in run:
                gb[a] = want[a]

    def readout(blk: int, i: int) -> None:
        _cmd(plan, ch, PimOp.RDMAC, all_banks=1)
        for b in range(B):
            j = blk * B + b
            plan.readout[ch].append((reg_rows[j] if j < len(rows) else (-1,) * unit.mac_registers, b, i))

    for blk in range(blocks):
        if data:
            for b in range(B):
                i = blk * B + b
                if i >= len(rows):
                    continue
                wrow = np.zeros(grans * gw, dtype=np.int64)
                wrow[:kk] = w[rows[i]]
                for drow, slot, n, g0 in segs[blk]:
                    buf = preload.setdefault((b, row0 + drow), np.zeros((C, p.column_bytes), dtype=np.uint8))
                    ent = entries.setdefault((b, row0 + drow), [])
                    for t in range(n):
                        g = g0 + t
                        c0 = meta + (slot + t) * gc
                        buf[c0:c0 + gc] = pack_fields(wrow[g * gw + lay_k], fmt)
                        if bs is not None:
                            gpg = unit.groups_per_granule(fmt)
                            need = (slot + t + 1) * gpg
                            ent.extend([(first_code, 0)] * (need - len(ent)))
                            for gi in range(gpg):
                                grp = (g * gw + gi * bs.group_size) // bs.group_size
                                if grp * bs.group_size < kk:
                                    ent[(slot + t) * gpg + gi] = (int(dtypes[rows[i], grp]),
                                                                  int(scales[rows[i], grp]))
        if inputs == 1:
            _cmd(plan, ch, PimOp.CLRMAC, all_banks=1)
        for drow, slot, n, g0 in segs[blk]:
            c_lo, c_hi = meta + slot * gc, meta + (slot + n) * gc
            pieces = []
            c = c_lo
            while c < c_hi:
                end = min(c_hi, (c // window + 1) * window)
                pieces.append((c, end))
                c = end
            if inputs > 1:
                # one activation serves every input: per input the writes, the MACs and a readout of this row's
                # partial sums (the host adds them)
                _cmd(plan, ch, PimOp.ACT, all_banks=1, row=row0 + drow)
                for i in range(inputs):
                    _cmd(plan, ch, PimOp.CLRMAC, all_banks=1)
                    if meta:
                        _cmd(plan, ch, PimOp.MAC, all_banks=1, col=0, count=meta)
                    for ca, cb in pieces:
                        write_gb(i, ca, cb, g0, slot)
                        _cmd(plan, ch, PimOp.MAC, all_banks=1, col=ca, count=cb - ca)
                    readout(blk, i)
                _cmd(plan, ch, PimOp.PRE, all_banks=1)
                continue
            for pi, (ca, cb) in enumerate(pieces):
                if pi == 0 and act_first:
                    _cmd(plan, ch, PimOp.ACT, all_banks=1, row=row0 + drow)
                write_gb(0, ca, cb, g0, slot)
                if pi == 0:
                    if not act_first:
                        _cmd(plan, ch, PimOp.ACT, all_banks=1, row=row0 + drow)
                    if meta:
                        _cmd(plan, ch, PimOp.MAC, all_banks=1, col=0, count=meta)
                _cmd(plan, ch, PimOp.MAC, all_banks=1, col=ca, count=cb - ca)
            _cmd(plan, ch, PimOp.PRE, all_banks=1)
        if inputs == 1:
            readout(blk, 0)
    for (b, drow), buf in preload.items():
        if bs is not None:
            for c, word in enumerate(pack_entries(unit, fmt, entries.get((b, drow), []))):
                buf[c] = column_bytes(word, p)
        plan.preload.append((ch, b, drow, buf))


def golden_gemv(device: DeviceConfig, w: np.ndarray, x: np.ndarray, dtypes: np.ndarray | None = None,
                scales: np.ndarray | None = None) -> np.ndarray:
    """The golden numerics: int8 dot products, or :func:`accel.numerics.bitserial_dot` per output row (wrapped to
    32 bits; ``inputs x M`` for ``inputs x K`` activations)."""
    from accel.numerics import bitserial_dot, wrap

    if np.ndim(x) == 2:
        return np.stack([golden_gemv(device, w, xi, dtypes, scales) for xi in x])
    p = device.pim
    if p.lane == "int8":
        y = w.astype(np.int64) @ np.asarray(x).astype(np.int64)
        return np.array([wrap(int(v), ACC_BITS) for v in y], dtype=np.int64)
    bs = device.bitserial
    out = []
    for r in range(w.shape[0]):
        names = [BITSERIAL_DATATYPES[int(d)] for d in dtypes[r]]
        out.append(wrap(bitserial_dot(x, w[r], names, [int(s) for s in scales[r]], bs.group_size, bs.scale_bits,
                                      bs.acc_bits), ACC_BITS))
    return np.array(out, dtype=np.int64)


def run_gemv(device: DeviceConfig, plan: GemvPlan) -> tuple[np.ndarray, Any]:
    """Run a plan in the functional engine; returns ``(y, stats)``."""
    from accel.emulator.engine import DeviceEngine

    eng = DeviceEngine(device, functional=True)
    for ch, bank, row, buf in plan.preload:
        eng.channels[ch].load_row(bank, row, buf)
    stats = eng.run(plan.program)
    reads = [[r for r in c.reads] for c in eng.channels]
    return plan.results(reads), stats


def random_operands(device: DeviceConfig, rng: np.random.Generator, m: int, k: int, extremes: float = 0.0,
                    datatypes: Sequence[str] | None = None, shared: int = 1
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Random GEMV operands for the device's lanes: ``(w, x, dtypes, scales)``. For bit-serial lanes every group of
    every row draws a datatype (of ``datatypes``, default every built one) and a scale (rows ``shared * i ..
    shared * i + shared - 1`` share them), and the weights are random codes of that datatype; int8 lanes get int8
    weights (``dtypes``/``scales`` ``None``). With probability ``extremes`` the activations are all -128 and the
    scales the largest (the accumulator's worst case)."""
    from accel.numerics import DATATYPES

    x = rng.integers(-128, 128, k)
    if device.pim.lane == "int8":
        return rng.integers(-128, 128, (m, k)), x, None, None
    bs = device.bitserial
    gs = bs.group_size
    ng = -(-k // gs)
    names = list(datatypes) if datatypes is not None else list(bs.datatypes)
    dtypes = np.repeat(rng.choice([bs.dtype_codes[n] for n in names], (-(-m // shared), ng)), shared, axis=0)[:m]
    scales = np.repeat(rng.integers(0, 1 << bs.scale_bits, (-(-m // shared), ng)), shared, axis=0)[:m]
    w = np.zeros((m, k), dtype=np.int64)
    for r in range(m):
        for g in range(ng):
            bits = DATATYPES[BITSERIAL_DATATYPES[int(dtypes[r, g])]].code_bits
            w[r, g * gs:(g + 1) * gs] = rng.integers(0, 1 << bits, gs)[:min(gs, k - g * gs)]
    if rng.random() < extremes:
        x[:] = -128
        scales[:] = (1 << bs.scale_bits) - 1
    return w, x, dtypes, scales
