# Ref: ../shared/DESIGN.md "Host interface" (a VM owns a virtual function)
"""The guest's VF driver (``crossnic vf``): a normal Linux interface over one virtual function.

It runs where the guest is (its own network namespace, ``ip netns exec GUEST crossnic vf ...``)
and holds nothing of the card but the VF: its register window (:class:`~crossnic.host.sim_device.
SimDevice` with ``vf``, or the VF's BAR through VFIO on hardware) and the host memory its PF
granted. It asks the PF for its configuration through the mailbox, lays its rings out in that
memory, and moves frames between its ring pair and a TAP interface. Changes the guest makes to
the interface (MAC address, MTU, promiscuous or all-multicast mode, a second unicast address:
``bridge fdb add ADDR dev IF self`` or a macvlan on it) become mailbox requests;
what the PF refuses is put back on the interface, so the guest's view never disagrees with the
card's.
"""

import fcntl
import functools
import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass

from crossnic.gateware.nic_core import FULL_OPTIONS, NicCore

from . import netns
from .device import BusError, DeviceError, DmaBuffer
from .driver import DriverError, tag, untag
from .registers import Registers
from .rings import RxRing, TxRing
from .sim_protocol import vf_vector
from .vf_mailbox import (
    RXMODE_ALLMULTI,
    RXMODE_PROMISC,
    MailboxError,
    VfMailbox,
    VfOp,
    VfReply,
    VfStatus,
    mac_words,
    words_mac,
)

__all__ = ["VfGuest", "VfFunction", "VfConfig", "mac_text", "flow_key", "choose_member",
           "run"]

log = logging.getLogger("crossnic.vf")

_RING_RESET = 1 << 31
_SIOCGIFFLAGS, _SIOCGIFMTU, _SIOCGIFHWADDR = 0x8913, 0x8921, 0x8927
_SIOCSIFMTU, _SIOCSIFHWADDR, _SIOCSIFFLAGS = 0x8922, 0x8924, 0x8914
_IFF_PROMISC, _IFF_ALLMULTI = 0x100, 0x200


def mac_text(mac: int) -> str:
    return ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))


@dataclass
class VfConfig:
    """What GET_CONFIG told the guest."""
    mac: int
    vlan: int
    mtu: int
    memory: tuple[int, int]          # first byte, bytes
    flags: int

    @classmethod
    def of(cls, reply: VfReply) -> "VfConfig":
        r = reply.results
        return cls(words_mac(r[0], r[1]), r[2], r[3], (r[4] << 12, r[5] << 12), r[6])


class _Interface:
    """The guest's view of its interface, through the kernel's ioctls (its own namespace)."""

    def __init__(self, name: str):
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def _ifreq(self, request: int, payload: bytes = b"") -> bytes:
        raw = struct.pack("16s16s", self.name.encode(), payload.ljust(16, b"\0"))
        return fcntl.ioctl(self._sock, request, raw)[16:]

    def state(self) -> tuple[int, int, int]:
        """(MAC, MTU, rx mode flags)."""
        mac = int.from_bytes(self._ifreq(_SIOCGIFHWADDR)[2:8], "big")
        mtu = struct.unpack("i", self._ifreq(_SIOCGIFMTU)[:4])[0]
        flags = struct.unpack("H", self._ifreq(_SIOCGIFFLAGS)[:2])[0]
        mode = (RXMODE_PROMISC if flags & _IFF_PROMISC else 0) | \
            (RXMODE_ALLMULTI if flags & _IFF_ALLMULTI else 0)
        return mac, mtu, mode

    def set_mac(self, mac: int) -> None:
        self._ifreq(_SIOCSIFHWADDR, struct.pack("H6s", 1, mac.to_bytes(6, "big")))

    def set_mtu(self, mtu: int) -> None:
        self._ifreq(_SIOCSIFMTU, struct.pack("i", mtu))

    def set_mode(self, mode: int) -> None:
        flags = struct.unpack("H", self._ifreq(_SIOCGIFFLAGS)[:2])[0]
        flags &= ~(_IFF_PROMISC | _IFF_ALLMULTI) & 0xFFFF
        flags |= (_IFF_PROMISC if mode & RXMODE_PROMISC else 0) | \
            (_IFF_ALLMULTI if mode & RXMODE_ALLMULTI else 0)
        self._ifreq(_SIOCSIFFLAGS, struct.pack("H", flags))

    def close(self) -> None:
        self._sock.close()


