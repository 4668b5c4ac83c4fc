//! DCAP quote wire format: SGX quote v3 ("SGX ECDSA Quote Library API"), TDX quote v4 and v5
//! ("Intel TDX DCAP Quoting Library API"). Every read is bounds checked; nothing here panics.
//!
//! Layout (all integers little endian):
//! - header, 48 bytes: version u16, attestation key type u16 (2 = ECDSA-256 P-256), TEE type u32
//!   (0 = SGX, 0x81 = TDX; reserved in v3), QE SVN u16, PCE SVN u16, QE vendor id \[16\], user data \[20\];
//! - v3/v4 body: SGX report body (384) or TDX 1.0 TD report (584); v5: body type u16 (1 = SGX,
//!   2 = TDX 1.0, 3 = TDX 1.5), body size u32, then the body (384 / 584 / 648 bytes);
//! - the quote signature covers everything above; then signature data length u32 and the data:
//!   signature r||s \[64\], attestation key x||y \[64\], then
//!   - v3: QE report \[384\], QE report signature \[64\], QE auth data (u16 len + bytes), certification
//!     data (type u16 = 5, size u32, PEM PCK chain);
//!   - v4/v5: certification data type u16 = 6, size u32, containing the QE report, its signature, the
//!     QE auth data and the nested type 5 PCK chain as above.
//!
//! Trailing bytes after the signature data are ignored (some producers pad quotes).

use super::DcapError;

/// Quote header length.
pub const HEADER_LEN: usize = 48;
/// SGX report body (also the QE report) length.
pub const SGX_REPORT_LEN: usize = 384;
/// TDX 1.0 TD report body length.
pub const TD10_REPORT_LEN: usize = 584;
/// TDX 1.5 TD report body length.
pub const TD15_REPORT_LEN: usize = 648;

/// TEE type of SGX quotes.
pub const TEE_TYPE_SGX: u32 = 0x0000_0000;
/// TEE type of TDX quotes.
pub const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Attestation key type ECDSA-256-with-P-256.
pub const ATT_KEY_ECDSA_P256: u16 = 2;

/// The 48-byte quote header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteHeader {
    pub version: u16,
    pub attestation_key_type: u16,
    pub tee_type: u32,
    pub qe_svn: u16,
    pub pce_svn: u16,
    pub qe_vendor_id: [u8; 16],
    pub user_data: [u8; 20],
}

/// SGX report body (an enclave's REPORT as embedded in quotes; also the QE report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxReportBody {
    pub cpu_svn: [u8; 16],
    pub misc_select: u32,
    pub isv_ext_prod_id: [u8; 16],
    pub attributes: [u8; 16],
    pub mr_enclave: [u8; 32],
    pub mr_signer: [u8; 32],
    pub config_id: [u8; 64],
    pub isv_prod_id: u16,
    pub isv_svn: u16,
    pub config_svn: u16,
    pub isv_family_id: [u8; 16],
    pub report_data: [u8; 64],
}

/// TDX TD report body (TDX 1.0; the TDX 1.5 fields are `Some` for body type 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdReportBody {
    pub tee_tcb_svn: [u8; 16],
    pub mr_seam: [u8; 48],
    pub mr_signer_seam: [u8; 48],
    pub seam_attributes: [u8; 8],
    pub td_attributes: [u8; 8],
    pub xfam: [u8; 8],
    pub mr_td: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub mr_owner: [u8; 48],
    pub mr_owner_config: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
    pub tee_tcb_svn2: Option<[u8; 16]>,
    pub mr_servicetd: Option<[u8; 48]>,
}

/// The attested body of a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteBody {
    Sgx(Box<SgxReportBody>),
    Td(Box<TdReportBody>),
}

/// A parsed DCAP quote (owned copies of every field; the signed bytes are kept for verification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub header: QuoteHeader,
    /// v5 body type (1 SGX, 2 TDX 1.0, 3 TDX 1.5); for v3 1 and for v4 2 are implied.
    pub body_type: u16,
    pub body: QuoteBody,
    /// Header and body exactly as signed by the attestation key.
    pub signed: Vec<u8>,
    /// ECDSA P-256 signature r||s over `signed`.
    pub signature: [u8; 64],
    /// Attestation public key x||y.
    pub attestation_key: [u8; 64],
    /// The QE report bytes as signed by the PCK.
    pub qe_report_raw: Vec<u8>,
    pub qe_report: SgxReportBody,
    /// ECDSA P-256 signature r||s of the QE report by the PCK leaf.
    pub qe_report_signature: [u8; 64],
    pub qe_auth_data: Vec<u8>,
    /// The PEM PCK certificate chain (certification data type 5).
    pub pck_chain_pem: Vec<u8>,
    /// Bytes of the input the quote occupies (anything after it is ignored padding).
    pub len: usize,
}

impl Quote {
    pub fn is_tdx(&self) -> bool {
        matches!(self.body, QuoteBody::Td(_))
    }

