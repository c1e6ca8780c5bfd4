"""Simulated cycles per second of the bit-serial unit: per-cycle model versus Amaranth's simulator, same stimulus.

Prints one JSON object. Usage: ``./run python benchmarks/bitserial_speed.py [--preset aim-gddr6] [--seeds 20]``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

from accel.config import load_preset
from accel.emulator.units.bitserial import BitSerialUnit
from accel.equivalence.bitserial import make_stimulus
from accel.equivalence.harness import compare_all, run_amaranth
from accel.interfaces.stimulus import run_model
from accel.rtl.bitserial import BitSerialUnit as BitSerialRTL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="aim-gddr6")
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    cfg = load_preset(args.preset).bitserial
    stims = [make_stimulus(cfg, s, n_outputs=2, max_groups=2) for s in range(args.seeds)]
    cycles = sum(s.cycles for s in stims)

    t0 = time.perf_counter()
    model_traces = [run_model(BitSerialUnit(cfg), s) for s in stims]
    t_model = time.perf_counter() - t0

    t0 = time.perf_counter()
    rtl_traces = run_amaranth(BitSerialRTL(cfg), stims)
    t_rtl = time.perf_counter() - t0
    mismatches = compare_all(stims, "emulator", model_traces, "amaranth", rtl_traces)

    print(json.dumps({
        "benchmark": "bitserial_speed",
        "preset": args.preset,
        "lanes": cfg.lanes,
        "group_size": cfg.group_size,
        "stimuli": len(stims),
        "simulated_cycles": cycles,
        "model_seconds": round(t_model, 4),
        "model_cycles_per_s": round(cycles / t_model),
        "amaranth_seconds": round(t_rtl, 4),
        "amaranth_cycles_per_s": round(cycles / t_rtl),
        "model_speedup_over_amaranth": round(t_rtl / t_model, 2),
        "traces_identical": not mismatches,
        "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
