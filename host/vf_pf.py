# Ref: ../shared/DESIGN.md "Host interface" (virtual functions), "Configuration database"
"""The PF's side of virtual functions: grants, the VF's place in the classifier, the mailbox.

A VF gets :data:`RINGS_PER_VF` rings from the top of the card's ring range (VF *n* the
``n``-th pair from the bottom of that reserve, so the numbers never move), a block of host
memory as its one DMA window, a VNIC number and MAC-table entries for its addresses. Its rings'
bases, tails and interrupts are the guest's (through its window); their VNIC, port, priority and
rate are the PF's, set here. What a guest may change goes through the mailbox and is decided by
the daemon's policy (:meth:`VfManager.serve_mailbox` hands each request to a callback); this
module only knows how to apply a decision to the card.
"""

import logging
import threading
from dataclasses import dataclass, field

from crossnic.gateware.layouts import PAGE_BITS, Priority
from crossnic.gateware.tx_scheduler import rate_register
from crossnic.gateware.vf_control import MBOX_WORDS

from .classifier import MacEntry, VnicSettings, vnic_writes
from .device import DmaBuffer
from .driver import FLOOD_RING, Driver, DriverError
from .vf_mailbox import RXMODE_ALLMULTI, RXMODE_PROMISC, VfReply, VfRequest

__all__ = ["VfManager", "VfState", "RINGS_PER_VF", "DEFAULT_VF_MEMORY", "RELAY_RING"]

log = logging.getLogger("crossnic.vf")

#: Rings each VF owns (its ring 0 carries the VNIC's traffic; ring 1 is for its flows).
RINGS_PER_VF = 2
#: The PF's transmit ring that relays flooded frames to VFs (the flood ring's transmit half).
RELAY_RING = FLOOD_RING
#: Host memory granted to a VF unless asked otherwise: rings of 256 entries and their buffers.
DEFAULT_VF_MEMORY = 4 << 20
PAGE = 1 << PAGE_BITS


@dataclass
class VfState:
    """What the PF gave VF ``n`` and what it has applied on the card."""
    n: int
    ring_base: int
    enabled: bool = False
    port: int = 0
    mac: int = 0
    vlan: int = 0
    vns_id: int = 0
    priority: Priority = Priority.MEDIUM
    max_tx_rate: int = 0                 # bit/s, 0: none
    mtu: int = 1500
    rxmode: int = 0
    trust: bool = False
    link_state: str = "auto"             # auto | enable | disable
    memory: DmaBuffer | None = None
    vnic: int | None = None
    mac_slots: dict[int, int] = field(default_factory=dict)     # mac -> MAC-table slot

    @property
    def macs(self) -> list[int]:
        return list(self.mac_slots)


