"""The error path: every bad input gets one line (file:line where there is one, the value, the rule, the fix) and exit
status 2; closed pipes end quietly; bugs say so; long work says what it does; nothing can eat the machine.

The corpus below is issue 13's list of bad inputs, each with its exact message (run from the folder holding the
files, so that messages name them as a user would type them).
"""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from accel.cli import main, version_text
from accel.errors import AccelError, ConfigError, at, caused_by, one_line
from accel.files import parse_json, parse_yaml, read_text
from accel.outputs import OutputError, check_output_file, locked_dir

ROOT = Path(__file__).resolve().parent.parent
TINY = (ROOT / "accel" / "presets" / "fpga-tiny.yaml").read_text()

FILES = {
    "bad.trace": b"AiM MAC_ABK 64 0xffffffff 0\n\xff\xfe bad\nAiM EOC\n",
    "bad.yaml": TINY.encode() + b"\xff\n",
    "unhash.yaml": b"? [a, b]\n: 1\n",
    "deep.yaml": ("[" * 5000 + "]" * 5000 + "\n").encode(),
    "wide.trace": b"0x1ffffffffffffffffff\n",
    "empty.trace": b"",
    "comment.trace": b"# only a comment\n\n",
    "rowneg.trace": b"AiM MAC_ABK 1 0xffffffff -1\nAiM EOC\n",
    "rowbig.trace": b"AiM MAC_ABK 1 0xffffffff 99999999\nAiM EOC\n",
    "opsize.trace": b"AiM WR_GB 1048577 0 0xffffffff\nAiM EOC\n",
    "oprow.trace": b"AiM MAC_ABK 65 0xffffffff 0\nAiM EOC\n",
    "gpr.trace": b"W GPR 99999999\nAiM EOC\n",
    "cfr.trace": b"W CFR 2 8\nAiM EOC\n",
    "eoc.trace": b"AiM MAC_ABK 64 0xffffffff 0\nAiM EOC\nAiM MAC_ABK 64 0xffffffff 0\n",
    # the bulk (columns) reading of W/R MEM lines checks what the line-by-line reading does
    "memrow.trace": b"W MEM 0 0 0\nW MEM 0 1 16384\nAiM EOC\n",
    "memneg.trace": b"W MEM 0 0 0\nR MEM 0 0 -1\nAiM EOC\n",
    "memch.trace": b"W MEM 0 0 0\nR MEM 32 0 0\nAiM EOC\n",
    "membank.trace": b"W MEM 0 0 0\nR MEM 0 16 0\nAiM EOC\n",
    "memfirst.trace": b"W MEM 0 0 0\nAiM MAC_ABK 65 0xffffffff 0\nW MEM 0 0 99999\nAiM EOC\n",
    "memeoc.trace": b"W MEM 0 0 0\nAiM EOC\n# a comment may follow\nW MEM 0 0 1\n",
    # a bad row deep in a repeating stretch (which the fast model jumps over rather than visits)
    "memlong.trace": ("\n".join([f"W MEM {i % 4} {i % 16} {i // 64}" for i in range(2500)] + ["W MEM 1 2 16384"]
                                 + [f"R MEM {i % 4} {i % 16} {i // 64}" for i in range(500)] + ["AiM EOC"])
                      + "\n").encode(),
    # folders and --batch lists of traces
    "tr/a.trace": b"AiM MAC_ABK 1 0xffffffff 0\nAiM EOC\n",
    "tr/b.trace": b"W MEM 0 0 0\nAiM MAC_ABK 1 0xffffffff 99999999\nAiM EOC\n",
    "tr/notes.md": b"not a trace\n",
    "emptydir/.hidden": b"",
    "list.txt": b"# traces\ntr/a.trace\nmissing.trace\n",
    "badlist.txt": b"tr/a.trace\n\xff\n",
    "rep.trace": b"ACT all_banks=1 row=1 row=2\n",
    "chch.trace": b"ACT all_banks=1 row=1 ch=0 channel=0\n",
    "dataact.trace": b"ACT all_banks=1 row=1 data=0x1\n",
    "datawide.trace": b"WRGB col=0 count=1 data=0x10000\n",
    "dataneg.trace": b"WRGB col=0 count=1 data=-1\n",
    "count0.trace": b"ACT all_banks=1 row=1\nMAC all_banks=1 col=0 count=0\n",
    "ok.trace": b"ACT all_banks=1 row=1\nMAC all_banks=1 col=0 count=4\nMAC all_banks=1 col=0 count=4\n",
    "tck.yaml": TINY.replace("tck_ns: 83.333", "tck_ns: 4e1").encode(),
    "merge.yaml": TINY.replace("pim:\n  channels: 1", "pim:\n  <<: {channels: 2}\n  channels: 1").encode(),
    "energy.yaml": re.sub(r"\n  refresh_pj: [^\n]*", "\n  refresh_pj: -1.0", TINY).encode(),
    "rows.yaml": TINY.replace("  rows: 16\n", "  rows: 524288\n").encode(),
    "p.txt": b"device fpga-tiny\nstream pim0\nACT all_banks=1 row=1\nRD bank=0 col=0\nPRE all_banks=1\n"
             b"RD bank=0 col=0\n",
    "rep/report.json": b'{"version": 1, \xff}',
    "half/report.json": b'{"version": 1}',
    # accel map: model directories, operator lists, a program whose dependencies deadlock
    "nohf/README": b"",
    "badcfg/config.json": b'{"model_type": "gpt2", \xff}',
    "notype/config.json": b'{"n_layer": 2}',
    "ops.yaml": b"model: x\nphase: decode\n",
    "opsbad.yaml": b"model: x\nlayers: [\n",
    "dl.txt": b"device fpga-tiny\nstream pim0\nWAIT stream=vector token=1\nSIGNAL token=2\nstream vector\n"
              b"WAIT stream=pim0 token=2\nSIGNAL token=1\n",
}

