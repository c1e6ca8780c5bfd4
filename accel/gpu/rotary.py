"""Rotary position embedding, LLaMA's rotate-half convention as Hugging Face applies it.

``out = x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2])``
(``transformers.models.llama.modeling_llama.apply_rotary_pos_emb``): for ``j < D/2``,
``out[j] = x[j] cos[j] - x[j + D/2] sin[j]`` and ``out[j + D/2] = x[j + D/2] cos[j + D/2] + x[j] sin[j + D/2]``.
The tables are Hugging Face's too (:func:`rope_tables`, as ``LlamaRotaryEmbedding`` computes them: ``cos`` and
``sin`` of ``pos * theta**(-2i/D)``, each frequency twice), so the kernel reads both halves of each table row as given.

Inputs: ``x`` ``(B, H, S, D)`` contiguous (fp16, bf16 or fp32), ``cos``/``sin`` ``(S, D)`` (shared by the batch) or
``(B, S, D)``, in ``x``'s dtype or fp32. Math in fp32, one rounding at the store (Hugging Face multiplies in ``x``'s
dtype).
"""
from __future__ import annotations

from .backend import KernelInputError, check_tensor, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from .norms import FLOAT_DTYPES  # noqa: E402

__all__ = ["rotary", "rope_tables", "reference_rotary", "bench_rotary"]


@triton.jit
def _rotary_kernel(x_ptr, cos_ptr, sin_ptr, y_ptr, H, S, D, TABLE_PER_BATCH: tl.constexpr,
                   BLOCK_S: tl.constexpr, BLOCK_H: tl.constexpr):
    bh = tl.program_id(0)
    rows = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    half = D // 2
    j = tl.arange(0, BLOCK_H)
    mask = (rows < S)[:, None] & (j < half)[None, :]
    x_row = x_ptr + (bh * S + rows[:, None]) * D
    if TABLE_PER_BATCH:
        t_row = (bh // H * S + rows[:, None]) * D
    else:
        t_row = rows[:, None] * D
    x1 = tl.load(x_row + j[None, :], mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_row + half + j[None, :], mask=mask, other=0.0).to(tl.float32)
    c1 = tl.load(cos_ptr + t_row + j[None, :], mask=mask, other=0.0).to(tl.float32)
    c2 = tl.load(cos_ptr + t_row + half + j[None, :], mask=mask, other=0.0).to(tl.float32)
    s1 = tl.load(sin_ptr + t_row + j[None, :], mask=mask, other=0.0).to(tl.float32)
    s2 = tl.load(sin_ptr + t_row + half + j[None, :], mask=mask, other=0.0).to(tl.float32)
    y_row = y_ptr + (bh * S + rows[:, None]) * D
    tl.store(y_row + j[None, :], (x1 * c1 - x2 * s1).to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(y_row + half + j[None, :], (x2 * c2 + x1 * s2).to(y_ptr.dtype.element_ty), mask=mask)


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply the rotary embedding to ``x`` ``(B, H, S, D)`` with tables ``(S, D)`` or ``(B, S, D)``.

    Raises
    ------
    KernelInputError
        Before any launch: dtypes, shapes (``D`` even, tables matching), layout, device.
    """
    check_tensor(x, "x", FLOAT_DTYPES, ndim=4)
    b, h, s, d = x.shape
    if d % 2:
        raise KernelInputError(f"head_dim {d} is odd; rotate-half needs an even head dimension")
    per_batch = cos.dim() == 3 if isinstance(cos, torch.Tensor) else False
    want = (b, s, d) if per_batch else (s, d)
    check_tensor(cos, "cos", (x.dtype, torch.float32), shape=want)
    check_tensor(sin, "sin", (cos.dtype,), shape=want)
    y = torch.empty_like(x)
    block_s = min(32, next_pow2(s))
    _rotary_kernel[(b * h, triton.cdiv(s, block_s))](x, cos, sin, y, h, s, d, TABLE_PER_BATCH=per_batch,
                                                     BLOCK_S=block_s, BLOCK_H=next_pow2(d // 2), num_warps=4)
    return y


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of shape ``positions.shape + (head_dim,)``, as Hugging Face's ``LlamaRotaryEmbedding``
    computes them (fp32 ``inv_freq = 1 / theta**(arange(0, D, 2) / D)``, ``emb = cat(freqs, freqs)``), then cast to
    ``dtype``. ``theta``: 10000 for LLaMA-2, 500000 for LLaMA-3."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=positions.device).float()
                                / head_dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def reference_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Hugging Face's formula in fp64: ``x * cos + rotate_half(x) * sin`` (tables broadcast over heads)."""
    half = x.shape[-1] // 2
    xd = x.double()
    rot = torch.cat((-xd[..., half:], xd[..., :half]), dim=-1)
    c, s = cos.double(), sin.double()
    if c.dim() == 3:
        c, s = c[:, None], s[:, None]
    return xd * c + rot * s


def bench_rotary(batch: int, heads: int, seq: int, head_dim: int, seed: int = 0) -> dict:
    """Time :func:`rotary` (fp16) and the same formula in torch (fp16 tables, as Hugging Face applies it); counted
    work and achieved rates. Needs a GPU."""
    from .backend import bench_device, time_ms
    from .roofline import achieved, op_cost

    dev = bench_device()
    x = torch.randn((batch, heads, seq, head_dim), generator=torch.Generator(device=dev).manual_seed(seed),
                    device=dev, dtype=torch.float16)
    cos, sin = rope_tables(torch.arange(seq, device=dev), head_dim, 10000.0, torch.float16)
    half = head_dim // 2

    def torch_rope():
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    cost = op_cost("rotary", {"batch": batch, "heads": heads, "seq": seq, "head_dim": head_dim})
    return {"ours": achieved(time_ms(lambda: rotary(x, cos, sin)), cost),
            "torch": achieved(time_ms(torch_rope), cost)}
