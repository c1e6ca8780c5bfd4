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

import re
from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_, itemgetter
from pathlib import Path
from typing import Any, Sequence

from .errors import AccelError
from .fmt import value as show

__all__ = ["TraceError", "parse_text_program", "parse_text_trace", "parse_aim_trace", "read_aim_trace",
           "is_aim_trace", "is_aim_trace_file", "HostRequest", "AimTrace", "AIM_ISR_FIELDS", "AIM_GPR_ADDRESSES",
           "AIM_CFR_VALUES"]


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
    from .isa import TABLES, Family, PimOp
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


@dataclass(slots=True)
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
    """True if the text looks like a host-level AiM trace (its first command line starts with AiM, W or R). Reads
    lines from the head of the text only as far as that line (a trace runs to megabytes)."""
    size = 4096
    while True:
        lines = text[:size].splitlines()
        whole = size >= len(text)
        for raw in lines if whole else lines[:-1]:   # the last line of a head may be cut short
            toks = raw.split()
            if toks and not toks[0].startswith("#"):
                return toks[0] in ("AiM", "W", "R")
        if whole:
            return False
        size *= 8


def is_aim_trace_file(path: str | Path) -> bool:
    """True if a file's first command line starts with AiM, W or R (read from its head only)."""
    try:
        with open(path, errors="replace") as f:
            head = f.read(4096)
    except (OSError, ValueError):   # unreadable, or a NUL byte in the path: reading it reports why
        return False
    return is_aim_trace(head)


def parse_aim_trace(text: str, source: str = "trace") -> list[HostRequest]:
    """Parse a host-level AiM trace (see the module docstring) into :class:`HostRequest` objects; it must end with
    ``AiM EOC`` (:func:`read_aim_trace` gives the same in columns, and checks the same)."""
    return read_aim_trace(text, source).requests()


class AimTrace:
    """A parsed host-level AiM trace, in columns (lists, one entry per request): for request ``i``, ``mem[i]`` is 1
    for ``W MEM``, 2 for ``R MEM`` (then ``channel``, ``bank``, ``row`` hold its fields) and 0 for any other request,
    which is ``other[i]`` (its ``channel``, ``bank``, ``row`` are 0); ``line[i]`` is its line in ``source``, the
    trace's name. The bulk of a CENT trace is KV-cache traffic (``W/R MEM``, 53-94 % of its lines), which this form
    keeps as numbers rather than objects."""

    __slots__ = ("mem", "channel", "bank", "row", "line", "other", "source")

    def __init__(self, mem: list[int], channel: list[int], bank: list[int], row: list[int], line: list[int],
                 other: dict[int, HostRequest], source: str = "trace") -> None:
        self.mem, self.channel, self.bank, self.row, self.line, self.other = mem, channel, bank, row, line, other
        self.source = source

    def __len__(self) -> int:
        return len(self.mem)

    @classmethod
    def from_requests(cls, requests: Sequence[HostRequest]) -> "AimTrace":
        """The columns of a list of requests (named after the first one's source)."""
        seq, line, other = [], [], {}
        for i, r in enumerate(requests):
            line.append(r.line)
            if r.op == "MEM" and r.kind != "AiM":
                seq.append((1 if r.kind == "W" else 2, r.f["channel"], r.f["bank"], r.f["row"]))
            else:
                seq.append(_NOT_MEM)
                other[i] = r
        return cls(*_columns(seq), line, other, requests[0].source if requests else "trace")

    def requests(self) -> list[HostRequest]:
        """The requests as :class:`HostRequest` objects."""
        return [self._mem_request(m, ch, bank, row, line) if m else self.other[i]
                for i, (m, ch, bank, row, line) in enumerate(zip(self.mem, self.channel, self.bank, self.row,
                                                                 self.line))]

    def request(self, i: int) -> HostRequest:
        """Request ``i`` as a :class:`HostRequest`."""
        m = self.mem[i]
        return self._mem_request(m, self.channel[i], self.bank[i], self.row[i], self.line[i]) if m else self.other[i]

    def _mem_request(self, m: int, ch: int, bank: int, row: int, line: int) -> HostRequest:
        return HostRequest("W" if m == 1 else "R", "MEM", {"channel": ch, "bank": bank, "row": row}, line, self.source)


#: The columns ``(mem, channel, bank, row)`` of a request that is not ``W/R MEM``.
_NOT_MEM = (0, 0, 0, 0)

#: A ``W/R MEM`` line in its plain form (decimal fields, single spaces), which :func:`read_aim_trace` reads once per
#: distinct line (a CENT trace of 340K such lines has under 5K distinct ones).
_MEM_LINE = re.compile(r"([WR]) MEM ([0-9]{1,18}) ([0-9]{1,18}) ([0-9]{1,18})")


def _columns(seq: list[tuple[int, int, int, int]]) -> tuple[list[int], ...]:
    """``(mem, channel, bank, row)`` tuples, one per request, as four columns."""
    return tuple(list(map(itemgetter(k), seq)) for k in range(4))


