# Ref: docs/crypto.md "Offload queue"; RFC 8446 §7.1 (key schedule), §5.3 (per-record nonce)
"""The offload queue's commands and completions, defined once for the engine, the driver, the
reference model and the docs.

A command is 64 bytes in the host's command ring; the card answers each with a 64-byte
completion at the same index of the completion ring. Slots are named by number (0..63); the
host never sees what a slot holds, only its kind. Structs are packed first field in the least
significant bits, little-endian in host memory (as :mod:`crossnic.gateware.layouts`).
"""

import enum

from amaranth.lib import data

from .hkdf import LABELS
from .key_slots import SlotKind

__all__ = ["OffloadOp", "OffloadStatus", "OffloadCommand", "OffloadCompletion", "NO_SLOT",
           "COMMAND_BYTES", "EXPAND_KINDS", "FLAG_CONTEXT", "FLAG_EXPORTABLE", "AEAD_AAD_MAX",
           "label_index"]

COMMAND_BYTES = 64
#: A slot operand of EXTRACT meaning "32 zero bytes" (no salt, no input keying material).
NO_SLOT = 0xFF
#: EXPAND: the operand is the context (a transcript hash); without it the context is empty.
FLAG_CONTEXT = 1
#: TRAFFIC_KEYS: make the AEAD key exportable, if the administrator's policy allows export.
FLAG_EXPORTABLE = 1
#: SEAL/OPEN: additional data bytes carried in the operand (a TLS 1.3 record header is 5).
AEAD_AAD_MAX = 8


class OffloadOp(enum.IntEnum):
    """What a command does; each checks the kinds of the slots it uses (policy by kind)."""
    NOP = 0
    SEED = 1            #: mix the operand (host entropy) into the card's entropy pool
    KEYGEN = 2          #: private key from the pool -> ``dst``; result: the public key
    DERIVE = 3          #: X25519(``slot_a`` private key, operand = peer key) -> ``dst``
    EXTRACT = 4         #: HKDF-Extract(salt ``slot_a``, IKM ``slot_b``) -> ``dst``
    EXPAND = 5          #: HKDF-Expand-Label(``slot_a``, ``label``, context) -> ``dst``
    TRAFFIC_KEYS = 6    #: key (16) and IV (12) of traffic secret ``slot_a`` -> ``dst``
    FINISHED = 7        #: result: HMAC(finished key ``slot_a``, operand = transcript hash)
    SEAL = 8            #: AES-128-GCM encrypt ``length`` bytes at ``src`` to ``dst_addr``
    OPEN = 9            #: decrypt and check the tag; nothing is written unless it matches
    EXPORT = 10         #: result: an exportable AEAD key and IV, if policy allows export
    ZEROIZE = 11        #: empty ``slot_a``


class OffloadStatus(enum.IntEnum):
    OK = 0
    BAD_OPCODE = 1
    BAD_HANDLE = 2      #: a slot number out of range, or an empty slot where a key is needed
    POLICY_DENIED = 3   #: a slot of the wrong kind for the operation, or export not allowed
    BAD_POINT = 4       #: the X25519 result is all zeros (a small-order peer key)
    BAD_TAG = 5         #: OPEN: the tag does not match (nothing was written)
    BAD_LENGTH = 6      #: ``aad_len`` above :data:`AEAD_AAD_MAX`
    BAD_ADDRESS = 7     #: ``src``/``dst_addr`` not 16-byte aligned
    DMA_ERROR = 8       #: host memory answered an access with an error


#: EXPAND: the kind a label's output gets, and the kind its secret must have (RFC 8446 §7.1).
#: Labels not listed ("key", "iv": use TRAFFIC_KEYS) are refused.
EXPAND_KINDS: dict[str, tuple[SlotKind, SlotKind]] = {
    "derived": (SlotKind.SECRET, SlotKind.SECRET),
    "c hs traffic": (SlotKind.SECRET, SlotKind.TRAFFIC_SECRET),
    "s hs traffic": (SlotKind.SECRET, SlotKind.TRAFFIC_SECRET),
    "c ap traffic": (SlotKind.SECRET, SlotKind.TRAFFIC_SECRET),
    "s ap traffic": (SlotKind.SECRET, SlotKind.TRAFFIC_SECRET),
    "c e traffic": (SlotKind.SECRET, SlotKind.TRAFFIC_SECRET),
    "exp master": (SlotKind.SECRET, SlotKind.SECRET),
    "res master": (SlotKind.SECRET, SlotKind.SECRET),
    "e exp master": (SlotKind.SECRET, SlotKind.SECRET),
    "ext binder": (SlotKind.SECRET, SlotKind.SECRET),
    "res binder": (SlotKind.SECRET, SlotKind.SECRET),
    "resumption": (SlotKind.SECRET, SlotKind.SECRET),
    "finished": (SlotKind.TRAFFIC_SECRET, SlotKind.FINISHED_KEY),
    "traffic upd": (SlotKind.TRAFFIC_SECRET, SlotKind.TRAFFIC_SECRET),
}


def label_index(label: str) -> int:
    return LABELS.index(label)


class OffloadCommand(data.Struct):
    """One command (64 bytes).

    ``operand`` by operation: SEED/KEYGEN host entropy (32 bytes); DERIVE the peer's public
    key; EXPAND (with :data:`FLAG_CONTEXT`) and FINISHED a transcript hash; SEAL/OPEN bytes
    0..7 the record sequence number (big-endian, XORed into the IV's last 8 bytes), 8..23 the
    expected tag (OPEN), 24..31 the additional data (``aad_len`` bytes).
    """
    op: 8
    slot_a: 8
    slot_b: 8
    dst: 8
    label: 8
    flags: 8
    aad_len: 8
    _reserved0: 8
    #: Echoed in the completion, for the host to match them.
    tag: 32
    #: SEAL/OPEN: text bytes at ``src`` (whole 16-byte blocks are read, so round the buffer up).
    length: 16
    _reserved1: 16
    src: 64
    dst_addr: 64
    operand: data.ArrayLayout(8, 32)


class OffloadCompletion(data.Struct):
    """The card's answer (64 bytes) at the command's index of the completion ring.

    ``phase`` is 1 on the first pass through the ring and flips on every wrap (as receive
    completions); it is in the last beat the card writes, so a host that sees it sees the
    whole entry. ``result`` holds public values only: a public key (KEYGEN), a Finished MAC
    (FINISHED), a tag (SEAL), or an exported key and IV (EXPORT); ``length`` says how many
    bytes. ``cycles``: core clocks the command took, from fetch to completion.
    """
    tag: 32
    status: 8
    #: The kind the command wrote to a slot (0: none, or the command failed).
    kind: 4
    _reserved0: 4
    length: 16
    cycles: 32
    _reserved1: 32
    result: data.ArrayLayout(8, 32)
    _reserved2: 127
    phase: 1
