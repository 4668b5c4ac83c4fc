//! Single-use challenge nonces for the native attestation route, stateless until redeemed.
//!
//! Issuing stores nothing: a nonce is `base64url(version || issued_at || random || mac)` with
//! `mac = HMAC-SHA256(key, version || issued_at || random)`, so anyone may ask for as many
//! challenges as they like without consuming shared state (a flood of `GET /challenge` used to fill
//! a bounded in-memory table and lock every other client out). The key is the service's
//! challenge key: the server derives it from the vault root (`Vault::derived_key`), so every
//! process unsealed with the same root accepts the others' nonces.
//!
//! Redeeming ([`ChallengeStore::consume`]) checks, in order: the shape and version, the MAC (in
//! constant time), the expiry (`issued_at + ttl`), then records the nonce in the store's
//! [`Table::RedeemedNonces`] with an "absent" precondition inside one transaction; a conflict
//! means another request (in this or another process sharing the database) redeemed it first.
//! Only redeemed nonces are stored, each until its expiry; [`ChallengeStore::sweep`] (the server's
//! maintenance task) deletes the expired ones. The row key starts with the zero-padded issue time
//! so that the sweep is a range scan from the oldest row.
//!
//! Outcomes: bad shape, version or MAC is [`AttestError::NonceUnknown`] (never issued by a
//! service holding this key); past its expiry [`AttestError::NonceExpired`]; redeemed before
//! [`AttestError::NonceReplayed`]. Time is injected (`now` on every call).

use std::sync::Arc;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use enclava_store::{Op, Store, StoreError, Table};
use zeroize::Zeroizing;

use crate::error::AttestError;

/// Default challenge lifetime: 5 minutes.
pub const DEFAULT_TTL_SECONDS: i64 = 300;
/// Format version of the nonce (the first byte).
pub const NONCE_VERSION: u8 = 1;
/// Length of the random part.
const RANDOM_LEN: usize = 16;
/// Length of the MAC (HMAC-SHA256, untruncated).
const MAC_LEN: usize = 32;
/// Raw length: version (1) + issued-at (8, big-endian seconds) + random + MAC.
const RAW_LEN: usize = 1 + 8 + RANDOM_LEN + MAC_LEN;
/// Length of an issued nonce (base64url without padding of [`RAW_LEN`] bytes).
pub const NONCE_LEN: usize = (RAW_LEN * 4).div_ceil(3);
/// How far in the future an issue time may lie (clock skew between processes on one database).
const MAX_FUTURE_SKEW_SECONDS: i64 = 60;
/// Rows deleted per sweep transaction (keeps each write short).
const SWEEP_BATCH: usize = 500;

/// An issued challenge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Challenge {
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues and redeems challenge nonces (see the module docs).
pub struct ChallengeStore {
    ttl: Duration,
    /// `None` only when the system random generator failed to make a key: then nothing is
    /// issued or accepted (no panic, no weak key).
    key: Option<hmac::Key>,
    /// Where redeemed nonces are recorded until they expire.
    redeemed: Arc<dyn Store>,
}

impl std::fmt::Debug for ChallengeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ChallengeStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn random_failed() -> AttestError {
    AttestError::Token {
        code: "random_failed",
        reason: "system random generator failed".into(),
    }
}

impl ChallengeStore {
    /// Nonces MAC'd under `key`, redeemed into `redeemed`. `ttl` is clamped to at least 1 s.
    pub fn new(key: &[u8; 32], ttl: Duration, redeemed: Arc<dyn Store>) -> ChallengeStore {
        ChallengeStore {
            ttl: ttl.max(Duration::seconds(1)),
            key: Some(hmac::Key::new(hmac::HMAC_SHA256, key)),
            redeemed,
        }
    }

