//! Shared fixtures of the fuzz targets: one real vault per fuzz process (SQLite in memory,
//! initialized and unsealed in dev mode with the unseal key in a per-process temp file), with a
//! few keys and a secret the request targets operate on.

use std::sync::{Arc, OnceLock};

use chrono::{TimeZone, Utc};
use enclava_store::{SqliteStore, Store};
use enclava_vault::{KeyCreateParameters, SecretSetParameters, Vault};

/// Keys the operation bodies are tried against (one per key type).
pub const OP_KEYS: [&str; 3] = ["fz-ec", "fz-rsa", "fz-oct"];

pub fn vault() -> &'static Vault {
    static V: OnceLock<Vault> = OnceLock::new();
    V.get_or_init(|| {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("in-memory store"));
        let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let v = Vault::new(
            store,
            "https://vault.fuzz.test".into(),
            Arc::new(move || at),
        );
        let key_file =
            std::env::temp_dir().join(format!("enclava-fuzz-unseal-{}", std::process::id()));
        v.init_or_unseal_dev(&key_file).expect("dev init");
        let _ = std::fs::remove_file(&key_file);
        let create = |name: &str, kty: &str, size: Option<u32>, crv: Option<&str>| {
            v.create_key(
                name,
                &KeyCreateParameters {
                    kty: kty.into(),
                    key_size: size,
                    crv: crv.map(String::from),
                    ..Default::default()
                },
            )
            .expect("fuzz fixture key");
        };
        create("fz-ec", "EC", None, Some("P-256"));
        create("fz-rsa", "RSA", Some(2048), None);
        create("fz-oct", "oct", Some(256), None);
        create("fz-update", "EC", None, Some("P-256"));
        v.set_secret(
            "fz-secret",
            &SecretSetParameters {
                value: "fuzz".into(),
                ..Default::default()
            },
        )
        .expect("fuzz fixture secret");
        v
    })
}
