//! The attestation service: request -> evidence -> claims -> binding -> appraisal -> token.
//!
//! [`AttestationService::attest`] runs, in order:
//! 1. the challenge (native requests with a `nonce`): redeemed once, across every process
//!    sharing the store ([`crate::challenge`]);
//! 2. the sim gate: `sim` evidence is denied (`sim_disabled`) unless [`ServiceConfig::allow_sim`];
//! 3. evidence verification with the service's [`SnpVerifier`] / [`DcapVerifier`] (their caches
//!    stay warm across requests); collateral comes from the request or, when it carries none (MAA
//!    requests never do), from the [`CollateralSource`], if one is configured; failure is
//!    [`AttestError::Evidence`] with the verifier's `failed_check` code;
//! 4. the binding checks ([`crate::binding`]);
//! 5. appraisal: the active policy of the evidence's type (or the request's draft policy) over the
//!    policy input `{claims, runtime_data, init_data, reference}` (Rego) or over the MAA-named
//!    claims (MAA policy language); a denial is [`AttestError::Denied`] naming every failed rule;
//! 6. the token: the MAA-named claims, `nonce`, `x-ms-policy-hash`, the policy's issued claims
//!    (never overriding ours), `x-enclava-policy` {type, version, hash}, an EAR appraisal
//!    (`x-enclava-ear`), `x-enclava-verification-time` {time, moved: true} when the service
//!    verifies on a moved clock ([`ServiceConfig::clock_moved`], development only), signed with
//!    the current signer.
//!
//! # Dry runs
//! A request with `draftPolicyForAttestation`, and [`AttestationService::test_policy`], evaluate
//! the draft instead of the active policy and return an **unsigned** token (`alg: "none"`, header
//! and payload `x-enclava-dry-run: true`, empty signature) that no verifier accepts (enclava-token
//! refuses `alg: none` outright). A dry run checks a challenge without consuming it.
//!
//! Draft policies are untrusted text, so a dry run is bounded three ways: the draft is compiled
//! first, before any evidence is looked at, and refused if its source exceeds the bounds of
//! `enclava_policy::rego::limits`; compiling and evaluating share one deadline
//! ([`DRAFT_DEADLINE`]) that regorus's execution timer enforces; and at most
//! [`ServiceConfig::max_concurrent_drafts`] dry runs run at once (over that,
//! [`AttestError::PolicyBusy`] at once, never a queue). The server runs dry runs on its blocking
//! pool, never on its async workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use enclava_evidence::dcap::{Collateral, DcapVerifier};
use enclava_evidence::error::FailedCheck;
use enclava_evidence::snp::{Endorsements, SnpVerifier};
use enclava_evidence::{Claims, Tee};
use enclava_policy::{Decision, FailedRule};
use enclava_store::Store;
use enclava_token::ear::{Appraisal, EMBED_CLAIM, PolicyOutcome, VerifierId, ear_claims};
use enclava_token::maa::DataType;
use enclava_token::{Alg, JtiSource, Jwks, REGISTERED_CLAIMS, TokenOptions, TokenSigner};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::Digest;

use crate::binding;
use crate::challenge::{self, Challenge, ChallengeStore};
use crate::error::AttestError;
use crate::policies::PolicyStore;
use crate::request::{AttestRequest, Evidence};

/// Rule name of the sim gate.
pub const RULE_SIM_DISABLED: &str = "sim_disabled";
/// Claim marking a dry-run token (header and payload).
pub const DRY_RUN_CLAIM: &str = "x-enclava-dry-run";
/// Claim naming the policy that admitted the evidence.
pub const POLICY_CLAIM: &str = "x-enclava-policy";
/// Claim naming the reference-value scope the evidence was appraised against.
pub const SCOPE_CLAIM: &str = "x-enclava-reference-scope";
/// How long one dry run may spend compiling and evaluating its draft policy. Shorter than the
/// stored policies' limit: a draft is untrusted, and evaluation memory grows with time.
pub const DRAFT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);
/// Default for [`ServiceConfig::max_concurrent_drafts`].
pub const DEFAULT_MAX_CONCURRENT_DRAFTS: usize = 2;
/// Claim present only on tokens issued under a moved verification clock: `{"time": <the moved
/// time, RFC 3339>, "moved": true}`. A relying party that sees it knows the evidence was not
/// checked against the real time (expired collateral may have passed).
pub const VERIFICATION_TIME_CLAIM: &str = "x-enclava-verification-time";

/// Service settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `iss` of every token: the service's base URL.
    pub issuer: String,
    /// Token lifetime (1 s to 24 h).
    pub token_lifetime: Duration,
    /// Whether simulated evidence may be appraised at all (default false). Even when true, the
    /// default `sim` policy denies it: a policy must accept it explicitly.
    pub allow_sim: bool,
    pub challenge_ttl: Duration,
    /// How many previous signing keys [`AttestationService::rotate_signer`] keeps in the JWKS.
    pub previous_keys_kept: usize,
    /// Most dry runs (draft policies) evaluated at once; more are refused with
    /// [`AttestError::PolicyBusy`]. Each holds a thread for up to [`DRAFT_DEADLINE`].
    pub max_concurrent_drafts: usize,
    /// The caller verifies as of a time other than the clock (a development server's
    /// `attestation.verification_time`): every token then carries [`VERIFICATION_TIME_CLAIM`].
    pub clock_moved: bool,
}

