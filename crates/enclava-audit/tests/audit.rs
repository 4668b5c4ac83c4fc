//! Audit chain round trips, tamper detection on a real SQLite file, checkpoints and export.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use enclava_audit::{
    AuditConfig, AuditEntry, AuditLog, Checkpoint, CheckpointSigner, EcdsaCheckpointSigner,
    GENESIS_HASH, NewEntry, Outcome, ProblemKind, VerifyReport, checkpoint_key, export_jsonl,
    verify,
};
use enclava_store::{SqliteStore, Store, Table};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

fn entry(i: u64) -> NewEntry {
    NewEntry {
        time: t0() + chrono::Duration::milliseconds(i as i64),
        principal: if i.is_multiple_of(3) {
            "alice".into()
        } else {
            "svc-build".into()
        },
        action: if i.is_multiple_of(2) {
            "keys/get".into()
        } else {
            "secrets/set".into()
        },
        object: format!("keys/k{}", i % 17),
        version: i.is_multiple_of(5).then(|| format!("v{i}")),
        result: if i.is_multiple_of(7) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        status: if i.is_multiple_of(7) { 403 } else { 200 },
        request_id: format!("req-{i}"),
        client_addr: "10.0.0.1:5000".into(),
        detail: i
            .is_multiple_of(11)
            .then(|| "line\nbreak \"quoted\"".to_string()),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Arc<SqliteStore>,
    log: AuditLog,
    pk: Vec<u8>,
}

fn fixture(n: u64, checkpoint_every: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let log = AuditLog::with_config(
        store.clone(),
        AuditConfig {
            checkpoint_every,
            ..Default::default()
        },
    )
    .unwrap();
    let signer =
        EcdsaCheckpointSigner::from_pkcs8(&EcdsaCheckpointSigner::generate_pkcs8().unwrap())
            .unwrap();
    let pk = signer.public_key();
    log.set_signer(Some(Arc::new(signer)));
    // Batches of varying size, like group commit.
    let mut i = 1;
    let mut batch = 1;
    while i <= n {
        let end = (i + batch).min(n + 1);
        let first = log.append((i..end).map(entry).collect()).unwrap();
        assert_eq!(first, i);
        i = end;
        batch = batch * 3 % 257 + 1;
    }
    Fixture {
        _dir: dir,
        path,
        store,
        log,
        pk,
    }
}

fn sql(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn raw(path: &Path, seq: i64) -> Vec<u8> {
    sql(path)
        .query_row(
            "SELECT entry FROM audit WHERE seq = ?1",
            params![seq],
            |r| r.get(0),
        )
        .unwrap()
}

fn parsed(path: &Path, seq: i64) -> AuditEntry {
    serde_json::from_slice(&raw(path, seq)).unwrap()
}

/// Renumber rows with seq >= from by +delta (either sign), avoiding primary-key collisions.
fn shift(path: &Path, from: i64, delta: i64) {
    let c = sql(path);
    c.execute("UPDATE audit SET seq = -seq WHERE seq >= ?1", params![from])
        .unwrap();
    c.execute(
        "UPDATE audit SET seq = -seq + ?1 WHERE seq < 0",
        params![delta],
    )
    .unwrap();
}

fn problem(r: &VerifyReport) -> (u64, ProblemKind) {
    let p = r
        .first_problem
        .as_ref()
        .unwrap_or_else(|| panic!("expected a problem, report {r:?}"));
    (p.seq, p.kind)
}

#[test]
fn chain_round_trip_over_thousands_of_entries() {
    let f = fixture(5000, 1000);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(r.first_problem, None, "{r:?}");
    // Checkpoints are taken at batch boundaries once >= 1000 entries accumulated.
    let cps = checkpoint_seqs(&f.store);
    assert_eq!(r.checkpoints, cps.len() as u64);
    assert!(cps.len() >= 4, "{cps:?}");
    for w in cps.windows(2) {
        assert!(w[1] - w[0] >= 1000 && w[1] - w[0] < 1000 + 257, "{cps:?}");
    }
    assert!(r.checkpoints_ok, "{r:?}");
    assert_eq!(r.verified_head, f.log.head().1);
    // Reopen: the head is loaded from storage and the chain continues.
    let (head_seq, head_hash) = f.log.head();
    drop(f.log);
    let log = AuditLog::new(f.store.clone()).unwrap();
    assert_eq!(log.head(), (head_seq, head_hash));
    assert_eq!(log.append(vec![entry(5001), entry(5002)]).unwrap(), 5001);
    assert_eq!(log.append(vec![]).unwrap(), 5003);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!((r.verified, r.first_problem), (5002, None));
}

#[test]
fn stored_format_is_canonical_and_hash_matches_an_independent_computation() {
    let f = fixture(3, 0);
    let mut prev = [0u8; 32];
    for seq in 1..=3 {
        let bytes = raw(&f.path, seq);
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains('\n'));
        assert!(
            text.starts_with(&format!(
                "{{\"seq\":{seq},\"time\":\"2026-11-28T10:00:00.00{seq}Z\",\"principal\":"
            )),
            "{text}"
        );
        // The hash is the last field; the body is the entry without it.
        let cut = text.rfind(",\"hash\":\"").unwrap();
        let body = format!("{}}}", &text[..cut]);
        let stored_hash = &text[cut + 9..text.len() - 2];
        let mut h = Sha256::new();
        h.update(prev);
        h.update(body.as_bytes());
        let expect: [u8; 32] = h.finalize().into();
        assert_eq!(stored_hash, hex::encode(expect));
        let e = parsed(&f.path, seq);
        assert_eq!(e.prev_hash, hex::encode(prev));
        if seq == 1 {
            assert_eq!(e.prev_hash, GENESIS_HASH);
        }
        prev = expect;
    }
    let e = parsed(&f.path, 1);
    assert_eq!(
        (e.result, e.status, e.version.as_deref()),
        (Outcome::Allowed, 200, None)
    );
}

#[test]
fn modified_content_detected() {
    let f = fixture(3000, 0);
    let before = String::from_utf8(raw(&f.path, 1234)).unwrap();
    let after = before.replacen("req-1234", "req-9999", 1);
    assert_ne!(before, after);
    sql(&f.path)
        .execute(
            "UPDATE audit SET entry = ?1 WHERE seq = 1234",
            params![after.into_bytes()],
        )
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (1234, ProblemKind::Modified), "{r:?}");
    assert_eq!(r.verified, 1233);
    assert_eq!(r.entries, 3000);
}

