"""The schedule of each operator's work on the PIM channels: command words per channel, where they wait for the
link's data, and where their results are ready for the link.

One :class:`ChannelPart` per channel and operator. :mod:`.codegen` puts the SYNC words in: a ``WAIT`` on the link
before ``words[wait_at]`` (the operator's input data has arrived) and a ``SIGNAL`` after every index in
``signal_after`` (data on the pins for the link to carry: ``readout_bytes`` of it).

Overlap, within the dependencies:

* a GEMV's first DRAM row is activated (and its MAC registers cleared) *before* the wait for its input, so the
  activation runs while the vector unit and the link are still busy with the previous operator;
* every DRAM row is activated before the global-buffer chunk its MACs read is written (:func:`mapping.gemv.gemv_plan`
  ``act_first``): the writes run under the activate-to-MAC delay;
* results leave per block: the link reads block ``j`` out while the channel computes block ``j + 1``.

GEMMs with ``M > 1`` (prefill, batches) reuse every activated DRAM row for all ``M`` input rows: per input a
global-buffer fill, the MACs and a readout of the chunk's partial sums (the vector unit adds the chunks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from accel.config import DeviceConfig
from accel.isa import TABLES, Family, PimOp, SyncOp, encode

from .gemv import gemv_program, lane_outputs
from .placement import KvLayout, Region
from .workload import WeightFormat

__all__ = ["ChannelPart", "weight_gemv", "kv_score", "kv_context", "kv_write", "param_read",
           "matrix_read", "group_formats", "pim_word", "times_of", "command_counts"]

_OFF = {n: TABLES[Family.PIM].offsets()[n] for n in ("op", "row")}
_OP_MASK = np.uint64((1 << _OFF["op"][1]) - 1)


@dataclass
class ChannelPart:
    """One channel's share of an operator (module docstring). ``data_bytes``: bytes the link brings before
    ``wait_at`` (global-buffer contents, write data)."""

    words: np.ndarray
    wait_at: int | None = None
    signal_after: list[int] = field(default_factory=list)
    readout_bytes: list[int] = field(default_factory=list)
    data_bytes: int = 0
    _counts: dict[str, int] | None = field(default=None, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return len(self.words) == 0

    @property
    def counts(self) -> dict[str, int]:
        """:func:`command_counts` of its words (computed once)."""
        if self._counts is None:
            self._counts = command_counts(self.words)
        return self._counts


def _ops(words: np.ndarray) -> np.ndarray:
    return (words >> np.uint64(_OFF["op"][0])) & _OP_MASK


def _shift_rows(words: np.ndarray, row0: int) -> np.ndarray:
    """ACT words moved ``row0`` DRAM rows up (other words' row fields are values, e.g. CFR's)."""
    if not row0:
        return words
    out = words.copy()
    act = (_ops(out) == PimOp.ACT) & _is_pim(out)
    out[act] += np.uint64(row0 << _OFF["row"][0])
    return out


def group_formats(device: DeviceConfig, fmt: WeightFormat, m: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Datatype codes and scales per output row and group of a timing-only matrix of format ``fmt`` (None for int8
    lanes, which have no group registers).

    A shape-only workload has no values, so: every group takes the format's datatypes in its fractions (a fixed
    low-discrepancy sequence over rows and groups; equal shares where the fractions are unknown), and the scales of
    neighbouring groups and of the rows of one block always differ (real weights' scales do). They are written into
    the rows' metadata columns (:mod:`mapping.gemv`), which a MAC loads before each row's data columns, as for real
    weights.
    """
    if device.pim.lane != "bitserial":
        return None
    bs = device.bitserial
    groups = -(-k // bs.group_size)
    codes = [bs.dtype_codes[d] for d in fmt.datatypes]
    if len(codes) == 1:
        dt = np.full((m, groups), codes[0], dtype=np.int64)
    else:
        frac = fmt.fractions or tuple(1 / len(codes) for _ in codes)
        edges = np.cumsum(frac)
        u = (np.arange(m)[:, None] * 0.6180339887 + np.arange(groups)[None, :] * 0.7548776662) % 1.0
        dt = np.asarray(codes, dtype=np.int64)[np.minimum(np.searchsorted(edges, u, side="right"), len(codes) - 1)]
    top = (1 << bs.scale_bits) - 1
    sc = 1 + (np.arange(m)[:, None] + np.arange(groups)[None, :]) % top
    return dt, sc


def _uniform(device: DeviceConfig, m: int, k: int, datatype: str) -> tuple[np.ndarray, np.ndarray] | None:
    """One datatype and scale 1 for a whole matrix (the KV cache)."""
    if device.pim.lane != "bitserial":
        return None
    groups = -(-k // device.bitserial.group_size)
    return (np.full((m, groups), device.bitserial.dtype_codes[datatype], dtype=np.int64),
            np.ones((m, groups), dtype=np.int64))


#: Input rows up to which a GEMM's per-input work is written out; above it a REPEAT runs the (equal) bodies.
_LITERAL_INPUTS = 3


@lru_cache(maxsize=512)
def _plan_words(device: DeviceConfig, m: int, k: int, layout: str, fmt_key: tuple, inputs: int) -> tuple:
    """Words (row 0 based), first WRGB index, readout groups of a one-channel plan (cached per shape).

    With several input rows every activated DRAM row serves them all: ACT, then per input a body (CLRMAC, the
    global-buffer fill, the MACs with their group-register writes, RDMAC), PRE. The bodies of the second input on are
    equal word for word (the first may differ in its group-register writes), so above :data:`_LITERAL_INPUTS` inputs
    the plan is made for that many and each row's second body runs under ``REPEAT times=inputs-1``."""
    kind, fmt = fmt_key
    groups = group_formats(device, fmt, m, k) if kind == "weights" else _uniform(device, m, k, fmt)
    dt, sc = groups if groups is not None else (None, None)
    made = min(inputs, _LITERAL_INPUTS)
    plan = gemv_program(device, m, k, layout, dt, sc, channels=1, act_first=True, inputs=made)
    words = np.fromiter((w for w, _ in plan.program), dtype=np.uint64, count=len(plan.program))
    ops = _ops(words)
    rdmac = np.nonzero(ops == PimOp.RDMAC)[0]
    if made > 1:   # a readout group per activated row: its RDMACs end where the row is precharged
        nxt = np.append(ops[1:], PimOp.NOP)
        ends = rdmac[nxt[rdmac] == PimOp.PRE] + 1
    else:
        ends = rdmac
    counts = np.diff(np.concatenate([[0], np.searchsorted(rdmac, ends, side="right")]))
    if inputs > made:
        words, ends = _repeat_bodies(words, ops, inputs)
        counts = np.full(len(ends), inputs)
    ops = _ops(words)
    wrgb = np.nonzero((ops == PimOp.WRGB) & _is_pim(words))[0]
    words.setflags(write=False)
    return words, int(wrgb[0]) if len(wrgb) else None, tuple(int(e) for e in ends), tuple(int(c) for c in counts), \
        _wrgb_columns(words)


def _is_pim(words: np.ndarray) -> np.ndarray:
    off, width = TABLES[Family.PIM].offsets()["family"]
    return ((words >> np.uint64(off)) & np.uint64((1 << width) - 1)) == Family.PIM


def _repeat_bodies(words: np.ndarray, ops: np.ndarray, inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """A plan made for :data:`_LITERAL_INPUTS` inputs with each row's bodies after the first under one REPEAT of
    ``inputs - 1`` (module docstring of :func:`_plan_words`); returns the words and each readout group's last index."""
    out: list[np.ndarray] = []
    ends = []
    acts = np.nonzero(ops == PimOp.ACT)[0].tolist()
    pres = np.nonzero(ops == PimOp.PRE)[0].tolist()
    at = 0
    for a, pr in zip(acts, pres):
        out.append(words[at:a + 1])
        starts = [j for j in range(a + 1, pr) if ops[j] == PimOp.CLRMAC] + [pr]
        bodies = [words[starts[i]:starts[i + 1]] for i in range(len(starts) - 1)]
        if len(bodies) != _LITERAL_INPUTS or any(not np.array_equal(b, bodies[1]) for b in bodies[2:]):
            raise AssertionError("a GEMM plan's per-input bodies differ after the first")   # gemv.py's loop order
        rep = np.array([encode(Family.SYNC, SyncOp.REPEAT, token=inputs - 1, id=len(bodies[1]))], dtype=np.uint64)
        out += [bodies[0], rep, bodies[1]]
        ends.append(sum(len(x) for x in out))   # the PRE follows: the group's readouts are done there
        at = pr
    out.append(words[at:])
    return np.concatenate(out), np.array(ends)



def _gemv_part(device: DeviceConfig, m: int, k: int, layout: str, fmt_key: tuple, inputs: int, row0: int,
               gb_bytes_per_column: int) -> ChannelPart:
    words, first_wrgb, ends, counts, wrgb_cols = _plan_words(device, m, k, layout, fmt_key, inputs)
    beat = device.pim.banks * device.mac_register_bytes
    return ChannelPart(_shift_rows(words, row0), first_wrgb, list(ends), [c * beat for c in counts],
                       wrgb_cols * gb_bytes_per_column, _command_counts(device, m, k, layout, fmt_key, inputs))


@lru_cache(maxsize=512)
def _command_counts(device: DeviceConfig, m: int, k: int, layout: str, fmt_key: tuple, inputs: int) -> dict:
    """:func:`command_counts` of a plan's words (they do not depend on its first row)."""
    return command_counts(_plan_words(device, m, k, layout, fmt_key, inputs)[0])


def command_counts(words: np.ndarray) -> dict[str, int]:
    """PIM commands of a part by kind (REPEAT bodies every time they run), and the columns of MAC/WRGB/RD/WR runs:
    ``act``, ``mac_columns``, ``wrgb_columns``, ``rdmac``, ``cfr``, ``rd_columns``, ``wr_columns``."""
    t = TABLES[Family.PIM].offsets()
    pim = _is_pim(words)
    n = times_of(words)[pim]
    sel = words[pim]
    op = _ops(sel).astype(np.int64)
    cnt = np.maximum(((sel >> np.uint64(t["count"][0])) & np.uint64((1 << t["count"][1]) - 1)).astype(np.int64),
                     1) * n
    return {"act": int(n[op == PimOp.ACT].sum()), "mac_columns": int(cnt[op == PimOp.MAC].sum()),
            "wrgb_columns": int(cnt[op == PimOp.WRGB].sum()), "rdmac": int(n[op == PimOp.RDMAC].sum()),
            "cfr": int(n[op == PimOp.CFR].sum()), "rd_columns": int(cnt[op == PimOp.RD].sum()),
            "wr_columns": int(cnt[op == PimOp.WR].sum())}


def _wrgb_columns(words: np.ndarray) -> int:
    """Global-buffer columns the WRGB words of a plan write (the link brings their data)."""
    off, width = TABLES[Family.PIM].offsets()["count"]
    sel = (_ops(words) == PimOp.WRGB) & _is_pim(words)
    cnt = (words >> np.uint64(off)) & np.uint64((1 << width) - 1)
    return int((np.maximum(cnt.astype(np.int64), 1) * times_of(words))[sel].sum())


def times_of(words: np.ndarray) -> np.ndarray:
    """How many times each word runs (REPEAT bodies their ``times``)."""
    out = np.ones(len(words), dtype=np.int64)
    f = TABLES[Family.SYNC].offsets()
    sync = np.nonzero(~_is_pim(words))[0]
    for p in sync.tolist():
        w = int(words[p])
        if (w >> f["op"][0]) & ((1 << f["op"][1]) - 1) == SyncOp.REPEAT:
            n = (w >> f["id"][0]) & ((1 << f["id"][1]) - 1)
            out[p + 1:p + 1 + n] = (w >> f["token"][0]) & ((1 << f["token"][1]) - 1)
    return out


def _slices(m: int, parts: int) -> list[int]:
    """Output rows of each channel under the ``rows`` layout's split (``ceil(m / parts)`` each, the last fewer)."""
    per = -(-m // parts)
    return [max(0, min(per, m - c * per)) for c in range(parts)]


def weight_gemv(device: DeviceConfig, region: Region, fmt: WeightFormat, inputs: int) -> list[ChannelPart]:
    """A weight GEMV (``inputs`` input rows) over a region in layout ``rows``: one part per channel (empty where the
    channel holds none of its rows). The link broadcasts the input once (the channels' ``data_bytes`` are each
    channel's global-buffer writes, equal in every channel that has rows)."""
    return list(_weight_parts(device, region.m, region.k, region.channels, region.row0, fmt, inputs))


@lru_cache(maxsize=4096)
def _weight_parts(device: DeviceConfig, m: int, k: int, channels: int, row0: int, fmt: WeightFormat,
                  inputs: int) -> tuple[ChannelPart, ...]:
    """:func:`weight_gemv` by geometry (devices of a tensor-parallel system share their parts)."""
    p = device.pim
    # the input's global-buffer columns (int8 activations, a column's bytes each), once per input row: later refills
    # of the same chunk come from the channel's copy
    data = inputs * -(-k // p.column_bytes) * p.column_bytes
    made: dict[int, ChannelPart] = {}   # channels with equal slices share one part (and one array of words)
    for mc in set(_slices(m, channels)):
        if mc == 0:
            made[mc] = ChannelPart(np.zeros(0, dtype=np.uint64))
            continue
        made[mc] = _gemv_part(device, mc, k, "rows", ("weights", fmt), inputs, row0, p.column_bytes)
        made[mc].data_bytes = data
    return tuple(made[mc] for mc in _slices(m, channels))


def _concat(parts: list[ChannelPart]) -> ChannelPart:
    """Parts of one channel run one after the other (the first part's wait guards them all)."""
    out = ChannelPart(np.zeros(0, dtype=np.uint64))
    out._counts = {k: sum(p.counts[k] for p in parts) for k in parts[0].counts} if parts else None
    base = 0
    for part in parts:
        if out.wait_at is None and part.wait_at is not None:
            out.wait_at = base + part.wait_at
        out.signal_after += [base + i for i in part.signal_after]
        out.readout_bytes += part.readout_bytes
        out.data_bytes += part.data_bytes
        out.words = np.concatenate([out.words, part.words])
        base += len(part.words)
    return out


def _relative(kv: KvLayout) -> KvLayout:
    """The layout with its key and value regions from DRAM row 0: every layer's cache has the same shape, so its
    schedule is made once (cached) and moved to the layer's rows (:func:`_moved`)."""
    k0, v0 = kv.k.row0, kv.v.row0
    return replace(kv, k_at=tuple((c, r - k0) for c, r in kv.k_at), v_at=tuple((c, r - v0) for c, r in kv.v_at),
                   k=replace(kv.k, name="", row0=0), v=replace(kv.v, name="", row0=0))


def _moved(parts: tuple[ChannelPart, ...], row0: int) -> list[ChannelPart]:
    """Copies of (cached) parts with their ACT rows moved ``row0`` DRAM rows up."""
    return [ChannelPart(_shift_rows(p.words, row0), p.wait_at, list(p.signal_after), list(p.readout_bytes),
                        p.data_bytes, p._counts) for p in parts]


def kv_score(device: DeviceConfig, kv: KvLayout, inputs: int) -> list[ChannelPart]:
    """Attention scores over the key cache of one layer: per key unit a GEMV in layout ``lanes`` (its tokens are the
    outputs, one head dimension per column) for each of ``inputs`` query vectors (the query heads sharing the key head
    times the query tokens); a SIGNAL after each unit. The link brings each unit's queries (every slot of a
    global-buffer column holds one element)."""
    return _moved(_kv_score(device, _relative(kv), inputs), kv.k.row0)


@lru_cache(maxsize=64)
def _kv_score(device: DeviceConfig, kv: KvLayout, inputs: int) -> tuple[ChannelPart, ...]:
    nch = kv.k.channels
    per_ch: list[list[ChannelPart]] = [[] for _ in range(nch)]
    heads: list[set[int]] = [set() for _ in range(nch)]
    for u, (ch, row) in enumerate(kv.k_at):
        tokens = min(kv.tokens_per_unit, kv.context - (u % kv.blocks) * kv.tokens_per_unit)
        part = _gemv_part(device, tokens, kv.head_dim, "lanes", ("kv", "int8"), inputs, row,
                          device.pim.column_bytes)
        part.signal_after, part.readout_bytes = [len(part.words) - 1], [sum(part.readout_bytes)]
        per_ch[ch].append(part)
        heads[ch].add(u // kv.blocks)
    return tuple(_with_data(per_ch, heads, inputs * kv.head_dim * device.pim.column_bytes))


def _with_data(per_ch: list[list[ChannelPart]], heads: list[set[int]], per_head: int) -> list[ChannelPart]:
    """Each channel's units run one after the other; the link brings every head's global-buffer contents once per
    channel (its units' later fills come from the channel's copy)."""
    out = []
    for parts, hs in zip(per_ch, heads):
        part = _concat(parts)
        part.data_bytes = len(hs) * per_head
        out.append(part)
    return out


def kv_context(device: DeviceConfig, kv: KvLayout, inputs: int) -> list[ChannelPart]:
    """Attention context over the transposed value cache: per value unit (``banks`` head dimensions) a GEMV in layout
    ``rows`` over the context's tokens, for each of ``inputs`` probability vectors; a SIGNAL after each unit."""
    return _moved(_kv_context(device, _relative(kv), inputs), kv.v.row0)


@lru_cache(maxsize=64)
def _kv_context(device: DeviceConfig, kv: KvLayout, inputs: int) -> tuple[ChannelPart, ...]:
    nch = kv.v.channels
    p = device.pim
    per_ch: list[list[ChannelPart]] = [[] for _ in range(nch)]
    heads: list[set[int]] = [set() for _ in range(nch)]
    for u, (ch, row) in enumerate(kv.v_at):
        dims = min(p.banks, kv.head_dim - (u % kv.v_per_head) * p.banks)
        part = _gemv_part(device, dims, kv.context, "rows", ("kv", "int8"), inputs, row, p.column_bytes)
        part.signal_after, part.readout_bytes = [len(part.words) - 1], [sum(part.readout_bytes)]
        per_ch[ch].append(part)
        heads[ch].add(u // kv.v_per_head)
    return tuple(_with_data(per_ch, heads, inputs * -(-kv.context // p.column_bytes) * p.column_bytes))


_PIM_FIELDS = TABLES[Family.PIM].offsets()


def pim_word(op: int, all_banks: int = 0, bank: int = 0, row: int = 0, col: int = 0, count: int = 0) -> int:
    """A PIM command word (channel 0) from fields already known to fit (the program's validation checks them)."""
    f = _PIM_FIELDS
    return (int(Family.PIM) << f["family"][0] | op << f["op"][0] | all_banks << f["all_banks"][0]
            | bank << f["bank"][0] | row << f["row"][0] | col << f["col"][0] | count << f["count"][0])


def _accesses(op: PimOp, all_banks: np.ndarray, bank: np.ndarray, row: np.ndarray, run_of: np.ndarray,
              run_bank: np.ndarray, run_col: np.ndarray, run_count: np.ndarray) -> np.ndarray:
    """Row accesses in order, each ACT ``row`` (of ``bank``, or every bank where ``all_banks``), its RD/WR runs
    ``(run_bank, run_col, run_count)`` (run ``i`` belongs to access ``run_of[i]``, non-decreasing), PRE."""
    all_banks, bank, row, run_of = (np.asarray(a, dtype=np.int64) for a in (all_banks, bank, row, run_of))
    per = np.bincount(run_of, minlength=len(row))
    at = np.cumsum(per + 2) - (per + 2)          # each access's ACT
    first_run = np.cumsum(per) - per
    words = np.empty(int((per + 2).sum()), dtype=np.uint64)
    one = np.where(all_banks == 1, 0, bank)
    words[at] = pim_word(PimOp.ACT, all_banks, one, row)
    words[at + per + 1] = pim_word(PimOp.PRE, all_banks, one)
    words[at[run_of] + 1 + np.arange(len(run_of)) - first_run[run_of]] = pim_word(
        op, 0, np.asarray(run_bank, dtype=np.int64), 0, np.asarray(run_col, dtype=np.int64),
        np.asarray(run_count, dtype=np.int64))
    return words


def _access(bank: int, row: int, op: PimOp, ranges: list[tuple[int, int, int]], all_banks: bool = False) -> list[int]:
    """One row access (:func:`_accesses`): ACT ``row`` (one bank, or every bank), one RD/WR per ``(bank, col,
    count)`` range, PRE."""
    b, c, n = (np.array([r[i] for r in ranges], dtype=np.int64) for i in range(3))
    return _accesses(op, [int(all_banks)], [bank], [row], np.zeros(len(ranges), dtype=np.int64), b, c, n).tolist()


def kv_write(device: DeviceConfig, kv: KvLayout, tokens: range) -> list[ChannelPart]:
    """Writing the key and value entries of new ``tokens`` (positions, every sequence and KV head held here).

    A key unit gives each bank :func:`~accel.mapping.gemv.lane_outputs` tokens per block (layout ``lanes``): a token
    is written as ``head dim`` columns of its bank's row (an estimate of the addresses: the packed granules interleave
    the accumulators' groups); a value unit holds one head dimension per bank and a column's int8 weights of tokens
    per column: a token changes one column in every bank of the unit. Writes of a column cover the new tokens' codes
    only (masked writes: an assumption, docs/mapping.md); the link brings whole column words. Per channel: the key
    rows' accesses (one bank each) by row and bank, then the value rows' (all banks) by row; every column is written
    once, consecutive columns of a bank in one run."""
    out = []
    for keys, values, ncols in _kv_write(device, _relative(kv), tokens):
        words = np.concatenate([_shift_rows(keys, kv.k.row0), _shift_rows(values, kv.v.row0)])
        out.append(ChannelPart(words, 0 if len(words) else None, data_bytes=ncols * device.pim.column_bytes))
    return out


@lru_cache(maxsize=64)
def _kv_write(device: DeviceConfig, kv: KvLayout, tokens: range) -> tuple[tuple[np.ndarray, np.ndarray, int], ...]:
    """Per channel: the words writing the keys, those writing the values, and the columns written
    (:func:`kv_write`)."""
    p = device.pim
    # keys: lane_outputs tokens per bank of a unit (layout 'lanes'); values: a column's int8 weights per column
    L, C, B, V = lane_outputs(device, 8), p.columns, p.banks, p.weights_per_column(8)
    t = np.arange(tokens.start, tokens.stop, tokens.step, dtype=np.int64)
    sh = np.arange(kv.sequences * kv.kv_heads, dtype=np.int64)
    k_at = np.array(kv.k_at, dtype=np.int64).reshape(-1, 2)
    v_at = np.array(kv.v_at, dtype=np.int64).reshape(-1, 2)
    # keys: the (unit, bank) pairs the tokens land in; row j of a unit gets columns 0 .. n_j - 1 of that bank
    ub = np.unique((sh[:, None] * kv.blocks + t // kv.tokens_per_unit) * B + (t % kv.tokens_per_unit) % (B * L) // L)
    u, bank = ub // B, ub % B
    j = np.arange(kv.k_rows, dtype=np.int64)
    n_j = np.maximum(0, np.minimum(kv.head_dim, (j + 1) * C) - j * C)
    k_row = k_at[u, 1][:, None] + j
    # values: unit (sh, d) holds head dimensions d * B ... in its banks; token t is column t // V of the unit's rows
    col = np.unique(t // V)
    unit = np.arange(len(v_at), dtype=np.int64)
    u_, c_, b_ = (a.ravel() for a in np.meshgrid(unit, col, np.arange(B), indexing="ij"))
    keep = b_ < kv.head_dim - (u_ % kv.v_per_head) * B
    u_, c_, b_ = u_[keep], c_[keep], b_[keep]
    v_row = v_at[u_, 1] + c_ // C
    R = 1 + max([0] + [int(r.max()) for r in (k_row, v_row) if r.size])   # rows bound the keys' encoding below
    key = ((k_at[u, 0][:, None] * R + k_row) * B + bank[:, None]).ravel()   # (channel, row, bank)
    k_acc, inv = np.unique(key, return_inverse=True)
    k_n = np.zeros(len(k_acc), dtype=np.int64)   # a row written for several keys: its widest run (all from column 0)
    np.maximum.at(k_n, inv.reshape(-1), np.tile(n_j, len(u)))
    v_cols = np.unique((((v_at[u_, 0] * R + v_row) * B + b_) * C + c_ % C))   # (channel, row, bank, column)
    starts = np.ones(len(v_cols), dtype=bool)
    starts[1:] = np.diff(v_cols) != 1
    starts[1:] |= v_cols[1:] // C != v_cols[:-1] // C
    first = np.nonzero(starts)[0]
    runs, run_n = v_cols[first], np.diff(np.append(first, len(v_cols)))
    v_acc, run_of = np.unique(runs // (C * B), return_inverse=True)                            # (channel, row)
    run_of = run_of.reshape(-1)
    out = []
    for ch in range(kv.k.channels):
        ka, kb = np.searchsorted(k_acc // (R * B), [ch, ch + 1])
        va, vb = np.searchsorted(v_acc // R, [ch, ch + 1])
        ra, rb = np.searchsorted(run_of, [va, vb])
        acc, n = k_acc[ka:kb], k_n[ka:kb]
        has = np.nonzero(n)[0]
        keys = _accesses(PimOp.WR, np.zeros(len(acc)), acc % B, acc // B % R, has, acc[has] % B, np.zeros(len(has)),
                         n[has])
        values = _accesses(PimOp.WR, np.ones(vb - va), np.zeros(vb - va), v_acc[va:vb] % R, run_of[ra:rb] - va,
                           runs[ra:rb] // C % B, runs[ra:rb] % C, run_n[ra:rb])
        keys.setflags(write=False)
        values.setflags(write=False)
        out.append((keys, values, int(n.sum() + run_n[ra:rb].sum())))
    return tuple(out)


def _row_reads(device: DeviceConfig, region: Region, rows: list[int]) -> list[ChannelPart]:
    """Column reads of whole matrix rows (``rows`` of the region's output rows; layout ``rows``), a SIGNAL after each
    channel's reads."""
    p = device.pim
    nch = region.channels
    per = -(-region.m // nch)
    ncols = -(-region.k // p.weights_per_column(region.code_bits))
    rpb = -(-ncols // p.columns)
    per_ch: list[list[int]] = [[] for _ in range(nch)]
    read = [0] * nch
    for r in rows:
        ch, i = divmod(r, per)
        blk, bank = divmod(i, p.banks)
        for j in range(rpb):
            n = min(p.columns, ncols - j * p.columns)
            per_ch[ch] += _access(bank, region.row0 + blk * rpb + j, PimOp.RD, [(bank, 0, n)])
            read[ch] += n
    return [ChannelPart(np.array(w, dtype=np.uint64), None, [len(w) - 1] if w else [],
                        [n * p.column_bytes] if w else []) for w, n in zip(per_ch, read)]


def matrix_read(device: DeviceConfig, region: Region) -> list[ChannelPart]:
    """A whole weight matrix read out of the banks (for the attention array): every row of every channel."""
    return _row_reads(device, region, list(range(region.m)))


def param_read(device: DeviceConfig, region: Region) -> list[ChannelPart]:
    """A layer's parameter vectors (biases, norm gains): every channel reads its share from bank 0."""
    p = device.pim
    cols = -(-math.ceil(region.bytes / region.channels) // p.column_bytes)
    words: list[int] = []
    left = cols
    for j in range(region.rows):
        n = min(p.columns, left)
        words += _access(0, region.row0 + j, PimOp.RD, [(0, 0, n)])
        left -= n
    part = ChannelPart(np.array(words, dtype=np.uint64), None, [len(words) - 1], [cols * p.column_bytes])
    return [part] * region.channels
