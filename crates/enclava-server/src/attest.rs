//! The attestation service over HTTP: MAA-compatible routes, the native route, JWKS and OpenID
//! discovery of the attestation token issuer, challenges, policy and reference-value management,
//! signer rotation. A thin layer over [`enclava_attestation::AttestationService`].
//!
//! Routes (see API.md, section "Attestation"):
//!
//! | route | auth |
//! |---|---|
//! | `POST /attest/{SevSnpVm,TdxVm,SgxEnclave,OpenEnclave}` (MAA shapes) | none, unless `attestation.require_token` |
//! | `POST /attest/native` (native shape, every TEE incl. `sim`) | same |
//! | `GET /certs`, `GET /certs/` (JWKS of the token signer) | none |
//! | `GET /.well-known/openid-configuration` (the **attestation** token issuer) | none |
//! | `GET /challenge` | same as attest |
//! | `GET /policies/{type}`, `PUT /policies/{type}`, `POST /policies/{type}:reset`, `POST /policies/{type}:test`, `GET /policies/{type}/versions` | `policies/manage` (isolated mode: set and reset signed by a policy signer) |
//! | `GET /certificates` (MAA api-versions; `7.x` is Key Vault's), `POST /certificates:add`, `POST /certificates:remove` | `policies/manage`, changes signed by a policy signer |
//! | `GET /enclava/reference-values/{scope}`, `GET/PUT/DELETE /enclava/reference-values/{scope}/{name}` | `policies/manage` |
//! | `POST /enclava/attestation/rotate`, `POST /enclava/service-keys/{attestation\|release}/rotate` | `service-keys/rotate` (Administrator only) |
//!
//! The token signing key is a service key ([`crate::service_keys`]: RS256 RSA-2048 by default,
//! like MAA, or ES256 P-256 with `attestation.alg = "ES256"`), sealed in a namespace no Key Vault route reaches,
//! created on the first unseal and used in process. Its `x5c` certificate comes from the local CA
//! with the attestation-token purpose ([`enclava_token::eku::ATTESTATION_TOKEN_EKU`]). A rotation
//! (these routes; by another process on the same database it is noticed within
//! [`SIGNER_RECHECK`]) keeps the previous versions in the JWKS (`previous_keys_kept`, 2) so their
//! tokens keep verifying until they expire. A missing or unusable signer answers 503
//! `signer_unavailable`.
//!
//! DCAP collateral for MAA requests comes from `attestation.collateral_dir` ([`DirCollateral`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration as StdDuration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use enclava_attestation::{
    AttestError, AttestRequest, AttestationService, CollateralSource, MaaType, PolicyRecord,
    PolicySigner, PolicySigners, ServiceConfig, policy_type,
};
use enclava_evidence::Tee;
use enclava_evidence::dcap::Collateral;
use enclava_identity::{Action, AudienceFamily, Resource};
use enclava_token::{Alg, TokenSigner};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Digest;

use crate::app::AppState;
use crate::data::Reply;
use crate::error::ApiError;
use crate::route::RouteError;

/// Name of the data-plane vault key that signed attestation tokens before service keys existed.
/// No longer used: such a key is an ordinary key with no power (see [`crate::service_keys`]).
pub const LEGACY_ES256_KEY: &str = "enclava-attestation-es256";
/// The RS256 counterpart of [`LEGACY_ES256_KEY`].
pub const LEGACY_RS256_KEY: &str = "enclava-attestation-rs256";
/// How often the stored signer ring is re-read to notice a rotation by another server process
/// on the same database.
pub const SIGNER_RECHECK: StdDuration = StdDuration::from_secs(5);
/// How long collateral read from the directory is kept before it is read again.
pub const COLLATERAL_TTL: StdDuration = StdDuration::from_secs(300);
/// Purpose of the vault-derived key that MACs challenge nonces.
pub const CHALLENGE_KEY_PURPOSE: &str = "challenge-nonce";
/// The reference-value scope of attestation requests.
pub const DEFAULT_SCOPE: &str = enclava_attestation::request::DEFAULT_SCOPE;
const MAX_DETAIL: usize = 4000;

// ---------------------------------------------------------------------------------------------
// Configuration

/// The `[attestation]` table of the server configuration (every field optional in a layer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationSettings {
    /// Require a bearer token on attest and challenge calls (default false, like MAA).
    pub require_token: Option<bool>,
    /// `RS256` (default: MAA's algorithm, RSA-2048 with `x5c` in `/certs`, what the Azure
    /// Attestation SDKs validate) or `ES256` (P-256). One signer serves every attestation route,
    /// the native one included, so one JWKS verifies all tokens.
    pub alg: Option<String>,
    /// Directory of offline DCAP collateral (see [`DirCollateral`]); as an `enclava-collateral`
    /// cache also the NVIDIA OCSP responses and RIMs of composite attestation (see [`DirRims`]).
    pub collateral_dir: Option<PathBuf>,
    /// Let simulated evidence reach the policy (default: on in `--dev`, off otherwise). The
    /// default `sim` policy still denies it.
    pub allow_sim: Option<bool>,
    /// Token lifetime in seconds (default 300).
    pub token_lifetime_secs: Option<i64>,
    /// DEVELOPMENT ONLY: verify evidence and issue tokens as of this RFC 3339 time instead of
    /// the clock (for recorded evidence whose collateral windows are in the past). Only a `--dev`
    /// server accepts it (any other refuses to start), and its tokens then carry
    /// `x-enclava-verification-time` {time, moved: true}; key release then checks tokens as of
    /// that time too.
    pub verification_time: Option<String>,
    /// PEM file of the certificates trusted to sign policy uploads. When set, every policy
    /// upload must be an RS256 JWS whose `x5c` leaf is one of them (MAA's isolated mode).
    pub policy_signers: Option<PathBuf>,
    /// Directory of NVIDIA RIMs (signed SWID tags) for composite CPU+GPU attestation: a device's
    /// RIM that its request does not carry is read from `{dir}/{RIM id}.xml`, `.swidtag` or
    /// `{dir}/{RIM id}` (see [`DirRims`]).
    pub nvidia_rim_dir: Option<PathBuf>,
}

impl AttestationSettings {
    /// `higher` stacked on `self`.
    pub fn overlay(lower: Option<Self>, higher: Option<Self>) -> Option<Self> {
        match (lower, higher) {
            (None, h) => h,
            (l, None) => l,
            (Some(l), Some(h)) => Some(AttestationSettings {
                require_token: h.require_token.or(l.require_token),
                alg: h.alg.or(l.alg),
                collateral_dir: h.collateral_dir.or(l.collateral_dir),
                allow_sim: h.allow_sim.or(l.allow_sim),
                token_lifetime_secs: h.token_lifetime_secs.or(l.token_lifetime_secs),
                verification_time: h.verification_time.or(l.verification_time),
                policy_signers: h.policy_signers.or(l.policy_signers),
                nvidia_rim_dir: h.nvidia_rim_dir.or(l.nvidia_rim_dir),
            }),
        }
    }

    /// `ENCLAVA_ATTESTATION_*` variables (`REQUIRE_TOKEN`, `ALG`, `COLLATERAL_DIR`, `ALLOW_SIM`,
    /// `TOKEN_LIFETIME_SECS`, `VERIFICATION_TIME`, `POLICY_SIGNERS`); `None` when none is set.
    pub fn from_env_var(
        current: Option<Self>,
        key: &str,
        value: &str,
    ) -> Result<Option<Self>, crate::ConfigError> {
        let Some(field) = key.strip_prefix("ENCLAVA_ATTESTATION_") else {
            return Ok(current);
        };
        let mut s = current.unwrap_or_default();
        let boolean = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(invalid(key, "a boolean (true/false/1/0)", v)),
        };
        match field {
            "REQUIRE_TOKEN" => s.require_token = Some(boolean(value)?),
            "ALLOW_SIM" => s.allow_sim = Some(boolean(value)?),
            "ALG" => s.alg = Some(value.to_string()),
            "COLLATERAL_DIR" => s.collateral_dir = Some(PathBuf::from(value)),
            "TOKEN_LIFETIME_SECS" => {
                s.token_lifetime_secs = Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(key, "an integer number of seconds", value))?,
                )
            }
            "VERIFICATION_TIME" => s.verification_time = Some(value.to_string()),
            "POLICY_SIGNERS" => s.policy_signers = Some(PathBuf::from(value)),
            "NVIDIA_RIM_DIR" => s.nvidia_rim_dir = Some(PathBuf::from(value)),
            _ => return Ok(Some(s)),
        }
        Ok(Some(s))
    }

    /// Defaults and validation.
    pub fn resolve(self, dev: bool) -> Result<AttestationConfig, crate::ConfigError> {
        let alg = match self.alg.as_deref().map(str::trim) {
            Some("ES256") | Some("es256") => Alg::ES256,
            None | Some("RS256") | Some("rs256") => Alg::RS256,
            Some(other) => {
                return Err(invalid("attestation.alg", "\"ES256\" or \"RS256\"", other));
            }
        };
        let verification_time = match &self.verification_time {
            None => None,
            // A moved clock attests expired evidence (and dates tokens in the past or future):
            // a development tool, never something a production server may be configured into.
            Some(s) if !dev => {
                return Err(invalid(
                    "attestation.verification_time",
                    "it unset outside --dev (attestation.verification_time / \
                     ENCLAVA_ATTESTATION_VERIFICATION_TIME moves the verification clock, which \
                     only a development server may do)",
                    s,
                ));
            }
            Some(s) => Some(
                DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|_| {
                        invalid(
                            "attestation.verification_time",
                            "an RFC 3339 time such as 2025-06-01T00:00:00Z",
                            s,
                        )
                    })?
                    .with_timezone(&Utc),
            ),
        };
        let lifetime = self.token_lifetime_secs.unwrap_or(300);
        if !(1..=enclava_token::MAX_LIFETIME_SECONDS).contains(&lifetime) {
            return Err(invalid(
                "attestation.token_lifetime_secs",
                "1 to 86400 seconds",
                &lifetime.to_string(),
            ));
        }
        let policy_signers = match &self.policy_signers {
            None => PolicySigners::default(),
            Some(path) => {
                let shown = path.display().to_string();
                let pem = std::fs::read(path).map_err(|e| crate::ConfigError::Invalid {
                    source_name: "configuration".into(),
                    key: "attestation.policy_signers".into(),
                    expected: "a readable PEM file of policy signer certificates",
                    found: format!("{shown}: {e}"),
                })?;
                PolicySigners::from_pem(&pem).map_err(|e| crate::ConfigError::Invalid {
                    source_name: "configuration".into(),
                    key: "attestation.policy_signers".into(),
                    expected: "PEM certificates with RSA keys",
                    found: format!("{shown}: {e}"),
                })?
            }
        };
        Ok(AttestationConfig {
            require_token: self.require_token.unwrap_or(false),
            alg,
            collateral_dir: self.collateral_dir,
            allow_sim: self.allow_sim.unwrap_or(dev),
            token_lifetime_secs: lifetime,
            verification_time,
            policy_signers,
            nvidia_rim_dir: self.nvidia_rim_dir,
        })
    }
}

