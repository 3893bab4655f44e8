"""Every code example in the documentation runs, against a real throwaway sshd.

The convention for writers (also in docs/conf.py):

* A fenced ```python block in docs/**/*.md is a whole program: its imports, ``async def main()`` and
  ``trio.run(main)``. It connects to ``example.com``, ``bastion.example.com`` or any other
  ``*.example.com`` name with no other arguments: this test writes a ``~/.ssh/config`` in a temporary home
  whose Host block leads those names to the local sshd (HostName, Port, User, IdentityFile,
  UserKnownHostsFile), as a reader's own config would lead them to real servers.
* The program runs in-process, in a temporary working directory holding the files the examples use
  (``LOCAL_FILES``); on the server, SFTP starts in a directory holding ``REMOTE_FILES``, both made
  afresh for every block. Commands run in the login user's home: examples only read there.
* A fragment that cannot run on its own goes in a ```text block. Only the testing section may have a
  ```python block whose first line is ``# pytest example``: a user's test module on the pytest plugin's
  fixtures, which pytest runs here in a process of its own (and all its tests must pass).
* A ```console block's ``$ trissh ...`` lines run through the command's ``main()`` with the same home;
  the lines after a command, if any, are its expected standard output (``...`` matches any lines), and
  it must exit 0. Shell lines that are not trissh commands belong in a ```sh block, which is not run.
* Literal blocks in the docstrings of the API reference's names run too when they are whole programs
  (they call ``trio.run``); fragments there stay unrun.

A failure names the file and line of the block, and tracebacks point into the markdown file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import inspect
import logging
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import trissh
import trissh.sftp
import trissh.testing
from trissh.testing import SSHServer, start_sshd

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
# Seconds one example may take; an example that hangs fails with a Trio traceback inside it.
EXAMPLE_TIMEOUT = 60
pytestmark = pytest.mark.timeout(EXAMPLE_TIMEOUT + 30)

PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "py3"})
PYTEST_MARKER = "# pytest example"

# What the examples find in their working directory, and on the server (SFTP's start directory).
LOCAL_FILES = {
    "report.txt": "quarterly figures\n",
    "build/index.html": "<h1>hello</h1>\n",
    "build/static/app.js": "console.log('hi')\n",
}
REMOTE_FILES = {
    "notes.txt": "first line\n",
    "logs/app.log": "started\nstopped\n",
    "incoming/.keep": "",
}


@dataclasses.dataclass(frozen=True)
class Block:
    """One code block: the file it is in, the line of its opening fence, its language and its text."""

    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


def _language(info: str) -> str:
    """The language of a fence's info string: ```python, ```{code-block} python, ```{code} py."""
    words = info.split()
    if not words:
        return ""
    if words[0].startswith("{") and words[0].endswith("}"):
        return words[1].lower() if len(words) > 1 and words[0] in ("{code-block}", "{code}") else ""
    return words[0].lower()


def markdown_blocks(path: Path) -> Iterator[Block]:
    """The fenced code blocks of a markdown file (CommonMark fences, as MyST reads them)."""
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, start = match["fence"], index
        body: list[str] = []
        index += 1
        while index < len(lines) and not (
            lines[index].strip().startswith(fence) and set(lines[index].strip()) == {fence[0]}
        ):
            body.append(lines[index])
            index += 1
        index += 1
        if match["info"].startswith("{"):  # a MyST directive: its options (":caption: ...") come first
            while body and body[0].startswith(":"):
                body.pop(0)
        yield Block(path, start + 1, _language(match["info"]), "\n".join(body))


def doc_files() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.relative_to(DOCS).parts)


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in markdown_blocks(path)]


def python_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.language in PYTHON_LANGUAGES]


def console_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.language == "console"]


def is_pytest_example(block: Block) -> bool:
    first = block.text.lstrip().splitlines()[0] if block.text.strip() else ""
    return first.strip() == PYTEST_MARKER


