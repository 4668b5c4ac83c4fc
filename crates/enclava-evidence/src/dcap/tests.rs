//! Unit tests with a throwaway test PKI standing in for Intel's (nobody but Intel can sign under the
//! pinned root, so revocation, status convergence and identity mismatches are exercised end to end
//! with `verify_with_root` and a test root; the pinned-root check itself is tested separately: the
//! same test quote through the public API fails with `untrusted_root`). The real PCK CRL is also
//! checked against the real PCK certificate, with an injected serial list for the revoked case.

use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use der::Encode;
use der::asn1::{Any, BitString, ObjectIdentifier, OctetString, UtcTime};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::certs::{Cert, Crl, SGX_EXTENSIONS_OID};
use super::*;
use crate::error::FailedCheck;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const T2020: u64 = 1_577_836_800;
const T2040: u64 = 2_208_988_800;
const ISSUE: &str = "2025-01-01T00:00:00Z";
const NEXT: &str = "2025-02-01T00:00:00Z";
const CRL_THIS: u64 = 1_735_689_600; // 2025-01-01
const CRL_NEXT: u64 = 1_738_368_000; // 2025-02-01
const QE_MRSIGNER: [u8; 32] = [0x42; 32];
const FMSPC: [u8; 6] = [0x00, 0xa0, 0x6d, 0x08, 0x00, 0x00];

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-15T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct Key {
    asn1: EcdsaKeyPair,
    fixed: EcdsaKeyPair,
    pk: Vec<u8>,
}

impl Key {
    fn new() -> Key {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let asn1 = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref()).unwrap();
        let fixed =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let pk = asn1.public_key().as_ref().to_vec();
        Key { asn1, fixed, pk }
    }

    fn sign_der(&self, m: &[u8]) -> Vec<u8> {
        self.asn1
            .sign(&SystemRandom::new(), m)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn sign_raw(&self, m: &[u8]) -> Vec<u8> {
        self.fixed
            .sign(&SystemRandom::new(), m)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

fn utc(secs: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
}

fn alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_SHA256,
        parameters: None,
    }
}

fn make_cert(
    subject: &str,
    issuer: &str,
    serial: &[u8],
    pk: &[u8],
    signer: &Key,
    ext: Option<Vec<u8>>,
) -> Cert {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(serial).unwrap(),
        signature: alg(),
        issuer: Name::from_str(issuer).unwrap(),
        validity: Validity {
            not_before: utc(T2020),
            not_after: utc(T2040),
        },
        subject: Name::from_str(subject).unwrap(),
        subject_public_key_info: SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&P256).unwrap()),
            },
            subject_public_key: BitString::from_bytes(pk).unwrap(),
        },
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: ext.map(|v| {
            vec![Extension {
                extn_id: SGX_EXTENSIONS_OID,
                critical: false,
                extn_value: OctetString::new(v).unwrap(),
            }]
        }),
    };
    let sig = signer.sign_der(&tbs.to_der().unwrap());
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg(),
        signature: BitString::from_bytes(&sig).unwrap(),
    };
    Cert::from_der(&cert.to_der().unwrap()).unwrap()
}

