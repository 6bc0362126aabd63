"""amaranth.sim helpers for packet streams (shared by the fast unit tests)."""

import random

from amaranth.sim import SimulatorContext

__all__ = ["recv_frame", "send_frame", "request"]


async def send_frame(ctx: SimulatorContext, port, frame: bytes, width: int, *,
                     error: bool = False, idle: float = 0.0, rng=random) -> None:
    """Drive ``frame`` on a packet stream ``port`` ``width`` bytes wide."""
    beats = [frame[i:i + width] for i in range(0, len(frame), width)]
    for n, chunk in enumerate(beats):
        while idle and rng.random() < idle:
            await ctx.tick()
        last = n == len(beats) - 1
        ctx.set(port.p, {"data": int.from_bytes(chunk, "little"),
                         "keep": (1 << len(chunk)) - 1, "first": n == 0, "last": last,
                         "error": error and last})
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


async def recv_frame(ctx: SimulatorContext, port, width: int, *, stall: float = 0.0,
                     rng=random, timeout: int = 100_000) -> tuple[bytes, int, int]:
    """Collect one frame from ``port``; returns ``(bytes, error, first_seen)``."""
    out = bytearray()
    first = None
    for _ in range(timeout):
        ready = not (stall and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.p)
        if valid and ready:
            if first is None:
                first = payload.first
            raw = payload.data.to_bytes(width, "little")
            out += bytes(raw[i] for i in range(width) if payload.keep >> i & 1)
            if payload.last:
                ctx.set(port.ready, 0)
                return bytes(out), payload.error, first
    raise TimeoutError("no frame")


async def request(ctx: SimulatorContext, req, res, payload: dict, *, timeout: int = 1000):
    """Offer ``payload`` on stream ``req`` until taken, then take one answer from stream ``res``
    (a table lookup and its result); returns the answer's payload."""
    ctx.set(req.payload, payload)
    ctx.set(req.valid, 1)
    await ctx.tick().until(req.ready)
    ctx.set(req.valid, 0)
    ctx.set(res.ready, 1)
    for _ in range(timeout):
        _, _, valid, answer = await ctx.tick().sample(res.valid, res.payload)
        if valid:
            ctx.set(res.ready, 0)
            return answer
    raise TimeoutError("no answer")
