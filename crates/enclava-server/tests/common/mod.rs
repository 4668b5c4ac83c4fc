//! Test harness: start the real server in-process on 127.0.0.1:0 over real TLS and talk to it
//! with a real HTTPS client (ureq + rustls) that trusts only the server's generated CA.

#![allow(dead_code)]

pub mod postgres;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use enclava_server::{PartialConfig, RunningServer, ServerConfig};
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub server: RunningServer,
    pub url: String,
    pub agent: ureq::Agent,
    pub rt: tokio::runtime::Runtime,
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> &str {
        self.body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

pub fn data_dir_of(t: &TestServer) -> PathBuf {
    t.dir.path().join("data")
}

/// A rustls client config trusting exactly the PEM certificates in `ca`.
pub fn client_tls(ca: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("read ca.pem");
        for c in <rustls::pki_types::CertificateDer as PemObject>::pem_slice_iter(&pem) {
            roots.add(c.expect("parse ca.pem")).expect("add CA");
        }
    }
    Arc::new(enclava_http::client_config(roots).expect("protocol versions"))
}

pub fn agent_for(ca: Option<&Path>) -> ureq::Agent {
    enclava_http::pinned_agent_builder(client_tls(ca))
        .timeout(Duration::from_secs(30))
        .build()
}

pub fn start_with(config: ServerConfig) -> TestServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let data = config.data_dir.clone();
    let server = rt
        .block_on(enclava_server::start(config))
        .expect("server starts");
    let url = server.local_url.clone();
    let agent = agent_for(Some(&data.join("ca.pem")));
    // `dir` is owned by the caller-provided config's parent; see `start_dev`.
    TestServer {
        dir: tempfile::tempdir().expect("tmp"),
        server,
        url,
        agent,
        rt,
    }
}

fn config(dir: &Path, dev: bool) -> ServerConfig {
    PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.join("data")),
        dev: Some(dev),
        ..Default::default()
    }
    .resolve()
    .expect("config")
}

fn start_in(dir: tempfile::TempDir, dev: bool) -> TestServer {
    let cfg = config(dir.path(), dev);
    let mut t = start_with(cfg);
    t.dir = dir;
    t
}

/// A `--dev` server: initialized, unsealed, admin token in DATA_DIR/admin.token.
pub fn start_dev() -> TestServer {
    start_in(tempfile::tempdir().expect("tmp"), true)
}

/// A production-mode server on a fresh data directory: uninitialized and sealed.
pub fn start_prod() -> TestServer {
    start_in(tempfile::tempdir().expect("tmp"), false)
}

impl TestServer {
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(data_dir_of(self).join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string()
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.url, path)
        };
        let mut req = self.agent.request(method, &url);
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some(b) => {
                let has_ct = headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
                if !has_ct {
                    req = req.set("Content-Type", "application/json");
                }
                req.send_bytes(b)
            }
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: transport error {e}"),
        };
        let status = resp.status();
        let headers: Vec<(String, String)> = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let text = resp.into_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, None, &[])
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).expect("json");
        self.call("POST", path, token, Some(&b), &[])
    }

    pub fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).expect("json");
        self.call("PUT", path, token, Some(&b), &[])
    }

    /// Create a service principal (as admin) and return (client_id, client_secret).
    pub fn service_principal(&self, admin: &str, name: &str) -> (String, String) {
        let r = self.post(
            "/enclava/principals",
            Some(admin),
            &serde_json::json!({"kind": "service_principal", "display_name": name}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        (
            r.body["client_id"].as_str().expect("client_id").to_string(),
            r.body["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_string(),
        )
    }

    pub fn assign(&self, admin: &str, principal: &str, role: &str, scope: &str) {
        let r = self.post(
            "/enclava/role-assignments",
            Some(admin),
            &serde_json::json!({"principal": principal, "role": role, "scope": scope}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }

    /// Client-credentials token the way azure-identity asks for it (Key Vault scope).
    pub fn token_for(&self, client_id: &str, secret: &str) -> String {
        self.token_for_scope(client_id, secret, "https://vault.azure.net/.default")
    }

    /// Client-credentials token for `scope` (e.g. `https://attest.azure.net/.default`).
    pub fn token_for_scope(&self, client_id: &str, secret: &str, scope: &str) -> String {
        let form = format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={}&scope={}",
            form_encode(secret),
            form_encode(scope)
        );
        let r = self.call(
            "POST",
            "/contoso/oauth2/v2.0/token",
            None,
            Some(form.as_bytes()),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub fn audit_entries(&self, admin: &str) -> Vec<Value> {
        let r = self.get("/enclava/audit?from=1&limit=1000", Some(admin));
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["value"].as_array().cloned().unwrap_or_default()
    }
}

pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The default `snp` policy with the revocation requirement switched off: the real vectors come
/// without AMD CRLs, so this is the only way they can pass.
pub fn snp_without_revocation() -> String {
    let text = enclava_policy::rego::defaults::SNP;
    assert!(text.contains("require_revocation := true"));
    text.replace("require_revocation := true", "require_revocation := false")
}

pub fn put_policy(s: &TestServer, token: &str, body: &str) -> Resp {
    s.call(
        "PUT",
        "/policies/SevSnpVm?api-version=2022-08-01",
        Some(token),
        Some(body.as_bytes()),
        &[("Content-Type", "text/plain")],
    )
}
