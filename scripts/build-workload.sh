#!/usr/bin/env bash
# Build the example workload (examples/fraud-workload) twice from the same source:
#   examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm  (WASI preview 1 module)
#   examples/fraud-workload/target/release/fraud-workload                     (native binary)
# The wasm module is what `enclava quickstart` (its default --workload) and the tests run; the
# native binary is the baseline of `enclava bench workload` and of the runtime's end-to-end test,
# and the dataset generator of the bench. `--wasm-only` skips the native build (the quickstart
# needs only the module). Prints the path of each file built. Fails loudly.
set -euo pipefail

native_too=1
case "${1:-}" in
    "") ;;
    --wasm-only) native_too=0 ;;
    *)
        echo "usage: build-workload.sh [--wasm-only]" >&2
        exit 2
        ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/examples/fraud-workload"
wasm="$dir/target/wasm32-wasip1/release/fraud-workload.wasm"
native="$dir/target/release/fraud-workload"

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

# Build from inside the example directory: its .cargo/config.toml enables wasm simd128 (for the
# wasm target only; the native build uses the host's default target features). The target
# directory is pinned: the paths above are where the bench, the quickstart and the tests look,
# whatever CARGO_TARGET_DIR the caller has set.
(cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release --locked --target wasm32-wasip1) || {
    echo "build-workload: FAILED to build $dir for wasm32-wasip1" >&2
    exit 1
}
if [[ ! -s "$wasm" ]]; then
    echo "build-workload: FAILED: $wasm was not produced" >&2
    exit 1
fi
echo "$wasm"

if [[ "$native_too" == 1 ]]; then
    (cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release --locked) || {
        echo "build-workload: FAILED to build $dir natively (the baseline of enclava bench workload)" >&2
        exit 1
    }
    if [[ ! -x "$native" ]]; then
        echo "build-workload: FAILED: $native was not produced" >&2
        exit 1
    fi
    echo "$native"
fi
