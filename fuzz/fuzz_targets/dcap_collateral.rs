//! DCAP collateral loading never panics: the input is read as dcap-qvl collateral JSON, as one and as
//! two PCS files (TCB info / QE identity JSON, PEM chains, CRLs in DER/PEM/hex), and the loaded TCB
//! info and QE identity are parsed. Loading verifies nothing, so verifying a quote that cannot parse
//! (the empty one) must still fail.
#![no_main]

use enclava_evidence::dcap::{self, Collateral, EnclaveIdentity, TcbInfo};
use libfuzzer_sys::fuzz_target;

fn exercise(c: &Collateral) {
    let _ = c.tcb_info();
    let _ = c.qe_identity();
    let at = chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default();
    assert!(dcap::verify_tdx(&[], Some(c), at).is_err());
}

fuzz_target!(|data: &[u8]| {
    let _ = TcbInfo::parse(data);
    let _ = EnclaveIdentity::parse(data);
    let _ = dcap::collateral::raw_member(data, "tcbInfo");
    if let Ok(c) = Collateral::from_dcap_qvl_json(data) {
        exercise(&c);
    }
    if let Ok(c) = Collateral::from_files(&[("a", data)]) {
        exercise(&c);
    }
    let (a, b) = data.split_at(data.len() / 2);
    if let Ok(c) = Collateral::from_files(&[("a", a), ("b", b)]) {
        exercise(&c);
    }
});
