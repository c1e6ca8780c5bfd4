"""System engine speed on a synthetic GPT-2-XL decode token (48 layers, context 1024) on aim-gddr6; prints JSON.

The program has the command volume of a mapped decode token: per layer six GEMVs (QKV 4800x1600, attention scores
25 heads x 1024 keys x 64, context 1600x1024, output 1600x1600, FC1 6400x1600, FC2 1600x6400) as PIM channel
programs in the AiM layout (:func:`accel.mapping.gemv.gemv_plan`, output rows split over the 32 channels), the
vector unit's layer norms, softmax, GELU and residual adds, and the link's input broadcasts, MAC-register readouts
and KV-cache writes, ordered by SIGNAL/WAIT. It is synthetic (the mapper's codegen emits the real ones), but its
streams, dependencies and command counts are those of the real thing.

Figures: engine time (validation included, program construction not), emulated device cycles, cycles per wall second,
commands; for the engine as shipped (channel dedup, periodic blocks jumped) and without dedup (every channel stream
run: the cost of a mapping whose channels all differ).

    ./run python benchmarks/system_engine.py [--layers 48] [--context 1024]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from accel.config import DeviceConfig, load_preset
from accel.mapping.gemv import gemv_plan
from accel.emulator.system import SystemEngine
from accel.isa import TABLES, Family, PimOp
from accel.program import Program, ProgramBuilder

_ROW_OFF, _ROW_W = TABLES[Family.PIM].offsets()["row"]
_OP_OFF, _OP_W = TABLES[Family.PIM].offsets()["op"]


def _gemv_streams(dev: DeviceConfig, m: int, k: int, row0: int) -> list[list[int]]:
    """Per channel: the words of ``y = W x`` (M x K, output rows split over the channels), DRAM rows from ``row0``."""
    p = dev.pim
    gs = dev.bitserial.group_size
    kk = -(-k // gs) * gs  # bit-serial lanes: whole groups (the score GEMV's K = 64 is padded)
    mm = -(-m // p.channels)
    plan = gemv_plan(dev, np.zeros((mm, kk), np.int8), np.zeros(kk, np.int8), "rows",
                     np.zeros((mm, kk // gs), np.int64), np.ones((mm, kk // gs), np.int64), channels=1, data=False)
    words = []
    for w, _ in plan.program:
        if (w >> _OP_OFF) & ((1 << _OP_W) - 1) == PimOp.ACT:
            w += row0 << _ROW_OFF
        words.append(w)
    ch_off, _ = TABLES[Family.PIM].offsets()["channel"]
    return [[w | (c << ch_off) for w in words] for c in range(p.channels)]


def decode_token(dev: DeviceConfig, layers: int, context: int) -> Program:
    """The synthetic GPT-2-XL decode token (module docstring)."""
    h, heads, d, ffn = 1600, 25, 64, 6400
    p = dev.pim
    nch = p.channels
    b = ProgramBuilder(dev.name)
    pims = [b.stream(f"pim{c}") for c in range(nch)]
    vec, link = b.stream("vector"), b.stream("link")
    gemvs = [("qkv", 3 * h, h), ("score", heads * context, d), ("context", h, context), ("o", h, h),
             ("fc1", ffn, h), ("fc2", h, ffn)]
    words = {}
    row = 0
    for name, m, k in gemvs:
        words[name] = _gemv_streams(dev, m, k, row)
        row += 40
    line = dev.vector.line_bytes // 2  # elements per buffer line

    def lines(n: int) -> int:
        return -(-n // line)

    vec.cmd("COPY", length=h, src=0, dst=0)
    for layer in range(layers):
        for g, (name, m, k) in enumerate(gemvs):
            ident = layer * 10 + g
            # the vector unit produces this GEMV's input
            vec.mark(ident)
            if name == "qkv":
                vec.cmd("LAYERNORM", length=h, src=0, src2=lines(h), dst=3 * lines(h))
            elif name == "score":
                vec.cmd("QUANT", length=h, src=3 * lines(h), dst=4 * lines(h))
            elif name == "context":
                vec.cmd("SOFTMAX", length=context, count=heads, src=8 * lines(h), dst=8 * lines(h))
            elif name == "o":
                vec.cmd("QUANT", length=h, src=3 * lines(h), dst=4 * lines(h))
            elif name == "fc1":
                vec.cmd("ADD", length=h, src=0, src2=3 * lines(h), dst=0)
                vec.cmd("LAYERNORM", length=h, src=0, src2=lines(h), dst=3 * lines(h))
            else:
                vec.cmd("GELU", length=ffn, src=8 * lines(h), dst=8 * lines(h))
            vec.signal(1).wait("link", 2)
            # broadcast the input into every channel's global buffer, then run the GEMV in every channel
            link.mark(ident).wait("vector", 1).xfer("vector", "all", k)
            link.signal(1)
            for c, s in enumerate(pims):
                s.mark(ident).wait("link", 1).extend(words[name][c]).signal(1)
            # read every channel's MAC registers out to the vector unit
            for c in range(nch):
                link.wait(f"pim{c}", 1).xfer(f"pim{c}", "vector", 4 * -(-m // nch))
            if name == "qkv":  # the new token's K and V entries into the KV cache
                for c in range(nch):
                    link.xfer("vector", f"pim{c}", -(-2 * h // nch))
                link.signal(3)
                for c, s in enumerate(pims):
                    s.wait("link", 3).cmd("ACT", row=1000 + layer).cmd("WR", col=0, count=2).cmd("PRE")
            link.signal(2)
        vec.cmd("ADD", length=h, src=0, src2=8 * lines(h), dst=0)
    return b.build()


def measure(dev: DeviceConfig, prog: Program, **kw) -> dict:
    t0 = time.perf_counter()
    res = SystemEngine(dev, **kw).run(prog)
    wall = time.perf_counter() - t0
    commands = sum(len(s.words) for s in prog.streams)
    return {"engine_s": round(wall, 3), "cycles": res.cycles, "time_us": round(res.time_ns / 1e3, 3),
            "cycles_per_s": round(res.cycles / wall), "commands": commands,
            "commands_per_s": round(commands / wall),
            "busy_fraction": {k: round(res.utilisation(k), 4) for k in ("pim0", "vector", "link")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--device", default="aim-gddr6")
    args = ap.parse_args()
    dev = load_preset(args.device)
    t0 = time.perf_counter()
    prog = decode_token(dev, args.layers, args.context)
    build = time.perf_counter() - t0
    out = {
        "benchmark": "system_engine", "device": dev.name, "layers": args.layers, "context": args.context,
        "streams": len(prog.streams), "build_s": round(build, 3),
        "engine": measure(dev, prog),
        "no_dedup": measure(dev, prog, dedup=False),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
