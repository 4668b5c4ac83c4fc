//! Certificates and CRLs of the SEV-SNP hierarchy: splitting PEM/DER input, the extended-report
//! certificate table, X.509 parsing and the AMD VCEK/VLEK extensions (AMD "Versioned Chip
//! Endorsement Key (VCEK) Certificate and KDS Interface Specification", #57230).

use der::Decode;
use der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::name::Name;

use super::SnpError;

pub(crate) const OID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(crate) const OID_SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const OID_RSASSA_PSS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// AMD VCEK/VLEK extensions (1.3.6.1.4.1.3704.1.*).
pub(crate) const OID_STRUCT_VERSION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.1");
pub(crate) const OID_PRODUCT_NAME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
pub(crate) const OID_BL_SPL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
pub(crate) const OID_TEE_SPL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
pub(crate) const OID_SNP_SPL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
pub(crate) const OID_UCODE_SPL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
pub(crate) const OID_FMC_SPL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
pub(crate) const OID_HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");
pub(crate) const OID_CSP_ID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.5");

/// Split PEM text (any number of `CERTIFICATE` blocks, other blocks ignored) or binary DER (one or
/// more concatenated certificates) into one DER buffer per certificate. Each DER is checked to be a
/// complete X.509 certificate.
pub fn certs_from_pem_or_der(input: &[u8]) -> Result<Vec<Vec<u8>>, SnpError> {
    blocks_from_pem_or_der(input, &["CERTIFICATE"], "certificate").and_then(|v| {
        for (i, der) in v.iter().enumerate() {
            Certificate::from_der(der).map_err(|e| SnpError::MalformedCertificate {
                which: format!("certificate #{i} of the input"),
                reason: format!("not a DER X.509 certificate: {e}"),
            })?;
        }
        Ok(v)
    })
}

/// Like [`certs_from_pem_or_der`] without parsing the certificates: each block is only checked to
/// be one complete DER SEQUENCE. For request decoding, where the verifier parses (and caches) the
/// chain anyway and reports a malformed certificate as `malformed_certificate`.
pub fn cert_blocks_from_pem_or_der(input: &[u8]) -> Result<Vec<Vec<u8>>, SnpError> {
    let blocks = blocks_from_pem_or_der(input, &["CERTIFICATE"], "certificate")?;
    for (i, der) in blocks.iter().enumerate() {
        if tlv_len(der) != Some(der.len()) {
            return Err(SnpError::MalformedCertificate {
                which: format!("certificate #{i} of the input"),
                reason: format!(
                    "expected one DER SEQUENCE, found {} bytes that are not one",
                    der.len()
                ),
            });
        }
    }
    Ok(blocks)
}

/// Like [`certs_from_pem_or_der`] for CRLs (`X509 CRL` PEM blocks or DER).
pub fn crls_from_pem_or_der(input: &[u8]) -> Result<Vec<Vec<u8>>, SnpError> {
    blocks_from_pem_or_der(input, &["X509 CRL"], "crl").and_then(|v| {
        for (i, der) in v.iter().enumerate() {
            CertificateList::from_der(der).map_err(|e| {
                SnpError::MalformedCrl(format!("CRL #{i} of the input is not a DER CRL: {e}"))
            })?;
        }
        Ok(v)
    })
}

fn blocks_from_pem_or_der(
    input: &[u8],
    tags: &[&str],
    what: &str,
) -> Result<Vec<Vec<u8>>, SnpError> {
    let err = |reason: String| {
        if what == "crl" {
            SnpError::MalformedCrl(reason)
        } else {
            SnpError::MalformedCertificate {
                which: "input".into(),
                reason,
            }
        }
    };
    // PEM or DER is decided on the whole input (crate::pem::is_pem), so explanatory text before
    // the first block (OpenSSL output, RFC 7468 section 2) is PEM, not "bad DER".
    if crate::pem::is_pem(input) {
        return crate::pem::blocks_labelled(input, tags)
            .map_err(|e| err(format!("invalid PEM: {e}")));
    }
    let seqs = crate::pem::der_sequences(input).ok_or_else(|| {
        if input.trim_ascii().is_empty() {
            err("expected PEM or DER, found empty input".into())
        } else {
            err(format!(
                "expected PEM or DER, found {} bytes that are not a DER SEQUENCE",
                input.len()
            ))
        }
    })?;
    Ok(seqs.into_iter().map(<[u8]>::to_vec).collect())
}

