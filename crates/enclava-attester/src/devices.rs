//! Legacy guest devices: `/dev/sev-guest` (SNP_GET_REPORT, SNP_GET_EXT_REPORT) and
//! `/dev/tdx_guest` (TDX_CMD_GET_REPORT0), as in the kernel uapi headers `linux/sev-guest.h` and
//! `linux/tdx-guest.h`.
//!
//! The request/response structures are encoded and decoded by pure functions over byte arrays
//! (tested against the uapi layouts and ioctl numbers). The ioctl itself is one small function
//! per device, the only `unsafe` in the crate. Without the hardware nothing beyond the encoding can
//! be tested here: the ioctl paths are exercised only on a real SEV-SNP or TDX guest.
//!
//! A TDREPORT is MACed by the CPU, not signed: a verifier needs a quote from the host's quoting
//! service. With configfs-tsm (Linux 6.7+) the kernel obtains that quote itself, which is why
//! [`crate::open`] prefers configfs-tsm; the legacy TDX path needs a [`TdxQuoteService`].

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::AttesterError;
use crate::layout::{self, SNP_REPORT_LEN, TDREPORT_LEN};

/// `/dev/sev-guest`, relative to the root.
pub const SEV_GUEST_DEVICE: &str = "dev/sev-guest";
/// `/dev/tdx_guest`, relative to the root.
pub const TDX_GUEST_DEVICE: &str = "dev/tdx_guest";

