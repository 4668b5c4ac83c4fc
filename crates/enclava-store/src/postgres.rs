//! PostgreSQL backend: the production topology of issue 11 (any number of stateless server
//! replicas in front of one PostgreSQL primary, with streaming-replication standbys).
//!
//! Driver: `tokio-postgres`. It parses libpq connection strings and URLs, including several
//! hosts (`host=a,b` or `postgres://a:5432,b:5432/db`) with `target_session_attrs=read-write`,
//! so that after a failover a new connection finds the promoted standby by itself. Its TLS is
//! pluggable: we plug in rustls on aws-lc-rs (the one crypto provider of the project; no ring,
//! no OpenSSL). The sync `postgres` crate wraps the same driver, but it drives the connection
//! with `block_on` on the calling thread, which panics when called from inside the server's
//! async runtime (the server calls the store from async code at start-up, for instance).
//! Instead the store owns a private multi-threaded runtime: every trait call is spawned onto it
//! and the calling thread waits on a plain channel, which is legal on any thread (it blocks
//! like a SQLite call does, nothing more).
//!
//! Concurrency model (several processes on one database):
//! - Transactions run at READ COMMITTED, and each one first takes a transaction-scoped advisory
//!   lock on every `(table, key)` it touches, all in one statement in a fixed order (so two
//!   transactions cannot deadlock on them). That is two-phase locking on the touched keys: an
//!   `Expect` sees the latest committed value and nobody can change it before our commit, also
//!   for a row that does not exist yet (which a row lock could not cover). Transactions that
//!   share no key run in parallel.
//! - Audit appends that come with a change take `LOCK TABLE audit IN EXCLUSIVE MODE` inside the
//!   transaction (readers go on; other appenders wait until our commit) and number entries from
//!   the table's maximum, so the log is one gapless chain in commit order across all processes.
//!   Entries without a change (every request's own entry) are one statement instead (one round
//!   trip, see `append_audit_at`): they land only right after a committed entry, and the
//!   primary key refuses a seq taken meanwhile, which keeps the same chain without the lock.
//! - Statements are prepared once per connection and reused (see `Statements`): a query sent as
//!   text costs an extra Parse/Describe round trip on every call.
//! - A deadlock or serialization failure reported by the database (nothing was committed) is
//!   retried a few times; any other failure is returned. A call that does not finish within
//!   [`OP_TIMEOUT`] fails and its connection is discarded (dropping it closes it, and the
//!   database rolls back whatever it had not committed).
//! - Connections are made lazily and remade when broken, so the store recovers by itself when
//!   the database comes back or a standby is promoted.
//!
//! - Every writing transaction sends `NOTIFY enclava_changes` with the table and key of each row
//!   it wrote (delivered to listeners at commit, in commit order). Each store that hands out its
//!   [`crate::Coherence`] keeps one extra connection `LISTEN`ing on that channel, plus a
//!   heartbeat through the same channel that proves the feed alive (see [`crate::coherence`]).
//!
//! Migrations are numbered (table `enclava_schema_version`) and applied at connect time inside
//! one transaction that holds an advisory lock: replicas starting together apply each one once.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Mutex as AsyncMutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Client, Config, GenericClient, Socket, Statement, Transaction};

use crate::coherence::{Change, Coherence, HEARTBEAT_INTERVAL, decode_change, encode_change};
use crate::{AuditRow, Op, Result, Store, StoreError, Table};

/// The notification channel of committed changes and heartbeats.
pub const CHANGE_CHANNEL: &str = "enclava_changes";

/// `application_name` of the listening connection (operators can see it in
/// `pg_stat_activity`; tests terminate it to simulate a broken feed).
pub const LISTENER_APPLICATION_NAME: &str = "enclava-change-listener";

/// Pause before the listener reconnects after losing its connection.
const LISTEN_RETRY: Duration = Duration::from_millis(200);

/// The newest schema this build knows; see [`migration`].
const SCHEMA_VERSION: i64 = 3;

/// Connections per store. Each trait call holds one for its duration.
const POOL_SIZE: usize = 8;

/// Upper bound of one trait call, connecting included: a database that hangs turns into an
/// error (the server answers 503/500) instead of a request that never ends.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect timeout applied when the connection string sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts for a transaction the database aborted as a deadlock or serialization failure.
const MAX_ATTEMPTS: usize = 5;

