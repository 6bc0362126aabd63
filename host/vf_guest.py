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
import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time
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

__all__ = ["VfGuest", "VfConfig", "mac_text"]

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


class VfGuest:
    """Bring VF ``dev.vf`` up as interface ``ifname`` in the caller's network namespace."""

    def __init__(self, dev, ifname: str, *, ring_log2: int = 6, buf_size: int = 2048):
        self.dev = dev
        self.window = NicCore(**FULL_OPTIONS).vf_window()
        self.regs = Registers(self.window, dev.read32, dev.write32)
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
                                    "tx_drops", "requests", "denied"], 0)
        self.rx, self.tx, self._buffers = self._rings(ring_log2, buf_size)
        self.tap = netns.Tap(ifname)
        self.ifname = ifname
        netns.ip("link", "set", "dev", ifname, "address", mac_text(self.config.mac))
        netns.ip("link", "set", "dev", ifname, "mtu", str(self.config.mtu))
        netns.ip("link", "set", "dev", ifname, "up")
        self.iface = _Interface(ifname)
        self.applied = self.iface.state()
        self.extra_macs: set[int] = set()          # second MACs the PF accepted
        self._last_look = self._last_fdb = 0.0

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

    # --- requests to the PF -----------------------------------------------------------------
    def request(self, op: VfOp, *args: int) -> VfStatus:
        """Ask the PF; returns its answer (OK: applied on the card)."""
        self.stats["requests"] += 1
        status = self.mailbox.request(op, *args).status
        if status is not VfStatus.OK:
            self.stats["denied"] += 1
            log.warning("the PF refused %s %s: %s", op.name, args, status.name)
        return status

    def _follow_interface(self) -> None:
        """Turn the guest's changes to its interface into requests; put back what the PF
        refused."""
        mac, mtu, mode = self.iface.state()
        old_mac, old_mtu, old_mode = self.applied
        if mac != old_mac:
            if self.request(VfOp.SET_MAC, *mac_words(mac)) is VfStatus.OK:
                old_mac = mac
            else:
                self.iface.set_mac(old_mac)
        if mtu != old_mtu:
            if mtu <= self.rx.buf_size - 18 and self.request(VfOp.SET_MTU, mtu) is VfStatus.OK:
                old_mtu = mtu
            else:
                self.iface.set_mtu(old_mtu)
        if mode != old_mode:
            if self.request(VfOp.SET_RXMODE, mode) is VfStatus.OK:
                old_mode = mode
            else:
                self.iface.set_mode(old_mode)
        self.applied = (old_mac, old_mtu, old_mode)
        if time.monotonic() - self._last_fdb > 1.0:
            self._last_fdb = time.monotonic()
            self._follow_addresses()

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
            if self.request(VfOp.ADD_MAC, *mac_words(mac)) is VfStatus.OK:
                self.extra_macs.add(mac)
            else:
                subprocess.run(["bridge", "fdb", "del", mac_text(mac), "dev", self.ifname,
                                "self"], capture_output=True, timeout=10, check=False)
        for mac in sorted(self.extra_macs - now):
            self.request(VfOp.DEL_MAC, *mac_words(mac))
            self.extra_macs.discard(mac)

    # --- frames -----------------------------------------------------------------------------
    def service(self, timeout: float = 0.01) -> int:
        fds = [self.tap.fd, self.dev.irq_fd]
        select.select(fds, [], [], timeout)
        fired = self.dev.wait_irq(0)
        moved = self._receive() + self._transmit()
        if vf_vector("rx", 0) in fired:
            self.regs.write(self.rx.reg("irq_status"), 1)
        if time.monotonic() - self._last_look > 0.2:
            self._last_look = time.monotonic()
            try:
                self._follow_interface()
            except (OSError, MailboxError) as e:
                log.warning("could not follow the interface: %s", e)
        return moved

    def _receive(self) -> int:
        done, doorbell = self.rx.poll(self.dev.mem_read)
        for _, frame in done:
            frame = untag(frame) if self.config.vlan else frame
            if self.tap.write(frame):
                self.stats["rx_frames"] += 1
                self.stats["rx_bytes"] += len(frame)
        if done:
            self._write([*doorbell, *self.rx.post(self.dev.mem_write)])
        return len(done)

    def _transmit(self) -> int:
        room = self.tx.room(self.dev.mem_read)
        frames = []
        while len(frames) < room:
            frame = self.tap.read()
            if frame is None:
                break
            if self.config.vlan:
                frame = tag(frame, self.config.vlan)
            if len(frame) > self.tx.buf_size:
                self.stats["tx_drops"] += 1
                continue
            frames.append(frame)
        if frames:
            self._write(self.tx.send(self.dev.mem_write, frames))
            self.stats["tx_frames"] += len(frames)
            self.stats["tx_bytes"] += sum(len(f) for f in frames)
        return len(frames)

    def close(self) -> None:
        """Rings stopped (the card writes nothing more into the guest's memory), TAP gone."""
        try:
            for kind in ("rx", "tx"):
                self.regs.write(f"{kind}_ring[0].ctrl", _RING_RESET)
        finally:
            self.tap.close()
            self.iface.close()


