//! Azure vTPM collection against a fake TPM that serves the REAL HCL report and TPM quote from
//! ../shared/vectors/azure-cvm/trustee-az-snp-vtpm, then verification of what was collected.
//!
//! The fake parses the commands itself (independently of the crate's marshalling), enforces what
//! a TPM enforces (NV reads of at most 1024 bytes, owner authorization, the AK handle, the PCR
//! selection) and answers with TPM 2.0 response structures built around the recorded bytes.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use enclava_attester::vtpm::{AK_HANDLE, HCL_REPORT_NV_INDEX, Retry, USER_DATA_NV_INDEX, Vtpm};
use enclava_attester::{Attester, AttesterError, AzureVtpmAttester, Tee};
use enclava_evidence::azure::{self, certs_from_pem};

const TRUSTEE: &str = "azure-cvm/trustee-az-snp-vtpm";
const PCR0: &str = "f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be";
const OWNER: u32 = 0x4000_0001;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap()
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn response(tag: u16, rc: u32, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&tag.to_be_bytes());
    r.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A response with sessions: parameterSize, parameters, one empty password auth response.
fn session_response(params: &[u8]) -> Vec<u8> {
    let mut body = (params.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(params);
    body.extend_from_slice(&[0, 0, 0x01, 0, 0]);
    response(0x8002, 0, &body)
}

fn tpm2b(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

#[derive(Debug)]
struct FakeTpm {
    hcl: Option<Vec<u8>>,
    /// NV 0x01400002: attributes and contents, once defined.
    user_index: Option<(u32, Vec<u8>)>,
    quote_message: Vec<u8>,
    quote_signature: Vec<u8>,
    pcrs: Vec<Vec<u8>>,
    /// Answer this command code with this response code.
    fail: Option<(u32, u32)>,
    pending: Vec<u8>,
    /// Serve only this many bytes of each response (a broken transport).
    truncate: Option<usize>,
    /// Every command received: (command code, bytes).
    log: Vec<(u32, Vec<u8>)>,
    nv_read_sizes: Vec<u16>,
}

impl FakeTpm {
    fn trustee() -> Option<FakeTpm> {
        let hcl = common::read(&format!("{TRUSTEE}/hcl-report.bin"))?;
        let q: serde_json::Value =
            serde_json::from_slice(&common::read(&format!("{TRUSTEE}/tpm-quote-v1.json"))?)
                .unwrap();
        let hex_field = |v: &serde_json::Value| hex::decode(v.as_str().unwrap()).unwrap();
        Some(FakeTpm {
            hcl: Some(hcl),
            user_index: None,
            quote_message: hex_field(&q["message"]),
            quote_signature: hex_field(&q["signature"]),
            pcrs: q["pcrs"]
                .as_array()
                .unwrap()
                .iter()
                .map(hex_field)
                .collect(),
            fail: None,
            pending: Vec::new(),
            truncate: None,
            log: Vec::new(),
            nv_read_sizes: Vec::new(),
        })
    }

    fn nv_public(&self, index: u32) -> Option<(u32, usize)> {
        match index {
            // OWNERREAD | AUTHREAD | WRITTEN
            HCL_REPORT_NV_INDEX => self.hcl.as_ref().map(|h| (0x2006_0000, h.len())),
            USER_DATA_NV_INDEX => self.user_index.as_ref().map(|(a, d)| (*a, d.len())),
            _ => None,
        }
    }

    fn answer(&mut self, cmd: &[u8]) -> Vec<u8> {
        let cc = be32(cmd, 6);
        self.log.push((cc, cmd.to_vec()));
        assert_eq!(be32(cmd, 2) as usize, cmd.len(), "commandSize");
        if let Some((fcc, rc)) = self.fail
            && fcc == cc
        {
            return response(0x8001, rc, &[]);
        }
        match cc {
            0x169 => {
                let index = be32(cmd, 10);
                let Some((attrs, size)) = self.nv_public(index) else {
                    return response(0x8001, 0x18B, &[]);
                };
                let mut public = Vec::new();
                public.extend_from_slice(&index.to_be_bytes());
                public.extend_from_slice(&0x000Bu16.to_be_bytes());
                public.extend_from_slice(&attrs.to_be_bytes());
                public.extend_from_slice(&0u16.to_be_bytes());
                public.extend_from_slice(&(size as u16).to_be_bytes());
                let mut body = Vec::new();
                tpm2b(&mut body, &public);
                let mut name = vec![0x00, 0x0B];
                name.extend_from_slice(&[0x5A; 32]);
                tpm2b(&mut body, &name);
                response(0x8001, 0, &body)
            }
            0x14E => {
                let (auth, index) = (be32(cmd, 10), be32(cmd, 14));
                let p = 22 + be32(cmd, 18) as usize;
                let (size, offset) = (be16(cmd, p), be16(cmd, p + 2));
                self.nv_read_sizes.push(size);
                if auth != OWNER {
                    return response(0x8001, 0x149, &[]); // NV_AUTHORIZATION
                }
                if size > 1024 {
                    return response(0x8001, 0x1C4, &[]); // VALUE, parameter 1
                }
                let data = match index {
                    HCL_REPORT_NV_INDEX => self.hcl.clone().unwrap_or_default(),
                    _ => return response(0x8001, 0x18B, &[]),
                };
                let (o, s) = (offset as usize, size as usize);
                let Some(chunk) = data.get(o..o + s) else {
                    return response(0x8001, 0x146, &[]); // NV_RANGE
                };
                let mut params = Vec::new();
                tpm2b(&mut params, chunk);
                session_response(&params)
            }
            0x137 => {
                let (auth, index) = (be32(cmd, 10), be32(cmd, 14));
                let p = 22 + be32(cmd, 18) as usize;
                let n = be16(cmd, p) as usize;
                let data = cmd[p + 2..p + 2 + n].to_vec();
                let offset = be16(cmd, p + 2 + n);
                assert_eq!((auth, index, offset), (OWNER, USER_DATA_NV_INDEX, 0));
                match &mut self.user_index {
                    Some((_, d)) if d.len() >= n => d[..n].copy_from_slice(&data),
                    _ => return response(0x8001, 0x18B, &[]),
                }
                session_response(&[])
            }
            0x12A => {
                assert_eq!(be32(cmd, 10), OWNER);
                let p = 14 + 4 + be32(cmd, 14) as usize;
                let auth_len = be16(cmd, p) as usize;
                let public = &cmd[p + 2 + auth_len + 2..];
                let index = be32(public, 0);
                let attrs = be32(public, 6);
                let size = be16(public, 12) as usize;
                assert_eq!(index, USER_DATA_NV_INDEX);
                if self.user_index.is_some() {
                    return response(0x8001, 0x14C, &[]); // NV_DEFINED
                }
                self.user_index = Some((attrs, vec![0; size]));
                session_response(&[])
            }
            0x158 => {
                assert_eq!(be32(cmd, 10), AK_HANDLE, "quote by the AK");
                let p = 14 + 4 + be32(cmd, 14) as usize;
                let n = be16(cmd, p) as usize;
                let rest = &cmd[p + 2 + n..];
                assert_eq!(
                    rest,
                    &hex::decode("0014000b00000001000b03ffffff").unwrap()[..]
                );
                let mut params = Vec::new();
                tpm2b(&mut params, &self.quote_message);
                params.extend_from_slice(&[0x00, 0x14, 0x00, 0x0B]);
                tpm2b(&mut params, &self.quote_signature);
                session_response(&params)
            }
            0x17E => {
                assert_eq!(be32(cmd, 10), 1);
                assert_eq!(be16(cmd, 14), 0x000B);
                let n = cmd[16] as usize;
                let select = &cmd[17..17 + n];
                let wanted: Vec<usize> = (0..n * 8)
                    .filter(|i| select[i / 8] & (1 << (i % 8)) != 0)
                    .collect();
                // Like real TPMs: at most 8 digests per response.
                let served: Vec<usize> = wanted.into_iter().take(8).collect();
                let mut out_select = vec![0u8; 3];
                for i in &served {
                    out_select[i / 8] |= 1 << (i % 8);
                }
                let mut body = 7u32.to_be_bytes().to_vec();
                body.extend_from_slice(&1u32.to_be_bytes());
                body.extend_from_slice(&0x000Bu16.to_be_bytes());
                body.push(3);
                body.extend_from_slice(&out_select);
                body.extend_from_slice(&(served.len() as u32).to_be_bytes());
                for i in served {
                    tpm2b(&mut body, &self.pcrs[i]);
                }
                response(0x8001, 0, &body)
            }
            _ => response(0x8001, 0x143, &[]), // COMMAND_CODE
        }
    }

    fn commands(&self) -> Vec<u32> {
        self.log.iter().map(|(cc, _)| *cc).collect()
    }
}

impl Write for FakeTpm {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut r = self.answer(buf);
        if let Some(n) = self.truncate {
            r.truncate(n);
        }
        self.pending = r;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for FakeTpm {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

fn vtpm(fake: FakeTpm) -> Vtpm<FakeTpm> {
    Vtpm::new(fake, "fake /dev/tpmrm0").with_retry(Retry {
        attempts: 2,
        delay: Duration::ZERO,
    })
}

fn vcek_only() -> Vec<Vec<u8>> {
    let pem = common::read(&format!("{TRUSTEE}/vcek.pem")).unwrap();
    vec![certs_from_pem(&pem).unwrap().remove(0)]
}

#[test]
fn collects_real_azure_evidence_that_verifies() {
    let Some(fake) = FakeTpm::trustee() else {
        return;
    };
    let hcl = fake.hcl.clone().unwrap();
    let mut t = vtpm(fake);
    // The recorded report was produced over all-zero user data and the nonce "challenge".
    let collected = t.collect(&[0u8; 64], b"challenge", vcek_only()).unwrap();
    let ev = &collected.evidence;
    assert_eq!(collected.report_type, azure::HclReportType::Snp);
    assert_eq!(ev.hcl_report, hcl, "HCL report comes back byte for byte");
    assert_eq!(ev.tpm_quote.pcrs.len(), 24);
    assert_eq!(hex::encode(&ev.tpm_quote.pcrs[0]), PCR0);

    let fake = t.transport();
    // NV 0x01400002 did not exist: defined (owner write/read), then written with the user data.
    assert_eq!(
        fake.commands(),
        vec![
            0x169, 0x12A, 0x169, 0x137, // user data
            0x169, 0x14E, 0x14E, 0x14E, // HCL report in 3 chunks
            0x158, 0x17E, 0x17E, 0x17E, // quote, PCRs 8 at a time
        ]
    );
    assert_eq!(fake.user_index.as_ref().unwrap().0, 0x0003_0002);
    assert_eq!(fake.user_index.as_ref().unwrap().1, vec![0u8; 64]);
    assert_eq!(fake.nv_read_sizes, vec![1024, 1024, 552]);

    let claims = azure::verify_snp(
        ev,
        &enclava_evidence::snp::Endorsements::default(),
        Some(b"challenge"),
        at(),
    )
    .unwrap();
    assert_eq!(claims.tee, Tee::AzureSnp);
    let az = claims.azure.unwrap();
    assert_eq!(az.pcrs.get("0").map(String::as_str), Some(PCR0));
    assert_eq!(az.nonce, hex::encode(b"challenge"));
    assert_eq!(az.user_data.as_deref(), Some(&hex::encode([0u8; 64])[..]));
}

#[test]
fn an_existing_user_data_index_is_written_without_defining_it() {
    let Some(mut fake) = FakeTpm::trustee() else {
        return;
    };
    fake.user_index = Some((0x0003_0002, vec![0xEE; 64]));
    let mut t = vtpm(fake);
    t.collect(&[0u8; 64], b"challenge", Vec::new()).unwrap();
    let cmds = t.transport().commands();
    assert!(!cmds.contains(&0x12A), "no NV_DefineSpace: {cmds:x?}");
    assert_eq!(t.transport().user_index.as_ref().unwrap().1, vec![0u8; 64]);
}

#[test]
fn a_stale_hcl_report_is_rejected() {
    let Some(fake) = FakeTpm::trustee() else {
        return;
    };
    // The fake does not regenerate the report: it keeps carrying all-zero user data.
    let mut t = vtpm(fake);
    match t.collect(&[0x11; 64], b"challenge", Vec::new()) {
        Err(AttesterError::HclReport { expected, found }) => {
            assert!(expected.contains(&hex::encode([0x11u8; 64])), "{expected}");
            assert!(found.contains(&hex::encode([0u8; 64])), "{found}");
            assert!(found.contains("after 2 reads"), "{found}");
        }
        other => panic!("expected HclReport, got {other:?}"),
    }
}

#[test]
fn a_quote_over_another_nonce_is_rejected() {
    let Some(fake) = FakeTpm::trustee() else {
        return;
    };
    // Through the Attester trait the nonce is the report data; the recorded quote answers
    // "challenge", which must not be accepted as an answer to our nonce.
    let mut attester = AzureVtpmAttester::new(vtpm(fake)).unwrap();
    assert_eq!(attester.tee(), Tee::AzureSnp);
    let e = attester.evidence(&[0u8; 64]).unwrap_err();
    match &e {
        AttesterError::TpmResponse { command, found, .. } => {
            assert_eq!(*command, "Quote");
            assert_eq!(found, &hex::encode(b"challenge"));
        }
        other => panic!("expected a Quote nonce error, got {other:?}"),
    }
}

#[test]
fn pcr_values_that_do_not_match_the_quote_are_rejected() {
    let Some(mut fake) = FakeTpm::trustee() else {
        return;
    };
    fake.pcrs[5][0] ^= 1; // PCR 5 "extended" after the quote
    let mut t = vtpm(fake);
    let e = t
        .collect(&[0u8; 64], b"challenge", Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pcrDigest") && e.contains("after 2 attempts"),
        "{e}"
    );
    let quotes = t
        .transport()
        .commands()
        .iter()
        .filter(|&&c| c == 0x158)
        .count();
    assert_eq!(quotes, 2, "quoted again once");
}

#[test]
fn tpm_error_codes_become_typed_errors() {
    let Some(mut fake) = FakeTpm::trustee() else {
        return;
    };
    fake.fail = Some((0x158, 0x98E));
    let mut t = vtpm(fake);
    match t.collect(&[0u8; 64], b"challenge", Vec::new()) {
        Err(AttesterError::TpmRc {
            command,
            rc,
            rc_name,
        }) => {
            assert_eq!((command, rc), ("Quote", 0x98E));
            assert_eq!(rc_name, "TPM_RC_AUTH_FAIL (session 1)");
        }
        other => panic!("expected TpmRc, got {other:?}"),
    }

    // No HCL report on this TPM (not an Azure CVM).
    let mut fake = FakeTpm::trustee().unwrap();
    fake.hcl = None;
    let e = AzureVtpmAttester::new(vtpm(fake)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TPM2_NV_ReadPublic: the TPM returned TPM_RC_HANDLE (handle 1) (response code 0x18b)"
    );
}

#[test]
fn truncated_responses_are_errors() {
    let Some(mut fake) = FakeTpm::trustee() else {
        return;
    };
    fake.truncate = Some(20);
    let mut t = vtpm(fake);
    let e = t.hcl_report().unwrap_err().to_string();
    assert!(e.contains("NV_ReadPublic") && e.contains("20 bytes"), "{e}");
}

#[test]
fn nonces_longer_than_64_bytes_are_refused() {
    let Some(fake) = FakeTpm::trustee() else {
        return;
    };
    let mut t = vtpm(fake);
    assert!(t.quote(&[0; 65]).is_err());
    assert!(
        t.transport().log.is_empty(),
        "refused before talking to the TPM"
    );
}

#[test]
fn pcrs_are_read_in_batches_and_keyed_by_index() {
    let Some(fake) = FakeTpm::trustee() else {
        return;
    };
    let expected = fake.pcrs.clone();
    let mut t = vtpm(fake);
    let pcrs = t.pcrs_sha256().unwrap();
    assert_eq!(pcrs, expected);
    let by_index: BTreeMap<usize, &Vec<u8>> = pcrs.iter().enumerate().collect();
    assert_eq!(hex::encode(by_index[&0]), PCR0);
}

#[test]
fn hcl_helpers_never_panic_on_damaged_reports() {
    let Some(hcl) = common::read(&format!("{TRUSTEE}/hcl-report.bin")) else {
        return;
    };
    use enclava_attester::vtpm::{hcl_report_type, hcl_user_data};
    assert_eq!(hcl_user_data(&hcl).unwrap(), Some(hex::encode([0u8; 64])));
    for n in (0..hcl.len()).step_by(7) {
        let _ = hcl_report_type(&hcl[..n]);
        let _ = hcl_user_data(&hcl[..n]);
    }
    for i in (0..hcl.len()).step_by(3) {
        let mut f = hcl.clone();
        f[i] ^= 0xff;
        let _ = hcl_report_type(&f);
        let _ = hcl_user_data(&f);
    }
}
