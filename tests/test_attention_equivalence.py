"""Four-way equivalence of the attention array: per-cycle model, Amaranth sim, cocotb+Icarus, cocotb+Verilator.

Hundreds of randomised stimuli per configuration (random tiles: head dimension, key count, causal masks, query
positions, score shifts, extreme values; random gaps on Q, K and V; random backpressure on O), each run in one
simulator session, must give identical outputs on every cycle; the model's O tiles must equal the golden numerics
(checked by the runner).
"""
from __future__ import annotations

import pytest

from accel.emulator.units.attention import AttentionArray
from accel.rtl.attention import AttentionArray as AttentionRTL
from accel.rtl.attention import k_layout, q_layout
from accel.sim.attention import SPEC, TEST_CONFIGS, make_stimulus
from accel.sim.harness import Stimulus, compare_all, run_amaranth, run_model
from accel.sim.packing import Packer

SEEDS = range(200)
CFG_IDS = [f"cfg{i}" for i in range(len(TEST_CONFIGS))]


@pytest.mark.rtl
@pytest.mark.parametrize("cfg", TEST_CONFIGS, ids=CFG_IDS)
def test_amaranth(cfg, equivalent):
    equivalent(SPEC, cfg, "amaranth", SEEDS)


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("cfg", TEST_CONFIGS, ids=CFG_IDS)
def test_cocotb(sim, cfg, equivalent):
    equivalent(SPEC, cfg, sim, SEEDS)


@pytest.mark.rtl
def test_harness_reports_first_difference():
    cfg = TEST_CONFIGS[0]
    stim = make_stimulus(cfg, 3, p_valid=1.0, p_ready=1.0)
    (rtl,) = run_amaranth(AttentionRTL(cfg), [stim])
    model = run_model(AttentionArray(cfg), stim)
    assert compare_all([stim], "amaranth", [rtl], "emulator", [model]) == []
    first_v = next(c for c, o in enumerate(rtl) if o["v__ready"])
    bad = [dict(o) for o in model]
    bad[first_v - 1]["v__ready"] = 1
    msgs = compare_all([stim], "amaranth", [rtl], "mutant", [bad])
    assert msgs == [f"seed 3: mutant differs from amaranth first at cycle {first_v - 1}, signal v__ready: "
                    f"amaranth 0 (0x0), mutant 1 (0x1)"]


@pytest.mark.rtl
def test_rtl_error_flag_one_cycle_after_a_bad_chunk():
    cfg = TEST_CONFIGS[0]
    pq, pk = Packer(q_layout(cfg)), Packer(k_layout(cfg))
    q = pq.pack({"data": [1] * cfg.cols, "last": 1, "shift": 4, "causal": 0, "pos": 0})
    k = pk.pack({"data": [1] * cfg.rows, "last": 1, "keys": 0, "pos": 0})
    stim = Stimulus(sources={"q": [q], "k": [k], "v": []}, source_valid={"q": [1] * 5, "k": [1] * 5, "v": [0] * 5},
                    sink_ready={"o": [1] * 5}, cycles=5)
    (trace,) = run_amaranth(AttentionRTL(cfg), [stim])
    assert [o["error"] for o in trace] == [0, 0, 1, 1, 1]  # K beat transferred in cycle 1, flag from cycle 2 on
