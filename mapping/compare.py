"""The same model step on the emulated device and on a GPU, operator by operator: what ``accel gpu compare`` prints.

The device side is :func:`mapping.map.map_model`'s run: each operator's share of the step's latency (the shares sum
to the latency, GPU fallback included) and the step's energy from the device's energy table. The GPU side runs every
operator of the same workload as the kernel it maps to (:func:`mapping.partition.gpu_kernel`: the packed low-bit
GEMV/GEMM, the fused attention, the vector kernels), one after another as a GPU executes a step:

* **measured** on a GPU with native Triton: each distinct kernel shape timed once with ``triton.testing.do_bench``
  (:func:`accel.gpu.bench.time_op`; dense fp16 weights time torch's cuBLAS matmul), the board's mean power sampled
  from NVML while it runs (:mod:`accel.gpu.power`) and the kernel's energy = mean power x median time; without NVML
  the energy is the estimate below;
* **estimated** everywhere else: the roofline time on the named GPU of the peak table
  (:func:`mapping.partition.gpu_time`: a lower bound, no launch overhead) and energy = board power limit x time,
  marked as an estimate, never as a measurement.

KV-cache writes and embedding lookups are copies with no kernel of their own: their bytes at the GPU's peak
bandwidth on both kinds of machine (``source`` says ``copy``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from accel.config import DeviceConfig

from .map import MapResult, map_model
from .partition import _sections, gpu_kernel, gpu_time, op_key
from .workload import Operator

__all__ = ["CompareRow", "Comparison", "compare", "compare_model", "format_compare"]


@dataclass
class CompareRow:
    """One operator of the workload, summed over the layers that run it: ``count`` instances, the device's share
    of the step (s), the GPU's time (s) and energy (J), and how the GPU figure was taken (``measured``,
    ``roofline`` or ``copy``)."""

    key: str
    name: str
    kind: str
    unit: str
    count: int
    device_s: float
    gpu_s: float
    gpu_j: float
    source: str

    @property
    def speedup(self) -> float:
        """GPU time over device time (above 1: the device is faster)."""
        return self.gpu_s / self.device_s if self.device_s else float("inf")


@dataclass
class Comparison:
    """A mapped step (:class:`mapping.map.MapResult`) beside the GPU's time and energy for the same operators."""

    map: MapResult
    gpu: str                 # the GPU's name (the device's own when measured, else the peak table's)
    gpu_key: str
    measured: bool
    energy_source: str       # "NVML board power" or the estimate's description
    note: str                # one line: how the GPU side was taken
    rows: list[CompareRow] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        w = self.map.workload
        return w.batch * w.tokens

    @property
    def device_s(self) -> float:
        return self.map.latency_s

    @property
    def gpu_s(self) -> float:
        return sum(r.gpu_s for r in self.rows)

    @property
    def gpu_j(self) -> float:
        return sum(r.gpu_j for r in self.rows)

    @property
    def speedup(self) -> float:
        """The GPU's step time over the device's (above 1: the device is faster)."""
        return self.gpu_s / self.device_s if self.device_s else float("inf")

    def per_token(self) -> dict[str, float]:
        """Seconds and joules per new token on both sides (the device's energy leaves out its GPU fallback)."""
        t = self.tokens
        return {"device_s": self.device_s / t, "gpu_s": self.gpu_s / t,
                "device_j": self.map.energy.total_j / t, "gpu_j": self.gpu_j / t}

    def to_json(self) -> dict[str, Any]:
        w, pt = self.map.workload, self.per_token()
        return {"model": w.model, "phase": w.phase, "batch": w.batch, "tokens": w.tokens, "context": w.context,
                "weights": w.precision.weights.name, "device": self.map.device.name, "devices": self.map.devices,
                "gpu": self.gpu, "gpu_key": self.gpu_key, "measured": self.measured,
                "energy_source": self.energy_source, "note": self.note,
                "per_token": pt, "speedup": self.speedup,
                "energy_ratio": pt["gpu_j"] / pt["device_j"] if pt["device_j"] else None,
                "operators": [{"key": r.key, "name": r.name, "kind": r.kind, "unit": r.unit, "count": r.count,
                               "device_s": r.device_s, "gpu_s": r.gpu_s, "gpu_j": r.gpu_j, "source": r.source,
                               "speedup": r.speedup} for r in self.rows]}


class _GpuSide:
    """Times (s) and energies (J) of operators on one GPU, measured or estimated, each distinct kernel once."""

    def __init__(self, measured: bool, key: str, tdp_w: float, nvml: bool) -> None:
        self.measured, self.key, self.tdp_w, self.nvml = measured, key, tdp_w, nvml
        self._cache: dict[tuple, tuple[float, float]] = {}

    def _measure(self, kind: str, shape: dict[str, int]) -> tuple[float, float]:
        from accel.gpu.bench import time_dense_matmul, time_op

        if kind == "matmul" and shape["weight_bits"] == 16:
            run = lambda: time_dense_matmul(shape["M"], shape["N"], shape["K"])  # noqa: E731
        else:
            run = lambda: time_op(kind, shape)["ours"]  # noqa: E731
        if self.nvml:
            from accel.gpu.power import measure_power

            res, watts = measure_power(run)
        else:
            res, watts = run(), self.tdp_w
        s = res["median_ms"] * 1e-3
        return s, watts * s

    def op(self, op: Operator) -> tuple[float, float, str]:
        k = gpu_kernel(op)
        if k is None:
            s = gpu_time(op, self.key)
            return s, s * self.tdp_w, "copy"
        if not self.measured:
            s = gpu_time(op, self.key)
            return s, s * self.tdp_w, "roofline"
        kind, shape, fraction = k
        ck = (kind, tuple(sorted(shape.items())))
        if ck not in self._cache:
            self._cache[ck] = self._measure(kind, shape)
        s, j = self._cache[ck]
        return fraction * s, fraction * j, "measured"


