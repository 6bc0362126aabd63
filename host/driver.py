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
from collections import deque
from dataclasses import dataclass, field

from crossnic.gateware.crypto.commands import COMMAND_BYTES, OffloadOp
from crossnic.gateware.layouts import Priority
from crossnic.gateware.nic_core import FULL_OPTIONS, NIC_ID, NicCore
from crossnic.gateware.tx_scheduler import rate_register
from crossnic.sim.model.classifier import flow_key, flow_matches
from crossnic.sim.model.parser import parse

from .chassis import Chassis
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
from .etherstubs import STUB_VLAN_BASE
from .forwarding import Forwarder
from .lanes import STATS as LANE_STATS
from .lanes import Lane
from .offload import OffloadQueue
from .registers import Registers
from .rings import RxRing, TxRing

__all__ = ["Driver", "Vnic", "DriverError", "FLOOD_RING", "TABLES", "tag", "untag", "auto_mac",
           "random_mac"]

FLOOD_RING = 0
#: Table sizes of the card (NicCore's build parameters).
TABLES = {k: inspect.signature(NicCore).parameters[k].default
          for k in ("mac_entries", "local_ips", "flows")}
_RING_RESET = 1 << 31
#: Offload data buffers: a TLS record (2**14 + 256 bytes), read in whole 16-byte blocks.
OFFLOAD_BUF = (1 << 14) + 256 + 16
OFFLOAD_LOG2 = 6


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
    held: tuple[TxRing, bytes] | None = None        # read from the TAP, waiting for room
    backlog: dict[int, deque] = field(default_factory=dict)     # ring -> frames waiting for room
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ["rx_frames", "rx_bytes", "rx_flooded", "tx_frames", "tx_bytes", "tx_drops",
         "path_card", "path_host", "path_wire", "rx_host", "fwd_fast", "fwd_slow",
         "fwd_drops"], 0))
    fwd: RxRing | None = None      # the forwarding ring, when the VNIC routes (forwarding=on)
    fwd_buffers: list[DmaBuffer] = field(default_factory=list)
    stub: bool = False             # over an etherstub: no wire, ``port`` is the card's stub port


class _TxBatch:
    """Frames bound for each transmit ring in one service round, within the ring's room."""

    def __init__(self, read):
        self._read = read
        self._rings: dict[int, tuple[TxRing, int, list[bytes]]] = {}
        self.count = 0

    def take(self, ring: TxRing, frame: bytes) -> bool:
        if ring.index not in self._rings:
            self._rings[ring.index] = (ring, ring.room(self._read), [])
        _, room, frames = self._rings[ring.index]
        if len(frames) >= room:
            return False
        frames.append(frame)
        self.count += 1
        return True

    def rings(self):
        return [(ring, frames) for ring, _, frames in self._rings.values() if frames]


@dataclass
class FlowRings:
    """The rings of a flow that has its own (same index both ways)."""
    vnic: str
    rx: RxRing
    tx: TxRing
    buffers: list[DmaBuffer]