/// Advisory lock `(class, id)` taken while migrating. The two-integer lock space is separate
/// from the one-bigint space used for row keys, so the two can never collide.
const LOCK_CLASS: i32 = 0x456e_636c; // "Encl"
const LOCK_MIGRATE: i32 = 1;

/// The DDL that brings the schema from `version - 1` to `version`. Never edit a released
/// version: add the next one (and raise [`SCHEMA_VERSION`]).
fn migration(version: i64) -> String {
    match version {
        1 => {
            let mut ddl = String::new();
            // The tables of version 1 only: later tables come with their own migration.
            for t in Table::ALL
                .into_iter()
                .take_while(|t| *t != Table::KbsSessions)
            {
                // COLLATE "C": keys order bytewise, like SQLite's BINARY, so listing and paging
                // give the same order on both backends.
                ddl.push_str(&format!(
                    "CREATE TABLE {} (k TEXT COLLATE \"C\" PRIMARY KEY, v BYTEA NOT NULL);",
                    t.name()
                ));
            }
            ddl.push_str("CREATE TABLE audit (seq BIGINT PRIMARY KEY CHECK (seq > 0), entry BYTEA NOT NULL);");
            ddl
        }
        // KBS sessions (issue 13): written at every handshake step, read by any replica.
        2 => format!(
            "CREATE TABLE {} (k TEXT COLLATE \"C\" PRIMARY KEY, v BYTEA NOT NULL);",
            Table::KbsSessions.name()
        ),
        // Certificates (issue 12): the third object kind, its operations and issuers.
        3 => CERTIFICATE_TABLES
            .iter()
            .map(|t| {
                format!(
                    "CREATE TABLE {} (k TEXT COLLATE \"C\" PRIMARY KEY, v BYTEA NOT NULL);",
                    t.name()
                )
            })
            .collect(),
        _ => String::new(),
    }
}

/// The tables migration 3 adds.
const CERTIFICATE_TABLES: [Table; 5] = [
    Table::Certificates,
    Table::CertificateVersions,
    Table::DeletedCertificates,
    Table::CertificateOperations,
    Table::CertificateIssuers,
];

/// Options beyond the connection string.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Commit without waiting for the WAL flush (`synchronous_commit = off`): the counterpart of
    /// [`crate::SqliteStore::open_relaxed`], only for the replay set of redeemed challenges. A
    /// crash of the database (not of a client) may lose the last such commits.
    pub relaxed: bool,
    /// Extra trust anchors (PEM) for the database's TLS certificate, beside the public web roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// Hide the password of a connection string (URL userinfo, `password=` in a URL query or in the
/// `key=value` form) so it can appear in logs and errors.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    // Any `scheme://` form, not only postgres: a mistyped scheme must not leak either.
    if let Some(scheme_end) = url.find("://").map(|i| i + 3) {
        let (scheme, rest) = url.split_at(scheme_end);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                if userinfo.contains(':') {
                    format!("{user}:***{}", &authority[at..])
                } else {
                    authority.to_string()
                }
            }
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .map(|p| match p.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                        _ => p.to_string(),
                    })
                    .collect();
                format!("{path}?{}", params.join("&"))
            }
            None => tail.to_string(),
        };
        format!("{scheme}{authority}{tail}")
    } else {
        // key=value form; a quoted value may contain spaces.
        let mut out = String::new();
        let mut rest = url;
        while let Some(pos) = rest.find("password") {
            let (before, after) = rest.split_at(pos);
            out.push_str(before);
            let after_key = after["password".len()..].trim_start();
            let at_word_start = before.is_empty() || before.ends_with(char::is_whitespace);
            if !at_word_start || !after_key.starts_with('=') {
                out.push_str("password");
                rest = &after["password".len()..];
                continue;
            }
            out.push_str("password=***");
            let value = after_key[1..].trim_start();
            rest = if let Some(quoted) = value.strip_prefix('\'') {
                // Skip to the closing quote (a backslash escapes the next character).
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '\'' {
                        end = i + 1;
                        break;
                    }
                }
                &quoted[end..]
            } else {
                let end = value.find(char::is_whitespace).unwrap_or(value.len());
                &value[end..]
            };
        }
        out.push_str(rest);
        out
    }
}

/// The PostgreSQL store. See the module documentation.
pub struct PostgresStore {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Made (and its listener started) on the first [`Store::coherence`] call: a store nobody
    /// caches over (the replay-set connection, tools) keeps no listening connection.
    coherence: OnceLock<Arc<Coherence>>,
}

