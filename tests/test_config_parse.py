"""ssh_config behaviour the ``ssh -G`` oracle cannot show: Match exec safety, Include depth,
logging of unknown keywords, the line tokenisers, and the typed view for connect()."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from trissh import SSHError
from trissh._config import ConfigError, ResolvedConfig, SSHConfig
from trissh._config._lexer import argv_split, split_line, strdelim
from trissh._config._reader import MAX_INCLUDE_DEPTH
from trissh._config._values import convtime, parse_forward, scan_scaled

pytestmark = pytest.mark.timeout(30)

HAVE_SSH = shutil.which("ssh") is not None


def _ssh_g_code(config: Path) -> int:
    return subprocess.run(
        ["ssh", "-G", "-F", str(config), "h"],
        capture_output=True,
        timeout=15,
        env={"HOME": os.environ.get("HOME", "/"), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.DEVNULL,
        check=False,
    ).returncode


# --- Match exec -------------------------------------------------------------------------------


def test_match_exec_is_not_run_by_default(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """ssh_config(5) Match exec: trissh runs nothing unless allow_exec=True, and the block is skipped."""
    marker = tmp_path / "ran"
    config = SSHConfig.from_text(f'Match exec "touch {marker}"\n    User from-exec\n', "cfg")
    with caplog.at_level(logging.WARNING, logger="trissh.config"):
        result = config.lookup("h", local_user="me")
    assert not marker.exists()
    assert result["user"] == "me"
    assert "not run" in caplog.text


def test_negated_match_exec_is_not_taken_as_matching_when_disabled(tmp_path: Path) -> None:
    """A disabled ``!exec`` must not switch a block on either: the command never ran."""
    marker = tmp_path / "ran"
    config = SSHConfig.from_text(f'Match !exec "touch {marker}"\n    Port 2222\n')
    assert config.lookup("h")["port"] == "22"
    assert not marker.exists()


def test_match_exec_runs_when_enabled(tmp_path: Path) -> None:
    """With allow_exec=True the command runs through /bin/sh with the %-tokens expanded; exit 0 matches."""
    marker = tmp_path / "ran"
    text = f'Match exec "echo %h:%p > {marker}"\n    User from-exec\nMatch exec false\n    Port 1\n'
    result = SSHConfig.from_text(text, allow_exec=True).lookup("target.example", port=2200)
    assert marker.read_text() == "target.example:2200\n"
    assert result["user"] == "from-exec"
    assert result["port"] == "2200"


def test_match_exec_skipped_after_a_failed_criterion(tmp_path: Path) -> None:
    """readconf.c: an exec after a criterion that failed is not run."""
    marker = tmp_path / "ran"
    text = f'Match host nomatch exec "touch {marker}"\n    User x\n'
    SSHConfig.from_text(text, allow_exec=True).lookup("h")
    assert not marker.exists()


# --- Include ----------------------------------------------------------------------------------


def _include_chain(tmp_path: Path, levels: int) -> Path:
    """A config that includes a chain ``levels`` deep."""
    tmp_path.mkdir()
    files = [tmp_path / f"level{i}.conf" for i in range(levels + 1)]
    for i, path in enumerate(files):
        text = f"Include {files[i + 1]}\n" if i < levels else "User deepest\n"
        path.write_text(text)
        path.chmod(0o644)
    return files[0]


def test_include_depth_limit(tmp_path: Path) -> None:
    """READCONF_MAX_DEPTH: 16 levels of Include are read, 17 are refused (as ssh does)."""
    ok = _include_chain(tmp_path / "ok", MAX_INCLUDE_DEPTH)
    deep = _include_chain(tmp_path / "deep", MAX_INCLUDE_DEPTH + 1)
    assert SSHConfig.load(ok).lookup("h")["user"] == "deepest"
    with pytest.raises(ConfigError, match="Too many recursive configuration includes"):
        SSHConfig.load(deep)
    if HAVE_SSH:
        assert (_ssh_g_code(ok), _ssh_g_code(deep)) == (0, 255)


def test_include_loop_names_the_chain(tmp_path: Path) -> None:
    """A file including itself fails with the chain of files in the message."""
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_text(f"Include {b}\n")
    b.write_text(f"Include {a}\n")
    for path in (a, b):
        path.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        SSHConfig.load(a)
    assert f"{a} -> {b} -> {a}" in str(info.value)
    assert isinstance(info.value, SSHError)


def test_included_file_with_bad_permissions_is_refused(tmp_path: Path) -> None:
    """readconf.c SSHCONF_CHECKPERM: an included file writable by others is an error."""
    inc = tmp_path / "inc.conf"
    inc.write_text("User x\n")
    inc.chmod(0o666)
    main = tmp_path / "main.conf"
    main.write_text(f"Include {inc}\n")
    with pytest.raises(ConfigError, match="Bad owner or permissions"):
        SSHConfig.load(main)
    if HAVE_SSH:
        assert _ssh_g_code(main) == 255


def test_relative_include_is_under_dot_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative Include of a user config is read from ~/.ssh (glob's ~ is $HOME)."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "extra").write_text("Port 2345\n")
    (tmp_path / ".ssh" / "extra").chmod(0o644)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert SSHConfig.from_text("Include extra\n").lookup("h")["port"] == "2345"


def test_include_inside_a_block_applies_only_there(tmp_path: Path) -> None:
    """An Include under a Host that does not match is read (and checked) but not applied."""
    inc = tmp_path / "inc.conf"
    inc.write_text("User included\n")
    inc.chmod(0o644)
    config = SSHConfig.from_text(f"Host special\n    Include {inc}\n")
    assert config.lookup("special")["user"] == "included"
    assert config.lookup("other", local_user="me")["user"] == "me"
    inc.write_text("Port abc\n")
    with pytest.raises(ConfigError, match="Bad port"):
        SSHConfig.from_text(f"Host special\n    Include {inc}\n")


def test_system_config_may_not_include_tilde(tmp_path: Path) -> None:
    """readconf.c: ``~`` in an Include of a system file is a bad include path."""
    from trissh._config._reader import read_config

    system = tmp_path / "ssh_config"
    system.write_text("Include ~/x.conf\n")
    with pytest.raises(ConfigError, match="bad include path"):
        read_config(str(system), user=False)


def test_explicit_missing_file_is_an_error_default_ones_are_skipped(tmp_path: Path) -> None:
    """load(path) needs the file; load() skips ~/.ssh/config and /etc/ssh/ssh_config when absent."""
    with pytest.raises(ConfigError, match="Can't open user config file"):
        SSHConfig.load(tmp_path / "missing")
    assert SSHConfig.load()  # whatever this machine has, it loads
    assert SSHConfig.load([]).lookup("h", local_user="me") == {"hostname": "h", "port": "22", "user": "me"}


# --- unknown keywords -------------------------------------------------------------------------


def test_unknown_keyword_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown keyword is logged once per config however often it is met (ssh would refuse it)."""
    config = SSHConfig.from_text("FrobnicateHosts yes\nHost *\n    FrobnicateHosts no\n", "cfg")
    with caplog.at_level(logging.WARNING, logger="trissh.config"):
        config.lookup("a")
        config.lookup("b")
    records = [r for r in caplog.records if "frobnicatehosts" in r.getMessage()]
    assert len(records) == 1
    assert "cfg line 1" in records[0].getMessage()


