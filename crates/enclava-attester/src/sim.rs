//! The simulator: evidence signed with the published simulator key (`enclava_evidence::sim`).
//! **Not confidential**; only ever used when asked for explicitly (`--tee sim`).

use chrono::{DateTime, Utc};

/// Simulated evidence over `report_data` and `measurement`, stamped with the current time.
pub fn collect_sim(report_data: &[u8; 64], measurement: &[u8; 48]) -> Vec<u8> {
    collect_sim_at(report_data, measurement, Utc::now())
}

/// Simulated evidence stamped with `at`.
pub fn collect_sim_at(
    report_data: &[u8; 64],
    measurement: &[u8; 48],
    at: DateTime<Utc>,
) -> Vec<u8> {
    enclava_evidence::sim::generate(measurement, report_data, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sim_evidence_verifies_and_carries_the_inputs() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let rd = [7u8; 64];
        let m = [9u8; 48];
        let ev = collect_sim_at(&rd, &m, at);
        let claims = enclava_evidence::sim::verify(&ev, at).unwrap();
        assert_eq!(claims.tee, enclava_evidence::Tee::Sim);
        assert_eq!(claims.report_data, hex::encode(rd));
        assert_eq!(claims.measurement, hex::encode(m));
        assert!(claims.debug);
        let mut tampered = ev.clone();
        tampered[30] ^= 1;
        assert!(enclava_evidence::sim::verify(&tampered, at).is_err());
    }
}
