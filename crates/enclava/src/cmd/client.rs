//! The HTTP client shared by the `key`, `secret`, `operator` and `audit` commands: connection
//! options, TLS with an operator-supplied CA, the error type with its exit codes, input decoding
//! helpers and output rendering.
//!
//! Exit codes: 0 success; 1 the server (or a verification) said no: 4xx such as not found, denied,
//! invalid signature; 2 unusable arguments or input (checked before anything is sent); 3 the server
//! failed (5xx, unexpected response) or could not be reached.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::Value;
use zeroize::Zeroizing;

/// Key Vault data-plane API version the CLI speaks.
pub const DEFAULT_API_VERSION: &str = "7.6";

/// Largest response body the CLI reads (backups of keys with many versions can be large).
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// Most pages followed when listing, so a misbehaving server cannot keep the CLI looping forever.
const MAX_PAGES: usize = 10_000;

pub use super::OutputFormat;

// Connection options shared by every client command; all can come from the environment. (A plain
// comment: a doc comment here would replace the about text of every command that flattens it.)
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection and output")]
pub struct ClientOpts {
    /// Server base URL, e.g. https://vault.example:8443.
    #[arg(long, env = "ENCLAVA_URL", global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token (prefer ENCLAVA_TOKEN or --token-file: command lines are visible to other users).
    #[arg(
        long,
        env = "ENCLAVA_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// File holding the bearer token (e.g. the dev server's DATA_DIR/admin.token); wins over --token.
    #[arg(long, env = "ENCLAVA_TOKEN_FILE", global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) to trust for the server (default: the public web PKI).
    #[arg(
        long = "ca-cert",
        env = "ENCLAVA_CA_CERT",
        global = true,
        value_name = "FILE"
    )]
    pub ca_cert: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 60, global = true, value_name = "SECONDS")]
    pub timeout: u64,
}

/// Everything that can go wrong in a client command; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Unusable arguments or local input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server answered 4xx (exit 1).
    #[error("server refused ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// The operation ran and its answer is "no": invalid signature, broken audit chain (exit 1).
    #[error("{0}")]
    Negative(String),
    /// The server answered 5xx (exit 3).
    #[error("server error ({status} {code}): {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached or its answer could not be understood (exit 3).
    #[error("{0}")]
    Transport(String),
}

impl CliError {
    pub fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Rejected { .. } | CliError::Negative(_) => 1,
            CliError::Server { .. } | CliError::Transport(_) => 3,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::Rejected { status: 401, .. } => Some(
                "authentication failed: set ENCLAVA_TOKEN (or --token / --token-file) to a valid token",
            ),
            CliError::Rejected { status: 403, .. } => Some(
                "the caller lacks a role for this operation, the object is disabled, or the vault is sealed",
            ),
            CliError::Rejected { status: 404, .. } => {
                Some("check the name (and version); `list` shows what exists")
            }
            CliError::Server { status: 503, .. } => Some(
                "if the vault is sealed, unseal it with `enclava operator unseal` (see `enclava operator status`)",
            ),
            _ => None,
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// Print the error (with a hint when one helps) and turn the result into the process exit code.
pub fn finish(result: CliResult<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            ExitCode::from(e.code())
        }
    }
}

pub fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

/// A connection to one Enclava server.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<Zeroizing<String>>,
    pub output: OutputFormat,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Check a server base URL: `https://host[:port]` with no query, fragment or credentials.
pub fn normalize_base_url(raw: &str) -> CliResult<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let Some(rest) = trimmed.strip_prefix("https://") else {
        return Err(usage(format!(
            "server URL must start with https:// (the server speaks only TLS), found {trimmed:?}"
        )));
    };
    if rest.is_empty() {
        return Err(usage("server URL has no host"));
    }
    if rest.contains(['?', '#', '@', ' ']) {
        return Err(usage(format!(
            "server URL must be https://host[:port][/prefix] without query, fragment or credentials, found {trimmed:?}"
        )));
    }
    Ok(trimmed.to_string())
}

