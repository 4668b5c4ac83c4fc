//! enclava-certs through its public API, checked against independent implementations: the
//! RustCrypto `rsa`/`p256`/`p384`/`p521` crates verify our signatures, `x509-cert` reads our
//! extensions, and the OpenSSL command line (when present; required under CI=true) reads our
//! PFX files and writes the PFX files we read.

use der::asn1::UintRef;
use der::{Decode, Encode, Sequence};
use enclava_certs::{
    CertError, CertTemplate, EcCurve, Issuer, KeySpec, KeyUsage, ParsedCertificate, Subject,
    SubjectAltNames, csr, generate, issue, key_spec, matches_key, new_issuing_ca, pem, pfx,
    verify_issued_by,
};
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::request::CertReq;

const NOW: i64 = 1_780_000_000; // 2026-05-28
const YEAR: i64 = 365 * 24 * 3600;

const SPECS: [KeySpec; 6] = [
    KeySpec::Rsa { bits: 2048 },
    KeySpec::Rsa { bits: 3072 },
    KeySpec::Rsa { bits: 4096 },
    KeySpec::Ec {
        curve: EcCurve::P256,
    },
    KeySpec::Ec {
        curve: EcCurve::P384,
    },
    KeySpec::Ec {
        curve: EcCurve::P521,
    },
];

fn key(spec: KeySpec) -> Vec<u8> {
    generate(spec).unwrap().to_vec()
}

fn template(cn: &str) -> CertTemplate {
    let mut t = CertTemplate::new(
        Subject::parse(&format!("CN={cn}, O=Contoso, C=US")).unwrap(),
        NOW,
        NOW + YEAR,
    )
    .unwrap();
    t.sans = SubjectAltNames {
        dns_names: vec![format!("{cn}.example.com"), "*.example.com".into()],
        emails: vec!["ops@example.com".into()],
        upns: vec!["user@contoso.onmicrosoft.com".into()],
    };
    t.key_usage = vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
    t.ekus = vec!["1.3.6.1.5.5.7.3.1".into(), "1.3.6.1.5.5.7.3.2".into()];
    t
}

#[derive(Sequence)]
struct EcdsaSig<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// r || s, each left-padded to `n` bytes.
fn raw_sig(der_sig: &[u8], n: usize) -> Vec<u8> {
    let sig = EcdsaSig::from_der(der_sig).unwrap();
    let mut out = vec![0u8; 2 * n];
    let r = sig.r.as_bytes();
    let s = sig.s.as_bytes();
    out[n - r.len()..n].copy_from_slice(r);
    out[2 * n - s.len()..].copy_from_slice(s);
    out
}

/// Verify `sig` over `msg` with the public key in `spki_der` using RustCrypto only.
fn independent_verify(spki_der: &[u8], alg_oid: &str, msg: &[u8], sig: &[u8]) {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).unwrap();
    let point = spki.subject_public_key.raw_bytes();
    match alg_oid {
        "1.2.840.113549.1.1.11" => {
            let pk = rsa::RsaPublicKey::from_public_key_der(spki_der).unwrap();
            let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(pk);
            vk.verify(msg, &rsa::pkcs1v15::Signature::try_from(sig).unwrap())
                .unwrap();
        }
        "1.2.840.10045.4.3.2" => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            let s = p256::ecdsa::Signature::from_slice(&raw_sig(sig, 32)).unwrap();
            vk.verify(msg, &s).unwrap();
        }
        "1.2.840.10045.4.3.3" => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            let s = p384::ecdsa::Signature::from_slice(&raw_sig(sig, 48)).unwrap();
            vk.verify(msg, &s).unwrap();
        }
        "1.2.840.10045.4.3.4" => {
            let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
            let s = p521::ecdsa::Signature::from_slice(&raw_sig(sig, 66)).unwrap();
            vk.verify(msg, &s).unwrap();
        }
        other => panic!("unexpected signature algorithm {other}"),
    }
}

fn expected_alg(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::Rsa { .. } => "1.2.840.113549.1.1.11",
        KeySpec::Ec {
            curve: EcCurve::P256,
        } => "1.2.840.10045.4.3.2",
        KeySpec::Ec {
            curve: EcCurve::P384,
        } => "1.2.840.10045.4.3.3",
        KeySpec::Ec {
            curve: EcCurve::P521,
        } => "1.2.840.10045.4.3.4",
    }
}

/// The certificate's signature checked with RustCrypto against `issuer_spki`.
fn check_signature(cert_der: &[u8], issuer_spki: &[u8], issuer_spec: KeySpec) {
    let cert = Certificate::from_der(cert_der).unwrap();
    let alg = cert.signature_algorithm.oid.to_string();
    assert_eq!(alg, expected_alg(issuer_spec));
    assert_eq!(cert.tbs_certificate.signature.oid.to_string(), alg);
    let tbs = cert.tbs_certificate.to_der().unwrap();
    independent_verify(issuer_spki, &alg, &tbs, cert.signature.raw_bytes());
}

