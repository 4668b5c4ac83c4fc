//! The storage test suite, run against every backend: each test below is generated twice, in
//! `mod sqlite` (a database file in a temporary directory) and in `mod postgres` (a fresh database
//! in the cluster named by `ENCLAVA_TEST_POSTGRES_URL`; `scripts/postgres-test.sh` starts one).
//! Without that variable the PostgreSQL tests fail under `CI=true` and are skipped with a notice
//! otherwise.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use enclava_store::{Op, PostgresOptions, PostgresStore, SqliteStore, Store, StoreError, Table};

/// One test database; `open` gives another independent connection (handle) to it.
struct Db {
    open: Box<dyn Fn() -> Arc<dyn Store>>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn open(&self) -> Arc<dyn Store> {
        (self.open)()
    }
}

fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    Db {
        open: Box::new(move || Arc::new(SqliteStore::open(&path).unwrap())),
        _dir: Some(dir),
    }
}

const URL_VAR: &str = "ENCLAVA_TEST_POSTGRES_URL";

/// The test cluster's URL, or `None` (with a notice) when there is none and we are not in CI.
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

/// Run one statement on the cluster's maintenance database.
fn admin_sql(url: &str, db: Option<&str>, sql: &str) {
    let mut config = tokio_postgres::Config::from_str(url).unwrap();
    if let Some(db) = db {
        config.dbname(db);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = task.await;
    });
}

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A new, empty database in the test cluster, for one test.
fn fresh_postgres_database(url: &str, test: &str) -> tokio_postgres::Config {
    let name = format!(
        "t_{}_{}_{}",
        test,
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    admin_sql(url, None, &format!("CREATE DATABASE {name}"));
    let mut config = tokio_postgres::Config::from_str(url).unwrap();
    config.dbname(&name);
    config
}

fn postgres_db(test: &str) -> Option<Db> {
    let url = postgres_url()?;
    let config = fresh_postgres_database(&url, test);
    Some(Db {
        open: Box::new(move || {
            Arc::new(
                PostgresStore::from_config(config.clone(), PostgresOptions::default()).unwrap(),
            )
        }),
        _dir: None,
    })
}

macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::sqlite_db()); } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if let Some(db) = super::postgres_db(stringify!($name)) { super::$name(&db); }
            } )*
        }
    };
}

for_each_backend!(
    put_get_list_delete,
    tables_are_separate_and_values_binary_exact,
    prefix_is_literal_not_a_pattern,
    list_pages_through_every_row_in_bytewise_order,
    failed_expectation_rolls_back_whole_transaction,
    expectations_compare_exact_values,
    audit_sequence_is_consecutive_and_durable_across_reopen,
    audit_range_and_empty_appends,
    transact_audited_commits_change_and_entries_together_or_neither,
    concurrent_audit_appends_from_two_connections_stay_contiguous,
    concurrent_creates_of_one_key_have_one_winner,
    concurrent_read_modify_write_loses_no_update,
    concurrent_audited_changes_form_one_gapless_chain,
    audit_only_appends_land_exactly_at_the_next_seq,
    concurrent_audit_only_appends_and_changes_form_one_gapless_chain,
);

fn put(table: Table, k: &str, v: &[u8]) -> Op {
    Op::Put {
        table,
        key: k.into(),
        value: v.to_vec(),
    }
}

fn keys(rows: Vec<(String, Vec<u8>)>) -> Vec<String> {
    rows.into_iter().map(|r| r.0).collect()
}