fn load_roots(path: &Path) -> CliResult<rustls::RootCertStore> {
    let pem = fs::read(path).map_err(|e| {
        usage(format!(
            "cannot open CA certificate file {}: {e}",
            path.display()
        ))
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0usize;
    let certs = match enclava_evidence::pem::certificates(&pem) {
        Ok(c) => c,
        Err(enclava_evidence::pem::PemError::NoBlock) => Vec::new(),
        Err(e) => {
            return Err(usage(format!(
                "CA certificate file {} is not valid PEM: {e}",
                path.display()
            )));
        }
    };
    for cert in certs {
        roots
            .add(rustls::pki_types::CertificateDer::from(cert))
            .map_err(|e| {
                usage(format!(
                    "CA certificate file {} holds an unusable certificate: {e}",
                    path.display()
                ))
            })?;
        count += 1;
    }
    if count == 0 {
        return Err(usage(format!(
            "CA certificate file {} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(roots)
}

impl Client {
    /// A client for the configured server. Fails (exit 2) when no URL is configured or the CA
    /// file is unusable.
    pub fn new(opts: &ClientOpts) -> CliResult<Self> {
        let raw = opts
            .url
            .as_deref()
            .ok_or_else(|| usage("no server URL: pass --url or set ENCLAVA_URL"))?;
        let base = normalize_base_url(raw)?;
        // A token file, when given, wins over --token / ENCLAVA_TOKEN.
        let token = match (&opts.token, &opts.token_file) {
            (Some(t), None) => Some(Zeroizing::new(t.trim().to_string())),
            (_, Some(path)) => {
                let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| {
                    usage(format!("cannot read token file {}: {e}", path.display()))
                })?);
                Some(Zeroizing::new(text.trim().to_string()))
            }
            (None, None) => None,
        };
        if let Some(t) = &token
            && (t.is_empty() || t.chars().any(|c| c.is_control() || c == ' '))
        {
            return Err(usage(
                "the token is empty or contains whitespace/control characters",
            ));
        }
        let mut builder = enclava_http::agent_builder()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(opts.timeout.max(1)))
            .redirects(0)
            .user_agent(concat!("enclava-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &opts.ca_cert {
            let roots = load_roots(ca)?;
            let config = enclava_http::client_config(roots)
                .map_err(|e| CliError::Transport(format!("TLS configuration failed: {e}")))?;
            builder = builder.tls_connector(enclava_http::connector(Arc::new(config)));
        }
        Ok(Client {
            agent: builder.build(),
            base,
            token,
            output: opts.output,
        })
    }

    /// The server's base URL (`https://host:port`, no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn json_output(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// Send one request to `path` (which starts with `/`; the caller has validated any names in
    /// it) and return the parsed JSON body (`Value::Null` for an empty body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> CliResult<Value> {
        let url = format!("{}{}", self.base, path);
        let bytes = match body {
            Some(b) => Some(
                serde_json::to_vec(b)
                    .map_err(|e| usage(format!("cannot encode the request as JSON: {e}")))?,
            ),
            None => None,
        };
        self.call_url(method, &url, query, bytes.as_deref(), true)
    }

    /// Like [`Client::call`] with a pre-serialized JSON body, for bodies holding secrets that the
    /// caller keeps in zeroizing buffers.
    pub fn call_raw(&self, method: &str, path: &str, body: &[u8]) -> CliResult<Value> {
        let url = format!("{}{}", self.base, path);
        self.call_url(method, &url, &[], Some(body), true)
    }

    fn call_url(
        &self,
        method: &str,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        add_api_version: bool,
    ) -> CliResult<Value> {
        let mut req = self
            .agent
            .request(method, url)
            .set("Accept", "application/json");
        if add_api_version {
            req = req.query("api-version", DEFAULT_API_VERSION);
        }
        for (k, v) in query {
            req = req.query(k, v);
        }
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {}", t.as_str()));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
            None if method == "POST" || method == "PUT" || method == "PATCH" => req
                .set("Content-Type", "application/json")
                .send_bytes(b"{}"),
            None => req.call(),
        };
        match result {
            Ok(resp) => read_json(resp, url),
            Err(ureq::Error::Status(status, resp)) => Err(status_error(status, resp)),
            Err(ureq::Error::Transport(t)) => Err(CliError::Transport(format!(
                "cannot reach the server: {}",
                describe_transport(&t)
            ))),
        }
    }

    /// GET a Key Vault collection and follow `nextLink` to the end, returning all items.
    /// `nextLink`s must point back at this server: a token is never sent anywhere else.
    pub fn list_all(&self, path: &str, query: &[(&str, &str)]) -> CliResult<Vec<Value>> {
        let mut items = Vec::new();
        let mut page = self.call("GET", path, query, None)?;
        for _ in 0..MAX_PAGES {
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(v)) => items.extend(v),
                Some(Value::Null) | None => {}
                Some(other) => {
                    return Err(CliError::Transport(format!(
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
                CliError::Transport(format!("the server returned an unusable nextLink {next:?}"))
            })?;
            page = self.call_url("GET", &url, &[], None, false)?;
        }
        Err(CliError::Transport(format!(
            "listing {path} did not end after {MAX_PAGES} pages"
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

fn read_body(resp: ureq::Response) -> io::Result<String> {
    let mut text = String::new();
    resp.into_reader()
        .take(MAX_BODY)
        .read_to_string(&mut text)?;
    Ok(text)
}

fn read_json(resp: ureq::Response, url: &str) -> CliResult<Value> {
    let text = read_body(resp)
        .map_err(|e| CliError::Transport(format!("reading the response from {url} failed: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        CliError::Transport(format!(
            "the server's response is not JSON ({e}); expected a JSON object"
        ))
    })
}

fn status_error(status: u16, resp: ureq::Response) -> CliError {
    let text = read_body(resp).unwrap_or_default();
    let (code, message) = match serde_json::from_str::<Value>(&text) {
        Ok(v) => {
            let err = v.get("error").unwrap_or(&v);
            let code = err
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| truncate(&text, 300));
            (code, message)
        }
        Err(_) => (String::new(), truncate(&text, 300)),
    };
    let code = if code.is_empty() {
        status_name(status).to_string()
    } else {
        code
    };
    let message = if message.trim().is_empty() {
        "(no message)".to_string()
    } else {
        message
    };
    if status >= 500 {
        CliError::Server {
            status,
            code,
            message,
        }
    } else {
        CliError::Rejected {
            status,
            code,
            message,
        }
    }
}

fn status_name(status: u16) -> &'static str {
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

// ---------------------------------------------------------------------------------------------
// Input helpers

/// Key Vault object names: 1 to 127 letters, digits and dashes. Checked before a name goes into a
/// URL path, so no name can change which route is called.
pub fn check_name(kind: &str, name: &str) -> CliResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "invalid {kind} name {name:?}: expected 1 to 127 letters, digits and dashes"
        )))
    }
}

/// Object versions: 1 to 64 letters and digits.
pub fn check_version(version: &str) -> CliResult<()> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "invalid version {version:?}: expected 1 to 64 letters and digits"
        )))
    }
}

