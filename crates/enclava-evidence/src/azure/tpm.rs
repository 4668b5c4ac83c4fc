//! TPM 2.0 quotes from the Azure vTPM: `TPMS_ATTEST` parsing, the attestation key (AK), the
//! RSASSA-PKCS1-v1_5 SHA-256 signature, the nonce (extraData) and the PCR digest.
//!
//! `TPMS_ATTEST` (TPM 2.0 Part 2, big endian): magic `0xff544347` (TPM_GENERATED_VALUE), type
//! `0x8018` (TPM_ST_ATTEST_QUOTE), qualifiedSigner (TPM2B_NAME), extraData (TPM2B_DATA: the
//! nonce), clockInfo {clock u64, resetCount u32, restartCount u32, safe u8}, firmwareVersion u64,
//! then TPMS_QUOTE_INFO {TPML_PCR_SELECTION {count u32, {hash u16, sizeofSelect u8,
//! pcrSelect[sizeofSelect]}*}, pcrDigest TPM2B_DIGEST}.

use std::collections::BTreeMap;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use serde_json::Value;
use sha2::Digest;

use super::AzureError;

pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
pub const TPM_ALG_SHA256: u16 = 0x000b;
pub const TPM_ALG_RSASSA: u16 = 0x0014;
/// kid of the vTPM attestation key in the HCL runtime data.
pub const HCL_AK_KID: &str = "HCLAkPub";

/// An RSA attestation public key (big-endian modulus and exponent, no leading zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkPub {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

fn strip_leading_zeros(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default().to_vec()
}

fn b64url_any(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .ok()
}

impl AkPub {
    /// From an RSA JWK (`kty` "RSA", base64url `n` and `e`).
    pub fn from_jwk(jwk: &Value) -> Result<Self, AzureError> {
        let missing = |m: &str| AzureError::MissingAk(m.to_string());
        if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
            return Err(missing("HCLAkPub is not an RSA key (kty != \"RSA\")"));
        }
        let field = |name: &str| -> Result<Vec<u8>, AzureError> {
            let s = jwk
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&format!("HCLAkPub has no \"{name}\"")))?;
            let raw = b64url_any(s)
                .ok_or_else(|| missing(&format!("HCLAkPub \"{name}\" is not base64url")))?;
            let v = strip_leading_zeros(&raw);
            if v.is_empty() {
                return Err(missing(&format!("HCLAkPub \"{name}\" is zero")));
            }
            Ok(v)
        };
        let n = field("n")?;
        let e = field("e")?;
        if !(256..=1024).contains(&n.len()) {
            return Err(missing(&format!(
                "HCLAkPub modulus is {} bits, expected 2048 to 8192",
                n.len() * 8
            )));
        }
        Ok(AkPub { n, e })
    }

    /// The `HCLAkPub` entry of the runtime data's `keys`.
    pub fn from_runtime_data(runtime: &Value) -> Result<Self, AzureError> {
        let keys = runtime
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| AzureError::MissingAk("runtime data has no \"keys\" array".into()))?;
        let jwk = keys
            .iter()
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(HCL_AK_KID))
            .ok_or_else(|| {
                AzureError::MissingAk("runtime data has no key with kid \"HCLAkPub\"".into())
            })?;
        Self::from_jwk(jwk)
    }

    /// From a DER SubjectPublicKeyInfo (e.g. `tpm2_readpublic -f pem` output, decoded).
    pub fn from_spki_der(der_bytes: &[u8]) -> Result<Self, AzureError> {
        use der::{Decode, Reader};
        let bad = |m: String| AzureError::MissingAk(m);
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der_bytes)
            .map_err(|e| bad(format!("AK is not a SubjectPublicKeyInfo: {e}")))?;
        // rsaEncryption
        if spki.algorithm.oid.to_string() != "1.2.840.113549.1.1.1" {
            return Err(bad("AK is not an RSA key".into()));
        }
        let rsa = spki.subject_public_key.raw_bytes();
        let mut reader = der::SliceReader::new(rsa).map_err(|e| bad(format!("AK: {e}")))?;
        let (n, e) = reader
            .sequence(|r| {
                let n = der::asn1::UintRef::decode(r)?;
                let e = der::asn1::UintRef::decode(r)?;
                Ok((n.as_bytes().to_vec(), e.as_bytes().to_vec()))
            })
            .map_err(|e| bad(format!("AK RSAPublicKey: {e}")))?;
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&n),
            "e": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&e),
        });
        Self::from_jwk(&jwk)
    }

    /// The key as a JWK (kid HCLAkPub).
    pub fn to_jwk(&self) -> Value {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        serde_json::json!({
            "kid": HCL_AK_KID,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }

    /// RSASSA-PKCS1-v1_5 SHA-256 verification of `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), AzureError> {
        let key = RsaPublicKeyComponents {
            n: self.n.as_slice(),
            e: self.e.as_slice(),
        };
        key.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            .map_err(|_| {
                AzureError::TpmQuoteSignature(
                    "TPM quote is not signed (RSASSA-PKCS1-v1_5 SHA-256) by the attestation key"
                        .into(),
                )
            })
    }
}

