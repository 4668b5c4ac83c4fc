//! OCSP (RFC 6960) for the NVIDIA device and RIM chains. Pure: requests are built and responses
//! verified here; fetching and caching them is the collateral layer's job (`enclava-collateral`),
//! and a response may also travel with the evidence (stapled).
//!
//! [`verify_response`] accepts a response for `cert` only when:
//!
//! 1. it parses, its `responseStatus` is `successful` and it is a BasicOCSPResponse;
//! 2. it is signed (ecdsa-with-SHA384, P-384, like everything else in NVIDIA's PKI) either by
//!    `cert`'s issuer itself or by a delegated responder: a certificate carried in the response,
//!    issued (signature checked) by that same issuer, with extended key usage id-kp-OCSPSigning,
//!    valid at the verification time. The responderID must name the signer (byName or SHA-1
//!    byKey). Nothing else may sign: not another CA of the chain, not a certificate chaining
//!    elsewhere;
//! 3. one of its SingleResponses has a certID for `cert` (SHA-1, SHA-256 or SHA-384 over the
//!    issuer's name and key, and `cert`'s serial);
//! 4. it is current: `thisUpdate <= at + 5 min` (responder clock skew) and `at <= nextUpdate`;
//!    without `nextUpdate`, `thisUpdate` at most one day before `at`;
//! 5. when the caller sent a nonce, the response's nonce extension carries it.
//!
//! The certificate's status (`good`, `revoked` with time and reason, `unknown`) is the result;
//! deciding that `revoked` fails is the caller's (see [`check_chain`]: it always does).

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1, UnparsedPublicKey};
use chrono::{DateTime, Utc};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use x509_cert::ext::pkix::{CrlReason, ExtendedKeyUsage};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponderId, TbsRequest, Version,
};

use super::x509::Cert;

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// id-pkix-ocsp-basic.
pub const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce.
pub const OID_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-kp-OCSPSigning.
pub const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const OID_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");

/// Tolerated responder clock skew on `thisUpdate` (seconds).
pub const THIS_UPDATE_SKEW_SECS: i64 = 300;
/// Longest accepted age of a response without `nextUpdate` (seconds).
pub const MAX_AGE_WITHOUT_NEXT_UPDATE_SECS: i64 = 86_400;

/// The hash of a certID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIdHash {
    Sha1,
    Sha256,
    Sha384,
}

impl CertIdHash {
    fn oid(self) -> ObjectIdentifier {
        match self {
            CertIdHash::Sha1 => OID_SHA1,
            CertIdHash::Sha256 => OID_SHA256,
            CertIdHash::Sha384 => OID_SHA384,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Option<CertIdHash> {
        [CertIdHash::Sha1, CertIdHash::Sha256, CertIdHash::Sha384]
            .into_iter()
            .find(|h| h.oid() == oid)
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            CertIdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &digest::SHA256,
            CertIdHash::Sha384 => &digest::SHA384,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// Why an OCSP request could not be built or a response was not accepted. `code()`:
///
/// | code | meaning |
/// |---|---|
/// | `ocsp_malformed` | the response (or a certificate in it) does not parse |
/// | `ocsp_status` | the responder answered with an unsuccessful `responseStatus` |
/// | `ocsp_responder` | the signer is neither the issuer nor a delegated responder it authorized |
/// | `ocsp_signature` | the response's signature does not verify |
/// | `ocsp_cert_id` | no SingleResponse is for this certificate |
/// | `ocsp_stale` | the response is not current at the verification time |
/// | `ocsp_nonce` | the nonce sent is not in the response |
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OcspError {
    #[error("malformed OCSP response: {0}")]
    Malformed(String),
    #[error("OCSP responseStatus: expected successful, found {0}")]
    ResponseStatus(String),
    #[error("OCSP responder: {0}")]
    Responder(String),
    #[error("OCSP signature: {0}")]
    Signature(String),
    #[error("OCSP certID: {0}")]
    CertId(String),
    #[error(
        "OCSP response not current at {at}: expected thisUpdate {this_update} <= time <= nextUpdate {next_update}"
    )]
    Stale {
        this_update: String,
        next_update: String,
        at: String,
    },
    #[error("OCSP nonce: expected {expected}, found {found}")]
    Nonce { expected: String, found: String },
}

impl OcspError {
    pub fn code(&self) -> &'static str {
        match self {
            OcspError::Malformed(_) => "ocsp_malformed",
            OcspError::ResponseStatus(_) => "ocsp_status",
            OcspError::Responder(_) => "ocsp_responder",
            OcspError::Signature(_) => "ocsp_signature",
            OcspError::CertId(_) => "ocsp_cert_id",
            OcspError::Stale { .. } => "ocsp_stale",
            OcspError::Nonce { .. } => "ocsp_nonce",
        }
    }
}

/// A certificate's status according to a verified response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OcspStatus {
    Good,
    Revoked {
        /// revocationTime (RFC 3339).
        time: String,
        /// RFC 5280 CRLReason name (`keyCompromise`, `certificateHold`, ...), when given.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unknown,
}

/// What a verified response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspAnswer {
    pub status: OcspStatus,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339), when given.
    pub next_update: Option<String>,
    /// CN of the certificate that signed the response.
    pub responder: String,
    /// True when a delegated responder (not the issuer itself) signed.
    pub delegated: bool,
    /// True when the caller's nonce was checked.
    pub nonce_checked: bool,
}

