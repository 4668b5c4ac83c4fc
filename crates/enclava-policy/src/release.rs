//! Key release policies: the Azure Key Vault secure key release grammar and a Rego alternative.
//!
//! # Azure grammar (version `1.0.0`; legacy `0.2` is accepted with the same shape)
//!
//! ```json
//! {"version": "1.0.0",
//!  "anyOf": [ {"authority": "<token iss>", "allOf" | "anyOf": [cond, ...]}, ... ]}
//! ```
//! `cond` is `{"claim": "dotted.path", OP: value}` with OP one of `equals`, `notEquals`, `less`,
//! `lessOrEquals`, `greater`, `greaterOrEquals`, `exists`, or a nested `{"allOf": [...]}` /
//! `{"anyOf": [...]}`. Structural keys (`anyOf`, `allOf`, operators) are matched
//! case-insensitively (the published EBNF writes `anyof`, real policies `anyOf`); unknown keys
//! are errors, so a misspelt operator is reported rather than ignored.
//!
//! # Semantics
//!
//! * An authority entry applies when its `authority` equals the token issuer in canonical form
//!   ([`canonical_authority`]: scheme and host lower-cased, trailing slashes removed). The key is
//!   released when some applicable entry's condition holds.
//! * A dotted path walks nested objects (`x-ms-isolation-tee.x-ms-attestation-type`); a member
//!   whose own name contains dots is found too (at each level the longest matching name is taken,
//!   without backtracking), and a numeric segment indexes an array. A missing (or null) claim makes every operator false except
//!   `exists: false`.
//! * `equals`/`notEquals` compare canonical string forms, ASCII case-insensitively: booleans as
//!   `true`/`false`, integral numbers without fraction (`0`, `1.0` → `1`), strings as they are,
//!   arrays/objects as compact JSON. So `"equals": "false"` matches boolean `false` and `"0"`
//!   matches integer `0`.
//! * Ordering operators need numbers on both sides; numeric strings count as numbers.
//! * Denials list every failed condition of every entry (and every entry whose authority did not
//!   match) with its location in the policy (`anyOf[0].allOf[2]`), the claim path, the expected
//!   comparison and the value found.
//!
//! # Rego alternative
//!
//! [`ReleasePolicy::rego`] compiles a policy in package `enclava.release` following the crate's
//! allow/deny contract. Its input is
//! `{"issuer": <token iss>, "authority": <canonical iss>, "claims": <token claims>}`.

use serde_json::Value;

use crate::rego::{RELEASE_PACKAGE, RegoProgram, json_kind};
use crate::{Decision, FailedRule, PolicyError, bounded};

/// Largest accepted policy (bytes).
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
const ECHO: usize = 200;

/// A comparison operator of a claim condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOp {
    Equals,
    NotEquals,
    Less,
    LessOrEquals,
    Greater,
    GreaterOrEquals,
    Exists,
}

impl ReleaseOp {
    fn parse(key: &str) -> Option<ReleaseOp> {
        Some(match key.to_ascii_lowercase().as_str() {
            "equals" => ReleaseOp::Equals,
            "notequals" => ReleaseOp::NotEquals,
            "less" => ReleaseOp::Less,
            "lessorequals" => ReleaseOp::LessOrEquals,
            "greater" => ReleaseOp::Greater,
            "greaterorequals" => ReleaseOp::GreaterOrEquals,
            "exists" => ReleaseOp::Exists,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ReleaseOp::Equals => "equals",
            ReleaseOp::NotEquals => "notEquals",
            ReleaseOp::Less => "less",
            ReleaseOp::LessOrEquals => "lessOrEquals",
            ReleaseOp::Greater => "greater",
            ReleaseOp::GreaterOrEquals => "greaterOrEquals",
            ReleaseOp::Exists => "exists",
        }
    }
}

/// A condition of the Azure grammar.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    AllOf(Vec<Located>),
    AnyOf(Vec<Located>),
    Claim {
        claim: String,
        op: ReleaseOp,
        value: Value,
    },
}

/// A condition with its location in the policy (`anyOf[0].allOf[2]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub at: String,
    pub condition: Condition,
}

/// One `anyOf` entry: an authority and its condition group.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorityRule {
    pub authority: String,
    pub canonical_authority: String,
    pub condition: Located,
}

/// A parsed Azure-grammar release policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureReleasePolicy {
    pub version: String,
    pub any_of: Vec<AuthorityRule>,
}

