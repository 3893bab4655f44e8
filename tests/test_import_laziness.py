"""``import trissh`` stays cheap: what a typical connection never needs is imported when it is first used.

Each check runs in a fresh interpreter (``python -c``): this test process has long since imported everything.
Nothing here measures time (a loaded machine would make such a test flaky); it checks *what* is imported,
which is what decides the time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Modules `import trissh` must not load, and why each is left for later.
LAZY_AT_IMPORT = (
    "trissh.sftp",  # until open_sftp() or trissh.SFTPClient
    "trissh._algorithms.kex.dh",  # finite-field and group-exchange DH: until negotiated
    "trissh._algorithms.kex.groups",  # their MODP primes
    "trissh._algorithms.kex.hybrid",  # ML-KEM: until negotiated
    "trissh._algorithms.kex.ecdh",  # curve25519 / NIST ECDH: until the first key exchange
    "trissh._algorithms.zlib_streams",  # compression: until a connection compresses
    "trissh._algorithms.certificates",  # the certificate parser: until a certificate appears
    "trissh._auth.agent",  # the ssh-agent client: until an agent is used
    "bcrypt",  # key-file decryption: until a key file is read
    "cryptography.hazmat.primitives.serialization",  # cryptography's key-file parsers (they import bcrypt)
    "cryptography.hazmat.primitives.asymmetric.dh",
    "cryptography.hazmat.primitives.asymmetric.mlkem",
    "trissh._forwarding.local",  # port forwarding: until a forward is asked for
    "trissh._forwarding.remote",
    "trissh._forwarding.socks",
)

# Modules choosing algorithms (the work of connect() before the first packet) must not load either.
LAZY_AFTER_PREFERENCES = (
    "trissh.sftp",
    "trissh._algorithms.kex.dh",
    "trissh._algorithms.kex.groups",
    "trissh._algorithms.kex.hybrid",
    "trissh._algorithms.zlib_streams",
    "trissh._algorithms.certificates",
    "trissh._auth.agent",
    "bcrypt",
)


def run_python(code: str) -> object:
    """Run ``code`` in a fresh interpreter; return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def loaded_after(setup: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` are in ``sys.modules`` after running ``setup`` in a fresh interpreter."""
    code = f"import json, sys\n{setup}\nprint(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    result = run_python(code)
    assert isinstance(result, list)
    return result


def test_import_trissh_loads_none_of_the_lazy_modules() -> None:
    assert loaded_after("import trissh", LAZY_AT_IMPORT) == []


def test_a_connection_without_forwards_loads_no_forwarding_module() -> None:
    """connect() imports the connection and its channel layer; the forwarding modules wait for a forward."""
    setup = "import trissh._connect, trissh.connection"
    assert loaded_after(setup, ("trissh._forwarding.local", "trissh._forwarding.remote")) == []


def test_choosing_algorithms_loads_no_method_module() -> None:
    setup = """
import trissh
from trissh._algorithms.kex import KEX_METHODS, DEFAULT_KEX_ALGORITHMS
from trissh._options import algorithm_preferences
algorithm_preferences()
algorithm_preferences(kex_algs=["diffie-hellman-group14-sha256"], compression=True)
assert "diffie-hellman-group-exchange-sha256" in KEX_METHODS and len(KEX_METHODS) == len(list(KEX_METHODS))
assert DEFAULT_KEX_ALGORITHMS
"""
    assert loaded_after(setup, LAZY_AFTER_PREFERENCES) == []


@pytest.mark.parametrize(
    ("use", "module"),
    [
        (
            "from trissh._algorithms.kex import KEX_METHODS; KEX_METHODS['diffie-hellman-group14-sha256']",
            "trissh._algorithms.kex.dh",
        ),
        ("from trissh._algorithms.kex import GroupExchangeKex", "trissh._algorithms.kex.dh"),
        (
            "from trissh._algorithms.kex import KEX_METHODS; KEX_METHODS['curve25519-sha256']",
            "trissh._algorithms.kex.ecdh",
        ),
        (
            "from trissh._algorithms.compression import compressor_for; compressor_for('zlib', False)",
            "trissh._algorithms.zlib_streams",
        ),
        ("import trissh; trissh.Certificate", "trissh._algorithms.certificates"),
        ("import trissh; trissh.SSHAgentClient", "trissh._auth.agent"),
        ("import trissh; trissh.SFTPClient", "trissh.sftp"),
        ("import trissh; trissh.LocalForward", "trissh._forwarding.local"),
    ],
)
def test_a_lazy_module_loads_when_first_used(use: str, module: str) -> None:
    assert loaded_after(use, (module,)) == [module]


def test_no_compression_loads_no_zlib_stream() -> None:
    setup = """
from trissh._algorithms.compression import compressor_for, decompressor_for
assert compressor_for('none', True) is None and decompressor_for('zlib@openssh.com', False) is None
"""
    assert loaded_after(setup, ("trissh._algorithms.zlib_streams",)) == []


def test_every_public_name_resolves() -> None:
    code = """
import json, sys, trissh
names = list(trissh.__all__)
resolved = {name: getattr(trissh, name, None) is not None for name in names}
namespace = {}
exec("from trissh import *", namespace)
print(json.dumps({
    "unresolved": [name for name, ok in resolved.items() if not ok],
    "missing_from_star": [name for name in names if name not in namespace],
    "missing_from_dir": sorted(set(names) - set(dir(trissh))),
    "duplicates": sorted({name for name in names if names.count(name) > 1}),
    "lazy_is_same": trissh.Certificate is sys.modules["trissh._algorithms.certificates"].Certificate,
}))
"""
    assert run_python(code) == {
        "unresolved": [],
        "missing_from_star": [],
        "missing_from_dir": [],
        "duplicates": [],
        "lazy_is_same": True,
    }


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    code = """
import json, trissh
try:
    trissh.NoSuchName
except AttributeError as exc:
    print(json.dumps(str(exc)))
"""
    assert run_python(code) == "module 'trissh' has no attribute 'NoSuchName'"


def test_the_command_reads_its_command_line_before_loading_the_network_stack() -> None:
    """``trissh --help`` and a usage error answer without importing trio, cryptography or connect()."""
    code = """
import contextlib, io, json, sys
import trissh._cli as cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    statuses = [cli.main(["--help"]), cli.main(["-p", "banana", "host"]), cli.main(["cp", "only-one"])]
heavy = ("trio", "cryptography", "trissh._connect", "trissh.connection")
print(json.dumps([statuses, [m for m in heavy if m in sys.modules]]))
"""
    assert run_python(code) == [[0, 255, 255], []]
