//! The typed blocking HTTPS client for an Enclava server, shared by the CLI (`enclava key|secret|
//! cert|kbs|attest|...`) and the enclave runtime (`enclava-enclave`).
//!
//! One path for everything a client must get right, so the two callers cannot drift apart:
//! - TLS through `enclava-http` (rustls on aws-lc-rs), trusting either the public WebPKI roots or
//!   exactly the CA certificates of a pinned PEM file ([`load_ca_file`]);
//! - the bearer token, kept in a zeroizing buffer and never printed (`Debug` redacts it);
//! - the Key Vault `api-version` on data-plane routes;
//! - request and response bodies as the server's own wire types (enclava-vault's `model`, behind
//!   the default `vault` feature; attestation and release shapes in [`wire`]);
//! - errors typed as the server sent them: HTTP status, `{"error":{code,message}}`, the inner code
//!   and the failed rules of a denial ([`ApiError`]);
//! - paging through `nextLink`, which is only ever followed on the configured server, so the token
//!   is never sent to a host a response named.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroizing;

pub mod wire;

/// The server's Key Vault wire models (keys, secrets, attributes, deleted bundles, backups).
#[cfg(feature = "vault")]
pub use enclava_vault::model;

/// The server's Key Vault certificate wire models (policy, bundle, operation, create/import/merge).
#[cfg(feature = "vault")]
pub use enclava_vault::certmodel;

/// Key Vault data-plane API version the clients speak.
pub const API_VERSION: &str = "7.6";

/// Largest response body read (backups of keys with many versions can be large).
pub const MAX_BODY: u64 = 16 * 1024 * 1024;

/// Most pages followed when listing, so a misbehaving server cannot keep a client looping forever.
pub const MAX_PAGES: usize = 10_000;

/// How a failed request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client configuration is unusable (URL, token, CA file): nothing was sent.
    #[error("{0}")]
    Config(String),
    /// The server answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The server could not be reached (connection, TLS, timeout).
    #[error("{0}")]
    Transport(String),
    /// The server answered success with a body that is not what the route promises.
    #[error("{0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One failed rule or condition of a denial (`error.failed[]` of the attestation service).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailedRule {
    #[serde(default)]
    pub rule: String,
    #[serde(default, alias = "path")]
    pub claim_path: String,
    #[serde(default)]
    pub expected: String,
    #[serde(default)]
    pub found: String,
}

/// An error answer of the server: `{"error": {"code", "message", "innererror"?: {"code"},
/// "failed"?: [...]}}` and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// `error.code`; empty when the body had none.
    pub code: String,
    /// `error.message`; `None` when the body had none.
    pub message: Option<String>,
    /// `error.innererror.code` (e.g. `ReleasePolicyNotSatisfied`).
    pub inner_code: Option<String>,
    /// `error.failed` (at most 64 entries).
    pub failed: Vec<FailedRule>,
    /// The start of the body (300 characters) when it was not a Key Vault error object, so a
    /// proxy's HTML or plain-text answer can still be shown.
    pub body_excerpt: String,
}

impl ApiError {
    /// The code, or the status' name when the body carried none.
    pub fn code_or_status(&self) -> String {
        if self.code.is_empty() {
            status_name(self.status).to_string()
        } else {
            self.code.clone()
        }
    }

    /// The message, else the body excerpt, else "(no message)".
    pub fn message_or_body(&self) -> String {
        let m = self
            .message
            .clone()
            .unwrap_or_else(|| self.body_excerpt.clone());
        if m.trim().is_empty() {
            "(no message)".to_string()
        } else {
            m
        }
    }

    /// Whether this is a server-side failure (5xx) rather than a refusal (4xx).
    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server answered {} {}: {}",
            self.status,
            self.code_or_status(),
            self.message_or_body()
        )
    }
}

