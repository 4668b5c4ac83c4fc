//! OCSP for the NVIDIA chains. There are no real OCSP responses in the vectors (the MANIFESTs say
//! so: NVIDIA's verifiers query ocsp.ndis.nvidia.com live), so these tests build a test PKI (P-384
//! CAs, a delegated responder) and sign responses with its keys; the verifier gets the test CA as
//! its trust anchor. The last tests run the real NVIDIA vectors through `verify_with_ocsp` and show
//! that a response the real issuer did not sign is refused.

mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use chrono::{DateTime, Utc};
use der::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use enclava_evidence::error::FailedCheck;
use enclava_evidence::nvidia::ocsp::{
    self, CertIdHash, OID_OCSP_BASIC, OID_OCSP_NONCE, OcspError, OcspStatus,
};
use enclava_evidence::nvidia::{self, rim};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    PKCS_ECDSA_P384_SHA384,
};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
    Version,
};

const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at("2026-06-01T12:00:00Z")
}

struct Node {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Node {
    fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }
}

fn params(cn: &str, ca: bool, eku: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = if ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::NoCa
    };
    p.extended_key_usages = eku;
    p
}

fn root(cn: &str) -> Node {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = params(cn, true, vec![]).self_signed(&key).unwrap();
    Node { key, cert }
}

fn issued(cn: &str, ca: bool, eku: Vec<ExtendedKeyUsagePurpose>, by: &Node) -> Node {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = params(cn, ca, eku)
        .signed_by(&key, &by.cert, &by.key)
        .unwrap();
    Node { key, cert }
}

/// Root -> issuing CA -> leaf, and a delegated responder of the issuing CA.
struct Pki {
    root: Node,
    ca: Node,
    leaf: Node,
    responder: Node,
}

fn pki() -> Pki {
    let root = root("Test Root");
    let ca = issued("Test Issuing CA", true, vec![], &root);
    let leaf = issued("Test Leaf", false, vec![], &ca);
    let responder = issued(
        "Test OCSP Responder",
        false,
        vec![ExtendedKeyUsagePurpose::OcspSigning],
        &ca,
    );
    Pki {
        root,
        ca,
        leaf,
        responder,
    }
}

/// The certID computed independently of the verifier: SHA-1 over the issuer's DER name and its
/// public key bits, and the certificate's serial.
fn sha1_cert_id(cert_der: &[u8], issuer_der: &[u8]) -> CertId {
    let cert = Certificate::from_der(cert_der).unwrap();
    let issuer = Certificate::from_der(issuer_der).unwrap();
    let sha1 = |b: &[u8]| {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, b)
            .as_ref()
            .to_vec()
    };
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: OID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&issuer.tbs_certificate.subject.to_der().unwrap()))
            .unwrap(),
        issuer_key_hash: OctetString::new(sha1(
            issuer
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        ))
        .unwrap(),
        serial_number: cert.tbs_certificate.serial_number,
    }
}

fn gtime(t: DateTime<Utc>) -> OcspGeneralizedTime {
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(t.timestamp() as u64))
            .unwrap(),
    )
}

fn by_name(n: &Node) -> ResponderId {
    ResponderId::ByName(
        Certificate::from_der(&n.der())
            .unwrap()
            .tbs_certificate
            .subject,
    )
}

fn by_key(n: &Node) -> ResponderId {
    let c = Certificate::from_der(&n.der()).unwrap();
    let h = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        c.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    );
    ResponderId::ByKey(OctetString::new(h.as_ref().to_vec()).unwrap())
}

/// A response under construction; `sign` makes the DER OCSPResponse.
struct Resp<'a> {
    cert_id: CertId,
    status: CertStatus,
    this_update: DateTime<Utc>,
    next_update: Option<DateTime<Utc>>,
    nonce: Option<Vec<u8>>,
    responder: ResponderId,
    signer: &'a KeyPair,
    certs: Option<Vec<Vec<u8>>>,
}