fn malformed(m: impl Into<String>) -> OcspError {
    OcspError::Malformed(m.into())
}

fn parse_cert(der: &[u8], which: &str) -> Result<Cert, OcspError> {
    Cert::parse(der, which).map_err(|e| malformed(e.to_string()))
}

/// The certID of `cert` (issued by `issuer`) with `hash`.
fn cert_id(cert: &Cert, issuer: &Cert, hash: CertIdHash) -> Result<CertId, OcspError> {
    let name = issuer
        .cert
        .tbs_certificate
        .subject
        .to_der()
        .map_err(|e| malformed(format!("issuer name: {e}")))?;
    let key = issuer
        .cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let octets = |b: Vec<u8>| OctetString::new(b).map_err(|e| malformed(e.to_string()));
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: hash.oid(),
            parameters: None,
        },
        issuer_name_hash: octets(hash.digest(&name))?,
        issuer_key_hash: octets(hash.digest(key))?,
        serial_number: cert.cert.tbs_certificate.serial_number.clone(),
    })
}

/// Does `id` name `cert` (issued by `issuer`)? Compared on the hash algorithm's OID only
/// (parameters absent or NULL alike), hashes and serial.
fn cert_id_matches(id: &CertId, cert: &Cert, issuer: &Cert) -> bool {
    let Some(h) = CertIdHash::from_oid(id.hash_algorithm.oid) else {
        return false;
    };
    match cert_id(cert, issuer, h) {
        Ok(mine) => {
            mine.issuer_name_hash == id.issuer_name_hash
                && mine.issuer_key_hash == id.issuer_key_hash
                && mine.serial_number == id.serial_number
        }
        Err(_) => false,
    }
}

/// A DER OCSPRequest for `cert_der` (issued by `issuer_der`), unsigned, with an optional nonce
/// extension (RFC 6960 4.4.1; its value is the DER OCTET STRING of the nonce).
pub fn build_request(
    cert_der: &[u8],
    issuer_der: &[u8],
    hash: CertIdHash,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, OcspError> {
    let cert = parse_cert(cert_der, "certificate")?;
    let issuer = parse_cert(issuer_der, "issuer")?;
    let request_extensions = match nonce {
        Some(n) => {
            let value = OctetString::new(n.to_vec())
                .and_then(|o| o.to_der())
                .and_then(OctetString::new)
                .map_err(|e| malformed(format!("nonce: {e}")))?;
            Some(vec![x509_cert::ext::Extension {
                extn_id: OID_OCSP_NONCE,
                critical: false,
                extn_value: value,
            }])
        }
        None => None,
    };
    let req = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id(&cert, &issuer, hash)?,
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    };
    req.to_der()
        .map_err(|e| malformed(format!("encoding: {e}")))
}

fn time_secs(t: &x509_ocsp::OcspGeneralizedTime) -> i64 {
    i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn reason_name(r: CrlReason) -> &'static str {
    match r {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
}

/// The BasicOCSPResponse inside a DER OCSPResponse, with its raw DER (for the signed part).
fn basic(response_der: &[u8]) -> Result<(BasicOcspResponse, Vec<u8>), OcspError> {
    let resp = OcspResponse::from_der(response_der)
        .map_err(|e| malformed(format!("not a DER OCSPResponse: {e}")))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::ResponseStatus(format!(
            "{:?}",
            resp.response_status
        )));
    }
    let bytes = resp
        .response_bytes
        .ok_or_else(|| malformed("successful response without responseBytes"))?;
    if bytes.response_type != OID_OCSP_BASIC {
        return Err(malformed(format!(
            "expected responseType id-pkix-ocsp-basic ({OID_OCSP_BASIC}), found {}",
            bytes.response_type
        )));
    }
    let raw = bytes.response.as_bytes().to_vec();
    let b = BasicOcspResponse::from_der(&raw)
        .map_err(|e| malformed(format!("not a DER BasicOCSPResponse: {e}")))?;
    Ok((b, raw))
}

