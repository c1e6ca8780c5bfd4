"""cocotb test module: replays :class:`accel.interfaces.stimulus.Stimulus` objects and records per-cycle outputs.

Inputs are driven on the falling edge and outputs sampled in the read-only phase after it, so the rising edge always
samples settled inputs (no race between the testbench and the design). The stimulus file and the trace file come
from ``$ACCEL_STIM`` and ``$ACCEL_TRACE`` (set by :func:`accel.equivalence.harness.run_cocotb`).
"""
from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from accel.interfaces.stimulus import Driver, Stimulus


@cocotb.test()
async def replay(dut) -> None:
    with open(os.environ["ACCEL_STIM"]) as f:
        spec = json.load(f)
    in_w: dict[str, int] = spec["inputs"]
    out_w: dict[str, int] = spec["outputs"]
    handles = {name: getattr(dut, name) for name in [*in_w, *out_w]}
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    traces = []
    for raw in spec["stimuli"]:
        stim = Stimulus.from_json(raw)
        await FallingEdge(dut.clk)
        dut.rst.value = 1
        for name in in_w:
            handles[name].value = 0
        await RisingEdge(dut.clk)
        drv = Driver(stim)
        trace = []
        for cycle in range(stim.cycles):
            await FallingEdge(dut.clk)
            dut.rst.value = 0
            ins = drv.inputs(cycle)
            for name, v in ins.items():
                handles[name].value = v
            await ReadOnly()
            outs = {name: (int(handles[name].value) if w == 1 else handles[name].value.to_unsigned())
                    for name, w in out_w.items()}
            drv.observe(ins, outs)
            trace.append(outs)
        traces.append(trace)
    with open(os.environ["ACCEL_TRACE"], "w") as f:
        json.dump(traces, f)