impl<'a> Resp<'a> {
    /// A `good` answer for the PKI's leaf, signed by its issuer, current at [`now`].
    fn good(p: &'a Pki) -> Resp<'a> {
        Resp {
            cert_id: sha1_cert_id(&p.leaf.der(), &p.ca.der()),
            status: CertStatus::good(),
            this_update: now() - chrono::Duration::hours(1),
            next_update: Some(now() + chrono::Duration::days(1)),
            nonce: None,
            responder: by_name(&p.ca),
            signer: &p.ca.key,
            certs: None,
        }
    }

    fn tbs(&self) -> ResponseData {
        ResponseData {
            version: Version::V1,
            responder_id: self.responder.clone(),
            produced_at: gtime(self.this_update),
            responses: vec![SingleResponse {
                cert_id: self.cert_id.clone(),
                cert_status: self.status,
                this_update: gtime(self.this_update),
                next_update: self.next_update.map(gtime),
                single_extensions: None,
            }],
            response_extensions: self.nonce.as_ref().map(|n| {
                vec![x509_cert::ext::Extension {
                    extn_id: OID_OCSP_NONCE,
                    critical: false,
                    extn_value: OctetString::new(
                        OctetString::new(n.clone()).unwrap().to_der().unwrap(),
                    )
                    .unwrap(),
                }]
            }),
        }
    }

    fn sign(&self) -> Vec<u8> {
        let tbs = self.tbs();
        let kp = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            &self.signer.serialize_der(),
        )
        .unwrap();
        let sig = kp
            .sign(&SystemRandom::new(), &tbs.to_der().unwrap())
            .unwrap();
        wrap(BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: OID_ECDSA_SHA384,
                parameters: None,
            },
            signature: BitString::from_bytes(sig.as_ref()).unwrap(),
            certs: self.certs.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| Certificate::from_der(c).unwrap())
                    .collect()
            }),
        })
    }
}

