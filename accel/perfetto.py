"""A run as a trace for Perfetto (ui.perfetto.dev) or chrome://tracing: Chrome trace-event JSON.

One process track per device (``pid`` = device index + 1, named ``device K (PRESET)``), one thread track per unit
stream (``tid`` = stream index + 1, named after the stream, in program order). Each stream's spans
(:func:`accel.timeline.stream_spans`: one complete event, ``ph: "X"``, per operator per stream, or per busy interval
on a stream without markers; at most ``cap + 1`` per stream) carry the operator's facts in ``args``. Per device and
unit kind a counter track (``ph: "C"``) counts the busy units over time (at most ``bins`` steps). Timestamps and
durations are in microseconds, as the format requires (floats, to the picosecond).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .emulator.system import SystemResult
from .outputs import write_text_atomic
from .program import Program, parse_stream_name
from .timeline import DEFAULT_CAP, busy_profile, stream_spans

__all__ = ["trace_json", "write_trace"]

_KINDS = ("pim", "vector", "link", "array")


def trace_json(result: SystemResult, program: Program, cap: int = DEFAULT_CAP, bins: int = 1000) -> dict[str, Any]:
    """The trace of ``result`` (a run of ``program``) as a JSON-able dict (module docstring)."""
    us = result.tick_ns / 1000.0

    def t(ticks: int) -> float:
        return round(ticks * us, 6)

    events: list[dict[str, Any]] = []
    devices = sorted({parse_stream_name(n)[0] for n in result.streams})
    for d in devices:
        events.append({"name": "process_name", "ph": "M", "ts": 0, "pid": d + 1, "tid": 0,
                       "args": {"name": f"device {d} ({result.device})"}})
        events.append({"name": "process_sort_index", "ph": "M", "ts": 0, "pid": d + 1, "tid": 0,
                       "args": {"sort_index": d}})
    for tid, (name, spans) in enumerate(stream_spans(result, program, cap).items(), 1):
        pid = parse_stream_name(name)[0] + 1
        per = result.ticks_per_cycle[result.streams[name].kind]
        events.append({"name": "thread_name", "ph": "M", "ts": 0, "pid": pid, "tid": tid, "args": {"name": name}})
        events.append({"name": "thread_sort_index", "ph": "M", "ts": 0, "pid": pid, "tid": tid,
                       "args": {"sort_index": tid}})
        for sp in spans:
            args: dict[str, Any] = sp.facts(program)
            args["cycles"] = (sp.end - sp.start) // per
            if sp.ident is not None:
                args["operator"] = sp.ident
                if (sp.true_start, sp.true_end) != (sp.start, sp.end):  # shown cut to its neighbours
                    args["start_us"], args["end_us"] = t(sp.true_start), t(sp.true_end)
            if sp.count > 1:
                args["merged"] = sp.count
            if sp.busy is not None:
                args["busy_cycles"] = sp.busy // per
            start = t(sp.start)
            events.append({"name": sp.name, "cat": sp.kind or "operator", "ph": "X", "ts": start,
                           "dur": round(t(sp.end) - start, 6), "pid": pid, "tid": tid, "args": args})
    for d in devices:
        for kind in _KINDS:
            times, values = busy_profile(result, kind, d, bins)
            for tk, v in zip(times.tolist(), values.tolist()):
                events.append({"name": f"busy {kind} units", "ph": "C", "ts": t(tk), "pid": d + 1, "tid": 0,
                               "args": {"busy": round(v, 4)}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"device": result.device, "cycles": result.cycles, "time_ns": result.time_ns,
                          "program_meta": program.meta}}


def write_trace(path: str | Path, result: SystemResult, program: Program, cap: int = DEFAULT_CAP,
                bins: int = 1000) -> Path:
    """Write :func:`trace_json` to ``path`` (compact JSON, atomically; :mod:`accel.outputs`)."""
    text = json.dumps(trace_json(result, program, cap, bins), separators=(",", ":"))
    return write_text_atomic(path, text, "--trace")
