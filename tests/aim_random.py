"""Random host-level AiM traces for the fast-vs-reference tests (seeded ``random``, never ``hash()``): legal traces
mixing every ISR, ``R/W MEM`` and channel masks, and CENT-shaped ones (our own small generator of the shapes CENT's
transformer blocks give: KV-cache writes round-robin over channels and banks with rows kept for several rounds,
GEMV blocks broadcast to every channel, reads of the cache, vector work, synchronisation)."""
from __future__ import annotations

import random


def _masks(nch: int) -> list[int]:
    full = (1 << 32) - (1 << (32 - nch))
    return [m for m in (full, full, full, 1 << 31, 0xffff0000 & full, 0xf0f0f0f0 & full, 0x80000001 & full,
                        3 << 30) if m] or [full]


def random_aim_trace(seed: int, nch: int = 32) -> str:
    """20-120 requests of every kind: bursts of W/R MEM (one to eight channels, random rows), MAC_ABK, WR_GB, RD_MAC,
    WR_BIAS, WR_ABK, SYNC, MAC_SBK, COPY_*, AF, RD_AF, EWMUL, RD/WR_SBK, CFR and GPR writes, EWADD."""
    rng = random.Random(seed)
    masks = _masks(nch)
    rows = rng.randint(1, 6)
    lines: list[str] = []
    n = rng.randint(20, 120)
    while len(lines) < n:
        r = rng.random()
        m = rng.choice(masks)
        if r < 0.18:
            kind = rng.choice("WWR")
            chans = rng.sample(range(nch), rng.randint(1, min(nch, 8)))
            banks = rng.sample(range(16), rng.randint(1, 4))
            row = rng.randint(0, rows)
            for j in range(rng.randint(1, 40)):
                if rng.random() < 0.2:
                    row = rng.randint(0, rows)
                lines.append(f"{kind} MEM {chans[j % len(chans)]} {banks[(j // len(chans)) % len(banks)]} {row}")
        elif r < 0.33:
            lines.append(f"AiM MAC_ABK {rng.randint(1, 64)} {m:#x} {rng.randint(0, rows)}")
        elif r < 0.43:
            lines.append(f"AiM WR_GB {rng.randint(1, 64)} 0 {m:#x}")
        elif r < 0.50:
            lines.append(f"AiM RD_MAC 0 {m:#x}")
        elif r < 0.55:
            lines.append(f"AiM WR_BIAS 0 {m:#x}")
        elif r < 0.60:
            lines.append(f"AiM WR_ABK 0 {1 << rng.randint(32 - nch, 31):#x} {rng.randint(0, rows)}")
        elif r < 0.64:
            lines.append("AiM SYNC")
        elif r < 0.68:
            lines.append(f"AiM MAC_SBK {rng.randint(1, 32)} {m:#x} {rng.randint(0, 15)} {rng.randint(0, rows)}")
        elif r < 0.72:
            lines.append(f"AiM COPY_BKGB {rng.randint(1, 16)} {m:#x} {rng.randint(0, 15)} {rng.randint(0, rows)}")
        elif r < 0.76:
            lines.append(f"AiM COPY_GBBK {rng.randint(1, 16)} {m:#x} {rng.randint(0, 15)} {rng.randint(0, rows)}")
        elif r < 0.79:
            lines.append(f"AiM AF {m:#x}")
        elif r < 0.82:
            lines.append(f"AiM RD_AF 0 {m:#x}")
        elif r < 0.86:
            lines.append(f"AiM EWMUL {rng.randint(1, 16)} {m:#x} {rng.randint(0, rows)}")
        elif r < 0.90:
            lines.append(f"AiM {rng.choice(['RD_SBK', 'WR_SBK'])} 0 {m:#x} {rng.randint(0, 15)} "
                         f"{rng.randint(0, rows)}")
        elif r < 0.94:
            lines.append(f"W CFR {rng.randint(0, 2)} {rng.randint(0, 1)}")
        elif r < 0.96:
            lines.append(f"W GPR {rng.randint(0, 7)}")
        else:
            lines.append("AiM EWADD 4 0 1")
    return "\n".join(lines + ["AiM EOC"]) + "\n"


