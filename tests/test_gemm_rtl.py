"""The systolic GEMMs on the attention array's PEs (output- and weight-stationary; input-stationary is
weight-stationary on the transposed problem): per-cycle models against the native closed forms and the golden
product, the RTL's exact count, the checks and error flags. The four-way equivalence (model, Amaranth sim,
cocotb+Icarus, cocotb+Verilator) on randomised GEMM streams (random shapes with ragged folds, short and long
dimensions, extremes, gaps on the inputs, backpressure on ``o``) is ``tests/test_equivalence.py`` (units ``gemm-os``
and ``gemm-ws``)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.config import GemmConfig
from accel.emulator.gemm_driver import gemm_beats, gemm_golden, gemm_ws_beats, run_systolic
from accel.emulator.gemm_timing import gemm_timing, rtl_gemm_cycles
from accel.emulator.units.gemm import SystolicGemm, SystolicGemmWS
from accel.equivalence.gemm import TEST_CONFIGS, check, check_ws, make_stimulus, make_stimulus_ws
from accel.equivalence.harness import compare_all, run_amaranth
from accel.errors import StimulusError
from accel.interfaces.gemm import ab_layout, w_layout, ws_a_layout
from accel.interfaces.packing import Packer
from accel.interfaces.stimulus import Stimulus, run_model
from accel.rtl.gemm import SystolicGemm as SystolicRTL
from accel.rtl.gemm import SystolicGemmWS as SystolicWSRTL


def _cfg(rows, cols, data_bits=8):
    return GemmConfig(rows=rows, cols=cols, data_bits=data_bits, clock_mhz=25.0)


@settings(max_examples=150, deadline=None)
@given(R=st.integers(1, 5), C=st.integers(1, 5), M=st.integers(1, 16), N=st.integers(1, 16), dk=st.integers(0, 12),
       seed=st.integers(0, 2**32 - 1))
def test_model_cycles_equal_native_closed_form(R, C, M, N, dk, seed):
    """With K >= rows + cols - 1 a result bank is always free in time: the model's first-to-last MAC count is the
    native output-stationary closed form, every MAC happens once, and the product is exact."""
    cfg = _cfg(R, C)
    K = R + C - 1 + dk
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    run = run_systolic(cfg, a, b)
    assert run.cycles == gemm_timing(M, K, N, R, C, "os", "native").cycles
    assert run.macs == M * K * N
    assert (run.out == a @ b).all()


@settings(max_examples=100, deadline=None)
@given(R=st.integers(1, 5), C=st.integers(1, 5), M=st.integers(1, 16), N=st.integers(1, 16), K=st.integers(1, 9),
       seed=st.integers(0, 2**32 - 1))
def test_model_short_folds_wait_for_a_bank(R, C, M, N, K, seed):
    """Any K: the product is exact, the count is rtl_gemm_cycles, never below the native closed form (short folds may
    wait for a free result bank) and equal to it when a bank is always free in time."""
    cfg = _cfg(R, C)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    run = run_systolic(cfg, a, b)
    native = gemm_timing(M, K, N, R, C, "os", "native").cycles
    assert (run.out == a @ b).all() and run.macs == M * K * N
    assert run.cycles == rtl_gemm_cycles(M, K, N, R, C, "os") >= native
    if K >= R + C - 1:
        assert run.cycles == native


def test_short_folds_stall_exactly_as_specified():
    # 4x4 array, K = 1, four folds: fold f+2 needs fold f's bank, free two cycles after fold f's last MAC (in PE
    # (3, 3), 6 cycles after its beat: done is registered, then the copy frees the bank)
    cfg = _cfg(4, 4)
    a = np.ones((16, 1), dtype=np.int64)
    b = np.ones((1, 4), dtype=np.int64)
    run = run_systolic(cfg, a, b)
    assert gemm_timing(16, 1, 4, 4, 4, "os", "native").cycles == 10
    # folds enter at 0, 1, 8, 9: the last MAC of fold 3 is at 9 + 6
    assert run.cycles == 16


def test_accumulator_wraps_like_the_golden_model():
    """2-bit data: 20-bit accumulators; 2**17 products of (-2)(-2) sum to 2**19, one past the largest value."""
    cfg = _cfg(1, 1, data_bits=2)
    assert cfg.acc_bits == 20
    K = 1 << 17
    a, b = np.full((1, K), -2), np.full((K, 1), -2)
    assert gemm_golden(cfg, a, b).tolist() == [[-(1 << 19)]]
    assert run_systolic(cfg, a, b).out.tolist() == [[-(1 << 19)]]
    assert gemm_golden(cfg, a[:, :-1], b[:-1]).tolist() == [[(1 << 19) - 4]]


def test_bad_operands_name_the_limit():
    cfg = _cfg(2, 2, data_bits=4)
    with pytest.raises(StimulusError, match=r"A holds 8, outside the array's signed 4-bit range -8\.\.7"):
        gemm_beats(cfg, np.array([[8]]), np.array([[1]]))
    with pytest.raises(StimulusError, match=r"do not multiply"):
        gemm_beats(cfg, np.ones((2, 3), dtype=int), np.ones((2, 3), dtype=int))
    with pytest.raises(StimulusError, match=r"B has dtype float64"):
        gemm_beats(cfg, np.ones((2, 3), dtype=int), np.ones((3, 2)))


def test_check_catches_a_wrong_product():
    cfg = TEST_CONFIGS[0]
    stim = make_stimulus(cfg, 5, p_valid=1.0, p_ready=1.0)
    trace = run_model(SystolicGemm(cfg), stim)
    assert check(cfg, stim, trace) == []
    stim.expected[0]["out"][0][0] += 1
    assert check(cfg, stim, trace) != []


@pytest.mark.rtl
def test_rtl_busy_count_is_the_native_closed_form():
    """Straight from the RTL: the cycles with a MAC span exactly the native count (K >= rows + cols - 1)."""
    cfg = TEST_CONFIGS[0]
    rng = np.random.default_rng(7)
    M, K, N = 9, 8, 6
    beats = gemm_beats(cfg, rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N)))
    n = len(beats) + 40
    stim = Stimulus(sources={"ab": beats}, source_valid={"ab": [1] * n}, sink_ready={"o": [1] * n}, cycles=n)
    (trace,) = run_amaranth(SystolicRTL(cfg), [stim])
    busy = [c for c, o in enumerate(trace) if o["busy"]]
    assert busy[-1] - busy[0] + 1 == gemm_timing(M, K, N, cfg.rows, cfg.cols, "os", "native").cycles
    assert compare_all([stim], "amaranth", [trace], "emulator", [run_model(SystolicGemm(cfg), stim)]) == []


@pytest.mark.rtl
def test_rtl_error_flag_one_cycle_after_a_bad_fold():
    cfg = TEST_CONFIGS[0]
    pk = Packer(ab_layout(cfg))
    beat = pk.pack({"a": [1] * cfg.rows, "b": [1] * cfg.cols, "rows": 0, "cols": 1, "last": 1})
    stim = Stimulus(sources={"ab": [beat]}, source_valid={"ab": [0, 1, 1, 1, 1]}, sink_ready={"o": [1] * 5},
                    cycles=5)
    (trace,) = run_amaranth(SystolicRTL(cfg), [stim])
    assert [o["error"] for o in trace] == [0, 0, 1, 1, 1]
    assert run_model(SystolicGemm(cfg), stim) == trace


# ---------------------------------------------------------------------------------------------------------------------
# weight-stationary (and input-stationary as weight-stationary on the transposed problem)


@settings(max_examples=200, deadline=None)
@given(R=st.integers(1, 5), C=st.integers(1, 5), M=st.integers(1, 14), K=st.integers(1, 14), N=st.integers(1, 14),
       dataflow=st.sampled_from(["ws", "is"]), seed=st.integers(0, 2**32 - 1))
def test_ws_model_cycles_equal_native_closed_form(R, C, M, K, N, dataflow, seed):
    """Every shape: first weight beat to last MAC is the native closed form (load chain, shadow bank, fold every
    max(M, rows) cycles), every MAC happens once, and the product is exact."""
    cfg = _cfg(R, C)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N))
    run = run_systolic(cfg, a, b, dataflow)
    assert run.cycles == gemm_timing(M, K, N, R, C, dataflow, "native").cycles
    assert run.macs == M * K * N
    assert (run.out == a @ b).all()


def test_ws_check_catches_a_wrong_product():
    cfg = TEST_CONFIGS[0]
    stim = make_stimulus_ws(cfg, 5, p_valid=1.0, p_ready=1.0)
    trace = run_model(SystolicGemmWS(cfg), stim)
    assert check_ws(cfg, stim, trace) == []
    stim.expected[-1]["out"][-1][-1] += 1
    assert check_ws(cfg, stim, trace) != []


@pytest.mark.rtl
def test_ws_rtl_busy_count_is_the_native_closed_form():
    cfg = TEST_CONFIGS[0]
    rng = np.random.default_rng(8)
    M, K, N = 3, 10, 7      # M < rows: folds paced by the weight load (max(M, rows))
    w_beats, a_beats = gemm_ws_beats(cfg, rng.integers(-128, 128, (M, K)), rng.integers(-128, 128, (K, N)))
    n = len(w_beats) + len(a_beats) + 60
    stim = Stimulus(sources={"w": w_beats, "a": a_beats}, source_valid={"w": [1] * n, "a": [1] * n},
                    sink_ready={"o": [1] * n}, cycles=n)
    (trace,) = run_amaranth(SystolicWSRTL(cfg), [stim])
    busy = [c for c, o in enumerate(trace) if o["busy"]]
    assert busy[-1] + 1 == gemm_timing(M, K, N, cfg.rows, cfg.cols, "ws", "native").cycles  # first w beat: cycle 0
    assert compare_all([stim], "amaranth", [trace], "emulator", [run_model(SystolicGemmWS(cfg), stim)]) == []


@pytest.mark.rtl
def test_ws_backpressure_freezes_the_array():
    """o not ready: nothing moves (no beat taken, no MAC) until it is; the results are unchanged."""
    cfg = TEST_CONFIGS[1]
    rng = np.random.default_rng(9)
    a, b = rng.integers(-32, 32, (5, 4)), rng.integers(-32, 32, (4, 3))
    w_beats, a_beats = gemm_ws_beats(cfg, a, b)
    n = 200
    ready = [1] * 12 + [0] * 30 + [1] * (n - 42)
    stim = Stimulus(sources={"w": w_beats, "a": a_beats}, source_valid={"w": [1] * n, "a": [1] * n},
                    sink_ready={"o": ready}, cycles=n, expected=[{"M": 5, "K": 4, "N": 3, "out": (a @ b).tolist()}])
    (trace,) = run_amaranth(SystolicWSRTL(cfg), [stim])
    stalled = [o for c, o in enumerate(trace) if 13 <= c < 42 and o["o__valid"]]
    assert stalled and all(not (o["busy"] or o["w__ready"] or o["a__ready"]) for o in stalled)
    assert check_ws(cfg, stim, trace) == []
    assert compare_all([stim], "amaranth", [trace], "emulator", [run_model(SystolicGemmWS(cfg), stim)]) == []


@pytest.mark.rtl
def test_ws_rtl_error_flag_one_cycle_after_a_bad_fold():
    cfg = TEST_CONFIGS[0]
    pw, pa = Packer(w_layout(cfg)), Packer(ws_a_layout(cfg))
    w_beats = [pw.pack([1] * cfg.cols)] * cfg.rows
    a_beat = pa.pack({"a": [1] * cfg.rows, "rows": cfg.rows, "cols": cfg.cols + 1, "last": 1})
    n = cfg.rows + 5
    stim = Stimulus(sources={"w": w_beats, "a": [a_beat]}, source_valid={"w": [1] * n, "a": [1] * n},
                    sink_ready={"o": [1] * n}, cycles=n)
    (trace,) = run_amaranth(SystolicWSRTL(cfg), [stim])
    taken_at = next(c for c, o in enumerate(trace) if o["a__ready"])
    assert [o["error"] for o in trace] == [0] * (taken_at + 1) + [1] * (n - taken_at - 1)
    assert run_model(SystolicGemmWS(cfg), stim) == trace


def test_cli_emulate(capsys):
    from accel.cli import main

    assert main(["array", "gemm", "--M", "17", "--K", "33", "--N", "9", "--rows", "8", "--cols", "4",
                 "--dataflow", "ws", "--emulate", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["emulated_cycles"] == out["rtl_cycles"] == out["cycles"] == 263 and out["emulated_exact"] is True
    assert main(["array", "gemm", "--M", "16", "--K", "1", "--N", "4", "--rows", "4", "--cols", "4",
                 "--emulate"]) == 0
    text = capsys.readouterr().out
    assert "cycles       10" in text and "RTL cycles   16" in text and "wait for a free result bank" in text
    assert "emulated     16" in text and "= RTL cycles" in text
    assert main(["array", "gemm", "--M", "16", "--K", "7", "--N", "4", "--rows", "4", "--cols", "4"]) == 0
    assert "RTL cycles   " in (text := capsys.readouterr().out) and "equal" in text
    assert main(["array", "gemm", "--M", "8", "--K", "8", "--N", "8", "--rows", "4", "--cols", "4",
                 "--timing", "scalesim", "--emulate"]) == 2
    assert "drop --timing scalesim" in capsys.readouterr().err
    assert main(["array", "gemm", "--M", "100000", "--K", "1000", "--N", "4", "--rows", "4", "--cols", "4",
                 "--emulate"]) == 2
    assert "over the per-cycle model's limit" in capsys.readouterr().err


def _os_schedule_reference(M, K, N, R, C):
    """The os RTL's fold schedule as a plain O(folds) recurrence (the oracle of :func:`rtl_gemm_cycles`)."""
    folds = [(min(R, M - r0), min(C, N - c0)) for c0 in range(0, N, C) for r0 in range(0, M, R)]
    s_prev = c2 = c1 = None
    best = -1
    for f, (ur, uc) in enumerate(folds):
        s = 0 if f == 0 else s_prev + K
        if f >= 2:
            s = max(s, c2 + 1)
        x = s + K + ur + uc - 3
        c = x + 1 if c1 is None else max(x + 1, c1 + 1)
        best = max(best, x)
        s_prev, c2, c1 = s, c1, c
    return best + 1


