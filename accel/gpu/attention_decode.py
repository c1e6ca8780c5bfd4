"""Decode attention against a KV cache: one new query per sequence, split-K ("flash-decoding") over the cache.

A decode step reads the whole KV cache for a handful of queries, so it is bound by memory bandwidth and needs many
programs in flight to reach it. The cache of each sequence is cut into ``num_splits`` chunks of whole key blocks;
program ``(batch x kv head, split)`` runs the one-pass online softmax (:func:`accel.gpu.attention_prefill.
softmax_update`) over its chunk for **all query heads of its key/value head at once** (grouped-query attention: the
``Hq / Hkv`` queries share every K/V load, padded to a 16-row ``tl.dot`` tile), and writes per query head its
normalised partial output and log2-sum-exp ``m + log2(l)`` (fp32). A second kernel combines the splits of each
query head: ``out = sum_s 2**(lse_s - max lse) o_s / sum_s 2**(lse_s - max lse)``; an empty split (past a short
sequence's end) has ``lse = -inf`` and weight 0.

Layouts: ``q`` ``(B, Hq, D)``; ``k_cache``, ``v_cache`` ``(B, Hkv, S_max, D)`` (the Hugging Face cache layout),
contiguous, fp16 or fp32; sequence ``b`` attends its first ``cache_lens[b]`` keys (the new token's own included).
"""
from __future__ import annotations

import math
from typing import Sequence

from .backend import KernelInputError, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from .attention_prefill import LOG2E, check_qkv, scores, softmax_update  # noqa: E402

__all__ = ["attention_decode", "decode_splits", "bench_attention_decode"]


@triton.jit
def _decode_split_kernel(q_ptr, k_ptr, v_ptr, lens_ptr, o_ptr, lse_ptr, qk_scale, Hq, Hkv, S_max, D, GROUP,
                         NUM_SPLITS, F32: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr,
                         BLOCK_D: tl.constexpr):
    bkv = tl.program_id(0)
    split = tl.program_id(1)
    b = bkv // Hkv
    kvh = bkv % Hkv
    seq = tl.load(lens_ptr + b)
    chunk = tl.cdiv(tl.cdiv(seq, NUM_SPLITS), BLOCK_N) * BLOCK_N
    start = split * chunk
    end = tl.minimum(start + chunk, seq)
    g = tl.arange(0, BLOCK_G)
    gmask = g < GROUP
    heads = b * Hq + kvh * GROUP + g
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    q = tl.load(q_ptr + heads[:, None] * D + offs_d[None, :], mask=gmask[:, None] & dmask[None, :], other=0.0)
    base = bkv * S_max * D
    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        nmask = offs_n < end
        kv_off = base + offs_n[:, None] * D + offs_d[None, :]
        k = tl.load(k_ptr + kv_off, mask=nmask[:, None] & dmask[None, :], other=0.0)
        v = tl.load(v_ptr + kv_off, mask=nmask[:, None] & dmask[None, :], other=0.0)
        s = tl.where(nmask[None, :], scores(q, k, qk_scale, F32), float("-inf"))
        acc, l_i, m_i = softmax_update(acc, l_i, m_i, s, v, F32)
    seen = l_i > 0
    out = acc / tl.where(seen, l_i, 1.0)[:, None]
    lse = tl.where(seen, m_i + tl.log2(tl.where(seen, l_i, 1.0)), float("-inf"))
    part = heads * NUM_SPLITS + split
    tl.store(o_ptr + part[:, None] * D + offs_d[None, :], out, mask=gmask[:, None] & dmask[None, :])
    tl.store(lse_ptr + part, lse, mask=gmask)


@triton.jit
def _decode_reduce_kernel(o_part_ptr, lse_ptr, out_ptr, D, NUM_SPLITS, BLOCK_S: tl.constexpr,
                          BLOCK_D: tl.constexpr):
    row = tl.program_id(0)  # batch x query head
    s = tl.arange(0, BLOCK_S)
    smask = s < NUM_SPLITS
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < D
    lse = tl.load(lse_ptr + row * NUM_SPLITS + s, mask=smask, other=float("-inf"))
    w = tl.exp2(lse - tl.max(lse, 0))  # split 0 is never empty, so the maximum is finite
    o = tl.load(o_part_ptr + (row * NUM_SPLITS + s)[:, None] * D + offs_d[None, :],
                mask=smask[:, None] & dmask[None, :], other=0.0)
    out = tl.sum(w[:, None] * o, 0) / tl.sum(w, 0)
    tl.store(out_ptr + row * D + offs_d, out.to(out_ptr.dtype.element_ty), mask=dmask)


