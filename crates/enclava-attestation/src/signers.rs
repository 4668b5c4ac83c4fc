//! Signed policy uploads: who may sign an attestation policy.
//!
//! MAA accepts a policy upload as a JWS whose payload is `{"AttestationPolicy": base64url(text)}`,
//! unsigned (`alg: none`) or signed with RS256 by the certificate in `x5c`. An operator who
//! configures trusted policy signers (certificates, PEM) gets MAA's "isolated" behaviour: every
//! upload must be signed, the signature must verify with the `x5c` leaf, and the leaf must be one of
//! the trusted certificates (compared byte for byte: a signer is pinned, not chained). Without
//! trusted signers the caller's `policies/manage` role is the authorization: unsigned uploads are
//! accepted, and a signed one must still verify (a broken signature is never ignored).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::Decode;
use enclava_policy::maa::PolicyUpload;
use enclava_token::{Alg, Jwk};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::error::AttestError;

/// `1.2.840.113549.1.1.1` rsaEncryption.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// The certificates trusted to sign policy uploads (DER), possibly none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySigners {
    certs: Vec<Vec<u8>>,
}

/// A verified signature: who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySigner {
    /// Hex SHA-256 of the signer's certificate (DER).
    pub cert_sha256: String,
    /// The signer as MAA's `x-ms-policy-signer` shows it: an RSA JWK (`n`, `e`) with the
    /// certificate in `x5c`.
    pub jwk: serde_json::Value,
}

/// `n` and `e` of a PKCS#1 RSAPublicKey (the subject public key of an rsaEncryption SPKI).
fn rsa_modulus_exponent(rsa_public_key: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use der::asn1::UintRef;
    use der::{Reader, SliceReader};
    let mut r = SliceReader::new(rsa_public_key).ok()?;
    r.sequence(|seq| {
        let n = UintRef::decode(seq)?;
        let e = UintRef::decode(seq)?;
        Ok((n.as_bytes().to_vec(), e.as_bytes().to_vec()))
    })
    .ok()
}

fn invalid(reason: String) -> AttestError {
    AttestError::InvalidPolicySignature(reason)
}

impl PolicySigners {
    /// Trusted signers from PEM text holding one or more `CERTIFICATE` blocks (RSA keys: MAA
    /// signs policies with RS256).
    pub fn from_pem(pem: &[u8]) -> Result<PolicySigners, AttestError> {
        let config = |m: String| AttestError::Config(format!("policy signers: {m}"));
        let certs = enclava_evidence::snp::certs_from_pem_or_der(pem)
            .map_err(|e| config(format!("expected PEM certificates: {e}")))?;
        for (i, der) in certs.iter().enumerate() {
            let c =
                Certificate::from_der(der).map_err(|e| config(format!("certificate #{i}: {e}")))?;
            let alg = c
                .tbs_certificate
                .subject_public_key_info
                .algorithm
                .oid
                .to_string();
            if alg != RSA_ENCRYPTION {
                return Err(config(format!(
                    "certificate #{i}: expected an RSA key (RS256 policy signatures), found key algorithm {alg}"
                )));
            }
        }
        Ok(PolicySigners { certs })
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Check an upload against these signers: `Ok(None)` for an accepted unsigned upload,
    /// `Ok(Some(signer))` for a verified signature. Errors: `policy_signature_required` (unsigned
    /// while signers are configured), `invalid_policy_signature` (no usable `x5c`, or the
    /// signature does not verify), `untrusted_policy_signer` (verifies, but with a certificate
    /// that is not trusted).
    pub fn check(&self, upload: &PolicyUpload) -> Result<Option<PolicySigner>, AttestError> {
        if upload.alg == "none" {
            return if self.is_empty() {
                Ok(None)
            } else {
                Err(AttestError::PolicySignatureRequired)
            };
        }
        let leaf_b64 = upload.x5c.first().ok_or_else(|| {
            invalid("expected the signer's certificate in the x5c header, found none".into())
        })?;
        let leaf = STANDARD.decode(leaf_b64).map_err(|e| {
            invalid(format!(
                "x5c[0]: expected a base64 DER certificate, found undecodable text ({e})"
            ))
        })?;
        let cert = Certificate::from_der(&leaf).map_err(|e| {
            invalid(format!(
                "x5c[0]: expected a DER X.509 certificate, found {e}"
            ))
        })?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let alg = spki.algorithm.oid.to_string();
        if alg != RSA_ENCRYPTION {
            return Err(invalid(format!(
                "x5c[0]: expected an RSA key for RS256, found key algorithm {alg}"
            )));
        }
        Jwk::from_x5c("RSA", vec![leaf_b64.clone()])
            .verify_signature(Alg::RS256, upload.signing_input.as_bytes(), &upload.signature)
            .map_err(|_| {
                invalid(
                    "expected an RS256 signature by the x5c[0] key over the header and payload, found one that does not verify"
                        .into(),
                )
            })?;
        let (n, e) =
            rsa_modulus_exponent(spki.subject_public_key.raw_bytes()).ok_or_else(|| {
                invalid("x5c[0]: expected a PKCS#1 RSA public key, found an unreadable one".into())
            })?;
        let b64u = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let signer = PolicySigner {
            cert_sha256: hex::encode(Sha256::digest(&leaf)),
            jwk: serde_json::json!({
                "kty": "RSA",
                "n": b64u(&n),
                "e": b64u(&e),
                "x5c": [leaf_b64],
            }),
        };
        if !self.is_empty() && !self.certs.contains(&leaf) {
            return Err(AttestError::UntrustedPolicySigner {
                cert_sha256: signer.cert_sha256,
            });
        }
        Ok(Some(signer))
    }
}