def _run(args) -> int:
    import signal

    from .sim_device import SimDevice
    if not args.card.startswith("sim:"):
        print("crossnic vf: only sim:SOCKET cards for now (a VFIO VF BAR is the same window)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="crossnic vf: %(message)s")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        dev = SimDevice(args.card[4:], vf=args.vf)
    except DeviceError as e:
        print(f"crossnic vf: {e}", file=sys.stderr)
        return 1
    try:
        guest = VfGuest(dev, args.ifname)
    except (DriverError, DeviceError, MailboxError, netns.NetError, OSError) as e:
        print(f"crossnic vf: {e}", file=sys.stderr)
        dev.close()
        return 1
    try:
        for addr in args.ip or ():
            netns.ip("addr", "add", addr, "dev", args.ifname)
        print(f"VF {args.vf} up as {args.ifname}, MAC {mac_text(guest.config.mac)}, "
              f"memory {guest.config.memory[0]:#x}+{guest.config.memory[1]:#x}", flush=True)
        last = time.monotonic()
        while not stop:
            guest.service(0.01)
            if args.status and time.monotonic() - last > 0.5:
                last = time.monotonic()
                with open(args.status + ".tmp", "w") as f:
                    json.dump({"mac": mac_text(guest.applied[0]), "mtu": guest.applied[1],
                               "rxmode": guest.applied[2],
                               "macs": [mac_text(m) for m in sorted(guest.extra_macs)],
                               **guest.stats}, f)
                os.replace(args.status + ".tmp", args.status)
    except KeyboardInterrupt:
        pass
    except DeviceError as e:
        # The PF took the VF away (its window now refuses us) or the card is gone.
        print(f"crossnic vf: VF {args.vf} is gone: {e}", file=sys.stderr)
        guest.tap.close()
        dev.close()
        return 3
    try:
        guest.close()
    except DeviceError:
        pass
    dev.close()
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("vf", help="guest side: bring a virtual function up as an interface",
                       description="The guest's VF driver: holds only the VF's register window "
                       "and the memory its PF granted, and moves frames between the VF's rings "
                       "and a TAP interface in the caller's network namespace (run it with ip "
                       "netns exec). Interface changes become requests to the PF.")
    p.add_argument("--card", default="sim:/run/crossnic/sim0.sock",
                   help="sim:SOCKET of the served card")
    p.add_argument("--vf", type=int, required=True, help="VF number")
    p.add_argument("--ifname", default="eth0", help="interface name (default eth0)")
    p.add_argument("--ip", action="append", metavar="ADDR/LEN", help="address (repeatable)")
    p.add_argument("--status", metavar="PATH", help="write counters as JSON here (0.5 s)")
    p.set_defaults(func=_run)
