"""Attention array: fixed-point numerics against a naive reference and torch, the per-cycle model against the golden
numerics, the closed-form latency, utilisation, buffer sizes, bad input, and the RTL's error flag. The four-way
equivalence (model, Amaranth sim, cocotb+Icarus, cocotb+Verilator) is ``tests/test_equivalence.py``."""
from __future__ import annotations

import math

import numpy as np
import pytest

from accel.config import AttentionConfig
from accel.emulator.units.attention import (AttentionArray, attention_cycles, golden, min_chunks_for_utilisation,
                                            run_attention, tile_beats, tile_cycles, utilisation)
from accel.equivalence.attention import TEST_CONFIGS, check, make_stimulus
from accel.equivalence.harness import compare_all, run_amaranth
from accel.errors import StimulusError
from accel.interfaces.attention import k_layout, q_layout
from accel.interfaces.packing import Packer
from accel.interfaces.stimulus import Stimulus, run_model
from accel.numerics import (AttnFormat, attention_fixed, attn_format, causal_mask, exp2_neg, exp2_table,
                            quantize_attention)
from accel.rtl.attention import AttentionArray as AttentionRTL

CFG_IDS = [f"cfg{i}" for i in range(len(TEST_CONFIGS))]


# ---- a deliberately naive reference: Python integers, one query and one key at a time


def _exp2_naive(t: int, F: int, E: int, P: int) -> int:
    u = (t + (1 << (F - E - 1))) >> (F - E) if F > E else t << (E - F)
    entry = math.floor(2.0 ** P * 2.0 ** (-(u % (1 << E)) / (1 << E)) + 0.5)
    return entry >> (u >> E)


def _attention_naive(q, k, v, fmt: AttnFormat, chunk: int, F: int, mask=None) -> list[list[int]]:
    P, G, E = fmt.prob_frac_bits, fmt.out_frac_bits, fmt.exp_table_bits
    out = []
    for i, qi in enumerate(q.tolist()):
        rm, rd, rnv, seen = None, 0, [0] * len(qi), False
        for c0 in range(0, len(k), chunk):
            keys = [j for j in range(c0, min(c0 + chunk, len(k))) if mask is None or mask[i][j]]
            if not keys:
                continue
            s = {j: sum(a * b for a, b in zip(qi, k[j].tolist())) for j in keys}
            new = max(s.values()) if rm is None else max(rm, max(s.values()))
            sln = {j: _exp2_naive(new - s[j], F, E, P) for j in keys}
            slnv = [sum(sln[j] * int(v[j][e]) for j in keys) for e in range(len(qi))]
            if seen:
                prm = _exp2_naive(new - rm, F, E, P)
                rd = ((rd * prm) >> P) + sum(sln.values())
                rnv = [((x * prm) >> P) + y for x, y in zip(rnv, slnv)]
            else:
                rd, rnv, seen = sum(sln.values()), slnv, True
            rm = new
        z = rd.bit_length() - (P + 1)
        recip = (1 << (2 * P + 1)) // (rd >> z)
        out.append([(x * recip) >> (2 * P + 1 + z - G) for x in rnv])
    return out


FORMATS = [(8, 64, 6), (8, 16, 4), (6, 8, 3), (4, 4, 1), (16, 32, 6), (3, 2, 8)]


@pytest.mark.parametrize("bits,hd,E", FORMATS)
def test_golden_equals_naive_reference(bits, hd, E):
    fmt = AttnFormat(data_bits=bits, head_dim=hd, exp_table_bits=E, prob_frac_bits=2 * bits - 1, out_frac_bits=bits)
    rng = np.random.default_rng(bits * 100 + hd)
    hi = 1 << (bits - 1)
    for trial in range(25):
        nq, nk, d = int(rng.integers(1, 6)), int(rng.integers(1, 40)), int(rng.integers(1, hd + 1))
        q, k, v = (rng.integers(-hi, hi, (n, d)) for n in (nq, nk, nk))
        F = int(rng.integers(0, fmt.max_score_frac_bits + 1))
        chunk = int(rng.integers(1, 9))
        mask = causal_mask(nq, nk) if trial % 3 == 0 else None
        if trial % 5 == 0:
            mask = rng.random((nq, nk)) < 0.5
            mask[:, 0] = True
        got = attention_fixed(q, k, v, fmt, chunk, F, mask)
        assert got.tolist() == _attention_naive(q, k, v, fmt, chunk, F, mask), f"trial {trial}"


