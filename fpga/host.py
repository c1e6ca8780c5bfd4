"""Host driver for the UART link: frames requests, reads responses, turns faults into clear errors.

:class:`Link` works over anything with pyserial's ``write``/``read``/``reset_input_buffer``/``timeout``: a
``serial.Serial`` (:func:`open_serial`) or the simulated board (:class:`accel.fpga.sim.SimulatedBoard`).
"""
from __future__ import annotations

from typing import Any, Sequence

from accel.config import BITSERIAL_DATATYPES
from accel.errors import AccelError
from accel.interfaces.pim import PimRule

from .protocol import (ID_MAGIC, Kind, LinkError, LinkTimeout, Response, Status, decode_response, encode_request,
                       error_for_status, id_words)

__all__ = ["Link", "open_serial", "DEFAULT_BAUD", "DeviceInfo", "run_steps", "run_program_file", "identify_preset"]

#: The rate ``accel fpga build`` builds for unless told otherwise (bits per second).
DEFAULT_BAUD = 115200


def open_serial(port: str, baud: int = DEFAULT_BAUD) -> Any:
    """Open a serial port with pyserial, with a clear error if it is missing or the port cannot be opened."""
    try:
        import serial
    except ImportError:
        raise LinkError("pyserial is not installed; install it with `pip install pyserial` "
                        "(or `pip install accel[fpga]`)") from None
    try:
        return serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=1.0)
    except (serial.SerialException, ValueError, OSError) as e:
        raise LinkError(f"cannot open serial port {port!r} at {baud} baud ({e}); check the device name "
                        f"(e.g. /dev/ttyUSB1 for an iCEBreaker, /dev/ttyUSB0 for a ULX3S) and its permissions") \
            from None


class DeviceInfo(dict):
    """What a board reports for ``STATUS``: its status register and the PIM channel it was built with."""


class Link:
    """Request/response over a serial port.

    Parameters
    ----------
    port:
        An open port (pyserial ``Serial`` or :class:`~accel.fpga.sim.SimulatedBoard`).
    baud:
        The line rate (bits per second), to size timeouts.
    latency_s:
        Seconds allowed on top of the bytes' transfer time before a response counts as lost (USB adapters add
        milliseconds; the device itself answers within microseconds).
    """

    def __init__(self, port: Any, baud: float, latency_s: float = 0.5) -> None:
        self.port = port
        self.baud = float(baud)
        self.latency_s = latency_s

    def _transfer_s(self, nbytes: int) -> float:
        return nbytes * 10 / self.baud  # 10 bits per byte on the line

    def _read(self, n: int, what: str, timeout: float) -> bytes:
        self.port.timeout = timeout
        got = self.port.read(n)
        if len(got) < n:
            raise LinkTimeout(f"{what}: got {len(got)} of {n} bytes within {timeout:.3g} s; check that the board "
                              f"is programmed with an accel bitstream, the port is its UART and the baud rate "
                              f"({self.baud:g}) is the one in its build report")
        return got

    def request(self, kind: Kind | int, words: Sequence[int] = (), what: str = "request") -> Response:
        """Send one request and return its response; a non-zero status raises the matching error."""
        frame = encode_request(kind, words)
        self.port.reset_input_buffer()
        self.port.write(frame)
        head = self._read(3, f"{what}: response header", self.latency_s + self._transfer_s(len(frame) + 3))
        n = head[2]
        rest = self._read(8 * n + 1, f"{what}: response body", self.latency_s + self._transfer_s(8 * n + 1))
        resp = decode_response(head + rest)
        if resp.status != Status.OK:
            raise error_for_status(resp.status, what)
        return resp

    def echo(self, words: Sequence[int]) -> tuple[int, ...]:
        """Send words and get them back (link check)."""
        return self.request(Kind.ECHO, words, "ECHO").words

    def status(self) -> DeviceInfo:
        """The status register and the identification of the bitstream."""
        status, id0, mask = self.request(Kind.STATUS, (), "STATUS").words
        if id0 >> 48 != ID_MAGIC:
            raise LinkError(f"STATUS: identification word {id0:#018x} lacks the magic {ID_MAGIC:#06x}; the board "
                            f"does not run an accel bitstream of this version")
        from .protocol import PIM_ERROR

        if status & 0xC0 == PIM_ERROR:
            name = f"PIM_ERROR|{PimRule(status & 0x3F).name}" if status & 0x3F in set(PimRule) else "PIM_ERROR|?"
        else:
            name = Status(status).name if status in set(Status) else "?"
        info = DeviceInfo(
            status=status, status_name=name, id=(id0, mask),
            banks=(id0 >> 40) & 0xFF, bank_groups=(id0 >> 32) & 0xFF, rows=(id0 >> 16) & 0xFFFF,
            columns=(id0 >> 8) & 0xFF, mac_lanes=id0 & 0xFF, acc_bits=(mask >> 56) & 0xFF,
            scale_bits=(mask >> 48) & 0xFF, column_bits=(mask >> 40) & 0xFF,
            datatypes=[d for i, d in enumerate(BITSERIAL_DATATYPES) if mask >> i & 1],
        )
        return info

    def clear(self) -> None:
        """Clear the status register."""
        self.request(Kind.CLEAR, (), "CLEAR")

    def execute(self, command: int, data: Sequence[int] = (), what: str | None = None) -> tuple[int, ...]:
        """Execute one command word of :mod:`accel.isa` with its data words; returns the result words."""
        if what is None:
            from accel.isa import decode

            try:
                what = str(decode(command))
            except AccelError:
                what = f"command {command:#018x}"
        return self.request(Kind.EXEC, [command, *data], what).words