/// Does the response carry a SingleResponse for `cert` (no signature checked)? Used to pick the
/// responses that concern a certificate out of a pool (stapled and cached).
pub fn covers(response_der: &[u8], cert_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok(cert), Ok(issuer)) = (
        parse_cert(cert_der, "certificate"),
        parse_cert(issuer_der, "issuer"),
    ) else {
        return false;
    };
    covers_parsed(response_der, &cert, &issuer)
}

fn covers_parsed(response_der: &[u8], cert: &Cert, issuer: &Cert) -> bool {
    basic(response_der).is_ok_and(|(b, _)| {
        b.tbs_response_data
            .responses
            .iter()
            .any(|s| cert_id_matches(&s.cert_id, cert, issuer))
    })
}

fn responder_is(id: &ResponderId, c: &Cert) -> bool {
    match id {
        ResponderId::ByName(n) => *n == c.cert.tbs_certificate.subject,
        ResponderId::ByKey(h) => {
            let key = c
                .cert
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes();
            CertIdHash::Sha1.digest(key).as_slice() == h.as_bytes()
        }
    }
}

fn has_ocsp_signing(c: &Cert) -> bool {
    c.extension_oid(OID_EXT_KEY_USAGE)
        .and_then(|v| ExtendedKeyUsage::from_der(v).ok())
        .is_some_and(|eku| eku.0.contains(&OID_KP_OCSP_SIGNING))
}

