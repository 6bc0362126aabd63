"""cocotb side of ``crossnic sim --serve``: the whole card as a long-lived device.

Drivers reach its registers and interrupts through :class:`~crossnic.sim.mmio_server.MmioServer`;
host memory is the shared file the launcher created, given to the AXI host-memory model
(cocotbext-axi ``AxiRam``) as its memory, so DMA lands where the driver has it mapped. Each
port's wire goes to a cable (:mod:`crossnic.sim.cables`). Runs until a client says ``BYE`` or
the launcher goes away.

When nothing happens (no request, no frame on a cable or a wire, no DMA, no transmit descriptor
waiting, even for a rate limit's tokens) for a while, the loop
blocks on the request queue for a millisecond at a time instead of simulating an idle card at
full speed: a served card costs little CPU while it waits.
"""

import json
import logging
import mmap
import os
import time

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.eth import GmiiFrame

from crossnic.gateware.nic_core import FULL_OPTIONS, NicCore
from crossnic.host.sim_protocol import Op
from crossnic.sim.cables import CableSpec, open_cable
from crossnic.sim.cocotb_util import params
from crossnic.sim.mmio_server import DECERR, MmioServer, VfApertures
from crossnic.sim.nic_bench import Card

#: Clocks simulated between two looks at the queues.
STEP = 16
#: Quiet steps before the loop starts to block on the request queue.
QUIET_STEPS = 128
#: Seconds to block when quiet.
QUIET_WAIT = 0.001
#: The card's clock period (ns).
CLOCK_NS = 8


def _bits(signal) -> int:
    value = signal.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


async def _transmit(card: Card, k: int, cables, activity: list[int]) -> None:
    """Frames port ``k`` sends: into its cable, or into the other port for ``other``."""
    sink = card.tx_wire[k]
    while True:
        frame = await sink.recv()
        activity[0] += 1
        if not frame.check_fcs():
            continue                    # the MAC never sends a bad FCS; a wire would drop it
        payload = bytes(frame.get_payload())
        spec, cable = cables[k]
        if spec.kind == "other":
            if not cable.link:
                cable.lost += 1
                continue
            cable.sent += 1
            card.wire[1 - k].send_nowait(GmiiFrame.from_payload(payload))
        else:
            cable.send(payload)


async def _watch_rises(line, shift: int, rises: list[int]) -> None:
    """Collect the rising edges of interrupt lines ``line`` (bit 0 at vector ``shift``) as
    they happen: the loop looks only every :data:`STEP` clocks, and a line acknowledged and
    raised again within one step would look as if it had stayed high (a lost interrupt)."""
    old = _bits(line)
    while True:
        await line.value_change
        new = _bits(line)
        rises[0] |= (new & ~old) << shift
        old = new


def _report(path: str, stats: dict, seconds: float) -> None:
    """Serve-mode figures: simulated cycles per second while busy, overall."""
    busy = stats["busy_seconds"]
    out = dict(stats, seconds=round(seconds, 3),
               busy_cycles_per_s=round(stats["busy_cycles"] / busy) if busy else None,
               cycles_per_s=round(stats["cycles"] / seconds) if seconds else None)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, path)


