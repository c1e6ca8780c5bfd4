"""Random legal PIM programs, stimuli and golden checks for the PIM channel's equivalence runs.

A program is a list of ``(fields, data)``: PIM command fields (``op``, ``all_banks``, ``bank``, ``row``, ``col``,
``count``) and, for WR/WRGB, one column word per element. The generator tracks which rows are open so that every
command is legal (timing is left to the channel: the stimulus runs in wait mode). The stimulus's ``expected`` holds
the engine's schedule (issue cycles of every element, read beats), which the check compares with the trace.

So that every timing rule binds, part of each program comes from the rule table itself: a random row's preceding
command (``window`` of them), then its following command at the row's level (:func:`row_pattern`, made legal by a
:class:`CommandPlanner`). :func:`bindings` counts, per row, how often it is the sole binding constraint of an issue in
the engine's schedule (``benchmarks/pim_rules.py`` reports it; docs/pim.md shows the counts).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from collections import Counter
from typing import Any, Callable, Iterable

import numpy as np

from ..config import BankUnit, BitSerialConfig, DeviceConfig, PimConfig, load_preset
from ..interfaces.pim import (
    ALL_BANK_OPS, BANK_TARGETS, CFR_CHANNEL_REGS, CFR_FORMAT, PIM_TIMING_RULES, RUN_OPS, Row, RuleTable,
    TimingRule, compile_rules,
)
from ..isa import PimOp, encode
from ..interfaces.stimulus import Stimulus, Trace, run_model
from .registry import UnitSpec

__all__ = ["PimUnitConfig", "random_program", "program_words", "make_stimulus", "check", "SPEC", "TEST_CONFIGS",
           "schedule", "stimulus_program", "bindings", "suite_bindings", "CommandPlanner", "row_pattern", "forms",
           "PATTERN_SHARE", "coverage_configs", "suite_seeds", "mutants", "EngineModelSuite", "scaled_aim",
           "EQUIVALENT_MUTANTS"]


@dataclass(frozen=True)
class PimUnitConfig:
    """What a PIM channel is built from: its PimConfig and, for bit-serial lanes, the device's BitSerialConfig;
    ``external_arrays``: the banks' arrays are external memory modules (:mod:`accel.rtl.bank_array`)."""

    pim: PimConfig
    bitserial: BitSerialConfig | None
    name: str = ""
    external_arrays: bool = False

    @classmethod
    def of(cls, dev: DeviceConfig) -> "PimUnitConfig":
        return cls(dev.pim, dev.bitserial if dev.pim.lane == "bitserial" else None, dev.name)

    @property
    def unit(self) -> BankUnit:
        """The banks' MAC unit."""
        return BankUnit(self.pim, self.bitserial)


