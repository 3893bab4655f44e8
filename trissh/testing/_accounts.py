"""Throwaway local accounts with passwords, for testing password logins against :func:`start_sshd`."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PasswordUser", "password_user"]


@dataclasses.dataclass(frozen=True)
class PasswordUser:
    """A throwaway local account with a password, as yielded by :func:`password_user`.

    Attributes:
        name: the login name.
        password: its password.
        home: its home directory (removed with the account).
    """

    name: str
    password: str
    home: Path


@contextlib.contextmanager
def password_user(name: str = "trissh-pw") -> Iterator[PasswordUser]:
    """Create a local account with a fresh random password for the duration of a ``with`` block.

    For testing password and keyboard-interactive authentication against :func:`start_sshd`, which
    must then allow them (``extra_config=["PasswordAuthentication yes"]``). Only root can make
    accounts; sshd checks the password against ``/etc/shadow`` (``UsePAM no``) or through PAM.
    An account of that name left behind by a killed run is reused and given the new password. Two
    test runs on one machine take turns with a name (a lock file in the temporary directory): the
    account's end, which kills its processes, must not land in the middle of the other run's tests.

    Raises:
        PermissionError: not running as root.
        RuntimeError: ``useradd`` or ``chpasswd`` failed (the message says why).
    """
    if os.geteuid() != 0:
        raise PermissionError("password_user() needs root: only root can create accounts")
    useradd, userdel, chpasswd = (
        shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin") for tool in ("useradd", "userdel", "chpasswd")
    )
    if not (useradd and userdel and chpasswd):
        raise RuntimeError("useradd/userdel/chpasswd not found (Debian package passwd)")
    with open(Path(tempfile.gettempdir()) / f"trissh-account-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        yield from _make_password_user(name, useradd, userdel, chpasswd)


def _make_password_user(name: str, useradd: str, userdel: str, chpasswd: str) -> Iterator[PasswordUser]:
    home = Path(tempfile.mkdtemp(prefix=f"trissh-{name}-"))
    password = secrets.token_urlsafe(12)
    try:
        _remove_leftover_account(name, userdel)
        done = subprocess.run(
            [useradd, "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
            capture_output=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"useradd {name} failed: {done.stderr.decode(errors='replace').strip()}")
        shutil.chown(home, user=name)
        done = subprocess.run(
            [chpasswd], input=f"{name}:{password}\n".encode(), capture_output=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(f"chpasswd for {name} failed: {done.stderr.decode(errors='replace').strip()}")
        yield PasswordUser(name, password, home)
    finally:
        _kill_processes_of(name)
        subprocess.run([userdel, name], capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def _remove_leftover_account(name: str, userdel: str) -> None:
    """Delete an account of ours that a killed run left behind; refuse to touch anyone else's."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return
    if not Path(entry.pw_dir).name.startswith(f"trissh-{name}-"):
        raise RuntimeError(
            f"an account {name!r} exists and was not made by trissh.testing (home {entry.pw_dir})"
        )
    _kill_processes_of(name)
    subprocess.run([userdel, name], capture_output=True, timeout=30, check=True)


def _kill_processes_of(name: str) -> None:
    """End whatever the throwaway account still runs (userdel refuses while it runs anything)."""
    pkill = shutil.which("pkill", path="/usr/bin:/bin")
    if pkill is not None:
        subprocess.run([pkill, "-KILL", "-u", name], capture_output=True, timeout=30)
