//! The SNP evidence that guest-components' SNP attester sends: `{"attestation_report", "cert_chain"}`
//! where the report is the `sev` crate's `AttestationReport` written by serde as structured JSON
//! (named fields, byte arrays as arrays of numbers) and `cert_chain` its `CertTableEntry` list
//! (`{"cert_type": "VCEK" | "VLEK" | "ASK" | "ARK" | ..., "data": [bytes]}`).
//!
//! The report is rebuilt into the exact 1184 bytes the AMD-SP signed (the signature check then
//! proves the rebuild exact: any field placed wrongly changes the signed bytes). Two `sev` serde
//! shapes are accepted:
//!
//! - `sev` 4 and later (trustee's e2e evidence): `key_info`, `cpuid_fam_id`/`cpuid_mod_id`/
//!   `cpuid_step`, `current`/`committed` `{major, minor, build}`, TCB objects
//!   `{fmc, bootloader, tee, snp, microcode}` (with `fmc` non-null the Turin byte layout), the
//!   reserved bytes not serialized (they are zero in every report the firmware signs);
//! - `sev` 1 to 3: `_author_key_en`, `_reserved_0..4`, `current_build`/`_minor`/`_major`, TCB
//!   objects `{bootloader | boot_loader, tee, _reserved | reserved, snp, microcode}`, signature
//!   `{r, s, _reserved}`.
//!
//! Pure: no I/O. Every refusal names the field, what was expected and what was found.

use serde_json::{Map, Value};

/// Size of an SNP attestation report.
pub const REPORT_LEN: usize = 0x4A0;

/// The decoded evidence: the signed report bytes and the endorsement certificates (DER) the
/// attester sent (VCEK or VLEK, possibly ASK/ARK), in the order sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpEvidence {
    pub report: Vec<u8>,
    pub certs_der: Vec<Vec<u8>>,
}

/// Why structured SNP evidence could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attestation_report.{field}: expected {expected}, found {found}")]
pub struct SnpShapeError {
    pub field: String,
    pub expected: String,
    pub found: String,
}

