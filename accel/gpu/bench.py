"""``accel gpu bench``: every kernel at the decode and prefill shapes of real models, beside torch's own kernels.

Each operator of one layer of each model (:func:`accel.gpu.models.layer_ops`: decode of one token at the model's
context, capped at 4096, and prefill of a prompt of that length; batch 1; weights packed at 4 bits) is timed with
:func:`triton.testing.do_bench` (median of the timed runs, L2 flushed before each) as our Triton kernel and as torch's
implementation (cuBLAS fp16 ``matmul`` with dense fp16 weights, ``scaled_dot_product_attention``, ``layer_norm``,
``rms_norm``, ``gelu``, ...). Achieved bandwidth and FLOP/s are the counted work of :mod:`accel.gpu.roofline`
divided by the median time, and are shown as fractions of the GPU's peaks (:mod:`accel.gpu.peaks`, the device name
read with ``torch.cuda.get_device_name``).

The issue's targets (:data:`TARGETS`) are timed the same way and judged on H100/H200-class GPUs. Without a GPU,
:func:`run_bench` refuses (:class:`accel.gpu.backend.NoGpuError`) unless asked for roofline *estimates* for a GPU of
the table, which are marked as such and never reported as measurements.
"""
from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .backend import GpuError, require_gpu
from .models import MODELS, Op, find_model, layer_ops
from .peaks import GpuPeak, device_peak, find_peak
from .roofline import achieved, op_cost

__all__ = ["Target", "TARGETS", "EXTRA_CASES", "bench_cases", "time_op", "time_dense_matmul", "estimate_op",
           "run_bench", "format_result", "context_of", "timer_for"]


@dataclass(frozen=True)
class Target:
    """A performance target: an operator shape, a metric of our kernel and the bound it must meet.

    ``metric`` is ``bw_fraction`` (achieved bytes/s over peak bandwidth, must be >= ``bound``) or ``time_ratio``
    (our median time over torch's, must be <= ``bound``).
    """

    name: str
    description: str
    op: Op
    metric: str
    bound: float


_LLAMA3 = MODELS["llama3-8b"]
TARGETS: tuple[Target, ...] = (
    Target("gemv_w4_8192", "4-bit GEMV 8192 x 8192 (batch 1, fp16 activations, groups of 128): at least 70% of "
                           "peak memory bandwidth",
           Op("gemv_w4", "matmul", {"M": 1, "N": 8192, "K": 8192, "weight_bits": 4, "group_size": 128}),
           "bw_fraction", 0.70),
    Target("decode_attention_4k", "decode attention at a 4096-key context, LLaMA-3-8B heads (32 query, 8 key/value, "
                                  "head_dim 128), batch 16 (256 MiB of KV cache, so that launch latency is a small "
                                  "part): at least 70% of peak memory bandwidth",
           Op("decode_attention", "attention", {"batch": 16, "q_heads": _LLAMA3.heads, "kv_heads": _LLAMA3.kv_heads,
                                                "q_len": 1, "kv_len": 4096, "head_dim": _LLAMA3.head_dim,
                                                "causal": 0}),
           "bw_fraction", 0.70),
    Target("prefill_attention_4k", "causal prefill attention of 4096 tokens, LLaMA-3-8B heads, batch 1: at most "
                                   "1.25x the time of torch's scaled_dot_product_attention",
           Op("prefill_attention", "attention", {"batch": 1, "q_heads": _LLAMA3.heads, "kv_heads": _LLAMA3.kv_heads,
                                                 "q_len": 4096, "kv_len": 4096, "head_dim": _LLAMA3.head_dim,
                                                 "causal": 1}),
           "time_ratio", 1.25),
)

#: Rows beside the targets: the 8192 x 8192 GEMV at the other code widths.
EXTRA_CASES: tuple[Op, ...] = tuple(
    Op(f"gemv_w{bits}", "matmul", {"M": 1, "N": 8192, "K": 8192, "weight_bits": bits, "group_size": 128})
    for bits in (3, 8))


