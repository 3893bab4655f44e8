"""Throwaway Dropbear and AsyncSSH servers for interop tests, in the manner of ``trissh.testing.start_sshd``.

Theory of operation
-------------------
Each context manager builds a private set-up in a fresh temporary directory (host keys, one ed25519 user key,
``authorized_keys``, a ``known_hosts`` for the client), runs the server in the foreground on a free
127.0.0.1 port, and on exit stops it and everything it started and removes the directory. Once the server
answers, its KEXINIT is read by a small independent probe (:func:`read_kexinit`), so tests know exactly which
algorithms it offers.

Dropbear reads ``.ssh/authorized_keys`` from the target user's home directory as the password database
gives it (not ``$HOME``), and the installed 2022.83 has no option to look elsewhere. So
:func:`start_dropbear` runs it in a private mount namespace (``unshare -m``) in which a copy of
``/etc/passwd``, with the current user's home directory pointing at the temporary directory, is bind-mounted
over the real one. Nothing outside the namespace changes; commands start in the temporary directory and find
no shell start-up files there. That needs root; other users get a :class:`ServerUnavailable` (tests skip).

AsyncSSH needs an asyncio loop, and our tests are Trio, so its server is ``tests/asyncssh_server.py`` in a
subprocess of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

import pytest

# Private helpers of the sshd harness, shared so that every server is stopped and ported the same way.
from trissh.testing import sshd_path
from trissh.testing._sshd import _free_port, _log_tail, _ssh_keygen_path, _stop

__all__ = [
    "AsyncSSHServerFactory",
    "InteropServer",
    "KexInitLists",
    "ServerUnavailable",
    "dropbear_paths",
    "read_kexinit",
    "requires_sshd",
    "start_asyncssh_server",
    "start_dropbear",
]

_HOST: Final = "127.0.0.1"


def _sshd_missing() -> bool:
    try:
        sshd_path()
    except RuntimeError:
        return True
    return False


#: Marks tests that start OpenSSH's sshd themselves (outside the ``sshd`` fixture): skipped without it.
requires_sshd = pytest.mark.skipif(_sshd_missing(), reason="OpenSSH's sshd is not installed")
_START_TIMEOUT: Final = 15.0  # AsyncSSH's import alone takes a few hundred ms; CI machines can be slow
_PORT_ATTEMPTS: Final = 5
_ASYNCSSH_SCRIPT: Final = Path(__file__).with_name("asyncssh_server.py")

#: Dropbear host keys: key type (as in a ``.pub`` file) -> ``dropbearkey`` arguments.
DROPBEAR_HOST_KEY_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "ssh-ed25519": ("-t", "ed25519"),
    "ecdsa-sha2-nistp256": ("-t", "ecdsa", "-s", "256"),
    "ssh-rsa": ("-t", "rsa", "-s", "2048"),
}

#: AsyncSSH host keys: key type -> ``ssh-keygen`` arguments (one of every type trissh verifies).
ASYNCSSH_HOST_KEY_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "ssh-ed25519": ("-t", "ed25519"),
    "ecdsa-sha2-nistp256": ("-t", "ecdsa", "-b", "256"),
    "ecdsa-sha2-nistp384": ("-t", "ecdsa", "-b", "384"),
    "ecdsa-sha2-nistp521": ("-t", "ecdsa", "-b", "521"),
    "ssh-rsa": ("-t", "rsa", "-b", "2048"),
}


#: What the ``make_asyncssh_server`` fixture returns: :func:`start_asyncssh_server`'s keywords -> a server.
AsyncSSHServerFactory = Callable[..., "InteropServer"]


class ServerUnavailable(Exception):
    """The server cannot run on this machine (missing binary, not root): tests that need it should skip."""


@dataclasses.dataclass(frozen=True)
class KexInitLists:
    """The algorithm name-lists of a server's SSH_MSG_KEXINIT (RFC 4253 §7.1)."""

    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    ciphers_c2s: tuple[str, ...]
    ciphers_s2c: tuple[str, ...]
    macs_c2s: tuple[str, ...]
    macs_s2c: tuple[str, ...]

    def offers(self, category: str, name: str) -> bool:
        """Whether the server offers ``name`` in ``category``: kex, host_key, cipher or mac."""
        if category == "cipher":
            return name in self.ciphers_c2s and name in self.ciphers_s2c
        if category == "mac":
            return name in self.macs_c2s and name in self.macs_s2c
        lists: tuple[str, ...] = getattr(self, category)
        return name in lists


