"""Private keys and key files (trissh._auth.keys), with keys made by the real ``ssh-keygen``."""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import trissh
from trissh._algorithms.hostkeys import PublicKey, parse_openssh_public_key
from trissh._auth.keys import (
    PassphraseRequired,
    PrivateKey,
    import_private_key,
    inspect_private_key,
    is_encrypted,
    load_private_key,
    load_public_key_file,
    read_private_key,
    read_public_key,
)
from trissh._errors import KeyImportError
from trissh._wire import Reader, string, uint32

PASSPHRASE = "correct horse"
DATA = b"session id || userauth request"

# name -> (ssh-keygen type arguments, key type)
KEY_TYPES = {
    "ed25519": (("-t", "ed25519"), "ssh-ed25519"),
    "ecdsa256": (("-t", "ecdsa", "-b", "256"), "ecdsa-sha2-nistp256"),
    "ecdsa384": (("-t", "ecdsa", "-b", "384"), "ecdsa-sha2-nistp384"),
    "ecdsa521": (("-t", "ecdsa", "-b", "521"), "ecdsa-sha2-nistp521"),
    "rsa2048": (("-t", "rsa", "-b", "2048"), "ssh-rsa"),
    "rsa1024": (("-t", "rsa", "-b", "1024"), "ssh-rsa"),
}
# file format -> ssh-keygen -m argument ("" = the default OpenSSH format)
FORMATS = {"openssh": (), "pem": ("-m", "PEM"), "pkcs8": ("-m", "PKCS8")}


@dataclass(frozen=True)
class Case:
    name: str
    key_type: str
    fmt: str
    encrypted: bool

    @property
    def id(self) -> str:
        return f"{self.name}-{self.fmt}-{'enc' if self.encrypted else 'plain'}"


CASES = [
    Case(name, key_type, fmt, encrypted)
    for name, (_args, key_type) in KEY_TYPES.items()
    for fmt in FORMATS
    for encrypted in (False, True)
    # ssh-keygen writes Ed25519 only in the OpenSSH format.
    if not (key_type == "ssh-ed25519" and fmt != "openssh")
]
ENCRYPTED = [case for case in CASES if case.encrypted]


def keygen(path: Path, *args: str, passphrase: str = "", comment: str = "") -> None:
    # -a 4: few bcrypt-kdf rounds keep the suite fast; test_default_kdf_rounds covers the default.
    subprocess.run(
        ["ssh-keygen", "-q", "-a", "4", *args, "-N", passphrase, "-C", comment, "-f", str(path)], check=True
    )


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    for case in CASES:
        keygen(
            directory / case.id,
            *KEY_TYPES[case.name][0],
            *FORMATS[case.fmt],
            passphrase=PASSPHRASE if case.encrypted else "",
            comment=f"user@{case.id}",
        )
    return directory


