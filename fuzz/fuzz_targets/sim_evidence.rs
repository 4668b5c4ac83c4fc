//! Simulated evidence verification never panics (and never verifies a random input).
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let _ = enclava_evidence::sim::verify(data, at);
});
