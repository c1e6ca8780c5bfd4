"""The system engine equals the per-cycle system model (total cycles, per-unit busy cycles, per-marker times) on
random multi-unit programs with random acyclic SIGNAL/WAIT graphs, detects deadlocks with the same message, and
the randomised suite catches a mutated engine."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from system_random import random_program, scaled_aim, system_devices

from accel.config import load_preset
from accel.emulator.engine import ChannelEngine
from accel.emulator.system import SystemEngine, SystemResult, run_program
from accel.emulator.system_model import SystemModel
from accel.errors import AccelError
from accel.interfaces.pim import CFR_FORMAT, mac_weights, stream_mac_work
from accel.isa import Family, PimOp, SyncOp, encode
from accel.program import DeadlockError, Program, ProgramBuilder, ProgramError, Stream

DEVICES = system_devices()
SEEDS = 60


def _summary(r: SystemResult) -> tuple:
    return (r.cycles, r.ticks, {n: (s.end, s.busy, s.commands, s.marks) for n, s in r.streams.items()})


def _mismatches(dev, seeds, engine=SystemEngine) -> list[str]:
    bad = []
    for seed in seeds:
        prog = random_program(dev, seed, deadlock=seed % 9 == 4)
        try:
            e = engine(dev).run(prog)
        except DeadlockError as de:
            with pytest.raises(DeadlockError) as dm:
                SystemModel(dev).run(prog)
            if str(de) != str(dm.value) or de.blocked != dm.value.blocked:
                bad.append(f"{dev.name} seed {seed}: deadlock messages differ:\n  {de}\n  {dm.value}")
            continue
        m = SystemModel(dev).run(prog)
        if _summary(e) != _summary(m):
            bad.append(f"{dev.name} seed {seed}: engine {_summary(e)} != model {_summary(m)}")
    return bad


@pytest.mark.parametrize("dev", DEVICES, ids=[d.name for d in DEVICES])
def test_engine_equals_per_cycle_model(dev):
    """Random programs per device (every unit kind, run-length commands, random clocks and sync latencies, one in
    nine closed into a deadlock): equal in every figure."""
    bad = _mismatches(dev, range(SEEDS))
    assert not bad, "\n".join(bad[:3])


def test_random_programs_are_not_trivial():
    """The suite exercises what it claims: many WAITs, streams whose unit goes idle and resumes, deadlocks."""
    dev = scaled_aim()
    waits = gaps = deadlocks = 0
    for seed in range(SEEDS):
        prog = random_program(dev, seed, deadlock=seed % 9 == 4)
        waits += sum(int(((s.families == Family.SYNC) & (s.field(Family.SYNC, "op") == SyncOp.WAIT)).sum())
                     for s in prog.streams)
        try:
            r = SystemEngine(dev).run(prog)
        except DeadlockError:
            deadlocks += 1
            continue
        gaps += sum(len(s.intervals) > 1 for s in r.streams.values())
    assert waits > 3 * SEEDS and gaps > SEEDS // 2 and deadlocks >= SEEDS // 9


def test_equal_channels_run_once_with_equal_results():
    """Channel dedup: symmetric PIM streams give the same figures as running every stream (and as the model)."""
    dev = scaled_aim(4)
    for seed in range(12):
        prog = random_program(dev, seed, equal_channels=True)
        a = SystemEngine(dev).run(prog)
        b = SystemEngine(dev, dedup=False, periodic=False).run(prog)
        assert _summary(a) == _summary(b) == _summary(SystemModel(dev).run(prog))


def test_run_length_equals_expanded():
    """A run-length MAC/WRGB means its expanded per-command stream, also across SYNC boundaries."""
    dev = load_preset("fpga-small")

    def prog(expanded: bool) -> Program:
        b = ProgramBuilder(dev.name)
        s = b.stream("pim0").cmd("ACT", all_banks=1, row=1)
        if expanded:
            for c in range(4):
                s.cmd("MAC", all_banks=1, col=c)
        else:
            s.cmd("MAC", all_banks=1, col=0, count=4)
        s.cmd("RDMAC", all_banks=1).signal(0)
        b.stream("vector").wait("pim0", 0).cmd("ADD", length=8, src=0, src2=1, dst=2)
        return b.build()

    a, b = SystemEngine(dev).run(prog(False)), SystemEngine(dev).run(prog(True))
    assert a.cycles == b.cycles and a.streams["vector"].marks == b.streams["vector"].marks
    assert a.streams["pim0"].busy == b.streams["pim0"].busy and a.cycles == SystemModel(dev).run(prog(True)).cycles


def test_signal_waits_for_read_data_and_sync_latency():
    """A hand-checked schedule: RDMAC data leaves the pins nBL cycles after issue; the WAIT passes sync_latency
    device cycles after the SIGNAL's event; the vector op then runs its closed-form cycles."""
    from accel.interfaces.vector import vector_cycles
    from accel.isa import VectorOp

    dev = load_preset("fpga-tiny")
    t = dev.pim.timing
    b = ProgramBuilder(dev.name)
    b.stream("pim0").cmd("RDMAC", bank=0).signal(3)
    b.stream("vector").wait("pim0", 3).mark(9).cmd("GELU", length=4, src=0, dst=1)
    r = SystemEngine(dev).run(b.build())
    c = dev.clocks
    event = (1 + t.nBL + 1) * c.pim           # issued in cycle 1, data in 1 + nBL, complete the cycle after
    met = -(-(event + c.sync) // c.vector)
    assert r.streams["pim0"].end == 1 + t.nBL + 1
    assert r.streams["vector"].marks == [(9, met, met + vector_cycles(VectorOp.GELU, 4, 0, 0, dev.vector))]
    assert r.streams["vector"].busy == vector_cycles(VectorOp.GELU, 4, 0, 0, dev.vector)
    assert r.ticks == r.streams["vector"].end * c.vector and r.cycles == -(-r.ticks // c.pim)


def test_cfr_formats_are_part_of_the_schedule():
    """A CFR's row is the bank's column format, which paces bit-serial MACs (fpga-small: an 8-bit column takes 4
    cycles, a 4-bit one 2): channel streams that differ only there are not deduplicated, and blocks that differ only
    there are not jumped as repetitions (both models agree, with and without dedup and block jumps)."""
    small = load_preset("fpga-small")
    dev = replace(small, pim=replace(small.pim, channels=2))
    b = ProgramBuilder(dev.name)
    for c, fmts in enumerate([[8] * 12, [4] * 6 + [8] * 6]):
        s = b.stream(f"pim{c}")
        for f in fmts:
            s.cmd("CFR", all_banks=1, col=CFR_FORMAT, row=f).cmd("ACT", all_banks=1, row=1)
            s.cmd("MAC", all_banks=1, col=0, count=12).cmd("PRE", all_banks=1)
    prog = b.build()
    ref = _summary(SystemModel(dev).run(prog))
    assert ref[2]["pim0"][0] != ref[2]["pim1"][0]
    for engine in (SystemEngine(dev), SystemEngine(dev, dedup=False), SystemEngine(dev, periodic=False)):
        assert _summary(engine.run(prog)) == ref


# --------------------------------------------------------------------------------------------------------------------
# Mutations: the randomised suite must notice a wrong engine


class _ShortSignal(SystemEngine):
    """Mutant: a PIM stream's completion (reads, bit-serial MACs) one cycle early."""

    def run(self, program):
        orig = ChannelEngine.completion
        ChannelEngine.completion = lambda ch: orig(ch) - 1
        try:
            return super().run(program)
        finally:
            ChannelEngine.completion = orig


class _LinkLatency(SystemEngine):
    """Mutant: the link's latency off by one."""

    def _runner(self, program, i):
        r = super()._runner(program, i)
        if r.kind == "link":
            r.latency += 1
        return r


@pytest.mark.parametrize("mutant", [_ShortSignal, _LinkLatency])
def test_mutations_are_caught(mutant):
    dev = scaled_aim()
    assert _mismatches(dev, range(SEEDS), mutant), f"{mutant.__doc__} went unnoticed"


# --------------------------------------------------------------------------------------------------------------------
# Deadlocks and bad input


def test_deadlock_names_streams_and_tokens_in_both_models():
    dev = load_preset("fpga-small")
    b = ProgramBuilder(dev.name)
    b.stream("pim0").cmd("ACT", all_banks=1, row=0).wait("vector", 1).signal(2)
    b.stream("vector").wait("link", 5).signal(1)
    b.stream("link").wait("pim0", 2).signal(5)
    b.stream("array").cmd("GEMM", m=2, k=2, n=2)
    prog = b.build()
    msg = (r"^the program deadlocks: pim0 waits for vector token 1 \(its 1st SIGNAL token=1\); vector waits for link "
           r"token 5 \(its 1st SIGNAL token=5\); link waits for pim0 token 2 \(its 1st SIGNAL token=2\); each waits "
           r"for a stream that waits: reorder the SIGNALs and WAITs so that the dependencies have no cycle$")
    for model in (SystemEngine, SystemModel):
        with pytest.raises(DeadlockError, match=msg) as e:
            model(dev).run(prog)
        assert e.value.blocked == {"pim0": ("vector", 1, 1), "vector": ("link", 5, 1), "link": ("pim0", 2, 1)}


def test_wait_for_a_signal_that_never_comes():
    dev = load_preset("fpga-tiny")
    b = ProgramBuilder(dev.name)
    b.stream("pim0").signal(1).signal(1)
    b.stream("vector").wait("pim0", 1).wait("pim0", 1).wait("pim0", 1)
    with pytest.raises(ProgramError, match=r"^stream vector command 2: WAIT stream=pim0 token=1 waits for its 3rd "
                                           r"SIGNAL token=1, but pim0 signals token 1 2 times$"):
        SystemEngine(dev).run(b.build())


@pytest.mark.parametrize("build,message", [
    (lambda b: b.stream("pim1").cmd("NOP"), r"^stream pim1: device fpga-tiny has 1 channels \(pim0 \.\. pim0\)$"),
    (lambda b: b.stream("array").cmd("GEMM", m=1, k=1, n=1), r"^stream array: device fpga-tiny has no attention "
                                                              r"array$"),
    (lambda b: b.stream("vector").cmd("ADD", length=200, src=0, src2=0, dst=0),
     r"^stream vector command 0: ADD length=200 count=1: src needs lines 0 \.\. 49 of the vector buffer, which has "
     r"32 lines of 4 elements \(256 bytes\); split the op or move the operand$"),
    (lambda b: b.stream("vector").cmd("TOPK", length=4, src2=3), r"TOPK src2=3 \(k\) must be between 1 and "
                                                                  r"length / 2 \(2\)"),
    (lambda b: b.stream("link").xfer("all", "vector", 8), r"XFER src=all: 'all' \(every channel\) is a destination"),
    (lambda b: b.stream("link").xfer("pim0", "pim0", 8), r"XFER src=dst=pim0"),
    (lambda b: b.stream("link").xfer("pim0", "array", 8), r"XFER dst=array: fpga-tiny has no attention array"),
    (lambda b: b.stream("link").xfer("pim0", 7, 8), r"XFER dst=7: not an endpoint of fpga-tiny"),
    (lambda b: b.stream("link").xfer("pim0", "host", 0), r"XFER bytes=0: a transfer moves at least one byte"),
    (lambda b: b.stream("pim0").cmd("ACT", row=99), r"^stream pim0 command 0: ACT row=99: the banks have rows "
                                                     r"0 \.\. 15$"),
    (lambda b: b.stream("pim0").wait("pim0", 0), r"WAIT on its own stream \(token 0\) can never be met"),
])
def test_bad_programs(build, message):
    b = ProgramBuilder("fpga-tiny")
    build(b)
    with pytest.raises(ProgramError, match=message):
        SystemEngine(load_preset("fpga-tiny")).run(b.build())


def test_words_a_unit_cannot_run():
    dev = load_preset("fpga-tiny")
    for name, word, msg in [
        ("vector", encode("pim", "ACT"), r"^stream vector command 0: word 0x0+8 is a PIM command; a vector stream "
                                         r"holds VECTOR and SYNC commands only$"),
        ("pim0", encode("bitserial", "DOT"), r"is a BITSERIAL command; a pim stream holds PIM and SYNC"),
        ("pim0", 6, r"is a family 6 command"),
        ("pim0", encode("pim", "ACT", channel=3), r"channel field 3: commands of stream pim0 address channel 0"),
        ("link", encode("sync", "NOP") | (9 << 3), r"is not a SYNC command \(op 9, bits above"),
    ]:
        with pytest.raises(ProgramError, match=msg):
            SystemEngine(dev).run(Program([Stream(name, np.array([word], dtype=np.uint64))], dev.name))


def test_illegal_pim_command_names_stream_and_command():
    dev = load_preset("fpga-tiny")
    b = ProgramBuilder(dev.name)
    b.stream("pim0").cmd("ACT", row=1).signal(0).cmd("MAC", bank=1, col=0)
    with pytest.raises(AccelError, match=r"^stream pim0 command 2: MAC bank=1 count=1 at cycle 2: bank 1 has no open "
                                         r"row; ACT a row first$"):
        SystemEngine(dev).run(b.build())


def test_run_program_and_json():
    dev = load_preset("fpga-small")
    prog = random_program(dev, 3)
    a, b = run_program(prog), run_program(prog, dev, model="cycle")
    assert _summary(a) == _summary(b)
    j = a.to_json()
    assert j["cycles"] == a.cycles and set(j["streams"]) == {s.name for s in prog.streams}
    assert all(0 <= v["utilisation"] <= 1 for v in j["streams"].values())
    assert sum(a.events.values()) > 0


def test_link_broadcast_or_copies():
    """A transfer to every channel is sent once with broadcast and once per channel without."""
    dev = scaled_aim(3)
    b = ProgramBuilder(dev.name)
    b.stream("link").xfer("host", "all", 64)
    with_bc = SystemEngine(dev).run(b.build()).streams["link"].busy
    nobc = replace(dev, link=replace(dev.link, broadcast=False))
    without = SystemEngine(nobc).run(b.build()).streams["link"].busy
    assert with_bc == 64 * 8 // dev.link.width_bits and without == 3 * with_bc


def _mac_work_row_by_row(unit, table, times):
    """The MAC units' work by a walk over the rows and banks (the naive reference of ``stream_mac_work``)."""
    fmt = [unit.reset_format] * unit.pim.banks
    weights = terms = gb = 0
    for (op, ab, bank, row, col, count), n in zip(table, times):
        banks = range(unit.pim.banks) if ab else (bank,)
        if op == PimOp.MAC:
            for b in banks:
                w = mac_weights(unit, fmt[b], col, max(1, count)) * n
                weights += w
                terms += w * unit.format_terms(fmt[b]) if unit.bitserial is not None else 0
            gb += n * max(1, count) * max(unit.gb_columns_per_mac(fmt[b]) for b in banks)
        elif op == PimOp.CFR and col == CFR_FORMAT:
            for b in banks:
                fmt[b] = row
    return weights, terms, gb


@pytest.mark.parametrize("preset", ["aim-gddr6", "aim-gddr6-bitmod", "hbm2-pim"])
def test_mac_work_equals_a_walk_over_rows_and_banks(preset):
    """The energy table's MAC work (vectorised over the rows: every bank's format from the latest format CFR that
    reached it) equals a walk over every row and bank, on random streams of all-bank and single-bank MACs (on data and
    metadata columns), format CFRs to all banks or one, other CFRs and repeated rows."""
    unit = load_preset(preset).bank
    rng = np.random.default_rng(11)
    for _ in range(150):
        rows = []
        for _ in range(int(rng.integers(0, 30))):
            ab, bank = int(rng.random() < 0.5), int(rng.integers(unit.pim.banks))
            r = rng.random()
            if r < 0.25:
                rows.append((PimOp.CFR, ab, bank, int(rng.choice(unit.formats)), CFR_FORMAT, 0))
            elif r < 0.3:
                rows.append((PimOp.CFR, ab, bank, 3, CFR_FORMAT + 1, 0))
            elif r < 0.4:
                rows.append((PimOp.ACT, ab, bank, 5, 0, 0))
            else:
                col = int(rng.integers(unit.pim.columns))
                rows.append((PimOp.MAC, ab, bank, 0, col, int(rng.integers(0, unit.pim.columns - col + 1))))
        times = rng.integers(1, 9, len(rows)).tolist()
        work = stream_mac_work(unit, rows, times)
        assert (work.weights, work.terms, work.gb_columns) == _mac_work_row_by_row(unit, rows, times)


def test_busy_intervals_at_once_equal_one_by_one():
    """The epoch jump's copies of busy intervals merged at once (``add_busy_all``) give the busy cycles, coverage
    and merged intervals of adding them one by one, after any earlier intervals (empty and reversed ones
    included)."""
    from accel.emulator.system import _Runner

    rng = np.random.default_rng(5)
    for _ in range(2000):
        one, many = (_Runner(Stream("vector", np.zeros(0, dtype=np.uint64)), [], 1) for _ in range(2))
        for a in rng.integers(0, 30, int(rng.integers(0, 4))).tolist():
            b = a + int(rng.integers(-2, 6))
            one.add_busy(a, b)
            many.add_busy(a, b)
        starts = rng.integers(0, 60, int(rng.integers(0, 12)))
        ends = starts + rng.integers(-3, 8, len(starts))
        for a, b in zip(starts.tolist(), ends.tolist()):
            one.add_busy(a, b)
        many.add_busy_all(starts, ends)
        assert (one.busy, one.covered, one.intervals) == (many.busy, many.covered, many.intervals)
