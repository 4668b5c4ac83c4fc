//! What a certificate is to say: Key Vault's `x509_props` turned into a template.

use serde::{Deserialize, Serialize};

use crate::{CertError, Result, Subject};

/// The otherName type of a user principal name SAN (Microsoft).
pub const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

/// Key Vault's key usage names (`x509_props.key_usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyUsage {
    #[serde(rename = "digitalSignature")]
    DigitalSignature,
    #[serde(rename = "nonRepudiation")]
    NonRepudiation,
    #[serde(rename = "keyEncipherment")]
    KeyEncipherment,
    #[serde(rename = "dataEncipherment")]
    DataEncipherment,
    #[serde(rename = "keyAgreement")]
    KeyAgreement,
    #[serde(rename = "keyCertSign")]
    KeyCertSign,
    #[serde(rename = "cRLSign")]
    CrlSign,
    #[serde(rename = "encipherOnly")]
    EncipherOnly,
    #[serde(rename = "decipherOnly")]
    DecipherOnly,
}

impl KeyUsage {
    /// Every usage, in bit order (bit 0 = digitalSignature).
    pub const ALL: [KeyUsage; 9] = [
        KeyUsage::DigitalSignature,
        KeyUsage::NonRepudiation,
        KeyUsage::KeyEncipherment,
        KeyUsage::DataEncipherment,
        KeyUsage::KeyAgreement,
        KeyUsage::KeyCertSign,
        KeyUsage::CrlSign,
        KeyUsage::EncipherOnly,
        KeyUsage::DecipherOnly,
    ];

    /// The bit of the keyUsage BIT STRING (RFC 5280 4.2.1.3).
    pub fn bit(self) -> u16 {
        // ALL is in bit order, so the index is the bit.
        let i = Self::ALL.iter().position(|u| *u == self).unwrap_or(0);
        1 << i
    }

    /// Key Vault's name of the usage.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUsage::DigitalSignature => "digitalSignature",
            KeyUsage::NonRepudiation => "nonRepudiation",
            KeyUsage::KeyEncipherment => "keyEncipherment",
            KeyUsage::DataEncipherment => "dataEncipherment",
            KeyUsage::KeyAgreement => "keyAgreement",
            KeyUsage::KeyCertSign => "keyCertSign",
            KeyUsage::CrlSign => "cRLSign",
            KeyUsage::EncipherOnly => "encipherOnly",
            KeyUsage::DecipherOnly => "decipherOnly",
        }
    }
}

/// Key Vault's `x509_props.sans`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubjectAltNames {
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub upns: Vec<String>,
}

impl SubjectAltNames {
    pub fn is_empty(&self) -> bool {
        self.dns_names.is_empty() && self.emails.is_empty() && self.upns.is_empty()
    }

    /// Refuse names that cannot be encoded (dNSName and rfc822Name are IA5String).
    pub fn validate(&self) -> Result<()> {
        for d in &self.dns_names {
            if d.is_empty()
                || !d.is_ascii()
                || d.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control())
            {
                return Err(CertError::Template(format!(
                    "expected an ASCII DNS name without spaces in sans.dns_names, found {:?}",
                    d.chars().take(64).collect::<String>()
                )));
            }
        }
        for e in &self.emails {
            let ok = e.is_ascii()
                && e.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
                && !e.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control());
            if !ok {
                return Err(CertError::Template(format!(
                    "expected an ASCII address local@domain in sans.emails, found {:?}",
                    e.chars().take(64).collect::<String>()
                )));
            }
        }
        for u in &self.upns {
            if u.is_empty() || u.contains(char::is_control) {
                return Err(CertError::Template(format!(
                    "expected a user principal name in sans.upns, found {:?}",
                    u.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(())
    }
}

/// Everything an issued certificate (or a request) says, except its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertTemplate {
    pub subject: Subject,
    pub sans: SubjectAltNames,
    /// Empty: no keyUsage extension.
    pub key_usage: Vec<KeyUsage>,
    /// Extended key usages as dotted OIDs ("1.3.6.1.5.5.7.3.1" = serverAuth). Empty: no extension.
    pub ekus: Vec<String>,
    /// Validity, unix seconds (whole seconds: X.509 times have no fractions).
    pub not_before: i64,
    pub not_after: i64,
    /// The serial number: big-endian, positive (see [`random_serial`]).
    pub serial: [u8; 16],
    /// A CA certificate (basicConstraints cA=TRUE) rather than an end entity.
    pub is_ca: bool,
}

impl CertTemplate {
    /// A template with a random serial and nothing but a subject and a validity.
    pub fn new(subject: Subject, not_before: i64, not_after: i64) -> Result<Self> {
        Ok(Self {
            subject,
            sans: SubjectAltNames::default(),
            key_usage: Vec::new(),
            ekus: Vec::new(),
            not_before,
            not_after,
            serial: random_serial()?,
            is_ca: false,
        })
    }

    /// Refuse what cannot be issued: no name at all, a bad SAN or EKU, an empty validity.
    pub fn validate(&self) -> Result<()> {
        if self.subject.is_empty() && self.sans.is_empty() {
            return Err(CertError::Template(
                "expected a subject or at least one subject alternative name, found neither".into(),
            ));
        }
        self.sans.validate()?;
        for eku in &self.ekus {
            der::asn1::ObjectIdentifier::new(eku).map_err(|_| {
                CertError::Template(format!(
                    "expected a dotted OID in ekus (e.g. 1.3.6.1.5.5.7.3.1), found {:?}",
                    eku.chars().take(64).collect::<String>()
                ))
            })?;
        }
        if self.not_before < 0 || self.not_after <= self.not_before {
            return Err(CertError::Template(format!(
                "expected 0 <= not_before < not_after, found not_before {} and not_after {}",
                self.not_before, self.not_after
            )));
        }
        // X.509 GeneralizedTime stops at year 9999.
        if self.not_after > 253_402_300_799 {
            return Err(CertError::Template(format!(
                "expected not_after before the year 10000, found {}",
                self.not_after
            )));
        }
        if self.serial.iter().all(|b| *b == 0) || self.serial[0] & 0x80 != 0 {
            return Err(CertError::Template(
                "expected a positive, non-zero serial number".into(),
            ));
        }
        Ok(())
    }
}

/// 16 random bytes as a positive serial number of exactly 16 bytes (top bit clear, next set, so
/// DER needs no padding byte and drops no leading zero).
pub fn random_serial() -> Result<[u8; 16]> {
    let mut s = [0u8; 16];
    aws_lc_rs::rand::fill(&mut s).map_err(|_| CertError::Crypto("random serial"))?;
    s[0] = (s[0] & 0x7f) | 0x40;
    Ok(s)
}
