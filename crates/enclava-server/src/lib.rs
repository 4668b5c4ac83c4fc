//! The Enclava HTTP server: a thin axum shell over the vault, identity and audit libraries.
//!
//! - [`start`] binds, prepares TLS (a local CA on first start), opens the data directory, starts
//!   the audit writer and the maintenance task, and serves; it returns once the socket accepts
//!   connections.
//! - Every request goes through [`app::dispatch`] (see that module for the pipeline).
//! - Configuration layering: [`config`]. TLS material: [`tls`]. Routing (pure): [`route`].
//!
//! Data directory layout: `vault.db` (SQLite), `ca.pem` / `tls-cert.pem` / `tls-key.pem` (0600)
//! (the CA key is a sealed service key, see [`service_keys`]), `dev-unseal.key` (dev mode only,
//! 0600), `admin.token` (0600), `init.token` (0600, only while a production vault awaits
//! `operator init`: [`init_token`]), `audit-head.json` (the latest signed audit checkpoint).

#![forbid(unsafe_code)]

pub mod apiversion;
pub mod app;
pub mod attest;
pub mod audit_pipe;
pub mod certs;
pub mod cluster;
pub mod config;
pub mod connlimit;
pub mod data;
pub mod error;
pub mod init_token;
pub mod kbs;
pub mod lifecycle;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod release;
pub mod route;
pub mod service_keys;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use enclava_audit::audited::AuditedStore;
use enclava_audit::noise::{NoiseConfig, NoiseFilter};
use enclava_audit::{AuditConfig, AuditLog, NewEntry, Outcome};
use enclava_identity::{Identity, IdentityConfig};
use enclava_store::{SqliteStore, Store};
use enclava_vault::{RotationAction, Vault, system_clock};
use thiserror::Error;

pub use config::{ConfigError, LogFormat, PartialConfig, ServerConfig, StoreUrl};

use crate::app::AppState;
use crate::audit_pipe::{AppendFn, AuditSink};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;

/// The SQLite database file in the data directory.
pub const DB_FILE: &str = "vault.db";
/// The development unseal key file in the data directory.
pub const DEV_UNSEAL_KEY_FILE: &str = "dev-unseal.key";

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening the database {path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error("{0}")]
    Startup(String),
    #[error("the server stopped with an error: {0}")]
    Serve(String),
}

/// A started server.
pub struct RunningServer {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` (the address clients on this machine use).
    pub local_url: String,
    /// Base URL in ids, links, the token issuer and the challenge.
    pub base_url: String,
    pub ca_path: Option<PathBuf>,
    pub ca_fingerprint: Option<String>,
    pub created_ca: bool,
    pub state: Arc<AppState>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The start-up contract line: `ready https://127.0.0.1:PORT`.
    pub fn ready_line(&self) -> String {
        format!("ready {}", self.local_url)
    }

    /// Stop accepting and let in-flight requests finish (up to `grace`).
    pub fn shutdown(&self, grace: Duration) {
        // Background work stops with the server; the lease is left to expire (like a crash):
        // `run_until` gives it back.
        self.state.cluster.stop();
        self.handle.graceful_shutdown(Some(grace));
    }

    /// Wait until the server stops.
    pub async fn wait(self) -> Result<(), ServerError> {
        join_result(self.task.await)
    }

    /// Serve until `signal` completes (then shut down gracefully within `grace`) or the server
    /// stops by itself.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), ServerError> {
        let r = tokio::select! {
            r = &mut self.task => join_result(r),
            _ = signal => {
                self.handle.graceful_shutdown(Some(grace));
                join_result(self.task.await)
            }
        };
        // Another replica takes the background work over at once instead of after the lease.
        self.state.cluster.stop();
        let cluster = self.state.cluster.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || cluster.release()).await {
            eprintln!("enclava: giving back the background-work lease failed: {e}");
        }
        flush_noise(&self.state, true).await;
        // The audit queue is FIFO: once this entry is durable, every earlier one is too.
        if let Err(e) = self
            .state
            .audit
            .append_durable(app::system_scope_entry("server/stop", None))
            .await
        {
            eprintln!("enclava: flushing the audit log at shutdown failed: {e}");
        }
        // Sign the final head (and write the signed head file), so nothing logged in this run
        // can be cut off or rewritten unnoticed while the server is down.
        let log = self.state.audit_log.clone();
        match tokio::task::spawn_blocking(move || log.checkpoint_if_due(chrono::Utc::now(), true))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                eprintln!("enclava: signing the audit checkpoint at shutdown failed: {e}")
            }
            Err(e) => eprintln!("enclava: signing the audit checkpoint at shutdown failed: {e}"),
        }
        r
    }
}

