//! `enclava audit verify --store postgres://...`: the chain and the signed checkpoints straight
//! from the database the replicas share, with the public key recorded there (or pinned), the
//! same exit codes as for a data directory (0 intact, 1 broken, 2 usage, 3 unreachable) and
//! `--output json`. The PostgreSQL cluster comes from `ENCLAVA_TEST_POSTGRES_URL`
//! (`scripts/postgres-test.sh`); without it these tests fail under `CI=true` and are skipped
//! with a notice otherwise.

use std::process::{Command, Output};
use std::sync::Arc;

use enclava_audit::{AuditLog, CheckpointSigner, EcdsaCheckpointSigner, NewEntry, Outcome};
use enclava_store::{Op, PostgresStore, Store, Table};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_enclava");
const URL_VAR: &str = "ENCLAVA_TEST_POSTGRES_URL";

fn postgres_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{URL_VAR} is not set under CI=true: run the tests through scripts/postgres-test.sh"
        ),
        _ => {
            eprintln!(
                "NOTICE: {URL_VAR} not set, PostgreSQL test skipped (run through scripts/postgres-test.sh)"
            );
            None
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Run SQL on `url` (a plain connection of the test's own, to set up and to tamper).
fn sql(url: &str, statement: &str) {
    block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        client.batch_execute(statement).await.unwrap();
        drop(client);
        let _ = task.await;
    });
}

fn fresh_database_url(url: &str, name: &str) -> String {
    let name = format!("cli_{name}_{}", std::process::id());
    sql(url, &format!("DROP DATABASE IF EXISTS {name}"));
    sql(url, &format!("CREATE DATABASE {name}"));
    let scheme_end = url.find("://").unwrap() + 3;
    let path_start = url[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(url.len());
    let query = url[path_start..]
        .find('?')
        .map(|i| &url[path_start + i..])
        .unwrap_or("");
    format!("{}/{name}{query}", &url[..path_start])
}

fn entry(i: u64) -> NewEntry {
    NewEntry {
        time: chrono::Utc::now(),
        principal: "alice".into(),
        action: "secrets/set".into(),
        object: format!("secrets/s{i}"),
        version: None,
        result: Outcome::Allowed,
        status: 200,
        request_id: format!("r{i}"),
        client_addr: "127.0.0.1".into(),
        detail: None,
    }
}

/// `enclava audit verify --store` with the URL in the environment (never in the arguments).
fn verify(url: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["audit", "verify"])
        .args(extra)
        .env("ENCLAVA_STORE", url)
        .output()
        .expect("run enclava")
}

/// A chain written by two appenders (two replicas) on one database, with signed checkpoints
/// and the checkpoint public key recorded where the server records it.
fn two_writer_chain(url: &str) -> Vec<u8> {
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(url).unwrap());
    let signer = Arc::new(
        EcdsaCheckpointSigner::from_pkcs8(&EcdsaCheckpointSigner::generate_pkcs8().unwrap())
            .unwrap(),
    );
    let pk = signer.public_key();
    store
        .transact(vec![Op::Put {
            table: Table::Meta,
            key: "audit/checkpoint-public-key".into(),
            value: pk.clone(),
        }])
        .unwrap();
    let a = AuditLog::new(store.clone()).unwrap();
    let b = AuditLog::new(store.clone()).unwrap();
    a.set_signer(Some(signer.clone()));
    b.set_signer(Some(signer));
    for i in 0..20 {
        let log = if i % 2 == 0 { &a } else { &b };
        log.append(vec![entry(i)]).unwrap();
    }
    a.checkpoint_if_due(chrono::Utc::now(), true).unwrap();
    b.checkpoint_if_due(chrono::Utc::now(), true).unwrap();
    pk
}

#[test]
fn audit_verify_reads_the_shared_database() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "verify");
    let pk = two_writer_chain(&url);

    let out = verify(&url, &["--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(v["ok"], Value::Bool(true), "{v}");
    assert_eq!(v["entries"], 20, "{v}");
    assert_eq!(v["verified"], 20, "{v}");
    assert_eq!(v["checkpoint_signatures_checked"], Value::Bool(true), "{v}");
    assert!(v["checkpoints"].as_u64().unwrap() >= 1, "{v}");
    let table = verify(&url, &[]);
    assert_eq!(table.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&table.stdout).contains("intact"));

    // Pinned with the right key: intact; with another key: the checkpoints are bad (exit 1).
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("pk.hex");
    std::fs::write(&key, hex::encode(&pk)).unwrap();
    let pinned = verify(&url, &["--checkpoint-key", key.to_str().unwrap()]);
    assert_eq!(pinned.status.code(), Some(0));
    let other =
        EcdsaCheckpointSigner::from_pkcs8(&EcdsaCheckpointSigner::generate_pkcs8().unwrap())
            .unwrap()
            .public_key();
    std::fs::write(&key, hex::encode(other)).unwrap();
    let wrong = verify(&url, &["--checkpoint-key", key.to_str().unwrap()]);
    assert_eq!(wrong.status.code(), Some(1));

    // One entry modified in the database: broken at that entry, exit 1.
    sql(
        &url,
        "UPDATE audit SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '\"status\":200', '\"status\":201'), 'UTF8') WHERE seq = 7",
    );
    let broken = verify(&url, &["--output", "json"]);
    assert_eq!(broken.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&broken.stdout).expect("json report");
    assert_eq!(v["ok"], Value::Bool(false));
    assert_eq!(v["first_problem"]["seq"], 7, "{v}");
    assert_eq!(v["first_problem"]["kind"], "modified", "{v}");
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("BROKEN at seq 7"), "{err}");
}

#[test]
fn audit_verify_store_errors_have_clear_exit_codes_and_hide_the_password() {
    // Unreachable (port 1 refuses at once): exit 3, the password never shown.
    let out = verify(
        "postgres://vault:s3cretpw@127.0.0.1:1/vault?connect_timeout=2",
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open postgres://vault:***@127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("s3cretpw"), "{err}");
    // Neither a data directory nor a store: usage error.
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .env_remove("ENCLAVA_STORE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
