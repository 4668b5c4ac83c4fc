//! Issuing certificates and PKCS #10 requests from a template and a PKCS #8 key.

use der::asn1::{
    Any, BitString, Ia5String, ObjectIdentifier, OctetString, SetOfVec, Utf8StringRef,
};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage as X509KeyUsage,
    KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::keys::SigningKey;
use crate::template::{CertTemplate, KeyUsage, UPN_OID};
use crate::{CertError, Result, Subject};

/// Who signs a certificate.
#[derive(Clone, Copy)]
pub enum Issuer<'a> {
    /// The certificate's own key (issuer name = subject).
    SelfSigned,
    /// A CA: its certificate (DER) and its private key (PKCS #8). The issuer name is copied from
    /// the CA certificate's subject byte for byte, the authority key identifier from its subject
    /// key identifier.
    Ca {
        cert_der: &'a [u8],
        key_pkcs8: &'a [u8],
    },
}

impl std::fmt::Debug for Issuer<'_> {
    // Never print the CA key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Issuer::SelfSigned => f.write_str("SelfSigned"),
            Issuer::Ca { .. } => f.write_str("Ca { .. }"),
        }
    }
}

fn der_err(what: &'static str) -> impl Fn(der::Error) -> CertError {
    move |e| CertError::Template(format!("cannot encode {what}: {e}"))
}

/// Unix seconds as an X.509 time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280).
fn x509_time(unix: i64) -> Result<Time> {
    let secs = u64::try_from(unix)
        .map_err(|_| CertError::Template(format!("expected a time after 1970, found {unix}")))?;
    let dt =
        der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs)).map_err(|e| {
            CertError::Template(format!("expected a representable time, found {unix}: {e}"))
        })?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(
            der::asn1::UtcTime::from_date_time(dt).map_err(der_err("a UTCTime"))?,
        ))
    } else {
        Ok(Time::GeneralTime(
            der::asn1::GeneralizedTime::from_date_time(dt),
        ))
    }
}

/// RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bits.
pub(crate) fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    let bits = spki.subject_public_key.raw_bytes();
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bits)
        .as_ref()
        .to_vec()
}

fn extension<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
    what: &'static str,
) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(der_err(what))?)
            .map_err(der_err(what))?,
    })
}

fn oid(s: &str) -> Result<ObjectIdentifier> {
    ObjectIdentifier::new(s)
        .map_err(|_| CertError::Template(format!("expected a dotted OID, found {s:?}")))
}

fn general_names(t: &CertTemplate) -> Result<Vec<GeneralName>> {
    let mut names = Vec::new();
    for d in &t.sans.dns_names {
        names.push(GeneralName::DnsName(
            Ia5String::new(d).map_err(der_err("a DNS name"))?,
        ));
    }
    for e in &t.sans.emails {
        names.push(GeneralName::Rfc822Name(
            Ia5String::new(e).map_err(der_err("an email"))?,
        ));
    }
    for u in &t.sans.upns {
        let value = Any::encode_from(&Utf8StringRef::new(u).map_err(der_err("a UPN"))?)
            .map_err(der_err("a UPN"))?;
        names.push(GeneralName::OtherName(OtherName {
            type_id: oid(UPN_OID)?,
            value,
        }));
    }
    Ok(names)
}

fn key_usage_ext(usages: &[KeyUsage]) -> Result<Option<Extension>> {
    if usages.is_empty() {
        return Ok(None);
    }
    let mut flags = der::flagset::FlagSet::<KeyUsages>::default();
    for u in usages {
        let bit = match u {
            KeyUsage::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsage::NonRepudiation => KeyUsages::NonRepudiation,
            KeyUsage::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsage::DataEncipherment => KeyUsages::DataEncipherment,
            KeyUsage::KeyAgreement => KeyUsages::KeyAgreement,
            KeyUsage::KeyCertSign => KeyUsages::KeyCertSign,
            KeyUsage::CrlSign => KeyUsages::CRLSign,
            KeyUsage::EncipherOnly => KeyUsages::EncipherOnly,
            KeyUsage::DecipherOnly => KeyUsages::DecipherOnly,
        };
        flags |= bit;
    }
    // RFC 5280 4.2.1.3: conforming CAs SHOULD mark keyUsage critical.
    Ok(Some(extension(
        const_oid_ku(),
        true,
        &X509KeyUsage(flags),
        "keyUsage",
    )?))
}

