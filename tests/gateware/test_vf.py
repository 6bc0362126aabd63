"""VF windows and VF control in amaranth.sim: translation, isolation, refusal counts, mailbox.

The design under test is the real register path of a card with VFs (VfWindows -> AxiLiteCsrBridge
-> CsrDecoder -> blocks), with VfControl and two stand-in ring blocks that remember what is
written to them (the DMA engines' own ring registers are tested with the engines).
"""

import pytest
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from sim_csr import run

from crossnic.gateware.axil import RESP_DECERR, RESP_OKAY, RESP_SLVERR, AxiLiteCsrBridge
from crossnic.gateware.csr import CsrSignature
from crossnic.gateware.csr_decoder import CsrDecoder
from crossnic.gateware.nic_core import FULL_OPTIONS, NicCore
from crossnic.gateware.regmap import Block, RegisterMap
from crossnic.gateware.rx_dma import RxDmaEngine
from crossnic.gateware.tx_dma import TxDmaEngine
from crossnic.gateware.vf_control import VfControl
from crossnic.gateware.vf_windows import VfWindows

RINGS = 16
VFS = 4


def ring_block(name: str) -> Block:
    """The engines' own ring register sets (served here by stand-ins)."""
    engine = RxDmaEngine(rings=RINGS) if name == "rx_ring" else TxDmaEngine(rings=RINGS)
    return engine.block(name)


class RingStandIn(wiring.Component):
    """A ring block that stores every word written (read latency 2)."""

    def __init__(self):
        super().__init__({"csr": In(CsrSignature(9))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=32, depth=512, init=[])
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(self.csr.addr), w.data.eq(self.csr.w_data),
                     w.en.eq(self.csr.w_stb), r.addr.eq(self.csr.addr)]
        m.d.sync += self.csr.r_data.eq(r.data)
        return m


class Card(wiring.Component):
    def __init__(self):
        self.control = VfControl(VFS)
        self.map = RegisterMap("t", [ring_block("rx_ring"), ring_block("tx_ring"),
                                     self.control.pf_block(), self.control.port_block()],
                               block_bits=11)
        self.windows = VfWindows(self.map, VFS)
        super().__init__({"axil": In(self.windows.i.signature.flip())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = RingStandIn()
        m.submodules.tx = tx = RingStandIn()
        m.submodules.control = vfc = self.control
        ports = [rx.csr, tx.csr, vfc.pf, vfc.port]
        m.submodules.decoder = dec = CsrDecoder([len(p.addr) for p in ports],
                                                self.map.block_bits, block_latency=2)
        m.submodules.bridge = bridge = AxiLiteCsrBridge(self.map, dec.read_latency)
        m.submodules.windows = win = self.windows
        wiring.connect(m, wiring.flipped(self.axil), win.i)
        wiring.connect(m, win.o, bridge.axil)
        wiring.connect(m, bridge.csr, dec.bus)
        for k, p in enumerate(ports):
            wiring.connect(m, dec.block(k), p)
        m.d.comb += [win.grants.eq(vfc.grants), vfc.reg_denied.eq(win.denied)]
        return m


class Bus:
    """AXI4-Lite accesses by byte address, and by register name (PF map or VF window)."""

    def __init__(self, card: Card, ctx):
        self.card, self.ctx, self.bus = card, ctx, card.axil

    async def write(self, addr: int, value: int, strb: int = 0xF) -> int:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wdata, value)
        ctx.set(bus.wstrb, strb)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        await ctx.tick().until(bus.awready)
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        ctx.set(bus.bready, 1)
        resp, = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
        ctx.set(bus.bready, 0)
        return resp

    async def read(self, addr: int) -> tuple[int, int]:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arvalid, 1)
        await ctx.tick().until(bus.arready)
        ctx.set(bus.arvalid, 0)
        ctx.set(bus.rready, 1)
        data, resp = await ctx.tick().sample(bus.rdata, bus.rresp).until(bus.rvalid)
        ctx.set(bus.rready, 0)
        return data, resp

    def pf(self, path: str) -> int:
        return 4 * self.card.map[path].addr

    def vf(self, n: int, path: str) -> int:
        base = self.card.windows.region + n * self.card.windows.window_words
        return 4 * (base + self.card.windows.window[path].addr)

    async def pf_read(self, path: str) -> int:
        data, resp = await self.read(self.pf(path))
        assert resp == RESP_OKAY, path
        return data

    async def pf_write(self, path: str, value: int) -> None:
        assert await self.write(self.pf(path), value) == RESP_OKAY, path


