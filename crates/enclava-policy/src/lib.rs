//! Policy evaluation for Enclava: pure functions, no I/O, no async, and every deny explained.
//!
//! Three evaluators share one explanation model, [`Decision`]:
//!
//! * [`rego`]: Rego appraisal policies (package `enclava.appraisal`), run by the `regorus`
//!   interpreter, with default policies per attestation type ([`rego::defaults`]).
//! * [`maa`]: the Microsoft Azure Attestation policy language (versions 1.0 to 1.2, a documented
//!   subset), the MAA policy upload JWS and the MAA policy hash.
//! * [`release`]: Azure Key Vault secure key release policies (JSON grammar `1.0.0` and legacy
//!   `0.2`) and the Rego alternative (package `enclava.release`).
//!
//! # Explanations
//!
//! A [`Decision`] is `allowed` or not; when it is not, `failed` names **every** rule that failed,
//! each with the claim path it looked at, what it expected and what it found. A denial never comes
//! without at least one [`FailedRule`]. An allowed decision has an empty `failed` list.
//!
//! # The Rego input contract (appraisal)
//!
//! The input document of an appraisal policy is
//!
//! ```json
//! {
//!   "claims":       { ...normalized claims (enclava-evidence `Claims`)... },
//!   "runtime_data": <JSON or null>,
//!   "init_data":    <JSON or null>,
//!   "reference":    { "<set name>": { ...reference values... } }
//! }
//! ```
//!
//! The reference value sets the default policies understand (all keys optional):
//!
//! | key | meaning |
//! |---|---|
//! | `measurements` | allowed values of `claims.measurement` (hex, compared lower-case); the union over all sets |
//! | `signers` | SGX: allowed `claims.sgx.mr_signer` values |
//! | `min_svn` | SGX: minimum `claims.sgx.isv_svn` |
//! | `min_tcb` | SEV-SNP: minimum `{bootloader, tee, snp, microcode}` of `claims.snp.reported_tcb` (Azure SNP: `claims.azure.hardware.reported_tcb`) |
//!
//! The `quickstart` example policy reads only the set named `quickstart`
//! (`input.reference.quickstart.measurements`) and accepts simulated evidence for those
//! measurements. See [`rego::defaults`] for every rule the built-in policies can fail.
//!
//! # The deny convention (Rego)
//!
//! A policy lives in package `enclava.appraisal` (release policies: `enclava.release`) and defines
//!
//! * `allow` (boolean), usually `default allow := false`;
//! * `deny`, a set (or array) whose members explain failures, each either an object
//!   `{"rule": str, "path": str, "expected": any, "found": any}` or a plain string (the rule name);
//! * optionally `claims`, an object whose members are returned in [`Decision::issued_claims`].
//!
//! The decision is allowed exactly when `allow == true` and `deny` is empty (or undefined). When
//! `deny` is non-empty its members are the explanation (`allow` is then not consulted). When a
//! policy does not allow and its `deny` set is empty, the decision names the `allow` rule and what
//! it evaluated to; a policy that declares no `allow` rule at all always denies (`default_deny`).
//! Non-string `expected`/`found` members are rendered as compact JSON. `claims` is evaluated only
//! for allowed decisions.
//!
//! An appraisal input whose `claims` member is missing or not an object is rejected with
//! [`PolicyError::Input`] before evaluation. The input of a Rego *release* policy is
//! `{"issuer": <token iss>, "authority": <canonical iss>, "claims": <token claims>}`.
//!
//! Engine note: `regorus` is built with `std`, `arc` (so compiled policies are `Send + Sync`) and
//! the `base64`/`base64url`/`hex` builtins only; regex, time, glob, semver, net, uuid, http,
//! jsonschema and YAML builtins are not available to policies. Each evaluation is bounded by
//! [`rego::EVALUATION_TIME_LIMIT`], and the source by [`rego::limits`] (size, lines, nesting);
//! `numbers.range` and `numbers.range_step` produce at most [`rego::builtins::MAX_RANGE_ELEMENTS`]
//! elements.

// Parses attacker-supplied input: indexing, slicing and `unwrap` are denied outside tests, so bad
// input is a typed error, never a panic.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]
#![forbid(unsafe_code)]

pub mod kbs;
pub mod maa;
pub mod rego;
pub mod release;

use serde::{Deserialize, Serialize};

pub use maa::{MaaPolicy, maa_policy_hash};
pub use rego::AppraisalPolicy;
pub use release::ReleasePolicy;

/// The outcome of a policy evaluation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// Every failed rule (empty when `allowed`).
    #[serde(default)]
    pub failed: Vec<FailedRule>,
    /// Claims the policy issues into the attestation token (MAA issuance rules, Rego `claims`).
    #[serde(default)]
    pub issued_claims: serde_json::Map<String, serde_json::Value>,
}

impl Decision {
    /// An allowed decision without issued claims.
    pub fn allow() -> Decision {
        Decision {
            allowed: true,
            failed: Vec::new(),
            issued_claims: serde_json::Map::new(),
        }
    }

