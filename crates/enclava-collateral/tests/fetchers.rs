//! The KDS and PCS fetchers against a loopback HTTP server that serves the real vectors. No
//! internet; time is injected (nothing sleeps for real).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{FakeTime, Reply, Server, files_under, read, t, url_encode};
use enclava_collateral::cache::report_key;
use enclava_collateral::{
    AmdKey, Cache, Clock, DcapTee, Error, KdsFetcher, NoJitter, PckCa, PcsFetcher, Politeness,
    Refresh,
};
use enclava_evidence::dcap;
use enclava_evidence::error::FailedCheck;
use enclava_evidence::snp::{self, Product};

const G: &str = "sev-snp/google-go-sev-guest";
const TDX: &str = "tdx/google-go-tdx-guest";
const GOOGLE_CHIP_ID: &str = "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d";
const GOOGLE_VCEK_PATH: &str = "/vcek/v1/Milan/3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d?blSPL=02&teeSPL=00&snpSPL=05&ucodeSPL=68";

struct Amd {
    report: Vec<u8>,
    vcek: Vec<u8>,
    chain: Vec<u8>,
}

fn amd() -> Option<Amd> {
    Some(Amd {
        report: read(&format!("{G}/attestation.bin"))?,
        vcek: read(&format!("{G}/vcek.testcer"))?,
        chain: read(&format!("{G}/ask_ark_milan.pem"))?,
    })
}

fn kds(cache: &Cache, server: &Server, time: &Arc<FakeTime>) -> KdsFetcher {
    KdsFetcher::new(cache.clone())
        .with_base_url(&server.base)
        .unwrap()
        .with_clock(time.clone())
        .with_sleeper(time.clone())
        .with_jitter(Arc::new(NoJitter))
}

/// Serves the Milan chain and the Google VCEK at their exact KDS paths; 404 for anything else.
fn kds_server(a: &Amd) -> Server {
    let (vcek, chain) = (a.vcek.clone(), a.chain.clone());
    Server::start(move |target| match target {
        GOOGLE_VCEK_PATH => Reply::ok(vcek.clone()),
        "/vcek/v1/Milan/cert_chain" => Reply::ok(chain.clone()),
        _ => Reply::status(404),
    })
}

#[test]
fn kds_fetches_vcek_and_chain_then_serves_from_cache() {
    let Some(a) = amd() else { return };
    let server = kds_server(&a);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);

    let key = report_key(&a.report).unwrap();
    assert_eq!(
        f.vcek_url(Product::Milan, &key.chip_id, key.reported_tcb),
        format!("{}{GOOGLE_VCEK_PATH}", server.base)
    );

    let e = f.fetch_for_report(&a.report, None).unwrap();
    // Exactly the chain, then the VCEK built from the report, ten seconds apart.
    assert_eq!(
        server.requests(),
        vec!["/vcek/v1/Milan/cert_chain", GOOGLE_VCEK_PATH]
    );
    assert_eq!(time.sleeps(), vec![Duration::from_secs(10)]);
    // Written to the cache.
    assert_eq!(
        files_under(dir.path()),
        vec![
            "amd/Milan/cert_chain.pem".to_string(),
            format!("amd/Milan/vcek/{GOOGLE_CHIP_ID}/0200000000000544.der"),
        ]
    );
    // And what came back verifies.
    let claims = snp::verify(&a.report, &e, t("2022-09-24T01:00:00Z")).unwrap();
    assert_eq!(claims.snp.as_ref().unwrap().chip_id, GOOGLE_CHIP_ID);

    // Second call: served from the cache, no request, no wait.
    let e2 = f.fetch_for_report(&a.report, None).unwrap();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(time.sleeps().len(), 1);
    assert_eq!(e2.certs_der, e.certs_der);
    // The hot path is the cache alone.
    assert_eq!(
        Cache::open(dir.path())
            .unwrap()
            .snp_endorsements(&a.report)
            .unwrap()
            .certs_der,
        e.certs_der
    );
}

