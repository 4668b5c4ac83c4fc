//! Azure secure key release policies and the Rego alternative.

use enclava_policy::release::{ReleasePolicy, canonical_authority};
use enclava_policy::{FailedRule, PolicyError};
use proptest::prelude::*;
use serde_json::{Value, json};

const MAA: &str = "https://sharedeus.eus.attest.azure.net";
const HOSTDATA: &str = "73973b78d70cc68353426de188db5dfc57e5b766e399935fb73a61127ea26d20";

/// CVM disk encryption: SNP or TDX isolation, Azure-compliant CVM (written with a trailing slash).
const CVM_POLICY: &str = r#"{
  "version": "1.0.0",
  "anyOf": [
    {
      "authority": "https://sharedeus.eus.attest.azure.net/",
      "allOf": [
        {
          "anyOf": [
            {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
            {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "tdxvm"}
          ]
        },
        {"claim": "x-ms-isolation-tee.x-ms-compliance-status", "equals": "azure-compliant-cvm"}
      ]
    }
  ]
}"#;

/// Confidential container groups: pinned host data, compliant UVM, non-debuggable, VMPL 0, with
/// boolean and integer claims written as strings (as real policies do).
fn container_policy() -> String {
    format!(
        r#"{{
  "version": "1.0.0",
  "anyOf": [
    {{
      "authority": "https://sharedeus.eus.attest.azure.net",
      "allOf": [
        {{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}},
        {{"claim": "x-ms-sevsnpvm-hostdata", "equals": "{HOSTDATA}"}},
        {{"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"}},
        {{"claim": "x-ms-sevsnpvm-is-debuggable", "equals": "false"}},
        {{"claim": "x-ms-sevsnpvm-vmpl", "equals": "0"}}
      ]
    }}
  ]
}}"#
    )
}

fn cvm_token(tee: &str, compliance: &str) -> Value {
    json!({
        "iss": MAA,
        "x-ms-attestation-type": "azurevm",
        "x-ms-isolation-tee": {
            "x-ms-attestation-type": tee,
            "x-ms-compliance-status": compliance,
            "x-ms-sevsnpvm-is-debuggable": false
        }
    })
}

fn aci_token(debuggable: bool, vmpl: i64, hostdata: &str) -> Value {
    json!({
        "iss": MAA,
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-compliance-status": "azure-compliant-uvm",
        "x-ms-sevsnpvm-hostdata": hostdata,
        "x-ms-sevsnpvm-is-debuggable": debuggable,
        "x-ms-sevsnpvm-vmpl": vmpl
    })
}

#[test]
fn cvm_disk_encryption_policy() {
    let p = ReleasePolicy::parse(CVM_POLICY.as_bytes()).unwrap();
    for tee in ["sevsnpvm", "tdxvm"] {
        let d = p.evaluate(MAA, &cvm_token(tee, "azure-compliant-cvm"));
        assert!(d.allowed, "{tee}: {}", d.explain());
    }
    // Wrong isolation type: both alternatives of the nested anyOf are listed.
    let d = p.evaluate(MAA, &cvm_token("sgx", "azure-compliant-cvm"));
    assert!(!d.allowed);
    assert_eq!(
        d.failed,
        [
            FailedRule::new(
                "anyOf[0].allOf[0].anyOf[0]",
                "x-ms-isolation-tee.x-ms-attestation-type",
                "equals \"sevsnpvm\"",
                "sgx"
            ),
            FailedRule::new(
                "anyOf[0].allOf[0].anyOf[1]",
                "x-ms-isolation-tee.x-ms-attestation-type",
                "equals \"tdxvm\"",
                "sgx"
            ),
        ]
    );
    // Non-compliant and wrong type: every failed condition is listed.
    let d = p.evaluate(MAA, &cvm_token("sgx", "none"));
    assert_eq!(d.failed.len(), 3);
    assert_eq!(
        d.failed[2].claim_path,
        "x-ms-isolation-tee.x-ms-compliance-status"
    );
    assert_eq!(d.failed[2].found, "none");
}

