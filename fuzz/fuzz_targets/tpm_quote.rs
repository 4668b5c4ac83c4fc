//! TPM quote decoding (bincode / JSON), TPMS_ATTEST parsing and PCR digest checks never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = enclava_evidence::azure::parse_tpms_attest(data);
    if let Ok(q) = enclava_evidence::azure::TpmQuote::from_json_or_bincode(data) {
        let _ = q.nonce();
        let _ = q.check_pcr_digest();
        let ak = enclava_evidence::azure::AkPub {
            n: vec![0xc5; 256],
            e: vec![1, 0, 1],
        };
        let _ = q.verify_signature(&ak);
    }
});
