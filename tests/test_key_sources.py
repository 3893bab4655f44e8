"""Which keys publickey auth offers, in which order (trissh._auth.key_sources), with real OpenSSH tools.

Keys come from ``ssh-keygen``; the agent is a real ``ssh-agent -D`` per test, loaded with ``ssh-add``;
``HOME`` points at a temporary directory with its own ``~/.ssh``. The order pinned here is OpenSSH 9.2's
(``sshconnect2.c`` pubkey_prepare, ``ssh.c`` load_public_identity_files, ``readconf.c`` default files).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from agents import run_agent, ssh_add

from trissh._algorithms.certificates import parse_openssh_certificate_line
from trissh._algorithms.hostkeys import PublicKey
from trissh._auth.agent import AgentIdentity, SSHAgentClient
from trissh._auth.identity import Identity, KeyIdentity
from trissh._auth.key_sources import (
    DEFAULT_KEYS,
    ClientKey,
    ClientKeys,
    FileIdentity,
    KeySources,
    collect_identities,
    describe_sources,
    open_key_sources,
)
from trissh._auth.keys import PassphraseRequired, read_private_key, read_public_key
from trissh._errors import KeyImportError

PASSPHRASE = "s3cret phrase"
DATA = b"session id || publickey request"
TIMEOUT = 20


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=60, env=env)
    return result.stdout


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "", fmt: str | None = None) -> Path:
    # -a 4: few bcrypt rounds, to keep the tests quick.
    fmt_args = ["-m", fmt] if fmt else []
    run(
        "ssh-keygen",
        "-q",
        "-a",
        "4",
        "-t",
        key_type,
        *fmt_args,
        "-N",
        passphrase,
        "-C",
        path.name,
        "-f",
        str(path),
    )
    return path


def certify(ca: Path, pub: Path, *extra: str) -> Path:
    """``ssh-keygen -s ca -I id -n user key.pub``: writes ``key-cert.pub``."""
    run("ssh-keygen", "-q", "-s", str(ca), "-I", f"id-{pub.stem}", "-n", "user", *extra, str(pub))
    return pub.with_name(pub.name[: -len(".pub")] + "-cert.pub")


def public(path: Path) -> PublicKey:
    return read_public_key(f"{path}.pub")


@dataclass
class Agent:
    path: str

    def add(self, *keys: Path) -> None:
        for key in keys:
            ssh_add(Path(self.path), "-q", key)


@pytest.fixture
def agent() -> Iterator[Agent]:
    """A real ``ssh-agent -D`` on a socket of its own."""
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent is not installed")
    with run_agent() as sock:
        yield Agent(str(sock))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME with an empty ``~/.ssh``; returns the ``.ssh`` directory."""
    home_dir = tmp_path / "home"
    (home_dir / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home_dir))
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home_dir))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home_dir / ".ssh"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("ca") / "ca")


class Counter:
    """An async passphrase callback that counts its calls."""

    def __init__(self, answer: str | None = PASSPHRASE) -> None:
        self.answer = answer
        self.paths: list[str] = []

    async def __call__(self, path: str) -> str | None:
        await trio.lowlevel.checkpoint()
        self.paths.append(path)
        return self.answer


def kinds(sources: KeySources) -> list[tuple[str, str, bool]]:
    """(identity class, fingerprint, certified?) per identity, for order assertions."""
    return [(type(i).__name__, i.fingerprint, i.certificate is not None) for i in sources.identities]


async def check_signs(identity: Identity) -> None:
    """The identity signs under each of its algorithms, verifiably with its public key."""
    for algorithm in identity.algorithms(None):
        blob = await identity.sign(DATA, algorithm)
        plain = algorithm.replace("-cert-v01@openssh.com", "")
        assert identity.public_key.verify(blob, DATA, plain), algorithm


# --- default key files ------------------------------------------------------------------------


async def test_default_files_in_openssh_order(home: Path) -> None:
    """readconf.c: id_rsa, id_ecdsa, (id_ecdsa_sk), id_ed25519, (id_ed25519_sk, id_xmss, id_dsa)."""
    for name, key_type in [("id_ed25519", "ed25519"), ("id_rsa", "rsa"), ("id_ecdsa", "ecdsa")]:
        keygen(home / name, key_type)
    # Types trissh cannot use are not even looked at: garbage there changes nothing.
    for name in ["id_dsa", "id_ed25519_sk", "id_ecdsa_sk", "id_xmss"]:
        (home / name).write_text("not a key")
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None)
    assert [i.public_key for i in sources.identities] == [
        public(home / "id_rsa"),
        public(home / "id_ecdsa"),
        public(home / "id_ed25519"),
    ]
    assert all(isinstance(i, KeyIdentity) for i in sources.identities)
    for identity in sources.identities:
        await check_signs(identity)


