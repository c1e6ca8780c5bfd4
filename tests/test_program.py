"""The program format: text and .npz forms round-trip exactly, parsing is strict (file:line, the rule), files are
written whole, and ``accel emulate`` runs programs of either form."""
from __future__ import annotations

import json

import numpy as np
import pytest
from system_random import random_program, system_devices

from accel.cli import main
from accel.config import load_preset
from accel.emulator.system import SystemEngine
from accel.isa import Family, PimOp, SyncOp, encode
from accel.program import (Program, ProgramBuilder, ProgramError, Stream, is_program_file, parse_stream_name,
                           stream_items)


@pytest.mark.parametrize("dev", system_devices()[:3], ids=lambda d: d.name)
def test_text_and_npz_round_trip(dev, tmp_path):
    """Random programs (every family, data words, SYNC) survive text -> program and .npz -> program exactly."""
    for seed in range(15):
        prog = random_program(dev, seed)
        prog.meta.update({"model": "gpt2", "context": 16})
        prog.operators = {0: {"name": "qkv", "kind": "gemv", "layer": 0}, 3: {"name": "ln"}}
        prog.placement = {"W_qkv": [[0, 0, 1, 3, 0, 4]], "kv": []}
        text = prog.to_text()
        back = Program.from_text(text)
        assert back == prog and back.to_text() == text
        f = tmp_path / f"p{seed}.npz"
        prog.save(f)
        assert Program.load(f) == prog


def test_inline_device_and_devices(tmp_path):
    import yaml

    from accel.config import _preset_dir

    data = yaml.safe_load((_preset_dir() / "fpga-tiny.yaml").read_text())
    b = ProgramBuilder(data, devices=2)
    b.stream("d0.pim0").cmd("ACT", row=1).signal(0)
    b.stream("d1.vector").wait("d0.pim0", 0).cmd("COPY", length=4, src=0, dst=1)
    prog = b.build()
    for f in (tmp_path / "p.txt", tmp_path / "p.npz"):
        prog.save(f)
        back = Program.load(f)
        assert back == prog and back.resolve_device().name == "fpga-tiny"
    assert SystemEngine(prog.resolve_device()).run(prog).streams["d1.vector"].end > 0


def test_builder_and_items():
    b = ProgramBuilder("fpga-tiny")
    b.stream("vector").wait("pim0", 2).mark(5).cmd("ADD", length=4, src=0, src2=1, dst=2).wait("pim0", 2)
    b.stream("pim0").signal(2).cmd("NOP").signal(2)
    prog = b.build()
    assert prog.names == ["vector", "pim0"] and prog.index("pim0") == 1
    from accel.program import MARK, RUN, SIGNAL, WAIT

    assert stream_items(prog, 0) == [(WAIT, 1, 2, 0), (MARK, 5, 0, 0), (RUN, 2, 3, 0), (WAIT, 1, 2, 1)]
    assert stream_items(prog, 1) == [(SIGNAL, 2, 0, 0), (RUN, 1, 2, 0), (SIGNAL, 2, 1, 0)]
    with pytest.raises(ProgramError, match=r"^stream vector command 0: WAIT on stream 'link', which has no "
                                           r"commands; streams are vector$"):
        p = ProgramBuilder()
        p.stream("vector").wait("link", 0)
        p.build()


def _walk(s: Stream) -> list[tuple[int, int, int, int]]:
    """The items of a stream by a plain walk over its words (the naive reference of ``stream_items``)."""
    from accel.program import MARK, RUN, SIGNAL, WAIT

    out, lo, seen = [], 0, {}
    f = {n: s.field(Family.SYNC, n) for n in ("op", "token", "stream", "id")}
    for p in range(len(s.words)):
        if p < lo or s.families[p] != Family.SYNC:
            continue
        op, tok, prod, ident = (int(f[n][p]) for n in ("op", "token", "stream", "id"))
        if p > lo:
            out.append((RUN, lo, p, 0))
        lo = p + 1
        key = (op, tok, prod if op == SyncOp.WAIT else 0)
        k = seen.get(key, 0)
        if op in (SyncOp.SIGNAL, SyncOp.WAIT):
            seen[key] = k + 1
        if op == SyncOp.SIGNAL:
            out.append((SIGNAL, tok, k, 0))
        elif op == SyncOp.WAIT:
            out.append((WAIT, prod, tok, k))
        elif op == SyncOp.MARK:
            out.append((MARK, ident, 0, 0))
        elif op == SyncOp.REPEAT:
            out.append((RUN, p + 1, p + 1 + ident, tok))
            lo = p + 1 + ident
    if lo < len(s.words):
        out.append((RUN, lo, len(s.words), 0))
    return out


