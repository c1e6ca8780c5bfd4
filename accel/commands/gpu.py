"""``accel gpu``: the Triton kernels on a GPU (benchmark against torch) and the GPU peak table."""
from __future__ import annotations

import argparse

from ..fmt import table
from .options import add_json


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
