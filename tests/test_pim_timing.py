"""Every row of the PIM channel's timing-rule table at its boundary, generated from the table: one cycle early is
refused (naming the rule, the bank and the cycles missing), on time is accepted — in the channel engine
(``issue(at=...)``), in the per-cycle model (strict mode: the exception, and the error flag and code) and in the RTL
(Amaranth, the same stimuli as the model, cycle for cycle). A row added to a copy of the table is enforced by all three
without further edits. Illegal commands (RD to a closed bank, ...) are errors in engine and model alike."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import pytest

from accel.config import BankUnit, PimTiming, load_preset
from accel.emulator.engine import ChannelEngine
from accel.emulator.units.pim import PimChannel
from accel.errors import AccelError, TimingError
from accel.interfaces.pim import (
    ALL_BANK_OPS, BANK_TARGETS, PIM_TIMING_RULES, RULES, PimIllegalError, PimRule, PimTimingError, RuleTableError,
    TimingRule, parse_rules, rule_codes, rule_enum,
)
from accel.isa import PimOp, encode
from accel.equivalence.harness import first_difference, run_amaranth
from accel.interfaces.stimulus import Stimulus, run_model

DEV = load_preset("fpga-tiny")
BS = DEV.bitserial
# 4 banks in 2 groups, one 2-lane bit-serial unit per bank (the reset format, int8's, takes 4 cycles per column; a
# MAC's results are in 14 cycles later), small arrays so that the RTL elaborates quickly; every timing parameter 1
# unless a scenario raises it
BASE = replace(DEV.pim, banks=4, bank_groups=2, rows=8, row_bytes=32, column_bits=16, mac_lanes=2,
               global_buffer_bytes=8)
UNIT = BankUnit(BASE, BS)
ONES = {f.name: 1 for f in fields(PimTiming) if f.type in ("int", int)} | dict(nREFI=1000, faw_all_bank=True)
RAISED = 20  # the value of the parameters a scenario's rule depends on (above the MAC unit's drain, 14)


class _Values:
    """Parameter values as PimTiming reads them (its derived properties computed from them), unchecked."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str):
        return getattr(PimTiming, name).fget(self)


def timing_for(row: TimingRule, **flags: bool) -> PimTiming:
    """All parameters 1 but those the row's latency grows with (found by differences: the latency is linear),
    which are RAISED; then the presets' invariants (nRC >= nRAS, nCCDL >= nCCDS, nRRDL >= nRRDS, nREFI > nRFC)."""
    ones = dict(ONES, **flags)
    v = dict(ones)
    if not row.dynamic:
        base = row.cycles(_Values(ones), UNIT)
        for name in ONES:
            if (not isinstance(ones[name], bool) and name != "nREFI"
                    and row.cycles(_Values({**ones, name: 2}), UNIT) > base):
                v[name] = RAISED
    v["nRC"] = max(v["nRC"], v["nRAS"])
    v["nCCDL"] = max(v["nCCDL"], v["nCCDS"])
    v["nRRDL"] = max(v["nRRDL"], v["nRRDS"])
    v["nREFI"] = max(v["nREFI"], v["nRFC"] + 1)
    return replace(BASE.timing, **v)


def C(op: PimOp, **f: int) -> tuple[PimOp, dict[str, int]]:
    return (op, f)


@dataclass
class Scenario:
    """Setup commands, then ``probe``; ``source`` indexes the setup command the row counts from."""

    name: str
    rules: tuple[TimingRule, ...]
    row: TimingRule
    pim: object
    setup: list
    probe: tuple
    source: int
    rule: int        # the code the probe must be refused with one cycle early
    bank: int | None  # the bank that error names


def _targets(op: PimOp, ab: int, bank: int, nb: int) -> list[int]:
    kind = BANK_TARGETS[op]
    if kind == "none":
        return []
    if kind == "all" or (ab and kind in ("addressed", "open")):
        return list(range(nb))
    return [bank]


