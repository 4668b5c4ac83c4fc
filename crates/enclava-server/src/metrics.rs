//! Prometheus metrics (prometheus-client): requests and latency by route template and operation,
//! errors by route and code, and the seal state.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub operation: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub route: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub route: String,
    pub code: String,
}

fn new_histogram() -> Histogram {
    // 0.5 ms .. ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    pub errors: Family<ErrorLabels, Counter>,
    /// 1 while sealed (or uninitialized), 0 when unsealed.
    pub sealed: Gauge,
    /// 1 once initialized.
    pub initialized: Gauge,
    pub audit_entries: Counter<u64, AtomicU64>,
    pub audit_batches: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("enclava");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            new_histogram as fn() -> Histogram,
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        let sealed = Gauge::default();
        let initialized = Gauge::default();
        let audit_entries: Counter<u64, AtomicU64> = Counter::default();
        let audit_batches: Counter<u64, AtomicU64> = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, operation, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template and operation",
            latency.clone(),
        );
        registry.register(
            "http_errors",
            "HTTP error answers by route template and error code",
            errors.clone(),
        );
        registry.register(
            "vault_sealed",
            "1 while the vault is sealed or uninitialized",
            sealed.clone(),
        );
        registry.register(
            "vault_initialized",
            "1 once the vault is initialized",
            initialized.clone(),
        );
        registry.register(
            "audit_entries",
            "Audit entries appended",
            audit_entries.clone(),
        );
        registry.register(
            "audit_batches",
            "Audit group commits",
            audit_batches.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            errors,
            sealed,
            initialized,
            audit_entries,
            audit_batches,
        }
    }

    pub fn set_seal_state(&self, initialized: bool, sealed: bool) {
        self.initialized.set(i64::from(initialized));
        self.sealed.set(i64::from(sealed));
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "/keys/{name}/create".into(),
                operation: "CreateKey".into(),
                method: "POST".into(),
                status: 200,
            })
            .inc();
        m.set_seal_state(true, false);
        let text = m.encode();
        assert!(text.contains("enclava_http_requests_total{route=\"/keys/{name}/create\",operation=\"CreateKey\",method=\"POST\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("enclava_vault_sealed 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
