use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use enclava_store::{SqliteStore, Store};
use enclava_vault::*;

pub const BASE: &str = "https://vault.test:8443";

/// A test clock that can be moved.
#[derive(Clone)]
pub struct TestClock(pub Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new() -> Self {
        TestClock(Arc::new(Mutex::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )))
    }
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    pub fn advance(&self, d: Duration) {
        let mut g = self.0.lock().unwrap();
        *g += d;
    }
    pub fn clock(&self) -> Clock {
        let inner = self.0.clone();
        Arc::new(move || *inner.lock().unwrap())
    }
}

pub struct Env {
    pub vault: Vault,
    pub store: Arc<SqliteStore>,
    pub clock: TestClock,
    pub shares: Vec<String>,
}

pub fn env_with(options: VaultOptions) -> Env {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    env_on(store, options)
}

pub fn env_on(store: Arc<SqliteStore>, options: VaultOptions) -> Env {
    let clock = TestClock::new();
    let dyn_store: Arc<dyn Store> = store.clone();
    let vault = Vault::with_options(dyn_store, format!("{BASE}/"), clock.clock(), options);
    let out = vault.init(3, 2).unwrap();
    let shares: Vec<String> = out.shares.iter().map(|s| s.to_string()).collect();
    vault.unseal(&shares[0]).unwrap();
    let p = vault.unseal(&shares[2]).unwrap();
    assert!(!p.sealed);
    Env {
        vault,
        store,
        clock,
        shares,
    }
}

pub fn env() -> Env {
    env_with(VaultOptions::default())
}

pub fn create(v: &Vault, name: &str, kty: &str, size: Option<u32>, crv: Option<&str>) -> KeyBundle {
    v.create_key(
        name,
        &KeyCreateParameters {
            kty: kty.into(),
            key_size: size,
            crv: crv.map(String::from),
            ..Default::default()
        },
    )
    .unwrap()
}

pub fn version_of(b: &KeyBundle) -> String {
    b.key
        .kid
        .as_deref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

pub fn op(alg: &str, value: &[u8]) -> KeyOperationsParameters {
    KeyOperationsParameters {
        alg: alg.into(),
        value: Base64Url(value.to_vec()),
        ..Default::default()
    }
}
