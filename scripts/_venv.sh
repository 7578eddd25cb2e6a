# Sourced by scripts/*: create or refresh the project venv, idempotently.
# Callers set their own shell options (set -euo pipefail); none are changed here.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FIELDVAULT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
# Reinstall only when pyproject.toml changed since the last install.
STAMP="$VENV/.fieldvault-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || [ "${1:-}" = "--force" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# Bytecode for our own packages, written now: with PYTHONDONTWRITEBYTECODE set (as in
# this machine's environment) Python never caches it, and every CLI call, server and
# agent process would compile ~90-200 modules again (`fieldvault-server rep list`:
# 1.1 s, 0.7 s with it). compileall skips what is up to date: a second run costs a
# stat per file.
"$VENV/bin/python" -m compileall -q -j 0 "$ROOT/agent" "$ROOT/server" "$ROOT/schema" \
    "$ROOT/scripts" "$ROOT/tests"