fn join_result(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServerError> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServerError::Serve(e.to_string())),
        Err(e) => Err(ServerError::Serve(e.to_string())),
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn prepare_data_dir(dir: &Path) -> Result<(), ServerError> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(ServerError::Startup(format!(
                "data directory {} exists but is not a directory",
                dir.display()
            )));
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io("cannot create data directory", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("cannot set permissions on", dir))?;
    }
    Ok(())
}

fn host_for_url(h: &str) -> String {
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if h.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{h}]")
    } else {
        h.to_string()
    }
}

/// Base URL when none is configured: the bound address, or the first host name when bound to
/// the unspecified address.
fn derive_base_url(config: &ServerConfig, addr: SocketAddr) -> String {
    if let Some(u) = &config.public_url {
        return u.clone();
    }
    let scheme = config.scheme();
    if addr.ip().is_unspecified() {
        let host = config
            .hostnames
            .first()
            .map(|h| host_for_url(h))
            .unwrap_or("localhost".into());
        format!("{scheme}://{host}:{}", addr.port())
    } else {
        format!("{scheme}://{addr}")
    }
}

type SharedStore = Arc<dyn Store>;

/// Open the vault's store and the replay store (redeemed challenges): SQLite in the data
/// directory, or the PostgreSQL database of `config.store`.
///
/// Redeemed challenges go through a second connection that does not wait for the disk per
/// commit: one durable write per attestation would cap attestations with a challenge at the
/// disk's fsync rate (measured ~180/s with SQLite). The cost: a power loss (SQLite) or a database
/// crash (PostgreSQL, `synchronous_commit = off`) within a challenge's 5-minute lifetime can
/// forget its redemption; see `SqliteStore::open_relaxed` and `PostgresOptions::relaxed`.
fn open_stores(config: &ServerConfig) -> Result<(SharedStore, SharedStore), ServerError> {
    if let Some(url) = &config.store {
        let ca_pem = match &config.store_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                ServerError::Startup(format!(
                    "reading the database CA file {}: {e}",
                    path.display()
                ))
            })?),
            None => None,
        };
        // The URL holds the password: errors name the redacted form only.
        let open = |relaxed| {
            enclava_store::PostgresStore::connect_with(
                url.expose(),
                enclava_store::PostgresOptions {
                    relaxed,
                    ca_pem: ca_pem.clone(),
                },
            )
            .map_err(|e| {
                ServerError::Startup(format!(
                    "opening the PostgreSQL store {}: {e}",
                    url.redacted()
                ))
            })
        };
        // Watched: a call that fails because the database is out of reach answers 503.
        return Ok((
            Arc::new(cluster::WatchedStore(Arc::new(open(false)?))),
            Arc::new(cluster::WatchedStore(Arc::new(open(true)?))),
        ));
    }
    let db_path = config.data_dir.join(DB_FILE);
    let open = |relaxed| {
        if relaxed {
            SqliteStore::open_relaxed(&db_path)
        } else {
            SqliteStore::open(&db_path)
        }
        .map_err(|e| ServerError::Store {
            path: db_path.clone(),
            message: e.to_string(),
        })
    };
    Ok((Arc::new(open(false)?), Arc::new(open(true)?)))
}

/// A `--dev` replica on a shared database joins with a copy of the first replica's data
/// directory (its dev unseal key and CA). Without the key file, on a database another replica
/// already initialized, say so before anything is written (instead of creating a new key that
/// unseals nothing and failing with a generic error).
fn refuse_dev_replica_without_key(
    config: &ServerConfig,
    store: &Arc<dyn Store>,
) -> Result<(), ServerError> {
    let key_path = config.data_dir.join(DEV_UNSEAL_KEY_FILE);
    if key_path.exists() {
        return Ok(());
    }
    let initialized = Vault::new(store.clone(), String::new(), system_clock())
        .is_initialized()
        .map_err(|e| ServerError::Startup(format!("reading the seal state: {e}")))?;
    if initialized {
        return Err(ServerError::Startup(format!(
            "the vault in the shared database is already initialized (by another replica), and {} is missing: \
             in development mode a further replica joins with a copy of the first replica's data directory \
             (dev-unseal.key, ca.pem and the TLS files): copy it to {} and start again",
            key_path.display(),
            config.data_dir.display()
        )));
    }
    Ok(())
}

