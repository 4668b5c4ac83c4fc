#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Installs what the tests need (Rust components, cargo-fuzz, a Python virtualenv with the Azure
# SDKs, the npm packages of the JavaScript SDK suites) and fails loudly if it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup)"
export CARGO_TERM_COLOR=never
# One full build per run: incremental compilation buys nothing here and its caches take ~5 GB of
# disk next to the ~2 GB the fuzz build needs later (a full disk fails the run far from its cause).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

vectors="${ENCLAVA_VECTORS:-$(pwd)/../shared/vectors}"
if [ ! -f "$vectors/README.md" ]; then
  if [ "${CI:-}" = "true" ]; then die "hardware test vectors not found at $vectors"; fi
  echo "NOTICE: hardware test vectors not found at $vectors; vector tests will be skipped"
fi

step "example workload (wasm32-wasip1 and native)"
bash scripts/build-workload.sh

step "formatting"
cargo fmt --all -- --check

step "dependency audit (RustSec advisory database, offline snapshot)"
# Fails on any known vulnerability in Cargo.lock. Cargo.lock holds the production and the
# dev-only (test) dependencies alike and cargo-audit does not tell them apart, so a vulnerable
# test-only crate fails the audit too: update it, or ignore that one advisory below with a reason
# that says why it cannot reach production (`cargo tree -e normal -i <crate>` prints nothing).
# A vulnerability in the production tree is never ignored. Warnings (unmaintained, yanked) are
# printed for review and do not fail the run.
if ! command -v cargo-audit >/dev/null 2>&1; then
  echo "installing cargo-audit (one time) ..."
  cargo install cargo-audit --locked || die "cannot install cargo-audit (needed for the dependency audit)"
fi
advisory_db="${ENCLAVA_ADVISORY_DB:-../shared/advisory-db}"
[ -d "$advisory_db" ] || die "RustSec advisory database not found at $advisory_db"
audit_ignore=(
  # rsa (RustCrypto), Marvin timing attack, no fixed release: a dev-dependency of enclava-vault
  # only, the independent RSA implementation the tests check the vault's results against (on
  # keys the test itself made). Production RSA is aws-lc-rs; `cargo tree -e normal -i rsa` is
  # empty.
  --ignore RUSTSEC-2023-0071
)
# An ignore holds only while its crate stays out of the production tree.
for dev_only in rsa; do
  in_prod=$(cargo tree --workspace -e normal,build -i "$dev_only" 2>/dev/null || true)
  [ -z "$in_prod" ] || die "$dev_only is in the production dependency tree; its advisory may not be ignored:
$in_prod"
done
cargo audit --db "$advisory_db" --no-fetch "${audit_ignore[@]}"

step "build"
cargo build --workspace --all-targets

step "lint"
cargo clippy --workspace --all-targets -- -D warnings

step "HAProxy for the cluster failure tests"
# crates/enclava/tests/cluster_failures.rs runs replicas behind Debian's haproxy (and PostgreSQL,
# which postgres-test.sh installs); under CI=true those tests fail when it is missing.
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  [ "$(id -u)" = 0 ] || die "haproxy not found and not root: install Debian's haproxy package"
  echo "installing Debian's haproxy package ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null) \
    || die "cannot install the haproxy package"
fi

step "OpenSSL command line for the certificate interop tests"
# enclava-certs, the vault and the CLI tests check our PKCS#12 / CSR / chains with the `openssl`
# command line (OpenSSL 3); under CI=true those tests fail when it is missing.
if ! command -v openssl >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "openssl not found and not root: install Debian's openssl package"
  echo "installing Debian's openssl package ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null) \
    || die "cannot install the openssl package"
fi

step "Rust tests"
# The Python `cryptography` interop test of enclava-certs uses the SDK suite's virtualenv.
ENCLAVA_PYTHON="$(bash scripts/python-env.sh)/bin/python"
export ENCLAVA_PYTHON
# Against a throwaway PostgreSQL cluster too (the storage suite runs on both backends): the
# script installs Debian's postgresql when missing and fails loudly when it cannot. The cluster
# failure tests (crates/enclava/tests/cluster_failures.rs, about 2-3 minutes) start their own
# PostgreSQL primary/standby, replicas and HAProxy.
bash scripts/postgres-test.sh cargo test --workspace

step "deployment: Helm chart (Helm's engine, Kubernetes schemas), image definition, server with the chart's settings"
# Installs its tools (pinned, deploy/requirements.txt) into a cache virtualenv; the real server
# test runs on a throwaway PostgreSQL like the chart's replicas.
ENCLAVA_BIN="$(pwd)/target/debug/enclava" bash scripts/postgres-test.sh bash deploy/test.sh

if [ -x tests/python/run.sh ]; then
  step "Python SDK compatibility tests (real azure-keyvault SDKs against a real server)"
  bash scripts/python-env.sh
  # On a throwaway PostgreSQL: test_kbs.py runs a KBS handshake across two replicas.
  ENCLAVA_BIN="$(pwd)/target/debug/enclava" bash scripts/postgres-test.sh bash tests/python/run.sh
fi

if [ -x tests/js/run.sh ]; then
  step "JavaScript SDK compatibility tests (real @azure SDK packages against a real server)"
  ENCLAVA_BIN="$(pwd)/target/debug/enclava" bash tests/js/run.sh
fi

if [ -d fuzz/fuzz_targets ] && [ "${ENCLAVA_SKIP_FUZZ:-}" != "1" ]; then
  step "short fuzz run of every parser, seeded from the real vectors"
  bash scripts/fuzz.sh "${ENCLAVA_FUZZ_SECONDS:-10}"
fi

step "all tests passed"
