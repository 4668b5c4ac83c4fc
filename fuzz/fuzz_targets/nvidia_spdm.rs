//! NVIDIA SPDM GET_MEASUREMENTS parsing and verification never panic: the input is read as a raw
//! report, as a hex report (the vectors' form), and as the SDKs' JSON evidence list. With only the
//! pinned root as "chain" nothing may verify.
#![no_main]

use enclava_evidence::nvidia::{self, roots, spdm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let mut reports = vec![data.to_vec()];
    if let Some(h) = unhex(data.trim_ascii()) {
        reports.push(h);
    }
    for r in &reports {
        if let Ok(p) = spdm::parse(r) {
            let _ = p.driver_version();
            let _ = p.vbios_version();
            assert_eq!(p.blocks.len(), p.number_of_blocks as usize);
        }
        assert!(nvidia::verify(r, roots::DEVICE_ROOT_PEM.as_bytes(), &[], None, at).is_err());
        // The report as its own "chain": any certificate-shaped input is exercised too.
        let _ = nvidia::verify(r, r, &[], None, at);
    }
    if let Ok(list) = nvidia::parse_evidence_list(data) {
        for d in &list {
            let _ = nvidia::verify_device(d, &[], None, at);
        }
    }
});

/// Hex text as bytes (the vectors' `.txt` form); `None` if it is not hex.
fn unhex(t: &[u8]) -> Option<Vec<u8>> {
    if t.len() % 2 != 0 {
        return None;
    }
    t.chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}
