"""``crossnic sim --serve``: run the whole card in Verilator as a device drivers can open.

Creates the host-memory file (in ``/dev/shm`` when there is one), starts the simulation
(:mod:`crossnic.sim.serve_tb`) and waits until it ends (a client's ``BYE``, Ctrl-C or
SIGTERM). Drivers connect with :class:`crossnic.host.sim_device.SimDevice`.
"""

import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .cables import CableError, CableSpec, parse_cable

__all__ = ["serve_card", "default_socket", "ServeError", "wait_for_socket", "set_cable"]

#: Host memory the card sees by default.
DEFAULT_MEMORY_MB = 64


class ServeError(RuntimeError):
    """The card cannot be served as asked."""


def default_socket() -> Path:
    return Path(os.environ.get("CROSSNIC_RUN", "/run/crossnic")) / "sim0.sock"


def _memory_file(socket_path: Path, size: int) -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    path = base / f"crossnic-{socket_path.stem}-{os.getpid()}.mem"
    with open(path, "wb") as f:
        f.truncate(size)
    os.chmod(path, 0o660)
    return path


def wait_for_socket(path: Path, timeout: float, alive: Callable[[], bool] = lambda: True,
                    ) -> bool:
    """Poll until a served card listens on ``path``."""
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive():
        if path.exists():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(path))
                return True
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.2)
    return False


def serve_card(socket_path: Path, ports: Sequence[str], *, memory_mb: int = DEFAULT_MEMORY_MB,
               announce: Callable[[str], None] | None = None) -> None:
    """Serve the card on ``socket_path`` until it is told to stop; ``ports`` are cable specs
    (:func:`crossnic.sim.cables.parse_cable`), one per port."""
    from crossnic.gateware.nic_core import FULL_OPTIONS, NicCore
    from crossnic.sim.harness import simulate
    try:
        specs: list[CableSpec] = [parse_cable(p) for p in ports]
    except CableError as e:
        raise ServeError(str(e)) from None
    if len(specs) != 2:
        raise ServeError(f"the card has 2 ports, {len(specs)} cables given")
    if (specs[0].kind == "other") != (specs[1].kind == "other"):
        specs = [CableSpec("other")] * 2          # cabling one port to the other cables both
    if not 1 <= memory_mb <= 4096:
        raise ServeError(f"host memory is 1..4096 MB, not {memory_mb}")
    socket_path = Path(socket_path).absolute()
    size = memory_mb << 20
    mem = _memory_file(socket_path, size)
    stop = threading.Event()

    def watch() -> None:
        if wait_for_socket(socket_path, 600, lambda: not stop.is_set()) and announce:
            announce(f"card ready: socket {socket_path}, host memory {mem} ({memory_mb} MB), "
                     f"port0 {specs[0]}, port1 {specs[1]}")

    def on_term(signum, frame):
        raise KeyboardInterrupt            # subprocess.run kills the simulator on the way out

    old = signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=watch, daemon=True).start()
    from crossnic.sim.harness import SimulationError
    try:
        simulate(NicCore(**FULL_OPTIONS), "crossnic.sim.serve_tb", testcase="serve",
                 params={"socket": str(socket_path), "memory": str(mem), "memory_size": size,
                         "stats": str(socket_path) + ".stats",
                         "ports": [{"kind": s.kind, "name": s.name, "local": s.local,
                                    "remote": s.remote} for s in specs]})
    except SimulationError as e:
        raise ServeError(f"the simulated card failed: {e}") from None
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, old)
        mem.unlink(missing_ok=True)
        Path(str(socket_path) + ".stats").unlink(missing_ok=True)
        try:
            if socket_path.is_socket():
                socket_path.unlink()
        except OSError:
            pass


def set_cable(socket_path: str | os.PathLike, port: int, state: str) -> bool:
    """Pull (``down``), plug back (``up``) or only look at (``show``) a served card's cable on
    ``port``; returns whether the port has link afterwards."""
    import socket

    from crossnic.host.sim_protocol import MESSAGE, Op, pack, unpack
    value = {"down": 0, "up": 1, "show": 2}.get(state)
    if value is None:
        raise ServeError(f"a cable is up, down or show, not {state!r}")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(str(socket_path))
        s.sendall(pack(Op.CABLE, addr=port, value=value))
        raw = b""
        while len(raw) < MESSAGE.size:
            chunk = s.recv(MESSAGE.size - len(raw))
            if not chunk:
                raise ServeError(f"the card at {socket_path} closed the connection")
            raw += chunk
    except OSError as e:
        raise ServeError(f"no served card at {socket_path}: {e.strerror or e}") from None
    finally:
        s.close()
    _, status, _, _, link = unpack(raw)
    if status:
        raise ServeError(f"the card at {socket_path} has no port {port}")
    return bool(link)


def cable_main(args) -> int:
    name, _, state = args.cable.partition("=")
    if not (name.startswith("port") and name[4:].isdigit()) or not state:
        raise ServeError(f"--cable is PORTn=up|down|show (port0=down), not {args.cable!r}")
    link = set_cable(Path(args.socket) if args.socket else default_socket(), int(name[4:]),
                     state)
    print(f"{name}: {'link up' if link else 'no link'}")
    return 0


def main(args) -> int:
    def announce(msg: str) -> None:
        print(msg, flush=True)
    serve_card(Path(args.socket) if args.socket else default_socket(),
               [args.port0, args.port1], memory_mb=args.memory_mb, announce=announce)
    print("card stopped", file=sys.stderr)
    return 0
