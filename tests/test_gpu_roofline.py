"""The GPU side without kernels: peak table and device-name matching, the roofline's counts (hand-computed), the
benchmark's model shapes, `accel gpu bench|peaks` on a machine without a GPU, and that importing accel loads neither
torch nor Triton."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from accel.cli import main
from accel.gpu import GpuError, find_peak, op_cost, roofline_time
from accel.gpu.bench import TARGETS, bench_cases, estimate_op
from accel.gpu.models import MODELS, find_model, group_size_for, layer_ops
from accel.gpu.roofline import attention_pairs
from accel.numerics import causal_mask


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.parametrize("device_name, key", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H100 NVL", "h100-nvl"),
    ("NVIDIA H200", "h200-sxm"), ("NVIDIA H200 NVL", "h200-nvl"), ("NVIDIA A100-SXM4-40GB", "a100-40gb-sxm"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb-sxm"), ("NVIDIA A100-PCIE-40GB", "a100-40gb-pcie"),
    ("NVIDIA A100 80GB PCIe", "a100-80gb-pcie"), ("NVIDIA L40S", "l40s"), ("NVIDIA A10", "a10"), ("NVIDIA L4", "l4"),
    ("AMD Instinct MI300X", "mi300x"), ("h100-sxm", "h100-sxm"),
])
def test_device_names_match_the_peak_table(device_name, key):
    assert find_peak(device_name).key == key


def test_unknown_gpu_is_refused():
    with pytest.raises(GpuError, match=r"^GPU 'NVIDIA A10G' is not in the peak table; use one of h200-nvl, "):
        find_peak("NVIDIA A10G")


def test_peaks_are_the_datasheets():
    h100, h200 = find_peak("h100-sxm"), find_peak("h200-sxm")
    assert (h100.bandwidth_gbs, h100.fp16_tflops, h200.bandwidth_gbs) == (3350, 989.5, 4800)
    assert find_peak("a100-80gb-sxm").bandwidth_gbs == 2039 and find_peak("a100-80gb-pcie").bandwidth_gbs == 1935
    assert h100.targets and h200.targets and not find_peak("a100-40gb-sxm").targets


def test_roofline_of_the_target_gemv_by_hand():
    # 8192 x 8192 at 4 bits: 1024 words per row, 64 groups of 128 (one int32 each), a float row scale; fp16 x and y
    nbytes = 8192 * 1024 * 4 + 8192 * 64 * 4 + 8192 * 4 + 8192 * 2 + 8192 * 2
    cost = op_cost("gemv", {"M": 1, "N": 8192, "K": 8192, "weight_bits": 4})
    assert cost.bytes == nbytes and cost.flops == 2 * 8192 * 8192
    assert roofline_time("gemv", {"M": 1, "N": 8192, "K": 8192, "weight_bits": 4}, "fp16",
                         "NVIDIA H100 80GB HBM3") == pytest.approx(nbytes / 3350e9, rel=1e-12)
    three = op_cost("matmul", {"M": 1, "N": 8192, "K": 8192, "weight_bits": 3})
    assert three.bytes == 8192 * 768 * 4 + 8192 * 64 * 4 + 8192 * 4 + 8192 * 4


def test_roofline_is_compute_bound_for_big_gemms():
    t = roofline_time("gemm", {"M": 8192, "N": 8192, "K": 8192}, "fp16", "h100-sxm")
    assert t == pytest.approx(2 * 8192 ** 3 / 989.5e12)
    t8 = roofline_time("gemm", {"M": 8192, "N": 8192, "K": 8192, "weight_bits": 8}, "int8", "h100-sxm")
    assert t8 == pytest.approx(2 * 8192 ** 3 / 1979e12)


@pytest.mark.parametrize("q_len, kv_len", [(1, 1), (5, 5), (16, 16), (3, 10), (1, 4096)])
def test_attention_pairs_count_the_mask(q_len, kv_len):
    if q_len == kv_len:
        assert attention_pairs(q_len, kv_len, True) == int(causal_mask(q_len, kv_len).sum())
    rows = np.arange(q_len)[:, None] + kv_len - q_len
    assert attention_pairs(q_len, kv_len, True) == int((np.arange(kv_len)[None, :] <= rows).sum())
    assert attention_pairs(q_len, kv_len, False) == q_len * kv_len


def test_attention_cost_by_hand():
    s = {"batch": 2, "q_heads": 32, "kv_heads": 8, "q_len": 1, "kv_len": 4096, "head_dim": 128}
    c = op_cost("attention", s, "fp16")
    assert c.bytes == 2 * (2 * 2 * 32 * 128 + 2 * 2 * 8 * 4096 * 128)
    assert c.flops == 4 * 2 * 32 * 128 * 4096


@pytest.mark.parametrize("kind, shape, dtype, message", [
    ("conv", {"rows": 1}, "fp16", r"^operator kind 'conv' is not one of matmul, gemv"),
    ("matmul", {"M": 1, "N": 2}, "fp16", r"^matmul shape \{'M': 1, 'N': 2\}: missing K \(keys: M, N, K;"),
    ("rmsnorm", {"rows": 1, "cols": 2, "eps": 1}, "fp16", r"^rmsnorm shape .*: unknown eps"),
    ("softmax", {"rows": 0, "cols": 2}, "fp16", r"^softmax shape rows = 0: it must be a positive integer"),
    ("gelu", {"rows": 1, "cols": 2}, "int8", r"^dtype 'int8' for gelu: use one of fp16, bf16, fp32"),
    ("matmul", {"M": 1, "N": 2, "K": 16, "weight_bits": 5}, "fp16", r"^weight_bits = 5: use 16"),
    ("attention", {"batch": 1, "q_heads": 1, "kv_heads": 1, "q_len": 8, "kv_len": 4, "head_dim": 8}, "fp16",
     r"^causal attention with kv_len 4 < q_len 8"),
])
def test_op_cost_refuses_bad_shapes(kind, shape, dtype, message):
    with pytest.raises(GpuError, match=message):
        op_cost(kind, shape, dtype)


def test_model_shapes_from_the_configs():
    llama3, gpt2 = MODELS["llama3-8b"], MODELS["gpt2-xl"]
    assert dict((n, (r, c)) for n, r, c in llama3.linears())["k"] == (1024, 4096)
    assert dict((n, (r, c)) for n, r, c in llama3.linears())["down"] == (4096, 14336)
    assert gpt2.head_dim == 64 and group_size_for(1600) == 64 and group_size_for(4096) == 128
    ops = layer_ops(gpt2, "decode", 1024)
    kinds = [op.kind for op in ops]
    assert "gelu" in kinds and "rotary" not in kinds and "layernorm" in kinds
    attn = next(op for op in ops if op.kind == "attention")
    assert attn.shape["kv_len"] == 1024 and attn.shape["q_len"] == 1
    prefill = layer_ops(MODELS["llama2-7b"], "prefill", 4096)
    assert next(op for op in prefill if op.name == "gate").shape["M"] == 4096
    with pytest.raises(GpuError, match=r"^decode at 2048 tokens: gpt2-xl has 1024 positions"):
        layer_ops(gpt2, "decode", 2048)
    with pytest.raises(GpuError, match=r"^model 'gpt3' is not one of gpt2-xl, llama2-7b, llama3-8b"):
        find_model("gpt3")


def test_bench_cases_time_each_shape_once():
    cases = bench_cases(["llama3-8b"], ["decode"])
    assert sum(op.kind == "residual_add" for _, _, op in cases) == 1
    assert len({(op.kind, tuple(sorted(op.shape.items()))) for _, _, op in cases}) == len(cases)
    assert [t.name for t in TARGETS] == ["gemv_w4_8192", "decode_attention_4k", "prefill_attention_4k"]


def test_estimate_is_the_roofline():
    op = next(op for _, _, op in bench_cases(["llama3-8b"], ["decode"]) if op.name == "q")
    est = estimate_op(op.kind, op.shape, "fp16", find_peak("h200-sxm"))
    assert est["ours"]["estimated_ms"] == pytest.approx(roofline_time(op.kind, op.shape, "fp16", "h200-sxm") * 1e3)
    assert est["torch"]["bytes"] == 4096 * 4096 * 2 + 4096 * 2 * 2  # torch reads dense fp16 weights


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_estimate_json_is_marked_and_by_hand(capsys):
    code, out, _ = _run(capsys, "gpu", "bench", "--estimate", "h100-sxm", "--models", "gpt2-xl", "--phases", "decode",
                        "--json")
    res = json.loads(out)
    assert code == 0 and res["measured"] is False and res["targets"] == []
    assert "nothing here is a measurement" in res["note"]
    row = next(r for r in res["rows"] if r["op"] == "qkv")
    # 4800 x 1600 at 4 bits, groups of 64: 200 words per row, 25 groups; fp16 x (1600) and y (4800)
    nbytes = 4800 * 200 * 4 + 4800 * 25 * 4 + 4800 * 4 + 1600 * 2 + 4800 * 2
    assert row["ours"]["estimated_ms"] == pytest.approx(nbytes / 3350e9 * 1e3) and "median_ms" not in row["ours"]


def test_cli_estimate_table(capsys):
    code, out, _ = _run(capsys, "gpu", "bench", "--estimate", "a100-80gb-sxm", "--models", "llama3-8b")
    assert code == 0 and out.startswith("ROOFLINE ESTIMATES for a100-80gb-sxm (not measured)")
    assert any(line.startswith("llama3-8b  prefill  attention") for line in out.splitlines())


@pytest.mark.parametrize("argv, message", [
    (["gpu", "bench", "--estimate", "rtx9090"], "accel: error: GPU 'rtx9090' is not in the peak table"),
    (["gpu", "bench", "--estimate", "h100-sxm", "--models", "gpt5"], "accel: error: model 'gpt5' is not one of"),
])
def test_cli_bad_input_exit_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and err.startswith(message) and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(_has_cuda(), reason="on a GPU machine accel gpu bench measures")
def test_cli_bench_without_gpu_says_so(capsys):
    code, out, err = _run(capsys, "gpu", "bench", "--json")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("accel: error: accel gpu bench needs a CUDA GPU with native Triton, but no CUDA GPU is "
                          "visible to torch") and "--estimate GPU" in err


def test_cli_peaks(capsys):
    code, out, _ = _run(capsys, "gpu", "peaks", "--json")
    keys = [p["key"] for p in json.loads(out)]
    assert code == 0 and "h100-sxm" in keys and "mi300x" in keys
    code, out, _ = _run(capsys, "gpu", "peaks")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["gpu", "GB", "GB/s"]


def _python(code: str, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


def test_importing_accel_loads_neither_torch_nor_triton():
    res = _python("import sys, accel, accel.gpu, accel.gpu.bench, accel.cli; accel.cli.build_parser(); "
                  "accel.gpu.roofline_time('gemv', {'M': 1, 'N': 64, 'K': 64}, 'fp16', 'h100-sxm'); "
                  "print('torch' in sys.modules, 'triton' in sys.modules)")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False"]


@pytest.mark.triton
@pytest.mark.skipif(_has_cuda(), reason="with a GPU the kernels load natively, whatever was imported first")
def test_triton_imported_first_still_runs_interpreted():
    # torch's FlopCounterMode imports triton (compiled-only) before accel.gpu can ask for the interpreter
    res = _python("from torch.utils.flop_counter import FlopCounterMode\n"
                  "import sys, numpy as np, torch\n"
                  "assert 'triton' in sys.modules\n"
                  "from accel.gpu.quant_pack import pack_quantized\n"
                  "from accel.gpu.quant_gemv import gemv_q\n"
                  "from accel.gpu.softmax import softmax\n"
                  "from accel.numerics import matvec_int, quantize_weights\n"
                  "rng = np.random.default_rng(0)\n"
                  "qw = quantize_weights(rng.standard_normal((8, 64)), ('int4', 'fp4_er_pos'), group_size=32)\n"
                  "a = rng.integers(-128, 128, 64)\n"
                  "y = gemv_q(torch.from_numpy(a.astype(np.int8)), pack_quantized(qw)).numpy()\n"
                  "s = softmax(torch.randn(3, 100), single_pass_row=32)\n"
                  "print(np.array_equal(y, matvec_int(a, qw, 32, 8)), bool(torch.allclose(s.sum(-1), "
                  "torch.ones(3))))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True"]

@pytest.mark.triton
def test_every_benchmarked_operator_has_a_timer():
    from accel.gpu.bench import EXTRA_CASES, timer_for

    ops = [op for _, _, op in bench_cases(MODELS, ["decode", "prefill"])] + [t.op for t in TARGETS] + list(EXTRA_CASES)
    assert {op.kind for op in ops} == {"matmul", "attention", "layernorm", "rmsnorm", "gelu", "silu_mul",
                                       "residual_add", "rotary", "softmax"}
    for op in ops:
        assert callable(timer_for(op.kind, op.shape))


@pytest.mark.triton
@pytest.mark.skipif(_has_cuda(), reason="on a GPU machine timing works")
def test_timing_without_gpu_is_refused():
    from accel.gpu import NoGpuError
    from accel.gpu.bench import time_op, timer_for

    with pytest.raises(NoGpuError, match=r"^timing an operator needs a CUDA GPU with native Triton, but no CUDA"):
        time_op("softmax", {"rows": 1, "cols": 8})
    for op in [t.op for t in TARGETS]:
        with pytest.raises(NoGpuError, match=r"^timing a kernel needs a CUDA GPU"):
            timer_for(op.kind, op.shape)()