@dataclasses.dataclass(frozen=True)
class InteropServer:
    """A running throwaway server (Dropbear or AsyncSSH).

    Attributes:
        name: ``"dropbear"`` or ``"asyncssh"``.
        host, port: where it listens (always 127.0.0.1).
        username: the user to log in as: the current user.
        client_key: an unencrypted ed25519 private key the server accepts.
        known_hosts: a known_hosts file with all its host keys as ``[127.0.0.1]:port``.
        kexinit: the algorithms it offers, read from its KEXINIT.
        directory: the temporary directory (removed on exit); log_path: the server's log; pid: its process.
    """

    name: str
    host: str
    port: int
    username: str
    client_key: Path
    known_hosts: Path
    kexinit: KexInitLists
    directory: Path
    log_path: Path
    pid: int


# --- the KEXINIT probe --------------------------------------------------------------------------------------


class _Buffered:
    """Exact-length reads from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection during the probe")
        self._data += chunk

    def line(self) -> bytes:
        while b"\n" not in self._data:
            if len(self._data) > 8192:
                raise ConnectionError("no line ending from the server")
            self._fill()
        line, _, self._data = self._data.partition(b"\n")
        return line.rstrip(b"\r")

    def exactly(self, size: int) -> bytes:
        while len(self._data) < size:
            self._fill()
        out, self._data = self._data[:size], self._data[size:]
        return out


def read_kexinit(host: str, port: int, timeout: float = 5.0) -> KexInitLists:
    """Send a version line, read the server's first (unencrypted) KEXINIT, and return its lists.

    Written apart from trissh's transport on purpose: what a server offers must not depend on the client under
    test.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"SSH-2.0-trissh_interop_probe\r\n")
        reader = _Buffered(sock)
        # RFC 4253 §4.2: the server may send other lines before its version line.
        while not reader.line().startswith(b"SSH-"):
            pass
        packet_length, padding_length = struct.unpack(">IB", reader.exactly(5))
        payload = reader.exactly(packet_length - 1)[: packet_length - 1 - padding_length]
    if payload[:1] != bytes([20]):
        raise ValueError(f"expected SSH_MSG_KEXINIT (20), got message {payload[:1]!r}")
    offset = 17  # message number and cookie
    lists: list[tuple[str, ...]] = []
    for _ in range(10):
        (size,) = struct.unpack_from(">I", payload, offset)
        text = payload[offset + 4 : offset + 4 + size].decode("ascii")
        lists.append(tuple(text.split(",")) if text else ())
        offset += 4 + size
    kex, host_key, ciphers_c2s, ciphers_s2c, macs_c2s, macs_s2c = lists[:6]
    return KexInitLists(kex, host_key, ciphers_c2s, ciphers_s2c, macs_c2s, macs_s2c)


# --- shared plumbing ----------------------------------------------------------------------------------------


def _run_all(commands: Sequence[Sequence[str]]) -> list[bytes]:
    """Run key generators in parallel (RSA dominates start-up otherwise); return their stdouts."""
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for cmd in commands
    ]
    outputs, failures = [], []
    for cmd, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate()
        outputs.append(out)
        if proc.returncode != 0:
            failures.append(f"{' '.join(cmd)}: {err.decode(errors='replace').strip()}")
    if failures:
        raise RuntimeError("key generation failed: " + "; ".join(failures))
    return outputs


def _user_key_command(directory: Path) -> list[str]:
    return [
        _ssh_keygen_path(),
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "trissh-interop",
        "-f",
        str(directory / "user_ed25519"),
    ]


def _known_hosts_text(port: int, public_keys: Sequence[str]) -> str:
    # Only "type base64" of each public key line: comments differ between generators.
    return "".join(f"[{_HOST}]:{port} " + " ".join(line.split()[:2]) + "\n" for line in public_keys)


def _wait_for_banner(
    proc: subprocess.Popen[bytes], port: Callable[[], int | None], log_path: Path, what: str
) -> int:
    """Wait until the server answers with an SSH banner on its port; return the port."""
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if proc.poll() is not None:
            tail = _log_tail(log_path)
            if "Address already in use" in tail:
                raise _PortInUse(tail)
            raise RuntimeError(f"{what} exited with status {proc.returncode} on start-up; log tail:\n{tail}")
        current = port()
        if current is not None:
            with contextlib.suppress(OSError):
                with socket.create_connection((_HOST, current), timeout=1.0) as sock:
                    if sock.recv(256).startswith(b"SSH-"):
                        return current
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} did not answer on {_HOST} within {_START_TIMEOUT} s; "
                f"log tail:\n{_log_tail(log_path)}"
            )
        time.sleep(0.01)