/// A release policy: the Azure JSON grammar or Rego.
#[derive(Debug, Clone)]
pub enum ReleasePolicy {
    Azure(AzureReleasePolicy),
    Rego(RegoReleasePolicy),
}

/// A compiled Rego release policy (package `enclava.release`).
#[derive(Debug, Clone)]
pub struct RegoReleasePolicy {
    program: Box<RegoProgram>,
}

impl RegoReleasePolicy {
    pub fn name(&self) -> &str {
        self.program.name()
    }
}

fn err(path: &str, expected: impl Into<String>, found: impl Into<String>) -> PolicyError {
    PolicyError::Release {
        path: path.to_string(),
        expected: expected.into(),
        found: found.into(),
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("string \"{}\"", bounded(s, ECHO)),
        Value::Number(n) => format!("number {n}"),
        Value::Bool(b) => format!("boolean {b}"),
        other => json_kind(other).to_string(),
    }
}

impl ReleasePolicy {
    /// Parse an Azure-grammar policy from its JSON bytes.
    pub fn parse(json_bytes: &[u8]) -> Result<ReleasePolicy, PolicyError> {
        if json_bytes.len() > MAX_POLICY_BYTES {
            return Err(err(
                "$",
                format!("a policy of at most {MAX_POLICY_BYTES} bytes"),
                format!("{} bytes", json_bytes.len()),
            ));
        }
        let doc: Value = serde_json::from_slice(json_bytes)
            .map_err(|e| err("$", "a JSON document", format!("invalid JSON ({e})")))?;
        Ok(ReleasePolicy::Azure(parse_azure(&doc)?))
    }

    /// Compile a Rego release policy (package `enclava.release`).
    pub fn rego(name: &str, source: &str) -> Result<ReleasePolicy, PolicyError> {
        Ok(ReleasePolicy::Rego(RegoReleasePolicy {
            program: Box::new(RegoProgram::compile(name, source, RELEASE_PACKAGE)?),
        }))
    }

    /// Parse a Key Vault `release_policy` body: Rego when `content_type` names rego
    /// (`application/x-rego`, `text/rego`, ...), the Azure JSON grammar otherwise.
    pub fn from_content(
        content_type: Option<&str>,
        data: &[u8],
    ) -> Result<ReleasePolicy, PolicyError> {
        let is_rego = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("rego"));
        if is_rego {
            let text = std::str::from_utf8(data)
                .map_err(|_| err("$", "UTF-8 Rego source", "invalid UTF-8"))?;
            ReleasePolicy::rego("release.rego", text)
        } else {
            ReleasePolicy::parse(data)
        }
    }

    /// Decide whether a token with issuer `token_issuer` and claims `token_claims` may receive the key.
    pub fn evaluate(&self, token_issuer: &str, token_claims: &Value) -> Decision {
        match self {
            ReleasePolicy::Azure(p) => p.evaluate(token_issuer, token_claims),
            ReleasePolicy::Rego(h) => {
                let input = serde_json::json!({
                    "issuer": token_issuer,
                    "authority": canonical_authority(token_issuer),
                    "claims": token_claims,
                });
                match h.program.evaluate(&input) {
                    Ok(d) => d,
                    Err(e) => Decision::deny(vec![FailedRule::new(
                        "rego_evaluation",
                        "",
                        "the release policy to evaluate",
                        bounded(&e.to_string(), 1024),
                    )]),
                }
            }
        }
    }
}

