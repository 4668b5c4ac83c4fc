#!/usr/bin/env bash
# Run the Azure SDK compatibility suite against a dev `enclava server`.
# Exits non-zero on any failure, including "no tests collected" (pytest exit code 5).
# Env: ENCLAVA_BIN (default target/debug/enclava; not built here), extra args are passed to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$(bash "$repo/scripts/python-env.sh")"
cd "$repo"
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$repo/tests/python" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "tests/python/run.sh: pytest collected no tests; treating as failure" >&2
    exit 1
fi
exit "$rc"
