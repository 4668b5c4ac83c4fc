//! The NVIDIA fetcher against loopback servers: a RIM service serving the real vector RIMs, and
//! an OCSP responder of a test PKI (NVIDIA publishes no OCSP responses to replay, and its
//! services are not reachable here). Time is injected.

mod common;

use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use base64::Engine;
use common::{FakeTime, Reply, Server, read, t};
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use enclava_collateral::{Cache, Error, NoJitter, NvidiaFetcher};
use enclava_evidence::nvidia::{self, ocsp, rim};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, PKCS_ECDSA_P384_SHA384};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, SingleResponse, Version,
};

const NT: &str = "nvidia-gpu/nvtrust";
const DRIVER_ID: &str = "NV_GPU_DRIVER_GH100_545.00";
const VBIOS_ID: &str = "NV_GPU_VBIOS_1010_0200_882_96005E0001";
const NONCE_TEST_NO_GPU: &str = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e";

fn rim_json(id: &str, xml: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "rim": base64::engine::general_purpose::STANDARD.encode(xml),
        "rim_format": "SWID",
    }))
    .unwrap()
}

struct Case1 {
    report: Vec<u8>,
    chain: Vec<u8>,
    driver: Vec<u8>,
    vbios: Vec<u8>,
}

fn case1() -> Option<Case1> {
    Some(Case1 {
        report: hex::decode(
            String::from_utf8(read(&format!("{NT}/attestationReport.txt"))?)
                .unwrap()
                .trim(),
        )
        .unwrap(),
        chain: read(&format!("{NT}/gpuAkCertChain.txt"))?,
        driver: read(&format!("{NT}/Driver_RIM_test_no_gpu.swidtag"))?,
        vbios: read(&format!(
            "{NT}/1010_0200_882_96005E0001_test_no_gpu.swidtag"
        ))?,
    })
}

fn rim_server(c: &Case1, tamper: bool) -> Server {
    let driver = c.driver.clone();
    let mut vbios = c.vbios.clone();
    if tamper {
        // Change one measurement value's hex digit inside the signed document.
        let text = String::from_utf8(vbios.clone()).unwrap();
        let pos = text.find("Hash0=\"").unwrap() + 7;
        vbios[pos] = if vbios[pos] == b'0' { b'1' } else { b'0' };
    }
    Server::start(move |target| match target {
        "/v1/rim/NV_GPU_DRIVER_GH100_545.00" => Reply::ok(rim_json(DRIVER_ID, &driver)),
        "/v1/rim/NV_GPU_VBIOS_1010_0200_882_96005E0001" => Reply::ok(rim_json(VBIOS_ID, &vbios)),
        // Serves the driver RIM under the VBIOS id of another board: not the RIM asked for.
        "/v1/rim/NV_GPU_VBIOS_1010_0205_862_96005E0004" => {
            Reply::ok(rim_json("NV_GPU_VBIOS_1010_0205_862_96005E0004", &driver))
        }
        _ => Reply::status(404),
    })
}

fn fetcher(
    cache: &Cache,
    rim: &Server,
    ocsp: Option<&Server>,
    time: &Arc<FakeTime>,
) -> NvidiaFetcher {
    let f = NvidiaFetcher::new(cache.clone())
        .with_rim_url(&rim.base)
        .unwrap()
        .with_clock(time.clone())
        .with_sleeper(time.clone())
        .with_jitter(Arc::new(NoJitter));
    match ocsp {
        Some(o) => f.with_ocsp_url(&o.base).unwrap(),
        None => f,
    }
}

