//! Certificates (issue 12) through the real vault over SQLite: creation by every issuer kind, the
//! key and secret each version owns, the CSR flow, import, the lifecycle that carries the key and
//! secret, backup / restore, issuers, contacts and the exactly-once lifetime actions.

use std::sync::{Arc, Barrier};

use chrono::Duration;
use enclava_certs::{ParsedCertificate, pem, pfx};
use enclava_store::{Store, Table};
use enclava_vault::certmodel::*;
use enclava_vault::*;

use crate::common::*;

fn policy(issuer: &str) -> CertificatePolicy {
    CertificatePolicy {
        key_props: Some(KeyProperties {
            kty: Some("EC".into()),
            crv: Some("P-256".into()),
            ..Default::default()
        }),
        x509_props: Some(X509CertificateProperties {
            subject: Some("CN=svc.example, O=Enclava".into()),
            sans: Some(SubjectAlternativeNames {
                dns_names: Some(vec!["svc.example".into(), "alt.example".into()]),
                ..Default::default()
            }),
            validity_months: Some(12),
            ..Default::default()
        }),
        issuer: Some(IssuerParameters {
            name: Some(issuer.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn create(
    v: &Vault,
    name: &str,
    p: CertificatePolicy,
    ca: Option<&IssuingCa>,
) -> Result<CertificateOperation> {
    Certificates::create(
        v,
        name,
        &CertificateCreateParameters {
            policy: Some(p),
            tags: Some([("t".to_string(), "v".to_string())].into()),
            ..Default::default()
        },
        ca,
    )
}

fn issuing_ca(now: i64) -> IssuingCa {
    let key = enclava_certs::generate(enclava_certs::KeySpec::Ec {
        curve: enclava_certs::EcCurve::P256,
    })
    .unwrap();
    let cert_der = enclava_certs::new_issuing_ca(
        &key,
        "Enclava Certificate Issuing CA",
        now - 60,
        now + 10 * 365 * 86_400,
    )
    .unwrap();
    IssuingCa {
        cert_der,
        key_pkcs8: key,
    }
}

fn std_b64(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)
}

fn std_unb64(s: &str) -> Vec<u8> {
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).unwrap()
}

fn version_of(id: &str) -> String {
    id.rsplit('/').next().unwrap().to_string()
}

#[test]
fn self_signed_create_completes_with_key_and_pfx_secret() {
    let e = env();
    let v = &e.vault;
    // The create reply says inProgress (as Key Vault's; the Python poller needs it), the
    // certificate is complete by then.
    let op = create(v, "Web-Cert", policy("Self"), None).unwrap();
    assert_eq!(op.status, "inProgress");
    assert!(op.target.is_none());
    assert_eq!(op.id, format!("{BASE}/certificates/Web-Cert/pending"));
    let pending = Certificates::get_operation(v, "web-cert").unwrap();
    assert_eq!(pending.status, "completed");
    assert_eq!(
        pending.target.as_deref(),
        Some(&*format!("{BASE}/certificates/Web-Cert"))
    );

    let b = Certificates::get(v, "web-cert", None).unwrap();
    let ver = version_of(&b.id);
    assert_eq!(
        b.kid.as_deref(),
        Some(&*format!("{BASE}/keys/Web-Cert/{ver}"))
    );
    assert_eq!(
        b.sid.as_deref(),
        Some(&*format!("{BASE}/secrets/Web-Cert/{ver}"))
    );
    let pol = b
        .policy
        .as_ref()
        .expect("the latest version carries the policy");
    assert_eq!(
        pol.id.as_deref(),
        Some(&*format!("{BASE}/certificates/Web-Cert/policy"))
    );
    assert_eq!(pol.key_props.as_ref().unwrap().exportable, Some(true));
    assert_eq!(
        pol.secret_props.as_ref().unwrap().content_type.as_deref(),
        Some(content_types::PKCS12)
    );
    let cer = b.cer.as_ref().unwrap().as_slice();
    let parsed = ParsedCertificate::from_der(cer).unwrap();
    assert_eq!(parsed.subject, "CN=svc.example, O=Enclava");
    assert!(parsed.self_issued);
    assert_eq!(parsed.sans.dns_names, ["svc.example", "alt.example"]);
    assert_eq!(
        b.x5t.as_ref().unwrap().as_slice(),
        &enclava_vault::b64::decode(&parsed.x5t).unwrap()[..]
    );
    assert_eq!(b.attributes.exp, Some(parsed.not_after));
    assert_eq!(b.attributes.nbf, Some(parsed.not_before));
    assert_eq!(b.tags.as_ref().unwrap()["t"], "v");

    // The secret: a PFX without password holding the key of the certificate.
    let s = v.get_secret("Web-Cert", Some(&ver)).unwrap();
    assert_eq!(s.content_type.as_deref(), Some(content_types::PKCS12));
    assert_eq!(s.managed, Some(true));
    assert_eq!(s.kid.as_deref(), b.kid.as_deref());
    let kc = pfx::parse(&std_unb64(s.value.unwrap().as_str()), None).unwrap();
    assert_eq!(kc.chain[0], cer);
    assert!(enclava_certs::matches_key(cer, &kc.key_pkcs8).unwrap());

    // The key: same version, managed, does crypto with the certificate's key.
    let k = v.get_key("Web-Cert", Some(&ver)).unwrap();
    assert_eq!(k.managed, Some(true));
    assert_eq!(k.key.kty.as_deref(), Some("EC"));
    assert_eq!(k.key.crv.as_deref(), Some("P-256"));
    let digest = vec![7u8; 32];
    let sig = v
        .sign(
            "Web-Cert",
            Some(&ver),
            &KeySignParameters {
                alg: "ES256".into(),
                value: Base64Url(digest.clone()),
            },
        )
        .unwrap();
    let ok = v
        .verify(
            "Web-Cert",
            Some(&ver),
            &KeyVerifyParameters {
                alg: "ES256".into(),
                digest: Base64Url(digest),
                value: sig.value,
            },
        )
        .unwrap();
    assert!(ok.value);
}

#[test]
fn pem_secret_holds_pkcs8_key_and_chain_leaf_first() {
    let e = env();
    let mut p = policy("Self");
    p.key_props = Some(KeyProperties {
        kty: Some("RSA".into()),
        key_size: Some(2048),
        ..Default::default()
    });
    p.secret_props = Some(SecretProperties {
        content_type: Some(content_types::PEM.into()),
    });
    create(&e.vault, "pem", p, None).unwrap();
    let b = Certificates::get(&e.vault, "pem", None).unwrap();
    let s = e.vault.get_secret("pem", None).unwrap();
    assert_eq!(s.content_type.as_deref(), Some(content_types::PEM));
    let text = s.value.unwrap().as_str().to_string();
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 first"
    );
    let kc = pem::parse_bundle(text.as_bytes()).unwrap();
    assert_eq!(kc.chain[0], b.cer.unwrap().as_slice());
    assert_eq!(
        enclava_certs::key_spec(&kc.key_pkcs8).unwrap(),
        enclava_certs::KeySpec::Rsa { bits: 2048 }
    );
}

#[test]
fn enclava_issued_chains_to_the_ca_and_needs_it() {
    let e = env();
    let now = e.clock.now().timestamp();
    let ca = issuing_ca(now);
    let err = create(&e.vault, "nca", policy("Enclava"), None).unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");
    create(&e.vault, "issued", policy("Enclava"), Some(&ca)).unwrap();
    let op = Certificates::get_operation(&e.vault, "issued").unwrap();
    assert_eq!(op.status, "completed");
    let b = Certificates::get(&e.vault, "issued", None).unwrap();
    let leaf = b.cer.unwrap().0;
    enclava_certs::verify_issued_by(&leaf, &ca.cert_der).unwrap();
    let parsed = ParsedCertificate::from_der(&leaf).unwrap();
    assert!(!parsed.self_issued);
    assert_eq!(parsed.issuer, "CN=Enclava Certificate Issuing CA");
    let kc = pfx::parse(
        &std_unb64(
            e.vault
                .get_secret("issued", None)
                .unwrap()
                .value
                .unwrap()
                .as_str(),
        ),
        None,
    )
    .unwrap();
    assert_eq!(kc.chain, vec![leaf, ca.cert_der.clone()]);
}

#[test]
fn non_exportable_or_release_policy_secret_never_holds_the_key() {
    let e = env();
    let mut p = policy("Self");
    p.key_props.as_mut().unwrap().exportable = Some(false);
    create(&e.vault, "nx", p, None).unwrap();
    let s = e.vault.get_secret("nx", None).unwrap();
    let text = s.value.unwrap().as_str().to_string();
    assert!(!text.contains("PRIVATE KEY"));
    assert_eq!(s.content_type.as_deref(), Some(content_types::PEM));
    assert!(matches!(
        pem::parse_bundle(text.as_bytes()),
        Err(enclava_certs::CertError::NoPrivateKey)
    ));
    let err = e.vault.releasable_key("nx", None).unwrap_err();
    assert_eq!(err.http_status(), 403);

    // A release policy without exportable is refused.
    let mut p = policy("Self");
    p.key_props.as_mut().unwrap().exportable = Some(false);
    p.key_props.as_mut().unwrap().release_policy = Some(KeyReleasePolicy {
        data: Some(Base64Url(br#"{"version":"1.0.0","anyOf":[]}"#.to_vec())),
        ..Default::default()
    });
    assert_eq!(
        create(&e.vault, "rp0", p, None).unwrap_err().http_status(),
        400
    );

    // With a release policy: the key is released only through release, the secret has no key.
    let mut p = policy("Self");
    p.key_props.as_mut().unwrap().release_policy = Some(KeyReleasePolicy {
        data: Some(Base64Url(br#"{"version":"1.0.0","anyOf":[{"authority":"https://a","allOf":[{"claim":"x","equals":"y"}]}]}"#.to_vec())),
        ..Default::default()
    });
    create(&e.vault, "rp", p, None).unwrap();
    let s = e.vault.get_secret("rp", None).unwrap();
    assert!(!s.value.unwrap().as_str().contains("PRIVATE KEY"));
    let r = e.vault.releasable_key("rp", None).unwrap();
    let cer = Certificates::get(&e.vault, "rp", None)
        .unwrap()
        .cer
        .unwrap()
        .0;
    assert!(enclava_certs::matches_key(&cer, &r.material).unwrap());
}

/// A change that makes a policy invalid.
type PolicyEdit = Box<dyn Fn(&mut CertificatePolicy)>;

#[test]
fn bad_names_and_policies_are_400() {
    let e = env();
    for n in ["issuers", "Contacts"] {
        let err = create(&e.vault, n, policy("Self"), None).unwrap_err();
        assert_eq!(err.http_status(), 400, "{n}: {err}");
        assert!(err.to_string().contains("reserved"), "{err}");
        let imp =
            Certificates::import(&e.vault, n, &CertificateImportParameters::default()).unwrap_err();
        assert_eq!(imp.http_status(), 400);
    }
    let cases: Vec<(&str, PolicyEdit)> = vec![
        (
            "kty",
            Box::new(|p| p.key_props.as_mut().unwrap().kty = Some("oct".into())),
        ),
        (
            "size",
            Box::new(|p| {
                p.key_props = Some(KeyProperties {
                    kty: Some("RSA".into()),
                    key_size: Some(1024),
                    ..Default::default()
                })
            }),
        ),
        (
            "crv",
            Box::new(|p| p.key_props.as_mut().unwrap().crv = Some("P-192".into())),
        ),
        (
            "ct",
            Box::new(|p| {
                p.secret_props = Some(SecretProperties {
                    content_type: Some("text/plain".into()),
                })
            }),
        ),
        (
            "subject",
            Box::new(|p| p.x509_props.as_mut().unwrap().subject = Some("nonsense".into())),
        ),
        (
            "months",
            Box::new(|p| p.x509_props.as_mut().unwrap().validity_months = Some(0)),
        ),
        (
            "ku",
            Box::new(|p| {
                p.x509_props.as_mut().unwrap().key_usage = Some(vec!["everything".into()])
            }),
        ),
        (
            "trigger",
            Box::new(|p| {
                p.lifetime_actions = Some(vec![certmodel::LifetimeAction {
                    trigger: Some(Trigger::default()),
                    action: Some(Action {
                        action_type: Some("AutoRenew".into()),
                    }),
                }])
            }),
        ),
    ];
    for (what, edit) in cases {
        let mut p = policy("Self");
        edit(&mut p);
        let err = create(&e.vault, "bad", p, None).unwrap_err();
        assert_eq!(err.http_status(), 400, "{what}: {err}");
    }
    assert!(
        Certificates::list(&e.vault, None, None)
            .unwrap()
            .items
            .is_empty(),
        "no partial write"
    );
    assert!(e.vault.list_keys(None, None).unwrap().items.is_empty());
    // A name whose key belongs to someone else.
    e.vault
        .create_key(
            "taken",
            &KeyCreateParameters {
                kty: "EC".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        create(&e.vault, "taken", policy("Self"), None)
            .unwrap_err()
            .http_status(),
        409
    );
}

/// Sign a PKCS#10 request with a throwaway OpenSSL CA; returns (leaf DER, CA DER).
fn openssl_sign(csr_der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "openssl is required in CI");
        eprintln!("openssl not found: skipping the CSR signing part");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).to_string_lossy().to_string();
    std::fs::write(p("csr.der"), csr_der).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
        "-subj",
        "/CN=Test CA",
        "-days",
        "30",
        "-outform",
        "PEM",
    ]);
    run(&[
        "req",
        "-inform",
        "DER",
        "-in",
        &p("csr.der"),
        "-out",
        &p("csr.pem"),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p("csr.pem"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "10",
        "-outform",
        "DER",
        "-out",
        &p("leaf.der"),
    ]);
    run(&[
        "x509",
        "-in",
        &p("ca.pem"),
        "-outform",
        "DER",
        "-out",
        &p("ca.der"),
    ]);
    Some((
        std::fs::read(p("leaf.der")).unwrap(),
        std::fs::read(p("ca.der")).unwrap(),
    ))
}

#[test]
fn csr_flow_merge_checks_the_key_and_completes() {
    let e = env();
    let v = &e.vault;
    let op = create(v, "csr", policy("Unknown"), None).unwrap();
    assert_eq!(op.status, "inProgress");
    let csr = op.csr.clone().expect("a CSR").0;
    // While pending, the certificate reads as Key Vault shows it: the pending version (the
    // operation's id), disabled, with its policy and no certificate yet.
    let pending = Certificates::get(v, "csr", None).unwrap();
    let pending_version = op.request_id.clone().unwrap();
    assert_eq!(
        pending.id,
        format!("{BASE}/certificates/csr/{pending_version}")
    );
    assert_eq!(pending.attributes.enabled, Some(false));
    assert!(pending.cer.is_none() && pending.x5t.is_none());
    assert!(pending.policy.is_some());
    assert_eq!(
        Certificates::get(v, "csr", Some(&pending_version))
            .unwrap()
            .id,
        pending.id
    );
    assert_eq!(
        Certificates::get(v, "csr", Some("0123456789abcdef0123456789abcdef"))
            .unwrap_err()
            .http_status(),
        404
    );
    // A second create while pending is a conflict.
    assert_eq!(
        create(v, "csr", policy("Unknown"), None)
            .unwrap_err()
            .http_status(),
        409
    );

    // Merging a certificate of another key is refused, and changes nothing.
    create(v, "other", policy("Self"), None).unwrap();
    let other = Certificates::get(v, "other", None).unwrap().cer.unwrap();
    let err = Certificates::merge(
        v,
        "csr",
        &CertificateMergeParameters {
            x5c: vec![other],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
    assert_eq!(
        Certificates::get_operation(v, "csr").unwrap().status,
        "inProgress"
    );

    let Some((leaf, ca)) = openssl_sign(&csr) else {
        return;
    };
    // The documented SDK form: each x5c element the ASCII base64 of a DER certificate.
    let x5c = vec![
        Base64Std(std_b64(&leaf).into_bytes()),
        Base64Std(ca.clone()),
    ];
    let b = Certificates::merge(
        v,
        "csr",
        &CertificateMergeParameters {
            x5c,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(b.cer.as_ref().unwrap().as_slice(), &leaf[..]);
    // The merged version is the one the pending certificate named.
    assert_eq!(b.id, pending.id);
    let op = Certificates::get_operation(v, "csr").unwrap();
    assert_eq!(op.status, "completed");
    assert_eq!(
        op.target.as_deref(),
        Some(&*format!("{BASE}/certificates/csr"))
    );
    let kc = pfx::parse(
        &std_unb64(v.get_secret("csr", None).unwrap().value.unwrap().as_str()),
        None,
    )
    .unwrap();
    assert_eq!(kc.chain, vec![leaf, ca]);
    // Nothing left to merge.
    let again = Certificates::merge(
        v,
        "csr",
        &CertificateMergeParameters {
            x5c: vec![b.cer.unwrap()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(again.http_status(), 404);
}

#[test]
fn operation_cancel_delete_and_external_issuer_fails() {
    let e = env();
    let v = &e.vault;
    create(v, "c1", policy("Unknown"), None).unwrap();
    let op = Certificates::update_operation(
        v,
        "c1",
        &CertificateOperationUpdateParameter {
            cancellation_requested: true,
        },
    )
    .unwrap();
    assert!(op.cancellation_requested);
    assert_eq!(op.status, "cancelled");
    let d = Certificates::delete_operation(v, "c1").unwrap();
    assert_eq!(d.status, "cancelled");
    assert_eq!(
        Certificates::get_operation(v, "c1").unwrap_err().code(),
        "PendingCertificateNotFound"
    );

    // An issuer that is not an issuer object: 404; an issuer object: the operation fails.
    assert_eq!(
        create(v, "c2", policy("DigiCert"), None)
            .unwrap_err()
            .http_status(),
        404
    );
    Certificates::set_issuer(
        v,
        "DigiCert",
        &CertificateIssuerSetParameters {
            provider: "DigiCert".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let op = create(v, "c2", policy("DigiCert"), None).unwrap();
    assert_eq!(op.status, "failed");
    assert!(op.error.unwrap().message.contains("DigiCert"));
    // A failed first create still reads as its pending version (as Key Vault), without a
    // certificate; a name with neither a certificate nor an operation is 404.
    let failed = Certificates::get(v, "c2", None).unwrap();
    assert!(failed.cer.is_none());
    assert_eq!(failed.attributes.enabled, Some(false));
    assert_eq!(
        Certificates::get(v, "nothing-here", None)
            .unwrap_err()
            .http_status(),
        404
    );
}

#[test]
fn import_pfx_and_pem_with_bad_input_refused() {
    let e = env();
    let v = &e.vault;
    let now = e.clock.now().timestamp();
    let key = enclava_certs::generate(enclava_certs::KeySpec::Rsa { bits: 2048 }).unwrap();
    let mut t = enclava_certs::CertTemplate::new(
        enclava_certs::Subject::parse("CN=imported").unwrap(),
        now - 10,
        now + 86_400 * 90,
    )
    .unwrap();
    t.sans.dns_names = vec!["imported.example".into()];
    let leaf = enclava_certs::issue(&t, &key, enclava_certs::Issuer::SelfSigned).unwrap();
    let pfx_bytes = pfx::build(&key, std::slice::from_ref(&leaf), Some("pa55")).unwrap();

    let imp = |name: &str, value: String, pwd: Option<&str>| {
        Certificates::import(
            v,
            name,
            &CertificateImportParameters {
                value: SecretString::new(value),
                pwd: pwd.map(|p| SecretString::new(p.into())),
                ..Default::default()
            },
        )
    };
    for (value, pwd) in [
        (std_b64(&pfx_bytes), Some("wrong")),
        (std_b64(&pfx_bytes), None),
        ("!!! not base64".to_string(), None),
        (std_b64(b"garbage bytes"), None),
        (std_b64(&pfx_bytes[..pfx_bytes.len() / 2]), Some("pa55")),
    ] {
        let err = imp("imp", value, pwd).unwrap_err();
        assert_eq!(err.http_status(), 400, "{err}");
        assert!(!err.to_string().contains("pa55"));
    }
    assert!(
        Certificates::list(v, None, None).unwrap().items.is_empty(),
        "no partial write"
    );

    let b = imp("imp", std_b64(&pfx_bytes), Some("pa55")).unwrap();
    assert_eq!(b.cer.as_ref().unwrap().as_slice(), &leaf[..]);
    let pol = b.policy.unwrap();
    assert_eq!(
        pol.x509_props.as_ref().unwrap().subject.as_deref(),
        Some("CN=imported")
    );
    assert_eq!(pol.key_props.as_ref().unwrap().key_size, Some(2048));
    let kc = pfx::parse(
        &std_unb64(v.get_secret("imp", None).unwrap().value.unwrap().as_str()),
        None,
    )
    .unwrap();
    assert_eq!(&kc.key_pkcs8[..], &key[..]);

    // PEM: as text (JS SDK) and as base64 of the text (Python SDK), with explanatory text.
    let text = format!(
        "Bag Attributes: friendly\n{}",
        &*pem::build(Some(&key), std::slice::from_ref(&leaf))
    );
    let b = imp("pem1", text.clone(), None).unwrap();
    assert_eq!(b.content_type.as_deref(), Some(content_types::PEM));
    let b2 = imp("pem2", std_b64(text.as_bytes()), None).unwrap();
    assert_eq!(b2.cer, b.cer);
    // A key that is not the leaf's.
    let other = enclava_certs::generate(enclava_certs::KeySpec::Rsa { bits: 2048 }).unwrap();
    let bad = format!(
        "{}{}",
        &*pem::build(Some(&other), &[]),
        &*pem::build(None, std::slice::from_ref(&leaf))
    );
    assert_eq!(imp("pem3", bad, None).unwrap_err().http_status(), 400);
}

#[test]
fn managed_key_and_secret_are_read_only() {
    let e = env();
    let v = &e.vault;
    create(v, "m", policy("Self"), None).unwrap();
    let errs = [
        v.set_secret(
            "m",
            &SecretSetParameters {
                value: SecretString::new("x".into()),
                ..Default::default()
            },
        )
        .unwrap_err(),
        v.update_secret(
            "m",
            None,
            &SecretUpdateParameters {
                tags: Some(Default::default()),
                ..Default::default()
            },
        )
        .unwrap_err(),
        v.delete_secret("m").unwrap_err(),
        v.create_key(
            "m",
            &KeyCreateParameters {
                kty: "EC".into(),
                ..Default::default()
            },
        )
        .unwrap_err(),
        v.update_key("m", None, &KeyUpdateParameters::default())
            .unwrap_err(),
        v.delete_key("m").unwrap_err(),
        v.rotate_key("m").unwrap_err(),
        v.set_rotation_policy("m", &KeyRotationPolicy::default())
            .unwrap_err(),
    ];
    for err in errs {
        assert_eq!(err.http_status(), 403, "{err}");
        assert!(err.to_string().contains("certificate 'm'"), "{err}");
    }
    // Deleted with its certificate: recover / purge through keys and secrets are refused too.
    Certificates::delete(v, "m").unwrap();
    assert_eq!(v.recover_deleted_key("m").unwrap_err().http_status(), 403);
    assert_eq!(v.purge_deleted_secret("m").unwrap_err().http_status(), 403);
}

#[test]
fn delete_recover_purge_carry_key_and_secret() {
    let e = env();
    let v = &e.vault;
    create(v, "life", policy("Self"), None).unwrap();
    create(v, "life", policy("Self"), None).unwrap(); // a second version
    assert_eq!(
        Certificates::list_versions(v, "life", None, None)
            .unwrap()
            .items
            .len(),
        2
    );
    let d = Certificates::delete(v, "life").unwrap();
    assert_eq!(
        d.deletion.recovery_id,
        format!("{BASE}/deletedcertificates/life")
    );
    assert_eq!(v.get_key("life", None).unwrap_err().http_status(), 404);
    assert_eq!(v.get_secret("life", None).unwrap_err().http_status(), 404);
    assert!(v.get_deleted_key("life").is_ok());
    assert!(v.get_deleted_secret("life").is_ok());
    assert_eq!(
        Certificates::list_deleted(v, None, None)
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        create(v, "life", policy("Self"), None)
            .unwrap_err()
            .http_status(),
        409
    );

    Certificates::recover(v, "life").unwrap();
    assert!(v.get_key("life", None).is_ok());
    assert!(v.get_secret("life", None).is_ok());
    assert!(Certificates::get(v, "life", None).unwrap().policy.is_some());

    Certificates::delete(v, "life").unwrap();
    Certificates::purge(v, "life").unwrap();
    for t in [
        Table::Certificates,
        Table::CertificateVersions,
        Table::DeletedCertificates,
        Table::Keys,
        Table::KeyVersions,
        Table::DeletedKeys,
        Table::Secrets,
        Table::SecretVersions,
        Table::DeletedSecrets,
        Table::CertificateOperations,
    ] {
        assert!(
            e.store.list(t, "", None, 10).unwrap().is_empty(),
            "{t:?} not purged"
        );
    }
    assert_eq!(
        Certificates::get_deleted(v, "life")
            .unwrap_err()
            .http_status(),
        404
    );
}

#[test]
fn scheduled_purge_takes_key_and_secret() {
    let e = env();
    create(&e.vault, "sp", policy("Self"), None).unwrap();
    Certificates::delete(&e.vault, "sp").unwrap();
    e.clock.advance(Duration::days(91));
    assert!(e.vault.purge_expired(e.clock.now()).unwrap() >= 1);
    for t in [
        Table::DeletedCertificates,
        Table::DeletedKeys,
        Table::DeletedSecrets,
        Table::KeyVersions,
    ] {
        assert!(
            e.store.list(t, "", None, 10).unwrap().is_empty(),
            "{t:?} not purged"
        );
    }
}

#[test]
fn backup_restore_round_trip_includes_key_and_secret() {
    let e = env();
    let v = &e.vault;
    create(v, "bk", policy("Self"), None).unwrap();
    let before = Certificates::get(v, "bk", None).unwrap();
    let secret_before = v
        .get_secret("bk", None)
        .unwrap()
        .value
        .unwrap()
        .as_str()
        .to_string();
    let key_before = v.get_key("bk", None).unwrap();
    let blob = Certificates::backup(v, "bk").unwrap().value.0;
    assert_eq!(&blob[..6], b"EVBK\x01\x03");
    // Not restorable as a key or secret backup, nor while the name exists.
    assert_eq!(v.restore_key(&blob).unwrap_err().http_status(), 400);
    assert_eq!(
        Certificates::restore(v, &blob).unwrap_err().http_status(),
        409
    );
    Certificates::delete(v, "bk").unwrap();
    Certificates::purge(v, "bk").unwrap();
    let r = Certificates::restore(v, &blob).unwrap();
    assert_eq!(r.id, before.id);
    assert_eq!(r.cer, before.cer);
    assert!(r.policy.is_some());
    assert_eq!(
        v.get_secret("bk", None).unwrap().value.unwrap().as_str(),
        secret_before
    );
    let k = v.get_key("bk", None).unwrap();
    assert_eq!(k.key, key_before.key);
    assert_eq!(k.managed, Some(true));
    // The owned key and secret alone cannot be restored as plain objects (they would turn into
    // a "managed" key without its certificate).
    let kblob = v.backup_key("bk").unwrap().value.0;
    let sblob = v.backup_secret("bk").unwrap().value.0;
    Certificates::delete(v, "bk").unwrap();
    Certificates::purge(v, "bk").unwrap();
    assert_eq!(v.restore_key(&kblob).unwrap_err().http_status(), 403);
    assert_eq!(v.restore_secret(&sblob).unwrap_err().http_status(), 403);
    assert!(v.get_key("bk", None).is_err());
    Certificates::restore(v, &blob).unwrap();
    // A tampered blob is refused.
    let mut bad = blob.clone();
    let n = bad.len();
    bad[n - 3] ^= 1;
    Certificates::delete(v, "bk").unwrap();
    Certificates::purge(v, "bk").unwrap();
    assert_eq!(
        Certificates::restore(v, &bad).unwrap_err().http_status(),
        400
    );
}

#[test]
fn update_versions_and_policy() {
    let e = env();
    let v = &e.vault;
    create(v, "up", policy("Self"), None).unwrap();
    let first = Certificates::get(v, "up", None).unwrap();
    e.clock.advance(Duration::seconds(5));
    create(v, "up", policy("Self"), None).unwrap();
    let b = Certificates::update(
        v,
        "up",
        Some(&version_of(&first.id)),
        &CertificateUpdateParameters {
            attributes: Some(CertificateAttributes {
                enabled: Some(false),
                ..Default::default()
            }),
            tags: Some([("a".to_string(), "b".to_string())].into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(b.attributes.enabled, Some(false));
    assert!(b.policy.is_none(), "not the latest version");
    // The key and secret version follow the certificate's enabled.
    let v1 = version_of(&first.id);
    assert_eq!(
        v.get_key("up", Some(&v1)).unwrap().attributes.enabled,
        Some(false)
    );
    assert_eq!(
        v.get_secret("up", Some(&v1)).unwrap_err().http_status(),
        403
    );
    assert_eq!(
        v.get_key("up", None).unwrap().attributes.enabled,
        Some(true)
    );
    assert_eq!(
        Certificates::get(v, "up", Some(&version_of(&first.id)))
            .unwrap()
            .tags
            .unwrap()["a"],
        "b"
    );
    let items = Certificates::list(v, None, None).unwrap().items;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, format!("{BASE}/certificates/up"));

    let p = Certificates::update_policy(
        v,
        "up",
        &CertificatePolicy {
            secret_props: Some(SecretProperties {
                content_type: Some(content_types::PEM.into()),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        p.secret_props.unwrap().content_type.as_deref(),
        Some(content_types::PEM)
    );
    assert_eq!(
        p.x509_props.unwrap().subject.as_deref(),
        Some("CN=svc.example, O=Enclava"),
        "other sections kept"
    );
    let got = Certificates::get_policy(v, "up").unwrap();
    assert_eq!(
        got.secret_props.unwrap().content_type.as_deref(),
        Some(content_types::PEM)
    );
    // The next version follows the new policy.
    Certificates::create(v, "up", &CertificateCreateParameters::default(), None).unwrap();
    assert_eq!(
        v.get_secret("up", None).unwrap().content_type.as_deref(),
        Some(content_types::PEM)
    );
    assert_eq!(
        Certificates::update_policy(
            v,
            "up",
            &CertificatePolicy {
                key_props: Some(KeyProperties {
                    kty: Some("DSA".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        )
        .unwrap_err()
        .http_status(),
        400
    );
}

#[test]
fn issuers_and_contacts() {
    let e = env();
    let v = &e.vault;
    let i = Certificates::set_issuer(
        v,
        "Corp",
        &CertificateIssuerSetParameters {
            provider: "Test".into(),
            credentials: Some(IssuerCredentials {
                account_id: Some("acct".into()),
                pwd: Some(SecretString::new("hunter2".into())),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        i.id.as_deref(),
        Some(&*format!("{BASE}/certificates/issuers/Corp"))
    );
    let json = serde_json::to_string(&Certificates::get_issuer(v, "corp").unwrap()).unwrap();
    assert!(
        json.contains("acct") && !json.contains("hunter2") && !json.contains("pwd"),
        "{json}"
    );
    for (k, row) in e
        .store
        .list(Table::CertificateIssuers, "", None, 10)
        .unwrap()
    {
        assert!(
            !String::from_utf8_lossy(&row).contains("hunter2"),
            "password in the clear in {k}"
        );
    }
    let u = Certificates::update_issuer(
        v,
        "Corp",
        &CertificateIssuerUpdateParameters {
            provider: Some("Other".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(u.provider.as_deref(), Some("Other"));
    assert_eq!(u.credentials.unwrap().account_id.as_deref(), Some("acct"));
    assert_eq!(
        Certificates::list_issuers(v, None, None)
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        Certificates::set_issuer(
            v,
            "Self",
            &CertificateIssuerSetParameters {
                provider: "x".into(),
                ..Default::default()
            }
        )
        .unwrap_err()
        .http_status(),
        400
    );
    Certificates::delete_issuer(v, "Corp").unwrap();
    assert_eq!(
        Certificates::get_issuer(v, "Corp")
            .unwrap_err()
            .http_status(),
        404
    );

    assert_eq!(
        Certificates::get_contacts(v).unwrap_err().http_status(),
        404
    );
    let c = Certificates::set_contacts(
        v,
        &Contacts {
            id: None,
            contact_list: Some(vec![Contact {
                email_address: Some("ops@example.com".into()),
                name: Some("Ops".into()),
                phone: None,
            }]),
        },
    )
    .unwrap();
    assert_eq!(
        c.id.as_deref(),
        Some(&*format!("{BASE}/certificates/contacts"))
    );
    assert_eq!(Certificates::get_contacts(v).unwrap(), c);
    assert_eq!(Certificates::delete_contacts(v).unwrap(), c);
    assert_eq!(
        Certificates::get_contacts(v).unwrap_err().http_status(),
        404
    );
    assert_eq!(
        Certificates::set_contacts(
            v,
            &Contacts {
                id: None,
                contact_list: Some(vec![Contact::default()])
            }
        )
        .unwrap_err()
        .http_status(),
        400
    );
}

#[test]
fn auto_renew_runs_exactly_once_with_two_vaults_on_one_store() {
    let store = Arc::new(enclava_store::SqliteStore::in_memory().unwrap());
    renew_once_with_two_replicas(store.clone(), store);
}

/// The same race on PostgreSQL: two stores (connection pools) on one database, as two replicas.
#[test]
fn auto_renew_runs_exactly_once_with_two_replicas_on_postgres() {
    let url = match std::env::var("ENCLAVA_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ENCLAVA_TEST_POSTGRES_URL is not set under CI=true"
            );
            eprintln!("NOTICE: ENCLAVA_TEST_POSTGRES_URL not set, PostgreSQL test skipped");
            return;
        }
    };
    let db = format!("t_vault_cert_renew_{}", std::process::id());
    let admin = |sql: String| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = url.clone();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
            drop(client);
            let _ = task.await;
        });
    };
    admin(format!("DROP DATABASE IF EXISTS {db}"));
    admin(format!("CREATE DATABASE {db}"));
    let open = || -> Arc<dyn Store> {
        let mut config: tokio_postgres::Config = url.parse().unwrap();
        config.dbname(&db);
        Arc::new(enclava_store::PostgresStore::from_config(config, Default::default()).unwrap())
    };
    renew_once_with_two_replicas(open(), open());
}

/// Two vaults (replicas) on `s1` and `s2` (one database) race to run a due AutoRenew: exactly
/// one new version is made, and the action never runs again.
fn renew_once_with_two_replicas(s1: Arc<dyn Store>, s2: Arc<dyn Store>) {
    let clock = TestClock::new();
    let v1 = Vault::with_options(
        s1,
        format!("{BASE}/"),
        clock.clock(),
        VaultOptions::default(),
    );
    let out = v1.init(3, 2).unwrap();
    let shares: Vec<String> = out.shares.iter().map(|s| s.to_string()).collect();
    let v2 = Vault::with_options(
        s2,
        format!("{BASE}/"),
        clock.clock(),
        VaultOptions::default(),
    );
    for v in [&v1, &v2] {
        v.unseal(&shares[0]).unwrap();
        v.unseal(&shares[1]).unwrap();
    }
    struct E<'a> {
        vault: &'a Vault,
        clock: TestClock,
    }
    let e = E { vault: &v1, clock };
    let now = e.clock.now().timestamp();
    let ca = issuing_ca(now);
    let mut p = policy("Enclava");
    p.x509_props.as_mut().unwrap().validity_months = Some(1);
    p.lifetime_actions = Some(vec![
        certmodel::LifetimeAction {
            trigger: Some(Trigger {
                lifetime_percentage: Some(50),
                days_before_expiry: None,
            }),
            action: Some(Action {
                action_type: Some("AutoRenew".into()),
            }),
        },
        certmodel::LifetimeAction {
            trigger: Some(Trigger {
                lifetime_percentage: None,
                days_before_expiry: Some(1),
            }),
            action: Some(Action {
                action_type: Some("EmailContacts".into()),
            }),
        },
    ]);
    create(e.vault, "renew", p, Some(&ca)).unwrap();
    let first = Certificates::get(e.vault, "renew", None).unwrap();
    // Not due yet.
    assert!(
        Certificates::run_lifetime_actions(e.vault, e.clock.now(), Some(&ca))
            .unwrap()
            .is_empty()
    );

    e.clock.advance(Duration::days(16));
    let vaults = [e.vault, &v2];
    let barrier = Barrier::new(2);
    let events: Vec<CertificateLifetimeEvent> = std::thread::scope(|s| {
        let hs: Vec<_> = vaults
            .iter()
            .map(|v| {
                let (barrier, ca, now) = (&barrier, &ca, e.clock.now());
                s.spawn(move || {
                    barrier.wait();
                    Certificates::run_lifetime_actions(v, now, Some(ca)).unwrap()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action, CertificateAction::AutoRenew);
    assert_eq!(events[0].version, version_of(&first.id));
    let new_version = events[0].new_version.clone().unwrap();
    let renewed = Certificates::get(e.vault, "renew", None).unwrap();
    assert_eq!(version_of(&renewed.id), new_version);
    assert_ne!(renewed.cer, first.cer);
    enclava_certs::verify_issued_by(&renewed.cer.unwrap().0, &ca.cert_der).unwrap();
    assert_eq!(
        Certificates::list_versions(e.vault, "renew", None, None)
            .unwrap()
            .items
            .len(),
        2
    );
    // A new key (reuse_key false), and the managed key and secret follow.
    assert_ne!(
        e.vault.get_key("renew", None).unwrap().key.x,
        v2.get_key("renew", Some(&version_of(&first.id)))
            .unwrap()
            .key
            .x
    );
    assert!(e.vault.get_secret("renew", Some(&new_version)).is_ok());
    // Nothing more to do for either replica now.
    assert!(
        Certificates::run_lifetime_actions(&v2, e.clock.now(), Some(&ca))
            .unwrap()
            .is_empty()
    );
    assert!(
        Certificates::run_lifetime_actions(e.vault, e.clock.now(), Some(&ca))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn email_contacts_action_is_recorded_once() {
    let e = env();
    let mut p = policy("Self");
    p.lifetime_actions = Some(vec![certmodel::LifetimeAction {
        trigger: Some(Trigger {
            lifetime_percentage: Some(10),
            days_before_expiry: None,
        }),
        action: Some(Action {
            action_type: Some("EmailContacts".into()),
        }),
    }]);
    create(&e.vault, "mail", p, None).unwrap();
    e.clock.advance(Duration::days(60));
    let ev = Certificates::run_lifetime_actions(&e.vault, e.clock.now(), None).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].action, CertificateAction::EmailContacts);
    assert!(ev[0].new_version.is_none());
    assert!(
        Certificates::run_lifetime_actions(&e.vault, e.clock.now(), None)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        Certificates::list_versions(&e.vault, "mail", None, None)
            .unwrap()
            .items
            .len(),
        1
    );
}

#[test]
fn sealed_vault_refuses_certificates() {
    let e = env();
    create(&e.vault, "s", policy("Self"), None).unwrap();
    e.vault.seal();
    assert_eq!(
        Certificates::get(&e.vault, "s", None)
            .unwrap_err()
            .http_status(),
        503
    );
    assert_eq!(
        create(&e.vault, "t", policy("Self"), None)
            .unwrap_err()
            .http_status(),
        503
    );
}

#[test]
fn certificate_private_keys_are_never_stored_in_the_clear() {
    let e = env();
    let v = &e.vault;
    create(v, "clear", policy("Self"), None).unwrap();
    let kc = pfx::parse(
        &std_unb64(v.get_secret("clear", None).unwrap().value.unwrap().as_str()),
        None,
    )
    .unwrap();
    // The pending key of a CSR flow too.
    let mut p = policy("Unknown");
    p.key_props = Some(KeyProperties {
        kty: Some("RSA".into()),
        ..Default::default()
    });
    create(v, "pending", p, None).unwrap();
    Certificates::set_issuer(
        v,
        "ext",
        &CertificateIssuerSetParameters {
            provider: "p".into(),
            credentials: Some(IssuerCredentials {
                account_id: None,
                pwd: Some(SecretString::new("issuer-pass-123".into())),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let key = kc.key_pkcs8.to_vec();
    // The EC private scalar sits inside the PKCS#8: look for a 24-byte window of it too.
    let needles: Vec<Vec<u8>> = vec![
        key.clone(),
        key[key.len() - 40..key.len() - 16].to_vec(),
        std_b64(&key).into_bytes(),
        hex::encode(&key).into_bytes(),
        b"issuer-pass-123".to_vec(),
    ];
    let mut rows = 0;
    for t in Table::ALL {
        for (k, val) in e.store.list(t, "", None, 100_000).unwrap() {
            rows += 1;
            for n in &needles {
                assert!(
                    !val.windows(n.len()).any(|w| w == n.as_slice()),
                    "private material in the clear in {t:?}/{k}"
                );
            }
        }
    }
    assert!(rows > 8);
}

#[test]
fn auto_renew_of_a_csr_certificate_is_reported_once() {
    let e = env();
    let now = e.clock.now().timestamp();
    let key = enclava_certs::generate(enclava_certs::KeySpec::Ec {
        curve: enclava_certs::EcCurve::P256,
    })
    .unwrap();
    let t = enclava_certs::CertTemplate::new(
        enclava_certs::Subject::parse("CN=ext").unwrap(),
        now,
        now + 10 * 86_400,
    )
    .unwrap();
    let leaf = enclava_certs::issue(&t, &key, enclava_certs::Issuer::SelfSigned).unwrap();
    Certificates::import(
        &e.vault,
        "ext",
        &CertificateImportParameters {
            value: SecretString::new(std_b64(&pfx::build(&key, &[leaf], None).unwrap())),
            policy: Some(CertificatePolicy {
                lifetime_actions: Some(vec![certmodel::LifetimeAction {
                    trigger: Some(Trigger {
                        lifetime_percentage: Some(50),
                        days_before_expiry: None,
                    }),
                    action: Some(Action {
                        action_type: Some("AutoRenew".into()),
                    }),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    e.clock.advance(Duration::days(6));
    let ev = Certificates::run_lifetime_actions(&e.vault, e.clock.now(), None).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].action, CertificateAction::AutoRenew);
    assert!(ev[0].new_version.is_none());
    assert!(
        ev[0].error.as_deref().unwrap().contains("Unknown"),
        "{ev:?}"
    );
    assert!(
        Certificates::run_lifetime_actions(&e.vault, e.clock.now(), None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_update_of_a_missing_version_changes_no_policy() {
    let e = env();
    let v = &e.vault;
    create(v, "pw", policy("Self"), None).unwrap();
    let before = Certificates::get_policy(v, "pw").unwrap();
    let mut changed = before.clone();
    changed.id = None;
    changed.x509_props.as_mut().unwrap().validity_months = Some(3);
    let err = Certificates::update(
        v,
        "pw",
        Some("0123456789abcdef0123456789abcdef"),
        &CertificateUpdateParameters {
            policy: Some(changed),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.http_status(), 404, "{err}");
    assert_eq!(Certificates::get_policy(v, "pw").unwrap(), before);
}
