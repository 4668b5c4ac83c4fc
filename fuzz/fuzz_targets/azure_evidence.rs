//! Azure CVM evidence JSON parsing and the full vTPM verification path never panic.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    if let Ok(ev) = enclava_evidence::azure::AzureEvidence::from_coco_json(data) {
        let _ =
            enclava_evidence::azure::verify_snp(&ev, &Default::default(), Some(b"challenge"), at);
        let _ = enclava_evidence::azure::verify_tdx(&ev, None, None, at);
    }
});
