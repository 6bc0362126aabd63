# Ref: ../shared/DESIGN.md "Configuration database", "Host interface" (virtual functions)
"""crossnicd's virtual functions: the PF controls (``create-vf``, ``set-vf``, ``delete-vf``,
``show-vf``, ``show-vf-audit``) and the mailbox service that checks every guest request against
the configuration database before anything reaches the card.

Each request is decided by :func:`~crossnic.host.vf_policy.decide`; allowed ones are applied
(:class:`~crossnic.host.vf_pf.VfManager`) and acknowledged, refused ones are answered with the
refusal and change nothing; either way a row goes into the ``vf_audit`` table. A guest that
sends faster than its budget is answered RATE_LIMITED without its requests being decoded, and
the refusals are counted and audited once a second, so a flood costs the daemon little and
cannot fill the database.
"""

import ipaddress
import json
import logging
import threading
import time

from .configdb import ConfigDb
from .device import DeviceError
from .driver import Driver, DriverError, auto_mac
from .vf_mailbox import FLAG_LINK_UP, FLAG_TRUST, VfOp, VfReply, VfStatus, mac_words
from .vf_pf import DEFAULT_VF_MEMORY, VfManager
from .vf_policy import OPS, Decision, RequestBudget, VfPolicy, decide, op_name

__all__ = ["VfService"]

log = logging.getLogger("crossnicd.vf")

_VERDICTS = {VfStatus.OK: "applied", VfStatus.DENIED: "denied",
             VfStatus.MALFORMED: "malformed", VfStatus.FAILED: "failed",
             VfStatus.RATE_LIMITED: "rate-limited"}