def _word(pim: PimConfig, rng: np.random.Generator) -> int:
    return int.from_bytes(rng.bytes(pim.column_bits // 8), "little")


#: Ops that need open rows in their banks (a PRE: to act on them), and ops that need them closed.
_NEEDS_OPEN = frozenset({PimOp.RD, PimOp.WR, PimOp.MAC, PimOp.PRE})
_NEEDS_CLOSED = frozenset({PimOp.ACT, PimOp.REF})


class CommandPlanner:
    """Builds a legal command sequence for one channel: before each command, the ACTs (RD, WR, MAC, PRE) or PREs
    (ACT, REF) that its banks need (an all-bank one where every bank needs it, or to close banks when all are open).

    Parameters
    ----------
    pim:
        The channel.
    opened:
        Which banks have an open row (shared and updated).
    row, word:
        Row to open with an ACT, data word of a WR/WRGB element (callables).
    col:
        First column of an RD/WR/MAC of ``count`` elements (a callable of the count; default 0).

    Members
    -------
    program:
        The commands so far, ``(fields, data)``.
    """

    def __init__(self, pim: PimConfig, opened: list[bool] | None = None, row: Callable[[], int] = lambda: 0,
                 word: Callable[[], int] = lambda: 0, col: Callable[[int], int] = lambda n: 0) -> None:
        self.pim = pim
        self.open = opened if opened is not None else [False] * pim.banks
        self.row, self.word, self.col = row, word, col
        self.program: list[tuple[dict[str, int], Any]] = []

    def banks(self, op: PimOp, ab: int, bank: int) -> list[int]:
        """The banks ``op`` acts on (all if it has an all-bank form and ``ab``)."""
        kind = BANK_TARGETS[op]
        if kind == "none":
            return []
        if kind == "all" or (ab and op in ALL_BANK_OPS):
            return list(range(self.pim.banks))
        return [bank]

    def prepare(self, op: PimOp, ab: int, bank: int) -> None:
        """The ACTs or PREs that make ``op`` legal (and a PRE effective) on its banks."""
        t = self.banks(op, ab, bank)
        want_open = op in _NEEDS_OPEN
        if op not in _NEEDS_OPEN | _NEEDS_CLOSED:
            return
        wrong = [b for b in t if self.open[b] != want_open]
        fix = PimOp.ACT if want_open else PimOp.PRE
        # all at once when every bank needs it, and a PRE of every bank when all are open
        if wrong and (len(wrong) == self.pim.banks or (not want_open and all(self.open))):
            self.emit(fix, 1, 0)
        else:
            for b in wrong:
                self.emit(fix, 0, b)

    def add(self, op: PimOp, ab: int = 0, bank: int = 0, count: int = 0, col: int | None = None,
            value: int = 0) -> int:
        """Prepare and emit ``op``; its index in :attr:`program`."""
        self.prepare(op, ab, bank)
        return self.emit(op, ab, bank, count, col, value)

    def emit(self, op: PimOp, ab: int = 0, bank: int = 0, count: int = 0, col: int | None = None,
             value: int = 0) -> int:
        """Emit ``op`` as it is (``value``: a CFR's ``row``; ``col`` None: the planner's choice for RD/WR/MAC, else
        0); its index in :attr:`program`."""
        if col is None:
            col = self.col(max(1, count)) if op in (PimOp.RD, PimOp.WR, PimOp.MAC) else 0
        for b in self.banks(op, ab, bank):
            if op == PimOp.ACT:
                self.open[b] = True
            elif op == PimOp.PRE:
                self.open[b] = False
        f = {"op": int(op), "all_banks": int(ab and op in ALL_BANK_OPS), "bank": bank, "row": 0, "col": col,
             "count": count}
        if op == PimOp.ACT:
            f["row"] = self.row()
        elif op == PimOp.CFR:
            f["row"] = value
        data = [self.word() for _ in range(max(1, count))] if op in (PimOp.WR, PimOp.WRGB) else None
        self.program.append((f, data))
        return len(self.program) - 1


def row_pattern(plan: CommandPlanner, rule: TimingRule, pre: tuple[int, int] | list[tuple[int, int]],
                fol: tuple[int, int], pre_bank: int, fol_bank: int, pre_count: int = 0, fol_count: int = 0) -> int:
    """A table row's preceding command (``window`` of them, from ``pre_bank`` on through the bank groups first), then
    its following command on ``fol_bank``, each made legal; ``pre``/``fol``: ``(op, all_banks)`` (``pre``: or one per
    preceding command). The following command's banks are opened first when the preceding commands leave them alone,
    so that no later ACT moves the row's source. Returns the index of the first preceding command (the one the row counts from); the following
    command is the last of :attr:`CommandPlanner.program`."""
    p = plan.pim
    nb, bpg, ng = p.banks, p.banks_per_group, p.bank_groups
    pres = pre if isinstance(pre, list) else [pre] * rule.window
    fop = PimOp(fol[0])
    pre_banks = [(pre_bank + k * bpg + k // ng) % nb for k in range(rule.window)]
    if fop in _NEEDS_OPEN:
        keep = {b for (o, ab), pb in zip(pres, pre_banks) if PimOp(o) in _NEEDS_CLOSED
                for b in plan.banks(PimOp(o), ab, pb)}
        for b in plan.banks(fop, fol[1], fol_bank):
            if b not in keep and not plan.open[b]:
                plan.emit(PimOp.ACT, 0, b)
    first = [plan.add(PimOp(o), ab, pb, pre_count) for (o, ab), pb in zip(pres, pre_banks)][0]
    plan.add(fop, fol[1], fol_bank, fol_count)
    return first


def forms(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(op, all_banks)`` pairs with one flag for an op without an all-bank form (both act alike), sorted."""
    return sorted({(o, ab if PimOp(o) in ALL_BANK_OPS else 0) for o, ab in pairs})


def _random_pattern(plan: CommandPlanner, rows: tuple[Row, ...], rng: np.random.Generator) -> None:
    """One to three instances of a table row's pattern (rows that leave forms out chosen twice as often), with random
    forms (half the time of such a row, one it leaves out: those must not wait, nor count), banks at the row's level
    and short runs."""
    p = plan.pim
    # a row that leaves forms out has two behaviours to show: twice the share
    weights = np.array([1 + (r.rule.all_bank != "yes") for r in rows], dtype=float)
    r = rows[int(rng.choice(len(rows), p=weights / weights.sum()))]

    def pick(options: list[tuple[int, int]]) -> tuple[int, int]:
        return options[int(rng.integers(len(options)))]

    pres, fols = forms(r.source.preceding), forms(r.following)
    pre = [pick(pres) for _ in range(r.rule.window)]
    fol = pick(fols)
    if r.rule.all_bank != "yes" and rng.random() < 0.5:
        # a form the row leaves out, as the following command or as the row's source (the oldest preceding one)
        every = replace(r.rule, all_bank="yes")
        out_pre = [f for f in forms(every.forms(p.timing, "preceding")) if f not in pres]
        out_fol = [f for f in forms(every.forms(p.timing, "following")) if f not in fols]
        if out_pre and (not out_fol or rng.random() < 0.5):
            pre[0] = pick(out_pre)
        elif out_fol:
            fol = pick(out_fol)
    nb, bpg, ng = p.banks, p.banks_per_group, p.bank_groups
    b = int(rng.integers(nb))
    g = b // bpg
    if r.source.level == "bank":
        fb = b
    elif r.source.level == "bg" or r.rule.window > 1:   # a window: where the oldest counted command's group waits
        fb = g * bpg + int(rng.integers(bpg))
    else:
        fb = (int(rng.integers(1, ng)) + g) % ng * bpg + int(rng.integers(bpg)) if ng > 1 else int(rng.integers(nb))

    def count(op: int, bank: int) -> int:
        if rng.random() < 0.6:
            return 0
        most = {PimOp.RDMAC: nb - bank, PimOp.WRGB: p.gb_columns}.get(PimOp(op), p.columns)
        if PimOp(op) == PimOp.MAC and rng.random() < 0.25:   # long enough for the bank's units to finish groups
            return int(rng.integers(1, most + 1))
        return int(rng.integers(1, min(most, 4) + 1)) if PimOp(op) in RUN_OPS else 0

    for _ in range(int(rng.integers(1, 4))):   # a chain: one instance's following command precedes the next
        pc = count(pre[0][0], b) if r.rule.window == 1 else 0
        row_pattern(plan, r.rule, pre, fol, b, fb, pc, count(fol[0], fb))


#: Share of a random program's command choices that are a rule-table row's pattern.
PATTERN_SHARE = 0.5


def random_program(cfg: PimUnitConfig, rng: np.random.Generator, n: int = 40,
                   rows: list[int] | None = None,
                   rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> list[tuple[dict[str, int], Any]]:
    """``n`` random legal commands (all ops, single- and all-bank forms, runs) for one channel, opening only
    ``rows`` (default: any row); a :data:`PATTERN_SHARE` of the choices are patterns of the timing rules ``rules``
    (:func:`row_pattern`)."""
    p = cfg.pim
    pick_row = (lambda: int(rng.integers(p.rows))) if rows is None else (lambda: int(rng.choice(rows)))
    opened = [False] * p.banks
    out: list[tuple[dict[str, int], Any]] = []
    formats = list(cfg.unit.formats)
    table_rows = compile_rules(cfg.unit, rules).rows

    def cmd(op: PimOp, data: Any = None, **f: int) -> None:
        base = {"all_banks": 0, "bank": 0, "row": 0, "col": 0, "count": 0}
        base.update(f)
        out.append(({"op": int(op), **base}, data))

    while len(out) < n:
        if table_rows and rng.random() < PATTERN_SHARE:
            plan = CommandPlanner(p, opened, pick_row, lambda: _word(p, rng),
                                  lambda n: int(rng.integers(0, p.columns - n + 1)))
            _random_pattern(plan, table_rows, rng)
            out += plan.program
            continue
        r = rng.random()
        closed = [b for b in range(p.banks) if not opened[b]]
        openb = [b for b in range(p.banks) if opened[b]]
        if r < 0.2 and closed:
            if len(closed) == p.banks and rng.random() < 0.35:
                cmd(PimOp.ACT, all_banks=1, row=pick_row())
                opened = [True] * p.banks
            else:
                b = int(rng.choice(closed))
                cmd(PimOp.ACT, bank=b, row=pick_row())
                opened[b] = True
        elif r < 0.32 and openb:
            if rng.random() < 0.3:
                cmd(PimOp.PRE, all_banks=1)
                opened = [False] * p.banks
            else:
                b = int(rng.choice(openb))
                cmd(PimOp.PRE, bank=b)
                opened[b] = False
        elif r < 0.52 and openb:
            op = PimOp(int(rng.choice([PimOp.RD, PimOp.WR, PimOp.MAC, PimOp.MAC])))
            allb = len(openb) == p.banks and op != PimOp.RD and rng.random() < 0.5
            b = int(rng.choice(openb))
            cnt = int(rng.integers(1, min(p.columns, 6) + 1)) if rng.random() < 0.6 else 1
            if op == PimOp.MAC and rng.random() < 0.25:   # a long run: the units finish groups
                cnt = int(rng.integers(1, p.columns + 1))
            col = int(rng.integers(0, p.columns - cnt + 1))
            data = [_word(p, rng) for _ in range(cnt)] if op == PimOp.WR else None
            cmd(op, data, all_banks=int(allb), bank=b, col=col, count=cnt if cnt > 1 else int(rng.integers(0, 2)))
        elif r < 0.6:
            cnt = int(rng.integers(1, p.gb_columns + 1))
            col = int(rng.integers(0, p.gb_columns - cnt + 1))
            cmd(PimOp.WRGB, [_word(p, rng) for _ in range(cnt)], col=col, count=cnt)
        elif r < 0.68:
            if rng.random() < 0.3:
                cmd(PimOp.RDMAC, all_banks=1)
            else:
                cnt = int(rng.integers(1, p.banks + 1))
                cmd(PimOp.RDMAC, bank=int(rng.integers(0, p.banks - cnt + 1)), count=cnt)
        elif r < 0.72:
            cmd(PimOp.CLRMAC, all_banks=int(rng.random() < 0.5), bank=int(rng.integers(p.banks)))
        elif r < 0.8:
            reg = int(rng.choice([CFR_FORMAT, CFR_FORMAT, CFR_CHANNEL_REGS[0]]))
            val = int(rng.choice(formats)) if reg == CFR_FORMAT else 1
            cmd(PimOp.CFR, all_banks=int(rng.random() < 0.5), bank=int(rng.integers(p.banks)), col=reg, row=val)
        elif r < 0.84 and not openb:
            cmd(PimOp.REF)
        elif r < 0.86:
            cmd(PimOp.NOP)
    return out


def program_words(prog: list[tuple[dict[str, int], Any]], channel: int = 0) -> list[int]:
    return [encode("pim", f["op"], channel=channel, **{k: v for k, v in f.items() if k != "op"}) for f, _ in prog]


def schedule(cfg: PimUnitConfig, prog: list[tuple[dict[str, int], Any]],
             rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> dict[str, Any]:
    """The engine's schedule: issue cycle of every element, read beats, cycles, final MAC registers (``rules``: the
    engine's timing-rule table)."""
    from ..emulator.engine import ChannelEngine

    eng = ChannelEngine(cfg.pim, cfg.bitserial, functional=True, rules=rules)
    issues = []
    for f, data in prog:
        g = {k: v for k, v in f.items() if k != "op"}
        iss = eng.issue(f["op"], data=data, **g)
        issues.extend(iss.first + k * iss.step for k in range(iss.count))
    return {"issues": issues, "reads": [list(r) for r in eng.reads], "cycles": eng.cycles,
            "acc": eng.mac_registers().tolist()}


def metadata_words(cfg: PimUnitConfig, rng: np.random.Generator) -> list[int]:
    """Random metadata columns (the register's ``max_metadata_columns``): entries of random built datatypes and
    scales, one in eight a random code (of another format, or not built: the bank decodes its format's first
    datatype then), the bits after the last entry random."""
    u = cfg.unit
    bs = u.bitserial
    e, bits = u.entry_bits, u.max_metadata_columns * cfg.pim.column_bits
    codes = list(bs.dtype_codes.values())
    word = int.from_bytes(rng.bytes(-(-bits // 8)), "little") & ((1 << bits) - 1)
    for k in range(bits // e):
        code = int(rng.integers(1 << bs.dtype_bits)) if rng.random() < 0.125 else int(rng.choice(codes))
        v = code | (int(rng.integers(1 << bs.scale_bits)) << bs.dtype_bits)
        word = (word & ~(((1 << e) - 1) << (k * e))) | (v << (k * e))
    mask = (1 << cfg.pim.column_bits) - 1
    return [(word >> (c * cfg.pim.column_bits)) & mask for c in range(u.max_metadata_columns)]


def prologue(cfg: PimUnitConfig, rng: np.random.Generator, rows: list[int]) -> list[tuple[dict[str, int], Any]]:
    """Write every column of ``rows`` in every bank: DRAM contents are not reset (in the RTL they are memories), so a
    stimulus defines the data it reads. Random data into every bank at once (one all-bank WR per row), then per bank
    its own metadata columns (bit-serial banks: mostly valid entries, :func:`metadata_words`, so that groups of every
    datatype meet) and a few columns of its own data."""
    p = cfg.pim
    out: list[tuple[dict[str, int], Any]] = []
    z = {"all_banks": 0, "bank": 0, "row": 0, "col": 0, "count": 0}
    own = min(p.columns, 4)
    for r in rows:
        out.append(({"op": int(PimOp.ACT), **z, "all_banks": 1, "row": r}, None))
        out.append(({"op": int(PimOp.WR), **z, "all_banks": 1, "count": p.columns},
                    [_word(p, rng) for _ in range(p.columns)]))
        for b in range(p.banks):
            words = metadata_words(cfg, rng) if cfg.bitserial is not None else []
            col = len(words) + int(rng.integers(0, p.columns - len(words) - own + 1))
            out.append(({"op": int(PimOp.WR), **z, "bank": b, "count": len(words)}, words) if words else
                       ({"op": int(PimOp.NOP), **z}, None))
            out.append(({"op": int(PimOp.WR), **z, "bank": b, "col": col, "count": own},
                        [_word(p, rng) for _ in range(own)]))
        out.append(({"op": int(PimOp.PRE), **z, "all_banks": 1}, None))
    return out


def stimulus_program(cfg: PimUnitConfig, seed: int, n: int | None = None) -> list[tuple[dict[str, int], Any]]:
    """The program of a wait-mode stimulus (``seed % 3 != 2``): the prologue, then a random legal program."""
    rng = np.random.default_rng(seed)
    rows = sorted(set(int(r) for r in rng.integers(0, cfg.pim.rows, 2)))
    return prologue(cfg, rng, rows) + random_program(cfg, rng, n if n is not None else int(rng.integers(10, 40)),
                                                     rows)


def make_stimulus(cfg: PimUnitConfig, seed: int, n: int | None = None) -> Stimulus:
    """A random legal program after a prologue that writes the (two) rows it uses.

    Two seeds in three: wait mode, command and data streams always valid; ``expected`` = the engine's schedule.
    Every third seed: the error paths — commands offered in random cycles, ``strict`` on in random cycles (so
    commands arrive too early and are refused with the rule's code), illegal commands mixed in (closed banks, banks
    and registers out of range, datatypes not built); ``expected`` is None (the RTL is compared with the model only).
    Runs until four cycles after the last activity."""
    if seed % 3 == 2:
        return _error_stimulus(cfg, seed)
    prog = stimulus_program(cfg, seed, n)
    words = program_words(prog)
    data = [w for _, d in prog if d for w in d]
    exp = schedule(cfg, prog)
    cycles = exp["cycles"] + 4
    return Stimulus(
        sources={"cmd": words, "wdata": data},
        source_valid={"cmd": [1] * cycles, "wdata": [1] * cycles},
        sink_ready={},
        plain={"strict": [0] * cycles},
        cycles=cycles,
        label=f"{cfg.name} seed {seed}",
        expected=exp,
    )


def _error_stimulus(cfg: PimUnitConfig, seed: int) -> Stimulus:
    rng = np.random.default_rng(seed)
    p = cfg.pim
    rows = sorted(set(int(r) for r in rng.integers(0, p.rows, 2)))
    prog = prologue(cfg, rng, rows)
    n_pro = len(prog)
    body = random_program(cfg, rng, int(rng.integers(10, 40)), rows)
    z = {"all_banks": 0, "bank": 0, "row": 0, "col": 0, "count": 0}
    bad = [({"op": int(PimOp.RD), **z, "bank": int(rng.integers(p.banks))}, None),
           ({"op": int(PimOp.ACT), **z, "bank": min(63, p.banks + int(rng.integers(0, 3)))}, None),
           ({"op": int(PimOp.CFR), **z, "col": 5, "row": 1}, None),
           ({"op": int(PimOp.CFR), **z, "col": 8, "row": 15}, None),
           ({"op": int(PimOp.MAC), **z, "all_banks": 1, "col": p.columns - 1, "count": 2}, None),
           ({"op": int(PimOp.REF), **z}, None)]
    for _ in range(int(rng.integers(1, 4))):
        body.insert(int(rng.integers(0, len(body) + 1)), bad[int(rng.integers(len(bad)))])
    prog += body
    words = program_words(prog)
    data = [w for _, d in prog if d for w in d]
    bound = schedule(cfg, prog[:n_pro])["cycles"] + 60 * len(body) + 200
    pv = float(rng.uniform(0.2, 0.9))
    valid = [1] * bound
    strict = [0] * bound
    start = schedule(cfg, prog[:n_pro])["cycles"]
    for c in range(start, bound):
        valid[c] = int(rng.random() < pv)
        strict[c] = int(rng.random() < 0.7)
    stim = Stimulus(sources={"cmd": words, "wdata": data}, source_valid={"cmd": valid, "wdata": [1] * bound},
                    sink_ready={}, plain={"strict": strict}, cycles=bound, label=f"{cfg.name} seed {seed} (errors)",
                    expected=None)
    trace = run_model(_model(cfg), stim)
    last = max([c for c, o in enumerate(trace) if o["issued"] or o["rdata__valid"] or o["cmd__ready"] == 0]
               + [0])
    n = min(bound, last + 4)
    stim.cycles = n
    stim.source_valid = {k: v[:n] for k, v in stim.source_valid.items()}
    stim.plain = {k: v[:n] for k, v in stim.plain.items()}
    return stim


def check(cfg: PimUnitConfig, stim: Stimulus, trace: Trace) -> list[str]:
    """Compare a trace with the engine's schedule (issue cycles, read beats, no error); error-path stimuli have no
    engine schedule (they are compared with the RTL only)."""
    exp = stim.expected
    if exp is None:
        return []
    msgs = []
    issued = [c for c, o in enumerate(trace) if o["issued"]]
    if issued != exp["issues"]:
        first = next((i for i, (a, b) in enumerate(zip(issued, exp["issues"])) if a != b),
                     min(len(issued), len(exp["issues"])))
        msgs.append(f"{stim.label}: element {first} issued at cycle "
                    f"{issued[first] if first < len(issued) else None}, engine says "
                    f"{exp['issues'][first] if first < len(exp['issues']) else None}")
    reads = [[c, o["rdata__payload"]] for c, o in enumerate(trace) if o["rdata__valid"]]
    if reads != exp["reads"]:
        msgs.append(f"{stim.label}: read beats differ from the engine's ({len(reads)} vs {len(exp['reads'])})")
    errs = [c for c, o in enumerate(trace) if o["error"]]
    if errs:
        msgs.append(f"{stim.label}: error raised at cycle {errs[0]} (code {trace[errs[0]]['error_code']})")
    return msgs


def scaled_aim() -> PimUnitConfig:
    """aim-gddr6's organisation and timing scaled down: 2 bank groups x 2 banks, 8 rows of 16 64-bit columns, one
    4-lane bit-serial unit per bank (as aim-gddr6's one unit: a packed column is several beats, 4-bit 4 and int8 2),
    groups of 32, and the AiM rules (no tFAW on the all-bank activate, nRCD_MAC > nRCD) with shorter distances."""
    dev = load_preset("aim-gddr6")
    t = replace(dev.pim.timing, nBL=2, nCL=6, nCWL=2, nRCD=5, nRCDWR=4, nRCD_MAC=7, nRP=4, nRAS=7, nRC=11, nWR=4,
                nRTP=3, nCCDS=2, nCCDL=2, nCCD_AB=2, nRRDS=2, nRRDL=3, nFAW=9, nRFC=12, nREFI=400)
    pim = replace(dev.pim, channels=1, banks=4, bank_groups=2, rows=8, row_bytes=128, column_bits=64, mac_lanes=4,
                  global_buffer_bytes=64, timing=t)
    bs = replace(dev.bitserial, lanes=4, group_size=32)
    return PimUnitConfig(pim, bs, "aim-scaled")


def test_configs() -> list[PimUnitConfig]:
    """fpga-tiny, fpga-small, a scaled-down aim-gddr6 and a scaled-down hbm3-pim (int8 lanes, two cycles per column,
    tFAW on, nCCD_AB)."""
    out = [PimUnitConfig.of(load_preset("fpga-tiny")), PimUnitConfig.of(load_preset("fpga-small")), scaled_aim()]
    dev = load_preset("hbm3-pim")
    t = replace(dev.pim.timing, nBL=1, nCL=4, nCWL=2, nRCD=3, nRCDWR=3, nRCD_MAC=3, nRP=3, nRAS=6, nRC=8, nWR=3,
                nRTP=2, nCCDS=1, nCCDL=2, nCCD_AB=3, nRRDS=1, nRRDL=2, nFAW=7, nRFC=10, nREFI=300,
                faw_all_bank=True)
    pim = replace(dev.pim, channels=1, banks=4, bank_groups=2, rows=4, row_bytes=16, column_bits=32, mac_lanes=2,
                  global_buffer_bytes=8, timing=t)
    out.append(PimUnitConfig(pim, None, "hbm3-scaled"))
    return out


def _every_rule(forms: bool = False) -> PimUnitConfig:
    """8 banks in 4 groups (tFAW needs five banks to bind), the aim-scaled bank (8 cycles per column in both formats,
    18 to drain), and a timing in which every row of the rule table has a latency of its own of at least 2 — nRC >
    nRAS + nRP (RC binds), nFAW > nRC + 3 nRRDS (a window holding an all-bank ACT binds), nBL > nCCDL (BUS paces
    reads), 2 nBL > nCL (RDMAC -> RD), nCCD_AB above the MAC pace — so that each row can be the sole binding
    constraint of an issue. ``forms``: instead nRRDL > nRC, where tRRD_L of an all-bank ACT is not implied by tRC, and no tFAW on
    all-bank ACTs (so that a rule applied to the wrong forms shows)."""
    base = scaled_aim()
    t = replace(base.pim.timing, nBL=4, nCL=4, nCWL=2, nRCD=4, nRCDWR=6, nRCD_MAC=7, nRP=4, nRAS=8, nRC=14, nWR=3,
                nRTP=5, nCCDS=2, nCCDL=3, nCCD_AB=9, nRRDS=2, nRRDL=3, nFAW=24, nRFC=13, nREFI=400, faw_all_bank=True)
    if forms:
        t = replace(t, nRRDL=16, nFAW=26, faw_all_bank=False)
    return PimUnitConfig(replace(base.pim, banks=8, bank_groups=4, timing=t), base.bitserial,
                         "every-form" if forms else "every-rule")


def coverage_configs() -> list[PimUnitConfig]:
    """The engine-vs-model suite's configurations: :func:`test_configs` and two in which every rule can bind (the
    second also for the forms a rule leaves out)."""
    return test_configs() + [_every_rule(), _every_rule(forms=True)]


def suite_seeds(cfg: PimUnitConfig) -> range:
    """The seeds the engine-vs-model suite runs on ``cfg``: 120, and three times as many on the configuration
    where every rule can bind (the rows that bind nowhere else need them to bind hundreds of times)."""
    return range(360 if cfg.name == "every-rule" else 120)


def mutants(rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> list[tuple[int, str, RuleTable]]:
    """Per row ``i`` of ``rules``: ``(i, "dropped", the table without it)``, ``(i, "shortened", the table with its
    latency one cycle shorter)`` and, for a row whose commands all have an all-bank form, the row applied to other
    forms (``"all_bank=never"``: single-bank commands only, ``"all_bank=only"``, ``"all_bank=yes"``)."""
    rules = RuleTable.of(rules)
    out = []

    def swap(i: int, row: TimingRule) -> RuleTable:
        return RuleTable(rules[:i] + (row,) + rules[i + 1:])

    for i, r in enumerate(rules):
        out.append((i, "dropped", RuleTable(rules[:i] + rules[i + 1:])))
        out.append((i, "shortened", swap(i, replace(r, latency=f"{r.latency} - 1"))))
        if all(o in ALL_BANK_OPS for o in (*r.preceding, *r.following)):
            out += [(i, f"all_bank={v}", swap(i, replace(r, all_bank=v))) for v in ("never", "only", "yes")
                    if v != r.all_bank]
    return out


#: Mutants that no valid configuration can tell from the table, with the reason.
EQUIVALENT_MUTANTS: dict[tuple[str, str], str] = {
    ("RRD_S", "all_bank=never"): "an all-bank ACT is in every bank group and PimTiming requires nRRDL >= nRRDS, so "
                                 "tRRD_L always covers tRRD_S for it",
}


class EngineModelSuite:
    """The randomised engine-vs-model suite: for each configuration and seed of :func:`suite_seeds`, the wait-mode
    stimulus and the model's trace of it (computed once, on first use), checked against an engine's schedule.

    The verdict for an engine with another rule table (:meth:`mismatches`) is the suite's: the model's trace does not
    depend on the engine, and the check compares every issue cycle and read beat (a schedule that runs past the
    trace differs in its issue list)."""

    def __init__(self, configs: list[PimUnitConfig] | None = None) -> None:
        self.configs = configs if configs is not None else coverage_configs()
        self._traces: dict[tuple[str, int], tuple[Stimulus, Trace]] = {}

    @property
    def model_runs(self) -> int:
        """Stimuli run through the model so far."""
        return len(self._traces)

    def seeds(self, cfg: PimUnitConfig) -> list[int]:
        """The wait-mode seeds (the ones whose stimulus carries the engine's schedule)."""
        return [s for s in suite_seeds(cfg) if s % 3 != 2]

    def trace(self, cfg: PimUnitConfig, seed: int) -> tuple[Stimulus, Trace]:
        key = (cfg.name, seed)
        if key not in self._traces:
            stim = make_stimulus(cfg, seed)
            self._traces[key] = stim, run_model(_model(cfg), stim)
        return self._traces[key]

    def mismatches(self, cfg: PimUnitConfig, seed: int, rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> list[str]:
        """The check's messages for an engine with ``rules`` against the model on one seed (empty: equal)."""
        stim, trace = self.trace(cfg, seed)
        if RuleTable.of(rules) != PIM_TIMING_RULES:
            stim = replace(stim, expected=schedule(cfg, stimulus_program(cfg, seed), rules))
        return check(cfg, stim, trace)

    def catch(self, rules: Iterable[TimingRule]) -> tuple[str, int] | None:
        """The first ``(configuration, seed)`` on which an engine with ``rules`` disagrees with the model, seeds
        interleaved across configurations (None: the suite passes it)."""
        lists = [(cfg, self.seeds(cfg)) for cfg in self.configs]
        for k in range(max(len(s) for _, s in lists)):
            for cfg, seeds in lists:
                if k < len(seeds) and self.mismatches(cfg, seeds[k], rules):
                    return cfg.name, seeds[k]
        return None


TEST_CONFIGS = test_configs


def _rtl(cfg: PimUnitConfig):
    from ..rtl.pim import PimChannel

    return PimChannel(cfg.pim, cfg.bitserial, external_arrays=cfg.external_arrays)


def _model(cfg: PimUnitConfig):
    from ..emulator.units.pim import PimChannel

    return PimChannel(cfg.pim, cfg.bitserial, raise_errors=False)


def _export_cost(cfg: PimUnitConfig) -> tuple[float, str]:
    """Seconds to export and what they grow with: the banks' MAC lanes (bit-serial ones decode every datatype) and,
    inline, one initialisation line per array word (measured on 2 cores with external arrays: hbm2-pim 7.5 s,
    hbm3-pim 10.6 s, aim-gddr6 43 s; inline, aim-gddr6 cut to 256 rows: 308 s)."""
    p = cfg.pim
    words = 0 if cfg.external_arrays else p.banks * p.rows * p.columns
    per_lane = 0.026 if cfg.bitserial is None else 0.014 * len(cfg.bitserial.datatypes)
    seconds = 4.0 + p.banks * p.mac_lanes * per_lane + 1.2e-3 * words
    arrays = "external bank arrays" if cfg.external_arrays else f"{words} array words inline"
    return seconds, f"{p.banks} banks x {p.mac_lanes} {p.lane} lanes, {arrays}"


SPEC = UnitSpec(name="pim", top="pim_channel", config_of=PimUnitConfig.of, rtl=_rtl, model=_model,
                stimulus=make_stimulus, check=check, test_configs=test_configs, export_cost=_export_cost)


def run_and_check(cfg: PimUnitConfig, seed: int) -> list[str]:
    """Model-only convenience: stimulus, per-cycle run and check."""
    stim = make_stimulus(cfg, seed)
    return check(cfg, stim, run_model(_model(cfg), stim))


def bindings(cfg: PimUnitConfig, prog: list[tuple[dict[str, int], Any]],
             rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> Counter[int]:
    """How often each row of ``rules`` (by index) is the sole binding constraint of an element of ``prog`` in the
    engine's schedule: a first element issued at exactly that row's first legal cycle, later than the channel's next
    free cycle and than every other row allows; a later element of a run whose step is that row's latency alone
    (each of ``count - 1`` elements). Dropping such a row, or shortening it by a cycle, moves the issue."""
    from ..emulator.engine import ChannelEngine

    eng = ChannelEngine(cfg.pim, cfg.bitserial, functional=False, rules=rules)
    out: Counter[int] = Counter()
    for f, data in prog:
        op, ab, bank, count = f["op"], f["all_banks"], f["bank"], max(1, f["count"])
        if op == PimOp.RDMAC and ab:
            ab, bank, count = 0, 0, cfg.pim.banks
        readies = eng.row_readies(op, ab, bank)
        slot = eng.next
        terms = max(eng.terms) if ab else eng.terms[bank]
        iss = eng.issue(op, ab, bank, f["row"], f["col"], count, data)
        top = [r for r, t, _ in readies if t >= iss.first]
        if iss.first > slot and len(top) == 1:
            out[top[0].index] += 1
        if count > 1 and iss.step > 1:
            own = [r for r in eng.rules.rows_for[(op, ab)] if (op, ab) in r.source.preceding
                   and (r.latency if r.latency is not None else terms + r.source.offset) == iss.step]
            if len(own) == 1:
                out[own[0].index] += count - 1
    return out


def suite_bindings(cfg: PimUnitConfig, seeds: Iterable[int],
                   rules: Iterable[TimingRule] = PIM_TIMING_RULES) -> Counter[int]:
    """:func:`bindings` summed over the wait-mode stimuli of ``seeds`` (the ones whose schedule the engine gives)."""
    out: Counter[int] = Counter()
    for seed in seeds:
        if seed % 3 != 2:
            out += bindings(cfg, stimulus_program(cfg, seed), rules)
    return out