def _command(op: PimOp, ab: int, bank: int) -> tuple[PimOp, dict[str, int]]:
    f = {"all_banks": ab} if op in ALL_BANK_OPS and ab else {}
    if op == PimOp.CFR:
        f["col"] = 0   # an AiM channel register: no effect on numerics or timing
    if BANK_TARGETS[op] in ("addressed", "open", "bank") and not ab:
        f["bank"] = bank
    return C(op, **f)


class Planner:
    """Builds a legal command sequence: before each command, the ACTs or PREs its banks need."""

    def __init__(self, nb: int) -> None:
        self.nb = nb
        self.open = [False] * nb
        self.seq: list[tuple[PimOp, dict[str, int]]] = []

    def add(self, op: PimOp, ab: int, bank: int) -> int:
        t = _targets(op, ab, bank, self.nb)
        if op in (PimOp.RD, PimOp.WR, PimOp.MAC, PimOp.PRE):      # needs (PRE: to act on) open rows
            closed = [b for b in t if not self.open[b]]
            if closed and len(closed) == self.nb:
                self._emit(PimOp.ACT, 1, 0)
            for b in (closed if len(closed) < self.nb else []):
                self._emit(PimOp.ACT, 0, b)
        if op in (PimOp.ACT, PimOp.REF):                            # needs closed rows
            opened = [b for b in t if self.open[b]]
            if opened and len(opened) == self.nb:
                self._emit(PimOp.PRE, 1, 0)
            for b in (opened if len(opened) < self.nb else []):
                self._emit(PimOp.PRE, 0, b)
        return self._emit(op, ab, bank)

    def _emit(self, op: PimOp, ab: int, bank: int) -> int:
        for b in _targets(op, ab, bank, self.nb):
            if op == PimOp.ACT:
                self.open[b] = True
            elif op == PimOp.PRE:
                self.open[b] = False
        self.seq.append(_command(op, ab, bank))
        return len(self.seq) - 1


def scenario(rules: tuple[TimingRule, ...], row: TimingRule, pre: tuple[int, int], fol: tuple[int, int],
             flags: dict[str, bool]) -> Scenario:
    """The row's preceding command (``window`` of them), then its following command at the same bank (``bank``), at
    another bank of the same group (``bg``) or in another group (``ch``), each made legal by the planner."""
    t = timing_for(row, **flags)
    pim = replace(BASE, timing=t)
    nb, bpg = pim.banks, pim.banks_per_group
    f_bank = {"bank": 0, "bg": 1 % bpg, "ch": bpg % nb}[row.level]
    plan = Planner(nb)
    # open the following command's banks first when the preceding commands leave them alone, so that no later ACT
    # moves the row's source
    if PimOp(fol[0]) in (PimOp.RD, PimOp.WR, PimOp.MAC, PimOp.PRE):
        keep_closed = set()
        if PimOp(pre[0]) in (PimOp.ACT, PimOp.REF):
            keep_closed = {b for k in range(row.window) for b in _targets(PimOp(pre[0]), pre[1], k % nb, nb)}
        for b in _targets(PimOp(fol[0]), fol[1], f_bank, nb):
            if b not in keep_closed and not plan.open[b]:
                plan._emit(PimOp.ACT, 0, b)
    first = None
    for k in range(row.window):
        i = plan.add(PimOp(pre[0]), pre[1], k % nb)
        first = i if first is None else first
    plan.add(PimOp(fol[0]), fol[1], f_bank)
    *setup, probe = plan.seq
    codes = rule_codes(rules)
    name = (f"{row.rule} {PimOp(pre[0]).name}{'ab' if pre[1] else ''}->{PimOp(fol[0]).name}{'ab' if fol[1] else ''}"
            + "".join(f" {k}={v}" for k, v in flags.items()))
    return Scenario(name, rules, row, pim, setup, probe, first, codes[row.rule], 0 if row.level == "bank" else None)


def _forms(row: TimingRule, timing: PimTiming, side: str) -> list[tuple[int, int]]:
    # one of the two equal flags of an op without an all-bank form
    return sorted({(o, ab if PimOp(o) in ALL_BANK_OPS else 0) for o, ab in row.forms(timing, side)})