#[test]
fn container_group_policy_with_loose_comparison() {
    let p = ReleasePolicy::parse(container_policy().as_bytes()).unwrap();
    let d = p.evaluate(MAA, &aci_token(false, 0, HOSTDATA));
    assert!(d.allowed, "{}", d.explain());
    // Upper-case hex still matches (canonical strings compare case-insensitively).
    assert!(
        p.evaluate(MAA, &aci_token(false, 0, &HOSTDATA.to_uppercase()))
            .allowed
    );

    let d = p.evaluate(MAA, &aci_token(true, 2, &"00".repeat(32)));
    assert!(!d.allowed);
    assert_eq!(
        d.failed,
        [
            FailedRule::new(
                "anyOf[0].allOf[1]",
                "x-ms-sevsnpvm-hostdata",
                format!("equals \"{HOSTDATA}\""),
                "00".repeat(32)
            ),
            FailedRule::new(
                "anyOf[0].allOf[3]",
                "x-ms-sevsnpvm-is-debuggable",
                "equals \"false\"",
                "true"
            ),
            FailedRule::new(
                "anyOf[0].allOf[4]",
                "x-ms-sevsnpvm-vmpl",
                "equals \"0\"",
                "2"
            ),
        ]
    );
}

#[test]
fn authority_matching_normalizes_slash_and_case() {
    let p = ReleasePolicy::parse(CVM_POLICY.as_bytes()).unwrap();
    let token = cvm_token("sevsnpvm", "azure-compliant-cvm");
    for iss in [
        MAA,
        "https://sharedeus.eus.attest.azure.net/",
        "HTTPS://SharedEUS.eus.attest.azure.net",
    ] {
        assert!(p.evaluate(iss, &token).allowed, "{iss}");
    }
    let d = p.evaluate("https://evil.example.com", &token);
    assert!(!d.allowed);
    assert_eq!(
        d.failed,
        [FailedRule::new(
            "anyOf[0].authority",
            "iss",
            MAA,
            "https://evil.example.com"
        )]
    );
    assert_eq!(
        canonical_authority("https://a.example/x/"),
        "https://a.example/x"
    );
}

#[test]
fn second_authority_can_release() {
    let src = json!({"version": "1.0.0", "anyOf": [
        {"authority": "https://one.example", "allOf": [{"claim": "a", "equals": 1}]},
        {"authority": "https://two.example/", "anyOf": [{"claim": "a", "equals": 2}]}
    ]});
    let p = ReleasePolicy::parse(src.to_string().as_bytes()).unwrap();
    assert!(p.evaluate("https://two.example", &json!({"a": 2})).allowed);
    let d = p.evaluate("https://two.example", &json!({"a": 1}));
    assert!(!d.allowed);
    assert_eq!(d.failed.len(), 2);
    assert_eq!(d.failed[0].rule, "anyOf[0].authority");
    assert_eq!(
        d.failed[1],
        FailedRule::new("anyOf[1].anyOf[0]", "a", "equals \"2\"", "1")
    );
}

fn one(cond: Value) -> ReleasePolicy {
    let src = json!({"version": "1.0.0", "anyOf": [{"authority": MAA, "allOf": [cond]}]});
    ReleasePolicy::parse(src.to_string().as_bytes()).unwrap()
}

fn allows(cond: Value, claims: Value) -> bool {
    let d = one(cond).evaluate(MAA, &claims);
    assert!(d.allowed || !d.failed.is_empty());
    d.allowed
}

#[test]
fn every_operator() {
    let c = json!({"svn": 5, "s": "5", "f": 1.5, "b": false, "name": "Gold", "n": null});
    // equals / notEquals, loose.
    assert!(allows(json!({"claim": "svn", "equals": "5"}), c.clone()));
    assert!(allows(json!({"claim": "svn", "equals": 5}), c.clone()));
    assert!(allows(json!({"claim": "s", "equals": 5}), c.clone()));
    assert!(allows(json!({"claim": "b", "equals": "false"}), c.clone()));
    assert!(allows(json!({"claim": "b", "equals": false}), c.clone()));
    assert!(allows(
        json!({"claim": "name", "equals": "gold"}),
        c.clone()
    ));
    assert!(!allows(json!({"claim": "b", "equals": "true"}), c.clone()));
    assert!(allows(json!({"claim": "svn", "notEquals": 4}), c.clone()));
    assert!(!allows(
        json!({"claim": "svn", "notEquals": "5"}),
        c.clone()
    ));
    // Ordering on numbers and numeric strings.
    assert!(allows(json!({"claim": "svn", "greater": 4}), c.clone()));
    assert!(!allows(json!({"claim": "svn", "greater": 5}), c.clone()));
    assert!(allows(
        json!({"claim": "svn", "greaterOrEquals": "5"}),
        c.clone()
    ));
    assert!(allows(json!({"claim": "s", "less": 6}), c.clone()));
    assert!(!allows(json!({"claim": "s", "less": 5}), c.clone()));
    assert!(allows(
        json!({"claim": "f", "lessOrEquals": 1.5}),
        c.clone()
    ));
    assert!(allows(json!({"claim": "f", "greater": 1}), c.clone()));
    assert!(!allows(json!({"claim": "name", "greater": 1}), c.clone()));
    // exists.
    assert!(allows(json!({"claim": "svn", "exists": true}), c.clone()));
    assert!(!allows(json!({"claim": "nope", "exists": true}), c.clone()));
    assert!(allows(json!({"claim": "nope", "exists": false}), c.clone()));
    assert!(allows(json!({"claim": "n", "exists": "false"}), c.clone()));
    // Missing claims are false for every comparison, notEquals included.
    for op in [
        "equals",
        "notEquals",
        "less",
        "lessOrEquals",
        "greater",
        "greaterOrEquals",
    ] {
        let d = one(json!({"claim": "missing.deep", op: 1})).evaluate(MAA, &c);
        assert!(!d.allowed, "{op}");
        assert_eq!(d.failed[0].found, "missing", "{op}");
        assert_eq!(d.failed[0].claim_path, "missing.deep");
    }
}

