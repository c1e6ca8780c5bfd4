"""Fused attention for prefill: ``softmax(Q K^T * sm_scale + causal mask) V`` in one pass over the keys.

Each program owns ``BLOCK_M`` queries of one (batch, query head) and walks the keys in blocks of ``BLOCK_N``, keeping
per query the running maximum ``m``, the running denominator ``l`` and the unnormalised output ``acc`` (the one-pass
online softmax, as the attention array's cascade in :mod:`accel.numerics` does it in fixed point): for each block
``s = q k^T * sm_scale * log2(e)``, ``m' = max(m, max(s))``, ``acc = acc * 2**(m - m') + 2**(s - m') v``,
``l = l * 2**(m - m') + sum(2**(s - m'))``; at the end ``out = acc / l``. Scores, ``m``, ``l`` and ``acc`` are fp32;
the probabilities are rounded to the input dtype before the ``p v`` product (fp16 tensor cores).

Key blocks that every query of the tile may see run without a mask; only the blocks on the causal diagonal and the
ragged last block are masked. The causal mask is aligned bottom-right: query ``i`` of ``q_len`` sees keys
``0 .. i + kv_len - q_len`` (for ``q_len == kv_len``, torch's ``is_causal``). Grouped-query attention: query head
``h`` reads key/value head ``h // (q_heads / kv_heads)``.

Layouts: ``q`` ``(B, Hq, Sq, D)``, ``k`` and ``v`` ``(B, Hkv, Skv, D)``, contiguous; fp16, or fp32 (products in IEEE
fp32, not TF32).
"""
from __future__ import annotations

import math

from .backend import KernelInputError, check_tensor, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

__all__ = ["attention_prefill", "prefill_config", "reference_attention", "check_qkv", "bench_attention_prefill",
           "scores", "softmax_update", "LOG2E"]

LOG2E = 1.4426950408889634


@triton.jit
def scores(q, k, qk_scale, F32: tl.constexpr):
    """``q k^T * qk_scale`` (fp32), IEEE products for fp32 inputs."""
    if F32:
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
    else:
        s = tl.dot(q, tl.trans(k))
    return s * qk_scale


