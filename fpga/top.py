"""The FPGA device top: a PIM channel behind the UART host link.

:class:`DeviceTop` receives request frames (:mod:`accel.fpga.protocol`) into a frame buffer in block RAM, checks
their CRC-8, executes them and sends one response frame back. The compute payload is the PIM channel of
:mod:`accel.rtl.pim` built from the preset's ``pim`` section (banks in block RAM, packed weight columns read by
MAC units of bit-serial units, every timing rule as counters), run in wait mode: a command that is early waits for its timing rules, as the
emulator's engine schedules it. An ``EXEC`` request carries one ``PIM`` command word of :mod:`accel.isa` and, for
``WR``/``WRGB``, one data word per element (the column, low ``column_bits`` bits). The response carries the read beats
of ``RD``/``RDMAC`` (one per element; ``RDMAC all_banks=1`` reads every bank), each beat as
:func:`beat_words` 64-bit words, little-endian (an ``RDMAC`` beat holds ``mac_registers`` 32-bit accumulators, one per bit-serial unit, unit 0
lowest; an ``RD`` beat the column).

Before executing, the top checks the request: another command family is ``UNSUPPORTED``; data words that do not
match the command's elements, or results that would not fit one response frame, are ``BAD_OPERANDS``. An illegal
command (a rule of :data:`accel.interfaces.pim.PimRule`: closed or open bank, address, CFR value, opcode)
answers ``PIM_ERROR | rule`` — the emulator's code in the low 6 bits — and resets the channel's state (rows closed,
registers and MAC accumulators cleared; the bank arrays keep their contents). A command that makes no progress for
:data:`WATCHDOG` cycles answers ``EXEC_TIMEOUT`` (it cannot happen with a correct channel; it keeps the link alive).
The status register keeps the first error since the last ``CLEAR``; ``CLEAR`` also resets the channel.

:class:`BoardTop` puts a :class:`DeviceTop` on a board: the UART pins, the board clock, and two LEDs (error, activity).
"""
from __future__ import annotations

from amaranth.hdl import *
from amaranth.lib import data, io, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from accel.config import ConfigError, DeviceConfig
from accel.interfaces.pim import rdata_bits
from accel.isa import TABLES, Family, PimOp
from accel.rtl.pim import PimChannel

from .protocol import MAX_WORDS, PIM_ERROR, REQ_SYNC, RESP_SYNC, Kind, Status, beat_words, id_words
from .uart import UARTRx, UARTTx

__all__ = ["DeviceTop", "BoardTop", "crc8_update", "WATCHDOG"]

#: Cycles without progress (an issued element or a data word taken) after which a command is abandoned.
WATCHDOG = 1 << 14


def crc8_update(crc: Value, byte: Value) -> Value:
    """CRC-8 (polynomial 0x07, MSB first) of ``crc`` after one more ``byte``, as an XOR network."""
    # each output bit is the XOR of a set of bits of crc ^ byte: shift 8 times over sets (GF(2) sums), then build
    # one flat XOR per bit (nesting the expressions would grow as 3**8)
    sets = [frozenset([i]) for i in range(8)]
    for _ in range(8):
        top = sets[7]
        sets = [top, sets[0] ^ top, sets[1] ^ top, *sets[2:7]]
    x = crc ^ byte
    out = []
    for s in sets:
        bit = Const(0, 1)
        for i in sorted(s):
            bit = bit ^ x[i]
        out.append(bit)
    return Cat(*out)


