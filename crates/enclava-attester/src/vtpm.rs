//! Azure confidential VM evidence through the vTPM (`/dev/tpmrm0`).
//!
//! 1. Write the caller's 64 bytes of user data to NV index 0x01400002 (defined by us, owner
//!    authorized, when it does not exist yet): the paravisor (HCL) then refreshes the HCL report
//!    with a hardware report whose report_data binds runtime data carrying that user data.
//! 2. Read the HCL report from NV index 0x01400001 (TPM2_NV_ReadPublic for its size, then
//!    TPM2_NV_Read in chunks of at most [`MAX_NV_BUFFER`] bytes) and check that its runtime data
//!    carries our user data (else retry: the refresh is asynchronous on some hosts).
//! 3. TPM2_Quote with the attestation key at 0x81000003 over SHA-256 PCRs 0..23 with the caller's
//!    nonce, then TPM2_PCR_Read of the same PCRs (the TPM returns at most 8 per call); the PCR
//!    values must hash to the quote's pcrDigest (else a PCR was extended in between: retry).
//!
//! Everything goes over a `Read + Write` transport (the TPM resource manager device takes one
//! command per write and returns one response per read), so tests can plug in a fake TPM. The
//! hardware endorsements (VCEK chain for SNP from the instance metadata service, THIM) and the
//! TD quote for TDX (also from the metadata service) are fetched elsewhere (network) and passed in.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use enclava_evidence::azure::{AzureEvidence, HclReportType, TpmQuote, parse_hcl_report};

use crate::AttesterError;
use crate::tpm::{self, MAX_NV_BUFFER, NvPublic, PCR_COUNT, TPM_RC_HANDLE_1, TPM_RH_OWNER};

pub use crate::tpm::{QuoteResponse, rc_name};

/// The NV index holding the HCL report.
pub const HCL_REPORT_NV_INDEX: u32 = 0x0140_0001;
/// The NV index the paravisor reads the user data from.
pub const USER_DATA_NV_INDEX: u32 = 0x0140_0002;
/// The vTPM attestation key (HCLAkPub).
pub const AK_HANDLE: u32 = 0x8100_0003;
/// The TPM resource manager device, relative to the root.
pub const TPM_DEVICE: &str = "dev/tpmrm0";
/// Largest response we accept from the TPM.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// Largest NV index we read (HCL reports are a few KiB).
pub const MAX_NV_INDEX_SIZE: usize = 32 * 1024;

/// How often, and how far apart, to re-read the HCL report until it carries our user data, and to
/// redo the quote when the PCRs moved between quote and read.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            delay: Duration::from_millis(500),
        }
    }
}

/// A vTPM client over any byte transport.
#[derive(Debug)]
pub struct Vtpm<T: Read + Write> {
    transport: T,
    device: PathBuf,
    retry: Retry,
}

impl Vtpm<std::fs::File> {
    /// Open `{root}/dev/tpmrm0`.
    pub fn open(root: &Path) -> Result<Self, AttesterError> {
        let device = root.join(TPM_DEVICE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&device)
            .map_err(|e| AttesterError::io("open", &device, e))?;
        Ok(Vtpm::new(file, device))
    }
}

/// Azure evidence as collected, with the hardware report type read from the HCL report.
#[derive(Debug, Clone)]
pub struct AzureCollected {
    pub report_type: HclReportType,
    pub evidence: AzureEvidence,
}

impl<T: Read + Write> Vtpm<T> {
    /// A client over `transport`; `device` names it in errors.
    pub fn new(transport: T, device: impl Into<PathBuf>) -> Self {
        Vtpm {
            transport,
            device: device.into(),
            retry: Retry::default(),
        }
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = Retry {
            attempts: retry.attempts.max(1),
            delay: retry.delay,
        };
        self
    }