#: What an unknown model's message lists.
KNOWN_MODELS = ("known models are gpt2, gpt2-medium, gpt2-large, gpt2-xl, opt-125m, opt-350m, opt-1.3b, opt"
                "-2.7b, opt-6.7b, llama2-7b, llama2-13b, llama2-70b, llama3-8b, mixtral-8x7b; or give the path of a H"
                "ugging Face model directory (config.json)")

#: (argv, the exact line on stderr)
CORPUS = [
    # non-UTF-8 files: the file, the line and column, the fix
    ("emulate bad.trace", "bad.trace:2:1: byte 0xff is not UTF-8 text; save the trace as UTF-8"),
    ("devices bad.yaml", f"bad.yaml:{TINY.count(chr(10)) + 1}:1: byte 0xff is not UTF-8 text; save the device description as UTF-8"),
    ("fpga report rep", "rep/report.json:1:16: byte 0xff is not UTF-8 text; save the build report as UTF-8; rebuild "
                        "with accel fpga build"),
    # YAML the strict loader refused with a traceback
    ("emulate ok.trace --device unhash.yaml",
     "unhash.yaml:1:3: a key must be plain text or a number, not a list; write the key as text"),
    ("emulate ok.trace --device deep.yaml",
     "deep.yaml:1:101: lists and mappings nested deeper than 100 levels; flatten the file"),
    ("devices tck.yaml", "tck.yaml: pim.timing.tck_ns = '4e1': YAML reads this as text, not a number: write it with "
                         "a '.' and a signed exponent (4.0e+1) or in plain decimals"),
    ("devices energy.yaml", "energy.yaml: energy.refresh_pj = -1.0: must not be negative (pJ)"),
    # a command word wider than 64 bits
    ("emulate wide.trace --device fpga-tiny",
     "wide.trace:1: command word '0x1ffffffffffffffffff' is wider than 64 bits; a command word is 64 bits (16 hex "
     "digits)"),
    # an FPGA build of a device that cannot be one, refused before anything is elaborated
    ("fpga build --board icebreaker --device aim-gddr6",
     "device aim-gddr6 has 32 PIM channels; an FPGA top builds one channel: use --device fpga-tiny (the board's "
     "preset) or a device YAML with pim.channels: 1"),
    ("fpga build --board icebreaker --device fpga-small",
     "preset fpga-small does not fit board icebreaker (iCE40UP5K-SG48): its bank arrays need 16 KiB of block RAM (4 "
     "banks x 64 rows x 64 B) where the part has 15 KiB (30 blocks of 4096 bits); try --device fpga-tiny; or a board "
     "with a bigger part: --board ulx3s-85f (LFE5U-85F-6BG381C, 83640 LUTs, 208 BRAM, 156 DSP)"),
    ("fpga report half", "half/report.json: an incomplete or altered report (KeyError: 'preset'); rebuild with accel "
                         "fpga build"),
    # output paths
    ("rtl wave bitserial -o .", "-o .: is a folder; give a file name (e.g. out)"),
    ("rtl wave bitserial -o tiny.yaml/w.vcd",
     "-o tiny.yaml/w.vcd: the folder tiny.yaml is a file, not a folder; give another path"),
    ("rtl export bitserial --device fpga-tiny -o tiny.yaml",
     "-o tiny.yaml: is a file; give a folder (it is created if missing)"),
    ("emulate p.txt --trace .", "--trace .: is a folder; give a file name (e.g. out)"),
    ("emulate p.txt --trace nope/t.json",
     "--trace nope/t.json: the folder nope does not exist; create it or give another path"),
    ("emulate p.txt --plots tiny.yaml", "--plots tiny.yaml: is a file; give a folder (it is created if missing)"),
    ("emulate ok.trace --plots figs", "ok.trace: --plots and --trace need a multi-stream program (a file with "
                                      "'stream' headers, or .npz); a PIM command trace has no operators or units to "
                                      "draw"),
    # traces that ran silently
    ("emulate empty.trace", "empty.trace: no commands (only blank lines and comments); a trace holds one command per "
                            "line (MAC all_banks=1 col=0 count=64, or AiM MAC_ABK 64 0xffffffff 0)"),
    ("emulate comment.trace", "comment.trace: no commands (only blank lines and comments); a trace holds one command "
                              "per line (MAC all_banks=1 col=0 count=64, or AiM MAC_ABK 64 0xffffffff 0)"),
    ("emulate rowneg.trace", "rowneg.trace:1: MAC_ABK row -1: must not be negative"),
    ("emulate rowbig.trace", "rowbig.trace:1: MAC_ABK row 99999999: the banks have rows 0 .. 16383"),
    ("emulate opsize.trace", "opsize.trace:1: WR_GB opsize 1048577: must be between 1 and 64, the columns of the "
                             "global buffer (2048 bytes); split the request"),
    ("emulate oprow.trace", "oprow.trace:1: MAC_ABK opsize 65: must be between 1 and 64, the columns of a row (2048 "
                            "bytes); split the request"),
    ("emulate gpr.trace", "gpr.trace:1: W GPR address 99999999: must be between 0 and 524287 (the AiM simulator's "
                          "GPR space)"),
    ("emulate cfr.trace", "cfr.trace:1: W CFR 2 8: must be between 0 and 7 (activation function 0 .. 7)"),
    ("emulate eoc.trace", "eoc.trace:3: 'AiM MAC_ABK 64 0xffffffff 0' follows 'AiM EOC' (line 2), which ends the "
                          "trace; remove it or move the EOC after it"),
    ("emulate memrow.trace", "memrow.trace:2: W MEM row 16384: the banks have rows 0 .. 16383"),
    ("emulate memneg.trace", "memneg.trace:2: R MEM row -1: must not be negative"),
    ("emulate memch.trace", "memch.trace:2: channel 32 does not exist (the device has 32)"),
    ("emulate membank.trace", "membank.trace:2: bank 16 does not exist (banks 0..15)"),
    ("emulate memfirst.trace", "memfirst.trace:2: MAC_ABK opsize 65: must be between 1 and 64, the columns of a row "
                               "(2048 bytes); split the request"),
    ("emulate memeoc.trace", "memeoc.trace:4: 'W MEM 0 0 1' follows 'AiM EOC' (line 2), which ends the trace; remove "
                             "it or move the EOC after it"),
    ("emulate memlong.trace", "memlong.trace:2501: W MEM row 16384: the banks have rows 0 .. 16383"),
    ("emulate memlong.trace --exact-reference", "memlong.trace:2501: W MEM row 16384: the banks have rows 0 .. 16383"),
    ("emulate tr/a.trace --aim-timing x",
     "unknown AiM timing 'x'; timings are 0f28a07, 2eb1ee0 (0f28a07: the simulator's HEAD; 2eb1ee0: the commit CENT "
     "pins)"),
    # folders and --batch lists: one line, and a bad trace names itself and its line
    ("emulate nofolder", "nofolder: cannot read the trace (No such file or directory); check the path"),
    ("emulate emptydir", "emptydir: no AiM host traces in it (files whose first request line starts with AiM, W or "
                         "R); give a folder holding traces, or one trace file"),
    ("emulate tr", "tr/b.trace:2: MAC_ABK row 99999999: the banks have rows 0 .. 16383"),
    ("emulate tr --strict", "tr/a.trace: --strict applies to command traces (accel text form); an AiM host trace is "
                            "scheduled by the AiM controllers, which issue each command when it is legal"),
    ("emulate --batch missing.txt",
     "missing.txt: cannot read the list of traces (No such file or directory); check the path"),
    ("emulate --batch badlist.txt", "badlist.txt:2:1: byte 0xff is not UTF-8 text; save the list of traces as UTF-8"),
    ("emulate --batch list.txt", "list.txt:3: 'missing.trace' is not a file (paths are relative to the list); list "
                                 "one trace file a line"),
    ("emulate --batch tr", "--batch tr: is a folder; run a folder's traces with accel emulate tr (no --batch), or "
                           "give --batch a file that lists traces one a line"),
    ("emulate tr --plots figs", "--plots and --trace need one multi-stream program, not a folder or --batch list of "
                                "traces"),
    # the text form
    ("emulate rep.trace --device fpga-tiny", "rep.trace:1: field 'row' is given twice"),
    ("emulate chch.trace --device fpga-tiny", "chch.trace:1: field 'channel' is given twice"),
    ("emulate dataact.trace --device fpga-tiny", "dataact.trace:1: only WR and WRGB carry data words"),
    ("emulate datawide.trace --device fpga-tiny",
     "datawide.trace:1: command 0: data words must be 16-bit column words (0 .. 0xffff)"),
    ("emulate dataneg.trace --device fpga-tiny", "dataneg.trace:1: 'data=-1': data words must not be negative"),
    ("emulate count0.trace --device fpga-tiny", "count0.trace:2: count=0: a run has at least one element; write "
                                                "count=1 or leave count out (a single command)"),
    # a device whose rows the command words cannot address
    ("emulate ok.trace --device rows.yaml",
     "device fpga-tiny: PIM field row is 18 bits but must address 524288 values; use a smaller preset"),
    # errors from deep inside name the file and the line that caused them
    ("emulate ok.trace --device fpga-tiny --strict",
     "ok.trace:2: MAC all_banks=1 count=4 at cycle 2: bank 0: rule RCD_MAC (nRCD_MAC) is 3 cycles short; issue it "
     "at cycle 5 or later, or run the channel in wait mode (strict=0)"),
    ("emulate p.txt", "p.txt:6: stream pim0 command 3: RD count=1 at cycle 7: bank 0 has no open row; ACT a row "
                      "first"),
    ("emulate p.txt --strict", "p.txt: --strict applies to command traces; a program's streams run in the system "
                               "engine, every command at its earliest legal cycle"),
    ("emulate bad.trace --strict --device fpga-tiny",
     "bad.trace:2:1: byte 0xff is not UTF-8 text; save the trace as UTF-8"),
    # exports that would not finish, refused up front
    ("rtl export pim --device aim-gddr6 --bank-arrays inline",
     "rtl export pim for aim-gddr6: the bank arrays hold 16777216 words (512 MiB per channel), more than the 65536 "
     "an export keeps inline (one initialisation line per word); use --bank-arrays external (a black-box memory "
     "module per bank, with a behavioural model) or auto"),
    ("rtl export gemm-os --device hbm3-pim",
     "rtl export gemm-os for hbm3-pim: 256x256 PEs would take about 44 minutes to export (and memory in proportion), "
     "over the limit of 5 minutes; export a smaller gemm-os: copy the preset into a YAML file, shrink the unit there "
     "and pass the file with --device"),
    ("rtl export bitserial --device fpga-tiny --bank-arrays external",
     "--bank-arrays external: only the pim unit has bank arrays; leave the option out for bitserial"),
    # accel map (issue 11's bad inputs): unknown names, model directories and operator lists, shapes, fitting,
    # datatypes, output paths
    ("map gpt9", f"unknown model 'gpt9' (did you mean 'gpt2'?); {KNOWN_MODELS}"),
    ("models gpt9", f"unknown model 'gpt9' (did you mean 'gpt2'?); {KNOWN_MODELS}"),
    ("map gpt2 --device aim-gddr7", "unknown preset 'aim-gddr7' (did you mean 'aim-gddr6'?); presets are aim-gddr6, "
                                    "aim-gddr6-bitmod, fpga-small, fpga-tiny, hbm2-pim, hbm3-pim, pim-gpt; or give a "
                                    "path to a YAML file"),
    ("map nohf", "nohf: no config.json; a Hugging Face model directory holds config.json and optionally "
                 "model.safetensors"),
    ("map badcfg", "badcfg/config.json:1:24: byte 0xff is not UTF-8 text; save the JSON file as UTF-8"),
    ("map notype", 'notype/config.json: has no model_type; supported are gpt2, opt, llama, mixtral (set "model_type" '
                   'to one of them)'),
    ("map ops.yaml", "ops.yaml: top level: missing key 'batch'; an operator list gives model, phase, batch, tokens, "
                     "context, precision and layers (docs/mapping.md, 'Sources')"),
    ("map opsbad.yaml", "opsbad.yaml:3:1: not valid YAML: expected the node content, but found '<stream end>' (while "
                        "parsing a flow node); check the indentation, colons and quotes there"),
    ("map missing.yaml", "missing.yaml: cannot read the operator list (No such file or directory); check the path"),
    ("map gpt2 --context 1025", "context 1025 > 1024 positions of gpt2: a decode step attends to at most 1024 tokens "
                                "(1023 cached + the new one); use a context of 1024 or less"),
    ("map gpt2 --phase prefill --prompt 2048", "prompt 2048 > 1024 positions of gpt2: a prompt holds at most 1024 "
                                               "tokens; use a prompt of 1024 or less"),
    ("map llama2-70b", "llama2-70b does not fit 1 aim-gddr6 device: device 0 needs 79676 DRAM rows per bank (77.81 "
                       "GiB of bank space, 880 MiB of it the KV cache at context 4096) and has 16384 (16 GiB), 61.81 "
                       "GiB short; the smallest --devices that fits is 6"),
    ("map llama2-7b --batch 12", "llama2-7b does not fit 1 aim-gddr6 device: device 0 needs 25182 DRAM rows per "
                                 "bank (24.59 GiB of bank space, 15.75 GiB of it the KV cache at context 4096) and has "
                                 "16384 (16 GiB), 8.592 GiB short; the KV cache fits up to context 1920 (--context "
                                 "1920), or the smallest --devices that fits is 2"),
    ("map gpt2 --batch 100000", "gpt2 does not fit 1 aim-gddr6 device: its KV cache alone is 1.717 TiB (batch "
                                "100000, context 1024) and a device has 16 GiB of bank space, so no count up to 64 "
                                "devices holds it; use a smaller --batch or --context"),
    ("map gpt2 --devices 13 --parallel pipeline", "--devices 13: pipeline parallel gives each device at least one of "
                                                  "the 12 layers; use at most 12 devices or --parallel tensor"),
    ("map gpt2 --datatype int9", "datatype 'int9' (did you mean 'int8'?): must be one of int8, int4, int3, "
                                 "fp4_er_pos, fp4_er_neg, fp4_ea_pos, fp4_ea_neg, fp3_er_pos, fp3_er_neg, fp3_ea_pos, "
                                 "fp3_ea_neg, mixed, mixed3, or mixed:DT,DT,..."),
    ("map gpt2 --datatype int4 --weights int8", "--datatype int4 and --weights int8 disagree; give one of them"),
    ("map gpt2 --experts foo", "experts 'foo': must be one of worst, expected, best or a count"),
    ("models gpt2 --experts foo", "experts 'foo': must be one of worst, expected, best or a count"),
    ("map gpt2 --gpu nope", "GPU 'nope' is not in the peak table; use one of h200-nvl, h200-sxm, h100-nvl, h100-pcie, "
                            "h100-sxm, a100-80gb-pcie, a100-40gb-pcie, a100-80gb-sxm, a100-40gb-sxm, l40s, a10, l4, "
                            "mi300x (accel gpu peaks lists them), or add its datasheet figures to accel/gpu/peaks.py"),
    ("map gpt2 --json .", "--json .: is a folder; give a file name (e.g. out)"),
    ("map gpt2 --program nope/p.txt", "--program nope/p.txt: the folder nope does not exist; create it or give another "
                                      "path"),
    ("map gpt2 --trace tiny.yaml/t.json", "--trace tiny.yaml/t.json: the folder tiny.yaml is a file, not a folder; "
                                          "give another path"),
    ("map gpt2 --plots tiny.yaml", "--plots tiny.yaml: is a file; give a folder (it is created if missing)"),
    # a program whose dependencies deadlock: the streams and the tokens
    ("emulate dl.txt", "dl.txt: the program deadlocks: pim0 waits for vector token 1 (its 1st SIGNAL token=1); "
                       "vector waits for pim0 token 2 (its 1st SIGNAL token=2); each waits for a stream that waits: "
                       "reorder the SIGNALs and WAITs so that the dependencies have no cycle"),
]


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    for name, data in FILES.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / "tiny.yaml").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("argv,message", CORPUS, ids=[a for a, _ in CORPUS])
def test_corpus(inputs, capsys, argv, message):
    assert main(argv.split()) == 2
    out, err = capsys.readouterr()
    assert err == f"accel: error: {message}\n"


