//! MAA policy language: parsing, evaluation with explanations, unsupported constructs, upload JWS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_policy::PolicyError;
use enclava_policy::maa::{
    self, Action, IncomingClaim, MaaPolicy, claims_from_map, maa_policy_hash, parse_policy_jws,
    unsigned_policy_jws,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const DEFAULT: &str = "version=1.0; authorizationrules { => permit(); }; issuancerules {};";

const MRSIGNER: &str = "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e";

/// Modelled on Microsoft's SGX sample policy.
const SGX_POLICY: &str = r#"version= 1.0;
authorizationrules
{
    [ type=="x-ms-sgx-is-debuggable", value==false ]
        && [ type=="x-ms-sgx-product-id", value==1 ]
        && [ type=="x-ms-sgx-svn", value>= 2 ]
        && [ type=="x-ms-sgx-mrsigner", value=="83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"]
    => permit();
};
issuancerules {
    c:[type=="x-ms-sgx-mrsigner"] => issue(type="custom-signer", value=c.value);
    c:[type=="x-ms-sgx-svn"] => issue(type="custom-svn", value=c.value);
};
"#;

/// Modelled on the SEV-SNP CVM samples: deny debuggable VMs, permit the rest, issue a few claims.
const SNP_POLICY: &str = r#"version=1.2;
configurationrules
{
    => issueproperty(type="x-ms-sgx-tcbidentifier", value="10");
};
authorizationrules
{
    // Debuggable guests are never permitted.
    [type=="x-ms-sevsnpvm-is-debuggable", value==true] => deny();
    c:[type=="x-ms-attestation-type", value=="sevsnpvm"]
        && [type=="x-ms-sevsnpvm-vmpl", value<=0]
        && [type=="x-ms-compliance-status", value=="azure-compliant-cvm"] => permit();
};
issuancerules
{
    c:[type=="x-ms-sevsnpvm-launchmeasurement"] => issue(type="measurement", value=c.value);
    c:[type=="x-ms-sevsnpvm-hostdata"] => add(type="hostdata-seen", value=true);
    [type=="hostdata-seen", issuer=="AttestationPolicy"] => issue(type="has-hostdata", value=true);
    ![type=="x-ms-sevsnpvm-familyId"] => issue(type="family", value="none");
    /* A whole-claim copy. */
    c:[type=="x-ms-sevsnpvm-guestsvn"] => issue(claim=c);
};
"#;

fn sgx_claims(debuggable: bool, svn: i64, signer: &str) -> Vec<IncomingClaim> {
    let map = json!({
        "x-ms-attestation-type": "sgx",
        "x-ms-sgx-is-debuggable": debuggable,
        "x-ms-sgx-product-id": 1,
        "x-ms-sgx-svn": svn,
        "x-ms-sgx-mrsigner": signer,
        "x-ms-sgx-mrenclave": "aa".repeat(32),
    });
    claims_from_map(map.as_object().unwrap())
}

fn snp_claims(debuggable: bool, vmpl: i64) -> Vec<IncomingClaim> {
    let map = json!({
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-compliance-status": "azure-compliant-cvm",
        "x-ms-sevsnpvm-is-debuggable": debuggable,
        "x-ms-sevsnpvm-vmpl": vmpl,
        "x-ms-sevsnpvm-launchmeasurement": "bb".repeat(48),
        "x-ms-sevsnpvm-hostdata": "00".repeat(32),
        "x-ms-sevsnpvm-guestsvn": 3,
    });
    claims_from_map(map.as_object().unwrap())
}

#[test]
fn default_policy_permits_anything() {
    let p = MaaPolicy::parse(DEFAULT).unwrap();
    assert_eq!(p.version, (1, 0));
    assert_eq!(p.authorization_rules.len(), 1);
    assert_eq!(p.authorization_rules[0].action, Action::Permit);
    assert!(p.issuance_rules.is_empty());
    let d = p.evaluate(&[]);
    assert!(d.allowed);
    assert!(d.issued_claims.is_empty());
}

#[test]
fn sgx_sample_permits_and_issues() {
    let p = MaaPolicy::parse(SGX_POLICY).unwrap();
    let d = p.evaluate(&sgx_claims(false, 3, MRSIGNER));
    assert!(d.allowed, "{}", d.explain());
    assert_eq!(d.issued_claims.get("custom-signer"), Some(&json!(MRSIGNER)));
    assert_eq!(d.issued_claims.get("custom-svn"), Some(&json!(3)));
}

#[test]
fn sgx_sample_denial_lists_every_failed_condition() {
    let p = MaaPolicy::parse(SGX_POLICY).unwrap();
    let d = p.evaluate(&sgx_claims(true, 1, &"00".repeat(32)));
    assert!(!d.allowed);
    let paths: Vec<&str> = d.failed.iter().map(|f| f.claim_path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "x-ms-sgx-is-debuggable",
            "x-ms-sgx-svn",
            "x-ms-sgx-mrsigner"
        ]
    );
    let dbg = &d.failed[0];
    assert_eq!(dbg.expected, "value == false");
    assert_eq!(dbg.found, "true");
    assert!(
        dbg.rule
            .starts_with("authorizationrules line 4: [ type==\"x-ms-sgx-is-debuggable\""),
        "{}",
        dbg.rule
    );
    let svn = &d.failed[1];
    assert_eq!(svn.expected, "value >= 2");
    assert_eq!(svn.found, "1");
    assert!(d.issued_claims.is_empty());
}

