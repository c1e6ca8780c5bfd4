"""GDDR6-AiM timing as data: the constraints of SK hynix's AiM simulator (a Ramulator 2 fork) as rows of a table, the
ISRs of its trace format, and the table compiled for a device (:class:`AimTiming`), shared by the fast AiM host model
(:mod:`accel.emulator.aim`) and its per-command reference (:mod:`accel.emulator.aim_reference`).

Two commits of the simulator differ in their GDDR6 table (``src/dram/impl/GDDR6.cpp``): today's HEAD 0f28a07
(:data:`AIM_RULES`) and 2eb1ee0, the commit CENT (ASPLOS'25) pins as its submodule and whose counts its published
latencies are. :data:`AIM_RULE_VARIANTS` writes 2eb1ee0 as rows dropped from and added to the HEAD table (commit
af65d80 between them: "GDDR6 ACT-to-ACT diff bank-groups nRRDS fixed, ACT-to-ACT same bank nRC added, RD-to-PRE same
bank nRTP fixed, WR-to-PRE bank-group-level fixed, PRE-to-PRE same bank nRP added"); the timing values are the same.
"""
from __future__ import annotations

import re
from typing import Mapping

from accel.config import DeviceConfig
from accel.errors import ConfigError

__all__ = ["AIM_EXTRA_TIMING", "AIM_RUNTIME_TIMING", "AIM_COMMANDS", "AIM_RULES", "AIM_RULE_VARIANTS", "AIM_ISRS",
           "AIM_LATENCY", "AimTiming", "CMD", "CH_SCOPE", "BG_SCOPE", "latency", "rule_rows"]

#: AiM timing parameters that the device description does not carry, as GDDR6_AiM_timing sets them (aim_simulator
#: commit 0f28a07, src/dram/impl/GDDR6.cpp; the last six are fixed in set_timing_vals).
AIM_EXTRA_TIMING = dict(nRCDEWMUL=25, nRCDRDAF=86, nRCDRDCP=66, nRCDWRCP=48, nWTRS=9, nWTRL=11, nRFCpb=105,
                        nRREFD=21, nMODCH=32, nCLREG=0, nCLGB=1, nCWLREG=1, nCWLGB=1, nWPRE=1)

#: What the simulator's GDDR6 model does at run time to its timing (set_timing_vals: the x16 / 2000 MT/s rows of its
#: nRRDS, nRRDL and nFAW tables overwrite the preset's values).
AIM_RUNTIME_TIMING = dict(nRRDS=5, nRRDL=6, nFAW=28)

AIM_COMMANDS = ("ACT", "PREA", "PRE", "RD", "WR", "RDA", "WRA", "REFab", "REFpb", "ACT4", "ACT16", "PRE4", "MAC",
                "MAC16", "AF16", "EWMUL16", "RDCP", "WRCP", "WRGB", "RDMAC16", "RDAF16", "WRMAC16", "WRA16", "TMOD")
#: Command name -> index into :data:`AIM_COMMANDS`.
CMD = {n: i for i, n in enumerate(AIM_COMMANDS)}
#: Commands whose timing state is the channel's alone (all-bank and register commands).
CH_SCOPE = {CMD[n] for n in ("REFab", "ACT16", "PREA", "MAC16", "AF16", "EWMUL16", "WRGB", "RDMAC16", "RDAF16",
                             "WRMAC16", "WRA16", "TMOD")}
#: Commands whose timing state is a bank group's.
BG_SCOPE = {CMD["ACT4"], CMD["PRE4"]}

