"""The device description: presets load, derived values, and strict rejection of bad input."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from accel.config import (BankUnit, BitSerialConfig, ConfigError, DeviceConfig, GemmConfig, device_from_dict,
                          load_device, load_preset, preset_names, storage_bits)
from accel.files import parse_yaml

PRESET_DIR = Path(__file__).parent.parent / "accel" / "presets"


def _preset_data(name: str) -> dict:
    return yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", preset_names())
def test_presets_load(name):
    dev = load_preset(name)
    assert isinstance(dev, DeviceConfig) and dev.name == name
    figs = dev.key_figures()
    assert figs["pim_peak_tmacs"] > 0 and figs["capacity_gib"] > 0


def test_preset_by_path_equals_preset_by_name():
    for name in preset_names():
        assert load_preset(str(PRESET_DIR / f"{name}.yaml")) == load_preset(name)


def test_shipped_yaml_reads_as_any_file():
    """Presets are read on libyaml's parser (``shipped``): the same data as the pure-Python strict reading, and a
    document it refuses gives the same error as any file."""
    for name in preset_names():
        text = (PRESET_DIR / f"{name}.yaml").read_text()
        assert parse_yaml(text, name, shipped=True) == parse_yaml(text, name)
    for bad in ("a: 1\na: 2\n", "a: b: c\n", "[" * 150 + "]" * 150, "x: [1, 2\n"):
        with pytest.raises(ConfigError) as want:
            parse_yaml(bad, "s", ConfigError)
        with pytest.raises(ConfigError) as got:
            parse_yaml(bad, "s", ConfigError, shipped=True)
        assert str(got.value) == str(want.value)


def test_gemm_config_is_derived_from_the_attention_array():
    dev = load_preset("hbm3-pim")
    g = dev.gemm
    assert g == GemmConfig(rows=256, cols=256, data_bits=16, clock_mhz=940.0) == dev.attention.gemm
    assert g.acc_bits == 2 * 16 + 16 and g.peak_macs_per_cycle == 256 * 256
    assert dev.attention.peak_macs_per_s == pytest.approx(256 * 256 * 940e6)
    assert load_preset("aim-gddr6").gemm is None  # no attention array, no GEMM array
    with pytest.raises(ConfigError, match=r"^cols = 0: must be between 1 and 1024$"):
        GemmConfig(rows=4, cols=0, data_bits=8)
    with pytest.raises(ConfigError, match=r"^clock_mhz = -1\.0: must be positive \(MHz\) or None$"):
        GemmConfig(rows=4, cols=4, data_bits=8, clock_mhz=-1.0)


def test_aim_derived_values():
    dev = load_preset("aim-gddr6")
    p = dev.pim
    assert p.columns == 64  # 2 KB rows of 256-bit columns
    assert p.capacity_bytes == 32 * 16 * 16384 * 2048
    assert p.row_address_bits == 14 and p.column_address_bits == 6 and p.bank_address_bits == 4
    assert p.internal_bandwidth_bytes_per_cycle == 32 * 16 * 32 / 2    # a 32-byte column every nCCD_AB = 2 cycles
    b = dev.bank
    assert (b.units, b.unit_lanes, b.formats, b.reset_format) == (1, 16, (4, 8), 8)
    # 4-bit: 64 codes per column, 4 beats of 16 for the one unit, 2 terms each; 2 metadata columns hold the 31
    # groups of a row (31 x 12 bits), 62 data columns; int8: 2 beats x 4 terms, 1 metadata column, 15 groups of 4
    # columns (60, three columns left empty)
    assert [dev.weights_per_column(d) for d in ("int8", "int4", "int3", "fp4_er_pos")] == [32, 64, 64, 64]
    assert [dev.mac_cycles_per_column(d) for d in ("int8", "int4", "fp3_ea_neg")] == [8, 8, 8]
    assert (b.metadata_columns(4), b.data_columns(4), b.metadata_columns(8), b.data_columns(8)) == (2, 62, 1, 60)
    assert dev.weights_per_row("int4") == 62 * 64 and dev.weights_per_row("int8") == 60 * 32
    assert dev.bytes_per_weight("int4") == 2048 / (62 * 64)
    assert dev.read_bytes_per_weight("int4") == 64 * 32 / (62 * 64)
    assert dev.weight_capacity("int4") == 32 * 16 * 16384 * 62 * 64
    assert b.drain == 8 + 8 + 2
    # every bank streams a row of 64 columns (62 of weights) at one column per 8 cycles, at 2 GHz
    assert dev.peak_macs_per_cycle("int4") == 32 * 16 * 62 * 64 / (64 * 8)
    assert dev.peak_macs_per_s() == pytest.approx(32 * 16 * 62 * 64 / (64 * 8) * 2e9)


def test_bitmod_variant_consumes_4bit_columns_at_the_column_rate():
    dev = load_preset("aim-gddr6-bitmod")
    aim = load_preset("aim-gddr6")
    assert dev.pim.timing == aim.pim.timing and dev.pim.rows == aim.pim.rows and dev.pim.banks == aim.pim.banks
    b = dev.bank
    assert (b.units, b.unit_lanes) == (4, 16)
    assert dev.mac_cycles_per_column("int4") == dev.pim.timing.nCCD_AB == 2
    assert dev.mac_cycles_per_column("int8") == 4                 # two units, 4 terms a beat: backpressure
    assert (b.active_units(4), b.active_units(8), b.granule_columns(4)) == (4, 2, 8)
    assert (b.metadata_columns(4), b.data_columns(4)) == (2, 56)  # 7 granules of 8 columns, 28 groups
    assert dev.peak_macs_per_cycle("int4") == 32 * 16 * 56 * 64 / (58 * 2)
    assert b.drain == 4 + 8 + 2


def test_storage_bits_pads_3bit_codes_to_4():
    assert [storage_bits(b) for b in (1, 2, 3, 4, 5, 8)] == [1, 2, 4, 4, 8, 8]
    dev = load_preset("aim-gddr6")
    assert dev.bytes_per_weight("int3") == dev.bytes_per_weight("int4") == dev.bytes_per_weight("fp3_ea_pos")


def test_int8_lanes_read_packed_int8_columns():
    dev = load_preset("hbm3-pim")
    assert dev.weights_per_column("int8") == 32 and dev.mac_cycles_per_column("int8") == 2   # 32 weights, 16 lanes
    assert dev.bank.metadata_columns(8) == 0 and dev.bytes_per_weight("int8") == 1.0
    with pytest.raises(ConfigError, match=r"^datatype 'int4': a bank of int8 lanes holds int8 weights only$"):
        dev.weights_per_column("int4")


@pytest.mark.parametrize("change,message", [
    (dict(mac_lanes=6), r"^pim\.mac_lanes = 6: must be a power-of-two multiple of bitserial\.lanes \(2\)"),
    (dict(column_bits=8), r"^bitserial\.lanes = 2: a 8-bit column must hold whole beats of 2 8-bit codes"),
    (dict(row_bytes=8), r"^pim\.row_bytes = 8: a row of 4 columns cannot hold one granule of 4 columns of "
                        r"4-bit weights plus its metadata"),
])
def test_bank_unit_rejects_what_cannot_be_built(change, message):
    dev = load_preset("fpga-tiny")
    with pytest.raises(ConfigError, match=message):
        BankUnit(dataclasses.replace(dev.pim, **change), dev.bitserial)


def test_bank_unit_needs_groups_long_enough_for_the_dequantiser():
    dev = load_preset("fpga-tiny")
    bs = dataclasses.replace(dev.bitserial, group_size=8)   # 4 beats: 8 cycles < scale_bits + 1
    with pytest.raises(ConfigError, match=r"^bitserial\.group_size = 8: a group of 4 beats takes as little as 8 "
                                          r"cycles, less than the dequantiser's scale_bits \+ 1 = 9"):
        BankUnit(dev.pim, bs)


def _write(tmp_path, data, text=None) -> Path:
    f = tmp_path / "dev.yaml"
    f.write_text(text if text is not None else yaml.safe_dump(data))
    return f


def test_unknown_key(tmp_path):
    d = _preset_data("fpga-tiny")
    d["pim"]["timing"]["nXYZ"] = 3
    with pytest.raises(ConfigError, match=r"dev\.yaml: pim\.timing: unknown key 'nXYZ'; allowed keys are tck_ns, "):
        load_device(_write(tmp_path, d))


def test_missing_key(tmp_path):
    d = _preset_data("fpga-tiny")
    del d["bitserial"]["scale_bits"]
    with pytest.raises(ConfigError, match=r"dev\.yaml: bitserial: missing key 'scale_bits'"):
        load_device(_write(tmp_path, d))


def test_duplicate_key(tmp_path):
    text = (PRESET_DIR / "fpga-tiny.yaml").read_text().replace("  lanes: 2 ", "  lanes: 8\n  lanes: 2 ", 1)
    with pytest.raises(ConfigError, match=r"dev\.yaml:\d+:3: duplicate key 'lanes' \(first given on line \d+\); "
                                          r"give each key once$"):
        load_device(_write(tmp_path, None, text))


@pytest.mark.parametrize("path,value,message", [
    (("bitserial", "lanes"), "four", r"bitserial\.lanes = 'four': must be an integer"),
    (("bitserial", "lanes"), True, r"bitserial\.lanes = True: must be an integer"),
    (("bitserial", "lanes"), 0, r"bitserial\.lanes = 0: must be between 1 and 256"),
    (("bitserial", "group_size"), 9, r"bitserial\.group_size = 9: must be a multiple of lanes \(2\)"),
    (("bitserial", "datatypes"), ["int5"], r"bitserial\.datatypes = 'int5': must be one of int8, int4"),
    (("bitserial", "acc_bits"), 16, r"bitserial\.acc_bits = 16: a group's partial sum can reach"),
    (("pim", "rows"), 100, r"pim\.rows = 100: must be a power of two"),
    (("pim", "lane"), "fp16", r"pim\.lane = 'fp16': must be 'bitserial' or 'int8'"),
    (("pim", "timing", "tck_ns"), -1, r"pim\.timing\.tck_ns = -1\.0: must be positive \(ns\)"),
    (("pim", "timing", "nRAS"), 50, r"pim\.timing\.nRC = 8: must be at least nRAS = 50"),
    (("pim", "timing", "faw_all_bank"), "no", r"pim\.timing\.faw_all_bank = 'no': must be true or false"),
    (("vector",), None, r"vector: must be a mapping of keys to values, not None"),
    (("vector", "buffer_bytes"), 100, r"vector\.buffer_bytes = 100: must be a positive multiple of a line \(8 bytes"),
    (("link", "broadcast"), "yes", r"link\.broadcast = 'yes': must be true or false"),
    (("link", "width_bits"), 0, r"link\.width_bits = 0: must be between 1 and 65536"),
    (("sync_latency",), -1, r"sync_latency = -1: must be between 0 and 1048576"),
])
def test_bad_values(tmp_path, path, value, message):
    d = _preset_data("fpga-tiny")
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=r"dev\.yaml: " + message):
        load_device(_write(tmp_path, d))


def test_not_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"dev\.yaml:2:1: not valid YAML: expected ',' or '\]'"):
        load_device(_write(tmp_path, None, "name: [unclosed\n"))


def test_unknown_preset():
    with pytest.raises(ConfigError, match=re.escape("unknown preset 'aim-gddr7' (did you mean 'aim-gddr6'?); "
                                                    "presets are ")):
        load_preset("aim-gddr7")


def test_missing_file():
    with pytest.raises(ConfigError, match=r"^nope\.yaml: cannot read the device description \(No such file or "
                                          r"directory\); check the path$"):
        load_device("nope.yaml")


def test_optional_unit_may_be_null():
    d = _preset_data("fpga-small")
    d["attention"] = None
    assert device_from_dict(d).attention is None


def test_configs_are_frozen():
    cfg = load_preset("fpga-tiny").bitserial
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"^cannot assign to field 'lanes'$"):
        cfg.lanes = 8  # type: ignore[misc]
    assert cfg.lanes == 2


def test_bitserial_max_shift():
    """The shifter's span, the largest term of any built datatype: int8's radix-4 Booth digit -2 at position 6
    (-128 = -2 * 2**6), int4's -2 * 2**2, FP4's 12 = 8 + 4 and its +16 variant, FP3's 6 = 4 + 2."""
    base = dict(lanes=4, act_bits=8, max_weight_bits=8, group_size=8, scale_bits=8, acc_bits=32)
    cases = {("int8",): 7, ("int4", "int3"): 3, ("fp4_er_pos",): 3, ("fp4_ea_pos", "int3"): 4, ("fp3_er_pos",): 2}
    for datatypes, shift in cases.items():
        assert BitSerialConfig(**base, datatypes=datatypes).max_shift == shift, datatypes