fn make_crl(issuer: &Cert, key: &Key, revoked: &[&[u8]], this: u64, next: u64) -> Vec<u8> {
    let tbs = TbsCertList {
        version: Version::V2,
        signature: alg(),
        issuer: issuer.subject().clone(),
        this_update: utc(this),
        next_update: Some(utc(next)),
        revoked_certificates: (!revoked.is_empty()).then(|| {
            revoked
                .iter()
                .map(|s| RevokedCert {
                    serial_number: SerialNumber::new(s).unwrap(),
                    revocation_date: utc(this),
                    crl_entry_extensions: None,
                })
                .collect()
        }),
        crl_extensions: None,
    };
    let sig = key.sign_der(&tbs.to_der().unwrap());
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg(),
        signature: BitString::from_bytes(&sig).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 128 {
        v.push(n as u8);
    } else if n < 256 {
        v.extend([0x81, n as u8]);
    } else {
        v.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn seq(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &items.concat())
}

fn oid(s: &str) -> Vec<u8> {
    ObjectIdentifier::new_unwrap(s).to_der().unwrap()
}

fn octets(b: &[u8]) -> Vec<u8> {
    OctetString::new(b).unwrap().to_der().unwrap()
}

fn sgx_ext(comps: [u8; 16], pcesvn: u16) -> Vec<u8> {
    let base = "1.2.840.113741.1.13.1";
    let mut tcb = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        tcb.push(seq(&[
            oid(&format!("{base}.2.{}", i + 1)),
            u32::from(*c).to_der().unwrap(),
        ]));
    }
    tcb.push(seq(&[
        oid(&format!("{base}.2.17")),
        u32::from(pcesvn).to_der().unwrap(),
    ]));
    tcb.push(seq(&[oid(&format!("{base}.2.18")), octets(&comps)]));
    seq(&[
        seq(&[oid(&format!("{base}.1")), octets(&[0x11; 16])]),
        seq(&[oid(&format!("{base}.2")), seq(&tcb)]),
        seq(&[oid(&format!("{base}.3")), octets(&[0, 0])]),
        seq(&[oid(&format!("{base}.4")), octets(&FMSPC)]),
        seq(&[oid(&format!("{base}.5")), tlv(0x0a, &[0])]),
    ])
}

fn pem_of(c: &Cert) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", c.der.clone()))
}

const ROOT_DN: &str = "CN=Intel SGX Root CA,O=Enclava Test PKI";
const CA_DN: &str = "CN=Intel SGX PCK Platform CA,O=Enclava Test PKI";
const PCK_DN: &str = "CN=Intel SGX PCK Certificate,O=Enclava Test PKI";
const TCB_DN: &str = "CN=Intel SGX TCB Signing,O=Enclava Test PKI";
const PCK_SERIAL: &[u8] = &[0x12, 0x34, 0x56];
const CA_SERIAL: &[u8] = &[0x22];
const TCB_SERIAL: &[u8] = &[0x33];

/// Knobs of one end-to-end scenario.
struct Opts {
    pck_comps: [u8; 16],
    pck_pcesvn: u16,
    tee_tcb_svn: [u8; 16],
    qe_isvsvn: u16,
    levels: Vec<String>,
    module_ids: String,
    qe_levels: String,
    info_fmspc: String,
    identity_mrsigner: [u8; 32],
    revoke_pck: bool,
    revoke_ca: bool,
    revoke_tcb_signer: bool,
    at: DateTime<Utc>,
    /// Build a v5 quote with a TDX 1.5 body carrying this TEE_TCB_SVN2.
    svn2: Option<[u8; 16]>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            pck_comps: [5; 16],
            pck_pcesvn: 11,
            tee_tcb_svn: [3, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            qe_isvsvn: 4,
            levels: vec![level(5, 11, [3, 0, 5], "UpToDate", &[])],
            module_ids: String::new(),
            qe_levels: r#"{"tcb":{"isvsvn":4},"tcbDate":"2024-01-01T00:00:00Z","tcbStatus":"UpToDate"},
                {"tcb":{"isvsvn":2},"tcbDate":"2023-01-01T00:00:00Z","tcbStatus":"OutOfDate","advisoryIDs":["INTEL-SA-QE"]}"#
                .into(),
            info_fmspc: hex::encode_upper(FMSPC),
            identity_mrsigner: QE_MRSIGNER,
            revoke_pck: false,
            revoke_ca: false,
            revoke_tcb_signer: false,
            at: at(),
            svn2: None,
        }
    }
}