def crypto_verify(pub_path: Path, blob: bytes, data: bytes) -> str:
    """Verify an SSH signature blob with `cryptography` alone; returns its algorithm name."""
    public = serialization.load_ssh_public_key(pub_path.read_bytes())
    reader = Reader(blob)
    algorithm = reader.ascii()
    signature = reader.string()
    reader.check_end()
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, data)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        inner = Reader(signature)
        r, s = inner.mpint(), inner.mpint()
        inner.check_end()
        curve_hash: dict[int, type[hashes.HashAlgorithm]] = {
            256: hashes.SHA256,
            384: hashes.SHA384,
            521: hashes.SHA512,
        }
        public.verify(encode_dss_signature(r, s), data, ec.ECDSA(curve_hash[public.key_size]()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        rsa_hash: dict[str, type[hashes.HashAlgorithm]] = {
            "rsa-sha2-512": hashes.SHA512,
            "rsa-sha2-256": hashes.SHA256,
            "ssh-rsa": hashes.SHA1,
        }
        public.verify(signature, data, padding.PKCS1v15(), rsa_hash[algorithm]())
    return algorithm


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_load(keydir: Path, case: Case) -> None:
    path = keydir / case.id
    key = load_private_key(path, PASSPHRASE if case.encrypted else None)
    assert key.key_type == case.key_type
    assert key.public_key == load_public_key_file(f"{path}.pub")
    assert key.public_key == parse_openssh_public_key((keydir / f"{case.id}.pub").read_text())
    # The comment comes from the key itself, or from the .pub file when the key hides it.
    assert key.comment == f"user@{case.id}"
    assert is_encrypted(path.read_bytes()) is case.encrypted


@pytest.mark.parametrize("case", [c for c in CASES if c.fmt == "openssh"], ids=lambda c: c.id)
def test_openssh_comment_from_key_itself(keydir: Path, case: Case) -> None:
    """An unencrypted OpenSSH key carries its comment; an encrypted one hides it."""
    data = (keydir / case.id).read_bytes()
    key = import_private_key(data, PASSPHRASE if case.encrypted else None)
    assert key.comment == ("" if case.encrypted else f"user@{case.id}")


@pytest.mark.parametrize("case", ENCRYPTED, ids=lambda c: c.id)
def test_passphrase_needed(keydir: Path, case: Case) -> None:
    path = keydir / case.id
    with pytest.raises(KeyImportError, match="is encrypted: a passphrase is needed") as info:
        load_private_key(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("case", ENCRYPTED, ids=lambda c: c.id)
def test_wrong_passphrase(keydir: Path, case: Case) -> None:
    path = keydir / case.id
    with pytest.raises(KeyImportError, match=f"wrong passphrase for key file {path}"):
        load_private_key(path, "not the passphrase")


def test_passphrase_ignored_for_plain_key(keydir: Path) -> None:
    for case in CASES:
        if not case.encrypted:
            assert load_private_key(keydir / case.id, "unused").key_type == case.key_type


def test_passphrase_str_or_bytes(tmp_path: Path) -> None:
    path = tmp_path / "k"
    keygen(path, "-t", "ed25519", passphrase="pässwörd")
    assert load_private_key(path, "pässwörd").key_type == "ssh-ed25519"
    assert load_private_key(path, "pässwörd".encode()).key_type == "ssh-ed25519"


def test_default_kdf_rounds(tmp_path: Path) -> None:
    """The default bcrypt-kdf rounds (16) and aes256-ctr cipher load too."""
    path = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", str(path)], check=True)
    assert load_private_key(path, "pw").public_key == load_public_key_file(f"{path}.pub")


def test_aes_gcm_encrypted_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    keygen(path, "-t", "ed25519", "-Z", "aes256-gcm@openssh.com", passphrase="pw")
    assert load_private_key(path, "pw").key_type == "ssh-ed25519"
    with pytest.raises(KeyImportError, match="wrong passphrase"):
        load_private_key(path, "nope")


def test_unsupported_cipher(tmp_path: Path) -> None:
    path = tmp_path / "k"
    keygen(path, "-t", "ed25519", "-Z", "chacha20-poly1305@openssh.com", passphrase="pw")
    assert is_encrypted(path.read_bytes())
    with pytest.raises(KeyImportError, match=r"chacha20-poly1305@openssh\.com"):
        load_private_key(path, "pw")


def test_dsa_refused(tmp_path: Path) -> None:
    for fmt in ((), ("-m", "PEM")):
        path = tmp_path / f"dsa{len(fmt)}"
        result = subprocess.run(
            ["ssh-keygen", "-q", "-t", "dsa", *fmt, "-N", "", "-f", str(path)], capture_output=True
        )
        if result.returncode != 0:
            pytest.skip("this ssh-keygen cannot make DSA keys")
        with pytest.raises(KeyImportError, match="unsupported key type dsa"):
            load_private_key(path)


def _pkcs8(key: object, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    assert hasattr(key, "private_bytes")
    data: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return data


@pytest.mark.parametrize(
    "key, message",
    [
        (dsa.generate_private_key(1024), "unsupported key type dsa"),
        (ed448.Ed448PrivateKey.generate(), "unsupported key type Ed448PrivateKey"),
        (ec.generate_private_key(ec.SECP256K1()), "unsupported elliptic curve secp256k1"),
    ],
    ids=["dsa", "ed448", "secp256k1"],
)
def test_unsupported_pkcs8_keys(key: object, message: str) -> None:
    with pytest.raises(KeyImportError, match=message):
        import_private_key(_pkcs8(key))


def test_pkcs8_ed25519() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    assert import_private_key(_pkcs8(key)).key_type == "ssh-ed25519"
    encrypted = _pkcs8(key, b"pw")
    assert is_encrypted(encrypted)
    assert import_private_key(encrypted, "pw").public_key == PrivateKey.from_crypto(key).public_key
    with pytest.raises(KeyImportError, match="wrong passphrase for key"):
        import_private_key(encrypted, "bad")


# A 768-bit RSA key (openssl genrsa -traditional 768): below OpenSSH's 1024-bit minimum.
RSA_768_PEM = b"""-----BEGIN RSA PRIVATE KEY-----
MIIBzQIBAAJhAMqCZwGssJIcP1K5iazj1CRUSBcb/FKcvPJTnr/mTevtPwXM8BdT
wY9+0db0Fhx6bBHbVPiovR7GeqzlA52OV5Ew6k9i9cDIcGL99HJlcZxkOV+n2TBB
xBQ3k/7ZugBeEQIDAQABAmEAyM2/iDiNqYQbAlN6AhazsAZmqYuVivFipkNmgdDD
aXMJ8B2D4Q2rPDe7qZLFLh3wrwcAL8MeQxL/bPivx68OPQLEMkGXG38zVTGeu097
UoaGSBnCjmxsHhFYDdUGEY9FAjEA/iwH569CVToZm25rQg5VAsx7uBCYHwehJq+V
Z3DX9rkq6NKDT19rKogH52zo97dHAjEAy/dAt6HhN9J3a5p+4Ej5LSMZxLtRKNI2
3fZbrssFhdi37/kHCwUPFUnvQ7QKbpvnAjEAkoCwocNsOZG+ls+jdTSrnWxd12+B
L0mHgrPsKu5pHOYILKDCXSrDq4UzARrOgZIbAjEAjinNCvEi2FSy9eYeTteuDb7s
ZAonnGtA4N6osqFBPTR7qCCLvyuMgssgoLDpoIS7AjEAu8TqmvsgH7gmHTFx4StC
fLr+ASGW+x7pWp5atUhfP2FiC8v5yYSRYHt5i2mrIfrx
-----END RSA PRIVATE KEY-----
"""


def test_rsa_768_refused(tmp_path: Path) -> None:
    """RSA keys under 1024 bits are refused, as OpenSSH does; 1024 is the accepted minimum."""
    path = tmp_path / "rsa768"
    path.write_bytes(RSA_768_PEM)
    with pytest.raises(KeyImportError, match=f"key file {path}: ssh-rsa key of 768 bits is too small"):
        load_private_key(path)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== me", "it is a public key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "it is a public key"),
        (b"PuTTY-User-Key-File-3: ssh-ed25519\n", "PuTTY .ppk keys are not supported"),
        (b"hello world\n", "not a private key file"),
        (b"", "not a private key file"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n", "no END line"),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----\n",
            "invalid base64",
        ),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "not an openssh-key-v1",
        ),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n-----END OPENSSH PRIVATE KEY-----\n",
            "malformed OpenSSH private key",
        ),
        (b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", "malformed PEM"),
    ],
)
def test_not_a_usable_private_key(data: bytes, message: str) -> None:
    with pytest.raises(KeyImportError, match=message):
        import_private_key(data)
    assert not is_encrypted(data)


