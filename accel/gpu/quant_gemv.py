"""Group-quantised low-bit GEMV: ``y = W x`` with ``W`` packed at 3, 4 or 8 bits (:mod:`accel.gpu.quant_pack`).

Each program owns ``BLOCK_N`` output rows and walks ``K`` in tiles of ``SUBS`` sub-tiles of ``SUB`` inputs; a
sub-tile lies inside one group (``SUB`` divides ``group_size``), so it needs one ``meta`` word per row: its datatype
code and integer scale. Codes are unpacked with shifts and masks and turned into values through the int8 value table
(an L1-resident gather indexed by ``datatype_code << bits | code``); nothing is dequantised to memory. A K tile may
span several groups: the bytes a multiprocessor keeps in flight (what a memory-bound kernel needs) grow with the K
tile.

* **Integer activations** (int8): ``acc += scale * sum(a * v)`` in int32, wrapping modulo 2**32 like the registers
  of the bit-serial unit: the result equals :func:`accel.numerics.matvec_int` with ``acc_bits = 32`` bit for bit
  (wrapping commutes with the sums and products).
* **fp16 activations**: products and sums in fp32 (``a * v`` is exact: 11 x 8 significant bits), times the group
  scale, times the row scale at the end, rounded once to fp16.

The launch grid is ``(cdiv(N, BLOCK_N), M)``: ``M`` activation rows each stream the weights again (meant for the
batch-1 decode case; :func:`accel.gpu.quant_gemm.gemm_q` serves larger ``M``).
"""
from __future__ import annotations

from .backend import KernelInputError, check_tensor, kernel_mode, next_pow2

kernel_mode()  # fixes native/interpreter before Triton is imported (see accel.gpu.backend)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from ..numerics import QuantizedWeights  # noqa: E402
from .quant_pack import PackedWeights, decode_codes  # noqa: E402

__all__ = ["gemv_q", "gemv_config", "check_activations", "reference_gemv_fp16", "bench_gemv_q",
           "bench_quant_matmul"]


