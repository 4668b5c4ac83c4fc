//! Server configuration: a TOML file, `ENCLAVA_*` environment variables and command-line flags,
//! layered so that flags win over the environment and the environment over the file.
//!
//! Every layer is a [`PartialConfig`] (all fields optional); [`PartialConfig::overlay`] stacks
//! them and [`PartialConfig::resolve`] fills in defaults and validates the result. Pure: reading
//! the file and the process environment happens in the caller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8443";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "enclava-data";
/// Default token resource (audience) announced in the 401 challenge.
pub const DEFAULT_RESOURCE: &str = "https://vault.azure.net";
/// Default maximum request body size.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default interval of the maintenance task (due rotations, purges).
pub const DEFAULT_MAINTENANCE_INTERVAL_SECS: u64 = 60;
/// Background-work lease between replicas (seconds).
pub const DEFAULT_LEASE_TTL_SECS: u64 = 30;
/// Default time a client has to send a complete request head; it also bounds how long an idle
/// keep-alive connection stays open (hyper starts this timer when it waits for the next head).
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default time a client has to complete the TLS handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Default lifetime of the bootstrap Administrator token written at the first unseal: a day to
/// create the real principals, not a standing credential in a file.
pub const DEFAULT_BOOTSTRAP_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;
/// Default bootstrap token lifetime in development mode, where `admin.token` is rewritten at
/// every start and a long-running dev server should keep working.
pub const DEFAULT_DEV_BOOTSTRAP_TOKEN_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// Bounds of `bootstrap_token_lifetime_secs`.
pub const BOOTSTRAP_TOKEN_LIFETIME_RANGE: std::ops::RangeInclusive<u64> = 60..=30 * 24 * 3600;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: String, message: String },
    #[error("{source_name}: invalid value for {key}: expected {expected}, found {found:?}")]
    Invalid {
        source_name: String,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "plain HTTP (--insecure-http) is only allowed on a loopback address (127.0.0.0/8 or ::1), found {0}; use HTTPS (the default) for any other address"
    )]
    InsecureNonLoopback(SocketAddr),
    #[error("--tls-cert and --tls-key must be given together (found only {0})")]
    TlsPairIncomplete(&'static str),
    #[error(
        "--public-url must be an absolute http(s) URL without path, query or fragment, found {0:?}"
    )]
    PublicUrl(String),
    #[error("log format must be \"text\" or \"json\", found {0:?}")]
    LogFormat(String),
    #[error(
        "development mode was requested by {0} but not by the --dev flag: refusing to start a development vault (automatic unseal with a key file in the data directory) from anything but an explicit --dev on the command line; remove it, or pass --dev if this really is a development server"
    )]
    DevWithoutFlag(&'static str),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(ConfigError::LogFormat(other.to_string())),
        }
    }
}

/// One configuration layer; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialConfig {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub dev: Option<bool>,
    pub insecure_http: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub hostnames: Option<Vec<String>>,
    pub public_url: Option<String>,
    pub resource: Option<String>,
    /// Extra attestation-family token audiences (resources), next to `https://attest.azure.net`:
    /// e.g. the server's own attestation URL. Tokens for them are accepted by the attestation
    /// routes only.
    pub attestation_resources: Option<Vec<String>>,
    pub log_format: Option<String>,
    pub maintenance_interval_secs: Option<u64>,
    /// Seconds of the background-work lease between replicas of one database (default 30; see
    /// `cluster`): how long background work pauses when its holder dies.
    pub lease_ttl_secs: Option<u64>,
    pub max_body_bytes: Option<usize>,
    /// Seconds to send a complete request head (and the idle keep-alive bound); default 10.
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds to complete the TLS handshake; default 10.
    pub tls_handshake_timeout_secs: Option<u64>,
    /// Open connections at most (default: the file-descriptor limit minus headroom, at most
    /// 4096); see [`crate::connlimit`].
    pub max_connections: Option<usize>,
    /// `[rate_limits]`: see [`crate::ratelimit::RateLimitSettings`].
    pub rate_limits: Option<crate::ratelimit::RateLimitSettings>,
    /// Lifetime of the bootstrap Administrator token, seconds.
    pub bootstrap_token_lifetime_secs: Option<u64>,
    /// `[attestation]`: see [`crate::attest::AttestationSettings`].
    pub attestation: Option<crate::attest::AttestationSettings>,
    /// `[[trusted_issuers]]`: attestation token issuers trusted for secure key release.
    pub trusted_issuers: Option<Vec<crate::release::TrustedIssuerConfig>>,
    /// `store`: a PostgreSQL URL for the shared database of several replicas; unset: SQLite in
    /// the data directory.
    pub store: Option<StoreUrl>,
    /// `store_ca_file`: PEM CA certificates trusted for the database's TLS certificate (besides
    /// the public web roots), for a PostgreSQL server with a private CA.
    pub store_ca_file: Option<PathBuf>,
}

