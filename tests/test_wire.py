"""protocols: the message base, the registry, the msgpack codec and framing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgpack
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols
from protocols import (
    FRAME_HEADER,
    REGISTRY,
    DecodeError,
    DuplicateType,
    InvalidBody,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Registry,
    UnknownType,
    decode,
    decode_message,
    encode,
    encode_message,
    frame,
    message,
)


class Item(Message):
    name: str
    qty: int = 1


class Inbound(Message):
    text: str
    at: datetime
    items: tuple[Item, ...] = ()


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.register("chat.Inbound", Inbound)
    return reg


def test_public_names_are_pinned() -> None:
    assert sorted(protocols.__all__) == sorted(
        [
            "FRAME_HEADER",
            "ApprovalResult",
            "Approve",
            "Deliver",
            "Received",
            "Reconcile",
            "Reconciled",
            "ReplyKind",
            "INBOUND_KEY_PREFIX",
            "REGISTRY",
            "ChatTurn",
            "Clock",
            "DecodeError",
            "DuplicateType",
            "Inbound",
            "Intent",
            "InvalidBody",
            "Message",
            "Ping",
            "Pong",
            "ProtocolError",
            "Registry",
            "UnknownType",
            "decode",
            "decode_message",
            "encode",
            "encode_message",
            "frame",
            "mask_url",
            "message",
            "storable_problem",
            "storable_text_problem",
            "system_clock",
            "user_key",
        ]
    )


def test_error_hierarchy() -> None:
    for exc in (DecodeError, UnknownType, InvalidBody, DuplicateType):
        assert issubclass(exc, ProtocolError)


# --------------------------------------------------------------------------- messages


def test_messages_are_frozen() -> None:
    ping = Ping(note="a")
    with pytest.raises(pydantic.ValidationError):
        ping.note = "b"  # type: ignore[misc]


def test_messages_reject_extra_fields() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Ping(note="a", other=1)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- registry


def test_kernel_messages_are_registered_globally() -> None:
    assert REGISTRY.model("kernel.Ping") is Ping
    assert REGISTRY.name_of(Pong(note="x")) == "kernel.Pong"
    assert {"kernel.Ping", "kernel.Pong"} <= set(REGISTRY.names())


def test_register_and_lookup(registry: Registry) -> None:
    assert registry.model("chat.Inbound") is Inbound
    assert registry.name_of(Inbound) == "chat.Inbound"
    assert registry.names() == ["chat.Inbound"]


def test_names_are_sorted() -> None:
    reg = Registry()
    reg.register("zeta.Z", Item)
    reg.register("alpha.A", Inbound)
    assert reg.names() == ["alpha.A", "zeta.Z"]


def test_decorator_registers_and_returns_class_unchanged() -> None:
    reg = Registry()

    @message("test.Thing", registry=reg)
    class Thing(Message):
        x: int

    assert reg.model("test.Thing") is Thing
    assert Thing(x=1).x == 1
    assert "test.Thing" not in REGISTRY.names()


def test_reregistering_same_class_is_a_noop(registry: Registry) -> None:
    registry.register("chat.Inbound", Inbound)
    assert registry.names() == ["chat.Inbound"]


def test_duplicate_name_for_another_class(registry: Registry) -> None:
    with pytest.raises(DuplicateType, match=r"'chat\.Inbound' is already registered") as info:
        registry.register("chat.Inbound", Item)
    assert info.value.type_name == "chat.Inbound"


def test_one_class_cannot_take_two_names(registry: Registry) -> None:
    with pytest.raises(DuplicateType, match=r"already registered as 'chat\.Inbound'"):
        registry.register("chat.Inbound2", Inbound)


@pytest.mark.parametrize(
    "name", ["", "Ping", "kernel", "Kernel.Ping", "kernel.", "kernel..Ping", "kernel.1x", "a-b.C"]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=repr(name).replace(".", r"\.")):
        Registry().register(name, Item)


@pytest.mark.parametrize("name", ["kernel.Ping", "chat.Inbound", "a1_b.C.d_2"])
def test_good_names(name: str) -> None:
    Registry().register(name, Item)


def test_only_message_classes_register() -> None:
    with pytest.raises(TypeError):
        Registry().register("x.Y", dict)  # type: ignore[arg-type]


def test_unknown_type(registry: Registry) -> None:
    with pytest.raises(UnknownType, match=r"unknown message type 'chat\.Foo'") as info:
        registry.model("chat.Foo")
    assert info.value.type_name == "chat.Foo"
    with pytest.raises(UnknownType):
        registry.validate("chat.Foo", {})
    with pytest.raises(UnknownType):
        registry.json_schema("chat.Foo")


def test_name_of_unregistered_class(registry: Registry) -> None:
    with pytest.raises(UnknownType, match="Item is not registered"):
        registry.name_of(Item(name="a"))
    with pytest.raises(TypeError):
        registry.name_of(42)  # type: ignore[arg-type]


def test_validate_names_missing_field(registry: Registry) -> None:
    with pytest.raises(InvalidBody) as info:
        registry.validate("chat.Inbound", {"at": "2024-01-01T00:00:00Z"})
    assert str(info.value) == "invalid body for 'chat.Inbound': field 'text': Field required"
    assert info.value.type_name == "chat.Inbound"
    assert info.value.field == "text"
    assert info.value.errors[0]["type"] == "missing"


def test_validate_names_nested_field_and_value(registry: Registry) -> None:
    body = {"text": "hi", "at": "2024-01-01T00:00:00Z", "items": [{"name": "a", "qty": "lots"}]}
    with pytest.raises(InvalidBody, match=r"field 'items\.0\.qty': .*'lots'") as info:
        registry.validate("chat.Inbound", body)
    assert info.value.field == "items.0.qty"


def test_validate_rejects_extra_field(registry: Registry) -> None:
    with pytest.raises(InvalidBody, match="field 'nope'"):
        registry.validate("chat.Inbound", {"text": "t", "at": "2024-01-01T00:00:00Z", "nope": 1})


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_validate_non_map_body(registry: Registry, body: Any) -> None:
    with pytest.raises(InvalidBody, match="body must be a map") as info:
        registry.validate("chat.Inbound", body)
    assert info.value.field == ""
    assert info.value.errors == []


def test_json_schema(registry: Registry) -> None:
    schema = registry.json_schema("chat.Inbound")
    assert schema["type"] == "object"
    assert set(schema["required"]) == {"text", "at"}


# --------------------------------------------------------------------------- wire shape


def test_to_wire_and_back(registry: Registry) -> None:
    msg = Inbound(text="hi", at=datetime(2024, 1, 2, tzinfo=UTC), items=(Item(name="a"),))
    wire = registry.to_wire(msg)
    assert wire["type"] == "chat.Inbound"
    assert wire["body"] == msg.model_dump(mode="json")
    assert registry.from_wire(wire) == msg


def test_round_trip_through_bytes(registry: Registry) -> None:
    msg = Inbound(
        text="héllo", at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), items=(Item(name="x"),)
    )
    data = encode_message(msg, registry=registry)
    assert isinstance(data, bytes)
    assert decode_message(data, registry=registry) == msg


def test_round_trip_with_default_registry() -> None:
    assert decode_message(encode_message(Ping(note="n"))) == Ping(note="n")


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([], "must be a map"),
        ({"type": 1, "body": {}}, "'type' must be a str"),
        ({"type": "kernel.Ping"}, "'body' must be a map"),
        ({"type": "kernel.Ping", "body": [1]}, "'body' must be a map"),
        ({"type": "kernel.Ping", "body": {}, "id": 3}, "unexpected keys: 'id'"),
    ],
)
def test_from_wire_wrong_shape(obj: Any, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        REGISTRY.from_wire(obj)


def test_decode_message_unknown_type_and_invalid_body() -> None:
    with pytest.raises(UnknownType):
        decode_message(encode({"type": "chat.Nope", "body": {}}))
    with pytest.raises(InvalidBody, match="field 'note'"):
        decode_message(encode({"type": "kernel.Ping", "body": {"note": 5}}))


def test_encode_message_of_unregistered_class() -> None:
    with pytest.raises(UnknownType):
        encode_message(Item(name="a"))


# --------------------------------------------------------------------------- codec


def test_encode_decode_plain_values() -> None:
    value = {"a": [1, -2, 3.5, None, True, "s", b"\x00\xff"], 7: {"nested": []}}
    assert decode(encode(value)) == value
    assert decode(bytearray(encode(1))) == 1
    assert decode(memoryview(encode("x"))) == "x"


@pytest.mark.parametrize("value", [{1, 2}, object(), 2**70, {"k": datetime(2024, 1, 1)}])
def test_encode_unencodable(value: Any) -> None:
    with pytest.raises(TypeError, match="cannot encode as msgpack") as info:
        encode(value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty input"),
        (b"\xc1", "malformed"),
        (b"\x92\x01", "truncated"),
        (encode({"type": "kernel.Ping", "body": {}})[:-3], "truncated"),
        (encode(1) + b"\x02", "trailing bytes"),
        (b"\xa1\xff", "UTF-8"),
        (b"\x91" * 5000 + b"\x01", "too deep"),
        (msgpack.packb({b"k": 1}, use_bin_type=True), "str or int, not bytes"),
        (msgpack.packb({True: 1}), "not bool"),
        (msgpack.packb({1.5: 1}), "not float"),
        (b"\x82\xa1a\x01\xa1a\x02", "duplicate map key 'a'"),
        (msgpack.packb(msgpack.ExtType(5, b"x")), "ext type"),
        (msgpack.packb([msgpack.Timestamp(1, 0)]), "timestamps"),
        (msgpack.packb(msgpack.Timestamp(1, 0)), "timestamps"),
    ],
)
def test_decode_bad_bytes(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match) as info:
        decode(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data", ["text", 3, None, [1]])
def test_decode_non_bytes(data: Any) -> None:
    with pytest.raises(DecodeError, match="can only decode bytes"):
        decode(data)


@settings(max_examples=500)
@given(st.binary(max_size=256))
def test_random_bytes_raise_only_protocol_errors(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError:
        pass
    try:
        decode_message(data)
    except ProtocolError:
        pass


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
        lambda children: (
            st.lists(children) | st.dictionaries(st.text() | st.integers(0, 9), children)
        ),
        max_leaves=20,
    )
)
def test_encode_decode_round_trip(value: Any) -> None:
    assert decode(encode(value)) == value


@given(st.binary(max_size=64))
def test_mutated_valid_frames_raise_only_protocol_errors(noise: bytes) -> None:
    data = bytearray(encode_message(Ping(note="hello")))
    for i, byte in enumerate(noise):
        data[i % len(data)] ^= byte
    try:
        decode_message(bytes(data))
    except ProtocolError:
        pass


# --------------------------------------------------------------------------- framing


def test_frame() -> None:
    framed = frame(b"abc")
    assert framed == b"\x00\x00\x00\x03abc"
    assert FRAME_HEADER.size == 4
    (length,) = FRAME_HEADER.unpack(framed[:4])
    assert framed[4 : 4 + length] == b"abc"
    assert frame(b"") == b"\x00\x00\x00\x00"
