"""``accel array gemm|attention``: cycles and utilisation of a GEMM or an attention head on the attention array."""
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


#: Largest ``cycles * rows * cols`` that ``accel array gemm --emulate`` runs through the per-cycle model (seconds).
EMULATE_LIMIT = 20_000_000


def _array_size(args: argparse.Namespace) -> tuple[int, int]:
    rows, cols = args.rows, args.cols
    args.data_bits = 8
    if args.preset is not None:
        from ..config import load_preset

        dev = load_preset(args.preset)
        if dev.attention is None:
            raise AccelError(f"preset {dev.name} has no attention array; give --rows and --cols, or pick a preset "
                             f"with one (accel devices)")
        rows = dev.attention.rows if rows is None else rows
        cols = dev.attention.cols if cols is None else cols
        args.data_bits = dev.attention.data_bits
    if rows is None or cols is None:
        missing = "--rows" if rows is None else "--cols"
        raise AccelError(f"{missing} is missing: give the array size with --rows and --cols, or --preset")
    return rows, cols


def attention(args: argparse.Namespace) -> int:
    from ..config import load_preset
    from ..emulator.units.attention import AttentionArray, attention_cycles, min_chunks_for_utilisation, utilisation
    from ..numerics import ATTN_MAX_KEYS_LOG2

    dev = load_preset(args.preset)
    cfg = dev.attention
    if cfg is None:
        raise AccelError(f"preset {dev.name} has no attention array; pick a preset with one (accel devices)")
    for name, v, hi in (("--queries", args.queries, 1 << 40), ("--keys", args.keys, 1 << ATTN_MAX_KEYS_LOG2),
                        ("--head-dim", args.head_dim, cfg.head_dim)):
        if not 1 <= v <= hi:
            raise AccelError(f"{name} {v}: must be between 1 and {hi}"
                             + (f" (the array's head_dim)" if name == "--head-dim" else
                                " (the accumulators' key limit)" if name == "--keys" else ""))
    d = args.head_dim
    chunks = -(-args.keys // cfg.rows)
    cycles = attention_cycles(cfg, args.queries, args.keys, d)
    try:
        need = min_chunks_for_utilisation(d) * cfg.rows
    except ValueError:
        need = None
    bits = AttentionArray(cfg).state_bits()
    out = {"preset": dev.name, "rows": cfg.rows, "cols": cfg.cols, "queries": args.queries, "keys": args.keys,
           "head_dim": d, "tiles": -(-args.queries // cfg.cols), "chunks_per_tile": chunks, "cycles": cycles,
           "seconds": cycles / (cfg.clock_mhz * 1e6), "utilisation_2d": utilisation(d, chunks),
           "keys_for_utilisation_0_9": need, "buffer_bits": sum(bits.values()), "buffers": bits}
    if args.json:
        from ..cli import print_json

        print_json(out)
        return 0
    print(f"attention head {args.queries} queries x {args.keys} keys, d = {d}, on {dev.name} "
          f"({cfg.rows}x{cfg.cols} + {cfg.cols} 1D PEs)")
    print(f"  cycles          {cycles}  ({out['tiles']} tiles x {chunks} chunks, {out['seconds'] * 1e6:.3f} us)")
    print(f"  2D utilisation  {out['utilisation_2d']:.4f}  (0.9 from {need} keys)")
    print(f"  on-chip state   {out['buffer_bits']} bits (independent of the sequence length)")
    return 0


def gemm(args: argparse.Namespace) -> int:
    from ..emulator.units.array_gemm import gemm_timing, rtl_gemm_cycles

    rows, cols = _array_size(args)
    t = gemm_timing(args.M, args.K, args.N, rows, cols, args.dataflow, args.timing)
    out = t.to_json()
    if t.timing == "native":
        out["rtl_cycles"] = rtl_gemm_cycles(args.M, args.K, args.N, rows, cols, args.dataflow)
    if args.emulate:
        out.update(_emulate(args, rows, cols, out.get("rtl_cycles", t.cycles)))
    if args.json:
        from ..cli import print_json

        print_json(out)
        return 0
    unit = "last cycle index (SCALE-Sim v3 Total Cycles)" if t.timing == "scalesim" else "cycles"
    print(f"GEMM {t.M}x{t.K}x{t.N} on {t.rows}x{t.cols}, {t.dataflow}, {t.timing} timing")
    print(f"  cycles       {t.cycles}  ({unit})")
    print(f"  utilisation  {t.utilisation:.4f}  ({t.macs} MACs, {t.folds} folds, ideal {t.ideal_cycles} cycles)")
    if t.timing == "native":
        why = ("equal" if out["rtl_cycles"] == t.cycles else
               f"folds of K = {t.temporal} < rows + cols - 1 = {rows + cols - 1} wait for a free result bank")
        print(f"  RTL cycles   {out['rtl_cycles']}  (rtl/gemm.py with operands every cycle: {why})")
    if args.emulate:
        verdict = "product exact" if out["emulated_exact"] else "PRODUCT WRONG"
        agree = "= RTL cycles" if out["emulated_cycles"] == out["rtl_cycles"] else "DIFFERS FROM RTL CYCLES"
        print(f"  emulated     {out['emulated_cycles']}  (per-cycle model of rtl/gemm.py, random "
              f"{args.data_bits}-bit operands, {verdict}, {agree})")
    return 0


def _emulate(args: argparse.Namespace, rows: int, cols: int, cycles: int) -> dict:
    import numpy as np

    from ..config import AttentionConfig
    from ..emulator.units.array_gemm import gemm_golden, run_systolic

    if args.timing != "native":
        raise AccelError("--emulate runs the array's own hardware, whose timing is native; drop --timing scalesim "
                         "(SCALE-Sim's count has no hardware behind it)")
    if cycles * rows * cols > EMULATE_LIMIT:
        raise AccelError(f"--emulate: {cycles} cycles on {rows}x{cols} PEs is {cycles * rows * cols} PE-cycles, "
                         f"over the per-cycle model's limit of {EMULATE_LIMIT}; emulate a smaller shape (the RTL "
                         f"cycles are exact against the model for every shape)")
    cfg = AttentionConfig(rows=rows, cols=cols, head_dim=1, data_bits=args.data_bits, exp_table_bits=1,
                          clock_mhz=1.0)
    rng = np.random.default_rng(0)
    hi = 1 << (args.data_bits - 1)
    a = rng.integers(-hi, hi, (args.M, args.K))
    b = rng.integers(-hi, hi, (args.K, args.N))
    run = run_systolic(cfg, a, b, args.dataflow)
    return {"emulated_cycles": run.cycles, "emulated_exact": bool((run.out == gemm_golden(cfg, a, b)).all())}
