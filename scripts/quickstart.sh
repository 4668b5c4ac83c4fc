#!/usr/bin/env bash
# The main job: build the example workload (wasm32-wasip1) and run the end-to-end quickstart on
# embedded defaults (embedded storage, development unseal, simulated TEE).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
bash scripts/build-workload.sh --wasm-only
# The `quickstart` profile (root Cargo.toml): no LTO, more codegen units, opt-level 2, so the first
# run comes minutes sooner; `cargo build --release` still builds the fastest binary.
cargo build --profile quickstart -p enclava
exec "${CARGO_TARGET_DIR:-target}/quickstart/enclava" quickstart "$@"