/// Start the server. Returns once it listens; serving continues in a background task.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    prepare_data_dir(&config.data_dir)?;
    let (raw_store, replay_store) = open_stores(&config)?;
    let cluster = Arc::new(cluster::Cluster::new(raw_store.clone(), config.lease_ttl));
    // The audit log appends to the raw store; everything else writes through the audited store,
    // whose every change commits together with its audit entry (enclava_audit::audited).
    let audit_log = Arc::new(
        AuditLog::with_config(
            raw_store.clone(),
            AuditConfig {
                head_file: Some(config.data_dir.join(enclava_audit::head_file::HEAD_FILE)),
                ..AuditConfig::default()
            },
        )
        .map_err(|e| ServerError::Startup(format!("opening the audit log: {e}")))?,
    );
    let store: Arc<dyn Store> = Arc::new(AuditedStore::new(raw_store, audit_log.clone()));
    if config.dev && config.store.is_some() {
        refuse_dev_replica_without_key(&config, &store)?;
    }
    // A log truncated or rewritten behind the signed head (e.g. while the server was down) is
    // announced at once and recorded; the head file is kept as evidence (see AuditLog).
    let tamper = audit_log
        .head_file_problem()
        .map_err(|e| ServerError::Startup(format!("checking the signed audit head: {e}")))?;
    if let Some(p) = &tamper {
        eprintln!("enclava: WARNING: audit log tampering detected: {p}");
        tracing::error!(problem = %p, "audit log tampering detected");
    }

    // The store first: TLS needs to know whether the local CA key is sealed in it.
    let mut tls_material = if config.insecure_http {
        None
    } else {
        Some(tls::ensure_tls(
            &config.data_dir,
            &config.hostnames,
            config.tls.as_ref(),
            service_keys::ca_is_sealed(store.as_ref()),
        )?)
    };

    let listener = TcpListener::bind(config.addr).map_err(|source| ServerError::Bind {
        addr: config.addr,
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.addr,
        source,
    })?;
    let base_url = derive_base_url(&config, addr);
    let local_ip = if addr.ip().is_unspecified() {
        if addr.is_ipv6() {
            "[::1]".to_string()
        } else {
            "127.0.0.1".to_string()
        }
    } else {
        host_for_url(&addr.ip().to_string())
    };
    let local_url = format!("{}://{}:{}", config.scheme(), local_ip, addr.port());

    let vault = Arc::new(Vault::new(store.clone(), base_url.clone(), system_clock()));
    // Replicas on one database: drop keys other processes change from the key cache.
    vault.follow_store_changes();
    let mut id_config = IdentityConfig::new(base_url.clone());
    let mut audiences = vec![config.resource.clone()];
    for a in id_config.audiences.drain(..) {
        if !audiences
            .iter()
            .any(|x| x.trim_end_matches('/') == a.trim_end_matches('/'))
        {
            audiences.push(a);
        }
    }
    id_config.audiences = audiences;
    id_config.attestation_audiences = config.attestation_resources.clone();
    id_config.bootstrap_token_lifetime =
        i64::try_from(config.bootstrap_token_lifetime.as_secs()).unwrap_or(i64::MAX);
    let identity = Arc::new(Identity::new(store.clone(), id_config));
    let metrics = Arc::new(Metrics::new());

    let log2 = audit_log.clone();
    let append: AppendFn<NewEntry> =
        Arc::new(move |batch| log2.append(batch).map(|_| ()).map_err(|e| e.to_string()));
    let m2 = metrics.clone();
    let (audit, _audit_task) = AuditSink::start(append, move |n| {
        m2.audit_entries.inc_by(n as u64);
        m2.audit_batches.inc();
    });

    let state = Arc::new(AppState {
        config: config.clone(),
        base_url: base_url.clone(),
        vault: vault.clone(),
        identity,
        store,
        metrics: metrics.clone(),
        audit,
        audit_log,
        lifecycle: Arc::new({
            let l = Lifecycle::new(config.data_dir.clone(), config.dev);
            match tls_material.as_mut().filter(|t| t.ca_path.is_some()) {
                Some(t) => l.with_local_ca(
                    config.hostnames.clone(),
                    t.ca_key_unsealed.take(),
                    t.cert_swap.clone(),
                ),
                None => l,
            }
        }),
        attestation: Arc::new(
            attest::Attestation::new(config.attestation.clone(), base_url.clone())
                .with_replay_store(replay_store),
        ),
        trusted_issuers: Arc::new(
            release::load_trusted_issuers(&config.trusted_issuers).map_err(ServerError::Startup)?,
        ),
        release_signer: Default::default(),
        rate_limits: Arc::new(ratelimit::RateLimits::new(config.rate_limits.clone())),
        kbs: Arc::new(kbs::KbsState::default()),
        noise: Arc::new(NoiseFilter::new(
            NoiseConfig::default(),
            std::time::Instant::now(),
            chrono::Utc::now(),
        )),
        cluster,
    });

    if config.dev {
        eprintln!(
            "WARNING: development mode (--dev): the vault is initialized and unsealed automatically with the key in {}. \
             Anyone who can read the data directory can unseal it. Never use --dev in production.",
            config.data_dir.join(DEV_UNSEAL_KEY_FILE).display()
        );
        let st = state.clone();
        let key_path = config.data_dir.join(DEV_UNSEAL_KEY_FILE);
        tokio::task::spawn_blocking(move || -> Result<(), ServerError> {
            let _scope = enclava_audit::scope::enter(app::system_scope_entry(
                "server/dev-unseal",
                Some("development mode: initialize or unseal with the key file".into()),
            ));
            st.vault.init_or_unseal_dev(&key_path).map_err(|e| {
                ServerError::Startup(format!(
                    "development unseal with {} failed: {e}",
                    key_path.display()
                ))
            })?;
            st.lifecycle
                .on_unsealed(&st)
                .map_err(ServerError::Startup)?;
            st.attestation
                .on_unsealed(&st)
                .map_err(ServerError::Startup)
        })
        .await
        .map_err(|e| ServerError::Startup(e.to_string()))??;
    }
    if !config.dev {
        let initialized = vault
            .is_initialized()
            .map_err(|e| ServerError::Startup(format!("reading the seal state: {e}")))?;
        let gate = &state.lifecycle.init_token;
        if initialized {
            gate.consume(&config.data_dir)
                .map_err(ServerError::Startup)?;
        } else {
            let path = gate
                .prepare(&config.data_dir)
                .map_err(|e| ServerError::Startup(format!("writing the init token: {e}")))?;
            eprintln!(
                "enclava: the vault is not initialized; initializing needs the one-time init token in {} (mode 0600): \
                 enclava operator init --init-token-file {}",
                path.display(),
                path.display()
            );
        }
    }
    let mode = if config.dev {
        "development mode"
    } else {
        "production mode"
    };
    state
        .audit
        .append_durable(app::system_scope_entry(
            "server/start",
            Some(format!("{mode}, base URL {base_url}")),
        ))
        .await
        .map_err(|e| ServerError::Startup(format!("writing the audit log: {e}")))?;
    if let Some(p) = tamper {
        let mut e = app::system_scope_entry("audit/tamper-detected", Some(p));
        e.result = Outcome::Error;
        e.status = 500;
        if let Err(e) = state.audit.append_durable(e).await {
            eprintln!("enclava: recording the audit tampering failed: {e}");
        }
    }
    match vault.seal_status() {
        Ok(s) => metrics.set_seal_state(s.initialized, s.sealed),
        Err(e) => return Err(ServerError::Startup(format!("reading the seal state: {e}"))),
    }

    spawn_lease(state.clone());
    spawn_maintenance(state.clone());
    spawn_audit_timer(state.clone());

    let app = Router::new()
        .fallback(app::dispatch)
        .with_state(state.clone());
    let handle = axum_server::Handle::new();
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    let (ca_path, ca_fingerprint, created_ca) = match &tls_material {
        Some(t) => (t.ca_path.clone(), t.ca_fingerprint.clone(), t.created_ca),
        None => (None, None, false),
    };
    // Every connection takes a slot of the cap before its TLS handshake; see `connlimit`.
    let limiter = connlimit::ConnLimiter::new(config.max_connections, metrics.clone());
    let task = match tls_material {
        Some(t) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_config(t.server_config);
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(cfg)
                .handshake_timeout(config.tls_handshake_timeout)
                .acceptor(connlimit::LimitAcceptor::new(limiter, false));
            let mut server = axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle.clone());
            http_timeouts(server.http_builder(), &config);
            tokio::spawn(server.serve(make))
        }
        None => {
            let mut server = axum_server::from_tcp(listener)
                .acceptor(connlimit::LimitAcceptor::new(limiter, true))
                .handle(handle.clone());
            http_timeouts(server.http_builder(), &config);
            tokio::spawn(server.serve(make))
        }
    };
    // The listener is bound and listening; wait until the server task owns it.
    let _ = tokio::time::timeout(Duration::from_secs(5), handle.listening()).await;

    Ok(RunningServer {
        addr,
        local_url,
        base_url,
        ca_path,
        ca_fingerprint,
        created_ca,
        state,
        handle,
        task,
    })
}