def test_exp2_table_and_shift():
    fmt = AttnFormat(data_bits=8, head_dim=64, exp_table_bits=6, prob_frac_bits=15, out_frac_bits=8)
    table = exp2_table(6, 15)
    assert table[0] == 1 << 15 and len(table) == 64
    assert all(a > b for a, b in zip(table, table[1:]))
    F = 10
    t = np.arange(0, 40 << F, 7)
    e = exp2_neg(t, F, fmt)
    assert exp2_neg(0, F, fmt) == 1 << 15
    assert np.all(np.diff(e) <= 0)  # monotone
    exact = 2.0 ** 15 * 2.0 ** (-t / 2 ** F)
    # rounding the exponent to 1/64 costs at most 2**(1/128) - 1 relative, the table and shift one LSB more
    assert np.all(np.abs(e - exact) <= exact * (2 ** (1 / 128) - 1) + 1.0)
    assert exp2_neg(16 << F, F, fmt) == 0  # beyond P + 1 halvings everything is zero


def test_close_to_torch_sdpa():
    torch = pytest.importorskip("torch")
    cfg = AttentionConfig(rows=16, cols=16, head_dim=64, data_bits=8, exp_table_bits=6, clock_mhz=1000.0)
    fmt = attn_format(cfg)
    rng = np.random.default_rng(3)
    for causal in (False, True):
        Q, K, V = (rng.standard_normal((96, 64)) for _ in range(3))
        qa = quantize_attention(Q, K, V, fmt)
        out = golden(cfg, qa.q, qa.k, qa.v, qa.score_frac_bits, causal) * qa.out_scale
        ref = torch.nn.functional.scaled_dot_product_attention(
            *(torch.tensor(x)[None] for x in (Q, K, V)), is_causal=causal)[0].numpy()
        err = np.abs(out - ref).max() / np.abs(ref).max()
        assert err < 0.05, err
        # and the fixed-point softmax itself, on the dequantised inputs, is much closer
        deq = [torch.tensor(x * s)[None] for x, s in ((qa.q, qa.q_scale), (qa.k, qa.k_scale), (qa.v, qa.v_scale))]
        ref_q = torch.nn.functional.scaled_dot_product_attention(*deq, is_causal=causal,
                                                                 scale=1 / math.log2(math.e))[0].numpy()
        assert np.abs(out - ref_q).max() / np.abs(ref_q).max() < 0.02


# ---- the per-cycle model


@pytest.mark.parametrize("cfg", TEST_CONFIGS, ids=CFG_IDS)
def test_model_equals_golden_with_gaps_and_backpressure(cfg):
    for seed in range(150):
        stim = make_stimulus(cfg, seed)
        trace = run_model(AttentionArray(cfg), stim)
        assert check(cfg, stim, trace) == []


@pytest.mark.parametrize("cfg", TEST_CONFIGS + [AttentionConfig(rows=16, cols=8, head_dim=32, data_bits=8,
                                                                exp_table_bits=5, clock_mhz=1.0)])
def test_closed_form_latency_is_exact(cfg):
    rng = np.random.default_rng(cfg.rows * 7 + cfg.cols)
    hi = 1 << (cfg.data_bits - 1)
    for _ in range(40):
        d = int(rng.integers(1, cfg.head_dim + 1))
        chunks = int(rng.integers(1, 7))
        nk = (chunks - 1) * cfg.rows + int(rng.integers(1, cfg.rows + 1))
        q, k, v = (rng.integers(-hi, hi, (n, d)) for n in (cfg.cols, nk, nk))
        qb, kb, vb = tile_beats(cfg, q, k, v, 3, False, 0)
        n = tile_cycles(d, chunks) + 5
        ones = [1] * n
        stim = Stimulus(sources={"q": qb, "k": kb, "v": vb}, source_valid={"q": ones, "k": ones, "v": ones},
                        sink_ready={"o": ones}, cycles=n)
        model = AttentionArray(cfg)
        trace = run_model(model, stim)
        o_cycles = [c for c, o in enumerate(trace) if o["o__valid"]]
        assert o_cycles[-1] + 1 == tile_cycles(d, chunks), (d, chunks)
        assert len(o_cycles) == d
        assert model.busy_cycles == 2 * d * chunks


def test_steady_state_schedule_hides_the_softmax():
    assert tile_cycles(64, 100) == 2 * 64 * 100 + 2 * 64 + 3
    assert tile_cycles(1, 5) - tile_cycles(1, 4) == 3    # d = 1: the 2-cycle softmax step cannot hide
    assert tile_cycles(2, 5) - tile_cycles(2, 4) == 4    # d >= 2: exactly 2d per chunk


