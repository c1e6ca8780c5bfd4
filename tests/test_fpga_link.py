"""The FPGA top's host link, end to end in simulation: a bit-level UART model drives the top (Amaranth's simulator)
through the same host driver a board uses; GEMVs equal the golden numerics and the emulator's read beats; faults
come back as the emulator's errors."""
from __future__ import annotations

import numpy as np
import pytest

from accel.config import load_preset
from accel.interfaces.pim import PimIllegalError, PimRule
from accel.errors import AccelError, ConfigError, EncodingError
from accel.fpga.protocol import (PIM_ERROR, ChecksumError, Kind, LinkError, Status, beat_words, crc8,
                                 decode_response, encode_request, encode_response)
from accel.fpga.uart import baud_divisor
from accel.isa import PimOp, encode

TINY = load_preset("fpga-tiny")
SMALL = load_preset("fpga-small")


# ---------------------------------------------------------------------------------------------------- protocol
def test_crc8_check_value():
    assert crc8(b"123456789") == 0xF4  # CRC-8 (poly 0x07, init 0): the catalogue's check value


def test_frame_round_trip_and_corruption():
    words = [0, 1, (1 << 64) - 1, 0x0123456789ABCDEF]
    frame = encode_response(Status.OK, words)
    assert decode_response(frame).words == tuple(words)
    bad = bytearray(frame)
    bad[5] ^= 0x10
    with pytest.raises(ChecksumError, match="CRC-8 is .* but its bytes give"):
        decode_response(bytes(bad))
    with pytest.raises(LinkError, match="not the sync byte"):
        decode_response(b"\x00" + frame[1:])
    with pytest.raises(LinkError, match="announces 4 words"):
        decode_response(frame[:-2])
    with pytest.raises(EncodingError, match="at most 255 words"):
        encode_request(Kind.ECHO, [0] * 256)


def test_crc8_network_matches_host():
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from accel.fpga.top import crc8_update

    a, b, o = Signal(8), Signal(8), Signal(8)
    m = Module()
    m.d.comb += o.eq(crc8_update(a, b))
    sim = Simulator(m)
    rng = np.random.default_rng(0)

    async def tb(ctx):
        for x, y in rng.integers(0, 256, (400, 2)):
            ctx.set(a, int(x))
            ctx.set(b, int(y))
            assert ctx.get(o) == crc8([int(y)], int(x))

    sim.add_testbench(tb)
    sim.run()


def test_baud_divisor_errors():
    assert baud_divisor(12e6, 115200) == 104
    with pytest.raises(ConfigError, match="at least 4"):
        baud_divisor(12e6, 6_000_000)
    with pytest.raises(ConfigError, match="off, more than 2 %"):
        baud_divisor(12e6, 1_300_000)


def test_top_refuses_multi_channel_devices():
    from accel.fpga.top import DeviceTop

    with pytest.raises(ValueError, match="32 PIM channels; an FPGA top builds one"):
        DeviceTop(load_preset("aim-gddr6"), 4)


# ---------------------------------------------------------------------------------------------------- simulation
@pytest.fixture
def board():
    from accel.fpga.host import Link
    from accel.fpga.sim import SimulatedBoard

    with SimulatedBoard(TINY, divisor=4) as b:
        yield b, Link(b, b.baud, latency_s=2e-3)


@pytest.mark.rtl
@pytest.mark.parametrize("device,m,k,seed", [(TINY, 4, 32, 1), (TINY, 2, 48, 2), (SMALL, 4, 64, 3)],
                         ids=["tiny-4x32", "tiny-2x48", "small-4x64"])
def test_gemv_end_to_end(device, m, k, seed):
    """A random mixed-datatype GEMV through the UART: read beats equal the emulator's, y equals the golden numerics."""
    from accel.fpga.host import Link, identify_preset, run_steps
    from accel.fpga.program import expected_beats, random_gemv
    from accel.fpga.sim import SimulatedBoard

    g = random_gemv(device, m, k, seed)
    with SimulatedBoard(device, divisor=4) as b:
        link = Link(b, b.baud, latency_s=2e-3)
        assert identify_preset(link.status()) == device.name
        beats = run_steps(link, device, g["steps"])
        assert link.status()["status"] == 0
    assert beats == expected_beats(device, g["steps"])
    y = g["plan"].results([list(enumerate(beats))])
    np.testing.assert_array_equal(y, g["golden"])
    assert len(set(g["dtypes"].ravel().tolist())) > 1  # mixed datatypes, not one happy case