class _PortInUse(Exception):
    """The server lost the race for its port: pick another."""


# --- Dropbear -----------------------------------------------------------------------------------------------


def dropbear_paths() -> tuple[str, str]:
    """Return the paths of ``dropbear`` and ``dropbearkey``.

    Raises:
        ServerUnavailable: one is missing, or we are not root (see the module docstring).
    """
    dropbear = shutil.which("dropbear") or shutil.which("dropbear", path="/usr/sbin:/usr/local/sbin")
    dropbearkey = shutil.which("dropbearkey")
    if not dropbear or not dropbearkey:
        raise ServerUnavailable(
            "Dropbear is not installed (as root: apt-get install -y dropbear-bin; scripts/test does it)"
        )
    if os.geteuid() != 0:
        raise ServerUnavailable(
            "the Dropbear tests need root: Dropbear reads authorized_keys from the user's real home, which "
            "the harness hides in a private mount namespace"
        )
    if not shutil.which("unshare"):
        raise ServerUnavailable(
            "unshare (util-linux) is missing: Dropbear's private mount namespace needs it"
        )
    return dropbear, dropbearkey


def _passwd_with_home(home: Path) -> str:
    """/etc/passwd with the current user's home directory replaced by ``home``."""
    me = pwd.getpwuid(os.getuid())
    entry = f"{me.pw_name}:x:{me.pw_uid}:{me.pw_gid}:{me.pw_gecos}:{home}:{me.pw_shell}\n"
    lines = Path("/etc/passwd").read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.split(":", 1)[0] != me.pw_name]
    return "".join([entry, *kept])  # first, so a lookup by name or by uid finds it