fn level(sgx: u16, pcesvn: u16, tdx: [u16; 3], status: &str, advisories: &[&str]) -> String {
    let sgx_c = vec![format!(r#"{{"svn":{sgx}}}"#); 16].join(",");
    let mut tdx_c: Vec<String> = tdx.iter().map(|s| format!(r#"{{"svn":{s}}}"#)).collect();
    tdx_c.resize(16, r#"{"svn":0}"#.to_string());
    let adv = if advisories.is_empty() {
        String::new()
    } else {
        format!(
            r#","advisoryIDs":[{}]"#,
            advisories
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    format!(
        r#"{{"tcb":{{"sgxtcbcomponents":[{sgx_c}],"pcesvn":{pcesvn},"tdxtcbcomponents":[{}]}},"tcbDate":"2024-01-01T00:00:00Z","tcbStatus":"{status}"{adv}}}"#,
        tdx_c.join(",")
    )
}

struct Built {
    quote: Vec<u8>,
    collateral: Collateral,
    root: Cert,
    pck_crl_der: Vec<u8>,
    ca_cert: Cert,
    pck_cert: Cert,
}

fn build(o: &Opts) -> Built {
    let root_key = Key::new();
    let root = make_cert(ROOT_DN, ROOT_DN, &[0x01], &root_key.pk, &root_key, None);
    let ca_key = Key::new();
    let ca = make_cert(CA_DN, ROOT_DN, CA_SERIAL, &ca_key.pk, &root_key, None);
    let pck_key = Key::new();
    let pck = make_cert(
        PCK_DN,
        CA_DN,
        PCK_SERIAL,
        &pck_key.pk,
        &ca_key,
        Some(sgx_ext(o.pck_comps, o.pck_pcesvn)),
    );
    let tcb_key = Key::new();
    let tcb = make_cert(TCB_DN, ROOT_DN, TCB_SERIAL, &tcb_key.pk, &root_key, None);

    // The quote.
    let ak = Key::new();
    let ak_xy = &ak.pk[1..];
    let mut q = Vec::new();
    q.extend(if o.svn2.is_some() { 5u16 } else { 4u16 }.to_le_bytes());
    q.extend(2u16.to_le_bytes());
    q.extend(0x81u32.to_le_bytes());
    q.extend([0u8; 4]);
    q.extend([0x93; 16]);
    q.extend([0u8; 20]);
    let mut body = vec![0u8; if o.svn2.is_some() { 648 } else { 584 }];
    body[..16].copy_from_slice(&o.tee_tcb_svn);
    body[136..184].fill(0xab);
    body[520..584].fill(0xcd);
    if let Some(svn2) = o.svn2 {
        body[584..600].copy_from_slice(&svn2);
        q.extend(3u16.to_le_bytes());
        q.extend((body.len() as u32).to_le_bytes());
    }
    q.extend(body);
    let sig = ak.sign_raw(&q);
    let auth = [0x5a; 32];
    let mut qe = [0u8; 384];
    qe[48] = 0x11;
    qe[128..160].copy_from_slice(&QE_MRSIGNER);
    qe[256..258].copy_from_slice(&2u16.to_le_bytes());
    qe[258..260].copy_from_slice(&o.qe_isvsvn.to_le_bytes());
    let mut h = Sha256::new();
    h.update(ak_xy);
    h.update(auth);
    qe[320..352].copy_from_slice(&h.finalize());
    let qe_sig = pck_key.sign_raw(&qe);
    let chain = format!("{}{}{}", pem_of(&pck), pem_of(&ca), pem_of(&root));
    let mut inner = Vec::new();
    inner.extend(qe);
    inner.extend(&qe_sig);
    inner.extend((auth.len() as u16).to_le_bytes());
    inner.extend(auth);
    inner.extend(5u16.to_le_bytes());
    inner.extend((chain.len() as u32).to_le_bytes());
    inner.extend(chain.as_bytes());
    let mut sigdata = Vec::new();
    sigdata.extend(&sig);
    sigdata.extend(ak_xy);
    sigdata.extend(6u16.to_le_bytes());
    sigdata.extend((inner.len() as u32).to_le_bytes());
    sigdata.extend(inner);
    q.extend((sigdata.len() as u32).to_le_bytes());
    q.extend(sigdata);

    // The collateral, as PCS files.
    let zeros48 = "0".repeat(96);
    let info = format!(
        r#"{{"id":"TDX","version":3,"issueDate":"{ISSUE}","nextUpdate":"{NEXT}","fmspc":"{}","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,"tdxModule":{{"mrsigner":"{zeros48}","attributes":"0000000000000000","attributesMask":"FFFFFFFFFFFFFFFF"}},{}"tcbLevels":[{}]}}"#,
        o.info_fmspc,
        o.module_ids,
        o.levels.join(",")
    );
    let ident = format!(
        r#"{{"id":"TD_QE","version":2,"issueDate":"{ISSUE}","nextUpdate":"{NEXT}","tcbEvaluationDataNumber":17,"miscselect":"00000000","miscselectMask":"FFFFFFFF","attributes":"11000000000000000000000000000000","attributesMask":"FBFFFFFFFFFFFFFF0000000000000000","mrsigner":"{}","isvprodid":2,"tcbLevels":[{}]}}"#,
        hex::encode_upper(o.identity_mrsigner),
        o.qe_levels
    );
    let info_file = format!(
        r#"{{"tcbInfo":{info},"signature":"{}"}}"#,
        hex::encode(tcb_key.sign_raw(info.as_bytes()))
    );
    let ident_file = format!(
        r#"{{"enclaveIdentity":{ident},"signature":"{}"}}"#,
        hex::encode(tcb_key.sign_raw(ident.as_bytes()))
    );
    let mut root_revoked: Vec<&[u8]> = Vec::new();
    if o.revoke_ca {
        root_revoked.push(CA_SERIAL);
    }
    if o.revoke_tcb_signer {
        root_revoked.push(TCB_SERIAL);
    }
    let root_crl = make_crl(&root, &root_key, &root_revoked, CRL_THIS, CRL_NEXT);
    let pck_revoked: Vec<&[u8]> = if o.revoke_pck {
        vec![&[0x01], PCK_SERIAL]
    } else {
        vec![&[0x01]]
    };
    let pck_crl = make_crl(&ca, &ca_key, &pck_revoked, CRL_THIS, CRL_NEXT);
    let signing_chain = format!("{}{}", pem_of(&tcb), pem_of(&root));
    let collateral = Collateral::from_files(&[
        ("tcbinfo.json", info_file.as_bytes()),
        ("qeidentity.json", ident_file.as_bytes()),
        ("chain.pem", signing_chain.as_bytes()),
        ("root.crl", &root_crl),
        ("pck.crl", &pck_crl),
    ])
    .unwrap();
    Built {
        quote: q,
        collateral,
        root,
        pck_crl_der: pck_crl,
        ca_cert: ca,
        pck_cert: pck,
    }
}

fn run(o: &Opts) -> Result<Claims, DcapError> {
    let b = build(o);
    verify_with_root(
        &b.quote,
        Expect::Tdx,
        Some(&b.collateral),
        o.at,
        &Ctx::default(),
        &b.root,
    )
}

fn code(r: Result<Claims, DcapError>) -> &'static str {
    match r {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.failed_check(),
    }
}

#[test]
fn test_pki_up_to_date() {
    let c = run(&Opts::default()).unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("UpToDate"));
    assert!(c.advisory_ids.is_empty());
    assert_eq!(c.measurement, "ab".repeat(48));
    let tdx = c.tdx.unwrap();
    assert_eq!(tdx.fmspc, hex::encode(FMSPC));
    assert_eq!(tdx.qe_tcb_status.as_deref(), Some("UpToDate"));
    assert_eq!(tdx.module_tcb_status, None);
    assert_eq!(tdx.tcb_date.as_deref(), Some("2024-01-01T00:00:00Z"));
}

#[test]
fn test_pki_quote_is_not_trusted_under_the_pinned_root() {
    let b = build(&Opts::default());
    assert_eq!(code(verify_tdx(&b.quote, None, at())), "untrusted_root");
    assert_eq!(
        code(verify_tdx(&b.quote, Some(&b.collateral), at())),
        "untrusted_root"
    );
}

#[test]
fn revoked_pck_is_rejected() {
    let e = run(&Opts {
        revoke_pck: true,
        ..Opts::default()
    })
    .unwrap_err();
    assert_eq!(e.failed_check(), "certificate_revoked", "{e}");
    assert!(e.to_string().contains("123456"), "{e}");
}

#[test]
fn revoked_pck_ca_is_rejected() {
    let e = run(&Opts {
        revoke_ca: true,
        ..Opts::default()
    })
    .unwrap_err();
    assert_eq!(e.failed_check(), "certificate_revoked", "{e}");
    assert!(e.to_string().contains("PCK Platform CA"), "{e}");
}

#[test]
fn revoked_tcb_signer_is_rejected() {
    let e = run(&Opts {
        revoke_tcb_signer: true,
        ..Opts::default()
    })
    .unwrap_err();
    assert_eq!(e.failed_check(), "certificate_revoked", "{e}");
    assert!(e.to_string().contains("TCB Signing"), "{e}");
}

#[test]
fn crl_signature_and_windows() {
    let b = build(&Opts::default());
    let crl = Crl::from_der(&b.pck_crl_der).unwrap();
    crl.verify_signed_by(&b.ca_cert, &Ctx::default()).unwrap();
    // Not signed by the root, nor by the PCK.
    assert_eq!(
        crl.verify_signed_by(&b.root, &Ctx::default())
            .unwrap_err()
            .failed_check(),
        "crl_signature"
    );
    assert_eq!(
        crl.verify_signed_by(&b.pck_cert, &Ctx::default())
            .unwrap_err()
            .failed_check(),
        "crl_signature"
    );
    // A tampered signed part.
    let mut der = b.pck_crl_der.clone();
    let i = der.len() - 80;
    der[i] ^= 0x01;
    if let Ok(bad) = Crl::from_der(&der) {
        assert_eq!(
            bad.verify_signed_by(&b.ca_cert, &Ctx::default())
                .unwrap_err()
                .failed_check(),
            "crl_signature"
        );
    }
    crl.check_validity(at()).unwrap();
    let late = DateTime::<Utc>::from_timestamp(CRL_NEXT as i64 + 1, 0).unwrap();
    let early = DateTime::<Utc>::from_timestamp(CRL_THIS as i64 - 1, 0).unwrap();
    assert_eq!(
        crl.check_validity(late).unwrap_err().failed_check(),
        "crl_expired"
    );
    assert_eq!(
        crl.check_validity(early).unwrap_err().failed_check(),
        "crl_expired"
    );
    // End to end, the collateral window is checked before the CRL window.
    assert_eq!(
        code(run(&Opts {
            at: DateTime::parse_from_rfc3339("2025-02-02T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            ..Opts::default()
        })),
        "collateral_expired"
    );
    assert_eq!(
        code(run(&Opts {
            at: DateTime::parse_from_rfc3339("2024-12-31T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            ..Opts::default()
        })),
        "collateral_expired"
    );
}

#[test]
fn qe_out_of_date_converges_with_configuration_needed() {
    // Platform comps 5 miss the UpToDate level (needs 6) and match ConfigurationNeeded; the QE's
    // ISVSVN 3 matches the OutOfDate QE level.
    let c = run(&Opts {
        levels: vec![
            level(6, 11, [3, 0, 5], "UpToDate", &[]),
            level(5, 11, [3, 0, 5], "ConfigurationNeeded", &["INTEL-SA-1"]),
        ],
        qe_isvsvn: 3,
        ..Opts::default()
    })
    .unwrap();
    assert_eq!(
        c.tcb_status.as_deref(),
        Some("OutOfDateConfigurationNeeded")
    );
    assert_eq!(c.advisory_ids, ["INTEL-SA-1", "INTEL-SA-QE"]);
    let tdx = c.tdx.unwrap();
    assert_eq!(
        tdx.platform_tcb_status.as_deref(),
        Some("ConfigurationNeeded")
    );
    assert_eq!(tdx.qe_tcb_status.as_deref(), Some("OutOfDate"));
    // The same QE with an UpToDate platform: OutOfDate.
    let c = run(&Opts {
        qe_isvsvn: 3,
        ..Opts::default()
    })
    .unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("OutOfDate"));
    assert_eq!(c.advisory_ids, ["INTEL-SA-QE"]);
}

#[test]
fn revoked_qe_level_revokes() {
    let c = run(&Opts {
        qe_levels: r#"{"tcb":{"isvsvn":4},"tcbDate":"2024-01-01T00:00:00Z","tcbStatus":"Revoked","advisoryIDs":["INTEL-SA-R"]}"#
            .into(),
        ..Opts::default()
    })
    .unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("Revoked"));
    // Below every QE level.
    assert_eq!(
        code(run(&Opts {
            qe_isvsvn: 1,
            ..Opts::default()
        })),
        "tcb_level_not_found"
    );
}

fn module_ids(id: &str) -> String {
    let zeros48 = "0".repeat(96);
    format!(
        r#""tdxModuleIdentities":[{{"id":"{id}","mrsigner":"{zeros48}","attributes":"0000000000000000","attributesMask":"FFFFFFFFFFFFFFFF","tcbLevels":[{{"tcb":{{"isvsvn":4}},"tcbDate":"2024-01-01T00:00:00Z","tcbStatus":"UpToDate"}},{{"tcb":{{"isvsvn":2}},"tcbDate":"2023-01-01T00:00:00Z","tcbStatus":"OutOfDate","advisoryIDs":["INTEL-SA-MOD"]}}]}}],"#
    )
}

#[test]
fn tdx_module_identity_is_evaluated_for_tdx_1_5() {
    // TEE_TCB_SVN = [module SVN 2, major 1, ...]: TDX_01 applies; the platform level's first two
    // TDX components (3, 0) are not compared (2 < 3 would otherwise miss the level).
    let c = run(&Opts {
        tee_tcb_svn: [2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        module_ids: module_ids("TDX_01"),
        ..Opts::default()
    })
    .unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("OutOfDate"));
    assert_eq!(c.advisory_ids, ["INTEL-SA-MOD"]);
    let tdx = c.tdx.unwrap();
    assert_eq!(tdx.module_tcb_status.as_deref(), Some("OutOfDate"));
    assert_eq!(tdx.platform_tcb_status.as_deref(), Some("UpToDate"));
    // Module SVN 4: UpToDate.
    let c = run(&Opts {
        tee_tcb_svn: [4, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        module_ids: module_ids("TDX_01"),
        ..Opts::default()
    })
    .unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("UpToDate"));
    // Module SVN 1: below every module level.
    assert_eq!(
        code(run(&Opts {
            tee_tcb_svn: [1, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            module_ids: module_ids("TDX_01"),
            ..Opts::default()
        })),
        "tcb_level_not_found"
    );
    // No identity for major version 1.
    assert_eq!(
        code(run(&Opts {
            tee_tcb_svn: [4, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            module_ids: module_ids("TDX_03"),
            ..Opts::default()
        })),
        "tdx_module_mismatch"
    );
    // TDX 1.0 (major 0): all 16 TDX components are compared, 2 < 3 misses the only level.
    assert_eq!(
        code(run(&Opts {
            tee_tcb_svn: [2, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..Opts::default()
        })),
        "tcb_level_not_found"
    );
}

#[test]
fn components_are_compared_one_by_one() {
    // A level needing comp 4 = 6: a platform [6, 5, 5, 5, ...] is lexicographically greater but
    // below it in component 4.
    let mut needs = level(5, 11, [3, 0, 5], "UpToDate", &[]);
    needs = needs.replacen(
        r#"{"svn":5},{"svn":5},{"svn":5},{"svn":5}"#,
        r#"{"svn":5},{"svn":5},{"svn":5},{"svn":6}"#,
        1,
    );
    let mut comps = [5u8; 16];
    comps[0] = 6;
    assert_eq!(
        code(run(&Opts {
            pck_comps: comps,
            levels: vec![needs.clone()],
            ..Opts::default()
        })),
        "tcb_level_not_found"
    );
    comps[3] = 6;
    assert!(
        run(&Opts {
            pck_comps: comps,
            levels: vec![needs],
            ..Opts::default()
        })
        .is_ok()
    );
    // PCE SVN below the level.
    assert_eq!(
        code(run(&Opts {
            pck_pcesvn: 10,
            ..Opts::default()
        })),
        "tcb_level_not_found"
    );
}

#[test]
fn platform_and_identity_mismatches() {
    assert_eq!(
        code(run(&Opts {
            info_fmspc: "00A06D080001".into(),
            ..Opts::default()
        })),
        "fmspc_mismatch"
    );
    assert_eq!(
        code(run(&Opts {
            identity_mrsigner: [0x43; 32],
            ..Opts::default()
        })),
        "qe_identity_mismatch"
    );
}

#[test]
fn status_convergence_table() {
    use TcbStatus::*;
    let all = [
        UpToDate,
        SwHardeningNeeded,
        ConfigurationNeeded,
        ConfigurationAndSwHardeningNeeded,
        OutOfDate,
        OutOfDateConfigurationNeeded,
        Revoked,
    ];
    for s in all {
        assert_eq!(TcbStatus::parse(s.as_str()).unwrap(), s);
        assert_eq!(s.converge(UpToDate), s);
        assert_eq!(s.converge(Revoked), Revoked);
    }
    assert_eq!(UpToDate.converge(OutOfDate), OutOfDate);
    assert_eq!(SwHardeningNeeded.converge(OutOfDate), OutOfDate);
    assert_eq!(
        ConfigurationNeeded.converge(OutOfDate),
        OutOfDateConfigurationNeeded
    );
    assert_eq!(
        ConfigurationAndSwHardeningNeeded.converge(OutOfDate),
        OutOfDateConfigurationNeeded
    );
    assert_eq!(OutOfDate.converge(OutOfDate), OutOfDate);
    assert_eq!(Revoked.converge(OutOfDate), Revoked);
    assert!(TcbStatus::parse("Fine").is_err());
}

#[test]
fn raw_member_returns_exact_bytes() {
    let json = br#" { "a" : "x\"}" , "tcbInfo" : {"k":[1,{"s":"}]"}]} , "signature":"ab" } "#;
    assert_eq!(
        collateral::raw_member(json, "tcbInfo").unwrap(),
        br#"{"k":[1,{"s":"}]"}]}"#
    );
    assert_eq!(
        collateral::raw_member(json, "signature").unwrap(),
        br#""ab""#
    );
    assert_eq!(collateral::raw_member(json, "a").unwrap(), br#""x\"}""#);
    assert!(collateral::raw_member(json, "missing").is_none());
    for len in 0..json.len() {
        let _ = collateral::raw_member(&json[..len], "signature");
    }
}

fn vector(rel: &str) -> Option<Vec<u8>> {
    enclava_testvectors::read(rel)
}

#[test]
fn real_pck_crl_with_injected_revocation() {
    let Some(crl_der) = vector("tdx/google-go-tdx-guest/pckcrl") else {
        return;
    };
    let quote = vector("tdx/google-go-tdx-guest/tdx_prod_quote_SPR_E4.dat").unwrap();
    let q = parse_quote(&quote).unwrap();
    let chain = certs::parse_pem_chain(&q.pck_chain_pem).unwrap();
    let root = certs::pinned_root().unwrap();
    let full = certs::verify_chain(&chain, &root, &Ctx::default()).unwrap();
    let (pck, ca) = (&full[0], &full[1]);
    // The real CRL is signed by the real Platform CA and lists revoked serials, not this PCK's.
    let crl = Crl::from_der(&crl_der).unwrap();
    crl.verify_signed_by(ca, &Ctx::default()).unwrap();
    let revoked = crl.revoked_serials();
    assert!(!revoked.is_empty());
    certs::check_not_revoked(pck, &revoked, &ca.common_name()).unwrap();
    // Injected: the same list plus this PCK's serial (we cannot sign a CRL as Intel).
    let mut injected = revoked.clone();
    injected.push(pck.serial());
    let e = certs::check_not_revoked(pck, &injected, &ca.common_name()).unwrap_err();
    assert_eq!(e.failed_check(), "certificate_revoked");
    // Serials compare without leading zeros.
    let mut padded = vec![0u8];
    padded.extend(pck.serial());
    assert_eq!(certs::normalize_serial(&padded), pck.serial());
    // The real CRL is not signed by the root.
    assert_eq!(
        crl.verify_signed_by(&root, &Ctx::default())
            .unwrap_err()
            .failed_check(),
        "crl_signature"
    );
}

#[test]
fn pinned_root_matches_its_fingerprint() {
    let root = certs::pinned_root().unwrap();
    assert_eq!(hex::encode(root.sha256()), roots::INTEL_SGX_ROOT_CA_SHA256);
    assert!(hex::encode(root.sha256()).starts_with("44a0196b"));
    assert_eq!(root.common_name(), certs::CN_ROOT);
}

#[test]
fn td_relaunch_advised_for_tdx_1_5() {
    let base = Opts {
        tee_tcb_svn: [2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        module_ids: module_ids("TDX_01"),
        ..Opts::default()
    };
    // The TD runs module SVN 2 (OutOfDate); a relaunch would get SVN 4 (the latest).
    let c = run(&Opts {
        svn2: Some([4, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ..base
    })
    .unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("TDRelaunchAdvised"));
    let tdx = c.tdx.unwrap();
    assert_eq!(
        (tdx.quote_version, tdx.body_type, tdx.tdx_version.as_str()),
        (5, 3, "1.5")
    );
    assert_eq!(tdx.module_tcb_status.as_deref(), Some("OutOfDate"));
    assert_eq!(
        tdx.tee_tcb_svn2.as_deref(),
        Some("04010500000000000000000000000000")
    );
    // A relaunch would not help: stays OutOfDate.
    let base = Opts {
        tee_tcb_svn: [2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        module_ids: module_ids("TDX_01"),
        ..Opts::default()
    };
    let c = run(&Opts {
        svn2: Some([3, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ..base
    })
    .unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("OutOfDate"));
    // With a platform needing configuration.
    let c = run(&Opts {
        tee_tcb_svn: [2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        module_ids: module_ids("TDX_01"),
        levels: vec![level(
            5,
            11,
            [3, 0, 5],
            "ConfigurationNeeded",
            &["INTEL-SA-C"],
        )],
        svn2: Some([4, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ..Opts::default()
    })
    .unwrap();
    assert_eq!(
        c.tcb_status.as_deref(),
        Some("TDRelaunchAdvisedConfigurationNeeded")
    );
    assert_eq!(c.advisory_ids, ["INTEL-SA-C", "INTEL-SA-MOD"]);
    // TEE_TCB_SVN2 names a module major version without an identity.
    assert_eq!(
        code(run(&Opts {
            tee_tcb_svn: [2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            module_ids: module_ids("TDX_01"),
            svn2: Some([4, 2, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ..Opts::default()
        })),
        "tdx_module_mismatch"
    );
    // An out-of-date QE disables the relaunch advice.
    let c = run(&Opts {
        tee_tcb_svn: [2, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        module_ids: module_ids("TDX_01"),
        svn2: Some([4, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        qe_isvsvn: 3,
        ..Opts::default()
    })
    .unwrap();
    assert_eq!(c.tcb_status.as_deref(), Some("OutOfDate"));
}

#[test]
fn module_identities_required_for_tdx_1_5_modules() {
    assert_eq!(
        code(run(&Opts {
            tee_tcb_svn: [4, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..Opts::default()
        })),
        "tdx_module_mismatch"
    );
}
