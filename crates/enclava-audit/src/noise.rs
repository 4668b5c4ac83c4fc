//! Bounded audit noise: repetitive anonymous rejections are counted, not logged one by one.
//!
//! Anonymous requests that are turned away before anyone is authenticated (404 for unknown
//! routes, 405, 401 without a token, 413, 429, ...) cost an attacker nothing and, logged
//! individually, grew the chain without bound. The server passes such answers through
//! [`NoiseFilter::observe`] keyed by (client address, route template, status): the first
//! [`NoiseConfig::individual`] of a key in a window are logged individually, the rest only
//! counted, and at the end of the window ([`NoiseFilter::drain`]) one summary entry per key
//! records how many were suppressed. The map holds at most [`NoiseConfig::max_keys`] keys; keys
//! beyond that share one overflow bucket (client `*`), so memory stays bounded under spoofed-looking
//! address churn too.
//!
//! Security-relevant events never come here (the server decides): denials of authenticated
//! callers, failed logins, attestation denials and every request that changed something are
//! always logged individually.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{NewEntry, Outcome};

/// Tuning of the [`NoiseFilter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseConfig {
    /// Length of a counting window. Default 60 s.
    pub window: Duration,
    /// Entries logged individually per key and window before counting starts. Default 10.
    pub individual: u64,
    /// Most distinct keys tracked per window; more share the overflow bucket. Default 4096.
    pub max_keys: usize,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            window: Duration::from_secs(60),
            individual: 10,
            max_keys: 4096,
        }
    }
}

/// What is aggregated together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NoiseKey {
    pub client: String,
    pub route: String,
    pub status: u16,
}

/// Whether to log this answer individually.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Record,
    Suppress,
}

/// Suppressed answers of one key in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Client `*` and route `*` for the overflow bucket (status 0: mixed).
    pub key: NoiseKey,
    pub suppressed: u64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Summary {
    /// The audit entry recording this summary.
    pub fn to_entry(&self, request_id: String) -> NewEntry {
        let result = match self.key.status {
            401 | 403 => Outcome::Denied,
            _ => Outcome::Error,
        };
        NewEntry {
            time: self.to,
            principal: "anonymous".into(),
            action: "audit/suppressed".into(),
            object: String::new(),
            version: None,
            result,
            status: self.key.status,
            request_id,
            client_addr: self.key.client.clone(),
            detail: Some(format!(
                "{} more anonymous answers with status {} on route {} from {} between {} and {} were counted, not logged individually",
                self.suppressed,
                self.key.status,
                self.key.route,
                self.key.client,
                self.from.to_rfc3339_opts(SecondsFormat::Millis, true),
                self.to.to_rfc3339_opts(SecondsFormat::Millis, true),
            )),
        }
    }
}

#[derive(Default)]
struct Bucket {
    seen: u64,
    suppressed: u64,
}

struct Inner {
    started: Instant,
    started_at: DateTime<Utc>,
    buckets: HashMap<NoiseKey, Bucket>,
    overflow: Bucket,
}

/// The aggregator; share it (`Arc`).
pub struct NoiseFilter {
    config: NoiseConfig,
    inner: Mutex<Inner>,
}

impl NoiseFilter {
    pub fn new(config: NoiseConfig, now: Instant, now_at: DateTime<Utc>) -> Self {
        NoiseFilter {
            config,
            inner: Mutex::new(Inner {
                started: now,
                started_at: now_at,
                buckets: HashMap::new(),
                overflow: Bucket::default(),
            }),
        }
    }

    /// Count one anonymous rejection; `Record` for the first few of its key in the window.
    pub fn observe(&self, key: NoiseKey) -> Verdict {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let individual = self.config.individual;
        let g = &mut *g;
        let b = if g.buckets.contains_key(&key) || g.buckets.len() < self.config.max_keys {
            g.buckets.entry(key).or_default()
        } else {
            &mut g.overflow
        };
        b.seen += 1;
        if b.seen <= individual {
            Verdict::Record
        } else {
            b.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// If the window is over (or `force`, at shutdown), close it: the summaries of every key that
    /// had suppressed answers, and a fresh window.
    pub fn drain(&self, now: Instant, now_at: DateTime<Utc>, force: bool) -> Vec<Summary> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !force && now.saturating_duration_since(g.started) < self.config.window {
            return Vec::new();
        }
        let from = g.started_at;
        let mut out: Vec<Summary> = g
            .buckets
            .drain()
            .filter(|(_, b)| b.suppressed > 0)
            .map(|(key, b)| Summary {
                key,
                suppressed: b.suppressed,
                from,
                to: now_at,
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.key.client, &a.key.route, a.key.status).cmp(&(
                &b.key.client,
                &b.key.route,
                b.key.status,
            ))
        });
        if g.overflow.suppressed > 0 {
            out.push(Summary {
                key: NoiseKey {
                    client: "*".into(),
                    route: "*".into(),
                    status: 0,
                },
                suppressed: g.overflow.suppressed,
                from,
                to: now_at,
            });
        }
        g.overflow = Bucket::default();
        g.started = now;
        g.started_at = now_at;
        out
    }

    /// Keys tracked in the current window (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .buckets
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> NoiseKey {
        NoiseKey {
            client: c.into(),
            route: "unmatched".into(),
            status: 404,
        }
    }

    #[test]
    fn first_k_recorded_then_counted_per_window_with_bounded_keys() {
        let t = Instant::now();
        let f = NoiseFilter::new(
            NoiseConfig {
                window: Duration::from_secs(60),
                individual: 3,
                max_keys: 2,
            },
            t,
            Utc::now(),
        );
        let verdicts: Vec<Verdict> = (0..10).map(|_| f.observe(key("a"))).collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Record).count(),
            3
        );
        assert_eq!(f.observe(key("b")), Verdict::Record);
        // A third key overflows into the shared bucket (first K still recorded).
        for _ in 0..3 {
            assert_eq!(f.observe(key("c")), Verdict::Record);
        }
        assert_eq!(f.observe(key("d")), Verdict::Suppress);
        assert_eq!(f.tracked(), 2, "the map never grows beyond max_keys");
        assert!(
            f.drain(t + Duration::from_secs(10), Utc::now(), false)
                .is_empty()
        );
        let s = f.drain(t + Duration::from_secs(61), Utc::now(), false);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].key.client.as_str(), s[0].suppressed), ("a", 7));
        assert_eq!((s[1].key.client.as_str(), s[1].suppressed), ("*", 1));
        assert!(s[0].to_entry("r".into()).detail.unwrap().contains("7 more"));
        // A new window records individually again.
        assert_eq!(f.observe(key("a")), Verdict::Record);
        assert_eq!(f.tracked(), 1);
    }
}
