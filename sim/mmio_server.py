"""The socket end of a served card: accepts drivers, queues their register accesses for the
simulator and sends them interrupts (protocol: :mod:`crossnic.host.sim_protocol`).

Polled from the simulation loop (:meth:`MmioServer.poll`), with no threads: a thread in the
simulator process would wait for the interpreter lock behind the simulation for milliseconds
at every message. Nothing here touches the simulated design.
"""

import os
import select
import socket
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from crossnic.host.sim_protocol import MESSAGE, VF_MBOX_VECTOR, VF_VECTORS, Op, pack, unpack

__all__ = ["MmioServer", "Request", "VfApertures", "DECERR"]

#: AXI response of an access no register (or no BAR) answers.
DECERR = 3


@dataclass
class VfApertures:
    """Where the card's VF windows are, and what the server needs to route a VF's interrupts:
    the PF's ``vf[n].ctrl`` word addresses (the server notes the rings the PF grants, as a
    hypervisor knows its VFs' interrupt vectors)."""
    region: int                     # word address of VF 0's window
    window_words: int
    rings: int                      # the card's rings (its vectors: rx, tx, mailbox, VFs)
    ctrl_addrs: list[int]           # vf[n].ctrl, n = 0..vfs-1
    grants: dict[int, tuple[int, int]] = field(default_factory=dict)   # n -> (base, count)

    def translate(self, vf: int, addr: int) -> int | None:
        """Card word address of word ``addr`` of VF ``vf``'s window (None: beyond it)."""
        return self.region + vf * self.window_words + addr if addr < self.window_words else None

    def note_write(self, addr: int, value: int) -> None:
        if addr in self.ctrl_addrs:
            n = self.ctrl_addrs.index(addr)
            if value & 1:
                self.grants[n] = (value >> 8 & 0xFF, min(8, value >> 16 & 0xF))
            else:
                self.grants.pop(n, None)

    def vectors(self, vf: int, lines: int) -> int:
        """The VF's vectors among the card's fired ``lines``."""
        base, count = self.grants.get(vf, (0, 0))
        out = 0
        for k in range(count):
            out |= (lines >> (base + k) & 1) << k
            out |= (lines >> (self.rings + base + k) & 1) << (8 + k)
        out |= (lines >> (2 * self.rings + 1 + vf) & 1) << VF_MBOX_VECTOR
        return out


class _Client:
    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.buf = b""
        self.alive = True
        self.vf: int | None = None          # None: the PF

    def send(self, data: bytes) -> None:
        if not self.alive:
            return
        try:
            self.conn.setblocking(True)      # replies are small; never drop half of one
            self.conn.sendall(data)
            self.conn.setblocking(False)
        except OSError:
            self.alive = False


class Request:
    """One register access (or ``BYE``) from a client, answered with :meth:`MmioServer.reply`."""

    __slots__ = ("addr", "asked", "client", "op", "tag", "value")

    def __init__(self, client: _Client, op: Op, tag: int, addr: int, value: int,
                 asked: int | None = None):
        self.client, self.op, self.tag, self.addr, self.value = client, op, tag, addr, value
        self.asked = addr if asked is None else asked     # the address as the client sent it


class MmioServer:
    """Listen on ``path`` (mode 0660: root and the socket's group may drive the card)."""

    def __init__(self, path: str | os.PathLike, memory_path: str, memory_size: int,
                 vectors: int, vfs: VfApertures | None = None):
        self.path = Path(path)
        self.vfs = vfs
        self.memory_path = memory_path
        self.memory_size = memory_size
        self.vectors = vectors
        self.requests: deque[Request] = deque()
        self._clients: list[_Client] = []       # greeted: they get interrupts
        self._conns: list[_Client] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self.sock.listen(8)
        self.sock.setblocking(False)

    def poll(self, timeout: float = 0) -> None:
        """Accept clients and read their messages, waiting up to ``timeout`` seconds for the
        first; register accesses are queued for :meth:`take`."""
        socks = [self.sock] + [c.conn for c in self._conns]
        try:
            readable, _, _ = select.select(socks, [], [], timeout)
        except (OSError, ValueError):
            readable = []
        for s in readable:
            if s is self.sock:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                self._conns.append(_Client(conn))
                continue
            client = next(c for c in self._conns if c.conn is s)
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self._drop(client)
                continue
            client.buf += data
            while len(client.buf) >= MESSAGE.size and client.alive:
                raw, client.buf = client.buf[:MESSAGE.size], client.buf[MESSAGE.size:]
                self._message(client, raw)

    def _message(self, client: _Client, raw: bytes) -> None:
        try:
            op, _, tag, addr, value = unpack(raw)
        except ValueError:
            self._drop(client)              # not our protocol
            return
        if op is Op.HELLO:
            if addr and (self.vfs is None or addr > len(self.vfs.ctrl_addrs)):
                client.send(pack(Op.HELLO, status=DECERR))      # no such function
                return
            client.vf = addr - 1 if addr else None
            path = self.memory_path.encode()
            vectors = self.vectors if client.vf is None else VF_VECTORS
            client.send(pack(Op.HELLO, vectors, len(path), self.memory_size) + path)
            if client not in self._clients:
                self._clients.append(client)
        elif op in (Op.READ, Op.WRITE) and client.vf is not None:
            card = self.vfs.translate(client.vf, addr)
            if card is None:
                client.send(pack(op, tag, addr, 0xFFFF_FFFF if op is Op.READ else 0, DECERR))
            else:
                self.requests.append(Request(client, op, tag, card, value, addr))
        elif op in (Op.READ, Op.WRITE, Op.BYE, Op.CABLE):
            if op is Op.WRITE and self.vfs is not None:
                self.vfs.note_write(addr, value)
            if op in (Op.BYE, Op.CABLE) and client.vf is not None:
                self._drop(client)          # a guest cannot stop the card or pull its cables
                return
            self.requests.append(Request(client, op, tag, addr, value))
        else:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        client.alive = False
        for group in (self._clients, self._conns):
            if client in group:
                group.remove(client)
        client.conn.close()

    def take(self) -> Request | None:
        return self.requests.popleft() if self.requests else None

    def wait(self, timeout: float) -> None:
        """Block until a message arrives or ``timeout`` seconds pass."""
        if not self.requests:
            self.poll(timeout)

    def reply(self, req: Request, value: int = 0, status: int = 0) -> None:
        req.client.send(pack(req.op, req.tag, req.asked, value, status))

    def interrupt(self, vectors: int) -> None:
        """Tell every client that the vectors in the bit mask ``vectors`` fired (a VF client
        hears only its own, numbered as its window numbers them)."""
        for c in list(self._clients):
            if c.vf is None:
                mine, count = vectors, self.vectors
            else:
                mine, count = self.vfs.vectors(c.vf, vectors), VF_VECTORS
            msgs = b"".join(pack(Op.IRQ, 0, group, mine >> 32 * group & 0xFFFF_FFFF)
                            for group in range((count + 31) // 32)
                            if mine >> 32 * group & 0xFFFF_FFFF)
            if msgs:
                c.send(msgs)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def close(self) -> None:
        self.sock.close()
        for c in list(self._conns):
            self._drop(c)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
