"""Vector kernels (layer norm, RMS norm, GELU tanh/erf, SiLU, SiLU*up, residual add, rotary, softmax) against torch
in fp64 within the stated tolerances, for fp16, bf16 and fp32; bad input refused before any launch."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from accel.gpu.backend import KernelInputError, kernel_device, kernel_mode  # noqa: E402

kernel_mode()  # native or interpreter, chosen before Triton is imported
pytest.importorskip("triton")

import torch.nn.functional as F  # noqa: E402

from accel.gpu import activations, norms, ops, rotary as rotary_mod, softmax as softmax_mod  # noqa: E402
from accel.gpu import tolerances  # noqa: E402
from accel.gpu.activations import gelu, residual_add, silu, silu_mul  # noqa: E402
from accel.gpu.norms import layernorm, rmsnorm  # noqa: E402
from accel.gpu.rotary import reference_rotary, rope_tables, rotary  # noqa: E402
from accel.gpu.softmax import softmax  # noqa: E402

pytestmark = pytest.mark.triton
native = pytest.mark.skipif(kernel_mode() != "native", reason="needs a CUDA GPU (native Triton)")
DEV = kernel_device()
DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def _close(got, ref, dtype):
    assert got.dtype == dtype and got.shape == ref.shape
    tol = tolerances.VECTOR[str(dtype).replace("torch.", "")]
    err = ((got.double().cpu() - ref.cpu()).abs() / (1 + ref.abs().cpu())).max()
    assert float(err) <= tol, float(err)


def _rand(gen, shape, dtype, amp=3.0):
    return torch.randn(shape, generator=gen).mul(amp).to(dtype).to(DEV)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_norms(dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = [(3, 100), (2, 3, 257), (1, 1600), (5, 16)][seed]
    n = shape[-1]
    x, w, b = _rand(gen, shape, dtype), _rand(gen, (n,), dtype, 1.0), _rand(gen, (n,), dtype, 1.0)
    x = x + 5.0 * (seed == 3)  # a large mean: the variance must not cancel
    eps = [1e-5, 1e-6, 1e-5, 1e-2][seed]
    _close(layernorm(x, w, b, eps), F.layer_norm(x.double(), (n,), w.double(), b.double(), eps), dtype)
    _close(rmsnorm(x, w, eps), F.rms_norm(x.double(), (n,), w.double(), eps), dtype)
    w32 = w.float()  # fp32 weights with low-precision activations are allowed too
    _close(rmsnorm(x, w32, eps), F.rms_norm(x.double(), (n,), w32.double(), eps), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_elementwise(dtype, seed):
    gen = torch.Generator().manual_seed(10 + seed)
    shape = [(7,), (3, 333), (2, 2, 1500)][seed]
    x, u = _rand(gen, shape, dtype), _rand(gen, shape, dtype)
    x.view(-1)[:2] = torch.tensor([-60.0, 60.0], dtype=dtype)  # saturated tails
    xd, ud = x.double(), u.double()
    _close(gelu(x, "tanh"), F.gelu(xd, approximate="tanh"), dtype)
    _close(gelu(x, "erf"), F.gelu(xd), dtype)
    _close(silu(x), F.silu(xd), dtype)
    _close(silu_mul(x, u), F.silu(xd) * ud, dtype)
    _close(residual_add(x, u), xd + ud, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_softmax_one_and_two_pass(dtype, seed):
    gen = torch.Generator().manual_seed(20 + seed)
    shape = [(4, 50), (2, 3, 300), (1, 1000)][seed]
    x = _rand(gen, shape, dtype)
    x.view(-1, shape[-1])[:, 0] = float("-inf")  # masked entries
    ref = torch.softmax(x.double(), -1)
    _close(softmax(x), ref, dtype)
    _close(softmax(x, single_pass_row=64), ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_batch", [False, True])
def test_rotary_hf_convention(dtype, per_batch):
    gen = torch.Generator().manual_seed(30 + per_batch)
    b, h, s, d = 2, 3, 9, 48
    x = _rand(gen, (b, h, s, d), dtype, 1.0)
    pos = torch.randint(0, 8192, (b, s) if per_batch else (s,), generator=gen)
    cos, sin = rope_tables(pos.to(DEV), d, 500000.0)
    _close(rotary(x, cos, sin), reference_rotary(x, cos, sin), dtype)
    # Hugging Face's own formula: x * cos + rotate_half(x) * sin
    xd = x.double()
    half = torch.cat((-xd[..., d // 2:], xd[..., : d // 2]), dim=-1)
    c, sn = (cos.double(), sin.double()) if not per_batch else (cos.double()[:, None], sin.double()[:, None])
    _close(rotary(x, cos.to(dtype), sin.to(dtype)) if dtype == torch.float32 else rotary(x, cos, sin),
           xd * c + half * sn, dtype)


def test_rope_tables_match_llama_definition():
    pos = torch.arange(5)
    cos, sin = rope_tables(pos, 8, 10000.0)
    inv = [10000.0 ** (-2 * i / 8) for i in range(4)]
    want = torch.tensor([[p * f for f in inv] * 2 for p in range(5)], dtype=torch.float64)
    assert torch.allclose(cos.double(), want.cos(), atol=1e-6) and torch.allclose(sin.double(), want.sin(), atol=1e-6)


def test_ops_take_numpy():
    rng = np.random.default_rng(0)
    x, u, w, b = rng.standard_normal((3, 40)), rng.standard_normal((3, 40)), rng.standard_normal(40), \
        rng.standard_normal(40)
    xt = torch.from_numpy(x)
    checks = {
        "layernorm": (ops.layernorm(x, w, b), F.layer_norm(xt, (40,), torch.from_numpy(w), torch.from_numpy(b))),
        "rmsnorm": (ops.rmsnorm(x, w), F.rms_norm(xt, (40,), torch.from_numpy(w), 1e-5)),
        "gelu": (ops.OPS_BY_KIND["gelu"](x), F.gelu(xt, approximate="tanh")),
        "silu_mul": (ops.silu_mul(x, u), F.silu(xt) * torch.from_numpy(u)),
        "residual_add": (ops.residual_add(x, u), xt + torch.from_numpy(u)),
        "softmax": (ops.softmax(x), torch.softmax(xt, -1)),
    }
    for name, (got, ref) in checks.items():
        assert isinstance(got, np.ndarray) and got.dtype == np.float32, name
        _close(torch.from_numpy(got), ref, torch.float32)
    cos, sin = ops.rope_tables(np.arange(4), 8, 10000.0)
    xr = rng.standard_normal((1, 2, 4, 8))
    _close(torch.from_numpy(ops.rotary(xr, cos, sin)),
           reference_rotary(torch.from_numpy(xr), torch.from_numpy(cos), torch.from_numpy(sin)), torch.float32)


class _NoLaunch:
    def __getitem__(self, grid):
        raise AssertionError("a kernel was launched")


@pytest.fixture
def no_launch(monkeypatch):
    for mod, name in ((norms, "_norm_kernel"), (activations, "_elementwise_kernel"), (softmax_mod, "_softmax_kernel"),
                      (rotary_mod, "_rotary_kernel")):
        monkeypatch.setattr(mod, name, _NoLaunch())


@pytest.mark.parametrize("call, message", [
    (lambda x: layernorm(x.to(torch.float64), x[0], x[0]), r"^x has dtype float64; it must be float16, bfloat16"),
    (lambda x: layernorm(x, x[0, :8].contiguous(), x[0]), r"^weight has shape \(8,\); it must be \(16,\)"),
    (lambda x: layernorm(x, x[0], None), r"^layernorm needs a bias"),
    (lambda x: rmsnorm(x, x[0], eps=0.0), r"^eps = 0.0: it must be positive and finite"),
    (lambda x: rmsnorm(x.t(), x[:, 0].contiguous()), r"^x is not contiguous"),
    (lambda x: rmsnorm(torch.zeros((1, 20000), device=DEV), torch.zeros(20000, device=DEV)),
     r"^rows of 20000 elements exceed the norm kernels' 16384"),
    (lambda x: gelu(x, "sigmoid"), r"^GELU form 'sigmoid': use 'tanh'"),
    (lambda x: silu_mul(x, x[:2]), r"^up has shape \(2, 16\); it must be \(4, 16\)"),
    (lambda x: residual_add(x, x.half()), r"^residual has dtype float16; it must be float32"),
    (lambda x: softmax(x, single_pass_row=100), r"^single_pass_row = 100: it must be a power of two"),
    (lambda x: softmax(x.to("meta")), r"^x is on meta"),
    (lambda x: softmax(x[0, 0]), r"^x has 0 dimensions \(shape \(\)\); it must have 1 to 8$"),
    (lambda x: rotary(x[None, None], x[:3], x[:3]), r"^cos has shape \(3, 16\); it must be \(4, 16\)"),
    (lambda x: rotary(x[None, None], x[None], x), r"^sin has shape \(4, 16\); it must be \(1, 4, 16\)"),
    (lambda x: rotary(x[None, None, :, :15].contiguous(), x, x), r"^head_dim 15 is odd"),
    (lambda x: rotary(x, x, x), r"^x has 2 dimensions"),
])
def test_refuse_bad_input_before_launch(no_launch, call, message):
    x = torch.zeros((4, 16), dtype=torch.float32, device=DEV)
    with pytest.raises(KernelInputError, match=message):
        call(x)


@pytest.mark.gpu
@native
def test_native_model_rows():
    gen = torch.Generator().manual_seed(0)
    for rows, cols in ((1, 4096), (2048, 4096), (1, 128256)):
        x = _rand(gen, (rows, cols), torch.float16)
        w, b = _rand(gen, (cols,), torch.float16, 1.0), _rand(gen, (cols,), torch.float16, 1.0)
        _close(softmax(x), torch.softmax(x.double(), -1), torch.float16)
        if cols <= norms.MAX_ROW:
            _close(rmsnorm(x, w), F.rms_norm(x.double(), (cols,), w.double(), 1e-5), torch.float16)
            _close(layernorm(x, w, b), F.layer_norm(x.double(), (cols,), w.double(), b.double()), torch.float16)
        _close(silu_mul(x, x), F.silu(x.double()) * x.double(), torch.float16)
