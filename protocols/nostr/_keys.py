"""Keys: secp256k1 secret keys, x-only public keys, ECDH, and NIP-19 bech32.

A secret key is 32 raw bytes; a public key is 64 lowercase hex characters
(the x coordinate, BIP-340). ``parse_secret_key`` accepts hex or ``nsec1...``
and ``parse_public_key`` hex or ``npub1...``; both raise :class:`InvalidKey`
for anything else. Nothing here logs or puts a secret key in an error.
"""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey

from ._errors import InvalidKey

__all__ = [
    "bech32_decode",
    "bech32_encode",
    "npub_encode",
    "nsec_encode",
    "parse_public_key",
    "parse_secret_key",
    "public_key_of",
    "shared_x",
]

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
#: secp256k1's group order: a secret key is in [1, N).
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data: bytes | list[int], frm: int, to: int, pad: bool) -> list[int] | None:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to) - 1
    for value in data:
        acc = (acc << frm) | value
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (to - bits)) & maxv)
    elif not pad and (bits >= frm or (acc << (to - bits)) & maxv):
        return None
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    """``data`` as bech32 (BIP-173, as NIP-19 uses it) with the human part ``hrp``."""
    words = _convert(data, 8, 5, True)
    assert words is not None  # padding never fails
    values = _hrp_expand(hrp) + words
    polymod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in words + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(human part, data) of a bech32 string; InvalidKey if malformed or its checksum fails."""
    if text.lower() != text and text.upper() != text:
        raise InvalidKey("bech32 string mixes upper and lower case")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text) or len(text) > 1000:
        raise InvalidKey("not a bech32 string")
    hrp, rest = text[:sep], text[sep + 1 :]
    if any(c not in _CHARSET for c in rest):
        raise InvalidKey("bech32 string has a character outside its alphabet")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise InvalidKey("bech32 checksum does not match")
    data = _convert(values[:-6], 5, 8, False)
    if data is None:
        raise InvalidKey("bech32 data has invalid padding")
    return hrp, bytes(data)


def _hex32(text: str, what: str) -> bytes:
    if len(text) != 64:
        raise InvalidKey(f"{what} must be 64 hex characters, not {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidKey(f"{what} is not hex") from None


def parse_secret_key(text: str) -> bytes:
    """32 bytes of a secret key given as 64 hex characters or ``nsec1...``."""
    text = text.strip()
    if text.lower().startswith("nsec1"):
        hrp, raw = bech32_decode(text)
        if hrp != "nsec" or len(raw) != 32:
            raise InvalidKey("an nsec must hold 32 bytes")
    else:
        raw = _hex32(text, "secret key")
    if not 0 < int.from_bytes(raw, "big") < _N:
        raise InvalidKey("secret key is out of range (0 or >= the curve order)")
    return raw


def parse_public_key(text: str) -> str:
    """The lowercase hex of an x-only public key given as hex or ``npub1...``; the
    point must be on the curve."""
    text = text.strip()
    if text.lower().startswith("npub1"):
        hrp, raw = bech32_decode(text)
        if hrp != "npub" or len(raw) != 32:
            raise InvalidKey("an npub must hold 32 bytes")
    else:
        raw = _hex32(text, "public key")
    _point(raw)
    return raw.hex()


def _point(xonly: bytes) -> PublicKey:
    try:
        return PublicKey(b"\x02" + xonly)
    except (ValueError, TypeError):
        raise InvalidKey("public key is not a point on secp256k1") from None


def public_key_of(secret: bytes) -> str:
    """The x-only public key (hex) of a 32-byte secret key."""
    try:
        return PrivateKey(secret).public_key_xonly.format().hex()
    except (ValueError, TypeError):
        raise InvalidKey("secret key is not valid for secp256k1") from None


def shared_x(secret: bytes, public_hex: str) -> bytes:
    """The raw x coordinate of ``secret * public`` (NIP-04 and NIP-44 both start here;
    coincurve's ``ecdh()`` would hash it)."""
    if not 0 < int.from_bytes(secret, "big") < _N or len(secret) != 32:
        raise InvalidKey("secret key is out of range (0 or >= the curve order)")
    point = _point(_hex32(public_hex, "public key"))
    return point.multiply(secret).format()[1:]


def npub_encode(public_hex: str) -> str:
    """``npub1...`` of a hex public key."""
    return bech32_encode("npub", _hex32(public_hex, "public key"))


def nsec_encode(secret: bytes) -> str:
    """``nsec1...`` of a 32-byte secret key."""
    return bech32_encode("nsec", secret)