/// Decode base64 in any of its common spellings: standard or URL-safe alphabet, with or without
/// padding, whitespace ignored.
pub fn decode_b64(what: &str, text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && *c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD
        .decode(cleaned.as_bytes())
        .map_err(|e| format!("{what} is not valid base64 ({e})"))
}

/// Decode user-supplied base64 (exit 2 when invalid).
pub fn decode_b64_arg(what: &str, text: &str) -> CliResult<Vec<u8>> {
    decode_b64(what, text).map_err(CliError::Usage)
}

/// Decode base64 the server sent (exit 3 when invalid).
pub fn decode_b64_response(what: &str, text: &str) -> CliResult<Vec<u8>> {
    decode_b64(what, text).map_err(|e| CliError::Transport(format!("the server's {e}")))
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Read a whole file, `-` meaning standard input.
pub fn read_input(path: &Path) -> CliResult<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| usage(format!("cannot read standard input: {e}")))?;
        Ok(buf)
    } else {
        fs::read(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
    }
}

/// Write bytes to a file, `-` meaning standard output.
pub fn write_output(path: &Path, bytes: &[u8]) -> CliResult<()> {
    if path.as_os_str() == "-" {
        let mut out = io::stdout().lock();
        out.write_all(bytes)
            .and_then(|_| out.flush())
            .map_err(|e| usage(format!("cannot write to standard output: {e}")))
    } else {
        fs::write(path, bytes).map_err(|e| usage(format!("cannot write {}: {e}", path.display())))
    }
}

