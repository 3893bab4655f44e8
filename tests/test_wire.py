"""Unit tests for the SSH data type codecs in ``trissh._wire`` (RFC 4251 §5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trissh._errors import ProtocolError
from trissh._wire import (
    MAX_NAME_LIST,
    DecodeError,
    Reader,
    boolean,
    byte,
    mpint,
    mpint_from_unsigned,
    name_list,
    string,
    uint32,
    uint64,
)


def h(text: str) -> bytes:
    """Hex with spaces allowed, as the RFC prints its examples."""
    return bytes.fromhex(text.replace(" ", ""))


# --- (value, hex) tables ---------------------------------------------------------

UINT32_VECTORS = [
    (0, "00000000"),
    (1, "00000001"),
    (0x29B7F4AA, "29b7f4aa"),  # RFC 4251 §5 example
    (0x80000000, "80000000"),
    (0xFFFFFFFF, "ffffffff"),
]

UINT64_VECTORS = [
    (0, "0000000000000000"),
    (1, "0000000000000001"),
    (0x0102030405060708, "0102030405060708"),
    (0xFFFFFFFFFFFFFFFF, "ffffffffffffffff"),
]

STRING_VECTORS: list[tuple[bytes | str, str]] = [
    (b"", "00000000"),
    (b"testing", "00000007 74657374696e67"),  # RFC 4251 §5 example
    (b"\x00\xff", "00000002 00ff"),
    ("é", "00000002 c3a9"),  # str is encoded as UTF-8
]

# RFC 4251 §5, the mpint examples, then edge cases of the sign bit.
MPINT_VECTORS = [
    (0, "00000000"),
    (0x9A378F9B2E332A7, "00000008 09a378f9b2e332a7"),
    (0x80, "00000002 0080"),
    (-0x1234, "00000002 edcc"),
    (-0xDEADBEEF, "00000005 ff21524111"),
    (1, "00000001 01"),
    (0x7F, "00000001 7f"),
    (0xFF, "00000002 00ff"),
    (-1, "00000001 ff"),
    (-0x80, "00000001 80"),
    (-0x81, "00000002 ff7f"),
    (0x8000, "00000003 008000"),
]

# RFC 4251 §5 name-list examples.
NAME_LIST_VECTORS = [
    ([], "00000000"),
    (["zlib"], "00000004 7a6c6962"),
    (["zlib", "none"], "00000009 7a6c69622c6e6f6e65"),
]

BOOLEAN_VECTORS = [(False, "00"), (True, "01")]


@pytest.mark.parametrize(("value", "hexed"), UINT32_VECTORS)
def test_uint32_vectors(value: int, hexed: str) -> None:
    """RFC 4251 §5: uint32 is four bytes, most significant first."""
    assert uint32(value) == h(hexed)
    reader = Reader(h(hexed))
    assert reader.uint32() == value
    reader.check_end()


@pytest.mark.parametrize(("value", "hexed"), UINT64_VECTORS)
def test_uint64_vectors(value: int, hexed: str) -> None:
    """RFC 4251 §5: uint64 is eight bytes, most significant first."""
    assert uint64(value) == h(hexed)
    reader = Reader(h(hexed))
    assert reader.uint64() == value
    reader.check_end()


@pytest.mark.parametrize(("value", "hexed"), STRING_VECTORS)
def test_string_vectors(value: bytes | str, hexed: str) -> None:
    """RFC 4251 §5: a string is a uint32 length then that many bytes."""
    assert string(value) == h(hexed)
    expected = value.encode("utf-8") if isinstance(value, str) else value
    reader = Reader(h(hexed))
    assert reader.string() == expected
    reader.check_end()
    assert bytes(Reader(h(hexed)).string_view()) == expected
    assert Reader(h(hexed)).text() == expected.decode("utf-8", "replace")


def test_string_accepts_buffers() -> None:
    """RFC 4251 §5: string() takes bytearray and memoryview as well as bytes."""
    assert string(bytearray(b"ab")) == string(b"ab") == string(memoryview(b"xaby")[1:3])


@pytest.mark.parametrize(("value", "hexed"), MPINT_VECTORS)
def test_mpint_vectors(value: int, hexed: str) -> None:
    """RFC 4251 §5: mpint is two's complement, big endian, minimal; zero has no data bytes."""
    assert mpint(value) == h(hexed)
    reader = Reader(h(hexed))
    assert reader.mpint() == value
    reader.check_end()


def test_mpint_from_unsigned() -> None:
    """RFC 4251 §5 / RFC 8731 §3: unsigned big-endian bytes get a 0x00 when the top bit is set."""
    assert mpint_from_unsigned(b"\x80" + bytes(31)) == h("00000021 0080") + bytes(31)
    assert mpint_from_unsigned(b"\x00\x00\x7f\x01") == h("00000002 7f01")  # leading zeros dropped
    assert mpint_from_unsigned(bytes(32)) == h("00000000")