#[test]
fn modified_and_rehashed_entry_detected_at_that_entry() {
    let f = fixture(3000, 0);
    let mut e = parsed(&f.path, 1500);
    e.result = Outcome::Allowed;
    e.principal = "someone-else".into();
    e.hash = hex::encode(e.compute_hash().unwrap());
    sql(&f.path)
        .execute(
            "UPDATE audit SET entry = ?1 WHERE seq = 1500",
            params![e.to_canonical_json()],
        )
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (1500, ProblemKind::Modified), "{r:?}");
}

#[test]
fn garbage_row_detected_as_modified() {
    let f = fixture(100, 0);
    sql(&f.path)
        .execute("UPDATE audit SET entry = x'00ff' WHERE seq = 42", [])
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (42, ProblemKind::Modified), "{r:?}");
}

#[test]
fn removed_entry_detected_with_and_without_renumbering() {
    let f = fixture(2000, 0);
    sql(&f.path)
        .execute("DELETE FROM audit WHERE seq = 777", [])
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (777, ProblemKind::Removed), "{r:?}");
    assert_eq!(r.entries, 1999);
    // Now close the gap so seq numbers look consecutive again.
    shift(&f.path, 778, -1);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (777, ProblemKind::Removed), "{r:?}");
    // Several removed.
    let f = fixture(2000, 0);
    sql(&f.path)
        .execute("DELETE FROM audit WHERE seq BETWEEN 1000 AND 1009", [])
        .unwrap();
    shift(&f.path, 1010, -10);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (1000, ProblemKind::Removed), "{r:?}");
    assert!(r.first_problem.unwrap().detail.contains("1000..=1009"));
}

#[test]
fn removed_first_entry_detected() {
    let f = fixture(50, 0);
    sql(&f.path)
        .execute("DELETE FROM audit WHERE seq = 1", [])
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (1, ProblemKind::Removed), "{r:?}");
}