/// Parse a DER header at the start of `b`: returns (header length, content length).
fn der_header(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some((2, first as usize));
    }
    let n = (first & 0x7F) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(2 + i)? as usize;
    }
    Some((2 + n, len))
}

/// Total length of the SEQUENCE TLV at the start of `b`, if it fits.
fn tlv_len(b: &[u8]) -> Option<usize> {
    if *b.first()? != 0x30 {
        return None;
    }
    let (h, l) = der_header(b)?;
    let total = h.checked_add(l)?;
    (total <= b.len()).then_some(total)
}

/// The raw bytes of the first element inside the outer SEQUENCE (the to-be-signed part of a
/// certificate or CRL), exactly as signed.
pub(crate) fn signed_part(der: &[u8]) -> Option<&[u8]> {
    let (h, _) = der_header(der)?;
    let inner = der.get(h..)?;
    let len = tlv_len(inner)?;
    inner.get(..len)
}

/// The SEV-SNP extended report certificate table (GHCB specification, MSG_REPORT_REQ / the Linux
/// `auxblob`): 24-byte entries `{ guid[16], offset u32, length u32 }` terminated by an all-zero
/// entry, offsets relative to the table start. GUIDs are in RFC 4122 byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertTableEntry {
    pub kind: CertTableKind,
    pub guid: [u8; 16],
    pub data: Vec<u8>,
}

/// What a certificate table entry holds, by GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertTableKind {
    /// 63da758d-e664-4564-adc5-f4b93be8accd
    Vcek,
    /// a8074bc2-a25a-483e-aae6-39c045a0b8a1
    Vlek,
    /// 4ab7b379-bbac-4fe4-a02f-05aef327c782 (ASK, also used for the ASVK)
    Ask,
    /// c0b406a4-a803-4952-9743-3fb6014cd0ae
    Ark,
    /// Any other GUID (kept, not interpreted).
    Other,
}

pub const GUID_VCEK: [u8; 16] = guid("63da758de6644564adc5f4b93be8accd");
pub const GUID_VLEK: [u8; 16] = guid("a8074bc2a25a483eaae639c045a0b8a1");
pub const GUID_ASK: [u8; 16] = guid("4ab7b379bbac4fe4a02f05aef327c782");
pub const GUID_ARK: [u8; 16] = guid("c0b406a4a803495297433fb6014cd0ae");

// Only evaluated at compile time (the GUID constants above): an out-of-bounds index is a build
// error there, not a run-time panic.
#[allow(clippy::indexing_slicing)]
const fn guid(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => continue,
        };
        out[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
        n += 1;
    }
    out
}

/// Parse an extended-report certificate table. An empty input is an empty table.
pub fn parse_cert_table(table: &[u8]) -> Result<Vec<CertTableEntry>, SnpError> {
    const ENTRY: usize = 24;
    let mut headers = Vec::new();
    let mut pos = 0usize;
    if table.is_empty() {
        return Ok(Vec::new());
    }
    loop {
        let e: [u8; ENTRY] = crate::bytes::array_at(table, pos).ok_or_else(|| {
            SnpError::MalformedCertTable(format!(
                "expected a 24-byte entry or the all-zero terminator at offset {pos}, found the end \
                 of the {}-byte table",
                table.len()
            ))
        })?;
        pos += ENTRY;
        let mut g = [0u8; 16];
        g.copy_from_slice(&e[..16]);
        let offset = u32::from_le_bytes([e[16], e[17], e[18], e[19]]) as usize;
        let length = u32::from_le_bytes([e[20], e[21], e[22], e[23]]) as usize;
        if g == [0u8; 16] && offset == 0 && length == 0 {
            break;
        }
        headers.push((g, offset, length));
    }
    let mut out = Vec::with_capacity(headers.len());
    for (i, (g, offset, length)) in headers.into_iter().enumerate() {
        if offset < pos {
            return Err(SnpError::MalformedCertTable(format!(
                "entry {i}: expected an offset past the {pos}-byte header, found {offset}"
            )));
        }
        let data = offset
            .checked_add(length)
            .and_then(|end| table.get(offset..end))
            .ok_or_else(|| {
                SnpError::MalformedCertTable(format!(
                    "entry {i}: bytes {offset}..{offset}+{length} exceed the {}-byte table",
                    table.len()
                ))
            })?;
        let kind = match g {
            GUID_VCEK => CertTableKind::Vcek,
            GUID_VLEK => CertTableKind::Vlek,
            GUID_ASK => CertTableKind::Ask,
            GUID_ARK => CertTableKind::Ark,
            _ => CertTableKind::Other,
        };
        out.push(CertTableEntry {
            kind,
            guid: g,
            data: data.to_vec(),
        });
    }
    Ok(out)
}