@settings(max_examples=120, deadline=None)
@given(R=st.integers(1, 5), C=st.integers(1, 5), M=st.integers(1, 16), N=st.integers(1, 16), K=st.integers(1, 12),
       dataflow=st.sampled_from(["os", "ws", "is"]))
def test_rtl_cycles_equal_the_models(R, C, M, N, K, dataflow):
    """rtl_gemm_cycles is the per-cycle model's count for every shape and dataflow (os: with the bank waits)."""
    cfg = _cfg(R, C)
    a, b = np.ones((M, K), dtype=np.int64), np.ones((K, N), dtype=np.int64)
    assert rtl_gemm_cycles(M, K, N, R, C, dataflow) == run_systolic(cfg, a, b, dataflow).cycles


@settings(max_examples=1000, deadline=None)
@given(R=st.integers(1, 24), C=st.integers(1, 24), fr=st.integers(1, 120), fc=st.integers(1, 120),
       r_last=st.integers(1, 24), c_last=st.integers(1, 24), K=st.integers(1, 60))
def test_rtl_cycles_os_jumps_equal_the_recurrence(R, C, fr, fc, r_last, c_last, K):
    """The O(1) os count (periodic runs of folds jumped) equals the fold-by-fold recurrence, and lies between the
    native closed form and SCALE-Sim's line count (up to 120 x 120 folds, ragged last folds)."""
    M, N = (fr - 1) * R + min(r_last, R), (fc - 1) * C + min(c_last, C)
    got = rtl_gemm_cycles(M, K, N, R, C, "os")
    assert got == _os_schedule_reference(M, K, N, R, C)
    assert gemm_timing(M, K, N, R, C, "os", "native").cycles <= got <= gemm_timing(M, K, N, R, C, "os",
                                                                                  "scalesim").cycles + 1
    if K >= R + C - 1:
        assert got == gemm_timing(M, K, N, R, C, "os", "native").cycles


def test_rtl_cycles_os_huge_shape_is_instant():
    # 2**46 full folds of K = 1 on 2x2: a pair of folds every max(2K, K + rows + cols - 1) = 4 cycles, the last
    # (odd) fold enters at 2F - 3 and makes its last MAC 2 cycles later: 2F cycles
    assert rtl_gemm_cycles(1 << 24, 1, 1 << 24, 2, 2, "os") == 2 * (1 << 46)
    assert [rtl_gemm_cycles(2 * n, 1, 2, 2, 2, "os") for n in range(1, 7)] == [3, 4, 7, 8, 11, 12]
