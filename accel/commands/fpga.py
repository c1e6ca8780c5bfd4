"""``accel fpga build|report|run``: bitstreams of the FPGA top, their reports, and programs over the UART link."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AccelError
from .options import add_device, add_json, positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fpga", help="build bitstreams for FPGA boards and run programs on them")
    fsub = p.add_subparsers(dest="fpga_command", metavar="ACTION")
    fsub.required = True

    b = fsub.add_parser("build", help="build the bitstream of a preset for a board (yowasp Yosys + nextpnr) and "
                                      "report utilisation and Fmax")
    b.add_argument("--board", required=True, help="board (icebreaker, ulx3s-85f)")
    add_device(b, default=None, help="default: the board's own preset (icebreaker: fpga-tiny, ulx3s-85f: "
                                     "fpga-small)")
    b.add_argument("-o", "--output", default=None,
                   help="output folder (default: build/fpga/<board>-<device>)")
    b.add_argument("--baud", type=positive, default=115200, help="UART rate of the host link")
    add_json(b, "print the report as JSON")
    b.set_defaults(func=build)

    r = fsub.add_parser("report", help="print the report of a finished build")
    r.add_argument("dir", help="output folder of accel fpga build")
    add_json(r)
    r.set_defaults(func=report)

    u = fsub.add_parser("run", help="run a PIM program on a programmed board over its UART")
    u.add_argument("program", help="program file")
    u.add_argument("--port", required=True, help="serial device of the board (e.g. /dev/ttyUSB1)")
    u.add_argument("--baud", type=positive, default=115200, help="UART rate")
    u.add_argument("--timeout", type=_seconds, default=None,
                   help="seconds to wait for each response (default: the host link's)")
    add_device(u, default=None, help="the device the board was built for (default: identified from the board)")
    add_json(u)
    u.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < v < 1e6:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds (below 1e6)")
    return v


def build(args: argparse.Namespace) -> int:
    from ..config import load_preset
    from ..fpga.build import format_report, get_board
    from ..fpga.build import build as build_bitstream

    board = get_board(args.board)  # an unknown board fails before the device is loaded
    name = args.device or board.preset
    dev = load_preset(name)
    out = Path(args.output or f"build/fpga/{board.name}-{dev.name}")
    rep = build_bitstream(board.name, dev, out, baud=args.baud, preset=dev.name)
    if args.json:
        from ..cli import print_json

        print_json(rep)
    else:
        print(format_report(rep, out))
        print(f"wrote {out / 'report.json'} and {out / 'report.txt'}")
    return 0


def report(args: argparse.Namespace) -> int:
    from ..fpga.build import format_report, load_report

    rep = load_report(args.dir)
    if args.json:
        from ..cli import print_json

        print_json(rep)
    else:
        print(format_report(rep, args.dir))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        from ..fpga.host import run_program_file
    except ImportError as e:
        raise AccelError(f"accel fpga run is not available: {e}; the host link needs accel.fpga.host "
                         f"and pyserial (pip install pyserial)") from None
    if not Path(args.program).is_file():
        raise AccelError(f"program file {args.program} does not exist; give the path of a program file")
    kwargs = {} if args.timeout is None else {"timeout": args.timeout}
    if args.device is not None:
        kwargs["preset"] = args.device
    result = run_program_file(args.port, args.program, baud=args.baud, **kwargs)
    if args.json:
        from ..cli import print_json

        print_json(result)
    else:
        for key, value in result.items():
            if isinstance(value, list) and len(value) > 8:
                value = f"{len(value)} values: {' '.join(map(str, value[:8]))} ..."
            print(f"{key}: {value}")
    return 0
