"""Nostr's wire format and cryptography: NIP-01, -04, -10, -17, -19, -44, -59.

Pure functions over untrusted input: a parser or cipher either returns what
it promises or raises a :class:`NostrError` (a ``ProtocolError``), never
anything else. secp256k1 and BIP-340 come from coincurve; AES, ChaCha20 and
HMAC from cryptography and the standard library. Nothing here does I/O.
"""

from __future__ import annotations

from ._errors import DecryptError, InvalidEvent, InvalidKey, NostrError, RelayMessageError
from ._event import Event, event_id, parse_event, reply_tags, rumor, sign, verify
from ._keys import (
    bech32_decode,
    bech32_encode,
    npub_encode,
    nsec_encode,
    parse_public_key,
    parse_secret_key,
    public_key_of,
    shared_x,
)
from ._nip04 import nip04_decrypt, nip04_encrypt
from ._nip44 import calc_padded_len, conversation_key, message_keys, nip44_decrypt, nip44_encrypt
from ._nip59 import (
    KIND_GIFT_WRAP,
    KIND_PRIVATE_MESSAGE,
    KIND_SEAL,
    make_private_message,
    seal,
    unwrap,
    wrap,
)
from ._relay import (
    RelayAuth,
    RelayClosed,
    RelayEose,
    RelayEvent,
    RelayMessage,
    RelayNotice,
    RelayOk,
    close_message,
    event_message,
    parse_relay_message,
    req_message,
)

__all__ = [
    "KIND_GIFT_WRAP",
    "KIND_PRIVATE_MESSAGE",
    "KIND_SEAL",
    "DecryptError",
    "Event",
    "InvalidEvent",
    "InvalidKey",
    "NostrError",
    "RelayAuth",
    "RelayClosed",
    "RelayEose",
    "RelayEvent",
    "RelayMessage",
    "RelayMessageError",
    "RelayNotice",
    "RelayOk",
    "bech32_decode",
    "bech32_encode",
    "calc_padded_len",
    "close_message",
    "conversation_key",
    "event_id",
    "event_message",
    "make_private_message",
    "message_keys",
    "nip04_decrypt",
    "nip04_encrypt",
    "nip44_decrypt",
    "nip44_encrypt",
    "npub_encode",
    "nsec_encode",
    "parse_event",
    "parse_public_key",
    "parse_relay_message",
    "parse_secret_key",
    "public_key_of",
    "reply_tags",
    "req_message",
    "rumor",
    "seal",
    "shared_x",
    "sign",
    "unwrap",
    "verify",
    "wrap",
]