fn wrap(b: BasicOcspResponse) -> Vec<u8> {
    OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: OID_OCSP_BASIC,
            response: OctetString::new(b.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap()
}

fn verify(p: &Pki, resp: &[u8], nonce: Option<&[u8]>) -> Result<ocsp::OcspAnswer, OcspError> {
    ocsp::verify_response(resp, &p.leaf.der(), &p.ca.der(), nonce, now())
}

fn revoked(reason: Option<CrlReason>) -> CertStatus {
    CertStatus::Revoked(RevokedInfo {
        revocation_time: gtime(at("2026-05-01T00:00:00Z")),
        revocation_reason: reason,
    })
}

#[test]
fn good_answer_from_the_issuer() {
    let p = pki();
    let a = verify(&p, &Resp::good(&p).sign(), None).unwrap();
    assert_eq!(a.status, OcspStatus::Good);
    assert_eq!(a.responder, "Test Issuing CA");
    assert!(!a.delegated);
    assert!(!a.nonce_checked);
    assert_eq!(a.this_update, "2026-06-01T11:00:00Z");
    assert_eq!(a.next_update.as_deref(), Some("2026-06-02T12:00:00Z"));
    // responderID byKey names the issuer as well.
    let mut r = Resp::good(&p);
    r.responder = by_key(&p.ca);
    assert_eq!(
        verify(&p, &r.sign(), None).unwrap().status,
        OcspStatus::Good
    );
}

#[test]
fn revoked_and_certificate_hold_are_reported_with_time_and_reason() {
    let p = pki();
    for (reason, name) in [
        (Some(CrlReason::KeyCompromise), Some("keyCompromise")),
        (Some(CrlReason::CertificateHold), Some("certificateHold")),
        (None, None),
    ] {
        let mut r = Resp::good(&p);
        r.status = revoked(reason);
        let a = verify(&p, &r.sign(), None).unwrap();
        assert_eq!(
            a.status,
            OcspStatus::Revoked {
                time: "2026-05-01T00:00:00Z".into(),
                reason: name.map(str::to_string),
            }
        );
    }
}

#[test]
fn unknown_answer() {
    let p = pki();
    let mut r = Resp::good(&p);
    r.status = CertStatus::Unknown(Null);
    assert_eq!(
        verify(&p, &r.sign(), None).unwrap().status,
        OcspStatus::Unknown
    );
}

#[test]
fn delegated_responder_issued_by_the_issuer_with_ocsp_signing() {
    let p = pki();
    let mut r = Resp::good(&p);
    r.responder = by_key(&p.responder);
    r.signer = &p.responder.key;
    r.certs = Some(vec![p.responder.der()]);
    let a = verify(&p, &r.sign(), None).unwrap();
    assert_eq!(a.status, OcspStatus::Good);
    assert!(a.delegated);
    assert_eq!(a.responder, "Test OCSP Responder");
}

#[test]
fn wrong_responders_are_refused() {
    let p = pki();
    // A responder with id-kp-OCSPSigning but issued by the root, not by the leaf's issuer.
    let elsewhere = issued(
        "Root's OCSP Responder",
        false,
        vec![ExtendedKeyUsagePurpose::OcspSigning],
        &p.root,
    );
    // A certificate issued by the right CA but without id-kp-OCSPSigning.
    let no_eku = issued("Not A Responder", false, vec![], &p.ca);
    // A different CA with the same name as the issuer (a forged issuer).
    let impostor_root = root("Test Root");
    let impostor = issued("Test Issuing CA", true, vec![], &impostor_root);
    for (who, signer) in [("elsewhere", &elsewhere), ("no_eku", &no_eku)] {
        let mut r = Resp::good(&p);
        r.responder = by_name(signer);
        r.signer = &signer.key;
        r.certs = Some(vec![signer.der()]);
        let e = verify(&p, &r.sign(), None).unwrap_err();
        assert_eq!(e.code(), "ocsp_responder", "{who}: {e}");
    }
    // The delegated responder's certificate left out: nothing authorizes the signer.
    let mut r = Resp::good(&p);
    r.responder = by_key(&p.responder);
    r.signer = &p.responder.key;
    let e = verify(&p, &r.sign(), None).unwrap_err();
    assert_eq!(e.code(), "ocsp_responder", "{e}");
    // Signed by the impostor under the issuer's name: the name matches, the key does not.
    let mut r = Resp::good(&p);
    r.signer = &impostor.key;
    let e = verify(&p, &r.sign(), None).unwrap_err();
    assert_eq!(e.code(), "ocsp_signature", "{e}");
    // The leaf itself (not a responder) signing its own status.
    let mut r = Resp::good(&p);
    r.responder = by_name(&p.leaf);
    r.signer = &p.leaf.key;
    r.certs = Some(vec![p.leaf.der()]);
    let e = verify(&p, &r.sign(), None).unwrap_err();
    assert_eq!(e.code(), "ocsp_responder", "{e}");
}

#[test]
fn bad_signature_and_every_byte_flip_are_refused_without_panic() {
    let p = pki();
    let good = Resp::good(&p).sign();
    assert!(verify(&p, &good, None).is_ok());
    let mut accepted = Vec::new();
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0x01;
        if let Ok(a) = verify(&p, &b, None) {
            accepted.push((i, a));
        }
    }
    // A flip may only survive where it cannot change anything signed: there is no such place
    // in a DER response (the signature covers tbsResponseData; the envelope's tags and lengths
    // break parsing; the signature's own bytes break the signature).
    assert!(accepted.is_empty(), "accepted flips: {accepted:?}");
    for n in 0..good.len() {
        assert!(verify(&p, &good[..n], None).is_err(), "truncation at {n}");
    }
    // The signature itself altered.
    let mut r = Resp::good(&p);
    r.signer = &p.root.key;
    let e = verify(&p, &r.sign(), None).unwrap_err();
    assert_eq!(e.code(), "ocsp_signature", "{e}");
}

