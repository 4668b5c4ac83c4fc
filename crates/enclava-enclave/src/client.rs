//! Step (c), the network half: a small blocking HTTPS client for the attestation service and the
//! vault (challenge, native attestation, key release, public key reads).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{EnclaveError, FailedRule};

/// Key Vault API version used on key routes.
pub const API_VERSION: &str = "7.6";
const MAX_BODY: u64 = 4 * 1024 * 1024;

/// Where the server is and how to talk to it.
#[derive(Clone)]
pub struct Connection {
    /// `https://host:port` (no trailing slash).
    pub url: String,
    /// Bearer token of the workload host's identity (Release User on the keys it needs).
    pub token: Option<Zeroizing<String>>,
    /// PEM file with the CA certificate(s) of the server (default: the public web PKI).
    pub ca_cert: Option<PathBuf>,
    /// Request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

/// An error answer of the server (4xx / 5xx), decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub failed: Vec<FailedRule>,
}

/// What a call produced: a JSON body, an error answer, or a transport failure.
#[derive(Debug)]
pub enum CallError {
    Http(HttpError),
    Transport(String),
}

impl CallError {
    /// A 4xx becomes `refused` (when given) or bad input; 5xx and transport failures are server
    /// errors.
    pub fn into_enclave(self, what: &str) -> EnclaveError {
        match self {
            CallError::Transport(t) => EnclaveError::Server(format!("{what}: {t}")),
            CallError::Http(h) => EnclaveError::Server(format!(
                "{what}: server answered {} {}: {}",
                h.status, h.code, h.message
            )),
        }
    }
}

/// The HTTPS client.
pub struct Client {
    agent: ureq::Agent,
    conn: Connection,
    /// The CA certificates (DER) pinned with `ca_cert`; empty with the system roots.
    pinned_ca: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("conn", &self.conn).finish()
    }
}

fn load_roots(path: &PathBuf) -> Result<(rustls::RootCertStore, Vec<Vec<u8>>), EnclaveError> {
    use rustls::pki_types::CertificateDer;
    let pem = std::fs::read(path).map_err(|e| {
        EnclaveError::bad(format!(
            "cannot open CA certificate file {}: {e}",
            path.display()
        ))
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let mut ders = Vec::new();
    let certs = match enclava_evidence::pem::certificates(&pem) {
        Ok(c) => c,
        Err(enclava_evidence::pem::PemError::NoBlock) => Vec::new(),
        Err(e) => {
            return Err(EnclaveError::bad(format!(
                "CA file {} is not valid PEM: {e}",
                path.display()
            )));
        }
    };
    for der in certs {
        let cert = CertificateDer::from(der.clone());
        ders.push(der);
        roots.add(cert).map_err(|e| {
            EnclaveError::bad(format!(
                "CA file {} holds an unusable certificate: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(EnclaveError::bad(format!(
            "CA file {}: expected PEM certificates, found none",
            path.display()
        )));
    }
    Ok((roots, ders))
}

impl Client {
    pub fn new(conn: Connection) -> Result<Client, EnclaveError> {
        let url = conn.url.trim().trim_end_matches('/').to_string();
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            return Err(EnclaveError::bad(format!(
                "server URL: expected https://host[:port], found {url:?}"
            )));
        }
        let mut b = enclava_http::agent_builder()
            .timeout_connect(Duration::from_secs(10))
            .timeout(conn.timeout.max(Duration::from_secs(1)))
            .redirects(0)
            .user_agent(concat!("enclava-enclave/", env!("CARGO_PKG_VERSION")));
        let mut pinned_ca = Vec::new();
        if let Some(ca) = &conn.ca_cert {
            let (roots, ders) = load_roots(ca)?;
            pinned_ca = ders;
            let config = enclava_http::client_config(roots)
                .map_err(|e| EnclaveError::internal(format!("TLS configuration failed: {e}")))?;
            b = b.tls_connector(enclava_http::connector(Arc::new(config)));
        }
        Ok(Client {
            agent: b.build(),
            conn: Connection { url, ..conn },
            pinned_ca,
        })
    }

    /// The CA certificates (DER) pinned for this server; empty with the system roots.
    pub fn pinned_ca(&self) -> &[Vec<u8>] {
        &self.pinned_ca
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.conn.url
    }

    /// One JSON call. `api_version` adds `?api-version=` (key routes).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        api_version: bool,
    ) -> Result<Value, CallError> {
        let url = format!("{}{}", self.conn.url, path);
        let mut req = self
            .agent
            .request(method, &url)
            .set("Accept", "application/json");
        if api_version {
            req = req.query("api-version", API_VERSION);
        }
        if let Some(t) = &self.conn.token {
            req = req.set("Authorization", &format!("Bearer {}", t.as_str()));
        }
        let res = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            None => req.call(),
        };
        match res {
            Ok(resp) => read_json(resp).map_err(CallError::Transport),
            Err(ureq::Error::Status(status, resp)) => {
                let body = read_json(resp).unwrap_or(Value::Null);
                Err(CallError::Http(decode_error(status, &body)))
            }
            Err(ureq::Error::Transport(t)) => Err(CallError::Transport(format!(
                "cannot reach {}: {t}",
                self.conn.url
            ))),
        }
    }
}

