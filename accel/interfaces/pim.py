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
    as ``write_recovery``), of the bank MAC unit's ``drain`` (:attr:`accel.config.BankUnit.drain`: cycles until a
    MAC's results are in the MAC register) and integers, or ``terms`` (plus or minus integers): the cycles the
    preceding command's bank spends on a MAC column (:meth:`accel.config.BankUnit.cycles_per_column` of the bank's
    format register when the preceding command issues: a bit-serial unit's beats times the format's terms, or the
    int8 lanes' cycles). A latency of one cycle or less never binds (one command element issues per cycle) and is
    left out.
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
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from accel.config import BankUnit, PimConfig, PimTiming
from accel.errors import AccelError, StimulusError, TimingError
from accel.isa import PimOp
from accel.numerics import DATATYPES

__all__ = [
    "ACC_BITS", "CFR_FORMAT", "CFR_CHANNEL_REGS", "CFR_REGISTERS", "BANK_TARGETS", "ALL_BANK_OPS",
    "RUN_OPS", "LEVELS", "DYNAMIC_LATENCY", "LANE_LATENCIES", "RULES", "TimingRule", "RuleTable", "RuleTableError",
    "parse_rules", "PIM_TIMING_RULES", "ILLEGAL_CODES", "rule_codes", "rule_enum", "PimRule", "ILLEGAL_RULES",
    "ERROR_CODE_BITS", "error_code_bits", "PimTimingError", "PimIllegalError", "describe", "timing_message",
    "illegal_message", "Source", "Row", "ChannelRules", "compile_rules", "acc_bits", "format_pace", "rdata_bits",
    "pack_words", "unpack_words", "column_bytes", "column_word", "column_fields", "pack_fields", "beat_of",
    "entry_index", "unpack_entry", "unpack_entries", "pack_entries", "entry_datatype", "granule_layout", "mac_weights",
    "MacWork", "stream_mac_work", "timing_signature",
]

#: Width of one lane's MAC register as RDMAC reads it (bits, two's complement); bit-parallel lanes accumulate in it,
#: bit-serial lanes in ``bitserial.acc_bits`` (:func:`acc_bits`), sign-extended or truncated to it on RDMAC.
ACC_BITS = 32
#: The per-bank configuration register written by CFR (``col`` = register, ``row`` = value): the bank's column
#: format (code storage bits, one of :attr:`accel.config.BankUnit.formats`). The groups' datatypes and scales are not
#: registers: they are metadata in the DRAM rows, read by the bank (docs/pim.md). The format stays a register because
#: it sets the MAC pace (the MAC_BUSY rule), which the command stream's scheduler must know without reading DRAM.
CFR_FORMAT = 8
#: Channel registers of the AiM host interface (0 broadcast, 1 EWMUL bank groups, 2 activation function): stored,
#: no effect on MAC numerics or timing here.
CFR_CHANNEL_REGS = (0, 1, 2)
#: Every register CFR may write.
CFR_REGISTERS = (*CFR_CHANNEL_REGS, CFR_FORMAT)

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
#: Latencies that are properties of the bank's MAC unit (:class:`accel.config.BankUnit`), fixed per channel.
LANE_LATENCIES = ("drain",)

