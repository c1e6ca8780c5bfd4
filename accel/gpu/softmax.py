"""Softmax over the last dimension, one row per program, in fp32 (``exp(x - max) / sum``, as ``torch.softmax``).

Rows of up to 4096 elements are held in registers (one read, one write). Longer rows (a vocabulary of 128256 for
sampling) take two passes: the first keeps, per lane, a running maximum and a running sum rescaled whenever the
maximum grows (the online softmax), combined across lanes at the end; the second writes ``exp(x - max) / sum``.
Inputs of any shape, contiguous, fp16, bf16 or fp32; a row may hold ``-inf`` (masked entries).
"""
from __future__ import annotations

from .backend import KernelInputError, check_tensor, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from .norms import FLOAT_DTYPES, row_warps  # noqa: E402

__all__ = ["softmax", "SINGLE_PASS_ROW", "bench_softmax"]

#: Rows up to this many elements are held in registers (one pass).
SINGLE_PASS_ROW = 4096


@triton.jit
def _softmax_kernel(x_ptr, y_ptr, N, SINGLE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    base = row * N
    LOG2E: tl.constexpr = 1.4426950408889634
    if SINGLE:
        mask = offs < N
        x = tl.load(x_ptr + base + offs, mask=mask, other=float("-inf")).to(tl.float32)
        e = tl.exp2((x - tl.max(x, 0)) * LOG2E)
        tl.store(y_ptr + base + offs, (e / tl.sum(e, 0)).to(y_ptr.dtype.element_ty), mask=mask)
    else:
        m = tl.full([BLOCK], float("-inf"), tl.float32)
        s = tl.zeros([BLOCK], tl.float32)
        for c0 in range(0, N, BLOCK):
            x = tl.load(x_ptr + base + c0 + offs, mask=c0 + offs < N, other=float("-inf")).to(tl.float32)
            m_new = tl.maximum(m, x)
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
            s = s * tl.exp2((m - m_use) * LOG2E) + tl.exp2((x - m_use) * LOG2E)
            m = m_new
        mx = tl.max(m, 0)
        total = tl.sum(s * tl.exp2((m - mx) * LOG2E), 0)
        for c0 in range(0, N, BLOCK):
            mask = c0 + offs < N
            x = tl.load(x_ptr + base + c0 + offs, mask=mask, other=float("-inf")).to(tl.float32)
            y = tl.exp2((x - mx) * LOG2E) / total
            tl.store(y_ptr + base + c0 + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


def softmax(x: torch.Tensor, single_pass_row: int = SINGLE_PASS_ROW) -> torch.Tensor:
    """Softmax over the last dimension (see the module doc); ``single_pass_row`` is the longest row held in registers
    (a power of two).

    Raises
    ------
    KernelInputError
        Before any launch: dtype, layout, device, ``single_pass_row`` not a power of two.
    """
    check_tensor(x, "x", FLOAT_DTYPES, ndim=range(1, 9))
    if single_pass_row < 16 or single_pass_row & (single_pass_row - 1):
        raise KernelInputError(f"single_pass_row = {single_pass_row}: it must be a power of two >= 16")
    n = x.shape[-1]
    single = n <= single_pass_row
    block = next_pow2(n) if single else single_pass_row
    y = torch.empty_like(x)
    _softmax_kernel[(x.numel() // n,)](x, y, n, SINGLE=single, BLOCK=block, num_warps=row_warps(block))
    return y


def bench_softmax(rows: int, cols: int, seed: int = 0) -> dict:
    """Time :func:`softmax` (fp16) and ``torch.softmax``; counted work and achieved rates. Needs a GPU."""
    from .backend import bench_device, time_ms
    from .roofline import achieved, op_cost

    dev = bench_device()
    x = torch.randn((rows, cols), generator=torch.Generator(device=dev).manual_seed(seed), device=dev,
                    dtype=torch.float16)
    cost = op_cost("softmax", {"rows": rows, "cols": cols})
    return {"ours": achieved(time_ms(lambda: softmax(x)), cost),
            "torch": achieved(time_ms(lambda: torch.softmax(x, dim=-1)), cost)}
