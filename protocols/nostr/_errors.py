"""Nostr errors: untrusted input that breaks a NIP, named for what broke.

::

    ProtocolError                 (protocols) the input broke the protocol
    └── NostrError                anything a Nostr parser or cipher refuses
        ├── InvalidKey            a key that is not a valid secp256k1 key (hex, nsec, npub)
        ├── InvalidEvent          an event of the wrong shape, a wrong id or a bad signature
        ├── DecryptError          a ciphertext that does not open (NIP-04, NIP-44, NIP-59)
        └── RelayMessageError     a relay frame that is not a NIP-01 relay message

Every message is one line and safe to log: it never holds a secret key or
decrypted text. Errors of coincurve and cryptography are translated here,
at the boundary (``raise ... from exc``).
"""

from __future__ import annotations

from .._errors import ProtocolError

__all__ = ["DecryptError", "InvalidEvent", "InvalidKey", "NostrError", "RelayMessageError"]


class NostrError(ProtocolError):
    """Base of every error of ``protocols.nostr``."""


class InvalidKey(NostrError):
    """A secret or public key that is malformed or not on the curve."""


class InvalidEvent(NostrError):
    """An event whose shape, id or signature is wrong (NIP-01)."""


class DecryptError(NostrError):
    """A ciphertext that cannot be opened: bad encoding, version, MAC or padding."""


class RelayMessageError(NostrError):
    """A frame from a relay that is not a relay message of NIP-01."""