#: Every timing rule of the PIM channel (format: module docstring). GDDR6 facts after Ramulator 2's GDDR6.cpp and the
#: AiM simulator; nRCD_MAC, nCCD_AB, the MAC pace and the MAC drain are the PIM additions (docs/pim.md).
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
MAC_DRAIN | ch   | MAC                  | RDMAC                | drain
MAC_DRAIN | bank | MAC                  | CLRMAC               | drain
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
        if not tok.isdigit() and tok != DYNAMIC_LATENCY and tok not in _INT_NAMES and tok not in LANE_LATENCIES:
            raise RuleTableError(f"{where}: latency {text!r}: {tok!r} is not a PimTiming cycle count; use one of "
                                 f"{', '.join(sorted(_INT_NAMES))}, {', '.join(LANE_LATENCIES)} or "
                                 f"{DYNAMIC_LATENCY!r}")
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

    def cycles(self, timing: PimTiming, unit: BankUnit | None = None) -> int | None:
        """The latency in cycles for ``timing`` and the bank MAC unit ``unit`` (needed when the latency names one
        of :data:`LANE_LATENCIES`); None: dynamic."""
        if self.dynamic:
            return None

        def value(t: str | int) -> int:
            if isinstance(t, int):
                return t
            if t in LANE_LATENCIES:
                if unit is None:
                    raise RuleTableError(f"timing rule {self.rule}: latency {self.latency!r} names the bank MAC "
                                         f"unit's {t!r}; give the BankUnit")
                return getattr(unit, t)
            return getattr(timing, t)

        return sum(s * value(t) for s, t in _parse_latency(self.latency, self.rule))

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
        "CFR_VALUE": f"the CFR value is not allowed (register {CFR_FORMAT}, the bank's format, takes one of the "
                     f"column formats its MAC unit reads: the storage bits of its datatypes)",
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
    unit, pim, rules:
        The bank MAC unit (:class:`~accel.config.BankUnit`), its channel configuration and the table.
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

    def __init__(self, unit: BankUnit, rules: tuple[TimingRule, ...]) -> None:
        pim = unit.pim
        max_terms = unit.max_pace
        self.unit, self.pim, self.rules, self.max_terms = unit, pim, rules, max_terms
        self.codes = rule_enum(rules)
        self.error_code_bits = error_code_bits(rules)
        t = pim.timing
        keyed: dict[tuple, list[tuple[int, TimingRule, int | None]]] = {}
        for i, r in enumerate(rules):
            lat = r.cycles(t, unit)
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


def compile_rules(unit: BankUnit, rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> ChannelRules:
    """The rule table compiled for the channel of banks with MAC unit ``unit`` (its configuration, its MAC pace and
    drain). Cached: equal arguments give the same object."""
    return _compile(unit, RuleTable.of(rules))


@lru_cache(maxsize=64)
def _compile(unit: BankUnit, rules: RuleTable) -> ChannelRules:
    return ChannelRules(unit, rules)


# --------------------------------------------------------------------------------------------------------------------
# The MAC unit, the read port, the column layout (docs/pim.md, "Data layout")

def acc_bits(unit: BankUnit) -> int:
    """Width of one MAC-register accumulator (bits): the bit-serial units' ``acc_bits``, or :data:`ACC_BITS`."""
    return unit.bitserial.acc_bits if unit.bitserial is not None else ACC_BITS


@lru_cache(maxsize=64)
def format_pace(unit: BankUnit) -> Mapping[int, int]:
    """Column format -> cycles a MAC column of it keeps the bank busy (the MAC_BUSY rule's ``terms``). Read-only."""
    return MappingProxyType({f: unit.cycles_per_column(f) for f in unit.formats})


def rdata_bits(unit: BankUnit) -> int:
    """Width of the read data port: a column or one bank's MAC register (``mac_registers`` x :data:`ACC_BITS`),
    whichever is wider."""
    return max(unit.pim.column_bits, unit.mac_registers * ACC_BITS)


def unpack_words(word: int, n: int, bits: int) -> np.ndarray:
    """A wide word -> its ``n`` fields of ``bits`` (unsigned), field 0 in the low bits."""
    mask = (1 << bits) - 1
    return np.array([(word >> (i * bits)) & mask for i in range(n)], dtype=np.int64)


def pack_words(values: Any, bits: int) -> int:
    """Fields -> a wide word, field 0 in the low bits (each truncated to ``bits``)."""
    mask = (1 << bits) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * bits)
    return out


def column_bytes(word: int, pim: PimConfig) -> np.ndarray:
    """A column word -> its ``column_bits / 8`` bytes (uint8), byte 0 the low bits."""
    return np.frombuffer(int(word).to_bytes(pim.column_bytes, "little"), dtype=np.uint8).copy()


def column_word(data: Any) -> int:
    """A column's bytes (byte 0 the low bits) -> its word."""
    return int.from_bytes(np.asarray(data, dtype=np.uint8).tobytes(), "little")


