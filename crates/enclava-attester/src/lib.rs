//! Evidence collection inside a TEE, from the real Linux interfaces:
//!
//! - [`configfs`]: configfs-tsm (`/sys/kernel/config/tsm/report`, Linux 6.7+), SEV-SNP and TDX;
//! - [`devices`]: the legacy `/dev/sev-guest` and `/dev/tdx_guest` ioctls;
//! - [`vtpm`]: Azure confidential VMs (HCL report and TPM quote over `/dev/tpmrm0`);
//! - [`sim`]: the simulator (explicit only).
//!
//! [`detect`] reports what a machine has (under an injectable root), [`open`] picks one interface
//! and returns it behind the [`Attester`] trait. Synchronous and small: the callers run it on a
//! blocking thread. The only `unsafe` code is the two ioctl calls in [`devices`].

#![deny(unsafe_code)]

pub mod configfs;
pub mod detect;
pub mod devices;
mod error;
mod layout;
pub mod sim;
pub mod tpm;
pub mod vtpm;

use std::io::{Read, Write};
use std::path::Path;

pub use detect::{Detected, Interface, detect};
pub use enclava_evidence::Tee;
use enclava_evidence::azure::{AzureEvidence, HclReportType};
pub use error::AttesterError;
pub use layout::{SNP_REPORT_LEN, TDREPORT_LEN};

use configfs::{ConfigfsOps, ConfigfsTsm, StdFs, TsmProvider};
use devices::{SevGuestDevice, TdxGuestDevice, TdxQuoteService};
use vtpm::Vtpm;

/// Collected evidence.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub tee: Tee,
    /// The hardware evidence, untouched: SNP attestation report, TDX quote, HCL report (Azure),
    /// simulated evidence.
    pub bytes: Vec<u8>,
    /// DER certificates that came with the evidence (SNP: the extended report's certificate table:
    /// VCEK or VLEK, ASK, ARK; Azure: what the caller supplied).
    pub endorsements: Vec<Vec<u8>>,
    /// The complete Azure evidence (HCL report, TPM quote, certificates) for `azure-*`.
    pub azure: Option<AzureEvidence>,
}

/// One way of producing evidence.
pub trait Attester {
    fn tee(&self) -> Tee;
    /// Evidence binding `report_data` (the hardware report_data; for Azure the HCL user data and
    /// the TPM quote nonce).
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, AttesterError>;
}

/// DER certificates from an SNP certificate table (empty table: none).
pub fn certs_from_cert_table(table: &[u8]) -> Result<Vec<Vec<u8>>, AttesterError> {
    enclava_evidence::snp::endorsements_from_cert_table(table)
        .map(|e| e.certs_der)
        .map_err(|e| {
            AttesterError::malformed(
                "SNP certificate table",
                "24-byte GUID/offset/length entries ending in an all-zero entry",
                e.to_string(),
            )
        })
}

// ---------------------------------------------------------------- configfs-tsm

/// SEV-SNP or TDX through configfs-tsm.
#[derive(Debug)]
pub struct ConfigfsAttester<O: ConfigfsOps = StdFs> {
    tsm: ConfigfsTsm<O>,
    tee: Tee,
    privlevel: Option<u32>,
}

impl<O: ConfigfsOps> ConfigfsAttester<O> {
    /// `tee` must be `Snp` (provider `sev_guest`) or `Tdx` (`tdx_guest`); each report's provider
    /// is checked against it.
    pub fn new(tsm: ConfigfsTsm<O>, tee: Tee) -> Result<Self, AttesterError> {
        match tee {
            Tee::Snp | Tee::Tdx => Ok(ConfigfsAttester {
                tsm,
                tee,
                privlevel: None,
            }),
            other => Err(AttesterError::Unavailable {
                tee: other,
                reason: "configfs-tsm provides only snp (sev_guest) and tdx (tdx_guest)".into(),
            }),
        }
    }

    /// Request the report at this privilege level (SEV-SNP VMPL).
    pub fn with_privlevel(mut self, privlevel: u32) -> Self {
        self.privlevel = Some(privlevel);
        self
    }

    pub fn tsm(&self) -> &ConfigfsTsm<O> {
        &self.tsm
    }
}

impl<O: ConfigfsOps> Attester for ConfigfsAttester<O> {
    fn tee(&self) -> Tee {
        self.tee
    }

    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, AttesterError> {
        let report = self.tsm.get_report(report_data, self.privlevel)?;
        let expected = match self.tee {
            Tee::Tdx => TsmProvider::TdxGuest,
            _ => TsmProvider::SevGuest,
        };
        if report.provider != expected {
            return Err(AttesterError::Unavailable {
                tee: self.tee,
                reason: format!(
                    "configfs-tsm provider is {:?}, expected {:?}",
                    report.provider.as_str(),
                    expected.as_str()
                ),
            });
        }
        let endorsements = match &report.auxblob {
            Some(table) => certs_from_cert_table(table)?,
            None => Vec::new(),
        };
        Ok(Evidence {
            tee: self.tee,
            bytes: report.outblob,
            endorsements,
            azure: None,
        })
    }
}

