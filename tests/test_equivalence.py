"""Four-way equivalence of every registered unit: per-cycle model, Amaranth sim, cocotb+Icarus, cocotb+Verilator.

One test, parametrised over the unit registry (``accel.equivalence.registry``), each unit's test configurations and
the simulators: hundreds of randomised stimuli per configuration (each unit's generator: random gaps on the inputs,
backpressure on the outputs, extremes, error paths), run in one simulator session each, must give identical outputs
on every cycle, and the model's results must equal the golden numerics (the unit's check, run by the runner).
``emulator`` runs the model against the golden numerics alone (for PIM: the channel engine's schedule).
"""
from __future__ import annotations

import pytest

from accel.equivalence.registry import get_unit, unit_names

#: Seeds per unit and simulator (a simulator a unit lacks here is not run for it).
SEEDS: dict[str, dict[str, int]] = {
    "bitserial": {"amaranth": 200, "icarus": 200, "verilator": 200},
    "attention": {"amaranth": 200, "icarus": 200, "verilator": 200},
    "pim": {"emulator": 300, "amaranth": 80, "icarus": 150, "verilator": 150},
    "gemm-os": {"emulator": 200, "amaranth": 200, "icarus": 200, "verilator": 200},
    "gemm-ws": {"emulator": 200, "amaranth": 200, "icarus": 200, "verilator": 200},
}
MARKS = {"emulator": [], "amaranth": [pytest.mark.rtl], "icarus": [pytest.mark.cocotb],
         "verilator": [pytest.mark.cocotb]}


def _cases() -> list:
    cases = []
    for unit in unit_names():
        spec = get_unit(unit)
        for i, cfg in enumerate(spec.test_configs()):
            label = getattr(cfg, "name", "") or f"cfg{i}"
            for sim, n in SEEDS.get(unit, {}).items():
                # one xdist group per unit and simulator: the suite's two workers share the runs
                marks = [*MARKS[sim], pytest.mark.xdist_group(f"equivalence-{unit}-{sim}")]
                cases.append(pytest.param(unit, i, sim, n, marks=marks, id=f"{unit}-{label}-{sim}"))
    return cases


def test_every_unit_has_seeds():
    assert sorted(SEEDS) == unit_names()


@pytest.mark.parametrize("unit,index,sim,n_seeds", _cases())
def test_equivalence(unit, index, sim, n_seeds, equivalent):
    spec = get_unit(unit)
    equivalent(spec, spec.test_configs()[index], sim, range(n_seeds))