/// A database URL. It carries the password, so its `Debug` (the configuration types derive
/// it) shows it redacted; [`StoreUrl::expose`] is for the driver only.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl StoreUrl {
    pub fn new(url: impl Into<String>) -> Self {
        StoreUrl(url.into())
    }

    /// The URL with its password, to hand to the database driver and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its password, for logs and errors.
    pub fn redacted(&self) -> String {
        enclava_store::postgres::redact_url(&self.0)
    }
}

impl From<String> for StoreUrl {
    fn from(url: String) -> Self {
        StoreUrl(url)
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoreUrl").field(&self.redacted()).finish()
    }
}

/// The environment variables read by [`PartialConfig::from_env`].
pub const ENV_VARS: &[&str] = &[
    "ENCLAVA_ADDR",
    "ENCLAVA_DATA_DIR",
    "ENCLAVA_DEV",
    "ENCLAVA_INSECURE_HTTP",
    "ENCLAVA_TLS_CERT",
    "ENCLAVA_TLS_KEY",
    "ENCLAVA_HOSTNAMES",
    "ENCLAVA_PUBLIC_URL",
    "ENCLAVA_RESOURCE",
    "ENCLAVA_ATTESTATION_RESOURCES",
    "ENCLAVA_LOG_FORMAT",
    "ENCLAVA_MAINTENANCE_INTERVAL_SECS",
    "ENCLAVA_MAX_BODY_BYTES",
    "ENCLAVA_BOOTSTRAP_TOKEN_LIFETIME_SECS",
    "ENCLAVA_TRUSTED_ISSUERS",
    "ENCLAVA_HEADER_READ_TIMEOUT_SECS",
    "ENCLAVA_TLS_HANDSHAKE_TIMEOUT_SECS",
    "ENCLAVA_MAX_CONNECTIONS",
    "ENCLAVA_STORE",
    "ENCLAVA_STORE_CA_FILE",
];

fn parse_bool(source: &str, key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid {
            source_name: source.to_string(),
            key: key.to_string(),
            expected: "a boolean (true/false/1/0/yes/no/on/off)",
            found: v.to_string(),
        }),
    }
}

fn parse_num<T: std::str::FromStr>(source: &str, key: &str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid {
        source_name: source.to_string(),
        key: key.to_string(),
        expected: "a non-negative integer",
        found: v.to_string(),
    })
}

