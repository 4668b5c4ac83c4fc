//! The failure tests of the replicated deployment (issue 11), with real processes: the
//! `enclava` binary as replicas on a shared PostgreSQL store, PostgreSQL from Debian's packages
//! (primary and synchronous hot standby), HAProxy in front. See `cluster/mod.rs` for the harness.
//!
//! 1. `sigkill_one_of_three_replicas_behind_haproxy`: one replica SIGKILLed mid-load and
//!    restarted; every acknowledged write is there, clients saw only retryable errors, the audit
//!    chain verifies.
//! 2. `primary_lost_standby_promoted_replicas_carry_on`: the database primary stopped hard, the
//!    synchronous standby promoted; the replicas follow through the multi-host URL, nothing
//!    acknowledged is lost.
//! 3. `database_down_30s_replicas_answer_503_and_recover`: 503 (never 500, never a hang) while
//!    the database is away, and unattended recovery.
//! 4. `two_replicas_racing_end_in_a_serial_order`: concurrent rotation, purge/recover and
//!    role-assignment changes on two replicas end in a state some serial order produces.
//!
//! PostgreSQL and HAProxy missing: the tests fail under `CI=true` (scripts/test.sh installs both)
//! and are skipped with a notice otherwise. The tests run one at a time (`cluster::exclusive`).

mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cluster::*;
use serde_json::{Value, json};

/// The first replica initializes the vault (development mode) and admits simulated evidence;
/// the others join with a copy of its data directory (its development unseal key and CA).
fn replicas(store: &str, public_url: &str, dir: &std::path::Path, n: usize) -> Vec<Replica> {
    let first = Replica::start("r0", store, public_url, &dir.join("r0"));
    // Set before the other replicas start: the policy is not what these tests are about.
    allow_sim(&first.client());
    let mut all = vec![];
    for i in 1..n {
        let name = format!("r{i}");
        all.push(Replica::join(&name, &first, &dir.join(&name)));
    }
    all.insert(0, first);
    all
}

/// The one public URL of a cluster without a load balancer in the test (what a load balancer
/// would listen on; nothing needs to).
fn public_url() -> String {
    format!("https://127.0.0.1:{}", free_port())
}