def context_of(model_name: str) -> int:
    """Tokens the benchmark uses for a model: its context, capped at 4096."""
    return min(find_model(model_name).max_positions, 4096)


def bench_cases(models: Iterable[str], phases: Iterable[str]) -> list[tuple[str, str, Op]]:
    """``(model, phase, op)`` for every distinct operator shape of one layer (duplicates, such as the two residual
    adds, are timed once)."""
    cases, seen = [], set()
    for name in models:
        model = find_model(name)
        for phase in phases:
            for op in layer_ops(model, phase, context_of(name)):
                key = (name, phase, op.kind, tuple(sorted(op.shape.items())))
                if key not in seen:
                    seen.add(key)
                    cases.append((name, phase, op))
    return cases


def timer_for(kind: str, shape: Mapping[str, int]) -> Callable[[], dict]:
    """The kernel file's benchmark function for one operator (imported on use: it needs a GPU)."""
    s = dict(shape)
    if kind in ("matmul", "gemv", "gemm", "linear"):
        bits = s.get("weight_bits", 16)
        if bits == 16:
            raise GpuError("the quantised kernels need weight_bits 3, 4 or 8 (16 is torch's dense fp16 matmul only)")
        g = s.get("group_size", 128)
        if s["M"] <= 2:
            from .quant_gemv import bench_gemv_q
            return lambda: bench_gemv_q(s["N"], s["K"], bits, m=s["M"], group_size=g)
        from .quant_gemm import bench_gemm_q
        return lambda: bench_gemm_q(s["M"], s["N"], s["K"], bits, group_size=g)
    if kind == "attention":
        if s["q_len"] == 1:
            from .attention_decode import bench_attention_decode
            return lambda: bench_attention_decode(s["batch"], s["q_heads"], s["kv_heads"], s["kv_len"],
                                                  s["head_dim"])
        if s["q_len"] != s["kv_len"]:
            raise GpuError("the prefill benchmark times q_len == kv_len (a whole prompt)")
        from .attention_prefill import bench_attention_prefill
        return lambda: bench_attention_prefill(s["batch"], s["q_heads"], s["kv_heads"], s["q_len"], s["head_dim"])
    if kind in ("layernorm", "rmsnorm"):
        from .norms import bench_norm
        return lambda: bench_norm(kind, s["rows"], s["cols"])
    if kind in ("gelu", "silu", "silu_mul", "residual_add"):
        from .activations import bench_elementwise
        return lambda: bench_elementwise(kind, s["rows"], s["cols"])
    if kind == "softmax":
        from .softmax import bench_softmax
        return lambda: bench_softmax(s["rows"], s["cols"])
    if kind == "rotary":
        from .rotary import bench_rotary
        return lambda: bench_rotary(s["batch"], s["heads"], s["seq"], s["head_dim"])
    raise GpuError(f"operator kind {kind!r} has no benchmark")


def time_op(kind: str, shape: Mapping[str, int], dtype: str = "fp16") -> dict:
    """Measure one operator on this GPU: ``{"ours": {...}, "torch": {...}}`` with ``median_ms``, ``p20_ms``,
    ``p80_ms``, ``bytes``, ``flops``, ``gbs``, ``tflops`` each (fp16 activations; ``dtype`` other than ``fp16`` is
    refused). Needs a GPU."""
    require_gpu("timing an operator")
    if dtype != "fp16":
        raise GpuError(f"dtype {dtype!r}: the benchmark times fp16 activations")
    op_cost(kind, shape, dtype)  # rejects bad shapes before anything is allocated
    return timer_for(kind, shape)()


def time_dense_matmul(m: int, n: int, k: int, seed: int = 0) -> dict:
    """Measure torch's fp16 ``matmul`` (cuBLAS) at ``M x K @ K x N`` with dense fp16 weights — the GPU's time for
    weights no packed kernel holds (16-bit): :func:`accel.gpu.roofline.achieved`'s fields. Needs a GPU."""
    import torch

    from .backend import bench_device, time_ms

    dev = bench_device()
    gen = torch.Generator(device=dev).manual_seed(seed)
    x = torch.randn((m, k), generator=gen, device=dev, dtype=torch.float16)
    w = torch.randn((n, k), generator=gen, device=dev, dtype=torch.float16)
    return achieved(time_ms(lambda: torch.matmul(x, w.T)), op_cost("matmul", {"M": m, "N": n, "K": k}))


