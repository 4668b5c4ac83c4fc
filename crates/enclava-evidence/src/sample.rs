//! Confidential Containers' `sample` TEE: the development attester of guest-components, whose
//! evidence is the JSON `{"svn": "<string>", "report_data": "<standard base64>"}` with no
//! signature at all.
//!
//! **Nothing about this is confidential**: anyone can write such evidence. It is Enclava's
//! simulator in CoCo's shape, and treated exactly like it: `tee = "sample"`, `debug = true`,
//! [`crate::Tee::is_hardware`] false, refused by every default policy; only an explicit
//! appraisal policy on a development server admits it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::Value;

use crate::{Claims, Tee};

/// Largest sample evidence accepted, in bytes.
pub const MAX_SAMPLE_EVIDENCE: usize = 4096;
/// Longest report data accepted (bytes, after base64).
pub const MAX_REPORT_DATA: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sample evidence: {0}")]
pub struct SampleError(pub String);

impl crate::error::FailedCheck for SampleError {
    fn failed_check(&self) -> &'static str {
        "malformed_evidence"
    }
}

/// Parse sample evidence into claims: `measurement` is empty, `report_data` the decoded report
/// data (hex) zero-padded to 64 bytes like a hardware report's field, and the `svn` is kept as
/// the `tcb_status` string `svn:<svn>` so policies can see it.
pub fn verify(evidence: &[u8]) -> Result<Claims, SampleError> {
    if evidence.len() > MAX_SAMPLE_EVIDENCE {
        return Err(SampleError(format!(
            "expected at most {MAX_SAMPLE_EVIDENCE} bytes, found {}",
            evidence.len()
        )));
    }
    let v: Value = serde_json::from_slice(evidence)
        .map_err(|e| SampleError(format!("expected a JSON object, found invalid JSON ({e})")))?;
    let Value::Object(m) = v else {
        return Err(SampleError(
            "expected a JSON object {svn, report_data}, found another JSON type".into(),
        ));
    };
    let svn = match m.get("svn") {
        Some(Value::String(s)) if s.len() <= 64 => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(SampleError("svn: expected a short string".into())),
        None => return Err(SampleError("svn: expected a member, found none".into())),
    };
    let rd = match m.get("report_data") {
        Some(Value::String(s)) => STANDARD
            .decode(s)
            .or_else(|_| STANDARD_NO_PAD.decode(s.trim_end_matches('=')))
            .map_err(|_| SampleError("report_data: expected standard base64".into()))?,
        Some(_) => return Err(SampleError("report_data: expected a string".into())),
        None => {
            return Err(SampleError(
                "report_data: expected a member, found none".into(),
            ));
        }
    };
    if rd.len() > MAX_REPORT_DATA {
        return Err(SampleError(format!(
            "report_data: expected at most {MAX_REPORT_DATA} bytes, found {}",
            rd.len()
        )));
    }
    let mut field = rd;
    field.resize(MAX_REPORT_DATA, 0);
    Ok(Claims {
        tee: Tee::Sample,
        debug: true,
        measurement: String::new(),
        report_data: hex::encode(field),
        tcb_status: Some(format!("svn:{svn}")),
        advisory_ids: Vec::new(),
        snp: None,
        tdx: None,
        sgx: None,
        azure: None,
        sim: None,
        revocation: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_coco_sample_evidence() {
        let c = verify(br#"{"svn":"1","report_data":"AAEC"}"#).unwrap();
        assert_eq!(c.tee, Tee::Sample);
        assert!(c.debug && !c.tee.is_hardware());
        assert!(c.report_data.starts_with("000102"));
        assert_eq!(c.report_data.len(), 128);
        assert!(verify(b"[]").is_err());
        assert!(verify(br#"{"svn":"1"}"#).is_err());
        assert!(verify(br#"{"svn":"1","report_data":"!!"}"#).is_err());
    }
}
