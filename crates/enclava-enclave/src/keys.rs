//! Step (b): the run's ephemeral keys, the runtime data that carries them, and the report data
//! that binds the runtime data into the hardware evidence.
//!
//! ```text
//! runtime data = {"keys": [RSA-2048 JWK (kid, use "enc", key_ops ["encrypt"]),
//!                          P-256 JWK (kid "enclava-receipt-es256", use "sig", key_ops ["verify"])],
//!                 "workload-measurement": hex(measurement),
//!                 "nonce": challenge}                       (compact JSON, these exact bytes)
//! report data  = SHA-256(runtime data) || 32 zero bytes     (64 bytes)
//! ```
//!
//! The RSA key is what the vault wraps released keys to (the first RSA JWK with a kid that allows
//! encryption in the token's `x-ms-runtime.keys`); the P-256 key signs the run receipt. Both
//! private keys exist only in this process's memory and are dropped with [`EphemeralKeys`].

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384,
    OaepAlgorithm, OaepPrivateDecryptingKey, PrivateDecryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_token::{Es256Signer, Jwk, TokenSigner};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::EnclaveError;

/// The kid of the receipt-signing key in the runtime data.
pub const RECEIPT_KID: &str = "enclava-receipt-es256";

/// Length of the report data handed to the hardware.
pub const REPORT_DATA_LEN: usize = 64;

/// The OAEP hash of a secure key release `enc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OaepHash {
    Sha1,
    Sha256,
    Sha384,
}

impl OaepHash {
    /// From the release `enc` name (`CKM_RSA_AES_KEY_WRAP`, `RSA_AES_KEY_WRAP_256`,
    /// `RSA_AES_KEY_WRAP_384`).
    pub fn from_enc(enc: &str) -> Option<OaepHash> {
        match enc {
            "CKM_RSA_AES_KEY_WRAP" => Some(OaepHash::Sha1),
            "RSA_AES_KEY_WRAP_256" => Some(OaepHash::Sha256),
            "RSA_AES_KEY_WRAP_384" => Some(OaepHash::Sha384),
            _ => None,
        }
    }

    fn algorithm(self) -> &'static OaepAlgorithm {
        match self {
            OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
            OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
            OaepHash::Sha384 => &OAEP_SHA384_MGF1SHA384,
        }
    }
}

/// The run's private keys (memory only) and their public JWKs.
pub struct EphemeralKeys {
    rsa: OaepPrivateDecryptingKey,
    rsa_kid: String,
    rsa_public_der: Vec<u8>,
    rsa_jwk: Value,
    receipt: Es256Signer,
    receipt_jwk: Jwk,
}

impl std::fmt::Debug for EphemeralKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKeys")
            .field("rsa_kid", &self.rsa_kid)
            .finish_non_exhaustive()
    }
}