/// Where the server is and how to authenticate to it.
#[derive(Clone)]
pub struct Config {
    /// `https://host[:port][/prefix]`.
    pub url: String,
    /// Bearer token (sent on every request when set).
    pub token: Option<Zeroizing<String>>,
    /// PEM file with the CA certificate(s) to trust (default: the public WebPKI roots).
    pub ca_cert: Option<PathBuf>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// `User-Agent` header, e.g. `enclava-cli/0.1.0`.
    pub user_agent: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Config {
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            token: None,
            ca_cert: None,
            timeout: Duration::from_secs(60),
            user_agent: concat!("enclava-client/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// One query parameter.
pub type Query<'a> = &'a [(&'a str, &'a str)];

/// A connection to one Enclava server.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<Zeroizing<String>>,
    pinned_ca: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("pinned_ca", &self.pinned_ca.len())
            .finish()
    }
}

/// Check a server base URL: `https://host[:port][/prefix]` with no query, fragment or credentials;
/// returns it without a trailing slash.
pub fn normalize_base_url(raw: &str) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let Some(rest) = trimmed.strip_prefix("https://") else {
        return Err(Error::Config(format!(
            "server URL must start with https:// (the server speaks only TLS), found {trimmed:?}"
        )));
    };
    if rest.is_empty() {
        return Err(Error::Config("server URL has no host".into()));
    }
    if rest.contains(['?', '#', '@', ' ']) {
        return Err(Error::Config(format!(
            "server URL must be https://host[:port][/prefix] without query, fragment or credentials, found {trimmed:?}"
        )));
    }
    Ok(trimmed.to_string())
}

/// A token must be non-empty and without whitespace or control characters (it goes into a header).
pub fn check_token(token: &str) -> Result<()> {
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::Config(
            "the token is empty or contains whitespace/control characters".into(),
        ));
    }
    Ok(())
}

/// The CA certificates of a PEM file: the root store to trust and their DER encodings.
pub fn load_ca_file(path: &Path) -> Result<(rustls::RootCertStore, Vec<Vec<u8>>)> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "cannot open CA certificate file {}: {e}",
            path.display()
        ))
    })?;
    load_ca_pem(&pem, &path.display().to_string())
}