@pytest.mark.parametrize("argv,message", [
    ("rtl wave bitserial --seed -1", "accel rtl wave: error: argument --seed: -1 must be at least 0 (seeds and counts "
                                     "are not negative) (see accel rtl wave --help)"),
    ("rtl test bitserial --sim emulator --seed-start -5",
     "accel rtl test: error: argument --seed-start: -5 must be at least 0 (seeds and counts are not negative) (see "
     "accel rtl test --help)"),
    ("rtl test bitserial --seeds 0", "accel rtl test: error: argument --seeds: 0 must be at least 1 (see accel rtl "
                                     "test --help)"),
    ("array gemm --M x --K 1 --N 1", "accel array gemm: error: argument --M: 'x' is not a whole number (see accel "
                                     "array gemm --help)"),
    # accel map: batch, prompt, context and device counts are whole numbers of at least 1
    ("map gpt2 --batch 0", "accel map: error: argument --batch: 0 must be at least 1 (see accel map --help)"),
    ("map gpt2 --phase prefill --prompt 0",
     "accel map: error: argument --prompt: 0 must be at least 1 (see accel map --help)"),
    ("map gpt2 --context -4", "accel map: error: argument --context: -4 must be at least 1 (see accel map --help)"),
    ("map gpt2 --devices 0", "accel map: error: argument --devices: 0 must be at least 1 (see accel map --help)"),
    ("map gpt2 --experts 0", "accel map: error: argument --experts: 0 must be at least 1 (see accel map --help)"),
    ("models gpt2 --batch 0", "accel models: error: argument --batch: 0 must be at least 1 (see accel models --help)"),
])
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv.split())
    assert e.value.code == 2
    assert capsys.readouterr().err == message + "\n"


