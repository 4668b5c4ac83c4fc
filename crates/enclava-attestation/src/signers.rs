//! Signed policy management requests: who may sign an attestation policy, a policy reset or a
//! change of the signer set.
//!
//! MAA accepts a policy upload as a JWS whose payload is `{"AttestationPolicy": base64url(text)}`,
//! unsigned (`alg: none`) or signed with RS256 by the certificate in the header. The signer's
//! certificate chain is in `x5c`, or in `jwk.x5c` (the Azure Attestation Python SDK's form, which
//! also spells the algorithm `RSA256`; real MAA accepts both). An operator who configures trusted
//! policy signers (certificates, PEM) gets MAA's "isolated" behaviour: every upload, reset and
//! signer change must be signed, the signature must verify with the leaf's key (RSASSA-PKCS1-v1_5
//! SHA-256: the leaf must hold an RSA key), and the leaf must be one of the trusted certificates
//! (compared byte for byte: a signer is pinned, not chained). Without trusted signers the caller's
//! `policies/manage` role is the authorization: unsigned uploads are accepted, and a signed one must
//! still verify (a broken signature is never ignored).
//!
//! # The signer set at runtime
//! MAA's policy management certificates (`/certificates:add`, `:remove`) change the set: the
//! effective signers are the configured ones plus those added, minus those removed
//! ([`SignerSetRecord`], one integrity-protected, versioned row in the policy table). A change
//! must be signed by a current signer; removing the last one is refused
//! ([`AttestError::LastPolicySigner`]); a signed change request is accepted once (its SHA-256 is
//! remembered), so a captured `add` body cannot be replayed as a `remove` (the two have the same
//! shape) or to re-add a removed signer.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use der::Decode;
use enclava_policy::maa::PolicyUpload;
use enclava_store::{Op, Table};
use enclava_token::{Alg, Jwk};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::error::AttestError;
use crate::policies::PolicyStore;

/// Row of the current signer set changes ([`SignerSetRecord`]).
const SIGNERS_HEAD: &str = "attestation/policy-signers";
/// Every signer set version: `{SIGNERS_VERSION}{version:020}`.
const SIGNERS_VERSION: &str = "attestation/policy-signers-version/";
/// Largest signed management request (a JWS carrying one certificate).
pub const MAX_SIGNED_REQUEST_BYTES: usize = 64 * 1024;
/// Most signers in the effective set.
pub const MAX_POLICY_SIGNERS: usize = 100;
/// How many accepted change requests are remembered to refuse their replay.
const MAX_REMEMBERED_REQUESTS: usize = 4096;

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

    /// The trusted certificates (DER).
    pub fn certs(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// Whether `der` is one of the signers (byte for byte).
    pub fn contains(&self, der: &[u8]) -> bool {
        self.certs.iter().any(|c| c == der)
    }

    /// Check an upload against these signers: `Ok(None)` for an accepted unsigned upload,
    /// `Ok(Some(signer))` for a verified signature. Errors: `policy_signature_required` (unsigned
    /// while signers are configured), `invalid_policy_signature` (no usable `x5c`, or the
    /// signature does not verify), `untrusted_policy_signer` (verifies, but with a certificate
    /// that is not trusted).
    pub fn check(&self, upload: &PolicyUpload) -> Result<Option<PolicySigner>, AttestError> {
        self.verify_parts(
            &upload.alg,
            &upload.x5c,
            &upload.signing_input,
            &upload.signature,
        )
    }

    /// [`PolicySigners::check`] for any signed management request (reset, signer changes).
    pub fn verify(&self, req: &SignedRequest) -> Result<Option<PolicySigner>, AttestError> {
        self.verify_parts(&req.alg, &req.x5c, &req.signing_input, &req.signature)
    }

    fn verify_parts(
        &self,
        alg: &str,
        x5c: &[String],
        signing_input: &str,
        signature: &[u8],
    ) -> Result<Option<PolicySigner>, AttestError> {
        if alg == "none" {
            return if self.is_empty() {
                Ok(None)
            } else {
                Err(AttestError::PolicySignatureRequired)
            };
        }
        if alg != "RS256" {
            return Err(invalid(format!(
                "expected alg RS256 (or RSA256), found alg {}",
                shown(alg)
            )));
        }
        let leaf_b64 = x5c.first().ok_or_else(|| {
            invalid("expected the signer's certificate in the x5c header, found none".into())
        })?;
        let leaf = STANDARD.decode(leaf_b64).map_err(|e| {
            invalid(format!(
                "x5c[0]: expected a base64 DER certificate, found undecodable text ({e})"
            ))
        })?;
        let signer = signer_of(&leaf).map_err(|e| invalid(format!("x5c[0]: {e}")))?;
        Jwk::from_x5c("RSA", vec![leaf_b64.clone()])
            .verify_signature(Alg::RS256, signing_input.as_bytes(), signature)
            .map_err(|_| {
                invalid(
                    "expected an RS256 signature by the x5c[0] key over the header and payload, found one that does not verify"
                        .into(),
                )
            })?;
        if !self.is_empty() && !self.contains(&leaf) {
            return Err(AttestError::UntrustedPolicySigner {
                cert_sha256: signer.cert_sha256,
            });
        }
        Ok(Some(signer))
    }
}