impl ServiceConfig {
    pub fn new(issuer: impl Into<String>) -> ServiceConfig {
        ServiceConfig {
            issuer: issuer.into(),
            token_lifetime: Duration::seconds(enclava_token::DEFAULT_LIFETIME_SECONDS),
            allow_sim: false,
            challenge_ttl: Duration::seconds(challenge::DEFAULT_TTL_SECONDS),
            previous_keys_kept: 2,
            max_concurrent_drafts: DEFAULT_MAX_CONCURRENT_DRAFTS,
            clock_moved: false,
        }
    }

    /// Check the settings (the server calls this at startup): a non-empty issuer, a token
    /// lifetime of 1 s to 24 h, a positive challenge TTL.
    pub fn validate(&self) -> Result<(), AttestError> {
        let bad = |m: String| Err(AttestError::Config(m));
        if self.issuer.trim().is_empty() {
            return bad("issuer: expected the service's base URL, found an empty string".into());
        }
        let life = self.token_lifetime.num_seconds();
        if !(1..=enclava_token::MAX_LIFETIME_SECONDS).contains(&life) {
            return bad(format!(
                "token_lifetime: expected 1 to {} seconds, found {life}",
                enclava_token::MAX_LIFETIME_SECONDS
            ));
        }
        if self.max_concurrent_drafts == 0 {
            return bad(
                "max_concurrent_drafts: expected at least 1, found 0 (drafts would always be refused)"
                    .into(),
            );
        }
        if self.challenge_ttl.num_seconds() < 1 {
            return bad(format!(
                "challenge_ttl: expected at least 1 s, found {} s",
                self.challenge_ttl.num_seconds()
            ));
        }
        Ok(())
    }
}

/// Where collateral comes from when a request carries none (an Intel PCS / AMD KDS cache).
pub trait CollateralSource: Send + Sync {
    /// DCAP collateral for a TDX or SGX quote (for azure-tdx: the TD quote). Shared, not copied:
    /// the same collateral serves every quote of a platform.
    fn dcap_collateral(&self, tee: Tee, quote: &[u8]) -> Option<Arc<Collateral>>;
    /// SEV-SNP endorsements (VCEK chain, CRLs) for a report that came without certificates.
    fn snp_endorsements(&self, _report: &[u8]) -> Option<Endorsements> {
        None
    }
    /// AMD CRLs (DER) for a report whose request brought certificates but no CRL (MAA requests
    /// and Azure HCL evidence never carry one), so that revocation can still be checked. CRLs of
    /// other products are harmless: the verifier ignores CRLs not issued by the report's chain.
    fn snp_crls(&self, _report: &[u8]) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

/// `x-ms-policy-result` of a policy token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyResult {
    Updated,
    Removed,
}

impl PolicyResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyResult::Updated => "Updated",
            PolicyResult::Removed => "Removed",
        }
    }
}

/// Which policy appraised the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    pub policy_type: String,
    /// 0: the built-in default; `None`: a draft.
    pub version: Option<u64>,
    pub builtin: bool,
    pub hash: String,
}

/// A successful attestation.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The signed token (unsigned `alg: none` for a dry run).
    pub token: String,
    /// The token's payload.
    pub claims: Map<String, Value>,
    pub decision: Decision,
    pub policy: PolicyRef,
    pub dry_run: bool,
}

/// The result of a policy dry run.
#[derive(Debug, Clone)]
pub struct PolicyTestResult {
    pub decision: Decision,
    /// The payload the token would carry (with `x-enclava-dry-run`).
    pub would_be_claims: Map<String, Value>,
    /// An unsigned (`alg: none`) token of those claims: unusable by design.
    pub unsigned_token: String,
}

struct Signers {
    current: Arc<dyn TokenSigner>,
    previous: Vec<Arc<dyn TokenSigner>>,
}

/// The attestation service (sync; the server wraps it).
pub struct AttestationService {
    config: ServiceConfig,
    /// Dry runs in progress (see [`ServiceConfig::max_concurrent_drafts`]).
    drafts_running: AtomicUsize,
    policies: PolicyStore,
    challenges: ChallengeStore,
    signers: RwLock<Signers>,
    snp: SnpVerifier,
    dcap: DcapVerifier,
    collateral: Option<Arc<dyn CollateralSource>>,
    /// RIMs for GPU evidence whose request carries none (the server's RIM directory).
    rims: Option<Arc<dyn crate::gpu::RimSource>>,
    /// Verified NVIDIA chain links and RIMs, kept across requests.
    gpu: crate::gpu::GpuVerifier,
}

impl std::fmt::Debug for AttestationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationService")
            .field("config", &self.config)
            .field("snp", &self.snp)
            .field("dcap", &self.dcap)
            .finish_non_exhaustive()
    }
}