def test_legal_inputs_that_were_refused_or_misread(inputs, capsys):
    # a YAML merge key overridden by the mapping's own key is legal YAML: the mapping's value wins
    assert main(["devices", "merge.yaml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["channels"] == 1
    # a wave in a folder that does not exist yet: the folder is made
    assert main(["rtl", "wave", "bitserial", "-o", "new/folder/w.vcd"]) == 0
    assert (inputs / "new" / "folder" / "w.vcd").is_file()
    capsys.readouterr()
    # the default mode waits for the earliest legal cycle where --strict refuses
    assert main(["emulate", "ok.trace", "--device", "fpga-tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["strict"] is False


def test_array_figures_read_as_an_architect_expects(capsys):
    # a 1x1x1 GEMM in SCALE-Sim's count: Total Cycles 0 is the index of its one cycle
    assert main(["array", "gemm", "--M", "1", "--K", "1", "--N", "1", "--rows", "1", "--cols", "1", "--timing",
                 "scalesim"]) == 0
    out = capsys.readouterr().out
    assert "  cycles       0 (SCALE-Sim v3's Total Cycles: the index of the last cycle, 1 cycle counted)\n" in out
    assert "  utilisation  100.00% (1 MAC over 1x1 PEs x 1 cycle; 1 fold, ideal 1 cycle; SCALE-Sim's own figure 1)" \
        in out
    # attention: utilisation over PE-cycles (6 queries leave 2 of 8 columns of the second tile idle), the time-based
    # figure under its own name, and no 'None keys'
    assert main(["array", "attention", "--device", "fpga-small", "--queries", "6", "--keys", "40",
                 "--head-dim", "16", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["utilisation"] == pytest.approx(2 * 6 * 40 * 16 / (4 * 4 * rep["cycles"]))
    assert rep["busy_fraction_2d"] > rep["utilisation"]
    assert main(["array", "attention", "--device", "fpga-small", "--queries", "4", "--keys", "8",
                 "--head-dim", "1"]) == 0
    out = capsys.readouterr().out
    assert "full tiles never reach 90% at head dim 1" in out and "None" not in out


def test_numbers_are_readable(inputs, capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "e-0" not in out and "e+0" not in out
    assert "16 KiB" in out and "12 MHz" in out and "8.192 TMAC/s" in out
    assert main(["devices", "tiny.yaml"]) == 0
    out = capsys.readouterr().out
    assert "clock       12 MHz (tCK 83.33 ns)" in out and "12.000048" not in out
    assert main(["array", "gemm", "--M", "64", "--K", "64", "--N", "64", "--rows", "8", "--cols", "8"]) == 0
    out = capsys.readouterr().out
    assert "(cycles)" not in out and "  cycles       4110 (first operand in to last MAC, inclusive)" in out


# --------------------------------------------------------------------------------------------------------------------
# Pipes, bugs, versions, help, progress


class _ClosedPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["devices"], ["devices", "--json"], ["models", "gpt2"], ["gpu", "peaks"],
                                  ["array", "gemm", "--M", "4", "--K", "4", "--N", "4", "--rows", "2", "--cols", "2"],
                                  ["array", "attention", "--queries", "4", "--keys", "4", "--head-dim", "4"],
                                  ["emulate", "ok.trace", "--device", "fpga-tiny"], ["emulate", "p.txt", "--json"]])
def test_closed_pipe_is_quiet(inputs, monkeypatch, capsys, argv):
    (inputs / "p.txt").write_text("device fpga-tiny\nstream pim0\nACT all_banks=1 row=1\n")
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(argv) == 141
    assert capsys.readouterr().err == ""


def test_closed_pipe_through_a_real_pipe():
    """``accel devices --json | head -1``: head closes the pipe; accel ends quietly."""
    p = subprocess.Popen([sys.executable, "-m", "accel.cli", "devices", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=0)
    assert p.stdout.read(1) == b"["
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() in (0, 141) and err == ""


def test_a_bug_says_so(monkeypatch, capsys):
    import accel.commands.devices as devices

    def broken(args):
        return 1 // 0

    monkeypatch.setattr(devices, "run", broken)
    assert main(["devices"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("accel: internal error (a bug in accel, not in your input): ZeroDivisionError: integer "
                          "division or modulo by zero at tests/test_errors.py:")
    assert "report it" in err and "accel --debug" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["--debug", "devices"]) == 70
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_debug_shows_the_traceback_of_a_user_error(inputs, capsys):
    assert main(["--debug", "emulate", "empty.trace"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("accel: error: empty.trace: no commands (only blank lines and "
                                               "comments); a trace holds one command per line (MAC all_banks=1 col=0 "
                                               "count=64, or AiM MAC_ABK 64 0xffffffff 0)\n")


def test_version(capsys):
    import accel

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out == version_text() + "\n" and out.startswith(f"accel {accel.__version__}")
    if (ROOT / ".git").exists():
        assert " (git " in out


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_help_shows_defaults_and_one_device_option(capsys):
    text = _help(["rtl", "test"], capsys)
    assert "randomised stimuli per configuration" in text and "(default: 100)" in text and "(default: amaranth)" in text
    assert "--device DEVICE" in text and "--preset" not in text
    assert "(default: aim-gddr6)" in _help(["models"], capsys)
    assert "(default: hbm3-pim)" in _help(["array", "attention"], capsys)
    assert "(default: native)" in _help(["array", "gemm"], capsys)
    assert "board's own preset" in _help(["fpga", "build"], capsys)
    assert "--strict" in _help(["emulate"], capsys)
    # every command: no default printed twice, none printed as None
    from accel.cli import build_parser

    parser = build_parser()
    stack = [parser]
    while stack:
        p = stack.pop()
        text = p.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, p.prog
        assert "(default: %(default)" not in text, p.prog
        for a in p._actions:
            if isinstance(a, type(parser._subparsers._group_actions[0])):
                stack.extend(a.choices.values())


def test_preset_stays_an_alias(capsys):
    assert main(["array", "gemm", "--M", "8", "--K", "8", "--N", "8", "--preset", "fpga-small", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 4


def test_devices_file_shows_a_custom_device(inputs, capsys):
    (inputs / "custom.yaml").write_text(TINY.replace("name: fpga-tiny", "name: mine").replace("banks: 2", "banks: 4"))
    assert main(["devices", "custom.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("device      mine: ") and "1 channel x 4 banks (1 bank group)" in out


def test_long_work_says_what_it_does(tmp_path, capsys):
    assert main(["rtl", "export", "bitserial", "--device", "fpga-tiny", "-o", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == "accel: exporting bitserial for fpga-tiny (2 lanes x 4 datatypes, about 2.4 s) ..."
    assert lines[1].startswith("accel: exporting bitserial for fpga-tiny (2 lanes x 4 datatypes, about 2.4 s): done "
                               "in ")
    assert out.startswith("wrote ") and "accel:" not in out


# --------------------------------------------------------------------------------------------------------------------
# The helpers


def test_read_text_names_the_bad_byte(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(b"ok\nab\xc3(cd\n")
    with pytest.raises(ConfigError, match=r"^.*x\.txt:2:3: byte 0xc3 is not UTF-8 text; save the trace as UTF-8$"):
        read_text(p, "trace", ConfigError)
    p.write_bytes(b"a\x00b")
    with pytest.raises(AccelError, match=r"x\.txt:1:2: a NUL byte: this is not a text file"):
        read_text(p, "trace")
    p.write_bytes("\ufeffname: x\n".encode())
    assert read_text(p, "trace") == "name: x\n"
    with pytest.raises(AccelError, match=r"is a folder, not a trace"):
        read_text(tmp_path, "trace")


def test_parse_yaml_rules():
    assert parse_yaml("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n", "s") == {"base": {"a": 1, "b": 2},
                                                                           "x": {"a": 3, "b": 2}}
    with pytest.raises(AccelError, match=r"^s:2:1: duplicate key 'a' \(first given on line 1\); give each key once$"):
        parse_yaml("a: 1\na: 2\n", "s")
    with pytest.raises(AccelError, match=r"^s:1:5: not valid YAML: mapping values are not allowed here"):
        parse_yaml("a: b: c\n", "s")
    with pytest.raises(AccelError, match=r"^s:1:1: character 0x7 is not allowed in YAML; remove it$"):
        parse_yaml("\x07a: 1\n", "s")
    with pytest.raises(AccelError, match=r"nested deeper than 100 levels"):
        parse_yaml("[" * 150 + "]" * 150, "s")
    with pytest.raises(AccelError, match=r"^s:1:6: not valid JSON \(Expecting .:. delimiter\)$"):
        parse_json('{"a" 1}', "s")
    with pytest.raises(AccelError, match=r"nested"):
        parse_json("[" * 5000 + "]" * 5000, "s")


def test_at_and_caused_by():
    e = caused_by(AccelError("boom"), "pim0", 3)
    assert e.command == ("pim0", 3) and caused_by(e, "pim1", 4).command == ("pim0", 3)
    assert str(at(e, "f.txt:7")) == "f.txt:7: boom" and str(at(e, "g.txt:1")) == "f.txt:7: boom"
    assert one_line("a\n  b\n\nc") == "a; b; c"


def test_output_file_parents(tmp_path):
    """A command's default path (build/wave/x.vcd) has its folders made; a path with a NUL byte is refused."""
    f = tmp_path / "a" / "b" / "w.vcd"
    assert check_output_file(f, "-o", parents=True) == f and f.parent.is_dir()
    with pytest.raises(OutputError, match=r"^-o '.*\\x00': not a path \(it holds a NUL byte\)"):
        check_output_file(f"{tmp_path}/x\0", "-o")


def test_locked_dir_one_writer(tmp_path):
    """A folder held by one build is refused to a second (naming the holder), or waited for with ``wait``."""
    import os
    import threading

    with locked_dir(tmp_path, "-o"):
        with pytest.raises(OutputError, match=rf"^-o {tmp_path}: another accel process \(pid {os.getpid()}\) is "
                                              r"writing this folder; wait for it to finish or give another folder$"):
            with locked_dir(tmp_path, "-o"):
                pass
        order = []

        def second() -> None:
            with locked_dir(tmp_path, wait=True):
                order.append("second")

        t = threading.Thread(target=second)
        t.start()
        t.join(0.3)
        order.append("first done")
    t.join(10)
    assert order == ["first done", "second"]


def test_fpga_build_into_a_held_folder(tmp_path, capsys):
    """``accel fpga build -o DIR`` while another build writes DIR: one line, exit 2, the other build's files kept."""
    from accel.fpga.build import missing_tools, get_board

    if missing_tools(get_board("icebreaker")):
        pytest.skip("the yowasp tools are not installed (./run installs requirements.txt)")
    (tmp_path / "report.json").write_text("{}")
    with locked_dir(tmp_path, "-o"):
        assert main(["fpga", "build", "--board", "icebreaker", "--device", "fpga-tiny", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"-o {tmp_path}: another accel process" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert (tmp_path / "report.json").read_text() == "{}"


def test_program_errors_name_file_and_line(tmp_path):
    from accel.emulator.system import run_program
    from accel.program import Program

    f = tmp_path / "p.txt"
    f.write_text("device fpga-tiny\nstream pim0\nACT all_banks=1 row=1\n\nMAC bank=1 col=99\n")
    prog = Program.load(f)
    with pytest.raises(AccelError, match=rf"^{f}:5: stream pim0 command 1: "):
        run_program(prog, prog.resolve_device())


def test_environment_variable_debug(monkeypatch, capsys, inputs):
    monkeypatch.setenv("ACCEL_DEBUG", "1")
    assert main(["emulate", "empty.trace"]) == 2
    assert "Traceback" in capsys.readouterr().err
