//! Service and request builders shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use enclava_attestation::{
    AttestRequest, AttestationService, CollateralSource, MaaType, ServiceConfig,
};
use enclava_evidence::Tee;
use enclava_evidence::dcap::Collateral;
use enclava_token::{Es256Signer, Expectations, Jwks, TokenSigner, VerifiedToken};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://attest.enclava.test";

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// PEM text of DER certificates (or of the file as it is when it already is PEM).
pub fn pem_of(files: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for f in files {
        if f.starts_with(b"-----BEGIN") {
            out.push_str(&String::from_utf8(f.clone()).unwrap());
            out.push('\n');
            continue;
        }
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b = STANDARD.encode(f);
        for chunk in b.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Collateral handed out by quote (a stand-in for the PCS cache the server will have).
#[derive(Default)]
pub struct FixedCollateral(pub Vec<(Vec<u8>, Collateral)>);

impl CollateralSource for FixedCollateral {
    fn dcap_collateral(&self, _tee: Tee, quote: &[u8]) -> Option<Arc<Collateral>> {
        self.0
            .iter()
            .find(|(q, _)| q == quote)
            .map(|(_, c)| Arc::new(c.clone()))
    }
}

pub struct Env {
    pub svc: AttestationService,
    pub signer: Arc<Es256Signer>,
}

pub fn env_with(allow_sim: bool, collateral: FixedCollateral) -> Env {
    let store = Arc::new(enclava_store::SqliteStore::in_memory().unwrap());
    let signer = Arc::new(Es256Signer::generate("attest-key-1").unwrap());
    let mut config = ServiceConfig::new(ISSUER);
    config.allow_sim = allow_sim;
    let svc = AttestationService::new(store, signer.clone() as Arc<dyn TokenSigner>, config)
        .with_collateral_source(Arc::new(collateral))
        .with_row_keys(Arc::new(
            enclava_attestation::PolicyRowKeys::derive(|_| {
                Ok::<_, String>(zeroize::Zeroizing::new([0x5au8; 32]))
            })
            .unwrap(),
        ));
    Env { svc, signer }
}

pub fn env() -> Env {
    env_with(false, FixedCollateral::default())
}

/// Verify a token against the service's JWKS at `now`.
pub fn verify(env: &Env, token: &str, now: DateTime<Utc>) -> VerifiedToken {
    let jwks: Jwks = env.svc.jwks().unwrap();
    enclava_token::verify(token, &jwks, &Expectations::new(ISSUER, now)).unwrap()
}

pub fn maa(ty: MaaType, body: Value) -> AttestRequest {
    AttestRequest::from_maa_json(ty, body.to_string().as_bytes()).unwrap()
}

pub fn native(body: Value) -> AttestRequest {
    AttestRequest::from_native_json(body.to_string().as_bytes()).unwrap()
}

/// The MAA SevSnpVm body for a report and its certificate files (DER or PEM).
pub fn snp_body(report: &[u8], certs: &[Vec<u8>], extra: Value) -> Value {
    let inner = json!({"SnpReport": b64u(report), "VcekCertChain": b64u(pem_of(certs).as_bytes())});
    let mut body = json!({"report": b64u(inner.to_string().as_bytes())});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// A Rego appraisal policy from deny rules (allow when none fires).
pub fn rego(deny_rules: &str) -> String {
    format!(
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\n{deny_rules}\n"
    )
}
