"""NIP-01 events, NIP-04, NIP-17/59 gift wraps, NIP-19 keys, NIP-10 tags and relay
frames: against nostr-sdk-made data both ways, and with bad input."""

from __future__ import annotations

import json
from typing import Any

import nostr_sdk as sdk
import pytest

from protocols import ProtocolError
from protocols.nostr import (
    DecryptError,
    Event,
    InvalidEvent,
    InvalidKey,
    RelayClosed,
    RelayEose,
    RelayEvent,
    RelayMessageError,
    RelayNotice,
    RelayOk,
    make_private_message,
    nip04_decrypt,
    nip04_encrypt,
    npub_encode,
    nsec_encode,
    parse_event,
    parse_public_key,
    parse_relay_message,
    parse_secret_key,
    public_key_of,
    reply_tags,
    sign,
    unwrap,
    verify,
)


def secret(keys: sdk.Keys) -> bytes:
    return bytes.fromhex(keys.secret_key().to_hex())


def sdk_event(keys: sdk.Keys, text: str = "hé, 👋 bot") -> dict[str, Any]:
    ev = sdk.EventBuilder(sdk.Kind(1), text).tags([sdk.Tag.public_key(keys.public_key())])
    data: dict[str, Any] = json.loads(ev.finalize(keys).as_json())
    return data


def test_verifies_nostr_sdk_events_and_refuses_tampered_ones() -> None:
    data = sdk_event(sdk.Keys.generate())
    event = verify(parse_event(data))
    assert event.kind == 1 and event.content == "hé, 👋 bot"
    with pytest.raises(InvalidEvent, match="id does not match"):
        verify(parse_event({**data, "content": "changed"}))
    flipped = data["sig"][:-1] + ("0" if data["sig"][-1] != "0" else "1")
    with pytest.raises(InvalidEvent, match="bad signature"):
        verify(parse_event({**data, "sig": flipped}))


def test_our_signed_events_verify_in_nostr_sdk() -> None:
    keys = sdk.Keys.generate()
    tags = [["p", keys.public_key().to_hex()], ["t", "ünïcode"]]
    ours = sign(secret(keys), 1, 'line\nand "quotes" and 😀', tags)
    theirs = sdk.Event.from_json(ours.to_json())
    assert theirs.verify() and theirs.id().to_hex() == ours.id
    assert theirs.author().to_hex() == public_key_of(secret(keys))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "JSON object"),
        ({"id": "zz"}, "id must be"),
        ({"id": "a" * 64, "pubkey": "b" * 64, "sig": "c" * 127}, "sig must be"),
        ({"id": "a" * 64, "pubkey": "b" * 64, "sig": "c" * 128, "created_at": -1}, "created_at"),
        ({"id": "a" * 64, "pubkey": "b" * 64, "sig": "c" * 128, "created_at": 1, "kind": True},
         "kind"),
        ({"id": "a" * 64, "pubkey": "b" * 64, "sig": "c" * 128, "created_at": 1, "kind": 1,
          "content": "x", "tags": [[1]]}, "tag"),
    ],
)  # fmt: skip
def test_malformed_events_are_clear_errors(data: Any, problem: str) -> None:
    with pytest.raises(InvalidEvent, match=problem):
        parse_event(data)


def test_an_event_by_an_off_curve_key_is_invalid_not_a_crash() -> None:
    event = sign(bytes(31) + b"\x01", 1, "x")
    bad = Event(event.id, "f" * 64, event.created_at, 1, (), "x", event.sig)
    with pytest.raises(InvalidEvent):
        verify(parse_event(bad.to_dict()))


def test_nip04_interop_both_ways() -> None:
    alice, bob = sdk.Keys.generate(), sdk.Keys.generate()
    text = "secret plan: 🌱 grow"
    ours = nip04_encrypt(secret(alice), bob.public_key().to_hex(), text)
    assert sdk.nip04_decrypt(bob.secret_key(), alice.public_key(), ours) == text
    theirs = sdk.nip04_encrypt(bob.secret_key(), alice.public_key(), text)
    assert nip04_decrypt(secret(alice), bob.public_key().to_hex(), theirs) == text


@pytest.mark.parametrize(
    ("payload", "problem"),
    [("abc", "no \\?iv="), ("!!?iv=!!", "not base64"), ("AAAA?iv=AAAA", "length")],
)
def test_nip04_bad_payloads(payload: str, problem: str) -> None:
    alice, bob = sdk.Keys.generate(), sdk.Keys.generate()
    with pytest.raises(DecryptError, match=problem):
        nip04_decrypt(secret(alice), bob.public_key().to_hex(), payload)