#[test]
fn nesting() {
    let cond = json!({"anyOf": [
        {"allOf": [{"claim": "a", "equals": 1}, {"claim": "b", "equals": 2}]},
        {"allOf": [{"claim": "c", "exists": true}, {"anyOf": [{"claim": "d", "less": 0}, {"claim": "d", "greater": 10}]}]}
    ]});
    assert!(allows(cond.clone(), json!({"a": 1, "b": 2})));
    assert!(allows(cond.clone(), json!({"c": "x", "d": 11})));
    let d = one(cond).evaluate(MAA, &json!({"a": 1, "c": 1, "d": 5}));
    assert!(!d.allowed);
    let rules: Vec<&str> = d.failed.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "anyOf[0].allOf[0].anyOf[0].allOf[1]",
            "anyOf[0].allOf[0].anyOf[1].allOf[1].anyOf[0]",
            "anyOf[0].allOf[0].anyOf[1].allOf[1].anyOf[1]",
        ]
    );
}

#[test]
fn legacy_version_and_lowercase_keys() {
    let src = r#"{"version":"0.2","anyof":[{"authority":"https://x.example","allof":[{"claim":"a","Equals":true}]}]}"#;
    let p = ReleasePolicy::parse(src.as_bytes()).unwrap();
    assert!(
        p.evaluate("https://x.example/", &json!({"a": "true"}))
            .allowed
    );
}

fn malformed(src: &str) -> (String, String, String) {
    match ReleasePolicy::parse(src.as_bytes()) {
        Err(PolicyError::Release {
            path,
            expected,
            found,
        }) => (path, expected, found),
        other => panic!("expected a Release error for {src}, got {other:?}"),
    }
}