def _torch_shape(kind: str, shape: Mapping[str, int]) -> dict:
    """Torch's side of a matmul reads dense fp16 weights."""
    if kind in ("matmul", "gemv", "gemm", "linear"):
        return {k: v for k, v in shape.items() if k not in ("weight_bits", "group_size")}
    return dict(shape)


def estimate_op(kind: str, shape: Mapping[str, int], dtype: str, peak: GpuPeak) -> dict:
    """Roofline estimate of both sides (ours: packed weights; torch: dense fp16 weights) on ``peak``'s GPU: the same
    fields as :func:`time_op` with ``estimated_ms`` in place of the measured times."""
    out = {}
    for side, s in (("ours", shape), ("torch", _torch_shape(kind, shape))):
        c = op_cost(kind, s, dtype)
        sec = max(c.flops / peak.peak_ops(c.compute), c.bytes / peak.bandwidth)
        out[side] = {"estimated_ms": sec * 1e3, "bytes": c.bytes, "flops": c.flops, "gbs": c.bytes / sec / 1e9,
                     "tflops": c.flops / sec / 1e12}
    return out


def _fractions(side: dict, kind: str, shape: Mapping[str, int], peak: GpuPeak | None) -> None:
    if peak is None:
        return
    c = op_cost(kind, shape, "fp16")
    side["bw_fraction"] = side["gbs"] * 1e9 / peak.bandwidth
    side["flop_fraction"] = side["tflops"] * 1e12 / peak.peak_ops(c.compute)


def _row(model: str, phase: str, op: Op, res: dict, peak: GpuPeak | None) -> dict:
    _fractions(res["ours"], op.kind, op.shape, peak)
    _fractions(res["torch"], op.kind, _torch_shape(op.kind, op.shape), peak)
    t = "median_ms" if "median_ms" in res["ours"] else "estimated_ms"
    return {"model": model, "phase": phase, "op": op.name, "kind": op.kind, "shape": op.shape, "dtype": op.dtype,
            "ours": res["ours"], "torch": res["torch"], "speedup": res["torch"][t] / res["ours"][t]}


def _judge(target: Target, res: dict, peak: GpuPeak | None) -> dict:
    if target.metric == "bw_fraction":
        value = res["ours"]["gbs"] * 1e9 / peak.bandwidth if peak else None
        ok = None if value is None else value >= target.bound
    else:
        value = res["ours"]["median_ms"] / res["torch"]["median_ms"]
        ok = value <= target.bound
    applies = bool(peak and peak.targets)
    return {"name": target.name, "description": target.description, "metric": target.metric,
            "bound": target.bound, "value": value, "applies": applies, "passed": ok if applies else None,
            "ours_ms": res["ours"]["median_ms"], "torch_ms": res["torch"]["median_ms"]}


