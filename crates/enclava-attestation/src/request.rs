//! Attestation requests: the MAA request shapes and our native one, decoded into one typed
//! [`AttestRequest`]. Decoding never panics; every malformed field is a [`RequestError`] naming the
//! field (as a JSON path), what was expected and what was found.
//!
//! # MAA shapes (`POST /attest/{type}`)
//! | type | evidence field | decoded as |
//! |---|---|---|
//! | `SevSnpVm` | `report` | base64url(JSON `{"SnpReport": base64url(1184-byte report), "VcekCertChain": base64url(PEM VCEK ‖ ASK ‖ ARK), "Endorsements"?: base64url(..)}`) |
//! | `TdxVm` | `quote` | base64url(TD quote v4/v5) |
//! | `SgxEnclave` | `quote` | base64url(SGX quote v3) |
//! | `OpenEnclave` | `report` | base64url(OE report: 16-byte header {version u32 = 1, report_type u32 = 2 (remote), report_size u64} ‖ SGX quote) |
//!
//! Each may carry `runtimeData` / `initTimeData` = `{"data": base64url, "dataType": "Binary" | "JSON"}`,
//! `nonce` (a string, or a JSON number as the SKR sidecar sends it; echoed into the token) and
//! `draftPolicyForAttestation` (policy text: a dry run). `Endorsements` (UVM endorsements) is
//! decoded but not evaluated. Unknown members are ignored (MAA clients send extras).
//!
//! # Native shape (`POST /attest/native`, or any route the server picks)
//! ```json
//! {"tee": "snp|tdx|sgx|azure-snp|azure-tdx|sim",
//!  "evidence": "<base64>", "certs": "<PEM>", "crls": "<PEM>", "collateral": {dcap-qvl JSON} | "<its text>",
//!  "runtime_data": {"data": "<base64url>", "dataType": "Binary|JSON"}, "init_data": {..},
//!  "nonce": "<challenge from the service>"}
//! ```
//! `evidence` is: snp the 1184-byte report; tdx/sgx the quote; azure-snp/azure-tdx the
//! Confidential Containers `az-*-vtpm` evidence JSON (versions 0-2); sim the simulated evidence.
//! `certs` (snp, azure-snp) are added to the endorsements; `collateral` (tdx, sgx, azure-tdx) is
//! Intel PCS collateral in dcap-qvl's `QuoteCollateralV3` JSON. `runtimeData` / `initTimeData`
//! are accepted as aliases. The `nonce` of a native request is a challenge: it must have been
//! issued by the service and is consumed (see [`crate::binding`] for how it must be bound).
//!
//! Both shapes may carry GPU / NVSwitch evidence for composite attestation: `gpuEvidence` (the
//! JSON device list NVIDIA's SDKs produce), `gpuRims` and `gpuOcsp` (see [`crate::gpu`]).
//!
//! Base64 fields accept the URL-safe and the standard alphabet, with or without padding.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use enclava_evidence::Tee;
use enclava_evidence::azure::AzureEvidence;
use enclava_evidence::dcap::Collateral;
use enclava_token::maa::{AttestData, DataType};
use serde_json::{Map, Value};
use thiserror::Error;

/// Largest request body decoded, in bytes.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Longest `nonce` accepted (characters).
pub const MAX_NONCE_LEN: usize = 1024;
/// Longest draft policy accepted (bytes): the Rego source bound
/// (`enclava_policy::rego::limits::MAX_SOURCE_BYTES`), for either policy language.
pub const MAX_DRAFT_POLICY_BYTES: usize = enclava_policy::rego::limits::MAX_SOURCE_BYTES;
/// Default reference-value scope.
pub const DEFAULT_SCOPE: &str = "default";

/// The Open Enclave report header version we understand.
pub const OE_REPORT_HEADER_VERSION: u32 = 1;
/// `OE_REPORT_TYPE_SGX_REMOTE`.
pub const OE_REPORT_TYPE_SGX_REMOTE: u32 = 2;
/// `OE_REPORT_TYPE_SGX_LOCAL` (not attestable remotely).
pub const OE_REPORT_TYPE_SGX_LOCAL: u32 = 1;
const OE_HEADER_LEN: usize = 16;

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("request body is {len} bytes, expected at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("request body is not a JSON object: {reason}")]
    Json { reason: String },
    #[error("missing field {field}: expected {expected}")]
    Missing {
        field: String,
        expected: &'static str,
    },
    #[error("field {field}: expected {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field {field}: expected base64url (or base64), found undecodable text")]
    Base64 { field: String },
    #[error("field {field}: expected \"Binary\" or \"JSON\", found {found:?}")]
    DataType { field: String, found: String },
    #[error("field {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("unknown tee {found:?}: expected one of snp, tdx, sgx, azure-snp, azure-tdx, sim")]
    UnknownTee { found: String },
    #[error(
        "unknown attestation type {found:?}: expected one of SgxEnclave, OpenEnclave, SevSnpVm, TdxVm"
    )]
    UnknownAttestationType { found: String },
    #[error("unsupported Open Enclave report: {reason}")]
    UnsupportedOpenEnclave { reason: String },
}

