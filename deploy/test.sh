#!/usr/bin/env bash
# Check deploy/: render the Helm chart with Helm's own engine, lint it, validate every rendered
# object against the Kubernetes JSON schemas, check the Containerfile against the docs and the
# binary's flags, and run the real server with the settings the chart renders.
#
#   bash deploy/test.sh [pytest args...]
#
# Env: ENCLAVA_BIN (the enclava binary; default $CARGO_TARGET_DIR/debug/enclava or
# target/debug/enclava), ENCLAVA_DEPLOY_VENV (default ${XDG_CACHE_HOME:-~/.cache}/enclava/deploy-venv),
# ENCLAVA_TEST_POSTGRES_URL (optional: run the server on that database, as the chart does; from
# scripts/postgres-test.sh). Under CI=true a missing tool or binary is an error, never a skip.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

die() { printf 'deploy/test.sh: error: %s\n' "$*" >&2; exit 1; }

python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "'$python' not found: install Python 3.11+ (the chart tools are Python packages)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$python is older than 3.11 (the tests read TOML with tomllib)"
venv="${ENCLAVA_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/enclava/deploy-venv}"
req="$repo/deploy/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if ! { [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  echo "deploy/test.sh: installing the chart tools into $venv" >&2
  # Replace only a virtualenv (never whatever else ENCLAVA_DEPLOY_VENV might point at).
  if [ -e "$venv" ]; then
    [ -f "$venv/pyvenv.cfg" ] || die "$venv exists and is not a virtualenv: set ENCLAVA_DEPLOY_VENV to a new path"
    rm -rf "$venv"
  fi
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" || die "cannot create a virtualenv at $venv (is python3-venv installed?)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 \
    || die "pip install -r $req failed (see above)"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import helm_python, kubernetes_validate, yaml, pytest' \
  || die "the chart tools are installed in $venv but cannot be imported"

if [ -z "${ENCLAVA_BIN:-}" ]; then
  ENCLAVA_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/enclava"
fi
export ENCLAVA_BIN
if [ ! -x "$ENCLAVA_BIN" ]; then
  [ "${CI:-}" = "true" ] && die "enclava binary not found at $ENCLAVA_BIN (build it first: cargo build -p enclava)"
  echo "NOTICE: enclava binary not found at $ENCLAVA_BIN; the tests that run it will be skipped" >&2
fi

exec "$venv/bin/python" -m pytest -p no:cacheprovider -q "$repo/deploy/tests" "$@"