fn err(field: &str, expected: impl Into<String>, found: impl Into<String>) -> SnpShapeError {
    SnpShapeError {
        field: field.to_string(),
        expected: expected.into(),
        found: found.into(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The report writer: each field lands at its fixed offset (AMD SEV-SNP ABI, table
/// "ATTESTATION_REPORT structure"), whatever order the JSON members come in.
struct Writer<'a> {
    out: [u8; REPORT_LEN],
    obj: &'a Map<String, Value>,
}

impl<'a> Writer<'a> {
    /// The member under the first of `names` present.
    fn member<'n>(&self, names: &[&'n str]) -> Option<(&'n str, &'a Value)> {
        names.iter().find_map(|n| self.obj.get(*n).map(|v| (*n, v)))
    }

    fn required(&self, names: &[&str]) -> Result<(String, &'a Value), SnpShapeError> {
        self.member(names)
            .map(|(n, v)| (n.to_string(), v))
            .ok_or_else(|| err(names[0], "a member", "none"))
    }

    /// An unsigned little-endian integer of `len` bytes.
    fn int(&mut self, names: &[&str], at: usize, len: usize) -> Result<(), SnpShapeError> {
        let (name, v) = self.required(names)?;
        let n = uint(&name, v, len)?;
        self.out[at..at + len].copy_from_slice(&n.to_le_bytes()[..len]);
        Ok(())
    }

    /// A byte array of exactly `len` bytes.
    fn bytes(&mut self, names: &[&str], at: usize, len: usize) -> Result<(), SnpShapeError> {
        let (name, v) = self.required(names)?;
        let b = byte_array(&name, v, Some(len))?;
        self.out[at..at + len].copy_from_slice(&b);
        Ok(())
    }

    /// A reserved region: zero when absent (newer `sev` does not serialize it), else its bytes.
    fn reserved(&mut self, names: &[&str], at: usize, len: usize) -> Result<(), SnpShapeError> {
        match self.member(names) {
            None => Ok(()),
            Some((name, v)) if v.is_number() && len <= 8 => {
                let n = uint(name, v, len)?;
                self.out[at..at + len].copy_from_slice(&n.to_le_bytes()[..len]);
                Ok(())
            }
            Some((name, v)) => {
                let b = byte_array(name, v, Some(len))?;
                self.out[at..at + len].copy_from_slice(&b);
                Ok(())
            }
        }
    }

    /// A TCB_VERSION (8 bytes).
    fn tcb(&mut self, name: &str, at: usize) -> Result<(), SnpShapeError> {
        let (name, v) = self.required(&[name])?;
        let raw = tcb(&name, v)?;
        self.out[at..at + 8].copy_from_slice(&raw);
        Ok(())
    }

    /// A firmware version `{major, minor, build}` (newer) or the three `<prefix>_build`,
    /// `_minor`, `_major` bytes (older): build, minor, major, reserved.
    fn fw_version(&mut self, prefix: &str, at: usize) -> Result<(), SnpShapeError> {
        if let Some(Value::Object(o)) = self.obj.get(prefix) {
            for (i, part) in ["build", "minor", "major"].into_iter().enumerate() {
                let field = format!("{prefix}.{part}");
                let v = o.get(part).ok_or_else(|| err(&field, "a member", "none"))?;
                self.out[at + i] = uint(&field, v, 1)? as u8;
            }
            return Ok(());
        }
        for (i, part) in ["build", "minor", "major"].into_iter().enumerate() {
            let name = format!("{prefix}_{part}");
            self.int(&[&name], at + i, 1)?;
        }
        Ok(())
    }
}

fn uint(field: &str, v: &Value, len: usize) -> Result<u64, SnpShapeError> {
    let expected = format!("an unsigned integer of {len} byte(s)");
    let n = v
        .as_u64()
        .ok_or_else(|| err(field, expected.clone(), kind_of(v)))?;
    if len < 8 && n >> (8 * len) != 0 {
        return Err(err(field, expected, n.to_string()));
    }
    Ok(n)
}

fn byte_array(field: &str, v: &Value, len: Option<usize>) -> Result<Vec<u8>, SnpShapeError> {
    let want = || match len {
        Some(l) => format!("an array of {l} bytes"),
        None => "an array of bytes".to_string(),
    };
    let a = v.as_array().ok_or_else(|| err(field, want(), kind_of(v)))?;
    if let Some(l) = len
        && a.len() != l
    {
        return Err(err(field, want(), format!("{} elements", a.len())));
    }
    a.iter()
        .map(|x| {
            x.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| err(field, want(), format!("element {x}")))
        })
        .collect()
}

/// A TCB_VERSION from its serde object (or a raw u64 / 8-byte array).
fn tcb(field: &str, v: &Value) -> Result<[u8; 8], SnpShapeError> {
    match v {
        Value::Number(_) => Ok(uint(field, v, 8)?.to_le_bytes()),
        Value::Array(_) => {
            let b = byte_array(field, v, Some(8))?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&b);
            Ok(raw)
        }
        Value::Object(o) => {
            let get = |names: &[&str]| -> Result<u8, SnpShapeError> {
                let (n, x) = names
                    .iter()
                    .find_map(|n| o.get(*n).map(|x| (*n, x)))
                    .ok_or_else(|| err(&format!("{field}.{}", names[0]), "a member", "none"))?;
                Ok(uint(&format!("{field}.{n}"), x, 1)? as u8)
            };
            let (bl, tee, snp, ucode) = (
                get(&["bootloader", "boot_loader"])?,
                get(&["tee"])?,
                get(&["snp"])?,
                get(&["microcode"])?,
            );
            let mut raw = [0u8; 8];
            match o.get("fmc") {
                // Turin (and later): FMC, boot loader, TEE, SNP, 3 reserved, microcode.
                Some(f) if !f.is_null() => {
                    raw[0] = uint(&format!("{field}.fmc"), f, 1)? as u8;
                    raw[1] = bl;
                    raw[2] = tee;
                    raw[3] = snp;
                }
                // Milan, Genoa: boot loader, TEE, 4 reserved, SNP, microcode.
                _ => {
                    raw[0] = bl;
                    raw[1] = tee;
                    if let Some((n, r)) = ["_reserved", "reserved"]
                        .iter()
                        .find_map(|n| o.get(*n).map(|r| (*n, r)))
                    {
                        let r = byte_array(&format!("{field}.{n}"), r, Some(4))?;
                        raw[2..6].copy_from_slice(&r);
                    }
                    raw[6] = snp;
                }
            }
            raw[7] = ucode;
            Ok(raw)
        }
        other => Err(err(
            field,
            "a TCB version object {bootloader, tee, snp, microcode[, fmc]}",
            kind_of(other),
        )),
    }
}

