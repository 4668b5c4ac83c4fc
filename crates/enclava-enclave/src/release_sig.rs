//! Step (d), before the key is touched: the release answer's signature.
//!
//! The vault signs its secure key release answer (RS256) and names the signing certificate in the
//! JWS `x5c` header: the release certificate, then the CA that issued it (the vault's local CA, the
//! same one its TLS certificate comes from). When the run pins that CA (`--ca-cert`), the answer is
//! accepted only if the release certificate was issued by a pinned CA certificate, is within its
//! validity period, carries the release-signing purpose
//! ([`enclava_token::eku::RELEASE_SIGNING_EKU`]; the TLS certificate of the same CA does not, so
//! the TLS key cannot sign release answers), and its key verifies the JWS: a release answer is
//! then authentic on its own, not only because it came over TLS. Without a pinned CA (system roots) the signature is still
//! checked against the `x5c` certificate, which proves integrity but not who signed.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_2048_8192_SHA384, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use der::{Decode, Encode};
use enclava_token::eku::{RELEASE_SIGNING_EKU, cert_has_eku};
use enclava_token::{Alg, Jwk};
use serde_json::Value;
use x509_cert::Certificate;

use crate::error::EnclaveError;

const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const RSA_SHA384: &str = "1.2.840.113549.1.1.12";

fn bad(reason: impl std::fmt::Display) -> EnclaveError {
    EnclaveError::Server(format!("release answer signature: {reason}"))
}

/// Verify a release answer JWS (see the module docs). `pinned_ca` holds the DER certificates the
/// run trusts for its vault; empty means none is pinned. `now_unix` is the current time.
pub fn verify_release_jws(
    jws: &str,
    pinned_ca: &[Vec<u8>],
    now_unix: u64,
) -> Result<(), EnclaveError> {
    let parts: Vec<&str> = jws.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(bad(format!(
            "expected a compact JWS of three parts, found {}",
            parts.len()
        )));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("expected a base64url JSON header, found something else"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(bad(format!("expected alg RS256, found {alg:?}")));
    }
    let x5c: Vec<String> = header
        .get("x5c")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or(Some(Vec::new()))
        .ok_or_else(|| bad("expected x5c entries as base64 strings, found other values"))?;
    let leaf_der = x5c
        .first()
        .and_then(|c| STANDARD.decode(c).ok())
        .ok_or_else(|| bad("expected the signing certificate in x5c (base64 DER), found none"))?;
    let leaf = Certificate::from_der(&leaf_der)
        .map_err(|e| bad(format!("x5c[0] is not a DER certificate: {e}")))?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad("expected a base64url signature, found undecodable text"))?;
    Jwk::from_x5c("RSA", x5c)
        .verify_signature(Alg::RS256, format!("{h}.{p}").as_bytes(), &signature)
        .map_err(|_| {
            bad("expected an RS256 signature by the x5c[0] key, found one that does not verify")
        })?;
    if pinned_ca.is_empty() {
        return Ok(());
    }
    let validity = &leaf.tbs_certificate.validity;
    let (from, until) = (
        validity.not_before.to_unix_duration().as_secs(),
        validity.not_after.to_unix_duration().as_secs(),
    );
    if now_unix < from || now_unix > until {
        return Err(bad(format!(
            "expected the release certificate to be valid now ({now_unix}), found validity {from}..{until} (unix seconds)"
        )));
    }
    if !pinned_ca
        .iter()
        .any(|ca| issued_by(&leaf, ca).unwrap_or(false))
    {
        return Err(bad(
            "expected a release certificate issued by the pinned CA (--ca-cert), found one that is not",
        ));
    }
    // The CA also issues the TLS certificate (and the attestation signer's): only a certificate
    // stating the release-signing purpose may sign release answers.
    if !cert_has_eku(&leaf_der, RELEASE_SIGNING_EKU) {
        return Err(bad(format!(
            "expected a release certificate with the release-signing purpose (extended key usage {RELEASE_SIGNING_EKU}), found one without it (a TLS or other certificate of the CA cannot sign release answers)"
        )));
    }
    Ok(())
}

