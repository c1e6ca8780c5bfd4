"""``accel emulate TRACE --device PRESET [--json]``: run a PIM command trace and report cycles and utilisation.

TRACE is either a host-level AiM trace (SK hynix's AiM simulator format: ``AiM MAC_ABK 64 0xffffffff 0``, ...) or
our own command words in text form (``MAC all_banks=1 col=0 count=64``); see :mod:`accel.traces` and
:func:`accel.report.trace_report`.
"""
from __future__ import annotations

import argparse

from ..config import load_preset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate", help="run a PIM command trace (AiM host format or accel text) and report cycles")
    p.add_argument("trace", metavar="TRACE", help="trace file")
    p.add_argument("--device", default="aim-gddr6", metavar="PRESET",
                   help="device preset or YAML file (default: aim-gddr6)")
    p.add_argument("--json", action="store_true", help="print JSON (with every bank's fractions)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import bank_summary, trace_report

    dev = load_preset(args.device)
    rep = trace_report(args.trace, dev)
    if args.json:
        from ..cli import print_json

        print_json(rep)
        return 0
    print(f"trace      {rep['trace']} ({rep['format']} format)")
    print(f"device     {rep['device']} (tCK {rep['tck_ns']:g} ns)")
    print(f"cycles     {rep['cycles']}")
    print(f"time       {rep['time_ns'] / 1e3:.4g} us")
    print(f"MAC ops    {rep['mac_lane_ops']} lane MACs, {rep['peak_mac_fraction']:.2%} of peak MAC throughput")
    print("per bank (over channels: mean [min, max])")
    print("  bank  row open                  MAC busy")
    for row in bank_summary(rep):
        (a, a_lo, a_hi), (m, m_lo, m_hi) = row["active"], row["mac"]
        print(f"  {row['bank']:4d}  {a:6.1%} [{a_lo:6.1%}, {a_hi:6.1%}]  {m:6.1%} [{m_lo:6.1%}, {m_hi:6.1%}]")
    return 0