#[test]
fn kds_honours_retry_after_and_spacing() {
    let Some(a) = amd() else { return };
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let vcek = a.vcek.clone();
    let server = Server::start(move |target| {
        if target != GOOGLE_VCEK_PATH {
            return Reply::status(404);
        }
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::status(429).header("Retry-After", "3")
        } else {
            Reply::ok(vcek.clone())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    cache
        .put_amd_cert_chain(Product::Milan, AmdKey::Vcek, &a.chain)
        .unwrap();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);
    f.fetch_for_report(&a.report, Some(Product::Milan)).unwrap();
    // 429 with Retry-After: 3 -> wait 3 s as asked, then 7 s more to keep 10 s between requests.
    assert_eq!(
        time.sleeps(),
        vec![Duration::from_secs(3), Duration::from_secs(7)]
    );
    assert_eq!(server.requests(), vec![GOOGLE_VCEK_PATH; 2]);
    assert_eq!(time.now(), t("2024-01-01T00:00:10Z"));

    // Spacing between separate calls: 4 s later a new request waits the remaining 6 s.
    time.clear_sleeps();
    time.advance(Duration::from_secs(4));
    let e = f
        .fetch_crl(Product::Milan, AmdKey::Vcek, Refresh::Always)
        .unwrap_err();
    assert_eq!(time.sleeps(), vec![Duration::from_secs(6)]);
    // 404 is a typed NotFound naming the URL; nothing is cached.
    match e {
        Error::NotFound { url } => assert!(url.ends_with("/vcek/v1/Milan/crl"), "{url}"),
        other => panic!("expected NotFound, found {other:?}"),
    }
    assert!(!cache.amd_crl_path(Product::Milan, AmdKey::Vcek).exists());
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn kds_backs_off_and_gives_up() {
    let Some(a) = amd() else { return };
    // Always 503 without Retry-After: exponential back-off, bounded attempts.
    let server = Server::start(|_| Reply::status(503));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);
    let e = f
        .fetch_cert_chain(Product::Milan, AmdKey::Vcek, Refresh::IfMissing)
        .unwrap_err();
    assert!(matches!(e, Error::GaveUp { attempts: 4, .. }), "{e:?}");
    assert_eq!(server.requests().len(), 4);
    assert_eq!(
        time.sleeps(),
        vec![
            Duration::from_secs(10),
            Duration::from_secs(20),
            Duration::from_secs(40)
        ]
    );
    assert!(files_under(dir.path()).is_empty());

    // A Retry-After beyond the allowed maximum is not waited for.
    let server = Server::start(|_| Reply::status(429).header("Retry-After", "3600"));
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);
    let e = f
        .fetch_cert_chain(Product::Milan, AmdKey::Vcek, Refresh::IfMissing)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::RateLimited {
                retry_after_secs: 3600,
                max_secs: 300,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(time.sleeps().is_empty());
    assert_eq!(server.requests().len(), 1);

    // An HTTP-date Retry-After, and a configurable policy.
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let chain = a.chain.clone();
    let server = Server::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::status(503).header("Retry-After", "Mon, 01 Jan 2024 00:00:45 GMT")
        } else {
            Reply::ok(chain.clone())
        }
    });
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let p = Politeness {
        min_interval: Duration::from_secs(1),
        ..Politeness::amd_kds()
    };
    let f = kds(&cache, &server, &time).with_politeness(p);
    f.fetch_cert_chain(Product::Milan, AmdKey::Vcek, Refresh::IfMissing)
        .unwrap();
    assert_eq!(time.sleeps(), vec![Duration::from_secs(45)]);
    assert!(
        cache
            .amd_cert_chain_path(Product::Milan, AmdKey::Vcek)
            .is_file()
    );
}

