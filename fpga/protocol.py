"""The framed protocol of the UART host link: frames, checksum and status codes.

Host to device (a *request*)::

    0xA5  kind  nwords  word_0 ... word_{nwords-1}  crc

Device to host (a *response*, one per request)::

    0x5A  status  nwords  word_0 ... word_{nwords-1}  crc

Words are 64 bits, little-endian (8 bytes each); ``nwords`` is one byte (0..255); ``crc`` is CRC-8 (polynomial
``x^8 + x^2 + x + 1``, 0x07, initial value 0, no reflection) over every byte after the sync byte. The link is strictly
request/response: the host sends the next request only after the response to the previous one.

Request kinds:

* ``EXEC``: ``word_0`` is a ``PIM`` command word of :mod:`accel.isa`; the rest are its data words (one column per
  ``WR``/``WRGB`` element). The response carries the command's read beats (``RD``, ``RDMAC``), :func:`beat_words`
  words each.
* ``ECHO``: the response carries the request's words unchanged (link check).
* ``STATUS``: the response carries the status register (the first error since the last ``CLEAR``, 0 if none) and
  the two identification words (:func:`id_words`: what the board was built for).
* ``CLEAR``: clears the status register and resets the PIM channel's state (bank contents are kept).

A response's ``status`` is the outcome of that request (:class:`Status`); a device that refused a request carries
no words. The host driver (:mod:`accel.fpga.host`) turns a non-zero status into the same error class the emulator
raises for the same fault.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Sequence

from accel.config import BITSERIAL_DATATYPES, DeviceConfig
from accel.errors import AccelError, EncodingError
from accel.interfaces.pim import PimIllegalError, PimRule, rdata_bits

__all__ = [
    "REQ_SYNC", "RESP_SYNC", "MAX_WORDS", "Kind", "Status", "crc8", "encode_request", "encode_response",
    "decode_response", "decode_request", "id_words", "ID_MAGIC", "STATUS_MESSAGES", "error_for_status",
    "LinkError", "LinkTimeout", "ChecksumError", "DeviceError", "Response", "PIM_ERROR", "beat_words",
]

REQ_SYNC = 0xA5
RESP_SYNC = 0x5A
#: Most words in one frame (``nwords`` is one byte).
MAX_WORDS = 255
#: High 16 bits of the identification word.
ID_MAGIC = 0xACCE
#: A status ``PIM_ERROR | rule``: the PIM channel refused a command; ``rule`` is the emulator's
#: :data:`accel.interfaces.pim.PimRule` code.
PIM_ERROR = 0x40


def beat_words(device: DeviceConfig) -> int:
    """64-bit words per read beat in a response: a column or one bank's MAC register (``mac_registers`` x 32 bits:
    one accumulator per bit-serial unit, or per int8 lane)."""
    return -(-rdata_bits(device.bank) // 64)


class Kind(enum.IntEnum):
    EXEC = 1
    ECHO = 2
    STATUS = 3
    CLEAR = 4


class Status(enum.IntEnum):
    """Status codes of a response and of the status register."""

    OK = 0x00
    BAD_CHECKSUM = 0x01      #: the request's CRC did not match; nothing was executed
    BAD_KIND = 0x02          #: unknown request kind
    BAD_LENGTH = 0x03        #: an EXEC request without a command word
    FRAMING = 0x04           #: a UART byte had a low stop bit (wrong baud rate or noise)
    OVERRUN = 0x05           #: a UART byte arrived before the previous one was taken
    RX_TIMEOUT = 0x06        #: a request stopped arriving half-way; the device dropped it
    UNSUPPORTED = 0x10       #: this top does not execute that command family
    BAD_OPERANDS = 0x11      #: data words do not match the command's elements, or its results exceed a frame
    EXEC_TIMEOUT = 0x12      #: the command made no progress for WATCHDOG cycles (a device fault)


#: Status -> (what happened, what to do).
STATUS_MESSAGES: dict[int, tuple[str, str]] = {
    Status.BAD_CHECKSUM: ("the device received a request whose CRC-8 did not match",
                          "check the cable and the baud rate; resend"),
    Status.BAD_KIND: ("the device does not know this request kind", "use a host driver of the same version"),
    Status.BAD_LENGTH: ("an EXEC request carried no command word", "send at least the command word"),
    Status.FRAMING: ("the device saw a UART byte with a low stop bit",
                     "use the baud rate the bitstream was built for (see its build report)"),
    Status.OVERRUN: ("the device dropped a UART byte (overrun)", "lower the baud rate or rebuild"),
    Status.RX_TIMEOUT: ("a request stopped arriving half-way and was dropped", "resend the whole request"),
    Status.UNSUPPORTED: ("this bitstream executes PIM commands only", "send PIM command words (accel/isa.py)"),
    Status.BAD_OPERANDS: ("the command's data words do not match its elements (one per WR/WRGB element, none "
                          "otherwise), or its read beats would not fit one response frame",
                          "send one data word per WR/WRGB element; split long RD/RDMAC runs"),
    Status.EXEC_TIMEOUT: ("the command made no progress and was abandoned (a device fault)",
                          "send CLEAR and report the program that caused it"),
}


class LinkError(AccelError):
    """The host link failed (serial port, timeout, checksum, protocol)."""


class LinkTimeout(LinkError):
    """No complete response arrived in time."""


class ChecksumError(LinkError):
    """A response arrived with a CRC-8 that does not match its bytes."""


class DeviceError(LinkError):
    """The device answered with a non-zero status that is a link fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_for_status(status: int, context: str) -> AccelError:
    """The error a non-zero ``status`` stands for, of the class the emulator raises for the same fault."""
    try:
        what, fix = STATUS_MESSAGES[Status(status)]
        name = Status(status).name
    except ValueError:
        what, fix, name = "the device reported an unknown status", "use a host driver of the same version", "?"
    if status & 0xC0 == PIM_ERROR:
        code = status & 0x3F
        try:
            rule = PimRule(code)
        except ValueError:
            return DeviceError(status, f"{context}: device status {status:#04x}: PIM rule {code} unknown to this "
                                       f"host driver; use a host driver of the same version")
        doc = {
            PimRule.CLOSED: "the command needs an open row in a target bank (ACT it first)",
            PimRule.OPEN: "the target bank already has an open row (PRE it first; REF needs all banks closed)",
            PimRule.ADDRESS: "a bank, row, column or register is out of range, or the op has no all-bank form",
            PimRule.CFR_VALUE: "the CFR value is not allowed (a datatype not built into the lanes, or a scale wider "
                               "than scale_bits)",
            PimRule.OPCODE: "the command word is not a PIM op",
        }.get(rule, "a timing rule was broken (the top runs in wait mode; this is a device fault)")
        return PimIllegalError(f"{context}: the PIM channel refused it with rule {rule.name} ({code}): {doc}; "
                               f"the channel's state was reset (bank contents kept)", rule, None, -1)
    message = f"{context}: device status {status:#04x} ({name}): {what}; {fix}"
    if status in (Status.UNSUPPORTED, Status.BAD_OPERANDS):
        return EncodingError(message)
    return DeviceError(status, message)


