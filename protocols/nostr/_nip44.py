"""NIP-44 v2 encryption: ECDH, HKDF, ChaCha20, HMAC-SHA256, padded lengths.

Exactly as the NIP specifies (and its official vectors check):
conversation key = HKDF-extract(salt ``nip44-v2``, the raw shared x); per
message HKDF-expand(conversation key, info=nonce, 76 bytes) gives the ChaCha20
key (32), ChaCha20 nonce (12) and HMAC key (32); the MAC covers nonce +
ciphertext; the payload is ``base64(0x02 || nonce || ciphertext || mac)``.
``cryptography``'s ChaCha20 takes a 16-byte nonce whose first 4 bytes are the
block counter: 4 zero bytes + the 12.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from ._errors import DecryptError
from ._keys import shared_x

__all__ = [
    "calc_padded_len",
    "conversation_key",
    "message_keys",
    "nip44_decrypt",
    "nip44_encrypt",
]

VERSION = 2
MIN_PLAINTEXT = 1
MAX_PLAINTEXT = 65535


def conversation_key(secret: bytes, public_hex: str) -> bytes:
    """The 32-byte key two parties share (symmetric); InvalidKey for bad keys."""
    return hmac.new(b"nip44-v2", shared_x(secret, public_hex), hashlib.sha256).digest()


def message_keys(conv_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """(chacha key, chacha nonce, hmac key) for one message: HKDF-expand to 76 bytes."""
    if len(conv_key) != 32 or len(nonce) != 32:
        raise ValueError("conversation key and nonce must be 32 bytes each")
    out, block = b"", b""
    for counter in range(1, 4):  # ceil(76 / 32) rounds of RFC 5869's expand
        block = hmac.new(conv_key, block + nonce + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:32], out[32:44], out[44:76]


def calc_padded_len(length: int) -> int:
    """NIP-44's padded length of a plaintext of ``length`` bytes (>= 1)."""
    if length <= 32:
        return 32
    next_power = 1 << (length - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((length - 1) // chunk + 1)


def _pad(plain: bytes) -> bytes:
    n = len(plain)
    if not MIN_PLAINTEXT <= n <= MAX_PLAINTEXT:
        raise ValueError(
            f"NIP-44 plaintext must be {MIN_PLAINTEXT}..{MAX_PLAINTEXT} bytes, not {n}"
        )
    return n.to_bytes(2, "big") + plain + bytes(calc_padded_len(n) - n)


def _unpad(padded: bytes) -> bytes:
    n = int.from_bytes(padded[:2], "big")
    plain = padded[2 : 2 + n]
    if n == 0 or len(plain) != n or len(padded) != 2 + calc_padded_len(n):
        raise DecryptError("NIP-44 payload has invalid padding")
    return plain


def _chacha(key: bytes, nonce12: bytes, data: bytes) -> bytes:
    cipher = Cipher(algorithms.ChaCha20(key, b"\x00\x00\x00\x00" + nonce12), mode=None)
    return cipher.encryptor().update(data)


def nip44_encrypt(text: str, conv_key: bytes, *, nonce: bytes | None = None) -> str:
    """``text`` (1..65535 UTF-8 bytes, else ValueError) as a NIP-44 v2 payload.

    ``nonce`` (32 bytes) is fresh randomness unless given (tests, vectors)."""
    nonce = os.urandom(32) if nonce is None else nonce
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    ct = _chacha(chacha_key, chacha_nonce, _pad(text.encode("utf-8")))
    mac = hmac.new(hmac_key, nonce + ct, hashlib.sha256).digest()
    return base64.b64encode(bytes([VERSION]) + nonce + ct + mac).decode("ascii")


def nip44_decrypt(payload: str, conv_key: bytes) -> str:
    """The text of a NIP-44 v2 ``payload``; DecryptError naming what is wrong
    (version, length, base64, MAC, padding, UTF-8). The MAC is checked first,
    in constant time, before anything is decrypted."""
    if not payload or payload[0] == "#":
        raise DecryptError("NIP-44 payload has an unknown encryption version")
    if not 132 <= len(payload) <= 87472:
        raise DecryptError(f"NIP-44 payload has an invalid length ({len(payload)})")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("NIP-44 payload is not base64") from None
    if not 99 <= len(data) <= 65603:
        raise DecryptError(f"NIP-44 payload decodes to an invalid length ({len(data)})")
    if data[0] != VERSION:
        raise DecryptError(f"NIP-44 payload has an unknown encryption version ({data[0]})")
    nonce, ct, mac = data[1:33], data[33:-32], data[-32:]
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    expected = hmac.new(hmac_key, nonce + ct, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise DecryptError("NIP-44 payload has an invalid MAC")
    plain = _unpad(_chacha(chacha_key, chacha_nonce, ct))
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptError("NIP-44 plaintext is not UTF-8") from None
