"""Fuzz targets: random and mutated inputs for every file format accel reads and for the command line.

Each target is a hypothesis strategy of inputs and a function that feeds one input to the library (or to
``accel.cli.main`` in-process) in a scratch folder. The rule every target checks (:func:`outcome`): an input either
works or raises :class:`accel.errors.AccelError` whose message is one line; the command line returns 0, 2 (a user or
usage error, one line on stderr) or 1 (a check that failed), never 70 (a bug). Any other exception fails.

``tests/test_fuzz.py`` runs every target with a bounded number of examples; ``scripts/fuzz.py --examples N`` runs them
long. Inputs start from real files (the presets, traces and programs of the test suite) and mutate them, so most
inputs are nearly right, where validation has the most to check.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Callable

from hypothesis import strategies as st

from accel.errors import AccelError

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------------------------------
# The rule


def outcome(fn: Callable[[], Any]) -> str:
    """Run ``fn``: ``"ok"`` if it returns, ``"error"`` for an AccelError with a one-line message; anything else
    propagates (the fuzz test fails on it)."""
    try:
        fn()
    except AccelError as e:
        msg = str(e)
        assert msg and "\n" not in msg, f"an AccelError must be one line: {msg!r}"
        assert len(msg) < 2000, f"an AccelError must be short: {len(msg)} characters"
        return "error"
    return "ok"


# --------------------------------------------------------------------------------------------------------------------
# Text mutations

#: Values that break rules: out of range, wrong type, YAML and JSON oddities, huge, nested, unhashable.
ODD_VALUES = ["0", "-1", "1", "2", "3", "7", "16", "64", "65536", "1e400", "4e1", "-0.0", "nan", ".inf", "[]", "{}",
              "[a, b]", "{a: 1}", "? [a, b]\n: 1", "true", "no", "null", "~", "'x'", '"\\xff"', "0x10", "0o17",
              "99999999999999999999999", "1" * 60, "&a 1", "*a", "*nope", "!!python/object:os.system", "!!binary x",
              "2020-01-01", "1.5", "<<: {a: 1}", "[" * 300 + "]" * 300, "[[[[[[1]]]]]]", "- x", "a: b: c", "'",
              "\t", "é", "\x00", "int8", "bitserial", "fpga-tiny", "aim-gddr6"]


@st.composite
def mutated(draw: st.DrawFn, bases: list[str], values: list[str] = ODD_VALUES) -> bytes:
    """A base text with a few random edits: a value replaced, a line deleted, duplicated or moved, a token inserted,
    an indentation changed, a random byte; occasionally random bytes alone."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.binary(max_size=200))
    lines = draw(st.sampled_from(bases)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 7))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if not lines:
            lines = [""]
        line = lines[i]
        if kind == 0 and ":" in line:          # a value replaced
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {draw(st.sampled_from(values))}"
        elif kind == 1:                        # a line deleted
            del lines[i]
        elif kind == 2:                        # a line duplicated (duplicate keys)
            lines.insert(i, line)
        elif kind == 3:                        # a token replaced inside the line
            toks = line.split(" ")
            j = draw(st.integers(0, max(0, len(toks) - 1)))
            toks[j] = draw(st.sampled_from(values))
            lines[i] = " ".join(toks)
        elif kind == 4:                        # indentation changed
            lines[i] = draw(st.sampled_from(["", " ", "    ", "\t"])) + line.lstrip()
        elif kind == 5:                        # a line moved
            lines.insert(draw(st.integers(0, len(lines))), lines.pop(i))
        elif kind == 6:                        # free text
            lines.insert(i, draw(st.text(max_size=30)))
        else:                                  # a raw byte somewhere
            raw = "\n".join(lines).encode()
            k = draw(st.integers(0, len(raw)))
            return raw[:k] + bytes([draw(st.integers(0, 255))]) + raw[k:]
    return "\n".join(lines).encode("utf-8", errors="surrogatepass") if lines else b""


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


