"""``accel devices [DEVICE ...]``: the presets (or the given devices) with their key figures."""
from __future__ import annotations

import argparse

from ..config import DeviceConfig, load_preset, preset_names
from ..fmt import num, plural, si, size, table
from .options import add_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="list device presets, or the given devices, with their key figures")
    p.add_argument("devices", nargs="*", metavar="DEVICE",
                   help="presets or YAML device files to show (default: every preset); one device is shown in "
                        "full")
    add_json(p, "print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    devices = [load_preset(n) for n in (args.devices or preset_names())]
    figures = [d.key_figures() for d in devices]
    if args.json:
        from ..cli import print_json

        print_json(figures)
        return 0
    if len(args.devices) == 1:
        print(_detail(devices[0], figures[0]))
        return 0
    rows = [["device", "ch", "banks", "lanes", "lane", "capacity", "clock", "peak", "internal bw", "external bw",
             "attention"]]
    for f in figures:
        rows.append([f["name"], f["channels"], f["banks_per_channel"], f["mac_lanes_per_bank"], f["lane"],
                     size(f["capacity_gib"] * 2**30), si(f["clock_mhz"] * 1e6, "Hz"),
                     si(f["pim_peak_tmacs"] * 1e12, "MAC/s"), si(f["internal_bw_gbs"] * 1e9, "B/s"),
                     si(f["external_bw_gbs"] * 1e9, "B/s"), f["attention_array"]])
    print(table(rows))
    return 0


def _detail(dev: DeviceConfig, f: dict) -> str:
    """One device in full: its description and every key figure, with the PIM geometry behind them."""
    p, t = dev.pim, dev.pim.timing
    lines = [
        ("device", f"{dev.name}: {dev.description}"),
        ("PIM", f"{plural(p.channels, 'channel')} x {plural(p.banks, 'bank')} "
                f"({plural(p.bank_groups, 'bank group')}), {p.mac_lanes} {p.lane} MAC lanes per bank"),
        ("banks", f"{p.rows} rows x {size(p.row_bytes)} ({p.columns} columns of {p.column_bits} bits); global "
                  f"buffer {size(p.global_buffer_bytes)} per channel"),
        ("capacity", size(p.capacity_bytes)),
        ("clock", f"{si(t.clock_mhz * 1e6, 'Hz')} (tCK {num(t.tck_ns)} ns)"),
        ("peak", f"{si(dev.peak_macs_per_s(), 'MAC/s')} ({num(dev.peak_macs_per_cycle())} MAC per cycle, the "
                 f"fastest format)"),
        ("bandwidth", f"internal {si(p.internal_bandwidth_bytes_per_s, 'B/s')}, external "
                      f"{si(p.external_bandwidth_bytes_per_s, 'B/s')}"),
        ("bit-serial", f"{dev.bitserial.lanes} lanes, groups of {dev.bitserial.group_size}, "
                       f"{', '.join(dev.bitserial.datatypes)}"),
        ("attention", "none" if dev.attention is None else
         f"{dev.attention.rows}x{dev.attention.cols} PEs, head_dim up to {dev.attention.head_dim}, "
         f"{si(dev.attention.clock_mhz * 1e6, 'Hz')}"),
        ("vector", f"{dev.vector.lanes} lanes of {dev.vector.element_bits} bits, "
                   f"{si(dev.vector.clock_mhz * 1e6, 'Hz')}, buffer {size(dev.vector.buffer_bytes)}"),
        ("link", f"{dev.link.width_bits} bits at {si(dev.link.clock_mhz * 1e6, 'Hz')} "
                 f"({si(dev.link.bytes_per_s, 'B/s')}), latency {dev.link.latency} cycles"),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)
