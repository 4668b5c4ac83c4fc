//! KBS (RCAR 0.4.0) request parsers (enclava-kbs): `/auth` and `/attest` bodies, resource paths,
//! tee-pubkey JWKs, init-data TOML and sample evidence, from arbitrary bytes, never panic; a
//! parsed attest request's binding digest and JWE encryption to its key never panic either.
#![no_main]

use enclava_kbs::HashAlg;
use enclava_kbs::wire::{AttestRequest, AuthRequest, ResourcePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            let _ = AuthRequest::parse(body);
        }
        1 => {
            if let Ok(req) = AttestRequest::parse(body) {
                let _ = req.binding_digest(HashAlg::Sha384);
                let _ = enclava_kbs::jwe::encrypt(&req.tee_pubkey, b"x");
            }
        }
        2 => {
            if let Ok(s) = std::str::from_utf8(body) {
                let _ = ResourcePath::parse(s);
                let _ = enclava_kbs::initdata::digest(s);
            }
        }
        3 => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                let _ = enclava_kbs::jwk::TeePubKey::from_jwk(&v);
                let _ = enclava_kbs::jcs::canonicalize(&v);
            }
        }
        _ => {
            let _ = enclava_evidence::sample::verify(body);
        }
    }
});
