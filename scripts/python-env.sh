#!/usr/bin/env bash
# Create or refresh the Python virtualenv (.venv at the repo root) with the pinned Azure SDKs used by
# the compatibility suite in tests/python. Idempotent: when the requirements file has not changed
# since the last successful install, it only checks that the venv's python still runs.
#
# Usage: scripts/python-env.sh            (prints the venv path on success)
# Env:   PYTHON (default python3), ENCLAVA_VENV (default <repo>/.venv)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${ENCLAVA_VENV:-$repo/.venv}"
req="$repo/tests/python/requirements.txt"
stamp="$venv/.enclava-requirements.sha256"

die() { echo "python-env: error: $*" >&2; exit 1; }

[ -f "$req" ] || die "requirements file not found: $req"
command -v "$python" >/dev/null 2>&1 || die "'$python' not found; install Python 3.9+ or set PYTHON"

want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c 'import azure.keyvault.keys, azure.keyvault.secrets, azure.keyvault.certificates, azure.security.attestation, azure.identity, cryptography, jwt, pytest' 2>/dev/null; then
    echo "$venv"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "python-env: creating virtualenv at $venv" >&2
    "$python" -m venv "$venv" || die "could not create virtualenv at $venv (is the venv module installed?)"
fi

echo "python-env: installing pinned packages from $req" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 \
    || die "pip install -r $req failed (see above)"
"$venv/bin/python" -c 'import azure.keyvault.keys, azure.keyvault.secrets, azure.keyvault.certificates, azure.security.attestation, azure.identity, cryptography, jwt, pytest' \
    || die "packages installed but cannot be imported"

echo "$want" > "$stamp"
echo "$venv"
