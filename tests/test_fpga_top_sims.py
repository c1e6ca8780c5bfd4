"""The FPGA top under three simulators: one line-level session (STATUS, ECHO, a GEMV written, run and read through the
link, an illegal command, CLEAR) as a fixed ``rx`` waveform through Amaranth's simulator, cocotb+Icarus and
cocotb+Verilator. Every simulator's per-cycle ``tx``, ``status`` and ``activity`` must be identical, and the
responses must carry the golden GEMV and the emulator's read beats."""
from __future__ import annotations

import pytest

from accel.config import load_preset
from accel.fpga.program import beats_of, command_elements, expected_beats, random_gemv
from accel.fpga.protocol import PIM_ERROR, Kind, Status, beat_words, id_words
from accel.fpga.sim import responses_of, session_stimulus, uart_bytes, uart_levels
from accel.fpga.top import DeviceTop
from accel.interfaces.pim import PimRule
from accel.isa import PimOp, encode
from accel.equivalence.harness import compare_all, run_amaranth, run_cocotb, simulator_available

DIV = 4


def test_uart_levels_round_trip():
    data = bytes(range(0, 256, 7))
    assert bytes(uart_bytes([1, 1] + uart_levels(data, 5) + [1] * 20, 5)) == data


def _session(dev):
    """Requests ``(kind, words, response words)``: identification, echo, a 2-row GEMV (weights written through the
    link, MACs, RDMAC; K one bit-serial group or 16), an illegal RD to a closed bank, the status it left, CLEAR and
    the status after it."""
    g = random_gemv(dev, 2, max(16, dev.bitserial.group_size), seed=3)
    nbeat = beat_words(dev)
    reqs = [(Kind.STATUS, [], 3), (Kind.ECHO, [1, (1 << 64) - 1, 0x0123456789ABCDEF], 3)]
    for step in g["steps"]:
        op, n = command_elements(step.word, dev.pim.banks)
        reqs.append((Kind.EXEC, [step.word, *step.data], n * nbeat if op in (PimOp.RD, PimOp.RDMAC) else 0))
    reqs.append((Kind.EXEC, [encode("pim", PimOp.RD, bank=0, col=0)], 0))   # bank 0 is closed: rule CLOSED
    reqs.append((Kind.STATUS, [], 3))
    reqs.append((Kind.CLEAR, [], 0))
    reqs.append((Kind.STATUS, [], 3))
    return g, reqs


@pytest.mark.rtl
@pytest.mark.cocotb
@pytest.mark.parametrize("preset", ["fpga-tiny", "fpga-small"])
def test_top_three_simulators_same_cycles_and_golden_results(preset):
    dev = load_preset(preset)
    g, reqs = _session(dev)
    stim = session_stimulus(reqs, DIV)
    stim.label = f"{preset} session"
    top = lambda: DeviceTop(dev, DIV, rx_timeout=4096)  # noqa: E731
    (ref,) = run_amaranth(top(), [stim])
    # the responses: identification, echo, the GEMV's read beats equal the emulator's and give the golden y
    resp = responses_of(ref, DIV)
    assert len(resp) == len(reqs)
    assert resp[0].status == Status.OK and resp[0].words == (0, *id_words(dev))
    assert resp[1].words == (1, (1 << 64) - 1, 0x0123456789ABCDEF)
    gemv = resp[2:2 + len(g["steps"])]
    assert all(r.status == Status.OK for r in gemv)
    words = [w for r in gemv for w in r.words]
    beats = beats_of(words, beat_words(dev))
    assert beats == expected_beats(dev, g["steps"])
    y = g["plan"].results([[(0, b) for b in beats]])
    assert y.tolist() == g["golden"].tolist()
    err, st_err, _, st_clear = resp[2 + len(g["steps"]):]
    assert err.status == PIM_ERROR | PimRule.CLOSED and err.words == ()
    assert st_err.words[0] == PIM_ERROR | PimRule.CLOSED and st_clear.words[0] == 0
    # and the same line, cycle for cycle, under Icarus and Verilator
    missing = []
    for sim in ("icarus", "verilator"):
        reason = simulator_available(sim)
        if reason:
            missing.append(reason)
            continue
        (trace,) = run_cocotb(sim, top(), [stim], "device_top")
        assert compare_all([stim], "amaranth", [ref], sim, [trace]) == []
    if missing:
        pytest.skip("; ".join(missing))
