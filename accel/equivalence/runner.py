"""Run a unit's randomised equivalence: the per-cycle model is the reference; each simulator must match it on every
cycle, and the model's results must equal the golden numerics."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import AccelError
from ..interfaces.stimulus import run_model
from ..outputs import check_output_file
from .harness import compare_all, run_amaranth, run_cocotb
from .registry import UnitSpec

SIMULATORS = ("emulator", "amaranth", "icarus", "verilator")


@dataclass
class EquivalenceReport:
    """Outcome of one equivalence run: one verdict per seed."""

    unit: str
    sim: str
    config: Any
    seeds: list[int]
    failures: dict[int, list[str]] = field(default_factory=dict)
    cycles: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return len(self.seeds) - len(self.failures)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def run_equivalence(spec: UnitSpec, config: Any, sim: str, seeds: Iterable[int],
                    chunk: int = 200) -> EquivalenceReport:
    """Run ``seeds`` through the model and ``sim`` (``emulator`` checks the model against the golden numerics
    only). Stimuli run ``chunk`` at a time in one simulator session."""
    if sim not in SIMULATORS:
        raise AccelError(f"unknown simulator {sim!r}; use one of {', '.join(SIMULATORS)}")
    seeds = list(seeds)
    report = EquivalenceReport(spec.name, sim, config, seeds)
    t0 = time.perf_counter()
    for start in range(0, len(seeds), chunk):
        part = seeds[start:start + chunk]
        stims = [spec.stimulus(config, s) for s in part]
        report.cycles += sum(s.cycles for s in stims)
        refs = []
        for seed, stim in zip(part, stims):
            try:
                refs.append(run_model(spec.model(config), stim))
            except AccelError as e:
                report.failures.setdefault(seed, []).append(f"{stim.label}: emulator raised: {e}")
                refs.append([])
        for seed, stim, ref in zip(part, stims, refs):
            if ref:
                for msg in spec.check(config, stim, ref):
                    report.failures.setdefault(seed, []).append(msg)
        if sim == "emulator":
            continue
        if sim == "amaranth":
            traces = run_amaranth(spec.rtl(config), stims)
        else:
            traces = run_cocotb(sim, spec.rtl(config), stims, spec.top)
        for seed, stim, ref, tr in zip(part, stims, refs, traces):
            for msg in compare_all([stim], "emulator", [ref], sim, [tr]):
                report.failures.setdefault(seed, []).append(msg)
    report.seconds = time.perf_counter() - t0
    return report


def write_wave(spec: UnitSpec, config: Any, seed: int, path: str | Path) -> int:
    """Run the stimulus of ``seed`` through the unit's RTL in Amaranth's simulator and write its VCD to ``path``
    (directories created); returns the stimulus's cycles (after one reset cycle)."""
    path = check_output_file(path, "-o", parents=True)
    stim = spec.stimulus(config, seed)
    run_amaranth(spec.rtl(config), [stim], vcd=path)
    return stim.cycles