#[test]
fn rims_fetched_by_id_then_verification_runs_offline_from_the_cache() {
    let Some(c) = case1() else { return };
    let server = rim_server(&c, false);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    // Inside the RIMs' window (2023-06-27..2025-06-22, nvtrust MANIFEST).
    let time = FakeTime::new(t("2024-06-01T00:00:00Z"));
    let f = fetcher(&cache, &server, None, &time);

    // The ids come from the verified evidence (driver and VBIOS versions, project, SKUs).
    let devices = vec![nvidia::DeviceEvidence {
        arch: None,
        nonce: None,
        report: c.report.clone(),
        certs: c.chain.clone(),
    }];
    let report = f.fetch_for_evidence(&devices, false).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let ids: Vec<&str> = report.rims.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, [DRIVER_ID, VBIOS_ID]);
    assert_eq!(
        server.requests(),
        [
            "/v1/rim/NV_GPU_DRIVER_GH100_545.00",
            "/v1/rim/NV_GPU_VBIOS_1010_0200_882_96005E0001"
        ]
    );
    assert_eq!(cache.nvidia_rim(DRIVER_ID).unwrap(), c.driver);
    assert_eq!(
        cache.nvidia_rim_path(VBIOS_ID).unwrap(),
        dir.path()
            .join("nvidia/rim/NV_GPU_VBIOS_1010_0200_882_96005E0001.xml")
    );

    // Offline: the server is no longer asked; the RIMs come from the cache by the claims' ids.
    let offline = Cache::open(dir.path()).unwrap();
    let nonce = hex::decode(NONCE_TEST_NO_GPU).unwrap();
    let first = nvidia::verify(
        &c.report,
        &c.chain,
        &[],
        Some(&nonce),
        t("2024-06-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(first.measres, "not_compared");
    let xmls: Vec<Vec<u8>> = first
        .rim_ids
        .iter()
        .map(|id| offline.nvidia_rim(id).unwrap())
        .collect();
    let refs: Vec<&[u8]> = xmls.iter().map(Vec::as_slice).collect();
    let claims = nvidia::verify(
        &c.report,
        &c.chain,
        &refs,
        Some(&nonce),
        t("2024-06-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(claims.measres, "success");
    assert_eq!(server.requests().len(), 2);

    // A missing RIM is a typed error naming the file and the command that fetches it.
    let e = offline
        .nvidia_rim("NV_GPU_DRIVER_GH100_999.99")
        .unwrap_err();
    assert_eq!(e.code(), "missing_file");
    assert!(
        e.to_string()
            .contains("--nvidia-rim NV_GPU_DRIVER_GH100_999.99"),
        "{e}"
    );
}

#[test]
fn altered_wrong_or_expired_rims_are_not_cached() {
    let Some(c) = case1() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-06-01T00:00:00Z"));

    // Attack: the RIM service (or the path to it) alters a reference value.
    let bad = rim_server(&c, true);
    let e = fetcher(&cache, &bad, None, &time)
        .fetch_rim(VBIOS_ID)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_collateral", "{e}");
    assert!(
        e.to_string().contains("rim_signature") || e.to_string().contains("RIM signature"),
        "{e}"
    );
    assert!(cache.nvidia_rim(VBIOS_ID).is_err(), "nothing cached");

    // Another RIM than the one asked for.
    let good = rim_server(&c, false);
    let f = fetcher(&cache, &good, None, &time);
    let e = f
        .fetch_rim("NV_GPU_VBIOS_1010_0205_862_96005E0004")
        .unwrap_err();
    assert_eq!(e.code(), "invalid_collateral", "{e}");
    assert!(e.to_string().contains("colloquialVersion"), "{e}");

    // Expired at the fetch time.
    time.set(t("2026-01-01T00:00:00Z"));
    let e = f.fetch_rim(DRIVER_ID).unwrap_err();
    assert!(e.to_string().contains("RIM expired"), "{e}");
    assert!(cache.nvidia_rim(DRIVER_ID).is_err());

    // Unknown id: 404. Path-like ids are refused before any request.
    time.set(t("2024-06-01T00:00:00Z"));
    assert!(matches!(
        f.fetch_rim("NV_GPU_DRIVER_GH100_1.0"),
        Err(Error::NotFound { .. })
    ));
    let before = good.requests().len();
    for id in ["../etc/passwd", ".hidden", "a/b", "", "x y"] {
        assert_eq!(f.fetch_rim(id).unwrap_err().code(), "config", "{id:?}");
    }
    assert_eq!(good.requests().len(), before);
}

// ---- OCSP against a loopback responder of a test PKI ----

const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

struct Node {
    key: KeyPair,
    cert: rcgen::Certificate,
}

fn node(cn: &str, ca: bool, by: Option<&Node>) -> Node {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = if ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::NoCa
    };
    let cert = match by {
        Some(b) => p.signed_by(&key, &b.cert, &b.key).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    Node { key, cert }
}

fn gtime(t: chrono::DateTime<chrono::Utc>) -> OcspGeneralizedTime {
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(t.timestamp() as u64))
            .unwrap(),
    )
}

/// A responder for `ca`'s certificates: answers `status` for whatever certID it is asked about,
/// echoing the request's nonce (or `forced_nonce` instead, to play a replayed response).
fn responder(
    ca_der: Vec<u8>,
    ca_pkcs8: Vec<u8>,
    status: CertStatus,
    forced_nonce: Option<Vec<u8>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
) -> Server {
    Server::start_with_body(move |_target, body| {
        bodies.lock().unwrap().push(body.to_vec());
        let Ok(req) = OcspRequest::from_der(body) else {
            return Reply::status(400);
        };
        let nonce_ext = req
            .tbs_request
            .request_extensions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.extn_id == ocsp::OID_OCSP_NONCE);
        let nonce_ext = match (&forced_nonce, nonce_ext) {
            (Some(n), Some(mut e)) => {
                e.extn_value =
                    OctetString::new(OctetString::new(n.clone()).unwrap().to_der().unwrap())
                        .unwrap();
                Some(e)
            }
            (_, e) => e,
        };
        let now = t("2024-06-01T00:00:00Z");
        let ca = x509_cert::Certificate::from_der(&ca_der).unwrap();
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByName(ca.tbs_certificate.subject.clone()),
            produced_at: gtime(now),
            responses: vec![SingleResponse {
                cert_id: req.tbs_request.request_list[0].req_cert.clone(),
                cert_status: status,
                this_update: gtime(now - chrono::Duration::hours(1)),
                next_update: Some(gtime(now + chrono::Duration::days(7))),
                single_extensions: None,
            }],
            response_extensions: nonce_ext.map(|e| vec![e]),
        };
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &ca_pkcs8).unwrap();
        let sig = kp
            .sign(&SystemRandom::new(), &tbs.to_der().unwrap())
            .unwrap();
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: OID_ECDSA_SHA384,
                parameters: None,
            },
            signature: BitString::from_bytes(sig.as_ref()).unwrap(),
            certs: None,
        };
        Reply::ok(
            OcspResponse {
                response_status: OcspResponseStatus::Successful,
                response_bytes: Some(ResponseBytes {
                    response_type: ocsp::OID_OCSP_BASIC,
                    response: OctetString::new(basic.to_der().unwrap()).unwrap(),
                }),
            }
            .to_der()
            .unwrap(),
        )
        .header("Content-Type", "application/ocsp-response")
    })
}

