"""ssh_config(5) for trissh: files read as OpenSSH 9.2 reads them, options resolved as ``ssh -G`` shows.

Modules, one job each: :mod:`._lexer` (cutting lines), :mod:`._parse` and :mod:`._values` (checking
values), :mod:`._reader` (files and Include), :mod:`._match` (Host and Match), :mod:`._tokens`
(``%`` tokens and ``~``), :mod:`._algorithms` (``+``/``-``/``^`` lists), :mod:`._resolve` (the order
of operations), :mod:`._config` (the public classes).
"""

from __future__ import annotations

from ._config import ResolvedConfig, SSHConfig
from ._errors import ConfigError
from ._keywords import IGNORED as IGNORED_KEYWORDS

__all__ = ["ConfigError", "IGNORED_KEYWORDS", "ResolvedConfig", "SSHConfig"]
