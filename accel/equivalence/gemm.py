"""Randomised stimuli and golden checks for the systolic GEMMs' equivalence runs (``accel rtl test gemm-os`` and
``accel rtl test gemm-ws``)."""
from __future__ import annotations

import numpy as np

from ..config import DeviceConfig, GemmConfig
from ..errors import AccelError
from ..interfaces.gemm import gemm_o_layout, ws_o_layout
from ..interfaces.packing import Packer
from ..interfaces.stimulus import Stimulus, Trace, taken, trim_after_last_beat
from .attention import TEST_CONFIGS as ATTENTION_TEST_CONFIGS
from .registry import UnitSpec

__all__ = ["SPEC", "SPEC_WS", "TEST_CONFIGS", "make_stimulus", "make_stimulus_ws", "received_products", "check",
           "check_ws"]

#: Configurations of the equivalence tests: the PE arrays of the attention array's test configurations (square,
#: skewed both ways, 4- and 16-bit data).
TEST_CONFIGS: list[GemmConfig] = [c.gemm for c in ATTENTION_TEST_CONFIGS]


def make_stimulus(cfg: GemmConfig, seed: int, p_valid: float | None = None,
                  p_ready: float | None = None, max_gemms: int = 3) -> Stimulus:
    """Back-to-back random output-stationary GEMMs (random M, N, K: ragged folds, K from 1 to past
    ``rows + cols``, extremes), random gaps on ``ab`` and random backpressure on ``o``; trimmed to end four cycles
    after the last result. ``expected`` holds each GEMM's shape and golden product."""
    from ..emulator.gemm_driver import gemm_beats, gemm_folds
    from ..emulator.units.gemm import SystolicGemm

    rng = np.random.default_rng(seed)
    beats, expected, bound = [], [], 0
    for a, b in _shapes(cfg, rng, max_gemms):
        beats += gemm_beats(cfg, a, b)
        (M, K), N = a.shape, b.shape[1]
        expected.append({"M": M, "K": K, "N": N, "out": gemm_golden_of(cfg, a, b)})
        bound += len(gemm_folds(cfg.rows, cfg.cols, M, N)) * (K + cfg.rows + cfg.cols + 2)
    stim = _stimulus(rng, seed, {"ab": beats}, bound, expected, p_valid, p_ready)
    return trim_after_last_beat(stim, SystolicGemm(cfg), "o")


def received_products(cfg: GemmConfig, stim: Stimulus, trace: Trace, dataflow: str = "os") -> list:
    """The products assembled from the result beats the sink took (GEMM shapes from ``expected``): one tile per fold
    (``os``) or one row of partial sums per input row (``ws``)."""
    from ..emulator.gemm_driver import gemm_assemble, gemm_folds, gemm_ws_assemble, ws_folds

    po = Packer(gemm_o_layout(cfg) if dataflow == "os" else ws_o_layout(cfg))
    beats = [po.unpack(raw) for _, raw in taken(stim, trace, "o")]
    out = []
    for g in stim.expected:
        if dataflow == "os":
            n = len(gemm_folds(cfg.rows, cfg.cols, g["M"], g["N"]))
            assemble = lambda part: gemm_assemble(cfg, part, g["M"], g["N"])  # noqa: E731
        else:
            n = len(ws_folds(cfg.rows, cfg.cols, g["K"], g["N"])) * g["M"]
            assemble = lambda part: gemm_ws_assemble(cfg, part, g["M"], g["K"], g["N"])  # noqa: E731
        if len(beats) < n:
            break
        out.append(assemble(beats[:n]).tolist())
        beats = beats[n:]
    return out


def check(cfg: GemmConfig, stim: Stimulus, trace: Trace, dataflow: str = "os") -> list[str]:
    got = received_products(cfg, stim, trace, dataflow)
    want = [g["out"] for g in stim.expected]
    if got != want:
        return [f"{stim.label}: products {got} differ from golden numerics {want}"]
    return []


def check_ws(cfg: GemmConfig, stim: Stimulus, trace: Trace) -> list[str]:
    return check(cfg, stim, trace, "ws")


def _shapes(cfg: GemmConfig, rng: np.random.Generator, max_gemms: int):
    """1 .. ``max_gemms`` random GEMMs ``(a, b)``: dimensions from 1 to past three array sizes, 15 % extremes."""
    hi = 1 << (cfg.data_bits - 1)
    out = []
    for _ in range(int(rng.integers(1, max_gemms + 1))):
        M = int(rng.integers(1, 3 * cfg.rows + 1))
        N = int(rng.integers(1, 3 * cfg.cols + 1))
        K = int(rng.integers(1, max(3 * cfg.rows, cfg.rows + cfg.cols + 5) + 1))
        a = rng.integers(-hi, hi, (M, K))
        b = rng.integers(-hi, hi, (K, N))
        if rng.random() < 0.15:  # extremes: the largest products
            a[:], b[:] = -hi, -hi
        out.append((a, b))
    return out