#[test]
fn ocsp_fetched_with_a_nonce_verified_cached_and_used_offline() {
    let root = node("Test Root", true, None);
    let ca = node("Test Issuing CA", true, Some(&root));
    let leaf = node("Test Leaf", false, Some(&ca));
    let (leaf_der, ca_der) = (leaf.cert.der().to_vec(), ca.cert.der().to_vec());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let server = responder(
        ca_der.clone(),
        ca.key.serialize_der(),
        CertStatus::good(),
        None,
        bodies.clone(),
    );
    let rims = Server::start(|_| Reply::status(404));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-06-01T00:00:00Z"));
    let f = fetcher(&cache, &rims, Some(&server), &time);

    let (path, status) = f.fetch_ocsp(&leaf_der, &ca_der).unwrap();
    assert_eq!(status, ocsp::OcspStatus::Good);
    assert_eq!(path, cache.nvidia_ocsp_path(&leaf_der, &ca_der).unwrap());
    // The request was a POST of a DER OCSPRequest with a 32-byte nonce.
    let sent = bodies.lock().unwrap()[0].clone();
    let req = OcspRequest::from_der(&sent).unwrap();
    let ext = req.tbs_request.request_extensions.unwrap();
    assert_eq!(
        OctetString::from_der(ext[0].extn_value.as_bytes())
            .unwrap()
            .as_bytes()
            .len(),
        32
    );
    // Offline: the cached pool verifies the chain's revocation with the test root as anchor.
    let pool = Cache::open(dir.path())
        .unwrap()
        .nvidia_ocsp_responses()
        .unwrap();
    assert_eq!(pool.len(), 1);
    let chain = ocsp::check_chain_with_root(
        "device",
        &[leaf_der.clone(), ca_der.clone()],
        root.cert.der(),
        0,
        &pool,
        t("2024-06-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(chain.certs[0].status, "good");
    assert_eq!(
        chain.certs[1].status, "not_checked",
        "nobody asked about the CA"
    );

    // A revoked answer is cached as well: verification then fails on it.
    let revoked = responder(
        ca_der.clone(),
        ca.key.serialize_der(),
        CertStatus::Revoked(x509_ocsp::RevokedInfo {
            revocation_time: gtime(t("2024-05-01T00:00:00Z")),
            revocation_reason: Some(x509_cert::ext::pkix::CrlReason::CertificateHold),
        }),
        None,
        Arc::new(Mutex::new(Vec::new())),
    );
    let f = fetcher(&cache, &rims, Some(&revoked), &time);
    let (_, status) = f.fetch_ocsp(&leaf_der, &ca_der).unwrap();
    assert!(
        matches!(status, ocsp::OcspStatus::Revoked { .. }),
        "{status:?}"
    );
    let pool = cache.nvidia_ocsp_responses().unwrap();
    let e = ocsp::check_chain_with_root(
        "device",
        &[leaf_der.clone(), ca_der.clone()],
        root.cert.der(),
        0,
        &pool,
        t("2024-06-02T00:00:00Z"),
    )
    .unwrap_err();
    use enclava_evidence::error::FailedCheck;
    assert_eq!(e.failed_check(), "cert_revoked");
}

/// Attacks on the fetch: a replayed response (another request's nonce) and a responder that is
/// not the issuer. Neither is cached.
#[test]
fn ocsp_replayed_or_foreign_responses_are_not_cached() {
    let root = node("Test Root", true, None);
    let ca = node("Test Issuing CA", true, Some(&root));
    let leaf = node("Test Leaf", false, Some(&ca));
    let (leaf_der, ca_der) = (leaf.cert.der().to_vec(), ca.cert.der().to_vec());
    let rims = Server::start(|_| Reply::status(404));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-06-01T00:00:00Z"));

    let replay = responder(
        ca_der.clone(),
        ca.key.serialize_der(),
        CertStatus::good(),
        Some(vec![0xAB; 32]),
        Arc::new(Mutex::new(Vec::new())),
    );
    let e = fetcher(&cache, &rims, Some(&replay), &time)
        .fetch_ocsp(&leaf_der, &ca_der)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_collateral");
    assert!(e.to_string().contains("OCSP nonce"), "{e}");

    // Signed by the root under the issuer's name.
    let foreign = responder(
        ca_der.clone(),
        root.key.serialize_der(),
        CertStatus::good(),
        None,
        Arc::new(Mutex::new(Vec::new())),
    );
    let e = fetcher(&cache, &rims, Some(&foreign), &time)
        .fetch_ocsp(&leaf_der, &ca_der)
        .unwrap_err();
    assert!(e.to_string().contains("OCSP signature"), "{e}");
    assert!(cache.nvidia_ocsp_responses().unwrap().is_empty());
}

/// `put_nvidia_rim` checks as the fetcher does (for RIMs copied in by hand).
#[test]
fn put_rim_checks_before_writing() {
    let Some(c) = case1() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let at = t("2024-06-01T00:00:00Z");
    cache.put_nvidia_rim(DRIVER_ID, &c.driver, at).unwrap();
    assert_eq!(
        rim::parse(&cache.nvidia_rim(DRIVER_ID).unwrap())
            .unwrap()
            .version,
        "545.00"
    );
    assert!(cache.put_nvidia_rim(VBIOS_ID, &c.driver, at).is_err());
    assert!(cache.put_nvidia_rim(VBIOS_ID, b"<x/>", at).is_err());
}