def read_aim_trace(text: str, source: str = "trace") -> AimTrace:
    """Parse a host-level AiM trace into an :class:`AimTrace` (what :func:`parse_aim_trace` returns as objects).

    Every line is checked, in order, up to ``AiM EOC``, after which only blank lines and comments may follow; the
    first bad line raises :class:`TraceError` naming ``source:line``. Plain ``W/R MEM`` lines (always valid here:
    the device's ranges are checked by the AiM system) are read once per distinct line, and so is every other request
    line (a trace repeats its AiM lines too; each request keeps its own line number)."""
    lines = text.splitlines()
    plain: dict[str, tuple[int, int, int, int]] = {}
    for raw in set(lines):
        m = _MEM_LINE.fullmatch(raw)
        if m:
            plain[raw] = (1 if m[1] == "W" else 2, int(m[2]), int(m[3]), int(m[4]))
    cols = list(map(plain.get, lines))          # None: a line to parse on its own
    seq: list[tuple[int, int, int, int]] = []
    line: list[int] = []
    other: dict[int, HostRequest] = {}
    parsed: dict[str, HostRequest] = {}       # a request line -> its request (at its first line)
    eoc = 0
    pos = 0                                     # lines before pos are taken

    def take_plain(end: int) -> None:           # the plain MEM lines pos .. end - 1
        if pos < end:
            if eoc:
                _after_eoc(lines[pos].split(), pos + 1, eoc, source)
            seq.extend(cols[pos:end])
            line.extend(range(pos + 1, end + 1))

    for i in compress(range(len(lines)), map(is_, cols, repeat(None))):
        take_plain(i)
        pos = i + 1
        raw = lines[i]
        first = parsed.get(raw)
        if first is None:
            toks = raw.split()
            if not toks or toks[0].startswith("#"):
                continue
            if eoc:
                _after_eoc(toks, i + 1, eoc, source)
            r = parsed[raw] = _parse_line(toks, i + 1, source)
        else:
            if eoc:
                _after_eoc(raw.split(), i + 1, eoc, source)
            r = HostRequest(first.kind, first.op, dict(first.f), i + 1, source)
        line.append(i + 1)
        if r.op == "MEM":
            seq.append((1 if r.kind == "W" else 2, r.f["channel"], r.f["bank"], r.f["row"]))
        else:
            other[len(seq)] = r
            seq.append(_NOT_MEM)
            if r.kind == "AiM" and r.op == "EOC":
                eoc = i + 1
    take_plain(len(lines))
    if not eoc:
        raise TraceError(f"{source}: the trace ends without 'AiM EOC'; add it as the last request")
    return AimTrace(*_columns(seq), line, other, source)


def _after_eoc(toks: list[str], lineno: int, eoc: int, source: str) -> None:
    raise TraceError(f"{source}:{lineno}: {' '.join(toks)!r} follows 'AiM EOC' (line {eoc}), which ends the trace; "
                     f"remove it or move the EOC after it")


def _parse_line(toks: list[str], lineno: int, source: str) -> HostRequest:
    """One request line (its tokens), its fields checked against the trace format: non-negative addresses, GPR
    addresses within the simulator's GPR space, CFR values; what depends on the device (rows, banks, channels, an
    opsize beyond a row or the global buffer) is checked by :func:`accel.emulator.aim.check_ranges`."""
    where = f"{source}:{lineno}"

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
        return HostRequest("AiM", name, f, lineno, source)
    if kind in ("W", "R"):
        if len(toks) < 2 or toks[1] not in ("CFR", "GPR", "MEM"):
            raise TraceError(f"{where}: {kind} must be followed by CFR, GPR or MEM")
        region = toks[1]
        n = {"CFR": 2, "GPR": 1, "MEM": 3}[region]
        if len(toks) - 2 != n:
            raise TraceError(f"{where}: {kind} {region} takes {n} field(s), got {len(toks) - 2}")
        vals = [num(v) for v in toks[2:]]
        f = dict(zip({"CFR": ("addr", "data"), "GPR": ("gpr0",), "MEM": ("channel", "bank", "row")}[region], vals))
        if region == "CFR":
            if f["addr"] not in AIM_CFR_VALUES:
                raise TraceError(f"{where}: unknown CFR {f['addr']}; CFRs are 0 (broadcast), 1 (EWMUL bank groups), "
                                 f"2 (activation function)")
            count, what = AIM_CFR_VALUES[f["addr"]]
            if kind == "W" and not 0 <= f["data"] < count:
                raise TraceError(f"{where}: W CFR {f['addr']} {f['data']}: must be between 0 and {count - 1} ({what})")
        else:
            _check_fields(f, f"{kind} {region}", where)
        return HostRequest(kind, region, f, lineno, source)
    raise TraceError(f"{where}: a line must start with AiM, W, R or #, not {show(kind)}")


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
