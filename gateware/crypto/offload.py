# Ref: docs/crypto.md "Offload queue"; RFC 8446 §7.1 (key schedule), §5.2-5.3 (records);
#      RFC 7748 §6.1 (X25519 for ECDHE)
"""OffloadEngine: the handshake offload block, a command processor over the crypto cores and
the key slots.

The host posts :class:`~.commands.OffloadCommand` entries in a command ring in its memory and
writes the producer index; the engine fetches each (one 8-beat AXI4 burst), checks the slots it
names against the operation's policy (slot kinds; export only where the administrator's
``ctrl.allow_export`` allows it), runs it on the cores, and writes a
:class:`~.commands.OffloadCompletion` at the same index of the completion ring. Secrets move
only between the key slots and the cores: no register, completion or DMA write carries a
slot's bytes, except EXPORT of a key made exportable under that policy.

One command at a time, in order. SEAL/OPEN move text 16 bytes at a time (a 2-beat read burst,
the GCM block, a 2-beat write burst with strobes); OPEN runs twice, first without writing, so
a record whose tag does not match leaves the destination untouched.

The register block ``offload`` (:meth:`OffloadEngine.block`) has read latency 2.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..axi import BURST_INCR, CACHE_MODIFIABLE, PROT_NONSECURE, RESP_OKAY, AxiSignature
from ..csr import CsrSignature
from ..regmap import Access, Block, Field, Register
from .commands import (
    AEAD_AAD_MAX,
    EXPAND_KINDS,
    FLAG_CONTEXT,
    FLAG_EXPORTABLE,
    NO_SLOT,
    OffloadCommand,
    OffloadCompletion,
    OffloadOp,
    OffloadStatus,
    label_index,
)
from .gcm import Aes128Gcm
from .hkdf import LABELS, Hkdf, HkdfOp
from .key_slots import KeySlots, SlotKind
from .x25519 import X25519

__all__ = ["OffloadEngine"]

# register word offsets
CMD_BASE_LO, CMD_BASE_HI, CPL_BASE_LO, CPL_BASE_HI, CTRL, PROD, CONS = range(7)
STATUS, COMMANDS, ERRORS, DENIED, LAST_CYCLES, SLOTS = range(7, 13)
CTRL_SIZE_SHIFT = 4


class OffloadEngine(wiring.Component):
    """Attributes
    ----------
    csr : In(CsrSignature(4)), the ``offload`` registers
    axi : Out(AxiSignature(64, 64, 1)), host memory
    irq : Out(1), a pulse per completion written
    busy : Out(1), a command or a reset is in progress (``status.busy``)
    """

    read_latency = 2

    def __init__(self, slots: int = 64):
        self.slots = KeySlots(slots)
        super().__init__({
            "csr": In(CsrSignature(4)),
            "axi": Out(AxiSignature(64, 64, 1)),
            "irq": Out(1),
            "busy": Out(1),
        })

    def block(self, name: str = "offload") -> Block:
        rw, ro = Access.RW, Access.RO
        return Block(name, "Handshake offload engine: command ring, completion ring, policy.", (
            Register("cmd_base", CMD_BASE_LO, "command ring base address", (
                Field("addr", 6, 26, rw, "bits 31:6 (64-byte aligned)"),), part="lo"),
            Register.word("cmd_base", CMD_BASE_HI, rw, "command ring base address", part="hi"),
            Register("cpl_base", CPL_BASE_LO, "completion ring base address", (
                Field("addr", 6, 26, rw, "bits 31:6 (64-byte aligned)"),), part="lo"),
            Register.word("cpl_base", CPL_BASE_HI, rw, "completion ring base address",
                          part="hi"),
            Register("ctrl", CTRL, "engine control.", (
                Field("enable", 0, 1, rw, "fetch and run commands"),
                Field("size_log2", CTRL_SIZE_SHIFT, 4, rw, "both rings have 2**size_log2 "
                      "entries of 64 bytes"),
                Field("allow_export", 8, 1, rw, "policy: TRAFFIC_KEYS may make exportable keys "
                      "and EXPORT may read them (for a record-layer user such as kTLS)"),
                Field("reset", 31, 1, rw, "write 1: after the command in progress, zeroize "
                      "every key slot and return cons to 0 (function reset); reads 1 until "
                      "done"))),
            Register.word("prod", PROD, rw, "host producer index of commands (free-running)",
                          width=16),
            Register.word("cons", CONS, ro, "card consumer index: commands completed "
                          "(free-running)", width=16),
            Register("status", STATUS, "engine status.", (
                Field("busy", 0, 1, ro, "a command is in progress"),
                Field("slots_ready", 1, 1, ro, "the key slots are not being zeroized"))),
            Register.word("commands", COMMANDS, ro, "commands completed"),
            Register.word("errors", ERRORS, ro, "commands completed with a status other than "
                          "OK"),
            Register.word("denied", DENIED, ro, "commands refused with POLICY_DENIED"),
            Register.word("last_cycles", LAST_CYCLES, ro, "core clocks the last command took "
                          "(as its completion's cycles)"),
            Register.word("slots", SLOTS, ro, "key slots on the card", reset=self.slots.slots),
        ), self.read_latency)

    def elaborate(self, platform):
        m = Module()
        m.submodules.slots = slots = self.slots
        m.submodules.hkdf = hkdf = Hkdf()
        m.submodules.x25519 = ecc = X25519()
        m.submodules.gcm = gcm = Aes128Gcm()
        axi, csr = self.axi, self.csr
        n_slots = slots.slots

        # --- registers ---------------------------------------------------------------------
        cmd_base, cpl_base = Signal(64), Signal(64)
        enable, allow_export, reset_req = Signal(), Signal(), Signal()
        size_log2 = Signal(4)
        prod, cons = Signal(16), Signal(16)
        running = Signal()
        m.d.comb += self.busy.eq(running | reset_req)
        commands, errors, denied, last_cycles = (Signal(32, name=n) for n in
                                                 ("commands", "errors", "denied", "last_cycles"))
        ctrl_word = Cat(enable, C(0, 3), size_log2, allow_export, C(0, 22), reset_req)
        words = {CMD_BASE_LO: cmd_base[:32], CMD_BASE_HI: cmd_base[32:],
                 CPL_BASE_LO: cpl_base[:32], CPL_BASE_HI: cpl_base[32:], CTRL: ctrl_word,
                 PROD: prod, CONS: cons, STATUS: Cat(running, slots.ready), COMMANDS: commands,
                 ERRORS: errors, DENIED: denied, LAST_CYCLES: last_cycles,
                 SLOTS: C(n_slots, 32)}
        word = Signal(32)
        with m.Switch(csr.addr):
            for addr, value in words.items():
                with m.Case(addr):
                    m.d.sync += word.eq(value)
            with m.Default():
                m.d.sync += word.eq(0)
        m.d.sync += csr.r_data.eq(word)
        with m.If(csr.w_stb):
            w = csr.w_data
            with m.Switch(csr.addr):
                with m.Case(CMD_BASE_LO):
                    m.d.sync += cmd_base[:32].eq(w & ~0x3F)
                with m.Case(CMD_BASE_HI):
                    m.d.sync += cmd_base[32:].eq(w)
                with m.Case(CPL_BASE_LO):
                    m.d.sync += cpl_base[:32].eq(w & ~0x3F)
                with m.Case(CPL_BASE_HI):
                    m.d.sync += cpl_base[32:].eq(w)
                with m.Case(CTRL):
                    m.d.sync += [enable.eq(w[0]), size_log2.eq(w[CTRL_SIZE_SHIFT:][:4]),
                                 allow_export.eq(w[8])]
                    with m.If(w[31]):
                        m.d.sync += reset_req.eq(1)
                with m.Case(PROD):
                    m.d.sync += prod.eq(w[:16])

        # --- the command and its operands ---------------------------------------------------
        cmd = Signal(OffloadCommand)
        cpl = Signal(OffloadCompletion)
        a_kind, b_kind = Signal(3), Signal(3)
        a_data, b_data = Signal(256), Signal(256)
        pool = Signal(256)                  # the entropy pool (never leaves the engine)
        status = Signal(8)
        result = Signal(256)
        result_len = Signal(16)
        out_kind = Signal(3)
        step = Signal(2)                    # which HKDF call of a multi-call command
        cycles = Signal(32)
        m.d.sync += cycles.eq(cycles + 1)
        started = Signal(32)
        index = Signal(16)
        slot_mask = Signal(16)
        m.d.comb += slot_mask.eq((1 << size_log2) - 1)
        beat = Signal(4)
        axi_err = Signal()
        operand = cmd.operand.as_value()
        op = cmd.op

        # AXI defaults: INCR bursts of 64-bit beats, ID 0
        for p in ("ar", "aw"):
            m.d.comb += [getattr(axi, f"{p}size").eq(3), getattr(axi, f"{p}burst").eq(BURST_INCR),
                         getattr(axi, f"{p}cache").eq(CACHE_MODIFIABLE),
                         getattr(axi, f"{p}prot").eq(PROT_NONSECURE)]

        # --- slot kinds the policy asks for ----------------------------------------------
        def is_kind(kind, *kinds):
            return Cat(*(kind == k for k in kinds)).any()

        label_ok = Signal()
        label_src, label_dst = Signal(3), Signal(3)
        with m.Switch(cmd.label):
            for label, (src_kind, dst_kind) in EXPAND_KINDS.items():
                with m.Case(label_index(label)):
                    m.d.comb += [label_ok.eq(1), label_src.eq(src_kind), label_dst.eq(dst_kind)]
        dst_ok = cmd.dst < n_slots
        a_set = a_kind != SlotKind.EMPTY

        # --- HKDF requests by command and step -------------------------------------------
        req = hkdf.request.payload
        hk_key, hk_data = Signal(256), Signal(256)
        m.d.comb += [req.key.eq(hk_key), req.data.eq(hk_data), req.key_len.eq(32),
                     req.length.eq(32)]
        with m.Switch(op):
            with m.Case(OffloadOp.SEED):
                m.d.comb += [req.op.eq(HkdfOp.EXTRACT), hk_key.eq(pool), hk_data.eq(operand),
                             req.data_len.eq(32)]
            with m.Case(OffloadOp.KEYGEN):
                # step 0: the private key, HMAC(pool, entropy[0:31] || 1); step 1: the new
                # pool, HMAC(pool, entropy[0:31] || 2), so a key cannot be computed back
                m.d.comb += [req.op.eq(HkdfOp.EXTRACT), hk_key.eq(pool),
                             hk_data.eq(Cat(operand[:248], Mux(step == 0, C(1, 8), C(2, 8)))),
                             req.data_len.eq(32)]
            with m.Case(OffloadOp.EXTRACT):
                m.d.comb += [req.op.eq(HkdfOp.EXTRACT),
                             hk_key.eq(Mux(cmd.slot_a == NO_SLOT, 0, a_data)),
                             hk_data.eq(Mux(cmd.slot_b == NO_SLOT, 0, b_data)),
                             req.data_len.eq(32)]
            with m.Case(OffloadOp.EXPAND):
                m.d.comb += [req.op.eq(HkdfOp.EXPAND_LABEL), hk_key.eq(a_data),
                             hk_data.eq(operand), req.label.eq(cmd.label),
                             req.data_len.eq(Mux(cmd.flags[0] & FLAG_CONTEXT, 32, 0))]
            with m.Case(OffloadOp.TRAFFIC_KEYS):
                m.d.comb += [req.op.eq(HkdfOp.EXPAND_LABEL), hk_key.eq(a_data),
                             req.label.eq(Mux(step == 0, LABELS.index("key"),
                                              LABELS.index("iv"))),
                             req.length.eq(Mux(step == 0, 16, 12))]
            with m.Case(OffloadOp.FINISHED):
                m.d.comb += [req.op.eq(HkdfOp.EXTRACT), hk_key.eq(a_data), hk_data.eq(operand),
                             req.data_len.eq(32)]

        # --- AEAD text: one block between read and write ---------------------------------
        off = Signal(17)                    # text bytes done
        left = Signal(17)
        m.d.comb += left.eq(cmd.length - off)
        block = Signal(128)
        out_block = Signal(128)
        out_count = Signal(5)
        dry = Signal()                      # OPEN's first pass: check the tag, write nothing
        aad_sent = Signal()
        count = Signal(5)
        m.d.comb += count.eq(Mux(left >= 16, 16, left))
        nonce = Signal(96)
        m.d.comb += nonce.eq(a_data[128:224] ^ Cat(C(0, 32), operand[:64]))

        def write_slot(slot, kind, value):
            m.d.comb += [slots.write.valid.eq(1), slots.write.payload.slot.eq(slot),
                         slots.write.payload.kind.eq(kind), slots.write.payload.data.eq(value)]

        def finish(code, next_state="CPL_ADDR"):
            m.d.sync += status.eq(code)
            m.next = next_state

        def check():
            """Policy: each operation's slots must exist and have the kinds it takes."""
            S, K = OffloadStatus, SlotKind
            op = cmd.op

            def need_a(*kinds):
                """slot_a holds one of ``kinds``."""
                return a_set & Cat(*(a_kind == k for k in kinds)).any()

            def denied_or_handle():
                return Mux(a_set, S.POLICY_DENIED, S.BAD_HANDLE)

            def writes(kind, next_state, *kinds):
                """A command that writes slot ``dst`` (which must exist) from ``slot_a``
                (which must hold one of ``kinds``, if any are given)."""
                with m.If(~dst_ok):
                    finish(S.BAD_HANDLE)
                if kinds:
                    with m.Elif(~need_a(*kinds)):
                        finish(denied_or_handle())
                with m.Else():
                    m.d.sync += out_kind.eq(kind)
                    m.next = next_state

            with m.Switch(op):
                with m.Case(OffloadOp.NOP):
                    finish(S.OK)
                with m.Case(OffloadOp.SEED):
                    m.next = "HKDF"
                with m.Case(OffloadOp.KEYGEN):
                    writes(K.PRIVATE_KEY, "HKDF")
                with m.Case(OffloadOp.DERIVE):
                    writes(K.SHARED_SECRET, "ECC", K.PRIVATE_KEY)
                with m.Case(OffloadOp.EXTRACT):
                    salt_ok = (cmd.slot_a == NO_SLOT) | (a_kind == K.SECRET)
                    ikm_ok = (cmd.slot_b == NO_SLOT) | (b_kind == K.SHARED_SECRET)
                    salt_empty = (cmd.slot_a != NO_SLOT) & (a_kind == K.EMPTY)
                    ikm_empty = (cmd.slot_b != NO_SLOT) & (b_kind == K.EMPTY)
                    with m.If(~dst_ok | salt_empty | ikm_empty):
                        finish(S.BAD_HANDLE)
                    with m.Elif(~salt_ok | ~ikm_ok):
                        finish(S.POLICY_DENIED)
                    with m.Else():
                        m.d.sync += out_kind.eq(K.SECRET)
                        m.next = "HKDF"
                with m.Case(OffloadOp.EXPAND):
                    with m.If(~dst_ok | ~a_set):
                        finish(S.BAD_HANDLE)
                    with m.Elif(~label_ok | (a_kind != label_src)):
                        finish(S.POLICY_DENIED)
                    with m.Else():
                        m.d.sync += out_kind.eq(label_dst)
                        m.next = "HKDF"
                with m.Case(OffloadOp.TRAFFIC_KEYS):
                    writes(Mux(cmd.flags[0] & FLAG_EXPORTABLE & allow_export,
                               K.AEAD_KEY_EXPORTABLE, K.AEAD_KEY), "HKDF", K.TRAFFIC_SECRET)
                with m.Case(OffloadOp.FINISHED):
                    with m.If(~need_a(K.FINISHED_KEY)):
                        finish(denied_or_handle())
                    with m.Else():
                        m.next = "HKDF"
                with m.Case(OffloadOp.SEAL, OffloadOp.OPEN):
                    with m.If(~need_a(K.AEAD_KEY, K.AEAD_KEY_EXPORTABLE)):
                        finish(denied_or_handle())
                    with m.Elif(cmd.aad_len > AEAD_AAD_MAX):
                        finish(S.BAD_LENGTH)
                    with m.Elif((cmd.src[:4] != 0) | (cmd.dst_addr[:4] != 0)):
                        finish(S.BAD_ADDRESS)
                    with m.Else():
                        m.d.sync += dry.eq(op == OffloadOp.OPEN)
                        m.next = "GCM_KEY"
                with m.Case(OffloadOp.EXPORT):
                    with m.If(~need_a(K.AEAD_KEY_EXPORTABLE, K.AEAD_KEY)):
                        finish(denied_or_handle())
                    with m.Elif((a_kind != K.AEAD_KEY_EXPORTABLE) | ~allow_export):
                        finish(S.POLICY_DENIED)
                    with m.Else():
                        m.d.sync += [result.eq(a_data[:224]), result_len.eq(28)]
                        finish(S.OK)
                with m.Case(OffloadOp.ZEROIZE):
                    with m.If(cmd.slot_a >= n_slots):
                        finish(S.BAD_HANDLE)
                    with m.Else():
                        m.d.sync += [out_kind.eq(K.EMPTY), a_data.eq(0)]
                        m.next = "ZEROIZE"
                with m.Default():
                    finish(S.BAD_OPCODE)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(reset_req):
                    m.d.comb += slots.zeroize_all.eq(1)
                    m.d.sync += [cons.eq(0), reset_req.eq(0)]
                with m.Elif(enable & (prod != cons) & slots.ready):
                    m.d.sync += [running.eq(1), index.eq(cons & slot_mask), started.eq(cycles),
                                 beat.eq(0), axi_err.eq(0), status.eq(OffloadStatus.OK),
                                 result.eq(0), result_len.eq(0), step.eq(0), out_kind.eq(0)]
                    m.next = "FETCH_ADDR"
            with m.State("FETCH_ADDR"):
                m.d.comb += [axi.arvalid.eq(1), axi.araddr.eq(cmd_base + (index << 6)),
                             axi.arlen.eq(7)]
                with m.If(axi.arready):
                    m.next = "FETCH_DATA"
            with m.State("FETCH_DATA"):
                m.d.comb += axi.rready.eq(1)
                with m.If(axi.rvalid):
                    m.d.sync += cmd.eq(Cat(cmd.as_value()[64:], axi.rdata))
                    with m.If(axi.rresp != RESP_OKAY):
                        m.d.sync += axi_err.eq(1)
                    with m.If(axi.rlast):
                        m.next = "READ_A"
            with m.State("READ_A"):
                with m.If(axi_err):
                    finish(OffloadStatus.DMA_ERROR)
                with m.Else():
                    m.d.comb += [slots.read_slot.valid.eq(1),
                                 slots.read_slot.payload.eq(cmd.slot_a)]
                    with m.If(slots.read_slot.ready):
                        m.next = "READ_B"
            with m.State("READ_B"):
                m.d.comb += [slots.read_data.ready.eq(1), slots.read_slot.valid.eq(1),
                             slots.read_slot.payload.eq(cmd.slot_b)]
                with m.If(slots.read_data.valid):
                    m.d.sync += [a_kind.eq(slots.read_data.payload.kind),
                                 a_data.eq(slots.read_data.payload.data)]
                    m.next = "READ_B_DATA"
            with m.State("READ_B_DATA"):
                m.d.comb += slots.read_data.ready.eq(1)
                with m.If(slots.read_data.valid):
                    m.d.sync += [b_kind.eq(slots.read_data.payload.kind),
                                 b_data.eq(slots.read_data.payload.data)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                check()

            with m.State("HKDF"):
                m.d.comb += hkdf.request.valid.eq(1)
                with m.If(hkdf.request.ready):
                    m.next = "HKDF_WAIT"
            with m.State("HKDF_WAIT"):
                m.d.comb += hkdf.result.ready.eq(1)
                value = hkdf.result.payload.as_value()
                with m.If(hkdf.result.valid):
                    with m.Switch(op):
                        with m.Case(OffloadOp.SEED):
                            m.d.sync += pool.eq(value)
                            finish(OffloadStatus.OK)
                        with m.Case(OffloadOp.KEYGEN):
                            with m.If(step == 0):
                                m.d.sync += [a_data.eq(value), step.eq(1)]
                                m.next = "HKDF"
                            with m.Else():
                                m.d.sync += pool.eq(value)
                                m.next = "ECC"
                        with m.Case(OffloadOp.TRAFFIC_KEYS):
                            with m.If(step == 0):
                                m.d.sync += [b_data.eq(value[:128]), step.eq(1)]
                                m.next = "HKDF"
                            with m.Else():
                                m.d.sync += b_data.eq(Cat(b_data[:128], value[:96], C(0, 32)))
                                m.next = "STORE"
                        with m.Case(OffloadOp.FINISHED):
                            m.d.sync += [result.eq(value), result_len.eq(32)]
                            finish(OffloadStatus.OK)
                        with m.Default():           # EXTRACT, EXPAND
                            m.d.sync += b_data.eq(value)
                            m.next = "STORE"

            with m.State("ECC"):
                m.d.comb += [ecc.request.valid.eq(1), ecc.request.payload.scalar.eq(a_data),
                             ecc.request.payload.u.eq(Mux(op == OffloadOp.KEYGEN, 9, operand))]
                with m.If(ecc.request.ready):
                    m.next = "ECC_WAIT"
            with m.State("ECC_WAIT"):
                m.d.comb += ecc.result.ready.eq(1)
                with m.If(ecc.result.valid):
                    with m.If(op == OffloadOp.KEYGEN):
                        # the slot keeps the private key; the host gets the public one
                        m.d.sync += [b_data.eq(a_data), result.eq(ecc.result.payload.value),
                                     result_len.eq(32)]
                        m.next = "STORE"
                    with m.Elif(ecc.result.payload.zero):
                        finish(OffloadStatus.BAD_POINT)
                    with m.Else():
                        m.d.sync += b_data.eq(ecc.result.payload.value)
                        m.next = "STORE"
            with m.State("STORE"):
                write_slot(cmd.dst, out_kind, b_data)
                with m.If(slots.write.ready):
                    finish(OffloadStatus.OK)
            with m.State("ZEROIZE"):
                write_slot(cmd.slot_a, SlotKind.EMPTY, 0)
                with m.If(slots.write.ready):
                    finish(OffloadStatus.OK)

            # --- SEAL / OPEN ------------------------------------------------------------
            with m.State("GCM_KEY"):
                m.d.comb += [gcm.key.valid.eq(1), gcm.key.payload.eq(a_data[:128])]
                with m.If(gcm.key.ready):
                    m.next = "GCM_START"
            with m.State("GCM_START"):
                m.d.comb += [gcm.start.valid.eq(1), gcm.start.payload.nonce.eq(nonce),
                             gcm.start.payload.decrypt.eq(op == OffloadOp.OPEN)]
                with m.If(gcm.start.ready):
                    m.d.sync += [off.eq(0), aad_sent.eq(cmd.aad_len == 0)]
                    m.next = "GCM_AAD"
            with m.State("GCM_AAD"):
                with m.If(aad_sent):
                    m.next = "TEXT_ADDR"
                with m.Else():
                    m.d.comb += [gcm.i.valid.eq(1),
                                 gcm.i.payload.block.eq(Cat(operand[192:256], C(0, 64))),
                                 gcm.i.payload.count.eq(cmd.aad_len), gcm.i.payload.aad.eq(1)]
                    with m.If(gcm.i.ready):
                        m.d.sync += aad_sent.eq(1)
            with m.State("TEXT_ADDR"):
                with m.If(cmd.length == 0):
                    m.d.sync += block.eq(0)
                    m.next = "TEXT_IN"
                with m.Else():
                    m.d.comb += [axi.arvalid.eq(1), axi.araddr.eq(cmd.src + off),
                                 axi.arlen.eq(1)]
                    with m.If(axi.arready):
                        m.next = "TEXT_DATA"
            with m.State("TEXT_DATA"):
                m.d.comb += axi.rready.eq(1)
                with m.If(axi.rvalid):
                    m.d.sync += block.eq(Cat(block[64:], axi.rdata))
                    with m.If(axi.rresp != RESP_OKAY):
                        m.d.sync += axi_err.eq(1)
                    with m.If(axi.rlast):
                        m.next = "TEXT_IN"
            with m.State("TEXT_IN"):
                # a text block goes in as its result comes out (the GCM's i and o handshake
                # together)
                m.d.comb += [gcm.i.valid.eq(1), gcm.i.payload.block.eq(block),
                             gcm.i.payload.count.eq(count), gcm.i.payload.last.eq(left <= 16),
                             gcm.o.ready.eq(1)]
                with m.If(gcm.i.ready & gcm.o.valid):
                    m.d.sync += [out_block.eq(gcm.o.payload.block), out_count.eq(count)]
                    with m.If(dry | (count == 0)):
                        m.next = "TEXT_NEXT"
                    with m.Else():
                        m.next = "OUT_ADDR"
            with m.State("OUT_ADDR"):
                m.d.comb += [axi.awvalid.eq(1), axi.awaddr.eq(cmd.dst_addr + off),
                             axi.awlen.eq(1)]
                with m.If(axi.awready):
                    m.d.sync += beat.eq(0)
                    m.next = "OUT_DATA"
            with m.State("OUT_DATA"):
                strobes = Cat(*(k < out_count for k in range(16)))
                m.d.comb += [axi.wvalid.eq(1), axi.wlast.eq(beat == 1),
                             axi.wdata.eq(Mux(beat == 0, out_block[:64], out_block[64:])),
                             axi.wstrb.eq(Mux(beat == 0, strobes[:8], strobes[8:]))]
                with m.If(axi.wready):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == 1):
                        m.next = "OUT_RESP"
            with m.State("OUT_RESP"):
                m.d.comb += axi.bready.eq(1)
                with m.If(axi.bvalid):
                    with m.If(axi.bresp != RESP_OKAY):
                        m.d.sync += axi_err.eq(1)
                    m.next = "TEXT_NEXT"
            with m.State("TEXT_NEXT"):
                m.d.sync += off.eq(off + 16)
                with m.If(left <= 16):
                    m.next = "GCM_TAG"
                with m.Else():
                    m.next = "TEXT_ADDR"
            with m.State("GCM_TAG"):
                m.d.comb += gcm.tag.ready.eq(1)
                tag = gcm.tag.payload.tag.as_value()
                with m.If(gcm.tag.valid):
                    with m.If(axi_err):
                        finish(OffloadStatus.DMA_ERROR)
                    with m.Elif(op == OffloadOp.SEAL):
                        m.d.sync += [result.eq(tag), result_len.eq(16)]
                        finish(OffloadStatus.OK)
                    with m.Elif(tag != operand[64:192]):
                        finish(OffloadStatus.BAD_TAG)
                    with m.Elif(dry):
                        m.d.sync += dry.eq(0)           # the tag matches: now write
                        m.next = "GCM_START"
                    with m.Else():
                        finish(OffloadStatus.OK)

            # --- the completion -------------------------------------------------------------
            with m.State("CPL_ADDR"):
                m.d.sync += [cpl.tag.eq(cmd.tag), cpl.status.eq(status),
                             cpl.kind.eq(Mux(status == OffloadStatus.OK, out_kind, 0)),
                             cpl.phase.eq(~(cons >> size_log2)[0]), cpl.length.eq(result_len),
                             cpl.cycles.eq(cycles - started), cpl.result.eq(result), beat.eq(0)]
                m.next = "CPL_ADDR2"
            with m.State("CPL_ADDR2"):
                m.d.comb += [axi.awvalid.eq(1), axi.awaddr.eq(cpl_base + (index << 6)),
                             axi.awlen.eq(7)]
                with m.If(axi.awready):
                    m.next = "CPL_DATA"
            with m.State("CPL_DATA"):
                m.d.comb += [axi.wvalid.eq(1), axi.wdata.eq(cpl.as_value()[:64]),
                             axi.wstrb.eq(0xFF), axi.wlast.eq(beat == 7)]
                with m.If(axi.wready):
                    m.d.sync += [cpl.eq(cpl.as_value() >> 64), beat.eq(beat + 1)]
                    with m.If(beat == 7):
                        m.next = "CPL_RESP"
            with m.State("CPL_RESP"):
                m.d.comb += axi.bready.eq(1)
                with m.If(axi.bvalid):
                    m.d.sync += [cons.eq(cons + 1), running.eq(0), commands.eq(commands + 1),
                                 last_cycles.eq(cycles - started),
                                 # nothing of the command's secrets stays in the engine
                                 a_data.eq(0), b_data.eq(0), result.eq(0), block.eq(0),
                                 out_block.eq(0)]
                    m.d.comb += self.irq.eq(1)
                    with m.If(status != OffloadStatus.OK):
                        m.d.sync += errors.eq(errors + 1)
                    with m.If(status == OffloadStatus.POLICY_DENIED):
                        m.d.sync += denied.eq(denied + 1)
                    m.next = "IDLE"
        return m
