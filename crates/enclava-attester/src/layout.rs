//! Where report_data sits in the evidence each interface returns, so a collector can check that
//! the hardware answered the question it was asked (defence in depth; the verifier checks again).

use crate::AttesterError;

/// SEV-SNP ATTESTATION_REPORT length (SNP firmware ABI, Table 22): the same for versions 2 to 5.
pub const SNP_REPORT_LEN: usize = 0x4A0;
/// Offset of REPORT_DATA in an SNP attestation report.
pub const SNP_REPORT_DATA_OFFSET: usize = 0x50;
/// TDREPORT length (TDX module ABI: REPORTMACSTRUCT 256 + TEE_TCB_INFO 239 + reserved 17 + TDINFO 512).
pub const TDREPORT_LEN: usize = 1024;
/// Offset of REPORTDATA in a TDREPORT (inside REPORTMACSTRUCT).
pub const TDREPORT_REPORT_DATA_OFFSET: usize = 128;
/// DCAP quote header length.
pub const QUOTE_HEADER_LEN: usize = 48;
/// Offset of REPORTDATA inside a TDX TD report body (TDX 1.0 and 1.5 bodies share the prefix).
pub const TD_BODY_REPORT_DATA_OFFSET: usize = 520;
/// Smallest quote worth looking at: header, TDX 1.0 body, signature data length.
pub const TDX_QUOTE_MIN_LEN: usize = QUOTE_HEADER_LEN + 584 + 4;

pub(crate) fn pad_report_data(report_data: &[u8]) -> Result<[u8; 64], AttesterError> {
    if report_data.len() > 64 {
        return Err(AttesterError::ReportDataTooLong {
            len: report_data.len(),
        });
    }
    let mut out = [0u8; 64];
    out[..report_data.len()].copy_from_slice(report_data);
    Ok(out)
}

fn check(
    source_name: &str,
    found: Option<&[u8]>,
    expected: &[u8; 64],
    total: usize,
) -> Result<(), AttesterError> {
    let found = found.ok_or_else(|| {
        AttesterError::malformed(
            source_name,
            "room for the 64-byte report_data",
            format!("{total} bytes"),
        )
    })?;
    if found != expected {
        return Err(AttesterError::ReportDataMismatch {
            source_name: source_name.into(),
            expected: hex::encode(expected),
            found: hex::encode(found),
        });
    }
    Ok(())
}

/// Check an SNP attestation report: at least [`SNP_REPORT_LEN`] bytes, REPORT_DATA = `expected`.
pub(crate) fn check_snp_report(
    source_name: &str,
    report: &[u8],
    expected: &[u8; 64],
) -> Result<(), AttesterError> {
    if report.len() < SNP_REPORT_LEN {
        return Err(AttesterError::malformed(
            source_name,
            format!("an SNP attestation report of {SNP_REPORT_LEN} bytes"),
            format!("{} bytes", report.len()),
        ));
    }
    let rd = report.get(SNP_REPORT_DATA_OFFSET..SNP_REPORT_DATA_OFFSET + 64);
    check(source_name, rd, expected, report.len())
}

