"""The PIM channel's interface: everything its RTL (``rtl/pim.py``), its emulator models (``emulator/units/pim.py``,
``emulator/engine.py``) and its harness share — the timing-rule table, the rule codes and messages, the errors,
the configuration registers, the accumulator and read-port widths, and the slot packing of a column.

Timing rules are data
---------------------
:data:`RULES` holds every DRAM/PIM timing rule of the channel as one row, the way Ramulator 2's
``populate_timingcons`` and ``accel.traces.AIM_RULES`` write them: ``rule | level | preceding | following |
latency | options``. A following command may issue ``latency`` cycles after the last preceding command at the same
*level* (``bank``: a bank it acts on, ``bg``: a bank group it acts on, ``ch``: the channel) at the earliest.
:func:`compile_rules` turns the table into what the three views need (:class:`ChannelRules`): the per-cycle model's
countdown counters and checks, the engine's timestamps and run steps, the RTL's counters (generated at
elaboration), the rule codes (:data:`PimRule`) and the messages. A row added to the table is enforced and tested by
all of them without further edits.

Columns
~~~~~~~
``rule``
    The rule's name; its code (``error_code``) is given by its first row's place in the table (codes 1, 2, ...,
    skipping the codes of the illegal-command rules, :data:`ILLEGAL_CODES`). Several rows may share a rule.
``level``
    ``bank``, ``bg`` or ``ch``. The banks a command acts on are :data:`BANK_TARGETS` (an all-bank command is in every
    bank and every group; PRE acts only on banks with an open row; REF on every bank).
``preceding``, ``following``
    PIM ops (``accel.isa.PimOp`` names).
``latency``
    A sum or difference of :class:`~accel.config.PimTiming` names (fields such as ``nRCD`` or derived properties such
    as ``write_recovery``) and integers, or ``terms`` (plus or minus integers): the MAC terms of the preceding
    command's bank (bit-serial lanes: one signed term per weight per cycle, ``terms(datatype)`` cycles per column;
    bit-parallel lanes: 1), read from the bank's datatype register when the preceding command issues. A latency of
    one cycle or less never binds (one command element issues per cycle) and is left out.
``options`` (optional, ``key=value`` separated by spaces)
    ``window=N`` (Ramulator's window): the following command counts from the N-th latest preceding command (tFAW:
    ``window=4``, at most four activates in any ``nFAW`` cycles). ``all_bank=only``: only the all-bank forms of the
    commands take part; ``all_bank=never``: only the single-bank forms; ``all_bank=<PimTiming flag>``: the all-bank
    forms take part only if the preset sets the flag (GDDR6-AiM applies no tFAW to its all-bank activate:
    ``all_bank=faw_all_bank``). Default (``yes``): both forms.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from accel.config import BitSerialConfig, PimConfig, PimTiming
from accel.errors import AccelError, StimulusError, TimingError
from accel.isa import PimOp
from accel.numerics import DATATYPES

__all__ = [
    "ACC_BITS", "CFR_DTYPE", "CFR_SCALE", "CFR_CHANNEL_REGS", "CFR_REGISTERS", "BANK_TARGETS", "ALL_BANK_OPS",
    "RUN_OPS", "LEVELS", "DYNAMIC_LATENCY", "RULES", "TimingRule", "RuleTable", "RuleTableError", "parse_rules",
    "PIM_TIMING_RULES", "ILLEGAL_CODES", "rule_codes", "rule_enum", "PimRule", "ILLEGAL_RULES", "ERROR_CODE_BITS",
    "error_code_bits", "PimTimingError", "PimIllegalError", "describe", "timing_message", "illegal_message",
    "Source", "Row", "ChannelRules", "compile_rules", "acc_bits", "lane_terms", "reset_dtype", "max_terms",
    "rdata_bits", "pack_slots", "unpack_slots",
]

#: Width of one lane's MAC register as RDMAC reads it (bits, two's complement); bit-parallel lanes accumulate in it,
#: bit-serial lanes in ``bitserial.acc_bits`` (:func:`acc_bits`), sign-extended or truncated to it on RDMAC.
ACC_BITS = 32
#: Per-bank configuration registers written by CFR (``col`` = register, ``row`` = value).
CFR_DTYPE = 8   #: bit-serial datatype code of the bank's MAC lanes (``accel.config.BITSERIAL_DATATYPES`` order)
CFR_SCALE = 9   #: unsigned group scale of the bank's MAC lanes
#: Channel registers of the AiM host interface (0 broadcast, 1 EWMUL bank groups, 2 activation function): stored,
#: no effect on MAC numerics or timing here.
CFR_CHANNEL_REGS = (0, 1, 2)
#: Every register CFR may write.
CFR_REGISTERS = (*CFR_CHANNEL_REGS, CFR_DTYPE, CFR_SCALE)

#: The banks a command acts on, for the timing rules: ``addressed`` (its ``bank``, every bank if ``all_banks``),
#: ``bank`` (its ``bank``: RD has no all-bank form, RDMAC's is a run over the banks), ``open`` (as ``addressed``,
#: but only banks with an open row: a PRE of a closed bank does nothing), ``all`` (every bank), ``none``.
BANK_TARGETS: dict[PimOp, str] = {
    PimOp.NOP: "none", PimOp.ACT: "addressed", PimOp.PRE: "open", PimOp.RD: "bank", PimOp.WR: "addressed",
    PimOp.WRGB: "none", PimOp.MAC: "addressed", PimOp.RDMAC: "bank", PimOp.CLRMAC: "addressed", PimOp.REF: "all",
    PimOp.CFR: "addressed",
}
#: Ops whose ``all_banks`` flag changes the banks they act on (their all-bank *form*).
ALL_BANK_OPS = frozenset(op for op, k in BANK_TARGETS.items() if k in ("addressed", "open"))
#: Ops whose ``count`` makes a run of elements (``col`` or, for RDMAC, ``bank`` advancing), issued in closed form
#: by the engine.
RUN_OPS = frozenset({PimOp.RD, PimOp.WR, PimOp.WRGB, PimOp.MAC, PimOp.RDMAC})
LEVELS = ("bank", "bg", "ch")
#: The latency that is the preceding command's bank state, not a parameter (see the module docstring).
DYNAMIC_LATENCY = "terms"

#: Every timing rule of the PIM channel (format: module docstring). GDDR6 facts after Ramulator 2's GDDR6.cpp and the
#: AiM simulator; nRCD_MAC, nCCD_AB and the bit-serial MAC pace are the PIM additions (docs/pim.md).
RULES = """
# rule   | level | preceding            | following            | latency                          | options
RCD_RD   | bank  | ACT                  | RD                   | nRCD
RCD_WR   | bank  | ACT                  | WR                   | nRCDWR
RCD_MAC  | bank  | ACT                  | MAC                  | nRCD_MAC
RP       | bank  | PRE                  | ACT REF              | nRP
RAS      | bank  | ACT                  | PRE                  | nRAS
RC       | bank  | ACT                  | ACT                  | nRC
RRD_S    | ch    | ACT                  | ACT                  | nRRDS
RRD_L    | bg    | ACT                  | ACT                  | nRRDL
FAW      | ch    | ACT                  | ACT                  | nFAW                             | window=4 all_bank=faw_all_bank
CCD_S    | ch    | RD WR MAC WRGB RDMAC | RD WR MAC WRGB RDMAC | nCCDS
CCD_L    | bg    | RD WR MAC            | RD WR MAC            | nCCDL
CCD_AB   | ch    | MAC                  | MAC                  | nCCD_AB                          | all_bank=only
WR       | bank  | WR                   | PRE                  | write_recovery
RTP      | bank  | RD MAC               | PRE                  | nRTP
RFC      | ch    | REF                  | ACT REF              | nRFC
BUS      | ch    | RD                   | RD                   | nBL
BUS      | ch    | RD                   | RDMAC                | rd_latency + nBL - rdmac_latency
BUS      | ch    | RDMAC                | RD                   | rdmac_latency + nBL - rd_latency
BUS      | ch    | RDMAC                | RDMAC                | nBL
MAC_BUSY | bank  | MAC                  | MAC                  | terms
"""

#: Codes of the rules that make a command illegal whatever its cycle (an error in wait mode too). They were numbered
#: before MAC_BUSY was added, so timing rules skip them.
ILLEGAL_CODES: dict[str, int] = {"CLOSED": 17, "OPEN": 18, "ADDRESS": 19, "CFR_VALUE": 20, "OPCODE": 21}


class RuleTableError(AccelError, ValueError):
    """A timing-rule table row that cannot be enforced as written."""


def _timing_names() -> tuple[frozenset[str], frozenset[str]]:
    """(cycle counts a latency may name: integer fields and integer properties, flags an ``all_bank`` option may
    name: boolean fields) of PimTiming."""
    ints, flags = set(), set()
    for f in fields(PimTiming):
        if f.type in ("bool", bool):
            flags.add(f.name)
        elif f.type in ("int", int):
            ints.add(f.name)
    ints |= {n for n, v in vars(PimTiming).items()
             if isinstance(v, property) and v.fget.__annotations__.get("return") in ("int", int)}
    return frozenset(ints), frozenset(flags)


_INT_NAMES, _FLAGS = _timing_names()
_TOKEN = re.compile(r"\s*([+-]|[A-Za-z_][A-Za-z0-9_]*|\d+)\s*")


def _parse_latency(text: str, where: str) -> tuple[tuple[int, str | int], ...]:
    """``"nCWL + nBL - 2"`` -> ``((1, "nCWL"), (1, "nBL"), (-1, 2))``; ``"terms"`` -> ``((1, "terms"),)``."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise RuleTableError(f"{where}: latency {text!r}: cannot read {text[pos:]!r}; write a sum of PimTiming "
                                 f"names and integers, e.g. 'nCWL + nBL + nWR'")
        tokens.append(m.group(1))
        pos = m.end()
    if tokens and tokens[0] not in "+-":
        tokens.insert(0, "+")
    if not tokens or len(tokens) % 2 or any(tokens[i] not in ("+", "-") for i in range(0, len(tokens), 2)):
        raise RuleTableError(f"{where}: latency {text!r} must be terms joined by + or -")
    terms: list[tuple[int, str | int]] = []
    for sign, tok in zip(tokens[::2], tokens[1::2]):
        if tok in ("+", "-"):
            raise RuleTableError(f"{where}: latency {text!r}: {tok!r} where a term was expected")
        if not tok.isdigit() and tok != DYNAMIC_LATENCY and tok not in _INT_NAMES:
            raise RuleTableError(f"{where}: latency {text!r}: {tok!r} is not a PimTiming cycle count; use one of "
                                 f"{', '.join(sorted(_INT_NAMES))} or {DYNAMIC_LATENCY!r}")
        terms.append((1 if sign == "+" else -1, int(tok) if tok.isdigit() else tok))
    if any(t == DYNAMIC_LATENCY for _, t in terms) and (
            (-1, DYNAMIC_LATENCY) in terms or sum(t == DYNAMIC_LATENCY for _, t in terms) > 1
            or any(isinstance(t, str) and t != DYNAMIC_LATENCY for _, t in terms)):
        raise RuleTableError(f"{where}: latency {text!r}: {DYNAMIC_LATENCY!r} takes only integers beside it (it is "
                             f"a bank's state, not a parameter)")
    return tuple(terms)