@cocotb.test()
async def serve(dut):
    p = params()
    size = p["memory_size"]
    fd = os.open(p["memory"], os.O_RDWR)
    mem = mmap.mmap(fd, size)
    os.close(fd)
    card = await Card.start(dut, mem=mem)
    # the bus and Ethernet models log every access and frame: not for a long-lived device
    logging.getLogger("cocotb").setLevel(logging.WARNING)
    rings = len(dut.rx_irq)
    specs = [CableSpec(**c) for c in p["ports"]]
    cables = [(spec, open_cable(spec)) for spec in specs]

    def show_links() -> None:
        if all(spec.kind == "other" for spec in specs):      # one cable, port to port
            for _, cable in cables:
                cable.other = all(c.plugged for _, c in cables)
        dut.link.value = sum(int(cable.link) << k for k, (_, cable) in enumerate(cables))

    show_links()
    # Vectors: receive rings, transmit rings, the PF's mailbox, then each VF's mailbox reply.
    vfs = len(dut.vf_irq) if hasattr(dut, "vf_irq") else 0
    apertures = None
    if vfs:
        core = NicCore(**FULL_OPTIONS)
        regmap = core.regmap()
        apertures = VfApertures(core.vf_base(0), core.vf_windows.window_words, rings,
                                [regmap[f"vf[{n}].ctrl"].addr for n in range(vfs)])
    server = MmioServer(p["socket"], p["memory"], size, 2 * rings + 1 + vfs, apertures)
    activity = [0]
    rises = [0]
    for line, shift in ((dut.rx_irq, 0), (dut.tx_irq, rings),
                        *(((dut.mbox_irq, 2 * rings), (dut.vf_irq, 2 * rings + 1))
                          if vfs else ())):
        cocotb.start_soon(_watch_rises(line, shift, rises))
    for k in range(len(cables)):
        cocotb.start_soon(_transmit(card, k, cables, activity))
    parent = os.getppid()
    bar_size = 1 << len(dut.axil__araddr)
    axi_valid = [getattr(dut, f"axi__{s}valid") for s in ("ar", "aw", "r", "b")]
    offload_busy = getattr(dut, "offload_busy", None)     # a card built with the engine
    quiet = 0
    steps = 0
    stats = {"cycles": 0, "busy_cycles": 0, "busy_seconds": 0.0, "requests": 0,
             "frames_in": 0}
    stats_path = p.get("stats")
    started = last_report = time.monotonic()
    try:
        while True:
            busy = False
            step_start, step_ns = time.monotonic(), get_sim_time("ns")
            server.poll(0)
            while (req := server.take()) is not None:
                busy = True
                stats["requests"] += 1
                if req.op in (Op.READ, Op.WRITE) and 4 * req.addr >= bar_size:
                    server.reply(req, 0xFFFF_FFFF, DECERR)     # beyond BAR0
                elif req.op is Op.READ:
                    r = await card.axil.read(4 * req.addr, 4)
                    server.reply(req, int.from_bytes(r.data, "little"), int(r.resp))
                elif req.op is Op.WRITE:
                    r = await card.axil.write(4 * req.addr, req.value.to_bytes(4, "little"))
                    server.reply(req, 0, int(r.resp))
                elif req.op is Op.CABLE:
                    if req.addr >= len(cables) or req.value > 2:
                        server.reply(req, 0, DECERR)
                        continue
                    cable = cables[req.addr][1]
                    if req.value < 2:
                        cable.plug(bool(req.value))
                        show_links()
                        print(f"port {req.addr}: cable "
                              f"{'plugged in' if req.value else 'pulled'}", flush=True)
                    server.reply(req, int(cable.link))
                else:                                   # BYE
                    server.reply(req)
                    return
            for k, (_, cable) in enumerate(cables):
                for frame in cable.poll():
                    busy = True
                    stats["frames_in"] += 1
                    card.wire[k].send_nowait(GmiiFrame.from_payload(frame))
            if rises[0]:
                server.interrupt(rises[0])
                rises[0] = 0
            why = ("request" if busy else "transmit" if activity[0] or _bits(dut.tx_work) else
                   "receive" if any(not w.idle() for w in card.wire) else
                   "dma" if any(_bits(s) for s in axi_valid) else
                   "offload" if offload_busy is not None and _bits(offload_busy) else None)
            if why:
                quiet, activity[0] = 0, 0
                stats["busy_" + why] = stats.get("busy_" + why, 0) + 1
            else:
                quiet += 1
            if quiet > QUIET_STEPS:
                server.wait(QUIET_WAIT)
            else:
                step_start = time.monotonic()
            await ClockCycles(dut.clk, STEP)
            steps += 1
            stats["cycles"] = int(get_sim_time("ns")) // CLOCK_NS
            if quiet <= QUIET_STEPS:
                stats["busy_cycles"] += int(get_sim_time("ns") - step_ns) // CLOCK_NS
                stats["busy_seconds"] += time.monotonic() - step_start
            if stats_path and time.monotonic() - last_report > 1.0:
                last_report = time.monotonic()
                _report(stats_path, stats, last_report - started)
            if steps % 256 == 0 and os.getppid() != parent:
                return                                  # the launcher is gone
    finally:
        server.close()
        for _, cable in cables:
            cable.close()
        await RisingEdge(dut.clk)
