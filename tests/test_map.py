"""The mapper (``accel map``): mapped programs run equal in the system engine and the per-cycle system model, the
engine's epoch jump equals running every layer, latency respects the bank-bandwidth bound, partition / placement
rules, several devices, REPEAT, bad input and the command line."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from system_random import random_program

from accel.cli import main
from accel.config import load_preset
from accel.emulator.system import SystemEngine, SystemResult
from accel.emulator.system_model import SystemModel
from accel.isa import Family, PimOp, SyncOp, encode
from accel.mapping.map import map_workload
from accel.mapping.partition import MappingError
from accel.mapping.placement import place
from accel.mapping.workload import Architecture, build_workload, precision_for
from accel.program import Program, ProgramError, Stream


def scaled_device(channels: int = 4, **pim):
    """aim-gddr6 scaled down: ``channels`` channels of 4 banks, 2048 rows of 8 columns of 64 bits (one 4-lane
    bit-serial unit per bank, groups of 32: 8 beats, at least the dequantiser's 9 cycles), the PIM equivalence tests'
    scaled timing, an 8-lane vector unit and a 64-bit link."""
    dev = load_preset("aim-gddr6")
    t = replace(dev.pim.timing, nBL=2, nCL=6, nCWL=2, nRCD=5, nRCDWR=4, nRCD_MAC=7, nRP=4, nRAS=7, nRC=11, nWR=4,
                nRTP=3, nCCDS=2, nCCDL=2, nCCD_AB=2, nRRDS=2, nRRDL=3, nFAW=9, nRFC=12, nREFI=400)
    p = replace(dev.pim, channels=channels, banks=4, bank_groups=2, rows=2048, row_bytes=64, column_bits=64,
                mac_lanes=4, global_buffer_bytes=64, timing=t, **pim)
    return replace(dev, name="aim-scaled", pim=p, bitserial=replace(dev.bitserial, lanes=4, group_size=32),
                   vector=replace(dev.vector, lanes=8, buffer_bytes=4096, mul_latency=2, exp_latency=5,
                                  activation_latency=3, recip_latency=6),
                   link=replace(dev.link, width_bits=64, latency=2),
                   interconnect=replace(dev.interconnect, width_bits=32, latency=5), sync_latency=1)


def tiny(family: str = "gpt2", layers: int = 2, hidden: int = 32, heads: int = 4, kv_heads: int | None = None,
         ffn: int = 64, vocab: int = 64, positions: int = 64, experts: int = 0) -> Architecture:
    kv = kv_heads or heads
    gated = family in ("llama", "mixtral")
    return Architecture(f"tiny-{family}", family, layers, hidden, heads, kv, hidden // heads, ffn, vocab, positions,
                        experts, 2 if experts else 0, hidden, True, True, family == "gpt2",
                        {"gpt2": "gelu", "opt": "relu"}.get(family, "silu"), not gated)


def workload(dev, arch: Architecture, phase: str = "decode", n: int = 16, batch: int = 1, datatype: str = "int8"):
    kw = dict(context=n) if phase == "decode" else dict(prompt=n)
    return build_workload(arch, phase, precision=precision_for(dev, datatype), batch=batch, **kw)


def _summary(r: SystemResult, intervals: bool = False) -> tuple:
    return (r.cycles, r.ticks, {n: (s.end, s.busy, s.commands, s.marks) + ((s.intervals,) if intervals else ())
                                for n, s in r.streams.items()})


# --------------------------------------------------------------------------------------------------------------------
# Exactness


CASES = [
    ("gpt2 decode", lambda: (scaled_device(), tiny("gpt2"), "decode", 24, 1, 1, "tensor", "int8")),
    ("llama GQA decode int4 batch 2", lambda: (scaled_device(), tiny("llama", heads=4, kv_heads=2), "decode", 20, 2,
                                               1, "tensor", "int4")),
    ("gpt2 prefill (REPEAT)", lambda: (scaled_device(), tiny("gpt2", layers=1), "prefill", 6, 1, 1, "tensor",
                                       "int8")),
    ("opt decode, ReLU on the GPU", lambda: (scaled_device(), tiny("opt"), "decode", 16, 1, 1, "tensor", "int8")),
    ("mixtral decode", lambda: (scaled_device(), tiny("mixtral", experts=4, ffn=32), "decode", 12, 1, 1, "tensor",
                                "mixed:int8=0.5,int4=0.5")),
    ("fpga-small prefill on the array", lambda: (load_preset("fpga-small"), tiny("gpt2", 1, 8, 2, None, 16, 8, 8),
                                                 "prefill", 4, 1, 1, "tensor", "int8")),
    ("2 devices tensor parallel", lambda: (scaled_device(2), tiny("gpt2"), "decode", 12, 1, 2, "tensor", "int8")),
    ("2 devices pipeline parallel", lambda: (scaled_device(2), tiny("llama", 2, 32, 4, 2), "decode", 12, 1, 2,
                                             "pipeline", "int8")),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mapped_programs_engine_equals_per_cycle_model(case):
    """Every figure of a mapped program equal in the system engine (with and without the epoch jump) and the
    per-cycle system model: total cycles and ticks, and per stream its end, busy cycles, commands and markers."""
    dev, arch, phase, n, batch, devices, parallel, dt = case[1]()
    mr = map_workload(workload(dev, arch, phase, n, batch, dt), dev, devices=devices, parallel=parallel)
    prog = mr.program
    model = SystemModel(dev).run(prog)
    assert _summary(mr.result) == _summary(model)
    assert _summary(SystemEngine(dev, jump=False).run(prog)) == _summary(model)
    assert mr.result.events == model.events
    assert mr.latency_s >= mr.bank_bound_s > 0


def test_mapped_programs_use_every_unit_they_claim():
    """The cases are not trivial: GEMVs on the channels, vector work, link transfers, REPEAT bodies, the array,
    the interconnect and the GPU fallback all appear."""
    seen: set[str] = set()
    for _, make in CASES:
        dev, arch, phase, n, batch, devices, parallel, dt = make()
        mr = map_workload(workload(dev, arch, phase, n, batch, dt), dev, devices=devices, parallel=parallel)
        seen |= {d.unit for d in mr.partition.decisions.values()}
        ev = mr.result.events
        seen |= {k for k in ("pim_mac_columns", "vector_ops", "link_transfers", "interconnect_transfers", "array_ops")
                 if ev[k]}
        for s in mr.program.streams:
            if ((s.families == Family.SYNC) & (s.field(Family.SYNC, "op") == SyncOp.REPEAT)).any():
                seen.add("repeat")
    assert seen >= {"pim", "vector", "array", "gpu", "host", "pim_mac_columns", "vector_ops", "link_transfers",
                    "interconnect_transfers", "array_ops", "repeat"}


def _random_arch(rng: np.random.Generator) -> tuple[Architecture, str]:
    family = str(rng.choice(["gpt2", "opt", "llama", "mixtral"]))
    heads = int(rng.choice([1, 2, 4]))
    kv = heads if family in ("gpt2", "opt") else int(rng.choice([h for h in (1, 2, 4) if heads % h == 0]))
    hidden = heads * int(rng.choice([4, 8, 16]))
    layers = int(rng.integers(7, 10))
    arch = tiny(family, layers, hidden, heads, kv, int(rng.choice([16, 32, 64])), 32, 64,
                4 if family == "mixtral" else 0)
    return arch, str(rng.choice(["int8", "int4", "mixed:int8=0.25,int4=0.75"]))


@pytest.mark.parametrize("seed", range(8))
def test_epoch_jump_equals_every_layer(seed):
    """Random tiny models of 7-9 identical layers (every family, random widths, heads, formats, contexts, batches):
    the engine's epoch jump gives exactly what running every layer gives — cycles, every stream's end, busy cycles,
    commands, markers and busy intervals, and the event counts — and it does jump."""
    rng = np.random.default_rng(seed)
    arch, dt = _random_arch(rng)
    dev = scaled_device(int(rng.integers(1, 5)))
    w = workload(dev, arch, "decode", int(rng.integers(2, 40)), int(rng.integers(1, 3)), dt)
    mr = map_workload(w, dev)
    every = SystemEngine(dev, jump=False).run(mr.program)
    assert _summary(mr.result, True) == _summary(every, True) and mr.result.events == every.events
    assert mr.result.jumped >= 1


def _epochs(dev, seed: int, epochs: int, barrier: bool) -> Program:
    """A random multi-unit program (:func:`system_random.random_program`) repeated ``epochs`` times, each repetition
    opened by a layer MARK in every stream; channels close their banks at the end of each, and a stream that waits
    on an event waits on it as often as it is signalled (extra WAITs at its end), so that no backlog of events grows
    from one repetition to the next. ``barrier``: every stream also waits, at the start of each repetition but the
    first, for every other stream's end of the one before (the coupling a mapped program's data gives it; without
    it the streams may drift apart at their own paces)."""
    body = random_program(dev, seed)
    sig: dict[tuple[int, int], int] = {}
    waits: dict[tuple[int, int, int], int] = {}
    for i, s in enumerate(body.streams):
        sync = s.families == Family.SYNC
        op, tok, prod = (s.field(Family.SYNC, n)[sync] for n in ("op", "token", "stream"))
        for o, t, pr in zip(op.tolist(), tok.tolist(), prod.tolist()):
            if o == SyncOp.SIGNAL:
                sig[(i, t)] = sig.get((i, t), 0) + 1
            elif o == SyncOp.WAIT:
                waits[(i, pr, t)] = waits.get((i, pr, t), 0) + 1
    streams = []
    for i, s in enumerate(body.streams):
        extra = [encode("sync", SyncOp.WAIT, stream=pr, token=t) for (c, pr, t), n in waits.items() if c == i
                 for _ in range(sig[(pr, t)] - n)]
        words = np.append(s.words, np.array(extra, dtype=np.uint64))
        if s.kind == "pim":
            words = np.append(words, np.uint64(encode("pim", PimOp.PRE, all_banks=1, channel=s.channel)))
        if barrier:
            words = np.append(words, np.uint64(encode("sync", SyncOp.SIGNAL, token=7)))
        others = [encode("sync", SyncOp.WAIT, stream=j, token=7) for j in range(len(body.streams)) if j != i]
        parts, data = [], {}
        for e in range(epochs):
            parts.append(np.array([encode("sync", SyncOp.MARK, id=100 + e)] + (others if barrier and e else []),
                                  dtype=np.uint64))
            base = sum(len(p) for p in parts)
            data.update({base + k: v for k, v in s.data.items()})
            parts.append(words)
        streams.append(Stream(s.name, np.concatenate(parts), data))
    ops = {100 + e: {"name": f"layer {e}", "kind": "layer"} for e in range(epochs)}
    return Program(streams, body.device, operators=ops)


@pytest.mark.parametrize("seed", range(12))
def test_epoch_jump_on_random_repeated_programs(seed):
    """Random multi-unit programs repeated as epochs (every unit kind, random clocks and sync latencies): jumping
    equals not jumping in every figure, and both equal the per-cycle model."""
    from system_random import system_devices

    dev = system_devices()[seed % 4]
    prog = _epochs(dev, seed, 6, seed % 3 != 2)
    a, b = SystemEngine(dev).run(prog), SystemEngine(dev, jump=False).run(prog)
    assert _summary(a, True) == _summary(b, True) and a.events == b.events
    if seed < 4:
        assert _summary(a) == _summary(SystemModel(dev).run(prog))


def test_epoch_jump_happens_on_random_programs():
    """Random repeated programs coupled by a barrier are periodic from an epoch on, on devices whose clocks share a
    period within an epoch (fpga-small, the scaled aim-gddr6; fpga-tiny's 12 MHz vector unit against its 83.333 ns
    channel is not periodic within a few epochs): the suite above is not vacuous."""
    from system_random import system_devices

    devs = system_devices()[1:3]
    jumped = [SystemEngine(devs[s % 2]).run(_epochs(devs[s % 2], s, 6, True)).jumped for s in range(10)]
    assert sum(j > 0 for j in jumped) >= 7, jumped


# --------------------------------------------------------------------------------------------------------------------
# The report's figures


def test_latency_respects_the_bank_bound_and_shares_add_up():
    """Real models on aim-gddr6 at small contexts: the step is never faster than every MAC column at the banks'
    bandwidth; the operators' shares add up to the device time; every GEMV's bound is named."""
    for name, ctx in (("gpt2", 64), ("opt-125m", 32)):
        from accel.mapping.map import map_model

        mr = map_model(name, "aim-gddr6", "decode", context=ctx)
        assert mr.latency_s >= mr.bank_bound_s > 0
        assert sum(r.share_s for r in mr.rows) == pytest.approx(mr.device_s, rel=1e-9)
        for g in mr.by_operator():
            if g["kind"] == "gemm":
                assert g["bound"] in ("link", "bank bandwidth", "MAC pace", "row activations",
                                      "group registers (CFR)", "global-buffer refills")
                assert g["share_s"] >= g["bank_bound_s"]
        j = mr.to_json()
        assert j["above_bank_bound"] > 1 and j["units"]["pim"]["streams"] == 32
        json.dumps(j)


def test_partition_rules():
    """GEMVs to the channels, prefill GEMMs to the array where it is faster, attention on the array only with all
    keys new, ReLU (no vector op) to the GPU, lookups from the host, the rest on the vector unit."""
    dev = load_preset("fpga-small")
    arch = tiny("opt", 1, 8, 2, None, 16, 8, 8)
    dec = map_workload(workload(dev, arch, "decode", 6), dev).partition
    assert dec["block0/fc1"].unit == "pim" and dec["block0/self_attn.score"].unit == "pim"
    assert dec["block0/mlp.act"].unit == "gpu" and dec["prologue/embed_tokens"].unit == "host"
    assert dec["block0/self_attn.softmax"].unit == "vector"
    pre = map_workload(workload(dev, arch, "prefill", 8), dev).partition
    assert pre["block0/fc1"].unit == "array" and "array" in pre["block0/fc1"].rule
    assert pre["block0/self_attn.score"].unit == pre["block0/self_attn.softmax"].unit == "array"
    assert pre["block0/mlp.act"].unit == "gpu" and pre["block0/mlp.act"].times_s["gpu"] > 0


def test_placement_follows_the_packed_columns():
    """The mapper places weights as the banks pack them (:func:`accel.mapping.gemv.gemv_shape`): 4-bit weights take
    half the data columns of int8 ones, so no matrix takes more rows and some take fewer; each region's rows are those
    :func:`accel.mapping.gemv.gemv_plan` uses for its shape (rounded up per block)."""
    from accel.mapping.gemv import gemv_program, gemv_shape

    dev = scaled_device()
    arch = tiny("llama", 1, 64, 4)
    rows = {dt: {k: r for k, r in place(workload(dev, arch, "decode", 8, datatype=dt), dev).devices[0].regions.items()
                 if r.kind == "weight"} for dt in ("int8", "int4")}
    assert any(rows["int4"][k].rows < r.rows for k, r in rows["int8"].items())
    assert all(rows["int4"][k].rows <= r.rows for k, r in rows["int8"].items())
    for regions in rows.values():
        for r in regions.values():
            per = -(-r.m // r.channels)
            _, rpb, blocks = gemv_shape(dev, per, r.k, "rows", r.code_bits)
            assert r.rows == rpb * blocks
            dt = "int4" if r.code_bits <= 4 else "int8"
            code = dev.bitserial.dtype_codes[dt]
            groups = -(-r.k // dev.bitserial.group_size)
            plan = gemv_program(dev, per, r.k, "rows", np.full((per, groups), code), np.ones((per, groups), int),
                                channels=1)
            assert plan.rows_used <= r.rows


def _kv_write_token_by_token(dev, kv, tokens):
    """KV-cache writes by a walk over every token, sequence, KV head and head dimension (the naive reference of
    :func:`accel.mapping.schedule.kv_write`): per channel, the words and the columns written."""
    from accel.isa import encode
    from accel.mapping.gemv import lane_outputs

    p = dev.pim
    L, C, B, V = lane_outputs(dev, 8), p.columns, p.banks, p.weights_per_column(8)
    keys = [dict() for _ in range(kv.k.channels)]      # (row, bank) -> columns
    values = [dict() for _ in range(kv.k.channels)]    # row -> bank -> columns
    for sh in range(kv.sequences * kv.kv_heads):
        for t in tokens:
            ch, row = kv.k_at[sh * kv.blocks + t // kv.tokens_per_unit]
            bank = (t % kv.tokens_per_unit) % (B * L) // L
            for j in range(kv.k_rows):
                keys[ch].setdefault((row + j, bank), set()).update(range(min(kv.head_dim, (j + 1) * C) - j * C))
            for d in range(kv.v_per_head):
                ch, row = kv.v_at[sh * kv.v_per_head + d]
                for b in range(min(B, kv.head_dim - d * B)):
                    values[ch].setdefault(row + t // V // C, {}).setdefault(b, set()).add(t // V % C)

    def runs(cols):
        out = []
        for c in sorted(cols):
            if out and out[-1][0] + out[-1][1] == c:
                out[-1][1] += 1
            else:
                out.append([c, 1])
        return out

    out = []
    for k, v in zip(keys, values):
        words, n = [], 0
        for (row, bank), cols in sorted(k.items()):
            words.append(encode("pim", "ACT", bank=bank, row=row))
            words += [encode("pim", "WR", bank=bank, col=a, count=c) for a, c in runs(cols)]
            words.append(encode("pim", "PRE", bank=bank))
            n += len(cols)
        for row, banks in sorted(v.items()):
            words.append(encode("pim", "ACT", all_banks=1, row=row))
            words += [encode("pim", "WR", bank=b, col=a, count=c) for b, cols in sorted(banks.items())
                      for a, c in runs(cols)]
            words.append(encode("pim", "PRE", all_banks=1))
            n += sum(len(cols) for cols in banks.values())
        out.append((words, n))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_kv_write_equals_a_walk_over_the_tokens(seed):
    """The KV-cache writes of new tokens (built with numpy, made once per layout shape and moved to each layer's
    rows) are the words of a walk over every token, head and dimension, in every layer: random models, batches,
    contexts and runs of new tokens (one for decode, many for prefill), on the scaled aim-gddr6 and on aim-gddr6."""
    from accel.mapping.schedule import kv_write

    rng = np.random.default_rng(seed)
    arch, _ = _random_arch(rng)
    dev = scaled_device(int(rng.integers(1, 5))) if seed % 2 else load_preset("aim-gddr6")
    n = int(rng.integers(2, 60))
    dp = place(workload(dev, arch, "prefill", n, int(rng.integers(1, 3))), dev).devices[0]
    for layer, kv in dp.kv.items():
        a = int(rng.integers(0, n))
        tokens = range(a, int(rng.integers(a + 1, n + 1)))
        got = [(p.words.tolist(), p.data_bytes // dev.pim.column_bytes) for p in kv_write(dev, kv, tokens)]
        assert got == _kv_write_token_by_token(dev, kv, tokens), layer


def test_regions_do_not_overlap_and_fit():
    dev = scaled_device()
    dp = place(workload(dev, tiny("mixtral", 2, 32, 4, 2, 32, experts=4), "decode", 30), dev).devices[0]
    spans = sorted((r.row0, r.row0 + r.rows) for r in dp.regions.values() if r.rows)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])) and spans[-1][1] == dp.rows_used <= dev.pim.rows


def test_model_too_large_says_by_how_much_and_how_many_devices():
    dev = scaled_device()
    w = workload(dev, tiny("llama", 8, 128, 4, ffn=256), "decode", 8)
    with pytest.raises(MappingError, match=r"^tiny-llama does not fit 1 aim-scaled device: device 0 needs \d+ DRAM "
                                           r"rows per bank \(.* of bank space.*\) and has 2048 \(2 MiB\), .* short; "
                                           r"the smallest --devices that fits is (\d+)$") as e:
        place(w, dev)
    n = int(e.value.args[0].rsplit(" ", 1)[1])
    place(w, dev, n, "tensor")
    with pytest.raises(MappingError):
        place(w, dev, n - 1, "tensor")


def test_context_beyond_the_kv_capacity():
    dev = scaled_device(1)
    w = workload(dev, tiny("gpt2", 2, 16, 2, positions=4096), "decode", 4000)
    with pytest.raises(MappingError, match=r"the KV cache fits up to context (\d+) \(--context \1\)") as e:
        place(w, dev)
    top = int(e.value.args[0].split("up to context ")[1].split(" ")[0])
    place(workload(dev, tiny("gpt2", 2, 16, 2, positions=4096), "decode", top), dev)


# --------------------------------------------------------------------------------------------------------------------
# REPEAT


def test_repeat_text_round_trip_and_rules():
    text = ("device fpga-tiny\nstream pim0\nACT all_banks=1 row=1\nREPEAT times=3 words=2\nMAC all_banks=1 count=2\n"
            "CLRMAC all_banks=1\nPRE all_banks=1\n")
    prog = Program.from_text(text, "p")
    assert "REPEAT times=3 words=2" in prog.to_text() and Program.from_text(prog.to_text()) == prog
    dev = load_preset("fpga-tiny")
    plain = Program.from_text(text.replace("REPEAT times=3 words=2\n", "").replace(
        "CLRMAC all_banks=1\n", "CLRMAC all_banks=1\nMAC all_banks=1 count=2\nCLRMAC all_banks=1\n"
                                "MAC all_banks=1 count=2\nCLRMAC all_banks=1\n"))
    a, b, m = SystemEngine(dev).run(prog), SystemEngine(dev).run(plain), SystemModel(dev).run(prog)
    assert _summary(a) == _summary(b) == _summary(m) and a.events == b.events
    for bad, msg in (("REPEAT times=2 words=9\n", r"the stream has \d+ words after it"),
                     ("REPEAT times=0 words=1\n", r"repeats at least one word at least once"),
                     ("REPEAT times=2 words=2\nSIGNAL token=1\n", r"inside its body is a SYNC command")):
        with pytest.raises(ProgramError, match=msg):
            Program.from_text("stream pim0\nACT all_banks=1 row=1\n" + bad + "MAC all_banks=1\nPRE all_banks=1\n"
                              ).validate(dev)
    with pytest.raises(ProgramError, match=r"REPEAT needs times=N .*; words is missing"):
        Program.from_text("stream pim0\nREPEAT times=2\n")


# --------------------------------------------------------------------------------------------------------------------
# The command line


def test_cli_map_json_program_plots_trace_and_emulate(tmp_path, capsys):
    js, prog, tr, plots = tmp_path / "r.json", tmp_path / "p.npz", tmp_path / "t.json", tmp_path / "plots"
    assert main(["map", "gpt2", "--device", "aim-gddr6", "--context", "32", "--json", str(js), "--program",
                 str(prog), "--trace", str(tr), "--plots", str(plots), "--progress"]) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert out.startswith("model      gpt2 (decode, context 32") and "latency" in out and "bank bound" in out
    assert "\nenergy     " in out and " per token, " in out and f"trace      {tr}" in out and "plots      " in out
    assert "codegen" in cap.err and "system engine" in cap.err   # --progress: the bars, on stderr only
    rep = json.loads(js.read_text())
    assert rep["cycles"] > 0 and rep["latency_s"] >= rep["bank_bound_s"] and rep["operators"]
    assert rep["energy"]["j_per_token"] > 0 and rep["extras"]["trace_file"] == str(tr)
    assert len(rep["extras"]["plots"]) == 6 and all(p.startswith(str(plots)) for p in rep["extras"]["plots"])
    assert json.loads(tr.read_text())["traceEvents"]
    assert main(["emulate", str(prog), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cycles"] == rep["cycles"]


@pytest.mark.parametrize("args,message", [
    (["gpt2", "--device", "aim"], r"unknown preset 'aim'"),
    (["gpt2-xxl"], r"unknown model 'gpt2-xxl' \(did you mean 'gpt2-xl'\?\)"),
    (["gpt2", "--context", "1025"], r"context 1025 > 1024 positions of gpt2"),
    (["gpt2", "--batch", "100000"], r"its KV cache alone is 1.717 TiB \(batch 100000, context 1024\)"),
    (["llama2-70b", "--context", "128"], r"does not fit 1 aim-gddr6 device: .* the smallest --devices that fits is"),
    (["gpt2", "--device", "hbm3-pim", "--datatype", "int4", "--context", "8"], r"int8 MAC lanes; use --datatype int8"),
])
def test_cli_bad_input(tmp_path, capsys, args, message):
    """One line, exit status 2, no traceback, and no output file (a batch or prompt of 0 is a usage error:
    tests/test_errors.py)."""
    js = tmp_path / "r.json"
    assert main(["map", *args, "--json", str(js), "--program", str(tmp_path / "p.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("accel: error: ")
    import re

    assert re.search(message, err), err
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------------------------
# Report extras: energy, plots, trace (the same library calls as accel emulate)


def _ops(w):
    return [*w.prologue, *(op for l in w.layers for op in w.blocks[l]), *w.epilogue]


@pytest.mark.parametrize("devices,parallel", [(1, "tensor"), (2, "tensor"), (2, "pipeline")])
def test_map_energy_per_token(devices, parallel):
    """The report's energy is accel.energy's formula on the run's counts over its cycles and devices; per token it
    is the step's over its new tokens, per MAC over the step's MACs, and the power over the device time."""
    from accel.energy import energy
    from accel.mapping.map import format_text
    from accel.fmt import si

    dev = scaled_device(2 if devices > 1 else 4)
    w = workload(dev, tiny("gpt2"), "decode", 16, batch=2)
    mr = map_workload(w, dev, devices=devices, parallel=parallel)
    e = energy(mr.result.events, dev, mr.result.cycles, devices)
    assert mr.energy.total_j == e.total_j > 0 and mr.energy.static_total_j == e.static_total_j > 0
    assert e.dynamic_j["pim_mac_columns"] > 0 and e.dynamic_j["link_bits"] > 0
    assert (e.dynamic_j["interconnect_bits"] > 0) == (devices > 1)
    macs = sum(op.macs for op in _ops(w))   # tiny gpt2: every MAC on the channels, each once
    assert mr.macs == macs
    ept = mr.energy_per_token()
    assert ept["j_per_token"] == pytest.approx(e.total_j / (2 * w.tokens))
    assert ept["pj_per_mac"] == pytest.approx(e.total_j / macs * 1e12)
    assert ept["watts"] == pytest.approx(e.total_j / (mr.result.time_ns * 1e-9))
    j = json.loads(json.dumps(mr.to_json()))
    assert j["energy"]["total_j"] == pytest.approx(e.total_j) and j["energy"]["j_per_token"] == ept["j_per_token"]
    assert f"energy     {si(ept['j_per_token'], 'J')} per token, {ept['pj_per_mac']:.3g} pJ per MAC" in format_text(mr)


def test_map_plots_and_trace_read_the_map_rows(tmp_path):
    """One row type: the plots draw the map's rows (every operator with FLOPs and bytes a roofline point at its
    intensity and achieved FLOP/s), and the rows any program's operator facts give have the map's spans; the trace has
    one track per stream and an event per operator instance."""
    from accel.perfetto import write_trace
    from accel.plots import FIGURES, operator_rows, roofline_figure, write_plots

    dev = scaled_device()
    mr = map_workload(workload(dev, tiny("gpt2"), "decode", 16), dev)
    generic = {r.id: r for r in operator_rows(mr.result, mr.program)}
    for r in mr.rows:
        if r.id in generic:
            g = generic[r.id]
            assert (g.name, g.start_s, g.end_s) == (r.name, r.start_s, r.end_s)
    drawn = [r for r in mr.rows if r.flops > 0 and r.bytes > 0 and r.time_s > 0]
    assert any(r.unit == "pim" and r.bound for r in drawn)
    pts = [p for c in roofline_figure(dev, mr.rows).axes[0].collections for p in c.get_offsets().tolist()]
    np.testing.assert_allclose(sorted(pts), sorted([r.intensity, r.flops_per_s] for r in drawn), rtol=1e-9)
    paths = write_plots(tmp_path / "plots", mr.result, mr.program, dev, mr.rows, mr.energy)
    assert sorted(p.name for p in paths) == sorted(f"{n}.{x}" for n in FIGURES for x in ("png", "svg"))
    tr = json.loads(write_trace(tmp_path / "t.json", mr.result, mr.program).read_text())
    tracks = {e["args"]["name"] for e in tr["traceEvents"] if e["name"] == "thread_name"}
    assert tracks == set(mr.program.names)
    names = {e["name"] for e in tr["traceEvents"] if e["ph"] == "X"}
    assert {r.name for r in mr.rows if r.unit == "pim"} <= names


@pytest.mark.parametrize("opt,make,message", [
    ("--trace", lambda d: d, r"--trace .*: is a folder; give a file name"),
    ("--plots", lambda d: d / "missing" / "plots", r"the folder .*missing does not exist"),
    ("--json", lambda d: d / "missing" / "r.json", r"the folder .*missing does not exist"),
])
def test_cli_bad_output_paths_fail_before_the_run(tmp_path, capsys, opt, make, message):
    import re

    assert main(["map", "gpt2", opt, str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not list(tmp_path.iterdir())