# --------------------------------------------------------------------------------------------------------------------
# Device YAML

PRESETS = sorted((ROOT / "accel" / "presets").glob("*.yaml"))
PRESET_TEXTS = [p.read_text() for p in PRESETS]


def device_yaml(data: bytes, tmp: Path) -> str:
    from accel.config import load_device

    return outcome(lambda: load_device(_write(tmp, "dev.yaml", data)))


# --------------------------------------------------------------------------------------------------------------------
# Traces (AiM host format and our text form)

AIM_BASE = [
    "W CFR 0 1\nAiM WR_GB 64 0 0xffffffff\nAiM WR_BIAS 0 0xffffffff\nAiM MAC_ABK 64 0xffffffff 0\n"
    "AiM MAC_ABK 64 0xffffffff 1\nAiM RD_MAC 0 0xffffffff\nAiM SYNC\nAiM MAC_SBK 9 0xffffffff 3 7\nAiM EOC",
    "# weights\nAiM WR_SBK 0 0x80000000 0 0\nAiM WR_SBK 0 0x80000000 4 0\nR MEM 0 1 2\nW MEM 0 1 3\n"
    "AiM COPY_BKGB 4 0x80000000 1 2\nAiM COPY_GBBK 4 0x80000000 1 2\nAiM EWMUL 4 0x80000000 2\nAiM AF 0x80000000\n"
    "AiM RD_AF 0 0x80000000\nW GPR 3\nAiM EWADD 4 0 1\nAiM EOC",
    # plain W/R MEM lines: the bulk (columns) reading and the fast model's checks of them
    "W MEM 0 0 0\nW MEM 0 1 0\nW MEM 0 0 1\nW MEM 0 1 1\nR MEM 0 0 0\nR MEM 0 1 0\nR MEM 0 0 1\nR MEM 0 1 1\n"
    "AiM MAC_ABK 4 0x80000000 2\nW MEM 0 2 5\nR MEM 0 2 5\nAiM EOC",
]
TEXT_BASE = [
    "ACT all_banks=1 row=3\nWRGB col=0 count=2 data=0x1,0x2\nMAC all_banks=1 col=0 count=8\nPRE all_banks=1\n"
    "RDMAC all_banks=1",
    "# one bank\nACT bank=1 row=2\nWR bank=1 col=1 count=2\nRD bank=1 col=0 count=3\nCFR col=8 row=1\n"
    "CLRMAC all_banks=1\nPRE bank=1\nREF\n0x0",
]
TRACE_VALUES = ODD_VALUES + ["AiM", "EOC", "ISR_EOC", "MAC_ABK", "W", "R", "CFR", "GPR", "MEM", "0xffffffff",
                             "0x80000000", "0x0", "16383", "16384", "count=0", "count=2047", "row=-1", "ch=0",
                             "channel=1", "data=0x1", "data=-1", "data=0x" + "f" * 70, "all_banks=1", "bank=99",
                             "col=1023", "ACT", "MAC", "WRGB", "RDMAC", "SIGNAL", "0x" + "f" * 17, "#", "row=3"]


@st.composite
def trace_inputs(draw: st.DrawFn) -> tuple[bytes, str, bool]:
    data = draw(mutated(AIM_BASE + TEXT_BASE, TRACE_VALUES))
    return data, draw(st.sampled_from(["fpga-tiny", "fpga-small", "aim-gddr6"])), draw(st.booleans())


def trace(inp: tuple[bytes, str, bool], tmp: Path) -> str:
    from accel.config import load_preset
    from accel.report import trace_report

    data, device, strict = inp
    path = _write(tmp, "t.trace", data)
    return outcome(lambda: trace_report(path, load_preset(device), strict=strict))


# --------------------------------------------------------------------------------------------------------------------
# Programs (text form)

