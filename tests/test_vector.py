"""The vector unit's and the link's per-cycle models equal their closed forms (cycles, events) on random ops offered
at random times; their configurations load strictly."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from accel.config import ConfigError, LinkConfig, VectorConfig, load_preset
from accel.emulator.units.link import Link
from accel.emulator.units.vector import VectorUnit
from accel.errors import StimulusError
from accel.interfaces.link import copies, transfer_beats, transfer_cycles
from accel.interfaces.vector import passes, regions, vector_cycles, vector_events
from accel.isa import TABLES, Endpoint, Family, VectorOp, encode

PRESETS = ["fpga-tiny", "fpga-small", "aim-gddr6", "hbm3-pim", "pim-gpt"]


def _random_op(v: VectorConfig, rng: np.random.Generator) -> int:
    op = VectorOp(int(rng.integers(0, len(VectorOp))))
    length = int(rng.integers(2, 4 * v.lanes + 2))
    count = int(rng.integers(0, 4))
    k = int(rng.integers(1, length // 2 + 1))
    word = encode("vector", op, length=length, count=count, src=0, src2=k if op == VectorOp.TOPK else 0, dst=0)
    f = TABLES[Family.VECTOR].decode(word)
    lines = v.buffer_lines
    # operands anywhere they fit
    spans = {name: n for name, _, n in regions(f["op"], length, count, 0, f["src2"], 0, v)}
    place = {name: int(rng.integers(0, lines - n + 1)) for name, n in spans.items() if n <= lines}
    if len(place) < len(spans):
        return encode("vector", "COPY", length=1, src=0, dst=0)
    return encode("vector", op, length=length, count=count, src=place.get("src", 0),
                  src2=k if op == VectorOp.TOPK else place.get("src2", 0), dst=place.get("dst", 0))


@pytest.mark.parametrize("preset", PRESETS)
def test_vector_unit_equals_closed_form(preset):
    """Ops offered back to back or after random gaps: each is taken when the unit is idle and completes exactly
    vector_cycles later; buffer reads and writes are the closed form's events."""
    v = load_preset(preset).vector
    if preset == "aim-gddr6":  # keep the per-cycle run short: a smaller buffer, same pipeline
        v = replace(v, lanes=16, buffer_bytes=4096)
    rng = np.random.default_rng(sum(map(ord, preset)))
    unit = VectorUnit(v)
    ops = [_random_op(v, rng) for _ in range(60)]
    gaps = [int(rng.integers(0, 4)) if rng.random() < 0.4 else 0 for _ in ops]
    expect_reads = expect_writes = 0
    cycle, free = 0, 0
    for word, gap in zip(ops, gaps):
        f = TABLES[Family.VECTOR].decode(word)
        for _ in range(gap):
            assert unit.step({})["beat"] == (cycle < free)
            cycle += 1
        offered = cycle
        while True:
            out = unit.step({"cmd__valid": 1, "cmd__payload": word})
            cycle += 1
            if out["cmd__ready"]:
                break
        start = cycle - 1
        assert start == max(offered, free)
        n = vector_cycles(f["op"], f["length"], f["count"], f["src2"], v)
        busy, beats = 1, out["beat"]
        done = start + 1 if out["done"] else None
        while done is None:
            out = unit.step({})
            busy += out["busy"]
            beats += out["beat"]
            cycle += 1
            if out["done"]:
                done = cycle
        assert done - start == n == busy, (VectorOp(f["op"]).name, f)
        e = vector_events(f["op"], f["length"], f["count"], f["src2"], v)
        assert beats == e.beats == sum(p.beats for p in passes(f["op"], f["length"], f["count"], f["src2"], v))
        expect_reads += e.sram_reads
        expect_writes += e.sram_writes
        free = done
    assert (unit.reads, unit.writes) == (expect_reads, expect_writes)


