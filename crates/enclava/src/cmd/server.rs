//! `enclava server`: run the HTTPS server (Key Vault-compatible API, operator and admin routes).
//!
//! Configuration: `--config FILE` (TOML), then `ENCLAVA_*` environment variables, then flags;
//! flags win over the environment, the environment over the file.
//!
//! Start-up contract: once the server accepts requests it prints exactly one line
//! `ready https://127.0.0.1:PORT` on stdout (everything else goes to stderr).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use enclava_server::{LogFormat, PartialConfig, ServerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// TOML configuration file (keys: addr, data_dir, insecure_http, tls_cert, tls_key,
    /// hostnames, public_url, resource, log_format, maintenance_interval_secs, lease_ttl_secs, max_body_bytes,
    /// header_read_timeout_secs, tls_handshake_timeout_secs, max_connections,
    /// bootstrap_token_lifetime_secs, store, store_ca_file, [rate_limits], [attestation], [[trusted_issuers]]).
    #[arg(long, env = "ENCLAVA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address [env: ENCLAVA_ADDR] [default: 127.0.0.1:8443]; port 0 picks a free port.
    #[arg(long, value_name = "IP:PORT")]
    pub addr: Option<String>,
    /// Data directory: database, TLS material, tokens [env: ENCLAVA_DATA_DIR] [default: ./enclava-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Shared PostgreSQL database instead of SQLite in the data directory, e.g.
    /// postgres://enclava:PASSWORD@db1,db2/enclava?target_session_attrs=read-write
    /// [env: ENCLAVA_STORE] [default: SQLite in the data directory]. Prefer the environment
    /// variable or the configuration file: a flag is visible in the process list.
    #[arg(long, value_name = "URL")]
    pub store: Option<enclava_server::StoreUrl>,
    /// PEM CA certificates trusted for the PostgreSQL server's TLS certificate, besides the
    /// public web roots (use with sslmode=require) [env: ENCLAVA_STORE_CA_FILE].
    #[arg(long, value_name = "FILE")]
    pub store_ca_file: Option<PathBuf>,
    /// Development mode: initialize and unseal automatically with a key file in the data
    /// directory and write a bootstrap Administrator token to DATA_DIR/admin.token. Never in
    /// production. Only this flag enables it: ENCLAVA_DEV=true or `dev = true` in the
    /// configuration file without --dev make the server refuse to start.
    #[arg(long)]
    pub dev: bool,
    /// Serve plain HTTP instead of HTTPS; only allowed on a loopback address
    /// [env: ENCLAVA_INSECURE_HTTP].
    #[arg(long)]
    pub insecure_http: bool,
    /// PEM certificate chain to serve instead of the generated one (with --tls-key)
    /// [env: ENCLAVA_TLS_CERT].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [env: ENCLAVA_TLS_KEY].
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Host names / IP addresses for the generated certificate (repeat or comma-separate)
    /// [env: ENCLAVA_HOSTNAMES] [default: localhost,127.0.0.1,::1].
    #[arg(long = "hostname", value_name = "NAME", value_delimiter = ',')]
    pub hostnames: Vec<String>,
    /// Base URL clients use (ids, paging links, token issuer), e.g. https://vault.example:8443
    /// [env: ENCLAVA_PUBLIC_URL] [default: derived from the listen address].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Token resource announced in the 401 challenge [env: ENCLAVA_RESOURCE]
    /// [default: https://vault.azure.net].
    #[arg(long, value_name = "URL")]
    pub resource: Option<String>,
    /// Log format on stderr [env: ENCLAVA_LOG_FORMAT] [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Seconds between maintenance runs (due rotations, purges) [env:
    /// ENCLAVA_MAINTENANCE_INTERVAL_SECS] [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub maintenance_interval_secs: Option<u64>,
    /// Seconds of the background-work lease between replicas on one database: how long
    /// rotations, purges and timed checkpoints pause when the replica running them dies
    /// [env: ENCLAVA_LEASE_TTL_SECS] [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub lease_ttl_secs: Option<u64>,
    /// Largest accepted request body in bytes [env: ENCLAVA_MAX_BODY_BYTES] [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Seconds a client has to send a complete request head; also how long an idle keep-alive
    /// connection stays open [env: ENCLAVA_HEADER_READ_TIMEOUT_SECS] [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a client has to complete the TLS handshake
    /// [env: ENCLAVA_TLS_HANDSHAKE_TIMEOUT_SECS] [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub tls_handshake_timeout_secs: Option<u64>,
    /// Open connections at most; when full, the oldest idle connection is closed to make room
    /// [env: ENCLAVA_MAX_CONNECTIONS] [default: the open-file limit minus 128, at most 4096].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Lifetime of the bootstrap Administrator token written to DATA_DIR/admin.token at the first
    /// unseal, 60 to 2592000 seconds [env: ENCLAVA_BOOTSTRAP_TOKEN_LIFETIME_SECS] [default: 86400;
    /// 2592000 with --dev, which rewrites it at every start].
    #[arg(long, value_name = "SECONDS")]
    pub bootstrap_token_lifetime_secs: Option<u64>,
}

