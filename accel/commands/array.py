"""``accel array gemm|attention``: cycles and utilisation of a GEMM or an attention head on the attention array.

Utilisation is what an architect means by it: busy PE-cycles over all PE-cycles (``MACs / (PEs x cycles)``); the
fraction of cycles in which the attention array multiplies at all is printed under its own name.
"""
from __future__ import annotations

import argparse

from ..fmt import num, pct, plural, si
from .options import add_device, add_json, positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("array", help="timing of work on the spatial attention array")
    asub = p.add_subparsers(dest="array_command", metavar="ACTION")
    asub.required = True

    g = asub.add_parser("gemm", help="cycles and utilisation of an (M x K) @ (K x N) GEMM (closed form)")
    g.add_argument("--M", type=positive, required=True, help="rows of the left operand and of the output")
    g.add_argument("--K", type=positive, required=True, help="reduction dimension")
    g.add_argument("--N", type=positive, required=True, help="columns of the right operand and of the output")
    g.add_argument("--rows", type=positive, help="PE rows of the array (default: the device's attention array)")
    g.add_argument("--cols", type=positive, help="PE columns of the array (default: the device's attention array)")
    add_device(g, default=None, help="take rows, cols and data width from its attention array")
    g.add_argument("--dataflow", choices=("os", "ws", "is"), default="os",
                   help="output-, weight- or input-stationary")
    g.add_argument("--timing", choices=("native", "scalesim"), default="native",
                   help="native: the array's own, folds overlapped; scalesim: SCALE-Sim v3's count")
    g.add_argument("--emulate", action="store_true",
                   help="also run random operands through the per-cycle model of the GEMM RTL (rtl/gemm.py) and "
                        "print its cycle count (native timing; small shapes)")
    add_json(g)
    g.set_defaults(func=gemm)

    a = asub.add_parser("attention", help="cycles, utilisation and buffers of one attention head (closed form)")
    add_device(a, default="hbm3-pim", help="one with an attention array")
    a.add_argument("--queries", type=positive, required=True, help="query tokens")
    a.add_argument("--keys", type=positive, required=True, help="key tokens")
    a.add_argument("--head-dim", type=positive, required=True, help="head dimension (at most the array's head_dim)")
    add_json(a)
    a.set_defaults(func=attention)


def attention(args: argparse.Namespace) -> int:
    from ..report import attention_report

    out = attention_report(args.device, args.queries, args.keys, args.head_dim)
    if args.json:
        from ..cli import print_json

        print_json(out)
        return 0
    need = out["keys_for_utilisation_0_9"]
    reach = (f"full tiles reach 90% from {need} keys" if need is not None else
             f"full tiles never reach 90% at head dim {out['head_dim']}")
    print(f"attention head {out['queries']} queries x {out['keys']} keys, d = {out['head_dim']}, on "
          f"{out['preset']} ({out['rows']}x{out['cols']} + {out['cols']} 1D PEs)")
    print(f"  cycles          {out['cycles']} ({plural(out['tiles'], 'tile')} x "
          f"{plural(out['chunks_per_tile'], 'chunk')}, "
          f"{si(out['seconds'], 's')})")
    print(f"  utilisation     {pct(out['utilisation'])} (busy PE-cycles of the 2D array over all its PE-cycles; "
          f"{reach})")
    print(f"  2D busy cycles  {pct(out['busy_fraction_2d'])} (cycles in which the 2D array multiplies)")
    print(f"  on-chip state   {out['buffer_bits']} bits (independent of the sequence length)")
    return 0


def gemm(args: argparse.Namespace) -> int:
    from ..report import gemm_report

    out = gemm_report(args.M, args.K, args.N, rows=args.rows, cols=args.cols, preset=args.device,
                      dataflow=args.dataflow, timing=args.timing, emulate=args.emulate)
    if args.json:
        from ..cli import print_json

        print_json(out)
        return 0
    scalesim = out["timing"] == "scalesim"
    what = (f"SCALE-Sim v3's Total Cycles: the index of the last cycle, {plural(out['counted_cycles'], 'cycle')} "
            f"counted" if scalesim else "first operand in to last MAC, inclusive")
    print(f"GEMM {out['M']}x{out['K']}x{out['N']} on {out['rows']}x{out['cols']} PEs, {out['dataflow']} dataflow, "
          f"{out['timing']} timing")
    print(f"  cycles       {out['cycles']} ({what})")
    own = f"; SCALE-Sim's own figure {num(out['scalesim_utilisation'])}" if scalesim else ""
    print(f"  utilisation  {pct(out['utilisation'], 2)} ({plural(out['macs'], 'MAC')} over {out['rows']}x"
          f"{out['cols']} PEs x {plural(out['counted_cycles'], 'cycle')}; {plural(out['folds'], 'fold')}, ideal "
          f"{plural(out['ideal_cycles'], 'cycle')}{own})")
    if not scalesim:
        why = ("equal" if out["rtl_cycles"] == out["cycles"] else
               f"folds of K = {out['temporal']} < rows + cols - 1 = {out['rows'] + out['cols'] - 1} wait for a free "
               f"result bank")
        print(f"  RTL cycles   {out['rtl_cycles']} (rtl/gemm.py with operands every cycle: {why})")
    if args.emulate:
        verdict = "product exact" if out["emulated_exact"] else "PRODUCT WRONG"
        agree = "= RTL cycles" if out["emulated_cycles"] == out["rtl_cycles"] else "DIFFERS FROM RTL CYCLES"
        print(f"  emulated     {out['emulated_cycles']} (per-cycle model of rtl/gemm.py, random "
              f"{out['data_bits']}-bit operands, {verdict}, {agree})")
    return 0
