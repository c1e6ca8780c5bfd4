"""``accel map MODEL [--device DEVICE] ...``: map a model onto a device, run the program, print the report.

The library does the work (:func:`accel.mapping.map.map_model`, :func:`accel.mapping.map.format_text`); this module
parses (the shared options of :mod:`.options`), calls and prints. ``--json``, ``--program``, ``--trace`` and
``--plots`` paths are checked before the run and every file is written whole or not at all (:mod:`accel.outputs`);
the plots and the trace are those of ``accel emulate`` (:func:`accel.plots.write_plots` with the map's operator
rows, :func:`accel.perfetto.write_trace`).
"""
from __future__ import annotations

import argparse

from .options import add_device, add_workload, positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="map a model onto a device: latency, tokens/s, where the time goes")
    add_mapping(p)
    p.add_argument("--json", metavar="F", help="also write the full report as JSON to F")
    p.add_argument("--program", metavar="F", help="write the program to F (.npz: binary form, else text); "
                                                  "accel emulate F runs it")
    p.add_argument("--plots", metavar="DIR", default=None,
                   help="write the roofline (every operator), timeline and breakdown figures (PNG and SVG) into DIR")
    p.add_argument("--trace", metavar="F", default=None,
                   help="write a Perfetto trace, one track per unit (Chrome trace-event JSON; open it in "
                        "ui.perfetto.dev)")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show progress bars on stderr even when it is not a terminal")
    p.set_defaults(func=run)


def add_mapping(p: argparse.ArgumentParser) -> None:
    """What a mapped step is: the model, the device, the step (:func:`accel.commands.options.add_workload`), the
    weights' datatype, the device count and split, the fallback GPU (``accel map`` and ``accel gpu compare``)."""
    p.add_argument("model", metavar="MODEL",
                   help="a known model (accel models), a Hugging Face model directory or a YAML operator list")
    add_device(p)
    add_workload(p, "default: 512, at most the model's positions")
    p.add_argument("--datatype", default=None,
                   help="weight datatype: int8, int4, int3, fp4_*/fp3_* variants, mixed (BitMoD FP4 variants), "
                        "mixed3, or mixed:DT=FRACTION,... (default: int8)")
    p.add_argument("--weights", default=None, metavar="D", help="the same as --datatype (e.g. --weights mixed)")
    p.add_argument("--devices", type=positive, default=1,
                   help="identical devices joined by the device's interconnect")
    p.add_argument("--parallel", choices=("tensor", "pipeline"), default="tensor",
                   help="with --devices N: split every GEMV's rows and the KV heads (tensor, default) or the layers "
                        "(pipeline)")
    p.add_argument("--gpu", default="h100-sxm", help="GPU of the fallback's roofline (accel gpu peaks)")


def mapping_args(args: argparse.Namespace) -> dict:
    """:func:`accel.mapping.map.map_model`'s arguments from :func:`add_mapping`'s options."""
    from ..errors import AccelError

    if args.datatype is not None and args.weights is not None and args.datatype != args.weights:
        raise AccelError(f"--datatype {args.datatype} and --weights {args.weights} disagree; give one of them")
    return dict(model=args.model, device=args.device, phase=args.phase, context=args.context, prompt=args.prompt,
                batch=args.batch, datatype=args.datatype or args.weights or "int8", experts=args.experts,
                devices=args.devices, parallel=args.parallel, gpu=args.gpu)


def run(args: argparse.Namespace) -> int:
    import json

    from ..mapping.map import format_text, map_model
    from ..outputs import check_output_dir, check_output_file, write_text_atomic

    kw = mapping_args(args)
    for opt, path in (("--json", args.json), ("--program", args.program), ("--trace", args.trace)):
        if path is not None:   # bad output paths fail before the run
            check_output_file(path, opt)
    if args.plots is not None:
        check_output_dir(args.plots, "--plots", create=False)
    mr = map_model(**kw, progress=args.progress)
    if args.program:
        mr.program.save(args.program)
        mr.extras["program_file"] = args.program
    if args.trace is not None:
        from ..perfetto import write_trace

        mr.extras["trace_file"] = str(write_trace(args.trace, mr.result, mr.program))
    if args.plots is not None:
        from ..plots import write_plots

        mr.extras["plots"] = [str(p) for p in write_plots(args.plots, mr.result, mr.program, mr.device, mr.rows,
                                                          mr.energy, args.progress)]
    if args.json:
        write_text_atomic(args.json, json.dumps(mr.to_json(), indent=1), "--json")
    print(format_text(mr))
    return 0
