"""The public API as a user meets it: every name in ``trissh.__all__`` resolves and calls itself
``trissh.X``; errors pickle and show their public name; public signatures carry precise types; the
reprs of connections, processes, forwards, SFTP clients and errors help in a log and hold no secret.
"""

from __future__ import annotations

import inspect
import pickle
import re
import traceback
import typing
from collections.abc import Callable
from typing import Any

import pytest
import trio
from test_integration import connect

import trissh
import trissh.sftp
from trissh.testing import SSHServer

PUBLIC_NAMES = sorted(trissh.__all__)


def _is_code(obj: object) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj)


# --- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_every_public_name_resolves_and_reports_trissh_as_its_module(name: str) -> None:
    obj = getattr(trissh, name)
    if _is_code(obj):
        assert obj.__module__ == "trissh", f"trissh.{name} says it is {obj.__module__}.{obj.__qualname__}"
        assert obj.__qualname__ == name or name == "load_private_key"  # (an alias of read_private_key)


def test_names_only_trissh_sftp_exports_report_trissh_sftp() -> None:
    for name in trissh.sftp.__all__:
        obj = getattr(trissh.sftp, name)
        expected = "trissh" if name in trissh.__all__ else "trissh.sftp"
        assert obj.__module__ == expected, name


@pytest.mark.parametrize(
    "name",
    [
        # What a connection's methods hand out, and what their parameters take.
        "CompletedProcess",
        "Process",
        "ProcessPhase",
        "ExitSignal",
        "ChannelStream",
        "LocalForward",
        "RemoteForward",
        "SFTPClient",
        "SFTPAttributes",
        "SFTPName",
        "SFTPFile",
        "SFTPStatVFS",
        "SFTPLimits",
        "SSHConfig",
        "KnownHosts",
        "KnownHostEntry",
        "PrivateKey",
        "PublicKey",
        "Certificate",
        "CertType",
        "CertificateVerdict",
        "SSHAgentClient",
        "AgentIdentity",
        "AuthResult",
        "Negotiated",
        "DirectionAlgorithms",
        "PIPE",
        "DEVNULL",
        "STDOUT",
        "ClientKeysArg",
        "KnownHostsArg",
        "ConfigArg",
        "OutputTarget",
        "HostKeyPolicy",
        "for_each_host",
        "FanoutConnectOptions",
    ],
)
def test_what_a_user_needs_is_exported(name: str) -> None:
    assert name in trissh.__all__
    assert getattr(trissh, name) is not None


def test_the_classes_a_connection_hands_out_are_the_exported_ones() -> None:
    """Marked where they are defined: ``conn.run()``'s result says ``trissh.CompletedProcess`` even in
    a program that never spelled ``trissh.CompletedProcess``."""
    from trissh._channels.session import CompletedProcess

    assert CompletedProcess is trissh.CompletedProcess
    assert repr(CompletedProcess) == "<class 'trissh.CompletedProcess'>"


# --- errors ----------------------------------------------------------------------------------------

ERRORS: list[Callable[[], trissh.SSHError]] = [
    lambda: trissh.SSHError("something"),
    lambda: trissh.ProtocolError("bad packet", trissh.DisconnectReason.MAC_ERROR),
    lambda: trissh.DisconnectError(trissh.DisconnectReason.BY_APPLICATION, "bye", local=True),
    lambda: trissh.DisconnectError(200, "an unknown code"),
    lambda: trissh.ConnectionLost("gone"),
    lambda: trissh.ConnectTimeout("timed out (key exchange)"),
    lambda: trissh.HostKeyNotVerifiable("changed"),
    lambda: trissh.PermissionDenied("no", ("publickey", "password")),
    lambda: trissh.ChannelOpenError(trissh.ChannelOpenFailureReason.CONNECT_FAILED, "refused"),
    lambda: trissh.ForwardingError("cannot listen"),
    lambda: trissh.ProcessError("false", 1, b"out", b"err"),
    lambda: trissh.ProcessError("sleep 9", None, b"", b"", exit_signal="TERM"),
    lambda: trissh.KeyImportError("bad key"),
    lambda: trissh.PassphraseRequired("encrypted"),
    lambda: trissh.AgentError("no agent"),
    lambda: trissh.ConfigError("bad line"),
    lambda: trissh.HostTimeout("command", 5.0, "timeout"),
    lambda: trissh.SFTPError(4, "failure", "/x"),
    lambda: trissh.SFTPTransferError(4, "cut short", "/x", bytes_confirmed=10),
    lambda: trissh.sftp.SFTPNoSuchFile(2, "no such file", "/missing"),
]