fn put_get_list_delete(db: &Db) {
    let s = db.open();
    s.transact(vec![
        put(Table::Keys, "a/1", b"x"),
        put(Table::Keys, "a/2", b"y"),
        put(Table::Keys, "b/1", b"z"),
    ])
    .unwrap();
    assert_eq!(
        s.get(Table::Keys, "a/2").unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(s.get(Table::Secrets, "a/2").unwrap(), None);
    assert_eq!(
        keys(s.list(Table::Keys, "a/", None, 10).unwrap()),
        ["a/1", "a/2"]
    );
    assert_eq!(
        keys(s.list(Table::Keys, "", Some("a/1"), 1).unwrap()),
        ["a/2"]
    );
    // Put replaces.
    s.transact(vec![put(Table::Keys, "a/2", b"y2")]).unwrap();
    assert_eq!(
        s.get(Table::Keys, "a/2").unwrap().as_deref(),
        Some(&b"y2"[..])
    );
    s.transact(vec![Op::Delete {
        table: Table::Keys,
        key: "a/1".into(),
    }])
    .unwrap();
    assert_eq!(s.get(Table::Keys, "a/1").unwrap(), None);
    // Deleting what is absent is no error.
    s.transact(vec![Op::Delete {
        table: Table::Keys,
        key: "never".into(),
    }])
    .unwrap();
    // An empty transaction is no error either.
    s.transact(vec![]).unwrap();
}

fn tables_are_separate_and_values_binary_exact(db: &Db) {
    let s = db.open();
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let mut ops = Vec::new();
    for t in Table::ALL {
        ops.push(put(t, "same", t.name().as_bytes()));
    }
    ops.push(put(Table::Meta, "bin", &binary));
    ops.push(put(Table::Meta, "empty", b""));
    s.transact(ops).unwrap();
    for t in Table::ALL {
        assert_eq!(
            s.get(t, "same").unwrap().as_deref(),
            Some(t.name().as_bytes())
        );
        let n = if t == Table::Meta { 3 } else { 1 };
        assert_eq!(s.list(t, "", None, 100).unwrap().len(), n, "{}", t.name());
    }
    assert_eq!(s.get(Table::Meta, "bin").unwrap(), Some(binary));
    assert_eq!(s.get(Table::Meta, "empty").unwrap(), Some(vec![]));
}

fn prefix_is_literal_not_a_pattern(db: &Db) {
    let s = db.open();
    s.transact(vec![
        put(Table::Keys, "a_b", b"1"),
        put(Table::Keys, "axb", b"2"),
        put(Table::Keys, "a%", b"3"),
        put(Table::Keys, "a%b", b"4"),
        put(Table::Keys, "a\\b", b"5"),
        put(Table::Keys, "a.b", b"6"),
    ])
    .unwrap();
    assert_eq!(keys(s.list(Table::Keys, "a_", None, 10).unwrap()), ["a_b"]);
    assert_eq!(
        keys(s.list(Table::Keys, "a%", None, 10).unwrap()),
        ["a%", "a%b"]
    );
    assert_eq!(
        keys(s.list(Table::Keys, "a\\", None, 10).unwrap()),
        ["a\\b"]
    );
    assert_eq!(keys(s.list(Table::Keys, "a.", None, 10).unwrap()), ["a.b"]);
    assert!(s.list(Table::Keys, "b", None, 10).unwrap().is_empty());
    assert!(s.list(Table::Keys, "a_bc", None, 10).unwrap().is_empty());
}

fn list_pages_through_every_row_in_bytewise_order(db: &Db) {
    let s = db.open();
    // Upper case sorts before lower case and non-ASCII after both in byte order (a locale-aware
    // collation would interleave them): both backends must page identically.
    let mut all: Vec<String> = Vec::new();
    for i in 0..23 {
        all.push(format!("p/k{i:02}"));
    }
    all.extend(
        [
            "p/Z",
            "p/a",
            "p/é",
            "p/\u{10ffff}",
            "q/outside",
            "o/outside",
        ]
        .map(String::from),
    );
    s.transact(
        all.iter()
            .map(|k| put(Table::Secrets, k, k.as_bytes()))
            .collect(),
    )
    .unwrap();
    let mut want: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|k| k.starts_with("p/"))
        .collect();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let mut got: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s.list(Table::Secrets, "p/", after.as_deref(), 5).unwrap();
        assert!(page.len() <= 5);
        for (k, v) in &page {
            assert_eq!(v, k.as_bytes());
        }
        let done = page.len() < 5;
        after = page.last().map(|r| r.0.clone());
        got.extend(keys(page));
        pages += 1;
        if done {
            break;
        }
    }
    assert_eq!(got, want);
    assert_eq!(pages, want.len() / 5 + 1);
    assert!(s.list(Table::Secrets, "p/", None, 0).unwrap().is_empty());
    // `after` beyond the prefix range, and an `after` that is not a stored key.
    assert!(
        s.list(Table::Secrets, "p/", Some("p/\u{10ffff}"), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        keys(s.list(Table::Secrets, "p/", Some("p/k215"), 2).unwrap()),
        ["p/k22", "p/é"]
    );
}

