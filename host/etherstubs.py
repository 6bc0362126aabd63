# Ref: Crossbow: dladm create-etherstub; Tripathi et al., "Crossbow Virtual Wire: Network in
#      a Box" (LISA 2009); IEEE 802.1Q (a VLAN is a separate broadcast domain)
"""Etherstubs and virtual wires: switches on the card with no wire, and named sets of links
that share a VLAN.

An **etherstub** is a switch on the card with no physical port. Its VNICs' transmit rings have
the card's stub port (past the wire ports), so the card's switch only ever hairpins their
frames; each (etherstub, VLAN) a VNIC uses gets a card VLAN of its own from the etherstub range
(``crossnicd --stub-vlans``, 4000..4094 by default), with which the driver tags the VNIC's
frames on the card. The card's (MAC, VLAN) lookup then keeps etherstubs and their VLANs apart,
its flood fan-out goes by the same VLAN, and the card refuses those VLANs from the wires and to
them (``rx_dma.drop_stub_vlan``, ``tx_switch.stub_refused``), whatever a tenant writes in its
frames.

A **virtual wire** is a VLAN on a set of links (etherstubs and ports): every VNIC over one of
its links in its VLAN is on the wire. It is created (with its VNICs, if given), shown and
deleted (with its VNICs) as one object. Two wires never share a link and VLAN, so their
traffic never meets: on an etherstub each is a card VLAN of its own, on a port a VLAN of the
wire.
"""

from __future__ import annotations

__all__ = ["Etherstubs", "STUB_VLAN_BASE"]

#: The first of the card's etherstub VLAN IDs by default (``classifier.stub_vlans``): IDs
#: from here to 4094 tag etherstubs' frames on the card, and the card refuses them from and to
#: the wires (as switches reserve a range of internal VLANs).
STUB_VLAN_BASE = 4000