#[test]
fn missing_claim_is_reported_as_no_such_claim() {
    let p = MaaPolicy::parse(SGX_POLICY).unwrap();
    let mut claims = sgx_claims(false, 3, MRSIGNER);
    claims.retain(|c| c.claim_type != "x-ms-sgx-product-id");
    let d = p.evaluate(&claims);
    assert!(!d.allowed);
    assert_eq!(d.failed.len(), 1);
    assert_eq!(d.failed[0].claim_path, "x-ms-sgx-product-id");
    assert_eq!(d.failed[0].found, "no such claim");
}

#[test]
fn snp_sample_policy() {
    let p = MaaPolicy::parse(SNP_POLICY).unwrap();
    assert_eq!(p.version, (1, 2));
    assert_eq!(p.configuration().len(), 1);
    assert_eq!(p.configuration()[0].name, "x-ms-sgx-tcbidentifier");
    assert!(p.configuration()[0].note.contains("not enforced"));

    let d = p.evaluate(&snp_claims(false, 0));
    assert!(d.allowed, "{}", d.explain());
    assert_eq!(
        d.issued_claims.get("measurement"),
        Some(&json!("bb".repeat(48)))
    );
    assert_eq!(d.issued_claims.get("has-hostdata"), Some(&json!(true)));
    assert_eq!(d.issued_claims.get("family"), Some(&json!("none")));
    assert_eq!(
        d.issued_claims.get("x-ms-sevsnpvm-guestsvn"),
        Some(&json!(3))
    );
    // add() claims are not issued.
    assert!(!d.issued_claims.contains_key("hostdata-seen"));

    // Debuggable: the deny rule names the claim it matched.
    let d = p.evaluate(&snp_claims(true, 0));
    assert!(!d.allowed);
    assert_eq!(d.failed.len(), 1);
    assert_eq!(d.failed[0].claim_path, "x-ms-sevsnpvm-is-debuggable");
    assert_eq!(d.failed[0].found, "x-ms-sevsnpvm-is-debuggable = true");
    assert!(d.failed[0].rule.contains("deny()"), "{}", d.failed[0].rule);

    // VMPL 2: no permit rule matched.
    let d = p.evaluate(&snp_claims(false, 2));
    assert!(!d.allowed);
    assert_eq!(d.failed.len(), 1);
    assert_eq!(d.failed[0].claim_path, "x-ms-sevsnpvm-vmpl");
    assert_eq!(d.failed[0].expected, "value <= 0");
    assert_eq!(d.failed[0].found, "2");
}

#[test]
fn deny_wins_over_an_earlier_permit() {
    let p = MaaPolicy::parse(
        "version=1.0; authorizationrules { => permit(); [type==\"bad\"] => deny(); };",
    )
    .unwrap();
    assert!(p.evaluate(&[]).allowed);
    let d = p.evaluate(&[IncomingClaim::new("bad", json!(1))]);
    assert!(!d.allowed);
    assert_eq!(d.failed[0].claim_path, "bad");
}

#[test]
fn no_permit_rule_at_all_denies() {
    let p = MaaPolicy::parse("version=1.0; authorizationrules { }; issuancerules { };").unwrap();
    let d = p.evaluate(&[]);
    assert!(!d.allowed);
    assert_eq!(d.failed[0].found, "no permit() rule in the policy");
}

