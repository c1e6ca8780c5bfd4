"""`accel gpu compare`: the mapped step beside the GPU's time and energy for the same operators — every operator of
the workload once per layer that runs it, the device's shares adding up to its latency, the GPU side equal to the
roofline counted by hand (estimate) or measured on a GPU, NVML power where it can be read, and the command line."""
from __future__ import annotations

import json

import pytest
from test_map import scaled_device, tiny, workload

from accel.cli import main
from accel.gpu import NoGpuError, find_peak
from accel.gpu.backend import kernel_mode
from accel.gpu.power import nvml_status
from accel.mapping.compare import compare
from accel.mapping.map import map_workload
from accel.mapping.workload import AttentionMatmul, Gemm, KvWrite, Lookup, Vector

native = kernel_mode() == "native"


def _mapped(family: str = "gpt2", phase: str = "decode", n: int = 16, datatype: str = "int8", **arch):
    dev = scaled_device()
    return map_workload(workload(dev, tiny(family, **arch), phase, n, datatype=datatype), dev, gpu="a100-80gb-sxm")


def _roofline_by_hand(op, gpu: str) -> float:
    """The operator's GPU time from the peak table, counted here from the operator's own fields."""
    p = find_peak(gpu)
    bw, fp16 = p.bandwidth_gbs * 1e9, p.fp16_tflops * 1e12
    if isinstance(op, Gemm):
        bits = round(op.weights.code_bits)
        if bits in (3, 4, 8):   # int32 words of codes (3-bit: 3 words per 32 codes), 4 bytes per group of 128, fp32
            words = 3 * (-(-op.k // 32)) if bits == 3 else op.k * bits // 32   # row scales
            w = op.n * words * 4 + op.n * (op.k // 128) * 4 + op.n * 4
        else:
            w = op.n * op.k * 2
        byt = w + op.m * op.k * 2 + op.m * op.n * 2
        return max(2 * op.m * op.n * op.k / fp16, byt / bw)
    if isinstance(op, AttentionMatmul):   # the fused kernel: score and context, each half of it
        q, kv = op.queries, op.kv_len
        pairs = q * kv if q == 1 else q * (kv - q + 1) + q * (q - 1) // 2
        byt = 2 * op.batch * (2 * op.heads * q * op.head_dim + 2 * op.kv_heads * kv * op.head_dim)
        return max(4 * op.batch * op.heads * pairs * op.head_dim / fp16, byt / bw) / 2
    if isinstance(op, (KvWrite, Lookup)):
        return op.bytes / bw
    assert isinstance(op, Vector)
    return None   # vector kinds: checked through the roofline module's own tests


@pytest.mark.parametrize("family,phase,datatype", [("gpt2", "decode", "int8"), ("llama", "decode", "int4"),
                                                   ("gpt2", "prefill", "int8"), ("opt", "decode", "int8")])
def test_estimate_covers_every_operator_and_adds_up(family, phase, datatype):
    mr = _mapped(family, phase, 8 if phase == "prefill" else 16, datatype)
    c = compare(mr, "a100-80gb-sxm", measure=False)
    w = mr.workload
    ops = list(w.operators())
    assert sum(r.count for r in c.rows) == len(ops)
    assert {r.key for r in c.rows} == {g["key"] for g in mr.by_operator()}   # every mapped operator, no other
    assert c.device_s == pytest.approx(sum(r.device_s for r in c.rows), rel=1e-9)   # shares + fallback = latency
    assert not c.measured and "not a measurement" in c.note and "estimate" in c.energy_source
    tdp = find_peak("a100-80gb-sxm").tdp_w
    checked = 0
    for p in ops:
        want = _roofline_by_hand(p.op, "a100-80gb-sxm")
        if want is None:
            continue
        row = next(r for r in c.rows if r.name == p.op.name and (p.layer is None) == (r.key.split("/")[0] in
                                                                                       ("prologue", "epilogue")))
        assert row.gpu_s / row.count == pytest.approx(want, rel=1e-9)
        assert row.gpu_j == pytest.approx(row.gpu_s * tdp, rel=1e-12)
        assert row.source == ("copy" if isinstance(p.op, (KvWrite, Lookup)) else "roofline")
        checked += 1
    assert checked >= len(ops) // 2
    pt = c.per_token()
    tokens = w.batch * w.tokens
    assert pt["gpu_s"] * tokens == pytest.approx(c.gpu_s) and pt["device_j"] * tokens == pytest.approx(
        mr.energy.total_j)
    assert c.speedup == pytest.approx(c.gpu_s / c.device_s)
    js = c.to_json()
    assert js["measured"] is False and len(js["operators"]) == len(c.rows) and js["per_token"] == pt


def test_fallback_operators_count_their_gpu_time_on_the_device_side():
    """OPT's ReLU has no PIM/vector form on aim: the device side carries its fallback GPU time (the GPU side's
    roofline for the same operator on the same GPU) beside its own share of the program (moving its operands)."""
    mr = _mapped("opt")
    c = compare(mr, "a100-80gb-sxm", measure=False)
    groups = {g["key"]: g for g in mr.by_operator()}
    fb = [r for r in c.rows if r.unit == "gpu"]
    assert fb, "the OPT case must have a fallback operator"
    for r in fb:
        assert groups[r.key]["gpu_s"] == pytest.approx(r.gpu_s, rel=1e-9)
        assert r.device_s == pytest.approx(groups[r.key]["share_s"] + r.gpu_s, rel=1e-9)


@pytest.mark.skipif(native, reason="checks the machine without a GPU; this one has native Triton on a GPU")
def test_no_gpu_estimates_and_measure_is_refused(capsys):
    mr = _mapped()
    c = compare(mr, "h100-sxm")   # measure=None: estimate here
    assert not c.measured and c.note.startswith("no GPU here")
    with pytest.raises(NoGpuError, match="needs a CUDA GPU"):
        compare(mr, "h100-sxm", measure=True)
    assert main(["gpu", "compare", "gpt2", "--context", "16", "--measure"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA GPU" in err and "Traceback" not in err


def test_nvml_status_is_one_line():
    ok, why = nvml_status()
    assert isinstance(ok, bool) and why and "\n" not in why
    if not native:
        assert not ok


def test_cli_compare_text_and_json(tmp_path, capsys):
    assert main(["gpu", "compare", "gpt2", "--device", "aim-gddr6", "--context", "16", "--gpu", "h200-sxm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model      gpt2 (decode, context 16") and "\nper token  device " in out
    assert "\nenergy     device " in out and ("roofline estimate" in out or "measured" in out)
    assert main(["gpu", "compare", "gpt2", "--context", "16", "--gpu", "h200-sxm", "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["gpu_key"] == "h200-sxm" or js["measured"]
    assert js["per_token"]["device_s"] > 0 and js["per_token"]["gpu_s"] > 0 and js["operators"]
    assert main(["gpu", "compare", "gpt2", "--gpu", "v100"]) == 2
    assert "not in the peak table" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not native, reason="needs a CUDA GPU with native Triton (no GPU on this machine)")
def test_measured_on_the_gpu():
    mr = _mapped("llama", datatype="int4")
    c = compare(mr, measure=True)
    assert c.measured and c.gpu
    kernels = [r for r in c.rows if r.source == "measured"]
    assert kernels and all(r.gpu_s > 0 and r.gpu_j > 0 for r in kernels)
    est = compare(mr, c.gpu_key, measure=False)
    for m, e in zip(c.rows, est.rows):   # a measurement never beats the roofline by more than timing noise
        if m.source == "measured":
            assert m.gpu_s >= 0.9 * e.gpu_s