struct Inner {
    config: Config,
    tls: RustlsConnect,
    relaxed: bool,
    slots: Vec<AsyncMutex<Option<Conn>>>,
    next: AtomicUsize,
}

/// One pooled connection and the statements prepared on it.
struct Conn {
    client: Client,
    stmts: Statements,
}

/// Upper bound of the prepared statements kept per connection. The store's SQL is a fixed set
/// (a handful of statements per table), so this is never reached in practice; it only bounds
/// memory should that change.
const MAX_STATEMENTS: usize = 256;

/// Prepared statements of one connection, by SQL text. A query given as text costs a
/// Parse/Describe round trip before its Bind/Execute one, on every call; a statement prepared
/// once per connection costs one round trip per call. Named statements live as long as their
/// session (a rollback does not drop them); the cache is dropped with its connection, and
/// cleared after any database error so that a statement the server no longer knows (or whose
/// plan a schema change invalidated) is prepared afresh on the next call.
#[derive(Default)]
struct Statements(std::collections::HashMap<String, Statement>);

impl Statements {
    /// The statement for `sql`, prepared through `client` (a connection or a transaction on it)
    /// the first time.
    async fn get<C: GenericClient + Sync>(
        &mut self,
        client: &C,
        sql: &str,
    ) -> std::result::Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = client.prepare(sql).await?;
        if self.0.len() >= MAX_STATEMENTS {
            self.0.clear();
        }
        self.0.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// A failure inside one attempt: a database error (maybe retryable) or our own.
enum Fail {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// The database's own words for an error (never the connection string: the driver's errors do
/// not contain it).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => e.to_string(),
    }
}

fn to_store_error(e: tokio_postgres::Error) -> StoreError {
    // A full disk is told apart so the server can answer 507; the
    // transaction was rolled back.
    if e.code() == Some(&SqlState::DISK_FULL) {
        return StoreError::Full(describe(&e));
    }
    if unreachable(&e) {
        return StoreError::Unavailable(describe(&e));
    }
    StoreError::Backend(describe(&e))
}

/// Whether `e` says the database is out of reach rather than that it refused what we asked: the
/// connection broke or was never made (socket errors, a closed connection), the server is
/// shutting down or starting up (`57P01..57P03`), a connection-class error (`08xxx`), or it has no
/// connection slot left (`53300`). Such a call can succeed unchanged once the database is back;
/// anything else (bad credentials, a missing database, a constraint) is not told apart.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08")
            || c == SqlState::ADMIN_SHUTDOWN.code()
            || c == SqlState::CRASH_SHUTDOWN.code()
            || c == SqlState::CANNOT_CONNECT_NOW.code()
            || c == SqlState::TOO_MANY_CONNECTIONS.code();
    }
    e.is_closed()
        || std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = std::result::Result<T, Fail>> + Send + 'a>>;