/// A bounded, printable rendering of an attacker-supplied value for an error message.
fn shown(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect::<String>()
}

/// The certificate `der` as a policy signer: its SHA-256 and its JWK (`kty` RSA, `n`, `e`, `x5c`,
/// `kid` = MAA's thumbprint). Refuses anything but an X.509 certificate with an RSA key.
pub fn signer_of(der: &[u8]) -> Result<PolicySigner, String> {
    let cert = Certificate::from_der(der)
        .map_err(|e| format!("expected a DER X.509 certificate, found {e}"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let alg = spki.algorithm.oid.to_string();
    if alg != RSA_ENCRYPTION {
        return Err(format!(
            "expected an RSA key (RS256 signatures), found key algorithm {alg}"
        ));
    }
    let (n, e) = rsa_modulus_exponent(spki.subject_public_key.raw_bytes())
        .ok_or_else(|| "expected a PKCS#1 RSA public key, found an unreadable one".to_string())?;
    let b64u = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    Ok(PolicySigner {
        cert_sha256: hex::encode(Sha256::digest(der)),
        jwk: serde_json::json!({
            "kty": "RSA",
            "kid": thumbprint(der),
            "n": b64u(&n),
            "e": b64u(&e),
            "x5c": [STANDARD.encode(der)],
        }),
    })
}

/// MAA's certificate thumbprint (`x-ms-certificate-thumbprint`): upper-case hex SHA-1 of the DER.
/// An identifier only (MAA's), never used to decide trust: signers are compared byte for byte.
pub fn thumbprint(der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    hex::encode_upper(d.as_ref())
}

/// A JWS request body of MAA's policy management APIs, split and decoded. The body may be the
/// compact JWS itself (`text/plain`) or a JSON string holding it (the SDKs send the
/// `/certificates` bodies as `application/json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `none` or `RS256` (`RSA256` is reported as `RS256`).
    pub alg: String,
    /// The signer's chain from `x5c` or `jwk.x5c` (base64 DER), empty when absent.
    pub x5c: Vec<String>,
    /// The decoded payload bytes (empty for the SDKs' reset body).
    pub payload: Vec<u8>,
    /// `base64url(header) "." base64url(payload)`, what the signature covers.
    pub signing_input: String,
    pub signature: Vec<u8>,
    /// The compact JWS as received.
    pub jws: String,
}

fn bad_request(m: String) -> AttestError {
    AttestError::InvalidPolicySignature(m)
}

impl SignedRequest {
    /// Parse a request body. `None` when the body is not a JWS at all (empty, a JSON object):
    /// the caller decides whether that is acceptable.
    pub fn parse(body: &[u8]) -> Result<Option<SignedRequest>, AttestError> {
        if body.len() > MAX_SIGNED_REQUEST_BYTES {
            return Err(bad_request(format!(
                "expected a JWS of at most {MAX_SIGNED_REQUEST_BYTES} bytes, found {}",
                body.len()
            )));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| bad_request("expected a UTF-8 JWS, found other bytes".into()))?
            .trim();
        let owned;
        let text = if text.starts_with('"') {
            owned = serde_json::from_str::<String>(text).map_err(|e| {
                bad_request(format!("expected a JSON string holding a JWS, found {e}"))
            })?;
            owned.trim()
        } else {
            text
        };
        let parts: Vec<&str> = text.split('.').collect();
        let [h, p, s] = parts.as_slice() else {
            return Ok(None);
        };
        if !h.starts_with("ey") || text.contains(char::is_whitespace) {
            return Ok(None);
        }
        let dec = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .map_err(|e| bad_request(format!("{what}: expected base64url, found {e}")))
        };
        let header: serde_json::Map<String, Value> = serde_json::from_slice(&dec(h, "header")?)
            .map_err(|e| bad_request(format!("header: expected a JSON object, found {e}")))?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) if a == "none" || a == "RS256" => a.clone(),
            Some(Value::String(a)) if a == "RSA256" => "RS256".to_string(),
            Some(Value::String(a)) => {
                return Err(bad_request(format!(
                    "expected alg none, RS256 or RSA256 (policy signers hold RSA keys), found alg {}",
                    shown(a)
                )));
            }
            _ => {
                return Err(bad_request(
                    "expected a string alg header, found none".into(),
                ));
            }
        };
        let top = header.get("x5c");
        let in_jwk = header.get("jwk").and_then(|j| j.get("x5c"));
        let x5c_value = match (top, in_jwk) {
            (Some(a), Some(b)) if a != b => {
                return Err(bad_request(
                    "expected one signer chain, found x5c and jwk.x5c naming different certificates"
                        .into(),
                ));
            }
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        let x5c = match x5c_value {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| {
                    c.as_str().map(str::to_string).ok_or_else(|| {
                        bad_request("x5c: expected base64 strings, found another type".into())
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(bad_request(
                    "x5c: expected an array, found another type".into(),
                ));
            }
        };
        let signature = dec(s, "signature")?;
        if alg == "none" && !signature.is_empty() {
            return Err(bad_request(format!(
                "expected an empty signature for alg none, found {} bytes",
                signature.len()
            )));
        }
        if alg == "RS256" && signature.is_empty() {
            return Err(bad_request(
                "expected a signature for alg RS256, found an empty one".into(),
            ));
        }
        Ok(Some(SignedRequest {
            alg,
            x5c,
            payload: dec(p, "payload")?,
            signing_input: format!("{h}.{p}"),
            signature,
            jws: text.to_string(),
        }))
    }

    /// The payload as JSON (`null` when empty, as the SDKs' reset body).
    pub fn payload_json(&self) -> Result<Value, AttestError> {
        if self.payload.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.payload)
            .map_err(|e| bad_request(format!("payload: expected JSON, found {e}")))
    }

    /// SHA-256 of the JWS as received (base64url), MAA's `x-ms-policy-token-hash`.
    pub fn token_hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.jws.as_bytes()))
    }
}

