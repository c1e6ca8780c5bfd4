"""``accel map`` speed on real models: engine time and wall time per model and phase; prints JSON.

For GPT-2 small to XL, OPT-1.3B and LLaMA-2-7B on aim-gddr6 (int8 weights, batch 1): decode at contexts 128, 1024 and
4096 where the model's positions allow it, and prefill of 512 tokens. Per case: the emulated time (latency per
token, or time to first token), the device cycles, the words in the program (``commands``) and the unit commands they
stand for (``commands_run``: REPEAT bodies and jumped layers counted every time they run), and the wall seconds of each
stage (workload, partition, placement, code generation, system engine) with emulated device cycles per second of engine
time and of wall time. A case that does not fit the device records its one-line error.

    ./run python benchmarks/map_models.py [--models gpt2 ...] [--device aim-gddr6] [--phases decode prefill]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import time

from accel.errors import AccelError
from accel.mapping.map import map_model
from accel.mapping.workload import architecture

MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "opt-1.3b", "llama2-7b")
CONTEXTS = (128, 1024, 4096)
PROMPT = 512


def case(model: str, device: str, phase: str, n: int) -> dict:
    kw = {"context": n} if phase == "decode" else {"prompt": n}
    out = {"model": model, "phase": phase, **kw}
    t0 = time.perf_counter()
    try:
        mr = map_model(model, device, phase, **kw)
    except AccelError as e:
        return {**out, "error": str(e)}
    wall = time.perf_counter() - t0
    t = mr.timings
    commands = sum(len(s.words) for s in mr.program.streams)
    out.update({
        "latency_s": mr.latency_s, "tokens_per_s": mr.tokens_per_s, "cycles": mr.result.cycles,
        "bank_bound_s": mr.bank_bound_s, "commands": commands,
        "commands_run": sum(s.commands for s in mr.result.streams.values()), "epochs_jumped": mr.result.jumped,
        "wall_s": round(wall, 3), "engine_s": round(t["engine"], 3),
        "stages_s": {k: round(v, 3) for k, v in t.items()},
        "cycles_per_engine_s": round(mr.result.cycles / t["engine"]),
        "cycles_per_wall_s": round(mr.result.cycles / wall),
    })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--device", default="aim-gddr6")
    ap.add_argument("--phases", nargs="*", default=["decode", "prefill"], choices=["decode", "prefill"],
                    help="the rows to run: decode (its contexts), prefill (its prompt), or both")
    args = ap.parse_args()
    rows = []
    for model in args.models:
        positions = architecture(model).positions
        for ctx in CONTEXTS if "decode" in args.phases else ():
            if ctx <= positions:
                rows.append(case(model, args.device, "decode", ctx))
                gc.collect()
        if "prefill" in args.phases:
            rows.append(case(model, args.device, "prefill", min(PROMPT, positions)))
            gc.collect()
    print(json.dumps({"benchmark": "map_models", "device": args.device, "date": time.strftime("%Y-%m-%d %H:%M"),
                      "load_average": os.getloadavg(), "cases": rows}, indent=2))


if __name__ == "__main__":
    main()
