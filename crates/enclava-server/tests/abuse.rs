//! Anonymous abuse through the real server on loopback (issue 9, items 4 and 5): challenge floods,
//! challenges across two server processes on one database, slow-loris connections, the
//! connection cap, per-client rate limits and failed-login delays without lockout.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestServer, form_encode, start_with};
use enclava_server::ratelimit::RateLimitSettings;
use enclava_server::{PartialConfig, ServerConfig};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn config(dir: &Path, tweak: impl FnOnce(&mut PartialConfig)) -> ServerConfig {
    let mut p = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.join("data")),
        dev: Some(true),
        ..Default::default()
    };
    tweak(&mut p);
    p.resolve().expect("config")
}

/// A dev server over TLS with `tweak` applied to its configuration.
fn tls_server(tweak: impl FnOnce(&mut PartialConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut t = start_with(config(dir.path(), tweak));
    t.dir = dir;
    t
}

/// A dev server over plain HTTP on loopback (so raw sockets can drip request bytes).
fn http_server(tweak: impl FnOnce(&mut PartialConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), |p| {
        p.insecure_http = Some(true);
        tweak(p)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(enclava_server::start(cfg)).expect("starts");
    TestServer {
        url: server.local_url.clone(),
        dir,
        server,
        agent: ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build(),
        rt,
    }
}

fn sim_policy() -> String {
    "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if input.claims.tee == \"sim\"\n".into()
}

fn allow_sim(s: &TestServer) {
    let r = s.call(
        "PUT",
        "/policies/sim",
        Some(&s.admin_token()),
        Some(json!({"policy": sim_policy()}).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A native sim attestation request bound to `nonce`.
fn native(nonce: &str) -> Value {
    let rd = json!({"nonce": nonce}).to_string();
    let mut report_data = [0u8; 64];
    report_data[..32].copy_from_slice(&sha2::Sha256::digest(rd.as_bytes()));
    let ev = enclava_evidence::sim::generate(&[7u8; 48], &report_data, chrono::Utc::now());
    json!({
        "tee": "sim",
        "evidence": URL_SAFE_NO_PAD.encode(&ev),
        "runtime_data": {"data": URL_SAFE_NO_PAD.encode(rd.as_bytes()), "dataType": "JSON"},
        "nonce": nonce,
    })
}

fn challenge(s: &TestServer) -> String {
    let c = s.get("/challenge", None);
    assert_eq!(c.status, 200, "{}", c.text);
    c.body["nonce"].as_str().unwrap().to_string()
}

fn metric(s: &TestServer, line_start: &str) -> f64 {
    let m = s.get("/metrics", None);
    m.text
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_challenge_flood_stores_nothing_and_denies_nobody() {
    let s = tls_server(|_| {});
    allow_sim(&s);
    let state = s.server.state.clone();
    let svc = state.attestation.service(&state).expect("service");
    // The attack of the issue (150k) and more, in process: each one costs an HMAC, no state.
    let started = Instant::now();
    let now = chrono::Utc::now();
    for _ in 0..200_000 {
        svc.challenge(now).expect("challenge");
    }
    let in_process = started.elapsed();
    // And over HTTPS for as long as a couple of seconds allow.
    let started = Instant::now();
    let mut over_http = 0;
    while started.elapsed() < Duration::from_secs(2) {
        assert_eq!(s.get("/challenge", None).status, 200);
        over_http += 1;
    }
    eprintln!("200000 challenges in process in {in_process:?}; {over_http} over HTTPS in 2 s");
    assert_eq!(svc.challenges().redeemed_count().unwrap(), 0);

    // A fresh client still gets one and redeems it, once.
    let nonce = challenge(&s);
    let r = s.post("/attest/native", None, &native(&nonce));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.post("/attest/native", None, &native(&nonce));
    assert_eq!((r.status, r.code()), (400, "nonce_replayed"), "{}", r.text);
    assert_eq!(svc.challenges().redeemed_count().unwrap(), 1);
}

#[test]
fn a_challenge_from_one_process_is_redeemed_once_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut a = start_with(config(&path, |_| {}));
    a.dir = dir;
    allow_sim(&a);
    // B: a second server on the same data directory and database, unsealed with the same root.
    let b = start_with(config(&path, |_| {}));
    assert_ne!(a.url, b.url);

    let nonce = challenge(&a);
    let r = b.post("/attest/native", None, &native(&nonce));
    assert_eq!(r.status, 200, "redeemed on B: {}", r.text);
    for s in [&a, &b] {
        let r = s.post("/attest/native", None, &native(&nonce));
        assert_eq!((r.status, r.code()), (400, "nonce_replayed"), "{}", r.text);
        assert_eq!(r.body["error"]["failed"][0]["rule"], "nonce_fresh");
    }
    // The other way round, and a forged nonce (one byte changed) is unknown to both.
    let nonce = challenge(&b);
    assert_eq!(a.post("/attest/native", None, &native(&nonce)).status, 200);
    let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
    raw[12] ^= 0x40;
    let forged = URL_SAFE_NO_PAD.encode(&raw);
    for s in [&a, &b] {
        let r = s.post("/attest/native", None, &native(&forged));
        assert_eq!((r.status, r.code()), (400, "nonce_unknown"), "{}", r.text);
    }
    // The maintenance sweep keeps unexpired redemptions (a replay stays refused).
    a.rt.block_on(enclava_server::run_maintenance_once(&a.server.state));
    let r = b.post("/attest/native", None, &native(&nonce));
    assert_eq!(r.code(), "nonce_replayed", "{}", r.text);
}

/// Open a connection from `src` (a loopback address) to the server.
async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// One plain-HTTP request from `src`; (status, headers lower-cased, body).
async fn raw_request(
    src: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    ctype: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut c = connect_from(src, to).await;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Whether the server has closed `c` (EOF or reset) within `within`.
async fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before closing: keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn slowloris_connections_are_evicted_or_timed_out_and_healthz_stays_reachable() {
    let s = http_server(|p| {
        p.max_connections = Some(64);
        p.header_read_timeout_secs = Some(2);
    });
    let addr = s.server.addr;
    let before = fds();
    s.rt.block_on(async {
        // 1000 connections that drip a request head and never finish it.
        let mut held = Vec::new();
        for i in 0..1000 {
            let mut c = connect_from("127.0.0.1", addr).await;
            let _ = c
                .write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip-{i}: ").as_bytes())
                .await;
            held.push(c);
        }
        // Our 1000 ends are open; the server holds at most its cap of the other ends.
        let during = fds();
        assert!(
            during < before + 1000 + 64 + 40,
            "file descriptors: {before} before, {during} with 1000 dripping connections"
        );
        // Health (and so unseal) answers while all 1000 are held open by the attacker.
        let (status, _, body) =
            raw_request("127.0.0.1", addr, "GET", "/healthz", "text/plain", "").await;
        assert_eq!(status, 200, "{body}");
        // The oldest drippers were evicted to make room.
        let mut evicted = 0;
        for c in held.iter_mut().take(100) {
            if closed_within(c, Duration::from_millis(100)).await {
                evicted += 1;
            }
        }
        assert_eq!(evicted, 100, "the oldest dripping connections were closed");
        drop(held);
    });
    assert!(metric(&s, "enclava_connections_total{event=\"evicted\"}") >= 500.0);

    // Below the cap: dripping connections are closed once the header timeout passes.
    s.rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..20 {
            let mut c = connect_from("127.0.0.1", addr).await;
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            held.push(c);
        }
        let started = Instant::now();
        // Keep dripping one header line every 300 ms: bytes arriving do not extend the deadline.
        let mut open = held.len();
        while open > 0 && started.elapsed() < Duration::from_secs(8) {
            open = 0;
            for c in held.iter_mut() {
                if c.write_all(b"X-Drip: 1\r\n").await.is_ok()
                    && !closed_within(c, Duration::from_millis(15)).await
                {
                    open += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let took = started.elapsed();
        assert_eq!(open, 0, "dripping connections still open after {took:?}");
        assert!(
            took >= Duration::from_millis(1500),
            "closed too early: {took:?}"
        );

        // An idle keep-alive connection is closed by the same timer.
        let mut c = connect_from("127.0.0.1", addr).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        let started = Instant::now();
        assert!(closed_within(&mut c, Duration::from_secs(6)).await);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1500),
            "idle closed too early: {took:?}"
        );
    });
}

#[test]
fn a_slow_tls_handshake_is_cut_off() {
    let s = tls_server(|p| p.tls_handshake_timeout_secs = Some(1));
    let addr = s.server.addr;
    s.rt.block_on(async {
        // A TLS record header and nothing more.
        let mut c = connect_from("127.0.0.1", addr).await;
        c.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        let started = Instant::now();
        assert!(closed_within(&mut c, Duration::from_secs(5)).await);
        assert!(started.elapsed() >= Duration::from_millis(800));
    });
    assert_eq!(s.get("/healthz", None).status, 200);
}

#[test]
fn over_the_cap_with_every_connection_busy_new_ones_are_refused_with_503() {
    let s = http_server(|p| p.max_connections = Some(4));
    let addr = s.server.addr;
    s.rt.block_on(async {
        // Four requests in flight: complete heads, bodies that never come.
        let mut busy = Vec::new();
        for _ in 0..4 {
            let mut c = connect_from("127.0.0.1", addr).await;
            c.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
                .await
                .unwrap();
            busy.push(c);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, headers, body) =
            raw_request("127.0.0.1", addr, "GET", "/healthz", "text/plain", "").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(header(&headers, "retry-after"), Some("1"));
        assert!(body.contains("TooManyConnections"), "{body}");
        drop(busy);
        // Once they are gone, the server answers again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, _, _) =
            raw_request("127.0.0.1", addr, "GET", "/healthz", "text/plain", "").await;
        assert_eq!(status, 200);
    });
    assert!(metric(&s, "enclava_connections_total{event=\"refused\"}") >= 1.0);
}

#[test]
fn floods_of_token_and_challenge_requests_get_429_with_retry_after() {
    let s = http_server(|p| {
        p.rate_limits = Some(RateLimitSettings {
            token_per_sec: Some(1),
            token_burst: Some(5),
            challenge_per_sec: Some(1),
            challenge_burst: Some(10),
            include_loopback: Some(true),
            ..Default::default()
        })
    });
    let addr = s.server.addr;
    s.rt.block_on(async {
        let form = "grant_type=client_credentials&client_id=x&client_secret=y";
        let ctype = "application/x-www-form-urlencoded";
        let mut statuses = Vec::new();
        let mut retry = None;
        for _ in 0..8 {
            let (st, h, _) =
                raw_request("127.0.0.9", addr, "POST", "/oauth2/token", ctype, form).await;
            statuses.push(st);
            if st == 429 {
                retry = header(&h, "retry-after").map(str::to_string);
            }
        }
        assert!(statuses[..5].iter().all(|s| *s != 429), "{statuses:?}");
        assert_eq!(statuses[7], 429, "{statuses:?}");
        assert_eq!(retry.as_deref(), Some("1"));
        // Another address is not limited by that one's flood.
        let (st, _, _) = raw_request(
            "127.0.0.10",
            addr,
            "POST",
            "/contoso/oauth2/v2.0/token",
            ctype,
            form,
        )
        .await;
        assert_ne!(st, 429);

        let mut got = 0;
        let mut limited = None;
        for _ in 0..15 {
            let (st, h, body) =
                raw_request("127.0.0.9", addr, "GET", "/challenge", "text/plain", "").await;
            match st {
                200 => got += 1,
                429 => {
                    limited = Some((header(&h, "retry-after").map(str::to_string), body));
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert!((10..=11).contains(&got), "{got}");
        let (retry, body) = limited.expect("a 429");
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(body.contains("TooManyRequests"), "{body}");
    });
    assert!(metric(&s, "enclava_rate_limited_total{limit=\"token\"}") >= 3.0);
}

#[test]
fn an_attacker_hammering_a_client_id_does_not_lock_out_the_real_client() {
    let s = http_server(|p| {
        p.rate_limits = Some(RateLimitSettings {
            login_max_delay_secs: Some(2),
            ..Default::default()
        })
    });
    let admin = s.admin_token();
    let (client_id, secret) = s.service_principal(&admin, "app");
    let addr = s.server.addr;
    let ctype = "application/x-www-form-urlencoded";
    let form = |secret: &str| {
        format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={}",
            form_encode(secret)
        )
    };
    s.rt.block_on(async {
        // The attacker, from 127.0.0.2, guesses secrets as fast as it can.
        let mut statuses = Vec::new();
        let mut retry_after = Vec::new();
        for i in 0..40 {
            let (st, h, _) = raw_request(
                "127.0.0.2",
                addr,
                "POST",
                "/oauth2/token",
                ctype,
                &form(&format!("guess-{i}")),
            )
            .await;
            statuses.push(st);
            if st == 429 {
                retry_after.push(header(&h, "retry-after").unwrap_or("").to_string());
            }
        }
        assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
        assert_eq!(statuses[6], 429, "{statuses:?}");
        assert!(
            statuses.iter().filter(|s| **s == 429).count() >= 30,
            "{statuses:?}"
        );
        assert!(
            retry_after.iter().all(|r| r == "1" || r == "2"),
            "{retry_after:?}"
        );
        // Even the right secret from the attacker's address waits (no oracle while throttled).
        let (st, _, _) = raw_request(
            "127.0.0.2",
            addr,
            "POST",
            "/oauth2/token",
            ctype,
            &form(&secret),
        )
        .await;
        assert_eq!(st, 429);
        // The attack spread over 40 more addresses (160 failures) exhausts the client_id's
        // global failure budget: that only slows the addresses that failed.
        for host in 20..60 {
            for i in 0..4 {
                let src = format!("127.0.0.{host}");
                let guess = form(&format!("spread-{i}"));
                let (st, _, _) =
                    raw_request(&src, addr, "POST", "/oauth2/token", ctype, &guess).await;
                assert!(st == 401 || st == 429, "{st}");
            }
        }
        let (st, _, _) = raw_request(
            "127.0.0.20",
            addr,
            "POST",
            "/oauth2/token",
            ctype,
            &form("again"),
        )
        .await;
        assert_eq!(st, 429);
        // The real client, from its own address, logs in at once.
        let (st, _, body) = raw_request(
            "127.0.0.3",
            addr,
            "POST",
            "/oauth2/token",
            ctype,
            &form(&secret),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        // And no lockout: once the (bounded) delay passes, the right secret works from there too.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (st, _, body) = raw_request(
            "127.0.0.2",
            addr,
            "POST",
            "/oauth2/token",
            ctype,
            &form(&secret),
        )
        .await;
        assert_eq!(st, 200, "{body}");
    });
    assert!(metric(&s, "enclava_rate_limited_total{limit=\"login\"}") >= 30.0);
}
