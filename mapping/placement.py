"""Placement: where every matrix, KV-cache entry and parameter vector of a mapped model lives in the DRAM banks.

Every region occupies the same DRAM rows in all banks of every channel it uses (an all-bank ACT opens the same row in
each bank), so one row allocator per device serves them all, from row 0 up:

* **weight matrices and tables** (``rows`` layout of :mod:`mapping.gemv`): output rows split over the channels
  (``ceil(M / channels)`` each), one row per bank per block, K along the columns packed at the weights' width, in
  the DRAM rows :func:`~accel.mapping.gemv.gemv_shape` gives per block. Mixture-of-experts experts are each spread over all channels the same way, so whichever experts
  the router picks load every channel equally (no imbalance to pay).
* **the KV cache**, per layer: keys in layout ``lanes`` (a unit of :func:`~accel.mapping.gemv.lane_unit` tokens of
  one sequence and KV head, the head dimensions along the columns: the score is a GEMV whose outputs are the
  tokens), values transposed in
  layout ``rows`` (a unit of ``banks`` head dimensions holds the tokens along its columns: the context is a GEMV over
  the tokens). Each head's units sit on its own channels (:class:`KvLayout`); the cache grows with the context (more
  key units, longer value rows).
* **parameter vectors** (biases, norm gains), per layer: spread over all channels, read by column reads into the
  vector unit.

Capacity is checked up front: a model that does not fit says by how much and the smallest ``--devices`` that fits.
With several devices (``--devices N``) a placement is made per device: pipeline parallel gives each device a
contiguous range of layers (the first also the prologue, the last the epilogue), tensor parallel gives every device ``1/N`` of every matrix's output rows and of the KV heads.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from accel.config import DeviceConfig
from accel.fmt import size

from .gemv import gemv_shape, lane_unit
from .partition import MappingError, kv_datatype
from .workload import LAYER, AttentionMatmul, Gemm, Lookup, Workload

__all__ = ["Region", "KvLayout", "DevicePlacement", "Placement", "place", "PARALLEL"]

#: Ways of splitting a model over several devices.
PARALLEL = ("pipeline", "tensor")
#: The most devices the capacity check tries when it looks for the smallest count that fits.
_MAX_DEVICES = 64


@dataclass(frozen=True)
class Region:
    """A matrix (or a parameter block) in the banks: DRAM rows ``row0 .. row0 + rows - 1`` of every bank of channels
    ``0 .. channels - 1``.

    Members
    -------
    name:
        Tensor name (expanded) or ``kv.L.k`` / ``kv.L.v`` / ``params.L``.
    kind:
        ``weight`` (a GEMV's matrix or a table), ``kv_k``, ``kv_v`` or ``params``.
    m, k:
        Output rows and reduction length held on this device (``m`` the slice for tensor parallel).
    layout:
        :mod:`mapping.gemv` layout.
    code_bits:
        Bits of one stored code (weights: the format's; KV entries 8).
    channels:
        Channels it spans.
    row0, rows:
        First DRAM row and rows per bank.
    bytes:
        Bytes of its data (codes, or parameter bytes).
    """

    name: str
    kind: str
    m: int
    k: int
    layout: str
    code_bits: float
    channels: int
    row0: int
    rows: int
    bytes: float


@dataclass(frozen=True)
class KvLayout:
    """The KV cache of one layer on one device (module docstring).

    Key unit ``(sh, b)`` (``sh`` = sequence x KV head held here, ``b`` a block of ``tokens_per_unit`` tokens) and
    value unit ``(sh, d)`` (``d`` a block of ``banks`` head dimensions) sit on channel ``(sh * span + i % span) mod
    channels`` (``i`` = ``b`` or ``d``), where ``span = max(1, channels // (sequences x KV heads))``: each head's units
    on its own ``span`` channels, so that a channel's share of every layer is the same shape (and the channel
    streams stay equal) while the heads' work is spread over the channels. ``k_at[u]`` / ``v_at[u]`` give
    ``(channel, first DRAM row)`` of unit ``u`` (``u = sh * blocks + b``, ``sh * v_per_head + d``)."""

    sequences: int
    kv_heads: int
    head_dim: int
    context: int
    tokens_per_unit: int
    blocks: int
    v_per_head: int
    span: int
    k_rows: int
    v_rows: int
    k_at: tuple[tuple[int, int], ...]
    v_at: tuple[tuple[int, int], ...]
    k: Region
    v: Region

    @property
    def k_units(self) -> int:
        return len(self.k_at)

    @property
    def v_units(self) -> int:
        return len(self.v_at)


def _unit_slots(units: int, per_head: int, span: int, nch: int) -> tuple[list[int], list[int]]:
    """Channel and slot (position among the channel's units) of each unit, head by head (module docstring)."""
    chans, slots, used = [], [], [0] * nch
    for u in range(units):
        sh, i = divmod(u, per_head)
        c = (sh * span + i % span) % nch
        chans.append(c)
        slots.append(used[c])
        used[c] += 1
    return chans, slots


@dataclass
class DevicePlacement:
    """What one device holds: ``regions`` by name, ``layers`` it runs, the KV layout per layer, rows used."""

    index: int
    layers: tuple[int, ...]
    prologue: bool
    epilogue: bool
    regions: dict[str, Region] = field(default_factory=dict)
    kv: dict[int, KvLayout] = field(default_factory=dict)
    rows_used: int = 0
    row_limit: int = 0
    heads: tuple[int, int] = (0, 0)          # KV heads [lo, hi) held here (tensor parallel)
    slice_of: int = 1                        # tensor parallel: devices sharing each matrix

    def add(self, name: str, kind: str, m: int, k: int, layout: str, code_bits: float, channels: int, rows: int,
            nbytes: float) -> Region:
        r = Region(name, kind, m, k, layout, code_bits, channels, self.rows_used, rows, nbytes)
        self.regions[name] = r
        self.rows_used += rows
        return r

    def boxes(self, device: DeviceConfig) -> dict[str, list[list[int]]]:
        """``Program.placement``: per region, ``[channel, bank, row_lo, row_hi, col_lo, col_hi]`` boxes (rows and
        columns exclusive at the top)."""
        p = device.pim
        out = {}
        grids: dict[tuple[int, int], np.ndarray] = {}   # (channels, banks) -> every (channel, bank) pair
        for r in self.regions.values():
            nb = 1 if r.kind == "params" else p.banks
            if (r.channels, nb) not in grids:
                cb = np.array([(c, b) for c in range(r.channels) for b in range(nb)], dtype=np.int64)
                grids[(r.channels, nb)] = np.concatenate([cb, np.zeros((len(cb), 4), dtype=np.int64)], axis=1)
            box = grids[(r.channels, nb)].copy()
            box[:, 2:] = (r.row0, r.row0 + r.rows, 0, p.columns)
            out[r.name] = box.tolist()
        return out

    def to_json(self, device: DeviceConfig) -> dict[str, Any]:
        p = device.pim
        kinds: dict[str, float] = {}
        for r in self.regions.values():
            kinds[r.kind] = kinds.get(r.kind, 0) + r.bytes
        return {"device": self.index, "layers": [min(self.layers), max(self.layers)] if self.layers else [],
                "prologue": self.prologue, "epilogue": self.epilogue, "rows_used": self.rows_used,
                "rows": p.rows, "row_fraction": self.rows_used / p.rows,
                "bank_bytes_used": self.rows_used * p.row_bytes * p.banks * p.channels, "data_bytes": kinds,
                "regions": len(self.regions)}


@dataclass
class Placement:
    """A placement per device (module docstring)."""

    devices: list[DevicePlacement]
    parallel: str
    notes: list[str] = field(default_factory=list)

    def to_json(self, device: DeviceConfig) -> dict[str, Any]:
        return {"parallel": self.parallel, "devices": [d.to_json(device) for d in self.devices],
                "notes": self.notes}


# --------------------------------------------------------------------------------------------------------------------


def _layer_prefix(workload: Workload) -> Union[str, None]:
    for ops in workload.blocks:
        for op in ops:
            for t in op.tensors():
                if LAYER in t:
                    return t.split(LAYER)[0]
    return None


def _matrices(workload: Workload) -> dict[str, tuple[int, int, float]]:
    """Every 2-D tensor the banks hold as ``name -> (output rows M, reduction K, code bits)``: the GEMVs' weights as
    they read them, tensors no operator reads (experts not chosen) as ``torch.nn.Linear`` (out x in). Tables only
    looked up stay with the host (:mod:`.partition`)."""
    out: dict[str, tuple[int, int, float]] = {}
    lookups = set()
    for pl in workload.operators():
        op = pl.op
        if isinstance(op, Gemm):
            out[workload.tensor_name(op.weight, pl.layer)] = (op.n, op.k, op.weights.code_bits)
        elif isinstance(op, Lookup):
            lookups.add(op.table)
    bits = workload.precision.weights.code_bits
    for t in workload.tensors:
        if len(t.shape) == 2 and t.name not in out and t.name not in lookups:
            out[t.name] = (t.shape[0], t.shape[1], bits)
    return out


def _owner(name: str, prefix: Union[str, None]) -> Union[int, None]:
    """The layer a tensor belongs to (None: prologue/epilogue)."""
    if prefix is None or not name.startswith(prefix):
        return None
    head = name[len(prefix):].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _edge_tensors(workload: Workload, section: tuple) -> set[str]:
    return {workload.tensor_name(t, None) for op in section for t in op.tensors()}


def _attention(workload: Workload) -> Union[AttentionMatmul, None]:
    for ops in workload.blocks:
        for op in ops:
            if isinstance(op, AttentionMatmul):
                return op
    return None


def _kv_layout(dp: DevicePlacement, device: DeviceConfig, layer: int, att: AttentionMatmul, kvh: int) -> KvLayout:
    p = device.pim
    nch = p.channels
    seqs, d, ctx = att.batch, att.head_dim, att.kv_len
    per, k_rows = lane_unit(device, d)   # keys per unit (layout 'lanes') and their DRAM rows
    blocks, vph = -(-ctx // per), -(-d // p.banks)
    span = max(1, nch // max(1, seqs * kvh))
    kc, ks = _unit_slots(seqs * kvh * blocks, blocks, span, nch)
    vc, vs = _unit_slots(seqs * kvh * vph, vph, span, nch)
    _, v_rows, _ = gemv_shape(device, p.banks, ctx, "rows")
    kv_bytes = seqs * kvh * ctx * d * att.kv_bits / 8
    k = dp.add(f"kv.{layer}.k", "kv_k", seqs * kvh * ctx, d, "lanes", 8, nch, (max(ks, default=-1) + 1) * k_rows,
               kv_bytes)
    v = dp.add(f"kv.{layer}.v", "kv_v", seqs * kvh * d, ctx, "rows", 8, nch, (max(vs, default=-1) + 1) * v_rows,
               kv_bytes)
    return KvLayout(seqs, kvh, d, ctx, per, blocks, vph, span, k_rows, v_rows,
                    tuple((c, k.row0 + sl * k_rows) for c, sl in zip(kc, ks)),
                    tuple((c, v.row0 + sl * v_rows) for c, sl in zip(vc, vs)), k, v)


def _place_device(workload: Workload, device: DeviceConfig, index: int, layers: tuple[int, ...], prologue: bool,
                  epilogue: bool, slices: int, heads: tuple[int, int]) -> DevicePlacement:
    p = device.pim
    nch = p.channels
    dp = DevicePlacement(index, layers, prologue, epilogue, row_limit=p.rows, heads=heads, slice_of=slices)
    prefix = _layer_prefix(workload)
    mats = _matrices(workload)
    edge = (_edge_tensors(workload, workload.prologue) if prologue else set()) | \
        (_edge_tensors(workload, workload.epilogue) if epilogue else set())
    keep = set(layers)
    att = _attention(workload)
    if att is not None:
        kv_datatype(device, att.kv_bits)
    params: dict[Union[int, None], float] = {}
    pbits = workload.precision.param_bits
    for t in workload.tensors:
        owner = _owner(t.name, prefix)
        if (owner is None and t.name not in edge) or (owner is not None and owner not in keep):
            continue
        if len(t.shape) != 2:
            params[owner] = params.get(owner, 0.0) + t.elements * pbits / 8
            continue
        if t.name not in mats:   # a table only looked up: the host's
            continue
        m, k, bits = mats[t.name]
        m = -(-m // slices)
        _, rpb, blocks = gemv_shape(device, -(-m // nch), k, "rows", bits)
        dp.add(t.name, "weight", m, k, "rows", bits, nch, rpb * blocks, m * k * bits / 8)
    for owner, nbytes in params.items():
        cols = -(-math.ceil(nbytes / nch) // p.column_bytes)
        dp.add(f"params.{'edge' if owner is None else owner}", "params", 0, 0, "rows", 0, nch, -(-cols // p.columns),
               nbytes)
    if att is not None:
        for layer in layers:
            dp.kv[layer] = _kv_layout(dp, device, layer, att, heads[1] - heads[0])
    return dp


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    base, extra = divmod(n, parts)
    out, lo = [], 0
    for i in range(parts):
        hi = lo + base + (1 if i < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _plan(workload: Workload, device: DeviceConfig, devices: int, parallel: str) -> list[DevicePlacement]:
    n = len(workload.layers)
    att = _attention(workload)
    kvh = att.kv_heads if att is not None else 1
    if parallel == "pipeline":
        if devices > max(1, n):
            raise MappingError(f"--devices {devices}: pipeline parallel gives each device at least one of the "
                               f"{n} layers; use at most {n} devices or --parallel tensor")
        return [_place_device(workload, device, d, tuple(range(lo, hi)), d == 0, d == devices - 1, 1, (0, kvh))
                for d, (lo, hi) in enumerate(_split(n, devices))]
    # the KV heads split over the devices as evenly as they go (with more devices than heads, some hold none)
    return [_place_device(workload, device, d, tuple(range(n)), True, True, devices, heads)
            for d, heads in enumerate(_split(kvh, devices))]


def _fits(dps: list[DevicePlacement]) -> bool:
    return all(d.rows_used <= d.row_limit for d in dps)


def place(workload: Workload, device: DeviceConfig, devices: int = 1, parallel: str = "pipeline") -> Placement:
    """Place ``workload`` on ``devices`` identical devices (module docstring). Raises :class:`MappingError` when it
    does not fit, with the shortfall and the smallest device count that fits."""
    if parallel not in PARALLEL:
        raise MappingError(f"--parallel {parallel!r}: must be one of {', '.join(PARALLEL)}")
    if devices < 1:
        raise MappingError(f"--devices {devices}: must be at least 1")
    _check_kv_bound(workload, device, devices)
    dps = _plan(workload, device, devices, parallel)
    if not _fits(dps):
        p = device.pim
        worst = max(dps, key=lambda d: d.rows_used)
        need = worst.rows_used * p.row_bytes * p.banks * p.channels
        have = p.rows * p.row_bytes * p.banks * p.channels
        kv = sum(r.rows for r in worst.regions.values() if r.kind.startswith("kv"))
        smallest = _smallest(workload, device, parallel, devices)
        fix = (f"the smallest --devices that fits is {smallest}" if smallest else
               f"no device count fits with --parallel {parallel}")
        if kv and worst.rows_used - kv <= p.rows:   # the weights fit: the KV cache is what does not
            top = _max_context(workload, device, worst, p.rows - (worst.rows_used - kv))
            fix = (f"the KV cache fits up to context {top} (--context {top})" if top else
                   "no KV cache fits beside the weights") + f", or {fix}"
        ctx = (f", {size(kv * p.row_bytes * p.banks * p.channels)} of it the KV cache at context "
               f"{workload.context}" if kv else "")
        raise MappingError(f"{workload.model} does not fit {devices} {device.name} device{'s' if devices > 1 else ''}"
                           f": device {worst.index} needs {worst.rows_used} DRAM rows per bank "
                           f"({size(need)} of bank space{ctx}) and has {p.rows} ({size(have)}), "
                           f"{size(need - have)} short; {fix}")
    pl = Placement(dps, parallel)
    if any(isinstance(op, Gemm) and op.expert is not None for ops in workload.blocks for op in ops):
        pl.notes.append("every expert is spread over all channels: any choice of experts loads every channel "
                        "equally (no imbalance)")
    return pl


def _kv_cache_bytes(workload: Workload) -> float:
    """Bytes of the KV cache of every layer (keys and values) at the workload's context: a lower bound of what it
    takes in the banks, known before any placement is built."""
    att = _attention(workload)
    if att is None:
        return 0.0
    return 2 * att.batch * att.kv_heads * att.kv_len * att.head_dim * att.kv_bits / 8 * len(workload.layers)


def _check_kv_bound(workload: Workload, device: DeviceConfig, devices: int) -> None:
    """Refuse at once a KV cache that no device count up to ``_MAX_DEVICES`` holds (a batch or context far too
    large), before a placement of millions of slots is built to find that out."""
    p = device.pim
    have = p.rows * p.row_bytes * p.banks * p.channels
    kv = _kv_cache_bytes(workload)
    if kv > have * max(devices, _MAX_DEVICES):
        att = _attention(workload)
        raise MappingError(f"{workload.model} does not fit {devices} {device.name} device{'s' if devices > 1 else ''}"
                           f": its KV cache alone is {size(kv)} (batch {att.batch}, context {att.kv_len}) and a "
                           f"device has {size(have)} of bank space, so no count up to {_MAX_DEVICES} devices holds it; "
                           f"use a smaller --batch or --context")


def _max_context(workload: Workload, device: DeviceConfig, dp: DevicePlacement, rows: int) -> int:
    """The largest context whose KV cache (every layer of ``dp``) fits ``rows`` DRAM rows per bank (0: none)."""
    att = _attention(workload)
    kvh = dp.heads[1] - dp.heads[0]

    def need(ctx: int) -> int:
        probe = DevicePlacement(dp.index, (), False, False)
        lay = _kv_layout(probe, device, 0, dataclasses.replace(att, kv_len=ctx, queries=min(att.queries, ctx)), kvh)
        return (lay.k.rows + lay.v.rows) * len(dp.layers)

    lo, hi = 0, workload.context
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if need(mid) <= rows:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _smallest(workload: Workload, device: DeviceConfig, parallel: str, start: int) -> int:
    """The smallest device count above ``start`` whose placement fits (0: none does)."""
    top = len(workload.layers) if parallel == "pipeline" else _MAX_DEVICES
    for d in range(start + 1, max(top, 1) + 1):
        if _fits(_plan(workload, device, d, parallel)):
            return d
    return 0