/// The certificate (DER) named by a `/certificates:add` or `:remove` payload:
/// `{"policyCertificate": {"kty": "RSA", "x5c": [base64 DER, ...]}}` (MAA's
/// `AttestationCertificateManagementBody`; the first `x5c` entry is the certificate).
pub fn certificate_of_management_body(payload: &Value) -> Result<Vec<u8>, AttestError> {
    let bad = |m: &str| AttestError::InvalidPolicyCertificate(m.to_string());
    let jwk = payload
        .get("policyCertificate")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("expected a payload {\"policyCertificate\": JWK}, found none"))?;
    if let Some(kty) = jwk.get("kty")
        && kty != "RSA"
    {
        return Err(AttestError::InvalidPolicyCertificate(format!(
            "expected kty RSA, found {}",
            shown(&kty.to_string())
        )));
    }
    let first = jwk
        .get("x5c")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| bad("expected policyCertificate.x5c with the certificate, found none"))?;
    let der = STANDARD.decode(first).map_err(|e| {
        AttestError::InvalidPolicyCertificate(format!(
            "x5c[0]: expected base64 DER, found undecodable text ({e})"
        ))
    })?;
    signer_of(&der).map_err(AttestError::InvalidPolicyCertificate)?;
    Ok(der)
}

/// The runtime changes of the signer set (current row and every version): the effective set is
/// the configured certificates plus `added`, minus those whose SHA-256 is in `removed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerSetRecord {
    pub version: u64,
    /// Certificates added at runtime (base64 DER).
    pub added: Vec<String>,
    /// Hex SHA-256 of configured certificates removed at runtime.
    pub removed: Vec<String>,
    /// What this version did: `add` or `remove`, and the certificate's SHA-256.
    pub action: String,
    pub cert_sha256: String,
    /// Hex SHA-256 of the signer of the change request.
    pub signed_by: String,
    pub who: String,
    pub at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of accepted change requests (newest last), refused when replayed.
    #[serde(default)]
    pub used_requests: Vec<String>,
}

/// What a signer set change did (MAA's `x-ms-policycertificates-result`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerChange {
    /// MAA's thumbprint of the certificate.
    pub thumbprint: String,
    pub cert_sha256: String,
    /// `IsPresent` or `IsAbsent`: the certificate's state after the change.
    pub result: &'static str,
    /// The new version, `None` when nothing changed (already present / absent).
    pub version: Option<u64>,
}

