"""Directed cocotb tests of the whole NicCore (run by test_nic_directed.py): the corner cases
random traffic rarely reaches, each set up on purpose and checked to the byte and the counter.

* ``ring_full``: a ring the host stops servicing fills up; the drops are whole and counted and
  the other ring keeps receiving; delivery resumes once the host catches up.
* ``descriptor_starvation``: fewer posted buffers than frames.
* ``table_update_under_traffic``: MAC, VNIC and flow entries rewritten while both ports carry
  frames; every frame lands on the old or the new ring, whole, and the switch is clean.
* ``bad_csr_accesses``: every kind of bad register access gets the bridge's defined answer,
  none hangs the bus or changes a register, and the card still delivers afterwards.

Frames carry a unique tag, so every completion is matched to the frame that was sent.
"""

import random
import re

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Timer, with_timeout
from cocotbext.axi import AxiResp
from cocotbext.eth import GmiiFrame
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from crossnic.gateware.layouts import DropReason, Priority
from crossnic.gateware.nic_core import NIC_ID
from crossnic.host.classifier import (
    ClassifierConfig,
    FlowEntry,
    MacEntry,
    VnicSettings,
    flow_writes,
    mac_writes,
    vnic_writes,
    writes,
)
from crossnic.host.rings import RxRing
from crossnic.sim.nic_bench import MEM, Card
from crossnic.sim.scenario import mac_text

SRC_MAC = 0x0200_0000_00AA
#: Destination MAC of VNIC k in the simple configurations.
VNIC_MAC = [0x0200_0000_0A00 | k for k in range(8)]
#: Spare receive buffers, far from the rings :meth:`Card.rings` lays out.
SPARE = MEM // 4