#[test]
fn stale_responses_are_refused() {
    let p = pki();
    let mut r = Resp::good(&p);
    r.this_update = now() - chrono::Duration::days(3);
    r.next_update = Some(now() - chrono::Duration::seconds(1));
    let e = verify(&p, &r.sign(), None).unwrap_err();
    assert_eq!(e.code(), "ocsp_stale", "{e}");
    // From the future (beyond the 5-minute skew).
    let mut r = Resp::good(&p);
    r.this_update = now() + chrono::Duration::minutes(10);
    r.next_update = Some(now() + chrono::Duration::days(2));
    assert_eq!(
        verify(&p, &r.sign(), None).unwrap_err().code(),
        "ocsp_stale"
    );
    // Within the skew: accepted.
    r.this_update = now() + chrono::Duration::minutes(4);
    assert!(verify(&p, &r.sign(), None).is_ok());
    // Without nextUpdate: at most one day old.
    let mut r = Resp::good(&p);
    r.next_update = None;
    r.this_update = now() - chrono::Duration::hours(23);
    assert!(verify(&p, &r.sign(), None).is_ok());
    r.this_update = now() - chrono::Duration::hours(25);
    assert_eq!(
        verify(&p, &r.sign(), None).unwrap_err().code(),
        "ocsp_stale"
    );
}

#[test]
fn nonce_checked_when_configured() {
    let p = pki();
    let sent = [7u8; 32];
    let mut r = Resp::good(&p);
    r.nonce = Some(sent.to_vec());
    let good = r.sign();
    assert!(verify(&p, &good, Some(&sent)).unwrap().nonce_checked);
    // A replayed response with another request's nonce.
    let e = verify(&p, &good, Some(&[8u8; 32])).unwrap_err();
    assert_eq!(e.code(), "ocsp_nonce", "{e}");
    // A response without a nonce when one was sent.
    let e = verify(&p, &Resp::good(&p).sign(), Some(&sent)).unwrap_err();
    assert_eq!(e.code(), "ocsp_nonce", "{e}");
    assert!(e.to_string().contains("no nonce extension"), "{e}");
}

#[test]
fn response_for_another_certificate_and_unsuccessful_status() {
    let p = pki();
    let other = issued("Other Leaf", false, vec![], &p.ca);
    let mut r = Resp::good(&p);
    r.cert_id = sha1_cert_id(&other.der(), &p.ca.der());
    let e = verify(&p, &r.sign(), None).unwrap_err();
    assert_eq!(e.code(), "ocsp_cert_id", "{e}");
    let try_later = OcspResponse {
        response_status: OcspResponseStatus::TryLater,
        response_bytes: None,
    }
    .to_der()
    .unwrap();
    assert_eq!(
        verify(&p, &try_later, None).unwrap_err().code(),
        "ocsp_status"
    );
    assert_eq!(
        verify(&p, b"garbage", None).unwrap_err().code(),
        "ocsp_malformed"
    );
}

#[test]
fn request_carries_the_cert_id_and_the_nonce() {
    let p = pki();
    let req = ocsp::build_request(
        &p.leaf.der(),
        &p.ca.der(),
        CertIdHash::Sha1,
        Some(&[9u8; 16]),
    )
    .unwrap();
    let parsed = OcspRequest::from_der(&req).unwrap();
    let want = sha1_cert_id(&p.leaf.der(), &p.ca.der());
    let got = &parsed.tbs_request.request_list[0].req_cert;
    assert_eq!(got.issuer_name_hash, want.issuer_name_hash);
    assert_eq!(got.issuer_key_hash, want.issuer_key_hash);
    assert_eq!(got.serial_number, want.serial_number);
    let ext = parsed.tbs_request.request_extensions.unwrap();
    assert_eq!(ext[0].extn_id, OID_OCSP_NONCE);
    assert_eq!(
        OctetString::from_der(ext[0].extn_value.as_bytes())
            .unwrap()
            .as_bytes(),
        &[9u8; 16]
    );
    // SHA-384 certIDs (what NVIDIA's verifiers send) are matched too.
    let req384 = ocsp::build_request(&p.leaf.der(), &p.ca.der(), CertIdHash::Sha384, None).unwrap();
    let id384 = OcspRequest::from_der(&req384)
        .unwrap()
        .tbs_request
        .request_list[0]
        .req_cert
        .clone();
    assert_eq!(id384.issuer_key_hash.as_bytes().len(), 48);
    let mut r = Resp::good(&p);
    r.cert_id = id384;
    let resp = r.sign();
    assert!(ocsp::covers(&resp, &p.leaf.der(), &p.ca.der()));
    assert_eq!(verify(&p, &resp, None).unwrap().status, OcspStatus::Good);
}

