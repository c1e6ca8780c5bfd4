"""Per-cycle models of the systolic GEMM RTL (:mod:`accel.rtl.gemm`): :class:`SystolicGemm` (output-stationary) and
:class:`SystolicGemmWS` (weight-stationary), with the same names, ports and cycle behaviour (``docs/attention.md``,
"GEMM in RTL"). Ports are packed by :mod:`accel.interfaces.gemm`; :mod:`accel.emulator.gemm_driver` packs operand
matrices into beats and runs whole GEMMs through these models.
"""
from __future__ import annotations

from accel.config import GemmConfig
from accel.interfaces.gemm import ab_layout, gemm_o_layout, w_layout, ws_a_layout, ws_o_layout
from accel.interfaces.packing import Packer
from accel.numerics import wrap

__all__ = ["SystolicGemm", "SystolicGemmWS"]


class SystolicGemm:
    """Per-cycle model of :class:`accel.rtl.gemm.SystolicGemm` (same ports; see :mod:`accel.interfaces.stimulus`).

    Cycle behaviour (the specification, ``docs/attention.md`` "GEMM in RTL")
    -------------------------------------------------------------------------
    ``ab.ready`` is high inside a fold, and before a fold's first beat while the fold's result bank is free (two
    banks, folds alternate between them). A beat taken in cycle ``c`` puts its row-``i`` A element and column-``j``
    B element into PE ``(i, j)`` in cycle ``c + i + j`` (skew registers at the edges, one register per PE hop); the PE
    multiplies and accumulates when both are valid (``i`` below the fold's used rows, ``j`` below its used columns),
    and ``busy`` is high in every cycle with a MAC. The fold's last operand writes the sum into the fold's bank and
    clears the accumulator; the MAC in PE ``(rows-1, cols-1)`` of the last beat finishes the fold. In the next cycle
    the finished bank is copied into the output register (oldest fold first, when the register is empty or being
    read), which frees the bank; ``o`` offers the register.

    With beats offered every cycle and ``o`` always ready, fold ``f`` of ``K`` beats enters at ``f*K`` and the
    count of :func:`accel.emulator.gemm_timing.gemm_timing` (``os``, ``native``) is exact whenever
    ``K >= rows + cols - 1`` (a bank is free again before the fold after next); shorter folds wait for a bank, and
    :func:`accel.emulator.gemm_timing.rtl_gemm_cycles` gives the count.
    """

    def __init__(self, config: GemmConfig) -> None:
        self.config = config
        self.acc_bits = config.acc_bits
        self._ab = Packer(ab_layout(config))
        self._o = Packer(gemm_o_layout(config))
        self.reset()

    def reset(self) -> None:
        R, C = self.config.rows, self.config.cols
        za, zb = (0, 0, 0, 0, 0), (0, 0, 0)            # (val, v, last, end, tag) and (val, v, end)
        self.askew = [[za] * i for i in range(R)]        # askew[i][s]: s + 1 cycles after the beat
        self.bskew = [[zb] * j for j in range(C)]
        self.a_reg = [[za] * C for _ in range(R)]        # a_reg[i][j]: operand in PE (i, j), j >= 1
        self.b_reg = [[zb] * C for _ in range(R)]        # b_reg[i][j]: operand in PE (i, j), i >= 1
        self.acc = [[0] * C for _ in range(R)]
        self.res = [[[0] * C for _ in range(R)] for _ in range(2)]
        self.par = self.infold = 0
        self.bank_free = [1, 1]
        self.done = [0, 0]
        self.out_ptr = 0
        self.fold_rows = self.fold_cols = 0
        self.bank_rows, self.bank_cols = [0, 0], [0, 0]
        self.err = 0
        self.o_valid = 0
        self.oreg = {"data": [[0] * C for _ in range(R)], "rows": 0, "cols": 0}
        self.cycle = 0
        self.macs = 0

    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        cfg = self.config
        R, C = cfg.rows, cfg.cols
        ready = int(self.infold or self.bank_free[self.par])
        fire = int(inputs["ab__valid"] and ready)
        pl = self._ab.unpack(inputs["ab__payload"])
        first = fire and not self.infold
        rows = self.fold_rows if self.infold else pl["rows"]
        cols = self.fold_cols if self.infold else pl["cols"]
        a_ent = [(pl["a"][i], int(fire and i < rows), pl["last"], int(pl["last"] and rows == i + 1), self.par)
                 for i in range(R)]
        b_ent = [(pl["b"][j], int(fire and j < cols), int(cols == j + 1)) for j in range(C)]
        a_in = [[a_ent[i] if i == 0 else self.askew[i][i - 1]] + self.a_reg[i][1:] for i in range(R)]
        b_col0 = [b_ent[j] if j == 0 else self.bskew[j][j - 1] for j in range(C)]
        b_in = [b_col0] + [self.b_reg[i] for i in range(1, R)]
        busy = 0
        final = [0, 0]
        for i in range(R):
            ai_row, bi_row, acc_row = a_in[i], b_in[i], self.acc[i]
            for j in range(C):
                av, a_v, a_last, a_end, tag = ai_row[j]
                bv, b_v, b_end = bi_row[j]
                if a_v and b_v:
                    busy = 1
                    self.macs += 1
                    s = wrap(acc_row[j] + av * bv, self.acc_bits)
                    if a_last:
                        acc_row[j] = 0
                        self.res[tag][i][j] = s
                    else:
                        acc_row[j] = s
                    if a_end and b_end:
                        final[tag] = 1
        outs = {"ab__ready": ready, "o__valid": self.o_valid, "o__payload": self._o.pack(self.oreg),
                "busy": busy, "error": self.err}
        # registers
        for i in range(R):
            self.askew[i] = [a_ent[i]] + self.askew[i][:-1] if i else []
            self.a_reg[i] = [None] + a_in[i][:-1]
        for j in range(C):
            self.bskew[j] = [b_ent[j]] + self.bskew[j][:-1] if j else []
        self.b_reg = [[None] * C] + b_in[:-1]
        done = [self.done[p] or final[p] for p in range(2)]
        free = list(self.bank_free)
        if self.done[self.out_ptr] and (not self.o_valid or inputs["o__ready"]):
            p = self.out_ptr
            # a bank being copied out is never written in the same cycle (its fold is finished, no new one started)
            self.oreg = {"data": [list(r) for r in self.res[p]], "rows": self.bank_rows[p], "cols": self.bank_cols[p]}
            self.o_valid = 1
            self.out_ptr ^= 1
            done[p], free[p] = 0, 1
        elif inputs["o__ready"]:
            self.o_valid = 0
        if first:
            free[self.par] = 0
            self.fold_rows, self.fold_cols = pl["rows"], pl["cols"]
            self.bank_rows[self.par], self.bank_cols[self.par] = pl["rows"], pl["cols"]
            if not (1 <= pl["rows"] <= R and 1 <= pl["cols"] <= C):
                self.err = 1
        if fire:
            if pl["last"]:
                self.infold, self.par = 0, self.par ^ 1
            else:
                self.infold = 1
        self.done, self.bank_free = done, free
        self.cycle += 1
        return outs


