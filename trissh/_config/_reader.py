"""Reading config files into a tree of checked directives, ``Include`` resolved.

ssh re-reads its files for every connection; trissh reads them once, at :meth:`SSHConfig.load`, and
keeps the result. What ssh would refuse at any point of reading is refused here, because ssh checks
every line, including those in blocks that do not apply and files included from them:

* values (via :mod:`._parse`) and Match syntax (via :mod:`._match`);
* ``Include``: globs sorted as glob(3) sorts in the C locale, a relative path taken under ``~/.ssh``
  for a user config and ``/etc/ssh`` for a system one (where ``~`` is refused), ``~`` expanded from
  ``$HOME`` (glob's GLOB_TILDE, unlike the other options), owner/permission checks on included
  files, and at most 16 levels of nesting (READCONF_MAX_DEPTH): a loop fails naming the chain.

Which blocks apply is decided per lookup, in :mod:`._resolve`.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Final

from ._errors import ConfigError
from ._keywords import APPLIED, IGNORED, canonical
from ._lexer import Line, split_line
from ._match import Criterion, parse_match
from ._parse import Value, parse_value

__all__ = ["ConfigFile", "Entry", "MAX_INCLUDE_DEPTH", "read_config", "read_text"]

#: readconf.c READCONF_MAX_DEPTH.
MAX_INCLUDE_DEPTH: Final = 16


@dataclass(frozen=True)
class Entry:
    """One directive: its ``line``, ``keyword`` (canonical), ``kind`` ("option", "host", "match",
    "include", "ignored" or "unknown") and the parsed ``value`` / ``patterns`` / ``criteria`` /
    included ``files`` as the kind needs."""

    line: Line
    keyword: str
    kind: str
    value: Value = None
    patterns: tuple[str, ...] = ()
    criteria: tuple[Criterion, ...] = ()
    files: tuple[ConfigFile, ...] = ()


@dataclass(frozen=True)
class ConfigFile:
    """A file read: ``path``, whether it is a ``user`` config (relative Include under ~/.ssh, and
    IdentityFile entries count as user-provided) and its ``entries``."""

    path: str
    user: bool
    entries: tuple[Entry, ...] = field(default=())


def _entry(line: Line, user: bool, chain: tuple[str, ...]) -> Entry:
    keyword = canonical(line.keyword)
    if keyword == "host":
        for arg in line.args:
            if not arg:
                raise line.error(f"keyword {keyword} empty argument")
        return Entry(line, keyword, "host", patterns=line.args)
    if keyword == "match":
        return Entry(line, keyword, "match", criteria=parse_match(line))
    if keyword == "include":
        return Entry(line, keyword, "include", files=_include(line, user, chain))
    if keyword in APPLIED:
        return Entry(line, keyword, "option", value=parse_value(keyword, line))
    return Entry(line, keyword, "ignored" if keyword in IGNORED else "unknown")


def _include(line: Line, user: bool, chain: tuple[str, ...]) -> tuple[ConfigFile, ...]:
    files: list[ConfigFile] = []
    for arg in line.args:
        if not arg:
            raise line.error("keyword include empty argument")
        if arg.startswith("~") and not user:
            raise line.error(f"bad include path {arg}.")
        if not arg.startswith(("/", "~")):
            arg = f"~/.ssh/{arg}" if user else f"/etc/ssh/{arg}"
        pattern = os.path.expanduser(arg)
        for path in sorted(glob.glob(pattern)):
            files.append(_read(path, user, chain, check_permissions=True))
    return tuple(files)


def _check_permissions(path: str, st: os.stat_result) -> None:
    if (st.st_uid not in (0, os.getuid())) or (st.st_mode & 0o022):
        raise ConfigError(f"Bad owner or permissions on {path}")


def _read(path: str, user: bool, chain: tuple[str, ...], *, check_permissions: bool) -> ConfigFile:
    chain = (*chain, path)
    if len(chain) > MAX_INCLUDE_DEPTH + 1:
        raise ConfigError("Too many recursive configuration includes: " + " -> ".join(chain))
    try:
        with open(path, "rb") as f:
            if check_permissions:
                _check_permissions(path, os.fstat(f.fileno()))
            data = f.read()
    except IsADirectoryError:
        data = b""  # fopen(3) opens a directory; reading it yields no lines
    except OSError as exc:
        raise ConfigError(f"Can't open user config file {path}: {exc.strerror}") from exc
    return _parse_text(data.decode("utf-8", "surrogateescape"), path, user, chain)


def _parse_text(text: str, path: str, user: bool, chain: tuple[str, ...]) -> ConfigFile:
    entries = []
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = split_line(raw, path, lineno)
        if line is not None:
            entries.append(_entry(line, user, chain))
    return ConfigFile(path, user, tuple(entries))


def read_config(path: str, *, user: bool, check_permissions: bool = False) -> ConfigFile:
    """Read ``path`` and everything it includes.

    Raises:
        FileNotFoundError: ``path`` does not exist (the caller decides if that is an error).
        ConfigError: anything ssh would refuse in it or in what it includes.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    return _read(path, user, (), check_permissions=check_permissions)


def read_text(text: str, name: str, *, user: bool = True) -> ConfigFile:
    """Parse ``text`` as if it were the file ``name`` (Include still reads real files)."""
    return _parse_text(text, name, user, (name,))