def test_stream_items_equal_a_walk_of_the_words():
    """Random streams of unit commands, SIGNALs, WAITs, MARKs, SYNC NOPs and REPEATs (bodies included): the items
    (built with numpy) are those of a plain walk."""
    rng = np.random.default_rng(7)
    for _ in range(400):
        words: list[int] = []
        for _ in range(int(rng.integers(0, 40))):
            r = rng.random()
            if r < 0.4:
                words.append(encode("pim", PimOp.ACT, row=int(rng.integers(4))))
            elif r < 0.55:
                words.append(encode("sync", SyncOp.SIGNAL, token=int(rng.integers(3))))
            elif r < 0.7:
                words.append(encode("sync", SyncOp.WAIT, stream=int(rng.integers(1, 3)), token=int(rng.integers(3))))
            elif r < 0.8:
                words.append(encode("sync", SyncOp.MARK, id=int(rng.integers(9))))
            elif r < 0.87:
                words.append(encode("sync", SyncOp.NOP))
            else:
                n = int(rng.integers(1, 4))
                words += [encode("sync", SyncOp.REPEAT, token=int(rng.integers(1, 5)), id=n)]
                words += [encode("pim", PimOp.MAC, col=int(rng.integers(4)))] * n
        prog = Program([Stream("pim0", np.array(words, dtype=np.uint64))])
        assert stream_items(prog, 0) == _walk(prog.streams[0])


@pytest.mark.parametrize("text,msg", [
    ("ACT row=1\n", r"^p:1: a command before the first 'stream NAME' line; header lines are device, devices, meta, "
                    r"operator, placement$"),
    ("stream pim0\nFOO\n", r"^p:2: 'FOO' is not a PIM command; a pim stream takes NOP, ACT, .*SIGNAL, WAIT, MARK, REPEAT "
                           r"\(or a 0x\.\.\. command word\)$"),
    ("stream pim0\nstream pim0\n", r"^p:2: stream pim0 is given twice; give each unit one stream$"),
    ("stream gpu\n", r"^p:1: stream name 'gpu' is not a unit: names are pim0 \.\. pimN-1, vector, array, link"),
    ("stream pim\n", r"^p:1: stream name 'pim' is not a unit"),
    ("stream vector pim0\n", r"^p:1: 'stream' takes one name"),
    ("stream vector\nWAIT stream=link token=1\n", r"^p:2: WAIT stream='link': no such stream in this program; "
                                                  r"streams are vector$"),
    ("stream vector\nADD length=4 src=x\n", r"^p:2: 'src=x': the value must be an integer \(decimal or 0x\.\.\.\)$"),
    ("stream vector\nADD length=4 length=5\n", r"^p:2: field 'length' is given twice$"),
    ("stream vector\nADD length=99999\n", r"^p:2: VECTOR\.ADD field length = 99999: must be between 0 and 16383"),
    ("stream link\nXFER src=pim0 dst=gpu bytes=4\n", r"^p:2: link endpoint 'gpu' does not exist; endpoints are pim0 "
                                                     r"\.\. pim255, vector, array, host, all, d0 \.\. d251 "
                                                     r"\(devices, for the interconnect\)$"),
    ("stream pim0\nWRGB count=2 data=0x1\n", r"^p:2: WRGB of 2 column\(s\) needs 2 data words, got 1$"),
    ("stream pim0\nACT row=1 data=0x1\n", r"^p:2: only WR and WRGB carry data words$"),
    ("stream pim0\ndevice fpga-tiny\n", r"^p:2: 'device' belongs before the first 'stream' line$"),
    ("meta {oops\n", r"^p:1: meta must be JSON"),
    ("meta [1]\n", r"^p:1: meta must be a JSON object$"),
    ("devices 0\n", r"^p:1: devices '0': must be a whole number of at least 1$"),
    ("operator x {}\n", r"^p:1: 'operator ID \{\.\.\.\}': ID must be the marker id"),
    ("operator 1 {}\noperator 1 {}\n", r"^p:2: operator 1 is given twice$"),
    ("placement W [[1, 2]]\n", r"^p:1: placement W: must be a list of \[channel, bank, row_lo, row_hi, col_lo, "
                               r"col_hi\] boxes"),
])
def test_text_errors(text, msg):
    with pytest.raises(ProgramError, match=msg):
        Program.from_text(text, "p")


def test_program_names_its_device():
    prog = Program.from_text("stream pim0\nNOP\n")
    with pytest.raises(ProgramError, match=r"names no device; give one \(--device PRESET\)"):
        prog.resolve_device()
    assert prog.resolve_device("fpga-tiny").name == "fpga-tiny"


def test_stream_names():
    assert parse_stream_name("pim12") == (0, "pim", 12)
    assert parse_stream_name("d3.vector") == (3, "vector", -1)
    with pytest.raises(ProgramError, match=r"stream 'pim0' appears twice"):
        Program([Stream("pim0", []), Stream("pim0", [])])