fn failed_expectation_rolls_back_whole_transaction(db: &Db) {
    let s = db.open();
    s.transact(vec![put(Table::Keys, "k", b"v1")]).unwrap();
    let err = s
        .transact(vec![
            put(Table::Keys, "other", b"written-first"),
            Op::Delete {
                table: Table::Keys,
                key: "k".into(),
            },
            Op::Expect {
                table: Table::Keys,
                key: "k".into(),
                value: Some(b"stale".to_vec()),
            },
            put(Table::Keys, "k", b"v2"),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { table: "keys", key, expected: "unchanged" } if key == "k"),
        "{err}"
    );
    assert_eq!(
        s.get(Table::Keys, "other").unwrap(),
        None,
        "no partial write"
    );
    assert_eq!(
        s.get(Table::Keys, "k").unwrap().as_deref(),
        Some(&b"v1"[..]),
        "the delete before the failed expectation is rolled back too"
    );
    s.transact(vec![
        Op::Expect {
            table: Table::Keys,
            key: "new".into(),
            value: None,
        },
        put(Table::Keys, "new", b"1"),
    ])
    .unwrap();
    let err = s
        .transact(vec![Op::Expect {
            table: Table::Keys,
            key: "new".into(),
            value: None,
        }])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: "absent",
                ..
            }
        ),
        "{err}"
    );
    // The store is usable after a failed transaction (no transaction left open).
    s.transact(vec![put(Table::Keys, "after", b"1")]).unwrap();
    assert!(s.get(Table::Keys, "after").unwrap().is_some());
}

fn expectations_compare_exact_values(db: &Db) {
    let s = db.open();
    s.transact(vec![put(Table::Policies, "p", b"")]).unwrap();
    // An empty value is present, not absent.
    assert!(
        s.transact(vec![Op::Expect {
            table: Table::Policies,
            key: "p".into(),
            value: None,
        }])
        .is_err()
    );
    s.transact(vec![Op::Expect {
        table: Table::Policies,
        key: "p".into(),
        value: Some(vec![]),
    }])
    .unwrap();
    // An expectation sees the transaction's own earlier writes.
    s.transact(vec![
        put(Table::Policies, "p", b"v2"),
        Op::Expect {
            table: Table::Policies,
            key: "p".into(),
            value: Some(b"v2".to_vec()),
        },
        Op::Delete {
            table: Table::Policies,
            key: "p".into(),
        },
        Op::Expect {
            table: Table::Policies,
            key: "p".into(),
            value: None,
        },
    ])
    .unwrap();
    assert_eq!(s.get(Table::Policies, "p").unwrap(), None);
    // Same key in another table does not satisfy the expectation.
    s.transact(vec![put(Table::Principals, "p", b"x")]).unwrap();
    s.transact(vec![Op::Expect {
        table: Table::Policies,
        key: "p".into(),
        value: None,
    }])
    .unwrap();
}

fn audit_sequence_is_consecutive_and_durable_across_reopen(db: &Db) {
    {
        let s = db.open();
        assert_eq!(s.audit_head().unwrap(), 0);
        assert_eq!(
            s.append_audit(vec![b"e1".to_vec(), b"e2".to_vec()])
                .unwrap(),
            1
        );
        assert_eq!(s.append_audit(vec![b"e3".to_vec()]).unwrap(), 3);
        s.transact(vec![put(Table::Meta, "m", b"1")]).unwrap();
    }
    let s = db.open();
    assert_eq!(s.audit_head().unwrap(), 3);
    let rows = s.audit_range(2, 10).unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(rows[1].entry, b"e3");
    assert_eq!(s.get(Table::Meta, "m").unwrap().as_deref(), Some(&b"1"[..]));
}

