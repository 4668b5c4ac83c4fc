#!/usr/bin/env bash
# A short coverage-guided fuzz run of every parser, seeded from the real hardware vectors.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# cargo-fuzz needs nightly features; on this stable toolchain RUSTC_BOOTSTRAP=1 enables them. We
# fuzz without a sanitizer (-s none): the code has no `unsafe`, so what we hunt is panics and hangs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
vectors="${ENCLAVA_VECTORS:-$(pwd)/../shared/vectors}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz (one time) ..."
  cargo install cargo-fuzz --locked >/dev/null || { echo "error: cannot install cargo-fuzz" >&2; exit 1; }
fi

# Seeds: target -> vector globs (relative to the vectors folder). Copied into the ignored corpus
# folder, never into the repository. Targets whose inputs are not hardware evidence (policies,
# tokens, request bodies, backup blobs) are seeded from small hand-written files in fuzz/seeds/<target>.
declare -A seeds=(
  [snp_report]="sev-snp/*/*.bin sev-snp/*/*.hex"
  [dcap_quote]="tdx/*/*quote* sgx/*/*quote* tdx/google-go-tdx-guest/*.dat"
  [dcap_collateral]="tdx/*/*collateral*.json sgx/*/*collateral*.json tdx/*/tcbInfo.json tdx/*/enclaveIdentity.json tdx/google-go-tdx-guest/sample_* tdx/google-go-tdx-guest/*crl*"
  [azure_hcl]="azure-cvm/*/hcl-report*.bin"
  [azure_evidence]="azure-cvm/*/evidence-v*.json azure-cvm/*/tpm-quote-v1.json"
  [tpm_quote]="azure-cvm/*/quote.bin azure-cvm/*/tpm-quote.msg"
  [pem]="sev-snp/*/*.pem sev-snp/*/*.testcer sev-snp/virtee-sev/cert_chain_* tdx/google-go-tdx-guest/*.pem sev-snp/*/*.der tdx/google-go-tdx-guest/rootcrl.der"
  [ccel]="tdx/google-go-tdx-guest/ccel_data.dat tdx/google-go-tdx-guest/ccel_table.dat"
  [nvidia_spdm]="nvidia-gpu/*/*ttestationReport*.txt nvidia-gpu/trustee/hopper_coco_report1.txt nvidia-gpu/*/*evidence*.json nvidia-gpu/attestation-sdk/serialized_test_evidence/*.json"
  [nvidia_rim]="nvidia-gpu/nvtrust/*.swidtag nvidia-gpu/attestation-sdk/testdata/*.xml nvidia-gpu/attestation-sdk/testdata/sample_rims/*.xml"
  [sim_evidence]=""
  [envelope_decrypt]=""
  [jwt]=""
  [maa_policy]=""
  [release_policy]=""
  [policy_upload]=""
  [attest_request]=""
  [kbs_request]=""
  [kv_request]=""
  [backup_restore]=""
  [cert_import]=""
)

export RUSTC_BOOTSTRAP=1
targets=$(cd fuzz/fuzz_targets && ls -- *.rs | sed 's/\.rs$//')
cd fuzz
buildlog="$(mktemp)"
if ! cargo fuzz build -s none >"$buildlog" 2>&1; then
  # Say why: the compiler's or a build script's own words, and the disk space (the fuzz build is a
  # second optimized build of the whole dependency tree).
  tail -n 60 "$buildlog"
  df -h . >&2 || true
  echo "error: building the fuzz targets failed (see above)" >&2
  exit 1
fi
tail -n 3 "$buildlog"
rm -f "$buildlog"
failed=()
for t in $targets; do
  corpus="corpus/$t"
  mkdir -p "$corpus"
  if [ -d "seeds/$t" ]; then cp -f "seeds/$t"/* "$corpus"/; fi
  if [ -d "$vectors" ]; then
    for g in ${seeds[$t]:-}; do
      for f in "$vectors"/$g; do [ -f "$f" ] && cp -f "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"; done
    done
  fi
  echo "fuzzing $t for ${seconds}s ($(ls "$corpus" | wc -l) seeds)"
  # One input running over 10 s is a finding too (a hang is a denial of service), not a wait.
  log="$(mktemp)"
  if cargo fuzz run -s none "$t" "$corpus" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=1100000 >"$log" 2>&1; then
    tail -n 2 "$log"
  else
    # A finding: show what libFuzzer and the panic said (the first lines of the report carry the
    # panic message and the artifact path), then go on so one run names every failing target.
    echo "FINDING in $t:"
    grep -n -E "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|overflowed its stack|memory allocation|Base64:" "$log" | head -n 20
    sed -n '/panicked at/,+25p' "$log" | head -n 40
    failed+=("$t")
  fi
  rm -f "$log"
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "error: fuzzing found failures in: ${failed[*]} (artifacts under fuzz/artifacts/<target>/)" >&2
  for t in "${failed[@]}"; do ls artifacts/"$t" 2>/dev/null | sed "s|^|  fuzz/artifacts/$t/|" >&2 || true; done
  exit 1
fi
