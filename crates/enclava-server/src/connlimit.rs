//! Connection cap with eviction of idle connections.
//!
//! Every accepted TCP connection takes a slot before anything else happens (before the TLS
//! handshake), and gives it back when it closes: the number of open connections, and so of
//! sockets, never exceeds `max_connections`, which is below the process's file-descriptor limit
//! (a server that runs out of descriptors cannot even accept the operator's unseal call).
//!
//! When every slot is taken, a new connection evicts the oldest connection that has no request
//! in flight: one that is still in its TLS handshake, still sending (or dripping) its request
//! head, or idle between keep-alive requests. A slow-loris attacker holding many half-sent
//! requests therefore only ever holds slots until the next real client arrives, and a real
//! client, who sends its request right after connecting, gets served. Connections with a request
//! in flight are never evicted; when all of them are busy the newcomer is refused (plain HTTP:
//! a `503` with `Retry-After: 1` written without reading anything; TLS: closed, since an answer
//! would need a full handshake) and counted in `enclava_connections_total{event="refused"}`.
//!
//! Evicting is done through the connection's I/O: the next read of an evicted connection fails,
//! so hyper (or the TLS handshake) stops and the socket closes.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::Metrics;

/// The body a plain-HTTP client over the cap is told before the socket closes.
const REFUSAL_BODY: &str = r#"{"error":{"code":"TooManyConnections","message":"the server is at its connection limit: retry later"}}"#;

fn refusal() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    )
}

/// State shared by a connection's stream and its service.
#[derive(Debug, Default)]
struct Shared {
    /// Requests in flight; -1 once evicted (a connection is only evicted at 0).
    busy: AtomicIsize,
    /// The task last blocked reading this connection (woken on eviction).
    waker: Mutex<Option<Waker>>,
}

impl Shared {
    fn evicted(&self) -> bool {
        self.busy.load(Ordering::Acquire) < 0
    }

    /// Evict if idle (no request in flight); whether it was.
    fn try_evict(&self) -> bool {
        if self
            .busy
            .compare_exchange(0, -1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let w = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = w {
            w.wake();
        }
        true
    }

    /// A request starts; false when the connection was evicted just before.
    fn begin(&self) -> bool {
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= 0).then_some(b + 1)
            })
            .is_ok()
    }

    fn end(&self) {
        let _ = self
            .busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b > 0).then_some(b - 1)
            });
    }
}

#[derive(Debug, Default)]
struct Slots {
    next_id: u64,
    /// Open connections by id; ids grow, so the first entry is the oldest.
    open: BTreeMap<u64, Arc<Shared>>,
}

/// The connection table (one per server).
pub struct ConnLimiter {
    max: usize,
    slots: Mutex<Slots>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ConnLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLimiter")
            .field("max", &self.max)
            .field("open", &self.open())
            .finish()
    }
}

impl ConnLimiter {
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(ConnLimiter {
            max: max.max(1),
            slots: Mutex::new(Slots::default()),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections currently holding a slot.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for a new connection, evicting the oldest idle one when full; `None`: refuse.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut s = self.lock();
        if s.open.len() >= self.max {
            let victim = s
                .open
                .iter()
                .find(|(_, c)| c.try_evict())
                .map(|(id, _)| *id);
            match victim {
                Some(id) => {
                    s.open.remove(&id);
                    self.metrics.connection_event("evicted");
                }
                None => {
                    drop(s);
                    self.metrics.connection_event("refused");
                    return None;
                }
            }
        }
        let id = s.next_id;
        s.next_id += 1;
        let shared = Arc::new(Shared::default());
        s.open.insert(id, shared.clone());
        self.metrics.connections_open.set(s.open.len() as i64);
        drop(s);
        self.metrics.connection_event("accepted");
        Some(Slot {
            id,
            shared,
            limiter: self.clone(),
        })
    }
}

/// A held slot; released on drop (when the connection's stream is dropped).
struct Slot {
    id: u64,
    shared: Arc<Shared>,
    limiter: Arc<ConnLimiter>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.limiter.lock();
        s.open.remove(&self.id);
        self.limiter
            .metrics
            .connections_open
            .set(s.open.len() as i64);
    }
}

/// A connection's byte stream, holding its slot; reads fail once the connection is evicted.
pub struct Guarded<S> {
    inner: S,
    slot: Slot,
}

