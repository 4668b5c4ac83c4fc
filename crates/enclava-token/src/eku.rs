//! Enclava's own certificate purposes (extended key usages).
//!
//! Every certificate the local CA issues carries exactly one purpose, so a key certified for one
//! job cannot be presented for another: the TLS server certificate has `serverAuth` only, the
//! secure key release signer has [`RELEASE_SIGNING_EKU`] only, the attestation token signer has
//! [`ATTESTATION_TOKEN_EKU`] only. A verifier that pins the CA also checks the purpose (e.g.
//! `enclava run` refuses a release answer whose certificate lacks [`RELEASE_SIGNING_EKU`], such as
//! one signed with the TLS key).
//!
//! The OIDs live under a UUID arc (`2.25.<decimal of a random UUID>`, ITU-T X.667), which needs no
//! registration and cannot collide. Arcs above 2^32 are legal but some OID types (`const-oid`)
//! cannot hold them, so this module encodes and compares the DER bytes itself.

use x509_cert::Certificate;
use x509_cert::der::{Decode, Tag, Tagged};

/// Enclava's OID arc: `2.25.` + the decimal of UUID 6ab1fd3d-1b59-46fe-8d1f-b65f160b623f.
pub const ENCLAVA_OID_ARC: &str = "2.25.141822340388173409185213159553387684415";
/// Extended key usage of the secure key release answer signer.
pub const RELEASE_SIGNING_EKU: &str = "2.25.141822340388173409185213159553387684415.1";
/// Extended key usage of the attestation token signer (the `x5c` in `/certs`).
pub const ATTESTATION_TOKEN_EKU: &str = "2.25.141822340388173409185213159553387684415.2";
/// `id-ce-extKeyUsage`.
const EXT_KEY_USAGE: &str = "2.5.29.37";

/// The DER content octets (no tag, no length) of a dotted OID; `None` when it is not one
/// (fewer than two arcs, a non-number, a first arc above 2, an arc above 2^128).
pub fn oid_content(dotted: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| a.parse::<u128>().ok())
        .collect::<Option<_>>()?;
    let (first, second, rest) = match arcs.as_slice() {
        [f, s, rest @ ..] if *f <= 2 && (*f == 2 || *s < 40) => (*f, *s, rest),
        _ => return None,
    };
    let mut out = Vec::new();
    base128(first.checked_mul(40)?.checked_add(second)?, &mut out);
    for a in rest {
        base128(*a, &mut out);
    }
    Some(out)
}

fn base128(mut v: u128, out: &mut Vec<u8>) {
    let mut groups = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        groups.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.extend(groups.iter().rev());
}

/// The DER of an extKeyUsage extension value (`SEQUENCE OF OBJECT IDENTIFIER`) holding `dotted`,
/// for certificate issuers (rcgen's own EKU type only takes 64-bit arcs).
pub fn eku_extension_value(dotted: &str) -> Option<Vec<u8>> {
    let oid = oid_content(dotted)?;
    let mut tlv = vec![0x06];
    der_len(oid.len(), &mut tlv);
    tlv.extend(oid);
    let mut out = vec![0x30];
    der_len(tlv.len(), &mut out);
    out.extend(tlv);
    Some(out)
}

fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let b: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|x| *x == 0)
            .collect();
        out.push(0x80 | b.len() as u8);
        out.extend(b);
    }
}

/// The extended key usages of a certificate as DER OID content octets; `None` when it has no
/// extKeyUsage extension (or it does not decode).
fn eku_contents(cert: &Certificate) -> Option<Vec<Vec<u8>>> {
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id.to_string() == EXT_KEY_USAGE)?;
    let items: Vec<x509_cert::der::Any> = Vec::from_der(ext.extn_value.as_bytes()).ok()?;
    items
        .iter()
        .map(|a| (a.tag() == Tag::ObjectIdentifier).then(|| a.value().to_vec()))
        .collect()
}

/// Whether the DER certificate's extKeyUsage lists `dotted`. A certificate without the extension
/// does NOT qualify: the purpose must be stated, not merely unrestricted.
pub fn cert_has_eku(cert_der: &[u8], dotted: &str) -> bool {
    let (Ok(cert), Some(want)) = (Certificate::from_der(cert_der), oid_content(dotted)) else {
        return false;
    };
    eku_contents(&cert).is_some_and(|list| list.contains(&want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_oids() {
        // id-kp-serverAuth 1.3.6.1.5.5.7.3.1
        assert_eq!(
            oid_content("1.3.6.1.5.5.7.3.1").unwrap(),
            vec![0x2b, 6, 1, 5, 5, 7, 3, 1]
        );
        // X.667's example: 2.25.329800735698586629295641978511506172918
        assert_eq!(
            hex::encode(oid_content("2.25.329800735698586629295641978511506172918").unwrap()),
            "6983f09da7ebcfdee0c7a1a7b2c0948cc8f9d776"
        );
        for bad in ["", "1", "3.1", "1.40", "1.x.3", "1..2"] {
            assert!(oid_content(bad).is_none(), "{bad}");
        }
        assert_ne!(
            oid_content(RELEASE_SIGNING_EKU),
            oid_content(ATTESTATION_TOKEN_EKU)
        );
    }

    #[test]
    fn finds_the_purpose_in_a_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["x.test".to_string()]).unwrap();
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 37],
            eku_extension_value(RELEASE_SIGNING_EKU).unwrap(),
        )];
        let cert = p.self_signed(&key).unwrap();
        assert!(cert_has_eku(cert.der(), RELEASE_SIGNING_EKU));
        assert!(!cert_has_eku(cert.der(), ATTESTATION_TOKEN_EKU));

        let mut tls = rcgen::CertificateParams::new(vec!["x.test".to_string()]).unwrap();
        tls.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let tls = tls.self_signed(&key).unwrap();
        assert!(!cert_has_eku(tls.der(), RELEASE_SIGNING_EKU));
        assert!(cert_has_eku(tls.der(), "1.3.6.1.5.5.7.3.1"));

        let none = rcgen::CertificateParams::new(vec!["x.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(!cert_has_eku(none.der(), RELEASE_SIGNING_EKU));
        assert!(!cert_has_eku(b"junk", RELEASE_SIGNING_EKU));
    }
}