@pytest.mark.parametrize("cut", [100, 200, -120, -60])
def test_damaged_openssh_key(keydir: Path, cut: int) -> None:
    """Cutting the body short is reported as a malformed key, never a crash."""
    lines = (keydir / "ed25519-openssh-plain").read_bytes().splitlines()
    body = b"".join(lines[1:-1])
    damaged = body[:cut] if cut > 0 else body[cut:]
    damaged = damaged[: len(damaged) // 4 * 4]
    data = lines[0] + b"\n" + damaged + b"\n" + lines[-1] + b"\n"
    with pytest.raises(KeyImportError):
        import_private_key(data)


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(KeyImportError, match=f"key file {missing} not found") as info:
        load_private_key(missing)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(KeyImportError, match=f"cannot read key file {tmp_path}") as info:
        load_private_key(tmp_path)
    assert isinstance(info.value.__cause__, OSError)
    big = tmp_path / "big"
    with big.open("wb") as file:
        file.truncate(2 * 1024 * 1024)
    with pytest.raises(KeyImportError, match="larger than"):
        load_private_key(big)


# --- signing ----------------------------------------------------------------------------------

SIGN_CASES = [c for c in CASES if c.fmt == "openssh" and not c.encrypted]


@pytest.mark.parametrize("case", SIGN_CASES, ids=lambda c: c.id)
def test_sign_and_verify_every_algorithm(keydir: Path, case: Case) -> None:
    """RFC 4253 §6.6, RFC 5656 §3.1.2, RFC 8332 §3, RFC 8709 §6: our signatures verify,
    with trissh's PublicKey and independently with `cryptography`."""
    key = load_private_key(keydir / case.id)
    algorithms = key.signature_algorithms(allow_sha1=True)
    for algorithm in algorithms:
        blob = key.sign(DATA, algorithm)
        assert key.public_key.verify(blob, DATA, algorithm)
        assert crypto_verify(keydir / f"{case.id}.pub", blob, DATA) == algorithm
        assert not key.public_key.verify(blob, DATA + b"!", algorithm)
        damaged = bytearray(blob)
        damaged[-1] ^= 0x80
        assert not key.public_key.verify(bytes(damaged), DATA, algorithm)
        for other in algorithms:
            if other != algorithm:
                assert not key.public_key.verify(blob, DATA, other)


@pytest.mark.parametrize("case", SIGN_CASES, ids=lambda c: c.id)
def test_sign_refuses_unfit_algorithm(keydir: Path, case: Case) -> None:
    key = load_private_key(keydir / case.id)
    for algorithm in ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-256", "ssh-dss", "bogus"]:
        if algorithm not in key.signature_algorithms(allow_sha1=True):
            with pytest.raises(ValueError, match="cannot be used with"):
                key.sign(DATA, algorithm)


@pytest.mark.parametrize(
    "name, server_sig_algs, allow_sha1, expected",
    [
        ("ed25519", None, False, ["ssh-ed25519"]),
        ("ed25519", ["rsa-sha2-256"], True, ["ssh-ed25519"]),
        ("ecdsa384", None, False, ["ecdsa-sha2-nistp384"]),
        ("ecdsa521", ["ssh-ed25519"], False, ["ecdsa-sha2-nistp521"]),
        ("rsa1024", None, False, ["rsa-sha2-512", "rsa-sha2-256"]),
        ("rsa1024", None, True, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]),
        ("rsa1024", ["rsa-sha2-256"], False, ["rsa-sha2-256"]),
        ("rsa1024", ["rsa-sha2-256", "rsa-sha2-512"], False, ["rsa-sha2-512", "rsa-sha2-256"]),
        ("rsa1024", ["ssh-ed25519", "ssh-rsa"], False, ["rsa-sha2-512", "rsa-sha2-256"]),
        ("rsa1024", ["ssh-rsa"], True, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]),
        ("rsa1024", [], False, ["rsa-sha2-512", "rsa-sha2-256"]),
    ],
)
def test_signature_algorithms(
    keydir: Path, name: str, server_sig_algs: list[str] | None, allow_sha1: bool, expected: list[str]
) -> None:
    """RFC 8332 §3 / RFC 8308 §3.1: RSA keys offer rsa-sha2-512 then -256, filtered by
    server-sig-algs; ssh-rsa (SHA-1) only when allowed."""
    key = load_private_key(keydir / f"{name}-openssh-plain")
    assert key.signature_algorithms(server_sig_algs, allow_sha1=allow_sha1) == expected


