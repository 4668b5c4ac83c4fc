//! The data model shared by the scorer and the generator.

use std::fmt;

/// An ISO 3166-1 alpha-2 country code (two upper-case ASCII letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.0;
        write!(f, "{}{}", char::from(a), char::from(b))
    }
}

/// One card transaction, as in one CSV row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transaction {
    pub tx_id: u64,
    pub card_id: u64,
    /// Unix seconds, UTC.
    pub timestamp: i64,
    pub amount_cents: u64,
    pub merchant_id: u64,
    /// Merchant category code (ISO 18245).
    pub mcc: u16,
    /// Country where the transaction took place.
    pub country: Country,
    /// The card's issuing (home) country.
    pub home_country: Country,
}

/// Standard-time UTC offsets (seconds) of the countries the generator uses; others count as UTC.
/// Used only for the night-time rule, so one offset per country is precise enough.
pub const COUNTRY_UTC_OFFSETS: &[(&[u8; 2], i64)] = &[
    (b"US", -5 * 3600),
    (b"CA", -5 * 3600),
    (b"MX", -6 * 3600),
    (b"BR", -3 * 3600),
    (b"GB", 0),
    (b"IE", 0),
    (b"FR", 3600),
    (b"DE", 3600),
    (b"NL", 3600),
    (b"ES", 3600),
    (b"IT", 3600),
    (b"NG", 3600),
    (b"ZA", 2 * 3600),
    (b"RU", 3 * 3600),
    (b"IN", 5 * 3600 + 1800),
    (b"CN", 8 * 3600),
    (b"SG", 8 * 3600),
    (b"JP", 9 * 3600),
    (b"AU", 10 * 3600),
];

/// The UTC offset (seconds) used for `country`; 0 when unknown.
pub fn utc_offset(country: Country) -> i64 {
    COUNTRY_UTC_OFFSETS
        .iter()
        .find(|(c, _)| **c == country.0)
        .map_or(0, |&(_, off)| off)
}

/// Local hour of day (0..24) of a UTC timestamp in `country`.
pub fn local_hour(timestamp: i64, country: Country) -> u32 {
    // timestamp is bounded by the parser (<= 2^40), so the sum cannot overflow.
    let secs = timestamp
        .saturating_add(utc_offset(country))
        .rem_euclid(86_400);
    (secs / 3600) as u32
}

/// A map from `u64` ids to values: open addressing with linear probing over a small slot array
/// (`u32` entry indices) and the entries in insertion order. Faster than a general-purpose hash
/// map for this workload on targets without wide SIMD groups (wasm32), and just as fast natively.
#[derive(Debug, Clone)]
pub struct IdMap<V> {
    /// `0` = empty, otherwise `1 + index` into `entries`. Length is a power of two.
    slots: Vec<u32>,
    entries: Vec<(u64, V)>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            slots: vec![0; 16],
            entries: Vec::new(),
        }
    }
}

impl<V> IdMap<V> {
    fn slot_of(&self, key: u64) -> usize {
        let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The top bits of a Fibonacci hash are the well-mixed ones.
        let bits = self.slots.len().trailing_zeros();
        if bits == 0 {
            0
        } else {
            (h >> (64 - bits)) as usize
        }
    }

    /// Index into `entries` of `key`, or the slot position where it would go.
    fn find(&self, key: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(key);
        loop {
            match self.slots.get(i).copied() {
                Some(0) | None => return Err(i),
                Some(s) => {
                    let idx = s as usize - 1;
                    if self.entries.get(idx).is_some_and(|(k, _)| *k == key) {
                        return Ok(idx);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        self.slots = vec![0; cap];
        for idx in 0..self.entries.len() {
            let key = self.entries.get(idx).map_or(0, |(k, _)| *k);
            if let Err(slot) = self.find(key)
                && let Some(s) = self.slots.get_mut(slot)
            {
                *s = idx as u32 + 1;
            }
        }
    }

    /// The value of `key`, inserting `make()` first when absent.
    pub fn get_or_insert_with(&mut self, key: u64, make: impl FnOnce() -> V) -> &mut V {
        let idx = match self.find(key) {
            Ok(idx) => idx,
            Err(mut slot) => {
                // Keep the load factor at most 1/2 so probes stay short.
                if (self.entries.len() + 1) * 2 > self.slots.len() {
                    self.grow();
                    slot = self.find(key).err().unwrap_or(0);
                }
                let idx = self.entries.len();
                self.entries.push((key, make()));
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = idx as u32 + 1;
                }
                idx
            }
        };
        // `idx` is always a valid entry index here.
        &mut self.entries[idx].1
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.find(key)
            .ok()
            .and_then(|idx| self.entries.get(idx))
            .map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_map_behaves_like_a_map() {
        use std::collections::BTreeMap;
        let mut m: IdMap<u64> = IdMap::default();
        let mut reference: BTreeMap<u64, u64> = BTreeMap::new();
        let mut x: u64 = 1;
        for i in 0..50_000u64 {
            // Mix sequential, clustered and random-looking keys, with repeats.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = match i % 3 {
                0 => i / 2,
                1 => x % 1000,
                _ => x,
            };
            *m.get_or_insert_with(key, || 0) += 1;
            *reference.entry(key).or_insert(0) += 1;
        }
        assert_eq!(m.len(), reference.len());
        for (k, v) in &reference {
            assert_eq!(m.get(*k), Some(v));
        }
        assert_eq!(m.get(u64::MAX - 1), None);
        let mut keys: Vec<u64> = m.iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys, reference.keys().copied().collect::<Vec<_>>());
        assert!(IdMap::<u8>::default().is_empty());
    }

    use super::*;

    #[test]
    fn local_hour_uses_country_offset() {
        // 2026-01-01 00:00:00 UTC
        let t = 1_767_225_600;
        assert_eq!(local_hour(t, Country(*b"GB")), 0);
        assert_eq!(local_hour(t, Country(*b"JP")), 9);
        assert_eq!(local_hour(t, Country(*b"US")), 19);
        assert_eq!(local_hour(t, Country(*b"IN")), 5);
        assert_eq!(local_hour(t, Country(*b"ZZ")), 0);
        assert_eq!(local_hour(0, Country(*b"US")), 19);
    }

    #[test]
    fn country_displays_as_letters() {
        assert_eq!(Country(*b"DE").to_string(), "DE");
    }
}