#[test]
fn truncated_tail_detected_by_checkpoint() {
    let f = fixture(3000, 1000);
    let last = *checkpoint_seqs(&f.store).last().unwrap();
    sql(&f.path)
        .execute("DELETE FROM audit WHERE seq > ?1", params![last - 5])
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (last - 4, ProblemKind::Removed), "{r:?}");
    assert!(!r.checkpoints_ok);
    assert_eq!(r.verified, last - 5);
}

#[test]
fn inserted_garbage_row_detected() {
    let f = fixture(1000, 0);
    shift(&f.path, 500, 1);
    let mut fake = parsed(&f.path, 42);
    fake.seq = 500;
    fake.principal = "ghost".into();
    sql(&f.path)
        .execute(
            "INSERT INTO audit (seq, entry) VALUES (500, ?1)",
            params![fake.to_canonical_json()],
        )
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (500, ProblemKind::Inserted), "{r:?}");
    assert_eq!(r.entries, 1001);
}

#[test]
fn inserted_perfectly_linked_forgery_detected() {
    let f = fixture(1000, 0);
    let prev = parsed(&f.path, 499);
    shift(&f.path, 500, 1);
    let mut fake = parsed(&f.path, 501); // the genuine entry 500, now at 501
    fake.principal = "ghost".into();
    fake.request_id = "forged".into();
    fake.prev_hash = prev.hash.clone();
    fake.hash = hex::encode(fake.compute_hash().unwrap());
    sql(&f.path)
        .execute(
            "INSERT INTO audit (seq, entry) VALUES (500, ?1)",
            params![fake.to_canonical_json()],
        )
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (500, ProblemKind::Inserted), "{r:?}");
}

#[test]
fn inserted_replayed_entry_detected() {
    let f = fixture(1000, 0);
    let copy = raw(&f.path, 42);
    shift(&f.path, 600, 1);
    sql(&f.path)
        .execute(
            "INSERT INTO audit (seq, entry) VALUES (600, ?1)",
            params![copy],
        )
        .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (600, ProblemKind::Inserted), "{r:?}");
}

fn swap(path: &Path, a: i64, b: i64) {
    let (ea, eb) = (raw(path, a), raw(path, b));
    let c = sql(path);
    c.execute("UPDATE audit SET entry = ?1 WHERE seq = ?2", params![eb, a])
        .unwrap();
    c.execute("UPDATE audit SET entry = ?1 WHERE seq = ?2", params![ea, b])
        .unwrap();
}

#[test]
fn reordered_entries_detected() {
    let f = fixture(1000, 0);
    swap(&f.path, 600, 601);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (600, ProblemKind::Reordered), "{r:?}");
    // Entry moved a few places later: 1..299, 301..305, 300, 306..
    let f = fixture(1000, 0);
    let moved = raw(&f.path, 300);
    let c = sql(&f.path);
    for s in 300..305 {
        c.execute(
            "UPDATE audit SET entry = ?1 WHERE seq = ?2",
            params![raw(&f.path, s + 1), s],
        )
        .unwrap();
    }
    c.execute(
        "UPDATE audit SET entry = ?1 WHERE seq = 305",
        params![moved],
    )
    .unwrap();
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (300, ProblemKind::Reordered), "{r:?}");
    // The last two swapped.
    let f = fixture(1000, 0);
    swap(&f.path, 999, 1000);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (999, ProblemKind::Reordered), "{r:?}");
}

fn checkpoint_seqs(store: &SqliteStore) -> Vec<u64> {
    store
        .list(Table::AuditCheckpoints, "", None, 1000)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.parse().unwrap())
        .collect()
}

fn checkpoint_at(store: &SqliteStore, seq: u64) -> Checkpoint {
    serde_json::from_slice(
        &store
            .get(Table::AuditCheckpoints, &checkpoint_key(seq))
            .unwrap()
            .unwrap(),
    )
    .unwrap()
}

fn put_checkpoint(path: &Path, cp: &Checkpoint) {
    sql(path)
        .execute(
            "INSERT OR REPLACE INTO audit_checkpoints (k, v) VALUES (?1, ?2)",
            params![checkpoint_key(cp.seq), serde_json::to_vec(cp).unwrap()],
        )
        .unwrap();
}