impl RequestError {
    /// Stable code (snake case).
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::TooLarge { .. } => "request_too_large",
            RequestError::Json { .. } => "malformed_request",
            RequestError::Missing { .. } => "missing_field",
            RequestError::WrongType { .. } => "invalid_field_type",
            RequestError::Base64 { .. } => "invalid_base64",
            RequestError::DataType { .. } => "invalid_data_type",
            RequestError::Invalid { .. } => "invalid_field",
            RequestError::UnknownTee { .. } => "unknown_tee",
            RequestError::UnknownAttestationType { .. } => "unknown_attestation_type",
            RequestError::UnsupportedOpenEnclave { .. } => "unsupported_open_enclave_report",
        }
    }
}

/// The MAA attestation types with a request shape here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaaType {
    SgxEnclave,
    OpenEnclave,
    SevSnpVm,
    TdxVm,
}

impl MaaType {
    pub const ALL: [MaaType; 4] = [
        MaaType::SgxEnclave,
        MaaType::OpenEnclave,
        MaaType::SevSnpVm,
        MaaType::TdxVm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MaaType::SgxEnclave => "SgxEnclave",
            MaaType::OpenEnclave => "OpenEnclave",
            MaaType::SevSnpVm => "SevSnpVm",
            MaaType::TdxVm => "TdxVm",
        }
    }

    /// Case-insensitive.
    pub fn from_name(s: &str) -> Result<MaaType, RequestError> {
        MaaType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| RequestError::UnknownAttestationType { found: shorten(s) })
    }

    /// The TEE whose evidence this type carries (OpenEnclave: SGX).
    pub fn tee(self) -> Tee {
        match self {
            MaaType::SgxEnclave | MaaType::OpenEnclave => Tee::Sgx,
            MaaType::SevSnpVm => Tee::Snp,
            MaaType::TdxVm => Tee::Tdx,
        }
    }
}

/// Which API the request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Maa(MaaType),
    Native,
}

/// Evidence and its endorsements, per TEE.
#[derive(Debug, Clone)]
pub enum Evidence {
    Snp {
        report: Vec<u8>,
        certs_der: Vec<Vec<u8>>,
        crls_der: Vec<Vec<u8>>,
        /// MAA `Endorsements` (UVM endorsements), decoded, not evaluated.
        uvm_endorsements: Option<Vec<u8>>,
    },
    Tdx {
        quote: Vec<u8>,
        collateral: Option<Box<Collateral>>,
    },
    Sgx {
        quote: Vec<u8>,
        collateral: Option<Box<Collateral>>,
    },
    AzureSnp {
        evidence: Box<AzureEvidence>,
        certs_der: Vec<Vec<u8>>,
        crls_der: Vec<Vec<u8>>,
    },
    AzureTdx {
        evidence: Box<AzureEvidence>,
        collateral: Option<Box<Collateral>>,
    },
    Sim {
        evidence: Vec<u8>,
    },
    /// Confidential Containers' `sample` evidence (JSON), see [`enclava_evidence::sample`].
    Sample {
        evidence: Vec<u8>,
    },
}

impl Evidence {
    pub fn tee(&self) -> Tee {
        match self {
            Evidence::Snp { .. } => Tee::Snp,
            Evidence::Tdx { .. } => Tee::Tdx,
            Evidence::Sgx { .. } => Tee::Sgx,
            Evidence::AzureSnp { .. } => Tee::AzureSnp,
            Evidence::AzureTdx { .. } => Tee::AzureTdx,
            Evidence::Sim { .. } => Tee::Sim,
            Evidence::Sample { .. } => Tee::Sample,
        }
    }
}