    /// A denial explained by `failed` (which must not be empty: an empty list is replaced by a
    /// generic `default_deny` rule so that no denial is ever unexplained).
    pub fn deny(mut failed: Vec<FailedRule>) -> Decision {
        if failed.is_empty() {
            failed.push(FailedRule::new(
                "default_deny",
                "",
                "a rule that allows",
                "no rule allowed",
            ));
        }
        Decision {
            allowed: false,
            failed,
            issued_claims: serde_json::Map::new(),
        }
    }

    /// One line per failed rule, for logs and error messages.
    pub fn explain(&self) -> String {
        if self.allowed {
            return "allowed".to_string();
        }
        let parts: Vec<String> = self.failed.iter().map(FailedRule::to_string).collect();
        format!("denied: {}", parts.join("; "))
    }
}

/// One failed rule: which rule, which claim it looked at, what it expected, what it found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FailedRule {
    pub rule: String,
    /// Path of the claim in the evaluated document (dotted), empty when the rule is not about one claim.
    pub claim_path: String,
    pub expected: String,
    pub found: String,
}

impl FailedRule {
    pub fn new(
        rule: impl Into<String>,
        claim_path: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> FailedRule {
        FailedRule {
            rule: rule.into(),
            claim_path: claim_path.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

impl std::fmt::Display for FailedRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule {}", self.rule)?;
        if !self.claim_path.is_empty() {
            write!(f, " on {}", self.claim_path)?;
        }
        if self.expected.is_empty() && self.found.is_empty() {
            return Ok(());
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

/// Why a policy could not be compiled, parsed or evaluated. Messages say what was expected and
/// what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The Rego source does not compile. `line`/`column` are 1-based when the interpreter gave them.
    #[error("rego policy {policy:?} does not compile{}: {message}", fmt_location(*line, *column))]
    RegoCompile {
        policy: String,
        line: Option<u32>,
        column: Option<u32>,
        message: String,
    },
    /// The Rego policy failed while evaluating (e.g. a conflict between complete rules).
    #[error("rego policy {policy:?} failed to evaluate: {message}")]
    RegoEval { policy: String, message: String },
    /// The Rego policy compiles but does not follow the Enclava policy contract.
    #[error(
        "rego policy {policy:?} breaks the policy contract: expected {expected}, found {found}"
    )]
    RegoContract {
        policy: String,
        expected: String,
        found: String,
    },
    /// MAA policy text does not follow the grammar.
    #[error(
        "MAA policy syntax error at line {line}, column {column}: expected {expected}, found {found}"
    )]
    Syntax {
        line: u32,
        column: u32,
        expected: String,
        found: String,
    },
    /// A valid MAA construct that Enclava does not implement.
    #[error("MAA policy construct not supported (line {line}): {construct}")]
    Unsupported { construct: String, line: u32 },
    /// The MAA policy upload JWS is malformed.
    #[error("malformed MAA policy JWS: expected {expected}, found {found}")]
    Jws { expected: String, found: String },
    /// A key release policy is malformed. `path` locates the offending member (`anyOf[0].allOf[2]`).
    #[error("malformed key release policy at {path}: expected {expected}, found {found}")]
    Release {
        path: String,
        expected: String,
        found: String,
    },
    /// The evaluation input does not have the documented shape.
    #[error("policy input is malformed: expected {expected}, found {found}")]
    Input { expected: String, found: String },
    /// A policy exceeds a complexity bound ([`rego::limits`]): refused before it is parsed (size,
    /// lines, nesting depth), or stopped when compiling and evaluating it passed the deadline.
    #[error("policy {policy:?} is too complex ({limit}): expected {expected}, found {found}")]
    TooComplex {
        policy: String,
        limit: rego::limits::PolicyLimit,
        expected: String,
        found: String,
    },
}

fn fmt_location(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

/// Render a JSON value for an explanation: strings as-is, everything else as compact JSON.
pub(crate) fn render(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Truncate long text (untrusted input echoed in explanations) to keep messages bounded.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_is_never_unexplained() {
        let d = Decision::deny(Vec::new());
        assert!(!d.allowed);
        assert_eq!(d.failed.len(), 1);
        assert_eq!(d.failed[0].rule, "default_deny");
        assert!(d.explain().contains("default_deny"));
    }

    #[test]
    fn failed_rule_display() {
        assert_eq!(
            FailedRule::new("debug", "claims.debug", "false", "true").to_string(),
            "rule debug on claims.debug: expected false, found true"
        );
        assert_eq!(
            FailedRule::new("plain", "", "", "").to_string(),
            "rule plain"
        );
    }

    #[test]
    fn error_messages_say_expected_and_found() {
        let e = PolicyError::RegoCompile {
            policy: "p".into(),
            line: Some(3),
            column: Some(7),
            message: "boom".into(),
        };
        assert_eq!(
            e.to_string(),
            "rego policy \"p\" does not compile at line 3, column 7: boom"
        );
        let e = PolicyError::Release {
            path: "anyOf[0]".into(),
            expected: "an object".into(),
            found: "a number".into(),
        };
        assert!(e.to_string().contains("expected an object, found a number"));
    }

    #[test]
    fn bounded_truncates_on_char_boundaries() {
        assert_eq!(bounded("héllo", 2), "hé…");
        assert_eq!(bounded("abc", 3), "abc");
    }
}
