//! Per-client rate limits for the anonymous and credential-checking endpoints.
//!
//! Two mechanisms, both in memory, per process, with bounded tables:
//!
//! - **Request rate** ([`RateLimits::check_request`]): a token bucket per client address and
//!   class (token endpoints incl. managed identity, `/challenge`, the attest routes). Over the
//!   limit: `429` with `Retry-After`. IPv6 clients are keyed by their /64 (one host usually owns
//!   a whole /64, so single addresses would be free to rotate). Loopback clients are exempt unless
//!   `rate_limits.include_loopback` is set: local benchmarks and a co-located proxy run from
//!   there, and a loopback client already has the machine.
//! - **Failed client-credential logins** ([`RateLimits::login_allowed`] /
//!   [`RateLimits::login_failed`] / [`RateLimits::login_succeeded`]): failures are counted per
//!   (address, client_id) and per address. After `login_free_failures` failures the next attempt
//!   from that pair (or, at four times that, from that address) must wait a delay that doubles
//!   with every further failure, up to `login_max_delay_secs`: `429` with `Retry-After`. There is
//!   no lockout: the delay is bounded, failures are forgotten after [`FAILURE_MEMORY`] without
//!   one, and a success resets the pair. An attacker hammering a client_id therefore never blocks
//!   that client from another address. On top, a global budget of failures per client_id (across
//!   all addresses) only slows: when an attack from many addresses exhausts it, addresses that
//!   already failed for that client_id wait one second per attempt, addresses that never failed
//!   (the real client) are not affected.
//!
//! Tables are bounded ([`MAX_ENTRIES`]): when full, entries that carry no state (full buckets,
//! forgotten failures) are dropped first, then arbitrary ones; dropping an entry only ever
//! forgets a limit, it never blocks anyone.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries per table.
pub const MAX_ENTRIES: usize = 50_000;
/// Failures are forgotten after this long without a new one.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Longest client_id kept as a key (longer ones are cut: they are never valid anyway).
const MAX_CLIENT_ID: usize = 128;

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `/oauth2/token`, `/{tenant}/oauth2/v2.0/token`, the managed-identity endpoint.
    Token,
    Challenge,
    Attest,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Token => "token",
            Class::Challenge => "challenge",
            Class::Attest => "attest",
        }
    }
}

/// A token bucket rate: `per_sec` refill, `burst` capacity; `per_sec == 0` disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

/// The resolved limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub token: Rate,
    pub challenge: Rate,
    pub attest: Rate,
    /// Failures per (address, client_id) before delays start (per address: four times this).
    pub login_free_failures: u32,
    pub login_max_delay: Duration,
    /// Failed logins per second per client_id (all addresses) before failing addresses slow.
    pub login_client_failures_per_sec: u32,
    /// Apply the request-rate buckets to loopback clients too.
    pub include_loopback: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            token: Rate {
                per_sec: 50,
                burst: 200,
            },
            challenge: Rate {
                per_sec: 200,
                burst: 1000,
            },
            attest: Rate {
                per_sec: 500,
                burst: 2000,
            },
            login_free_failures: 5,
            login_max_delay: Duration::from_secs(300),
            login_client_failures_per_sec: 10,
            include_loopback: false,
        }
    }
}

/// The `[rate_limits]` table of the configuration (every field optional in a layer; a rate of 0
/// disables that limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub token_per_sec: Option<u32>,
    pub token_burst: Option<u32>,
    pub challenge_per_sec: Option<u32>,
    pub challenge_burst: Option<u32>,
    pub attest_per_sec: Option<u32>,
    pub attest_burst: Option<u32>,
    pub login_free_failures: Option<u32>,
    pub login_max_delay_secs: Option<u64>,
    pub login_client_failures_per_sec: Option<u32>,
    pub include_loopback: Option<bool>,
}

