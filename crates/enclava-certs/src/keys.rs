//! Private keys of certificates: PKCS #8 in, what kind and size they are, their public key
//! (SubjectPublicKeyInfo), signing, and conversion of PKCS #1 / SEC 1 keys to PKCS #8.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, RsaKeyPair};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::{CertError, Result};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");

/// The NIST curves of Key Vault EC keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EcCurve {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
    #[serde(rename = "P-521")]
    P521,
}

impl EcCurve {
    pub const ALL: [EcCurve; 3] = [EcCurve::P256, EcCurve::P384, EcCurve::P521];

    /// Key Vault's name ("P-256").
    pub fn as_str(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        }
    }

    /// The namedCurve OID.
    pub fn oid(self) -> &'static str {
        match self {
            EcCurve::P256 => "1.2.840.10045.3.1.7",
            EcCurve::P384 => "1.3.132.0.34",
            EcCurve::P521 => "1.3.132.0.35",
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        let s = oid.to_string();
        Self::ALL.into_iter().find(|c| c.oid() == s)
    }

    fn signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            EcCurve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            EcCurve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            EcCurve::P521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        }
    }

    fn signature_oid(self) -> ObjectIdentifier {
        match self {
            EcCurve::P256 => ECDSA_SHA256,
            EcCurve::P384 => ECDSA_SHA384,
            EcCurve::P521 => ECDSA_SHA512,
        }
    }
}

/// What a key is: Key Vault's `kty` with `key_size` or `crv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeySpec {
    Rsa { bits: u32 },
    Ec { curve: EcCurve },
}

/// A PKCS #8 key ready to sign.
pub(crate) enum SigningKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, EcCurve),
}

impl SigningKey {
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfo::from_der(pkcs8).map_err(|e| {
            CertError::Key(format!(
                "expected a PKCS #8 PrivateKeyInfo (DER), found bytes that are not one: {e}"
            ))
        })?;
        let alg = info.algorithm.oid;
        if alg == RSA_ENCRYPTION {
            let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| {
                CertError::Key(format!(
                    "expected an RSA key of 2048 to 8192 bits, found one aws-lc refuses: {e}"
                ))
            })?;
            return Ok(Self::Rsa(kp));
        }
        if alg == EC_PUBLIC_KEY {
            let curve_oid: Option<ObjectIdentifier> = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            let curve = curve_oid
                .as_ref()
                .and_then(EcCurve::from_oid)
                .ok_or_else(|| {
                    CertError::Key(format!(
                        "expected an EC key on P-256, P-384 or P-521, found curve {}",
                        curve_oid.map_or_else(
                            || "parameters that are not a named curve".to_string(),
                            |o| o.to_string()
                        )
                    ))
                })?;
            let kp = EcdsaKeyPair::from_pkcs8(curve.signing(), pkcs8).map_err(|e| {
                CertError::Key(format!(
                    "expected a valid {} private key, found one aws-lc refuses: {e}",
                    curve.as_str()
                ))
            })?;
            return Ok(Self::Ec(kp, curve));
        }
        Err(CertError::Key(format!(
            "expected an RSA (1.2.840.113549.1.1.1) or EC (1.2.840.10045.2.1) key, found algorithm {alg}"
        )))
    }

    pub(crate) fn spec(&self) -> KeySpec {
        match self {
            SigningKey::Rsa(kp) => KeySpec::Rsa {
                bits: u32::try_from(kp.public_modulus_len() * 8).unwrap_or(u32::MAX),
            },
            SigningKey::Ec(_, curve) => KeySpec::Ec { curve: *curve },
        }
    }

    /// The SubjectPublicKeyInfo, DER.
    pub(crate) fn spki_der(&self) -> Result<Vec<u8>> {
        let der: Result<PublicKeyX509Der<'static>, _> = match self {
            SigningKey::Rsa(kp) => kp.public_key().as_der(),
            SigningKey::Ec(kp, _) => kp.public_key().as_der(),
        };
        der.map(|d| d.as_ref().to_vec())
            .map_err(|_| CertError::Crypto("encode public key"))
    }

    /// The signature algorithm this key signs certificates with.
    pub(crate) fn signature_algorithm(&self) -> AlgorithmIdentifierOwned {
        match self {
            // RFC 4055: the parameters of sha256WithRSAEncryption are an explicit NULL.
            SigningKey::Rsa(_) => AlgorithmIdentifierOwned {
                oid: SHA256_WITH_RSA,
                parameters: Some(der::asn1::Any::null()),
            },
            // RFC 5758: ecdsa-with-SHA* have no parameters.
            SigningKey::Ec(_, curve) => AlgorithmIdentifierOwned {
                oid: curve.signature_oid(),
                parameters: None,
            },
        }
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| CertError::Crypto("RSA signature"))?;
                Ok(sig)
            }
            SigningKey::Ec(kp, _) => kp
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CertError::Crypto("ECDSA signature")),
        }
    }
}

