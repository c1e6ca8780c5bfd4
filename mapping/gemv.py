"""GEMV ``y = W x`` as PIM channel programs, in the two layouts the anchors use.

* ``layout="rows"`` (AiM): output rows go to banks (one row per bank per *block*), channels split the output rows. The
  input vector is written to each channel's global buffer as the MACs need it; all-bank MACs stream the weight columns
  through all banks at once; RDMAC returns each bank's accumulators and the host adds them.
* ``layout="ksplit"``: the K dimension is split across channels; every channel computes all output rows (rows per bank)
  on its K slice; the host adds the channels' partial sums.

Weights are packed at their width (docs/pim.md, "Data layout"): a bank's row holds ``granules_per_row`` granules of
packed codes after its metadata columns, which hold each group's datatype code and scale. An output row's K (padded
with zero groups to whole granules) fills whole rows of its bank and leaves a *tail* of granules; the tails of
consecutive blocks share a row. Every block's full rows sit at the same columns, so the global buffer's contents serve
every block; a column's activations are written (WRGB) only when the buffer holds other ones (a tail's, a chunk of a
row that does not fit). Before the MACs of a row's data columns, a MAC of its metadata columns loads them into the
banks' metadata registers; the banks' format register is written once (CFR), from the widest datatype of the matrix.
Results are bit-exact against :func:`accel.numerics.bitserial_dot` (and the int8 dot product for int8 lanes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from accel.config import BITSERIAL_DATATYPES, DeviceConfig
from accel.errors import AccelError
from accel.isa import PimOp, encode

from accel.interfaces.pim import (
    ACC_BITS, CFR_FORMAT, column_bytes, granule_layout, pack_entries, pack_fields, unpack_words,
)

__all__ = ["GemvPlan", "gemv_plan", "run_gemv", "golden_gemv", "random_operands"]


@dataclass
class GemvPlan:
    """A GEMV program for a device: command words with data, DRAM preloads, and how to read the results back.

    ``preload``: ``(channel, bank, row, bytes)`` with ``bytes`` the row's ``columns x column_bits / 8`` bytes;
    ``readout``: per channel, per RDMAC beat, ``(output row or -1, bank)``; ``rows_used``: DRAM rows per bank."""

    device: DeviceConfig
    m: int
    k: int
    layout: str
    program: list[tuple[int, Any]] = field(default_factory=list)
    preload: list[tuple[int, int, int, np.ndarray]] = field(default_factory=list)
    readout: list[list[tuple[int, int]]] = field(default_factory=list)
    rows_used: int = 0

    def results(self, reads: Sequence[Sequence[tuple[int, int]]]) -> np.ndarray:
        """Host side: per-channel read beats (RDMAC words in order) -> ``y`` (int64, wrapped to 32 bits)."""
        regs = self.device.bank.mac_registers
        y = np.zeros(self.m, dtype=np.int64)
        for ch, beats in enumerate(reads):
            expect = self.readout[ch]
            if len(beats) != len(expect):
                raise AccelError(f"channel {ch} returned {len(beats)} MAC registers, the plan expects {len(expect)}")
            for (_, word), (row, _) in zip(beats, expect):
                if row < 0:
                    continue
                acc = unpack_words(word, regs, ACC_BITS)
                acc = acc - ((acc >> (ACC_BITS - 1)) << ACC_BITS)
                y[row] += int(acc.sum())
        y &= (1 << ACC_BITS) - 1
        return y - ((y >> (ACC_BITS - 1)) << ACC_BITS)


def _cmd(plan: GemvPlan, ch: int, op: PimOp, data: Any = None, **f: int) -> None:
    plan.program.append((encode("pim", op, channel=ch, **f), data))


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


def gemv_plan(device: DeviceConfig, w: np.ndarray, x: np.ndarray, layout: str = "rows",
              dtypes: np.ndarray | None = None, scales: np.ndarray | None = None, channels: int | None = None,
              data: bool = True) -> GemvPlan:
    """Build the program for ``y = W x``.

    Parameters
    ----------
    w:
        ``M x K`` int8 weights (``lane="int8"``) or weight codes (``lane="bitserial"``).
    x:
        ``K`` int8 activations.
    layout:
        ``"rows"`` or ``"ksplit"`` (module docstring).
    dtypes, scales:
        Bit-serial lanes: ``M x (K / group_size)`` datatype codes and unsigned scales per group.
    channels:
        Channels to use (default: all of the device's).
    data:
        False builds a timing-only program (no preloads, WRGB data words are zeros); its commands are the same.
    """
    p = device.pim
    unit = device.bank
    w = np.asarray(w)
    x = np.asarray(x)
    m, k = w.shape
    if x.shape != (k,):
        raise AccelError(f"x has shape {x.shape}; W is {m} x {k}, so x must have shape ({k},)")
    if layout not in ("rows", "ksplit"):
        raise AccelError(f"layout = {layout!r}: must be 'rows' (output rows per bank) or 'ksplit' (K split across "
                         f"channels, host reduction)")
    nch = channels or p.channels
    if not 1 <= nch <= p.channels:
        raise AccelError(f"channels = {nch}: the device has {p.channels}")
    bs = unit.bitserial
    if bs is not None:
        if dtypes is None or scales is None:
            raise AccelError("bit-serial lanes need dtypes and scales (M x K/group_size) for the weight codes")
        if k % bs.group_size:
            raise AccelError(f"K = {k} must be a multiple of group_size ({bs.group_size}) for bit-serial lanes")
        ng = k // bs.group_size
        if np.shape(dtypes) != (m, ng) or np.shape(scales) != (m, ng):
            raise AccelError(f"dtypes and scales must be {m} x {ng} (one per row and group of {bs.group_size}); "
                             f"got {np.shape(dtypes)} and {np.shape(scales)}")
    fmt = _weight_format(device, dtypes)
    plan = GemvPlan(device, m, k, layout)
    plan.readout = [[] for _ in range(p.channels)]

    if layout == "rows":
        rows_per_ch = -(-m // nch)
        parts = [(ch, np.arange(ch * rows_per_ch, min(m, (ch + 1) * rows_per_ch)), 0, k) for ch in range(nch)]
    else:
        kc = -(-k // nch)
        if bs is not None:
            kc = -(-kc // bs.group_size) * bs.group_size
        parts = [(ch, np.arange(m), ch * kc, min(k, (ch + 1) * kc)) for ch in range(nch) if ch * kc < k]
    for ch, rows, k0, k1 in parts:
        if len(rows) and k1 > k0:
            _channel(plan, ch, rows, k0, k1, w, x, dtypes, scales, fmt, data)
    return plan


def _channel(plan: GemvPlan, ch: int, rows: np.ndarray, k0: int, k1: int, w: np.ndarray, x: np.ndarray,
             dtypes: np.ndarray | None, scales: np.ndarray | None, fmt: int, data: bool) -> None:
    """One channel's program: blocks of one output row per bank over K ``[k0, k1)``."""
    device = plan.device
    p, unit = device.pim, device.bank
    bs = unit.bitserial
    B, C = p.banks, p.columns
    meta = unit.metadata_columns(fmt) if bs is not None else 0
    gc, per_row = unit.granule_columns(fmt), unit.granules_per_row(fmt)
    wpc = unit.weights_per_column(fmt)
    gw = gc * wpc                               # weights per granule
    lay_k, lay_g = granule_layout(unit, fmt)
    kk = k1 - k0
    grans = -(-kk // gw)                        # granules per block (K padded with zero groups)
    full, tail = divmod(grans, per_row)
    blocks = -(-len(rows) // B)
    # where each block's granules go: (DRAM row, first granule slot, granules, block's first granule)
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
    if nxt > p.rows:
        raise AccelError(f"channel {ch} needs {nxt} DRAM rows per bank for {len(rows)} output rows of K = {kk}; the "
                         f"device has {p.rows}")
    plan.rows_used = max(plan.rows_used, nxt)
    # the activations each granule position needs: K index (relative to k0) per code, -1 past K
    xs = np.zeros(grans * gw + 1, dtype=np.int64)
    xs[:kk] = x[k0:k1]
    r = unit.gb_columns_per_mac(fmt)
    per_gb = p.column_bytes                     # int8 activations per global-buffer column
    window = p.gb_columns // r                  # columns a global-buffer fill covers

    def gb_tags(g: int, c: int) -> list[tuple[int, ...]]:
        """Tags (K indices) of the r global-buffer columns that column c of block granule g reads."""
        ks = g * gw + lay_k[c]
        return [tuple(ks[j * per_gb:(j + 1) * per_gb].tolist()) for j in range(r)]

    if bs is not None:
        _cmd(plan, ch, PimOp.CFR, all_banks=1, col=CFR_FORMAT, row=fmt)
    gb: list[tuple[int, ...] | None] = [None] * p.gb_columns
    preload: dict[tuple[int, int], np.ndarray] = {}
    entries: dict[tuple[int, int], list[tuple[int, int]]] = {}
    first_code = bs.dtype_codes[unit.datatypes_of(fmt)[0]] if bs is not None else 0
    for blk in range(blocks):
        if data:
            for b in range(B):
                i = blk * B + b
                if i >= len(rows):
                    continue
                wrow = np.zeros(grans * gw, dtype=np.int64)
                wrow[:kk] = w[rows[i], k0:k1]
                for drow, slot, n, g0 in segs[blk]:
                    buf = preload.setdefault((b, drow), np.zeros((C, p.column_bytes), dtype=np.uint8))
                    ent = entries.setdefault((b, drow), [])
                    for t in range(n):
                        g = g0 + t
                        c0 = meta + (slot + t) * gc
                        buf[c0:c0 + gc] = pack_fields(wrow[g * gw + lay_k], fmt)
                        if bs is not None:
                            gpg = unit.groups_per_granule(fmt)
                            need = (slot + t + 1) * gpg
                            ent.extend([(first_code, 0)] * (need - len(ent)))
                            for gi in range(gpg):
                                grp = (k0 + g * gw + gi * bs.group_size) // bs.group_size
                                if grp * bs.group_size < k1:
                                    ent[(slot + t) * gpg + gi] = (int(dtypes[rows[i], grp]), int(scales[rows[i], grp]))
        _cmd(plan, ch, PimOp.CLRMAC, all_banks=1)
        for drow, slot, n, g0 in segs[blk]:
            c_lo, c_hi = meta + slot * gc, meta + (slot + n) * gc
            pieces = []
            c = c_lo
            while c < c_hi:
                end = min(c_hi, (c // window + 1) * window)
                pieces.append((c, end))
                c = end
            for pi, (ca, cb) in enumerate(pieces):
                # the global-buffer columns this piece reads, written where the buffer holds other activations
                want: dict[int, tuple[int, ...]] = {}
                for c in range(ca, cb):
                    g = g0 + (c - meta) // gc - slot
                    for j, tag in enumerate(gb_tags(g, (c - meta) % gc)):
                        want[(c * r + j) % p.gb_columns] = tag
                stale = sorted(a for a, tag in want.items() if gb[a] != tag)
                runs: list[list[int]] = []
                for a in stale:
                    if runs and runs[-1][-1] == a - 1:
                        runs[-1].append(a)
                    else:
                        runs.append([a])
                for run in runs:
                    words = np.zeros((len(run), per_gb), dtype=np.uint8)
                    if data:
                        for n_, a in enumerate(run):
                            idx = np.array(want[a])
                            words[n_] = (xs[np.where(idx < kk, idx, grans * gw)] & 0xFF).astype(np.uint8)
                    _cmd(plan, ch, PimOp.WRGB, words, col=run[0], count=len(run))
                    for a in run:
                        gb[a] = want[a]
                if pi == 0:
                    _cmd(plan, ch, PimOp.ACT, all_banks=1, row=drow)
                    if meta:
                        _cmd(plan, ch, PimOp.MAC, all_banks=1, col=0, count=meta)
                _cmd(plan, ch, PimOp.MAC, all_banks=1, col=ca, count=cb - ca)
            _cmd(plan, ch, PimOp.PRE, all_banks=1)
        _cmd(plan, ch, PimOp.RDMAC, all_banks=1)
        for b in range(B):
            i = blk * B + b
            plan.readout[ch].append((int(rows[i]) if i < len(rows) else -1, b))
    for (b, drow), buf in preload.items():
        if bs is not None:
            for c, word in enumerate(pack_entries(unit, fmt, entries.get((b, drow), []))):
                buf[c] = column_bytes(word, p)
        plan.preload.append((ch, b, drow, buf))


def golden_gemv(device: DeviceConfig, w: np.ndarray, x: np.ndarray, dtypes: np.ndarray | None = None,
                scales: np.ndarray | None = None) -> np.ndarray:
    """The golden numerics: int8 dot products, or :func:`accel.numerics.bitserial_dot` per output row (wrapped to
    32 bits)."""
    from accel.numerics import bitserial_dot, wrap

    p = device.pim
    if p.lane == "int8":
        y = w.astype(np.int64) @ x.astype(np.int64)
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
                    datatypes: Sequence[str] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Random GEMV operands for the device's lanes: ``(w, x, dtypes, scales)``. For bit-serial lanes every group of
    every row draws a datatype (of ``datatypes``, default every built one) and a scale, and the weights are random
    codes of that datatype; int8 lanes get int8 weights (``dtypes``/``scales`` ``None``). With probability
    ``extremes`` the activations are all -128 and the scales the largest (the accumulator's worst case)."""
    from accel.numerics import DATATYPES

    x = rng.integers(-128, 128, k)
    if device.pim.lane == "int8":
        return rng.integers(-128, 128, (m, k)), x, None, None
    bs = device.bitserial
    gs = bs.group_size
    ng = -(-k // gs)
    names = list(datatypes) if datatypes is not None else list(bs.datatypes)
    dtypes = rng.choice([bs.dtype_codes[n] for n in names], (m, ng))
    scales = rng.integers(0, 1 << bs.scale_bits, (m, ng))
    w = np.zeros((m, k), dtype=np.int64)
    for r in range(m):
        for g in range(ng):
            bits = DATATYPES[BITSERIAL_DATATYPES[int(dtypes[r, g])]].code_bits
            w[r, g * gs:(g + 1) * gs] = rng.integers(0, 1 << bits, gs)[:min(gs, k - g * gs)]
    if rng.random() < extremes:
        x[:] = -128
        scales[:] = (1 << bs.scale_bits) - 1
    return w, x, dtypes, scales