fn check_template_fields(p: &ParsedCertificate, t: &CertTemplate) {
    assert_eq!(p.subject, t.subject.to_string());
    assert_eq!(p.sans, t.sans);
    assert_eq!(p.key_usage, t.key_usage);
    assert_eq!(p.ekus, t.ekus);
    assert_eq!((p.not_before, p.not_after), (t.not_before, t.not_after));
    assert_eq!(p.serial_hex, hex::encode(t.serial));
    assert!(!p.is_ca);
}

#[test]
fn self_signed_every_key_type_verifies_independently() {
    for spec in SPECS {
        let k = key(spec);
        assert_eq!(key_spec(&k).unwrap(), spec);
        let t = template("self");
        let der = issue(&t, &k, Issuer::SelfSigned).unwrap();
        let p = ParsedCertificate::from_der(&der).unwrap();
        check_template_fields(&p, &t);
        assert_eq!(p.issuer, p.subject);
        assert!(p.self_issued);
        assert_eq!(p.authority_key_id, p.subject_key_id);
        assert!(p.subject_key_id.is_some());
        check_signature(&der, &p.spki_der, spec);
        verify_issued_by(&der, &der).unwrap();
        assert!(matches_key(&der, &k).unwrap(), "{spec:?}");
        // x5t is the base64url SHA-1 of the DER, x5t#S256 its SHA-256.
        use base64::Engine;
        use sha2::Digest;
        let s256 =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der));
        assert_eq!(p.x5t_s256, s256);
        assert_eq!(p.x5t.len(), 27);
    }
}

#[test]
fn ca_signed_every_key_type_chains_to_the_ca() {
    for ca_spec in [
        KeySpec::Ec {
            curve: EcCurve::P384,
        },
        KeySpec::Rsa { bits: 2048 },
    ] {
        let ca_key = key(ca_spec);
        let ca = new_issuing_ca(
            &ca_key,
            "Enclava Certificate Issuing CA",
            NOW - 10,
            NOW + 10 * YEAR,
        )
        .unwrap();
        let pca = ParsedCertificate::from_der(&ca).unwrap();
        assert!(pca.is_ca);
        assert_eq!(pca.subject, "CN=Enclava Certificate Issuing CA");
        assert_eq!(
            pca.key_usage,
            vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign]
        );
        let bc: BasicConstraints = Certificate::from_der(&ca)
            .unwrap()
            .tbs_certificate
            .get()
            .unwrap()
            .unwrap()
            .1;
        assert_eq!((bc.ca, bc.path_len_constraint), (true, Some(0)));
        check_signature(&ca, &pca.spki_der, ca_spec);
        for spec in SPECS {
            let k = key(spec);
            let t = template("leaf");
            let der = issue(
                &t,
                &k,
                Issuer::Ca {
                    cert_der: &ca,
                    key_pkcs8: &ca_key,
                },
            )
            .unwrap();
            let p = ParsedCertificate::from_der(&der).unwrap();
            check_template_fields(&p, &t);
            assert_eq!(p.issuer, pca.subject);
            assert!(!p.self_issued);
            assert_eq!(p.authority_key_id, pca.subject_key_id);
            // The issuer name is the CA's subject byte for byte.
            let c = Certificate::from_der(&der).unwrap();
            let cac = Certificate::from_der(&ca).unwrap();
            assert_eq!(
                c.tbs_certificate.issuer.to_der().unwrap(),
                cac.tbs_certificate.subject.to_der().unwrap()
            );
            check_signature(&der, &pca.spki_der, ca_spec);
            verify_issued_by(&der, &ca).unwrap();
            assert!(matches!(
                verify_issued_by(&der, &der),
                Err(CertError::Signature(_))
            ));
            assert!(matches_key(&der, &k).unwrap());
            assert!(!matches_key(&der, &ca_key).unwrap());
        }
    }
}

