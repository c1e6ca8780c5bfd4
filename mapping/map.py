"""``accel map``: a model on a device, from the workload to the report's numbers.

:func:`map_model` runs the stages — workload (:mod:`mapping.workload`), partition (:mod:`.partition`), placement
(:mod:`.placement`), code generation (:mod:`.schedule`, :mod:`.codegen`), the system engine
(:class:`accel.emulator.system.SystemEngine`) — and returns a :class:`MapResult`: everything the report, the energy
table, the plots and the trace need, as plain data.

Per operator the report gives (:class:`accel.rows.OperatorRow`, the one row type the plots read too): its share of the latency (the time by which it moves the
program's completion frontier: the shares sum to the total), its span, the unit, how far above the device's
bank-bandwidth bound it sits, and the closed-form amounts of the work it puts on each resource: on the channels the
bank-bandwidth time of its MAC columns and what its commands add beyond it (the MAC lanes' pace for bit-serial terms,
row activations, global-buffer refills, group-register (CFR) writes, MAC readouts and column reads/writes on the
channel bus — serial on a channel, so they add up), and the link, the vector unit, the array, the interconnect and
the GPU fallback. Its *bound* (:func:`bound_of`) is the resource with the most work; what the amounts do not explain
is overlap lost to dependencies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Union

from accel.config import DeviceConfig, load_preset
from accel.emulator.system import SystemEngine, SystemResult
from accel.energy import EnergyBreakdown, energy
from accel.fmt import si
from accel.program import Program
from accel.progress import progress_bar
from accel.report import energy_lines
from accel.rows import OperatorRow

from .codegen import OpSite, generate
from .partition import MappingError, Partition, gpu_time, partition
from .placement import Placement, place
from .workload import Workload, load_workload, resolve_model

__all__ = ["MapResult", "OperatorRow", "map_model", "map_workload", "format_text", "bound_of", "BOUNDS",
           "CHANNEL_PIECES"]

#: The bounds an operator can sit at (the report's names).
BOUNDS = ("bank bandwidth", "MAC pace", "row activations", "global-buffer refills", "group registers (CFR)",
          "MAC readout", "column reads/writes", "link", "vector unit", "array", "interconnect", "GPU fallback")


@dataclass
class MapResult:
    """A mapped model and its run: the data every part of the report reads.

    Members
    -------
    workload, device, devices, parallel:
        What was mapped, on what.
    partition, placement:
        The unit of every operator (:class:`mapping.partition.Partition`) and where every matrix lives.
    program:
        The program (:class:`accel.program.Program`; ``--program F`` writes it).
    sites:
        Operator instances (:class:`mapping.codegen.OpSite`), by marker id.
    result:
        The system engine's run (:class:`accel.emulator.system.SystemResult`: cycles, per-stream figures, event counts
        for the energy table, busy intervals for the trace).
    rows:
        Per operator instance (:class:`accel.rows.OperatorRow`: every field, flops and bytes its device's part of
        the operator).
    gpu:
        The GPU the fallback operators are timed on.
    timings:
        Wall seconds per stage (``workload``, ``partition``, ``placement``, ``codegen``, ``engine``).
    extras:
        Room for what other report parts attach (energy table, plot and trace paths), as plain data.
    """

    workload: Workload
    device: DeviceConfig
    devices: int
    parallel: str
    partition: Partition
    placement: Placement
    program: Program
    sites: list[OpSite]
    result: SystemResult
    rows: list[OperatorRow]
    gpu: str
    timings: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    # ---- headline figures ------------------------------------------------------------------------------------------
    @property
    def energy(self) -> EnergyBreakdown:
        """The step's energy on the device(s): :func:`accel.energy.energy` of the run's event counts over its
        cycles (the GPU fallback's energy is not modelled)."""
        if "_energy" not in self.__dict__:
            self.__dict__["_energy"] = energy(self.result.events, self.device, self.result.cycles, self.devices)
        return self.__dict__["_energy"]

    @property
    def macs(self) -> int:
        """MACs of the step on the device(s) (every operator on the PIM channels or the array, once)."""
        copies = self.devices if self.parallel == "tensor" else 1   # tensor parallel: every device has every op
        return sum(s.op.macs for s in self.sites if s.unit in ("pim", "array")) // copies

    def energy_per_token(self) -> dict[str, float]:
        """Energy per new token (J; the step's over its ``batch x tokens`` new tokens), per MAC of the step (pJ) and
        the device(s)' mean power over the step (W)."""
        e, w = self.energy, self.workload
        tokens = w.batch * w.tokens
        return {"j_per_token": e.total_j / tokens, "pj_per_mac": e.total_j / self.macs * 1e12 if self.macs else 0.0,
                "watts": e.total_j / self.device_s if self.device_s else 0.0}

    @property
    def device_s(self) -> float:
        """Time of the program on the emulated device(s) (s)."""
        return self.result.time_ns * 1e-9

    @property
    def fallback_s(self) -> float:
        """GPU fallback time, added after the device's (its operators wait for it; s)."""
        return sum(r.gpu_s for r in self.rows)

    @property
    def latency_s(self) -> float:
        """Time of the step: per token in decode, time to first token in prefill (s)."""
        return self.device_s + self.fallback_s

    @property
    def tokens_per_s(self) -> float:
        """Tokens per second: the step's new tokens (every sequence's) over its latency."""
        return self.workload.batch * self.workload.tokens / self.latency_s if self.latency_s else 0.0

    @property
    def bank_bound_s(self) -> float:
        """The device's bank-bandwidth bound on the step: every operator's MAC columns at one per ``nCCD_AB``
        (the latency is never below it)."""
        return sum(r.bank_bound_s for r in self.rows)

    def units(self) -> dict[str, dict[str, float]]:
        """Per unit kind: busy time (s, mean over its streams), utilisation (busy over the run, mean), streams."""
        res = self.result
        out: dict[str, dict[str, float]] = {}
        for name, s in res.streams.items():
            u = out.setdefault(s.kind, {"busy_s": 0.0, "utilisation": 0.0, "streams": 0})
            u["busy_s"] += s.busy * res.ticks_per_cycle[s.kind] * res.tick_ns * 1e-9
            u["utilisation"] += res.utilisation(name)
            u["streams"] += 1
        for u in out.values():
            u["busy_s"] /= u["streams"]
            u["utilisation"] /= u["streams"]
        return out

    def by_operator(self) -> list[dict[str, Any]]:
        """Operator instances summed over layers and devices per operator of the workload (its
        :func:`mapping.partition.op_key`): share, bank bound, bound pieces, instances, devices."""
        groups: dict[str, dict[str, Any]] = {}
        for site, r in zip(self.sites, self.rows):
            g = groups.get(site.key)
            if g is None:
                name = site.op.name if site.layer is not None else r.name
                g = groups[site.key] = {"key": site.key, "name": name, "kind": r.kind, "unit": r.unit, "devices": set(),
                                        "count": 0,
                                        "share_s": 0.0, "bank_bound_s": 0.0, "gpu_s": 0.0, "components_s": {},
                                        "section": site.section, "shape": site.op.shape_text()}
            g["devices"].add(r.device)
            g["count"] += 1
            g["share_s"] += r.share_s
            g["bank_bound_s"] += r.bank_bound_s
            g["gpu_s"] += r.gpu_s
            for k, v in r.components_s.items():
                g["components_s"][k] = g["components_s"].get(k, 0.0) + v
        for g in groups.values():
            comp = g["components_s"]
            g["bound"] = bound_of(comp)
            g["devices"] = sorted(g["devices"])
        return list(groups.values())

    def roofline(self) -> dict[str, Any]:
        """Where the step sits against the device's roofline: its MACs and bank bytes per second against the
        peak MAC rate and the bank bandwidth."""
        w, dev = self.workload, self.device
        t = self.latency_s
        macs = self.macs
        dt = max(w.precision.weights.datatypes, key=dev.mac_column_cycles) if dev.pim.lane == "bitserial" else "int8"
        peak = dev.peak_macs_per_s(dt) * self.devices
        bank_bytes = self.bank_bound_s * dev.pim.internal_bandwidth_bytes_per_s
        return {"macs_per_s": macs / t if t else 0.0, "peak_macs_per_s": peak,
                "mac_fraction": macs / t / peak if t else 0.0,
                "bank_bytes_per_s": bank_bytes / t if t else 0.0,
                "bank_bandwidth_bytes_per_s": dev.pim.internal_bandwidth_bytes_per_s,
                "bank_fraction": self.bank_bound_s / t if t else 0.0,
                "intensity_flop_per_bank_byte": 2 * macs / bank_bytes if bank_bytes else 0.0,
                "ridge_flop_per_byte": 2 * peak / dev.pim.internal_bandwidth_bytes_per_s}

    def to_json(self) -> dict[str, Any]:
        w = self.workload
        return {
            "model": w.model, "phase": w.phase, "batch": w.batch, "tokens": w.tokens, "context": w.context,
            "weights": w.precision.weights.name, "device": self.device.name, "devices": self.devices,
            "parallel": self.parallel, "moe": w.moe,
            "latency_s": self.latency_s, "device_s": self.device_s, "fallback_s": self.fallback_s,
            "tokens_per_s": self.tokens_per_s, "cycles": self.result.cycles,
            "bank_bound_s": self.bank_bound_s,
            "above_bank_bound": self.latency_s / self.bank_bound_s if self.bank_bound_s else None,
            "units": self.units(), "roofline": self.roofline(),
            "operators": self.by_operator(),
            "fallback": [{"name": r.name, "gpu_s": r.gpu_s} for r in self.rows if r.unit == "gpu"],
            "gpu": self.gpu,
            "partition": {k: d.to_json() for k, d in self.partition.decisions.items()},
            "placement": self.placement.to_json(self.device),
            "instances": [r.to_json() for r in self.rows],
            "events": self.result.events,
            "energy": {**self.energy_per_token(), **self.energy.to_json()},
            "timings_s": self.timings,
            **({"extras": self.extras} if self.extras else {}),
        }


# --------------------------------------------------------------------------------------------------------------------


#: The pieces of the PIM channels' work: serial on a channel, so they add up.
CHANNEL_PIECES = BOUNDS[:7]


def bound_of(components: dict[str, float]) -> str:
    """The bound an operator sits at: the unit with the most work — the channels (their pieces add up: "bank
    bandwidth" when that is at least half of them, else their largest other piece), the link, the vector unit, the
    array, the interconnect or the GPU fallback."""
    if not components:
        return "-"
    units = {k: v for k, v in components.items() if k not in CHANNEL_PIECES}
    channel = sum(v for k, v in components.items() if k in CHANNEL_PIECES)
    if channel and channel >= max(units.values(), default=0.0):
        if components.get("bank bandwidth", 0.0) >= channel / 2:
            return "bank bandwidth"
        return max((k for k in CHANNEL_PIECES[1:] if k in components), key=components.get)
    return max(units, key=units.get)


def _components(dev: DeviceConfig, site: OpSite, datatype: str) -> tuple[float, dict[str, float]]:
    """Bank-bandwidth bound and the closed-form lower bound of each piece of an operator's work (s)."""
    c = site.counts
    t = dev.pim.timing
    tck = t.tck_ns * 1e-9
    mac = c.get("mac_columns", 0)
    bank = mac * t.nCCD_AB * tck
    pace = mac * dev.mac_column_cycles(datatype if site.kind not in ("attn_score", "attn_context") else "int8") * tck
    comp = {
        "bank bandwidth": bank,
        "MAC pace": max(0.0, pace - bank),
        "row activations": c.get("act", 0) * (t.nRCD_MAC + t.nRTP + t.nRP) * tck,
        "global-buffer refills": c.get("wrgb_columns", 0) * t.nCCDS * tck,
        "group registers (CFR)": c.get("cfr", 0) * tck,
        "MAC readout": c.get("rdmac", 0) * dev.pim.banks * t.nBL * tck,
        "column reads/writes": (c.get("rd_columns", 0) + c.get("wr_columns", 0)) * t.nCCDS * tck,
        "link": c.get("link_bytes", 0) / dev.link.bytes_per_s,
        "vector unit": c.get("vector_cycles", 0) / (dev.vector.clock_mhz * 1e6),
        "array": c.get("array_cycles", 0) / (dev.attention.clock_mhz * 1e6) if dev.attention else 0.0,
        "interconnect": c.get("net_bytes", 0) / dev.interconnect.bytes_per_s,
    }
    return bank, {k: v for k, v in comp.items() if v > 0}


def _rows(mr_sites: list[OpSite], res: SystemResult, dev: DeviceConfig, w: Workload, gpu: str, devices: int,
          parallel: str) -> list[OperatorRow]:
    spans = res.operators()
    tick = res.tick_ns * 1e-9
    dt = max(w.precision.weights.datatypes, key=dev.mac_column_cycles) if dev.pim.lane == "bitserial" else "int8"
    rows = []
    frontier = 0
    for s in mr_sites:
        a, b = spans.get(s.id, (frontier, frontier))
        share = max(0, b - frontier)
        frontier = max(frontier, b)
        bank, comp = _components(dev, s, dt)
        g = gpu_time(s.op, gpu) if s.unit == "gpu" else 0.0
        if g:
            comp["GPU fallback"] = g
        part = devices if parallel == "tensor" and s.unit in ("pim", "array") else 1   # its device's slice
        rows.append(OperatorRow(s.name, s.kind, s.layer, s.unit, s.op.flops / part, s.op.bytes / part, a * tick,
                                b * tick, bound_of(comp), s.id, s.device, share * tick, bank, comp, g))
    return rows


def map_workload(workload: Workload, device: DeviceConfig, *, devices: int = 1, parallel: str = "pipeline",
                 gpu: str = "h100-sxm", progress: bool | None = None,
                 timings: dict[str, float] | None = None) -> MapResult:
    """Map a workload (module docstring). ``progress`` as :func:`accel.progress.progress_bar`'s ``show``: bars over
    the layers generated and the engine's run."""
    timings = {} if timings is None else timings
    _check_formats(workload, device)
    t0 = time.perf_counter()
    part = partition(workload, device, gpu)
    t1 = time.perf_counter()
    pl = place(workload, device, devices, parallel)
    t2 = time.perf_counter()
    with progress_bar(len(workload.layers), "codegen", "layer", progress) as bar:
        prog, sites = generate(workload, device, part, pl, lambda n, total: bar.update(n))
    t3 = time.perf_counter()
    # the channel engine's search for repeated blocks is off: a mapped program's runs are one block each (per-block
    # readout signals), where searching costs more than it finds; the epoch jump and REPEAT do the jumping
    res = SystemEngine(device, periodic=False, progress=progress).run(prog)
    t4 = time.perf_counter()
    timings.update(partition=t1 - t0, placement=t2 - t1, codegen=t3 - t2, engine=t4 - t3)
    rows = _rows(sites, res, device, workload, gpu, devices, parallel)
    return MapResult(workload, device, devices, parallel, part, pl, prog, sites, res, rows, gpu, timings)


def _check_formats(w: Workload, dev: DeviceConfig) -> None:
    if dev.pim.lane != "bitserial" and w.precision.weights.datatypes != ("int8",):
        raise MappingError(f"--datatype {w.precision.weights.name}: device {dev.name} has int8 MAC lanes; use "
                           f"--datatype int8")


def map_model(model: str, device: Union[str, DeviceConfig], phase: str = "decode", *, context: int | None = None,
              prompt: int | None = None, batch: int = 1, datatype: str = "int8", experts: Union[str, int] = "worst",
              devices: int = 1, parallel: str = "pipeline", gpu: str = "h100-sxm",
              progress: bool | None = None) -> MapResult:
    """Map a model by name (a known name, a Hugging Face directory or a YAML operator list) onto a device preset:
    the workload of one step (:func:`mapping.workload.load_workload`; decode at the model's whole context and prefill
    of 512 tokens unless told), then :func:`map_workload`."""
    dev = load_preset(device) if isinstance(device, str) else device
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if not model.endswith((".yaml", ".yml")) and (context is None if phase == "decode" else prompt is None):
        positions = resolve_model(model)[0].positions   # decode: the whole context; prefill: 512 tokens
        context, prompt = (positions, prompt) if phase == "decode" else (context, min(512, positions))
    _, w = load_workload(model, phase, dev, datatype=datatype, batch=batch, prompt=prompt, context=context,
                         experts=experts)
    timings["workload"] = time.perf_counter() - t0
    return map_workload(w, dev, devices=devices, parallel=parallel, gpu=gpu, progress=progress, timings=timings)


# --------------------------------------------------------------------------------------------------------------------


def _s(seconds: float) -> str:
    return si(seconds, "s")


def format_text(mr: MapResult) -> str:
    """The report as text (what ``accel map`` prints)."""
    w, dev = mr.workload, mr.device
    j = mr.to_json()
    lines = []
    what = (f"decode, context {w.context}" if w.phase == "decode" else f"prefill of {w.tokens} tokens")
    lines.append(f"model      {w.model} ({what}, batch {w.batch}, weights {w.precision.weights.name}"
                 f"{', ' + w.moe if w.moe else ''})")
    lines.append(f"device     {dev.name}" + (f" x {mr.devices} ({mr.parallel} parallel, {dev.interconnect.width_bits}"
                                             f"-bit interconnect)" if mr.devices > 1 else ""))
    head = "latency    " if w.phase == "decode" else "TTFT       "
    lines.append(f"{head}{_s(mr.latency_s)} per {'token' if w.phase == 'decode' else 'prompt'}"
                 f"  ({mr.result.cycles} cycles{'; GPU fallback ' + _s(mr.fallback_s) if mr.fallback_s else ''})")
    lines.append(f"tokens/s   {mr.tokens_per_s:,.1f}")
    ab = j["above_bank_bound"]
    lines.append(f"bank bound {_s(mr.bank_bound_s)} (every MAC column at the banks' bandwidth)"
                 + (f"; the step takes {ab:.2f}x of it" if ab else ""))
    rf = j["roofline"]
    lines.append(f"roofline   {rf['macs_per_s'] / 1e12:.3g} TMAC/s of {rf['peak_macs_per_s'] / 1e12:.3g} peak "
                 f"({rf['mac_fraction']:.1%}); bank bytes at {rf['bank_fraction']:.1%} of bank bandwidth; "
                 f"{rf['intensity_flop_per_bank_byte']:.2f} FLOP per bank byte (ridge {rf['ridge_flop_per_byte']:.1f})")
    ej = j["energy"]
    e = mr.energy
    lines.append(f"energy     {si(ej['j_per_token'], 'J')} per token, {ej['pj_per_mac']:.3g} pJ per MAC, "
                 f"{si(ej['watts'], 'W')} (dynamic {si(e.dynamic_total_j, 'J')}, static {si(e.static_total_j, 'J')}"
                 f" per step{'; GPU fallback not included' if mr.fallback_s else ''})")
    lines += energy_lines(e)[1:]   # by unit, the largest event kinds
    lines.append("units      " + "; ".join(f"{k} {v['utilisation']:.1%} busy ({_s(v['busy_s'])}"
                                            f"{', ' + str(v['streams']) + ' streams' if v['streams'] > 1 else ''})"
                                            for k, v in j["units"].items()))
    lines.append("")
    lines.append(f"  {'operator':28s} {'x':>3s} {'unit':6s} {'time':>10s} {'share':>6s} {'vs bank':>7s}  bound: the "
                 f"work it puts on each resource (closed forms)")
    total = mr.latency_s or 1.0
    for g in j["operators"]:
        share = g["share_s"] + g["gpu_s"]
        ratio = f"{share / g['bank_bound_s']:.2f}x" if g["bank_bound_s"] else "-"
        comp = g["components_s"]
        pieces = ", ".join(f"{k} {_s(v)}" for k, v in sorted(comp.items(), key=lambda kv: -kv[1])[:4])
        lines.append(f"  {g['name'][:28]:28s} {g['count']:3d} {g['unit']:6s} {_s(share):>10s} {share / total:6.1%} "
                     f"{ratio:>7s}  {g['bound']}: {pieces}")
    gpu = [g for g in j["operators"] if g["unit"] == "gpu"]
    if gpu:
        lines.append("")
        lines.append(f"GPU fallback ({mr.gpu} roofline; no unit of {dev.name} runs these): " + ", ".join(
            f"{g['name']} x {g['count']} ({g['kind']}) {_s(g['gpu_s'])}" for g in gpu))
    for note in mr.placement.notes:
        lines.append(f"note       {note}")
    x = mr.extras
    if "program_file" in x:
        lines.append(f"program    {x['program_file']} (accel emulate runs it)")
    if "trace_file" in x:
        lines.append(f"trace      {x['trace_file']} (open in ui.perfetto.dev)")
    if "plots" in x:
        lines.append(f"plots      {', '.join(x['plots'])}")
    tm = mr.timings
    lines.append("")
    lines.append("wall       " + ", ".join(f"{k} {v:.2f} s" for k, v in tm.items()))
    return "\n".join(lines)