fn evicted_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection evicted: the server is at its connection limit",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = self.slot.shared.clone();
        if shared.evicted() {
            return Poll::Ready(Err(evicted_error()));
        }
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_pending() {
            {
                let mut w = shared.waker.lock().unwrap_or_else(|p| p.into_inner());
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
            }
            // Evicted between the check above and storing the waker: nobody will wake us.
            if shared.evicted() {
                return Poll::Ready(Err(evicted_error()));
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connection's service: marks the connection busy while a request is in flight.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Ends a request on drop (also when the request future is cancelled).
struct InFlight(Option<Arc<Shared>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.end();
        }
    }
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R> + 'static,
    S::Future: Send + 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let guard = InFlight(self.shared.begin().then(|| self.shared.clone()));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(guard);
            r
        })
    }
}

/// The acceptor: takes a slot (or refuses) before handing the connection on.
#[derive(Clone)]
pub struct LimitAcceptor {
    limiter: Arc<ConnLimiter>,
    /// Whether refused connections get the plain-HTTP 503 (not over TLS).
    plain_http: bool,
}

impl LimitAcceptor {
    pub fn new(limiter: Arc<ConnLimiter>, plain_http: bool) -> Self {
        LimitAcceptor {
            limiter,
            plain_http,
        }
    }
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Guarded<TcpStream>;
    type Service = Tracked<S>;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Some(slot) = self.limiter.admit() else {
            if self.plain_http {
                // Best effort, never waits: the socket buffer of a fresh connection is empty.
                let _ = stream.try_write(refusal().as_bytes());
                close_refused(stream);
            } else {
                drop(stream);
            }
            return std::future::ready(Err(io::Error::other(
                "refused: the server is at its connection limit",
            )));
        };
        let _ = stream.set_nodelay(true);
        let tracked = Tracked {
            inner: service,
            shared: slot.shared.clone(),
        };
        std::future::ready(Ok((
            Guarded {
                inner: stream,
                slot,
            },
            tracked,
        )))
    }
}

/// Refused connections closing at once: beyond this many, the socket is dropped without
/// lingering (a flood of refusals must not hold descriptors).
const MAX_LINGERING_REFUSALS: usize = 64;
static LINGERING_REFUSALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Close a refused plain-HTTP connection so that the client reads its 503: closing a socket
/// with unread request bytes makes the kernel answer with a reset, which can destroy the answer
/// before the client reads it. So: half-close, discard what the client sends for up to a
/// second (at most 64 KiB), then close. Bounded by [`MAX_LINGERING_REFUSALS`].
fn close_refused(stream: TcpStream) {
    let lingering = LINGERING_REFUSALS.fetch_add(1, Ordering::AcqRel);
    if lingering >= MAX_LINGERING_REFUSALS || tokio::runtime::Handle::try_current().is_err() {
        LINGERING_REFUSALS.fetch_sub(1, Ordering::AcqRel);
        drop(stream);
        return;
    }
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let drain = async {
            let mut buf = [0u8; 4096];
            let mut seen = 0usize;
            while seen < 64 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen += n,
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
        LINGERING_REFUSALS.fetch_sub(1, Ordering::AcqRel);
    });
}

/// The default cap: the soft file-descriptor limit minus headroom for the database, log and
/// data files, the listener and connections being refused (at most 4096, at least 16).
pub fn default_max_connections() -> usize {
    let nofile = soft_nofile().unwrap_or(1024);
    nofile.saturating_sub(128).clamp(16, 4096) as usize
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux; `None` elsewhere).
fn soft_nofile() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_soft_nofile(&text)
}

fn parse_soft_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_limits() {
        let t = "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max cpu time              unlimited            unlimited            seconds   \n\
                 Max open files            1024                 524288               files     \n";
        assert_eq!(parse_soft_nofile(t), Some(1024));
        assert_eq!(parse_soft_nofile("nothing"), None);
        assert_eq!(
            parse_soft_nofile("Max open files  unlimited unlimited files"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn full_table_evicts_the_oldest_idle_and_refuses_when_all_are_busy() {
        let l = ConnLimiter::new(2, Arc::new(Metrics::new()));
        let a = l.admit().unwrap();
        let b = l.admit().unwrap();
        assert!(a.shared.begin());
        // a is busy, b idle: the newcomer evicts b.
        let c = l.admit().unwrap();
        assert!(b.shared.evicted());
        assert!(!b.shared.begin(), "an evicted connection starts no request");
        assert_eq!(l.open(), 2);
        assert!(c.shared.begin());
        // Both busy: refused.
        assert!(l.admit().is_none());
        a.shared.end();
        drop(b);
        assert_eq!(l.open(), 2);
        let d = l.admit().unwrap();
        assert!(a.shared.evicted());
        drop((a, c, d));
        assert_eq!(l.open(), 0);
    }
}