fn audit_range_and_empty_appends(db: &Db) {
    let s = db.open();
    assert!(s.audit_range(1, 10).unwrap().is_empty());
    // An empty append writes nothing and names the next sequence number.
    assert_eq!(s.append_audit(vec![]).unwrap(), 1);
    assert_eq!(s.audit_head().unwrap(), 0);
    let entries: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i, 0, 255]).collect();
    assert_eq!(s.append_audit(entries.clone()).unwrap(), 1);
    assert_eq!(s.audit_range(0, 3).unwrap().len(), 3);
    let rows = s.audit_range(4, 3).unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(rows[0].entry, entries[3]);
    assert!(s.audit_range(11, 10).unwrap().is_empty());
    assert!(s.audit_range(u64::MAX, 10).unwrap().is_empty());
    assert!(s.audit_range(1, 0).unwrap().is_empty());
    assert_eq!(s.audit_range(1, usize::MAX).unwrap().len(), 10);
    // transact_audited with no entries at the right position commits the change.
    s.transact_audited(vec![put(Table::Keys, "k", b"1")], vec![], 11)
        .unwrap();
    assert!(s.get(Table::Keys, "k").unwrap().is_some());
    assert_eq!(s.audit_head().unwrap(), 10);
}

fn transact_audited_commits_change_and_entries_together_or_neither(db: &Db) {
    let s = db.open();
    s.transact_audited(vec![put(Table::Keys, "k", b"1")], vec![b"e1".to_vec()], 1)
        .unwrap();
    let err = s
        .transact_audited(
            vec![
                put(Table::Keys, "other", b"2"),
                Op::Expect {
                    table: Table::Keys,
                    key: "k".into(),
                    value: None,
                },
            ],
            vec![b"e2".to_vec()],
            2,
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        s.audit_head().unwrap(),
        1,
        "no entry for a change that lost"
    );
    assert_eq!(s.get(Table::Keys, "other").unwrap(), None);
    assert_eq!(s.append_audit(vec![b"e3".to_vec()]).unwrap(), 2);
    // Entries chained for seq 2 must not land at 3: nothing of the change is written.
    let err = s
        .transact_audited(
            vec![put(Table::Keys, "late", b"3")],
            vec![b"e4".to_vec()],
            2,
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { table: "audit", .. }),
        "{err}"
    );
    assert_eq!(s.get(Table::Keys, "late").unwrap(), None);
    assert_eq!(s.audit_head().unwrap(), 2);
    // Nor may they land in the past.
    assert!(s.transact_audited(vec![], vec![b"e5".to_vec()], 1).is_err());
    assert_eq!(s.audit_range(1, 10).unwrap().len(), 2);
    s.transact_audited(
        vec![put(Table::Keys, "late", b"3")],
        vec![b"e4".to_vec(), b"e5".to_vec()],
        3,
    )
    .unwrap();
    assert_eq!(s.audit_head().unwrap(), 4);
}

/// Threads on two independent connections (two processes, for PostgreSQL two sessions) append
/// batches at once: every sequence number from 1 to the total is used exactly once, and each
/// batch is contiguous at the number its append returned.
fn concurrent_audit_appends_from_two_connections_stay_contiguous(db: &Db) {
    const THREADS_PER_CONN: usize = 3;
    const BATCHES: usize = 15;
    let conns = [db.open(), db.open()];
    let barrier = Arc::new(Barrier::new(2 * THREADS_PER_CONN));
    let mut handles = Vec::new();
    for (c, conn) in conns.iter().enumerate() {
        for t in 0..THREADS_PER_CONN {
            let (conn, barrier) = (conn.clone(), barrier.clone());
            handles.push(std::thread::spawn(move || {
                barrier.wait();
                let mut placed = Vec::new();
                for b in 0..BATCHES {
                    let batch: Vec<Vec<u8>> = (0..2)
                        .map(|i| format!("c{c}t{t}b{b}e{i}").into_bytes())
                        .collect();
                    let first = conn.append_audit(batch.clone()).unwrap();
                    placed.push((first, batch));
                }
                placed
            }));
        }
    }
    let placed: Vec<(u64, Vec<Vec<u8>>)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let total = (2 * THREADS_PER_CONN * BATCHES * 2) as u64;
    let s = db.open();
    assert_eq!(s.audit_head().unwrap(), total);
    let rows = s.audit_range(1, usize::MAX).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    for (first, batch) in placed {
        for (i, entry) in batch.iter().enumerate() {
            assert_eq!(&rows[(first - 1) as usize + i].entry, entry);
        }
    }
}