def test_nip04_wrong_key_is_a_decrypt_error() -> None:
    alice, bob, eve = sdk.Keys.generate(), sdk.Keys.generate(), sdk.Keys.generate()
    payload = nip04_encrypt(secret(alice), bob.public_key().to_hex(), "x" * 40)
    with pytest.raises(DecryptError):
        nip04_decrypt(secret(eve), alice.public_key().to_hex(), payload)


def test_our_gift_wrap_opens_in_nostr_sdk() -> None:
    alice, bob = sdk.Keys.generate(), sdk.Keys.generate()
    inner, gift = make_private_message(secret(alice), bob.public_key().to_hex(), "hi bob 🎁")
    assert gift.kind == 1059 and gift.pubkey != public_key_of(secret(alice))
    opened = sdk.UnwrappedGift.from_gift_wrap(bob, sdk.Event.from_json(gift.to_json()))
    assert opened.sender().to_hex() == alice.public_key().to_hex()
    assert opened.rumor().content() == "hi bob 🎁" and opened.rumor().kind().as_u16() == 14
    assert opened.rumor().id().to_hex() == inner.id


def test_nostr_sdk_gift_wrap_opens_here() -> None:
    alice, bob = sdk.Keys.generate(), sdk.Keys.generate()
    gift = sdk.nip17_make_private_msg(alice, bob.public_key(), "hi from sdk")
    wrap = verify(parse_event(json.loads(gift.as_json())))
    inner, sender = unwrap(secret(bob), wrap)
    assert sender == alice.public_key().to_hex()
    assert (inner.kind, inner.content) == (14, "hi from sdk")


def test_a_gift_wrap_for_someone_else_or_tampered_does_not_open() -> None:
    alice, bob, eve = sdk.Keys.generate(), sdk.Keys.generate(), sdk.Keys.generate()
    _, gift = make_private_message(secret(alice), bob.public_key().to_hex(), "private")
    with pytest.raises(DecryptError, match="MAC"):
        unwrap(secret(eve), gift)
    truncated = Event(gift.id, gift.pubkey, gift.created_at, 1059, gift.tags, gift.content[:90])
    with pytest.raises(DecryptError):
        unwrap(secret(bob), truncated)


def test_nip19_keys_round_trip_with_nostr_sdk() -> None:
    keys = sdk.Keys.generate()
    sec = secret(keys)
    assert nsec_encode(sec) == keys.secret_key().to_bech32()
    assert parse_secret_key(keys.secret_key().to_bech32()) == sec
    assert parse_secret_key(keys.secret_key().to_hex()) == sec
    pub = keys.public_key().to_hex()
    assert npub_encode(pub) == keys.public_key().to_bech32()
    assert parse_public_key(keys.public_key().to_bech32()) == pub


@pytest.mark.parametrize(
    "text", ["", "00" * 32, "ff" * 32, "nsec1qqqq", "npub1" + "q" * 58, "xyz" * 30, "g" * 64]
)
def test_bad_secret_keys_are_clear_errors(text: str) -> None:
    with pytest.raises(InvalidKey):
        parse_secret_key(text)


def test_a_mistyped_nsec_fails_its_checksum() -> None:
    good = sdk.Keys.generate().secret_key().to_bech32()
    bad = good[:-1] + ("q" if good[-1] != "q" else "p")
    with pytest.raises(InvalidKey, match="checksum"):
        parse_secret_key(bad)


def test_reply_tags_follow_nip10() -> None:
    me, alice, carol = "a" * 64, "b" * 64, "c" * 64
    root = Event("1" * 64, alice, 1, 1, (("p", me),), "root note")
    assert reply_tags(root, me) == [["e", "1" * 64, "", "root"], ["p", alice]]
    reply = Event("2" * 64, carol, 2, 1, (("e", "1" * 64, "", "root"), ("p", alice), ("p", me)), "")
    assert reply_tags(reply, me) == [
        ["e", "1" * 64, "", "root"],
        ["e", "2" * 64, "", "reply"],
        ["p", carol],
        ["p", alice],
    ]


def test_relay_messages() -> None:
    assert parse_relay_message('["EVENT","s",{"id":1}]') == RelayEvent("s", {"id": 1})
    assert parse_relay_message('["OK","ab",false,"invalid: Bad signature"]') == RelayOk(
        "ab", False, "invalid: Bad signature"
    )
    assert parse_relay_message('["EOSE","s"]') == RelayEose("s")
    assert parse_relay_message('["NOTICE","slow down"]') == RelayNotice("slow down")
    assert parse_relay_message('["CLOSED","s","error: no"]') == RelayClosed("s", "error: no")
    for bad in ["", "{}", "[1]", '["OK","ab","yes",""]', '["WHAT"]', "[" * 100_000]:
        with pytest.raises(RelayMessageError):
            parse_relay_message(bad)
    assert issubclass(RelayMessageError, ProtocolError)
