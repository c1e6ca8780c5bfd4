"""The FPGA top of each board's preset built for real (``accel fpga build``): utilisation, Fmax and build time, and
the error a preset too large for a board gets. Prints JSON, or with ``--write-docs`` rewrites docs/fpga.md's generated
blocks (``<!-- figures: fpga_top -->``, ``<!-- figures: fpga_fit_error -->``), so its figures are measured.

    python benchmarks/fpga_top.py [--write-docs]

Both builds run at once (the tools are subprocesses; about three and a half minutes on two cores once yowasp's
WebAssembly is cached), under build/fpga-bench/.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from accel.config import load_preset
from accel.errors import AccelError
from accel.fpga.build import BOARDS, build, check_fits, get_board, load_report
from docblocks import write_blocks

ROOT = Path(__file__).resolve().parent.parent
#: (board, preset) built, and the pair whose refusal the docs show.
BUILDS = (("icebreaker", "fpga-tiny"), ("ulx3s-85f", "fpga-small"))
REFUSED = ("icebreaker", "fpga-small")


OUT = ROOT / "build" / "fpga-bench"


def measure(reuse: bool = False) -> dict:
    if reuse:
        reports = [load_report(OUT / f"{b}-{p}") for b, p in BUILDS]
    else:
        with ThreadPoolExecutor(max_workers=len(BUILDS)) as pool:
            futures = {(b, p): pool.submit(build, b, load_preset(p), OUT / f"{b}-{p}") for b, p in BUILDS}
            reports = [futures[k].result() for k in BUILDS]
    try:
        check_fits(get_board(REFUSED[0]), load_preset(REFUSED[1]), REFUSED[1])
        refusal = None
    except AccelError as e:
        refusal = str(e)
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=7"],
                            capture_output=True, text=True).stdout.strip()
    return {"date": reports[0]["date"].split()[0], "commit": commit, "reports": reports, "refusal": refusal}


def markdown(m: dict) -> dict[str, str]:
    tools = {k: v for r in m["reports"] for k, v in r["tools"].items()}
    head = (f"Measured on {m['date']} at commit {m['commit']} with " + ", ".join(f"{k} {v}" for k, v in tools.items())
            + ", both builds at once on a 2-core machine shared with other work (build times vary with it), the "
              "yowasp cache warm:")
    lines = [textwrap.fill(head, 118, break_long_words=False, break_on_hyphens=False), "",
             "| board | preset | LUT | FF | BRAM | DSP | Fmax vs clock | build time (Yosys + nextpnr) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in m["reports"]:
        res = r["resources"]
        lut, ff, bram, dsp = (res[k] for k in ("lut", "ff", "bram", "dsp"))
        st = r["stage_seconds"]
        verdict = "met" if r["timing_met"] else "NOT met"
        lines.append(f"| {r['board']} | {r['preset']} | {lut['used']} / {lut['available']} ({lut['percent']:.1f} %) "
                     f"| {ff['used']} / {ff['available']} | {bram['used']} / {bram['available']} | {dsp['used']} / "
                     f"{dsp['available']} | {r['fmax_mhz']:.2f} MHz vs {r['clock_mhz']:g} MHz, {verdict} | "
                     f"{r['build_seconds']:.1f} s ({st['yosys']:.1f} + {st['nextpnr']:.1f}) |")
    board = BOARDS[REFUSED[0]]
    fit = (f"  fpga-small on the iCEBreaker ({board.part}: {board.capacity['bram']} blocks of {board.bram_bits} bits): "
           f"`{m['refusal']}`")
    return {"fpga_top": "\n".join(lines), "fpga_fit_error": fit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-docs", action="store_true", help="rewrite docs/fpga.md's generated blocks")
    ap.add_argument("--reuse", action="store_true", help="read the finished builds' reports instead of building")
    args = ap.parse_args()
    m = measure(args.reuse)
    if args.write_docs:
        write_blocks(ROOT / "docs" / "fpga.md", "figures", markdown(m))
    else:
        print(json.dumps(m, indent=2))


if __name__ == "__main__":
    main()
