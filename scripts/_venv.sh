# Sourced by the scripts: makes sure .venv exists with the project and its dev tools installed,
# and puts it first on PATH. Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
stamp="$root/.venv/.installed-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -x "$root/.venv/bin/python" ] || [ ! -f "$stamp" ]; then
    # Two scripts started together (scripts/serve and scripts/test) would otherwise both create and
    # install into one .venv at once and break it. The lock lives beside .venv, which may not exist
    # yet; it is held only while setting up, and whoever waited for it finds the work done.
    exec {venv_lock}>"$root/.venv.lock"
    flock "$venv_lock"
    if [ ! -x "$root/.venv/bin/python" ]; then
        "$python" -m venv "$root/.venv"
    fi
    if [ ! -f "$stamp" ]; then
        # Some machines list extra local package indexes that may be absent; their warnings are noise.
        "$root/.venv/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
        "$root/.venv/bin/python" -m pip install -q -e "$root[dev]" 2>&1 | grep -v "^WARNING: Location" || true
        "$root/.venv/bin/python" -c "import jobwarden, grpc, sqlalchemy, pytest"
        rm -f "$root"/.venv/.installed-*
        touch "$stamp"
    fi
    exec {venv_lock}>&-
    unset venv_lock
fi
export PATH="$root/.venv/bin:$PATH"
cd "$root"