/// What kind and size of key a PKCS #8 private key is (RSA bits, EC curve); other keys refused.
pub fn key_spec(pkcs8: &[u8]) -> Result<KeySpec> {
    Ok(SigningKey::from_pkcs8(pkcs8)?.spec())
}

/// The SubjectPublicKeyInfo (DER) of a PKCS #8 private key.
pub fn public_key_spki(pkcs8: &[u8]) -> Result<Vec<u8>> {
    SigningKey::from_pkcs8(pkcs8)?.spki_der()
}

/// Whether the certificate's public key is the public half of `key_pkcs8`. Compared as decoded
/// SubjectPublicKeyInfo (algorithm, parameters, key bits), so an explicit-vs-absent NULL or a
/// different length encoding does not make a match fail.
pub fn matches_key(cert_der: &[u8], key_pkcs8: &[u8]) -> Result<bool> {
    let cert = crate::parse::names_and_spki(cert_der)?;
    let ours = public_key_spki(key_pkcs8)?;
    Ok(same_spki(&cert.spki, &ours))
}

pub(crate) fn same_spki(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (Ok(a), Ok(b)) = (
        spki::SubjectPublicKeyInfoRef::from_der(a),
        spki::SubjectPublicKeyInfoRef::from_der(b),
    ) else {
        return false;
    };
    let params = |p: Option<der::asn1::AnyRef<'_>>| {
        p.filter(|p| !p.is_null())
            .map(|p| p.to_der().unwrap_or_default())
    };
    a.algorithm.oid == b.algorithm.oid
        && params(a.algorithm.parameters) == params(b.algorithm.parameters)
        && a.subject_public_key == b.subject_public_key
}

/// A PKCS #1 RSAPrivateKey (PEM `RSA PRIVATE KEY`) as PKCS #8.
pub fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let kp = RsaKeyPair::from_der(pkcs1).map_err(|e| {
        CertError::Key(format!(
            "expected a PKCS #1 RSAPrivateKey of 2048 to 8192 bits, found one aws-lc refuses: {e}"
        ))
    })?;
    let der: Pkcs8V1Der<'static> = kp
        .as_der()
        .map_err(|_| CertError::Crypto("encode PKCS #8"))?;
    Ok(Zeroizing::new(der.as_ref().to_vec()))
}

/// A SEC 1 ECPrivateKey (PEM `EC PRIVATE KEY`) as PKCS #8. The curve comes from the key's
/// parameters; a key without them is tried on each curve, and its public key (which OpenSSL
/// always writes) must then fit that curve.
pub fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    for curve in EcCurve::ALL {
        if let Ok(kp) = EcdsaKeyPair::from_private_key_der(curve.signing(), sec1) {
            let doc = kp
                .to_pkcs8v1()
                .map_err(|_| CertError::Crypto("encode PKCS #8"))?;
            return Ok(Zeroizing::new(doc.as_ref().to_vec()));
        }
    }
    Err(CertError::Key(
        "expected a SEC 1 ECPrivateKey on P-256, P-384 or P-521, found bytes aws-lc refuses".into(),
    ))
}

/// A new private key (PKCS #8) of the given kind: RSA 2048, 3072 or 4096 bits, or EC.
pub fn generate(spec: KeySpec) -> Result<Zeroizing<Vec<u8>>> {
    match spec {
        KeySpec::Rsa { bits } => {
            let size = match bits {
                2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                other => {
                    return Err(CertError::Key(format!(
                        "expected an RSA key size of 2048, 3072 or 4096 bits, found {other}"
                    )));
                }
            };
            let kp =
                RsaKeyPair::generate(size).map_err(|_| CertError::Crypto("RSA key generation"))?;
            let der: Pkcs8V1Der<'static> = kp
                .as_der()
                .map_err(|_| CertError::Crypto("encode PKCS #8"))?;
            Ok(Zeroizing::new(der.as_ref().to_vec()))
        }
        KeySpec::Ec { curve } => {
            let kp = EcdsaKeyPair::generate(curve.signing())
                .map_err(|_| CertError::Crypto("EC key generation"))?;
            let doc = kp
                .to_pkcs8v1()
                .map_err(|_| CertError::Crypto("encode PKCS #8"))?;
            Ok(Zeroizing::new(doc.as_ref().to_vec()))
        }
    }
}
