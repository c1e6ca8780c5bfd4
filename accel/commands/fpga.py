"""``accel fpga build|report|run``: bitstreams of the FPGA top, their reports, and programs over the UART link."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AccelError
from .rtl import _positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fpga", help="build bitstreams for FPGA boards and run programs on them")
    fsub = p.add_subparsers(dest="fpga_command", metavar="ACTION")
    fsub.required = True

    b = fsub.add_parser("build", help="build the bitstream of a preset for a board (yowasp Yosys + nextpnr) and "
                                      "report utilisation and Fmax")
    b.add_argument("--board", required=True, help="board (icebreaker, ulx3s-85f)")
    b.add_argument("--preset", required=True, help="device preset (accel devices; fpga-tiny, fpga-small) or a YAML "
                                                   "file")
    b.add_argument("-o", "--output", default=None,
                   help="output directory (default: build/fpga/<board>-<preset>)")
    b.add_argument("--baud", type=_positive, default=115200, help="UART rate of the host link (default: 115200)")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=build)

    r = fsub.add_parser("report", help="print the report of a finished build")
    r.add_argument("dir", help="output directory of accel fpga build")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=report)

    u = fsub.add_parser("run", help="run a PIM program on a programmed board over its UART")
    u.add_argument("program", help="program file")
    u.add_argument("--port", required=True, help="serial device of the board (e.g. /dev/ttyUSB1)")
    u.add_argument("--baud", type=_positive, default=115200, help="UART rate (default: 115200)")
    u.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for each response (default: the host link's)")
    u.add_argument("--preset", default=None,
                   help="preset the board was built for (default: identified from the board)")
    u.add_argument("--json", action="store_true", help="print JSON")
    u.set_defaults(func=run)


def build(args: argparse.Namespace) -> int:
    from ..config import load_preset
    from ..fpga.build import format_report, get_board
    from ..fpga.build import build as build_bitstream

    board = get_board(args.board)  # an unknown board fails before the preset is loaded
    dev = load_preset(args.preset)
    preset = Path(args.preset).stem if args.preset.endswith((".yaml", ".yml")) else args.preset
    out = Path(args.output or f"build/fpga/{board.name}-{preset}")
    if not args.json:
        print(f"building {dev.name} for {board.name} ({board.part}) in {out} ...", flush=True)
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
    if args.preset is not None:
        kwargs["preset"] = args.preset
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
