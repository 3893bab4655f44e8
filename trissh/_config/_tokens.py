"""``%`` tokens, ``${VAR}`` and ``~``, expanded as OpenSSH 9.2 does (misc.c, ssh.c, readconf.c).

Which tokens an option takes is the caller's business (:mod:`._resolve` names them per option);
this module only knows what each token stands for and how the expansion itself behaves: ``%%`` is
a percent sign, an unknown token or a missing variable is an error (ssh exits), ``~`` and
``~user`` use the password database (``getpwuid``), not ``$HOME``.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["TokenContext", "percent_expand", "tilde_expand"]

#: ssh.h DEFAULT_CLIENT_PERCENT_EXPAND_ARGS: the tokens most path options take.
DEFAULT_TOKENS = "CLiklnpdhru"
#: sshconnect.c ``expand_proxy_command``.
PROXY_COMMAND_TOKENS = "hknpr"


@dataclass(frozen=True)
class TokenContext:
    """The values behind the tokens, fixed once the host, port and user are resolved.

    Fields follow ssh.c's ``struct ssh_conn_info``: ``thishost`` (``%l``, gethostname),
    ``shorthost`` (``%L``), ``uid`` (``%i``), ``keyalias`` (``%k``: HostKeyAlias, else the host as
    typed), ``host_arg`` (``%n``), ``port`` (``%p``), ``homedir`` (``%d``), ``remhost`` (``%h``),
    ``remuser`` (``%r``), ``locuser`` (``%u``).
    """

    thishost: str
    shorthost: str
    uid: int
    keyalias: str
    host_arg: str
    port: int
    homedir: str
    remhost: str
    remuser: str
    locuser: str

    @property
    def connection_hash(self) -> str:
        """``%C``: hex SHA-1 of %l%h%p%r (OpenSSH 9.2 has no %j in it; later releases add it)."""
        data = f"{self.thishost}{self.remhost}{self.port}{self.remuser}".encode()
        return hashlib.sha1(data).hexdigest()

    def values(self, tokens: str) -> dict[str, str]:
        """The token -> value table for the letters in ``tokens``."""
        table = {
            "C": self.connection_hash,
            "L": self.shorthost,
            "i": str(self.uid),
            "k": self.keyalias,
            "l": self.thishost,
            "n": self.host_arg,
            "p": str(self.port),
            "d": self.homedir,
            "h": self.remhost,
            "r": self.remuser,
            "u": self.locuser,
        }
        return {t: table[t] for t in tokens}

    @staticmethod
    def local(
        *, host_arg: str, host: str, port: int, user: str, local_user: str, keyalias: str | None
    ) -> TokenContext:
        """The context of this machine and process, as ssh builds it for a connection."""
        thishost = socket.gethostname()
        return TokenContext(
            thishost=thishost,
            shorthost=thishost.split(".", 1)[0],
            uid=os.getuid(),
            keyalias=keyalias if keyalias is not None else host_arg,
            host_arg=host_arg,
            port=port,
            homedir=home_of(local_user),
            remhost=host,
            remuser=user,
            locuser=local_user,
        )


def home_of(user: str | None = None) -> str:
    """The password-database home of ``user`` (default: this uid), as ssh's ``pw->pw_dir``."""
    try:
        entry = pwd.getpwnam(user) if user is not None else pwd.getpwuid(os.getuid())
    except KeyError:
        entry = pwd.getpwuid(os.getuid())
    return entry.pw_dir


def local_user_name() -> str:
    """This uid's login name (``pw->pw_name``)."""
    return pwd.getpwuid(os.getuid()).pw_name


def percent_expand(
    text: str, values: Mapping[str, str], *, dollar: bool = False, environ: Mapping[str, str] | None = None
) -> str:
    """misc.c ``vdollar_percent_expand``: ``%x`` from ``values``, ``%%``, and ``${VAR}`` if ``dollar``.

    Raises:
        ValueError: an unknown ``%`` token, a trailing ``%``, or an unset/unterminated ``${VAR}``.
    """
    env = os.environ if environ is None else environ
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if dollar and text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                raise ValueError(f"environment variable '{text[i + 2 :]}' missing closing '}}'")
            name = text[i + 2 : end]
            if not name:
                raise ValueError("zero-length environment variable")
            if name not in env:
                raise ValueError(f"env var ${{{name}}} has no value")
            out.append(env[name])
            i = end + 1
            continue
        if c != "%":
            out.append(c)
            i += 1
            continue
        token = text[i + 1 : i + 2]
        if token == "%":
            out.append("%")
        elif not token:
            raise ValueError("invalid format")
        elif token in values:
            out.append(values[token])
        else:
            raise ValueError(f"unknown key %{token}")
        i += 2
    return "".join(out)


def tilde_expand(path: str) -> str:
    """misc.c ``tilde_expand``: ``~``, ``~/x``, ``~user/x`` from the password database.

    Raises:
        ValueError: ``~user`` names no user.
    """
    if not path.startswith("~"):
        return path
    rest = path[1:]
    if not rest or rest.startswith("/"):
        user, tail = None, rest.lstrip("/")
    else:
        user, _, tail = rest.partition("/")
        tail = tail.lstrip("/")
    try:
        home = pwd.getpwnam(user).pw_dir if user is not None else pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        raise ValueError(f"No such user {user}") from None
    return f"{home}{'' if home.endswith('/') else '/'}{tail}"