class Etherstubs:
    """The daemon's etherstubs and virtual wires (kept in its SQLite database)."""

    def __init__(self, daemon, db, error: type[Exception]):
        self.daemon = daemon
        self.db = db
        self.error = error
        self.stubs: dict[str, bool] = {}            # name -> temporary
        self.wires: dict[str, dict] = {}            # name -> {vlan, links, temporary}

    def restore(self) -> None:
        for name in self.db.etherstubs():
            self.stubs[name] = False
        for w in self.db.vwires():
            self.wires[w["name"]] = {"vlan": w["vlan"], "links": w["links"], "temporary": False}

    def range_conflicts(self) -> list[str]:
        """What the stored configuration has in the card's etherstub VLANs on its ports (a
        database from before etherstubs, or a daemon started with another ``--stub-vlans``)."""
        driver = self.daemon.driver
        out = [f"VNIC {v['name']} (VLAN {v['vlan']})" for v in self.db.vnics()
               if not v["link"] and driver.is_stub_vlan(v["vlan"])]
        out += [f"VF {v['vf']} (VLAN {v['vlan']})" for v in self.db.vfs()
                if driver.is_stub_vlan(v["vlan"])]
        out += [f"virtual wire {w['name']} (VLAN {w['vlan']} on ports)" for w in self.db.vwires()
                if driver.is_stub_vlan(w["vlan"])
                and any(k not in self.db.etherstubs() for k in w["links"])]
        return out

    # --- where a VNIC goes --------------------------------------------------------------------
    def card_link(self, over: str, vlan: int) -> tuple[int, int]:
        """The card's port code and VLAN for a VNIC over ``over`` (a port or an etherstub) in
        VLAN ``vlan``."""
        if over not in self.stubs:
            return self.daemon._port(over), vlan
        driver = self.daemon.driver
        if driver.stub_port is None:
            raise self.error("the card has no etherstub VLANs (crossnicd --stub-vlans 0)")
        return driver.stub_port, self._card_vlan(over, vlan)

    def _card_vlan(self, stub: str, vlan: int) -> int:
        """The card VLAN of (``stub``, ``vlan``): the one its VNICs have, or the lowest free."""
        driver = self.daemon.driver
        used = {}
        for name, (over, user_vlan) in self.daemon.vnic_over.items():
            v = driver.vnics.get(name)
            if v is not None and v.stub:
                used[over, user_vlan] = v.vlan
        if (stub, vlan) in used:
            return used[stub, vlan]
        taken = set(used.values())
        free = next((k for k in range(driver.stub_vlan_base, 4095) if k not in taken), None)
        if free is None:
            raise self.error(f"the card's etherstub VLANs ({driver.stub_vlan_base}..4094) are "
                             "all in use")
        return free

    def wire_of(self, over: str, vlan: int) -> str | None:
        return next((n for n, w in self.wires.items()
                     if w["vlan"] == vlan and over in w["links"]), None)

    def _vnics_over(self, link: str, vlan: int | None = None) -> list[str]:
        return [n for n, (over, user_vlan) in self.daemon.vnic_over.items()
                if over == link and vlan in (None, user_vlan)]

    def taken(self, name: str) -> bool:
        return name in self.stubs or name in self.wires

    def _new_name(self, kind: str, name: str) -> None:
        from .daemon import _name
        _name(kind, name)
        d = self.daemon
        if (self.taken(name) or name in d.driver.vnics
                or (name.startswith("port") and name[4:].isdigit())):
            raise self.error(f"a link {name} exists (port, VNIC, etherstub or virtual wire)")

    # --- etherstubs -----------------------------------------------------------------------
    def create_etherstub(self, name: str, *, temporary: bool = False) -> dict:
        self._new_name("etherstub", name)
        if self.daemon.driver.stub_port is None:
            raise self.error("the card has no etherstub VLANs (crossnicd --stub-vlans 0)")
        self.stubs[name] = bool(temporary)
        if not temporary:
            self.db.put_etherstub(name)
        return self._stub_view(name)

    def delete_etherstub(self, name: str, *, temporary: bool = False) -> None:
        self._stub(name)
        users = self._vnics_over(name)
        if users:
            raise self.error(f"etherstub {name} has VNICs: {', '.join(users)}")
        wires = [w for w, p in self.wires.items() if name in p["links"]]
        if wires:
            raise self.error(f"etherstub {name} is a link of virtual wire {', '.join(wires)}")
        del self.stubs[name]
        if not temporary:
            self.db.delete_etherstub(name)

    def show_etherstub(self, name: str | None = None) -> list[dict]:
        names = [self._stub(name)] if name else list(self.stubs)
        return [self._stub_view(n) for n in names]

    def _stub(self, name: str) -> str:
        if name not in self.stubs:
            raise self.error(f"no etherstub {name}")
        return name

    def _stub_view(self, name: str) -> dict:
        d = self.daemon
        vnics = self._vnics_over(name)
        vlans = sorted({(d.vnic_over[n][1], d.driver.vnics[n].vlan) for n in vnics})
        return {"name": name, "vnics": vnics,
                "vlans": [f"{user}={card}" for user, card in vlans],
                "vwires": [w for w, p in self.wires.items() if name in p["links"]],
                "temporary": self.stubs[name]}

    # --- virtual wires --------------------------------------------------------------------
    def create_vwire(self, name: str, *, vlan: int, links: list[str],
                     vnics: list[dict] | None = None, temporary: bool = False) -> dict:
        """The wire, and the VNICs of ``vnics`` on it ({name, over (default: the wire's one
        link), vns, ips, mac}): all or nothing."""
        self._new_name("virtual wire", name)
        try:
            vlan = int(vlan)
        except (TypeError, ValueError):
            raise self.error(f"VLAN ID is 1..4094, not {vlan!r}") from None
        if not 1 <= vlan <= 4094:
            raise self.error(f"a virtual wire's VLAN ID is 1..4094, not {vlan}")
        if (not isinstance(links, list) or not links
                or not all(isinstance(k, str) for k in links)):
            raise self.error("a virtual wire needs its links (--link, etherstubs or ports)")
        if len(set(links)) != len(links):
            raise self.error("a link is named twice")
        for link in links:
            if link not in self.stubs:
                self.daemon._port(link)             # a port, or a clear error
                self._check_wire_vlan(vlan)
            other = self.wire_of(link, vlan)
            if other is None and link not in self.stubs:   # the card's ports share its VLANs
                other = next((n for n, w in self.wires.items() if w["vlan"] == vlan
                              and any(k not in self.stubs for k in w["links"])), None)
            if other is not None:
                raise self.error(f"VLAN {vlan} on {link} is virtual wire {other}"
                                 + ("" if link in self.stubs else
                                    " (the card's switch joins a VLAN across its ports)"))
            users = self._vnics_over(link, vlan)
            if users:
                raise self.error(f"VLAN {vlan} on {link} has VNICs ({', '.join(users)}): a wire "
                                 "owns its VNICs, make it before them")
            if not temporary and self.stubs.get(link):
                raise self.error(f"etherstub {link} is temporary: so must its wires be (-t)")
        specs = self._vnic_specs(vnics, links)
        self.wires[name] = {"vlan": vlan, "links": list(links), "temporary": bool(temporary)}
        made: list[str] = []
        try:
            for spec in specs:
                self.daemon.create_vnic(vlan=vlan, temporary=temporary, **spec)
                made.append(spec["name"])
        except Exception:
            for vnic in reversed(made):
                self.daemon.delete_vnic(vnic, temporary=temporary)
            del self.wires[name]
            raise
        if not temporary:
            self.db.put_vwire(name, vlan, links)
        return self._wire_view(name)

    def _vnic_specs(self, vnics, links: list[str]) -> list[dict]:
        if vnics is None:
            return []
        if not isinstance(vnics, list) or not all(isinstance(v, dict) for v in vnics):
            raise self.error("vnics is a list of {name, over, vns, ips, mac}")
        specs = []
        for v in vnics:
            bad = set(v) - {"name", "over", "vns", "ips", "mac"}
            if bad or "name" not in v:
                raise self.error(f"a wire's VNIC has a name and over, vns, ip, mac; not "
                                 f"{', '.join(sorted(bad)) or 'no name'}")
            over = v.get("over") or (links[0] if len(links) == 1 else None)
            if over not in links:
                raise self.error(f"VNIC {v['name']}: over one of the wire's links "
                                 f"({', '.join(links)}), not {over!r}")
            specs.append({**v, "over": over})
        return specs

    def _check_wire_vlan(self, vlan: int) -> None:
        from .driver import DriverError
        try:
            self.daemon.driver.check_vlan(vlan)
        except DriverError as e:
            raise self.error(str(e)) from None

    def delete_vwire(self, name: str, *, temporary: bool = False) -> None:
        """The wire and every VNIC on it, as one object."""
        w = self._wire(name)
        for link in w["links"]:
            for vnic in self._vnics_over(link, w["vlan"]):
                self.daemon.delete_vnic(vnic, temporary=temporary)
        del self.wires[name]
        if not temporary:
            self.db.delete_vwire(name)

    def show_vwire(self, name: str | None = None) -> list[dict]:
        names = [name] if name else list(self.wires)
        return [self._wire_view(n) for n in names]

    def _wire(self, name: str) -> dict:
        try:
            return self.wires[name]
        except KeyError:
            raise self.error(f"no virtual wire {name}") from None

    def _wire_view(self, name: str) -> dict:
        w = self._wire(name)
        driver = self.daemon.driver
        vnics = [n for link in w["links"] for n in self._vnics_over(link, w["vlan"])]
        card = [f"{link}:{driver.vnics[ns[0]].vlan if ns else '-'}"
                if link in self.stubs else f"{link}:{w['vlan']}"
                for link in w["links"] for ns in [self._vnics_over(link, w["vlan"])]]
        stats = [driver.vnics[n].stats for n in vnics]
        return {"name": name, "vlan": w["vlan"], "links": w["links"], "vnics": vnics,
                "card_vlans": card,
                "rx_frames": sum(s["rx_frames"] + s["rx_flooded"] for s in stats),
                "tx_frames": sum(s["tx_frames"] for s in stats),
                "temporary": w["temporary"]}
