//! NVIDIA Reference Integrity Manifests: ISO/IEC 19770-2 SWID tags (TCG RIM information model)
//! with an enveloped XML-DSig signature.
//!
//! [`parse`] reads the structure: `SoftwareIdentity` (tagId), `Meta` (colloquialVersion, edition,
//! product, FirmwareManufacturerId), `Payload/Resource[type=Measurement]` (index, active,
//! alternatives, size, `Hash0..Hash{alternatives-1}` in the `xmlenc#sha384` namespace) and the one
//! `ds:Signature` child of the document element.
//!
//! [`verify`] checks, in this order:
//! 1. the path (`rim_chain`): the first `X509Certificate` is the signer; its issuers are looked up
//!    by name among the other certificates of `X509Data` until one is issued by the PINNED NVIDIA
//!    CoRIM signing root ([`super::roots::RIM_ROOT_PEM`]). A root embedded in the file is never a
//!    trust anchor (self-issued certificates of the file are never used);
//! 2. validity (`rim_expired`): every certificate of that path and the pinned root are valid at the
//!    verification time. Validity dates are taken as encoded: NVIDIA's GH100/LS10 reference-value
//!    CAs encode pre-2050 dates as GeneralizedTime, which RFC 5280 forbids and strict path
//!    validators reject; they are signed as such, so accepting them changes no signed meaning;
//! 3. the reference digest (`rim_signature`): `SignedInfo` must be exactly C14N 1.1 +
//!    ecdsa-sha384 + one `Reference URI=""` with the transforms [enveloped-signature, C14N 1.1]
//!    and SHA-384; its DigestValue must be SHA-384 of the canonical document without the
//!    `Signature` element (checked before any public-key operation);
//! 4. the path's signatures (`rim_chain`): each certificate issued (CA flag, ecdsa-with-SHA384)
//!    by the next, the last by the pinned root;
//! 5. the `SignatureValue` (`rim_signature`, raw r||s, 96 bytes) over the canonical `SignedInfo`
//!    under the signer's key.
//!
//! Everything the appraisal reads lies outside `Signature`, so it is covered by the digest;
//! `KeyInfo` is not signed (as in every enveloped XML-DSig), which is why the key is trusted only
//! through the pinned chain.

use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha384};

use super::NvidiaError;
use super::x509::{self, Cert};
use super::xml::{self, Element};

const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_SWID: &str = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd";
const NS_SHA384: &str = "http://www.w3.org/2001/04/xmlenc#sha384";
const NS_TCG_RIM: &str = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/";
const ALG_C14N11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const ALG_ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
const ALG_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
/// At most this many Resource elements / alternatives (the RIMs have 64 and up to 4).
const MAX_RESOURCES: usize = 256;
const MAX_ALTERNATIVES: usize = 16;

/// One reference measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RimMeasurement {
    /// 0-based (SPDM block index minus one).
    pub index: u32,
    pub active: bool,
    pub size: usize,
    /// `Hash0..Hash{alternatives-1}`: any of them is a match.
    pub alternatives: Vec<Vec<u8>>,
    pub name: String,
}

/// A parsed (not yet verified) RIM.
#[derive(Debug, Clone)]
pub struct Rim {
    pub tag_id: String,
    /// `Meta/@colloquialVersion`: the driver or (V)BIOS version this RIM describes.
    pub version: String,
    /// `Meta/@edition`: GPU or SWITCH.
    pub edition: String,
    /// `Meta/@product`: GH100, GB100, LS10.
    pub product: String,
    /// `Meta/@FirmwareManufacturerId` (TCG RIM namespace).
    pub manufacturer_id: Option<String>,
    pub measurements: Vec<RimMeasurement>,
    signed_info_c14n: Vec<u8>,
    reference_digest: Vec<u8>,
    document_digest: [u8; 48],
    signature: Vec<u8>,
    certs_der: Vec<Vec<u8>>,
}

/// What a verified RIM contributes to the claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRim {
    /// The earliest notAfter of the signer's path (RFC 3339): when this RIM stops verifying.
    pub cert_expiration: String,
    pub signer_cn: String,
}

fn malformed(reason: impl Into<String>) -> NvidiaError {
    NvidiaError::MalformedRim(reason.into())
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, NvidiaError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| malformed(format!("{what}: expected base64, found invalid text ({e})")))
}

fn one_child<'a>(el: &'a Element, ns: &str, local: &str) -> Result<&'a Element, NvidiaError> {
    let mut it = el.child_elements().filter(|c| c.is(ns, local));
    let first = it.next().ok_or_else(|| {
        malformed(format!(
            "expected a {local} element in {}, found none",
            el.name
        ))
    })?;
    if it.next().is_some() {
        return Err(malformed(format!(
            "expected one {local} element in {}, found several",
            el.name
        )));
    }
    Ok(first)
}

