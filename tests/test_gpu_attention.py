"""Fused attention kernels: prefill (causal, bottom-right aligned, grouped-query heads) and split-K decode against a
KV cache, checked against an explicit fp64 torch reference and torch's scaled_dot_product_attention within the stated
tolerances; bad input refused before any launch."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from accel.gpu.backend import KernelInputError, kernel_device, kernel_mode  # noqa: E402

kernel_mode()  # native or interpreter, chosen before Triton is imported
pytest.importorskip("triton")

from accel.gpu import attention_decode as decode_mod  # noqa: E402
from accel.gpu import attention_prefill as prefill_mod  # noqa: E402
from accel.gpu import ops, tolerances  # noqa: E402
from accel.gpu.attention_decode import attention_decode  # noqa: E402
from accel.gpu.attention_prefill import attention_prefill, reference_attention  # noqa: E402

pytestmark = pytest.mark.triton
native = pytest.mark.skipif(kernel_mode() != "native", reason="needs a CUDA GPU (native Triton)")
DEV = kernel_device()
DTYPES = [torch.float16, torch.float32]
SDPA = torch.nn.functional.scaled_dot_product_attention


def _qkv(gen, b, hq, hkv, sq, skv, d, dtype, amp=1.0):
    q = torch.randn((b, hq, sq, d), generator=gen).mul(amp).to(dtype).to(DEV)
    k = torch.randn((b, hkv, skv, d), generator=gen).mul(amp).to(dtype).to(DEV)
    v = torch.randn((b, hkv, skv, d), generator=gen).mul(amp).to(dtype).to(DEV)
    return q, k, v


def _close(got, ref, v, dtype):
    err = float((got.double() - ref).abs().max())
    assert err <= tolerances.ATTENTION[str(dtype).replace("torch.", "")] * float(v.abs().max()), err


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_prefill_matches_reference(dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi, (1,), generator=gen))  # noqa: E731
    hkv = r(1, 3)
    hq, d, sq = hkv * r(1, 4), [16, 24, 32, 64][r(0, 4)], r(1, 40)
    causal = seed % 2 == 0
    skv = sq + (r(0, 20) if seed % 3 else 0)
    q, k, v = _qkv(gen, r(1, 3), hq, hkv, sq, skv, d, dtype, amp=0.5 + seed)
    out = attention_prefill(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == dtype
    _close(out, reference_attention(q, k, v, causal), v, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prefill_equals_torch_sdpa(dtype):
    gen = torch.Generator().manual_seed(11)
    q, k, v = _qkv(gen, 2, 4, 2, 33, 33, 32, dtype)
    for causal in (True, False):
        ours = attention_prefill(q, k, v, causal=causal, sm_scale=0.3)
        theirs = SDPA(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=causal, scale=0.3)
        _close(ours, theirs.double(), v, dtype)


def test_prefill_small_tiles_cross_the_diagonal():
    # several query and key tiles: blocks fully below the diagonal run unmasked, the diagonal and the tail masked
    gen = torch.Generator().manual_seed(3)
    q, k, v = _qkv(gen, 1, 2, 1, 50, 70, 16, torch.float32)
    for causal in (True, False):
        out = attention_prefill(q, k, v, causal=causal, config={"BLOCK_M": 16, "BLOCK_N": 16})
        _close(out, reference_attention(q, k, v, causal), v, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_decode_matches_reference(dtype, seed):
    gen = torch.Generator().manual_seed(100 + seed)
    r = lambda lo, hi: int(torch.randint(lo, hi, (1,), generator=gen))  # noqa: E731
    b, hkv = r(1, 4), r(1, 3)
    hq, d, s_max = hkv * r(1, 5), [16, 40, 64][r(0, 3)], r(1, 120)
    q, k, v = _qkv(gen, b, hq, hkv, 1, s_max, d, dtype, amp=1.0 + seed)
    lens = [r(1, s_max + 1) for _ in range(b)]
    lens[0] = 1 if seed == 0 else s_max  # a sequence of one key, and one filling the cache
    splits = [None, 1, 2, 3, 7][seed]
    out = attention_decode(q[:, :, 0].contiguous(), k, v, lens, num_splits=splits, block_n=16)
    assert out.shape == (b, hq, d) and out.dtype == dtype
    _close(out, reference_attention(q, k, v, False, kv_lens=lens)[:, :, 0], v, dtype)


def test_decode_equals_torch_sdpa_and_prefill_last_row():
    gen = torch.Generator().manual_seed(5)
    q, k, v = _qkv(gen, 2, 8, 2, 1, 96, 32, torch.float32)
    ours = attention_decode(q[:, :, 0].contiguous(), k, v, 96, num_splits=3, block_n=16)
    theirs = SDPA(q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1))[:, :, 0]
    _close(ours, theirs.double(), v, torch.float32)
    # decode of the last token == the last row of causal prefill over the same keys
    qs, _, _ = _qkv(gen, 2, 8, 2, 96, 96, 32, torch.float32)
    last = attention_prefill(qs, k, v, causal=True)[:, :, -1]
    dec = attention_decode(qs[:, :, -1].contiguous(), k, v, 96, num_splits=2, block_n=32)
    _close(dec, last.double(), v, torch.float32)


def test_ops_attention_take_numpy():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, h, 9, 16)) for h in (2, 1, 1))
    want = reference_attention(*(torch.from_numpy(a) for a in (q, k, v)), True).numpy()
    got = ops.attention_prefill(q, k, v)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert np.abs(got - want).max() <= tolerances.ATTENTION["float32"] * np.abs(v).max()
    dec = ops.OPS_BY_KIND["attention"](q[:, :, -1], k, v)
    assert np.abs(dec - want[:, :, -1]).max() <= tolerances.ATTENTION["float32"] * np.abs(v).max()


class _NoLaunch:
    def __getitem__(self, grid):
        raise AssertionError("a kernel was launched")


def _prefill_args(**change):
    gen = torch.Generator().manual_seed(0)
    q, k, v = _qkv(gen, 1, 4, 2, 8, 8, 16, torch.float16)
    args = {"q": q, "k": k, "v": v}
    args.update(change)
    return args


@pytest.mark.parametrize("change, message", [
    (lambda a: {"q": a["q"].float()}, r"^k has dtype float16; it must be float32"),
    (lambda a: {"q": a["q"].to(torch.bfloat16)}, r"^q has dtype bfloat16; it must be float16, float32"),
    (lambda a: {"q": a["q"].transpose(1, 2)}, r"^q is not contiguous"),
    (lambda a: {"v": a["v"][:, :, :4].contiguous()}, r"^v has shape \(1, 2, 4, 16\); it must be \(1, 2, 8, 16\)"),
    (lambda a: {"q": a["q"][:, :3].contiguous()}, r"^q has 3 heads and k/v 2: grouped-query attention needs"),
    (lambda a: {"q": a["q"][:, :, :, :8].contiguous()}, r"^k has shape \(1, 2, 8, 16\); with q \(1, 4, 8, 8\)"),
    (lambda a: {"k": a["k"][:, :, :4].contiguous(), "v": a["v"][:, :, :4].contiguous()},
     r"^causal attention with 8 queries but 4 keys"),
    (lambda a: {"sm_scale": -1.0}, r"^sm_scale = -1.0: it must be positive and finite"),
    (lambda a: {"q": a["q"].to("meta")}, r"^q is on meta"),
])
def test_prefill_refuses_bad_input_before_launch(monkeypatch, change, message):
    monkeypatch.setattr(prefill_mod, "_prefill_kernel", _NoLaunch())
    args = _prefill_args()
    args.update(change(args))
    with pytest.raises(KernelInputError, match=message):
        attention_prefill(**args)


@pytest.mark.parametrize("kwargs, message", [
    ({"cache_lens": 0}, r"^cache_lens\[0\] = 0: a sequence attends 1\.\.8 keys"),
    ({"cache_lens": [3, 9]}, r"^cache_lens\[1\] = 9: a sequence attends 1\.\.8 keys"),
    ({"cache_lens": [3]}, r"^cache_lens has 1 entries for a batch of 2"),
    ({"cache_lens": 4, "num_splits": 0}, r"^num_splits = 0: give 1\.\.1024"),
    ({"cache_lens": 4, "block_n": 24}, r"^block_n = 24: it must be a power of two >= 16"),
])
def test_decode_refuses_bad_input_before_launch(monkeypatch, kwargs, message):
    monkeypatch.setattr(decode_mod, "_decode_split_kernel", _NoLaunch())
    monkeypatch.setattr(decode_mod, "_decode_reduce_kernel", _NoLaunch())
    gen = torch.Generator().manual_seed(0)
    q, k, v = _qkv(gen, 2, 4, 2, 1, 8, 16, torch.float16)
    with pytest.raises(KernelInputError, match=message):
        attention_decode(q[:, :, 0].contiguous(), k, v, **kwargs)
    with pytest.raises(KernelInputError, match=r"^q has 4 dimensions"):
        attention_decode(q, k, v, 4)


@pytest.mark.gpu
@native
def test_native_long_contexts():
    gen = torch.Generator().manual_seed(0)
    q, k, v = _qkv(gen, 1, 32, 8, 2048, 2048, 128, torch.float16)
    _close(attention_prefill(q, k, v), SDPA(q, k, v, is_causal=True, enable_gqa=True).double(), v, torch.float16)
    qd, kd, vd = _qkv(gen, 4, 32, 8, 1, 8192, 128, torch.float16)
    lens = [8192, 4096, 1, 5000]
    out = attention_decode(qd[:, :, 0].contiguous(), kd, vd, lens)
    _close(out, reference_attention(qd, kd, vd, False, kv_lens=lens)[:, :, 0], vd, torch.float16)
    assert math.isfinite(float(out.float().abs().max()))
