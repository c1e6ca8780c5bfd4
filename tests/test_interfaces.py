"""Unit interfaces: the port field tables pack exactly as the Amaranth layouts derived from them.

Random values of every port of every unit (test configurations and presets) are packed by :class:`Packer` and by the
Amaranth layout (``layout.const``), and unpacked by both; the two must agree bit for bit, as ``tests/test_isa.py``
proves for the command words.
"""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.lib import data

from accel.config import load_preset, preset_names
from accel.equivalence.attention import TEST_CONFIGS as ATTENTION_CONFIGS
from accel.equivalence.bitserial import TEST_CONFIGS as BITSERIAL_CONFIGS
from accel.equivalence.gemm import TEST_CONFIGS as GEMM_CONFIGS
from accel.errors import EncodingError
from accel.interfaces import attention, bitserial, gemm
from accel.interfaces.packing import Array, Packer, SInt, Struct, UInt

_devices = [load_preset(n) for n in preset_names()]
PORTS = (
    [(f"bitserial{i}", f, c) for i, c in enumerate(BITSERIAL_CONFIGS + [d.bitserial for d in _devices])
     for f in (bitserial.act_layout, bitserial.wgt_layout, bitserial.res_layout)]
    + [(f"attention{i}", f, c) for i, c in enumerate(ATTENTION_CONFIGS + [d.attention for d in _devices if d.attention])
       for f in (attention.q_layout, attention.k_layout, attention.v_layout, attention.o_layout)]
    + [(f"gemm{i}", f, c) for i, c in enumerate(GEMM_CONFIGS + [d.gemm for d in _devices if d.gemm])
       for f in (gemm.ab_layout, gemm.gemm_o_layout, gemm.w_layout, gemm.ws_a_layout, gemm.ws_o_layout)]
)
# Amaranth takes minutes to build a constant of hbm3-pim's 256 x 256 result tile (3 Mbit); the same table on the
# small configurations covers its structure
PORTS = [(n, f, c) for n, f, c in PORTS if f(c).width <= 1 << 16]


def _random(t, rng: np.random.Generator):
    if isinstance(t, UInt):
        return int(rng.integers(0, 1 << t.width, dtype=np.uint64)) if t.width < 64 else int(rng.integers(0, 2**63))
    if isinstance(t, SInt):
        return int(rng.integers(-(1 << (t.width - 1)), 1 << (t.width - 1)))
    if isinstance(t, Array):
        return [_random(t.elem, rng) for _ in range(t.count)]
    return {name: _random(f, rng) for name, f in t.fields}


def _python(t, c):
    """A ``data.Const`` (or a plain int leaf) of table ``t`` as nested Python values."""
    if isinstance(t, (UInt, SInt)):
        return int(c)
    if isinstance(t, Array):
        return [_python(t.elem, c[i]) for i in range(t.count)]
    return {name: _python(f, c[name]) for name, f in t.fields}


@pytest.mark.parametrize("name,port,cfg", PORTS, ids=[f"{n}-{p.__name__}" for n, p, _ in PORTS])
def test_packer_equals_amaranth_layout(name, port, cfg):
    table = port(cfg)
    layout = table.layout()
    assert data.Layout.cast(layout).size == table.width if isinstance(table, (Struct, Array)) else \
        layout.width == table.width
    pk = Packer(table)
    rng = np.random.default_rng(len(name) * 1000 + len(port.__name__))
    for _ in range(40):
        value = _random(table, rng)
        raw = pk.pack(value)
        if isinstance(table, (Struct, Array)):
            assert raw == layout.const(value).as_bits()
            assert pk.unpack(raw) == _python(table, data.Const(layout, raw)) == value
        else:
            assert pk.unpack(raw) == value and raw == value & ((1 << table.width) - 1)


def test_pack_out_of_range_is_an_encoding_error():
    pk = Packer(Struct({"a": Array(SInt(4), 2), "last": UInt(1)}))
    assert pk.pack({"a": [-8, 7], "last": 1}) == 0x8 | 0x7 << 4 | 1 << 8
    with pytest.raises(EncodingError, match=r"^8 does not fit SInt\(width=4\) \(-8\.\.7\)$"):
        pk.pack({"a": [8, 0], "last": 0})
    with pytest.raises(EncodingError, match=r"^2 does not fit UInt\(width=1\) \(0\.\.1\)$"):
        pk.pack({"a": [0, 0], "last": 2})
