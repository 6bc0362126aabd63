"""TxSpoofCheck in amaranth.sim: a VF's frames with addresses not its own are marked for
discarding and counted; everything else passes byte for byte, with its info, in order."""

import random

from amaranth.sim import Simulator
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from streams import recv_frame, send_frame

from crossnic.gateware.tx_spoof_check import TxSpoofCheck

A, B, C = "02:aa:00:00:00:01", "02:aa:00:00:00:02", "02:cc:00:00:00:03"
MY_IP, OTHER_IP = "10.0.0.5", "10.0.0.6"
VFS = 2
# VF 1: rings 8..9, MACs A and B, IP 10.0.0.5, port VLAN 7, every check; VF 0: rings 4..5,
# checks off. Every other ring is the PF's.
VF_RING, OPEN_RING, PF_RING = 8, 4, 1


def mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def tagged(frame, vid=7):
    eth = frame.copy()
    payload = eth.payload
    eth.remove_payload()
    eth.type = 0x8100
    return eth / Dot1Q(vlan=vid) / payload


def udp(src=A, ip=MY_IP, vid=7):
    f = Ether(src=src, dst="02:00:00:00:00:99") / IP(src=ip, dst="10.0.0.1") / UDP() / (b"x" * 40)
    return bytes(tagged(f, vid)) if vid is not None else bytes(f)


CASES = [  # (ring, frame, dropped)
    (PF_RING, udp(src=C, ip=OTHER_IP, vid=None), False),     # the PF: anything
    (VF_RING, udp(), False),
    (VF_RING, udp(src=B), False),                             # its second MAC
    (VF_RING, udp(src=C), True),                              # not its MAC
    (VF_RING, udp(vid=None), True),                           # untagged: out of its VLAN
    (VF_RING, udp(vid=8), True),                              # another VLAN
    (VF_RING, udp(ip=OTHER_IP), True),                        # not its IPv4 address
    (VF_RING, bytes(tagged(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") /
                           ARP(hwsrc=A, psrc=MY_IP, pdst="10.0.0.1"))), False),
    (VF_RING, bytes(tagged(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") /
                           ARP(hwsrc=C, psrc=MY_IP, pdst="10.0.0.1"))), True),
    (VF_RING, bytes(tagged(Ether(src=A, dst="ff:ff:ff:ff:ff:ff") /
                           ARP(hwsrc=A, psrc=OTHER_IP, pdst="10.0.0.1"))), True),
    (VF_RING, bytes(tagged(Ether(src=A, dst="33:33:00:00:00:01") /
                           IPv6(src="fe80::1", dst="ff02::1") / UDP())), False),
    (VF_RING, udp()[:14], True),                              # too short to show its tag
    (VF_RING + 1, udp(ip=OTHER_IP)[:28], True),               # its IPv4 source cut off
    (OPEN_RING, udp(src=C, ip=OTHER_IP, vid=3), False),       # a VF with the checks off
    # a tag inside its tag (the inner headers would escape the checks), an S-tag
    (VF_RING, bytes(tagged(tagged(Ether(src=A, dst="02:00:00:00:00:99") /
                                  IP(src=OTHER_IP, dst="10.0.0.1") / UDP() / (b"x" * 40), 9))),
     True),
    (VF_RING, bytes(Ether(src=A, dst="02:00:00:00:00:99", type=0x88A8) /
                    Dot1Q(vlan=7) / IP(src=MY_IP, dst="10.0.0.1") / UDP()), True),
]


def run(cases, *, seed=1, stall=0.0, idle=0.0):
    rng = random.Random(seed)
    dut = TxSpoofCheck(VFS)
    got, infos, pulses = [], [], [0] * VFS

    async def setup(ctx):
        for v, (base, checks, vlan, macs, ips) in enumerate(
                [(4, 0, 0, (0, 0), (0, 0)),
                 (8, 7, 7, (mac(A), mac(B)), (0x0A000005, 0))]):
            g, s = dut.grants[v], dut.spoof[v]
            ctx.set(g.enable, 1)
            ctx.set(g.ring_base, base)
            ctx.set(g.ring_count, 2)
            ctx.set(s.check_mac, checks & 1)
            ctx.set(s.check_vlan, checks >> 1 & 1)
            ctx.set(s.check_ip, checks >> 2 & 1)
            ctx.set(s.vlan, vlan)
            for k in range(2):
                ctx.set(s.macs[k], macs[k])
                ctx.set(s.ips[k], ips[k])
        async for _, _, p in ctx.tick().sample(dut.spoofed):
            for v in range(VFS):
                pulses[v] += p >> v & 1

    async def producer(ctx):
        await ctx.tick().repeat(2)
        for ring, frame, _ in cases:
            ctx.set(dut.i_info.valid, 1)
            ctx.set(dut.i_info.p.ring, ring)
            ctx.set(dut.i_info.p.length, len(frame))
            await send_frame(ctx, dut.i, frame, 4, idle=idle, rng=rng)
            ctx.set(dut.i_info.valid, 0)

    async def info_consumer(ctx):
        while len(infos) < len(cases):
            ctx.set(dut.o_info.ready, 1)
            _, _, valid, ring = await ctx.tick().sample(dut.o_info.valid, dut.o_info.p.ring)
            if valid:
                infos.append(ring)

    async def consumer(ctx):
        for _ in cases:
            frame, error, _ = await recv_frame(ctx, dut.o, 4, stall=stall, rng=rng)
            got.append((frame, error))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_process(setup)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(info_consumer)
    sim.run()
    return got, infos, pulses


def test_each_address_check():
    got, infos, pulses = run(CASES)
    assert infos == [ring for ring, _, _ in CASES]
    for (ring, frame, dropped), (out, error) in zip(CASES, got, strict=True):
        assert out == frame
        assert bool(error) == dropped, (ring, frame.hex())
    assert pulses == [0, sum(d for _, _, d in CASES)]


def test_random_order_under_backpressure():
    rng = random.Random(5)
    cases = [rng.choice(CASES) for _ in range(40)]
    got, infos, pulses = run(cases, seed=2, stall=0.4, idle=0.3)
    assert infos == [ring for ring, _, _ in cases]
    assert [e != 0 for _, e in got] == [d for _, _, d in cases]
    assert [f for f, _ in got] == [f for _, f, _ in cases]
    assert pulses[1] == sum(d for _, _, d in cases)


def test_short_frames_behind_a_long_one_keep_their_verdicts():
    """A long frame draining slowly (a 1 Gb/s port) while short frames, legitimate and
    spoofed, queue behind it: each frame carries its own verdict."""
    legit, spoofed = (OPEN_RING, udp(src=C)[:14], False), (VF_RING, udp(src=C)[:14], True)
    cases = [(VF_RING, udp() + bytes(1400), False), *[legit] * 5, *[spoofed, legit] * 4]
    got, _, pulses = run(cases, stall=0.75)
    assert [e != 0 for _, e in got] == [bad for _, _, bad in cases]
    assert pulses == [0, 4]