    /// With a fresh random key: nonces are only accepted by this instance (library use, tests).
    pub fn with_random_key(ttl: Duration, redeemed: Arc<dyn Store>) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        let key = aws_lc_rs::rand::fill(bytes.as_mut())
            .is_ok()
            .then(|| hmac::Key::new(hmac::HMAC_SHA256, bytes.as_ref()));
        ChallengeStore {
            ttl: ttl.max(Duration::seconds(1)),
            key,
            redeemed,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self, body: &[u8]) -> Option<hmac::Tag> {
        self.key.as_ref().map(|k| hmac::sign(k, body))
    }

    /// Issue a fresh challenge valid until `now + ttl`. Stores nothing.
    pub fn issue(&self, now: DateTime<Utc>) -> Result<Challenge, AttestError> {
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.push(NONCE_VERSION);
        raw.extend_from_slice(&now.timestamp().to_be_bytes());
        let mut random = [0u8; RANDOM_LEN];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| random_failed())?;
        raw.extend_from_slice(&random);
        let tag = self.mac(&raw).ok_or_else(random_failed)?;
        raw.extend_from_slice(tag.as_ref());
        let issued = DateTime::<Utc>::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        Ok(Challenge {
            nonce: URL_SAFE_NO_PAD.encode(&raw),
            expires_at: issued + self.ttl,
        })
    }

    /// Check shape, version, MAC and expiry; the nonce's replay-set row key when all hold.
    fn authentic(&self, nonce: &str, now: DateTime<Utc>) -> Result<String, AttestError> {
        if nonce.len() != NONCE_LEN {
            return Err(AttestError::NonceUnknown);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| AttestError::NonceUnknown)?;
        let (body, tag) = raw
            .split_at_checked(RAW_LEN - MAC_LEN)
            .ok_or(AttestError::NonceUnknown)?;
        let (version, rest) = body.split_first().ok_or(AttestError::NonceUnknown)?;
        if *version != NONCE_VERSION {
            return Err(AttestError::NonceUnknown);
        }
        let expected = self.mac(body).ok_or(AttestError::NonceUnknown)?;
        // Constant time: a timing difference would let a client forge a MAC byte by byte.
        constant_time::verify_slices_are_equal(expected.as_ref(), tag)
            .map_err(|_| AttestError::NonceUnknown)?;
        let secs: [u8; 8] = rest
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(AttestError::NonceUnknown)?;
        let issued_at = i64::from_be_bytes(secs);
        let issued =
            DateTime::<Utc>::from_timestamp(issued_at, 0).ok_or(AttestError::NonceUnknown)?;
        if issued > now + Duration::seconds(MAX_FUTURE_SKEW_SECONDS) {
            // Authentic but from the future: another process's clock is far off. Refuse rather
            // than let it live longer than its TTL.
            return Err(AttestError::NonceUnknown);
        }
        let expires_at = issued + self.ttl;
        if now > expires_at {
            return Err(AttestError::NonceExpired {
                expired_at: expires_at,
                at: now,
            });
        }
        // The row: issue time first (zero-padded, so key order is time order for
        // [`ChallengeStore::sweep`]), then the MAC, which identifies the nonce's bytes whatever
        // their text encoding (a replay cannot slip through as another spelling).
        Ok(format!(
            "{:020}/{}",
            issued_at.max(0),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// Redeem a challenge: succeeds once (across every process sharing the store), before its
    /// expiry.
    pub fn consume(&self, nonce: &str, now: DateTime<Utc>) -> Result<(), AttestError> {
        let key = self.authentic(nonce, now)?;
        let r = self.redeemed.transact(vec![
            Op::Expect {
                table: Table::RedeemedNonces,
                key: key.clone(),
                value: None,
            },
            Op::Put {
                table: Table::RedeemedNonces,
                key,
                value: Vec::new(),
            },
        ]);
        match r {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(AttestError::NonceReplayed),
            Err(e) => Err(AttestError::Store(e.to_string())),
        }
    }

    /// Whether `nonce` could be redeemed now, without redeeming it (dry runs).
    pub fn check(&self, nonce: &str, now: DateTime<Utc>) -> Result<(), AttestError> {
        let key = self.authentic(nonce, now)?;
        match self.redeemed.get(Table::RedeemedNonces, &key) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(AttestError::NonceReplayed),
            Err(e) => Err(AttestError::Store(e.to_string())),
        }
    }

    /// Delete redeemed nonces that have expired (they can no longer pass the expiry check, so
    /// they need no remembering). Returns how many were deleted.
    pub fn sweep(&self, now: DateTime<Utc>) -> Result<usize, AttestError> {
        // A nonce issued at `t` is dead once `now > t + ttl`.
        let cutoff = now.timestamp().saturating_sub(self.ttl.num_seconds());
        let mut deleted = 0;
        loop {
            let rows = self
                .redeemed
                .list(Table::RedeemedNonces, "", None, SWEEP_BATCH)
                .map_err(|e| AttestError::Store(e.to_string()))?;
            let dead: Vec<Op> = rows
                .into_iter()
                .map(|(k, _)| k)
                .take_while(|k| {
                    k.split_once('/')
                        .and_then(|(t, _)| t.parse::<i64>().ok())
                        .is_none_or(|t| t < cutoff)
                })
                .map(|key| Op::Delete {
                    table: Table::RedeemedNonces,
                    key,
                })
                .collect();
            if dead.is_empty() {
                return Ok(deleted);
            }
            let n = dead.len();
            self.redeemed
                .transact(dead)
                .map_err(|e| AttestError::Store(e.to_string()))?;
            deleted += n;
            if n < SWEEP_BATCH {
                return Ok(deleted);
            }
        }
    }

    /// Number of redeemed nonces currently remembered (expired or not, until swept).
    pub fn redeemed_count(&self) -> Result<usize, AttestError> {
        let mut n = 0;
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .redeemed
                .list(Table::RedeemedNonces, "", after.as_deref(), 1000)
                .map_err(|e| AttestError::Store(e.to_string()))?;
            n += rows.len();
            match rows.last() {
                Some((k, _)) if rows.len() == 1000 => after = Some(k.clone()),
                _ => return Ok(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use enclava_store::SqliteStore;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn store() -> Arc<dyn Store> {
        Arc::new(SqliteStore::in_memory().unwrap())
    }

    fn chal(db: &Arc<dyn Store>) -> ChallengeStore {
        ChallengeStore::new(
            &[7u8; 32],
            Duration::seconds(DEFAULT_TTL_SECONDS),
            db.clone(),
        )
    }

    #[test]
    fn single_use() {
        let db = store();
        let s = chal(&db);
        let c = s.issue(t0()).unwrap();
        assert_eq!(c.nonce.len(), NONCE_LEN);
        assert_eq!(c.expires_at, t0() + Duration::minutes(5));
        // Issuing stored nothing.
        assert_eq!(s.redeemed_count().unwrap(), 0);
        s.check(&c.nonce, t0()).unwrap();
        s.consume(&c.nonce, t0() + Duration::seconds(10)).unwrap();
        assert_eq!(
            s.consume(&c.nonce, t0() + Duration::seconds(11)),
            Err(AttestError::NonceReplayed)
        );
        assert_eq!(s.check(&c.nonce, t0()), Err(AttestError::NonceReplayed));
        let d = s.issue(t0()).unwrap();
        assert_ne!(c.nonce, d.nonce);
        assert_eq!(s.redeemed_count().unwrap(), 1);
    }

    #[test]
    fn another_instance_with_the_same_key_and_store_shares_the_replay_set() {
        let db = store();
        let (a, b) = (chal(&db), chal(&db));
        let c = a.issue(t0()).unwrap();
        b.consume(&c.nonce, t0()).unwrap();
        assert_eq!(a.consume(&c.nonce, t0()), Err(AttestError::NonceReplayed));
        // A different key: never issued as far as it can tell.
        let other = ChallengeStore::new(&[8u8; 32], Duration::seconds(300), db.clone());
        let c2 = a.issue(t0()).unwrap();
        assert_eq!(
            other.consume(&c2.nonce, t0()),
            Err(AttestError::NonceUnknown)
        );
    }

    #[test]
    fn expiry_unknown_and_tampering() {
        let db = store();
        let s = chal(&db);
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
        assert_eq!(s.consume("short", t0()), Err(AttestError::NonceUnknown));
        assert_eq!(
            s.consume(&"A".repeat(NONCE_LEN), t0()),
            Err(AttestError::NonceUnknown)
        );
        // Every single-character change of a real nonce is refused as unknown (MAC).
        let mut raw = URL_SAFE_NO_PAD.decode(&c.nonce).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let forged = URL_SAFE_NO_PAD.encode(&raw);
            assert_eq!(
                s.check(&forged, t0()),
                Err(AttestError::NonceUnknown),
                "{i}"
            );
            raw[i] ^= 1;
        }
        // An authentic nonce from far in the future is refused.
        let f = s.issue(t0() + Duration::hours(1)).unwrap();
        assert_eq!(s.check(&f.nonce, t0()), Err(AttestError::NonceUnknown));
    }

    #[test]
    fn sweep_forgets_only_expired_redemptions() {
        let db = store();
        let s = ChallengeStore::new(&[7u8; 32], Duration::seconds(60), db.clone());
        let old = s.issue(t0()).unwrap();
        s.consume(&old.nonce, t0()).unwrap();
        let young = s.issue(t0() + Duration::seconds(50)).unwrap();
        s.consume(&young.nonce, t0() + Duration::seconds(50))
            .unwrap();
        assert_eq!(s.sweep(t0() + Duration::seconds(60)).unwrap(), 0);
        assert_eq!(s.sweep(t0() + Duration::seconds(61)).unwrap(), 1);
        assert_eq!(s.redeemed_count().unwrap(), 1);
        // The swept one is expired anyway: it can never be redeemed again.
        assert!(matches!(
            s.consume(&old.nonce, t0() + Duration::seconds(61)),
            Err(AttestError::NonceExpired { .. })
        ));
        assert_eq!(
            s.consume(&young.nonce, t0() + Duration::seconds(61)),
            Err(AttestError::NonceReplayed)
        );
    }
}

/// Cost of a durable redemption (one SQLite transaction, `synchronous=FULL`, on a real file):
/// `cargo test -p enclava-attestation --release redemption_cost -- --ignored --nocapture`.
#[cfg(test)]
mod measure {
    use super::*;
    use enclava_store::SqliteStore;

    #[test]
    #[ignore = "a measurement, not a check"]
    fn redemption_cost() {
        for relaxed in [false, true] {
            let path = std::env::temp_dir().join(format!(
                "enclava-redeem-{}-{relaxed}.db",
                std::process::id()
            ));
            let store = if relaxed {
                SqliteStore::open_relaxed(&path)
            } else {
                SqliteStore::open(&path)
            };
            let db: Arc<dyn Store> = Arc::new(store.unwrap());
            let s = ChallengeStore::new(&[1u8; 32], Duration::seconds(300), db);
            let now = Utc::now();
            let nonces: Vec<String> = (0..2000).map(|_| s.issue(now).unwrap().nonce).collect();
            let t = std::time::Instant::now();
            for n in &nonces {
                s.consume(n, now).unwrap();
            }
            let el = t.elapsed();
            println!(
                "synchronous={}: {} redemptions in {el:?}: {:.0}/s, {:.3} ms each",
                if relaxed { "NORMAL" } else { "FULL" },
                nonces.len(),
                nonces.len() as f64 / el.as_secs_f64(),
                el.as_secs_f64() * 1000.0 / nonces.len() as f64
            );
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
            }
        }
    }
}