/// Verify `response_der` (a DER OCSPResponse) for `cert_der`, issued by `issuer_der`, at `at`.
/// The issuer is the trust anchor here: the caller has already verified `cert`'s chain.
pub fn verify_response(
    response_der: &[u8],
    cert_der: &[u8],
    issuer_der: &[u8],
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<OcspAnswer, OcspError> {
    let cert = parse_cert(cert_der, "certificate")?;
    let issuer = parse_cert(issuer_der, "issuer")?;
    verify_parsed(response_der, &cert, &issuer, expected_nonce, at)
}

pub(crate) fn verify_parsed(
    response_der: &[u8],
    cert: &Cert,
    issuer: &Cert,
    expected_nonce: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<OcspAnswer, OcspError> {
    let (b, raw) = basic(response_der)?;
    let data = &b.tbs_response_data;

    // The signer: the issuer itself, or a delegated responder certificate it issued.
    let carried = b
        .certs
        .iter()
        .flatten()
        .map(|c| {
            let der = c
                .to_der()
                .map_err(|e| malformed(format!("responder certificate: {e}")))?;
            parse_cert(&der, "responder certificate")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (signer, delegated) = if responder_is(&data.responder_id, issuer) {
        (issuer, false)
    } else {
        let d = carried
            .iter()
            .find(|c| responder_is(&data.responder_id, c))
            .ok_or_else(|| {
                OcspError::Responder(format!(
                    "the responderID names neither the issuer {} nor a certificate in the response",
                    issuer.subject_cn()
                ))
            })?;
        d.check_issued_by(issuer).map_err(|e| {
            OcspError::Responder(format!(
                "delegated responder {} is not issued by {}: {e}",
                d.subject_cn(),
                issuer.subject_cn()
            ))
        })?;
        if !has_ocsp_signing(d) {
            return Err(OcspError::Responder(format!(
                "delegated responder {}: expected extended key usage id-kp-OCSPSigning ({OID_KP_OCSP_SIGNING}), found none",
                d.subject_cn()
            )));
        }
        let (nb, na) = d.validity();
        let t = at.timestamp();
        if t < nb || t > na {
            return Err(OcspError::Responder(format!(
                "delegated responder {} is not valid at {}: expected {} <= time <= {}",
                d.subject_cn(),
                at.to_rfc3339(),
                super::x509::rfc3339(nb),
                super::x509::rfc3339(na)
            )));
        }
        (d, true)
    };

    if b.signature_algorithm.oid != OID_ECDSA_SHA384 {
        return Err(OcspError::Signature(format!(
            "expected ecdsa-with-SHA384 ({OID_ECDSA_SHA384}), found {}",
            b.signature_algorithm.oid
        )));
    }
    let tbs = crate::snp::certs::signed_part(&raw)
        .ok_or_else(|| malformed("cannot locate tbsResponseData"))?;
    let sig = b
        .signature
        .as_bytes()
        .ok_or_else(|| OcspError::Signature("unaligned signature BIT STRING".into()))?;
    let key = signer.p384_key().map_err(OcspError::Signature)?;
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, key)
        .verify(tbs, sig)
        .map_err(|_| {
            OcspError::Signature(format!(
                "the signature does not verify under {}",
                signer.subject_cn()
            ))
        })?;

    let single = data
        .responses
        .iter()
        .find(|s| cert_id_matches(&s.cert_id, cert, issuer))
        .ok_or_else(|| {
            OcspError::CertId(format!(
                "expected a response for serial {} issued by {}, found {} response(s) for other certificates",
                hex::encode(cert.serial()),
                issuer.subject_cn(),
                data.responses.len()
            ))
        })?;

    let t = at.timestamp();
    let this_update = time_secs(&single.this_update);
    let next_update = single.next_update.as_ref().map(time_secs);
    let current = this_update <= t.saturating_add(THIS_UPDATE_SKEW_SECS)
        && match next_update {
            Some(n) => t <= n,
            None => t.saturating_sub(this_update) <= MAX_AGE_WITHOUT_NEXT_UPDATE_SECS,
        };
    if !current {
        return Err(OcspError::Stale {
            this_update: super::x509::rfc3339(this_update),
            next_update: next_update.map_or_else(
                || "(none; at most one day after thisUpdate)".into(),
                super::x509::rfc3339,
            ),
            at: at.to_rfc3339(),
        });
    }

    let nonce_checked = match expected_nonce {
        Some(n) => {
            let found = data
                .response_extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == OID_OCSP_NONCE)
                .map(|e| {
                    // RFC 6960: extnValue holds the DER OCTET STRING of the nonce; some
                    // responders put the bare nonce. Either form must equal what was sent.
                    let v = e.extn_value.as_bytes();
                    OctetString::from_der(v)
                        .map(|o| o.as_bytes().to_vec())
                        .unwrap_or_else(|_| v.to_vec())
                });
            match found {
                Some(f) if f == n => true,
                other => {
                    return Err(OcspError::Nonce {
                        expected: hex::encode(n),
                        found: other.map_or_else(|| "no nonce extension".into(), hex::encode),
                    });
                }
            }
        }
        None => false,
    };

    let status = match &single.cert_status {
        CertStatus::Good(_) => OcspStatus::Good,
        CertStatus::Revoked(info) => OcspStatus::Revoked {
            time: super::x509::rfc3339(time_secs(&info.revocation_time)),
            reason: info.revocation_reason.map(|r| reason_name(r).to_string()),
        },
        CertStatus::Unknown(_) => OcspStatus::Unknown,
    };
    Ok(OcspAnswer {
        status,
        this_update: super::x509::rfc3339(this_update),
        next_update: next_update.map(super::x509::rfc3339),
        responder: signer.subject_cn(),
        delegated,
        nonce_checked,
    })
}

/// Revocation claims of one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRevocation {
    /// `device`, or the RIM's kind (`driver`, `vbios`, `bios`).
    pub chain: String,
    /// `good` (every checked certificate has a current, verified `good` answer), `unknown` (some
    /// answer says unknown), `stale` (some response is no longer current), `not_checked` (some
    /// certificate has no response). `revoked` never appears: a revoked certificate fails.
    pub status: String,
    pub certs: Vec<CertRevocation>,
}

/// Revocation claims of one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRevocation {
    /// Subject CN.
    pub subject: String,
    /// Serial number (hex).
    pub serial: String,
    /// `good`, `unknown`, `stale` or `not_checked`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub this_update: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_update: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responder: Option<String>,
}

/// Revocation claims of one device: its chain and every applied RIM's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationClaims {
    /// True when every certificate that OCSP covers, in every chain, has a current verified
    /// `good` answer. False by default (no OCSP responses given): policies decide.
    pub checked: bool,
    /// `good`, `unknown`, `stale` or `not_checked`: the worst of the chains.
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainRevocation>,
}

impl Default for RevocationClaims {
    fn default() -> Self {
        RevocationClaims {
            checked: false,
            status: "not_checked".into(),
            chains: Vec::new(),
        }
    }
}

/// Why a chain failed its revocation check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainFailure {
    Revoked {
        cert: String,
        time: String,
        reason: Option<String>,
    },
    Response {
        cert: String,
        error: OcspError,
    },
}