fn assert_clean(rep: &LoadReport, what: &str) {
    eprintln!(
        "{what}: {} operations ok ({} attestations, {} secrets, {} keys acknowledged), retried {:?}, max latency {:?}",
        rep.ok,
        rep.attestations,
        rep.secrets.len(),
        rep.keys.len(),
        rep.retried,
        rep.max_latency
    );
    assert!(
        rep.bad.is_empty(),
        "{what}: {} errors a retry does not fix (or wrong data): {:#?}",
        rep.bad.len(),
        rep.bad.iter().take(40).collect::<Vec<_>>()
    );
    for kind in rep.retried.keys() {
        assert!(
            ["connection error", "502", "503"].contains(&kind.as_str()),
            "{kind}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL one of three replicas behind HAProxy

#[test]
fn sigkill_one_of_three_replicas_behind_haproxy() {
    let _one_at_a_time = exclusive();
    let (Some(pg_bin), Some(haproxy_bin)) = (require_postgres(), require_haproxy()) else {
        return;
    };
    let pg = PgCluster::single(&pg_bin);
    let store = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let lb_port = free_port();
    let public = format!("https://127.0.0.1:{lb_port}");
    let mut rs = replicas(&store, &public, dir.path(), 3);
    let lb = HaProxy::start(&haproxy_bin, lb_port, &[&rs[0], &rs[1], &rs[2]]);
    for r in &rs {
        r.client().wait_ready(Duration::from_secs(30));
    }
    let client = Arc::new(Client::new(&lb.url(), &rs[0].ca(), &rs[0].admin_token()));
    client.wait_ready(Duration::from_secs(30));
    // Let the health checks see every replica up (rise 2 x 300 ms).
    std::thread::sleep(Duration::from_secs(1));

    let load = run_load(
        vec![client.clone()],
        6,
        100_000,
        Duration::from_secs(30),
        "kill",
    );
    std::thread::sleep(Duration::from_secs(4));
    rs[1].kill();
    std::thread::sleep(Duration::from_secs(4));
    let killed = Instant::now();
    rs[1].restart();
    let restarted = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let rep = load.stop();
    // The load ran through the kill and after the restart.
    assert!(
        rep.ok_after(killed) > 0 && rep.ok_after(restarted) > 0,
        "the load did not run through the kill and restart: {} ok in all",
        rep.ok
    );

    assert_clean(&rep, "SIGKILL behind HAProxy");
    assert!(rep.ok >= 30, "too little load to mean anything: {}", rep.ok);
    assert!(rep.attestations > 0, "no attestation completed");
    // Every acknowledged write, through the load balancer and on the restarted replica itself.
    assert_acked_writes_present(&client, &rep);
    assert_acked_writes_present(&rs[1].client(), &rep);
    assert_audit_verifies(&store);
    drop(lb);
}

// ---------------------------------------------------------------------------------------------
// 2. PostgreSQL failover: primary stopped hard, synchronous standby promoted

#[test]
fn primary_lost_standby_promoted_replicas_carry_on() {
    let _one_at_a_time = exclusive();
    let Some(pg_bin) = require_postgres() else {
        return;
    };
    let pg = PgCluster::with_sync_standby(&pg_bin);
    let store = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let mut rs = replicas(&store, &public_url(), dir.path(), 2);
    let clients: Vec<Arc<Client>> = rs.iter().map(|r| Arc::new(r.client())).collect();
    let pids: Vec<u32> = rs.iter().map(|r| r.pids[0]).collect();

    let load = run_load(
        clients.clone(),
        4,
        100_000,
        Duration::from_secs(45),
        "failover",
    );
    std::thread::sleep(Duration::from_secs(4));
    let primary_lost = Instant::now();
    pg.primary.stop_immediate();
    let standby = pg.standby.as_ref().expect("standby");
    std::thread::sleep(Duration::from_millis(500));
    standby.promote();
    assert_eq!(
        pg.psql(standby.port, "SELECT pg_is_in_recovery()").trim(),
        "f",
        "the standby was not promoted:\n{}",
        pg.log()
    );
    let promoted = Instant::now();
    // The load carries on against the promoted standby.
    std::thread::sleep(Duration::from_secs(8));
    let rep = load.stop();
    assert_clean(&rep, "primary failover");
    // The load ran through the failover and carried on after it.
    assert!(
        rep.ok_after(primary_lost) > 0 && rep.ok_after(promoted + Duration::from_secs(2)) > 0,
        "no operation completed after the failover: {} in all",
        rep.ok
    );

    // The same replica processes (no restart) write through the promoted standby.
    for (r, pid) in rs.iter_mut().zip(&pids) {
        assert!(r.alive(), "replica {} died:\n{}", r.name, r.log_text());
        assert_eq!(r.pids, vec![*pid]);
        let c = r.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let w = c.put(
                &format!("/secrets/after-failover-{}?{V}", r.name),
                &json!({"value": "still here"}),
            );
            if w.ok() {
                break;
            }
            assert!(
                w.retryable() && Instant::now() < deadline,
                "replica {} does not write after the failover ({:?} after promotion): {} {}",
                r.name,
                promoted.elapsed(),
                w.kind(),
                w.text
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    // Synchronous replication: nothing acknowledged before the primary died is missing on the
    // promoted standby.
    for c in &clients {
        assert_acked_writes_present(c, &rep);
    }
    assert_audit_verifies(&store);
}

// ---------------------------------------------------------------------------------------------
// 3. Database down for 30 s

/// The longest a replica may take to answer while its database is unreachable.
const OUTAGE_ANSWER_BOUND: Duration = Duration::from_secs(10);
const OUTAGE: Duration = Duration::from_secs(30);

#[test]
fn database_down_30s_replicas_answer_503_and_recover() {
    let _one_at_a_time = exclusive();
    let Some(pg_bin) = require_postgres() else {
        return;
    };
    let pg = PgCluster::single(&pg_bin);
    let store = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let mut rs = replicas(&store, &public_url(), dir.path(), 2);
    let clients: Vec<Arc<Client>> = rs.iter().map(|r| Arc::new(r.client())).collect();

    // Acknowledged writes before the outage.
    let before = run_load(clients.clone(), 2, 10, Duration::from_secs(20), "pre").finish();
    assert_clean(&before, "before the outage");
    assert!(!before.secrets.is_empty());

    pg.primary.stop_immediate();
    let down = Instant::now();
    // Clients keep calling both replicas directly for the whole outage.
    let outage: Vec<_> = (0..4)
        .map(|w| {
            let c = clients[w % 2].clone();
            let secrets: Vec<(String, String)> = before.secrets.clone().into_iter().collect();
            std::thread::spawn(move || outage_worker(&c, w, &secrets))
        })
        .collect();
    // Readiness: both replicas say they cannot serve (the load balancer takes them out).
    // Every violation, reported together at the end (one run shows all of them).
    let mut problems: Vec<String> = vec![];
    std::thread::sleep(Duration::from_secs(5));
    for c in &clients {
        let r = c.get("/readyz");
        if r.status != Some(503) {
            problems.push(format!(
                "{}: /readyz with the database down: {} {}",
                c.base,
                r.kind(),
                excerpt(&r.text)
            ));
        }
    }
    let mut seen = OutageReport::default();
    for w in outage {
        let r = w.join().expect("outage worker");
        seen.calls += r.calls;
        seen.unavailable += r.unavailable;
        seen.ok += r.ok;
        seen.bad.extend(r.bad);
        seen.max_latency = seen.max_latency.max(r.max_latency);
        seen.acked_secrets.extend(r.acked_secrets);
    }
    eprintln!(
        "outage: {} calls, {} x 503, {} x 2xx, max latency {:?}",
        seen.calls, seen.unavailable, seen.ok, seen.max_latency
    );
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for b in &seen.bad {
        *kinds
            .entry(
                b.split(": ")
                    .nth(1)
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect(),
            )
            .or_default() += 1;
    }
    if !seen.bad.is_empty() {
        problems.push(format!(
            "during the outage, {} answers other than 2xx/503 (or slower than {OUTAGE_ANSWER_BOUND:?}), by kind {kinds:?}, e.g. {:#?}",
            seen.bad.len(),
            seen.bad.iter().take(8).collect::<Vec<_>>()
        ));
    }
    if seen.unavailable == 0 {
        problems.push(format!("no 503 during the outage: {} calls", seen.calls));
    }
    if seen.max_latency > OUTAGE_ANSWER_BOUND {
        problems.push(format!(
            "an answer took {:?} during the outage (bound {OUTAGE_ANSWER_BOUND:?})",
            seen.max_latency
        ));
    }
    assert!(down.elapsed() >= OUTAGE);

    // The database returns; the same processes recover without a restart.
    pg.primary.start();
    let back = Instant::now();
    for (r, c) in rs.iter_mut().zip(&clients) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = c.get("/readyz");
            let w = c.put(
                &format!("/secrets/after-outage-{}?{V}", r.name),
                &json!({"value": "recovered"}),
            );
            if ready.status == Some(200) && w.ok() {
                break;
            }
            if Instant::now() > deadline {
                problems.push(format!(
                    "replica {} not recovered {:?} after the database returned: readyz {} {}, write {} {}",
                    r.name,
                    back.elapsed(),
                    ready.kind(),
                    excerpt(&ready.text),
                    w.kind(),
                    excerpt(&w.text)
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(r.alive(), "replica {} died:\n{}", r.name, r.log_text());
        assert_eq!(r.pids.len(), 1, "replica {} was restarted", r.name);
    }
    for p in &problems {
        eprintln!("PROBLEM: {p}");
    }
    for c in &clients {
        assert_acked_writes_present(c, &before);
        for (name, value) in &seen.acked_secrets {
            let r = until_final(|| c.get(&format!("/secrets/{name}?{V}")));
            assert_eq!(r.body["value"], json!(value), "{}", r.text);
        }
    }
    // And the load runs normally again.
    let after = run_load(clients.clone(), 2, 10, Duration::from_secs(20), "post").finish();
    assert_clean(&after, "after the outage");
    assert_audit_verifies(&store);
    assert!(problems.is_empty(), "database outage: {problems:#?}");
}

#[derive(Debug, Default)]
struct OutageReport {
    calls: u64,
    unavailable: u64,
    ok: u64,
    bad: Vec<String>,
    max_latency: Duration,
    acked_secrets: Vec<(String, String)>,
}

/// Calls for [`OUTAGE`]: writes, reads of acknowledged secrets, key creation, attestation. Every
/// answer must be a 2xx or a 503, within [`OUTAGE_ANSWER_BOUND`]; no connection error (the
/// replica must answer, not crash or hang).
fn outage_worker(c: &Client, w: usize, secrets: &[(String, String)]) -> OutageReport {
    let mut rep = OutageReport::default();
    let start = Instant::now();
    let mut i = 0usize;
    while start.elapsed() < OUTAGE {
        let (what, r) = match i % 4 {
            0 => {
                let name = format!("outage-{w}-{i}");
                let r = c.put(&format!("/secrets/{name}?{V}"), &json!({"value": "x"}));
                if r.ok() {
                    rep.acked_secrets.push((name.clone(), "x".into()));
                }
                (format!("PUT secret {name}"), r)
            }
            1 => {
                let (name, value) = &secrets[i % secrets.len()];
                let r = c.get(&format!("/secrets/{name}?{V}"));
                if r.ok() && r.body["value"] != json!(value) {
                    rep.bad.push(format!("read {name}: wrong data: {}", r.text));
                }
                (format!("GET secret {name}"), r)
            }
            2 => {
                let name = format!("outage-k-{w}-{i}");
                let r = c.post(
                    &format!("/keys/{name}/create?{V}"),
                    &json!({"kty": "EC", "crv": "P-256"}),
                );
                (format!("create key {name}"), r)
            }
            _ => {
                let ch = c.get("/challenge");
                let r = match ch.body["nonce"].as_str().filter(|_| ch.ok()) {
                    Some(nonce) => c.post("/attest/native", &sim_request(nonce)),
                    None => ch,
                };
                ("attest".to_string(), r)
            }
        };
        rep.calls += 1;
        rep.max_latency = rep.max_latency.max(r.elapsed);
        match r.status {
            Some(503) => rep.unavailable += 1,
            Some(s) if (200..300).contains(&s) => rep.ok += 1,
            _ => rep
                .bad
                .push(format!("{what}: {} {}", r.kind(), excerpt(&r.text))),
        }
        if r.elapsed > OUTAGE_ANSWER_BOUND {
            rep.bad
                .push(format!("{what}: answered after {:?}", r.elapsed));
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    rep
}

// ---------------------------------------------------------------------------------------------
// 4. Two replicas racing

/// Run `a` and `b` at the same instant on two threads. A retryable answer (503: refused,
/// nothing changed) is retried, as a client would, until the request gets a final answer.
fn race(a: impl Fn() -> Resp + Send + Sync, b: impl Fn() -> Resp + Send + Sync) -> (Resp, Resp) {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let ha = s.spawn(|| {
            barrier.wait();
            until_final(&a)
        });
        let hb = s.spawn(|| {
            barrier.wait();
            until_final(&b)
        });
        (ha.join().expect("racer a"), hb.join().expect("racer b"))
    })
}

fn version_of(kid: &Value) -> String {
    kid.as_str()
        .and_then(|k| k.rsplit('/').next())
        .unwrap_or("")
        .to_string()
}

/// Security-relevant changes reach every replica within 1 s (issue 11); wait a little more
/// before comparing the replicas' views.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn two_replicas_racing_end_in_a_serial_order() {
    let _one_at_a_time = exclusive();
    let Some(pg_bin) = require_postgres() else {
        return;
    };
    let pg = PgCluster::single(&pg_bin);
    let store = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let rs = replicas(&store, &public_url(), dir.path(), 2);
    let (a, b) = (rs[0].client(), rs[1].client());
    let both = [&a, &b];
    // Every state that no serial order produces, reported together at the end (one run shows
    // all of them).
    let torn = std::sync::Mutex::new(Vec::<String>::new());
    let check = |ok: bool, what: String| {
        if !ok {
            eprintln!("TORN: {what}");
            torn.lock().unwrap().push(what);
        }
    };

    // --- concurrent rotation of one key: each successful rotation adds exactly one version ---
    let r = until_final(|| {
        a.post(
            &format!("/keys/race-rot/create?{V}"),
            &json!({"kty": "EC", "crv": "P-256"}),
        )
    });
    assert_eq!(r.status, Some(200), "{}", r.text);
    let mut versions = vec![version_of(&r.body["key"]["kid"])];
    let mut last_round = vec![];
    for _ in 0..6 {
        let path = format!("/keys/race-rot/rotate?{V}");
        let (ra, rb) = race(|| a.post(&path, &json!({})), || b.post(&path, &json!({})));
        last_round.clear();
        for r in [ra, rb] {
            match r.status {
                Some(200) => {
                    let v = version_of(&r.body["key"]["kid"]);
                    assert!(!v.is_empty(), "{}", r.text);
                    versions.push(v.clone());
                    last_round.push(v);
                }
                // Lost the race, changed nothing: a serial order too.
                Some(409) => {}
                _ => panic!("concurrent rotation: {} {}", r.kind(), r.text),
            }
        }
    }
    let unique: BTreeSet<&String> = versions.iter().collect();
    check(
        unique.len() == versions.len(),
        format!("rotation: a version handed out twice: {versions:?}"),
    );
    settle();
    for c in both {
        let r = c.get(&format!("/keys/race-rot/versions?{V}&maxresults=25"));
        assert_eq!(r.status, Some(200), "{}", r.text);
        let listed: BTreeSet<String> = r.body["value"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| version_of(&v["kid"]))
            .collect();
        let expected: BTreeSet<String> = versions.iter().cloned().collect();
        check(
            listed == expected,
            format!(
                "rotation: {}: versions listed {listed:?} vs acknowledged {expected:?}",
                c.base
            ),
        );
        let latest = c.get(&format!("/keys/race-rot?{V}"));
        assert_eq!(latest.status, Some(200), "{}", latest.text);
        let latest = version_of(&latest.body["key"]["kid"]);
        check(
            last_round.contains(&latest),
            format!(
                "rotation: {}: current version {latest} is not one of the last round's {last_round:?}",
                c.base
            ),
        );
    }

    // --- concurrent purge and recover of one deleted key: exactly one wins ---
    for round in 0..4 {
        let name = format!("race-pr-{round}");
        let r = until_final(|| {
            a.post(
                &format!("/keys/{name}/create?{V}"),
                &json!({"kty": "EC", "crv": "P-256"}),
            )
        });
        assert_eq!(r.status, Some(200), "{}", r.text);
        let r = until_final(|| a.delete(&format!("/keys/{name}?{V}")));
        assert_eq!(r.status, Some(200), "{}", r.text);
        settle();
        // Alternate which replica purges.
        let (purger, recoverer) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (purge, recover) = race(
            || purger.delete(&format!("/deletedkeys/{name}?{V}")),
            || recoverer.post(&format!("/deletedkeys/{name}/recover?{V}"), &json!({})),
        );
        let lost = |r: &Resp| matches!(r.status, Some(404) | Some(409));
        let purged = match (purge.status, recover.status) {
            (Some(204), _) if lost(&recover) => true,
            (_, Some(200)) if lost(&purge) => false,
            _ => {
                check(
                    false,
                    format!(
                        "purge/recover race on {name} is not a serial order: purge {} {}, recover {} {}",
                        purge.kind(),
                        excerpt(&purge.text),
                        recover.kind(),
                        excerpt(&recover.text)
                    ),
                );
                continue;
            }
        };
        settle();
        for c in both {
            let live = c.get(&format!("/keys/{name}?{V}"));
            let deleted = c.get(&format!("/deletedkeys/{name}?{V}"));
            let want = if purged { 404 } else { 200 };
            check(
                deleted.status == Some(404) && live.status == Some(want),
                format!(
                    "purge/recover: {}: {name} after {}: live {}, deleted {}",
                    c.base,
                    if purged { "purge won" } else { "recover won" },
                    live.kind(),
                    deleted.kind()
                ),
            );
        }
    }

    // --- concurrent role-assignment changes ---
    let principal = |name: &str| {
        let r = until_final(|| {
            a.post(
                "/enclava/principals",
                &json!({"kind": "service_principal", "display_name": name}),
            )
        });
        assert_eq!(r.status, Some(201), "{}", r.text);
        r.body["client_id"].as_str().expect("client_id").to_string()
    };
    let assignments = |c: &Client, p: &str| -> Vec<Value> {
        let r = c.get(&format!("/enclava/role-assignments?principal={p}"));
        assert_eq!(r.status, Some(200), "{}", r.text);
        r.body["value"].as_array().expect("assignments").clone()
    };
    let assign = |c: &Client, p: &str, role: &str| {
        c.post(
            "/enclava/role-assignments",
            &json!({"principal": p, "role": role, "scope": "/keys/race"}),
        )
    };
    // The serial reference: the same assignment made twice, one replica after the other.
    let serial_p = principal("serial");
    let s1 = until_final(|| assign(&a, &serial_p, "CryptoUser"));
    let s2 = until_final(|| assign(&b, &serial_p, "CryptoUser"));
    let mut serial_statuses = vec![s1.status, s2.status];
    serial_statuses.sort();
    settle();
    let serial_count = assignments(&a, &serial_p).len();
    // Concurrently: the same statuses and the same resulting assignments.
    let racer = principal("racer");
    let (c1, c2) = race(
        || assign(&a, &racer, "CryptoUser"),
        || assign(&b, &racer, "CryptoUser"),
    );
    let mut statuses = vec![c1.status, c2.status];
    statuses.sort();
    check(
        statuses == serial_statuses,
        format!(
            "duplicate assignment: concurrently {statuses:?}, serially {serial_statuses:?}: {} / {}",
            c1.text, c2.text
        ),
    );
    settle();
    for c in both {
        let n = assignments(c, &racer).len();
        check(
            n == serial_count,
            format!(
                "duplicate assignment: {}: {n} assignments made concurrently, {serial_count} serially",
                c.base
            ),
        );
    }
    // Two different roles concurrently: both land.
    let (d1, d2) = race(
        || assign(&a, &racer, "CryptoOfficer"),
        || assign(&b, &racer, "SecretsOfficer"),
    );
    for r in [&d1, &d2] {
        assert_eq!(r.status, Some(201), "{}", r.text);
    }
    settle();
    for c in both {
        let roles: BTreeSet<String> = assignments(c, &racer)
            .iter()
            .filter_map(|v| v["role"].as_str().map(str::to_string))
            .collect();
        check(
            roles.contains("CryptoOfficer") && roles.contains("SecretsOfficer"),
            format!("two concurrent assignments: {}: roles {roles:?}", c.base),
        );
    }
    // The same assignment deleted on both replicas at once: the answers of a serial order
    // (the reference: one replica after the other), i.e. exactly one deletion.
    let serial_id = s1.body["id"].as_str().expect("assignment id").to_string();
    let serial_path = format!("/enclava/role-assignments/{serial_id}");
    let first = until_final(|| a.delete(&serial_path));
    settle();
    let second = until_final(|| b.delete(&serial_path));
    let mut serial_del = vec![first.status, second.status];
    serial_del.sort();
    assert_eq!(
        serial_del,
        vec![Some(204), Some(404)],
        "serial deletes: {} / {}",
        first.text,
        second.text
    );
    let id = d1.body["id"].as_str().expect("assignment id").to_string();
    let path = format!("/enclava/role-assignments/{id}");
    let (x1, x2) = race(|| a.delete(&path), || b.delete(&path));
    let mut del = vec![x1.status, x2.status];
    del.sort();
    check(
        del == serial_del,
        format!(
            "concurrent delete of one assignment: {del:?}, serially {serial_del:?}: {} / {}",
            x1.text, x2.text
        ),
    );
    settle();
    for c in both {
        let r = c.get(&path);
        check(
            r.status == Some(404),
            format!(
                "deleted assignment: {}: GET {} {}",
                c.base,
                r.kind(),
                r.text
            ),
        );
        check(
            !assignments(c, &racer).iter().any(|v| v["id"] == json!(id)),
            format!("deleted assignment: {}: still listed", c.base),
        );
    }

    // One audit chain, in commit order, across both replicas.
    assert_audit_verifies(&store);
    let torn = torn.into_inner().unwrap();
    assert!(
        torn.is_empty(),
        "states no serial order produces: {torn:#?}"
    );
}
