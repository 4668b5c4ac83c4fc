//! Sealing: the key hierarchy and the init / unseal / seal lifecycle.
//!
//! - A random 32-byte **unseal key** is split with Shamir's scheme into N shares, threshold T
//!   ([`shamir`]); it is never stored (except in development mode, in a 0600 file).
//! - A random 32-byte **root key** is stored only encrypted under the unseal key (AES-256-GCM,
//!   AAD naming its purpose and format version) in `Table::Meta`.
//! - **Data keys** are derived from the root key with HKDF-SHA256, one per purpose: object
//!   sealing (keys and secrets at rest) and backup blobs.

pub mod shamir;

use std::path::Path;
use std::sync::Arc;

use enclava_store::{Op, Table};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Vault;
use crate::error::{Result, VaultError};
use crate::util::{aead_open, aead_seal, hkdf32, random_key32};

/// What `init` returns: the unseal key shares, to be printed once and handed to custodians.
pub struct InitOutput {
    pub shares: Vec<Zeroizing<String>>,
    pub threshold: u8,
}

impl std::fmt::Debug for InitOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InitOutput {{ shares: <{} redacted>, threshold: {} }}",
            self.shares.len(),
            self.threshold
        )
    }
}

/// Progress of an unseal: `sealed` stays true until `threshold` distinct valid shares were given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealProgress {
    pub sealed: bool,
    pub progress: u8,
    pub threshold: u8,
}

/// Seal status for health / status endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    pub initialized: bool,
    pub sealed: bool,
    /// Shares given so far in the current unseal attempt.
    pub progress: u8,
    /// Shares needed (0 when not initialized).
    pub threshold: u8,
    /// Shares issued (0 when not initialized).
    pub shares: u8,
    /// True when the unseal key lives in a development file instead of shares.
    pub dev_mode: bool,
}

/// Keys derived from the root key, held while unsealed. Zeroized on drop.
pub(crate) struct DataKeys {
    pub(crate) object: Zeroizing<[u8; 32]>,
    pub(crate) backup: Zeroizing<[u8; 32]>,
    /// Authenticates stored records' metadata.
    pub(crate) record_mac: Zeroizing<[u8; 32]>,
    /// Base of [`Vault::derived_key`]: purpose-bound keys for the server's own use.
    pub(crate) derivation: Zeroizing<[u8; 32]>,
}

/// Shares accumulated towards the threshold (in memory only).
#[derive(Default)]
pub(crate) struct PendingShares {
    pub(crate) shares: Vec<shamir::Share>,
}

/// `Table::Meta` row holding the seal configuration and the wrapped root key.
pub(crate) const SEAL_META_KEY: &str = "seal";
const ROOT_AAD: &[u8] = b"enclava/v1/root-key: root key wrapped under the unseal key";
const INFO_OBJECT: &[u8] = b"enclava/v1/data-key/object-seal";
const INFO_BACKUP: &[u8] = b"enclava/v1/data-key/backup";
const INFO_RECORD_MAC: &[u8] = b"enclava/v1/data-key/record-mac";
const INFO_DERIVATION: &[u8] = b"enclava/v1/data-key/derivation-base";
const DERIVED_PREFIX: &[u8] = b"enclava/v1/derived/";

#[derive(Serialize, Deserialize)]
struct SealRecord {
    format: u32,
    shares: u8,
    threshold: u8,
    dev: bool,
    created: i64,
    /// hex of nonce || AES-256-GCM(unseal key, root key) || tag
    wrapped_root: String,
}

impl DataKeys {
    fn derive(root: &[u8; 32]) -> Result<Self> {
        Ok(DataKeys {
            object: hkdf32(root, INFO_OBJECT)?,
            backup: hkdf32(root, INFO_BACKUP)?,
            record_mac: hkdf32(root, INFO_RECORD_MAC)?,
            derivation: hkdf32(root, INFO_DERIVATION)?,
        })
    }
}

