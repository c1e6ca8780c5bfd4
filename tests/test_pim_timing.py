"""Every DRAM timing rule of the PIM channel at its boundary: one cycle early is refused (naming the rule, the bank and
the cycles missing), on time is accepted — in the channel engine (``issue(at=...)``) and in the per-cycle model
(strict mode), which must agree. Illegal commands (RD to a closed bank, ...) are errors in both."""
from __future__ import annotations

from dataclasses import replace

import pytest

from accel.config import load_preset
from accel.emulator.engine import ChannelEngine
from accel.emulator.units.pim import PimChannel
from accel.interfaces.pim import PimIllegalError, PimRule, PimTimingError
from accel.errors import AccelError, TimingError
from accel.isa import PimOp, encode

BASE = load_preset("fpga-small").pim  # 1 channel, 4 banks in 2 groups; timing replaced per scenario
BS = load_preset("fpga-small").bitserial
ONES = dict(nBL=1, nCL=1, nCWL=1, nRCD=1, nRCDWR=1, nRCD_MAC=1, nRP=1, nRAS=1, nRC=1, nWR=1, nRTP=1, nCCDS=1,
            nCCDL=1, nCCD_AB=1, nRRDS=1, nRRDL=1, nFAW=1, nRFC=1, nREFI=1000, faw_all_bank=True)


def pim_with(banks: int = 4, groups: int = 2, **timing):
    t = replace(BASE.timing, **{**ONES, **timing})
    return replace(BASE, banks=banks, bank_groups=groups, timing=t)


def C(op: str, **f):
    return (PimOp[op], f)


