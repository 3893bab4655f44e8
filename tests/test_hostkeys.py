"""Public key blobs and signature verification (trissh._algorithms.hostkeys).

Keys come from the real ``ssh-keygen``; signatures are made here directly with
`cryptography`, independently of trissh's own signing code in _auth/keys.py.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from trissh._algorithms.hostkeys import (
    DEFAULT_HOST_KEY_ALGORITHMS,
    HOST_KEY_ALGORITHMS,
    PublicKey,
    decode_public_key,
    parse_openssh_public_key,
    public_key_from_crypto,
)
from trissh._errors import KeyImportError
from trissh._wire import mpint, string


@dataclass(frozen=True)
class KeySpec:
    name: str
    keygen_args: tuple[str, ...]
    key_type: str
    bits: int


KEY_SPECS = [
    KeySpec("ed25519", ("-t", "ed25519"), "ssh-ed25519", 256),
    KeySpec("ecdsa256", ("-t", "ecdsa", "-b", "256"), "ecdsa-sha2-nistp256", 256),
    KeySpec("ecdsa384", ("-t", "ecdsa", "-b", "384"), "ecdsa-sha2-nistp384", 384),
    KeySpec("ecdsa521", ("-t", "ecdsa", "-b", "521"), "ecdsa-sha2-nistp521", 521),
    KeySpec("rsa2048", ("-t", "rsa", "-b", "2048"), "ssh-rsa", 2048),
    KeySpec("rsa1024", ("-t", "rsa", "-b", "1024"), "ssh-rsa", 1024),
]

# Every signature algorithm each key type can verify.
ALGORITHMS_BY_TYPE = {
    "ssh-ed25519": ["ssh-ed25519"],
    "ecdsa-sha2-nistp256": ["ecdsa-sha2-nistp256"],
    "ecdsa-sha2-nistp384": ["ecdsa-sha2-nistp384"],
    "ecdsa-sha2-nistp521": ["ecdsa-sha2-nistp521"],
    "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
}
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "ecdsa-sha2-nistp256": hashes.SHA256,
    "ecdsa-sha2-nistp384": hashes.SHA384,
    "ecdsa-sha2-nistp521": hashes.SHA512,
    "rsa-sha2-512": hashes.SHA512,
    "rsa-sha2-256": hashes.SHA256,
    "ssh-rsa": hashes.SHA1,
}
DATA = b"exchange hash H, say"


@dataclass(frozen=True)
class GeneratedKey:
    spec: KeySpec
    path: Path
    pub_line: str
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GeneratedKey]:
    directory = tmp_path_factory.mktemp("hostkeys")
    keys = {}
    for spec in KEY_SPECS:
        path = directory / spec.name
        subprocess.run(
            ["ssh-keygen", "-q", *spec.keygen_args, "-N", "", "-C", f"test {spec.name}", "-f", str(path)],
            check=True,
        )
        private = serialization.load_ssh_private_key(path.read_bytes(), None)
        assert isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        keys[spec.name] = GeneratedKey(spec, path, (directory / f"{spec.name}.pub").read_text(), private)
    return keys


def ssh_sign(key: GeneratedKey, algorithm: str, data: bytes) -> bytes:
    """An SSH signature blob made straight with `cryptography` (RFC 4253 §6.6)."""
    private = key.private
    if isinstance(private, ed25519.Ed25519PrivateKey):
        signature = private.sign(data)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(HASHES[algorithm]())))
        signature = mpint(r) + mpint(s)
    else:
        signature = private.sign(data, padding.PKCS1v15(), HASHES[algorithm]())
    return string(algorithm) + string(signature)


def public(key: GeneratedKey) -> PublicKey:
    return parse_openssh_public_key(key.pub_line)


SPEC_IDS = [spec.name for spec in KEY_SPECS]
ALG_CASES = [(spec.name, alg) for spec in KEY_SPECS for alg in ALGORITHMS_BY_TYPE[spec.key_type]]


# --- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEC_IDS)
def test_fingerprint_matches_ssh_keygen(generated: dict[str, GeneratedKey], name: str) -> None:
    """The SHA256 fingerprint and bit count are those ``ssh-keygen -lf`` prints."""
    key = generated[name]
    out = subprocess.run(
        ["ssh-keygen", "-lf", f"{key.path}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()
    pub = public(key)
    assert pub.fingerprint == out[1]
    assert pub.bits == int(out[0]) == key.spec.bits
    assert pub.key_type == key.spec.key_type


@pytest.mark.parametrize("name", SPEC_IDS)
def test_blob_round_trip(generated: dict[str, GeneratedKey], name: str) -> None:
    """RFC 4253 §6.6 / RFC 5656 §3.1 / RFC 8709 §4: decode, re-encode, same blob and line."""
    key = generated[name]
    pub = public(key)
    assert pub.openssh_line() == " ".join(key.pub_line.split()[:2])
    assert pub.openssh_line("c") == pub.openssh_line() + " c"
    assert decode_public_key(pub.blob) == pub
    from_crypto = public_key_from_crypto(key.private.public_key())
    assert from_crypto == pub
    assert from_crypto.blob == pub.blob
    assert hash(from_crypto) == hash(pub)
    assert pub.fingerprint in repr(pub)


def test_keys_differ(generated: dict[str, GeneratedKey]) -> None:
    keys = {public(k) for k in generated.values()}
    assert len(keys) == len(generated)
    assert public(generated["ed25519"]) != "ssh-ed25519"


@pytest.mark.parametrize("name", SPEC_IDS)
def test_truncated_blob_rejected_at_every_length(generated: dict[str, GeneratedKey], name: str) -> None:
    """Every proper prefix of a blob is malformed."""
    blob = public(generated[name]).blob
    for length in range(len(blob)):
        with pytest.raises(KeyImportError):
            decode_public_key(blob[:length])


@pytest.mark.parametrize("name", SPEC_IDS)
def test_trailing_bytes_rejected(generated: dict[str, GeneratedKey], name: str) -> None:
    blob = public(generated[name]).blob
    with pytest.raises(KeyImportError, match="unexpected bytes at end"):
        decode_public_key(blob + b"\x00")


def _ecdsa_blob(key_type: str, curve: str, point: bytes) -> bytes:
    return string(key_type) + string(curve) + string(point)


def test_ecdsa_point_not_on_curve(generated: dict[str, GeneratedKey]) -> None:
    """RFC 5656 §3.1: Q must be a point on the named curve."""
    point = bytearray(public(generated["ecdsa256"]).blob[-65:])
    point[-1] ^= 1
    with pytest.raises(KeyImportError, match="not on curve"):
        decode_public_key(_ecdsa_blob("ecdsa-sha2-nistp256", "nistp256", bytes(point)))


def test_ecdsa_curve_name_mismatch(generated: dict[str, GeneratedKey]) -> None:
    """RFC 5656 §3.1: the curve identifier must match the key type's curve."""
    point = public(generated["ecdsa256"]).blob[-65:]
    with pytest.raises(KeyImportError, match="names curve 'nistp384'"):
        decode_public_key(_ecdsa_blob("ecdsa-sha2-nistp256", "nistp384", point))
    with pytest.raises(KeyImportError, match="uncompressed"):
        decode_public_key(_ecdsa_blob("ecdsa-sha2-nistp384", "nistp384", point))


