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
DOCS = {"docs/bitserial.md": ("dot_latency",)}


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


def markdown(f: dict) -> dict[str, str]:
    fp4, int8 = f["fp4_er_pos"], f["int8"]
    s = f["scale_bits"] + 1
    text = (f"Example (aim-gddr6 preset: {f['lanes']} lanes, groups of {f['group_size']}, {f['scale_bits']}-bit "
            f"scales): an INT8 group takes {f['group_size'] // f['lanes']} beats x 4 terms = {int8['group_cycles']} "
            f"cycles, a 4-bit group {fp4['group_cycles']}; a K = {f['k']} dot product with all-FP4 groups transfers "
            f"its result in cycle `{fp4['group_cycles']} + {f['groups'] - 1} * {fp4['group_cycles']} + {s} = "
            f"{fp4['transfer_cycle']}` (counted from the first cycle after reset), so `run_dot` counts "
            f"{fp4['run_dot_cycles']} cycles from reset to the transfer, inclusive; with all-INT8 groups cycle "
            f"`{int8['group_cycles']} + {f['groups'] - 1} * {int8['group_cycles']} + {s} = {int8['transfer_cycle']}`, "
            f"{int8['run_dot_cycles']} cycles.")
    return {"dot_latency": textwrap.fill(text, 118, break_long_words=False, break_on_hyphens=False)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-docs", action="store_true", help="rewrite the generated blocks of the docs")
    args = ap.parse_args()
    f = {"dot_latency": dot_latency()}
    if args.write_docs:
        blocks = markdown(f["dot_latency"])
        for doc, names in DOCS.items():
            write_blocks(ROOT / doc, "figures", {n: blocks[n] for n in names})
    else:
        print(json.dumps(f, indent=2))


if __name__ == "__main__":
    main()
