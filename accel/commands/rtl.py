"""``accel rtl export|test|wave``: Verilog of a unit, its four-way equivalence, and waveforms."""
from __future__ import annotations

import argparse

from ..errors import AccelError
from ..equivalence.registry import get_unit, unit_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rtl", help="export, test and inspect the RTL of a unit")
    rsub = p.add_subparsers(dest="rtl_command", metavar="ACTION")
    rsub.required = True

    e = rsub.add_parser("export", help="write a unit's Verilog")
    e.add_argument("unit", help=f"unit ({', '.join(unit_names())})")
    e.add_argument("--preset", required=True, help="device preset (accel devices) or a YAML file")
    e.add_argument("-o", "--output", default="build/rtl", help="output directory (default: build/rtl)")
    e.set_defaults(func=export)

    t = rsub.add_parser("test", help="randomised cycle-by-cycle equivalence of RTL and emulator")
    t.add_argument("unit", help=f"unit ({', '.join(unit_names())})")
    t.add_argument("--sim", choices=("emulator", "amaranth", "icarus", "verilator"), default="amaranth",
                   help="simulator to compare with the emulator (emulator: golden numerics only)")
    t.add_argument("--seeds", type=_positive, default=100, help="randomised stimuli per configuration")
    t.add_argument("--seed-start", type=int, default=0, help="first seed")
    t.add_argument("--preset", help="use this preset's configuration (default: the unit's test configurations)")
    t.add_argument("-v", "--verbose", action="store_true", help="print every failing seed's message")
    t.set_defaults(func=test)

    w = rsub.add_parser("wave", help="write a VCD of one randomised stimulus through Amaranth's simulator")
    w.add_argument("unit", help=f"unit ({', '.join(unit_names())})")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--preset", help="use this preset's configuration (default: the unit's first test config)")
    w.add_argument("-o", "--output", default=None, help="VCD file (default: build/wave/<unit>-<seed>.vcd)")
    w.set_defaults(func=wave)


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def export(args: argparse.Namespace) -> int:
    from ..equivalence.export import export_verilog

    path, lines = export_verilog(args.unit, args.preset, args.output)
    print(f"wrote {path} ({lines} lines)")
    return 0


def test(args: argparse.Namespace) -> int:
    from ..equivalence.harness import simulator_available
    from ..equivalence.runner import run_equivalence

    spec = get_unit(args.unit)
    if args.sim in ("icarus", "verilator"):
        reason = simulator_available(args.sim)
        if reason:
            raise AccelError(f"cannot run --sim {args.sim}: {reason}")
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    passed = failed = 0
    for cfg in spec.configs(args.preset):
        rep = run_equivalence(spec, cfg, args.sim, seeds)
        print(f"{spec.name} {args.sim}: {cfg}")
        print(f"  {rep.summary()} ({rep.cycles} cycles in {rep.seconds:.1f} s)")
        for seed, msgs in list(rep.failures.items())[: None if args.verbose else 3]:
            for msg in msgs[:1 if not args.verbose else None]:
                print(f"  FAIL {msg}")
        passed += rep.passed
        failed += rep.failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def wave(args: argparse.Namespace) -> int:
    from ..equivalence.runner import write_wave

    spec = get_unit(args.unit)
    out = args.output or f"build/wave/{spec.name}-{args.seed}.vcd"
    cycles = write_wave(spec, spec.configs(args.preset)[0], args.seed, out)
    print(f"wrote {out} ({cycles} cycles after one reset cycle)")
    return 0