#[test]
fn a_ca_must_be_a_ca_with_its_own_key() {
    let ca_key = key(KeySpec::Ec {
        curve: EcCurve::P256,
    });
    let ca = new_issuing_ca(&ca_key, "CA", NOW, NOW + YEAR).unwrap();
    let other = key(KeySpec::Ec {
        curve: EcCurve::P256,
    });
    let t = template("x");
    let e = issue(
        &t,
        &other,
        Issuer::Ca {
            cert_der: &ca,
            key_pkcs8: &other,
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("does not match the CA certificate"),
        "{e}"
    );
    // An end-entity certificate cannot issue.
    let leaf = issue(&t, &other, Issuer::SelfSigned).unwrap();
    let e = issue(
        &t,
        &ca_key,
        Issuer::Ca {
            cert_der: &leaf,
            key_pkcs8: &other,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("end-entity"), "{e}");
    let e = issue(
        &t,
        &ca_key,
        Issuer::Ca {
            cert_der: b"junk",
            key_pkcs8: &ca_key,
        },
    )
    .unwrap_err();
    assert!(matches!(e, CertError::Issuer(_)), "{e}");
}

#[test]
fn bad_templates_are_refused() {
    let k = key(KeySpec::Ec {
        curve: EcCurve::P256,
    });
    let mut t = template("x");
    t.not_after = t.not_before;
    assert!(
        issue(&t, &k, Issuer::SelfSigned)
            .unwrap_err()
            .to_string()
            .contains("not_before < not_after")
    );
    let mut t = template("x");
    t.ekus = vec!["serverAuth".into()];
    assert!(
        issue(&t, &k, Issuer::SelfSigned)
            .unwrap_err()
            .to_string()
            .contains("dotted OID")
    );
    let mut t = template("x");
    t.sans.dns_names = vec!["bad name".into()];
    assert!(
        issue(&t, &k, Issuer::SelfSigned)
            .unwrap_err()
            .to_string()
            .contains("DNS name")
    );
    let mut t = template("x");
    t.subject = Subject::default();
    t.sans = SubjectAltNames::default();
    assert!(
        issue(&t, &k, Issuer::SelfSigned)
            .unwrap_err()
            .to_string()
            .contains("subject or at least one")
    );
    assert!(matches!(
        issue(&template("x"), b"not a key", Issuer::SelfSigned),
        Err(CertError::Key(_))
    ));
    // A certificate named only by SANs is fine; its SAN extension is then critical.
    let mut t = template("x");
    t.subject = Subject::default();
    let der = issue(&t, &k, Issuer::SelfSigned).unwrap();
    let c = Certificate::from_der(&der).unwrap();
    let san = c
        .tbs_certificate
        .extensions
        .unwrap()
        .into_iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.17")
        .unwrap();
    assert!(san.critical);
    // Far-future validity is a GeneralizedTime and reads back.
    let mut t = template("x");
    t.not_after = 4_102_444_800 + 1; // 2100-01-01T00:00:01Z
    let p = ParsedCertificate::from_der(&issue(&t, &k, Issuer::SelfSigned).unwrap()).unwrap();
    assert_eq!(p.not_after, t.not_after);
}

#[test]
fn csr_carries_subject_and_extensions_and_verifies() {
    for spec in [
        KeySpec::Rsa { bits: 2048 },
        KeySpec::Ec {
            curve: EcCurve::P256,
        },
        KeySpec::Ec {
            curve: EcCurve::P521,
        },
    ] {
        let k = key(spec);
        let t = template("req");
        let der = csr(&t, &k).unwrap();
        let req = CertReq::from_der(&der).unwrap();
        let info = req.info.to_der().unwrap();
        let spki = req.info.public_key.to_der().unwrap();
        assert_eq!(req.algorithm.oid.to_string(), expected_alg(spec));
        independent_verify(
            &spki,
            &req.algorithm.oid.to_string(),
            &info,
            req.signature.raw_bytes(),
        );
        // Subject in DER order: C, O, CN.
        let names: Vec<String> = req
            .info
            .subject
            .0
            .iter()
            .map(|r| r.0.get(0).unwrap().oid.to_string())
            .collect();
        assert_eq!(names, ["2.5.4.6", "2.5.4.10", "2.5.4.3"]);
        let attr = req.info.attributes.iter().next().unwrap();
        assert_eq!(attr.oid.to_string(), "1.2.840.113549.1.9.14");
        let exts: Vec<x509_cert::ext::Extension> = attr.values.get(0).unwrap().decode_as().unwrap();
        let ids: Vec<String> = exts.iter().map(|e| e.extn_id.to_string()).collect();
        assert_eq!(ids, ["2.5.29.17", "2.5.29.15", "2.5.29.37"]);
        // The request's key is the key given.
        let cert = issue(&t, &k, Issuer::SelfSigned).unwrap();
        assert_eq!(ParsedCertificate::from_der(&cert).unwrap().spki_der, spki);
    }
}

fn chain_of_two() -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
    let ca_key = key(KeySpec::Ec {
        curve: EcCurve::P384,
    });
    let ca = new_issuing_ca(&ca_key, "Test CA", NOW, NOW + YEAR).unwrap();
    let k = key(KeySpec::Rsa { bits: 2048 });
    let leaf = issue(
        &template("leaf"),
        &k,
        Issuer::Ca {
            cert_der: &ca,
            key_pkcs8: &ca_key,
        },
    )
    .unwrap();
    (k, vec![leaf, ca.clone()], ca)
}

#[test]
fn pem_round_trip_with_explanatory_text_and_any_order() {
    let (k, chain, _) = chain_of_two();
    let text = pem::build(Some(&k), &chain);
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let back = pem::parse_bundle(text.as_bytes()).unwrap();
    assert_eq!(back.key_pkcs8.as_slice(), k.as_slice());
    assert_eq!(back.chain, chain);
    // CA first, key last, OpenSSL-style explanatory text, CRLF: still leaf first.
    let ca_pem = pem::build(None, &chain[1..]);
    let leaf_pem = pem::build(None, &chain[..1]);
    let key_pem = pem::build(Some(&k), &[]);
    let messy = format!(
        "Bag Attributes\r\n    friendlyName: ca\r\nsubject=CN = Test CA\r\n{}\r\n# leaf\n{}key follows\n{}trailing\n",
        ca_pem.replace('\n', "\r\n"),
        leaf_pem.as_str(),
        key_pem.as_str()
    );
    let back = pem::parse_bundle(messy.as_bytes()).unwrap();
    assert_eq!(back.chain, chain);
    // Chain only (non-exportable key): no key block, and parse_bundle wants one.
    assert!(matches!(
        pem::parse_bundle(ca_pem.as_bytes()),
        Err(CertError::NoPrivateKey)
    ));
}

#[test]
fn pem_pkcs1_and_sec1_keys_are_converted() {
    use p256::pkcs8::DecodePrivateKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    // PKCS #1 RSA.
    let (k, chain, _) = chain_of_two();
    let rsa_key = rsa::RsaPrivateKey::from_pkcs8_der(&k).unwrap();
    let pkcs1 = rsa_key.to_pkcs1_der().unwrap();
    let text = format!(
        "{}{}",
        enclava_evidence::pem::encode("RSA PRIVATE KEY", pkcs1.as_bytes()),
        pem::build(None, &chain).as_str()
    );
    let back = pem::parse_bundle(text.as_bytes()).unwrap();
    assert_eq!(back.chain, chain);
    assert_eq!(
        key_spec(&back.key_pkcs8).unwrap(),
        KeySpec::Rsa { bits: 2048 }
    );
    assert!(matches_key(&chain[0], &back.key_pkcs8).unwrap());
    // SEC 1 EC (with OpenSSL's EC PARAMETERS block before it, as `openssl ecparam -genkey` writes).
    let ek = key(KeySpec::Ec {
        curve: EcCurve::P256,
    });
    let cert = issue(&template("ec"), &ek, Issuer::SelfSigned).unwrap();
    let sk = p256::SecretKey::from_pkcs8_der(&ek).unwrap();
    let sec1 = sk.to_sec1_der().unwrap();
    let text = format!(
        "{}{}{}",
        enclava_evidence::pem::encode(
            "EC PARAMETERS",
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        ),
        enclava_evidence::pem::encode("EC PRIVATE KEY", &sec1),
        enclava_evidence::pem::encode("CERTIFICATE", &cert)
    );
    let back = pem::parse_bundle(text.as_bytes()).unwrap();
    assert_eq!(
        key_spec(&back.key_pkcs8).unwrap(),
        KeySpec::Ec {
            curve: EcCurve::P256
        }
    );
    assert!(matches_key(&cert, &back.key_pkcs8).unwrap());
}

#[test]
fn pem_refuses_mismatched_encrypted_and_ambiguous_keys() {
    let (k, chain, _) = chain_of_two();
    let other = key(KeySpec::Rsa { bits: 2048 });
    let e = pem::parse_bundle(pem::build(Some(&other), &chain).as_bytes()).unwrap_err();
    assert_eq!(e, CertError::KeyMismatch);
    let encrypted = format!(
        "{}{}",
        enclava_evidence::pem::encode("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]),
        pem::build(None, &chain).as_str()
    );
    assert_eq!(
        pem::parse_bundle(encrypted.as_bytes()).unwrap_err(),
        CertError::EncryptedKey
    );
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert_eq!(
        pem::parse_bundle(legacy.as_bytes()).unwrap_err(),
        CertError::EncryptedKey
    );
    let two = format!(
        "{}{}",
        pem::build(Some(&k), &chain).as_str(),
        pem::build(Some(&k), &[]).as_str()
    );
    assert_eq!(
        pem::parse_bundle(two.as_bytes()).unwrap_err(),
        CertError::SeveralPrivateKeys(2)
    );
    assert_eq!(
        pem::parse_bundle(pem::build(Some(&k), &[]).as_bytes()).unwrap_err(),
        CertError::NoCertificate
    );
    assert!(matches!(
        pem::parse_bundle(b"hello"),
        Err(CertError::Pem(_))
    ));
    // The error never contains the key.
    let msg = format!("{e:?} {e}");
    assert!(!msg.contains("PRIVATE KEY-----"));
}

#[test]
fn pfx_round_trip_with_and_without_password() {
    let (k, chain, _) = chain_of_two();
    for pw in [None, Some("correct horse"), Some("pässwörd")] {
        let p = pfx::build(&k, &chain, pw).unwrap();
        let back = pfx::parse(&p, pw).unwrap();
        assert_eq!(back.key_pkcs8.as_slice(), k.as_slice());
        assert_eq!(back.chain, chain);
        assert_eq!(
            pfx::parse(&p, Some("wrong")).unwrap_err(),
            CertError::WrongPassword
        );
    }
    // None and "" are the same password.
    let p = pfx::build(&k, &chain, None).unwrap();
    assert!(pfx::parse(&p, Some("")).is_ok());
    let p = pfx::build(&k, &chain, Some("x")).unwrap();
    assert_eq!(pfx::parse(&p, None).unwrap_err(), CertError::WrongPassword);
    // Building refuses a key that is not the leaf's.
    let other = key(KeySpec::Ec {
        curve: EcCurve::P256,
    });
    assert_eq!(
        pfx::build(&other, &chain, None).unwrap_err(),
        CertError::KeyMismatch
    );
}

#[test]
fn pfx_legacy_3des_is_read() {
    use p12_keystore::{
        Certificate as P12Cert, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
        PrivateKeyChain,
    };
    let (k, chain, _) = chain_of_two();
    // The CA first in the file: parse puts the leaf first.
    let certs = vec![
        P12Cert::from_der(&chain[0]).unwrap(),
        P12Cert::from_der(&chain[1]).unwrap(),
    ];
    let mut ks = KeyStore::new();
    ks.add_entry(
        "x",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(k.clone(), vec![1, 2, 3], certs)),
    );
    let p = ks
        .writer("legacy")
        .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
        .mac_algorithm(MacAlgorithm::HmacSha1)
        .write()
        .unwrap();
    let back = pfx::parse(&p, Some("legacy")).unwrap();
    assert_eq!(back.key_pkcs8.as_slice(), k.as_slice());
    assert_eq!(back.chain, chain);
    assert_eq!(
        pfx::parse(&p, Some("nope")).unwrap_err(),
        CertError::WrongPassword
    );
}

// ---- OpenSSL interop --------------------------------------------------------------------------

fn openssl() -> Option<std::path::PathBuf> {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| std::path::PathBuf::from("openssl"));
    if found.is_none() && std::env::var("CI").as_deref() == Ok("true") {
        panic!("the openssl command line is required under CI=true for the PFX interop tests");
    }
    found
}