def scenarios(rules: tuple[TimingRule, ...] = PIM_TIMING_RULES, only: str | None = None,
              negative: bool = False) -> list[Scenario]:
    """Every (preceding form, following form) of every row (``only``: of that rule), under both values of a flag
    the row names; ``negative``: instead the forms the row leaves out (which must not wait for it)."""
    out = []
    for row in rules:
        if only is not None and row.rule != only:
            continue
        flag_sets = [{}] if row.all_bank in ("yes", "only") else [{row.all_bank: True}, {row.all_bank: False}]
        for flags in flag_sets:
            t = timing_for(row, **flags)
            pres, fols = _forms(row, t, "preceding"), _forms(row, t, "following")
            if negative:
                every = replace(row, all_bank="yes")
                pairs = [(p, f) for p in _forms(every, t, "preceding") for f in _forms(every, t, "following")
                         if p not in pres or f not in fols]
            else:
                pairs = [(p, f) for p in pres for f in fols]
            out += [scenario(rules, row, p, f, flags) for p, f in pairs]
    return out


def _latency(s: Scenario) -> int:
    unit = BankUnit(s.pim, BS)
    if s.row.dynamic:
        return unit.cycles_per_column(unit.reset_format) + s.row.offset
    return s.row.cycles(s.pim.timing, unit)


def _data(op: PimOp, pim) -> list[int] | None:
    return [0x0708 & ((1 << pim.column_bits) - 1)] if op in (PimOp.WR, PimOp.WRGB) else None


def _engine(s: Scenario) -> tuple[ChannelEngine, list]:
    eng = ChannelEngine(s.pim, BS, rules=s.rules)
    return eng, [eng.issue(op, data=_data(op, s.pim), **f) for op, f in s.setup]


def _ready(s: Scenario) -> int:
    _, issues = _engine(s)
    ready = issues[s.source].last + _latency(s)
    # the scenario must be bound by its rule, not by the one-command-per-cycle slot
    assert ready >= issues[-1].last + 2, s.name
    return ready


SCENARIOS = scenarios()
IDS = [s.name for s in SCENARIOS]


def test_every_row_has_scenarios():
    rows = {r.text() for r in PIM_TIMING_RULES}
    assert {s.row.text() for s in SCENARIOS} == rows
    assert len(SCENARIOS) > 2 * len(rows)


@pytest.mark.parametrize("s", SCENARIOS, ids=IDS)
def test_engine_boundary(s):
    ready = _ready(s)
    op, f = s.probe
    eng, _ = _engine(s)
    with pytest.raises(PimTimingError) as e:
        eng.issue(op, data=_data(op, s.pim), at=ready - 1, **f)
    assert (int(e.value.rule), e.value.missing, e.value.bank, e.value.cycle) == (s.rule, 1, s.bank, ready - 1)
    assert f"rule {s.row.rule} ({s.row.latency}) is 1 cycle short" in str(e.value)
    assert isinstance(e.value, TimingError) and isinstance(e.value, AccelError)
    eng, _ = _engine(s)
    assert eng.issue(op, data=_data(op, s.pim), at=ready, **f).first == ready
    # the earliest-cycle schedule finds the same boundary
    eng, _ = _engine(s)
    assert eng.issue(op, data=_data(op, s.pim), **f).first == ready