// ---------------------------------------------------------------- legacy devices

/// SEV-SNP through `/dev/sev-guest` (SNP_GET_EXT_REPORT).
#[derive(Debug)]
pub struct SevGuestAttester {
    device: SevGuestDevice,
    vmpl: u32,
}

impl SevGuestAttester {
    pub fn open(root: &Path, vmpl: u32) -> Result<Self, AttesterError> {
        Ok(SevGuestAttester {
            device: SevGuestDevice::open(root)?,
            vmpl,
        })
    }
}

impl Attester for SevGuestAttester {
    fn tee(&self) -> Tee {
        Tee::Snp
    }
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, AttesterError> {
        let r = self.device.get_ext_report(report_data, self.vmpl)?;
        Ok(Evidence {
            tee: Tee::Snp,
            endorsements: certs_from_cert_table(&r.cert_table)?,
            bytes: r.report,
            azure: None,
        })
    }
}

/// TDX through `/dev/tdx_guest` plus a host quote service.
pub struct TdxGuestAttester<Q: TdxQuoteService> {
    device: TdxGuestDevice,
    quotes: Q,
}

impl<Q: TdxQuoteService> TdxGuestAttester<Q> {
    pub fn open(root: &Path, quotes: Q) -> Result<Self, AttesterError> {
        Ok(TdxGuestAttester {
            device: TdxGuestDevice::open(root)?,
            quotes,
        })
    }
}

impl<Q: TdxQuoteService> Attester for TdxGuestAttester<Q> {
    fn tee(&self) -> Tee {
        Tee::Tdx
    }
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, AttesterError> {
        let tdreport = self.device.get_tdreport(report_data)?;
        let quote = self.quotes.quote(&tdreport)?;
        layout::check_tdx_quote("TDX quote from the quote service", &quote, report_data)?;
        Ok(Evidence {
            tee: Tee::Tdx,
            bytes: quote,
            endorsements: Vec::new(),
            azure: None,
        })
    }
}

// ---------------------------------------------------------------- Azure vTPM

/// Azure CVM evidence through the vTPM. The report data is both the HCL user data and the TPM
/// quote nonce. The SNP endorsements (VCEK chain from the instance metadata service) and, for TDX,
/// the TD quote are fetched elsewhere: supply certificates with [`AzureVtpmAttester::with_certs`];
/// `azure-tdx` evidence leaves `td_quote` empty for the caller to fill.
#[derive(Debug)]
pub struct AzureVtpmAttester<T: Read + Write> {
    vtpm: Vtpm<T>,
    tee: Tee,
    certs_der: Vec<Vec<u8>>,
}

impl<T: Read + Write> AzureVtpmAttester<T> {
    /// Reads the HCL report once to learn the hardware type (SNP or TDX).
    pub fn new(mut vtpm: Vtpm<T>) -> Result<Self, AttesterError> {
        let report = vtpm.hcl_report()?;
        let tee = match vtpm::hcl_report_type(&report)? {
            HclReportType::Snp => Tee::AzureSnp,
            HclReportType::Tdx => Tee::AzureTdx,
        };
        Ok(AzureVtpmAttester {
            vtpm,
            tee,
            certs_der: Vec::new(),
        })
    }

    /// Certificates to ship with the evidence (DER; SNP: VCEK, optionally ASK/ARK).
    pub fn with_certs(mut self, certs_der: Vec<Vec<u8>>) -> Self {
        self.certs_der = certs_der;
        self
    }
}

impl<T: Read + Write> Attester for AzureVtpmAttester<T> {
    fn tee(&self) -> Tee {
        self.tee
    }
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, AttesterError> {
        let collected = self
            .vtpm
            .collect(report_data, report_data, self.certs_der.clone())?;
        let tee = match collected.report_type {
            HclReportType::Snp => Tee::AzureSnp,
            HclReportType::Tdx => Tee::AzureTdx,
        };
        if tee != self.tee {
            return Err(AttesterError::HclReport {
                expected: format!("a {} HCL report", self.tee),
                found: format!("a {tee} HCL report"),
            });
        }
        Ok(Evidence {
            tee,
            bytes: collected.evidence.hcl_report.clone(),
            endorsements: self.certs_der.clone(),
            azure: Some(collected.evidence),
        })
    }
}