    /// The transport (tests inspect their fake TPM through this).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Send one command, receive one response.
    fn transact(&mut self, command: &'static str, cmd: &[u8]) -> Result<Vec<u8>, AttesterError> {
        let dev = self.device.clone();
        self.transport
            .write_all(cmd)
            .and_then(|()| self.transport.flush())
            .map_err(|e| AttesterError::io("write TPM command to", &dev, e))?;
        let mut buf = vec![0u8; 4096];
        let mut len = 0usize;
        let mut expected = None::<usize>;
        loop {
            if len == buf.len() {
                if buf.len() >= MAX_RESPONSE {
                    break;
                }
                buf.resize((buf.len() * 2).min(MAX_RESPONSE), 0);
            }
            let n = match self.transport.read(&mut buf[len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AttesterError::io("read TPM response from", &dev, e)),
            };
            if n == 0 {
                break;
            }
            len += n;
            if expected.is_none() && len >= 6 {
                let size = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
                expected = Some(size);
            }
            if let Some(size) = expected
                && len >= size
            {
                break;
            }
        }
        match expected {
            Some(size) if (10..=MAX_RESPONSE).contains(&size) && len == size => {
                buf.truncate(len);
                Ok(buf)
            }
            _ => Err(AttesterError::TpmResponse {
                command,
                expected: format!(
                    "a complete response (10 to {MAX_RESPONSE} bytes, as its header says) from {}",
                    dev.display()
                ),
                found: match expected {
                    Some(size) => format!("{len} bytes for a declared size of {size}"),
                    None => format!("{len} bytes"),
                },
            }),
        }
    }

    /// TPM2_NV_ReadPublic.
    pub fn nv_read_public(&mut self, nv_index: u32) -> Result<NvPublic, AttesterError> {
        let resp = self.transact("NV_ReadPublic", &tpm::nv_read_public(nv_index))?;
        let public = tpm::parse_nv_read_public(&resp)?;
        if public.nv_index != nv_index {
            return Err(AttesterError::TpmResponse {
                command: "NV_ReadPublic",
                expected: format!("the public area of NV index {nv_index:#010x}"),
                found: format!("index {:#010x}", public.nv_index),
            });
        }
        Ok(public)
    }

