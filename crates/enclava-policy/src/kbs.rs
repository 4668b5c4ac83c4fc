//! KBS resource policies (Confidential Containers' trustee shape): Rego in `package policy`,
//! the decision `data.policy.allow`; `input` is the attestation token's claims and `data` holds
//! `{"plugin": "resource", "resource-path": "<repo>/<type>/<tag>", "query": {..}}`. A policy may
//! also define `deny` (a set of reasons, as in every Enclava policy): any member denies and is
//! reported; otherwise `allow` must be `true`. A policy without `allow` denies everything.

use std::time::Instant;

use serde_json::Value;

use crate::rego::{EVALUATION_TIME_LIMIT, RegoProgram};
use crate::{Decision, PolicyError};

/// The package a KBS resource policy declares.
pub const KBS_PACKAGE: &str = "policy";

/// A compiled resource policy. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct ResourcePolicy {
    program: RegoProgram,
}

impl ResourcePolicy {
    /// Compile `source`; `name` appears in errors like a file name.
    pub fn compile(name: &str, source: &str) -> Result<ResourcePolicy, PolicyError> {
        Ok(ResourcePolicy {
            program: RegoProgram::compile(name, source, KBS_PACKAGE)?,
        })
    }

    /// Decide for one request: `claims` (the token's claims) as `input`, `data` beside it.
    pub fn evaluate(&self, claims: &Value, data: &Value) -> Result<Decision, PolicyError> {
        self.program
            .evaluate_with_data_until(claims, data, Instant::now() + EVALUATION_TIME_LIMIT)
    }
}

/// The `data` document of a resource request.
pub fn resource_data(path: &str, query: &serde_json::Map<String, Value>) -> Value {
    serde_json::json!({
        "plugin": "resource",
        "resource-path": path,
        "query": Value::Object(query.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: &str = r#"package policy
import rego.v1
default allow := false
allow if {
    input.tee == "sample"
    startswith(data["resource-path"], "default/")
}
deny contains {"rule": "key_2_closed", "path": "resource-path", "expected": "not default/key/2", "found": data["resource-path"]} if {
    data["resource-path"] == "default/key/2"
}
"#;

    #[test]
    fn allow_deny_and_reasons() {
        let p = ResourcePolicy::compile("kbs.rego", POLICY).unwrap();
        let q = serde_json::Map::new();
        let claims = json!({"tee": "sample"});
        assert!(
            p.evaluate(&claims, &resource_data("default/key/1", &q))
                .unwrap()
                .allowed
        );
        let d = p
            .evaluate(&claims, &resource_data("default/key/2", &q))
            .unwrap();
        assert!(!d.allowed);
        assert_eq!(d.failed[0].rule, "key_2_closed");
        let d = p
            .evaluate(&claims, &resource_data("other/key/1", &q))
            .unwrap();
        assert!(!d.allowed);
        assert!(ResourcePolicy::compile("x", "package other\nallow := true").is_err());
    }
}
