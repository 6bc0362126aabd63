"""``crossnicd``: owns one card, runs its rings, and carries out the CLI's requests.

* **VNS instances** are Linux network namespaces (named after the instance) with their
  parameters: addresses, routes, MTU and ``net.*`` sysctls; each has a VNS instance ID (1..255)
  that the card writes into the completion of every frame for the instance's VNICs
  (target ID -> VNS instance ID -> parameters: :meth:`Daemon.vns_of_id`).
* **VNICs** are a receive and a transmit ring on the card, a MAC-table entry, and a TAP device of
  the VNIC's name, moved into its VNS namespace. The instance's addresses and routes are set on
  its first VNIC, and its addresses are entered in the card's local-IP table for that VNIC.
* Requests are transactions: each step taken is undone, last first, if a later one fails, so a
  failed request leaves no TAP, namespace or table entry behind. Successful requests are stored
  in the configuration database unless marked temporary, and come back at the next start.
* The control socket speaks one JSON object per line (``{"cmd": ..., "args": {...}}`` ->
  ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ...}``). Clients must be root or
  in the configured group (checked with ``SO_PEERCRED``).
"""

import dataclasses
import ipaddress
import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path

from crossnic.gateware.crypto.commands import NO_SLOT, OffloadOp
from crossnic.gateware.layouts import Priority

from . import netns
from .chassis import Chassis
from .configdb import ConfigDb
from .device import Device, DeviceError
from .driver import Driver, DriverError, auto_mac, random_mac
from .etherstubs import STUB_VLAN_BASE, Etherstubs
from .subscriptions import Subscriptions
from .vf_service import VfService

__all__ = ["Daemon", "RequestError", "parse_mac", "parse_rate", "PRIORITIES"]

log = logging.getLogger("crossnicd")

PRIORITIES = {"low": Priority.LOW, "medium": Priority.MEDIUM, "high": Priority.HIGH}


#: Key slots on the card, and how many one offload session (one client connection) gets.
OFFLOAD_SLOTS = 64
SESSION_SLOTS = 16


class RequestError(ValueError):
    """A request that cannot be carried out; nothing was changed."""


def parse_mac(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) in (1, 2) for p in parts):
        raise RequestError(f"not a MAC address: {text!r} (use xx:xx:xx:xx:xx:xx)")
    try:
        mac = int("".join(p.zfill(2) for p in parts), 16)
    except ValueError:
        raise RequestError(f"not a MAC address: {text!r}") from None
    if mac >> 40 & 1:
        raise RequestError(f"{text} is a group address; a VNIC needs a unicast MAC")
    if mac == 0:
        raise RequestError("00:00:00:00:00:00 is not a usable MAC")
    return mac


def mac_text(mac: int) -> str:
    return ":".join(f"{mac >> 8 * k & 0xFF:02x}" for k in reversed(range(6)))


def parse_rate(text: str | int) -> int:
    """``100M``, ``1.5G``, ``64K``, ``1000000`` -> bits per second (dladm's maxbw units)."""
    if isinstance(text, int):
        return text
    t = text.strip().upper()
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale != 1 else t) * scale
    except ValueError:
        raise RequestError(f"not a rate: {text!r} (e.g. 100M, 1G)") from None
    if value < 0:
        raise RequestError(f"a rate cannot be negative: {text}")
    return int(value)


def parse_size(text: str | int) -> int:
    """Bytes from ``4M``, ``512K``, ``1G`` or a number."""
    if isinstance(text, int):
        return text
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = str(text).strip().upper()
    try:
        return int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        raise RequestError(f"not a size: {text!r} (e.g. 4M)") from None


def _addresses(ips) -> list[str]:
    """A VNIC's own addresses, each ``addr/len``, checked."""
    if ips is None:
        return []
    if not isinstance(ips, list) or not all(isinstance(a, str) for a in ips):
        raise RequestError("ips is a list of ADDRESS/PREFIX")
    for a in ips:
        try:
            if "/" not in a:
                raise ValueError
            ipaddress.ip_interface(a)
        except ValueError:
            raise RequestError(f"not an ADDRESS/PREFIX: {a!r}") from None
    return ips


def _on_off(prop: str, value) -> bool:
    if value in (True, False, None):
        return bool(value)
    if value in ("on", "off"):
        return value == "on"
    raise RequestError(f"{prop} is on or off, not {value!r}")


def _name(kind: str, name: str) -> str:
    if not netns.valid_ifname(name):
        raise RequestError(f"{kind} name {name!r}: 1-15 letters, digits, '-', '_' or '.'")
    return name


class _Undo:
    """Steps to undo, last first, unless the transaction commits."""

    def __init__(self):
        self.steps = []

    def add(self, fn, *args) -> None:
        self.steps.append((fn, args))

    def rollback(self) -> None:
        for fn, args in reversed(self.steps):
            try:
                fn(*args)
            except Exception as e:           # keep undoing; say what could not be undone
                log.warning("rollback step %s%s failed: %s", fn.__name__, args, e)


