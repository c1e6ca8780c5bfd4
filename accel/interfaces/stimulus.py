"""The port contract of a unit and the stimulus that drives it, shared by the per-cycle models and the equivalence
harness.

The contract
------------
Ports are the Amaranth component's signature members flattened with ``"__"`` (``act__valid``, ``act__payload``,
``res__ready``) — the names Amaranth gives the Verilog ports. Every value is an unsigned packed integer of the port's
width (payloads packed by the unit's field tables, :mod:`accel.interfaces.packing`). A per-cycle model has
``reset()`` and ``step(inputs) -> outputs``: ``step`` returns this cycle's outputs (combinational outputs see this
cycle's inputs) and then advances the state by one clock edge.

A :class:`Stimulus` describes what the environment does, not fixed per-cycle values: stream *sources* offer their beats
in order, gated by a per-cycle valid mask, and advance only on a transfer (valid and ready); stream *sinks* raise ready
by a per-cycle mask (backpressure); *plain* inputs take per-cycle values. The same :class:`Driver` runs inside every
view (:func:`run_model` here; Amaranth's simulator and cocotb in :mod:`accel.equivalence.harness`), so all see
identical inputs for as long as their outputs agree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

Trace = list[dict[str, int]]

__all__ = ["Stimulus", "Driver", "Trace", "Model", "run_model", "taken", "trim_after_last_beat"]


class Model(Protocol):
    def reset(self) -> None: ...

    def step(self, inputs: dict[str, int]) -> dict[str, int]: ...


@dataclass
class Stimulus:
    """What the environment does for ``cycles`` clock cycles after a reset.

    Parameters
    ----------
    sources:
        Stream name -> packed payloads offered in order.
    source_valid:
        Stream name -> per-cycle 0/1: whether the source offers its next beat in that cycle (if it has one).
    sink_ready:
        Stream name -> per-cycle 0/1 ready.
    plain:
        Input port -> per-cycle value.
    cycles:
        Cycles to run.
    label:
        Shown in mismatch reports (for example the seed).
    expected:
        The golden results of the unit's numerics for this stimulus (unit-specific, JSON-able), for its check.
    """

    sources: dict[str, list[int]]
    source_valid: dict[str, list[int]]
    sink_ready: dict[str, list[int]]
    cycles: int
    plain: dict[str, list[int]] = field(default_factory=dict)
    label: str = ""
    expected: Any = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Stimulus":
        return cls(**d)


class Driver:
    """The environment's behaviour for one stimulus, identical in every backend."""

    def __init__(self, stim: Stimulus) -> None:
        self.stim = stim
        self.pos = {s: 0 for s in stim.sources}
        self.received: dict[str, list[int]] = {s: [] for s in stim.sink_ready}

    def inputs(self, cycle: int) -> dict[str, int]:
        ins: dict[str, int] = {}
        for s, beats in self.stim.sources.items():
            offer = bool(self.stim.source_valid[s][cycle]) and self.pos[s] < len(beats)
            ins[f"{s}__valid"] = int(offer)
            ins[f"{s}__payload"] = beats[self.pos[s]] if offer else 0
        for s, ready in self.stim.sink_ready.items():
            ins[f"{s}__ready"] = int(ready[cycle])
        for p, vals in self.stim.plain.items():
            ins[p] = vals[cycle]
        return ins

    def observe(self, ins: dict[str, int], outs: dict[str, int]) -> None:
        for s in self.stim.sources:
            if ins[f"{s}__valid"] and outs[f"{s}__ready"]:
                self.pos[s] += 1
        for s in self.stim.sink_ready:
            if outs[f"{s}__valid"] and ins[f"{s}__ready"]:
                self.received[s].append(outs[f"{s}__payload"])

    @property
    def sources_done(self) -> bool:
        return all(self.pos[s] == len(b) for s, b in self.stim.sources.items())


def run_model(model: Model, stim: Stimulus) -> Trace:
    """Run one stimulus through a per-cycle model (after ``reset()``)."""
    model.reset()
    drv = Driver(stim)
    trace: Trace = []
    for cycle in range(stim.cycles):
        ins = drv.inputs(cycle)
        outs = model.step(ins)
        drv.observe(ins, outs)
        trace.append(outs)
    return trace


def taken(stim: Stimulus, trace: Trace, sink: str) -> list[tuple[int, int]]:
    """``(cycle, payload)`` of every beat the ``sink`` stream delivered (valid and ready)."""
    return [(c, outs[f"{sink}__payload"]) for c, outs in enumerate(trace)
            if outs[f"{sink}__valid"] and stim.sink_ready[sink][c]]


def trim_after_last_beat(stim: Stimulus, model: Model, sink: str, margin: int = 4) -> Stimulus:
    """Run ``stim`` through ``model`` and cut it (in place) to end ``margin`` cycles after the last beat ``sink``
    delivered (unchanged if none did). Stimuli are generated with a generous cycle bound, then trimmed."""
    beats = taken(stim, run_model(model, stim), sink)
    n = stim.cycles if not beats else beats[-1][0] + margin
    for dct in (stim.source_valid, stim.sink_ready, stim.plain):
        for key in dct:
            dct[key] = dct[key][:n]
    stim.cycles = n
    return stim