impl RateLimitSettings {
    /// `higher` stacked on `lower`, field by field.
    pub fn overlay(lower: Option<Self>, higher: Option<Self>) -> Option<Self> {
        match (lower, higher) {
            (None, h) => h,
            (l, None) => l,
            (Some(l), Some(h)) => Some(RateLimitSettings {
                token_per_sec: h.token_per_sec.or(l.token_per_sec),
                token_burst: h.token_burst.or(l.token_burst),
                challenge_per_sec: h.challenge_per_sec.or(l.challenge_per_sec),
                challenge_burst: h.challenge_burst.or(l.challenge_burst),
                attest_per_sec: h.attest_per_sec.or(l.attest_per_sec),
                attest_burst: h.attest_burst.or(l.attest_burst),
                login_free_failures: h.login_free_failures.or(l.login_free_failures),
                login_max_delay_secs: h.login_max_delay_secs.or(l.login_max_delay_secs),
                login_client_failures_per_sec: h
                    .login_client_failures_per_sec
                    .or(l.login_client_failures_per_sec),
                include_loopback: h.include_loopback.or(l.include_loopback),
            }),
        }
    }

    /// `ENCLAVA_RATE_LIMIT_<FIELD>` (e.g. `ENCLAVA_RATE_LIMIT_TOKEN_PER_SEC`,
    /// `ENCLAVA_RATE_LIMIT_INCLUDE_LOOPBACK`); other names leave `current` unchanged.
    pub fn from_env_var(
        current: Option<Self>,
        key: &str,
        value: &str,
    ) -> Result<Option<Self>, crate::ConfigError> {
        let Some(field) = key.strip_prefix("ENCLAVA_RATE_LIMIT_") else {
            return Ok(current);
        };
        let mut s = current.unwrap_or_default();
        let bad = |expected: &'static str| crate::ConfigError::Invalid {
            source_name: "environment".into(),
            key: key.into(),
            expected,
            found: value.chars().take(100).collect(),
        };
        let num = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("a non-negative integer"))
        };
        match field {
            "TOKEN_PER_SEC" => s.token_per_sec = Some(num()?),
            "TOKEN_BURST" => s.token_burst = Some(num()?),
            "CHALLENGE_PER_SEC" => s.challenge_per_sec = Some(num()?),
            "CHALLENGE_BURST" => s.challenge_burst = Some(num()?),
            "ATTEST_PER_SEC" => s.attest_per_sec = Some(num()?),
            "ATTEST_BURST" => s.attest_burst = Some(num()?),
            "LOGIN_FREE_FAILURES" => s.login_free_failures = Some(num()?),
            "LOGIN_MAX_DELAY_SECS" => s.login_max_delay_secs = Some(u64::from(num()?)),
            "LOGIN_CLIENT_FAILURES_PER_SEC" => s.login_client_failures_per_sec = Some(num()?),
            "INCLUDE_LOOPBACK" => {
                s.include_loopback = Some(match value.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" | "" => false,
                    _ => return Err(bad("a boolean (true/false/1/0)")),
                })
            }
            _ => {
                return Err(bad(
                    "a known ENCLAVA_RATE_LIMIT_* variable (TOKEN_PER_SEC, TOKEN_BURST, CHALLENGE_PER_SEC, CHALLENGE_BURST, ATTEST_PER_SEC, ATTEST_BURST, LOGIN_FREE_FAILURES, LOGIN_MAX_DELAY_SECS, LOGIN_CLIENT_FAILURES_PER_SEC, INCLUDE_LOOPBACK)",
                ));
            }
        }
        Ok(Some(s))
    }

    /// Defaults for what is not set.
    pub fn resolve(self) -> RateLimitConfig {
        let d = RateLimitConfig::default();
        let rate = |p: Option<u32>, b: Option<u32>, d: Rate| {
            let per_sec = p.unwrap_or(d.per_sec);
            Rate {
                per_sec,
                // A burst below one request would refuse everything.
                burst: b.unwrap_or(d.burst.max(per_sec)).max(1),
            }
        };
        RateLimitConfig {
            token: rate(self.token_per_sec, self.token_burst, d.token),
            challenge: rate(self.challenge_per_sec, self.challenge_burst, d.challenge),
            attest: rate(self.attest_per_sec, self.attest_burst, d.attest),
            login_free_failures: self.login_free_failures.unwrap_or(d.login_free_failures),
            login_max_delay: self
                .login_max_delay_secs
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(d.login_max_delay),
            login_client_failures_per_sec: self
                .login_client_failures_per_sec
                .unwrap_or(d.login_client_failures_per_sec),
            include_loopback: self.include_loopback.unwrap_or(d.include_loopback),
        }
    }
}

