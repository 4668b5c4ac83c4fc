//! The audit log under attack, through the real server over HTTPS: a full disk, a truncated or
//! rewritten log, anonymous noise and failed logins (issue 9 items 6, 7, 8).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use enclava_audit::{AuditEntry, ProblemKind, VerifyReport, head_file};
use enclava_store::{SqliteStore, Store, Table};
use serde_json::{Value, json};

const V: &str = "api-version=7.5";

fn dev_config(data: &Path) -> enclava_server::ServerConfig {
    enclava_server::PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(data.to_path_buf()),
        dev: Some(true),
        ..Default::default()
    }
    .resolve()
    .expect("config")
}

/// Stop gracefully (what SIGTERM does): the final checkpoint is signed.
fn stop(t: TestServer) -> tempfile::TempDir {
    let TestServer {
        dir, server, rt, ..
    } = t;
    rt.block_on(server.run_until(async {}, Duration::from_secs(5)))
        .expect("clean stop");
    dir
}

/// Every audit entry, paging through the API.
fn all_entries(t: &TestServer, admin: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut from = 1u64;
    loop {
        let r = t.get(
            &format!("/enclava/audit?from={from}&limit=1000"),
            Some(admin),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(r.body["value"].as_array().cloned().unwrap_or_default());
        match r.body["nextFrom"].as_u64() {
            Some(n) if n > from => from = n,
            _ => return out,
        }
    }
}

/// What `enclava audit verify --data-dir` computes: chain, checkpoints and the signed head file.
fn verify_dir(data: &Path) -> VerifyReport {
    let store = SqliteStore::open(&data.join("vault.db")).expect("open db");
    let pk = store
        .get(Table::Meta, "audit/checkpoint-public-key")
        .unwrap()
        .expect("checkpoint key recorded");
    let head = head_file::read(&data.join(head_file::HEAD_FILE)).expect("head file readable");
    enclava_audit::verify_with_head(&store, &pk, head.as_ref()).expect("verify runs")
}

fn sql(data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("vault.db")).expect("sqlite")
}

fn db_head(data: &Path) -> u64 {
    SqliteStore::open(&data.join("vault.db"))
        .unwrap()
        .audit_head()
        .unwrap()
}

