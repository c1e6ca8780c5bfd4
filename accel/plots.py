"""Figures of a run (matplotlib, Agg, no display): the device's roofline with every operator, a per-unit timeline,
and a breakdown of time and energy. :func:`write_plots` writes each as PNG and SVG.

Operators come as :class:`accel.rows.OperatorRow` s: the mapper's per-operator rows (``MapResult.rows``), or, for
any program, the rows :func:`operator_rows` reads from the program's operator facts (``name``, ``kind``, ``layer``,
``unit``, ``flops``, ``bytes``, ``bound``, ``device``) and the run's marker spans. FLOPs count a MAC as two. The roofs are the device description's
own figures: compute (PIM MACs, the attention array's MACs, the vector unit's lane operations) and bandwidth (the
banks' internal bandwidth, the channels' pins, the link).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from .config import DeviceConfig
from .emulator.system import SystemResult
from .energy import EnergyBreakdown
from .fmt import si, si_scale
from .outputs import check_output_dir, write_atomic
from .program import Program, parse_stream_name
from .progress import progress_bar
from .rows import OperatorRow
from .timeline import busy_spans, stream_spans

__all__ = ["operator_rows", "compute_roofs", "bandwidth_roofs", "roof", "roofline_figure",
           "timeline_figure", "breakdown_figure", "write_plots", "FIGURES"]

#: The figures :func:`write_plots` writes (each as ``NAME.png`` and ``NAME.svg``).
FIGURES = ("roofline", "timeline", "breakdown")

_UNIT_ORDER = ("pim", "array", "vector", "link", "net")
_UNIT_COLOURS = {"pim": "tab:blue", "vector": "tab:orange", "array": "tab:green", "link": "tab:red",
                 "gpu": "tab:purple"}


def operator_rows(result: SystemResult, program: Program) -> list[OperatorRow]:
    """One row per marked operator of the run, in id order: facts from ``program.operators`` (missing ones empty or
    zero), the unit from the facts or else the compute unit among the streams that mark it (PIM, then the array,
    the vector unit, the link), the time from its spans."""
    spans = result.operators()
    tick = result.tick_ns * 1e-9
    kinds: dict[int, set[str]] = {}
    for s in result.streams.values():
        for ident, _, _ in s.marks:
            kinds.setdefault(ident, set()).add(s.kind)
    rows = []
    for ident in sorted(spans):
        f = program.operators.get(ident, {})
        a, b = spans[ident]
        layer = f.get("layer")
        rows.append(OperatorRow(str(f.get("name", f"operator {ident}")), str(f.get("kind", "")),
                                layer if isinstance(layer, int) else None,
                                str(f.get("unit") or next(k for k in _UNIT_ORDER if k in kinds[ident])),
                                float(f.get("flops", 0)), float(f.get("bytes", 0)), a * tick, b * tick,
                                str(f.get("bound", "")), ident, int(f.get("device", 0))))
    return rows


def compute_roofs(device: DeviceConfig) -> dict[str, float]:
    """Peak FLOP/s of each compute unit: PIM banks (2 x peak MAC/s), the attention array (if any), the vector unit
    (one operation per lane per cycle)."""
    out = {"pim": 2 * device.peak_macs_per_s()}
    if device.attention is not None:
        out["array"] = 2 * device.attention.peak_macs_per_s
    out["vector"] = device.vector.peak_ops_per_s
    return out


def bandwidth_roofs(device: DeviceConfig) -> dict[str, float]:
    """Bytes/s of each path: the banks' internal bandwidth (all banks feeding their MAC units), the channels' pins,
    the link."""
    return {"bank bandwidth": device.pim.internal_bandwidth_bytes_per_s,
            "pin bandwidth": device.pim.external_bandwidth_bytes_per_s,
            "link bandwidth": device.link.bytes_per_s}


def roof(device: DeviceConfig, intensity: float) -> float:
    """The device's outermost roof at ``intensity`` FLOP/B: min(the fastest compute roof, intensity x the widest
    bandwidth). No operator of a run can sit above it."""
    return min(max(compute_roofs(device).values()), intensity * max(bandwidth_roofs(device).values()))


def _plotted(rows: Sequence[OperatorRow]) -> list[OperatorRow]:
    return [r for r in rows if r.flops > 0 and r.bytes > 0 and r.time_s > 0]


def roofline_figure(device: DeviceConfig, rows: Sequence[OperatorRow]) -> Figure:
    """The device's roofline (compute roofs flat, bandwidth roofs sloped, log-log) with every operator that has
    FLOPs, bytes and time as a point at (intensity, achieved FLOP/s), coloured by unit."""
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    pts = _plotted(rows)
    xs = [r.intensity for r in pts]
    lo = min([1e-2] + [x / 3 for x in xs])
    hi = max([1e3] + [x * 3 for x in xs])
    x = np.geomspace(lo, hi, 200)
    top = max(compute_roofs(device).values())
    for (name, bw), style in zip(bandwidth_roofs(device).items(), ("-", "--", ":")):
        ax.plot(x, np.minimum(top, x * bw), style, color="black", lw=1.2, label=f"{name} {bw / 1e9:.4g} GB/s")
    for name, peak in compute_roofs(device).items():
        ax.axhline(peak, color=_UNIT_COLOURS[name], lw=1, alpha=0.7, label=f"{name} peak {peak / 1e12:.4g} TFLOP/s")
    for unit in sorted({r.unit for r in pts}):
        sel = [r for r in pts if r.unit == unit]
        ax.scatter([r.intensity for r in sel], [r.flops_per_s for r in sel], s=18, zorder=3,
                   color=_UNIT_COLOURS.get(unit, "tab:gray"), edgecolor="black", linewidth=0.4,
                   label=f"{unit} operators ({len(sel)})")
    names = {r.name for r in pts}
    if len(names) <= 12:
        for r in pts:
            ax.annotate(r.name, (r.intensity, r.flops_per_s), fontsize=7, xytext=(4, -8), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ys = [r.flops_per_s for r in pts]
    ax.set_ylim(min([top / 1e5] + [y / 3 for y in ys]), top * 3)
    ax.set_xlabel("operational intensity (FLOP/byte)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(f"roofline of {device.name}" + ("" if pts else " (no operator with FLOPs and bytes)"))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def timeline_figure(result: SystemResult, program: Program, cap: int = 500, max_rows: int = 64) -> Figure:
    """A Gantt chart: one row per stream, its operators as bars coloured by kind, its busy intervals as a dark strip
    along the bottom of the row (time in us). With more than ``max_rows`` streams only the first PIM channels of
    each device are drawn (the title says how many), beside every other stream."""
    spans = stream_spans(result, program, cap)
    names = list(spans)
    title = f"per-unit timeline on {result.device}: operators by kind, busy cycles (black strip)"
    if len(names) > max_rows:
        where = {n: parse_stream_name(n) for n in names}
        others = [n for n in names if where[n][1] != "pim"]
        devices = len({d for d, _, _ in where.values()})
        keep = max(1, (max_rows - len(others)) // devices)
        total = sum(1 for n in names if where[n][1] == "pim")
        names = [n for n in names if where[n][1] != "pim" or where[n][2] < keep]
        title += f"; PIM channels 0 .. {keep - 1} of each device shown ({total} PIM streams in all)"
    kinds = sorted({sp.kind for ss in spans.values() for sp in ss if sp.ident is not None})
    cmap = {k: f"C{i % 10}" for i, k in enumerate(kinds)}
    fig = Figure(figsize=(11, 1.2 + 0.28 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    us = result.tick_ns / 1000.0
    raster = sum(len(spans[n]) for n in names) > 2000  # an SVG of many thousand bars is slow to open
    for y, name in enumerate(names):
        ops = [sp for sp in spans[name] if sp.ident is not None]
        for kind in sorted({sp.kind for sp in ops}):
            bars = [(sp.start * us, (sp.end - sp.start) * us) for sp in ops if sp.kind == kind]
            ax.broken_barh(bars, (y - 0.4, 0.8), facecolors=cmap[kind], alpha=0.85, rasterized=raster)
        busy = [(sp.start * us, (sp.end - sp.start) * us) for sp in busy_spans(result, name, cap)]
        if busy:
            ax.broken_barh(busy, (y + 0.25, 0.15), facecolors="black", rasterized=raster)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, max(result.time_ns / 1000.0, 1e-9))
    ax.set_xlabel("time (us)")
    ax.set_title(title, fontsize=10)
    handles = [ax.bar(0, 0, color=cmap[k], label=k or "(no kind)") for k in kinds]
    if handles:
        fig.legend(handles=handles, fontsize=7, ncols=min(8, len(handles)), loc="outside lower center")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def breakdown_figure(result: SystemResult, rows: Sequence[OperatorRow], energy: EnergyBreakdown | None) -> Figure:
    """Three panels: time per operator kind (sum of their spans, us), busy time per unit kind against the run's
    length (mean over the kind's streams, us), energy per event kind and static energy per unit (uJ)."""
    fig = Figure(figsize=(14, 4.8), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    per_kind: dict[str, float] = {}
    for r in rows:
        per_kind[r.kind or r.unit] = per_kind.get(r.kind or r.unit, 0.0) + r.time_s
    _bars(a, per_kind, "operator time by kind, sum of spans", "s")
    busy: dict[str, list[float]] = {}
    for s in result.streams.values():
        busy.setdefault(s.kind, []).append(s.busy * result.ticks_per_cycle[s.kind] * result.tick_ns * 1e-9)
    per_unit = {k: float(np.mean(v)) for k, v in busy.items()}
    per_unit["run"] = result.time_ns * 1e-9
    _bars(b, per_unit, "busy time per unit (mean over its streams) and the run", "s")
    if energy is None:
        c.set_axis_off()
        c.text(0.5, 0.5, "no energy table", ha="center")
    else:
        parts = {k: v for k, v in energy.dynamic_j.items() if v > 0}
        parts.update({f"static {k}": v for k, v in energy.static_j.items() if v > 0})
        top = dict(sorted(parts.items(), key=lambda kv: -kv[1])[:12])
        _bars(c, top, "energy by event kind", "J")
        c.text(0.98, 0.02, f"total {si(energy.total_j, 'J')}", transform=c.transAxes, ha="right", fontsize=9)
    return fig


def _bars(ax, values: dict[str, float], title: str, unit: str) -> None:
    """Horizontal bars of ``values`` (in ``unit``, rescaled to a readable prefix), each labelled with its value."""
    names = list(values)
    f, prefix = si_scale(max([abs(v) for v in values.values()] + [0.0]))
    u = prefix + unit
    vals = [values[n] * f for n in names]
    bars = ax.barh(range(len(names)), vals, color="tab:blue")
    ax.bar_label(bars, [f"{v:.3g}" for v in vals], fontsize=7, padding=2)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"{title} ({u})", fontsize=9)
    ax.set_xlim(0, max(vals + [0.0]) * 1.2 or 1)
    ax.grid(True, axis="x", alpha=0.3)


def write_plots(out_dir: str | Path, result: SystemResult, program: Program, device: DeviceConfig,
                rows: Sequence[OperatorRow] | None = None, energy: EnergyBreakdown | None = None,
                progress: bool | None = None) -> list[Path]:
    """Write :data:`FIGURES` as PNG and SVG into ``out_dir`` (created if missing; every file atomically) and return
    the paths. ``rows`` default to :func:`operator_rows` of the run; ``progress`` as
    :func:`accel.progress.progress_bar`'s ``show``."""
    out = check_output_dir(out_dir, "--plots")
    rows = operator_rows(result, program) if rows is None else list(rows)
    draw = {"roofline": lambda: roofline_figure(device, rows), "timeline": lambda: timeline_figure(result, program),
            "breakdown": lambda: breakdown_figure(result, rows, energy)}
    paths = []
    with progress_bar(2 * len(draw), "plots", "file", progress) as bar:
        for name in FIGURES:
            fig = draw[name]()
            for fmt in ("png", "svg"):
                meta = {"Software": None} if fmt == "png" else {"Date": None}  # the same run gives the same bytes
                paths.append(write_atomic(out / f"{name}.{fmt}", lambda f, fmt=fmt, meta=meta: fig.savefig(
                    f, format=fmt, dpi=130, metadata=meta), "--plots"))
                bar.update()
    return paths
