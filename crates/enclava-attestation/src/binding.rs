//! Binding checks: caller-supplied data (runtime data, init-time data, the challenge nonce) is
//! only believed when the verified evidence commits to it.
//!
//! | data | binding | TEEs |
//! |---|---|---|
//! | runtime data | SHA-256(data) = report_data\[0..32\] (bytes 32..64 free) | sgx, tdx, snp, sim |
//! | runtime data | SHA-256(data) = the vTPM quote's extraData (exactly, or followed by zero bytes only) | azure-snp, azure-tdx |
//! | init-time data | SHA-256(data) = HOST_DATA (all 32 bytes) | snp |
//! | init-time data | SHA-256(data) = CONFIGID\[0..32\] | sgx |
//! | init-time data | MRCONFIGID = SHA-256(data) ‖ 16 zero bytes (all 48 bytes) | tdx |
//! | init-time data | none: refused (`invalid_data`) | azure-snp, azure-tdx, sim |
//! | challenge nonce (native) | the runtime data is a JSON object whose member `"nonce"` is the challenge string, and the runtime data is bound as above | all |
//!
//! The runtime-data and SNP/SGX init-time checks are enclava-token's ([`maa_claims`]); the TDX
//! MRCONFIGID and challenge checks are here. A failed binding is a denial naming the rule:
//! `runtime_data_binding` (path `claims.report_data`, or `claims.azure.nonce` for Azure CVMs),
//! `init_data_binding` (`claims.snp.host_data`, `claims.sgx.config_id`, `claims.tdx.mr_config_id`)
//! and `nonce_binding` (`runtime_data.nonce`); all failures are reported together.
//!
//! JSON runtime data becomes the token claim `x-ms-runtime` (with its `keys` JWKs; private JWK
//! members are refused), binary runtime data `x-ms-sgx-ehd` (SGX) or `x-enclava-runtime-data`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_evidence::{Claims, Tee};
use enclava_policy::FailedRule;
use enclava_token::TokenError;
use enclava_token::maa::{AttestData, DataType, MaaInput, maa_claims};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::AttestError;

/// Rule names of binding failures.
pub const RULE_RUNTIME: &str = "runtime_data_binding";
pub const RULE_INIT: &str = "init_data_binding";
pub const RULE_NONCE: &str = "nonce_binding";

fn runtime_path(tee: Tee) -> &'static str {
    match tee {
        Tee::AzureSnp | Tee::AzureTdx => "claims.azure.nonce",
        _ => "claims.report_data",
    }
}

fn init_path(tee: Tee) -> &'static str {
    match tee {
        Tee::Snp => "claims.snp.host_data",
        Tee::Sgx => "claims.sgx.config_id",
        _ => "claims.tdx.mr_config_id",
    }
}

/// A token-crate error during mapping, as ours.
fn from_token(e: TokenError, rule: &str, path: &str) -> Result<FailedRule, AttestError> {
    match e {
        TokenError::DataBinding {
            expected, found, ..
        } => Ok(FailedRule::new(rule, path, expected, found)),
        TokenError::InvalidData { what, reason } => Err(AttestError::InvalidData { what, reason }),
        other => Err(AttestError::Token {
            code: other.code(),
            reason: other.to_string(),
        }),
    }
}

/// MRCONFIGID = SHA-256(init data) || 16 zero bytes.
fn check_tdx_init(claims: &Claims, d: &AttestData) -> Result<Option<FailedRule>, AttestError> {
    let found = claims
        .tdx
        .as_ref()
        .map(|t| t.mr_config_id.to_ascii_lowercase())
        .ok_or_else(|| AttestError::Token {
            code: "malformed_claims",
            reason: "tee is tdx but the claims have no tdx object".into(),
        })?;
    let digest = Sha256::digest(&d.data);
    let expected = format!("{}{}", hex::encode(digest), "00".repeat(16));
    if found == expected {
        return Ok(None);
    }
    Ok(Some(FailedRule::new(
        RULE_INIT,
        init_path(Tee::Tdx),
        format!("MRCONFIGID = SHA-256(init data) || 16 zero bytes = {expected}"),
        found,
    )))
}

/// The challenge must be the `nonce` member of the (JSON object) runtime data.
fn check_nonce(runtime: Option<&AttestData>, challenge: &str) -> Option<FailedRule> {
    let expected = format!("runtime data JSON with \"nonce\": {challenge:?}");
    let found = match runtime {
        None => "no runtime data".to_string(),
        Some(d) => match serde_json::from_slice::<Value>(&d.data) {
            Ok(Value::Object(m)) => match m.get("nonce") {
                Some(Value::String(s)) if s == challenge => return None,
                Some(Value::String(s)) => {
                    format!("nonce {:?}", s.chars().take(64).collect::<String>())
                }
                Some(_) => "a non-string nonce".to_string(),
                None => "runtime data JSON without a nonce member".to_string(),
            },
            Ok(_) => "runtime data JSON that is not an object".to_string(),
            Err(_) => "runtime data that is not JSON".to_string(),
        },
    };
    Some(FailedRule::new(
        RULE_NONCE,
        "runtime_data.nonce",
        expected,
        found,
    ))
}