fn algorithm(el: &Element) -> Result<&str, NvidiaError> {
    el.attr("Algorithm")
        .ok_or_else(|| malformed(format!("{} without Algorithm", el.name)))
}

fn expect_alg(el: &Element, expected: &str) -> Result<(), NvidiaError> {
    let found = algorithm(el)?;
    if found != expected {
        return Err(NvidiaError::RimSignature(format!(
            "{}: expected Algorithm {expected}, found {found}",
            el.local_name()
        )));
    }
    Ok(())
}

/// Parse a RIM (XML text). Structure only; see [`verify`].
pub fn parse(input: &[u8]) -> Result<Rim, NvidiaError> {
    let root = xml::parse(input).map_err(|e| malformed(format!("not a well-formed RIM: {e}")))?;
    if !root.is(NS_SWID, "SoftwareIdentity") {
        return Err(malformed(format!(
            "expected a SoftwareIdentity document element ({NS_SWID}), found {} ({})",
            root.name,
            root.namespace()
        )));
    }
    let tag_id = root
        .attr("tagId")
        .ok_or_else(|| malformed("SoftwareIdentity without tagId"))?
        .to_string();
    let meta = one_child(&root, NS_SWID, "Meta")?;
    let meta_attr = |n: &str| {
        meta.attr(n)
            .map(str::to_string)
            .ok_or_else(|| malformed(format!("Meta without {n}")))
    };
    let version = meta_attr("colloquialVersion")?;
    let edition = meta_attr("edition")?;
    let product = meta_attr("product")?;
    let manufacturer_id = meta
        .attr_ns(NS_TCG_RIM, "FirmwareManufacturerId")
        .map(str::to_string);
    let payload = one_child(&root, NS_SWID, "Payload")?;
    let mut measurements: Vec<RimMeasurement> = Vec::new();
    for res in payload.child_elements() {
        if !res.is(NS_SWID, "Resource") {
            return Err(malformed(format!(
                "expected only Resource elements in Payload, found {}",
                res.name
            )));
        }
        if res.attr("type") != Some("Measurement") {
            continue;
        }
        if measurements.len() >= MAX_RESOURCES {
            return Err(malformed(format!("more than {MAX_RESOURCES} measurements")));
        }
        let num = |n: &str| -> Result<usize, NvidiaError> {
            let v = res
                .attr(n)
                .ok_or_else(|| malformed(format!("Resource without {n}")))?;
            v.parse::<usize>()
                .map_err(|_| malformed(format!("Resource {n}: expected a number, found {v:?}")))
        };
        let index =
            u32::try_from(num("index")?).map_err(|_| malformed("Resource index out of range"))?;
        let size = num("size")?;
        let alt = num("alternatives")?;
        if alt == 0 || alt > MAX_ALTERNATIVES {
            return Err(malformed(format!(
                "Resource {index}: expected 1 to {MAX_ALTERNATIVES} alternatives, found {alt}"
            )));
        }
        let active = match res.attr("active") {
            Some("True" | "true") => true,
            Some("False" | "false") => false,
            other => {
                return Err(malformed(format!(
                    "Resource {index}: expected active True or False, found {other:?}"
                )));
            }
        };
        let mut alternatives = Vec::with_capacity(alt);
        for k in 0..alt {
            let h = res.attr_ns(NS_SHA384, &format!("Hash{k}")).ok_or_else(|| {
                malformed(format!(
                    "Resource {index}: alternatives=\"{alt}\" but Hash{k} is missing"
                ))
            })?;
            let v = hex::decode(h)
                .ok()
                .filter(|v| v.len() == size)
                .ok_or_else(|| {
                    malformed(format!(
                        "Resource {index} Hash{k}: expected {size} bytes of hex, found {h:?}"
                    ))
                })?;
            alternatives.push(v);
        }
        if measurements.iter().any(|m| m.index == index) {
            return Err(malformed(format!("Resource index {index} appears twice")));
        }
        measurements.push(RimMeasurement {
            index,
            active,
            size,
            alternatives,
            name: res.attr("name").unwrap_or_default().to_string(),
        });
    }

    // The signature: exactly one, a child of the document element (enveloped).
    // Exactly one Signature in the whole document (no wrapping), a child of the document element.
    let signatures = count_signatures(&root);
    if signatures != 1 {
        return Err(NvidiaError::RimSignature(format!(
            "expected exactly one ds:Signature element in the document, found {signatures}"
        )));
    }
    let sig = one_child(&root, NS_DSIG, "Signature")?;
    let signed_info = one_child(sig, NS_DSIG, "SignedInfo")?;
    let parts: Vec<&Element> = signed_info.child_elements().collect();
    let [c14n, method, reference] = parts.as_slice() else {
        return Err(NvidiaError::RimSignature(format!(
            "SignedInfo: expected CanonicalizationMethod, SignatureMethod and one Reference, \
             found {} elements",
            parts.len()
        )));
    };
    if !c14n.is(NS_DSIG, "CanonicalizationMethod")
        || !method.is(NS_DSIG, "SignatureMethod")
        || !reference.is(NS_DSIG, "Reference")
    {
        return Err(NvidiaError::RimSignature(
            "SignedInfo: expected CanonicalizationMethod, SignatureMethod, Reference in this order"
                .into(),
        ));
    }
    expect_alg(c14n, ALG_C14N11)?;
    expect_alg(method, ALG_ECDSA_SHA384)?;
    if reference.attr("URI") != Some("") {
        return Err(NvidiaError::RimSignature(format!(
            "Reference: expected URI=\"\" (the whole document), found {:?}",
            reference.attr("URI")
        )));
    }
    let rparts: Vec<&Element> = reference.child_elements().collect();
    let [transforms, digest_method, digest_value] = rparts.as_slice() else {
        return Err(NvidiaError::RimSignature(
            "Reference: expected Transforms, DigestMethod and DigestValue".into(),
        ));
    };
    if !transforms.is(NS_DSIG, "Transforms")
        || !digest_method.is(NS_DSIG, "DigestMethod")
        || !digest_value.is(NS_DSIG, "DigestValue")
    {
        return Err(NvidiaError::RimSignature(
            "Reference: expected Transforms, DigestMethod, DigestValue in this order".into(),
        ));
    }
    let tlist: Vec<&Element> = transforms.child_elements().collect();
    let talgs: Vec<&str> = tlist
        .iter()
        .map(|t| {
            if t.is(NS_DSIG, "Transform") {
                algorithm(t)
            } else {
                Err(malformed("Transforms may hold only Transform elements"))
            }
        })
        .collect::<Result<_, _>>()?;
    if talgs != [ALG_ENVELOPED, ALG_C14N11] {
        return Err(NvidiaError::RimSignature(format!(
            "Transforms: expected [{ALG_ENVELOPED}, {ALG_C14N11}], found {talgs:?}"
        )));
    }
    expect_alg(digest_method, ALG_SHA384)?;
    let reference_digest = b64(&digest_value.text(), "DigestValue")?;
    let signature = b64(
        &one_child(sig, NS_DSIG, "SignatureValue")?.text(),
        "SignatureValue",
    )?;
    let key_info = one_child(sig, NS_DSIG, "KeyInfo")?;
    let x509_data = one_child(key_info, NS_DSIG, "X509Data")?;
    let certs_der = x509_data
        .child_elements()
        .filter(|c| c.is(NS_DSIG, "X509Certificate"))
        .map(|c| b64(&c.text(), "X509Certificate"))
        .collect::<Result<Vec<_>, _>>()?;
    if certs_der.is_empty() {
        return Err(NvidiaError::RimChain(
            "no X509Certificate in KeyInfo".into(),
        ));
    }
    let signed_info_c14n = xml::c14n(signed_info, None);
    let document_digest: [u8; 48] = Sha384::digest(xml::c14n(&root, Some(sig))).into();
    Ok(Rim {
        tag_id,
        version,
        edition,
        product,
        manufacturer_id,
        measurements,
        signed_info_c14n,
        reference_digest,
        document_digest,
        signature,
        certs_der,
    })
}

