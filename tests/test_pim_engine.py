"""The channel engine equals the per-cycle model in cycles (and data) on random legal programs and on GEMV programs;
GEMV is bit-exact against the golden numerics in every layout. The random programs make every row of the timing-rule
table the sole binding constraint of hundreds of issues, and every engine with a row dropped or one cycle short (or
applied to the wrong all-bank forms) disagrees with the model on some of them."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from accel.config import load_preset
from accel.emulator.engine import ChannelEngine, DeviceEngine
from accel.mapping.gemv import LAYOUTS, gemv_plan, gemv_program, golden_gemv, random_operands, run_gemv
from accel.emulator.units.pim import PimChannel
from accel.errors import AccelError
from accel.isa import PimOp, encode
from accel.interfaces.pim import PIM_TIMING_RULES, column_fields, column_word, unpack_entry
from accel.interfaces.stimulus import Stimulus
from accel.equivalence.pim import (
    EQUIVALENT_MUTANTS, EngineModelSuite, coverage_configs, mutants, suite_bindings, suite_seeds,
)
from accel.equivalence.pim import test_configs as pim_test_configs

CONFIGS = pim_test_configs()
COVERAGE = coverage_configs()


@pytest.fixture(scope="module")
def suite() -> EngineModelSuite:
    """The model's traces of the suite's stimuli, computed once for the tests of this module."""
    return EngineModelSuite(COVERAGE)


@pytest.mark.parametrize("cfg", COVERAGE, ids=[c.name for c in COVERAGE])
def test_engine_equals_model_random_programs(cfg, suite):
    """Hundreds of random legal programs (all ops, runs, single/all-bank, the rule table's patterns) per
    configuration: the engine's issue cycles and read beats equal the model's."""
    bad = [m for seed in suite.seeds(cfg) for m in suite.mismatches(cfg, seed)]
    assert not bad, "\n".join(bad[:5])


def test_every_rule_binds_hundreds_of_times():
    """Over the suite's programs every row of the table is the sole binding constraint of at least 100 issues (so a
    change to one row alone moves issue cycles that the suite compares)."""
    counts = sum((suite_bindings(cfg, suite_seeds(cfg)) for cfg in COVERAGE), Counter())
    low = {PIM_TIMING_RULES[i].text(): counts[i] for i in range(len(PIM_TIMING_RULES)) if counts[i] < 100}
    assert not low, low


MUTANTS = [m for m in mutants() if (PIM_TIMING_RULES[m[0]].rule, m[1]) not in EQUIVALENT_MUTANTS]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{PIM_TIMING_RULES[i].text()}: {kind}" for i, kind, _ in MUTANTS])
def test_random_suite_catches_a_mutated_engine(mutant, suite):
    """An engine whose table has one row dropped, one cycle short, or applied to other all-bank forms (the
    issue's example: tRRD_L not applied to the all-bank ACT) disagrees with the model on the suite's programs — not
    only in the boundary tests."""
    i, kind, rules = mutant
    assert suite.catch(rules) is not None


def _random_gemv(dev, rng, m, k, datatypes=None):
    return random_operands(dev, rng, m, k, extremes=0.3, datatypes=datatypes)


PRESETS = ["fpga-tiny", "fpga-small", "aim-gddr6", "aim-gddr6-bitmod", "hbm2-pim", "hbm3-pim"]
#: per-group datatypes: every built one (int8 among them: 8-bit columns, 4-bit codes in 8-bit fields), or the
#: 4- and 3-bit ones of the preset (4-bit columns)
MIXES = ["all", "4bit"]


def _mix(dev, mix):
    from accel.numerics import DATATYPES

    if mix == "all" or dev.pim.lane == "int8":
        return None
    return [d for d in dev.bitserial.datatypes if DATATYPES[d].code_bits <= 4]


@pytest.mark.parametrize("preset,layout,mix", [
    (p, lay, mix) for p in PRESETS for lay in LAYOUTS for mix in MIXES
    if mix == "all" or load_preset(p).pim.lane == "bitserial"])   # int8 lanes hold int8 weights only
def test_gemv_bit_exact(preset, layout, mix):
    """Random weights (random datatypes per row and group, random scales, extremes, any K) packed at their width in
    every layout, several channels and input vectors, first DRAM rows and activate-first order: y equals the golden
    numerics bit for bit, and the timing-only plan of the same shape (:func:`gemv_program`) has the same command
    words."""
    dev = load_preset(preset)
    rng = np.random.default_rng([PRESETS.index(preset), LAYOUTS.index(layout), MIXES.index(mix)])
    gs = dev.bitserial.group_size
    for trial in range(3):
        m = int(rng.integers(1, 12 if preset == "fpga-tiny" else 40))
        # any K: the last group often short (GPT-2's K = 1600 is 12.5 groups of 128)
        k = gs * int(rng.integers(1, 3 if preset == "fpga-tiny" else 7)) - int(rng.integers(0, gs))
        w, x, dt, sc = _random_gemv(dev, rng, m, k, _mix(dev, mix))
        opts = dict(channels=min(dev.pim.channels, int(rng.integers(1, 5))), act_first=bool(rng.integers(2)),
                    row0=int(rng.integers(0, 3)))
        inputs = int(rng.integers(1, 4))   # several input vectors: each row activation serves all of them
        if inputs > 1:
            x = np.stack([x] + [rng.integers(-128, 128, k) for _ in range(inputs - 1)])
        plan = gemv_plan(dev, w, x, layout, dt, sc, **opts)
        y, stats = run_gemv(dev, plan)
        np.testing.assert_array_equal(y, golden_gemv(dev, w, x, dt, sc))
        assert stats.mac_lane_ops > 0 and stats.cycles > 0
        shape = gemv_program(dev, m, k, layout, dt, sc, inputs=inputs, **opts)
        assert [wd for wd, _ in shape.program] == [wd for wd, _ in plan.program]
        assert all(d is None for _, d in shape.program) and not shape.preload
        assert shape.rows_used == max(r for _, _, r, _ in plan.preload) + 1 - opts["row0"]


@pytest.mark.parametrize("preset", ["fpga-small", "aim-gddr6", "aim-gddr6-bitmod"])
def test_gemv_rows_hold_codes_at_their_width(preset):
    """The preloaded rows of a 4-bit GEMV: every data column holds weights_per_column 4-bit codes (a weight costs 4
    bits), the row's metadata columns hold each group's datatype and scale, and a matrix whose K fills whole rows
    takes exactly K / weights_per_row rows per output row (no padding beyond the row's own metadata)."""
    from accel.interfaces.pim import granule_layout

    dev = load_preset(preset)
    u = dev.bank
    rng = np.random.default_rng(5)
    per_row = dev.weights_per_row("int4")
    k = per_row * 2
    m = dev.pim.banks * 2
    names = [d for d in dev.bitserial.datatypes if d.startswith(("fp4", "int4"))]
    w, x, dt, sc = random_operands(dev, rng, m, k, datatypes=names)
    plan = gemv_plan(dev, w, x, "rows", dt, sc, channels=1)
    assert plan.rows_used == m // dev.pim.banks * 2
    meta, gc = u.metadata_columns(4), u.granule_columns(4)
    lay_k, lay_g = granule_layout(u, 4)
    gw = lay_k.size
    gpg = u.groups_per_granule(4)
    for ch, bank, row, buf in plan.preload:
        out_row, part = bank + dev.pim.banks * (row // 2), row % 2
        codes = column_fields(buf, 4)                   # columns x codes
        for s_ in range(u.granules_per_row(4)):
            g = part * u.granules_per_row(4) + s_
            got = codes[meta + s_ * gc:meta + (s_ + 1) * gc]
            np.testing.assert_array_equal(got, w[out_row, g * gw + lay_k])
            mword = column_word(buf[:meta].reshape(-1))
            for gi in range(gpg):
                grp = (g * gw + gi * dev.bitserial.group_size) // dev.bitserial.group_size
                assert unpack_entry(u, mword, s_ * gpg + gi) == (dt[out_row, grp], sc[out_row, grp])
    y, stats = run_gemv(dev, plan)
    np.testing.assert_array_equal(y, golden_gemv(dev, w, x, dt, sc))
    assert stats.mac_lane_ops == m * k


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=[c.name for c in CONFIGS[:3]])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gemv_per_cycle_model_equals_engine(cfg, layout):
    """A one-channel GEMV program through the per-cycle model: same issue cycles, same RDMAC beats, same y."""
    from dataclasses import replace

    dev = load_preset("fpga-small")
    dev = replace(dev, pim=replace(cfg.pim, channels=1), bitserial=cfg.bitserial or dev.bitserial)
    rng = np.random.default_rng(7)
    k = dev.bitserial.group_size * 2 if dev.pim.lane == "bitserial" else dev.pim.mac_lanes * 6
    w, x, dt, sc = _random_gemv(dev, rng, 2 * dev.pim.banks + 1, k)
    plan = gemv_plan(dev, w, x, layout, dt, sc, channels=1)
    y, _ = run_gemv(dev, plan)
    np.testing.assert_array_equal(y, golden_gemv(dev, w, x, dt, sc))
    # the same program in the per-cycle model (weights preloaded into its banks)
    model = PimChannel(dev.pim, cfg.bitserial, raise_errors=False)
    eng = ChannelEngine(dev.pim, cfg.bitserial)
    from accel.isa import decode

    words, data, issues = [], [], []
    for word, d in plan.program:
        c = decode(word)
        f = dict(c.fields)
        f.pop("channel")
        dd = None
        if d is not None:
            dd = [column_word(row) for row in d]
            data += dd
        words.append(word)
        issues.append((c.op, f, dd))
    for ch, bank, row, slots in plan.preload:
        eng.load_row(bank, row, slots)
        model.banks[bank].row_data(row)[:] = slots
    exp_issues = []
    for op, f, dd in issues:
        i = eng.issue(op, data=dd, **f)
        exp_issues += [i.first + n * i.step for n in range(i.count)]
    cycles = eng.cycles + 3
    stim = Stimulus(sources={"cmd": words, "wdata": data}, source_valid={"cmd": [1] * cycles, "wdata": [1] * cycles},
                    sink_ready={}, plain={"strict": [0] * cycles}, cycles=cycles)
    # run without reset so the preloaded rows stay
    from accel.interfaces.stimulus import Driver

    drv = Driver(stim)
    trace = []
    for c in range(cycles):
        ins = drv.inputs(c)
        outs = model.step(ins)
        drv.observe(ins, outs)
        trace.append(outs)
    assert [c for c, o in enumerate(trace) if o["issued"]] == exp_issues
    reads = [(c, o["rdata__payload"]) for c, o in enumerate(trace) if o["rdata__valid"]]
    assert reads == eng.reads
    np.testing.assert_array_equal(plan.results([reads]), y)


def test_dedup_keeps_cycle_counts():
    dev = load_preset("aim-gddr6")
    rng = np.random.default_rng(3)
    w = rng.integers(0, 16, (512, 1024))
    x = rng.integers(-128, 128, 1024)
    plan = gemv_plan(dev, w, x, "rows", np.zeros((512, 8), int) + 3, np.ones((512, 8), int), data=False)
    a = DeviceEngine(dev, functional=False, dedup=True).run(plan.program)
    b = DeviceEngine(dev, functional=False, dedup=False).run(plan.program)
    assert a.cycles == b.cycles and a.mac_lane_ops == b.mac_lane_ops
    np.testing.assert_array_equal(a.bank_active_cycles, b.bank_active_cycles)


def test_device_engine_rejects_bad_channel():
    dev = load_preset("fpga-small")
    with pytest.raises(AccelError, match=r"command 0 addresses channel 3; the device has 1 channels"):
        DeviceEngine(dev).run([encode("pim", "ACT", channel=3)])


def test_run_length_equals_expanded():
    """A run-length MAC/RD/WR/WRGB/RDMAC is the same as its elements issued one by one."""
    cfg = CONFIGS[2]
    rng = np.random.default_rng(1)
    for op in (PimOp.MAC, PimOp.RD, PimOp.WR, PimOp.WRGB, PimOp.RDMAC):
        a, b = ChannelEngine(cfg.pim, cfg.bitserial), ChannelEngine(cfg.pim, cfg.bitserial)
        for e in (a, b):
            e.issue(PimOp.ACT, all_banks=1, row=1)
        n = 3
        data = [int(v) for v in rng.integers(0, 2**62, n)] if op in (PimOp.WR, PimOp.WRGB) else None
        ia = a.issue(op, all_banks=int(op in (PimOp.MAC, PimOp.WR)), col=0, count=n, data=data)
        cyc = []
        for j in range(n):
            f = dict(all_banks=int(op in (PimOp.MAC, PimOp.WR)), col=j if op != PimOp.RDMAC else 0,
                     bank=j if op == PimOp.RDMAC else 0)
            cyc.append(b.issue(op, data=[data[j]] if data else None, **f).first)
        assert [ia.first + j * ia.step for j in range(n)] == cyc
        assert a.reads == b.reads


@pytest.mark.parametrize("preset", ["aim-gddr6", "hbm3-pim", "fpga-small"])
def test_periodic_jump_equals_full_run(preset):
    """Jumping over repeated blocks gives the cycle counts and statistics of issuing every command."""
    dev = load_preset(preset)
    rng = np.random.default_rng(11)
    for layout in ("rows", "ksplit"):
        m = int(rng.integers(16, 40 if preset == "fpga-small" else 600))
        gs = dev.bitserial.group_size
        k = gs * int(rng.integers(1, 12))
        w = np.zeros((m, k), dtype=np.int64)
        ng = k // gs
        plan = gemv_plan(dev, w, np.zeros(k, np.int64), layout, np.zeros((m, ng), int), np.ones((m, ng), int),
                         data=False)
        a = DeviceEngine(dev, functional=False, periodic=True).run(plan.program)
        b = DeviceEngine(dev, functional=False, periodic=False, dedup=False).run(plan.program)
        assert (a.cycles, a.mac_lane_ops, a.commands, a.elements) == (b.cycles, b.mac_lane_ops, b.commands,
                                                                       b.elements)
        np.testing.assert_array_equal(a.bank_active_cycles, b.bank_active_cycles)
        np.testing.assert_array_equal(a.bank_mac_elements, b.bank_mac_elements)


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.name for c in CONFIGS])
def test_periodic_jump_random_blocks(cfg):
    """Random legal blocks repeated many times, with random prefixes: jump = full run."""
    from accel.equivalence.pim import random_program

    for seed in range(25):
        rng = np.random.default_rng(seed)
        block = random_program(cfg, rng, int(rng.integers(2, 12)))
        # a block must leave the banks as it found them to be repeatable: close everything at its end
        block.append(({"op": int(PimOp.PRE), "all_banks": 1, "bank": 0, "row": 0, "col": 0, "count": 0}, None))
        prefix = random_program(cfg, rng, int(rng.integers(0, 5)))
        prefix.append(({"op": int(PimOp.PRE), "all_banks": 1, "bank": 0, "row": 0, "col": 0, "count": 0}, None))
        prog = prefix + block * int(rng.integers(3, 9))
        table = [[f["op"], f["all_banks"], f["bank"], f["row"], f["col"], f["count"]] for f, _ in prog]
        a = ChannelEngine(cfg.pim, cfg.bitserial, functional=False)
        b = ChannelEngine(cfg.pim, cfg.bitserial, functional=False)
        a.run_table(table, periodic=True)
        b.run_table(table, periodic=False)
        sa, sb = a.stats(), b.stats()
        assert (sa.cycles, sa.mac_lane_ops, sa.commands) == (sb.cycles, sb.mac_lane_ops, sb.commands), seed
        np.testing.assert_array_equal(sa.bank_active_cycles, sb.bank_active_cycles)