#[test]
fn cross_condition_references() {
    let src = r#"version=1.0;
authorizationrules {
    c1:[type=="expected-signer"] && [type=="x-ms-sgx-mrsigner", value==c1.value] => permit();
};"#;
    let p = MaaPolicy::parse(src).unwrap();
    let ok = [
        IncomingClaim::new("expected-signer", json!("ab")),
        IncomingClaim::new("x-ms-sgx-mrsigner", json!("ab")),
    ];
    assert!(p.evaluate(&ok).allowed);
    let bad = [
        IncomingClaim::new("expected-signer", json!("ab")),
        IncomingClaim::new("x-ms-sgx-mrsigner", json!("cd")),
    ];
    let d = p.evaluate(&bad);
    assert!(!d.allowed);
    assert!(
        d.failed[0].found.contains("no combination"),
        "{:?}",
        d.failed
    );
}

#[test]
fn issuing_a_type_twice_makes_an_array() {
    let src = r#"version=1.0; authorizationrules { => permit(); };
issuancerules { c:[type=="k"] => issue(type="all-k", value=c.value); };"#;
    let p = MaaPolicy::parse(src).unwrap();
    let d = p.evaluate(&[
        IncomingClaim::new("k", json!(1)),
        IncomingClaim::new("k", json!(2)),
        IncomingClaim::new("k", json!(3)),
    ]);
    assert_eq!(d.issued_claims.get("all-k"), Some(&json!([1, 2, 3])));
}

#[test]
fn keywords_are_case_insensitive_and_comments_allowed() {
    let src = "VERSION=1.1;\n// comment\nAuthorizationRules { /* none */ => Permit(); };";
    let p = MaaPolicy::parse(src).unwrap();
    assert_eq!(p.version, (1, 1));
    assert!(p.evaluate(&[]).allowed);
}

fn unsupported(src: &str) -> (String, u32) {
    match MaaPolicy::parse(src) {
        Err(PolicyError::Unsupported { construct, line }) => (construct, line),
        other => panic!("expected Unsupported for {src:?}, got {other:?}"),
    }
}

fn syntax(src: &str) -> (u32, u32, String, String) {
    match MaaPolicy::parse(src) {
        Err(PolicyError::Syntax {
            line,
            column,
            expected,
            found,
        }) => (line, column, expected, found),
        other => panic!("expected Syntax for {src:?}, got {other:?}"),
    }
}

#[test]
fn unsupported_constructs_are_named_precisely() {
    let (c, line) = unsupported(
        "version=1.2;\nauthorizationrules { => permit(); };\nissuancerules {\n c:[type==\"events\"] => add(type=\"x\", value=JmesPath(c.value, \"Events\"));\n};",
    );
    assert_eq!(line, 4);
    assert!(c.contains("JmesPath") && c.contains("function"), "{c}");

    let (c, _) = unsupported(
        "version=1.0; authorizationrules { [type==\"a\"] || [type==\"b\"] => permit(); };",
    );
    assert!(c.contains("||"), "{c}");

    let (c, _) = unsupported(
        "version=1.0; authorizationrules { [type==\"a\", value=~\"^x\"] => permit(); };",
    );
    assert!(c.contains("=~"), "{c}");

    let (c, _) = unsupported(
        "version=1.0; authorizationrules { => permit(); }; issuancerules { c:[type==\"a\"] => issue(type=\"b\", value=c.value + \"x\"); };",
    );
    assert!(c.contains('+'), "{c}");

    let (c, line) = unsupported("\nversion=2.0; authorizationrules { => permit(); };");
    assert_eq!(line, 2);
    assert!(
        c.contains("version=2.0") && c.contains("1.0, 1.1, 1.2"),
        "{c}"
    );

    let (c, _) = unsupported("version=1.0; authorizationrules { ![type==\"a\"] => permit(); };");
    assert!(c.contains("version=1.2"), "{c}");

    let (c, _) = unsupported("version=1.0; authorizationrules { => frobnicate(); };");
    assert!(c.contains("frobnicate"), "{c}");
}

