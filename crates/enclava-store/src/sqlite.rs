//! Embedded backend: one SQLite file in the data directory, WAL journal, `synchronous=FULL` so that
//! an acknowledged transaction survives a crash or power loss.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{AuditRow, Op, Result, Store, StoreError, Table};

// 2: `kbs_sessions`; 3: the certificate tables (all created by the `CREATE TABLE IF NOT EXISTS`
// loop over every table).
const SCHEMA_VERSION: i64 = 3;

/// The embedded store. One connection behind a mutex: SQLite serializes writers anyway, and the
/// vault's hot paths (crypto operations) read keys that callers cache.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    // A full disk is told apart: the caller can answer "insufficient storage" instead of a
    // generic failure (SQLite has rolled the transaction back; nothing of it was written).
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        return StoreError::Full(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

/// Create `path` empty with mode 0600 unless it exists; tighten an existing database (and its
/// `-wal` / `-shm` companions) that group or others can access. Tightening is best effort (a
/// file of another owner stays as it is: SQLite then opens it, or fails, on its own terms).
#[cfg(unix)]
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(StoreError::Backend(format!(
                "cannot create the database file {}: {e}",
                path.display()
            )));
        }
    }
    let mut companions = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        companions.push(name.into());
    }
    for p in companions {
        if let Ok(meta) = std::fs::metadata(&p)
            && meta.is_file()
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<()> {
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`. A new database file is created with mode
    /// 0600 (SQLite gives its `-wal` and `-shm` files the database file's mode), and an existing
    /// one readable by group or others is tightened to 0600 when we own it: the database holds
    /// wrapped keys, the audit log and identity records, no one else has a reason to read it.
    pub fn open(path: &Path) -> Result<Self> {
        create_private(path)?;
        let conn = Connection::open(path).map_err(backend)?;
        Self::init(conn, "FULL")
    }

    /// A second connection to the database at `path` whose commits do not wait for the disk
    /// (`synchronous=NORMAL`; in WAL mode a commit survives a crash of the process, but the last
    /// commits before a power loss or kernel crash may be lost). Only for rows whose loss after a
    /// power loss is acceptable and that are written on hot paths: the replay set of redeemed
    /// attestation challenges (a full-durability commit costs one fsync, ~5 ms on a common disk,
    /// per attestation). A later `FULL` commit of another connection makes them durable too.
    pub fn open_relaxed(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(backend)?;
        Self::init(conn, "NORMAL")
    }

    /// A private in-memory database, for tests and benchmarks.
    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(backend)?, "FULL")
    }

    fn init(conn: Connection, synchronous: &str) -> Result<Self> {
        // The busy timeout first: switching to WAL needs a lock that another process (the CLI
        // reading the audit log while the server writes) may hold for a moment.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let mut ddl = String::from("BEGIN;");
        for t in Table::ALL {
            ddl.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {} (k TEXT PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID;",
                t.name()
            ));
        }
        ddl.push_str(
            "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY NOT NULL, entry BLOB NOT NULL);",
        );
        ddl.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"));
        conn.execute_batch(&ddl).map_err(backend)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (the transaction rolls
        // back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Apply `ops` inside `tx` (the caller commits or drops it).
fn apply_ops(tx: &rusqlite::Transaction<'_>, ops: Vec<Op>) -> Result<()> {
    for op in ops {
        match op {
            Op::Put { table, key, value } => {
                tx.prepare_cached(&format!(
                    "INSERT INTO {} (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                    table.name()
                ))
                .and_then(|mut s| s.execute(params![key, value]))
                .map_err(backend)?;
            }
            Op::Delete { table, key } => {
                tx.prepare_cached(&format!("DELETE FROM {} WHERE k = ?1", table.name()))
                    .and_then(|mut s| s.execute(params![key]))
                    .map_err(backend)?;
            }
            Op::Expect { table, key, value } => {
                let current: Option<Vec<u8>> = tx
                    .prepare_cached(&format!("SELECT v FROM {} WHERE k = ?1", table.name()))
                    .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
                    .map_err(backend)?;
                if current != value {
                    // The caller drops the transaction: everything done so far rolls back.
                    return Err(StoreError::Conflict {
                        table: table.name(),
                        key,
                        expected: if value.is_some() {
                            "unchanged"
                        } else {
                            "absent"
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

/// Append audit rows after the current maximum seq inside `tx`; returns the first seq.
fn append_rows(tx: &rusqlite::Transaction<'_>, entries: &[Vec<u8>]) -> Result<u64> {
    let head: i64 = tx
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0))
        .map_err(backend)?;
    let first = head + 1;
    let mut stmt = tx
        .prepare_cached("INSERT INTO audit (seq, entry) VALUES (?1, ?2)")
        .map_err(backend)?;
    for (i, entry) in entries.iter().enumerate() {
        let seq = first + i64::try_from(i).map_err(|e| StoreError::Backend(e.to_string()))?;
        stmt.execute(params![seq, entry]).map_err(backend)?;
    }
    u64::try_from(first).map_err(|e| StoreError::Backend(e.to_string()))
}

impl Store for SqliteStore {
    fn coherence(&self) -> std::sync::Arc<crate::Coherence> {
        crate::Coherence::single_process()
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT v FROM {} WHERE k = ?1", table.name()))
            .map_err(backend)?;
        stmt.query_row(params![key], |r| r.get(0))
            .optional()
            .map_err(backend)
    }

    fn list(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let conn = self.conn();
        // Range scan on the primary key: k >= prefix AND k < prefix + U+10FFFF... done with
        // substr so that LIKE's wildcards in names cannot matter.
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT k, v FROM {} WHERE substr(k, 1, length(?1)) = ?1 AND (?2 IS NULL OR k > ?2) ORDER BY k LIMIT ?3",
                table.name()
            ))
            .map_err(backend)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![prefix, after, limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(backend)?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(backend)
    }

    fn transact(&self, ops: Vec<Op>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        apply_ops(&tx, ops)?;
        tx.commit().map_err(backend)
    }

    fn append_audit(&self, entries: Vec<Vec<u8>>) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let first = append_rows(&tx, &entries)?;
        tx.commit().map_err(backend)?;
        Ok(first)
    }

    fn transact_audited(&self, ops: Vec<Op>, audit: Vec<Vec<u8>>, first_seq: u64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        // Dropping `tx` on any error below rolls back both the change and the entries.
        apply_ops(&tx, ops)?;
        let first = append_rows(&tx, &audit)?;
        if first != first_seq {
            return Err(StoreError::Conflict {
                table: crate::AUDIT_TABLE,
                key: first_seq.to_string(),
                expected: "the next audit sequence number",
            });
        }
        tx.commit().map_err(backend)
    }

    fn audit_range(&self, from: u64, limit: usize) -> Result<Vec<AuditRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT seq, entry FROM audit WHERE seq >= ?1 ORDER BY seq LIMIT ?2")
            .map_err(backend)?;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![from, limit], |r| {
                let seq: i64 = r.get(0)?;
                Ok(AuditRow {
                    seq: seq.max(0) as u64,
                    entry: r.get(1)?,
                })
            })
            .map_err(backend)?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(backend)
    }

    fn audit_head(&self) -> Result<u64> {
        let conn = self.conn();
        let head: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0))
            .map_err(backend)?;
        Ok(head.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(table: Table, k: &str, v: &[u8]) -> Op {
        Op::Put {
            table,
            key: k.into(),
            value: v.to_vec(),
        }
    }

    // The behaviour shared with the other backends is tested in tests/store.rs, once per
    // backend; here only what is SQLite's own.

    #[cfg(unix)]
    #[test]
    fn database_and_wal_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let s = SqliteStore::open(&path).unwrap();
        s.transact(vec![put(Table::Meta, "m", b"1")]).unwrap();
        let wal = dir.path().join("vault.db-wal");
        let shm = dir.path().join("vault.db-shm");
        // The connection is open and has written: both companions exist now.
        assert!(wal.exists() && shm.exists());
        for p in [&path, &wal, &shm] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        drop(s);
        // A database created world-readable (by an older version) is tightened on open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(s.get(Table::Meta, "m").unwrap().as_deref(), Some(&b"1"[..]));
    }
}
