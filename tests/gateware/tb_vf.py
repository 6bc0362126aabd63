"""Virtual functions on the whole card in Verilator (run by test_vf.py): a guest holding only its
VF window and its granted memory receives and sends frames through its own rings, and every
attempt to reach beyond them (registers of rings it does not own, PF-only settings, descriptors
or ring bases outside its memory) is refused, counted, and leaves the PF's state and memory as
they were.
"""

import cocotb
from cocotb.triggers import ClockCycles, Timer, with_timeout
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from crossnic.gateware.layouts import Priority
from crossnic.gateware.nic_core import NicCore
from crossnic.host.classifier import ClassifierConfig, MacEntry, VnicSettings, writes
from crossnic.host.rings import RxRing, TxRing
from crossnic.sim.cocotb_util import params
from crossnic.sim.nic_bench import Card
from crossnic.sim.scenario import mac_text

VF = 1
RING_BASE = 8                       # the VF's rings 0, 1 are the card's 8, 9
VNIC = 5
VF_MAC = 0x0200_0000_0B05
GUEST = (0x40000, 0x50000)          # the guest's memory (bytes): its one DMA window
SECRET = 0x8000                     # PF memory the guest must not reach
SECRET_BYTES = bytes((7 + k) % 256 for k in range(251)) * 8


class Guest:
    """Register access through VF ``n``'s window only (paths of the window map)."""

    def __init__(self, card: Card, core: NicCore, n: int):
        self.card, self.window, self.base = card, core.vf_window(), core.vf_base(n)

    def addr(self, path: str) -> int:
        return 4 * (self.base + self.window[path].addr)

    async def write(self, path: str, value: int):
        return await self.card.axil.write(self.addr(path), value.to_bytes(4, "little"))

    async def read(self, path: str) -> int:
        r = await self.card.axil.read(self.addr(path), 4)
        return int.from_bytes(r.data, "little")

    async def apply(self, pairs) -> None:
        for path, value in pairs:
            r = await self.write(path, value)
            assert int(r.resp) == 0, (path, r.resp)


