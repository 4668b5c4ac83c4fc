//! Composite attestation: NVIDIA GPU / NVSwitch evidence next to the CPU evidence of one request.
//!
//! # Request (additive members of the MAA and native shapes)
//! * `gpuEvidence` (alias `gpu_evidence`): the JSON list NVIDIA's SDKs produce, `[{arch, nonce,
//!   evidence (base64 SPDM), certificate (base64 PEM chain), cc_mode?}, ...]`, as a JSON array or
//!   as a base64 string of that JSON. `cc_mode` (alias `ccMode`) is the attester's own, unsigned,
//!   reading of the GPU's CC mode (NVML / `nvidia-smi conf-compute -f`): it can only lower the
//!   verdict (`off`/`devtools` deny), never raise it.
//! * `gpuRims` (alias `gpu_rims`): RIMs (signed SWID tags) as base64 strings or XML text. Each
//!   device uses those whose version is its driver or (V)BIOS version; components still without a
//!   RIM are looked up by RIM id in the service's [`RimSource`] (the server's RIM directory).
//! * `gpuOcsp` (alias `gpu_ocsp`): stapled OCSP responses (base64 DER OCSPResponses, at most
//!   [`MAX_OCSP`] of at most [`MAX_OCSP_BYTES`] each) for the device and RIM chains. They join
//!   the responses of the service's collateral cache ([`RimSource::ocsp_responses`], filled by
//!   `enclava collateral fetch`); nothing is ever fetched on the request path.
//!
//! # Revocation
//! Every device is verified once, with OCSP (`nvidia::NvidiaVerifier::verify_device_with_ocsp`):
//! a response that does not verify fails the request with its `ocsp_*` check; a `revoked` answer
//! fails it with `cert_revoked` (device chain) or `rim_revoked` (a RIM's signing path), whatever
//! the policy. Otherwise the device's `revocation_checked` (every covered certificate has a
//! current verified `good` answer) and `revocation_status` (`good`, `unknown`, `stale`,
//! `not_checked`) are in the token and the policy input, so a policy can require them.
//!
//! # Caches
//! The service keeps one [`GpuVerifier`]: verified device-chain links and verified RIMs
//! (`CheckedRim`, keyed by the SHA-256 of the RIM document, at most [`RIM_CACHE_CAPACITY`]).
//! Cached RIMs skip only the signature and chain work: their validity window is checked on every
//! request, at that request's verification time.
//!
//! # Nonce binding
//! Every device's SPDM requester nonce must be bound to the runtime data, which the CPU evidence
//! binds (report_data\[0..32\] = SHA-256(runtime data) for snp/tdx/sgx/sim, the vTPM quote's
//! extraData for Azure CVMs; see [`crate::binding`]). Either:
//! 1. the nonce is SHA-256(runtime data): the same 32 bytes the CPU report carries. This is
//!    Confidential Containers' (trustee) composite flow, where one report-data value is handed to
//!    every device attester; or
//! 2. the runtime data is a JSON object whose member `gpu_nonce` is the nonce (hex): the attester
//!    states which nonce it asked its GPUs with (for GPU evidence collected by a separate tool).
//!
//! A request with GPU evidence and no runtime data, or a device whose nonce is neither, is denied
//! with the rule `gpu_nonce_binding` (path `gpus[i].nonce`).
//!
//! # CC mode
//! The signed SPDM report has no CC-mode field. What the evidence establishes: the device's
//! identity (chain to NVIDIA's root), freshness (nonce), and, with RIMs, that every measured
//! firmware and configuration value equals NVIDIA's golden values. `cc_mode` is therefore
//! derived: `on` when the measurements were compared against both RIMs (driver and VBIOS; BIOS
//! for an NVSwitch) and all matched (`measres: success`) and the attester did not state
//! otherwise; `off` / `devtools` when the attester states so (unsigned, believed only to deny);
//! `unknown` otherwise (`cc_mode_basis` says why). The built-in gate `gpu_cc_mode` denies unless
//! every device is `on`, whatever the CPU policy says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use enclava_evidence::error::FailedCheck;
use enclava_evidence::nvidia::{
    self, DeviceEvidence, NvidiaClaims, NvidiaVerifier, rim::CheckedRim,
};
use enclava_policy::FailedRule;
use enclava_token::ear::{AFFIRMING, CONTRAINDICATED, NO_CLAIM, TrustVector, WARNING};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::AttestError;
use crate::request::RequestError;