impl ServerArgs {
    fn flags_layer(&self) -> PartialConfig {
        PartialConfig {
            addr: self.addr.clone(),
            data_dir: self.data_dir.clone(),
            dev: self.dev.then_some(true),
            insecure_http: self.insecure_http.then_some(true),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            hostnames: (!self.hostnames.is_empty()).then(|| self.hostnames.clone()),
            public_url: self.public_url.clone(),
            resource: self.resource.clone(),
            attestation_resources: None,
            log_format: self.log_format.map(|f| match f {
                LogFormatArg::Text => "text".to_string(),
                LogFormatArg::Json => "json".to_string(),
            }),
            maintenance_interval_secs: self.maintenance_interval_secs,
            lease_ttl_secs: self.lease_ttl_secs,
            max_body_bytes: self.max_body_bytes,
            header_read_timeout_secs: self.header_read_timeout_secs,
            tls_handshake_timeout_secs: self.tls_handshake_timeout_secs,
            max_connections: self.max_connections,
            rate_limits: None,
            bootstrap_token_lifetime_secs: self.bootstrap_token_lifetime_secs,
            attestation: None,
            trusted_issuers: None,
            store: self.store.clone(),
            store_ca_file: self.store_ca_file.clone(),
        }
    }
}

fn resolve(args: &ServerArgs) -> Result<ServerConfig, String> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read configuration file {}: {e}", path.display()))?;
            PartialConfig::from_toml(&path.display().to_string(), &text)
                .map_err(|e| e.to_string())?
        }
        None => PartialConfig::default(),
    };
    let env = PartialConfig::from_env(std::env::vars()).map_err(|e| e.to_string())?;
    if !args.dev {
        // Development mode (a vault that unseals itself from a file) only from an explicit flag.
        env.reject_dev("the environment (ENCLAVA_DEV)")
            .map_err(|e| e.to_string())?;
        file.reject_dev("the configuration file (dev = true)")
            .map_err(|e| e.to_string())?;
    }
    file.overlay(env)
        .overlay(args.flags_layer())
        .resolve()
        .map_err(|e| e.to_string())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub fn run(args: ServerArgs) -> ExitCode {
    let config = match resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("enclava server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("enclava server: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    rt.block_on(async move {
        let server = match enclava_server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("enclava server: {e}");
                return ExitCode::from(3);
            }
        };
        if let (Some(path), Some(fp)) = (&server.ca_path, &server.ca_fingerprint) {
            eprintln!(
                "enclava: {} CA certificate: {} (SHA-256 fingerprint {fp}); clients must trust it",
                if server.created_ca {
                    "created a local"
                } else {
                    "local"
                },
                path.display()
            );
        }
        eprintln!(
            "enclava: listening on {} (base URL {})",
            server.addr, server.base_url
        );
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", server.ready_line());
            let _ = out.flush();
        }
        let signal = async {
            shutdown_signal().await;
            eprintln!("enclava: shutting down");
        };
        match server.run_until(signal, Duration::from_secs(10)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("enclava server: {e}");
                ExitCode::from(3)
            }
        }
    })
}