fn const_oid_ku() -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap("2.5.29.15")
}

/// The extensions a template asks for (SAN, keyUsage, EKU); shared by certificates and requests.
fn requested_extensions(t: &CertTemplate) -> Result<Vec<Extension>> {
    let mut exts = Vec::new();
    let names = general_names(t)?;
    if !names.is_empty() {
        // RFC 5280 4.2.1.6: critical when the subject is empty.
        exts.push(extension(
            ObjectIdentifier::new_unwrap("2.5.29.17"),
            t.subject.is_empty(),
            &SubjectAltName(names),
            "subjectAltName",
        )?);
    }
    if let Some(ku) = key_usage_ext(&t.key_usage)? {
        exts.push(ku);
    }
    if !t.ekus.is_empty() {
        let ekus = t.ekus.iter().map(|e| oid(e)).collect::<Result<Vec<_>>>()?;
        exts.push(extension(
            ObjectIdentifier::new_unwrap("2.5.29.37"),
            false,
            &ExtendedKeyUsage(ekus),
            "extendedKeyUsage",
        )?);
    }
    Ok(exts)
}

/// Issue a certificate for the key `subject_key_pkcs8` as the template says, signed by `issuer`.
/// Returns the certificate's DER.
///
/// The validity is taken as given, even past a CA's own notAfter: clamping is the caller's policy.
pub fn issue(
    template: &CertTemplate,
    subject_key_pkcs8: &[u8],
    issuer: Issuer<'_>,
) -> Result<Vec<u8>> {
    issue_with_path_len(template, subject_key_pkcs8, issuer, None)
}

fn issue_with_path_len(
    template: &CertTemplate,
    subject_key_pkcs8: &[u8],
    issuer: Issuer<'_>,
    path_len: Option<u8>,
) -> Result<Vec<u8>> {
    template.validate()?;
    let subject_key = SigningKey::from_pkcs8(subject_key_pkcs8)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&subject_key.spki_der()?)
        .map_err(|e| CertError::Key(format!("cannot read our own public key: {e}")))?;
    let ski = key_identifier(&spki);
    let subject = template.subject.to_name()?;

    // The signer, the issuer name and the authority key identifier.
    let ca_key;
    let (signer, issuer_name, aki): (&SigningKey, Name, Vec<u8>) = match issuer {
        Issuer::SelfSigned => (&subject_key, subject.clone(), ski.clone()),
        Issuer::Ca {
            cert_der,
            key_pkcs8,
        } => {
            let ca = crate::parse::ParsedCertificate::from_der(cert_der).map_err(|e| {
                CertError::Issuer(format!("expected the CA certificate as DER: {e}"))
            })?;
            if !ca.is_ca {
                return Err(CertError::Issuer(format!(
                    "expected a CA certificate (basicConstraints cA=TRUE), found an end-entity certificate for {:?}",
                    ca.subject
                )));
            }
            if !ca.key_usage.is_empty() && !ca.key_usage.contains(&KeyUsage::KeyCertSign) {
                return Err(CertError::Issuer(
                    "expected a CA certificate whose keyUsage allows keyCertSign, found one without it".into(),
                ));
            }
            ca_key = SigningKey::from_pkcs8(key_pkcs8)?;
            if !crate::keys::same_spki(&ca.spki_der, &ca_key.spki_der()?) {
                return Err(CertError::Issuer(
                    "expected the CA's private key, found a key that does not match the CA certificate".into(),
                ));
            }
            let ca_cert = Certificate::from_der(cert_der).map_err(|e| {
                CertError::Issuer(format!("expected the CA certificate as DER: {e}"))
            })?;
            let aki = ca.subject_key_id.clone().unwrap_or_else(|| {
                key_identifier(&ca_cert.tbs_certificate.subject_public_key_info)
            });
            (&ca_key, ca_cert.tbs_certificate.subject, aki)
        }
    };

    let mut exts = Vec::new();
    exts.push(extension(
        ObjectIdentifier::new_unwrap("2.5.29.19"),
        true,
        &BasicConstraints {
            ca: template.is_ca,
            path_len_constraint: if template.is_ca { path_len } else { None },
        },
        "basicConstraints",
    )?);
    exts.extend(requested_extensions(template)?);
    exts.push(extension(
        ObjectIdentifier::new_unwrap("2.5.29.14"),
        false,
        &SubjectKeyIdentifier(OctetString::new(ski).map_err(der_err("subjectKeyIdentifier"))?),
        "subjectKeyIdentifier",
    )?);
    exts.push(extension(
        ObjectIdentifier::new_unwrap("2.5.29.35"),
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(aki).map_err(der_err("authorityKeyIdentifier"))?),
            ..Default::default()
        },
        "authorityKeyIdentifier",
    )?);

    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&template.serial).map_err(der_err("the serial number"))?,
        signature: signer.signature_algorithm(),
        issuer: issuer_name,
        validity: Validity {
            not_before: x509_time(template.not_before)?,
            not_after: x509_time(template.not_after)?,
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    };
    let tbs_der = tbs.to_der().map_err(der_err("the certificate"))?;
    let sig = signer.sign(&tbs_der)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signer.signature_algorithm(),
        signature: BitString::from_bytes(&sig).map_err(der_err("the signature"))?,
    };
    cert.to_der().map_err(der_err("the certificate"))
}