    /// The whole content of an NV index, read in chunks of at most [`MAX_NV_BUFFER`] bytes.
    pub fn nv_read_all(&mut self, nv_index: u32) -> Result<Vec<u8>, AttesterError> {
        let public = self.nv_read_public(nv_index)?;
        let auth = read_auth(&public).ok_or_else(|| AttesterError::TpmResponse {
            command: "NV_ReadPublic",
            expected: format!(
                "NV index {nv_index:#010x} readable with the owner or its own (empty) password"
            ),
            found: format!("attributes {:#010x}", public.attributes),
        })?;
        let size = public.data_size as usize;
        if size > MAX_NV_INDEX_SIZE {
            return Err(AttesterError::TpmResponse {
                command: "NV_ReadPublic",
                expected: format!("an NV index of at most {MAX_NV_INDEX_SIZE} bytes"),
                found: format!("{size} bytes"),
            });
        }
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let chunk = (size - out.len()).min(MAX_NV_BUFFER);
            // Both fit in u16: size comes from the u16 dataSize.
            let (c, o) = (chunk as u16, out.len() as u16);
            let resp = self.transact("NV_Read", &tpm::nv_read(auth, nv_index, c, o))?;
            let data = tpm::parse_nv_read(&resp)?;
            if data.len() != chunk {
                return Err(AttesterError::TpmResponse {
                    command: "NV_Read",
                    expected: format!("{chunk} bytes at offset {o} of NV index {nv_index:#010x}"),
                    found: format!("{} bytes", data.len()),
                });
            }
            out.extend_from_slice(&data);
        }
        Ok(out)
    }

    /// Write 64 bytes of user data to NV index 0x01400002, defining it first if it does not exist.
    pub fn write_user_data(&mut self, user_data: &[u8; 64]) -> Result<(), AttesterError> {
        let public = match self.nv_read_public(USER_DATA_NV_INDEX) {
            Ok(p) => p,
            Err(AttesterError::TpmRc { rc, .. }) if rc == TPM_RC_HANDLE_1 => {
                let attrs = tpm::TPMA_NV_OWNERWRITE | tpm::TPMA_NV_OWNERREAD | tpm::TPMA_NV_PPREAD;
                let resp = self.transact(
                    "NV_DefineSpace",
                    &tpm::nv_define_space(USER_DATA_NV_INDEX, attrs, 64),
                )?;
                tpm::parse_empty("NV_DefineSpace", &resp)?;
                self.nv_read_public(USER_DATA_NV_INDEX)?
            }
            Err(e) => return Err(e),
        };
        if (public.data_size as usize) < user_data.len() {
            return Err(AttesterError::TpmResponse {
                command: "NV_ReadPublic",
                expected: "NV index 0x01400002 of at least 64 bytes".into(),
                found: format!("{} bytes", public.data_size),
            });
        }
        let auth = write_auth(&public).ok_or_else(|| AttesterError::TpmResponse {
            command: "NV_ReadPublic",
            expected: "NV index 0x01400002 writable with the owner or its own (empty) password"
                .into(),
            found: format!("attributes {:#010x}", public.attributes),
        })?;
        let resp = self.transact(
            "NV_Write",
            &tpm::nv_write(auth, USER_DATA_NV_INDEX, user_data, 0)?,
        )?;
        tpm::parse_empty("NV_Write", &resp)
    }

    /// The HCL report as it is now (no fresh user data).
    pub fn hcl_report(&mut self) -> Result<Vec<u8>, AttesterError> {
        self.nv_read_all(HCL_REPORT_NV_INDEX)
    }

    /// Write `user_data`, then read the HCL report until its runtime data carries it.
    pub fn hcl_report_with_user_data(
        &mut self,
        user_data: &[u8; 64],
    ) -> Result<Vec<u8>, AttesterError> {
        self.write_user_data(user_data)?;
        let want = hex::encode(user_data);
        let mut found = String::new();
        for attempt in 0..self.retry.attempts {
            if attempt > 0 {
                std::thread::sleep(self.retry.delay);
            }
            let report = self.hcl_report()?;
            match hcl_user_data(&report)? {
                Some(u) if u.eq_ignore_ascii_case(&want) => return Ok(report),
                Some(u) => found = format!("user-data {u}"),
                None => found = "runtime data without \"user-data\"".into(),
            }
        }
        Err(AttesterError::HclReport {
            expected: format!(
                "runtime data with user-data {want} (written to NV index 0x01400002)"
            ),
            found: format!("{found} after {} reads", self.retry.attempts),
        })
    }

    /// TPM2_PCR_Read of SHA-256 PCRs 0..23 (several calls: a TPM returns at most 8 per call).
    pub fn pcrs_sha256(&mut self) -> Result<Vec<Vec<u8>>, AttesterError> {
        let mut values: Vec<Option<Vec<u8>>> = vec![None; PCR_COUNT];
        let mut counter = None;
        for _ in 0..PCR_COUNT {
            let missing: Vec<u32> = (0..PCR_COUNT as u32)
                .filter(|&i| values.get(i as usize).is_some_and(Option::is_none))
                .collect();
            if missing.is_empty() {
                break;
            }
            let resp = self.transact("PCR_Read", &tpm::pcr_read(&missing))?;
            let r = tpm::parse_pcr_read(&resp)?;
            if r.pcrs.is_empty() {
                return Err(AttesterError::TpmResponse {
                    command: "PCR_Read",
                    expected: format!("values for some of PCRs {missing:?}"),
                    found: "an empty selection".into(),
                });
            }
            match counter {
                None => counter = Some(r.update_counter),
                Some(c) if c != r.update_counter => {
                    // A PCR was extended between our reads: start over.
                    values = vec![None; PCR_COUNT];
                    counter = Some(r.update_counter);
                }
                Some(_) => {}
            }
            for (i, d) in r.pcrs.iter().zip(r.digests) {
                match values.get_mut(*i as usize) {
                    Some(slot) if missing.contains(i) => *slot = Some(d),
                    _ => {
                        return Err(AttesterError::TpmResponse {
                            command: "PCR_Read",
                            expected: format!("values for some of PCRs {missing:?}"),
                            found: format!("PCR {i}"),
                        });
                    }
                }
            }
        }
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| AttesterError::TpmResponse {
                    command: "PCR_Read",
                    expected: "all 24 SHA-256 PCRs".into(),
                    found: format!("PCR {i} never returned"),
                })
            })
            .collect()
    }

    /// TPM2_Quote by the AK over SHA-256 PCRs 0..23 with `nonce` (at most 64 bytes), plus the PCR
    /// values, checked against the quote's pcrDigest and nonce.
    pub fn quote(&mut self, nonce: &[u8]) -> Result<TpmQuote, AttesterError> {
        let all: Vec<u32> = (0..PCR_COUNT as u32).collect();
        let cmd = tpm::quote(AK_HANDLE, nonce, &all)?;
        let mut last = String::new();
        for _ in 0..self.retry.attempts {
            let resp = self.transact("Quote", &cmd)?;
            let q = tpm::parse_quote(&resp)?;
            let pcrs = self.pcrs_sha256()?;
            let quote = TpmQuote {
                message: q.attest,
                signature: q.signature,
                pcrs,
            };
            let attest = quote.attest().map_err(|e| AttesterError::TpmResponse {
                command: "Quote",
                expected: "a TPMS_ATTEST of type quote".into(),
                found: e.to_string(),
            })?;
            if attest.extra_data != nonce {
                return Err(AttesterError::TpmResponse {
                    command: "Quote",
                    expected: format!("extraData = our nonce {}", hex::encode(nonce)),
                    found: hex::encode(&attest.extra_data),
                });
            }
            match quote.check_pcr_digest() {
                Ok(_) => return Ok(quote),
                // PCRs extended between the quote and the read: quote again.
                Err(e) => last = e.to_string(),
            }
        }
        Err(AttesterError::TpmResponse {
            command: "Quote",
            expected: "PCR values that hash to the quote's pcrDigest".into(),
            found: format!("{last} after {} attempts", self.retry.attempts),
        })
    }

    /// All Azure evidence: HCL report over `user_data`, quote over `nonce`, and the hardware
    /// endorsements the caller fetched (`certs_der`, e.g. the VCEK chain from THIM).
    pub fn collect(
        &mut self,
        user_data: &[u8; 64],
        nonce: &[u8],
        certs_der: Vec<Vec<u8>>,
    ) -> Result<AzureCollected, AttesterError> {
        let hcl_report = self.hcl_report_with_user_data(user_data)?;
        let report_type = hcl_report_type(&hcl_report)?;
        let tpm_quote = self.quote(nonce)?;
        Ok(AzureCollected {
            report_type,
            evidence: AzureEvidence {
                // Version 2 of the Confidential Containers format: runtime data with user-data.
                version: 2,
                hcl_report,
                tpm_quote,
                certs_der,
                td_quote: None,
            },
        })
    }
}

