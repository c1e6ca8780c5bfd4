"""Shared test helpers."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import pytest

from accel.equivalence.harness import simulator_available
from accel.equivalence.runner import run_equivalence


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (pyproject.toml) each test file is one group, as with ``--dist loadfile`` (tests of
    one file share simulator build directories), except tests that name their own ``xdist_group``: the one
    parametrised equivalence test spreads its units over the workers that way."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


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