#[test]
fn checkpoint_forgery_detected() {
    let f = fixture(3000, 1000);
    assert!(verify(f.store.as_ref(), &f.pk).unwrap().checkpoints_ok);
    // Altered head hash, old signature.
    let second = checkpoint_seqs(&f.store)[1];
    let mut cp = checkpoint_at(&f.store, second);
    assert!(cp.signature_valid(&f.pk));
    cp.head_hash = parsed(&f.path, second as i64 - 1).hash;
    put_checkpoint(&f.path, &cp);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert!(!r.checkpoints_ok);
    assert_eq!(
        r.first_checkpoint_problem.as_ref().unwrap().seq,
        second,
        "{r:?}"
    );
    assert_eq!(r.first_problem, None, "the entries themselves are intact");
    // A checkpoint signed by another key.
    let f = fixture(3000, 1000);
    let other =
        EcdsaCheckpointSigner::from_pkcs8(&EcdsaCheckpointSigner::generate_pkcs8().unwrap())
            .unwrap();
    let first = checkpoint_seqs(&f.store)[0];
    let mut cp = checkpoint_at(&f.store, first);
    cp.time = "2030-01-01T00:00:00.000Z".into();
    cp.signature = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        other.sign(&cp.signed_bytes()).unwrap(),
    );
    put_checkpoint(&f.path, &cp);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert!(!r.checkpoints_ok);
    assert_eq!(r.first_checkpoint_problem.unwrap().seq, first);
    // Verifying with the wrong public key fails every checkpoint.
    let f = fixture(2000, 1000);
    let r = verify(f.store.as_ref(), &other.public_key()).unwrap();
    assert!(!r.checkpoints_ok);
    assert!(r.checkpoints >= 1);
    assert!(r.first_problem.is_none());
}

#[test]
fn rewritten_suffix_with_recomputed_hashes_caught_by_checkpoint() {
    let f = fixture(3000, 1000);
    let last = *checkpoint_seqs(&f.store).last().unwrap() as i64;
    // Rewrite (last-300)..=3000 consistently: change a field and re-chain every hash.
    let mut prev = parsed(&f.path, last - 301).hash;
    let c = sql(&f.path);
    for s in (last - 300)..=3000 {
        let mut e = parsed(&f.path, s);
        if s == last - 200 {
            e.principal = "covered-tracks".into();
        }
        e.prev_hash = prev.clone();
        e.hash = hex::encode(e.compute_hash().unwrap());
        prev = e.hash.clone();
        c.execute(
            "UPDATE audit SET entry = ?1 WHERE seq = ?2",
            params![e.to_canonical_json(), s],
        )
        .unwrap();
    }
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(problem(&r), (last as u64, ProblemKind::Modified), "{r:?}");
    assert!(!r.checkpoints_ok);
    assert_eq!(
        r.verified, last as u64,
        "the chain itself is consistent up to the checkpoint"
    );
}

#[test]
fn checkpoints_need_a_signer_and_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("v.db")).unwrap());
    let log = AuditLog::with_config(
        store.clone(),
        AuditConfig {
            checkpoint_every: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        log.checkpoint(t0()).unwrap(),
        None,
        "nothing to checkpoint in an empty log"
    );
    log.append((1..=25).map(entry).collect()).unwrap();
    assert!(log.checkpoint(t0()).is_err(), "no signer installed");
    assert!(
        store
            .list(Table::AuditCheckpoints, "", None, 10)
            .unwrap()
            .is_empty()
    );
    let signer =
        EcdsaCheckpointSigner::from_pkcs8(&EcdsaCheckpointSigner::generate_pkcs8().unwrap())
            .unwrap();
    let pk = signer.public_key();
    log.set_signer(Some(Arc::new(signer)));
    log.append(vec![entry(26)]).unwrap();
    let cps = store.list(Table::AuditCheckpoints, "", None, 10).unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].0, checkpoint_key(26));
    let cp = log.checkpoint(t0()).unwrap().unwrap();
    assert_eq!(cp.seq, 26);
    assert_eq!(cp.head_hash, log.head().1);
    let r = verify(store.as_ref(), &pk).unwrap();
    assert!(r.checkpoints_ok && r.first_problem.is_none(), "{r:?}");
    // Reopening finds the last checkpoint, so no redundant one is written.
    let log2 = AuditLog::with_config(
        store.clone(),
        AuditConfig {
            checkpoint_every: 10,
            ..Default::default()
        },
    )
    .unwrap();
    drop(log);
    log2.set_signer(Some(Arc::new(
        EcdsaCheckpointSigner::from_pkcs8(&EcdsaCheckpointSigner::generate_pkcs8().unwrap())
            .unwrap(),
    )));
    log2.append((27..=30).map(entry).collect()).unwrap();
    assert_eq!(
        store
            .list(Table::AuditCheckpoints, "", None, 10)
            .unwrap()
            .len(),
        1
    );
    assert!(EcdsaCheckpointSigner::from_pkcs8(b"junk").is_err());
}