class VfService:
    def __init__(self, driver: Driver, db: ConfigDb, *, card_serial: int = 1,
                 error=ValueError):
        self.driver = driver
        self.db = db
        self.serial = card_serial
        self.Error = error                           # the daemon's request error
        self.manager = VfManager(driver)
        self.policies: dict[int, VfPolicy] = {}
        self.attrs: dict[int, dict] = {}
        self.owners: dict[int, str] = {}
        self.budget = RequestBudget()
        self.stats = dict.fromkeys(["requests", "applied", "denied", "malformed", "failed",
                                    "rate_limited"], 0)
        self._limited_logged: dict[int, float] = {}
        self.lock = threading.RLock()

    # --- PF controls ------------------------------------------------------------------------
    def create_vf(self, vf: int, *, owner: str, port: int, mac: str = "auto", vlan: int = 0,
                  memory: int = DEFAULT_VF_MEMORY, allow_mac=(), allow_vlan=(), allow_op=(),
                  allow_ip=(), spoofchk: bool = True, trust: bool = False,
                  max_tx_rate: int = 0, request_rate: float = 20.0,
                  max_mtu: int = 1500, state: str = "auto", parse_mac=None,
                  store: bool = True) -> dict:
        vf = self._number(vf)
        if vf in self.attrs:
            raise self.Error(f"VF {vf} is already created (delete-vf {vf} first)")
        bad = set(allow_op) - set(OPS)
        if bad:
            raise self.Error(f"unknown operation {sorted(bad)[0]!r} (allowed: "
                             f"{', '.join(OPS)})")
        if not owner or not isinstance(owner, str):
            raise self.Error("a VF needs an owner (--owner NAME)")
        mac_int = auto_mac(self.serial, 0x80 + vf) if mac == "auto" else parse_mac(mac)
        if not 0 < float(request_rate) <= 1000:
            raise self.Error(f"request rate is 0..1000 a second, not {request_rate}")
        ips = self._ips(allow_ip)
        attrs = {"spoofchk": bool(spoofchk), "trust": bool(trust),
                 "request_rate": float(request_rate),
                 "max_tx_rate": int(max_tx_rate), "max_mtu": int(max_mtu), "state": state,
                 "allow": {"macs": sorted({mac_int, *map(parse_mac, allow_mac)}),
                           "vlans": sorted({int(vlan), *map(int, allow_vlan)}),
                           "ips": [str(ipaddress.IPv4Address(a)) for a in ips],
                           "ops": sorted(set(allow_op))}}
        with self.lock:
            try:
                s = self.manager.enable(vf, port=port, mac=mac_int, vlan=int(vlan),
                                        memory=int(memory))
                self.manager.set_link_state(vf, state)
                self.manager.set_spoofchk(vf, bool(spoofchk), ips)
                if max_tx_rate:
                    self.manager.set_rate(vf, int(max_tx_rate))
            except DriverError as e:
                self.manager.disable(vf)
                raise self.Error(str(e)) from None
            s.trust = attrs["trust"]
            self.attrs[vf], self.owners[vf] = attrs, owner
            self.policies[vf] = VfPolicy.of(owner, attrs)
            self.budget.set(vf, attrs["request_rate"])
            if store:
                self.db.put_vf(vf, owner, port, mac_int, int(vlan), int(memory), attrs)
            return self.view(vf)

    def set_vf(self, vf: int, *, mac: int | None = None, vlan: int | None = None,
               trust: bool | None = None, spoofchk: bool | None = None, allow_ip=None,
               max_tx_rate: int | None = None, state: str | None = None,
               allow_mac=None, allow_vlan=None, allow_op=None, parse_mac=None) -> dict:
        """What ``ip link set DEV vf N ...`` sets, and the VF's allowed lists."""
        vf = self._number(vf)
        with self.lock:
            attrs = self._attrs(vf)
            try:
                if mac is not None:
                    self.manager.set_mac(vf, parse_mac(mac))
                if vlan is not None:
                    self.manager.set_vlan(vf, int(vlan))
                if max_tx_rate is not None:
                    self.manager.set_rate(vf, int(max_tx_rate))
                    attrs["max_tx_rate"] = int(max_tx_rate)
                if state is not None:
                    self.manager.set_link_state(vf, state)
                    attrs["state"] = state
            except DriverError as e:
                raise self.Error(str(e)) from None
            s = self.manager.vfs[vf]
            if spoofchk is not None or allow_ip is not None:
                ips = None if allow_ip is None else self._ips(allow_ip)
                try:
                    self.manager.set_spoofchk(vf, s.spoofchk if spoofchk is None else spoofchk,
                                              ips)
                except DriverError as e:
                    raise self.Error(str(e)) from None
                attrs["spoofchk"] = s.spoofchk
                attrs["allow"]["ips"] = [str(ipaddress.IPv4Address(a)) for a in s.ips]
            if trust is not None:
                attrs["trust"] = s.trust = bool(trust)
            allow = attrs["allow"]
            if allow_mac is not None:
                allow["macs"] = sorted({s.mac, *map(parse_mac, allow_mac)})
            if allow_vlan is not None:
                allow["vlans"] = sorted({s.vlan, *map(int, allow_vlan)})
            if allow_op is not None:
                bad = set(allow_op) - set(OPS)
                if bad:
                    raise self.Error(f"unknown operation {sorted(bad)[0]!r}")
                allow["ops"] = sorted(set(allow_op))
            self.policies[vf] = VfPolicy.of(self.owners[vf], attrs)
            self.db.put_vf(vf, self.owners[vf], s.port, s.mac, s.vlan, s.memory.size, attrs)
            return self.view(vf)

    def delete_vf(self, vf: int) -> None:
        vf = self._number(vf)
        with self.lock:
            self._attrs(vf)
            self.manager.disable(vf)
            for d in (self.attrs, self.owners, self.policies):
                d.pop(vf, None)
            self.db.delete_vf(vf)

    def show_vf(self, vf: int | None = None) -> list[dict]:
        with self.lock:
            if vf is not None:
                self._attrs(self._number(vf))
                return [self.view(self._number(vf))]
            return [self.view(n) for n in sorted(self.attrs)]

    def show_audit(self, vf: int | None = None, limit: int = 100) -> list[dict]:
        return self.db.audit_log(None if vf is None else self._number(vf), int(limit))

    def view(self, vf: int) -> dict:
        s, attrs = self.manager.vfs[vf], self.attrs[vf]
        out = {"vf": vf, "owner": self.owners[vf], "over": f"port{s.port}",
               "mac": _mac_text(s.mac), "macs": [_mac_text(m) for m in s.macs],
               "vnics": [r["name"] for r in self.vnic_rows() if r["vf"] == vf],
               "vlan": s.vlan, "spoofchk": "on" if s.spoofchk else "off",
               "trust": "on" if attrs["trust"] else "off", "ips": attrs["allow"]["ips"],
               "max_tx_rate": s.max_tx_rate, "state": s.link_state, "mtu": s.mtu,
               "rxmode": s.rxmode, "rings": f"{s.ring_base}-{s.ring_base + 1}",
               "vnic": s.vnic,
               "memory": f"{s.memory.addr:#x}+{s.memory.size:#x}" if s.memory else "",
               "allow": attrs["allow"], "request_rate": attrs["request_rate"],
               "requests_refused_rate": self.budget.refused.get(vf, 0)}
        try:
            out |= self.manager.counters(vf)
        except DeviceError:
            pass
        return out

    def vnic_rows(self) -> list[dict]:
        """The VFs' VNICs as ``show-vnic`` lists them: ``vfN`` for a VF's own MAC, ``vfN.K``
        for the intermediate VNIC of each second MAC its guest added."""
        rows = []
        for n in sorted(self.attrs):
            s = self.manager.vfs[n]
            extra = sorted(s.extra_vnics.items(), key=lambda kv: kv[1])
            for k, (mac, vnic) in enumerate([(s.mac, s.vnic), *extra]):
                rows.append({"name": f"vf{n}" if k == 0 else f"vf{n}.{k}",
                             "over": f"port{s.port}", "mac": _mac_text(mac), "vlan": s.vlan,
                             "vns": None, "vns_id": s.vns_id,
                             "priority": s.priority.name.lower(), "maxbw": s.max_tx_rate,
                             "vnic_id": vnic, "rx_ring": s.ring_base, "tx_ring": s.ring_base,
                             "temporary": False, "vf": n, "owner": self.owners[n]})
        return rows

    def restore(self, parse_mac) -> None:
        for v in self.db.vfs():
            a = v["attrs"]
            try:
                self.create_vf(v["vf"], owner=v["owner"], port=v["port"],
                               mac=_mac_text(v["mac"]),
                               vlan=v["vlan"], memory=v["memory"],
                               allow_mac=[_mac_text(m) for m in a["allow"]["macs"]],
                               allow_vlan=a["allow"]["vlans"], allow_op=a["allow"]["ops"],
                               trust=a["trust"], request_rate=a.get("request_rate", 20.0),
                               spoofchk=a.get("spoofchk", True),
                               allow_ip=a["allow"].get("ips", []),
                               max_tx_rate=a["max_tx_rate"], max_mtu=a.get("max_mtu", 1500),
                               state=a["state"], parse_mac=parse_mac, store=False)
            except (self.Error, DriverError) as e:
                log.error("could not restore VF %d: %s", v["vf"], e)

    def _ips(self, texts) -> list[int]:
        try:
            ips = [int(ipaddress.IPv4Address(t)) for t in texts]
        except ValueError as e:
            raise self.Error(f"not an IPv4 address: {e}") from None
        if len(ips) > 2:
            raise self.Error("the card checks at most 2 IPv4 addresses per VF")
        return ips

    def _number(self, vf) -> int:
        try:
            n = int(vf)
        except (TypeError, ValueError):
            raise self.Error(f"a VF is a number, not {vf!r}") from None
        if not 0 <= n < self.manager.count:
            raise self.Error(f"the card has VFs 0..{self.manager.count - 1}, not {n}"
                             if self.manager.count else "the card has no virtual functions")
        return n

    def _attrs(self, vf: int) -> dict:
        if vf not in self.attrs:
            raise self.Error(f"VF {vf} is not created (crossnic create-vf {vf} ...)")
        return self.attrs[vf]

    # --- the mailbox ------------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> None:
        """Answer mailbox requests until ``stop`` (woken by the mailbox interrupt; a look at
        the card every 0.5 s besides, so a lost interrupt delays, never loses, a request)."""
        while not stop.is_set():
            self.manager.wake.wait(0.5)
            self.manager.wake.clear()
            try:
                for vf in self.manager.pending():
                    self.answer(vf)
            except DeviceError as e:
                log.error("mailbox: device lost: %s", e)
                stop.wait(1.0)
            except Exception:                       # a bug: logged, the daemon goes on
                log.exception("mailbox service failed")

    def answer(self, vf: int) -> None:
        with self.lock:
            self.stats["requests"] += 1
            if vf not in self.policies:
                self.manager.answer(vf, VfReply(*self.manager.head(vf), VfStatus.DENIED))
                return
            if not self.budget.take(vf):
                self.stats["rate_limited"] += 1
                self.manager.answer(vf, VfReply(*self.manager.head(vf),
                                                VfStatus.RATE_LIMITED))
                self._audit_limited(vf)
                return
            req = self.manager.take(vf)
            s = self.manager.vfs[vf]
            d = decide(self.policies[vf], req, own_macs=s.macs)
            results: tuple[int, ...] = ()
            if d.status is VfStatus.OK:
                try:
                    results = self._apply(vf, VfOp(req.op), d)
                except DriverError as e:
                    d = Decision(VfStatus.FAILED, str(e), d.value)
            self.manager.answer(vf, VfReply(req.op, req.seq, d.status, results))
            verdict = _VERDICTS[d.status]
            self.stats[verdict.replace("-", "_")] += 1
            if req.op != VfOp.GET_CONFIG or d.status is not VfStatus.OK:
                self.db.audit(time.time(), vf, self.owners[vf], op_name(req.op),
                              _args_text(req, d), verdict, d.reason)
            if d.status is not VfStatus.OK:
                log.info("VF %d (%s): %s refused: %s", vf, self.owners[vf], op_name(req.op),
                         d.reason)

    def _apply(self, vf: int, op: VfOp, d: Decision) -> tuple[int, ...]:
        m, s = self.manager, self.manager.vfs[vf]
        if op is VfOp.GET_CONFIG:
            flags = (FLAG_TRUST if s.trust else 0) | \
                (FLAG_LINK_UP if s.link_state != "disable" else 0)
            return (*mac_words(s.mac), s.vlan, s.mtu, s.memory.addr >> 12,
                    s.memory.size >> 12, flags)
        if op is VfOp.SET_MAC:
            m.set_mac(vf, d.value)
        elif op is VfOp.ADD_MAC:
            return (m.add_mac(vf, d.value),)
        elif op is VfOp.DEL_MAC:
            m.del_mac(vf, d.value)
        elif op is VfOp.SET_VLAN:
            m.set_vlan(vf, d.value)
        elif op is VfOp.SET_RXMODE:
            s.rxmode = d.value
        elif op is VfOp.SET_MTU:
            s.mtu = d.value
        elif op is VfOp.SET_RATE:
            m.set_rate(vf, d.value)
        return ()

    def _audit_limited(self, vf: int) -> None:
        now = time.monotonic()
        if now - self._limited_logged.get(vf, 0.0) < 1.0:
            return
        self._limited_logged[vf] = now
        self.db.audit(time.time(), vf, self.owners.get(vf, "?"), "-", "[]", "rate-limited",
                      f"{self.budget.refused.get(vf, 0)} requests over budget so far")

    def close(self) -> None:
        self.manager.close()


def _args_text(req, d: Decision) -> str:
    """A request's arguments as the audit shows them: decoded when the op is known."""
    if req.op in (VfOp.SET_MAC, VfOp.ADD_MAC, VfOp.DEL_MAC) and d.value:
        return _mac_text(d.value)
    if req.op in (VfOp.SET_VLAN, VfOp.SET_RXMODE, VfOp.SET_MTU, VfOp.SET_RATE):
        return str(d.value if req.op is not VfOp.SET_RATE else req.args[0] if req.args else 0)
    return json.dumps([f"{a:#x}" for a in req.args if a])


def _mac_text(mac: int) -> str:
    return ":".join(f"{b:02x}" for b in mac.to_bytes(6, "big"))
