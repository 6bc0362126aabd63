"""The administration commands of ``crossnic`` (dladm/flowadm style) and ``crossnic daemon``.

Each command sends one request to ``crossnicd`` over its Unix socket and prints the answer:
a table by default, ``-p`` for parseable ``field:field`` lines, ``--json`` for JSON. Every
refusal is an error message and exit status 1; bad arguments are exit status 2 (argparse).
"""

import json
import os
import socket
import sys
import time
from pathlib import Path

from .etherstubs import STUB_VLAN_BASE
from .lanes import STATS as LANE_STATS

__all__ = ["add_parsers", "DEFAULT_SOCKET", "AdminError", "request"]

DEFAULT_SOCKET = Path(os.environ.get("CROSSNIC_RUN", "/run/crossnic")) / "crossnicd.sock"


class AdminError(RuntimeError):
    """The daemon refused the request or cannot be reached."""


def request(cmd: str, args: dict, sock_path: Path) -> object:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(sock_path))
    except OSError as e:
        raise AdminError(f"cannot reach crossnicd at {sock_path}: {e.strerror or e} "
                         "(start it with: crossnic daemon)") from None
    with s, s.makefile("rwb") as f:
        try:
            f.write(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
            f.flush()
        except BrokenPipeError:
            pass                        # refused at once: the reason is waiting to be read
        try:
            line = f.readline()
        except ConnectionResetError:
            line = b""
    if not line:
        raise AdminError("crossnicd closed the connection")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise AdminError(reply.get("error", "refused"))
    return reply.get("result")


def _print(rows: list[dict], args, columns: list[str]) -> None:
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    cols = args.output.split(",") if getattr(args, "output", None) else columns
    rows = [{k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()}
            for r in rows]
    if args.parseable:
        for r in rows:
            print(":".join(str(r.get(c, "")).replace(":", "\\:") for c in cols))
        return
    cells = [[str(r.get(c, "--") if r.get(c) not in (None, "") else "--") for c in cols]
             for r in rows]
    widths = [max([len(c)] + [len(row[k]) for row in cells]) for k, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _props(text: str | None) -> dict[str, str]:
    """``-p maxbw=100M,priority=high`` -> dict."""
    out = {}
    for item in (text or "").split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AdminError(f"property {item!r} is not NAME=VALUE")
        out[key] = value
    return out


def _run(args) -> int:
    sock = Path(args.daemon)
    try:
        return args.admin(args, sock)
    except AdminError as e:
        print(f"crossnic: {args.command}: {e}", file=sys.stderr)
        return 1


# --- commands -----------------------------------------------------------------------------
def _show_phys(args, sock):
    _print(request("show-phys", {}, sock), args,
           ["link", "media", "speed_mbps", "rx_frames", "tx_frames"])
    return 0


#: Link properties of a VNIC (``-p``).
LINK_PROPS = {"maxbw", "priority", "forwarding"}


def _create_vnic(args, sock):
    props = _props(args.prop)
    bad = set(props) - LINK_PROPS
    if bad:
        raise AdminError(f"unknown link property {sorted(bad)[0]!r} (maxbw, priority, "
                         "forwarding)")
    r = request("create-vnic", {"name": args.name, "over": args.over, "mac": args.mac,
                                "vlan": args.vlan, "vns": args.vns, "temporary": args.t,
                                "ips": args.ip, **props}, sock)
    print(f"created VNIC {r['name']} over {r['over']}, MAC {r['mac']}, rings rx "
          f"{r['rx_ring']} / tx {r['tx_ring']}")
    return 0


def _delete(kind):
    def run(args, sock):
        request(f"delete-{kind}", {"name": args.name, "temporary": args.t}, sock)
        return 0
    return run


#: ``show-vnic -o lane``: a VNIC's lane, its mode and how it got there
LANE_FIELDS = ["name", "lane", *(f"lane_{k}" for k in LANE_STATS)]


def _show_vnic(args, sock):
    if getattr(args, "output", None) == "lane":
        args.output = ",".join(LANE_FIELDS)
    _print(request("show-vnic", {"name": args.name}, sock), args,
           ["name", "over", "mac", "vlan", "vns", "priority", "maxbw", "rx_ring", "tx_ring"])
    return 0


def _create_etherstub(args, sock):
    r = request("create-etherstub", {"name": args.name, "temporary": args.t}, sock)
    print(f"created etherstub {r['name']}")
    return 0


def _show_etherstub(args, sock):
    _print(request("show-etherstub", {"name": args.name}, sock), args,
           ["name", "vnics", "vlans", "vwires"])
    return 0


def _wire_vnic(text: str) -> dict:
    """``NAME[,over=LINK][,vns=VNS][,ip=ADDR/PREFIX]...[,mac=MAC]`` -> a wire's VNIC."""
    name, *items = text.split(",")
    spec: dict = {"name": name}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in ("over", "vns", "ip", "mac"):
            raise AdminError(f"--vnic {text!r}: NAME then over=, vns=, ip=, mac= (not {item!r})")
        if key == "ip":
            spec.setdefault("ips", []).append(value)
        else:
            spec[key] = value
    return spec


def _create_vwire(args, sock):
    links = [k for item in args.link for k in item.split(",") if k]
    vnics = [_wire_vnic(v) for v in args.vnic or []]
    r = request("create-vwire", {"name": args.name, "vlan": args.vlan, "links": links,
                                 "vnics": vnics, "temporary": args.t}, sock)
    print(f"created virtual wire {r['name']}: VLAN {r['vlan']} on {', '.join(r['links'])}"
          + (f", VNICs {', '.join(r['vnics'])}" if r["vnics"] else ""))
    return 0


def _show_vwire(args, sock):
    _print(request("show-vwire", {"name": args.name}, sock), args,
           ["name", "vlan", "links", "vnics", "card_vlans", "rx_frames", "tx_frames"])
    return 0


def _set_linkprop(args, sock):
    props = _props(args.prop)
    bad = set(props) - LINK_PROPS
    if bad or not props:
        raise AdminError("set-linkprop takes -p maxbw=RATE, priority=low|medium|high, "
                         "forwarding=on|off")
    request("set-linkprop", {"name": args.name, "temporary": args.t, **props}, sock)
    return 0


def _show_linkprop(args, sock):
    rows = []
    for v in request("show-vnic", {"name": args.name}, sock):
        for prop in ("maxbw", "priority", "forwarding"):
            value = v[prop] if prop != "forwarding" else "on" if v[prop] else "off"
            rows.append({"link": v["name"], "property": prop, "value": value})
    _print(rows, args, ["link", "property", "value"])
    return 0


def _onoff(text: str | None) -> bool | None:
    if text is None:
        return None
    if text not in ("on", "off"):
        raise AdminError(f"expected on or off, not {text!r}")
    return text == "on"


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [t for t in text.split(",") if t]


def _vf_args(args) -> dict:
    out = {"spoofchk": _onoff(args.spoofchk), "trust": _onoff(args.trust),
           "allow_ip": _list(args.allow_ip),
           "max_tx_rate": args.max_tx_rate, "state": args.state,
           "allow_mac": _list(args.allow_mac), "allow_vlan": _list(args.allow_vlan),
           "allow_op": _list(args.allow_op)}
    if out["allow_vlan"] is not None:
        try:
            out["allow_vlan"] = [int(v) for v in out["allow_vlan"]]
        except ValueError:
            raise AdminError(f"--allow-vlan takes VLAN IDs, not {args.allow_vlan!r}") from None
    return {k: v for k, v in out.items() if v is not None}


def _create_vf(args, sock):
    r = request("create-vf", {"vf": args.vf, "owner": args.owner, "over": args.over,
                              "mac": args.mac, "vlan": args.vlan, "memory": args.memory,
                              "request_rate": args.request_rate,
                              **_vf_args(args)}, sock)
    print(f"created VF {r['vf']} for {r['owner']} over {r['over']}, MAC {r['mac']}, "
          f"rings {r['rings']}, memory {r['memory']}")
    return 0


def _set_vf(args, sock):
    extra = {k: v for k, v in (("mac", args.mac), ("vlan", args.vlan)) if v is not None}
    changes = {**_vf_args(args), **extra}
    if not changes:
        raise AdminError("set-vf needs something to set (see --help)")
    request("set-vf", {"vf": args.vf, **changes}, sock)
    return 0


def _delete_vf(args, sock):
    request("delete-vf", {"vf": args.vf}, sock)
    return 0


def _show_vf(args, sock):
    _print(request("show-vf", {"vf": args.vf}, sock), args,
           ["vf", "owner", "over", "mac", "vlan", "spoofchk", "trust", "max_tx_rate",
            "state", "rings", "reg_denied", "dma_denied", "spoofed", "mbox_overrun"])
    return 0


def _create_sublevel(args, sock):
    props = _props(args.prop)
    bad = set(props) - {"priority", "maxbw"}
    if bad:
        raise AdminError(f"unknown level property {sorted(bad)[0]!r} (priority, maxbw)")
    r = request("create-sublevel", {"name": args.name, **props}, sock)
    print(f"level {r['level']}: priority {r['priority']}, maxbw {r['maxbw'] or 'none'}")
    return 0


def _simple(cmd: str, key: str, *extra: str):
    def run(args, sock):
        request(cmd, {key: getattr(args, key),
                      **{k: getattr(args, k) for k in extra}}, sock)
        return 0
    return run


def _show_sublevel(args, sock):
    _print(request("show-sublevel", {"name": args.name}, sock), args,
           ["level", "priority", "maxbw"])
    return 0


def _show_subscriber(args, sock):
    _print(request("show-subscriber", {"identity": args.identity}, sock), args,
           ["identity", "level"])
    return 0


def _associate(args, sock):
    if (args.level is None) == (args.identity is None):
        raise AdminError("associate needs --level or --identity")
    r = request("associate", {"link": args.link, "attrs": _props(args.attr),
                              "level": args.level, "identity": args.identity,
                              "idle": args.idle}, sock)
    print(f"{r['association']}: {r['level']} (priority {r['priority']}, maxbw "
          f"{r['maxbw'] or 'none'}) on {r['link']}")
    return 0


def _show_association(args, sock):
    _print(request("show-association", {"name": args.name}, sock), args,
           ["association", "link", "level", "identity", "local_port", "remote_ip",
            "remote_port", "priority", "maxbw", "rx_frames", "tx_frames"])
    return 0


def _show_association_log(args, sock):
    rows = request("show-association-log", {"limit": args.limit}, sock)
    for r in rows:
        r["time"] = time.strftime("%H:%M:%S", time.localtime(r["time"]))
    _print(rows, args, ["time", "association", "identity", "level", "link", "event", "why"])
    return 0


def _show_vf_audit(args, sock):
    rows = request("show-vf-audit", {"vf": args.vf, "limit": args.limit}, sock)
    for r in rows:
        r["time"] = time.strftime("%H:%M:%S", time.localtime(r["time"]))
    _print(rows, args, ["time", "vf", "owner", "op", "args", "verdict", "reason"])
    return 0


def _sysctls(items: list[str] | None) -> dict[str, str]:
    """``--sysctl NAME=VALUE`` options -> dict."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise AdminError(f"--sysctl takes NAME=VALUE, not {item!r}")
        out[key] = value
    return out


def _create_vns(args, sock):
    sysctls = _sysctls(args.sysctl)
    r = request("create-vns", {"name": args.name, "ips": args.ip or [], "routes":
                               args.route or [], "mtu": args.mtu, "sysctls": sysctls,
                               "temporary": args.t}, sock)
    print(f"created VNS {r['name']} (VNS instance ID {r['vns_id']})")
    return 0


def _set_vns(args, sock):
    sysctls = _sysctls(args.sysctl)
    if args.mtu is None and not sysctls:
        raise AdminError("set-vns takes --mtu and/or --sysctl NAME=VALUE")
    request("set-vns", {"name": args.name, "mtu": args.mtu, "sysctls": sysctls,
                        "temporary": args.t}, sock)
    return 0


def _show_vns(args, sock):
    rows = request("show-vns", {"name": args.name}, sock)
    for r in ([] if args.json else rows):       # JSON keeps lists and objects as they are
        r["ips"] = ",".join(r["ips"])
        r["vnics"] = ",".join(r["vnics"])
        r["sysctls"] = ",".join(f"{k}={v}" for k, v in r["sysctls"].items())
        r["routes"] = ",".join(f"{d} via {g}" if g else d for d, g in r["routes"])
    _print(rows, args, ["name", "vns_id", "ips", "mtu", "vnics", "sysctls"])
    return 0


def _add_flow(args, sock):
    attrs = _props(args.attr)
    props = _props(args.prop)
    bad = set(props) - {"priority", "maxbw"}
    if bad:
        raise AdminError(f"unknown flow property {sorted(bad)[0]!r} (priority, maxbw)")
    request("add-flow", {"name": args.name, "link": args.link, "attrs": attrs,
                         "temporary": args.t, **props}, sock)
    return 0


def _remove_flow(args, sock):
    request("remove-flow", {"name": args.name, "temporary": args.t}, sock)
    return 0


def _show_flow(args, sock):
    rows = request("show-flow", {"name": args.name}, sock)
    _print(rows, args, ["flow", "link", "local_ip", "remote_ip", "transport", "local_port",
                        "remote_port", "dsfield", "priority", "maxbw", "ring", "hits"])
    return 0


def _show_stats(args, sock):
    cols = ["link", "ipackets", "rbytes", "ierrors", "opackets", "obytes", "oerrors"]
    if args.interval is not None and not args.interval > 0:
        raise AdminError(f"-i takes a positive number of seconds, not {args.interval}")
    if args.count is not None and (args.count < 1 or not args.interval):
        raise AdminError("-c takes a positive count, and goes with -i")
    if not args.interval:
        _print(request("show-stats", {"name": args.name}, sock), args, cols)
        return 0
    prev = None
    try:
        for _ in range(args.count or 1 << 62):
            now = request("show-stats", {"name": args.name}, sock)
            rows = now if prev is None else [
                {k: (v - p[k] if isinstance(v, int) else v) for k, v in r.items()}
                for r, p in zip(now, prev, strict=False)]
            _print(rows, args, cols)
            prev = now
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    return 0


def _daemon(args, sock):
    import logging

    from .daemon import Daemon
    logging.basicConfig(level=logging.INFO, format="crossnicd: %(message)s")
    dev_kind, _, where = args.device.partition(":")
    from .device import DeviceError
    try:
        if dev_kind == "sim":
            from .sim_device import SimDevice
            dev = SimDevice(where or "/run/crossnic/sim0.sock")
        elif dev_kind == "vfio":
            from .vfio import VfioDevice
            dev = VfioDevice(where)
        else:
            raise AdminError(f"--device is sim:SOCKET or vfio:PCI_ADDRESS, not "
                             f"{args.device!r}")
    except DeviceError as e:
        raise AdminError(str(e)) from None
    group = None
    if args.group:
        import grp
        try:
            group = grp.getgrnam(args.group).gr_gid
        except KeyError:
            raise AdminError(f"no group {args.group!r}") from None
    from .chassis import ChassisError
    from .driver import DriverError
    if not 1 <= args.serial < 1 << 24:
        dev.close()
        raise AdminError(f"--serial is 1..16777215, not {args.serial}")
    try:
        d = Daemon(dev, args.db, group=group, card_serial=args.serial, chassis=args.chassis,
                   lanes=not args.no_lanes, stub_vlans=args.stub_vlans)
    except (DeviceError, DriverError, ChassisError) as e:
        dev.close()
        raise AdminError(str(e)) from None
    import signal

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    print(f"crossnicd: serving {args.device} on {sock} (configuration {args.db})", flush=True)
    try:
        d.serve(sock)
    except KeyboardInterrupt:
        pass
    finally:
        d.shutdown()
        dev.close()
    return 0


def add_parsers(sub) -> None:
    """Register the administration commands on the ``crossnic`` subparsers."""
    def cmd(name, fn, help_text, *, show=False, temp=False):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--daemon", default=str(DEFAULT_SOCKET), metavar="SOCKET",
                       help=f"crossnicd's socket (default {DEFAULT_SOCKET})")
        if show:
            p.add_argument("--json", action="store_true", help="JSON output")
            p.add_argument("-p", "--parseable", action="store_true",
                           help="parseable output: fields separated by ':'")
            p.add_argument("-o", "--output", metavar="FIELD,...", help="fields to show")
        if temp:
            p.add_argument("-t", action="store_true",
                           help="temporary: not kept across a daemon restart")
        p.set_defaults(func=_run, admin=fn)
        return p

    cmd("show-phys", _show_phys, "show the card's physical ports", show=True)
    p = cmd("create-vnic", _create_vnic, "create a VNIC over a physical port or an etherstub",
            temp=True)
    p.add_argument("name")
    p.add_argument("--over", "-l", required=True, metavar="LINK",
                   help="port0, port1 or an etherstub")
    p.add_argument("--mac", "-m", default="auto",
                   help="auto (default), factory, random or xx:xx:xx:xx:xx:xx")
    p.add_argument("--vlan", "-v", type=int, default=0, help="VLAN ID (0: untagged)")
    p.add_argument("--vns", metavar="VNS", help="the VNS instance the VNIC belongs to")
    p.add_argument("-p", dest="prop", metavar="PROP=VAL,...",
                   help="maxbw=100M,priority=high,forwarding=on (a forwarding ring: routed "
                        "frames take the driver's fast path)")
    p.add_argument("--ip", action="append", metavar="ADDR/PREFIX",
                   help="an address of the VNIC's own in its VNS (repeatable): the card's "
                        "local-IP table sends frames to it to the VNIC's local ring")
    p = cmd("delete-vnic", _delete("vnic"), "delete a VNIC", temp=True)
    p.add_argument("name")
    p = cmd("create-etherstub", _create_etherstub,
            "create an etherstub: a switch on the card with no wire", temp=True)
    p.add_argument("name")
    p = cmd("delete-etherstub", _delete("etherstub"), "delete an etherstub (with no VNICs)",
            temp=True)
    p.add_argument("name")
    p = cmd("show-etherstub", _show_etherstub, "show etherstubs", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("create-vwire", _create_vwire,
            "create a virtual wire: a VLAN on etherstubs and ports, its traffic apart from "
            "every other wire's", temp=True)
    p.add_argument("name")
    p.add_argument("--vlan", "-v", type=int, required=True, help="the wire's VLAN ID (1..4094)")
    p.add_argument("--link", "-l", action="append", required=True, metavar="LINK[,LINK...]",
                   help="an etherstub or port the wire is on (repeatable); VNICs over it in "
                        "the wire's VLAN are on the wire")
    p.add_argument("--vnic", action="append",
                   metavar="NAME[,over=LINK][,vns=VNS][,ip=ADDR/PREFIX][,mac=MAC]",
                   help="a VNIC made with the wire, in its VLAN (repeatable; over defaults to "
                        "the wire's link when it has one): all or nothing")
    p = cmd("delete-vwire", _delete("vwire"), "delete a virtual wire and its VNICs",
            temp=True)
    p.add_argument("name")
    p = cmd("show-vwire", _show_vwire, "show virtual wires", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("show-vnic", _show_vnic, "show VNICs", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("set-linkprop", _set_linkprop, "set a VNIC's link properties", temp=True)
    p.add_argument("-p", dest="prop", required=True, metavar="PROP=VAL,...")
    p.add_argument("name")
    p = cmd("show-linkprop", _show_linkprop, "show VNIC link properties", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("create-vns", _create_vns, "create a VNS instance (a network namespace)",
            temp=True)
    p.add_argument("name")
    p.add_argument("--ip", action="append", metavar="ADDR/LEN", help="address (repeatable)")
    p.add_argument("--route", action="append", metavar="DEST[,GATEWAY]",
                   help="route (repeatable), e.g. default,10.0.0.1")
    p.add_argument("--mtu", type=int)
    p.add_argument("--sysctl", action="append", metavar="NAME=VALUE",
                   help="network stack parameter, e.g. net.ipv4.ip_default_ttl=32")
    p = cmd("set-vns", _set_vns, "change a VNS instance's MTU or sysctls while it runs",
            temp=True)
    p.add_argument("name")
    p.add_argument("--mtu", type=int)
    p.add_argument("--sysctl", action="append", metavar="NAME=VALUE")
    p = cmd("delete-vns", _delete("vns"), "delete a VNS instance", temp=True)
    p.add_argument("name")
    p = cmd("show-vns", _show_vns, "show VNS instances", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("add-flow", _add_flow, "add a flow (flowadm add-flow)", temp=True)
    p.add_argument("name")
    p.add_argument("--link", "-l", required=True, metavar="VNIC")
    p.add_argument("-a", dest="attr", required=True, metavar="ATTR=VAL,...",
                   help="local_ip, remote_ip, transport, local_port, remote_port, dsfield")
    p.add_argument("-p", dest="prop", metavar="priority=...,maxbw=...",
                   help="priority (both ways), maxbw (transmit)")
    p = cmd("remove-flow", _remove_flow, "remove a flow", temp=True)
    p.add_argument("name")
    p = cmd("show-flow", _show_flow, "show flows and their hits", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("show-stats", _show_stats, "VNIC traffic counters (like dladm show-link -s)",
            show=True)
    p.add_argument("name", nargs="?")
    p.add_argument("-i", dest="interval", type=float, metavar="SECONDS",
                   help="repeat every SECONDS, showing the change")
    p.add_argument("-c", dest="count", type=int, metavar="N", help="with -i: N reports")
    def vf_options(q, *, create: bool):
        q.add_argument("vf", type=int, help="VF number")
        q.add_argument("--mac", default="auto" if create else None,
                       help="the VF's MAC (auto: derived from the card and VF number)")
        q.add_argument("--vlan", type=int, default=0 if create else None,
                       help="port VLAN (0: untagged)")
        q.add_argument("--spoofchk", choices=("on", "off"),
                       help="the card drops the guest's frames from other MACs, VLANs or "
                            "IPv4 sources (default on)")
        q.add_argument("--allow-ip", metavar="IPV4,...",
                       help="the guest's IPv4 addresses (at most 2; with spoofchk, its only "
                            "sources)")
        q.add_argument("--trust", choices=("on", "off"),
                       help="the guest may take any MAC and go promiscuous (default off)")
        q.add_argument("--max-tx-rate", metavar="RATE", help="transmit limit, e.g. 100M")
        q.add_argument("--state", choices=("auto", "enable", "disable"), help="link state")
        q.add_argument("--allow-mac", metavar="MAC,...", help="addresses the guest may take")
        q.add_argument("--allow-vlan", metavar="VID,...", help="VLANs the guest may join")
        q.add_argument("--allow-op", metavar="OP,...",
                       help="requests the guest may make: set-mac, add-mac, vlan, promisc, "
                            "allmulti, mtu, rate")

    p = cmd("create-vf", _create_vf, "give a virtual function to a guest")
    vf_options(p, create=True)
    p.add_argument("--owner", required=True, help="who the guest is (VM or tenant name)")
    p.add_argument("--over", "-l", default="port0", metavar="PORT", help="port0, port1")
    p.add_argument("--memory", default="4M", help="host memory for its DMA (default 4M)")
    p.add_argument("--request-rate", type=float, default=20.0, metavar="N",
                   help="mailbox requests a second the guest may send (default 20)")
    p = cmd("set-vf", _set_vf, "change a VF (like ip link set DEV vf N ...)")
    vf_options(p, create=False)
    p = cmd("delete-vf", _delete_vf, "take a virtual function away from its guest")
    p.add_argument("vf", type=int)
    p = cmd("show-vf", _show_vf, "show virtual functions and what the card refused them",
            show=True)
    p.add_argument("vf", type=int, nargs="?")
    p = cmd("show-vf-audit", _show_vf_audit, "guests' configuration requests and verdicts",
            show=True)
    p.add_argument("vf", type=int, nargs="?")
    p.add_argument("--limit", type=int, default=100, help="last N requests (100)")
    p = cmd("create-sublevel", _create_sublevel, "create a subscription level")
    p.add_argument("name")
    p.add_argument("-p", dest="prop", metavar="priority=...,maxbw=...",
                   help="priority (default high) and transmit maxbw of its connections")
    p = cmd("delete-sublevel", _simple("delete-sublevel", "name"),
            "delete a subscription level nobody uses")
    p.add_argument("name")
    p = cmd("show-sublevel", _show_sublevel, "show subscription levels", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("add-subscriber", _simple("add-subscriber", "identity", "level"),
            "give a client identity a subscription level")
    p.add_argument("identity", help="the client's name (a TLS client certificate's CN)")
    p.add_argument("--level", required=True)
    p = cmd("remove-subscriber", _simple("remove-subscriber", "identity"),
            "remove a client's subscription")
    p.add_argument("identity")
    p = cmd("show-subscriber", _show_subscriber, "show subscribers and their levels",
            show=True)
    p.add_argument("identity", nargs="?")
    p = cmd("associate", _associate,
            "raise a connection to a subscription level (a 5-tuple flow on the card)")
    p.add_argument("--link", "-l", required=True, metavar="VNIC")
    p.add_argument("-a", dest="attr", required=True, metavar="ATTR=VAL,...",
                   help="the connection as the VNIC sees it: local_ip, remote_ip, transport, "
                        "local_port, remote_port")
    p.add_argument("--level", help="the level to give it")
    p.add_argument("--identity", help="or: the subscriber whose level it gets")
    p.add_argument("--idle", type=float, default=30.0, metavar="SECONDS",
                   help="end the association after this long without a frame (30)")
    p = cmd("dissociate", _simple("dissociate", "name"), "end an association")
    p.add_argument("name")
    p = cmd("show-association", _show_association,
            "connections raised to a subscription level", show=True)
    p.add_argument("name", nargs="?")
    p = cmd("show-association-log", _show_association_log,
            "associations made and ended, and why", show=True)
    p.add_argument("--limit", type=int, default=100, help="last N events (100)")
    p = cmd("daemon", _daemon, "run crossnicd: own a card and serve the commands above")
    p.add_argument("--device", default="sim:/run/crossnic/sim0.sock",
                   help="sim:SOCKET (crossnic sim --serve) or vfio:PCI_ADDRESS")
    p.add_argument("--db", default="/var/lib/crossnic/config.db", metavar="PATH",
                   help="persistent configuration (SQLite)")
    p.add_argument("--group", metavar="GROUP", help="also accept requests from this group")
    p.add_argument("--serial", type=int, default=1, metavar="N",
                   help="this card's number in the host (1..16777215): its automatic VNIC MACs "
                        "and its chassis member name cardN (1)")
    p.add_argument("--stub-vlans", type=int, default=STUB_VLAN_BASE, metavar="FIRST",
                   help="VLAN IDs FIRST..4094 are the card's etherstub VLANs, refused on the "
                        f"wires (default {STUB_VLAN_BASE}; 0: no etherstubs)")
    p.add_argument("--no-lanes", action="store_true",
                   help="serve every VNIC's rings from one loop, not a lane (thread, "
                   "interrupt, dynamic polling) per VNIC")
    p.add_argument("--chassis", metavar="DIR",
                   help="join the chassis of the cards whose daemons share DIR: frames between "
                        "their VNICs go through host memory, not the wire")