/// Many writers on two connections try to create the same object, each with "must be absent":
/// exactly one succeeds, every other gets a conflict, and the stored value is the winner's.
fn concurrent_creates_of_one_key_have_one_winner(db: &Db) {
    const THREADS: usize = 8;
    let conns = [db.open(), db.open()];
    for round in 0..5 {
        let key = format!("race/{round}");
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (s, barrier, key) = (conns[t % 2].clone(), barrier.clone(), key.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let r = s.transact(vec![
                        Op::Expect {
                            table: Table::Keys,
                            key: key.clone(),
                            value: None,
                        },
                        put(Table::Keys, &key, format!("{t}").as_bytes()),
                        put(Table::KeyVersions, &format!("{key}/{t}"), b"v"),
                    ]);
                    match r {
                        Ok(()) => Some(t),
                        Err(StoreError::Conflict { .. }) => None,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                })
            })
            .collect();
        let winners: Vec<usize> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let s = &conns[0];
        assert_eq!(
            s.get(Table::Keys, &key).unwrap(),
            Some(winners[0].to_string().into_bytes())
        );
        // The losers' other writes are rolled back with them.
        assert_eq!(
            s.list(Table::KeyVersions, &format!("{key}/"), None, 100)
                .unwrap()
                .len(),
            1
        );
    }
}

