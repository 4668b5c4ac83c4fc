//! The polite HTTP client behind the fetchers: per-host request spacing, bounded retries with
//! exponential back-off and jitter on 429/5xx and transport errors, `Retry-After` honoured, a cap
//! on response sizes. Time, sleeping and jitter are injected so tests never sleep.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// Wall-clock time, injected.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Sleeping, injected.
pub trait Sleeper: Send + Sync {
    fn sleep(&self, d: Duration);
}

/// Randomness for back-off jitter, injected: a duration uniformly drawn from `[0, max]`.
pub trait Jitter: Send + Sync {
    fn jitter(&self, max: Duration) -> Duration;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// `std::thread::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Jitter from the standard library's randomly keyed hasher (no extra dependency; this is
/// spreading retries, not cryptography).
#[derive(Debug, Default)]
pub struct RandomJitter {
    counter: std::sync::atomic::AtomicU64,
}

impl Jitter for RandomJitter {
    fn jitter(&self, max: Duration) -> Duration {
        use std::hash::{BuildHasher, Hasher};
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        let r = h.finish();
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if max_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(r % (max_ms.saturating_add(1)))
    }
}

/// No jitter (deterministic back-off).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoJitter;

impl Jitter for NoJitter {
    fn jitter(&self, _max: Duration) -> Duration {
        Duration::ZERO
    }
}

/// How politely to talk to a collateral service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Politeness {
    /// At most one request per this interval per host (`host[:port]`).
    pub min_interval: Duration,
    /// Attempts per resource, the first included (at least 1).
    pub max_attempts: u32,
    /// Back-off before retry n (n >= 1) is `base * 2^(n-1)` (capped at `max_backoff`) plus up to
    /// half of that again as jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the fetch fails with `rate_limited`.
    pub max_retry_after: Duration,
    /// Connect / read / write timeout of one request.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
}

impl Politeness {
    /// AMD KDS: AMD allows roughly one request per 10 seconds per address.
    pub fn amd_kds() -> Politeness {
        Politeness {
            min_interval: Duration::from_secs(10),
            max_attempts: 4,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(120),
            max_retry_after: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
        }
    }

    /// Intel PCS or a PCCS: the same policy with a shorter spacing (a full set of collateral for
    /// one FMSPC is five requests).
    pub fn intel_pcs() -> Politeness {
        Politeness {
            min_interval: Duration::from_secs(1),
            base_backoff: Duration::from_secs(2),
            ..Politeness::amd_kds()
        }
    }
}

/// A successful response: the body and the headers that were asked for.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Fetched {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The shared machinery of the fetchers.
pub(crate) struct Http {
    pub agent: ureq::Agent,
    pub clock: Arc<dyn Clock>,
    pub sleeper: Arc<dyn Sleeper>,
    pub jitter: Arc<dyn Jitter>,
    pub politeness: Politeness,
    /// host -> time of the last request to it.
    last: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("politeness", &self.politeness)
            .finish_non_exhaustive()
    }
}