def run_bench(models: Iterable[str] | None = None, phases: Iterable[str] = ("decode", "prefill"),
              estimate: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark (or, with ``estimate`` naming a GPU of the peak table, the roofline estimates).

    Returns
    -------
    A dict: ``measured`` (bool), ``date``, ``gpu`` (device name, matched peak entry), ``versions``, ``rows`` (one per
    operator: model, phase, op, kind, shape, ``ours``/``torch`` timings or estimates with achieved rates and
    fractions of peak, ``speedup`` = torch time / ours) and ``targets`` (measured only).

    Raises
    ------
    NoGpuError
        No GPU and no ``estimate``.
    GpuError
        Unknown model, phase or GPU.
    """
    models = list(MODELS) if models is None else list(models)
    phases = list(phases)
    cases = bench_cases(models, phases)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    result: dict = {"measured": estimate is None, "date": datetime.date.today().isoformat()}
    if estimate is not None:
        peak = find_peak(estimate)
        result["gpu"] = {"device_name": None, "peak": peak.key, "peaks": _peak_dict(peak)}
        result["note"] = (f"roofline estimates for {peak.name} from its datasheet peaks: no GPU was used and "
                          f"nothing here is a measurement")
        result["rows"] = [_row(m, ph, op, estimate_op(op.kind, op.shape, op.dtype, peak), peak)
                          for m, ph, op in cases]
        result["targets"] = []
        return result
    require_gpu("accel gpu bench", ", or pass --estimate GPU (a key of accel gpu peaks, e.g. h100-sxm) for "
                                   "roofline estimates")
    import torch
    import triton

    name, peak = device_peak()
    result["gpu"] = {"device_name": name, "peak": peak.key if peak else None,
                     "peaks": _peak_dict(peak) if peak else None}
    result["versions"] = {"torch": torch.__version__, "triton": triton.__version__,
                          "cuda": torch.version.cuda}
    rows = []
    todo = [("target", "-", t.op) for t in TARGETS] + [("extra", "-", op) for op in EXTRA_CASES] + cases
    for i, (model, phase, op) in enumerate(todo, 1):
        log(f"accel gpu bench: {i}/{len(todo)} {model} {phase} {op.name} {op.shape}")
        rows.append((model, phase, op, time_op(op.kind, op.shape)))
        torch.cuda.empty_cache()
    result["targets"] = [_judge(t, res, peak) for t, (_, _, _, res) in zip(TARGETS, rows)]
    result["rows"] = [_row(m, ph, op, res, peak) for m, ph, op, res in rows[len(TARGETS):]]
    return result


def _peak_dict(p: GpuPeak) -> dict:
    return {"name": p.name, "bandwidth_gbs": p.bandwidth_gbs, "fp16_tflops": p.fp16_tflops,
            "int8_tops": p.int8_tops, "fp32_tflops": p.fp32_tflops, "source": p.source}


def _shape_text(shape: Mapping[str, int]) -> str:
    abbrev = {"weight_bits": "w", "group_size": "g", "q_heads": "hq", "kv_heads": "hkv", "head_dim": "d",
              "batch": "b", "kv_len": "kv", "q_len": "q"}
    return " ".join(f"{abbrev.get(k, k)}={v}" for k, v in shape.items())


def format_result(result: dict) -> str:
    """The benchmark as a text table (times in microseconds, fractions of peak in percent)."""
    t = "median_ms" if result["measured"] else "estimated_ms"
    gpu = result["gpu"]
    head = (f"GPU: {gpu['device_name']} (peak table: {gpu['peak'] or 'not in the table'})"
            if result["measured"] else f"ROOFLINE ESTIMATES for {gpu['peak']} (not measured): {result['note']}")
    lines = [head, f"date: {result['date']}"]
    cols = ["model", "phase", "op", "shape", "ours us", "torch us", "speedup", "ours GB/s", "%bw", "ours TFLOP/s",
            "%flop", "torch %bw"]
    table = [cols]
    for r in result["rows"]:
        o, th = r["ours"], r["torch"]
        pct = lambda v: "-" if v is None else f"{100 * v:.0f}"  # noqa: E731
        table.append([r["model"], r["phase"], r["op"], _shape_text(r["shape"]), f"{o[t] * 1e3:.2f}",
                      f"{th[t] * 1e3:.2f}", f"{r['speedup']:.2f}", f"{o['gbs']:.0f}", pct(o.get("bw_fraction")),
                      f"{o['tflops']:.2f}", pct(o.get("flop_fraction")), pct(th.get("bw_fraction"))])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    for tg in result["targets"]:
        verdict = "n/a (not an H100/H200)" if not tg["applies"] else ("PASS" if tg["passed"] else "FAIL")
        val = "-" if tg["value"] is None else f"{tg['value']:.3f}"
        lines.append(f"target {tg['name']}: {verdict}  {tg['metric']} = {val} (bound {tg['bound']}; ours "
                     f"{tg['ours_ms'] * 1e3:.1f} us, torch {tg['torch_ms'] * 1e3:.1f} us) - {tg['description']}")
    return "\n".join(lines)
