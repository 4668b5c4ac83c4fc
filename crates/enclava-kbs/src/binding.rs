//! Hash negotiation and the runtime-data binding.
//!
//! The attester puts `H(JCS({"tee-pubkey": JWK, "nonce": <challenge>, "additional-evidence":
//! <string>}))` into the TEE report's report data (SNP/TDX/SGX: 64 bytes; the digest is
//! zero-padded, or truncated when longer) or the vTPM quote's extraData. `H` is the algorithm
//! negotiated at `/auth` (`supported-hash-algorithms`; SHA-384 when the client names none).

use serde_json::{Value, json};
use sha2::Digest;

use crate::error::{ErrorKind, KbsError};

/// A hash algorithm of the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    pub fn parse(s: &str) -> Option<HashAlg> {
        match s.to_ascii_lowercase().as_str() {
            "sha256" | "sha-256" => Some(HashAlg::Sha256),
            "sha384" | "sha-384" => Some(HashAlg::Sha384),
            "sha512" | "sha-512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// Pick the algorithm: the server prefers SHA-384 (the protocol's default), then SHA-512, then
/// SHA-256, among those the client lists. An empty or absent list means the default, SHA-384.
/// Unknown names are ignored; a non-empty list with none known is refused.
pub fn negotiate(client: &[String]) -> Result<HashAlg, KbsError> {
    if client.is_empty() {
        return Ok(HashAlg::Sha384);
    }
    let known: Vec<HashAlg> = client.iter().filter_map(|s| HashAlg::parse(s)).collect();
    for pref in [HashAlg::Sha384, HashAlg::Sha512, HashAlg::Sha256] {
        if known.contains(&pref) {
            return Ok(pref);
        }
    }
    Err(KbsError::new(
        ErrorKind::UnsupportedHashAlgorithm,
        format!(
            "supported-hash-algorithms: expected one of sha256, sha384, sha512, found {:?}",
            client.iter().take(8).collect::<Vec<_>>()
        ),
    ))
}

/// The canonical runtime-data document the binding hashes.
pub fn runtime_data_document(tee_pubkey: &Value, nonce: &str, additional_evidence: &str) -> String {
    crate::jcs::canonicalize(&json!({
        "tee-pubkey": tee_pubkey,
        "nonce": nonce,
        "additional-evidence": additional_evidence,
    }))
}

/// The binding digest (not yet fitted to a report field).
pub fn binding_digest(
    alg: HashAlg,
    tee_pubkey: &Value,
    nonce: &str,
    additional_evidence: &str,
) -> Vec<u8> {
    alg.digest(runtime_data_document(tee_pubkey, nonce, additional_evidence).as_bytes())
}

/// `digest` fitted to a field of `len` bytes: zero-padded, or truncated.
pub fn fit(digest: &[u8], len: usize) -> Vec<u8> {
    let mut v = digest.to_vec();
    v.resize(len, 0);
    v
}

/// Check the report's field against the digest (fitted to the field's length). Constant-time:
/// the field is public, but one comparison routine for every binding keeps reviews simple.
pub fn check(digest: &[u8], field: &[u8]) -> Result<(), KbsError> {
    use subtle_eq::ct_eq;
    let expected = fit(digest, field.len());
    if field.is_empty() || !ct_eq(&expected, field) {
        return Err(KbsError::new(
            ErrorKind::BindingMismatch,
            format!(
                "runtime-data binding: expected the report data to be {} (hash of the JCS runtime data, fitted to {} bytes), found {}",
                hex::encode(&expected),
                field.len(),
                hex::encode(field)
            ),
        ));
    }
    Ok(())
}

mod subtle_eq {
    /// Byte-slice equality whose time does not depend on where the slices differ.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(&[]).unwrap(), HashAlg::Sha384);
        assert_eq!(
            negotiate(&["sha256".into(), "sha512".into()]).unwrap(),
            HashAlg::Sha512
        );
        assert_eq!(negotiate(&["sha256".into()]).unwrap(), HashAlg::Sha256);
        let e = negotiate(&["md5".into()]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnsupportedHashAlgorithm);
    }

    #[test]
    fn document_is_canonical_and_fitted() {
        let jwk = json!({"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":"X","y":"Y"});
        let doc = runtime_data_document(&jwk, "n", "");
        assert_eq!(
            doc,
            r#"{"additional-evidence":"","nonce":"n","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"X","y":"Y"}}"#
        );
        let d = binding_digest(HashAlg::Sha384, &jwk, "n", "");
        assert_eq!(d.len(), 48);
        let field = fit(&d, 64);
        assert!(check(&d, &field).is_ok());
        let mut bad = field.clone();
        bad[0] ^= 1;
        assert_eq!(
            check(&d, &bad).unwrap_err().kind,
            ErrorKind::BindingMismatch
        );
        // SHA-512 truncated to a 32-byte field.
        let d = binding_digest(HashAlg::Sha512, &jwk, "n", "");
        assert!(check(&d, &d[..32]).is_ok());
    }
}