def fill(n: int) -> bytes:
    """What every receive buffer holds before the card writes it (``n`` = its size): a
    pattern with a period (251) prime to every burst and buffer size, so a stray write, even
    of the right bytes shifted, shows."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def fill_buffers(card: Card, base: int, count: int, buf_size: int) -> None:
    card.ram.write(base, fill(buf_size) * count)


def udp_frame(rng: random.Random, dst: int, tag: int, *, dport: int = 9,
              size: int | None = None) -> bytes:
    """A valid UDP frame to ``dst`` (60..300 bytes unless ``size``) whose payload starts with
    ``tag``, so it is unique and identifiable."""
    size = size if size is not None else rng.randrange(60, 300)
    head = (Ether(dst=mac_text(dst), src=mac_text(SRC_MAC))
            / IP(src="10.0.0.1", dst="10.0.1.1") / UDP(sport=1024 + tag % 60000, dport=dport))
    body = tag.to_bytes(4, "big") + rng.randbytes(max(0, size - len(head) - 4))
    return bytes(head / body)


def simple_config(vnics: int) -> ClassifierConfig:
    """VNIC k owns ``VNIC_MAC[k]`` and receives everything on ring k."""
    return ClassifierConfig(
        macs=[MacEntry(VNIC_MAC[k], 0, k) for k in range(vnics)],
        vnics={k: VnicSettings(True, Priority.MEDIUM, k, k, k) for k in range(vnics)})


async def setup_ring(card: Card, ring: RxRing, post: int | None = None) -> None:
    """Configure and enable ``ring``, fill its buffers with the pattern, post ``post`` of them
    (all when None)."""
    ring.clear_completions(card.ram.write)
    fill_buffers(card, ring.buf_base, ring.size, ring.buf_size)
    await card.apply(ring.setup())
    if post != 0:
        await card.apply(ring.post(card.ram.write, post))


def region(ring: RxRing) -> tuple[int, int]:
    """(address, length) of a ring's descriptors, completions and buffers (Card.rings
    lays them out in one piece)."""
    start = ring.desc_base
    return start, ring.buf_base + ring.size * ring.buf_size - start


def snapshot(card: Card, *regions: tuple[int, int]) -> list[bytes]:
    return [card.ram.read(addr, n) for addr, n in regions]


def check_delivered(card: Card, done: list[tuple[dict, bytes]], ring: RxRing,
                    expected: list[bytes], *, port: int, vnic: int) -> None:
    """``done`` (completions just polled from ``ring``) is exactly ``expected`` in order, each
    frame whole with nothing written after it in its buffer, with the right completion
    fields."""
    got = [data for _, data in done]
    assert len(got) == len(expected), (f"ring {ring.index}: {len(got)} frames, expected "
                                       f"{len(expected)}")
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"ring {ring.index}: frame {k} differs"
    for c, data in done:
        assert c["length"] == len(data) and c["ring"] == ring.index, c
        assert c["port"] == port and c["vnic"] == vnic, c
    assert_tails(card, ring, done)


def assert_tails(card: Card, ring: RxRing, done: list[tuple[dict, bytes]]) -> None:
    """The bytes after each frame ``done`` (just polled from ``ring``) in its buffer are still
    the pattern: the engine's last beat wrote only the frame's bytes."""
    pattern = fill(ring.buf_size)
    first = (ring.cpl_tail - len(done)) & 0xFFFF
    for k, (c, _) in enumerate(done):
        addr, length = ring.posted[(first + k) % ring.size], c["length"]
        rest = card.ram.read(addr + length, ring.buf_size - length)
        assert rest == pattern[length:], (
            f"ring {ring.index}: bytes after the {length}-byte frame at {addr:#x} changed")


async def service(card: Card, ring: RxRing, expected: list[bytes], *, port: int,
                  vnic: int) -> int:
    """A driver's service pass over ``ring`` that also checks it: the new completions are
    ``expected`` (:func:`check_delivered`); their buffers are filled with the pattern again
    (so the next frame in each is checked as strictly), returned and reposted."""
    done, doorbell = ring.poll(card.ram.read)
    check_delivered(card, done, ring, expected, port=port, vnic=vnic)
    first = (ring.cpl_tail - len(done)) & 0xFFFF
    for k in range(len(done)):
        fill_buffers(card, ring.posted[(first + k) % ring.size], 1, ring.buf_size)
    await card.apply(doorbell)
    await card.apply(ring.post(card.ram.write))
    return len(done)


async def drop_counters(card: Card) -> dict[str, int]:
    """Every rx_dma drop counter by reason name."""
    return {r.name: await card.read(f"rx_dma.drop_{r.name.lower()}")
            for r in DropReason if r is not DropReason.NONE}


def only(**nonzero: int) -> dict[str, int]:
    out = {r.name: 0 for r in DropReason if r is not DropReason.NONE}
    out.update(nonzero)
    return out


class Sender:
    """Sends tagged frames and keeps count of how many the card must handle."""

    def __init__(self, card: Card, rng: random.Random):
        self.card, self.rng = card, rng
        self.total = 0
        self.tag = 0

    async def batch(self, port: int, dst: int, count: int) -> list[bytes]:
        frames = []
        for _ in range(count):
            self.tag += 1
            frames.append(udp_frame(self.rng, dst, self.tag))
        for f in frames:
            await self.card.send(port, f)
        self.total += count
        return frames

    async def settle(self) -> None:
        await self.card.settle(self.total)


@cocotb.test()
async def ring_full(dut):
    """Ring 0 (8 entries) is filled and not serviced, while ring 1 is serviced as usual.

    1. 8 frames fill ring 0. 2. Neither consumed nor reposted: the next 4 are dropped as
    NO_DESCRIPTOR (the engine checks descriptors first). 3. The host reads the completions and
    reposts buffers (spare ones) but withholds the ``cpl_tail`` doorbell: the completion ring
    is full and 6 more are dropped as COMPLETION_FULL. Neither kind of drop writes a byte to
    host memory (the whole ring and the spare buffers are compared before and after).
    4. The host rings ``cpl_tail``: the next 5 frames land in the spare buffers, phase 0.
    """
    card = await Card.start(dut)
    send = Sender(card, random.Random(11))
    await card.apply(writes(simple_config(2)))
    full, other = card.rings(2, 3)
    await setup_ring(card, full)
    await setup_ring(card, other)
    fill_buffers(card, SPARE, full.size, full.buf_size)
    spare = (SPARE, full.size * full.buf_size)
    watched = (region(full), spare)                # all ring 0 has in host memory
    other_frames = 0

    async def both_ports(to_full: int, to_other: int) -> list[bytes]:
        """Frames for ring 0 on port 0 and for ring 1 on port 1; ring 1 is serviced. Returns
        the frames sent to ring 0."""
        nonlocal other_frames
        sent = await send.batch(0, VNIC_MAC[0], to_full)
        o = await send.batch(1, VNIC_MAC[1], to_other)
        await send.settle()
        other_frames += await service(card, other, o, port=1, vnic=1)
        return sent

    # 1. fill ring 0
    first = await both_ports(8, 5)
    assert await card.read("rx_ring[0].cpl_head") == 8
    before = snapshot(card, *watched)

    # 2. nothing consumed, nothing reposted
    await both_ports(4, 5)
    assert snapshot(card, *watched) == before, "a dropped frame reached memory"
    assert await drop_counters(card) == only(NO_DESCRIPTOR=4)
    assert await card.read("rx_ring[0].drops") == 4

    # 3. completions read, buffers reposted (spare ones), cpl_tail doorbell withheld
    done, doorbell = full.poll(card.ram.read)
    check_delivered(card, done, full, first, port=0, vnic=0)
    assert doorbell == [("rx_ring[0].cpl_tail", 8)]
    full.buf_base = SPARE
    await card.apply(full.post(card.ram.write))
    assert full.desc_tail == 16
    before = snapshot(card, *watched)
    await both_ports(6, 6)
    assert snapshot(card, *watched) == before, "a dropped frame reached memory"
    assert await drop_counters(card) == only(NO_DESCRIPTOR=4, COMPLETION_FULL=6)
    assert await card.read("rx_ring[0].drops") == 10
    assert await card.read("rx_ring[0].desc_head") == 8
    assert await card.read("rx_ring[0].cpl_head") == 8

    # 4. the host catches up: delivery resumes, into the spare buffers, second pass
    await card.apply(doorbell)
    later = await both_ports(5, 3)
    done, _ = full.poll(card.ram.read)
    check_delivered(card, done, full, later, port=0, vnic=0)
    assert all(c["phase"] == 0 for c, _ in done)
    assert [full.posted[k] for k in range(5)] == [SPARE + k * full.buf_size for k in range(5)]
    assert card.ram.read(SPARE + 5 * full.buf_size, 3 * full.buf_size) == \
        fill(full.buf_size) * 3, "an unused spare buffer changed"

    assert await drop_counters(card) == only(NO_DESCRIPTOR=4, COMPLETION_FULL=6)
    assert await card.read("rx_ring[0].frames") == 13
    assert await card.read("rx_ring[0].bytes") == sum(map(len, first + later))
    assert await card.read("rx_ring[0].drops") == 10
    assert await card.read("rx_ring[0].cpl_head") == 13
    assert await card.read("rx_ring[1].frames") == other_frames == 19
    assert await card.read("rx_ring[1].drops") == 0
    assert await card.read("rx_dma.frames") == 13 + 19
    assert await card.read("rx_dma.aborted") == 0


@cocotb.test()
async def descriptor_starvation(dut):
    """Ring 0 (16 entries) gets more frames than it has posted buffers, in three rounds:
    none posted (all 3 dropped), 3 posted (3 of 10 delivered, 7 dropped), 5 more posted (5 of
    10), then every buffer posted (6 of 6). Delivered frames are the first ones of each round,
    whole; the drops are NO_DESCRIPTOR in the global and the ring's counters and write nothing
    (unposted buffers and completion slots stay as they were). Ring 1 receives throughout."""
    card = await Card.start(dut)
    send = Sender(card, random.Random(12))
    await card.apply(writes(simple_config(2)))
    starved, other = card.rings(2, 4)
    await setup_ring(card, starved, post=0)
    await setup_ring(card, other)
    drops = delivered = other_frames = delivered_bytes = 0

    async def round_(count: int, expect_delivered: int) -> None:
        nonlocal drops, delivered, other_frames, delivered_bytes
        before = snapshot(card, region(starved))
        frames = await send.batch(0, VNIC_MAC[0], count)
        o = await send.batch(1, VNIC_MAC[1], 5)
        await send.settle()
        other_frames += await service(card, other, o, port=1, vnic=1)
        # nothing but the delivered frames' buffers and completions changed
        written = {starved.posted[(starved.cpl_tail + k) % starved.size]
                   for k in range(expect_delivered)}
        done, doorbell = starved.poll(card.ram.read)
        check_delivered(card, done, starved, frames[:expect_delivered], port=0, vnic=0)
        after = snapshot(card, region(starved))[0]
        cpl_slots = {(starved.cpl_tail - 1 - k) % starved.size for k in range(len(done))}
        start, _ = region(starved)
        for slot in range(starved.size):
            buf = starved.buf_base + slot * starved.buf_size - start
            if starved.buf_base + slot * starved.buf_size not in written:
                assert after[buf:buf + starved.buf_size] == \
                    before[0][buf:buf + starved.buf_size], f"buffer {slot} written"
            cpl = starved.cpl_base + 16 * slot - start
            if slot not in cpl_slots:
                assert after[cpl:cpl + 16] == before[0][cpl:cpl + 16], f"completion {slot}"
        await card.apply(doorbell)
        drops += count - expect_delivered
        delivered += expect_delivered
        delivered_bytes += sum(map(len, frames[:expect_delivered]))
        assert await drop_counters(card) == only(NO_DESCRIPTOR=drops)
        assert await card.read("rx_ring[0].drops") == drops
        assert await card.read("rx_ring[0].frames") == delivered
        assert await card.read("rx_ring[0].bytes") == delivered_bytes
        assert await card.read("rx_ring[0].desc_head") == delivered
        assert await card.read("rx_ring[1].drops") == 0

    await round_(3, 0)                               # desc_tail 0
    await card.apply(starved.post(card.ram.write, 3))
    await round_(10, 3)
    await card.apply(starved.post(card.ram.write, 5))
    assert starved.desc_tail == 8
    await round_(10, 5)
    await card.apply(starved.post(card.ram.write))   # every free slot: desc_tail 24
    assert starved.desc_tail == 24
    await round_(6, 6)
    assert await card.read("rx_ring[1].frames") == other_frames == 20
    assert await card.read("rx_dma.frames") == delivered + other_frames
    assert await card.read("rx_dma.aborted") == 0


#: The table-update test's streams, named by the entry rewritten under them.
_STREAMS = ("mac", "vnic", "flow", "flow_drop")


@cocotb.test()
async def table_update_under_traffic(dut):
    """Both ports carry four interleaved streams back to back while four entries are
    rewritten, one at a time, each with one store:

    * ``mac``: MAC-table entry 0 moves MAC A from VNIC 0 (ring 0) to VNIC 1 (ring 1);
    * ``vnic``: VNIC 2's forwarding ring 2 -> 3 and VNS ID 12 -> 22;
    * ``flow``: flow 0 (VNIC 3, UDP port 3000) ring 5 / low priority -> ring 6 / high;
    * ``flow_drop``: flow 1 (VNIC 4, UDP port 4000) is added with the drop action.

    Per stream and port, the frames on the old ring (with the old completion fields, never the
    new ones) are exactly the first ones sent and the rest are on the new ring (or dropped and
    counted as FLOW_DROP); every frame that started on the wire after the update's last
    register write is new. Every frame is delivered whole, exactly once, or counted.
    """
    rng = random.Random(13)
    card = await Card.start(dut)
    mac_a, mac_b, mac_c, mac_d = VNIC_MAC[:4]
    dports = {"mac": 1000, "vnic": 2000, "flow": 3000, "flow_drop": 4000}
    dsts = {"mac": mac_a, "vnic": mac_b, "flow": mac_c, "flow_drop": mac_d}
    med = Priority.MEDIUM
    flow_c = FlowEntry(ring=5, priority=Priority.LOW, vnic=3, proto=17, local_port=3000)
    cfg = ClassifierConfig(
        macs=[MacEntry(mac_a, 0, 0), MacEntry(mac_b, 0, 2), MacEntry(mac_c, 0, 3),
              MacEntry(mac_d, 0, 4)],
        vnics={0: VnicSettings(True, med, 10, 0, 0), 1: VnicSettings(True, med, 11, 1, 1),
               2: VnicSettings(True, med, 12, 2, 2), 3: VnicSettings(True, med, 13, 4, 4),
               4: VnicSettings(True, med, 14, 7, 7)},
        flows=[flow_c, None])
    updates = {
        "mac": mac_writes(0, MacEntry(mac_a, 0, 1)),
        "vnic": vnic_writes(2, VnicSettings(True, med, 22, 3, 3)),
        "flow": flow_writes(0, FlowEntry(ring=6, priority=Priority.HIGH, vnic=3, proto=17,
                                         local_port=3000)),
        "flow_drop": flow_writes(1, FlowEntry(ring=0, drop=True, vnic=4, proto=17,
                                              local_port=4000)),
    }
    # What a completion of each stream says before / after its update: (ring, fields).
    old = {"mac": (0, {"vnic": 0, "vns_id": 10, "flow_hit": 0}),
           "vnic": (2, {"vnic": 2, "vns_id": 12, "flow_hit": 0}),
           "flow": (5, {"vnic": 3, "vns_id": 13, "flow_hit": 1, "flow_id": 0,
                        "priority": Priority.LOW.value}),
           "flow_drop": (7, {"vnic": 4, "vns_id": 14, "flow_hit": 0})}
    new = {"mac": (1, {"vnic": 1, "vns_id": 11, "flow_hit": 0}),
           "vnic": (3, {"vnic": 2, "vns_id": 22, "flow_hit": 0}),
           "flow": (6, {"vnic": 3, "vns_id": 13, "flow_hit": 1, "flow_id": 0,
                        "priority": Priority.HIGH.value}),
           "flow_drop": None}
    await card.apply(writes(cfg))
    rings = await card.open_rings(8, 8)            # 256 entries: no servicing needed

    per_port = 40 * len(_STREAMS)
    sent = {}                                      # frame bytes -> (port, stream, index)
    started = {}                                   # (port, index) -> sim time of its start
    finished = [0, 0]

    def on_wire(port: int, index: int):
        def done(frame: GmiiFrame) -> None:
            started[port, index] = frame.sim_time_start
            finished[port] += 1
        return done

    for index in range(per_port):
        stream = _STREAMS[index % len(_STREAMS)]
        for port in range(2):
            f = udp_frame(rng, dsts[stream], port << 16 | index, dport=dports[stream])
            sent[f] = (port, stream, index)
            await card.wire[port].send(GmiiFrame.from_payload(f, min_len=0,
                                                              tx_complete=on_wire(port, index)))
    done_at = {}
    for k, stream in enumerate(_STREAMS):
        while min(finished) < per_port * (k + 1) // (len(_STREAMS) + 1):
            await Timer(1, unit="us")
        await card.apply(updates[stream])
        if stream.startswith("flow"):
            for _ in range(100):                   # the store is done when cmd reads 0
                if await card.read("flow_table.cmd") == 0:
                    break
            else:
                raise AssertionError("flow_table.cmd stayed busy")
        done_at[stream] = get_sim_time()
    assert min(finished) < per_port, "the updates came after the traffic: nothing tested"
    await card.settle(2 * per_port)

    outcome = {}                                   # (port, stream, index) -> "o"/"n"
    for ring in rings:
        done = await card.collect(ring, repost=False)
        assert await card.read(ring.reg("frames")) == len(done)
        assert await card.read(ring.reg("drops")) == 0
        for c, data in done:
            assert data in sent, f"ring {ring.index}: a frame that was never sent"
            port, stream, index = key = sent[data]
            assert key not in outcome, f"{key} delivered twice"
            assert c["length"] == len(data) and c["port"] == port, c
            for mark, want in (("o", old[stream]), ("n", new[stream])):
                if want and ring.index == want[0] and all(c[f] == v
                                                          for f, v in want[1].items()):
                    outcome[key] = mark
                    break
            else:
                raise AssertionError(f"{stream} frame {index} of port {port}: ring "
                                     f"{ring.index}, completion {c}: neither old nor new")
    dropped = 0
    for stream in _STREAMS:
        after = "d" if new[stream] is None else "n"      # d: not delivered
        indices = [i for i in range(per_port) if _STREAMS[i % len(_STREAMS)] == stream]
        for port in range(2):
            got = "".join(outcome.get((port, stream, i), "d") for i in indices)
            dut._log.info("%s, port %d: %s", stream, port, got)
            assert re.fullmatch(f"o+{after}+", got), f"{stream}, port {port}: {got}"
            late = [i for i in indices if started[port, i] > done_at[stream]]
            assert late, f"{stream}, port {port}: no frame started after the update"
            assert all(outcome.get((port, stream, i), "d") == after for i in late), \
                f"{stream}, port {port}: a frame started after the update got the old entry"
            dropped += got.count("d")
    assert await drop_counters(card) == only(FLOW_DROP=dropped)
    assert await card.read("rx_dma.frames") == len(outcome) == 2 * per_port - dropped
    # flow 0 steered every "flow" frame; flow 1 dropped the others it matched
    assert await card.read("classifier_stats.flow_hits") == \
        2 * per_port // len(_STREAMS) + dropped
    for k in range(2):
        assert await card.read(f"eth{k}_rx.frames_ok") == per_port


@cocotb.test()
async def bad_csr_accesses(dut):
    """Bad register accesses on the NIC's map, alone and interleaved with good ones, with a
    ring live: unmapped words inside blocks (including ones a block's short address decode
    would alias onto a real register) and past the last block read 0 with DECERR and ignore
    writes; misaligned accesses and writes with partial strobes get SLVERR and change nothing;
    writes to read-only registers and bits are OKAY and change nothing. Every access is
    answered within a bound, and afterwards the ring delivers frames as before.

    Besides every response on the bus, the card's own counts of refused accesses
    (``nic.slverr``, ``nic.decerr``) must match: one per bad AXI transfer, none for good ones."""
    card = await Card.start(dut)
    send = Sender(card, random.Random(14))
    m = card.regmap
    ax = card.axil
    await card.apply(writes(simple_config(1)))
    (ring,) = card.rings(1, 4)
    await setup_ring(card, ring)
    first = await send.batch(0, VNIC_MAC[0], 2)
    await send.settle()
    await service(card, ring, first, port=0, vnic=0)
    await card.write("nic.scratch", 0x5CA7C4ED)
    # Staging that would invalidate VNIC 0's MAC entry, if a stray write ever stored it.
    await card.apply([("mac_table.index", 0), ("mac_table.ctrl", 0)])

    def word(path: str) -> int:
        return 4 * m[path].addr

    def block_word(block: str, offset: int) -> int:
        return 4 * (m.base(block) + offset)

    async def read(addr: int, n: int = 4):
        return await with_timeout(ax.read(addr, n), 20, "us")

    async def write(addr: int, data: bytes):
        return await with_timeout(ax.write(addr, data), 20, "us")

    async def refused() -> dict[str, int]:
        return {k: await card.read(f"nic.{k}") for k in ("slverr", "decerr")}

    assert await refused() == {"slverr": 0, "decerr": 0}
    ring0 = m.base("rx_ring")
    unmapped = [
        *[block_word("nic", k) for k in (9, 12, 15, 16, 0x7FF)],  # 16..31 alias 0..15
        *[4 * (ring0 + o) for o in (12, 13, 15, 22, 31)],       # holes in live ring 0's set
        4 * (ring0 + 63 * 32 + 31),
        block_word("tx_ring", 5 * 32 + 13),
        block_word("mac_table", 7),
        *[block_word("flow_table", k) for k in (10, 15, 24, 31)],
        word("eth0_tx.underrun") + 4,                            # a 32-bit counter: no .hi
        4 * (len(m.blocks) << m.block_bits),                     # past the last block
        4 * ((1 << m.addr_width) - 1),
    ]
    # unmapped reads: DECERR, 0, even right after a read that returned data
    for addr in unmapped:
        assert (await read(word("nic.id"))).data == NIC_ID.to_bytes(4, "little")
        r = await read(addr)
        assert (r.resp, r.data) == (AxiResp.DECERR, bytes(4)), f"read {addr:#x}: {r}"
    # misaligned reads: SLVERR, 0
    for addr in (word("nic.id") + 1, word("nic.id") + 2, word("nic.scratch") + 3):
        r = await read(addr, 1)
        assert (r.resp, r.data) == (AxiResp.SLVERR, b"\x00"), f"read {addr:#x}: {r}"

    # writes that would do harm if they were carried out; none is
    harmful = [
        (block_word("nic", 19), b"\xff" * 4, AxiResp.DECERR),       # scratch, mod 16
        (block_word("mac_table", 7), b"\x01" * 4, AxiResp.DECERR),  # hole in the decode
        (block_word("mac_table", 12), b"\x01\x00\x00\x00", AxiResp.DECERR),  # cmd, mod 8
        (4 * (ring0 + 12), b"\x00" * 4, AxiResp.DECERR),
        (4 * (ring0 + 28), b"\x00" * 4, AxiResp.DECERR),
        (block_word("flow_table", 12), b"\x01\x00\x00\x00", AxiResp.DECERR),
        (4 * (len(m.blocks) << m.block_bits), b"\xff" * 4, AxiResp.DECERR),
        (word("nic.scratch") + 1, b"\x11", AxiResp.SLVERR),           # misaligned
        (word("nic.scratch"), b"\x22\x22", AxiResp.SLVERR),           # strobes 0011
        (word("nic.scratch") + 2, b"\x33\x33", AxiResp.SLVERR),       # strobes 1100
        (word("nic.version") + 2, b"\x44" * 4, AxiResp.SLVERR),       # two partial beats
        (word("rx_ring[0].ctrl"), b"\x00", AxiResp.SLVERR),           # would disable it
        (word("rx_ring[0].desc_tail"), b"\xff", AxiResp.SLVERR),      # would post garbage
        (word("rx_ring[0].desc_base.lo") + 1, b"\x00\x00\x00", AxiResp.SLVERR),
    ]
    for addr, data, resp in harmful:
        assert (await write(addr, data)).resp == resp, f"write {addr:#x}"
    # one pulse per AXI transfer: the write at version + 2 is two partial ones
    bad = {"slverr": 3 + sum(r == AxiResp.SLVERR for *_, r in harmful) + 1,
           "decerr": len(unmapped) + sum(r == AxiResp.DECERR for *_, r in harmful)}
    assert await refused() == bad
    # read-only registers and bits: OKAY, nothing changes
    keep = ["nic.id", "nic.version", "nic.params", "rx_ring[0].desc_head",
            "rx_ring[0].cpl_head", "rx_ring[0].frames.lo", "rx_ring[0].frames.hi",
            "rx_ring[0].drops.lo", "rx_dma.frames.hi", "classifier_stats.frames.hi",
            "tx_ring[0].head", "tx_ring[0].fetch"]
    values = {p: await card.read(p) for p in keep}
    for p in keep:
        assert (await write(word(p), b"\xff" * 4)).resp == AxiResp.OKAY, p
    assert {p: await card.read(p) for p in keep} == values
    assert await card.read("rx_dma.frames") == 2                  # .hi write did not clear
    await card.write("rx_ring[1].desc_base.lo", 0x1234_567F)
    assert await card.read("rx_ring[1].desc_base.lo") == 0x1234_5670
    assert await refused() == bad                  # read-only is not an error
    await card.write("rx_ring[1].desc_tail", 0xFFFF_ABCD)
    assert await card.read("rx_ring[1].desc_tail") == 0xABCD
    await card.write("rx_ring[1].desc_tail", 0)
    await card.write("rx_ring[1].desc_base.lo", 0)

    # all of it again at once, interleaved with good reads, while frames arrive
    live = await send.batch(0, VNIC_MAC[0], 6)
    jobs = []
    for addr, data, resp in harmful:
        jobs.append((cocotb.start_soon(write(addr, data)), resp, None))
        jobs.append((cocotb.start_soon(read(word("nic.scratch"))), AxiResp.OKAY,
                     (0x5CA7C4ED).to_bytes(4, "little")))
    for addr in unmapped:
        jobs.append((cocotb.start_soon(read(addr)), AxiResp.DECERR, bytes(4)))
        jobs.append((cocotb.start_soon(read(word("nic.id"))), AxiResp.OKAY,
                     NIC_ID.to_bytes(4, "little")))
    for task, resp, data in jobs:
        r = await task
        assert r.resp == resp, r
        if data is not None:
            assert r.data == data, r

    assert await refused() == {"slverr": 2 * bad["slverr"] - 3, "decerr": 2 * bad["decerr"]}
    await card.write("nic.decerr", 0)                 # write clears
    assert (await refused())["decerr"] == 0

    # the card is as it was and still delivers
    await send.settle()
    more = await send.batch(1, VNIC_MAC[0], 3)
    await send.settle()
    assert await card.read("nic.scratch") == 0x5CA7C4ED
    assert await card.read("nic.id") == NIC_ID
    assert await card.read("rx_ring[0].ctrl") == 1 | 4 << 8
    assert await card.read("rx_ring[0].desc_tail") == ring.desc_tail
    assert await card.read("mac_table.ctrl") == 0                  # still only staged
    done = await card.collect(ring)
    got = [data for _, data in done]
    assert got == live + more
    assert [c["port"] for c, _ in done] == [0] * 6 + [1] * 3
    assert_tails(card, ring, done)
    assert await card.read("rx_ring[0].frames") == 11
    assert await card.read("rx_ring[0].desc_head") == 11
    assert await drop_counters(card) == only()
    assert await card.read("rx_dma.axi_errors") == 0
