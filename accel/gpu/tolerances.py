"""The stated error bounds of the kernels' float paths (the tests assert them; ``benchmarks/gpu_kernels.py``
measures how close the kernels come; docs/gpu.md lists both).

Integer paths have no tolerance: the quantised GEMV/GEMM on int8 activations equal
:func:`accel.numerics.matvec_int` bit for bit.
"""
from __future__ import annotations

__all__ = ["MATMUL_FP16", "ATTENTION", "VECTOR"]

#: Quantised GEMV/GEMM on fp16 activations: ``|ours - ref| <= MATMUL_FP16 * (sum_k |w_k x_k| + |ref|)`` against
#: torch's fp16 matmul with the dequantised weights rounded to fp16, and ``|ours - exact| <= MATMUL_FP16 *
#: sum_k |w_k x_k|`` against the exact product (fp16 rounding of weights and outputs is 2**-11 relative each).
MATMUL_FP16 = 2.0 ** -10

#: Attention, per input dtype: ``max |ours - ref64| <= ATTENTION[dtype] * max |v|`` (outputs are convex
#: combinations of the values; fp16 rounds the probabilities and the output at 2**-11).
ATTENTION = {"float16": 2e-3, "float32": 2e-5}

#: Vector operators, per dtype: ``|ours - ref64| <= VECTOR[dtype] * (1 + |ref64|)`` (one rounding to the dtype:
#: 2**-11 for fp16; bf16 gets two of its 2**-8 steps because Triton's interpreter truncates fp32 -> bf16 where the
#: GPU rounds to nearest).
VECTOR = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -6, "float32": 2e-6}