def test_ignore_unknown_is_silent_and_known_ignored_keywords_are_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """IgnoreUnknown patterns silence unknown keywords; keywords ssh knows but trissh does not apply
    (ForwardX11, ControlMaster, ...) load without a word."""
    text = "IgnoreUnknown UseKeychain,Add*\nUseKeychain yes\nAddFoo 1\nForwardX11 yes\nControlMaster auto\n"
    with caplog.at_level(logging.DEBUG, logger="trissh.config"):
        result = SSHConfig.from_text(text).lookup("h")
    assert caplog.records == []
    assert result["ignoreunknown"] == "UseKeychain,Add*"


# --- tokenisers and values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ('a "b c" d', ["a", "b c", "d"]),
        ("a 'b \" c'", ["a", 'b " c']),
        (r"a\ b c", ["a b", "c"]),
        (r'"a\"b"', ['a"b']),
        (r"a\x", [r"a\x"]),
        ("a #comment", ["a"]),
        ("a#b", ["a#b"]),
        ('"unterminated', None),
    ],
)
def test_argv_split(text: str, args: list[str] | None) -> None:
    """misc.c argv_split with terminate_on_comment: quotes, escapes, comments."""
    assert argv_split(text) == args


def test_keyword_separators() -> None:
    """Keyword=value, Keyword = value and Keyword value are one syntax (misc.c strdelim)."""
    for text in ("Port=22", "Port = 22", "  Port\t22", 'Port="22"', "PORT 22"):
        line = split_line(text, "f", 1)
        assert line is not None and (line.keyword, line.args) == ("port", ("22",))
    assert strdelim('"quoted key" rest') == ("quoted key", "rest")
    assert split_line("   # comment", "f", 1) is None
    with pytest.raises(ConfigError, match="f line 3: no argument after keyword"):
        split_line("Host", "f", 3)