def cent_like_trace(seed: int, nch: int = 32) -> str:
    """A few CENT-shaped phases: KV-cache traffic (W or R MEM to groups of channels in round-robin order, each channel
    a set of banks, the rows kept for several rounds and then moved on, sometimes to the row the GEMVs use, sometimes
    all to one channel so that its queue fills), GEMV blocks (WR_GB, WR_BIAS, MAC_ABK, RD_MAC to every channel),
    vector work (COPY_BKGB, COPY_GBBK, EWMUL), WR_ABK to single channels, SYNC."""
    rng = random.Random(1000 + seed)
    full = (1 << 32) - (1 << (32 - nch))
    gemv_row = rng.randint(0, 3)
    lines: list[str] = []
    for _ in range(rng.randint(3, 6)):
        r = rng.random()
        if r < 0.5:
            group = rng.sample(range(nch), min(nch, rng.choice([2, 4, 8, 12])))
            if rng.random() < 0.05:
                group = group[:1]               # everything to one channel: its queue fills, the DMA stalls
            stride = rng.choice([1, 1, 2, 3])          # channels c, c + stride, ... interleaved (CENT's 0, 10, 20)
            banks = rng.sample(range(16), rng.choice([1, 2, 4]))
            kind = rng.choice("WWWR")
            row = rng.randint(0, 6)
            keep = rng.randint(6, 24)                  # rounds a row is kept
            mixed = rng.random() < 0.1                 # some reads among the writes
            for rnd in range(rng.randint(12, 40)):
                if rnd and rnd % keep == 0:
                    row = gemv_row if rng.random() < 0.2 else row + 1
                for g in range(0, len(group), stride):
                    for b in banks:
                        for ch in group[g:g + stride]:
                            k = "R" if mixed and (b + rnd) % 3 == 0 else kind
                            lines.append(f"{k} MEM {ch} {b} {row}")
        elif r < 0.8:
            for _ in range(rng.randint(1, 4)):
                lines.append(f"AiM WR_GB {rng.choice([32, 64])} 0 {full:#x}")
                for _ in range(rng.randint(1, 3)):
                    lines.append(f"AiM WR_BIAS 0 {full:#x}")
                    lines.append(f"AiM MAC_ABK {rng.choice([16, 32, 64])} {full:#x} {gemv_row + rng.randint(0, 2)}")
                    lines.append(f"AiM RD_MAC 0 {full:#x}")
        elif r < 0.9:
            for _ in range(rng.randint(1, 4)):
                lines.append(f"AiM COPY_BKGB {rng.randint(4, 16)} {full:#x} {rng.randint(0, 15)} {gemv_row}")
                lines.append(f"AiM COPY_GBBK {rng.randint(4, 16)} {full:#x} {rng.randint(0, 15)} {gemv_row + 1}")
            lines.append(f"AiM EWMUL {rng.randint(4, 16)} {full:#x} {gemv_row}")
        else:
            for ch in rng.sample(range(nch), rng.randint(1, 3)):
                for row in range(rng.randint(1, 4)):
                    lines.append(f"AiM WR_ABK 0 {1 << (31 - ch):#x} {row}")
        if rng.random() < 0.3:
            lines.append("AiM SYNC")
    return "\n".join(lines + ["AiM EOC"]) + "\n"


def mem_heavy_trace(seed: int, nch: int = 8) -> str:
    """Mostly ``R/W MEM`` (the FR-FCFS path): long bursts to a few channels and banks with row hits, row misses and
    rows shared between banks of one bank group or spread over groups, reads among writes (write-to-read
    forwarding, the read/write watermarks), bursts of more than 32 requests to one channel (its queue fills and the
    DMA stalls), RD_SBK / WR_SBK, and now and then an all-bank request or a SYNC that meets the rows left open."""
    rng = random.Random(5000 + seed)
    full = (1 << 32) - (1 << (32 - nch))
    lines: list[str] = []
    for _ in range(rng.randint(4, 9)):
        chans = rng.sample(range(nch), rng.choice([1, 1, 2, 3, nch]))
        banks = rng.sample(range(16), rng.choice([1, 2, 3, 4, 8]))
        rows = [rng.randint(0, 5) for _ in banks]
        p_miss = rng.choice([0.0, 0.05, 0.3])
        p_read = rng.choice([0.0, 0.0, 0.1, 0.5, 1.0])
        for j in range(rng.randint(20, 160)):
            k = rng.randrange(len(banks))
            if rng.random() < p_miss:
                rows[k] = rng.randint(0, 5)
            ch = chans[j % len(chans)] if rng.random() < 0.8 else rng.choice(chans)
            if rng.random() < 0.03:
                lines.append(f"AiM {rng.choice(['RD_SBK', 'WR_SBK'])} 0 {1 << (31 - ch):#x} {banks[k]} {rows[k]}")
            else:
                lines.append(f"{'R' if rng.random() < p_read else 'W'} MEM {ch} {banks[k]} {rows[k]}")
        r = rng.random()
        if r < 0.25:
            lines.append(f"AiM MAC_ABK {rng.randint(1, 64)} {full:#x} {rng.randint(0, 5)}")
            lines.append(f"AiM RD_MAC 0 {full:#x}")
        elif r < 0.45:
            lines.append("AiM SYNC")
    return "\n".join(lines + ["AiM EOC"]) + "\n"
