"""The docs' generated figures equal what the code computes (where that is cheap): regenerate with
``python benchmarks/docs_figures.py --write-docs`` and ``python benchmarks/fpga_top.py --write-docs``."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from docblocks import read_block  # noqa: E402


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_figures_are_what_the_code_computes():
    figures = _bench("docs_figures")
    f = figures.figures()
    d = f["dot_latency"]
    assert d["fp4_er_pos"]["run_dot_cycles"] == d["fp4_er_pos"]["transfer_cycle"] + 1  # inclusive count
    blocks = figures.markdown(f)
    for doc, names in figures.DOCS.items():
        for name in names:
            assert read_block(ROOT / doc, "figures", name) == blocks[name], f"{doc} {name}: run docs_figures.py"


def test_fpga_fit_error_is_what_the_build_says():
    from accel.config import load_preset
    from accel.errors import AccelError
    from accel.fpga.build import check_fits, get_board

    fpga_top = _bench("fpga_top")
    board, preset = fpga_top.REFUSED
    try:
        check_fits(get_board(board), load_preset(preset), preset)
    except AccelError as e:
        refusal = str(e)
    text = read_block(ROOT / "docs" / "fpga.md", "figures", "fpga_fit_error")
    assert f"`{refusal}`" in text


def test_fpga_table_lists_every_build():
    fpga_top = _bench("fpga_top")
    text = read_block(ROOT / "docs" / "fpga.md", "figures", "fpga_top")
    for board, preset in fpga_top.BUILDS:
        assert f"| {board} | {preset} | " in text
