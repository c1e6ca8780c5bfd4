"""Quantised GEMV/GEMM kernels: the packed format, bit-exactness against accel.numerics on int8 activations, the
stated fp16 error, and bad input refused before any launch.

Runs in Triton's interpreter on CPU (small shapes) and natively where a GPU is visible; ``gpu``-marked tests run
large shapes natively only.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from accel.gpu.backend import KernelInputError, kernel_device, kernel_mode  # noqa: E402

kernel_mode()  # native or interpreter, chosen before Triton is imported
pytest.importorskip("triton")

from accel.config import BITSERIAL_DATATYPES  # noqa: E402
from accel.errors import StimulusError  # noqa: E402
from accel.gpu import ops, tolerances  # noqa: E402
from accel.gpu import quant_gemm, quant_gemv  # noqa: E402
from accel.gpu.layout import packed_weight_bytes, words_per_row  # noqa: E402
from accel.gpu.quant_gemm import gemm_q  # noqa: E402
from accel.gpu.quant_gemv import gemv_q, reference_gemv_fp16  # noqa: E402
from accel.gpu.quant_pack import (pack_arrays, pack_codes, pack_quantized, unpack_codes,  # noqa: E402
                                  value_table)
from accel.numerics import DATATYPES, matvec_int, quantize_weights  # noqa: E402

pytestmark = pytest.mark.triton
native = pytest.mark.skipif(kernel_mode() != "native", reason="needs a CUDA GPU (native Triton)")
DEV = kernel_device()

#: Datatype families by code width; an 8-bit matrix may mix in narrower types (their codes are zero-extended).
FAMILIES = {
    8: ("int8", "int4", "fp4_ea_neg", "fp3_er_pos"),
    4: ("int4", "fp4_er_pos", "fp4_er_neg", "fp4_ea_pos", "fp4_ea_neg", "int3", "fp3_ea_pos"),
    3: ("int3", "fp3_er_pos", "fp3_er_neg", "fp3_ea_pos", "fp3_ea_neg"),
}
KERNELS = {"gemv": (gemv_q, 3), "gemm": (gemm_q, 20)}


def _random_case(seed: int, bits: int, max_rows: int, k_groups: int = 4):
    rng = np.random.default_rng(seed)
    fam = FAMILIES[bits]
    names = tuple(rng.choice(fam, size=int(rng.integers(1, len(fam) + 1)), replace=False))
    if bits > 3 and max(DATATYPES[d].code_bits for d in names) < bits:
        names = (fam[0],) + tuple(d for d in names if d != fam[0])  # so the narrowest width really is `bits`
    group = int(rng.choice([16, 32, 64]))
    n, k = int(rng.integers(1, 70)), group * int(rng.integers(1, k_groups + 1))
    qw = quantize_weights(rng.standard_normal((n, k)) * rng.uniform(0.01, 5), names, group_size=group,
                          scale_bits=int(rng.integers(1, 17)))
    acts = rng.integers(-128, 128, (int(rng.integers(1, max_rows + 1)), k))
    acts[0, : k // 4] = rng.choice([-128, 127], k // 4)  # the extremes of int8
    return rng, qw, acts


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_pack_roundtrip_and_size(bits):
    rng = np.random.default_rng(bits)
    for k in (16, 48, 96, 256):
        if bits != 3 and k % (32 // bits):
            continue
        codes = rng.integers(0, 1 << bits, (5, k))
        words = pack_codes(codes, bits)
        assert words.dtype == np.int32 and words.shape == (5, words_per_row(k, bits))
        assert (unpack_codes(words, bits, k) == codes).all()


def test_pack_format_known_words():
    assert pack_codes(np.array([[1, 2, 3, 4, 5, 6, 7, 8]]), 4).view(np.uint32)[0, 0] == 0x87654321
    assert pack_codes(np.array([[1, 2, 3, 0xFF]]), 8).view(np.uint32)[0, 0] == 0xFF030201
    codes = np.zeros((1, 32), np.int64)
    codes[0, 0], codes[0, 17] = 7, 5  # 0b111 in slot 0 of the first plane, 0b101 in slot 1 of the second
    assert pack_codes(codes, 3).view(np.uint32).tolist() == [[0b11, 0b01 << 2, (1 << 0) | (1 << 17)]]
    assert words_per_row(33, 3) == 6  # rows pad to whole 32-code units


def test_value_table_is_the_numerics_datatypes():
    for bits in (3, 4, 8):
        table = value_table(bits, "cpu").numpy()
        assert table.shape == (len(BITSERIAL_DATATYPES), 1 << bits)
        for d, name in enumerate(BITSERIAL_DATATYPES):
            vals = DATATYPES[name].values
            if len(vals) <= 1 << bits:
                assert table[d, :len(vals)].tolist() == list(vals)


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("bits", [3, 4, 8])
@pytest.mark.parametrize("seed", range(6))
def test_int8_activations_equal_matvec_int(kernel, bits, seed):
    fn, max_rows = KERNELS[kernel]
    _, qw, acts = _random_case(100 * bits + seed, bits, max_rows)
    pw = pack_quantized(qw)
    assert pw.bits == bits
    y = fn(torch.from_numpy(acts.astype(np.int8)).to(DEV), pw).cpu().numpy()
    want = np.stack([matvec_int(a, qw, acc_bits=32, act_bits=8) for a in acts])
    assert y.dtype == np.int32 and np.array_equal(y, want)


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_int32_accumulation_wraps_like_the_registers(kernel):
    rng = np.random.default_rng(7)
    n, k = 9, 512
    w = np.where(rng.random((n, k)) < 0.5, -1.0, 1.0) * 1000.0
    qw = quantize_weights(w, ("int8",), group_size=128, scale_bits=16)
    acts = np.where(qw.values[:1] < 0, -128, 127).repeat(2, axis=0)
    exact = matvec_int(acts[0], qw, acc_bits=64)
    assert np.abs(exact).max() > 2 ** 31  # the sums really overflow 32 bits
    fn, _ = KERNELS[kernel]
    y = fn(torch.from_numpy(acts.astype(np.int8)).to(DEV), pack_quantized(qw)).cpu().numpy()
    assert np.array_equal(y[0], matvec_int(acts[0], qw, acc_bits=32))


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("bits", [3, 4, 8])
@pytest.mark.parametrize("seed", range(4))
def test_fp16_activations_within_stated_error(kernel, bits, seed):
    fn, max_rows = KERNELS[kernel]
    rng, qw, acts = _random_case(1000 + 100 * bits + seed, bits, max_rows)
    x = torch.from_numpy(rng.standard_normal(acts.shape) * rng.uniform(0.1, 10)).half().to(DEV)
    y = fn(x, pack_quantized(qw)).double().cpu().numpy()
    ref = reference_gemv_fp16(x, qw).double().cpu().numpy()
    xd = x.double().cpu().numpy()
    scale = np.abs(xd) @ np.abs(qw.weights).T
    assert (np.abs(y - ref) <= tolerances.MATMUL_FP16 * (scale + np.abs(ref))).all()
    assert (np.abs(y - xd @ qw.weights.T) <= tolerances.MATMUL_FP16 * scale).all()


def test_packed_bytes_match_the_roofline_count():
    rng = np.random.default_rng(3)
    for bits, (n, k, g) in zip((3, 4, 8, 3), ((5, 48, 16), (7, 128, 64), (3, 96, 32), (2, 256, 128))):
        codes = rng.integers(0, 1 << min(bits, 3), (n, k))
        pw = pack_arrays(codes, np.full((n, k // g), 2), np.ones((n, k // g), np.int64), np.ones(n), g, bits)
        assert pw.nbytes == packed_weight_bytes(n, k, bits, g)


def _valid(n=4, k=64, g=32):
    return np.zeros((n, k), np.int64), np.zeros((n, k // g), np.int64), np.ones((n, k // g), np.int64), np.ones(n)


@pytest.mark.parametrize("change, message", [
    (dict(bits=5), r"^bits = 5: the kernels read 3-, 4- or 8-bit codes"),
    (dict(group_size=24), r"^group_size = 24: the GPU kernels need a positive multiple of 16"),
    (dict(group_size=48), r"^K = 64 is not a multiple of group_size 48"),
    (dict(dcode=11), r"^datatype code 11 of group \(0, 0\) is outside the set 0\.\.10"),
    (dict(dcode=-1), r"^datatype code -1 of group \(0, 0\) is outside the set"),
    (dict(dcode=0, bits=4), r"^group \(0, 0\) is int8, which needs 8-bit codes, but the weights are packed at 4"),
    (dict(code=9, dcode=2, bits=4), r"^weight code 9 at \(0, 0\) does not fit its group's datatype int3 "
                                    r"\(codes 0\.\.7\)"),
    (dict(scale=70000), r"^group scale 70000 of group \(0, 0\) is outside 0\.\.65535"),
])
def test_pack_refuses_bad_weights(change, message):
    codes, dcode, scale, rs = _valid()
    dcode[:] = 1  # int4
    if "dcode" in change:
        dcode[0, 0] = change["dcode"]
    if "code" in change:
        codes[0, 0] = change["code"]
    if "scale" in change:
        scale[0, 0] = change["scale"]
    with pytest.raises(KernelInputError, match=message):
        pack_arrays(codes, dcode, scale, rs, change.get("group_size", 32), change.get("bits", 8))


class _NoLaunch:
    def __getitem__(self, grid):
        raise AssertionError("a kernel was launched")


@pytest.mark.parametrize("bad, message", [
    (lambda x, pw: (x.float(), pw), r"^activations has dtype float32; it must be int8, float16"),
    (lambda x, pw: (x[:, :32].contiguous(), pw), r"^activations have 32 inputs .* but the weights have K = 64"),
    (lambda x, pw: (torch.zeros((2, 128), dtype=torch.float16, device=x.device)[:, ::2], pw),
     r"^activations is not contiguous"),
    (lambda x, pw: (x, "weights"), r"^weights are a str; pack them first"),
    (lambda x, pw: (x.to("meta"), pw), r"^activations is on meta"),
    (lambda x, pw: (x[0, 0], pw), r"^activations has 0 dimensions"),
])
def test_matmul_refuses_bad_input_before_launch(monkeypatch, bad, message):
    monkeypatch.setattr(quant_gemv, "_gemv_q_kernel", _NoLaunch())
    monkeypatch.setattr(quant_gemm, "_gemm_q_kernel", _NoLaunch())
    codes, dcode, scale, rs = _valid()
    pw = pack_arrays(codes, dcode, scale, rs, 32, 8)
    x, w = bad(torch.zeros((2, 64), dtype=torch.float16, device=DEV), pw)
    for fn in (gemv_q, gemm_q):
        with pytest.raises(KernelInputError, match=message):
            fn(x, w)
    with pytest.raises(KernelInputError, match=r"^BLOCK_M = 24: it must be a power of two >= 16"):
        gemm_q(torch.zeros((2, 64), dtype=torch.float16, device=DEV), pw, config={"BLOCK_M": 24})


def test_ops_take_numpy_and_quantized_weights():
    rng, qw, acts = _random_case(5, 4, 3)
    want = np.stack([matvec_int(a, qw, 32, 8) for a in acts])
    assert np.array_equal(ops.run_gemv_q(acts, qw), want)
    assert np.array_equal(ops.run_gemm_q(acts, qw), want)
    assert np.array_equal(ops.OPS_BY_KIND["matmul"](acts[0], qw), want[0])
    y = ops.run_gemv_q(rng.standard_normal(qw.shape[1]), pack_quantized(qw))
    assert isinstance(y, np.ndarray) and y.dtype == np.float16 and y.shape == (qw.shape[0],)
    with pytest.raises(StimulusError, match=r"activation 300 at index \[0\] does not fit int8"):
        ops.run_gemv_q(np.full(qw.shape[1], 300), qw)


@pytest.mark.gpu
@native
@pytest.mark.parametrize("bits", [3, 4, 8])
def test_native_model_shapes(bits):
    rng = np.random.default_rng(bits)
    n, k, g = 4096, 4096, 128
    qw = quantize_weights(rng.standard_normal((n, k)).astype(np.float32), FAMILIES[bits][:2] if bits != 8 else
                          ("int8",), group_size=g)
    pw = pack_quantized(qw)
    acts = rng.integers(-128, 128, (3, k))
    want = np.stack([matvec_int(a, qw, 32, 8) for a in acts])
    xi = torch.from_numpy(acts.astype(np.int8)).cuda()
    assert np.array_equal(gemv_q(xi, pw).cpu().numpy(), want)
    assert np.array_equal(gemm_q(xi, pw).cpu().numpy(), want)
    x = torch.randn((512, k), device="cuda", dtype=torch.float16)
    ref = reference_gemv_fp16(x, qw).double()
    scale = x.double().abs() @ torch.from_numpy(np.abs(qw.weights)).cuda().T
    for y in (gemm_q(x, pw), torch.stack([gemv_q(x[i], pw) for i in range(2)])):
        r = ref[: y.shape[0]]
        assert ((y.double() - r).abs() <= tolerances.MATMUL_FP16 * (scale[: y.shape[0]] + r.abs())).all()
