"""What each unit did when: spans per stream and busy profiles, from a run, for the trace and the timeline plot.

A stream's *spans* are its operators (its MARKs, named from ``Program.operators``) or, on a stream that marks
none, its busy intervals. On one stream spans never overlap: an operator's end is its stream's frontier at the next
MARK (its last completion), which can lie after the next operator's first issue (a read's data still in flight), so
the shown end is cut at the next span's start (and an operator without commands, which starts at the frontier, is
shown from the previous span's end); the true start and end are kept beside them. Large runs stay small: more than
``cap`` operators on a stream are merged into runs of consecutive ones, and busy intervals separated by gaps shorter
than the run's length / ``cap`` are joined, so a stream never has more than ``cap + 1`` spans. All times are ticks of
the run's common time base (:attr:`SystemResult.tick_ns` each).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .emulator.system import SystemResult
from .program import Program, parse_stream_name

__all__ = ["Span", "stream_spans", "busy_spans", "busy_profile", "DEFAULT_CAP"]

#: Most spans per stream (about 200 bytes each in a trace): a GPT-2-XL token's trace stays a few MB.
DEFAULT_CAP = 4096


@dataclass(frozen=True)
class Span:
    """One span of a stream, in ticks.

    Members
    -------
    name, kind:
        The operator's name and kind (``busy`` for a busy interval); a merged run says ``first .. last``.
    ident:
        The operator id (the first of a merged run; None for busy intervals).
    start, end:
        Shown start and end: spans of a stream follow each other without overlap.
    true_start, true_end:
        The operator's own start (its first issue) and end (its stream's last completion before the next MARK).
    count:
        Operators (or busy intervals) merged into the span.
    busy:
        Ticks in the span in which the unit was busy (when the run recorded busy intervals; else None).
    """

    name: str
    kind: str
    ident: int | None
    start: int
    end: int
    true_start: int
    true_end: int
    count: int
    busy: int | None

    def facts(self, program: Program) -> dict[str, Any]:
        """The operator's facts from the program (empty for busy spans)."""
        return dict(program.operators.get(self.ident, {})) if self.ident is not None else {}


def _intervals(result: SystemResult, name: str) -> np.ndarray:
    s = result.streams[name]
    return np.array(s.intervals, dtype=np.int64).reshape(-1, 2) * result.ticks_per_cycle[s.kind]