PROGRAM_BASE = [
    "device fpga-tiny\nmeta {\"model\": \"x\"}\noperator 1 {\"name\": \"qkv\"}\nplacement w [[0, 0, 0, 1, 0, 4]]\n"
    "stream pim0\nMARK id=1\nACT all_banks=1 row=1\nWRGB col=0 count=2 data=0x1,0x2\nMAC all_banks=1 col=0 count=4\n"
    "RDMAC all_banks=1\nSIGNAL token=1\nstream link\nWAIT stream=pim0 token=1\nXFER src=pim0 dst=vector bytes=8\n"
    "SIGNAL token=2\nstream vector\nWAIT stream=link token=2\nADD length=4 src=0 src2=1 dst=2\n"
    "SOFTMAX length=8 count=2 src=0 dst=4",
    "device fpga-small\nstream pim0\nACT all_banks=1 row=2\nMAC all_banks=1 col=0 count=8\nSIGNAL token=3\n"
    "stream array\nWAIT stream=pim0 token=3\nATTEND m=4 k=8 n=8\nGEMM m=4 k=4 n=4 dataflow=1\nstream link\n"
    "XFER src=host dst=all bytes=64\n",
]
PROGRAM_VALUES = TRACE_VALUES + ["stream", "pim0", "pim9", "vector", "array", "link", "d1.pim0", "device", "devices",
                                 "meta", "operator", "placement", "WAIT", "stream=pim0", "stream=nope", "token=1",
                                 "token=1048576", "length=0", "length=16383", "src=9999", "dst=all", "src=all",
                                 "bytes=0", "k=999", "dataflow=3", "TOPK", "LAYERNORM", "XFER", "{\"a\":", "[[1]]"]


@st.composite
def program_inputs(draw: st.DrawFn) -> tuple[bytes, str]:
    return draw(mutated(PROGRAM_BASE, PROGRAM_VALUES)), draw(st.sampled_from(["engine", "cycle"]))


def program(inp: tuple[bytes, str], tmp: Path) -> str:
    from accel.emulator.system import run_program
    from accel.program import Program

    data, model = inp
    path = _write(tmp, "p.txt", data)

    def go() -> None:
        prog = Program.load(path)
        dev = prog.resolve_device(None if prog.device is not None else "fpga-tiny")
        if model == "cycle" and sum(len(s.words) for s in prog.streams) > 200:
            model_ = "engine"  # the per-cycle model is for small programs
        else:
            model_ = model
        run_program(prog, dev, model_)

    return outcome(go)


# --------------------------------------------------------------------------------------------------------------------
# Operator lists (YAML) and model directories (config.json)

#: A small operator list of every kind of operator (tests/test_workload.py checks what it reads as).
OPERATOR_LIST = """\
model: tiny
phase: decode
batch: 2
tokens: 1
context: 16
precision: {device: aim-gddr6, datatype: int4}
prologue:
  - {op: lookup, name: embed, rows: 2, width: 64, table: wte, table_rows: 100}
layers: 3
block:
  - {op: vector, name: ln, kind: layer_norm, rows: 2, width: 64, params: ["h.{layer}.ln.w", "h.{layer}.ln.b"]}
  - {op: gemm, name: qkv, m: 2, k: 64, n: 192, weight: "h.{layer}.qkv", bias: "h.{layer}.qkv_b"}
  - {op: kv_write, name: kv, batch: 2, tokens: 1, kv_heads: 4, head_dim: 16}
  - {op: attention, name: s, kind: attn_score, batch: 2, heads: 4, kv_heads: 4, head_dim: 16, queries: 1, kv_len: 16}
  - {op: vector, name: p, kind: softmax, rows: 8, width: 16}
  - {op: attention, name: c, kind: attn_context, batch: 2, heads: 4, kv_heads: 4, head_dim: 16, queries: 1,
     kv_len: 16}
  - {op: gemm, name: o, m: 2, k: 64, n: 64, weight: "h.{layer}.o", weights: int8}
epilogue:
  - {op: gemm, name: head, m: 2, k: 64, n: 100, weight: wte}
"""


