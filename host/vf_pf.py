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

#: Addresses the card's anti-spoofing check holds per VF (MACs, and IPv4 sources).
SPOOF_MACS = SPOOF_IPS = 2
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
    spoofchk: bool = True                # the card checks the VF's frames' addresses
    ips: list[int] = field(default_factory=list)      # IPv4 sources allowed (at most 2)
    link_state: str = "auto"             # auto | enable | disable
    memory: DmaBuffer | None = None
    vnic: int | None = None
    mac_slots: dict[int, int] = field(default_factory=dict)     # mac -> MAC-table slot
    #: second MACs -> the intermediate VNIC each gets (same rings as the VF's own VNIC)
    extra_vnics: dict[int, int] = field(default_factory=dict)

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
                self._closed(s)
        self.wake = threading.Event()
        self.relayed = dict.fromkeys(["frames", "dropped"], 0)
        self.relay = None
        if self.count:
            driver.on_vector(2 * driver.rings, self.wake.set)  # the PF's mailbox interrupt
            self.relay, self._relay_buffers = driver.tx_ring_for(RELAY_RING)
            driver.write_regs(self.relay.setup(port=0, vnic=0xFF))
            driver.flood_hooks.append(self._relay)

    def _held(self, s: VfState, enable: bool = False) -> int:
        """``vf[n].ctrl``: the VF's rings, always held to its grants; its window open or not;
        the port whose link it sees."""
        return int(enable) | s.ring_base << 8 | RINGS_PER_VF << 16 | s.port << 20

    def _closed(self, s: VfState) -> None:
        """The VF's window closed, its rings held to no memory and no address at all (so
        whatever is left on them can neither reach host memory nor leave the card)."""
        n = s.n
        self.driver.write_regs([
            (f"vf[{n}].ctrl", self._held(s)),
            *[(f"vf[{n}].dma{w}_{k}.{part}", 0) for w in range(2) for k in ("base", "limit")
              for part in ("lo", "hi")],
            (f"vf[{n}].spoof", 0b011), (f"vf[{n}].mac0.lo", 0), (f"vf[{n}].mac0.hi", 0),
            (f"vf[{n}].mac1.lo", 0), (f"vf[{n}].mac1.hi", 0)])

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
            d.check_vlan(vlan)
            pages = -(-memory // PAGE)
            buf = d.alloc_dma(pages * PAGE, PAGE)
            d.dev.mem_write(buf.addr, bytes(pages * PAGE))     # nothing of its last user's
            s.memory, s.port, s.vlan, s.vns_id = buf, port, vlan, vns_id
            try:
                s.vnic = d.take_vnic()
                self._add_mac(s, mac, vnic=s.vnic)
                s.mac = mac
                d.reset_rings(range(s.ring_base, s.ring_base + RINGS_PER_VF))
                self._program(s)
                self._program_spoof(s)
                base, limit = buf.addr, buf.addr + pages * PAGE
                d.write_regs([(f"vf[{n}].dma0_base.lo", base & 0xFFFF_FFFF),
                              (f"vf[{n}].dma0_base.hi", base >> 32),
                              (f"vf[{n}].dma0_limit.lo", limit & 0xFFFF_FFFF),
                              (f"vf[{n}].dma0_limit.hi", limit >> 32),
                              (f"vf[{n}].ctrl", self._held(s, enable=True))])
            except Exception:
                self._undo(s)
                raise
            s.enabled = True
            return s

    def _undo(self, s: VfState) -> None:
        """Everything a VF was given, back: window closed, rings drained while still held,
        addresses and VNICs off the card, memory returned; the VF's state starts over."""
        d = self.driver
        self._closed(s)
        try:
            d.reset_rings(range(s.ring_base, s.ring_base + RINGS_PER_VF))
        finally:
            for mac in list(s.mac_slots):
                self._del_mac(s, mac)
            if s.vnic is not None:
                d.write_regs(vnic_writes(s.vnic, VnicSettings()))
                d.give_vnic(s.vnic)
            if s.memory is not None:
                d.dev.free(s.memory)
            self.vfs[s.n] = VfState(s.n, s.ring_base)

    def disable(self, n: int) -> None:
        """Take VF ``n`` away: its window closes, its rings stop while still held to its grants
        (no DMA into memory it no longer owns, nothing sent past the spoof check), its addresses
        leave the classifier, its memory returns to the PF and its state starts over."""
        d = self.driver
        s = self._vf(n)
        with d.lock:
            if s.enabled:
                self._undo(s)

    def _program(self, s: VfState) -> None:
        """The VF's VNIC entry and its transmit rings' PF-owned settings."""
        d = self.driver
        for vnic in (s.vnic, *s.extra_vnics.values()):
            d.write_regs(vnic_writes(vnic, self._settings(s)))
        rate = rate_register(s.max_tx_rate, rings=d.rings, clk_hz=d.clk_hz) \
            if s.max_tx_rate else 0
        for k in range(RINGS_PER_VF):
            ring = f"tx_ring[{s.ring_base + k}]"
            d.write_regs([(f"{ring}.vnic", s.vnic), (f"{ring}.maxbw", rate)])
            d.regs.write_field(f"{ring}.ctrl", "priority", s.priority.value)
            d.regs.write_field(f"{ring}.ctrl", "port", s.port)

    @staticmethod
    def _settings(s: VfState) -> VnicSettings:
        return VnicSettings(s.link_state != "disable", s.priority, s.vns_id, s.ring_base,
                            s.ring_base)

    def _program_spoof(self, s: VfState) -> None:
        """The card's anti-spoofing settings from the VF's state: its MACs (the primary first),
        its port VLAN, and its IPv4 addresses when it has any."""
        macs = [s.mac, *[m for m in s.mac_slots if m != s.mac]][:SPOOF_MACS]
        macs += [0] * (SPOOF_MACS - len(macs))
        ips = (s.ips + [0] * SPOOF_IPS)[:SPOOF_IPS]
        on = int(s.spoofchk)
        pairs = [(f"vf[{s.n}].spoof", on | on << 1 | (on if s.ips else 0) << 2 | s.vlan << 16)]
        for k, mac in enumerate(macs):
            pairs += [(f"vf[{s.n}].mac{k}.lo", mac & 0xFFFF_FFFF),
                      (f"vf[{s.n}].mac{k}.hi", mac >> 32)]
        pairs += [(f"vf[{s.n}].ip{k}", ip) for k, ip in enumerate(ips)]
        self.driver.write_regs(pairs)

    def set_spoofchk(self, n: int, on: bool, ips: list[int] | None = None) -> None:
        """Turn the VF's transmit checks on or off; ``ips``: its IPv4 sources (at most 2)."""
        s = self._vf(n)
        if ips is not None and len(ips) > SPOOF_IPS:
            raise DriverError(f"the card checks at most {SPOOF_IPS} IPv4 addresses per VF")
        with self.driver.lock:
            s.spoofchk = bool(on)
            if ips is not None:
                s.ips = list(ips)
            if s.enabled:
                self._program_spoof(s)

    # --- what a VF may be given (applied as decided; the policy is the caller's) ----------
    def _add_mac(self, s: VfState, mac: int, vnic: int | None = None) -> None:
        """A MAC-table entry steering ``mac`` to VNIC ``vnic``; None: a second MAC, which gets
        an intermediate VNIC of its own on the VF's rings (so the card, its counters and
        ``show-vnic`` see it as a VNIC, and frames to it land in the guest's ring directly)."""
        d = self.driver
        if mac in s.mac_slots:
            return
        if len(s.mac_slots) >= SPOOF_MACS:
            raise DriverError(f"a VF has at most {SPOOF_MACS} MAC addresses")
        if d.mac_in_use(mac, s.vlan):
            raise DriverError(f"MAC {mac:012x} is already used in VLAN {s.vlan}")
        own = vnic is None
        if own:
            vnic = d.take_vnic()
            d.write_regs(vnic_writes(vnic, self._settings(s)))
        try:
            s.mac_slots[mac] = d.take_mac_slot(MacEntry(mac, s.vlan, vnic))
        except DriverError:
            if own:
                d.write_regs(vnic_writes(vnic, VnicSettings()))
                d.give_vnic(vnic)
            raise
        if own:
            s.extra_vnics[mac] = vnic

    def _del_mac(self, s: VfState, mac: int) -> None:
        slot = s.mac_slots.pop(mac, None)
        if slot is not None:
            self.driver.give_mac_slot(slot)
        vnic = s.extra_vnics.pop(mac, None)
        if vnic is not None:
            self.driver.write_regs(vnic_writes(vnic, VnicSettings()))
            self.driver.give_vnic(vnic)

    def set_mac(self, n: int, mac: int) -> None:
        s = self._enabled(n)
        with self.driver.lock:
            if mac == s.mac:
                return
            was_second = mac in s.extra_vnics     # a second MAC becomes the primary
            if was_second:
                self._del_mac(s, mac)
            old = s.mac
            self._del_mac(s, old)
            try:
                self._add_mac(s, mac, vnic=s.vnic)
            except DriverError:
                self._add_mac(s, old, vnic=s.vnic)
                if was_second:
                    self._add_mac(s, mac)
                self._program_spoof(s)
                raise
            s.mac = mac
            self._program_spoof(s)

    def add_mac(self, n: int, mac: int) -> int:
        """A second MAC for VF ``n`` (an intermediate VNIC); returns the VNIC number."""
        s = self._enabled(n)
        with self.driver.lock:
            self._add_mac(s, mac)
            self._program_spoof(s)
            return s.extra_vnics.get(mac, s.vnic)

    def del_mac(self, n: int, mac: int) -> None:
        s = self._enabled(n)
        with self.driver.lock:
            if mac == s.mac:
                raise DriverError("the VF's own MAC cannot be removed (set another first)")
            if mac not in s.mac_slots:
                raise DriverError(f"MAC {mac:012x} is not an address of VF {n}")
            self._del_mac(s, mac)
            self._program_spoof(s)

    def set_vlan(self, n: int, vlan: int) -> None:
        """Move every MAC of the VF to VLAN ``vlan`` (all or nothing)."""
        self.driver.check_vlan(vlan)
        s = self._enabled(n)
        d = self.driver
        with d.lock:
            entries = {mac: s.extra_vnics.get(mac, s.vnic) for mac in s.mac_slots}
            if any(d.mac_in_use(mac, vlan) for mac in entries) and vlan != s.vlan:
                raise DriverError(f"a MAC of VF {n} is already used in VLAN {vlan}")
            for slot in s.mac_slots.values():
                d.give_mac_slot(slot)
            s.vlan = vlan
            s.mac_slots = {mac: d.take_mac_slot(MacEntry(mac, vlan, vnic))
                           for mac, vnic in entries.items()}
            self._program_spoof(s)

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

    def counters(self, n: int) -> dict[str, int | str]:
        """The card's counts for VF ``n`` (its ring 0 both ways) and its port's link."""
        s = self._vf(n)
        with self.driver.lock:
            out: dict[str, int | str] = {
                k: self.regs.read(f"vf[{n}].{k}")
                for k in ("mbox_overrun", "reg_denied", "dma_denied", "spoofed")}
            out["rx_frames"] = self.regs.read(f"rx_ring[{s.ring_base}].frames")
            out["tx_frames"] = self.regs.read(f"tx_ring[{s.ring_base}].frames")
            link = self.regs.read_field("nic.link", f"port{s.port}")
            out["link"] = "up" if link else "down"
            return out

    def close(self) -> None:
        for s in self.vfs:
            try:
                self.disable(s.n)
            except DriverError as e:
                log.warning("could not disable VF %d: %s", s.n, e)
        if self.relay is not None:
            self.driver.flood_hooks.remove(self._relay)
            self.regs.write(f"tx_ring[{RELAY_RING}].ctrl", 0)
