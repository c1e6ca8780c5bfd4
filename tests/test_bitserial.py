"""Bit-serial unit: per-cycle model against the golden numerics and the closed-form latency; bad input; the harness's
difference report and the RTL's error flag. The four-way equivalence (model, Amaranth sim, cocotb+Icarus,
cocotb+Verilator) is ``tests/test_equivalence.py``."""
from __future__ import annotations

import numpy as np
import pytest

from accel.config import BITSERIAL_DATATYPES, BitSerialConfig
from accel.emulator.units.bitserial import BitSerialUnit, result_cycles, run_dot
from accel.equivalence.bitserial import TEST_CONFIGS, check, make_stimulus
from accel.equivalence.harness import compare_all, run_amaranth
from accel.errors import StimulusError
from accel.interfaces.bitserial import wgt_layout
from accel.interfaces.packing import Packer
from accel.interfaces.stimulus import Stimulus, run_model
from accel.numerics import DATATYPES, bitserial_dot
from accel.rtl.bitserial import BitSerialUnit as BitSerialRTL

CFG_IDS = [f"cfg{i}" for i in range(len(TEST_CONFIGS))]


@pytest.mark.parametrize("cfg", TEST_CONFIGS, ids=CFG_IDS)
def test_model_equals_golden(cfg):
    """Hundreds of randomised streams (gaps, backpressure, mixed datatypes): every result equals the golden dot."""
    for seed in range(300):
        stim = make_stimulus(cfg, seed)
        trace = run_model(BitSerialUnit(cfg), stim)
        assert check(cfg, stim, trace) == []
        assert len(stim.expected) >= 1


def _groups_of(cfg: BitSerialConfig, stim: Stimulus) -> tuple[list[str], list[bool]]:
    pw = Packer(wgt_layout(cfg))
    names = {c: n for n, c in cfg.dtype_codes.items()}
    beats = [pw.unpack(w) for w in stim.sources["wgt"]]
    last_beats = beats[cfg.beats_per_group - 1::cfg.beats_per_group]
    return [names[b["dtype"]] for b in last_beats], [bool(b["last"]) for b in last_beats]


@pytest.mark.parametrize("cfg", TEST_CONFIGS, ids=CFG_IDS)
def test_closed_form_latency_is_exact(cfg):
    for seed in range(200):
        stim = make_stimulus(cfg, seed, max_groups=4, p_valid=1.0, p_ready=1.0)
        trace = run_model(BitSerialUnit(cfg), stim)
        got = [c for c, o in enumerate(trace) if o["res__valid"]]
        dtypes, lasts = _groups_of(cfg, stim)
        assert got == result_cycles(cfg, dtypes, lasts), f"seed {seed}"


def test_cycles_depend_on_weight_bits():
    cfg = TEST_CONFIGS[0]
    assert cfg.cycles_per_group("int8") == 2 * cfg.cycles_per_group("int4") == 2 * cfg.cycles_per_group("fp4_er_pos")
    # long groups hide the dequantiser: int8 groups cost 4 cycles per beat, 4-bit groups 2
    big = BitSerialConfig(lanes=4, act_bits=8, max_weight_bits=8, group_size=64, scale_bits=8, acc_bits=32,
                          datatypes=("int8", "int4"))
    assert result_cycles(big, ["int8"] * 4, [False] * 3 + [True])[0] == 4 * 64 + 9
    assert result_cycles(big, ["int4"] * 4, [False] * 3 + [True])[0] == 4 * 32 + 9


def test_run_dot_matches_golden_and_closed_form():
    rng = np.random.default_rng(7)
    cfg = TEST_CONFIGS[0]
    for _ in range(50):
        ng = int(rng.integers(1, 5))
        dts = [cfg.datatypes[i] for i in rng.integers(0, len(cfg.datatypes), ng)]
        codes = np.concatenate([rng.integers(0, 1 << DATATYPES[d].code_bits, cfg.group_size) for d in dts])
        acts = rng.integers(-128, 128, ng * cfg.group_size)
        scales = [int(s) for s in rng.integers(0, 256, ng)]
        res, cycles = run_dot(cfg, acts, codes, dts, scales)
        assert res == bitserial_dot(acts, codes, dts, scales, cfg.group_size, cfg.scale_bits, cfg.acc_bits)
        assert cycles == result_cycles(cfg, dts, [False] * (ng - 1) + [True])[0] + 1


def test_unbuilt_datatype_is_an_error():
    cfg = TEST_CONFIGS[2]  # int8, fp4_er_neg, fp3_ea_neg, int3
    pw = Packer(wgt_layout(cfg))
    model = BitSerialUnit(cfg)
    beat = pw.pack({"codes": [0] * cfg.lanes, "dtype": BITSERIAL_DATATYPES.index("int4"), "scale": 1, "last": 1})
    ins = {"act__valid": 1, "act__payload": 0, "wgt__valid": 1, "wgt__payload": beat, "res__ready": 1}
    with pytest.raises(StimulusError, match=r"^weight beat with dtype code 1 \(int4\): this unit is built for "
                                            r"int8 \(0\), fp4_er_neg \(4\), fp3_ea_neg \(10\), int3 \(2\); rebuild"):
        model.step(ins)


@pytest.mark.parametrize("kwargs,message", [
    (dict(acts=[200] + [0] * 5), r"activation\[0\] = 200 is outside int6 \(-32\.\.31\)"),
    (dict(codes=[16] + [0] * 5, dtypes=["fp4_er_neg"]), r"code\[0\] = 16 does not fit fp4_er_neg \(4-bit codes"),
    (dict(dtypes=["int4"]), r"group 0: datatype 'int4' is not built into this unit \(built: int8, fp4_er_neg"),
    (dict(scales=[8]), r"group 0: scale 8 is outside the unsigned 3-bit range 0\.\.7"),
    (dict(acts=[0] * 5), r"must both hold 6 elements \(1 groups of group_size 6\)"),
])
def test_run_dot_bad_input(kwargs, message):
    cfg = TEST_CONFIGS[2]
    args = dict(acts=[0] * 6, codes=[0] * 6, dtypes=["int8"], scales=[1]) | kwargs
    with pytest.raises(StimulusError, match=message):
        run_dot(cfg, **args)


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
