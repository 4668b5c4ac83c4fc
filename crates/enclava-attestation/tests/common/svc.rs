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

/// A collateral source that counts its DCAP lookups (each one costs a cache search and copy).
pub struct CountingCollateral {
    pub inner: FixedCollateral,
    pub lookups: std::sync::atomic::AtomicUsize,
}

impl CollateralSource for CountingCollateral {
    fn dcap_collateral(&self, tee: Tee, quote: &[u8]) -> Option<Arc<Collateral>> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.dcap_collateral(tee, quote)
    }
}

pub fn env_with(allow_sim: bool, collateral: FixedCollateral) -> Env {
    env_with_source(allow_sim, Arc::new(collateral))
}

pub fn env_with_source(allow_sim: bool, collateral: Arc<dyn CollateralSource>) -> Env {
    let store = Arc::new(enclava_store::SqliteStore::in_memory().unwrap());
    let signer = Arc::new(Es256Signer::generate("attest-key-1").unwrap());
    let mut config = ServiceConfig::new(ISSUER);
    config.allow_sim = allow_sim;
    let svc = AttestationService::new(store, signer.clone() as Arc<dyn TokenSigner>, config)
        .with_collateral_source(collateral)
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

/// The default `snp` policy with the revocation requirement switched off: the real vectors come
/// without AMD CRLs (none is published among them), so this is the only way they can pass.
pub fn snp_without_revocation() -> String {
    let text = enclava_policy::rego::defaults::SNP;
    assert!(text.contains("require_revocation := true"));
    text.replace("require_revocation := true", "require_revocation := false")
}

/// A collateral source that has AMD CRLs (and nothing else) for every report.
pub struct CrlSource(pub Vec<Vec<u8>>);

impl CollateralSource for CrlSource {
    fn dcap_collateral(&self, _tee: Tee, _quote: &[u8]) -> Option<Arc<Collateral>> {
        None
    }
    fn snp_crls(&self, _report: &[u8]) -> Vec<Vec<u8>> {
        self.0.clone()
    }
}

/// A CRL naming the real ARK found in `pem_chain` as issuer (exact subject and signature
/// algorithm) with a signature AMD never made. No real AMD CRL is among the vectors: this is
/// how a test shows that a CRL reached the verifier (which then refuses it: `crl_signature`).
pub fn forged_ark_crl(pem_chain: &[u8]) -> Vec<u8> {
    use x509_cert::certificate::Version;
    use x509_cert::crl::{CertificateList, TbsCertList};
    use x509_cert::der::asn1::{BitString, GeneralizedTime};
    use x509_cert::der::{DecodePem, Encode};
    use x509_cert::time::Time;
    let text = String::from_utf8(pem_chain.to_vec()).unwrap();
    let ark = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter_map(|b| x509_cert::Certificate::from_pem(b.trim()).ok())
        .find(|c| c.tbs_certificate.subject == c.tbs_certificate.issuer)
        .expect("an ARK in the chain");
    let time = |secs: u64| {
        Time::GeneralTime(
            GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs)).unwrap(),
        )
    };
    CertificateList {
        tbs_cert_list: TbsCertList {
            version: Version::V2,
            signature: ark.signature_algorithm.clone(),
            issuer: ark.tbs_certificate.subject.clone(),
            this_update: time(1_600_000_000),
            next_update: Some(time(2_000_000_000)),
            revoked_certificates: None,
            crl_extensions: None,
        },
        signature_algorithm: ark.signature_algorithm.clone(),
        signature: BitString::from_bytes(&[0x5A; 512]).unwrap(),
    }
    .to_der()
    .unwrap()
}