def test_vector_cycles_hand_checked():
    """SOFTMAX on fpga-tiny (4 lanes, sram 1, add 1, mul 2, exp 3, recip 4): 10 elements x 2 rows = 6 beats per
    pass; reduce depth = add x (log2 4 + 1) = 3; passes 6 + 4 - 1, 6 + 8 - 1 + 4, 6 + 3 - 1."""
    v = load_preset("fpga-tiny").vector
    assert v.reduce_latency == 3
    assert vector_cycles(VectorOp.SOFTMAX, 10, 2, 0, v) == (6 + 4 - 1) + (6 + 8 - 1 + 4) + (6 + 3 - 1)
    assert vector_cycles(VectorOp.ADD, 4, 0, 0, v) == 1 + 2 - 1
    assert vector_cycles(VectorOp.NOP, 0, 0, 0, v) == 1


def test_vector_unit_refuses_lines_outside_the_buffer():
    v = load_preset("fpga-tiny").vector
    unit = VectorUnit(v)
    word = encode("vector", "COPY", length=8, src=v.buffer_lines - 1, dst=0)
    unit.step({"cmd__valid": 1, "cmd__payload": word})
    with pytest.raises(StimulusError, match=r"^vector COPY at cycle 1: src line 32 is outside the buffer "
                                            r"\(lines 0 \.\. 31\)$"):
        unit.step({})


@pytest.mark.parametrize("preset", ["fpga-tiny", "fpga-small", "aim-gddr6", "hbm2-pim"])
def test_link_equals_closed_form(preset):
    """Transfers offered at random times: taken when the serialiser is free, arriving beats + latency after."""
    dev = load_preset(preset)
    link = Link(dev)
    rng = np.random.default_rng(sum(map(ord, preset)) + 1)
    ends = list(range(min(dev.pim.channels, 4))) + [Endpoint.VECTOR, Endpoint.HOST, Endpoint.ALL]
    cycle, free, arrivals, expect = 0, 0, [], []
    for _ in range(40):
        nbytes = int(rng.integers(1, 300))
        dst = int(rng.choice(ends))
        word = encode("link", "XFER", src=int(Endpoint.HOST), dst=dst, bytes=nbytes)
        for _ in range(int(rng.integers(0, 3))):
            if link.step({})["arrive"]:
                arrivals.append(cycle + 1)
            cycle += 1
        offered = cycle
        while True:
            out = link.step({"cmd__valid": 1, "cmd__payload": word})
            if out["arrive"]:
                arrivals.append(cycle + 1)
            cycle += 1
            if out["cmd__ready"]:
                break
        start = cycle - 1
        n = copies(dst, dev)
        assert start == max(offered, free)
        free = start + transfer_beats(nbytes, dev.link, n)
        expect.append(start + transfer_cycles(nbytes, dev.link, n))
    while len(arrivals) < len(expect):
        if link.step({})["arrive"]:
            arrivals.append(cycle + 1)
        cycle += 1
    assert arrivals == expect


def test_link_and_vector_config_rules():
    v = load_preset("fpga-tiny").vector
    with pytest.raises(ConfigError, match=r"^buffer_bytes = 100: must be a positive multiple of a line \(8 bytes"):
        replace(v, buffer_bytes=100)
    with pytest.raises(ConfigError, match=r"^element_bits = 12: must be 8, 16 or 32$"):
        replace(v, element_bits=12)
    with pytest.raises(ConfigError, match=r"^exp_latency = 0: must be between 1 and 65536$"):
        replace(v, exp_latency=0)
    with pytest.raises(ConfigError, match=r"^latency = -1: must be between 0 and"):
        LinkConfig(64, 100.0, -1, 1.0, True)
    dev = load_preset("fpga-small")
    assert dev.link.bytes_per_s == 16 / 8 * 50e6 and v.buffer_lines == 32 and v.line_bytes == 8


def test_clocks_are_exact():
    """fpga-tiny's PIM clock (tCK 83.333 ns) and vector clock (12 MHz) differ slightly: both are whole ticks."""
    c = load_preset("fpga-tiny").clocks
    assert c.pim * c.tick_ns == pytest.approx(83.333, abs=0) and c.vector * c.tick_ns * 12 == 1000
    assert c.link * 2 == c.vector and c.sync == c.pim
    a = load_preset("aim-gddr6").clocks
    assert (a.pim, a.vector, a.link, a.sync) == (1, 1, 1, 1) and float(a.tick_ns) == 0.5
