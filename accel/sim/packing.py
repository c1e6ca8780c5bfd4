"""Pack and unpack port values by an Amaranth layout, so a per-cycle model speaks the RTL's bit format exactly.

The layout object (``data.StructLayout``, ``data.ArrayLayout`` or a plain shape) is the single source of the bit
positions; models use :class:`Packer` instead of hand-written shifts.
"""
from __future__ import annotations

from typing import Any

from amaranth.hdl import Shape
from amaranth.lib import data


def _signed_of(bits: int, value: int) -> int:
    return value - (1 << bits) if bits and value >> (bits - 1) else value


class Packer:
    """Converts between unsigned packed integers and nested Python values (dicts, lists, ints) of a layout.

    Struct members become dict keys, array elements list items, signed shapes Python ints with sign.
    """

    def __init__(self, shape: Any) -> None:
        self.shape = shape
        if isinstance(shape, data.Layout):
            self.size = shape.size
            self._members = [(name, field.offset, Packer(field.shape)) for name, field in shape]
            self._array = isinstance(shape, data.ArrayLayout)
            self._leaf = None
        else:
            s = Shape.cast(shape)
            self.size = s.width
            self._leaf = s
            self._members = []
            self._array = False

    def pack(self, value: Any) -> int:
        """Nested value -> unsigned integer. Values out of a field's range raise ``ValueError``."""
        if self._leaf is not None:
            v = int(value)
            w = self._leaf.width
            lo, hi = ((-(1 << (w - 1)), (1 << (w - 1)) - 1) if self._leaf.signed else (0, (1 << w) - 1))
            if not lo <= v <= hi:
                raise ValueError(f"{v} does not fit {self._leaf!r} ({lo}..{hi})")
            return v & ((1 << w) - 1)
        out = 0
        for i, (name, off, sub) in enumerate(self._members):
            item = value[i] if self._array else value[name]
            out |= sub.pack(item) << off
        return out

    def unpack(self, raw: int) -> Any:
        """Unsigned integer -> nested value."""
        if self._leaf is not None:
            v = raw & ((1 << self._leaf.width) - 1)
            return _signed_of(self._leaf.width, v) if self._leaf.signed else v
        if self._array:
            return [sub.unpack(raw >> off) for _, off, sub in self._members]
        return {name: sub.unpack(raw >> off) for name, off, sub in self._members}
