//! Reading certificates: what Key Vault's CertificateBundle and policy need from one.

use base64::Engine;
use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
use der::{Decode, Encode, Sequence};
use spki::AlgorithmIdentifierRef;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage as X509KeyUsage,
    SubjectAltName, SubjectKeyIdentifier,
};

use crate::subject::{any_to_string, name_to_string};
use crate::template::{KeyUsage, SubjectAltNames, UPN_OID};
use crate::{CertError, Result};

/// A certificate as Key Vault shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCertificate {
    /// The subject in Key Vault's string form ("CN=a, O=b": most specific first).
    pub subject: String,
    /// The issuer in the same form.
    pub issuer: String,
    pub sans: SubjectAltNames,
    /// The serial number, lower-case hex without leading zero bytes.
    pub serial_hex: String,
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// base64url (no padding) SHA-1 of the DER: Key Vault's `x5t`.
    pub x5t: String,
    /// base64url (no padding) SHA-256 of the DER.
    pub x5t_s256: String,
    /// Empty when the certificate has no keyUsage extension.
    pub key_usage: Vec<KeyUsage>,
    /// Dotted OIDs; empty when there is no extendedKeyUsage extension.
    pub ekus: Vec<String>,
    /// basicConstraints cA=TRUE.
    pub is_ca: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// Subject and issuer names are the same DER (a self-issued, usually self-signed, certificate).
    pub self_issued: bool,
}

fn cert_err(e: der::Error) -> CertError {
    CertError::Certificate(format!("expected a DER X.509 certificate: {e}"))
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl ParsedCertificate {
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = Certificate::from_der(der).map_err(cert_err)?;
        let tbs = &cert.tbs_certificate;
        let mut out = Self {
            subject: name_to_string(&tbs.subject),
            issuer: name_to_string(&tbs.issuer),
            sans: SubjectAltNames::default(),
            serial_hex: hex::encode(strip_zeros(tbs.serial_number.as_bytes())),
            not_before: unix(tbs.validity.not_before),
            not_after: unix(tbs.validity.not_after),
            spki_der: tbs.subject_public_key_info.to_der().map_err(cert_err)?,
            x5t: b64url(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
                    .as_ref(),
            ),
            x5t_s256: b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref()),
            key_usage: Vec::new(),
            ekus: Vec::new(),
            is_ca: false,
            subject_key_id: None,
            authority_key_id: None,
            self_issued: tbs.subject == tbs.issuer,
        };
        let ext_err = |what: &str, e: der::Error| {
            CertError::Certificate(format!("expected a DER {what} extension: {e}"))
        };
        if let Some((_, san)) = tbs
            .get::<SubjectAltName>()
            .map_err(|e| ext_err("subjectAltName", e))?
        {
            for name in san.0 {
                match name {
                    GeneralName::DnsName(s) => out.sans.dns_names.push(s.to_string()),
                    GeneralName::Rfc822Name(s) => out.sans.emails.push(s.to_string()),
                    GeneralName::OtherName(o) if o.type_id.to_string() == UPN_OID => {
                        if let Some(s) = any_to_string(&o.value) {
                            out.sans.upns.push(s);
                        }
                    }
                    // IP addresses, URIs and directory names are not in Key Vault's model.
                    _ => {}
                }
            }
        }
        if let Some((_, ku)) = tbs
            .get::<X509KeyUsage>()
            .map_err(|e| ext_err("keyUsage", e))?
        {
            let bits = ku.0.bits();
            out.key_usage = KeyUsage::ALL
                .into_iter()
                .filter(|u| bits & u.bit() != 0)
                .collect();
        }
        if let Some((_, eku)) = tbs
            .get::<ExtendedKeyUsage>()
            .map_err(|e| ext_err("extendedKeyUsage", e))?
        {
            out.ekus = eku.0.iter().map(ObjectIdentifier::to_string).collect();
        }
        if let Some((_, bc)) = tbs
            .get::<BasicConstraints>()
            .map_err(|e| ext_err("basicConstraints", e))?
        {
            out.is_ca = bc.ca;
        }
        if let Some((_, ski)) = tbs
            .get::<SubjectKeyIdentifier>()
            .map_err(|e| ext_err("subjectKeyIdentifier", e))?
        {
            out.subject_key_id = Some(ski.0.as_bytes().to_vec());
        }
        if let Some((_, aki)) = tbs
            .get::<AuthorityKeyIdentifier>()
            .map_err(|e| ext_err("authorityKeyIdentifier", e))?
        {
            out.authority_key_id = aki.key_identifier.map(|k| k.as_bytes().to_vec());
        }
        Ok(out)
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|x| *x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    b.get(start..).unwrap_or(b)
}

