"""Element-wise operators: GELU (tanh and erf forms), SiLU, the gated SiLU product and the residual add.

* ``gelu(x, "tanh")``: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` — GPT-2's ``gelu_new`` (Hugging Face
  ``NewGELUActivation``), torch's ``gelu(approximate="tanh")``.
* ``gelu(x, "erf")``: ``0.5 x (1 + erf(x / sqrt 2))`` — the exact form (BERT, OPT's ``gelu``), torch's default.
* ``silu(x)``: ``x * sigmoid(x)``; ``silu_mul(gate, up)``: ``silu(gate) * up``, the LLaMA MLP's
  ``act_fn(gate_proj(x)) * up_proj(x)`` in one pass.
* ``residual_add(x, r)``: ``x + r``.

Math in fp32, one rounding to the input dtype at the store; ``tanh(u) = 1 - 2 / (2**(2u log2 e) + 1)`` with ``u``
clamped to +-15 (where tanh is +-1 in fp32), and the sigmoid's exponent clamped at 2**126, so nothing overflows.
Inputs of any shape, contiguous, fp16, bf16 or fp32, all of one shape and dtype.
"""
from __future__ import annotations

from .backend import KernelInputError, check_tensor, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from .norms import FLOAT_DTYPES  # noqa: E402

__all__ = ["gelu", "silu", "silu_mul", "residual_add", "GELU_FORMS", "bench_elementwise"]

GELU_FORMS = ("tanh", "erf")
_GELU_TANH, _GELU_ERF, _SILU, _SILU_MUL, _ADD = 0, 1, 2, 3, 4


@triton.jit
def _elementwise_kernel(x_ptr, u_ptr, y_ptr, n, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    LOG2E: tl.constexpr = 1.4426950408889634
    # exponents are clamped where the result has saturated (tanh(15) is 1 in fp32) so exp2 never overflows
    if OP == 0:
        inner = tl.minimum(tl.maximum(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0), 15.0)
        y = 0.5 * x * (2.0 - 2.0 / (tl.exp2(2.0 * LOG2E * inner) + 1.0))
    elif OP == 1:
        y = 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))
    elif OP == 2:
        y = x / (1.0 + tl.exp2(tl.minimum(-LOG2E * x, 126.0)))
    elif OP == 3:
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        y = x / (1.0 + tl.exp2(tl.minimum(-LOG2E * x, 126.0))) * u
    else:
        y = x + tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


def _run(op: int, x: torch.Tensor, u: torch.Tensor | None, names: tuple[str, str]) -> torch.Tensor:
    check_tensor(x, names[0], FLOAT_DTYPES, ndim=range(1, 9))
    if u is not None:
        check_tensor(u, names[1], (x.dtype,), shape=tuple(x.shape))
    y = torch.empty_like(x)
    n = x.numel()
    block = min(1024, next_pow2(n))
    _elementwise_kernel[(triton.cdiv(n, block),)](x, x if u is None else u, y, n, OP=op, BLOCK=block, num_warps=4)
    return y


def gelu(x: torch.Tensor, form: str = "tanh") -> torch.Tensor:
    """GELU, ``form`` ``"tanh"`` (GPT-2) or ``"erf"`` (exact); see the module doc.

    Raises
    ------
    KernelInputError
        Before any launch: unknown form, dtype, layout, device.
    """
    if form not in GELU_FORMS:
        raise KernelInputError(f"GELU form {form!r}: use 'tanh' (GPT-2's gelu_new) or 'erf' (the exact form)")
    return _run(_GELU_TANH if form == "tanh" else _GELU_ERF, x, None, ("x", ""))


def silu(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(x)``."""
    return _run(_SILU, x, None, ("x", ""))


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` (same shape and dtype)."""
    return _run(_SILU_MUL, gate, up, ("gate", "up"))


def residual_add(x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``x + residual`` (same shape and dtype)."""
    return _run(_ADD, x, residual, ("x", "residual"))


def bench_elementwise(kind: str, rows: int, cols: int, seed: int = 0) -> dict:
    """Time one element-wise operator (``gelu``, ``silu``, ``silu_mul``, ``residual_add``; fp16) and torch's
    equivalent; counted work and achieved rates (:func:`accel.gpu.roofline.op_cost`). Needs a GPU."""
    from .backend import bench_device, time_ms
    from .roofline import achieved, op_cost

    dev = bench_device()
    gen = torch.Generator(device=dev).manual_seed(seed)
    x = torch.randn((rows, cols), generator=gen, device=dev, dtype=torch.float16)
    u = torch.randn((rows, cols), generator=gen, device=dev, dtype=torch.float16)
    F = torch.nn.functional
    pairs = {"gelu": (lambda: gelu(x), lambda: F.gelu(x, approximate="tanh")),
             "silu": (lambda: silu(x), lambda: F.silu(x)),
             "silu_mul": (lambda: silu_mul(x, u), lambda: F.silu(x) * u),
             "residual_add": (lambda: residual_add(x, u), lambda: x + u)}
    if kind not in pairs:
        raise KernelInputError(f"element-wise kind {kind!r}: use one of {', '.join(pairs)}")
    ours, theirs = (time_ms(f) for f in pairs[kind])
    cost = op_cost(kind, {"rows": rows, "cols": cols})
    return {"ours": achieved(ours, cost), "torch": achieved(theirs, cost)}