def operator_list(data: bytes, tmp: Path) -> str:
    from accel.mapping.workload import load_operator_list

    return outcome(lambda: load_operator_list(_write(tmp, "ops.yaml", data)))


def mapped(inp: tuple[bytes, str, int, str], tmp: Path) -> str:
    """A mutated operator list mapped end to end (partition, placement, program, system engine) onto a device: every
    input maps or raises an AccelError (small workloads only: the fuzz is for rules, not for long runs)."""
    from accel.config import load_preset
    from accel.mapping.map import format_text, map_workload
    from accel.mapping.workload import load_operator_list

    data, device, devices, parallel = inp
    path = _write(tmp, "ops.yaml", data)

    def go() -> None:
        w = load_operator_list(path)
        if len(w.layers) > 8 or w.totals()["bytes"] > 2**26:
            return   # a big but legal list: mapping it takes long and proves nothing more
        format_text(map_workload(w, load_preset(device), devices=devices, parallel=parallel))

    return outcome(go)


@st.composite
def map_inputs(draw: st.DrawFn) -> tuple[bytes, str, int, str]:
    return (draw(mutated([OPERATOR_LIST])), draw(st.sampled_from(["aim-gddr6", "pim-gpt", "hbm2-pim", "fpga-small"])),
            draw(st.integers(1, 3)), draw(st.sampled_from(["tensor", "pipeline"])))


CONFIG_JSON = json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 128,
                          "vocab_size": 100, "n_inner": None, "activation_function": "gelu_new"}, indent=1)
JSON_VALUES = ["0", "-1", "1e400", "null", "true", "\"x\"", "[]", "{}", "[" * 5000 + "]" * 5000, "\"llama\"",
               "\"mixtral\"", "\"gpt2\"", "1.5", "99999999999999999999", "\"\\ud800\"", "NaN"]


def model_dir(data: bytes, tmp: Path) -> str:
    from accel.mapping.workload import resolve_model

    d = tmp / "model"
    d.mkdir(exist_ok=True)
    _write(d, "config.json", data)
    return outcome(lambda: resolve_model(str(d)))


# --------------------------------------------------------------------------------------------------------------------
# The command line

#: Files the CLI target's commands name (written into the scratch folder).
CLI_FILES = {"t.trace": TEXT_BASE[0], "a.trace": AIM_BASE[0], "p.txt": PROGRAM_BASE[0], "ops.yaml": OPERATOR_LIST,
             "dev.yaml": PRESET_TEXTS[PRESETS.index(ROOT / "accel" / "presets" / "fpga-small.yaml")],
             "bad.yaml": "name: [\n", "empty.trace": ""}
