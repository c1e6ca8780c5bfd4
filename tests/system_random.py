"""Random multi-unit programs for the system tests (seeded numpy): legal command streams per unit and a random
acyclic SIGNAL/WAIT graph, optionally closed into a deadlock."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from accel.config import DeviceConfig, load_preset
from accel.interfaces.link import endpoint_code
from accel.isa import TABLES, AttnOp, Family, LinkOp, SyncOp, VectorOp, encode
from accel.program import Program, Stream
from accel.equivalence.pim import PimUnitConfig
from accel.equivalence.pim import random_program as random_pim_program
from accel.equivalence.pim import scaled_aim as scaled_channel


def scaled_aim(channels: int = 3) -> DeviceConfig:
    """aim-gddr6 scaled down (the PIM equivalence tests' aim-scaled channel, several channels), with a small vector
    unit, a link that broadcasts and a sync latency of 3."""
    dev = load_preset("aim-gddr6")
    chan = scaled_channel()
    vec = replace(dev.vector, lanes=4, buffer_bytes=512, mul_latency=2, exp_latency=5, activation_latency=3,
                  recip_latency=6)
    link = replace(dev.link, width_bits=32, latency=3)
    return replace(dev, name="aim-scaled", pim=replace(chan.pim, channels=channels), bitserial=chan.bitserial,
                   vector=vec, link=link, sync_latency=3)


def system_devices() -> list[DeviceConfig]:
    """fpga-tiny, fpga-small (attention array, link at twice the clock), aim-scaled (3 channels), and fpga-small
    with a vector clock of 2/3 of the PIM clock, a slow link and no sync latency."""
    small = load_preset("fpga-small")
    odd = replace(small, name="fpga-small-clocks", vector=replace(small.vector, clock_mhz=25.0 * 2 / 3),
                  link=replace(small.link, clock_mhz=10.0, latency=0), sync_latency=0)
    return [load_preset("fpga-tiny"), small, scaled_aim(), odd]


def _vector_op(dev: DeviceConfig, rng: np.random.Generator) -> int:
    v = dev.vector
    op = VectorOp(int(rng.integers(1, len(VectorOp)))) if rng.random() < 0.95 else VectorOp.NOP
    length = int(rng.integers(2, 3 * v.lanes + 1))
    count = int(rng.integers(0, 4))
    R = -(-length // v.lanes)
    rows = max(1, count)
    lines = v.buffer_lines
    k = int(rng.integers(1, length // 2 + 1))

    def addr(n: int) -> int:
        return int(rng.integers(0, max(1, lines - n + 1)))

    src2 = k if op == VectorOp.TOPK else addr(2 * R if op == VectorOp.LAYERNORM else rows * R)
    return encode("vector", op, length=length, count=count, src=addr(rows * R), src2=src2, dst=addr(rows * R))


def _link_op(dev: DeviceConfig, rng: np.random.Generator) -> int:
    ends = [f"pim{c}" for c in range(dev.pim.channels)] + ["vector", "host"] + (
        ["array"] if dev.attention is not None else [])
    src = str(rng.choice(ends))
    dst = str(rng.choice([e for e in ends + ["all"] if e != src]))
    if rng.random() < 0.03:
        return encode("link", LinkOp.NOP)
    return encode("link", LinkOp.XFER, src=endpoint_code(src), dst=endpoint_code(dst),
                  bytes=int(rng.integers(1, 65)), addr=int(rng.integers(0, 8)))


def _array_op(dev: DeviceConfig, rng: np.random.Generator) -> int:
    a = dev.attention
    if rng.random() < 0.5:
        return encode("attn", AttnOp.ATTEND, m=int(rng.integers(1, 7)), n=int(rng.integers(1, 21)),
                      k=int(rng.integers(1, a.head_dim + 1)), causal=int(rng.integers(0, 2)),
                      count=int(rng.integers(0, 3)))
    return encode("attn", AttnOp.GEMM, m=int(rng.integers(1, 9)), k=int(rng.integers(1, 9)),
                  n=int(rng.integers(1, 9)), dataflow=int(rng.integers(0, 3)), count=int(rng.integers(0, 3)))


def unit_commands(dev: DeviceConfig, name: str, rng: np.random.Generator,
                  n: int) -> tuple[list[int], list[list[int] | None]]:
    """``n`` random legal commands (and their data words) for the unit of stream ``name``."""
    if name.startswith("pim"):
        ch = int(name[3:])
        cfg = PimUnitConfig(dev.pim, dev.bitserial if dev.pim.lane == "bitserial" else None)
        rows = sorted({int(r) for r in rng.integers(0, dev.pim.rows, 2)})
        prog = random_pim_program(cfg, rng, n, rows)
        words = [encode("pim", f["op"], channel=ch, **{k: v for k, v in f.items() if k != "op"}) for f, _ in prog]
        return words, [d for _, d in prog]
    make = {"vector": _vector_op, "link": _link_op, "array": _array_op}[name]
    return [make(dev, rng) for _ in range(n)], [None] * n


def random_program(dev: DeviceConfig, seed: int, deadlock: bool = False, size: int = 14,
                   equal_channels: bool = False) -> Program:
    """Streams of about ``size`` unit commands each, interleaved with SIGNALs, WAITs (only on events already
    signalled in a global random order, so the graph is acyclic) and MARKs; ``deadlock`` closes a cycle of WAITs
    among two or three streams at the end. ``equal_channels``: every PIM stream gets the same commands (apart from
    the channel), so the engine runs them once."""
    rng = np.random.default_rng(seed)
    names = [f"pim{c}" for c in range(dev.pim.channels)] + ["vector", "link"] + (
        ["array"] if dev.attention is not None else [])
    rng.shuffle(names)
    todo: dict[str, list[tuple[int, list[int] | None]]] = {}
    shared = None
    for name in names:
        n = int(rng.integers(1, size + 1))
        if name.startswith("pim") and equal_channels:
            if shared is None:
                shared = unit_commands(dev, "pim0", rng, size)
            off, width = TABLES[Family.PIM].offsets()["channel"]
            words = [w & ~(((1 << width) - 1) << off) | (int(name[3:]) << off) for w in shared[0]]
            todo[name] = list(zip(words, shared[1]))
        else:
            w, d = unit_commands(dev, name, rng, n)
            todo[name] = list(zip(w, d))
    out: dict[str, list[int]] = {n: [] for n in names}
    data: dict[str, dict[int, list[int]]] = {n: {} for n in names}
    signalled: dict[tuple[str, int], int] = {}
    waited: dict[tuple[str, str, int], int] = {}
    index = {n: i for i, n in enumerate(names)}
    sync_share = 0.0 if equal_channels else 0.45
    while any(todo.values()):
        name = str(rng.choice([n for n in names if todo[n]] if rng.random() < 0.8 else names))
        r = rng.random()
        if r < sync_share * 0.4:
            tok = int(rng.integers(0, 3))
            signalled[(name, tok)] = signalled.get((name, tok), 0) + 1
            out[name].append(encode("sync", SyncOp.SIGNAL, token=tok))
        elif r < sync_share * 0.85:
            avail = [(p, t) for (p, t), k in signalled.items() if p != name and waited.get((name, p, t), 0) < k]
            if avail:
                p, t = avail[int(rng.integers(len(avail)))]
                waited[(name, p, t)] = waited.get((name, p, t), 0) + 1
                out[name].append(encode("sync", SyncOp.WAIT, stream=index[p], token=t))
        elif r < sync_share:
            out[name].append(encode("sync", SyncOp.MARK, id=int(rng.integers(0, 5))))
        else:
            for _ in range(int(rng.integers(1, 4))):
                if todo[name]:
                    w, d = todo[name].pop(0)
                    if d is not None and rng.random() < 0.5:
                        data[name][len(out[name])] = d
                    out[name].append(w)
    if deadlock:
        ring = [str(x) for x in rng.choice(names, size=int(rng.integers(2, 4)), replace=False)]
        for i, name in enumerate(ring):
            prev = ring[i - 1]
            out[name].append(encode("sync", SyncOp.WAIT, stream=index[prev], token=7))
            out[name].append(encode("sync", SyncOp.SIGNAL, token=7))
    streams = [Stream(n, np.array(out[n], dtype=np.uint64), data[n]) for n in names]
    return Program(streams, dev.name, meta={"seed": seed})