fn run(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn openssl_reads_our_pfx_without_legacy() {
    let Some(ossl) = openssl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (k, chain, _) = chain_of_two();
    for pw in ["", "s3cret"] {
        let path = dir.path().join("ours.p12");
        std::fs::write(
            &path,
            pfx::build(&k, &chain, Some(pw).filter(|p| !p.is_empty())).unwrap(),
        )
        .unwrap();
        let out = run(std::process::Command::new(&ossl)
            .args(["pkcs12", "-nodes", "-passin"])
            .arg(format!("pass:{pw}"))
            .arg("-in")
            .arg(&path));
        let text = String::from_utf8(out.stdout).unwrap();
        let back = pem::parse_bundle(text.as_bytes()).unwrap();
        assert_eq!(back.key_pkcs8.as_slice(), k.as_slice());
        assert_eq!(back.chain, chain);
        // And OpenSSL's integrity check says the MAC is right.
        run(std::process::Command::new(&ossl)
            .args(["pkcs12", "-noout", "-passin"])
            .arg(format!("pass:{pw}"))
            .arg("-in")
            .arg(&path));
    }
}

#[test]
fn openssl_written_pfx_is_read_modern_3des_and_rc2() {
    let Some(ossl) = openssl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (k, chain, _) = chain_of_two();
    let bundle = dir.path().join("bundle.pem");
    // The CA before the leaf in the input, so the chain order must come from the names.
    let text = format!(
        "{}{}",
        pem::build(None, &chain[1..]).as_str(),
        pem::build(Some(&k), &chain[..1]).as_str()
    );
    std::fs::write(&bundle, text).unwrap();
    let cases: [(&str, &[&str]); 3] = [
        ("modern", &[]),
        (
            "3des",
            &[
                "-keypbe",
                "PBE-SHA1-3DES",
                "-certpbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ],
        ),
        ("rc2", &["-legacy"]),
    ];
    for (name, extra) in cases {
        let out_path = dir.path().join(format!("{name}.p12"));
        let status = std::process::Command::new(&ossl)
            .args(["pkcs12", "-export", "-passout", "pass:pw", "-in"])
            .arg(&bundle)
            .arg("-out")
            .arg(&out_path)
            .args(extra)
            .output()
            .unwrap();
        if !status.status.success() {
            // RC2 needs OpenSSL's legacy provider, which a distribution may leave out.
            assert_eq!(name, "rc2", "{}", String::from_utf8_lossy(&status.stderr));
            eprintln!("skipping rc2: {}", String::from_utf8_lossy(&status.stderr));
            continue;
        }
        let p = std::fs::read(&out_path).unwrap();
        let back = pfx::parse(&p, Some("pw")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back.key_pkcs8.as_slice(), k.as_slice(), "{name}");
        assert_eq!(back.chain, chain, "{name}");
        assert_eq!(
            pfx::parse(&p, Some("bad")).unwrap_err(),
            CertError::WrongPassword,
            "{name}"
        );
    }
}

// ---- garbage in, errors out ---------------------------------------------------------------------

mod garbage {
    use super::*;
    use proptest::prelude::*;

    fn fixtures() -> &'static (Vec<u8>, Vec<u8>, String) {
        static F: std::sync::OnceLock<(Vec<u8>, Vec<u8>, String)> = std::sync::OnceLock::new();
        F.get_or_init(|| {
            let (k, chain, _) = chain_of_two();
            let p = pfx::build(&k, &chain, Some("pw")).unwrap();
            let text = pem::build(Some(&k), &chain).to_string();
            (chain[0].clone(), p, text)
        })
    }

    proptest! {
        // 64 cases by default (keeps the suite fast); PROPTEST_CASES=5000 for a deeper local run.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_bytes_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(pfx::parse(&bytes, Some("pw")).is_err());
            prop_assert!(pem::parse_bundle(&bytes).is_err());
            prop_assert!(ParsedCertificate::from_der(&bytes).is_err());
            let _ = Subject::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn truncated_or_flipped_inputs_are_errors(cut in 0usize..4096, flip in 0usize..4096, bit in 0u8..8) {
            let (cert, p, text) = fixtures();
            let c = cut % cert.len();
            prop_assert!(ParsedCertificate::from_der(&cert[..c]).is_err());
            let c = cut % p.len();
            prop_assert!(pfx::parse(&p[..c], Some("pw")).is_err());
            let mut q = p.clone();
            let i = flip % q.len();
            q[i] ^= 1 << bit;
            // A flipped bit either breaks the DER or the MAC; it never yields another key.
            if let Ok(kc) = pfx::parse(&q, Some("pw")) {
                prop_assert!(matches_key(&kc.chain[0], &kc.key_pkcs8).unwrap());
            }
            let t = text.as_bytes();
            let c = cut % t.len();
            let _ = pem::parse_bundle(&t[..c]);
            let mut u = cert.clone();
            let i = flip % u.len();
            u[i] ^= 1 << bit;
            let _ = ParsedCertificate::from_der(&u);
            let _ = verify_issued_by(&u, &u);
        }
    }
}

// ---- Python `cryptography` interop (what Key Vault SDK users open the secret with) --------------

/// A python3 with `cryptography` 42+ (its X.509 verifier): `ENCLAVA_PYTHON` (scripts/test.sh
/// points it at the SDK suite's virtualenv) or `python3`. Required under CI=true.
fn python_with_cryptography() -> Option<String> {
    let py = std::env::var("ENCLAVA_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args([
            "-c",
            "from cryptography.x509.verification import PolicyBuilder",
        ])
        .output()
        .ok()
        .is_some_and(|o| o.status.success());
    ok.then_some(py)
}

