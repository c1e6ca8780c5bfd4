"""A UART (8 data bits, no parity, 1 stop bit) in Amaranth, with the bit time fixed at build time.

The bit time is ``divisor`` clock cycles, ``divisor = round(clk_hz / baud)`` (:func:`baud_divisor`). The receiver
samples each bit in its middle (half a bit after the falling edge of the start bit, then every ``divisor`` cycles) and
hands complete bytes to a one-byte stream register; the transmitter shifts out start bit, data bits LSB first and the
stop bit. Both are plain ``wiring.Component``\\ s with ``lib.stream`` byte interfaces, so the frame logic in
``fpga/top.py`` never sees bit timing.
"""
from __future__ import annotations

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError

__all__ = ["baud_divisor", "UARTRx", "UARTTx", "MIN_DIVISOR"]

#: The receiver needs a middle of the bit to sample in, away from the synchroniser's two cycles of latency.
MIN_DIVISOR = 4


def baud_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per UART bit for ``baud`` at ``clk_hz``; refuses a rate the clock cannot hit within 2 %.

    A UART frame is 10 bits; the receiver resynchronises on every start bit, so a rate error below about 2 %
    (a fifth of a bit over the frame) is safe on both sides.
    """
    if baud <= 0:
        raise ConfigError(f"baud = {baud!r}: must be a positive number of bits per second")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ConfigError(f"baud = {baud}: a {clk_hz / 1e6:g} MHz clock gives {clk_hz / baud:.2f} cycles per bit, "
                          f"the UART needs at least {MIN_DIVISOR}; choose at most {int(clk_hz // MIN_DIVISOR)} baud")
    error = abs(clk_hz / divisor - baud) / baud
    if error > 0.02:
        raise ConfigError(f"baud = {baud}: a {clk_hz / 1e6:g} MHz clock gives {clk_hz / divisor:.0f} baud "
                          f"({error:.1%} off, more than 2 %); choose a rate near clk / n, e.g. "
                          f"{round(clk_hz / divisor)}")
    return divisor


def _check_divisor(divisor: int) -> None:
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"Divisor must be an integer of at least {MIN_DIVISOR} clock cycles per bit, "
                         f"not {divisor!r}")


class UARTRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor:
        Clock cycles per bit.

    Members
    -------
    rx: In(1, init=1)
        The serial line (idle high); synchronised inside.
    data: Out(stream.Signature(8))
        Received bytes. A byte waits in the output register until it is taken.
    overrun: Out(1)
        One-cycle pulse: a byte completed while the previous one had not been taken; the new byte is dropped.
    frame_error: Out(1)
        One-cycle pulse: a byte's stop bit was low; the byte is dropped.
    """

    def __init__(self, divisor: int) -> None:
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "overrun": Out(1),
            "frame_error": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        div = self.divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(div))
        bit = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    # a start bit still low in its middle; a shorter low pulse was a glitch
                    with m.If(~rx):
                        m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(div - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    # back to IDLE in the middle of the stop bit, so the next start edge is never missed
                    m.next = "IDLE"
                    with m.If(~rx):
                        m.d.comb += self.frame_error.eq(1)
                    with m.Elif(self.data.valid & ~self.data.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
        return m


class UARTTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor:
        Clock cycles per bit.

    Members
    -------
    data: In(stream.Signature(8))
        Bytes to send; a byte is taken when the line is idle.
    tx: Out(1, init=1)
        The serial line (idle high).
    """

    def __init__(self, divisor: int) -> None:
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        div = self.divisor
        timer = Signal(range(div))
        bits_left = Signal(range(11))
        shreg = Signal(10, init=0x3FF)  # stop bit, data LSB first, start bit: shifted out from bit 0

        m.d.comb += [self.tx.eq(shreg[0]), self.data.ready.eq(bits_left == 0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [shreg.eq(Cat(C(0, 1), self.data.payload, C(1, 1))), bits_left.eq(10),
                         timer.eq(div - 1)]
        with m.Elif(bits_left != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], C(1, 1))), bits_left.eq(bits_left - 1), timer.eq(div - 1)]
        return m