def test_ecdsa_compressed_point_rejected(generated: dict[str, GeneratedKey]) -> None:
    private = generated["ecdsa256"].private
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    compressed = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    with pytest.raises(KeyImportError, match="uncompressed"):
        decode_public_key(_ecdsa_blob("ecdsa-sha2-nistp256", "nistp256", compressed))


def test_ed25519_wrong_length() -> None:
    """RFC 8709 §4: an Ed25519 public key is 32 bytes."""
    with pytest.raises(KeyImportError, match="32 bytes"):
        decode_public_key(string("ssh-ed25519") + string(b"\x01" * 31))


# A 768-bit modulus (from `openssl genrsa 768`); OpenSSH refuses RSA keys under 1024 bits.
RSA_768_N = int(
    "ca826701acb0921c3f52b989ace3d4245448171bfc529cbcf2539ebfe64debed3f05ccf01753c18f7ed1d6f4161c7a6c"
    "11db54f8a8bd1ec67aace5039d8e579130ea4f62f5c0c87062fdf47265719c64395fa7d93041c4143793fed9ba005e11",
    16,
)


def test_rsa_minimum_size() -> None:
    """RSA keys under 1024 bits are refused; 1024 is accepted (OpenSSH's minimum)."""
    assert RSA_768_N.bit_length() == 768
    with pytest.raises(KeyImportError, match="768 bits is too small"):
        decode_public_key(string("ssh-rsa") + mpint(65537) + mpint(RSA_768_N))
    key_1024 = rsa.generate_private_key(65537, 1024).public_key()
    assert public_key_from_crypto(key_1024).bits == 1024