// ---------------------------------------------------------------- ioctl numbers (asm-generic)

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOWR(type, nr, size)` as in `include/uapi/asm-generic/ioctl.h` (x86 and arm64).
pub const fn iowr(ty: u8, nr: u8, size: usize) -> u32 {
    ((IOC_READ | IOC_WRITE) << IOC_DIRSHIFT)
        | ((size as u32 & ((1 << IOC_SIZEBITS) - 1)) << IOC_SIZESHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
}

/// The size field of an ioctl number.
pub const fn ioc_size(request: u32) -> usize {
    ((request >> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1)) as usize
}

// ---------------------------------------------------------------- sev-guest layouts

/// `struct snp_guest_request_ioctl { u8 msg_version; u64 req_data; u64 resp_data; u64 exitinfo2; }`
/// (7 bytes of padding after msg_version).
pub const SNP_GUEST_REQUEST_IOCTL_LEN: usize = 32;
/// `struct snp_report_req { u8 user_data[64]; u32 vmpl; u8 rsvd[28]; }`
pub const SNP_REPORT_REQ_LEN: usize = 96;
/// `struct snp_ext_report_req { struct snp_report_req data; u64 certs_address; u32 certs_len; }`
/// (4 bytes of tail padding).
pub const SNP_EXT_REPORT_REQ_LEN: usize = 112;
/// `struct snp_report_resp { u8 data[4000]; }`
pub const SNP_REPORT_RESP_LEN: usize = 4000;
/// MSG_REPORT_RSP: status u32, report_size u32, reserved[0x18], report.
pub const SNP_REPORT_RESP_REPORT_OFFSET: usize = 0x20;
/// `SNP_GET_REPORT = _IOWR('S', 0x0, struct snp_guest_request_ioctl)`
pub const SNP_GET_REPORT: u32 = iowr(b'S', 0x0, SNP_GUEST_REQUEST_IOCTL_LEN);
/// `SNP_GET_EXT_REPORT = _IOWR('S', 0x2, struct snp_guest_request_ioctl)`
pub const SNP_GET_EXT_REPORT: u32 = iowr(b'S', 0x2, SNP_GUEST_REQUEST_IOCTL_LEN);
/// The message version the driver accepts.
pub const SNP_MSG_VERSION: u8 = 1;
/// `SNP_GUEST_VMM_ERR_INVALID_LEN`: the certificate buffer was too small (certs_len updated).
pub const SNP_GUEST_VMM_ERR_INVALID_LEN: u32 = 1;
/// `SNP_GUEST_VMM_ERR_BUSY`.
pub const SNP_GUEST_VMM_ERR_BUSY: u32 = 2;
/// The certificate buffer we offer: the kernel's cap, SEV_FW_BLOB_MAX_SIZE (16 KiB, page aligned).
pub const SNP_CERTS_MAX: usize = 16 * 1024;

/// `struct tdx_report_req { u8 reportdata[64]; u8 tdreport[1024]; }`
pub const TDX_REPORT_REQ_LEN: usize = 64 + TDREPORT_LEN;
/// `TDX_CMD_GET_REPORT0 = _IOWR('T', 1, struct tdx_report_req)`
pub const TDX_CMD_GET_REPORT0: u32 = iowr(b'T', 1, TDX_REPORT_REQ_LEN);

/// Encode `struct snp_report_req`.
pub fn encode_snp_report_req(user_data: &[u8; 64], vmpl: u32) -> [u8; SNP_REPORT_REQ_LEN] {
    let mut b = [0u8; SNP_REPORT_REQ_LEN];
    b[..64].copy_from_slice(user_data);
    b[64..68].copy_from_slice(&vmpl.to_ne_bytes());
    b
}

/// Encode `struct snp_ext_report_req` (the certificate buffer address and length are filled in
/// right before the ioctl, see [`set_ext_certs`]).
pub fn encode_snp_ext_report_req(
    user_data: &[u8; 64],
    vmpl: u32,
    certs_address: u64,
    certs_len: u32,
) -> [u8; SNP_EXT_REPORT_REQ_LEN] {
    let mut b = [0u8; SNP_EXT_REPORT_REQ_LEN];
    b[..SNP_REPORT_REQ_LEN].copy_from_slice(&encode_snp_report_req(user_data, vmpl));
    set_ext_certs(&mut b, certs_address, certs_len);
    b
}

/// Set `certs_address` / `certs_len` in an encoded `snp_ext_report_req`.
pub fn set_ext_certs(req: &mut [u8; SNP_EXT_REPORT_REQ_LEN], address: u64, len: u32) {
    req[96..104].copy_from_slice(&address.to_ne_bytes());
    req[104..108].copy_from_slice(&len.to_ne_bytes());
}

/// `certs_len` of an encoded `snp_ext_report_req` (the kernel sets it to the needed size when the
/// buffer was too small).
pub fn ext_certs_len(req: &[u8; SNP_EXT_REPORT_REQ_LEN]) -> u32 {
    u32::from_ne_bytes([req[104], req[105], req[106], req[107]])
}

/// Encode `struct snp_guest_request_ioctl`.
pub fn encode_snp_guest_request(
    msg_version: u8,
    req_data: u64,
    resp_data: u64,
) -> [u8; SNP_GUEST_REQUEST_IOCTL_LEN] {
    let mut b = [0u8; SNP_GUEST_REQUEST_IOCTL_LEN];
    b[0] = msg_version;
    b[8..16].copy_from_slice(&req_data.to_ne_bytes());
    b[16..24].copy_from_slice(&resp_data.to_ne_bytes());
    b
}

/// `exitinfo2` of a `snp_guest_request_ioctl` as (firmware error, VMM error).
pub fn snp_guest_request_errors(b: &[u8; SNP_GUEST_REQUEST_IOCTL_LEN]) -> (u32, u32) {
    let fw = u32::from_ne_bytes([b[24], b[25], b[26], b[27]]);
    let vmm = u32::from_ne_bytes([b[28], b[29], b[30], b[31]]);
    (fw, vmm)
}

/// Decode `struct snp_report_resp` (MSG_REPORT_RSP): status 0, report_size at least 1184, the
/// report at offset 0x20.
pub fn decode_snp_report_resp(resp: &[u8]) -> Result<Vec<u8>, AttesterError> {
    let what = "SNP MSG_REPORT_RSP";
    let word = |at: usize| -> Result<u32, AttesterError> {
        resp.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| {
                AttesterError::malformed(
                    what,
                    "a 4000-byte response",
                    format!("{} bytes", resp.len()),
                )
            })
    };
    let status = word(0)?;
    if status != 0 {
        return Err(AttesterError::malformed(
            what,
            "status 0 (success)",
            format!("firmware status {status:#x}"),
        ));
    }
    let size = word(4)? as usize;
    if size < SNP_REPORT_LEN {
        return Err(AttesterError::malformed(
            what,
            format!("report_size of at least {SNP_REPORT_LEN}"),
            size.to_string(),
        ));
    }
    resp.get(SNP_REPORT_RESP_REPORT_OFFSET..SNP_REPORT_RESP_REPORT_OFFSET + size)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            AttesterError::malformed(
                what,
                format!("a {size}-byte report inside the response"),
                format!("{} bytes", resp.len()),
            )
        })
}

/// Encode `struct tdx_report_req`.
pub fn encode_tdx_report_req(report_data: &[u8; 64]) -> [u8; TDX_REPORT_REQ_LEN] {
    let mut b = [0u8; TDX_REPORT_REQ_LEN];
    b[..64].copy_from_slice(report_data);
    b
}

/// The TDREPORT from a completed `struct tdx_report_req`.
pub fn decode_tdx_report_req(req: &[u8; TDX_REPORT_REQ_LEN]) -> [u8; TDREPORT_LEN] {
    let mut out = [0u8; TDREPORT_LEN];
    out.copy_from_slice(&req[64..]);
    out
}

// ---------------------------------------------------------------- the ioctls

fn ioctl_error(device: &Path, ioctl: &'static str, detail: String) -> AttesterError {
    AttesterError::Ioctl {
        device: device.to_path_buf(),
        ioctl,
        detail,
    }
}

/// One sev-guest request: the encoded request structure (and for the extended report the buffer
/// that receives the certificate table). The sizes are fixed by the types.
enum SevGuestCall<'a> {
    Report(&'a mut [u8; SNP_REPORT_REQ_LEN]),
    ExtReport(&'a mut [u8; SNP_EXT_REPORT_REQ_LEN], &'a mut [u8]),
}

/// SNP_GET_REPORT / SNP_GET_EXT_REPORT on an open `/dev/sev-guest`. Returns the completed
/// `snp_guest_request_ioctl` (for exitinfo2) and the ioctl's outcome.
#[allow(unsafe_code)]
fn sev_guest_ioctl(
    file: &File,
    call: SevGuestCall<'_>,
    resp: &mut [u8; SNP_REPORT_RESP_LEN],
) -> ([u8; SNP_GUEST_REQUEST_IOCTL_LEN], std::io::Result<()>) {
    use std::os::fd::AsRawFd;
    let (request, req_data) = match call {
        SevGuestCall::Report(req) => (SNP_GET_REPORT, req.as_mut_ptr() as u64),
        SevGuestCall::ExtReport(req, certs) => {
            // A length that does not fit is offered as 0: the kernel then writes nothing.
            let len = u32::try_from(certs.len()).unwrap_or(0);
            set_ext_certs(req, certs.as_mut_ptr() as u64, len);
            (SNP_GET_EXT_REPORT, req.as_mut_ptr() as u64)
        }
    };
    let mut arg = encode_snp_guest_request(SNP_MSG_VERSION, req_data, resp.as_mut_ptr() as u64);
    // SAFETY: the argument of SNP_GET_REPORT and SNP_GET_EXT_REPORT is a
    // `struct snp_guest_request_ioctl` (32 bytes, the size in the ioctl number): `arg` is exactly
    // that and exclusively borrowed for the call. The kernel follows the addresses inside it:
    // `req_data` to the request (`snp_report_req`, 96 bytes, for SNP_GET_REPORT;
    // `snp_ext_report_req`, 112 bytes, for SNP_GET_EXT_REPORT: the array types fix both sizes),
    // `resp_data` to `resp` (4000 bytes = sizeof(struct snp_report_resp)) and, for the extended
    // report, `certs_address`/`certs_len` to `certs` and at most its exact length. All of them are
    // exclusive borrows held until this function returns (their pointers were exposed to the
    // integer fields just above), so the kernel reads and writes only memory we own and that
    // nothing else touches during the call. The fd stays open for the call (borrowed `file`).
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            request as _,
            arg.as_mut_ptr().cast::<libc::c_void>(),
        )
    };
    let outcome = if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    };
    (arg, outcome)
}

/// TDX_CMD_GET_REPORT0 on an open `/dev/tdx_guest`.
#[allow(unsafe_code)]
fn tdx_guest_ioctl(file: &File, req: &mut [u8; TDX_REPORT_REQ_LEN]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TDX_CMD_GET_REPORT0's argument is a `struct tdx_report_req` (1088 bytes, its size is
    // encoded in the ioctl number): `req` is exactly that many bytes, exclusively borrowed for the
    // call, and the kernel copies the report data in and the TDREPORT out of it, nothing else.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            TDX_CMD_GET_REPORT0 as _,
            req.as_mut_ptr().cast::<libc::c_void>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `/dev/sev-guest`.
#[derive(Debug)]
pub struct SevGuestDevice {
    path: PathBuf,
    file: File,
}

/// An SNP report from the legacy device, with the certificate table when extended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpDeviceReport {
    pub report: Vec<u8>,
    /// The certificate table (empty when the host supplied none).
    pub cert_table: Vec<u8>,
}

impl SevGuestDevice {
    pub fn open(root: &Path) -> Result<Self, AttesterError> {
        let path = root.join(SEV_GUEST_DEVICE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| AttesterError::io("open", &path, e))?;
        Ok(SevGuestDevice { path, file })
    }

    /// SNP_GET_REPORT at `vmpl`.
    pub fn get_report(
        &self,
        user_data: &[u8; 64],
        vmpl: u32,
    ) -> Result<SnpDeviceReport, AttesterError> {
        let mut req = encode_snp_report_req(user_data, vmpl);
        let mut resp = [0u8; SNP_REPORT_RESP_LEN];
        let (arg, outcome) = sev_guest_ioctl(&self.file, SevGuestCall::Report(&mut req), &mut resp);
        self.finish("SNP_GET_REPORT", arg, outcome, &resp, user_data)
            .map(|report| SnpDeviceReport {
                report,
                cert_table: Vec::new(),
            })
    }

    /// SNP_GET_EXT_REPORT at `vmpl`: the report and the host-provided certificate table, into a
    /// buffer of [`SNP_CERTS_MAX`] bytes (the most the kernel accepts; it must be page aligned).
    pub fn get_ext_report(
        &self,
        user_data: &[u8; 64],
        vmpl: u32,
    ) -> Result<SnpDeviceReport, AttesterError> {
        const IOCTL: &str = "SNP_GET_EXT_REPORT";
        let mut certs = vec![0u8; SNP_CERTS_MAX];
        let mut req = encode_snp_ext_report_req(user_data, vmpl, 0, 0);
        let mut resp = [0u8; SNP_REPORT_RESP_LEN];
        let (arg, outcome) = sev_guest_ioctl(
            &self.file,
            SevGuestCall::ExtReport(&mut req, &mut certs),
            &mut resp,
        );
        let (_, vmm) = snp_guest_request_errors(&arg);
        if outcome.is_err() && vmm == SNP_GUEST_VMM_ERR_INVALID_LEN {
            return Err(ioctl_error(
                &self.path,
                IOCTL,
                format!(
                    "the host's certificate table needs {} bytes, expected at most {SNP_CERTS_MAX}",
                    ext_certs_len(&req)
                ),
            ));
        }
        let report = self.finish(IOCTL, arg, outcome, &resp, user_data)?;
        let used = (ext_certs_len(&req) as usize).min(certs.len());
        certs.truncate(used);
        Ok(SnpDeviceReport {
            report,
            cert_table: certs,
        })
    }

    fn finish(
        &self,
        ioctl: &'static str,
        arg: [u8; SNP_GUEST_REQUEST_IOCTL_LEN],
        outcome: std::io::Result<()>,
        resp: &[u8; SNP_REPORT_RESP_LEN],
        user_data: &[u8; 64],
    ) -> Result<Vec<u8>, AttesterError> {
        let (fw, vmm) = snp_guest_request_errors(&arg);
        if let Err(e) = outcome {
            let hint = if vmm == SNP_GUEST_VMM_ERR_BUSY {
                "; the host is busy (SNP_GUEST_VMM_ERR_BUSY), retry later"
            } else {
                ""
            };
            return Err(ioctl_error(
                &self.path,
                ioctl,
                format!("{e} (firmware error {fw:#x}, VMM error {vmm:#x}){hint}"),
            ));
        }
        let report = decode_snp_report_resp(resp)?;
        layout::check_snp_report(&format!("{ioctl} report"), &report, user_data)?;
        Ok(report)
    }
}

/// A host quoting service turning a TDREPORT into a DCAP quote (e.g. the QGS over vsock, or the
/// Azure instance metadata service). Not provided by this crate.
pub trait TdxQuoteService {
    fn quote(&mut self, tdreport: &[u8; TDREPORT_LEN]) -> Result<Vec<u8>, AttesterError>;
}

/// `/dev/tdx_guest`.
#[derive(Debug)]
pub struct TdxGuestDevice {
    path: PathBuf,
    file: File,
}

impl TdxGuestDevice {
    pub fn open(root: &Path) -> Result<Self, AttesterError> {
        let path = root.join(TDX_GUEST_DEVICE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| AttesterError::io("open", &path, e))?;
        Ok(TdxGuestDevice { path, file })
    }

    /// TDX_CMD_GET_REPORT0: the TDREPORT over `report_data`.
    pub fn get_tdreport(
        &self,
        report_data: &[u8; 64],
    ) -> Result<[u8; TDREPORT_LEN], AttesterError> {
        let mut req = encode_tdx_report_req(report_data);
        tdx_guest_ioctl(&self.file, &mut req)
            .map_err(|e| ioctl_error(&self.path, "TDX_CMD_GET_REPORT0", e.to_string()))?;
        let report = decode_tdx_report_req(&req);
        layout::check_tdreport("TDX_CMD_GET_REPORT0 TDREPORT", &report, report_data)?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_constants() {
        // Values as compiled from linux/sev-guest.h and linux/tdx-guest.h.
        assert_eq!(SNP_GET_REPORT, 0xC020_5300);
        assert_eq!(SNP_GET_EXT_REPORT, 0xC020_5302);
        assert_eq!(TDX_CMD_GET_REPORT0, 0xC440_5401);
        assert_eq!(ioc_size(SNP_GET_REPORT), SNP_GUEST_REQUEST_IOCTL_LEN);
        assert_eq!(ioc_size(TDX_CMD_GET_REPORT0), 1088);
        // SNP_GET_DERIVED_KEY, same macro, nr 1.
        assert_eq!(iowr(b'S', 1, 32), 0xC020_5301);
    }

    #[test]
    fn snp_report_req_layout() {
        let mut ud = [0u8; 64];
        for (i, b) in ud.iter_mut().enumerate() {
            *b = i as u8;
        }
        let b = encode_snp_report_req(&ud, 2);
        assert_eq!(b.len(), 96);
        assert_eq!(&b[..64], &ud[..]);
        assert_eq!(&b[64..68], &2u32.to_ne_bytes());
        assert!(b[68..].iter().all(|&x| x == 0), "rsvd[28] must be zero");

        let e = encode_snp_ext_report_req(&ud, 3, 0x1122_3344_5566_7788, 0x4000);
        assert_eq!(e.len(), 112);
        assert_eq!(&e[..96], &encode_snp_report_req(&ud, 3)[..]);
        assert_eq!(&e[96..104], &0x1122_3344_5566_7788u64.to_ne_bytes());
        assert_eq!(ext_certs_len(&e), 0x4000);
        assert!(e[108..].iter().all(|&x| x == 0));
    }

    #[test]
    fn snp_guest_request_layout() {
        let mut b = encode_snp_guest_request(1, 0xAAAA_BBBB_CCCC_DDDD, 0x0102_0304_0506_0708);
        assert_eq!(b[0], 1);
        assert!(b[1..8].iter().all(|&x| x == 0), "padding after msg_version");
        assert_eq!(&b[8..16], &0xAAAA_BBBB_CCCC_DDDDu64.to_ne_bytes());
        assert_eq!(&b[16..24], &0x0102_0304_0506_0708u64.to_ne_bytes());
        // exitinfo2 = (vmm_error << 32) | fw_error
        b[24..32].copy_from_slice(&((1u64 << 32) | 0x16).to_ne_bytes());
        if cfg!(target_endian = "little") {
            assert_eq!(snp_guest_request_errors(&b), (0x16, 1));
        }
    }

    #[test]
    fn snp_report_resp_decoding() {
        let mut resp = vec![0u8; SNP_REPORT_RESP_LEN];
        resp[4..8].copy_from_slice(&(SNP_REPORT_LEN as u32).to_le_bytes());
        for (i, b) in resp[0x20..0x20 + SNP_REPORT_LEN].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let report = decode_snp_report_resp(&resp).unwrap();
        assert_eq!(report.len(), SNP_REPORT_LEN);
        assert_eq!(report[..], resp[0x20..0x20 + SNP_REPORT_LEN]);

        let mut bad = resp.clone();
        bad[0] = 0x16; // INVALID_PARAM-ish firmware status
        let e = decode_snp_report_resp(&bad).unwrap_err().to_string();
        assert!(e.contains("status 0") && e.contains("0x16"), "{e}");

        let mut small = resp.clone();
        small[4..8].copy_from_slice(&100u32.to_le_bytes());
        assert!(decode_snp_report_resp(&small).is_err());

        let mut huge = resp.clone();
        huge[4..8].copy_from_slice(&5000u32.to_le_bytes());
        assert!(decode_snp_report_resp(&huge).is_err());

        for n in 0..64 {
            assert!(decode_snp_report_resp(&resp[..n]).is_err());
        }
    }

    #[test]
    fn tdx_report_req_layout() {
        let rd = [0x5a; 64];
        let mut req = encode_tdx_report_req(&rd);
        assert_eq!(req.len(), 1088);
        assert_eq!(&req[..64], &rd[..]);
        assert!(req[64..].iter().all(|&x| x == 0));
        req[64 + TDREPORT_LEN - 1] = 0xee;
        let r = decode_tdx_report_req(&req);
        assert_eq!(r[TDREPORT_LEN - 1], 0xee);
    }

    #[test]
    fn opening_missing_devices_names_the_path() {
        let dir = std::env::temp_dir().join("enclava-attester-no-such-root");
        let e = SevGuestDevice::open(&dir).unwrap_err().to_string();
        assert!(e.contains("dev/sev-guest"), "{e}");
        let e = TdxGuestDevice::open(&dir).unwrap_err().to_string();
        assert!(e.contains("dev/tdx_guest"), "{e}");
    }
}