def test_from_crypto_and_repr() -> None:
    crypto_key = ec.generate_private_key(ec.SECP384R1())
    key = PrivateKey.from_crypto(crypto_key, comment="me@host")
    assert key.key_type == "ecdsa-sha2-nistp384"
    assert key.comment == "me@host"
    assert key.crypto_key is crypto_key
    assert key.public_key.fingerprint in repr(key)
    assert "me@host" in repr(key)
    with pytest.raises(KeyImportError, match="unsupported key type dsa"):
        PrivateKey.from_crypto(dsa.generate_private_key(1024))  # type: ignore[arg-type]


# --- public key files -------------------------------------------------------------------------


def test_load_public_key_file_formats(tmp_path: Path) -> None:
    crypto_key = rsa.generate_private_key(65537, 2048)
    expected = PrivateKey.from_crypto(crypto_key).public_key
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        crypto_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert load_public_key_file(pem) == expected
    pub = tmp_path / "key.pub"
    pub.write_text(f"# my key\n\n{expected.openssh_line('comment')}\n")
    assert load_public_key_file(pub) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no public key found"),
        ("# only a comment\n", "no public key found"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\n", "it looks like a private key"),
        ("ssh-ed25519 AAAA\n", "malformed public key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "malformed PEM public key"),
    ],
)
def test_load_public_key_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.pub"
    path.write_text(text)
    with pytest.raises(KeyImportError, match=message):
        load_public_key_file(path)