#: GDDR6-AiM timing constraints (level | preceding | following | distance), the facts of the AiM simulator's
#: GDDR6.cpp timing table, written as data.
AIM_RULES = """
ch | RD RDA RDMAC16 RDAF16 | RD RDA RDMAC16 RDAF16 | nBL
ch | WR WRA WRA16 WRGB WRMAC16 | WR WRA WRA16 WRGB WRMAC16 | nBL
ch | RD RDA MAC MAC16 RDCP RDMAC16 RDAF16 | RD RDA MAC MAC16 RDCP RDMAC16 RDAF16 | nCCDS
ch | WR WRA WRA16 WRGB WRCP WRMAC16 | WR WRA WRA16 WRGB WRCP WRMAC16 | nCCDS
ch | RD RDA MAC RDCP RDMAC16 RDAF16 MAC16 EWMUL16 | RDMAC16 RDAF16 MAC16 EWMUL16 | nCCDL
ch | RDMAC16 RDAF16 MAC16 EWMUL16 | RD RDA MAC RDCP RDMAC16 RDAF16 MAC16 EWMUL16 | nCCDL
ch | WR WRA WRCP WRA16 WRMAC16 EWMUL16 | WRA16 WRMAC16 EWMUL16 | nCCDL
ch | WRA16 WRMAC16 EWMUL16 | WR WRA WRCP WRA16 WRMAC16 EWMUL16 | nCCDL
ch | RD RDA | WR WRA | nCL + nBL + 3 - nCWL + nWPRE
ch | RD RDA | WRA16 | nCL + nBL + 3 - nCWL + nWPRE
ch | RDMAC16 RDAF16 | WR WRA | nCLREG + nBL + 3 - nCWL + nWPRE
ch | RDMAC16 RDAF16 | WRA16 | nCLREG + nBL + 3 - nCWL + nWPRE
ch | RD RDA | WRGB | nCL + nBL + 3 - nCWLGB + nWPRE
ch | RD RDA | WRMAC16 | nCL + nBL + 3 - nCWLREG + nWPRE
ch | RDMAC16 RDAF16 | WRGB | nCLREG + nBL + 3 - nCWLGB + nWPRE
ch | RDMAC16 RDAF16 | WRMAC16 | nCLREG + nBL + 3 - nCWLREG + nWPRE
ch | WR WRA | RD RDA RDMAC16 RDAF16 | nCWL + nBL + nWTRS
ch | WRA16 | RD RDA RDMAC16 RDAF16 | nCWL + nBL + nWTRS
ch | WRGB | RD RDA RDMAC16 RDAF16 | nCWLGB + nBL + nWTRS
ch | WRMAC16 | RD RDA RDMAC16 RDAF16 | nCWLREG + nBL + nWTRS
ch | WR WRA | RDMAC16 RDAF16 | nCWL + nBL + nWTRL
ch | WRA16 | RD RDA RDMAC16 RDAF16 | nCWL + nBL + nWTRL
ch | WRMAC16 | RD RDA RDMAC16 RDAF16 | nCWLREG + nBL + nWTRL
ch | RD RDCP MAC MAC16 AF16 EWMUL16 | PREA | nRTP
ch | MAC16 AF16 EWMUL16 | PRE PRE4 | nRTP
ch | WR WRCP | PREA | nCWL + nBL + nWR
ch | EWMUL16 | PRE PRE4 PREA | nCWL + nWR
ch | ACT ACT4 | ACT ACT4 | nRRDS
ch | ACT ACT4 ACT16 | ACT16 | nRRDL
ch | ACT16 | ACT ACT4 ACT16 | nRRDL
ch | ACT ACT4 ACT16 | ACT16 | nRC
ch | ACT16 | ACT ACT4 ACT16 | nRC
ch | ACT ACT4 ACT16 | PREA | nRAS
ch | ACT16 | PRE PRE4 | nRAS
ch | PRE PRE4 PREA | ACT16 | nRP
ch | PREA | ACT ACT4 ACT16 | nRP
ch | ACT ACT4 ACT16 | MAC16 | nRCDRDMAC
ch | ACT ACT4 ACT16 | AF16 | nRCDRDAF
ch | ACT ACT4 ACT16 | EWMUL16 | nRCDEWMUL
ch | ACT16 | MAC | nRCDRDMAC
ch | ACT16 | RDCP | nRCDRDCP
ch | ACT16 | RD RDA | nRCDRD
ch | ACT ACT4 ACT16 | WRA16 | nRCDWR
ch | ACT16 | WRCP | nRCDWRCP
ch | ACT16 | WR WRA | nRCDWR
ch | RDA | ACT16 | nRTP + nRP
ch | WRA | ACT16 | nCWL + nBL + nWR + nRP
ch | WRA16 | ACT ACT4 ACT16 | nCWL + nBL + nWR + nRP
ch | ACT ACT4 ACT16 | REFab | nRC
ch | PRE PRE4 PREA | REFab | nRP
ch | RDA | REFab | nRTP + nRP
ch | WRA | REFab | nCWL + nBL + nWR + nRP
ch | WRA16 | REFpb REFab | nCWL + nBL + nWR + nRP
ch | REFab | ACT ACT4 ACT16 | nRFC
ch | ACT ACT4 ACT16 | REFpb | nRRDL
ch | ACT16 | REFpb | nRC
ch | PREA | REFpb | nRP
ch | REFpb | ACT16 | nRFCpb
ch | REFpb | ACT ACT4 ACT16 | nRREFD
ch | PREA | PRE PRE4 PREA | nRP
ch | PRE PRE4 | PREA | nRP
ch | TMOD | ACT PREA PRE RD WR RDA WRA REFab REFpb ACT4 ACT16 PRE4 MAC MAC16 AF16 EWMUL16 RDCP WRCP WRGB RDMAC16 RDAF16 WRMAC16 WRA16 | nMODCH
bg | RD RDA MAC RDCP | RD RDA MAC RDCP | nCCDL
bg | WR WRA WRCP | WR WRA WRCP | nCCDL
bg | WR WRA | RD RDA | nCWL + nBL + nWTRL
bg | RD RDCP MAC | PRE4 | nRTP
bg | WR WRCP | PRE4 | nCWL + nBL + nWR
bg | ACT ACT4 | ACT ACT4 | nRRDL
bg | ACT ACT4 | ACT4 | nRC
bg | ACT4 | ACT ACT4 | nRC
bg | ACT ACT4 | PRE4 | nRAS
bg | ACT4 | PRE | nRAS
bg | PRE PRE4 | ACT4 | nRP
bg | PRE4 | ACT | nRP
bg | RDA | ACT4 | nRTP + nRP
bg | WRA | ACT4 | nCWL + nBL + nWR + nRP
bg | ACT4 | REFpb | nRC
bg | PRE4 | REFpb | nRP
bg | REFpb | ACT4 | nRFCpb
bg | ACT4 | MAC | nRCDRDMAC
bg | ACT4 | RDCP | nRCDRDCP
bg | ACT4 | RD RDA | nRCDRD
bg | ACT4 | WRCP | nRCDWRCP
bg | ACT4 | WR WRA | nRCDWR
ch | PRE4 | PRE PRE4 | nRP
ch | PRE | PRE4 | nRP
bank | ACT | MAC | nRCDRDMAC
bank | ACT | RDCP | nRCDRDCP
bank | ACT | RD RDA | nRCDRD
bank | ACT | WRCP | nRCDWRCP
bank | ACT | WR WRA | nRCDWR
bank | RD RDCP MAC | PRE | nRTP
bank | WR WRCP | PRE | nCWL + nBL + nWR
bank | ACT | ACT | nRC
bank | ACT | PRE | nRAS
bank | PRE | ACT | nRP
bank | PRE | PRE | nRP
bank | RDA | ACT | nRTP + nRP
bank | WRA | ACT | nCWL + nBL + nWR + nRP
bank | ACT | REFpb | nRC
bank | PRE | REFpb | nRP
bank | RDA | REFpb | nRTP + nRP
bank | WRA | REFpb | nCWL + nBL + nWR + nRP
bank | REFpb | ACT | nRFCpb
"""


