"""Peak figures of common data-centre GPUs, from the vendors' datasheets, and matching a device name to them.

Every figure is the datasheet's: memory bandwidth in GB/s (10^9 bytes/s), dense tensor-core FP16 (FP32 accumulate)
and INT8 rates, non-tensor FP32, board power. NVIDIA's datasheets print the FP16/INT8 tensor rates *with
sparsity* (marked ``*``); the dense rates here are half of those, as their footnotes say ("specifications one-half
lower without sparsity").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .backend import GpuError

__all__ = ["GpuPeak", "GPU_PEAKS", "find_peak", "device_peak"]

_A100 = "NVIDIA A100 Tensor Core GPU datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf)"
_H100 = "NVIDIA H100 Tensor Core GPU datasheet (h100-datasheet, 2023)"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (2024)"


@dataclass(frozen=True)
class GpuPeak:
    """One GPU's peak figures.

    Members
    -------
    key:
        Short name (``h100-sxm``), accepted wherever a GPU is named.
    name:
        The product as the datasheet names it.
    patterns:
        Regular expressions (case-insensitive) matched against ``torch.cuda.get_device_name()``.
    memory_gb:
        Device memory (GB).
    bandwidth_gbs:
        Peak DRAM bandwidth (GB/s, 10^9 bytes/s).
    fp16_tflops, int8_tops:
        Dense tensor-core peaks (10^12 FLOP/s, 10^12 op/s).
    fp32_tflops:
        Non-tensor FP32 peak (10^12 FLOP/s).
    tdp_w:
        Board power limit (W).
    source:
        The datasheet.
    targets:
        The issue's performance targets apply (H100 and H200).
    """

    key: str
    name: str
    patterns: tuple[str, ...]
    memory_gb: float
    bandwidth_gbs: float
    fp16_tflops: float
    int8_tops: float
    fp32_tflops: float
    tdp_w: float
    source: str
    targets: bool = False

    def peak_ops(self, compute: str) -> float:
        """Peak rate (op/s) of a compute class: ``fp16`` (tensor cores, also bf16), ``int8`` or ``fp32``."""
        return {"fp16": self.fp16_tflops, "int8": self.int8_tops, "fp32": self.fp32_tflops}[compute] * 1e12

    @property
    def bandwidth(self) -> float:
        """Peak DRAM bandwidth (bytes/s)."""
        return self.bandwidth_gbs * 1e9


#: Most specific first: the first entry whose pattern matches a device name wins.
GPU_PEAKS: tuple[GpuPeak, ...] = (
    GpuPeak("h200-nvl", "NVIDIA H200 NVL", (r"H200.*NVL",), 141, 4800, 835.5, 1670.5, 60, 600, _H200, True),
    GpuPeak("h200-sxm", "NVIDIA H200 SXM", (r"H200",), 141, 4800, 989.5, 1979, 67, 700, _H200, True),
    GpuPeak("h100-nvl", "NVIDIA H100 NVL", (r"H100.*NVL",), 94, 3900, 835.5, 1670.5, 60, 400, _H100, True),
    GpuPeak("h100-pcie", "NVIDIA H100 PCIe", (r"H100.*PCIe",), 80, 2000, 756.5, 1513, 51, 350, _H100, True),
    GpuPeak("h100-sxm", "NVIDIA H100 SXM5", (r"H100",), 80, 3350, 989.5, 1979, 67, 700, _H100, True),
    GpuPeak("a100-80gb-pcie", "NVIDIA A100 80GB PCIe", (r"A100.*80GB.*PCIe", r"A100-PCIE-80GB"), 80, 1935, 312,
            624, 19.5, 300, _A100),
    GpuPeak("a100-40gb-pcie", "NVIDIA A100 40GB PCIe", (r"A100.*PCIe",), 40, 1555, 312, 624, 19.5, 250, _A100),
    GpuPeak("a100-80gb-sxm", "NVIDIA A100 80GB SXM", (r"A100.*80GB",), 80, 2039, 312, 624, 19.5, 400, _A100),
    GpuPeak("a100-40gb-sxm", "NVIDIA A100 40GB SXM", (r"A100",), 40, 1555, 312, 624, 19.5, 400, _A100),
    GpuPeak("l40s", "NVIDIA L40S", (r"L40S",), 48, 864, 362.05, 733, 91.6, 350, "NVIDIA L40S datasheet (2023)"),
    GpuPeak("a10", "NVIDIA A10", (r"\bA10\b",), 24, 600, 125, 250, 31.2, 150, "NVIDIA A10 Tensor Core GPU datasheet"),
    GpuPeak("l4", "NVIDIA L4", (r"\bL4\b",), 24, 300, 121, 242.5, 30.3, 72, "NVIDIA L4 Tensor Core GPU datasheet"),
    GpuPeak("mi300x", "AMD Instinct MI300X", (r"MI300X",), 192, 5300, 1307.4, 2614.9, 163.4, 750,
            "AMD Instinct MI300X accelerator datasheet (dense figures; with sparsity twice FP16/INT8)"),
)


def find_peak(name: str) -> GpuPeak:
    """The table entry for a key (``h100-sxm``) or a device name as torch reports it (``NVIDIA H100 80GB HBM3``).

    Raises
    ------
    GpuError
        No entry matches; the message lists the keys.
    """
    if not isinstance(name, str) or not name.strip():
        raise GpuError(f"GPU name {name!r} is empty; give a key ({', '.join(p.key for p in GPU_PEAKS)}) or a device "
                       f"name such as 'NVIDIA H100 80GB HBM3'")
    for p in GPU_PEAKS:
        if name.strip().lower() == p.key:
            return p
    for p in GPU_PEAKS:
        if any(re.search(pat, name, re.IGNORECASE) for pat in p.patterns):
            return p
    raise GpuError(f"GPU {name!r} is not in the peak table; use one of {', '.join(p.key for p in GPU_PEAKS)} "
                   f"(accel gpu peaks lists them), or add its datasheet figures to accel/gpu/peaks.py")


def device_peak() -> tuple[str, GpuPeak | None]:
    """The name of CUDA device 0 (``torch.cuda.get_device_name``) and its table entry (None if it has none).

    Call only where a GPU is present (it initialises CUDA).
    """
    import torch

    name = torch.cuda.get_device_name(0)
    try:
        return name, find_peak(name)
    except GpuError:
        return name, None
