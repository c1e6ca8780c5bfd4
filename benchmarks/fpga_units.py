"""Each compute unit of a preset alone on an FPGA: utilisation and Fmax from yowasp Yosys + nextpnr.

A unit is wrapped in a harness that feeds every input port from a free-running LFSR through a register and XORs
every registered output into one LED, so nothing is optimised away and every path starts and ends at a flip-flop.
Prints one JSON object per unit (LUT/FF/BRAM/DSP used and available, Fmax against the board clock, build seconds);
the build trees stay under ``build/fpga-units/``. These are the figures behind "does the unit fit the part and its
clock" in docs/fpga.md; the device top itself is built with ``accel fpga build``.

    python benchmarks/fpga_units.py [--board ulx3s-85f] [--preset fpga-small] [attention gemm-os gemm-ws ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring

from accel.config import load_preset
from accel.equivalence.registry import get_unit
from accel.fpga.build import get_board, parse_nextpnr_report, parse_yosys_cells, tool_env


class UnitHarness(Elaboratable):
    """``unit`` with LFSR-driven, registered inputs and registered outputs folded into LED 0."""

    def __init__(self, unit: wiring.Component) -> None:
        self.unit = unit

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.unit = u = self.unit
        lfsr = Signal(64, init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[1] ^ lfsr[3] ^ lfsr[4]))
        folded = []
        for _, member, value in u.signature.flatten(u):
            v = Value.cast(value)
            r = Signal(len(v))
            if member.flow == wiring.In:
                m.d.sync += r.eq(Cat(*[lfsr[(i * 7) % 64] for i in range(len(v))]))
                m.d.comb += v.eq(r)
            else:
                m.d.sync += r.eq(v)
                folded.append(r.xor())
        acc = Signal(8)
        m.d.sync += acc.eq(Cat(*folded, acc)[:8] ^ acc)
        m.d.comb += platform.request("led", 0).o.eq(acc.xor())
        return m


def build_unit(board_name: str, preset: str, unit: str, out: Path) -> dict:
    board = get_board(board_name)
    dev = load_preset(preset)
    spec = get_unit(unit)
    platform = board.platform_class()()
    d = out / f"{board_name}-{preset}-{unit}"
    t0 = time.time()
    plan = platform.build(UnitHarness(spec.rtl(spec.config_of(dev))), name="top", do_build=False, do_program=False,
                          nextpnr_opts="--report report.json --timing-allow-fail", **board.overrides())
    plan.extract(str(d))
    with open(d / "build.log", "w") as log:
        proc = subprocess.run(["sh", f"{plan.script}.sh"], cwd=d, env=tool_env(board), stdout=log,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0 or not (d / "report.json").is_file():
        return {"unit": unit, "board": board_name, "preset": preset, "error": f"build failed, see {d}/build.log"}
    rpt = d / "top.rpt"
    parsed = parse_nextpnr_report(board, json.loads((d / "report.json").read_text()),
                                  parse_yosys_cells(rpt.read_text(errors="replace")) if rpt.is_file() else {},
                                  platform.default_clk_frequency)
    return {"unit": unit, "board": board_name, "part": board.part, "preset": preset,
            "resources": {k: {"used": v["used"], "available": v["available"], "percent": v["percent"]}
                          for k, v in parsed["resources"].items()},
            "fmax_mhz": parsed["fmax_mhz"], "clock_mhz": parsed["clock_mhz"], "timing_met": parsed["timing_met"],
            "build_seconds": round(time.time() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--preset", default="fpga-small")
    ap.add_argument("--out", default="build/fpga-units")
    ap.add_argument("units", nargs="*", default=["gemm-os", "gemm-ws", "attention"])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps([build_unit(args.board, args.preset, u, out) for u in args.units], indent=1))


if __name__ == "__main__":
    main()