fn invalid(key: &str, expected: &'static str, found: &str) -> crate::ConfigError {
    crate::ConfigError::Invalid {
        source_name: "configuration".into(),
        key: key.into(),
        expected,
        found: found.chars().take(200).collect(),
    }
}

/// The resolved `[attestation]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationConfig {
    pub require_token: bool,
    pub alg: Alg,
    pub collateral_dir: Option<PathBuf>,
    pub allow_sim: bool,
    pub token_lifetime_secs: i64,
    pub verification_time: Option<DateTime<Utc>>,
    /// Certificates trusted to sign policy uploads (none: the role alone authorizes).
    pub policy_signers: PolicySigners,
    /// NVIDIA RIM directory ([`DirRims`]).
    pub nvidia_rim_dir: Option<PathBuf>,
}

impl Default for AttestationConfig {
    fn default() -> Self {
        AttestationConfig {
            require_token: false,
            alg: Alg::RS256,
            collateral_dir: None,
            allow_sim: false,
            token_lifetime_secs: 300,
            verification_time: None,
            policy_signers: PolicySigners::default(),
            nvidia_rim_dir: None,
        }
    }
}

impl AttestationConfig {
    /// The service key ring of the token signer ([`crate::service_keys`]).
    pub fn ring(&self) -> crate::service_keys::Ring {
        crate::service_keys::Ring::attestation(self.alg)
    }
}

// ---------------------------------------------------------------------------------------------
// Routing (pure)

/// What a policy route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOp {
    Get,
    Set,
    Reset,
    Test,
    Versions,
}

/// What a reference-value route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefOp {
    List,
    Get,
    Set,
    Delete,
    Versions,
}

/// What a policy management certificate route does (MAA's `/certificates` APIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertOp {
    Get,
    Add,
    Remove,
}

/// The attestation routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestRoute {
    Maa(MaaType),
    Native,
    Certs,
    OpenIdConfig,
    Challenge,
    Policy {
        op: PolicyOp,
        ty: String,
        object: String,
    },
    Reference {
        op: RefOp,
        scope: String,
        name: Option<String>,
        object: String,
    },
    /// MAA's policy management certificates: `GET /certificates`, `POST /certificates:add`,
    /// `POST /certificates:remove`.
    PolicyCertificates(CertOp),
    /// Rotate the attestation token signer (`POST /enclava/attestation/rotate`).
    Rotate,
    /// Rotate a service key (`POST /enclava/service-keys/{attestation|release}/rotate`).
    RotateServiceKey(crate::service_keys::ServiceKeyKind),
}

/// Match an attestation route; `None` when the path is not one (the caller routes on).
pub fn route(m: &Method, segs: &[&str]) -> Option<Result<AttestRoute, RouteError>> {
    let only = |want: Method, r: AttestRoute, allowed: &'static str| {
        if *m == want {
            Ok(r)
        } else {
            Err(RouteError::MethodNotAllowed { allowed })
        }
    };
    let policy = |op: PolicyOp, ty: &str| AttestRoute::Policy {
        op,
        ty: ty.to_string(),
        object: format!("policies/{}", ty.chars().take(64).collect::<String>()),
    };
    let reference = |op: RefOp, scope: &str, name: Option<&str>| AttestRoute::Reference {
        op,
        scope: scope.to_string(),
        name: name.map(str::to_string),
        object: match name {
            Some(n) => format!("reference-values/{scope}/{n}"),
            None => format!("reference-values/{scope}"),
        }
        .chars()
        .take(300)
        .collect(),
    };
    Some(match segs {
        ["attest", "native"] => only(Method::POST, AttestRoute::Native, "POST"),
        ["attest", ty] => {
            let t = MaaType::from_name(ty).ok()?;
            only(Method::POST, AttestRoute::Maa(t), "POST")
        }
        ["certs"] | ["certs", ""] => only(Method::GET, AttestRoute::Certs, "GET"),
        [".well-known", "openid-configuration"] => {
            only(Method::GET, AttestRoute::OpenIdConfig, "GET")
        }
        ["challenge"] => {
            if *m == Method::GET || *m == Method::POST {
                Ok(AttestRoute::Challenge)
            } else {
                Err(RouteError::MethodNotAllowed {
                    allowed: "GET, POST",
                })
            }
        }
        ["policies", seg] if !seg.is_empty() => {
            if let Some(ty) = seg.strip_suffix(":reset") {
                only(Method::POST, policy(PolicyOp::Reset, ty), "POST")
            } else if let Some(ty) = seg.strip_suffix(":test") {
                only(Method::POST, policy(PolicyOp::Test, ty), "POST")
            } else {
                match *m {
                    Method::GET => Ok(policy(PolicyOp::Get, seg)),
                    Method::PUT => Ok(policy(PolicyOp::Set, seg)),
                    _ => Err(RouteError::MethodNotAllowed {
                        allowed: "GET, PUT",
                    }),
                }
            }
        }
        // Key Vault serves `GET /certificates` too (issue 12): the two are told apart by
        // api-version in `execute` (see `certificates_api`).
        ["certificates"] => only(
            Method::GET,
            AttestRoute::PolicyCertificates(CertOp::Get),
            "GET",
        ),
        ["certificates:add"] => only(
            Method::POST,
            AttestRoute::PolicyCertificates(CertOp::Add),
            "POST",
        ),
        ["certificates:remove"] => only(
            Method::POST,
            AttestRoute::PolicyCertificates(CertOp::Remove),
            "POST",
        ),
        ["policies", ty, "versions"] if !ty.is_empty() => {
            only(Method::GET, policy(PolicyOp::Versions, ty), "GET")
        }
        ["enclava", "reference-values", scope] if !scope.is_empty() => {
            only(Method::GET, reference(RefOp::List, scope, None), "GET")
        }
        ["enclava", "reference-values", scope, name] if !scope.is_empty() && !name.is_empty() => {
            match *m {
                Method::GET => Ok(reference(RefOp::Get, scope, Some(name))),
                Method::PUT => Ok(reference(RefOp::Set, scope, Some(name))),
                Method::DELETE => Ok(reference(RefOp::Delete, scope, Some(name))),
                _ => Err(RouteError::MethodNotAllowed {
                    allowed: "GET, PUT, DELETE",
                }),
            }
        }
        ["enclava", "reference-values", scope, name, "versions"]
            if !scope.is_empty() && !name.is_empty() =>
        {
            only(
                Method::GET,
                reference(RefOp::Versions, scope, Some(name)),
                "GET",
            )
        }
        ["enclava", "attestation", "rotate"] => only(Method::POST, AttestRoute::Rotate, "POST"),
        ["enclava", "service-keys", kind, "rotate"] => {
            let k = crate::service_keys::ServiceKeyKind::parse(kind)?;
            only(Method::POST, AttestRoute::RotateServiceKey(k), "POST")
        }
        _ => return None,
    })
}