@pytest.mark.rtl
def test_illegal_command_reports_the_emulators_rule(board):
    b, link = board
    link.execute(encode("pim", PimOp.ACT, bank=1, row=3))
    link.execute(encode("pim", PimOp.WR, bank=1, col=2, count=2), [0x1234, 0xBEEF])
    with pytest.raises(PimIllegalError, match=r"rule CLOSED \(17\)") as e:
        link.execute(encode("pim", PimOp.MAC, bank=0, col=0))
    assert e.value.rule == PimRule.CLOSED
    info = link.status()
    assert info["status"] == PIM_ERROR | PimRule.CLOSED and info["status_name"] == "PIM_ERROR|CLOSED"
    # the channel was reset (row closed) but the bank kept its contents
    with pytest.raises(PimIllegalError, match="rule CLOSED"):
        link.execute(encode("pim", PimOp.RD, bank=1, col=2))
    link.execute(encode("pim", PimOp.ACT, bank=1, row=3))
    assert beat_words(TINY) == 1  # one 64-bit word: an RD beat's 16-bit column (an RDMAC beat: one unit's 32 bits)
    assert link.execute(encode("pim", PimOp.RD, bank=1, col=2, count=2)) == (0x1234, 0xBEEF)
    with pytest.raises(PimIllegalError, match="rule ADDRESS"):
        link.execute(encode("pim", PimOp.ACT, bank=0, row=TINY.pim.rows))
    link.clear()
    assert link.status()["status"] == 0


@pytest.mark.rtl
def test_bad_requests(board):
    b, link = board
    with pytest.raises(EncodingError, match="BAD_OPERANDS.*one data word per WR/WRGB element"):
        link.execute(encode("pim", PimOp.WRGB, col=0, count=2), [1])
    with pytest.raises(EncodingError, match="UNSUPPORTED"):
        link.execute(encode("bitserial", 0))
    assert link.status()["status"] == Status.BAD_OPERANDS  # the first error is kept
    # a corrupted request: the device answers BAD_CHECKSUM and executes nothing
    frame = bytearray(encode_request(Kind.EXEC, [encode("pim", PimOp.ACT, bank=0, row=1)]))
    frame[-1] ^= 0xFF
    b.write(bytes(frame))
    resp = decode_response(b.read(4))
    assert resp.status == Status.BAD_CHECKSUM
    link.execute(encode("pim", PimOp.ACT, bank=0, row=1))  # bank 0 was not opened by the corrupted request
    # a wrong stop bit (wrong baud rate / noise): FRAMING
    b.host_stop_bit = 0
    b.write(encode_request(Kind.ECHO, [7]))
    b.host_stop_bit = 1
    b.run_for(2e-3)  # the device drops the half request after rx_timeout
    b.reset_input_buffer()
    link.clear()
    assert link.echo([5, 6]) == (5, 6)


@pytest.mark.rtl
def test_half_request_times_out(board):
    b, link = board
    link.clear()
    b.write(encode_request(Kind.ECHO, [1, 2])[:6])
    b.run_for(3e-3)
    assert link.status()["status"] == Status.RX_TIMEOUT


def test_no_answer_is_a_clear_timeout():
    from accel.fpga.host import Link
    from accel.fpga.protocol import LinkTimeout

    class Silent:
        timeout = None

        def write(self, data):
            return len(data)

        def read(self, n):
            return b""

        def reset_input_buffer(self):
            pass

    with pytest.raises(LinkTimeout, match=r"got 0 of 3 bytes .* baud rate \(115200\)"):
        Link(Silent(), 115200, latency_s=0.01).echo([1])


@pytest.mark.rtl
def test_run_program_file(tmp_path):
    """`accel fpga run`'s driver on a text program: identifies the preset, checks beats against the emulator."""
    from accel.fpga.host import Link, run_program_file
    from accel.fpga.sim import SimulatedBoard

    prog = tmp_path / "p.txt"
    prog.write_text("# write, MAC, read back\nACT all_banks=1 row=2\nWR bank=0 col=0 count=2 data=0x0102,0xff03\n"
                    "WR bank=1 col=0 count=2 data=0x7f80,0x0001\nWRGB col=0 count=2 data=0x0505,0xfb02\n"
                    "MAC all_banks=1 col=0 count=2\nRDMAC all_banks=1\nRD bank=0 col=1\n")
    with SimulatedBoard(TINY, divisor=4) as b:
        rep = run_program_file("sim", str(prog), link=Link(b, b.baud, latency_s=2e-3))
    assert rep["preset"] == "fpga-tiny" and rep["emulator_equal"] and rep["steps"] == 7 and len(rep["beats"]) == 3
    with SimulatedBoard(TINY, divisor=4) as b:
        with pytest.raises(AccelError, match="built for preset 'fpga-tiny', not 'fpga-small'"):
            run_program_file("sim", str(prog), preset="fpga-small", link=Link(b, b.baud, latency_s=2e-3))