#: ISR -> (final DRAM command or None when the ISR issues none, blocks the DMA until every channel answered,
#: runs in register mode); the fields each ISR takes are :data:`accel.traces.AIM_ISR_FIELDS`.
AIM_ISRS: dict[str, tuple[str | None, bool, bool]] = {
    "WR_SBK": ("WR", False, False),
    "WR_ABK": ("WRA16", False, False),
    "WR_GB": ("WRGB", False, True),
    "WR_BIAS": ("WRMAC16", False, True),
    "WR_AFLUT": (None, False, False),
    "RD_MAC": ("RDMAC16", True, True),
    "RD_AF": ("RDAF16", True, True),
    "RD_SBK": ("RD", False, False),
    "COPY_BKGB": ("RDCP", False, False),
    "COPY_GBBK": ("WRCP", False, False),
    "MAC_SBK": ("MAC", False, False),
    "MAC_ABK": ("MAC16", False, False),
    "AF": ("AF16", False, False),
    "EWMUL": ("EWMUL16", False, False),
    "EWADD": (None, False, False),
    "SYNC": (None, True, False),
    "EOC": (None, True, False),
}

#: Final command -> cycles from its issue to the request's completion (the simulator's read/write latencies).
AIM_LATENCY = {"WR": "nCWL + nBL", "WRGB": "nCWLGB + nBL", "WRMAC16": "nCWLREG + nBL", "RDMAC16": "nCLREG + nBL",
            "RDAF16": "nCLREG + nBL", "RD": "nCL + nBL", "RDCP": "1", "WRCP": "1", "MAC": "1", "MAC16": "1",
            "AF16": "1", "EWMUL16": "1", "WRA16": "nCWL + nBL + nRP"}