impl AttestRoute {
    pub fn template(&self) -> &'static str {
        match self {
            AttestRoute::Maa(MaaType::SevSnpVm) => "/attest/SevSnpVm",
            AttestRoute::Maa(MaaType::TdxVm) => "/attest/TdxVm",
            AttestRoute::Maa(MaaType::SgxEnclave) => "/attest/SgxEnclave",
            AttestRoute::Maa(MaaType::OpenEnclave) => "/attest/OpenEnclave",
            AttestRoute::Native => "/attest/native",
            AttestRoute::Certs => "/certs",
            AttestRoute::OpenIdConfig => "/.well-known/openid-configuration",
            AttestRoute::Challenge => "/challenge",
            AttestRoute::Policy { op, .. } => match op {
                PolicyOp::Get | PolicyOp::Set => "/policies/{type}",
                PolicyOp::Reset => "/policies/{type}:reset",
                PolicyOp::Test => "/policies/{type}:test",
                PolicyOp::Versions => "/policies/{type}/versions",
            },
            AttestRoute::Reference { op, .. } => match op {
                RefOp::List => "/enclava/reference-values/{scope}",
                RefOp::Versions => "/enclava/reference-values/{scope}/{name}/versions",
                _ => "/enclava/reference-values/{scope}/{name}",
            },
            AttestRoute::PolicyCertificates(op) => match op {
                CertOp::Get => "/certificates",
                CertOp::Add => "/certificates:add",
                CertOp::Remove => "/certificates:remove",
            },
            AttestRoute::Rotate => "/enclava/attestation/rotate",
            AttestRoute::RotateServiceKey(_) => "/enclava/service-keys/{kind}/rotate",
        }
    }

    pub fn operation(&self) -> &'static str {
        match self {
            AttestRoute::Maa(MaaType::SevSnpVm) => "AttestSevSnpVm",
            AttestRoute::Maa(MaaType::TdxVm) => "AttestTdxVm",
            AttestRoute::Maa(MaaType::SgxEnclave) => "AttestSgxEnclave",
            AttestRoute::Maa(MaaType::OpenEnclave) => "AttestOpenEnclave",
            AttestRoute::Native => "AttestNative",
            AttestRoute::Certs => "GetAttestationCerts",
            AttestRoute::OpenIdConfig => "GetAttestationOpenIdMetadata",
            AttestRoute::Challenge => "GetChallenge",
            AttestRoute::Policy { op, .. } => match op {
                PolicyOp::Get => "GetPolicy",
                PolicyOp::Set => "SetPolicy",
                PolicyOp::Reset => "ResetPolicy",
                PolicyOp::Test => "TestPolicy",
                PolicyOp::Versions => "GetPolicyVersions",
            },
            AttestRoute::Reference { op, .. } => match op {
                RefOp::List => "ListReferenceValues",
                RefOp::Get => "GetReferenceValues",
                RefOp::Set => "SetReferenceValues",
                RefOp::Delete => "DeleteReferenceValues",
                RefOp::Versions => "GetReferenceValueVersions",
            },
            AttestRoute::PolicyCertificates(op) => match op {
                CertOp::Get => "GetPolicyManagementCertificates",
                CertOp::Add => "AddPolicyManagementCertificate",
                CertOp::Remove => "RemovePolicyManagementCertificate",
            },
            AttestRoute::Rotate => "RotateAttestationSigner",
            AttestRoute::RotateServiceKey(crate::service_keys::ServiceKeyKind::Attestation) => {
                "RotateAttestationSigner"
            }
            AttestRoute::RotateServiceKey(crate::service_keys::ServiceKeyKind::Release) => {
                "RotateReleaseSigner"
            }
        }
    }

    /// The audited object (`policies/{type}`, `reference-values/{scope}/{name}`).
    pub fn object(&self) -> Option<&str> {
        match self {
            AttestRoute::Policy { object, .. } | AttestRoute::Reference { object, .. } => {
                Some(object)
            }
            AttestRoute::PolicyCertificates(_) => Some("policy-certificates"),
            AttestRoute::Rotate => Some("service-keys/attestation"),
            AttestRoute::RotateServiceKey(crate::service_keys::ServiceKeyKind::Attestation) => {
                Some("service-keys/attestation")
            }
            AttestRoute::RotateServiceKey(crate::service_keys::ServiceKeyKind::Release) => {
                Some("service-keys/release")
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Collateral directory

/// When an entry was read, and what was found (`None`: nothing for that FMSPC).
type CacheEntry = (Instant, Option<Arc<Collateral>>);

/// DCAP collateral (and SNP endorsements) read from an offline directory. When the directory is
/// an `enclava-collateral` cache (it has `intel/` or `amd/`; filled by the collateral fetchers),
/// that crate's layout and lookups are used first. Otherwise (and as a fallback) collateral is
/// chosen by the quote's FMSPC and TEE:
///
/// ```text
/// {dir}/{tdx|sgx}/{fmspc}.json    dcap-qvl QuoteCollateralV3 JSON
/// {dir}/{tdx|sgx}/{fmspc}/        Intel PCS files (TCB info, QE identity, CRLs, issuer chains)
/// {dir}/{fmspc}.json, {dir}/{fmspc}/   the same, for either TEE
/// ```
///
/// FMSPC is lower-case hex (12 characters). Entries are cached in memory for
/// [`COLLATERAL_TTL`]; an unreadable entry is logged and treated as absent.
pub struct DirCollateral {
    dir: PathBuf,
    store: Option<enclava_collateral::Cache>,
    cache: Mutex<HashMap<(Tee, String), CacheEntry>>,
    /// FMSPC by SHA-256 of a quote's PCK chain: finding it parses the chain, and the chain is the
    /// same for every quote of a platform.
    fmspcs: Mutex<HashMap<[u8; 32], String>>,
    /// SEV-SNP certificates and CRLs of a flat directory (ARK, ASK, VCEK as separate files, as
    /// the CLI reads them), loaded at most once per [`COLLATERAL_TTL`].
    snp_flat: Mutex<Option<(Instant, Option<enclava_evidence::snp::Endorsements>)>>,
}

impl DirCollateral {
    pub fn new(dir: PathBuf) -> Self {
        let store = (dir.join("intel").is_dir() || dir.join("amd").is_dir())
            .then(|| enclava_collateral::Cache::open(&dir).ok())
            .flatten();
        DirCollateral {
            dir,
            store,
            cache: Mutex::new(HashMap::new()),
            fmspcs: Mutex::new(HashMap::new()),
            snp_flat: Mutex::new(None),
        }
    }

    /// The SEV-SNP certificates and CRLs found directly in the directory, through the one
    /// collateral loader: the verifier builds the chain from them by content, up to the pinned
    /// AMD root, so a directory of several chips' certificates is fine.
    fn flat_snp(&self) -> Option<enclava_evidence::snp::Endorsements> {
        if let Ok(g) = self.snp_flat.lock()
            && let Some((at, e)) = g.as_ref()
            && at.elapsed() < COLLATERAL_TTL
        {
            return e.clone();
        }
        let found = match enclava_collateral::load::read_dir(&self.dir) {
            Ok(l) if !l.snp_certs.is_empty() || !l.snp_crls.is_empty() => Some(l.snp()),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %self.dir.display(), error = %e, "unusable collateral");
                None
            }
        };
        if let Ok(mut g) = self.snp_flat.lock() {
            *g = Some((Instant::now(), found.clone()));
        }
        found
    }

    fn cached_fmspc(&self, quote: &[u8]) -> Option<String> {
        let q = enclava_evidence::dcap::parse_quote(quote).ok()?;
        let key: [u8; 32] = sha2::Sha256::digest(&q.pck_chain_pem).into();
        if let Ok(m) = self.fmspcs.lock()
            && let Some(f) = m.get(&key)
        {
            return Some(f.clone());
        }
        let fmspc = Self::fmspc_of(quote)?;
        if let Ok(mut m) = self.fmspcs.lock() {
            if m.len() > 4096 {
                m.clear();
            }
            m.insert(key, fmspc.clone());
        }
        Some(fmspc)
    }

    /// The FMSPC (lower-case hex) of a quote's PCK certificate.
    pub fn fmspc_of(quote: &[u8]) -> Option<String> {
        let q = enclava_evidence::dcap::parse_quote(quote).ok()?;
        let chain = enclava_evidence::dcap::certs::parse_pem_chain(&q.pck_chain_pem).ok()?;
        let leaf = chain.first()?;
        let ext = enclava_evidence::dcap::certs::pck_extension(leaf).ok()?;
        Some(hex::encode(ext.fmspc))
    }

    fn load(&self, tee: Tee, fmspc: &str, quote: &[u8]) -> Option<Collateral> {
        if let Some(store) = &self.store {
            let t = match tee {
                Tee::Sgx => enclava_collateral::DcapTee::Sgx,
                _ => enclava_collateral::DcapTee::Tdx,
            };
            match store.dcap_collateral(quote, t) {
                Ok(c) => return Some(c),
                Err(e) => tracing::debug!(error = %e, "no collateral in the collateral cache"),
            }
        }
        let sub = match tee {
            Tee::Sgx => "sgx",
            _ => "tdx",
        };
        let candidates = [self.dir.join(sub), self.dir.clone()];
        for base in &candidates {
            let file = base.join(format!("{fmspc}.json"));
            if file.is_file() {
                return read_pcs_dir(&file);
            }
            let d = base.join(fmspc);
            if d.is_dir() {
                return read_pcs_dir(&d);
            }
        }
        // A flat directory of PCS files (one platform), as caching tools leave them: used for
        // quotes of that platform only (its TCB info names the FMSPC). Another platform's quote
        // is attested as if no collateral were configured, not failed on a foreign CRL or TCB.
        for base in &candidates {
            if base.is_dir()
                && let Some(c) = read_pcs_dir(base)
                && c.tcb_info()
                    .is_ok_and(|t| t.fmspc.eq_ignore_ascii_case(fmspc))
            {
                return Some(c);
            }
        }
        None
    }
}

/// A collateral file or directory through the one loader (`enclava_collateral::load`, shared
/// with the CLI): files recognized by content, non-collateral files skipped with a note, broken
/// collateral logged with the file it is in and treated as absent.
fn read_pcs_dir(d: &Path) -> Option<Collateral> {
    let loaded = match enclava_collateral::load::read_dir(d) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(path = %d.display(), error = %e, "unusable collateral");
            return None;
        }
    };
    for n in &loaded.notes {
        tracing::debug!(file = %n.file, reason = %n.reason, "not collateral, skipped");
    }
    if !loaded.has_dcap() {
        return None;
    }
    match loaded.dcap() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %d.display(), error = %e, "unusable collateral");
            None
        }
    }
}

impl CollateralSource for DirCollateral {
    fn dcap_collateral(&self, tee: Tee, quote: &[u8]) -> Option<Arc<Collateral>> {
        let tee = match tee {
            Tee::Sgx => Tee::Sgx,
            _ => Tee::Tdx,
        };
        let fmspc = self.cached_fmspc(quote)?;
        let key = (tee, fmspc.clone());
        if let Ok(c) = self.cache.lock()
            && let Some((at, v)) = c.get(&key)
            && at.elapsed() < COLLATERAL_TTL
        {
            return v.clone();
        }
        let v = self.load(tee, &fmspc, quote).map(Arc::new);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() > 4096 {
                c.clear();
            }
            c.insert(key, (Instant::now(), v.clone()));
        }
        v
    }

    fn snp_endorsements(&self, report: &[u8]) -> Option<enclava_evidence::snp::Endorsements> {
        if let Some(Ok(e)) = self.store.as_ref().map(|s| s.snp_endorsements(report)) {
            return Some(e);
        }
        self.flat_snp().filter(|e| !e.certs_der.is_empty())
    }

    /// The cached AMD CRLs for the report's product and key (`enclava collateral fetch` keeps
    /// them), for requests that bring certificates but no CRL.
    fn snp_crls(&self, report: &[u8]) -> Vec<Vec<u8>> {
        match self.store.as_ref().map(|s| s.snp_crls(report)) {
            Some(Ok(crls)) if !crls.is_empty() => crls,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "unusable AMD CRL in the collateral cache");
                Vec::new()
            }
            // No cache entry: the CRLs of a flat directory, if it holds any.
            _ => self.flat_snp().map(|e| e.crls_der).unwrap_or_default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State

