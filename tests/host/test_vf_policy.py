"""The PF's check of guest requests (vf_policy) and the mailbox message format, without a card."""

import pytest

from crossnic.host.vf_mailbox import (
    RXMODE_ALLMULTI,
    RXMODE_PROMISC,
    VfOp,
    VfReply,
    VfRequest,
    VfStatus,
    mac_words,
)
from crossnic.host.vf_policy import RequestBudget, VfPolicy, decide

OWN, LISTED, OTHER = 0x02AA00000001, 0x02AA00000002, 0x02BB00000003
OK, DENIED, MALFORMED = VfStatus.OK, VfStatus.DENIED, VfStatus.MALFORMED


def ask(policy, op, *args, own=(OWN,)):
    return decide(policy, VfRequest(op, 1, tuple(args)), own_macs=list(own))


def test_nothing_is_allowed_unless_listed():
    p = VfPolicy("vm", macs={OWN, LISTED})
    assert ask(p, VfOp.GET_CONFIG).status is OK
    for op, args in [(VfOp.SET_MAC, mac_words(LISTED)), (VfOp.ADD_MAC, mac_words(LISTED)),
                     (VfOp.SET_VLAN, (0,)), (VfOp.SET_RXMODE, (RXMODE_ALLMULTI,)),
                     (VfOp.SET_MTU, (1400,)), (VfOp.SET_RATE, (10,))]:
        d = ask(p, op, *args)
        assert d.status is DENIED and d.reason, op


def test_each_kind_within_its_list_and_limits():
    p = VfPolicy("vm", ops={"set-mac", "add-mac", "vlan", "mtu", "rate", "allmulti"},
                 macs={OWN, LISTED}, vlans={0, 7}, max_mtu=1500, max_tx_rate=100_000_000)
    assert ask(p, VfOp.SET_MAC, *mac_words(LISTED)).status is OK
    assert ask(p, VfOp.SET_MAC, *mac_words(OTHER)).status is DENIED
    assert ask(p, VfOp.ADD_MAC, *mac_words(LISTED)).value == LISTED
    assert ask(p, VfOp.DEL_MAC, *mac_words(LISTED), own=(OWN, LISTED)).status is OK
    assert ask(p, VfOp.DEL_MAC, *mac_words(OTHER)).status is MALFORMED
    assert ask(p, VfOp.SET_VLAN, 7).status is OK
    assert ask(p, VfOp.SET_VLAN, 8).status is DENIED
    assert ask(p, VfOp.SET_MTU, 1500).status is OK
    assert ask(p, VfOp.SET_MTU, 1501).status is DENIED
    assert ask(p, VfOp.SET_RATE, 100).value == 100_000_000
    assert ask(p, VfOp.SET_RATE, 101).status is DENIED
    assert ask(p, VfOp.SET_RATE, 0).status is DENIED          # "no limit" is above the PF's
    assert ask(p, VfOp.SET_RXMODE, RXMODE_ALLMULTI).status is OK
    assert ask(p, VfOp.SET_RXMODE, RXMODE_PROMISC).status is DENIED
    trusted = VfPolicy("vm", ops={"set-mac"}, macs={OWN}, trust=True)
    assert ask(trusted, VfOp.SET_MAC, *mac_words(OTHER)).status is OK
    assert ask(trusted, VfOp.SET_RXMODE, RXMODE_PROMISC).status is OK


@pytest.mark.parametrize("op, args", [
    (99, ()), (0, ()),
    (VfOp.SET_MAC, mac_words(0x01005E000001)),            # multicast
    (VfOp.SET_MAC, (0, 0)),
    (VfOp.SET_MAC, (1, 0x10000)),                         # more than 48 bits
    (VfOp.SET_VLAN, (4095,)), (VfOp.SET_VLAN, (5, 1)),
    (VfOp.SET_RXMODE, (4,)), (VfOp.SET_MTU, (67,)), (VfOp.SET_MTU, (9001,)),
])
def test_malformed_requests(op, args):
    p = VfPolicy("vm", ops={"set-mac", "vlan", "mtu", "promisc"}, trust=True)
    assert ask(p, op, *args).status is MALFORMED


def test_policy_from_the_database_record():
    p = VfPolicy.of("t", {"trust": False, "max_tx_rate": 5, "allow": {
        "macs": [OWN], "vlans": [0, 3], "ops": ["vlan"]}})
    assert (p.owner, p.macs, p.vlans, p.ops, p.max_tx_rate) == ("t", {OWN}, {0, 3}, {"vlan"}, 5)


def test_messages_round_trip():
    req = VfRequest(VfOp.SET_MAC, 0x42, mac_words(OTHER))
    words = req.encode()
    assert len(words) == 8 and words[0] == VfOp.SET_MAC | 0x42 << 8
    assert VfRequest.decode(words).args[:2] == mac_words(OTHER)
    reply = VfReply(VfOp.SET_MAC, 0x42, VfStatus.DENIED, (1, 2))
    assert VfReply.decode(reply.encode()) == VfReply(VfOp.SET_MAC, 0x42, VfStatus.DENIED,
                                                     (1, 2, 0, 0, 0, 0, 0))
    assert VfReply.decode([0xFF << 16] + [0] * 7).status is VfStatus.MALFORMED
    with pytest.raises(ValueError):
        VfRequest(1, 0, tuple(range(8))).encode()


def test_budget_refuses_a_flood_and_recovers():
    b = RequestBudget(rate=10, burst=5)
    took = [b.take(1, now=0.0) for _ in range(8)]
    assert took == [True] * 5 + [False] * 3 and b.refused[1] == 3
    assert b.take(2, now=0.0)                                # another VF's budget is its own
    assert b.take(1, now=0.1) and not b.take(1, now=0.1)     # 10 a second
    assert all(b.take(1, now=10.0) for _ in range(5))


class _Port:
    """The VF window's mailbox registers, with a PF that answers each request it is sent
    (and, once, a late answer to a request that had timed out)."""

    def __init__(self, stale: bool):
        self.words = {f"port.request{k}": 0 for k in range(8)}
        self.words |= {f"port.reply{k}": 0 for k in range(8)}
        self.send = self.reply = 0
        if stale:      # the PF's late answer to an earlier request (op 5, seq 200)
            self._answer(VfReply(5, 200, VfStatus.OK))

    def _answer(self, reply: VfReply) -> None:
        for k, w in enumerate(reply.encode()):
            self.words[f"port.reply{k}"] = w
        self.reply, self.send = 1, 0

    def read_field(self, path, field):
        assert path == "port.mbox"
        return self.send if field == "send" else self.reply

    def read(self, path):
        return self.words[path]

    def write(self, path, value):
        if path != "port.mbox":
            self.words[path] = value
            return
        if value & 2:
            self.reply = 0
        if value & 1:
            req = VfRequest.decode([self.words[f"port.request{k}"] for k in range(8)])
            self._answer(VfReply(req.op, req.seq, VfStatus.DENIED, (42,)))


@pytest.mark.parametrize("stale", [False, True])
def test_guest_mailbox_skips_a_stale_reply(stale):
    from crossnic.host.vf_mailbox import VfMailbox
    mbox = VfMailbox(_Port(stale), timeout=1)
    for _ in range(3):
        r = mbox.request(VfOp.SET_MTU, 1400)
        assert (r.op, r.status, r.results[0]) == (VfOp.SET_MTU, VfStatus.DENIED, 42)