class VfFunction:
    """One virtual function as its guest holds it: the window, the mailbox, the configuration
    the PF gave, and ring 0 of each kind laid out in the memory the PF granted."""

    def __init__(self, dev, *, ring_log2: int = 6, buf_size: int = 2048, name: str = ""):
        self.dev = dev
        self.name = name or f"vf{dev.vf}"
        self.regs = Registers(_vf_window(), dev.read32, dev.write32)
        try:
            enabled = self.regs.read_field("port.info", "enabled")
        except BusError:                    # a disabled VF's window answers nothing
            enabled = 0
        if not enabled:
            raise DriverError(f"VF {dev.vf} is not enabled by its PF")
        self.mailbox = VfMailbox(self.regs)
        self.config = VfConfig.of(self._ok(self.mailbox.request(VfOp.GET_CONFIG)))
        dev.grant_memory(*self.config.memory)
        self.stats = dict.fromkeys(["rx_frames", "rx_bytes", "tx_frames", "tx_bytes",
                                    "tx_drops"], 0)
        self.rx, self.tx, self._buffers = self._rings(ring_log2, buf_size)

    @staticmethod
    def _ok(reply: VfReply) -> VfReply:
        if reply.status is not VfStatus.OK:
            raise DriverError(f"the PF answered {reply.status.name}")
        return reply

    def _rings(self, ring_log2: int, buf_size: int):
        """Ring 0 of each kind, laid out in the granted memory, reset, set up, posted."""
        n = 1 << ring_log2
        bufs: list[DmaBuffer] = [self.dev.alloc(16 * n, 64), self.dev.alloc(16 * n, 64),
                                 self.dev.alloc(buf_size * n, 4096), self.dev.alloc(16 * n, 64),
                                 self.dev.alloc(64, 64), self.dev.alloc(buf_size * n, 4096)]
        for kind in ("rx", "tx"):
            self.regs.write(f"{kind}_ring[0].ctrl", _RING_RESET)
        deadline = time.monotonic() + 10
        for kind in ("rx", "tx"):
            while self.regs.read(f"{kind}_ring[0].ctrl") & _RING_RESET:
                if time.monotonic() > deadline:
                    raise DriverError(f"{kind} ring 0 did not finish its reset")
        rx = RxRing(0, ring_log2, bufs[0].addr, bufs[1].addr, bufs[2].addr, buf_size)
        tx = TxRing(0, ring_log2, bufs[3].addr, bufs[4].addr, bufs[5].addr, buf_size)
        self.dev.mem_write(tx.head_wb, bytes(4))
        rx.clear_completions(self.dev.mem_write)
        self._write([(rx.reg("desc_tail"), 0), (rx.reg("cpl_tail"), 0), (tx.reg("tail"), 0),
                     *rx.setup(irq_count=1), *rx.post(self.dev.mem_write)])
        # (the PF sets the VNIC, rate, priority and port: only the guest's part of setup)
        self._write([(tx.reg("desc_base.lo"), tx.desc_base & 0xFFFF_FFFF),
                     (tx.reg("desc_base.hi"), tx.desc_base >> 32),
                     (tx.reg("head_wb.lo"), tx.head_wb & 0xFFFF_FFFF),
                     (tx.reg("head_wb.hi"), tx.head_wb >> 32),
                     (tx.reg("ctrl"), 1 | ring_log2 << 8)])
        return rx, tx, bufs

    def _write(self, pairs) -> None:
        for path, value in pairs:
            self.regs.write(path, value)

    @property
    def mac(self) -> int:
        return self.config.mac

    def link(self) -> bool:
        """Its port has link (``port.info``); DeviceError when the card is gone."""
        return bool(self.regs.read_field("port.info", "link"))

    def request(self, op: VfOp, *args: int) -> VfStatus:
        return self.mailbox.request(op, *args).status

    def receive(self) -> list[bytes]:
        """Frames the card delivered (untagged), the ring refilled."""
        done, doorbell = self.rx.poll(self.dev.mem_read)
        frames = [untag(f) if self.config.vlan else f for _, f in done]
        if done:
            self._write([*doorbell, *self.rx.post(self.dev.mem_write)])
        self.stats["rx_frames"] += len(frames)
        self.stats["rx_bytes"] += sum(len(f) for f in frames)
        return frames

    def room(self) -> int:
        return self.tx.room(self.dev.mem_read)

    def send(self, frames: list[bytes]) -> None:
        """Onto the transmit ring (at most :meth:`room` frames; tagged with the port VLAN)."""
        out = []
        for frame in frames:
            if self.config.vlan:
                frame = tag(frame, self.config.vlan)
            if len(frame) > self.tx.buf_size:
                self.stats["tx_drops"] += 1
                continue
            out.append(frame)
        if out:
            self._write(self.tx.send(self.dev.mem_write, out))
            self.stats["tx_frames"] += len(out)
            self.stats["tx_bytes"] += sum(len(f) for f in out)

    def acknowledge(self, fired: set[int]) -> None:
        if vf_vector("rx", 0) in fired:
            self.regs.write(self.rx.reg("irq_status"), 1)

    def close(self) -> None:
        """Rings stopped: the card writes nothing more into the guest's memory."""
        for kind in ("rx", "tx"):
            self.regs.write(f"{kind}_ring[0].ctrl", _RING_RESET)


