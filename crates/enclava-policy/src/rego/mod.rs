//! Rego appraisal policies (package `enclava.appraisal`), evaluated with `regorus`.
//!
//! [`AppraisalPolicy::compile`] parses and analyses the policy once and keeps a prepared engine;
//! [`AppraisalPolicy::evaluate`] clones that engine (cheap: the modules and analysis are shared by
//! reference) and evaluates `deny` and `allow` against one input in a single evaluation (through a
//! small generated module, so that `allow if count(deny) == 0` does not evaluate `deny` twice),
//! then `claims` when allowed. The input contract and
//! the deny convention are described in the crate documentation.
//!
//! Every policy is bounded before and while it runs: [`limits::prescan`] refuses source that is
//! too large or nested too deep before the (uninterruptible, exponential-in-nesting) regorus
//! parser sees it, and compiling plus evaluating share one deadline ([`EVALUATION_TIME_LIMIT`]
//! unless the caller gives one, see [`AppraisalPolicy::compile_until`] and
//! [`AppraisalPolicy::evaluate_until`]) enforced by regorus's execution timer, which is checked
//! at every evaluation step. Exceeding any bound is [`PolicyError::TooComplex`].

pub mod builtins;
pub mod defaults;
pub mod limits;

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use regorus::Value as RegoValue;
use serde::Deserialize;
use serde_json::Value;

use crate::{Decision, FailedRule, PolicyError, bounded, render};

/// The package an appraisal policy must declare.
pub const APPRAISAL_PACKAGE: &str = "enclava.appraisal";
/// The package a Rego release policy must declare.
pub const RELEASE_PACKAGE: &str = "enclava.release";
/// Longest compiling or evaluating a policy may run before it is aborted (one budget shared by
/// all the steps of one compilation, and of one evaluation).
pub const EVALUATION_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Largest accepted policy source (bytes): [`limits::MAX_SOURCE_BYTES`].
pub const MAX_POLICY_BYTES: usize = limits::MAX_SOURCE_BYTES;

const MAX_ECHO: usize = 512;

/// The module Enclava adds beside a policy to read `deny` and `allow` in one evaluation.
const ENTRY_MODULE: &str = "enclava-entry.rego";
const ENTRY_PACKAGE: &str = "enclava_internal.entry";

/// `both`: deny and allow when both are defined (the usual case, cheapest to evaluate); `each`:
/// each wrapped in an array, empty when undefined (a rule that is undefined would otherwise make
/// the whole object undefined).
fn entry_module(package: &str, has_deny: bool, has_allow: bool) -> String {
    let mut m = format!("package {ENTRY_PACKAGE}\n\nimport rego.v1\n\n");
    let mut each = Vec::new();
    for (rule, declared) in [("deny", has_deny), ("allow", has_allow)] {
        if declared {
            each.push(format!("\"{rule}\": [v | v := data.{package}.{rule}]"));
        }
    }
    m.push_str(&format!("each := {{{}}}\n", each.join(", ")));
    if has_deny && has_allow {
        m.push_str(&format!(
            "\nboth := {{\"deny\": data.{package}.deny, \"allow\": data.{package}.allow}}\n"
        ));
    }
    m
}

/// A compiled Rego program bound to one package, following the allow/deny/claims contract.
#[derive(Debug, Clone)]
pub(crate) struct RegoProgram {
    name: String,
    package: &'static str,
    engine: regorus::Engine,
    has_allow: bool,
    has_deny: bool,
    has_claims: bool,
}

impl RegoProgram {
    pub(crate) fn compile(
        name: &str,
        source: &str,
        package: &'static str,
    ) -> Result<RegoProgram, PolicyError> {
        RegoProgram::compile_until(
            name,
            source,
            package,
            Instant::now() + EVALUATION_TIME_LIMIT,
        )
    }