/// Check every binding and build the MAA-named claims map (without `nonce`, `x-ms-policy-hash`
/// and the registered claims, which the service adds). Binding failures are one
/// [`AttestError::Denied`] naming all of them.
pub fn bind(
    claims: &Claims,
    runtime: Option<&AttestData>,
    init: Option<&AttestData>,
    challenge: Option<&str>,
) -> Result<Map<String, Value>, AttestError> {
    let tee = claims.tee;
    let mut failed = Vec::new();

    // Init-time data: where does it bind?
    let init_for_token = match (init, tee) {
        (None, _) => None,
        (Some(d), Tee::Snp | Tee::Sgx) => Some(d),
        (Some(d), Tee::Tdx) => {
            failed.extend(check_tdx_init(claims, d)?);
            None
        }
        (Some(_), other) => {
            return Err(AttestError::InvalidData {
                what: "init-time data".into(),
                reason: format!(
                    "expected snp (HOST_DATA), sgx (CONFIGID) or tdx (MRCONFIGID) evidence, found {other}: it has nothing that binds init-time data"
                ),
            });
        }
    };

    // Each binding alone first, so that every failure is reported.
    if let Some(d) = runtime
        && let Err(e) = maa_claims(&MaaInput {
            runtime_data: Some(d),
            ..MaaInput::new(claims)
        })
    {
        failed.push(from_token(e, RULE_RUNTIME, runtime_path(tee))?);
    }
    if let Some(d) = init_for_token
        && let Err(e) = maa_claims(&MaaInput {
            init_time_data: Some(d),
            ..MaaInput::new(claims)
        })
    {
        failed.push(from_token(e, RULE_INIT, init_path(tee))?);
    }
    if let Some(c) = challenge {
        failed.extend(check_nonce(runtime, c));
    }
    if !failed.is_empty() {
        return Err(AttestError::Denied { failed });
    }

    let mut m = maa_claims(&MaaInput {
        runtime_data: runtime,
        init_time_data: init_for_token,
        ..MaaInput::new(claims)
    })
    .map_err(|e| match from_token(e, RULE_RUNTIME, runtime_path(tee)) {
        Ok(rule) => AttestError::Denied { failed: vec![rule] },
        Err(e) => e,
    })?;

    // TDX init-time data (bound above) is emitted like the others.
    if let (Some(d), Tee::Tdx) = (init, tee) {
        let json_obj = match d.data_type {
            DataType::Json => match serde_json::from_slice::<Value>(&d.data) {
                Ok(Value::Object(o)) => Some(o),
                _ => {
                    return Err(AttestError::InvalidData {
                        what: "init-time data".into(),
                        reason: "dataType is JSON: expected a JSON object".into(),
                    });
                }
            },
            DataType::Binary => None,
        };
        match json_obj {
            Some(o) => {
                m.insert("x-ms-inittime".into(), Value::Object(o));
            }
            None => {
                m.insert(
                    "x-enclava-inittime-data".into(),
                    URL_SAFE_NO_PAD.encode(&d.data).into(),
                );
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn sim_claims(report_data: [u8; 64]) -> Claims {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let ev = enclava_evidence::sim::generate(&[7u8; 48], &report_data, at);
        enclava_evidence::sim::verify(&ev, at).unwrap()
    }

    fn rd(data: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&Sha256::digest(data));
        out[40] = 9; // bytes 32..64 are free
        out
    }

    #[test]
    fn runtime_and_nonce() {
        let data =
            br#"{"nonce":"N1","keys":[{"kty":"EC","kid":"k","crv":"P-256","x":"AA","y":"AA"}]}"#;
        let c = sim_claims(rd(data));
        let rt = AttestData::json(&data[..]);
        let m = bind(&c, Some(&rt), None, Some("N1")).unwrap();
        assert_eq!(m["x-ms-runtime"]["keys"][0]["kid"], "k");

        let e = bind(&c, Some(&rt), None, Some("N2")).unwrap_err();
        let f = e.failed_rules();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, RULE_NONCE);
        assert!(f[0].found.contains("N1"), "{f:?}");

        let other = AttestData::json(&br#"{"nonce":"N2"}"#[..]);
        let e = bind(&c, Some(&other), None, Some("N2")).unwrap_err();
        let f = e.failed_rules();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, RULE_RUNTIME);
        assert_eq!(f[0].claim_path, "claims.report_data");
        assert!(
            f[0].expected
                .contains(&hex::encode(Sha256::digest(br#"{"nonce":"N2"}"#)))
        );

        let e = bind(&c, None, None, Some("N1")).unwrap_err();
        assert_eq!(e.failed_rules()[0].found, "no runtime data");

        let binary = AttestData::binary(b"bin".to_vec());
        let c2 = sim_claims(rd(b"bin"));
        let m = bind(&c2, Some(&binary), None, None).unwrap();
        assert_eq!(m["x-enclava-runtime-data"], URL_SAFE_NO_PAD.encode(b"bin"));
        let e = bind(&c2, Some(&binary), None, Some("x")).unwrap_err();
        assert_eq!(e.failed_rules()[0].found, "runtime data that is not JSON");
    }

    #[test]
    fn private_keys_and_init_data_on_sim_are_invalid() {
        let data = br#"{"keys":[{"kty":"EC","d":"secret"}]}"#;
        let c = sim_claims(rd(data));
        let e = bind(&c, Some(&AttestData::json(&data[..])), None, None).unwrap_err();
        assert_eq!(e.code(), "invalid_data", "{e}");
        assert!(!e.to_string().contains("secret"));
        let e = bind(&c, None, Some(&AttestData::binary(b"i".to_vec())), None).unwrap_err();
        assert_eq!(e.code(), "invalid_data");
        assert!(e.to_string().contains("found sim"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn binding_holds_exactly_for_the_bound_data(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
            other in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
        ) {
            let c = sim_claims(rd(&data));
            proptest::prop_assert!(bind(&c, Some(&AttestData::binary(data.clone())), None, None).is_ok());
            if other != data {
                let e = bind(&c, Some(&AttestData::binary(other)), None, None).unwrap_err();
                proptest::prop_assert_eq!(&e.failed_rules()[0].rule, RULE_RUNTIME);
            }
        }
    }
}
