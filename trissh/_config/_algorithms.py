"""Algorithm list options: ``+`` append, ``-`` remove, ``^`` prepend, or a plain list.

Two steps, as in OpenSSH 9.2:

* at parse time (readconf.c), the names are checked against what OpenSSH 9.2 knows: exact names
  for Ciphers, MACs and KexAlgorithms (wildcards only after ``-``), names or patterns matching a
  known key type for HostKeyAlgorithms and PubkeyAcceptedAlgorithms. A config that ssh refuses
  is refused here too, and one it accepts is accepted even where trissh lacks an algorithm;
* at lookup, kex.c ``kex_assemble_names`` builds the list from a *default* list and the *supported*
  list: ``-`` filters the default, ``+``/``^`` join with it, and every pattern is then replaced by
  the supported names it matches (names trissh does not support silently drop out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from ._match import match_pattern_list

__all__ = [
    "ALGORITHM_KEYWORDS",
    "assemble",
    "check_names",
    "trissh_defaults",
    "trissh_supported",
]

ALGORITHM_KEYWORDS: Final = (
    "ciphers",
    "macs",
    "kexalgorithms",
    "hostkeyalgorithms",
    "pubkeyacceptedalgorithms",
)

# `ssh -Q cipher|mac|kex|key-sig` of OpenSSH 9.2 (with OpenSSL): the names its parser accepts.
_OPENSSH_CIPHERS: Final = frozenset(
    [
        "3des-cbc",
        "aes128-cbc",
        "aes192-cbc",
        "aes256-cbc",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
    ]
)
_OPENSSH_MACS: Final = frozenset(
    [
        "hmac-sha1",
        "hmac-sha1-96",
        "hmac-sha2-256",
        "hmac-sha2-512",
        "hmac-md5",
        "hmac-md5-96",
        "umac-64@openssh.com",
        "umac-128@openssh.com",
        "hmac-sha1-etm@openssh.com",
        "hmac-sha1-96-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-md5-etm@openssh.com",
        "hmac-md5-96-etm@openssh.com",
        "umac-64-etm@openssh.com",
        "umac-128-etm@openssh.com",
    ]
)
_OPENSSH_KEX: Final = frozenset(
    [
        "diffie-hellman-group1-sha1",
        "diffie-hellman-group14-sha1",
        "diffie-hellman-group14-sha256",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group-exchange-sha1",
        "diffie-hellman-group-exchange-sha256",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "sntrup761x25519-sha512",
        "sntrup761x25519-sha512@openssh.com",
    ]
)
_OPENSSH_KEY_TYPES: Final = frozenset(
    [
        "ssh-ed25519",
        "ssh-ed25519-cert-v01@openssh.com",
        "sk-ssh-ed25519@openssh.com",
        "sk-ssh-ed25519-cert-v01@openssh.com",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        "ecdsa-sha2-nistp521",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-dss",
        "ssh-dss-cert-v01@openssh.com",
        "ssh-rsa",
        "ssh-rsa-cert-v01@openssh.com",
        "rsa-sha2-256",
        "rsa-sha2-256-cert-v01@openssh.com",
        "rsa-sha2-512",
        "rsa-sha2-512-cert-v01@openssh.com",
    ]
)


# sshkey.c ``sshkey_type_from_name`` also takes these short names, in any case.
_KEY_SHORT_NAMES: Final = frozenset({"rsa", "dsa", "ecdsa", "ed25519", "ecdsa-sk", "ed25519-sk"})


def _known(keyword: str) -> frozenset[str]:
    if keyword == "ciphers":
        return _OPENSSH_CIPHERS
    if keyword == "macs":
        return _OPENSSH_MACS
    if keyword == "kexalgorithms":
        return _OPENSSH_KEX
    return _OPENSSH_KEY_TYPES


def check_names(keyword: str, value: str, extra_known: Iterable[str] = ()) -> None:
    """Raise ValueError as readconf.c does for a list with a name OpenSSH 9.2 would not know.

    ``extra_known`` adds names (trissh's own, e.g. newer ones) that must not be refused.
    """
    if value.startswith("-"):
        return  # a removal list may name anything
    names = value[1:] if value[:1] in ("+", "^") else value
    known = _known(keyword) | frozenset(extra_known)
    keys = keyword in ("hostkeyalgorithms", "pubkeyacceptedalgorithms")
    items = names.split(",")
    if not names or not items[0]:
        raise ValueError("empty list")
    for item in items:
        if not item:
            break  # strsep: the C loops stop at the first empty element
        if item in known:
            continue
        if keys and (
            item.lower() in _KEY_SHORT_NAMES or any(match_pattern_list(k, item) != 0 for k in known)
        ):
            continue
        raise ValueError(f"Bad algorithm name '{item}'")


def _cat(a: list[str], b: Iterable[str]) -> list[str]:
    """kex.c ``kex_names_cat``: ``a`` then each name of ``b`` not already present."""
    out = list(a)
    for name in b:
        if not name:
            break
        if name not in out:
            out.append(name)
    return out


def assemble(value: str, default: Sequence[str], supported: Sequence[str]) -> list[str]:
    """kex.c ``kex_assemble_names``: the list ``value`` asks for, given ``default`` and ``supported``.

    Raises:
        ValueError: the result is empty, or a plain list uses ``!`` (ssh refuses both).
    """
    if not value:
        return list(default)
    if value.startswith("-"):
        return [name for name in default if match_pattern_list(name, value[1:]) != 1]
    if value.startswith("+"):
        wanted = _cat(list(default), value[1:].split(","))
    elif value.startswith("^"):
        wanted = _cat([n for n in value[1:].split(",") if n], default)
    else:
        wanted = value.split(",")
    result: list[str] = []
    for pattern in wanted:
        if pattern.startswith("!"):
            raise ValueError("negated algorithm patterns are not allowed")
        result = _cat(result, [name for name in supported if match_pattern_list(name, pattern) == 1])
    if not result:
        raise ValueError("empty algorithm list")
    return result


def trissh_defaults() -> dict[str, list[str]]:
    """trissh's own preference lists, the defaults a lookup builds ``+``/``-``/``^`` lists on."""
    # Imported here: the config reader must not pull in every algorithm module at import time.
    from .._algorithms.ciphers import DEFAULT_CIPHERS, DEFAULT_MACS
    from .._algorithms.hostkeys import DEFAULT_HOST_KEY_ALGORITHMS
    from .._algorithms.kex import DEFAULT_KEX_ALGORITHMS

    return {
        "ciphers": list(DEFAULT_CIPHERS),
        "macs": list(DEFAULT_MACS),
        "kexalgorithms": list(DEFAULT_KEX_ALGORITHMS),
        "hostkeyalgorithms": list(DEFAULT_HOST_KEY_ALGORITHMS),
        "pubkeyacceptedalgorithms": list(DEFAULT_HOST_KEY_ALGORITHMS),
    }


def trissh_supported() -> dict[str, list[str]]:
    """Every name trissh implements, per option (what a pattern like ``aes*`` may expand to)."""
    from .._algorithms.cert_names import CERT_SIGNATURE_ALGORITHMS
    from .._algorithms.ciphers import CIPHERS, MACS
    from .._algorithms.hostkeys import HOST_KEY_ALGORITHMS
    from .._algorithms.kex import KEX_METHODS

    keys = [*HOST_KEY_ALGORITHMS, *CERT_SIGNATURE_ALGORITHMS]
    return {
        "ciphers": list(CIPHERS),
        "macs": list(MACS),
        "kexalgorithms": list(KEX_METHODS),
        "hostkeyalgorithms": keys,
        "pubkeyacceptedalgorithms": keys,
    }


DefaultsSource = Mapping[str, Sequence[str]] | Callable[[], Mapping[str, Sequence[str]]]