impl Vault {
    fn load_seal_record(&self) -> Result<Option<SealRecord>> {
        match self.store.get(Table::Meta, SEAL_META_KEY)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| VaultError::internal("the stored seal configuration is corrupt")),
        }
    }

    /// The derived data keys, or `Sealed`.
    pub(crate) fn data_keys(&self) -> Result<Arc<DataKeys>> {
        let guard = self.keys.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or(VaultError::Sealed)
    }

    /// Generate and store a new root key wrapped under `unseal_key`; returns the root key.
    fn store_new_root(
        &self,
        unseal_key: &[u8; 32],
        shares: u8,
        threshold: u8,
        dev: bool,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let root = random_key32()?;
        let wrapped = aead_seal(unseal_key, ROOT_AAD, root.as_ref())?;
        let record = SealRecord {
            format: 1,
            shares,
            threshold,
            dev,
            created: self.now().timestamp(),
            wrapped_root: hex::encode(wrapped),
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|_| VaultError::internal("cannot serialize the seal configuration"))?;
        self.store
            .transact(vec![
                Op::Expect {
                    table: Table::Meta,
                    key: SEAL_META_KEY.into(),
                    value: None,
                },
                Op::Put {
                    table: Table::Meta,
                    key: SEAL_META_KEY.into(),
                    value: bytes,
                },
            ])
            .map_err(|e| match e {
                enclava_store::StoreError::Conflict { .. } => VaultError::AlreadyInitialized,
                other => other.into(),
            })?;
        Ok(root)
    }

    fn unwrap_root(record: &SealRecord, unseal_key: &[u8]) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let Ok(unseal_key) = <&[u8; 32]>::try_from(unseal_key) else {
            return Ok(None);
        };
        let wrapped = hex::decode(&record.wrapped_root)
            .map_err(|_| VaultError::internal("the stored wrapped root key is corrupt"))?;
        let Some(root) = aead_open(unseal_key, ROOT_AAD, &wrapped)? else {
            return Ok(None);
        };
        let Ok(arr) = <[u8; 32]>::try_from(root.as_slice()) else {
            return Err(VaultError::internal(
                "the stored root key has the wrong length",
            ));
        };
        Ok(Some(Zeroizing::new(arr)))
    }

    fn install_root(&self, root: &[u8; 32]) -> Result<()> {
        let keys = Arc::new(DataKeys::derive(root)?);
        self.cache.clear();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(keys);
        Ok(())
    }

    /// Initialize a new vault: generate the unseal key and root key, store the wrapped root key,
    /// and return `shares` unseal shares of which `threshold` recover the unseal key.
    /// `1 <= threshold <= shares <= 255`. Fails with `AlreadyInitialized` if a root key exists.
    /// The vault stays sealed afterwards.
    pub fn init(&self, shares: u8, threshold: u8) -> Result<InitOutput> {
        if threshold == 0 || shares == 0 || threshold > shares {
            return Err(VaultError::bad(format!(
                "invalid seal parameters: expected 1 <= threshold <= shares <= 255, found threshold {threshold} and shares {shares}"
            )));
        }
        if self.load_seal_record()?.is_some() {
            return Err(VaultError::AlreadyInitialized);
        }
        let unseal_key = random_key32()?;
        let parts = shamir::split(
            unseal_key.as_ref(),
            shares,
            threshold,
            &mut rand::rngs::OsRng,
        )
        .map_err(|e| VaultError::bad(e.to_string()))?;
        let _root = self.store_new_root(&unseal_key, shares, threshold, false)?;
        Ok(InitOutput {
            shares: parts.iter().map(|s| s.encode()).collect(),
            threshold,
        })
    }

    /// Give one unseal share. Shares accumulate (duplicates ignored) until the threshold is
    /// reached; then the unseal key is reconstructed and the root key decrypted. A wrong set of
    /// shares fails with `UnsealFailed` and resets progress. Unsealing an unsealed vault returns
    /// `sealed: false` without effect.
    pub fn unseal(&self, share: &str) -> Result<UnsealProgress> {
        let record = self.load_seal_record()?.ok_or(VaultError::NotInitialized)?;
        if !self.is_sealed() {
            return Ok(UnsealProgress {
                sealed: false,
                progress: 0,
                threshold: record.threshold,
            });
        }
        if record.dev {
            return Err(VaultError::bad(
                "this vault was initialized in development mode: unseal it with its unseal key file, not with shares",
            ));
        }
        let share =
            shamir::Share::decode(share).map_err(|e| VaultError::InvalidShare(e.to_string()))?;
        if share.threshold != record.threshold
            || share.index > record.shares
            || share.data.len() != 32
        {
            return Err(VaultError::InvalidShare(format!(
                "expected a share of this vault (threshold {}, index 1-{}, 32 data bytes), found threshold {}, index {}, {} data bytes",
                record.threshold,
                record.shares,
                share.threshold,
                share.index,
                share.data.len()
            )));
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.shares.iter().any(|s| s.index == share.index) {
            pending.shares.push(share);
        }
        let progress = pending.shares.len();
        if progress < record.threshold as usize {
            return Ok(UnsealProgress {
                sealed: true,
                progress: progress as u8,
                threshold: record.threshold,
            });
        }
        let shares = std::mem::take(&mut pending.shares);
        drop(pending);
        let unseal_key =
            shamir::combine(&shares).map_err(|e| VaultError::UnsealFailed(e.to_string()))?;
        match Self::unwrap_root(&record, &unseal_key)? {
            Some(root) => {
                self.install_root(&root)?;
                Ok(UnsealProgress {
                    sealed: false,
                    progress: 0,
                    threshold: record.threshold,
                })
            }
            None => Err(VaultError::UnsealFailed(format!(
                "the {} shares given do not reconstruct this vault's unseal key; progress was reset, start again with correct shares",
                shares.len()
            ))),
        }
    }

    /// Seal: forget the root key, derived keys, pending shares and the key cache.
    pub fn seal(&self) {
        // DataKeys zeroize on drop once the last Arc is released.
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shares
            .clear();
        self.cache.clear();
    }

    /// True while no root key is loaded.
    pub fn is_sealed(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// True when a wrapped root key exists in the store.
    pub fn is_initialized(&self) -> Result<bool> {
        Ok(self.load_seal_record()?.is_some())
    }

    /// Full seal status.
    pub fn seal_status(&self) -> Result<SealStatus> {
        let record = self.load_seal_record()?;
        let progress = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shares
            .len() as u8;
        Ok(SealStatus {
            initialized: record.is_some(),
            sealed: self.is_sealed(),
            progress,
            threshold: record.as_ref().map_or(0, |r| r.threshold),
            shares: record.as_ref().map_or(0, |r| r.shares),
            dev_mode: record.as_ref().is_some_and(|r| r.dev),
        })
    }

    /// Development mode: initialize with a single unseal key written to `unseal_key_path`
    /// (created with mode 0600; must not exist) and unseal immediately.
    pub fn init_dev(&self, unseal_key_path: &Path) -> Result<()> {
        if self.load_seal_record()?.is_some() {
            return Err(VaultError::AlreadyInitialized);
        }
        let unseal_key = random_key32()?;
        let text = Zeroizing::new(format!("{}\n", hex::encode(unseal_key.as_ref())));
        write_private_file(unseal_key_path, text.as_bytes())?;
        let root = self.store_new_root(&unseal_key, 1, 1, true)?;
        self.install_root(&root)
    }

    /// Development mode: unseal with the key in `unseal_key_path`.
    pub fn unseal_dev(&self, unseal_key_path: &Path) -> Result<()> {
        let record = self.load_seal_record()?.ok_or(VaultError::NotInitialized)?;
        let text = Zeroizing::new(std::fs::read_to_string(unseal_key_path).map_err(|e| {
            VaultError::UnsealFailed(format!(
                "cannot read the development unseal key file {}: {}",
                unseal_key_path.display(),
                e.kind()
            ))
        })?);
        let key = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
            VaultError::UnsealFailed(format!(
                "the development unseal key file {} does not hold 64 hex characters",
                unseal_key_path.display()
            ))
        })?);
        match Self::unwrap_root(&record, &key)? {
            Some(root) => self.install_root(&root),
            None => Err(VaultError::UnsealFailed(format!(
                "the key in {} does not unseal this vault",
                unseal_key_path.display()
            ))),
        }
    }

    /// Development mode convenience: `init_dev` if the vault is not initialized, else
    /// `unseal_dev`.
    pub fn init_or_unseal_dev(&self, unseal_key_path: &Path) -> Result<()> {
        if self.is_initialized()? {
            self.unseal_dev(unseal_key_path)
        } else {
            self.init_dev(unseal_key_path)
        }
    }
}