@contextlib.contextmanager
def start_dropbear(*, window: int | None = None) -> Iterator[InteropServer]:
    """Run a throwaway Dropbear on 127.0.0.1 with fresh keys, for the duration of a ``with`` block.

    Args:
        window: Dropbear's receive window (``-W``); its default (24 KiB) when None.

    Raises:
        ServerUnavailable: Dropbear cannot run here (tests should skip).
        RuntimeError: it did not start (the message has its log's tail).
    """
    dropbear, dropbearkey = dropbear_paths()
    tmp = Path(tempfile.mkdtemp(prefix="trissh-dropbear-"))  # mode 0700: private keys stay private
    proc: subprocess.Popen[bytes] | None = None
    try:
        host_keys = {key_type: tmp / f"host_{key_type}" for key_type in DROPBEAR_HOST_KEY_TYPES}
        _run_all(
            [
                *(
                    [dropbearkey, *args, "-f", str(host_keys[key_type])]
                    for key_type, args in DROPBEAR_HOST_KEY_TYPES.items()
                ),
                _user_key_command(tmp),
            ]
        )
        # `dropbearkey -y` prints the public key line among other text.
        public_keys = [
            next(line for line in out.decode().splitlines() if line.startswith(key_type + " "))
            for key_type, out in zip(
                host_keys,
                _run_all([[dropbearkey, "-y", "-f", str(path)] for path in host_keys.values()]),
                strict=True,
            )
        ]
        home = tmp / "home"
        (home / ".ssh").mkdir(mode=0o700, parents=True)
        (home / ".ssh" / "authorized_keys").write_text((tmp / "user_ed25519.pub").read_text())
        (tmp / "passwd").write_text(_passwd_with_home(home))
        log_path = tmp / "dropbear.log"
        for attempt in range(_PORT_ATTEMPTS):
            port = _free_port()
            argv = [
                dropbear,
                "-F",
                "-E",
                "-s",
                "-m",
                "-P",
                str(tmp / "dropbear.pid"),
                "-p",
                f"{_HOST}:{port}",
            ]
            argv += [arg for path in host_keys.values() for arg in ("-r", str(path))]
            if window is not None:
                argv += ["-W", str(window)]
            # `exec` keeps one process id through unshare, sh and dropbear, so stopping it stops Dropbear.
            script = 'mount --bind "$1" /etc/passwd && shift && exec "$@"'
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [
                        "unshare",
                        "--mount",
                        "--propagation",
                        "private",
                        "sh",
                        "-c",
                        script,
                        "sh",
                        str(tmp / "passwd"),
                        *argv,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,
                )
            try:
                pid_file, pid = tmp / "dropbear.pid", proc.pid

                def our_port(port: int = port, pid_file: Path = pid_file, pid: int = pid) -> int | None:
                    # Dropbear writes its pid file after binding: a stranger that took the port fails this.
                    with contextlib.suppress(OSError):
                        if pid_file.read_text().strip() == str(pid):
                            return port
                    return None

                _wait_for_banner(proc, our_port, log_path, "dropbear")
                break
            except _PortInUse:
                if attempt == _PORT_ATTEMPTS - 1:
                    raise RuntimeError(
                        f"dropbear could not bind a free port; log:\n{_log_tail(log_path)}"
                    ) from None
        assert proc is not None
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text(_known_hosts_text(port, public_keys))
        yield InteropServer(
            name="dropbear",
            host=_HOST,
            port=port,
            username=getpass.getuser(),
            client_key=tmp / "user_ed25519",
            known_hosts=known_hosts,
            kexinit=read_kexinit(_HOST, port),
            directory=tmp,
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        try:
            if proc is not None:
                _stop(proc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# --- AsyncSSH -----------------------------------------------------------------------------------------------


def _algorithm_argument(names: Sequence[str] | None) -> str:
    return "all" if names is None else ",".join(names)


@contextlib.contextmanager
def start_asyncssh_server(
    *,
    kex_algs: Sequence[str] | None = None,
    encryption_algs: Sequence[str] | None = None,
    mac_algs: Sequence[str] | None = None,
    signature_algs: Sequence[str] | None = None,
    compression_algs: Sequence[str] | None = None,
    auth_args: Sequence[str] = (),
) -> Iterator[InteropServer]:
    """Run ``tests/asyncssh_server.py`` on 127.0.0.1 with fresh keys, for the duration of a ``with`` block.

    Args:
        kex_algs, encryption_algs, mac_algs, signature_algs, compression_algs: what the server offers,
            in its order of preference; None for everything AsyncSSH supports (GSS key exchange aside).
        auth_args: the script's authentication options (``--password``, ``--kbdint-prompt``...).

    Raises:
        ServerUnavailable: AsyncSSH is not installed (tests should skip).
        RuntimeError: the server did not start (the message has its log's tail).
    """
    try:
        import asyncssh  # noqa: F401  (only to tell a missing package from a broken server)
    except ImportError:
        raise ServerUnavailable("AsyncSSH is not installed (pip install -e '.[test]')") from None
    keygen = _ssh_keygen_path()
    tmp = Path(tempfile.mkdtemp(prefix="trissh-asyncssh-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        host_keys = {key_type: tmp / f"host_{key_type}" for key_type in ASYNCSSH_HOST_KEY_TYPES}
        _run_all(
            [
                *(
                    [keygen, "-q", *args, "-N", "", "-f", str(host_keys[t])]
                    for t, args in ASYNCSSH_HOST_KEY_TYPES.items()
                ),
                _user_key_command(tmp),
            ]
        )
        (tmp / "authorized_keys").write_text((tmp / "user_ed25519.pub").read_text())
        port_file = tmp / "port"
        log_path = tmp / "asyncssh.log"
        argv = [
            sys.executable,
            str(_ASYNCSSH_SCRIPT),
            "--port-file",
            str(port_file),
            "--authorized-keys",
            str(tmp / "authorized_keys"),
            "--kex-algs",
            _algorithm_argument(kex_algs),
            "--encryption-algs",
            _algorithm_argument(encryption_algs),
            "--mac-algs",
            _algorithm_argument(mac_algs),
            "--signature-algs",
            _algorithm_argument(signature_algs),
            "--compression-algs",
            _algorithm_argument(compression_algs),
            *auth_args,
        ]
        argv += [arg for path in host_keys.values() for arg in ("--host-key", str(path))]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

        def read_port() -> int | None:
            with contextlib.suppress(OSError, ValueError):
                return int(port_file.read_text())
            return None

        # The server binds port 0 itself, so there is no race for the port to retry.
        port = _wait_for_banner(proc, read_port, log_path, "the AsyncSSH server")
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text(
            _known_hosts_text(port, [Path(f"{path}.pub").read_text() for path in host_keys.values()])
        )
        yield InteropServer(
            name="asyncssh",
            host=_HOST,
            port=port,
            username=getpass.getuser(),
            client_key=tmp / "user_ed25519",
            known_hosts=known_hosts,
            kexinit=read_kexinit(_HOST, port),
            directory=tmp,
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        try:
            if proc is not None:
                _stop(proc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
