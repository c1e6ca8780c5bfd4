"""Random legal PIM programs, stimuli and golden checks for the PIM channel's equivalence runs.

A program is a list of ``(fields, data)``: PIM command fields (``op``, ``all_banks``, ``bank``, ``row``, ``col``,
``count``) and, for WR/WRGB, one column word per element. The generator tracks which rows are open so that every
command is legal (timing is left to the channel: the stimulus runs in wait mode). The stimulus's ``expected`` holds
the engine's schedule (issue cycles of every element, read beats), which the check compares with the trace.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..config import BitSerialConfig, DeviceConfig, PimConfig, load_preset
from ..isa import PimOp, encode
from ..interfaces.stimulus import Stimulus, Trace, run_model
from .registry import UnitSpec

__all__ = ["PimUnitConfig", "random_program", "program_words", "make_stimulus", "check", "SPEC", "TEST_CONFIGS",
           "schedule"]


@dataclass(frozen=True)
class PimUnitConfig:
    """What a PIM channel is built from: its PimConfig and, for bit-serial lanes, the device's BitSerialConfig."""

    pim: PimConfig
    bitserial: BitSerialConfig | None
    name: str = ""

    @classmethod
    def of(cls, dev: DeviceConfig) -> "PimUnitConfig":
        return cls(dev.pim, dev.bitserial if dev.pim.lane == "bitserial" else None, dev.name)