@pytest.mark.parametrize("make", ERRORS)
def test_an_error_shows_its_public_name_in_its_repr_and_traceback(
    make: Callable[[], trissh.SSHError],
) -> None:
    error = make()
    cls = type(error)
    public = f"{cls.__module__}.{cls.__qualname__}"
    assert public.startswith("trissh.") and "._" not in public
    assert repr(cls) == f"<class '{public}'>"
    assert repr(error).startswith(f"{public}(")
    assert traceback.format_exception_only(error)[-1].startswith(f"{public}: ")


@pytest.mark.parametrize("make", ERRORS)
def test_an_error_pickles_with_its_message_and_attributes(make: Callable[[], trissh.SSHError]) -> None:
    error = make()
    error.add_note("a note")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert repr(copy) == repr(error)
    assert vars(copy) == vars(error)
    if isinstance(error, OSError):
        assert isinstance(copy, OSError)
        assert (copy.errno, copy.strerror, copy.filename) == (error.errno, error.strerror, error.filename)


def test_a_lazily_exported_class_unpickles_in_a_fresh_interpreter() -> None:
    """Pickle names ``trissh.HostTimeout``; a process that never imported trissh.fanout finds it through
    ``trissh``'s lazy lookup."""
    import subprocess
    import sys

    values = (
        trissh.HostTimeout("connect", 5.0, "connect_timeout"),
        trissh.CompletedProcess("ls", 0, b"a", b""),
    )
    code = "import pickle, sys; print([repr(v) for v in pickle.loads(sys.stdin.buffer.read())])"
    done = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(values), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == repr([repr(v) for v in values])


def test_error_reprs_carry_what_a_handler_reads() -> None:
    assert repr(trissh.PermissionDenied("no way", ("publickey",))) == (
        "trissh.PermissionDenied('no way', methods=('publickey',))"
    )
    disconnect = repr(trissh.DisconnectError(trissh.DisconnectReason.TOO_MANY_CONNECTIONS, "full"))
    assert disconnect == (
        "trissh.DisconnectError('server disconnected: TOO_MANY_CONNECTIONS: full', "
        "code=<DisconnectReason.TOO_MANY_CONNECTIONS: 12>, reason='full', local=False)"
    )
    opened = repr(trissh.ChannelOpenError(2, "no route"))
    assert (
        "trissh.ChannelOpenError(" in opened and "CONNECT_FAILED" in opened and "reason='no route'" in opened
    )
    failed = repr(trissh.ProcessError("false", 1, b"secret output" * 1000, b""))
    assert (
        failed
        == "trissh.ProcessError(\"command 'false' exited with status 1\", returncode=1, exit_signal=None)"
    )
    assert "MAC_ERROR" in repr(trissh.ProtocolError("bad", trissh.DisconnectReason.MAC_ERROR))


# --- types -----------------------------------------------------------------------------------------

# A bare ``object`` or ``Any`` in a public signature tells the user nothing.
_LOOSE = re.compile(r"\b(object|Any)\b")


def _public_callables() -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Callable[..., Any]]] = []
    for name in PUBLIC_NAMES:
        obj = getattr(trissh, name)
        if inspect.isfunction(obj):
            found.append((name, obj))
        elif inspect.isclass(obj) and obj.__module__ == "trissh" and not issubclass(obj, BaseException):
            for attr, value in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                if isinstance(value, staticmethod | classmethod):
                    value = value.__func__
                if isinstance(value, property):
                    value = value.fget
                if inspect.isfunction(value):
                    found.append((f"{name}.{attr}", value))
    return found


