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

/// `event`: accepted, evicted (an idle connection made room), refused (over the cap, all busy).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    pub event: String,
}

/// `limit`: which rate limit answered 429 (see `ratelimit`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: String,
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
    /// Connections holding a slot of the connection cap.
    pub connections_open: Gauge,
    pub connections: Family<ConnLabels, Counter>,
    pub rate_limited: Family<LimitLabels, Counter>,
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
        let connections_open = Gauge::default();
        let connections = Family::<ConnLabels, Counter>::default();
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "connections_open",
            "Open client connections (each holds a slot of the connection cap)",
            connections_open.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted, evicted (idle, to make room) or refused (over the cap)",
            connections.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests answered 429 by a rate limit",
            rate_limited.clone(),
        );
        Metrics {
            registry,
            connections_open,
            connections,
            rate_limited,
            requests,
            latency,
            errors,
            sealed,
            initialized,
            audit_entries,
            audit_batches,
        }
    }

    pub fn connection_event(&self, event: &str) {
        self.connections
            .get_or_create(&ConnLabels {
                event: event.to_string(),
            })
            .inc();
    }

    pub fn count_rate_limited(&self, limit: &str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limit: limit.to_string(),
            })
            .inc();
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
