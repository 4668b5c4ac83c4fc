//! Sealing: the key hierarchy and the init / unseal / seal lifecycle.
//!
//! - A random 32-byte **unseal key** is split with Shamir's scheme into N shares, threshold T
//!   ([`shamir`]); it is never stored (except in development mode, in a 0600 file).
//! - A random 32-byte **root key** is stored only encrypted under the unseal key (AES-256-GCM,
//!   AAD naming its purpose and format version) in `Table::Meta`.
//! - **Data keys** are derived from the root key with HKDF-SHA256, one per purpose: object
//!   sealing (keys and secrets at rest) and backup blobs.
//!
//! # Seal record format versions (`Table::Meta` row `seal`)
//! - **1**: parameters and the wrapped root key only. A share is checked against nothing but its
//!   (unkeyed) checksum, so a forged share is only noticed when the threshold is reached.
//! - **2**: also `share_commitments`: a per-vault random salt and one [`shamir::commitment`] per
//!   issued share (SHA-256, see there). `unseal` checks every submitted share against the
//!   commitment of its index *before* it joins the pending set: a forged, altered or foreign share
//!   is refused (`InvalidShare`, naming the index) and the progress made so far is kept; a
//!   second, different share for an index already given cannot exist. Written by `init` since
//!   this version. The share text format (`ensh1`) is unchanged.
//!
//! A format-1 vault still unseals with its shares. Without commitments a bad share cannot be
//! told from a good one, so no share is ever dropped for another: when the shares given do not
//! reconstruct the key, the vault tries the other combinations that include the newest share
//! (bounded), keeps what it has and asks for more; it starts over only when every index was given
//! and still nothing fits. After the first successful unseal the vault recomputes all shares
//! from the threshold it was given and upgrades its record to format 2 (best effort: a failed
//! upgrade is retried at the next unseal).
//!
//! The pending set lives in memory, holds at most one share per index (so at most `shares`
//! entries), and is cleared by `seal` and by a successful unseal.

pub mod shamir;

use std::path::Path;
use std::sync::Arc;

use enclava_store::{Op, Table};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
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
    /// True when the share given had already been given in this unseal attempt (it did not
    /// count again).
    #[serde(default)]
    pub duplicate: bool,
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

/// Seal record format without share commitments (vaults initialized before them, dev vaults).
const SEAL_FORMAT_PLAIN: u32 = 1;
/// Seal record format with share commitments.
const SEAL_FORMAT_COMMITTED: u32 = 2;
/// Most share combinations tried per submitted share on a format-1 vault (see the module doc).
const MAX_LEGACY_COMBINATIONS: usize = 256;

/// A format-1 search result: the root key and the shares that opened it.
type LegacyMatch = (Zeroizing<[u8; 32]>, Vec<shamir::Share>);

#[derive(Serialize, Deserialize)]
struct SealRecord {
    format: u32,
    shares: u8,
    threshold: u8,
    dev: bool,
    created: i64,
    /// hex of nonce || AES-256-GCM(unseal key, root key) || tag
    wrapped_root: String,
    /// Format 2: commitments to the issued shares. Absent in format 1 (older servers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    share_commitments: Option<ShareCommitments>,
}

/// The commitments of format 2: `values[i - 1]` commits to the share with index `i`.
#[derive(Serialize, Deserialize)]
struct ShareCommitments {
    /// hex of the 32-byte per-vault salt
    salt: String,
    /// hex of each 32-byte commitment, in index order
    values: Vec<String>,
}

impl ShareCommitments {
    fn compute(shares: &[shamir::Share]) -> Result<Self> {
        let salt = random_key32()?;
        Ok(ShareCommitments {
            salt: hex::encode(salt.as_ref()),
            values: shares
                .iter()
                .map(|s| hex::encode(shamir::commitment(salt.as_ref(), s)))
                .collect(),
        })
    }

