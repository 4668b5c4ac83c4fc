//! IETF RATS EAR (EAT Attestation Results, draft-fv-rats-ear) with the AR4SI trustworthiness
//! vector (draft-ietf-rats-ar4si).
//!
//! Claims set: `eat_profile` [`EAR_PROFILE`], `iat`, `ear.verifier-id` {developer, build},
//! `submods` {TEE name: {`ear.status`, `ear.trustworthiness-vector`, `ear.appraisal-policy-id`?}}.
//! Issue it as its own token with [`crate::issue`], or embed it in an MAA token under
//! [`EMBED_CLAIM`] (`x-enclava-ear`; MAA's TDX claims already use `eat_profile` at the top level).
//!
//! # Trustworthiness vector (values: 0 no claim, 2 affirming, 32 warning, 96 contraindicated)
//! TCB class from the evidence's TCB status: none (SEV-SNP: chain verified to AMD's root) or
//! `UpToDate` -> good; `SWHardeningNeeded`, `ConfigurationNeeded`,
//! `ConfigurationAndSWHardeningNeeded`, `OutOfDate`, `OutOfDateConfigurationNeeded`,
//! `NotEvaluated` -> warning; `Revoked` or anything unknown -> contraindicated.
//!
//! | claim | rule |
//! |---|---|
//! | instance-identity | sim 96; TCB revoked/unknown 96; else 2 |
//! | configuration | debuggable 96; a `*ConfigurationNeeded` status 32; else 2 |
//! | executables | policy affirmed 2; not appraised (no reference values) 32; denied 96 |
//! | file-system | 0 (not appraised) |
//! | hardware | sim 96; else by TCB class 2 / 32 / 96 |
//! | runtime-opaque | sim or debuggable 96 (memory readable by the host); else 2 |
//! | storage-opaque | 0 (not appraised) |
//! | sourced-data | 0 (not appraised) |
//!
//! `ear.status` is the worst tier in the vector: any value >= 96 (or negative) contraindicated,
//! else any >= 32 warning, else any >= 2 affirming, else none.

use chrono::{DateTime, Utc};
use enclava_evidence::{Claims, Tee};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const EAR_PROFILE: &str = "tag:github.com,2023:veraison/ear";
/// The claim an EAR claims set goes under when embedded in an MAA-style token.
pub const EMBED_CLAIM: &str = "x-enclava-ear";

pub const NO_CLAIM: i8 = 0;
pub const AFFIRMING: i8 = 2;
pub const WARNING: i8 = 32;
pub const CONTRAINDICATED: i8 = 96;

/// `ear.status`, ordered from best to worst tier (`None` means nothing was claimed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    None,
    Affirming,
    Warning,
    Contraindicated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::None => "none",
            Status::Affirming => "affirming",
            Status::Warning => "warning",
            Status::Contraindicated => "contraindicated",
        }
    }

    /// The tier of one trustworthiness value.
    pub fn of_value(v: i8) -> Status {
        match v {
            i8::MIN..=-1 | 96..=i8::MAX => Status::Contraindicated,
            32..=95 => Status::Warning,
            2..=31 => Status::Affirming,
            _ => Status::None,
        }
    }
}

/// The AR4SI trustworthiness vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TrustVector {
    pub instance_identity: i8,
    pub configuration: i8,
    pub executables: i8,
    pub file_system: i8,
    pub hardware: i8,
    pub runtime_opaque: i8,
    pub storage_opaque: i8,
    pub sourced_data: i8,
}

impl TrustVector {
    fn values(&self) -> [i8; 8] {
        [
            self.instance_identity,
            self.configuration,
            self.executables,
            self.file_system,
            self.hardware,
            self.runtime_opaque,
            self.storage_opaque,
            self.sourced_data,
        ]
    }

    /// The worst tier among the claims.
    pub fn status(&self) -> Status {
        self.values()
            .into_iter()
            .map(Status::of_value)
            .max()
            .unwrap_or(Status::None)
    }
}

/// The outcome of appraising the claims against reference values / an appraisal policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyOutcome {
    /// A policy with reference values accepted the evidence.
    Affirmed,
    /// No reference values were compared (e.g. the default permit-all policy).
    NotAppraised,
    /// The policy rejected the evidence.
    Denied,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcbClass {
    Good,
    Warn,
    Bad,
}