def test_public_signatures_have_precise_types() -> None:
    loose = []
    for qualname, function in _public_callables():
        signature = inspect.signature(function)
        for parameter in signature.parameters.values():
            if parameter.name in ("self", "cls"):
                continue
            annotation = parameter.annotation
            if annotation is inspect.Parameter.empty or _LOOSE.search(str(annotation)):
                loose.append(f"{qualname}({parameter.name}: {annotation})")
        returned = signature.return_annotation
        if _LOOSE.search(str(returned)) or (
            returned is inspect.Signature.empty and "__init__" not in qualname
        ):
            loose.append(f"{qualname} -> {returned}")
    assert loose == []


def test_connect_names_the_types_of_its_key_host_and_config_arguments() -> None:
    parameters = inspect.signature(trissh.connect).parameters
    assert parameters["client_keys"].annotation == "ClientKeysArg"
    assert parameters["known_hosts"].annotation == "KnownHostsArg"
    assert parameters["config"].annotation == "ConfigArg"
    # The aliases say what they take.
    assert "KnownHosts" in trissh.KnownHostsArg and "os.PathLike[str]" in trissh.KnownHostsArg
    assert "SSHConfig" in trissh.ConfigArg and "None" in trissh.ConfigArg
    assert "Sequence" in str(trissh.ClientKeysArg)


def test_the_fanout_keywords_are_connects() -> None:
    """``run_on_hosts(..., **connect_options)`` is typed by :class:`FanoutConnectOptions`: it must list
    exactly connect()'s keywords (but ``host`` and ``connect_timeout``), each with connect()'s type."""
    parameters = inspect.signature(trissh.connect).parameters
    expected = {
        name: p.annotation for name, p in parameters.items() if name not in ("host", "connect_timeout")
    }
    declared = {
        name: ref.__forward_arg__ for name, ref in trissh.FanoutConnectOptions.__annotations__.items()
    }
    assert declared == expected
    for function in (trissh.run_on_hosts, trissh.for_each_host):
        options = inspect.signature(function).parameters["connect_options"]
        assert options.annotation == "Unpack[FanoutConnectOptions]"
    assert typing.is_typeddict(trissh.FanoutConnectOptions)


# --- documented attributes ----------------------------------------------------------------------------


def _documented_attributes(cls: type) -> set[str]:
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Attributes:", 1)[1]
    return set(re.findall(r"^    ([a-z_]+)(?:, [a-z_]+)*:", section, re.M)) | set(
        re.findall(r"^    [a-z_]+, ([a-z_]+):", section, re.M)
    )


def test_completed_process_documents_every_field_and_when_it_is_none() -> None:
    import dataclasses

    fields = {field.name for field in dataclasses.fields(trissh.CompletedProcess)}
    assert _documented_attributes(trissh.CompletedProcess) == fields
    doc = inspect.getdoc(trissh.CompletedProcess) or ""
    assert "None when the server closed the channel without reporting" in doc
    assert doc.count("Never None") == 2  # stdout and stderr


def test_process_documents_its_public_attributes() -> None:
    public = {
        name
        for name in vars(trissh.Process)
        if not name.startswith("_") and not callable(getattr(trissh.Process, name))
    }
    public |= {"command", "stdin", "stdout", "stderr", "phase", "has_terminal", "channel"}  # set in __init__
    assert public <= _documented_attributes(trissh.Process)


# --- reprs -----------------------------------------------------------------------------------------


def test_completed_process_repr_shortens_long_output() -> None:
    result = trissh.CompletedProcess("cat big", 0, b"x" * 10_000, b"")
    text = repr(result)
    assert text.startswith("trissh.CompletedProcess(args='cat big', returncode=0, stdout=b'xxx")
    assert "... (10000 bytes)" in text and len(text) < 200
    signalled = trissh.CompletedProcess("sleep 9", -15, b"", b"", trissh.ExitSignal("TERM"))
    assert repr(signalled).endswith("stdout=b'', stderr=b'', exit_signal='TERM')")


