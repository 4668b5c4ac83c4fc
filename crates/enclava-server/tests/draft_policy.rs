//! Draft policies (`draftPolicyForAttestation`) and policy bounds over real HTTPS (issue 9 item 2).
//!
//! The attack: one anonymous MAA attest request carrying deeply nested Rego froze the server
//! (nesting 18 took 17.8 s on an async worker, 30 never returned, /healthz stalled). Now a draft
//! needs a caller allowed to manage policies, the source is bounded before the parser sees it,
//! evaluation runs on the blocking pool with at most a few at once and a deadline, and every
//! refusal is a 4xx (503 + Retry-After when busy). Stored policies get the same bounds.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Resp, TestServer, put_policy, snp_without_revocation, start_with};
use enclava_attestation::service::DRAFT_DEADLINE;
use enclava_policy::rego::limits::{MAX_NESTING_DEPTH, MAX_SOURCE_BYTES};
use enclava_server::PartialConfig;
use enclava_server::attest::AttestationSettings;
use serde_json::{Value, json};

const SNP_AT: &str = "2025-06-01T00:00:00Z";
const G: &str = "sev-snp/google-go-sev-guest";
const T: &str = "sev-snp/trustee";

fn vectors() -> Option<PathBuf> {
    enclava_testvectors::dir()
}