/// Most devices in one request (an HGX system: 8 GPUs and 4 NVSwitches).
pub const MAX_DEVICES: usize = 16;
/// Most RIMs in one request.
pub const MAX_RIMS: usize = 32;
/// Most stapled OCSP responses in one request (a few per device and RIM chain).
pub const MAX_OCSP: usize = 64;
/// Largest stapled OCSP response (NVIDIA's are well under 4 KiB).
pub const MAX_OCSP_BYTES: usize = 16 * 1024;
/// Most verified RIMs a [`GpuVerifier`] keeps (then it starts over).
pub const RIM_CACHE_CAPACITY: usize = 256;
/// Rule name of a device nonce that is not bound to the CPU evidence.
pub const RULE_GPU_NONCE: &str = "gpu_nonce_binding";
/// Rule name of a device not (established to be) in CC mode.
pub const RULE_GPU_CC_MODE: &str = "gpu_cc_mode";
/// Token claim: one object per device.
pub const DEVICES_CLAIM: &str = "x-enclava-gpus";
/// Token claim: the summary over all devices, for release policies.
pub const SUMMARY_CLAIM: &str = "x-enclava-gpu";

/// GPU evidence of a request, decoded (not verified).
#[derive(Debug, Clone, Default)]
pub struct GpuEvidence {
    pub devices: Vec<DeviceEvidence>,
    /// Per device: the attester's unsigned CC-mode statement, if any.
    pub stated_cc_mode: Vec<Option<String>>,
    /// RIM documents from the request (XML bytes).
    pub rims: Vec<Vec<u8>>,
    /// Stapled OCSP responses from the request (DER).
    pub ocsp: Vec<Vec<u8>>,
}

/// Where RIMs come from when a request does not carry them (the server's RIM directory).
pub trait RimSource: Send + Sync {
    /// The RIM document for `id` (e.g. `NV_GPU_DRIVER_GH100_545.00`), if known.
    fn rim(&self, id: &str) -> Option<Arc<Vec<u8>>>;

    /// Cached OCSP responses (DER) for NVIDIA device and RIM chains, e.g. the collateral cache's
    /// `nvidia/ocsp/`. Read from local storage only: never fetched on the request path.
    fn ocsp_responses(&self) -> Arc<Vec<Vec<u8>>> {
        Arc::new(Vec::new())
    }
}

fn invalid(field: &str, reason: String) -> RequestError {
    RequestError::Invalid {
        field: field.into(),
        reason,
    }
}