#[test]
fn truncated_tail_is_reported_even_with_the_checkpoints_deleted_too() {
    let t = start_dev();
    let a = t.admin_token();
    for i in 0..30 {
        let r = t.put(
            &format!("/secrets/t{i}?{V}"),
            Some(&a),
            &json!({"value": "v"}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let data = data_dir_of(&t);
    let dir = stop(t);
    let head = head_file::read(&data.join(head_file::HEAD_FILE))
        .unwrap()
        .expect("a signed head file is written at shutdown");
    let y = db_head(&data);
    assert_eq!(head.seq, y, "the shutdown checkpoint covers the last entry");
    assert!(verify_dir(&data).first_problem.is_none());

    // The attack: a database admin deletes the newest 20 entries and every checkpoint that
    // covered them, leaving a perfectly consistent shorter chain.
    let x = y - 20;
    let c = sql(&data);
    c.execute("DELETE FROM audit WHERE seq > ?1", [x as i64])
        .unwrap();
    c.execute("DELETE FROM audit_checkpoints", []).unwrap();
    drop(c);
    let r = verify_dir(&data);
    let p = r.first_problem.as_ref().expect("truncation found");
    assert_eq!(p.kind, ProblemKind::Removed, "{r:?}");
    assert_eq!(p.seq, x + 1, "{r:?}");
    assert!(
        p.detail.contains(&format!(
            "the log ends at seq {x} but a signed head at seq {y}"
        )),
        "{}",
        p.detail
    );

    // The restarted server says so too, and does not overwrite the evidence with a new head.
    let t2 = {
        let mut t = start_with(dev_config(&data));
        t.dir = dir;
        t
    };
    let a = t2.admin_token();
    let r = t2.get("/enclava/audit/verify", Some(&a));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["ok"], false, "{}", r.text);
    assert_eq!(
        r.body["report"]["first_problem"]["kind"], "removed",
        "{}",
        r.text
    );
    let entries = all_entries(&t2, &a);
    let found = entries
        .iter()
        .find(|e| e["action"] == "audit/tamper-detected")
        .expect("the restarted server records the truncation it found");
    assert!(
        found["detail"].as_str().unwrap().contains("truncated"),
        "{found}"
    );
    let dir = stop(t2);
    let kept = head_file::read(&data.join(head_file::HEAD_FILE))
        .unwrap()
        .unwrap();
    assert_eq!(
        kept, head,
        "the signed head naming the deleted entries is kept"
    );
    drop(dir);
}

#[test]
fn rewritten_young_log_is_detected() {
    let t = start_dev();
    let a = t.admin_token();
    // A young vault: far fewer than 1000 entries, yet a checkpoint exists from the start.
    let r = t.post(
        &format!("/keys/young/create?{V}"),
        Some(&a),
        &json!({"kty": "EC"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.put(
        &format!("/secrets/young?{V}"),
        Some(&a),
        &json!({"value": "v"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.get("/enclava/audit/verify", Some(&a));
    assert_eq!(r.body["ok"], true, "{}", r.text);
    assert!(
        r.body["report"]["checkpoints"].as_u64().unwrap() >= 1,
        "the first checkpoint is signed soon after start: {}",
        r.text
    );
    let data = data_dir_of(&t);
    let _dir = stop(t);
    let n = db_head(&data);
    assert!(n < 100, "{n}");

    // The attack: rewrite who created the key, recompute every later hash, drop the checkpoints.
    let c = sql(&data);
    let rows: Vec<(i64, Vec<u8>)> = c
        .prepare("SELECT seq, entry FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let target = rows
        .iter()
        .map(|(s, e)| (*s, serde_json::from_slice::<AuditEntry>(e).unwrap()))
        .find(|(_, e)| e.action == "keys/create")
        .expect("the create entry")
        .0;
    let mut prev: Option<String> = None;
    for (seq, bytes) in &rows {
        let mut e: AuditEntry = serde_json::from_slice(bytes).unwrap();
        if *seq < target {
            prev = Some(e.hash);
            continue;
        }
        if *seq == target {
            e.principal = "someone-else".into();
        }
        e.prev_hash = prev.clone().unwrap();
        e.hash = hex::encode(e.compute_hash().unwrap());
        prev = Some(e.hash.clone());
        c.execute(
            "UPDATE audit SET entry = ?1 WHERE seq = ?2",
            rusqlite::params![e.to_canonical_json(), seq],
        )
        .unwrap();
    }
    c.execute("DELETE FROM audit_checkpoints", []).unwrap();
    drop(c);
    let r = verify_dir(&data);
    let p = r.first_problem.as_ref().expect("rewrite found");
    assert_eq!(p.kind, ProblemKind::Modified, "{r:?}");
    assert!(!r.checkpoints_ok);
}

#[test]
fn failed_login_is_recorded_as_claimed_not_as_that_principal() {
    let t = start_dev();
    let a = t.admin_token();
    let (id, secret) = t.service_principal(&a, "victim");
    let login = |secret: &str, rid: &str| {
        let form = format!(
            "grant_type=client_credentials&client_id={id}&client_secret={}&scope=https%3A%2F%2Fvault.azure.net%2F.default",
            form_encode(secret)
        );
        t.call(
            "POST",
            "/contoso/oauth2/v2.0/token",
            None,
            Some(form.as_bytes()),
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("x-ms-client-request-id", rid),
            ],
        )
    };
    // Fewer failures than the failed-login budget of one address (5): the throttle (429 +
    // Retry-After, tested in abuse.rs) stays out of this test.
    for i in 0..4 {
        let r = login("wrong-secret", &format!("bad-login-{i}"));
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = login(&secret, "good-login");
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::sleep(Duration::from_millis(200));
    let entries = all_entries(&t, &a);
    let find = |rid: &str| {
        entries
            .iter()
            .find(|e| e["request_id"] == rid)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {rid}"))
    };
    for i in 0..4 {
        // Every failed login is kept (never aggregated), and none names the victim.
        let e = find(&format!("bad-login-{i}"));
        assert_eq!(e["principal"], "anonymous", "{e}");
        assert_eq!(e["result"], "denied", "{e}");
        let detail = e["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("claimed_client_id=\"{id}\"")),
            "{detail}"
        );
    }
    assert_eq!(find("good-login")["principal"], id.as_str());
}

#[test]
fn anonymous_noise_is_counted_not_logged_one_by_one() {
    let t = start_dev();
    let a = t.admin_token();
    // An authenticated caller without roles: its denials are security events, always kept.
    let (id, secret) = t.service_principal(&a, "nobody");
    let user = t.token_for(&id, &secret);
    std::thread::sleep(Duration::from_millis(100));
    let before = all_entries(&t, &a).len();

    let n404 = 3000;
    let n401 = 500;
    for i in 0..n404 {
        let r = t.get(&format!("/no/such/route/{i}"), None);
        assert_eq!(r.status, 404);
    }
    for _ in 0..n401 {
        let r = t.get(&format!("/keys?{V}"), None);
        assert_eq!(r.status, 401);
    }
    for i in 0..20 {
        let r = t.call(
            "GET",
            &format!("/keys?{V}"),
            Some(&user),
            None,
            &[("x-ms-client-request-id", &format!("denied-{i}"))],
        );
        assert_eq!(r.status, 403, "{}", r.text);
    }
    std::thread::sleep(Duration::from_millis(200));
    let during = all_entries(&t, &a);
    // Close the window: one summary per (client, route, status).
    t.rt.block_on(enclava_server::audit_tick_once(&t.server.state, true));
    std::thread::sleep(Duration::from_millis(200));
    let after = all_entries(&t, &a);
    let new: Vec<&Value> = after.iter().skip(before).collect();
    let bytes: usize = new.iter().map(|e| e.to_string().len()).sum();
    let noise_entries = new.iter().filter(|e| e["principal"] == "anonymous").count();
    eprintln!(
        "MEASURE anonymous noise: {} requests -> {} anonymous entries, {} new entries, {} bytes \
         (one entry per request before: {} entries, ~{} bytes)",
        n404 + n401,
        noise_entries,
        new.len(),
        bytes,
        n404 + n401,
        (n404 + n401) * bytes / new.len().max(1)
    );
    assert!(
        noise_entries <= 2 * 10 + 2,
        "{noise_entries} anonymous entries"
    );
    for i in 0..20 {
        let rid = format!("denied-{i}");
        assert!(
            during.iter().any(|e| e["request_id"] == rid.as_str()),
            "the denial of an authenticated caller {rid} must be logged"
        );
    }
    let summary = |status: u64| -> String {
        new.iter()
            .find(|e| e["action"] == "audit/suppressed" && e["status"] == status)
            .and_then(|e| e["detail"].as_str())
            .unwrap_or_else(|| panic!("no summary for {status}"))
            .to_string()
    };
    assert!(
        summary(404).contains(&format!("{} more", n404 - 10)),
        "{}",
        summary(404)
    );
    assert!(summary(401).contains(&format!("{} more", n401 - 10)));
    let r = t.get("/enclava/audit/verify", Some(&a));
    assert_eq!(r.body["ok"], true, "{}", r.text);
}

/// A tmpfs mounted for the test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill the disk and needs root (tests run as root \
             here and in CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Fill the file system holding `dir` completely.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
    path
}

#[test]
fn disk_full_writes_commit_with_their_entry_or_not_at_all() {
    let fs = Tmpfs::mount("6m");
    let data = fs.0.join("data");
    let t = start_with(dev_config(&data));
    let a = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    // One secret whose value, and one ciphertext whose plaintext, are read back while the disk
    // is full: key material is handed out only with a durable audit entry.
    let r = t.put(
        &format!("/secrets/before?{V}"),
        Some(&a),
        &json!({"value": "hello"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.post(
        &format!("/keys/kd/create?{V}"),
        Some(&a),
        &json!({"kty": "RSA", "key_size": 2048}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t.post(
        &format!("/keys/kd/encrypt?{V}"),
        Some(&a),
        &json!({"alg": "RSA-OAEP-256", "value": "aGVsbG8"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ct = r.body["value"].as_str().unwrap().to_string();

    let filler = fill(&fs.0);
    let big = "x".repeat(24 * 1024);
    let mut ok_puts = Vec::new();
    let mut failed_puts = Vec::new();
    let mut ok_gets = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..40 {
        let rid = format!("put-{i}");
        let body = serde_json::to_vec(&json!({"value": big})).unwrap();
        let r = t.call(
            "PUT",
            &format!("/secrets/full{i}?{V}"),
            Some(&a),
            Some(&body),
            &[("x-ms-client-request-id", &rid)],
        );
        *statuses.entry(r.status).or_default() += 1;
        assert!(
            r.status == 200 || r.status == 507,
            "a write on a full disk answers 200 or 507, found {} {}",
            r.status,
            r.text
        );
        if r.status == 200 {
            ok_puts.push(i);
        } else {
            assert_eq!(r.code(), "InsufficientStorage", "{}", r.text);
            failed_puts.push(i);
        }
        let gid = format!("get-{i}");
        let r = t.call(
            "GET",
            &format!("/secrets/before?{V}"),
            Some(&a),
            None,
            &[("x-ms-client-request-id", &gid)],
        );
        *statuses.entry(r.status).or_default() += 1;
        assert!(
            r.status == 200 || r.status == 507,
            "{} {}",
            r.status,
            r.text
        );
        if r.status == 200 {
            assert_eq!(r.body["value"], "hello");
            ok_gets.push(gid);
        } else {
            assert!(
                !r.text.contains("hello"),
                "no secret value without a durable entry"
            );
        }
        let did = format!("dec-{i}");
        let b = serde_json::to_vec(&json!({"alg": "RSA-OAEP-256", "value": ct})).unwrap();
        let r = t.call(
            "POST",
            &format!("/keys/kd/decrypt?{V}"),
            Some(&a),
            Some(&b),
            &[("x-ms-client-request-id", &did)],
        );
        *statuses.entry(r.status).or_default() += 1;
        assert!(
            r.status == 200 || r.status == 507,
            "{} {}",
            r.status,
            r.text
        );
        if r.status == 200 {
            assert_eq!(r.body["value"], "aGVsbG8");
            ok_gets.push(did);
        } else {
            assert!(
                !r.text.contains("aGVsbG8"),
                "no plaintext without a durable entry"
            );
        }
    }
    eprintln!("MEASURE disk full: answers by status {statuses:?}");
    assert!(
        !failed_puts.is_empty(),
        "the disk never filled up: the test did not test anything"
    );

    // Free the space and check the database against the answers.
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let entries = all_entries(&t, &a);
    let store = SqliteStore::open(&data.join("vault.db")).unwrap();
    for i in &ok_puts {
        assert!(
            store
                .get(Table::Secrets, &format!("full{i}"))
                .unwrap()
                .is_some(),
            "secret full{i} was acknowledged but is missing"
        );
        assert!(
            entries
                .iter()
                .any(|e| e["request_id"] == format!("put-{i}").as_str()
                    && e["action"] == "secrets/set"
                    && e["status"] == 200),
            "acknowledged write put-{i} has no audit entry"
        );
    }
    for i in &failed_puts {
        assert!(
            store
                .get(Table::Secrets, &format!("full{i}"))
                .unwrap()
                .is_none(),
            "secret full{i} was refused with 507 but is stored"
        );
    }
    // Every stored secret has its create entry (nothing committed without its entry).
    for (k, _) in store.list(Table::Secrets, "", None, 1000).unwrap() {
        assert!(
            entries
                .iter()
                .any(|e| e["object"] == format!("secrets/{k}").as_str()
                    && e["action"] == "secrets/set"
                    && e["result"] == "allowed"),
            "stored secret {k} has no audit entry"
        );
    }
    // Every secret value handed out has a durable entry.
    for gid in &ok_gets {
        assert!(
            entries.iter().any(|e| e["request_id"] == gid.as_str()),
            "secret value handed out by {gid} without an audit entry"
        );
    }
    let r = t.get("/enclava/audit/verify", Some(&a));
    assert_eq!(r.body["ok"], true, "{}", r.text);
    drop(store);
    drop(stop(t));
}