#[test]
fn syntax_errors_say_where_expected_and_found() {
    let (line, col, expected, found) =
        syntax("version=1.0;\nauthorizationrules {\n  [type==\"a\" value==1] => permit();\n};");
    assert_eq!((line, col), (3, 14));
    assert_eq!(expected, "`]`");
    assert_eq!(found, "`value`");

    let (_, _, expected, _) = syntax("authorizationrules { => permit(); };");
    assert!(expected.contains("version"), "{expected}");

    let (_, _, expected, found) = syntax("version=1.0; issuancerules { };");
    assert_eq!(
        (expected.as_str(), found.as_str()),
        ("an authorizationrules section", "none")
    );

    let (_, _, expected, _) =
        syntax("version=1.0; authorizationrules { => issue(type=\"a\", value=1); };");
    assert!(expected.contains("permit, deny, add"), "{expected}");

    let (_, _, expected, found) =
        syntax("version=1.0; authorizationrules { [type < \"a\"] => permit(); };");
    assert!(
        expected.contains("ordering compares values only"),
        "{expected}"
    );
    assert_eq!(found, "`<`");

    let (_, _, expected, found) = syntax(
        "version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=\"a\", value=d.value); };",
    );
    assert!(expected.contains("bound by an earlier"), "{expected}");
    assert_eq!(found, "`d`");

    let (_, _, expected, _) = syntax("version=1.0; authorizationrules { => permit() };");
    assert_eq!(expected, "`;`");

    let (line, _, expected, _) = syntax("version=1.0;\n\"unterminated");
    assert_eq!(line, 2);
    assert!(expected.contains("closing"), "{expected}");

    let long = vec!["[type==\"a\"]"; 65].join(" && ");
    let (_, _, expected, _) = syntax(&format!(
        "version=1.0; authorizationrules {{ {long} => permit(); }};"
    ));
    assert!(expected.contains("at most 64 conditions"), "{expected}");

    let (_, _, expected, _) =
        syntax("version=1.0; authorizationrules { => permit(); }; authorizationrules { };");
    assert!(expected.contains("at most one"), "{expected}");
}

#[test]
fn policy_hash_follows_the_reference_formula() {
    // Independent computation: base64url(SHA-256(UTF-8(base64url(UTF-8(policy))))).
    use sha2::Digest;
    let inner = URL_SAFE_NO_PAD.encode(DEFAULT.as_bytes());
    let expected = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(inner.as_bytes()));
    assert_eq!(maa_policy_hash(DEFAULT), expected);
    assert_eq!(maa_policy_hash(DEFAULT).len(), 43);
    assert_ne!(maa_policy_hash(DEFAULT), maa_policy_hash(SGX_POLICY));
}