# (name, timing overrides, setup commands, probe, source index (the setup command the rule counts from), distance,
#  rule, bank named in the error, pim overrides)
SCENARIOS = [
    ("RCD_RD", dict(nRCD=9), [C("ACT", bank=1, row=3)], C("RD", bank=1, col=2), 0, 9, PimRule.RCD_RD, 1, {}),
    ("RCD_WR", dict(nRCDWR=7), [C("ACT", bank=2)], C("WR", bank=2), 0, 7, PimRule.RCD_WR, 2, {}),
    ("RCD_MAC", dict(nRCD=3, nRCD_MAC=11), [C("ACT", bank=0)], C("MAC", bank=0, count=4), 0, 11,
     PimRule.RCD_MAC, 0, {}),
    ("RCD_MAC all banks", dict(nRCD_MAC=8), [C("ACT", all_banks=1, row=2)], C("MAC", all_banks=1), 0, 8,
     PimRule.RCD_MAC, 0, {}),
    ("RP", dict(nRP=6), [C("ACT", bank=3), C("PRE", bank=3)], C("ACT", bank=3), 1, 6, PimRule.RP, 3, {}),
    ("RP before REF", dict(nRP=6), [C("ACT", bank=3), C("PRE", bank=3)], C("REF"), 1, 6, PimRule.RP, 3, {}),
    ("RAS", dict(nRAS=10, nRC=10), [C("ACT", bank=1)], C("PRE", bank=1), 0, 10, PimRule.RAS, 1, {}),
    ("RAS all banks", dict(nRAS=10, nRC=10), [C("ACT", bank=1), C("ACT", bank=2)], C("PRE", all_banks=1), 1, 10,
     PimRule.RAS, 2, {}),
    ("RC", dict(nRC=13, nRAS=2, nRP=2), [C("ACT", bank=0), C("PRE", bank=0)], C("ACT", bank=0), 0, 13, PimRule.RC,
     0, {}),
    ("RRD_S", dict(nRRDS=5, nRRDL=5), [C("ACT", bank=0)], C("ACT", bank=2), 0, 5, PimRule.RRD_S, None, {}),
    ("RRD_L", dict(nRRDS=2, nRRDL=7), [C("ACT", bank=0)], C("ACT", bank=1), 0, 7, PimRule.RRD_L, None, {}),
    ("RRD_L all-bank ACT", dict(nRRDS=2, nRRDL=7), [C("ACT", bank=0), C("PRE", bank=0)], C("ACT", all_banks=1),
     0, 7, PimRule.RRD_L, None, {}),
    ("FAW", dict(nFAW=12), [C("ACT", bank=b) for b in range(4)], C("ACT", bank=4), 0, 12, PimRule.FAW, None,
     dict(banks=8, groups=4)),
    ("FAW counts all-bank ACT", dict(nFAW=12, faw_all_bank=True),
     [C("ACT", bank=0), C("PRE", bank=0), C("ACT", bank=1), C("PRE", bank=1), C("ACT", bank=2), C("PRE", bank=2),
      C("ACT", all_banks=1), C("PRE", all_banks=1)], C("ACT", bank=3), 0, 12, PimRule.FAW, None, {}),
    ("CCD_S", dict(nCCDS=4, nCCDL=4), [C("ACT", bank=0), C("ACT", bank=2), C("RD", bank=0)], C("RD", bank=2), 2, 4,
     PimRule.CCD_S, None, {}),
    ("CCD_S after WRGB", dict(nCCDS=5, nCCDL=5), [C("WRGB")], C("WRGB", col=1), 0, 5, PimRule.CCD_S, None, {}),
    ("CCD_L", dict(nCCDS=2, nCCDL=6), [C("ACT", bank=0), C("ACT", bank=1), C("MAC", bank=0)], C("RD", bank=1), 2, 6,
     PimRule.CCD_L, None, {}),
    ("CCD_AB", dict(nCCDL=2, nCCD_AB=9), [C("ACT", all_banks=1), C("MAC", all_banks=1)], C("MAC", all_banks=1), 1,
     9, PimRule.CCD_AB, None, {}),
    ("WR recovery", dict(nCWL=3, nBL=2, nWR=5), [C("ACT", bank=1), C("WR", bank=1)], C("PRE", bank=1), 1, 10,
     PimRule.WR, 1, {}),
    ("RTP after RD", dict(nRTP=6), [C("ACT", bank=2), C("RD", bank=2)], C("PRE", bank=2), 1, 6, PimRule.RTP, 2, {}),
    ("RTP after all-bank MAC", dict(nRTP=6), [C("ACT", all_banks=1), C("MAC", all_banks=1, count=3)],
     C("PRE", all_banks=1), 1, 6, PimRule.RTP, 0, {}),
    ("RFC before ACT", dict(nRFC=20), [C("REF")], C("ACT", bank=0), 0, 20, PimRule.RFC, None, {}),
    ("RFC before REF", dict(nRFC=20), [C("REF")], C("REF"), 0, 20, PimRule.RFC, None, {}),
    ("BUS", dict(nCL=8, nBL=2), [C("ACT", bank=0), C("RD", bank=0)], C("RDMAC", bank=1), 1, 8, PimRule.BUS, None,
     {}),
    # bit-serial lanes (fpga-small's first datatype is int8: 4 signed terms per weight, 4 cycles per column)
    ("MAC_BUSY int8", {}, [C("ACT", bank=2), C("MAC", bank=2, col=1)], C("MAC", bank=2, col=2), 1, 4,
     PimRule.MAC_BUSY, 2, {}),
    ("MAC_BUSY fp4 all banks", {}, [C("CFR", all_banks=1, col=8, row=3), C("ACT", all_banks=1),
                                    C("MAC", all_banks=1, count=3)], C("MAC", all_banks=1), 2, 2, PimRule.MAC_BUSY, 0,
     {}),
]

IDS = [s[0] for s in SCENARIOS]


def _scenario(s):
    name, timing, setup, probe, src, dist, rule, bank, pov = s
    pim = pim_with(**pov, **timing)
    return pim, setup, probe, src, dist, rule, bank


def _data(op, f, pim):
    if op in (PimOp.WR, PimOp.WRGB):
        return [0x0102030405060708 & ((1 << pim.column_bits) - 1)] * max(1, f.get("count", 1))
    return None


def _engine_setup(pim, setup):
    eng = ChannelEngine(pim, load_preset("fpga-small").bitserial)
    last_issue = [eng.issue(op, data=_data(op, f, pim), **f) for op, f in setup]
    return eng, last_issue