def test_public_key_type_is_public_key(keydir: Path) -> None:
    assert isinstance(load_public_key_file(keydir / "ed25519-openssh-plain.pub"), PublicKey)


# --- read_private_key / read_public_key, against ssh-keygen ---------------------------------


def ssh_keygen_output(*args: str) -> str:
    return subprocess.run(
        ["ssh-keygen", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def test_names() -> None:
    """The public names: read_* are the documented ones, load_* stay as aliases."""
    assert trissh.read_private_key is load_private_key is read_private_key
    assert trissh.read_public_key is load_public_key_file is read_public_key
    assert issubclass(trissh.PassphraseRequired, trissh.KeyImportError)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_read_and_sign_every_format(keydir: Path, case: Case) -> None:
    """Every type and format ssh-keygen writes, plain and encrypted, reads and makes signatures
    that `cryptography` verifies with ssh-keygen's public key (RFC 4253 §6.6)."""
    key = read_private_key(keydir / case.id, PASSPHRASE if case.encrypted else None)
    for algorithm in key.signature_algorithms():
        assert crypto_verify(keydir / f"{case.id}.pub", key.sign(DATA, algorithm), DATA) == algorithm


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fingerprint_matches_ssh_keygen(keydir: Path, case: Case) -> None:
    path = keydir / case.id
    expected = ssh_keygen_output("-l", "-E", "sha256", "-f", f"{path}.pub").split()[1]
    assert expected.startswith("SHA256:")
    key = read_private_key(path, PASSPHRASE if case.encrypted else None)
    assert key.fingerprint == expected
    assert read_public_key(f"{path}.pub").fingerprint == expected


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_public_key_equals_ssh_keygen_y(keydir: Path, tmp_path: Path, case: Case) -> None:
    """``ssh-keygen -y`` derives the public key from the private file; ours is the same key."""
    path = keydir / case.id
    derived = tmp_path / "derived.pub"
    derived.write_text(ssh_keygen_output("-y", "-P", PASSPHRASE if case.encrypted else "", "-f", str(path)))
    key = read_private_key(path, PASSPHRASE if case.encrypted else None)
    assert read_public_key(derived) == key.public_key


# ssh-keygen exports Ed25519 keys only as RFC 4716.
EXPORTS = [
    (case, export)
    for case in SIGN_CASES
    for export in ("RFC4716", "PKCS8", "PEM")
    if case.key_type != "ssh-ed25519" or export == "RFC4716"
]


@pytest.mark.parametrize("case, export", EXPORTS, ids=[f"{c.id}-{e}" for c, e in EXPORTS])
def test_read_exported_public_keys(keydir: Path, tmp_path: Path, case: Case, export: str) -> None:
    """RFC 4716 §3 blocks (``ssh-keygen -e``) and PEM public keys (``-e -m PKCS8`` / ``-e -m PEM``)."""
    pub = keydir / f"{case.id}.pub"
    exported = tmp_path / "exported"
    exported.write_text(ssh_keygen_output("-e", "-m", export, "-f", str(pub)))
    assert read_public_key(exported) == read_public_key(pub)


def test_rfc4716_headers_and_continuations(keydir: Path, tmp_path: Path) -> None:
    """RFC 4716 §3.3: header lines, one continued with a backslash; base64 wrapped over lines."""
    key = read_public_key(keydir / "ed25519-openssh-plain.pub")
    b64 = base64.b64encode(key.blob).decode()
    block = (
        "---- BEGIN SSH2 PUBLIC KEY ----\n"
        'Comment: "a long comment that goes on \\\n'
        'and on and on"\n'
        "x-private: something\n"
        f"{b64[:20]}\n{b64[20:]}\n"
        "---- END SSH2 PUBLIC KEY ----\n"
    )
    (tmp_path / "k").write_text(block)
    assert read_public_key(tmp_path / "k") == key
    (tmp_path / "cut").write_text(block.replace("---- END SSH2 PUBLIC KEY ----\n", ""))
    with pytest.raises(KeyImportError, match=f"public key file {tmp_path / 'cut'}: .*no END line"):
        read_public_key(tmp_path / "cut")
    (tmp_path / "bad").write_text(block.replace(b64[:20], "!!!!"))
    with pytest.raises(KeyImportError, match="invalid base64"):
        read_public_key(tmp_path / "bad")


def test_read_public_key_refuses_certificate(keydir: Path, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")], check=True, timeout=60
    )
    shutil.copy(keydir / "ed25519-openssh-plain.pub", tmp_path / "user.pub")
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "id", "-n", "me", str(tmp_path / "user.pub")],
        check=True,
        timeout=60,
    )
    with pytest.raises(KeyImportError, match="it is a certificate"):
        read_public_key(tmp_path / "user-cert.pub")
    with pytest.raises(KeyImportError, match=r"it is a certificate.*\(key, certificate\)"):
        read_private_key(tmp_path / "user-cert.pub")