/// The chain-level check with the test PKI as trust anchor: revoked fails with the chain's
/// code; unknown, stale and missing answers are claims.
#[test]
fn chain_check_fails_revoked_and_reports_the_rest() {
    let p = pki();
    let chain = vec![p.leaf.der(), p.ca.der()];
    let anchor = p.root.der();
    let ca_good = |p: &Pki| {
        let mut r = Resp::good(p);
        r.cert_id = sha1_cert_id(&p.ca.der(), &p.root.der());
        r.responder = by_name(&p.root);
        r.signer = &p.root.key;
        r.sign()
    };
    let pool = vec![Resp::good(&p).sign(), ca_good(&p)];
    let c = ocsp::check_chain_with_root("device", &chain, &anchor, 0, &pool, now()).unwrap();
    assert_eq!(c.status, "good");
    assert_eq!(
        c.certs
            .iter()
            .map(|c| c.status.as_str())
            .collect::<Vec<_>>(),
        ["good", "good"]
    );
    // Only the leaf answered: the issuing CA is not checked.
    let c = ocsp::check_chain_with_root("device", &chain, &anchor, 0, &pool[..1], now()).unwrap();
    assert_eq!(c.status, "not_checked");
    // certificateHold is a revocation: it fails, with the chain named in the code.
    let mut r = Resp::good(&p);
    r.status = revoked(Some(CrlReason::CertificateHold));
    let held = vec![r.sign(), ca_good(&p)];
    for (name, code) in [("device", "cert_revoked"), ("driver", "rim_revoked")] {
        let e = ocsp::check_chain_with_root(name, &chain, &anchor, 0, &held, now()).unwrap_err();
        assert_eq!(e.failed_check(), code, "{e}");
        assert!(e.to_string().contains("certificateHold"), "{e}");
    }
    // A revoked answer is not hidden behind an earlier good one.
    let both = vec![pool[0].clone(), held[0].clone(), ca_good(&p)];
    let e = ocsp::check_chain_with_root("device", &chain, &anchor, 0, &both, now()).unwrap_err();
    assert_eq!(e.failed_check(), "cert_revoked");
    // Unknown and stale are claims, not failures.
    let mut r = Resp::good(&p);
    r.status = CertStatus::Unknown(Null);
    let c = ocsp::check_chain_with_root(
        "device",
        &chain,
        &anchor,
        0,
        &[r.sign(), ca_good(&p)],
        now(),
    )
    .unwrap();
    assert_eq!(c.status, "unknown");
    let mut r = Resp::good(&p);
    r.next_update = Some(now() - chrono::Duration::hours(1));
    let c = ocsp::check_chain_with_root(
        "device",
        &chain,
        &anchor,
        0,
        &[r.sign(), ca_good(&p)],
        now(),
    )
    .unwrap();
    assert_eq!(c.status, "stale");
    // start = 1 leaves the leaf out.
    let c = ocsp::check_chain_with_root("device", &chain, &anchor, 1, &pool[1..], now()).unwrap();
    assert_eq!(c.status, "good");
    assert_eq!(c.certs.len(), 1);
    // A forged response in the pool fails the check (it names the leaf, a stranger signed it).
    let mut r = Resp::good(&p);
    let stranger = root("Stranger");
    r.signer = &stranger.key;
    let e =
        ocsp::check_chain_with_root("device", &chain, &anchor, 0, &[r.sign()], now()).unwrap_err();
    assert_eq!(e.failed_check(), "ocsp_signature", "{e}");
    // The wrong trust anchor: the chain itself does not verify.
    let e = ocsp::check_chain_with_root("device", &chain, &stranger.der(), 0, &pool, now())
        .unwrap_err();
    assert_eq!(e.failed_check(), "cert_chain", "{e}");
}