async def test_missing_default_files_are_quietly_absent(home: Path) -> None:
    keygen(home / "id_ecdsa", "ecdsa")
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=DEFAULT_KEYS)
    assert [i.public_key for i in sources.identities] == [public(home / "id_ecdsa")]
    assert f"file {home / 'id_rsa'}: not found" in sources.files


async def test_broken_default_file_skipped_with_log(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    (home / "id_rsa").write_text("garbage\n")
    keygen(home / "id_ed25519")
    with trio.fail_after(TIMEOUT), caplog.at_level(logging.INFO, "trissh.auth"):
        sources = await collect_identities(agent=None)
    assert [i.public_key for i in sources.identities] == [public(home / "id_ed25519")]
    assert any(str(home / "id_rsa") in r.getMessage() for r in caplog.records)


async def test_locked_default_key_skipped_with_log(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An encrypted default key and no passphrase: not offered (it could not sign), and a log says so."""
    keygen(home / "id_ed25519", passphrase=PASSPHRASE)
    keygen(home / "id_rsa", "rsa", passphrase=PASSPHRASE, fmt="PEM")
    (home / "id_rsa.pub").unlink()  # a PEM key without .pub cannot even be identified
    with trio.fail_after(TIMEOUT), caplog.at_level(logging.INFO, "trissh.auth"):
        sources = await collect_identities(agent=None, passphrase=None)
    assert sources.identities == ()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any(str(home / "id_ed25519") in m and "no passphrase" in m for m in messages), messages
    assert any(str(home / "id_rsa") in m and "passphrase" in m for m in messages), messages


# --- encrypted files: decrypted only on sign ---------------------------------------------------


# PEM/PKCS#8 without .pub: see test_encrypted_pem_without_pub_decrypts_up_front.
@pytest.mark.parametrize(
    "fmt, with_pub", [(None, True), (None, False), ("PEM", True), ("PKCS8", True)], ids=str
)
async def test_passphrase_asked_only_on_sign_and_once(
    tmp_path: Path, fmt: str | None, with_pub: bool
) -> None:
    """The public key comes from ``.pub`` or (OpenSSH format) the file's clear-text header."""
    key_path = keygen(tmp_path / "key", "ecdsa", passphrase=PASSPHRASE, fmt=fmt)
    expected = public(key_path)
    if not with_pub:
        (tmp_path / "key.pub").unlink()
    ask = Counter()
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[key_path], passphrase=ask)
        assert ask.paths == []
        [identity] = sources.identities
        assert isinstance(identity, FileIdentity)
        assert identity.public_key == expected
        assert ask.paths == []
        await check_signs(identity)
        await check_signs(identity)
    assert ask.paths == [str(key_path)]


async def test_concurrent_signs_ask_once(tmp_path: Path, ca: Path) -> None:
    """A key and its -cert share one file: signing with both at once asks one time."""
    key_path = keygen(tmp_path / "key", passphrase=PASSPHRASE)
    certify(ca, tmp_path / "key.pub")
    ask = Counter()
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[key_path], passphrase=ask)
        assert [i.certificate is not None for i in sources.identities] == [False, True]
        async with trio.open_nursery() as nursery:
            for identity in sources.identities:
                for _ in range(3):
                    nursery.start_soon(check_signs, identity)
    assert ask.paths == [str(key_path)]


async def test_encrypted_pem_without_pub_decrypts_up_front(tmp_path: Path) -> None:
    """Legacy PEM hides the public key: without ``.pub`` the passphrase is needed to learn it."""
    key_path = keygen(tmp_path / "key", "rsa", passphrase=PASSPHRASE, fmt="PEM")
    expected = public(key_path)
    (tmp_path / "key.pub").unlink()
    ask = Counter()
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[key_path], passphrase=ask)
        assert ask.paths == [str(key_path)]
        [identity] = sources.identities
        assert identity.public_key == expected
        await check_signs(identity)
        with pytest.raises(KeyImportError, match=f"wrong passphrase for key file {key_path}"):
            await collect_identities(agent=None, client_keys=[key_path], passphrase="wrong")