_TOKEN = re.compile(r"(?P<num>\d+)|(?P<name>[A-Za-z_]\w*)|(?P<op>[+-])")


def latency(expr: str, timing: Mapping[str, int]) -> int:
    """The value of a latency expression of :data:`AIM_RULES` (cycles): timing names and non-negative integers joined
    by ``+`` and ``-`` (``nCL + nBL + 3 - nCWL + nWPRE``), read by a parser that knows nothing else, so a rule can
    never run code.

    Raises
    ------
    ConfigError
        The expression is not of that form, or names a parameter ``timing`` does not have.
    """
    total, sign, want_term, pos = 0, 1, True, 0
    while True:
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
        if pos == len(expr):
            break
        m = _TOKEN.match(expr, pos)
        if m is None or (m.group("op") is not None) == want_term:
            raise ConfigError(f"latency {expr!r}: expected a {'timing name or integer' if want_term else '+ or -'} "
                              f"at character {pos}; a latency is timing names and integers joined by + and -")
        pos = m.end()
        if m.group("op") is not None:
            sign = 1 if m.group("op") == "+" else -1
        elif m.group("num") is not None:
            total += sign * int(m.group("num"))
        else:
            name = m.group("name")
            if name not in timing:
                raise ConfigError(f"latency {expr!r}: unknown timing parameter {name!r}; parameters are "
                                  f"{', '.join(sorted(timing))}")
            total += sign * int(timing[name])
        want_term = not want_term
    if want_term:
        raise ConfigError(f"latency {expr!r}: must end with a timing name or integer")
    return total


#: Timing variants of the simulator, by commit: rows of :data:`AIM_RULES` that the commit does not have, and rows it
#: has that :data:`AIM_RULES` does not (same format). 2eb1ee0 (CENT's pin) spaces any two single-bank PREs of a channel
#: by nRP (HEAD: of a bank), delays a PRE by nRTP / nCWL + nBL + nWR after a read / write anywhere in its bank group
#: (HEAD: in its bank), applies nRRDS between ACT16 and every activate (HEAD: only between ACT and ACT4; nRRDL, which
#: is larger, covers ACT16 at both) and has no nRC between ACT16 and the activates, nor between ACTs of one bank.
AIM_RULE_VARIANTS: dict[str, tuple[str, str]] = {
    "0f28a07": ("", ""),
    "2eb1ee0": ("""
ch | ACT ACT4 | ACT ACT4 | nRRDS
ch | ACT ACT4 ACT16 | ACT16 | nRC
ch | ACT16 | ACT ACT4 ACT16 | nRC
bg | RD RDCP MAC | PRE4 | nRTP
bg | WR WRCP | PRE4 | nCWL + nBL + nWR
bg | ACT ACT4 | ACT4 | nRC
bg | ACT4 | ACT ACT4 | nRC
bank | RD RDCP MAC | PRE | nRTP
bank | WR WRCP | PRE | nCWL + nBL + nWR
bank | ACT | ACT | nRC
bank | PRE | PRE | nRP
""", """
ch | ACT16 | ACT ACT4 ACT16 | nRRDS
ch | ACT ACT4 ACT16 | ACT | nRRDS
ch | PRE | PRE | nRP
bg | RD RDCP MAC | PRE PRE4 | nRTP
bg | WR WRCP | PRE PRE4 | nCWL + nBL + nWR
"""),
}

