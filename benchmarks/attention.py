"""Speed of the attention array's models: the per-cycle model (cycles per second), the per-cycle models of the GEMM
RTL (cycles per second, count checked against the native closed form) and the closed-form GEMM timing (time to
produce the SCALE-Sim-mode cycle count of a 64x768x768 GEMM on a 16x16 array).

Prints one JSON object. Usage: ``python benchmarks/attention.py``.
"""
from __future__ import annotations

import json
import platform
import time

import numpy as np

from accel.config import AttentionConfig, GemmConfig
from accel.emulator.gemm_driver import run_systolic
from accel.emulator.gemm_timing import gemm_timing
from accel.emulator.units.attention import attention_cycles, run_attention


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def model_speed(rows: int, cols: int, d: int, n_keys: int) -> dict:
    cfg = AttentionConfig(rows=rows, cols=cols, head_dim=d, data_bits=8, exp_table_bits=6, clock_mhz=1000.0)
    rng = np.random.default_rng(0)
    q, k, v = (rng.integers(-128, 128, (n, d)) for n in (cols, n_keys, n_keys))
    t0 = time.perf_counter()
    run = run_attention(cfg, q, k, v, 12)
    dt = time.perf_counter() - t0
    assert run.cycles == attention_cycles(cfg, cols, n_keys, d)
    return {"rows": rows, "cols": cols, "head_dim": d, "keys": n_keys, "cycles": run.cycles, "seconds": dt,
            "cycles_per_s": run.cycles / dt, "utilisation_2d": run.utilisation}


def gemm_model_speed(rows: int, cols: int, M: int, K: int, N: int, dataflow: str) -> dict:
    cfg = GemmConfig(rows=rows, cols=cols, data_bits=8, clock_mhz=1000.0)
    rng = np.random.default_rng(0)
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    t0 = time.perf_counter()
    run = run_systolic(cfg, a, b, dataflow)
    dt = time.perf_counter() - t0
    assert run.cycles == gemm_timing(M, K, N, rows, cols, dataflow, "native").cycles
    assert (run.out == a @ b).all()
    return {"rows": rows, "cols": cols, "M": M, "K": K, "N": N, "dataflow": dataflow, "cycles": run.cycles,
            "seconds": dt, "cycles_per_s": run.cycles / dt}


def main() -> None:
    out = {"machine": platform.machine(), "python": platform.python_version()}
    out["per_cycle_model"] = [model_speed(4, 4, 16, 512), model_speed(16, 16, 64, 512), model_speed(64, 64, 64, 1024)]
    out["gemm_rtl_model"] = [gemm_model_speed(4, 4, 64, 64, 64, "os"), gemm_model_speed(4, 4, 64, 64, 64, "ws"),
                             gemm_model_speed(16, 16, 64, 64, 64, "os"), gemm_model_speed(16, 16, 64, 64, 64, "ws")]
    reps = 2000
    for df in ("os", "ws", "is"):
        per_call = _best(lambda: [gemm_timing(64, 768, 768, 16, 16, df, "scalesim") for _ in range(reps)], 5) / reps
        t = gemm_timing(64, 768, 768, 16, 16, df, "scalesim")
        out[f"gemm_64x768x768_16x16_{df}_scalesim"] = {"cycles": t.cycles, "seconds_per_call": per_call,
                                                      "milliseconds_per_call": per_call * 1e3}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