/// A decoded attestation request.
#[derive(Debug, Clone)]
pub struct AttestRequest {
    pub route: Route,
    pub evidence: Evidence,
    pub runtime_data: Option<AttestData>,
    pub init_time_data: Option<AttestData>,
    /// MAA `nonce`: echoed into the token's `nonce` claim, not checked.
    pub nonce: Option<String>,
    /// Native `nonce`: a challenge issued by the service, consumed once and bound (see
    /// [`crate::binding`]); echoed into the token's `nonce` claim.
    pub challenge: Option<String>,
    /// `draftPolicyForAttestation`: evaluate this policy instead and return no usable token.
    pub draft_policy: Option<String>,
    /// Which reference-value scope (tenant / workload) feeds the policy (default `"default"`);
    /// set by the server (e.g. from the caller's tenant), never read from the body.
    pub scope: String,
    /// `gpuEvidence` / `gpuRims` / `gpuOcsp`: GPU and NVSwitch evidence attested with the CPU
    /// evidence (composite attestation, see [`crate::gpu`]).
    pub gpu: Option<crate::gpu::GpuEvidence>,
}

impl AttestRequest {
    pub fn tee(&self) -> Tee {
        self.evidence.tee()
    }

    /// A request for `evidence` with nothing else set (native route).
    pub fn new(evidence: Evidence) -> AttestRequest {
        AttestRequest {
            route: Route::Native,
            evidence,
            runtime_data: None,
            init_time_data: None,
            nonce: None,
            challenge: None,
            draft_policy: None,
            scope: DEFAULT_SCOPE.to_string(),
            gpu: None,
        }
    }

    /// Decode an MAA request body for `/attest/{maa_type}`.
    pub fn from_maa_json(maa_type: MaaType, body: &[u8]) -> Result<AttestRequest, RequestError> {
        let obj = parse_object(body)?;
        let evidence = match maa_type {
            MaaType::SevSnpVm => {
                let report = b64_field(&obj, "report")?;
                decode_snp_report_json(&report)?
            }
            MaaType::TdxVm => Evidence::Tdx {
                quote: b64_field(&obj, "quote")?,
                collateral: None,
            },
            MaaType::SgxEnclave => Evidence::Sgx {
                quote: b64_field(&obj, "quote")?,
                collateral: None,
            },
            MaaType::OpenEnclave => Evidence::Sgx {
                quote: open_enclave_quote(&b64_field(&obj, "report")?)?,
                collateral: None,
            },
        };
        let draft_policy = match opt(&obj, "draftPolicyForAttestation") {
            None => None,
            Some(Value::String(s)) if s.len() <= MAX_DRAFT_POLICY_BYTES => Some(s.clone()),
            Some(Value::String(s)) => {
                return Err(RequestError::Invalid {
                    field: "draftPolicyForAttestation".into(),
                    reason: format!(
                        "expected at most {MAX_DRAFT_POLICY_BYTES} bytes, found {}",
                        s.len()
                    ),
                });
            }
            Some(other) => return Err(wrong("draftPolicyForAttestation", "a string", other)),
        };
        Ok(AttestRequest {
            route: Route::Maa(maa_type),
            evidence,
            runtime_data: attest_data(&obj, &["runtimeData"])?,
            init_time_data: attest_data(&obj, &["initTimeData"])?,
            nonce: nonce_field(&obj)?,
            challenge: None,
            draft_policy,
            scope: DEFAULT_SCOPE.to_string(),
            gpu: crate::gpu::decode(&obj)?,
        })
    }