def test_npz_errors(tmp_path):
    prog = random_program(load_preset("fpga-tiny"), 1)
    good = prog._arrays()
    f = tmp_path / "bad.npz"

    def write(**arrays):
        with open(f, "wb") as fh:
            np.savez(fh, **arrays)

    write(**{k: v for k, v in good.items() if k != "words_0"})
    with pytest.raises(ProgramError, match=r"bad\.npz: stream \w+: entry 'words_0' is missing$"):
        Program.load(f)
    write(**good, extra=np.zeros(1))
    with pytest.raises(ProgramError, match=r"bad\.npz: unknown entry 'extra'$"):
        Program.load(f)
    write(**{**good, "words_0": good["words_0"].astype(np.int64)})
    with pytest.raises(ProgramError, match=r"entries must be words uint64\[n\]"):
        Program.load(f)
    write(**{**good, "program": np.array(json.dumps({"format": "other"}))})
    with pytest.raises(ProgramError, match=r"the 'program' entry must hold exactly"):
        Program.load(f)
    f.write_bytes(b"not a zip")
    with pytest.raises(ProgramError, match=r"bad\.npz: not a program file in \.npz form"):
        Program.load(f)
    with pytest.raises(ProgramError, match=r"nope\.txt: cannot read the program"):
        Program.load(tmp_path / "nope.txt")


def test_save_is_whole_or_nothing(tmp_path):
    prog = random_program(load_preset("fpga-tiny"), 2)
    prog.meta = {"bad": object()}  # not JSON: the write fails
    for name in ("p.npz", "p.txt"):
        with pytest.raises(TypeError):
            prog.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_is_program_file(tmp_path):
    (tmp_path / "t.txt").write_text("# trace\nACT all_banks=1 row=0\n")
    (tmp_path / "p.txt").write_text("# program\n\nstream pim0\nACT all_banks=1 row=0\n")
    (tmp_path / "a.txt").write_text("AiM EOC\n")
    assert not is_program_file(tmp_path / "t.txt") and not is_program_file(tmp_path / "a.txt")
    assert is_program_file(tmp_path / "p.txt") and is_program_file(tmp_path / "x.npz")


def test_sync_words_in_a_pim_trace_say_what_they_need():
    from accel.traces import TraceError, parse_text_program

    with pytest.raises(TraceError, match=r"^t:1: 'SIGNAL' is not a PIM command \(SIGNAL, WAIT, MARK and REPEAT "
                                         r"need a program with stream headers\)"):
        parse_text_program("SIGNAL token=1\n", "t")
    assert parse_text_program(f"{encode('pim', 'ACT', row=2):#x}\n") == [(encode("pim", "ACT", row=2), None)]


def test_emulate_runs_programs(tmp_path, capsys):
    dev = load_preset("fpga-small")
    prog = random_program(dev, 4)
    prog.operators = {k: {"name": f"op{k}"} for k in range(5)}
    txt, npz = tmp_path / "p.txt", tmp_path / "p.npz"
    prog.save(txt)
    prog.save(npz)
    outs = []
    for f in (txt, npz):
        for model in ("engine", "cycle"):
            assert main(["emulate", str(f), "--json", "--model", model]) == 0
            outs.append(json.loads(capsys.readouterr().out))
    ref = SystemEngine(dev).run(prog)
    for o in outs:
        assert o["cycles"] == ref.cycles and o["device"] == "fpga-small"
        assert {k: v["busy"] for k, v in o["streams"].items()} == {k: s.busy for k, s in ref.streams.items()}
    assert main(["emulate", str(txt)]) == 0
    out = capsys.readouterr().out
    assert f"cycles     {ref.cycles}" in out and "pim0" in out and "events     " in out


def test_emulate_bad_program_exits_2(tmp_path, capsys):
    f = tmp_path / "p.txt"
    b = ProgramBuilder("fpga-tiny")
    b.stream("pim0").wait("vector", 0).signal(1)
    b.stream("vector").wait("pim0", 1).signal(0)
    b.build().save(f)
    assert main(["emulate", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"accel: error: {f}: the program deadlocks: pim0 waits for vector token 0") and \
        err.count("\n") == 1
    f.write_text("stream pim0\nACT row=1\nWAIT stream=pim0 token=0\n")
    assert main(["emulate", str(f), "--device", "fpga-tiny"]) == 2
    assert capsys.readouterr().err.startswith(f"accel: error: {f}:3: stream pim0 command 1: WAIT on its own stream")


def test_sync_field_layout():
    """WAIT carries the producer's index; SIGNAL and MARK their token and id."""
    w = encode("sync", SyncOp.WAIT, stream=3, token=9)
    s = Stream("vector", [w])
    assert s.field(Family.SYNC, "stream")[0] == 3 and s.field(Family.SYNC, "token")[0] == 9


def test_docs_examples_run():
    """The text-form and builder examples of docs/mapping.md parse and run."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "mapping.md").read_text()
    text = re.search(r"```\n(# accel-program 1.*?)```", doc, re.S).group(1)
    prog = Program.from_text(text, "mapping.md")
    assert Program.from_text(prog.to_text()) == prog
    r = SystemEngine(prog.resolve_device()).run(prog)
    assert r.streams["pim0"].marks[0][0] == 7 and r.streams["vector"].end * r.ticks_per_cycle["vector"] == r.ticks
    scope: dict = {}
    exec(re.search(r"```python\n(.*?)```", doc, re.S).group(1), scope)
    built = scope["prog"]
    assert len(built.streams) == 33 and SystemEngine(built.resolve_device()).run(built).cycles > 0