#: Commands that finish in well under a second (no simulator, no synthesis, no long runs).
CLI_COMMANDS = [
    ["devices"], ["devices", "fpga-tiny", "dev.yaml"], ["devices", "--json"], ["devices", "bad.yaml"],
    ["models"], ["models", "gpt2", "--phase", "decode", "--context", "16"], ["models", "ops.yaml", "--json"],
    ["models", "gpt2", "--phase", "prefill", "--prompt", "8", "--datatype", "int4", "--batch", "2"],
    ["emulate", "t.trace", "--device", "fpga-tiny"], ["emulate", "a.trace"], ["emulate", "p.txt", "--json"],
    ["emulate", "t.trace", "--strict", "--device", "dev.yaml"], ["emulate", "empty.trace"],
    ["emulate", "p.txt", "--trace", "out.json"], ["emulate", "p.txt", "--progress", "--trace", "nope/t.json"],
    ["emulate", "t.trace", "--plots", "figs"],
    ["array", "gemm", "--M", "4", "--K", "4", "--N", "4", "--rows", "2", "--cols", "2"],
    ["array", "gemm", "--M", "8", "--K", "8", "--N", "8", "--device", "fpga-small", "--timing", "scalesim"],
    ["array", "gemm", "--M", "4", "--K", "8", "--N", "4", "--device", "fpga-small", "--emulate"],
    ["array", "attention", "--device", "fpga-small", "--queries", "4", "--keys", "8", "--head-dim", "4"],
    ["gpu", "peaks"], ["gpu", "peaks", "--json"], ["fpga", "report", "."],
    ["rtl", "export", "nope", "--device", "fpga-tiny"],
    ["map", "ops.yaml"], ["map", "ops.yaml", "--devices", "2", "--parallel", "pipeline", "--device", "pim-gpt"],
    ["map", "ops.yaml", "--json", "o.json", "--program", "p.npz", "--trace", "t.json"], ["map", "gpt9", "--batch", "0"],
    ["gpu", "compare", "ops.yaml", "--gpu", "a100-80gb-sxm"], ["gpu", "compare", "ops.yaml", "--measure", "--json"],
]
CLI_VALUES = ["-1", "0", "1", "3", "16", "64", "99999999999999999999", "abc", "", "--json", "--device", "--preset",
              "fpga-tiny", "fpga-small", "aim-gddr6", "hbm3-pim", "nope", "dev.yaml", "bad.yaml", "missing.yaml",
              "t.trace", "p.txt", "ops.yaml", ".", "--strict", "--help", "-h", "--M", "--K", "--rows", "--cols",
              "--timing", "scalesim", "--dataflow", "ws", "is", "--emulate", "--phase", "prefill", "--context",
              "--prompt", "--batch", "--datatype", "mixed:int8=0.5,int4=0.5", "int9", "--experts", "worst", "2",
              "--group-size", "--queries", "--keys", "--head-dim", "--model", "cycle", "--trace", "--progress",
              "nope/t.json", "\x00", "é", "-", "--", "--devices", "--parallel", "pipeline", "tensor", "--program",
              "--weights", "--gpu", "h100-sxm", "hbm2-pim", "pim-gpt"]


@st.composite
def cli_inputs(draw: st.DrawFn) -> list[str]:
    argv = list(draw(st.sampled_from(CLI_COMMANDS)))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 2))
        i = draw(st.integers(0, len(argv)))
        if kind == 0:
            argv.insert(i, draw(st.sampled_from(CLI_VALUES)))
        elif argv and i < len(argv):
            if kind == 1:
                argv[i] = draw(st.sampled_from(CLI_VALUES))
            else:
                del argv[i]
    return argv


def cli(argv: list[str], tmp: Path) -> str:
    import os

    from accel.cli import main

    for name, text in CLI_FILES.items():
        (tmp / name).write_text(text)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # usage errors and --help
                code = e.code if isinstance(e.code, int) else 2
    finally:
        os.chdir(cwd)
    text = err.getvalue()
    assert code in (0, 1, 2), f"accel {argv}: exit status {code}: {text}"
    if code == 2:
        errors = [ln for ln in text.splitlines() if ": error: " in ln]
        assert len(errors) == 1, f"accel {argv}: a user error is one line: {text!r}"
    return "ok" if code == 0 else "error"


# --------------------------------------------------------------------------------------------------------------------

#: name -> (strategy, target).
TARGETS: dict[str, tuple[st.SearchStrategy, Callable[[Any, Path], str]]] = {
    "device_yaml": (mutated(PRESET_TEXTS), device_yaml),
    "trace": (trace_inputs(), trace),
    "program": (program_inputs(), program),
    "operator_list": (mutated([OPERATOR_LIST]), operator_list),
    "model_dir": (mutated([CONFIG_JSON], JSON_VALUES), model_dir),
    "map": (map_inputs(), mapped),
    "cli": (cli_inputs(), cli),
}