// ---- the real NVIDIA vectors ----

const NT: &str = "nvidia-gpu/nvtrust";
const NONCE_TEST_NO_GPU: &str = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e";

fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    pem::parse_many(text.as_bytes())
        .unwrap()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.contents().to_vec())
        .collect()
}

struct Case1 {
    report: Vec<u8>,
    chain: Vec<u8>,
    rims: Vec<rim::Rim>,
}

fn case1() -> Option<Case1> {
    let report = hex::decode(
        String::from_utf8(common::read(&format!("{NT}/attestationReport.txt"))?)
            .unwrap()
            .trim(),
    )
    .unwrap();
    let driver = common::read(&format!("{NT}/Driver_RIM_test_no_gpu.swidtag"))?;
    let vbios = common::read(&format!(
        "{NT}/1010_0200_882_96005E0001_test_no_gpu.swidtag"
    ))?;
    Some(Case1 {
        report,
        chain: common::read(&format!("{NT}/gpuAkCertChain.txt"))?,
        rims: vec![rim::parse(&driver).unwrap(), rim::parse(&vbios).unwrap()],
    })
}

fn case1_time() -> DateTime<Utc> {
    at("2024-06-01T00:00:00Z")
}

#[test]
fn real_gpu_without_responses_says_not_checked_and_cached_rims_give_the_same_claims() {
    let Some(c) = case1() else { return };
    let nonce = hex::decode(NONCE_TEST_NO_GPU).unwrap();
    let plain =
        nvidia::verify_parsed(&c.report, &c.chain, &c.rims, Some(&nonce), case1_time()).unwrap();
    assert!(!plain.revocation.checked);
    assert_eq!(plain.revocation.status, "not_checked");
    let json = serde_json::to_value(&plain).unwrap();
    assert_eq!(json["revocation"]["checked"], false);
    assert_eq!(json["revocation"]["status"], "not_checked");
    // Verified once, then used at another time inside their window: same claims.
    let checked: Vec<rim::CheckedRim> = c
        .rims
        .iter()
        .map(|r| rim::CheckedRim::check(r.clone(), case1_time()).unwrap())
        .collect();
    let refs: Vec<&rim::CheckedRim> = checked.iter().collect();
    let later = at("2024-09-01T00:00:00Z");
    let cached =
        nvidia::verify_with_ocsp(&c.report, &c.chain, &refs, Some(&nonce), later, &[]).unwrap();
    let again = nvidia::verify_parsed(&c.report, &c.chain, &c.rims, Some(&nonce), later).unwrap();
    assert_eq!(cached, again);
    // A cached RIM does not outlive its signing path (manifest: the window ends
    // 2025-06-22T09:38:54Z).
    let e = nvidia::verify_with_ocsp(
        &c.report,
        &c.chain,
        &refs,
        Some(&nonce),
        at("2025-07-01T00:00:00Z"),
        &[],
    )
    .unwrap_err();
    assert_eq!(e.failed_check(), "rim_expired", "{e}");
}

