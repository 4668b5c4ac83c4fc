//! Step (e): the signed run receipt.
//!
//! The receipt is signed ES256 by the run's P-256 key, whose public JWK (kid
//! `enclava-receipt-es256`) is in the attested runtime data. The attestation
//! token (included in the receipt) therefore vouches for the key, and the key for the receipt: a
//! verifier checks the token against the attestation service's JWKS, then
//! [`verify_receipt`] checks the signature with the key from the token's `x-ms-runtime.keys` and
//! that the receipt's measurement and token id are the token's.
//!
//! File format: `{"receipt": {...}, "jws": "<compact JWS whose payload is the receipt>"}`.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_token::Header;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::{InputRecord, OutputRecord};
use crate::error::EnclaveError;
use crate::keys::{EphemeralKeys, RECEIPT_KID};

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Format version (1).
    pub version: u32,
    pub workload: WorkloadInfo,
    /// `sim`, `snp`, `tdx`, ...
    pub tee: String,
    pub simulated: bool,
    pub attestation: AttestationInfo,
    /// Ids of the keys released to the run.
    pub keys_released: Vec<String>,
    pub inputs: Vec<InputRecord>,
    pub outputs: Vec<OutputRecord>,
    /// The workload's exit code (0: outputs were produced).
    pub exit_code: i32,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: String,
    /// Wall-clock milliseconds of the workload's instantiation and execution (compilation excluded).
    pub workload_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    pub name: String,
    /// The workload measurement (SHA-384 over module and canonical manifest), hex.
    pub measurement: String,
    pub module_sha256: String,
    /// SHA-256 of the canonical manifest, hex.
    pub manifest_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationInfo {
    pub issuer: String,
    /// The token's `jti`.
    pub jti: String,
    /// The attestation token itself (not secret: released keys are wrapped to a key only the run
    /// held).
    pub token: String,
}

/// A receipt with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    pub receipt: Receipt,
    pub jws: String,
}

/// Signs `receipt` with the run's receipt key.
pub fn sign_receipt(receipt: Receipt, keys: &EphemeralKeys) -> Result<SignedReceipt, EnclaveError> {
    let claims: Map<String, Value> = match serde_json::to_value(&receipt) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(EnclaveError::internal(
                "the receipt does not serialize to an object",
            ));
        }
    };
    let signer = keys.receipt_signer();
    let mut header = Header::for_signer(signer, None);
    header.typ = Some("enclava-receipt+jwt".into());
    let jws = enclava_token::jwt::sign_compact(&header, &claims, signer)
        .map_err(|e| EnclaveError::internal(format!("signing the receipt failed: {e}")))?;
    Ok(SignedReceipt { receipt, jws })
}

/// Why a receipt did not verify.
fn bad(msg: impl Into<String>) -> EnclaveError {
    EnclaveError::BadInput(format!("receipt does not verify: {}", msg.into()))
}