class Driver:
    """Own the card behind ``dev``: every ring disabled and every table cleared at start."""

    def __init__(self, dev: Device, *, ring_log2: int = 8, buf_size: int = 2048,
                 clk_hz: float = 125e6, allow_export: bool = False, lanes: bool = True,
                 stub_vlans: int = STUB_VLAN_BASE):
        self.dev = dev
        #: each VNIC served by a lane of its own (:mod:`~crossnic.host.lanes`), or every ring
        #: by the one :meth:`service` loop
        self.use_lanes = lanes
        self.lanes: dict[str, Lane] = {}
        # (optional blocks are the map's last: every other address is the same without them)
        self.core = NicCore(**FULL_OPTIONS)
        self.regs = Registers(self.core.regmap(), dev.read32, dev.write32)
        ident = self.regs.read("nic.id")
        if ident != NIC_ID:
            raise DriverError(f"not a crossnic card: id {ident:#010x}, expected {NIC_ID:#010x}")
        self.ports = self.regs.read_field("nic.params", "ports")
        self.rings = self.regs.read_field("nic.params", "rings")
        self.vnic_count = self.regs.read_field("nic.params", "vnics")
        if stub_vlans and not 2 <= stub_vlans <= 4094:
            raise DriverError(f"etherstub VLANs start at 2..4094 (0: none), not {stub_vlans}")
        #: etherstub VLANs are stub_vlan_base..4094 (0: no etherstubs)
        self.stub_vlan_base = stub_vlans
        #: the transmit port code of etherstubs' rings: past the wire ports (2-bit field)
        self.stub_port = self.ports if stub_vlans and self.ports < 4 else None
        self.ring_log2 = ring_log2
        self.buf_size = buf_size
        self.clk_hz = clk_hz
        self.lock = threading.RLock()
        self.vnics: dict[str, Vnic] = {}
        self._by_rx: dict[int, Vnic] = {}              # receive ring -> the VNIC it serves
        self._flow_rings: dict[int, FlowRings] = {}
        self._free_rings = list(range(1, self.rings))          # 0 is the flood ring
        self._free_vnics = list(range(self.vnic_count))
        self.macs: list[MacEntry | None] = [None] * TABLES["mac_entries"]
        self.local_ips: list[LocalIp | None] = [None] * TABLES["local_ips"]
        self.flows: list[FlowEntry | None] = [None] * TABLES["flows"]
        self.flood_stats = dict.fromkeys(["frames", "deliveries"], 0)
        self._vector_callbacks: dict[int, object] = {}
        #: called with (completion, frame, port, vlan) for each flooded frame (VF relays)
        self.flood_hooks: list = []
        #: this card's membership of a chassis (:mod:`~crossnic.host.chassis`), if any
        self.chassis: Chassis | None = None
        #: the router VNS instances' fast path for frames of forwarding rings
        self.forwarder = Forwarder()
        # VF windows a driver before us left open are shut before the rings are reset, so no
        # guest re-arms a ring between its reset and its VF's; the rings stay held meanwhile.
        for n in range(self.regs.read_field("nic.features", "vfs")):
            ctrl = self.regs.read(f"vf[{n}].ctrl")
            if ctrl & 1:
                self.regs.write(f"vf[{n}].ctrl", ctrl & ~1)
        self._reset()
        self.flood, _ = self._rx_ring(FLOOD_RING)
        self._start_rx(self.flood)
        self._write(policy_writes(Policy(flood_ring=FLOOD_RING, stub_vlan_base=stub_vlans)))
        self._offload_lock = threading.Lock()
        self.offload_queue: OffloadQueue | None = None
        if self.regs.read_field("nic.features", "offload"):
            self._start_offload(allow_export)

    # --- the handshake offload engine -------------------------------------------------------
    def _start_offload(self, allow_export: bool) -> None:
        """Reset the engine (every key slot zeroized), give it its rings, seed its pool."""
        self.regs.write("offload.ctrl", _RING_RESET)
        deadline = time.monotonic() + 10
        while self.regs.read_field("offload.ctrl", "reset"):
            if time.monotonic() > deadline:
                raise DriverError("the offload engine did not finish its reset")
            time.sleep(0.001)
        ring = (1 << OFFLOAD_LOG2) * COMMAND_BYTES
        self._offload_bufs = cmd, cpl, _, _ = self._alloc(
            (ring, 64), (ring, 64), (OFFLOAD_BUF, 16), (OFFLOAD_BUF, 16))
        q = OffloadQueue(OFFLOAD_LOG2, cmd.addr, cpl.addr)
        q.clear(self._offload_write)
        self._write(q.setup(allow_export=allow_export))
        self.offload_queue = q
        self.offload({"op": OffloadOp.SEED, "operand": os.urandom(32)})

    def _offload_buf(self, addr: int) -> tuple[DmaBuffer, int]:
        for b in self._offload_bufs:
            if b.addr <= addr < b.addr + b.size:
                return b, addr - b.addr
        raise DriverError(f"{addr:#x} is outside the offload buffers")

    def _offload_write(self, addr: int, data: bytes) -> None:
        b, off = self._offload_buf(addr)
        b.view[off:off + len(data)] = data

    def _offload_read(self, addr: int, n: int) -> bytes:
        b, off = self._offload_buf(addr)
        return bytes(b.view[off:off + n])

    def offload(self, cmd: dict, data: bytes = b"", timeout: float = 120.0) -> tuple[dict, bytes]:
        """Run one command on the card's offload engine: (completion, bytes written to the
        destination buffer by SEAL/OPEN). The service loop keeps running meanwhile."""
        if self.offload_queue is None:
            raise DriverError("this card has no handshake offload engine")
        if len(data) > OFFLOAD_BUF - 16:
            raise DriverError(f"offload data of {len(data)} bytes is longer than a TLS record")
        _, _, src, dst = self._offload_bufs
        with self._offload_lock:
            src.view[:len(data)] = data
            with self.lock:
                _, doorbell = self.offload_queue.post(
                    self._offload_write, [{**cmd, "src": src.addr, "dst_addr": dst.addr}])
                self._write(doorbell)
            deadline, pause = time.monotonic() + timeout, 0.0002
            while not (done := self.offload_queue.poll(self._offload_read)):
                if time.monotonic() > deadline:
                    raise DriverError("the offload engine did not answer")
                time.sleep(pause)
                pause = min(pause * 2, 0.005)
            c = done[0]
            out = b""
            if c["status"] == 0 and cmd.get("op") in (OffloadOp.SEAL, OffloadOp.OPEN):
                out = bytes(dst.view[:cmd.get("length", 0)])
            return c, out

    # --- plumbing -------------------------------------------------------------------------
    def _write(self, pairs) -> None:
        for path, value in pairs:
            self.regs.write(path, value)

    # --- resources other owners on the card take (virtual functions) ---------------------
    write_regs = _write

    def reserve_ring(self, index: int) -> None:
        """Ring pair ``index`` is not the driver's to hand out (a VF owns it)."""
        with self.lock:
            if index not in self._free_rings:
                raise DriverError(f"ring {index} is not free")
            self._free_rings.remove(index)

    def reset_rings(self, indices) -> None:
        with self.lock:
            self._reset_rings(indices)

    def alloc_dma(self, size: int, align: int) -> DmaBuffer:
        return self._alloc((size, align))[0]

    def tx_ring_for(self, index: int) -> tuple[TxRing, list[DmaBuffer]]:
        """A transmit ring laid out in new DMA buffers (not yet set up on the card)."""
        return self._tx_ring(index)

    def take_vnic(self) -> int:
        with self.lock:
            if not self._free_vnics:
                raise DriverError("no free VNIC numbers on the card")
            return self._free_vnics.pop(0)

    def give_vnic(self, index: int) -> None:
        with self.lock:
            self._free_vnics.append(index)
            self._free_vnics.sort()

    def is_stub_vlan(self, vlan: int) -> bool:
        return bool(self.stub_vlan_base) and vlan >= self.stub_vlan_base

    def check_vlan(self, vlan: int, *, stub: bool = False) -> None:
        """A VLAN ID a VNIC of a wire port (or, ``stub``, of an etherstub) may have."""
        if not 0 <= vlan < 4095:
            raise DriverError(f"VLAN IDs are 0..4094, not {vlan}")
        base = self.stub_vlan_base
        if stub and not self.is_stub_vlan(vlan):
            raise DriverError(f"an etherstub's VLAN IDs are {base}..4094, not {vlan}"
                              if base else "the card has no etherstub VLANs")
        if not stub and self.is_stub_vlan(vlan):
            raise DriverError(f"VLAN IDs {base}..4094 are the card's etherstub VLANs "
                              f"(crossnicd --stub-vlans): not for a wire port")

    def mac_in_use(self, mac: int, vlan: int) -> bool:
        return any(e is not None and (e.mac, e.vlan) == (mac, vlan) for e in self.macs)

    def take_mac_slot(self, entry: MacEntry) -> int:
        with self.lock:
            if None not in self.macs:
                raise DriverError("the MAC table is full")
            slot = self.macs.index(None)
            self.macs[slot] = entry
            self._write(mac_writes(slot, entry))
            return slot

    def give_mac_slot(self, slot: int) -> None:
        with self.lock:
            self.macs[slot] = None
            self._write(mac_writes(slot, None))

    def on_vector(self, vector: int, callback) -> None:
        """Call ``callback()`` from the service loop whenever interrupt ``vector`` fires."""
        self._vector_callbacks[vector] = callback

    def _reset(self) -> None:
        """Every ring off with its indices back at 0 (a driver before us may have left them
        anywhere), every table entry invalid, every VNIC disabled."""
        self._reset_rings(range(self.rings))
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

    def _reset_rings(self, indices) -> None:
        """Receive and transmit rings ``indices`` off, their frames in flight finished, their
        indices at 0: ready for :meth:`RxRing.setup`/:meth:`TxRing.setup`, and their buffers
        no longer written by the card."""
        indices = list(indices)
        for kind in ("rx", "tx"):
            for k in indices:
                self.regs.write(f"{kind}_ring[{k}].ctrl", _RING_RESET)
        deadline = time.monotonic() + 10
        for kind in ("rx", "tx"):
            for k in indices:
                while self.regs.read(f"{kind}_ring[{k}].ctrl") & _RING_RESET:
                    if time.monotonic() > deadline:
                        raise DriverError(f"{kind} ring {k} did not finish its reset")
        for k in indices:
            self._write([(f"rx_ring[{k}].desc_tail", 0), (f"rx_ring[{k}].cpl_tail", 0),
                         (f"rx_ring[{k}].irq_status", 1), (f"rx_ring[{k}].irq_mask", 0),
                         (f"tx_ring[{k}].tail", 0), (f"tx_ring[{k}].irq_status", 1),
                         (f"tx_ring[{k}].irq_mask", 0)])

    def _release_ring(self, index: int, buffers: list[DmaBuffer]) -> None:
        """Ring pair ``index`` reset and free again, then its DMA memory."""
        self._reset_rings([index])
        for b in buffers:
            self.dev.free(b)
        self._free_rings.append(index)
        self._free_rings.sort()

    def _tx_ring(self, index: int) -> tuple[TxRing, list[DmaBuffer]]:
        n = 1 << self.ring_log2
        desc, wb, bufs = self._alloc((16 * n, 64), (64, 64), (self.buf_size * n, 4096))
        self.dev.mem_write(wb.addr, bytes(4))
        return TxRing(index, self.ring_log2, desc.addr, wb.addr, bufs.addr, self.buf_size), \
            [desc, wb, bufs]

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
            stub = port == self.stub_port
            if not (0 <= port < self.ports or stub):
                raise DriverError(f"the card has ports 0..{self.ports - 1}, not {port}")
            self.check_vlan(vlan, stub=stub)
            if self.mac_in_use(mac, vlan):
                text = ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))
                raise DriverError(f"MAC {text} is already used in VLAN {vlan}")
            if not self._free_rings or not self._free_vnics:
                raise DriverError("no free rings or VNIC numbers on the card")
            if None not in self.macs:
                raise DriverError("the MAC table is full")
            rate = rate_register(maxbw, rings=self.rings, clk_hz=self.clk_hz) if maxbw else 0
            ring = self._free_rings[0]
            rx, tx, buffers = self._ring_pair(ring)
            self._free_rings.pop(0)
            index = self._free_vnics.pop(0)
            slot = self.macs.index(None)
            v = Vnic(name, index, port, mac, vlan, vns_id, Priority(priority), maxbw, rx, tx,
                     tap, slot, buffers, stub=stub)
            self._start_rx(rx)
            self._write(tx.setup(port=port, vnic=index, priority=Priority(priority).value,
                                 maxbw=rate))
            self._write(vnic_writes(index, self._settings(v)))
            self.macs[slot] = MacEntry(mac, vlan, index)
            self._write(mac_writes(slot, self.macs[slot]))
            self.vnics[name] = v
            self._by_rx[ring] = v
            if self.use_lanes:
                self.lanes[name] = Lane(self, v)
                self.lanes[name].start()
            return v

    def _ring_pair(self, index: int) -> tuple[RxRing, TxRing, list[DmaBuffer]]:
        rx, rx_buffers = self._rx_ring(index)
        try:
            tx, tx_buffers = self._tx_ring(index)
        except DriverError:
            for b in rx_buffers:
                self.dev.free(b)
            raise
        return rx, tx, [*rx_buffers, *tx_buffers]

    @staticmethod
    def _settings(v: Vnic) -> VnicSettings:
        forward = v.fwd.index if v.fwd is not None else v.rx.index
        return VnicSettings(True, v.priority, v.vns_id, v.rx.index, forward)

    def set_forwarding(self, name: str, on: bool) -> None:
        """Give VNIC ``name`` a forwarding ring of its own (frames to its MAC but not to one of
        its local IPs: :mod:`~crossnic.host.forwarding`), or take it back: then every frame
        shares its one receive ring again."""
        with self.lock:
            v = self._vnic(name)
            if on and v.fwd is None:
                if not self._free_rings:
                    raise DriverError("no free ring for the forwarding ring")
                index = self._free_rings[0]
                ring, buffers = self._rx_ring(index)
                self._free_rings.pop(0)
                self._start_rx(ring)
                v.fwd, v.fwd_buffers = ring, buffers
                self._by_rx[index] = v
                self._write(vnic_writes(v.index, self._settings(v)))
            elif not on and v.fwd is not None:
                ring, v.fwd = v.fwd, None
                self._write(vnic_writes(v.index, self._settings(v)))
                del self._by_rx[ring.index]
                self._release_ring(ring.index, v.fwd_buffers)
                v.fwd_buffers = []

    def remove_vnic(self, name: str):
        """Take VNIC ``name`` off the card; returns its TAP (the caller closes it)."""
        lane = self.lanes.pop(name, None)
        if lane is not None:            # (its thread ends before the TAP can be closed)
            lane.stop()
        with self.lock:
            v = self._vnic(name)
            for addr in list(v.local_ips):
                self.remove_local_ip(name, addr)
            self.macs[v.mac_slot] = None
            self._write(mac_writes(v.mac_slot, None))
            self._write(vnic_writes(v.index, VnicSettings()))
            del self.vnics[name]
            del self._by_rx[v.rx.index]
            self._release_ring(v.rx.index, v.buffers)
            if v.fwd is not None:
                del self._by_rx[v.fwd.index]
                self._release_ring(v.fwd.index, v.fwd_buffers)
            self.forwarder.attach(name, None)
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
    def check_local_ip(self, addr: str, vlan: int) -> None:
        """An address may be a local address in ``vlan`` (one owner per address and VLAN:
        separate networks, virtual wires say, may use the same addresses)."""
        key = (*ip_key(addr), vlan)
        for e in self.local_ips:
            if e is not None and (e.family, e.addr, e.vlan) == key:
                owner = next((u.name for u in self.vnics.values() if u.index == e.vnic), "?")
                raise DriverError(f"{addr} is already an address of VNIC {owner} in its VLAN")
        if None not in self.local_ips:
            raise DriverError("the local-IP table is full")

    def add_local_ip(self, name: str, addr: str) -> None:
        with self.lock:
            v = self._vnic(name)
            self.check_local_ip(addr, v.vlan)
            slot = self.local_ips.index(None)
            self.local_ips[slot] = LocalIp.of(addr, v.index, v.vlan)
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

    def add_flow_rings(self, name: str, *, priority: Priority = Priority.MEDIUM,
                       maxbw: int = 0) -> int:
        """A receive and a transmit ring of their own for a flow of VNIC ``name``: its
        received frames land in the one (and still reach the VNIC), its transmitted frames
        leave through the other with the flow's priority and rate. Returns the ring number
        for the flow's table entry; :meth:`set_flow` entries on that ring steer transmit."""
        with self.lock:
            v = self._vnic(name)
            if not self._free_rings:
                raise DriverError("no free ring for the flow")
            rate = rate_register(maxbw, rings=self.rings, clk_hz=self.clk_hz) if maxbw else 0
            index = self._free_rings[0]
            rx, tx, buffers = self._ring_pair(index)
            self._free_rings.pop(0)
            self._start_rx(rx)
            self._write(tx.setup(port=v.port, vnic=v.index, priority=Priority(priority).value,
                                 maxbw=rate))
            self._flow_rings[index] = FlowRings(name, rx, tx, buffers)
            self._by_rx[index] = v
            return index

    def remove_flow_rings(self, index: int) -> None:
        with self.lock:
            f = self._flow_rings.pop(index)
            del self._by_rx[index]
            self._release_ring(index, f.buffers)

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
               if getattr(v.tap, "fd", -1) >= 0 and not v.tx_full and v.name not in self.lanes]
        if self.chassis is not None:
            fds.append(self.chassis.fileno())
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
                if v.name in self.lanes:
                    continue
                moved += self._receive(v.rx)
                if v.fwd is not None:
                    moved += self._receive(v.fwd, forward=True)
                moved += self._transmit(v)
            for f in list(self._flow_rings.values()):
                moved += self._receive(f.rx)
            if self.chassis is not None:
                moved += self._from_host()
            for vec in fired:
                lane = self._lane_of(vec)
                if lane is not None:
                    lane.interrupt()
                elif vec < self.rings and (vec in self._by_rx or vec == FLOOD_RING):
                    # (a VF's rings interrupt the PF too: their status is the guest's to clear)
                    self.regs.write(f"rx_ring[{vec}].irq_status", 1)
                elif vec in self._vector_callbacks:
                    self._vector_callbacks[vec]()
        return moved

    def _lane_of(self, vector: int) -> Lane | None:
        """The lane whose receive ring interrupts on ``vector``, if any."""
        v = self._by_rx.get(vector)
        lane = self.lanes.get(v.name) if v is not None else None
        if lane is None or vector not in (v.rx.index, v.fwd.index if v.fwd else None):
            return None
        return lane

    def lane_view(self, name: str) -> dict:
        """A VNIC's lane: its mode and counters (``shared``: no lane, the one service loop)."""
        lane = self.lanes.get(name)
        if lane is None:
            return {"lane": "shared", **{f"lane_{k}": 0 for k in LANE_STATS}}
        return lane.view()

    def _rx_pending(self, ring: RxRing) -> bool:
        return ring.pending(self.dev.mem_read)

    def _receive(self, ring: RxRing, flood: bool = False, forward: bool = False,
                 budget: int | None = None) -> int:
        done, doorbell = ring.poll(self.dev.mem_read, budget)
        if not done:
            return 0
        for c, frame in done:
            if flood:
                self._fan_out(c, frame)
            elif forward:
                self._forward(self._by_rx[ring.index], frame)
            else:
                v = self._by_rx.get(ring.index)
                if v is not None and v.vlan:
                    frame = untag(frame)
                if self.chassis is not None and not (v is not None and v.stub):
                    self.chassis.learn(frame[6:12])     # (an etherstub is no shared segment)
                if v is not None and v.tap.write(frame):
                    v.stats["rx_frames"] += 1
                    v.stats["rx_bytes"] += len(frame)
        self._write([*doorbell, *ring.post(self.dev.mem_write)])
        return len(done)

    def _forward(self, v: Vnic, frame: bytes) -> None:
        """A frame of ``v``'s forwarding ring: routed by the fast path straight into the
        transmit queue of the VNIC its route names, or (what the fast path leaves) up ``v``'s
        stack through its TAP."""
        if v.vlan:
            frame = untag(frame)
        hop = self.forwarder.route(v.name, frame)
        out = self.vnics.get(hop[0]) if hop is not None else None
        if out is None:
            if v.tap.write(frame):
                v.stats["fwd_slow"] += 1
            return
        _, mac, packet = hop
        frame = mac + out.mac.to_bytes(6, "big") + packet
        if out.vlan:
            frame = tag(frame, out.vlan)
        queue = out.backlog.setdefault(out.tx.index, deque())
        if len(queue) < out.tx.size:
            queue.append(frame)
            v.stats["fwd_fast"] += 1
            if out.name in self.lanes and out is not v:
                self.lanes[out.name].kick()
        else:
            v.stats["fwd_drops"] += 1

    def _fan_out(self, c: dict, frame: bytes) -> None:
        """A flooded frame to every VNIC of its port and VLAN except the sender."""
        self.flood_stats["frames"] += 1
        src = int.from_bytes(frame[6:12], "big")
        vlan = c["vlan_tci"] & 0xFFF if c["vlan_tagged"] else 0
        port = c["port"]
        if port == self.ports:          # the hairpin (the source after the wire ports): the
            # frame is from a VNIC of the card, on its sender's switch
            sender = next((v for v in self.vnics.values()
                           if v.mac == src and v.vlan == vlan), None)
            port = sender.port if sender else None
        plain = untag(frame) if vlan else frame
        if self.chassis is not None and not self.is_stub_vlan(vlan):
            self.chassis.learn(frame[6:12])
        for v in self.vnics.values():
            if v.vlan == vlan and v.port == port and v.mac != src:
                if v.tap.write(plain):
                    v.stats["rx_flooded"] += 1
                    self.flood_stats["deliveries"] += 1
        for hook in self.flood_hooks:
            hook(c, frame, port, vlan)

    def _transmit(self, v: Vnic) -> int:
        """Frames from the VNIC's TAP into its transmit rings: a frame that matches one of the
        VNIC's flows with rings of its own goes to that flow's ring, the rest to the VNIC's.
        When the VNIC's ring is full and it has no flow rings, the TAP is left unread (its
        frames wait in the kernel's queue). Otherwise a full ring keeps up to a ring's worth of
        frames in the driver and drops (counted) beyond that: one rate-limited flow never holds
        up the VNIC, and a congested VNIC never holds up a flow of higher priority behind it in
        the TAP's single queue."""
        batch = _TxBatch(self.dev.mem_read)
        for index, queue in list(v.backlog.items()):
            f = self._flow_rings.get(index)
            target = v.tx if index == v.tx.index else f.tx if f is not None else None
            while queue and target is not None and batch.take(target, queue[0]):
                queue.popleft()
            if target is None or not queue:
                del v.backlog[index]
        flows = self._tx_flows(v)
        local = {(u.mac, u.vlan, u.port) for u in self.vnics.values() if u is not v}
        v.tx_full = False
        while True:
            if v.held is not None:
                ring, frame = v.held
                v.held = None
            else:
                frame = v.tap.read()
                if frame is None:
                    break
                if len(frame) > self.buf_size or len(frame) < 14:
                    v.stats["tx_drops"] += 1
                    continue
                media, peer = self._media(v, local, frame)
                v.stats["path_" + media] += 1
                if peer is not None:
                    if not self.chassis.send(peer, frame, v.vlan):
                        v.stats["tx_drops"] += 1
                    continue
                ring = self._tx_ring_for(v, flows, frame)
                if v.vlan:
                    frame = tag(frame, v.vlan)
            if batch.take(ring, frame):
                continue
            if ring is v.tx and not flows:
                v.held, v.tx_full = (ring, frame), True
                break
            queue = v.backlog.setdefault(ring.index, deque())
            if len(queue) < ring.size:
                queue.append(frame)
            else:
                v.stats["tx_drops"] += 1
        for ring, frames in batch.rings():
            self._write(ring.send(self.dev.mem_write, frames))
            v.stats["tx_frames"] += len(frames)
            v.stats["tx_bytes"] += sum(map(len, frames))
        return batch.count

    def _media(self, v: Vnic, local: set, frame: bytes) -> tuple[str, str | None]:
        """The path a frame from ``v`` takes, by the media between it and its destination:
        ``card`` (a VNIC of this card on the same port and VLAN: the card's switch turns it
        around), ``host`` (a VNIC of another card in the chassis: through host memory, the
        member named second) or ``wire`` (the rest, broadcast and multicast included)."""
        dst = int.from_bytes(frame[:6], "big")
        if v.stub:                      # an etherstub has no wire: everything is the card's
            return "card", None
        if dst >> 40 & 1:
            return "wire", None
        if (dst, v.vlan, v.port) in local:
            return "card", None
        peer = self.chassis.peer_of(dst, v.vlan) if self.chassis is not None else None
        return ("host", peer) if peer is not None else ("wire", None)

    def _from_host(self) -> int:
        """Frames peers sent this card's VNICs through host memory, to their TAPs."""
        frames = self.chassis.receive()
        for frame, vlan in frames:
            dst = int.from_bytes(frame[:6], "big")
            v = next((u for u in self.vnics.values()
                      if u.mac == dst and u.vlan == vlan and not u.stub), None)
            if v is None:
                self.chassis.stats["rx_unknown"] += 1
                continue
            self.chassis.learn(frame[6:12])
            if v.tap.write(frame):
                v.stats["rx_host"] += 1
                v.stats["rx_frames"] += 1
                v.stats["rx_bytes"] += len(frame)
        self.chassis.sync([{"name": u.name, "mac": u.mac, "vlan": u.vlan}
                           for u in self.vnics.values() if not u.stub])
        return len(frames)

    def _tx_flows(self, v: Vnic) -> list[FlowEntry]:
        """The VNIC's flow entries in table order, if any of them has rings of its own (else
        every frame goes to the VNIC's ring and nothing needs matching)."""
        entries = [e for e in self.flows if e is not None and e.valid and e.vnic == v.index]
        return entries if any(e.ring in self._flow_rings for e in entries) else []

    def _tx_ring_for(self, v: Vnic, flows: list[FlowEntry], frame: bytes) -> TxRing:
        """The card's flow match, mirrored for a frame the VNIC sends (its source is the
        flow's local side): the first matching entry decides, as on receive."""
        if not flows:
            return v.tx
        key = flow_key(parse(frame), v.index, v.vlan, sent=True)
        for e in flows:
            if flow_matches(e, key):
                rings = self._flow_rings.get(e.ring)
                return rings.tx if rings is not None else v.tx
        return v.tx

    def ring_counters(self, name: str) -> dict[str, int]:
        """The card's counters of a VNIC's rings and the driver's own."""
        with self.lock:
            v = self._vnic(name)
            out = {f"rx_{k}": n for k, n in self.regs.counters(f"rx_ring[{v.rx.index}]").items()}
            out |= {f"tx_{k}": n for k, n in self.regs.counters(f"tx_ring[{v.tx.index}]").items()}
            out |= {f"driver_{k}": n for k, n in v.stats.items()}
            return out

    def stop_lanes(self) -> None:
        """End every lane's thread (before the TAPs they wait on are closed); the service
        loop serves their rings from then on."""
        for name in list(self.lanes):
            self.lanes.pop(name).stop()

    def close(self) -> None:
        self.stop_lanes()
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