impl EphemeralKeys {
    /// A fresh RSA-2048 key pair (release wrapping) and P-256 key pair (receipt signing).
    pub fn generate() -> Result<EphemeralKeys, EnclaveError> {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| EnclaveError::internal("RSA-2048 key generation failed"))?;
        // The modulus and exponent for the JWK: through a PKCS#8 copy that is zeroized at once.
        let pkcs8 = Zeroizing::new(
            private
                .as_der()
                .map_err(|_| EnclaveError::internal("RSA key serialization failed"))?
                .as_ref()
                .to_vec(),
        );
        let pair = KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| EnclaveError::internal("RSA key re-parsing failed"))?;
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        drop(pair);
        drop(pkcs8);
        let rsa_public_der = private
            .public_key()
            .as_der()
            .map_err(|_| EnclaveError::internal("RSA public key serialization failed"))?
            .as_ref()
            .to_vec();
        let mut id = [0u8; 8];
        aws_lc_rs::rand::fill(&mut id)
            .map_err(|_| EnclaveError::internal("the system random generator failed"))?;
        let rsa_kid = format!("enclava-run-{}", hex::encode(id));
        let rsa_jwk = json!({
            "kty": "RSA",
            "kid": rsa_kid,
            "use": "enc",
            "key_ops": ["encrypt"],
            "n": URL_SAFE_NO_PAD.encode(strip_zeros(&components.n)),
            "e": URL_SAFE_NO_PAD.encode(strip_zeros(&components.e)),
        });
        let rsa = OaepPrivateDecryptingKey::new(private)
            .map_err(|_| EnclaveError::internal("RSA-OAEP key setup failed"))?;
        let receipt = Es256Signer::generate(RECEIPT_KID)
            .map_err(|e| EnclaveError::internal(format!("P-256 key generation failed: {e}")))?;
        let mut receipt_jwk = receipt
            .public_jwk()
            .map_err(|e| EnclaveError::internal(format!("P-256 public key export failed: {e}")))?;
        receipt_jwk.use_ = Some("sig".into());
        receipt_jwk.alg = Some("ES256".into());
        Ok(EphemeralKeys {
            rsa,
            rsa_kid,
            rsa_public_der,
            rsa_jwk,
            receipt,
            receipt_jwk,
        })
    }

    /// The kid of the wrapping key (what the vault names in `key_hsm.header.kid`).
    pub fn wrapping_kid(&self) -> &str {
        &self.rsa_kid
    }

    /// The wrapping key's public JWK as it appears in the runtime data.
    pub fn wrapping_jwk(&self) -> &Value {
        &self.rsa_jwk
    }

    /// The wrapping key's SubjectPublicKeyInfo (DER), e.g. to build a `key_hsm` in tests.
    pub fn wrapping_public_der(&self) -> &[u8] {
        &self.rsa_public_der
    }

    /// The receipt key's public JWK.
    pub fn receipt_jwk(&self) -> &Jwk {
        &self.receipt_jwk
    }

    pub(crate) fn receipt_signer(&self) -> &Es256Signer {
        &self.receipt
    }

    /// RSA-OAEP decryption with the wrapping key.
    pub(crate) fn oaep_decrypt(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, EnclaveError> {
        let mut out = Zeroizing::new(vec![0u8; self.rsa.min_output_size()]);
        let n = self
            .rsa
            .decrypt(hash.algorithm(), ciphertext, &mut out, None)
            .map_err(|_| {
                EnclaveError::Server(
                    "key_hsm: RSA-OAEP decryption with the run's key failed (the key was not wrapped to this run's key, or the ciphertext is corrupt)".into(),
                )
            })?
            .len();
        out.truncate(n);
        Ok(out)
    }

    /// The RSA modulus length in bytes (the RSA part of a `key_hsm` ciphertext).
    pub(crate) fn modulus_len(&self) -> usize {
        self.rsa.key_size_bytes()
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

#[derive(Serialize)]
struct RuntimeDataJson<'a> {
    keys: [&'a Value; 2],
    #[serde(rename = "workload-measurement")]
    workload_measurement: String,
    nonce: &'a str,
    /// The SPDM nonce the attached GPU evidence was taken with (composite attestation): the
    /// attestation service requires every GPU report to carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_nonce: Option<&'a str>,
}

/// The runtime data of one run: the exact JSON bytes that are hashed into the report data and
/// sent to the attestation service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeData {
    pub json: Vec<u8>,
}

impl RuntimeData {
    /// `{keys: [wrapping JWK, receipt JWK], workload-measurement, nonce}`.
    pub fn new(
        keys: &EphemeralKeys,
        measurement: &[u8; 48],
        nonce: &str,
    ) -> Result<RuntimeData, EnclaveError> {
        Self::with_gpu_nonce(keys, measurement, nonce, None)
    }

    /// [`RuntimeData::new`] plus `gpu_nonce` (hex) when GPU evidence is attached: the CPU
    /// evidence then commits to the nonce the GPUs answered.
    pub fn with_gpu_nonce(
        keys: &EphemeralKeys,
        measurement: &[u8; 48],
        nonce: &str,
        gpu_nonce: Option<&str>,
    ) -> Result<RuntimeData, EnclaveError> {
        let receipt = serde_json::to_value(&keys.receipt_jwk)
            .map_err(|e| EnclaveError::internal(format!("receipt JWK does not serialize: {e}")))?;
        let mut receipt = receipt;
        if let Some(o) = receipt.as_object_mut() {
            o.insert("key_ops".into(), json!(["verify"]));
        }
        let doc = RuntimeDataJson {
            keys: [&keys.rsa_jwk, &receipt],
            workload_measurement: hex::encode(measurement),
            nonce,
            gpu_nonce,
        };
        let json = serde_json::to_vec(&doc)
            .map_err(|e| EnclaveError::internal(format!("runtime data does not serialize: {e}")))?;
        Ok(RuntimeData { json })
    }

    /// The report data that binds these bytes: SHA-256 of them followed by 32 zero bytes.
    pub fn report_data(&self) -> [u8; REPORT_DATA_LEN] {
        report_data(&self.json)
    }
}

/// `SHA-256(runtime_data) || 32 zero bytes`.
pub fn report_data(runtime_data: &[u8]) -> [u8; REPORT_DATA_LEN] {
    let digest = Sha256::digest(runtime_data);
    let mut out = [0u8; REPORT_DATA_LEN];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_data_is_bound_by_the_report_data() {
        let keys = EphemeralKeys::generate().unwrap();
        let m = [0xabu8; 48];
        let rd = RuntimeData::new(&keys, &m, "challenge-1").unwrap();
        let v: Value = serde_json::from_slice(&rd.json).unwrap();
        assert_eq!(v["nonce"], "challenge-1");
        assert_eq!(v["workload-measurement"], hex::encode(m));
        assert_eq!(v["keys"][0]["kid"], keys.wrapping_kid());
        assert_eq!(v["keys"][0]["kty"], "RSA");
        assert_eq!(v["keys"][0]["key_ops"], json!(["encrypt"]));
        assert_eq!(v["keys"][0]["use"], "enc");
        assert_eq!(v["keys"][1]["kid"], RECEIPT_KID);
        assert_eq!(v["keys"][1]["crv"], "P-256");
        // No private member ever leaves.
        for k in v["keys"].as_array().unwrap() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(k.get(private).is_none(), "{private} in {k}");
            }
        }
        // n is the 2048-bit modulus.
        let n = URL_SAFE_NO_PAD
            .decode(v["keys"][0]["n"].as_str().unwrap())
            .unwrap();
        assert_eq!(n.len(), 256);

        let report = rd.report_data();
        assert_eq!(report[..32], Sha256::digest(&rd.json)[..]);
        assert_eq!(&report[32..], &[0u8; 32]);
        // Any change of the runtime data (another nonce, another measurement) changes it.
        let other_nonce = RuntimeData::new(&keys, &m, "challenge-2").unwrap();
        assert_ne!(other_nonce.report_data(), report);
        let other_m = RuntimeData::new(&keys, &[0xacu8; 48], "challenge-1").unwrap();
        assert_ne!(other_m.report_data(), report);
        // Another run's keys: another report data for the same nonce and measurement.
        let keys2 = EphemeralKeys::generate().unwrap();
        assert_ne!(keys2.wrapping_kid(), keys.wrapping_kid());
        assert_ne!(
            RuntimeData::new(&keys2, &m, "challenge-1")
                .unwrap()
                .report_data(),
            report
        );
    }

    #[test]
    fn enc_names() {
        assert_eq!(
            OaepHash::from_enc("CKM_RSA_AES_KEY_WRAP"),
            Some(OaepHash::Sha1)
        );
        assert_eq!(
            OaepHash::from_enc("RSA_AES_KEY_WRAP_256"),
            Some(OaepHash::Sha256)
        );
        assert_eq!(
            OaepHash::from_enc("RSA_AES_KEY_WRAP_384"),
            Some(OaepHash::Sha384)
        );
        assert_eq!(OaepHash::from_enc("rsa"), None);
    }
}
