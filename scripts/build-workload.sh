#!/usr/bin/env bash
# Build the example workload (examples/fraud-workload) twice from the same source:
#   examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm  (WASI preview 1 module)
#   examples/fraud-workload/target/release/fraud-workload                     (native binary)
# The wasm module is what `enclava quickstart` (its default --workload) and the tests run; the
# native binary is the baseline of `enclava bench workload` and of the runtime's end-to-end test,
# and the dataset generator of the bench. `--wasm-only` skips the native build (the quickstart
# needs only the module). Prints the path of each file built. Fails loudly.
#
# Last it writes examples/fraud-workload/target/enclava-workload.stamp: the digest of the workload
# source both were built from and the SHA-256 of each build. `enclava bench workload` refuses to
# compare builds the stamp does not vouch for (a baseline from an older source, a module rebuilt
# alone, a source edited since), so a stale baseline is never measured against a fresh module.
# Source digest: `sha256sum` of every regular file under the example except target/, sorted by
# path, then `sha256sum` of that listing (crates/enclava-runtime/src/stamp.rs computes the same).
set -euo pipefail

native_too=1
digest_only=0
case "${1:-}" in
    "") ;;
    --wasm-only) native_too=0 ;;
    # Prints the source digest the stamp would record, builds nothing (used by the tests).
    --source-digest) digest_only=1 ;;
    *)
        echo "usage: build-workload.sh [--wasm-only | --source-digest]" >&2
        exit 2
        ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/examples/fraud-workload"
wasm="$dir/target/wasm32-wasip1/release/fraud-workload.wasm"
native="$dir/target/release/fraud-workload"
stamp="$dir/target/enclava-workload.stamp"

source_digest() {
    (cd "$dir" && find . -path ./target -prune -o -type f -print0 | LC_ALL=C sort -z \
        | sed -z 's|^\./||' | xargs -0 sha256sum -- | sha256sum | cut -d' ' -f1)
}

if [[ "$digest_only" == 1 ]]; then
    source_digest
    exit 0
fi

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

# An old stamp must not outlive a failed or partial build.
rm -f "$stamp"
source_before="$(source_digest)"

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

# The source must not have changed while it was being built, or the stamp would vouch for builds
# of two different revisions.
if [[ "$(source_digest)" != "$source_before" ]]; then
    echo "build-workload: FAILED: $dir changed during the build; run the script again" >&2
    exit 1
fi
{
    echo "# written by scripts/build-workload.sh; checked by enclava bench workload"
    echo "source-sha256 $source_before"
    echo "wasm-sha256 $(sha256sum "$wasm" | cut -d' ' -f1)"
    if [[ "$native_too" == 1 ]]; then
        echo "native-sha256 $(sha256sum "$native" | cut -d' ' -f1)"
    fi
    echo "rustc $(rustc -V)"
} >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "$stamp"
