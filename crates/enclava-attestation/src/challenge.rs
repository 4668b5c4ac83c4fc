//! Single-use challenge nonces for the native attestation route.
//!
//! [`ChallengeStore::issue`] returns 32 random bytes as base64url (43 characters) with an expiry
//! (default [`DEFAULT_TTL_SECONDS`]); [`ChallengeStore::consume`] accepts a nonce exactly once
//! before it expires. Outcomes: a nonce used a second time is [`AttestError::NonceReplayed`], one
//! used after its expiry [`AttestError::NonceExpired`], one never issued here (or swept)
//! [`AttestError::NonceUnknown`].
//!
//! Memory is bounded: at most `capacity` entries (live or remembered), and entries are swept one
//! TTL after their expiry (they are remembered that long so that a late or replayed use is reported
//! precisely rather than as unknown). When full, [`ChallengeStore::issue`] fails with
//! [`AttestError::ChallengeCapacity`] instead of evicting someone else's live challenge. Time is
//! injected (`now` on every call); the store is in memory and per process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};

use crate::error::AttestError;

/// Default challenge lifetime: 5 minutes.
pub const DEFAULT_TTL_SECONDS: i64 = 300;
/// Default bound on remembered challenges.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Length of an issued nonce (base64url of 32 bytes).
pub const NONCE_LEN: usize = 43;

/// An issued challenge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Challenge {
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Used,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, (DateTime<Utc>, State)>,
    /// Nonces in issue order (expiry order, since the TTL is fixed) for sweeping.
    order: VecDeque<(String, DateTime<Utc>)>,
}

/// In-memory single-use challenges.
#[derive(Debug)]
pub struct ChallengeStore {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Default for ChallengeStore {
    fn default() -> Self {
        ChallengeStore::new(Duration::seconds(DEFAULT_TTL_SECONDS), DEFAULT_CAPACITY)
    }
}

impl ChallengeStore {
    /// `ttl` is clamped to at least one second; `capacity` to at least one.
    pub fn new(ttl: Duration, capacity: usize) -> ChallengeStore {
        ChallengeStore {
            ttl: ttl.max(Duration::seconds(1)),
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget entries whose expiry is more than one TTL in the past.
    fn sweep(&self, inner: &mut Inner, now: DateTime<Utc>) {
        while let Some((nonce, exp)) = inner.order.front() {
            if *exp + self.ttl >= now {
                break;
            }
            let nonce = nonce.clone();
            inner.entries.remove(&nonce);
            inner.order.pop_front();
        }
    }

    /// Number of remembered entries (live, used or expired-but-remembered).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Issue a fresh challenge valid until `now + ttl`.
    pub fn issue(&self, now: DateTime<Utc>) -> Result<Challenge, AttestError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AttestError::Token {
            code: "random_failed",
            reason: "system random generator failed".into(),
        })?;
        let nonce = URL_SAFE_NO_PAD.encode(bytes);
        let expires_at = now + self.ttl;
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        if inner.entries.len() >= self.capacity {
            return Err(AttestError::ChallengeCapacity {
                capacity: self.capacity,
            });
        }
        inner
            .entries
            .insert(nonce.clone(), (expires_at, State::Live));
        inner.order.push_back((nonce.clone(), expires_at));
        Ok(Challenge { nonce, expires_at })
    }

    /// Use a challenge: succeeds once, before its expiry.
    pub fn consume(&self, nonce: &str, now: DateTime<Utc>) -> Result<(), AttestError> {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        if nonce.len() != NONCE_LEN {
            return Err(AttestError::NonceUnknown);
        }
        let Some(entry) = inner.entries.get_mut(nonce) else {
            return Err(AttestError::NonceUnknown);
        };
        let (expires_at, state) = *entry;
        match state {
            State::Used => Err(AttestError::NonceReplayed),
            State::Live if now > expires_at => {
                entry.1 = State::Used;
                Err(AttestError::NonceExpired {
                    expired_at: expires_at,
                    at: now,
                })
            }
            State::Live => {
                entry.1 = State::Used;
                Ok(())
            }
        }
    }

    /// Whether `nonce` is live (issued, unused, unexpired) without consuming it (dry runs).
    pub fn check(&self, nonce: &str, now: DateTime<Utc>) -> Result<(), AttestError> {
        let inner = self.lock();
        match inner.entries.get(nonce) {
            None => Err(AttestError::NonceUnknown),
            Some((_, State::Used)) => Err(AttestError::NonceReplayed),
            Some((exp, State::Live)) if now > *exp => Err(AttestError::NonceExpired {
                expired_at: *exp,
                at: now,
            }),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn single_use() {
        let s = ChallengeStore::default();
        let c = s.issue(t0()).unwrap();
        assert_eq!(c.nonce.len(), NONCE_LEN);
        assert_eq!(c.expires_at, t0() + Duration::minutes(5));
        s.check(&c.nonce, t0()).unwrap();
        s.consume(&c.nonce, t0() + Duration::seconds(10)).unwrap();
        assert_eq!(
            s.consume(&c.nonce, t0() + Duration::seconds(11)),
            Err(AttestError::NonceReplayed)
        );
        assert_eq!(s.check(&c.nonce, t0()), Err(AttestError::NonceReplayed));
        let d = s.issue(t0()).unwrap();
        assert_ne!(c.nonce, d.nonce);
    }

    #[test]
    fn expiry_and_unknown() {
        let s = ChallengeStore::default();
        let c = s.issue(t0()).unwrap();
        // Exactly at the expiry it is still valid; one second later it is not.
        let c2 = s.issue(t0()).unwrap();
        s.consume(&c2.nonce, c2.expires_at).unwrap();
        let late = c.expires_at + Duration::seconds(1);
        assert_eq!(
            s.consume(&c.nonce, late),
            Err(AttestError::NonceExpired {
                expired_at: c.expires_at,
                at: late
            })
        );
        // An expired nonce is burnt: afterwards it is a replay.
        assert_eq!(s.consume(&c.nonce, late), Err(AttestError::NonceReplayed));
        assert_eq!(
            s.consume("never-issued-never-issued-never-issued-abc", t0()),
            Err(AttestError::NonceUnknown)
        );
        assert_eq!(s.consume("short", t0()), Err(AttestError::NonceUnknown));
        let e = s.issue(t0()).unwrap();
        assert!(matches!(
            s.check(&e.nonce, e.expires_at + Duration::seconds(1)),
            Err(AttestError::NonceExpired { .. })
        ));
    }

    #[test]
    fn swept_and_bounded() {
        let s = ChallengeStore::new(Duration::seconds(60), 3);
        let a = s.issue(t0()).unwrap();
        s.issue(t0()).unwrap();
        s.issue(t0()).unwrap();
        assert_eq!(
            s.issue(t0()),
            Err(AttestError::ChallengeCapacity { capacity: 3 })
        );
        // Used entries still count until swept (one TTL after expiry).
        s.consume(&a.nonce, t0()).unwrap();
        assert!(s.issue(t0() + Duration::seconds(119)).is_err());
        assert_eq!(s.len(), 3);
        let later = t0() + Duration::seconds(121);
        let b = s.issue(later).unwrap();
        assert_eq!(s.len(), 1);
        // Swept nonces are unknown.
        assert_eq!(s.consume(&a.nonce, later), Err(AttestError::NonceUnknown));
        s.consume(&b.nonce, later).unwrap();
    }
}