def program_blocks() -> list[Block]:
    return [block for block in python_blocks() if not is_pytest_example(block)]


def pytest_blocks() -> list[Block]:
    return [block for block in python_blocks() if is_pytest_example(block)]


# --- docstring examples of the API reference's names -----------------------------------------------------


def public_objects() -> Iterator[tuple[str, object]]:
    """Every public name the API reference documents, and their members."""
    for module in (trissh, trissh.sftp, trissh.testing):
        for name in module.__all__:
            value = getattr(module, name)
            yield f"{module.__name__}.{name}", value
            if inspect.isclass(value):
                for member_name, member in vars(value).items():
                    if not member_name.startswith("_"):
                        yield f"{module.__name__}.{name}.{member_name}", member


_CODE_DIRECTIVE = re.compile(r"\s*\.\. (code-block|code|sourcecode)::")


def literal_blocks(doc: str) -> Iterator[str]:
    """A docstring's reST literal blocks: after a line ending in ``::``, or a ``code-block`` directive."""
    lines = inspect.cleandoc(doc).splitlines()
    for index, line in enumerate(lines):
        if not (line.rstrip().endswith("::") or _CODE_DIRECTIVE.match(line)):
            continue
        body: list[str] = []
        for following in lines[index + 1 :]:
            if following.strip() and not following.startswith((" ", "\t")):
                break
            body.append(following)
        text = inspect.cleandoc("\n".join(body))
        if text:
            yield text


def docstring_programs() -> list[Any]:
    found: dict[str, str] = {}  # program -> where it was first seen (a docstring may be inherited)
    for name, value in public_objects():
        doc = getattr(value, "__doc__", None)
        if not isinstance(doc, str):
            continue
        for number, text in enumerate(literal_blocks(doc)):
            if "trio.run(" in text:
                found.setdefault(text, f"{name} docstring, block {number + 1}")
    return [pytest.param(text, id=name) for text, name in found.items()] or [
        pytest.param("", id="none", marks=pytest.mark.skip("no docstring example is a whole program"))
    ]


# --- the environment: a server, a home whose ~/.ssh/config leads example.com to it, files ---------------


@pytest.fixture(scope="module")
def remote_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remote")


@pytest.fixture(scope="module")
def docs_sshd(remote_root: Path) -> Iterator[SSHServer]:
    """The examples' server: SFTP starts in ``remote_root`` instead of the login user's home."""
    with start_sshd(extra_config=[f"Subsystem sftp internal-sftp -d {remote_root}"]) as server:
        yield server


def ssh_config(server: SSHServer) -> str:
    return (
        "Host example.com *.example.com\n"
        f"  HostName {server.host}\n"
        f"  Port {server.port}\n"
        f"  User {server.username}\n"
        f"  IdentityFile {server.client_key}\n"
        f"  UserKnownHostsFile {server.known_hosts}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
    )