/// A client must send a complete request head within `header_read_timeout` (slow-loris
/// connections dripping header bytes are closed then); hyper starts the same timer while it
/// waits for the next request on a keep-alive connection, so it is also the idle bound.
fn http_timeouts(
    b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    config: &ServerConfig,
) {
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
}

/// How often the audit timer looks at the noise window and the checkpoint interval.
const AUDIT_TICK: Duration = Duration::from_secs(5);

/// Close noise windows (writing their summaries) and sign a checkpoint when one is due by time.
fn spawn_audit_timer(st: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(AUDIT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if st.cluster.is_stopped() {
                return;
            }
            flush_noise(&st, false).await;
            // Timed checkpoints: one replica signs them (the chain is shared); the others still
            // sign by count and at shutdown, for their own signed head file.
            if st.cluster.holds_lease() {
                checkpoint_if_due(&st, false).await;
            }
        }
    });
}

/// One pass of the audit timer (also used by tests): with `force`, close the noise window and
/// sign a checkpoint of any new entries now.
pub async fn audit_tick_once(st: &Arc<AppState>, force: bool) {
    flush_noise(st, force).await;
    checkpoint_if_due(st, force).await;
}

async fn checkpoint_if_due(st: &Arc<AppState>, force: bool) {
    let log = st.audit_log.clone();
    let res =
        tokio::task::spawn_blocking(move || log.checkpoint_if_due(chrono::Utc::now(), force)).await;
    if let Ok(Err(e)) = res
        && !st.vault.is_sealed()
    {
        tracing::error!(error = %e, "signing an audit checkpoint failed");
    }
}

