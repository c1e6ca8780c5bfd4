"""Placement: where every matrix, KV-cache entry and parameter vector of a mapped model lives in the DRAM banks.

Every region occupies the same DRAM rows in all banks of every channel it uses (an all-bank ACT opens the same row in
each bank), so one row allocator per device serves them all, from row 0 up:

* **weight matrices and tables** (``rows`` layout of :mod:`mapping.gemv`): output rows split over the channels
  (``ceil(M / channels)`` each), one row per bank per block, K along the columns
  (:meth:`accel.config.PimConfig.weights_per_column` weights per column) and over ``ceil(columns / columns per row)``
  DRAM rows per block. Mixture-of-experts experts are each spread over all channels the same way, so whichever experts
  the router picks load every channel equally (no imbalance to pay).
* **the KV cache**, per layer: keys in layout ``lanes`` (a unit of ``banks x lanes`` tokens of one sequence and KV
  head holds one head dimension per column: the score is a GEMV whose outputs are the tokens), values transposed in
  layout ``rows`` (a unit of ``banks`` head dimensions holds the tokens along its columns: the context is a GEMV over
  the tokens). Unit ``u`` of a layer sits in channel ``u mod channels`` at slot ``u // channels``; it grows with the
  context (more key units, longer value rows).
* **parameter vectors** (biases, norm gains), per layer: spread over all channels, read by column reads into the
  vector unit.

Capacity is checked up front: a model that does not fit says by how much and the smallest ``--devices`` that fits.
With several devices (``--devices N``) a placement is made per device: pipeline parallel gives each device a
contiguous range of layers (the first also the prologue, the last the epilogue; a tied embedding table is held by
both), tensor parallel gives every device ``1/N`` of every matrix's output rows and of the KV heads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from accel.config import DeviceConfig

from .gemv import gemv_shape
from .partition import MappingError, kv_datatype
from .workload import LAYER, AttentionMatmul, Gemm, Lookup, Workload

__all__ = ["Region", "KvLayout", "DevicePlacement", "Placement", "place", "PARALLEL"]

#: Ways of splitting a model over several devices.
PARALLEL = ("pipeline", "tensor")


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
    """The KV cache of one layer on one device (module docstring): ``units`` key units of ``tokens_per_unit`` tokens,
    ``v_units`` value units of ``banks`` head dimensions, each ``k_rows`` / ``v_rows`` DRAM rows; ``sequences`` and
    ``kv_heads`` held here."""

    sequences: int
    kv_heads: int
    head_dim: int
    context: int
    tokens_per_unit: int
    k_units: int
    v_units: int
    k_rows: int
    v_rows: int
    k: Region
    v: Region

    def k_unit(self, u: int) -> tuple[int, int]:
        """``(channel, first DRAM row)`` of key unit ``u``."""
        return u % self.k.channels, self.k.row0 + (u // self.k.channels) * self.k_rows

    def v_unit(self, u: int) -> tuple[int, int]:
        """``(channel, first DRAM row)`` of value unit ``u``."""
        return u % self.v.channels, self.v.row0 + (u // self.v.channels) * self.v_rows


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
        for r in self.regions.values():
            banks = range(1) if r.kind == "params" else range(p.banks)
            out[r.name] = [[c, b, r.row0, r.row0 + r.rows, 0, p.columns] for c in range(r.channels) for b in banks]
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
    """Every 2-D tensor as ``name -> (output rows M, reduction K, code bits)``: the GEMVs' weights as they read them,
    tables by rows, tensors no operator reads (experts not chosen) as ``torch.nn.Linear`` (out x in)."""
    out: dict[str, tuple[int, int, float]] = {}
    for pl in workload.operators():
        op = pl.op
        if isinstance(op, Gemm):
            out[workload.tensor_name(op.weight, pl.layer)] = (op.n, op.k, op.weights.code_bits)
        elif isinstance(op, Lookup):
            out.setdefault(op.table, (op.table_rows, op.width, op.weights.code_bits))
    bits = workload.precision.weights.code_bits
    for t in workload.tensors:
        if len(t.shape) == 2 and t.name not in out:
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
    per = p.banks * p.mac_lanes
    k_units = seqs * kvh * -(-ctx // per)
    v_units = seqs * kvh * -(-d // p.banks)
    _, k_rows, _ = gemv_shape(device, per, d, "lanes")
    _, v_rows, _ = gemv_shape(device, p.banks, ctx, "rows")
    kv_bytes = seqs * kvh * ctx * d * att.kv_bits / 8
    k = dp.add(f"kv.{layer}.k", "kv_k", seqs * kvh * ctx, d, "lanes", 8, nch, -(-k_units // nch) * k_rows, kv_bytes)
    v = dp.add(f"kv.{layer}.v", "kv_v", seqs * kvh * d, ctx, "rows", 8, nch, -(-v_units // nch) * v_rows, kv_bytes)
    return KvLayout(seqs, kvh, d, ctx, per, k_units, v_units, k_rows, v_rows, k, v)


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
    if devices > kvh:
        raise MappingError(f"--devices {devices}: tensor parallel splits the {kvh} key/value heads over the devices; "
                           f"use at most {kvh} devices or --parallel pipeline")
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
        ctx = (f" ({kv * p.row_bytes * p.banks * p.channels / 2**30:.2f} GiB of it the KV cache at context "
               f"{workload.context})" if kv else "")
        raise MappingError(f"{workload.model} does not fit {devices} {device.name} device{'s' if devices > 1 else ''}"
                           f": device {worst.index} needs {worst.rows_used} DRAM rows per bank "
                           f"({need / 2**30:.2f} GiB of bank space{ctx}) and has {p.rows} ({have / 2**30:.2f} GiB), "
                           f"{(need - have) / 2**30:.2f} GiB short; {fix}")
    pl = Placement(dps, parallel)
    if any(isinstance(op, Gemm) and op.expert is not None for ops in workload.blocks for op in ops):
        pl.notes.append("every expert is spread over all channels: any choice of experts loads every channel "
                        "equally (no imbalance)")
    if parallel == "pipeline" and devices > 1:
        tied = _edge_tensors(workload, workload.prologue) & _edge_tensors(workload, workload.epilogue)
        if tied:
            pl.notes.append(f"the tied table {', '.join(sorted(tied))} is held by the first device (lookup) and the "
                            f"last (LM head)")
    return pl


def _smallest(workload: Workload, device: DeviceConfig, parallel: str, start: int) -> int:
    """The smallest device count above ``start`` whose placement fits (0: none does)."""
    n = len(workload.layers)
    att = _attention(workload)
    top = n if parallel == "pipeline" else (att.kv_heads if att is not None else 1)
    for d in range(start + 1, max(top, 1) + 1):
        if _fits(_plan(workload, device, d, parallel)):
            return d
    return 0