    /// Compile, giving up (with [`PolicyError::TooComplex`]) once `deadline` has passed.
    pub(crate) fn compile_until(
        name: &str,
        source: &str,
        package: &'static str,
        deadline: Instant,
    ) -> Result<RegoProgram, PolicyError> {
        // Bound the text before regorus parses it: parsing cannot be interrupted.
        limits::prescan(source).map_err(|v| PolicyError::TooComplex {
            policy: name.to_string(),
            limit: v.limit,
            expected: v.expected,
            found: v.found,
        })?;
        let mut engine = regorus::Engine::new();
        builtins::install(&mut engine).map_err(|message| PolicyError::RegoCompile {
            policy: name.to_string(),
            line: None,
            column: None,
            message,
        })?;
        // regorus's own length checks, at the same bounds (a second line of defence).
        let length = regorus::PolicyLengthConfig {
            max_col: NonZeroU32::new(limits::MAX_LINE_BYTES as u32 + 1).unwrap_or(NonZeroU32::MIN),
            max_file_bytes: NonZeroUsize::new(limits::MAX_SOURCE_BYTES)
                .unwrap_or(NonZeroUsize::MIN),
            max_lines: NonZeroUsize::new(limits::MAX_LINES).unwrap_or(NonZeroUsize::MIN),
        };
        engine.set_policy_length_config(length);
        set_deadline(&mut engine, name, deadline)?;
        let declared = engine
            .add_policy(name.to_string(), source.to_string())
            .map_err(|e| compile_error(name, &e))?;
        let wanted = format!("data.{package}");
        if declared != wanted {
            return Err(PolicyError::RegoContract {
                policy: name.to_string(),
                expected: format!("package {package}"),
                found: format!(
                    "package {}",
                    bounded(declared.trim_start_matches("data."), MAX_ECHO)
                ),
            });
        }
        let declares = |rule: &str| {
            engine
                .has_declared_rule_rooted_at(name, rule)
                .unwrap_or(false)
        };
        let has_allow = declares("allow");
        let has_deny = declares("deny");
        let has_claims = declares("claims");
        if has_allow || has_deny {
            engine
                .add_policy(
                    ENTRY_MODULE.to_string(),
                    entry_module(package, has_deny, has_allow),
                )
                .map_err(|e| compile_error(name, &e))?;
        }
        // Analyse and schedule the modules now (errors here are compile errors, e.g. unsafe
        // variables or recursion), so that every clone starts prepared.
        set_deadline(&mut engine, name, deadline)?;
        engine.eval_query("true".to_string(), false).map_err(|e| {
            if is_time_limit(e.downcast_ref::<regorus::LimitError>(), &e.to_string()) {
                deadline_passed(name)
            } else {
                compile_error(name, &e)
            }
        })?;
        // Each evaluation sets its own deadline on its clone; none is inherited from compiling.
        engine.set_execution_timer_config(timer(EVALUATION_TIME_LIMIT));
        Ok(RegoProgram {
            name: name.to_string(),
            package,
            engine,
            has_allow,
            has_deny,
            has_claims,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn evaluate(&self, input: &Value) -> Result<Decision, PolicyError> {
        self.evaluate_until(input, Instant::now() + EVALUATION_TIME_LIMIT)
    }

    /// Evaluate, giving up (with [`PolicyError::TooComplex`]) once `deadline` has passed.
    pub(crate) fn evaluate_until(
        &self,
        input: &Value,
        deadline: Instant,
    ) -> Result<Decision, PolicyError> {
        let rego_input = RegoValue::deserialize(input).map_err(|e| PolicyError::Input {
            expected: "a JSON document representable in Rego".to_string(),
            found: bounded(&e.to_string(), MAX_ECHO),
        })?;
        let mut engine = self.engine.clone();
        engine.set_input(rego_input);
        self.decide(engine, deadline)
    }

    /// [`Self::evaluate_until`] with a `data` document beside the policy (KBS resource policies
    /// read `data["resource-path"]`, `data.plugin`, `data.query`).
    pub(crate) fn evaluate_with_data_until(
        &self,
        input: &Value,
        data: &Value,
        deadline: Instant,
    ) -> Result<Decision, PolicyError> {
        let rego_input = RegoValue::deserialize(input).map_err(|e| PolicyError::Input {
            expected: "a JSON document representable in Rego".to_string(),
            found: bounded(&e.to_string(), MAX_ECHO),
        })?;
        let rego_data = RegoValue::deserialize(data).map_err(|e| PolicyError::Input {
            expected: "a JSON data document representable in Rego".to_string(),
            found: bounded(&e.to_string(), MAX_ECHO),
        })?;
        let mut engine = self.engine.clone();
        engine.set_input(rego_input);
        engine.add_data(rego_data).map_err(|e| PolicyError::Input {
            expected: "a data document that merges with the policy's".to_string(),
            found: bounded(&e.to_string(), MAX_ECHO),
        })?;
        self.decide(engine, deadline)
    }

    fn decide(
        &self,
        mut engine: regorus::Engine,
        deadline: Instant,
    ) -> Result<Decision, PolicyError> {
        let (deny, allow) = self.eval_deny_and_allow(&mut engine, deadline)?;
        let failed = self.deny_to_failed(&deny)?;
        if !failed.is_empty() {
            return Ok(Decision::deny(failed));
        }

        match allow {
            Some(RegoValue::Bool(true)) => {
                let claims = if self.has_claims {
                    self.eval_rule(&mut engine, "claims", deadline)?
                } else {
                    RegoValue::Undefined
                };
                let mut decision = Decision::allow();
                decision.issued_claims = self.claims_to_map(&claims)?;
                Ok(decision)
            }
            None => Ok(Decision::deny(vec![FailedRule::new(
                "default_deny",
                "",
                format!("package {} to define `allow`", self.package),
                "no `allow` rule",
            )])),
            Some(other) => Ok(Decision::deny(vec![FailedRule::new(
                "allow",
                "",
                "allow == true",
                describe_allow(&other),
            )])),
        }
    }

    /// `deny` and `allow` (`None` when the policy declares no `allow`) from one evaluation, so
    /// that rules both depend on (the usual `allow if count(deny) == 0`) are evaluated once.
    fn eval_deny_and_allow(
        &self,
        engine: &mut regorus::Engine,
        deadline: Instant,
    ) -> Result<(RegoValue, Option<RegoValue>), PolicyError> {
        if !self.has_deny && !self.has_allow {
            return Ok((RegoValue::Undefined, None));
        }
        if self.has_deny && self.has_allow {
            let both = self.eval_path(engine, &format!("data.{ENTRY_PACKAGE}.both"), deadline)?;
            if let RegoValue::Object(o) = &both {
                let member = |k: &str| o.get(&RegoValue::from(k)).cloned();
                if let (Some(d), Some(a)) = (member("deny"), member("allow")) {
                    return Ok((d, Some(a)));
                }
            }
        }
        // One of them is undefined for this input: the wrapped form says which.
        let each = self.eval_path(engine, &format!("data.{ENTRY_PACKAGE}.each"), deadline)?;
        let first = |k: &str| match &each {
            RegoValue::Object(o) => match o.get(&RegoValue::from(k)) {
                Some(RegoValue::Array(a)) => a.first().cloned().unwrap_or(RegoValue::Undefined),
                _ => RegoValue::Undefined,
            },
            _ => RegoValue::Undefined,
        };
        Ok((first("deny"), self.has_allow.then(|| first("allow"))))
    }

    fn eval_rule(
        &self,
        engine: &mut regorus::Engine,
        rule: &str,
        deadline: Instant,
    ) -> Result<RegoValue, PolicyError> {
        self.eval_path(engine, &format!("data.{}.{rule}", self.package), deadline)
    }

    /// One evaluation step, with the timer set to what is left of the deadline (each regorus
    /// call restarts its timer, so a fixed limit per call would let the steps add up).
    fn eval_path(
        &self,
        engine: &mut regorus::Engine,
        path: &str,
        deadline: Instant,
    ) -> Result<RegoValue, PolicyError> {
        set_deadline(engine, &self.name, deadline)?;
        engine.eval_rule(path.to_string()).map_err(|e| {
            let text = e.to_string();
            if is_time_limit(e.downcast_ref::<regorus::LimitError>(), &text) {
                deadline_passed(&self.name)
            } else {
                PolicyError::RegoEval {
                    policy: self.name.clone(),
                    message: bounded(&text, 2048),
                }
            }
        })
    }

    fn to_json(&self, v: &RegoValue) -> Result<Value, PolicyError> {
        serde_json::to_value(v).map_err(|e| PolicyError::RegoContract {
            policy: self.name.clone(),
            expected: "a JSON-representable value".to_string(),
            found: bounded(&e.to_string(), MAX_ECHO),
        })
    }

    fn deny_to_failed(&self, deny: &RegoValue) -> Result<Vec<FailedRule>, PolicyError> {
        let mut out = Vec::new();
        match deny {
            RegoValue::Undefined | RegoValue::Bool(false) | RegoValue::Null => {}
            RegoValue::Bool(true) => out.push(FailedRule::new("deny", "", "", "")),
            RegoValue::Set(_) | RegoValue::Array(_) => {
                if let Value::Array(items) = self.to_json(deny)? {
                    for item in &items {
                        out.push(failed_rule_from_json(item));
                    }
                }
            }
            other => {
                let json = self.to_json(other)?;
                out.push(failed_rule_from_json(&json));
            }
        }
        Ok(out)
    }

    fn claims_to_map(
        &self,
        claims: &RegoValue,
    ) -> Result<serde_json::Map<String, Value>, PolicyError> {
        match claims {
            RegoValue::Undefined | RegoValue::Null => Ok(serde_json::Map::new()),
            RegoValue::Object(_) => match self.to_json(claims)? {
                Value::Object(m) => Ok(m),
                other => Err(self.claims_contract(&other)),
            },
            other => {
                let json = self.to_json(other)?;
                Err(self.claims_contract(&json))
            }
        }
    }

    fn claims_contract(&self, found: &Value) -> PolicyError {
        PolicyError::RegoContract {
            policy: self.name.clone(),
            expected: "`claims` to be an object".to_string(),
            found: bounded(&render(found), MAX_ECHO),
        }
    }
}

fn timer(limit: Duration) -> regorus::utils::limits::ExecutionTimerConfig {
    regorus::utils::limits::ExecutionTimerConfig {
        limit,
        // Check the clock at every step: a step is far more expensive than reading the clock.
        check_interval: NonZeroU32::MIN,
    }
}

/// Arm the engine's execution timer with what is left until `deadline` (an error if nothing is).
fn set_deadline(
    engine: &mut regorus::Engine,
    policy: &str,
    deadline: Instant,
) -> Result<(), PolicyError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(deadline_passed(policy));
    }
    engine.set_execution_timer_config(timer(left));
    Ok(())
}

fn is_time_limit(limit: Option<&regorus::LimitError>, text: &str) -> bool {
    matches!(limit, Some(regorus::LimitError::TimeLimitExceeded { .. }))
        || text.contains("execution exceeded time limit")
}

fn deadline_passed(policy: &str) -> PolicyError {
    PolicyError::TooComplex {
        policy: policy.to_string(),
        limit: limits::PolicyLimit::Deadline,
        expected: "compiling and evaluating to finish before the deadline".to_string(),
        found: "the deadline passed first (evaluation stopped)".to_string(),
    }
}

fn describe_allow(v: &RegoValue) -> String {
    match v {
        RegoValue::Undefined => "undefined (no `allow` rule body held and no default)".to_string(),
        RegoValue::Bool(b) => b.to_string(),
        other => match serde_json::to_value(other) {
            Ok(j) => format!(
                "{} (allow must be a boolean)",
                bounded(&j.to_string(), MAX_ECHO)
            ),
            Err(_) => "a non-boolean value".to_string(),
        },
    }
}

/// One member of a `deny` set as a [`FailedRule`]: objects use `rule`, `path` (or `claim_path`),
/// `expected`, `found` (`msg`/`message` stand in for a missing `rule`); strings name the rule.
fn failed_rule_from_json(item: &Value) -> FailedRule {
    match item {
        Value::String(s) => FailedRule::new(bounded(s, MAX_ECHO), "", "", ""),
        Value::Object(o) => {
            let field = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| o.get(*n))
                    .map(|v| bounded(&render(v), MAX_ECHO))
                    .unwrap_or_default()
            };
            let mut rule = field(&["rule", "msg", "message"]);
            if rule.is_empty() {
                rule = "deny".to_string();
            }
            FailedRule::new(
                rule,
                field(&["path", "claim_path"]),
                field(&["expected"]),
                field(&["found"]),
            )
        }
        other => FailedRule::new(bounded(&render(other), MAX_ECHO), "", "", ""),
    }
}