def bench(body):
    card = Card()

    async def tb(ctx):
        await body(Bus(card, ctx), ctx, card)

    run(card, tb)


def grant(bus, n, ring_base, count, enable=1):
    return bus.pf_write(f"vf[{n}].ctrl", enable | ring_base << 8 | count << 16)


def test_window_reaches_only_the_vfs_own_rings():
    async def body(bus, ctx, card):
        await grant(bus, 1, 4, 2)
        # VF 1's ring 1 is the PF's ring 5, for both directions.
        assert await bus.write(bus.vf(1, "rx_ring[1].desc_tail"), 0x1234) == RESP_OKAY
        assert await bus.write(bus.vf(1, "tx_ring[0].tail"), 0x77) == RESP_OKAY
        assert await bus.pf_read("rx_ring[5].desc_tail") == 0x1234
        assert await bus.pf_read("tx_ring[4].tail") == 0x77
        assert await bus.read(bus.vf(1, "rx_ring[1].desc_tail")) == (0x1234, RESP_OKAY)
        assert await bus.pf_read("vf[1].reg_denied") == 0
        # Ring 2 of the window is not VF 1's; a word that is no register; past the rings.
        await bus.pf_write("rx_ring[6].desc_tail", 0xAAAA)
        window = card.windows.region + card.windows.window_words
        escapes = [4 * (window + 0x100 + 2 * 32), 4 * (window + 0x100 + 1 * 32 + 12),
                   4 * (window + 0x20), 4 * (window + 0x300), 4 * (window + 0x3FF)]
        for addr in escapes:
            assert await bus.write(addr, 0xDEAD) == RESP_DECERR
            assert await bus.read(addr) == (0, RESP_DECERR)
        assert await bus.pf_read("rx_ring[6].desc_tail") == 0xAAAA
        assert await bus.pf_read("vf[1].reg_denied") == 2 * len(escapes)
        assert await bus.pf_read("vf[0].reg_denied") == 0
        # The count clears on write; reading it through the window is not possible.
        await bus.pf_write("vf[1].reg_denied", 0)
        assert await bus.pf_read("vf[1].reg_denied") == 0
        # A disabled VF's window answers nothing of the PF's.
        assert await bus.read(bus.vf(2, "rx_ring[0].ctrl")) == (0, RESP_DECERR)
        assert await bus.read(bus.vf(2, "port.info")) == (0, RESP_DECERR)
        assert await bus.pf_read("vf[2].reg_denied") == 2
        # The VF region beyond the last window: refused, counted against nobody.
        beyond = 4 * (card.windows.region + VFS * card.windows.window_words)
        assert await bus.read(beyond) == (0, RESP_DECERR)
        # PF registers still answer as before, misaligned ones with SLVERR.
        assert await bus.read(bus.pf("rx_ring[5].desc_tail") + 2) == (0, RESP_SLVERR)
        assert await bus.read(bus.vf(1, "rx_ring[1].desc_tail") + 1) == (0, RESP_SLVERR)
        assert await bus.pf_read("rx_ring[5].desc_tail") == 0x1234

    bench(body)


def test_ring_base_cannot_carry_a_vf_past_the_last_ring():
    async def body(bus, ctx, card):
        await grant(bus, 0, RINGS - 1, 8)          # rings 15, then 16.. which do not exist
        await bus.pf_write("tx_ring[0].tail", 0x55)
        assert await bus.write(bus.vf(0, "rx_ring[0].ctrl"), 1) == RESP_OKAY
        assert await bus.pf_read("rx_ring[15].ctrl") == 1
        for k in range(1, 8):
            assert await bus.write(bus.vf(0, f"rx_ring[{k}].ctrl"), 0xBAD) == RESP_DECERR
        assert await bus.pf_read("tx_ring[0].tail") == 0x55
        assert await bus.pf_read("vf[0].reg_denied") == 7
        # ring_count above the window's 8 sets is stored as 8.
        await grant(bus, 3, 0, 15)
        assert (await bus.pf_read("vf[3].ctrl")) >> 16 == 8
        info = (await bus.read(bus.vf(3, "port.info")))[0]
        assert info == 3 | 8 << 8 | 1 << 16

    bench(body)