struct Live {
    service: Arc<AttestationService>,
    key_version: String,
    /// SHA-256 of the stored signer ring when it was loaded.
    row_digest: [u8; 32],
    checked: Instant,
    /// The change feed's version of `Table::Meta` (where the ring lives) when it was checked;
    /// `u64::MAX` forces a check on first use.
    meta_seen: u64,
}

/// NVIDIA RIMs read from a directory by RIM id (`NV_GPU_DRIVER_GH100_545.00`,
/// `NV_GPU_VBIOS_1010_0200_882_96005E0001`, `NV_SWITCH_BIOS_...`): `{dir}/{id}.xml`,
/// `{dir}/{id}.swidtag` or `{dir}/{id}`. A plain path setting, so that a RIM cache filled by
/// `enclava collateral fetch --nvidia-rim` can be named here. With the collateral cache
/// (`attestation.collateral_dir`), RIMs not found there are read from its `nvidia/rim/{id}.xml`,
/// and its `nvidia/ocsp/*.der` are the OCSP responses of the NVIDIA chains (at most
/// [`MAX_CACHED_OCSP`], each at most `gpu::MAX_OCSP_BYTES`). Entries (found or not) are kept for
/// [`COLLATERAL_TTL`]; the service keeps verified RIMs by content and checks their validity (and
/// every OCSP response) on every use. Nothing is fetched from NVIDIA here.
pub struct DirRims {
    dir: Option<PathBuf>,
    store: Option<enclava_collateral::Cache>,
    cache: Mutex<HashMap<String, RimEntry>>,
    ocsp: Mutex<Option<OcspEntry>>,
}

/// When the cache's OCSP responses were read, and what was read.
type OcspEntry = (Instant, Arc<Vec<Vec<u8>>>);

/// Most OCSP responses read from the collateral cache (every request's devices are matched
/// against all of them; a few per GPU model and RIM signer are needed).
pub const MAX_CACHED_OCSP: usize = 1024;

/// When a RIM id was looked up, and what was found.
type RimEntry = (Instant, Option<Arc<Vec<u8>>>);

impl DirRims {
    pub fn new(dir: PathBuf) -> Self {
        DirRims {
            dir: Some(dir),
            store: None,
            cache: Mutex::new(HashMap::new()),
            ocsp: Mutex::new(None),
        }
    }

    /// RIMs and OCSP responses from the collateral cache only (no RIM directory).
    pub fn from_collateral(dir: PathBuf) -> Self {
        DirRims {
            dir: None,
            ..DirRims::new(PathBuf::new())
        }
        .with_collateral(dir)
    }

    /// Also use the collateral cache at `dir` (see the type's documentation).
    pub fn with_collateral(mut self, dir: PathBuf) -> Self {
        self.store = enclava_collateral::Cache::open(&dir)
            .inspect_err(
                |e| tracing::warn!(path = %dir.display(), error = %e, "unusable collateral cache"),
            )
            .ok();
        self
    }

    fn read_ocsp(&self) -> Vec<Vec<u8>> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        match store.nvidia_ocsp_responses() {
            Ok(list) => list
                .into_iter()
                .filter(|d| d.len() <= enclava_attestation::gpu::MAX_OCSP_BYTES)
                .take(MAX_CACHED_OCSP)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "unusable NVIDIA OCSP responses in the collateral cache");
                Vec::new()
            }
        }
    }
}

impl enclava_attestation::gpu::RimSource for DirRims {
    fn rim(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        // Ids come from device reports: only plain names ever reach the file system.
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            || id.starts_with('.')
        {
            return None;
        }
        if let Ok(g) = self.cache.lock()
            && let Some((at, doc)) = g.get(id)
            && at.elapsed() < COLLATERAL_TTL
        {
            return doc.clone();
        }
        let from_dir = self.dir.as_ref().and_then(|dir| {
            [format!("{id}.xml"), format!("{id}.swidtag"), id.to_string()]
                .iter()
                .find_map(|name| std::fs::read(dir.join(name)).ok())
        });
        let doc = from_dir
            .or_else(|| self.store.as_ref()?.nvidia_rim(id).ok())
            .map(Arc::new);
        if let Ok(mut g) = self.cache.lock() {
            g.insert(id.to_string(), (Instant::now(), doc.clone()));
        }
        doc
    }

    fn ocsp_responses(&self) -> Arc<Vec<Vec<u8>>> {
        if let Ok(g) = self.ocsp.lock()
            && let Some((at, list)) = g.as_ref()
            && at.elapsed() < COLLATERAL_TTL
        {
            return list.clone();
        }
        let list = Arc::new(self.read_ocsp());
        if let Ok(mut g) = self.ocsp.lock() {
            *g = Some((Instant::now(), list.clone()));
        }
        list
    }
}

/// The attestation part of the server state: the service exists while the vault is unsealed.
pub struct Attestation {
    pub config: AttestationConfig,
    issuer: String,
    collateral: Option<Arc<DirCollateral>>,
    rims: Option<Arc<DirRims>>,
    live: RwLock<Option<Live>>,
    replay_store: Option<Arc<dyn enclava_store::Store>>,
    /// Why the service is not running although the vault is unsealed (its signer is missing or
    /// unusable): answered as 503 `signer_unavailable`. Never key material.
    unavailable: RwLock<Option<String>>,
}

impl Attestation {
    pub fn new(config: AttestationConfig, issuer: String) -> Self {
        let collateral = config
            .collateral_dir
            .clone()
            .map(|d| Arc::new(DirCollateral::new(d)));
        // RIMs from the RIM directory, then the collateral cache; OCSP from the collateral cache.
        let rims = match (config.nvidia_rim_dir.clone(), config.collateral_dir.clone()) {
            (Some(r), Some(c)) => Some(DirRims::new(r).with_collateral(c)),
            (Some(r), None) => Some(DirRims::new(r)),
            (None, Some(c)) => Some(DirRims::from_collateral(c)),
            (None, None) => None,
        }
        .map(Arc::new);
        Attestation {
            config,
            issuer,
            collateral,
            rims,
            live: RwLock::new(None),
            replay_store: None,
            unavailable: RwLock::new(None),
        }
    }

    /// The token issuer (`iss`): the server's base URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// SEV-SNP certificates for a hardware report from `attestation.collateral_dir` (the ASK and
    /// ARK that evidence carrying only its VCEK, as CoCo's az-snp-vtpm does, needs); empty
    /// without a collateral directory.
    pub fn snp_certs(&self, report: &[u8]) -> Vec<Vec<u8>> {
        self.collateral
            .as_ref()
            .and_then(|c| c.snp_endorsements(report))
            .map(|e| e.certs_der)
            .unwrap_or_default()
    }