pub(crate) fn default_agent(p: &Politeness) -> ureq::Agent {
    // AMD KDS and Intel PCS have publicly trusted certificates: the WebPKI roots, over rustls on
    // aws-lc-rs (the one TLS crypto provider).
    enclava_http::agent_builder()
        .timeout_connect(p.timeout)
        .timeout_read(p.timeout)
        .timeout_write(p.timeout)
        .redirects(3)
        .user_agent(concat!("enclava-collateral/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Http {
    pub fn new(politeness: Politeness) -> Http {
        Http {
            agent: default_agent(&politeness),
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(ThreadSleeper),
            jitter: Arc::new(RandomJitter::default()),
            politeness,
            last: Mutex::new(HashMap::new()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Reserve the next request slot for `host` (at least `min_interval` after the previous
    /// one, reserved under the lock so concurrent callers queue up), then sleep until it.
    fn wait_turn(&self, host: &str) {
        let interval = chrono::Duration::from_std(self.politeness.min_interval)
            .unwrap_or(chrono::Duration::MAX);
        let wait = {
            let mut m = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let now = self.clock.now();
            let slot = match m
                .get(host)
                .and_then(|last| last.checked_add_signed(interval))
            {
                Some(next) if next > now => next,
                _ => now,
            };
            m.insert(host.to_string(), slot);
            slot - now
        };
        if let Ok(w) = wait.to_std()
            && !w.is_zero()
        {
            self.sleeper.sleep(w);
        }
    }

    /// Back-off before retry `n` (1-based).
    fn backoff(&self, n: u32) -> Duration {
        let p = &self.politeness;
        let exp = p
            .base_backoff
            .checked_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX))
            .unwrap_or(p.max_backoff)
            .min(p.max_backoff);
        exp + self.jitter.jitter(exp / 2)
    }

    /// GET `url`, politely. 404 is [`Error::NotFound`]; 429, 5xx and transport errors are retried
    /// up to `max_attempts` times; other statuses fail at once.
    pub fn get(&self, url: &str, want_headers: &[&str]) -> Result<Fetched> {
        self.call(url, None, want_headers)
    }

    /// POST `body` with `content_type` to `url`, with the same politeness and retries as
    /// [`Http::get`] (OCSP requests are idempotent).
    pub fn post(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        want_headers: &[&str],
    ) -> Result<Fetched> {
        self.call(url, Some((content_type, body)), want_headers)
    }

    fn call(
        &self,
        url: &str,
        body: Option<(&str, &[u8])>,
        want_headers: &[&str],
    ) -> Result<Fetched> {
        let host = host_of(url)?;
        let attempts = self.politeness.max_attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            self.wait_turn(&host);
            let sent = match body {
                Some((ct, b)) => self.agent.post(url).set("Content-Type", ct).send_bytes(b),
                None => self.agent.get(url).call(),
            };
            let delay = match sent {
                Ok(resp) => match self.read(url, resp, want_headers)? {
                    Ok(f) => return Ok(f),
                    Err(e) => {
                        // The body broke off: a transport error like any other.
                        last_error = format!("reading the response body: {e}");
                        self.backoff(attempt)
                    }
                },
                Err(ureq::Error::Status(404, _)) => {
                    return Err(Error::NotFound {
                        url: url.to_string(),
                    });
                }
                Err(ureq::Error::Status(status, resp)) if status == 429 || status >= 500 => {
                    let retry_after = resp
                        .header("Retry-After")
                        .and_then(|v| parse_retry_after(v, self.clock.now()));
                    last_error = format!("HTTP {status}");
                    match retry_after {
                        Some(ra) if ra > self.politeness.max_retry_after => {
                            return Err(Error::RateLimited {
                                url: url.to_string(),
                                retry_after_secs: ra.as_secs(),
                                max_secs: self.politeness.max_retry_after.as_secs(),
                            });
                        }
                        Some(ra) => ra,
                        None => self.backoff(attempt),
                    }
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let body = read_limited(resp.into_reader(), 256)
                        .map(|(b, _)| printable(&b))
                        .unwrap_or_default();
                    return Err(Error::HttpStatus {
                        url: url.to_string(),
                        status,
                        body,
                    });
                }
                Err(ureq::Error::Transport(t)) => {
                    last_error = t.to_string();
                    self.backoff(attempt)
                }
            };
            if attempt < attempts && !delay.is_zero() {
                self.sleeper.sleep(delay);
            }
        }
        Err(Error::GaveUp {
            url: url.to_string(),
            attempts,
            last: last_error,
        })
    }

    /// The body and wanted headers of a success; the inner error is a retryable read failure.
    fn read(
        &self,
        url: &str,
        resp: ureq::Response,
        want_headers: &[&str],
    ) -> Result<std::result::Result<Fetched, std::io::Error>> {
        let headers = want_headers
            .iter()
            .filter_map(|h| resp.header(h).map(|v| (h.to_string(), v.to_string())))
            .collect();
        let limit = self.politeness.max_body_bytes;
        let (body, truncated) = match read_limited(resp.into_reader(), limit) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if truncated {
            return Err(Error::ResponseTooLarge {
                url: url.to_string(),
                limit,
            });
        }
        Ok(Ok(Fetched { body, headers }))
    }
}

/// Read at most `limit` bytes; the flag says whether there was more.
fn read_limited(r: impl Read, limit: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap).read_to_end(&mut buf)?;
    let truncated = buf.len() > limit;
    buf.truncate(limit);
    Ok((buf, truncated))
}

/// Printable ASCII for an error message (control characters dropped).
fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                ' '
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// `host[:port]` of an http(s) URL, lower case.
pub(crate) fn host_of(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| Error::Config(format!("expected an http(s) URL, found {url:?}")))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest.get(..end).unwrap_or_default();
    if host.is_empty() {
        return Err(Error::Config(format!(
            "expected a host in the URL, found {url:?}"
        )));
    }
    Ok(host.to_ascii_lowercase())
}

/// Check and normalize a base URL (no trailing slash).
pub(crate) fn base_url(s: &str) -> Result<String> {
    host_of(s)?;
    if s.contains(['?', '#']) {
        return Err(Error::Config(format!(
            "expected a base URL without query or fragment, found {s:?}"
        )));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// `Retry-After`: delay seconds or an HTTP date (RFC 9110 section 10.2.3).
pub(crate) fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

/// Undo URL (percent) encoding, as PCS uses for issuer chains in response headers.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    enclava_evidence::dcap::collateral::percent_decode(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn retry_after_forms() {
        let now = t("2024-01-01T00:00:00Z");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 31 Dec 2023 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn hosts_and_bases() {
        assert_eq!(
            host_of("https://KDSintf.amd.com/vcek/v1").unwrap(),
            "kdsintf.amd.com"
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080?x").unwrap(),
            "127.0.0.1:8080"
        );
        assert!(host_of("ftp://x").is_err());
        assert!(host_of("https:///path").is_err());
        assert_eq!(base_url("https://a.b/c/").unwrap(), "https://a.b/c");
        assert!(base_url("https://a.b/?q").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%0A%zz%4"), b"a b\n%zz%4".to_vec());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut p = Politeness::amd_kds();
        p.base_backoff = Duration::from_secs(1);
        p.max_backoff = Duration::from_secs(5);
        let mut h = Http::new(p);
        h.jitter = Arc::new(NoJitter);
        let got: Vec<u64> = (1..=5).map(|n| h.backoff(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 5, 5]);
        assert_eq!(h.backoff(200).as_secs(), 5);
        let j = RandomJitter::default();
        for _ in 0..100 {
            assert!(j.jitter(Duration::from_millis(10)) <= Duration::from_millis(10));
        }
        assert_eq!(j.jitter(Duration::ZERO), Duration::ZERO);
    }
}