_LEVELS = {"ch": 0, "bg": 1, "bank": 2}


def _parse_rows(text: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
    out = []
    for line in text.strip().splitlines():
        parts = [x.strip() for x in line.split("|")]
        if len(parts) != 4 or parts[0] not in _LEVELS:
            raise ConfigError(f"timing rule {line!r}: must be 'level | preceding | following | latency' with level "
                              f"ch, bg or bank")
        lvl, pre, fol, expr = parts
        for name in pre.split() + fol.split():
            if name not in CMD:
                raise ConfigError(f"timing rule {line!r}: unknown command {name!r}; commands are "
                                  f"{', '.join(AIM_COMMANDS)}")
        out.append((lvl, tuple(pre.split()), tuple(fol.split()), " ".join(expr.split())))
    return out


def rule_rows(variant: str = "0f28a07") -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
    """The timing table of a simulator commit, as ``(level, preceding, following, latency)`` rows.

    Raises
    ------
    ConfigError
        Unknown variant, or a variant that drops a row the HEAD table does not have.
    """
    if variant not in AIM_RULE_VARIANTS:
        raise ConfigError(f"unknown AiM timing {variant!r}; timings are {', '.join(AIM_RULE_VARIANTS)} "
                          f"(0f28a07: the simulator's HEAD; 2eb1ee0: the commit CENT pins)")
    rows = _parse_rows(AIM_RULES)
    drop, add = (_parse_rows(x) if x.strip() else [] for x in AIM_RULE_VARIANTS[variant])
    for r in drop:
        if r not in rows:
            raise ConfigError(f"AiM timing {variant}: drops {' | '.join((r[0], ' '.join(r[1]), ' '.join(r[2]), r[3]))!r}, "
                              f"which the HEAD table does not have")
        rows.remove(r)
    return rows + add


class AimTiming:
    """The AiM timing table compiled for a device: timing values (cycles), per level (0 channel, 1 bank group, 2 bank)
    and preceding command the ``(following command, latency)`` pairs, and each final command's latency to the end of
    its request.

    Parameters
    ----------
    device:
        A device whose PIM timing gives the GDDR6 parameters (``aim-gddr6``); AiM-only ones come from
        :data:`AIM_EXTRA_TIMING`.
    variant:
        The simulator commit whose table to use (:data:`AIM_RULE_VARIANTS`).
    runtime_overrides:
        Apply what the simulator does to its timing at run time: its GDDR6 model replaces nRRDS, nRRDL and nFAW by
        its JEDEC table for x16 devices at 2000 MT/s (5, 6, 28 cycles; :data:`AIM_RUNTIME_TIMING`), whatever the
        preset says. Only single-bank activates feel it.
    """

    def __init__(self, device: DeviceConfig, variant: str = "0f28a07", runtime_overrides: bool = True) -> None:
        t = device.pim.timing
        vals = dict(nBL=t.nBL, nCL=t.nCL, nRCDRD=t.nRCD, nRCDRDMAC=t.nRCD_MAC, nRCDWR=t.nRCDWR, nRP=t.nRP,
                    nRAS=t.nRAS, nRC=t.nRC, nWR=t.nWR, nRTP=t.nRTP, nCWL=t.nCWL, nCCDS=t.nCCDS, nCCDL=t.nCCDL,
                    nRRDS=t.nRRDS, nRRDL=t.nRRDL, nFAW=t.nFAW, nRFC=t.nRFC, nREFI=t.nREFI, **AIM_EXTRA_TIMING)
        if runtime_overrides:
            vals.update(AIM_RUNTIME_TIMING)
        self.variant = variant
        self.values = vals
        self.rules: list[list[list[tuple[int, int]]]] = [[[] for _ in AIM_COMMANDS] for _ in range(3)]
        for lvl, pre, fol, expr in rule_rows(variant):
            lat = latency(expr, vals)
            for a in pre:
                for b in fol:
                    self.rules[_LEVELS[lvl]][CMD[a]].append((CMD[b], lat))
        self.latencies = [0] * len(AIM_COMMANDS)
        for name, expr in AIM_LATENCY.items():
            self.latencies[CMD[name]] = latency(expr, vals)