class VfManager:
    """Virtual functions of the card behind ``driver`` (none if it has none)."""

    def __init__(self, driver: Driver):
        self.driver = driver
        self.regs = driver.regs
        self.count = driver.regs.read_field("nic.features", "vfs")
        first = driver.rings - RINGS_PER_VF * self.count
        self.vfs = [VfState(n, first + RINGS_PER_VF * n) for n in range(self.count)]
        with driver.lock:
            for s in self.vfs:
                for k in range(RINGS_PER_VF):
                    driver.reserve_ring(s.ring_base + k)
                self.regs.write(f"vf[{s.n}].ctrl", 0)
        self.wake = threading.Event()
        self.relayed = dict.fromkeys(["frames", "dropped"], 0)
        self.relay = None
        if self.count:
            driver.on_vector(2 * driver.rings, self.wake.set)  # the PF's mailbox interrupt
            self.relay, self._relay_buffers = driver.tx_ring_for(RELAY_RING)
            driver.write_regs(self.relay.setup(port=0, vnic=0xFF))
            driver.flood_hooks.append(self._relay)

    def _vf(self, n: int) -> VfState:
        if not 0 <= n < self.count:
            raise DriverError(f"the card has VFs 0..{self.count - 1}, not {n}" if self.count
                              else "the card has no virtual functions")
        return self.vfs[n]

    # --- grant and revoke -----------------------------------------------------------------
    def enable(self, n: int, *, port: int, mac: int, vlan: int = 0, vns_id: int = 0,
               memory: int = DEFAULT_VF_MEMORY) -> VfState:
        """Give VF ``n`` its rings (reset), ``memory`` bytes of host memory, a VNIC number and
        its MAC; all or nothing."""
        d = self.driver
        s = self._vf(n)
        with d.lock:
            if s.enabled:
                raise DriverError(f"VF {n} is already enabled")
            if not 0 <= port < d.ports:
                raise DriverError(f"the card has ports 0..{d.ports - 1}, not {port}")
            pages = -(-memory // PAGE)
            buf = d.alloc_dma(pages * PAGE, PAGE)
            try:
                index = d.take_vnic()
            except DriverError:
                d.dev.free(buf)
                raise
            s.memory, s.vnic, s.port, s.vlan, s.vns_id = buf, index, port, vlan, vns_id
            try:
                self._add_mac(s, mac)
            except DriverError:
                d.dev.free(buf)
                d.give_vnic(index)
                s.memory = s.vnic = None
                raise
            s.mac = mac
            d.reset_rings(range(s.ring_base, s.ring_base + RINGS_PER_VF))
            self._program(s)
            base, limit = buf.addr, buf.addr + pages * PAGE
            d.write_regs([(f"vf[{n}].dma0_base.lo", base & 0xFFFF_FFFF),
                          (f"vf[{n}].dma0_base.hi", base >> 32),
                          (f"vf[{n}].dma0_limit.lo", limit & 0xFFFF_FFFF),
                          (f"vf[{n}].dma0_limit.hi", limit >> 32),
                          (f"vf[{n}].dma1_base.lo", 0), (f"vf[{n}].dma1_base.hi", 0),
                          (f"vf[{n}].dma1_limit.lo", 0), (f"vf[{n}].dma1_limit.hi", 0),
                          (f"vf[{n}].ctrl", 1 | s.ring_base << 8 | RINGS_PER_VF << 16)])
            s.enabled = True
            return s

    def disable(self, n: int) -> None:
        """Take VF ``n`` away: its window closes, its rings stop (no DMA into memory it no
        longer owns), its addresses leave the classifier, its memory returns to the PF."""
        d = self.driver
        s = self._vf(n)
        with d.lock:
            if not s.enabled:
                return
            self.regs.write(f"vf[{n}].ctrl", 0)
            d.reset_rings(range(s.ring_base, s.ring_base + RINGS_PER_VF))
            for mac in list(s.mac_slots):
                self._del_mac(s, mac)
            d.write_regs(vnic_writes(s.vnic, VnicSettings()))
            d.give_vnic(s.vnic)
            d.dev.free(s.memory)
            s.enabled, s.memory, s.vnic, s.rxmode = False, None, None, 0

    def _program(self, s: VfState) -> None:
        """The VF's VNIC entry and its transmit rings' PF-owned settings."""
        d = self.driver
        up = s.link_state != "disable"
        d.write_regs(vnic_writes(s.vnic, VnicSettings(up, s.priority, s.vns_id, s.ring_base,
                                                      s.ring_base)))
        rate = rate_register(s.max_tx_rate, rings=d.rings, clk_hz=d.clk_hz) \
            if s.max_tx_rate else 0
        for k in range(RINGS_PER_VF):
            ring = f"tx_ring[{s.ring_base + k}]"
            d.write_regs([(f"{ring}.vnic", s.vnic), (f"{ring}.maxbw", rate)])
            d.regs.write_field(f"{ring}.ctrl", "priority", s.priority.value)
            d.regs.write_field(f"{ring}.ctrl", "port", s.port)

    # --- what a VF may be given (applied as decided; the policy is the caller's) ----------
    def _add_mac(self, s: VfState, mac: int) -> None:
        d = self.driver
        if mac in s.mac_slots:
            return
        if d.mac_in_use(mac, s.vlan):
            raise DriverError(f"MAC {mac:012x} is already used in VLAN {s.vlan}")
        slot = d.take_mac_slot(MacEntry(mac, s.vlan, s.vnic))
        s.mac_slots[mac] = slot

    def _del_mac(self, s: VfState, mac: int) -> None:
        slot = s.mac_slots.pop(mac, None)
        if slot is not None:
            self.driver.give_mac_slot(slot)

    def set_mac(self, n: int, mac: int) -> None:
        s = self._enabled(n)
        with self.driver.lock:
            if mac == s.mac:
                return
            self._add_mac(s, mac)
            self._del_mac(s, s.mac)
            s.mac = mac

    def add_mac(self, n: int, mac: int) -> None:
        s = self._enabled(n)
        with self.driver.lock:
            self._add_mac(s, mac)

    def del_mac(self, n: int, mac: int) -> None:
        s = self._enabled(n)
        with self.driver.lock:
            if mac == s.mac:
                raise DriverError("the VF's own MAC cannot be removed (set another first)")
            if mac not in s.mac_slots:
                raise DriverError(f"MAC {mac:012x} is not an address of VF {n}")
            self._del_mac(s, mac)

    def set_vlan(self, n: int, vlan: int) -> None:
        if not 0 <= vlan < 4095:
            raise DriverError(f"VLAN IDs are 0..4094, not {vlan}")
        s = self._enabled(n)
        with self.driver.lock:
            macs = list(s.mac_slots)
            for mac in macs:
                self._del_mac(s, mac)
            old, s.vlan = s.vlan, vlan
            try:
                for mac in macs:
                    self._add_mac(s, mac)
            except DriverError:
                for mac in list(s.mac_slots):
                    self._del_mac(s, mac)
                s.vlan = old
                for mac in macs:
                    self._add_mac(s, mac)
                raise

    def set_rate(self, n: int, bits_per_s: int) -> None:
        s = self._enabled(n)
        with self.driver.lock:
            s.max_tx_rate = bits_per_s
            self._program(s)

    def set_link_state(self, n: int, state: str) -> None:
        if state not in ("auto", "enable", "disable"):
            raise DriverError(f"link state is auto, enable or disable, not {state!r}")
        s = self._vf(n)
        with self.driver.lock:
            s.link_state = state
            if s.enabled:
                self._program(s)

    def _enabled(self, n: int) -> VfState:
        s = self._vf(n)
        if not s.enabled:
            raise DriverError(f"VF {n} is not enabled")
        return s

    # --- flooded frames -----------------------------------------------------------------------
    def _relay(self, c: dict, frame: bytes, port: int | None, vlan: int) -> None:
        """A broadcast (or, for VFs in all-multicast or promiscuous mode, a multicast) frame
        to each VF of its port and VLAN: the PF cannot write into a guest's ring, so it sends
        the VF a copy addressed to the VF's MAC through the card's switch (the hairpin), and
        the classifier delivers it like any frame for that VF."""
        dst = int.from_bytes(frame[:6], "big")
        broadcast = dst == (1 << 48) - 1
        src = int.from_bytes(frame[6:12], "big")
        copies = []
        for s in self.vfs:
            if not (s.enabled and s.port == port and s.vlan == vlan and src not in s.mac_slots
                    and s.link_state != "disable"):
                continue
            if broadcast or s.rxmode & (RXMODE_ALLMULTI | RXMODE_PROMISC):
                copies.append(s.mac.to_bytes(6, "big") + frame[6:])
        if not copies:
            return
        room = self.relay.room(self.driver.dev.mem_read)
        sent = copies[:room]
        self.relayed["dropped"] += len(copies) - len(sent)
        if sent:
            self.driver.write_regs(self.relay.send(self.driver.dev.mem_write, sent))
            self.relayed["frames"] += len(sent)

    # --- mailbox ----------------------------------------------------------------------------
    def pending(self) -> list[int]:
        """VFs whose request waits (read from the card, so a lost interrupt loses nothing)."""
        with self.driver.lock:
            return [s.n for s in self.vfs
                    if s.enabled and self.regs.read_field(f"vf[{s.n}].mbox", "request")]

    def take(self, n: int) -> VfRequest:
        with self.driver.lock:
            return VfRequest.decode([self.regs.read(f"vf[{n}].request{k}")
                                     for k in range(MBOX_WORDS)])

    def head(self, n: int) -> tuple[int, int]:
        """(op, seq) of VF ``n``'s pending request: one word, for answers that need no more."""
        with self.driver.lock:
            word = self.regs.read(f"vf[{n}].request0")
            return word & 0xFF, word >> 8 & 0xFF

    def answer(self, n: int, reply: VfReply) -> None:
        """The reply words, then the reply flag and the request done in one write."""
        with self.driver.lock:
            self.driver.write_regs([(f"vf[{n}].reply{k}", w)
                                    for k, w in enumerate(reply.encode())])
            self.regs.write(f"vf[{n}].mbox", 0b11)

    def counters(self, n: int) -> dict[str, int]:
        with self.driver.lock:
            return {k: self.regs.read(f"vf[{n}].{k}")
                    for k in ("mbox_overrun", "reg_denied", "dma_denied")}

    def close(self) -> None:
        for s in self.vfs:
            try:
                self.disable(s.n)
            except DriverError as e:
                log.warning("could not disable VF %d: %s", s.n, e)
        if self.relay is not None:
            self.driver.flood_hooks.remove(self._relay)
            self.regs.write(f"tx_ring[{RELAY_RING}].ctrl", 0)
