"""``accel rtl export|test|wave``: Verilog of a unit, its four-way equivalence, and waveforms."""
from __future__ import annotations

import argparse

from ..errors import AccelError
from ..equivalence.registry import get_unit, unit_names
from .options import add_device, natural, positive


def register(sub: argparse._SubParsersAction) -> None:
    from ..equivalence.export import BANK_ARRAYS, INLINE_ARRAY_WORDS

    p = sub.add_parser("rtl", help="export, test and inspect the RTL of a unit")
    rsub = p.add_subparsers(dest="rtl_command", metavar="ACTION")
    rsub.required = True

    e = rsub.add_parser("export", help="write a unit's Verilog (an export too large to finish in minutes is refused "
                                       "before it starts)")
    e.add_argument("unit", help=f"unit ({', '.join(unit_names())})")
    add_device(e, default=None, required=True)
    e.add_argument("-o", "--output", default="build/rtl", help="output folder")
    e.add_argument("--bank-arrays", choices=BANK_ARRAYS, default="auto",
                   help="pim: bank arrays inline (an Amaranth Memory: block RAM on an FPGA) or as external memory "
                        "modules (black boxes with a behavioural model); auto: inline up to "
                        f"{INLINE_ARRAY_WORDS} words")
    e.set_defaults(func=export)

    t = rsub.add_parser("test", help="randomised cycle-by-cycle equivalence of RTL and emulator")
    t.add_argument("unit", help=f"unit ({', '.join(unit_names())})")
    t.add_argument("--sim", choices=("emulator", "amaranth", "icarus", "verilator"), default="amaranth",
                   help="simulator to compare with the emulator (emulator: golden numerics only)")
    t.add_argument("--seeds", type=positive, default=100,
                   help="randomised stimuli per configuration (the unit's test configurations, or the one of "
                        "--device)")
    t.add_argument("--seed-start", type=natural, default=0, help="first seed")
    add_device(t, default=None, help="default: the unit's test configurations")
    t.add_argument("-v", "--verbose", action="store_true", help="print every failing seed's message")
    t.set_defaults(func=test)

    w = rsub.add_parser("wave", help="write a VCD of one randomised stimulus through Amaranth's simulator")
    w.add_argument("unit", help=f"unit ({', '.join(unit_names())})")
    w.add_argument("--seed", type=natural, default=0, help="the stimulus's seed")
    add_device(w, default=None, help="default: the unit's first test configuration")
    w.add_argument("-o", "--output", default=None, help="VCD file (default: build/wave/<unit>-<seed>.vcd)")
    w.set_defaults(func=wave)


def export(args: argparse.Namespace) -> int:
    from ..equivalence.export import export_verilog

    written = export_verilog(args.unit, args.device, args.output, args.bank_arrays)
    (top, lines), *rest = written
    print(f"wrote {top} ({lines} lines)" + "".join(f" and {p} (behavioural model of the bank arrays, {n} lines; "
                                                   f"replace it with a memory macro of the same port)"
                                                   for p, n in rest))
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
    for cfg in spec.configs(args.device):
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
    cycles = write_wave(spec, spec.configs(args.device)[0], args.seed, out)
    print(f"wrote {out} ({cycles} cycles after one reset cycle)")
    return 0
