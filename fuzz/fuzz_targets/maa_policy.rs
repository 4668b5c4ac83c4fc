//! The MAA policy language (enclava-policy/src/maa.rs): parsing arbitrary text never panics or
//! hangs, and a policy that parses evaluates (allow or an explained deny) without panicking.
#![no_main]

use enclava_policy::MaaPolicy;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = MaaPolicy::parse(text) else {
        return;
    };
    let claims = json!({
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-is-debuggable": false,
        "x-ms-sevsnpvm-guestsvn": 7,
        "x-ms-sevsnpvm-launchmeasurement": "00ff",
        "x-ms-compliance-status": "azure-compliant-cvm",
        "nested": {"a": [1, 2, {"b": "c"}]},
    });
    if let Some(map) = claims.as_object() {
        let decision = policy.evaluate_map(map);
        let _ = decision.explain();
    }
    let _ = policy.configuration();
});
