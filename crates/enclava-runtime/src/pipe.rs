//! A bounded in-memory stdout/stderr capture that truncates instead of trapping the guest.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Keeps the first `capacity` bytes written and counts the rest as truncated. Writes always
/// succeed from the guest's point of view.
#[derive(Debug, Clone)]
pub(crate) struct BoundedPipe {
    capacity: usize,
    inner: Arc<Mutex<Captured>>,
}

impl BoundedPipe {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedPipe {
            capacity,
            inner: Arc::new(Mutex::new(Captured::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A poisoned lock still holds consistent bytes (each write is one extend).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, data: &[u8]) {
        let mut c = self.lock();
        let room = self.capacity.saturating_sub(c.bytes.len());
        let take = room.min(data.len());
        c.bytes.extend_from_slice(data.get(..take).unwrap_or(&[]));
        if take < data.len() {
            c.truncated = true;
        }
    }

    /// The captured bytes and whether anything was dropped.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        let mut c = self.lock();
        (std::mem::take(&mut c.bytes), c.truncated)
    }
}

impl IsTerminal for BoundedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for BoundedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for BoundedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_prefix_and_flags_truncation() {
        let mut p = BoundedPipe::new(5);
        p.write(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(p.take(), (b"abc".to_vec(), false));
        let mut p = BoundedPipe::new(5);
        p.write(Bytes::from_static(b"abc")).unwrap();
        p.write(Bytes::from_static(b"defg")).unwrap();
        p.write(Bytes::from_static(b"h")).unwrap();
        assert_eq!(p.take(), (b"abcde".to_vec(), true));
    }
}