    /// Called after unseal: load (or create) the signer service key and start the service. A
    /// signer that does not load leaves the service down (503 `signer_unavailable`, an operator
    /// rotation recovers) without failing the unseal.
    pub fn on_unsealed(&self, st: &AppState) -> Result<(), String> {
        let loaded =
            crate::service_keys::load_or_create(&st.vault, st.store.as_ref(), self.config.ring());
        match loaded.and_then(|l| self.start(st, &l)) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "the attestation token signer is unavailable");
                *self.live.write().unwrap_or_else(|p| p.into_inner()) = None;
                *self.unavailable.write().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                Ok(())
            }
        }
    }

    /// Start (or restart) the service with the signers of `loaded`.
    fn start(
        &self,
        st: &AppState,
        loaded: &crate::service_keys::Loaded,
    ) -> Result<(), crate::service_keys::ServiceKeyError> {
        let ca = st.lifecycle.local_ca();
        let signers =
            crate::service_keys::attestation_signers(loaded, self.config.ring(), ca.as_deref())?;
        let mut sc = ServiceConfig::new(self.issuer.clone());
        sc.allow_sim = self.config.allow_sim;
        sc.token_lifetime = chrono::Duration::seconds(self.config.token_lifetime_secs);
        sc.clock_moved = self.config.verification_time.is_some();
        sc.validate()
            .map_err(|e| crate::service_keys::ServiceKeyError {
                key: self.config.ring().meta_key(),
                reason: e.to_string(),
            })?;
        let mut previous = signers.previous;
        previous.truncate(sc.previous_keys_kept);
        let derive_err = |e: enclava_vault::VaultError| crate::service_keys::ServiceKeyError {
            key: self.config.ring().meta_key(),
            reason: format!("deriving a root-bound key: {e}"),
        };
        // Challenges: MAC'd under a key derived from the root (every process unsealed with it
        // accepts them) and redeemed into the shared database (single use across processes).
        let challenge_key = st
            .vault
            .derived_key(CHALLENGE_KEY_PURPOSE)
            .map_err(derive_err)?;
        // Stored policies and reference values are MAC'd under root-derived keys (row integrity).
        let row_keys = enclava_attestation::PolicyRowKeys::derive(|p| st.vault.derived_key(p))
            .map_err(|e| crate::service_keys::ServiceKeyError {
                key: self.config.ring().meta_key(),
                reason: format!("deriving the policy row keys: {e}"),
            })?;
        let mut svc = AttestationService::new(st.store.clone(), signers.current, sc)
            .with_previous_signers(previous)
            .with_challenge_key(&challenge_key, self.redeemed_store(st))
            .with_row_keys(Arc::new(row_keys));
        if let Some(c) = &self.collateral {
            svc = svc.with_collateral_source(c.clone());
        }
        if let Some(r) = &self.rims {
            svc = svc.with_rim_source(r.clone());
        }
        let service = Arc::new(svc);
        publish_trusted(st, &self.issuer, &service);
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Some(Live {
            service,
            key_version: signers.kid,
            row_digest: signers.row_digest,
            checked: Instant::now(),
            meta_seen: u64::MAX,
        });
        *self.unavailable.write().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Where redeemed challenge nonces are recorded: the dedicated connection when one was set
    /// ([`Attestation::with_replay_store`]), else the server's store.
    fn redeemed_store(&self, st: &AppState) -> Arc<dyn enclava_store::Store> {
        self.replay_store
            .clone()
            .unwrap_or_else(|| st.store.clone())
    }

    /// Record redeemed challenges through `store` (a second connection to the same database).
    pub fn with_replay_store(mut self, store: Arc<dyn enclava_store::Store>) -> Self {
        self.replay_store = Some(store);
        self
    }

    /// Delete expired redeemed challenges (the maintenance task); 0 while sealed.
    pub fn sweep_challenges(&self) -> Result<usize, String> {
        let svc = {
            let live = self.live.read().unwrap_or_else(|p| p.into_inner());
            match live.as_ref() {
                Some(l) => l.service.clone(),
                None => return Ok(0),
            }
        };
        svc.challenges()
            .sweep(now_for(self))
            .map_err(|e| e.to_string())
    }

    /// Switch the running service to the current key of `loaded` (a rotation): the service and
    /// its outstanding challenges stay, the old key joins the previous ones in the JWKS. Starts
    /// the service when it is not running.
    fn apply(
        &self,
        st: &AppState,
        loaded: &crate::service_keys::Loaded,
    ) -> Result<(), crate::service_keys::ServiceKeyError> {
        {
            let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = live.as_mut() {
                l.row_digest = loaded.row_digest;
                if l.key_version != loaded.current().kid {
                    let ca = st.lifecycle.local_ca();
                    let signers = crate::service_keys::attestation_signers(
                        loaded,
                        self.config.ring(),
                        ca.as_deref(),
                    )?;
                    l.service.rotate_signer(signers.current);
                    l.key_version = signers.kid;
                    publish_trusted(st, &self.issuer, &l.service);
                    tracing::info!(kid = %l.key_version, "attestation signer rotated");
                }
                return Ok(());
            }
        }
        self.start(st, loaded)
    }

    /// Called on seal: forget the service (its signer is sealed again).
    pub fn on_sealed(&self) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = None;
        *self.unavailable.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The running service, after noticing a rotation by another process: at once when the
    /// store's change feed reports a change of `Table::Meta`, on every use while that feed is
    /// not confirmed alive, and at least every [`SIGNER_RECHECK`].
    pub fn service(&self, st: &AppState) -> Result<Arc<AttestationService>, ApiError> {
        let coherence = st.store.coherence();
        let stale = {
            let live = self.live.read().unwrap_or_else(|p| p.into_inner());
            match live.as_ref() {
                Some(l) => {
                    l.checked.elapsed() >= SIGNER_RECHECK
                        || !coherence.trusted()
                        || coherence.table_version(enclava_store::Table::Meta) != l.meta_seen
                }
                None => return Err(self.down()),
            }
        };
        if stale {
            self.refresh_signer(st)?;
        }
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.as_ref()
            .map(|l| l.service.clone())
            .ok_or_else(|| self.down())
    }

    /// Why there is no service: the signer is unavailable, or the vault is sealed.
    fn down(&self) -> ApiError {
        match self
            .unavailable
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(_) => crate::service_keys::unavailable(
                "the attestation token signer is unavailable; see the server log",
            ),
            None => ApiError::sealed(),
        }
    }

    /// Re-read the stored signer ring; when another process rotated it, reload the signers.
    fn refresh_signer(&self, st: &AppState) -> Result<(), ApiError> {
        let ring = self.config.ring();
        // Before the read: a change reported after it triggers another check.
        let seen = st
            .store
            .coherence()
            .table_version(enclava_store::Table::Meta);
        let digest = match crate::service_keys::row_digest(st.store.as_ref(), ring) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading the attestation signer ring failed");
                return Ok(());
            }
        };
        let changed = {
            let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
            let Some(l) = live.as_mut() else {
                return Err(self.down());
            };
            l.checked = Instant::now();
            l.meta_seen = seen;
            digest.is_some_and(|d| d != l.row_digest)
        };
        if changed {
            let loaded = crate::service_keys::load_or_create(&st.vault, st.store.as_ref(), ring)
                .and_then(|l| self.apply(st, &l));
            if let Err(e) = loaded {
                tracing::error!(error = %e, "the attestation token signer changed and does not load");
                *self.live.write().unwrap_or_else(|p| p.into_inner()) = None;
                *self.unavailable.write().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                return Err(self.down());
            }
        }
        Ok(())
    }

    /// Operator rotation of a service key (`service-keys/rotate`). Returns the new kid.
    fn rotate(
        &self,
        st: &AppState,
        kind: crate::service_keys::ServiceKeyKind,
    ) -> Result<String, ApiError> {
        use crate::service_keys::{Ring, ServiceKeyKind, rotate};
        if st.vault.is_sealed() {
            return Err(ApiError::sealed());
        }
        let ring = match kind {
            ServiceKeyKind::Attestation => self.config.ring(),
            ServiceKeyKind::Release => Ring::Release,
        };
        // Keep what the JWKS publishes (previous_keys_kept, 2).
        let keep = ServiceConfig::new(self.issuer.clone()).previous_keys_kept;
        let loaded = rotate(&st.vault, st.store.as_ref(), ring, keep).map_err(|e| {
            tracing::error!(error = %e, "service key rotation failed");
            crate::service_keys::unavailable(format!(
                "rotating the {} service key failed; see the server log",
                kind.name()
            ))
        })?;
        let kid = loaded.current().kid.clone();
        if kind == ServiceKeyKind::Attestation {
            self.apply(st, &loaded).map_err(|e| {
                tracing::error!(error = %e, "the rotated attestation signer does not load");
                crate::service_keys::unavailable(
                    "the attestation token signer is unavailable; see the server log",
                )
            })?;
        }
        Ok(kid)
    }
}

/// Make our own tokens trusted for secure key release: the local issuer with the current JWKS
/// (current and previous keys), refreshed at start-up and on every signer rotation.
fn publish_trusted(st: &AppState, issuer: &str, svc: &AttestationService) {
    match svc.jwks() {
        Ok(jwks) => st.trusted_issuers.set_local(issuer, jwks),
        Err(e) => {
            tracing::error!(error = %e, "publishing the attestation JWKS for key release failed")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request handling

/// Per-request facts for the pipeline (principal, action, audit detail, error extras).
#[derive(Debug, Default, Clone)]
pub struct AttestCtx {
    pub principal: Option<String>,
    pub action: Option<&'static str>,
    /// Appended to the audit entry's detail (failed rules, policy versions).
    pub audit_detail: Option<String>,
    /// Extra members of the error object (`failed`, `failed_check`).
    pub error_extra: Option<Map<String, Value>>,
}

fn attest_error(e: &AttestError, ctx: &mut AttestCtx) -> ApiError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = e.error_body();
    if let Some(obj) = body.get("error").and_then(Value::as_object) {
        let extra: Map<String, Value> = obj
            .iter()
            .filter(|(k, _)| k.as_str() != "code" && k.as_str() != "message")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !extra.is_empty() {
            ctx.error_extra = Some(extra);
        }
    }
    let failed = e.failed_rules();
    if !failed.is_empty() {
        let d: Vec<String> = failed.iter().map(ToString::to_string).collect();
        set_detail(ctx, format!("failed: {}", d.join("; ")));
    } else if let Some(fc) = e.failed_check() {
        set_detail(ctx, format!("failed_check: {fc}"));
    }
    ApiError::new(status, e.code(), e.to_string())
}

fn set_detail(ctx: &mut AttestCtx, d: String) {
    ctx.audit_detail = Some(d.chars().take(MAX_DETAIL).collect());
}

/// An error response for an attestation route: the MAA error shape plus `failed` /
/// `failed_check`, and the `x-ms-error-code` header.
pub fn error_response(e: ApiError, extra: Option<Map<String, Value>>) -> Response {
    let code = e.code.clone();
    let mut body = e.body();
    if let (Some(extra), Some(obj)) = (extra, body.get_mut("error").and_then(Value::as_object_mut))
    {
        obj.extend(extra);
    }
    let mut resp = e.into_response();
    if let Ok(bytes) = serde_json::to_vec(&body) {
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        *resp.body_mut() = Body::from(bytes);
    }
    if let Ok(v) = HeaderValue::from_str(&code) {
        resp.headers_mut()
            .insert(HeaderName::from_static("x-ms-error-code"), v);
    }
    // Draft evaluation slots free up within the draft deadline.
    let busy = AttestError::PolicyBusy { capacity: 0 };
    if code == busy.code() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    resp
}

fn now_for(a: &Attestation) -> DateTime<Utc> {
    a.config.verification_time.unwrap_or_else(Utc::now)
}

fn has_bearer(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
}

/// Authenticate (and for management routes authorize `policies/manage`).
fn auth(
    st: &AppState,
    headers: &HeaderMap,
    ctx: &mut AttestCtx,
    manage: bool,
) -> Result<(), ApiError> {
    // Attestation routes take tokens for the attestation resource (https://attest.azure.net,
    // what the MAA SDKs ask for), never Key Vault tokens.
    let p = crate::app::authenticate_for(st, headers, AudienceFamily::Attestation)?;
    ctx.principal = Some(p.id.clone());
    if manage {
        ctx.action = Some(Action::PolicyManage.name());
        crate::app::authorize(st, &p, Action::PolicyManage, &Resource::Vault)?;
    }
    Ok(())
}

/// Attest and challenge routes: no token needed unless `require_token`; a token that is sent is
/// checked only when required (MAA clients send tokens of other issuers).
fn auth_attest(st: &AppState, headers: &HeaderMap, ctx: &mut AttestCtx) -> Result<(), ApiError> {
    if st.attestation.config.require_token {
        return auth(st, headers, ctx, false);
    }
    if has_bearer(headers)
        && let Ok(p) = crate::app::authenticate_for(st, headers, AudienceFamily::Attestation)
    {
        ctx.principal = Some(p.id);
    }
    Ok(())
}

fn token_reply(a: &enclava_attestation::Attested) -> Result<Reply, ApiError> {
    Reply::json(&json!({ "token": a.token }))
}

#[derive(Deserialize)]
struct TestBody {
    policy: String,
    /// The attest request body (MAA shape for MAA type names, else the native shape).
    request: Value,
}

fn policy_json(r: &PolicyRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// A `PUT /policies/{type}` body, understood: the policy text, the upload JWS as received (when
/// the body was one) and its verified signer (when signed).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PolicyBody {
    text: String,
    jws: Option<String>,
    signer: Option<PolicySigner>,
}

/// The policy of a `PUT /policies/{type}` body (an MAA policy JWS, `{"policy": TEXT}` or the text
/// itself). With policy signers in force (isolated mode) only a JWS signed by one of them is
/// accepted; a signed JWS is verified in every mode.
fn policy_text_of(
    body: &[u8],
    ty: &str,
    signers: &PolicySigners,
) -> Result<PolicyBody, AttestError> {
    let bad = |m: String| AttestError::InvalidPolicy {
        policy_type: ty.chars().take(64).collect(),
        reason: m,
    };
    let text = std::str::from_utf8(body)
        .map_err(|_| bad("expected UTF-8 text, found other bytes".into()))?
        .trim();
    if text.is_empty() {
        return Err(bad(
            "expected an MAA policy JWS, {\"policy\": TEXT} or the policy text, found an empty body"
                .into(),
        ));
    }
    let looks_jws = text.split('.').count() == 3
        && !text.contains(char::is_whitespace)
        && text.starts_with("ey");
    if looks_jws {
        let up = enclava_policy::maa::parse_policy_jws(text)
            .map_err(|e| bad(format!("invalid policy JWS: {e}")))?;
        let signer = signers.check(&up)?;
        return Ok(PolicyBody {
            text: up.policy_text,
            jws: Some(text.to_string()),
            signer,
        });
    }
    if !signers.is_empty() {
        return Err(AttestError::PolicySignatureRequired);
    }
    let plain = |text: String| PolicyBody {
        text,
        jws: None,
        signer: None,
    };
    if text.starts_with('{') {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "expected JSON {{\"policy\": TEXT}}, found invalid JSON ({e})"
            ))
        })?;
        return v
            .get("policy")
            .and_then(Value::as_str)
            .map(|p| plain(p.to_string()))
            .ok_or_else(|| bad("expected a JSON object with a string member \"policy\"".into()));
    }
    Ok(plain(text.to_string()))
}