impl PostgresStore {
    /// Connect to the database named by `url` (libpq URL or `key=value` string) and bring its
    /// schema up to date. Errors never contain the password.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PostgresOptions::default())
    }

    /// [`PostgresStore::connect`] with options.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<Self> {
        let config = Config::from_str(url).map_err(|e| {
            // The parser's messages name the offending option, never its value.
            StoreError::Backend(format!(
                "invalid PostgreSQL connection string {}: {e}",
                redact_url(url)
            ))
        })?;
        Self::from_config(config, options)
    }

    /// Connect with an already parsed configuration (tests use it to pick a fresh database).
    pub fn from_config(mut config: Config, options: PostgresOptions) -> Result<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let tls = RustlsConnect::new(options.ca_pem.as_deref())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("enclava-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the database runtime: {e}")))?;
        let store = PostgresStore {
            inner: Arc::new(Inner {
                config,
                tls,
                relaxed: options.relaxed,
                slots: (0..POOL_SIZE).map(|_| AsyncMutex::new(None)).collect(),
                next: AtomicUsize::new(0),
            }),
            runtime: Some(runtime),
            coherence: OnceLock::new(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        self.run(|c| {
            Box::pin(async move {
                let tx = c.client.transaction().await?;
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&LOCK_CLASS, &LOCK_MIGRATE],
                )
                .await?;
                tx.batch_execute(
                    "CREATE TABLE IF NOT EXISTS enclava_schema_version (\
                     version BIGINT PRIMARY KEY, \
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                )
                .await?;
                let found: i64 = tx
                    .query_one(
                        "SELECT COALESCE(MAX(version), 0)::BIGINT FROM enclava_schema_version",
                        &[],
                    )
                    .await?
                    .get(0);
                if found > SCHEMA_VERSION {
                    return Err(Fail::Store(StoreError::SchemaTooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    }));
                }
                for version in found + 1..=SCHEMA_VERSION {
                    tx.batch_execute(&migration(version)).await?;
                    tx.execute(
                        "INSERT INTO enclava_schema_version (version) VALUES ($1)",
                        &[&version],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64> {
        self.run(|c| {
            Box::pin(async move {
                Ok(c.client
                    .query_one(
                        "SELECT COALESCE(MAX(version), 0)::BIGINT FROM enclava_schema_version",
                        &[],
                    )
                    .await?
                    .get(0))
            })
        })
    }

    /// Run `op` on a pooled connection on the private runtime and wait for it. `op` may run more
    /// than once (retry after a deadlock or serialization failure), so it must build each attempt
    /// afresh from what it captured.
    fn run<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut Conn) -> BoxFut<'c, T> + Send + Sync + 'static,
    {
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(StoreError::Backend("the store is shut down".into()));
        };
        let inner = self.inner.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let r = match tokio::time::timeout(OP_TIMEOUT, inner.with_client(&op)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} s",
                    OP_TIMEOUT.as_secs()
                ))),
            };
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the database task ended without an answer".into(),
            ))
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks for its tasks, which panics inside another runtime (a
        // server test dropping its store): let the worker threads wind down on their own.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Inner {
    async fn connect(&self) -> Result<Conn> {
        let (client, connection) = self.config.connect(self.tls.clone()).await.map_err(|e| {
            let msg = format!("cannot connect to the database: {}", describe(&e));
            // Refused, reset, timed out, shutting down: out of reach. The database's refusal
            // (wrong password, no such database) is a configuration error, not an outage.
            if e.as_db_error().is_none() || unreachable(&e) {
                StoreError::Unavailable(msg)
            } else {
                StoreError::Backend(msg)
            }
        })?;
        // The connection task ends when the socket breaks; the client then reports is_closed()
        // and the next call connects afresh.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if self.relaxed {
            client
                .batch_execute("SET synchronous_commit = off")
                .await
                .map_err(to_store_error)?;
        }
        Ok(Conn {
            client,
            stmts: Statements::default(),
        })
    }

    async fn with_client<T, F>(&self, op: &F) -> Result<T>
    where
        F: for<'c> Fn(&'c mut Conn) -> BoxFut<'c, T> + Sync,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        // Taken out of the slot for the duration: if this future is dropped (timeout) the
        // connection goes with it instead of being reused in an unknown state.
        let mut conn = match slot.take() {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect().await?,
        };
        let mut attempt = 1;
        let result = loop {
            let r = op(&mut conn).await;
            if matches!(r, Err(Fail::Pg(_))) {
                // See `Statements`: prepare afresh after any database error.
                conn.stmts.0.clear();
            }
            match r {
                Ok(v) => break Ok(v),
                Err(Fail::Store(e)) => break Err(e),
                Err(Fail::Pg(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * attempt as u64)).await;
                }
                Err(Fail::Pg(e)) => break Err(to_store_error(e)),
            }
        };
        if !conn.client.is_closed() {
            *slot = Some(conn);
        }
        result
    }
}

/// The advisory-lock id of one row: the first 8 bytes of SHA-256(table NUL key). A collision
/// only makes two unrelated rows wait for each other.
fn row_lock_id(table: Table, key: &str) -> i64 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(table.name().as_bytes());
    ctx.update(&[0]);
    ctx.update(key.as_bytes());
    let d = ctx.finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    i64::from_be_bytes(b)
}