def test_utilisation_reaches_0_9():
    for d, n in ((64, 10), (128, 10), (16, 10), (8, 11), (2, 16)):
        assert min_chunks_for_utilisation(d) == n
        assert utilisation(d, n) >= 0.9 > utilisation(d, n - 1)
    cfg = AttentionConfig(rows=8, cols=4, head_dim=16, data_bits=8, exp_table_bits=4, clock_mhz=1.0)
    rng = np.random.default_rng(5)
    q, k, v = (rng.integers(-128, 128, (n, 16)) for n in (4, 80, 80))
    run = run_attention(cfg, q, k, v, 12)
    assert run.cycles == attention_cycles(cfg, 4, 80, 16) == tile_cycles(16, 10)
    assert run.utilisation == pytest.approx(utilisation(16, 10)) and run.utilisation >= 0.9


def test_buffers_do_not_grow_with_sequence_length():
    cfg = AttentionConfig(rows=4, cols=4, head_dim=8, data_bits=8, exp_table_bits=4, clock_mhz=1.0)
    rng = np.random.default_rng(9)
    shapes = []
    for nk in (4, 64, 400):
        q, k, v = (rng.integers(-128, 128, (n, 8)) for n in (4, nk, nk))
        model = AttentionArray(cfg)
        qb, kb, vb = tile_beats(cfg, q, k, v, 10, False, 0)
        n = tile_cycles(8, -(-nk // 4))
        ones = [1] * n
        run_model(model, Stimulus(sources={"q": qb, "k": kb, "v": vb},
                                  source_valid={"q": ones, "k": ones, "v": ones}, sink_ready={"o": ones}, cycles=n))
        arrays = {name: val.shape for name, val in vars(model).items() if isinstance(val, np.ndarray)}
        shapes.append((arrays, model.state_bits()))
    assert shapes[0] == shapes[1] == shapes[2]


def test_run_attention_matches_golden_causal_multi_tile():
    cfg = TEST_CONFIGS[1]
    rng = np.random.default_rng(11)
    q, k, v = (rng.integers(-32, 32, (n, 5)) for n in (7, 11, 11))
    for causal in (False, True):
        run = run_attention(cfg, q, k, v, 6, causal)
        assert run.out.tolist() == golden(cfg, q, k, v, 6, causal).tolist()
        assert run.cycles == attention_cycles(cfg, 7, 11, 5)


# ---- bad input


def test_bad_shapes_name_the_limit():
    fmt = AttnFormat(data_bits=8, head_dim=16, exp_table_bits=4, prob_frac_bits=15, out_frac_bits=8)
    z = np.zeros
    with pytest.raises(StimulusError, match=r"^head dimension 17 is beyond this array's head_dim = 16 "):
        attention_fixed(z((2, 17), int), z((3, 17), int), z((3, 17), int), fmt, 4, 8)
    with pytest.raises(StimulusError, match=r"^mask of shape \(3, 2\) and dtype bool: must be a boolean \(queries x "
                                            r"keys\) = \(2, 3\) array"):
        attention_fixed(z((2, 4), int), z((3, 4), int), z((3, 4), int), fmt, 4, 8, causal_mask(3, 2))
    with pytest.raises(StimulusError, match=r"^mask row 1 attends no key"):
        attention_fixed(z((2, 4), int), z((3, 4), int), z((3, 4), int), fmt, 4, 8,
                        np.array([[1, 0, 0], [0, 0, 0]], bool))
    with pytest.raises(StimulusError, match=r"^K has 3 keys and V 2 values"):
        attention_fixed(z((2, 4), int), z((3, 4), int), z((2, 4), int), fmt, 4, 8)
    with pytest.raises(StimulusError, match=r"^score_frac_bits = 23: must be an integer between 0 and 20"):
        attention_fixed(z((2, 4), int), z((3, 4), int), z((3, 4), int), fmt, 4, 23)
    with pytest.raises(StimulusError, match=r"^Q element 128 at index \[0, 0\] does not fit int8"):
        attention_fixed(np.full((2, 4), 128), z((3, 4), int), z((3, 4), int), fmt, 4, 8)
    with pytest.raises(StimulusError, match=r"^1048577 keys exceed the accumulators' limit of 2\*\*20"):
        attention_fixed(z((1, 1), int), z((1 << 20 | 1, 1), int), z((1 << 20 | 1, 1), int), fmt, 4, 8)


def test_model_stream_errors():
    cfg = TEST_CONFIGS[0]
    model = AttentionArray(cfg)
    pq, pk = Packer(q_layout(cfg)), Packer(k_layout(cfg))
    idle = {"q__valid": 0, "q__payload": 0, "k__valid": 0, "k__payload": 0, "v__valid": 0, "v__payload": 0,
            "o__ready": 1}
    beat = pq.pack({"data": [0] * cfg.cols, "last": 0, "shift": 0, "causal": 0, "pos": 0})
    for _ in range(cfg.head_dim - 1):
        model.step({**idle, "q__valid": 1, "q__payload": beat})
    with pytest.raises(StimulusError, match=r"^Q tile beat 7 without last: a tile has at most head_dim = 8 beats"):
        model.step({**idle, "q__valid": 1, "q__payload": beat})
    model.reset()
    with pytest.raises(StimulusError, match=r"^Q tile shift = 30: the score fraction bits must be at most 19"):
        model.step({**idle, "q__valid": 1, "q__payload": pq.pack({"data": [0] * cfg.cols, "last": 1, "shift": 30,
                                                                  "causal": 0, "pos": 0})})
    model.reset()
    model.step({**idle, "q__valid": 1, "q__payload": pq.pack({"data": [0] * cfg.cols, "last": 1, "shift": 3,
                                                              "causal": 0, "pos": 0})})
    with pytest.raises(StimulusError, match=r"^K chunk with keys = 5: a chunk holds 1 to rows = 4 keys"):
        model.step({**idle, "k__valid": 1, "k__payload": pk.pack({"data": [0] * cfg.rows, "last": 1, "keys": 5,
                                                                  "pos": 0})})


def test_cli_attention(capsys):
    import json

    from accel.cli import main

    assert main(["array", "attention", "--preset", "fpga-small", "--queries", "6", "--keys", "40",
                 "--head-dim", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cycles"] == 2 * tile_cycles(16, 10) and out["tiles"] == 2
    assert out["busy_fraction_2d"] == pytest.approx(utilisation(16, 10))
    assert out["utilisation"] == pytest.approx(2 * 6 * 40 * 16 / (16 * out["cycles"]))  # 2 of 8 queries idle
    assert out["keys_for_utilisation_0_9"] == 40
    assert main(["array", "attention", "--preset", "fpga-small", "--queries", "6", "--keys", "40",
                 "--head-dim", "17"]) == 2
    assert capsys.readouterr().err == "accel: error: --head-dim 17: must be between 1 and 16 (the array's head_dim)\n"
    assert main(["array", "attention", "--preset", "aim-gddr6", "--queries", "6", "--keys", "40",
                 "--head-dim", "16"]) == 2
    assert "has no attention array" in capsys.readouterr().err


@pytest.mark.rtl
def test_harness_reports_first_difference():
    cfg = TEST_CONFIGS[0]
    stim = make_stimulus(cfg, 3, p_valid=1.0, p_ready=1.0)
    (rtl,) = run_amaranth(AttentionRTL(cfg), [stim])
    model = run_model(AttentionArray(cfg), stim)
    assert compare_all([stim], "amaranth", [rtl], "emulator", [model]) == []
    first_v = next(c for c, o in enumerate(rtl) if o["v__ready"])
    bad = [dict(o) for o in model]
    bad[first_v - 1]["v__ready"] = 1
    msgs = compare_all([stim], "amaranth", [rtl], "mutant", [bad])
    assert msgs == [f"seed 3: mutant differs from amaranth first at cycle {first_v - 1}, signal v__ready: "
                    f"amaranth 0 (0x0), mutant 1 (0x1)"]


@pytest.mark.rtl
def test_rtl_error_flag_one_cycle_after_a_bad_chunk():
    cfg = TEST_CONFIGS[0]
    pq, pk = Packer(q_layout(cfg)), Packer(k_layout(cfg))
    q = pq.pack({"data": [1] * cfg.cols, "last": 1, "shift": 4, "causal": 0, "pos": 0})
    k = pk.pack({"data": [1] * cfg.rows, "last": 1, "keys": 0, "pos": 0})
    stim = Stimulus(sources={"q": [q], "k": [k], "v": []}, source_valid={"q": [1] * 5, "k": [1] * 5, "v": [0] * 5},
                    sink_ready={"o": [1] * 5}, cycles=5)
    (trace,) = run_amaranth(AttentionRTL(cfg), [stim])
    assert [o["error"] for o in trace] == [0, 0, 1, 1, 1]  # K beat transferred in cycle 1, flag from cycle 2 on