/// Endorsements from a certificate table: the VCEK, VLEK, ASK and ARK entries (other GUIDs are
/// ignored).
pub fn endorsements_from_cert_table(table: &[u8]) -> Result<super::Endorsements, SnpError> {
    let entries = parse_cert_table(table)?;
    let certs_der = entries
        .into_iter()
        .filter(|e| e.kind != CertTableKind::Other)
        .map(|e| e.data)
        .collect();
    Ok(super::Endorsements {
        certs_der,
        crls_der: Vec::new(),
    })
}

/// A parsed certificate with what the verifier needs from it.
pub(crate) struct ParsedCert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl ParsedCert {
    pub fn parse(der: &[u8], which: &str) -> Result<ParsedCert, SnpError> {
        let cert = Certificate::from_der(der).map_err(|e| SnpError::MalformedCertificate {
            which: which.to_string(),
            reason: format!("not a DER X.509 certificate: {e}"),
        })?;
        Ok(ParsedCert {
            der: der.to_vec(),
            cert,
        })
    }

    pub fn subject_cn(&self) -> String {
        common_name(&self.cert.tbs_certificate.subject).unwrap_or_default()
    }

    pub fn self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    pub fn key_oid(&self) -> ObjectIdentifier {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .algorithm
            .oid
    }

    pub fn is_ec(&self) -> bool {
        self.key_oid() == OID_EC_PUBLIC_KEY
    }

    /// The P-384 public key as an uncompressed SEC1 point.
    pub fn ec_p384_point(&self, which: &str) -> Result<Vec<u8>, SnpError> {
        p384_point(&self.cert.tbs_certificate.subject_public_key_info)
            .map(<[u8]>::to_vec)
            .map_err(|reason| SnpError::MalformedCertificate {
                which: which.into(),
                reason,
            })
    }

    /// The RSA public key (PKCS#1 RSAPublicKey DER) of an ASK/ASVK/ARK.
    pub fn rsa_public_key(&self, which: &str) -> Result<Vec<u8>, SnpError> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != OID_RSA_ENCRYPTION && spki.algorithm.oid != OID_RSASSA_PSS {
            return Err(SnpError::MalformedCertificate {
                which: which.into(),
                reason: format!(
                    "expected an RSA public key, found algorithm {}",
                    spki.algorithm.oid
                ),
            });
        }
        match spki.subject_public_key.as_bytes() {
            Some(k) if !k.is_empty() => Ok(k.to_vec()),
            _ => Err(SnpError::MalformedCertificate {
                which: which.into(),
                reason: "expected an RSA public key, found an empty or unaligned bit string".into(),
            }),
        }
    }

    /// Verify this certificate's RSASSA-PSS SHA-384 signature with `issuer_rsa_key`.
    pub fn verify_signed_by(&self, issuer_rsa_key: &[u8]) -> Result<(), String> {
        verify_rsa_pss(
            &self.der,
            &self.cert.signature_algorithm.oid,
            self.cert.signature.as_bytes(),
            issuer_rsa_key,
        )
    }

    /// (not_before, not_after) as Unix seconds.
    pub fn validity(&self) -> (i64, i64) {
        let v = &self.cert.tbs_certificate.validity;
        (unix(v.not_before), unix(v.not_after))
    }

    pub fn serial(&self) -> Vec<u8> {
        self.cert.tbs_certificate.serial_number.as_bytes().to_vec()
    }

    fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// An SPL extension: a DER INTEGER in 0..=255.
    pub fn spl(
        &self,
        oid: ObjectIdentifier,
        name: &str,
        which: &str,
    ) -> Result<Option<u8>, SnpError> {
        let Some(v) = self.extension(oid) else {
            return Ok(None);
        };
        u8::from_der(v)
            .map(Some)
            .map_err(|e| SnpError::MalformedCertificate {
                which: which.into(),
                reason: format!(
                    "extension {name} ({oid}): expected a DER INTEGER 0..=255, found {} ({e})",
                    hex::encode(v)
                ),
            })
    }

    /// The hwID extension: the chip identifier, raw octets (64 bytes before Turin, 8 bytes on
    /// Turin) or, as some KDS versions emit, wrapped in a DER OCTET STRING.
    pub fn hw_id(&self, which: &str) -> Result<Option<Vec<u8>>, SnpError> {
        let Some(v) = self.extension(OID_HW_ID) else {
            return Ok(None);
        };
        if v.len() == 64 || v.len() == 8 {
            return Ok(Some(v.to_vec()));
        }
        match OctetString::from_der(v) {
            Ok(o) if o.as_bytes().len() == 64 || o.as_bytes().len() == 8 => {
                Ok(Some(o.as_bytes().to_vec()))
            }
            _ => Err(SnpError::MalformedCertificate {
                which: which.into(),
                reason: format!(
                    "extension hwID ({OID_HW_ID}): expected 64 or 8 octets, found {} bytes",
                    v.len()
                ),
            }),
        }
    }

    /// An IA5String extension (productName, csp_id).
    pub fn ia5(
        &self,
        oid: ObjectIdentifier,
        name: &str,
        which: &str,
    ) -> Result<Option<String>, SnpError> {
        let Some(v) = self.extension(oid) else {
            return Ok(None);
        };
        der::asn1::Ia5StringRef::from_der(v)
            .map(|s| Some(s.as_str().to_string()))
            .map_err(|e| SnpError::MalformedCertificate {
                which: which.into(),
                reason: format!(
                    "extension {name} ({oid}): expected an IA5String, found {} ({e})",
                    hex::encode(v)
                ),
            })
    }
}

/// RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt, as AMD signs its certificates and
/// CRLs. aws-lc enforces hash, MGF and salt length; the algorithm OID is checked here.
pub(crate) fn verify_rsa_pss(
    signed_der: &[u8],
    alg_oid: &ObjectIdentifier,
    signature: Option<&[u8]>,
    issuer_rsa_key: &[u8],
) -> Result<(), String> {
    use aws_lc_rs::signature::{RSA_PSS_2048_8192_SHA384, UnparsedPublicKey};
    if *alg_oid != OID_RSASSA_PSS {
        return Err(format!(
            "expected signature algorithm RSASSA-PSS ({OID_RSASSA_PSS}), found {alg_oid}"
        ));
    }
    let tbs = signed_part(signed_der).ok_or("cannot locate the signed part of the DER")?;
    let sig = signature.ok_or("the signature bit string is not byte aligned")?;
    UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA384, issuer_rsa_key)
        .verify(tbs, sig)
        .map_err(|_| "RSASSA-PSS SHA-384 signature does not verify".to_string())
}

pub(crate) fn unix(t: x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The first CN of a name (UTF8String, PrintableString or IA5String).
pub(crate) fn common_name(name: &Name) -> Option<String> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
        if atv.oid != OID_COMMON_NAME {
            return None;
        }
        std::str::from_utf8(atv.value.value())
            .ok()
            .map(str::to_string)
    })
}

/// RFC 4514 rendering of a name, for messages.
pub(crate) fn name_string(name: &Name) -> String {
    name.to_string()
}

/// A parsed CRL.
pub(crate) struct ParsedCrl {
    pub der: Vec<u8>,
    pub crl: CertificateList,
}

impl ParsedCrl {
    pub fn parse(der: &[u8], index: usize) -> Result<ParsedCrl, SnpError> {
        let crl = CertificateList::from_der(der).map_err(|e| {
            SnpError::MalformedCrl(format!("CRL #{index}: not a DER X.509 CRL: {e}"))
        })?;
        Ok(ParsedCrl {
            der: der.to_vec(),
            crl,
        })
    }

    pub fn verify_signed_by(&self, issuer_rsa_key: &[u8]) -> Result<(), String> {
        verify_rsa_pss(
            &self.der,
            &self.crl.signature_algorithm.oid,
            self.crl.signature.as_bytes(),
            issuer_rsa_key,
        )
    }

    pub fn revokes(&self, serial: &[u8]) -> bool {
        self.crl
            .tbs_cert_list
            .revoked_certificates
            .as_ref()
            .is_some_and(|r| r.iter().any(|rc| rc.serial_number.as_bytes() == serial))
    }
}