def test_a_vf_sees_the_link_of_its_own_port():
    async def body(bus, ctx, card):
        await bus.pf_write("vf[1].ctrl", 1 | 4 << 8 | 2 << 16)             # on port 0
        await bus.pf_write("vf[2].ctrl", 1 | 6 << 8 | 2 << 16 | 1 << 20)   # on port 1
        await bus.pf_write("vf[3].ctrl", 1 | 8 << 8 | 2 << 16 | 3 << 20)   # no such port

        async def links():
            return [(await bus.read(bus.vf(n, "port.info")))[0] >> 17 & 1 for n in (1, 2, 3)]

        assert await links() == [0, 0, 0]
        ctx.set(card.control.link, 0b10)
        assert await links() == [0, 1, 0]
        ctx.set(card.control.link, 0b01)
        assert await links() == [1, 0, 0]
        assert (await bus.pf_read("vf[2].ctrl")) >> 20 == 1

    bench(body)


def test_the_pf_keeps_what_it_decides_for_a_vfs_transmit_rings():
    async def body(bus, ctx, card):
        await grant(bus, 1, 4, 2)
        await bus.pf_write("tx_ring[5].ctrl", 3 << 16 | 2 << 20)     # priority 3, port 2
        await bus.pf_write("tx_ring[5].maxbw", 1000)
        # The VF enables its ring 1 and sets its size, trying for priority 0 and port 1.
        assert await bus.write(bus.vf(1, "tx_ring[1].ctrl"), 1 | 6 << 8 | 1 << 20) == RESP_OKAY
        assert await bus.pf_read("tx_ring[5].ctrl") == 1 | 6 << 8 | 3 << 16 | 2 << 20
        assert (await bus.read(bus.vf(1, "tx_ring[1].ctrl")))[0] == 1 | 6 << 8 | 3 << 16 | 2 << 20
        # Rate and VNIC are not in the window at all.
        pf_map = card.map
        for name in ("maxbw", "vnic"):
            offset = pf_map[f"tx_ring[1].{name}"].addr - pf_map.base("tx_ring") - 32
            window = card.windows.region + card.windows.window_words + 0x200 + 32
            assert await bus.write(4 * (window + offset), 0) == RESP_DECERR
        assert await bus.pf_read("tx_ring[5].maxbw") == 1000
        assert await bus.pf_read("vf[1].reg_denied") == 2
        assert "tx_ring[0].maxbw" not in card.windows.window

    bench(body)


def test_mailbox_round_trip_and_overrun():
    async def body(bus, ctx, card):
        await grant(bus, 2, 8, 1)
        ctl = card.control
        words = [0x1000 + k for k in range(8)]
        for k, w in enumerate(words):
            assert await bus.write(bus.vf(2, f"port.request{k}"), w) == RESP_OKAY
        assert not ctx.get(ctl.mbox_irq)
        await bus.write(bus.vf(2, "port.mbox"), 1)
        assert ctx.get(ctl.mbox_irq)
        assert await bus.pf_read("vf[2].mbox") & 1
        assert [await bus.pf_read(f"vf[2].request{k}") for k in range(8)] == words
        # While the PF holds it, the VF can neither change the words nor send again.
        await bus.write(bus.vf(2, "port.request3"), 0xEE)
        await bus.write(bus.vf(2, "port.mbox"), 1)
        assert await bus.pf_read("vf[2].request3") == words[3]
        assert await bus.pf_read("vf[2].mbox_overrun") == 2
        # The PF answers: reply words, reply flag (the VF's interrupt), then done.
        for k in range(8):
            await bus.pf_write(f"vf[2].reply{k}", 0x2000 + k)
        await bus.pf_write("vf[2].mbox", 0b11)
        assert not ctx.get(ctl.mbox_irq)
        assert ctx.get(ctl.vf_irq) == 1 << 2
        assert (await bus.read(bus.vf(2, "port.mbox")))[0] == 0b10
        assert [(await bus.read(bus.vf(2, f"port.reply{k}")))[0] for k in range(8)] == \
            [0x2000 + k for k in range(8)]
        # The VF's replies are read-only to it; acknowledging clears its interrupt.
        await bus.write(bus.vf(2, "port.reply0"), 0)
        assert await bus.pf_read("vf[2].reply0") == 0x2000
        await bus.write(bus.vf(2, "port.mbox"), 0b10)
        assert ctx.get(ctl.vf_irq) == 0
        assert await bus.pf_read("vf[2].mbox") == 0
        # Another VF's mailbox words are its own.
        await grant(bus, 1, 0, 1)
        assert (await bus.read(bus.vf(1, "port.request0")))[0] == 0
        # Masked: the flag is set, the line stays low; disabling the VF clears it all.
        await bus.write(bus.vf(2, "port.irq_mask"), 1)
        await bus.pf_write("vf[2].mbox", 0b10)
        assert ctx.get(ctl.vf_irq) == 0
        await grant(bus, 2, 8, 1, enable=0)
        await grant(bus, 2, 8, 1)
        assert (await bus.read(bus.vf(2, "port.mbox")))[0] == 0
        assert (await bus.read(bus.vf(2, "port.irq_mask")))[0] == 0

    bench(body)