class SystolicGemmWS:
    """Per-cycle model of :class:`accel.rtl.gemm.SystolicGemmWS` (same ports; see :mod:`accel.interfaces.stimulus`).

    Cycle behaviour (the specification, ``docs/attention.md`` "GEMM in RTL")
    -------------------------------------------------------------------------
    Everything below is frozen in a cycle where a result waits on ``o`` (``o.valid`` and not ``o.ready``); then no
    beat is taken and no MAC happens. A fold's weight tile is ``rows`` ``w`` beats (its last row first); the beat
    taken in cycle ``x`` enters the top of column ``j``'s load chain in cycle ``x + j`` and shifts it down one row;
    the tile's ``rows``-th beat also latches the shifted chain into column ``j``'s shadow bank. That beat is taken only
    when the shadow bank is not waiting for its fold, and ``rows - 1`` cycles after the current fold's first input beat
    (the shadow bank must have become active in every row). A fold's first ``a`` beat is taken only after its tile's
    last ``w`` beat (in a later cycle). The ``a`` beat taken in cycle ``c`` is in PE ``(i, j)`` in cycle ``c + i + j``;
    the fold's first beat makes the shadow bank the PE's active weights as it passes (and uses it). Partial sums
    move down one row per cycle, a PE adds its product when its row and column are used by the fold, and row
    ``m``'s sums leave the bottom row, are deskewed to the last column, and reach ``o`` ``rows + cols`` cycles after
    its beat.

    With ``w`` and ``a`` offered every cycle and ``o`` always ready, fold ``f`` streams from ``rows + f * max(M,
    rows)`` and the first-``w``-beat-to-last-MAC count is :func:`accel.emulator.gemm_timing.gemm_timing` (``ws``,
    ``native``) for every shape.
    """

    def __init__(self, config: GemmConfig) -> None:
        self.config = config
        self.acc_bits = config.acc_bits
        self._a = Packer(ws_a_layout(config))
        self._w = Packer(w_layout(config))
        self._o = Packer(ws_o_layout(config))
        self.reset()

    def reset(self) -> None:
        R, C = self.config.rows, self.config.cols
        za, zw = (0, 0, 0, 0, 0, 0), (0, 0, 0)       # (val, p, v, first, last, cols) and (val, v, latch)
        self.askew = [[za] * i for i in range(R)]
        self.a_reg = [[za] * C for _ in range(R)]    # a_reg[i][j]: input in PE (i, j), j >= 1
        self.wskew = [[zw] * j for j in range(C)]
        self.chain = [[0] * C for _ in range(R)]
        self.shadow = [[0] * C for _ in range(R)]
        self.active = [[0] * C for _ in range(R)]
        self.p_out = [[0] * C for _ in range(R)]
        self.bot = (0, 0, 0)
        self.dsk = [[0] * (C - 1 - j) for j in range(C)]
        self.o_valid = 0
        self.oreg = {"data": [0] * C, "cols": 0, "last": 0}
        self.infold = self.w_count = self.pending = 0
        self.age = R
        self.fold_rows = self.fold_cols = 0
        self.err = 0
        self.cycle = 0
        self.macs = 0

    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        cfg = self.config
        R, C = cfg.rows, cfg.cols
        en = int(not self.o_valid or inputs["o__ready"])
        a_ready = int(en and (self.infold or self.pending))
        a_fire = int(bool(inputs["a__valid"]) and a_ready)
        a_first = int(a_fire and not self.infold)
        latch_ok = int((not self.pending and (R < 2 or self.age >= R - 2)) or (R == 1 and a_first))
        w_ready = int(en and (self.w_count != R - 1 or latch_ok))
        w_fire = int(bool(inputs["w__valid"]) and w_ready)
        pa = self._a.unpack(inputs["a__payload"])
        pw = self._w.unpack(inputs["w__payload"])
        rows = self.fold_rows if self.infold else pa["rows"]
        cols = self.fold_cols if self.infold else pa["cols"]
        a_ent = [(pa["a"][i], a_fire, int(a_fire and i < rows), a_first, pa["last"], cols) for i in range(R)]
        w_ent = [(pw[j], w_fire, int(w_fire and self.w_count == R - 1)) for j in range(C)]
        a_in = [[a_ent[i] if i == 0 else self.askew[i][i - 1]] + self.a_reg[i][1:] for i in range(R)]
        w_top = [w_ent[j] if j == 0 else self.wskew[j][j - 1] for j in range(C)]
        busy = 0
        p_new = [[0] * C for _ in range(R)]
        act_new = [list(r) for r in self.active]
        for i in range(R):
            for j in range(C):
                val, _, v, first, _, acols = a_in[i][j]
                wgt = self.shadow[i][j] if first else self.active[i][j]
                p_in = self.p_out[i - 1][j] if i else 0
                if v and j < acols:
                    busy = 1
                    if en:
                        self.macs += 1
                    p_new[i][j] = wrap(p_in + val * wgt, self.acc_bits)
                else:
                    p_new[i][j] = p_in
                if first:
                    act_new[i][j] = self.shadow[i][j]
        outs = {"w__ready": w_ready, "a__ready": a_ready, "o__valid": self.o_valid,
                "o__payload": self._o.pack(self.oreg), "busy": int(en and busy), "error": self.err}
        self.cycle += 1
        if not en:
            return outs
        # registers (the clock edge, enabled)
        row = [self.dsk[j][-1] if self.dsk[j] else self.p_out[R - 1][j] for j in range(C)]
        if self.bot[0]:
            self.oreg = {"data": row, "cols": self.bot[2], "last": self.bot[1]}
        self.o_valid = self.bot[0]
        self.dsk = [([self.p_out[R - 1][j]] + self.dsk[j])[:C - 1 - j] for j in range(C)]
        self.bot = (a_in[R - 1][C - 1][1], a_in[R - 1][C - 1][4], a_in[R - 1][C - 1][5])
        for j in range(C):
            val, v, latch = w_top[j]
            if v:
                shifted = [val] + [self.chain[i - 1][j] for i in range(1, R)]
                for i in range(R):
                    self.chain[i][j] = shifted[i]
                    if latch:
                        self.shadow[i][j] = shifted[i]
        self.active = act_new
        self.p_out = p_new
        for i in range(R):
            self.askew[i] = [a_ent[i]] + self.askew[i][:-1] if i else []
            self.a_reg[i] = [None] + a_in[i][:-1]
        for j in range(C):
            self.wskew[j] = [w_ent[j]] + self.wskew[j][:-1] if j else []
        if a_first:
            self.fold_rows, self.fold_cols, self.age = pa["rows"], pa["cols"], 0
            if not (1 <= pa["rows"] <= R and 1 <= pa["cols"] <= C):
                self.err = 1
        elif self.age < R:
            self.age += 1
        if a_fire:
            self.infold = int(not pa["last"])
        if a_first:
            self.pending = 0
        if w_fire:
            if self.w_count == R - 1:
                self.pending = 1
            self.w_count = 0 if self.w_count == R - 1 else self.w_count + 1
        return outs