def test_values() -> None:
    """convtime, scan_scaled and forward specs as misc.c / fmt_scaled.c / readconf.c read them."""
    assert convtime("1h30m") == 5400
    assert convtime("90") == 90
    assert scan_scaled("1.5K") == 1536
    assert scan_scaled("2G") == 2 * 2**30
    with pytest.raises(ValueError):
        convtime("5x")
    with pytest.raises(ValueError):
        parse_forward("8080", dynamic=False, remote=False)
    assert parse_forward("[::1]:8080:host:80", dynamic=False, remote=False).format(False) == (
        "[::1]:8080 [host]:80"
    )


def test_bad_host_or_user_argument() -> None:
    """Names from the caller with shell metacharacters are refused, as ssh.c valid_hostname does."""
    config = SSHConfig.from_text("")
    with pytest.raises(ValueError, match="hostname"):
        config.lookup("a;b")
    with pytest.raises(ValueError, match="username"):
        config.lookup("h", "x;y")


# --- the typed view ---------------------------------------------------------------------------


def test_resolved_config_typed_view() -> None:
    """ResolvedConfig: typed fields, connect-time expansions, None where nothing was set."""
    text = (
        "Host db\n"
        "    HostName db.internal\n"
        "    Port 2200\n"
        "    IdentityFile ~/.ssh/id_%h\n"
        "    IdentityFile none\n"
        "    ProxyCommand nc %h %p\n"
        "    ConnectTimeout 1m\n"
        "    StrictHostKeyChecking accept-new\n"
        "    SetEnv A=1 B=x=y\n"
        "    Ciphers aes128-ctr\n"
        "    UserKnownHostsFile none\n"
    )
    resolved = SSHConfig.from_text(text).resolve("db", local_user="me")
    assert isinstance(resolved, ResolvedConfig)
    assert resolved.hostname == "db.internal" and resolved.port == 2200
    assert resolved.identity_files is not None and len(resolved.identity_files) == 1
    assert resolved.identity_files[0].endswith("/.ssh/id_db.internal")
    assert resolved.proxy_command == "nc db.internal 2200"
    assert resolved.proxy_jump is None
    assert resolved.connect_timeout == 60
    assert resolved.strict_host_key_checking == "accept-new"
    assert resolved.set_env == {"A": "1", "B": "x=y"}
    assert resolved.ciphers == ("aes128-ctr",)
    assert resolved.user_known_hosts_files == ()
    assert resolved.compression is None and resolved.forward_agent is None


def test_proxy_none_semantics() -> None:
    """ProxyJump none / ProxyCommand none: no proxy, and later lines cannot set one (first wins)."""
    text = "Host a\n    ProxyJump none\nHost b\n    ProxyCommand none\nHost *\n    ProxyJump j\n"
    config = SSHConfig.from_text(text)
    for host in ("a", "b"):
        resolved = config.resolve(host)
        assert (resolved.proxy_jump, resolved.proxy_command) == (None, None)
        assert "proxyjump" not in config.lookup(host)
    assert config.resolve("c").proxy_jump == "j"


def test_trissh_algorithm_defaults() -> None:
    """Without ``defaults=``, +/-/^ lists build on trissh's own preference lists."""
    from trissh._algorithms.ciphers import DEFAULT_CIPHERS

    result = SSHConfig.from_text("Ciphers -aes*-ctr\n").lookup("h")
    assert result["ciphers"] == ",".join(c for c in DEFAULT_CIPHERS if not c.endswith("-ctr"))
    lists = {"ciphers": ["x-cipher"]}
    assert SSHConfig.from_text("Ciphers +aes128-ctr\n").lookup("h", defaults=lambda: lists)["ciphers"] == (
        "x-cipher,aes128-ctr"
    )
