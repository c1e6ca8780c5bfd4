"""Units known to ``accel rtl`` and the equivalence runner, registered by name.

Each unit module defines a :class:`UnitSpec` named ``SPEC``; :data:`UNIT_MODULES` maps the unit's name to that module
(or to ``module:NAME`` when a module defines several), imported lazily so that listing units does not import every
simulator.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ..config import DeviceConfig
from ..errors import AccelError
from ..interfaces.stimulus import Model, Stimulus, Trace

#: unit name -> module defining ``SPEC`` (or ``module:NAME``)
UNIT_MODULES: dict[str, str] = {
    "bitserial": "accel.equivalence.bitserial",
    "attention": "accel.equivalence.attention",
    "pim": "accel.equivalence.pim",
    "gemm-os": "accel.equivalence.gemm",
    "gemm-ws": "accel.equivalence.gemm:SPEC_WS",
}


@dataclass(frozen=True)
class UnitSpec:
    """How to build, model, stimulate and check one unit.

    Parameters
    ----------
    name:
        Unit name on the command line.
    top:
        Verilog top-level module name.
    config_of:
        The unit's parameter dataclass from a device description.
    rtl:
        config -> Amaranth ``wiring.Component``.
    model:
        config -> per-cycle model.
    stimulus:
        (config, seed) -> a randomised :class:`Stimulus`.
    check:
        (config, stimulus, trace) -> messages for every result that differs from the golden numerics (empty if
        all agree).
    test_configs:
        Configurations the test suite runs the equivalence on (at least three, small enough to simulate).
    export_cost:
        config -> ``(seconds, size)``: the estimated time of ``accel rtl export`` for it (fitted to exports measured
        on a 2-core machine) and the size it grows with, in words (``"65536 PEs"``); larger exports than
        :data:`accel.equivalence.export.EXPORT_LIMIT_S` are refused before they start.
    """

    name: str
    top: str
    config_of: Callable[[DeviceConfig], Any]
    rtl: Callable[[Any], Any]
    model: Callable[[Any], Model]
    stimulus: Callable[[Any, int], Stimulus]
    check: Callable[[Any, Stimulus, Trace], list[str]]
    test_configs: Callable[[], list[Any]]
    export_cost: Callable[[Any], tuple[float, str]]

    def configs(self, preset: str | None = None) -> list[Any]:
        """The unit's test configurations, or the one configuration of ``preset`` (a name or a YAML file)."""
        if preset is None:
            return self.test_configs()
        from ..config import load_preset

        return [self.config_of(load_preset(preset))]


def unit_names() -> list[str]:
    return sorted(UNIT_MODULES)


def get_unit(name: str) -> UnitSpec:
    if name not in UNIT_MODULES:
        raise AccelError(f"unknown unit {name!r}; units are {', '.join(unit_names())}")
    module, _, attr = UNIT_MODULES[name].partition(":")
    return getattr(importlib.import_module(module), attr or "SPEC")
