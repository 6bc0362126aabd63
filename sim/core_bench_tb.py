"""cocotb side of the line-rate run of the whole card (benchmarks/core.py, and a short version in
the tests): 64-byte frames back to back on both ports, eight VNICs each with its own ring, a
host that reposts buffers as it reads completions, like a driver's service loop.

Writes ``results`` (JSON) with frames sent, delivered, dropped by reason, port overflows,
clocks per frame and simulation speed.
"""

import json
import time
from pathlib import Path

import cocotb
from cocotb.triggers import Timer
from cocotb.utils import get_sim_time

from crossnic.gateware.layouts import DropReason, Priority
from crossnic.host.classifier import ClassifierConfig, MacEntry, Policy, VnicSettings, writes
from crossnic.sim.cocotb_util import params
from crossnic.sim.nic_bench import Card

VNICS = 8
CLOCK_NS = 8.0            # the core clock Card.start drives


def frames_for(size: int) -> list[bytes]:
    """One frame per VNIC: to its MAC, IPv4/UDP, ``size`` bytes without FCS."""
    out = []
    for v in range(VNICS):
        dst = (0x0200_0000_0100 + v).to_bytes(6, "big")
        src = (0x0200_0000_9900 + v).to_bytes(6, "big")
        ip_len = size - 14
        ip = bytearray(b"\x45\x00" + ip_len.to_bytes(2, "big") + b"\x00\x01\x00\x00\x40\x11"
                       + b"\x00\x00" + bytes([10, 0, 0, 2]) + bytes([10, v, 0, 1]))
        csum = sum(int.from_bytes(ip[k:k + 2], "big") for k in range(0, 20, 2))
        csum = (csum & 0xFFFF) + (csum >> 16)
        ip[10:12] = (~csum & 0xFFFF).to_bytes(2, "big")
        udp = (1000 + v).to_bytes(2, "big") + b"\x00\x07" + (ip_len - 20).to_bytes(2, "big") \
            + b"\x00\x00"
        out.append(dst + src + b"\x08\x00" + bytes(ip) + udp + bytes(ip_len - 28))
    return out


@cocotb.test()
async def line_rate(dut):
    p = params()
    total, size = p["frames"], p.get("size", 60)
    card = await Card.start(dut)
    cfg = ClassifierConfig(
        macs=[MacEntry(0x0200_0000_0100 + v, 0, v) for v in range(VNICS)],
        vnics={v: VnicSettings(True, Priority.MEDIUM, v + 1, v, v) for v in range(VNICS)},
        policy=Policy())
    await card.apply(writes(cfg))
    rings = await card.open_rings(VNICS, 9)
    templates = frames_for(size)
    delivered = {"n": 0, "bad": 0}

    async def service():
        """The driver's loop: read completions, return and repost buffers."""
        while True:
            await Timer(20, unit="us")
            for ring in rings:
                for _c, data in await card.collect(ring):
                    delivered["n"] += 1
                    delivered["bad"] += data != templates[ring.index]

    cocotb.start_soon(service())
    # Clocks from simulated time, not a coroutine woken on every edge (the hot path).
    started_wall, started_ns = time.monotonic(), get_sim_time("ns")
    for k in range(total):
        await card.send(k % 2, templates[(k // 2) % VNICS])
    await card.settle(total, timeout_us=10 * total)
    clocks = {"n": round((get_sim_time("ns") - started_ns) / CLOCK_NS)}
    wall = time.monotonic() - started_wall
    await Timer(60, unit="us")                       # the service loop reads the last ones
    drops = {r.name.lower(): await card.read(f"rx_dma.drop_{r.name.lower()}")
             for r in DropReason if r is not DropReason.NONE}
    overflow = [await card.read(f"eth{k}_rx.drop_overflow") for k in range(2)]
    result = {
        "frames": total, "size": size, "rings": VNICS,
        "delivered": delivered["n"], "data_mismatches": delivered["bad"],
        "dma_frames": await card.read("rx_dma.frames"), "drops": drops,
        "port_overflow_drops": overflow, "clocks": clocks["n"],
        "clocks_per_frame": round(clocks["n"] / total, 2),
        "mpps_at_125mhz": round(125e6 / (clocks["n"] / total) / 1e6, 3),
        "wall_seconds": round(wall, 1),
        "sim_clocks_per_second": round(clocks["n"] / wall),
        "frames_per_second": round(total / wall),
    }
    Path(p["results"]).write_text(json.dumps(result, indent=1))
    assert result["delivered"] == total and not result["data_mismatches"], result
    assert not any(drops.values()) and not any(overflow), result