/// [`load_ca_file`] over PEM bytes; `what` names their origin in errors.
pub fn load_ca_pem(pem: &[u8], what: &str) -> Result<(rustls::RootCertStore, Vec<Vec<u8>>)> {
    let certs = match enclava_evidence::pem::certificates(pem) {
        Ok(c) => c,
        Err(enclava_evidence::pem::PemError::NoBlock) => Vec::new(),
        Err(e) => {
            return Err(Error::Config(format!(
                "CA certificate file {what} is not valid PEM: {e}"
            )));
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for der in &certs {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(|e| {
                Error::Config(format!(
                    "CA certificate file {what} holds an unusable certificate: {e}"
                ))
            })?;
    }
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "CA certificate file {what} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok((roots, certs))
}

/// A ureq agent builder trusting exactly the CA certificates of `ca` (or the public WebPKI roots
/// when `None`): the one root-loading path for every Enclava client, including the benches' raw
/// agents.
pub fn agent_builder(ca: Option<&Path>) -> Result<(ureq::AgentBuilder, Vec<Vec<u8>>)> {
    match ca {
        None => Ok((enclava_http::agent_builder(), Vec::new())),
        Some(path) => {
            let (roots, ders) = load_ca_file(path)?;
            let config = enclava_http::client_config(roots)
                .map_err(|e| Error::Config(format!("TLS configuration failed: {e}")))?;
            Ok((enclava_http::pinned_agent_builder(Arc::new(config)), ders))
        }
    }
}

impl Client {
    /// A client for `config`. Fails with [`Error::Config`] (nothing sent) when the URL, token or
    /// CA file is unusable.
    pub fn new(config: Config) -> Result<Client> {
        let base = normalize_base_url(&config.url)?;
        if let Some(t) = &config.token {
            check_token(t)?;
        }
        let (builder, pinned_ca) = agent_builder(config.ca_cert.as_deref())?;
        let agent = builder
            .timeout_connect(Duration::from_secs(10))
            .timeout(config.timeout.max(Duration::from_secs(1)))
            // Never follow a redirect: it would carry the bearer token to wherever it points.
            .redirects(0)
            .user_agent(&config.user_agent)
            .build();
        Ok(Client {
            agent,
            base,
            token: config.token,
            pinned_ca,
        })
    }

    /// The server's base URL (`https://host:port`, no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The CA certificates (DER) pinned for this server; empty with the public roots.
    pub fn pinned_ca(&self) -> &[Vec<u8>] {
        &self.pinned_ca
    }

    /// A Key Vault data-plane request (`?api-version=` added) with a typed body and answer.
    /// `path` starts with `/`; the caller has validated any names in it ([`check_name`]).
    pub fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        query: Query<'_>,
        body: Option<&B>,
    ) -> Result<T> {
        let v = self.json(method, path, query, body)?;
        from_value(path, v)
    }

    /// A typed GET on a Key Vault data-plane route.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: Query<'_>) -> Result<T> {
        self.send::<(), T>("GET", path, query, None)
    }

    /// A data-plane request answered as untyped JSON (`Value::Null` for an empty body), for
    /// callers that print the server's answer as it came.
    pub fn json<B: Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        query: Query<'_>,
        body: Option<&B>,
    ) -> Result<Value> {
        let bytes = match body {
            Some(b) => Some(Zeroizing::new(serde_json::to_vec(b).map_err(|e| {
                Error::Config(format!("cannot encode the request as JSON: {e}"))
            })?)),
            None => None,
        };
        self.raw(
            method,
            path,
            query,
            bytes.as_deref().map(|b| b.as_slice()),
            true,
        )
    }

    /// A request with a pre-serialized JSON body (for bodies holding secrets that the caller keeps
    /// in zeroizing buffers). `api_version` adds `?api-version=` (Key Vault routes; the
    /// attestation and Enclava routes have none).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        query: Query<'_>,
        body: Option<&[u8]>,
        api_version: bool,
    ) -> Result<Value> {
        let url = format!("{}{}", self.base, path);
        self.call_url(method, &url, query, body, api_version)
    }

    fn call_url(
        &self,
        method: &str,
        url: &str,
        query: Query<'_>,
        body: Option<&[u8]>,
        api_version: bool,
    ) -> Result<Value> {
        let mut req = self
            .agent
            .request(method, url)
            .set("Accept", "application/json");
        if api_version {
            req = req.query("api-version", API_VERSION);
        }
        for (k, v) in query {
            req = req.query(k, v);
        }
        if let Some(t) = &self.token {
            let header = Zeroizing::new(format!("Bearer {}", t.as_str()));
            req = req.set("Authorization", &header);
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            // Key Vault's action routes (recover, backup, ...) take an empty JSON object.
            None if matches!(method, "POST" | "PUT" | "PATCH") => req
                .set("Content-Type", "application/json")
                .send_bytes(b"{}"),
            None => req.call(),
        };
        match result {
            Ok(resp) => read_json(resp, url),
            Err(ureq::Error::Status(status, resp)) => {
                let text = read_body(resp).unwrap_or_default();
                Err(Error::Api(Box::new(decode_error(status, &text))))
            }
            Err(ureq::Error::Transport(t)) => Err(Error::Transport(format!(
                "cannot reach the server: {}",
                describe_transport(&t)
            ))),
        }
    }

    /// GET a route answering something other than JSON (e.g. a PEM certificate), returning the
    /// body as it came (at most [`MAX_BODY`] bytes). No `api-version` (native Enclava routes).
    pub fn get_bytes(&self, path: &str, accept: &str) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.agent.get(&url).set("Accept", accept);
        if let Some(t) = &self.token {
            let header = Zeroizing::new(format!("Bearer {}", t.as_str()));
            req = req.set("Authorization", &header);
        }
        match req.call() {
            Ok(resp) => {
                let mut buf = Vec::new();
                resp.into_reader()
                    .take(MAX_BODY)
                    .read_to_end(&mut buf)
                    .map_err(|e| {
                        Error::Transport(format!("reading the response from {url} failed: {e}"))
                    })?;
                Ok(buf)
            }
            Err(ureq::Error::Status(status, resp)) => {
                let text = read_body(resp).unwrap_or_default();
                Err(Error::Api(Box::new(decode_error(status, &text))))
            }
            Err(ureq::Error::Transport(t)) => Err(Error::Transport(format!(
                "cannot reach the server: {}",
                describe_transport(&t)
            ))),
        }
    }

    /// GET a Key Vault collection and follow `nextLink` to the end, returning every item as the
    /// server sent it. `nextLink`s are only followed on this server ([`follow_url`]).
    pub fn list_json(&self, path: &str, query: Query<'_>) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut page = self.json::<()>("GET", path, query, None)?;
        for _ in 0..MAX_PAGES {
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(v)) => items.extend(v),
                Some(Value::Null) | None => {}
                Some(other) => {
                    return Err(Error::Decode(format!(
                        "unexpected list response from {path}: `value` is {} instead of an array",
                        json_kind(&other)
                    )));
                }
            }
            let next = match page.get("nextLink") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Ok(items),
            };
            let url = follow_url(&self.base, &next).ok_or_else(|| {
                Error::Decode(format!("the server returned an unusable nextLink {next:?}"))
            })?;
            page = self.call_url("GET", &url, &[], None, false)?;
        }
        Err(Error::Decode(format!(
            "listing {path} did not end after {MAX_PAGES} pages"
        )))
    }

    /// [`Client::list_json`] with every item decoded as `T` (e.g. `model::KeyItem`).
    pub fn list<T: DeserializeOwned>(&self, path: &str, query: Query<'_>) -> Result<Vec<T>> {
        self.list_json(path, query)?
            .into_iter()
            .map(|v| from_value(path, v))
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Attestation and key release (the enclave's protocol)

    /// `GET /challenge`: a fresh nonce from the attestation service.
    pub fn challenge(&self) -> Result<wire::Challenge> {
        let v = self.raw("GET", "/challenge", &[], None, false)?;
        let c: wire::Challenge = from_value("/challenge", v)?;
        if c.nonce.is_empty() || c.nonce.len() > 1024 {
            return Err(Error::Decode(
                "GET /challenge: expected {\"nonce\": ...}, found none".into(),
            ));
        }
        Ok(c)
    }

    /// `POST /attest/native` with a prepared request body (evidence, runtime data, nonce).
    pub fn attest_native(&self, body: &Value) -> Result<wire::AttestationResult> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Config(format!("attestation request does not serialize: {e}")))?;
        let v = self.raw("POST", "/attest/native", &[], Some(&bytes), false)?;
        from_value("/attest/native", v)
    }

    /// `POST /keys/{name}[/{version}]/release`: the key wrapped for the attested workload.
    pub fn release_key(
        &self,
        name: &str,
        version: Option<&str>,
        request: &wire::ReleaseRequest,
    ) -> Result<wire::ReleaseResult> {
        let path = format!("{}/release", key_path(name, version)?);
        self.send("POST", &path, &[], Some(request))
    }

    /// `GET /keys/{name}[/{version}]` decoded as a JSON Web Key bundle (public parts).
    #[cfg(feature = "vault")]
    pub fn get_key(&self, name: &str, version: Option<&str>) -> Result<model::KeyBundle> {
        self.get(&key_path(name, version)?, &[])
    }
}