def test_device_engine_runs_once():
    dev = load_preset("fpga-small")
    eng = DeviceEngine(dev, functional=False)
    eng.run([encode("pim", "NOP")])
    with pytest.raises(AccelError, match=r"runs one program"):
        eng.run([encode("pim", "NOP")])


def test_dedup_still_checks_every_channel():
    """Channels are deduplicated without their row addresses, but a row that does not exist is still an error."""
    dev = load_preset("aim-gddr6")
    words = [encode("pim", "ACT", channel=c, all_banks=1, row=5) for c in range(dev.pim.channels)]
    words[7] = encode("pim", "ACT", channel=7, all_banks=1, row=dev.pim.rows)
    from accel.interfaces.pim import PimIllegalError

    with pytest.raises(PimIllegalError, match=r"addresses outside the channel"):
        DeviceEngine(dev, functional=False).run(words)


@pytest.mark.parametrize("preset,pace8,pace4", [("aim-gddr6", 8, 8), ("aim-gddr6-bitmod", 4, 2)])
def test_mac_pace_follows_the_format(preset, pace8, pace4):
    """A bank's format register sets the MAC pace: aim-gddr6's one 16-lane unit takes 8 cycles for a column of 32
    int8 or 64 4-bit codes; the BitMoD variant's four units take a 4-bit column at the column rate (2) and an int8
    column in 4. A 4-bit GEMV reads half the columns of an int8 one, so it is faster on both."""
    dev = load_preset(preset)
    eng = ChannelEngine(dev.pim, dev.bitserial, functional=False)
    eng.issue(PimOp.ACT, all_banks=1)
    assert eng.issue(PimOp.MAC, all_banks=1, count=8).step == max(pace8, dev.pim.timing.nCCD_AB)
    eng.issue(PimOp.CFR, all_banks=1, col=8, row=4)
    assert eng.issue(PimOp.MAC, all_banks=1, count=8).step == max(pace4, dev.pim.timing.nCCD_AB)
    m, k = 512, 1024
    ng = k // dev.bitserial.group_size
    w = np.zeros((m, k), dtype=np.int64)
    cyc = {}
    for name in ("int8", "int4", "fp4_er_pos", "int3"):
        code = dev.bitserial.dtype_codes[name]
        plan = gemv_plan(dev, w, np.zeros(k, np.int64), "rows", np.full((m, ng), code), np.ones((m, ng), int),
                         data=False)
        cyc[name] = DeviceEngine(dev, functional=False).run(plan.program).cycles
    assert cyc["int4"] == cyc["fp4_er_pos"] == cyc["int3"] < cyc["int8"]
