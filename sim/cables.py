"""The far ends of a simulated card's Ethernet ports (``crossnic sim --serve --port0 ...``).

A cable moves whole frames (destination MAC to payload end, no FCS: the simulated MAC adds and
checks it) between a port and something outside the simulator:

* ``none``: nothing plugged in; frames the port sends are counted and dropped.
* ``other``: the card's other port (port 0's transmit is port 1's receive and back).
* ``tap:NAME``: a Linux TAP device (created if missing, brought up), so the host or a network
  namespace the TAP is moved into is the station at the end of the wire.
* ``udp:LOCAL:REMOTE``: one frame per UDP datagram on 127.0.0.1, received on port LOCAL and
  sent to port REMOTE: the port of another simulated card whose cable is ``udp:REMOTE:LOCAL``.

All non-blocking: the simulator polls :meth:`Cable.poll` between clocks.

A cable can be pulled and plugged back while the card runs (``crossnic sim --cable``): a pulled
cable carries nothing either way, the port's PHY reports no link (``nic.link``, and ``port.info``
of the VFs on it), and a TAP's kernel side loses carrier, as both ends of a real pulled cable do.
"""

import socket
import subprocess
from dataclasses import dataclass

__all__ = ["CableSpec", "CableError", "parse_cable", "open_cable", "Cable", "TapCable",
           "UdpCable", "NoCable"]

MAX_FRAME = 9018


class CableError(ValueError):
    """A cable that cannot be parsed or opened."""


@dataclass(frozen=True)
class CableSpec:
    kind: str                       # none | other | tap | udp
    name: str = ""                  # tap: interface name
    local: int = 0                  # udp ports
    remote: int = 0

    def __str__(self) -> str:
        if self.kind == "tap":
            return f"tap:{self.name}"
        if self.kind == "udp":
            return f"udp:{self.local}:{self.remote}"
        return self.kind


def parse_cable(text: str) -> CableSpec:
    kind, _, rest = text.partition(":")
    if kind in ("none", "other") and not rest:
        return CableSpec(kind)
    if kind == "tap":
        if not rest or len(rest) > 15 or not all(c.isalnum() or c in "-_." for c in rest):
            raise CableError(f"tap:NAME needs an interface name of 1-15 letters, digits, "
                             f"'-', '_' or '.', not {rest!r}")
        return CableSpec("tap", name=rest)
    if kind == "udp":
        parts = rest.split(":")
        try:
            local, remote = (int(p) for p in parts)
        except ValueError:
            raise CableError(f"udp:LOCAL:REMOTE needs two port numbers, not {rest!r}") from None
        if not (0 < local < 65536 and 0 < remote < 65536):
            raise CableError(f"UDP ports are 1..65535, not {local} and {remote}")
        return CableSpec("udp", local=local, remote=remote)
    raise CableError(f"unknown cable {text!r}: use none, other, tap:NAME or udp:LOCAL:REMOTE")


class Cable:
    """One end outside the simulator. ``sent``/``received`` count frames each way."""

    def __init__(self):
        self.sent = 0           # frames the port transmitted into the cable
        self.received = 0       # frames the cable delivered to the port
        self.lost = 0           # frames either way while the cable was pulled
        self.plugged = True

    @property
    def link(self) -> bool:
        """The port's PHY sees a link partner."""
        return self.plugged

    def plug(self, plugged: bool) -> None:
        """Pull the cable out (False) or plug it back in."""
        self.plugged = plugged

    def poll(self) -> list[bytes]:
        """Frames waiting to go into the port (never blocks)."""
        return []

    def send(self, frame: bytes) -> None:
        """A frame the port transmitted."""
        self.sent += 1

    def close(self) -> None:
        pass


class NoCable(Cable):
    """Nothing at the far end: no link (``other`` is wired by the simulator: see there)."""

    def __init__(self, other: bool = False):
        super().__init__()
        self.other = other

    @property
    def link(self) -> bool:
        return self.other and self.plugged


class TapCable(Cable):
    """A TAP device: what the kernel sends on it goes into the port, and back."""

    def __init__(self, name: str):
        from crossnic.host.netns import NetError, Tap
        super().__init__()
        self.name = name
        try:
            self.tap = Tap(name)
        except NetError as e:
            raise CableError(f"tap:{name}: {e}") from None
        subprocess.run(["ip", "link", "set", "dev", name, "up"], check=False,
                       capture_output=True)

    def plug(self, plugged: bool) -> None:
        super().plug(plugged)
        self.tap.set_carrier(plugged)

    def poll(self) -> list[bytes]:
        out = []
        while len(out) < 64 and (frame := self.tap.read()) is not None:
            out.append(frame)
        if not self.plugged:
            self.lost += len(out)
            return []
        self.received += len(out)
        return out

    def send(self, frame: bytes) -> None:
        if not self.plugged:
            self.lost += 1
            return
        super().send(frame)
        self.tap.write(frame)       # link down or the queue full: a wire loses the frame too

    def close(self) -> None:
        self.tap.close()


class UdpCable(Cable):
    """A frame per datagram on the loopback interface, to another simulated card."""

    def __init__(self, local: int, remote: int):
        super().__init__()
        self.remote = ("127.0.0.1", remote)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(("127.0.0.1", local))
        except OSError as e:
            self.sock.close()
            raise CableError(f"udp:{local}:{remote}: cannot bind port {local}: "
                             f"{e.strerror}") from None
        self.sock.setblocking(False)

    def poll(self) -> list[bytes]:
        out = []
        while len(out) < 64:
            try:
                out.append(self.sock.recv(MAX_FRAME + 18))
            except BlockingIOError:
                break
        if not self.plugged:
            self.lost += len(out)
            return []
        self.received += len(out)
        return out

    def send(self, frame: bytes) -> None:
        if not self.plugged:
            self.lost += 1
            return
        super().send(frame)
        try:
            self.sock.sendto(frame, self.remote)
        except OSError:
            pass                    # nobody listening yet: the frame is lost, as on a wire

    def close(self) -> None:
        self.sock.close()


def open_cable(spec: CableSpec) -> Cable:
    """The cable for a spec; ``other`` is wired by the simulator itself (a :class:`NoCable`)."""
    if spec.kind == "tap":
        return TapCable(spec.name)
    if spec.kind == "udp":
        return UdpCable(spec.local, spec.remote)
    return NoCable(other=spec.kind == "other")
