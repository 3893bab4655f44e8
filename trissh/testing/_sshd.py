"""A throwaway real OpenSSH server: :func:`start_sshd` and the :class:`SSHServer` it yields.

Theory of operation
-------------------
:func:`start_sshd` builds a complete, private sshd set-up in a fresh temporary directory (fresh host keys of
every common type, fresh user keys, ``authorized_keys``, ``known_hosts`` and ``sshd_config``), runs the
system's ``sshd`` in the foreground on a free loopback port, and tears everything down on exit. Nothing
outside the temporary directory is written, except ``/run/sshd`` (sshd's privilege-separation directory) if it
is missing.

Two details matter for speed and determinism:

* **A clean environment for commands.** sshd runs every command through the user's login shell, and Debian's
  bash sources ``~/.bashrc`` even for ``ssh host cmd``. A developer's ``.bashrc`` that initialises a Python
  version manager adds ~100 ms to *every* command. ``SetEnv HOME=<temp dir>`` points ``~`` at the temporary
  directory, where bash finds no start-up file. Commands still start in the user's real home directory (sshd
  changes to the passwd entry's directory, not to ``$HOME``).
* **Caller overrides.** sshd keeps the *first* value it sees for most keywords, rejects some duplicates
  (``Subsystem``) and ignores every ``SetEnv`` line after the first. So ``extra_config`` lines go first, a
  default is left out when the caller sets the same keyword, ``SetEnv`` values are merged into one line, and
  ``Match`` blocks (which run to the end of the file) go last.

This module deliberately imports nothing else from trissh, so it works even when the client is broken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from trissh import SSHConnection

__all__ = [
    "ENCRYPTED_KEY_PASSPHRASE",
    "HOST_KEY_TYPES",
    "USER_KEY_TYPES",
    "SSHServer",
    "ToolMissing",
    "sshd_path",
    "start_sshd",
]

#: Passphrase of the ``"ed25519-encrypted"`` user key.
ENCRYPTED_KEY_PASSPHRASE: Final = "trissh-test"

#: Host key types generated for every server: key type (as in a ``.pub`` file) -> ``ssh-keygen`` arguments.
HOST_KEY_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "ssh-ed25519": ("-t", "ed25519"),
    "ecdsa-sha2-nistp256": ("-t", "ecdsa", "-b", "256"),
    "ecdsa-sha2-nistp384": ("-t", "ecdsa", "-b", "384"),
    "ecdsa-sha2-nistp521": ("-t", "ecdsa", "-b", "521"),
    "ssh-rsa": ("-t", "rsa", "-b", "3072"),
}

#: User key types :func:`start_sshd` can generate: name -> ``ssh-keygen`` arguments (passphrase included).
USER_KEY_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "ed25519": ("-t", "ed25519", "-N", ""),
    "ecdsa": ("-t", "ecdsa", "-b", "256", "-N", ""),
    "rsa": ("-t", "rsa", "-b", "3072", "-N", ""),
    "ed25519-encrypted": ("-t", "ed25519", "-N", ENCRYPTED_KEY_PASSPHRASE),
}

_HOST: Final = "127.0.0.1"
# How long sshd gets to answer with its banner; generous because CI machines can be slow.
_START_TIMEOUT: Final = 10.0
# Retries when another process grabs our free port between our probe and sshd's bind.
_PORT_ATTEMPTS: Final = 5
# How long sshd gets to exit after SIGTERM before SIGKILL.
_STOP_TIMEOUT: Final = 5.0
# Keywords the harness owns: changing them would make SSHServer lie about where or how the server runs.
_RESERVED_KEYWORDS: Final = frozenset({"listenaddress", "port", "pidfile", "authorizedkeysfile"})
_PRIVSEP_DIR: Final = Path("/run/sshd")
# Where sshd_path() looks besides PATH (sbin is often not on a user's PATH).
_SSHD_FIXED_PATH = "/usr/sbin/sshd"
_SBIN_DIRS = "/usr/local/sbin:/sbin"


class ToolMissing(RuntimeError):
    """sshd or ssh-keygen is not installed (the message says which package has it)."""


@dataclasses.dataclass(frozen=True)
class SSHServer:
    """A running throwaway sshd, as yielded by :func:`start_sshd`.

    Attributes:
        host: The address sshd listens on, always ``"127.0.0.1"``.
        port: The TCP port sshd listens on.
        username: The user to log in as: the current user.
        client_key: Path of an unencrypted ed25519 private key that the server accepts.
        client_keys: Every generated user private key by type name (``"ed25519"``, ``"ecdsa"``, ``"rsa"``,
            ``"ed25519-encrypted"``, as requested); all are in ``authorized_keys``. The encrypted key's
            passphrase is :data:`ENCRYPTED_KEY_PASSPHRASE`.
        known_hosts: Path of a known_hosts file listing all the server's host keys as ``[127.0.0.1]:port``.
        host_keys: Host private key paths by key type (``"ssh-ed25519"``, ``"ecdsa-sha2-nistp256"``, ...).
        directory: The temporary directory holding everything; removed when the server stops.
        config_path: Path of the generated ``sshd_config``.
        log_path: Path of sshd's log (its stderr, ``LogLevel VERBOSE``).
        pid: Process id of the listening sshd.
        alias: The ``Host`` name :attr:`ssh_config` gives the server (the plugin numbers its servers).
        password: The login's password when the server was made with a password account, else None.
    """

    host: str
    port: int
    username: str
    client_key: Path
    client_keys: dict[str, Path]
    known_hosts: Path
    host_keys: dict[str, Path]
    directory: Path
    config_path: Path
    log_path: Path
    pid: int
    alias: str = "ssh-server"
    password: str | None = None

    @property
    def user(self) -> str:
        """The login name (the same as :attr:`username`)."""
        return self.username

    @property
    def ssh_config(self) -> str:
        """An ssh_config ``Host`` block for this server, for tools that read one (``ssh -F``, ``trissh -F``).

        ``ssh -F FILE ALIAS`` and ``trissh.connect(ALIAS, config=FILE)`` then log in with no other option.
        """
        return (
            f"Host {self.alias}\n"
            f"  HostName {self.host}\n"
            f"  Port {self.port}\n"
            f"  User {self.username}\n"
            f"  IdentityFile {self.client_key}\n"
            "  IdentitiesOnly yes\n"
            "  IdentityAgent none\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  StrictHostKeyChecking yes\n"
        )

    def connect(self, **options: Any) -> AbstractAsyncContextManager[SSHConnection]:
        """``trissh.connect()`` to this server: address, user, key and known_hosts filled in.

        Keyword arguments go to :func:`trissh.connect` and win over those. The connection reads no
        ssh_config and uses no ssh-agent (``config=None``, ``agent_path=None``), so a developer's own set-up
        cannot change what a test sees. A server with a password account logs in by ``password=`` alone.
        """
        import trissh  # here, not at the top: this module must work even when the client is broken

        settings: dict[str, Any] = {
            "port": self.port,
            "username": self.username,
            "client_keys": [self.client_key],
            "known_hosts": self.known_hosts,
            "config": None,
            "agent_path": None,
        }
        if self.password is not None:  # a password account (the plugin's): sshd cannot read our keys for it
            settings.update(password=self.password, client_keys=[])
        return trissh.connect(self.host, **{**settings, **options})

    def kill(self) -> None:
        """Kill sshd at once (SIGKILL), with every session it serves: as when a server dies or its host
        goes down. Connections to it see their TCP connection drop. The cleanup at the end of
        :func:`start_sshd` still runs and removes the directory."""
        pids = [*_descendants(self.pid), self.pid]
        _signal_all(pids, signal.SIGKILL)
        _wait_gone(pids)  # SIGKILL is delivered asynchronously: the caller must see a dead server

    def alive(self) -> bool:
        """Whether the listening sshd is still running."""
        return _alive(self.pid)

    def ssh_command(self, *command: str, key: Path | None = None) -> list[str]:
        """Return an OpenSSH client command line that logs in to this server.

        Handy for comparing trissh with OpenSSH, and for proving the set-up works without trissh.

        Args:
            command: The remote command and its arguments (none: an interactive session).
            key: The private key to use; :attr:`client_key` by default.
        """
        return [
            "ssh",
            "-F", "none",  # ignore the user's ~/.ssh/config: it may set other keys, users or ports
            "-i", str(key or self.client_key),
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-p", str(self.port),
            f"{self.username}@{self.host}",
            *command,
        ]  # fmt: skip

    def read_log(self) -> str:
        """Return sshd's log so far (useful in assertion messages)."""
        return self.log_path.read_text(errors="replace")


