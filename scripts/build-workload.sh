#!/usr/bin/env bash
# Build the example workload (examples/fraud-workload) as a WASI preview 1 module:
#   examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm
# Used by `enclava quickstart` (its default --workload) and the tests. Fails loudly.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/examples/fraud-workload"
wasm="$dir/target/wasm32-wasip1/release/fraud-workload.wasm"

if ! command -v cargo >/dev/null 2>&1; then
    echo "build-workload: cargo not found on PATH" >&2
    exit 1
fi

# The wasm32-wasip1 standard library.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx 'wasm32-wasip1'; then
        echo "build-workload: installing the wasm32-wasip1 target (rustup target add wasm32-wasip1)" >&2
        rustup target add wasm32-wasip1 || {
            echo "build-workload: FAILED to install the wasm32-wasip1 target; install it with: rustup target add wasm32-wasip1" >&2
            exit 1
        }
    fi
else
    echo "build-workload: rustup not found; assuming the wasm32-wasip1 standard library is installed" >&2
fi

# Build from inside the example directory: its .cargo/config.toml enables wasm simd128.
(cd "$dir" && cargo build --release --locked --target wasm32-wasip1) || {
    echo "build-workload: FAILED to build $dir for wasm32-wasip1" >&2
    exit 1
}

if [[ ! -s "$wasm" ]]; then
    echo "build-workload: FAILED: $wasm was not produced" >&2
    exit 1
fi
echo "$wasm"