fn read_json(resp: ureq::Response) -> Result<Value, String> {
    let mut buf = Vec::new();
    resp.into_reader()
        .take(MAX_BODY)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&buf).map_err(|e| format!("the answer is not JSON: {e}"))
}

fn as_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `{"error": {"code", "message", "failed"?: [{rule, claim_path, expected, found}],
/// "innererror"?: {"code"}}}`.
pub fn decode_error(status: u16, body: &Value) -> HttpError {
    let err = body.get("error").unwrap_or(&Value::Null);
    let mut code = as_text(err.get("code"));
    if let Some(inner) = err.pointer("/innererror/code").and_then(Value::as_str) {
        code = format!("{code}/{inner}");
    }
    let failed = err
        .get("failed")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(64)
                .map(|f| FailedRule {
                    rule: as_text(f.get("rule")),
                    claim_path: as_text(f.get("claim_path").or_else(|| f.get("path"))),
                    expected: as_text(f.get("expected")),
                    found: as_text(f.get("found")),
                })
                .collect()
        })
        .unwrap_or_default();
    HttpError {
        status,
        code: if code.is_empty() {
            "unknown".into()
        } else {
            code
        },
        message: as_text(err.get("message")).chars().take(4000).collect(),
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies_decode() {
        let b = json!({"error": {"code": "attestation_denied", "message": "denied",
            "failed": [{"rule": "measurement_not_allowed", "claim_path": "claims.measurement",
                        "expected": "one of [a]", "found": "b"}]}});
        let e = decode_error(403, &b);
        assert_eq!(e.code, "attestation_denied");
        assert_eq!(e.failed.len(), 1);
        assert_eq!(e.failed[0].claim_path, "claims.measurement");
        let b = json!({"error": {"code": "Forbidden", "message": "m", "innererror": {"code": "ReleasePolicyNotSatisfied"}}});
        assert_eq!(
            decode_error(403, &b).code,
            "Forbidden/ReleasePolicyNotSatisfied"
        );
        assert_eq!(decode_error(500, &Value::Null).code, "unknown");
    }

    #[test]
    fn only_https() {
        let c = |url: &str| {
            Client::new(Connection {
                url: url.into(),
                token: None,
                ca_cert: None,
                timeout: Duration::from_secs(1),
            })
        };
        assert!(matches!(c("http://x"), Err(EnclaveError::BadInput(_))));
        assert!(matches!(c("https://"), Err(EnclaveError::BadInput(_))));
        assert_eq!(c("https://h:1/").unwrap().base(), "https://h:1");
    }
}
