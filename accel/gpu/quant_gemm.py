"""Group-quantised low-bit GEMM: ``Y = X W^T`` for ``M`` activation rows (prefill) with ``W`` packed at 3, 4 or 8 bits.

Each program computes a ``BLOCK_M x BLOCK_N`` tile of ``Y``. Per K tile (``BLOCK_K`` inputs inside one group, at
least 16 deep) it unpacks a ``BLOCK_K x BLOCK_N`` tile of codes, turns them into their integer values through the
value table (exact in int8 and in fp16: every value is an integer of at most 8 bits), multiplies on the tensor cores
(``tl.dot``: int8 x int8 -> int32, or fp16 x fp16 -> fp32) and applies the group scale to the partial product before
adding it up: ``acc += dot(X_tile, V_tile) * scale[None, :]``. The row scale is applied once at the end.

Integer activations give int32 results equal to :func:`accel.numerics.matvec_int` (``acc_bits = 32``) per row of
``X``; fp16 activations give fp16 results. Programs are ordered in groups of ``GROUP_M`` tile rows so that
neighbouring programs share weight tiles in L2.
"""
from __future__ import annotations

from .backend import KernelInputError, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from .quant_gemv import bench_quant_matmul, check_activations  # noqa: E402
from .quant_pack import PackedWeights, decode_codes  # noqa: E402

__all__ = ["gemm_q", "gemm_config", "bench_gemm_q"]


@triton.jit
def _gemm_q_kernel(x_ptr, qw_ptr, meta_ptr, rs_ptr, lut_ptr, y_ptr, M, N, K, WORDS, GROUPS, GROUP,
                   BITS: tl.constexpr, FLOAT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % group_rows
    pid_n = (pid % per_group) // group_rows

    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mmask = rm < M
    nmask = rn < N
    kk = tl.arange(0, BLOCK_K)
    qcol = qw_ptr + rn[None, :] * WORDS
    if FLOAT:
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    else:
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):  # K is a multiple of BLOCK_K (BLOCK_K divides the group size)
        k = k0 + kk
        code = decode_codes(qcol, k[:, None], nmask[None, :], BITS)
        meta = tl.load(meta_ptr + rn * GROUPS + k0 // GROUP, mask=nmask, other=0)
        v = tl.load(lut_ptr + ((meta & 0xFF)[None, :] << BITS) + code)
        x = tl.load(x_ptr + rm[:, None] * K + k[None, :], mask=mmask[:, None], other=0)
        if FLOAT:
            acc += tl.dot(x, v.to(tl.float16)) * (meta >> 8).to(tl.float32)[None, :]
        else:
            acc += tl.dot(x, v) * (meta >> 8)[None, :]
    out = y_ptr + rm[:, None] * N + rn[None, :]
    omask = mmask[:, None] & nmask[None, :]
    if FLOAT:
        rs = tl.load(rs_ptr + rn, mask=nmask, other=0.0)
        tl.store(out, (acc * rs[None, :]).to(y_ptr.dtype.element_ty), mask=omask)
    else:
        tl.store(out, acc, mask=omask)


def gemm_config(m: int, n: int, k: int, group_size: int) -> dict:
    """Tile sizes and launch options: 64-deep K tiles inside one group, up to 128 x 128 output tiles (smaller for
    small ``M`` or ``N``), 8 warps for the largest tiles."""
    block_k = min(group_size & -group_size, 64)
    block_m = min(128, max(16, next_pow2(m)))
    block_n = min(128, max(16, next_pow2(n)))
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "GROUP_M": 8,
            "num_warps": 8 if block_m * block_n >= 128 * 128 else 4, "num_stages": 3}


def gemm_q(x: torch.Tensor, w: PackedWeights, config: dict | None = None) -> torch.Tensor:
    """``Y = X W^T`` for packed weights and ``(M, K)`` activations (a ``(K,)`` vector is one row).

    Parameters
    ----------
    x:
        int8 (integer path) or fp16 activations.
    w:
        Packed weights (``N x K``).
    config:
        Overrides of :func:`gemm_config`'s tile sizes (``BLOCK_M``, ``BLOCK_N``: powers of two >= 16).

    Returns
    -------
    ``(M, N)`` (or ``(N,)``): int32 equal to :func:`accel.numerics.matvec_int` (``acc_bits = 32``) per row for
    int8 activations, fp16 for fp16 activations.

    Raises
    ------
    KernelInputError
        Before any launch: weights not packed, wrong dtype, shape, layout or device, bad tile sizes.
    """
    m, is_float = check_activations(x, w)
    cfg = gemm_config(m, w.n, w.k, w.group_size)
    for key, val in (config or {}).items():
        if key not in ("BLOCK_M", "BLOCK_N", "GROUP_M", "num_warps", "num_stages"):
            raise KernelInputError(f"gemm_q config key {key!r}: use BLOCK_M, BLOCK_N, GROUP_M, num_warps, "
                                   f"num_stages")
        if key.startswith("BLOCK") and (val < 16 or val & (val - 1)):
            raise KernelInputError(f"{key} = {val}: it must be a power of two >= 16 (the smallest tl.dot tile)")
        cfg[key] = val
    y = torch.empty((m, w.n), dtype=torch.float16 if is_float else torch.int32, device=x.device)
    grid = (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(w.n, cfg["BLOCK_N"]),)
    _gemm_q_kernel[grid](x, w.qweight, w.meta, w.row_scale, w.lut, y, m, w.n, w.k, w.qweight.shape[1],
                         w.k // w.group_size, w.group_size, BITS=w.bits, FLOAT=is_float, **cfg)
    return y[0] if x.dim() == 1 else y


def bench_gemm_q(m: int, n: int, k: int, bits: int, group_size: int = 128, seed: int = 0) -> dict:
    """Time :func:`gemm_q` (fp16 activations) and torch's fp16 ``matmul`` (cuBLAS) at ``M x K @ K x N``; counted
    work and achieved rates as :func:`accel.gpu.quant_gemv.bench_gemv_q`. Needs a GPU."""
    return bench_quant_matmul(gemm_q, m, n, k, bits, group_size, seed)