    /// The 64 bytes of report data of the attested body.
    pub fn report_data(&self) -> &[u8; 64] {
        match &self.body {
            QuoteBody::Sgx(b) => &b.report_data,
            QuoteBody::Td(b) => &b.report_data,
        }
    }
}

fn malformed(msg: impl Into<String>) -> DcapError {
    DcapError::MalformedQuote(msg.into())
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DcapError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| malformed(format!("{what}: length overflow")))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| {
            malformed(format!(
                "{what}: expected {n} bytes at offset {}, found {} remaining",
                self.pos,
                self.buf.len().saturating_sub(self.pos)
            ))
        })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DcapError> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16, DcapError> {
        Ok(u16::from_le_bytes(self.array::<2>(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DcapError> {
        Ok(u32::from_le_bytes(self.array::<4>(what)?))
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), DcapError> {
        self.take(n, what).map(|_| ())
    }
}

fn parse_header(c: &mut Cursor<'_>) -> Result<QuoteHeader, DcapError> {
    Ok(QuoteHeader {
        version: c.u16("header.version")?,
        attestation_key_type: c.u16("header.attestation_key_type")?,
        tee_type: c.u32("header.tee_type")?,
        qe_svn: c.u16("header.qe_svn")?,
        pce_svn: c.u16("header.pce_svn")?,
        qe_vendor_id: c.array("header.qe_vendor_id")?,
        user_data: c.array("header.user_data")?,
    })
}

/// Parse a 384-byte SGX report body.
pub fn parse_sgx_report(bytes: &[u8]) -> Result<SgxReportBody, DcapError> {
    if bytes.len() != SGX_REPORT_LEN {
        return Err(malformed(format!(
            "SGX report body: expected {SGX_REPORT_LEN} bytes, found {}",
            bytes.len()
        )));
    }
    let mut c = Cursor::new(bytes);
    let cpu_svn = c.array("report.cpu_svn")?;
    let misc_select = c.u32("report.misc_select")?;
    c.skip(12, "report.reserved1")?;
    let isv_ext_prod_id = c.array("report.isv_ext_prod_id")?;
    let attributes = c.array("report.attributes")?;
    let mr_enclave = c.array("report.mr_enclave")?;
    c.skip(32, "report.reserved2")?;
    let mr_signer = c.array("report.mr_signer")?;
    c.skip(32, "report.reserved3")?;
    let config_id = c.array("report.config_id")?;
    let isv_prod_id = c.u16("report.isv_prod_id")?;
    let isv_svn = c.u16("report.isv_svn")?;
    let config_svn = c.u16("report.config_svn")?;
    c.skip(42, "report.reserved4")?;
    let isv_family_id = c.array("report.isv_family_id")?;
    let report_data = c.array("report.report_data")?;
    Ok(SgxReportBody {
        cpu_svn,
        misc_select,
        isv_ext_prod_id,
        attributes,
        mr_enclave,
        mr_signer,
        config_id,
        isv_prod_id,
        isv_svn,
        config_svn,
        isv_family_id,
        report_data,
    })
}

fn parse_td_report(bytes: &[u8]) -> Result<TdReportBody, DcapError> {
    if bytes.len() != TD10_REPORT_LEN && bytes.len() != TD15_REPORT_LEN {
        return Err(malformed(format!(
            "TD report body: expected {TD10_REPORT_LEN} or {TD15_REPORT_LEN} bytes, found {}",
            bytes.len()
        )));
    }
    let mut c = Cursor::new(bytes);
    let tee_tcb_svn = c.array("td.tee_tcb_svn")?;
    let mr_seam = c.array("td.mr_seam")?;
    let mr_signer_seam = c.array("td.mr_signer_seam")?;
    let seam_attributes = c.array("td.seam_attributes")?;
    let td_attributes = c.array("td.td_attributes")?;
    let xfam = c.array("td.xfam")?;
    let mr_td = c.array("td.mr_td")?;
    let mr_config_id = c.array("td.mr_config_id")?;
    let mr_owner = c.array("td.mr_owner")?;
    let mr_owner_config = c.array("td.mr_owner_config")?;
    let rtmr = [
        c.array("td.rtmr0")?,
        c.array("td.rtmr1")?,
        c.array("td.rtmr2")?,
        c.array("td.rtmr3")?,
    ];
    let report_data = c.array("td.report_data")?;
    let (tee_tcb_svn2, mr_servicetd) = if bytes.len() == TD15_REPORT_LEN {
        (
            Some(c.array("td.tee_tcb_svn2")?),
            Some(c.array("td.mr_servicetd")?),
        )
    } else {
        (None, None)
    };
    Ok(TdReportBody {
        tee_tcb_svn,
        mr_seam,
        mr_signer_seam,
        seam_attributes,
        td_attributes,
        xfam,
        mr_td,
        mr_config_id,
        mr_owner,
        mr_owner_config,
        rtmr,
        report_data,
        tee_tcb_svn2,
        mr_servicetd,
    })
}

/// Parse a DCAP quote (SGX v3, TDX v4/v5; SGX bodies in v4/v5 are parsed too). Only the layout is
/// checked here, not any signature.
pub fn parse_quote(bytes: &[u8]) -> Result<Quote, DcapError> {
    let mut c = Cursor::new(bytes);
    let header = parse_header(&mut c)?;
    if !matches!(header.version, 3..=5) {
        return Err(DcapError::UnsupportedQuoteVersion {
            expected: "3 (SGX), 4 or 5 (TDX)",
            found: header.version,
        });
    }
    if header.attestation_key_type != ATT_KEY_ECDSA_P256 {
        return Err(DcapError::UnsupportedAttestationKeyType {
            found: header.attestation_key_type,
        });
    }
    // v3 has no TEE type (the field is reserved and zero): it is always SGX.
    let tee_type = if header.version == 3 {
        TEE_TYPE_SGX
    } else {
        header.tee_type
    };
    if tee_type != TEE_TYPE_SGX && tee_type != TEE_TYPE_TDX {
        return Err(DcapError::UnsupportedTeeType {
            expected: "0x00 (SGX) or 0x81 (TDX)",
            found: header.tee_type,
        });
    }
    let (body_type, body) = match header.version {
        3 => (
            1u16,
            QuoteBody::Sgx(Box::new(parse_sgx_report(c.take(SGX_REPORT_LEN, "body")?)?)),
        ),
        4 => {
            if tee_type == TEE_TYPE_TDX {
                (
                    2,
                    QuoteBody::Td(Box::new(parse_td_report(c.take(TD10_REPORT_LEN, "body")?)?)),
                )
            } else {
                (
                    1,
                    QuoteBody::Sgx(Box::new(parse_sgx_report(c.take(SGX_REPORT_LEN, "body")?)?)),
                )
            }
        }
        _ => {
            let body_type = c.u16("body_type")?;
            let body_size = c.u32("body_size")? as usize;
            let (expected_tee, expected_len) = match body_type {
                1 => (TEE_TYPE_SGX, SGX_REPORT_LEN),
                2 => (TEE_TYPE_TDX, TD10_REPORT_LEN),
                3 => (TEE_TYPE_TDX, TD15_REPORT_LEN),
                other => {
                    return Err(malformed(format!(
                        "v5 body type: expected 1 (SGX), 2 (TDX 1.0) or 3 (TDX 1.5), found {other}"
                    )));
                }
            };
            if expected_tee != tee_type {
                return Err(malformed(format!(
                    "v5 body type {body_type} does not match TEE type {tee_type:#x}"
                )));
            }
            if body_size != expected_len {
                return Err(malformed(format!(
                    "v5 body size for type {body_type}: expected {expected_len}, found {body_size}"
                )));
            }
            let raw = c.take(body_size, "body")?;
            let body = if body_type == 1 {
                QuoteBody::Sgx(Box::new(parse_sgx_report(raw)?))
            } else {
                QuoteBody::Td(Box::new(parse_td_report(raw)?))
            };
            (body_type, body)
        }
    };
    let signed_len = c.pos;
    let signed = bytes
        .get(..signed_len)
        .ok_or_else(|| malformed("signed region"))?
        .to_vec();

    let sig_len = c.u32("signature_data_len")? as usize;
    let sig_data = c.take(sig_len, "signature_data")?;
    let mut s = Cursor::new(sig_data);
    let signature = s.array("quote_signature")?;
    let attestation_key = s.array("attestation_key")?;

    // v4/v5 wrap the QE report certification data in certification data type 6.
    let mut inner_owned;
    let inner: &mut Cursor<'_> = if header.version == 3 {
        &mut s
    } else {
        let cert_type = s.u16("certification_data.type")?;
        let cert_size = s.u32("certification_data.size")? as usize;
        if cert_type != 6 {
            return Err(DcapError::UnsupportedCertificationData {
                expected: 6,
                found: cert_type,
            });
        }
        inner_owned = Cursor::new(s.take(cert_size, "certification_data.data")?);
        &mut inner_owned
    };
    let qe_report_raw = inner.take(SGX_REPORT_LEN, "qe_report")?.to_vec();
    let qe_report = parse_sgx_report(&qe_report_raw)?;
    let qe_report_signature = inner.array("qe_report_signature")?;
    let auth_len = inner.u16("qe_auth_data.size")? as usize;
    let qe_auth_data = inner.take(auth_len, "qe_auth_data.data")?.to_vec();
    let pck_type = inner.u16("pck_certification_data.type")?;
    let pck_size = inner.u32("pck_certification_data.size")? as usize;
    if pck_type != 5 {
        return Err(DcapError::UnsupportedCertificationData {
            expected: 5,
            found: pck_type,
        });
    }
    let pck_chain_pem = inner
        .take(pck_size, "pck_certification_data.data")?
        .to_vec();

    Ok(Quote {
        header,
        body_type,
        body,
        signed,
        signature,
        attestation_key,
        qe_report_raw,
        qe_report,
        qe_report_signature,
        qe_auth_data,
        pck_chain_pem,
        len: c.pos,
    })
}