#[test]
fn malformed_policies_are_precise() {
    let (p, e, _) = malformed("{not json");
    assert_eq!((p.as_str(), e.as_str()), ("$", "a JSON document"));
    let (p, e, f) = malformed(r#"{"version":"2.0","anyOf":[]}"#);
    assert_eq!(p, "$.version");
    assert!(e.contains("1.0.0"));
    assert_eq!(f, "string \"2.0\"");
    let (_, e, _) = malformed(r#"{"anyOf":[]}"#);
    assert!(e.contains("version"));
    let (p, _, f) = malformed(r#"{"version":"1.0.0","anyOf":[]}"#);
    assert_eq!((p.as_str(), f.as_str()), ("anyOf", "an empty array"));
    let (p, e, _) =
        malformed(r#"{"version":"1.0.0","anyOf":[{"allOf":[{"claim":"a","equals":1}]}]}"#);
    assert_eq!(
        (p.as_str(), e.as_str()),
        ("anyOf[0]", "an authority member")
    );
    let (p, _, f) = malformed(
        r#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"a","equal":1}]}]}"#,
    );
    assert_eq!(p, "anyOf[0].allOf[0]");
    assert_eq!(f, "member \"equal\"");
    let (p, e, _) = malformed(
        r#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"a","equals":1,"notEquals":2}]}]}"#,
    );
    assert_eq!(p, "anyOf[0].allOf[0]");
    assert_eq!(e, "exactly one operator");
    let (p, e, f) = malformed(
        r#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"a","greater":"x"}]}]}"#,
    );
    assert_eq!(p, "anyOf[0].allOf[0].greater");
    assert!(e.contains("number"));
    assert_eq!(f, "string \"x\"");
    let (_, e, _) = malformed(
        r#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"a","equals":[1]}]}]}"#,
    );
    assert!(e.contains("string, number or boolean"));
    let (_, _, f) = malformed(
        r#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"a","exists":"maybe"}]}]}"#,
    );
    assert_eq!(f, "string \"maybe\"");
    let (p, _, f) = malformed(
        r#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"anyOf":[]}]}]}"#,
    );
    assert_eq!(
        (p.as_str(), f.as_str()),
        ("anyOf[0].allOf[0].anyOf", "an empty array")
    );
    let (_, e, _) = malformed(
        r#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"a","equals":1}],"anyOf":[{"claim":"a","equals":1}]}]}"#,
    );
    assert_eq!(e, "exactly one of allOf or anyOf");
    // Deep nesting is refused, not a stack overflow.
    let mut cond = json!({"claim": "a", "equals": 1});
    for _ in 0..60 {
        cond = json!({"allOf": [cond]});
    }
    let src = json!({"version": "1.0.0", "anyOf": [{"authority": "https://a", "allOf": [cond]}]});
    let (_, e, _) = malformed(&src.to_string());
    assert!(e.contains("nested"), "{e}");
}

const REGO_RELEASE: &str = r#"package enclava.release

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains {"rule": "authority", "path": "iss", "expected": "https://attest.enclava.example", "found": input.authority} if {
	input.authority != "https://attest.enclava.example"
}

deny contains {"rule": "debug", "path": "claims.x-ms-sevsnpvm-is-debuggable", "expected": false, "found": found} if {
	found := object.get(input.claims, "x-ms-sevsnpvm-is-debuggable", "missing")
	found != false
}
"#;

#[test]
fn rego_release_policy() {
    let p = ReleasePolicy::rego("release.rego", REGO_RELEASE).unwrap();
    let ok = json!({"x-ms-sevsnpvm-is-debuggable": false});
    assert!(p.evaluate("https://attest.enclava.example/", &ok).allowed);
    let d = p.evaluate(
        "https://other.example",
        &json!({"x-ms-sevsnpvm-is-debuggable": true}),
    );
    assert!(!d.allowed);
    let mut rules: Vec<&str> = d.failed.iter().map(|f| f.rule.as_str()).collect();
    rules.sort();
    assert_eq!(rules, ["authority", "debug"]);
    // Wrong package.
    let e = ReleasePolicy::rego("r", "package enclava.appraisal\nallow := true\n").unwrap_err();
    assert!(matches!(e, PolicyError::RegoContract { .. }));
    // Chosen by content type.
    let p =
        ReleasePolicy::from_content(Some("application/x-rego"), REGO_RELEASE.as_bytes()).unwrap();
    assert!(matches!(p, ReleasePolicy::Rego(_)));
    let p = ReleasePolicy::from_content(
        Some("application/json; charset=utf-8"),
        CVM_POLICY.as_bytes(),
    )
    .unwrap();
    assert!(matches!(p, ReleasePolicy::Azure(_)));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        prop_oneof![
            Just("claim"),
            Just("equals"),
            Just("anyOf"),
            Just("allOf"),
            Just("authority"),
            Just("version"),
            Just("1.0.0"),
            Just("exists"),
            Just("less"),
            Just("a.b"),
            Just("5"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("claim"),
                        Just("equals"),
                        Just("notEquals"),
                        Just("anyOf"),
                        Just("allOf"),
                        Just("authority"),
                        Just("version"),
                        Just("exists"),
                        Just("greater"),
                        Just("x"),
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = ReleasePolicy::parse(&bytes);
    }

    #[test]
    fn parse_and_evaluate_never_panic_on_json(policy in arb_json(), claims in arb_json(), iss in "[a-z:/.]{0,12}") {
        let _ = ReleasePolicy::parse(policy.to_string().as_bytes());
        // Also inside a valid envelope.
        let wrapped = json!({"version": "1.0.0", "anyOf": [{"authority": MAA, "allOf": [policy]}]});
        if let Ok(p) = ReleasePolicy::parse(wrapped.to_string().as_bytes()) {
            for i in [iss.as_str(), MAA] {
                let d = p.evaluate(i, &claims);
                prop_assert!(d.allowed || !d.failed.is_empty());
            }
        }
    }

    #[test]
    fn canonical_authority_is_idempotent(s in "\\PC{0,40}") {
        let once = canonical_authority(&s);
        prop_assert_eq!(canonical_authority(&once), once);
    }
}
