"""The card driver: brings a :class:`~crossnic.host.device.Device` up, owns its rings and
classifier tables, and moves frames between each VNIC's rings and its Linux TAP device.

One VNIC = one VNIC number in the card (MAC-table target, VNIC settings: enable, priority, VNS
instance ID, receive rings), one receive ring and one transmit ring, and a TAP device that the
daemon may have moved into a VNS namespace. Receive ring 0 is the *flood ring*: the card puts
broadcast, multicast and (by policy) unknown unicast there once, and the driver fans each frame
out to the VNICs of that port and VLAN, never back to the VNIC that sent it, as a switch does.

Thread-safe: configuration calls and the service loop (:meth:`Driver.service`) take one lock.
"""

import inspect
import os
import select
import struct
import threading
import time
from dataclasses import dataclass, field

from crossnic.gateware.layouts import Priority
from crossnic.gateware.nic_core import NIC_ID, NicCore
from crossnic.gateware.tx_scheduler import rate_register

from .classifier import (
    FlowEntry,
    LocalIp,
    MacEntry,
    Policy,
    VnicSettings,
    flow_writes,
    ip_key,
    local_ip_writes,
    mac_writes,
    policy_writes,
    vnic_writes,
)
from .device import Device, DmaBuffer
from .registers import Registers
from .rings import RxRing, TxRing

__all__ = ["Driver", "Vnic", "DriverError", "FLOOD_RING", "TABLES", "tag", "untag", "auto_mac",
           "random_mac"]

FLOOD_RING = 0
#: Table sizes of the card (NicCore's build parameters).
TABLES = {k: inspect.signature(NicCore).parameters[k].default
          for k in ("mac_entries", "local_ips", "flows")}
_HAIRPIN_PORT = 2
_RING_RESET = 1 << 31


class DriverError(RuntimeError):
    """A request the card cannot satisfy (no ring, table full, unknown VNIC, ...)."""


@dataclass
class Vnic:
    """A VNIC's hardware resources and driver counters."""
    name: str
    index: int                     # VNIC number in the card
    port: int
    mac: int
    vlan: int
    vns_id: int
    priority: Priority
    maxbw: int                     # bit/s, 0: unlimited
    rx: RxRing
    tx: TxRing
    tap: object                    # .fd, .read() -> bytes | None, .write(bytes) -> bool
    mac_slot: int
    buffers: list[DmaBuffer] = field(default_factory=list)
    local_ips: dict[str, int] = field(default_factory=dict)     # address -> table slot
    tx_full: bool = False          # the transmit ring filled: frames wait in the TAP's queue
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ["rx_frames", "rx_bytes", "rx_flooded", "tx_frames", "tx_bytes", "tx_drops"], 0))


