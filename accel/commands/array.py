"""``accel array gemm``: cycles and utilisation of a GEMM on the attention array's 2D PE array."""
from __future__ import annotations

import argparse

from ..errors import AccelError


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
    g.add_argument("--json", action="store_true", help="print JSON")
    g.set_defaults(func=gemm)


def _array_size(args: argparse.Namespace) -> tuple[int, int]:
    rows, cols = args.rows, args.cols
    if args.preset is not None:
        from ..config import load_preset

        dev = load_preset(args.preset)
        if dev.attention is None:
            raise AccelError(f"preset {dev.name} has no attention array; give --rows and --cols, or pick a preset "
                             f"with one (accel devices)")
        rows = dev.attention.rows if rows is None else rows
        cols = dev.attention.cols if cols is None else cols
    if rows is None or cols is None:
        missing = "--rows" if rows is None else "--cols"
        raise AccelError(f"{missing} is missing: give the array size with --rows and --cols, or --preset")
    return rows, cols


def gemm(args: argparse.Namespace) -> int:
    from ..emulator.units.array_gemm import gemm_timing

    rows, cols = _array_size(args)
    t = gemm_timing(args.M, args.K, args.N, rows, cols, args.dataflow, args.timing)
    if args.json:
        from ..cli import print_json

        print_json(t.to_json())
        return 0
    unit = "last cycle index (SCALE-Sim v3 Total Cycles)" if t.timing == "scalesim" else "cycles"
    print(f"GEMM {t.M}x{t.K}x{t.N} on {t.rows}x{t.cols}, {t.dataflow}, {t.timing} timing")
    print(f"  cycles       {t.cycles}  ({unit})")
    print(f"  utilisation  {t.utilisation:.4f}  ({t.macs} MACs, {t.folds} folds, ideal {t.ideal_cycles} cycles)")
    return 0
