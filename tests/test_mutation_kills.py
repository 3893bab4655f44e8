"""Properties of the security modules that the mutation check found untested (docs/mutation.md).

Each test names the property it checks; docs/mutation.md lists the mutants each one kills.
"""

from __future__ import annotations

import pytest
import trio
from test_packets import PROTECTED, Suite, _assert_refused, make_keys, payload_of, seal_each, writer_for

from trissh._errors import DisconnectReason, ProtocolError


@pytest.mark.parametrize("suite", PROTECTED, ids=str)
async def test_every_bit_of_a_sealed_packet_is_refused(suite: Suite) -> None:
    """RFC 4253 §6.4, RFC 5647 §7.3, PROTOCOL.chacha20poly1305: each of the 8 bits of every byte of one
    sealed packet, tag included, is checked; a flipped bit anywhere is a MAC or protocol error.

    tests/test_packets.py samples one bit per byte, so a tag check that ignores bit 0 of the last
    AES-GCM tag byte (always sampled at bit 3 there) passed it."""
    with trio.fail_after(60):
        keys = make_keys(suite)
        seq = 7
        (packet,) = seal_each(writer_for(suite, keys, seq=seq), [payload_of(3)])
        for pos in range(len(packet)):
            for bit in range(8):
                tampered = bytearray(packet)
                tampered[pos] ^= 1 << bit
                error = _assert_refused(suite, keys, seq, bytes(tampered))
                assert isinstance(error, ProtocolError)
                assert error.reason in (DisconnectReason.MAC_ERROR, DisconnectReason.PROTOCOL_ERROR)
            await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("suite", PROTECTED, ids=str)
async def test_a_tampered_payload_is_a_mac_error(suite: Suite) -> None:
    """RFC 4253 §11.1: a packet whose MAC or AEAD tag does not verify ends the connection with reason
    MAC_ERROR, not a generic protocol error, so the server's log says what happened."""
    with trio.fail_after(30):
        keys = make_keys(suite)
        (packet,) = seal_each(writer_for(suite, keys, seq=3), [payload_of(40)])
        tampered = bytearray(packet)
        tampered[suite.header_size + 8] ^= 0x10  # inside the payload, past the length and padding length
        error = _assert_refused(suite, keys, 3, bytes(tampered))
        assert isinstance(error, ProtocolError)
        assert error.reason is DisconnectReason.MAC_ERROR