@pytest.mark.parametrize(("value", "hexed"), NAME_LIST_VECTORS)
def test_name_list_vectors(value: list[str], hexed: str) -> None:
    """RFC 4251 §5: a name-list is a string of comma-separated ASCII names."""
    assert name_list(value) == h(hexed)
    reader = Reader(h(hexed))
    assert reader.name_list() == value
    reader.check_end()


@pytest.mark.parametrize(("value", "hexed"), BOOLEAN_VECTORS)
def test_boolean_vectors(value: bool, hexed: str) -> None:
    """RFC 4251 §5: a boolean is one byte, 0 or 1."""
    assert boolean(value) == h(hexed)
    reader = Reader(h(hexed))
    assert reader.boolean() is value
    reader.check_end()


@pytest.mark.parametrize("raw", [0x02, 0x80, 0xFF])
def test_boolean_nonzero_is_true(raw: int) -> None:
    """RFC 4251 §5: "All non-zero values MUST be interpreted as TRUE"."""
    assert Reader(bytes((raw,))).boolean() is True


def test_byte_round_trip() -> None:
    """RFC 4251 §5: byte is one arbitrary octet."""
    for value in (0, 1, 20, 255):
        assert byte(value) == bytes((value,))
        assert Reader(byte(value)).byte() == value


# --- Reader behaviour ------------------------------------------------------------


def test_reader_round_trip_of_a_whole_message() -> None:
    """RFC 4251 §5: the types concatenate with no separators and read back in order."""
    data = (
        byte(20)
        + boolean(True)
        + uint32(0xDEADBEEF)
        + uint64(1 << 40)
        + string(b"hello")
        + mpint(-0x1234)
        + name_list(["a", "b-c@example.com"])
        + b"RAWX"
        + b"rest of it"
    )
    reader = Reader(data, "TEST")
    assert reader.byte() == 20
    assert reader.boolean() is True
    assert reader.uint32() == 0xDEADBEEF
    assert reader.uint64() == 1 << 40
    assert reader.string() == b"hello"
    assert reader.mpint() == -0x1234
    assert reader.name_list() == ["a", "b-c@example.com"]
    assert reader.raw(4) == b"RAWX"
    assert reader.remaining == len(b"rest of it")
    assert reader.rest() == b"rest of it"
    assert reader.remaining == 0
    reader.check_end()


def test_reader_accepts_memoryview_and_bytearray() -> None:
    """The reader decodes from any buffer (the packet layer hands it memoryviews)."""
    data = string(b"x") + uint32(7)
    for buffer in (bytearray(data), memoryview(data)):
        reader = Reader(buffer)
        assert reader.string() == b"x"
        assert reader.uint32() == 7
        reader.check_end()


# A message with every field type, and for each one which reader call reads it.
# Each entry: (encoded bytes, reader call, field name of the prefix, field name of the body).
_FIELDS: list[tuple[bytes, Callable[[Reader], Any], str, str]] = [
    (byte(20), Reader.byte, "byte", "byte"),
    (boolean(True), Reader.boolean, "boolean", "boolean"),
    (uint32(0x01020304), Reader.uint32, "uint32", "uint32"),
    (uint64(0x0102030405060708), Reader.uint64, "uint64", "uint64"),
    (string(b"hello"), Reader.string, "uint32", "string"),
    (mpint(-0xDEADBEEF), Reader.mpint, "uint32", "string"),
    (name_list(["zlib", "none"]), Reader.name_list, "uint32", "name-list"),
    (string(b"ascii"), Reader.ascii, "uint32", "string"),
    (b"RAW!", lambda r: r.raw(4), "raw bytes", "raw bytes"),
]


def _expected_field(cut: int) -> str:
    """The field named in the error when the message is cut to ``cut`` bytes."""
    start = 0
    for encoded, _, prefix_name, body_name in _FIELDS:
        end = start + len(encoded)
        if cut < end:
            prefix_len = 4 if prefix_name == "uint32" and body_name != "uint32" else len(encoded)
            return prefix_name if cut < start + prefix_len else body_name
        start = end
    raise AssertionError("cut is not inside the message")


def test_every_truncation_raises_decode_error_naming_the_field() -> None:
    """RFC 4251 §5: a short field is a decode error that says which field was short."""
    message = b"".join(encoded for encoded, *_ in _FIELDS)
    for cut in range(len(message)):
        reader = Reader(message[:cut], "TEST")
        with pytest.raises(DecodeError) as info:
            for _, read, *_ in _FIELDS:
                read(reader)
        text = str(info.value)
        assert text.startswith(f"TEST: truncated reading {_expected_field(cut)} "), (cut, text)
        assert isinstance(info.value, ProtocolError)
    reader = Reader(message, "TEST")
    for _, read, *_ in _FIELDS:
        read(reader)
    reader.check_end()


def test_truncation_error_says_how_much_was_missing() -> None:
    """The error names the need and what was left, for debugging a malformed peer."""
    with pytest.raises(DecodeError, match=r"KEXINIT: truncated reading string \(need 40 bytes, 12 left\)"):
        Reader(uint32(40) + bytes(12), "KEXINIT").string()


