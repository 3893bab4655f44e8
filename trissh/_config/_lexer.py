"""Splitting one ssh_config line into a keyword and its arguments, as OpenSSH 9.2 does.

Two tokenisers, because OpenSSH uses two (readconf.c ``process_config_line_depth``):

* the keyword (and ``Match`` criteria) come from ``strdelim``: split on whitespace or one ``=``,
  with double quotes only;
* the arguments come from ``argv_split``: whitespace-separated, single or double quotes,
  backslash escapes, and a ``#`` that starts a token ends the line.

``ProxyCommand`` and ``ProxyJump`` take the raw remainder instead (:attr:`Line.rest`). This module
knows no keyword: it only cuts text.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import ConfigError

__all__ = ["Line", "split_line", "strdelim"]

_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class Line:
    """One directive.

    Fields: ``path`` and ``lineno`` (for messages), ``keyword`` (lower case, as typed: aliases are
    resolved later), ``rest`` (the text after the keyword and its separator) and ``args``
    (``rest`` split as argv_split does).
    """

    path: str
    lineno: int
    keyword: str
    rest: str
    args: tuple[str, ...]

    def error(self, message: str) -> ConfigError:
        """A :class:`ConfigError` naming this line."""
        return ConfigError(message, self.path, self.lineno)


def strdelim(s: str | None) -> tuple[str | None, str | None]:
    """OpenSSH ``strdelim``: (next token, remainder); the token is None on an unmatched quote.

    The remainder is None when the string is used up, exactly where the C pointer becomes NULL.
    """
    if s is None:
        return None, None
    i = next((k for k, c in enumerate(s) if c in _WHITESPACE + '"='), -1)
    if i < 0:
        return s, None
    if s[i] == '"':
        s = s[:i] + s[i + 1 :]
        j = s.find('"', i)
        if j < 0:
            return None, None
        return s[:j], s[j + 1 :].lstrip(_WHITESPACE)
    equals = s[i] == "="
    token, rest = s[:i], s[i + 1 :].lstrip(_WHITESPACE)
    if rest.startswith("=") and not equals:  # "Keyword = value": one "=" may follow the blanks
        rest = rest[1:].lstrip(_WHITESPACE)
    return token, rest


def argv_split(s: str) -> list[str] | None:
    """OpenSSH ``argv_split(s, ..., terminate_on_comment=1)``; None on an unterminated quote."""
    args: list[str] = []
    i, n = 0, len(s)
    while i < n:
        if s[i] in " \t":
            i += 1
            continue
        if s[i] == "#":
            break
        quote = ""
        arg: list[str] = []
        while i < n:
            c = s[i]
            if c == "\\":
                nxt = s[i + 1] if i + 1 < n else ""
                if nxt in ("'", '"', "\\") or (not quote and nxt == " "):
                    i += 1
                    arg.append(s[i])
                else:  # an unknown escape stays as typed
                    arg.append(c)
            elif not quote and c in " \t":
                break
            elif not quote and c in "\"'":
                quote = c
            elif quote and c == quote:
                quote = ""
            else:
                arg.append(c)
            i += 1
        if i >= n and quote:
            return None
        args.append("".join(arg))
    return args


def split_line(text: str, path: str, lineno: int) -> Line | None:
    """The directive on ``text``, or None for a blank or comment line.

    Raises:
        ConfigError: a keyword without argument, or unbalanced quotes (ssh refuses both).
    """
    text = text.rstrip(_WHITESPACE + "\f")
    if not text:
        return None
    keyword, rest = strdelim(text)
    if keyword == "":  # leading whitespace
        keyword, rest = strdelim(rest)
    if not keyword or keyword.startswith("#"):
        return None
    keyword = keyword.lower()
    rest = (rest or "").lstrip(_WHITESPACE)
    if not rest:
        raise ConfigError(f'no argument after keyword "{keyword}"', path, lineno)
    args = argv_split(rest)
    if args is None:
        raise ConfigError("invalid quotes", path, lineno)
    return Line(path, lineno, keyword, rest, tuple(args))