/// Rebuild the 1184 signed bytes from the `sev` crate's serde JSON of an `AttestationReport`.
pub fn report_from_json(v: &Value) -> Result<Vec<u8>, SnpShapeError> {
    let obj = v.as_object().ok_or_else(|| {
        err(
            "",
            "the sev crate's AttestationReport as a JSON object",
            kind_of(v),
        )
    })?;
    let mut w = Writer {
        out: [0u8; REPORT_LEN],
        obj,
    };
    w.int(&["version"], 0x00, 4)?;
    w.int(&["guest_svn"], 0x04, 4)?;
    w.int(&["policy"], 0x08, 8)?;
    w.bytes(&["family_id"], 0x10, 16)?;
    w.bytes(&["image_id"], 0x20, 16)?;
    w.int(&["vmpl"], 0x30, 4)?;
    w.int(&["sig_algo"], 0x34, 4)?;
    w.tcb("current_tcb", 0x38)?;
    w.int(&["plat_info"], 0x40, 8)?;
    w.int(&["key_info", "_author_key_en", "author_key_en"], 0x48, 4)?;
    w.reserved(&["_reserved_0"], 0x4C, 4)?;
    w.bytes(&["report_data"], 0x50, 64)?;
    w.bytes(&["measurement"], 0x90, 48)?;
    w.bytes(&["host_data"], 0xC0, 32)?;
    w.bytes(&["id_key_digest"], 0xE0, 48)?;
    w.bytes(&["author_key_digest"], 0x110, 48)?;
    w.bytes(&["report_id"], 0x140, 32)?;
    w.bytes(&["report_id_ma"], 0x160, 32)?;
    w.tcb("reported_tcb", 0x180)?;
    if obj.contains_key("_reserved_1") {
        w.reserved(&["_reserved_1"], 0x188, 24)?;
    } else {
        // Version 3 reports: CPUID family, model, stepping, then 21 reserved bytes.
        w.reserved(&["cpuid_fam_id"], 0x188, 1)?;
        w.reserved(&["cpuid_mod_id"], 0x189, 1)?;
        w.reserved(&["cpuid_step"], 0x18A, 1)?;
    }
    w.bytes(&["chip_id"], 0x1A0, 64)?;
    w.tcb("committed_tcb", 0x1E0)?;
    w.fw_version("current", 0x1E8)?;
    w.reserved(&["_reserved_2"], 0x1EB, 1)?;
    w.fw_version("committed", 0x1EC)?;
    w.reserved(&["_reserved_3"], 0x1EF, 1)?;
    w.tcb("launch_tcb", 0x1F0)?;
    w.reserved(&["_reserved_4"], 0x1F8, 168)?;
    let (_, sig) = w.required(&["signature"])?;
    let sig = sig.as_object().ok_or_else(|| {
        err(
            "signature",
            "an object {r, s}",
            kind_of(obj.get("signature").unwrap_or(&Value::Null)),
        )
    })?;
    let part = |name: &str| -> Result<Vec<u8>, SnpShapeError> {
        let field = format!("signature.{name}");
        let x = sig
            .get(name)
            .ok_or_else(|| err(&field, "a member", "none"))?;
        byte_array(&field, x, Some(72))
    };
    let (r, s) = (part("r")?, part("s")?);
    let mut out = w.out;
    out[0x2A0..0x2A0 + 72].copy_from_slice(&r);
    out[0x2E8..0x2E8 + 72].copy_from_slice(&s);
    if let Some(rest) = sig.get("_reserved") {
        let b = byte_array("signature._reserved", rest, Some(REPORT_LEN - 0x330))?;
        out[0x330..].copy_from_slice(&b);
    }
    Ok(out.to_vec())
}