fn count_signatures(el: &Element) -> usize {
    usize::from(el.is(NS_DSIG, "Signature"))
        + el.child_elements().map(count_signatures).sum::<usize>()
}

/// Verify a parsed RIM's chain (to the pinned RIM root), validity at `at` and signature.
pub fn verify(rim: &Rim, at: DateTime<Utc>) -> Result<VerifiedRim, NvidiaError> {
    let root = x509::pinned(super::roots::RIM_ROOT_PEM);
    verify_with_root(rim, &root, at)
}

/// [`verify`] with an explicit trust anchor (DER). For tests that show a wrong anchor fails;
/// production code uses [`verify`].
pub fn verify_with_root_der(
    rim: &Rim,
    root_der: &[u8],
    at: DateTime<Utc>,
) -> Result<VerifiedRim, NvidiaError> {
    let root =
        Cert::parse(root_der, "trust anchor").map_err(|e| NvidiaError::RimChain(e.to_string()))?;
    verify_with_root(rim, &Ok(root), at)
}

fn verify_with_root(
    rim: &Rim,
    root: &Result<Cert, NvidiaError>,
    at: DateTime<Utc>,
) -> Result<VerifiedRim, NvidiaError> {
    let root = root.as_ref().map_err(Clone::clone)?;
    checked_path(rim, root, at).map(|c| c.verified)
}

