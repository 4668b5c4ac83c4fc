//! CCEL table parsing and event-log replay never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = enclava_evidence::ccel::parse_ccel_table(data);
    if let Ok(log) = enclava_evidence::ccel::replay(data) {
        let _ = enclava_evidence::ccel::check_against([[0u8; 48]; 4], &log);
    }
});