def _model_run(s: Scenario, at: int, rules=None) -> int | None:
    """Setup in wait mode, then the probe offered so that it sits in the head at cycle ``at``, strict there."""
    m = PimChannel(s.pim, BS, raise_errors=True, rules=s.rules if rules is None else rules)
    words = [encode("pim", op, **f) for op, f in s.setup]
    data = [w for op, f in s.setup for w in (_data(op, s.pim) or [])]
    pop, pf = s.probe
    pdata = _data(pop, s.pim) or []
    probe_word = encode("pim", pop, **pf)
    issued_at = None
    for c in range(at + 3):
        is_probe = not words and c == at - 1
        offer = words[0] if words else (probe_word if is_probe else None)
        wd = data[0] if data else (pdata[0] if pdata and c >= at else 0)
        ins = {"cmd__valid": int(offer is not None), "cmd__payload": offer or 0, "strict": int(c == at),
               "wdata__valid": int(bool(data) or (bool(pdata) and c >= at)), "wdata__payload": wd}
        outs = m.step(ins)
        assert outs["cmd__ready"] or not is_probe, "the probe could not enter the head in time"
        if outs["cmd__ready"] and offer is not None and words:
            words.pop(0)
        if outs["wdata__ready"] and data:
            data.pop(0)
        if c == at and outs["issued"]:
            issued_at = c
    return issued_at


@pytest.mark.parametrize("s", SCENARIOS, ids=IDS)
def test_model_boundary(s):
    ready = _ready(s)
    with pytest.raises(PimTimingError) as e:
        _model_run(s, ready - 1)
    assert (int(e.value.rule), e.value.missing, e.value.bank, e.value.cycle) == (s.rule, 1, s.bank, ready - 1)
    assert _model_run(s, ready) == ready


def stimuli(s: Scenario) -> tuple[Stimulus, Stimulus]:
    """The setup in wait mode, then the probe offered so that it is in the head at ``ready - 1`` with strict on
    there (refused), and at ``ready`` with strict on there (accepted): the stimuli for the model and the RTL."""
    ready = _ready(s)
    _, issues = _engine(s)
    last = issues[-1].last
    words = [encode("pim", op, **f) for op, f in (*s.setup, s.probe)]
    data = [w for op, f in (*s.setup, s.probe) for w in (_data(op, s.pim) or [])]
    out = []
    for at in (ready - 1, ready):
        n = at + 4
        # setup words while the setup runs, then nothing until the probe is offered the cycle before ``at``
        valid = [int(c < last or c == at - 1) for c in range(n)]
        out.append(Stimulus(sources={"cmd": words, "wdata": data}, source_valid={"cmd": valid, "wdata": [1] * n},
                            sink_ready={}, plain={"strict": [int(c == at) for c in range(n)]}, cycles=n,
                            label=f"{s.name} at {at}"))
    return out[0], out[1]


def _check_flags(s: Scenario, early: list, on_time: list) -> None:
    ready = len(on_time) - 4
    errs = [c for c, o in enumerate(early) if o["error"]]
    assert errs and errs[0] == ready - 1 and early[ready - 1]["error_code"] == s.rule, s.name
    assert all(o["error_code"] == s.rule for o in early[ready - 1:])   # sticky
    assert on_time[ready]["issued"] and not any(o["error"] for o in on_time), s.name


@pytest.mark.parametrize("s", SCENARIOS, ids=IDS)
def test_model_error_flag(s):
    """Without exceptions the model raises ``error`` with the rule's code in the same cycle (as the RTL)."""
    model = PimChannel(s.pim, BS, raise_errors=False, rules=s.rules)
    early, on_time = stimuli(s)
    _check_flags(s, run_model(model, early), run_model(model, on_time))


def _rtl_boundary(scens: list[Scenario]) -> None:
    from accel.rtl.pim import PimChannel as Rtl

    by_timing: dict = {}
    for s in scens:
        by_timing.setdefault((s.pim, s.rules), []).append(s)
    for (pim, rules), group in by_timing.items():
        stims = [st for s in group for st in stimuli(s)]
        traces = run_amaranth(Rtl(pim, BS, rules=rules), stims)
        model = PimChannel(pim, BS, raise_errors=False, rules=rules)
        for k, s in enumerate(group):
            early, on_time = traces[2 * k], traces[2 * k + 1]
            for stim, tr in ((stims[2 * k], early), (stims[2 * k + 1], on_time)):
                assert first_difference(run_model(model, stim), tr) is None, stim.label
            _check_flags(s, early, on_time)


