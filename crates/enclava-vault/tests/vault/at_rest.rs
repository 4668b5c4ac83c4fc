//! Nothing secret is stored in clear: scan every row of every table, and the raw database files.

use std::sync::Arc;

use enclava_store::{SqliteStore, Store, Table};
use enclava_vault::*;
use p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::common::*;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_and_key_material_never_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let env = env_on(store.clone(), VaultOptions::default());
    let v = &env.vault;

    let secret = "PLAINTEXT-SECRET-VALUE-8f3a1c77e2b94d05";
    v.set_secret(
        "s",
        &SecretSetParameters {
            value: secret.into(),
            ..Default::default()
        },
    )
    .unwrap();
    let oct_key: Vec<u8> = (0..32).map(|i| 0xA0 ^ (i * 7) as u8).collect();
    v.import_key(
        "k",
        &KeyImportParameters {
            key: JsonWebKey {
                kty: Some("oct".into()),
                k: Some(SecretBytes::new(oct_key.clone())),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let ec = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pt = ec.public_key().to_encoded_point(false);
    let ec_d = ec.to_bytes().to_vec();
    v.import_key(
        "e",
        &KeyImportParameters {
            key: JsonWebKey {
                kty: Some("EC".into()),
                crv: Some("P-256".into()),
                d: Some(SecretBytes::new(ec_d.clone())),
                x: Some(Base64Url(pt.x().unwrap().to_vec())),
                y: Some(Base64Url(pt.y().unwrap().to_vec())),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    // A backup and a rotation produce more rows; make sure they are sealed too.
    v.backup_key("k").unwrap();
    v.rotate_key("k").unwrap();

    let encodings = |b: &[u8]| -> Vec<Vec<u8>> {
        vec![
            b.to_vec(),
            hex::encode(b).into_bytes(),
            hex::encode_upper(b).into_bytes(),
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b).into_bytes(),
            enclava_vault::b64::encode(b).into_bytes(),
        ]
    };
    let mut needles = encodings(secret.as_bytes());
    needles.extend(encodings(&oct_key));
    needles.extend(encodings(&ec_d));

    // Every row of every table through the Store API.
    let mut rows = 0;
    for t in Table::ALL {
        for (k, val) in store.list(t, "", None, 100_000).unwrap() {
            rows += 1;
            for n in &needles {
                assert!(!contains(&val, n), "secret bytes found in {t:?}/{k}");
                assert!(!contains(k.as_bytes(), n));
            }
        }
    }
    assert!(rows >= 6, "expected the vault's rows, found {rows}");

    // And the raw database files (main + WAL).
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for n in &needles {
            assert!(
                !contains(&bytes, n),
                "secret bytes found in a raw database file"
            );
        }
    }
    // Values still readable through the vault.
    assert_eq!(
        v.get_secret("s", None).unwrap().value.unwrap().as_str(),
        secret
    );
}

#[test]
fn tampered_rows_are_detected() {
    let env = env();
    let v = &env.vault;
    let b = create(v, "t", "oct", None, None);
    let ver = version_of(&b);
    let row_key = format!("t/{ver}");
    let row = env
        .store
        .get(Table::KeyVersions, &row_key)
        .unwrap()
        .unwrap();
    let mut j: serde_json::Value = serde_json::from_slice(&row).unwrap();
    // Make the key exportable behind the vault's back.
    j["exportable"] = serde_json::Value::Bool(true);
    let put = |table: Table, key: &str, value: Vec<u8>| {
        env.store
            .transact(vec![enclava_store::Op::Put {
                table,
                key: key.into(),
                value,
            }])
            .unwrap()
    };
    put(
        Table::KeyVersions,
        &row_key,
        serde_json::to_vec(&j).unwrap(),
    );
    let e = v.get_key("t", None).unwrap_err();
    assert_eq!(e.http_status(), 500);
    assert!(e.to_string().contains("integrity"), "{e}");
    assert_eq!(v.releasable_key("t", None).unwrap_err().http_status(), 500);
    // Restoring the original row makes it readable again.
    put(Table::KeyVersions, &row_key, row.clone());
    v.get_key("t", None).unwrap();

    // A version row copied under another key's name is refused.
    let other = create(v, "u", "oct", None, None);
    let other_row_key = format!("u/{}", version_of(&other));
    put(Table::KeyVersions, &other_row_key, row);
    assert_eq!(v.get_key("u", None).unwrap_err().http_status(), 500);

    // Re-enabling a disabled secret in the database is detected.
    let s = v
        .set_secret(
            "s",
            &SecretSetParameters {
                value: "x".into(),
                attributes: Some(SecretAttributes {
                    enabled: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let srow_key = format!("s/{}", s.id.rsplit('/').next().unwrap());
    let srow = env
        .store
        .get(Table::SecretVersions, &srow_key)
        .unwrap()
        .unwrap();
    let mut sj: serde_json::Value = serde_json::from_slice(&srow).unwrap();
    sj["enabled"] = serde_json::Value::Bool(true);
    put(
        Table::SecretVersions,
        &srow_key,
        serde_json::to_vec(&sj).unwrap(),
    );
    assert_eq!(v.get_secret("s", None).unwrap_err().http_status(), 500);
}
