//! Property tests: request decoders and operations never panic and never report internal errors
//! for bad input.

use std::sync::OnceLock;

use enclava_vault::*;
use proptest::prelude::*;

use crate::common::*;

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "[a-zA-Z0-9_=+/-]{0,40}".prop_map(serde_json::Value::from),
        prop_oneof![
            Just("RSA"),
            Just("EC"),
            Just("oct"),
            Just("A256GCM"),
            Just("RSA-OAEP"),
            Just("P-256"),
            Just("PS256")
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let keys = prop_oneof![
            Just("kty".to_string()),
            Just("key_size".to_string()),
            Just("alg".to_string()),
            Just("value".to_string()),
            Just("iv".to_string()),
            Just("tag".to_string()),
            Just("key".to_string()),
            Just("attributes".to_string()),
            Just("tags".to_string()),
            Just("release_policy".to_string()),
            Just("lifetimeActions".to_string()),
            Just("n".to_string()),
            Just("d".to_string()),
            Just("enabled".to_string()),
            Just("exp".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn decode_all(bytes: &[u8]) {
    let _ = decode::<KeyCreateParameters>(bytes);
    let _ = decode::<KeyImportParameters>(bytes);
    let _ = decode::<KeyUpdateParameters>(bytes);
    let _ = decode::<KeyOperationsParameters>(bytes);
    let _ = decode::<KeySignParameters>(bytes);
    let _ = decode::<KeyVerifyParameters>(bytes);
    let _ = decode::<KeyRotationPolicy>(bytes);
    let _ = decode::<SecretSetParameters>(bytes);
    let _ = decode::<SecretUpdateParameters>(bytes);
    let _ = decode::<BackupBlob>(bytes);
    let _ = decode::<GetRandomBytesRequest>(bytes);
}

static ENV: OnceLock<Env> = OnceLock::new();

fn shared() -> &'static Env {
    ENV.get_or_init(|| {
        let e = env();
        create(&e.vault, "p-rsa", "RSA", None, None);
        create(&e.vault, "p-ec", "EC", None, None);
        create(&e.vault, "p-oct", "oct", None, None);
        e
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoders_never_panic_on_random_json(v in arb_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        decode_all(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        decode_all(&bytes);
    }

    #[test]
    fn decode_errors_do_not_echo_values(s in "[a-z]{12,20}") {
        let body = format!(r#"{{"kty": 5, "key_size": "{s}"}}"#);
        let e = decode::<KeyCreateParameters>(body.as_bytes()).unwrap_err();
        prop_assert_eq!(e.code(), "BadParameter");
        prop_assert!(!e.to_string().contains(&s));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn operations_on_random_input_fail_cleanly(
        key in prop_oneof![Just("p-rsa"), Just("p-ec"), Just("p-oct"), Just("nope"), Just("bad name")],
        alg in prop_oneof![
            Just("RSA-OAEP"), Just("RSA-OAEP-256"), Just("RSA1_5"), Just("A256GCM"), Just("A128GCM"),
            Just("A256KW"), Just("CKM_AES_KEY_WRAP_PAD"), Just("PS256"), Just("ES256"), Just("RS512"),
            Just("ES384"), Just("bogus"), Just("")
        ],
        value in proptest::collection::vec(any::<u8>(), 0..300),
        iv in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        tag in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        version in proptest::option::of("[0-9a-f/]{0,40}"),
        which in 0u8..6,
    ) {
        let v = &shared().vault;
        let p = KeyOperationsParameters {
            alg: alg.into(),
            value: Base64Url(value.clone()),
            iv: iv.map(Base64Url),
            aad: None,
            tag: tag.map(Base64Url),
        };
        let ver = version.as_deref();
        let r: Result<(), VaultError> = match which {
            0 => v.encrypt(key, ver, &p).map(|_| ()),
            1 => v.decrypt(key, ver, &p).map(|_| ()),
            2 => v.wrap_key(key, ver, &p).map(|_| ()),
            3 => v.unwrap_key(key, ver, &p).map(|_| ()),
            4 => v.sign(key, ver, &KeySignParameters { alg: alg.into(), value: Base64Url(value.clone()) }).map(|_| ()),
            _ => v.verify(key, ver, &KeyVerifyParameters { alg: alg.into(), digest: Base64Url(value.clone()), value: Base64Url(value) }).map(|_| ()),
        };
        if let Err(e) = r {
            prop_assert!(e.http_status() != 500, "internal error for bad input: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn restore_of_random_or_mutated_blobs_fails_cleanly(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        flip in any::<usize>(),
    ) {
        let env = shared();
        let v = &env.vault;
        for r in [v.restore_key(&bytes).map(|_| ()), v.restore_secret(&bytes).map(|_| ())] {
            let e = r.unwrap_err();
            prop_assert_eq!(e.code(), "BadParameter");
        }
        // A real backup with one bit flipped is refused too.
        let mut blob = v.backup_key("p-oct").unwrap().value.0;
        let i = flip % blob.len();
        blob[i] ^= 1 << (flip % 8);
        let e = v.restore_key(&blob).unwrap_err();
        prop_assert!(e.http_status() == 400 || e.http_status() == 409, "{e}");
        prop_assert!(e.http_status() != 500);
    }
}