/// A TPM quote as the Azure attesters ship it: the marshalled TPMS_ATTEST (`message`), the raw
/// RSA signature (or a marshalled TPMT_SIGNATURE) and the SHA-256 PCR values of the selection,
/// in selection order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmQuote {
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
    pub pcrs: Vec<Vec<u8>>,
}

/// One TPMS_PCR_SELECTION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    pub hash_alg: u16,
    /// Selected PCR indices, ascending.
    pub pcrs: Vec<u32>,
}

/// A parsed TPMS_ATTEST of type quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmsAttest {
    pub qualified_signer: Vec<u8>,
    pub extra_data: Vec<u8>,
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: bool,
    pub firmware_version: u64,
    pub pcr_selections: Vec<PcrSelection>,
    pub pcr_digest: Vec<u8>,
}

struct Be<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Be<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AzureError> {
        if self.b.len() < n {
            return Err(AzureError::MalformedTpmQuote(format!(
                "{} truncated: needed {n} more bytes, {} left",
                self.what,
                self.b.len()
            )));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], AzureError> {
        // `take` returned exactly N bytes.
        Ok(self.take(N)?.try_into().unwrap_or([0; N]))
    }
    fn u8(&mut self) -> Result<u8, AzureError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, AzureError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, AzureError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, AzureError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn tpm2b(&mut self) -> Result<&'a [u8], AzureError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// Parse a marshalled TPMS_ATTEST that must be a quote.
pub fn parse_tpms_attest(message: &[u8]) -> Result<TpmsAttest, AzureError> {
    let bad = |m: String| AzureError::MalformedTpmQuote(m);
    let mut r = Be {
        b: message,
        what: "TPMS_ATTEST",
    };
    let magic = r.u32()?;
    if magic != TPM_GENERATED_VALUE {
        return Err(bad(format!(
            "TPMS_ATTEST magic is {magic:#010x}, expected 0xff544347"
        )));
    }
    let ty = r.u16()?;
    if ty != TPM_ST_ATTEST_QUOTE {
        return Err(bad(format!(
            "TPMS_ATTEST type is {ty:#06x}, expected 0x8018 (quote)"
        )));
    }
    let qualified_signer = r.tpm2b()?.to_vec();
    let extra_data = r.tpm2b()?.to_vec();
    let clock = r.u64()?;
    let reset_count = r.u32()?;
    let restart_count = r.u32()?;
    let safe = match r.u8()? {
        0 => false,
        1 => true,
        other => return Err(bad(format!("clockInfo.safe is {other}, expected 0 or 1"))),
    };
    let firmware_version = r.u64()?;
    let count = r.u32()?;
    // TPM2 implementations cap the selection list at HASH_COUNT (a handful of banks).
    if count > 16 {
        return Err(bad(format!(
            "TPML_PCR_SELECTION count is {count}, at most 16 supported"
        )));
    }
    let mut pcr_selections = Vec::new();
    for _ in 0..count {
        let hash_alg = r.u16()?;
        let size = r.u8()? as usize;
        let bitmap = r.take(size)?;
        let mut pcrs = Vec::new();
        for (byte_index, byte) in bitmap.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    pcrs.push((byte_index * 8 + bit) as u32);
                }
            }
        }
        pcr_selections.push(PcrSelection { hash_alg, pcrs });
    }
    let pcr_digest = r.tpm2b()?.to_vec();
    if !r.b.is_empty() {
        return Err(bad(format!(
            "{} trailing bytes after TPMS_ATTEST",
            r.b.len()
        )));
    }
    Ok(TpmsAttest {
        qualified_signer,
        extra_data,
        clock,
        reset_count,
        restart_count,
        safe,
        firmware_version,
        pcr_selections,
        pcr_digest,
    })
}

impl TpmQuote {
    /// The raw RSA signature: `signature` as is, or the signature inside a marshalled
    /// TPMT_SIGNATURE {sigAlg RSASSA, hash SHA-256, TPM2B}.
    pub fn raw_signature(&self, ak: &AkPub) -> Result<Vec<u8>, AzureError> {
        if self.signature.len() == ak.n.len() {
            return Ok(self.signature.clone());
        }
        let mut r = Be {
            b: &self.signature,
            what: "TPMT_SIGNATURE",
        };
        let sig_alg = r.u16()?;
        let hash = r.u16()?;
        if sig_alg != TPM_ALG_RSASSA || hash != TPM_ALG_SHA256 {
            return Err(AzureError::TpmQuoteSignature(format!(
                "signature scheme is {sig_alg:#06x}/{hash:#06x}, expected RSASSA (0x0014) with SHA-256 (0x000b)"
            )));
        }
        let sig = r.tpm2b()?;
        if !r.b.is_empty() {
            return Err(AzureError::MalformedTpmQuote(
                "trailing bytes after TPMT_SIGNATURE".into(),
            ));
        }
        Ok(sig.to_vec())
    }

