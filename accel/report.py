"""Reports: what ``accel emulate`` and ``accel array gemm|attention`` print, as plain data.

Each function runs the library (the channel engine and the AiM host system for traces, the units' closed forms and
per-cycle models for the array) and returns a JSON-able dict; the commands only print it, as JSON or as text.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .config import DeviceConfig, GemmConfig, load_preset
from .energy import EnergyBreakdown
from .errors import AccelError
from .traces import TraceError, is_aim_trace, parse_text_program, read_aim_trace

__all__ = ["trace_report", "trace_paths", "trace_batch", "batch_row", "batch_table", "bank_summary", "gemm_report",
           "attention_report", "EMULATE_LIMIT", "si_scale", "si", "energy_lines"]

#: Largest ``cycles * rows * cols`` that :func:`gemm_report` runs through the per-cycle model (about 20 s).
EMULATE_LIMIT = 20_000_000


def trace_report(path: str | Path, device: DeviceConfig, *, timing: str = "0f28a07",
                 reference: bool = False) -> dict[str, Any]:
    """Run a trace file (AiM host format or our text form, :mod:`accel.traces`) on a device: cycles, time, each
    bank's row-open and MAC-busy fractions (channels x banks), lane MACs and their fraction of the peak.

    AiM host traces: ``timing`` is the commit of SK hynix's simulator whose GDDR6 timing table to apply
    (:data:`accel.emulator.aim.AIM_RULE_VARIANTS`: ``"0f28a07"``, its HEAD, or ``"2eb1ee0"``, the commit CENT pins);
    ``reference`` runs the per-command reference model instead of the fast one (same counts, far slower)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: cannot read the trace ({getattr(e, 'strerror', None) or e})") from None
    p = device.pim
    if is_aim_trace(text):
        from .emulator.aim import AimSystem

        res = AimSystem(device, timing=timing).run(read_aim_trace(text, str(path)), reference=reference)
        cycles, active, macs, lane_ops = res.cycles, res.bank_active_cycles, res.bank_mac_commands, res.mac_lane_ops
        fmt, extra = "aim", {"aim_timing": timing, "dram_commands": res.commands, "host_requests": res.host_requests}
    else:
        from .emulator.engine import DeviceEngine

        stats = DeviceEngine(device, functional=False).run(parse_text_program(text, str(path)))
        cycles, active, macs, lane_ops = stats.cycles, stats.bank_active_cycles, stats.bank_mac_elements, \
            stats.mac_lane_ops
        fmt, extra = "accel", {"commands": stats.commands, "elements": stats.elements}
    cyc = max(cycles, 1)
    return {
        "trace": str(path),
        "format": fmt,
        "device": device.name,
        "cycles": int(cycles),
        "time_ns": cycles * p.timing.tck_ns,
        "tck_ns": p.timing.tck_ns,
        "bank_active_fraction": (active / cyc).round(6).tolist(),
        "bank_mac_fraction": (macs * p.timing.nCCD_AB / cyc).round(6).tolist(),
        "mac_lane_ops": int(lane_ops),
        "peak_mac_fraction": lane_ops / (p.peak_macs_per_cycle * cyc),
        **extra,
    }


def trace_paths(target: str | Path, batch: bool = False) -> list[Path]:
    """The traces of a batch: every AiM host trace in a folder (files whose first command line starts with AiM, W
    or R), by name; or, ``batch``, the files a list names (one path a line, relative to the list; ``#`` comments).

    Raises
    ------
    TraceError
        A missing folder or list, a listed file that does not exist, or no trace at all.
    """
    target = Path(target)
    if batch:
        try:
            text = target.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise TraceError(f"{target}: cannot read the list of traces ({getattr(e, 'strerror', None) or e})") \
                from None
        out = []
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if line:
                p = Path(line) if Path(line).is_absolute() else target.parent / line
                if not p.is_file():
                    raise TraceError(f"{target}:{n}: {line!r} is not a file; list one trace file a line")
                out.append(p)
    else:
        if not target.is_dir():
            raise TraceError(f"{target}: not a folder of traces")
        out = [p for p in sorted(target.iterdir()) if p.is_file() and not p.name.startswith(".")
               and _looks_like_aim_trace(p)]
    if not out:
        raise TraceError(f"{target}: no traces in it; a folder needs AiM host traces (lines AiM ..., W/R ...), a "
                         f"--batch list one trace file a line")
    return out


def _looks_like_aim_trace(path: Path) -> bool:
    try:
        with path.open(errors="replace") as f:
            return is_aim_trace(f.read(4096))
    except OSError:
        return False