#[test]
fn policy_upload_jws_round_trip_and_errors() {
    let jws = unsigned_policy_jws(SGX_POLICY);
    let up = parse_policy_jws(&format!("  {jws}\n")).unwrap();
    assert_eq!(up.alg, "none");
    assert_eq!(up.policy_text, SGX_POLICY);
    assert!(up.signature.is_empty());
    assert!(jws.starts_with(&up.signing_input));

    // RS256 with x5c: parts are returned for the caller to verify.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","x5c":["MIIBfake"]}"#);
    let payload = URL_SAFE_NO_PAD
        .encode(json!({"AttestationPolicy": URL_SAFE_NO_PAD.encode(DEFAULT)}).to_string());
    let sig = URL_SAFE_NO_PAD.encode([1u8, 2, 3]);
    let up = parse_policy_jws(&format!("{header}.{payload}.{sig}")).unwrap();
    assert_eq!(up.alg, "RS256");
    assert_eq!(up.x5c, ["MIIBfake"]);
    assert_eq!(up.signature, [1, 2, 3]);
    assert_eq!(up.policy_text, DEFAULT);
    assert_eq!(up.signing_input, format!("{header}.{payload}"));

    // The Python SDK's form: alg "RSA256", the chain in jwk.x5c.
    let py = URL_SAFE_NO_PAD.encode(br#"{"alg": "RSA256", "jwk": {"x5c": ["MIIBfake"]}}"#);
    let up = parse_policy_jws(&format!("{py}.{payload}.{sig}")).unwrap();
    assert_eq!(
        (up.alg.as_str(), up.x5c.as_slice()),
        ("RS256", &["MIIBfake".to_string()][..])
    );

    let jws_err = |s: &str| match parse_policy_jws(s) {
        Err(PolicyError::Jws { expected, found }) => (expected, found),
        other => panic!("expected a Jws error for {s:?}, got {other:?}"),
    };
    assert!(jws_err("a.b").0.contains("three"));
    let h256 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
    let (e, f) = jws_err(&format!("{h256}.{payload}."));
    assert!(e.contains("RS256") && f.contains("HS256"), "{e} / {f}");
    let hnone = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    assert!(
        jws_err(&format!("{hnone}.{payload}.{sig}"))
            .0
            .contains("empty signature")
    );
    assert!(
        jws_err(&format!("{header}.{payload}."))
            .0
            .contains("signature for alg RS256")
    );
    // Two different chains: ambiguous.
    let both = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","x5c":["A"],"jwk":{"x5c":["B"]}}"#);
    assert!(
        jws_err(&format!("{both}.{payload}.{sig}"))
            .1
            .contains("different")
    );
    let nopolicy = URL_SAFE_NO_PAD.encode(br#"{"Other":1}"#);
    assert!(
        jws_err(&format!("{hnone}.{nopolicy}."))
            .0
            .contains("AttestationPolicy")
    );
    assert!(jws_err(&format!("{hnone}.!!!.")).0.contains("base64url"));
}

#[test]
fn incoming_claim_value_types() {
    assert_eq!(IncomingClaim::new("a", json!(true)).value_type(), "Boolean");
    assert_eq!(IncomingClaim::new("a", json!(3)).value_type(), "Integer");
    assert_eq!(IncomingClaim::new("a", json!("x")).value_type(), "String");
    let p = MaaPolicy::parse(
        "version=1.0; authorizationrules { [type==\"a\", valueType==\"Integer\", issuer==\"AttestationService\"] => permit(); };",
    )
    .unwrap();
    assert!(p.evaluate(&[IncomingClaim::new("a", json!(3))]).allowed);
    assert!(!p.evaluate(&[IncomingClaim::new("a", json!("3"))]).allowed);
}

#[test]
fn binding_explosion_is_bounded_and_denies() {
    // 4 conditions over 100 claims = 10^8 combinations: stopped by the budget, denied.
    let src = "version=1.0; authorizationrules { [type==\"k\"] && [type==\"k\"] && [type==\"k\"] && [type==\"k\"] => permit(); };";
    let p = MaaPolicy::parse(src).unwrap();
    let claims: Vec<IncomingClaim> = (0..100)
        .map(|i| IncomingClaim::new("k", json!(i)))
        .collect();
    let d = p.evaluate(&claims);
    assert!(!d.allowed);
    assert!(
        d.failed[0].expected.contains("claim combinations"),
        "{:?}",
        d.failed
    );
    let _ = maa::MAX_BINDINGS;
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9-]{0,8}".prop_map(Value::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = MaaPolicy::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_policy_like_text(
        parts in proptest::collection::vec(prop_oneof![
            Just("version=1.2;"), Just("authorizationrules"), Just("issuancerules"),
            Just("configurationrules"), Just("{"), Just("}"), Just(";"), Just("=>"), Just("["),
            Just("]"), Just("c:"), Just("!"), Just("type==\"a\""), Just("value>=3"), Just(","),
            Just("&&"), Just("permit()"), Just("deny()"), Just("issue(type=\"x\", value=c.value)"),
            Just("c.value"), Just("\""), Just("/*"), Just("-"), Just("f(1)"),
        ], 0..40)
    ) {
        let src = parts.concat();
        if let Ok(p) = MaaPolicy::parse(&src) {
            let _ = p.evaluate(&[IncomingClaim::new("a", json!(3))]);
        }
    }

    #[test]
    fn evaluate_never_panics_and_denials_are_explained(
        claims in proptest::collection::vec(("[a-c]", arb_value()), 0..12)
    ) {
        let incoming: Vec<IncomingClaim> =
            claims.into_iter().map(|(t, v)| IncomingClaim::new(t, v)).collect();
        for src in [SGX_POLICY, SNP_POLICY, DEFAULT] {
            let p = MaaPolicy::parse(src).unwrap();
            let d = p.evaluate(&incoming);
            prop_assert!(d.allowed || !d.failed.is_empty());
        }
        let p = MaaPolicy::parse(
            "version=1.2; authorizationrules { c:[type==\"a\"] && [type==\"b\", value==c.value] => permit(); ![type==\"c\"] => deny(); }; issuancerules { c:[type==\"a\"] => issue(type=\"x\", value=c.value); };",
        ).unwrap();
        let d = p.evaluate(&incoming);
        prop_assert!(d.allowed || !d.failed.is_empty());
    }
}

#[test]
fn a_long_single_line_policy_parses_quickly() {
    let rules = "[type==\"a\", value==1] => permit(); ".repeat(5000);
    let src = format!("version=1.0; authorizationrules {{ {rules} }};");
    let start = std::time::Instant::now();
    let p = MaaPolicy::parse(&src).unwrap();
    assert_eq!(p.authorization_rules.len(), 5000);
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}