fn rank(s: &str) -> u8 {
    match s {
        "good" => 0,
        "stale" => 2,
        "not_checked" => 3,
        _ => 1, // unknown
    }
}

/// Check `path[start..]` (each certificate issued by the next, the last by `root`) against the
/// responses in `pool` that name them. A certificate without a response is `not_checked`; a stale
/// response gives `stale`; any other invalid response and any `revoked` answer fail.
pub(crate) fn check_chain(
    name: &str,
    path: &[&Cert],
    root: &Cert,
    start: usize,
    pool: &[Vec<u8>],
    at: DateTime<Utc>,
) -> Result<ChainRevocation, ChainFailure> {
    let mut certs = Vec::new();
    for (i, c) in path.iter().enumerate().skip(start) {
        let issuer = path.get(i + 1).copied().unwrap_or(root);
        let mut entry = CertRevocation {
            subject: c.subject_cn(),
            serial: hex::encode(c.serial()),
            status: "not_checked".into(),
            this_update: None,
            next_update: None,
            responder: None,
        };
        for r in pool.iter().filter(|r| covers_parsed(r, c, issuer)) {
            match verify_parsed(r, c, issuer, None, at) {
                Ok(a) => {
                    let status = match a.status {
                        OcspStatus::Good => "good",
                        OcspStatus::Unknown => "unknown",
                        OcspStatus::Revoked { time, reason } => {
                            return Err(ChainFailure::Revoked {
                                cert: c.subject_cn(),
                                time,
                                reason,
                            });
                        }
                    };
                    // A current answer replaces a stale one; the first current answer wins.
                    if entry.status == "not_checked" || entry.status == "stale" {
                        entry.status = status.into();
                        entry.this_update = Some(a.this_update);
                        entry.next_update = a.next_update;
                        entry.responder = Some(a.responder);
                    }
                }
                Err(OcspError::Stale {
                    this_update,
                    next_update,
                    ..
                }) => {
                    if entry.status == "not_checked" {
                        entry.status = "stale".into();
                        entry.this_update = Some(this_update);
                        entry.next_update = Some(next_update);
                    }
                }
                Err(error) => {
                    return Err(ChainFailure::Response {
                        cert: c.subject_cn(),
                        error,
                    });
                }
            }
        }
        certs.push(entry);
    }
    let status = certs
        .iter()
        .map(|c| c.status.as_str())
        .max_by_key(|s| rank(s))
        .unwrap_or("good")
        .to_string();
    Ok(ChainRevocation {
        chain: name.into(),
        status,
        certs,
    })
}

/// The worst status over chains, and whether all are `good`.
pub(crate) fn summarize(chains: Vec<ChainRevocation>) -> RevocationClaims {
    let status = chains
        .iter()
        .map(|c| c.status.as_str())
        .max_by_key(|s| rank(s))
        .unwrap_or("not_checked")
        .to_string();
    RevocationClaims {
        checked: status == "good",
        status,
        chains,
    }
}

/// The revocation check of one chain with an explicit trust anchor: `chain_der` leaf first, each
/// certificate issued (signature checked) by the next, the last by `root_der`; OCSP from index
/// `start` on (see [`super::verify_with_ocsp`] for the chains NVIDIA evidence has). Revoked and
/// invalid responses fail as in `verify_with_ocsp` (`cert_revoked` when `name` is `device`,
/// `rim_revoked` otherwise; `ocsp_*`).
pub fn check_chain_with_root(
    name: &str,
    chain_der: &[Vec<u8>],
    root_der: &[u8],
    start: usize,
    pool: &[Vec<u8>],
    at: DateTime<Utc>,
) -> Result<ChainRevocation, super::NvidiaError> {
    let root = Cert::parse(root_der, "trust anchor")?;
    let chain = chain_der
        .iter()
        .enumerate()
        .map(|(i, d)| Cert::parse(d, &format!("certificate #{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let path: Vec<&Cert> = chain.iter().collect();
    super::x509::check_path(&path, &root).map_err(super::NvidiaError::CertChain)?;
    check_chain(name, &path, &root, start, pool, at).map_err(|f| f.into_error(name))
}

impl ChainFailure {
    pub(crate) fn into_error(self, chain: &str) -> super::NvidiaError {
        match self {
            ChainFailure::Revoked { cert, time, reason } => super::NvidiaError::Revoked {
                chain: chain.into(),
                cert,
                time,
                reason,
            },
            ChainFailure::Response { cert, error } => super::NvidiaError::Ocsp {
                chain: chain.into(),
                cert,
                error,
            },
        }
    }
}