# --- FIDO security keys (PROTOCOL.u2f) --------------------------------------------------------


def security_key_file(key_type: str) -> bytes:
    """An unencrypted openssh-key-v1 file holding a FIDO key, laid out as PROTOCOL.u2f says.

    ``ssh-keygen -t ed25519-sk`` needs a real token; the file format does not.
    """
    application = b"ssh:"
    if key_type == "sk-ssh-ed25519@openssh.com":
        key_fields = string(bytes(32))
    else:
        point = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        key_fields = string("nistp256") + string(point)
    public_blob = string(key_type) + key_fields + string(application)
    flags = b"\x01"  # user presence required
    private = (
        uint32(0x12345678) * 2
        + string(key_type)
        + key_fields
        + string(application)
        + flags
        + string(b"key handle")
        + string(b"")  # reserved
        + string("me@token")
    )
    private += bytes(range(1, 1 + (-len(private) % 8)))  # padding to the cipher block size (8 for none)
    raw = (
        b"openssh-key-v1\x00"
        + string("none")
        + string("none")
        + string(b"")
        + uint32(1)
        + string(public_blob)
        + string(private)
    )
    body = base64.b64encode(raw).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    armored = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    return armored.encode()


@pytest.mark.parametrize("key_type", ["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"])
def test_security_key_files_refused(tmp_path: Path, key_type: str) -> None:
    path = tmp_path / "id_sk"
    path.write_bytes(security_key_file(key_type))
    path.chmod(0o600)  # or ssh-keygen refuses to read it
    # ssh-keygen itself accepts the file: it is a well-formed security key file.
    public_line = ssh_keygen_output("-y", "-f", str(path))
    assert public_line.startswith(key_type)
    message = f"key file {path}: {key_type} is a FIDO security key .*security keys are not supported"
    with pytest.raises(KeyImportError, match=message):
        read_private_key(path)
    with pytest.raises(KeyImportError, match=message):
        inspect_private_key(path.read_bytes(), name=f"key file {path}")
    (tmp_path / "id_sk.pub").write_text(public_line)
    with pytest.raises(KeyImportError, match="security keys are not supported"):
        read_public_key(tmp_path / "id_sk.pub")


# --- inspect_private_key: what a file says before decryption --------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_inspect_private_key(keydir: Path, case: Case) -> None:
    """The OpenSSH format shows its public key in clear text (PROTOCOL.key); encrypted PEM
    and PKCS#8 do not. No passphrase is used either way."""
    path = keydir / case.id
    info = inspect_private_key(path.read_bytes(), name=f"key file {path}")
    assert info.encrypted is case.encrypted
    expected = read_public_key(f"{path}.pub")
    if case.encrypted and case.fmt != "openssh":
        assert info.public_key is None
    else:
        assert info.public_key == expected


def test_passphrase_required_is_distinct(keydir: Path) -> None:
    """A missing passphrase is PassphraseRequired; a wrong one is a plain KeyImportError."""
    path = keydir / "ed25519-openssh-enc"
    with pytest.raises(PassphraseRequired):
        read_private_key(path)
    with pytest.raises(KeyImportError) as info:
        read_private_key(path, "wrong")
    assert not isinstance(info.value, PassphraseRequired)
    assert str(path) in str(info.value)