/// Verifies a receipt against the (already verified) claims of its attestation token: the
/// signature with the receipt key of `x-ms-runtime.keys`, the JWS payload equal to the receipt,
/// the measurement equal to the runtime data's `workload-measurement`, the jti equal to the
/// token's.
pub fn verify_receipt(
    signed: &SignedReceipt,
    token_claims: &Map<String, Value>,
) -> Result<(), EnclaveError> {
    let runtime = token_claims
        .get("x-ms-runtime")
        .ok_or_else(|| bad("the token has no x-ms-runtime claim"))?;
    let jwk = runtime
        .get("keys")
        .and_then(Value::as_array)
        .and_then(|ks| {
            ks.iter()
                .find(|k| k.get("kid").and_then(Value::as_str) == Some(RECEIPT_KID))
        })
        .ok_or_else(|| {
            bad(format!(
                "the token's x-ms-runtime.keys has no key {RECEIPT_KID}"
            ))
        })?;
    let coord = |m: &str| {
        jwk.get(m)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .filter(|b| b.len() == 32)
            .ok_or_else(|| bad(format!("the receipt key has no 32-byte {m}")))
    };
    let mut point = vec![0x04];
    point.extend(coord("x")?);
    point.extend(coord("y")?);

    let mut parts = signed.jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the jws is not a compact JWS"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the JWS header is not base64url JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(bad("expected a JWS with alg ES256"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad("the signature is not base64url"))?;
    let signing_input_len = h.len() + 1 + p.len();
    let signing_input = signed
        .jws
        .get(..signing_input_len)
        .ok_or_else(|| bad("the jws is malformed"))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(signing_input.as_bytes(), &sig)
        .map_err(|_| bad("the ES256 signature does not verify with the attested receipt key"))?;
    let payload: Receipt = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the JWS payload is not a receipt"))?;
    if payload != signed.receipt {
        return Err(bad("the receipt differs from the signed payload"));
    }
    let m = runtime
        .get("workload-measurement")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !m.eq_ignore_ascii_case(&signed.receipt.workload.measurement) {
        return Err(bad(format!(
            "workload measurement: the token attests {m:?}, the receipt says {:?}",
            signed.receipt.workload.measurement
        )));
    }
    let jti = token_claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or("");
    if jti != signed.receipt.attestation.jti {
        return Err(bad(format!(
            "token id: the token is {jti:?}, the receipt names {:?}",
            signed.receipt.attestation.jti
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::RuntimeData;

    fn sample(measurement: &str) -> Receipt {
        Receipt {
            version: 1,
            workload: WorkloadInfo {
                name: "w".into(),
                measurement: measurement.into(),
                module_sha256: "00".repeat(32),
                manifest_sha256: "11".repeat(32),
            },
            tee: "sim".into(),
            simulated: true,
            attestation: AttestationInfo {
                issuer: "https://127.0.0.1:1".into(),
                jti: "j1".into(),
                token: "t".into(),
            },
            keys_released: vec!["https://v/keys/k/1".into()],
            inputs: vec![],
            outputs: vec![],
            exit_code: 0,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            workload_ms: 5,
        }
    }

    #[test]
    fn receipts_verify_only_with_the_attested_key() {
        let keys = EphemeralKeys::generate().unwrap();
        let m = [3u8; 48];
        let rd = RuntimeData::new(&keys, &m, "n").unwrap();
        let runtime: Value = serde_json::from_slice(&rd.json).unwrap();
        let mut claims = Map::new();
        claims.insert("x-ms-runtime".into(), runtime);
        claims.insert("jti".into(), "j1".into());

        let signed = sign_receipt(sample(&hex::encode(m)), &keys).unwrap();
        verify_receipt(&signed, &claims).unwrap();
        // Through the file format.
        let text = serde_json::to_string(&signed).unwrap();
        let back: SignedReceipt = serde_json::from_str(&text).unwrap();
        verify_receipt(&back, &claims).unwrap();

        // Edited receipt.
        let mut edited = signed.clone();
        edited.receipt.exit_code = 1;
        assert!(verify_receipt(&edited, &claims).is_err());
        // Signed by another run's key.
        let other = EphemeralKeys::generate().unwrap();
        let forged = sign_receipt(sample(&hex::encode(m)), &other).unwrap();
        let e = verify_receipt(&forged, &claims).unwrap_err().to_string();
        assert!(e.contains("signature"), "{e}");
        // Another token.
        let mut c2 = claims.clone();
        c2.insert("jti".into(), "j2".into());
        assert!(verify_receipt(&signed, &c2).is_err());
        // A receipt claiming another measurement than the attested one.
        let lie = sign_receipt(sample(&"ff".repeat(48)), &keys).unwrap();
        let e = verify_receipt(&lie, &claims).unwrap_err().to_string();
        assert!(e.contains("measurement"), "{e}");
    }
}