def identify_preset(info: DeviceInfo) -> str | None:
    """The preset whose identification words the board reports (``None`` if no preset matches)."""
    from accel.config import load_preset, preset_names

    for name in preset_names():
        dev = load_preset(name)
        if dev.pim is not None and dev.pim.channels == 1 and id_words(dev) == tuple(info["id"]):
            return name
    return None


def run_steps(link: Link, device: Any, steps: Any) -> list[int]:
    """Execute program steps on the board; returns every read beat in order."""
    from accel.isa import decode

    from .program import beats_of
    from .protocol import beat_words

    per = beat_words(device)
    beats: list[int] = []
    for i, step in enumerate(steps):
        try:
            what = f"step {i} ({decode(step.word)})"
        except AccelError:
            what = f"step {i} (command {step.word:#018x})"
        beats += beats_of(link.execute(step.word, step.data, what), per)
    return beats


def run_program_file(port: str, program: str, baud: int = DEFAULT_BAUD, timeout: float = 0.5,
                     preset: str | None = None, link: Link | None = None) -> dict[str, Any]:
    """``accel fpga run``: identify the board, run a program file on it, and check its read beats against the
    emulator's functional engine for the same preset.

    Returns a report: the preset, the steps, the beats, and whether they equal the emulator's; a mismatch raises
    :class:`~accel.errors.AccelError` naming the first differing beat (the report is attached as ``.report``).
    """
    from accel.config import load_preset

    from .program import expected_beats, read_program

    if link is None:
        link = Link(open_serial(port, baud), baud, latency_s=timeout)
    info = link.status()
    found = identify_preset(info)
    if preset is None:
        if found is None:
            raise AccelError(f"the board on {port} reports a channel of {info['banks']} banks x {info['rows']} rows "
                             f"x {info['columns']} columns that matches no preset; pass --device")
        preset = found
    elif found is not None and found != preset:
        raise AccelError(f"the board on {port} was built for preset {found!r}, not {preset!r}; drop --device or "
                         f"rebuild the bitstream")
    device = load_preset(preset)
    steps = read_program(program, device)
    expect = expected_beats(device, steps)  # before the board runs: a program the emulator refuses never runs
    link.clear()
    beats = run_steps(link, device, steps)
    report = dict(port=port, preset=preset, program=str(program), steps=len(steps), beats=[hex(b) for b in beats],
                  emulator_equal=beats == expect, status=link.status()["status"])
    if beats != expect:
        i = next((j for j, (a, b) in enumerate(zip(beats, expect)) if a != b), min(len(beats), len(expect)))
        err = AccelError(f"read beat {i} differs from the emulator's: board "
                         f"{hex(beats[i]) if i < len(beats) else 'none'}, emulator "
                         f"{hex(expect[i]) if i < len(expect) else 'none'} ({len(beats)} beats vs {len(expect)})")
        err.report = report
        raise err
    return report
