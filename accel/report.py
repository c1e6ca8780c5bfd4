"""Reports: what ``accel emulate`` and ``accel array gemm|attention`` print, as plain data.

Each function runs the library (the channel engine and the AiM host system for traces, the units' closed forms and
per-cycle models for the array) and returns a JSON-able dict; the commands only print it, as JSON or as text.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import DeviceConfig, GemmConfig, load_preset
from .energy import EnergyBreakdown
from .errors import AccelError, at
from .files import read_text
from .fmt import si
from .fmt import value as show
from .traces import TraceError, is_aim_trace, is_aim_trace_file, parse_text_trace, read_aim_trace

__all__ = ["trace_report", "trace_paths", "trace_batch", "batch_row", "batch_table", "bank_summary", "gemm_report",
           "attention_report", "EMULATE_LIMIT", "energy_lines"]

#: Largest ``cycles * rows * cols`` that :func:`gemm_report` runs through the per-cycle model (about 20 s).
EMULATE_LIMIT = 20_000_000


def trace_report(path: str | Path, device: DeviceConfig, *, timing: str = "0f28a07", reference: bool = False,
                 strict: bool = False) -> dict[str, Any]:
    """Run a trace file (AiM host format or our text form, :mod:`accel.traces`) on a device: cycles, time, each
    bank's row-open and MAC-busy fractions (channels x banks), lane MACs and their fraction of the peak. Every error
    names the file and the line of the request or command that caused it.

    AiM host traces: ``timing`` is the commit of SK hynix's simulator whose GDDR6 timing table to apply
    (:data:`accel.emulator.aim.AIM_RULE_VARIANTS`: ``"0f28a07"``, its HEAD, or ``"2eb1ee0"``, the commit CENT pins);
    ``reference`` runs the per-command reference model instead of the fast one (same counts, far slower).
    ``strict`` (our text form): every command must be legal in the cycle after its predecessor on its channel (a
    command issued too early is an error) instead of waiting for its earliest legal cycle."""
    path = Path(path)
    text = read_text(path, "trace", TraceError)
    p = device.pim
    if is_aim_trace(text):
        from .emulator.aim import AimSystem

        if strict:
            raise TraceError(f"{path}: --strict applies to command traces (accel text form); an AiM host trace is "
                             f"scheduled by the AiM controllers, which issue each command when it is legal")
        res = AimSystem(device, timing=timing).run(read_aim_trace(text, str(path)), reference=reference)
        cycles, active, macs, lane_ops = res.cycles, res.bank_active_cycles, res.bank_mac_commands, res.mac_lane_ops
        fmt, extra = "aim", {"aim_timing": timing, "dram_commands": res.commands, "host_requests": res.host_requests}
    else:
        from .emulator.engine import DeviceEngine

        prog, lines = parse_text_trace(text, str(path))
        if not prog:
            raise TraceError(f"{path}: no commands (only blank lines and comments); a trace holds one command per "
                             f"line (MAC all_banks=1 col=0 count=64, or AiM MAC_ABK 64 0xffffffff 0)")
        try:
            stats = DeviceEngine(device, functional=False).run(prog, strict=strict)
        except AccelError as e:
            if e.command is not None:
                at(e, f"{path}:{lines[e.command[1]]}")
            raise
        cycles, active, macs, lane_ops = stats.cycles, stats.bank_active_cycles, stats.bank_mac_elements, \
            stats.mac_lane_ops
        fmt, extra = "accel", {"commands": stats.commands, "elements": stats.elements, "strict": strict}
    cyc = max(cycles, 1)
    pitch = p.timing.nCCD_AB
    return {
        "trace": str(path),
        "format": fmt,
        "device": device.name,
        "cycles": int(cycles),
        "time_ns": cycles * p.timing.tck_ns,
        "tck_ns": p.timing.tck_ns,
        "bank_active_fraction": [[_round6(v / cyc) for v in row] for row in _rows(active)],
        "bank_mac_fraction": [[_round6(v * pitch / cyc) for v in row] for row in _rows(macs)],
        "mac_lane_ops": int(lane_ops),
        "peak_mac_fraction": lane_ops / (device.peak_macs_per_cycle() * cyc),
        **extra,
    }


def _rows(m: Any) -> list[list[int]]:
    """A channels x banks table (lists, or the engine's array) as lists of Python ints."""
    return m.tolist() if hasattr(m, "tolist") else m


def _round6(x: float) -> float:
    """``x`` rounded to 6 decimals as numpy rounds (``rint(x * 1e6) / 1e6``), so that reports read the same with or
    without numpy."""
    return round(x * 1e6) / 1e6


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
        if target.is_dir():
            raise TraceError(f"--batch {target}: is a folder; run a folder's traces with accel emulate {target} "
                             f"(no --batch), or give --batch a file that lists traces one a line")
        text = read_text(target, "list of traces", TraceError)
        out = []
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if line:
                p = Path(line) if Path(line).is_absolute() else target.parent / line
                if not p.is_file():
                    raise TraceError(f"{target}:{n}: {show(line)} is not a file (paths are relative to the list); "
                                     f"list one trace file a line")
                out.append(p)
    else:
        if not target.is_dir():
            raise TraceError(f"{target}: no such folder; give a folder of AiM traces, a trace file, or --batch LIST")
        out = [p for p in sorted(target.iterdir()) if p.is_file() and not p.name.startswith(".")
               and is_aim_trace_file(p)]
    if not out:
        raise TraceError(f"{target}: lists no traces; list one trace file a line ('#' starts a comment)" if batch else
                         f"{target}: no AiM host traces in it (files whose first request line starts with AiM, W or "
                         f"R); give a folder holding traces, or one trace file")
    return out


def batch_row(report: dict[str, Any], wall_s: float) -> dict[str, Any]:
    """One line of a batch: a :func:`trace_report` in short, with per-bank utilisation as the mean over channels of
    each bank (``bank_row_open``, ``bank_mac_busy``) and over everything (``row_open``, ``mac_busy``)."""
    import numpy as np

    active = np.array(report["bank_active_fraction"])
    mac = np.array(report["bank_mac_fraction"])
    return {"trace": report["trace"], "format": report["format"], "cycles": report["cycles"],
            "time_ms": report["time_ns"] / 1e6, "host_requests": report.get("host_requests"),
            "row_open": float(active.mean()), "mac_busy": float(mac.mean()),
            "peak_mac_fraction": report["peak_mac_fraction"],
            "bank_row_open": active.mean(axis=0).round(6).tolist(), "bank_mac_busy": mac.mean(axis=0).round(6).tolist(),
            "wall_s": round(wall_s, 3)}


def trace_batch(paths: Sequence[Path], device: DeviceConfig, *, timing: str = "0f28a07", reference: bool = False,
                strict: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Run each trace (:func:`trace_report`) and gather the :func:`batch_row` lines, with a progress bar over the
    traces (``progress`` as in :mod:`accel.progress`). A bad trace stops the batch with its error (which names the
    trace and the line)."""
    from .progress import progress_bar

    rows = []
    with progress_bar(len(paths), "traces", unit="trace", show=progress) as bar:
        for path in paths:
            bar.set_postfix_str(Path(path).name, refresh=False)
            t = time.perf_counter()
            rep = trace_report(path, device, timing=timing, reference=reference, strict=strict)
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
    import numpy as np

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
        raise AccelError(f"{missing} is missing: give the array size with --rows and --cols, or --device")
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
    # utilisation: busy PE-cycles over all PE-cycles of the cycles counted (SCALE-Sim's Total Cycles is the index of
    # the last cycle, one less than the count); SCALE-Sim's own figure divides by its Total Cycles
    counted = t.cycles + 1 if t.timing == "scalesim" else t.cycles
    out["counted_cycles"] = counted
    out["utilisation"] = t.macs / (rows * cols * counted)
    if t.timing == "scalesim":
        out["scalesim_utilisation"] = t.utilisation
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
    import numpy as np

    cfg = GemmConfig(rows=rows, cols=cols, data_bits=data_bits)
    rng = np.random.default_rng(0)
    hi = 1 << (cfg.data_bits - 1)
    a = rng.integers(-hi, hi, (M, K))
    b = rng.integers(-hi, hi, (K, N))
    run = run_systolic(cfg, a, b, dataflow)
    return {"emulated_cycles": run.cycles, "emulated_exact": bool((run.out == gemm_golden(cfg, a, b)).all()),
            "data_bits": cfg.data_bits}


def attention_report(preset: str, queries: int, keys: int, head_dim: int) -> dict[str, Any]:
    """Cycles, utilisation and on-chip buffers of one attention head (``queries`` x ``keys`` tokens, head dimension
    ``head_dim``) on a preset's attention array (closed forms).

    ``utilisation``: busy PE-cycles of the 2D array (``2 * queries * keys * head_dim`` MACs: QK and V) over all its
    PE-cycles (``rows * cols * cycles``); ``busy_fraction_2d``: the fraction of cycles in which the 2D array
    multiplies at all (:func:`~accel.emulator.units.attention.utilisation`), equal to the utilisation when the
    queries fill the array's columns and the keys its rows; ``keys_for_utilisation_0_9``: keys per head from which
    the utilisation of full tiles reaches 0.9 (None where it never does)."""
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
            "seconds": cycles / (cfg.clock_mhz * 1e6),
            "utilisation": 2 * queries * keys * head_dim / (cfg.rows * cfg.cols * cycles),
            "busy_fraction_2d": utilisation(head_dim, chunks),
            "keys_for_utilisation_0_9": need, "buffer_bits": sum(bits.values()), "buffers": bits}


def energy_lines(e: EnergyBreakdown, top: int = 5) -> list[str]:
    """What a report prints of an :class:`~accel.energy.EnergyBreakdown`: the total and its dynamic and static
    parts, the energy per unit, and the ``top`` largest event kinds."""
    units = ", ".join(f"{u} {si(j, 'J')}" for u, j in e.by_unit().items() if j > 0)
    largest = sorted(((k, j) for k, j in e.dynamic_j.items() if j > 0), key=lambda kv: -kv[1])[:top]
    return [f"energy     {si(e.total_j, 'J')}: dynamic {si(e.dynamic_total_j, 'J')}, static {si(e.static_total_j, 'J')}"
            f" ({si(e.static_total_j / e.seconds if e.seconds else 0.0, 'W')} over {si(e.seconds, 's')})",
            f"  by unit  {units or 'none'}",
            "  largest  " + (", ".join(f"{k} {si(j, 'J')}" for k, j in largest) or "none")]
