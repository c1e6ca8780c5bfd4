"""``accel emulate FILE [--device DEVICE] [--model engine|cycle] [--strict] [--json] [--plots DIR] [--trace F]
[--progress]``: run a program or a PIM command trace.

FILE is a multi-stream program (:mod:`accel.program`: text with ``stream`` headers, or ``.npz``), run in the system
engine (or, ``--model cycle``, the per-cycle system model: small programs only), reported with its energy
(:func:`accel.energy.energy`), optionally as figures (:func:`accel.plots.write_plots`) and a Perfetto trace
(:func:`accel.perfetto.write_trace`); or a PIM command trace: a host-level AiM trace (SK hynix's AiM simulator
format: ``AiM MAC_ABK 64 0xffffffff 0``, ...) or our own command words in text form (``MAC all_banks=1 col=0
count=64``), see :mod:`accel.traces` and :func:`accel.report.trace_report`. AiM traces: ``--aim-timing 2eb1ee0``
applies the GDDR6 timing of the simulator commit CENT pins (default: its HEAD, 0f28a07), ``--exact-reference`` the
per-command reference model. Text traces: ``--strict`` makes a command issued too early an error.

``accel emulate FOLDER`` (every AiM trace in it) or ``--batch LIST`` (a file naming one trace a line): a table of
cycles, time and utilisation per trace (:func:`accel.report.trace_batch`), with a progress bar. Every error names the
file and the line that caused it; bad output paths are refused before the run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import load_preset
from ..errors import AccelError
from ..fmt import num, pct, si
from .options import DEFAULT_DEVICE, add_device, add_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulate", help="run a program (multi-stream, text or .npz) or a PIM command trace")
    p.add_argument("trace", metavar="FILE", nargs="?", help="program or trace file, or a folder of AiM traces")
    add_device(p, default=None, help=f"default: the program's own; {DEFAULT_DEVICE} for traces")
    p.add_argument("--model", choices=("engine", "cycle"), default="engine",
                   help="programs: the system engine or the per-cycle system model")
    p.add_argument("--aim-timing", default="0f28a07", metavar="COMMIT",
                   help="AiM traces: the GDDR6 timing table of SK hynix's simulator at this commit: 0f28a07 (its "
                        "HEAD) or 2eb1ee0 (the commit CENT pins; its published latencies)")
    p.add_argument("--exact-reference", action="store_true",
                   help="AiM traces: run the per-command reference model (same counts, far slower)")
    p.add_argument("--strict", action="store_true",
                   help="command traces: every command must be legal in the cycle after its predecessor on its "
                        "channel (one issued too early is an error naming its line), as the RTL's strict mode; "
                        "default: each command waits for its earliest legal cycle")
    p.add_argument("--batch", metavar="LIST", help="run every trace a file lists (one path a line) and print a table")
    add_json(p, "print JSON (with every bank's or stream's figures)")
    p.add_argument("--plots", metavar="DIR", default=None,
                   help="programs: write the roofline, timeline and breakdown figures (PNG and SVG) into DIR "
                        "(created if its parent exists)")
    p.add_argument("--trace", dest="trace_out", metavar="F", default=None,
                   help="programs: write a Perfetto trace (Chrome trace-event JSON; open it in ui.perfetto.dev)")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show progress bars on stderr even when it is not a terminal (default: only on a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.batch or (args.trace and Path(args.trace).is_dir()):
        return _run_batch(args)
    if args.trace is None:
        raise AccelError("accel emulate needs a FILE (program or trace), a folder of traces, or --batch LIST")
    from ..traces import is_aim_trace_file

    if not is_aim_trace_file(args.trace):   # programs need the system engine; AiM traces start up without it
        from ..program import is_program_file

        if is_program_file(args.trace):
            if args.strict:
                raise AccelError(f"{args.trace}: --strict applies to command traces; a program's streams run in the "
                                 f"system engine, every command at its earliest legal cycle")
            return _run_program(args)
    if args.plots is not None or args.trace_out is not None:
        raise AccelError(f"{args.trace}: --plots and --trace need a multi-stream program (a file with 'stream' "
                         f"headers, or .npz); a PIM command trace has no operators or units to draw")
    from ..report import bank_summary, trace_report

    dev = load_preset(args.device or DEFAULT_DEVICE)
    rep = trace_report(args.trace, dev, timing=args.aim_timing, reference=args.exact_reference, strict=args.strict)
    if args.json:
        from ..cli import print_json

        print_json(rep)
        return 0
    print(f"trace      {rep['trace']} ({rep['format']} format{', strict' if rep.get('strict') else ''})")
    print(f"device     {rep['device']} (tCK {num(rep['tck_ns'])} ns)"
          + (f", AiM timing {rep['aim_timing']}" if "aim_timing" in rep else ""))
    print(f"cycles     {rep['cycles']}")
    print(f"time       {si(rep['time_ns'] * 1e-9, 's')}")
    print(f"MAC ops    {rep['mac_lane_ops']} lane MACs, {pct(rep['peak_mac_fraction'], 2)} of peak MAC throughput")
    print("per bank (over channels: mean [min, max])")
    print("  bank  row open                  MAC busy")
    for row in bank_summary(rep):
        (a, a_lo, a_hi), (m, m_lo, m_hi) = row["active"], row["mac"]
        print(f"  {row['bank']:4d}  {a:6.1%} [{a_lo:6.1%}, {a_hi:6.1%}]  {m:6.1%} [{m_lo:6.1%}, {m_hi:6.1%}]")
    return 0


def _run_batch(args: argparse.Namespace) -> int:
    from ..report import batch_table, trace_batch, trace_paths

    if args.plots is not None or args.trace_out is not None:
        raise AccelError("--plots and --trace need one multi-stream program, not a folder or --batch list of traces")
    paths = trace_paths(args.batch or args.trace, batch=bool(args.batch))
    dev = load_preset(args.device or DEFAULT_DEVICE)
    res = trace_batch(paths, dev, timing=args.aim_timing, reference=args.exact_reference, strict=args.strict,
                      progress=args.progress)
    if args.json:
        from ..cli import print_json

        print_json(res)
    else:
        print(batch_table(res))
    return 0


def _run_program(args: argparse.Namespace) -> int:
    from ..emulator.system import run_program
    from ..energy import energy
    from ..outputs import check_output_dir, check_output_file
    from ..program import Program
    from ..report import energy_lines

    if args.trace_out is not None:  # bad output paths fail before the run
        check_output_file(args.trace_out, "--trace")
    if args.plots is not None:
        check_output_dir(args.plots, "--plots", create=False)
    prog = Program.load(args.trace)
    dev = prog.resolve_device(args.device)
    res = run_program(prog, dev, args.model, progress=args.progress)
    e = energy(res.events, dev, res.cycles, prog.devices)
    rep = {"program": args.trace, "model": args.model, **res.to_json(), "energy": e.to_json()}
    for k, v in rep["operators"].items():
        v.update(prog.operators.get(int(k), {}))
    if args.trace_out is not None:
        from ..perfetto import write_trace

        rep["trace_file"] = str(write_trace(args.trace_out, res, prog))
    if args.plots is not None:
        from ..plots import write_plots

        rep["plots"] = [str(p) for p in write_plots(args.plots, res, prog, dev, energy=e, progress=args.progress)]
    if args.json:
        from ..cli import print_json

        print_json(rep)
        return 0
    print(f"program    {args.trace} ({len(prog.streams)} streams, {args.model})")
    print(f"device     {res.device} (tCK {num(dev.pim.timing.tck_ns)} ns)")
    print(f"cycles     {res.cycles}")
    print(f"time       {si(res.time_ns * 1e-9, 's')}")
    print("  stream          end     busy  util  commands")
    for name, s in rep["streams"].items():
        print(f"  {name:10s} {s['end']:8d} {s['busy']:8d} {s['utilisation']:5.1%} {s['commands']:9d}")
    if rep["operators"]:
        print("  operator               start (ns)    end (ns)")
        for k, v in rep["operators"].items():
            print(f"  {k:>5} {str(v.get('name', '')):16s} {v['start_ns']:11.1f} {v['end_ns']:11.1f}")
    print("events     " + ", ".join(f"{k} {v}" for k, v in rep["events"].items() if v))
    for line in energy_lines(e):
        print(line)
    if "trace_file" in rep:
        print(f"trace      {rep['trace_file']} (open in ui.perfetto.dev)")
    if "plots" in rep:
        print(f"plots      {', '.join(rep['plots'])}")
    return 0