impl PolicyStore {
    /// The stored signer set changes, if any. A missing current row while versions exist is an
    /// integrity failure (deleting the row would silently bring back removed signers).
    pub fn signer_set(&self) -> Result<Option<SignerSetRecord>, AttestError> {
        match self.read::<SignerSetRecord>(SIGNERS_HEAD)? {
            Some(r) => Ok(Some(r)),
            None => {
                let history = self
                    .store_ref()
                    .list(Table::Policies, SIGNERS_VERSION, None, 1)?;
                if history.is_empty() {
                    Ok(None)
                } else {
                    Err(AttestError::Integrity {
                        key: SIGNERS_HEAD.into(),
                        problem: "the row is missing while signer set versions exist".into(),
                    })
                }
            }
        }
    }

    /// Every stored signer set version, oldest first.
    pub fn signer_set_versions(&self) -> Result<Vec<SignerSetRecord>, AttestError> {
        self.read_all(SIGNERS_VERSION)
    }

    /// The effective policy signers: `configured` with the stored changes applied.
    pub fn effective_signers(
        &self,
        configured: &PolicySigners,
    ) -> Result<PolicySigners, AttestError> {
        let Some(rec) = self.signer_set()? else {
            return Ok(configured.clone());
        };
        Ok(apply(configured, &rec))
    }

    /// Add (`add` true) or remove the certificate `der`, for a change request `request_sha256`
    /// already verified as signed by `signed_by` (a current signer). Removing the last signer is
    /// refused; a request already accepted once is refused.
    #[allow(clippy::too_many_arguments)]
    pub fn change_signers(
        &self,
        configured: &PolicySigners,
        der: &[u8],
        add: bool,
        request_sha256: &str,
        signed_by: &str,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<SignerChange, AttestError> {
        let signer = signer_of(der).map_err(AttestError::InvalidPolicyCertificate)?;
        let old_row = self.store_ref().get(Table::Policies, SIGNERS_HEAD)?;
        let old = self.signer_set()?.unwrap_or_default();
        if old.used_requests.iter().any(|u| u == request_sha256) {
            return Err(AttestError::InvalidPolicySignature(
                "expected a change request not seen before, found one already accepted (a replay)"
                    .into(),
            ));
        }
        let before = apply(configured, &old);
        let present = before.contains(der);
        let mut change = SignerChange {
            thumbprint: thumbprint(der),
            cert_sha256: signer.cert_sha256.clone(),
            result: if add { "IsPresent" } else { "IsAbsent" },
            version: None,
        };
        if present == add {
            return Ok(change);
        }
        let b64 = STANDARD.encode(der);
        let mut next = old.clone();
        if add {
            if before.len() >= MAX_POLICY_SIGNERS {
                return Err(AttestError::InvalidPolicyCertificate(format!(
                    "expected at most {MAX_POLICY_SIGNERS} policy signers, found {} already",
                    before.len()
                )));
            }
            next.removed.retain(|h| *h != signer.cert_sha256);
            if !configured.contains(der) && !next.added.contains(&b64) {
                next.added.push(b64);
            }
        } else {
            if before.len() <= 1 {
                return Err(AttestError::LastPolicySigner {
                    cert_sha256: signer.cert_sha256,
                });
            }
            next.added.retain(|a| *a != b64);
            if configured.contains(der) && !next.removed.contains(&signer.cert_sha256) {
                next.removed.push(signer.cert_sha256.clone());
            }
        }
        next.version = old.version + 1;
        next.action = if add { "add" } else { "remove" }.into();
        next.cert_sha256 = signer.cert_sha256;
        next.signed_by = signed_by.into();
        next.who = who.into();
        next.at = Some(now);
        next.used_requests.push(request_sha256.into());
        if next.used_requests.len() > MAX_REMEMBERED_REQUESTS {
            let drop = next.used_requests.len() - MAX_REMEMBERED_REQUESTS;
            next.used_requests.drain(..drop);
        }
        let bytes = serde_json::to_vec(&next).map_err(|e| AttestError::Store(e.to_string()))?;
        self.store_ref().transact(vec![
            Op::Expect {
                table: Table::Policies,
                key: SIGNERS_HEAD.into(),
                value: old_row,
            },
            self.put_row(SIGNERS_HEAD.into(), &bytes)?,
            self.put_row(format!("{SIGNERS_VERSION}{:020}", next.version), &bytes)?,
        ])?;
        change.version = Some(next.version);
        Ok(change)
    }
}

/// `configured` with the changes of `rec` applied.
fn apply(configured: &PolicySigners, rec: &SignerSetRecord) -> PolicySigners {
    let mut certs: Vec<Vec<u8>> = configured
        .certs
        .iter()
        .filter(|c| !rec.removed.contains(&hex::encode(Sha256::digest(c))))
        .cloned()
        .collect();
    for a in &rec.added {
        // Each was validated before it was stored (and the row is MAC'd).
        if let Ok(der) = STANDARD.decode(a)
            && !certs.contains(&der)
        {
            certs.push(der);
        }
    }
    PolicySigners { certs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rsa_cert(name: &str) -> Vec<u8> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&kp)
            .unwrap()
            .der()
            .to_vec()
    }