/// Write the summaries of the anonymous noise counted in the window that ended (all, if `force`).
async fn flush_noise(st: &Arc<AppState>, force: bool) {
    let summaries = st
        .noise
        .drain(std::time::Instant::now(), chrono::Utc::now(), force);
    for s in summaries {
        if let Err(e) = st.audit.append(s.to_entry(app::new_request_id())).await {
            tracing::error!(error = %e, "audit queue failed for a noise summary");
        }
    }
}

/// Take or renew the background-work lease every third of its duration (see [`cluster`]).
fn spawn_lease(st: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(st.cluster.renew_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held = false;
        loop {
            tick.tick().await;
            if st.cluster.is_stopped() {
                return;
            }
            let c = st.cluster.clone();
            let now_held = match tokio::task::spawn_blocking(move || c.try_acquire()).await {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing the background-work lease failed");
                    st.cluster.holds_lease()
                }
                Err(e) => {
                    tracing::error!(error = %e, "the lease task failed");
                    st.cluster.holds_lease()
                }
            };
            if now_held != held {
                held = now_held;
                let what = if held { "took" } else { "lost" };
                tracing::info!(replica = %st.cluster.replica_id, "{what} the background-work lease");
                // Recorded for a shared database, where it says which replica ran the work; a
                // single SQLite process always holds it.
                if held && st.config.store.is_some() {
                    let e = app::system_scope_entry(
                        "cluster/lease-acquired",
                        Some(format!(
                            "replica {} runs the background work (lease {} s)",
                            st.cluster.replica_id,
                            st.cluster.lease_ttl().as_secs()
                        )),
                    );
                    if let Err(e) = st.audit.append(e).await {
                        tracing::error!(error = %e, "audit queue failed for the lease event");
                    }
                }
            }
        }
    });
}

/// Run due key rotations and purge expired deleted objects, every `maintenance_interval`.
fn spawn_maintenance(st: Arc<AppState>) {
    let every = st.config.maintenance_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            if st.cluster.is_stopped() {
                return;
            }
            // Exactly one replica of a database runs it: the lease holder.
            if st.cluster.holds_lease() {
                st.cluster
                    .background_runs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                run_maintenance_once(&st).await;
            }
        }
    });
}

