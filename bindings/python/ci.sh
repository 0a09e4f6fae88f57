#!/usr/bin/env bash
# CI for the Python bindings: builds the extension into a fresh virtualenv and runs the
# Python tests (the API mirror, the LangGraph conformance suite, the store contract and a
# real graph). Works on a fresh machine with only the package registries reachable.
#
#   bindings/python/ci.sh            # venv in target/python-ci (reused if present)
#   STRATADB_PY_VENV=/tmp/v ci.sh    # elsewhere
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
ROOT=$(cd ../.. && pwd)
VENV=${STRATADB_PY_VENV:-$ROOT/target/python-ci}
PY=${PYTHON:-python3}

step() { printf '\n--- %s (%s)\n' "$1" "$(date +%T)"; }

step "virtualenv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian/Ubuntu ship venv separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv
            rm -rf "$VENV"
            "$PY" -m venv "$VENV"
        else
            echo "python3 -m venv failed: install python3-venv" >&2
            exit 1
        fi
    fi
fi
"$VENV/bin/python" --version

step "pip install"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r "$HERE/requirements-dev.txt"

step "cargo fmt / clippy (bindings crate)"
cargo fmt --all -- --check
PYO3_PYTHON="$VENV/bin/python" cargo clippy --all-targets --quiet -- -D warnings

if command -v cargo-deny >/dev/null 2>&1; then
    step "cargo deny (bindings crate)"
    cargo deny check licenses bans sources
fi

step "build the extension (maturin develop --release)"
# The bindings crate has its own workspace and target dir, out of the root workspace.
VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release --quiet 2>&1 | tail -5
"$VENV/bin/python" -c "import stratadb; print('stratadb', stratadb.__version__)"

step "pytest"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$rc"