/// Turn a regorus error into a compile error with the line and column it names.
///
/// regorus formats errors as `<file>:<line>:<col>: error: <message>` followed by the source line.
fn compile_error(policy: &str, e: &impl std::fmt::Display) -> PolicyError {
    let text = e.to_string();
    let (line, column) = locate(policy, &text);
    PolicyError::RegoCompile {
        policy: policy.to_string(),
        line,
        column,
        message: bounded(text.trim(), 2048),
    }
}

fn locate(policy: &str, text: &str) -> (Option<u32>, Option<u32>) {
    let prefix = format!("{policy}:");
    for (idx, _) in text.match_indices(&prefix) {
        let rest = text.get(idx + prefix.len()..).unwrap_or("");
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().and_then(|l| l.trim().parse::<u32>().ok());
        let col = parts.next().and_then(|c| c.trim().parse::<u32>().ok());
        if line.is_some() {
            return (line, col);
        }
    }
    (None, None)
}

/// A compiled appraisal policy (package `enclava.appraisal`). Compile once, evaluate many times;
/// the value is `Send + Sync` and cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct AppraisalPolicy {
    program: RegoProgram,
}

impl AppraisalPolicy {
    /// Parse and analyse `rego_source`. `name` is used in error messages (like a file name).
    pub fn compile(name: &str, rego_source: &str) -> Result<AppraisalPolicy, PolicyError> {
        Ok(AppraisalPolicy {
            program: RegoProgram::compile(name, rego_source, APPRAISAL_PACKAGE)?,
        })
    }