/// Whether `ca_der` issued `leaf`: names match and the CA key verifies the leaf's signature.
fn issued_by(leaf: &Certificate, ca_der: &[u8]) -> Option<bool> {
    let ca = Certificate::from_der(ca_der).ok()?;
    if ca.tbs_certificate.subject != leaf.tbs_certificate.issuer {
        return Some(false);
    }
    let alg: &dyn VerificationAlgorithm = match leaf.signature_algorithm.oid.to_string().as_str() {
        ECDSA_SHA256 => &ECDSA_P256_SHA256_ASN1,
        ECDSA_SHA384 => &ECDSA_P384_SHA384_ASN1,
        RSA_SHA256 => &RSA_PKCS1_2048_8192_SHA256,
        RSA_SHA384 => &RSA_PKCS1_2048_8192_SHA384,
        _ => return Some(false),
    };
    let tbs = leaf.tbs_certificate.to_der().ok()?;
    let sig = leaf.signature.as_bytes()?;
    let ca_key = ca
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    Some(
        UnparsedPublicKey::new(alg, ca_key)
            .verify(&tbs, sig)
            .is_ok(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        ca_der: Vec<u8>,
        leaf_der: Vec<u8>,
        leaf_key: aws_lc_rs::signature::RsaKeyPair,
    }

    /// A P-256 CA and an RSA release certificate it issued (as the vault makes them).
    fn new_pki() -> Pki {
        new_pki_with(Some(RELEASE_SIGNING_EKU))
    }

    /// The same, with the leaf's purpose `eku` (`None`: serverAuth only, like a TLS certificate).
    fn new_pki_with(eku: Option<&str>) -> Pki {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test vault CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let mut leaf_params =
            rcgen::CertificateParams::new(vec!["vault.test".to_string()]).unwrap();
        match eku {
            Some(oid) => {
                leaf_params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
                    &[2, 5, 29, 37],
                    enclava_token::eku::eku_extension_value(oid).unwrap(),
                )]
            }
            None => {
                leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]
            }
        }
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        Pki {
            ca_der: ca.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&leaf_key.serialize_der())
                .unwrap(),
        }
    }

    fn sign(pki: &Pki, header: Value, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut sig = vec![0u8; pki.leaf_key.public_modulus_len()];
        pki.leaf_key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_release_signed_under_the_pinned_ca_verifies_and_nothing_else_does() {
        let pki = new_pki();
        let header = serde_json::json!({"alg": "RS256", "x5c": [STANDARD.encode(&pki.leaf_der), STANDARD.encode(&pki.ca_der)]});
        let jws = sign(&pki, header.clone(), r#"{"response":{}}"#);
        let pinned = vec![pki.ca_der.clone()];
        verify_release_jws(&jws, &pinned, now()).unwrap();
        verify_release_jws(&jws, &[], now()).unwrap();

        // Another payload under the same signature.
        let parts: Vec<&str> = jws.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(r#"{"response":{"evil":1}}"#),
            parts[2]
        );
        for pins in [&pinned[..], &[]] {
            let e = verify_release_jws(&forged, pins, now()).unwrap_err();
            assert!(e.to_string().contains("does not verify"), "{e}");
        }

        // A valid signature by a certificate some other CA issued.
        let other = new_pki();
        let theirs = sign(
            &other,
            serde_json::json!({"alg": "RS256", "x5c": [STANDARD.encode(&other.leaf_der), STANDARD.encode(&other.ca_der)]}),
            r#"{"response":{}}"#,
        );
        verify_release_jws(&theirs, &[], now()).unwrap();
        let e = verify_release_jws(&theirs, &pinned, now()).unwrap_err();
        assert!(e.to_string().contains("pinned CA"), "{e}");

        // Outside the certificate's validity.
        let e = verify_release_jws(&jws, &pinned, 1).unwrap_err();
        assert!(e.to_string().contains("valid now"), "{e}");

        // alg none, no x5c, garbage.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        assert!(verify_release_jws(&none, &pinned, now()).is_err());
        let bare = sign(&pki, serde_json::json!({"alg": "RS256"}), "{}");
        let e = verify_release_jws(&bare, &pinned, now()).unwrap_err();
        assert!(e.to_string().contains("x5c"), "{e}");
        for junk in ["", "a.b", "a.b.c", "..."] {
            assert!(
                verify_release_jws(junk, &pinned, now()).is_err(),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn a_certificate_of_the_pinned_ca_without_the_release_purpose_is_refused() {
        for eku in [None, Some(enclava_token::eku::ATTESTATION_TOKEN_EKU)] {
            let pki = new_pki_with(eku);
            let header = serde_json::json!({"alg": "RS256", "x5c": [STANDARD.encode(&pki.leaf_der), STANDARD.encode(&pki.ca_der)]});
            let jws = sign(&pki, header, r#"{"response":{}}"#);
            let e = verify_release_jws(&jws, std::slice::from_ref(&pki.ca_der), now()).unwrap_err();
            assert!(e.to_string().contains("release-signing purpose"), "{e}");
            // Without a pinned CA only integrity is checked (see the module docs).
            verify_release_jws(&jws, &[], now()).unwrap();
        }
    }
}