/// Create `path` (must not exist) with mode 0600 and write `data`.
fn write_private_file(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let err = |e: std::io::Error| {
        VaultError::bad(format!(
            "cannot create the development unseal key file {}: {}",
            path.display(),
            e
        ))
    };
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(())
}

impl Vault {
    /// Seal an auxiliary secret of the server (token signing key, audit checkpoint key) under the
    /// root key hierarchy, so that it never sits in the database in clear. `purpose` names what it
    /// is and is bound as associated data: a blob sealed for one purpose does not open as another.
    pub fn seal_aux(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let keys = self.data_keys()?;
        aead_seal(&keys.object, &aux_aad(purpose), plaintext)
    }

    /// Open what [`Vault::seal_aux`] sealed for the same `purpose` (requires the vault unsealed).
    pub fn open_aux(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let keys = self.data_keys()?;
        aead_open(&keys.object, &aux_aad(purpose), sealed)?.ok_or_else(|| {
            VaultError::internal(format!(
                "the stored {purpose} does not open under this vault's root key (corrupt or from another vault)"
            ))
        })
    }
}

impl Vault {
    /// A 32-byte key derived from the root key for one `purpose` (HKDF-SHA256; distinct purposes
    /// give independent keys). For the server's own MACs and seals (challenge nonces, row
    /// integrity, ...): every process unsealed with the same root derives the same key, and none
    /// exists while sealed.
    pub fn derived_key(&self, purpose: &str) -> Result<Zeroizing<[u8; 32]>> {
        let keys = self.data_keys()?;
        let mut info = DERIVED_PREFIX.to_vec();
        info.extend_from_slice(purpose.as_bytes());
        hkdf32(keys.derivation.as_ref(), &info)
    }
}

fn aux_aad(purpose: &str) -> Vec<u8> {
    let mut aad = b"enclava/v1/aux/".to_vec();
    aad.extend_from_slice(purpose.as_bytes());
    aad
}
