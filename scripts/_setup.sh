# Shared set-up for scripts/test and scripts/bench; source it, do not run it.
# The sourcing script sets SCRIPT_NAME (the prefix of its messages) and changes to the repository root first.
# Environment: PYTHON=/path/to/python3.x picks the interpreter for a new .venv (3.11 or newer).

die() { echo "$SCRIPT_NAME: $*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

apt_install() {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- Python: .venv on 3.11+ --------------------------------------------------------------------------------
version_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

pick_python() {
    if [[ -n ${PYTHON:-} ]]; then
        version_ok "$PYTHON" || die "PYTHON=$PYTHON is not Python 3.11 or newer"
        echo "$PYTHON"
        return
    fi
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null && version_ok "$candidate"; then
            command -v "$candidate"
            return
        fi
    done
    die "Python 3.11 or newer is needed (found: $(python3 --version 2>&1 || echo none)); as root on Debian:" \
        "apt-get install -y python3 python3-venv, or set PYTHON=/path/to/python3.11"
}

# Create .venv (Python 3.11+) unless it exists; refuse a broken or too old one.
ensure_venv() {
    if [[ -e .venv ]]; then
        version_ok .venv/bin/python || die ".venv is broken or older than Python 3.11; remove it and run again"
        return
    fi
    local python pyver
    python=$(pick_python)
    if ! "$python" -c 'import ensurepip' 2>/dev/null; then
        # Debian splits venv support out of the interpreter package.
        is_root || die "$python cannot create virtualenvs; as root run: apt-get install -y python3-venv"
        pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python$pyver-venv" || apt_install python3-venv
    fi
    echo "$SCRIPT_NAME: creating .venv with $("$python" --version)"
    "$python" -m venv .venv
}

# Install trissh (editable) with the extra $1 into .venv.
# Reinstall only when pyproject.toml changed: pip needs PyPI (build backend), and the editable install
# picks up source changes by itself.
install_extra() {
    local stamp=.venv/.trissh-$1-installed
    if [[ ! $stamp -nt pyproject.toml ]]; then
        .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$1]"
        touch "$stamp"
    fi
}