@dataclass(frozen=True)
class TimingRule:
    """One row of the timing-rule table (columns: the module docstring).

    Parameters
    ----------
    rule:
        The rule's name (its :data:`PimRule` member).
    level:
        ``"bank"``, ``"bg"`` or ``"ch"``.
    preceding, following:
        PIM ops.
    latency:
        Cycles, as a sum of PimTiming names and integers, or ``"terms"``.
    window:
        The following command counts from the ``window``-th latest preceding command.
    all_bank:
        ``"yes"``, ``"only"``, ``"never"`` or the name of a PimTiming flag (see the module docstring).
    """

    rule: str
    level: str
    preceding: tuple[PimOp, ...]
    following: tuple[PimOp, ...]
    latency: str
    window: int = 1
    all_bank: str = "yes"

    def __post_init__(self) -> None:
        where = f"timing rule {self.rule}"
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", self.rule) or self.rule == "NONE" or self.rule in ILLEGAL_CODES:
            raise RuleTableError(f"{where}: the name must be upper case (A-Z, 0-9, _), not NONE or an illegal-command "
                                 f"rule ({', '.join(ILLEGAL_CODES)})")
        if self.level not in LEVELS:
            raise RuleTableError(f"{where}: level {self.level!r} must be one of {', '.join(LEVELS)}")
        for side, ops in (("preceding", self.preceding), ("following", self.following)):
            if not ops or not all(isinstance(o, PimOp) and o != PimOp.NOP for o in ops):
                raise RuleTableError(f"{where}: {side} must name PIM ops other than NOP, not {ops!r}")
            if self.level != "ch":
                for o in ops:
                    if BANK_TARGETS[o] == "none" or o == PimOp.RDMAC:
                        raise RuleTableError(
                            f"{where}: {o.name} cannot be at level {self.level} ("
                            + ("it acts on no bank" if BANK_TARGETS[o] == "none" else
                               "its all-bank form is a run over the banks, issued in closed form")
                            + "); use level ch")
        terms = _parse_latency(self.latency, where)
        dynamic = any(t == DYNAMIC_LATENCY for _, t in terms)
        if dynamic and self.level != "bank":
            raise RuleTableError(f"{where}: latency {DYNAMIC_LATENCY!r} is a bank's state; it needs level bank")
        if not isinstance(self.window, int) or self.window < 1:
            raise RuleTableError(f"{where}: window={self.window!r} must be a positive integer")
        if self.window > 1:
            if self.level != "ch" or dynamic:
                raise RuleTableError(f"{where}: a window rule needs level ch and a latency of PimTiming names")
            runs = [o.name for o in (*self.preceding, *self.following) if o in RUN_OPS]
            if runs:
                raise RuleTableError(f"{where}: a window rule cannot name run commands ({', '.join(runs)}): a run "
                                     f"issues in closed form, one step apart")
        if self.all_bank != "yes":
            if self.all_bank not in ("only", "never") and self.all_bank not in _FLAGS:
                raise RuleTableError(f"{where}: all_bank={self.all_bank!r} must be 'yes', 'only', 'never' or a "
                                     f"PimTiming flag ({', '.join(sorted(_FLAGS))})")
            plain = [o.name for o in (*self.preceding, *self.following) if o not in ALL_BANK_OPS]
            if plain:
                raise RuleTableError(f"{where}: all_bank={self.all_bank} names ops without an all-bank form "
                                     f"({', '.join(plain)})")

    @property
    def dynamic(self) -> bool:
        """The latency is the preceding command's bank state (``terms``), not a parameter."""
        return any(t == DYNAMIC_LATENCY for _, t in _parse_latency(self.latency, self.rule))

    @property
    def offset(self) -> int:
        """The integers of a dynamic latency (cycles beside ``terms``)."""
        return sum(s * t for s, t in _parse_latency(self.latency, self.rule) if isinstance(t, int))

    def cycles(self, timing: PimTiming) -> int | None:
        """The latency in cycles for ``timing`` (None: dynamic)."""
        if self.dynamic:
            return None
        return sum(s * (getattr(timing, t) if isinstance(t, str) else t)
                   for s, t in _parse_latency(self.latency, self.rule))

    def forms(self, timing: PimTiming, side: str) -> frozenset[tuple[int, int]]:
        """The ``(op, all_banks)`` pairs of ``side`` (``"preceding"`` or ``"following"``) that take part."""
        if self.all_bank == "yes":
            ab = (0, 1)
        elif self.all_bank == "only":
            ab = (1,)
        elif self.all_bank == "never":
            ab = (0,)
        else:
            ab = (0, 1) if getattr(timing, self.all_bank) else (0,)
        # an op without an all-bank form acts on the same banks whatever its flag says
        return frozenset((int(o), a) for o in getattr(self, side) for a in (ab if o in ALL_BANK_OPS else (0, 1)))

    def columns(self) -> tuple[str, str, str, str, str, str]:
        """The row's columns as :data:`RULES` writes them (options empty when there are none)."""
        opts = " ".join(([f"window={self.window}"] if self.window > 1 else [])
                        + ([f"all_bank={self.all_bank}"] if self.all_bank != "yes" else []))
        return (self.rule, self.level, " ".join(o.name for o in self.preceding),
                " ".join(o.name for o in self.following), self.latency, opts)

    def text(self) -> str:
        """The row as a line of :data:`RULES`."""
        return " | ".join(c for c in self.columns() if c)