def _word(pim: PimConfig, rng: np.random.Generator) -> int:
    return int.from_bytes(rng.bytes(pim.column_bits // 8), "little")


def random_program(cfg: PimUnitConfig, rng: np.random.Generator, n: int = 40,
                   rows: list[int] | None = None) -> list[tuple[dict[str, int], Any]]:
    """``n`` random legal commands (all ops, single- and all-bank forms, runs) for one channel, opening only
    ``rows`` (default: any row)."""
    p = cfg.pim
    pick_row = (lambda: int(rng.integers(p.rows))) if rows is None else (lambda: int(rng.choice(rows)))
    opened = [False] * p.banks
    out: list[tuple[dict[str, int], Any]] = []
    dtypes = list(cfg.bitserial.dtype_codes.values()) if cfg.bitserial else [0]
    smax = (1 << cfg.bitserial.scale_bits) - 1 if cfg.bitserial else 255

    def cmd(op: PimOp, data: Any = None, **f: int) -> None:
        base = {"all_banks": 0, "bank": 0, "row": 0, "col": 0, "count": 0}
        base.update(f)
        out.append(({"op": int(op), **base}, data))

    while len(out) < n:
        r = rng.random()
        closed = [b for b in range(p.banks) if not opened[b]]
        openb = [b for b in range(p.banks) if opened[b]]
        if r < 0.2 and closed:
            if len(closed) == p.banks and rng.random() < 0.35:
                cmd(PimOp.ACT, all_banks=1, row=pick_row())
                opened = [True] * p.banks
            else:
                b = int(rng.choice(closed))
                cmd(PimOp.ACT, bank=b, row=pick_row())
                opened[b] = True
        elif r < 0.32 and openb:
            if rng.random() < 0.3:
                cmd(PimOp.PRE, all_banks=1)
                opened = [False] * p.banks
            else:
                b = int(rng.choice(openb))
                cmd(PimOp.PRE, bank=b)
                opened[b] = False
        elif r < 0.52 and openb:
            op = PimOp(int(rng.choice([PimOp.RD, PimOp.WR, PimOp.MAC, PimOp.MAC])))
            allb = len(openb) == p.banks and op != PimOp.RD and rng.random() < 0.5
            b = int(rng.choice(openb))
            cnt = int(rng.integers(1, min(p.columns, 6) + 1)) if rng.random() < 0.6 else 1
            col = int(rng.integers(0, p.columns - cnt + 1))
            data = [_word(p, rng) for _ in range(cnt)] if op == PimOp.WR else None
            cmd(op, data, all_banks=int(allb), bank=b, col=col, count=cnt if cnt > 1 else int(rng.integers(0, 2)))
        elif r < 0.6:
            cnt = int(rng.integers(1, p.gb_columns + 1))
            col = int(rng.integers(0, p.gb_columns - cnt + 1))
            cmd(PimOp.WRGB, [_word(p, rng) for _ in range(cnt)], col=col, count=cnt)
        elif r < 0.68:
            if rng.random() < 0.3:
                cmd(PimOp.RDMAC, all_banks=1)
            else:
                cnt = int(rng.integers(1, p.banks + 1))
                cmd(PimOp.RDMAC, bank=int(rng.integers(0, p.banks - cnt + 1)), count=cnt)
        elif r < 0.72:
            cmd(PimOp.CLRMAC, all_banks=int(rng.random() < 0.5), bank=int(rng.integers(p.banks)))
        elif r < 0.8:
            reg = int(rng.choice([8, 9, 0]))
            val = int(rng.choice(dtypes)) if reg == 8 else int(rng.integers(0, smax + 1)) if reg == 9 else 1
            cmd(PimOp.CFR, all_banks=int(rng.random() < 0.5), bank=int(rng.integers(p.banks)), col=reg, row=val)
        elif r < 0.84 and not openb:
            cmd(PimOp.REF)
        elif r < 0.86:
            cmd(PimOp.NOP)
    return out


def program_words(prog: list[tuple[dict[str, int], Any]], channel: int = 0) -> list[int]:
    return [encode("pim", f["op"], channel=channel, **{k: v for k, v in f.items() if k != "op"}) for f, _ in prog]


def schedule(cfg: PimUnitConfig, prog: list[tuple[dict[str, int], Any]]) -> dict[str, Any]:
    """The engine's schedule: issue cycle of every element, read beats, cycles, final MAC registers."""
    from ..emulator.engine import ChannelEngine

    eng = ChannelEngine(cfg.pim, cfg.bitserial, functional=True)
    issues = []
    for f, data in prog:
        g = {k: v for k, v in f.items() if k != "op"}
        iss = eng.issue(f["op"], data=data, **g)
        issues.extend(iss.first + k * iss.step for k in range(iss.count))
    return {"issues": issues, "reads": [list(r) for r in eng.reads], "cycles": eng.cycles,
            "acc": eng.mac_registers().tolist()}


def prologue(cfg: PimUnitConfig, rng: np.random.Generator, rows: list[int]) -> list[tuple[dict[str, int], Any]]:
    """Write every column of ``rows`` in every bank with random data: DRAM contents are not reset (in the RTL they
    are memories), so a stimulus defines the data it reads."""
    p = cfg.pim
    out: list[tuple[dict[str, int], Any]] = []
    z = {"all_banks": 0, "bank": 0, "row": 0, "col": 0, "count": 0}
    for r in rows:
        out.append(({"op": int(PimOp.ACT), **z, "all_banks": 1, "row": r}, None))
        for b in range(p.banks):
            out.append(({"op": int(PimOp.WR), **z, "bank": b, "count": p.columns},
                        [_word(p, rng) for _ in range(p.columns)]))
        out.append(({"op": int(PimOp.PRE), **z, "all_banks": 1}, None))
    return out


def make_stimulus(cfg: PimUnitConfig, seed: int, n: int | None = None) -> Stimulus:
    """A random legal program after a prologue that writes the (two) rows it uses.

    Two seeds in three: wait mode, command and data streams always valid; ``expected`` = the engine's schedule.
    Every third seed: the error paths — commands offered in random cycles, ``strict`` on in random cycles (so
    commands arrive too early and are refused with the rule's code), illegal commands mixed in (closed banks, banks
    and registers out of range, datatypes not built); ``expected`` is None (the RTL is compared with the model only).
    Runs until four cycles after the last activity."""
    if seed % 3 == 2:
        return _error_stimulus(cfg, seed)
    rng = np.random.default_rng(seed)
    rows = sorted(set(int(r) for r in rng.integers(0, cfg.pim.rows, 2)))
    prog = prologue(cfg, rng, rows) + random_program(cfg, rng, n if n is not None else int(rng.integers(10, 40)),
                                                     rows)
    words = program_words(prog)
    data = [w for _, d in prog if d for w in d]
    exp = schedule(cfg, prog)
    cycles = exp["cycles"] + 4
    return Stimulus(
        sources={"cmd": words, "wdata": data},
        source_valid={"cmd": [1] * cycles, "wdata": [1] * cycles},
        sink_ready={},
        plain={"strict": [0] * cycles},
        cycles=cycles,
        label=f"{cfg.name} seed {seed}",
        expected=exp,
    )


def _error_stimulus(cfg: PimUnitConfig, seed: int) -> Stimulus:
    rng = np.random.default_rng(seed)
    p = cfg.pim
    rows = sorted(set(int(r) for r in rng.integers(0, p.rows, 2)))
    prog = prologue(cfg, rng, rows)
    n_pro = len(prog)
    body = random_program(cfg, rng, int(rng.integers(10, 40)), rows)
    z = {"all_banks": 0, "bank": 0, "row": 0, "col": 0, "count": 0}
    bad = [({"op": int(PimOp.RD), **z, "bank": int(rng.integers(p.banks))}, None),
           ({"op": int(PimOp.ACT), **z, "bank": min(63, p.banks + int(rng.integers(0, 3)))}, None),
           ({"op": int(PimOp.CFR), **z, "col": 5, "row": 1}, None),
           ({"op": int(PimOp.CFR), **z, "col": 8, "row": 15}, None),
           ({"op": int(PimOp.MAC), **z, "all_banks": 1, "col": p.columns - 1, "count": 2}, None),
           ({"op": int(PimOp.REF), **z}, None)]
    for _ in range(int(rng.integers(1, 4))):
        body.insert(int(rng.integers(0, len(body) + 1)), bad[int(rng.integers(len(bad)))])
    prog += body
    words = program_words(prog)
    data = [w for _, d in prog if d for w in d]
    bound = schedule(cfg, prog[:n_pro])["cycles"] + 60 * len(body) + 200
    pv = float(rng.uniform(0.2, 0.9))
    valid = [1] * bound
    strict = [0] * bound
    start = schedule(cfg, prog[:n_pro])["cycles"]
    for c in range(start, bound):
        valid[c] = int(rng.random() < pv)
        strict[c] = int(rng.random() < 0.7)
    stim = Stimulus(sources={"cmd": words, "wdata": data}, source_valid={"cmd": valid, "wdata": [1] * bound},
                    sink_ready={}, plain={"strict": strict}, cycles=bound, label=f"{cfg.name} seed {seed} (errors)",
                    expected=None)
    trace = run_model(_model(cfg), stim)
    last = max([c for c, o in enumerate(trace) if o["issued"] or o["rdata__valid"] or o["cmd__ready"] == 0]
               + [0])
    n = min(bound, last + 4)
    stim.cycles = n
    stim.source_valid = {k: v[:n] for k, v in stim.source_valid.items()}
    stim.plain = {k: v[:n] for k, v in stim.plain.items()}
    return stim


def check(cfg: PimUnitConfig, stim: Stimulus, trace: Trace) -> list[str]:
    """Compare a trace with the engine's schedule (issue cycles, read beats, no error); error-path stimuli have no
    engine schedule (they are compared with the RTL only)."""
    exp = stim.expected
    if exp is None:
        return []
    msgs = []
    issued = [c for c, o in enumerate(trace) if o["issued"]]
    if issued != exp["issues"]:
        first = next((i for i, (a, b) in enumerate(zip(issued, exp["issues"])) if a != b),
                     min(len(issued), len(exp["issues"])))
        msgs.append(f"{stim.label}: element {first} issued at cycle "
                    f"{issued[first] if first < len(issued) else None}, engine says "
                    f"{exp['issues'][first] if first < len(exp['issues']) else None}")
    reads = [[c, o["rdata__payload"]] for c, o in enumerate(trace) if o["rdata__valid"]]
    if reads != exp["reads"]:
        msgs.append(f"{stim.label}: read beats differ from the engine's ({len(reads)} vs {len(exp['reads'])})")
    errs = [c for c, o in enumerate(trace) if o["error"]]
    if errs:
        msgs.append(f"{stim.label}: error raised at cycle {errs[0]} (code {trace[errs[0]]['error_code']})")
    return msgs


def _scaled_aim() -> PimUnitConfig:
    """aim-gddr6's organisation and timing scaled down: 2 bank groups x 2 banks, 8 rows, 4 columns, 4 lanes of 16-bit
    slots, and the AiM rules (no tFAW on the all-bank activate, nRCD_MAC > nRCD) with shorter distances."""
    dev = load_preset("aim-gddr6")
    t = replace(dev.pim.timing, nBL=2, nCL=6, nCWL=2, nRCD=5, nRCDWR=4, nRCD_MAC=7, nRP=4, nRAS=7, nRC=11, nWR=4,
                nRTP=3, nCCDS=2, nCCDL=2, nCCD_AB=2, nRRDS=2, nRRDL=3, nFAW=9, nRFC=12, nREFI=400)
    pim = replace(dev.pim, channels=1, banks=4, bank_groups=2, rows=8, row_bytes=32, column_bits=64, mac_lanes=4,
                  global_buffer_bytes=32, timing=t)
    bs = replace(dev.bitserial, lanes=4, group_size=16)
    return PimUnitConfig(pim, bs, "aim-scaled")


def test_configs() -> list[PimUnitConfig]:
    """fpga-tiny, fpga-small, a scaled-down aim-gddr6 and a scaled-down hbm3-pim (int8 lanes, tFAW on, nCCD_AB)."""
    out = [PimUnitConfig.of(load_preset("fpga-tiny")), PimUnitConfig.of(load_preset("fpga-small")), _scaled_aim()]
    dev = load_preset("hbm3-pim")
    t = replace(dev.pim.timing, nBL=1, nCL=4, nCWL=2, nRCD=3, nRCDWR=3, nRCD_MAC=3, nRP=3, nRAS=6, nRC=8, nWR=3,
                nRTP=2, nCCDS=1, nCCDL=2, nCCD_AB=3, nRRDS=1, nRRDL=2, nFAW=7, nRFC=10, nREFI=300,
                faw_all_bank=True)
    pim = replace(dev.pim, channels=1, banks=4, bank_groups=2, rows=4, row_bytes=16, column_bits=32, mac_lanes=4,
                  global_buffer_bytes=8, timing=t)
    out.append(PimUnitConfig(pim, None, "hbm3-scaled"))
    return out


TEST_CONFIGS = test_configs


def _rtl(cfg: PimUnitConfig):
    from ..rtl.pim import PimChannel

    return PimChannel(cfg.pim, cfg.bitserial)


def _model(cfg: PimUnitConfig):
    from ..emulator.units.pim import PimChannel

    return PimChannel(cfg.pim, cfg.bitserial, raise_errors=False)


SPEC = UnitSpec(name="pim", top="pim_channel", config_of=PimUnitConfig.of, rtl=_rtl, model=_model,
                stimulus=make_stimulus, check=check, test_configs=test_configs)


def run_and_check(cfg: PimUnitConfig, seed: int) -> list[str]:
    """Model-only convenience: stimulus, per-cycle run and check."""
    stim = make_stimulus(cfg, seed)
    return check(cfg, stim, run_model(_model(cfg), stim))
