//! Step (c), the network half: the blocking HTTPS client for the attestation service and the
//! vault (challenge, native attestation, key release, public key reads), over the typed
//! `enclava-client` shared with the CLI (one TLS/root-loading path, one error decoding).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{EnclaveError, FailedRule};

/// Key Vault API version used on key routes.
pub const API_VERSION: &str = enclava_client::API_VERSION;

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
    /// `error.code`, with `/innererror.code` appended when present; `unknown` when absent.
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

impl From<enclava_client::ApiError> for HttpError {
    fn from(a: enclava_client::ApiError) -> Self {
        let code = match (a.code.is_empty(), &a.inner_code) {
            (_, Some(inner)) => format!("{}/{inner}", a.code),
            (false, None) => a.code,
            (true, None) => "unknown".into(),
        };
        HttpError {
            status: a.status,
            code,
            message: a.message.unwrap_or_default(),
            failed: a
                .failed
                .into_iter()
                .map(|f| FailedRule {
                    rule: f.rule,
                    claim_path: f.claim_path,
                    expected: f.expected,
                    found: f.found,
                })
                .collect(),
        }
    }
}

impl From<enclava_client::Error> for CallError {
    fn from(e: enclava_client::Error) -> Self {
        match e {
            enclava_client::Error::Api(a) => CallError::Http((*a).into()),
            enclava_client::Error::Config(m)
            | enclava_client::Error::Transport(m)
            | enclava_client::Error::Decode(m) => CallError::Transport(m),
        }
    }
}

/// The HTTPS client: the shared typed `enclava-client` (one TLS/root-loading path with the CLI).
pub struct Client {
    inner: enclava_client::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // enclava_client::Client's Debug redacts the token.
        f.debug_struct("Client")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Client {
    pub fn new(conn: Connection) -> Result<Client, EnclaveError> {
        let config = enclava_client::Config {
            url: conn.url,
            token: conn.token,
            ca_cert: conn.ca_cert,
            timeout: conn.timeout,
            user_agent: concat!("enclava-enclave/", env!("CARGO_PKG_VERSION")).to_string(),
        };
        let inner = enclava_client::Client::new(config).map_err(|e| match e {
            enclava_client::Error::Config(m) => EnclaveError::bad(m),
            other => EnclaveError::internal(other.to_string()),
        })?;
        Ok(Client { inner })
    }

    /// The shared typed client (challenge, attestation, release, key reads).
    pub fn typed(&self) -> &enclava_client::Client {
        &self.inner
    }

    /// The CA certificates (DER) pinned for this server; empty with the system roots.
    pub fn pinned_ca(&self) -> &[Vec<u8>] {
        self.inner.pinned_ca()
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        self.inner.base()
    }

    /// One JSON call. `api_version` adds `?api-version=` (key routes).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        api_version: bool,
    ) -> Result<Value, CallError> {
        Ok(self.inner.raw(method, path, &[], body, api_version)?)
    }
}

/// `{"error": {"code", "message", "failed"?: [{rule, claim_path, expected, found}],
/// "innererror"?: {"code"}}}`.
pub fn decode_error(status: u16, body: &Value) -> HttpError {
    enclava_client::decode_error(status, &body.to_string()).into()
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
