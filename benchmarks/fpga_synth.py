"""The FPGA top of a preset and of variants of it through Yosys alone: what each shape costs in logic, in a minute
or two where place and route takes many (``accel fpga build`` runs Yosys, then nextpnr, whose time grows faster than
the design). Each variant is the preset with some fields replaced; the top is elaborated and synthesised with the
board's own Yosys script (``Board.synth_opts``/``synth_after``, as the build), one variant at a time. Prints one JSON
object per variant: Yosys's cell counts (on ECP5 ``LUT4``, ``CCU2C`` carry pairs, ``TRELLIS_FF``, ``DP16KD``),
Yosys's seconds and the size of the netlist it hands to nextpnr. Build trees stay under ``build/fpga-synth/``.
docs/fpga.md's "Sizing fpga-small" table is this script's output.

    python benchmarks/fpga_synth.py [--board ulx3s-85f] [--preset fpga-small] [NAME=FIELD:VALUE[,FIELD:VALUE...] ...]

e.g. ``units4=pim.mac_lanes:8`` or ``few=bitserial.datatypes:int8/int4``; a bare ``NAME`` (or no variant at all) is
the preset as it is.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import yaml

from accel.config import DeviceConfig, load_preset
from accel.fpga.build import check_fits, get_board, parse_yosys_cells, tool_env
from accel.fpga.host import DEFAULT_BAUD
from accel.fpga.top import BoardTop

ROOT = Path(__file__).resolve().parent.parent


def variant(dev: DeviceConfig, fields: dict[str, object]) -> DeviceConfig:
    """``dev`` with ``section.field`` values replaced, all at once (the sections' and the device's checks apply to
    the result, not to a half-replaced device)."""
    sections: dict[str, dict[str, object]] = {}
    for key, value in fields.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = tuple(value) if isinstance(value, list) else value
    return replace(dev, **{s: replace(getattr(dev, s), **f) for s, f in sections.items()})


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """``NAME=FIELD:VALUE,...`` -> (name, fields); a value is YAML, ``a/b`` a list."""
    name, _, spec = text.partition("=")
    fields: dict[str, object] = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition(":")
        fields[key] = [yaml.safe_load(v) for v in value.split("/")] if "/" in value else yaml.safe_load(value)
    return name, fields


def synthesise(board_name: str, dev: DeviceConfig, name: str, out: Path) -> dict:
    board = get_board(board_name)
    check_fits(board, dev, dev.name)
    d = out / f"{board_name}-{name}"
    t0 = time.time()
    plan = board.platform_class()().build(BoardTop(dev, DEFAULT_BAUD), name="top", do_build=False, do_program=False,
                                          **board.overrides())
    plan.extract(str(d))
    t1 = time.time()
    env = tool_env(board)
    # the Yosys line of Amaranth's build script, alone
    proc = subprocess.run([env["YOSYS"], "-q", "-l", "top.rpt", "top.ys"], cwd=d, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    t2 = time.time()
    if proc.returncode != 0:
        return {"variant": name, "error": f"Yosys failed (exit status {proc.returncode}), see {d}/top.rpt"}
    netlist = d / "top.json"
    cells = parse_yosys_cells((d / "top.rpt").read_text(errors="replace"))
    return {"variant": name, "board": board_name, "elaborate_seconds": round(t1 - t0, 1),
            "yosys_seconds": round(t2 - t1, 1), "netlist_bytes": netlist.stat().st_size,
            "cells": {k: v for k, v in sorted(cells.items()) if not k.startswith("$")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--preset", default="fpga-small")
    ap.add_argument("--out", default=str(ROOT / "build" / "fpga-synth"))
    ap.add_argument("variants", nargs="*", default=["preset"])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_preset(args.preset)
    for text in args.variants:
        name, fields = parse_variant(text)
        print(json.dumps(synthesise(args.board, variant(base, fields), name, out)), flush=True)


if __name__ == "__main__":
    main()
