"""``accel array gemm|attention``: cycles and utilisation of a GEMM or an attention head on the attention array."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("array", help="timing of work on the spatial attention array")
    asub = p.add_subparsers(dest="array_command", metavar="ACTION")
    asub.required = True

    g = asub.add_parser("gemm", help="cycles and utilisation of an (M x K) @ (K x N) GEMM (closed form)")
    g.add_argument("--M", type=int, required=True, help="rows of the left operand and of the output")
    g.add_argument("--K", type=int, required=True, help="reduction dimension")
    g.add_argument("--N", type=int, required=True, help="columns of the right operand and of the output")
    g.add_argument("--rows", type=int, help="PE rows of the array (default: the preset's attention array)")
    g.add_argument("--cols", type=int, help="PE columns of the array (default: the preset's attention array)")
    g.add_argument("--preset", help="take rows and cols from this preset's attention array")
    g.add_argument("--dataflow", choices=("os", "ws", "is"), default="os",
                   help="output-, weight- or input-stationary (default: os)")
    g.add_argument("--timing", choices=("native", "scalesim"), default="native",
                   help="native: the array's own, folds overlapped; scalesim: SCALE-Sim v3's count (default: native)")
    g.add_argument("--emulate", action="store_true",
                   help="also run random operands through the per-cycle model of the GEMM RTL (rtl/gemm.py) and "
                        "print its cycle count (native timing; small shapes)")
    g.add_argument("--json", action="store_true", help="print JSON")
    g.set_defaults(func=gemm)

    a = asub.add_parser("attention", help="cycles, 2D utilisation and buffers of one attention head (closed form)")
    a.add_argument("--preset", required=True, help="device preset with an attention array (accel devices)")
    a.add_argument("--queries", type=int, required=True, help="query tokens")
    a.add_argument("--keys", type=int, required=True, help="key tokens")
    a.add_argument("--head-dim", type=int, required=True, help="head dimension (at most the array's head_dim)")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=attention)


def attention(args: argparse.Namespace) -> int:
    from ..report import attention_report

    out = attention_report(args.preset, args.queries, args.keys, args.head_dim)
    if args.json:
        from ..cli import print_json

        print_json(out)
        return 0
    print(f"attention head {out['queries']} queries x {out['keys']} keys, d = {out['head_dim']}, on "
          f"{out['preset']} ({out['rows']}x{out['cols']} + {out['cols']} 1D PEs)")
    print(f"  cycles          {out['cycles']}  ({out['tiles']} tiles x {out['chunks_per_tile']} chunks, "
          f"{out['seconds'] * 1e6:.3f} us)")
    print(f"  2D utilisation  {out['utilisation_2d']:.4f}  (0.9 from {out['keys_for_utilisation_0_9']} keys)")
    print(f"  on-chip state   {out['buffer_bits']} bits (independent of the sequence length)")
    return 0


def gemm(args: argparse.Namespace) -> int:
    from ..report import gemm_report

    out = gemm_report(args.M, args.K, args.N, rows=args.rows, cols=args.cols, preset=args.preset,
                      dataflow=args.dataflow, timing=args.timing, emulate=args.emulate)
    if args.json:
        from ..cli import print_json

        print_json(out)
        return 0
    scalesim = out["timing"] == "scalesim"
    unit = "last cycle index (SCALE-Sim v3 Total Cycles)" if scalesim else "cycles"
    print(f"GEMM {out['M']}x{out['K']}x{out['N']} on {out['rows']}x{out['cols']}, {out['dataflow']}, "
          f"{out['timing']} timing")
    print(f"  cycles       {out['cycles']}  ({unit})")
    print(f"  utilisation  {out['utilisation']:.4f}  ({out['macs']} MACs, {out['folds']} folds, ideal "
          f"{out['ideal_cycles']} cycles)")
    if not scalesim:
        why = ("equal" if out["rtl_cycles"] == out["cycles"] else
               f"folds of K = {out['temporal']} < rows + cols - 1 = {out['rows'] + out['cols'] - 1} wait for a free "
               f"result bank")
        print(f"  RTL cycles   {out['rtl_cycles']}  (rtl/gemm.py with operands every cycle: {why})")
    if args.emulate:
        verdict = "product exact" if out["emulated_exact"] else "PRODUCT WRONG"
        agree = "= RTL cycles" if out["emulated_cycles"] == out["rtl_cycles"] else "DIFFERS FROM RTL CYCLES"
        print(f"  emulated     {out['emulated_cycles']}  (per-cycle model of rtl/gemm.py, random "
              f"{out['data_bits']}-bit operands, {verdict}, {agree})")
    return 0
