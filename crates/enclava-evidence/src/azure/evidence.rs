//! Input formats for Azure CVM evidence.
//!
//! The Confidential Containers attesters (`az-snp-vtpm`, `az-tdx-vtpm`) emit JSON:
//!
//! - version 0 (no `version` field), SNP: `{"quote": {signature, message, pcrs}, "report": [..],
//!   "vcek": "<PEM>"}`; TDX: `{"tpm_quote": {..}, "hcl_report": [..], "td_quote": [..]}`. Byte
//!   strings are JSON arrays of integers.
//! - versions 1 and 2: `{"version": N, "tpm_quote": {"signature": hex, "message": hex, "pcrs":
//!   [hex..]}, "hcl_report": base64url, "vcek": base64url(DER)}` or `"td_quote": base64url`.
//!   Version 2 only differs in the HCL runtime data carrying `user-data`.
//!
//! Byte fields are accepted in any of these encodings wherever they appear (integer array; hex for
//! the TPM quote; base64 / base64url with or without padding for the others; PEM for `vcek`).

use base64::Engine;
use serde_json::Value;

use super::AzureError;
use super::tpm::TpmQuote;

/// Azure CVM evidence: the HCL report, the vTPM quote and the hardware endorsement material
/// (the VCEK and any chain for SNP, DER; the TD quote for TDX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureEvidence {
    /// 0 for the unversioned legacy format, else the `version` field.
    pub version: u32,
    pub hcl_report: Vec<u8>,
    pub tpm_quote: TpmQuote,
    /// DER certificates shipped with the evidence (SNP: VCEK, maybe ASK/ARK).
    pub certs_der: Vec<Vec<u8>>,
    /// The TD quote for the TDREPORT inside the HCL report (TDX only).
    pub td_quote: Option<Vec<u8>>,
}

fn malformed(m: impl Into<String>) -> AzureError {
    AzureError::MalformedEvidence(m.into())
}

fn int_array(v: &[Value], what: &str) -> Result<Vec<u8>, AzureError> {
    v.iter()
        .map(|x| {
            x.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| malformed(format!("{what}: array element is not a byte")))
        })
        .collect()
}

fn base64_any(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    URL_SAFE
        .decode(s)
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

/// A byte field: integer array, or a string decoded as hex (`hex_string`) or base64.
fn bytes_field(v: &Value, what: &str, hex_string: bool) -> Result<Vec<u8>, AzureError> {
    match v {
        Value::Array(a) => int_array(a, what),
        Value::String(s) if hex_string => {
            hex::decode(s.trim()).map_err(|e| malformed(format!("{what}: not hex: {e}")))
        }
        Value::String(s) => base64_any(s).ok_or_else(|| malformed(format!("{what}: not base64"))),
        _ => Err(malformed(format!(
            "{what}: expected a byte array or a string"
        ))),
    }
}

/// DER certificates from PEM text (one or more `CERTIFICATE` blocks).
pub fn certs_from_pem(text: &[u8]) -> Result<Vec<Vec<u8>>, AzureError> {
    crate::pem::certificates(text).map_err(|e| malformed(format!("PEM: {e}")))
}

fn certs_field(v: &Value) -> Result<Vec<Vec<u8>>, AzureError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.contains("-----BEGIN") => certs_from_pem(s.as_bytes()),
        Value::Array(a) if a.iter().all(|x| x.is_string()) => a
            .iter()
            .map(|x| match x {
                Value::String(s) if s.contains("-----BEGIN") => certs_from_pem(s.as_bytes()),
                other => Ok(vec![bytes_field(other, "vcek", false)?]),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.into_iter().flatten().collect()),
        other => Ok(vec![bytes_field(other, "vcek", false)?]),
    }
}