def test_forward_reprs_show_listen_address_and_destination() -> None:
    from pathlib import Path

    local = trissh.LocalForward("127.0.0.1", 4000, None, (("127.0.0.1", 4000),), "db.internal:5432")
    assert repr(local) == "<trissh.LocalForward 127.0.0.1:4000 -> db.internal:5432>"
    unix = trissh.LocalForward(None, 0, Path("/tmp/l.sock"), ("/tmp/l.sock",), "unix:/run/app.sock")
    assert repr(unix) == "<trissh.LocalForward /tmp/l.sock -> unix:/run/app.sock>"
    remote = trissh.RemoteForward("", 8022, None, "127.0.0.1:22")
    assert repr(remote) == "<trissh.RemoteForward *:8022 (on the server) -> 127.0.0.1:22>"


def _secrets_of(server: SSHServer) -> list[str]:
    """Text that must never show in a repr: the client key file's base64 body."""
    body = [line for line in server.client_key.read_text().splitlines() if line and "-----" not in line]
    return body


async def test_live_reprs(sshd: SSHServer) -> None:
    async def handler(stream: trissh.ChannelStream) -> None:
        await stream.aclose()

    with trio.fail_after(30):
        async with connect(sshd) as conn:
            where = f"{sshd.username}@{sshd.host}:{sshd.port}"
            negotiated = conn.negotiated
            text = repr(conn)
            assert text == (
                f"<trissh.SSHConnection {where} open, {negotiated.kex}, {negotiated.client_to_server.cipher}>"
            )
            transport = repr(conn.transport)
            assert transport.startswith(
                f"<trissh.SSHClientTransport {sshd.host}:{sshd.port}, running, 'SSH-2.0-"
            )
            assert f"kex {negotiated.kex}" in transport

            result = await conn.run("echo hi; exit 3")
            expected = (
                "trissh.CompletedProcess(args='echo hi; exit 3', returncode=3, stdout=b'hi\\n', stderr=b'')"
            )
            assert repr(result) == expected
            killed = await conn.run("kill -TERM $$")
            assert repr(killed).endswith("exit_signal='TERM')") and "returncode=-15" in repr(killed)

            async with conn.open_process("cat") as process:
                assert re.fullmatch(r"<trissh\.Process 'cat' running, channel \d+>", repr(process))
                await process.stdin.send_eof()
                await process.wait()
                assert re.fullmatch(r"<trissh\.Process 'cat' exited 0, channel \d+>", repr(process))
            async with conn.open_process("kill -KILL $$") as process:
                await process.wait()
                assert re.fullmatch(
                    r"<trissh\.Process 'kill -KILL \$\$' killed by signal KILL, channel \d+>", repr(process)
                )

            async with conn.open_sftp() as sftp:
                assert re.fullmatch(
                    r"<trissh\.SFTPClient open, channel \d+, \d+ extensions, \d+ KiB x \d+ in flight>",
                    repr(sftp),
                )
            async with conn.forward_local_port("127.0.0.1", 0, "db.internal", 5432) as local:
                assert repr(local) == f"<trissh.LocalForward 127.0.0.1:{local.port} -> db.internal:5432>"
            async with conn.forward_socks("127.0.0.1", 0) as socks:
                assert repr(socks) == f"<trissh.LocalForward 127.0.0.1:{socks.port} -> SOCKS>"
            async with conn.forward_remote_port("127.0.0.1", 0, handler) as remote:
                assert repr(remote) == (
                    f"<trissh.RemoteForward 127.0.0.1:{remote.port} (on the server) -> "
                    "handler test_live_reprs.<locals>.handler>"
                )
            texts = [text, transport, repr(result), repr(sftp), repr(conn.auth)]
        assert repr(conn).startswith(f"<trissh.SSHConnection {where} closed")
        assert ", closed," in repr(conn.transport)
    for secret in _secrets_of(sshd):
        assert not any(secret in shown for shown in texts)
