"""Every single-bit flip of one sealed packet is refused, for every cipher and every cipher+MAC pair.

``tests/test_packets.py`` samples positions of large packets; here every bit of one small packet is
flipped in turn (a few hundred to a few thousand flips per pair, all sans-IO), so a tag or MAC check
that ignores any bit of the tag, or any bit of what it covers, fails this test.
"""

from __future__ import annotations

import pytest
import trio
from test_packets import PROTECTED, Suite, make_keys, payload_of, reader_for, seal_each, writer_for

from trissh._algorithms.ciphers import MAX_PACKET_LENGTH, PacketError
from trissh._errors import DisconnectReason, ProtocolError, SSHError

SEQ = 7  # not 0, so a check that forgets the sequence number is not hidden by it being zero
PAYLOAD_SIZE = 37  # several cipher blocks, not a multiple of the block size: padding is there too


def _open_one(suite: Suite, data: bytes) -> bytes:
    """Feed ``data`` to a fresh reader at ``SEQ``; the payload of the one packet it holds.

    A flipped length bit may make the packet claim another, still acceptable size, and CBC without
    EtM reports an error only after a fixed amount more has been read: either way the reader wants
    more bytes (never more than the largest packet allows), which come as zeros, and it must then
    refuse the packet, not wait for ever.
    """
    reader = reader_for(suite, make_keys(suite), SEQ)
    reader.feed(data)
    for _ in range(3):  # the packet's own rest, then at most one discard
        packet = reader.next_packet()
        if packet is not None:
            return bytes(packet[1])
        wanted = reader.wanted
        assert 0 < wanted <= MAX_PACKET_LENGTH + 4 + 64, wanted
        reader.feed(bytes(wanted))
    raise AssertionError(f"the reader still waits after {MAX_PACKET_LENGTH} bytes more")


@pytest.mark.parametrize("suite", PROTECTED, ids=str)
async def test_every_bit_of_a_packet_flipped_is_refused(suite: Suite) -> None:
    """RFC 4253 §6.4, RFC 5647 §7.3, PROTOCOL.chacha20poly1305: each of the packet's bits flipped on
    its own (length, padding length, payload, padding, MAC or tag, the tag's last bit included) is
    a trissh ProtocolError with MAC_ERROR (or PROTOCOL_ERROR, for a length that no longer fits)."""
    payload = payload_of(PAYLOAD_SIZE)
    (packet,) = seal_each(writer_for(suite, make_keys(suite), seq=SEQ), [payload])
    assert _open_one(suite, packet) == payload  # untouched, it opens: the refusals below mean something
    with trio.fail_after(60):
        for bit in range(len(packet) * 8):
            tampered = bytearray(packet)
            tampered[bit // 8] ^= 0x80 >> (bit % 8)
            with pytest.raises(PacketError) as info:
                _open_one(suite, bytes(tampered))
            error = info.value
            assert isinstance(error, ProtocolError) and isinstance(error, SSHError)
            assert error.reason in (DisconnectReason.MAC_ERROR, DisconnectReason.PROTOCOL_ERROR), (bit, error)
            if bit // 8 >= len(packet) - suite.mac_size:
                # A flip in the tag itself leaves the length alone: it is the tag check that refuses it.
                assert error.reason is DisconnectReason.MAC_ERROR, (bit, error)
            await trio.lowlevel.checkpoint()