    /// Decode a native request body.
    pub fn from_native_json(body: &[u8]) -> Result<AttestRequest, RequestError> {
        let obj = parse_object(body)?;
        let tee_name = match obj.get("tee") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(wrong("tee", "a string", other)),
            None => {
                return Err(RequestError::Missing {
                    field: "tee".into(),
                    expected: "one of snp, tdx, sgx, azure-snp, azure-tdx, sim",
                });
            }
        };
        let tee: Tee = tee_name.parse().map_err(|_| RequestError::UnknownTee {
            found: shorten(tee_name),
        })?;
        let raw = b64_field(&obj, "evidence")?;
        let certs = pem_field(&obj, "certs", false)?;
        let crls = pem_field(&obj, "crls", true)?;
        let collateral = collateral_field(&obj)?;
        let no = |field: &str, present: bool| -> Result<(), RequestError> {
            if present {
                return Err(RequestError::Invalid {
                    field: field.into(),
                    reason: format!("not used for tee {tee}: expected it absent"),
                });
            }
            Ok(())
        };
        let evidence = match tee {
            Tee::Snp => {
                no("collateral", collateral.is_some())?;
                Evidence::Snp {
                    report: raw,
                    certs_der: certs.unwrap_or_default(),
                    crls_der: crls.unwrap_or_default(),
                    uvm_endorsements: None,
                }
            }
            Tee::Tdx | Tee::Sgx => {
                no("certs", certs.is_some())?;
                no("crls", crls.is_some())?;
                let collateral = collateral.map(Box::new);
                if tee == Tee::Tdx {
                    Evidence::Tdx {
                        quote: raw,
                        collateral,
                    }
                } else {
                    Evidence::Sgx {
                        quote: raw,
                        collateral,
                    }
                }
            }
            Tee::AzureSnp => {
                no("collateral", collateral.is_some())?;
                Evidence::AzureSnp {
                    evidence: Box::new(azure_evidence(&raw)?),
                    certs_der: certs.unwrap_or_default(),
                    crls_der: crls.unwrap_or_default(),
                }
            }
            Tee::AzureTdx => {
                no("certs", certs.is_some())?;
                no("crls", crls.is_some())?;
                Evidence::AzureTdx {
                    evidence: Box::new(azure_evidence(&raw)?),
                    collateral: collateral.map(Box::new),
                }
            }
            Tee::Sim => {
                no("certs", certs.is_some())?;
                no("crls", crls.is_some())?;
                no("collateral", collateral.is_some())?;
                Evidence::Sim { evidence: raw }
            }
            Tee::Sample => {
                no("certs", certs.is_some())?;
                no("crls", crls.is_some())?;
                no("collateral", collateral.is_some())?;
                Evidence::Sample { evidence: raw }
            }
        };
        let challenge = nonce_field(&obj)?;
        Ok(AttestRequest {
            route: Route::Native,
            evidence,
            runtime_data: attest_data(&obj, &["runtime_data", "runtimeData"])?,
            init_time_data: attest_data(&obj, &["init_data", "initTimeData"])?,
            nonce: None,
            challenge,
            draft_policy: None,
            scope: DEFAULT_SCOPE.to_string(),
            gpu: crate::gpu::decode(&obj)?,
        })
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if s.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
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

fn wrong(field: &str, expected: &'static str, found: &Value) -> RequestError {
    RequestError::WrongType {
        field: field.into(),
        expected,
        found: kind(found),
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge {
            len: body.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| RequestError::Json {
        reason: e.to_string(),
    })?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(RequestError::Json {
            reason: format!("expected a JSON object, found {}", kind(&other)),
        }),
    }
}

/// A member that is present and not null.
fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Decode base64url / base64, padded or not.
pub fn decode_b64(field: &str, s: &str) -> Result<Vec<u8>, RequestError> {
    let t = s.trim();
    URL_SAFE_NO_PAD
        .decode(t)
        .or_else(|_| URL_SAFE.decode(t))
        .or_else(|_| STANDARD.decode(t))
        .or_else(|_| STANDARD_NO_PAD.decode(t))
        .map_err(|_| RequestError::Base64 {
            field: field.into(),
        })
}

fn b64_value(field: &str, v: &Value) -> Result<Vec<u8>, RequestError> {
    match v {
        Value::String(s) => decode_b64(field, s),
        other => Err(wrong(field, "a base64url string", other)),
    }
}

fn b64_field(obj: &Map<String, Value>, key: &str) -> Result<Vec<u8>, RequestError> {
    let v = opt(obj, key).ok_or_else(|| RequestError::Missing {
        field: key.into(),
        expected: "a base64url string",
    })?;
    let bytes = b64_value(key, v)?;
    if bytes.is_empty() {
        return Err(RequestError::Invalid {
            field: key.into(),
            reason: "expected evidence bytes, found an empty value".into(),
        });
    }
    Ok(bytes)
}

fn attest_data(
    obj: &Map<String, Value>,
    keys: &[&str],
) -> Result<Option<AttestData>, RequestError> {
    let Some((key, v)) = keys.iter().find_map(|k| opt(obj, k).map(|v| (*k, v))) else {
        return Ok(None);
    };
    let Value::Object(m) = v else {
        return Err(wrong(key, "an object {data, dataType}", v));
    };
    let data_field = format!("{key}.data");
    let data = match opt(m, "data") {
        Some(d) => b64_value(&data_field, d)?,
        None => {
            return Err(RequestError::Missing {
                field: data_field,
                expected: "a base64url string",
            });
        }
    };
    let dt_field = format!("{key}.dataType");
    let data_type = match opt(m, "dataType") {
        // MAA treats a missing dataType as binary.
        None => DataType::Binary,
        Some(Value::String(s)) => DataType::parse(s).map_err(|_| RequestError::DataType {
            field: dt_field,
            found: shorten(s),
        })?,
        Some(other) => return Err(wrong(&dt_field, "\"Binary\" or \"JSON\"", other)),
    };
    Ok(Some(AttestData { data, data_type }))
}

fn nonce_field(obj: &Map<String, Value>) -> Result<Option<String>, RequestError> {
    let s = match opt(obj, "nonce") {
        None => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        // The SKR sidecar sends a JSON number: keep its decimal text.
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(wrong("nonce", "a string or a number", other)),
    };
    if s.chars().count() > MAX_NONCE_LEN {
        return Err(RequestError::Invalid {
            field: "nonce".into(),
            reason: format!(
                "expected at most {MAX_NONCE_LEN} characters, found {}",
                s.chars().count()
            ),
        });
    }
    Ok(Some(s))
}

/// DER certificates (or CRLs) from a PEM text field.
fn pem_field(
    obj: &Map<String, Value>,
    key: &str,
    crls: bool,
) -> Result<Option<Vec<Vec<u8>>>, RequestError> {
    let Some(v) = opt(obj, key) else {
        return Ok(None);
    };
    let Value::String(s) = v else {
        return Err(wrong(key, "a PEM string", v));
    };
    let parsed = if crls {
        enclava_evidence::snp::crls_from_pem_or_der(s.as_bytes())
    } else {
        enclava_evidence::snp::cert_blocks_from_pem_or_der(s.as_bytes())
    };
    let der = parsed.map_err(|e| RequestError::Invalid {
        field: key.into(),
        reason: format!(
            "expected PEM {}: {e}",
            if crls { "CRLs" } else { "certificates" }
        ),
    })?;
    if der.is_empty() {
        return Err(RequestError::Invalid {
            field: key.into(),
            reason: "expected at least one PEM block, found none".into(),
        });
    }
    Ok(Some(der))
}

fn collateral_field(obj: &Map<String, Value>) -> Result<Option<Collateral>, RequestError> {
    let Some(v) = opt(obj, "collateral") else {
        return Ok(None);
    };
    let text = match v {
        Value::Object(_) => v.to_string(),
        Value::String(s) => s.clone(),
        other => {
            return Err(wrong(
                "collateral",
                "a dcap-qvl collateral object (or its JSON text)",
                other,
            ));
        }
    };
    Collateral::from_dcap_qvl_json(text.as_bytes())
        .map(Some)
        .map_err(|e| RequestError::Invalid {
            field: "collateral".into(),
            reason: e.to_string(),
        })
}

fn azure_evidence(raw: &[u8]) -> Result<AzureEvidence, RequestError> {
    AzureEvidence::from_coco_json(raw).map_err(|e| RequestError::Invalid {
        field: "evidence".into(),
        reason: format!("expected Azure vTPM evidence JSON: {e}"),
    })
}

/// The JSON inside a SevSnpVm `report`.
fn decode_snp_report_json(bytes: &[u8]) -> Result<Evidence, RequestError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| RequestError::Invalid {
        field: "report".into(),
        reason: format!(
            "expected base64url of a JSON object {{SnpReport, VcekCertChain}}, found non-JSON ({e})"
        ),
    })?;
    let Value::Object(m) = v else {
        return Err(RequestError::Invalid {
            field: "report".into(),
            reason: format!(
                "expected a JSON object {{SnpReport, VcekCertChain}}, found {}",
                kind(&v)
            ),
        });
    };
    let report = match opt(&m, "SnpReport") {
        Some(v) => b64_value("report.SnpReport", v)?,
        None => {
            return Err(RequestError::Missing {
                field: "report.SnpReport".into(),
                expected: "base64url of the 1184-byte SEV-SNP report",
            });
        }
    };
    if report.len() != enclava_evidence::snp::report::REPORT_LEN {
        return Err(RequestError::Invalid {
            field: "report.SnpReport".into(),
            reason: format!(
                "expected {} bytes, found {}",
                enclava_evidence::snp::report::REPORT_LEN,
                report.len()
            ),
        });
    }
    let certs_der = match opt(&m, "VcekCertChain") {
        Some(v) => {
            let pem = b64_value("report.VcekCertChain", v)?;
            let der = enclava_evidence::snp::cert_blocks_from_pem_or_der(&pem).map_err(|e| {
                RequestError::Invalid {
                    field: "report.VcekCertChain".into(),
                    reason: format!("expected PEM VCEK || ASK || ARK: {e}"),
                }
            })?;
            if der.is_empty() {
                return Err(RequestError::Invalid {
                    field: "report.VcekCertChain".into(),
                    reason: "expected PEM certificates, found none".into(),
                });
            }
            der
        }
        None => {
            return Err(RequestError::Missing {
                field: "report.VcekCertChain".into(),
                expected: "base64url of PEM VCEK || ASK || ARK",
            });
        }
    };
    let uvm_endorsements = match opt(&m, "Endorsements") {
        Some(v) => Some(b64_value("report.Endorsements", v)?),
        None => None,
    };
    Ok(Evidence::Snp {
        report,
        certs_der,
        crls_der: Vec::new(),
        uvm_endorsements,
    })
}

