"""Command traces for ``accel emulate``: our own PIM command words in text form, and SK hynix's host-level AiM traces.

Our text form
-------------
One command per line, ``#`` starts a comment. Either a 64-bit word (``0x...``) or ``OP key=value ...`` with the PIM
field names of ``accel/isa.py``, e.g. ``ACT all_banks=1 row=3``, ``MAC all_banks=1 col=0 count=64``,
``WRGB col=0 count=64`` (data words, when needed, follow as ``data=0x..,0x..``; omitted data are zeros),
``RDMAC all_banks=1``, ``CFR col=8 row=3``. ``ch=`` is short for ``channel=``. The program runs in the channel engine
(:mod:`accel.emulator.engine`), every command at its earliest legal cycle.

AiM host traces
---------------
The trace format of SK hynix's AiM simulator (a Ramulator 2 fork, used by the CENT paper): ``AiM <ISR> <fields>``,
``W CFR <reg> <value>``, ``W|R GPR <n>``, ``W|R MEM <channel> <bank> <row>``, ``# comments``; an ``AiM EOC`` ends
it. An ISR's fields are, in this order and only those it takes: opsize, GPR_0, GPR_1, channel_mask, bank, row, col,
thread (``AiM WR_GB <opsize> <GPR> <mask>``, ``AiM MAC_ABK <opsize> <mask> <row>``, ``AiM RD_MAC <GPR> <mask>``, ...).

The AiM host system that executes such a trace (its DMA, controllers and GDDR6-AiM timing) is
:class:`accel.emulator.aim.AimSystem`; :func:`accel.report.trace_report` runs a trace file in it or in the channel
engine and builds the report ``accel emulate`` prints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import AccelError
from .fmt import value as show
from .isa import TABLES, Family, PimOp

__all__ = ["TraceError", "parse_text_program", "parse_text_trace", "parse_aim_trace", "is_aim_trace", "HostRequest",
           "AIM_ISR_FIELDS", "AIM_GPR_ADDRESSES", "AIM_CFR_VALUES"]


class TraceError(AccelError, ValueError):
    """A trace line that cannot be understood."""


# --------------------------------------------------------------------------------------------------------------------
# Our own text form


def parse_text_program(text: str, source: str = "trace") -> list[tuple[int, Any]]:
    """Parse our text form into ``(word, data)`` pairs: one PIM command per line in the syntax of
    :func:`accel.program.parse_command` (a multi-stream program's PIM lines); WR/WRGB without data get zeros."""
    return parse_text_trace(text, source)[0]


def parse_text_trace(text: str, source: str = "trace") -> tuple[list[tuple[int, Any]], list[int]]:
    """:func:`parse_text_program`, and the line of each command (to name ``source:line`` in errors found later)."""
    from .program import ProgramError, parse_command

    out: list[tuple[int, Any]] = []
    lines: list[int] = []
    op_off, op_width = TABLES[Family.PIM].offsets()["op"]
    count_off, count_width = TABLES[Family.PIM].offsets()["count"]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        toks = line.split()
        try:
            word, data = parse_command(toks, "pim", f"{source}:{lineno}")
        except ProgramError as e:
            raise TraceError(str(e)) from None
        symbolic = not toks[0].lower().startswith("0x")
        if symbolic and data is None and (word >> op_off) & ((1 << op_width) - 1) in (PimOp.WR, PimOp.WRGB):
            data = [0] * max(1, (word >> count_off) & ((1 << count_width) - 1))
        out.append((word, data))
        lines.append(lineno)
    return out, lines


# --------------------------------------------------------------------------------------------------------------------
# AiM host traces

#: ISR -> its fields, in trace order (after the ISR name).
AIM_ISR_FIELDS: dict[str, tuple[str, ...]] = {
    "WR_SBK": ("gpr0", "mask", "bank", "row"),
    "WR_ABK": ("gpr0", "mask", "row"),
    "WR_GB": ("opsize", "gpr0", "mask"),
    "WR_BIAS": ("gpr0", "mask"),
    "WR_AFLUT": ("opsize",),
    "RD_MAC": ("gpr0", "mask"),
    "RD_AF": ("gpr0", "mask"),
    "RD_SBK": ("gpr0", "mask", "bank", "row"),
    "COPY_BKGB": ("opsize", "mask", "bank", "row"),
    "COPY_GBBK": ("opsize", "mask", "bank", "row"),
    "MAC_SBK": ("opsize", "mask", "bank", "row"),
    "MAC_ABK": ("opsize", "mask", "row"),
    "AF": ("mask",),
    "EWMUL": ("opsize", "mask", "row"),
    "EWADD": ("opsize", "gpr0", "gpr1"),
    "SYNC": (),
    "EOC": (),
}


#: GPR addresses of the AiM simulator's trace front end (its GPR region: ``GPR_SIZE = 1 << 19``).
AIM_GPR_ADDRESSES = 1 << 19
#: CFR -> (number of values, what it selects), after the AiM simulator's request fields (broadcast, ewmul_bg, afm).
AIM_CFR_VALUES: dict[int, tuple[int, str]] = {
    0: (2, "MAC vector from the global buffer (0) or the next bank (1)"),
    1: (2, "EWMUL in one bank group (0) or all (1)"),
    2: (8, "activation function 0 .. 7"),
}


@dataclass
class HostRequest:
    """One request of a host-level AiM trace (``line``: its line in the trace, ``source``: the trace's name)."""

    kind: str                      # "AiM", "R" or "W"
    op: str                        # ISR name, or GPR / CFR / MEM
    f: dict[str, int]
    line: int
    source: str = "trace"

    @property
    def where(self) -> str:
        """``source:line``, for error messages."""
        return f"{self.source}:{self.line}"


def is_aim_trace(text: str) -> bool:
    """True if the text looks like a host-level AiM trace (its first command line starts with AiM, W or R)."""
    for raw in text.splitlines():
        toks = raw.split()
        if not toks or toks[0].startswith("#"):
            continue
        return toks[0] in ("AiM", "W", "R")
    return False


def parse_aim_trace(text: str, source: str = "trace") -> list[HostRequest]:
    """Parse a host-level AiM trace (see the module docstring); it must end with ``AiM EOC``. Fields are checked
    against the trace format (non-negative addresses, GPR addresses within the simulator's GPR space, CFR values);
    what depends on the device (rows, banks, channels, an opsize beyond a row or the global buffer) is checked by
    :class:`accel.emulator.aim.AimSystem`."""
    out: list[HostRequest] = []
    eoc = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        toks = raw.split()
        if not toks or toks[0].startswith("#"):
            continue
        where = f"{source}:{lineno}"
        if eoc:
            raise TraceError(f"{where}: {' '.join(toks)!r} follows 'AiM EOC' (line {eoc}), which ends the trace; "
                             f"remove it or move the EOC after it")

        def num(t: str) -> int:
            try:
                return int(t, 16) if t.lower().startswith("0x") else int(t)
            except ValueError:
                raise TraceError(f"{where}: {t!r} is not a number") from None

        kind = toks[0]
        if kind == "AiM":
            if len(toks) < 2:
                raise TraceError(f"{where}: 'AiM' needs an ISR name ({', '.join(AIM_ISR_FIELDS)})")
            name = toks[1][4:] if toks[1].startswith("ISR_") else toks[1]
            if name not in AIM_ISR_FIELDS:
                raise TraceError(f"{where}: unknown AiM ISR {show(toks[1])}; ISRs are {', '.join(AIM_ISR_FIELDS)}")
            fields_ = AIM_ISR_FIELDS[name]
            if name == "WR_AFLUT":
                raise TraceError(f"{where}: AiM WR_AFLUT is not supported (nor by the AiM simulator)")
            if len(toks) - 2 != len(fields_):
                raise TraceError(f"{where}: AiM {name} takes {len(fields_)} field(s) ({' '.join(fields_) or 'none'}), "
                                 f"got {len(toks) - 2}")
            f = {k: num(v) for k, v in zip(fields_, toks[2:])}
            _check_fields(f, name, where)
            out.append(HostRequest("AiM", name, f, lineno, source))
            if name == "EOC":
                eoc = lineno
        elif kind in ("W", "R"):
            if len(toks) < 2 or toks[1] not in ("CFR", "GPR", "MEM"):
                raise TraceError(f"{where}: {kind} must be followed by CFR, GPR or MEM")
            region = toks[1]
            n = {"CFR": 2, "GPR": 1, "MEM": 3}[region]
            if len(toks) - 2 != n:
                raise TraceError(f"{where}: {kind} {region} takes {n} field(s), got {len(toks) - 2}")
            vals = [num(v) for v in toks[2:]]
            f = dict(zip({"CFR": ("addr", "data"), "GPR": ("gpr0",), "MEM": ("channel", "bank", "row")}[region],
                         vals))
            if region == "CFR":
                if f["addr"] not in AIM_CFR_VALUES:
                    raise TraceError(f"{where}: unknown CFR {f['addr']}; CFRs are 0 (broadcast), 1 (EWMUL bank "
                                     f"groups), 2 (activation function)")
                count, what = AIM_CFR_VALUES[f["addr"]]
                if kind == "W" and not 0 <= f["data"] < count:
                    raise TraceError(f"{where}: W CFR {f['addr']} {f['data']}: must be between 0 and {count - 1} "
                                     f"({what})")
            else:
                _check_fields(f, f"{kind} {region}", where)
            out.append(HostRequest(kind, region, f, lineno, source))
        else:
            raise TraceError(f"{where}: a line must start with AiM, W, R or #, not {show(kind)}")
    if not eoc:
        raise TraceError(f"{source}: the trace ends without 'AiM EOC'; add it as the last request")
    return out


def _check_fields(f: dict[str, int], name: str, where: str) -> None:
    """The device-independent ranges of a request's fields."""
    if "opsize" in f and f["opsize"] < 1:
        raise TraceError(f"{where}: AiM {name} opsize {f['opsize']}: must be at least 1 (columns or GPR words to "
                         f"move)")
    if "mask" in f and not 0 < f["mask"] < (1 << 32):
        raise TraceError(f"{where}: channel mask {f['mask']:#x} must select at least one of 32 channels (bits 0 .. "
                         f"31, bit i is channel 31 - i)")
    for key in ("gpr0", "gpr1"):
        if key in f and not 0 <= f[key] < AIM_GPR_ADDRESSES:
            what = "address" if name.endswith("GPR") else "GPR address"
            raise TraceError(f"{where}: {name} {what} {f[key]}: must be between 0 and {AIM_GPR_ADDRESSES - 1} (the "
                             f"AiM simulator's GPR space)")
    for key in ("row", "bank", "channel"):
        if key in f and f[key] < 0:
            raise TraceError(f"{where}: {name} {key} {f[key]}: must not be negative")
