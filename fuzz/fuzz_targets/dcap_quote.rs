//! DCAP quote parsing and verification never panic: the input is read as a TDX and as an SGX quote,
//! without collateral, through the cold path and a caching verifier, which must agree. A quote that
//! parses must report a length within the input and keep parsing the same when its padding goes.
#![no_main]

use enclava_evidence::dcap::{self, DcapVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default();
    if let Ok(q) = dcap::parse_quote(data) {
        assert!(q.len <= data.len());
        assert!(q.signed.len() <= q.len);
        let again = dcap::parse_quote(&data[..q.len]).ok();
        assert_eq!(again.as_ref(), Some(&q));
    }
    let verifier = DcapVerifier::new();
    let cold_tdx = dcap::verify_tdx(data, None, at);
    let warm_tdx = verifier.verify_tdx(data, None, at);
    assert_eq!(cold_tdx.is_ok(), warm_tdx.is_ok());
    let cold_sgx = dcap::verify_sgx(data, None, at);
    let warm_sgx = verifier.verify_sgx(data, None, at);
    assert_eq!(cold_sgx.is_ok(), warm_sgx.is_ok());
    // A quote is either TDX or SGX, never both.
    assert!(!(cold_tdx.is_ok() && cold_sgx.is_ok()));
});
