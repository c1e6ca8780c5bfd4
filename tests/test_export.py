"""``accel rtl export`` cannot eat the machine: every unit of every preset either exports within minutes and bounded
memory or is refused before it starts; full-size PIM presets export their bank arrays as black boxes, and the
behavioural model of those equals the inline memory cycle for cycle (under Icarus, against the emulator)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from accel.config import load_preset, preset_names
from accel.equivalence.export import EXPORT_LIMIT_S, INLINE_ARRAY_WORDS, export_verilog, plan_export
from accel.equivalence.registry import unit_names
from accel.errors import AccelError


@pytest.mark.parametrize("unit", unit_names())
@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_exports_in_minutes_or_is_refused_up_front(unit, preset):
    dev = load_preset(preset)
    try:
        plan = plan_export(unit, preset)
    except AccelError as e:
        msg = str(e)
        if "has no attention array" in msg:
            assert dev.attention is None
            return
        assert re.fullmatch(rf"rtl export {unit} for {preset}: .* would take about [\d.]+ minutes to export \(and "
                            rf"memory in proportion\), over the limit of 5 minutes; export a smaller {unit}: .*", msg)
        assert unit in ("attention", "gemm-os", "gemm-ws") and dev.attention.rows * dev.attention.cols > 1024
        return
    assert plan.seconds <= EXPORT_LIMIT_S
    if unit == "pim":
        words = dev.pim.banks * dev.pim.rows * dev.pim.columns
        assert plan.external_arrays == (words > INLINE_ARRAY_WORDS)
        assert plan.external_arrays == (preset not in ("fpga-tiny", "fpga-small"))


def test_the_bank_arrays_option():
    assert plan_export("pim", "fpga-tiny", "external").external_arrays
    assert not plan_export("pim", "fpga-tiny", "inline").external_arrays
    with pytest.raises(AccelError, match=r"the bank arrays hold 8388608 words \(256 MiB per channel\)"):
        plan_export("pim", "hbm2-pim", "inline")


@pytest.mark.slow
def test_small_presets_export(tmp_path):
    for unit in unit_names():
        (path, lines), = export_verilog(unit, "fpga-small", tmp_path)
        text = path.read_text()
        assert lines > 100 and f"// Regenerate with: accel rtl export {unit} --device fpga-small" in text


@pytest.mark.slow
def test_full_size_preset_exports_with_black_box_arrays(tmp_path):
    """hbm2-pim holds 256 MiB of bank array per channel; its export instantiates 16 external arrays behind their port
    and writes their behavioural model beside the design (inline, the same export needs hours and tens of GB)."""
    dev = load_preset("hbm2-pim")
    (top, lines), (model, _) = export_verilog("pim", "hbm2-pim", tmp_path)
    text = top.read_text()
    depth = dev.pim.rows * dev.pim.columns
    assert len(re.findall(rf"accel_pim_bank_array #\(\s*\.ABITS\(32'd{depth.bit_length() - 1}\),\s*"
                          rf"\.DEPTH\(32'd{depth}\),\s*\.WIDTH\(32'd256\)", text)) == dev.pim.banks
    assert "// Bank arrays: external module accel_pim_bank_array" in text and "mem[" not in text
    assert top.stat().st_size < 20 * 2**20 and model.read_text().startswith("// Behavioural model of a PIM bank")


@pytest.mark.cocotb
def test_black_box_arrays_equal_the_inline_memory():
    """The channel with external arrays and their behavioural model, under Icarus, against the per-cycle model: the
    same traces as the inline memory's on random programs."""
    from accel.equivalence.harness import compare_all, run_cocotb, simulator_available
    from accel.equivalence.pim import PimUnitConfig, make_stimulus, _model
    from accel.interfaces.stimulus import run_model
    from accel.rtl.bank_array import BEHAVIOURAL_MODEL, MODULE
    from accel.rtl.pim import PimChannel

    reason = simulator_available("icarus")
    if reason:
        pytest.skip(reason)
    cfg = PimUnitConfig.of(load_preset("fpga-tiny"))
    stims = [make_stimulus(cfg, seed) for seed in range(12)]
    refs = [run_model(_model(cfg), s) for s in stims]
    dut = PimChannel(cfg.pim, cfg.bitserial, external_arrays=True)
    from amaranth.back import verilog

    assert verilog.convert(dut, name="pim_channel", emit_src=False).count(f"{MODULE} #(") == cfg.pim.banks
    traces = run_cocotb("icarus", PimChannel(cfg.pim, cfg.bitserial, external_arrays=True), stims, "pim_channel",
                        extra_sources=[(f"{MODULE}.v", BEHAVIOURAL_MODEL)])
    assert compare_all(stims, "emulator", refs, "icarus", traces) == []
    assert any(np.any([o["rdata__valid"] for o in t]) for t in traces)  # reads came back through the arrays