enum Appraiser<'a> {
    Active,
    /// A draft compiled by [`compile_draft`], its text (for the hash) and the shared deadline.
    Draft(&'a CompiledDraft, &'a str, Instant),
}

/// A compiled draft policy of either language.
enum CompiledDraft {
    Rego(Box<enclava_policy::AppraisalPolicy>),
    Maa(enclava_policy::MaaPolicy),
}

/// Compile a draft policy (language detected as for stored policies) within `deadline`. The Rego
/// source bounds are checked before regorus parses anything.
fn compile_draft(
    policy_type: &str,
    text: &str,
    deadline: Instant,
) -> Result<CompiledDraft, AttestError> {
    use crate::policies::PolicyLanguage;
    let invalid = |e| AttestError::from_policy(policy_type, e, false);
    match PolicyLanguage::detect(text) {
        PolicyLanguage::Rego => {
            enclava_policy::AppraisalPolicy::compile_until(policy_type, text, deadline)
                .map(|p| CompiledDraft::Rego(Box::new(p)))
                .map_err(invalid)
        }
        PolicyLanguage::Maa => enclava_policy::MaaPolicy::parse(text)
            .map(CompiledDraft::Maa)
            .map_err(invalid),
    }
}

/// One of the [`ServiceConfig::max_concurrent_drafts`] dry-run slots, released on drop.
struct DraftSlot<'a>(&'a AtomicUsize);

impl<'a> DraftSlot<'a> {
    /// Take a slot if one is free; never waits.
    fn try_take(running: &'a AtomicUsize, capacity: usize) -> Result<DraftSlot<'a>, AttestError> {
        running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .map(|_| DraftSlot(running))
            .map_err(|_| AttestError::PolicyBusy { capacity })
    }
}

impl Drop for DraftSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A front end's check of verified claims: returns the extra token claims (see
/// [`Service::attest_checked`]).
pub type FrontEndCheck<'a> = dyn FnMut(&Claims) -> Result<Map<String, Value>, AttestError> + 'a;

struct Appraised {
    token_claims: Map<String, Value>,
    /// What a front end's check ([`Service::attest_checked`]) returned.
    extra: Map<String, Value>,
    decision: Decision,
    policy: PolicyRef,
}

fn evidence_err<E: FailedCheck + std::fmt::Display>(e: E) -> AttestError {
    AttestError::Evidence {
        failed_check: e.failed_check(),
        reason: e.to_string(),
    }
}

/// Runtime / init-time data as the policy input sees it: the JSON value for `dataType` JSON (when
/// it parses), else the base64url string of the bytes; null when absent.
fn data_input(d: Option<&enclava_token::maa::AttestData>) -> Value {
    match d {
        None => Value::Null,
        Some(d) if d.data_type == DataType::Json => serde_json::from_slice(&d.data)
            .unwrap_or_else(|_| Value::String(URL_SAFE_NO_PAD.encode(&d.data))),
        Some(d) => Value::String(URL_SAFE_NO_PAD.encode(&d.data)),
    }
}

impl AttestationService {
    /// Challenges are MAC'd under a random key of this instance until
    /// [`AttestationService::with_challenge_key`] sets a shared one, and redeemed into `store`.
    pub fn new(
        store: Arc<dyn Store>,
        signer: Arc<dyn TokenSigner>,
        config: ServiceConfig,
    ) -> AttestationService {
        AttestationService {
            challenges: ChallengeStore::with_random_key(config.challenge_ttl, store.clone()),
            drafts_running: AtomicUsize::new(0),
            config,
            policies: PolicyStore::new(store),
            signers: RwLock::new(Signers {
                current: signer,
                previous: Vec::new(),
            }),
            snp: SnpVerifier::new(),
            dcap: DcapVerifier::new(),
            collateral: None,
            rims: None,
            gpu: crate::gpu::GpuVerifier::new(),
        }
    }

    /// Look up the RIMs of GPU evidence in `source` when the request does not carry them.
    pub fn with_rim_source(mut self, source: Arc<dyn crate::gpu::RimSource>) -> Self {
        self.rims = Some(source);
        self
    }

    /// MAC challenges under `key` and record redeemed ones in `redeemed` (the server: a key
    /// derived from the vault root and the shared database, so that every process on that
    /// database accepts each other's challenges exactly once).
    pub fn with_challenge_key(mut self, key: &[u8; 32], redeemed: Arc<dyn Store>) -> Self {
        self.challenges = ChallengeStore::new(key, self.config.challenge_ttl, redeemed);
        self
    }

    /// Authenticate stored policies and reference values with `keys` (derived from the vault
    /// root after unseal; see [`crate::integrity`]). Without them stored rows are refused.
    pub fn with_row_keys(mut self, keys: Arc<crate::integrity::PolicyRowKeys>) -> Self {
        self.policies = self.policies.with_row_keys(keys);
        self
    }

    /// Use `source` for collateral a request does not carry.
    pub fn with_collateral_source(mut self, source: Arc<dyn CollateralSource>) -> Self {
        self.collateral = Some(source);
        self
    }

    /// Previous signing keys still published in the JWKS (newest first).
    pub fn with_previous_signers(self, previous: Vec<Arc<dyn TokenSigner>>) -> Self {
        if let Ok(mut s) = self.signers.write() {
            s.previous = previous;
        }
        self
    }