/// The SGX quote inside an Open Enclave report (legacy `oe_report_header_t`: version u32 = 1,
/// report_type u32 = 2 (remote), report_size u64, then exactly report_size bytes of quote; all
/// little endian). Anything else is [`RequestError::UnsupportedOpenEnclave`] (including OE's newer
/// format-UUID evidence, which we do not parse).
pub fn open_enclave_quote(report: &[u8]) -> Result<Vec<u8>, RequestError> {
    let unsupported = |reason: String| RequestError::UnsupportedOpenEnclave { reason };
    let header = report.get(..OE_HEADER_LEN).ok_or_else(|| {
        unsupported(format!(
            "expected at least a {OE_HEADER_LEN}-byte oe_report_header, found {} bytes",
            report.len()
        ))
    })?;
    let u32_at = |o: usize| -> u32 {
        let mut b = [0u8; 4];
        if let Some(s) = header.get(o..o + 4) {
            b.copy_from_slice(s);
        }
        u32::from_le_bytes(b)
    };
    let version = u32_at(0);
    if version != OE_REPORT_HEADER_VERSION {
        return Err(unsupported(format!(
            "expected header version {OE_REPORT_HEADER_VERSION}, found {version}"
        )));
    }
    let report_type = u32_at(4);
    if report_type != OE_REPORT_TYPE_SGX_REMOTE {
        return Err(unsupported(format!(
            "expected report_type {OE_REPORT_TYPE_SGX_REMOTE} (SGX remote), found {report_type}{}",
            if report_type == OE_REPORT_TYPE_SGX_LOCAL {
                " (SGX local: not remotely attestable)"
            } else {
                ""
            }
        )));
    }
    let mut sz = [0u8; 8];
    if let Some(s) = header.get(8..16) {
        sz.copy_from_slice(s);
    }
    let size = u64::from_le_bytes(sz);
    let body = report.get(OE_HEADER_LEN..).unwrap_or_default();
    if u64::try_from(body.len()).ok() != Some(size) {
        return Err(unsupported(format!(
            "expected report_size {size} to equal the {} bytes following the header",
            body.len()
        )));
    }
    if body.is_empty() {
        return Err(unsupported("expected an SGX quote, found 0 bytes".into()));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn b64u(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn oe(version: u32, ty: u32, quote: &[u8]) -> Vec<u8> {
        let mut v = version.to_le_bytes().to_vec();
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&(quote.len() as u64).to_le_bytes());
        v.extend_from_slice(quote);
        v
    }

    #[test]
    fn maa_sgx_with_runtime_data_and_numeric_nonce() {
        let body = json!({
            "quote": b64u(b"QUOTE"),
            "runtimeData": {"data": b64u(br#"{"a":1}"#), "dataType": "JSON"},
            "initTimeData": {"data": STANDARD.encode(b"init"), "dataType": "binary"},
            "nonce": 1234567890,
            "draftPolicyForAttestation": "version=1.0; authorizationrules { => permit(); };",
            "unknownExtra": true
        });
        let r =
            AttestRequest::from_maa_json(MaaType::SgxEnclave, body.to_string().as_bytes()).unwrap();
        assert_eq!(r.route, Route::Maa(MaaType::SgxEnclave));
        assert!(
            matches!(&r.evidence, Evidence::Sgx { quote, collateral: None } if quote == b"QUOTE")
        );
        let rt = r.runtime_data.unwrap();
        assert_eq!(rt.data, br#"{"a":1}"#);
        assert_eq!(rt.data_type, DataType::Json);
        let it = r.init_time_data.unwrap();
        assert_eq!(
            (it.data.as_slice(), it.data_type),
            (&b"init"[..], DataType::Binary)
        );
        assert_eq!(r.nonce.as_deref(), Some("1234567890"));
        assert!(r.challenge.is_none());
        assert!(r.draft_policy.unwrap().starts_with("version=1.0"));
        assert_eq!(r.scope, DEFAULT_SCOPE);
    }

    #[test]
    fn maa_errors_name_the_field() {
        let cases: Vec<(MaaType, Value, &str, &str)> = vec![
            (MaaType::TdxVm, json!({}), "missing_field", "quote"),
            (
                MaaType::TdxVm,
                json!({"quote": 5}),
                "invalid_field_type",
                "quote",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": "!!!"}),
                "invalid_base64",
                "quote",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": ""}),
                "invalid_field",
                "quote",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": "AAAA", "nonce": [1]}),
                "invalid_field_type",
                "nonce",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": "AAAA", "runtimeData": "x"}),
                "invalid_field_type",
                "runtimeData",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": "AAAA", "runtimeData": {}}),
                "missing_field",
                "runtimeData.data",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": "AAAA", "runtimeData": {"data": "AA", "dataType": "XML"}}),
                "invalid_data_type",
                "runtimeData.dataType",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": "AAAA", "initTimeData": {"data": "*"}}),
                "invalid_base64",
                "initTimeData.data",
            ),
            (
                MaaType::TdxVm,
                json!({"quote": "AAAA", "draftPolicyForAttestation": 1}),
                "invalid_field_type",
                "draftPolicyForAttestation",
            ),
            (
                MaaType::SevSnpVm,
                json!({"report": b64u(b"not json")}),
                "invalid_field",
                "report",
            ),
            (
                MaaType::SevSnpVm,
                json!({"report": b64u(b"[1]")}),
                "invalid_field",
                "report",
            ),
            (
                MaaType::SevSnpVm,
                json!({"report": b64u(br#"{"VcekCertChain":"AA"}"#)}),
                "missing_field",
                "report.SnpReport",
            ),
            (
                MaaType::SevSnpVm,
                json!({"report": b64u(json!({"SnpReport": b64u(&[0u8; 10])}).to_string().as_bytes())}),
                "invalid_field",
                "report.SnpReport",
            ),
            (
                MaaType::SevSnpVm,
                json!({"report": b64u(json!({"SnpReport": b64u(&[0u8; 1184])}).to_string().as_bytes())}),
                "missing_field",
                "report.VcekCertChain",
            ),
            (
                MaaType::SevSnpVm,
                json!({"report": b64u(json!({"SnpReport": b64u(&[0u8; 1184]), "VcekCertChain": b64u(b"no pem")}).to_string().as_bytes())}),
                "invalid_field",
                "report.VcekCertChain",
            ),
            (
                MaaType::OpenEnclave,
                json!({"report": b64u(&[1, 2, 3])}),
                "unsupported_open_enclave_report",
                "oe_report_header",
            ),
        ];
        for (ty, body, code, field) in cases {
            let e = AttestRequest::from_maa_json(ty, body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.code(), code, "{body}: {e}");
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
        let e = AttestRequest::from_maa_json(MaaType::TdxVm, b"[]").unwrap_err();
        assert_eq!(e.code(), "malformed_request");
        assert!(e.to_string().contains("found an array"), "{e}");
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(
            AttestRequest::from_maa_json(MaaType::TdxVm, &big)
                .unwrap_err()
                .code(),
            "request_too_large"
        );
        let long_nonce = json!({"quote": "AAAA", "nonce": "n".repeat(MAX_NONCE_LEN + 1)});
        assert_eq!(
            AttestRequest::from_maa_json(MaaType::TdxVm, long_nonce.to_string().as_bytes())
                .unwrap_err()
                .code(),
            "invalid_field"
        );
    }

    #[test]
    fn maa_type_names() {
        assert_eq!(MaaType::from_name("sevsnpvm").unwrap(), MaaType::SevSnpVm);
        assert_eq!(MaaType::from_name("TdxVm").unwrap().tee(), Tee::Tdx);
        assert_eq!(MaaType::OpenEnclave.tee(), Tee::Sgx);
        assert_eq!(
            MaaType::from_name("AzureGuest").unwrap_err().code(),
            "unknown_attestation_type"
        );
    }

    #[test]
    fn open_enclave_header() {
        assert_eq!(open_enclave_quote(&oe(1, 2, b"quote")).unwrap(), b"quote");
        for (bytes, needle) in [
            (oe(2, 2, b"q"), "version 1, found 2"),
            (oe(1, 1, b"q"), "SGX local"),
            (oe(1, 7, b"q"), "found 7"),
            (oe(1, 2, b""), "found 0 bytes"),
            (vec![1, 0, 0, 0], "found 4 bytes"),
        ] {
            let e = open_enclave_quote(&bytes).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let mut bad_size = oe(1, 2, b"quote");
        bad_size.push(0);
        assert!(
            open_enclave_quote(&bad_size)
                .unwrap_err()
                .to_string()
                .contains("report_size 5")
        );
        let body = json!({"report": b64u(&oe(1, 2, b"QQ"))});
        let r = AttestRequest::from_maa_json(MaaType::OpenEnclave, body.to_string().as_bytes())
            .unwrap();
        assert!(matches!(&r.evidence, Evidence::Sgx { quote, .. } if quote == b"QQ"));
    }

    #[test]
    fn native_shapes() {
        let body = json!({"tee": "sim", "evidence": STANDARD.encode(b"SIM"), "nonce": "abc",
            "runtime_data": {"data": b64u(b"{}"), "dataType": "JSON"}});
        let r = AttestRequest::from_native_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.tee(), Tee::Sim);
        assert_eq!(r.route, Route::Native);
        assert_eq!(r.challenge.as_deref(), Some("abc"));
        assert!(r.nonce.is_none());
        assert!(r.runtime_data.is_some());

        let r = AttestRequest::from_native_json(
            json!({"tee": "tdx", "evidence": "AAAA", "initTimeData": {"data": "AAAA"}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.tee(), Tee::Tdx);
        assert_eq!(r.init_time_data.unwrap().data, vec![0, 0, 0]);

        for (body, code, needle) in [
            (json!({"evidence": "AAAA"}), "missing_field", "tee"),
            (
                json!({"tee": 1, "evidence": "AAAA"}),
                "invalid_field_type",
                "tee",
            ),
            (
                json!({"tee": "nitro", "evidence": "AAAA"}),
                "unknown_tee",
                "nitro",
            ),
            (json!({"tee": "snp"}), "missing_field", "evidence"),
            (
                json!({"tee": "sim", "evidence": "AAAA", "certs": "x"}),
                "invalid_field",
                "certs",
            ),
            (
                json!({"tee": "snp", "evidence": "AAAA", "certs": "not pem"}),
                "invalid_field",
                "certs",
            ),
            (
                json!({"tee": "snp", "evidence": "AAAA", "certs": 3}),
                "invalid_field_type",
                "certs",
            ),
            (
                json!({"tee": "tdx", "evidence": "AAAA", "collateral": 3}),
                "invalid_field_type",
                "collateral",
            ),
            (
                json!({"tee": "tdx", "evidence": "AAAA", "collateral": "{nope"}),
                "invalid_field",
                "collateral",
            ),
            (
                json!({"tee": "snp", "evidence": "AAAA", "collateral": {}}),
                "invalid_field",
                "collateral",
            ),
            (
                json!({"tee": "azure-snp", "evidence": "AAAA"}),
                "invalid_field",
                "evidence",
            ),
            (
                json!({"tee": "azure-tdx", "evidence": b64u(b"{}")}),
                "invalid_field",
                "evidence",
            ),
        ] {
            let e = AttestRequest::from_native_json(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.code(), code, "{body}: {e}");
            assert!(e.to_string().contains(needle), "{body}: {e}");
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for t in MaaType::ALL {
                let _ = AttestRequest::from_maa_json(t, &bytes);
            }
            let _ = AttestRequest::from_native_json(&bytes);
            let _ = open_enclave_quote(&bytes);
        }

        #[test]
        fn json_fields_of_any_shape_never_panic(
            key in prop::sample::select(vec!["quote", "report", "runtimeData", "initTimeData", "nonce",
                "draftPolicyForAttestation", "tee", "evidence", "certs", "crls", "collateral", "runtime_data"]),
            val in prop_oneof![
                Just(json!(null)), any::<bool>().prop_map(|b| json!(b)), any::<i64>().prop_map(|n| json!(n)),
                ".{0,40}".prop_map(|s| json!(s)), Just(json!({"data": "AA", "dataType": 1})), Just(json!([1, "x"])),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| json!(URL_SAFE_NO_PAD.encode(b))),
            ],
        ) {
            let body = json!({"quote": "AAAA", "report": "AAAA", "tee": "sim", "evidence": "AAAA", key: val});
            for t in MaaType::ALL {
                let _ = AttestRequest::from_maa_json(t, body.to_string().as_bytes());
            }
            let _ = AttestRequest::from_native_json(body.to_string().as_bytes());
        }

        #[test]
        fn runtime_data_round_trips(data in proptest::collection::vec(any::<u8>(), 0..200), json_type in any::<bool>(), pad in any::<bool>()) {
            let enc = if pad { URL_SAFE.encode(&data) } else { URL_SAFE_NO_PAD.encode(&data) };
            let dt = if json_type { "JSON" } else { "Binary" };
            let body = json!({"quote": "AAAA", "runtimeData": {"data": enc, "dataType": dt}, "nonce": "n"});
            let r = AttestRequest::from_maa_json(MaaType::TdxVm, body.to_string().as_bytes()).unwrap();
            let rt = r.runtime_data.unwrap();
            prop_assert_eq!(rt.data, data);
            prop_assert_eq!(rt.data_type, if json_type { DataType::Json } else { DataType::Binary });
        }

        #[test]
        fn open_enclave_round_trips(quote in proptest::collection::vec(any::<u8>(), 1..300)) {
            prop_assert_eq!(open_enclave_quote(&oe(1, 2, &quote)).unwrap(), quote);
        }
    }
}