#[test]
fn concurrent_appends_form_one_chain() {
    let f = fixture(0, 100);
    let log = Arc::new(f.log);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.append(vec![entry(t * 1000 + i), entry(t * 1000 + i + 500)])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!((r.entries, r.verified, r.checkpoints), (400, 400, 4));
    assert!(r.checkpoints_ok && r.first_problem.is_none(), "{r:?}");
}

#[test]
fn export_is_jsonl_in_order() {
    let f = fixture(2500, 0);
    let mut out = Vec::new();
    assert_eq!(export_jsonl(f.store.as_ref(), 1, &mut out).unwrap(), 2500);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2500);
    for (i, line) in lines.iter().enumerate() {
        let e: AuditEntry = serde_json::from_str(line).unwrap();
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(
            line.as_bytes(),
            raw(&f.path, e.seq as i64),
            "exported bytes are the stored canonical form"
        );
    }
    let mut out = Vec::new();
    assert_eq!(export_jsonl(f.store.as_ref(), 2001, &mut out).unwrap(), 500);
    let first: AuditEntry =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first.seq, 2001);
    let mut out = Vec::new();
    assert_eq!(export_jsonl(f.store.as_ref(), 9999, &mut out).unwrap(), 0);
    assert!(out.is_empty());
}

#[test]
fn long_fields_are_clipped() {
    let f = fixture(0, 0);
    let mut e = entry(1);
    e.detail = Some("x".repeat(100_000));
    f.log.append(vec![e]).unwrap();
    let stored = parsed(&f.path, 1);
    assert_eq!(stored.detail.unwrap().len(), enclava_audit::MAX_FIELD_CHARS);
    assert!(
        verify(f.store.as_ref(), &f.pk)
            .unwrap()
            .first_problem
            .is_none()
    );
}

#[test]
fn a_second_writer_is_rechained_into_one_chain() {
    // Two appenders on one store (two replicas of one database): the one whose head is stale
    // is refused by the store (nothing written) and re-chains onto what is stored, so the log
    // stays one verifiable chain in commit order.
    let f = fixture(10, 0);
    let other = AuditLog::new(f.store.clone()).unwrap();
    f.log.append(vec![entry(11)]).unwrap();
    let at = other.append(vec![entry(99)]).unwrap();
    assert_eq!(at, 12);
    assert_eq!(other.head().0, 12);
    assert_eq!(other.head().1, parsed(&f.path, 12).hash);
    // And the first appender, now stale in turn, re-chains after it.
    assert_eq!(f.log.commit(Vec::new(), vec![entry(13)]).unwrap(), 13);
    let r = verify(f.store.as_ref(), &f.pk).unwrap();
    assert_eq!(r.entries, 13);
    assert_eq!(r.verified, 13);
    assert!(r.first_problem.is_none(), "{r:?}");
}

#[test]
fn sync_follows_other_appenders_and_refuses_a_broken_link() {
    let f = fixture(3, 0);
    let other = AuditLog::new(f.store.clone()).unwrap();
    f.log.append(vec![entry(4), entry(5)]).unwrap();
    assert_eq!(other.head().0, 3);
    assert_eq!(other.sync().unwrap(), 5);
    assert_eq!(other.head().1, parsed(&f.path, 5).hash);
    // A row that does not link onto the head is not adopted.
    let mut forged = parsed(&f.path, 5);
    forged.seq = 6;
    forged.prev_hash = enclava_audit::GENESIS_HASH.into();
    f.store
        .append_audit(vec![forged.to_canonical_json()])
        .unwrap();
    let err = other.sync().unwrap_err();
    assert!(err.to_string().contains("prev_hash"), "{err}");
    assert_eq!(other.head().0, 5);
}