impl PartialConfig {
    /// Parse a TOML configuration file's contents. `path` is only used in error messages.
    pub fn from_toml(path: &str, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Read `ENCLAVA_*` variables from the given `(name, value)` pairs (pass
    /// `std::env::vars()`); other names are ignored.
    pub fn from_env<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let src = "environment";
        let mut c = PartialConfig::default();
        for (k, v) in vars {
            let (k, v) = (k.as_ref(), v.as_ref());
            match k {
                "ENCLAVA_ADDR" => c.addr = Some(v.to_string()),
                "ENCLAVA_DATA_DIR" => c.data_dir = Some(PathBuf::from(v)),
                "ENCLAVA_DEV" => c.dev = Some(parse_bool(src, k, v)?),
                "ENCLAVA_INSECURE_HTTP" => c.insecure_http = Some(parse_bool(src, k, v)?),
                "ENCLAVA_TLS_CERT" => c.tls_cert = Some(PathBuf::from(v)),
                "ENCLAVA_TLS_KEY" => c.tls_key = Some(PathBuf::from(v)),
                "ENCLAVA_HOSTNAMES" => {
                    c.hostnames = Some(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                }
                "ENCLAVA_PUBLIC_URL" => c.public_url = Some(v.to_string()),
                "ENCLAVA_STORE" => c.store = Some(StoreUrl::new(v)),
                "ENCLAVA_STORE_CA_FILE" => c.store_ca_file = Some(PathBuf::from(v)),
                "ENCLAVA_RESOURCE" => c.resource = Some(v.to_string()),
                "ENCLAVA_ATTESTATION_RESOURCES" => {
                    c.attestation_resources = Some(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                }
                "ENCLAVA_LOG_FORMAT" => c.log_format = Some(v.to_string()),
                "ENCLAVA_MAINTENANCE_INTERVAL_SECS" => {
                    c.maintenance_interval_secs = Some(parse_num(src, k, v)?)
                }
                "ENCLAVA_LEASE_TTL_SECS" => c.lease_ttl_secs = Some(parse_num(src, k, v)?),
                "ENCLAVA_MAX_BODY_BYTES" => c.max_body_bytes = Some(parse_num(src, k, v)?),
                "ENCLAVA_HEADER_READ_TIMEOUT_SECS" => {
                    c.header_read_timeout_secs = Some(parse_num(src, k, v)?)
                }
                "ENCLAVA_TLS_HANDSHAKE_TIMEOUT_SECS" => {
                    c.tls_handshake_timeout_secs = Some(parse_num(src, k, v)?)
                }
                "ENCLAVA_MAX_CONNECTIONS" => c.max_connections = Some(parse_num(src, k, v)?),
                _ if k.starts_with("ENCLAVA_RATE_LIMIT_") => {
                    c.rate_limits =
                        crate::ratelimit::RateLimitSettings::from_env_var(c.rate_limits, k, v)?
                }
                "ENCLAVA_BOOTSTRAP_TOKEN_LIFETIME_SECS" => {
                    c.bootstrap_token_lifetime_secs = Some(parse_num(src, k, v)?)
                }
                "ENCLAVA_TRUSTED_ISSUERS" => {
                    c.trusted_issuers =
                        Some(crate::release::parse_env_issuers(v).map_err(|_| {
                            ConfigError::Invalid {
                                source_name: src.to_string(),
                                key: k.to_string(),
                                expected: "comma-separated ISSUER=JWKS_FILE pairs",
                                found: v.to_string(),
                            }
                        })?)
                }
                _ if k.starts_with("ENCLAVA_ATTESTATION_") => {
                    c.attestation =
                        crate::attest::AttestationSettings::from_env_var(c.attestation, k, v)?
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Refuse a layer that asks for development mode. Only the `--dev` flag may enable it: an
    /// inherited `ENCLAVA_DEV=true` or a `dev = true` in a shared configuration file must not
    /// silently turn a production command line into a vault that unseals itself from a file.
    /// `source` names the layer in the error.
    pub fn reject_dev(&self, source: &'static str) -> Result<(), ConfigError> {
        if self.dev == Some(true) {
            return Err(ConfigError::DevWithoutFlag(source));
        }
        Ok(())
    }

    /// `higher` stacked on `self`: every field set in `higher` wins.
    pub fn overlay(self, higher: PartialConfig) -> PartialConfig {
        PartialConfig {
            addr: higher.addr.or(self.addr),
            data_dir: higher.data_dir.or(self.data_dir),
            dev: higher.dev.or(self.dev),
            insecure_http: higher.insecure_http.or(self.insecure_http),
            tls_cert: higher.tls_cert.or(self.tls_cert),
            tls_key: higher.tls_key.or(self.tls_key),
            hostnames: higher.hostnames.or(self.hostnames),
            public_url: higher.public_url.or(self.public_url),
            resource: higher.resource.or(self.resource),
            attestation_resources: higher.attestation_resources.or(self.attestation_resources),
            log_format: higher.log_format.or(self.log_format),
            maintenance_interval_secs: higher
                .maintenance_interval_secs
                .or(self.maintenance_interval_secs),
            lease_ttl_secs: higher.lease_ttl_secs.or(self.lease_ttl_secs),
            max_body_bytes: higher.max_body_bytes.or(self.max_body_bytes),
            header_read_timeout_secs: higher
                .header_read_timeout_secs
                .or(self.header_read_timeout_secs),
            tls_handshake_timeout_secs: higher
                .tls_handshake_timeout_secs
                .or(self.tls_handshake_timeout_secs),
            max_connections: higher.max_connections.or(self.max_connections),
            rate_limits: crate::ratelimit::RateLimitSettings::overlay(
                self.rate_limits,
                higher.rate_limits,
            ),
            bootstrap_token_lifetime_secs: higher
                .bootstrap_token_lifetime_secs
                .or(self.bootstrap_token_lifetime_secs),
            attestation: crate::attest::AttestationSettings::overlay(
                self.attestation,
                higher.attestation,
            ),
            trusted_issuers: higher.trusted_issuers.or(self.trusted_issuers),
            store: higher.store.or(self.store),
            store_ca_file: higher.store_ca_file.or(self.store_ca_file),
        }
    }

    /// Fill in defaults and validate.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let addr_s = self.addr.unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let addr: SocketAddr = addr_s.trim().parse().map_err(|_| ConfigError::Invalid {
            source_name: "configuration".into(),
            key: "addr".into(),
            expected: "an IP socket address such as 127.0.0.1:8443 or [::1]:8443",
            found: addr_s.clone(),
        })?;
        let insecure_http = self.insecure_http.unwrap_or(false);
        if insecure_http && !addr.ip().is_loopback() {
            return Err(ConfigError::InsecureNonLoopback(addr));
        }
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::TlsPairIncomplete("--tls-cert")),
            (None, Some(_)) => return Err(ConfigError::TlsPairIncomplete("--tls-key")),
        };
        let public_url = match self.public_url {
            Some(u) => Some(validate_public_url(&u)?),
            None => None,
        };
        let log_format = match self.log_format {
            Some(s) => s.parse()?,
            None => LogFormat::Text,
        };
        let hostnames = self
            .hostnames
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]);
        let maintenance = self
            .maintenance_interval_secs
            .unwrap_or(DEFAULT_MAINTENANCE_INTERVAL_SECS)
            .max(1);
        let dev = self.dev.unwrap_or(false);
        let bootstrap_secs = match self.bootstrap_token_lifetime_secs {
            Some(n) if BOOTSTRAP_TOKEN_LIFETIME_RANGE.contains(&n) => n,
            Some(n) => {
                return Err(ConfigError::Invalid {
                    source_name: "configuration".into(),
                    key: "bootstrap_token_lifetime_secs".into(),
                    expected: "seconds from 60 to 2592000 (30 days)",
                    found: n.to_string(),
                });
            }
            None if dev => DEFAULT_DEV_BOOTSTRAP_TOKEN_LIFETIME_SECS,
            None => DEFAULT_BOOTSTRAP_TOKEN_LIFETIME_SECS,
        };
        let attestation = self.attestation.unwrap_or_default().resolve(dev)?;
        let mut attestation_resources = vec![enclava_identity::ATTESTATION_AUDIENCE.to_string()];
        for r in self.attestation_resources.unwrap_or_default() {
            let r = r.trim().trim_end_matches('/').to_string();
            if !(r.starts_with("https://") || r.starts_with("http://")) || r.len() > 512 {
                return Err(ConfigError::Invalid {
                    source_name: "configuration".into(),
                    key: "attestation_resources".into(),
                    expected: "absolute http(s) URLs (token audiences)",
                    found: r.chars().take(200).collect(),
                });
            }
            if !attestation_resources.contains(&r) {
                attestation_resources.push(r);
            }
        }
        let store = match self.store {
            Some(u) if u.0.trim().is_empty() => None,
            Some(u) => {
                let lower = u.0.trim_start().to_ascii_lowercase();
                if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
                    return Err(ConfigError::Invalid {
                        source_name: "configuration".into(),
                        key: "store".into(),
                        expected: "a PostgreSQL URL (postgres://USER:PASSWORD@HOST[:PORT][,HOST2[:PORT]]/DB?target_session_attrs=read-write), or nothing for SQLite in the data directory",
                        found: u.redacted(),
                    });
                }
                Some(u)
            }
            None => None,
        };
        Ok(ServerConfig {
            store,
            store_ca_file: self.store_ca_file,
            addr,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            dev: self.dev.unwrap_or(false),
            insecure_http,
            tls,
            hostnames,
            public_url,
            resource: self
                .resource
                .unwrap_or_else(|| DEFAULT_RESOURCE.to_string()),
            attestation_resources,
            log_format,
            maintenance_interval: Duration::from_secs(maintenance),
            lease_ttl: Duration::from_secs(
                self.lease_ttl_secs
                    .unwrap_or(DEFAULT_LEASE_TTL_SECS)
                    .clamp(1, 3600),
            ),
            max_body_bytes: self
                .max_body_bytes
                .unwrap_or(DEFAULT_MAX_BODY_BYTES)
                .max(1024),
            header_read_timeout: Duration::from_secs(
                self.header_read_timeout_secs
                    .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_SECS)
                    .max(1),
            ),
            tls_handshake_timeout: Duration::from_secs(
                self.tls_handshake_timeout_secs
                    .unwrap_or(DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS)
                    .max(1),
            ),
            max_connections: self
                .max_connections
                .unwrap_or_else(crate::connlimit::default_max_connections)
                .max(1),
            rate_limits: self.rate_limits.unwrap_or_default().resolve(),
            bootstrap_token_lifetime: Duration::from_secs(bootstrap_secs),
            attestation,
            trusted_issuers: self.trusted_issuers.unwrap_or_default(),
        })
    }
}

