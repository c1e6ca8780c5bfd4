"""Simulated cycles per second of the PIM channel engine on a 4096 x 4096 GEMV over all 32 channels of aim-gddr6.

Prints JSON. The program (output rows per bank, int8 codes, K in four global-buffer fills) is built once; each mode
runs it in a fresh ``DeviceEngine`` (construction included) and the best of ``--repeat`` runs is reported. All modes
must give identical cycle counts (checked). ``reference_cycles_per_s`` is the fastest C++ simulator of the field the
issue names (170k simulated cycles per second).

Modes: ``engine`` (timing only, equal channels executed once, repeated blocks jumped in closed form), ``no_jump``
(equal channels once, every command issued), ``every_channel`` (every channel's every command issued),
``functional`` (numerics too: the 16.8M MACs on numpy, plus preloading the weights).

    python benchmarks/pim_gemv.py [--repeat 5] [--size 4096]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from accel.config import load_preset
from accel.emulator.engine import DeviceEngine, PimProgram
from accel.mapping.gemv import gemv_plan, golden_gemv

REFERENCE = 170_000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--no-functional", action="store_true", help="skip the functional run")
    args = ap.parse_args()
    dev = load_preset("aim-gddr6")
    n = args.size
    ng = n // dev.bitserial.group_size
    int8 = dev.bitserial.dtype_codes["int8"]
    rng = np.random.default_rng(0)
    w = rng.integers(0, 256, (n, n))   # int8 codes
    x = rng.integers(-128, 128, n)
    dt, sc = np.full((n, ng), int8), np.ones((n, ng), dtype=np.int64)
    t = time.perf_counter()
    plan = gemv_plan(dev, w, x, "rows", dt, sc, data=False)
    prog = PimProgram.of(plan.program)
    build_s = time.perf_counter() - t

    modes = {"engine": dict(functional=False), "no_jump": dict(functional=False, periodic=False),
             "every_channel": dict(functional=False, periodic=False, dedup=False)}
    out: dict = {"workload": f"GEMV {n}x{n} (int8 weights, int8 activations), output rows per bank",
                 "device": dev.name, "channels": dev.pim.channels, "banks_per_channel": dev.pim.banks,
                 "commands": int(len(prog.words)), "program_build_s": round(build_s, 4),
                 "reference_cycles_per_s": REFERENCE, "python": platform.python_version(),
                 "machine": platform.machine(), "modes": {}}
    cycles = set()
    for name, kw in modes.items():
        best, st = float("inf"), None
        for _ in range(args.repeat):
            t = time.perf_counter()
            st = DeviceEngine(dev, **kw).run(prog)
            best = min(best, time.perf_counter() - t)
        cycles.add(st.cycles)
        frac = st.mac_lane_ops / (st.cycles * dev.pim.peak_macs_per_cycle)
        out["modes"][name] = {"simulated_cycles": st.cycles, "wall_s": round(best, 6),
                              "cycles_per_s": round(st.cycles / best), "x_reference": round(st.cycles / best / REFERENCE, 1),
                              "peak_mac_fraction": round(frac, 4)}
    if not args.no_functional:
        fplan = gemv_plan(dev, w, x, "rows", dt, sc, data=True)
        t = time.perf_counter()
        eng = DeviceEngine(dev, functional=True)
        for ch, bank, row, slots in fplan.preload:
            eng.channels[ch].load_row(bank, row, slots)
        st = eng.run(fplan.program)
        y = fplan.results([c.reads for c in eng.channels])
        wall = time.perf_counter() - t
        # every group is int8 with scale 1 here, so the golden bit-serial result is the int8 product (wrapped)
        w8 = (w.astype(np.int64) & 0xFF) - ((w.astype(np.int64) & 0x80) << 1)
        gold = (w8 @ x.astype(np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)
        if n <= 256:  # and, on a small size, the general golden model agrees with that shortcut
            assert (gold == golden_gemv(dev, w, x, dt, sc)).all()
        exact = bool((y == gold).all())
        cycles.add(st.cycles)
        out["modes"]["functional"] = {"simulated_cycles": st.cycles, "wall_s": round(wall, 4),
                                      "cycles_per_s": round(st.cycles / wall),
                                      "x_reference": round(st.cycles / wall / REFERENCE, 2),
                                      "bit_exact_checked": exact}
    out["identical_cycles"] = len(cycles) == 1
    out["simulated_cycles"] = min(cycles)
    out["time_us"] = round(min(cycles) * dev.pim.timing.tck_ns / 1e3, 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