/// Canonical form of an authority / issuer URL: scheme and host lower-cased, trailing slashes
/// removed, surrounding whitespace trimmed. The path keeps its case.
pub fn canonical_authority(s: &str) -> String {
    let s = s.trim();
    let (scheme, rest) = match s.find("://") {
        Some(i) => (s.get(..i + 3).unwrap_or(""), s.get(i + 3..).unwrap_or("")),
        None => ("", s),
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = (
        rest.get(..host_end).unwrap_or(""),
        rest.get(host_end..).unwrap_or(""),
    );
    let mut out = format!(
        "{}{}{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        path
    );
    while out.ends_with('/') {
        out.pop();
    }
    out
}

fn object_get<'a>(
    o: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Vec<(&'a String, &'a Value)> {
    o.iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .collect()
}

fn parse_azure(doc: &Value) -> Result<AzureReleasePolicy, PolicyError> {
    let Value::Object(o) = doc else {
        return Err(err("$", "a JSON object", json_kind(doc)));
    };
    for k in o.keys() {
        if !k.eq_ignore_ascii_case("version") && !k.eq_ignore_ascii_case("anyOf") {
            return Err(err(
                "$",
                "only the members version and anyOf",
                format!("member \"{}\"", bounded(k, ECHO)),
            ));
        }
    }
    let version = match object_get(o, "version").as_slice() {
        [(_, Value::String(v))] if v == "1.0.0" || v == "0.2" => v.clone(),
        [(_, other)] => {
            return Err(err(
                "$.version",
                "\"1.0.0\" (or legacy \"0.2\")",
                describe_value(other),
            ));
        }
        [] => return Err(err("$", "a version member (\"1.0.0\")", "none")),
        _ => return Err(err("$", "one version member", "several")),
    };
    let any_of = match object_get(o, "anyOf").as_slice() {
        [(_, Value::Array(a))] if !a.is_empty() => a,
        [(_, Value::Array(_))] => {
            return Err(err(
                "anyOf",
                "at least one authority entry",
                "an empty array",
            ));
        }
        [(_, other)] => {
            return Err(err(
                "anyOf",
                "an array of authority entries",
                json_kind(other),
            ));
        }
        [] => return Err(err("$", "an anyOf array of authority entries", "none")),
        _ => return Err(err("$", "one anyOf member", "several")),
    };
    let mut rules = Vec::with_capacity(any_of.len());
    for (i, entry) in any_of.iter().enumerate() {
        let at = format!("anyOf[{i}]");
        let Value::Object(e) = entry else {
            return Err(err(
                &at,
                "an object {authority, allOf|anyOf}",
                json_kind(entry),
            ));
        };
        let mut authority = None;
        let mut group = None;
        for (k, v) in e {
            if k.eq_ignore_ascii_case("authority") {
                match v {
                    Value::String(s) if !s.trim().is_empty() => authority = Some(s.clone()),
                    other => {
                        return Err(err(
                            &format!("{at}.authority"),
                            "a non-empty issuer URL string",
                            describe_value(other),
                        ));
                    }
                }
            } else if k.eq_ignore_ascii_case("allOf") || k.eq_ignore_ascii_case("anyOf") {
                if group.is_some() {
                    return Err(err(&at, "exactly one of allOf or anyOf", "both"));
                }
                group = Some(parse_group(k, v, &at, 1)?);
            } else {
                return Err(err(
                    &at,
                    "only the members authority and allOf or anyOf",
                    format!("member \"{}\"", bounded(k, ECHO)),
                ));
            }
        }
        let authority = authority.ok_or_else(|| err(&at, "an authority member", "none"))?;
        let condition = group.ok_or_else(|| err(&at, "an allOf or anyOf member", "none"))?;
        rules.push(AuthorityRule {
            canonical_authority: canonical_authority(&authority),
            authority,
            condition,
        });
    }
    Ok(AzureReleasePolicy {
        version,
        any_of: rules,
    })
}

const MAX_DEPTH: usize = 32;

fn parse_group(key: &str, v: &Value, parent: &str, depth: usize) -> Result<Located, PolicyError> {
    let all = key.eq_ignore_ascii_case("allOf");
    let name = if all { "allOf" } else { "anyOf" };
    let at = format!("{parent}.{name}");
    if depth > MAX_DEPTH {
        return Err(err(
            &at,
            format!("at most {MAX_DEPTH} nested groups"),
            "deeper nesting",
        ));
    }
    let Value::Array(items) = v else {
        return Err(err(&at, "an array of conditions", json_kind(v)));
    };
    if items.is_empty() {
        return Err(err(&at, "at least one condition", "an empty array"));
    }
    let mut conds = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        conds.push(parse_condition(item, &format!("{at}[{i}]"), depth + 1)?);
    }
    Ok(Located {
        at,
        condition: if all {
            Condition::AllOf(conds)
        } else {
            Condition::AnyOf(conds)
        },
    })
}

