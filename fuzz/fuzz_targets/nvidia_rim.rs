//! NVIDIA RIM (signed SWID tag) parsing, canonicalization and signature verification never panic
//! or hang on any input; a RIM that verifies must chain to the pinned RIM root, which no mutated
//! input outside the seeds can reach, so only the absence of panics is checked.
#![no_main]

use enclava_evidence::nvidia::rim;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = chrono::DateTime::from_timestamp(1_717_200_000, 0).unwrap_or_default();
    if let Ok(r) = rim::parse(data) {
        for m in &r.measurements {
            assert!(!m.alternatives.is_empty());
            assert!(m.alternatives.iter().all(|a| a.len() == m.size));
        }
        let _ = rim::verify(&r, at);
    }
});
