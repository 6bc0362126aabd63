# Ref: ../shared/DESIGN.md "Configuration database" (a VF's requests go through the PF's checks)
"""The VF mailbox protocol: what a guest's VF driver asks the PF, and what the PF answers.

A message is :data:`~crossnic.gateware.vf_control.MBOX_WORDS` 32-bit words each way, carried by
the card's mailbox (:class:`~crossnic.gateware.vf_control.VfControl`: one request at a time, the
request words frozen while the PF holds them). Word 0 of a request is ``op | seq << 8``; of a
reply ``op | seq << 8 | status << 16``. The other words are the arguments or results, below.
Defined once here for the guest (:class:`VfMailbox`), the PF daemon and the docs.

=============  ==========================================  ==================================
op             request words 1..                            reply words 1..
=============  ==========================================  ==================================
GET_CONFIG     -                                            mac lo, mac hi, vlan, mtu,
                                                            DMA window first page, pages,
                                                            flags (trust, link up)
SET_MAC        mac lo, mac hi                               -
ADD_MAC        mac lo, mac hi (a second address)            -
DEL_MAC        mac lo, mac hi                               -
SET_VLAN       VLAN ID (0: untagged)                        -
SET_RXMODE     flags: 1 promiscuous, 2 all-multicast        -
SET_MTU        MTU                                          -
SET_RATE       transmit rate limit, Mb/s (0: none)          -
=============  ==========================================  ==================================
"""

import enum
import time
from dataclasses import dataclass, field

from crossnic.gateware.vf_control import MBOX_WORDS

__all__ = ["VfOp", "VfStatus", "VfRequest", "VfReply", "VfMailbox", "MailboxError",
           "RXMODE_PROMISC", "RXMODE_ALLMULTI", "FLAG_TRUST", "FLAG_LINK_UP",
           "mac_words", "words_mac"]

RXMODE_PROMISC = 1
RXMODE_ALLMULTI = 2
FLAG_TRUST = 1
FLAG_LINK_UP = 4


class VfOp(enum.IntEnum):
    GET_CONFIG = 1
    SET_MAC = 2
    ADD_MAC = 3
    DEL_MAC = 4
    SET_VLAN = 5
    SET_RXMODE = 6
    SET_MTU = 7
    SET_RATE = 8


class VfStatus(enum.IntEnum):
    OK = 0
    DENIED = 1          #: not allowed by the VF's configuration: not applied
    MALFORMED = 2       #: unknown op or arguments out of range
    RATE_LIMITED = 3    #: the VF sent faster than its request budget: not looked at
    FAILED = 4          #: allowed, but the card could not do it (a table full, say)


def mac_words(mac: int) -> tuple[int, int]:
    return mac & 0xFFFF_FFFF, mac >> 32 & 0xFFFF


def words_mac(lo: int, hi: int) -> int:
    return (hi & 0xFFFF) << 32 | lo


@dataclass(frozen=True)
class VfRequest:
    op: int                         # a VfOp, or whatever a guest wrote
    seq: int = 0
    args: tuple[int, ...] = ()

    def encode(self) -> list[int]:
        if len(self.args) > MBOX_WORDS - 1:
            raise ValueError(f"a request has at most {MBOX_WORDS - 1} argument words")
        words = [self.op & 0xFF | (self.seq & 0xFF) << 8, *self.args]
        return words + [0] * (MBOX_WORDS - len(words))

    @classmethod
    def decode(cls, words: list[int]) -> "VfRequest":
        return cls(words[0] & 0xFF, words[0] >> 8 & 0xFF, tuple(words[1:]))


@dataclass(frozen=True)
class VfReply:
    op: int
    seq: int
    status: VfStatus
    results: tuple[int, ...] = field(default=())

    def encode(self) -> list[int]:
        words = [self.op & 0xFF | (self.seq & 0xFF) << 8 | int(self.status) << 16,
                 *self.results]
        return words + [0] * (MBOX_WORDS - len(words))

    @classmethod
    def decode(cls, words: list[int]) -> "VfReply":
        try:
            status = VfStatus(words[0] >> 16 & 0xFF)
        except ValueError:
            status = VfStatus.MALFORMED
        return cls(words[0] & 0xFF, words[0] >> 8 & 0xFF, status, tuple(words[1:]))


class MailboxError(RuntimeError):
    """The PF did not take or answer a request in time."""


class VfMailbox:
    """The guest's side: send a request through the VF window's ``port`` registers, wait for
    the reply. ``regs`` is a :class:`~crossnic.host.registers.Registers` on the window map."""

    def __init__(self, regs, *, timeout: float = 10.0):
        self.regs = regs
        self.timeout = timeout
        self._seq = 0

    def request(self, op: VfOp, *args: int) -> VfReply:
        """Send ``op`` and wait for its reply. A late reply to an earlier request (one that
        timed out) is acknowledged and passed over, so one slow answer never leaves the
        mailbox a reply behind."""
        self._seq = (self._seq + 1) & 0xFF
        req = VfRequest(op, self._seq, tuple(args))
        deadline = time.monotonic() + self.timeout
        while self.regs.read_field("port.mbox", "send"):   # the last one still held
            if time.monotonic() > deadline:
                raise MailboxError("the PF has not taken the previous request")
            time.sleep(0.001)
        if self.regs.read_field("port.mbox", "reply"):     # a stale reply: not ours
            self.regs.write("port.mbox", 2)
        for k, w in enumerate(req.encode()):
            self.regs.write(f"port.request{k}", w)
        self.regs.write("port.mbox", 1)
        while True:
            while not self.regs.read_field("port.mbox", "reply"):
                if time.monotonic() > deadline:
                    raise MailboxError(f"no reply to {op.name} in {self.timeout} s")
                time.sleep(0.001)
            reply = VfReply.decode([self.regs.read(f"port.reply{k}")
                                    for k in range(MBOX_WORDS)])
            self.regs.write("port.mbox", 2)
            if (reply.op, reply.seq) == (int(op), req.seq):
                return reply
