"""Properties of the security modules that the mutation check found untested (docs/mutation.md).

Each test names the property it checks; docs/mutation.md lists the mutants each one kills.
"""

from __future__ import annotations

import pytest
import trio
from test_packets import PROTECTED, Suite, _assert_refused, make_keys, payload_of, seal_each, writer_for

from trissh._errors import DisconnectReason, ProtocolError


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
