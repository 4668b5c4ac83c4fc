//! `GET /openapi.json` over real HTTPS: the served document parses, names every operation the
//! matchers route (and only routable paths), and every documented GET that needs no stored object
//! is answered by the real server with something other than 404/405/500.

mod common;

use std::collections::BTreeSet;

use axum::http::Method;
use common::*;
use enclava_server::openapi::OPERATIONS;
use enclava_server::route::route;
use serde_json::Value;

const VERSION: &str = "0123456789abcdef0123456789abcdef";

/// Path parameters whose sample value exists on a fresh server (no stored object needed).
const STATELESS: [&str; 3] = ["tenant", "type", "scope"];

fn sample(path: &str) -> String {
    path.replace("{name}", "k1")
        .replace("{version}", VERSION)
        .replace("{tenant}", "t1")
        .replace("{id}", "p1")
        .replace("{type}", "SevSnpVm")
        .replace("{scope}", "default")
}

fn placeholders(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.split_once('}')))
        .map(|(p, _)| p)
        .collect()
}

fn fetch(t: &TestServer) -> (Resp, Value) {
    let r = t.get("/openapi.json", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    let doc: Value = serde_json::from_str(&r.text).expect("the document is JSON");
    // For external validators (e.g. openapi-spec-validator): where to leave a copy.
    if let Some(out) = std::env::var_os("ENCLAVA_OPENAPI_OUT") {
        std::fs::write(out, &r.text).expect("write the document copy");
    }
    (r, doc)
}

#[test]
fn served_document_matches_the_routes() {
    let t = start_dev();
    // Anonymous, like the discovery documents.
    let (r, doc) = fetch(&t);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], t.url.as_str());
    // Bounded and free of secrets: the bootstrap token and the data directory are not in it.
    assert!(r.text.len() < 256 * 1024, "{} bytes", r.text.len());
    let admin = t.admin_token();
    assert!(!r.text.contains(&admin));
    assert!(!r.text.contains(&data_dir_of(&t).display().to_string()));
    // Other methods are refused, not routed elsewhere.
    assert_eq!(t.post("/openapi.json", None, &Value::Null).status, 405);

    // Every operation in the document routes, to the operation it names.
    let paths = doc["paths"].as_object().expect("paths");
    let mut served = BTreeSet::new();
    for (path, item) in paths {
        for (m, o) in item.as_object().expect("path item") {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).expect("method");
            let routed = route(&method, &sample(path))
                .unwrap_or_else(|e| panic!("{m} {path} is documented but does not route: {e:?}"));
            assert_eq!(
                o["x-enclava-operation"].as_str(),
                Some(routed.operation()),
                "{m} {path}"
            );
            assert!(o["operationId"].is_string(), "{m} {path}");
            assert!(o["responses"]["default"].is_object(), "{m} {path}");
            served.insert((method.to_string(), path.clone()));
        }
    }
    // The served document is the whole table (the table is checked against the matchers in
    // `openapi::tests::every_routed_request_is_documented`).
    let table: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|o| (o.method.to_string(), o.path.to_string()))
        .collect();
    assert_eq!(served, table);
    // The permission shown is the permission enforced: a token without roles is refused with
    // exactly that action named.
    let keys_list = &doc["paths"]["/keys"]["get"];
    assert_eq!(keys_list["x-enclava-permission"], "keys/list");
    assert_eq!(keys_list["security"][0]["bearer"], serde_json::json!([]));
    let (cid, secret) = t.service_principal(&admin, "no-roles");
    let tok = t.token_for(&cid, &secret);
    let denied = t.get("/keys?api-version=7.6", Some(&tok));
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert!(denied.text.contains("keys/list"), "{}", denied.text);

    // Like the probes, the static document is not audited: fetching it repeatedly adds no
    // entry, while an audited anonymous route next to it does.
    for _ in 0..20 {
        assert_eq!(t.get("/openapi.json", None).status, 200);
    }
    assert_eq!(t.get("/certs", None).status, 200);
    let entries = wait_for_audit(&t, &admin, "/certs");
    let detail = |e: &Value| e["detail"].as_str().unwrap_or("").to_string();
    assert!(
        !entries.iter().any(|e| detail(e).contains("/openapi.json")),
        "{entries:#?}"
    );
}

/// The audit entries once one whose detail names `route` is there (group commit is async).
fn wait_for_audit(t: &TestServer, admin: &str, route: &str) -> Vec<Value> {
    for _ in 0..100 {
        let entries = t.audit_entries(admin);
        if entries
            .iter()
            .any(|e| e["detail"].as_str().is_some_and(|d| d.contains(route)))
        {
            return entries;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no audit entry for {route}");
}

#[test]
fn documented_stateless_gets_are_served() {
    let t = start_dev();
    let admin = t.admin_token();
    let (_, doc) = fetch(&t);
    let mut tried = 0;
    let mut answers = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if item.get("get").is_none() || !placeholders(path).iter().all(|p| STATELESS.contains(p)) {
            continue;
        }
        // Key Vault answers 404 for the contacts until some are set.
        if path == "/certificates/contacts" {
            continue;
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        // `/certificates` is MAA's (policy management certificates) with an MAA api-version;
        // with a Key Vault one it is Key Vault's certificate list (`/certificates/` always is).
        let api = if path == "/certificates" {
            "2022-08-01"
        } else {
            "7.6"
        };
        let url = format!("{}{sep}api-version={api}", sample(path));
        let r = t.get(&url, Some(&admin));
        answers.push(format!("GET {url} -> {} {}", r.status, r.code()));
        assert!(
            !matches!(r.status, 404 | 405 | 500),
            "GET {url}: {} {}",
            r.status,
            r.text
        );
        tried += 1;
    }
    eprintln!("{}", answers.join("\n"));
    // Health, identity discovery, operator status, administration lists, key/secret lists,
    // attestation discovery, policies and reference values at least.
    assert!(tried >= 20, "only {tried} GETs tried: {answers:#?}");
}

#[test]
fn document_is_served_while_sealed() {
    // A sealed, uninitialized server still describes itself (nothing in it depends on state).
    let t = start_prod();
    let (_, doc) = fetch(&t);
    assert_eq!(
        doc["paths"]["/operator/init"]["post"]["operationId"],
        "OperatorInit"
    );
    assert_eq!(
        doc["paths"]["/operator/init"]["post"]["security"][0]["initToken"],
        serde_json::json!([])
    );
    // ...while the vault routes say sealed.
    assert_eq!(t.get("/keys?api-version=7.6", None).status, 503);
}