def _ready(s):
    pim, setup, probe, src, dist, rule, bank = _scenario(s)
    _, issues = _engine_setup(pim, setup)
    # the scenario must be bound by its rule, not by the one-command-per-cycle slot
    assert issues[src].last + dist >= issues[-1].last + 2
    return issues[src].last + dist


@pytest.mark.parametrize("s", SCENARIOS, ids=IDS)
def test_engine_boundary(s):
    pim, setup, probe, src, dist, rule, bank = _scenario(s)
    ready = _ready(s)
    op, f = probe
    eng, _ = _engine_setup(pim, setup)
    with pytest.raises(PimTimingError) as e:
        eng.issue(op, data=_data(op, f, pim), at=ready - 1, **f)
    assert (e.value.rule, e.value.missing, e.value.bank, e.value.cycle) == (rule, 1, bank, ready - 1)
    assert f"rule {rule.name} " in str(e.value) and "1 cycle short" in str(e.value)
    assert isinstance(e.value, TimingError) and isinstance(e.value, AccelError)
    eng, _ = _engine_setup(pim, setup)
    assert eng.issue(op, data=_data(op, f, pim), at=ready, **f).first == ready
    # the earliest-cycle schedule finds the same boundary
    eng, _ = _engine_setup(pim, setup)
    assert eng.issue(op, data=_data(op, f, pim), **f).first == ready


def _model_run(pim, setup, probe, at):
    """Setup in wait mode, then the probe offered so that it sits in the head at cycle ``at``, strict there."""
    m = PimChannel(pim, load_preset("fpga-small").bitserial, raise_errors=True)
    words = [encode("pim", op, **f) for op, f in setup]
    data = [w for op, f in setup for w in (_data(op, f, pim) or [])]
    pop, pf = probe
    pdata = _data(pop, pf, pim) or []
    probe_word = encode("pim", pop, **pf)
    c = 0
    issued_at = None
    while c <= at + 2:
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
        c += 1
    return issued_at


@pytest.mark.parametrize("s", SCENARIOS, ids=IDS)
def test_model_boundary(s):
    pim, setup, probe, src, dist, rule, bank = _scenario(s)
    ready = _ready(s)
    with pytest.raises(PimTimingError) as e:
        _model_run(pim, setup, probe, ready - 1)
    assert (e.value.rule, e.value.missing, e.value.bank, e.value.cycle) == (rule, 1, bank, ready - 1)
    assert _model_run(pim, setup, probe, ready) == ready


@pytest.mark.parametrize("s", SCENARIOS, ids=IDS)
def test_model_error_flag(s):
    """Without exceptions the model raises ``error`` with the rule's code in the same cycle (as the RTL)."""
    pim, setup, probe, src, dist, rule, bank = _scenario(s)
    ready = _ready(s)
    m = PimChannel(pim, load_preset("fpga-small").bitserial, raise_errors=False)
    from accel.sim.pim import program_words

    prog = [({"op": int(op), **{"all_banks": 0, "bank": 0, "row": 0, "col": 0, "count": 0, **f}},
             _data(op, f, pim)) for op, f in [*setup, probe]]
    words = program_words(prog)
    data = [w for _, d in prog if d for w in d]
    errs = []
    for c in range(ready + 3):
        offer = words[0] if len(words) > 1 or c == ready - 2 else None
        outs = m.step({"cmd__valid": int(offer is not None), "cmd__payload": offer or 0, "strict": int(c == ready - 1),
                       "wdata__valid": int(bool(data)), "wdata__payload": data[0] if data else 0})
        if offer is not None and outs["cmd__ready"]:
            words.pop(0)
        if outs["wdata__ready"]:
            data.pop(0)
        errs.append((outs["error"], outs["error_code"]))
    first = next(c for c, (e, _) in enumerate(errs) if e)
    assert first == ready - 1 and errs[first][1] == int(rule)
    assert all(e == 1 and code == int(rule) for e, code in errs[first:])  # sticky


