"""The per-operator row of a run's report: one definition for every reader.

The mapper (:mod:`accel.mapping.map`) fills every field of its operator instances; :func:`accel.plots.operator_rows`
builds rows of any program from its operator facts and the run's marker spans (the mapper's extra fields keep their
defaults there). The plots, the JSON report and the text report all read these rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

__all__ = ["OperatorRow"]


@dataclass(frozen=True)
class OperatorRow:
    """One operator (instance) of a run; times in seconds.

    Members
    -------
    name, kind:
        Operator name (``h3.mlp.c_fc``) and kind (``gemm``, ``attn_score``, ``layer_norm``, ...).
    layer:
        Layer index (None outside the layers).
    unit:
        The unit that runs it (``pim``, ``vector``, ``array``, ``link``, ``host``, ``gpu``).
    flops:
        Operations, a MAC counted as two (0 if unknown).
    bytes:
        Bytes it moves: weights, activations, KV cache (0 if unknown).
    start_s, end_s:
        First start and last completion over every stream that works on it.
    bound:
        What bounds it (``bank bandwidth``, ``row activations``, ``vector unit``, ``link``, ...; empty if unknown).
    id:
        Its marker id in the program (-1 if none).
    device:
        The device that runs it (programs of several devices).
    share_s:
        Its share of the latency: how far it moves the program's completion frontier past the operators before it
        (the shares of a run add up to its time; 0 if not computed).
    bank_bound_s:
        Its PIM work at bank bandwidth: the busiest channel's MAC columns at one per ``nCCD_AB``.
    components_s:
        Closed-form amounts of the work it puts on each resource (the mapper's ``BOUNDS``).
    gpu_s:
        GPU fallback time (its roofline), 0 for operators on the device.
    """

    name: str
    kind: str
    layer: Union[int, None]
    unit: str
    flops: float
    bytes: float
    start_s: float
    end_s: float
    bound: str = ""
    id: int = -1
    device: int = 0
    share_s: float = 0.0
    bank_bound_s: float = 0.0
    components_s: dict[str, float] = field(default_factory=dict)
    gpu_s: float = 0.0

    @property
    def time_s(self) -> float:
        """Its span in the run (s): first start to last end (the GPU fallback's time for fallback operators)."""
        return self.end_s - self.start_s + self.gpu_s

    @property
    def intensity(self) -> float:
        """FLOPs per byte (0 without bytes)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def flops_per_s(self) -> float:
        """Achieved FLOP/s (0 without time)."""
        return self.flops / self.time_s if self.time_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "layer": self.layer, "device": self.device,
                "unit": self.unit, "flops": self.flops, "bytes": self.bytes, "start_s": self.start_s,
                "end_s": self.end_s, "share_s": self.share_s, "bank_bound_s": self.bank_bound_s,
                "components_s": self.components_s, "bound": self.bound, "gpu_s": self.gpu_s}