class Daemon:
    """The daemon's state and request handlers (the socket server is :meth:`serve`)."""

    def __init__(self, dev: Device, db_path: str | Path, *, card_serial: int = 1,
                 group: int | None = None, ring_log2: int = 8,
                 chassis: str | Path | None = None, lanes: bool = True,
                 stub_vlans: int = STUB_VLAN_BASE):
        self.driver = Driver(dev, ring_log2=ring_log2, lanes=lanes, stub_vlans=stub_vlans)
        if chassis is not None:
            self.driver.chassis = Chassis(chassis, f"card{card_serial}")
        self.db = ConfigDb(db_path)
        self.serial = card_serial
        self.group = group
        self.lock = threading.RLock()
        self.vns: dict[str, dict] = {}            # name -> params (+ "temporary")
        self.temporary: set[str] = set()          # objects created with -t
        self.flows: dict[str, dict] = {}
        self.vnic_ips: dict[str, list[str]] = {}  # VNIC -> its own addresses ("addr/len")
        self.vnic_over: dict[str, tuple[str, int]] = {}     # VNIC -> (its link, its VLAN)
        self.stubs = Etherstubs(self, self.db, RequestError)
        conflicts = self.stubs.range_conflicts()
        if conflicts:
            self.db.close()
            raise DriverError(f"the configuration has {', '.join(conflicts)} in the card's "
                              f"etherstub VLANs ({stub_vlans}..4094): start crossnicd with "
                              "--stub-vlans above them, or 0 for no etherstubs")
        self._stop = threading.Event()
        self.lost: str | None = None              # why the device went away, if it did
        self.sessions: list[dict] = []            # offload sessions (a slot range each)
        self.vf = VfService(self.driver, self.db, card_serial=card_serial, error=RequestError)
        self.subs = Subscriptions(self, self.db, RequestError, parse_rate)
        self._restore()

    # --- start and stop -------------------------------------------------------------------
    def _restore(self) -> None:
        for v in self.db.vns():
            try:
                netns.delete_netns(v["name"])     # ours, left by a daemon that did not stop
                self.create_vns(v["name"], ips=v["ips"], routes=v["routes"], mtu=v["mtu"],
                                sysctls=v["sysctls"], vns_id=v["vns_id"], store=False)
            except (RequestError, netns.NetError) as e:
                log.error("could not restore VNS %s: %s", v["name"], e)
        self.stubs.restore()
        for v in self.db.vnics():
            try:
                self.create_vnic(v["name"], over=v["link"] or f"port{v['port']}",
                                 mac=mac_text(v["mac"]),
                                 vlan=v["vlan"], vns=v["vns"], priority=v["priority"],
                                 maxbw=v["maxbw"], ips=v["ips"], forwarding=v["forwarding"],
                                 store=False)
            except (RequestError, netns.NetError, DriverError) as e:
                log.error("could not restore VNIC %s: %s", v["name"], e)
        for f in self.db.flows():
            try:
                self.add_flow(f["name"], link=f["link"], attrs=f["attrs"],
                              priority=f["priority"], maxbw=f["maxbw"], store=False)
            except RequestError as e:
                log.error("could not restore flow %s: %s", f["name"], e)
        self.vf.restore(parse_mac)

    def shutdown(self) -> None:
        """Stop serving; VNICs, namespaces and the card are left as configured in the database
        (temporary ones are removed)."""
        self._stop.set()
        deadline = time.monotonic() + 5             # let closing clients' slots be zeroized
        while self.sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            self.driver.stop_lanes()        # (their threads wait on the TAPs)
            for v in self.driver.vnics.values():
                v.tap.close()               # the TAP interfaces go with their descriptors
            try:
                self.vf.close()
                self.driver.close()
            except DeviceError as e:        # a lost card: the rest is still ours to clean
                log.warning("could not quiesce the card: %s", e)
            for name in list(self.vns):
                netns.delete_netns(name)
            self.vns.clear()
            self.db.close()
            if self.driver.chassis is not None:
                self.driver.chassis.close()

    # --- VNS instances --------------------------------------------------------------------
    def create_vns(self, name: str, *, ips=(), routes=(), mtu: int | None = None,
                   sysctls: dict | None = None, temporary: bool = False,
                   vns_id: int | None = None, store: bool = True) -> dict:
        with self.lock:
            _name("VNS", name)
            if name in self.vns:
                raise RequestError(f"VNS {name} exists")
            if netns.netns_exists(name):
                raise RequestError(f"a network namespace {name} exists already (not ours)")
            ips = [self._check_ip(a) for a in ips]
            self._check_ips_free(ips)
            routes = [self._check_route(r) for r in routes]
            if mtu is not None and not 68 <= int(mtu) <= 9000:
                raise RequestError(f"MTU is 68..9000, not {mtu}")
            sysctls = dict(sysctls or {})
            for k in sysctls:
                if not netns.SYSCTL_NAME.match(k) or not k.startswith("net."):
                    raise RequestError(f"{k}: a VNS takes net.* sysctls only")
            used = {v["vns_id"] for v in self.vns.values()}
            if vns_id is None:
                free = [i for i in range(1, 256) if i not in used]
                if not free:
                    raise RequestError("all 255 VNS instance IDs are in use")
                vns_id = free[0]
            undo = _Undo()
            try:
                netns.add_netns(name)
                undo.add(netns.delete_netns, name)
                for k, v in sysctls.items():
                    netns.set_sysctl(name, k, str(v))
            except netns.NetError as e:
                undo.rollback()
                raise RequestError(str(e)) from None
            params = {"name": name, "vns_id": vns_id, "ips": ips, "routes": routes,
                      "mtu": mtu, "sysctls": sysctls, "vnics": []}
            self.vns[name] = params
            if temporary:
                self.temporary.add(f"vns:{name}")
            elif store:
                self.db.put_vns(name, vns_id, ips, routes, mtu, sysctls)
            return self._vns_view(params)

    def delete_vns(self, name: str, *, temporary: bool = False) -> None:
        with self.lock:
            params = self._vns(name)
            if params["vnics"]:
                raise RequestError(f"VNS {name} still has VNICs: {', '.join(params['vnics'])}")
            netns.delete_netns(name)
            del self.vns[name]
            self.temporary.discard(f"vns:{name}")
            if not temporary:
                self.db.delete_vns(name)

    def set_vns(self, name: str, *, mtu: int | None = None, sysctls: dict | None = None,
                temporary: bool = False) -> dict:
        """Change a running VNS instance's MTU and sysctls."""
        with self.lock:
            params = self._vns(name)
            if mtu is not None and not 68 <= int(mtu) <= 9000:
                raise RequestError(f"MTU is 68..9000, not {mtu}")
            old = {k: netns.get_sysctl(name, k) for k in sysctls or {}}
            try:
                for k, v in (sysctls or {}).items():
                    netns.set_sysctl(name, k, str(v))
                if mtu is not None:
                    for vnic in params["vnics"]:
                        netns.ip("link", "set", "dev", vnic, "mtu", str(mtu), ns=name)
            except netns.NetError as e:
                for k, v in old.items():
                    netns.set_sysctl(name, k, v)
                raise RequestError(str(e)) from None
            params["sysctls"] |= dict(sysctls or {})
            if mtu is not None:
                params["mtu"] = int(mtu)
            if not temporary and f"vns:{name}" not in self.temporary:
                self.db.put_vns(name, params["vns_id"], params["ips"], params["routes"],
                                params["mtu"], params["sysctls"])
            return self._vns_view(params)

    def vns_of_id(self, vns_id: int) -> dict | None:
        """The VNS instance (and its parameters) a completion's VNS instance ID names."""
        return next((self._vns_view(v) for v in self.vns.values() if v["vns_id"] == vns_id),
                    None)

    def _vns(self, name: str) -> dict:
        try:
            return self.vns[name]
        except KeyError:
            raise RequestError(f"no VNS {name}") from None

    @staticmethod
    def _vns_view(p: dict) -> dict:
        return {k: v for k, v in p.items()}

    @staticmethod
    def _check_ip(text: str) -> str:
        try:
            return str(ipaddress.ip_interface(text))
        except ValueError:
            raise RequestError(f"not an address/prefix length: {text!r}") from None

    def _check_ips_free(self, ips: list[str]) -> None:
        """An address is given once. (Whether another VNS has it is the card's question when
        the address lands on a VNIC: one owner per address and VLAN, so networks that never
        meet may use the same addresses.)"""
        seen: set[str] = set()
        for a in ips:
            addr = a.split("/")[0]
            if addr in seen:
                raise RequestError(f"{addr} is given twice")
            seen.add(addr)

    @staticmethod
    def _check_route(route) -> list[str]:
        dest, gw = route if not isinstance(route, str) else [*route.split(","), ""][:2]
        try:
            dest = "default" if dest == "default" else str(ipaddress.ip_network(dest))
            if gw:
                gw = str(ipaddress.ip_address(gw))
        except ValueError:
            raise RequestError(f"not a route: {route!r} (DEST[,GATEWAY])") from None
        return [dest, gw]

    # --- VNICs ----------------------------------------------------------------------------
    def create_vnic(self, name: str, *, over: str, mac: str = "auto", vlan: int = 0,
                    vns: str | None = None, priority: str = "medium", maxbw=0,
                    ips: list[str] | None = None, forwarding=False,
                    temporary: bool = False, store: bool = True) -> dict:
        with self.lock:
            _name("VNIC", name)
            if name in self.driver.vnics:
                raise RequestError(f"VNIC {name} exists")
            if netns.link_exists(name) or self.stubs.taken(name):
                raise RequestError(f"a network interface or link {name} exists already")
            if priority not in PRIORITIES:
                raise RequestError(f"priority is low, medium or high, not {priority!r}")
            vlan = int(vlan)
            if not 0 <= vlan <= 4094:
                raise RequestError(f"VLAN ID is 0..4094, not {vlan}")
            port, card_vlan = self.stubs.card_link(over, vlan)
            if self.stubs.stubs.get(over) and not temporary:
                raise RequestError(f"etherstub {over} is temporary: so must its VNICs be (-t)")
            rate = parse_rate(maxbw)
            params = self._vns(vns) if vns else None
            mac_int = self._mac(mac)
            ips = _addresses(ips)
            forwarding = _on_off("forwarding", forwarding)
            if (ips or forwarding) and not params:
                raise RequestError("addresses and forwarding need the VNIC in a VNS (--vns)")
            for a in [*ips, *(params["ips"] if params and not params["vnics"] else [])]:
                try:                    # (its own, and a VNS's on the VNS's first VNIC)
                    self.driver.check_local_ip(a.split("/")[0], card_vlan)
                except DriverError as e:
                    raise RequestError(str(e)) from None
            undo = _Undo()
            try:
                tap = netns.Tap(name)
                undo.add(tap.close)
                netns.ip("link", "set", "dev", name, "address", mac_text(mac_int))
                self.driver.add_vnic(name, port=port, mac=mac_int, vlan=card_vlan,
                                     vns_id=params["vns_id"] if params else 0,
                                     priority=PRIORITIES[priority], maxbw=rate, tap=tap)
                undo.add(self.driver.remove_vnic, name)
                if params:
                    self._join_vns(name, params, undo)
                    for a in ips:
                        netns.ip("addr", "add", a, "dev", name, ns=params["name"])
                        self.driver.add_local_ip(name, a.split("/")[0])
                    if forwarding:
                        self._set_forwarding(name, True)
                else:
                    netns.ip("link", "set", "dev", name, "up")
            except (netns.NetError, DriverError, ValueError) as e:
                undo.rollback()
                raise RequestError(str(e)) from None
            self.vnic_ips[name] = ips
            self.vnic_over[name] = (over, vlan)
            if temporary:
                self.temporary.add(f"vnic:{name}")
            elif store:
                self._store_vnic(name)
            return self._vnic_view(name)

    def _store_vnic(self, name: str) -> None:
        view = self._vnic_view(name)
        v = self.driver.vnics[name]
        self.db.put_vnic(name, v.port, v.mac, view["vlan"], view["vns"],
                         v.priority.name.lower(), v.maxbw, ips=view["ips"],
                         forwarding=view["forwarding"],
                         link=view["over"] if v.stub else None)

    def _set_forwarding(self, name: str, on: bool) -> None:
        """A forwarding ring for the VNIC (and IPv4 forwarding in its VNS, for the frames the
        fast path leaves to the stack), or not."""
        self.driver.set_forwarding(name, on)
        vns = self.driver.forwarder.vns_of(name)
        if on and vns:
            netns.set_sysctl(vns, "net.ipv4.ip_forward", "1")
            # A router's VNICs may share one segment (one port and VLAN): each answers ARP
            # for its own addresses only, or a neighbour may learn the wrong VNIC for a
            # gateway (Linux answers on every interface by default: "ARP flux") and its
            # frames then arrive on the other VNIC's rings.
            netns.set_sysctl(vns, "net.ipv4.conf.all.arp_ignore", "1")
            netns.set_sysctl(vns, "net.ipv4.conf.all.arp_announce", "2")

    def _join_vns(self, name: str, params: dict, undo: _Undo) -> None:
        ns = params["name"]
        netns.ip("link", "set", "dev", name, "netns", ns)
        if params["mtu"]:
            netns.ip("link", "set", "dev", name, "mtu", str(params["mtu"]), ns=ns)
        netns.ip("link", "set", "dev", name, "up", ns=ns)
        if not params["vnics"]:                     # the instance's first VNIC: its addresses
            for a in params["ips"]:
                netns.ip("addr", "add", a, "dev", name, ns=ns)
                addr = a.split("/")[0]
                self.driver.add_local_ip(name, addr)
            for dest, gw in params["routes"]:
                netns.ip("route", "add", dest, *(["via", gw] if gw else ["dev", name]), ns=ns)
        params["vnics"].append(name)
        undo.add(params["vnics"].remove, name)
        self.driver.forwarder.attach(name, ns)

    def delete_vnic(self, name: str, *, temporary: bool = False) -> None:
        with self.lock:
            v = self._driver_vnic(name)
            for fname, f in list(self.flows.items()):
                if f["link"] == name:
                    self.remove_flow(fname, temporary=temporary)
            tap = self.driver.remove_vnic(name)
            tap.close()                 # the TAP interface goes with its last file descriptor
            self.vnic_ips.pop(name, None)
            self.vnic_over.pop(name, None)
            for params in self.vns.values():
                if name in params["vnics"]:
                    params["vnics"].remove(name)
            self.temporary.discard(f"vnic:{name}")
            if not temporary:
                self.db.delete_vnic(name)
            del v

    def _driver_vnic(self, name: str):
        try:
            return self.driver.vnics[name]
        except KeyError:
            raise RequestError(f"no VNIC {name}") from None

    def _port(self, over: str) -> int:
        if not isinstance(over, str) or not over.startswith("port") or not over[4:].isdigit():
            raise RequestError(f"--over takes a physical port (port0..port"
                               f"{self.driver.ports - 1}) or an etherstub, not {over!r}")
        port = int(over[4:])
        if port >= self.driver.ports:
            raise RequestError(f"the card has ports port0..port{self.driver.ports - 1}")
        return port

    def _mac(self, mac: str) -> int:
        if mac in ("auto", "factory"):
            used = {v.mac for v in self.driver.vnics.values()}
            k = 0
            while auto_mac(self.serial, k) in used:
                k += 1
            return auto_mac(self.serial, k)
        if mac == "random":
            return random_mac()
        return parse_mac(mac)

    def _vnic_view(self, name: str) -> dict:
        v = self.driver.vnics[name]
        vns = next((p["name"] for p in self.vns.values() if name in p["vnics"]), None)
        over, vlan = self.vnic_over[name]
        return {"name": name, "over": over, "mac": mac_text(v.mac), "vlan": vlan,
                "card_vlan": v.vlan, "vwire": self.stubs.wire_of(over, vlan),
                "vns": vns, "vns_id": v.vns_id, "priority": v.priority.name.lower(),
                "maxbw": v.maxbw, "vnic_id": v.index, "rx_ring": v.rx.index,
                "tx_ring": v.tx.index, "temporary": f"vnic:{name}" in self.temporary,
                "ips": self.vnic_ips.get(name, []), "forwarding": v.fwd is not None,
                "forward_ring": v.fwd.index if v.fwd is not None else v.rx.index,
                "fwd_fast": v.stats["fwd_fast"], "fwd_slow": v.stats["fwd_slow"],
                "fwd_drops": v.stats["fwd_drops"], **self._paths(v),
                **self.driver.lane_view(name)}

    def _paths(self, v) -> dict:
        """Media-based transfer: the path to each VNIC this one can reach other than by the
        wire (``path``), and the frames sent each way."""
        c = self.driver.chassis
        near = [f"{u.name}:card" for u in self.driver.vnics.values()
                if u is not v and u.port == v.port and u.vlan == v.vlan]
        if c is not None and not v.stub:
            near += [f"{r['name']}@{member}:host" for member, record in sorted(c.peers.items())
                     for r in record.get("vnics", [])
                     if c.peer_of(int(r["mac"]), int(r["vlan"])) and r["vlan"] == v.vlan]
        wire = [] if v.stub else ["*:wire"]     # an etherstub has none
        return {"path": " ".join([*near, *wire]), "card_frames": v.stats["path_card"],
                "host_frames": v.stats["path_host"], "wire_frames": v.stats["path_wire"],
                "host_rx_frames": v.stats["rx_host"],
                "chassis": c.member if c is not None else None}

    def set_linkprop(self, name: str, *, priority: str | None = None, maxbw=None,
                     forwarding=None, temporary: bool = False) -> dict:
        with self.lock:
            self._driver_vnic(name)
            if priority is not None and priority not in PRIORITIES:
                raise RequestError(f"priority is low, medium or high, not {priority!r}")
            rate = parse_rate(maxbw) if maxbw is not None else None
            if forwarding is not None:
                forwarding = _on_off("forwarding", forwarding)
                if forwarding and self.driver.forwarder.vns_of(name) is None:
                    raise RequestError("forwarding needs the VNIC in a VNS")
            try:
                self.driver.set_vnic(name, priority=PRIORITIES.get(priority), maxbw=rate)
                if forwarding is not None:
                    self._set_forwarding(name, forwarding)
            except (DriverError, ValueError, netns.NetError) as e:
                raise RequestError(str(e)) from None
            view = self._vnic_view(name)
            if not temporary and not view["temporary"]:
                self._store_vnic(name)
            return view

    # --- etherstubs and virtual wires (host/etherstubs.py) -----------------------------------
    def create_etherstub(self, name: str, *, temporary: bool = False) -> dict:
        with self.lock:
            return self.stubs.create_etherstub(name, temporary=temporary)

    def delete_etherstub(self, name: str, *, temporary: bool = False) -> None:
        with self.lock:
            self.stubs.delete_etherstub(name, temporary=temporary)

    def show_etherstub(self, name: str | None = None) -> list[dict]:
        with self.lock:
            return self.stubs.show_etherstub(name)

    def create_vwire(self, name: str, *, vlan: int, links: list[str],
                     vnics: list[dict] | None = None, temporary: bool = False) -> dict:
        with self.lock:
            return self.stubs.create_vwire(name, vlan=vlan, links=links, vnics=vnics,
                                           temporary=temporary)

    def delete_vwire(self, name: str, *, temporary: bool = False) -> None:
        with self.lock:
            self.stubs.delete_vwire(name, temporary=temporary)

    def show_vwire(self, name: str | None = None) -> list[dict]:
        with self.lock:
            return self.stubs.show_vwire(name)

    # --- flows (flowadm) --------------------------------------------------------------------
    TRANSPORTS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}

    def add_flow(self, name: str, *, link: str, attrs: dict, priority: str = "medium",
                 maxbw=0, temporary: bool = False, store: bool = True) -> dict:
        """A flow on VNIC ``link``: frames matching ``attrs`` (flowadm's local_ip, remote_ip,
        transport, local_port, remote_port, dsfield) get ``priority`` both ways and ``maxbw``
        on transmit. More specific flows are matched first (the card's flow table takes the
        lowest matching slot; the driver matches transmitted frames the same way)."""
        with self.lock:
            if not name or len(name) > 31:
                raise RequestError("a flow name is 1..31 characters")
            if name in self.flows:
                raise RequestError(f"flow {name} exists")
            v = self._driver_vnic(link)
            if priority not in PRIORITIES:
                raise RequestError(f"priority is low, medium or high, not {priority!r}")
            rate = parse_rate(maxbw)
            if len(self.flows) >= len(self.driver.flows):
                raise RequestError(f"the card's flow table is full ({len(self.driver.flows)} "
                                   f"entries)")
            entry = self._flow_entry(attrs, v, PRIORITIES[priority], v.rx.index)
            # rings of its own while rings and DMA memory last; after that the flow shares
            # its VNIC's rings (classified and counted the same, as Crossbow's flows fall back
            # to software rings when the hardware has none left), unless it needs its own
            # transmit ring for a maxbw
            try:
                ring = self.driver.add_flow_rings(link, priority=PRIORITIES[priority],
                                                  maxbw=rate)
                entry = dataclasses.replace(entry, ring=ring)
            except (DriverError, ValueError) as e:
                if rate:
                    raise RequestError(f"a flow with maxbw needs rings of its own: {e}") from None
                ring = None
            self.flows[name] = {"name": name, "link": link, "attrs": dict(attrs),
                                "priority": priority, "maxbw": rate, "entry": entry,
                                "ring": ring, "temporary": temporary}
            try:
                self._load_flows()
            except (DriverError, ValueError) as e:
                del self.flows[name]
                self._load_flows()
                if ring is not None:
                    self.driver.remove_flow_rings(ring)
                raise RequestError(str(e)) from None
            if store and not temporary:
                self.db.put_flow(name, link, attrs, priority, rate)
            return self._flow_view(name)

    def remove_flow(self, name: str, *, temporary: bool = False) -> None:
        with self.lock:
            if name not in self.flows:
                raise RequestError(f"no flow {name}")
            f = self.flows.pop(name)
            self._load_flows()
            if f["ring"] is not None:
                self.driver.remove_flow_rings(f["ring"])
            if not temporary:
                self.db.delete_flow(name)

    def show_flow(self, name: str | None = None) -> list[dict]:
        with self.lock:
            if name and name not in self.flows:
                raise RequestError(f"no flow {name}")
            return [self._flow_view(n) for n in ([name] if name else self.flows)]

    def _flow_view(self, name: str) -> dict:
        f = self.flows[name]
        slot = self._flow_slots().get(name)
        return {"flow": name, "link": f["link"], **{k: str(v) for k, v in f["attrs"].items()},
                "priority": f["priority"], "maxbw": f["maxbw"], "ring": f["entry"].ring,
                "own_ring": f["ring"] is not None,
                "hits": self.driver.flow_hits(slot) if slot is not None else 0,
                "ring_frames": self.driver.regs.read(f"rx_ring[{f['entry'].ring}].frames"),
                "tx_ring_frames": (self.driver.regs.read(f"tx_ring[{f['ring']}].frames")
                                   if f["ring"] is not None else None)}

    def _flow_slots(self) -> dict[str, int]:
        """Most specific first, then in creation order."""
        order = sorted(self.flows, key=lambda n: -len(self.flows[n]["attrs"]))
        return {n: k for k, n in enumerate(order)}

    def _load_flows(self) -> None:
        slots = self._flow_slots()
        by_slot = {k: self.flows[n]["entry"] for n, k in slots.items()}
        for k in range(len(self.driver.flows)):
            entry = by_slot.get(k)
            if self.driver.flows[k] != entry:
                self.driver.set_flow(k, entry)

    def _flow_entry(self, attrs: dict, v, priority: Priority, ring: int):
        from .classifier import FAMILY_IPV4, FAMILY_IPV6, FlowEntry
        known = {"local_ip", "remote_ip", "transport", "local_port", "remote_port", "dsfield"}
        bad = set(attrs) - known
        if bad:
            raise RequestError(f"unknown flow attribute {sorted(bad)[0]!r}; attributes: "
                               f"{', '.join(sorted(known))}")
        if not attrs:
            raise RequestError("a flow needs at least one attribute")
        fields: dict = {}
        for side in ("local_ip", "remote_ip"):
            if side in attrs:
                try:
                    net = ipaddress.ip_network(str(attrs[side]), strict=False)
                except ValueError:
                    raise RequestError(f"{side}: not an address[/len]: "
                                       f"{attrs[side]!r}") from None
                fam = FAMILY_IPV4 if net.version == 4 else FAMILY_IPV6
                fields[side] = (fam, int(net.network_address), net.prefixlen)
        fams = {f[0] for f in (fields.get("local_ip"), fields.get("remote_ip")) if f}
        if len(fams) > 1:
            raise RequestError("local_ip and remote_ip must be of one IP version")
        if "transport" in attrs:
            t = str(attrs["transport"]).lower()
            if t not in self.TRANSPORTS:
                raise RequestError(f"transport is one of {', '.join(self.TRANSPORTS)}")
            fields["proto"] = self.TRANSPORTS[t]
        for side in ("local_port", "remote_port"):
            if side in attrs:
                if fields.get("proto") not in (6, 17, 132):
                    raise RequestError(f"{side} needs transport=tcp, udp or sctp")
                port = int(attrs[side])
                if not 0 < port < 65536:
                    raise RequestError(f"{side} is 1..65535, not {port}")
                fields[side] = port
        if "dsfield" in attrs:
            value, _, mask = str(attrs["dsfield"]).partition(":")
            try:
                ds = int(value, 0), int(mask or "0x3f", 0)
            except ValueError:
                raise RequestError("dsfield is VALUE[:MASK] (DSCP, 0..63)") from None
            if not all(0 <= x < 64 for x in ds):
                raise RequestError("dsfield value and mask are 0..63")
            fields["dscp"] = ds
        family = fams.pop() if fams else (FAMILY_IPV4 if fields.get("proto") == 1 else None)
        return FlowEntry(ring=ring, priority=priority, vnic=v.index, family=family,
                         **fields)

    # --- show -----------------------------------------------------------------------------
    # --- virtual functions (vf_service.py) -------------------------------------------------
    def create_vf(self, vf, *, owner: str, over: str, mac: str = "auto", vlan: int = 0,
                  memory=None, max_tx_rate=0, **kw) -> dict:
        with self.lock:
            return self.vf.create_vf(vf, owner=owner, port=self._port(over), mac=mac,
                                     vlan=int(vlan), parse_mac=parse_mac,
                                     max_tx_rate=parse_rate(max_tx_rate),
                                     **({"memory": parse_size(memory)} if memory else {}),
                                     **kw)

    def set_vf(self, vf, *, max_tx_rate=None, **kw) -> dict:
        with self.lock:
            rate = None if max_tx_rate is None else parse_rate(max_tx_rate)
            return self.vf.set_vf(vf, max_tx_rate=rate, parse_mac=parse_mac, **kw)

    def delete_vf(self, vf) -> None:
        with self.lock:
            self.vf.delete_vf(vf)

    def show_vf(self, vf=None) -> list[dict]:
        return self.vf.show_vf(vf)

    def show_vf_audit(self, vf=None, limit: int = 100) -> list[dict]:
        return self.vf.show_audit(vf, limit)

    # --- subscription priority ----------------------------------------------------------------
    def create_sublevel(self, name: str, *, priority: str = "high", maxbw=0) -> dict:
        return self.subs.create_level(name, priority=priority, maxbw=maxbw)

    def delete_sublevel(self, name: str) -> None:
        self.subs.delete_level(name)

    def show_sublevel(self, name: str | None = None) -> list[dict]:
        return self.subs.show_level(name)

    def add_subscriber(self, identity: str, *, level: str) -> dict:
        return self.subs.add_subscriber(identity, level=level)

    def remove_subscriber(self, identity: str) -> None:
        self.subs.remove_subscriber(identity)

    def show_subscriber(self, identity: str | None = None) -> list[dict]:
        return self.subs.show_subscriber(identity)

    def associate(self, *, link: str | None, attrs: dict, level: str | None = None,
                  identity: str | None = None, idle: float = 30.0,
                  source: str = "request") -> dict:
        """``link`` None: the VNIC of the VNS that has the connection's ``local_ip`` (a
        server in a VNS asks without knowing its VNIC's name)."""
        if not isinstance(attrs, dict) or not attrs:
            raise RequestError("associate needs the connection's attributes (-a ...)")
        if link is None:
            link = self._link_of(str(attrs.get("local_ip", "")))
        return self.subs.associate(link=link, attrs=attrs, level=level, identity=identity,
                                   idle=idle, source=str(source)[:31])

    def _link_of(self, ip: str) -> str:
        """The VNIC that has address ``ip`` (a VNS's, on its first VNIC, or a VNIC's own);
        separate networks may reuse an address, and then the link must be named."""
        with self.lock:
            links = [p["vnics"][0] for p in self.vns.values()
                     if p["vnics"] and ip in (a.split("/")[0] for a in p["ips"])]
            links += [n for n, ips in self.vnic_ips.items()
                      if ip in (a.split("/")[0] for a in ips) and n not in links]
        if not links:
            raise RequestError(f"no VNS has the address {ip!r}")
        if len(links) > 1:
            raise RequestError(f"{ip} is an address of several VNICs ({', '.join(links)}): "
                               "name the link")
        return links[0]

    def dissociate(self, name: str) -> None:
        self.subs.dissociate(name)

    def show_association(self, name: str | None = None) -> list[dict]:
        return self.subs.show_association(name)

    def show_association_log(self, limit: int = 100) -> list[dict]:
        return self.subs.association_log(limit)

    def show_phys(self) -> list[dict]:
        out = []
        for k in range(self.driver.ports):
            c = self.driver.regs
            out.append({"link": f"port{k}", "media": "Ethernet", "speed_mbps": 1000,
                        "rx_frames": c.read(f"eth{k}_rx.frames_ok"),
                        "tx_frames": c.read(f"eth{k}_tx.frames"),
                        "vnics": sorted(v.name for v in self.driver.vnics.values()
                                        if v.port == k)})
        return out

    def show_vnic(self, name: str | None = None) -> list[dict]:
        """The card's VNICs: the daemon's, then the VFs' (their own, and the intermediate
        VNICs of their guests' second MACs)."""
        with self.lock:
            vf_rows = self.vf.vnic_rows()
            if name and any(r["name"] == name for r in vf_rows):
                return [r for r in vf_rows if r["name"] == name]
            names = [name] if name else list(self.driver.vnics)
            for n in names:
                self._driver_vnic(n)
            return [self._vnic_view(n) for n in names] + ([] if name else vf_rows)

    def show_vns(self, name: str | None = None) -> list[dict]:
        with self.lock:
            names = [name] if name else list(self.vns)
            return [self._vns_view(self._vns(n)) for n in names]

    def show_stats(self, name: str | None = None) -> list[dict]:
        with self.lock:
            names = [name] if name else list(self.driver.vnics)
            out = []
            for n in names:
                self._driver_vnic(n)
                c = self.driver.ring_counters(n)
                out.append({"link": n, "ipackets": c["rx_frames"], "rbytes": c["rx_bytes"],
                            "opackets": c["tx_frames"], "obytes": c["tx_bytes"],
                            "ierrors": sum(v for k, v in c.items() if k.startswith("rx_drop")),
                            "oerrors": c["tx_errors"] + c["driver_tx_drops"],
                            "flooded": c["driver_rx_flooded"]})
            return out

    # --- control socket -------------------------------------------------------------------
    HANDLERS = {
        "create-vns": "create_vns", "delete-vns": "delete_vns", "set-vns": "set_vns",
        "show-vns": "show_vns", "create-vnic": "create_vnic", "delete-vnic": "delete_vnic",
        "show-vnic": "show_vnic", "set-linkprop": "set_linkprop", "show-phys": "show_phys",
        "show-stats": "show_stats", "add-flow": "add_flow", "remove-flow": "remove_flow",
        "show-flow": "show_flow", "create-vf": "create_vf", "set-vf": "set_vf",
        "delete-vf": "delete_vf", "show-vf": "show_vf", "show-vf-audit": "show_vf_audit",
        "create-sublevel": "create_sublevel", "delete-sublevel": "delete_sublevel",
        "show-sublevel": "show_sublevel", "add-subscriber": "add_subscriber",
        "remove-subscriber": "remove_subscriber", "show-subscriber": "show_subscriber",
        "associate": "associate", "dissociate": "dissociate",
        "show-association": "show_association",
        "show-association-log": "show_association_log",
        "create-etherstub": "create_etherstub", "delete-etherstub": "delete_etherstub",
        "show-etherstub": "show_etherstub", "create-vwire": "create_vwire",
        "delete-vwire": "delete_vwire", "show-vwire": "show_vwire",
    }

    def handle(self, request: dict) -> dict:
        cmd = request.get("cmd")
        args = request.get("args") or {}
        fn = self.HANDLERS.get(cmd)
        if fn is None or not hasattr(self, fn):
            return {"ok": False, "error": f"unknown request {cmd!r}"}
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        try:
            return {"ok": True, "result": getattr(self, fn)(**args)}
        except (RequestError, DriverError, netns.NetError) as e:
            return {"ok": False, "error": str(e)}
        except DeviceError as e:
            return {"ok": False, "error": f"device lost: {e}"}
        except TypeError as e:
            return {"ok": False, "error": f"bad arguments for {cmd}: {e}"}
        except Exception as e:                      # a bug: said, logged, the daemon goes on
            log.exception("%s failed", cmd)
            return {"ok": False, "error": f"internal error in {cmd}: {e!r} (see the daemon's log)"}

    def allowed(self, conn: socket.socket) -> bool:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, gid = struct.unpack("3i", creds)
        return uid == 0 or (self.group is not None and gid == self.group)

    def serve(self, path: str | Path) -> None:
        """Accept CLI clients on ``path`` and run the card until :meth:`shutdown`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(path))
        os.chmod(path, 0o660)
        if self.group is not None:
            os.chown(path, 0, self.group)
        srv.listen(16)
        srv.settimeout(0.2)
        threading.Thread(target=self._service_loop, name="rings", daemon=True).start()
        threading.Thread(target=self.vf.serve, args=(self._stop,), name="vf-mailbox",
                         daemon=True).start()
        threading.Thread(target=self.subs.serve, args=(self._stop,), name="subscriptions",
                         daemon=True).start()
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._client, args=(conn,), daemon=True).start()
        finally:
            srv.close()
            path.unlink(missing_ok=True)

    def _service_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.driver.service(0.005)
            except DeviceError as e:             # the card went away: say so once, keep going
                if not self.lost:
                    log.error("device lost: %s", e)
                self.lost = str(e)
                self._stop.wait(1.0)

    # --- handshake offload sessions ----------------------------------------------------------
    def offload_request(self, session: dict, request: dict) -> dict:
        """``offload-open`` gives the connection a range of key slots of its own;
        ``offload`` runs one command in it. Slots outside the range are refused here, so one
        client cannot name another's keys; the range is zeroized when the connection ends."""
        try:
            if request["cmd"] == "offload-open":
                return {"ok": True, "result": self._offload_open(session)}
            return {"ok": True, "result": self._offload_run(session, request.get("args"))}
        except (RequestError, DriverError) as e:
            return {"ok": False, "error": str(e)}
        except DeviceError as e:
            return {"ok": False, "error": f"device lost: {e}"}

    def _offload_open(self, session: dict) -> dict:
        if self.driver.offload_queue is None:
            raise RequestError("this card has no handshake offload engine")
        if "first" in session:
            raise RequestError("this connection already has an offload session")
        with self.lock:
            taken = {s["first"] for s in self.sessions}
            free = [k for k in range(0, OFFLOAD_SLOTS, SESSION_SLOTS) if k not in taken]
            if not free:
                raise RequestError(f"every offload session is in use "
                                   f"({OFFLOAD_SLOTS // SESSION_SLOTS})")
            session.update(first=free[0], slots=SESSION_SLOTS)
            self.sessions.append(session)
        return {"first_slot": session["first"], "slots": SESSION_SLOTS}

    def _offload_run(self, session: dict, args) -> dict:
        if "first" not in session:
            raise RequestError("offload-open first")
        if not isinstance(args, dict):
            raise RequestError("args must be an object")
        cmd = {"op": args.get("op")}
        if cmd["op"] not in {int(o) for o in OffloadOp}:
            raise RequestError(f"unknown offload operation {cmd['op']!r}")
        mine = range(session["first"], session["first"] + session["slots"])
        for f in ("slot_a", "slot_b", "dst"):
            v = args.get(f, NO_SLOT)
            if not isinstance(v, int) or (v != NO_SLOT and v not in mine):
                raise RequestError(f"{f} {v!r} is not a slot of this session "
                                   f"({mine.start}..{mine.stop - 1})")
            cmd[f] = v
        for f, bits in (("label", 8), ("flags", 8), ("aad_len", 8), ("length", 16)):
            v = args.get(f, 0)
            if not isinstance(v, int) or not 0 <= v < 1 << bits:
                raise RequestError(f"{f} must be an integer of {bits} bits")
            cmd[f] = v
        try:
            cmd["operand"] = bytes.fromhex(args.get("operand", ""))
            data = bytes.fromhex(args.get("data", ""))
        except (ValueError, TypeError):
            raise RequestError("operand and data are hex strings") from None
        if len(cmd["operand"]) > 32 or (len(data) != cmd["length"] and cmd["op"] in (
                OffloadOp.SEAL, OffloadOp.OPEN)):
            raise RequestError("operand is at most 32 bytes; data must be length bytes")
        c, out = self.driver.offload(cmd, data)
        return {"status": int(c["status"]), "kind": c["kind"], "length": c["length"],
                "cycles": c["cycles"], "result": c["result"].hex(), "data": out.hex()}

    def _offload_close(self, session: dict) -> None:
        if "first" not in session:
            return
        try:
            for slot in range(session["first"], session["first"] + session["slots"]):
                self.driver.offload({"op": OffloadOp.ZEROIZE, "slot_a": slot})
        except (DriverError, DeviceError, OSError) as e:    # the card went away meanwhile
            log.warning("could not zeroize offload slots: %s", e)
        with self.lock:
            self.sessions.remove(session)

    def _client(self, conn: socket.socket) -> None:
        session: dict = {}
        try:
            self._serve_client(conn, session)
        finally:
            self._offload_close(session)

    def _serve_client(self, conn: socket.socket, session: dict) -> None:
        with conn:
            f = conn.makefile("rwb")
            if not self.allowed(conn):
                conn.settimeout(2.0)
                try:
                    f.readline()                 # the request, unread: then the refusal
                    f.write(json.dumps({"ok": False, "error": "permission denied: crossnicd "
                                        "takes requests from root (or its group) only"}
                                       ).encode() + b"\n")
                    f.flush()
                except OSError:
                    pass
                return
            for line in f:
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        reply = {"ok": False, "error": "a request is a JSON object"}
                    elif request.get("cmd") in ("offload-open", "offload"):
                        reply = self.offload_request(session, request)
                    else:
                        reply = self.handle(request)
                except json.JSONDecodeError:
                    reply = {"ok": False, "error": "a request is one JSON object per line"}
                if reply.get("ok") is False:
                    log.info("refused %s: %s", line[:200], reply["error"])
                try:
                    f.write(json.dumps(reply).encode() + b"\n")
                    f.flush()
                except OSError:                  # the client went away before its answer
                    return
