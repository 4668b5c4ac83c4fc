#!/usr/bin/env bash
# The main job: build the example workload (wasm32-wasip1) and run the end-to-end quickstart on
# embedded defaults (embedded storage, development unseal, simulated TEE).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
bash scripts/build-workload.sh --wasm-only
# The `quickstart` profile (root Cargo.toml): no optimisation, no LTO, so the first result comes
# about 3 minutes after a fresh clone instead of 8; `cargo build --release` builds the fast binary.
cargo build --profile quickstart -p enclava
exec "${CARGO_TARGET_DIR:-target}/quickstart/enclava" quickstart "$@"
