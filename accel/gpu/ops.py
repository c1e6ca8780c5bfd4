"""The stable per-operator API: every kernel, taking numpy arrays or torch tensors.

This is what the GPU fallback of functional runs calls for the operators the mapper assigns to ``gpu``: natively on a
GPU, in Triton's interpreter on a CPU machine (see :mod:`accel.gpu.backend`). Tensors go straight to the kernels (on
the kernel device, contiguous); numpy arrays are converted, moved, run, and the result comes back as a numpy array
(numpy in, numpy out). Float arrays run in fp32 where the kernel has an fp32 path (attention and the vector
operators) and in fp16 where it has not (the quantised matmul); int arrays given to the matmul are int8
activations (checked with :func:`accel.numerics.check_int`) and give the int32 results of
:func:`accel.numerics.matvec_int`.

=================================  =====================================================================
operator kind (:mod:`.roofline`)   function
=================================  =====================================================================
``matmul`` / ``gemv`` / ``gemm``   :func:`run_gemv_q` (one or a few rows), :func:`run_gemm_q` (prompts)
``attention``                      :func:`attention_prefill` (4-D ``q``), :func:`attention_decode` (3-D)
``layernorm``, ``rmsnorm``         :func:`layernorm`, :func:`rmsnorm`
``gelu``, ``silu``, ``silu_mul``   :func:`gelu`, :func:`silu`, :func:`silu_mul`
``residual_add``, ``softmax``      :func:`residual_add`, :func:`softmax`
``rotary``                         :func:`rotary` (tables from :func:`rope_tables`)
=================================  =====================================================================
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..numerics import QuantizedWeights, check_int
from . import activations as _act
from . import attention_decode as _dec
from . import attention_prefill as _pre
from . import norms as _norms
from . import quant_gemm as _gemm
from . import quant_gemv as _gemv
from . import rotary as _rot
from . import softmax as _sm
from .backend import KernelInputError, kernel_device
from .quant_pack import PackedWeights, pack_quantized

__all__ = ["run_gemv_q", "run_gemm_q", "attention_prefill", "attention_decode", "layernorm", "rmsnorm", "gelu",
           "silu", "silu_mul", "residual_add", "rotary", "rope_tables", "softmax", "OPS_BY_KIND", "GEMV_MAX_ROWS"]

#: Activation rows up to which :data:`OPS_BY_KIND` ``["matmul"]`` uses the GEMV kernel (beyond: the GEMM kernel).
GEMV_MAX_ROWS = 2


def _tensor(x: Any, name: str, float_dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
    """``(tensor on the kernel device, came from numpy)``; floats become ``float_dtype``."""
    if isinstance(x, torch.Tensor):
        return x, False
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(arr)).to(device=kernel_device(), dtype=float_dtype), True
    raise KernelInputError(f"{name} is a {arr.dtype} array; give floats (or int8 activations to the matmul)")


def _out(y: torch.Tensor, numpy: bool) -> Any:
    return y.cpu().numpy() if numpy else y


def _weights(w: PackedWeights | QuantizedWeights) -> PackedWeights:
    if isinstance(w, QuantizedWeights):
        return pack_quantized(w)
    return w


def _activations(x: Any) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    arr = np.asarray(x)
    if arr.dtype.kind in "iu":
        return torch.from_numpy(check_int(arr, 8).astype(np.int8)).to(kernel_device()), True
    return _tensor(arr, "activations", torch.float16)


def run_gemv_q(x: Any, weights: PackedWeights | QuantizedWeights) -> Any:
    """``W x`` through the GEMV kernel: ``x`` ``(K,)`` or ``(M, K)``; ``weights`` packed, or
    :class:`accel.numerics.QuantizedWeights` (packed on every call: pack once with
    :func:`accel.gpu.quant_pack.pack_quantized` to reuse). See :func:`accel.gpu.quant_gemv.gemv_q`."""
    t, numpy = _activations(x)
    return _out(_gemv.gemv_q(t, _weights(weights)), numpy)


def run_gemm_q(x: Any, weights: PackedWeights | QuantizedWeights) -> Any:
    """``X W^T`` through the GEMM kernel (``X`` ``(M, K)``); see :func:`accel.gpu.quant_gemm.gemm_q`."""
    t, numpy = _activations(x)
    return _out(_gemm.gemm_q(t, _weights(weights)), numpy)


def _run_matmul(x: Any, weights: PackedWeights | QuantizedWeights) -> Any:
    rows = 1 if np.ndim(x) == 1 else np.shape(x)[0]
    return (run_gemv_q if rows <= GEMV_MAX_ROWS else run_gemm_q)(x, weights)


def attention_prefill(q: Any, k: Any, v: Any, causal: bool = True, sm_scale: float | None = None) -> Any:
    """``(B, Hq, Sq, D)`` attention over a prompt; see :func:`accel.gpu.attention_prefill.attention_prefill`."""
    (tq, numpy), (tk, _), (tv, _) = (_tensor(a, n, torch.float32) for a, n in ((q, "q"), (k, "k"), (v, "v")))
    return _out(_pre.attention_prefill(tq, tk, tv, causal=causal, sm_scale=sm_scale), numpy)


def attention_decode(q: Any, k_cache: Any, v_cache: Any, cache_lens: int | Sequence[int],
                     sm_scale: float | None = None) -> Any:
    """``(B, Hq, D)`` queries against ``(B, Hkv, S_max, D)`` caches; see
    :func:`accel.gpu.attention_decode.attention_decode`."""
    (tq, numpy), (tk, _), (tv, _) = (_tensor(a, n, torch.float32)
                                     for a, n in ((q, "q"), (k_cache, "k_cache"), (v_cache, "v_cache")))
    return _out(_dec.attention_decode(tq, tk, tv, cache_lens, sm_scale=sm_scale), numpy)


def _run_attention(q: Any, k: Any, v: Any, cache_lens: int | Sequence[int] | None = None, causal: bool = True,
                   sm_scale: float | None = None) -> Any:
    """Prefill for 4-D ``q`` ``(B, Hq, Sq, D)``, decode for 3-D ``q`` ``(B, Hq, D)`` (``cache_lens`` default: the
    whole cache)."""
    if np.ndim(q) == 3:
        return attention_decode(q, k, v, np.shape(k)[2] if cache_lens is None else cache_lens, sm_scale)
    return attention_prefill(q, k, v, causal, sm_scale)


def layernorm(x: Any, weight: Any, bias: Any, eps: float = 1e-5) -> Any:
    """Layer norm over the last dimension; see :func:`accel.gpu.norms.layernorm`."""
    (tx, numpy), (tw, _), (tb, _) = (_tensor(a, n, torch.float32)
                                     for a, n in ((x, "x"), (weight, "weight"), (bias, "bias")))
    return _out(_norms.layernorm(tx, tw, tb, eps), numpy)


def rmsnorm(x: Any, weight: Any, eps: float = 1e-5) -> Any:
    """RMS norm over the last dimension; see :func:`accel.gpu.norms.rmsnorm`."""
    (tx, numpy), (tw, _) = (_tensor(a, n, torch.float32) for a, n in ((x, "x"), (weight, "weight")))
    return _out(_norms.rmsnorm(tx, tw, eps), numpy)


def _unary(fn: Callable[..., torch.Tensor], x: Any, *args: Any) -> Any:
    t, numpy = _tensor(x, "x", torch.float32)
    return _out(fn(t, *args), numpy)


def _binary(fn: Callable[..., torch.Tensor], x: Any, y: Any, names: tuple[str, str]) -> Any:
    (tx, numpy), (ty, _) = (_tensor(a, n, torch.float32) for a, n in zip((x, y), names))
    return _out(fn(tx, ty), numpy)


def gelu(x: Any, form: str = "tanh") -> Any:
    """GELU, ``"tanh"`` (GPT-2) or ``"erf"``; see :func:`accel.gpu.activations.gelu`."""
    return _unary(_act.gelu, x, form)


def silu(x: Any) -> Any:
    """``x * sigmoid(x)``."""
    return _unary(_act.silu, x)


def silu_mul(gate: Any, up: Any) -> Any:
    """``silu(gate) * up``."""
    return _binary(_act.silu_mul, gate, up, ("gate", "up"))


def residual_add(x: Any, residual: Any) -> Any:
    """``x + residual``."""
    return _binary(_act.residual_add, x, residual, ("x", "residual"))


def softmax(x: Any) -> Any:
    """Softmax over the last dimension; see :func:`accel.gpu.softmax.softmax`."""
    return _unary(_sm.softmax, x)


def rotary(x: Any, cos: Any, sin: Any) -> Any:
    """Rotary embedding of ``(B, H, S, D)`` with ``(S, D)`` or ``(B, S, D)`` tables; see
    :func:`accel.gpu.rotary.rotary`."""
    (tx, numpy), (tc, _), (ts, _) = (_tensor(a, n, torch.float32) for a, n in ((x, "x"), (cos, "cos"), (sin, "sin")))
    return _out(_rot.rotary(tx, tc, ts), numpy)


def rope_tables(positions: Any, head_dim: int, theta: float) -> tuple[Any, Any]:
    """Hugging Face's ``(cos, sin)`` tables for ``positions`` (numpy in, numpy out); see
    :func:`accel.gpu.rotary.rope_tables`."""
    numpy = not isinstance(positions, torch.Tensor)
    pos = torch.as_tensor(np.asarray(positions)) if numpy else positions
    cos, sin = _rot.rope_tables(pos.to(kernel_device()), head_dim, theta)
    return _out(cos, numpy), _out(sin, numpy)


#: Operator kind (as :mod:`accel.gpu.roofline` names them) -> the function that runs it.
OPS_BY_KIND: dict[str, Callable[..., Any]] = {
    "matmul": _run_matmul, "gemv": run_gemv_q, "gemm": run_gemm_q, "linear": _run_matmul,
    "attention": _run_attention,
    "layernorm": layernorm, "rmsnorm": rmsnorm, "gelu": gelu, "silu": silu, "silu_mul": silu_mul,
    "residual_add": residual_add, "softmax": softmax, "rotary": rotary,
}
