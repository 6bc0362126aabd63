# Ref: ../shared/DESIGN.md "Configuration database" (requests from a VF/VM are checked; denied
#      ones are dropped and logged, never applied)
"""What a guest may ask of its PF: the check of each mailbox request against the VF's entry in
the configuration database, and the per-VF request budget.

A VF's entry names its owner and what it is allowed: ``ops`` (which kinds of request), ``macs``
(addresses it may take or add), ``vlans``, and limits (``max_mtu``, the PF's ``max_tx_rate``
as a ceiling). ``trust`` (as ``ip link set ... vf N trust on``) lifts the address list and
allows promiscuous mode. Nothing is allowed unless listed: a VF created without ``--allow-op``
can ask for its configuration and nothing else.
"""

import time
from dataclasses import dataclass, field

from .vf_mailbox import RXMODE_ALLMULTI, RXMODE_PROMISC, VfOp, VfRequest, VfStatus, words_mac

__all__ = ["VfPolicy", "Decision", "decide", "RequestBudget", "OPS", "op_name"]

#: Kinds of request a VF may be allowed (``--allow-op``), and the ops each covers.
OPS = {
    "set-mac": (VfOp.SET_MAC,),
    "add-mac": (VfOp.ADD_MAC, VfOp.DEL_MAC),
    "vlan": (VfOp.SET_VLAN,),
    "promisc": (VfOp.SET_RXMODE,),
    "allmulti": (VfOp.SET_RXMODE,),
    "mtu": (VfOp.SET_MTU,),
    "rate": (VfOp.SET_RATE,),
}


def op_name(op: int) -> str:
    try:
        return VfOp(op).name.lower().replace("_", "-")
    except ValueError:
        return f"op{op}"


@dataclass
class VfPolicy:
    owner: str
    ops: set[str] = field(default_factory=set)
    macs: set[int] = field(default_factory=set)
    vlans: set[int] = field(default_factory=set)
    trust: bool = False
    max_mtu: int = 1500
    max_tx_rate: int = 0             # bit/s; 0: no ceiling

    @classmethod
    def of(cls, owner: str, attrs: dict) -> "VfPolicy":
        allow = attrs.get("allow", {})
        return cls(owner, set(allow.get("ops", ())), set(allow.get("macs", ())),
                   set(allow.get("vlans", ())), bool(attrs.get("trust", False)),
                   int(attrs.get("max_mtu", 1500)), int(attrs.get("max_tx_rate", 0)))


@dataclass(frozen=True)
class Decision:
    status: VfStatus
    reason: str
    value: int = 0                   # the request's argument, decoded (MAC, VLAN, MTU, ...)


def _allowed(policy: VfPolicy, kind: str) -> bool:
    return kind in policy.ops


def decide(policy: VfPolicy, req: VfRequest, *, own_macs: list[int]) -> Decision:
    """Whether the PF applies ``req`` (OK), and why not otherwise."""
    args = req.args + (0,) * 7
    try:
        op = VfOp(req.op)
    except ValueError:
        return Decision(VfStatus.MALFORMED, f"unknown op {req.op}")
    if op is VfOp.GET_CONFIG:
        return Decision(VfStatus.OK, "")
    if op in (VfOp.SET_MAC, VfOp.ADD_MAC, VfOp.DEL_MAC):
        mac = words_mac(args[0], args[1])
        if args[1] >> 16 or mac == 0 or mac >> 40 & 1:
            return Decision(VfStatus.MALFORMED, f"{mac:012x} is not a unicast MAC")
        kind = "set-mac" if op is VfOp.SET_MAC else "add-mac"
        if not _allowed(policy, kind):
            return Decision(VfStatus.DENIED, f"{kind} is not allowed for {policy.owner}", mac)
        if op is not VfOp.DEL_MAC and mac not in policy.macs and not policy.trust:
            return Decision(VfStatus.DENIED, f"MAC {mac:012x} is not in the allowed list", mac)
        if op is VfOp.DEL_MAC and mac not in own_macs:
            return Decision(VfStatus.MALFORMED, f"MAC {mac:012x} is not the VF's", mac)
        return Decision(VfStatus.OK, "", mac)
    value = args[0]
    if op is VfOp.SET_VLAN:
        if value > 4094 or any(args[1:]):
            return Decision(VfStatus.MALFORMED, f"VLAN {value} out of range", value)
        if not _allowed(policy, "vlan") or value not in policy.vlans:
            return Decision(VfStatus.DENIED, f"VLAN {value} is not allowed", value)
        return Decision(VfStatus.OK, "", value)
    if op is VfOp.SET_RXMODE:
        if value & ~(RXMODE_PROMISC | RXMODE_ALLMULTI):
            return Decision(VfStatus.MALFORMED, f"rx mode {value:#x} has unknown bits", value)
        if value & RXMODE_PROMISC and not (policy.trust or _allowed(policy, "promisc")):
            return Decision(VfStatus.DENIED, "promiscuous mode needs trust", value)
        if value & RXMODE_ALLMULTI and not (policy.trust or _allowed(policy, "allmulti")):
            return Decision(VfStatus.DENIED, "all-multicast mode is not allowed", value)
        return Decision(VfStatus.OK, "", value)
    if op is VfOp.SET_MTU:
        if not 68 <= value <= 9000:
            return Decision(VfStatus.MALFORMED, f"MTU {value} out of range", value)
        if not _allowed(policy, "mtu") or value > policy.max_mtu:
            return Decision(VfStatus.DENIED, f"MTU {value} is not allowed (at most "
                            f"{policy.max_mtu})", value)
        return Decision(VfStatus.OK, "", value)
    # SET_RATE, in Mb/s
    rate = value * 1_000_000
    if not _allowed(policy, "rate"):
        return Decision(VfStatus.DENIED, "rate changes are not allowed", rate)
    if policy.max_tx_rate and not 0 < rate <= policy.max_tx_rate:
        return Decision(VfStatus.DENIED, f"{value} Mb/s exceeds the PF's limit of "
                        f"{policy.max_tx_rate // 1_000_000} Mb/s", rate)
    return Decision(VfStatus.OK, "", rate)


class RequestBudget:
    """A token bucket per VF: ``rate`` requests a second, as many at once (each VF's own rate
    with :meth:`set`). A request over budget is answered RATE_LIMITED without being looked
    at."""

    def __init__(self, rate: float = 20.0, burst: int = 20):
        self.rate, self.burst = rate, burst
        self._limits: dict[int, tuple[float, float]] = {}
        self._tokens: dict[int, tuple[float, float]] = {}
        self.refused: dict[int, int] = {}

    def set(self, vf: int, rate: float) -> None:
        """VF ``vf`` may send ``rate`` requests a second (and a burst of as many, at least 1)."""
        self._limits[vf] = (float(rate), max(1.0, float(rate)))
        self._tokens.pop(vf, None)

    def take(self, vf: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        rate, burst = self._limits.get(vf, (self.rate, self.burst))
        tokens, last = self._tokens.get(vf, (float(burst), now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self._tokens[vf] = (tokens, now)
            self.refused[vf] = self.refused.get(vf, 0) + 1
            return False
        self._tokens[vf] = (tokens - 1, now)
        return True
