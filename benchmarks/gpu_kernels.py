"""GPU kernels: measured error of every float path against exact references, and (on a GPU) their speed.

    python benchmarks/gpu_kernels.py [--cases N] [--seed S]     # errors; any machine (interpreter without a GPU)
    python benchmarks/gpu_kernels.py --speed [--models ...]      # accel gpu bench's JSON; needs a GPU

Errors, over ``N`` random cases per kernel (seeded numpy/torch generators), each the largest seen:

* quantised GEMV/GEMM, fp16 activations, at 3/4/8 bits: ``|ours - ref| / (sum_k |w_k x_k| + |ref|)`` against torch's
  fp16 matmul with the dequantised weights in fp16 (``vs_torch_fp16``), and ``|y - y64| / sum_k |w_k x_k|`` of ours
  and of torch's fp16 result against the exact fp64 product (``ours_vs_exact``, ``torch_vs_exact``); int8
  activations: the number of outputs that differ from :func:`accel.numerics.matvec_int` (must be 0);
* attention (prefill causal/non-causal, decode split-K), fp16 and fp32: ``max |ours - ref64| / max |v|``, with
  torch's ``scaled_dot_product_attention`` in the same dtype beside it;
* vector operators by dtype: ``max |ours - ref64| / (1 + |ref64|)``.

Prints one JSON object. The bounds the tests assert are :mod:`accel.gpu.tolerances`; docs/gpu.md lists these
measurements.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np


def _quant(rng, cases: int) -> dict:
    import torch

    from accel.gpu.quant_gemm import gemm_q
    from accel.gpu.quant_gemv import gemv_q, reference_gemv_fp16
    from accel.gpu.quant_pack import pack_quantized
    from accel.numerics import matvec_int, quantize_weights

    sets = {8: ("int8",), 4: ("int4", "fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg"),
            3: ("int3", "fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg")}
    out = {}
    for bits, names in sets.items():
        for kernel, fn, rows in (("gemv", gemv_q, 1), ("gemm", gemm_q, 24)):
            worst = {"vs_torch_fp16": 0.0, "ours_vs_exact": 0.0, "torch_vs_exact": 0.0, "int_mismatches": 0}
            for _ in range(cases):
                n, k, g = int(rng.integers(8, 80)), 64 * int(rng.integers(1, 5)), int(rng.choice([16, 32, 64]))
                qw = quantize_weights(rng.standard_normal((n, k)) * rng.uniform(0.01, 3), names, group_size=g,
                                      scale_bits=int(rng.integers(4, 9)))
                pw = pack_quantized(qw)
                x = torch.from_numpy(rng.standard_normal((rows, k)) * rng.uniform(0.1, 10)).half()
                ours = fn(x, pw).double().numpy()
                ref = reference_gemv_fp16(x, qw).double().numpy()
                xd = x.double().numpy()
                exact = xd @ qw.weights.T
                scale = np.abs(xd) @ np.abs(qw.weights).T
                worst["vs_torch_fp16"] = max(worst["vs_torch_fp16"],
                                             float(np.max(np.abs(ours - ref) / (scale + np.abs(ref)))))
                worst["ours_vs_exact"] = max(worst["ours_vs_exact"], float(np.max(np.abs(ours - exact) / scale)))
                worst["torch_vs_exact"] = max(worst["torch_vs_exact"], float(np.max(np.abs(ref - exact) / scale)))
                a = rng.integers(-128, 128, (rows, k))
                yi = fn(torch.from_numpy(a.astype(np.int8)), pw).numpy()
                worst["int_mismatches"] += int(sum(np.sum(yi[i] != matvec_int(a[i], qw, 32, 8)) for i in range(rows)))
            out[f"{kernel}_w{bits}"] = worst
    return out


def _attention(cases: int, seed: int) -> dict:
    import torch

    from accel.gpu.attention_decode import attention_decode
    from accel.gpu.attention_prefill import attention_prefill, reference_attention

    gen = torch.Generator().manual_seed(seed)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = {}
    for dtype in (torch.float16, torch.float32):
        worst = {"prefill": 0.0, "prefill_sdpa": 0.0, "decode": 0.0, "decode_sdpa": 0.0}
        for _ in range(cases):
            hkv = int(torch.randint(1, 3, (1,), generator=gen))
            hq = hkv * int(torch.randint(1, 5, (1,), generator=gen))
            d = int(torch.tensor([32, 48, 64])[torch.randint(0, 3, (1,), generator=gen)])
            s = int(torch.randint(1, 90, (1,), generator=gen))
            amp = float(torch.empty(1).uniform_(0.5, 3.0, generator=gen))
            q, k, v = (torch.randn((1, h, s, d), generator=gen).mul(amp).to(dtype) for h in (hq, hkv, hkv))
            causal = bool(torch.randint(0, 2, (1,), generator=gen))
            ref = reference_attention(q, k, v, causal)
            vmax = float(v.abs().max())
            worst["prefill"] = max(worst["prefill"], float((attention_prefill(q, k, v, causal).double() - ref)
                                                           .abs().max()) / vmax)
            if hq == hkv:
                worst["prefill_sdpa"] = max(worst["prefill_sdpa"], float((sdpa(q, k, v, is_causal=causal).double()
                                                                          - ref).abs().max()) / vmax)
            lens = [int(torch.randint(1, s + 1, (1,), generator=gen))]
            ref_d = reference_attention(q[:, :, :1], k, v, False, kv_lens=lens)[:, :, 0]
            ours_d = attention_decode(q[:, :, 0].contiguous(), k, v, lens,
                                      num_splits=int(torch.randint(1, 4, (1,), generator=gen)))
            worst["decode"] = max(worst["decode"], float((ours_d.double() - ref_d).abs().max()) / vmax)
            if hq == hkv:
                th = sdpa(q[:, :, :1], k[:, :, :lens[0]], v[:, :, :lens[0]])[:, :, 0]
                worst["decode_sdpa"] = max(worst["decode_sdpa"], float((th.double() - ref_d).abs().max()) / vmax)
        out[str(dtype).replace("torch.", "")] = worst
    return out


def _vector(cases: int, seed: int) -> dict:
    import torch
    import torch.nn.functional as F

    from accel.gpu.activations import gelu, residual_add, silu, silu_mul
    from accel.gpu.norms import layernorm, rmsnorm
    from accel.gpu.rotary import reference_rotary, rope_tables, rotary
    from accel.gpu.softmax import softmax

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        worst: dict[str, float] = {}
        for _ in range(cases):
            rows, cols = int(torch.randint(1, 6, (1,), generator=gen)), int(torch.randint(1, 700, (1,), generator=gen))
            x, u = (torch.randn((rows, cols), generator=gen).mul(3).to(dtype) for _ in range(2))
            w, b = (torch.randn((cols,), generator=gen).to(dtype) for _ in range(2))
            xd, ud, wd, bd = (t.double() for t in (x, u, w, b))
            pos = torch.randint(0, 8192, (7,), generator=gen)
            xr = torch.randn((1, 2, 7, 64), generator=gen).to(dtype)
            cos, sin = rope_tables(pos, 64, 500000.0)
            pairs = {
                "layernorm": (layernorm(x, w, b), F.layer_norm(xd, (cols,), wd, bd, 1e-5)),
                "rmsnorm": (rmsnorm(x, w), F.rms_norm(xd, (cols,), wd, 1e-5)),
                "gelu_tanh": (gelu(x, "tanh"), F.gelu(xd, approximate="tanh")),
                "gelu_erf": (gelu(x, "erf"), F.gelu(xd)),
                "silu": (silu(x), F.silu(xd)),
                "silu_mul": (silu_mul(x, u), F.silu(xd) * ud),
                "residual_add": (residual_add(x, u), xd + ud),
                "softmax": (softmax(x), torch.softmax(xd, -1)),
                "softmax_two_pass": (softmax(x, single_pass_row=64), torch.softmax(xd, -1)),
                "rotary": (rotary(xr, cos, sin), reference_rotary(xr, cos, sin)),
            }
            for name, (got, ref) in pairs.items():
                e = float(((got.double() - ref).abs() / (1 + ref.abs())).max())
                worst[name] = max(worst.get(name, 0.0), e)
        out[str(dtype).replace("torch.", "")] = worst
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20, help="random cases per kernel (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", action="store_true", help="run accel gpu bench instead (needs a GPU)")
    ap.add_argument("--models", nargs="+", default=None)
    args = ap.parse_args()
    if args.speed:
        from accel.gpu.bench import run_bench

        json.dump(run_bench(args.models), sys.stdout, indent=2)
        print()
        return
    from accel.gpu.backend import kernel_mode

    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    result = {"mode": kernel_mode(), "cases": args.cases, "seed": args.seed,
              "quantised_matmul": _quant(rng, args.cases), "attention": _attention(args.cases, args.seed),
              "vector": _vector(args.cases, args.seed)}
    result["wall_s"] = round(time.time() - t0, 1)
    for group in ("quantised_matmul", "attention", "vector"):
        for rec in result[group].values():
            for key, val in rec.items():
                if isinstance(val, float):
                    rec[key] = float(f"{val:.3g}") if val and math.isfinite(val) else val
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