    fn store() -> PolicyStore {
        let keys = crate::integrity::PolicyRowKeys::derive(|_| {
            Ok::<_, String>(zeroize::Zeroizing::new([3u8; 32]))
        })
        .unwrap();
        PolicyStore::new(Arc::new(enclava_store::SqliteStore::in_memory().unwrap()))
            .with_row_keys(Arc::new(keys))
    }

    fn jws(header: &str, payload: &str, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    #[test]
    fn request_forms() {
        // The Python SDK's header, sent as a JSON string.
        let j = jws(r#"{"alg": "RSA256", "jwk": {"x5c": ["AAA"]}}"#, "", &[1, 2]);
        let r = SignedRequest::parse(json_string(&j).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.alg.as_str(), r.x5c.as_slice()),
            ("RS256", &["AAA".to_string()][..])
        );
        assert_eq!(r.jws, j);
        assert_eq!(r.payload_json().unwrap(), Value::Null);
        // Not a JWS at all: for the caller to judge.
        for body in ["", "{}", "  ", "\"\""] {
            assert!(
                SignedRequest::parse(body.as_bytes()).unwrap().is_none(),
                "{body:?}"
            );
        }
        // Refused: other algorithms, ambiguous chains, signatures that do not fit the alg.
        for (h, sig) in [
            (r#"{"alg":"ES256","x5c":["AAA"]}"#, &[1u8][..]),
            (r#"{"alg":"ECDH256","jwk":{"x5c":["AAA"]}}"#, &[1u8][..]),
            (
                r#"{"alg":"RS256","x5c":["AAA"],"jwk":{"x5c":["BBB"]}}"#,
                &[1u8][..],
            ),
            (r#"{"alg":"none"}"#, &[1u8][..]),
            (r#"{"alg":"RS256","x5c":["AAA"]}"#, &[][..]),
        ] {
            let e = SignedRequest::parse(jws(h, "", sig).as_bytes()).unwrap_err();
            assert_eq!(e.code(), "invalid_policy_signature", "{h}: {e}");
        }
    }

    fn json_string(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn signer_set_changes() {
        let s = store();
        let (a, b, c) = (rsa_cert("a"), rsa_cert("b"), rsa_cert("c"));
        let configured = PolicySigners {
            certs: vec![a.clone()],
        };
        let now = Utc::now();
        assert_eq!(s.effective_signers(&configured).unwrap(), configured);
        let ch = s
            .change_signers(&configured, &b, true, "r1", "x", "alice", now)
            .unwrap();
        assert_eq!((ch.result, ch.version), ("IsPresent", Some(1)));
        assert_eq!(ch.thumbprint.len(), 40);
        // Adding again changes nothing.
        let ch = s
            .change_signers(&configured, &b, true, "r2", "x", "alice", now)
            .unwrap();
        assert_eq!((ch.result, ch.version), ("IsPresent", None));
        // A replayed request is refused.
        let e = s
            .change_signers(&configured, &c, false, "r1", "x", "alice", now)
            .unwrap_err();
        assert!(e.to_string().contains("replay"), "{e}");
        // Removing the configured one keeps it removed.
        s.change_signers(&configured, &a, false, "r3", "x", "alice", now)
            .unwrap();
        assert_eq!(
            s.effective_signers(&configured).unwrap().certs,
            vec![b.clone()]
        );
        let e = s
            .change_signers(&configured, &b, false, "r4", "x", "alice", now)
            .unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("last_policy_signer", 409));
        assert_eq!(s.signer_set_versions().unwrap().len(), 2);
        // Not a certificate.
        let e = s
            .change_signers(&configured, b"junk", true, "r5", "x", "alice", now)
            .unwrap_err();
        assert_eq!(e.code(), "invalid_policy_certificate");

        // Deleting the current row (a database writer) would bring back the removed signer:
        // refused while history exists.
        s.store_ref()
            .transact(vec![Op::Delete {
                table: Table::Policies,
                key: SIGNERS_HEAD.into(),
            }])
            .unwrap();
        assert_eq!(
            s.effective_signers(&configured).unwrap_err().code(),
            "integrity_check_failed"
        );
    }
}