    /// Check the signature over `message` with the attestation key.
    pub fn verify_signature(&self, ak: &AkPub) -> Result<(), AzureError> {
        let sig = self.raw_signature(ak)?;
        ak.verify(&self.message, &sig)
    }

    /// Parse the signed message.
    pub fn attest(&self) -> Result<TpmsAttest, AzureError> {
        parse_tpms_attest(&self.message)
    }

    /// The nonce (extraData).
    pub fn nonce(&self) -> Result<Vec<u8>, AzureError> {
        Ok(self.attest()?.extra_data)
    }

    /// `nonce_mismatch` unless extraData equals `expected`.
    pub fn check_nonce(&self, expected: &[u8]) -> Result<(), AzureError> {
        let found = self.nonce()?;
        if found != expected {
            return Err(AzureError::NonceMismatch {
                expected: hex::encode(expected),
                found: hex::encode(&found),
            });
        }
        Ok(())
    }

    /// Check pcrDigest = SHA-256 of the selected PCR values (in selection order) and return the
    /// attested values by PCR index. Only the SHA-256 bank is supported.
    pub fn check_pcr_digest(&self) -> Result<BTreeMap<u32, Vec<u8>>, AzureError> {
        let attest = self.attest()?;
        let mut indices = Vec::new();
        for sel in &attest.pcr_selections {
            if sel.hash_alg != TPM_ALG_SHA256 {
                return Err(AzureError::MalformedTpmQuote(format!(
                    "PCR bank {:#06x} selected, only SHA-256 (0x000b) is supported",
                    sel.hash_alg
                )));
            }
            indices.extend(sel.pcrs.iter().copied());
        }
        if indices.len() != self.pcrs.len() {
            return Err(AzureError::MalformedTpmQuote(format!(
                "the quote selects {} PCRs but {} PCR values were supplied",
                indices.len(),
                self.pcrs.len()
            )));
        }
        let mut hasher = sha2::Sha256::new();
        let mut out = BTreeMap::new();
        for (index, value) in indices.iter().zip(&self.pcrs) {
            if value.len() != 32 {
                return Err(AzureError::MalformedTpmQuote(format!(
                    "PCR {index} value is {} bytes, expected 32 (SHA-256)",
                    value.len()
                )));
            }
            hasher.update(value);
            if out.insert(*index, value.clone()).is_some() {
                return Err(AzureError::MalformedTpmQuote(format!(
                    "PCR {index} selected twice"
                )));
            }
        }
        let digest = hasher.finalize();
        if digest[..] != attest.pcr_digest[..] {
            return Err(AzureError::PcrDigestMismatch {
                expected: hex::encode(&attest.pcr_digest),
                found: hex::encode(digest),
            });
        }
        Ok(out)
    }

    /// Parse the bincode encoding of the az-cvm-vtpm `Quote {signature, message, pcrs}` (u64
    /// little-endian lengths).
    pub fn from_bincode(bytes: &[u8]) -> Result<Self, AzureError> {
        let bad = |m: String| AzureError::MalformedTpmQuote(m);
        let mut rest = bytes;
        let len = |rest: &mut &[u8]| -> Result<usize, AzureError> {
            let Some((a, tail)) = rest.split_first_chunk::<8>() else {
                return Err(bad("bincode quote truncated".into()));
            };
            *rest = tail;
            let n = u64::from_le_bytes(*a);
            if n > rest.len() as u64 {
                return Err(bad(format!(
                    "bincode length {n} exceeds the {} bytes left",
                    rest.len()
                )));
            }
            Ok(n as usize)
        };
        let vec = |rest: &mut &[u8]| -> Result<Vec<u8>, AzureError> {
            let n = len(rest)?;
            let (h, t) = rest.split_at(n);
            *rest = t;
            Ok(h.to_vec())
        };
        let signature = vec(&mut rest)?;
        let message = vec(&mut rest)?;
        let count = {
            let Some((a, tail)) = rest.split_first_chunk::<8>() else {
                return Err(bad("bincode quote truncated".into()));
            };
            rest = tail;
            u64::from_le_bytes(*a)
        };
        // `pcrs` is `Vec<[u8; 32]>` (count, then 32 bytes each) in the az-cvm-vtpm versions that
        // produced the published quotes, `Vec<Vec<u8>>` (each with its own length) in others.
        let mut pcrs = Vec::new();
        if count.checked_mul(32) == Some(rest.len() as u64) {
            pcrs = rest.chunks(32).map(<[u8]>::to_vec).collect();
            rest = &[];
        } else {
            // Each PCR needs at least its 8-byte length.
            if count > (rest.len() / 8) as u64 {
                return Err(bad(format!("bincode PCR count {count} is too large")));
            }
            for _ in 0..count {
                pcrs.push(vec(&mut rest)?);
            }
        }
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} trailing bytes after the bincode quote",
                rest.len()
            )));
        }
        Ok(TpmQuote {
            message,
            signature,
            pcrs,
        })
    }
}