/// Read, then write with "must still be what I read", retrying on conflict: the classic
/// compare-and-set counter. A backend whose expectation does not hold until commit loses
/// increments.
fn concurrent_read_modify_write_loses_no_update(db: &Db) {
    const THREADS: usize = 6;
    const INCREMENTS: usize = 15;
    let conns = [db.open(), db.open()];
    conns[0]
        .transact(vec![put(Table::Meta, "counter", b"0")])
        .unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, barrier) = (conns[t % 2].clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut conflicts = 0usize;
                for _ in 0..INCREMENTS {
                    loop {
                        let cur = s.get(Table::Meta, "counter").unwrap().unwrap();
                        let n: usize = String::from_utf8(cur.clone()).unwrap().parse().unwrap();
                        match s.transact(vec![
                            Op::Expect {
                                table: Table::Meta,
                                key: "counter".into(),
                                value: Some(cur),
                            },
                            put(Table::Meta, "counter", (n + 1).to_string().as_bytes()),
                        ]) {
                            Ok(()) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        conns[1].get(Table::Meta, "counter").unwrap(),
        Some((THREADS * INCREMENTS).to_string().into_bytes())
    );
}

/// Writers on two connections commit changes with their audit entries chained at the head they
/// read, re-chaining on an audit conflict (what enclava-audit's AuditedStore does): the log is
/// gapless, every committed change has its entry, and no entry exists for a change that lost.
fn concurrent_audited_changes_form_one_gapless_chain(db: &Db) {
    const THREADS: usize = 6;
    const CHANGES: usize = 8;
    let conns = [db.open(), db.open()];
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, barrier) = (conns[t % 2].clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for c in 0..CHANGES {
                    let key = format!("t{t}/c{c}");
                    loop {
                        let next = s.audit_head().unwrap() + 1;
                        match s.transact_audited(
                            vec![put(Table::Secrets, &key, b"v")],
                            vec![format!("{key}@{next}").into_bytes()],
                            next,
                        ) {
                            Ok(()) => break,
                            Err(StoreError::Conflict { table: "audit", .. }) => continue,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = db.open();
    let total = (THREADS * CHANGES) as u64;
    let rows = s.audit_range(1, usize::MAX).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for r in &rows {
        let text = String::from_utf8(r.entry.clone()).unwrap();
        let (key, at) = text.split_once('@').unwrap();
        assert_eq!(
            at,
            r.seq.to_string(),
            "entry chained for the seq it landed at"
        );
        assert!(seen.insert(key.to_string()), "one entry per change");
        assert!(s.get(Table::Secrets, key).unwrap().is_some());
    }
    assert_eq!(
        s.list(Table::Secrets, "", None, usize::MAX).unwrap().len() as u64,
        total
    );
}

/// Entries without a change (every request's entry; one statement on PostgreSQL) land only at
/// the log's next seq: a seq already taken or one that would leave a gap is a conflict on the
/// audit table and writes nothing.
fn audit_only_appends_land_exactly_at_the_next_seq(db: &Db) {
    let s = db.open();
    let conflict = |r: Result<(), StoreError>| {
        assert!(
            matches!(r, Err(StoreError::Conflict { table: "audit", .. })),
            "{r:?}"
        )
    };
    conflict(s.transact_audited(vec![], vec![b"gap".to_vec()], 2));
    conflict(s.transact_audited(vec![], vec![b"zero".to_vec()], 0));
    s.transact_audited(vec![], vec![b"e1".to_vec(), b"e2".to_vec()], 1)
        .unwrap();
    conflict(s.transact_audited(vec![], vec![b"taken".to_vec()], 2));
    conflict(s.transact_audited(vec![], vec![b"taken".to_vec()], 1));
    conflict(s.transact_audited(vec![], vec![b"gap".to_vec()], 5));
    s.transact_audited(vec![], vec![b"e3".to_vec()], 3).unwrap();
    let rows = s.audit_range(1, 100).unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.seq, r.entry.clone()))
            .collect::<Vec<_>>(),
        vec![
            (1, b"e1".to_vec()),
            (2, b"e2".to_vec()),
            (3, b"e3".to_vec())
        ]
    );
}

/// Writers on two connections, half of them appending entries without a change (the
/// single-statement path on PostgreSQL), half committing changes with their entries (the
/// table-lock path), all re-chaining on conflict: one gapless chain, each entry at the seq it
/// was chained for.
fn concurrent_audit_only_appends_and_changes_form_one_gapless_chain(db: &Db) {
    const THREADS: usize = 6;
    const APPENDS: usize = 10;
    let conns = [db.open(), db.open()];
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, barrier) = (conns[t % 2].clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for c in 0..APPENDS {
                    let key = format!("t{t}/c{c}");
                    loop {
                        let next = s.audit_head().unwrap() + 1;
                        let ops = if t % 3 == 0 {
                            vec![put(Table::Secrets, &key, b"v")]
                        } else {
                            vec![]
                        };
                        match s.transact_audited(
                            ops,
                            vec![format!("{key}@{next}").into_bytes()],
                            next,
                        ) {
                            Ok(()) => break,
                            Err(StoreError::Conflict { table: "audit", .. }) => continue,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = db.open();
    let total = (THREADS * APPENDS) as u64;
    let rows = s.audit_range(1, usize::MAX).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for r in &rows {
        let text = String::from_utf8(r.entry.clone()).unwrap();
        let (key, at) = text.split_once('@').unwrap();
        assert_eq!(
            at,
            r.seq.to_string(),
            "entry chained for the seq it landed at"
        );
        assert!(seen.insert(key.to_string()), "one entry per append");
    }
}

// --- PostgreSQL only -------------------------------------------------------------------------

/// Replicas starting at the same moment against an empty database: each migration is applied
/// once (no "relation already exists" race), all of them come up.
#[test]
fn postgres_concurrent_startup_migrates_once() {
    let Some(url) = postgres_url() else { return };
    let config = fresh_postgres_database(&url, "startup");
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (config, barrier) = (config.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::from_config(config, PostgresOptions::default())
                    .map(|s| s.schema_version().unwrap())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), 3);
    }
}

/// A database migrated by a newer release is refused, not silently used with an old schema.
#[test]
fn postgres_schema_newer_than_this_build_is_refused() {
    let Some(url) = postgres_url() else { return };
    let config = fresh_postgres_database(&url, "newer");
    PostgresStore::from_config(config.clone(), PostgresOptions::default()).unwrap();
    admin_sql(
        &url,
        config.get_dbname(),
        "INSERT INTO enclava_schema_version (version) VALUES (99)",
    );
    let err = PostgresStore::from_config(config, PostgresOptions::default())
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 3
            }
        ),
        "{err}"
    );
}

