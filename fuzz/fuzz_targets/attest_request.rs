//! Attestation request bodies (enclava-attestation/src/request.rs): the four MAA shapes and the
//! native one, decoded from arbitrary bytes, never panic.
#![no_main]

use enclava_attestation::AttestRequest;
use enclava_attestation::request::{MaaType, open_enclave_quote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        n @ 0..=3 => {
            let t = MaaType::ALL[usize::from(n)];
            if let Ok(req) = AttestRequest::from_maa_json(t, body) {
                let _ = req.tee();
            }
        }
        4 => {
            if let Ok(req) = AttestRequest::from_native_json(body) {
                let _ = req.tee();
            }
        }
        _ => {
            let _ = open_enclave_quote(body);
        }
    }
});