@triton.jit
def softmax_update(acc, l_i, m_i, s, v, F32: tl.constexpr):
    """One key block of the online softmax: log2-domain scores ``s`` (``-inf`` where masked) and values ``v``."""
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row that has seen no key yet keeps zeros
    alpha = tl.exp2(m_i - m_use)
    p = tl.exp2(s - m_use[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    if F32:
        pv = tl.dot(p, v, input_precision="ieee")
    else:
        pv = tl.dot(p.to(v.dtype), v)
    return acc * alpha[:, None] + pv, l_i, m_new


@triton.jit
def _prefill_kernel(q_ptr, k_ptr, v_ptr, o_ptr, qk_scale, Hq, Sq, Skv, D, GROUP,
                    CAUSAL: tl.constexpr, F32: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_D: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // Hq
    kvh = (bh % Hq) // GROUP
    Hkv = Hq // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    qmask = (offs_m < Sq)[:, None] & dmask[None, :]
    q = tl.load(q_ptr + (bh * Sq + offs_m[:, None]) * D + offs_d[None, :], mask=qmask, other=0.0)
    k_base = k_ptr + (b * Hkv + kvh) * Skv * D
    v_base = v_ptr + (b * Hkv + kvh) * Skv * D
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    offset = Skv - Sq
    if CAUSAL:
        hi = tl.minimum(Skv, (pid_m + 1) * BLOCK_M + offset)
        full = (tl.minimum(pid_m * BLOCK_M + offset + 1, Skv) // BLOCK_N) * BLOCK_N
    else:
        hi = Skv
        full = (Skv // BLOCK_N) * BLOCK_N
    offs_n0 = tl.arange(0, BLOCK_N)
    for n0 in range(0, full, BLOCK_N):  # blocks every query of the tile sees: no mask
        offs_n = n0 + offs_n0
        kv_off = offs_n[:, None] * D + offs_d[None, :]
        k = tl.load(k_base + kv_off, mask=dmask[None, :], other=0.0)
        v = tl.load(v_base + kv_off, mask=dmask[None, :], other=0.0)
        acc, l_i, m_i = softmax_update(acc, l_i, m_i, scores(q, k, qk_scale, F32), v, F32)
    for n0 in range(full, hi, BLOCK_N):  # the diagonal and the ragged end: masked
        offs_n = n0 + offs_n0
        kv_off = offs_n[:, None] * D + offs_d[None, :]
        kvmask = (offs_n < Skv)[:, None] & dmask[None, :]
        k = tl.load(k_base + kv_off, mask=kvmask, other=0.0)
        v = tl.load(v_base + kv_off, mask=kvmask, other=0.0)
        ok = (offs_n < Skv)[None, :]
        if CAUSAL:
            ok = ok & (offs_n[None, :] <= offs_m[:, None] + offset)
        s = tl.where(ok, scores(q, k, qk_scale, F32), float("-inf"))
        acc, l_i, m_i = softmax_update(acc, l_i, m_i, s, v, F32)
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(o_ptr + (bh * Sq + offs_m[:, None]) * D + offs_d[None, :], out.to(o_ptr.dtype.element_ty), mask=qmask)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_ndim: int) -> tuple[int, int, int, int]:
    """Check attention inputs (``q`` of ``q_ndim`` dims with heads on axis 1, ``k``/``v`` ``(B, Hkv, S, D)``);
    returns ``(B, Hq, Hkv, D)``."""
    check_tensor(q, "q", (torch.float16, torch.float32), ndim=q_ndim)
    check_tensor(k, "k", (q.dtype,), ndim=4)
    check_tensor(v, "v", (q.dtype,), shape=tuple(k.shape))
    b, hq, d = q.shape[0], q.shape[1], q.shape[-1]
    if k.shape[0] != b or k.shape[3] != d:
        raise KernelInputError(f"k has shape {tuple(k.shape)}; with q {tuple(q.shape)} it must be "
                               f"(batch {b}, kv_heads, keys, head_dim {d})")
    hkv = k.shape[1]
    if hq % hkv:
        raise KernelInputError(f"q has {hq} heads and k/v {hkv}: grouped-query attention needs the query heads to "
                               f"be a multiple of the key/value heads")
    if d > 256:
        raise KernelInputError(f"head_dim {d} is beyond the kernels' 256; split the head")
    return b, hq, hkv, d


def prefill_config(sq: int, skv: int, d: int) -> dict:
    """Tiles: 128 queries x 64 keys (smaller for short sequences), 8 warps for 128-query tiles."""
    block_m = min(128, max(16, next_pow2(sq)))
    block_n = min(64, max(16, next_pow2(skv)))
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "num_warps": 8 if block_m >= 128 and d >= 128 else 4,
            "num_stages": 3}


def attention_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True,
                      sm_scale: float | None = None, config: dict | None = None) -> torch.Tensor:
    """Fused attention over all queries of a prompt.

    Parameters
    ----------
    q:
        ``(B, Hq, Sq, D)`` queries.
    k, v:
        ``(B, Hkv, Skv, D)`` keys and values (``Hq`` a multiple of ``Hkv``; ``Skv >= Sq`` when causal).
    causal:
        Mask aligned bottom-right (query ``i`` sees keys up to ``i + Skv - Sq``).
    sm_scale:
        Score scale (default ``1 / sqrt(D)``).
    config:
        Overrides of :func:`prefill_config` (``BLOCK_M``, ``BLOCK_N``: powers of two >= 16; ``num_warps``,
        ``num_stages``).

    Returns
    -------
    ``(B, Hq, Sq, D)`` in ``q``'s dtype.

    Raises
    ------
    KernelInputError
        Before any launch: dtypes, shapes, layout, device, head counts, ``Skv < Sq`` with a causal mask.
    """
    b, hq, hkv, d = check_qkv(q, k, v, 4)
    sq, skv = q.shape[2], k.shape[2]
    if causal and skv < sq:
        raise KernelInputError(f"causal attention with {sq} queries but {skv} keys: the first queries would see no "
                               f"key; give at least as many keys as queries")
    scale = (1.0 / math.sqrt(d)) if sm_scale is None else float(sm_scale)
    if not math.isfinite(scale) or scale <= 0:
        raise KernelInputError(f"sm_scale = {sm_scale!r}: it must be positive and finite")
    cfg = {**prefill_config(sq, skv, d), **(config or {})}
    for key in ("BLOCK_M", "BLOCK_N"):
        if cfg[key] < 16 or cfg[key] & (cfg[key] - 1):
            raise KernelInputError(f"{key} = {cfg[key]}: it must be a power of two >= 16")
    o = torch.empty_like(q)
    grid = (triton.cdiv(sq, cfg["BLOCK_M"]), b * hq)
    _prefill_kernel[grid](q, k, v, o, scale * LOG2E, hq, sq, skv, d, hq // hkv, CAUSAL=bool(causal),
                          F32=q.dtype == torch.float32, BLOCK_D=max(16, next_pow2(d)), **cfg)
    return o


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                        sm_scale: float | None = None, kv_lens: list[int] | None = None) -> torch.Tensor:
    """Explicit torch attention in fp64 (grouped-query heads repeated, bottom-right causal mask, optional per-batch
    key counts) — the reference the kernels are checked against. ``q`` is ``(B, Hq, Sq, D)``."""
    d = q.shape[-1]
    scale = (1.0 / math.sqrt(d)) if sm_scale is None else sm_scale
    rep = q.shape[1] // k.shape[1]
    qq, kk, vv = (t.double() for t in (q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)))
    s = torch.matmul(qq, kk.transpose(-1, -2)) * scale
    sq, skv = q.shape[2], k.shape[2]
    keys = torch.arange(skv, device=q.device)
    ok = torch.ones((q.shape[0], 1, sq, skv), dtype=torch.bool, device=q.device)
    if causal:
        ok = ok & (keys[None, :] <= torch.arange(sq, device=q.device)[:, None] + skv - sq)
    if kv_lens is not None:
        ok = ok & (keys[None, None, None, :] < torch.tensor(kv_lens, device=q.device)[:, None, None, None])
    s = s.masked_fill(~ok, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), vv)


