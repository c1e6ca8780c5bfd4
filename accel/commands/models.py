"""``accel models [NAME]``: the known models with their key figures, or one model's operators for a phase."""
from __future__ import annotations

import argparse

from ..fmt import num, size, table
from .options import add_device, add_json, add_workload, device_of, positive


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list known models, or one model's operator shapes for a phase")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="a known model, a Hugging Face model directory (config.json) or a YAML operator list")
    add_workload(p, "default: the model's positions")
    p.add_argument("--datatype", default="int8",
                   help="weight datatype: int8, int4, int3, fp4_*/fp3_* variants, mixed (BitMoD FP4 variants), "
                        "mixed3, or mixed:DT=FRACTION,...")
    add_device(p, help="its bit-serial unit sets group size, scale bits and activation width")
    p.add_argument("--group-size", type=positive, help="weights per quantisation group (default: the device's)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import print_json
    from ..mapping.workload import KNOWN_MODELS, architecture

    if args.name is None:
        rows = [architecture(n).summary() for n in KNOWN_MODELS]
        if args.json:
            print_json(rows)
            return 0
        print(table([["model", "params", "layers", "hidden", "heads/kv", "ffn", "experts", "positions", "vocab"]]
                    + [[r["name"], f"{num(r['parameters'] / 1e9)}B", r["layers"], r["hidden"],
                        f"{r['heads']}/{r['kv_heads']}", r["ffn"],
                        f"{r['experts']} top-{r['top_k']}" if r["experts"] else "-", r["positions"], r["vocab"]]
                       for r in rows]))
        return 0
    return _one(args)


def _one(args: argparse.Namespace) -> int:
    from ..cli import print_json
    from ..mapping.workload import load_workload

    device = device_of(args)
    length = args.prompt if args.phase == "prefill" else args.context
    if length is None and not args.name.endswith((".yaml", ".yml")):
        from ..mapping.workload import resolve_model

        length = resolve_model(args.name)[0].positions
    arch, w = load_workload(args.name, args.phase, device, datatype=args.datatype, group_size=args.group_size,
                            batch=args.batch, prompt=length, context=length, experts=args.experts)
    totals = w.totals()
    if args.json:
        print_json({"model": arch.summary() if arch else None, "totals": totals, "workload": w.to_dict()})
        return 0
    if arch is not None:
        s = arch.summary()
        print(f"{s['name']} ({s['family']}): {s['parameters']:,} parameters, {s['layers']} layers, hidden "
              f"{s['hidden']}, heads {s['heads']}/{s['kv_heads']} x {s['head_dim']}, ffn {s['ffn']}, positions "
              f"{s['positions']}, vocab {s['vocab']}" + (f", {s['experts']} experts top-{s['top_k']}"
                                                         if s["experts"] else ""))
    what = f"prompt {w.tokens}" if w.phase == "prefill" else f"context {w.context}"
    fmt = w.precision.weights
    print(f"{w.phase}, batch {w.batch}, {what}; weights {fmt.name} ({num(fmt.bits_per_weight)} bits/weight with "
          f"group metadata), activations {w.precision.act_bits} bits, KV {w.precision.kv_bits} bits"
          + (f"; MoE {w.moe}" if w.moe else ""))
    rows = [["section", "operator", "kind", "shape", "MFLOP", "weights KiB", "act KiB", "KV KiB", "FLOP/B"]]

    def add(section: str, ops: tuple) -> None:
        for op in ops:
            rows.append([section, op.name, op.kind_name, op.shape_text(), num(op.flops / 1e6),
                         num((op.weight_bytes + op.param_bytes) / 1024),
                         num((op.act_in_bytes + op.act_out_bytes) / 1024),
                         num((op.kv_read_bytes + op.kv_write_bytes) / 1024), num(op.intensity, 3)])

    add("prologue", w.prologue)
    for b, ops in enumerate(w.blocks):
        used = [i for i, x in enumerate(w.layers) if x == b]
        add(f"layers {_ranges(used)} (x{len(used)})", ops)
    add("epilogue", w.epilogue)
    print(table(rows))
    print(f"total: {num(totals['flops'] / 1e9)} GFLOP, {size(totals['bytes'])} moved (weights "
          f"{size(totals['weight_bytes'] + totals['param_bytes'])}, KV read {size(totals['kv_read_bytes'])}), "
          f"{num(totals['flops'] / totals['bytes'], 3)} FLOP/B")
    return 0


def _ranges(idx: list[int]) -> str:
    out, start = [], None
    for i, v in enumerate(idx):
        if start is None:
            start = v
        if i + 1 == len(idx) or idx[i + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ",".join(out)
