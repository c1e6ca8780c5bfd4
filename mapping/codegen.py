"""Code generation: one program (:class:`accel.program.Program`) for a whole mapped model on one or more devices.

Streams, per device (``dK.`` prefixed with several devices): ``pim0 .. pimN-1`` (one per channel), ``vector``,
``link``, ``array`` (devices with an attention array), ``net`` (the interconnect port, with several devices). Every
operator instance gets a marker id (``MARK``) in every stream that works on it; ``Program.operators`` maps the id to
the operator (name, kind, layer, unit, device).

Dependencies are SIGNAL/WAIT tokens with a fixed meaning per producer; each consumer waits on each event once, in
order (the k-th WAIT matches the k-th SIGNAL):

===========  =====  =======================================================================================
producer     token  event
===========  =====  =======================================================================================
vector       1      a result is ready for the link to carry (a GEMV input, KV entries, queries, ...)
vector       2      a result is ready for the interconnect port to send to other devices
link         1      data for the channels has arrived (every channel waits, whether it got any or not)
link         2      data for the vector unit has arrived (readouts, lookups, parameters, fallback results)
link         3      data for the array has arrived
pimC         1      channel C's results (MAC registers, read columns) are on its pins
array        1      the array's results are ready
dK.net       1      device K's transfers have arrived at the other devices
===========  =====  =======================================================================================

Data movement is never free: a GEMV's input is broadcast into the channels' global buffers over the link (from the
vector unit, after requantising to the activation format), its MAC registers are read out over the link to the vector
unit (which adds the lanes' partial sums and the bias), new KV entries are written over the link, every layer's
parameter vectors are read from the banks. What each channel does per operator is :mod:`.schedule`'s.

The vector unit's operands are placed in three equal regions of its buffer (source, second source, destination), and
an op whose operands do not fit is split by rows (elementwise ops also by length); the addresses keep every operand
inside the buffer but do not yet track where each value lives (the functional issue will).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Union

import numpy as np

from accel.config import DeviceConfig
from accel.interfaces import vector as vec_iface
from accel.interfaces.link import endpoint_code
from accel.isa import TABLES, AttnOp, Endpoint, Family, LinkOp, PimOp, SyncOp, VectorOp, encode
from accel.program import Program, Stream

from . import schedule as sch
from .partition import VECTOR_OPS, Partition, op_key
from .placement import Placement
from .workload import AttentionMatmul, Gemm, KvWrite, Lookup, Operator, Vector, Workload

__all__ = ["OpSite", "generate", "TOKENS"]

#: Token meanings (module docstring), by name.
TOKENS = {"vector_to_link": 1, "vector_to_net": 2, "link_to_pim": 1, "link_to_vector": 2, "link_to_array": 3,
          "pim_ready": 1, "array_ready": 1, "net_arrived": 1}

_CH_OFF = TABLES[Family.PIM].offsets()["channel"][0]
_ATTN = TABLES[Family.ATTN]


@dataclass
class OpSite:
    """One operator instance in the program (marker ``id``), with what the report needs to explain its time.

    Members
    -------
    id, key, name, kind, section, layer, device, unit:
        Marker id, :func:`mapping.partition.op_key`, name (with the layer), kind, section, layer index, device,
        unit (:data:`mapping.partition.UNITS`).
    op:
        The workload's operator.
    counts:
        Static counts of its commands: per channel (the busiest) ``act``, ``mac_columns``, ``wrgb_columns``,
        ``rdmac``, ``cfr``, ``rd_columns``, ``wr_columns``; ``link_bytes`` (every transfer of it), ``net_bytes``,
        ``vector_cycles``, ``array_cycles``.
    """

    id: int
    key: str
    name: str
    kind: str
    section: str
    layer: Union[int, None]
    device: int
    unit: str
    op: Operator
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "name": self.name, "kind": self.kind, "section": self.section,
                "layer": self.layer, "device": self.device, "unit": self.unit, "counts": self.counts}


@lru_cache(maxsize=None)
def _word(family: Family, op: int, fields: tuple[tuple[str, int], ...]) -> int:
    """A command word (cached: programs repeat few distinct words many times)."""
    return encode(family, op, **dict(fields))


@lru_cache(maxsize=None)
def _endpoint(name: str) -> int:
    return endpoint_code(name)


@lru_cache(maxsize=None)
def _xfer_words(src: int, dst: int, nbytes: int) -> tuple[int, ...]:
    """The XFER words of a transfer of ``nbytes`` (none for 0; several where the 24-bit byte count overflows)."""
    top = (1 << TABLES[Family.LINK].width("bytes")) - 1
    return tuple(_word(Family.LINK, LinkOp.XFER, (("bytes", min(top, nbytes - a)), ("dst", dst), ("src", src)))
                 for a in range(0, max(0, nbytes), top))


def _sync(op: SyncOp, **f: int) -> int:
    return _word(Family.SYNC, op, tuple(sorted(f.items())))


class _Device:
    """The streams of one device while they are being built."""

    def __init__(self, gen: "_Generator", index: int, base: int) -> None:
        dev = gen.device
        self.gen, self.index = gen, index
        pre = f"d{index}." if gen.devices > 1 else ""
        nch = dev.pim.channels
        self.names = [f"{pre}pim{c}" for c in range(nch)] + [f"{pre}vector", f"{pre}link"]
        if dev.attention is not None:
            self.names.append(f"{pre}array")
        if gen.devices > 1:
            self.names.append(f"{pre}net")
        self.idx = {n[len(pre):]: base + i for i, n in enumerate(self.names)}
        self.pim: list[list[np.ndarray]] = [[] for _ in range(nch)]
        self.vector: list[int] = []
        self.link: list[int] = []
        self.array: list[int] = []
        self.net: list[int] = []
        self.broadcast: Union[int, None] = None   # id of the vector result last broadcast to the channels
        self.value = 0                             # id of the vector unit's latest result
        self.pending_vector_waits = 0              # link -> vector events not yet waited for

    # ---- SYNC words ------------------------------------------------------------------------------------------------
    def wait(self, stream: str, token: int) -> int:
        return _sync(SyncOp.WAIT, stream=self.idx[stream], token=token)

    def mark_all(self, ident: int, streams: Iterable[str]) -> None:
        m = np.array([_sync(SyncOp.MARK, id=ident)], dtype=np.uint64)
        for s in streams:
            if s.startswith("pim"):
                self.pim[int(s[3:])].append(m)
            else:
                getattr(self, s).append(int(m[0]))

    # ---- link helpers ----------------------------------------------------------------------------------------------
    def xfer(self, src: Union[str, int], dst: Union[str, int], nbytes: int) -> int:
        """A link transfer (its bytes returned for the operator's counts); endpoints by name or code."""
        if nbytes <= 0:
            return 0
        s = _endpoint(src) if isinstance(src, str) else src
        d = _endpoint(dst) if isinstance(dst, str) else dst
        self.link.extend(_xfer_words(s, d, int(nbytes)))
        return int(nbytes)

    def vector_to_link(self) -> None:
        """The vector unit's latest result goes onto the link: it signals, the link waits."""
        self.vector.append(_sync(SyncOp.SIGNAL, token=TOKENS["vector_to_link"]))
        self.link.append(self.wait("vector", TOKENS["vector_to_link"]))

    def link_to_vector(self) -> None:
        self.link.append(_sync(SyncOp.SIGNAL, token=TOKENS["link_to_vector"]))
        self.pending_vector_waits += 1

    def vector_receive(self) -> None:
        """The vector unit waits for the link's data (every pending link -> vector event, in order)."""
        while self.pending_vector_waits:
            self.vector.append(self.wait("link", TOKENS["link_to_vector"]))
            self.pending_vector_waits -= 1

    def link_to_channels(self) -> None:
        self.link.append(_sync(SyncOp.SIGNAL, token=TOKENS["link_to_pim"]))

    # ---- channel parts ---------------------------------------------------------------------------------------------
    def channel_parts(self, parts: list[sch.ChannelPart], wait_link: bool) -> None:
        """Append every channel's part: a WAIT for the link's data (``wait_link``: all channels, the part's
        ``wait_at`` or its start) and a SIGNAL after each of its ``signal_after``."""
        w_link = self.wait("link", TOKENS["link_to_pim"])
        sig = _sync(SyncOp.SIGNAL, token=TOKENS["pim_ready"])
        done: dict[int, np.ndarray] = {}
        for c, part in enumerate(parts):
            key = id(part)
            if key not in done:
                pos = [i + 1 for i in part.signal_after]
                vals = [sig] * len(pos)
                if wait_link:
                    at = part.wait_at if part.wait_at is not None else 0
                    # a SIGNAL at the same place goes first (it closes the work before the wait)
                    k = sum(1 for p in pos if p <= at)
                    pos.insert(k, at)
                    vals.insert(k, w_link)
                done[key] = np.insert(part.words, pos, np.array(vals, dtype=np.uint64)) if pos else part.words
            self.pim[c].append(done[key])

    def readouts(self, parts: list[sch.ChannelPart], dst: str = "vector") -> int:
        """The link carries every channel's signalled results to ``dst``, round by round over the channels (round
        ``j``: a WAIT for each channel's ``j``-th SIGNAL, then the transfer of its ``readout_bytes[j]``); returns the
        bytes. Built with numpy: the words of each distinct (channel, bytes) pair, gathered in round order."""
        rounds = max((len(p.signal_after) for p in parts), default=0)
        nbytes = np.full((rounds, len(parts)), -1, dtype=np.int64)   # -1: the channel has no result in that round
        for c, part in enumerate(parts):
            nbytes[:len(part.signal_after), c] = part.readout_bytes
        j, c = np.nonzero(nbytes >= 0)                                  # round by round, channels in order
        b = nbytes[j, c]
        if not len(b):
            return 0
        top = int(b.max()) + 1
        pairs, inv = np.unique(c * top + b, return_inverse=True)
        inv = inv.reshape(-1)
        d = _endpoint(dst)
        table = [(self.wait(f"pim{pc}", TOKENS["pim_ready"]),) + _xfer_words(pc, d, pb)
                 for pc, pb in (divmod(x, top) for x in pairs.tolist())]
        lens = np.array([len(t) for t in table], dtype=np.int64)
        flat = np.array([w for t in table for w in t], dtype=np.uint64)
        n = lens[inv]
        first = np.repeat((np.cumsum(lens) - lens)[inv] - (np.cumsum(n) - n), n)
        self.link.extend(flat[first + np.arange(int(n.sum()))].tolist())
        return int(b.sum())

    # ---- vector ops ------------------------------------------------------------------------------------------------
    def vec(self, op: VectorOp, length: int, count: int = 1, src2: int = 0) -> int:
        """One vector op, split so that its operands fit the buffer's thirds; returns its cycles."""
        words, cycles = _vector_words(op, length, count, src2, self.gen.device.vector)
        self.vector.extend(words)
        self.value += 1
        return cycles

    def build(self) -> list[Stream]:
        dev = self.gen.device
        out = []
        for c, segs in enumerate(self.pim):
            words = np.concatenate(segs) if segs else np.zeros(0, dtype=np.uint64)
            is_pim = ((words >> np.uint64(TABLES[Family.PIM].offsets()["family"][0])) & np.uint64(7)) == Family.PIM
            words = np.where(is_pim, words | np.uint64(c << _CH_OFF), words)
            out.append(Stream(self.names[c], words))
        nch = dev.pim.channels
        out.append(Stream(self.names[nch], np.array(self.vector, dtype=np.uint64)))
        out.append(Stream(self.names[nch + 1], np.array(self.link, dtype=np.uint64)))
        rest = self.names[nch + 2:]
        for name in rest:
            kind = name.rsplit(".", 1)[-1]
            out.append(Stream(name, np.array(getattr(self, kind), dtype=np.uint64)))
        return out


@lru_cache(maxsize=4096)
def _vector_words(op: VectorOp, length: int, count: int, src2: int, cfg: Any) -> tuple[tuple[int, ...], int]:
    """The words of one vector op split so that its operands fit the buffer's thirds (:func:`_vector_pieces`), and
    its cycles (cached: every layer has the same ops)."""
    third = cfg.buffer_lines // 3
    words, cycles = [], 0
    for ln, cnt in _vector_pieces(op, length, count, src2, cfg, third):
        words.append(_word(Family.VECTOR, op, (("count", cnt), ("dst", 2 * third), ("length", ln), ("src", 0),
                                               ("src2", src2 if op == VectorOp.TOPK else third))))
        cycles += vec_iface.vector_cycles(op, ln, cnt, src2, cfg)
    return tuple(words), cycles


def _vector_pieces(op: VectorOp, length: int, count: int, src2: int, cfg: Any,
                   third: int) -> list[tuple[int, int]]:
    """``(length, count)`` pieces of an op whose regions each fit ``third`` lines: elementwise ops as one flat run of
    ``length x count`` elements cut into pieces, REDUCE by length (its ``count`` partial-sum rows stay together), row
    ops (norms, softmax, top-k) by rows."""
    top_len = (1 << TABLES[Family.VECTOR].width("length")) - 1
    top_cnt = (1 << TABLES[Family.VECTOR].width("count")) - 1

    def fits(ln: int, cnt: int) -> bool:
        return all(n <= third for _, _, n in vec_iface.regions(op, ln, cnt, 0, src2, 0, cfg))

    if op == VectorOp.REDUCE:
        step = max(1, min(top_len, (third // max(1, count)) * cfg.lanes))
        while not fits(step, count) and step > 1:
            step //= 2
        return [(min(step, length - s), count) for s in range(0, length, step)]
    if op in (VectorOp.ADD, VectorOp.MUL, VectorOp.GELU, VectorOp.SILU, VectorOp.QUANT, VectorOp.COPY,
              VectorOp.ROPE):
        total = length * count
        step = min(top_len // cfg.lanes * cfg.lanes or top_len, third * cfg.lanes)
        return [(min(step, total - s), 1) for s in range(0, total, step)]
    if length > top_len or not fits(length, 1):
        raise AssertionError(f"vector {op.name} rows of {length} elements: partition sends them to the GPU")
    rows = 1
    while rows * 2 <= min(count, top_cnt) and fits(length, rows * 2):
        rows *= 2
    return [(length, min(rows, count - s)) for s in range(0, count, rows)]


# --------------------------------------------------------------------------------------------------------------------


class _Generator:
    def __init__(self, workload: Workload, device: DeviceConfig, part: Partition, placement: Placement) -> None:
        self.w, self.device, self.part, self.pl = workload, device, part, placement
        self.devices = len(placement.devices)
        self.sites: list[OpSite] = []
        base = 0
        self.devs: list[_Device] = []
        for d in range(self.devices):
            dv = _Device(self, d, base)
            base += len(dv.names)
            self.devs.append(dv)
        self.act_bytes = workload.precision.act_bits / 8
        self.next_id = 0                                   # marker ids: operators and epoch boundaries
        self.boundaries: dict[int, dict[str, Any]] = {}

    # ---- the whole program -----------------------------------------------------------------------------------------
    def run(self, progress: Callable[[int, int], None] | None = None) -> Program:
        w = self.w
        if self.pl.parallel == "tensor":
            steps = [(s, l, op, list(range(self.devices))) for s, l, op in self._order()]
        else:
            owner = {l: dp.index for dp in self.pl.devices for l in dp.layers}
            steps = []
            for s, l, op in self._order():
                d = owner[l] if l is not None else (0 if s == "prologue" else self.devices - 1)
                steps.append((s, l, op, [d]))
        prev_dev = 0
        started: set[tuple[str, Union[int, None]]] = set()
        for s, l, op, ds in steps:
            if self.pl.parallel == "pipeline" and ds[0] != prev_dev:
                self._hand_over(prev_dev, ds[0])
                prev_dev = ds[0]
            if s != "prologue" and (s, l) not in started:
                started.add((s, l))
                self._boundary(ds, s, l)
            for d in ds:
                self._emit(d, s, l, op)
            if progress is not None and s == "layer" and op is w.blocks[w.layers[l]][-1]:
                progress(1, len(w.layers))
        for dv in self.devs:
            dv.vector_receive()
        streams = [s for dv in self.devs for s in dv.build()]
        prog = Program(streams, self.device.name, self.devices)
        for dv, dp in zip(self.devs, self.pl.devices):
            pre = f"d{dv.index}:" if self.devices > 1 else ""
            prog.placement.update({pre + k: v for k, v in dp.boxes(self.device).items()})
        prog.operators = {s.id: {"name": s.name, "kind": s.kind, "layer": s.layer, "unit": s.unit,
                                 "device": s.device} for s in self.sites}
        prog.operators.update(self.boundaries)
        return prog

    def _boundary(self, ds: list[int], section: str, layer: Union[int, None]) -> None:
        """An epoch boundary (a MARK of kind ``layer`` in every stream of the devices: the system engine's epoch
        jump, :class:`accel.emulator.system.SystemEngine`), then the layer's parameter reads."""
        ident = self.next_id
        self.next_id += 1
        name = f"layer {layer}" if section == "layer" else "epilogue"
        self.boundaries[ident] = {"name": name, "kind": "layer", "layer": layer, "unit": "-",
                                  "device": ds[0] if len(ds) == 1 else -1}
        for d in ds:
            dv = self.devs[d]
            dv.mark_all(ident, [n.rsplit(".", 1)[-1] for n in dv.names])
            if section == "layer":
                self._layer_params(d, layer)

    def _order(self) -> Iterable[tuple[str, Union[int, None], Operator]]:
        w = self.w
        for op in w.prologue:
            yield "prologue", None, op
        for l, b in enumerate(w.layers):
            for op in w.blocks[b]:
                yield "layer", l, op
        for op in w.epilogue:
            yield "epilogue", None, op

    def _site(self, d: int, section: str, layer: Union[int, None], op: Operator, unit: str) -> OpSite:
        name = op.name if layer is None else f"{layer}.{op.name}"
        block = self.w.layers[layer] if layer is not None else None
        site = OpSite(self.next_id, op_key(section, block, op.name), name, op.kind_name, section, layer, d, unit,
                      op)
        self.next_id += 1
        self.sites.append(site)
        return site

    # ---- per operator ----------------------------------------------------------------------------------------------
    def _emit(self, d: int, section: str, layer: Union[int, None], op: Operator) -> None:
        block = self.w.layers[layer] if layer is not None else None
        dec = self.part[op_key(section, block, op.name)]
        site = self._site(d, section, layer, op, dec.unit)
        dv = self.devs[d]
        dp = self.pl.devices[d]
        if isinstance(op, Gemm) and dec.unit == "pim":
            self._gemm_pim(dv, site, op, dp.regions[self.w.tensor_name(op.weight, layer)])
        elif isinstance(op, Gemm):
            self._gemm_array(dv, site, op, dp.regions[self.w.tensor_name(op.weight, layer)])
        elif isinstance(op, AttentionMatmul) and dec.unit == "pim":
            self._attention_pim(dv, site, op, dp.kv[layer])
        elif isinstance(op, AttentionMatmul):
            if op.kind == "attn_score":
                self._attend_array(dv, site, op)
            else:
                dv.mark_all(site.id, ["array"])
        elif isinstance(op, Vector) and dec.unit == "vector":
            self._vector(dv, site, op)
        elif isinstance(op, Vector) and dec.unit == "array":
            dv.mark_all(site.id, ["array"])   # inside the array's ATTEND
        elif isinstance(op, Vector):
            self._fallback(dv, site, op)
        elif isinstance(op, KvWrite):
            self._kv_write(dv, site, op, dp.kv[layer])
        elif isinstance(op, Lookup):
            self._lookup(dv, site, op)
        if self.pl.parallel == "tensor" and self.devices > 1 and _gathered(section, op):
            self._all_gather(site, op)

    def _pim_streams(self) -> list[str]:
        return [f"pim{c}" for c in range(self.device.pim.channels)]

    def _broadcast_input(self, dv: _Device, site: OpSite, nbytes: int, rows: int, length: int) -> bool:
        """Requantise the vector unit's latest result and broadcast it into every channel's global buffer, unless
        it is there already (GEMVs that share their input); True if it was sent."""
        if dv.broadcast == dv.value:
            return False
        site.counts["vector_cycles"] = site.counts.get("vector_cycles", 0) + dv.vec(VectorOp.QUANT, length, rows)
        dv.broadcast = dv.value
        dv.vector_to_link()
        site.counts["link_bytes"] = site.counts.get("link_bytes", 0) + dv.xfer("vector", "all", nbytes)
        dv.link_to_channels()
        return True

    def _record_parts(self, site: OpSite, parts: list[sch.ChannelPart]) -> None:
        counts = [p.counts for p in {id(p): p for p in parts if not p.empty}.values()]
        if counts:
            best = max(counts, key=lambda c: (c["mac_columns"], c["act"], c["rd_columns"] + c["wr_columns"]))
            for k, v in best.items():
                site.counts[k] = site.counts.get(k, 0) + v

    def _gemm_pim(self, dv: _Device, site: OpSite, op: Gemm, region: Any) -> None:
        dv.mark_all(site.id, self._pim_streams() + ["vector", "link"])
        parts = sch.weight_gemv(self.device, region, op.weights, op.m)
        data = max(p.data_bytes for p in parts)
        # the first row's activation before the wait: it overlaps the previous operator's tail
        dv.vector_receive()
        sent = self._broadcast_input(dv, site, data, op.m, op.k)
        dv.channel_parts(parts, wait_link=sent)
        self._record_parts(site, parts)
        site.counts["link_bytes"] = site.counts.get("link_bytes", 0) + dv.readouts(parts)
        dv.link_to_vector()
        dv.vector_receive()
        # the lanes' partial sums (and, with several inputs, the K chunks' of every activated row), then the bias
        p = self.device.pim
        chunks = -(-(-(-region.k // p.weights_per_column(region.code_bits))) // min(p.gb_columns, p.columns)) \
            if op.m > 1 else 1
        rows = self.device.bank.mac_registers * chunks
        cyc = dv.vec(VectorOp.REDUCE, region.m * op.m, rows)
        if op.bias is not None:
            cyc += dv.vec(VectorOp.ADD, region.m, op.m)
        site.counts["vector_cycles"] = site.counts.get("vector_cycles", 0) + cyc

    def _gemm_array(self, dv: _Device, site: OpSite, op: Gemm, region: Any) -> None:
        dv.mark_all(site.id, self._pim_streams() + ["vector", "link", "array"])
        parts = sch.matrix_read(self.device, region)
        dv.channel_parts(parts, wait_link=False)
        self._record_parts(site, parts)
        nbytes = dv.readouts(parts, "array")
        dv.vector_receive()
        site.counts["vector_cycles"] = dv.vec(VectorOp.QUANT, op.k, op.m)
        dv.vector_to_link()
        nbytes += dv.xfer("vector", "array", int(op.act_in_bytes))
        dv.link.append(_sync(SyncOp.SIGNAL, token=TOKENS["link_to_array"]))
        dv.array.append(dv.wait("link", TOKENS["link_to_array"]))
        site.counts["array_cycles"] = self._array_cmds(dv, AttnOp.GEMM, op.m, op.k, region.m, 0, 1, 0)
        dv.array.append(_sync(SyncOp.SIGNAL, token=TOKENS["array_ready"]))
        dv.link.append(dv.wait("array", TOKENS["array_ready"]))
        nbytes += dv.xfer("array", "vector", int(op.m * region.m * self.act_bytes))
        dv.link_to_vector()
        site.counts["link_bytes"] = nbytes
        if op.bias is not None:
            dv.vector_receive()
            site.counts["vector_cycles"] += dv.vec(VectorOp.ADD, region.m, op.m)

    def _array_cmds(self, dv: _Device, op: AttnOp, m: int, k: int, n: int, causal: int, count: int,
                    dataflow: int) -> int:
        """ATTN commands for an op, split where a field is too narrow; returns the array's cycles."""
        from accel.emulator.system import array_cycles

        top = {f: (1 << _ATTN.width(f)) - 1 for f in ("m", "k", "n", "count")}
        cyc = 0
        for m0 in range(0, m, top["m"]):
            mm = min(top["m"], m - m0)
            for n0 in range(0, n, top["n"]):
                nn = min(top["n"], n - n0)
                for c0 in range(0, count, top["count"]):
                    cc = min(top["count"], count - c0)
                    dv.array.append(encode(Family.ATTN, op, m=mm, k=min(k, top["k"]), n=nn, causal=causal,
                                           count=cc, dataflow=dataflow))
                    cyc += array_cycles(op, mm, min(k, top["k"]), nn, dataflow, cc, self.device.attention)
        return cyc

    def _attend_array(self, dv: _Device, site: OpSite, op: AttentionMatmul) -> None:
        """Score, softmax and context on the array (ATTEND); Q, K, V over the link from the vector unit."""
        dv.mark_all(site.id, ["vector", "link", "array"])
        dv.vector_receive()
        qkv = op.batch * (op.heads + 2 * op.kv_heads) * op.queries * op.head_dim
        site.counts["vector_cycles"] = dv.vec(VectorOp.QUANT, qkv, 1)
        dv.vector_to_link()
        nbytes = dv.xfer("vector", "array", int(qkv * self.act_bytes))
        dv.link.append(_sync(SyncOp.SIGNAL, token=TOKENS["link_to_array"]))
        dv.array.append(dv.wait("link", TOKENS["link_to_array"]))
        site.counts["array_cycles"] = self._array_cmds(dv, AttnOp.ATTEND, op.queries, op.head_dim, op.kv_len,
                                                       int(op.causal), op.batch * op.heads, 0)
        dv.array.append(_sync(SyncOp.SIGNAL, token=TOKENS["array_ready"]))
        dv.link.append(dv.wait("array", TOKENS["array_ready"]))
        nbytes += dv.xfer("array", "vector", int(op.batch * op.heads * op.queries * op.head_dim * self.act_bytes))
        dv.link_to_vector()
        site.counts["link_bytes"] = nbytes

    def _attention_pim(self, dv: _Device, site: OpSite, op: AttentionMatmul, kv: Any) -> None:
        """Score or context as GEMVs over the KV cache (:func:`mapping.schedule.kv_score` / ``kv_context``)."""
        dv.mark_all(site.id, self._pim_streams() + ["vector", "link"])
        inputs = (op.heads // op.kv_heads) * op.queries
        score = op.kind == "attn_score"
        parts = (sch.kv_score if score else sch.kv_context)(self.device, kv, inputs)
        dv.vector_receive()
        heads_here = kv.kv_heads * (op.heads // op.kv_heads)
        length = kv.sequences * heads_here * op.queries * (op.head_dim if score else op.kv_len)
        site.counts["vector_cycles"] = dv.vec(VectorOp.QUANT, length, 1)
        dv.vector_to_link()
        nbytes = sum(dv.xfer("vector", f"pim{c}", p.data_bytes) for c, p in enumerate(parts))
        dv.link_to_channels()
        dv.channel_parts(parts, wait_link=True)
        self._record_parts(site, parts)
        nbytes += dv.readouts(parts)
        dv.link_to_vector()
        site.counts["link_bytes"] = nbytes
        if not score:   # the value units' lanes hold partial sums over the tokens
            dv.vector_receive()
            site.counts["vector_cycles"] += dv.vec(VectorOp.REDUCE, kv.sequences * heads_here * op.queries *
                                                   op.head_dim, self.device.bank.mac_registers)

    def _kv_write(self, dv: _Device, site: OpSite, op: KvWrite, kv: Any) -> None:
        dv.mark_all(site.id, self._pim_streams() + ["vector", "link"])
        tokens = range(kv.context - op.tokens, kv.context)
        parts = sch.kv_write(self.device, kv, tokens)
        dv.vector_receive()
        site.counts["vector_cycles"] = dv.vec(VectorOp.QUANT, kv.sequences * kv.kv_heads * 2 * op.tokens *
                                              op.head_dim, 1)
        dv.vector_to_link()
        site.counts["link_bytes"] = sum(dv.xfer("vector", f"pim{c}", p.data_bytes) for c, p in enumerate(parts))
        dv.link_to_channels()
        dv.channel_parts(parts, wait_link=True)
        self._record_parts(site, parts)

    def _lookup(self, dv: _Device, site: OpSite, op: Lookup) -> None:
        """The host sends the looked-up rows over the link (it holds the token ids and the tables)."""
        dv.mark_all(site.id, ["vector", "link"])
        site.counts["link_bytes"] = dv.xfer("host", "vector", int(op.act_out_bytes))
        dv.link_to_vector()

    def _layer_params(self, d: int, layer: int) -> None:
        """Every channel reads its share of the layer's parameter vectors; the link carries them to the vector."""
        dv, dp = self.devs[d], self.pl.devices[d]
        region = dp.regions.get(f"params.{layer}")
        if region is None:
            return
        parts = sch.param_read(self.device, region)
        dv.channel_parts(parts, wait_link=False)
        dv.readouts(parts)
        dv.link_to_vector()

    def _vector(self, dv: _Device, site: OpSite, op: Vector) -> None:
        dv.mark_all(site.id, ["vector"])
        dv.vector_receive()
        cyc = 0
        for v in VECTOR_OPS[op.kind]:
            if op.kind == "moe_combine":
                rows = op.rows * op.inputs if v == VectorOp.MUL else op.inputs
                length = op.width if v == VectorOp.MUL else op.width * op.rows
                cyc += dv.vec(v, length, rows)
            else:
                cyc += dv.vec(v, op.width, op.rows, op.out_width if v == VectorOp.TOPK else 0)
        site.counts["vector_cycles"] = cyc

    def _fallback(self, dv: _Device, site: OpSite, op: Vector) -> None:
        """An operator no unit runs: its input to the host's GPU over the link and its result back (the GPU's time
        is the report's, from its roofline)."""
        dv.mark_all(site.id, ["vector", "link"])
        dv.vector_receive()
        dv.vector_to_link()
        n = dv.xfer("vector", "host", int(op.act_in_bytes))
        n += dv.xfer("host", "vector", int(op.act_out_bytes))
        dv.link_to_vector()
        dv.value += 1
        site.counts["link_bytes"] = n

    # ---- several devices -------------------------------------------------------------------------------------------
    def _send(self, src: _Device, dsts: list[int], nbytes: int) -> int:
        """Device ``src``'s vector unit sends its latest result to ``dsts`` over its interconnect port."""
        src.vector_receive()
        src.vector.append(_sync(SyncOp.SIGNAL, token=TOKENS["vector_to_net"]))
        src.net.append(src.wait("vector", TOKENS["vector_to_net"]))
        for d in dsts:
            src.net.append(encode(Family.LINK, LinkOp.XFER, src=int(Endpoint.VECTOR), dst=int(Endpoint.DEVICE) + d,
                                  bytes=max(1, int(nbytes))))
        src.net.append(_sync(SyncOp.SIGNAL, token=TOKENS["net_arrived"]))
        return int(nbytes) * len(dsts)

    def _receive(self, dst: _Device, src: int) -> None:
        dst.vector.append(_sync(SyncOp.WAIT, stream=self.devs[src].idx["net"], token=TOKENS["net_arrived"]))
        dst.value += 1

    def _hand_over(self, a: int, b: int) -> None:
        """Pipeline parallel: device ``a``'s last result (the residual stream) goes to device ``b``."""
        n = int(self.w.batch * self.w.tokens * _hidden(self.w) * self.act_bytes)
        self._send(self.devs[a], [b], n)
        self._receive(self.devs[b], a)
        self.sites[-1].counts["net_bytes"] = self.sites[-1].counts.get("net_bytes", 0) + n

    def _all_gather(self, site: OpSite, op: Operator) -> None:
        """Tensor parallel: every device sends its slice of the result to every other device."""
        rows = op.m if isinstance(op, Gemm) else op.batch * op.queries
        width = op.n if isinstance(op, Gemm) else op.heads * op.head_dim
        n = int(rows * -(-width // self.devices) * self.act_bytes)
        others = list(range(self.devices))
        for dv in self.devs:
            site.counts["net_bytes"] = site.counts.get("net_bytes", 0) + \
                self._send(dv, [e for e in others if e != dv.index], n)
        for dv in self.devs:
            for e in others:
                if e != dv.index:
                    self._receive(dv, e)


def _gathered(section: str, op: Operator) -> bool:
    """Tensor parallel: results every device needs whole (each computes a slice): every GEMV's but the LM head's
    (its logits stay split) and the attention context (each device holds some heads)."""
    if isinstance(op, Gemm):
        return section != "epilogue"
    return isinstance(op, AttentionMatmul) and op.kind == "attn_context"


def _hidden(w: Workload) -> int:
    """Width of the residual stream entering a layer (what pipeline stages hand over)."""
    op = w.blocks[w.layers[0]][0]
    return op.width if isinstance(op, Vector) else op.k if isinstance(op, Gemm) else 1


def generate(workload: Workload, device: DeviceConfig, part: Partition, placement: Placement,
             progress: Callable[[int, int], None] | None = None) -> tuple[Program, list[OpSite]]:
    """The program of a mapped workload and its operator instances (module docstring). ``progress(1, layers)`` is
    called after every layer."""
    gen = _Generator(workload, device, part, placement)
    prog = gen.run(progress)
    prog.meta = {"model": workload.model, "phase": workload.phase, "batch": workload.batch, "tokens": workload.tokens,
                 "context": workload.context, "weights": workload.precision.weights.name,
                 "parallel": placement.parallel}
    return prog, gen.sites