impl TpmQuote {
    /// The JSON form `{"signature", "message", "pcrs": [..]}` (hex strings or integer arrays).
    pub fn from_json_value(v: &Value) -> Result<Self, AzureError> {
        let bad = |m: String| AzureError::MalformedTpmQuote(m);
        let obj = v
            .as_object()
            .ok_or_else(|| bad("TPM quote is not a JSON object".into()))?;
        let field = |name: &str| {
            obj.get(name)
                .ok_or_else(|| bad(format!("TPM quote has no \"{name}\"")))
        };
        let conv = |e: AzureError| bad(e.to_string());
        let signature =
            bytes_field(field("signature")?, "tpm_quote.signature", true).map_err(conv)?;
        let message = bytes_field(field("message")?, "tpm_quote.message", true).map_err(conv)?;
        let pcrs = field("pcrs")?
            .as_array()
            .ok_or_else(|| bad("tpm_quote.pcrs is not an array".into()))?
            .iter()
            .map(|p| bytes_field(p, "tpm_quote.pcrs[]", true).map_err(conv))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TpmQuote {
            message,
            signature,
            pcrs,
        })
    }

    /// JSON (`{...}`) or bincode, whichever `bytes` is.
    pub fn from_json_or_bincode(bytes: &[u8]) -> Result<Self, AzureError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') {
            let v: Value = serde_json::from_slice(bytes)
                .map_err(|e| AzureError::MalformedTpmQuote(format!("TPM quote JSON: {e}")))?;
            Self::from_json_value(&v)
        } else {
            Self::from_bincode(bytes)
        }
    }
}

impl AzureEvidence {
    /// Parse Confidential Containers `az-snp-vtpm` / `az-tdx-vtpm` attester evidence JSON
    /// (versions 0, 1 and 2).
    pub fn from_coco_json(bytes: &[u8]) -> Result<Self, AzureError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| malformed(format!("evidence is not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| malformed("evidence is not a JSON object"))?;
        let version = match obj.get("version") {
            None | Some(Value::Null) => 0,
            Some(x) => match x.as_u64() {
                Some(n @ 0..=2) => n as u32,
                _ => {
                    return Err(malformed(format!(
                        "unsupported evidence version {x}: expected 0, 1 or 2"
                    )));
                }
            },
        };
        let quote = obj
            .get("tpm_quote")
            .or_else(|| obj.get("quote"))
            .ok_or_else(|| malformed("evidence has no \"tpm_quote\""))?;
        let tpm_quote = TpmQuote::from_json_value(quote).map_err(|e| malformed(e.to_string()))?;
        let hcl = obj
            .get("hcl_report")
            .or_else(|| obj.get("report"))
            .ok_or_else(|| malformed("evidence has no \"hcl_report\""))?;
        let hcl_report = bytes_field(hcl, "hcl_report", false)?;
        let certs_der = match obj.get("vcek") {
            Some(v) => certs_field(v)?,
            None => Vec::new(),
        };
        let td_quote = match obj.get("td_quote") {
            Some(Value::Null) | None => None,
            Some(v) => Some(bytes_field(v, "td_quote", false)?),
        };
        Ok(AzureEvidence {
            version,
            hcl_report,
            tpm_quote,
            certs_der,
            td_quote,
        })
    }

    /// Evidence from separate parts: the raw HCL report, the TPM quote (JSON or az-cvm-vtpm
    /// bincode) and DER certificates (use [`certs_from_pem`] for PEM).
    pub fn from_parts(
        hcl_report: &[u8],
        tpm_quote: &[u8],
        certs_der: Vec<Vec<u8>>,
    ) -> Result<Self, AzureError> {
        Ok(AzureEvidence {
            version: 0,
            hcl_report: hcl_report.to_vec(),
            tpm_quote: TpmQuote::from_json_or_bincode(tpm_quote)?,
            certs_der,
            td_quote: None,
        })
    }

    /// Attach the TD quote (TDX).
    pub fn with_td_quote(mut self, td_quote: Vec<u8>) -> Self {
        self.td_quote = Some(td_quote);
        self
    }
}
