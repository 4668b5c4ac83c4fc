//! Enclava vault logic: keys, secrets, crypto operations and sealing, over the
//! [`enclava_store::Store`] trait. Synchronous and free of HTTP; the server calls it from
//! `spawn_blocking`.
//!
//! Layout:
//! - [`seal`]: Shamir secret sharing, the key hierarchy (unseal key -> root key -> data keys),
//!   init / unseal / seal;
//! - [`keys`]: keys, versions, rotation, soft delete, backup / restore and crypto operations;
//! - [`secrets`]: secrets with the same lifecycle;
//! - [`model`]: the Azure Key Vault JSON shapes;
//! - [`error`]: [`VaultError`] with HTTP status and Azure error codes.
//!
//! Every key and secret value is stored encrypted with AES-256-GCM under a data key derived from
//! the root key, with AAD naming the object kind, name and version. A sealed vault answers every
//! data operation with [`VaultError::Sealed`].

#![forbid(unsafe_code)]

pub mod b64;
mod backup;
mod cache;
pub mod certificates;
pub mod certmodel;
pub mod error;
pub mod keys;
mod lifecycle;
pub mod model;
mod object;
pub mod seal;
pub mod secrets;
mod util;

use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use enclava_store::Store;

pub use certificates::{CertificateAction, CertificateLifetimeEvent, Certificates, IssuingCa};
pub use error::{Result, VaultError};
pub use keys::{Keys, ReleasableKey, RotationAction, RotationEvent};
pub use model::*;
pub use object::{ObjectWire, VaultObject};
pub use seal::{InitOutput, SealStatus, UnsealProgress};
pub use secrets::Secrets;

/// The injected clock: returns "now". Tests pass a controllable closure.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Vault-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultOptions {
    /// When on, deleted keys and secrets cannot be purged before their scheduled purge date
    /// (recoveryLevel `Recoverable`); when off, recoveryLevel is `Recoverable+Purgeable`.
    pub purge_protection: bool,
    /// Days a deleted object stays recoverable (7..=90, Azure's default 90).
    pub recoverable_days: u32,
    /// Maximum number of unsealed key versions kept parsed in memory.
    pub cache_capacity: usize,
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            purge_protection: false,
            recoverable_days: 90,
            cache_capacity: 4096,
        }
    }
}

/// The vault. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Vault {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) base_url: String,
    pub(crate) clock: Clock,
    pub(crate) options: VaultOptions,
    pub(crate) keys: RwLock<Option<Arc<seal::DataKeys>>>,
    pub(crate) pending: Mutex<seal::PendingShares>,
    pub(crate) cache: cache::KeyCache,
    /// Whether the key cache may be trusted (other processes on the same store; see
    /// [`enclava_store::coherence`]).
    pub(crate) coherence: Arc<enclava_store::Coherence>,
}

impl Vault {
    /// A vault over `store`, answering with ids under `base_url` (e.g. `https://host:8443`; a
    /// trailing slash is removed), using `clock` for all timestamps. Starts sealed.
    pub fn new(store: Arc<dyn Store>, base_url: String, clock: Clock) -> Self {
        Self::with_options(store, base_url, clock, VaultOptions::default())
    }

    /// Like [`Vault::new`] with explicit [`VaultOptions`].
    pub fn with_options(
        store: Arc<dyn Store>,
        base_url: String,
        clock: Clock,
        options: VaultOptions,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        let mut options = options;
        options.recoverable_days = options.recoverable_days.clamp(7, 90);
        Vault {
            coherence: store.coherence(),
            store,
            base_url,
            clock,
            cache: cache::KeyCache::new(options.cache_capacity),
            options,
            keys: RwLock::new(None),
            pending: Mutex::new(seal::PendingShares::default()),
        }
    }

    /// Keep the key cache coherent with changes other processes commit to the same store: each
    /// changed key is dropped from the cache as its change is reported (see
    /// [`enclava_store::coherence`]; a no-op for a single-process store). Call once, after
    /// putting the vault in its `Arc`.
    pub fn follow_store_changes(self: &Arc<Self>) {
        let vault = Arc::downgrade(self);
        self.coherence.subscribe(move |change| {
            if let Some(v) = vault.upgrade() {
                v.invalidate(change);
            }
        });
    }

    /// Drop what `change` may have made stale from the key cache. Key rows are keyed by the
    /// lower-cased key name (`Keys`, `DeletedKeys`) or `name/version` (`KeyVersions`).
    pub fn invalidate(&self, change: &enclava_store::Change) {
        use enclava_store::{Change, Table};
        match change {
            Change::Row {
                table: Table::Keys | Table::KeyVersions | Table::DeletedKeys,
                key,
            } => {
                let name = key.split('/').next().unwrap_or(key);
                self.cache.invalidate(name);
            }
            Change::Table(Table::Keys | Table::KeyVersions | Table::DeletedKeys)
            | Change::Everything => self.cache.clear(),
            Change::Row { .. } | Change::Table(_) => {}
        }
    }

    /// The base URL ids are built from.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The vault's options.
    pub fn options(&self) -> VaultOptions {
        self.options
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The Azure `recoveryLevel` string for this vault.
    pub fn recovery_level(&self) -> &'static str {
        if self.options.purge_protection {
            "Recoverable"
        } else {
            "Recoverable+Purgeable"
        }
    }
}

// The server shares one vault across threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vault>();
};
