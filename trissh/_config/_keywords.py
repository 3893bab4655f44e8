"""Which ssh_config keywords exist, which trissh applies, and their old spellings.

The lists are OpenSSH 9.2's readconf.c ``keywords[]`` (plus Debian's GSSAPI key-exchange patch,
since Debian's ssh accepts those). A keyword in :data:`IGNORED` is one OpenSSH knows but trissh
does not act on: it is accepted and skipped, so a config written for OpenSSH loads unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ALIASES", "APPLIED", "IGNORED", "canonical"]

#: Old or alternative spellings -> the keyword ssh -G prints for them.
ALIASES: Final[Mapping[str, str]] = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "tisauthentication": "kbdinteractiveauthentication",
    "dsaauthentication": "pubkeyauthentication",
    "identityfile2": "identityfile",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
    "hostbasedkeytypes": "hostbasedacceptedalgorithms",
    "keepalive": "tcpkeepalive",
    "smartcarddevice": "pkcs11provider",
}

#: Keywords trissh resolves (the directives Host, Match and Include included).
APPLIED: Final = frozenset(
    {
        "host",
        "match",
        "include",
        "hostname",
        "port",
        "user",
        "identityfile",
        "identitiesonly",
        "identityagent",
        "certificatefile",
        "proxyjump",
        "proxycommand",
        "connecttimeout",
        "serveraliveinterval",
        "serveralivecountmax",
        "stricthostkeychecking",
        "userknownhostsfile",
        "globalknownhostsfile",
        "hostkeyalias",
        "checkhostip",
        "compression",
        "rekeylimit",
        "preferredauthentications",
        "pubkeyauthentication",
        "passwordauthentication",
        "kbdinteractiveauthentication",
        "forwardagent",
        "sendenv",
        "setenv",
        "localforward",
        "remoteforward",
        "dynamicforward",
        "batchmode",
        "addressfamily",
        "bindaddress",
        "ciphers",
        "macs",
        "kexalgorithms",
        "hostkeyalgorithms",
        "pubkeyacceptedalgorithms",
        "ignoreunknown",
        # Not applied, but it decides whether ssh reads the config a second time (ssh.c).
        "canonicalizehostname",
    }
)

#: Keywords OpenSSH 9.2 knows that trissh accepts and ignores (deprecated and unsupported ones
#: included: ssh itself only logs those).
IGNORED: Final = frozenset(
    {
        # deprecated / unsupported in 9.2
        "protocol",
        "cipher",
        "fallbacktorsh",
        "globalknownhostsfile2",
        "rhostsauthentication",
        "userknownhostsfile2",
        "useroaming",
        "usersh",
        "useprivilegedport",
        "afstokenpassing",
        "kerberosauthentication",
        "kerberostgtpassing",
        "rsaauthentication",
        "rhostsrsaauthentication",
        "compressionlevel",
        # known, not acted on by trissh
        "gssapiauthentication",
        "gssapidelegatecredentials",
        "gssapikeyexchange",
        "gssapiclientidentity",
        "gssapiserveridentity",
        "gssapirenewalforcesrekey",
        "gssapitrustdns",
        "gssapikexalgorithms",
        "pkcs11provider",
        "forwardx11",
        "forwardx11trusted",
        "forwardx11timeout",
        "exitonforwardfailure",
        "xauthlocation",
        "gatewayports",
        "kbdinteractivedevices",
        "hostbasedauthentication",
        "addkeystoagent",
        "permitremoteopen",
        "escapechar",
        "connectionattempts",
        "tcpkeepalive",
        "numberofpasswordprompts",
        "syslogfacility",
        "loglevel",
        "logverbose",
        "casignaturealgorithms",
        "bindinterface",
        "clearallforwardings",
        "enablesshkeysign",
        "verifyhostkeydns",
        "nohostauthenticationforlocalhost",
        "controlpath",
        "controlmaster",
        "controlpersist",
        "hashknownhosts",
        "tunnel",
        "tunneldevice",
        "localcommand",
        "permitlocalcommand",
        "remotecommand",
        "visualhostkey",
        "ipqos",
        "requesttty",
        "sessiontype",
        "stdinnull",
        "forkafterauthentication",
        "proxyusefdpass",
        "canonicaldomains",
        "canonicalizefallbacklocal",
        "canonicalizemaxdots",
        "canonicalizepermittedcnames",
        "streamlocalbindmask",
        "streamlocalbindunlink",
        "revokedhostkeys",
        "fingerprinthash",
        "updatehostkeys",
        "hostbasedacceptedalgorithms",
        "securitykeyprovider",
        "knownhostscommand",
        "requiredrsasize",
        "enableescapecommandline",
    }
)


def canonical(keyword: str) -> str:
    """``keyword`` (lower case) with an alias replaced by the name ssh -G prints."""
    return ALIASES.get(keyword, keyword)
