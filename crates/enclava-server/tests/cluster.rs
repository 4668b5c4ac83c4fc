//! Several real servers ("replicas") on one PostgreSQL database, over HTTPS: background work runs
//! on one replica and moves when it dies, concurrent appends make one verified audit chain,
//! `operator init` happens once per cluster and every replica unseals with the same shares, a dev
//! replica joins with a copy of the first one's data directory, and a replica that loses the
//! database answers 503 (readiness included) and recovers by itself.
//!
//! The PostgreSQL cluster comes from `ENCLAVA_TEST_POSTGRES_URL` (`scripts/postgres-test.sh`);
//! without it these tests fail under `CI=true` and are skipped with a notice otherwise. The
//! outage test cuts the network between the replica and the database with a TCP relay of its own
//! (the shared test cluster keeps serving the other tests running in parallel).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::*;
use common::*;
use enclava_audit::head_file;
use enclava_server::cluster::{LEASE_KEY, LeaseRecord};
use enclava_server::{PartialConfig, ServerConfig, StoreUrl};
use enclava_store::{PostgresStore, Store, Table};
use serde_json::json;

const V: &str = "api-version=7.5";
const PUBLIC_URL: &str = "https://vault.cluster.test";

fn config(
    data: &Path,
    store: &str,
    dev: bool,
    tweak: impl FnOnce(&mut PartialConfig),
) -> ServerConfig {
    let mut p = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(data.to_path_buf()),
        dev: Some(dev),
        store: Some(StoreUrl::new(store)),
        // Replicas behind one load balancer share the public URL: it is the issuer of the
        // tokens every replica accepts.
        public_url: Some(PUBLIC_URL.into()),
        ..Default::default()
    };
    tweak(&mut p);
    p.resolve().expect("config")
}

/// A 3 s lease (renewed every second) and a maintenance pass every second: short enough for a
/// test, long enough that a loaded machine does not miss renewals.
fn short_lease(p: &mut PartialConfig) {
    p.lease_ttl_secs = Some(3);
    p.maintenance_interval_secs = Some(1);
}

/// A second replica's data directory: a copy of the first one's (dev unseal key, TLS CA and
/// certificate, admin token, signed head file).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn runs(t: &TestServer) -> u64 {
    t.server
        .state
        .cluster
        .background_runs
        .load(Ordering::Relaxed)
}

fn lease(store: &PostgresStore) -> Option<LeaseRecord> {
    store
        .get(Table::Meta, LEASE_KEY)
        .unwrap()
        .map(|v| serde_json::from_slice(&v).unwrap())
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn background_work_runs_on_one_replica_and_moves_when_the_holder_dies() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "cl", "lease");
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_with(config(&da, &url, true, short_lease));
    copy_dir(&da, &db);
    let b = start_with(config(&db, &url, true, short_lease));
    let store = PostgresStore::connect(&url).unwrap();

    // Both replicas run their loops for several maintenance intervals: one runs the work.
    wait_until("a maintenance pass", Duration::from_secs(10), || {
        runs(&a) + runs(&b) >= 3
    });
    let (ra, rb) = (runs(&a), runs(&b));
    assert!(
        (ra == 0) != (rb == 0),
        "exactly one replica runs the background work: a={ra} b={rb}"
    );
    let (holder, other) = if ra > 0 { (a, b) } else { (b, a) };
    let record = lease(&store).expect("lease recorded");
    assert_eq!(record.holder, holder.server.state.cluster.replica_id);
    assert!(holder.server.state.cluster.holds_lease());
    assert!(!other.server.state.cluster.holds_lease());

    // The holder dies without giving the lease back (its runtime is gone, like a SIGKILL).
    let died = Instant::now();
    drop(holder);
    wait_until("the takeover", Duration::from_secs(15), || runs(&other) > 0);
    let took = died.elapsed();
    // Not before the dead holder's lease expired (3 s after its last renewal, at most 1 s
    // before it died), and within about one lease after.
    assert!(took >= Duration::from_secs(1), "took over after {took:?}");
    assert!(took < Duration::from_secs(8), "took over after {took:?}");
    let record = lease(&store).expect("lease recorded");
    assert_eq!(record.holder, other.server.state.cluster.replica_id);

    // A graceful stop gives the lease back.
    stop(other);
    assert_eq!(lease(&store), None);
}