/// Check a TDX DCAP quote (v4 or v5): long enough, TEE type TDX, REPORTDATA = `expected`.
pub(crate) fn check_tdx_quote(
    source_name: &str,
    quote: &[u8],
    expected: &[u8; 64],
) -> Result<(), AttesterError> {
    if quote.len() < TDX_QUOTE_MIN_LEN {
        return Err(AttesterError::malformed(
            source_name,
            format!("a TDX quote of at least {TDX_QUOTE_MIN_LEN} bytes"),
            format!("{} bytes", quote.len()),
        ));
    }
    let version = u16::from_le_bytes([quote[0], quote[1]]);
    let tee_type = u32::from_le_bytes([quote[4], quote[5], quote[6], quote[7]]);
    if tee_type != 0x81 {
        return Err(AttesterError::malformed(
            source_name,
            "a quote with TEE type 0x81 (TDX)",
            format!("TEE type {tee_type:#x}"),
        ));
    }
    let body = match version {
        4 => QUOTE_HEADER_LEN,
        // v5: body type u16, body size u32, then the body.
        5 => QUOTE_HEADER_LEN + 6,
        other => {
            return Err(AttesterError::malformed(
                source_name,
                "a DCAP quote of version 4 or 5",
                format!("version {other}"),
            ));
        }
    };
    // The signed part ends after the body; then the signature data length and the data.
    let body_len = if version == 4 {
        Some(584usize)
    } else {
        quote
            .get(QUOTE_HEADER_LEN + 2..QUOTE_HEADER_LEN + 6)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let sig_len_at = body_len.and_then(|n| body.checked_add(n));
    let needed = sig_len_at.and_then(|at| {
        let b = quote.get(at..at.checked_add(4)?)?;
        let sig_len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        at.checked_add(4)?.checked_add(sig_len)
    });
    match needed {
        Some(n) if n <= quote.len() => {}
        _ => {
            return Err(AttesterError::malformed(
                source_name,
                match needed {
                    Some(n) => format!("a complete TDX quote of {n} bytes (per its length fields)"),
                    None => "a complete TDX quote (body and signature data length)".into(),
                },
                format!("{} bytes", quote.len()),
            ));
        }
    }
    let at = body + TD_BODY_REPORT_DATA_OFFSET;
    check(source_name, quote.get(at..at + 64), expected, quote.len())
}

/// Check a raw TDREPORT: exactly [`TDREPORT_LEN`] bytes, REPORTDATA = `expected`.
pub(crate) fn check_tdreport(
    source_name: &str,
    report: &[u8],
    expected: &[u8; 64],
) -> Result<(), AttesterError> {
    if report.len() != TDREPORT_LEN {
        return Err(AttesterError::malformed(
            source_name,
            format!("a TDREPORT of {TDREPORT_LEN} bytes"),
            format!("{} bytes", report.len()),
        ));
    }
    let at = TDREPORT_REPORT_DATA_OFFSET;
    check(source_name, report.get(at..at + 64), expected, report.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally complete v4 TDX quote with the given report data and no signature data.
    fn quote_v4(rd: &[u8; 64]) -> Vec<u8> {
        let mut q = vec![0u8; TDX_QUOTE_MIN_LEN];
        q[0] = 4;
        q[4] = 0x81;
        let at = QUOTE_HEADER_LEN + TD_BODY_REPORT_DATA_OFFSET;
        q[at..at + 64].copy_from_slice(rd);
        q
    }

    #[test]
    fn tdx_quote_checks() {
        let rd = [0x33; 64];
        let q = quote_v4(&rd);
        check_tdx_quote("q", &q, &rd).unwrap();
        assert!(matches!(
            check_tdx_quote("q", &q, &[0; 64]),
            Err(AttesterError::ReportDataMismatch { .. })
        ));
        // Signature data longer than what is there.
        let mut long = q.clone();
        long[QUOTE_HEADER_LEN + 584] = 1;
        assert!(matches!(
            check_tdx_quote("q", &long, &rd),
            Err(AttesterError::Malformed { .. })
        ));
        // A v5 quote whose body size field is absurd.
        let mut v5 = q.clone();
        v5[0] = 5;
        v5[QUOTE_HEADER_LEN + 2..QUOTE_HEADER_LEN + 6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_tdx_quote("q", &v5, &rd).is_err());
        let mut sgx = q.clone();
        sgx[4] = 0;
        assert!(check_tdx_quote("q", &sgx, &rd).is_err());
        // No prefix and no single-byte flip panics.
        for n in 0..q.len() {
            assert!(check_tdx_quote("q", &q[..n], &rd).is_err());
        }
        for i in 0..q.len() {
            let mut f = q.clone();
            f[i] ^= 0xff;
            let _ = check_tdx_quote("q", &f, &rd);
        }
    }

    #[test]
    fn snp_and_tdreport_checks() {
        let rd = [0x44; 64];
        let mut r = vec![0u8; SNP_REPORT_LEN];
        r[SNP_REPORT_DATA_OFFSET..SNP_REPORT_DATA_OFFSET + 64].copy_from_slice(&rd);
        check_snp_report("r", &r, &rd).unwrap();
        for n in 0..SNP_REPORT_LEN {
            assert!(check_snp_report("r", &r[..n], &rd).is_err());
        }
        let mut t = vec![0u8; TDREPORT_LEN];
        t[TDREPORT_REPORT_DATA_OFFSET..TDREPORT_REPORT_DATA_OFFSET + 64].copy_from_slice(&rd);
        check_tdreport("t", &t, &rd).unwrap();
        assert!(check_tdreport("t", &t[..1023], &rd).is_err());
        assert!(check_tdreport("t", &t, &[0; 64]).is_err());
        assert_eq!(pad_report_data(&[1, 2]).unwrap()[..3], [1, 2, 0]);
        assert!(pad_report_data(&[0; 65]).is_err());
    }
}