fn parse_condition(v: &Value, at: &str, depth: usize) -> Result<Located, PolicyError> {
    let Value::Object(o) = v else {
        return Err(err(at, "a condition object", json_kind(v)));
    };
    let groups: Vec<_> = o
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("allOf") || k.eq_ignore_ascii_case("anyOf"))
        .collect();
    if let Some((k, gv)) = groups.first() {
        if o.len() != 1 {
            return Err(err(
                at,
                "a group with a single allOf or anyOf member",
                format!("{} members", o.len()),
            ));
        }
        let g = parse_group(k, gv, at, depth)?;
        // Keep the location of the condition itself: `...allOf[2].anyOf`.
        return Ok(g);
    }
    let mut claim = None;
    let mut op = None;
    for (k, val) in o {
        if k.eq_ignore_ascii_case("claim") {
            match val {
                Value::String(s) if !s.is_empty() => claim = Some(s.clone()),
                other => {
                    return Err(err(
                        &format!("{at}.claim"),
                        "a non-empty claim path string",
                        describe_value(other),
                    ));
                }
            }
        } else if let Some(parsed) = ReleaseOp::parse(k) {
            if op.is_some() {
                return Err(err(
                    at,
                    "exactly one operator",
                    format!("a second operator \"{}\"", bounded(k, ECHO)),
                ));
            }
            op = Some((parsed, val.clone()));
        } else {
            return Err(err(
                at,
                "claim and one operator (equals, notEquals, less, lessOrEquals, greater, greaterOrEquals, exists), or allOf/anyOf",
                format!("member \"{}\"", bounded(k, ECHO)),
            ));
        }
    }
    let claim = claim.ok_or_else(|| err(at, "a claim member", "none"))?;
    let (op, value) = op.ok_or_else(|| {
        err(
            at,
            "an operator (equals, notEquals, less, lessOrEquals, greater, greaterOrEquals, exists)",
            "none",
        )
    })?;
    let opat = format!("{at}.{}", op.name());
    match op {
        ReleaseOp::Equals | ReleaseOp::NotEquals => {
            if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Err(err(&opat, "a string, number or boolean", json_kind(&value)));
            }
        }
        ReleaseOp::Exists => {
            if exists_flag(&value).is_none() {
                return Err(err(&opat, "true or false", describe_value(&value)));
            }
        }
        _ => {
            if number(&value).is_none() {
                return Err(err(
                    &opat,
                    "a number (or numeric string)",
                    describe_value(&value),
                ));
            }
        }
    }
    Ok(Located {
        at: at.to_string(),
        condition: Condition::Claim { claim, op, value },
    })
}

fn exists_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn number(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Num::Int(i128::from(i)))
            } else if let Some(u) = n.as_u64() {
                Some(Num::Int(i128::from(u)))
            } else {
                n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
            }
        }
        Value::String(s) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i128>() {
                Some(Num::Int(i))
            } else {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Num::Float)
            }
        }
        _ => None,
    }
}

fn compare(a: Num, b: Num) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (x, y) => {
            let f = |n: Num| match n {
                Num::Int(i) => i as f64,
                Num::Float(f) => f,
            };
            f(x).partial_cmp(&f(y))
        }
    }
}

/// Canonical string form used by equals/notEquals.
pub fn canonical_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                n.to_string()
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                        format!("{}", f as i64)
                    }
                    _ => n.to_string(),
                }
            }
        }
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Resolve a dotted claim path; the longest member name matching at each level wins.
pub fn resolve_claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.split('.').collect();
    resolve_segments(claims, &segments, 0)
}

fn resolve_segments<'a>(v: &'a Value, segs: &[&str], depth: usize) -> Option<&'a Value> {
    if segs.is_empty() {
        return Some(v);
    }
    if depth > 64 {
        return None;
    }
    match v {
        Value::Object(o) => {
            // Greedy, no backtracking: the longest member name that matches is taken.
            let take = (1..=segs.len()).rev().find(|&take| {
                segs.get(..take)
                    .is_some_and(|k| o.contains_key(&k.join(".")))
            })?;
            let child = o.get(&segs.get(..take)?.join("."))?;
            resolve_segments(child, segs.get(take..)?, depth + 1)
        }
        Value::Array(a) => {
            let (first, rest) = segs.split_first()?;
            let idx: usize = first.parse().ok()?;
            resolve_segments(a.get(idx)?, rest, depth + 1)
        }
        _ => None,
    }
}