@triton.jit
def _gemv_q_kernel(x_ptr, qw_ptr, meta_ptr, rs_ptr, lut_ptr, y_ptr, N, K, WORDS, GROUPS, GROUP,
                   BITS: tl.constexpr, FLOAT: tl.constexpr, BLOCK_N: tl.constexpr, SUB: tl.constexpr,
                   SUBS: tl.constexpr):
    # a K tile is SUBS sub-tiles of SUB inputs, each inside one group: a (rows, sub-tile, input) block
    pid_n = tl.program_id(0)
    m = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    t = tl.arange(0, SUBS)
    j = tl.arange(0, SUB)
    qrow = qw_ptr + rows[:, None, None] * WORDS
    if FLOAT:
        acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    else:
        acc = tl.zeros([BLOCK_N], dtype=tl.int32)
    for k0 in range(0, K, SUB * SUBS):
        ks = k0 + t * SUB  # first input of each sub-tile
        kmask = ks < K  # K is a multiple of SUB but not always of the whole tile
        k = ks[:, None] + j[None, :]
        code = decode_codes(qrow, k[None, :, :], rmask[:, None, None] & kmask[None, :, None], BITS)
        meta = tl.load(meta_ptr + rows[:, None] * GROUPS + (ks // GROUP)[None, :],
                       mask=rmask[:, None] & kmask[None, :], other=0)
        v = tl.load(lut_ptr + ((meta & 0xFF)[:, :, None] << BITS) + code)
        x = tl.load(x_ptr + m * K + k, mask=kmask[:, None], other=0)
        if FLOAT:
            p = tl.sum(v.to(tl.float32) * x.to(tl.float32)[None, :, :], axis=2)
            acc += tl.sum(p * (meta >> 8).to(tl.float32), axis=1)
        else:
            p = tl.sum(v.to(tl.int32) * x.to(tl.int32)[None, :, :], axis=2)
            acc += tl.sum(p * (meta >> 8), axis=1)
    if FLOAT:
        rs = tl.load(rs_ptr + rows, mask=rmask, other=0.0)
        tl.store(y_ptr + m * N + rows, (acc * rs).to(y_ptr.dtype.element_ty), mask=rmask)
    else:
        tl.store(y_ptr + m * N + rows, acc, mask=rmask)


def gemv_config(n: int, k: int, group_size: int) -> dict:
    """Tile sizes: K tiles of up to 512 inputs (256 bytes of 4-bit codes per row) cut into sub-tiles of up to 128
    inside one group, and ``4096 / K tile`` rows (at least 1), so that a multiprocessor keeps many bytes in flight
    (the bytes in flight per multiprocessor grow with the K tile, not with the rows per program)."""
    sub = min(group_size & -group_size, 128)
    tile = max(sub, min(512, next_pow2(k)))
    return {"BLOCK_N": max(1, min(4096 // tile, next_pow2(n))), "SUB": sub, "SUBS": tile // sub, "num_warps": 4}


def _check_weights(w: PackedWeights) -> None:
    if not isinstance(w, PackedWeights):
        raise KernelInputError(f"weights are a {type(w).__name__}; pack them first with "
                               f"accel.gpu.quant_pack.pack_quantized(...) (or pass them to accel.gpu.ops)")
    check_tensor(w.qweight, "packed weights", (torch.int32,), shape=(w.n, None))
    check_tensor(w.meta, "group metadata", (torch.int32,), shape=(w.n, w.k // w.group_size))
    check_tensor(w.row_scale, "row scales", (torch.float32,), shape=(w.n,))
    check_tensor(w.lut, "value table", (torch.int8,), shape=(None, 1 << w.bits))


def check_activations(x: torch.Tensor, w: PackedWeights) -> tuple[int, bool]:
    """Check ``x`` against ``w``: ``(K,)`` or ``(M, K)``, int8 or fp16, contiguous, on the kernel device.
    Returns ``(M, float path)``."""
    _check_weights(w)
    check_tensor(x, "activations", (torch.int8, torch.float16), ndim=(1, 2))
    if x.shape[-1] != w.k:
        raise KernelInputError(f"activations have {x.shape[-1]} inputs (shape {tuple(x.shape)}) but the weights "
                               f"have K = {w.k}; give one activation per weight column")
    return (1 if x.dim() == 1 else x.shape[0]), x.dtype == torch.float16


def gemv_q(x: torch.Tensor, w: PackedWeights, block_n: int | None = None) -> torch.Tensor:
    """``y = W x`` for packed weights.

    Parameters
    ----------
    x:
        ``(K,)`` or ``(M, K)`` activations: int8 (integer path) or fp16.
    w:
        Packed weights (``N x K``).
    block_n:
        Rows per program (a power of two; default from :func:`gemv_config`).

    Returns
    -------
    ``(N,)`` or ``(M, N)``: int32 (equal to :func:`accel.numerics.matvec_int` with ``acc_bits = 32``) for int8
    activations, fp16 for fp16 activations.

    Raises
    ------
    KernelInputError
        Before any launch: weights not packed, wrong dtype, shape, layout or device.
    """
    m, is_float = check_activations(x, w)
    cfg = gemv_config(w.n, w.k, w.group_size)
    if block_n is not None:
        if block_n < 1 or block_n & (block_n - 1):
            raise KernelInputError(f"block_n = {block_n}: it must be a power of two")
        cfg["BLOCK_N"] = block_n
    y = torch.empty((m, w.n), dtype=torch.float16 if is_float else torch.int32, device=x.device)
    grid = (triton.cdiv(w.n, cfg["BLOCK_N"]), m)
    _gemv_q_kernel[grid](x, w.qweight, w.meta, w.row_scale, w.lut, y, w.n, w.k, w.qweight.shape[1],
                         w.k // w.group_size, w.group_size, BITS=w.bits, FLOAT=is_float, **cfg)
    return y[0] if x.dim() == 1 else y


def reference_gemv_fp16(x: torch.Tensor, qw: QuantizedWeights) -> torch.Tensor:
    """Torch's fp16 result for the same dequantised weights: ``x @ W16.T`` with ``W16 = qw.weights`` in fp16 (what a
    dense fp16 layer would hold), on ``x``'s device."""
    w16 = torch.from_numpy(np.asarray(qw.weights, dtype=np.float32)).to(device=x.device, dtype=torch.float16)
    return torch.matmul(x.to(torch.float16), w16.T)


def bench_gemv_q(n: int, k: int, bits: int, m: int = 1, group_size: int = 128, seed: int = 0) -> dict:
    """Time :func:`gemv_q` (fp16 activations) and torch's fp16 ``matmul`` (cuBLAS) at ``M x K @ K x N``.

    Returns milliseconds, the counted bytes and FLOPs (:func:`accel.gpu.roofline.op_cost`) and the achieved
    bandwidth (GB/s) and compute (TFLOP/s) of both. Needs a GPU (:func:`accel.gpu.backend.time_ms`).
    """
    return bench_quant_matmul(gemv_q, m, n, k, bits, group_size, seed)


def bench_quant_matmul(kernel, m: int, n: int, k: int, bits: int, group_size: int, seed: int) -> dict:
    """Time ``kernel(x, w)`` (:func:`gemv_q` or :func:`accel.gpu.quant_gemm.gemm_q`) on random packed weights and
    fp16 activations beside ``torch.matmul`` with dense fp16 weights of the same shape."""
    from .backend import bench_device, time_ms
    from .quant_pack import random_packed
    from .roofline import achieved, op_cost

    dev = bench_device()
    gen = torch.Generator(device=dev).manual_seed(seed)
    w = random_packed(n, k, bits, group_size, seed, dev)
    x = torch.randn((m, k), generator=gen, device=dev, dtype=torch.float16)
    w16 = torch.randn((n, k), generator=gen, device=dev, dtype=torch.float16)
    ours = time_ms(lambda: kernel(x, w))
    theirs = time_ms(lambda: torch.matmul(x, w16.T))
    c_ours = op_cost("matmul", {"M": m, "N": n, "K": k, "weight_bits": bits, "group_size": group_size})
    c_theirs = op_cost("matmul", {"M": m, "N": n, "K": k})
    return {"ours": achieved(ours, c_ours), "torch": achieved(theirs, c_theirs)}