/// The endorsement certificates (DER) of a `cert_chain` (`CertTableEntry` list): every entry
/// but `Empty`; PEM data is converted to DER. Which one endorses the report is the verifier's
/// business (it matches the signing key).
pub fn certs_from_json(v: &Value) -> Result<Vec<Vec<u8>>, SnpShapeError> {
    let entries = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        other => {
            return Err(err(
                "cert_chain",
                "an array of {cert_type, data}",
                kind_of(other),
            ));
        }
    };
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let field = format!("cert_chain[{i}]");
        let ty = e.get("cert_type").unwrap_or(&Value::Null);
        if ty.as_str() == Some("Empty") {
            continue;
        }
        let data = e
            .get("data")
            .ok_or_else(|| err(&format!("{field}.data"), "an array of bytes", "none"))?;
        let bytes = byte_array(&format!("{field}.data"), data, None)?;
        out.push(pem_to_der(&bytes).unwrap_or(bytes));
    }
    Ok(out)
}

/// DER from a PEM certificate; `None` when `b` is not PEM.
fn pem_to_der(b: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = std::str::from_utf8(b).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let body = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
    let end = body.find("-----END CERTIFICATE-----")?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Decode guest-components' SNP evidence `{"attestation_report": {...}, "cert_chain": [...]}`.
pub fn evidence_from_json(v: &Value) -> Result<SnpEvidence, SnpShapeError> {
    let report = v
        .get("attestation_report")
        .ok_or_else(|| err("", "a member attestation_report", "none"))?;
    Ok(SnpEvidence {
        report: report_from_json(report)?,
        certs_der: certs_from_json(v.get("cert_chain").unwrap_or(&Value::Null))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tcb_layouts() {
        let milan = json!({"fmc": null, "bootloader": 10, "tee": 0, "snp": 23, "microcode": 25});
        assert_eq!(tcb("t", &milan).unwrap(), [10, 0, 0, 0, 0, 0, 23, 25]);
        let turin = json!({"fmc": 1, "bootloader": 10, "tee": 2, "snp": 23, "microcode": 25});
        assert_eq!(tcb("t", &turin).unwrap(), [1, 10, 2, 23, 0, 0, 0, 25]);
        let old = json!({"boot_loader": 3, "tee": 0, "reserved": [0, 0, 0, 0], "snp": 8, "microcode": 115});
        assert_eq!(tcb("t", &old).unwrap(), [3, 0, 0, 0, 0, 0, 8, 115]);
        let e = tcb(
            "t",
            &json!({"bootloader": 300, "tee": 0, "snp": 0, "microcode": 0}),
        )
        .unwrap_err();
        assert_eq!(e.field, "t.bootloader");
    }

    #[test]
    fn refusals_name_the_field() {
        let e = report_from_json(&json!({"version": 2})).unwrap_err();
        assert_eq!(e.field, "guest_svn");
        let e = report_from_json(&json!("x")).unwrap_err();
        assert!(e.to_string().contains("found a string"), "{e}");
        let e = certs_from_json(&json!([{"cert_type": "VCEK", "data": [1, 256]}])).unwrap_err();
        assert_eq!(e.field, "cert_chain[0].data");
    }
}
