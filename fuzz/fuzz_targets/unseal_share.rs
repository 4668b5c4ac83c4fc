//! Unseal share decoding (`ensh1-III-TTT-<hex>-<checksum>`, reachable anonymously through
//! `POST /operator/unseal`) and what the vault does with a decoded share before the threshold
//! (commitment check, interpolation) never panic.
#![no_main]

use enclava_vault::seal::shamir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(share) = shamir::Share::decode(text) {
        // A decoded share re-encodes to an equivalent share.
        let again = shamir::Share::decode(&share.encode()).expect("re-encoded share decodes");
        assert_eq!(again, share);
        let c = shamir::commitment(&[0u8; 32], &share);
        assert!(shamir::matches_commitment(&[0u8; 32], &share, &c));
        assert!(!shamir::matches_commitment(&[0u8; 32], &share, &c[..16]));
        let _ = shamir::interpolate_at(std::slice::from_ref(&share), 0);
        let _ = shamir::combine(&[share.clone(), share]);
    }
});
