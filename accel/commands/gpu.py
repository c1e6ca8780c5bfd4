"""``accel gpu``: the Triton kernels on a GPU (benchmark against torch), a mapped model step beside the same operators on a
GPU (``compare``: :mod:`accel.mapping.compare`) and the GPU peak table."""
from __future__ import annotations

import argparse

from ..fmt import table
from .options import add_json, positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu", help="time the Triton kernels against torch on a GPU; list GPU peaks")
    gsub = p.add_subparsers(dest="gpu_command", metavar="ACTION")
    gsub.required = True

    b = gsub.add_parser("bench", help="time every kernel at real models' decode and prefill shapes beside torch, "
                                      "as fractions of the GPU's peaks, and judge the targets")
    b.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="models to run (default: all of gpt2-xl, llama2-7b, llama3-8b)")
    b.add_argument("--phases", nargs="+", default=["decode", "prefill"], choices=["decode", "prefill"],
                   help="phases")
    b.add_argument("--estimate", default=None, metavar="GPU",
                   help="print roofline estimates for a GPU of the peak table instead of measuring (no GPU needed; "
                        "never a measurement)")
    add_json(b)
    b.set_defaults(func=bench)

    c = gsub.add_parser("compare", help="a model's step on the emulated device beside the same operators on a GPU: "
                                        "time and energy per token, per operator, the speedup")
    from .map import add_mapping

    add_mapping(c)
    how = c.add_mutually_exclusive_group()
    how.add_argument("--measure", action="store_true", default=None,
                     help="time the kernels on this machine's GPU (refused without one; default: measure when a GPU "
                          "is present, else a roofline estimate on --gpu)")
    how.add_argument("--estimate", dest="measure", action="store_false",
                     help="the GPU side as a roofline estimate on --gpu even where a GPU is present")
    c.add_argument("--top", type=positive, default=12, help="operators listed (by GPU time)")
    add_json(c, "print JSON (every operator)")
    c.add_argument("--progress", action="store_true", default=None,
                   help="show progress bars on stderr even when it is not a terminal")
    c.set_defaults(func=compare)

    k = gsub.add_parser("peaks", help="the peak table: bandwidth, tensor-core rates, sources")
    add_json(k)
    k.set_defaults(func=peaks)


def bench(args: argparse.Namespace) -> int:
    from ..gpu.bench import format_result, run_bench

    result = run_bench(args.models, args.phases, estimate=args.estimate)
    if args.json:
        from ..cli import print_json

        print_json(result)
    else:
        print(format_result(result))
    return 0


def compare(args: argparse.Namespace) -> int:
    from ..mapping.compare import compare as compare_step
    from ..mapping.compare import format_compare
    from ..mapping.map import map_model
    from .map import mapping_args

    kw = mapping_args(args)
    result = compare_step(map_model(**kw, progress=args.progress), kw["gpu"], args.measure)
    if args.json:
        from ..cli import print_json

        print_json(result.to_json())
    else:
        print(format_compare(result, args.top))
    return 0


def peaks(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..gpu.peaks import GPU_PEAKS

    rows = [asdict(p) for p in GPU_PEAKS]
    if args.json:
        from ..cli import print_json

        print_json(rows)
        return 0
    cols = [("key", "gpu"), ("memory_gb", "GB"), ("bandwidth_gbs", "GB/s"), ("fp16_tflops", "fp16 TFLOP/s"),
            ("int8_tops", "int8 TOP/s"), ("fp32_tflops", "fp32 TFLOP/s"), ("tdp_w", "W"), ("source", "source")]
    print(table([[head for _, head in cols]] + [[r[key] for key, _ in cols] for r in rows]))
    print("tensor-core rates are dense (NVIDIA's datasheets print them with sparsity: twice these)")
    return 0
