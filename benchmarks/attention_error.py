"""Error of the attention array's fixed-point numerics against float attention (torch SDPA).

For each case: float Q, K, V (standard normal, Q scaled so that the softmax logits ``Q K^T / sqrt(d)`` have the
stated standard deviation), quantised with :func:`accel.numerics.quantize_attention`, run through the bit-exact
golden model (:func:`accel.numerics.attention_fixed`, chunks of ``rows`` keys), and compared with
``torch.nn.functional.scaled_dot_product_attention`` in float64 on (a) the float inputs: the whole error, quantisation
included; (b) the dequantised integer inputs: the error of the fixed-point exp2/online softmax/division alone.

Prints JSON (one object per case); ``--markdown`` prints the table that ``docs/attention.md`` shows.
Usage: ``python benchmarks/attention_error.py [--markdown] [--seed N]``.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from accel.config import AttentionConfig
from accel.numerics import attention_fixed, attn_format, causal_mask, quantize_attention


def _errors(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    diff = np.abs(out - ref)
    return {"max_abs": float(diff.max()), "rel_max": float(diff.max() / np.abs(ref).max()),
            "rel_fro": float(np.linalg.norm(out - ref) / np.linalg.norm(ref))}


def case(data_bits: int, exp_table_bits: int, n: int, d: int, logit_std: float, causal: bool, rows: int,
         seed: int) -> dict:
    cfg = AttentionConfig(rows=rows, cols=rows, head_dim=d, data_bits=data_bits, exp_table_bits=exp_table_bits,
                          clock_mhz=1000.0)
    fmt = attn_format(cfg)
    rng = np.random.default_rng(seed)
    Q, K, V = (rng.standard_normal((n, d)) for _ in range(3))
    Q *= logit_std  # logits Q K^T / sqrt(d) then have standard deviation logit_std
    qa = quantize_attention(Q, K, V, fmt)
    mask = causal_mask(n, n) if causal else None
    out = attention_fixed(qa.q, qa.k, qa.v, fmt, rows, qa.score_frac_bits, mask) * qa.out_scale
    sdpa = torch.nn.functional.scaled_dot_product_attention
    ref = sdpa(*(torch.tensor(x)[None] for x in (Q, K, V)), is_causal=causal)[0].numpy()
    deq = [torch.tensor(x * s)[None] for x, s in ((qa.q, qa.q_scale), (qa.k, qa.k_scale), (qa.v, qa.v_scale))]
    # the dequantised Q already carries log2(e) / sqrt(d): undo log2(e) with SDPA's scale
    ref_q = sdpa(*deq, is_causal=causal, scale=1 / math.log2(math.e))[0].numpy()
    return {"data_bits": data_bits, "exp_table_bits": exp_table_bits, "tokens": n, "head_dim": d,
            "logit_std": logit_std, "causal": causal, "chunk": rows, "score_frac_bits": qa.score_frac_bits,
            "vs_float": _errors(out, ref), "vs_dequantised": _errors(out, ref_q)}


CASES = [
    # (data_bits, exp_table_bits, tokens, head_dim, logit_std, causal)
    (8, 6, 256, 64, 1.0, False),
    (8, 6, 1024, 64, 1.0, False),
    (8, 6, 1024, 64, 1.0, True),
    (8, 4, 1024, 64, 1.0, False),
    (8, 8, 1024, 64, 1.0, False),
    (8, 6, 1024, 64, 4.0, False),
    (8, 6, 1024, 64, 4.0, True),
    (8, 6, 1024, 64, 16.0, False),
    (8, 6, 1024, 128, 4.0, False),
    (16, 6, 256, 64, 1.0, False),
    (16, 6, 256, 64, 4.0, True),
    (16, 8, 256, 64, 16.0, False),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=16, help="keys per chunk (the 2D array's rows)")
    args = ap.parse_args()
    results = [case(*c, rows=args.rows, seed=args.seed + i) for i, c in enumerate(CASES)]
    if not args.markdown:
        print(json.dumps(results, indent=1))
        return
    print("| data bits | exp table bits | tokens | head dim | logit std | causal | F | vs float: max-abs | rel (max) "
          "| rel (Frobenius) | vs dequantised: max-abs | rel (max) | rel (Frobenius) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        a, b = r["vs_float"], r["vs_dequantised"]
        print(f"| {r['data_bits']} | {r['exp_table_bits']} | {r['tokens']} | {r['head_dim']} | {r['logit_std']:g} | "
              f"{'yes' if r['causal'] else 'no'} | {r['score_frac_bits']} | {a['max_abs']:.2e} | {a['rel_max']:.2e} | "
              f"{a['rel_fro']:.2e} | {b['max_abs']:.2e} | {b['rel_max']:.2e} | {b['rel_fro']:.2e} |")


if __name__ == "__main__":
    main()