/// `/keys/{name}[/{version}]` with both parts checked, so no name can change which route is called.
pub fn key_path(name: &str, version: Option<&str>) -> Result<String> {
    check_name("key", name)?;
    match version {
        Some(v) if !v.is_empty() => {
            check_version(v)?;
            Ok(format!("/keys/{name}/{v}"))
        }
        _ => Ok(format!("/keys/{name}")),
    }
}

/// Key Vault object names: 1 to 127 letters, digits and dashes.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid {kind} name {name:?}: expected 1 to 127 letters, digits and dashes"
        )))
    }
}

/// Object versions: 1 to 64 letters and digits.
pub fn check_version(version: &str) -> Result<()> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid version {version:?}: expected 1 to 64 letters and digits"
        )))
    }
}

/// The URL to fetch for a `nextLink`: always on the configured server (the token never goes
/// anywhere else). A link that names another host (say the server's canonical name while the
/// client uses an IP address) keeps its path and query but is sent to our origin.
pub fn follow_url(base: &str, next: &str) -> Option<String> {
    if next.starts_with(&format!("{base}/")) {
        return Some(next.to_string());
    }
    let after_scheme = next
        .strip_prefix("https://")
        .or_else(|| next.strip_prefix("http://"))?;
    let path = after_scheme.get(after_scheme.find('/')?..)?;
    let base_rest = base.strip_prefix("https://")?;
    let origin_len = "https://".len() + base_rest.find('/').unwrap_or(base_rest.len());
    Some(format!("{}{path}", base.get(..origin_len)?))
}