    /// [`AppraisalPolicy::compile`], stopping with [`PolicyError::TooComplex`] once `deadline`
    /// has passed (a caller that compiles and then evaluates gives both the same deadline).
    pub fn compile_until(
        name: &str,
        rego_source: &str,
        deadline: Instant,
    ) -> Result<AppraisalPolicy, PolicyError> {
        Ok(AppraisalPolicy {
            program: RegoProgram::compile_until(name, rego_source, APPRAISAL_PACKAGE, deadline)?,
        })
    }

    /// The built-in default policy for an attestation type (`snp`, `tdx`, `sgx`, `azure-snp`,
    /// `azure-tdx`, `sim`) or the `quickstart` example.
    pub fn builtin(name: &str) -> Result<AppraisalPolicy, PolicyError> {
        let source = defaults::source(name).ok_or_else(|| PolicyError::RegoContract {
            policy: bounded(name, MAX_ECHO),
            expected: format!("one of {}", defaults::NAMES.join(", ")),
            found: "no built-in policy of that name".to_string(),
        })?;
        AppraisalPolicy::compile(name, source)
    }

    pub fn name(&self) -> &str {
        self.program.name()
    }

    /// Evaluate against an input document (see the crate docs for its shape). The input must be
    /// an object whose `claims` member is an object; anything else is [`PolicyError::Input`]
    /// (never evaluated: a policy written for claims could otherwise find nothing to deny).
    pub fn evaluate(&self, input: &Value) -> Result<Decision, PolicyError> {
        self.evaluate_until(input, Instant::now() + EVALUATION_TIME_LIMIT)
    }

