"""``accel emulate`` against SK hynix's AiM simulator (C++) on the same AiM traces, same machine, same run; prints JSON.

The simulator (github.com/arkhadem/aim_simulator, a Ramulator 2 fork) is never part of this project: clone and build
it beside the project, one clone per commit (its CMakeLists writes ``libramulator.so`` into the source folder), e.g.
its HEAD 0f28a07 and 2eb1ee0 (the commit CENT pins), then::

    ./run python benchmarks/aim_simulator.py --simulator 0f28a07=/path/aim-0f28a07 \\
        --simulator 2eb1ee0=/path/aim-2eb1ee0 TRACE_OR_FOLDER [...]

For each trace and each commit, one after the other (never concurrently): the simulator as CENT's ``run_sim.py``
runs it (``build/ramulator2 -f test/example.yaml -t TRACE``; its ``memory_system_cycles`` and the sum over channels
of its ``CHn_num_<CMD>_commands``), and the whole ``accel emulate TRACE --device aim-gddr6 --aim-timing COMMIT
--json`` command of this checkout's venv (start-up included). A command shorter than ``--short`` seconds is run
``--repeat`` times in all and the median wall time is kept. Before the first run the sources ``accel emulate``
imports are compiled to bytecode (``compileall``, as installing a package does; ``--no-compile`` leaves them as they
are): with ``PYTHONDONTWRITEBYTECODE`` set, as on some machines, every command would compile them again (about 50 ms
of each command's start-up). One JSON line per trace, then ``{"summary": ...}``:
total wall times and their ratio per commit, the median ratio, the smallest ratio over the traces whose simulator
run takes more than 3 s, whether every count and every DRAM command count is equal, the load average over the run
and accel's version. ``--markdown`` prints docs/pim.md's table and totals instead, ``--write-docs docs/pim.md``
replaces them there (between ``<!-- aim_simulator: NAME -->`` and ``<!-- /aim_simulator -->``); ``--from OUT``
renders a saved run's output instead of running::

    ./run python benchmarks/aim_simulator.py --simulator ... /path/traces | tee out.jsonl
    ./run python benchmarks/aim_simulator.py --from out.jsonl --write-docs docs/pim.md
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Simulator runs longer than this (seconds) are the ones the 5x-per-trace target is about.
LONG_S = 3.0


def timed(cmd: list[str], repeat: int, short: float) -> tuple[float, str]:
    """Median wall time (s) of ``cmd`` (run once if the first run takes ``short`` s or more) and its stdout."""
    walls = []
    while True:
        t = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        walls.append(time.perf_counter() - t)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
        if walls[0] >= short or len(walls) >= repeat:
            return statistics.median(walls), p.stdout


def simulator(root: Path, trace: Path, repeat: int, short: float) -> dict:
    """Cycles, per-command totals and wall time of one simulator run."""
    wall, out = timed([str(root / "build" / "ramulator2"), "-f", str(root / "test" / "example.yaml"), "-t",
                       str(trace)], repeat, short)
    m = re.search(r"^\s*memory_system_cycles:\s*(\d+)", out, re.M)
    counts: dict[str, int] = {}
    for name, v in re.findall(r"CH\d+_num_(\w+)_commands:\s*(\d+)", out):
        counts[name] = counts.get(name, 0) + int(v)
    return {"cycles": int(m.group(1)) if m else None, "commands": {k: v for k, v in counts.items() if v},
            "wall_s": wall}


def accel(trace: Path, commit: str, repeat: int, short: float) -> dict:
    """Cycles, DRAM command counts and wall time of the whole ``accel emulate`` command."""
    exe = Path(sys.executable).parent / "accel"
    wall, out = timed([str(exe), "emulate", str(trace), "--device", "aim-gddr6", "--aim-timing", commit, "--json"],
                      repeat, short)
    rep = json.loads(out)
    return {"cycles": rep["cycles"], "commands": {k: v for k, v in rep["dram_commands"].items() if v},
            "host_requests": rep["host_requests"], "wall_s": wall}


def write_bytecode() -> list[str]:
    """Compile the packages ``accel emulate`` imports (``accel``, ``accel.emulator``) to bytecode; their folders."""
    import accel
    import accel.emulator

    folders = [str(Path(m.__file__).parent) for m in (accel, accel.emulator)]
    for f in folders:
        if not compileall.compile_dir(f, quiet=1):
            sys.exit(f"compileall failed in {f}")
    return folders


def markdown(res: dict) -> dict[str, str]:
    """The generated blocks of docs/pim.md: the table (a row per trace and one of totals) and the totals line."""
    from docblocks import table

    rows, summary = res["rows"], res["summary"]
    commits = [c for c, v in summary.items() if isinstance(v, dict)]
    head = ["trace", "host requests"]
    for c in commits:
        head += [f"{c} cycles (simulator = accel)", "simulator s", "accel s", "ratio"]
    lines = []
    for r in rows:
        line = [r["trace"].removesuffix(".txt"), r["host_requests"]]
        for c in commits:
            x = r[c]
            cycles = str(x["cycles"]) if x["equal"] else f"{x['cycles']} (accel {x['accel_cycles']})"
            line += [cycles + ("" if x["commands_equal"] else ", commands differ"), f"{x['simulator_s']:.2f}",
                     f"{x['accel_s']:.2f}", f"{x['speedup']:.1f}"]
        lines.append(line)
    total = ["**total**", ""]
    for c in commits:
        v = summary[c]
        total += ["", f"{v['simulator_total_s']:.1f}", f"{v['accel_total_s']:.2f}", f"**{v['total_speedup']:.1f}**"]
    lines.append(total)
    long = f"min_speedup_simulator_over_{LONG_S:g}s"
    both = " / ".join
    sim = both(f"{summary[c]['simulator_total_s']:.1f}" for c in commits)
    acc = both(f"{summary[c]['accel_total_s']:.2f}" for c in commits)
    ratio = both(f"{summary[c]['total_speedup']:.2f}x" for c in commits)
    med = both(f"{summary[c]['median_speedup']:.2f}x" for c in commits)
    low = both(f"{summary[c][long]:.2f}x" if summary[c][long] is not None else "-" for c in commits)
    equal = all(summary[c]["all_equal"] and summary[c]["all_commands_equal"] for c in commits)
    totals = (f"Totals ({both(commits)}): simulator {sim} s, accel {acc} s: **{ratio}** in total, median {med}; "
              f"every trace whose simulator run takes more than {LONG_S:g} s at least **{low}**; "
              f"{'every count and every DRAM command count equal' if equal else 'NOT every count equal'} "
              f"({summary['traces']} traces; load average {summary['load1'][0]}-{summary['load1'][1]}; "
              f"{summary['accel']}).")
    return {"table": table(head, lines), "totals": totals}


def read_output(path: Path) -> dict:
    """A run's output (its JSON lines) as ``{"rows": [...], "summary": {...}}``."""
    rows, summary = [], None
    for line in path.read_text().splitlines():
        if line.strip():
            obj = json.loads(line)
            if "summary" in obj:
                summary = obj["summary"]
            else:
                rows.append(obj)
    if summary is None:
        sys.exit(f"{path}: no summary line (an unfinished run?)")
    return {"rows": rows, "summary": summary}