/// Lock every row `ops` touch, in ascending id order (one statement; PostgreSQL evaluates the
/// volatile target list after the sort), so that lockers never wait on each other in a cycle.
async fn lock_rows(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    ops: &[Op],
) -> std::result::Result<(), Fail> {
    let mut ids: Vec<i64> = ops
        .iter()
        .map(|op| match op {
            Op::Put { table, key, .. }
            | Op::Delete { table, key }
            | Op::Expect { table, key, .. } => row_lock_id(*table, key),
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let s = stmts
        .get(
            tx,
            "SELECT pg_advisory_xact_lock(id) FROM unnest($1::BIGINT[]) AS id ORDER BY id",
        )
        .await?;
    tx.query(&s, &[&ids]).await?;
    Ok(())
}

async fn apply_ops(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    ops: &[Op],
) -> std::result::Result<(), Fail> {
    lock_rows(tx, stmts, ops).await?;
    for op in ops {
        match op {
            Op::Put { table, key, value } => {
                let s = stmts
                    .get(
                        tx,
                        &format!(
                            "INSERT INTO {} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                            table.name()
                        ),
                    )
                    .await?;
                tx.execute(&s, &[key, value]).await?;
            }
            Op::Delete { table, key } => {
                let s = stmts
                    .get(tx, &format!("DELETE FROM {} WHERE k = $1", table.name()))
                    .await?;
                tx.execute(&s, &[key]).await?;
            }
            Op::Expect { table, key, value } => {
                let s = stmts
                    .get(tx, &format!("SELECT v FROM {} WHERE k = $1", table.name()))
                    .await?;
                let current: Option<Vec<u8>> = tx.query_opt(&s, &[key]).await?.map(|r| r.get(0));
                if current != *value {
                    // Returning drops the transaction: everything done so far rolls back.
                    return Err(Fail::Store(StoreError::Conflict {
                        table: table.name(),
                        key: key.clone(),
                        expected: if value.is_some() {
                            "unchanged"
                        } else {
                            "absent"
                        },
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Lock the audit table against other appenders (until commit) and return the next seq.
async fn lock_audit(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
) -> std::result::Result<i64, Fail> {
    tx.batch_execute("LOCK TABLE audit IN EXCLUSIVE MODE")
        .await?;
    let s = stmts
        .get(tx, "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM audit")
        .await?;
    let head: i64 = tx.query_one(&s, &[]).await?.get(0);
    Ok(head + 1)
}

/// The seq of each of `n` entries from `first` on.
fn audit_seqs(first: i64, n: usize) -> std::result::Result<Vec<i64>, Fail> {
    (0..n)
        .map(|i| i64::try_from(i).map(|i| first + i))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Fail::Store(StoreError::Backend(e.to_string())))
}

async fn insert_audit(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    first: i64,
    entries: &[Vec<u8>],
) -> std::result::Result<(), Fail> {
    if entries.is_empty() {
        return Ok(());
    }
    let seqs = audit_seqs(first, entries.len())?;
    let s = stmts
        .get(
            tx,
            "INSERT INTO audit (seq, entry) SELECT * FROM unnest($1::BIGINT[], $2::BYTEA[])",
        )
        .await?;
    tx.execute(&s, &[&seqs, &entries]).await?;
    Ok(())
}

/// Append `entries` at `first` in ONE statement (its own implicit transaction, one round trip
/// with the prepared statement): the append of audit entries that come without a change, which
/// is every request's entry. The chain stays one gapless sequence in commit order without the
/// table lock of [`lock_audit`]:
/// - the rows land only if entry `first - 1` is committed (or `first` is 1): the entry `first`
///   chains onto is visible to this statement's snapshot, so nothing is ever left out between;
/// - the primary key refuses a second entry at a seq already taken, also against a concurrent
///   insert not committed yet (the second waits for the first and fails once it commits);
/// - an appender holding the table lock ([`lock_audit`], EXCLUSIVE) and this insert (ROW
///   EXCLUSIVE) exclude each other, so the lock holder's `MAX(seq)` sees this append.
///
/// Hence entry `n + 1` is committed only after entry `n`, by whichever process. Returns whether
/// the rows landed at `first`; `false` (nothing written) means another process appended, for
/// the caller to re-chain.
async fn append_audit_at(
    c: &mut Conn,
    first: i64,
    entries: &[Vec<u8>],
) -> std::result::Result<bool, Fail> {
    let seqs = audit_seqs(first, entries.len())?;
    let s = c
        .stmts
        .get(
            &c.client,
            "INSERT INTO audit (seq, entry) SELECT * FROM unnest($1::BIGINT[], $2::BYTEA[]) \
             WHERE $3::BIGINT = 1 OR EXISTS (SELECT 1 FROM audit WHERE seq = $3::BIGINT - 1)",
        )
        .await?;
    match c.client.execute(&s, &[&seqs, &entries, &first]).await {
        Ok(n) => Ok(n == seqs.len() as u64),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

impl Store for PostgresStore {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.run(move |c| {
            let key = key.clone();
            Box::pin(async move {
                let s = c
                    .stmts
                    .get(
                        &c.client,
                        &format!("SELECT v FROM {} WHERE k = $1", table.name()),
                    )
                    .await?;
                Ok(c.client.query_opt(&s, &[&key]).await?.map(|r| r.get(0)))
            })
        })
    }

    fn list(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = prefix.to_owned();
        let after = after.map(str::to_owned);
        let limit = to_i64(limit);
        self.run(move |c| {
            let (prefix, after) = (prefix.clone(), after.clone());
            Box::pin(async move {
                // starts_with, not LIKE: wildcards in names must not matter. The `k >= prefix`
                // bound lets the primary key index start the scan at the prefix.
                let s = c
                    .stmts
                    .get(
                        &c.client,
                        &format!(
                            "SELECT k, v FROM {} WHERE k >= $1 AND starts_with(k, $1) \
                             AND ($2::TEXT IS NULL OR k > $2) ORDER BY k LIMIT $3",
                            table.name()
                        ),
                    )
                    .await?;
                let rows = c.client.query(&s, &[&prefix, &after, &limit]).await?;
                Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
            })
        })
    }

    fn transact(&self, ops: Vec<Op>) -> Result<()> {
        let ops = Arc::new(ops);
        self.run(move |c| {
            let ops = ops.clone();
            Box::pin(async move {
                let tx = c.client.transaction().await?;
                apply_ops(&tx, &mut c.stmts, &ops).await?;
                notify_changes(&tx, &mut c.stmts, &ops).await?;
                tx.commit().await?;
                Ok(())
            })
        })
    }

    fn append_audit(&self, entries: Vec<Vec<u8>>) -> Result<u64> {
        let entries = Arc::new(entries);
        self.run(move |c| {
            let entries = entries.clone();
            Box::pin(async move {
                let tx = c.client.transaction().await?;
                let first = lock_audit(&tx, &mut c.stmts).await?;
                insert_audit(&tx, &mut c.stmts, first, &entries).await?;
                tx.commit().await?;
                Ok(to_u64(first))
            })
        })
    }

    fn transact_audited(&self, ops: Vec<Op>, audit: Vec<Vec<u8>>, first_seq: u64) -> Result<()> {
        let ops = Arc::new(ops);
        let audit = Arc::new(audit);
        self.run(move |c| {
            let (ops, audit) = (ops.clone(), audit.clone());
            Box::pin(async move {
                let conflict = || {
                    Fail::Store(StoreError::Conflict {
                        table: crate::AUDIT_TABLE,
                        key: first_seq.to_string(),
                        expected: "the next audit sequence number",
                    })
                };
                // Entries without a change (every request's entry): one statement.
                if ops.is_empty() && !audit.is_empty() {
                    let first = i64::try_from(first_seq).map_err(|_| conflict())?;
                    if first < 1 {
                        return Err(conflict());
                    }
                    return match append_audit_at(c, first, &audit).await? {
                        true => Ok(()),
                        false => Err(conflict()),
                    };
                }
                let tx = c.client.transaction().await?;
                // Row locks before the audit lock, in every transaction: no lock cycle.
                apply_ops(&tx, &mut c.stmts, &ops).await?;
                notify_changes(&tx, &mut c.stmts, &ops).await?;
                let first = lock_audit(&tx, &mut c.stmts).await?;
                if to_u64(first) != first_seq {
                    return Err(conflict());
                }
                insert_audit(&tx, &mut c.stmts, first, &audit).await?;
                tx.commit().await?;
                Ok(())
            })
        })
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<AuditRow>> {
        let from = to_i64(from);
        let limit = to_i64(limit);
        self.run(move |c| {
            Box::pin(async move {
                let s = c
                    .stmts
                    .get(
                        &c.client,
                        "SELECT seq, entry FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
                    )
                    .await?;
                let rows = c.client.query(&s, &[&from, &limit]).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| AuditRow {
                        seq: to_u64(r.get(0)),
                        entry: r.get(1),
                    })
                    .collect())
            })
        })
    }

    fn audit_head(&self) -> Result<u64> {
        self.run(|c| {
            Box::pin(async move {
                let s = c
                    .stmts
                    .get(&c.client, "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM audit")
                    .await?;
                let head: i64 = c.client.query_one(&s, &[]).await?.get(0);
                Ok(to_u64(head))
            })
        })
    }
    fn coherence(&self) -> Arc<Coherence> {
        self.coherence
            .get_or_init(|| {
                let coherence = Coherence::shared();
                // Without a runtime (shut down) there is no feed: the coherence stays
                // untrusted, so caches read through.
                if let Some(rt) = self.runtime.as_ref() {
                    rt.spawn(listen(self.inner.clone(), coherence.clone()));
                }
                coherence
            })
            .clone()
    }
}

// --- Change feed: NOTIFY in writing transactions, one LISTEN connection per store -----------

/// Tell listeners which rows this transaction writes (sent by PostgreSQL at commit, dropped on
/// rollback). Redeemed nonces are not cached anywhere and are written on every attestation:
/// they are left out.
async fn notify_changes(
    tx: &Transaction<'_>,
    stmts: &mut Statements,
    ops: &[Op],
) -> std::result::Result<(), Fail> {
    let mut payloads: Vec<String> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Put { table, key, .. } | Op::Delete { table, key }
                if !matches!(table, Table::RedeemedNonces | Table::KbsSessions) =>
            {
                Some(encode_change(*table, key))
            }
            _ => None,
        })
        .collect();
    payloads.sort_unstable();
    payloads.dedup();
    if payloads.is_empty() {
        return Ok(());
    }
    let s = stmts
        .get(tx, "SELECT pg_notify($1, p) FROM unnest($2::TEXT[]) AS p")
        .await?;
    tx.execute(&s, &[&CHANGE_CHANNEL, &payloads]).await?;
    Ok(())
}

/// The listener: forever (until the store's runtime stops) keep one connection listening,
/// publish what it hears into `coherence`, and confirm the feed with heartbeats.
async fn listen(inner: Arc<Inner>, coherence: Arc<Coherence>) {
    // A random id tells our heartbeats apart from other stores' on the same channel.
    let mut id = [0u8; 8];
    let origin = match aws_lc_rs::rand::fill(&mut id) {
        Ok(()) => hex::encode(id),
        // Without randomness the feed cannot be confirmed: stay untrusted (caches read
        // through), which is slow but correct.
        Err(_) => return,
    };
    loop {
        let reason = listen_once(&inner, &coherence, &origin).await;
        coherence.distrust();
        // The store crate does not log: a lost feed shows as untrusted caches (reads go to
        // the database) and recovers by itself here.
        let _ = reason;
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

/// One listening session; returns why it ended.
async fn listen_once(inner: &Inner, coherence: &Arc<Coherence>, origin: &str) -> String {
    let mut config = inner.config.clone();
    config.application_name(LISTENER_APPLICATION_NAME);
    let (client, mut connection) = match config.connect(inner.tls.clone()).await {
        Ok(c) => c,
        Err(e) => return format!("cannot connect: {}", describe(&e)),
    };
    // Heartbeats in flight: (number, when sent), oldest first.
    let pending: Arc<Pending> = Arc::default();
    let (coh, pend, own) = (coherence.clone(), pending.clone(), format!("h|{origin}|"));
    // Drives the connection (query answers and notifications, in the order the server sent
    // them) and publishes each notification before anything sent after it is processed.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let payload = n.payload();
                    if let Some(number) = payload.strip_prefix(own.as_str()) {
                        let Ok(number) = number.parse::<u64>() else {
                            continue;
                        };
                        let mut p = pend.lock().unwrap_or_else(|e| e.into_inner());
                        while let Some(&(n, sent)) = p.front() {
                            if n > number {
                                break;
                            }
                            p.pop_front();
                            if n == number {
                                coh.confirm(sent);
                            }
                        }
                    } else if let Some(change) = decode_change(payload) {
                        coh.publish(&change);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
        // Nothing more will be heard: stop trusting caches now, not when the window ends.
        coh.distrust();
    });
    let reason = heartbeats(&client, coherence, origin, &pending, &driver).await;
    driver.abort();
    reason
}

type Pending = std::sync::Mutex<std::collections::VecDeque<(u64, std::time::Instant)>>;

/// Heartbeats remembered while waiting for them to come back (10 s worth).
const MAX_PENDING_HEARTBEATS: usize = 100;

/// LISTEN, flush, then send heartbeats until something fails; returns what failed.
async fn heartbeats(
    client: &Client,
    coherence: &Coherence,
    origin: &str,
    pending: &Pending,
    driver: &tokio::task::JoinHandle<()>,
) -> String {
    if let Err(e) = client
        .batch_execute(&format!("LISTEN {CHANGE_CHANNEL}"))
        .await
    {
        return format!("LISTEN failed: {}", describe(&e));
    }
    // Whatever was committed while nobody listened is unknown: drop every cached entry before
    // the first heartbeat makes the caches trusted again.
    coherence.publish(&Change::Everything);
    let mut number: u64 = 0;
    loop {
        number += 1;
        {
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            // Heartbeats that never come back are not waited for forever (bounded memory);
            // the feed is simply not confirmed meanwhile.
            if p.len() >= MAX_PENDING_HEARTBEATS {
                p.pop_front();
            }
            p.push_back((number, std::time::Instant::now()));
        }
        let beat = format!("h|{origin}|{number}");
        match tokio::time::timeout(
            HEARTBEAT_INTERVAL * 5,
            client.execute("SELECT pg_notify($1, $2)", &[&CHANGE_CHANNEL, &beat]),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("heartbeat failed: {}", describe(&e)),
            Err(_) => return "heartbeat timed out".to_string(),
        }
        tokio::time::sleep(HEARTBEAT_INTERVAL).await;
        if driver.is_finished() {
            return "the listening connection closed".to_string();
        }
    }
}

// --- TLS: rustls on aws-lc-rs as tokio-postgres's TLS implementation -------------------------

/// Makes one TLS connector per connection attempt. `sslmode` in the connection string decides
/// whether it is used (`prefer`, the default, tries TLS and falls back to plain when the server
/// does not offer it; `require` refuses plain). Certificates are always verified against the
/// roots: there is no "encrypt but trust anyone" mode.
#[derive(Clone)]
struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    fn new(ca_pem: Option<&[u8]>) -> Result<Self> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    StoreError::Backend(format!("the database CA file is not PEM: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::Backend(format!("the database CA certificate is invalid: {e}"))
                })?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(RustlsConnect(Arc::new(config)))
    }
}

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnectOne;
    type Error = std::convert::Infallible;

    fn make_tls_connect(
        &mut self,
        domain: &str,
    ) -> std::result::Result<RustlsConnectOne, Self::Error> {
        // The driver asks for a connector before it knows whether TLS will be used, also for a
        // Unix socket (domain ""): a name that is no valid server name fails only if TLS is
        // actually attempted.
        Ok(RustlsConnectOne {
            config: self.0.clone(),
            name: rustls::pki_types::ServerName::try_from(domain.to_owned()).ok(),
        })
    }
}

struct RustlsConnectOne {
    config: Arc<rustls::ClientConfig>,
    name: Option<rustls::pki_types::ServerName<'static>>,
}

impl TlsConnect<Socket> for RustlsConnectOne {
    type Stream = RustlsStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the database host is not a valid TLS server name",
                )
            })?;
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(s))
        })
    }
}

struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // No tls-server-end-point binding: its hash must follow the certificate's signature
        // algorithm, and a wrong one would make SCRAM fail; SCRAM without binding still never
        // sends the password.
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_password_form() {
        for (url, want) in [
            (
                "postgres://enclava:s3cret@db1:5432,db2:5432/vault?target_session_attrs=read-write",
                "postgres://enclava:***@db1:5432,db2:5432/vault?target_session_attrs=read-write",
            ),
            (
                "postgresql://u@h/db?password=s3cret&sslmode=require",
                "postgresql://u@h/db?password=***&sslmode=require",
            ),
            ("postgres://h/db", "postgres://h/db"),
            (
                "host=a,b user=u password=s3cret dbname=v",
                "host=a,b user=u password=*** dbname=v",
            ),
            (
                "host=a password = 'se cr\\'et' dbname=v",
                "host=a password=*** dbname=v",
            ),
        ] {
            let got = redact_url(url);
            assert_eq!(got, want);
            assert!(!got.contains("s3cret") && !got.contains("cr"), "{got}");
        }
    }

    #[test]
    fn bad_connection_string_is_an_error_without_the_password() {
        let err = PostgresStore::connect("postgres://u:s3cret@h/db?bogus_option=1")
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("invalid PostgreSQL connection string"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn unreachable_database_is_an_error_not_a_hang() {
        // Port 1 on loopback: connection refused at once.
        let start = std::time::Instant::now();
        let err = PostgresStore::connect("postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2")
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("cannot connect to the database"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
        assert!(start.elapsed() < Duration::from_secs(20));
        // Out of reach, not a configuration error: the server answers 503 and retries.
        assert!(err.is_unavailable(), "{err:?}");
    }

    #[test]
    fn row_lock_ids_separate_tables_and_keys() {
        assert_ne!(
            row_lock_id(Table::Keys, "a"),
            row_lock_id(Table::Secrets, "a")
        );
        assert_ne!(row_lock_id(Table::Keys, "a"), row_lock_id(Table::Keys, "b"));
        assert_eq!(row_lock_id(Table::Keys, "a"), row_lock_id(Table::Keys, "a"));
    }
}
