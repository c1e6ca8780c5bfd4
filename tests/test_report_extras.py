"""The report extras: the energy table and formula, event counts it needs, plots, the Perfetto trace, atomic output
files, the progress bar, and ``accel emulate PROGRAM --plots/--trace`` end to end."""
from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from system_random import random_program, scaled_aim

from accel.cli import main
from accel.config import EnergyConfig, load_preset, preset_names
from accel.emulator.system import SystemEngine, static_events
from accel.energy import EVENTS, energy, event_energies_pj, static_power_mw
from accel.interfaces.pim import CFR_FORMAT, mac_weights
from accel.interfaces.vector import vector_events
from accel.isa import VectorOp
from accel.outputs import OutputError, check_output_dir, check_output_file, write_atomic, write_text_atomic
from accel.perfetto import trace_json, write_trace
from accel.plots import (FIGURES, compute_roofs, operator_rows, roof, roofline_figure, timeline_figure,
                         write_plots)
from accel.program import Program, ProgramBuilder
from accel.rows import OperatorRow
from accel.progress import progress_bar
from accel.timeline import busy_profile, stream_spans

ROOT = Path(__file__).resolve().parent.parent
PRESETS = preset_names()


# --------------------------------------------------------------------------------------------------------------------
# Energy table and formula


def test_energy_per_event_hand_computed():
    """Every event kind that costs energy, on aim-gddr6 (2 KB rows, 256-bit columns, bit-serial lanes, 512 BF16
    lanes, link 5.5 pJ/bit), by hand from the preset's numbers; one event of each kind."""
    dev = load_preset("aim-gddr6")
    pj = {
        "pim_act_banks": 0.18008 * 2048 * 8,
        "pim_rd_columns": (0.32091 + 1.81849) * 256,
        "pim_wr_columns": (0.88243 + 1.81849) * 256,
        "pim_wrgb_columns": 0.00063572 * 256,
        "pim_gb_read_columns": 0.00054395 * 256,
        "pim_mac_columns": 0.32091 * 256,
        "pim_mac_lane_ops": 0.0,            # bit-serial lanes are charged per term
        "pim_mac_terms": 0.1,
        "pim_rdmac_beats": 1.81849 * 256,
        "pim_ref": 47205.6,
        "pim_commands": 95.261,
        "vector_add_ops": 0.011906,
        "vector_mul_ops": 0.032742,
        "vector_exp_ops": 0.018559,
        "vector_act_ops": 0.018559,
        "vector_recips": 51.48,
        "vector_sram_reads": 0.006264 * 512 * 16,
        "vector_sram_writes": 0.0073323 * 512 * 16,
        "link_bits": 5.5,
        "array_macs": 0.0,
        "interconnect_bits": 4.4,
    }
    assert set(event_energies_pj(dev)) == set(pj)
    for kind, want in pj.items():
        e = energy({kind: 3}, dev, 0)
        assert e.dynamic_j[kind] == pytest.approx(3 * want * 1e-12, rel=1e-12), kind
        assert e.total_j == pytest.approx(3 * want * 1e-12, rel=1e-12) and e.static_total_j == 0
    int8 = replace(dev, pim=replace(dev.pim, lane="int8"))
    assert energy({"pim_mac_lane_ops": 2}, int8, 0).total_j == pytest.approx(2 * 0.3e-12)


def test_static_energy_is_power_times_time():
    """1000 cycles of tCK 0.5 ns on two aim-gddr6 devices: 32 channels x 263.817 mW, the vector unit's 0.69257 mW,
    no array, the device's 21.8085 mW, each x 2 devices x 500 ns."""
    dev = load_preset("aim-gddr6")
    e = energy({}, dev, 1000, devices=2)
    t = 1000 * 0.5e-9
    assert e.seconds == pytest.approx(t)
    assert e.static_j == pytest.approx({"pim": 2 * 32 * 263.817e-3 * t, "vector": 2 * 0.69257e-3 * t,
                                        "array": 0.0, "device": 2 * 21.8085e-3 * t})
    assert e.by_unit()["pim"] == pytest.approx(e.static_j["pim"]) and e.total_j == pytest.approx(sum(
        e.static_j.values()))
    arr = load_preset("hbm3-pim")
    assert static_power_mw(replace(arr, attention=None))["array"] == 0.0