fn from_value<T: DeserializeOwned>(path: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| {
        Error::Decode(format!(
            "unexpected response from {path}: {e} (expected the route's JSON object)"
        ))
    })
}

fn describe_transport(t: &ureq::Transport) -> String {
    let mut msg = t.to_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("invalid peer")
    {
        msg.push_str(
            " (TLS verification failed: pass --ca-cert or set ENCLAVA_CA_CERT to the server's CA)",
        );
    } else if lower.contains("connection refused") {
        msg.push_str(" (is the server running at that address?)");
    }
    msg
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_body(resp: ureq::Response) -> std::io::Result<String> {
    let mut text = String::new();
    resp.into_reader()
        .take(MAX_BODY)
        .read_to_string(&mut text)?;
    Ok(text)
}

fn read_json(resp: ureq::Response, url: &str) -> Result<Value> {
    let text = read_body(resp)
        .map_err(|e| Error::Transport(format!("reading the response from {url} failed: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        Error::Decode(format!(
            "the server's response is not JSON ({e}); expected a JSON object"
        ))
    })
}

fn as_text(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// Decode an error answer's body (Key Vault's `{"error": {...}}`, or anything else).
pub fn decode_error(status: u16, text: &str) -> ApiError {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let Some(v) = parsed.filter(Value::is_object) else {
        return ApiError {
            status,
            code: String::new(),
            message: None,
            inner_code: None,
            failed: Vec::new(),
            body_excerpt: truncate(text, 300),
        };
    };
    let err = v.get("error").unwrap_or(&v);
    let failed = err
        .get("failed")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(64)
                .map(|f| FailedRule {
                    rule: as_text(f.get("rule")).unwrap_or_default(),
                    claim_path: as_text(f.get("claim_path").or_else(|| f.get("path")))
                        .unwrap_or_default(),
                    expected: as_text(f.get("expected")).unwrap_or_default(),
                    found: as_text(f.get("found")).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    ApiError {
        status,
        code: err
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        message: err
            .get("message")
            .and_then(Value::as_str)
            .map(|m| m.chars().take(4000).collect()),
        inner_code: err
            .pointer("/innererror/code")
            .and_then(Value::as_str)
            .map(str::to_string),
        failed,
        body_excerpt: truncate(text, 300),
    }
}

/// Names for statuses whose body carried no code.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        503 => "ServiceUnavailable",
        _ => "HttpError",
    }
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", s.get(..i).unwrap_or_default()),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_must_be_https_without_extras() {
        assert_eq!(
            normalize_base_url("https://127.0.0.1:8443/").unwrap(),
            "https://127.0.0.1:8443"
        );
        for bad in [
            "http://127.0.0.1:8443",
            "https://",
            "https://u:p@host",
            "https://host/?x=1",
        ] {
            assert!(
                matches!(normalize_base_url(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_and_versions_cannot_escape_the_path() {
        assert!(check_name("key", "my-key-1").is_ok());
        for bad in ["", "a/b", "..", "a?b", "a b", "é", &"a".repeat(128)] {
            assert!(check_name("key", bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_version("0123abcdef").is_ok());
        assert!(check_version("a-b").is_err());
        assert_eq!(key_path("k", Some("v1")).unwrap(), "/keys/k/v1");
        assert_eq!(key_path("k", None).unwrap(), "/keys/k");
        assert!(key_path("k/../x", None).is_err());
        assert!(key_path("k", Some("../x")).is_err());
    }

    #[test]
    fn next_links_stay_on_the_configured_server() {
        let base = "https://127.0.0.1:8443";
        let same = "https://127.0.0.1:8443/keys?api-version=7.6&$skiptoken=abc";
        assert_eq!(follow_url(base, same).as_deref(), Some(same));
        assert_eq!(
            follow_url(base, "https://evil.example/keys?x=1").as_deref(),
            Some("https://127.0.0.1:8443/keys?x=1")
        );
        assert_eq!(
            follow_url("https://h/prefix", "https://other/prefix/keys?y").as_deref(),
            Some("https://h/prefix/keys?y")
        );
        assert_eq!(follow_url(base, "/relative"), None);
        assert_eq!(follow_url(base, "https://nohost"), None);
    }

    #[test]
    fn error_bodies_decode() {
        let e = decode_error(
            403,
            r#"{"error": {"code": "attestation_denied", "message": "denied",
            "failed": [{"rule": "measurement_not_allowed", "claim_path": "claims.measurement",
                        "expected": "one of [a]", "found": "b"}]}}"#,
        );
        assert_eq!(e.code, "attestation_denied");
        assert_eq!(e.message.as_deref(), Some("denied"));
        assert_eq!(e.failed.len(), 1);
        assert_eq!(e.failed[0].claim_path, "claims.measurement");
        let e = decode_error(
            403,
            r#"{"error": {"code": "Forbidden", "message": "m", "innererror": {"code": "ReleasePolicyNotSatisfied"}}}"#,
        );
        assert_eq!(e.inner_code.as_deref(), Some("ReleasePolicyNotSatisfied"));
        let e = decode_error(502, "<html>bad gateway</html>");
        assert_eq!(e.code_or_status(), "HttpError");
        assert_eq!(e.message_or_body(), "<html>bad gateway</html>");
        assert!(e.is_server_error());
        let e = decode_error(404, "");
        assert_eq!(e.code_or_status(), "NotFound");
        assert_eq!(e.message_or_body(), "(no message)");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let mut c = Config::new("https://127.0.0.1:1");
        c.token = Some(Zeroizing::new("sekret-token-value".into()));
        assert!(!format!("{c:?}").contains("sekret"));
        let client = Client::new(c).unwrap();
        assert!(!format!("{client:?}").contains("sekret"));
        let mut bad = Config::new("https://127.0.0.1:1");
        bad.token = Some(Zeroizing::new("a b".into()));
        assert!(matches!(Client::new(bad), Err(Error::Config(_))));
    }

    #[test]
    fn ca_files_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here").unwrap();
        assert!(matches!(load_ca_file(&empty), Err(Error::Config(_))));
        assert!(matches!(
            load_ca_file(&dir.path().join("missing.pem")),
            Err(Error::Config(_))
        ));
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, cert.cert.pem()).unwrap();
        let (roots, ders) = load_ca_file(&good).unwrap();
        assert_eq!(roots.len(), 1);
        assert_eq!(ders, vec![cert.cert.der().to_vec()]);
    }
}