fn read(rel: &str) -> Vec<u8> {
    let p = vectors().expect("vectors").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn pem_of(files: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for f in files {
        if f.starts_with(b"-----BEGIN") {
            out.push_str(&String::from_utf8(f.clone()).unwrap());
            out.push('\n');
            continue;
        }
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in STANDARD.encode(f).as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// An MAA `SevSnpVm` body with a real (trustee, Milan) report, plus `extra` members.
fn snp_body(extra: Value) -> Value {
    let report = read(&format!("{T}/test-report.bin"));
    let certs = vec![
        read(&format!("{T}/test-vcek.der")),
        read(&format!("{G}/ask_ark_milan.pem")),
    ];
    let inner =
        json!({"SnpReport": b64u(&report), "VcekCertChain": b64u(pem_of(&certs).as_bytes())});
    let mut body = json!({"report": b64u(inner.to_string().as_bytes())});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

fn with_draft(policy: &str) -> Value {
    snp_body(json!({"draftPolicyForAttestation": policy}))
}

fn rego(rules: &str) -> String {
    format!(
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\n{rules}\n"
    )
}

/// A draft that admits the test evidence.
fn allowing() -> String {
    rego(r#"deny contains "never" if input.claims.tee == "none""#)
}

/// A draft nested `depth` arrays deep (the shape that made regorus's parser exponential).
fn nested(depth: usize) -> String {
    rego(&format!(
        "deny contains \"x\" if {{ {}1{} == 0 }}",
        "[".repeat(depth),
        "]".repeat(depth)
    ))
}

/// A draft that compiles at once and would search 10^9 combinations when evaluated.
fn slow() -> String {
    rego(
        "n := numbers.range(1, 1000)\n\ndeny contains \"slow\" if {\n  some a in n\n  some b in n\n  some c in n\n  a + b + c < 0\n}",
    )
}

fn server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            verification_time: Some(SNP_AT.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut s = start_with(cfg);
    s.dir = dir;
    // The real SNP vectors come without AMD CRLs: the default policy's revocation requirement
    // is switched off so that the stored policy admits them (drafts are what is tested here).
    let admin = s.admin_token();
    let r = put_policy(&s, &admin, &snp_without_revocation());
    assert_eq!(r.status, 200, "{}", r.text);
    s
}

fn attest(s: &TestServer, token: Option<&str>, body: &Value) -> Resp {
    s.post("/attest/SevSnpVm?api-version=2022-08-01", token, body)
}

fn assert_too_complex(r: &Resp, limit: &str) {
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "policy_too_complex", "{}", r.text);
    assert_eq!(r.header("x-ms-error-code"), Some("policy_too_complex"));
    let msg = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains(&format!("({limit})")), "{msg}");
}

#[test]
fn drafts_need_a_policy_manager() {
    if vectors().is_none() {
        return;
    }
    let s = server();
    let admin = s.admin_token();
    // Without a draft the route stays anonymous.
    let r = attest(&s, None, &snp_body(json!({})));
    assert_eq!(r.status, 200, "{}", r.text);

    // Anonymous draft (even the pathological one): 401 with the usual challenge, nothing run.
    for policy in [allowing(), nested(30)] {
        let t = Instant::now();
        let r = attest(&s, None, &with_draft(&policy));
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer authorization=")),
            "{:?}",
            r.headers
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    // The key spelled with a JSON escape is the same key: still refused.
    let escaped = format!(
        r#"{{"report": {}, "draft\u0050olicyForAttestation": {}}}"#,
        snp_body(json!({}))["report"],
        Value::String(allowing())
    );
    let r = s.call(
        "POST",
        "/attest/SevSnpVm?api-version=2022-08-01",
        None,
        Some(escaped.as_bytes()),
        &[],
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // A token of another issuer / garbage: 401.
    let r = attest(&s, Some("not-a-token"), &with_draft(&allowing()));
    assert_eq!(r.status, 401, "{}", r.text);

    // Authenticated without the policy role: 403.
    let (id, secret) = s.service_principal(&admin, "crypto-user");
    s.assign(&admin, &id, "CryptoUser", "/");
    let user = s.token_for_scope(&id, &secret, "https://attest.azure.net/.default");
    let r = attest(&s, Some(&user), &with_draft(&allowing()));
    assert_eq!(r.status, 403, "{}", r.text);
    // A Key Vault token is not an attestation token (audience per route family): 401.
    let kv = s.token_for(&id, &secret);
    let r = attest(&s, Some(&kv), &with_draft(&allowing()));
    assert_eq!(r.status, 401, "{}", r.text);

    // A policy author gets the dry run: an unsigned token nobody accepts.
    let r = attest(&s, Some(&admin), &with_draft(&allowing()));
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"].as_str().unwrap();
    assert!(token.ends_with('.'), "{token}");
    // A denying draft is a denial naming its rule.
    let r = attest(
        &s,
        Some(&admin),
        &with_draft(&rego("deny contains \"no\" if true")),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"]["failed"][0]["rule"], "no", "{}", r.text);
    // An MAA-language draft is accepted the same way.
    let r = attest(
        &s,
        Some(&admin),
        &with_draft("version=1.0; authorizationrules { => permit(); };"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn pathological_drafts_are_refused_quickly() {
    if vectors().is_none() {
        return;
    }
    let s = server();
    let admin = s.admin_token();
    // Nesting: refused before parsing, naming the bound (expected vs found).
    for depth in [MAX_NESTING_DEPTH + 1, 18, 30, 1000] {
        let t = Instant::now();
        let r = attest(&s, Some(&admin), &with_draft(&nested(depth)));
        let took = t.elapsed();
        assert_too_complex(&r, "nesting_depth");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("at most {MAX_NESTING_DEPTH} deep")),
            "{msg}"
        );
        assert!(took < Duration::from_secs(2), "depth {depth}: {took:?}");
    }
    // At the bound the draft is an ordinary policy.
    let r = attest(
        &s,
        Some(&admin),
        &with_draft(&nested(MAX_NESTING_DEPTH - 2)),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Over-size: 400 naming the size bound.
    let big = format!("{}# {}\n", allowing(), "a".repeat(MAX_SOURCE_BYTES));
    let r = attest(&s, Some(&admin), &with_draft(&big));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text
            .contains(&format!("at most {MAX_SOURCE_BYTES} bytes")),
        "{}",
        r.text
    );

    // A draft that runs long is stopped at the deadline: 400, never 500, never endless.
    let t = Instant::now();
    let r = attest(&s, Some(&admin), &with_draft(&slow()));
    let took = t.elapsed();
    assert_too_complex(&r, "deadline");
    assert!(
        took < DRAFT_DEADLINE + Duration::from_millis(1500),
        "{took:?}"
    );
    // The server is fine afterwards.
    let r = attest(&s, Some(&admin), &with_draft(&allowing()));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn healthz_answers_while_drafts_run_and_excess_drafts_are_refused() {
    if vectors().is_none() {
        return;
    }
    let s = server();
    let admin = s.admin_token();
    let slow_body = with_draft(&slow());
    std::thread::scope(|scope| {
        // Two slow drafts take both draft slots for the whole deadline.
        let running: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| attest(&s, Some(&admin), &slow_body)))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        // A third is refused at once: 503 with Retry-After, not queued.
        let t = Instant::now();
        let r = attest(&s, Some(&admin), &slow_body);
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.code(), "policy_evaluation_busy", "{}", r.text);
        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // Meanwhile health checks and ordinary attestation answer promptly.
        for _ in 0..5 {
            let t = Instant::now();
            let r = s.get("/healthz", None);
            assert!(r.status < 500, "{}", r.text);
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
            let t = Instant::now();
            let r = attest(&s, None, &snp_body(json!({})));
            assert_eq!(r.status, 200, "{}", r.text);
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
            std::thread::sleep(Duration::from_millis(100));
        }
        for h in running {
            let r = h.join().unwrap();
            assert_too_complex(&r, "deadline");
        }
    });
    // The slots are free again.
    let r = attest(&s, Some(&admin), &with_draft(&allowing()));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn stored_policies_are_bounded_too() {
    if vectors().is_none() {
        return;
    }
    let s = server();
    let admin = s.admin_token();
    let put = |policy: &str| {
        s.call(
            "PUT",
            "/policies/SevSnpVm",
            Some(&admin),
            Some(json!({"policy": policy}).to_string().as_bytes()),
            &[],
        )
    };
    // Upload: nesting and size bounds, before anything is stored.
    let t = Instant::now();
    let r = put(&nested(30));
    assert_too_complex(&r, "nesting_depth");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let r = put(&format!(
        "{}# {}\n",
        allowing(),
        "a".repeat(MAX_SOURCE_BYTES)
    ));
    assert_too_complex(&r, "source_bytes");
    // A 4000-term operator chain overflowed regorus's stack and aborted the process.
    let r = put(&format!("{}x := (1{})\n", allowing(), " +\n1".repeat(4000)));
    assert_too_complex(&r, "expression_operators");
    // None of the refused uploads replaced the stored policy (the one `server()` set).
    let r = s.get("/policies/SevSnpVm", Some(&admin));
    assert_eq!(r.body["policy"]["version"], 1, "{}", r.text);
    assert_eq!(r.body["policy"]["builtin"], false, "{}", r.text);

    // `:test` runs the draft under the same bounds.
    let r = s.post(
        "/policies/SevSnpVm:test",
        Some(&admin),
        &json!({"policy": nested(30), "request": snp_body(json!({}))}),
    );
    assert_too_complex(&r, "nesting_depth");
    let t = Instant::now();
    let r = s.post(
        "/policies/SevSnpVm:test",
        Some(&admin),
        &json!({"policy": slow(), "request": snp_body(json!({}))}),
    );
    assert_too_complex(&r, "deadline");
    assert!(
        t.elapsed() < DRAFT_DEADLINE + Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );

    // A stored policy that runs long: attestation answers 400 at the deadline, not 500.
    let r = put(&slow());
    assert_eq!(r.status, 200, "{}", r.text);
    let t = Instant::now();
    let r = attest(&s, None, &snp_body(json!({})));
    assert_too_complex(&r, "deadline");
    assert!(
        t.elapsed() < DRAFT_DEADLINE + Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    // A reset brings back the built-in default, which evaluates normally again (it denies the
    // vectors for the missing AMD CRL: a quick, explained 403, not the deadline).
    let r = s.post("/policies/SevSnpVm:reset", Some(&admin), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = attest(&s, None, &snp_body(json!({})));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.body["error"]["failed"][0]["rule"], "revocation_checked",
        "{}",
        r.text
    );
}
