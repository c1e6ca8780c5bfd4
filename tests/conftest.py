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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Refuse to run when the groups have no effect. pytest-xdist marks a test's group by appending ``@group`` to its
    node id on the worker (after the hook above), which some pytest releases ignore (9.2 with xdist 3.8); the tests of
    one file then run on both workers at once and build the same simulator and FPGA directories concurrently (in CI:
    a ``top.json`` truncated by the other worker's build)."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    loose = [i for i in ids if "@" not in i]
    if loose:
        import xdist

        pytest.exit(f"pytest-xdist's --dist loadgroup has no effect with pytest {pytest.__version__} and pytest-xdist "
                    f"{xdist.__version__} ({loose[0]} carries no group): the tests of one file would run on both "
                    f"workers at once; install the versions pinned in requirements.txt (./run does)", returncode=4)


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