/// The `maxresults` query of a list request.
pub struct PageQuery(Option<String>);

impl PageQuery {
    pub fn as_pairs(&self) -> Vec<(&str, &str)> {
        match &self.0 {
            Some(n) => vec![("maxresults", n.as_str())],
            None => Vec::new(),
        }
    }
}

pub fn page_query(page_size: Option<u32>) -> PageQuery {
    PageQuery(page_size.map(|n| n.to_string()))
}

/// Parse `--tag key=value` arguments into a JSON object.
pub fn parse_tags(tags: &[String]) -> CliResult<Option<Value>> {
    if tags.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for t in tags {
        let Some((k, v)) = t.split_once('=') else {
            return Err(usage(format!("invalid tag {t:?}: expected KEY=VALUE")));
        };
        if k.is_empty() {
            return Err(usage(format!("invalid tag {t:?}: the key is empty")));
        }
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(Some(Value::Object(map)))
}

// ---------------------------------------------------------------------------------------------
// Output helpers

pub fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{v}"),
    }
}

/// Print `label: value` lines with the labels aligned.
pub fn print_fields(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}

/// Print a table with a header row; columns sized to their widest cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A string field of a JSON object, or "" when absent.
pub fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// A field rendered for display: strings bare, other JSON compact, absent as "-".
pub fn show(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "-".to_string(),
        }
    }
    match cur {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Unix-seconds attribute rendered as RFC 3339 UTC.
pub fn show_time(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "-".to_string(),
        }
    }
    match cur
        .as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
    {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "-".to_string(),
    }
}

/// The last path segment of an object id URL (`.../keys/NAME/VERSION` -> `VERSION`).
pub fn id_segment(id: &str, from_end: usize) -> &str {
    id.trim_end_matches('/')
        .rsplit('/')
        .nth(from_end)
        .unwrap_or("")
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
        assert!(matches!(
            normalize_base_url("http://127.0.0.1:8443"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            normalize_base_url("https://"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            normalize_base_url("https://u:p@host"),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            normalize_base_url("https://host/?x=1"),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn names_and_versions_cannot_escape_the_path() {
        assert!(check_name("key", "my-key-1").is_ok());
        for bad in ["", "a/b", "..", "a?b", "a b", "é", &"a".repeat(128)] {
            assert!(check_name("key", bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_version("0123abcdef").is_ok());
        assert!(check_version("a-b").is_err());
        assert!(check_version("").is_err());
    }

    #[test]
    fn base64_accepts_every_common_spelling() {
        let bytes = [0xfbu8, 0xff, 0x10, 0x00];
        for text in ["+/8QAA==", "-_8QAA", "+/8Q AA", "-_8QAA=="] {
            assert_eq!(decode_b64("x", text).unwrap(), bytes, "{text}");
        }
        assert!(decode_b64("x", "not base64!").is_err());
        assert_eq!(decode_b64("x", &b64url(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn tags_parse_and_reject_malformed() {
        let t = parse_tags(&["a=1".into(), "b=x=y".into(), "c=".into()])
            .unwrap()
            .unwrap();
        assert_eq!(t, serde_json::json!({"a": "1", "b": "x=y", "c": ""}));
        assert!(parse_tags(&["novalue".into()]).is_err());
        assert!(parse_tags(&["=v".into()]).is_err());
        assert!(parse_tags(&[]).unwrap().is_none());
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(usage("x").code(), 2);
        let rej = CliError::Rejected {
            status: 404,
            code: "KeyNotFound".into(),
            message: "m".into(),
        };
        assert_eq!(rej.code(), 1);
        let srv = CliError::Server {
            status: 500,
            code: "c".into(),
            message: "m".into(),
        };
        assert_eq!(srv.code(), 3);
        assert_eq!(CliError::Transport("t".into()).code(), 3);
        assert_eq!(CliError::Negative("n".into()).code(), 1);
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
    fn id_segments() {
        let id = "https://h:1/keys/k1/abc";
        assert_eq!(id_segment(id, 0), "abc");
        assert_eq!(id_segment(id, 1), "k1");
        assert_eq!(id_segment("", 0), "");
    }
}