/// A `POST /policies/{type}:reset` body: MAA's is a JWS over an empty payload (the SDKs send
/// `{"alg":"none"}` unsigned, or signed like a policy upload). With policy signers in force the
/// body must be such a JWS signed by one of them; otherwise any body that is not a JWS (none,
/// `{}`) is accepted as before, and a JWS is still verified. Returns the JWS as received and
/// its verified signer, when the body was a JWS.
fn reset_request_of(
    body: &[u8],
    signers: &PolicySigners,
) -> Result<Option<(String, Option<PolicySigner>)>, AttestError> {
    let Some(req) = enclava_attestation::SignedRequest::parse(body)? else {
        return if signers.is_empty() {
            Ok(None)
        } else {
            Err(AttestError::PolicySignatureRequired)
        };
    };
    let signer = signers.verify(&req)?;
    // A signed policy upload (or certificate change) is not a reset: only an empty payload is.
    let payload = req.payload_json()?;
    if !(payload.is_null() || payload.as_object().is_some_and(Map::is_empty)) {
        return Err(AttestError::InvalidPolicySignature(
            "expected a reset JWS over an empty payload (or null, {}), found a payload with content"
                .into(),
        ));
    }
    Ok(Some((req.jws, signer)))
}

/// A `POST /certificates:add` / `:remove` body: a JWS signed by a policy signer in force whose
/// payload names the certificate (`{"policyCertificate": {"kty": "RSA", "x5c": [...]}}`).
/// Returns the certificate (DER), the verified signer and the SHA-256 of the JWS (hex).
fn certificate_request_of(
    body: &[u8],
    signers: &PolicySigners,
) -> Result<(Vec<u8>, PolicySigner, String), AttestError> {
    let req = enclava_attestation::SignedRequest::parse(body)?.ok_or_else(|| {
        AttestError::InvalidPolicyCertificate(
            "expected a JWS (compact, or as a JSON string) signed by a policy signer, found another body"
                .into(),
        )
    })?;
    // Only a current signer may change the set: with none in force (AAD mode) there is no one,
    // and an unsigned request is never enough.
    if signers.is_empty() || req.alg == "none" {
        if req.alg != "none" {
            // Still verify, so a broken signature is reported as such.
            PolicySigners::default().verify(&req)?;
        }
        return Err(if req.alg == "none" {
            AttestError::PolicySignatureRequired
        } else {
            AttestError::UntrustedPolicySigner {
                cert_sha256: req
                    .x5c
                    .first()
                    .and_then(|c| {
                        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, c).ok()
                    })
                    .map(|d| hex::encode(sha2::Sha256::digest(d)))
                    .unwrap_or_default(),
            }
        });
    }
    let signer = signers
        .verify(&req)?
        .ok_or(AttestError::PolicySignatureRequired)?;
    let der = enclava_attestation::certificate_of_management_body(&req.payload_json()?)?;
    let sha = hex::encode(sha2::Sha256::digest(req.jws.as_bytes()));
    Ok((der, signer, sha))
}

/// Which API a `/certificates` request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificatesApi {
    /// MAA's policy management certificates (api-version a date: 2020-10-01, 2022-08-01,
    /// 2022-09-01-preview; or none).
    Maa,
    /// Key Vault certificates (api-version `7.x`, or a Key Vault date version such as
    /// 2025-07-01 / 2026-04-01, which the certificate SDKs send by default).
    KeyVault,
}

/// Tell MAA's `/certificates` from Key Vault's by `api-version`: Key Vault versions are
/// `MAJOR.MINOR` (7.0 to 7.6, `-preview` suffixes) or one of Key Vault's own date versions
/// ([`crate::apiversion::KNOWN`]); MAA's are other dates (2018-09-01-preview, 2020-10-01,
/// 2022-08-01, 2022-09-01-preview).
pub fn certificates_api(query: &[(String, String)]) -> CertificatesApi {
    let v = query
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.trim());
    match v {
        Some(v)
            if v.split('.').next().is_some_and(|m| {
                !m.is_empty() && m.len() <= 2 && m.bytes().all(|b| b.is_ascii_digit())
            }) && v.contains('.') =>
        {
            CertificatesApi::KeyVault
        }
        Some(v) if crate::apiversion::KNOWN.contains(&v.split("-preview").next().unwrap_or(v)) => {
            CertificatesApi::KeyVault
        }
        _ => CertificatesApi::Maa,
    }
}

/// The request, with the reference-value scope named by the `scope` query parameter (default
/// [`DEFAULT_SCOPE`]). The service refuses a scope that holds no reference sets, and the token
/// names the scope (`x-enclava-reference-scope`), so a relying party can require its own.
fn request_of(
    route_ty: Option<MaaType>,
    body: &[u8],
    query: &[(String, String)],
) -> Result<AttestRequest, AttestError> {
    let mut req = match route_ty {
        Some(t) => AttestRequest::from_maa_json(t, body)?,
        None => AttestRequest::from_native_json(body)?,
    };
    req.scope = query
        .iter()
        .find(|(k, _)| k == "scope")
        .map_or(DEFAULT_SCOPE, |(_, v)| v.as_str())
        .to_string();
    Ok(req)
}

/// Whether an attestation request runs on the async worker (the hot path: a fraction of a
/// millisecond of CPU, no I/O) rather than on the blocking pool. Requests that may carry a draft
/// policy (`draftPolicyForAttestation`: caller-written Rego, up to its deadline) never do. A
/// JSON key equal to that name either appears literally in the body or is spelled with a `\u`
/// escape, so a body with neither the name nor any backslash (MAA bodies are base64 and JSON
/// without escapes) certainly has no draft. Native requests that may carry a challenge `nonce`
/// (redeeming it is a database write) leave the worker too: their bodies carry `\n` escapes in
/// PEM text, so for them only a `\u` escape counts. The scans are cheap next to the attestation.
pub fn runs_on_worker(route: &AttestRoute, body: &[u8]) -> bool {
    const KEY: &[u8] = b"draftPolicyForAttestation";
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    match route {
        AttestRoute::Native => !contains(b"nonce") && !contains(b"\\u"),
        AttestRoute::Maa(_) => {
            !body.contains(&b'\\')
                && !body
                    .windows(KEY.len())
                    .any(|w| w.first() == Some(&b'd') && w == KEY)
        }
        _ => false,
    }
}

