//! What TEE interfaces this machine has, under an injectable file system root.
//!
//! Looked for, relative to the root:
//! - `sys/kernel/config/tsm/report` (configfs-tsm); its provider is read from a short-lived report
//!   entry (mkdir, read `provider`, rmdir: the ABI exposes the provider only per entry);
//! - `dev/sev-guest` and `dev/tdx_guest` (legacy guest devices);
//! - `dev/tpmrm0`, and whether the Azure HCL report NV index (0x01400001) can be read from it
//!   (that TPM round trip is the only other I/O besides existence checks).
//!
//! Precedence when choosing a TEE automatically ([`Detected::tee`]):
//! 1. the Azure vTPM, when the HCL report is readable (`azure-snp` / `azure-tdx` by the report
//!    type): on an Azure CVM the VMPL-0 hardware report is owned by the paravisor, and only the HCL
//!    report chains the guest's vTPM to it, so any configfs or device report from inside the guest
//!    is not what an Azure verifier accepts;
//! 2. configfs-tsm (`snp` for provider `sev_guest`, `tdx` for `tdx_guest`): the kernel's stable,
//!    vendor-neutral interface, and for TDX the only one that returns a quote by itself;
//! 3. `/dev/sev-guest` (`snp`);
//! 4. `/dev/tdx_guest` (`tdx`, needs a quote service).
//!
//! The simulator is never detected: it is only used when asked for explicitly.

use std::path::{Path, PathBuf};

use enclava_evidence::Tee;
use enclava_evidence::azure::HclReportType;
use serde::Serialize;

use crate::configfs::{self, ConfigfsTsm, TsmProvider};
use crate::devices::{SEV_GUEST_DEVICE, TDX_GUEST_DEVICE};
use crate::vtpm::{self, TPM_DEVICE, Vtpm};

/// One interface found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Interface {
    /// configfs-tsm; `provider` is None when it could not be read (`note` says why).
    ConfigfsTsm {
        path: PathBuf,
        provider: Option<TsmProvider>,
        note: Option<String>,
    },
    SevGuest {
        path: PathBuf,
    },
    TdxGuest {
        path: PathBuf,
    },
    /// A TPM; `azure` is the HCL report's hardware type when the HCL report NV index is readable.
    Tpm {
        path: PathBuf,
        azure: Option<Tee>,
        note: Option<String>,
    },
}

/// Detection result: the TEE that would be chosen and every interface found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detected {
    pub tee: Option<Tee>,
    pub interfaces: Vec<Interface>,
}

/// Human-readable list of what detection looks for under `root` (for `NoTee` errors).
pub fn looked_for(root: &Path) -> String {
    [
        root.join(configfs::REPORT_DIR),
        root.join(SEV_GUEST_DEVICE),
        root.join(TDX_GUEST_DEVICE),
        root.join(TPM_DEVICE),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(", ")
        + " (with the Azure HCL report at TPM NV index 0x01400001)"
}

fn tee_of_hcl(t: HclReportType) -> Tee {
    match t {
        HclReportType::Snp => Tee::AzureSnp,
        HclReportType::Tdx => Tee::AzureTdx,
    }
}

/// Probe `{root}/dev/tpmrm0` for the Azure HCL report.
fn probe_tpm(root: &Path) -> (Option<Tee>, Option<String>) {
    let result = Vtpm::open(root).and_then(|mut t| {
        let report = t.hcl_report()?;
        vtpm::hcl_report_type(&report)
    });
    match result {
        Ok(t) => (Some(tee_of_hcl(t)), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Detect the TEE interfaces under `root` (normally `/`).
pub fn detect(root: &Path) -> Detected {
    let mut interfaces = Vec::new();
    let mut azure = None;
    let mut configfs_tee = None;

    let tpm_path = root.join(TPM_DEVICE);
    if tpm_path.exists() {
        let (tee, note) = probe_tpm(root);
        azure = tee;
        interfaces.push(Interface::Tpm {
            path: tpm_path,
            azure: tee,
            note,
        });
    }
    if configfs::present(root) {
        let (provider, note) = match ConfigfsTsm::new(root).probe_provider() {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        };
        configfs_tee = match provider {
            Some(TsmProvider::SevGuest) => Some(Tee::Snp),
            Some(TsmProvider::TdxGuest) => Some(Tee::Tdx),
            _ => None,
        };
        interfaces.push(Interface::ConfigfsTsm {
            path: root.join(configfs::REPORT_DIR),
            provider,
            note,
        });
    }
    let sev = root.join(SEV_GUEST_DEVICE);
    let sev_present = sev.exists();
    if sev_present {
        interfaces.push(Interface::SevGuest { path: sev });
    }
    let tdx = root.join(TDX_GUEST_DEVICE);
    let tdx_present = tdx.exists();
    if tdx_present {
        interfaces.push(Interface::TdxGuest { path: tdx });
    }
    let tee = azure
        .or(configfs_tee)
        .or(sev_present.then_some(Tee::Snp))
        .or(tdx_present.then_some(Tee::Tdx));
    Detected { tee, interfaces }
}
