"""The accelerator's operators as Triton kernels, with torch references, a GPU peak table and a roofline.

Importing ``accel.gpu`` imports neither torch nor Triton: the peak table (:mod:`.peaks`), the operator cost counts
and roofline (:mod:`.roofline`), the benchmark's model shapes (:mod:`.models`) and the mode switch
(:mod:`.backend`) are plain Python. The kernels live one per module (:mod:`.quant_gemv`, :mod:`.quant_gemm`,
:mod:`.attention_prefill`, :mod:`.attention_decode`, :mod:`.norms`, :mod:`.activations`, :mod:`.rotary`,
:mod:`.softmax`, with the packed format in :mod:`.quant_pack`); importing one fixes whether kernels run natively or
in Triton's interpreter (:func:`.backend.kernel_mode`). The per-operator API of :mod:`.ops` (``run_gemv_q``,
``attention_decode``, ``layernorm``, ...) is reachable from here too and is imported on first use.
See docs/gpu.md.
"""
from __future__ import annotations

from typing import Any

from .backend import GpuError, KernelInputError, NoGpuError, use_interpreter
from .models import MODELS
from .peaks import GPU_PEAKS, GpuPeak, find_peak
from .roofline import OP_KINDS, OpCost, op_cost, roofline_time

__all__ = ["GpuError", "KernelInputError", "NoGpuError", "use_interpreter", "MODELS", "GPU_PEAKS", "GpuPeak",
           "find_peak", "OP_KINDS", "OpCost", "op_cost", "roofline_time"]

_OPS = ("run_gemv_q", "run_gemm_q", "attention_prefill", "attention_decode", "layernorm", "rmsnorm", "gelu", "silu",
        "silu_mul", "residual_add", "rotary", "rope_tables", "softmax", "OPS_BY_KIND")


def __getattr__(name: str) -> Any:  # the kernels load torch and Triton: only when first used
    if name in _OPS:
        from . import ops

        return getattr(ops, name)
    raise AttributeError(f"module 'accel.gpu' has no attribute {name!r}")