/// Run an attestation route (blocking context).
pub fn execute(
    st: &AppState,
    route: &AttestRoute,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    ctx: &mut AttestCtx,
) -> Result<Reply, ApiError> {
    let a = &st.attestation;
    match route {
        AttestRoute::Certs => {
            let svc = a.service(st)?;
            let jwks = svc.jwks().map_err(|e| attest_error(&e, ctx))?;
            Reply::json(&jwks)
        }
        AttestRoute::OpenIdConfig => {
            let svc = a.service(st)?;
            Reply::json(&svc.openid_configuration(&a.issuer))
        }
        AttestRoute::Challenge => {
            auth_attest(st, headers, ctx)?;
            let svc = a.service(st)?;
            let c = svc
                .challenge(now_for(a))
                .map_err(|e| attest_error(&e, ctx))?;
            Reply::json(&json!({
                "nonce": c.nonce,
                "expires_at": c.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "expires_in": (c.expires_at - now_for(a)).num_seconds(),
            }))
        }
        AttestRoute::Maa(t) => {
            auth_attest(st, headers, ctx)?;
            let svc = a.service(st)?;
            let req = request_of(Some(*t), body, query).map_err(|e| attest_error(&e, ctx))?;
            if req.draft_policy.is_some() {
                // A draft policy is a policy author's tool (it runs caller-written code): only a
                // caller allowed to manage policies may send one. MAA's SDKs always send a token.
                auth(st, headers, ctx, true)?;
            }
            let out = svc
                .attest(&req, now_for(a))
                .map_err(|e| attest_error(&e, ctx))?;
            set_detail(ctx, attested_detail(&out));
            token_reply(&out)
        }
        AttestRoute::Native => {
            auth_attest(st, headers, ctx)?;
            let svc = a.service(st)?;
            let req = request_of(None, body, query).map_err(|e| attest_error(&e, ctx))?;
            let out = svc
                .attest(&req, now_for(a))
                .map_err(|e| attest_error(&e, ctx))?;
            set_detail(ctx, attested_detail(&out));
            Reply::json(&json!({
                "token": out.token,
                "dry_run": out.dry_run,
                "policy": out.policy,
            }))
        }
        AttestRoute::Policy { op, ty, .. } => {
            auth(st, headers, ctx, true)?;
            let svc = a.service(st)?;
            let tee = policy_type(ty).map_err(|e| attest_error(&e, ctx))?;
            let who = ctx.principal.clone().unwrap_or_default();
            let now = now_for(a);
            let p = svc.policies();
            let err = |e: AttestError, ctx: &mut AttestCtx| attest_error(&e, ctx);
            match op {
                PolicyOp::Get => {
                    let r = p.get(tee).map_err(|e| err(e, ctx))?;
                    let token = svc.policy_token(&r, None, now).map_err(|e| err(e, ctx))?;
                    Reply::json(&json!({"token": token, "policy": policy_json(&r)}))
                }
                PolicyOp::Versions => {
                    let v = p.versions(tee).map_err(|e| err(e, ctx))?;
                    Reply::json(&json!({"value": v}))
                }
                PolicyOp::Set | PolicyOp::Reset => {
                    // The signers in force now: configured, with runtime changes applied.
                    let signers = p
                        .effective_signers(&a.config.policy_signers)
                        .map_err(|e| err(e, ctx))?;
                    let mut signed_by: Option<String> = None;
                    let (change, result, presented) = if *op == PolicyOp::Set {
                        let up = policy_text_of(body, ty, &signers).map_err(|e| err(e, ctx))?;
                        let change = match (up.signer, up.jws) {
                            (Some(signer), Some(jws)) => {
                                signed_by = Some(signer.cert_sha256.clone());
                                let signed = enclava_attestation::SignedPolicy {
                                    jws,
                                    signer: signer.jwk,
                                    signer_sha256: signer.cert_sha256,
                                };
                                p.set_signed(tee, &up.text, signed, &who, now)
                            }
                            (None, Some(jws)) => p.set_unsigned_jws(tee, &up.text, &jws, &who, now),
                            _ => p.set(tee, &up.text, &who, now),
                        }
                        .map_err(|e| err(e, ctx))?;
                        (change, enclava_attestation::PolicyResult::Updated, None)
                    } else {
                        let presented =
                            reset_request_of(body, &signers).map_err(|e| err(e, ctx))?;
                        if let Some((_, Some(s))) = &presented {
                            signed_by = Some(s.cert_sha256.clone());
                        }
                        (
                            p.reset(tee, &who, now).map_err(|e| err(e, ctx))?,
                            enclava_attestation::PolicyResult::Removed,
                            presented,
                        )
                    };
                    set_detail(
                        ctx,
                        format!(
                            "policy {} version {} {:?} hash {}{}",
                            change.policy_type,
                            change.version,
                            change.action,
                            change.hash,
                            signed_by
                                .as_deref()
                                .map(|s| format!(" signed-by {s}"))
                                .unwrap_or_default()
                        ),
                    );
                    let r = p.get(tee).map_err(|e| err(e, ctx))?;
                    let token = svc
                        .policy_result_token(
                            &r,
                            Some(result),
                            presented
                                .as_ref()
                                .map(|(jws, s)| (jws.as_str(), s.as_ref().map(|s| &s.jwk))),
                            now,
                        )
                        .map_err(|e| err(e, ctx))?;
                    Reply::json(&json!({
                        "token": token,
                        "policy": policy_json(&r),
                        "change": change,
                    }))
                }
                PolicyOp::Test => {
                    let b: TestBody = serde_json::from_slice(body).map_err(|e| {
                        ApiError::bad_parameter(format!(
                            "invalid test body: expected {{\"policy\": TEXT, \"request\": ATTEST_BODY}} ({e})"
                        ))
                    })?;
                    let maa = MaaType::from_name(ty).ok();
                    let req_body = serde_json::to_vec(&b.request).unwrap_or_default();
                    let req = request_of(maa, &req_body, query).map_err(|e| err(e, ctx))?;
                    if req.tee() != tee && maa.is_none() {
                        return Err(ApiError::bad_parameter(format!(
                            "the request's evidence is {}, expected {tee} (the policy type of this route)",
                            req.tee()
                        )));
                    }
                    let r = svc
                        .test_policy(&b.policy, &req, now)
                        .map_err(|e| err(e, ctx))?;
                    set_detail(
                        ctx,
                        format!(
                            "dry run allowed={} failed={}",
                            r.decision.allowed,
                            r.decision.failed.len()
                        ),
                    );
                    Reply::json(&json!({
                        "allowed": r.decision.allowed,
                        "failed": r.decision.failed,
                        "claims": r.would_be_claims,
                        "token": r.unsigned_token,
                    }))
                }
            }
        }
        AttestRoute::Reference {
            op, scope, name, ..
        } => {
            auth(st, headers, ctx, true)?;
            let svc = a.service(st)?;
            let who = ctx.principal.clone().unwrap_or_default();
            let now = now_for(a);
            let p = svc.policies();
            let name = name.as_deref().unwrap_or_default();
            let err = |e: AttestError, ctx: &mut AttestCtx| attest_error(&e, ctx);
            match op {
                RefOp::List => {
                    let v = p.stored_references(scope).map_err(|e| err(e, ctx))?;
                    Reply::json(&json!({"scope": scope, "value": v}))
                }
                RefOp::Get => match p.get_reference(scope, name).map_err(|e| err(e, ctx))? {
                    Some(r) => Reply::json(&r),
                    None => Err(ApiError::not_found(format!(
                        "no reference values {name:?} in scope {scope:?}"
                    ))),
                },
                RefOp::Versions => {
                    let v = p.reference_versions(scope, name).map_err(|e| err(e, ctx))?;
                    Reply::json(&json!({"value": v}))
                }
                RefOp::Set => {
                    let v: Value = serde_json::from_slice(body).map_err(|e| {
                        ApiError::bad_parameter(format!(
                            "invalid reference values: expected a JSON value ({e})"
                        ))
                    })?;
                    let c = p
                        .set_reference(scope, name, v, &who, now)
                        .map_err(|e| err(e, ctx))?;
                    set_detail(
                        ctx,
                        format!("reference values version {} hash {}", c.version, c.hash),
                    );
                    Reply::json(&c)
                }
                RefOp::Delete => {
                    let c = p
                        .delete_reference(scope, name, &who, now)
                        .map_err(|e| err(e, ctx))?;
                    set_detail(
                        ctx,
                        format!("reference values deleted, version {}", c.version),
                    );
                    Reply::json(&c)
                }
            }
        }
        AttestRoute::PolicyCertificates(op) => {
            if certificates_api(query) == CertificatesApi::KeyVault {
                // `GET /certificates` with a Key Vault api-version is re-routed to the Key Vault
                // listing before it gets here (`certs::key_vault_or_maa`); what is left
                // (`certificates:add` / `:remove`) has no Key Vault meaning.
                return Err(ApiError::not_found(
                    "no Key Vault operation at this path: /certificates:add and /certificates:remove are MAA's policy management certificate operations (use an MAA api-version: 2020-10-01, 2022-08-01, 2022-09-01-preview)",
                ));
            }
            auth(st, headers, ctx, true)?;
            let svc = a.service(st)?;
            let p = svc.policies();
            let now = now_for(a);
            let err = |e: AttestError, ctx: &mut AttestCtx| attest_error(&e, ctx);
            let signers = p
                .effective_signers(&a.config.policy_signers)
                .map_err(|e| err(e, ctx))?;
            let mut claims = Map::new();
            match op {
                CertOp::Get => {
                    let keys: Vec<Value> = signers
                        .certs()
                        .iter()
                        .filter_map(|der| enclava_attestation::signer_of(der).ok())
                        .map(|s| s.jwk)
                        .collect();
                    claims.insert("x-ms-policy-certificates".into(), json!({ "keys": keys }));
                }
                CertOp::Add | CertOp::Remove => {
                    let add = *op == CertOp::Add;
                    let (der, signer, request_sha256) =
                        certificate_request_of(body, &signers).map_err(|e| err(e, ctx))?;
                    let who = ctx.principal.clone().unwrap_or_default();
                    let change = p
                        .change_signers(
                            &a.config.policy_signers,
                            &der,
                            add,
                            &request_sha256,
                            &signer.cert_sha256,
                            &who,
                            now,
                        )
                        .map_err(|e| err(e, ctx))?;
                    set_detail(
                        ctx,
                        format!(
                            "policy signer {} {} {} version {} signed-by {}",
                            if add { "add" } else { "remove" },
                            change.cert_sha256,
                            change.result,
                            change
                                .version
                                .map(|v| v.to_string())
                                .unwrap_or_else(|| "unchanged".into()),
                            signer.cert_sha256
                        ),
                    );
                    claims.insert(
                        "x-ms-certificate-thumbprint".into(),
                        change.thumbprint.into(),
                    );
                    claims.insert(
                        "x-ms-policycertificates-result".into(),
                        change.result.into(),
                    );
                }
            }
            let token = svc
                .management_token(&claims, now)
                .map_err(|e| err(e, ctx))?;
            Reply::json(&json!({ "token": token }))
        }
        AttestRoute::Rotate | AttestRoute::RotateServiceKey(_) => {
            use crate::service_keys::ServiceKeyKind;
            let kind = match route {
                AttestRoute::RotateServiceKey(k) => *k,
                _ => ServiceKeyKind::Attestation,
            };
            // An operator action of its own (Administrator only), not policy management.
            let p = crate::app::authenticate(st, headers)?;
            ctx.principal = Some(p.id.clone());
            ctx.action = Some(Action::ServiceKeyRotate.name());
            crate::app::authorize(st, &p, Action::ServiceKeyRotate, &Resource::Vault)?;
            let kid = a.rotate(st, kind)?;
            set_detail(
                ctx,
                format!("{} service key now version {kid}", kind.name()),
            );
            match kind {
                ServiceKeyKind::Attestation => {
                    let svc = a.service(st)?;
                    let jwks = svc.jwks().map_err(|e| attest_error(&e, ctx))?;
                    Reply::json(&json!({"key": kind.name(), "kid": kid, "jwks": jwks}))
                }
                ServiceKeyKind::Release => {
                    let signer = crate::release::release_signer(st).map_err(|e| {
                        tracing::error!(error = %e, "release signing key");
                        crate::service_keys::unavailable(
                            "the release signing key is unavailable; see the server log",
                        )
                    })?;
                    let x5c = signer.x5c().map(<[String]>::to_vec).unwrap_or_default();
                    Reply::json(&json!({"key": kind.name(), "kid": kid, "x5c": x5c}))
                }
            }
        }
    }
}

