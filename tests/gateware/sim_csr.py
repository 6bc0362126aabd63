"""amaranth.sim helpers for blocks with a CsrSignature port, addressed by register name."""

from amaranth.sim import Simulator

from crossnic.gateware.regmap import Block, RegisterMap


class CsrPort:
    """Named register access to one block's ``csr`` port (``port``) in a testbench."""

    def __init__(self, port, block: Block, latency: int):
        regmap = RegisterMap("t", [block])
        self.addr = {r.path: r.addr for r in regmap.registers()}
        self.name = block.name
        self.port = port
        self.latency = latency

    def _addr(self, name: str) -> int:
        """``name`` is a full path (``vnic[3].settings``) or a register of a single block."""
        return self.addr[name] if name in self.addr else self.addr[f"{self.name}.{name}"]

    async def write(self, ctx, name: str, value: int) -> None:
        ctx.set(self.port.addr, self._addr(name))
        ctx.set(self.port.w_data, value)
        ctx.set(self.port.w_stb, 1)
        await ctx.tick()
        ctx.set(self.port.w_stb, 0)

    async def read(self, ctx, name: str) -> int:
        ctx.set(self.port.addr, self._addr(name))
        ctx.set(self.port.r_stb, 1)
        await ctx.tick()
        ctx.set(self.port.r_stb, 0)
        await ctx.tick().repeat(self.latency - 1)
        return ctx.get(self.port.r_data)


def run(dut, *benches, background=(), period: float = 8e-9) -> None:
    """Simulate until every bench of ``benches`` returns (``background`` ones may loop)."""
    sim = Simulator(dut)
    sim.add_clock(period)
    for b in benches:
        sim.add_testbench(b)
    for b in background:
        sim.add_testbench(b, background=True)
    sim.run()


def task(fn, *args, **kwargs):
    """An async testbench calling ``fn(ctx, *args, **kwargs)`` (for parameterised benches)."""
    async def bench(ctx):
        await fn(ctx, *args, **kwargs)
    return bench