#[test]
fn threads_sharing_a_fetcher_queue_up() {
    let (Some(milan), Some(genoa)) = (
        read(&format!("{G}/ask_ark_milan.pem")),
        read(&format!("{G}/ask_ark_genoa.pem")),
    ) else {
        return;
    };
    let server = Server::start(move |target| match target {
        "/vcek/v1/Milan/cert_chain" => Reply::ok(milan.clone()),
        "/vcek/v1/Genoa/cert_chain" => Reply::ok(genoa.clone()),
        _ => Reply::status(404),
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);
    std::thread::scope(|s| {
        for p in [Product::Milan, Product::Genoa] {
            let f = &f;
            s.spawn(move || {
                f.fetch_cert_chain(p, AmdKey::Vcek, Refresh::IfMissing)
                    .unwrap()
            });
        }
    });
    // Whichever came second waited the full interval.
    assert_eq!(time.sleeps(), vec![Duration::from_secs(10)]);
    assert_eq!(server.requests().len(), 2);
    assert_eq!(files_under(dir.path()).len(), 2);
}

#[test]
fn oversized_responses_and_dead_servers() {
    let server = Server::start(|_| Reply::ok(vec![b'x'; 5000]));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let p = Politeness {
        max_body_bytes: 4096,
        ..Politeness::amd_kds()
    };
    let f = kds(&cache, &server, &time).with_politeness(p);
    let e = f
        .fetch_cert_chain(Product::Milan, AmdKey::Vcek, Refresh::IfMissing)
        .unwrap_err();
    assert!(
        matches!(e, Error::ResponseTooLarge { limit: 4096, .. }),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 1);

    // Nothing listens: transport errors are retried with back-off, then given up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = KdsFetcher::new(cache.clone())
        .with_base_url(&format!("http://127.0.0.1:{port}/"))
        .unwrap()
        .with_clock(time.clone())
        .with_sleeper(time.clone())
        .with_jitter(Arc::new(NoJitter))
        .with_politeness(Politeness {
            max_attempts: 2,
            ..Politeness::amd_kds()
        });
    assert_eq!(
        f.cert_chain_url(Product::Genoa, AmdKey::Vlek),
        format!("http://127.0.0.1:{port}/vlek/v1/Genoa/cert_chain")
    );
    let e = f
        .fetch_cert_chain(Product::Milan, AmdKey::Vcek, Refresh::IfMissing)
        .unwrap_err();
    assert!(matches!(e, Error::GaveUp { attempts: 2, .. }), "{e:?}");
    assert_eq!(time.sleeps(), vec![Duration::from_secs(10)]);
    assert!(files_under(dir.path()).is_empty());
}

#[test]
fn kds_refuses_wrong_or_missing_certificates() {
    let Some(a) = amd() else { return };
    // A real VCEK, but of another chip, served at this chip's URL.
    let other = read("sev-snp/trustee/test-vcek.der").unwrap();
    let chain = a.chain.clone();
    let genoa_chain = read(&format!("{G}/ask_ark_genoa.pem")).unwrap();
    let root_crl = read(&format!("{TDX}/rootcrl.der")).unwrap();
    let server = Server::start(move |target| match target {
        GOOGLE_VCEK_PATH => Reply::ok(other.clone()),
        "/vcek/v1/Milan/cert_chain" => Reply::ok(chain.clone()),
        "/vcek/v1/Genoa/cert_chain" => Reply::ok(genoa_chain.clone()),
        "/vcek/v1/Milan/crl" => Reply::ok(root_crl.clone()),
        _ => Reply::status(404),
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);
    let e = f.fetch_for_report(&a.report, None).unwrap_err();
    assert_eq!(e.code(), "invalid_collateral", "{e}");
    assert!(e.to_string().contains("hwID"), "{e}");
    let key = report_key(&a.report).unwrap();
    assert!(
        !cache
            .vcek_path(Product::Milan, &key.chip_id, key.reported_tcb)
            .exists()
    );

    // The chip is not a Genoa: KDS answers 404 for its VCEK, a typed NotFound.
    let e = f
        .fetch_for_report(&a.report, Some(Product::Genoa))
        .unwrap_err();
    match e {
        Error::NotFound { url } => assert!(
            url.contains(&format!("/vcek/v1/Genoa/{GOOGLE_CHIP_ID}?blSPL=02")),
            "{url}"
        ),
        other => panic!("expected NotFound, found {other:?}"),
    }
    // An Intel CRL served as AMD's is refused.
    let e = f
        .fetch_crl(Product::Milan, AmdKey::Vcek, Refresh::IfMissing)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_collateral", "{e}");
    assert!(!cache.amd_crl_path(Product::Milan, AmdKey::Vcek).exists());

    // VLEK-signed reports cannot be served by KDS.
    let vlek_report = read("sev-snp/trustee/test-vlek-report.bin").unwrap();
    assert!(matches!(
        f.fetch_for_report(&vlek_report, None),
        Err(Error::VlekNotFetchable)
    ));
}

/// A CRL that names the real ARK-Milan as issuer (its exact subject and signature algorithm)
/// but carries a signature AMD never made: what a tampered mirror or proxy could serve.
fn forged_ark_crl(ark_pem_chain: &[u8], this: &str, next: &str) -> Vec<u8> {
    use x509_cert::certificate::Version;
    use x509_cert::crl::{CertificateList, TbsCertList};
    use x509_cert::der::asn1::{BitString, GeneralizedTime};
    use x509_cert::der::{DecodePem, Encode};
    use x509_cert::time::Time;
    let text = String::from_utf8(ark_pem_chain.to_vec()).unwrap();
    let ark = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter_map(|b| x509_cert::Certificate::from_pem(b.trim()).ok())
        .find(|c| c.tbs_certificate.subject == c.tbs_certificate.issuer)
        .expect("an ARK in the chain");
    let time = |s: &str| {
        let secs = t(s).timestamp() as u64;
        Time::GeneralTime(GeneralizedTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
    };
    CertificateList {
        tbs_cert_list: TbsCertList {
            version: Version::V2,
            signature: ark.signature_algorithm.clone(),
            issuer: ark.tbs_certificate.subject.clone(),
            this_update: time(this),
            next_update: Some(time(next)),
            revoked_certificates: None,
            crl_extensions: None,
        },
        signature_algorithm: ark.signature_algorithm.clone(),
        signature: BitString::from_bytes(&[0x5A; 512]).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// `enclava collateral fetch` for SNP also fetches the product's CRL (KDS `vcek/v1/{product}/crl`,
/// the product taken from the cached chain for this v2 report), and checks it under the pinned
/// ARK before caching: a forged CRL is refused and nothing is cached; a missing one is a typed
/// NotFound naming the URL. A CRL already in the cache reaches the verifier through
/// `Cache::snp_crls` (which needs no VCEK in the cache).
#[test]
fn kds_fetches_and_checks_the_report_crl() {
    let Some(a) = amd() else { return };
    let forged = forged_ark_crl(&a.chain, "2023-12-01T00:00:00Z", "2024-02-01T00:00:00Z");
    let (vcek, chain, crl) = (a.vcek.clone(), a.chain.clone(), forged.clone());
    let serve_crl = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s2 = serve_crl.clone();
    let server = Server::start(move |target| match target {
        GOOGLE_VCEK_PATH => Reply::ok(vcek.clone()),
        "/vcek/v1/Milan/cert_chain" => Reply::ok(chain.clone()),
        "/vcek/v1/Milan/crl" if s2.load(Ordering::SeqCst) => Reply::ok(crl.clone()),
        _ => Reply::status(404),
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2024-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);
    f.fetch_for_report(&a.report, None).unwrap();
    let e = f
        .fetch_crl_for_report(&a.report, None, Refresh::IfStale)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_collateral", "{e}");
    assert!(
        e.to_string().contains("Milan CRL") && e.to_string().contains("signature"),
        "{e}"
    );
    assert_eq!(
        server.requests(),
        vec![
            "/vcek/v1/Milan/cert_chain",
            GOOGLE_VCEK_PATH,
            "/vcek/v1/Milan/crl"
        ]
    );
    let crl_path = cache.amd_crl_path(Product::Milan, AmdKey::Vcek);
    assert!(!crl_path.exists());
    assert!(cache.snp_crls(&a.report).unwrap().is_empty());

    // Not published: NotFound naming the CRL URL.
    serve_crl.store(false, Ordering::SeqCst);
    match f.fetch_crl_for_report(&a.report, Some(Product::Milan), Refresh::Always) {
        Err(Error::NotFound { url }) => assert!(url.ends_with("/vcek/v1/Milan/crl"), "{url}"),
        other => panic!("expected NotFound, found {other:?}"),
    }

    // A CRL placed in the cache by hand is served for the report, with or without a VCEK
    // cached, and only for the report's key type.
    std::fs::write(&crl_path, &forged).unwrap();
    assert_eq!(cache.snp_crls(&a.report).unwrap(), vec![forged.clone()]);
    let bare = tempfile::tempdir().unwrap();
    let bare_cache = Cache::open(bare.path()).unwrap();
    let p = bare_cache.amd_crl_path(Product::Milan, AmdKey::Vlek);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &forged).unwrap();
    assert!(bare_cache.snp_crls(&a.report).unwrap().is_empty());
    std::fs::write(
        bare_cache.amd_crl_path(Product::Milan, AmdKey::Vcek),
        &forged,
    )
    .unwrap();
    assert_eq!(
        bare_cache.snp_crls(&a.report).unwrap(),
        vec![forged.clone()]
    );
    // And the verifier does check it: the forged CRL names this chain's ARK, so it must verify.
    let mut e = cache.snp_endorsements(&a.report).unwrap();
    assert_eq!(e.crls_der, vec![forged]);
    let err = snp::verify(&a.report, &e, t("2024-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(err.failed_check(), "crl_signature", "{err}");
    e.crls_der.clear();
    let claims = snp::verify(&a.report, &e, t("2024-01-01T00:00:00Z")).unwrap();
    assert!(!claims.revocation.unwrap().checked);
}

#[test]
fn kds_turin_vcek() {
    let Some(vcek) = read("sev-snp/virtee-sev/vcek_turin.der") else {
        return;
    };
    let chain = read("sev-snp/virtee-sev/cert_chain_turin").unwrap();
    // Learn the chip and TCB the certificate is for, through an import in a scratch cache.
    let scratch = tempfile::tempdir().unwrap();
    let at = t("2025-06-01T00:00:00Z");
    let path = Cache::open(scratch.path())
        .unwrap()
        .import_snp_leaf(&vcek, at)
        .unwrap();
    let rel = path
        .strip_prefix(scratch.path())
        .unwrap()
        .to_string_lossy()
        .to_string();
    let parts: Vec<&str> = rel.split('/').collect();
    assert_eq!(&parts[..3], &["amd", "Turin", "vcek"]);
    let hwid = parts[3].to_string();
    assert_eq!(hwid.len(), 16, "Turin hwID is 8 bytes");
    let tcb_le: [u8; 8] = hex::decode(parts[4].trim_end_matches(".der"))
        .unwrap()
        .try_into()
        .unwrap();
    let tcb = u64::from_le_bytes(tcb_le);
    let mut chip_id = [0u8; 64];
    chip_id[..8].copy_from_slice(&hex::decode(&hwid).unwrap());
    // The URL KDS specifies for Turin: 8-byte hwID, fmcSPL, decimal SPLs.
    let expected = format!(
        "/vcek/v1/Turin/{hwid}?fmcSPL={:02}&blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
        tcb_le[0], tcb_le[1], tcb_le[2], tcb_le[3], tcb_le[7]
    );
    let (v, c) = (vcek.clone(), chain.clone());
    let e2 = expected.clone();
    let server = Server::start(move |target| {
        if target == e2 {
            Reply::ok(v.clone())
        } else if target == "/vcek/v1/Turin/cert_chain" {
            Reply::ok(c.clone())
        } else {
            Reply::status(404)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(at);
    let f = kds(&cache, &server, &time);
    let p = f
        .fetch_vcek(Product::Turin, &chip_id, tcb, Refresh::IfMissing)
        .unwrap();
    assert_eq!(p, cache.vcek_path(Product::Turin, &chip_id, tcb));
    assert_eq!(
        server.requests(),
        vec!["/vcek/v1/Turin/cert_chain".to_string(), expected]
    );
    assert_eq!(std::fs::read(p).unwrap(), vcek);
}

// ---- Intel PCS --------------------------------------------------------------------------------

struct Intel {
    quote: Vec<u8>,
    tcb: Vec<u8>,
    tcb_chain: Vec<u8>,
    qe: Vec<u8>,
    qe_chain: Vec<u8>,
    pck_crl: Vec<u8>,
    pck_chain: Vec<u8>,
    root_crl: Vec<u8>,
}

fn intel() -> Option<Intel> {
    Some(Intel {
        quote: read(&format!("{TDX}/tdx_prod_quote_SPR_E4.dat"))?,
        tcb: read(&format!("{TDX}/sample_tcbInfo_response"))?,
        tcb_chain: read(&format!("{TDX}/derived_tcb_info_issuer_chain.pem"))?,
        qe: read(&format!("{TDX}/sample_qeIdentity_response"))?,
        qe_chain: read(&format!("{TDX}/derived_qe_identity_issuer_chain.pem"))?,
        pck_crl: read(&format!("{TDX}/pckcrl"))?,
        pck_chain: read(&format!("{TDX}/derived_pck_crl_issuer_chain.pem"))?,
        root_crl: read(&format!("{TDX}/rootcrl.der"))?,
    })
}

const TCB_PATH: &str = "/tdx/certification/v4/tcb?fmspc=50806f000000";
const QE_PATH: &str = "/tdx/certification/v4/qe/identity";
const PCK_CRL_PATH: &str = "/sgx/certification/v4/pckcrl?ca=platform&encoding=der";
const ROOT_CRL_PATH: &str = "/sgx/certification/v4/rootcacrl";

/// A PCCS serving the go-tdx-guest collateral as PCS does: issuer chains URL-encoded in headers;
/// the root CA CRL as hex (as PCCS sends it). `with_chains = false` drops the TCB info header.
fn pccs(i: &Intel, with_chains: bool) -> Server {
    let tcb = i.tcb.clone();
    let tcb_chain = url_encode(&i.tcb_chain);
    let qe = i.qe.clone();
    let qe_chain = url_encode(&i.qe_chain);
    let pck_crl = i.pck_crl.clone();
    let pck_chain = url_encode(&i.pck_chain);
    let root_hex = hex::encode(&i.root_crl).into_bytes();
    Server::start(move |target| match target {
        TCB_PATH if with_chains => {
            Reply::ok(tcb.clone()).header("TCB-Info-Issuer-Chain", &tcb_chain)
        }
        TCB_PATH => Reply::ok(tcb.clone()),
        QE_PATH => Reply::ok(qe.clone()).header("SGX-Enclave-Identity-Issuer-Chain", &qe_chain),
        PCK_CRL_PATH => Reply::ok(pck_crl.clone()).header("SGX-PCK-CRL-Issuer-Chain", &pck_chain),
        ROOT_CRL_PATH => Reply::ok(root_hex.clone()),
        _ => Reply::status(404),
    })
}

fn pcs(cache: &Cache, server: &Server, time: &Arc<FakeTime>) -> PcsFetcher {
    PcsFetcher::new(cache.clone())
        .with_pccs(&server.base)
        .unwrap()
        .with_clock(time.clone())
        .with_sleeper(time.clone())
        .with_jitter(Arc::new(NoJitter))
}

#[test]
fn pcs_fetches_collateral_that_verifies_the_quote() {
    let Some(i) = intel() else { return };
    let server = pccs(&i, true);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2023-07-01T01:00:00Z"));
    let f = pcs(&cache, &server, &time);

    let coll = f
        .fetch_for_quote(&i.quote, DcapTee::Tdx, Refresh::IfStale)
        .unwrap();
    assert_eq!(
        server.requests(),
        vec![TCB_PATH, QE_PATH, ROOT_CRL_PATH, PCK_CRL_PATH]
    );
    // One second between requests to the same host.
    assert_eq!(time.sleeps(), vec![Duration::from_secs(1); 3]);
    let e = dcap::verify_tdx(&i.quote, Some(&coll), t("2023-07-01T01:00:00Z")).unwrap_err();
    assert_eq!(e.failed_check(), "tcb_level_not_found", "{e}");
    // Stored decoded and byte for byte.
    assert_eq!(
        std::fs::read(cache.tcb_info_chain_path(DcapTee::Tdx, &[0x50, 0x80, 0x6f, 0, 0, 0]))
            .unwrap(),
        i.tcb_chain
    );
    assert_eq!(
        std::fs::read(cache.tcb_info_path(DcapTee::Tdx, &[0x50, 0x80, 0x6f, 0, 0, 0])).unwrap(),
        i.tcb
    );
    assert_eq!(std::fs::read(cache.root_crl_path()).unwrap(), i.root_crl);
    assert_eq!(
        std::fs::read(cache.pck_crl_chain_path(PckCa::Platform)).unwrap(),
        i.pck_chain
    );

    // Nothing is stale yet: no request.
    f.fetch_for_quote(&i.quote, DcapTee::Tdx, Refresh::IfStale)
        .unwrap();
    assert_eq!(server.requests().len(), 4);
    // The offline cache alone serves the same collateral.
    let coll2 = Cache::open(dir.path())
        .unwrap()
        .dcap_collateral(&i.quote, DcapTee::Tdx)
        .unwrap();
    assert_eq!(coll2.tcb_info_json(), coll.tcb_info_json());

    // After the PCK CRL and QE identity (2023-07-08) and TCB info (2023-07-18) next updates, the
    // refresher fetches them again, but not the root CA CRL (2024-04-02).
    time.set(t("2023-07-20T00:00:00Z"));
    f.fetch_for_quote(&i.quote, DcapTee::Tdx, Refresh::IfStale)
        .unwrap();
    assert_eq!(
        server.requests()[4..].to_vec(),
        vec![TCB_PATH, QE_PATH, PCK_CRL_PATH]
    );
}

#[test]
fn pcs_background_refresh() {
    let Some(i) = intel() else { return };
    let server = pccs(&i, true);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2023-07-01T01:00:00Z"));
    let f = pcs(&cache, &server, &time);
    // An empty cache: nothing to refresh, nothing requested.
    let r = f.refresh_cached().unwrap();
    assert!(r.current.is_empty() && r.failed.is_empty());
    assert!(server.requests().is_empty());
    f.fetch_for_quote(&i.quote, DcapTee::Tdx, Refresh::IfMissing)
        .unwrap();
    assert_eq!(server.requests().len(), 4);
    // Everything current: checked, not requested.
    let r = f.refresh_cached().unwrap();
    assert_eq!(r.current.len(), 4);
    assert!(r.failed.is_empty());
    assert_eq!(server.requests().len(), 4);
    // Later the stale ones are fetched again; the root CA CRL (next update 2024-04-02) is not.
    time.set(t("2023-07-20T00:00:00Z"));
    let r = f.refresh_cached().unwrap();
    assert_eq!(r.current.len(), 4);
    assert_eq!(
        server.requests()[4..].to_vec(),
        vec![TCB_PATH, QE_PATH, PCK_CRL_PATH]
    );
}

#[test]
fn kds_background_refresh_keeps_old_file_on_failure() {
    let Some(crl) = read(&format!("{TDX}/rootcrl.der")) else {
        return;
    };
    // No AMD CRL among the vectors: place a stand-in CRL file directly (put_amd_crl would refuse
    // it), then check that a failed refresh reports the failure and leaves the file alone.
    let server = Server::start(|_| Reply::status(404));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let path = cache.amd_crl_path(Product::Genoa, AmdKey::Vcek);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &crl).unwrap();
    let time = FakeTime::new(t("2025-01-01T00:00:00Z"));
    let f = kds(&cache, &server, &time);
    let r = f.refresh_cached();
    assert!(r.current.is_empty());
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, "Genoa vcek CRL");
    assert_eq!(r.failed[0].1.code(), "not_found");
    assert_eq!(server.requests(), vec!["/vcek/v1/Genoa/crl"]);
    assert_eq!(std::fs::read(&path).unwrap(), crl);
    // While it is current (the stand-in is valid until 2024-04-02), nothing is requested.
    time.set(t("2024-01-01T00:00:00Z"));
    let r = f.refresh_cached();
    assert_eq!(r.current, vec![path]);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn pcs_requires_issuer_chain_headers() {
    let Some(i) = intel() else { return };
    let server = pccs(&i, false);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let time = FakeTime::new(t("2023-07-01T01:00:00Z"));
    let f = pcs(&cache, &server, &time);
    let e = f
        .fetch_for_quote(&i.quote, DcapTee::Tdx, Refresh::IfMissing)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_collateral");
    assert!(e.to_string().contains("TCB-Info-Issuer-Chain"), "{e}");
    assert!(files_under(dir.path()).is_empty());
    // An SGX request for this FMSPC is a 404 on this server: NotFound naming the PCS URL.
    let fmspc = [0x50, 0x80, 0x6f, 0, 0, 0];
    match f.fetch_tcb_info(DcapTee::Sgx, &fmspc, Refresh::IfMissing) {
        Err(Error::NotFound { url }) => {
            assert_eq!(
                url,
                format!(
                    "{}/sgx/certification/v4/tcb?fmspc=50806f000000",
                    server.base
                )
            )
        }
        other => panic!("expected NotFound, found {other:?}"),
    }
    // The PCS (not PCCS) root CRL location by default.
    let f = PcsFetcher::new(cache.clone());
    assert_eq!(
        f.root_crl_url(),
        "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
    );
    assert_eq!(
        f.pck_crl_url(PckCa::Processor),
        "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=processor&encoding=der"
    );
    assert!(PcsFetcher::new(cache).with_base_url("file:///etc").is_err());
}