def bench_attention_prefill(batch: int, q_heads: int, kv_heads: int, seq: int, head_dim: int,
                            seed: int = 0) -> dict:
    """Time :func:`attention_prefill` (causal, fp16) and torch's ``scaled_dot_product_attention`` (``is_causal``,
    ``enable_gqa``); counted work and achieved rates (:func:`accel.gpu.roofline.op_cost`). Needs a GPU."""
    from .backend import bench_device, time_ms
    from .roofline import achieved, op_cost

    dev = bench_device()
    gen = torch.Generator(device=dev).manual_seed(seed)
    q = torch.randn((batch, q_heads, seq, head_dim), generator=gen, device=dev, dtype=torch.float16)
    k = torch.randn((batch, kv_heads, seq, head_dim), generator=gen, device=dev, dtype=torch.float16)
    v = torch.randn((batch, kv_heads, seq, head_dim), generator=gen, device=dev, dtype=torch.float16)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    ours = time_ms(lambda: attention_prefill(q, k, v, causal=True))
    theirs = time_ms(lambda: sdpa(q, k, v, is_causal=True, enable_gqa=kv_heads != q_heads))
    cost = op_cost("attention", {"batch": batch, "q_heads": q_heads, "kv_heads": kv_heads, "q_len": seq,
                                 "kv_len": seq, "head_dim": head_dim, "causal": 1})
    return {"ours": achieved(ours, cost), "torch": achieved(theirs, cost)}