fn attested_detail(a: &enclava_attestation::Attested) -> String {
    let tee = a
        .claims
        .get("x-enclava-tee")
        .and_then(Value::as_str)
        .unwrap_or("-");
    let jti = a.claims.get("jti").and_then(Value::as_str).unwrap_or("-");
    format!(
        "tee {tee} policy {}@{} jti {jti}{}",
        a.policy.policy_type,
        a.policy
            .version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "draft".into()),
        if a.dry_run { " dry-run" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Option<Result<AttestRoute, RouteError>> {
        let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
        route(&m, &segs)
    }

    #[test]
    fn routes() {
        assert_eq!(
            r(Method::POST, "/attest/SevSnpVm"),
            Some(Ok(AttestRoute::Maa(MaaType::SevSnpVm)))
        );
        assert_eq!(
            r(Method::POST, "/attest/sgxenclave"),
            Some(Ok(AttestRoute::Maa(MaaType::SgxEnclave)))
        );
        assert_eq!(
            r(Method::POST, "/attest/native"),
            Some(Ok(AttestRoute::Native))
        );
        assert_eq!(r(Method::POST, "/attest/Nope"), None);
        assert_eq!(r(Method::GET, "/certs/"), Some(Ok(AttestRoute::Certs)));
        assert!(matches!(
            r(Method::POST, "/certs"),
            Some(Err(RouteError::MethodNotAllowed { .. }))
        ));
        assert!(matches!(
            r(Method::POST, "/policies/SevSnpVm:reset"),
            Some(Ok(AttestRoute::Policy {
                op: PolicyOp::Reset,
                ..
            }))
        ));
        assert!(matches!(
            r(Method::PUT, "/policies/TdxVm"),
            Some(Ok(AttestRoute::Policy {
                op: PolicyOp::Set,
                ..
            }))
        ));
        assert_eq!(
            r(Method::GET, "/.well-known/openid-configuration"),
            Some(Ok(AttestRoute::OpenIdConfig))
        );
        assert_eq!(r(Method::GET, "/t/.well-known/openid-configuration"), None);
    }

    #[test]
    fn settings_resolve() {
        let c = AttestationSettings::default().resolve(false).unwrap();
        // MAA's algorithm by default (the Azure SDKs cannot validate ES256 tokens).
        assert_eq!(c.alg, Alg::RS256);
        assert_eq!(AttestationConfig::default().alg, Alg::RS256);
        assert!(!c.allow_sim && !c.require_token && c.verification_time.is_none());
        assert!(
            AttestationSettings::default()
                .resolve(true)
                .unwrap()
                .allow_sim
        );
        let e = AttestationSettings {
            alg: Some("HS256".into()),
            ..Default::default()
        }
        .resolve(false)
        .unwrap_err();
        assert!(e.to_string().contains("HS256"), "{e}");
        let e = AttestationSettings {
            verification_time: Some("yesterday".into()),
            ..Default::default()
        }
        .resolve(true)
        .unwrap_err();
        assert!(e.to_string().contains("yesterday"), "{e}");
        // Only --dev may move the verification clock: a valid time is refused otherwise.
        let moved = AttestationSettings {
            verification_time: Some("2024-06-01T00:00:00Z".into()),
            ..Default::default()
        };
        let e = moved.clone().resolve(false).unwrap_err();
        assert!(
            e.to_string().contains("attestation.verification_time")
                && e.to_string().contains("--dev"),
            "{e}"
        );
        assert_eq!(
            moved.resolve(true).unwrap().verification_time,
            Some(chrono::DateTime::from_timestamp(1_717_200_000, 0).unwrap())
        );
        let s =
            AttestationSettings::from_env_var(None, "ENCLAVA_ATTESTATION_ALG", "ES256").unwrap();
        assert_eq!(s.unwrap().resolve(false).unwrap().alg, Alg::ES256);
    }

    #[test]
    fn requests_that_may_carry_a_draft_leave_the_worker() {
        let maa = AttestRoute::Maa(MaaType::SevSnpVm);
        assert!(runs_on_worker(
            &maa,
            br#"{"report": "eyJhIjoxfQ", "nonce": "n"}"#
        ));
        assert!(!runs_on_worker(
            &maa,
            br#"{"report": "x", "draftPolicyForAttestation": "p"}"#
        ));
        // The same key spelled with an escape.
        assert!(!runs_on_worker(
            &maa,
            br#"{"report": "x", "draft\u0050olicyForAttestation": "p"}"#
        ));
        assert!(runs_on_worker(&AttestRoute::Native, b"{}"));
        assert!(runs_on_worker(
            &AttestRoute::Native,
            br#"{"tee": "sim", "certs": "-----BEGIN X-----\nAA\n"}"#
        ));
        // A challenge nonce (plain or escaped key) is redeemed off the worker.
        assert!(!runs_on_worker(
            &AttestRoute::Native,
            br#"{"tee": "sim", "nonce": "n"}"#
        ));
        assert!(!runs_on_worker(
            &AttestRoute::Native,
            br#"{"tee": "sim", "n\u006fnce": "n"}"#
        ));
        assert!(!runs_on_worker(&AttestRoute::Certs, b""));
    }

    #[test]
    fn policy_bodies() {
        let text = "version=1.0; authorizationrules { => permit(); };";
        let none = PolicySigners::default();
        let plain = |jws: Option<String>| PolicyBody {
            text: text.to_string(),
            jws,
            signer: None,
        };
        assert_eq!(
            policy_text_of(text.as_bytes(), "t", &none).unwrap(),
            plain(None)
        );
        let jws = enclava_policy::maa::unsigned_policy_jws(text);
        // The JWS is kept as received (its hash is MAA's x-ms-policy-token-hash).
        assert_eq!(
            policy_text_of(format!(" {jws}\n").as_bytes(), "t", &none).unwrap(),
            plain(Some(jws.clone()))
        );
        let j = json!({"policy": text}).to_string();
        assert_eq!(
            policy_text_of(j.as_bytes(), "t", &none).unwrap(),
            plain(None)
        );
        let e = policy_text_of(b"  ", "t", &none).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("invalid_policy", 400));
    }

    #[test]
    fn certificates_are_told_apart_by_api_version() {
        let q = |v: &str| vec![("api-version".to_string(), v.to_string())];
        for v in ["2020-10-01", "2022-08-01", "2022-09-01-preview"] {
            assert_eq!(certificates_api(&q(v)), CertificatesApi::Maa, "{v}");
        }
        assert_eq!(certificates_api(&[]), CertificatesApi::Maa);
        for v in [
            "7.0",
            "7.4",
            "7.6",
            "7.6-preview.1",
            "7.5-preview.1",
            "2025-07-01",
            "2026-04-01",
        ] {
            assert_eq!(certificates_api(&q(v)), CertificatesApi::KeyVault, "{v}");
        }
        assert_eq!(
            r(Method::GET, "/certificates"),
            Some(Ok(AttestRoute::PolicyCertificates(CertOp::Get)))
        );
        assert_eq!(
            r(Method::POST, "/certificates:remove"),
            Some(Ok(AttestRoute::PolicyCertificates(CertOp::Remove)))
        );
        assert!(matches!(
            r(Method::GET, "/certificates:add"),
            Some(Err(RouteError::MethodNotAllowed { .. }))
        ));
        // Key Vault's certificate paths are not ours.
        assert_eq!(r(Method::GET, "/certificates/c1"), None);
    }
}