fn validate_public_url(u: &str) -> Result<String, ConfigError> {
    let trimmed = u.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| ConfigError::PublicUrl(u.to_string()))?;
    if rest.is_empty()
        || rest.contains(['/', '?', '#', ' ', '@'])
        || !rest.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ConfigError::PublicUrl(u.to_string()));
    }
    Ok(trimmed.to_string())
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Development mode: initialize and unseal automatically with a key file in the data dir.
    pub dev: bool,
    /// Serve plain HTTP (loopback only).
    pub insecure_http: bool,
    /// Operator-provided certificate chain and key (PEM files); `None`: generate a local CA.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Host names and IP addresses for the generated server certificate.
    pub hostnames: Vec<String>,
    /// Base URL used in object identifiers and paging links; `None`: derived per request.
    pub public_url: Option<String>,
    /// Token audience announced in the 401 challenge.
    pub resource: String,
    /// Attestation-family token audiences: `https://attest.azure.net` and the configured
    /// `attestation_resources` (see [`enclava_identity::AudienceFamily`]).
    pub attestation_resources: Vec<String>,
    pub log_format: LogFormat,
    pub maintenance_interval: Duration,
    /// Background-work lease between replicas (see `cluster`).
    pub lease_ttl: Duration,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_connections: usize,
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    /// Lifetime of the bootstrap Administrator token (default 24 h; 30 days with `--dev`).
    pub bootstrap_token_lifetime: Duration,
    pub attestation: crate::attest::AttestationConfig,
    /// Attestation token issuers trusted for secure key release (besides the local service).
    pub trusted_issuers: Vec<crate::release::TrustedIssuerConfig>,
    /// The shared PostgreSQL database; `None`: SQLite in `data_dir`.
    pub store: Option<StoreUrl>,
    /// Extra trust anchors (PEM) for the PostgreSQL server's TLS certificate.
    pub store_ca_file: Option<PathBuf>,
}