def decode_splits(batch: int, kv_heads: int, max_len: int, block_n: int) -> int:
    """Splits per sequence: enough programs for about two per multiprocessor (GPU) or four splits (interpreter),
    each split at least 256 keys (or one key block)."""
    if kernel_mode() == "native":
        sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
        want = -(-2 * sms // (batch * kv_heads))
    else:
        want = 4
    return max(1, min(want, -(-max_len // max(256, block_n))))


def _lens(cache_lens: int | Sequence[int] | torch.Tensor | np.ndarray, batch: int, s_max: int) -> list[int]:
    if isinstance(cache_lens, torch.Tensor):
        cache_lens = cache_lens.detach().cpu().tolist()  # read back to check (a sync on a GPU)
    if isinstance(cache_lens, (int, np.integer)):
        lens = [cache_lens] * batch
    else:
        lens = np.asarray(cache_lens).ravel().tolist()
    if len(lens) != batch:
        raise KernelInputError(f"cache_lens has {len(lens)} entries for a batch of {batch}; give one per sequence")
    for i, n in enumerate(lens):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= s_max:
            raise KernelInputError(f"cache_lens[{i}] = {n!r}: a sequence attends 1..{s_max} keys (the cache holds "
                                   f"{s_max})")
    return [int(n) for n in lens]


def attention_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     cache_lens: int | Sequence[int] | torch.Tensor, sm_scale: float | None = None,
                     num_splits: int | None = None, block_n: int = 64) -> torch.Tensor:
    """Attention of one new query per sequence against its KV cache.

    Parameters
    ----------
    q:
        ``(B, Hq, D)`` queries.
    k_cache, v_cache:
        ``(B, Hkv, S_max, D)`` caches (``Hq`` a multiple of ``Hkv``).
    cache_lens:
        Keys each sequence attends (an int for all, or one per sequence; 1..S_max). A tensor is read back to the
        host to be checked.
    sm_scale:
        Score scale (default ``1 / sqrt(D)``).
    num_splits:
        Chunks per sequence (default :func:`decode_splits`).
    block_n:
        Keys per block (a power of two >= 16).

    Returns
    -------
    ``(B, Hq, D)`` in ``q``'s dtype.

    Raises
    ------
    KernelInputError
        Before any launch: dtypes, shapes, layout, device, head counts, lengths, splits.
    """
    b, hq, hkv, d = check_qkv(q, k_cache, v_cache, 3)
    s_max = k_cache.shape[2]
    lens = _lens(cache_lens, b, s_max)
    if block_n < 16 or block_n & (block_n - 1):
        raise KernelInputError(f"block_n = {block_n}: it must be a power of two >= 16")
    splits = decode_splits(b, hkv, max(lens), block_n) if num_splits is None else num_splits
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= 1024:
        raise KernelInputError(f"num_splits = {num_splits!r}: give 1..1024 chunks per sequence")
    scale = (1.0 / math.sqrt(d)) if sm_scale is None else float(sm_scale)
    if not math.isfinite(scale) or scale <= 0:
        raise KernelInputError(f"sm_scale = {sm_scale!r}: it must be positive and finite")
    dev = q.device
    lens_t = torch.tensor(lens, dtype=torch.int32, device=dev)
    o_part = torch.empty((b * hq * splits, d), dtype=torch.float32, device=dev)
    lse = torch.empty((b * hq * splits,), dtype=torch.float32, device=dev)
    block_d = max(16, next_pow2(d))
    group = hq // hkv
    _decode_split_kernel[(b * hkv, splits)](q, k_cache, v_cache, lens_t, o_part, lse, scale * LOG2E, hq, hkv,
                                            s_max, d, group, splits, F32=q.dtype == torch.float32,
                                            BLOCK_G=max(16, next_pow2(group)), BLOCK_N=block_n, BLOCK_D=block_d,
                                            num_warps=4)
    out = torch.empty_like(q)
    _decode_reduce_kernel[(b * hq,)](o_part, lse, out, d, splits, BLOCK_S=next_pow2(splits), BLOCK_D=block_d)
    return out


def bench_attention_decode(batch: int, q_heads: int, kv_heads: int, context: int, head_dim: int,
                           seed: int = 0) -> dict:
    """Time :func:`attention_decode` (fp16, every sequence at ``context`` keys) and torch's
    ``scaled_dot_product_attention`` on the same cache (one query, ``enable_gqa``); counted work and achieved rates
    (:func:`accel.gpu.roofline.op_cost`). Needs a GPU."""
    from .backend import bench_device, time_ms
    from .roofline import achieved, op_cost

    dev = bench_device()
    gen = torch.Generator(device=dev).manual_seed(seed)
    q = torch.randn((batch, q_heads, head_dim), generator=gen, device=dev, dtype=torch.float16)
    k = torch.randn((batch, kv_heads, context, head_dim), generator=gen, device=dev, dtype=torch.float16)
    v = torch.randn((batch, kv_heads, context, head_dim), generator=gen, device=dev, dtype=torch.float16)
    q4 = q[:, :, None, :]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    ours = time_ms(lambda: attention_decode(q, k, v, context))
    theirs = time_ms(lambda: sdpa(q4, k, v, enable_gqa=kv_heads != q_heads))
    cost = op_cost("attention", {"batch": batch, "q_heads": q_heads, "kv_heads": kv_heads, "q_len": 1,
                                 "kv_len": context, "head_dim": head_dim, "causal": 0})
    return {"ours": achieved(ours, cost), "torch": achieved(theirs, cost)}