def test_rsa_bad_numbers() -> None:
    n = rsa.generate_private_key(65537, 1024).public_key().public_numbers().n
    with pytest.raises(KeyImportError, match="non-positive"):
        decode_public_key(string("ssh-rsa") + mpint(-3) + mpint(n))
    with pytest.raises(KeyImportError, match="invalid"):
        decode_public_key(string("ssh-rsa") + mpint(4) + mpint(n))  # even exponent


@pytest.mark.parametrize(
    "blob, message",
    [
        (string("ssh-dss") + mpint(1) * 4, "unsupported public key type 'ssh-dss'"),
        (string("ssh-ed448") + string(b"\x00" * 57), "unsupported public key type"),
        (string("ecdsa-sha2-nistp192") + string("nistp192"), "unsupported public key type"),
        (string(b"\xff\xfe"), "malformed public key"),
        (b"", "malformed public key"),
    ],
)
def test_unknown_or_garbage_blob(blob: bytes, message: str) -> None:
    with pytest.raises(KeyImportError, match=message):
        decode_public_key(blob)


def test_public_key_from_crypto_refuses_other_types() -> None:
    with pytest.raises(KeyImportError, match="unsupported elliptic curve secp256k1"):
        public_key_from_crypto(ec.generate_private_key(ec.SECP256K1()).public_key())


@pytest.mark.parametrize(
    "line, message",
    [
        ("ssh-ed25519", "not an OpenSSH public key line"),
        ("ssh-ed25519 !!!notbase64", "invalid base64"),
        ("", "not an OpenSSH public key line"),
    ],
)
def test_parse_line_errors(line: str, message: str) -> None:
    with pytest.raises(KeyImportError, match=message):
        parse_openssh_public_key(line)


def test_parse_line_type_mismatch(generated: dict[str, GeneratedKey]) -> None:
    b64 = generated["ed25519"].pub_line.split()[1]
    with pytest.raises(KeyImportError, match="says 'ssh-rsa'"):
        parse_openssh_public_key(f"ssh-rsa {b64}")
    assert parse_openssh_public_key(f"ssh-ed25519 {b64} comment with spaces ünï".encode()).key_type == (
        "ssh-ed25519"
    )


# --- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, algorithm", ALG_CASES)
def test_verify_good_signature(generated: dict[str, GeneratedKey], name: str, algorithm: str) -> None:
    """RFC 4253 §6.6, RFC 5656 §3.1.2, RFC 8332 §3, RFC 8709 §6: a valid signature verifies."""
    key = generated[name]
    assert public(key).verify(ssh_sign(key, algorithm, DATA), DATA, algorithm)


@pytest.mark.parametrize("name, algorithm", ALG_CASES)
def test_verify_flipped_bits(generated: dict[str, GeneratedKey], name: str, algorithm: str) -> None:
    """A one-bit change in the data or anywhere in the signature blob fails, without raising."""
    key = generated[name]
    pub = public(key)
    blob = ssh_sign(key, algorithm, DATA)
    assert not pub.verify(blob, DATA[:-1] + bytes([DATA[-1] ^ 1]), algorithm)
    for index in range(len(blob)):
        damaged = bytearray(blob)
        damaged[index] ^= 0x01
        assert not pub.verify(bytes(damaged), DATA, algorithm), index


