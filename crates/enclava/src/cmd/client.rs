//! The CLI side of the client shared by the `key`, `secret`, `cert`, `kbs`, `operator` and `audit`
//! commands: connection options, the error type with its exit codes, input decoding helpers and
//! output rendering. Requests, TLS (an operator-supplied CA or the public roots), the token and
//! paging are the typed `enclava-client` crate's, shared with `enclava-enclave`.
//!
//! Exit codes: 0 success; 1 the server (or a verification) said no: 4xx such as not found, denied,
//! invalid signature; 2 unusable arguments or input (checked before anything is sent); 3 the server
//! failed (5xx, unexpected response) or could not be reached.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::Value;
use zeroize::Zeroizing;

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

/// A connection to one Enclava server: the shared typed client (`enclava-client`) plus the
/// output format the command prints in.
pub struct Client {
    inner: enclava_client::Client,
    pub output: OutputFormat,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // enclava_client::Client's Debug redacts the token.
        f.debug_struct("Client")
            .field("inner", &self.inner)
            .finish()
    }
}

impl From<enclava_client::Error> for CliError {
    /// Exit codes as before the shared client: configuration and local input 2, 4xx 1, 5xx and
    /// unreachable or unintelligible servers 3.
    fn from(e: enclava_client::Error) -> Self {
        match e {
            enclava_client::Error::Config(m) => CliError::Usage(m),
            enclava_client::Error::Api(a) => {
                let (status, code, message) = (a.status, a.code_or_status(), a.message_or_body());
                if a.is_server_error() {
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
            enclava_client::Error::Transport(m) | enclava_client::Error::Decode(m) => {
                CliError::Transport(m)
            }
        }
    }
}

impl Client {
    /// A client for the configured server. Fails (exit 2) when no URL is configured or the CA
    /// file is unusable.
    pub fn new(opts: &ClientOpts) -> CliResult<Self> {
        let raw = opts
            .url
            .as_deref()
            .ok_or_else(|| usage("no server URL: pass --url or set ENCLAVA_URL"))?;
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
        let config = enclava_client::Config {
            url: raw.to_string(),
            token,
            ca_cert: opts.ca_cert.clone(),
            timeout: Duration::from_secs(opts.timeout.max(1)),
            user_agent: concat!("enclava-cli/", env!("CARGO_PKG_VERSION")).to_string(),
        };
        Ok(Client {
            inner: enclava_client::Client::new(config)?,
            output: opts.output,
        })
    }

    /// The shared typed client, for typed requests (`send`, `get`, `list`).
    pub fn typed(&self) -> &enclava_client::Client {
        &self.inner
    }

    /// The server's base URL (`https://host:port`, no trailing slash).
    pub fn base(&self) -> &str {
        self.inner.base()
    }

    pub fn json_output(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// Send one request to `path` (which starts with `/`; the caller has validated any names in
    /// it) and return the parsed JSON body (`Value::Null` for an empty body), as the server sent
    /// it: `--output json` prints exactly that.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> CliResult<Value> {
        Ok(self.inner.json(method, path, query, body)?)
    }

    /// Like [`Client::call`] with a pre-serialized JSON body, for bodies holding secrets that the
    /// caller keeps in zeroizing buffers.
    pub fn call_raw(&self, method: &str, path: &str, body: &[u8]) -> CliResult<Value> {
        Ok(self.inner.raw(method, path, &[], Some(body), true)?)
    }

    /// GET a Key Vault collection and follow `nextLink` to the end, returning all items.
    /// `nextLink`s must point back at this server: a token is never sent anywhere else.
    pub fn list_all(&self, path: &str, query: &[(&str, &str)]) -> CliResult<Vec<Value>> {
        Ok(self.inner.list_json(path, query)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Input helpers

/// Key Vault object names: 1 to 127 letters, digits and dashes. Checked before a name goes into a
/// URL path, so no name can change which route is called.
pub fn check_name(kind: &str, name: &str) -> CliResult<()> {
    Ok(enclava_client::check_name(kind, name)?)
}

/// Object versions: 1 to 64 letters and digits.
pub fn check_version(version: &str) -> CliResult<()> {
    Ok(enclava_client::check_version(version)?)
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

/// Parse `--tag key=value` arguments into the wire models' tag map.
pub fn tag_map(tags: &[String]) -> CliResult<Option<enclava_client::model::Tags>> {
    let Some(Value::Object(map)) = parse_tags(tags)? else {
        return Ok(None);
    };
    Ok(Some(
        map.into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
    ))
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
    fn id_segments() {
        let id = "https://h:1/keys/k1/abc";
        assert_eq!(id_segment(id, 0), "abc");
        assert_eq!(id_segment(id, 1), "k1");
        assert_eq!(id_segment("", 0), "");
    }
}
