"""The ``trissh`` command lines, without a server: ssh's option parsing, destinations, the escape
character's rules, scp-style paths, and ``trissh -G`` set beside ``ssh -G``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trissh._cli.cp import Endpoint, parse_endpoint
from trissh._cli.ssh_args import Destination, Invocation, UsageError, parse_destination, parse_ssh_args
from trissh._cli.terminal import EscapeAction, EscapeFilter

pytestmark = pytest.mark.timeout(60)


def parsed(*argv: str) -> Invocation:
    result = parse_ssh_args(list(argv))
    assert isinstance(result, Invocation)
    return result


def test_options_before_and_after_the_destination_then_the_command() -> None:
    inv = parsed("-p2222", "-vv", "host", "-l", "bob", "-t", "ls", "-l", "-p", "9")
    assert inv.destination == Destination("host")
    assert inv.command == ["ls", "-l", "-p", "9"]  # the command's own options are the command's
    assert inv.config_lines == ["Port 2222", "User bob"]
    assert (inv.verbosity, inv.tty) == (2, 1)


def test_config_lines_keep_the_order_given_so_the_first_wins() -> None:
    inv = parsed("-oPort=1", "-o", "User x", "-i", "/a b", "bob@[::1]:23", "-A", "-C")
    assert inv.destination == Destination("::1", "bob", 23)
    assert inv.config_lines == [
        "Port 1",
        "User x",
        'IdentityFile "/a b"',
        "User bob",
        "Port 23",
        "ForwardAgent yes",
        "Compression yes",
    ]


def test_forwards_flags_and_escape_settings() -> None:
    inv = parsed(
        "-L", "8080:db:5432", "-R", "9000:localhost:22", "-D", "1080", "-N", "-n", "-T", "-e", "^]", "h"
    )
    assert (inv.local_forwards, inv.remote_forwards, inv.dynamic_forwards) == (
        ["8080:db:5432"],
        ["9000:localhost:22"],
        ["1080"],
    )
    assert (inv.no_command, inv.no_stdin, inv.tty, inv.escape_char) == (True, True, -1, "\x1d")
    assert parsed("-e", "none", "h").escape_char is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-f", "h"], "not supported"),
        (["-X", "h"], "X11"),
        (["-Z", "h"], "not recognized"),
        (["-p"], "requires argument"),
        ([], "destination is needed"),
        (["-p", "0", "h"], "bad port"),
        (["-e", "xy", "h"], "escape"),
    ],
)
def test_bad_command_lines_say_why(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_ssh_args(argv)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("h", Destination("h")),
        ("u@h", Destination("h", "u")),
        ("u@h:2", Destination("h", "u", 2)),
        ("a@b@h", Destination("h", "a@b")),
        ("[::1]:22", Destination("::1", None, 22)),
        ("fe80::1", Destination("fe80::1")),
        ("ssh://u@h:2/", Destination("h", "u", 2)),
    ],
)
def test_destinations(text: str, expected: Destination) -> None:
    assert parse_destination(text) == expected


@pytest.mark.parametrize(
    "text", ["", "@h", "u@", "h:", "h:x", "h:70000", "a b", "-h", "[::1", "[::1]x", "h;rm"]
)
def test_invalid_destinations(text: str) -> None:
    with pytest.raises(UsageError, match="invalid destination"):
        parse_destination(text)


def feed(escapes: EscapeFilter, *chunks: bytes) -> tuple[bytes, list[EscapeAction]]:
    out, actions = b"", []
    for chunk in chunks:
        result = escapes.feed(chunk)
        out += result.data
        actions += result.actions
    return out, actions


def test_escapes_count_only_at_a_line_start() -> None:
    assert feed(EscapeFilter(), b"a~.b") == (b"a~.b", [])
    assert feed(EscapeFilter(), b"~.") == (b"", [EscapeAction.DISCONNECT])  # the very start is a line start
    assert feed(EscapeFilter(), b"ls\r~.more") == (b"ls\r", [EscapeAction.DISCONNECT])
    assert feed(EscapeFilter(), b"x\n~", b".") == (b"x\n", [EscapeAction.DISCONNECT])  # split across reads


def test_other_escapes() -> None:
    assert feed(EscapeFilter(), b"\r~?") == (b"\r", [EscapeAction.HELP])
    assert feed(EscapeFilter(), b"\r~~x") == (b"\r~x", [])
    assert feed(EscapeFilter(), b"\r~x") == (b"\r~x", [])  # not an escape: both sent
    assert feed(EscapeFilter("%"), b"\r~.\r%.") == (b"\r~.\r", [EscapeAction.DISCONNECT])
    assert feed(EscapeFilter(None), b"\r~.") == (b"\r~.", [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("file", Endpoint("file")),
        ("./a:b", Endpoint("./a:b")),
        ("/abs/a:b", Endpoint("/abs/a:b")),
        ("dir/a:b", Endpoint("dir/a:b")),
        ("host:", Endpoint(".", "host")),
        ("host:path/x", Endpoint("path/x", "host")),
        ("u@host:/p", Endpoint("/p", "host", "u")),
        ("[::1]:/p", Endpoint("/p", "::1")),
        ("u@[::1]:p", Endpoint("p", "::1", "u")),
        ("scp://u@h:2222/dir/f", Endpoint("dir/f", "h", "u", 2222)),
        ("scp://h", Endpoint(".", "h")),
    ],
)
def test_cp_paths(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH's ssh is not installed")
def test_dash_g_agrees_with_ssh_dash_g(tmp_path: Path) -> None:
    """The command line's options and the config combine as in ssh: ``trissh -G`` beside ``ssh -G``."""
    config = tmp_path / "config"
    config.write_text(
        "Host h\n  Port 2000\n  User cfg\n  Ciphers +aes128-cbc\nHost *\n  ServerAliveInterval 5\n"
    )
    argv = ["-F", str(config), "-p", "2222", "-o", "User=first", "-l", "second", "-C", "h"]
    ours = subprocess.run(
        [sys.executable, "-m", "trissh", "-G", *argv], capture_output=True, text=True, timeout=30
    )
    theirs = subprocess.run(
        ["ssh", "-G", *argv], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}
    )
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    reference = dict(line.split(" ", 1) for line in theirs.stdout.splitlines() if " " in line)
    ours_lines = dict(line.split(" ", 1) for line in ours.stdout.splitlines())
    for key in ("hostname", "port", "user", "compression", "serveraliveinterval"):
        assert ours_lines[key] == reference[key], key
    assert ours_lines["port"] == "2222" and ours_lines["user"] == "first"


def test_a_bad_config_file_is_one_line_and_255(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host h\n  Port banana\n")
    for extra in ([], ["-G"]):
        done = subprocess.run(
            [sys.executable, "-m", "trissh", "-F", str(config), *extra, "h", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 255
        assert "line 2" in done.stderr and "Traceback" not in done.stderr, done.stderr