def flow_key(frame: bytes) -> bytes | None:
    """The connection an IPv4 frame belongs to: addresses, protocol and, for TCP and UDP
    (unfragmented), ports; None for anything else (ARP, IPv6, ...)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0xF) * 4
    key = frame[26:34] + frame[23:24]
    fragment = int.from_bytes(frame[20:22], "big") & 0x3FFF
    if frame[23] in (6, 17) and not fragment and len(frame) >= 14 + ihl + 4:
        key += frame[14 + ihl:14 + ihl + 4]
    return key


def choose_member(key: bytes, live: list[int]) -> int:
    """The member a new connection goes to: a hash of its key over the members up now."""
    return live[zlib.crc32(key) % len(live)]


def gratuitous_arp(mac: int, ip: int) -> bytes:
    """An ARP request for our own address: neighbours that know ``ip`` learn ``mac`` for it."""
    m, a = mac.to_bytes(6, "big"), ip.to_bytes(4, "big")
    return (b"\xff" * 6 + m + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01" + m + a
            + bytes(6) + a).ljust(60, b"\0")


class VfGuest:
    """Bring the VF ``devs`` (one device, or several: one VF on each of several cards) up as
    interface ``ifname`` in the caller's network namespace.

    With several VFs the interface is a switch-independent aggregate (as Linux bonding's
    ``balance-tlb``): each connection (IPv4 5-tuple) is sent through one member chosen by a
    hash and kept there while that member is up, with the member's own MAC as source, so
    no switch sees one MAC on two ports and each card's anti-spoofing passes; ARP and other
    traffic goes through the active member, which receives. When a member's link drops or
    its card goes away, its connections move to the members left, and if it was the active
    one the next member up takes over and announces itself with gratuitous ARP, so
    established TCP connections continue (their lost segments are retransmitted).
    """

    FLOW_IDLE = 60.0            # seconds a connection keeps its member without traffic

    def __init__(self, devs, ifname: str, *, ring_log2: int = 6, buf_size: int = 2048):
        devs = list(devs) if isinstance(devs, (list, tuple)) else [devs]
        self.members: list[VfFunction] = []
        try:
            for k, dev in enumerate(devs):
                self.members.append(VfFunction(dev, ring_log2=ring_log2, buf_size=buf_size,
                                               name=f"{k}:vf{dev.vf}"))
        except BaseException:
            for f in self.members:
                _quietly(f.close)
            raise
        self.bond = len(self.members) > 1
        self.mac = self.members[0].mac                     # the interface's own MAC
        self.up = [True] * len(self.members)               # link up and card there
        self.gone = [False] * len(self.members)
        self.active = 0
        self.flows: dict[bytes, list] = {}                 # key -> [member, last used]
        self.stats = dict.fromkeys(["rx_frames", "rx_bytes", "tx_frames", "tx_bytes",
                                    "tx_drops", "rx_filtered", "requests", "denied",
                                    "failovers"], 0)
        self.events: list[dict] = []                       # failovers and returns
        self.addresses: list[int] = []                     # the interface's IPv4 addresses
        self._announce_at: list[float] = []
        self.config = self.members[0].config
        if self.bond:
            macs = [f.mac for f in self.members]
            if len(set(macs)) < len(macs):
                log.warning("members share a MAC: a switch will see it move between ports")
        self.tap = netns.Tap(ifname)
        self.ifname = ifname
        netns.ip("link", "set", "dev", ifname, "address", mac_text(self.mac))
        netns.ip("link", "set", "dev", ifname, "mtu",
                 str(min(f.config.mtu for f in self.members)))
        netns.ip("link", "set", "dev", ifname, "up")
        self.iface = _Interface(ifname)
        self.applied = self.iface.state()
        self.extra_macs: set[int] = set()          # second MACs the PF accepted
        self._last_look = self._last_fdb = self._last_link = self._last_prune = 0.0
        self._carrier = True

    @property
    def dev(self):
        return self.members[0].dev

    # --- requests to the PF -----------------------------------------------------------------
    def request(self, op: VfOp, *args: int) -> VfStatus:
        """Ask every member's PF (all must agree; those that applied it are asked back to
        the old value by the caller). Returns the first refusal, or OK."""
        for k, f in enumerate(self.members):
            if self.gone[k]:
                continue
            self.stats["requests"] += 1
            status = f.request(op, *args)
            if status is not VfStatus.OK:
                self.stats["denied"] += 1
                log.warning("the PF of %s refused %s %s: %s", f.name, op.name, args,
                            status.name)
                return status
        return VfStatus.OK

    def _agree(self, op: VfOp, new: tuple[int, ...], old: tuple[int, ...]) -> bool:
        """``op`` with ``new`` on every member, or on none (those that took it go back)."""
        if self.request(op, *new) is VfStatus.OK:
            return True
        if self.bond:
            for k, f in enumerate(self.members):
                if not self.gone[k]:
                    f.request(op, *old)
        return False

    def _follow_interface(self) -> None:
        """Turn the guest's changes to its interface into requests; put back what the PF
        refused."""
        mac, mtu, mode = self.iface.state()
        old_mac, old_mtu, old_mode = self.applied
        if mac != old_mac:
            if not self.bond and self.request(VfOp.SET_MAC, *mac_words(mac)) is VfStatus.OK:
                old_mac = self.mac = self.members[0].config.mac = mac
            else:
                if self.bond:
                    log.warning("an aggregate keeps its MAC (each member sends its own)")
                self.iface.set_mac(old_mac)
        if mtu != old_mtu:
            if mtu <= self.members[0].rx.buf_size - 18 and \
                    self._agree(VfOp.SET_MTU, (mtu,), (old_mtu,)):
                old_mtu = mtu
            else:
                self.iface.set_mtu(old_mtu)
        if mode != old_mode:
            if self._agree(VfOp.SET_RXMODE, (mode,), (old_mode,)):
                old_mode = mode
            else:
                self.iface.set_mode(old_mode)
        self.applied = (old_mac, old_mtu, old_mode)
        if time.monotonic() - self._last_fdb > 1.0:
            self._last_fdb = time.monotonic()
            self._follow_addresses()
            self.addresses = _ipv4_addresses(self.ifname)

    def _unicast_list(self) -> set[int]:
        """The interface's extra unicast addresses (its ``uc`` list, as ``bridge fdb`` shows
        it: what ``bridge fdb add ... self`` and macvlans on it put there)."""
        r = subprocess.run(["bridge", "-j", "fdb", "show", "dev", self.ifname],
                           capture_output=True, text=True, timeout=10, check=False)
        try:
            entries = json.loads(r.stdout or "[]")
        except ValueError:
            return set(self.extra_macs)
        macs = {int(e["mac"].replace(":", ""), 16) for e in entries
                if "self" in e.get("flags", []) and not int(e["mac"][:2], 16) & 1}
        return macs - {self.applied[0]}

    def _follow_addresses(self) -> None:
        """A second MAC the guest added becomes ADD_MAC (taken off again if refused); one it
        removed, DEL_MAC."""
        now = self._unicast_list()
        for mac in sorted(now - self.extra_macs):
            if self._agree(VfOp.ADD_MAC, mac_words(mac), ()):
                self.extra_macs.add(mac)
            else:
                if self.bond:                       # (those that added it: take it off)
                    for k, f in enumerate(self.members):
                        if not self.gone[k]:
                            f.request(VfOp.DEL_MAC, *mac_words(mac))
                subprocess.run(["bridge", "fdb", "del", mac_text(mac), "dev", self.ifname,
                                "self"], capture_output=True, timeout=10, check=False)
        for mac in sorted(self.extra_macs - now):
            self.request(VfOp.DEL_MAC, *mac_words(mac))
            self.extra_macs.discard(mac)

    # --- members going and coming -----------------------------------------------------------
    def _check_links(self) -> None:
        for k, f in enumerate(self.members):
            if self.gone[k]:
                continue
            try:
                link = f.link()
            except DeviceError as e:
                self._lose(k, f"its card is gone ({e})", gone=True)
                continue
            if link and not self.up[k]:
                self.up[k] = True
                self.events.append({"t": time.time(), "member": k, "event": "up"})
                log.warning("%s: link up, back in the aggregate", f.name)
            elif not link and self.up[k]:
                self._lose(k, "its link is down")
        carrier = any(self.up)
        if carrier != self._carrier:                # the interface shows NO-CARRIER
            self._carrier = carrier
            _quietly(lambda: self.tap.set_carrier(carrier))

    def _lose(self, k: int, why: str, gone: bool = False) -> None:
        """Member ``k`` carries nothing more: its connections move, another takes over."""
        was_up = self.up[k]
        self.up[k] = False
        self.gone[k] = self.gone[k] or gone
        if not was_up:
            return
        self.stats["failovers"] += 1
        self.flows = {key: v for key, v in self.flows.items() if v[0] != k}
        event = {"t": time.time(), "member": k, "event": "down", "why": why}
        if k == self.active:
            live = self._live()
            if live:
                self.active = live[0]
                now = time.monotonic()
                self._announce_at = [now, now + 0.5, now + 1.5, now + 3.0]
                event["active"] = live[0]
        self.events.append(event)
        log.warning("%s: %s; %s", self.members[k].name, why,
                    f"member {self.active} is active" if self._live() else "no member left")

    def _live(self) -> list[int]:
        return [k for k, up in enumerate(self.up) if up]

    def _announce(self) -> None:
        """Gratuitous ARP from the active member: the neighbours send to it from now on."""
        f = self.members[self.active]
        frames = [gratuitous_arp(f.mac, ip) for ip in self.addresses]
        if frames and f.room() >= len(frames):
            f.send(frames)

    # --- frames -----------------------------------------------------------------------------
    def service(self, timeout: float = 0.01) -> int:
        """Move frames both ways (waiting up to ``timeout`` for any); DeviceError once every
        member's card is gone."""
        fds = [self.tap.fd] + [f.dev.irq_fd for k, f in enumerate(self.members)
                               if not self.gone[k]]
        select.select(fds, [], [], timeout)
        moved = 0
        for k, f in enumerate(self.members):
            if self.gone[k]:
                continue
            try:
                fired = f.dev.wait_irq(0)
                moved += self._receive(k)
                f.acknowledge(fired)
            except DeviceError as e:
                self._lose(k, f"its card is gone ({e})", gone=True)
        moved += self._transmit()
        now = time.monotonic()
        if now - self._last_link > 0.05:
            self._last_link = now
            self._check_links()
        if self._announce_at and now >= self._announce_at[0]:
            self._announce_at.pop(0)
            self._announce()
        if self.bond and now - self._last_prune > 10:
            self._last_prune = now
            self.flows = {key: v for key, v in self.flows.items()
                          if now - v[1] < self.FLOW_IDLE}
        if all(self.gone):
            raise DeviceError(self.events[-1].get("why", "gone") if self.events else "gone")
        if now - self._last_look > 0.2:
            self._last_look = now
            try:
                self._follow_interface()
            except (OSError, MailboxError) as e:
                log.warning("could not follow the interface: %s", e)
        return moved

    def _receive(self, k: int) -> int:
        f = self.members[k]
        own, mac = f.mac.to_bytes(6, "big"), self.mac.to_bytes(6, "big")
        frames = f.receive()
        for frame in frames:
            if frame[0] & 1 and k != self.active:
                self.stats["rx_filtered"] += 1     # a flood reaches every member: one copy
                continue
            if frame[:6] == own and own != mac:
                frame = mac + frame[6:]            # to the member: to the interface
            if self.tap.write(frame):
                self.stats["rx_frames"] += 1
                self.stats["rx_bytes"] += len(frame)
        return len(frames)

    def _member_for(self, frame: bytes, live: list[int]) -> int:
        key = flow_key(frame) if len(live) > 1 else None
        if key is None:
            return self.active
        now = time.monotonic()
        flow = self.flows.get(key)
        if flow is not None and self.up[flow[0]]:
            flow[1] = now
            return flow[0]
        k = choose_member(key, live)
        self.flows[key] = [k, now]
        return k

    def _as_member(self, frame: bytes, k: int) -> bytes:
        """The interface's MAC in the frame (source, ARP sender) becomes member ``k``'s."""
        mac, own = self.mac.to_bytes(6, "big"), self.members[k].mac.to_bytes(6, "big")
        if own == mac or frame[6:12] != mac:
            return frame
        frame = frame[:6] + own + frame[12:]
        if frame[12:14] == b"\x08\x06" and frame[22:28] == mac:
            frame = frame[:22] + own + frame[28:]
        return frame

    def _transmit(self) -> int:
        live = [k for k in self._live() if not self.gone[k]]
        rooms = {}
        for k in live:
            try:
                rooms[k] = self.members[k].room()
            except DeviceError as e:
                self._lose(k, f"its card is gone ({e})", gone=True)
        live = [k for k in live if k in rooms]
        batches: dict[int, list[bytes]] = {k: [] for k in live}
        taken = 0
        while taken < max(sum(rooms.values()), 0 if live else 64):
            frame = self.tap.read()
            if frame is None:
                break
            taken += 1
            if not live:
                self.stats["tx_drops"] += 1      # no member up: as on a pulled cable
                continue
            k = self._member_for(frame, live)
            if rooms[k] <= 0:
                self.stats["tx_drops"] += 1      # its ring is full: dropped, not reordered
                continue
            rooms[k] -= 1
            batches[k].append(self._as_member(frame, k))
        for k, frames in batches.items():
            if not frames:
                continue
            try:
                self.members[k].send(frames)
            except DeviceError as e:
                self._lose(k, f"its card is gone ({e})", gone=True)
                continue
            self.stats["tx_frames"] += len(frames)
            self.stats["tx_bytes"] += sum(len(f) for f in frames)
        return taken

    def status(self) -> dict:
        """What ``--status`` writes: the interface, its counters and each member's."""
        return {"mac": mac_text(self.applied[0]), "mtu": self.applied[1],
                "rxmode": self.applied[2],
                "macs": [mac_text(m) for m in sorted(self.extra_macs)], **self.stats,
                "active": self.active, "connections": len(self.flows),
                "members": [{"name": f.name, "mac": mac_text(f.mac),
                             "state": "gone" if self.gone[k] else
                             "up" if self.up[k] else "down", **f.stats}
                            for k, f in enumerate(self.members)],
                "events": self.events[-20:]}

    def close(self) -> None:
        """Rings stopped (the card writes nothing more into the guest's memory), TAP gone."""
        try:
            for k, f in enumerate(self.members):
                if not self.gone[k]:
                    _quietly(f.close)
        finally:
            self.tap.close()
            self.iface.close()


