"""Four-way equivalence of the bit-serial unit: per-cycle model, Amaranth sim, cocotb+Icarus, cocotb+Verilator.

Hundreds of randomised stimuli per configuration (mixed datatypes per group, random gaps on both inputs, random
backpressure on the result), run in one simulator session each, must give identical outputs on every cycle; the
model's results must equal the golden numerics (checked by the runner too).
"""
from __future__ import annotations

import pytest

from accel.config import BITSERIAL_DATATYPES
from accel.emulator.units.bitserial import BitSerialUnit
from accel.rtl.bitserial import BitSerialUnit as BitSerialRTL
from accel.rtl.bitserial import wgt_layout
from accel.sim.bitserial import SPEC, TEST_CONFIGS, make_stimulus
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


class _LateReady(BitSerialUnit):
    """A mutant model: drops act.ready in cycle 3. The harness must notice and name the cycle and signal."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.cycle = 0

    def reset(self):
        super().reset()
        self.cycle = 0

    def step(self, inputs):
        outs = super().step(inputs)
        if self.cycle == 3:
            outs["act__ready"] ^= 1
        self.cycle += 1
        return outs


@pytest.mark.rtl
def test_harness_reports_first_difference():
    cfg = TEST_CONFIGS[0]
    stim = make_stimulus(cfg, 1, p_valid=1.0, p_ready=1.0)
    rtl = run_amaranth(BitSerialRTL(cfg), [stim])
    mutant = run_model(_LateReady(cfg), stim)
    msgs = compare_all([stim], "amaranth", rtl, "mutant", [mutant])
    assert len(msgs) == 1
    assert "first at cycle 3, signal act__ready" in msgs[0]


@pytest.mark.rtl
def test_rtl_error_flag_one_cycle_after_the_emulator_raises():
    cfg = TEST_CONFIGS[2]
    pw = Packer(wgt_layout(cfg))
    beat = pw.pack({"codes": [0] * cfg.lanes, "dtype": BITSERIAL_DATATYPES.index("int4"), "scale": 1, "last": 1})
    stim = Stimulus(sources={"act": [0], "wgt": [beat]}, source_valid={"act": [0, 0, 1, 1, 1], "wgt": [0, 0, 1, 1, 1]},
                    sink_ready={"res": [1] * 5}, cycles=5)
    (trace,) = run_amaranth(BitSerialRTL(cfg), [stim])
    assert [o["error"] for o in trace] == [0, 0, 0, 1, 1]  # transferred in cycle 2, flag from cycle 3 on