impl ServerConfig {
    pub fn scheme(&self) -> &'static str {
        if self.insecure_http { "http" } else { "https" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_env_and_env_over_file() {
        let file = PartialConfig::from_toml(
            "f.toml",
            "addr = \"127.0.0.1:1000\"\ndata_dir = \"/file\"\nresource = \"https://file\"\n",
        )
        .unwrap();
        let env = PartialConfig::from_env([
            ("ENCLAVA_ADDR", "127.0.0.1:2000"),
            ("ENCLAVA_DATA_DIR", "/env"),
            ("OTHER", "x"),
        ])
        .unwrap();
        let flags = PartialConfig {
            addr: Some("127.0.0.1:3000".into()),
            ..Default::default()
        };
        let c = file.overlay(env).overlay(flags).resolve().unwrap();
        assert_eq!(c.addr.port(), 3000);
        assert_eq!(c.data_dir, PathBuf::from("/env"));
        assert_eq!(c.resource, "https://file");
    }

    #[test]
    fn insecure_http_only_on_loopback() {
        let c = PartialConfig {
            addr: Some("0.0.0.0:80".into()),
            insecure_http: Some(true),
            ..Default::default()
        };
        assert!(matches!(
            c.resolve(),
            Err(ConfigError::InsecureNonLoopback(_))
        ));
        let c = PartialConfig {
            addr: Some("[::1]:80".into()),
            insecure_http: Some(true),
            ..Default::default()
        };
        assert!(c.resolve().unwrap().insecure_http);
    }

    #[test]
    fn bad_values_are_reported_with_what_was_found() {
        let e = PartialConfig::from_env([("ENCLAVA_DEV", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
        let e = PartialConfig::from_toml("c.toml", "nonsense = 1").unwrap_err();
        assert!(e.to_string().contains("c.toml"), "{e}");
        let e = PartialConfig {
            addr: Some("localhost".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.to_string().contains("localhost"), "{e}");
        let e = PartialConfig {
            tls_cert: Some("c".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert_eq!(e, ConfigError::TlsPairIncomplete("--tls-cert"));
        let e = PartialConfig {
            public_url: Some("https://h/x".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(matches!(e, ConfigError::PublicUrl(_)));
    }

    #[test]
    fn connection_and_rate_limit_knobs() {
        let file = PartialConfig::from_toml(
            "f.toml",
            "header_read_timeout_secs = 3\nmax_connections = 64\n[rate_limits]\ntoken_per_sec = 2\ntoken_burst = 4\n",
        )
        .unwrap();
        let env = PartialConfig::from_env([
            ("ENCLAVA_TLS_HANDSHAKE_TIMEOUT_SECS", "4"),
            ("ENCLAVA_RATE_LIMIT_INCLUDE_LOOPBACK", "true"),
            ("ENCLAVA_RATE_LIMIT_TOKEN_BURST", "5"),
        ])
        .unwrap();
        let c = file.overlay(env).resolve().unwrap();
        assert_eq!(c.header_read_timeout, Duration::from_secs(3));
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(4));
        assert_eq!(c.max_connections, 64);
        assert_eq!(
            (c.rate_limits.token.per_sec, c.rate_limits.token.burst),
            (2, 5)
        );
        assert!(c.rate_limits.include_loopback);
        let e =
            PartialConfig::from_env([("ENCLAVA_RATE_LIMIT_TOKEN_PER_SEC", "fast")]).unwrap_err();
        assert!(e.to_string().contains("fast"), "{e}");
        let d = PartialConfig::default().resolve().unwrap();
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert!(d.max_connections >= 16 && d.max_connections <= 4096);
        assert!(!d.rate_limits.include_loopback);
    }

    #[test]
    fn dev_mode_only_from_the_flag_layer() {
        let env = PartialConfig::from_env([("ENCLAVA_DEV", "true")]).unwrap();
        let e = env.reject_dev("the environment (ENCLAVA_DEV)").unwrap_err();
        assert_eq!(
            e,
            ConfigError::DevWithoutFlag("the environment (ENCLAVA_DEV)")
        );
        assert!(e.to_string().contains("--dev"), "{e}");
        let off = PartialConfig::from_env([("ENCLAVA_DEV", "false")]).unwrap();
        assert!(off.reject_dev("env").is_ok());
        let file = PartialConfig::from_toml("c.toml", "dev = true").unwrap();
        assert!(file.reject_dev("the configuration file").is_err());
    }

    #[test]
    fn bootstrap_token_lifetime_defaults_and_bounds() {
        let prod = PartialConfig::default().resolve().unwrap();
        assert_eq!(
            prod.bootstrap_token_lifetime,
            Duration::from_secs(24 * 3600)
        );
        let dev = PartialConfig {
            dev: Some(true),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            dev.bootstrap_token_lifetime,
            Duration::from_secs(30 * 24 * 3600)
        );
        let env =
            PartialConfig::from_env([("ENCLAVA_BOOTSTRAP_TOKEN_LIFETIME_SECS", "3600")]).unwrap();
        assert_eq!(
            env.resolve().unwrap().bootstrap_token_lifetime,
            Duration::from_secs(3600)
        );
        let e = PartialConfig {
            bootstrap_token_lifetime_secs: Some(31 * 24 * 3600),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.to_string().contains("2678400"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = PartialConfig::default().resolve().unwrap();
        assert_eq!(c.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(c.hostnames, vec!["localhost", "127.0.0.1", "::1"]);
        assert_eq!(c.resource, DEFAULT_RESOURCE);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.scheme(), "https");
    }
}