    /// Make `signer` current; the old current key stays in the JWKS (at most
    /// `previous_keys_kept` previous keys).
    pub fn rotate_signer(&self, signer: Arc<dyn TokenSigner>) {
        let mut s = self.signers.write().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::replace(&mut s.current, signer);
        s.previous.insert(0, old);
        s.previous.truncate(self.config.previous_keys_kept);
    }

    fn signer(&self) -> Arc<dyn TokenSigner> {
        let s = self.signers.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&s.current)
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Policies and reference values.
    pub fn policies(&self) -> &PolicyStore {
        &self.policies
    }

    pub fn challenges(&self) -> &ChallengeStore {
        &self.challenges
    }

    /// Issue a challenge nonce for the native route.
    pub fn challenge(&self, now: DateTime<Utc>) -> Result<Challenge, AttestError> {
        self.challenges.issue(now)
    }

    /// The request's own DCAP collateral, else the collateral source's (kept alive in `keep`).
    fn dcap_collateral<'a>(
        &self,
        tee: Tee,
        given: &'a Option<Box<Collateral>>,
        quote: &[u8],
        keep: &'a mut Option<Arc<Collateral>>,
    ) -> Option<&'a Collateral> {
        if let Some(c) = given {
            return Some(c);
        }
        *keep = self
            .collateral
            .as_deref()
            .and_then(|s| s.dcap_collateral(tee, quote));
        keep.as_deref()
    }

    /// Verify evidence into claims (no binding, no policy).
    pub fn verify_evidence(
        &self,
        evidence: &Evidence,
        now: DateTime<Utc>,
    ) -> Result<Claims, AttestError> {
        self.verify_evidence_keeping(evidence, now, &mut None)
    }

    /// [`Self::verify_evidence`], leaving the DCAP collateral it looked up in the collateral
    /// source (if it did) in `fetched`, so the appraisal reuses it for the token's collateral
    /// claims instead of looking it up a second time.
    fn verify_evidence_keeping(
        &self,
        evidence: &Evidence,
        now: DateTime<Utc>,
        fetched: &mut Option<Arc<Collateral>>,
    ) -> Result<Claims, AttestError> {
        let source = self.collateral.as_deref();
        match evidence {
            Evidence::Snp {
                report,
                certs_der,
                crls_der,
                ..
            } => {
                let mut end = Endorsements {
                    certs_der: certs_der.clone(),
                    crls_der: crls_der.clone(),
                };
                if end.certs_der.is_empty()
                    && let Some(e) = source.and_then(|s| s.snp_endorsements(report))
                {
                    end = e;
                }
                if end.crls_der.is_empty()
                    && let Some(s) = source
                {
                    end.crls_der = s.snp_crls(report);
                }
                self.snp.verify(report, &end, now).map_err(evidence_err)
            }
            Evidence::Tdx { quote, collateral } => {
                let c = self.dcap_collateral(Tee::Tdx, collateral, quote, fetched);
                self.dcap.verify_tdx(quote, c, now).map_err(evidence_err)
            }
            Evidence::Sgx { quote, collateral } => {
                let c = self.dcap_collateral(Tee::Sgx, collateral, quote, fetched);
                self.dcap.verify_sgx(quote, c, now).map_err(evidence_err)
            }
            Evidence::AzureSnp {
                evidence,
                certs_der,
                crls_der,
            } => {
                let mut end = Endorsements {
                    certs_der: certs_der.clone(),
                    crls_der: crls_der.clone(),
                };
                if end.crls_der.is_empty()
                    && let Some(s) = source
                    && let Ok(hcl) = enclava_evidence::azure::parse_hcl_report(&evidence.hcl_report)
                {
                    end.crls_der = s.snp_crls(&hcl.hardware_report);
                }
                enclava_evidence::azure::verify_snp(evidence, &end, None, now).map_err(evidence_err)
            }
            Evidence::AzureTdx {
                evidence,
                collateral,
            } => {
                let td_quote = evidence.td_quote.as_deref().unwrap_or_default();
                let c = self.dcap_collateral(Tee::AzureTdx, collateral, td_quote, fetched);
                enclava_evidence::azure::verify_tdx(evidence, c, None, now).map_err(evidence_err)
            }
            Evidence::Sim { evidence } => {
                enclava_evidence::sim::verify(evidence, now).map_err(evidence_err)
            }
            Evidence::Sample { evidence } => {
                enclava_evidence::sample::verify(evidence).map_err(evidence_err)
            }
        }
    }

    fn appraise(
        &self,
        req: &AttestRequest,
        now: DateTime<Utc>,
        appraiser: Appraiser<'_>,
        check: Option<&mut FrontEndCheck<'_>>,
    ) -> Result<Appraised, AttestError> {
        let tee = req.tee();
        // CoCo's `sample` TEE is a simulator too: the same gate.
        if matches!(tee, Tee::Sim | Tee::Sample) && !self.config.allow_sim {
            return Err(AttestError::Denied {
                failed: vec![FailedRule::new(
                    RULE_SIM_DISABLED,
                    "claims.tee",
                    "hardware evidence (simulated evidence is disabled on this service)",
                    tee.as_str(),
                )],
            });
        }
        let mut fetched: Option<Arc<Collateral>> = None;
        let claims = self.verify_evidence_keeping(&req.evidence, now, &mut fetched)?;
        // A front end's own checks see the claims of this one verification, before appraisal.
        let extra = match check {
            Some(c) => c(&claims)?,
            None => Map::new(),
        };
        let mut token_claims = binding::bind(
            &claims,
            req.runtime_data.as_ref(),
            req.init_time_data.as_ref(),
            req.challenge.as_deref(),
        )?;

        // Composite attestation: every GPU / NVSwitch verifies (or the request fails naming the
        // device and check), its nonce is bound to the runtime data the CPU evidence binds, and
        // it is in CC mode; the last two are denials naming the rule (see crate::gpu).
        let devices = match &req.gpu {
            None => Vec::new(),
            Some(g) => {
                let verified = self.gpu.verify(g, self.rims.as_deref(), now)?;
                let (devices, failed) = crate::gpu::appraise(
                    verified,
                    req.runtime_data.as_ref().map(|d| d.data.as_slice()),
                );
                if !failed.is_empty() {
                    return Err(AttestError::Denied { failed });
                }
                token_claims.insert(
                    crate::gpu::DEVICES_CLAIM.into(),
                    Value::Array(devices.iter().map(crate::gpu::device_json).collect()),
                );
                token_claims.insert(
                    crate::gpu::SUMMARY_CLAIM.into(),
                    crate::gpu::summary_json(&devices),
                );
                devices
            }
        };

        let reference = self.policies.references(&req.scope)?;
        // A named scope must exist: an attester naming a scope nobody configured would otherwise
        // be appraised against no reference values at all.
        if req.scope != crate::request::DEFAULT_SCOPE && reference.is_empty() {
            return Err(AttestError::InvalidReference(format!(
                "scope {}: expected a reference-value scope holding at least one set, found none",
                req.scope
            )));
        }
        let input = json!({
            "claims": serde_json::to_value(&claims).map_err(|e| AttestError::Token {
                code: "malformed_claims",
                reason: e.to_string(),
            })?,
            "runtime_data": data_input(req.runtime_data.as_ref()),
            "init_data": data_input(req.init_time_data.as_ref()),
            "reference": Value::Object(Map::clone(&reference)),
            "gpus": Value::Array(devices.iter().map(crate::gpu::device_json).collect()),
        });

        // MAA names the signer of a signed policy in the tokens issued under it.
        let mut policy_signer: Option<Value> = None;
        let (decision, policy) = match appraiser {
            Appraiser::Active => {
                let active = self.policies.active(tee)?;
                policy_signer = active.record.signed.as_ref().map(|s| s.signer.clone());
                let d = active
                    .compiled
                    .evaluate(tee.as_str(), &input, &token_claims)?;
                (
                    d,
                    PolicyRef {
                        policy_type: active.record.policy_type.clone(),
                        version: Some(active.record.version),
                        builtin: active.record.builtin,
                        hash: active.record.hash.clone(),
                    },
                )
            }
            Appraiser::Draft(compiled, text, deadline) => {
                let d = match compiled {
                    CompiledDraft::Rego(p) => p
                        .evaluate_until(&input, deadline)
                        // The draft's author sent it: its failures are client errors (4xx).
                        .map_err(|e| AttestError::from_policy(tee.as_str(), e, false))?,
                    CompiledDraft::Maa(p) => p.evaluate_map(&token_claims),
                };
                (
                    d,
                    PolicyRef {
                        policy_type: tee.as_str().into(),
                        version: None,
                        builtin: false,
                        hash: enclava_policy::maa_policy_hash(text),
                    },
                )
            }
        };

        // The token-to-be.
        if let Some(n) = req.nonce.as_ref().or(req.challenge.as_ref()) {
            token_claims.insert("nonce".into(), n.clone().into());
        }
        // `x-ms-policy-hash` and the deprecated names MAA still emits with it.
        for name in enclava_token::maa::POLICY_HASH_CLAIMS {
            token_claims.insert((*name).into(), policy.hash.clone().into());
        }
        if let Some(signer) = policy_signer {
            token_claims.insert("x-ms-policy-signer".into(), signer);
        }
        // SGX: which collateral the quote was evaluated with (MAA's `x-ms-sgx-collateral`).
        // The collateral the verification used: the request's own, else what the collateral
        // source gave it (looked up once, above).
        if let Evidence::Sgx { quote, collateral } = &req.evidence
            && let Some(c) = collateral.as_deref().or(fetched.as_deref())
        {
            let v = enclava_token::maa::sgx_collateral_claim(quote, &c.digests());
            for name in enclava_token::maa::SGX_COLLATERAL_CLAIMS {
                token_claims.insert((*name).into(), v.clone());
            }
        }
        token_claims.insert(SCOPE_CLAIM.into(), req.scope.clone().into());
        if self.config.clock_moved {
            token_claims.insert(
                VERIFICATION_TIME_CLAIM.into(),
                json!({"time": now.to_rfc3339(), "moved": true}),
            );
        }
        for (k, v) in &decision.issued_claims {
            let reserved = REGISTERED_CLAIMS.contains(&k.as_str())
                || k == "nonce"
                || k.starts_with("x-enclava-");
            if !token_claims.contains_key(k) && !reserved {
                token_claims.insert(k.clone(), v.clone());
            }
        }
        token_claims.insert(
            POLICY_CLAIM.into(),
            json!({
                "type": policy.policy_type,
                "version": policy.version,
                "builtin": policy.builtin,
                "hash": policy.hash,
            }),
        );
        let outcome = if !decision.allowed {
            PolicyOutcome::Denied
        } else if policy.builtin && reference.is_empty() {
            PolicyOutcome::NotAppraised
        } else {
            PolicyOutcome::Affirmed
        };
        let policy_id = match policy.version {
            Some(v) => format!("{}@{v}", policy.policy_type),
            None => format!("{}@draft", policy.policy_type),
        };
        let appraisal = Appraisal::new(&claims, outcome, Some(&policy_id));
        let mut ear = ear_claims(&[appraisal], &VerifierId::enclava(), now);
        // Composite: one submodule per device, the CPU's as `cpu0`, the devices' as `gpu0`..,
        // `nvswitch0`.. (as the TDX+GPU EAR profiles do).
        if !devices.is_empty()
            && let Some(Value::Object(sub)) = ear.get_mut("submods")
        {
            if let Some(cpu) = sub.remove(tee.as_str()) {
                sub.insert("cpu0".into(), cpu);
            }
            for d in &devices {
                sub.insert(d.name.clone(), crate::gpu::ear_submod(d, Some(&policy_id)));
            }
        }
        token_claims.insert(EMBED_CLAIM.into(), Value::Object(ear));
        Ok(Appraised {
            token_claims,
            extra,
            decision,
            policy,
        })
    }

    /// Attest: verify, bind, appraise and issue a signed token. A request with a draft policy is
    /// a dry run (see the module docs).
    pub fn attest(&self, req: &AttestRequest, now: DateTime<Utc>) -> Result<Attested, AttestError> {
        self.attest_with_claims(req, now, Map::new())
    }

    /// [`Self::attest`], adding `extra` claims to the token (a protocol front end's own facts,
    /// e.g. the KBS `tee-pubkey` the evidence was bound to). Extra claims never replace a claim
    /// the service sets, and must not be registered claims or `x-enclava-*` other than
    /// `x-enclava-kbs`.
    pub fn attest_with_claims(
        &self,
        req: &AttestRequest,
        now: DateTime<Utc>,
        extra: Map<String, Value>,
    ) -> Result<Attested, AttestError> {
        self.attest_inner(req, now, extra, None)
    }

    /// [`Self::attest_with_claims`] where a protocol front end checks the verified claims
    /// itself (e.g. the KBS runtime-data binding and init-data digest) and derives its extra
    /// claims from them: `check` runs on the claims of the one evidence verification, after it
    /// and before appraisal, so the evidence is verified once. An `Err` from `check` ends the
    /// attestation with that error. Draft policies (dry runs) are refused here.
    pub fn attest_checked(
        &self,
        req: &AttestRequest,
        now: DateTime<Utc>,
        check: &mut FrontEndCheck<'_>,
    ) -> Result<Attested, AttestError> {
        if req.draft_policy.is_some() {
            return Err(AttestError::InvalidData {
                what: "draft_policy".into(),
                reason: "expected none: a front end's checked attestation is never a dry run"
                    .into(),
            });
        }
        self.attest_inner(req, now, Map::new(), Some(check))
    }

    fn attest_inner(
        &self,
        req: &AttestRequest,
        now: DateTime<Utc>,
        mut extra: Map<String, Value>,
        check: Option<&mut FrontEndCheck<'_>>,
    ) -> Result<Attested, AttestError> {
        if let Some(draft) = &req.draft_policy {
            let r = self.dry_run(draft, req, now)?;
            if !r.0.decision.allowed {
                return Err(AttestError::Denied {
                    failed: r.0.decision.failed,
                });
            }
            return Ok(Attested {
                token: r.1.unsigned_token,
                claims: r.1.would_be_claims,
                decision: r.0.decision,
                policy: r.0.policy,
                dry_run: true,
            });
        }
        if let Some(c) = &req.challenge {
            self.challenges.consume(c, now)?;
        }
        let mut a = self.appraise(req, now, Appraiser::Active, check)?;
        if !a.decision.allowed {
            return Err(AttestError::Denied {
                failed: a.decision.failed,
            });
        }
        extra.extend(std::mem::take(&mut a.extra));
        for (k, v) in extra {
            let reserved = REGISTERED_CLAIMS.contains(&k.as_str())
                || (k.starts_with("x-enclava-") && k != "x-enclava-kbs");
            if !reserved && !a.token_claims.contains_key(&k) {
                a.token_claims.insert(k, v);
            }
        }
        let signer = self.signer();
        let mut opts = TokenOptions::new(self.config.issuer.clone(), now);
        opts.lifetime = self.config.token_lifetime;
        opts.jti = JtiSource::Random;
        let (token, claims) = enclava_token::issue_claims(a.token_claims, signer.as_ref(), &opts)
            .map_err(|e| AttestError::Token {
            code: e.code(),
            reason: e.to_string(),
        })?;
        Ok(Attested {
            token,
            claims,
            decision: a.decision,
            policy: a.policy,
            dry_run: false,
        })
    }

    fn dry_run(
        &self,
        draft: &str,
        req: &AttestRequest,
        now: DateTime<Utc>,
    ) -> Result<(Appraised, PolicyTestResult), AttestError> {
        let _slot = DraftSlot::try_take(&self.drafts_running, self.config.max_concurrent_drafts)?;
        let deadline = Instant::now() + DRAFT_DEADLINE;
        // The draft first: a draft that is too complex is refused before any other work.
        let compiled = compile_draft(req.tee().as_str(), draft, deadline)?;
        if let Some(c) = &req.challenge {
            self.challenges.check(c, now)?;
        }
        let a = self.appraise(req, now, Appraiser::Draft(&compiled, draft, deadline), None)?;
        let mut claims = a.token_claims.clone();
        let iat = now.timestamp();
        let exp = iat.saturating_add(self.config.token_lifetime.num_seconds());
        claims.insert("iss".into(), self.config.issuer.clone().into());
        claims.insert("iat".into(), iat.into());
        claims.insert("nbf".into(), iat.into());
        claims.insert("exp".into(), exp.into());
        claims.insert(DRY_RUN_CLAIM.into(), true.into());
        claims.insert("x-enclava-policy-allowed".into(), a.decision.allowed.into());
        let header = json!({"alg": "none", "typ": "JWT", DRY_RUN_CLAIM: true});
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        );
        let result = PolicyTestResult {
            decision: a.decision.clone(),
            would_be_claims: claims,
            unsigned_token: token,
        };
        Ok((a, result))
    }

    /// Evaluate `draft_policy` (Rego or MAA text) against the request: the decision and the
    /// claims a token would carry, with an unsigned token only. Evidence and binding failures are
    /// errors as in [`AttestationService::attest`]; a denial is a decision, not an error.
    pub fn test_policy(
        &self,
        draft_policy: &str,
        req: &AttestRequest,
        now: DateTime<Utc>,
    ) -> Result<PolicyTestResult, AttestError> {
        Ok(self.dry_run(draft_policy, req, now)?.1)
    }

    /// A signed token describing a policy, as MAA answers `GET /policies/{type}` (`result` None),
    /// `PUT` (`Some(Updated)`) and `POST :reset` (`Some(Removed)`): `x-ms-policy` (the signed
    /// upload JWS as received, with `x-ms-policy-signer`, else the policy as an unsigned MAA policy
    /// JWS), `x-ms-policy-token-hash` (base64url SHA-256 of that JWS),
    /// `x-ms-policy-hash`, `x-ms-policy-result` when given, and `x-enclava-policy`. It carries no
    /// `x-ms-attestation-type`: it is not an attestation token.
    pub fn policy_token(
        &self,
        record: &crate::policies::PolicyRecord,
        result: Option<PolicyResult>,
        now: DateTime<Utc>,
    ) -> Result<String, AttestError> {
        self.policy_result_token(record, result, None, now)
    }

    /// [`AttestationService::policy_token`] answering a request whose JWS is not the stored
    /// policy's (a reset): `x-ms-policy-token-hash` is over `presented` (the JWS as received) and
    /// `x-ms-policy-signer` is its signer, as MAA answers a reset.
    pub fn policy_result_token(
        &self,
        record: &crate::policies::PolicyRecord,
        result: Option<PolicyResult>,
        presented: Option<(&str, Option<&Value>)>,
        now: DateTime<Utc>,
    ) -> Result<String, AttestError> {
        let jws = record.policy_jws();
        let mut m = Map::new();
        m.insert("x-ms-policy".into(), jws.clone().into());
        let (hashed, signer) = match presented {
            Some((p, s)) => (p.to_string(), s.cloned()),
            None => (jws, record.signed.as_ref().map(|s| s.signer.clone())),
        };
        if let Some(signer) = signer {
            m.insert("x-ms-policy-signer".into(), signer);
        }
        m.insert(
            "x-ms-policy-token-hash".into(),
            URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(hashed.as_bytes()))
                .into(),
        );
        m.insert("x-ms-policy-hash".into(), record.hash.clone().into());
        if let Some(r) = result {
            m.insert("x-ms-policy-result".into(), r.as_str().into());
        }
        m.insert(
            POLICY_CLAIM.into(),
            json!({
                "type": record.policy_type,
                "version": record.version,
                "builtin": record.builtin,
                "hash": record.hash,
                "language": record.language,
            }),
        );
        let mut opts = TokenOptions::new(self.config.issuer.clone(), now);
        opts.lifetime = self.config.token_lifetime;
        enclava_token::issue(&m, self.signer().as_ref(), &opts).map_err(|e| AttestError::Token {
            code: e.code(),
            reason: e.to_string(),
        })
    }

    /// A token of the service carrying `claims` (MAA answers the policy management certificate
    /// APIs with one: `x-ms-policy-certificates`, `x-ms-certificate-thumbprint`, ...).
    pub fn management_token(
        &self,
        claims: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, AttestError> {
        let mut opts = TokenOptions::new(self.config.issuer.clone(), now);
        opts.lifetime = self.config.token_lifetime;
        enclava_token::issue(claims, self.signer().as_ref(), &opts).map_err(|e| {
            AttestError::Token {
                code: e.code(),
                reason: e.to_string(),
            }
        })
    }

    /// The verification keys: the current signer's first, then the previous ones (with `x5c`
    /// when a signer has a certificate chain).
    pub fn jwks(&self) -> Result<Jwks, AttestError> {
        let s = self.signers.read().unwrap_or_else(|p| p.into_inner());
        let mut keys = Vec::with_capacity(1 + s.previous.len());
        for signer in std::iter::once(&s.current).chain(s.previous.iter()) {
            keys.push(signer.public_jwk().map_err(|e| AttestError::Token {
                code: e.code(),
                reason: e.to_string(),
            })?);
        }
        Ok(Jwks::new(keys))
    }

    /// `/.well-known/openid-configuration` for `base_url` (normally the issuer).
    pub fn openid_configuration(&self, base_url: &str) -> Value {
        let s = self.signers.read().unwrap_or_else(|p| p.into_inner());
        let mut algs: Vec<Alg> = Vec::new();
        for signer in std::iter::once(&s.current).chain(s.previous.iter()) {
            if !algs.contains(&signer.alg()) {
                algs.push(signer.alg());
            }
        }
        enclava_token::maa::openid_configuration(base_url, &algs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn service_is_shareable_across_threads() {
        assert_send_sync::<AttestationService>();
        assert_send_sync::<PolicyStore>();
        assert_send_sync::<ChallengeStore>();
    }

    #[test]
    fn config_validation() {
        let ok = ServiceConfig::new("https://a.test");
        ok.validate().unwrap();
        for bad in [
            ServiceConfig::new(" "),
            ServiceConfig {
                token_lifetime: Duration::seconds(0),
                ..ok.clone()
            },
            ServiceConfig {
                token_lifetime: Duration::hours(25),
                ..ok.clone()
            },
            ServiceConfig {
                challenge_ttl: Duration::seconds(0),
                ..ok.clone()
            },
            ServiceConfig {
                max_concurrent_drafts: 0,
                ..ok.clone()
            },
        ] {
            let e = bad.validate().unwrap_err();
            assert_eq!((e.code(), e.http_status()), ("invalid_configuration", 500));
        }
    }

    #[test]
    fn draft_slots_are_bounded_and_released() {
        let running = AtomicUsize::new(0);
        let a = DraftSlot::try_take(&running, 2).unwrap();
        let b = DraftSlot::try_take(&running, 2).unwrap();
        let Err(e) = DraftSlot::try_take(&running, 2) else {
            panic!("a third slot out of two");
        };
        assert_eq!((e.code(), e.http_status()), ("policy_evaluation_busy", 503));
        assert!(e.to_string().contains("at most 2"), "{e}");
        drop(a);
        let c = DraftSlot::try_take(&running, 2).unwrap();
        drop(b);
        drop(c);
        assert_eq!(running.load(Ordering::Acquire), 0);
    }

    #[test]
    fn policy_bounds_are_client_errors() {
        let too_complex = enclava_policy::PolicyError::TooComplex {
            policy: "p".into(),
            limit: enclava_policy::rego::limits::PolicyLimit::NestingDepth,
            expected: "at most 8 deep".into(),
            found: "depth 30".into(),
        };
        for evaluating in [false, true] {
            let e = AttestError::from_policy("snp", too_complex.clone(), evaluating);
            assert_eq!((e.code(), e.http_status()), ("policy_too_complex", 400));
            assert!(
                e.to_string()
                    .contains("(nesting_depth): expected at most 8 deep, found depth 30"),
                "{e}"
            );
        }
        let other = enclava_policy::PolicyError::RegoEval {
            policy: "p".into(),
            message: "conflict".into(),
        };
        let e = AttestError::from_policy("snp", other.clone(), false);
        assert_eq!((e.code(), e.http_status()), ("invalid_policy", 400));
        let e = AttestError::from_policy("snp", other, true);
        assert_eq!(e.code(), "policy_evaluation_failed");
    }

    #[test]
    fn data_input_shapes() {
        use enclava_token::maa::AttestData;
        assert_eq!(data_input(None), Value::Null);
        assert_eq!(
            data_input(Some(&AttestData::json(br#"{"a":1}"#.to_vec()))),
            json!({"a": 1})
        );
        assert_eq!(
            data_input(Some(&AttestData::json(b"{oops".to_vec()))),
            json!(URL_SAFE_NO_PAD.encode(b"{oops"))
        );
        assert_eq!(
            data_input(Some(&AttestData::binary(vec![1, 2]))),
            json!("AQI")
        );
    }
}
