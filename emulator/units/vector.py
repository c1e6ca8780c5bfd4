"""Per-cycle model of the vector unit (``VectorUnit``): an in-order SIMD pipeline over the unit's buffer.

Ports: in ``cmd__valid``, ``cmd__payload`` (a VECTOR command word, :mod:`accel.isa`); out ``cmd__ready`` (the unit
is idle and takes a command this cycle), ``beat`` (a beat issued this cycle), ``busy`` and ``done`` (the op's last
result is written at the end of this cycle, so it has completed in the next one).

Cycle behaviour. An op is taken in a cycle in which the unit is idle and issues its first beat in that cycle. Each
pass of the op (:func:`accel.interfaces.vector.passes`) issues one beat per cycle into a shift register of
``depth - 1`` stages: a beat issued in cycle ``c`` leaves it, its result written to the buffer, at the end of cycle
``c + depth - 1``. When the last beat of a pass has left, the scalar stage (if the pass has one) counts its cycles,
then the next pass issues. The unit is idle again in the cycle after the last result of the last pass was written.
Every beat reads its operands' buffer lines at issue and writes its result line when it leaves (a reduction writes
its row's lines with the row's last beats); a line outside the buffer is an error (:class:`StimulusError`).
``accel.interfaces.vector.vector_cycles`` is the closed form of this behaviour; tests prove them equal.
"""
from __future__ import annotations

from accel.config import VectorConfig
from accel.errors import StimulusError
from accel.interfaces.vector import Pass, beats_per_row, passes
from accel.isa import TABLES, Family, VectorOp

__all__ = ["VectorUnit"]

_TABLE = TABLES[Family.VECTOR]


class VectorUnit:
    """Per-cycle model of the vector unit: ``reset()``, ``step(inputs) -> outputs`` (module docstring).

    Members
    -------
    reads, writes:
        Buffer lines read and written so far.
    """

    def __init__(self, config: VectorConfig) -> None:
        self.cfg = config
        self.reset()

    def reset(self) -> None:
        self.cycle = 0
        self.op: dict[str, int] | None = None
        self.passes: tuple[Pass, ...] = ()
        self.p = 0               # current pass
        self.issued = 0          # beats of the pass issued
        self.retired = 0         # beats of the pass whose result left the pipeline
        self.scalar_left = 0     # cycles of the scalar stage still to go
        self.pipe: list[int | None] = []   # beat index in each stage (None: bubble)
        self.reads = 0
        self.writes = 0

    # ---------------------------------------------------------------------------------------------------------------
    def _line(self, what: str, line: int) -> None:
        if not 0 <= line < self.cfg.buffer_lines:
            op = VectorOp(self.op["op"]).name
            raise StimulusError(f"vector {op} at cycle {self.cycle}: {what} line {line} is outside the buffer "
                                f"(lines 0 .. {self.cfg.buffer_lines - 1})")

    def _issue(self, j: int) -> None:
        """Beat ``j`` of the current pass reads its operands."""
        o = self.op
        op = o["op"]
        R = beats_per_row(o["length"], self.cfg)
        if op == VectorOp.NOP:
            return
        self._line("src", o["src"] + j)
        self.reads += 1
        extra = self.passes[self.p].reads - 1
        if extra:
            if op in (VectorOp.ADD, VectorOp.MUL, VectorOp.ROPE):
                lines = [o["src2"] + j]
            else:  # norms: gamma (and beta) of the beat's position in its row
                lines = [o["src2"] + k * R + j % R for k in range(extra)]
            for ln in lines:
                self._line("src2", ln)
                self.reads += 1

    def _retire(self, j: int) -> None:
        """Beat ``j`` of the current pass leaves the pipeline and writes its result, if the pass writes."""
        o = self.op
        op = o["op"]
        last = self.p == len(self.passes) - 1
        R = beats_per_row(o["length"], self.cfg)
        n = self.passes[self.p].beats
        if op == VectorOp.NOP or not last:
            return
        if op == VectorOp.REDUCE:
            if j >= n - R:  # the accumulated row leaves with the last row's beats
                self._line("dst", o["dst"] + j - (n - R))
                self.writes += 1
        elif op == VectorOp.TOPK:
            lines = -(-2 * max(1, o["count"]) * max(1, o["src2"]) // self.cfg.lanes)
            if j < lines:
                self._line("dst", o["dst"] + j)
                self.writes += 1
        else:
            self._line("dst", o["dst"] + j)
            self.writes += 1

    def _start_pass(self) -> None:
        self.issued = self.retired = 0
        self.pipe = [None] * (self.passes[self.p].depth - 1)

    # ---------------------------------------------------------------------------------------------------------------
    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        ready = self.op is None
        if ready and inputs.get("cmd__valid", 0):
            v = _TABLE.decode(inputs["cmd__payload"])
            if v["family"] != Family.VECTOR:
                raise StimulusError(f"vector unit at cycle {self.cycle}: word {inputs['cmd__payload']:#018x} is not "
                                    f"a VECTOR command")
            self.op = v
            self.passes = passes(v["op"], v["length"], v["count"], v["src2"], self.cfg)
            self.p = 0
            self._start_pass()
        beat = None
        done = 0
        if self.op is not None and self.scalar_left == 0 and self.issued < self.passes[self.p].beats:
            beat = self.issued
            self._issue(beat)
            self.issued += 1
        busy = int(self.op is not None)
        # ---- clock edge
        if self.op is not None:
            if self.scalar_left:
                self.scalar_left -= 1
                if self.scalar_left == 0:
                    self.p += 1
                    self._start_pass()
            else:
                if self.pipe:
                    out = self.pipe[-1]
                    self.pipe = [beat] + self.pipe[:-1]
                else:
                    out = beat
                if out is not None:
                    self._retire(out)
                    self.retired += 1
                ps = self.passes[self.p]
                if self.retired == ps.beats:
                    if ps.scalar:
                        self.scalar_left = ps.scalar
                    elif self.p + 1 < len(self.passes):
                        self.p += 1
                        self._start_pass()
                    else:
                        self.op = None
                        done = 1
        self.cycle += 1
        return {"cmd__ready": int(ready), "beat": int(beat is not None), "busy": busy, "done": done}
