//! The Azure key-release policy grammar (enclava-policy/src/release.rs): parsing arbitrary JSON
//! never panics, and a parsed policy evaluates against a token's claims without panicking.
#![no_main]

use enclava_policy::ReleasePolicy;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    // The JSON grammar only: `from_content` with a Rego content type compiles Rego, which the
    // policy_upload target covers.
    let Ok(policy) = ReleasePolicy::from_content(Some("application/json"), data) else {
        return;
    };
    let claims = json!({
        "iss": "https://attest.fuzz.test",
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-is-debuggable": false,
        "x-ms-isolation-tee": {"x-ms-attestation-type": "sevsnpvm", "x-ms-compliance-status": "azure-compliant-cvm"},
        "sevsnpvm": {"guestsvn": 7, "launchmeasurement": "00ff"},
        "list": [1, "two", {"three": 3}],
    });
    let decision = policy.evaluate("https://attest.fuzz.test", &claims);
    let _ = decision.explain();
    let _ = policy.evaluate("https://other.fuzz.test/", &claims);
});
