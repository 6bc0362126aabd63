"""Linux plumbing for VNICs and VNS instances: TAP devices and network namespaces.

Everything goes through the kernel's own interfaces (``/dev/net/tun`` and the ``ip`` tool from
iproute2), run as root by the daemon. Each function either does all it says or raises
:class:`NetError` with the command's own message; callers undo what they did before (see the
daemon's transactions).
"""

import fcntl
import os
import re
import struct
import subprocess

__all__ = ["NetError", "Tap", "ip", "netns_exists", "add_netns", "delete_netns", "netns_list",
           "set_sysctl", "get_sysctl", "link_exists", "valid_ifname", "SYSCTL_NAME"]

_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_TUNSETCARRIER = 0x400454E2
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
#: sysctl names a VNS may set: dotted, letters, digits, '_' and '-'.
SYSCTL_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$")


class NetError(RuntimeError):
    """A TAP, link or namespace operation the kernel refused."""


def valid_ifname(name: str) -> bool:
    return 0 < len(name) <= 15 and all(c.isalnum() or c in "-_." for c in name)


def ip(*args: str, ns: str | None = None) -> str:
    """Run ``ip`` (in namespace ``ns``); its output, or NetError with its message."""
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise NetError("the `ip` tool (iproute2) is not installed") from None
    if r.returncode:
        raise NetError(f"{' '.join(cmd)}: {r.stderr.strip() or f'exit {r.returncode}'}")
    return r.stdout


def netns_list() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def add_netns(name: str) -> None:
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", ns=name)


def delete_netns(name: str) -> None:
    if netns_exists(name):
        ip("netns", "delete", name)


def link_exists(name: str, ns: str | None = None) -> bool:
    try:
        ip("link", "show", "dev", name, ns=ns)
        return True
    except NetError:
        return False


def _in_ns(ns: str, argv: list[str], data: str | None = None) -> str:
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, *argv], input=data, capture_output=True,
                           text=True, timeout=30)
    except FileNotFoundError:
        raise NetError("the `ip` tool (iproute2) is not installed") from None
    if r.returncode:
        raise NetError(r.stderr.strip() or f"{' '.join(argv)} failed in {ns}")
    return r.stdout


def _sysctl_path(name: str) -> str:
    if not SYSCTL_NAME.match(name):
        raise NetError(f"not a sysctl name: {name!r}")
    return "/proc/sys/" + name.replace(".", "/")


def set_sysctl(ns: str, name: str, value: str) -> None:
    """A network stack parameter of the namespace (``net.ipv4.ip_default_ttl``, ...)."""
    path = _sysctl_path(name)
    if not name.startswith("net."):
        raise NetError(f"{name}: only net.* sysctls belong to a network stack")
    _in_ns(ns, ["sh", "-c", f'cat > "{path}"'], value)


def get_sysctl(ns: str, name: str) -> str:
    return _in_ns(ns, ["cat", _sysctl_path(name)]).strip()


class Tap:
    """A TAP device the daemon holds open: frames the kernel sends on it are read here, and
    frames written here are received by the kernel. Non-blocking."""

    def __init__(self, name: str):
        if not valid_ifname(name):
            raise NetError(f"not an interface name: {name!r} (1-15 letters, digits, -_.)")
        self.name = name
        try:
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        except OSError as e:
            raise NetError(f"cannot open /dev/net/tun: {e.strerror}") from None
        try:
            fcntl.ioctl(self.fd, _TUNSETIFF, struct.pack("16sH22x", name.encode(),
                                                         _IFF_TAP | _IFF_NO_PI))
        except OSError as e:
            os.close(self.fd)
            raise NetError(f"cannot create TAP {name}: {e.strerror} (root or CAP_NET_ADMIN "
                           "is needed)") from None

    def read(self) -> bytes | None:
        try:
            return os.read(self.fd, 65536)
        except (BlockingIOError, OSError):
            return None

    def write(self, frame: bytes) -> bool:
        try:
            os.write(self.fd, frame)
            return True
        except OSError:
            return False            # link down or queue full: dropped, as a wire would

    def set_carrier(self, on: bool) -> None:
        """Carrier on or off, as the kernel's side of the TAP sees it (``NO-CARRIER``)."""
        fcntl.ioctl(self.fd, _TUNSETCARRIER, struct.pack("i", int(on)))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