/// A wrong password is a clear error that does not echo any password.
#[test]
fn postgres_wrong_password_is_a_clear_error_without_secrets() {
    let Some(url) = postgres_url() else { return };
    let mut config = tokio_postgres::Config::from_str(&url).unwrap();
    config.password("definitely-wrong-pw");
    let err = PostgresStore::from_config(config, PostgresOptions::default())
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("cannot connect to the database"), "{msg}");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(!msg.contains("definitely-wrong-pw"), "{msg}");
    // A refusal by the database is a configuration error, not an outage to wait out.
    assert!(!err.is_unavailable(), "{err:?}");
    let real = tokio_postgres::Config::from_str(&url).unwrap();
    let real_pw = String::from_utf8(real.get_password().unwrap().to_vec()).unwrap();
    assert!(!msg.contains(&real_pw), "{msg}");
}

/// The relaxed connection (replay set of redeemed challenges) reads and writes the same data.
#[test]
fn postgres_relaxed_connection_shares_the_database() {
    let Some(url) = postgres_url() else { return };
    let config = fresh_postgres_database(&url, "relaxed");
    let strict = PostgresStore::from_config(config.clone(), PostgresOptions::default()).unwrap();
    let relaxed = PostgresStore::from_config(
        config,
        PostgresOptions {
            relaxed: true,
            ..Default::default()
        },
    )
    .unwrap();
    relaxed
        .transact(vec![put(Table::RedeemedNonces, "n", b"")])
        .unwrap();
    assert_eq!(
        strict.get(Table::RedeemedNonces, "n").unwrap(),
        Some(vec![])
    );
}

/// A store dropped inside an async runtime (the server's case) does not panic, and a store can
/// be used from async code that blocks in place.
#[test]
fn postgres_store_is_usable_and_droppable_inside_a_runtime() {
    let Some(url) = postgres_url() else { return };
    let config = fresh_postgres_database(&url, "inruntime");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = PostgresStore::from_config(config, PostgresOptions::default()).unwrap();
        s.transact(vec![put(Table::Meta, "m", b"1")]).unwrap();
        assert!(s.get(Table::Meta, "m").unwrap().is_some());
        drop(s);
    });
}

/// A Unix-socket connection (`host=/path`): the TLS connector must not refuse it for having no
/// server name (PostgreSQL never uses TLS on a socket).
#[test]
fn postgres_connects_over_a_unix_socket() {
    let Some(url) = postgres_url() else { return };
    let Ok(socket_dir) = std::env::var("ENCLAVA_TEST_POSTGRES_SOCKET_DIR") else {
        panic!("ENCLAVA_TEST_POSTGRES_SOCKET_DIR is not set: run through scripts/postgres-test.sh");
    };
    let tcp = fresh_postgres_database(&url, "socket");
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(&socket_dir)
        .port(tcp.get_ports()[0])
        .user(tcp.get_user().unwrap())
        .password(tcp.get_password().unwrap())
        .dbname(tcp.get_dbname().unwrap());
    let s = PostgresStore::from_config(config, PostgresOptions::default()).unwrap();
    s.transact(vec![put(Table::Meta, "m", b"1")]).unwrap();
    assert!(s.get(Table::Meta, "m").unwrap().is_some());
}

/// The database drops every connection of the store (a restart, a failover, an administrator's
/// `pg_terminate_backend`): the store reconnects by itself, no restart of the process.
#[test]
fn postgres_store_reconnects_after_its_connections_are_killed() {
    let Some(url) = postgres_url() else { return };
    let config = fresh_postgres_database(&url, "reconnect");
    let s = PostgresStore::from_config(config.clone(), PostgresOptions::default()).unwrap();
    // Open several pooled connections.
    for i in 0..16 {
        s.transact(vec![put(Table::Meta, &format!("m{i}"), b"1")])
            .unwrap();
    }
    admin_sql(
        &url,
        None,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            config.get_dbname().unwrap()
        ),
    );
    // The drivers notice the closed sockets; every later call gets a fresh connection.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for i in 0..16 {
        assert!(
            s.get(Table::Meta, &format!("m{i}")).unwrap().is_some(),
            "call {i} after the connections were killed"
        );
    }
}

