"""``Host`` and ``Match``: which blocks apply to a host (readconf.c, match.c).

Rules this file owns:

* ``Host`` patterns are matched case-sensitively against the host (match.c ``match_pattern``);
  a matching ``!pattern`` cancels the block whatever else matches. Commas are not separators here.
* ``Match host``/``originalhost`` patterns are comma lists matched case-insensitively
  (``match_hostname``); ``user``/``localuser`` lists case-sensitively (``match_pattern_list``).
* Criteria are ANDed; ``!`` negates one; ``all`` must stand alone (or after ``canonical``/``final``);
  ``canonical`` and ``final`` are true only in the second reading; a failed criterion skips any later
  ``exec``.
* ``exec`` runs a shell command only when the caller allowed it; otherwise the Match line is taken
  as not matching (and logged), negated or not, so a disabled command can never switch a block on.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from .._auth.host_patterns import wildcard_match
from ._lexer import Line, strdelim
from ._tokens import percent_expand

__all__ = ["Criterion", "MatchContext", "host_matches", "match_pattern_list", "parse_match", "match_line"]

logger = logging.getLogger("trissh.config")

_NO_ARGUMENT = frozenset({"all", "canonical", "final"})
_WITH_ARGUMENT = frozenset({"host", "originalhost", "user", "localuser", "exec"})


def match_pattern_list(name: str, patterns: str, lower: bool = False) -> int:
    """match.c ``match_pattern_list``: 1 on a match, 0 on none, -1 when a ``!`` pattern matches."""
    positive = 0
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if wildcard_match(pattern.lower() if lower else pattern, name):
            if negated:
                return -1
            positive = 1
    return positive


def host_matches(patterns: tuple[str, ...], host: str) -> bool:
    """Whether a ``Host`` line with these patterns applies to ``host``."""
    active = False
    for arg in patterns:
        negated = arg.startswith("!")
        if wildcard_match(arg[1:] if negated else arg, host):
            if negated:
                return False
            active = True
    return active


@dataclass(frozen=True)
class Criterion:
    """One ``Match`` criterion: ``negate``, ``attribute`` (lower case) and ``argument`` (or None)."""

    negate: bool
    attribute: str
    argument: str | None


def parse_match(line: Line) -> tuple[Criterion, ...]:
    """The criteria of a ``Match`` line, checked as readconf.c ``match_cfg_line`` checks them.

    Raises:
        ConfigError: ``all`` combined, a missing argument, an unknown attribute, or no attribute.
    """
    criteria: list[Criterion] = []
    rest: str | None = line.rest
    attributes = 0
    while True:
        attrib, rest = strdelim(rest)
        if not attrib or attrib.startswith("#"):
            break
        negate = attrib.startswith("!")
        typed = attrib[1:] if negate else attrib
        name = typed.lower()
        if name == "all":
            arg, rest = strdelim(rest)
            if attributes > 1 or (arg and not arg.startswith("#")):
                raise line.error(f"'{attrib}' cannot be combined with other Match attributes")
            criteria.append(Criterion(negate, name, None))
            return tuple(criteria)
        attributes += 1
        if name in _NO_ARGUMENT:
            criteria.append(Criterion(negate, name, None))
            continue
        arg, rest = strdelim(rest)
        if not arg or arg.startswith("#"):
            raise line.error(f"Missing Match criteria for {typed}")
        if name not in _WITH_ARGUMENT:
            raise line.error(f"Unsupported Match attribute {typed}")
        criteria.append(Criterion(negate, name, arg))
    if attributes == 0:
        raise line.error("One or more attributes required for Match")
    return tuple(criteria)


@dataclass(frozen=True)
class MatchContext:
    """What a Match line is judged against in one reading of the config.

    Fields: ``host`` (HostName with %h expanded, else the host as typed), ``original_host``,
    ``user`` (the remote user so far, else the local one), ``local_user``, ``final_pass``,
    ``exec_tokens`` (the %-token values for ``exec``) and ``allow_exec``.
    """

    host: str
    original_host: str
    user: str
    local_user: str
    final_pass: bool
    exec_tokens: Mapping[str, str]
    allow_exec: bool


def _run(command: str, line: Line) -> bool:
    # ssh's execute_in_shell: stdin and stdout on /dev/null, stderr inherited; exit 0 = match.
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode < 0:
        raise line.error(f"match exec '{command}' error")
    return done.returncode == 0


def match_line(line: Line, criteria: tuple[Criterion, ...], ctx: MatchContext) -> bool:
    """Whether the ``Match`` block applies (readconf.c ``match_cfg_line`` evaluation).

    Raises:
        ConfigError: an ``exec`` command with a bad %-token, or one killed by a signal.
    """
    result = True
    for c in criteria:
        if c.attribute == "all":
            return (not c.negate) if result else False
        if c.attribute in _NO_ARGUMENT:
            matched = ctx.final_pass
        elif c.attribute == "exec":
            if not result:
                continue  # ssh skips a command once an earlier criterion failed
            try:
                command = percent_expand(c.argument or "", ctx.exec_tokens)
            except ValueError as exc:
                raise line.error(str(exc)) from None
            if not ctx.allow_exec:
                logger.warning(
                    "%s line %d: Match exec %r not run (allow_exec=False); block skipped",
                    line.path,
                    line.lineno,
                    command,
                )
                return False
            matched = _run(command, line)
        else:
            arg = c.argument or ""
            if c.attribute == "host":
                matched = match_pattern_list(ctx.host.lower(), arg, lower=True) == 1
            elif c.attribute == "originalhost":
                matched = match_pattern_list(ctx.original_host.lower(), arg, lower=True) == 1
            elif c.attribute == "user":
                matched = match_pattern_list(ctx.user, arg) == 1
            else:  # localuser
                matched = match_pattern_list(ctx.local_user, arg) == 1
        if matched == c.negate:
            result = False
    return result
