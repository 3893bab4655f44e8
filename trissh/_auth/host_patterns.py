"""Host patterns of known_hosts lines: OpenSSH's match_hostname.

A comma-separated list of patterns with ``*`` and ``?``, each possibly negated with ``!``; a negated
pattern that matches vetoes the list. Matching is a two-pointer wildcard walk, linear in practice and at
most len(pattern) x len(name), never a backtracking regular expression.
"""

from __future__ import annotations

from typing import final

__all__ = ["PatternMatcher", "wildcard_match"]


@final
class PatternMatcher:
    """A comma-separated pattern list with wildcards and negations (OpenSSH match_hostname)."""

    __slots__ = ("_negative", "_positive")

    def __init__(self, patterns: list[str]) -> None:
        self._positive = [p.lower() for p in patterns if not p.startswith("!")]
        self._negative = [p[1:].lower() for p in patterns if p.startswith("!")]

    def matches(self, names: list[str]) -> bool:
        """Whether the line is for the host known by ``names`` (its aliases, e.g. ``h`` and ``[h]:22``).

        A negated pattern matching any of them vetoes the line even if a positive one matches.
        """
        if any(wildcard_match(pattern, name) for pattern in self._negative for name in names):
            return False
        return any(wildcard_match(pattern, name) for pattern in self._positive for name in names)


def wildcard_match(pattern: str, name: str) -> bool:
    """``*`` (any run) and ``?`` (one character); everything else literal, ``[`` and ``]`` included (as in
    ``[host]:2222``: not fnmatch). Greedy with one backtrack point, so time is at most
    len(pattern) x len(name) whatever the stars: a pattern of many ``*`` cannot stall a lookup, as a
    backtracking regular expression would."""
    p = n = 0
    star = -1  # the last "*" seen, and where in the name it started matching
    resume = 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, n
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            p += 1
            n += 1
        elif star >= 0:  # let the last star take one more character
            p = star + 1
            resume += 1
            n = resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)
