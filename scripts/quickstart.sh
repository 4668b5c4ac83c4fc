#!/usr/bin/env bash
# The main job: build the example workload (wasm32-wasip1) and run the end-to-end quickstart on
# embedded defaults (embedded storage, development unseal, simulated TEE).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo not found: install the Rust toolchain (rustup)" >&2; exit 1; }
bash scripts/build-workload.sh --wasm-only
cargo build --release -p enclava
exec ./target/release/enclava quickstart "$@"
