"""``accel devices``: list the presets with their key figures."""
from __future__ import annotations

import argparse

from ..config import load_preset, preset_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list device presets and their key figures")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    figures = [load_preset(n).key_figures() for n in preset_names()]
    if args.json:
        from ..cli import print_json

        print_json(figures)
        return 0
    cols = [("name", "preset", "{}"), ("channels", "ch", "{}"), ("banks_per_channel", "banks", "{}"),
            ("mac_lanes_per_bank", "lanes", "{}"), ("lane", "lane", "{}"), ("capacity_gib", "GiB", "{:.3g}"),
            ("clock_mhz", "MHz", "{:.0f}"), ("pim_peak_tmacs", "peak TMAC/s", "{:.4g}"),
            ("internal_bw_gbs", "int. GB/s", "{:.4g}"), ("external_bw_gbs", "ext. GB/s", "{:.4g}"),
            ("attention_array", "attention", "{}")]
    rows = [[head for _, head, _ in cols]]
    for f in figures:
        rows.append([fmt.format(f[key]) if f[key] is not None else "-" for key, _, fmt in cols])
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0