/// TLS (rustls on aws-lc-rs) to a server whose certificate chains to a private CA: with the CA
/// the connection is encrypted (the server's own view, pg_stat_ssl, says so); without it the
/// certificate is refused and nothing is sent in clear instead (sslmode=require).
#[test]
fn postgres_tls_verifies_the_server_certificate() {
    let Some(url) = postgres_url() else { return };
    let Ok(ca_file) = std::env::var("ENCLAVA_TEST_POSTGRES_CA") else {
        panic!("ENCLAVA_TEST_POSTGRES_CA is not set: run through scripts/postgres-test.sh");
    };
    let mut config = fresh_postgres_database(&url, "tls");
    config.ssl_mode(tokio_postgres::config::SslMode::Require);
    let err = PostgresStore::from_config(config.clone(), PostgresOptions::default())
        .err()
        .expect("an unknown CA is refused");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let s = PostgresStore::from_config(
        config.clone(),
        PostgresOptions {
            ca_pem: Some(std::fs::read(ca_file).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    s.transact(vec![put(Table::Meta, "m", b"1")]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let encrypted: i64 = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let n = client
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                 WHERE datname = $1 AND ssl",
                &[&config.get_dbname().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        drop(client);
        let _ = task.await;
        n
    });
    assert!(encrypted >= 1, "the store's connection is encrypted");
    drop(s);
}

/// A database of schema version 1 (before `kbs_sessions`) is migrated to the current version
/// when a newer build opens it, and the new tables work.
#[test]
fn postgres_version_1_database_is_migrated_to_current() {
    let Some(url) = postgres_url() else { return };
    let config = fresh_postgres_database(&url, "upgrade");
    PostgresStore::from_config(config.clone(), PostgresOptions::default()).unwrap();
    // Back to what version 1 left behind.
    admin_sql(
        &url,
        config.get_dbname(),
        "DROP TABLE kbs_sessions, certificates, certificate_versions, deleted_certificates, \
         certificate_operations, certificate_issuers; \
         DELETE FROM enclava_schema_version WHERE version >= 2",
    );
    let s = PostgresStore::from_config(config, PostgresOptions::default()).unwrap();
    assert_eq!(s.schema_version().unwrap(), 3);
    s.transact(vec![
        put(Table::KbsSessions, "s1", b"{}"),
        put(Table::Certificates, "c1", b"{}"),
    ])
    .unwrap();
    assert_eq!(
        s.get(Table::KbsSessions, "s1").unwrap().as_deref(),
        Some(&b"{}"[..])
    );
    assert_eq!(
        s.get(Table::Certificates, "c1").unwrap().as_deref(),
        Some(&b"{}"[..])
    );
}

/// A database of schema version 2 (before the certificate tables, issue 12) gets exactly the
/// five certificate tables, and keeps its rows.
#[test]
fn postgres_version_2_database_is_migrated_to_3() {
    let Some(url) = postgres_url() else { return };
    let config = fresh_postgres_database(&url, "upgrade2");
    let s = PostgresStore::from_config(config.clone(), PostgresOptions::default()).unwrap();
    s.transact(vec![put(Table::Keys, "k", b"1")]).unwrap();
    drop(s);
    admin_sql(
        &url,
        config.get_dbname(),
        "DROP TABLE certificates, certificate_versions, deleted_certificates, \
         certificate_operations, certificate_issuers; \
         DELETE FROM enclava_schema_version WHERE version = 3",
    );
    let s = PostgresStore::from_config(config, PostgresOptions::default()).unwrap();
    assert_eq!(s.schema_version().unwrap(), 3);
    assert_eq!(s.get(Table::Keys, "k").unwrap().as_deref(), Some(&b"1"[..]));
    for t in [
        Table::Certificates,
        Table::CertificateVersions,
        Table::DeletedCertificates,
        Table::CertificateOperations,
        Table::CertificateIssuers,
    ] {
        s.transact(vec![put(t, "x", b"{}")]).unwrap();
        assert_eq!(s.get(t, "x").unwrap().as_deref(), Some(&b"{}"[..]));
    }
}