@pytest.mark.parametrize("name, algorithm", ALG_CASES)
def test_verify_truncated_or_padded(generated: dict[str, GeneratedKey], name: str, algorithm: str) -> None:
    key = generated[name]
    pub = public(key)
    blob = ssh_sign(key, algorithm, DATA)
    for length in range(len(blob)):
        assert not pub.verify(blob[:length], DATA, algorithm)
    assert not pub.verify(blob + b"\x00", DATA, algorithm)


@pytest.mark.parametrize("name, algorithm", ALG_CASES)
def test_verify_wrong_algorithm(generated: dict[str, GeneratedKey], name: str, algorithm: str) -> None:
    """The blob's algorithm name must be the negotiated one, and it must fit the key (RFC 8332 §3)."""
    key = generated[name]
    pub = public(key)
    blob = ssh_sign(key, algorithm, DATA)
    for other in [*HOST_KEY_ALGORITHMS, "ssh-dss", "nonsense"]:
        if other != algorithm:
            assert not pub.verify(blob, DATA, other), other
    # The right signature bytes under another name in the blob: refused too.
    signature = blob[len(string(algorithm)) :]
    for other in ALGORITHMS_BY_TYPE[key.spec.key_type]:
        if other != algorithm:
            assert not pub.verify(string(other) + signature, DATA, algorithm)


def test_verify_with_another_key(generated: dict[str, GeneratedKey]) -> None:
    blob = ssh_sign(generated["rsa2048"], "rsa-sha2-256", DATA)
    assert not public(generated["rsa1024"]).verify(blob, DATA, "rsa-sha2-256")


def test_ecdsa_r_s_must_be_positive(generated: dict[str, GeneratedKey]) -> None:
    """RFC 5656 §3.1.2: r and s are positive mpints."""
    key = generated["ecdsa256"]
    pub = public(key)
    for r, s in [(0, 1), (1, 0), (-1, 5)]:
        assert not pub.verify(
            string("ecdsa-sha2-nistp256") + string(mpint(r) + mpint(s)), DATA, "ecdsa-sha2-nistp256"
        )


def test_rsa_short_signature_is_padded(generated: dict[str, GeneratedKey]) -> None:
    """RFC 8332 §3: a signature with its leading zero byte dropped still verifies (as in OpenSSH)."""
    key = generated["rsa1024"]
    pub = public(key)
    for counter in range(20_000):
        data = b"%d" % counter
        blob = ssh_sign(key, "rsa-sha2-256", data)
        signature = blob[len(string("rsa-sha2-256")) + 4 :]
        if signature[0] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero byte found")
    assert len(signature) == 128
    assert pub.verify(string("rsa-sha2-256") + string(signature[1:]), data, "rsa-sha2-256")
    assert not pub.verify(string("rsa-sha2-256") + string(b"\x00" + signature), data, "rsa-sha2-256")


def test_algorithm_table() -> None:
    """RFC 8332: rsa-sha2-* use ssh-rsa keys; ssh-rsa (SHA-1) is supported but not offered by default."""
    assert DEFAULT_HOST_KEY_ALGORITHMS == [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
    ]
    assert "ssh-rsa" in HOST_KEY_ALGORITHMS
    for name in DEFAULT_HOST_KEY_ALGORITHMS:
        assert HOST_KEY_ALGORITHMS[name].name == name
    for key_type, algorithms in ALGORITHMS_BY_TYPE.items():
        assert sorted(algorithms) == sorted(
            row.name for row in HOST_KEY_ALGORITHMS.values() if row.key_type == key_type
        )


def test_fingerprint_format() -> None:
    """Unpadded base64 of SHA-256 over the blob."""
    pub = public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())
    digest = base64.b64encode(hashlib.sha256(pub.blob).digest()).decode()
    assert pub.fingerprint == "SHA256:" + digest.rstrip("=")
    assert not pub.fingerprint.endswith("=")