    /// [`AppraisalPolicy::evaluate`], stopping with [`PolicyError::TooComplex`] once `deadline`
    /// has passed.
    pub fn evaluate_until(
        &self,
        input: &Value,
        deadline: Instant,
    ) -> Result<Decision, PolicyError> {
        match input.get("claims") {
            Some(Value::Object(_)) => {}
            Some(other) => {
                return Err(PolicyError::Input {
                    expected: "`claims` to be an object".to_string(),
                    found: json_kind(other).to_string(),
                });
            }
            None => {
                return Err(PolicyError::Input {
                    expected: "an object with a `claims` member".to_string(),
                    found: match input {
                        Value::Object(_) => "an object without `claims`",
                        other => json_kind(other),
                    }
                    .to_string(),
                });
            }
        }
        self.program.evaluate_until(input, deadline)
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn policy_is_send_and_sync() {
        assert_send_sync::<AppraisalPolicy>();
    }

    #[test]
    fn locate_parses_regorus_positions() {
        assert_eq!(
            locate("p.rego", "p.rego:4:9: error: unexpected token"),
            (Some(4), Some(9))
        );
        assert_eq!(locate("p.rego", "something else"), (None, None));
    }

    #[test]
    fn deny_members_of_every_shape_are_explained() {
        let src = r#"
package enclava.appraisal
import rego.v1
default allow := true
deny contains "plain string"
deny contains {"rule": "r", "path": "claims.x", "expected": [1, 2], "found": 3}
deny contains {"msg": "only a message"}
"#;
        let p = AppraisalPolicy::compile("shapes", src).unwrap();
        let d = p.evaluate(&json!({"claims": {}})).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.failed.len(), 3);
        assert!(
            d.failed
                .contains(&FailedRule::new("plain string", "", "", ""))
        );
        assert!(
            d.failed
                .contains(&FailedRule::new("r", "claims.x", "[1,2]", "3"))
        );
        assert!(
            d.failed
                .contains(&FailedRule::new("only a message", "", "", ""))
        );
    }

    #[test]
    fn claims_must_be_an_object() {
        let src = "package enclava.appraisal\nimport rego.v1\nallow := true\nclaims := 3\n";
        let p = AppraisalPolicy::compile("c", src).unwrap();
        let e = p.evaluate(&json!({"claims": {}})).unwrap_err();
        assert!(matches!(e, PolicyError::RegoContract { .. }), "{e}");
    }

    #[test]
    fn non_boolean_allow_denies_with_explanation() {
        let src = "package enclava.appraisal\nimport rego.v1\nallow := \"yes\"\n";
        let p = AppraisalPolicy::compile("a", src).unwrap();
        assert!(matches!(
            p.evaluate(&json!([1])),
            Err(PolicyError::Input { .. })
        ));
        assert!(matches!(
            p.evaluate(&json!({"claims": 1})),
            Err(PolicyError::Input { .. })
        ));
        let d = p.evaluate(&json!({"claims": {}})).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.failed[0].rule, "allow");
        assert!(d.failed[0].found.contains("\"yes\""), "{:?}", d.failed);
    }
}
