//! The one PEM reader (`enclava_evidence::pem`) never panics, and what it accepts round-trips:
//! every block it returns, re-encoded, reads back to the same label and contents. Seeded by
//! scripts/fuzz.sh from the vectors' PEM and DER files.
#![no_main]

use enclava_evidence::pem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pem::is_pem(data);
    let _ = pem::der_sequences(data);
    let _ = pem::pem_or_der(data, "CERTIFICATE");
    let _ = pem::private_key(data);
    if let Ok(blocks) = pem::parse_all(data) {
        for b in blocks {
            let again = pem::encode(b.label, &b.contents);
            let back = pem::parse_all(again.as_bytes()).expect("re-encoded block reads back");
            assert_eq!(back.len(), 1);
            assert_eq!(
                back.first().map(|x| (x.label, &x.contents)),
                Some((b.label, &b.contents))
            );
        }
    }
});
