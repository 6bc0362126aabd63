# Ref: RFC 7748 §5; docs/crypto.md "X25519"
"""X25519 scalar multiplication: a field-arithmetic engine running a fixed program.

Field elements are 15 limbs of 17 bits, kept "weakly reduced" (each limb below 2**18, the value
anything congruent mod p = 2**255 - 19), in a register file of 32 elements. One arithmetic unit
does all the work:

* MUL: Horner over a's limbs, top first: ``acc = acc * 2**17 + a_i * b`` with the 15 limb
  products a_i * b_k in 15 18x18 multipliers (ECP5 MULT18X18D) per clock; ``* 2**17`` moves each
  45-bit column up one place and the top column to column 0 times 19 (2**255 = 19 mod p). 15
  clocks. MULS does the last step only (a one-limb constant: a24). ADD/SUB add limb by limb
  (SUB adds 4p first, so limbs never go negative): one clock.
* Three parallel carry steps bring every limb below 2**18 again, and the result is written back.

The program (:mod:`.x25519_program`) issues in order; an operation waits while one of its
registers has a write outstanding (a scoreboard). Nothing depends on the data but the register
renaming that does the ladder's conditional swaps; renaming within a step maps registers one to
one, so it cannot change a stall, and each step starts with every write done, so the renaming
of the step before cannot either: every scalar and point take the same number of clocks. At the
end a serial unit makes the result canonical (below p) and reports an all-zero result.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .x25519_program import A24, INVERT, LADDER, LIMB_BITS, LIMBS, REG, RENAMED, Kind

__all__ = ["X25519", "X25519Request", "X25519Result"]

#: ``scalar`` and ``u`` as RFC 7748's 32-byte strings, byte 0 in bits 7:0 (little-endian).
X25519Request = data.StructLayout({"scalar": 256, "u": 256})
#: The u-coordinate of scalar * u (little-endian); ``zero``: it is all zeros (a small-order
#: point: RFC 7748 §6.1 says to abort).
X25519Result = data.StructLayout({"value": 256, "zero": 1})

W = 18                  # stored limb width
COL = 45                # accumulator column width (bound: 15 * 19 * 2**36 < 2**44.2)
FOUR_P = [4 * ((1 << LIMB_BITS) - 19)] + [4 * ((1 << LIMB_BITS) - 1)] * (LIMBS - 1)
PROGRAM = LADDER + INVERT


def _limbs(value: Value, width: int) -> list[Value]:
    return [value[width * k:width * (k + 1)] for k in range(LIMBS)]


def _carry(cols: list[Value]) -> list[Value]:
    """One parallel carry step (column 0 takes 19 times the top column's carry)."""
    mask = (1 << LIMB_BITS) - 1
    out = [(cols[k] & mask) + (cols[k - 1] >> LIMB_BITS) for k in range(LIMBS)]
    out[0] = (cols[0] & mask) + (cols[-1] >> LIMB_BITS) * 19
    return out


class X25519(wiring.Component):
    """One scalar multiplication at a time.

    Attributes
    ----------
    request : In(stream.Signature(X25519Request))
    result : Out(stream.Signature(X25519Result))
    """

    request: In(stream.Signature(X25519Request))
    result: Out(stream.Signature(X25519Result))

    def elaborate(self, platform):
        m = Module()
        m.submodules.rf = rf = Memory(shape=W * LIMBS, depth=32, init=[])
        wr = rf.write_port()
        rd_a = rf.read_port(transparent_for=(wr,))
        rd_b = rf.read_port(transparent_for=(wr,))

        scalar = Signal(256)
        pending = Signal(32)
        set_pending = Signal(32)
        clear_pending = Signal(32)
        m.d.sync += pending.eq((pending | set_pending) & ~clear_pending)

        # --- program sequencing: the decoded next operation, by physical address ----------
        rom = Array(Const(o.kind | o.dst << 2 | o.a << 7 | o.b << 12, 17) for o in PROGRAM)
        reps = Array(Const(o.rep, 7) for o in PROGRAM)
        last_ladder, last = len(LADDER) - 1, len(PROGRAM) - 1
        pc = Signal(range(len(PROGRAM)))
        it = Signal(7)
        t = Signal(8)
        d_kind = Signal(2)
        d_dst, d_a, d_b = Signal(5), Signal(5), Signal(5)
        d_valid = Signal()
        issue = Signal()
        decode = Signal()           # load d_* from (n_pc, n_it, n_t)
        first_decode = Signal()
        n_pc, n_it, n_t = Signal.like(pc), Signal.like(it), Signal.like(t)

        def rename(addr, bit):
            return Mux((addr >= min(RENAMED)) & (addr <= max(RENAMED)), addr ^ bit, addr)

        word = Signal(17)
        m.d.comb += word.eq(rom[n_pc])
        kind, dst, a, b = word[0:2], word[2:7], word[7:12], word[12:17]
        bit = Mux(n_pc <= last_ladder, scalar.bit_select(n_t, 1), 0)
        with m.If(decode):
            m.d.sync += [
                d_kind.eq(kind), d_dst.eq(rename(dst, bit)),
                d_a.eq(rename(Mux(n_it != 0, dst, a), bit)),
                d_b.eq(rename(Mux(n_it != 0, dst, b), bit)),
                d_valid.eq(1), pc.eq(n_pc), it.eq(n_it), t.eq(n_t),
            ]
        # the operation after the one in d_* (used when it issues)
        rep = Signal(7)
        m.d.comb += rep.eq(reps[pc])
        done_program = Signal()
        with m.If(it + 1 < rep):
            m.d.comb += [n_pc.eq(pc), n_it.eq(it + 1), n_t.eq(t)]
        with m.Elif(pc == last_ladder):
            m.d.comb += [n_pc.eq(Mux(t == 0, last_ladder + 1, 0)), n_it.eq(0),
                         n_t.eq(Mux(t == 0, 0, t - 1))]
        with m.Elif(pc == last):
            m.d.comb += [n_pc.eq(pc), n_it.eq(0), n_t.eq(t), done_program.eq(1)]
        with m.Else():
            m.d.comb += [n_pc.eq(pc + 1), n_it.eq(0), n_t.eq(t)]

        # --- front: issue, load operands, multiply ----------------------------------------
        a_sh = Signal(W * LIMBS)
        b_reg = Signal(W * LIMBS)
        n = Signal(range(LIMBS + 1))
        f_kind, f_dst = Signal(2), Signal(5)
        prod = [Signal(2 * W, name=f"prod{k}") for k in range(LIMBS)]
        p_valid, p_first, p_last = Signal(), Signal(), Signal()
        p_dst = Signal(5)
        running = Signal()          # the program is issuing
        front_idle = Signal()
        # A ladder step (and the inversion) starts with every write done: across the step
        # boundary the renaming changes with the scalar bit, and so would the stalls.
        barrier = ((pc == 0) | (pc == last_ladder + 1)) & (it == 0) & pending.any()
        hazard = (pending.bit_select(d_a, 1) | pending.bit_select(d_b, 1)
                  | pending.bit_select(d_dst, 1) | barrier)
        m.d.comb += [rd_a.addr.eq(d_a), rd_b.addr.eq(d_b)]
        m.d.sync += p_valid.eq(0)
        with m.FSM(name="front"):
            with m.State("IDLE"):
                m.d.comb += front_idle.eq(1)
                with m.If(running & d_valid & ~hazard):
                    m.d.comb += [issue.eq(1), set_pending.eq(1 << d_dst)]
                    m.d.sync += [f_kind.eq(d_kind), f_dst.eq(d_dst)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                with m.If((f_kind == Kind.ADD) | (f_kind == Kind.SUB)):
                    for k, (x, y) in enumerate(zip(_limbs(rd_a.data, W), _limbs(rd_b.data, W),
                                                   strict=True)):
                        m.d.sync += prod[k].eq(Mux(f_kind == Kind.ADD, x + y,
                                                   x + FOUR_P[k] - y))
                    m.d.sync += [p_valid.eq(1), p_first.eq(1), p_last.eq(1), p_dst.eq(f_dst)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [
                        a_sh.eq(Mux(f_kind == Kind.MULS, rd_a.data << (W * (LIMBS - 1)),
                                    rd_a.data)),
                        b_reg.eq(rd_b.data),
                        n.eq(Mux(f_kind == Kind.MULS, 1, LIMBS)),
                        p_first.eq(1),
                    ]
                    m.next = "MULT"
            with m.State("MULT"):
                top = a_sh[W * (LIMBS - 1):]
                for k, y in enumerate(_limbs(b_reg, W)):
                    m.d.sync += prod[k].eq(top * y)
                m.d.sync += [p_valid.eq(1), p_last.eq(n == 1), p_dst.eq(f_dst),
                             a_sh.eq(a_sh << W), n.eq(n - 1)]
                with m.If(p_valid):
                    m.d.sync += p_first.eq(0)
                with m.If(n == 1):
                    m.next = "IDLE"
        # (p_first: set in LOAD for the first product; cleared after the first MULT clock)
        m.d.comb += decode.eq(issue & ~done_program | first_decode)
        with m.If(issue & done_program):
            m.d.sync += d_valid.eq(0)

        # --- accumulate ---------------------------------------------------------------------
        acc = [Signal(COL, name=f"acc{k}") for k in range(LIMBS)]
        acc_done, acc_dst = Signal(), Signal(5)
        shifted = [(acc[-1] * 19)[:COL], *acc[:-1]]
        m.d.sync += acc_done.eq(0)
        with m.If(p_valid):
            for k in range(LIMBS):
                m.d.sync += acc[k].eq(Mux(p_first, prod[k], shifted[k] + prod[k]))
            m.d.sync += [acc_done.eq(p_last), acc_dst.eq(p_dst)]

        # --- three carry steps and the write-back -----------------------------------------
        c_valid = [Signal(name=f"c{j}_valid") for j in range(3)]
        c_dst = [Signal(5, name=f"c{j}_dst") for j in range(3)]
        c = [[Signal(w, name=f"c{j}_{k}") for k in range(LIMBS)]
             for j, w in enumerate((34, 22, W))]
        src_valid, src_dst, src = acc_done, acc_dst, acc
        for j in range(3):
            m.d.sync += [c_valid[j].eq(src_valid), c_dst[j].eq(src_dst)]
            m.d.sync += [r.eq(v) for r, v in zip(c[j], _carry(src), strict=True)]
            src_valid, src_dst, src = c_valid[j], c_dst[j], c[j]

        # --- control: load, run, drain, freeze, answer ------------------------------------
        u_limbs = Signal(W * LIMBS)
        fz = [Signal(W, name=f"fz{k}") for k in range(LIMBS)]     # value being frozen
        fw = [Signal(W, name=f"fw{k}") for k in range(LIMBS)]     # value + 19
        carry, carry_w = Signal(6), Signal(2)
        step = Signal(range(LIMBS + 1))
        rounds = Signal(range(5))
        value = Signal(255)
        zero = Signal()
        init = Signal(range(6))
        m.d.comb += [
            self.result.payload.value.eq(value),
            self.result.payload.zero.eq(zero),
        ]
        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                m.d.comb += self.request.ready.eq(1)
                with m.If(self.request.valid):
                    s = self.request.payload.scalar
                    u = self.request.payload.u
                    m.d.sync += [
                        scalar.eq(Cat(C(0, 3), s[3:254], C(1, 1), C(0, 1))),       # clamp
                        u_limbs.eq(Cat(*(Cat(u[LIMB_BITS * k:LIMB_BITS * (k + 1)], C(0, 1))
                                         for k in range(LIMBS)))),                  # 255 bits
                        init.eq(0),
                    ]
                    m.next = "INIT"
            with m.State("INIT"):
                values = [(REG["X1"], u_limbs), (REG["X3"], u_limbs), (REG["X2"], C(1)),
                          (REG["Z2"], C(0)), (REG["Z3"], C(1)), (REG["A24"], C(A24))]
                with m.Switch(init):
                    for k, (reg, v) in enumerate(values):
                        with m.Case(k):
                            m.d.comb += [wr.addr.eq(reg), wr.data.eq(v), wr.en.eq(1)]
                m.d.sync += init.eq(init + 1)
                with m.If(init == len(values) - 1):
                    # decode the first operation: step t = 254, pc 0
                    m.d.comb += [n_pc.eq(0), n_it.eq(0), n_t.eq(254), first_decode.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                with m.If(~d_valid & front_idle & ~p_valid & ~acc_done
                          & ~Cat(c_valid).any() & ~pending.any()):
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += rd_a.addr.eq(REG["RES"])
                m.next = "LATCH"
            with m.State("LATCH"):
                m.d.sync += [r.eq(v) for r, v in zip(fz, _limbs(rd_a.data, W), strict=True)]
                m.d.sync += [carry.eq(0), step.eq(0), rounds.eq(0)]
                m.next = "CARRY"
            with m.State("CARRY"):
                # a serial carry pass: the bottom limb is processed, the limbs rotate down
                v = fz[0] + carry
                with m.If(step < LIMBS):
                    m.d.sync += [r.eq(x) for r, x in zip(fz, [*fz[1:], v[:LIMB_BITS]],
                                                         strict=True)]
                    m.d.sync += [carry.eq(v[LIMB_BITS:]), step.eq(step + 1)]
                with m.Else():
                    m.d.sync += [fz[0].eq(fz[0] + carry * 19), carry.eq(0), step.eq(0),
                                 rounds.eq(rounds + 1)]
                    with m.If(rounds == 2):
                        m.d.sync += carry_w.eq(0)
                        m.d.sync += [r.eq(0) for r in fw]
                        m.next = "SUBTRACT"
            with m.State("SUBTRACT"):
                # w = value + 19; w >= 2**255 exactly when value >= p, and then w - 2**255
                # is the canonical value
                add = Mux(step == 0, 19, 0)
                w = fz[0] + add + carry_w
                m.d.sync += [r.eq(x) for r, x in zip(fz, [*fz[1:], fz[0]], strict=True)]
                m.d.sync += [r.eq(x) for r, x in zip(fw, [*fw[1:], w[:LIMB_BITS]],
                                                     strict=True)]
                m.d.sync += [carry_w.eq(w[LIMB_BITS:]), step.eq(step + 1)]
                with m.If(step == LIMBS - 1):
                    m.next = "PACK"
            with m.State("PACK"):
                over = carry_w[0]
                chosen = [Mux(over, y, x)[:LIMB_BITS] for x, y in zip(fz, fw, strict=True)]
                m.d.sync += [value.eq(Cat(*chosen)), zero.eq(~Cat(*chosen).any())]
                m.next = "ANSWER"
            with m.State("ANSWER"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.next = "IDLE"

        # --- write-back (after INIT, the only writer) --------------------------------------
        with m.If(c_valid[2]):
            m.d.comb += [wr.addr.eq(c_dst[2]), wr.data.eq(Cat(*c[2])), wr.en.eq(1),
                         clear_pending.eq(1 << c_dst[2])]
        return m
