"""Simulation tops: bring a component's extra clock domains out as ports for Verilator."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In

__all__ = ["SimTop"]


class SimTop(wiring.Component):
    """Wraps ``inner`` with the same ports, plus ``<domain>_clk``/``<domain>_rst`` inputs for
    each clock domain it uses but does not create (for example ``rx`` of an RxPort).
    """

    def __init__(self, inner: wiring.Component, domains: tuple[str, ...] = ()):
        self.inner = inner
        self._domains = tuple(domains)
        members = dict(inner.signature.members)
        for name in self._domains:
            members[f"{name}_clk"] = In(1)
            members[f"{name}_rst"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for name in self._domains:
            m.domains += ClockDomain(name)
            m.d.comb += [
                ClockSignal(name).eq(getattr(self, f"{name}_clk")),
                ResetSignal(name).eq(getattr(self, f"{name}_rst")),
            ]
        m.submodules.inner = self.inner
        for name, member in self.inner.signature.members.items():
            outer, inner = getattr(self, name), getattr(self.inner, name)
            if not member.is_port:
                wiring.connect(m, wiring.flipped(outer), inner)
            elif member.flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        return m
