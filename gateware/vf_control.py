# Ref: ../shared/DESIGN.md "Host interface" (each virtual function: its own rings and mailbox)
"""VfControl: what the PF grants each virtual function, and the mailbox between them.

Two register blocks of ``vfs`` sets each:

* ``vf`` (the PF's): a VF's rings and DMA windows (:class:`~crossnic.gateware.layouts.VfGrant`,
  driven to the :class:`~crossnic.gateware.vf_windows.VfWindows` translator and the
  :class:`~crossnic.gateware.dma_guard.DmaGuard` s), the counts of what the card refused it, and
  the PF's side of its mailbox.
* ``vf_port`` (the VF's): what a VF sees at the start of its own window: who it is, its side of the
  mailbox and the mailbox interrupt's mask.

The mailbox carries one request at a time: the VF writes up to eight request words and sets
``mbox.send``; the PF's interrupt rises, the PF reads the words, writes its reply words, sets
``mbox.reply`` (the VF's interrupt rises) and clears ``mbox.request``, after which the VF may send
the next. While a request is pending the VF's request words are frozen: writing them, or sending
again, changes nothing and counts in ``mbox_overrun``, so a guest can neither change a request the
PF is reading nor flood it faster than the PF answers.

The words live in one memory (``vfs * 16`` words, LUT RAM); everything else is flip-flops. Reads
take two clocks (the memory's read register, then the output register), like every block.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .layouts import MAX_VF_RINGS, PAGE_BITS, VfGrant, VfSpoof
from .regmap import Access, Block, Field, Register

__all__ = ["VfControl", "MBOX_WORDS", "VF_STRIDE", "owner_of"]

#: Refusal pulses a VF's DMA count can take in one clock: read and write of each guard.
DMA_DENIAL_SOURCES = 4
#: Words of a mailbox message, each direction.
MBOX_WORDS = 8
VF_STRIDE = 64
PORT_STRIDE = 32
# `vf` (PF) word offsets
CTRL, MBOX, OVERRUN, REG_DENIED, DMA_DENIED = 0, 12, 13, 14, 15
WINDOW0 = 4                     # base lo/hi, limit lo/hi; the next window 4 words on
PF_REQUEST, PF_REPLY = 16, 24
SPOOF, MAC0, IP0, SPOOFED = 32, 33, 37, 39     # MAC k at 33 + 2k (lo, hi), IP k at 37 + k
# `vf_port` (VF) word offsets
INFO, PORT_MBOX, IRQ_MASK = 0, 1, 2
PORT_REQUEST, PORT_REPLY = 8, 16


def owner_of(grants, ring: Value) -> Value:
    """One-hot: the VF of ``grants`` whose ring range holds ``ring`` (0: the PF's).

    Enabled or not: ``enable`` opens the VF's window, the ring range alone makes the rings the
    VF's for the DMA guards and the anti-spoofing check, so a PF taking a VF away closes its
    window first and drains its rings while they are still held to the VF's grants."""
    bits = []
    for g in grants:
        offset = (ring - g.ring_base)[:len(g.ring_base) + 1]
        bits.append((ring >= g.ring_base) & (offset < g.ring_count))
    return Cat(*bits)


class VfControl(wiring.Component):
    """Grants and mailboxes of ``vfs`` virtual functions.

    Attributes
    ----------
    pf : In(CsrSignature), block ``vf``; port : In(CsrSignature), block ``vf_port``
        (``read_latency`` = 2)
    grants : Out(ArrayLayout(VfGrant, vfs))
    spoof : Out(ArrayLayout(VfSpoof, vfs)), what the VFs' transmitted frames must carry
    reg_denied : In(vfs), a VF window access refused (one-hot pulse)
    dma_denied : In(ArrayLayout(vfs, DMA_DENIAL_SOURCES)), a VF's DMA request refused (one-hot
        pulses from each channel of each guard; they add up)
    spoofed : In(vfs), a VF's frame dropped by the transmit anti-spoofing check
    mbox_irq : Out(1), some VF's request waits for the PF
    vf_irq : Out(vfs), the PF's reply waits for the VF (unless the VF masked it)
    link : In(ports), the ports' link status: each VF sees its own port's in ``info``
    """

    read_latency = 2

    def __init__(self, vfs: int, ports: int = 2):
        if not 1 <= vfs <= 64:
            raise ValueError(f"vfs must be 1..64, not {vfs}")
        if not 1 <= ports <= 4:
            raise ValueError(f"ports must be 1..4, not {ports}")
        self._vfs = vfs
        self._ports = ports
        super().__init__({
            "pf": In(CsrSignature((vfs - 1).bit_length() + 6)),
            "port": In(CsrSignature((vfs - 1).bit_length() + 5)),
            "grants": Out(data.ArrayLayout(VfGrant, vfs)),
            "spoof": Out(data.ArrayLayout(VfSpoof, vfs)),
            "reg_denied": In(vfs),
            "dma_denied": In(data.ArrayLayout(vfs, DMA_DENIAL_SOURCES)),
            "spoofed": In(vfs),
            "mbox_irq": Out(1),
            "vf_irq": Out(vfs),
            "link": In(ports),
        })

    def pf_block(self, name: str = "vf") -> Block:
        rw, ro, wc = Access.RW, Access.RO, Access.WC
        regs = [Register("ctrl", CTRL, "the VF's rings.", (
            Field("enable", 0, 1, rw, "the VF's window answers; writing 0 also clears its "
                  "mailbox state (its rings stay held to its DMA windows and spoof settings "
                  "whatever this bit says: ring_count 0 gives them back to the PF)"),
            Field("ring_base", 8, 8, rw, "its ring 0 is this receive and transmit ring"),
            Field("ring_count", 16, 4, rw, f"rings it owns (0..{MAX_VF_RINGS}; more is stored "
                  f"as {MAX_VF_RINGS})"),
            Field("port", 20, 2, rw, "the port its traffic uses: the VF sees that port's "
                  "link status")))]
        for w in range(2):
            at = WINDOW0 + 4 * w
            for k, (what, doc) in enumerate((("base", "first byte"),
                                             ("limit", "first byte past the end"))):
                regs += [
                    Register(f"dma{w}_{what}", at + 2 * k, f"DMA window {w}: {doc} (4 KiB "
                             "pages; base >= limit grants nothing)", (
                                 Field("addr", PAGE_BITS, 32 - PAGE_BITS, rw,
                                       f"bits 31:{PAGE_BITS}"),), part="lo"),
                    Register.word(f"dma{w}_{what}", at + 2 * k + 1, rw,
                                  f"DMA window {w}: {doc}", part="hi")]
        regs += [
            Register("mbox", MBOX, "the PF's side of the mailbox.", (
                Field("request", 0, 1, Access.W1C, "the VF sent a request (request words); "
                      "write 1 when done with it, so the VF may send the next"),
                Field("reply", 1, 1, rw, "write 1: hand the reply words to the VF; reads 1 "
                      "until the VF acknowledges them (writing 0 does nothing)"))),
            Register.word("mbox_overrun", OVERRUN, wc, "VF request writes or sends refused "
                          "while its previous request was pending (write clears)"),
            Register.word("reg_denied", REG_DENIED, wc, "VF window accesses refused: no "
                          "register there, a ring it does not own, or the VF disabled (write "
                          "clears)"),
            Register.word("dma_denied", DMA_DENIED, wc, "DMA requests of the VF's rings "
                          "refused: not inside its DMA windows (write clears)"),
        ]
        regs += [Register.word(f"request{k}", PF_REQUEST + k, ro, f"request word {k} (from "
                               "the VF)") for k in range(MBOX_WORDS)]
        regs += [Register.word(f"reply{k}", PF_REPLY + k, rw, f"reply word {k} (to the VF)")
                 for k in range(MBOX_WORDS)]
        regs.append(Register("spoof", SPOOF, "transmit anti-spoofing (frames failing a check "
                             "are dropped whole and counted in spoofed).", (
            Field("mac", 0, 1, rw, "source MAC (and ARP sender MAC) must be mac0 or mac1"),
            Field("vlan", 1, 1, rw, "frames must carry exactly the 802.1Q tag of vlan "
                  "(none when vlan is 0)"),
            Field("ip", 2, 1, rw, "IPv4 source (and ARP sender address) must be ip0 or ip1"),
            Field("vlan_id", 16, 12, rw, "the VF's port VLAN"))))
        for k in range(2):
            regs += [Register.word(f"mac{k}", MAC0 + 2 * k, rw, f"allowed source MAC {k} "
                                   "(0: none)", part="lo"),
                     Register.word(f"mac{k}", MAC0 + 2 * k + 1, rw, f"allowed source MAC {k}",
                                   width=16, part="hi"),
                     Register.word(f"ip{k}", IP0 + k, rw, f"allowed IPv4 source {k} (0: none)")]
        regs.append(Register.word("spoofed", SPOOFED, wc, "frames the VF sent that failed the "
                                  "anti-spoofing checks, dropped (write clears)"))
        return Block(name, f"virtual functions: grants, refusals, mailbox ({self._vfs} sets)",
                     tuple(regs), self.read_latency, count=self._vfs, stride=VF_STRIDE)

    def port_block(self, name: str = "vf_port", count: int | None = None) -> Block:
        """The VF's own registers; ``count`` 1 for the VF window's map (its set only)."""
        rw, ro = Access.RW, Access.RO
        count = self._vfs if count is None else count
        regs = [
            Register("info", INFO, "who this VF is.", (
                Field("vf", 0, 8, ro, "VF number"),
                Field("rings", 8, 4, ro, "rings it owns (its window's ring sets 0..rings-1)"),
                Field("enabled", 16, 1, ro, "the PF enabled it"),
                Field("link", 17, 1, ro, "its port has link (a guest's bond fails over "
                      "when this drops)"))),
            Register("mbox", PORT_MBOX, "the VF's side of the mailbox.", (
                Field("send", 0, 1, rw, "write 1: send the request words to the PF; reads 1 "
                      "until the PF is done with them (writing 0 does nothing)"),
                Field("reply", 1, 1, Access.W1C, "the PF's reply words are waiting; write 1 "
                      "when done with them"))),
            Register("irq_mask", IRQ_MASK, "mailbox interrupt mask.", (
                Field("mask", 0, 1, rw, "1: the reply interrupt line stays low"),)),
        ]
        regs += [Register.word(f"request{k}", PORT_REQUEST + k, rw, f"request word {k}")
                 for k in range(MBOX_WORDS)]
        regs += [Register.word(f"reply{k}", PORT_REPLY + k, ro, f"reply word {k} (from the PF)")
                 for k in range(MBOX_WORDS)]
        return Block(name, "a virtual function's own registers: identity and mailbox",
                     tuple(regs), self.read_latency, count=count,
                     stride=PORT_STRIDE if count > 1 else 0)

    def elaborate(self, platform):
        m = Module()
        vfs = self._vfs
        pf, port = self.pf, self.port
        ctrl = [Signal(22, name=f"ctrl{v}") for v in range(vfs)]
        # (a port number beyond the card's ports reads no link)
        link = Cat(self.link, C(0, 4 - self._ports))
        windows = [[Signal(64, name=f"vf{v}_win{k}") for k in range(4)] for v in range(vfs)]
        counters = [[Signal(32, name=f"vf{v}_{n}") for n in ("overrun", "reg", "dma",
                                                              "spoofed")]
                    for v in range(vfs)]
        spoof = [Signal(VfSpoof, name=f"vf{v}_spoof") for v in range(vfs)]
        request = Signal(vfs)
        reply = Signal(vfs)
        mask = Signal(vfs)

        for v, g in enumerate(self.grants):
            m.d.comb += [g.enable.eq(ctrl[v][0]), g.ring_base.eq(ctrl[v][8:16]),
                         g.ring_count.eq(ctrl[v][16:20])]
            for k in range(2):
                m.d.comb += [g.windows[k].base.eq(windows[v][2 * k][PAGE_BITS:]),
                             g.windows[k].limit.eq(windows[v][2 * k + 1][PAGE_BITS:])]
        m.d.comb += [self.mbox_irq.eq(request.any()), self.vf_irq.eq(reply & ~mask)]
        for v in range(vfs):
            m.d.comb += self.spoof[v].eq(spoof[v])

        # --- mailbox words: request k of VF v at 16 v + k, reply k at 16 v + 8 + k ----------
        # (request words are at port 8.. and PF 16.., reply words at port 16.. and PF 24..)
        m.submodules.words = words = Memory(shape=32, depth=vfs * 16, init=[],
                                            attrs={"ram_style": "distributed"})
        w_port = words.write_port()
        r_port = words.read_port()
        pf_set, pf_off = pf.addr[6:], pf.addr[:6]
        vf_set, vf_off = port.addr[5:], port.addr[:5]
        m.d.comb += r_port.addr.eq(Mux(port.r_stb, Cat(vf_off[:3], vf_off[4], vf_set),
                                       Cat(pf_off[:3], pf_off[3] & pf_off[4], pf_set)))

        # --- reads: a word now, the memory's beside it, one of them out the next clock ------
        word, from_mem = Signal(32), Signal()
        out = Signal(32)
        m.d.sync += out.eq(Mux(from_mem, r_port.data, word))
        m.d.comb += [pf.r_data.eq(out), port.r_data.eq(out)]
        with m.If(port.r_stb):
            m.d.sync += [from_mem.eq(vf_off >= PORT_REQUEST), word.eq(0)]
            with m.Switch(vf_set):
                for v in range(vfs):
                    with m.Case(v):
                        with m.Switch(vf_off):
                            with m.Case(INFO):
                                m.d.sync += word.eq(Cat(C(v, 8), ctrl[v][16:20], C(0, 4),
                                                        ctrl[v][0], link.bit_select(
                                                            ctrl[v][20:22], 1)))
                            with m.Case(PORT_MBOX):
                                m.d.sync += word.eq(Cat(request[v], reply[v]))
                            with m.Case(IRQ_MASK):
                                m.d.sync += word.eq(mask[v])
        with m.Elif(pf.r_stb):
            m.d.sync += [from_mem.eq((pf_off >= PF_REQUEST) & (pf_off < SPOOF)), word.eq(0)]
            with m.Switch(pf_set):
                for v in range(vfs):
                    with m.Case(v):
                        with m.Switch(pf_off):
                            with m.Case(CTRL):
                                m.d.sync += word.eq(ctrl[v])
                            for k in range(4):
                                with m.Case(WINDOW0 + 2 * k):
                                    m.d.sync += word.eq(windows[v][k][:32] &
                                                        ~((1 << PAGE_BITS) - 1))
                                with m.Case(WINDOW0 + 2 * k + 1):
                                    m.d.sync += word.eq(windows[v][k][32:])
                            with m.Case(MBOX):
                                m.d.sync += word.eq(Cat(request[v], reply[v]))
                            for n, off in enumerate((OVERRUN, REG_DENIED, DMA_DENIED,
                                                     SPOOFED)):
                                with m.Case(off):
                                    m.d.sync += word.eq(counters[v][n])
                            with m.Case(SPOOF):
                                m.d.sync += word.eq(Cat(spoof[v].check_mac,
                                                        spoof[v].check_vlan,
                                                        spoof[v].check_ip, C(0, 13),
                                                        spoof[v].vlan))
                            for k in range(2):
                                with m.Case(MAC0 + 2 * k):
                                    m.d.sync += word.eq(spoof[v].macs[k][:32])
                                with m.Case(MAC0 + 2 * k + 1):
                                    m.d.sync += word.eq(spoof[v].macs[k][32:])
                                with m.Case(IP0 + k):
                                    m.d.sync += word.eq(spoof[v].ips[k])

        # --- writes -------------------------------------------------------------------------
        overrun = Signal(vfs)
        cleared = [Signal(4, name=f"vf{v}_cleared") for v in range(vfs)]
        with m.If(port.w_stb):
            with m.Switch(vf_set):
                for v in range(vfs):
                    with m.Case(v):
                        with m.If((vf_off >= PORT_REQUEST) & (vf_off < PORT_REPLY)):
                            with m.If(request[v]):
                                m.d.comb += overrun[v].eq(1)
                            with m.Else():
                                m.d.comb += [w_port.addr.eq(Cat(vf_off[:3], C(0, 1), C(v, 8))),
                                             w_port.data.eq(port.w_data), w_port.en.eq(1)]
                        with m.If(vf_off == PORT_MBOX):
                            with m.If(port.w_data[0]):
                                with m.If(request[v]):
                                    m.d.comb += overrun[v].eq(1)
                                with m.Elif(ctrl[v][0]):
                                    m.d.sync += request[v].eq(1)
                            with m.If(port.w_data[1]):
                                m.d.sync += reply[v].eq(0)
                        with m.If(vf_off == IRQ_MASK):
                            m.d.sync += mask[v].eq(port.w_data[0])
        with m.Elif(pf.w_stb):
            with m.Switch(pf_set):
                for v in range(vfs):
                    with m.Case(v):
                        with m.Switch(pf_off):
                            with m.Case(CTRL):
                                count = pf.w_data[16:20]
                                m.d.sync += ctrl[v].eq(Cat(
                                    pf.w_data[0], C(0, 7), pf.w_data[8:16],
                                    Mux(count > MAX_VF_RINGS, MAX_VF_RINGS, count),
                                    pf.w_data[20:22]))
                                with m.If(~pf.w_data[0]):      # disabled: mailbox idle
                                    m.d.sync += [request[v].eq(0), reply[v].eq(0),
                                                 mask[v].eq(0)]
                            for k in range(4):
                                with m.Case(WINDOW0 + 2 * k):
                                    m.d.sync += windows[v][k][PAGE_BITS:32].eq(
                                        pf.w_data[PAGE_BITS:])
                                with m.Case(WINDOW0 + 2 * k + 1):
                                    m.d.sync += windows[v][k][32:].eq(pf.w_data)
                            with m.Case(MBOX):
                                with m.If(pf.w_data[0]):
                                    m.d.sync += request[v].eq(0)
                                with m.If(pf.w_data[1]):
                                    m.d.sync += reply[v].eq(1)
                            for n, off in enumerate((OVERRUN, REG_DENIED, DMA_DENIED,
                                                     SPOOFED)):
                                with m.Case(off):
                                    m.d.comb += cleared[v][n].eq(1)
                            with m.Case(SPOOF):
                                m.d.sync += [spoof[v].check_mac.eq(pf.w_data[0]),
                                             spoof[v].check_vlan.eq(pf.w_data[1]),
                                             spoof[v].check_ip.eq(pf.w_data[2]),
                                             spoof[v].vlan.eq(pf.w_data[16:28])]
                            for k in range(2):
                                with m.Case(MAC0 + 2 * k):
                                    m.d.sync += spoof[v].macs[k][:32].eq(pf.w_data)
                                with m.Case(MAC0 + 2 * k + 1):
                                    m.d.sync += spoof[v].macs[k][32:].eq(pf.w_data[:16])
                                with m.Case(IP0 + k):
                                    m.d.sync += spoof[v].ips[k].eq(pf.w_data)
                        with m.If((pf_off >= PF_REPLY) & (pf_off < SPOOF)):
                            m.d.comb += [w_port.addr.eq(Cat(pf_off[:3], C(1, 1), C(v, 8))),
                                         w_port.data.eq(pf.w_data), w_port.en.eq(1)]

        # --- refusal counters (a write clears; the count of that clock is lost with it) -----
        for v in range(vfs):
            dma = sum(self.dma_denied[k][v] for k in range(DMA_DENIAL_SOURCES))
            events = (overrun[v], self.reg_denied[v], dma, self.spoofed[v])
            for n, event in enumerate(events):
                count = counters[v][n]
                with m.If(cleared[v][n]):
                    m.d.sync += count.eq(0)
                with m.Else():          # saturating
                    total = count + event
                    m.d.sync += count.eq(Mux(total > 0xFFFF_FFFF, 0xFFFF_FFFF, total))
        return m
