//! The X.509 pieces both NVIDIA chains need: every certificate is EC P-384 signed with
//! ecdsa-with-SHA384 (anything else is refused), issuers must be CAs (basicConstraints cA).

use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use der::Decode;
use der::asn1::ObjectIdentifier;
use x509_cert::Certificate;

use super::NvidiaError;

const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// Longest path accepted below a root (NVIDIA's device chains have 4, RIM chains 3).
const MAX_PATH: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    pub fn parse(der: &[u8], which: &str) -> Result<Cert, NvidiaError> {
        let cert = Certificate::from_der(der).map_err(|e| NvidiaError::MalformedCertificate {
            which: which.to_string(),
            reason: format!("not a DER X.509 certificate: {e}"),
        })?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    pub fn subject_cn(&self) -> String {
        crate::snp::certs::common_name(&self.cert.tbs_certificate.subject)
            .unwrap_or_else(|| self.cert.tbs_certificate.subject.to_string())
    }

    pub fn self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    /// (not_before, not_after) in Unix seconds, as encoded (UTCTime or GeneralizedTime).
    pub fn validity(&self) -> (i64, i64) {
        let v = &self.cert.tbs_certificate.validity;
        (
            crate::snp::certs::unix(v.not_before),
            crate::snp::certs::unix(v.not_after),
        )
    }

    pub fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate.serial_number.as_bytes()
    }

    pub fn extension_oid(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// RFC 5280 4.2.1.9: a CA's pathLenConstraint bounds the intermediate CA certificates that
    /// may follow it below (the leaf not counted).
    pub fn check_path_len(&self, intermediates_below: usize) -> Result<(), String> {
        let limit = self
            .extension_oid(OID_BASIC_CONSTRAINTS)
            .and_then(|v| x509_cert::ext::pkix::BasicConstraints::from_der(v).ok())
            .and_then(|bc| bc.path_len_constraint);
        match limit {
            Some(n) if intermediates_below > usize::from(n) => Err(format!(
                "{}: pathLenConstraint {n} allows {n} intermediate CA(s) below it, found {intermediates_below}",
                self.subject_cn()
            )),
            _ => Ok(()),
        }
    }

    fn is_ca(&self) -> bool {
        self.extension_oid(OID_BASIC_CONSTRAINTS)
            .and_then(|v| x509_cert::ext::pkix::BasicConstraints::from_der(v).ok())
            .is_some_and(|bc| bc.ca)
    }

    /// The uncompressed P-384 point of this certificate's key.
    pub fn p384_key(&self) -> Result<&[u8], String> {
        crate::snp::certs::p384_point(&self.cert.tbs_certificate.subject_public_key_info)
            .map_err(|reason| format!("{}: {reason}", self.subject_cn()))
    }

    /// Verify a raw r||s ECDSA P-384 SHA-384 signature by this certificate's key.
    pub fn verify_fixed(&self, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        let key = self.p384_key()?;
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, key)
            .verify(msg, sig)
            .map_err(|_| {
                format!(
                    "the ECDSA P-384 signature does not verify under {}",
                    self.subject_cn()
                )
            })
    }

    /// Is `self` issued by `issuer` (issuer name, CA flag, ecdsa-with-SHA384 signature)?
    pub fn check_issued_by(&self, issuer: &Cert) -> Result<(), String> {
        let me = self.subject_cn();
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(format!(
                "{me}: expected issuer {}, found {}",
                issuer.cert.tbs_certificate.subject, self.cert.tbs_certificate.issuer
            ));
        }
        if !issuer.is_ca() {
            return Err(format!(
                "{me}: issuer {} is not a CA (basicConstraints cA)",
                issuer.subject_cn()
            ));
        }
        if self.cert.signature_algorithm.oid != OID_ECDSA_SHA384 {
            return Err(format!(
                "{me}: expected signature algorithm ecdsa-with-SHA384, found {}",
                self.cert.signature_algorithm.oid
            ));
        }
        let tbs = crate::snp::certs::signed_part(&self.der)
            .ok_or_else(|| format!("{me}: cannot locate the signed part"))?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or_else(|| format!("{me}: unaligned signature"))?;
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, issuer.p384_key()?)
            .verify(tbs, sig)
            .map_err(|_| {
                format!(
                    "{me}: signature does not verify under {}",
                    issuer.subject_cn()
                )
            })
    }
}

/// A pinned root (compile-time PEM).
pub(crate) fn pinned(pem: &str) -> Result<Cert, NvidiaError> {
    let der = crate::pem::certificates(pem.as_bytes())
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| NvidiaError::MalformedCertificate {
            which: "pinned root".into(),
            reason: "does not parse".into(),
        })?;
    Cert::parse(&der, "pinned root")
}

/// Build a path from `certs[0]` up to `root` by names only (no signature checked yet; see
/// [`check_path`]), picking issuers among `certs`. Self-issued certificates in `certs` are never
/// used (an embedded root is not a trust anchor).
pub(crate) fn build_path<'a>(certs: &'a [Cert], root: &Cert) -> Result<Vec<&'a Cert>, String> {
    let leaf = certs.first().ok_or("no certificate")?;
    if leaf.self_issued() {
        return Err(format!("the signer {} is self-issued", leaf.subject_cn()));
    }
    let mut path = vec![leaf];
    let mut cur = leaf;
    loop {
        if cur.cert.tbs_certificate.issuer == root.cert.tbs_certificate.subject {
            return Ok(path);
        }
        if path.len() >= MAX_PATH {
            return Err(format!(
                "no path to the pinned root within {MAX_PATH} certificates"
            ));
        }
        let next = certs
            .iter()
            .find(|c| {
                !c.self_issued()
                    && c.cert.tbs_certificate.subject == cur.cert.tbs_certificate.issuer
                    && !path.iter().any(|p| std::ptr::eq(*p, *c))
            })
            .ok_or_else(|| {
                format!(
                    "{}: issuer {} is neither the pinned root ({}) nor among the supplied \
                     intermediates",
                    cur.subject_cn(),
                    cur.cert.tbs_certificate.issuer,
                    root.cert.tbs_certificate.subject
                )
            })?;
        path.push(next);
        cur = next;
    }
}

/// Check every link of a path from [`build_path`]: each certificate issued (CA flag, signature)
/// by the next, the last by `root`.
pub(crate) fn check_path(path: &[&Cert], root: &Cert) -> Result<(), String> {
    for (i, c) in path.iter().enumerate() {
        let issuer = path.get(i + 1).copied().unwrap_or(root);
        c.check_issued_by(issuer)?;
        issuer.check_path_len(i)?;
    }
    Ok(())
}

pub(crate) fn rfc3339(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}