/// A RIM's verified signing path, for the revocation check and the per-id cache.
pub(crate) struct CheckedPath {
    pub verified: VerifiedRim,
    /// Signer first, up to (not including) the root.
    pub path: Vec<Cert>,
    /// The latest notBefore and earliest notAfter over the path and the root (Unix seconds).
    pub window: (i64, i64),
}

pub(crate) fn checked_path(
    rim: &Rim,
    root: &Cert,
    at: DateTime<Utc>,
) -> Result<CheckedPath, NvidiaError> {
    let certs = rim
        .certs_der
        .iter()
        .enumerate()
        .map(|(i, d)| Cert::parse(d, &format!("RIM certificate #{i}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NvidiaError::RimChain(e.to_string()))?;
    let path = x509::build_path(&certs, root).map_err(NvidiaError::RimChain)?;
    let mut expiration = i64::MAX;
    let mut start = i64::MIN;
    for c in path.iter().copied().chain(std::iter::once(root)) {
        let (nb, na) = c.validity();
        expiration = expiration.min(na);
        start = start.max(nb);
        let t = at.timestamp();
        if t < nb || t > na {
            return Err(NvidiaError::RimExpired {
                cert: c.subject_cn(),
                not_before: x509::rfc3339(nb),
                not_after: x509::rfc3339(na),
                at: at.to_rfc3339(),
            });
        }
    }
    let signer = path
        .first()
        .ok_or_else(|| NvidiaError::RimChain("empty path".into()))?;
    // The digest before any public-key operation: it needs no key and refuses an altered document
    // at the cost of one SHA-384.
    if rim.reference_digest.as_slice() != rim.document_digest.as_slice() {
        return Err(NvidiaError::RimSignature(format!(
            "reference digest: expected SHA-384 {} of the canonical document, found {} in \
             DigestValue (the RIM was altered after signing)",
            hex::encode(rim.document_digest),
            hex::encode(&rim.reference_digest)
        )));
    }
    if rim.signature.len() != 96 {
        return Err(NvidiaError::RimSignature(format!(
            "SignatureValue: expected 96 bytes (P-384 r||s), found {}",
            rim.signature.len()
        )));
    }
    x509::check_path(&path, root).map_err(NvidiaError::RimChain)?;
    signer
        .verify_fixed(&rim.signed_info_c14n, &rim.signature)
        .map_err(|e| NvidiaError::RimSignature(format!("SignatureValue over SignedInfo: {e}")))?;
    Ok(CheckedPath {
        verified: VerifiedRim {
            cert_expiration: x509::rfc3339(expiration),
            signer_cn: signer.subject_cn(),
        },
        path: path.into_iter().cloned().collect(),
        window: (start, expiration),
    })
}

/// A RIM whose chain (to the pinned RIM root) and XML signature have been verified once, so that
/// many devices can be appraised against it without re-verifying its signature: only its
/// validity window is checked again at each use. Only [`CheckedRim::check`] makes one.
#[derive(Debug, Clone)]
pub struct CheckedRim {
    rim: Rim,
    verified: VerifiedRim,
    path: Vec<Cert>,
    window: (i64, i64),
}

impl CheckedRim {
    /// Verify `rim` as [`verify`] does, at `at`, and keep the result.
    pub fn check(rim: Rim, at: DateTime<Utc>) -> Result<CheckedRim, NvidiaError> {
        let root = x509::pinned(super::roots::RIM_ROOT_PEM)?;
        let c = checked_path(&rim, &root, at)?;
        Ok(CheckedRim {
            rim,
            verified: c.verified,
            path: c.path,
            window: c.window,
        })
    }

    pub fn rim(&self) -> &Rim {
        &self.rim
    }

    /// What verifying found (signer, earliest expiration).
    pub fn verified(&self) -> &VerifiedRim {
        &self.verified
    }

    /// The signing path as DER, signer first, ending with the pinned RIM root: the certificates
    /// an OCSP fetcher asks about (each with the next as its issuer).
    pub fn signing_path_der(&self) -> Vec<Vec<u8>> {
        let root = x509::pinned(super::roots::RIM_ROOT_PEM).map(|r| r.der).ok();
        self.path
            .iter()
            .map(|c| c.der.clone())
            .chain(root)
            .collect()
    }

    /// The verification result, provided `at` is still inside the signing path's validity
    /// window (`rim_expired` otherwise).
    pub(crate) fn at(&self, at: DateTime<Utc>) -> Result<CheckedPath, NvidiaError> {
        let t = at.timestamp();
        let (nb, na) = self.window;
        if t < nb || t > na {
            return Err(NvidiaError::RimExpired {
                cert: self.verified.signer_cn.clone() + " (signing path)",
                not_before: x509::rfc3339(nb),
                not_after: x509::rfc3339(na),
                at: at.to_rfc3339(),
            });
        }
        Ok(CheckedPath {
            verified: self.verified.clone(),
            path: self.path.clone(),
            window: self.window,
        })
    }
}
