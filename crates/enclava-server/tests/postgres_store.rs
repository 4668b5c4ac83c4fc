//! The server on the PostgreSQL backend (`store = postgres://...`), through the real server over
//! HTTPS: its state lives in the database (not in the data directory), survives a restart, and
//! its audit chain verifies; a bad or unreachable database is a clear start-up error that never
//! shows the password. The PostgreSQL cluster comes from `ENCLAVA_TEST_POSTGRES_URL`
//! (`scripts/postgres-test.sh`); without it these tests fail under `CI=true` and are skipped with
//! a notice otherwise.

mod common;

use std::path::Path;
use std::str::FromStr;

use common::postgres::*;
use common::*;
use enclava_audit::head_file;
use enclava_server::{PartialConfig, ServerConfig, StoreUrl};
use enclava_store::{PostgresStore, Store, Table};
use serde_json::json;

const V: &str = "api-version=7.5";

fn config(data: &Path, store: &str) -> ServerConfig {
    PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(data.to_path_buf()),
        dev: Some(true),
        store: Some(StoreUrl::new(store)),
        ..Default::default()
    }
    .resolve()
    .expect("config")
}

#[test]
fn server_state_lives_in_postgres_and_survives_a_restart() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "srv", "state");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let t = start_with(config(&data, &url));
    let admin = admin_token(&data);
    let r = t.put(
        &format!("/secrets/db-password?{V}"),
        Some(&admin),
        &json!({"value": "hunter2"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.post(
        &format!("/keys/k1/create?{V}"),
        Some(&admin),
        &json!({"kty": "EC", "crv": "P-256"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    stop(t);

    // Nothing of the vault went to a SQLite file in the data directory.
    assert!(!data.join(enclava_server::DB_FILE).exists());
    // The database holds it, with an audit chain that verifies (chain, checkpoints, and the
    // signed head file the server left in its data directory).
    let store = PostgresStore::connect(&url).expect("connect");
    assert!(
        !store
            .list(Table::Secrets, "", None, 100)
            .unwrap()
            .is_empty()
    );
    assert!(!store.list(Table::Keys, "", None, 100).unwrap().is_empty());
    assert!(store.audit_head().unwrap() >= 2);
    let pk = store
        .get(Table::Meta, "audit/checkpoint-public-key")
        .unwrap()
        .expect("checkpoint key recorded");
    let head = head_file::read(&data.join(head_file::HEAD_FILE)).expect("head file");
    let report = enclava_audit::verify_with_head(&store, &pk, head.as_ref()).expect("verify");
    assert!(report.first_problem.is_none(), "{report:?}");
    assert!(report.checkpoints_ok, "{report:?}");
    assert_eq!(report.verified, report.entries, "{report:?}");
    assert!(report.signed_head.is_some(), "{report:?}");
    drop(store);

    // A restart on the same database finds everything.
    let t = start_with(config(&data, &url));
    let admin = admin_token(&data);
    let r = t.get(&format!("/secrets/db-password?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"], "hunter2");
    let r = t.get(&format!("/keys/k1?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    stop(t);
}

#[test]
fn a_store_that_is_not_a_postgres_url_is_refused_without_the_password() {
    let err = PartialConfig {
        store: Some(StoreUrl::new("mysql://vault:s3cretpw@db/vault")),
        ..Default::default()
    }
    .resolve()
    .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("store") && msg.contains("PostgreSQL URL"),
        "{msg}"
    );
    assert!(!msg.contains("s3cretpw"), "{msg}");
}

#[test]
fn the_configuration_never_prints_the_database_password() {
    let partial = PartialConfig::from_env([(
        "ENCLAVA_STORE",
        "postgres://vault:s3cretpw@db1,db2/vault?target_session_attrs=read-write",
    )])
    .unwrap();
    assert!(!format!("{partial:?}").contains("s3cretpw"));
    let cfg = partial.resolve().unwrap();
    let url = cfg.store.as_ref().expect("store set");
    assert!(url.expose().contains("s3cretpw"));
    assert!(!format!("{cfg:?}").contains("s3cretpw"));
    assert_eq!(
        url.redacted(),
        "postgres://vault:***@db1,db2/vault?target_session_attrs=read-write"
    );
}

#[test]
fn an_unreachable_database_is_a_clear_startup_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback refuses at once; a bad option is refused before any connection.
    for url in [
        "postgres://vault:s3cretpw@127.0.0.1:1/vault?connect_timeout=2",
        "postgres://vault:s3cretpw@127.0.0.1/vault?no_such_option=1",
    ] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(enclava_server::start(config(&dir.path().join("data"), url)))
            .err()
            .expect("start fails");
        let msg = err.to_string();
        assert!(msg.contains("opening the PostgreSQL store"), "{msg}");
        assert!(msg.contains("postgres://vault:***@127.0.0.1"), "{msg}");
        assert!(!msg.contains("s3cretpw"), "{msg}");
    }
}

#[test]
fn a_wrong_database_password_is_a_clear_startup_error() {
    let Some(base) = postgres_url() else { return };
    let cfg = tokio_postgres::Config::from_str(&base).unwrap();
    let real = String::from_utf8(cfg.get_password().unwrap().to_vec()).unwrap();
    let url = base.replacen(&format!(":{real}@"), ":wrong-pw-123@", 1);
    assert_ne!(url, base);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(enclava_server::start(config(
            &dir.path().join("data"),
            &url,
        )))
        .err()
        .expect("start fails");
    let msg = err.to_string();
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(
        !msg.contains("wrong-pw-123") && !msg.contains(&real),
        "{msg}"
    );
}

/// A PostgreSQL server with a private CA, sslmode=require: the server trusts it through
/// `store_ca_file`, and refuses to start without it (no silent fallback to plain text).
#[test]
fn the_server_reaches_a_tls_database_through_store_ca_file() {
    let Some(base) = postgres_url() else { return };
    let ca = std::env::var("ENCLAVA_TEST_POSTGRES_CA")
        .expect("ENCLAVA_TEST_POSTGRES_CA is set by scripts/postgres-test.sh");
    let url = fresh_database_url(&base, "srv", "tls").replace("sslmode=disable", "sslmode=require");
    assert!(
        url.contains("sslmode=require"),
        "the test URL names sslmode"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(enclava_server::start(config(&data, &url)))
        .err()
        .expect("an unknown CA is refused");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    drop(rt);

    let mut cfg = config(&data, &url);
    cfg.store_ca_file = Some(ca.into());
    let t = start_with(cfg);
    let admin = admin_token(&data);
    let r = t.put(
        &format!("/secrets/over-tls?{V}"),
        Some(&admin),
        &json!({"value": "v"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    stop(t);
}
