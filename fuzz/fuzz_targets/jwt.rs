//! JWT/JWS parsing (enclava-token): the verifier, the unverified decoder, JWKS documents and
//! single-JWK signature checks never panic on arbitrary input, and nothing the fuzzer writes ever
//! verifies under a key it does not hold.
#![no_main]

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use enclava_token::jwt::{Alg, Jwk};
use enclava_token::{Es256Signer, Expectations, Jwks, decode_unverified, verify};
use libfuzzer_sys::fuzz_target;

const ISS: &str = "https://attest.fuzz.test";

fn jwks() -> &'static Jwks {
    static J: OnceLock<Jwks> = OnceLock::new();
    J.get_or_init(|| {
        let signer = Es256Signer::generate("k1").expect("ES256 key generation");
        Jwks::from_signers(&[&signer]).expect("JWKS from a fresh signer")
    })
}

fuzz_target!(|data: &[u8]| {
    let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    if let Ok(token) = std::str::from_utf8(data) {
        let verdict = verify(token, jwks(), &Expectations::new(ISS, now));
        assert!(verdict.is_err(), "a fuzzer-made token verified: {token:?}");
        let _ = decode_unverified(token);
    }
    // A relying party's JWKS document (`/certs`), and one key of it checking a detached
    // signature (policy uploads and release answers use Jwk::verify_signature).
    let _ = serde_json::from_slice::<Jwks>(data);
    if let Ok(jwk) = serde_json::from_slice::<Jwk>(data) {
        let _ = jwk.alg_for_key();
        for alg in [Alg::ES256, Alg::RS256] {
            let _ = jwk.verify_signature(alg, b"header.payload", data);
        }
    }
});