def crc8(data: bytes | Sequence[int], crc: int = 0) -> int:
    """CRC-8, polynomial 0x07, MSB first, initial value ``crc``."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _check_words(words: Sequence[int]) -> None:
    if len(words) > MAX_WORDS:
        raise EncodingError(f"a frame carries at most {MAX_WORDS} words, not {len(words)}; split the command "
                            f"(its count/outputs fields) into several")
    for w in words:
        if not 0 <= int(w) < 1 << 64:
            raise EncodingError(f"word {int(w):#x} is not a 64-bit unsigned integer")


def _frame(sync: int, head: int, words: Sequence[int]) -> bytes:
    _check_words(words)
    body = bytes([head, len(words)]) + b"".join(int(w).to_bytes(8, "little") for w in words)
    return bytes([sync]) + body + bytes([crc8(body)])


def encode_request(kind: Kind | int, words: Sequence[int] = ()) -> bytes:
    """The bytes of a request frame."""
    return _frame(REQ_SYNC, int(kind), words)


def encode_response(status: Status | int, words: Sequence[int] = ()) -> bytes:
    """The bytes of a response frame (what the device sends; used by tests and models)."""
    return _frame(RESP_SYNC, int(status), words)


@dataclass(frozen=True)
class Response:
    status: int
    words: tuple[int, ...]


def _decode(data: bytes, sync: int, what: str) -> tuple[int, tuple[int, ...]]:
    if len(data) < 4:
        raise LinkError(f"{what} of {len(data)} bytes is too short; a frame has at least 4")
    if data[0] != sync:
        raise LinkError(f"{what} starts with {data[0]:#04x}, not the sync byte {sync:#04x}; check that the port "
                        f"is the board's UART and the baud rate matches the build")
    n = data[2]
    if len(data) != 4 + 8 * n:
        raise LinkError(f"{what} announces {n} words ({4 + 8 * n} bytes) but has {len(data)} bytes")
    body = data[1:-1]
    if crc8(body) != data[-1]:
        raise ChecksumError(f"{what}: CRC-8 is {data[-1]:#04x} but its bytes give {crc8(body):#04x}; the link "
                            f"corrupted it (check the cable and the baud rate) — resend")
    words = tuple(int.from_bytes(data[3 + 8 * i: 11 + 8 * i], "little") for i in range(n))
    return data[1], words


def decode_response(data: bytes) -> Response:
    """Parse one complete response frame; raises :class:`LinkError` / :class:`ChecksumError`."""
    status, words = _decode(bytes(data), RESP_SYNC, "response")
    return Response(status, words)


def decode_request(data: bytes) -> tuple[int, tuple[int, ...]]:
    """Parse one complete request frame (kind, words); used by tests and device models."""
    return _decode(bytes(data), REQ_SYNC, "request")


def id_words(device: DeviceConfig) -> tuple[int, int]:
    """The identification words the top returns for ``STATUS``: the PIM channel it was built for.

    First word: [63:48] :data:`ID_MAGIC`, [47:40] banks, [39:32] bank groups, [31:16] rows, [15:8] columns,
    [7:0] mac_lanes. Second word: [63:56] acc_bits, [55:48] scale_bits (0 for int8 lanes), [47:40] column_bits,
    and bit ``i`` set if datatype ``i`` of :data:`accel.config.BITSERIAL_DATATYPES` is built into the lanes (none for
    int8 lanes).
    """
    p = device.pim
    b = device.bitserial if p.lane == "bitserial" else None
    mask = sum(1 << BITSERIAL_DATATYPES.index(d) for d in b.datatypes) if b is not None else 0
    word = ((ID_MAGIC << 48) | (p.banks << 40) | (p.bank_groups << 32) | (p.rows << 16) | (p.columns << 8)
            | p.mac_lanes)
    acc = b.acc_bits if b is not None else 32
    return word, (acc << 56) | ((b.scale_bits if b is not None else 0) << 48) | (p.column_bits << 40) | mask
