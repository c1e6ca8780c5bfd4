"""Figures in the docs that the code computes in well under a second: printed as JSON, or written into the docs'
generated blocks (``<!-- figures: NAME -->`` ... ``<!-- /figures -->``) with ``--write-docs``; tests/test_docs.py
checks that the docs hold exactly what this computes.

    python benchmarks/docs_figures.py [--write-docs]
"""
from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import numpy as np

from accel.config import load_preset
from accel.emulator.units.bitserial import result_cycles, run_dot
from docblocks import write_blocks

ROOT = Path(__file__).resolve().parent.parent

#: doc file -> the blocks it holds
DOCS = {"docs/bitserial.md": ("dot_latency",), "docs/fpga.md": ("link_cost",)}

#: The GEMVs of docs/fpga.md's link-cost table: (preset, M, K, seed of the random operands); the first of each
#: preset is tests/test_fpga_link.py's.
LINK_GEMVS = (("fpga-tiny", 4, 32, 1), ("fpga-tiny", 8, 128, 0), ("fpga-small", 4, 64, 3), ("fpga-small", 16, 256, 0))

#: The baud rate of the link-cost table (``accel fpga build``'s default) and the UART's bits per byte (8N1).
LINK_BAUD, LINK_BITS_PER_BYTE = 115200, 10


def dot_latency() -> dict:
    """A K = 4096 dot product on aim-gddr6's bit-serial unit, all-FP4 and all-INT8 groups: the cycle in which the
    result transfers (closed form, from the first cycle after reset) and ``run_dot``'s count (the per-cycle model,
    from reset to the transfer, inclusive)."""
    cfg = load_preset("aim-gddr6").bitserial
    k = 4096
    groups = k // cfg.group_size
    out = {"lanes": cfg.lanes, "group_size": cfg.group_size, "scale_bits": cfg.scale_bits, "k": k, "groups": groups}
    for dt in ("fp4_er_pos", "int8"):
        dtypes = [dt] * groups
        _, cycles = run_dot(cfg, np.zeros(k, int), np.zeros(k, int), dtypes, [1] * groups)
        out[dt] = {"group_cycles": cfg.cycles_per_group(dt),
                   "transfer_cycle": result_cycles(cfg, dtypes, [False] * (groups - 1) + [True])[0],
                   "run_dot_cycles": cycles}
    return out


def link_cost() -> list[dict]:
    """Per GEMV of :data:`LINK_GEMVS` (random mixed-datatype operands, :func:`accel.fpga.program.random_gemv`): its
    EXEC requests, the bytes of their frames to the board and of the responses (the read beats of RD/RDMAC), and
    the seconds those bytes take on the wire at :data:`LINK_BAUD`."""
    from accel.fpga.program import command_elements, random_gemv
    from accel.fpga.protocol import Kind, Status, beat_words, encode_request, encode_response
    from accel.isa import PimOp

    out = []
    for preset, m, k, seed in LINK_GEMVS:
        dev = load_preset(preset)
        steps = random_gemv(dev, m, k, seed)["steps"]
        to = sum(len(encode_request(Kind.EXEC, [s.word, *s.data])) for s in steps)
        back = 0
        for s in steps:
            op, n = command_elements(s.word, dev.pim.banks)
            back += len(encode_response(Status.OK, [0] * (n * beat_words(dev) if op in (PimOp.RD, PimOp.RDMAC)
                                                          else 0)))
        out.append({"preset": preset, "m": m, "k": k, "seed": seed, "requests": len(steps), "bytes_to": to,
                    "bytes_from": back, "seconds": (to + back) * LINK_BITS_PER_BYTE / LINK_BAUD})
    return out


def figures() -> dict:
    """Every figure of the generated blocks, by block."""
    return {"dot_latency": dot_latency(), "link_cost": link_cost()}


def markdown(f: dict) -> dict[str, str]:
    """The generated blocks of :func:`figures`' ``f``, by name."""
    d = f["dot_latency"]
    fp4, int8 = d["fp4_er_pos"], d["int8"]
    s = d["scale_bits"] + 1
    text = (f"Example (aim-gddr6 preset: {d['lanes']} lanes, groups of {d['group_size']}, {d['scale_bits']}-bit "
            f"scales): an INT8 group takes {d['group_size'] // d['lanes']} beats x 4 terms = {int8['group_cycles']} "
            f"cycles, a 4-bit group {fp4['group_cycles']}; a K = {d['k']} dot product with all-FP4 groups transfers "
            f"its result in cycle `{fp4['group_cycles']} + {d['groups'] - 1} * {fp4['group_cycles']} + {s} = "
            f"{fp4['transfer_cycle']}` (counted from the first cycle after reset), so `run_dot` counts "
            f"{fp4['run_dot_cycles']} cycles from reset to the transfer, inclusive; with all-INT8 groups cycle "
            f"`{int8['group_cycles']} + {d['groups'] - 1} * {int8['group_cycles']} + {s} = {int8['transfer_cycle']}`, "
            f"{int8['run_dot_cycles']} cycles.")
    lines = ["| preset | GEMV | requests | bytes to / from the board | time on the wire |",
             "| --- | --- | --- | --- | --- |"]
    for g in f["link_cost"]:
        lines.append(f"| {g['preset']} | {g['m']} x {g['k']} | {g['requests']} | {g['bytes_to']} / {g['bytes_from']} "
                     f"| {g['seconds']:.2f} s |")
    return {"dot_latency": textwrap.fill(text, 118, break_long_words=False, break_on_hyphens=False),
            "link_cost": "\n".join(lines)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-docs", action="store_true", help="rewrite the generated blocks of the docs")
    args = ap.parse_args()
    f = figures()
    if args.write_docs:
        blocks = markdown(f)
        for doc, names in DOCS.items():
            write_blocks(ROOT / doc, "figures", {n: blocks[n] for n in names})
    else:
        print(json.dumps(f, indent=2))


if __name__ == "__main__":
    main()
