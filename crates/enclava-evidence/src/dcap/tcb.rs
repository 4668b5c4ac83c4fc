//! TCB evaluation: platform TCB level matching (SGX components + PCE SVN from the PCK certificate,
//! TDX components from TEE_TCB_SVN), TDX module identities (TDX 1.5), QE identity, and the
//! convergence of the three statuses as Intel's QVL does it.

use super::DcapError;
use super::certs::PckExtension;
use super::collateral::{EnclaveIdentity, IsvTcbLevel, TcbInfo, TcbLevel};
use super::quote::{SgxReportBody, TdReportBody};

/// A TCB status as published by Intel PCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcbStatus {
    UpToDate,
    SwHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSwHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked,
    /// Computed (never in PCS JSON): a TDX 1.5 TD runs on an out-of-date module although the
    /// platform already has the latest module/TCB (TEE_TCB_SVN2): relaunching the TD fixes it.
    TdRelaunchAdvised,
    TdRelaunchAdvisedConfigurationNeeded,
}

impl TcbStatus {
    pub fn parse(s: &str) -> Result<TcbStatus, DcapError> {
        Ok(match s {
            "UpToDate" => TcbStatus::UpToDate,
            "SWHardeningNeeded" => TcbStatus::SwHardeningNeeded,
            "ConfigurationNeeded" => TcbStatus::ConfigurationNeeded,
            "ConfigurationAndSWHardeningNeeded" => TcbStatus::ConfigurationAndSwHardeningNeeded,
            "OutOfDate" => TcbStatus::OutOfDate,
            "OutOfDateConfigurationNeeded" => TcbStatus::OutOfDateConfigurationNeeded,
            "Revoked" => TcbStatus::Revoked,
            other => {
                return Err(DcapError::MalformedCollateral(format!(
                    "tcbStatus: expected UpToDate, SWHardeningNeeded, ConfigurationNeeded, \
                     ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded or Revoked, \
                     found {other:?}"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SwHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSwHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::Revoked => "Revoked",
            TcbStatus::TdRelaunchAdvised => "TDRelaunchAdvised",
            TcbStatus::TdRelaunchAdvisedConfigurationNeeded => {
                "TDRelaunchAdvisedConfigurationNeeded"
            }
        }
    }

    fn configuration_needed(self) -> bool {
        matches!(
            self,
            TcbStatus::ConfigurationNeeded
                | TcbStatus::OutOfDateConfigurationNeeded
                | TcbStatus::ConfigurationAndSwHardeningNeeded
                | TcbStatus::TdRelaunchAdvisedConfigurationNeeded
        )
    }

    /// Converge a platform status with the status of a component evaluated separately (QE identity,
    /// TDX module): an OutOfDate component makes the platform OutOfDate (keeping "configuration
    /// needed"), a Revoked component revokes; otherwise the platform status stands (QVL's
    /// `convergeTcbStatusWithQeTcbStatus` / `...WithTdxModuleTcbStatus`).
    pub fn converge(self, component: TcbStatus) -> TcbStatus {
        match component {
            TcbStatus::Revoked => TcbStatus::Revoked,
            TcbStatus::OutOfDate | TcbStatus::OutOfDateConfigurationNeeded => match self {
                TcbStatus::UpToDate | TcbStatus::SwHardeningNeeded => TcbStatus::OutOfDate,
                TcbStatus::ConfigurationNeeded | TcbStatus::ConfigurationAndSwHardeningNeeded => {
                    TcbStatus::OutOfDateConfigurationNeeded
                }
                other => other,
            },
            _ => self,
        }
    }
}

/// A matched level: status, advisories, date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub status: TcbStatus,
    pub advisory_ids: Vec<String>,
    pub tcb_date: String,
}

fn bad(msg: impl Into<String>) -> DcapError {
    DcapError::MalformedCollateral(msg.into())
}

fn hex_field(s: &str, len: usize, field: &str) -> Result<Vec<u8>, DcapError> {
    let b = hex::decode(s).map_err(|e| bad(format!("{field}: expected hex ({e})")))?;
    if b.len() != len {
        return Err(bad(format!(
            "{field}: expected {len} bytes, found {}",
            b.len()
        )));
    }
    Ok(b)
}

fn svns16(comps: &[super::collateral::TcbComponent], what: &str) -> Result<[u16; 16], DcapError> {
    if comps.len() != 16 {
        return Err(bad(format!(
            "{what}: expected 16 components, found {}",
            comps.len()
        )));
    }
    let mut out = [0u16; 16];
    for (o, c) in out.iter_mut().zip(comps) {
        *o = c.svn;
    }
    Ok(out)
}

/// Whether TDX 1.5+ module identities apply: TEE_TCB_SVN\[1\] (the module major version) > 0.
pub fn uses_module_identity(td: &TdReportBody) -> bool {
    td.tee_tcb_svn[1] > 0
}

/// The first TCB level (PCS lists them newest first) the platform is at or above: every SGX
/// component SVN and the PCE SVN from the PCK certificate, and for TDX every TEE_TCB_SVN byte
/// (from index 2 when module identities apply, as the module's own SVNs are evaluated there).
pub fn match_platform(
    info: &TcbInfo,
    pck: &PckExtension,
    td: Option<&TdReportBody>,
) -> Result<Matched, DcapError> {
    for level in &info.tcb_levels {
        if platform_level_matches(level, pck, td)? {
            return Ok(Matched {
                status: TcbStatus::parse(&level.tcb_status)?,
                advisory_ids: level.advisory_ids.clone(),
                tcb_date: level.tcb_date.clone(),
            });
        }
    }
    Err(DcapError::TcbLevelNotFound(format!(
        "platform: expected a TCB level at or below PCK SGX comp SVNs {:?} and PCE SVN {}{} in TCB info for FMSPC {}, \
         found none among {} levels",
        pck.comp_svns,
        pck.pce_svn,
        td.map(|t| format!(" and TEE_TCB_SVN {}", hex::encode(t.tee_tcb_svn)))
            .unwrap_or_default(),
        info.fmspc,
        info.tcb_levels.len()
    )))
}

/// The first TCB level matched by the SGX components and PCE SVN alone (QVL's "SGX TCB level").
pub fn match_sgx_only(info: &TcbInfo, pck: &PckExtension) -> Result<Option<TcbStatus>, DcapError> {
    for level in &info.tcb_levels {
        if platform_level_matches(level, pck, None)? {
            return TcbStatus::parse(&level.tcb_status).map(Some);
        }
    }
    Ok(None)
}

/// QVL's TD relaunch check (TDX 1.5 bodies): when the QE is fine, the SGX level is not out of date,
/// the TDX level is OutOfDate only because the running module is, and TEE_TCB_SVN2 (what a relaunch
/// would get) reaches the latest module and TDX level, the status becomes TDRelaunchAdvised
/// (ConfigurationNeeded when either status needs configuration).
pub fn relaunch_check(
    td: &TdReportBody,
    info: &TcbInfo,
    sgx: TcbStatus,
    tdx: TcbStatus,
    module: Option<TcbStatus>,
    qe: TcbStatus,
) -> Result<TcbStatus, DcapError> {
    let Some(svn2) = td.tee_tcb_svn2 else {
        return Ok(tdx);
    };
    let applies = !matches!(qe, TcbStatus::OutOfDate | TcbStatus::Revoked)
        && matches!(
            sgx,
            TcbStatus::UpToDate
                | TcbStatus::SwHardeningNeeded
                | TcbStatus::ConfigurationNeeded
                | TcbStatus::ConfigurationAndSwHardeningNeeded
        )
        && matches!(
            tdx,
            TcbStatus::OutOfDate | TcbStatus::OutOfDateConfigurationNeeded
        )
        && module == Some(TcbStatus::OutOfDate);
    if !applies {
        return Ok(tdx);
    }
    let latest = info.tcb_levels.first().ok_or_else(|| {
        DcapError::TcbLevelNotFound("TD relaunch check: expected TCB levels, found none".into())
    })?;
    let latest_tdx = svns16(
        latest
            .tcb
            .tdxtcbcomponents
            .as_deref()
            .ok_or_else(|| bad("TDX TCB level: expected tdxtcbcomponents, found none"))?,
        "tdxtcbcomponents",
    )?;
    let advised = if svn2[1] == 0 {
        u16::from(svn2[0]) >= latest_tdx[0] && u16::from(svn2[2]) >= latest_tdx[2]
    } else {
        let want = format!("TDX_{:02X}", svn2[1]);
        let ident = info
            .tdx_module_identities
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|i| i.id.eq_ignore_ascii_case(&want))
            .ok_or_else(|| DcapError::TdxModuleMismatch {
                field: "module identity id (TEE_TCB_SVN2)".into(),
                expected: want.clone(),
                found: "none".into(),
            })?;
        let latest_module = ident.tcb_levels.first().ok_or_else(|| {
            DcapError::TcbLevelNotFound(format!(
                "TDX module {}: expected TCB levels, found none",
                ident.id
            ))
        })?;
        u16::from(svn2[0]) >= latest_module.tcb.isvsvn && u16::from(svn2[2]) >= latest_tdx[2]
    };
    Ok(
        match (
            advised,
            sgx.configuration_needed() || tdx.configuration_needed(),
        ) {
            (false, _) => tdx,
            (true, true) => TcbStatus::TdRelaunchAdvisedConfigurationNeeded,
            (true, false) => TcbStatus::TdRelaunchAdvised,
        },
    )
}

fn platform_level_matches(
    level: &TcbLevel,
    pck: &PckExtension,
    td: Option<&TdReportBody>,
) -> Result<bool, DcapError> {
    let sgx = svns16(&level.tcb.sgxtcbcomponents, "sgxtcbcomponents")?;
    if pck
        .comp_svns
        .iter()
        .zip(sgx)
        .any(|(have, need)| u16::from(*have) < need)
    {
        return Ok(false);
    }
    if pck.pce_svn < level.tcb.pcesvn {
        return Ok(false);
    }
    if let Some(td) = td {
        let comps = level
            .tcb
            .tdxtcbcomponents
            .as_deref()
            .ok_or_else(|| bad("TDX TCB level: expected tdxtcbcomponents, found none"))?;
        let tdx = svns16(comps, "tdxtcbcomponents")?;
        let start = if uses_module_identity(td) { 2 } else { 0 };
        if td
            .tee_tcb_svn
            .iter()
            .zip(tdx.iter())
            .skip(start)
            .any(|(&have, &want)| u16::from(have) < want)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

fn masked_eq(a: &[u8], b: &[u8], mask: &[u8]) -> bool {
    a.len() == b.len()
        && a.len() == mask.len()
        && a.iter().zip(b).zip(mask).all(|((x, y), m)| x & m == y & m)
}

fn first_isv_level(levels: &[IsvTcbLevel], isvsvn: u16) -> Result<Option<Matched>, DcapError> {
    for l in levels {
        if isvsvn >= l.tcb.isvsvn {
            return Ok(Some(Matched {
                status: TcbStatus::parse(&l.tcb_status)?,
                advisory_ids: l.advisory_ids.clone(),
                tcb_date: l.tcb_date.clone(),
            }));
        }
    }
    Ok(None)
}

/// TDX module checks. Always: MRSIGNER_SEAM and SEAM attributes against `tdxModule`. With module
/// identities (TDX 1.5+: TEE_TCB_SVN\[1\] > 0), the identity `TDX_<major as 2 hex digits>` is looked
/// up and its TCB level (by TEE_TCB_SVN\[0\], the module SVN) gives the module status.
pub fn check_tdx_module(info: &TcbInfo, td: &TdReportBody) -> Result<Option<Matched>, DcapError> {
    let check =
        |mrsigner: &str, attributes: &str, mask: &str, which: &str| -> Result<(), DcapError> {
            let signer = hex_field(mrsigner, 48, "tdxModule.mrsigner")?;
            if signer != td.mr_signer_seam {
                return Err(DcapError::TdxModuleMismatch {
                    field: format!("{which} mrsigner"),
                    expected: hex::encode(&signer),
                    found: hex::encode(td.mr_signer_seam),
                });
            }
            let attrs = hex_field(attributes, 8, "tdxModule.attributes")?;
            let mask = hex_field(mask, 8, "tdxModule.attributesMask")?;
            if !masked_eq(&td.seam_attributes, &attrs, &mask) {
                return Err(DcapError::TdxModuleMismatch {
                    field: format!("{which} attributes (mask {})", hex::encode(&mask)),
                    expected: hex::encode(&attrs),
                    found: hex::encode(td.seam_attributes),
                });
            }
            Ok(())
        };
    if uses_module_identity(td) {
        let want = format!("TDX_{:02X}", td.tee_tcb_svn[1]);
        let Some(ids) = info.tdx_module_identities.as_deref() else {
            return Err(DcapError::TdxModuleMismatch {
                field: "tdxModuleIdentities".into(),
                expected: format!("an identity {want} (TEE_TCB_SVN[1] > 0)"),
                found: "no module identities in the TCB info".into(),
            });
        };
        let ident = ids
            .iter()
            .find(|i| i.id.eq_ignore_ascii_case(&want))
            .ok_or_else(|| DcapError::TdxModuleMismatch {
                field: "module identity id".into(),
                expected: want.clone(),
                found: ids
                    .iter()
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        check(
            &ident.mrsigner,
            &ident.attributes,
            &ident.attributes_mask,
            &ident.id,
        )?;
        let svn = u16::from(td.tee_tcb_svn[0]);
        return match first_isv_level(&ident.tcb_levels, svn)? {
            Some(m) => Ok(Some(m)),
            None => Err(DcapError::TcbLevelNotFound(format!(
                "TDX module {}: expected a TCB level at or below module SVN {svn}, found none",
                ident.id
            ))),
        };
    }
    if let Some(m) = &info.tdx_module {
        check(&m.mrsigner, &m.attributes, &m.attributes_mask, "tdxModule")?;
    }
    Ok(None)
}

/// QE identity checks: MRSIGNER, ISVPRODID, MISCSELECT and ATTRIBUTES under their masks; the QE
/// ISVSVN selects the QE TCB level.
pub fn check_qe_identity(id: &EnclaveIdentity, qe: &SgxReportBody) -> Result<Matched, DcapError> {
    let mismatch = |field: &str, expected: String, found: String| DcapError::QeIdentityMismatch {
        field: field.to_string(),
        expected,
        found,
    };
    let signer = hex_field(&id.mrsigner, 32, "enclaveIdentity.mrsigner")?;
    if signer != qe.mr_signer {
        return Err(mismatch(
            "mrsigner",
            hex::encode(&signer),
            hex::encode(qe.mr_signer),
        ));
    }
    if id.isvprodid != qe.isv_prod_id {
        return Err(mismatch(
            "isvprodid",
            id.isvprodid.to_string(),
            qe.isv_prod_id.to_string(),
        ));
    }
    let misc = hex_field(&id.miscselect, 4, "enclaveIdentity.miscselect")?;
    let misc_mask = hex_field(&id.miscselect_mask, 4, "enclaveIdentity.miscselectMask")?;
    // The JSON spells MISCSELECT as a big-endian hex number.
    let qe_misc = qe.misc_select.to_be_bytes();
    if !masked_eq(&qe_misc, &misc, &misc_mask) {
        return Err(mismatch(
            &format!("miscselect (mask {})", hex::encode(&misc_mask)),
            hex::encode(&misc),
            hex::encode(qe_misc),
        ));
    }
    let attrs = hex_field(&id.attributes, 16, "enclaveIdentity.attributes")?;
    let attrs_mask = hex_field(&id.attributes_mask, 16, "enclaveIdentity.attributesMask")?;
    if !masked_eq(&qe.attributes, &attrs, &attrs_mask) {
        return Err(mismatch(
            &format!("attributes (mask {})", hex::encode(&attrs_mask)),
            hex::encode(&attrs),
            hex::encode(qe.attributes),
        ));
    }
    first_isv_level(&id.tcb_levels, qe.isv_svn)?.ok_or_else(|| {
        DcapError::TcbLevelNotFound(format!(
            "QE identity {}: expected a TCB level at or below QE ISVSVN {}, found none",
            id.id, qe.isv_svn
        ))
    })
}

/// Append `more` to `into`, skipping duplicates, keeping order.
pub fn merge_advisories(into: &mut Vec<String>, more: &[String]) {
    for a in more {
        if !into.contains(a) {
            into.push(a.clone());
        }
    }
}
