"""Build the seed corpus in ``fuzz/corpus/<target>/``: real inputs, recorded or built with the
project's own encoders. Run ``python -m fuzz.make_corpus`` (it needs ``ssh-keygen`` and ``sshd``).

* transport_version: the first flight of a throwaway OpenSSH sshd (version line and KEXINIT),
  recorded from a raw TCP connection, plus the scripted server's.
* transport_kex: the scripted server's KEXINIT, KEX_ECDH_REPLY (signed over the exchange hash of
  the seeded client, so it verifies when replayed) and NEWKEYS.
* transport_post_kex, channels, auth, agent, socks: typical messages of each layer.
* sftp: OpenSSH's sftp-server's answers to INIT and the target's requests, recorded over pipes.
* private_key, public_key, known_hosts: files written by ssh-keygen (OpenSSH, PEM, PKCS#8,
  RFC 4716, certificates), plain and encrypted with the passphrase ``fuzzing`` (bcrypt rounds 1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from trissh import _messages as msg
from trissh._wire import boolean, byte, name_list, string, uint32
from trissh.sftp._codec import SFTPCodec
from trissh.testing import start_sshd

from .targets import SERVER_SEED, ScriptedServer, _client, _drain, pack_records, sftp_requests

CORPUS = Path(__file__).resolve().parent / "corpus"


def _write(target: str, name: str, data: bytes) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def record_sshd_first_flight() -> bytes:
    """What a real sshd sends first: connect, send a version line, read until its KEXINIT is in."""
    with start_sshd() as server, socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"SSH-2.0-trissh_fuzz_recorder\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            line_end = data.find(b"\r\n")
            if line_end >= 0 and len(data) >= line_end + 2 + 4:
                size = int.from_bytes(data[line_end + 2 : line_end + 6], "big")
                if len(data) >= line_end + 6 + size:
                    break
        return data


def transport_corpus() -> None:
    flight = record_sshd_first_flight()
    _write("transport_version", "sshd-first-flight", b"\x10" + flight)
    scripted = ScriptedServer(seed=SERVER_SEED)
    _write(
        "transport_version",
        "scripted-banner-kexinit",
        b"\x05" + scripted.version([b"hello"]) + scripted.kexinit(),
    )
    _write("transport_version", "version-only", b"\x00SSH-2.0-OpenSSH_9.6\r\n")

    # transport_kex: the exchange of established(), its server payloads captured as they are sealed.
    twin_state = _client()
    twin = ScriptedServer(seed=SERVER_SEED)
    twin_state.start()
    twin.feed(bytes(twin_state.data_to_send()))
    payloads: list[bytes] = []
    original_packet = twin.packet

    def capture(payload: bytes, *, seq: int | None = None) -> bytes:
        payloads.append(payload)
        return bytes(original_packet(payload, seq=seq))

    twin.packet = capture
    twin_state.receive_data(twin.version() + twin.kexinit())
    _drain(twin_state)
    twin_init = twin.feed(bytes(twin_state.data_to_send()))
    twin_state.receive_data(twin.handshake_reply(twin_init))
    _drain(twin_state)
    assert twin_state.session_id is not None, "the recorded exchange did not complete"
    _write("transport_kex", "full-kex", pack_records(payloads))
    _write("transport_kex", "kexinit-only", pack_records(payloads[:1]))
    ext = ScriptedServer.ext_info_payload({"server-sig-algs": b"ssh-ed25519,rsa-sha2-256"})
    _write("transport_kex", "kex-then-ext-info", pack_records([*payloads, ext]))

    # transport_post_kex: op byte 0-63 = seal the rest.
    def sealed(*items: bytes) -> bytes:
        return pack_records([b"\x00" + item for item in items])

    service_accept = byte(msg.SERVICE_ACCEPT) + string("ssh-userauth")
    ignore = byte(msg.IGNORE) + string(b"padding")
    debug = byte(msg.DEBUG) + boolean(True) + string("debug text") + string("")
    disconnect = byte(msg.DISCONNECT) + uint32(11) + string("bye") + string("")
    unimplemented = byte(msg.UNIMPLEMENTED) + uint32(3)
    _write("transport_post_kex", "service-traffic", sealed(ext, service_accept, ignore, debug, unimplemented))
    _write("transport_post_kex", "disconnect", sealed(ignore, disconnect))
    _write(
        "transport_post_kex",
        "server-rekey",
        sealed(service_accept) + pack_records([b"\xc0"]) + sealed(ignore),
    )
    _write("transport_post_kex", "wrong-seq", pack_records([b"\x41" + ignore]))


def wire_corpus() -> None:
    message = (
        byte(20)
        + b"\x00" * 16
        + name_list(["curve25519-sha256", "ext-info-s"])
        + string(b"text")
        + uint32(7)
        + b"\x00\x00\x00\x02\x01\x00"
    )
    _write("wire", "kexinit-like", bytes([6, 0, 12, 9, 4, 7, 8]) + message)
    _write("wire", "all-reads", bytes([14, *range(14)]) + message)


def _keygen(folder: Path, name: str, *args: str) -> Path:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-f", str(path), "-C", f"fuzz {name}", *args], check=True)
    return path


def key_corpus() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = [
            ("ed25519", ["-t", "ed25519", "-N", ""]),
            ("ecdsa256", ["-t", "ecdsa", "-b", "256", "-N", ""]),
            ("rsa1024-pem", ["-t", "rsa", "-b", "1024", "-m", "PEM", "-N", ""]),
            ("ecdsa384-pkcs8", ["-t", "ecdsa", "-b", "384", "-m", "PKCS8", "-N", ""]),
            ("ed25519-encrypted", ["-t", "ed25519", "-N", "fuzzing", "-a", "1"]),
            ("ecdsa-pem-encrypted", ["-t", "ecdsa", "-m", "PEM", "-N", "fuzzing"]),
            ("rsa-pkcs8-encrypted", ["-t", "rsa", "-b", "1024", "-m", "PKCS8", "-N", "fuzzing"]),
        ]
        for name, args in plain:
            path = _keygen(folder, name, *args)
            passphrase_choice = b"\x01" if "encrypted" in name else b"\x00"
            _write("private_key", name, passphrase_choice + path.read_bytes())
            pub = Path(str(path) + ".pub").read_bytes()
            _write("public_key", f"{name}-line", b"\x01" + pub)
            _write("public_key", f"{name}-file", b"\x02" + pub)
            blob = base64.b64decode(pub.split()[1])
            _write("public_key", f"{name}-blob", b"\x00" + blob)
        rfc4716 = subprocess.run(
            ["ssh-keygen", "-e", "-f", str(folder / "ed25519.pub")], check=True, capture_output=True
        ).stdout
        _write("public_key", "rfc4716", b"\x02" + rfc4716)
        pkcs8 = subprocess.run(
            ["ssh-keygen", "-e", "-m", "PKCS8", "-f", str(folder / "ecdsa256.pub")],
            check=True,
            capture_output=True,
        ).stdout
        _write("public_key", "pem-pkcs8", b"\x02" + pkcs8)
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-s",
                str(folder / "ecdsa256"),
                "-I",
                "fuzz-id",
                "-n",
                "alice,bob",
                "-O",
                "force-command=/bin/true",
                "-V",
                "+52w",
                str(folder / "ed25519.pub"),
            ],
            check=True,
        )
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-s",
                str(folder / "ed25519"),
                "-h",
                "-I",
                "host",
                "-n",
                "example.com",
                str(folder / "ecdsa256.pub"),
            ],
            check=True,
        )
        for cert_name in ("ed25519-cert.pub", "ecdsa256-cert.pub"):
            line = (folder / cert_name).read_bytes()
            _write("public_key", f"{cert_name}-line", b"\x04" + line)
            _write("public_key", f"{cert_name}-blob", b"\x03" + base64.b64decode(line.split()[1]))

        ed_pub = (folder / "ed25519.pub").read_text().split()
        ca_pub = (folder / "ecdsa256.pub").read_text().split()
        salt = b"0123456789abcdefghij"
        digest = hmac.new(salt, b"example.com", hashlib.sha1).digest()
        hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
        text = "\n".join(
            [
                "# a comment",
                f"example.com,10.0.0.1 {ed_pub[0]} {ed_pub[1]}",
                f"[10.0.0.1]:2222 {ca_pub[0]} {ca_pub[1]}",
                f"{hashed} {ed_pub[0]} {ed_pub[1]}",
                f"@cert-authority *.example.com,!bad.example.com {ca_pub[0]} {ca_pub[1]}",
                f"@revoked * {ca_pub[0]} {ca_pub[1]}",
                f"10.0.0.? {ed_pub[0]} {ed_pub[1]} comment here",
            ]
        )
        _write("known_hosts", "mixed", text.encode())


def layer_corpus() -> None:
    # channels: local channels 0 and 1 (remote 7, 8) are open, 2 is opening.
    def request(channel: int, name: str, want: bool, *fields: bytes) -> bytes:
        return byte(msg.CHANNEL_REQUEST) + uint32(channel) + string(name) + boolean(want) + b"".join(fields)

    packets = [
        byte(msg.CHANNEL_DATA) + uint32(0) + string(b"hello"),
        byte(msg.CHANNEL_EXTENDED_DATA) + uint32(0) + uint32(1) + string(b"oops"),
        byte(msg.CHANNEL_WINDOW_ADJUST) + uint32(0) + uint32(4096),
        request(0, "exit-status", False, uint32(3)),
        request(1, "exit-signal", False, string("TERM"), boolean(False), string("killed"), string("")),
        request(1, "keepalive@openssh.com", True),
        byte(msg.CHANNEL_EOF) + uint32(0),
        byte(msg.CHANNEL_CLOSE) + uint32(0),
        byte(msg.CHANNEL_OPEN_CONFIRMATION) + uint32(2) + uint32(9) + uint32(65536) + uint32(32768),
        byte(msg.CHANNEL_OPEN_FAILURE) + uint32(2) + uint32(1) + string("no") + string(""),
        byte(msg.CHANNEL_OPEN) + string("x11") + uint32(5) + uint32(65536) + uint32(32768),
        byte(msg.GLOBAL_REQUEST) + string("keepalive@openssh.com") + boolean(True),
        byte(msg.GLOBAL_REQUEST) + string("hostkeys-00@openssh.com") + boolean(False) + string(b"junk"),
        byte(msg.CHANNEL_SUCCESS) + uint32(1),
    ]
    _write("channels", "session-life", pack_records(packets))
    _write("channels", "data-only", pack_records(packets[:3]))

    # auth: the first record stands for SERVICE_ACCEPT (the fake transport does not check it).
    def failure(*methods: str, partial: bool = False) -> bytes:
        return byte(msg.USERAUTH_FAILURE) + name_list(methods) + boolean(partial)

    banner = byte(msg.USERAUTH_BANNER) + string("Welcome\n") + string("")
    info = (
        byte(60)
        + string("name")
        + string("instructions")
        + string("")
        + uint32(2)
        + string("Password: ")
        + boolean(False)
        + string("Code: ")
        + boolean(True)
    )
    change = byte(60) + string("password expired") + string("")
    _write(
        "auth",
        "kbdint-then-success",
        pack_records([banner, failure("keyboard-interactive", "password"), info, byte(msg.USERAUTH_SUCCESS)]),
    )
    _write(
        "auth",
        "password-change",
        pack_records(
            [failure("password"), change, failure("password", partial=True), byte(msg.USERAUTH_SUCCESS)]
        ),
    )

    # agent: a length-prefixed IDENTITIES_ANSWER with one Ed25519 key, then a SIGN_RESPONSE.
    key_blob = string("ssh-ed25519") + string(b"\x11" * 32)
    answer = byte(12) + uint32(1) + string(key_blob) + string("comment")
    signature = byte(14) + string(string("ssh-ed25519") + string(b"\x22" * 64))
    _write(
        "agent",
        "list-and-sign",
        pack_records(
            [
                uint32(len(answer)) + answer,
                uint32(len(signature)) + signature,
                uint32(len(signature)) + signature,
            ]
        ),
    )
    _write("agent", "failure", pack_records([uint32(1) + byte(5)]))

    # socks: SOCKS5 with no auth, CONNECT to a domain; SOCKS4a; SOCKS4.
    _write(
        "socks",
        "socks5-domain",
        pack_records([b"\x05\x01\x00", b"\x05\x01\x00\x03\x0bexample.com\x00\x50early"]),
    )
    _write(
        "socks",
        "socks5-ipv6",
        pack_records([b"\x05\x01\x00\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x00\x16"]),
    )
    _write("socks", "socks4a", pack_records([b"\x04\x01\x00\x50\x00\x00\x00\x01user\x00example.com\x00"]))
    _write("socks", "socks4", pack_records([b"\x04\x01\x00\x16\x7f\x00\x00\x01\x00"]))


def record_sftp_server() -> bytes:
    """What OpenSSH's sftp-server answers to INIT and :func:`~fuzz.targets.sftp_requests`, in a fresh
    directory holding the file ``fuzz``."""
    codec = SFTPCodec()
    requests = codec.init() + b"".join(packet for _, packet in sftp_requests(codec))
    wanted = 1 + len(sftp_requests(SFTPCodec()))  # VERSION, then one answer per request
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "fuzz").write_bytes(b"seed file contents\n" * 100)
        # sftp-server stops at end of input without answering what it has buffered: keep its stdin
        # open until every answer is in.
        with subprocess.Popen(
            ["/usr/lib/openssh/sftp-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=directory
        ) as server:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(requests)
            server.stdin.flush()
            answers = b""
            while len(_sftp_packets(answers)) < wanted:
                chunk = os.read(server.stdout.fileno(), 65536)
                assert chunk, "sftp-server stopped answering"
                answers += chunk
            server.stdin.close()
    return answers


def _sftp_packets(stream: bytes) -> list[bytes]:
    """The complete SFTP packets at the start of ``stream``."""
    packets, pos = [], 0
    while pos + 4 <= len(stream):
        end = pos + 4 + int.from_bytes(stream[pos : pos + 4], "big")
        if end > len(stream):
            break
        packets.append(stream[pos:end])
        pos = end
    return packets


def sftp_corpus() -> None:
    answers = record_sftp_server()
    _write("sftp", "sftp-server-one-read", pack_records([answers]))
    _write("sftp", "sftp-server-per-packet", pack_records(_sftp_packets(answers)))
    _write(
        "sftp",
        "sftp-server-split-headers",
        pack_records([answers[i : i + 3] for i in range(0, len(answers), 3)]),
    )


def main() -> None:
    transport_corpus()
    wire_corpus()
    key_corpus()
    layer_corpus()
    sftp_corpus()
    for folder in sorted(CORPUS.iterdir()):
        print(f"{folder.name}: {len(list(folder.iterdir()))} inputs")


if __name__ == "__main__":
    main()
