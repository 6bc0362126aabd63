"""Driver pieces that need no card: VLAN tags, MAC addresses, table sizes."""

import inspect

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from crossnic.gateware.nic_core import NicCore
from crossnic.host.driver import TABLES, auto_mac, random_mac, tag, untag


def test_vlan_tag_and_untag_round_trip():
    plain = bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / IP() / UDP())
    tagged = tag(plain, 42, pcp=5)
    parsed = Ether(tagged)
    assert parsed[Dot1Q].vlan == 42 and parsed[Dot1Q].prio == 5 and UDP in parsed
    assert untag(tagged) == plain
    assert untag(plain) == plain                   # untagged frames pass unchanged


def test_macs_are_unicast_and_local():
    for mac in (auto_mac(1, 0), auto_mac(0xABCDEF, 255), random_mac()):
        first = mac >> 40
        assert first & 1 == 0 and first & 2 == 2 and mac < 1 << 48
    assert len({auto_mac(1, k) for k in range(64)}) == 64


def test_table_sizes_are_the_cards():
    params = inspect.signature(NicCore).parameters
    assert TABLES == {k: params[k].default for k in ("mac_entries", "local_ips", "flows")}
    assert TABLES["mac_entries"] >= 32 and TABLES["flows"] >= 64
