"""Per-cycle model of the link (``Link``): a serialiser and a delay line.

Ports: in ``cmd__valid``, ``cmd__payload`` (a LINK command word, :mod:`accel.isa`); out ``cmd__ready`` (the serialiser
is free and takes a transfer this cycle), ``send`` (a beat left this cycle), ``arrive`` (the last beat of a transfer
arrives at the end of this cycle: the transfer has completed in the next one).

Cycle behaviour. A transfer taken in cycle ``s`` sends one beat of ``width_bits`` per cycle from ``s`` on, each copy
(one per channel for a destination ``all`` when the link does not broadcast) ``ceil(8 bytes / width_bits)`` beats;
the serialiser takes the next transfer in the cycle after its last beat. A beat passes a shift register of
``latency`` stages: a beat sent in cycle ``c`` arrives at the end of cycle ``c + latency``.
``accel.interfaces.link.transfer_beats`` / ``transfer_cycles`` are the closed form of this behaviour.
"""
from __future__ import annotations

from accel.config import DeviceConfig
from accel.errors import StimulusError
from accel.isa import TABLES, Endpoint, Family, LinkOp

__all__ = ["Link"]

_TABLE = TABLES[Family.LINK]


class Link:
    """Per-cycle model of the device's link: ``reset()``, ``step(inputs) -> outputs`` (module docstring).

    Members
    -------
    beats:
        Beats sent so far (each ``width_bits`` wide).
    """

    def __init__(self, device: DeviceConfig) -> None:
        self.cfg = device.link
        self.channels = device.pim.channels
        self.reset()

    def reset(self) -> None:
        self.cycle = 0
        self.left = 0                 # beats of the current copy still to send
        self.copies_left = 0          # further copies of the current transfer
        self.per_copy = 0
        self.delay: list[int] = [0] * self.cfg.latency   # 1: the last beat of a transfer is in this stage
        self.beats = 0

    def step(self, inputs: dict[str, int]) -> dict[str, int]:
        ready = self.left == 0
        if ready and inputs.get("cmd__valid", 0):
            v = _TABLE.decode(inputs["cmd__payload"])
            if v["family"] != Family.LINK:
                raise StimulusError(f"link at cycle {self.cycle}: word {inputs['cmd__payload']:#018x} is not a LINK "
                                    f"command")
            if v["op"] == LinkOp.XFER:
                self.per_copy = -(-8 * v["bytes"] // self.cfg.width_bits)
                copies = self.channels if v["dst"] == Endpoint.ALL and not self.cfg.broadcast else 1
            else:  # NOP: one idle beat slot
                self.per_copy, copies = 1, 1
            self.left, self.copies_left = self.per_copy, copies - 1
        sent = 0
        last = 0
        if self.left:
            sent = 1
            self.beats += 1
            self.left -= 1
            if self.left == 0:
                if self.copies_left:
                    self.copies_left -= 1
                    self.left = self.per_copy
                else:
                    last = 1
        # ---- clock edge: the delay line shifts
        if self.delay:
            arrive = self.delay[-1]
            self.delay = [last] + self.delay[:-1]
        else:
            arrive = last
        self.cycle += 1
        return {"cmd__ready": int(ready), "send": sent, "arrive": arrive}