def test_dma_windows_reach_the_grants():
    async def body(bus, ctx, card):
        await bus.pf_write("vf[1].dma1_base.lo", 0x1234_5FFF)
        await bus.pf_write("vf[1].dma1_base.hi", 0x2)
        await bus.pf_write("vf[1].dma1_limit.lo", 0x1234_7000)
        assert await bus.pf_read("vf[1].dma1_base.lo") == 0x1234_5000
        g = card.control.grants[1]
        assert ctx.get(g.windows[1].base) == 0x2_1234_5
        assert ctx.get(g.windows[1].limit) == 0x1234_7
        assert ctx.get(g.windows[0].base) == 0

    bench(body)


def test_spoof_settings_reach_the_checker_and_drops_are_counted():
    async def body(bus, ctx, card):
        await bus.pf_write("vf[2].spoof", 0b111 | 7 << 16)
        await bus.pf_write("vf[2].mac1.lo", 0x0000_0002)
        await bus.pf_write("vf[2].mac1.hi", 0x02AA)
        await bus.pf_write("vf[2].ip0", 0x0A07_0015)
        s = card.control.spoof[2]
        assert (ctx.get(s.check_mac), ctx.get(s.check_vlan), ctx.get(s.check_ip),
                ctx.get(s.vlan)) == (1, 1, 1, 7)
        assert ctx.get(s.macs[1]) == 0x02AA_0000_0002 and ctx.get(s.ips[0]) == 0x0A07_0015
        assert await bus.pf_read("vf[2].mac1.hi") == 0x02AA
        assert await bus.pf_read("vf[2].spoof") == 0b111 | 7 << 16
        for _ in range(3):
            ctx.set(card.control.spoofed, 1 << 2)
            await ctx.tick()
        ctx.set(card.control.spoofed, 0)
        assert await bus.pf_read("vf[2].spoofed") == 3
        await bus.pf_write("vf[2].spoofed", 0)
        assert await bus.pf_read("vf[2].spoofed") == 0
        # (the mailbox words beside them are untouched)
        assert await bus.pf_read("vf[2].reply0") == 0

    bench(body)


def test_windows_need_room_above_the_pf_map():
    small = RegisterMap("t", [ring_block("rx_ring"), ring_block("tx_ring"),
                              VfControl(4).pf_block(), VfControl(4).port_block()])
    assert small.addr_width == 11                  # 2048 words: room for two windows
    VfWindows(small, 2)
    with pytest.raises(ValueError, match="do not fit"):
        VfWindows(small, 4)


def test_vf_on_the_card(run_cocotb):
    """The whole card (the simulated card's build) in Verilator: tb_vf.py."""
    run_cocotb(NicCore(**FULL_OPTIONS), "tb_vf", testcase="guest_rings_and_escapes",
               params={"core": FULL_OPTIONS})