def _stimulus(rng: np.random.Generator, seed: int, sources: dict[str, list[int]], bound: int, expected: list,
              p_valid: float | None, p_ready: float | None) -> Stimulus:
    pv = p_valid if p_valid is not None else float(rng.choice([1.0, rng.uniform(0.3, 1.0)]))
    pr = p_ready if p_ready is not None else float(rng.choice([1.0, rng.uniform(0.2, 1.0)]))
    bound = int(bound / min(pv, pr) * 3 + 50)
    return Stimulus(sources=sources, source_valid={k: (rng.random(bound) < pv).astype(int).tolist() for k in sources},
                    sink_ready={"o": (rng.random(bound) < pr).astype(int).tolist()},
                    cycles=bound, label=f"seed {seed}", expected=expected)


def make_stimulus_ws(cfg: GemmConfig, seed: int, p_valid: float | None = None,
                     p_ready: float | None = None, max_gemms: int = 3) -> Stimulus:
    """Back-to-back random weight-stationary GEMMs (as :func:`make_stimulus`), with independent random gaps on ``w``
    and ``a`` and random backpressure on ``o``."""
    from ..emulator.gemm_driver import gemm_ws_beats, ws_folds
    from ..emulator.units.gemm import SystolicGemmWS

    rng = np.random.default_rng(seed)
    w_beats, a_beats, expected, bound = [], [], [], 0
    for a, b in _shapes(cfg, rng, max_gemms):
        wb, ab = gemm_ws_beats(cfg, a, b)
        w_beats += wb
        a_beats += ab
        (M, K), N = a.shape, b.shape[1]
        expected.append({"M": M, "K": K, "N": N, "out": gemm_golden_of(cfg, a, b)})
        bound += len(ws_folds(cfg.rows, cfg.cols, K, N)) * (max(M, cfg.rows) + cfg.rows + cfg.cols + 2)
    stim = _stimulus(rng, seed, {"w": w_beats, "a": a_beats}, bound, expected, p_valid, p_ready)
    return trim_after_last_beat(stim, SystolicGemmWS(cfg), "o")


def gemm_golden_of(cfg: GemmConfig, a, b) -> list[list[int]]:
    from ..emulator.gemm_driver import gemm_golden

    return gemm_golden(cfg, a, b).tolist()


def _config_of(dev: DeviceConfig) -> GemmConfig:
    if dev.gemm is None:
        raise AccelError(f"preset {dev.name} has no attention array (whose PEs are the GEMM array); pick a preset "
                         f"with one (accel devices)")
    return dev.gemm


def _rtl_ws(cfg: GemmConfig):
    from ..rtl.gemm import SystolicGemmWS

    return SystolicGemmWS(cfg)


def _model_ws(cfg: GemmConfig):
    from ..emulator.units.gemm import SystolicGemmWS

    return SystolicGemmWS(cfg)


def _rtl(cfg: GemmConfig):
    from ..rtl.gemm import SystolicGemm

    return SystolicGemm(cfg)


def _model(cfg: GemmConfig):
    from ..emulator.units.gemm import SystolicGemm

    return SystolicGemm(cfg)


def _export_cost(cfg: GemmConfig) -> tuple[float, str]:
    """Seconds to export either engine and what they grow with: the PEs (measured on 2 cores: 4x4 3.6 s, 8x8 3.6 s,
    16x16 11.8 s)."""
    return 2.0 + 0.04 * cfg.rows * cfg.cols, f"{cfg.rows}x{cfg.cols} PEs"


SPEC = UnitSpec(name="gemm-os", top="systolic_gemm_os", config_of=_config_of, rtl=_rtl, model=_model,
                stimulus=make_stimulus, check=check, test_configs=lambda: list(TEST_CONFIGS), export_cost=_export_cost)
SPEC_WS = UnitSpec(name="gemm-ws", top="systolic_gemm_ws", config_of=_config_of, rtl=_rtl_ws, model=_model_ws,
                   stimulus=make_stimulus_ws, check=check_ws, test_configs=lambda: list(TEST_CONFIGS),
                   export_cost=_export_cost)
