"""NIP-04 direct messages: AES-256-CBC keyed by the raw ECDH x coordinate.

The content is ``base64(ciphertext) + "?iv=" + base64(iv)``. NIP-04 leaks
metadata and is deprecated in favour of NIP-17, but clients still send it,
so a DM that came in as NIP-04 is answered in NIP-04.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._errors import DecryptError
from ._keys import shared_x

__all__ = ["nip04_decrypt", "nip04_encrypt"]

#: Longest content accepted for decryption (base64 text), before any work is done.
MAX_PAYLOAD = 1 << 20


def nip04_encrypt(secret: bytes, public_hex: str, text: str, *, iv: bytes | None = None) -> str:
    """``text`` encrypted from ``secret`` to ``public_hex`` (InvalidKey for bad keys)."""
    key = shared_x(secret, public_hex)
    iv = os.urandom(16) if iv is None else iv
    padder = padding.PKCS7(128).padder()
    plain = padder.update(text.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ct = encryptor.update(plain) + encryptor.finalize()
    return f"{base64.b64encode(ct).decode()}?iv={base64.b64encode(iv).decode()}"


def nip04_decrypt(secret: bytes, public_hex: str, content: str) -> str:
    """The text of a NIP-04 ``content`` between ``secret`` and ``public_hex``.

    DecryptError for a malformed payload, a wrong key or bad padding (CBC has
    no MAC: a wrong key usually shows as bad padding or invalid UTF-8).
    """
    if len(content) > MAX_PAYLOAD:
        raise DecryptError("NIP-04 payload is too long")
    body, sep, iv_text = content.partition("?iv=")
    if not sep:
        raise DecryptError("NIP-04 payload has no ?iv= part")
    try:
        ct = base64.b64decode(body, validate=True)
        iv = base64.b64decode(iv_text, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("NIP-04 payload is not base64") from None
    if len(iv) != 16 or not ct or len(ct) % 16:
        raise DecryptError("NIP-04 payload has a wrong iv or ciphertext length")
    key = shared_x(secret, public_hex)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(ct) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        data = unpadder.update(plain) + unpadder.finalize()
        return data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise DecryptError("NIP-04 payload does not decrypt (wrong key or bad padding)") from None