fn read_auth(p: &NvPublic) -> Option<u32> {
    if p.attributes & tpm::TPMA_NV_OWNERREAD != 0 {
        Some(TPM_RH_OWNER)
    } else if p.attributes & tpm::TPMA_NV_AUTHREAD != 0 {
        Some(p.nv_index)
    } else {
        None
    }
}

fn write_auth(p: &NvPublic) -> Option<u32> {
    if p.attributes & tpm::TPMA_NV_OWNERWRITE != 0 {
        Some(TPM_RH_OWNER)
    } else if p.attributes & tpm::TPMA_NV_AUTHWRITE != 0 {
        Some(p.nv_index)
    } else {
        None
    }
}

fn hcl_error(e: enclava_evidence::azure::AzureError) -> AttesterError {
    AttesterError::HclReport {
        expected: "a well-formed HCL report".into(),
        found: e.to_string(),
    }
}

/// The hardware report type of an HCL report.
pub fn hcl_report_type(report: &[u8]) -> Result<HclReportType, AttesterError> {
    Ok(parse_hcl_report(report).map_err(hcl_error)?.report_type)
}

/// `runtime_data["user-data"]` of an HCL report, if present.
pub fn hcl_user_data(report: &[u8]) -> Result<Option<String>, AttesterError> {
    let hcl = parse_hcl_report(report).map_err(hcl_error)?;
    let runtime = hcl.runtime_data().map_err(hcl_error)?;
    Ok(runtime
        .get("user-data")
        .and_then(|v| v.as_str())
        .map(str::to_string))
}