/// Decode `gpuEvidence` / `gpuRims` from a request object; `None` when neither is present.
pub fn decode(obj: &Map<String, Value>) -> Result<Option<GpuEvidence>, RequestError> {
    fn get<'a>(
        obj: &'a Map<String, Value>,
        names: &[&'static str],
    ) -> Option<(&'static str, &'a Value)> {
        names
            .iter()
            .find_map(|n| obj.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
    }
    let ev = get(obj, &["gpuEvidence", "gpu_evidence"]);
    let rims = get(obj, &["gpuRims", "gpu_rims"]);
    let ocsp = get(obj, &["gpuOcsp", "gpu_ocsp"]);
    let Some((field, ev)) = ev else {
        if let Some((f, _)) = rims.or(ocsp) {
            return Err(invalid(
                f,
                "GPU collateral without gpuEvidence: expected gpuEvidence as well, or no RIMs \
                 and OCSP responses"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let list: Value = match ev {
        Value::Array(_) => ev.clone(),
        Value::String(s) => {
            let bytes = crate::request::decode_b64(field, s)?;
            serde_json::from_slice(&bytes).map_err(|e| {
                invalid(
                    field,
                    format!("expected base64 of the JSON device list, found undecodable JSON: {e}"),
                )
            })?
        }
        other => {
            return Err(RequestError::WrongType {
                field: field.into(),
                expected: "the JSON list of device evidence (or its base64)",
                found: kind(other),
            });
        }
    };
    let entries = list.as_array().ok_or_else(|| {
        invalid(
            field,
            "expected a JSON list of device evidence objects".into(),
        )
    })?;
    if entries.len() > MAX_DEVICES {
        return Err(invalid(
            field,
            format!(
                "expected at most {MAX_DEVICES} devices, found {}",
                entries.len()
            ),
        ));
    }
    let stated_cc_mode = entries
        .iter()
        .map(|e| {
            e.get("cc_mode")
                .or_else(|| e.get("ccMode"))
                .and_then(Value::as_str)
                .map(|s| s.trim().to_ascii_lowercase())
        })
        .collect();
    let raw = serde_json::to_vec(&list).map_err(|e| invalid(field, e.to_string()))?;
    let devices = nvidia::parse_evidence_list(&raw).map_err(|e| invalid(field, e.to_string()))?;

    let mut rim_docs = Vec::new();
    if let Some((f, r)) = rims {
        let arr = r.as_array().ok_or_else(|| RequestError::WrongType {
            field: f.into(),
            expected: "an array of RIMs (base64 or XML text)",
            found: kind(r),
        })?;
        if arr.len() > MAX_RIMS {
            return Err(invalid(
                f,
                format!("expected at most {MAX_RIMS} RIMs, found {}", arr.len()),
            ));
        }
        for (i, x) in arr.iter().enumerate() {
            let at = format!("{f}[{i}]");
            let s = x.as_str().ok_or_else(|| RequestError::WrongType {
                field: at.clone(),
                expected: "a string (base64 or XML text)",
                found: kind(x),
            })?;
            let t = s.trim_start();
            rim_docs.push(if t.starts_with('<') {
                t.as_bytes().to_vec()
            } else {
                crate::request::decode_b64(&at, s)?
            });
        }
    }
    let mut ocsp_docs = Vec::new();
    if let Some((f, r)) = ocsp {
        let arr = r.as_array().ok_or_else(|| RequestError::WrongType {
            field: f.into(),
            expected: "an array of base64 DER OCSP responses",
            found: kind(r),
        })?;
        if arr.len() > MAX_OCSP {
            return Err(invalid(
                f,
                format!(
                    "expected at most {MAX_OCSP} OCSP responses, found {}",
                    arr.len()
                ),
            ));
        }
        for (i, x) in arr.iter().enumerate() {
            let at = format!("{f}[{i}]");
            let s = x.as_str().ok_or_else(|| RequestError::WrongType {
                field: at.clone(),
                expected: "a base64 DER OCSP response",
                found: kind(x),
            })?;
            // Checked before decoding: base64 is 4/3 of the bytes.
            if s.len() > MAX_OCSP_BYTES.div_ceil(3) * 4 + 4 {
                return Err(invalid(
                    &at,
                    format!(
                        "expected an OCSP response of at most {MAX_OCSP_BYTES} bytes, found {} \
                         base64 characters",
                        s.len()
                    ),
                ));
            }
            let der = crate::request::decode_b64(&at, s)?;
            if der.len() > MAX_OCSP_BYTES {
                return Err(invalid(
                    &at,
                    format!(
                        "expected an OCSP response of at most {MAX_OCSP_BYTES} bytes, found {}",
                        der.len()
                    ),
                ));
            }
            ocsp_docs.push(der);
        }
    }
    Ok(Some(GpuEvidence {
        devices,
        stated_cc_mode,
        rims: rim_docs,
        ocsp: ocsp_docs,
    }))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One verified device with what the service derived from it.
#[derive(Debug, Clone)]
pub struct VerifiedDevice {
    /// `gpu0`, `gpu1`, ... / `nvswitch0`, ... (EAR submodule name).
    pub name: String,
    pub claims: NvidiaClaims,
    /// `on`, `off`, `devtools` or `unknown` (see the module docs).
    pub cc_mode: String,
    pub cc_mode_basis: String,
    pub nonce_bound: bool,
}

/// The GPU nonces `runtime` data binds (lower-case hex): SHA-256(runtime data), and the
/// `gpu_nonce` member when the runtime data is a JSON object carrying one.
pub fn bound_nonces(runtime: Option<&[u8]>) -> Vec<String> {
    let Some(d) = runtime else {
        return Vec::new();
    };
    let mut out = vec![hex::encode(Sha256::digest(d))];
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(d)
        && let Some(Value::String(n)) = m.get("gpu_nonce")
    {
        out.push(n.trim().trim_start_matches("0x").to_ascii_lowercase());
    }
    out
}

fn evidence_err(device: usize, e: nvidia::NvidiaError) -> AttestError {
    AttestError::Evidence {
        failed_check: e.failed_check(),
        reason: format!("GPU evidence entry {device}: {e}"),
    }
}

/// Verify every device (chain, signature, FWID, RIMs, measurements, OCSP) as of `at`, with a
/// fresh [`GpuVerifier`] (nothing cached across calls; the service keeps one).
pub fn verify(
    gpu: &GpuEvidence,
    source: Option<&dyn RimSource>,
    at: DateTime<Utc>,
) -> Result<Vec<(NvidiaClaims, Option<String>)>, AttestError> {
    GpuVerifier::new().verify(gpu, source, at)
}

/// The service's NVIDIA verifier: verified device-chain links ([`NvidiaVerifier`]) and verified
/// RIMs ([`CheckedRim`]) kept across requests (see the module docs, "Caches").
#[derive(Debug, Default)]
pub struct GpuVerifier {
    links: NvidiaVerifier,
    rims: Mutex<HashMap<[u8; 32], Arc<CheckedRim>>>,
}

impl GpuVerifier {
    pub fn new() -> Self {
        GpuVerifier::default()
    }

    /// Number of verified RIMs currently cached.
    pub fn cached_rims(&self) -> usize {
        self.rims.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Number of verified device-chain links currently cached.
    pub fn cached_links(&self) -> usize {
        self.links.cached_links()
    }

    /// A RIM document verified (parse, chain to the pinned RIM root, XML-DSig) once: keyed by the
    /// SHA-256 of its bytes, so a different document never hits another's entry. The validity
    /// window is not cached: the verification checks it at each request's time.
    fn checked_rim(
        &self,
        doc: &[u8],
        what: &dyn Fn() -> String,
        at: DateTime<Utc>,
    ) -> Result<Arc<CheckedRim>, AttestError> {
        let key: [u8; 32] = Sha256::digest(doc).into();
        if let Some(c) = self
            .rims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let err = |e: nvidia::NvidiaError| AttestError::Evidence {
            failed_check: e.failed_check(),
            reason: format!("{}: {e}", what()),
        };
        let rim = nvidia::rim::parse(doc).map_err(err)?;
        let checked = Arc::new(CheckedRim::check(rim, at).map_err(err)?);
        let mut g = self.rims.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() >= RIM_CACHE_CAPACITY {
            g.clear();
        }
        g.insert(key, checked.clone());
        Ok(checked)
    }

    /// Verify every device once. A device that does not verify (OCSP included: an invalid
    /// response, a revoked certificate) fails the whole request with its check named
    /// ([`AttestError::Evidence`]).
    pub fn verify(
        &self,
        gpu: &GpuEvidence,
        source: Option<&dyn RimSource>,
        at: DateTime<Utc>,
    ) -> Result<Vec<(NvidiaClaims, Option<String>)>, AttestError> {
        if gpu.devices.is_empty() {
            return Err(AttestError::InvalidData {
                what: "gpuEvidence".into(),
                reason: "expected at least one device, found none".into(),
            });
        }
        let request_rims = gpu
            .rims
            .iter()
            .enumerate()
            .map(|(i, r)| self.checked_rim(r, &|| format!("gpuRims[{i}]"), at))
            .collect::<Result<Vec<_>, _>>()?;
        // Stapled responses first, then the cache's; each is used for the certificates its
        // certIDs name, the others are ignored.
        let cached = source.map(|s| s.ocsp_responses()).unwrap_or_default();
        // Copied only when the request staples some (the cache's list is shared otherwise).
        let pool: std::borrow::Cow<'_, [Vec<u8>]> = if gpu.ocsp.is_empty() {
            std::borrow::Cow::Borrowed(cached.as_slice())
        } else if cached.is_empty() {
            std::borrow::Cow::Borrowed(gpu.ocsp.as_slice())
        } else {
            gpu.ocsp.iter().chain(cached.iter()).cloned().collect()
        };
        let mut out = Vec::with_capacity(gpu.devices.len());
        for (i, dev) in gpu.devices.iter().enumerate() {
            let report = nvidia::spdm::parse(&dev.report).map_err(|e| evidence_err(i, e))?;
            let versions: Vec<String> = [report.driver_version(), report.vbios_version()]
                .into_iter()
                .flatten()
                .map(|v| v.to_ascii_uppercase())
                .collect();
            // The request's RIMs for this device: those of its driver or (V)BIOS version.
            let mut rims: Vec<Arc<CheckedRim>> = request_rims
                .iter()
                .filter(|r| versions.contains(&r.rim().version.to_ascii_uppercase()))
                .cloned()
                .collect();
            // Components without one: by RIM id from the source. The ids are read from the
            // evidence before it is verified (one verification per device); the verification
            // then checks that every RIM is this device's.
            if let Some(src) = source {
                let have: Vec<String> = rims
                    .iter()
                    .map(|r| r.rim().version.to_ascii_uppercase())
                    .collect();
                let need_driver = report
                    .driver_version()
                    .is_some_and(|d| !have.contains(&d.to_ascii_uppercase()));
                let need_vbios = report
                    .vbios_version()
                    .is_some_and(|v| !have.contains(&v.to_ascii_uppercase()));
                let ids = nvidia::rim_ids(dev).map_err(|e| evidence_err(i, e))?;
                for id in &ids {
                    let is_driver = id.starts_with("NV_GPU_DRIVER_");
                    if (is_driver && !need_driver) || (!is_driver && !need_vbios) {
                        continue;
                    }
                    if let Some(doc) = src.rim(id) {
                        rims.push(self.checked_rim(
                            &doc,
                            &|| format!("RIM {id} from the RIM directory"),
                            at,
                        )?);
                    }
                }
            }
            let refs: Vec<&CheckedRim> = rims.iter().map(|r| r.as_ref()).collect();
            let claims = self
                .links
                .verify_device_with_ocsp(dev, &refs, None, at, &pool)
                .map_err(|e| evidence_err(i, e))?;
            out.push((claims, gpu.stated_cc_mode.get(i).cloned().flatten()));
        }
        Ok(out)
    }
}

/// Derive CC mode, check the nonce binding and the CC-mode gate. Returns the devices and the
/// failed rules (empty: admitted).
pub fn appraise(
    verified: Vec<(NvidiaClaims, Option<String>)>,
    runtime: Option<&[u8]>,
) -> (Vec<VerifiedDevice>, Vec<FailedRule>) {
    let bound = bound_nonces(runtime);
    let mut failed = Vec::new();
    let (mut gpus, mut switches) = (0usize, 0usize);
    let mut devices = Vec::new();
    for (i, (claims, stated)) in verified.into_iter().enumerate() {
        let name = if claims.device == "switch" {
            switches += 1;
            format!("nvswitch{}", switches - 1)
        } else {
            gpus += 1;
            format!("gpu{}", gpus - 1)
        };
        let nonce_bound = bound.contains(&claims.nonce);
        if !nonce_bound {
            failed.push(FailedRule::new(
                RULE_GPU_NONCE,
                format!("gpus[{i}].nonce"),
                match bound.as_slice() {
                    [] => "runtime data binding the GPU nonce (none was sent)".to_string(),
                    [h] => format!("SHA-256(runtime data) = {h}"),
                    [h, g, ..] => {
                        format!("SHA-256(runtime data) = {h} or runtime data gpu_nonce {g}")
                    }
                },
                claims.nonce.clone(),
            ));
        }
        let components = if claims.device == "switch" {
            "the BIOS RIM"
        } else {
            "the driver and VBIOS RIMs"
        };
        let (cc_mode, basis) = match stated.as_deref() {
            Some(s @ ("off" | "devtools" | "dev-tools" | "false" | "0")) => (
                if s.starts_with("dev") {
                    "devtools"
                } else {
                    "off"
                }
                .to_string(),
                format!("stated {s:?} by the attester (unsigned; believed only to deny)"),
            ),
            _ if claims.measres == "success" => (
                "on".to_string(),
                format!("every measurement matched {components}"),
            ),
            _ => (
                "unknown".to_string(),
                format!(
                    "measurements {} (expected all compared against {components}); the report \
                     has no signed CC-mode field",
                    claims.measres
                ),
            ),
        };
        if cc_mode != "on" {
            failed.push(FailedRule::new(
                RULE_GPU_CC_MODE,
                format!("gpus[{i}].cc_mode"),
                format!("on (every measurement matching {components})"),
                format!("{cc_mode}: {basis}"),
            ));
        }
        devices.push(VerifiedDevice {
            name,
            claims,
            cc_mode,
            cc_mode_basis: basis,
            nonce_bound,
        });
    }
    (devices, failed)
}

/// One device's claims as the policy input and the token carry them.
pub fn device_json(d: &VerifiedDevice) -> Value {
    let mut v = serde_json::to_value(&d.claims).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("submod".into(), d.name.clone().into());
        m.insert("cc_mode".into(), d.cc_mode.clone().into());
        m.insert("cc_mode_basis".into(), d.cc_mode_basis.clone().into());
        m.insert("nonce_bound".into(), d.nonce_bound.into());
        // Revocation: flat members for policies (`revocation_checked`, `revocation_status`) and
        // the per-chain statuses; the per-certificate detail stays out of the token.
        m.insert(
            "revocation_checked".into(),
            d.claims.revocation.checked.into(),
        );
        m.insert(
            "revocation_status".into(),
            d.claims.revocation.status.clone().into(),
        );
        m.insert(
            "revocation".into(),
            json!({
                "checked": d.claims.revocation.checked,
                "status": d.claims.revocation.status,
                "chains": d.claims.revocation.chains.iter()
                    .map(|c| json!({"chain": c.chain, "status": c.status}))
                    .collect::<Vec<_>>(),
            }),
        );
        if let Some(code) = d.claims.driver_version.as_deref().and_then(version_code) {
            m.insert("driver_version_code".into(), code.into());
        }
        // Bulky detail stays out of the token; the count says how much was compared.
        m.insert(
            "measurements_compared".into(),
            d.claims.measurements.len().into(),
        );
        m.remove("measurements");
    }
    v
}

/// `major.minor[.patch]` as one comparable integer: major * 1e6 + minor * 1e3 + patch (each part
/// 0..=999), so release policies can require a minimum driver with `greaterOrEquals`
/// (`550.90.07` -> 550090007). `None` for any other shape.
pub fn version_code(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.trim().split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut code = 0u64;
    for i in 0..3 {
        let n: u64 = match parts.get(i) {
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                p.parse().ok()?
            }
            None => 0,
        };
        code = code * 1000 + n;
    }
    Some(code)
}

/// The summary claim over all devices: counts, whether every device is in CC mode, the lowest
/// driver version (and its code), the worst measurement result.
pub fn summary_json(devices: &[VerifiedDevice]) -> Value {
    let gpus: Vec<&VerifiedDevice> = devices
        .iter()
        .filter(|d| d.claims.device != "switch")
        .collect();
    let min_driver = gpus
        .iter()
        .filter_map(|d| {
            let v = d.claims.driver_version.as_deref()?;
            Some((version_code(v), v))
        })
        .min_by_key(|(c, _)| c.unwrap_or(0));
    let rank = |m: &str| match m {
        "success" => 0,
        "partial" => 1,
        _ => 2,
    };
    let measres = devices
        .iter()
        .map(|d| d.claims.measres.as_str())
        .max_by_key(|m| rank(m))
        .unwrap_or("not_compared");
    let all_on = devices.iter().all(|d| d.cc_mode == "on");
    let mut m = Map::new();
    m.insert("gpu_count".into(), gpus.len().into());
    m.insert("nvswitch_count".into(), (devices.len() - gpus.len()).into());
    m.insert(
        "cc_mode".into(),
        if all_on { "on" } else { "not_all_on" }.into(),
    );
    m.insert(
        "all_nonces_bound".into(),
        devices.iter().all(|d| d.nonce_bound).into(),
    );
    m.insert("measres".into(), measres.into());
    let all_checked = devices.iter().all(|d| d.claims.revocation.checked);
    m.insert("revocation_checked".into(), all_checked.into());
    if let Some((code, v)) = min_driver {
        m.insert("min_driver_version".into(), v.into());
        if let Some(c) = code {
            m.insert("min_driver_version_code".into(), c.into());
        }
    }
    let archs: Vec<&str> = {
        let mut a: Vec<&str> = devices.iter().map(|d| d.claims.arch.as_str()).collect();
        a.sort_unstable();
        a.dedup();
        a
    };
    m.insert("architectures".into(), json!(archs));
    Value::Object(m)
}

/// The EAR submodule of one device (AR4SI vector: identity and hardware from the verified chain
/// to NVIDIA's root; configuration and runtime-opaque from the CC mode; executables from the
/// measurement comparison).
pub fn ear_submod(d: &VerifiedDevice, policy_id: Option<&str>) -> Value {
    let cc = match d.cc_mode.as_str() {
        "on" => AFFIRMING,
        "unknown" => WARNING,
        _ => CONTRAINDICATED,
    };
    let exec = match d.claims.measres.as_str() {
        "success" => AFFIRMING,
        _ => WARNING,
    };
    let vector = TrustVector {
        instance_identity: if d.nonce_bound {
            AFFIRMING
        } else {
            CONTRAINDICATED
        },
        configuration: cc,
        executables: exec,
        file_system: NO_CLAIM,
        hardware: AFFIRMING,
        runtime_opaque: cc,
        storage_opaque: NO_CLAIM,
        sourced_data: NO_CLAIM,
    };
    let mut m = Map::new();
    m.insert("ear.status".into(), vector.status().as_str().into());
    m.insert(
        "ear.trustworthiness-vector".into(),
        serde_json::to_value(vector).unwrap_or(Value::Null),
    );
    if let Some(p) = policy_id {
        m.insert("ear.appraisal-policy-id".into(), p.into());
    }
    m.insert("x-enclava-nvidia".into(), device_json(d));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Through serde, so that fields the evidence crate adds with defaults need no change here.
    fn claims(nonce: &str, measres: &str) -> NvidiaClaims {
        serde_json::from_value(json!({
            "device": "gpu", "arch": "HOPPER", "hwmodel": "GH100 A01 GSP BROM", "ueid": "1",
            "nonce": nonce, "nonce_verified": false, "driver_version": "550.90.07",
            "fwid_checked": false, "measres": measres, "measurement_blocks": 0,
            "leaf_cert_sha256": "",
        }))
        .unwrap()
    }

    #[test]
    fn nonce_binding_forms() {
        let rd = br#"{"nonce":"challenge"}"#;
        let h = hex::encode(Sha256::digest(rd));
        // Form 1 (trustee): the GPU nonce is SHA-256(runtime data).
        let (d, failed) = appraise(vec![(claims(&h, "success"), None)], Some(rd));
        assert!(failed.is_empty(), "{failed:?}");
        assert!(d[0].nonce_bound);
        assert_eq!(d[0].cc_mode, "on");
        // Form 2: the runtime data names it.
        let rd2 = format!(r#"{{"gpu_nonce":"0x{}"}}"#, "AB".repeat(32));
        let (_, failed) = appraise(
            vec![(claims(&"ab".repeat(32), "success"), None)],
            Some(rd2.as_bytes()),
        );
        assert!(failed.is_empty(), "{failed:?}");
        // Neither: denied; no runtime data: denied.
        let (_, failed) = appraise(vec![(claims(&"cd".repeat(32), "success"), None)], Some(rd));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].rule, RULE_GPU_NONCE);
        let (_, failed) = appraise(vec![(claims(&h, "success"), None)], None);
        assert_eq!(failed[0].rule, RULE_GPU_NONCE);
        // A stated "off" is believed (it only denies); "on" does not raise "partial".
        let (_, failed) = appraise(vec![(claims(&h, "success"), Some("off".into()))], Some(rd));
        assert_eq!(failed[0].rule, RULE_GPU_CC_MODE);
        let (d, failed) = appraise(vec![(claims(&h, "partial"), Some("on".into()))], Some(rd));
        assert_eq!(failed[0].rule, RULE_GPU_CC_MODE);
        assert_eq!(d[0].cc_mode, "unknown");
    }

    fn with_revocation(mut c: NvidiaClaims, checked: bool, status: &str) -> NvidiaClaims {
        c.revocation = serde_json::from_value(json!({
            "checked": checked, "status": status,
            "chains": [{"chain": "device", "status": status, "certs": [
                {"subject": "GH100 A01 FSP BROM", "serial": "01", "status": status}]}],
        }))
        .unwrap();
        c
    }

    /// A policy requiring revocation checked, evaluated on the policy input the service builds
    /// (`gpus`: [`device_json`] of each appraised device). The pinned NVIDIA roots make a real
    /// `good` response impossible for the real vectors, so the verified claims are constructed
    /// here; the server tests (composite_ocsp.rs) show real evidence without responses is
    /// `revocation_checked: false` and refused by this policy.
    #[test]
    fn policy_can_require_revocation_checked() {
        let policy = enclava_policy::AppraisalPolicy::compile(
            "sim",
            r#"package enclava.appraisal

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "gpu_revocation", "path": sprintf("gpus[%d].revocation_checked", [i]),
    "expected": "true", "found": sprintf("%v", [g.revocation_checked])} if {
    some i, g in input.gpus
    not g.revocation_checked
}
"#,
        )
        .unwrap();
        let rd = br#"{"nonce":"x"}"#;
        let h = hex::encode(Sha256::digest(rd));
        let decide = |c: NvidiaClaims| {
            let (d, failed) = appraise(vec![(c, None)], Some(rd));
            assert!(failed.is_empty(), "{failed:?}");
            let input = json!({"claims": {"tee": "sim"},
                "gpus": d.iter().map(device_json).collect::<Vec<_>>()});
            (
                policy.evaluate(&input).unwrap(),
                summary_json(&d),
                device_json(&d[0]),
            )
        };
        // No responses (the evidence layer's default): refused, naming the device.
        let (dec, sum, dev) = decide(claims(&h, "success"));
        assert!(!dec.allowed);
        assert_eq!(dec.failed[0].rule, "gpu_revocation");
        assert_eq!(dec.failed[0].claim_path, "gpus[0].revocation_checked");
        assert_eq!(dev["revocation_checked"], false);
        assert_eq!(dev["revocation_status"], "not_checked");
        assert_eq!(sum["revocation_checked"], false);
        // A stale answer is not checked either.
        let (dec, _, dev) = decide(with_revocation(claims(&h, "success"), false, "stale"));
        assert!(!dec.allowed);
        assert_eq!(dev["revocation_status"], "stale");
        // Current good answers for every covered certificate: admitted; the token keeps the
        // per-chain status, not the per-certificate detail.
        let (dec, sum, dev) = decide(with_revocation(claims(&h, "success"), true, "good"));
        assert!(dec.allowed, "{:?}", dec.failed);
        assert_eq!(dev["revocation_checked"], true);
        assert_eq!(dev["revocation_status"], "good");
        assert_eq!(
            dev["revocation"],
            json!({"checked": true, "status": "good", "chains": [{"chain": "device", "status": "good"}]})
        );
        assert_eq!(sum["revocation_checked"], true);
    }

    fn vector(rel: &str) -> Option<Vec<u8>> {
        enclava_testvectors::read(&format!("nvidia-gpu/nvtrust/{rel}"))
    }

    fn nvtrust() -> Option<GpuEvidence> {
        let report = hex::decode(
            String::from_utf8(vector("attestationReport.txt")?)
                .unwrap()
                .trim(),
        )
        .unwrap();
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let list = json!([{"arch": "HOPPER", "evidence": b64(&report),
            "certificate": b64(&vector("gpuAkCertChain.txt")?)}]);
        let mut obj = Map::new();
        obj.insert("gpuEvidence".into(), list);
        let mut g = decode(&obj).unwrap().unwrap();
        g.rims = vec![
            vector("Driver_RIM_test_no_gpu.swidtag")?,
            vector("1010_0200_882_96005E0001_test_no_gpu.swidtag")?,
        ];
        Some(g)
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The service's verifier keeps verified RIMs and chain links across requests, gives the same
    /// claims as a fresh verification, and still checks a cached RIM's validity window at each
    /// request's time.
    #[test]
    fn verifier_caches_rims_and_links_and_still_checks_validity() {
        let Some(g) = nvtrust() else { return };
        let v = GpuVerifier::new();
        let first = v.verify(&g, None, t("2025-06-01T00:00:00Z")).unwrap();
        assert_eq!(v.cached_rims(), 2);
        assert!(v.cached_links() >= 2, "{}", v.cached_links());
        let again = v.verify(&g, None, t("2025-06-01T00:00:00Z")).unwrap();
        assert_eq!(first[0].0, again[0].0);
        assert_eq!(
            first[0].0,
            verify(&g, None, t("2025-06-01T00:00:00Z")).unwrap()[0].0
        );
        assert_eq!(first[0].0.measres, "success");
        assert!(!first[0].0.revocation.checked);
        // Past the RIM signers' window (ends 2025-06-22T09:38:54Z): the cached RIM is refused.
        let e = v.verify(&g, None, t("2025-07-01T00:00:00Z")).unwrap_err();
        assert!(
            matches!(&e, AttestError::Evidence { failed_check, .. } if *failed_check == "rim_expired"),
            "{e:?}"
        );
        assert_eq!(v.cached_rims(), 2);

        // RIMs by id from a source (one verification per device: the ids are read first).
        assert_eq!(
            nvidia::rim_ids(&g.devices[0]).unwrap(),
            [
                "NV_GPU_DRIVER_GH100_545.00",
                "NV_GPU_VBIOS_1010_0200_882_96005E0001"
            ]
        );
        struct Source(HashMap<String, Arc<Vec<u8>>>);
        impl RimSource for Source {
            fn rim(&self, id: &str) -> Option<Arc<Vec<u8>>> {
                self.0.get(id).cloned()
            }
        }
        let src = Source(HashMap::from([
            (
                "NV_GPU_DRIVER_GH100_545.00".to_string(),
                Arc::new(g.rims[0].clone()),
            ),
            (
                "NV_GPU_VBIOS_1010_0200_882_96005E0001".to_string(),
                Arc::new(g.rims[1].clone()),
            ),
        ]));
        let bare = GpuEvidence {
            rims: Vec::new(),
            ..g.clone()
        };
        let from_source = v
            .verify(&bare, Some(&src), t("2025-06-01T00:00:00Z"))
            .unwrap();
        assert_eq!(from_source[0].0, first[0].0);
        assert_eq!(v.cached_rims(), 2, "same documents, same cache entries");
    }

    /// Stapled OCSP responses are bounded in count and size and need gpuEvidence.
    #[test]
    fn gpu_ocsp_member_is_bounded() {
        let Some(_) = vector("gpuAkCertChain.txt") else {
            return;
        };
        let report = vector("attestationReport.txt").unwrap();
        let report = hex::decode(String::from_utf8(report).unwrap().trim()).unwrap();
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let list = json!([{"evidence": b64(&report),
            "certificate": b64(&vector("gpuAkCertChain.txt").unwrap())}]);
        let req = |ocsp: Value| {
            let mut o = Map::new();
            o.insert("gpuEvidence".into(), list.clone());
            o.insert("gpuOcsp".into(), ocsp);
            decode(&o)
        };
        let ok = req(json!([b64(&[0x30, 0x03, 0x0a, 0x01, 0x00])]))
            .unwrap()
            .unwrap();
        assert_eq!(ok.ocsp.len(), 1);
        let too_many = vec![json!(b64(&[0x30, 0x00])); MAX_OCSP + 1];
        let e = req(Value::Array(too_many)).unwrap_err().to_string();
        assert!(e.contains("gpuOcsp") && e.contains("at most 64"), "{e}");
        let big = b64(&vec![0u8; MAX_OCSP_BYTES + 1]);
        let e = req(json!([big])).unwrap_err().to_string();
        assert!(e.contains("gpuOcsp[0]") && e.contains("at most"), "{e}");
        let e = req(json!("notalist")).unwrap_err().to_string();
        assert!(e.contains("gpuOcsp"), "{e}");
        let e = req(json!(["not base64 !"])).unwrap_err().to_string();
        assert!(e.contains("gpuOcsp[0]"), "{e}");
        let mut o = Map::new();
        o.insert("gpu_ocsp".into(), json!([]));
        let e = decode(&o).unwrap_err().to_string();
        assert!(e.contains("gpu_ocsp") && e.contains("gpuEvidence"), "{e}");
    }

    #[test]
    fn version_codes_order_driver_versions() {
        assert_eq!(version_code("550.90.07"), Some(550_090_007));
        assert_eq!(version_code("545.00"), Some(545_000_000));
        assert!(version_code("545.00") < version_code("550.90.07"));
        assert_eq!(version_code("96.00.5E.00.01"), None);
        assert_eq!(version_code("1.2.3.4"), None);
        assert_eq!(version_code(""), None);
        assert_eq!(version_code("1000.0"), None);
    }
}