async def test_declined_passphrase_raises_passphrase_required(tmp_path: Path) -> None:
    key_path = keygen(tmp_path / "key", passphrase=PASSPHRASE)
    ask = Counter(answer=None)
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[str(key_path)], passphrase=ask)
        [identity] = sources.identities
        for _ in range(2):
            with pytest.raises(PassphraseRequired, match=str(key_path)):
                await identity.sign(DATA, "ssh-ed25519")
    assert ask.paths == [str(key_path)]  # a declined file is not asked about again


async def test_wrong_passphrase_on_sign_names_file(tmp_path: Path) -> None:
    key_path = keygen(tmp_path / "key", passphrase=PASSPHRASE)
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[key_path], passphrase="wrong")
        [identity] = sources.identities
        with pytest.raises(KeyImportError, match=f"wrong passphrase for key file {key_path}") as info:
            await identity.sign(DATA, "ssh-ed25519")
    assert not isinstance(info.value, PassphraseRequired)


async def test_stale_pub_file_detected_on_sign(tmp_path: Path) -> None:
    """A ``.pub`` of another key beside an encrypted PEM file: caught when decrypting (as OpenSSH does)."""
    key_path = keygen(tmp_path / "key", "ecdsa", passphrase=PASSPHRASE, fmt="PEM")
    other = keygen(tmp_path / "other")
    shutil.copy(f"{other}.pub", f"{key_path}.pub")
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[key_path], passphrase=PASSPHRASE)
        with pytest.raises(
            KeyImportError, match=rf"key file {key_path} holds key SHA256:.*, but {key_path}.pub names"
        ):
            await sources.identities[0].sign(DATA, "ecdsa-sha2-nistp256")


# --- explicit keys: loud ----------------------------------------------------------------------


async def test_explicit_keys_fail_loudly(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    missing = tmp_path / "nope"
    with trio.fail_after(TIMEOUT):
        with pytest.raises(KeyImportError, match=f"key file {missing} not found"):
            await collect_identities(agent=None, client_keys=[missing])
        with pytest.raises(KeyImportError, match=f"key file {text}: not a private key file"):
            await collect_identities(agent=None, client_keys=[str(text)])
        with pytest.raises(TypeError, match=r"client_keys\[0\]"):
            await collect_identities(agent=None, client_keys=[42])  # type: ignore[list-item]


async def test_client_keys_forms(tmp_path: Path, home: Path) -> None:
    """None and [] mean no files (defaults are not looked at); one item needs no list; ~ expands."""
    keygen(home / "id_ed25519")
    key_path = keygen(tmp_path / "key", "ecdsa")
    key = read_private_key(key_path)
    with trio.fail_after(TIMEOUT):
        empties: list[ClientKeys] = [None, []]
        for empty in empties:
            assert (await collect_identities(agent=None, client_keys=empty)).identities == ()
        ones: list[ClientKeys] = [key_path, str(key_path), key, [key]]
        for one in ones:
            [identity] = (await collect_identities(agent=None, client_keys=one)).identities
            assert identity.public_key == key.public_key
        [identity] = (await collect_identities(agent=None, client_keys=["~/.ssh/id_ed25519"])).identities
        assert identity.public_key == public(home / "id_ed25519")


async def test_identity_items_pass_through(tmp_path: Path) -> None:
    key = read_private_key(keygen(tmp_path / "key"))
    mine = KeyIdentity(key, source="my key store")
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[mine])
    assert sources.identities == (mine,)


# --- certificates -----------------------------------------------------------------------------


async def test_cert_beside_key_is_offered_after_it(tmp_path: Path, ca: Path) -> None:
    """ssh.c load_public_identity_files: ``<path>`` then ``<path>-cert.pub``."""
    key_path = keygen(tmp_path / "key")
    cert_path = certify(ca, tmp_path / "key.pub")
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[key_path])
        plain, certified = sources.identities
        assert plain.certificate is None
        assert certified.certificate == parse_openssh_certificate_line(cert_path.read_text())
        assert certified.public_key == plain.public_key == public(key_path)
        assert certified.algorithms(None) == ["ssh-ed25519-cert-v01@openssh.com"]
        await check_signs(certified)