def compare(mr: MapResult, gpu: str = "h100-sxm", measure: Union[bool, None] = None) -> Comparison:
    """The GPU side of a mapped step.

    Parameters
    ----------
    mr:
        The mapped step.
    gpu:
        The peak-table GPU of the estimate (a key of :data:`accel.gpu.GPU_PEAKS`); when measuring, the GPU present
        is used and named instead.
    measure:
        True: time the kernels (a GPU with native Triton is required: :class:`accel.gpu.NoGpuError` otherwise);
        False: roofline estimate; None: measure when a GPU is present, else estimate.
    """
    from accel.gpu import find_peak
    from accel.gpu.backend import kernel_mode, require_gpu

    if measure is None:
        measure = kernel_mode() == "native"
    if measure:
        require_gpu("accel gpu compare's measured GPU side", "; leave out --measure for the roofline estimate")
        from accel.gpu.peaks import device_peak
        from accel.gpu.power import nvml_status

        name, peak = device_peak()
        nvml, why = nvml_status()
        key = peak.key if peak is not None else gpu
        tdp = peak.tdp_w if peak is not None else find_peak(gpu).tdp_w
        energy_source = why if nvml else f"estimate: board power limit {tdp:g} W x time ({why})"
        note = f"GPU side measured on {name} (triton.testing.do_bench, each distinct kernel shape once)"
    else:
        peak = find_peak(gpu)
        name, key, tdp, nvml = peak.name, peak.key, peak.tdp_w, False
        energy_source = f"estimate: board power limit {tdp:g} W x roofline time"
        why = "no GPU here" if kernel_mode() != "native" else "a roofline estimate was asked for"
        note = (f"{why}: the GPU side is a roofline estimate on {peak.name} (peak table: {peak.bandwidth_gbs:g} GB/s, "
                f"{peak.fp16_tflops:g} fp16 TFLOP/s), not a measurement")
    side = _GpuSide(measure, key, tdp, nvml)
    cmp = Comparison(mr, name, key, measure, energy_source, note)
    device = {g["key"]: g for g in mr.by_operator()}
    w = mr.workload
    uses = [w.layers.count(b) for b in range(len(w.blocks))]
    for section, block, ops in _sections(w):
        times = 1 if block is None else uses[block]
        if not times:
            continue
        for op in ops:
            key_ = op_key(section, block, op.name)
            s, j, source = side.op(op)
            g = device.get(key_, {})
            dev_s = g.get("share_s", 0.0) + g.get("gpu_s", 0.0)
            cmp.rows.append(CompareRow(key_, op.name, op.kind_name, g.get("unit", "-"), times, dev_s, s * times,
                                       j * times, source))
    return cmp


def compare_model(model: str, device: Union[str, DeviceConfig], *, gpu: str = "h100-sxm",
                  measure: Union[bool, None] = None, **map_args: Any) -> Comparison:
    """:func:`mapping.map.map_model` (with ``map_args``; its fallback GPU is ``gpu``) and :func:`compare`."""
    return compare(map_model(model, device, gpu=gpu, **map_args), gpu, measure)


def format_compare(c: Comparison, top: int = 12) -> str:
    """The comparison as text: per token on both sides, then the operators that take the most GPU time."""
    from accel.fmt import si

    w, pt = c.map.workload, c.per_token()
    what = f"decode, context {w.context}" if w.phase == "decode" else f"prefill of {w.tokens} tokens"
    lines = [f"model      {w.model} ({what}, batch {w.batch}, weights {w.precision.weights.name})",
             f"device     {c.map.device.name}" + (f" x {c.map.devices}" if c.map.devices > 1 else "")
             + " (emulated: the system engine's exact run)",
             f"gpu        {c.gpu} ({'measured' if c.measured else 'roofline estimate'})",
             f"note       {c.note}",
             f"per token  device {si(pt['device_s'], 's')}, GPU {si(pt['gpu_s'], 's')}: the device is "
             + (f"{c.speedup:.3g}x faster" if c.speedup >= 1 else f"{1 / c.speedup:.3g}x slower"),
             f"energy     device {si(pt['device_j'], 'J')}, GPU {si(pt['gpu_j'], 'J')} per token"
             + (f" ({pt['gpu_j'] / pt['device_j']:.3g}x on the GPU)" if pt["device_j"] else "")
             + f"; GPU energy: {c.energy_source}",
             ""]
    lines.append(f"  {'operator':28s} {'x':>3s} {'kind':13s} {'unit':5s} {'device':>10s} {'GPU':>10s} "
                 f"{'speedup':>8s}  GPU figure")
    rows = sorted(c.rows, key=lambda r: -r.gpu_s)
    for r in rows[:top]:
        lines.append(f"  {r.name[:28]:28s} {r.count:3d} {r.kind[:13]:13s} {r.unit:5s} {si(r.device_s, 's'):>10s} "
                     f"{si(r.gpu_s, 's'):>10s} {r.speedup:8.3g}  {r.source}")
    if len(rows) > top:
        rest = rows[top:]
        lines.append(f"  ({len(rest)} more operators: device {si(sum(r.device_s for r in rest), 's')}, GPU "
                     f"{si(sum(r.gpu_s for r in rest), 's')})")
    return "\n".join(lines)