def batch_row(report: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """One line of a batch: a :func:`trace_report` in short, with per-bank utilisation as the mean over channels of
    each bank (``bank_row_open``, ``bank_mac_busy``) and over everything (``row_open``, ``mac_busy``)."""
    active = np.array(report["bank_active_fraction"])
    mac = np.array(report["bank_mac_fraction"])
    return {"trace": report["trace"], "format": report["format"], "cycles": report["cycles"],
            "time_ms": report["time_ns"] / 1e6, "host_requests": report.get("host_requests"),
            "row_open": float(active.mean()), "mac_busy": float(mac.mean()),
            "peak_mac_fraction": report["peak_mac_fraction"],
            "bank_row_open": active.mean(axis=0).round(6).tolist(), "bank_mac_busy": mac.mean(axis=0).round(6).tolist(),
            "wall_s": round(wall_s, 3)}


def trace_batch(paths: Sequence[Path], device: DeviceConfig, *, timing: str = "0f28a07", reference: bool = False,
                progress: bool | None = None) -> dict[str, Any]:
    """Run each trace (:func:`trace_report`) and gather the :func:`batch_row` lines, with a progress bar over the
    traces (``progress`` as in :mod:`accel.progress`)."""
    from .progress import progress_bar

    rows = []
    with progress_bar(len(paths), "traces", unit="trace", show=progress) as bar:
        for path in paths:
            bar.set_postfix_str(Path(path).name, refresh=False)
            t = time.perf_counter()
            rep = trace_report(path, device, timing=timing, reference=reference)
            rows.append(batch_row(rep, time.perf_counter() - t))
            bar.update(1)
    return {"device": device.name, "aim_timing": timing, "model": "reference" if reference else "fast",
            "traces": rows, "wall_s": round(sum(r["wall_s"] for r in rows), 3)}


def batch_table(batch: dict[str, Any]) -> str:
    """A :func:`trace_batch` as a text table."""
    rows = batch["traces"]
    w = max(len(Path(r["trace"]).name) for r in rows)
    head = f"{'trace':{w}s}  {'cycles':>10s}  {'time (ms)':>10s}  {'row open':>8s}  {'MAC busy':>8s}  " \
           f"{'peak MAC':>8s}  {'wall (s)':>8s}"
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(f"{Path(r['trace']).name:{w}s}  {r['cycles']:10d}  {r['time_ms']:10.5f}  {r['row_open']:8.1%}  "
                   f"{r['mac_busy']:8.1%}  {r['peak_mac_fraction']:8.1%}  {r['wall_s']:8.2f}")
    out.append(f"{len(rows)} traces on {batch['device']} (AiM timing {batch['aim_timing']}, {batch['model']} model), "
               f"{batch['wall_s']:.2f} s")
    return "\n".join(out)


def bank_summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per bank of a :func:`trace_report`, over the channels: ``(mean, min, max)`` of the row-open fraction
    (``active``) and of the MAC-busy fraction (``mac``)."""
    active = np.array(report["bank_active_fraction"])
    mac = np.array(report["bank_mac_fraction"])
    return [{"bank": b,
             "active": (active[:, b].mean(), active[:, b].min(), active[:, b].max()),
             "mac": (mac[:, b].mean(), mac[:, b].min(), mac[:, b].max())} for b in range(active.shape[1])]


def _array_of(preset: str | None, rows: int | None, cols: int | None) -> tuple[int, int, int]:
    """(rows, cols, data_bits) of the array: the preset's attention array, each given size overriding it; 8-bit data
    without a preset."""
    data_bits = 8
    if preset is not None:
        dev = load_preset(preset)
        if dev.gemm is None:
            raise AccelError(f"preset {dev.name} has no attention array; give --rows and --cols, or pick a preset "
                             f"with one (accel devices)")
        rows = dev.gemm.rows if rows is None else rows
        cols = dev.gemm.cols if cols is None else cols
        data_bits = dev.gemm.data_bits
    if rows is None or cols is None:
        missing = "--rows" if rows is None else "--cols"
        raise AccelError(f"{missing} is missing: give the array size with --rows and --cols, or --preset")
    return rows, cols, data_bits


def gemm_report(M: int, K: int, N: int, *, rows: int | None = None, cols: int | None = None,
                preset: str | None = None, dataflow: str = "os", timing: str = "native",
                emulate: bool = False) -> dict[str, Any]:
    """Cycles and utilisation of an ``(M x K) @ (K x N)`` GEMM on a ``rows`` x ``cols`` array (the preset's attention
    array unless both are given): the closed form of ``timing``, with native timing also the GEMM RTL's exact count
    (``rtl_cycles``), and with ``emulate`` random operands run through the RTL's per-cycle model
    (``emulated_cycles``, ``emulated_exact``, ``data_bits``)."""
    from .emulator.gemm_timing import gemm_timing, rtl_gemm_cycles

    rows, cols, data_bits = _array_of(preset, rows, cols)
    t = gemm_timing(M, K, N, rows, cols, dataflow, timing)
    out = t.to_json()
    if t.timing == "native":
        out["rtl_cycles"] = rtl_gemm_cycles(M, K, N, rows, cols, dataflow)
    if emulate:
        out.update(_emulate(M, K, N, rows, cols, data_bits, dataflow, timing, out.get("rtl_cycles", t.cycles)))
    return out


def _emulate(M: int, K: int, N: int, rows: int, cols: int, data_bits: int, dataflow: str, timing: str,
             cycles: int) -> dict[str, Any]:
    from .emulator.gemm_driver import gemm_golden, run_systolic

    if timing != "native":
        raise AccelError("--emulate runs the array's own hardware, whose timing is native; drop --timing scalesim "
                         "(SCALE-Sim's count has no hardware behind it)")
    if cycles * rows * cols > EMULATE_LIMIT:
        raise AccelError(f"--emulate: {cycles} cycles on {rows}x{cols} PEs is {cycles * rows * cols} PE-cycles, over "
                         f"the per-cycle model's limit of {EMULATE_LIMIT}; emulate a smaller shape (the RTL cycles "
                         f"are exact against the model for every shape)")
    cfg = GemmConfig(rows=rows, cols=cols, data_bits=data_bits)
    rng = np.random.default_rng(0)
    hi = 1 << (cfg.data_bits - 1)
    a = rng.integers(-hi, hi, (M, K))
    b = rng.integers(-hi, hi, (K, N))
    run = run_systolic(cfg, a, b, dataflow)
    return {"emulated_cycles": run.cycles, "emulated_exact": bool((run.out == gemm_golden(cfg, a, b)).all()),
            "data_bits": cfg.data_bits}


def attention_report(preset: str, queries: int, keys: int, head_dim: int) -> dict[str, Any]:
    """Cycles, 2D utilisation and on-chip buffers of one attention head (``queries`` x ``keys`` tokens, head
    dimension ``head_dim``) on a preset's attention array (closed forms)."""
    from .emulator.units.attention import AttentionArray, attention_cycles, min_chunks_for_utilisation, utilisation
    from .numerics import ATTN_MAX_KEYS_LOG2

    dev = load_preset(preset)
    cfg = dev.attention
    if cfg is None:
        raise AccelError(f"preset {dev.name} has no attention array; pick a preset with one (accel devices)")
    for name, v, hi, why in (("--queries", queries, 1 << 40, ""),
                             ("--keys", keys, 1 << ATTN_MAX_KEYS_LOG2, " (the accumulators' key limit)"),
                             ("--head-dim", head_dim, cfg.head_dim, " (the array's head_dim)")):
        if not 1 <= v <= hi:
            raise AccelError(f"{name} {v}: must be between 1 and {hi}{why}")
    chunks = -(-keys // cfg.rows)
    cycles = attention_cycles(cfg, queries, keys, head_dim)
    try:
        need = min_chunks_for_utilisation(head_dim) * cfg.rows
    except ValueError:
        need = None
    bits = AttentionArray(cfg).state_bits()
    return {"preset": dev.name, "rows": cfg.rows, "cols": cfg.cols, "queries": queries, "keys": keys,
            "head_dim": head_dim, "tiles": -(-queries // cfg.cols), "chunks_per_tile": chunks, "cycles": cycles,
            "seconds": cycles / (cfg.clock_mhz * 1e6), "utilisation_2d": utilisation(head_dim, chunks),
            "keys_for_utilisation_0_9": need, "buffer_bits": sum(bits.values()), "buffers": bits}


def si_scale(value: float) -> tuple[float, str]:
    """A factor and its SI prefix that put ``abs(value)`` between 1 and 1000 (down to pico; 1 and no prefix for 0)."""
    for f, p in ((1e-9, "G"), (1e-6, "M"), (1e-3, "k"), (1.0, ""), (1e3, "m"), (1e6, "u"), (1e9, "n")):
        if abs(value) * f >= 1:
            return f, p
    return (1e12, "p") if value else (1.0, "")


def si(value: float, unit: str) -> str:
    """``value`` with an SI prefix and four significant digits: ``si(0.0333, "J") == "33.3 mJ"``."""
    f, p = si_scale(value)
    return f"{value * f:.4g} {p}{unit}"


def energy_lines(e: EnergyBreakdown, top: int = 5) -> list[str]:
    """What a report prints of an :class:`~accel.energy.EnergyBreakdown`: the total and its dynamic and static
    parts, the energy per unit, and the ``top`` largest event kinds."""
    units = ", ".join(f"{u} {si(j, 'J')}" for u, j in e.by_unit().items() if j > 0)
    largest = sorted(((k, j) for k, j in e.dynamic_j.items() if j > 0), key=lambda kv: -kv[1])[:top]
    return [f"energy     {si(e.total_j, 'J')}: dynamic {si(e.dynamic_total_j, 'J')}, static {si(e.static_total_j, 'J')}"
            f" ({si(e.static_total_j / e.seconds if e.seconds else 0.0, 'W')} over {si(e.seconds, 's')})",
            f"  by unit  {units or 'none'}",
            "  largest  " + (", ".join(f"{k} {si(j, 'J')}" for k, j in largest) or "none")]