@pytest.mark.rtl
@pytest.mark.parametrize("rule", sorted({r.rule for r in PIM_TIMING_RULES}))
def test_rtl_boundary(rule):
    """The RTL refuses the probe one cycle early with the rule's code and takes it on time, equal to the model."""
    _rtl_boundary(scenarios(only=rule))


NEGATIVE = scenarios(negative=True)


@pytest.mark.parametrize("s", NEGATIVE, ids=[s.name for s in NEGATIVE])
def test_forms_left_out_do_not_wait(s):
    """A row's all-bank option leaves forms out (GDDR6-AiM: the all-bank ACT neither waits for nor counts in tFAW;
    nCCD_AB paces all-bank MACs only): those issue before the row's boundary, in the engine and the model alike."""
    ready = _ready_unchecked(s)
    op, f = s.probe
    eng, _ = _engine(s)
    first = eng.issue(op, data=_data(op, s.pim), **f).first
    assert first < ready
    assert _model_run(s, first) == first


def _ready_unchecked(s: Scenario) -> int:
    _, issues = _engine(s)
    return issues[s.source].last + _latency(s)


def test_faw_not_applied_to_all_bank_act():
    """GDDR6-AiM: the all-bank activate neither waits for nor counts in tFAW (faw_all_bank false)."""
    pim = replace(BASE, timing=replace(BASE.timing, **{**ONES, "nFAW": 30, "faw_all_bank": False}))
    eng = ChannelEngine(pim, BS, functional=False)
    for b in range(4):
        eng.issue(PimOp.ACT, bank=b)
    eng.issue(PimOp.PRE, all_banks=1)
    assert eng.issue(PimOp.ACT, all_banks=1).first == eng.next - 1  # no FAW wait
    pim = replace(BASE, timing=replace(BASE.timing, **{**ONES, "nFAW": 30}))
    eng = ChannelEngine(pim, BS, functional=False)
    first = eng.issue(PimOp.ACT, bank=0).first
    for b in range(1, 4):
        eng.issue(PimOp.ACT, bank=b)
    eng.issue(PimOp.PRE, all_banks=1)
    assert eng.issue(PimOp.ACT, all_banks=1).first == first + 30


# ---------------------------------------------------------------------------------------------------- a new rule
WTR = TimingRule("WTR_L", "bg", (PimOp.WR,), (PimOp.RD,), "nCWL + nBL + nWR")   # tWTR-like, nWR for nWTR
EXTENDED = (*PIM_TIMING_RULES, WTR)


def test_added_rule_gets_the_next_code():
    codes = rule_enum(EXTENDED)
    assert codes.WTR_L == 24 and codes.MAC_BUSY == PimRule.MAC_BUSY and codes.CLOSED == PimRule.CLOSED


@pytest.mark.parametrize("s", scenarios(EXTENDED, only="WTR_L"), ids=lambda s: s.name)
def test_added_rule_enforced_by_engine_and_model(s):
    """A row added to a copy of the table is enforced by the engine and the model with no other edit; the default
    table's channel does not wait for it."""
    ready = _ready(s)
    op, f = s.probe
    eng, _ = _engine(s)
    with pytest.raises(PimTimingError, match=r"rule WTR_L \(nCWL \+ nBL \+ nWR\) is 1 cycle short") as e:
        eng.issue(op, data=_data(op, s.pim), at=ready - 1, **f)
    assert (int(e.value.rule), e.value.bank) == (24, None)
    with pytest.raises(PimTimingError, match=r"rule WTR_L ") as e:
        _model_run(s, ready - 1)
    assert _model_run(s, ready) == ready
    early, on_time = stimuli(s)
    model = PimChannel(s.pim, BS, raise_errors=False, rules=s.rules)
    _check_flags(s, run_model(model, early), run_model(model, on_time))
    plain = ChannelEngine(s.pim, BS)
    for op_, f_ in s.setup:
        plain.issue(op_, data=_data(op_, s.pim), **f_)
    assert plain.issue(op, data=_data(op, s.pim), **f).first < ready - 1
    assert _model_run(s, ready - 1, rules=PIM_TIMING_RULES) == ready - 1