/// One maintenance pass (also used by tests).
pub async fn run_maintenance_once(st: &Arc<AppState>) {
    if st.vault.is_sealed() {
        return;
    }
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now();
        // The changes commit with this entry; the events below name each rotated key.
        let _scope = enclava_audit::scope::enter(app::system_scope_entry(
            "server/maintenance",
            Some("due key rotations and purge of expired deleted objects".into()),
        ));
        (
            st2.vault.run_due_rotations(now),
            st2.vault.purge_expired(now),
        )
    })
    .await;
    let Ok((rotations, purged)) = res else {
        tracing::error!("maintenance task failed");
        return;
    };
    match rotations {
        Ok(events) => {
            for ev in events {
                let (action, version) = match ev.action {
                    RotationAction::Rotate => ("keys/rotate", ev.new_version.clone()),
                    RotationAction::Notify => ("keys/notify", Some(ev.version.clone())),
                };
                tracing::info!(key = %ev.name, action, "rotation policy action");
                let entry = NewEntry {
                    time: chrono::Utc::now(),
                    principal: "system".into(),
                    action: action.into(),
                    object: format!("keys/{}", ev.name),
                    version,
                    result: Outcome::Allowed,
                    status: 200,
                    request_id: app::new_request_id(),
                    client_addr: "internal".into(),
                    detail: Some("rotation policy (maintenance task)".into()),
                };
                if let Err(e) = st.audit.append_durable(entry).await {
                    tracing::error!(error = %e, "audit append failed for a rotation event");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "running due rotations failed"),
    }
    match purged {
        Ok(0) => {}
        Ok(n) => tracing::info!(purged = n, "purged expired deleted objects"),
        Err(e) => tracing::error!(error = %e, "purging expired deleted objects failed"),
    }
    run_certificate_lifetime_actions(st).await;
    let st2 = st.clone();
    match tokio::task::spawn_blocking(move || st2.attestation.sweep_challenges()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(swept = n, "forgot expired redeemed challenges"),
        Ok(Err(e)) => tracing::error!(error = %e, "sweeping redeemed challenges failed"),
        Err(e) => tracing::error!(error = %e, "sweeping redeemed challenges failed"),
    }
}

/// Due certificate lifetime actions (AutoRenew issues a new version, EmailContacts is recorded):
/// each (certificate, version, action) once, even with several replicas (the vault decides with
/// a conditional write). Renewals of `Enclava` certificates sign with the issuing CA.
async fn run_certificate_lifetime_actions(st: &Arc<AppState>) {
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let _scope = enclava_audit::scope::enter(app::system_scope_entry(
            "server/maintenance",
            Some("certificate lifetime actions".into()),
        ));
        let ca = st2.lifecycle.issuing_ca();
        enclava_vault::Certificates::run_lifetime_actions(
            &st2.vault,
            chrono::Utc::now(),
            ca.as_deref(),
        )
    })
    .await;
    let events = match res {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "running certificate lifetime actions failed");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "certificate lifetime actions task failed");
            return;
        }
    };
    for ev in events {
        let action = match ev.action {
            enclava_vault::CertificateAction::AutoRenew => "certificates/autorenew",
            enclava_vault::CertificateAction::EmailContacts => "certificates/emailcontacts",
        };
        let (result, status, detail) = match &ev.error {
            None => (
                Outcome::Allowed,
                200,
                format!(
                    "lifetime action of version {} (maintenance task)",
                    ev.version
                ),
            ),
            Some(e) => {
                tracing::error!(certificate = %ev.name, action, error = %e, "certificate lifetime action failed");
                (
                    Outcome::Error,
                    500,
                    format!("lifetime action of version {} failed: {e}", ev.version),
                )
            }
        };
        tracing::info!(certificate = %ev.name, action, "certificate lifetime action");
        let entry = NewEntry {
            time: chrono::Utc::now(),
            principal: "system".into(),
            action: action.into(),
            object: format!("certificates/{}", ev.name),
            version: ev.new_version.clone().or(Some(ev.version.clone())),
            result,
            status,
            request_id: app::new_request_id(),
            client_addr: "internal".into(),
            detail: Some(detail),
        };
        if let Err(e) = st.audit.append_durable(entry).await {
            tracing::error!(error = %e, "audit append failed for a certificate lifetime action");
        }
    }
}