def test_unknown_event_count_is_refused():
    with pytest.raises(ValueError, match=r"^event count 'pim_foo' is not an event of the energy table"):
        energy({"pim_foo": 1}, load_preset("fpga-tiny"), 10)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_has_a_complete_sourced_energy_table(name):
    """Strict loading makes every EnergyConfig key present; each number in the preset's ``energy:`` section carries
    a comment (its source, or "assumption"/"unused" said plainly)."""
    dev = load_preset(name)
    assert isinstance(dev.energy, EnergyConfig)
    text = (ROOT / "accel" / "presets" / f"{name}.yaml").read_text()
    section = text.split("\nenergy:\n", 1)[1].split("\n")
    keys = {}
    for line in section:
        m = re.match(r"^  (\w+): ([-\d.e]+)\s*(#.*)?$", line)
        if m:
            keys[m[1]] = m[3]
    assert set(keys) == {f.name for f in fields(EnergyConfig)}
    assert all(keys.values()), [k for k, c in keys.items() if not c]
    assert yaml.safe_load(text)["energy"] == {k: getattr(dev.energy, k) for k in keys}


def test_docs_energy_table_equals_the_presets():
    """docs/mapping.md's "Energy" table shows every number of every preset as the preset holds it."""
    text = (ROOT / "docs" / "mapping.md").read_text().split("\n## Energy\n", 1)[1]
    text = text.split("\n### The numbers, per preset\n", 1)[1].split("\n### ", 1)[0]
    header = next(ln for ln in text.splitlines() if ln.startswith("| key |"))
    cols = [c.strip() for c in header.strip("|").split("|")][1:]
    assert cols == PRESETS
    seen = set()
    devs = {p: load_preset(p) for p in cols}
    keys = {f.name for f in fields(EnergyConfig)} | {"link.energy_pj_per_bit", "interconnect.energy_pj_per_bit"}
    for ln in text.splitlines():
        m = re.match(r"^\| `([\w.]+)` \|(.*)\|$", ln)
        if m and m[1] in keys:
            seen.add(m[1])
            for preset, cell in zip(cols, m[2].split("|")):
                section, _, key = m[1].rpartition(".")
                want = getattr(getattr(devs[preset], section or "energy"), key)
                assert float(cell.strip()) == want, (m[1], preset)
    assert seen == keys


def test_static_events_name_every_event():
    dev = scaled_aim()
    ev = static_events(random_program(dev, 1), dev)
    assert list(ev) == list(EVENTS) and set(event_energies_pj(dev)) <= set(EVENTS)


def test_bit_serial_terms_follow_the_banks_formats():
    """MAC work follows each bank's latest CFR format (the first built datatype's, 8, before any). aim-scaled: 4
    banks, 64-bit columns, one 4-lane unit; format 8: 1 metadata column, 8 weights per column, 4 terms (int8), 1
    global-buffer column per MAC column; format 4: 2 metadata columns, 16 weights, 2 terms, 2 global-buffer columns.
    Metadata columns multiply nothing; a broadcast MAC reads the global buffer once, for its widest need."""
    dev = scaled_aim(1)
    b = ProgramBuilder(dev.name)
    s = b.stream("pim0").cmd("ACT", all_banks=1, row=1)
    s.cmd("MAC", all_banks=1, col=0, count=3)                        # 4 banks x 2 data columns x 8 weights, 4 terms
    s.cmd("CFR", all_banks=1, col=CFR_FORMAT, row=4).cmd("MAC", all_banks=1, col=0, count=4)   # 4 x 2 x 16, 2 terms
    s.cmd("CFR", bank=2, col=CFR_FORMAT, row=8).cmd("MAC", bank=2, col=1)                      # bank 2: 8 weights
    s.cmd("MAC", all_banks=1, col=3)                                 # 3 banks x 16 (format 4) + bank 2 x 8 (format 8)
    ev = static_events(b.build(), dev)
    assert ev["pim_mac_lane_ops"] == 4 * 2 * 8 + 4 * 2 * 16 + 8 + (3 * 16 + 8)
    assert ev["pim_mac_terms"] == 4 * 2 * 8 * 4 + 4 * 2 * 16 * 2 + 8 * 4 + (3 * 16 * 2 + 8 * 4)
    assert ev["pim_mac_columns"] == 4 * 3 + 4 * 4 + 1 + 4 and ev["pim_gb_read_columns"] == 3 * 1 + 4 * 2 + 1 + 2
    assert ev["pim_commands"] == 1 + 3 + 1 + 4 + 1 + 1 + 1


