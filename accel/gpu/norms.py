"""Layer norm (GPT-2) and RMS norm (LLaMA) over the last dimension, one row per program, statistics in fp32.

* ``layernorm``: ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance (``torch.nn.
  functional.layer_norm``).
* ``rmsnorm``: ``y = x / sqrt(mean(x^2) + eps) * weight`` (``torch.nn.functional.rms_norm``; Hugging Face's
  ``LlamaRMSNorm`` rounds ``x / rms`` to the input dtype before the weight, this kernel rounds once at the end).

A row is held in registers (rows of up to 16384 elements: LLaMA-3-405B's hidden size), read once and written once.
Inputs: ``x`` of any shape with the normalised dimension last, contiguous, fp16, bf16 or fp32; ``weight``/``bias``
``(N,)`` in ``x``'s dtype or fp32. Output in ``x``'s dtype.
"""
from __future__ import annotations

import math

from .backend import KernelInputError, check_tensor, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

__all__ = ["layernorm", "rmsnorm", "MAX_ROW", "FLOAT_DTYPES", "bench_norm"]

#: Longest row the kernels hold (elements).
MAX_ROW = 16384
#: Activation dtypes the vector kernels take.
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _norm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, N, eps, RMS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(x_ptr + row * N + offs, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if RMS:
        y = x * tl.rsqrt(tl.sum(x * x, 0) / N + eps) * w
    else:
        xc = tl.where(mask, x - tl.sum(x, 0) / N, 0.0)
        y = xc * tl.rsqrt(tl.sum(xc * xc, 0) / N + eps) * w
        y += tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * N + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


def row_warps(block: int) -> int:
    """Warps for a row of ``block`` elements held in registers (about 16 elements per thread)."""
    return max(1, min(16, block // 512))


def _check_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> int:
    check_tensor(x, "x", FLOAT_DTYPES, ndim=range(1, 9))
    n = x.shape[-1]
    if n > MAX_ROW:
        raise KernelInputError(f"rows of {n} elements exceed the norm kernels' {MAX_ROW}; split the row")
    check_tensor(weight, "weight", (x.dtype, torch.float32), shape=(n,))
    if bias is not None:
        check_tensor(bias, "bias", (x.dtype, torch.float32), shape=(n,))
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise KernelInputError(f"eps = {eps!r}: it must be positive and finite (GPT-2 1e-5, LLaMA 1e-5/1e-6)")
    return n


def _launch(x, weight, bias, eps, rms: bool) -> torch.Tensor:
    n = x.shape[-1]
    y = torch.empty_like(x)
    block = next_pow2(n)
    _norm_kernel[(x.numel() // n,)](x, weight, weight if bias is None else bias, y, n, float(eps), RMS=rms,
                                    BLOCK=block, num_warps=row_warps(block))
    return y


def layernorm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Layer norm over the last dimension (see the module doc).

    Raises
    ------
    KernelInputError
        Before any launch: dtypes, shapes, layout, device, row too long, ``eps`` not positive.
    """
    _check_norm(x, weight, bias, eps)
    if bias is None:
        raise KernelInputError("layernorm needs a bias (GPT-2's ln has one); pass torch.zeros_like(weight) for none")
    return _launch(x, weight, bias, eps, rms=False)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMS norm over the last dimension (see the module doc). Raises as :func:`layernorm`."""
    _check_norm(x, weight, None, eps)
    return _launch(x, weight, None, eps, rms=True)


def bench_norm(kind: str, rows: int, cols: int, seed: int = 0) -> dict:
    """Time :func:`layernorm` or :func:`rmsnorm` (fp16) and torch's ``layer_norm`` / ``rms_norm``; counted work and
    achieved rates (:func:`accel.gpu.roofline.op_cost`). Needs a GPU."""
    from .backend import bench_device, time_ms
    from .roofline import achieved, op_cost

    dev = bench_device()
    gen = torch.Generator(device=dev).manual_seed(seed)
    x = torch.randn((rows, cols), generator=gen, device=dev, dtype=torch.float16)
    w = torch.randn((cols,), generator=gen, device=dev, dtype=torch.float16)
    b = torch.randn((cols,), generator=gen, device=dev, dtype=torch.float16)
    F = torch.nn.functional
    if kind == "layernorm":
        ours, theirs = time_ms(lambda: layernorm(x, w, b)), time_ms(lambda: F.layer_norm(x, (cols,), w, b, 1e-5))
    else:
        ours, theirs = time_ms(lambda: rmsnorm(x, w)), time_ms(lambda: F.rms_norm(x, (cols,), w, 1e-5))
    cost = op_cost(kind, {"rows": rows, "cols": cols})
    return {"ours": achieved(ours, cost), "torch": achieved(theirs, cost)}
