//! The verifier and the decoder never panic, and no mutation of a signed token verifies.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::fixtures::now;
use crate::{Es256Signer, Expectations, Jwks, TokenOptions, decode_unverified, issue, verify};

const ISS: &str = "https://attest.example.test";

struct Fixture {
    jwks: Jwks,
    token: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let signer = match Es256Signer::generate("k1") {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let mut claims = serde_json::Map::new();
        claims.insert("x-ms-ver".into(), "1.0".into());
        let token = match issue(&claims, &signer, &TokenOptions::new(ISS, now())) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let jwks = match Jwks::from_signers(&[&signer]) {
            Ok(j) => j,
            Err(e) => panic!("{e}"),
        };
        Fixture { jwks, token }
    })
}

fn b64_part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_=+/-]{0,80}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let f = fixture();
        prop_assert!(verify(&s, &f.jwks, &Expectations::new(ISS, now())).is_err());
        let _ = decode_unverified(&s);
    }

    #[test]
    fn jws_shaped_strings_never_panic(h in b64_part(), p in b64_part(), s in b64_part(),
                                      extra in proptest::option::of(b64_part())) {
        let f = fixture();
        let mut t = format!("{h}.{p}.{s}");
        if let Some(x) = extra {
            t.push('.');
            t.push_str(&x);
        }
        prop_assert!(verify(&t, &f.jwks, &Expectations::new(ISS, now())).is_err());
        let _ = decode_unverified(&t);
    }

    #[test]
    fn json_headers_never_panic(header in "\\{[ -~]{0,60}\\}", p in b64_part()) {
        use base64::Engine;
        let f = fixture();
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header);
        let t = format!("{h}.{p}.AAAA");
        prop_assert!(verify(&t, &f.jwks, &Expectations::new(ISS, now())).is_err());
    }

    #[test]
    fn single_character_mutations_never_verify(pos in any::<prop::sample::Index>(),
                                               c in "[A-Za-z0-9_.=-]") {
        let f = fixture();
        let mut bytes = f.token.clone().into_bytes();
        let i = pos.index(bytes.len());
        let new = c.as_bytes()[0];
        prop_assume!(bytes[i] != new);
        bytes[i] = new;
        let t = String::from_utf8(bytes).unwrap_or_default();
        prop_assert!(verify(&t, &f.jwks, &Expectations::new(ISS, now())).is_err());
    }
}

#[test]
fn fixture_token_verifies() {
    let f = fixture();
    assert!(verify(&f.token, &f.jwks, &Expectations::new(ISS, now())).is_ok());
}
