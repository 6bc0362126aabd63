"""The testbench's host of a simulated NicCore: registers by name over AXI4-Lite (cocotbext-axi
AxiLiteMaster), host memory (AxiRam), the wire of each port (cocotbext-eth GmiiSource).

Shared by the core's cocotb tests, its pyuvm environment and the soak and benchmark runs.
"""

from cocotb.triggers import RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam
from cocotbext.eth import GmiiFrame, GmiiSink, GmiiSource

from crossnic.gateware.layouts import DropReason
from crossnic.gateware.nic_core import NicCore
from crossnic.host.rings import RxRing, TxRing
from crossnic.sim.cocotb_util import params, start_clock

__all__ = ["Card", "MEM"]

#: Port counters of frames that never reach the DMA engine.
_PORT_DROPS = ("drop_fcs", "drop_runt", "drop_giant", "drop_phy_error", "drop_alignment",
               "drop_overflow")

MEM = 1 << 26


class Card:
    """The testbench's host: registers by name, host memory, the wire of each port."""

    def __init__(self, dut, core: NicCore, mem=None):
        self.dut = dut
        self.regmap = core.regmap()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst,
                          size=MEM if mem is None else len(mem), mem=mem)
        self.wire = [GmiiSource(getattr(dut, f"gmii_rx{k}__data"),
                                getattr(dut, f"gmii_rx{k}__er"),
                                getattr(dut, f"gmii_rx{k}__en"),
                                getattr(dut, f"eth{k}_rx_clk"), getattr(dut, f"eth{k}_rx_rst"),
                                reset_active_level=True) for k in range(2)]
        self.tx_wire = [GmiiSink(getattr(dut, f"gmii_tx{k}__data"),
                                 getattr(dut, f"gmii_tx{k}__er"),
                                 getattr(dut, f"gmii_tx{k}__en"),
                                 getattr(dut, f"eth{k}_tx_clk"), getattr(dut, f"eth{k}_tx_rst"),
                                 reset_active_level=True) for k in range(2)]

    @classmethod
    async def start(cls, dut, mem=None) -> "Card":
        """Clocks, reset, and the card once its ring memories are swept. ``mem``: the host
        memory (a buffer such as an ``mmap``; default: private, :data:`MEM` bytes)."""
        start_clock(dut.clk, 8.0)
        # Every clock at 8 ns and in phase: the clock crossings are exercised by the port
        # tests; here one simulator step per edge keeps the whole card fast.
        for k in range(2):
            start_clock(getattr(dut, f"eth{k}_rx_clk"), 8.0)
            start_clock(getattr(dut, f"eth{k}_tx_clk"), 8.0)
            getattr(dut, f"gmii_rx{k}__en").value = 0
            getattr(dut, f"gmii_rx{k}__er").value = 0
        dut.link.value = 0b11                 # both ports cabled, as the wires below are
        resets = [dut.rst] + [getattr(dut, f"eth{k}_{d}_rst") for k in range(2)
                              for d in ("rx", "tx")]
        for r in resets:
            r.value = 1
        await Timer(100, unit="ns")
        card = cls(dut, NicCore(**params().get("core", {})), mem)
        for r in resets:
            r.value = 0
        for _ in range(64 * 8 + 20):          # the DMA engine sweeps its ring memories
            await RisingEdge(dut.clk)
        return card

    async def write(self, path: str, value: int) -> None:
        await self.axil.write_dword(4 * self.regmap[path].addr, value)

    async def read(self, path: str) -> int:
        if path not in self.regmap and f"{path}.lo" in self.regmap:
            lo = await self.axil.read_dword(4 * self.regmap[f"{path}.lo"].addr)
            hi = await self.axil.read_dword(4 * self.regmap[f"{path}.hi"].addr)
            return hi << 32 | lo
        return await self.axil.read_dword(4 * self.regmap[path].addr)

    async def apply(self, pairs) -> None:
        for path, value in pairs:
            await self.write(path, value)

    def tx_rings(self, count: int, size_log2: int, buf_size: int = 2048) -> list[TxRing]:
        """``count`` transmit rings in the top half of host memory."""
        out, addr = [], MEM // 2
        for k in range(count):
            size = 1 << size_log2
            desc, wb = addr, addr + 16 * size
            buf = wb + 64
            addr = buf + buf_size * size
            out.append(TxRing(k, size_log2, desc, wb, buf, buf_size))
        assert addr <= MEM
        return out

    def rings(self, count: int, size_log2: int, buf_size: int = 2048) -> list[RxRing]:
        """``count`` receive rings laid out in the bottom half of host memory: descriptors,
        completions, buffers."""
        out, addr = [], 0x1000
        for k in range(count):
            size = 1 << size_log2
            desc, cpl = addr, addr + 16 * size
            buf = cpl + 16 * size
            addr = buf + buf_size * size
            out.append(RxRing(k, size_log2, desc, cpl, buf, buf_size))
        assert addr <= MEM // 2
        return out

    async def open_rings(self, count: int, size_log2: int,
                         buf_size: int = 2048) -> list[RxRing]:
        """Lay out ``count`` receive rings (:meth:`rings`), zero their completions, configure
        and enable them and post every buffer."""
        rings = self.rings(count, size_log2, buf_size)
        for ring in rings:
            ring.clear_completions(self.ram.write)
            await self.apply(ring.setup())
            await self.apply(ring.post(self.ram.write))
        return rings

    async def collect(self, ring: RxRing, *, repost: bool = True) -> list[tuple[dict, bytes]]:
        """A ring's new completions with their frames, returned to the card (``cpl_tail``);
        with ``repost`` their buffers are posted again, as a driver's service loop does."""
        done, doorbell = ring.poll(self.ram.read)
        await self.apply(doorbell)
        if done and repost:
            await self.apply(ring.post(self.ram.write))
        return done

    def send(self, port: int, frame: bytes):
        return self.wire[port].send(GmiiFrame.from_payload(frame, min_len=0))

    async def handled(self) -> int:
        """Frames the card has finished with: delivered or dropped by the receive DMA engine,
        or dropped by a port (bad FCS, runt, giant, ...)."""
        done = await self.read("rx_dma.frames")
        for r in DropReason:
            if r is not DropReason.NONE:
                done += await self.read(f"rx_dma.drop_{r.name.lower()}")
        for k in range(len(self.wire)):
            for name in _PORT_DROPS:
                done += await self.read(f"eth{k}_rx.{name}")
        return done

    async def settle(self, total: int, *, timeout_us: int = 1_000_000) -> None:
        """Wait until the card has delivered or dropped ``total`` frames in all."""
        for w in self.wire:
            await w.wait()
        for _ in range(timeout_us // 5):
            done = await self.handled()
            if done >= total:
                return
            await Timer(5, unit="us")
        raise AssertionError(f"only {done} of {total} frames came out of the card")




