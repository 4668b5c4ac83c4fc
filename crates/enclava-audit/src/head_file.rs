//! The signed head file: the latest signed [`Checkpoint`] kept next to (not inside) the database.
//!
//! Checkpoints are also stored in the database, but someone who can change the database can
//! delete the newest entries together with the checkpoints that cover them, and the chain that
//! remains is perfectly consistent. The head file lives in the data directory, is replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory) and is only ever moved
//! forward by the server, so a database rolled back or truncated behind it shows as a chain that
//! ends before a signed head ([`crate::verify_with_head`]).
//!
//! What it does not cover: an attacker who can write the data directory itself can delete or roll
//! back this file too (as with any local witness); exporting the head to an external witness is
//! the next step for that threat (see docs/security.md).

use std::io::Write;
use std::path::Path;

use crate::{AuditError, Checkpoint, Result};

/// File name of the signed head in the server's data directory.
pub const HEAD_FILE: &str = "audit-head.json";

/// Longest head file read (a checkpoint is ~300 bytes; anything bigger is not one).
const MAX_LEN: u64 = 64 * 1024;

/// Atomically replace `path` with `cp`, unless the file already holds a later checkpoint (the
/// head only moves forward, even if two writers race).
pub fn write(path: &Path, cp: &Checkpoint) -> Result<()> {
    if let Ok(Some(existing)) = read(path)
        && existing.seq > cp.seq
    {
        return Ok(());
    }
    let bytes = serde_json::to_vec_pretty(cp).map_err(|e| AuditError::Corrupt {
        seq: cp.seq,
        detail: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| HEAD_FILE.to_string());
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(AuditError::Io)
}

/// The signed head in `path`: `Ok(None)` if there is no such file, an error if it exists but is
/// not a checkpoint (verification reports that as a problem rather than ignoring the file).
pub fn read(path: &Path) -> Result<Option<Checkpoint>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuditError::Io(e)),
    };
    if meta.len() > MAX_LEN {
        return Err(AuditError::Corrupt {
            seq: 0,
            detail: format!(
                "the signed head file {} holds {} bytes, expected a checkpoint of at most {MAX_LEN}",
                path.display(),
                meta.len()
            ),
        });
    }
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| AuditError::Corrupt {
            seq: 0,
            detail: format!(
                "the signed head file {} is not a checkpoint: {e}",
                path.display()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(seq: u64) -> Checkpoint {
        Checkpoint {
            seq,
            head_hash: "ab".repeat(32),
            time: "2026-01-01T00:00:00.000Z".into(),
            signature: "sig".into(),
        }
    }

    #[test]
    fn round_trip_only_moves_forward_and_rejects_junk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(HEAD_FILE);
        assert_eq!(read(&p).unwrap(), None);
        write(&p, &cp(5)).unwrap();
        assert_eq!(read(&p).unwrap(), Some(cp(5)));
        write(&p, &cp(3)).unwrap();
        assert_eq!(
            read(&p).unwrap(),
            Some(cp(5)),
            "an older head never replaces a newer one"
        );
        write(&p, &cp(9)).unwrap();
        assert_eq!(read(&p).unwrap(), Some(cp(9)));
        std::fs::write(&p, b"{not json").unwrap();
        assert!(read(&p).is_err());
    }
}