/// Attack: a "good" (or "revoked") answer for the real device chain, signed by a key that is not
/// NVIDIA's, under the real issuer's name. Refused with `ocsp_signature`, whatever it says.
#[test]
fn real_gpu_forged_response_for_the_device_chain_is_refused() {
    let Some(c) = case1() else { return };
    let certs = pem_certs(&c.chain);
    assert!(certs.len() >= 3, "leaf, BROM, ... in the vector chain");
    let forger = root("NVIDIA forger");
    // certs[1] (the device's BROM certificate, issued by certs[2]) is covered by OCSP.
    let issuer = Certificate::from_der(&certs[2]).unwrap();
    for status in [CertStatus::good(), revoked(Some(CrlReason::KeyCompromise))] {
        let r = Resp {
            cert_id: sha1_cert_id(&certs[1], &certs[2]),
            status,
            this_update: case1_time() - chrono::Duration::hours(1),
            next_update: Some(case1_time() + chrono::Duration::days(1)),
            nonce: None,
            responder: ResponderId::ByName(issuer.tbs_certificate.subject.clone()),
            signer: &forger.key,
            certs: None,
        };
        let checked: Vec<rim::CheckedRim> = c
            .rims
            .iter()
            .map(|r| rim::CheckedRim::check(r.clone(), case1_time()).unwrap())
            .collect();
        let refs: Vec<&rim::CheckedRim> = checked.iter().collect();
        let nonce = hex::decode(NONCE_TEST_NO_GPU).unwrap();
        let e = nvidia::verify_with_ocsp(
            &c.report,
            &c.chain,
            &refs,
            Some(&nonce),
            case1_time(),
            &[r.sign()],
        )
        .unwrap_err();
        assert_eq!(e.failed_check(), "ocsp_signature", "{e}");
        assert!(e.to_string().starts_with("device chain certificate"), "{e}");
    }
    // Responses for unrelated certificates are ignored: still verified, not checked.
    let p = pki();
    let nonce = hex::decode(NONCE_TEST_NO_GPU).unwrap();
    let claims = nvidia::verify_with_ocsp(
        &c.report,
        &c.chain,
        &[],
        Some(&nonce),
        case1_time(),
        &[Resp::good(&p).sign()],
    )
    .unwrap();
    assert_eq!(claims.revocation.status, "not_checked");
    assert!(!claims.revocation.checked);
    let device = &claims.revocation.chains[0];
    assert_eq!(device.chain, "device");
    assert_eq!(
        device.certs.len(),
        certs.len() - 2,
        "every certificate below the root except the attestation leaf"
    );
}

/// The link cache changes cost, never the verdict: same claims as uncached, and a chain whose
/// intermediate was altered after the genuine one was cached is still refused.
#[test]
fn verifier_link_cache_gives_the_same_verdicts() {
    let Some(c) = case1() else { return };
    let nonce = hex::decode(NONCE_TEST_NO_GPU).unwrap();
    let checked: Vec<rim::CheckedRim> = c
        .rims
        .iter()
        .map(|r| rim::CheckedRim::check(r.clone(), case1_time()).unwrap())
        .collect();
    let refs: Vec<&rim::CheckedRim> = checked.iter().collect();
    let plain =
        nvidia::verify_with_ocsp(&c.report, &c.chain, &refs, Some(&nonce), case1_time(), &[])
            .unwrap();
    let v = nvidia::NvidiaVerifier::new();
    for _ in 0..3 {
        let got = v
            .verify_with_ocsp(&c.report, &c.chain, &refs, Some(&nonce), case1_time(), &[])
            .unwrap();
        assert_eq!(got, plain);
    }
    let links = v.cached_links();
    assert!(links >= 3, "{links}");
    // Attack: the BROM certificate's signature altered (DER still valid).
    let mut certs = pem_certs(&c.chain);
    let last = certs[1].len() - 1;
    certs[1][last] ^= 0x01;
    let altered: Vec<u8> = certs.concat();
    let e = v
        .verify_with_ocsp(&c.report, &altered, &refs, Some(&nonce), case1_time(), &[])
        .unwrap_err();
    assert_eq!(e.failed_check(), "cert_chain", "{e}");
    // The leaf's link to the altered certificate did verify (its key is unchanged) and may be
    // cached; the altered certificate's own link never is: it fails every time.
    assert!(v.cached_links() <= links + 1);
    for _ in 0..2 {
        let e = v
            .verify_with_ocsp(&c.report, &altered, &refs, Some(&nonce), case1_time(), &[])
            .unwrap_err();
        assert_eq!(e.failed_check(), "cert_chain", "{e}");
    }
    // Validity is checked on every call, cached or not (before notBefore here: the chain's
    // notAfter is 9999).
    let e = v
        .verify_with_ocsp(
            &c.report,
            &c.chain,
            &[],
            Some(&nonce),
            at("2000-01-01T00:00:00Z"),
            &[],
        )
        .unwrap_err();
    assert_eq!(e.failed_check(), "certificate_expired", "{e}");
}