def test_vector_lane_work_by_kind():
    """SOFTMAX over 2 rows of 10 on 4 lanes: 3 beats per row per pass; max (1 compare), exp-and-sum (subtract, exp,
    add), scale (1 multiply) over every lane of every beat, one reciprocal per row."""
    v = load_preset("fpga-tiny").vector
    e = vector_events(VectorOp.SOFTMAX, 10, 2, 0, v)
    beats = 2 * 3
    assert (e.add_ops, e.exp_ops, e.mul_ops, e.act_ops, e.recips) == (3 * beats * 4, beats * 4, beats * 4, 0, 2)
    g = vector_events(VectorOp.GELU, 8, 0, 0, v)
    assert (g.act_ops, g.add_ops, g.recips) == (8, 0, 0)


# --------------------------------------------------------------------------------------------------------------------
# Plots


def _gemv_program(dev, cols: int = 8) -> tuple[Program, float, float]:
    """One channel's all-bank GEMV (an ACT, ``cols`` MAC columns, the MAC registers out) marked as operator 1, with
    its FLOPs (2 per weight multiplied) and bytes (the columns read) as facts, then a GELU on the vector unit."""
    p = dev.pim
    flops = 2.0 * p.banks * mac_weights(dev.bank, dev.bank.reset_format, 0, cols)
    nbytes = p.banks * cols * p.column_bits / 8
    b = ProgramBuilder(dev.name)
    b.stream("pim0").mark(1).cmd("ACT", all_banks=1, row=1).cmd("MAC", all_banks=1, col=0, count=cols) \
        .cmd("RDMAC", all_banks=1).signal(0)
    b.stream("link").wait("pim0", 0).xfer("pim0", "vector", 64).signal(1)
    b.stream("vector").wait("link", 1).mark(2).cmd("GELU", length=8, src=0, dst=1)
    b.operators.update({1: {"name": "gemv", "kind": "gemv", "layer": 0, "flops": flops, "bytes": nbytes},
                        2: {"name": "gelu", "kind": "gelu", "layer": 0, "flops": 8, "bytes": 32}})
    return b.build(), flops, nbytes


@pytest.mark.parametrize("name", ["fpga-small", "aim-gddr6", "hbm2-pim"])
def test_roofline_points_lie_under_the_roofs(name):
    """An all-bank GEMV's achieved FLOP/s (from the engine's time) never exceeds the device's roof at its
    intensity, nor the PIM compute roof."""
    dev = load_preset(name)
    prog, flops, nbytes = _gemv_program(dev, cols=min(32, dev.pim.columns))
    res = SystemEngine(dev).run(prog)
    row = next(r for r in operator_rows(res, prog) if r.name == "gemv")
    assert row.unit == "pim" and row.flops == flops and row.intensity == pytest.approx(flops / nbytes)
    assert 0 < row.flops_per_s <= roof(dev, row.intensity) and row.flops_per_s <= compute_roofs(dev)["pim"]


def test_write_plots(tmp_path):
    dev = load_preset("fpga-small")
    prog, _, _ = _gemv_program(dev)
    res = SystemEngine(dev).run(prog)
    paths = write_plots(tmp_path / "plots", res, prog, dev, energy=energy(res.events, dev, res.cycles))
    assert sorted(p.name for p in paths) == sorted(f"{n}.{x}" for n in FIGURES for x in ("png", "svg"))
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 5000, p
        assert data.startswith(b"\x89PNG") if p.suffix == ".png" else b"<svg" in data[:400]
    assert sorted(x.name for x in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths)  # no temp files
    rows = [OperatorRow("x", "gemm", 3, "gpu", 1e9, 1e6, 0.0, 1e-3, "link")]   # rows given by a mapper
    ax = roofline_figure(dev, rows).axes[0]
    assert [c.get_offsets().tolist() for c in ax.collections] == [[[1e3, 1e12]]]