class DeviceTop(wiring.Component):
    """A device instance with a UART host link.

    Parameters
    ----------
    device:
        The device description (one PIM channel; its ``bitserial`` section sets the lanes' datatypes).
    divisor:
        Clock cycles per UART bit (:func:`accel.fpga.uart.baud_divisor`).
    rx_timeout:
        Clock cycles of silence after which a half-received request is dropped (default: 2**20, 87 ms at 12 MHz).

    Members
    -------
    rx: In(1, init=1)
        UART line from the host.
    tx: Out(1, init=1)
        UART line to the host.
    status: Out(8)
        The status register (first error since the last ``CLEAR``).
    activity: Out(1)
        Toggles on every completed request.
    """

    def __init__(self, device: DeviceConfig, divisor: int, rx_timeout: int = 1 << 20) -> None:
        try:
            self._check(device, divisor, rx_timeout)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a refused configuration is not an unused design
            raise
        self.device = device
        self.divisor = divisor
        self.rx_timeout = rx_timeout
        self.channel = PimChannel(device.pim, device.bitserial)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(8),
            "activity": Out(1),
        })

    @staticmethod
    def _check(device: DeviceConfig, divisor: int, rx_timeout: int) -> None:
        if not isinstance(device, DeviceConfig):
            raise TypeError(f"device must be a DeviceConfig, not {device!r}")
        if not isinstance(rx_timeout, int) or rx_timeout < 16 * divisor:
            raise ValueError(f"rx_timeout must be an integer of at least 16 bit times ({16 * divisor} cycles), "
                             f"not {rx_timeout!r}")
        if device.pim.channels != 1:
            raise ConfigError(f"device {device.name!r} has {device.pim.channels} PIM channels; an FPGA top builds "
                              f"one (use an fpga-* preset)")

    @property
    def max_beats(self) -> int:
        """Most read beats one command may return (its words must fit a response frame)."""
        return MAX_WORDS // beat_words(self.device)

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self.device.pim
        nbeat = beat_words(self.device)
        rbits = rdata_bits(self.device.bank)

        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        m.submodules.fbuf = fbuf = Memory(shape=unsigned(64), depth=MAX_WORDS + 1, init=[])
        fb_w = fbuf.write_port()
        fb_r = fbuf.read_port()
        m.submodules.rbuf = rbuf = Memory(shape=unsigned(nbeat * 64), depth=self.max_beats, init=[])
        rb_w = rbuf.write_port()
        rb_r = rbuf.read_port()

        pim_rst = Signal()
        m.submodules.channel = ResetInserter({"sync": pim_rst})(self.channel)
        ch = self.channel

        # ---- request state
        kind = Signal(8)
        nwords = Signal(8)
        crc = Signal(8)
        widx = Signal(range(MAX_WORDS + 1))
        bidx = Signal(range(8))
        word = Signal(64)
        rx_err = Signal(8)       # first UART fault inside the current request
        silence = Signal(range(self.rx_timeout + 1))
        status_reg = Signal(8)
        report = Signal(8)       # error to record in the status register this cycle

        # ---- response state
        resp_status = Signal(8)
        resp_n = Signal(8)
        resp_src = Signal(2)     # 0 frame buffer (ECHO), 1 read beats, 2 status words
        sidx = Signal(range(MAX_WORDS + 1))
        s_beat = Signal(range(self.max_beats + 1))
        s_part = Signal(range(max(nbeat, 2)))
        sword = Signal(64)
        sbyte = Signal(range(8))

        # ---- execution state
        cmd = data.View(TABLES[Family.PIM].layout(), Signal(64))
        n_elem = Signal(range(256))       # elements the command issues
        n_data = Signal(range(256))       # data words it takes (WR, WRGB)
        n_beat = Signal(range(256))       # read beats it returns (RD, RDMAC)
        issued = Signal(range(256))
        r_cnt = Signal(range(self.max_beats + 1))
        ptr = Signal(range(MAX_WORDS + 1))
        have = Signal()                   # the frame buffer's read data is the word at ptr
        t = self.device.pim.timing
        drain_max = max(t.rd_latency, t.rdmac_latency) + 1
        drain = Signal(range(drain_max + 1))
        watchdog = Signal(range(WATCHDOG + 1))
        err_code = Signal(8)

        id0, id1 = id_words(self.device)

        with m.If((report != 0) & (status_reg == 0)):
            m.d.sync += status_reg.eq(report)
        m.d.comb += self.status.eq(status_reg)

        byte_in = urx.data.payload
        got = Signal()
        m.d.comb += got.eq(urx.data.valid & urx.data.ready)
        with m.If(urx.frame_error | urx.overrun):
            with m.If(rx_err == 0):
                m.d.sync += rx_err.eq(Mux(urx.frame_error, Status.FRAMING, Status.OVERRUN))

        # read beats of the channel go to the result memory as they come (wait mode: commands wait, never fail
        # on timing)
        m.d.comb += [
            ch.strict.eq(0),
            rb_w.addr.eq(r_cnt),
            rb_w.data.eq(ch.rdata.payload),
            rb_w.en.eq(ch.rdata.valid & (r_cnt < self.max_beats)),
        ]
        with m.If(ch.rdata.valid & (r_cnt < self.max_beats)):
            m.d.sync += r_cnt.eq(r_cnt + 1)

        def respond(status, n=0, src=0):
            m.d.sync += [resp_status.eq(status), resp_n.eq(Mux(status == Status.OK, n, 0)), resp_src.eq(src),
                         sidx.eq(0), s_beat.eq(0), s_part.eq(0)]
            m.d.comb += report.eq(status)
            m.next = "S_SYNC"

        tx_ok = utx.data.ready

        with m.FSM(name="link"):
            # ------------------------------------------------------------ receive a request
            with m.State("R_SYNC"):
                m.d.comb += urx.data.ready.eq(1)
                m.d.sync += [crc.eq(0), rx_err.eq(0), silence.eq(0)]
                with m.If(got & (byte_in == REQ_SYNC)):
                    m.next = "R_KIND"
            for state in ("R_KIND", "R_LEN", "R_DATA", "R_CRC"):
                with m.State(state):
                    m.d.comb += urx.data.ready.eq(1)
                    with m.If(got):
                        m.d.sync += [silence.eq(0), crc.eq(crc8_update(crc, byte_in))]
                    with m.Elif(silence == self.rx_timeout):
                        m.d.comb += report.eq(Mux(rx_err != 0, rx_err, Status.RX_TIMEOUT))
                        m.next = "R_SYNC"
                    with m.Else():
                        m.d.sync += silence.eq(silence + 1)
                    with m.If(got):
                        if state == "R_KIND":
                            m.d.sync += kind.eq(byte_in)
                            m.next = "R_LEN"
                        elif state == "R_LEN":
                            m.d.sync += [nwords.eq(byte_in), widx.eq(0), bidx.eq(0)]
                            with m.If(byte_in == 0):
                                m.next = "R_CRC"
                            with m.Else():
                                m.next = "R_DATA"
                        elif state == "R_DATA":
                            m.d.sync += [word.eq(Cat(word[8:], byte_in)), bidx.eq(bidx + 1)]
                            with m.If(bidx == 7):
                                m.d.comb += [fb_w.addr.eq(widx), fb_w.data.eq(Cat(word[8:], byte_in)),
                                             fb_w.en.eq(1)]
                                m.d.sync += widx.eq(widx + 1)
                                with m.If(widx == nwords - 1):
                                    m.next = "R_CRC"
                        else:
                            m.d.sync += self.activity.eq(~self.activity)
                            with m.If(rx_err != 0):
                                respond(rx_err)
                            with m.Elif(crc != byte_in):
                                respond(Status.BAD_CHECKSUM)
                            with m.Elif(kind == Kind.ECHO):
                                respond(Status.OK, nwords, 0)
                            with m.Elif(kind == Kind.STATUS):
                                respond(Status.OK, 3, 2)
                            with m.Elif(kind == Kind.CLEAR):
                                m.d.sync += status_reg.eq(0)
                                m.d.comb += pim_rst.eq(1)
                                m.d.sync += [resp_status.eq(Status.OK), resp_n.eq(0), sidx.eq(0), s_beat.eq(0),
                                             s_part.eq(0)]
                                m.next = "S_SYNC"
                            with m.Elif(kind == Kind.EXEC):
                                with m.If(nwords == 0):
                                    respond(Status.BAD_LENGTH)
                                with m.Else():
                                    m.next = "X_FETCH"
                            with m.Else():
                                respond(Status.BAD_KIND)

            # ------------------------------------------------------------ execute a command
            with m.State("X_FETCH"):
                m.d.comb += fb_r.addr.eq(0)
                m.next = "X_DECODE"
            with m.State("X_DECODE"):
                m.d.sync += cmd.as_value().eq(fb_r.data)
                m.next = "X_SIZE"
            with m.State("X_SIZE"):
                op = cmd.op
                n = Mux((op == PimOp.RDMAC) & cmd.all_banks, p.banks, Mux(cmd.count == 0, 1, cmd.count))
                m.d.sync += [
                    n_elem.eq(n),
                    n_data.eq(Mux((op == PimOp.WR) | (op == PimOp.WRGB), n, 0)),
                    n_beat.eq(Mux((op == PimOp.RD) | (op == PimOp.RDMAC), n, 0)),
                ]
                with m.If(cmd.family != Family.PIM):
                    respond(Status.UNSUPPORTED)
                with m.Else():
                    m.next = "X_CHECK"
            with m.State("X_CHECK"):
                with m.If((n_data != nwords - 1) | (n_beat > self.max_beats)):
                    respond(Status.BAD_OPERANDS)
                with m.Else():
                    m.d.sync += [issued.eq(0), r_cnt.eq(0), ptr.eq(1), have.eq(0), watchdog.eq(0)]
                    m.next = "P_PUSH"
            with m.State("P_PUSH"):
                m.d.comb += [ch.cmd.valid.eq(1), ch.cmd.payload.eq(cmd.as_value())]
                with m.If(ch.cmd.ready):
                    m.next = "P_RUN"
            with m.State("P_RUN"):
                # data words stream from the frame buffer (its read port is synchronous: a word is valid one cycle
                # after its address)
                m.d.comb += [fb_r.addr.eq(ptr), ch.wdata.payload.eq(fb_r.data),
                             ch.wdata.valid.eq(have & (ptr <= n_data))]
                took = ch.wdata.valid & ch.wdata.ready
                m.d.sync += have.eq(~took)
                with m.If(took):
                    m.d.sync += ptr.eq(ptr + 1)
                with m.If(ch.issued):
                    m.d.sync += issued.eq(issued + 1)
                with m.If(ch.issued | took):
                    m.d.sync += watchdog.eq(0)
                with m.Else():
                    m.d.sync += watchdog.eq(watchdog + 1)
                with m.If(ch.error):
                    m.d.sync += err_code.eq(PIM_ERROR | ch.error_code)
                    m.next = "P_ERROR"
                with m.Elif(ch.issued & (issued == n_elem - 1)):
                    m.d.sync += drain.eq(0)
                    m.next = "P_DRAIN"
                with m.Elif(watchdog == WATCHDOG):
                    m.d.sync += err_code.eq(Status.EXEC_TIMEOUT)
                    m.next = "P_ERROR"
            with m.State("P_DRAIN"):
                # the last read's data leaves the channel at most max(nCL, nBL) cycles after its issue
                m.d.sync += drain.eq(drain + 1)
                with m.If((drain == drain_max) | (r_cnt == n_beat)):
                    with m.If(r_cnt == n_beat):
                        respond(Status.OK, n_beat * nbeat, 1)
                    with m.Else():
                        m.d.sync += err_code.eq(Status.EXEC_TIMEOUT)
                        m.next = "P_ERROR"
            with m.State("P_ERROR"):
                m.d.comb += pim_rst.eq(1)
                respond(err_code)

            # ------------------------------------------------------------ send the response
            with m.State("S_SYNC"):
                m.d.comb += [utx.data.valid.eq(1), utx.data.payload.eq(RESP_SYNC)]
                m.d.sync += crc.eq(0)
                with m.If(tx_ok):
                    m.next = "S_STATUS"
            with m.State("S_STATUS"):
                m.d.comb += [utx.data.valid.eq(1), utx.data.payload.eq(resp_status)]
                with m.If(tx_ok):
                    m.d.sync += crc.eq(crc8_update(crc, resp_status))
                    m.next = "S_LEN"
            with m.State("S_LEN"):
                m.d.comb += [utx.data.valid.eq(1), utx.data.payload.eq(resp_n)]
                with m.If(tx_ok):
                    m.d.sync += crc.eq(crc8_update(crc, resp_n))
                    m.next = "S_LOAD"
            with m.State("S_LOAD"):
                m.d.comb += [fb_r.addr.eq(sidx), rb_r.addr.eq(s_beat)]
                with m.If(sidx == resp_n):
                    m.next = "S_CRC"
                with m.Else():
                    m.next = "S_LATCH"
            with m.State("S_LATCH"):
                with m.Switch(resp_src):
                    with m.Case(0):
                        m.d.sync += sword.eq(fb_r.data)
                    with m.Case(1):
                        m.d.sync += sword.eq(rb_r.data.word_select(s_part, 64))
                        with m.If(s_part == nbeat - 1):
                            m.d.sync += [s_part.eq(0), s_beat.eq(s_beat + 1)]
                        with m.Else():
                            m.d.sync += s_part.eq(s_part + 1)
                    with m.Case(2):
                        m.d.sync += sword.eq(Mux(sidx == 0, status_reg, Mux(sidx == 1, id0, id1)))
                m.d.sync += [sbyte.eq(0), sidx.eq(sidx + 1)]
                m.next = "S_WORD"
            with m.State("S_WORD"):
                m.d.comb += [utx.data.valid.eq(1), utx.data.payload.eq(sword[:8])]
                with m.If(tx_ok):
                    m.d.sync += [crc.eq(crc8_update(crc, sword[:8])), sword.eq(sword >> 8), sbyte.eq(sbyte + 1)]
                    with m.If(sbyte == 7):
                        m.next = "S_LOAD"
            with m.State("S_CRC"):
                m.d.comb += [utx.data.valid.eq(1), utx.data.payload.eq(crc)]
                with m.If(tx_ok):
                    m.next = "R_SYNC"
        return m


class BoardTop(Elaboratable):
    """A :class:`DeviceTop` on a board: UART 0, the default clock, LED 0 = error, LED 1 = activity.

    Parameters
    ----------
    device:
        The device description.
    baud:
        UART rate (bits per second); the divisor comes from the platform's default clock.
    """

    def __init__(self, device: DeviceConfig, baud: int) -> None:
        self.device = device
        self.baud = baud

    def elaborate(self, platform) -> Module:
        from .uart import baud_divisor

        m = Module()
        clk_hz = platform.default_clk_frequency
        m.submodules.device = dev = DeviceTop(self.device, baud_divisor(clk_hz, self.baud),
                                              rx_timeout=int(clk_hz // 10))
        # raw ports and explicit buffers (Amaranth 0.5's way; the resource's inversion goes into the buffer)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buf = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx = io.Buffer("o", uart.tx)
        m.d.comb += [dev.rx.eq(rx.i), tx.o.eq(dev.tx)]
        for i, value in enumerate((dev.status != 0, dev.activity)):
            m.submodules[f"led{i}_buf"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            m.d.comb += led.o.eq(value)
        return m