@pytest.mark.rtl
def test_added_rule_enforced_by_rtl():
    _rtl_boundary(scenarios(EXTENDED, only="WTR_L"))


# ---------------------------------------------------------------------------------------------------- the table
def test_rule_codes_are_the_published_ones():
    """Codes are an interface (the RTL's error_code, the FPGA host's status byte, docs/pim.md): derived from the
    table's order, they must stay these."""
    assert {r.name: int(r) for r in PimRule} == {
        "NONE": 0, "RCD_RD": 1, "RCD_WR": 2, "RCD_MAC": 3, "RP": 4, "RAS": 5, "RC": 6, "RRD_S": 7, "RRD_L": 8,
        "FAW": 9, "CCD_S": 10, "CCD_L": 11, "CCD_AB": 12, "WR": 13, "RTP": 14, "RFC": 15, "BUS": 16, "CLOSED": 17,
        "OPEN": 18, "ADDRESS": 19, "CFR_VALUE": 20, "OPCODE": 21, "MAC_BUSY": 22, "MAC_DRAIN": 23}


def test_rows_round_trip_as_text():
    assert parse_rules("\n".join(r.text() for r in PIM_TIMING_RULES)) == PIM_TIMING_RULES == parse_rules(RULES)


@pytest.mark.parametrize("line,msg", [
    ("RCD_RD | bank | ACT | RD", r"^rule table line 1: 'RCD_RD \| bank \| ACT \| RD' has 4 columns; write 'rule \| "
                                 r"level \| preceding \| following \| latency \[\| options\]'$"),
    ("X | rank | ACT | RD | nRCD", r"^timing rule X: level 'rank' must be one of bank, bg, ch$"),
    ("X | bank | ACT | RDX | nRCD", r"^rule table line 1: 'RDX' is not a PIM op \(NOP, ACT, "),
    ("X | bank | ACT | RD | nRCD + nFOO", r"^timing rule X: latency 'nRCD \+ nFOO': 'nFOO' is not a PimTiming cycle "
                                          r"count; use one of "),
    ("X | bank | ACT | RD | nRCD +", r"^timing rule X: latency 'nRCD \+' must be terms joined by \+ or -$"),
    ("X | bank | ACT | RD | terms + nRCD", r"^timing rule X: latency 'terms \+ nRCD': 'terms' takes only integers "
                                           r"beside it"),
    ("X | ch | ACT | RD | terms", r"^timing rule X: latency 'terms' is a bank's state; it needs level bank$"),
    ("X | bank | WRGB | RD | nRCD", r"^timing rule X: WRGB cannot be at level bank \(it acts on no bank\); use "
                                    r"level ch$"),
    ("X | bg | RDMAC | RD | nRCD", r"^timing rule X: RDMAC cannot be at level bg \(its all-bank form is a run "),
    ("X | ch | MAC | MAC | nRCD | window=2", r"^timing rule X: a window rule cannot name run commands \(MAC, MAC\)"),
    ("X | ch | REF | REF | nRCD | all_bank=only", r"^timing rule X: all_bank=only names ops without an all-bank "
                                                  r"form \(REF, REF\)$"),
    ("X | ch | ACT | ACT | nRCD | all_bank=maybe", r"^timing rule X: all_bank='maybe' must be 'yes', 'only', "
                                                   r"'never' or a PimTiming flag \(faw_all_bank\)$"),
    ("X | ch | ACT | ACT | nRCD | depth=2", r"^rule table line 1: option 'depth=2' must be window=N or all_bank=\.\.\.$"),
    ("CLOSED | ch | ACT | ACT | nRCD", r"^timing rule CLOSED: the name must be upper case"),
])
def test_bad_rows_are_refused(line, msg):
    with pytest.raises(RuleTableError, match=msg):
        parse_rules(line)


