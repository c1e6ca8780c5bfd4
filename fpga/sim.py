"""The device top in Amaranth's simulator, behind a bit-level UART model, as a serial port.

:class:`SimulatedBoard` has the part of pyserial's ``Serial`` interface the host driver uses (``write``, ``read``,
``reset_input_buffer``, ``timeout``, ``close``), so :class:`accel.fpga.host.Link` talks to the simulated top exactly as
it talks to a board. The host side of the line is a UART model: it drives ``rx`` bit by bit (start bit, 8 data bits
LSB first, stop bit, ``divisor`` cycles each) and samples ``tx`` in the middle of each bit after a falling edge.
Time is simulated time: ``timeout`` is in simulated seconds at ``clk_hz``, and the simulator only runs inside
``read``.
"""
from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

from accel.config import DeviceConfig

from .protocol import Response, decode_response, encode_request
from .top import DeviceTop

__all__ = ["SimulatedBoard", "uart_levels", "uart_bytes", "session_stimulus", "responses_of"]


async def _ticks(ctx, n: int) -> None:
    # plain awaits: ``tick().repeat()`` is an async generator, which Python cannot close cleanly when the
    # never-ending UART processes are collected
    for _ in range(n):
        await ctx.tick()


class SimulatedBoard:
    """A :class:`~accel.fpga.top.DeviceTop` under simulation, used like a serial port.

    Parameters
    ----------
    device:
        The device description.
    divisor:
        Clock cycles per UART bit (small values keep the simulation short; the RTL is the same for any divisor).
    clk_hz:
        Clock frequency the simulated time is counted in (Hz).
    rx_timeout:
        The top's request timeout (cycles).
    vcd:
        Path of a VCD file to write, or ``None``.

    Attributes
    ----------
    timeout:
        Simulated seconds ``read`` waits at most (``None``: forever).
    host_stop_bit:
        Level the host model sends as stop bit (1; 0 provokes framing errors in tests).
    cycles:
        Clock cycles simulated so far.
    """

    def __init__(self, device: DeviceConfig, divisor: int = 4, clk_hz: float = 12e6, rx_timeout: int = 4096,
                 vcd: str | None = None) -> None:
        self.top = DeviceTop(device, divisor, rx_timeout=rx_timeout)
        self.divisor = divisor
        self.clk_hz = clk_hz
        self.baud = clk_hz / divisor
        self.timeout: float | None = 1e-3
        self.host_stop_bit = 1
        self._to_dev: deque[int] = deque()
        self._from_dev: deque[int] = deque()
        self._now = 0.0
        self._period = 1.0 / clk_hz
        self._sim = Simulator(self.top)
        self._sim.add_clock(self._period)
        self._sim.add_testbench(self._drive, background=True)
        self._sim.add_testbench(self._monitor, background=True)
        self._vcd = None
        if vcd is not None:
            self._vcd = self._sim.write_vcd(vcd)
            self._vcd.__enter__()
        self.cycles = 0

    # ---- the host's UART model
    async def _drive(self, ctx) -> None:
        rx, div = self.top.rx, self.divisor
        ctx.set(rx, 1)
        while True:
            if not self._to_dev:
                await _ticks(ctx, div)
                continue
            byte = self._to_dev.popleft()
            for bit in [0, *((byte >> i) & 1 for i in range(8)), self.host_stop_bit]:
                ctx.set(rx, bit)
                await _ticks(ctx, div)
            ctx.set(rx, 1)

    async def _monitor(self, ctx) -> None:
        tx, div = self.top.tx, self.divisor
        while True:
            await ctx.negedge(tx)
            await _ticks(ctx, div // 2)
            if ctx.get(tx):
                continue  # not a start bit
            byte = 0
            for i in range(8):
                await _ticks(ctx, div)
                byte |= ctx.get(tx) << i
            await _ticks(ctx, div)
            if ctx.get(tx):  # stop bit; a low one is a framing error and the byte is dropped, as a UART does
                self._from_dev.append(byte)

    # ---- the serial port interface
    def write(self, data: bytes) -> int:
        self._to_dev.extend(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Run the simulation until ``size`` bytes came back or ``timeout`` simulated seconds passed."""
        deadline = None if self.timeout is None else self._now + self.timeout
        step = 64 * self._period
        while len(self._from_dev) < size and (deadline is None or self._now < deadline):
            self._now += step
            self._sim.run_until(self._now)
            self.cycles += 64
        n = min(size, len(self._from_dev))
        return bytes(self._from_dev.popleft() for _ in range(n))

    def run_for(self, seconds: float) -> None:
        """Advance the simulation by ``seconds`` of simulated time."""
        cycles = max(1, round(seconds * self.clk_hz))
        self._now += cycles * self._period
        self._sim.run_until(self._now)
        self.cycles += cycles

    def reset_input_buffer(self) -> None:
        self._from_dev.clear()

    @property
    def in_waiting(self) -> int:
        return len(self._from_dev)

    def close(self) -> None:
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None

    def __enter__(self) -> "SimulatedBoard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------------------------
# Line-level sessions: a fixed rx waveform for the equivalence harness (Amaranth, cocotb+Icarus, cocotb+Verilator)


def uart_levels(data: bytes, divisor: int) -> list[int]:
    """The line levels of ``data`` sent by a UART, one per clock cycle: start bit, 8 data bits LSB first, stop bit,
    ``divisor`` cycles each."""
    out: list[int] = []
    for byte in data:
        for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
            out += [bit] * divisor
    return out


def uart_bytes(levels: list[int], divisor: int) -> list[int]:
    """Bytes a UART receives from per-cycle line levels (sampled mid-bit after each falling edge; a byte whose stop
    bit is low is dropped)."""
    out, c, n = [], 1, len(levels)
    while c < n:
        if levels[c - 1] and not levels[c]:
            mid = c + divisor // 2
            if mid + 9 * divisor >= n:
                break
            if not levels[mid]:
                byte = sum(levels[mid + (i + 1) * divisor] << i for i in range(8))
                if levels[mid + 9 * divisor]:
                    out.append(byte)
                c = mid + 9 * divisor
                continue
        c += 1
    return out


def session_stimulus(requests: list[tuple[int, list[int], int]], divisor: int, settle: int = 1500):
    """A :class:`~accel.interfaces.stimulus.Stimulus` that sends ``(kind, words, response_words)`` requests on
    ``rx``, each after the previous one's response had time to leave (``settle`` cycles for execution, then the
    response's bytes): the host's request/response discipline as a fixed waveform, so every simulator sees the same
    input."""
    from accel.interfaces.stimulus import Stimulus

    rx = [1] * (4 * divisor)
    for kind, words, resp_words in requests:
        rx += uart_levels(encode_request(kind, words), divisor)
        rx += [1] * (settle + 10 * divisor * (4 + 8 * resp_words) + 4 * divisor)
    return Stimulus(sources={}, source_valid={}, sink_ready={}, plain={"rx": rx}, cycles=len(rx))


def responses_of(trace: list[dict[str, int]], divisor: int) -> list[Response]:
    """The response frames the top sent in a recorded trace (its ``tx`` levels), decoded."""
    data = bytes(uart_bytes([o["tx"] for o in trace], divisor))
    out, i = [], 0
    while i + 3 <= len(data):
        end = i + 4 + 8 * data[i + 2]
        out.append(decode_response(data[i:end]))
        i = end
    return out
