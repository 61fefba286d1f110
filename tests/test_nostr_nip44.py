"""NIP-44 v2 against every section of the official vectors, and nostr-sdk both ways.

The vectors live in ../shared/data/nip44.vectors.json (see its README); where
../shared is absent the vector tests skip and the interop tests still run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import nostr_sdk as sdk
import pytest

from protocols.nostr import (
    DecryptError,
    InvalidKey,
    calc_padded_len,
    conversation_key,
    message_keys,
    nip44_decrypt,
    nip44_encrypt,
    public_key_of,
)

VECTORS = Path(__file__).resolve().parents[2] / "shared/data/nip44.vectors.json"


@pytest.fixture(scope="module")
def v2() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.skip(f"{VECTORS} is absent (a clone without ../shared); interop tests still run")
    data: dict[str, Any] = json.loads(VECTORS.read_text())["v2"]
    return data


def test_conversation_keys(v2: dict[str, Any]) -> None:
    cases = v2["valid"]["get_conversation_key"]
    assert len(cases) == 35
    for case in cases:
        key = conversation_key(bytes.fromhex(case["sec1"]), case["pub2"])
        assert key.hex() == case["conversation_key"], case


def test_message_keys(v2: dict[str, Any]) -> None:
    section = v2["valid"]["get_message_keys"]
    conv = bytes.fromhex(section["conversation_key"])
    for case in section["keys"]:
        chacha_key, chacha_nonce, hmac_key = message_keys(conv, bytes.fromhex(case["nonce"]))
        assert (chacha_key.hex(), chacha_nonce.hex(), hmac_key.hex()) == (
            case["chacha_key"],
            case["chacha_nonce"],
            case["hmac_key"],
        )


def test_padded_lengths(v2: dict[str, Any]) -> None:
    for length, padded in v2["valid"]["calc_padded_len"]:
        assert calc_padded_len(length) == padded, length


def test_encrypt_decrypt(v2: dict[str, Any]) -> None:
    for case in v2["valid"]["encrypt_decrypt"]:
        sec1, sec2 = bytes.fromhex(case["sec1"]), bytes.fromhex(case["sec2"])
        conv = conversation_key(sec1, public_key_of(sec2))
        assert conv.hex() == case["conversation_key"]
        assert conversation_key(sec2, public_key_of(sec1)) == conv  # symmetric
        payload = nip44_encrypt(case["plaintext"], conv, nonce=bytes.fromhex(case["nonce"]))
        assert payload == case["payload"]
        assert nip44_decrypt(payload, conv) == case["plaintext"]


def test_long_messages(v2: dict[str, Any]) -> None:
    for case in v2["valid"]["encrypt_decrypt_long_msg"]:
        text = case["pattern"] * case["repeat"]
        assert hashlib.sha256(text.encode()).hexdigest() == case["plaintext_sha256"]
        conv = bytes.fromhex(case["conversation_key"])
        payload = nip44_encrypt(text, conv, nonce=bytes.fromhex(case["nonce"]))
        assert hashlib.sha256(payload.encode()).hexdigest() == case["payload_sha256"]
        assert nip44_decrypt(payload, conv) == text


def test_invalid_message_lengths_refused(v2: dict[str, Any]) -> None:
    conv = bytes(range(32))
    for length in v2["invalid"]["encrypt_msg_lengths"]:
        with pytest.raises(ValueError, match="plaintext must be"):
            nip44_encrypt("a" * length, conv)


def test_invalid_conversation_keys(v2: dict[str, Any]) -> None:
    for case in v2["invalid"]["get_conversation_key"]:
        with pytest.raises(InvalidKey):
            conversation_key(bytes.fromhex(case["sec1"]), case["pub2"])


def test_invalid_payloads(v2: dict[str, Any]) -> None:
    for case in v2["invalid"]["decrypt"]:
        with pytest.raises(DecryptError):
            nip44_decrypt(case["payload"], bytes.fromhex(case["conversation_key"]))


def test_bad_input_names_the_problem() -> None:
    conv = bytes(32)
    payload = nip44_encrypt("hello", conv)
    with pytest.raises(DecryptError, match="invalid MAC"):
        nip44_decrypt(payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"), conv)
    with pytest.raises(DecryptError, match="invalid length"):
        nip44_decrypt(payload[:100], conv)
    with pytest.raises(DecryptError, match="not base64"):
        nip44_decrypt("!" * 140, conv)
    with pytest.raises(DecryptError, match="version"):
        nip44_decrypt("#" + payload[1:], conv)


def test_interop_with_nostr_sdk_both_ways() -> None:
    alice, bob = sdk.Keys.generate(), sdk.Keys.generate()
    a_sec = bytes.fromhex(alice.secret_key().to_hex())
    b_pub = bob.public_key().to_hex()
    text = "Grüße, bob 👋 " * 50
    ours = nip44_encrypt(text, conversation_key(a_sec, b_pub))
    assert sdk.nip44_decrypt(bob.secret_key(), alice.public_key(), ours) == text
    theirs = sdk.nip44_encrypt(bob.secret_key(), alice.public_key(), text, sdk.Nip44Version.V2)
    assert nip44_decrypt(theirs, conversation_key(a_sec, b_pub)) == text
