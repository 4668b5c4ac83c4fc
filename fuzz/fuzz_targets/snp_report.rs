//! SEV-SNP report parsing and verification never panic: the input is read as a report, as PEM/DER
//! certificates, and as a 1184-byte report followed by an extended-report certificate table. With
//! no VCEK among the endorsements nothing may verify; the cached and cold paths must agree.
#![no_main]

use enclava_evidence::snp::{self, Endorsements, SnpVerifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let _ = snp::parse_report(data);
    let _ = snp::certs_from_pem_or_der(data);
    let _ = snp::crls_from_pem_or_der(data);

    // No endorsements, and the pinned Milan ARK alone: both must fail.
    assert!(snp::verify(data, &Endorsements::default(), at).is_err());
    let ark = snp::certs_from_pem_or_der(snp::roots::ARK_MILAN_PEM.as_bytes()).unwrap_or_default();
    let fixed = Endorsements {
        certs_der: ark,
        crls_der: Vec::new(),
    };
    assert!(snp::verify(data, &fixed, at).is_err());

    // Report + certificate table, as an extended report delivers them (real certificates can
    // reach this path, so only the absence of panics is checked).
    let (report, table) = data.split_at(data.len().min(0x4A0));
    if let Ok(mut e) = snp::endorsements_from_cert_table(table) {
        let _ = snp::verify_chain(&e, at);
        let verifier = SnpVerifier::new();
        let cold = snp::verify(report, &e, at);
        let warm = verifier.verify(report, &e, at);
        assert_eq!(cold.is_ok(), warm.is_ok());
        e.crls_der = e.certs_der.clone();
        let _ = verifier.verify(report, &e, at);
    }
});