/// A self-signed issuing CA: subject `CN=<common_name>`, basicConstraints cA=TRUE with pathLen 0
/// (it issues end-entity certificates only), keyUsage keyCertSign and cRLSign.
pub fn new_issuing_ca(
    key_pkcs8: &[u8],
    common_name: &str,
    not_before: i64,
    not_after: i64,
) -> Result<Vec<u8>> {
    if common_name.is_empty() {
        return Err(CertError::Template(
            "expected a CA common name, found an empty one".into(),
        ));
    }
    let subject = Subject {
        attributes: vec![crate::SubjectAttribute {
            oid: "2.5.4.3".into(),
            value: common_name.to_string(),
            multi_valued: false,
        }],
    };
    let mut t = CertTemplate::new(subject, not_before, not_after)?;
    t.is_ca = true;
    t.key_usage = vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign];
    issue_with_path_len(&t, key_pkcs8, Issuer::SelfSigned, Some(0))
}

/// A PKCS #10 certificate request (DER) for `key_pkcs8` with the template's subject and, in an
/// extensionRequest attribute, its SANs, key usage and EKUs. Validity, serial and `is_ca` are for
/// the CA to decide and are not in a request.
pub fn csr(template: &CertTemplate, key_pkcs8: &[u8]) -> Result<Vec<u8>> {
    if template.subject.is_empty() && template.sans.is_empty() {
        return Err(CertError::Template(
            "expected a subject or at least one subject alternative name, found neither".into(),
        ));
    }
    template.sans.validate()?;
    let key = SigningKey::from_pkcs8(key_pkcs8)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&key.spki_der()?)
        .map_err(|e| CertError::Key(format!("cannot read our own public key: {e}")))?;
    let exts = requested_extensions(template)?;
    let mut attributes = SetOfVec::new();
    if !exts.is_empty() {
        let value = Any::encode_from(&ExtensionReq(exts)).map_err(der_err("extensionRequest"))?;
        attributes
            .insert(Attribute {
                oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14"),
                values: SetOfVec::try_from(vec![value]).map_err(der_err("extensionRequest"))?,
            })
            .map_err(der_err("extensionRequest"))?;
    }
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: template.subject.to_name()?,
        public_key: spki,
        attributes,
    };
    let info_der = info.to_der().map_err(der_err("the request"))?;
    let sig = key.sign(&info_der)?;
    CertReq {
        info,
        algorithm: key.signature_algorithm(),
        signature: BitString::from_bytes(&sig).map_err(der_err("the signature"))?,
    }
    .to_der()
    .map_err(der_err("the request"))
}
