"""GEMV on the PIM presets: the channel engine's speed on a 4096 x 4096 GEMV over all 32 channels of aim-gddr6, and
(``--figures``) the GEMV's cycles, bytes read and energy per preset and weight datatype, against the bank-bandwidth
bound.

Prints JSON. Speed: the program (output rows per bank, int8 weights) is built once; each mode runs it in a fresh
``DeviceEngine`` (construction included) and the best of ``--repeat`` runs is reported. All modes must give identical
cycle counts (checked). ``reference_cycles_per_s`` is the fastest C++ simulator of the field the issue names (170k
simulated cycles per second). Modes: ``engine`` (timing only, equal channels executed once, repeated blocks jumped in
closed form), ``no_jump`` (equal channels once, every command issued), ``every_channel`` (every channel's every
command issued), ``functional`` (numerics too: the 16.8M MACs on numpy, plus preloading the weights).

Figures: for each preset and weight datatype, the timing-only engine's cycles, the bytes the banks' MAC units read
(every MAC column, metadata columns included), the bytes written into the global buffers, and the bank-bandwidth
bound: the weights' bytes (``DeviceConfig.read_bytes_per_weight``) read at one column per ``nCCD_AB`` in every bank
(``PimConfig.internal_bandwidth_bytes_per_cycle``). Energy comes from the device's energy table (``accel.energy``,
the presets' ``energy:`` sections) over the system engine's event counts of the GEMV's commands.
``--write-docs docs/pim.md`` replaces the tables between ``<!-- pim_gemv: NAME -->`` and ``<!-- /pim_gemv -->``.

    python benchmarks/pim_gemv.py [--repeat 5] [--size 4096] [--no-functional]
    python benchmarks/pim_gemv.py --figures [--markdown | --write-docs docs/pim.md]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from accel.config import DeviceConfig, load_preset
from accel.emulator.engine import DeviceEngine, PimProgram
from accel.emulator.system import static_events
from accel.energy import energy
from accel.isa import PimOp, decode
from accel.mapping.gemv import gemv_plan, golden_gemv
from accel.program import Program, Stream

REFERENCE = 170_000.0
#: The weights of the figures: name -> the datatypes its groups draw from (uniformly, seeded).
WEIGHTS = {"int8": ("int8",), "int4": ("int4",), "int3": ("int3",), "fp4": ("fp4_er_pos",),
           "mixed (BitMoD FP4 variants + int4)": ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg", "int4")}
FIGURE_PRESETS = ("aim-gddr6", "aim-gddr6-bitmod")


def speed(args: argparse.Namespace) -> dict:
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
        frac = st.mac_lane_ops / (st.cycles * dev.peak_macs_per_cycle("int8"))
        out["modes"][name] = {"simulated_cycles": st.cycles, "wall_s": round(best, 6),
                              "cycles_per_s": round(st.cycles / best), "x_reference": round(st.cycles / best / REFERENCE, 1),
                              "peak_mac_fraction": round(frac, 4)}
    if not args.no_functional:
        fplan = gemv_plan(dev, w, x, "rows", dt, sc, data=True)
        t = time.perf_counter()
        eng = DeviceEngine(dev, functional=True)
        for ch, bank, row, buf in fplan.preload:
            eng.channels[ch].load_row(bank, row, buf)
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
    return out


def _energy_j(dev: DeviceConfig, plan, cycles: int) -> float:
    """The run's energy (J): the system engine's event counts of the plan's streams through the device's energy
    table (``accel.energy``)."""
    words = np.array([w for w, _ in plan.program], dtype=np.uint64)
    chans = np.array([decode(int(w)).fields["channel"] for w in words])
    streams = [Stream(f"pim{c}", words[chans == c]) for c in sorted(set(chans.tolist()))]
    return energy(static_events(Program(streams), dev), dev, cycles).total_j


def gemv_figure(dev: DeviceConfig, weights: tuple[str, ...], n: int, layout: str, seed: int = 0) -> dict:
    """One GEMV ``n x n`` with groups drawing from ``weights``: cycles, bytes, the bank-bandwidth bound."""
    p = dev.pim
    rng = np.random.default_rng(seed)
    ng = n // dev.bitserial.group_size
    codes = [dev.bitserial.dtype_codes[d] for d in weights] if p.lane == "bitserial" else [0]
    dt = rng.choice(codes, (n, ng))
    plan = gemv_plan(dev, np.zeros((n, n), np.int64), np.zeros(n, np.int64), layout, dt, np.ones((n, ng), int),
                     data=False)
    st = DeviceEngine(dev, functional=False).run(plan.program)
    wrgb = sum(max(1, decode(w).fields["count"]) for w, _ in plan.program if decode(w).op == PimOp.WRGB)
    # the bound: every weight byte (and its metadata) read once, at one column per nCCD_AB in every bank
    per_weight = max(dev.read_bytes_per_weight(d) for d in weights)
    bound = n * n * per_weight / p.internal_bandwidth_bytes_per_cycle
    e = _energy_j(dev, plan, st.cycles)
    return {"cycles": st.cycles, "time_us": st.cycles * p.timing.tck_ns / 1e3,
            "mac_bytes_read": int(st.bank_mac_elements.sum()) * p.column_bytes,
            "gb_bytes_written": wrgb * p.column_bytes, "commands": st.commands,
            "dram_bits_per_weight": 8 * max(dev.bytes_per_weight(d) for d in weights),
            "rows_per_bank": plan.rows_used, "bound_cycles": bound, "of_bound": bound / st.cycles,
            "energy_uj": e * 1e6}


def figures(n: int) -> dict:
    out: dict = {"size": n, "layout": "rows", "gemv": {}, "presets": {}}
    for name in FIGURE_PRESETS:
        dev = load_preset(name)
        out["gemv"][name] = {w: gemv_figure(dev, dts, n, "rows") for w, dts in WEIGHTS.items()}
    for name in ("aim-gddr6", "aim-gddr6-bitmod", "pim-gpt", "hbm2-pim", "hbm3-pim"):
        dev = load_preset(name)
        kinds = {"int8": ("int8",), "fp4": ("fp4_er_pos",)} if dev.pim.lane == "bitserial" else {"int8": ("int8",)}
        out["presets"][name] = {lay: {w: gemv_figure(dev, d, n, lay) for w, d in kinds.items()}
                                for lay in ("rows", "ksplit")}
    return out


def markdown(res: dict) -> dict[str, str]:
    from docblocks import table

    lines = []
    for preset, rows in res["gemv"].items():
        for w, r in rows.items():
            lines.append([preset, w, f"{r['dram_bits_per_weight']:.3f}", r["rows_per_bank"], r["cycles"],
                          f"{r['time_us']:.2f}", f"{r['mac_bytes_read'] / 2**20:.2f}",
                          f"{r['gb_bytes_written'] / 2**10:.0f}", f"{r['bound_cycles']:.0f}",
                          f"{100 * r['of_bound']:.1f}%", f"{r['energy_uj']:.1f}"])
    gemv = table(["preset", "weights", "DRAM bits / weight", "rows per bank", "cycles", "time (us)",
                  "MAC bytes read (MiB)", "GB bytes written (KiB)", "bank-bandwidth bound (cycles)", "of bound",
                  "energy (uJ)"], lines)
    lines = []
    for preset, lays in res["presets"].items():
        for lay, rows in lays.items():
            for w, r in rows.items():
                lines.append([preset, lay, w, r["cycles"], f"{r['time_us']:.2f}", f"{100 * r['of_bound']:.1f}%"])
    presets = table(["preset", "layout", "weights", "cycles", "time (us)", "of the bank-bandwidth bound"], lines)
    return {"gemv": gemv, "presets": presets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--no-functional", action="store_true", help="skip the functional run")
    ap.add_argument("--figures", action="store_true", help="cycles, bytes and energy per preset and datatype")
    ap.add_argument("--markdown", action="store_true", help="with --figures: print the docs tables")
    ap.add_argument("--write-docs", type=Path, help="with --figures: replace the generated tables of this file")
    args = ap.parse_args()
    if not args.figures:
        print(json.dumps(speed(args), indent=2))
        return
    res = figures(args.size)
    from docblocks import emit

    emit(res, "pim_gemv", markdown, args.write_docs, args.markdown)


if __name__ == "__main__":
    main()