/// The uncompressed SEC1 point of an EC P-384 public key, or what the key is instead (shared by
/// every verifier whose certificates carry P-384 keys: SNP's VCEK/VLEK, NVIDIA's chains).
pub(crate) fn p384_point(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
) -> Result<&[u8], String> {
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY || curve != Some(OID_SECP384R1) {
        return Err(format!(
            "expected an EC P-384 public key (1.2.840.10045.2.1 / 1.3.132.0.34), found {} / {}",
            spki.algorithm.oid,
            curve
                .map(|c| c.to_string())
                .unwrap_or_else(|| "no curve".into())
        ));
    }
    let key = spki.subject_public_key.as_bytes().unwrap_or_default();
    if key.len() != 97 || key.first() != Some(&0x04) {
        return Err(format!(
            "expected a 97-byte uncompressed P-384 point, found {} bytes",
            key.len()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_split_like_the_pem_crate() {
        // The pinned ARKs / ASKs and a chain with CRLF line ends, text between blocks and a block
        // of another kind: the same blocks as the `pem` crate finds.
        let chain = format!(
            "{}\r\nsubject=CN=ARK-Genoa\n-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----\n{}",
            super::super::roots::ARK_MILAN_PEM.replace('\n', "\r\n"),
            super::super::roots::ark_pem(super::super::Product::Genoa),
        );
        let ours = crate::pem::parse_all(chain.as_bytes()).unwrap();
        let theirs = pem::parse_many(chain.as_bytes()).unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!((o.label, o.contents.as_slice()), (t.tag(), t.contents()));
        }
        let certs = certs_from_pem_or_der(chain.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(
            cert_blocks_from_pem_or_der(chain.as_bytes()).unwrap(),
            certs
        );
    }

    #[test]
    fn pem_blocks_refuse_broken_text() {
        let ark = super::super::roots::ARK_MILAN_PEM;
        let cases: [(String, &str); 5] = [
            (
                ark.replace("-----END CERTIFICATE-----", ""),
                "expected -----END CERTIFICATE-----",
            ),
            (
                ark.replace("-----END CERTIFICATE-----", "-----END X509 CRL-----"),
                "expected -----END CERTIFICATE-----",
            ),
            (
                ark.replacen("\n", "\nProc-Type: 4,ENCRYPTED\n", 1),
                "encapsulated headers",
            ),
            (ark.replacen("M", "*", 1), "not base64"),
            ("-----BEGIN CERTIFICATE\nAAAA\n".to_string(), "BEGIN line"),
        ];
        for (text, why) in cases {
            let e = crate::pem::parse_all(text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{why}: {e}");
            assert!(certs_from_pem_or_der(text.as_bytes()).is_err());
        }
        // Not a certificate inside: the cheap splitter sees one SEQUENCE only when there is one.
        let junk = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert!(cert_blocks_from_pem_or_der(junk.as_bytes()).is_err());
    }

    #[test]
    fn guids() {
        assert_eq!(hex::encode(GUID_VCEK), "63da758de6644564adc5f4b93be8accd");
        assert_eq!(hex::encode(GUID_ARK), "c0b406a4a803495297433fb6014cd0ae");
    }

    #[test]
    fn cert_table_round_trip_and_bounds() {
        let mut t = Vec::new();
        t.extend_from_slice(&GUID_VCEK);
        t.extend_from_slice(&72u32.to_le_bytes());
        t.extend_from_slice(&3u32.to_le_bytes());
        t.extend_from_slice(&GUID_ARK);
        t.extend_from_slice(&75u32.to_le_bytes());
        t.extend_from_slice(&2u32.to_le_bytes());
        t.extend_from_slice(&[0u8; 24]);
        t.extend_from_slice(b"abcde");
        let e = parse_cert_table(&t).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].kind, e[0].data.as_slice()),
            (CertTableKind::Vcek, &b"abc"[..])
        );
        assert_eq!(
            (e[1].kind, e[1].data.as_slice()),
            (CertTableKind::Ark, &b"de"[..])
        );
        for cut in 0..t.len() - 5 {
            assert!(
                parse_cert_table(&t[..cut]).is_err() || cut == 0,
                "cut {cut}"
            );
        }
        let mut bad = t.clone();
        bad[20] = 0xFF; // length of entry 0 past the end
        assert!(matches!(
            parse_cert_table(&bad),
            Err(SnpError::MalformedCertTable(_))
        ));
        let mut bad = t.clone();
        bad[16] = 10; // offset into the header
        assert!(parse_cert_table(&bad).is_err());
        assert!(parse_cert_table(&[]).unwrap().is_empty());
    }

    #[test]
    fn der_helpers_never_panic() {
        for b in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x82, 0xFF],
        ] {
            assert!(signed_part(b).is_none());
            assert!(tlv_len(b).is_none());
        }
        assert!(certs_from_pem_or_der(b"").is_err());
        assert!(certs_from_pem_or_der(b"-----BEGIN CERTIFICATE-----\n").is_err());
        assert!(certs_from_pem_or_der(&[0x30, 0x00]).is_err());
    }
}
