"""Media-based transfer between the cards of one host (a *chassis*).

Each card's ``crossnicd`` started with ``--chassis DIR`` is a member: it publishes its VNICs
(MAC, VLAN) in ``DIR/<member>.json`` and reads the others'. A frame a VNIC sends takes the path
the media allow:

* to a VNIC of the same card: the card's own switch (the frame goes down the transmit ring and
  comes back up a receive ring, never reaching the wire);
* to a VNIC of another card in the chassis: straight from one driver to the other through host
  memory, a :class:`HostRing` per (sender, receiver) pair in a shared file, with a datagram
  doorbell; neither card nor wire sees it;
* anything else (broadcast, multicast, unknown or remote destinations): the wire.

A peer VNIC is used over host memory only once it has proved to share a segment with this card:
a frame from its MAC arrived here (over the wire, or over host memory from a peer that had
itself proved it). So two cards cabled to different networks never get bridged by the host,
and the first frames of a conversation (ARP's broadcasts) take the wire as they would anyway.
"""

import json
import mmap
import os
import socket
import struct
import time
from pathlib import Path

__all__ = ["Chassis", "HostRing", "ChassisError"]

_MAGIC = 0x63784852          # "cxHR"
_HEADER = struct.Struct("<IIIII")       # magic, slots, slot size, head (producer), tail
_SLOT = struct.Struct("<HH")            # frame length, VLAN


class ChassisError(RuntimeError):
    """A chassis directory or ring that cannot be used."""


class HostRing:
    """A single-producer single-consumer ring of frames in a shared file: the producer writes
    a slot, then advances ``head``; the consumer reads, then advances ``tail`` (x86 keeps the
    stores in order; each side writes one index only)."""

    HEAD, TAIL = 12, 16

    def __init__(self, path: Path, *, create: bool, slots: int = 256, slot_size: int = 9216):
        self.path = path
        if create:             # made aside and renamed: a reader never maps a half-made ring
            tmp = path.with_name("." + path.name)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(fd, 64 + slots * slot_size)
            os.write(fd, _HEADER.pack(_MAGIC, slots, slot_size, 0, 0))
            os.replace(tmp, path)
        else:
            fd = os.open(path, os.O_RDWR)
        try:
            self.inode = os.fstat(fd).st_ino
            self.mem = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        magic, self.slots, self.slot_size, _, _ = _HEADER.unpack_from(self.mem, 0)
        if magic != _MAGIC or len(self.mem) < 64 + self.slots * self.slot_size:
            self.mem.close()
            raise ChassisError(f"{path} is not a host ring")

    def _index(self, offset: int) -> int:
        return struct.unpack_from("<I", self.mem, offset)[0]

    def put(self, frame: bytes, vlan: int) -> bool:
        """Queue a frame; False when the ring is full (the receiver is behind)."""
        head, tail = self._index(self.HEAD), self._index(self.TAIL)
        if (head - tail) % (1 << 32) >= self.slots or len(frame) + 4 > self.slot_size:
            return False
        at = 64 + head % self.slots * self.slot_size
        self.mem[at + 4:at + 4 + len(frame)] = frame
        _SLOT.pack_into(self.mem, at, len(frame), vlan)
        struct.pack_into("<I", self.mem, self.HEAD, (head + 1) % (1 << 32))
        return True

    def take(self) -> list[tuple[bytes, int]]:
        """Every frame queued, with its VLAN."""
        head, tail = self._index(self.HEAD), self._index(self.TAIL)
        out = []
        while tail != head:
            at = 64 + tail % self.slots * self.slot_size
            length, vlan = _SLOT.unpack_from(self.mem, at)
            out.append((bytes(self.mem[at + 4:at + 4 + length]), vlan))
            tail = (tail + 1) % (1 << 32)
        struct.pack_into("<I", self.mem, self.TAIL, tail)
        return out

    def close(self) -> None:
        self.mem.close()