def fill(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@dataclasses.dataclass
class Environment:
    home: Path
    cwd: Path


@pytest.fixture
def environment(
    docs_sshd: SSHServer, remote_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Environment]:
    """A temporary home (the password database's too, as trissh reads ~/.ssh/config from there, like ssh)
    with the Host block and the server's client key as ~/.ssh/id_ed25519, a fresh working directory with
    ``LOCAL_FILES``, and fresh ``REMOTE_FILES``."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "config").write_text(ssh_config(docs_sshd))
    (home / ".ssh" / "config").chmod(0o600)
    # The user's own key where ssh keeps it, for the examples that name ~/.ssh/id_ed25519.
    for suffix in ("", ".pub"):
        shutil.copy(f"{docs_sshd.client_key}{suffix}", home / ".ssh" / f"id_ed25519{suffix}")
    monkeypatch.setattr("trissh._config._config.home_of", lambda *args: str(home))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    cwd = tmp_path / "work"
    cwd.mkdir()
    fill(cwd, LOCAL_FILES)
    for child in remote_root.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    fill(remote_root, REMOTE_FILES)
    monkeypatch.chdir(cwd)
    yield Environment(home, cwd)


@contextlib.contextmanager
def trio_run_with_deadline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Make ``trio.run`` bound its program by ``EXAMPLE_TIMEOUT``; yields the list of programs run."""
    real_run = trio.run
    ran: list[object] = []

    def run(async_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def bounded() -> Any:
            with trio.fail_after(EXAMPLE_TIMEOUT):
                return await async_fn(*args)

        ran.append(async_fn)
        return real_run(bounded, **kwargs)

    monkeypatch.setattr(trio, "run", run)
    yield ran


def run_program(source: str, filename: str, first_line: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Padding puts each line of the program on its line of the markdown file, for tracebacks.
    code = compile("\n" * (first_line - 1) + source, filename, "exec")
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename}
    with trio_run_with_deadline(monkeypatch) as ran:
        exec(code, namespace)
    assert ran, f"{filename}:{first_line}: the example never calls trio.run(main), so it tested nothing"


# --- the tests -------------------------------------------------------------------------------------------


def test_the_docs_have_examples_to_run() -> None:
    """The collection itself works: a broken fence parser would make every other test vanish."""
    assert len(python_blocks()) >= 20
    assert any(block.path.name == "tutorial.md" for block in console_blocks())


@pytest.mark.parametrize("block", [pytest.param(block, id=block.where) for block in program_blocks()])
def test_python_example_runs(
    block: Block,
    environment: Environment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The block runs to completion as a whole program (``trio.run(main)``) and raises nothing."""
    assert PYTEST_MARKER not in block.text, f"{block.where}: '{PYTEST_MARKER}' must be the block's first line"
    source = block.text + "\n"
    assert "trio.run(" in source, (
        f"{block.where}: a ```python block must be a whole program ending in trio.run(main); "
        "put a fragment in a ```text block"
    )
    try:
        run_program(source, str(block.path), block.line + 1, monkeypatch)
    except BaseException as exc:
        output = capsys.readouterr()
        raise AssertionError(
            f"the example at {block.where} failed: {exc!r}\n--- its stdout:\n{output.out}"
        ) from exc


@pytest.mark.parametrize("block", [pytest.param(block, id=block.where) for block in pytest_blocks()])
def test_pytest_example_passes_as_a_users_test_file(block: Block, pytester: pytest.Pytester) -> None:
    """A ``# pytest example`` is a user's test module: run by pytest in a process of its own, with the
    plugin from the entry point and pytest-trio's mode on, as the page tells readers to set up."""
    pytester.makeini("[pytest]\ntrio_mode = true\naddopts = -p no:cacheprovider\n")
    pytester.makepyfile(test_from_the_docs=block.text)
    result = pytester.runpytest_subprocess("-q", timeout=EXAMPLE_TIMEOUT)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and set(outcomes) <= {"passed"}, (
        f"the pytest example at {block.where} did not pass:\n" + "\n".join(result.outlines[-30:])
    )


def test_pytest_examples_only_in_the_testing_section() -> None:
    """The ``# pytest example`` kind of block is for the tutorial's testing section only."""
    for block in python_blocks():
        if block.text.lstrip().startswith(PYTEST_MARKER):
            heading = _heading_before(block)
            assert "test" in heading.lower(), f"{block.where}: a pytest example outside a testing section"


def _heading_before(block: Block) -> str:
    lines = block.path.read_text().splitlines()[: block.line - 1]
    return next((line for line in reversed(lines) if line.startswith("#")), "")


def console_commands(block: Block) -> list[tuple[list[str], list[str]]]:
    """``(argv, expected stdout lines)`` for each ``$ trissh ...`` line of a console block."""
    commands: list[tuple[list[str], list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            argv = shlex.split(line[2:], comments=True)
            assert argv and argv[0] == "trissh", (
                f"{block.where}: only trissh commands may follow '$ ' in a ```console block "
                f"(use ```sh for other shell lines): {line!r}"
            )
            commands.append((argv[1:], []))
        elif commands:
            commands[-1][1].append(line.rstrip())
        else:
            raise AssertionError(f"{block.where}: a ```console block starts with a '$ trissh' line")
    while commands and commands[-1][1] and not commands[-1][1][-1]:
        commands[-1][1].pop()
    return commands


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; a line ``...`` matches any run of lines (none included)."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(output_matches(expected[1:], actual[start:]) for start in range(len(actual) + 1))
    return (
        bool(actual)
        and fnmatch.fnmatchcase(actual[0], expected[0])
        and output_matches(expected[1:], actual[1:])
    )


@contextlib.contextmanager
def stdin_from_devnull() -> Iterator[None]:
    """The command reads fd 0 directly: give it an empty one, never pytest's terminal."""
    saved = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(devnull)


@pytest.fixture
def trissh_logger_restored() -> Iterator[None]:
    """The command sets up logging on the ``trissh`` logger, as a program's ``main()`` may: undo it, so
    that the tests after this one see the logger as it was."""
    logger = logging.getLogger("trissh")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.usefixtures("trissh_logger_restored")
@pytest.mark.parametrize("block", [pytest.param(block, id=block.where) for block in console_blocks()])
def test_console_example_runs(
    block: Block, environment: Environment, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each ``$ trissh ...`` line exits 0 and, where the block shows output, prints exactly that."""
    from trissh._cli import main

    commands = console_commands(block)
    assert commands, f"{block.where}: a ```console block without a '$ trissh' line"
    for argv, expected in commands:
        capfd.readouterr()
        with stdin_from_devnull():
            status = main(argv)
        sys.stdout.flush()
        output = capfd.readouterr()
        shown = f"{block.where}: trissh {shlex.join(argv)}"
        assert status == 0, f"{shown} exited {status}; stderr:\n{output.err}"
        if expected:
            actual = [line.rstrip() for line in output.out.splitlines()]
            assert output_matches(expected, actual), (
                f"{shown} printed:\n{output.out}\nwhere the docs show:\n" + "\n".join(expected)
            )


@pytest.mark.parametrize("source", docstring_programs())
def test_docstring_program_runs(
    source: str, environment: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_program(source + "\n", "<docstring>", 1, monkeypatch)


def test_docstring_literal_blocks_are_found() -> None:
    """The extractor behind ``test_docstring_program_runs`` finds literal blocks and code-block directives
    (else a docstring program could go unrun, unnoticed)."""
    doc = """Summary.

    Example::

        async with trissh.connect("example.com") as conn:
            ...

    .. code-block:: python

        trio.run(main)

    Not code.
    """
    assert list(literal_blocks(doc)) == [
        'async with trissh.connect("example.com") as conn:\n    ...',
        "trio.run(main)",
    ]


def test_api_reference_documents_every_public_name() -> None:
    """docs/api.md has an autodoc directive for each name of ``trissh.__all__``, ``trissh.sftp.__all__``
    and ``trissh.testing.__all__`` (the last through ``automodule``), so a new public name is not missed."""
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^\.\. auto\w+:: ([\w.]+)", text, re.MULTILINE))
    # trissh re-exports some of trissh.sftp's names: one entry, under trissh.sftp, documents both.
    in_sftp = {name for name in trissh.sftp.__all__ if f"trissh.sftp.{name}" in documented}
    missing = [
        f"trissh.{name}"
        for name in trissh.__all__
        if f"trissh.{name}" not in documented and not (name in in_sftp and name != "__version__")
    ]
    missing += [f"trissh.sftp.{name}" for name in trissh.sftp.__all__ if name not in in_sftp]
    assert "trissh.testing" in documented
    assert not missing, f"docs/api.md lacks {missing}"
