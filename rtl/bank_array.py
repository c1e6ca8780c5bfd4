"""A PIM bank's DRAM array as a black box: an instance of an external memory module behind a port.

A real PIM die keeps its DRAM arrays as hard macros; the logic around them is what the RTL describes. Full-size
presets hold 256-512 MiB of array per channel, which no netlist can carry as flip-flops or as an initialised memory
(Amaranth writes one initialisation line per word), so ``accel rtl export`` builds their banks with
:func:`bank_array` in place of an ``amaranth.lib.memory.Memory``, and writes :data:`BEHAVIOURAL_MODEL` beside the
design: a behavioural Verilog model of the same port, cycle for cycle what the ``Memory`` of
:class:`~accel.rtl.pim.PimBank` does (a write port, and a read port whose address is registered at the clock edge and
whose data follow the array combinationally, so a read sees a write of the previous cycle), for simulators and for
synthesis tools that infer a memory from it. A memory compiler's macro with this port replaces it in a real flow.

Port of :data:`MODULE` (parameters ``DEPTH`` words of ``WIDTH`` bits, ``ABITS`` address bits):
``clk``; ``raddr`` (read address, registered), ``rdata`` (the word at the registered address); ``we``, ``waddr``,
``wdata`` (write at the clock edge).
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Value

__all__ = ["MODULE", "BEHAVIOURAL_MODEL", "bank_array"]

#: Name of the external bank-array module.
MODULE = "accel_pim_bank_array"

#: Behavioural Verilog model of :data:`MODULE` (Verilog-2005); the array starts all zeros, as a ``Memory`` does.
BEHAVIOURAL_MODEL = f"""\
// Behavioural model of a PIM bank's DRAM array ({MODULE}), written by accel rtl export; do not edit.
// The exported channel instantiates it once per bank; replace it with a memory macro of the same port.
// Read: raddr is registered at the clock edge, rdata is the word at the registered address (it sees a write of
// the previous cycle). Write: wdata is written to waddr at the clock edge when we is high.
module {MODULE} #(
    parameter integer DEPTH = 1,
    parameter integer WIDTH = 8,
    parameter integer ABITS = 1
) (
    input wire clk,
    input wire [ABITS-1:0] raddr,
    output wire [WIDTH-1:0] rdata,
    input wire we,
    input wire [ABITS-1:0] waddr,
    input wire [WIDTH-1:0] wdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [ABITS-1:0] raddr_q;
    integer i;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1)
            mem[i] = {{WIDTH{{1'b0}}}};
    end
    always @(posedge clk) begin
        if (we)
            mem[waddr] <= wdata;
        raddr_q <= raddr;
    end
    assign rdata = mem[raddr_q];
endmodule
"""


def bank_array(depth: int, width: int, raddr: Value, rdata: Value, we: Value, waddr: Value, wdata: Value) -> Instance:
    """An instance of :data:`MODULE` with ``depth`` words of ``width`` bits on the ``sync`` clock."""
    return Instance(MODULE, p_DEPTH=depth, p_WIDTH=width, p_ABITS=len(raddr), i_clk=ClockSignal(), i_raddr=raddr,
                    o_rdata=rdata, i_we=we, i_waddr=waddr, i_wdata=wdata)