    /// Check `share` against the commitment of its index.
    fn verify(&self, share: &shamir::Share) -> Result<bool> {
        let corrupt = || VaultError::internal("the stored share commitments are corrupt");
        let salt = hex::decode(&self.salt).map_err(|_| corrupt())?;
        let Some(expected) = usize::from(share.index)
            .checked_sub(1)
            .and_then(|i| self.values.get(i))
        else {
            return Ok(false);
        };
        let expected = hex::decode(expected).map_err(|_| corrupt())?;
        Ok(shamir::matches_commitment(&salt, share, &expected))
    }
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
        Ok(self.load_seal_record_raw()?.map(|(r, _)| r))
    }

    /// The seal record and its stored bytes (for a compare-and-swap update).
    fn load_seal_record_raw(&self) -> Result<Option<(SealRecord, Vec<u8>)>> {
        match self.store.get(Table::Meta, SEAL_META_KEY)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(|r| Some((r, bytes)))
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
        share_commitments: Option<ShareCommitments>,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let root = random_key32()?;
        let wrapped = aead_seal(unseal_key, ROOT_AAD, root.as_ref())?;
        let record = SealRecord {
            format: if share_commitments.is_some() {
                SEAL_FORMAT_COMMITTED
            } else {
                SEAL_FORMAT_PLAIN
            },
            shares,
            threshold,
            dev,
            created: self.now().timestamp(),
            wrapped_root: hex::encode(wrapped),
            share_commitments,
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
        let commitments = ShareCommitments::compute(&parts)?;
        let _root =
            self.store_new_root(&unseal_key, shares, threshold, false, Some(commitments))?;
        Ok(InitOutput {
            shares: parts.iter().map(|s| s.encode()).collect(),
            threshold,
        })
    }

    /// Give one unseal share. Shares accumulate until the threshold is reached; then the unseal
    /// key is reconstructed and the root key decrypted. Unsealing an unsealed vault returns
    /// `sealed: false` without effect.
    ///
    /// A share that does not parse, does not fit this vault, or (format 2) does not match the
    /// commitment of its index fails with `InvalidShare` and changes nothing: the progress made
    /// so far is kept. The same share given again answers `duplicate: true` without counting
    /// twice; a different share for an index already given fails with `Conflict` and never
    /// displaces the first. Format-1 (pre-commitment) vaults: see the module doc.
    pub fn unseal(&self, share: &str) -> Result<UnsealProgress> {
        let (record, raw) = self
            .load_seal_record_raw()?
            .ok_or(VaultError::NotInitialized)?;
        if !self.is_sealed() {
            return Ok(UnsealProgress {
                sealed: false,
                progress: 0,
                threshold: record.threshold,
                duplicate: false,
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
        let given = pending.shares.len();
        if let Some(c) = &record.share_commitments
            && !c.verify(&share)?
        {
            return Err(VaultError::InvalidShare(format!(
                "share {} does not match the share issued at init for this vault (forged, altered or from another vault); it was not used, the unseal progress ({given} of {}) is kept",
                share.index, record.threshold
            )));
        }
        if let Some(earlier) = pending.shares.iter().find(|s| s.index == share.index) {
            if bool::from(earlier.data.as_slice().ct_eq(share.data.as_slice())) {
                return Ok(UnsealProgress {
                    sealed: true,
                    progress: given as u8,
                    threshold: record.threshold,
                    duplicate: true,
                });
            }
            return Err(VaultError::Conflict(format!(
                "a different share with index {} was already given in this unseal attempt; the first one is kept and this one was not used (progress {given} of {})",
                share.index, record.threshold
            )));
        }
        // One share per index, each index at most `record.shares`: the set is bounded.
        pending.shares.push(share);
        let progress = pending.shares.len();
        if progress < usize::from(record.threshold) {
            return Ok(UnsealProgress {
                sealed: true,
                progress: progress as u8,
                threshold: record.threshold,
                duplicate: false,
            });
        }
        let root = if record.share_commitments.is_some() {
            // Every share was verified, so these reconstruct the key unless the record itself is
            // inconsistent.
            let unseal_key = shamir::combine(&pending.shares)
                .map_err(|e| VaultError::UnsealFailed(e.to_string()))?;
            match Self::unwrap_root(&record, &unseal_key)? {
                Some(root) => root,
                None => {
                    pending.shares.clear();
                    return Err(VaultError::internal(
                        "shares matching their init commitments do not open the root key: the stored seal configuration is inconsistent",
                    ));
                }
            }
        } else {
            match Self::legacy_search(&record, &pending.shares)? {
                Some((root, good)) => {
                    // Best effort: a failed upgrade leaves a format-1 record, retried next time.
                    let _ = self.upgrade_to_commitments(&record, &raw, &good);
                    root
                }
                None if progress >= usize::from(record.shares) => {
                    pending.shares.clear();
                    return Err(VaultError::UnsealFailed(format!(
                        "the {progress} shares given (every index of this vault) do not reconstruct its unseal key in any combination tried; progress was reset, start again with the custodians' shares"
                    )));
                }
                None => {
                    return Err(VaultError::UnsealFailed(format!(
                        "the {progress} shares given so far do not reconstruct this vault's unseal key, so at least one of them is wrong; this vault was initialized before share commitments, so the server cannot tell which: all are kept, give another share (progress {progress}, threshold {})",
                        record.threshold
                    )));
                }
            }
        };
        pending.shares.clear();
        drop(pending);
        self.install_root(&root)?;
        Ok(UnsealProgress {
            sealed: false,
            progress: 0,
            threshold: record.threshold,
            duplicate: false,
        })
    }

    /// Format 1: find `threshold` of the pending shares, including the newest (the last), that
    /// open the root key; at most [`MAX_LEGACY_COMBINATIONS`] tries. Returns the root key and
    /// the shares that opened it.
    fn legacy_search(
        record: &SealRecord,
        pending: &[shamir::Share],
    ) -> Result<Option<LegacyMatch>> {
        let Some((newest, earlier)) = pending.split_last() else {
            return Ok(None);
        };
        let k = usize::from(record.threshold).saturating_sub(1);
        if earlier.len() < k {
            return Ok(None);
        }
        // Lexicographic (k of earlier.len()) combinations.
        let mut idx: Vec<usize> = (0..k).collect();
        for _ in 0..MAX_LEGACY_COMBINATIONS {
            let mut chosen: Vec<shamir::Share> = idx
                .iter()
                .filter_map(|&i| earlier.get(i).cloned())
                .collect();
            chosen.push(newest.clone());
            if let Ok(key) = shamir::combine(&chosen)
                && let Some(root) = Self::unwrap_root(record, &key)?
            {
                return Ok(Some((root, chosen)));
            }
            // Next combination: the rightmost position that can still move right.
            let n = earlier.len();
            let Some(pos) = (0..k)
                .rev()
                .find(|&p| idx.get(p).is_some_and(|&v| v < n - k + p))
            else {
                return Ok(None);
            };
            if let Some(v) = idx.get_mut(pos) {
                *v += 1;
            }
            for p in pos + 1..k {
                let prev = idx.get(p - 1).copied().unwrap_or(0);
                if let Some(v) = idx.get_mut(p) {
                    *v = prev + 1;
                }
            }
        }
        Ok(None)
    }

    /// Format 1 -> 2: recompute every issued share from `good` (threshold shares that opened the
    /// root key) and store their commitments, if the record is still the one read.
    fn upgrade_to_commitments(
        &self,
        record: &SealRecord,
        raw: &[u8],
        good: &[shamir::Share],
    ) -> Result<()> {
        let mut all = Vec::with_capacity(usize::from(record.shares));
        for x in 1..=record.shares {
            let data =
                shamir::interpolate_at(good, x).map_err(|e| VaultError::internal(e.to_string()))?;
            all.push(shamir::Share {
                index: x,
                threshold: record.threshold,
                data,
            });
        }
        let upgraded = SealRecord {
            format: SEAL_FORMAT_COMMITTED,
            shares: record.shares,
            threshold: record.threshold,
            dev: record.dev,
            created: record.created,
            wrapped_root: record.wrapped_root.clone(),
            share_commitments: Some(ShareCommitments::compute(&all)?),
        };
        let bytes = serde_json::to_vec(&upgraded)
            .map_err(|_| VaultError::internal("cannot serialize the seal configuration"))?;
        self.store.transact(vec![
            Op::Expect {
                table: Table::Meta,
                key: SEAL_META_KEY.into(),
                value: Some(raw.to_vec()),
            },
            Op::Put {
                table: Table::Meta,
                key: SEAL_META_KEY.into(),
                value: bytes,
            },
        ])?;
        Ok(())
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
        let root = self.store_new_root(&unseal_key, 1, 1, true, None)?;
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
