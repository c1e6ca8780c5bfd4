"""The command set: the Python encoder/decoder and the Amaranth layout agree bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from accel import isa
from accel.config import load_preset, preset_names
from accel.errors import ConfigError, EncodingError


def _random_fields(table: isa.FieldTable, rng: np.random.Generator) -> dict[str, int]:
    out = {}
    for name, width in table.fields:
        if name in table.signed:
            out[name] = int(rng.integers(-(1 << (width - 1)), 1 << (width - 1)))
        else:
            out[name] = int(rng.integers(0, 1 << width))
    return out


@pytest.mark.parametrize("family", list(isa.Family))
def test_roundtrip(family):
    rng = np.random.default_rng(int(family))
    table = isa.TABLES[family]
    for _ in range(500):
        op = int(rng.choice([int(o) for o in isa.OPS[family]]))
        fields = _random_fields(table, rng)
        word = table.encode(op, **fields)
        assert 0 <= word < 1 << isa.WORD_BITS
        cmd = isa.decode(word)
        assert cmd.family == family and cmd.op == op and dict(cmd.fields) == fields
        assert cmd.encode() == word


@pytest.mark.parametrize("family", list(isa.Family))
def test_amaranth_layout_matches_python(family):
    """Words encoded in Python read back field by field through the Amaranth view, and fields written through the
    view give the word Python encodes."""
    table = isa.TABLES[family]
    layout = table.layout()
    assert layout.size == isa.WORD_BITS
    rng = np.random.default_rng(100 + int(family))
    cases = []
    for _ in range(64):
        op = int(rng.choice([int(o) for o in isa.OPS[family]]))
        cases.append((op, _random_fields(table, rng)))
    view = Signal(layout)
    errors = []

    async def tb(ctx):
        for op, fields in cases:
            word = table.encode(op, **fields)
            ctx.set(view.as_value(), word)
            got = {name: ctx.get(getattr(view, name)) for name, _ in table.all_fields}
            want = {"family": int(family), "op": op, **fields}
            if got != want:
                errors.append(("decode", want, got))
            ctx.set(view.as_value(), 0)
            for name, value in want.items():
                ctx.set(getattr(view, name), value)
            if ctx.get(view.as_value()) != word:
                errors.append(("encode", hex(word), hex(ctx.get(view.as_value()))))

    sim = Simulator(Module())  # no logic: the test reads and writes the signals through the layout
    sim.add_testbench(tb)
    sim.run()
    assert not errors, errors[:3]


def test_encode_errors():
    with pytest.raises(EncodingError, match=r"^PIM\.MAC field bank = 64: must be between 0 and 63 \(6 bits\)$"):
        isa.encode("pim", "MAC", bank=64)
    with pytest.raises(EncodingError, match=r"^PIM op 'FOO' does not exist; ops are NOP, ACT, PRE, "):
        isa.encode("pim", "FOO")
    with pytest.raises(EncodingError, match=r"^PIM commands have no field 'lanes'; fields are all_banks, "):
        isa.encode("pim", "MAC", lanes=3)
    with pytest.raises(EncodingError, match=r"^PIM\.ACT field row = -1: must be between 0 and"):
        isa.encode("pim", "ACT", row=-1)


def test_decode_errors():
    word = isa.encode("pim", "NOP") | (0xF << isa.TABLES[isa.Family.PIM].offsets()["op"][0])  # op 15 does not exist
    with pytest.raises(EncodingError, match=r"PIM op 15 does not exist"):
        isa.decode(word)
    with pytest.raises(EncodingError, match=r"bits above \d+ must be zero"):
        isa.decode(isa.encode("pim", "ACT") | (1 << 63))
    with pytest.raises(EncodingError, match=r"is not a 64-bit unsigned integer"):
        isa.decode(1 << 64)
    with pytest.raises(EncodingError, match=r"family 7 does not exist; families are PIM \(0\), "):
        isa.decode(7)


def test_header_is_common():
    """Every family starts with the same 3-bit family and 4-bit op fields, so any word's family is read alike."""
    for fam, table in isa.TABLES.items():
        assert table.all_fields[:2] == (("family", 3), ("op", 4))
        assert len(isa.OPS[fam]) <= 16


def test_unknown_family_and_non_device_are_user_errors():
    with pytest.raises(EncodingError, match=r"^command family 'gpu' does not exist; families are pim, attn, "
                                            r"bitserial, vector, sync, link$"):
        isa.encode("gpu", "NOP")
    with pytest.raises(EncodingError, match=r"^command family 7 does not exist"):
        isa.encode(7, 0)
    with pytest.raises(ConfigError, match=r"^device = 'aim-gddr6': must be a DeviceConfig"):
        isa.check_device_fits("aim-gddr6")


@pytest.mark.parametrize("family", list(isa.Family))
def test_every_op_encodes_by_name(family):
    """Each op of each family encodes from its name (any case) to the word of its number, which decodes back to it."""
    for op in isa.OPS[family]:
        word = isa.encode(family.name.lower(), op.name.lower())
        assert word == isa.TABLES[family].encode(int(op))
        assert isa.decode(word).name == f"{family.name}.{op.name}"


def test_every_unit_has_commands():
    assert {f.name for f in isa.Family} == {"PIM", "ATTN", "BITSERIAL", "VECTOR", "SYNC", "LINK"}
    for fam in isa.Family:
        assert len(isa.OPS[fam]) >= 2


@pytest.mark.parametrize("name", preset_names())
def test_presets_fit_command_fields(name):
    isa.check_device_fits(load_preset(name))