def _busy_within(iv: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Busy ticks of the merged, sorted intervals ``iv`` inside each window ``[lo, hi)``."""
    if not len(iv):
        return np.zeros(len(lo), dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(iv[:, 1] - iv[:, 0])])

    def upto(t: np.ndarray) -> np.ndarray:  # busy ticks before t
        k = np.searchsorted(iv[:, 0], t, side="right")
        part = np.clip(t - iv[np.maximum(k - 1, 0), 0], 0, iv[np.maximum(k - 1, 0), 1] - iv[np.maximum(k - 1, 0), 0])
        return cum[np.maximum(k - 1, 0)] + np.where(k > 0, part, 0)

    return upto(hi) - upto(lo)


def _operator_spans(result: SystemResult, program: Program, name: str, cap: int) -> list[Span]:
    s = result.streams[name]
    n = result.ticks_per_cycle[s.kind]
    marks = np.array([(a, b) for _, a, b in s.marks], dtype=np.int64).reshape(-1, 2) * n
    ids = [m[0] for m in s.marks]
    starts = marks[:, 0]
    ends = marks[:, 1]
    group = max(1, -(-len(ids) // cap))
    firsts = list(range(0, len(ids), group))
    true_lo = np.array([starts[f:f + group].min() for f in firsts], dtype=np.int64)
    true_hi = np.array([ends[f:f + group].max() for f in firsts], dtype=np.int64)
    # shown spans follow each other: a span starts no earlier than the previous one ends (an operator without
    # commands starts at its stream's frontier, which can pass the next one's first issue) and ends no later than
    # the next one starts
    lo, hi = np.empty_like(true_lo), np.empty_like(true_hi)
    prev = 0
    for j in range(len(firsts)):
        lo[j] = max(true_lo[j], prev)
        nxt = true_lo[j + 1] if j + 1 < len(firsts) else true_hi[j]
        hi[j] = prev = max(lo[j], min(true_hi[j], nxt))
    iv = _intervals(result, name)
    busy = _busy_within(iv, lo, hi) if len(iv) else None
    out = []
    for j, f in enumerate(firsts):
        last = min(f + group, len(ids)) - 1
        first_facts = program.operators.get(ids[f], {})
        label = str(first_facts.get("name", f"operator {ids[f]}"))
        if last > f:
            label += f" .. {program.operators.get(ids[last], {}).get('name', f'operator {ids[last]}')}"
        out.append(Span(label, str(first_facts.get("kind", "")), ids[f], int(lo[j]), int(hi[j]), int(true_lo[j]),
                        int(true_hi[j]), last - f + 1, None if busy is None else int(busy[j])))
    return out


def busy_spans(result: SystemResult, name: str, cap: int = DEFAULT_CAP) -> list[Span]:
    """A stream's busy intervals as spans, joined across short gaps to at most ``cap + 1`` (module docstring)."""
    iv = _intervals(result, name)
    if not len(iv):
        return []
    gaps = iv[1:, 0] - iv[:-1, 1]
    if len(iv) > cap:
        keep = gaps >= (iv[-1, 1] - iv[0, 0]) / cap   # at most cap gaps are that long
    else:
        keep = np.ones(len(gaps), dtype=bool)
    cut = np.concatenate([[0], np.nonzero(keep)[0] + 1, [len(iv)]])
    out = []
    for a, b in zip(cut[:-1], cut[1:]):
        lo, hi = int(iv[a, 0]), int(iv[b - 1, 1])
        out.append(Span("busy", "busy", None, lo, hi, lo, hi, int(b - a), int((iv[a:b, 1] - iv[a:b, 0]).sum())))
    return out


def stream_spans(result: SystemResult, program: Program, cap: int = DEFAULT_CAP) -> dict[str, list[Span]]:
    """Stream name -> its spans (module docstring), in program order."""
    return {name: (_operator_spans(result, program, name, cap) if s.marks else busy_spans(result, name, cap))
            for name, s in result.streams.items()}


def busy_profile(result: SystemResult, kind: str, device: int = 0, bins: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """How many units of ``kind`` on ``device`` are busy over time: ``(times, values)`` with ``values[i]`` holding
    from ``times[i]`` to ``times[i + 1]`` (ticks; the last value 0 at the run's end). Exact steps when there are at
    most ``bins`` of them, else the mean over ``bins`` equal bins. Empty when the run recorded no busy intervals."""
    names = [n for n, s in result.streams.items() if s.kind == kind and parse_stream_name(n)[0] == device]
    iv = [_intervals(result, n) for n in names]
    iv = np.concatenate(iv) if iv else np.zeros((0, 2), dtype=np.int64)
    if not len(iv):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    t = np.concatenate([iv[:, 0], iv[:, 1]])
    d = np.concatenate([np.ones(len(iv)), -np.ones(len(iv))])
    order = np.argsort(t, kind="stable")
    t, level = t[order], np.cumsum(d[order])
    uniq = np.nonzero(np.concatenate([t[1:] != t[:-1], [True]]))[0]
    times, values = t[uniq], level[uniq]
    if len(times) <= bins:
        return times, values
    # the mean level per bin: the integral of the step function, read at the bin edges
    area = np.concatenate([[0.0], np.cumsum(values[:-1] * np.diff(times))])
    edges = np.linspace(times[0], times[-1], bins + 1)
    mean = np.diff(np.interp(edges, times, area)) / np.diff(edges)
    return edges.round().astype(np.int64), np.concatenate([mean, [0.0]])
