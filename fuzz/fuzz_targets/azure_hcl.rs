//! HCL report parsing and runtime-data / AK extraction never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(hcl) = enclava_evidence::azure::parse_hcl_report(data) {
        let _ = hcl.check_binding();
        let _ = hcl.runtime_data();
        let _ = hcl.ak_pub();
        let _ = hcl.snp_vmpl();
    }
});