class Driver:
    """Own the card behind ``dev``: every ring disabled and every table cleared at start."""

    def __init__(self, dev: Device, *, ring_log2: int = 8, buf_size: int = 2048,
                 clk_hz: float = 125e6):
        self.dev = dev
        self.core = NicCore()
        self.regs = Registers(self.core.regmap(), dev.read32, dev.write32)
        ident = self.regs.read("nic.id")
        if ident != NIC_ID:
            raise DriverError(f"not a crossnic card: id {ident:#010x}, expected {NIC_ID:#010x}")
        self.ports = self.regs.read_field("nic.params", "ports")
        self.rings = self.regs.read_field("nic.params", "rings")
        self.vnic_count = self.regs.read_field("nic.params", "vnics")
        self.ring_log2 = ring_log2
        self.buf_size = buf_size
        self.clk_hz = clk_hz
        self.lock = threading.RLock()
        self.vnics: dict[str, Vnic] = {}
        self._by_rx: dict[int, Vnic] = {}              # receive ring -> the VNIC it serves
        self._flow_rings: dict[int, tuple[RxRing, list[DmaBuffer]]] = {}
        self._free_rings = list(range(1, self.rings))          # 0 is the flood ring
        self._free_vnics = list(range(self.vnic_count))
        self.macs: list[MacEntry | None] = [None] * TABLES["mac_entries"]
        self.local_ips: list[LocalIp | None] = [None] * TABLES["local_ips"]
        self.flows: list[FlowEntry | None] = [None] * TABLES["flows"]
        self.flood_stats = dict.fromkeys(["frames", "deliveries"], 0)
        self._reset()
        self.flood, _ = self._rx_ring(FLOOD_RING)
        self._start_rx(self.flood)
        self._write(policy_writes(Policy(flood_ring=FLOOD_RING)))

    # --- plumbing -------------------------------------------------------------------------
    def _write(self, pairs) -> None:
        for path, value in pairs:
            self.regs.write(path, value)

    def _reset(self) -> None:
        """Every ring off with its indices back at 0 (a driver before us may have left them
        anywhere), every table entry invalid, every VNIC disabled."""
        for kind in ("rx", "tx"):
            for k in range(self.rings):
                self.regs.write(f"{kind}_ring[{k}].ctrl", _RING_RESET)
        deadline = time.monotonic() + 10
        for kind in ("rx", "tx"):
            for k in range(self.rings):
                while self.regs.read(f"{kind}_ring[{k}].ctrl") & _RING_RESET:
                    if time.monotonic() > deadline:
                        raise DriverError(f"{kind} ring {k} did not finish its reset")
        for k in range(self.rings):
            self._write([(f"rx_ring[{k}].desc_tail", 0), (f"rx_ring[{k}].cpl_tail", 0),
                         (f"rx_ring[{k}].irq_status", 1), (f"rx_ring[{k}].irq_mask", 0),
                         (f"tx_ring[{k}].tail", 0), (f"tx_ring[{k}].irq_status", 1),
                         (f"tx_ring[{k}].irq_mask", 0)])
        for k in range(len(self.macs)):
            self._write(mac_writes(k, None))
        for k in range(len(self.local_ips)):
            self._write(local_ip_writes(k, None))
        for k in range(len(self.flows)):
            self._write(flow_writes(k, None))
        for k in range(self.vnic_count):
            self._write(vnic_writes(k, VnicSettings()))

    def _alloc(self, *requests: tuple[int, int]) -> list[DmaBuffer]:
        """DMA buffers of (size, alignment) each, all or none."""
        got: list[DmaBuffer] = []
        try:
            for size, align in requests:
                got.append(self.dev.alloc(size, align))
        except MemoryError as e:
            for b in got:
                self.dev.free(b)
            raise DriverError(f"host memory for DMA is exhausted ({e})") from None
        return got

    def _rx_ring(self, index: int) -> tuple[RxRing, list[DmaBuffer]]:
        n = 1 << self.ring_log2
        desc, cpl, bufs = self._alloc((16 * n, 64), (16 * n, 64), (self.buf_size * n, 4096))
        ring = RxRing(index, self.ring_log2, desc.addr, cpl.addr, bufs.addr, self.buf_size)
        return ring, [desc, cpl, bufs]

    def _start_rx(self, ring: RxRing) -> None:
        ring.clear_completions(self.dev.mem_write)
        self._write([*ring.setup(irq_count=1), *ring.post(self.dev.mem_write)])

    # --- VNICs ----------------------------------------------------------------------------
    def add_vnic(self, name: str, *, port: int, mac: int, vlan: int = 0, vns_id: int = 0,
                 priority: Priority = Priority.MEDIUM, maxbw: int = 0, tap) -> Vnic:
        """Give VNIC ``name`` a VNIC number, a receive and a transmit ring, a MAC-table entry;
        all or nothing."""
        with self.lock:
            if name in self.vnics:
                raise DriverError(f"VNIC {name} exists")
            if not 0 <= port < self.ports:
                raise DriverError(f"the card has ports 0..{self.ports - 1}, not {port}")
            if not 0 <= vlan < 4095:
                raise DriverError(f"VLAN IDs are 0..4094, not {vlan}")
            if any(v.mac == mac and v.vlan == vlan for v in self.vnics.values()):
                text = ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))
                raise DriverError(f"MAC {text} is already used in VLAN {vlan}")
            if not self._free_rings or not self._free_vnics:
                raise DriverError("no free rings or VNIC numbers on the card")
            if None not in self.macs:
                raise DriverError("the MAC table is full")
            rate = rate_register(maxbw, rings=self.rings, clk_hz=self.clk_hz) if maxbw else 0
            ring = self._free_rings[0]
            rx, rx_buffers = self._rx_ring(ring)
            n = 1 << self.ring_log2
            try:
                tdesc, wb, tbufs = self._alloc((16 * n, 64), (64, 64),
                                               (self.buf_size * n, 4096))
            except DriverError:
                for b in rx_buffers:
                    self.dev.free(b)
                raise
            self._free_rings.pop(0)
            index = self._free_vnics.pop(0)
            slot = self.macs.index(None)
            self.dev.mem_write(wb.addr, bytes(4))
            tx = TxRing(ring, self.ring_log2, tdesc.addr, wb.addr, tbufs.addr, self.buf_size)
            v = Vnic(name, index, port, mac, vlan, vns_id, Priority(priority), maxbw, rx, tx,
                     tap, slot, [*rx_buffers, tdesc, wb, tbufs])
            self._start_rx(rx)
            self._write(tx.setup(port=port, vnic=index, priority=Priority(priority).value,
                                 maxbw=rate))
            self._write(vnic_writes(index, self._settings(v)))
            self.macs[slot] = MacEntry(mac, vlan, index)
            self._write(mac_writes(slot, self.macs[slot]))
            self.vnics[name] = v
            self._by_rx[ring] = v
            return v

    @staticmethod
    def _settings(v: Vnic) -> VnicSettings:
        return VnicSettings(True, v.priority, v.vns_id, v.rx.index, v.rx.index)

    def remove_vnic(self, name: str):
        """Take VNIC ``name`` off the card; returns its TAP (the caller closes it)."""
        with self.lock:
            v = self._vnic(name)
            for addr in list(v.local_ips):
                self.remove_local_ip(name, addr)
            self.macs[v.mac_slot] = None
            self._write(mac_writes(v.mac_slot, None))
            self._write(vnic_writes(v.index, VnicSettings()))
            self._write([(f"rx_ring[{v.rx.index}].ctrl", 0), (f"tx_ring[{v.tx.index}].ctrl", 0)])
            for b in v.buffers:
                self.dev.free(b)
            del self.vnics[name]
            del self._by_rx[v.rx.index]
            self._free_rings.append(v.rx.index)
            self._free_rings.sort()
            self._free_vnics.append(v.index)
            self._free_vnics.sort()
            return v.tap

    def set_vnic(self, name: str, *, vns_id: int | None = None,
                 priority: Priority | None = None, maxbw: int | None = None) -> None:
        """Change a VNIC's VNS instance ID, priority or rate limit while it runs."""
        with self.lock:
            v = self._vnic(name)
            if vns_id is not None:
                v.vns_id = vns_id
            if priority is not None:
                v.priority = Priority(priority)
                self.regs.write_field(f"tx_ring[{v.tx.index}].ctrl", "priority",
                                      v.priority.value)
            if maxbw is not None:
                rate = rate_register(maxbw, rings=self.rings, clk_hz=self.clk_hz)
                self.regs.write(f"tx_ring[{v.tx.index}].maxbw", rate)
                v.maxbw = maxbw
            self._write(vnic_writes(v.index, self._settings(v)))

    def _vnic(self, name: str) -> Vnic:
        try:
            return self.vnics[name]
        except KeyError:
            raise DriverError(f"no VNIC {name}") from None

    # --- local IPs and flows --------------------------------------------------------------
    def add_local_ip(self, name: str, addr: str) -> None:
        with self.lock:
            v = self._vnic(name)
            key = ip_key(addr)
            if any(e is not None and (e.family, e.addr) == key for e in self.local_ips):
                raise DriverError(f"{addr} is already a local address on the card")
            if None not in self.local_ips:
                raise DriverError("the local-IP table is full")
            slot = self.local_ips.index(None)
            self.local_ips[slot] = LocalIp.of(addr, v.index)
            self._write(local_ip_writes(slot, self.local_ips[slot]))
            v.local_ips[addr] = slot

    def remove_local_ip(self, name: str, addr: str) -> None:
        with self.lock:
            v = self._vnic(name)
            slot = v.local_ips.pop(addr, None)
            if slot is None:
                raise DriverError(f"{addr} is not a local address of {name}")
            self.local_ips[slot] = None
            self._write(local_ip_writes(slot, None))

    def set_flow(self, slot: int, entry: FlowEntry | None) -> None:
        with self.lock:
            if not 0 <= slot < len(self.flows):
                raise DriverError(f"flow slots are 0..{len(self.flows) - 1}")
            self.flows[slot] = entry
            self._write(flow_writes(slot, entry))

    def add_flow_ring(self, name: str) -> int:
        """A receive ring of its own for a flow of VNIC ``name`` (its frames still go to the
        VNIC); returns the ring number for the flow's table entry."""
        with self.lock:
            v = self._vnic(name)
            if not self._free_rings:
                raise DriverError("no free receive ring for the flow")
            index = self._free_rings[0]
            ring, buffers = self._rx_ring(index)
            self._free_rings.pop(0)
            self._start_rx(ring)
            self._flow_rings[index] = (ring, buffers)
            self._by_rx[index] = v
            return index

    def remove_flow_ring(self, index: int) -> None:
        with self.lock:
            _, buffers = self._flow_rings.pop(index)
            self.regs.write(f"rx_ring[{index}].ctrl", 0)
            for b in buffers:
                self.dev.free(b)
            del self._by_rx[index]
            self._free_rings.append(index)
            self._free_rings.sort()

    def flow_hits(self, slot: int) -> int:
        with self.lock:
            self.regs.write("flow_table.index", slot)
            return self.regs.read("flow_table.hits")

    # --- service --------------------------------------------------------------------------
    def service(self, timeout: float = 0.005) -> int:
        """One round: wait up to ``timeout`` for a TAP frame or an interrupt, then move every
        frame waiting either way. Returns the frames moved."""
        # (a TAP whose transmit ring is full is left out until the ring has room: its frames
        # wait in the kernel's queue, as a NIC driver stops its queue)
        fds = [v.tap.fd for v in self.vnics.values()
               if getattr(v.tap, "fd", -1) >= 0 and not v.tx_full]
        irq_fd = getattr(self.dev, "irq_fd", None)
        if fds and irq_fd is not None:
            select.select([*fds, irq_fd], [], [], timeout)
            fired = self.dev.wait_irq(0)
        elif fds:
            select.select(fds, [], [], timeout)
            fired = self.dev.wait_irq(0)
        else:
            fired = self.dev.wait_irq(timeout)
        moved = 0
        with self.lock:
            moved += self._receive(self.flood, flood=True)
            for v in list(self.vnics.values()):
                moved += self._receive(v.rx)
                moved += self._transmit(v)
            for ring, _ in list(self._flow_rings.values()):
                moved += self._receive(ring)
            for vec in fired:
                if vec < self.rings:
                    self.regs.write(f"rx_ring[{vec}].irq_status", 1)
        return moved

    def _receive(self, ring: RxRing, flood: bool = False) -> int:
        done, doorbell = ring.poll(self.dev.mem_read)
        if not done:
            return 0
        for c, frame in done:
            if flood:
                self._fan_out(c, frame)
            else:
                v = self._by_rx.get(ring.index)
                if v is not None and v.vlan:
                    frame = untag(frame)
                if v is not None and v.tap.write(frame):
                    v.stats["rx_frames"] += 1
                    v.stats["rx_bytes"] += len(frame)
        self._write([*doorbell, *ring.post(self.dev.mem_write)])
        return len(done)

    def _fan_out(self, c: dict, frame: bytes) -> None:
        """A flooded frame to every VNIC of its port and VLAN except the sender."""
        self.flood_stats["frames"] += 1
        src = int.from_bytes(frame[6:12], "big")
        vlan = c["vlan_tci"] & 0xFFF if c["vlan_tagged"] else 0
        port = c["port"]
        if port == _HAIRPIN_PORT:
            sender = next((v for v in self.vnics.values() if v.mac == src), None)
            port = sender.port if sender else None
        plain = untag(frame) if vlan else frame
        for v in self.vnics.values():
            if v.vlan == vlan and v.port == port and v.mac != src:
                if v.tap.write(plain):
                    v.stats["rx_flooded"] += 1
                    self.flood_stats["deliveries"] += 1

    def _transmit(self, v: Vnic) -> int:
        """Frames from the VNIC's TAP into its transmit ring, as many as the ring has room for;
        the rest stay queued in the kernel (backpressure, not drops)."""
        room = v.tx.room(self.dev.mem_read)
        frames = []
        while len(frames) < room:
            frame = v.tap.read()
            if frame is None:
                break
            if len(frame) > self.buf_size or len(frame) < 14:
                v.stats["tx_drops"] += 1
                continue
            frames.append(tag(frame, v.vlan) if v.vlan else frame)
        v.tx_full = len(frames) >= room
        if frames:
            self._write(v.tx.send(self.dev.mem_write, frames))
            v.stats["tx_frames"] += len(frames)
            v.stats["tx_bytes"] += sum(map(len, frames))
        return len(frames)

    def ring_counters(self, name: str) -> dict[str, int]:
        """The card's counters of a VNIC's rings and the driver's own."""
        with self.lock:
            v = self._vnic(name)
            out = {f"rx_{k}": n for k, n in self.regs.counters(f"rx_ring[{v.rx.index}]").items()}
            out |= {f"tx_{k}": n for k, n in self.regs.counters(f"tx_ring[{v.tx.index}]").items()}
            out |= {f"driver_{k}": n for k, n in v.stats.items()}
            return out

    def close(self) -> None:
        with self.lock:
            for name in list(self.vnics):
                tap = self.remove_vnic(name)
                if hasattr(tap, "close"):
                    tap.close()
            self._write([(f"rx_ring[{FLOOD_RING}].ctrl", 0)])


def tag(frame: bytes, vlan: int, pcp: int = 0) -> bytes:
    """The frame with an 802.1Q tag (VLAN ``vlan``) after its source MAC: a VNIC in a VLAN is
    an access port, its host side sees untagged frames."""
    return frame[:12] + struct.pack("!HH", 0x8100, pcp << 13 | vlan) + frame[12:]


def untag(frame: bytes) -> bytes:
    """The frame without its 802.1Q tag (unchanged if it has none)."""
    return frame[:12] + frame[16:] if frame[12:14] == b"\x81\x00" else frame


def auto_mac(card_serial: int, index: int) -> int:
    """A locally administered unicast MAC for VNIC number ``index``: 02:cb:SS:SS:SS:II."""
    return 0x02CB << 32 | (card_serial & 0xFFFFFF) << 8 | index & 0xFF


def random_mac() -> int:
    return (int.from_bytes(os.urandom(6), "big") & ~(1 << 40) | 1 << 41) & (1 << 48) - 1
