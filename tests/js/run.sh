#!/usr/bin/env bash
# Run every JavaScript SDK suite (tests/js/<suite>/*.test.mjs, Node's built-in test runner) against
# real `enclava server --dev` processes the tests start themselves.
# Env: ENCLAVA_BIN (default target/debug/enclava; not built here). Fails when no test file exists.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "$repo/scripts/js-env.sh"
export ENCLAVA_BIN="${ENCLAVA_BIN:-$repo/target/debug/enclava}"
[ -x "$ENCLAVA_BIN" ] || { echo "tests/js/run.sh: $ENCLAVA_BIN not found (build it first)" >&2; exit 1; }
mapfile -t files < <(find "$repo/tests/js" -path '*/node_modules' -prune -o -name '*.test.mjs' -print | sort)
[ "${#files[@]}" -gt 0 ] || { echo "tests/js/run.sh: no *.test.mjs files found" >&2; exit 1; }
exec node --test --test-concurrency=1 "${files[@]}"
