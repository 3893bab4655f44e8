"""Pseudo-terminals against OpenSSH sshd: pty-req with modes (RFC 4254 §6.2, §8), window-change (§6.7),
and login shells (§6.5 ``shell``)."""

from __future__ import annotations

import re

import pytest
import trio
from test_integration import connect, trissh_tasks_once_idle

from trissh._channels.terminal import encode_terminal_modes
from trissh.testing import SSHServer


@pytest.mark.parametrize(
    ("modes", "encoded"),
    [
        (None, "00"),
        ({"ECHO": 0}, "35 00000000 00"),
        ({"echo": 1, 51: 0}, "35 00000001 33 00000000 00"),
        ({"TTY_OP_ISPEED": 38400}, "80 00009600 00"),
    ],
)
def test_encode_terminal_modes(modes: dict[str | int, int] | None, encoded: str) -> None:
    """RFC 4254 §8: (opcode byte, uint32) pairs ended by TTY_OP_END."""
    assert encode_terminal_modes(modes).hex() == encoded.replace(" ", "")


@pytest.mark.parametrize(
    ("modes", "error", "match"),
    [
        ({"NOPE": 1}, ValueError, "unknown terminal mode 'NOPE'"),
        ({0: 1}, ValueError, "outside 1..159"),
        ({160: 1}, ValueError, "outside 1..159"),
        ({"ECHO": -1}, ValueError, "not a uint32"),
        ({"ECHO": 2**32}, ValueError, "not a uint32"),
        ({"ECHO": "0"}, TypeError, "must be an int"),
    ],
)
def test_bad_terminal_modes(modes: dict[str | int, int], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        encode_terminal_modes(modes)


async def _read_until(stream: trio.abc.ReceiveStream, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = await stream.receive_some()
        assert chunk, data
        data += chunk
    return data


async def test_pty_tty_size_and_modes(sshd: SSHServer) -> None:
    """The command sees /dev/pts/N of the requested size, and the modes we set (stty -a: -echo)."""
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            result = await conn.run("tty; stty size", term_type="xterm", term_size=(100, 30))
            lines = result.stdout.replace(b"\r", b"").decode().splitlines()
            assert re.fullmatch(r"/dev/pts/\d+", lines[0]), lines
            assert lines[1] == "30 100"
            off = await conn.run("stty -a", term_type="xterm", term_modes={"ECHO": 0, "ICANON": 0})
            assert re.search(r"(^|\s)-echo(\s|$)", off.stdout.decode()), off.stdout
            assert re.search(r"(^|\s)-icanon(\s|$)", off.stdout.decode()), off.stdout
            on = await conn.run("stty -a", term_type="xterm", term_modes={53: 1})
            assert re.search(r"(^|\s)echo(\s|$)", on.stdout.decode()), on.stdout


async def test_shell_resize_terminal(sshd: SSHServer) -> None:
    """open_shell: a login shell on a pty; after resize_terminal (window-change) stty size follows."""
    with trio.fail_after(30):
        async with connect(sshd) as conn, conn.open_shell(term_size=(80, 24), term_modes={"ECHO": 0}) as sh:
            await sh.stdin.send_all(b"tty; stty size; echo E$((1+1))ND\n")
            out = (await _read_until(sh.stdout, b"E2ND")).replace(b"\r", b"").decode()
            assert re.search(r"/dev/pts/\d+\n24 80\n", out), out
            await sh.resize_terminal(132, 50)
            await sh.stdin.send_all(b"stty size; echo E$((2+1))ND\n")
            out = (await _read_until(sh.stdout, b"E3ND")).replace(b"\r", b"").decode()
            assert "50 132\n" in out, out
            await sh.stdin.send_all(b"exit 3\n")
            assert await sh.wait() == 3


async def test_shell_without_pty_and_misuse(sshd: SSHServer) -> None:
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            async with conn.open_shell(term_type=None) as sh:
                await sh.stdin.send_all(b"echo hi; exit 4\n")
                assert await sh.stdout.receive_some() == b"hi\n"
                assert await sh.wait() == 4
                with pytest.raises(RuntimeError, match="no terminal"):
                    await sh.resize_terminal(80, 24)
            with pytest.raises(ValueError, match="need a term_type"):
                await conn.run("true", term_modes={"ECHO": 0})
            with pytest.raises(ValueError, match="term_size must be"):
                await conn.run("true", term_type="xterm", term_size=(80,))


async def test_cancelled_shell_is_gone_and_leaves_no_task(sshd: SSHServer) -> None:
    """A shell block cancelled mid-session: sshd hangs up the pty (the shell and its child are gone),
    no trissh task is left but the connection's, and the connection carries on."""
    with trio.fail_after(30):
        async with connect(sshd) as conn:
            before = await trissh_tasks_once_idle()
            with trio.CancelScope() as scope:
                async with conn.open_shell(term_modes={"ECHO": 0}) as sh:
                    await sh.stdin.send_all(b"echo PID=$$; exec sleep 1000\n")
                    out = (await _read_until(sh.stdout, b"\n")).decode()
                    while not re.search(r"PID=(\d+)\r?\n", out):
                        out += (await sh.stdout.receive_some()).decode()
                    pid = int(re.search(r"PID=(\d+)", out).group(1))  # type: ignore[union-attr]
                    scope.cancel()
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            while (await conn.run(f"kill -0 {pid}")).returncode == 0:
                await trio.sleep(0.02)
            assert await trissh_tasks_once_idle() == before