def column_fields(data: np.ndarray, fmt: int) -> np.ndarray:
    """Column bytes (``... x column_bytes``, uint8) -> the column's codes in format ``fmt`` (``... x column_bits /
    fmt``, int64): code ``i`` in bits ``[fmt * i, fmt * (i + 1))``."""
    b = np.asarray(data, dtype=np.int64)
    if fmt == 8:
        return b
    if fmt == 4:
        return np.stack([b & 0xF, b >> 4], axis=-1).reshape(*b.shape[:-1], 2 * b.shape[-1])
    raise ValueError(f"column format {fmt!r}: only 4- and 8-bit fields are packed")


def pack_fields(codes: np.ndarray, fmt: int) -> np.ndarray:
    """Codes (``... x column_bits / fmt``) -> column bytes (uint8), the inverse of :func:`column_fields` (each code
    truncated to ``fmt`` bits)."""
    c = np.asarray(codes, dtype=np.int64)
    if fmt == 8:
        return (c & 0xFF).astype(np.uint8)
    if fmt == 4:
        c = (c & 0xF).reshape(*c.shape[:-1], c.shape[-1] // 2, 2)
        return (c[..., 0] | (c[..., 1] << 4)).astype(np.uint8)
    raise ValueError(f"column format {fmt!r}: only 4- and 8-bit fields are packed")


def beat_of(unit: BankUnit, fmt: int, u: Any, m: Any) -> Any:
    """The beat slot ``j`` of a column of format ``fmt`` that unit ``u`` takes as its ``m``-th beat of the column
    (codes ``[j * unit_lanes, (j + 1) * unit_lanes)``, and the activations of the same positions): slots go round the
    active units, ``j = m * active_units + u``. Works elementwise on numpy arrays."""
    return m * unit.active_units(fmt) + u


def entry_index(unit: BankUnit, fmt: int, col: Any, m: Any, u: Any) -> tuple[Any, Any]:
    """``(starts, index)`` of unit ``u``'s ``m``-th beat of data column ``col`` (format ``fmt``): its row-local beat
    position is ``p = (col - metadata_columns) * unit_beats + m``; it starts a group when ``p`` is a multiple of the
    group's beats, and that group's metadata entry is ``(p // beats_per_group) * active_units + u``. Works
    elementwise on numpy arrays."""
    bpg = unit.bitserial.beats_per_group
    p = (col - unit.metadata_columns(fmt)) * unit.unit_beats(fmt) + m
    return p % bpg == 0, (p // bpg) * unit.active_units(fmt) + u


def unpack_entry(unit: BankUnit, meta: int, index: int) -> tuple[int, int]:
    """``(datatype code, scale)`` of entry ``index`` of a metadata register holding ``meta`` (its
    ``max_metadata_columns`` columns, column 0 the low bits; entry ``k`` is bits ``[k * entry_bits, (k + 1) *
    entry_bits)``, the datatype code low); entries past the register read as zeros."""
    bs = unit.bitserial
    e = unit.entry_bits
    if (index + 1) * e > unit.max_metadata_columns * unit.pim.column_bits:
        return 0, 0
    v = (meta >> (index * e)) & ((1 << e) - 1)
    return v & ((1 << bs.dtype_bits) - 1), v >> bs.dtype_bits


def unpack_entries(unit: BankUnit, meta: np.ndarray) -> np.ndarray:
    """Every entry of metadata registers given as bytes (``... x max_metadata_columns * column_bits / 8``, byte 0
    the low bits): ``... x entries x 2`` (datatype code, scale), the entries :func:`unpack_entry` reads
    (vectorised)."""
    bs = unit.bitserial
    e = unit.entry_bits
    n = unit.max_metadata_columns * unit.pim.column_bits // e
    meta = np.asarray(meta, dtype=np.uint8)
    raw = np.unpackbits(meta, axis=-1, bitorder="little")[..., :n * e].reshape(*meta.shape[:-1], n, e)
    v = raw.astype(np.int64) @ (1 << np.arange(e, dtype=np.int64))
    return np.stack([v & ((1 << bs.dtype_bits) - 1), v >> bs.dtype_bits], axis=-1)


def pack_entries(unit: BankUnit, fmt: int, entries: Any) -> list[int]:
    """Metadata entries ``(datatype code, scale)``, in entry order -> the ``metadata_columns(fmt)`` column words of a
    row."""
    bs = unit.bitserial
    e, m = unit.entry_bits, unit.metadata_columns(fmt)
    entries = list(entries)
    if len(entries) * e > m * unit.pim.column_bits:
        raise ValueError(f"{len(entries)} metadata entries do not fit {m} columns")
    word = 0
    for k, (code, scale) in enumerate(entries):
        word |= ((int(code) & ((1 << bs.dtype_bits) - 1)) | (int(scale) << bs.dtype_bits)) << (k * e)
    mask = (1 << unit.pim.column_bits) - 1
    return [(word >> (c * unit.pim.column_bits)) & mask for c in range(m)]


@lru_cache(maxsize=256)
def _format_codes(unit: BankUnit, fmt: int) -> tuple[frozenset[int], int]:
    codes = unit.bitserial.dtype_codes
    names = unit.datatypes_of(fmt)
    return frozenset(codes[n] for n in names), codes[names[0]]


def entry_datatype(unit: BankUnit, fmt: int, code: int) -> int:
    """The datatype a bit-serial unit decodes for an entry's datatype ``code`` in a column of format ``fmt``: the
    code itself if it names a datatype of the format (:meth:`~accel.config.BankUnit.datatypes_of`), else the
    format's first datatype (the bank decodes only its format's datatypes, so a unit never takes more terms than the
    column's pace allows)."""
    ok, first = _format_codes(unit, fmt)
    return code if code in ok else first


@lru_cache(maxsize=64)
def granule_layout(unit: BankUnit, fmt: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the weights of one granule (``granule_columns(fmt)`` columns of format ``fmt``) go when its
    ``groups_per_granule`` groups are consecutive runs of ``group_size`` weights: ``(k, group)``, two
    ``granule_columns x weights_per_column`` arrays of the granule-local weight index each code position holds and
    the granule-local group it belongs to (its metadata entry, counted from the granule's first entry: the granule at
    row slot ``s`` owns entries ``s * groups_per_granule ...``, :func:`entry_index`). Unit ``u``'s ``q``-th beat of the
    granule holds beat ``q mod beats_per_group`` of its group ``(q div beats_per_group) * active_units + u``. int8
    lanes: one column, weights in order, no groups (``group`` all zero). Read-only arrays."""
    gc, wpc = unit.granule_columns(fmt), unit.weights_per_column(fmt)
    d, i = np.meshgrid(np.arange(gc), np.arange(wpc), indexing="ij")
    if unit.bitserial is None:
        k, g = i, np.zeros_like(i)
    else:
        lanes, na, n = unit.unit_lanes, unit.active_units(fmt), unit.unit_beats(fmt)
        bpg, gs = unit.bitserial.beats_per_group, unit.bitserial.group_size
        j, lane = i // lanes, i % lanes
        u, m = j % na, j // na
        q = d * n + m
        g = (q // bpg) * na + u
        k = g * gs + (q % bpg) * lanes + lane
    k.setflags(write=False)
    g.setflags(write=False)
    return k, g


@lru_cache(maxsize=4096)
def mac_weights(unit: BankUnit, fmt: int, col: int, count: int) -> int:
    """Weights one bank's MAC unit multiplies in a MAC run of ``count`` columns from ``col`` in format ``fmt``: every
    data column's ``weights_per_column``; metadata columns none."""
    meta = unit.metadata_columns(fmt) if unit.bitserial is not None else 0
    return max(0, col + count - max(col, meta)) * unit.weights_per_column(fmt)


@dataclass(frozen=True)
class MacWork:
    """What a channel's MAC units do over a command stream (:func:`stream_mac_work`), for the energy table.

    Members
    -------
    weights:
        Weights multiplied (:func:`mac_weights`, summed over the banks).
    terms:
        Bit-serial lane cycles: every weight of a column of format ``f`` takes ``format_terms(f)`` terms, the pace
        its unit runs at whatever the group's datatype (0 for int8 lanes).
    gb_columns:
        Global-buffer columns read: ``gb_columns_per_mac`` per MAC column, once for all the banks it is broadcast
        to (the most of their formats).
    """

    weights: int
    terms: int
    gb_columns: int


def stream_mac_work(unit: BankUnit, table: Iterable[Sequence[int]] | np.ndarray,
                    times: Sequence[int] | np.ndarray | None = None) -> MacWork:
    """The MAC units' work over a command stream (rows ``op, all_banks, bank, row, col, count``), the banks' formats
    following the stream's CFRs. ``times``: how often each row runs (a REPEAT's body, :func:`accel.program.repeats`;
    default once each); a repeated row counts in the formats its first run sees (a repeated body writes the same
    formats every run). Vectorised over the rows: every bank's format at every MAC is the value of the latest CFR of
    the format register that reached the bank before it (the reset format before any)."""
    t = np.asarray(table, dtype=np.int64).reshape(-1, 6)
    n = np.ones(len(t), dtype=np.int64) if times is None else np.asarray(times, dtype=np.int64)
    op, ab, bank, row, col, count = t.T
    mac = np.nonzero(op == PimOp.MAC)[0]
    if not len(mac):
        return MacWork(0, 0, 0)
    member = (ab[:, None] == 1) | (bank[:, None] == np.arange(unit.pim.banks))   # the banks each row acts on
    cfr = np.nonzero((op == PimOp.CFR) & (col == CFR_FORMAT))[0]
    last = np.full((len(mac), unit.pim.banks), -1, dtype=np.int64)              # latest format CFR per bank
    if len(cfr):
        hit = np.where(member[cfr], cfr[:, None], -1)
        run = np.maximum.accumulate(hit, axis=0)
        before = np.searchsorted(cfr, mac) - 1                                 # CFRs before each MAC
        last = np.where(before[:, None] >= 0, run[np.maximum(before, 0)], -1)
    fmt = np.where(last >= 0, row[np.maximum(last, 0)], unit.reset_format)    # (MAC, bank)
    # every (MAC, bank it acts on) by (format, col, count), weighted by the runs: few distinct keys
    m = member[mac]
    i, b = np.nonzero(m)
    f, c, k = fmt[i, b], col[mac][i], np.maximum(count[mac], 1)[i]
    dims = (int(f.max()) + 1, int(c.max()) + 1, int(k.max()) + 1)
    keys, inv = np.unique(np.ravel_multi_index((f, c, k), dims), return_inverse=True)
    runs = np.zeros(len(keys), dtype=np.int64)
    np.add.at(runs, inv.reshape(-1), n[mac][i])
    weights = terms = 0
    for (fk, ck, kk), r in zip(zip(*(x.tolist() for x in np.unravel_index(keys, dims))), runs.tolist()):
        w = mac_weights(unit, fk, ck, kk) * r
        weights += w
        terms += w * unit.format_terms(fk) if unit.bitserial is not None else 0
    # the global buffer is read once per MAC column for all its banks: the most columns any of their formats reads
    formats, at = np.unique(fmt, return_inverse=True)
    per = np.array([unit.gb_columns_per_mac(x) for x in formats.tolist()], dtype=np.int64)[at.reshape(fmt.shape)]
    gb = int((n[mac] * np.maximum(count[mac], 1) * np.where(m, per, 0).max(axis=1)).sum())
    return MacWork(weights, terms, gb)


def timing_signature(words: np.ndarray) -> np.ndarray:
    """PIM command words (uint64) without the fields that do not change a channel's schedule: the channel, and the
    row but for a CFR (whose row is the register's value: a bank's format sets its MAC pace)."""
    from accel.isa import TABLES, Family

    offs = TABLES[Family.PIM].offsets()
    chan = np.uint64(((1 << offs["channel"][1]) - 1) << offs["channel"][0])
    row = np.uint64(((1 << offs["row"][1]) - 1) << offs["row"][0])
    op = (words >> np.uint64(offs["op"][0])) & np.uint64((1 << offs["op"][1]) - 1)
    return np.where(op == int(PimOp.CFR), words & ~chan, words & ~(chan | row))
