"""``accel gpu``: the Triton kernels on a GPU (benchmark against torch) and the GPU peak table."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu", help="time the Triton kernels against torch on a GPU; list GPU peaks")
    gsub = p.add_subparsers(dest="gpu_command", metavar="ACTION")
    gsub.required = True

    b = gsub.add_parser("bench", help="time every kernel at real models' decode and prefill shapes beside torch, "
                                      "as fractions of the GPU's peaks, and judge the targets")
    b.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="models to run (default: all of gpt2-xl, llama2-7b, llama3-8b)")
    b.add_argument("--phases", nargs="+", default=["decode", "prefill"], choices=["decode", "prefill"],
                   help="phases (default: both)")
    b.add_argument("--estimate", default=None, metavar="GPU",
                   help="print roofline estimates for a GPU of the peak table instead of measuring (no GPU needed; "
                        "never a measurement)")
    b.add_argument("--json", action="store_true", help="print JSON")
    b.set_defaults(func=bench)

    k = gsub.add_parser("peaks", help="the peak table: bandwidth, tensor-core rates, sources")
    k.add_argument("--json", action="store_true", help="print JSON")
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
    cols = [("key", "gpu", "{}"), ("memory_gb", "GB", "{:g}"), ("bandwidth_gbs", "GB/s", "{:g}"),
            ("fp16_tflops", "fp16 TFLOP/s", "{:g}"), ("int8_tops", "int8 TOP/s", "{:g}"),
            ("fp32_tflops", "fp32 TFLOP/s", "{:g}"), ("tdp_w", "W", "{:g}"), ("source", "source", "{}")]
    table = [[head for _, head, _ in cols]] + [[fmt.format(r[key]) for key, _, fmt in cols] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("tensor-core rates are dense (NVIDIA's datasheets print them with sparsity: twice these)")
    return 0