def test_timeline_keeps_its_rows_readable():
    """Past max_rows streams only the first PIM channels are drawn, beside every other stream."""
    dev = scaled_aim(4)
    prog = random_program(dev, 2)
    res = SystemEngine(dev).run(prog)
    ax = timeline_figure(res, prog, max_rows=4).axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(shown) == sorted(["pim0", "pim1", "vector", "link"]) and "channels 0 .. 1" in ax.get_title()
    assert len(timeline_figure(res, prog).axes[0].get_yticklabels()) == len(prog.streams)


# --------------------------------------------------------------------------------------------------------------------
# Trace


def _check_trace(tr: dict, prog: Program) -> list[dict]:
    """The structure Perfetto needs; returns the complete events."""
    events = tr["traceEvents"]
    xs = [e for e in events if e["ph"] == "X"]
    for e in xs:
        assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(e) and e["dur"] >= 0 and e["ts"] >= 0
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    procs = {e["pid"] for e in events if e["name"] == "process_name"}
    assert sorted(threads.values()) == sorted(prog.names)
    assert {(e["pid"], e["tid"]) for e in xs} <= set(threads) and {e["pid"] for e in events} <= procs
    by_track: dict[tuple[int, int], list[dict]] = {}
    for e in xs:
        by_track.setdefault((e["pid"], e["tid"]), []).append(e)
    for track in by_track.values():
        track.sort(key=lambda e: e["ts"])
        for a, b in zip(track, track[1:]):
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-6, (a, b)
    for e in events:
        if e["ph"] == "C":
            assert {"name", "ts", "pid", "tid"} <= set(e) and all(isinstance(v, float) for v in e["args"].values())
    return xs


@pytest.mark.parametrize("seed", range(12))
def test_trace_structure_on_random_programs(seed):
    """Random multi-unit programs (markers repeated and interleaved with waits, so operator spans would overlap):
    every event well formed, one named track per stream, no overlap on a track."""
    dev = scaled_aim() if seed % 2 else load_preset("fpga-small")
    prog = random_program(dev, seed)
    res = SystemEngine(dev).run(prog)
    xs = _check_trace(json.loads(json.dumps(trace_json(res, prog))), prog)
    marks = sum(len(s.marks) for s in res.streams.values())
    assert sum(e["args"].get("merged", 1) for e in xs if "operator" in e["args"]) == marks


def test_trace_caps_spans_and_writes_compact_json(tmp_path):
    dev = scaled_aim()
    prog = random_program(dev, 5, size=40)
    res = SystemEngine(dev).run(prog)
    for name, spans in stream_spans(res, prog, cap=3).items():
        assert len(spans) <= 4, name
        s = res.streams[name]
        assert sum(sp.count for sp in spans) == (len(s.marks) or len(s.intervals))
    path = write_trace(tmp_path / "t.json", res, prog, cap=3)
    tr = json.loads(path.read_text())
    _check_trace(tr, prog)
    assert tr["displayTimeUnit"] == "ns" and tr["otherData"]["cycles"] == res.cycles


def test_busy_profile_integrates_to_the_busy_time():
    """The counter track's area is the busy time of the kind's streams, exact steps or binned."""
    dev = scaled_aim(3)
    prog = random_program(dev, 7, size=30)
    res = SystemEngine(dev).run(prog)
    want = sum(s.busy * res.ticks_per_cycle["pim"] for s in res.streams.values() if s.kind == "pim")
    for bins in (10_000, 7):
        t, v = busy_profile(res, "pim", 0, bins)
        assert len(t) <= max(bins + 1, 1) and v[-1] == 0 and v.max() <= 3
        assert float(np.sum(v[:-1] * np.diff(t))) == pytest.approx(want, rel=0.02 if bins == 7 else 1e-12)


