"""Port layouts as field tables, and packing of port values by them.

A unit's port payloads (a weight beat, a Q tile beat, a GEMM result tile) are described once, as a field table built
from :class:`UInt`, :class:`SInt`, :class:`Array` and :class:`Struct`. The Amaranth layout of the RTL's port is
derived from it (:meth:`Struct.layout`, a ``data.StructLayout``; :meth:`Array.layout`, a ``data.ArrayLayout``), the
way :meth:`accel.isa.FieldTable.layout` derives a command word's; the per-cycle models and the equivalence harness
pack and unpack payloads with :class:`Packer` from the same table, so that neither needs ``rtl/`` (nor Amaranth).
Fields are packed least significant first, in table order, exactly as Amaranth packs a ``StructLayout`` (and an
``ArrayLayout``: element 0 in the low bits); ``tests/test_interfaces.py`` proves the two agree bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union

from ..errors import EncodingError

__all__ = ["UInt", "SInt", "Array", "Struct", "Field", "Packer"]


@dataclass(frozen=True)
class UInt:
    """An unsigned integer field of ``width`` bits."""

    width: int

    def layout(self) -> Any:
        """The Amaranth shape ``unsigned(width)``."""
        from amaranth.hdl import unsigned

        return unsigned(self.width)


@dataclass(frozen=True)
class SInt:
    """A two's complement integer field of ``width`` bits."""

    width: int

    def layout(self) -> Any:
        """The Amaranth shape ``signed(width)``."""
        from amaranth.hdl import signed

        return signed(self.width)


@dataclass(frozen=True)
class Array:
    """``count`` elements of one field table, element 0 in the low bits."""

    elem: "Field"
    count: int

    @property
    def width(self) -> int:
        return self.elem.width * self.count

    def layout(self) -> Any:
        """The Amaranth ``data.ArrayLayout``."""
        from amaranth.lib import data

        return data.ArrayLayout(self.elem.layout(), self.count)


@dataclass(frozen=True)
class Struct:
    """Named fields, the first in the low bits. ``fields`` may be given as a mapping (kept in its order)."""

    fields: tuple[tuple[str, "Field"], ...]

    def __init__(self, fields: Mapping[str, "Field"] | tuple[tuple[str, "Field"], ...]) -> None:
        items = tuple(fields.items()) if isinstance(fields, Mapping) else tuple(fields)
        object.__setattr__(self, "fields", items)

    @property
    def width(self) -> int:
        return sum(f.width for _, f in self.fields)

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Field name -> (offset, width) in the packed value (bits)."""
        out, pos = {}, 0
        for name, f in self.fields:
            out[name] = (pos, f.width)
            pos += f.width
        return out

    def layout(self) -> Any:
        """The Amaranth ``data.StructLayout``."""
        from amaranth.lib import data

        return data.StructLayout({name: f.layout() for name, f in self.fields})


Field = Union[UInt, SInt, Array, Struct]


class Packer:
    """Converts between unsigned packed integers and nested Python values (dicts, lists, ints) of a field table.

    Struct fields become dict keys, array elements list items, :class:`SInt` fields Python ints with sign. The table
    is walked once, here; :meth:`pack` and :meth:`unpack` run on every cycle of a per-cycle model.
    """

    def __init__(self, shape: Field) -> None:
        self.shape = shape
        self.size = shape.width
        self._leaf: tuple[int, bool] | None = None
        self._members: list[tuple[Any, int, Packer]] = []
        self._array = isinstance(shape, Array)
        if isinstance(shape, (UInt, SInt)):
            self._leaf = (shape.width, isinstance(shape, SInt))
        elif isinstance(shape, Array):
            sub = Packer(shape.elem)
            self._members = [(i, i * shape.elem.width, sub) for i in range(shape.count)]
        elif isinstance(shape, Struct):
            self._members = [(name, off, Packer(f)) for (name, f), (off, _) in
                             zip(shape.fields, shape.offsets().values())]
        else:
            raise TypeError(f"a port field must be UInt, SInt, Array or Struct, not {shape!r}")

    def pack(self, value: Any) -> int:
        """Nested value -> unsigned integer. A value out of its field's range raises :class:`EncodingError`."""
        if self._leaf is not None:
            v = int(value)
            w, signed = self._leaf
            lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
            if not lo <= v <= hi:
                raise EncodingError(f"{v} does not fit {self.shape!r} ({lo}..{hi})")
            return v & ((1 << w) - 1)
        out = 0
        for key, off, sub in self._members:
            out |= sub.pack(value[key]) << off
        return out

    def unpack(self, raw: int) -> Any:
        """Unsigned integer -> nested value."""
        if self._leaf is not None:
            w, signed = self._leaf
            v = raw & ((1 << w) - 1)
            return v - (1 << w) if signed and w and v >> (w - 1) else v
        if self._array:
            return [sub.unpack(raw >> off) for _, off, sub in self._members]
        return {name: sub.unpack(raw >> off) for name, off, sub in self._members}