def test_faw_not_applied_to_all_bank_act():
    """GDDR6-AiM: the all-bank activate neither waits for nor counts in tFAW (faw_all_bank false)."""
    pim = pim_with(nFAW=30, faw_all_bank=False)
    eng = ChannelEngine(pim, BS, functional=False)
    for b in range(4):
        eng.issue(PimOp.ACT, bank=b)
    eng.issue(PimOp.PRE, all_banks=1)
    assert eng.issue(PimOp.ACT, all_banks=1).first == eng.next - 1  # no FAW wait
    pim = pim_with(nFAW=30, faw_all_bank=True)
    eng = ChannelEngine(pim, BS, functional=False)
    first = eng.issue(PimOp.ACT, bank=0).first
    for b in range(1, 4):
        eng.issue(PimOp.ACT, bank=b)
    eng.issue(PimOp.PRE, all_banks=1)
    assert eng.issue(PimOp.ACT, all_banks=1).first == first + 30


def test_timing_message_exact():
    pim = pim_with(nRCD_MAC=11)
    eng = ChannelEngine(pim, BS, functional=False)
    eng.issue(PimOp.ACT, bank=0, row=5)
    with pytest.raises(PimTimingError, match=r"^MAC col=3 count=4 at cycle 11: bank 0: rule RCD_MAC \(nRCD_MAC\) is "
                                             r"1 cycle short; issue it at cycle 12 or later, or run the channel in "
                                             r"wait mode \(strict=0\)$"):
        eng.issue(PimOp.MAC, bank=0, col=3, count=4, at=11)


ILLEGAL = [
    ("RD to a closed bank", [], C("RD", bank=1), PimRule.CLOSED, 1, r"bank 1 has no open row; ACT a row first"),
    ("MAC all banks, one closed", [C("ACT", bank=0)], C("MAC", all_banks=1), PimRule.CLOSED, 1,
     r"bank 1 has no open row"),
    ("ACT to an open bank", [C("ACT", bank=2)], C("ACT", bank=2, row=1), PimRule.OPEN, 2,
     r"bank 2 already has an open row; PRE it first"),
    ("REF with an open row", [C("ACT", bank=3)], C("REF"), PimRule.OPEN, 3, r"already has an open row"),
    ("bank out of range", [], C("ACT", bank=5), PimRule.ADDRESS, 5, r"addresses outside the channel"),
    ("run past the row", [C("ACT", bank=0)], C("RD", bank=0, col=6, count=3), PimRule.ADDRESS, 0,
     r"addresses outside the channel"),
    ("RD all banks", [C("ACT", all_banks=1)], C("RD", all_banks=1), PimRule.ADDRESS, None, r"RD has no all-bank"),
    ("CFR datatype not built", [], C("CFR", col=8, row=15), PimRule.CFR_VALUE, None, r"CFR value is not allowed"),
    ("CFR scale too wide", [], C("CFR", col=9, row=256), PimRule.CFR_VALUE, None, r"CFR value is not allowed"),
    ("CFR unknown register", [], C("CFR", col=5, row=1), PimRule.ADDRESS, None, r"addresses outside"),
]


@pytest.mark.parametrize("case", ILLEGAL, ids=[c[0] for c in ILLEGAL])
def test_illegal(case):
    name, setup, (op, f), rule, bank, msg = case
    pim = pim_with()
    eng, _ = _engine_setup(pim, setup)
    with pytest.raises(PimIllegalError, match=msg) as e:
        eng.issue(op, **f)
    assert (e.value.rule, e.value.bank) == (rule, bank) and isinstance(e.value, AccelError)
    with pytest.raises(PimIllegalError, match=msg) as e2:
        _model_run(pim, setup, (op, f), 40)
    assert (e2.value.rule, e2.value.bank) == (rule, bank)


def test_illegal_opcode_word():
    m = PimChannel(pim_with(), load_preset("fpga-small").bitserial)
    bad = encode("attn", "GEMM", m=1)
    m.step({"cmd__valid": 1, "cmd__payload": bad})
    with pytest.raises(PimIllegalError, match=r"not a PIM command word") as e:
        m.step({})
    assert e.value.rule == PimRule.OPCODE
