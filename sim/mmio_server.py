"""The socket end of a served card: accepts drivers, queues their register accesses for the
simulator and sends them interrupts (protocol: :mod:`crossnic.host.sim_protocol`).

Runs in threads beside the simulation: the simulator takes requests with :meth:`take` between
clocks and answers with :meth:`reply`; nothing here touches the simulated design.
"""

import os
import socket
import threading
from collections import deque
from pathlib import Path

from crossnic.host.sim_protocol import MESSAGE, Op, pack, unpack

__all__ = ["MmioServer", "Request"]


class _Client:
    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.lock = threading.Lock()
        self.alive = True

    def send(self, data: bytes) -> None:
        with self.lock:
            if not self.alive:
                return
            try:
                self.conn.sendall(data)
            except OSError:
                self.alive = False


class Request:
    """One register access (or ``BYE``) from a client, answered with :meth:`MmioServer.reply`."""

    __slots__ = ("addr", "client", "op", "tag", "value")

    def __init__(self, client: _Client, op: Op, tag: int, addr: int, value: int):
        self.client, self.op, self.tag, self.addr, self.value = client, op, tag, addr, value


class MmioServer:
    """Listen on ``path`` (mode 0660: root and the socket's group may drive the card)."""

    def __init__(self, path: str | os.PathLike, memory_path: str, memory_size: int,
                 vectors: int):
        self.path = Path(path)
        self.memory_path = memory_path
        self.memory_size = memory_size
        self.vectors = vectors
        self.requests: deque[Request] = deque()
        self._cond = threading.Condition()
        self._clients: list[_Client] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self.sock.listen(8)
        threading.Thread(target=self._accept, name="mmio-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            client = _Client(conn)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: _Client) -> None:
        try:
            while True:
                raw = b""
                while len(raw) < MESSAGE.size:
                    chunk = client.conn.recv(MESSAGE.size - len(raw))
                    if not chunk:
                        return
                    raw += chunk
                try:
                    op, _, tag, addr, value = unpack(raw)
                except ValueError:
                    return                  # not our protocol: drop the connection
                if op is Op.HELLO:
                    path = self.memory_path.encode()
                    client.send(pack(Op.HELLO, self.vectors, len(path), self.memory_size) + path)
                    with self._cond:
                        self._clients.append(client)
                elif op in (Op.READ, Op.WRITE, Op.BYE):
                    with self._cond:
                        self.requests.append(Request(client, op, tag, addr, value))
                        self._cond.notify_all()
                else:
                    return
        except OSError:
            return
        finally:
            client.alive = False
            with self._cond:
                if client in self._clients:
                    self._clients.remove(client)
            client.conn.close()

    def take(self) -> Request | None:
        with self._cond:
            return self.requests.popleft() if self.requests else None

    def wait(self, timeout: float) -> None:
        """Block until a request is queued or ``timeout`` seconds pass."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self.requests), timeout)

    def reply(self, req: Request, value: int = 0, status: int = 0) -> None:
        req.client.send(pack(req.op, req.tag, req.addr, value, status))

    def interrupt(self, vectors: int) -> None:
        """Tell every client that the vectors in the bit mask ``vectors`` fired."""
        msgs = b"".join(pack(Op.IRQ, 0, group, vectors >> 32 * group & 0xFFFF_FFFF)
                        for group in range((self.vectors + 31) // 32)
                        if vectors >> 32 * group & 0xFFFF_FFFF)
        with self._cond:
            clients = list(self._clients)
        for c in clients:
            c.send(msgs)

    @property
    def clients(self) -> int:
        with self._cond:
            return len(self._clients)

    def close(self) -> None:
        self.sock.close()
        with self._cond:
            clients, self._clients = self._clients, []
        for c in clients:
            try:
                c.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