def sshd_path() -> str:
    """Return the absolute path of the ``sshd`` binary.

    sshd re-executes itself for every connection, so it refuses to run from a relative path.

    Raises:
        ToolMissing: sshd is not installed.
    """
    candidates = [_SSHD_FIXED_PATH, shutil.which("sshd"), shutil.which("sshd", path=_SBIN_DIRS)]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise ToolMissing(
        "OpenSSH's sshd was not found (looked in /usr/sbin and on PATH); "
        "install it with `apt-get install -y openssh-server` (as root)"
    )


def _ssh_keygen_path() -> str:
    path = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
    if not os.access(path, os.X_OK):
        raise ToolMissing(
            "ssh-keygen was not found; install it with `apt-get install -y openssh-client` (as root)"
        )
    return path


@functools.cache
def _openssh_version(sshd: str) -> tuple[int, int]:
    """Return sshd's (major, minor) version, or (0, 0) if it cannot be told."""
    # `sshd -V` is not a real option in older releases, but every release prints its version on a bad option.
    proc = subprocess.run([sshd, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", proc.stdout + proc.stderr)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (sshd may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _generate_keys(
    keygen: str,
    directory: Path,
    host_prefix: str,
    user_key_types: Sequence[str],
    host_key_types: Sequence[str] = tuple(HOST_KEY_TYPES),
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Generate host and user keys in parallel (RSA generation dominates start-up time otherwise)."""
    jobs: list[tuple[Path, subprocess.Popen[bytes]]] = []

    def spawn(path: Path, args: Sequence[str]) -> Path:
        cmd = [keygen, "-q", *args, "-C", f"trissh-test {path.name}", "-f", str(path)]
        jobs.append((path, subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)))
        return path

    host_keys = {
        key_type: spawn(directory / f"{host_prefix}{key_type}", (*args, "-N", ""))
        for key_type, args in HOST_KEY_TYPES.items()
        if key_type in host_key_types
    }
    user_keys = {name: spawn(directory / f"user_{name}", USER_KEY_TYPES[name]) for name in user_key_types}
    failures = []
    for path, proc in jobs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{path.name}: {err.decode(errors='replace').strip()}")
    if failures:
        raise RuntimeError("ssh-keygen failed: " + "; ".join(failures))
    return host_keys, user_keys


def _split(line: str) -> tuple[str, str]:
    """Split an sshd_config line into (lower-cased keyword, arguments); ('', '') for blanks and comments."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return "", ""
    # sshd accepts both "Keyword value" and "Keyword=value".
    match = re.match(r"(\S+?)(?:\s*=\s*|\s+)(.*)", stripped)
    keyword, arguments = (match[1], match[2]) if match else (stripped, "")
    return keyword.lower(), arguments


def _keyword(line: str) -> str:
    return _split(line)[0]


def _render_config(
    *, port: int, directory: Path, host_keys: dict[str, Path], extra_config: Sequence[str], sshd: str
) -> str:
    """Build sshd_config text: caller lines, then the defaults they did not override, then Match blocks."""
    lines = [line for chunk in extra_config for line in chunk.splitlines()]
    match_at = next((i for i, line in enumerate(lines) if _keyword(line) == "match"), len(lines))
    head, match_blocks = lines[:match_at], lines[match_at:]
    overridden = {_keyword(line) for line in head} - {""}
    if reserved := overridden & _RESERVED_KEYWORDS:
        raise ValueError(f"extra_config may not set {sorted(reserved)}: start_sshd manages them")
    # sshd ignores every SetEnv line after the first, so caller variables join HOME on one line; later
    # assignments win, so the caller may even replace HOME.
    caller_env = [_split(line)[1] for line in head if _keyword(line) == "setenv"]
    setenv = " ".join([f"HOME={directory}", *caller_env])
    head = [line for line in head if _keyword(line) != "setenv"]

    defaults = [
        f"ListenAddress {_HOST}",
        f"Port {port}",
        f"PidFile {directory / 'sshd.pid'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}",
        "StrictModes no",  # the temp dir lives under /tmp, whose ownership sshd would otherwise reject
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",  # test runs often are root (containers, CI)
        "PermitUserRC no",  # ~/.ssh/rc of the real user must not run
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "LogLevel VERBOSE",
        "MaxStartups 2000:30:4000",  # benchmarks open many connections at once
        "MaxSessions 1000",
        "Subsystem sftp internal-sftp",  # in-process, so it does not depend on a sftp-server binary's path
    ]
    if _openssh_version(sshd) >= (9, 8):
        # Penalties would throttle tests that fail authentication or drop connections on purpose.
        defaults.append("PerSourcePenalties no")
    kept = [line for line in defaults if _keyword(line) not in overridden]
    host_key_lines = [f"HostKey {path}" for path in host_keys.values()]  # HostKey accumulates: always ours
    body = ["# Generated by trissh.testing.start_sshd", *head, *host_key_lines, *kept, f"SetEnv {setenv}"]
    return "\n".join([*body, *match_blocks, ""])


def _read_banner(port: int, timeout: float) -> bytes:
    with socket.create_connection((_HOST, port), timeout=timeout) as sock:
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
        return data


def _log_tail(log_path: Path, lines: int = 30) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class _PortInUse(Exception):
    """sshd could not bind its port: pick another and try again."""


def _pid_file_names(pid_file: Path, pid: int) -> bool:
    try:
        return pid_file.read_text().strip() == str(pid)
    except OSError:
        return False


def _wait_until_ready(proc: subprocess.Popen[bytes], port: int, pid_file: Path, log_path: Path) -> None:
    """Wait until *our* sshd answers on ``port``.

    sshd writes its pid file only after binding, so the pid check rules out a stranger that grabbed the port
    between :func:`_free_port` and sshd's bind (and happens to speak SSH).
    """
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if proc.poll() is not None:
            tail = _log_tail(log_path)
            if "Address already in use" in tail:
                raise _PortInUse(tail)
            raise RuntimeError(f"sshd exited with status {proc.returncode} on start-up; log tail:\n{tail}")
        if _pid_file_names(pid_file, proc.pid):
            with contextlib.suppress(OSError):
                if _read_banner(port, timeout=1.0).startswith(b"SSH-2.0-"):
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"sshd did not answer with an SSH-2.0 banner on {_HOST}:{port} within {_START_TIMEOUT} s; "
                f"log tail:\n{_log_tail(log_path)}"
            )
        time.sleep(0.01)


def _descendants(pid: int) -> list[int]:
    """Return the process ids of all descendants of ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # the process exited while we looked
            # The command name (field 2) may contain spaces and parentheses; the ppid follows the last ')'.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` is running (a zombie counts as gone: it only waits for its parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal_all(pids: Sequence[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop sshd and everything it started: per-connection sshd processes and the commands they run.

    Those run in sessions of their own and outlive the listener, so they are listed before it goes away.
    """
    leftovers = _descendants(proc.pid)
    if proc.poll() is None:
        proc.terminate()
    _signal_all(leftovers, signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _signal_all(_wait_gone(leftovers), signal.SIGKILL)


def _wait_gone(pids: Sequence[int]) -> list[int]:
    """Wait up to ``_STOP_TIMEOUT`` for ``pids`` to end; return those still running. They need not be
    our children (sshd's sessions are not), so this polls rather than waits."""
    deadline = time.monotonic() + _STOP_TIMEOUT
    while (running := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.005)
    return running


@contextlib.contextmanager
def start_sshd(
    *,
    extra_config: Sequence[str] = (),
    directory: Path | None = None,
    user_key_types: Sequence[str] = ("ed25519",),
    host_key_types: Sequence[str] = tuple(HOST_KEY_TYPES),
) -> Iterator[SSHServer]:
    """Run a throwaway OpenSSH server on 127.0.0.1 with fresh keys, for the duration of a ``with`` block.

    Example::

        with start_sshd() as server:
            async with trissh.connect(
                server.host, server.port, username=server.username,
                client_keys=[server.client_key], known_hosts=server.known_hosts,
            ) as conn:
                ...

    Args:
        extra_config: sshd_config lines. They take precedence over the defaults (a default is dropped when a
            line sets the same keyword); ``SetEnv`` values are merged with the default ``HOME``; ``Match``
            blocks go at the end. ``ListenAddress``, ``Port``, ``PidFile`` and ``AuthorizedKeysFile`` are
            reserved. Note that with ``LogLevel DEBUG`` or higher, sshd also writes debug lines to commands'
            stderr.
        directory: Where to create the temporary directory (the system default if None).
        user_key_types: User keys to generate, from :data:`USER_KEY_TYPES`; ``"ed25519"`` is always generated.
        host_key_types: Host keys to generate, from :data:`HOST_KEY_TYPES` (default: all). RSA takes 0.3 to
            1.5 s to generate, the others milliseconds: leave ``"ssh-rsa"`` out when start-up time matters.

    Yields:
        The running server. On exit (also on exceptions and KeyboardInterrupt) sshd and every process it
        started are stopped and the temporary directory is removed.

    Raises:
        ToolMissing: sshd or ssh-keygen is missing (a :class:`RuntimeError`).
        RuntimeError: sshd did not start (the message has its log's tail).
        ValueError: an unknown user key type or a reserved keyword in ``extra_config``.
    """
    unknown = set(user_key_types) - set(USER_KEY_TYPES)
    if unknown:
        raise ValueError(f"unknown user key types {sorted(unknown)}; choose from {sorted(USER_KEY_TYPES)}")
    key_types = ["ed25519", *(name for name in dict.fromkeys(user_key_types) if name != "ed25519")]
    if unknown_host := set(host_key_types) - set(HOST_KEY_TYPES):
        raise ValueError(f"unknown host key types {sorted(unknown_host)}; choose from {list(HOST_KEY_TYPES)}")
    if not host_key_types:
        raise ValueError("host_key_types is empty: sshd needs a host key")
    sshd = sshd_path()
    keygen = _ssh_keygen_path()
    # Validate extra_config before spending time on keys.
    _render_config(port=0, directory=Path("/"), host_keys={}, extra_config=extra_config, sshd=sshd)

    # mkdtemp creates the directory with mode 0700, so other users cannot read the private keys.
    tmp = Path(tempfile.mkdtemp(prefix="trissh-sshd-", dir=directory))
    proc: subprocess.Popen[bytes] | None = None
    try:
        host_keys, client_keys = _generate_keys(keygen, tmp, "host_", key_types, host_key_types)
        (tmp / "authorized_keys").write_text(
            "".join(Path(f"{path}.pub").read_text() for path in client_keys.values())
        )
        with contextlib.suppress(PermissionError):  # not root: sshd will explain what it needs
            _PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        config_path = tmp / "sshd_config"
        log_path = tmp / "sshd.log"
        for attempt in range(_PORT_ATTEMPTS):
            port = _free_port()
            config_path.write_text(
                _render_config(
                    port=port, directory=tmp, host_keys=host_keys, extra_config=extra_config, sshd=sshd
                )
            )
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [sshd, "-D", "-e", "-f", str(config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    # Its own session: a Ctrl-C in the terminal reaches only us, and we stop sshd in order.
                    start_new_session=True,
                )
            try:
                _wait_until_ready(proc, port, tmp / "sshd.pid", log_path)
                break
            except _PortInUse:
                if attempt == _PORT_ATTEMPTS - 1:
                    raise RuntimeError(
                        f"sshd could not bind a free port in {_PORT_ATTEMPTS} attempts; "
                        f"log tail:\n{_log_tail(log_path)}"
                    ) from None
        assert proc is not None
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text(
            "".join(
                f"[{_HOST}]:{port} " + " ".join(Path(f"{path}.pub").read_text().split()[:2]) + "\n"
                for path in host_keys.values()
            )
        )
        yield SSHServer(
            host=_HOST,
            port=port,
            username=getpass.getuser(),
            client_key=client_keys["ed25519"],
            client_keys=client_keys,
            known_hosts=known_hosts,
            host_keys=host_keys,
            directory=tmp,
            config_path=config_path,
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        try:
            if proc is not None:
                _stop(proc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