# --------------------------------------------------------------------------------------------------------------------
# Output files


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("drawing failed")

    with pytest.raises(RuntimeError, match="drawing failed"):
        write_atomic(target, boom)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_bad_output_paths(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"^--trace .*: is a folder; give a file name"):
        check_output_file(tmp_path, "--trace")
    with pytest.raises(OutputError, match=r"^--trace .*/nope/t\.json: the folder .*/nope does not exist; create it"):
        check_output_file(tmp_path / "nope" / "t.json", "--trace")
    with pytest.raises(OutputError, match=r"the folder .*/f is a file, not a folder"):
        check_output_file(tmp_path / "f" / "t.json", "--trace")
    with pytest.raises(OutputError, match=r"^--plots .*/f: is a file; give a folder"):
        check_output_dir(tmp_path / "f", "--plots")
    with pytest.raises(OutputError, match=r"^--plots .*: the folder .*/a does not exist"):
        check_output_dir(tmp_path / "a" / "b", "--plots")
    assert not check_output_dir(tmp_path / "new", "--plots", create=False).exists()
    assert check_output_dir(tmp_path / "new", "--plots").is_dir()
    prog = random_program(load_preset("fpga-tiny"), 0)
    with pytest.raises(OutputError, match=r"^program .*/nope/p\.npz: the folder"):
        prog.save(tmp_path / "nope" / "p.npz")


# --------------------------------------------------------------------------------------------------------------------
# Progress bar


def test_progress_bar_goes_to_stderr_only(capsys):
    with progress_bar(3, "work", show=True) as bar:
        bar.update(3)
    out, err = capsys.readouterr()
    assert out == "" and "work" in err
    with progress_bar(3, "quiet", show=False) as bar:
        bar.update(3)
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------------------------------------------------
# accel emulate PROGRAM --plots --trace


@pytest.fixture
def program_file(tmp_path):
    prog, _, _ = _gemv_program(load_preset("fpga-small"))
    path = tmp_path / "p.txt"
    prog.save(path)
    return path


def test_emulate_plots_trace_and_energy(tmp_path, program_file, capsys):
    code = main(["emulate", str(program_file), "--json", "--plots", str(tmp_path / "figs"), "--trace",
                 str(tmp_path / "t.json"), "--progress"])
    out, err = capsys.readouterr()
    assert code == 0
    rep = json.loads(out)                     # the progress bars went to stderr
    assert "system engine" in err
    assert rep["energy"]["total_j"] > 0 and set(rep["energy"]["by_unit_j"]) >= {"pim", "vector", "link"}
    assert rep["trace_file"] == str(tmp_path / "t.json") and len(rep["plots"]) == 6
    _check_trace(json.loads((tmp_path / "t.json").read_text()), Program.load(program_file))
    assert all(Path(p).stat().st_size > 0 for p in rep["plots"])
    code = main(["emulate", str(program_file)])
    out, _ = capsys.readouterr()
    assert code == 0 and re.search(r"^energy     [\d.]+ [num]?J: dynamic .* static ", out, re.M)
    assert re.search(r"^  by unit  pim .*J, vector .*J", out, re.M)


@pytest.mark.parametrize("args,message", [
    (["--trace", "{tmp}"], r"--trace .*: is a folder; give a file name"),
    (["--trace", "{tmp}/missing/t.json"], r"--trace .*/missing/t\.json: the folder .* does not exist"),
    (["--plots", "{tmp}/missing/figs"], r"--plots .*/missing/figs: the folder .* does not exist"),
    (["--plots", "{tmp}/p.txt"], r"--plots .*/p\.txt: is a file; give a folder"),
])
def test_emulate_bad_output_paths(tmp_path, program_file, capsys, args, message):
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["emulate", str(program_file)] + [a.replace("{tmp}", str(tmp_path)) for a in args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert re.search(message, err) and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # nothing written, the run never started


def test_emulate_trace_file_refuses_plots(tmp_path, capsys):
    trace = tmp_path / "t.trace"
    trace.write_text("ACT all_banks=1 row=1\nMAC all_banks=1 col=0 count=4\n")
    code = main(["emulate", str(trace), "--device", "fpga-small", "--plots", str(tmp_path / "f")])
    _, err = capsys.readouterr()
    assert code == 2 and "need a multi-stream program" in err