const PY_CHECK: &str = r#"
import sys, datetime
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.verification import PolicyBuilder, Store
pfx_path, pw, pem_path, host, when = sys.argv[1:6]
data = open(pfx_path, "rb").read()
key, leaf, extra = pkcs12.load_key_and_certificates(data, pw.encode() if pw else None)
pub = serialization.PublicFormat.SubjectPublicKeyInfo
der = serialization.Encoding.DER
assert key.public_key().public_bytes(der, pub) == leaf.public_key().public_bytes(der, pub), "key/leaf"
pem = open(pem_path, "rb").read()
pkey = serialization.load_pem_private_key(pem, None)
certs = x509.load_pem_x509_certificates(pem)
assert pkey.public_key().public_bytes(der, pub) == certs[0].public_key().public_bytes(der, pub)
assert certs[0] == leaf
ca = extra[-1]
t = datetime.datetime.fromtimestamp(int(when), datetime.timezone.utc)
v = PolicyBuilder().store(Store([ca])).time(t).build_server_verifier(x509.DNSName(host))
chain = v.verify(leaf, extra[:-1])
assert chain[-1] == ca
print("ok")
"#;

#[test]
fn python_cryptography_opens_our_pfx_and_verifies_the_chain_strictly() {
    let Some(py) = python_with_cryptography() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: expected a python3 with cryptography 42+ (set ENCLAVA_PYTHON), found none"
        );
        eprintln!("skipping: no python3 with cryptography");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for ca_spec in [
        KeySpec::Ec {
            curve: EcCurve::P384,
        },
        KeySpec::Rsa { bits: 2048 },
    ] {
        let ca_key = key(ca_spec);
        let ca = new_issuing_ca(
            &ca_key,
            "Enclava Certificate Issuing CA",
            NOW - 10,
            NOW + 10 * YEAR,
        )
        .unwrap();
        for spec in [
            KeySpec::Rsa { bits: 2048 },
            KeySpec::Ec {
                curve: EcCurve::P256,
            },
            KeySpec::Ec {
                curve: EcCurve::P384,
            },
            KeySpec::Ec {
                curve: EcCurve::P521,
            },
        ] {
            let k = key(spec);
            let mut t = template("leaf");
            t.key_usage = vec![KeyUsage::DigitalSignature];
            t.ekus = vec!["1.3.6.1.5.5.7.3.1".into()];
            let leaf = issue(
                &t,
                &k,
                Issuer::Ca {
                    cert_der: &ca,
                    key_pkcs8: &ca_key,
                },
            )
            .unwrap();
            let chain = vec![leaf, ca.clone()];
            for pw in [None, Some("pw")] {
                let pfx_path = dir.path().join("c.p12");
                let pem_path = dir.path().join("c.pem");
                std::fs::write(&pfx_path, pfx::build(&k, &chain, pw).unwrap()).unwrap();
                std::fs::write(&pem_path, pem::build(Some(&k), &chain).as_bytes()).unwrap();
                let out = run(std::process::Command::new(&py)
                    .args(["-c", PY_CHECK])
                    .arg(&pfx_path)
                    .arg(pw.unwrap_or(""))
                    .arg(&pem_path)
                    .arg("leaf.example.com")
                    .arg((NOW + 3600).to_string()));
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    "ok",
                    "{ca_spec:?} {spec:?}"
                );
            }
        }
    }
}

