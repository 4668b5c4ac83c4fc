#!/usr/bin/env bash
# Install the pinned npm packages of every JavaScript SDK suite under tests/js/<suite>/ (each has
# its own package.json and package-lock.json) with `npm ci`. Idempotent: a suite whose lock file has
# not changed since its last successful install is skipped. Fails loudly when Node.js or npm is
# missing or an install fails.
#
# Usage: scripts/js-env.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "js-env: error: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found: install Node.js 20 or newer (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm (Debian: apt-get install npm)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || die "Node.js $major found, 20 or newer needed"

for dir in "$repo"/tests/js/*/; do
  [ -f "$dir/package.json" ] || continue
  [ -f "$dir/package-lock.json" ] || die "$dir has no package-lock.json (run npm install there once and commit it)"
  stamp="$dir/node_modules/.enclava-lock.sha256"
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then continue; fi
  echo "js-env: npm ci in ${dir#"$repo"/}" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed in $dir"
  echo "$want" > "$stamp"
done