def _quietly(fn) -> None:
    try:
        fn()
    except (DeviceError, OSError):
        pass


def _ipv4_addresses(ifname: str) -> list[int]:
    r = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", ifname],
                       capture_output=True, text=True, timeout=10, check=False)
    try:
        info = json.loads(r.stdout or "[]")
    except ValueError:
        return []
    return [int.from_bytes(socket.inet_aton(a["local"]), "big")
            for i in info for a in i.get("addr_info", []) if a.get("family") == "inet"]


@functools.cache
def _vf_window():
    """The VF window's register map (built once: describing the card is not free)."""
    return NicCore(**FULL_OPTIONS).vf_window()


def run(args) -> int:
    """``crossnic vf`` (the parser is :mod:`crossnic.cli`'s)."""
    import signal

    from .sim_device import SimDevice
    cards = args.card or ["sim:/run/crossnic/sim0.sock"]
    if len(args.vf) != len(cards):
        print(f"crossnic vf: give one --vf per --card ({len(cards)} cards, {len(args.vf)} "
              "VFs)", file=sys.stderr)
        return 2
    if not all(c.startswith("sim:") for c in cards):
        print("crossnic vf: only sim:SOCKET cards for now (a VFIO VF BAR is the same window)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="crossnic vf: %(message)s")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    devs = []
    try:
        for card, vf in zip(cards, args.vf, strict=True):
            devs.append(SimDevice(card[4:], vf=vf))
        guest = VfGuest(devs, args.ifname)
    except (DriverError, DeviceError, MailboxError, netns.NetError, OSError) as e:
        print(f"crossnic vf: {e}", file=sys.stderr)
        for dev in devs:
            dev.close()
        return 1
    try:
        for addr in args.ip or ():
            netns.ip("addr", "add", addr, "dev", args.ifname)
        for f in guest.members:
            print(f"VF {f.dev.vf} of {f.dev.path} up in {args.ifname}, MAC {mac_text(f.mac)}, "
                  f"memory {f.config.memory[0]:#x}+{f.config.memory[1]:#x}", flush=True)
        last = time.monotonic()
        while not stop:
            guest.service(0.01)
            if args.status and time.monotonic() - last > 0.5:
                last = time.monotonic()
                with open(args.status + ".tmp", "w") as f:
                    json.dump(guest.status(), f)
                os.replace(args.status + ".tmp", args.status)
    except KeyboardInterrupt:
        pass
    except DeviceError as e:
        # The PF took the VF away (its window now refuses us) or the card(s) are gone.
        gone = "every VF is gone" if guest.bond else f"VF {args.vf[0]} is gone"
        print(f"crossnic vf: {gone}: {e}", file=sys.stderr)
        guest.tap.close()
        for dev in devs:
            dev.close()
        return 3
    try:
        guest.close()
    except DeviceError:
        pass
    for dev in devs:
        dev.close()
    return 0