#[test]
fn certificates_in_any_form() {
    use base64::Engine;
    let (_, chain, _) = chain_of_two();
    let der_cat: Vec<u8> = chain.concat();
    let pem_text = pem::build(None, &chain).to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&chain[0]);
    assert_eq!(pem::certificates_any(&der_cat).unwrap(), chain);
    assert_eq!(pem::certificates_any(pem_text.as_bytes()).unwrap(), chain);
    assert_eq!(
        pem::certificates_any(b64.as_bytes()).unwrap(),
        chain[..1].to_vec()
    );
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(
        pem::certificates_any(wrapped.as_bytes()).unwrap(),
        chain[..1].to_vec()
    );
    assert!(matches!(
        pem::certificates_any(b"not a certificate"),
        Err(CertError::Certificate(_))
    ));
    assert!(pem::certificates_any(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
}

// ---- PFX work limits: the attacks ---------------------------------------------------------------

mod pfx_work {
    use super::*;
    use der::asn1::{Any, ObjectIdentifier, OctetString};
    use enclava_certs::PFX_MAX_KDF_ITERATIONS;

    fn oid(s: &str) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(s)
    }

    fn data(inner: Vec<u8>) -> cms::content_info::ContentInfo {
        cms::content_info::ContentInfo {
            content_type: oid("1.2.840.113549.1.7.1"),
            content: Any::encode_from(&OctetString::new(inner).unwrap()).unwrap(),
        }
    }

    /// A PFX (no MAC) whose one shrouded key bag is encrypted under `alg`.
    fn pfx_with_key_alg(alg: spki::AlgorithmIdentifierOwned) -> Vec<u8> {
        let epki = pkcs12::pbe_params::EncryptedPrivateKeyInfo {
            encryption_algorithm: alg,
            encrypted_data: OctetString::new(vec![0u8; 32]).unwrap(),
        };
        let bag = pkcs12::safe_bag::SafeBag {
            bag_id: oid("1.2.840.113549.1.12.10.1.2"),
            bag_value: epki.to_der().unwrap(),
            bag_attributes: None,
        };
        let safe = vec![bag].to_der().unwrap();
        let auth = vec![data(safe)].to_der().unwrap();
        pkcs12::pfx::Pfx {
            version: pkcs12::pfx::Version::V3,
            auth_safe: data(auth),
            mac_data: None,
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn scrypt_with_a_gigabyte_is_refused_before_deriving() {
        // N = 2^20, r = 8: 1 GiB of memory per derivation if it were run.
        let params = pkcs5::pbes2::Parameters {
            kdf: pkcs5::pbes2::Kdf::Scrypt(pkcs5::pbes2::ScryptParams {
                salt: &[1u8; 16],
                cost_parameter: 1 << 20,
                block_size: 8,
                parallelization: 1,
                key_length: Some(32),
            }),
            encryption: pkcs5::pbes2::EncryptionScheme::Aes256Cbc { iv: &[0u8; 16] },
        };
        let alg = spki::AlgorithmIdentifierOwned {
            oid: oid("1.2.840.113549.1.5.13"),
            parameters: Some(Any::from_der(&params.to_der().unwrap()).unwrap()),
        };
        let started = std::time::Instant::now();
        let e = pfx::parse(&pfx_with_key_alg(alg), Some("pw")).unwrap_err();
        assert!(e.to_string().contains("found scrypt"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn legacy_pbe_with_two_billion_iterations_is_refused_before_deriving() {
        let params = pkcs12::pbe_params::Pkcs12PbeParams {
            salt: OctetString::new(vec![1u8; 8]).unwrap(),
            iterations: i32::MAX,
        };
        let alg = spki::AlgorithmIdentifierOwned {
            oid: oid("1.2.840.113549.1.12.1.3"),
            parameters: Some(Any::from_der(&params.to_der().unwrap()).unwrap()),
        };
        let started = std::time::Instant::now();
        let e = pfx::parse(&pfx_with_key_alg(alg), Some("pw")).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("1 to {PFX_MAX_KDF_ITERATIONS} iterations")),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn mac_and_encryption_iterations_over_the_limit_are_refused() {
        use p12_keystore::{Certificate as P12Cert, KeyStore, KeyStoreEntry, PrivateKeyChain};
        let k = key(KeySpec::Ec {
            curve: EcCurve::P256,
        });
        let cert = issue(&template("w"), &k, Issuer::SelfSigned).unwrap();
        let mut ks = KeyStore::new();
        ks.add_entry(
            "x",
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
                &k,
                [1u8],
                [P12Cert::from_der(&cert).unwrap()],
            )),
        );
        let over = PFX_MAX_KDF_ITERATIONS + 1;
        let big_mac = ks
            .writer("pw")
            .mac_iterations(over)
            .encryption_iterations(1)
            .write()
            .unwrap();
        let e = pfx::parse(&big_mac, Some("pw")).unwrap_err();
        assert!(e.to_string().contains("iterations for the MAC"), "{e}");
        let big_enc = ks
            .writer("pw")
            .mac_iterations(1)
            .encryption_iterations(over)
            .write()
            .unwrap();
        let e = pfx::parse(&big_enc, Some("pw")).unwrap_err();
        assert!(e.to_string().contains(&format!("found {over}")), "{e}");
        // At the limit it is still read.
        let ok = ks
            .writer("pw")
            .mac_iterations(1)
            .encryption_iterations(1)
            .write()
            .unwrap();
        assert!(pfx::parse(&ok, Some("pw")).is_ok());
    }

    #[test]
    fn too_many_bags_are_refused() {
        let k = key(KeySpec::Ec {
            curve: EcCurve::P256,
        });
        let leaf = issue(&template("w"), &k, Issuer::SelfSigned).unwrap();
        let mut chain = vec![leaf];
        let other = key(KeySpec::Ec {
            curve: EcCurve::P256,
        });
        for i in 0..70 {
            chain.push(issue(&template(&format!("c{i}")), &other, Issuer::SelfSigned).unwrap());
        }
        // We do not write what we would not read back.
        assert!(
            pfx::build(&k, &chain, None)
                .unwrap_err()
                .to_string()
                .contains("at most 63")
        );
        // A file from elsewhere with that many bags is refused before its bags are decrypted.
        use p12_keystore::{Certificate as P12Cert, KeyStore, KeyStoreEntry, PrivateKeyChain};
        let certs: Vec<P12Cert> = chain
            .iter()
            .map(|c| P12Cert::from_der(c).unwrap())
            .collect();
        let mut ks = KeyStore::new();
        ks.add_entry(
            "x",
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(&k, [1u8], certs)),
        );
        let p = ks
            .writer("")
            .mac_iterations(1)
            .encryption_iterations(1)
            .write()
            .unwrap();
        let e = pfx::parse(&p, None).unwrap_err();
        assert!(e.to_string().contains("at most 64 bags"), "{e}");
        // 63 certificates and the key: read.
        assert!(pfx::parse(&pfx::build(&k, &chain[..63], None).unwrap(), None).is_ok());
    }
}

#[test]
fn openssl_subjects_read_back_to_the_same_name() {
    let Some(ossl) = openssl() else { return };
    let dir = tempfile::tempdir().unwrap();
    for subj in [
        "/C=US/ST=WA/L=Redmond/O=Contoso, Ltd./OU=a/OU=b/CN=www.contoso.com/emailAddress=x@contoso.com",
        "/DC=com/DC=contoso/O=c/CN=a+UID=b",
        "/CN=quote \" and \\, comma",
    ] {
        let cert = dir.path().join("c.pem");
        run(std::process::Command::new(&ossl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
            ])
            .args(["-multivalue-rdn", "-subj", subj, "-out"])
            .arg(&cert)
            .arg("-keyout")
            .arg(dir.path().join("k.pem")));
        let der = enclava_evidence::pem::certificates(&std::fs::read(&cert).unwrap())
            .unwrap()
            .remove(0);
        let parsed = ParsedCertificate::from_der(&der).unwrap();
        let subject = Subject::parse(&parsed.subject)
            .unwrap_or_else(|e| panic!("{subj}: {}: {e}", parsed.subject));
        let ours = subject.to_name_der().unwrap();
        let theirs = Certificate::from_der(&der)
            .unwrap()
            .tbs_certificate
            .subject
            .to_der()
            .unwrap();
        assert_eq!(ours, theirs, "{subj} -> {}", parsed.subject);
    }
}

#[test]
fn wire_names_are_key_vaults() {
    let all: Vec<KeyUsage> = KeyUsage::ALL.to_vec();
    let json = serde_json::to_string(&all).unwrap();
    assert_eq!(
        json,
        r#"["digitalSignature","nonRepudiation","keyEncipherment","dataEncipherment","keyAgreement","keyCertSign","cRLSign","encipherOnly","decipherOnly"]"#
    );
    assert_eq!(serde_json::from_str::<Vec<KeyUsage>>(&json).unwrap(), all);
    for u in KeyUsage::ALL {
        assert_eq!(serde_json::to_value(u).unwrap(), u.as_str());
    }
    assert_eq!(serde_json::to_value(EcCurve::P521).unwrap(), "P-521");
    let sans: SubjectAltNames = serde_json::from_str(r#"{"dns_names":["a.example"]}"#).unwrap();
    assert_eq!(sans.dns_names, ["a.example"]);
    assert!(sans.emails.is_empty() && sans.upns.is_empty());
    let s: Subject = serde_json::from_str(r#""CN=a; O=b""#).unwrap();
    assert_eq!(serde_json::to_value(&s).unwrap(), "CN=a, O=b");
    assert!(serde_json::from_str::<Subject>(r#""C=USA""#).is_err());
}
