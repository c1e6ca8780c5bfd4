"""Fuzzing in the suite: every file format accel reads and the command line, with bounded random inputs.

Each target (``tests/fuzz_targets.py``; ``map`` maps mutated operator lists end to end) must either work or raise
:class:`accel.errors.AccelError` with a one-line message; the command line must exit 0, 1 or 2 with one error line,
never report a bug. ``scripts/fuzz.py --examples
20000`` runs the same targets long.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_targets import TARGETS

#: Examples per target in the suite (a few seconds each on one core).
EXAMPLES = {"device_yaml": 150, "trace": 120, "program": 80, "operator_list": 100, "model_dir": 40, "map": 40,
            "cli": 60}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz(name):
    strategy, target = TARGETS[name]

    @settings(max_examples=EXAMPLES[name], deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(inp):
        with tempfile.TemporaryDirectory() as tmp:
            target(inp, Path(tmp))

    run()
