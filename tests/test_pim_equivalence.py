"""The PIM channel's equivalence harness catches a timing mutant, and errors carry their code in the same cycle.

The four-way equivalence itself (per-cycle model, Amaranth sim, cocotb+Icarus, cocotb+Verilator) is
``tests/test_equivalence.py``: randomised stimuli on four configurations (fpga-tiny, fpga-small, aim-gddr6 scaled
down, hbm3-pim scaled down), legal programs in wait mode (whose issue cycles and read beats must also equal the
channel engine's) and error-path stimuli (commands offered in random cycles under strict mode, illegal commands mixed
in) whose error flags and codes must agree cycle for cycle.
"""
from __future__ import annotations

import dataclasses

import pytest

from accel.equivalence.pim import SPEC
from accel.equivalence.pim import test_configs as pim_configs
from accel.equivalence.runner import run_equivalence

CONFIGS = pim_configs()


@pytest.mark.rtl
def test_harness_catches_a_timing_mutant():
    """An RTL whose tRTP is one cycle longer than the model's must be caught, naming a cycle and a signal."""
    from accel.interfaces.pim import PIM_TIMING_RULES
    from accel.rtl.pim import PimChannel as Rtl

    rules = tuple(dataclasses.replace(r, latency="nRTP + 1") if r.rule == "RTP" else r for r in PIM_TIMING_RULES)
    spec = dataclasses.replace(SPEC, rtl=lambda cfg: Rtl(cfg.pim, cfg.bitserial, rules=rules))
    rep = run_equivalence(spec, CONFIGS[2], "amaranth", range(12))
    assert rep.failed > 0
    msg = next(iter(rep.failures.values()))[-1]
    assert "amaranth differs from emulator first at cycle" in msg and "signal" in msg


@pytest.mark.rtl
def test_error_code_same_cycle():
    """Strict mode: a MAC one cycle before the activate-to-MAC delay raises error with RCD_MAC in that very cycle,
    in the RTL as in the model."""
    from accel.emulator.units.pim import PimChannel as Model
    from accel.interfaces.pim import PimRule
    from accel.isa import encode
    from accel.equivalence.harness import first_difference, run_amaranth
    from accel.interfaces.stimulus import Stimulus, run_model

    cfg = CONFIGS[2]
    t = cfg.pim.timing
    words = [encode("pim", "ACT", bank=1, row=2), encode("pim", "MAC", bank=1, col=0)]
    # ACT enters the head at 1 and issues at 1; MAC is offered at cycle 1 + nRCD_MAC - 2, in the head one cycle early
    offer = 1 + t.nRCD_MAC - 2
    n = offer + 6
    valid = [1 if c == 0 or c == offer else 0 for c in range(n)]
    stim = Stimulus(sources={"cmd": words, "wdata": []}, source_valid={"cmd": valid, "wdata": [0] * n},
                    sink_ready={}, plain={"strict": [1] * n}, cycles=n)
    ref = run_model(Model(cfg.pim, cfg.bitserial, raise_errors=False), stim)
    (rtl,) = run_amaranth(SPEC.rtl(cfg), [stim])
    assert first_difference(ref, rtl) is None
    err = [c for c, o in enumerate(rtl) if o["error"]]
    assert err[0] == offer + 1 and rtl[offer + 1]["error_code"] == PimRule.RCD_MAC
