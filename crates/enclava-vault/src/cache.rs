//! A bounded in-memory cache of unsealed, parsed key versions, so a crypto operation does not
//! re-read and re-decrypt the key from the store every time.
//!
//! Entries are grouped by lower-cased key name: each name remembers its latest version and its
//! parsed versions. Lookups borrow `&str` (no allocation on the hot path). Any change to a key
//! invalidates all of its entries; sealing clears everything. An epoch counter prevents a reader
//! that loaded a key before an invalidation from inserting the stale copy afterwards. Parsed
//! material zeroizes / frees itself when the last reference drops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::keys::CachedKey;

#[derive(Default)]
struct NameEntry {
    latest: Option<String>,
    versions: HashMap<String, Arc<CachedKey>>,
}

#[derive(Default)]
struct Maps {
    names: HashMap<String, NameEntry>,
    count: usize,
}

pub(crate) struct KeyCache {
    capacity: usize,
    epoch: AtomicU64,
    maps: RwLock<Maps>,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        KeyCache {
            capacity,
            epoch: AtomicU64::new(0),
            maps: RwLock::new(Maps::default()),
        }
    }

    /// The current epoch; pass it to [`KeyCache::insert`] after loading from the store.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The cached entry for `version`, or for the latest version when `version` is `None`.
    pub(crate) fn get(&self, name_key: &str, version: Option<&str>) -> Option<Arc<CachedKey>> {
        let maps = self.maps.read().unwrap_or_else(|p| p.into_inner());
        let entry = maps.names.get(name_key)?;
        let v = match version {
            Some(v) => v,
            None => entry.latest.as_deref()?,
        };
        entry.versions.get(v).cloned()
    }

    /// Insert unless an invalidation happened since `epoch`. `latest` records this version as
    /// the name's latest.
    pub(crate) fn insert(
        &self,
        epoch: u64,
        name_key: &str,
        version: &str,
        latest: bool,
        entry: Arc<CachedKey>,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if maps.count >= self.capacity {
            // Evict whole names until there is room (arbitrary order; simple and bounded).
            let victims: Vec<String> = maps
                .names
                .keys()
                .filter(|n| n.as_str() != name_key)
                .cloned()
                .collect();
            for v in victims {
                if maps.count < self.capacity {
                    break;
                }
                if let Some(e) = maps.names.remove(&v) {
                    maps.count -= e.versions.len();
                }
            }
            if maps.count >= self.capacity {
                // Only this name is left: drop its other versions.
                if let Some(e) = maps.names.remove(name_key) {
                    maps.count -= e.versions.len();
                }
            }
        }
        let e = maps.names.entry(name_key.to_string()).or_default();
        if latest {
            e.latest = Some(version.to_string());
        }
        let added = e.versions.insert(version.to_string(), entry).is_none();
        if added {
            maps.count += 1;
        }
    }

    /// Drop every entry of one key.
    pub(crate) fn invalidate(&self, name_key: &str) {
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = maps.names.remove(name_key) {
            maps.count -= e.versions.len();
        }
    }

    /// Drop everything (seal).
    pub(crate) fn clear(&self) {
        let mut maps = self.maps.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        maps.names.clear();
        maps.count = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.maps.read().unwrap_or_else(|p| p.into_inner()).count
    }
}
