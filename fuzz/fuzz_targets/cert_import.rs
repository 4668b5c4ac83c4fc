//! Certificate import (enclava-certs): a PFX or PEM bundle from a request body never panics,
//! and whatever it accepts is consistent: the key is the first certificate's key, and the bundle
//! written back reads back to the same key and chain.
#![no_main]

use enclava_certs::{ParsedCertificate, matches_key, pem, pfx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for pw in [None, Some("pw")] {
        if let Ok(kc) = pfx::parse(data, pw) {
            let leaf = kc.chain.first().expect("a parsed bundle has a certificate");
            assert!(matches_key(leaf, &kc.key_pkcs8).expect("parsed key and leaf"));
            let again = pfx::build(&kc.key_pkcs8, &kc.chain, pw).expect("rebuild");
            let back = pfx::parse(&again, pw).expect("rebuilt PFX reads back");
            assert_eq!(back.chain, kc.chain);
        }
    }
    if let Ok(kc) = pem::parse_bundle(data) {
        let leaf = kc.chain.first().expect("a parsed bundle has a certificate");
        assert!(matches_key(leaf, &kc.key_pkcs8).expect("parsed key and leaf"));
        let text = pem::build(Some(&kc.key_pkcs8), &kc.chain);
        let back = pem::parse_bundle(text.as_bytes()).expect("rebuilt PEM reads back");
        assert_eq!(back.chain, kc.chain);
        assert_eq!(*back.key_pkcs8, *kc.key_pkcs8);
    }
    let _ = ParsedCertificate::from_der(data);
});