async def test_default_key_cert_pickup(home: Path, ca: Path) -> None:
    keygen(home / "id_rsa", "rsa")
    certify(ca, home / "id_rsa.pub")
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None)
    assert [i.certificate is not None for i in sources.identities] == [False, True]
    assert sources.identities[1].algorithms(None)[0] == "rsa-sha2-512-cert-v01@openssh.com"


async def test_pairs_offer_only_the_certified_key(tmp_path: Path, ca: Path) -> None:
    key_path = keygen(tmp_path / "key")
    cert_path = certify(ca, tmp_path / "key.pub")
    cert = parse_openssh_certificate_line(cert_path.read_text())
    key = read_private_key(key_path)
    with trio.fail_after(TIMEOUT):
        pairs: list[ClientKey] = [
            (key_path, cert_path),
            (str(key_path), cert),
            (key, cert.blob),
            (key, str(cert_path)),
        ]
        for pair in pairs:
            [identity] = (await collect_identities(agent=None, client_keys=[pair])).identities
            assert identity.certificate == cert
            await check_signs(identity)
        # A lone pair needs no list around it.
        [identity] = (await collect_identities(agent=None, client_keys=(key, cert))).identities
        assert identity.certificate == cert


async def test_certificate_of_another_key(tmp_path: Path, ca: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Explicit: an error. Picked up beside a key: a warning, and only the plain key."""
    key_path = keygen(tmp_path / "key")
    other = keygen(tmp_path / "other")
    other_cert = certify(ca, tmp_path / "other.pub")
    with trio.fail_after(TIMEOUT):
        with pytest.raises(KeyImportError, match=r"certifies .*not this key"):
            await collect_identities(agent=None, client_keys=[(key_path, other_cert)])
        shutil.copy(other_cert, f"{key_path}-cert.pub")
        with caplog.at_level(logging.WARNING, "trissh.auth"):
            sources = await collect_identities(agent=None, client_keys=[key_path])
    assert [i.certificate for i in sources.identities] == [None]
    assert any("not this key" in r.getMessage() for r in caplog.records)
    assert other.exists()


async def test_host_certificate_is_not_offered(tmp_path: Path, ca: Path) -> None:
    """pubkey_prepare ignores certificates that are not user certificates."""
    key_path = keygen(tmp_path / "key")
    certify(ca, tmp_path / "key.pub", "-h")
    with trio.fail_after(TIMEOUT):
        sources = await collect_identities(agent=None, client_keys=[key_path])
    assert [i.certificate for i in sources.identities] == [None]


# --- with an agent: OpenSSH's order ------------------------------------------------------------


async def test_order_with_agent(tmp_path: Path, agent: Agent) -> None:
    """pubkey_prepare: configured keys the agent holds (in the agent's order, used through the agent),
    then the agent's other keys, then the remaining configured keys (in their order)."""
    types = {"a": "ed25519", "b": "ecdsa", "c": "rsa", "d": "ed25519"}
    a, b, c, d = (keygen(tmp_path / name, key_type) for name, key_type in types.items())
    agent.add(d, c, a)  # the agent lists keys in the order they were added
    with trio.fail_after(TIMEOUT):
        async with SSHAgentClient(agent.path) as client:
            sources = await collect_identities(agent=client, client_keys=[a, b, c])
            assert [i.public_key for i in sources.identities] == [public(c), public(a), public(d), public(b)]
            assert [type(i) for i in sources.identities] == [AgentIdentity] * 3 + [KeyIdentity]
            for identity in sources.identities:
                await check_signs(identity)
            only = await collect_identities(agent=client, client_keys=[a, b, c], identities_only=True)
            assert [i.public_key for i in only.identities] == [public(c), public(a), public(b)]
            assert [type(i) for i in only.identities] == [AgentIdentity, AgentIdentity, KeyIdentity]
    assert f"agent {agent.path}: 3 keys" == sources.agent


async def test_locked_key_used_through_agent(
    home: Path, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encrypted default key with no passphrase is still offered when the agent (found through
    $SSH_AUTH_SOCK) has it; the other locked default key is not."""
    monkeypatch.setenv("SSH_AUTH_SOCK", agent.path)
    locked = keygen(home / "id_ed25519", passphrase=PASSPHRASE)
    other = keygen(home / "id_ecdsa", "ecdsa", passphrase=PASSPHRASE)
    # ssh-add would prompt for the passphrase: give the agent a decrypted copy instead.
    plain_copy = tmp_copy_without_passphrase(locked)
    agent.add(plain_copy)
    with trio.fail_after(TIMEOUT):
        async with open_key_sources() as sources:
            [identity] = sources.identities
            assert isinstance(identity, AgentIdentity)
            assert identity.public_key == public(locked)
            await check_signs(identity)
    assert other.exists()


def tmp_copy_without_passphrase(key_path: Path) -> Path:
    copy = key_path.with_name(key_path.name + ".plain")
    shutil.copy(key_path, copy)
    copy.chmod(0o600)
    run("ssh-keygen", "-q", "-p", "-P", PASSPHRASE, "-N", "", "-f", str(copy))
    return copy


async def test_agent_cert_matches_file_cert(tmp_path: Path, ca: Path, agent: Agent) -> None:
    """ssh-add adds ``key-cert.pub`` too; a file's certificate matches the agent's certificate."""
    key_path = keygen(tmp_path / "key")
    certify(ca, tmp_path / "key.pub")
    agent.add(key_path)  # adds the key and its certificate
    with trio.fail_after(TIMEOUT):
        async with open_key_sources(agent_path=agent.path, client_keys=[key_path]) as sources:
            assert [(type(i), i.certificate is not None) for i in sources.identities] == [
                (AgentIdentity, False),
                (AgentIdentity, True),
            ]
            for identity in sources.identities:
                await check_signs(identity)


async def test_file_cert_signed_by_agent_holding_plain_key(tmp_path: Path, ca: Path, agent: Agent) -> None:
    """sign_and_send_pubkey: a certificate whose plain key is in the agent is signed by the agent,
    so a locked key file with a certificate needs no passphrase."""
    key_path = keygen(tmp_path / "key", passphrase=PASSPHRASE)
    agent.add(tmp_copy_without_passphrase(key_path))  # the plain key only
    certify(ca, tmp_path / "key.pub")
    with trio.fail_after(TIMEOUT):
        async with open_key_sources(
            agent_path=agent.path, client_keys=[key_path], passphrase=None
        ) as sources:
            plain, certified = sources.identities
            assert isinstance(plain, AgentIdentity) and plain.certificate is None
            assert certified.certificate is not None and "signed by the agent" in certified.source
            await check_signs(certified)


async def test_agent_closed_after_block(tmp_path: Path, agent: Agent) -> None:
    key_path = keygen(tmp_path / "key")
    agent.add(key_path)
    with trio.fail_after(TIMEOUT):
        async with open_key_sources(agent_path=agent.path, client_keys=[]) as sources:
            [identity] = sources.identities
            await check_signs(identity)
        with pytest.raises(trio.ClosedResourceError):
            await identity.sign(DATA, "ssh-ed25519")


# --- describing the sources ------------------------------------------------------------------


async def test_describe_without_agent(home: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_key_sources() as sources:
            text = describe_sources(sources)
    assert sources.identities == ()
    assert "no agent: SSH_AUTH_SOCK is unset" in text
    for name in ("id_rsa", "id_ecdsa", "id_ed25519"):
        assert f"file {home / name}: not found" in text
    assert "client_keys=" in text and "ssh-add" in text


async def test_describe_agent_disabled_or_unreachable(home: Path, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_key_sources(agent_path=None, client_keys=[]) as sources:
            assert "no agent: agent_path=None" in sources.describe()
            assert "no key files" in sources.describe()
        bogus = tmp_path / "no-agent-here.sock"
        async with open_key_sources(agent_path=bogus, client_keys=[]) as sources:
            assert f"agent {bogus}: not usable" in sources.describe()


async def test_describe_lists_keys_and_agent(tmp_path: Path, agent: Agent) -> None:
    key_path = keygen(tmp_path / "key", passphrase=PASSPHRASE)
    agent.add(keygen(tmp_path / "agentkey"))
    with trio.fail_after(TIMEOUT):
        async with open_key_sources(agent_path=agent.path, client_keys=[key_path]) as sources:
            text = sources.describe()
    assert f"agent {agent.path}: 1 key" in text
    assert (
        f"file {key_path}: ssh-ed25519 {public(key_path).fingerprint} (encrypted, no passphrase given" in text
    )