fn tcb_class(status: Option<&str>) -> TcbClass {
    match status {
        None | Some("UpToDate") => TcbClass::Good,
        Some(
            "SWHardeningNeeded"
            | "ConfigurationNeeded"
            | "ConfigurationAndSWHardeningNeeded"
            | "OutOfDate"
            | "OutOfDateConfigurationNeeded"
            | "NotEvaluated",
        ) => TcbClass::Warn,
        Some(_) => TcbClass::Bad,
    }
}

fn by_class(c: TcbClass) -> i8 {
    match c {
        TcbClass::Good => AFFIRMING,
        TcbClass::Warn => WARNING,
        TcbClass::Bad => CONTRAINDICATED,
    }
}

/// The trustworthiness vector for verified claims and a policy outcome (rules in the module docs).
pub fn trust_vector(claims: &Claims, policy: PolicyOutcome) -> TrustVector {
    let sim = !claims.tee.is_hardware() || claims.tee == Tee::Sim;
    let tcb = tcb_class(claims.tcb_status.as_deref());
    let config_needed = claims
        .tcb_status
        .as_deref()
        .is_some_and(|s| s.contains("ConfigurationNeeded"));
    TrustVector {
        instance_identity: if sim || tcb == TcbClass::Bad {
            CONTRAINDICATED
        } else {
            AFFIRMING
        },
        configuration: if claims.debug {
            CONTRAINDICATED
        } else if config_needed {
            WARNING
        } else {
            AFFIRMING
        },
        executables: match policy {
            PolicyOutcome::Affirmed => AFFIRMING,
            PolicyOutcome::NotAppraised => WARNING,
            PolicyOutcome::Denied => CONTRAINDICATED,
        },
        file_system: NO_CLAIM,
        hardware: if sim { CONTRAINDICATED } else { by_class(tcb) },
        runtime_opaque: if sim || claims.debug {
            CONTRAINDICATED
        } else {
            AFFIRMING
        },
        storage_opaque: NO_CLAIM,
        sourced_data: NO_CLAIM,
    }
}

/// `ear.verifier-id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierId {
    pub developer: String,
    pub build: String,
}

impl VerifierId {
    /// "enclava" / "enclava-token VERSION" (this crate's version).
    pub fn enclava() -> VerifierId {
        VerifierId {
            developer: "enclava".into(),
            build: format!("enclava-token {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// One appraisal (an EAR submodule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appraisal {
    pub tee: Tee,
    pub status: Status,
    pub vector: TrustVector,
    pub policy_id: Option<String>,
}

impl Appraisal {
    pub fn new(claims: &Claims, policy: PolicyOutcome, policy_id: Option<&str>) -> Appraisal {
        let vector = trust_vector(claims, policy);
        Appraisal {
            tee: claims.tee,
            status: vector.status(),
            vector,
            policy_id: policy_id.map(str::to_string),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ear.status".into(), self.status.as_str().into());
        m.insert(
            "ear.trustworthiness-vector".into(),
            serde_json::to_value(self.vector).unwrap_or(Value::Null),
        );
        if let Some(p) = &self.policy_id {
            m.insert("ear.appraisal-policy-id".into(), p.clone().into());
        }
        Value::Object(m)
    }
}

/// The EAR claims set for one or more appraisals, keyed by TEE name in `submods`.
pub fn ear_claims(
    appraisals: &[Appraisal],
    verifier: &VerifierId,
    now: DateTime<Utc>,
) -> Map<String, Value> {
    let mut submods = Map::new();
    for a in appraisals {
        submods.insert(a.tee.as_str().into(), a.to_json());
    }
    let mut m = Map::new();
    m.insert("eat_profile".into(), EAR_PROFILE.into());
    m.insert("iat".into(), now.timestamp().into());
    m.insert(
        "ear.verifier-id".into(),
        serde_json::json!({ "developer": verifier.developer, "build": verifier.build }),
    );
    m.insert("submods".into(), Value::Object(submods));
    m
}

/// The worst status over several appraisals (`None` for none).
pub fn overall_status(appraisals: &[Appraisal]) -> Status {
    appraisals
        .iter()
        .map(|a| a.status)
        .max()
        .unwrap_or(Status::None)
}