def frame(tag: int, size: int = 200, *, out: bool = False) -> bytes:
    """A frame to the VF (``out``: from the VF to a station on the wire)."""
    ends = [mac_text(VF_MAC), "02:00:00:00:00:aa"]
    dst, src = reversed(ends) if out else ends
    head = (Ether(dst=dst, src=src) /
            IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + tag, dport=9))
    return bytes(head / (tag.to_bytes(4, "big") * ((size - len(head)) // 4)))


async def grant(card: Card) -> None:
    """The PF's side: VF 1 gets rings 8..9 and the guest's memory; VNIC 5 (MAC VF_MAC) receives
    on ring 8 and sends on ring 8 through port 0."""
    await card.apply([
        (f"vf[{VF}].dma0_base.lo", GUEST[0]), (f"vf[{VF}].dma0_base.hi", 0),
        (f"vf[{VF}].dma0_limit.lo", GUEST[1]), (f"vf[{VF}].dma0_limit.hi", 0),
        (f"vf[{VF}].ctrl", 1 | RING_BASE << 8 | 2 << 16),
        (f"tx_ring[{RING_BASE}].vnic", VNIC),
        (f"tx_ring[{RING_BASE}].ctrl", Priority.MEDIUM.value << 16 | 0 << 20),
    ])
    await card.apply(writes(ClassifierConfig(
        macs=[MacEntry(VF_MAC, 0, VNIC)],
        vnics={VNIC: VnicSettings(True, Priority.MEDIUM, 3, RING_BASE, RING_BASE)})))
    card.ram.write(SECRET, SECRET_BYTES)


def guest_rx(index: int = 0) -> RxRing:
    return RxRing(index, 3, GUEST[0], GUEST[0] + 0x100, GUEST[0] + 0x1000, 2048)


async def wait_frames(card: Card, count: int) -> None:
    for _ in range(2000):
        if await card.read("rx_dma.frames") + await card.read("rx_dma.aborted") + \
                await card.read("rx_dma.drop_bad_descriptor") >= count:
            return
        await Timer(2, unit="us")
    raise AssertionError("frames did not come out of the card")


@cocotb.test()
async def guest_rings_and_escapes(dut):
    card = await Card.start(dut)
    core = NicCore(**params()["core"])
    guest = Guest(card, core, VF)
    await grant(card)
    assert await guest.read("port.info") == VF | 2 << 8 | 1 << 16 | 1 << 17   # port 0 has link
    # The port's link, through the synchroniser, to the PF and to the VF on that port.
    assert await card.read("nic.link") == 0b11
    dut.link.value = 0b10
    await ClockCycles(dut.clk, 4)
    assert await card.read("nic.link") == 0b10
    assert await guest.read("port.info") >> 17 & 1 == 0
    dut.link.value = 0b11

    # --- receive through the guest's ring 0 ----------------------------------------------
    ring = guest_rx()
    ring.clear_completions(card.ram.write)
    await guest.apply(ring.setup())
    await guest.apply(ring.post(card.ram.write, 3))     # the next slot is posted below
    sent = [frame(k) for k in range(3)]
    for f in sent:
        await card.send(0, f)
    await wait_frames(card, 3)
    done, doorbell = ring.poll(card.ram.read)
    assert [d for _, d in done] == sent
    assert all(c["ring"] == RING_BASE and c["vnic"] == VNIC for c, _ in done)
    await guest.apply(doorbell)
    assert await card.read(f"vf[{VF}].dma_denied") == 0

    # --- a descriptor pointing at PF memory: the write is refused, the frame completes with
    # length 0, the PF's bytes are untouched ------------------------------------------------
    card.ram.write(ring.desc_base + 16 * (ring.desc_tail % ring.size),
                   SECRET.to_bytes(8, "little") + (2048).to_bytes(8, "little"))
    ring.posted[ring.desc_tail % ring.size] = SECRET
    ring.desc_tail += 1
    await guest.apply([(ring.reg("desc_tail"), ring.desc_tail)])
    aborted = await card.read("rx_dma.aborted")
    await card.send(0, frame(9))
    await wait_frames(card, 4)
    done, doorbell = ring.poll(card.ram.read)
    assert [c["length"] for c, _ in done] == [0]
    assert await card.read("rx_dma.aborted") == aborted + 1
    assert card.ram.read(SECRET, len(SECRET_BYTES)) == SECRET_BYTES
    assert await card.read(f"vf[{VF}].dma_denied") >= 1
    await guest.apply(doorbell)

    # --- a descriptor ring in PF memory: the fetch is refused (no PF bytes reach the guest) --
    denied = await card.read(f"vf[{VF}].dma_denied")
    bad_desc = await card.read("rx_dma.drop_bad_descriptor")
    evil = RxRing(1, 3, SECRET, GUEST[0] + 0x200, GUEST[0] + 0x8000, 2048)
    await guest.apply(evil.setup())
    evil.desc_tail = 4                   # "posted", in memory the guest does not own
    await guest.apply([(evil.reg("desc_tail"), 4)])
    await card.apply(writes(ClassifierConfig(
        vnics={VNIC: VnicSettings(True, Priority.MEDIUM, 3, RING_BASE + 1, RING_BASE + 1)})))
    await card.send(0, frame(10))
    await wait_frames(card, 5)
    assert await card.read("rx_dma.drop_bad_descriptor") == bad_desc + 1
    assert await card.read(f"vf[{VF}].dma_denied") == denied + 1
    assert card.ram.read(GUEST[0] + 0x8000, 2048) == bytes(2048)

    # --- transmit: a good frame leaves port 0, one from PF memory does not ------------------
    tx = TxRing(0, 3, GUEST[0] + 0x300, GUEST[0] + 0x3F0, GUEST[0] + 0x6000, 2048)
    await guest.apply([*tx.setup(port=1, vnic=0, priority=0)[:4],
                       (tx.reg("irq_moder"), 0), (tx.reg("ctrl"), 1 | 3 << 8)])
    ctrl = await card.read(f"tx_ring[{RING_BASE}].ctrl")
    assert ctrl >> 16 & 3 == Priority.MEDIUM.value and ctrl >> 20 & 3 == 0, hex(ctrl)
    good = frame(20, 300, out=True)
    await guest.apply(tx.send(card.ram.write, [good]))
    got = await with_timeout(card.tx_wire[0].recv(), 200, "us")
    assert got.get_payload() == good
    denied = await card.read(f"vf[{VF}].dma_denied")
    slot = tx.tail % tx.size
    card.ram.write(tx.desc_base + 16 * slot,
                   SECRET.to_bytes(8, "little") + (300).to_bytes(8, "little"))
    tx.tail += 1
    await guest.apply([(tx.reg("tail"), tx.tail)])
    for _ in range(200):
        if (int.from_bytes(card.ram.read(tx.head_wb, 4), "little") & 0xFFFF) == tx.tail:
            break
        await Timer(1, unit="us")
    else:
        raise AssertionError("the refused frame was never completed")
    await Timer(20, unit="us")
    assert card.tx_wire[0].empty()
    assert await card.read(f"vf[{VF}].dma_denied") > denied
    assert await card.read(f"tx_ring[{RING_BASE}].errors") >= 1

    # --- register escapes: other rings, PF-only words, holes: refused and counted ----------
    await card.write(f"rx_ring[{RING_BASE + 2}].desc_tail", 0x1234)
    window = 4 * core.vf_base(VF)
    before = await card.read(f"vf[{VF}].reg_denied")
    escapes = [window + 4 * (0x100 + 2 * 32 + 5),         # its ring 2: not granted
               window + 4 * (0x200 + 32 + 8),             # a transmit ring's maxbw
               window + 4 * 0x40, window + 4 * 0x3FC]     # no register there
    for addr in escapes:
        r = await card.axil.write(addr, (0xBAD).to_bytes(4, "little"))
        assert int(r.resp) == 3
        r = await card.axil.read(addr, 4)
        assert (int(r.resp), r.data) == (3, bytes(4))
    assert await card.read(f"rx_ring[{RING_BASE + 2}].desc_tail") == 0x1234
    assert await card.read(f"vf[{VF}].reg_denied") == before + 2 * len(escapes)
    # Another VF's window is closed (VF 2 is not enabled).
    r = await card.axil.read(4 * (core.vf_base(2) + core.vf_window()["port.info"].addr), 4)
    assert int(r.resp) == 3
    assert await card.read("vf[2].reg_denied") == 1
    # The PF still reaches everything.
    assert await card.read("nic.id") == 0x43494E58
    assert await card.read("nic.features") >> 8 == 8