class RuleTable(tuple):
    """A timing-rule table: a tuple of :class:`TimingRule` rows whose hash is computed once (tables key the caches
    of compiled tables, consulted whenever a channel model or engine is built)."""

    def __hash__(self) -> int:
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = tuple.__hash__(self)
        return h

    @classmethod
    def of(cls, rules: Iterable[TimingRule]) -> "RuleTable":
        """``rules`` as a table (itself if it is one)."""
        return rules if isinstance(rules, RuleTable) else cls(rules)


def parse_rules(text: str) -> RuleTable:
    """Rows of a rule table in the text form of :data:`RULES` (``#`` starts a comment)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cols = [c.strip() for c in line.split("|")]
        if len(cols) not in (5, 6):
            raise RuleTableError(f"rule table line {n}: {line!r} has {len(cols)} columns; write 'rule | level | "
                                 f"preceding | following | latency [| options]'")
        rule, level, pre, fol, lat = cols[:5]
        opts: dict[str, Any] = {}
        for item in (cols[5].split() if len(cols) == 6 else []):
            key, eq, value = item.partition("=")
            if not eq or key not in ("window", "all_bank"):
                raise RuleTableError(f"rule table line {n}: option {item!r} must be window=N or all_bank=...")
            if key == "window":
                if not value.isdigit():
                    raise RuleTableError(f"rule table line {n}: window={value!r} must be a positive integer")
                opts[key] = int(value)
            else:
                opts[key] = value

        def ops(names: str) -> tuple[PimOp, ...]:
            try:
                return tuple(PimOp[x] for x in names.split())
            except KeyError as e:
                raise RuleTableError(f"rule table line {n}: {e.args[0]!r} is not a PIM op "
                                     f"({', '.join(o.name for o in PimOp)})") from None

        out.append(TimingRule(rule, level, ops(pre), ops(fol), lat, **opts))
    return RuleTable(out)


#: The channel's timing rules, parsed from :data:`RULES`.
PIM_TIMING_RULES: RuleTable = parse_rules(RULES)


def rule_codes(rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> dict[str, int]:
    """Rule name -> ``error_code``: timing rules in order of their first row from 1, skipping the illegal rules'
    codes; then the illegal rules."""
    codes: dict[str, int] = {}
    taken = set(ILLEGAL_CODES.values())
    nxt = 1
    for r in rules:
        if r.rule not in codes:
            while nxt in taken:
                nxt += 1
            codes[r.rule] = nxt
            nxt += 1
    return {**codes, **ILLEGAL_CODES}


@lru_cache(maxsize=None)
def rule_enum(rules: tuple[TimingRule, ...] = PIM_TIMING_RULES) -> type[enum.IntEnum]:
    """The rule codes of a table as an ``IntEnum`` (``NONE`` = 0: no error); one class per table (``rules``: a
    tuple or :class:`RuleTable`)."""
    members = sorted([("NONE", 0), *rule_codes(rules).items()], key=lambda kv: kv[1])
    return enum.IntEnum("PimRule", members, module=__name__)


#: Rules a command can break, with the ``error_code`` the channel raises for each (0: no error). When several are
#: broken at once, the lowest code is reported. Derived from :data:`PIM_TIMING_RULES` and :data:`ILLEGAL_CODES`.
PimRule = rule_enum(PIM_TIMING_RULES)
#: Rules that make a command illegal whatever the cycle (an error in wait mode too).
ILLEGAL_RULES = frozenset(PimRule[n] for n in ILLEGAL_CODES)


def error_code_bits(rules: tuple[TimingRule, ...] = PIM_TIMING_RULES) -> int:
    """Width of the ``error_code`` port: enough for every code of the table."""
    return max(rule_codes(rules).values()).bit_length()


ERROR_CODE_BITS = error_code_bits()


# --------------------------------------------------------------------------------------------------------------------
# errors and messages

class PimTimingError(TimingError):
    """A command issued before a timing rule allows it; ``rule``, ``missing`` (cycles), ``bank``, ``cycle``."""

    def __init__(self, message: str, rule: enum.IntEnum, missing: int, bank: int | None, cycle: int) -> None:
        super().__init__(message)
        self.rule, self.missing, self.bank, self.cycle = rule, missing, bank, cycle


class PimIllegalError(StimulusError):
    """A command that is illegal whatever its cycle (RD to a closed bank, bank out of range, ...)."""

    def __init__(self, message: str, rule: enum.IntEnum, bank: int | None, cycle: int) -> None:
        super().__init__(message)
        self.rule, self.bank, self.cycle, self.missing = rule, bank, cycle, 0


def describe(op: PimOp, f: dict[str, int]) -> str:
    """A command in the text form of traces: ``MAC all_banks=1 col=0 count=64``."""
    args = " ".join(f"{k}={v}" for k, v in f.items() if v and k != "channel")
    return f"{op.name} {args}".rstrip()


def timing_message(op: PimOp, f: dict[str, int], rule: enum.IntEnum, row: TimingRule, missing: int,
                   bank: int | None, cycle: int) -> str:
    """The message of a :class:`PimTimingError`: the command, the cycle, the bank, the rule and its latency (the
    binding row's), the cycles missing and the fix."""
    where = f" bank {bank}:" if bank is not None else ""
    return (f"{describe(op, f)} at cycle {cycle}:{where} rule {rule.name} ({row.latency}) is {missing} "
            f"cycle{'s' if missing != 1 else ''} short; issue it at cycle {cycle + missing} or later, or run the "
            f"channel in wait mode (strict=0)")


def illegal_message(rule: enum.IntEnum, bank: int | None, pim: PimConfig) -> str:
    """Why a command is illegal (``rule`` one of :data:`ILLEGAL_RULES`) and what to do."""
    where = f"bank {bank}" if bank is not None else "the command"
    return {
        "CLOSED": f"{where} has no open row; ACT a row first",
        "OPEN": f"{where} already has an open row; PRE it first",
        "ADDRESS": (f"{where} addresses outside the channel (banks 0..{pim.banks - 1}, rows 0..{pim.rows - 1}, "
                    f"columns 0..{pim.columns - 1}, global buffer columns 0..{pim.gb_columns - 1}, CFR "
                    f"registers {', '.join(map(str, CFR_REGISTERS))}; RD has no all-bank form)"),
        "CFR_VALUE": "the CFR value is not allowed (a datatype the lanes are not built for, or a scale wider "
                     "than scale_bits)",
        "OPCODE": "not a PIM command word; encode it with accel.isa.encode('pim', ...)",
    }[rule.name]


# --------------------------------------------------------------------------------------------------------------------
# the table compiled for one channel

@dataclass(frozen=True)
class Source:
    """What one group of rows counts from: a countdown counter (model, RTL) or a timestamp (engine) per instance of
    its level, set when a command of ``preceding`` issues. Rows with the same level, preceding forms and window share
    one source; each checks it against its own latency (threshold ``length - latency``).

    Members
    -------
    index:
        Position in :attr:`ChannelRules.sources`.
    level:
        ``bank``, ``bg`` or ``ch``.
    preceding:
        ``(op, all_banks)`` pairs that set it.
    length:
        Cycles it counts (the longest latency of its rows; dynamic sources: the most MAC terms plus ``offset``).
    window:
        Preceding commands it remembers (a ring of counters/timestamps; 1: the latest).
    dynamic:
        Set to the bank's MAC terms plus ``offset`` instead of ``length``.
    offset:
        Dynamic sources: the integers of their rows' latency (rows with other integers have their own source).
    """

    index: int
    level: str
    preceding: frozenset[tuple[int, int]]
    length: int
    window: int
    dynamic: bool
    offset: int = 0

    @property
    def name(self) -> str:
        ops = sorted({PimOp(o).name.lower() for o, _ in self.preceding})
        forms = {ab for _, ab in self.preceding}
        return ("_".join(ops) + ("_ab" if forms == {1} else "") + f"_{self.level}"
                + (f"_w{self.window}" if self.window > 1 else ""))


@dataclass(frozen=True)
class Row:
    """One table row compiled for a channel: its rule code, source, following forms, latency (cycles; None:
    dynamic) and threshold (the row is broken while its source's counter exceeds it)."""

    index: int
    rule: TimingRule
    code: int
    source: Source
    following: frozenset[tuple[int, int]]
    latency: int | None
    threshold: int


class ChannelRules:
    """A rule table compiled for one channel configuration (:func:`compile_rules`); shared by the model, the engine
    and the RTL.

    Members
    -------
    pim, rules:
        The configuration and the table.
    codes:
        The table's rule codes (an ``IntEnum``; :data:`PimRule` for the default table).
    error_code_bits:
        Width of ``error_code``.
    rows:
        The rows that can bind (latency above one cycle), compiled.
    sources:
        Their sources.
    rows_for:
        ``(op, all_banks)`` -> the rows that command must respect, in code order.
    sources_for:
        ``(op, all_banks)`` -> the sources that command sets.
    horizon:
        Cycles after which no rule reaches (the longest latency, plus one).
    """

    def __init__(self, pim: PimConfig, max_terms: int, rules: tuple[TimingRule, ...]) -> None:
        self.pim, self.rules, self.max_terms = pim, rules, max_terms
        self.codes = rule_enum(rules)
        self.error_code_bits = error_code_bits(rules)
        t = pim.timing
        keyed: dict[tuple, list[tuple[int, TimingRule, int | None]]] = {}
        for i, r in enumerate(rules):
            lat = r.cycles(t)
            offset = r.offset if lat is None else 0
            if (max_terms + offset if lat is None else lat) <= 1:
                continue   # never binds: one element per cycle
            key = (r.level, r.forms(t, "preceding"), r.window, lat is None, offset)
            keyed.setdefault(key, []).append((i, r, lat))
        sources, rows = [], []
        for (level, pre, window, dynamic, offset), members in keyed.items():
            length = max_terms + offset if dynamic else max(lat for _, _, lat in members)
            s = Source(len(sources), level, pre, length, window, dynamic, offset)
            sources.append(s)
            for i, r, lat in members:
                rows.append(Row(i, r, int(self.codes[r.rule]), s, r.forms(t, "following"), lat,
                                0 if lat is None else length - lat))
        rows.sort(key=lambda r: (r.code, r.index))
        self.sources: tuple[Source, ...] = tuple(sources)
        self.rows: tuple[Row, ...] = tuple(rows)
        forms = [(int(o), ab) for o in PimOp for ab in (0, 1)]
        self.rows_for = {f: tuple(r for r in rows if f in r.following) for f in forms}
        self.sources_for = {f: tuple(s for s in sources if f in s.preceding) for f in forms}
        self.horizon = max([s.length for s in sources], default=0) + 1
        self._steps = {f: self._step(*f) for f in forms}

    def _step(self, op: int, ab: int) -> tuple[int, int | None]:
        if PimOp(op) not in RUN_OPS:
            return 1, None
        # consecutive elements of a run act on the same banks (RDMAC, which moves over banks, is at level ch only)
        own = [r for r in self.rows_for[(op, ab)] if (op, ab) in r.source.preceding]
        dyn = [r.source.offset for r in own if r.latency is None]
        return max([1] + [r.latency for r in own if r.latency is not None]), max(dyn) if dyn else None

    def step(self, op: int, ab: int) -> int:
        """Cycles between consecutive elements of a run (the run's own rules; see :meth:`dynamic_step`)."""
        return self._steps[(op, ab)][0]

    def dynamic_step(self, op: int, ab: int) -> int | None:
        """If a run's step also waits for its banks' MAC terms (a dynamic row from the op to itself): the cycles
        added to the terms; else None."""
        return self._steps[(op, ab)][1]

    def worst(self, found: Iterable[tuple[Row, int, int | None]]) -> list[tuple[enum.IntEnum, int, int | None, Row]]:
        """Per rule, the row with the largest value (cycles missing, or first legal cycle) of ``(row, value, bank)``
        findings (the first such row on ties), in code order: ``(rule, value, bank, row)``."""
        best: dict[int, tuple[Row, int, int | None]] = {}
        for row, v, bank in found:
            b = best.get(row.code)
            if b is None or v > b[1]:
                best[row.code] = (row, v, bank)
        return [(self.codes(c), v, bank, row) for c, (row, v, bank) in sorted(best.items())]


def compile_rules(pim: PimConfig, max_terms: int = 1,
                  rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> ChannelRules:
    """The rule table compiled for ``pim`` (``max_terms``: the most MAC terms a bank's lanes take per column,
    :func:`max_terms`). Cached: equal arguments give the same object."""
    return _compile(pim, max_terms, RuleTable.of(rules))


@lru_cache(maxsize=64)
def _compile(pim: PimConfig, max_terms: int, rules: RuleTable) -> ChannelRules:
    return ChannelRules(pim, max_terms, rules)


# --------------------------------------------------------------------------------------------------------------------
# MAC lanes, read port, column slots

def _bitserial(pim: PimConfig, bitserial: BitSerialConfig | None) -> BitSerialConfig | None:
    return bitserial if pim.lane == "bitserial" else None


def acc_bits(pim: PimConfig, bitserial: BitSerialConfig | None) -> int:
    """Width of a lane's accumulator (bits): the bit-serial unit's ``acc_bits``, or :data:`ACC_BITS`."""
    bs = _bitserial(pim, bitserial)
    return bs.acc_bits if bs is not None else ACC_BITS


@lru_cache(maxsize=64)
def lane_terms(pim: PimConfig, bitserial: BitSerialConfig | None) -> Mapping[int, int]:
    """Datatype code -> cycles a bank's bit-serial lanes spend per column (signed terms: INT8 4, INT4/INT3/FP 2);
    empty for bit-parallel lanes (one cycle). Read-only (cached)."""
    bs = _bitserial(pim, bitserial)
    if bs is None:
        return MappingProxyType({})
    return MappingProxyType({code: DATATYPES[name].terms for name, code in bs.dtype_codes.items()})


def max_terms(pim: PimConfig, bitserial: BitSerialConfig | None) -> int:
    """The most cycles a column takes on the lanes (1 for bit-parallel lanes)."""
    return max(lane_terms(pim, bitserial).values(), default=1)


@lru_cache(maxsize=64)
def reset_dtype(pim: PimConfig, bitserial: BitSerialConfig | None) -> int:
    """The datatype code a bank's CFR_DTYPE register holds after reset: the first built datatype (0 for bit-parallel
    lanes)."""
    bs = _bitserial(pim, bitserial)
    return bs.dtype_codes[bs.datatypes[0]] if bs is not None else 0


def rdata_bits(pim: PimConfig) -> int:
    """Width of the read data port: a column or one bank's MAC register (``mac_lanes`` x :data:`ACC_BITS`),
    whichever is wider."""
    return max(pim.column_bits, pim.mac_lanes * ACC_BITS)


def unpack_slots(word: int, lanes: int, slot_bits: int) -> np.ndarray:
    """A column word -> its ``lanes`` slots (unsigned), lane 0 in the low bits."""
    mask = (1 << slot_bits) - 1
    return np.array([(word >> (i * slot_bits)) & mask for i in range(lanes)], dtype=np.int64)


def pack_slots(slots: Any, slot_bits: int) -> int:
    """Slots -> a column word, slot 0 in the low bits (each slot truncated to ``slot_bits``)."""
    mask = (1 << slot_bits) - 1
    out = 0
    for i, s in enumerate(slots):
        out |= (int(s) & mask) << (i * slot_bits)
    return out