#[test]
fn replicas_appending_concurrently_make_one_verified_chain() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "cl", "chain");
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_with(config(&da, &url, true, |_| {}));
    copy_dir(&da, &db);
    let b = start_with(config(&db, &url, true, |_| {}));
    let admin = admin_token(&da);

    // Writes (each commits with its audit entry) and secret reads (durable entries) on both
    // replicas at once.
    std::thread::scope(|s| {
        for (n, t) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
            let admin = admin.clone();
            s.spawn(move || {
                for i in 0..15 {
                    let name = format!("s-{n}-{i}");
                    let r = t.put(
                        &format!("/secrets/{name}?{V}"),
                        Some(&admin),
                        &json!({"value": format!("v{i}")}),
                    );
                    assert_eq!(r.status, 200, "{}", r.text);
                    let r = t.get(&format!("/secrets/{name}?{V}"), Some(&admin));
                    assert_eq!(r.status, 200, "{}", r.text);
                }
            });
        }
    });
    // Each replica signs a checkpoint over the whole chain (it catches up with the other's
    // entries first) and writes its signed head file.
    for t in [&a, &b] {
        t.rt.block_on(enclava_server::audit_tick_once(&t.server.state, true));
    }
    stop(a);
    stop(b);

    let store = PostgresStore::connect(&url).unwrap();
    let pk = store
        .get(Table::Meta, "audit/checkpoint-public-key")
        .unwrap()
        .expect("checkpoint key recorded");
    assert!(store.audit_head().unwrap() >= 180);
    for data in [&da, &db] {
        let head = head_file::read(&data.join(head_file::HEAD_FILE))
            .unwrap()
            .expect("signed head file");
        let report = enclava_audit::verify_with_head(&store, &pk, Some(&head)).unwrap();
        assert!(report.first_problem.is_none(), "{report:?}");
        assert!(report.checkpoints_ok, "{report:?}");
        assert!(report.first_checkpoint_problem.is_none(), "{report:?}");
        assert_eq!(report.verified, report.entries, "{report:?}");
        assert_eq!(report.signed_head, Some(head.seq));
    }

    // A replica restarted after the other one appended does not mistake that for tampering.
    let b = start_with(config(&db, &url, true, |_| {}));
    let r = b.put(
        &format!("/secrets/after?{V}"),
        Some(&admin),
        &json!({"value": "x"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    stop(b);
    let a = start_with(config(&da, &url, true, |_| {}));
    assert_eq!(a.server.state.audit_log.head_file_problem().unwrap(), None);
    let entries = a.audit_entries(&admin);
    assert!(
        !entries
            .iter()
            .any(|e| e["action"] == "audit/tamper-detected"),
        "no tampering reported"
    );
    stop(a);
}

#[test]
fn operator_init_happens_once_per_cluster_and_every_replica_unseals_with_the_shares() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "cl", "init");
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_with(config(&da, &url, false, |_| {}));
    let b = start_with(config(&db, &url, false, |_| {}));
    let token = |d: &Path| {
        std::fs::read_to_string(d.join("init.token"))
            .unwrap()
            .trim()
            .to_string()
    };
    let (ta, tb) = (token(&da), token(&db));

    let r = a.post(
        "/operator/init",
        Some(&ta),
        &json!({"shares": 3, "threshold": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let shares: Vec<String> = r.body["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    // The second replica sees the cluster initialized, and its own init is refused.
    let s = b.get("/operator/status", None);
    assert_eq!(s.body["initialized"], true, "{}", s.text);
    assert_eq!(s.body["sealed"], true, "{}", s.text);
    let r = b.post(
        "/operator/init",
        Some(&tb),
        &json!({"shares": 1, "threshold": 1}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("already initialized"), "{}", r.text);
    // Nothing of the first initialization was touched: both unseal with its shares.
    for t in [&a, &b] {
        assert_eq!(t.get("/readyz", None).code(), "VaultSealed");
        for s in &shares[..2] {
            let r = t.post("/operator/unseal", None, &json!({"share": s}));
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let r = t.get("/readyz", None);
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // One vault: what one replica writes, the other reads.
    let admin = admin_token(&da);
    let r = a.put(
        &format!("/secrets/shared?{V}"),
        Some(&admin),
        &json!({"value": "one vault"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = b.get(&format!("/secrets/shared?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"], "one vault");
    stop(a);
    stop(b);
    // A restart of the second replica finds the cluster initialized: its init token is gone.
    let b = start_with(config(&db, &url, false, |_| {}));
    assert!(!db.join("init.token").exists());
    assert_eq!(b.get("/readyz", None).code(), "VaultSealed");
    stop(b);
}

#[test]
fn two_replicas_racing_to_initialize_give_one_vault() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "cl", "initrace");
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_with(config(&da, &url, false, |_| {}));
    let b = start_with(config(&db, &url, false, |_| {}));
    let token = |d: &Path| {
        std::fs::read_to_string(d.join("init.token"))
            .unwrap()
            .trim()
            .to_string()
    };
    let (ta, tb) = (token(&da), token(&db));
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| {
            a.post(
                "/operator/init",
                Some(&ta),
                &json!({"shares": 1, "threshold": 1}),
            )
        });
        let hb = s.spawn(|| {
            b.post(
                "/operator/init",
                Some(&tb),
                &json!({"shares": 1, "threshold": 1}),
            )
        });
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let mut statuses = [ra.status, rb.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "a: {} / b: {}", ra.text, rb.text);
    let winner = if ra.status == 200 { &ra } else { &rb };
    let share = winner.body["shares"][0].as_str().unwrap().to_string();
    // The winner's share unseals both replicas: one root key, not two.
    for t in [&a, &b] {
        let r = t.post("/operator/unseal", None, &json!({"share": share}));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["sealed"], false, "{}", r.text);
        assert_eq!(t.get("/readyz", None).status, 200);
    }
    stop(a);
    stop(b);
}

#[test]
fn a_dev_replica_joins_with_a_copy_of_the_first_data_directory() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "cl", "dev");
    let dir = tempfile::tempdir().unwrap();
    let (da, db, dc) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let a = start_with(config(&da, &url, true, |_| {}));
    let admin = admin_token(&da);
    let r = a.put(
        &format!("/secrets/dev?{V}"),
        Some(&admin),
        &json!({"value": "1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    copy_dir(&da, &db);
    let b = start_with(config(&db, &url, true, |_| {}));
    assert_eq!(b.get("/readyz", None).status, 200);
    let r = b.get(&format!("/secrets/dev?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"], "1");

    // A dev replica with a data directory of its own cannot join: a clear start-up error, and
    // the shared vault is untouched.
    let err =
        b.rt.block_on(enclava_server::start(config(&dc, &url, true, |_| {})))
            .err()
            .expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("already initialized"), "{msg}");
    assert!(msg.contains("copy"), "{msg}");
    let r = a.get(&format!("/secrets/dev?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    stop(a);
    stop(b);
}

/// A TCP relay between a replica and the database that can cut the network (close every
/// connection and refuse new ones) and restore it.
struct Relay {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                {
                    let mut o = open2.lock().unwrap();
                    o.push(client.try_clone().unwrap());
                    o.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_replica_that_loses_the_database_answers_503_and_recovers_by_itself() {
    let Some(base) = postgres_url() else { return };
    let url = fresh_database_url(&base, "cl", "outage");
    // postgres://user:pw@HOST:PORT/db?q -> the same through the relay.
    let at = url.rfind('@').unwrap() + 1;
    let slash = at + url[at..].find('/').unwrap();
    let upstream: std::net::SocketAddr = url[at..slash].parse().unwrap();
    let relay = Relay::start(upstream);
    let relayed = format!("{}{}{}", &url[..at], relay.addr, &url[slash..]);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = start_with(config(&data, &relayed, true, |_| {}));
    let admin = admin_token(&data);
    let r = t.put(
        &format!("/secrets/s?{V}"),
        Some(&admin),
        &json!({"value": "before"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(t.get("/readyz", None).status, 200);

    relay.cut();
    // Readiness turns red within the probe's cache time.
    wait_until("readyz 503", Duration::from_secs(5), || {
        t.get("/readyz", None).status == 503
    });
    let r = t.get("/readyz", None);
    assert_eq!(r.code(), "StorageUnavailable", "{}", r.text);
    assert!(r.header("retry-after").is_some());
    // Vault operations answer 503 with Retry-After, promptly, never 500.
    let calls: [(&str, &str, Option<serde_json::Value>); 4] = [
        ("GET", "/secrets/s", None),
        ("PUT", "/secrets/s", Some(json!({"value": "during"}))),
        ("POST", "/keys/k/create", Some(json!({"kty": "EC"}))),
        ("GET", "/keys", None),
    ];
    for (method, path, body) in &calls {
        let started = Instant::now();
        let body = body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
        let r = t.call(
            method,
            &format!("{path}?{V}"),
            Some(&admin),
            body.as_deref(),
            &[("Content-Type", "application/json")],
        );
        assert_eq!(r.status, 503, "{method} {path}: {}", r.text);
        assert!(r.header("retry-after").is_some(), "{method} {path}");
        assert!(
            matches!(r.code(), "StorageUnavailable" | "AuditUnavailable"),
            "{method} {path}: {}",
            r.text
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{method} {path} took {:?}",
            started.elapsed()
        );
    }

    // The database comes back: the replica recovers without a restart.
    relay.restore();
    wait_until("readyz 200", Duration::from_secs(15), || {
        t.get("/readyz", None).status == 200
    });
    let mut ok = false;
    for _ in 0..5 {
        let r = t.put(
            &format!("/secrets/s?{V}"),
            Some(&admin),
            &json!({"value": "after"}),
        );
        if r.status == 200 {
            ok = true;
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(ok, "writes succeed again");
    let r = t.get(&format!("/secrets/s?{V}"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["value"], "after");
    stop(t);

    // Nothing of the refused requests reached the chain, and it verifies.
    let store = PostgresStore::connect(&url).unwrap();
    let pk = store
        .get(Table::Meta, "audit/checkpoint-public-key")
        .unwrap()
        .unwrap();
    let report = enclava_audit::verify(&store, &pk).unwrap();
    assert!(report.first_problem.is_none(), "{report:?}");
    assert_eq!(report.verified, report.entries);
}