impl AzureReleasePolicy {
    pub fn evaluate(&self, token_issuer: &str, token_claims: &Value) -> Decision {
        let issuer = canonical_authority(token_issuer);
        let mut failed = Vec::new();
        for (i, rule) in self.any_of.iter().enumerate() {
            if rule.canonical_authority != issuer {
                failed.push(FailedRule::new(
                    format!("anyOf[{i}].authority"),
                    "iss",
                    bounded(&rule.canonical_authority, ECHO),
                    bounded(&issuer, ECHO),
                ));
                continue;
            }
            let before = failed.len();
            if eval(&rule.condition, token_claims, &mut failed) {
                return Decision::allow();
            }
            if failed.len() == before {
                failed.push(FailedRule::new(
                    rule.condition.at.clone(),
                    "",
                    "the condition group to hold",
                    "it did not",
                ));
            }
        }
        Decision::deny(failed)
    }
}

fn eval(c: &Located, claims: &Value, failed: &mut Vec<FailedRule>) -> bool {
    match &c.condition {
        Condition::AllOf(items) => {
            let mut ok = true;
            for item in items {
                ok &= eval(item, claims, failed);
            }
            ok
        }
        Condition::AnyOf(items) => {
            let mut local = Vec::new();
            for item in items {
                if eval(item, claims, &mut local) {
                    return true;
                }
            }
            failed.extend(local);
            false
        }
        Condition::Claim { claim, op, value } => {
            let found = resolve_claim(claims, claim).filter(|v| !v.is_null());
            let holds = claim_holds(*op, value, found);
            if !holds {
                let expected = match op {
                    ReleaseOp::Exists => {
                        if exists_flag(value) == Some(true) {
                            "exists".to_string()
                        } else {
                            "does not exist".to_string()
                        }
                    }
                    ReleaseOp::Equals | ReleaseOp::NotEquals => {
                        format!(
                            "{} \"{}\"",
                            op.name(),
                            bounded(&canonical_string(value), ECHO)
                        )
                    }
                    _ => format!("{} {}", op.name(), bounded(&canonical_string(value), ECHO)),
                };
                let found = match found {
                    None => "missing".to_string(),
                    Some(v) => bounded(&canonical_string(v), ECHO),
                };
                failed.push(FailedRule::new(
                    c.at.clone(),
                    claim.clone(),
                    expected,
                    found,
                ));
            }
            holds
        }
    }
}

fn claim_holds(op: ReleaseOp, expected: &Value, found: Option<&Value>) -> bool {
    if op == ReleaseOp::Exists {
        return exists_flag(expected) == Some(found.is_some());
    }
    let Some(found) = found else { return false };
    let eq = || canonical_string(found).eq_ignore_ascii_case(&canonical_string(expected));
    match op {
        ReleaseOp::Equals => eq(),
        ReleaseOp::NotEquals => !eq(),
        _ => {
            let (Some(a), Some(b)) = (number(found), number(expected)) else {
                return false;
            };
            let Some(ord) = compare(a, b) else {
                return false;
            };
            match op {
                ReleaseOp::Less => ord.is_lt(),
                ReleaseOp::LessOrEquals => ord.is_le(),
                ReleaseOp::Greater => ord.is_gt(),
                _ => ord.is_ge(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_authority_forms() {
        assert_eq!(
            canonical_authority("HTTPS://SharedEUS.eus.Attest.Azure.NET/"),
            "https://sharedeus.eus.attest.azure.net"
        );
        assert_eq!(canonical_authority("https://h/Path//"), "https://h/Path");
        assert_eq!(canonical_authority("  https://h  "), "https://h");
    }

    #[test]
    fn canonical_strings() {
        assert_eq!(canonical_string(&serde_json::json!(false)), "false");
        assert_eq!(canonical_string(&serde_json::json!(0)), "0");
        assert_eq!(canonical_string(&serde_json::json!(1.0)), "1");
        assert_eq!(canonical_string(&serde_json::json!(1.5)), "1.5");
        assert_eq!(canonical_string(&serde_json::json!("x")), "x");
    }

    #[test]
    fn resolve_prefers_dotted_member_names() {
        let v =
            serde_json::json!({"a.b": {"c": 1}, "a": {"b": {"c": 2}, "d": 4}, "arr": [{"k": 3}]});
        assert_eq!(resolve_claim(&v, "a.b.c"), Some(&serde_json::json!(1)));
        assert_eq!(resolve_claim(&v, "a.d"), Some(&serde_json::json!(4)));
        assert_eq!(resolve_claim(&v, "arr.0.k"), Some(&serde_json::json!(3)));
        assert_eq!(resolve_claim(&v, "arr.1.k"), None);
        assert_eq!(resolve_claim(&v, "nope"), None);
    }
}
