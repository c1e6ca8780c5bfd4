"""Randomised stimuli and golden checks for the attention array's equivalence runs."""
from __future__ import annotations

import numpy as np

from ..config import AttentionConfig, DeviceConfig
from ..errors import AccelError
from ..interfaces.attention import o_layout
from ..interfaces.packing import Packer
from ..interfaces.stimulus import Stimulus, Trace, taken, trim_after_last_beat
from ..numerics import attention_fixed, attn_format
from .registry import UnitSpec

__all__ = ["SPEC", "TEST_CONFIGS", "make_stimulus", "received_tiles", "check", "tile_mask"]

#: Configurations of the equivalence tests: square, skewed (rows != cols), narrow data with a 2-entry exp table and a
#: tiny head dimension (the softmax step cannot hide under a 1-beat QK), and 16-bit data (the 31-fraction-bit
#: probabilities and 52/68-bit RD/RNV accumulators of the large presets).
TEST_CONFIGS: list[AttentionConfig] = [
    AttentionConfig(rows=4, cols=4, head_dim=8, data_bits=8, exp_table_bits=4, clock_mhz=25.0),
    AttentionConfig(rows=3, cols=2, head_dim=5, data_bits=6, exp_table_bits=3, clock_mhz=25.0),
    AttentionConfig(rows=2, cols=3, head_dim=2, data_bits=4, exp_table_bits=1, clock_mhz=25.0),
    AttentionConfig(rows=2, cols=2, head_dim=3, data_bits=16, exp_table_bits=6, clock_mhz=25.0),
]


def tile_mask(cols: int, n_keys: int, qpos: int, causal: bool) -> np.ndarray | None:
    """The mask the array applies to a tile whose query 0 sits at ``qpos`` (None when not causal)."""
    if not causal:
        return None
    return np.arange(n_keys)[None, :] <= qpos + np.arange(cols)[:, None]


def make_stimulus(cfg: AttentionConfig, seed: int, p_valid: float | None = None,
                  p_ready: float | None = None, max_tiles: int = 2) -> Stimulus:
    """Random tiles (random head dimension, key count, causal flag, query position, score shift and values, with
    extremes), random gaps on the three input streams and random backpressure on O; trimmed to end four cycles after
    the last O beat. ``expected`` holds each tile's golden O (``cols x d`` integers)."""
    from ..emulator.units.attention import AttentionArray, tile_beats, tile_cycles

    rng = np.random.default_rng(seed)
    fmt = attn_format(cfg)
    hi = 1 << (cfg.data_bits - 1)
    qb, kb, vb, expected = [], [], [], []
    bound = 0
    for _ in range(int(rng.integers(1, max_tiles + 1))):
        d = int(rng.integers(1, cfg.head_dim + 1))
        nk = int(rng.integers(1, 4 * cfg.rows + 1))
        causal = bool(rng.integers(0, 2))
        qpos = int(rng.integers(0, nk + 2))
        shift = int(rng.integers(0, min(fmt.max_score_frac_bits, 2 * cfg.data_bits) + 1))
        q = rng.integers(-hi, hi, (cfg.cols, d))
        k = rng.integers(-hi, hi, (nk, d))
        v = rng.integers(-hi, hi, (nk, d))
        if rng.random() < 0.15:  # extremes: all at the most negative value (largest scores and products)
            q[:], k[:], v[:] = -hi, -hi, -hi
        a, b, c = tile_beats(cfg, q, k, v, shift, causal, qpos)
        qb += a
        kb += b
        vb += c
        expected.append(attention_fixed(q, k, v, fmt, cfg.rows, shift, tile_mask(cfg.cols, nk, qpos, causal))
                        .tolist())
        bound += tile_cycles(d, -(-nk // cfg.rows))
    pv = p_valid if p_valid is not None else float(rng.choice([1.0, rng.uniform(0.3, 1.0)]))
    pr = p_ready if p_ready is not None else float(rng.choice([1.0, rng.uniform(0.2, 1.0)]))
    bound = int(bound / min(pv, pr) * 3 + 50)
    stim = Stimulus(
        sources={"q": qb, "k": kb, "v": vb},
        source_valid={s: (rng.random(bound) < pv).astype(int).tolist() for s in ("q", "k", "v")},
        sink_ready={"o": (rng.random(bound) < pr).astype(int).tolist()},
        cycles=bound, label=f"seed {seed}", expected=expected)
    return trim_after_last_beat(stim, AttentionArray(cfg), "o")


def received_tiles(cfg: AttentionConfig, stim: Stimulus, trace: Trace) -> list[list[list[int]]]:
    """O tiles (``cols x d``) taken by the sink, split at the beats with ``last``."""
    po = Packer(o_layout(cfg))
    tiles, cur = [], []
    for _, raw in taken(stim, trace, "o"):
        beat = po.unpack(raw)
        cur.append(beat["data"])
        if beat["last"]:
            tiles.append(np.array(cur).T.tolist())
            cur = []
    return tiles


def check(cfg: AttentionConfig, stim: Stimulus, trace: Trace) -> list[str]:
    got = received_tiles(cfg, stim, trace)
    if got != stim.expected:
        return [f"{stim.label}: O tiles {got} differ from golden numerics {stim.expected}"]
    return []


def _config_of(dev: DeviceConfig) -> AttentionConfig:
    if dev.attention is None:
        raise AccelError(f"preset {dev.name} has no attention array; pick a preset with one (accel devices)")
    return dev.attention


def _rtl(cfg: AttentionConfig):
    from ..rtl.attention import AttentionArray

    return AttentionArray(cfg)


def _model(cfg: AttentionConfig):
    from ..emulator.units.attention import AttentionArray

    return AttentionArray(cfg)


def _export_cost(cfg: AttentionConfig) -> tuple[float, str]:
    """Seconds to export (fitted: 4x4 PEs 7.5 s, ...) and what they grow with."""
    return 0.5 * cfg.rows * cfg.cols, f"{cfg.rows}x{cfg.cols} PEs"


SPEC = UnitSpec(name="attention", top="attention_array", config_of=_config_of, rtl=_rtl, model=_model,
                stimulus=make_stimulus, check=check, test_configs=lambda: list(TEST_CONFIGS), export_cost=_export_cost)