/// "Come back in this long" (rounded up to whole seconds for `Retry-After`, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    pub fn secs(self) -> u64 {
        let s = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        s.max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens =
            (self.tokens + dt * f64::from(rate.per_sec)).min(f64::from(rate.burst.max(1)));
        self.at = now;
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// A bounded map; `idle` says which entries can go first when it is full.
struct Table<K, V> {
    map: HashMap<K, V>,
}

impl<K: Eq + Hash + Clone, V> Table<K, V> {
    fn new() -> Self {
        Table {
            map: HashMap::new(),
        }
    }

    fn make_room(&mut self, idle: impl Fn(&K, &V) -> bool) {
        if self.map.len() < MAX_ENTRIES {
            return;
        }
        self.map.retain(|k, v| !idle(k, v));
        if self.map.len() >= MAX_ENTRIES {
            // Still full of live state: forget an arbitrary tenth (forgetting only lifts limits).
            let drop: Vec<K> = self.map.keys().take(MAX_ENTRIES / 10).cloned().collect();
            for k in drop {
                self.map.remove(&k);
            }
        }
    }
}

/// The key of a client address: IPv4 as is, IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn client_id_key(id: &str) -> String {
    id.chars().take(MAX_CLIENT_ID).collect()
}

/// The limiter state of one server.
pub struct RateLimits {
    config: RateLimitConfig,
    buckets: Mutex<Table<(IpAddr, Class), Bucket>>,
    pair_failures: Mutex<Table<(IpAddr, String), Failures>>,
    ip_failures: Mutex<Table<IpAddr, Failures>>,
    client_budget: Mutex<Table<String, Bucket>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn forgotten(f: &Failures, now: Instant) -> bool {
    now.saturating_duration_since(f.last) > FAILURE_MEMORY
}

/// The delay after `count` failures with `free` free ones: 1 s, 2 s, 4 s, ... up to `max`.
fn backoff(count: u32, free: u32, max: Duration) -> Option<Duration> {
    let over = count.checked_sub(free)?;
    if over == 0 {
        return None;
    }
    let exp = (over - 1).min(20);
    Some(Duration::from_secs(1u64 << exp).min(max))
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimits {
            config,
            buckets: Mutex::new(Table::new()),
            pair_failures: Mutex::new(Table::new()),
            ip_failures: Mutex::new(Table::new()),
            client_budget: Mutex::new(Table::new()),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    fn rate(&self, class: Class) -> Rate {
        match class {
            Class::Token => self.config.token,
            Class::Challenge => self.config.challenge,
            Class::Attest => self.config.attest,
        }
    }

    /// Take one request of `class` from `ip`'s bucket, or say how long to wait.
    pub fn check_request(&self, ip: IpAddr, class: Class, now: Instant) -> Result<(), RetryAfter> {
        if ip.is_loopback() && !self.config.include_loopback {
            return Ok(());
        }
        let rate = self.rate(class);
        if rate.per_sec == 0 {
            return Ok(());
        }
        let key = (client_key(ip), class);
        let mut t = lock(&self.buckets);
        if !t.map.contains_key(&key) {
            // A bucket that has refilled completely holds no state worth keeping.
            t.make_room(|(_, c), b| {
                let mut b = *b;
                let r = self.rate(*c);
                b.refill(r, now);
                b.tokens >= f64::from(r.burst)
            });
        }
        let b = t.map.entry(key).or_insert(Bucket {
            tokens: f64::from(rate.burst.max(1)),
            at: now,
        });
        b.refill(rate, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / f64::from(rate.per_sec);
            Err(RetryAfter(Duration::from_secs_f64(wait.max(0.0))))
        }
    }

    fn blocked(f: Option<&Failures>, now: Instant) -> Option<Duration> {
        let f = f?;
        if now.saturating_duration_since(f.last) > FAILURE_MEMORY {
            return None;
        }
        let until = f.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Whether a client-credential attempt for `client_id` from `ip` may be checked now.
    pub fn login_allowed(
        &self,
        ip: IpAddr,
        client_id: &str,
        now: Instant,
    ) -> Result<(), RetryAfter> {
        let ip = client_key(ip);
        let cid = client_id_key(client_id);
        let pair_failed = {
            let t = lock(&self.pair_failures);
            let f = t.map.get(&(ip, cid.clone()));
            if let Some(d) = Self::blocked(f, now) {
                return Err(RetryAfter(d));
            }
            f.is_some_and(|f| now.saturating_duration_since(f.last) <= FAILURE_MEMORY)
        };
        if let Some(d) = Self::blocked(lock(&self.ip_failures).map.get(&ip), now) {
            return Err(RetryAfter(d));
        }
        // The per-client_id budget only slows addresses that have failed for this client_id.
        if pair_failed && self.config.login_client_failures_per_sec > 0 {
            let rate = self.client_rate();
            let mut t = lock(&self.client_budget);
            if let Some(b) = t.map.get_mut(&cid) {
                b.refill(rate, now);
                if b.tokens < 1.0 {
                    return Err(RetryAfter(Duration::from_secs(1)));
                }
            }
        }
        Ok(())
    }

    fn client_rate(&self) -> Rate {
        let r = self.config.login_client_failures_per_sec;
        Rate {
            per_sec: r,
            burst: r.saturating_mul(10).max(1),
        }
    }

    /// Record a failed attempt (unknown client or wrong secret).
    pub fn login_failed(&self, ip: IpAddr, client_id: &str, now: Instant) {
        let ip = client_key(ip);
        let cid = client_id_key(client_id);
        let free = self.config.login_free_failures;
        let max = self.config.login_max_delay;
        let bump = |f: &mut Failures, free: u32| {
            if now.saturating_duration_since(f.last) > FAILURE_MEMORY {
                f.count = 0;
                f.blocked_until = None;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            f.blocked_until = backoff(f.count, free, max).map(|d| now + d);
        };
        {
            let mut t = lock(&self.pair_failures);
            let key = (ip, cid.clone());
            if !t.map.contains_key(&key) {
                t.make_room(|_, f| forgotten(f, now));
            }
            let f = t.map.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: None,
            });
            bump(f, free);
        }
        {
            let mut t = lock(&self.ip_failures);
            if !t.map.contains_key(&ip) {
                t.make_room(|_, f| forgotten(f, now));
            }
            let f = t.map.entry(ip).or_insert(Failures {
                count: 0,
                last: now,
                blocked_until: None,
            });
            bump(f, free.saturating_mul(4));
        }
        if self.config.login_client_failures_per_sec > 0 {
            let rate = self.client_rate();
            let mut t = lock(&self.client_budget);
            if !t.map.contains_key(&cid) {
                t.make_room(|_, b| {
                    let mut b = *b;
                    b.refill(rate, now);
                    b.tokens >= f64::from(rate.burst)
                });
            }
            let b = t.map.entry(cid).or_insert(Bucket {
                tokens: f64::from(rate.burst),
                at: now,
            });
            b.refill(rate, now);
            b.tokens = (b.tokens - 1.0).max(0.0);
        }
    }

    /// A successful login: the pair's failures are forgotten.
    pub fn login_succeeded(&self, ip: IpAddr, client_id: &str) {
        let key = (client_key(ip), client_id_key(client_id));
        lock(&self.pair_failures).map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cfg() -> RateLimitConfig {
        RateLimitConfig {
            token: Rate {
                per_sec: 1,
                burst: 3,
            },
            include_loopback: true,
            ..RateLimitConfig::default()
        }
    }

    #[test]
    fn bucket_refuses_over_burst_and_refills() {
        let l = RateLimits::new(cfg());
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            l.check_request(a, Class::Token, t0).unwrap();
        }
        let e = l.check_request(a, Class::Token, t0).unwrap_err();
        assert_eq!(e.secs(), 1);
        // Another address and another class are unaffected.
        l.check_request(ip("192.0.2.2"), Class::Token, t0).unwrap();
        l.check_request(a, Class::Challenge, t0).unwrap();
        l.check_request(a, Class::Token, t0 + Duration::from_secs(1))
            .unwrap();
        // IPv6 addresses of one /64 share a bucket.
        let v6 = |s| l.check_request(ip(s), Class::Token, t0);
        for _ in 0..3 {
            v6("2001:db8::1").unwrap();
        }
        assert!(v6("2001:db8::2").is_err());
        v6("2001:db8:0:1::1").unwrap();
    }

    #[test]
    fn loopback_exempt_unless_included() {
        let l = RateLimits::new(RateLimitConfig {
            include_loopback: false,
            ..cfg()
        });
        let t0 = Instant::now();
        for _ in 0..100 {
            l.check_request(ip("127.0.0.1"), Class::Token, t0).unwrap();
        }
    }

    #[test]
    fn failed_logins_back_off_per_pair_never_lock_out_and_spare_other_addresses() {
        let l = RateLimits::new(cfg());
        let t0 = Instant::now();
        let (attacker, real) = (ip("198.51.100.7"), ip("203.0.113.9"));
        for _ in 0..5 {
            l.login_allowed(attacker, "app", t0).unwrap();
            l.login_failed(attacker, "app", t0);
        }
        l.login_allowed(attacker, "app", t0).unwrap();
        l.login_failed(attacker, "app", t0);
        assert_eq!(l.login_allowed(attacker, "app", t0).unwrap_err().secs(), 1);
        let t1 = t0 + Duration::from_secs(1);
        l.login_allowed(attacker, "app", t1).unwrap();
        l.login_failed(attacker, "app", t1);
        assert_eq!(l.login_allowed(attacker, "app", t1).unwrap_err().secs(), 2);
        // Hammering: the delay grows to the cap, never beyond.
        let mut t = t1;
        for _ in 0..40 {
            t += Duration::from_secs(400);
            l.login_failed(attacker, "app", t);
        }
        assert_eq!(l.login_allowed(attacker, "app", t).unwrap_err().secs(), 300);
        // The real client from its own address is not affected, even with the client_id's
        // global budget exhausted.
        l.login_allowed(real, "app", t).unwrap();
        // Failures are forgotten after a quiet period: no permanent lockout.
        l.login_allowed(attacker, "app", t + FAILURE_MEMORY + Duration::from_secs(1))
            .unwrap();
    }

    #[test]
    fn many_addresses_exhaust_the_client_budget_which_only_slows_failed_ones() {
        let l = RateLimits::new(RateLimitConfig {
            login_client_failures_per_sec: 1,
            ..cfg()
        });
        let t0 = Instant::now();
        for i in 0..20u8 {
            let a = IpAddr::from([198, 51, 100, i]);
            l.login_failed(a, "app", t0);
        }
        // An address that failed once is slowed (budget exhausted); a fresh one is not.
        assert_eq!(
            l.login_allowed(IpAddr::from([198, 51, 100, 3]), "app", t0),
            Err(RetryAfter(Duration::from_secs(1)))
        );
        l.login_allowed(ip("203.0.113.9"), "app", t0).unwrap();
        // Success resets the pair.
        l.login_succeeded(IpAddr::from([198, 51, 100, 3]), "app");
        l.login_allowed(IpAddr::from([198, 51, 100, 3]), "app", t0)
            .unwrap();
    }
}