@pytest.mark.parametrize("extra", [1, 2, 100])
def test_check_end_refuses_trailing_bytes(extra: int) -> None:
    """A message with bytes after its last field is malformed; check_end says how many."""
    reader = Reader(uint32(5) + bytes(extra), "TEST")
    reader.uint32()
    with pytest.raises(DecodeError, match=rf"TEST: {extra} unexpected bytes at end"):
        reader.check_end()


def test_check_end_after_rest_is_clean() -> None:
    reader = Reader(b"abc")
    reader.rest()
    reader.check_end()


@pytest.mark.parametrize("text", [b",", b"a,", b",a", b"a,,b", b"zlib,,none"])
def test_name_list_with_empty_name_refused(text: bytes) -> None:
    """RFC 4251 §5: "A name MUST have a non-zero length"."""
    with pytest.raises(DecodeError, match="empty name"):
        Reader(string(text), "TEST").name_list()


@pytest.mark.parametrize("text", [b"caf\xc3\xa9", b"\x80", b"zlib,n\xffne"])
def test_name_list_non_ascii_refused(text: bytes) -> None:
    """RFC 4251 §5: names in a name-list are US-ASCII."""
    with pytest.raises(DecodeError, match="not ASCII"):
        Reader(string(text), "TEST").name_list()


def test_oversized_name_list_refused_before_reading() -> None:
    """A name-list longer than any packet is refused from its length alone."""
    with pytest.raises(DecodeError, match="too long"):
        Reader(uint32(MAX_NAME_LIST + 1), "TEST").name_list()
    names = ["a" * 1000] * 65  # 65064 bytes: within MAX_NAME_LIST
    assert Reader(name_list(names)).name_list() == names


def test_oversized_mpint_refused() -> None:
    """An mpint larger than any SSH use (16384 bits) is refused, not turned into a huge int."""
    with pytest.raises(DecodeError, match="too large"):
        Reader(string(b"\x01" * 2049), "TEST").mpint()
    assert Reader(string(b"\x01" * 2048)).mpint() == int.from_bytes(b"\x01" * 2048, "big")


def test_ascii_refuses_non_ascii_and_text_replaces() -> None:
    """ASCII-only fields (names) are strict; display text (RFC 4251 §5 UTF-8 strings) is lenient."""
    with pytest.raises(DecodeError, match="expected an ASCII name"):
        Reader(string(b"n\xe9"), "TEST").ascii()
    assert Reader(string(b"ok\xff")).text() == "ok\ufffd"


# --- properties -----------------------------------------------------------------


@given(st.integers(0, 2**32 - 1))
def test_uint32_round_trip(value: int) -> None:
    """RFC 4251 §5 uint32: encode/decode is the identity on [0, 2**32)."""
    encoded = uint32(value)
    assert len(encoded) == 4
    assert Reader(encoded).uint32() == value


@given(st.integers(0, 2**64 - 1))
def test_uint64_round_trip(value: int) -> None:
    """RFC 4251 §5 uint64: encode/decode is the identity on [0, 2**64)."""
    encoded = uint64(value)
    assert len(encoded) == 8
    assert Reader(encoded).uint64() == value


@given(st.binary(max_size=2000), st.binary(max_size=20))
def test_string_round_trip(value: bytes, after: bytes) -> None:
    """RFC 4251 §5 string: round trips, and consumes exactly its own bytes."""
    reader = Reader(string(value) + after)
    assert reader.string() == value
    assert reader.rest() == after


@given(st.text(max_size=200))
def test_text_string_round_trip(value: str) -> None:
    """RFC 4251 §5: text travels as a UTF-8 string."""
    assert Reader(string(value)).text() == value


@given(st.integers(-(2**4096), 2**4096))
def test_mpint_round_trip_and_minimal(value: int) -> None:
    """RFC 4251 §5 mpint: round trips, and "unnecessary leading bytes ... MUST NOT be included"."""
    encoded = mpint(value)
    reader = Reader(encoded)
    assert reader.mpint() == value
    reader.check_end()
    body = encoded[4:]
    assert int.from_bytes(encoded[:4], "big") == len(body)
    assert (len(body) == 0) == (value == 0)
    assert int.from_bytes(body, "big", signed=True) == value
    if len(body) >= 2:
        # A leading 0x00 is needed only before a set sign bit, a leading 0xff only before a clear one.
        assert not (body[0] == 0x00 and body[1] < 0x80)
        assert not (body[0] == 0xFF and body[1] >= 0x80)


@given(
    st.lists(
        st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","),
            min_size=1,
            max_size=20,
        ),
        max_size=20,
    )
)
def test_name_list_round_trip(names: list[str]) -> None:
    """RFC 4251 §5 name-list: non-empty ASCII names without commas round trip."""
    assert Reader(name_list(names)).name_list() == names
