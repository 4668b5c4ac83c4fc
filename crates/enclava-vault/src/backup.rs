//! The backup blob format shared by keys and secrets.
//!
//! `"EVBK" || format (1 byte, = 1) || kind (1 byte: 1 key, 2 secret, 3 certificate) || nonce || AES-256-GCM(
//! backup key, payload JSON, AAD = "enclava/v1/backup" || header) || tag`. The backup key is
//! derived from the root key, so only a vault with the same root can restore the blob.

use zeroize::Zeroizing;

use crate::Vault;
use crate::error::{Result, VaultError};
use crate::util::{aead_open, aead_seal};

const MAGIC: &[u8; 4] = b"EVBK";
const FORMAT: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackupKind {
    Key = 1,
    Secret = 2,
    /// A certificate with its key and secret.
    Certificate = 3,
}

impl BackupKind {
    fn name(self) -> &'static str {
        match self {
            BackupKind::Key => "key",
            BackupKind::Secret => "secret",
            BackupKind::Certificate => "certificate",
        }
    }
}

fn aad(header: &[u8]) -> Vec<u8> {
    let mut a = b"enclava/v1/backup".to_vec();
    a.extend_from_slice(header);
    a
}

pub(crate) fn seal(vault: &Vault, kind: BackupKind, payload: &[u8]) -> Result<Vec<u8>> {
    let keys = vault.data_keys()?;
    let mut header = MAGIC.to_vec();
    header.push(FORMAT);
    header.push(kind as u8);
    let body = aead_seal(&keys.backup, &aad(&header), payload)?;
    header.extend_from_slice(&body);
    Ok(header)
}

pub(crate) fn open(vault: &Vault, kind: BackupKind, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let keys = vault.data_keys()?;
    let header = blob.get(..6).ok_or_else(|| {
        VaultError::bad(format!(
            "invalid {} backup: expected an Enclava backup blob, found {} bytes",
            kind.name(),
            blob.len()
        ))
    })?;
    if header.get(..4) != Some(MAGIC.as_slice()) {
        return Err(VaultError::bad(format!(
            "invalid {} backup: expected an Enclava backup blob (it does not start with the backup marker)",
            kind.name()
        )));
    }
    let format = header.get(4).copied().unwrap_or(0);
    if format != FORMAT {
        return Err(VaultError::bad(format!(
            "unsupported backup format version: expected {FORMAT}, found {format}"
        )));
    }
    let found_kind = header.get(5).copied().unwrap_or(0);
    if found_kind != kind as u8 {
        let found = match found_kind {
            1 => "key",
            2 => "secret",
            3 => "certificate",
            _ => "unknown",
        };
        return Err(VaultError::bad(format!(
            "invalid backup: expected a {} backup, found a {found} backup",
            kind.name()
        )));
    }
    let body = blob.get(6..).unwrap_or(&[]);
    aead_open(&keys.backup, &aad(header), body)?.ok_or_else(|| {
        VaultError::bad(format!(
            "the {} backup cannot be restored: it was made by a vault with a different root key, or it is corrupt",
            kind.name()
        ))
    })
}