def traces_of(targets: list[str]) -> list[Path]:
    out: list[Path] = []
    for t in map(Path, targets):
        out += sorted(p for p in t.glob("*.txt") if p.is_file()) if t.is_dir() else [t]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("traces", nargs="*", help="AiM trace files or folders (their *.txt files)")
    ap.add_argument("--simulator", action="append", default=[], metavar="COMMIT=DIR",
                    help="a simulator clone built at COMMIT (0f28a07 or 2eb1ee0); repeat for both")
    ap.add_argument("--repeat", type=int, default=3, help="runs of a short command (median kept)")
    ap.add_argument("--short", type=float, default=10.0, help="a command under this many seconds is repeated")
    ap.add_argument("--no-compile", action="store_true", help="do not write accel's bytecode before the runs")
    ap.add_argument("--from", dest="saved", type=Path, help="render this saved output instead of running")
    ap.add_argument("--markdown", action="store_true", help="print docs/pim.md's table and totals")
    ap.add_argument("--write-docs", type=Path, help="replace the table and totals in this file (docs/pim.md)")
    a = ap.parse_args()
    if a.saved is not None:
        from docblocks import emit

        emit(read_output(a.saved), "aim_simulator", markdown, a.write_docs, True)
        return 0
    if not a.traces or not a.simulator:
        ap.error("give the traces and --simulator COMMIT=DIR (both commits), or --from a saved output")
    sims = dict(s.split("=", 1) for s in a.simulator)
    compiled = [] if a.no_compile else write_bytecode()
    rows = []
    for trace in traces_of(a.traces):
        row: dict = {"trace": trace.name, "load1": round(os.getloadavg()[0], 2)}
        for commit, root in sims.items():
            ref = simulator(Path(root), trace, a.repeat, a.short)
            got = accel(trace, commit, a.repeat, a.short)
            row["host_requests"] = got["host_requests"]
            row[commit] = {"cycles": ref["cycles"], "accel_cycles": got["cycles"], "equal": ref["cycles"] == got["cycles"],
                           "commands_equal": ref["commands"] == got["commands"],
                           "simulator_s": round(ref["wall_s"], 3), "accel_s": round(got["wall_s"], 3),
                           "speedup": round(ref["wall_s"] / got["wall_s"], 2)}
        rows.append(row)
        if not (a.markdown or a.write_docs):
            print(json.dumps(row), flush=True)
    loads = [r["load1"] for r in rows] + [round(os.getloadavg()[0], 2)]
    version = subprocess.run([str(Path(sys.executable).parent / "accel"), "--version"], capture_output=True,
                             text=True).stdout.strip()
    summary: dict = {"traces": len(rows), "load1": [min(loads), max(loads)], "accel": version,
                     "bytecode_written": compiled,
                     "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))}
    for commit in sims:
        rs = [r[commit] for r in rows]
        sim_s, acc_s = sum(r["simulator_s"] for r in rs), sum(r["accel_s"] for r in rs)
        long = [r["speedup"] for r in rs if r["simulator_s"] > LONG_S]
        summary[commit] = {"all_equal": all(r["equal"] for r in rs),
                           "all_commands_equal": all(r["commands_equal"] for r in rs),
                           "simulator_total_s": round(sim_s, 2), "accel_total_s": round(acc_s, 2),
                           "total_speedup": round(sim_s / acc_s, 2),
                           "median_speedup": statistics.median(r["speedup"] for r in rs),
                           f"min_speedup_simulator_over_{LONG_S:g}s": min(long) if long else None}
    if a.markdown or a.write_docs:
        from docblocks import emit

        emit({"rows": rows, "summary": summary}, "aim_simulator", markdown, a.write_docs, True)
    else:
        print(json.dumps({"summary": summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