fn unix(t: x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The parts of a certificate chain ordering and key matching need, as DER.
pub(crate) struct NamesAndSpki {
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub spki: Vec<u8>,
}

pub(crate) fn names_and_spki(der: &[u8]) -> Result<NamesAndSpki> {
    let cert = Certificate::from_der(der).map_err(cert_err)?;
    let tbs = cert.tbs_certificate;
    Ok(NamesAndSpki {
        subject: tbs.subject.to_der().map_err(cert_err)?,
        issuer: tbs.issuer.to_der().map_err(cert_err)?,
        spki: tbs.subject_public_key_info.to_der().map_err(cert_err)?,
    })
}

/// A certificate with its to-be-signed part kept as the bytes that were signed.
#[derive(Sequence)]
struct RawCertificate<'a> {
    tbs: AnyRef<'a>,
    algorithm: AlgorithmIdentifierRef<'a>,
    signature: BitStringRef<'a>,
}

/// Check that `cert_der`'s signature verifies with `issuer_der`'s public key and that its issuer
/// name is the issuer's subject. Validity and extensions are not checked here (see
/// [`ParsedCertificate`] for them).
pub fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<()> {
    use aws_lc_rs::signature as sig;
    let raw = RawCertificate::from_der(cert_der).map_err(cert_err)?;
    let child = names_and_spki(cert_der)?;
    let issuer = names_and_spki(issuer_der)?;
    if child.issuer != issuer.subject {
        return Err(CertError::Signature(
            "expected the certificate's issuer name to be the issuer certificate's subject, found another name".into(),
        ));
    }
    let issuer_spki = spki::SubjectPublicKeyInfoRef::from_der(&issuer.spki).map_err(cert_err)?;
    let key_bits = issuer_spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CertError::Certificate("expected a public key of whole bytes".into()))?;
    let alg = raw.algorithm.oid.to_string();
    let is_rsa = issuer_spki.algorithm.oid.to_string() == "1.2.840.113549.1.1.1";
    let curve = issuer_spki
        .algorithm
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    let verifier: &'static dyn sig::VerificationAlgorithm = match (
        alg.as_str(),
        is_rsa,
        curve.as_deref(),
    ) {
        ("1.2.840.113549.1.1.11", true, _) => &sig::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", true, _) => &sig::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", true, _) => &sig::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", false, Some("1.2.840.10045.3.1.7")) => &sig::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", false, Some("1.2.840.10045.3.1.7")) => &sig::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.2", false, Some("1.3.132.0.34")) => &sig::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", false, Some("1.3.132.0.34")) => &sig::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.10045.4.3.4", false, Some("1.3.132.0.35")) => &sig::ECDSA_P521_SHA512_ASN1,
        _ => {
            return Err(CertError::Signature(format!(
                "expected sha256/384/512WithRSAEncryption by an RSA key or ecdsa-with-SHA256/384/512 by a P-256/P-384/P-521 key, found signature algorithm {alg}"
            )));
        }
    };
    let signature = raw
        .signature
        .as_bytes()
        .ok_or_else(|| CertError::Certificate("expected a signature of whole bytes".into()))?;
    let tbs = raw.tbs.to_der().map_err(cert_err)?;
    sig::UnparsedPublicKey::new(verifier, key_bits)
        .verify(&tbs, signature)
        .map_err(|_| {
            CertError::Signature(
                "the signature does not verify with the issuer's public key".into(),
            )
        })
}
