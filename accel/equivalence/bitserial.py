"""Randomised stimuli and golden checks for the bit-serial unit's equivalence runs."""
from __future__ import annotations

import numpy as np

from ..config import BITSERIAL_DATATYPES, BitSerialConfig, DeviceConfig
from ..interfaces.bitserial import act_layout, wgt_layout
from ..interfaces.packing import Packer
from ..interfaces.stimulus import Stimulus, Trace, taken, trim_after_last_beat
from ..numerics import DATATYPES, bitserial_dot, wrap
from .registry import UnitSpec

__all__ = ["SPEC", "make_stimulus", "dot_products", "TEST_CONFIGS"]


def dot_products(cfg: BitSerialConfig, rng: np.random.Generator, n_outputs: int, max_groups: int) -> list[dict]:
    """Random dot products: per output a list of groups (dtype, codes, acts, scale)."""
    out = []
    amax = 1 << (cfg.act_bits - 1)
    smax = (1 << cfg.scale_bits) - 1
    for _ in range(n_outputs):
        groups = []
        for _ in range(int(rng.integers(1, max_groups + 1))):
            dt = cfg.datatypes[int(rng.integers(len(cfg.datatypes)))]
            codes = rng.integers(0, 1 << DATATYPES[dt].code_bits, cfg.group_size)
            acts = rng.integers(-amax, amax, cfg.group_size)
            if rng.random() < 0.1:  # extremes: all activations at the most negative value
                acts[:] = -amax
            scale = int(rng.choice([0, 1, smax, int(rng.integers(0, smax + 1))], p=[0.05, 0.05, 0.1, 0.8]))
            groups.append({"dtype": dt, "codes": codes, "acts": acts, "scale": scale})
        out.append({"groups": groups})
    return out


def _beats(cfg: BitSerialConfig, outputs: list[dict]) -> tuple[list[int], list[int]]:
    pa, pw = Packer(act_layout(cfg)), Packer(wgt_layout(cfg))
    acts, wgts = [], []
    code_of = cfg.dtype_codes
    for o in outputs:
        for gi, g in enumerate(o["groups"]):
            last = int(gi == len(o["groups"]) - 1)
            for b in range(cfg.beats_per_group):
                sl = slice(b * cfg.lanes, (b + 1) * cfg.lanes)
                acts.append(pa.pack([int(a) for a in g["acts"][sl]]))
                wgts.append(pw.pack({"codes": [int(c) for c in g["codes"][sl]], "dtype": code_of[g["dtype"]],
                                     "scale": g["scale"], "last": last}))
    return acts, wgts


def golden(cfg: BitSerialConfig, outputs: list[dict]) -> list[int]:
    res = []
    for o in outputs:
        gs = o["groups"]
        res.append(bitserial_dot(np.concatenate([g["acts"] for g in gs]), np.concatenate([g["codes"] for g in gs]),
                                 [g["dtype"] for g in gs], [g["scale"] for g in gs], cfg.group_size,
                                 cfg.scale_bits, cfg.acc_bits))
    return res


def make_stimulus(cfg: BitSerialConfig, seed: int, n_outputs: int | None = None, max_groups: int = 3,
                  p_valid: float | None = None, p_ready: float | None = None) -> Stimulus:
    """A randomised stimulus (random datatypes, scales, gaps in the inputs, backpressure on the results), trimmed to
    end four cycles after the last result; ``expected`` holds the golden results."""
    rng = np.random.default_rng(seed)
    if n_outputs is None:
        n_outputs = int(rng.integers(1, 4))
    outputs = dot_products(cfg, rng, n_outputs, max_groups)
    acts, wgts = _beats(cfg, outputs)
    pv = p_valid if p_valid is not None else float(rng.choice([1.0, rng.uniform(0.3, 1.0)]))
    pr = p_ready if p_ready is not None else float(rng.choice([1.0, rng.uniform(0.2, 1.0)]))
    # enough cycles for the slowest case, then trimmed to the cycle after the last result
    per_group = cfg.beats_per_group * cfg.max_terms + cfg.scale_bits + 2
    groups = sum(len(o["groups"]) for o in outputs)
    bound = int(groups * per_group / min(pv, pr) * 3 + 200)
    stim = Stimulus(
        sources={"act": acts, "wgt": wgts},
        source_valid={"act": (rng.random(bound) < pv).astype(int).tolist(),
                      "wgt": (rng.random(bound) < pv).astype(int).tolist()},
        sink_ready={"res": (rng.random(bound) < pr).astype(int).tolist()},
        cycles=bound,
        label=f"seed {seed}",
        expected=golden(cfg, outputs),
    )
    from ..emulator.units.bitserial import BitSerialUnit

    return trim_after_last_beat(stim, BitSerialUnit(cfg), "res")


def received(stim: Stimulus, trace: Trace) -> list[int]:
    return [v for _, v in taken(stim, trace, "res")]


def check(cfg: BitSerialConfig, stim: Stimulus, trace: Trace) -> list[str]:
    got = [wrap(v, cfg.acc_bits) for v in received(stim, trace)]
    exp = stim.expected
    if got != exp:
        return [f"{stim.label}: results {got} differ from golden numerics {exp}"]
    return []


#: Configurations of the equivalence tests: few lanes/short groups (stalling dequantiser), wide, and odd sizes.
TEST_CONFIGS: list[BitSerialConfig] = [
    BitSerialConfig(lanes=4, act_bits=8, max_weight_bits=8, group_size=8, scale_bits=8, acc_bits=32,
                    datatypes=BITSERIAL_DATATYPES),
    BitSerialConfig(lanes=8, act_bits=8, max_weight_bits=4, group_size=32, scale_bits=6, acc_bits=32,
                    datatypes=("int4", "int3", "fp4_er_pos", "fp4_ea_neg", "fp3_er_neg", "fp3_ea_pos")),
    BitSerialConfig(lanes=3, act_bits=6, max_weight_bits=8, group_size=6, scale_bits=3, acc_bits=24,
                    datatypes=("int8", "fp4_er_neg", "fp3_ea_neg", "int3")),
]


def _config_of(dev: DeviceConfig) -> BitSerialConfig:
    return dev.bitserial


def _rtl(cfg: BitSerialConfig):
    from ..rtl.bitserial import BitSerialUnit

    return BitSerialUnit(cfg)


def _model(cfg: BitSerialConfig):
    from ..emulator.units.bitserial import BitSerialUnit

    return BitSerialUnit(cfg)


def _export_cost(cfg: BitSerialConfig) -> tuple[float, str]:
    """Seconds to export and what they grow with: the lanes times the datatypes they decode (measured on 2 cores:
    4 lanes x 4 datatypes 3.3 s, 16 x 11 10.4 s, 64 x 11 19.6 s)."""
    return 2.0 + 0.05 * cfg.lanes * len(cfg.datatypes), f"{cfg.lanes} lanes x {len(cfg.datatypes)} datatypes"


SPEC = UnitSpec(name="bitserial", top="bitserial_unit", config_of=_config_of, rtl=_rtl, model=_model,
                stimulus=make_stimulus, check=check, test_configs=lambda: list(TEST_CONFIGS), export_cost=_export_cost)
