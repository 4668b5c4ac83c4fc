//! Everything the run parses from the server or the command line, fed arbitrary input: errors,
//! never panics.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_enclave::EphemeralKeys;
use enclava_enclave::client::decode_error;
use enclava_enclave::data::{Recipient, SealedInput, input_target};
use enclava_enclave::keyhsm::{jws_payload, released_key_from_jws, unwrap_key_hsm};
use enclava_enclave::run::{failed_from_release_message, key_path};
use enclava_runtime::{Access, Limits, Manifest};
use proptest::prelude::*;
use serde_json::{Value, json};

fn keys() -> &'static EphemeralKeys {
    static K: OnceLock<EphemeralKeys> = OnceLock::new();
    K.get_or_init(|| EphemeralKeys::generate().expect("keys"))
}

fn manifest() -> Manifest {
    Manifest {
        name: "w".into(),
        module_sha256: "0".repeat(64),
        args: vec![],
        env: Default::default(),
        dirs: [
            ("/input".to_string(), Access::ReadOnly),
            ("/output".to_string(), Access::ReadWrite),
        ]
        .into(),
        keys: Default::default(),
        outputs: Default::default(),
        limits: Limits {
            memory_bytes: 1 << 20,
            time_ms: 1000,
        },
    }
}

fn key_hsm_doc(kid: &str, enc: &str, ct: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(
        json!({"schema_version": "1.0", "header": {"kid": kid, "alg": "dir", "enc": enc},
               "ciphertext": URL_SAFE_NO_PAD.encode(ct)})
        .to_string(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn key_hsm_and_release_answers(s in ".{0,400}", ct in proptest::collection::vec(any::<u8>(), 0..700),
                                   enc in prop::sample::select(vec!["CKM_RSA_AES_KEY_WRAP", "RSA_AES_KEY_WRAP_256", "RSA_AES_KEY_WRAP_384", "x"])) {
        let k = keys();
        prop_assert!(unwrap_key_hsm(&s, k).is_err());
        // Well-formed JSON around arbitrary ciphertext for our own kid: still an error, no panic.
        prop_assert!(unwrap_key_hsm(&key_hsm_doc(k.wrapping_kid(), enc, &ct), k).is_err());
        let _ = jws_payload(&s);
        prop_assert!(released_key_from_jws(&s, k).is_err());
        let payload = URL_SAFE_NO_PAD.encode(json!({"response": {"key": {"key": {
            "kid": s, "kty": "oct", "key_hsm": key_hsm_doc(k.wrapping_kid(), enc, &ct)}}}}).to_string());
        let jws = format!("e30.{payload}.AA");
        prop_assert!(released_key_from_jws(&jws, k).is_err());
    }

    #[test]
    fn command_line_and_manifest_strings(s in ".{0,300}") {
        let _ = SealedInput::parse(&s);
        let _ = input_target(&manifest(), &s);
        let _ = Recipient::parse(&s);
        let _ = Recipient::parse(&format!("https://v/keys/{s}"));
        let _ = Recipient::parse(&format!("https://v/keys/a/1#spki={s}"));
        let _ = Recipient::parse(&format!("-----BEGIN PUBLIC KEY-----\n{s}\n-----END PUBLIC KEY-----"));
        if let Ok(p) = key_path(&s) {
            prop_assert!(p.starts_with("/keys/"));
            prop_assert!(!p.contains(".."));
            prop_assert!(p.matches('/').count() == 3);
        }
    }

    #[test]
    fn server_error_bodies(s in ".{0,300}", status in 0u16..1000) {
        let _ = failed_from_release_message(&s);
        let _ = failed_from_release_message(&format!("claim '{s}': expected {s}, found {s} (at {s}"));
        let bodies = [
            Value::String(s.clone()),
            json!({"error": s}),
            json!({"error": {"code": s, "message": 1, "failed": [s, {"rule": 1}, null]}}),
            json!({"error": {"innererror": {"code": s}, "failed": {"x": 1}}}),
        ];
        for b in &bodies {
            let e = decode_error(status, b);
            prop_assert!(!e.code.is_empty());
        }
    }
}