class Chassis:
    """This card's membership of a chassis: its published VNICs, the peers' VNICs, the host
    rings to and from each peer, and the counters of the host path."""

    #: Seconds between looks at the peers' files.
    REFRESH = 0.5

    def __init__(self, directory: str | Path, member: str):
        if not member.replace("-", "").replace("_", "").isalnum():
            raise ChassisError(f"a chassis member name is letters, digits, - and _: {member!r}")
        self.dir = Path(directory)
        self.member = member
        try:
            other = json.loads((self.dir / f"{member}.json").read_text())["pid"]
            if other != os.getpid():
                os.kill(int(other), 0)
                raise ChassisError(f"chassis member {member} is taken (crossnicd pid {other}): "
                                   "give each card its own --serial")
        except (OSError, ValueError, KeyError, TypeError):
            pass                                  # free, or left by a daemon that is gone
        self.bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bell = self.dir / f"{member}.bell"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            bell.unlink(missing_ok=True)
            self.bell.bind(str(bell))
        except OSError as e:
            self.bell.close()
            raise ChassisError(f"cannot join the chassis in {self.dir}: {e}") from None
        self.bell.setblocking(False)
        self.peers: dict[str, dict] = {}             # member -> its published record
        self._where: dict[tuple[int, int], str] = {}  # (MAC, VLAN) -> member
        self._peer_macs: set[int] = set()
        self.learned: set[int] = set()               # peer MACs that proved a shared segment
        self._out: dict[str, HostRing] = {}
        self._in: dict[str, HostRing] = {}
        self._published: list | None = None
        self._seen: dict[str, float] = {}
        self._next_refresh = 0.0
        self.stats = dict.fromkeys(["tx_frames", "tx_full", "rx_frames", "rx_unknown"], 0)

    def fileno(self) -> int:
        return self.bell.fileno()

    # --- membership ------------------------------------------------------------------------
    def sync(self, vnics: list[dict]) -> None:
        """Publish this card's VNICs (``name``, ``mac``, ``vlan``) when they changed, and look
        at the peers' files every :attr:`REFRESH` seconds."""
        if vnics != self._published:
            record = {"member": self.member, "pid": os.getpid(), "vnics": vnics}
            tmp = self.dir / f".{self.member}.json.tmp"
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.dir / f"{self.member}.json")
            self._published = vnics
        if time.monotonic() >= self._next_refresh:
            self._next_refresh = time.monotonic() + self.REFRESH
            self._refresh()

    def _refresh(self) -> None:
        peers = {}
        for f in self.dir.glob("*.json"):
            name = f.stem
            if name == self.member:
                continue
            try:
                record = json.loads(f.read_text())
                os.kill(int(record["pid"]), 0)      # a member whose daemon is gone: not a peer
            except (OSError, ValueError, KeyError, TypeError):
                continue
            peers[name] = record
        self.peers = peers
        self._where = {(int(v["mac"]), int(v["vlan"])): name
                       for name, r in peers.items() for v in r.get("vnics", [])}
        for name in list(self._out):
            if name not in peers:
                self._out.pop(name).close()
        self._peer_macs = {mac for mac, _ in self._where}
        for name in list(self._in):
            if name not in peers:
                self._in.pop(name).close()
        for name in peers:
            path = self.dir / f"{name}-to-{self.member}.ring"
            try:
                inode = path.stat().st_ino
            except OSError:
                continue                          # the peer has sent nothing yet
            if name in self._in and self._in[name].inode == inode:
                continue
            if name in self._in:                  # the peer restarted and made a new ring
                self._in.pop(name).close()
            try:
                self._in[name] = HostRing(path, create=False)
            except (OSError, ChassisError, ValueError):
                pass

    def peer_of(self, mac: int, vlan: int) -> str | None:
        """The member whose VNIC has this MAC in this VLAN, if it proved a shared segment."""
        name = self._where.get((mac, vlan))
        return name if name is not None and mac in self.learned else None

    def learn(self, src: bytes) -> None:
        """A frame from ``src`` arrived: if that is a peer's VNIC, it shares our segment."""
        mac = int.from_bytes(src, "big")
        if mac in self._peer_macs and mac not in self.learned:
            self.learned.add(mac)

    # --- transfer --------------------------------------------------------------------------
    def send(self, member: str, frame: bytes, vlan: int) -> bool:
        """A frame to a peer's VNIC through host memory; False (counted) if its ring is full."""
        ring = self._out.get(member)
        if ring is None:
            ring = self._out[member] = HostRing(
                self.dir / f"{self.member}-to-{member}.ring", create=True)
        if not ring.put(frame, vlan):
            self.stats["tx_full"] += 1
            return False
        self.stats["tx_frames"] += 1
        try:
            self.bell.sendto(b"!", str(self.dir / f"{member}.bell"))
        except OSError:
            pass                  # its doorbell is full or gone: it polls its rings anyway
        return True

    def receive(self) -> list[tuple[bytes, int]]:
        """Every frame the peers queued for this card, with its VLAN."""
        rang = False
        try:
            while self.bell.recv(64):
                rang = True
        except OSError:
            pass
        if rang and len(self._in) < len(self.peers):
            self._refresh()                       # a peer's first frames: map its ring now
        out = []
        for ring in self._in.values():
            out.extend(ring.take())
        self.stats["rx_frames"] += len(out)
        return out

    def close(self) -> None:
        for ring in [*self._out.values(), *self._in.values()]:
            ring.close()
        for ring in self._out.values():
            ring.path.unlink(missing_ok=True)
        self.bell.close()
        for f in (f"{self.member}.json", f"{self.member}.bell"):
            (self.dir / f).unlink(missing_ok=True)