fn signer() -> EcdsaCheckpointSigner {
    EcdsaCheckpointSigner::from_pkcs8(&EcdsaCheckpointSigner::generate_pkcs8().unwrap()).unwrap()
}

#[test]
fn audited_store_commits_each_change_with_its_entry_or_neither() {
    use enclava_audit::audited::AuditedStore;
    use enclava_audit::scope;
    use enclava_store::{Op, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let raw = Arc::new(SqliteStore::open(&dir.path().join("v.db")).unwrap());
    let log = Arc::new(AuditLog::new(raw.clone()).unwrap());
    let store = AuditedStore::new(raw.clone(), log.clone());
    let put = |k: &str| Op::Put {
        table: Table::Secrets,
        key: k.into(),
        value: b"v".to_vec(),
    };
    // Inside a request scope: the request's entry, with the version the change writes.
    let mut e = entry(1);
    e.object = "secrets/Alpha".into();
    e.version = None;
    let s = scope::enter(e);
    scope::set_principal("alice");
    store
        .transact(vec![
            put("alpha"),
            Op::Put {
                table: Table::SecretVersions,
                key: "alpha/v123".into(),
                value: b"x".to_vec(),
            },
        ])
        .unwrap();
    // A lost race: nothing of the change and no entry.
    let err = store
        .transact(vec![
            Op::Expect {
                table: Table::Secrets,
                key: "alpha".into(),
                value: None,
            },
            put("beta"),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let out = s.finish();
    assert_eq!(out.committed, vec![1]);
    assert_eq!(out.storage_failure, None);
    assert_eq!(raw.audit_head().unwrap(), 1);
    assert!(raw.get(Table::Secrets, "beta").unwrap().is_none());
    let e1: AuditEntry = serde_json::from_slice(&raw.audit_range(1, 1).unwrap()[0].entry).unwrap();
    assert_eq!(e1.principal, "alice");
    assert_eq!(e1.version.as_deref(), Some("v123"));
    // Outside any scope a change is still audited, as the system, naming only the tables.
    store.transact(vec![put("gamma")]).unwrap();
    let e2: AuditEntry = serde_json::from_slice(&raw.audit_range(2, 1).unwrap()[0].entry).unwrap();
    assert_eq!(
        (e2.principal.as_str(), e2.action.as_str()),
        ("system", "store/write")
    );
    assert!(e2.detail.unwrap().contains("secrets x1"));
    // Only preconditions: no change, no entry.
    store
        .transact(vec![Op::Expect {
            table: Table::Secrets,
            key: "gamma".into(),
            value: Some(b"v".to_vec()),
        }])
        .unwrap();
    assert_eq!(raw.audit_head().unwrap(), 2);
    // Group-committed entries and committed changes form one chain.
    log.append(vec![entry(9)]).unwrap();
    store.transact(vec![put("delta")]).unwrap();
    let r = verify(raw.as_ref(), &[]).unwrap();
    assert_eq!((r.entries, r.verified), (4, 4));
    assert!(r.first_problem.is_none(), "{r:?}");
    assert!(
        store.append_audit(vec![b"raw".to_vec()]).is_err(),
        "no bypass of the chain"
    );
}

#[test]
fn first_checkpoint_is_signed_at_once_and_later_ones_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("v.db")).unwrap());
    let head_path = dir.path().join(enclava_audit::head_file::HEAD_FILE);
    let log = AuditLog::with_config(
        store.clone(),
        AuditConfig {
            checkpoint_interval: std::time::Duration::from_millis(200),
            head_file: Some(head_path.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let s = signer();
    let pk = s.public_key();
    log.set_signer(Some(Arc::new(s)));
    log.append(vec![entry(1)]).unwrap();
    assert_eq!(
        log.last_checkpoint(),
        1,
        "a young log is checkpointed at once"
    );
    log.append((2..=5).map(entry).collect()).unwrap();
    assert_eq!(log.last_checkpoint(), 1);
    assert_eq!(
        log.checkpoint_if_due(t0(), false).unwrap(),
        None,
        "not yet due"
    );
    std::thread::sleep(std::time::Duration::from_millis(250));
    let cp = log.checkpoint_if_due(t0(), false).unwrap().unwrap();
    assert_eq!(cp.seq, 5);
    assert_eq!(
        log.checkpoint_if_due(t0(), true).unwrap(),
        None,
        "head did not move"
    );
    log.append(vec![entry(6)]).unwrap();
    assert_eq!(log.checkpoint_if_due(t0(), true).unwrap().unwrap().seq, 6);
    let head = enclava_audit::head_file::read(&head_path).unwrap().unwrap();
    assert_eq!(head.seq, 6);
    assert!(head.signature_valid(&pk));
    let r = enclava_audit::verify_with_head(store.as_ref(), &pk, Some(&head)).unwrap();
    assert!(r.first_problem.is_none() && r.checkpoints_ok, "{r:?}");
    assert_eq!(r.signed_head, Some(6));
}

#[test]
fn signed_head_catches_truncation_rewrite_and_forgery() {
    let f = fixture(50, 1000);
    let dir = tempfile::tempdir().unwrap();
    let s = signer();
    let pk = s.public_key();
    let head_path = dir.path().join("head.json");
    let log = AuditLog::with_config(
        f.store.clone(),
        AuditConfig {
            head_file: Some(head_path.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    log.set_signer(Some(Arc::new(s)));
    log.checkpoint(t0()).unwrap().unwrap();
    let head = enclava_audit::head_file::read(&head_path).unwrap().unwrap();
    assert_eq!(head.seq, 50);
    // Truncate the tail and drop every checkpoint: without the head the chain looks fine.
    let c = sql(&f.path);
    c.execute("DELETE FROM audit WHERE seq > 40", []).unwrap();
    c.execute("DELETE FROM audit_checkpoints", []).unwrap();
    let r = verify(f.store.as_ref(), &pk).unwrap();
    assert!(r.first_problem.is_none(), "the database alone cannot tell");
    let r = enclava_audit::verify_with_head(f.store.as_ref(), &pk, Some(&head)).unwrap();
    let p = r.first_problem.clone().unwrap();
    assert_eq!((p.seq, p.kind), (41, ProblemKind::Removed), "{r:?}");
    assert!(
        p.detail
            .contains("the log ends at seq 40 but a signed head at seq 50")
    );
    assert!(!r.checkpoints_ok);
    // A forged head (not signed by the checkpoint key) is a checkpoint problem.
    let mut forged = head.clone();
    forged.seq = 10;
    let r = enclava_audit::verify_with_head(f.store.as_ref(), &pk, Some(&forged)).unwrap();
    assert!(!r.checkpoints_ok);
    assert_eq!(r.first_checkpoint_problem.unwrap().seq, 10);
    // The server does not overwrite that evidence with a new head.
    let log2 = AuditLog::with_config(
        f.store.clone(),
        AuditConfig {
            head_file: Some(head_path.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    log2.set_signer(Some(Arc::new(signer())));
    log2.append(vec![entry(41)]).unwrap();
    assert!(log2.checkpoint(t0()).is_err());
    assert_eq!(
        enclava_audit::head_file::read(&head_path).unwrap().unwrap(),
        head
    );
}

#[test]
fn two_writers_on_one_database_keep_one_chain_for_committed_changes() {
    use enclava_store::Op;
    // Two processes on one database: each AuditLog's head goes stale when the other writes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let a_store = Arc::new(SqliteStore::open(&path).unwrap());
    let b_store = Arc::new(SqliteStore::open(&path).unwrap());
    let a = AuditLog::new(a_store.clone()).unwrap();
    let b = AuditLog::new(b_store.clone()).unwrap();
    let put = |k: &str| {
        vec![Op::Put {
            table: Table::Secrets,
            key: k.into(),
            value: b"v".to_vec(),
        }]
    };
    for i in 0..5u64 {
        assert_eq!(
            a.commit(put(&format!("a{i}")), vec![entry(i)]).unwrap(),
            2 * i + 1
        );
        assert_eq!(
            b.commit(put(&format!("b{i}")), vec![entry(i)]).unwrap(),
            2 * i + 2
        );
    }
    let r = verify(a_store.as_ref(), &[]).unwrap();
    assert_eq!((r.entries, r.verified), (10, 10));
    assert!(r.first_problem.is_none(), "{r:?}");
}
