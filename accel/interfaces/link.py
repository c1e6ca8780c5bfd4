"""The link's interface: endpoint codes and names, and its one closed-form cost.

A transfer of ``b`` bytes to one endpoint is ``ceil(8 b / width_bits)`` beats; a transfer to every channel
(endpoint ``all``) is sent once when the link broadcasts and once per channel when it does not. The link sends one
beat per cycle, transfers in program order: a transfer accepted in cycle ``s`` sends its beats in
``s .. s + beats - 1``, the link takes the next transfer in ``s + beats``, and the last beat arrives (the transfer has
completed) in cycle ``s + beats + latency``.
"""
from __future__ import annotations

from ..config import DeviceConfig, LinkConfig
from ..errors import EncodingError
from ..isa import TABLES, Endpoint, Family

__all__ = ["endpoint_code", "endpoint_name", "copies", "transfer_beats", "transfer_cycles"]

_NAMES = {e.value: e.name.lower() for e in Endpoint if e != Endpoint.DEVICE}
_DEVICES = (1 << TABLES[Family.LINK].width("dst")) - Endpoint.DEVICE   # device endpoints the dst field reaches


def endpoint_name(code: int) -> str:
    """``pim3``, ``vector``, ``array``, ``host``, ``all`` or ``d1`` (device 1, for the interconnect port)."""
    if code >= Endpoint.DEVICE:
        return f"d{code - Endpoint.DEVICE}"
    return _NAMES.get(code, f"pim{code}")


def endpoint_code(name: str) -> int:
    """The code of an endpoint name (:func:`endpoint_name`'s inverse); raises :class:`EncodingError`."""
    for code, n in _NAMES.items():
        if n == name:
            return code
    if name.startswith("pim") and name[3:].isdigit() and int(name[3:]) < min(_NAMES):
        return int(name[3:])
    if name.startswith("d") and name[1:].isdigit() and int(name[1:]) < _DEVICES:
        return Endpoint.DEVICE + int(name[1:])
    raise EncodingError(f"link endpoint {name!r} does not exist; endpoints are pim0 .. pim{min(_NAMES) - 1}, "
                        f"{', '.join(_NAMES.values())}, d0 .. d{_DEVICES - 1} (devices, for the interconnect)")


def copies(dst: int, device: DeviceConfig) -> int:
    """How many times a transfer to ``dst`` is sent: once, or once per channel for ``all`` without broadcast."""
    if dst == Endpoint.ALL and not device.link.broadcast:
        return device.pim.channels
    return 1


def transfer_beats(nbytes: int, link: LinkConfig, n_copies: int = 1) -> int:
    """Link cycles a transfer occupies the link: ``n_copies * ceil(8 nbytes / width_bits)``."""
    return n_copies * -(-8 * nbytes // link.width_bits)


def transfer_cycles(nbytes: int, link: LinkConfig, n_copies: int = 1) -> int:
    """Link cycles from a lone transfer's start to its arrival: ``latency + transfer_beats``. The one cost formula
    of the link: the system engine, the cost model and the report use it (with :func:`transfer_beats`)."""
    return link.latency + transfer_beats(nbytes, link, n_copies)