// ---------------------------------------------------------------- simulator

/// The simulator (not confidential; explicit only).
#[derive(Debug, Clone)]
pub struct SimAttester {
    measurement: [u8; 48],
}

impl SimAttester {
    pub fn new(measurement: [u8; 48]) -> Self {
        SimAttester { measurement }
    }
}

impl Attester for SimAttester {
    fn tee(&self) -> Tee {
        Tee::Sim
    }
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, AttesterError> {
        Ok(Evidence {
            tee: Tee::Sim,
            bytes: sim::collect_sim(report_data, &self.measurement),
            endorsements: Vec::new(),
            azure: None,
        })
    }
}

// ---------------------------------------------------------------- choosing

fn unavailable(tee: Tee, reason: impl Into<String>) -> AttesterError {
    AttesterError::Unavailable {
        tee,
        reason: reason.into(),
    }
}

/// Open the attester for this machine under `root` (normally `/`).
///
/// Without `prefer`, the first usable interface in the order documented in [`detect`]: Azure
/// vTPM, configfs-tsm, `/dev/sev-guest`, `/dev/tdx_guest`; nothing found is
/// [`AttesterError::NoTee`] (the simulator is never chosen automatically). With `prefer`, exactly
/// that TEE (configfs-tsm before the legacy device), or [`AttesterError::Unavailable`].
/// `Some(Tee::Sim)` returns the simulator with an all-zero measurement.
pub fn open(root: &Path, prefer: Option<Tee>) -> Result<Box<dyn Attester>, AttesterError> {
    if prefer == Some(Tee::Sim) {
        return Ok(Box::new(SimAttester::new([0u8; 48])));
    }
    if prefer == Some(Tee::Sgx) {
        return Err(unavailable(
            Tee::Sgx,
            "SGX enclaves are not a supported runtime; use snp, tdx, azure-snp or azure-tdx",
        ));
    }
    let detected = detect(root);
    let want = match prefer.or(detected.tee) {
        Some(t) => t,
        None => {
            return Err(AttesterError::NoTee {
                looked_for: detect::looked_for(root),
            });
        }
    };
    let has = |f: &dyn Fn(&Interface) -> bool| detected.interfaces.iter().any(f);
    match want {
        Tee::AzureSnp | Tee::AzureTdx => {
            if !has(&|i| matches!(i, Interface::Tpm { azure: Some(t), .. } if *t == want)) {
                let found = detected
                    .interfaces
                    .iter()
                    .find_map(|i| match i {
                        Interface::Tpm { azure, note, .. } => Some(match (azure, note) {
                            (Some(t), _) => format!("the vTPM holds a {t} HCL report"),
                            (None, Some(n)) => format!("no readable HCL report: {n}"),
                            (None, None) => "no readable HCL report".into(),
                        }),
                        _ => None,
                    })
                    .unwrap_or_else(|| {
                        format!("{} does not exist", root.join(vtpm::TPM_DEVICE).display())
                    });
                return Err(unavailable(want, found));
            }
            Ok(Box::new(AzureVtpmAttester::new(Vtpm::open(root)?)?))
        }
        Tee::Snp | Tee::Tdx => {
            let provider = if want == Tee::Snp {
                TsmProvider::SevGuest
            } else {
                TsmProvider::TdxGuest
            };
            if has(
                &|i| matches!(i, Interface::ConfigfsTsm { provider: Some(p), .. } if *p == provider),
            ) {
                return Ok(Box::new(ConfigfsAttester::new(
                    ConfigfsTsm::new(root),
                    want,
                )?));
            }
            if want == Tee::Snp && has(&|i| matches!(i, Interface::SevGuest { .. })) {
                return Ok(Box::new(SevGuestAttester::open(root, 0)?));
            }
            if want == Tee::Tdx && has(&|i| matches!(i, Interface::TdxGuest { .. })) {
                return Err(unavailable(
                    Tee::Tdx,
                    format!(
                        "{} gives only a TDREPORT; a quote needs configfs-tsm ({}, Linux 6.7+) or \
                         a quote service (TdxGuestAttester::open)",
                        root.join(devices::TDX_GUEST_DEVICE).display(),
                        root.join(configfs::REPORT_DIR).display()
                    ),
                ));
            }
            Err(unavailable(
                want,
                format!(
                    "no configfs-tsm entry with provider {} and no legacy device; looked for {}",
                    provider.as_str(),
                    detect::looked_for(root)
                ),
            ))
        }
        Tee::Sgx | Tee::Sim | Tee::Sample => {
            Err(unavailable(want, "not collected by auto-detection"))
        }
    }
}
