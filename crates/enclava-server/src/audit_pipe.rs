//! Group commit for audit entries: request handlers send entries over a channel; one background
//! task drains whatever is queued (up to a batch limit), appends the batch in a single durable
//! call, then acknowledges every waiter. A mutating request's response waits for its ack.
//!
//! A batch holding only queued entries (nobody waits for them) lingers up to [`LINGER`] for more
//! before it is written: under load this turns many small commits (each a disk flush) into few
//! larger ones. A durable entry ends the linger at once, so no waiter is delayed by it.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// Appends a batch durably (called on a blocking thread). Errors are reported to every waiter.
pub type AppendFn<E> = Arc<dyn Fn(Vec<E>) -> Result<(), String> + Send + Sync>;

/// Acknowledgement channel of one durable append.
type Ack = oneshot::Sender<Result<(), String>>;

/// One queued item: an entry, or (`None`) a flush marker that only waits for what is ahead of it.
type Item<E> = (Option<E>, Option<Ack>);

/// The sending side, cheap to clone.
pub struct AuditSink<E> {
    tx: mpsc::Sender<Item<E>>,
}

impl<E> Clone for AuditSink<E> {
    fn clone(&self) -> Self {
        AuditSink {
            tx: self.tx.clone(),
        }
    }
}

/// Largest batch appended in one call.
pub const MAX_BATCH: usize = 512;

/// Longest a batch of queued (not awaited) entries waits for company before it is written.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

impl<E: Send + 'static> AuditSink<E> {
    /// Start the background writer. `on_batch(n)` is called after each successful append.
    pub fn start(
        append: AppendFn<E>,
        on_batch: impl Fn(usize) + Send + Sync + 'static,
    ) -> (AuditSink<E>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Item<E>>(8192);
        let handle = tokio::spawn(async move {
            let mut buf = Vec::with_capacity(MAX_BATCH);
            loop {
                let n = rx.recv_many(&mut buf, MAX_BATCH).await;
                if n == 0 {
                    break; // every sender dropped
                }
                let deadline = tokio::time::Instant::now() + LINGER;
                while buf.len() < MAX_BATCH && buf.iter().all(|(_, ack)| ack.is_none()) {
                    let room = MAX_BATCH - buf.len();
                    match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, room)).await {
                        Ok(0) | Err(_) => break, // closed, or the linger is over
                        Ok(_) => {}
                    }
                }
                let (entries, waiters): (Vec<Option<E>>, Vec<_>) = buf.drain(..).unzip();
                let entries: Vec<E> = entries.into_iter().flatten().collect();
                let count = entries.len();
                let append = append.clone();
                let result = match tokio::task::spawn_blocking(move || append(entries)).await {
                    Ok(r) => r,
                    Err(e) => Err(format!("audit writer task failed: {e}")),
                };
                if result.is_ok() && count > 0 {
                    on_batch(count);
                } else if let Err(e) = &result {
                    tracing::error!(error = %e, entries = count, "audit append failed");
                }
                for w in waiters.into_iter().flatten() {
                    let _ = w.send(result.clone());
                }
            }
        });
        (AuditSink { tx }, handle)
    }

    /// Queue an entry and wait until it is durable.
    pub async fn append_durable(&self, entry: E) -> Result<(), String> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.tx
            .send((Some(entry), Some(ack_tx)))
            .await
            .map_err(|_| "audit writer stopped".to_string())?;
        ack_rx
            .await
            .map_err(|_| "audit writer stopped before acknowledging".to_string())?
    }

    /// Queue an entry without waiting (reads). Falls back to waiting for queue space.
    pub async fn append(&self, entry: E) -> Result<(), String> {
        self.tx
            .send((Some(entry), None))
            .await
            .map_err(|_| "audit writer stopped".to_string())
    }

    /// Wait (from a blocking thread, not on the async runtime) until every entry queued before
    /// this call is durable. The audit read and verify routes call it, so an auditor sees every
    /// request answered before the read, even those whose entries were only queued.
    pub fn flush_blocking(&self) -> Result<(), String> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.tx
            .blocking_send((None, Some(ack_tx)))
            .map_err(|_| "audit writer stopped".to_string())?;
        ack_rx
            .blocking_recv()
            .map_err(|_| "audit writer stopped before acknowledging".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn batches_and_acks() {
        let seen: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let s2 = seen.clone();
        let append: AppendFn<u32> = Arc::new(move |b| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            s2.lock().unwrap().push(b);
            Ok(())
        });
        let (sink, _h) = AuditSink::start(append, |_| {});
        let mut tasks = Vec::new();
        for i in 0..100u32 {
            let s = sink.clone();
            tasks.push(tokio::spawn(async move { s.append_durable(i).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let batches = seen.lock().unwrap();
        let total: usize = batches.iter().map(Vec::len).sum();
        assert_eq!(total, 100);
        assert!(
            batches.len() < 100,
            "expected group commit, got {} batches",
            batches.len()
        );
    }

    #[tokio::test]
    async fn queued_entries_linger_but_durable_ones_do_not() {
        let seen: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let s2 = seen.clone();
        let append: AppendFn<u32> = Arc::new(move |b| {
            s2.lock().unwrap().push(b);
            Ok(())
        });
        let (sink, _h) = AuditSink::start(append, |_| {});
        // Queued entries sent close together are written as one batch.
        for i in 0..10u32 {
            sink.append(i).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_micros(100)).await;
        }
        // A durable entry is acknowledged well before a linger would end, and takes the queued
        // entries with it (the chain order is the order sent).
        let started = std::time::Instant::now();
        sink.append(10).await.unwrap();
        sink.append_durable(11).await.unwrap();
        assert!(started.elapsed() < LINGER * 20, "{:?}", started.elapsed());
        let batches = seen.lock().unwrap().clone();
        let flat: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(flat, (0..12).collect::<Vec<_>>());
        assert!(
            batches.len() <= 3,
            "expected lingering batches, got {batches:?}"
        );
    }

    #[tokio::test]
    async fn flush_waits_for_queued_entries() {
        let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
        let s2 = seen.clone();
        let append: AppendFn<u32> = Arc::new(move |b| {
            s2.lock().unwrap().extend(b);
            Ok(())
        });
        let (sink, _h) = AuditSink::start(append, |_| {});
        for i in 0..3u32 {
            sink.append(i).await.unwrap();
        }
        let s3 = sink.clone();
        tokio::task::spawn_blocking(move || s3.flush_blocking())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn failures_reach_waiters() {
        let append: AppendFn<u32> = Arc::new(|_| Err("disk full".into()));
        let (sink, _h) = AuditSink::start(append, |_| {});
        assert_eq!(sink.append_durable(1).await, Err("disk full".to_string()));
    }
}
