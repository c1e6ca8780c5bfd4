"""Shared test helpers."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import pytest

from accel.sim.equivalence import run_equivalence
from accel.sim.harness import simulator_available


@pytest.fixture
def equivalent() -> Callable[..., None]:
    """``equivalent(spec, cfg, sim, seeds)``: run the unit's randomised equivalence on ``sim`` and fail with the first
    messages if any seed differs; skips (naming the install command) when a cocotb simulator is absent."""

    def check(spec: Any, cfg: Any, sim: str, seeds: Iterable[int]) -> None:
        if sim in ("icarus", "verilator"):
            reason = simulator_available(sim)
            if reason:
                pytest.skip(reason)
        seeds = list(seeds)
        rep = run_equivalence(spec, cfg, sim, seeds)
        msgs = [m for ms in rep.failures.values() for m in ms]
        assert rep.failed == 0, "\n".join(msgs[:5])
        assert rep.passed == len(seeds)

    return check