def test_timing_message_exact():
    pim = replace(BASE, timing=replace(BASE.timing, **{**ONES, "nRCD_MAC": 11}))
    eng = ChannelEngine(pim, BS, functional=False)
    eng.issue(PimOp.ACT, bank=0, row=5)
    with pytest.raises(PimTimingError, match=r"^MAC col=1 count=3 at cycle 11: bank 0: rule RCD_MAC \(nRCD_MAC\) is "
                                             r"1 cycle short; issue it at cycle 12 or later, or run the channel in "
                                             r"wait mode \(strict=0\)$"):
        eng.issue(PimOp.MAC, bank=0, col=1, count=3, at=11)


# ---------------------------------------------------------------------------------------------------- illegal
def _illegal_scenario(setup, probe) -> Scenario:
    pim = replace(BASE, timing=replace(BASE.timing, **ONES))
    return Scenario("illegal", PIM_TIMING_RULES, PIM_TIMING_RULES[0], pim, setup, probe, 0, 0, None)


ILLEGAL = [
    ("RD to a closed bank", [], C(PimOp.RD, bank=1), PimRule.CLOSED, 1, r"bank 1 has no open row; ACT a row first"),
    ("MAC all banks, one closed", [C(PimOp.ACT, bank=0)], C(PimOp.MAC, all_banks=1), PimRule.CLOSED, 1,
     r"bank 1 has no open row"),
    ("ACT to an open bank", [C(PimOp.ACT, bank=2)], C(PimOp.ACT, bank=2, row=1), PimRule.OPEN, 2,
     r"bank 2 already has an open row; PRE it first"),
    ("REF with an open row", [C(PimOp.ACT, bank=3)], C(PimOp.REF), PimRule.OPEN, 3, r"already has an open row"),
    ("bank out of range", [], C(PimOp.ACT, bank=5), PimRule.ADDRESS, 5, r"addresses outside the channel"),
    ("run past the row", [C(PimOp.ACT, bank=0)], C(PimOp.RD, bank=0, col=14, count=3), PimRule.ADDRESS, 0,
     r"addresses outside the channel"),
    ("RD all banks", [C(PimOp.ACT, all_banks=1)], C(PimOp.RD, all_banks=1), PimRule.ADDRESS, None,
     r"RD has no all-bank"),
    ("CFR format not built", [], C(PimOp.CFR, col=8, row=3), PimRule.CFR_VALUE, None, r"CFR value is not allowed"),
    ("CFR register 9 (no scale register)", [], C(PimOp.CFR, col=9, row=1), PimRule.ADDRESS, None,
     r"addresses outside"),
    ("CFR unknown register", [], C(PimOp.CFR, col=5, row=1), PimRule.ADDRESS, None, r"addresses outside"),
]


@pytest.mark.parametrize("case", ILLEGAL, ids=[c[0] for c in ILLEGAL])
def test_illegal(case):
    name, setup, (op, f), rule, bank, msg = case
    s = _illegal_scenario(setup, (op, f))
    eng, _ = _engine(s)
    with pytest.raises(PimIllegalError, match=msg) as e:
        eng.issue(op, **f)
    assert (e.value.rule, e.value.bank) == (rule, bank) and isinstance(e.value, AccelError)
    with pytest.raises(PimIllegalError, match=msg) as e2:
        _model_run(s, 40)
    assert (e2.value.rule, e2.value.bank) == (rule, bank)


def test_illegal_opcode_word():
    m = PimChannel(BASE, BS)
    bad = encode("attn", "GEMM", m=1)
    m.step({"cmd__valid": 1, "cmd__payload": bad})
    with pytest.raises(PimIllegalError, match=r"not a PIM command word") as e:
        m.step({})
    assert e.value.rule == PimRule.OPCODE


def test_docs_show_the_table():
    """docs/pim.md's rule table is the table (regenerate: python benchmarks/pim_rules.py --write-docs docs/pim.md)."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "pim.md").read_text()
    section = text.split("<!-- pim_rules: rules -->\n")[1].split("<!-- /pim_rules -->")[0]
    codes = rule_codes()
    lines = [f"| {codes[r.rule]} | " + " | ".join(r.columns()) + " |" for r in PIM_TIMING_RULES]
    assert section.splitlines()[2:] == lines
