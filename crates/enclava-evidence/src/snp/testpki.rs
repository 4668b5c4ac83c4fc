//! Tests with a synthetic AMD-shaped PKI (generated ARK/ASK RSA keys, P-384 VCEK/VLEK, CRLs) and
//! synthetic signed reports, for the checks that the real vectors cannot reach: TCB and chip id
//! mismatches, CPUID product mismatches, the Turin TCB layout, MASK_CHIP_KEY, VMPL, CRLs.

use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PSS_SHA384,
};
use chrono::{DateTime, Utc};
use der::asn1::{Any, BitString, Ia5StringRef, OctetString, UtcTime};
use der::{Decode, Encode};
use sha2::Digest;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::certs::{self, ParsedCert};
use super::report::{Product, REPORT_LEN, SIGNED_LEN};
use super::verify::{build_chain_with_roots, verify_report_with_chain};
use super::{Endorsements, SnpError};
use crate::error::FailedCheck;

const T0: u64 = 1_700_000_000; // 2023-11-14
const T1: u64 = 1_900_000_000; // 2030-03-17

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

fn time(secs: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
}

fn name(cn: &str) -> Name {
    Name::from_str(&format!("CN={cn},O=Advanced Micro Devices,C=US")).unwrap()
}

/// The RSASSA-PSS SHA-384 algorithm identifier exactly as AMD encodes it (taken from the pinned
/// Milan ARK).
fn pss_alg() -> AlgorithmIdentifierOwned {
    let der = certs::certs_from_pem_or_der(super::roots::ARK_MILAN_PEM.as_bytes()).unwrap();
    Certificate::from_der(&der[0]).unwrap().signature_algorithm
}

fn rsa_spki(k: &RsaKeyPair) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: certs::OID_RSA_ENCRYPTION,
            parameters: Some(Any::from(der::asn1::Null)),
        },
        subject_public_key: BitString::from_bytes(k.public_key().as_ref()).unwrap(),
    }
}

fn ec_spki(k: &EcdsaKeyPair) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: certs::OID_EC_PUBLIC_KEY,
            parameters: Some(Any::from(&certs::OID_SECP384R1)),
        },
        subject_public_key: BitString::from_bytes(k.public_key().as_ref()).unwrap(),
    }
}

fn rsa_sign(k: &RsaKeyPair, msg: &[u8]) -> Vec<u8> {
    let mut sig = vec![0u8; k.public_modulus_len()];
    k.sign(&RSA_PSS_SHA384, &SystemRandom::new(), msg, &mut sig)
        .unwrap();
    sig
}

struct CertSpec<'a> {
    serial: u8,
    subject: &'a str,
    issuer: &'a str,
    spki: SubjectPublicKeyInfoOwned,
    extensions: Vec<Extension>,
    not_before: u64,
    not_after: u64,
}

fn make_cert(spec: CertSpec<'_>, signer: &RsaKeyPair) -> Vec<u8> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[spec.serial]).unwrap(),
        signature: pss_alg(),
        issuer: name(spec.issuer),
        validity: Validity {
            not_before: time(spec.not_before),
            not_after: time(spec.not_after),
        },
        subject: name(spec.subject),
        subject_public_key_info: spec.spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: if spec.extensions.is_empty() {
            None
        } else {
            Some(spec.extensions)
        },
    };
    let sig = rsa_sign(signer, &tbs.to_der().unwrap());
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: pss_alg(),
        signature: BitString::from_bytes(&sig).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn ext(oid: der::asn1::ObjectIdentifier, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value).unwrap(),
    }
}

fn int_ext(oid: der::asn1::ObjectIdentifier, v: u8) -> Extension {
    ext(oid, v.to_der().unwrap())
}

struct Pki {
    product: Product,
    ark_key: RsaKeyPair,
    ask_key: RsaKeyPair,
    ark: Vec<u8>,
    ask: Vec<u8>,
    ask_cn: String,
    leaf_key: EcdsaKeyPair,
    leaf: Vec<u8>,
    chip_id: [u8; 64],
}

/// bl, tee, snp, microcode, fmc of the synthetic leaf.
const TCB: (u8, u8, u8, u8, u8) = (3, 1, 8, 0xA9, 2);

fn pki(product: Product, vlek: bool) -> Pki {
    let ark_key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let ask_key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let leaf_key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let p = product.as_str();
    let ark_cn = format!("ARK-{p}");
    let ask_cn = if vlek {
        format!("SEV-VLEK-{p}")
    } else {
        format!("SEV-{p}")
    };
    let ark = make_cert(
        CertSpec {
            serial: 1,
            subject: &ark_cn,
            issuer: &ark_cn,
            spki: rsa_spki(&ark_key),
            extensions: vec![],
            not_before: T0 - 1000,
            not_after: T1 + 1000,
        },
        &ark_key,
    );
    let ask = make_cert(
        CertSpec {
            serial: 2,
            subject: &ask_cn,
            issuer: &ark_cn,
            spki: rsa_spki(&ask_key),
            extensions: vec![],
            not_before: T0 - 500,
            not_after: T1 + 500,
        },
        &ark_key,
    );
    let mut chip_id = [0u8; 64];
    for (i, b) in chip_id.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5A;
    }
    let (bl, tee, snp, ucode, fmc) = TCB;
    let mut exts = vec![
        int_ext(certs::OID_STRUCT_VERSION, 1),
        ext(
            certs::OID_PRODUCT_NAME,
            Ia5StringRef::new(&format!("{p}-B0"))
                .unwrap()
                .to_der()
                .unwrap(),
        ),
        int_ext(certs::OID_BL_SPL, bl),
        int_ext(certs::OID_TEE_SPL, tee),
        int_ext(certs::OID_SNP_SPL, snp),
        int_ext(certs::OID_UCODE_SPL, ucode),
    ];
    if product == Product::Turin {
        exts.push(int_ext(certs::OID_FMC_SPL, fmc));
    }
    if vlek {
        exts.push(ext(
            certs::OID_CSP_ID,
            Ia5StringRef::new("cloud.example")
                .unwrap()
                .to_der()
                .unwrap(),
        ));
    } else {
        let hw = if product == Product::Turin {
            chip_id[..8].to_vec()
        } else {
            chip_id.to_vec()
        };
        exts.push(ext(certs::OID_HW_ID, hw));
    }
    let leaf = make_cert(
        CertSpec {
            serial: 3,
            subject: if vlek { "SEV-VLEK" } else { "SEV-VCEK" },
            issuer: &ask_cn,
            spki: ec_spki(&leaf_key),
            extensions: exts,
            not_before: T0,
            not_after: T1,
        },
        &ask_key,
    );
    Pki {
        product,
        ark_key,
        ask_key,
        ark,
        ask,
        ask_cn,
        leaf_key,
        leaf,
        chip_id,
    }
}

impl Pki {
    fn roots(&self) -> Vec<(Product, Vec<u8>)> {
        vec![(self.product, self.ark.clone())]
    }

    fn endorsements(&self) -> Endorsements {
        Endorsements {
            certs_der: vec![self.leaf.clone(), self.ask.clone(), self.ark.clone()],
            crls_der: vec![],
        }
    }

    fn tcb_raw(&self) -> u64 {
        let (bl, tee, snp, ucode, fmc) = TCB;
        if self.product == Product::Turin {
            u64::from_le_bytes([fmc, bl, tee, snp, 0, 0, 0, ucode])
        } else {
            u64::from_le_bytes([bl, tee, 0, 0, 0, 0, snp, ucode])
        }
    }

    fn cpuid(&self) -> (u8, u8) {
        match self.product {
            Product::Milan => (0x19, 0x01),
            Product::Genoa => (0x19, 0x11),
            Product::Turin => (0x1A, 0x02),
        }
    }

    /// A v3 report (v5 on Turin) signed by the leaf, after `edit` has changed the fields.
    fn report(&self, vlek: bool, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut r = vec![0u8; REPORT_LEN];
        let version: u32 = if self.product == Product::Turin { 5 } else { 3 };
        r[0..4].copy_from_slice(&version.to_le_bytes());
        r[0x08..0x10].copy_from_slice(&0x30000u64.to_le_bytes());
        r[0x34..0x38].copy_from_slice(&1u32.to_le_bytes());
        r[0x48..0x4C].copy_from_slice(&(if vlek { 1u32 << 2 } else { 0 }).to_le_bytes());
        r[0x50..0x90].fill(0xAB);
        r[0x90..0xC0].fill(0xCD);
        let tcb = self.tcb_raw().to_le_bytes();
        for off in [0x38, 0x180, 0x1E0, 0x1F0] {
            r[off..off + 8].copy_from_slice(&tcb);
        }
        let (fam, model) = self.cpuid();
        r[0x188] = fam;
        r[0x189] = model;
        r[0x18A] = 1;
        if !vlek {
            r[0x1A0..0x1E0].copy_from_slice(&self.chip_id);
        }
        r[0x1E8..0x1EB].copy_from_slice(&[40, 55, 1]);
        r[0x1EC..0x1EF].copy_from_slice(&[40, 55, 1]);
        edit(&mut r);
        self.sign(&mut r);
        r
    }

    fn sign(&self, r: &mut [u8]) {
        let sig = self
            .leaf_key
            .sign(&SystemRandom::new(), &r[..SIGNED_LEN])
            .unwrap();
        let sig = sig.as_ref();
        assert_eq!(sig.len(), 96);
        for i in 0..48 {
            r[SIGNED_LEN + i] = sig[47 - i];
            r[SIGNED_LEN + 72 + i] = sig[95 - i];
        }
    }

    fn verify(&self, report: &[u8], e: &Endorsements) -> Result<crate::Claims, SnpError> {
        let chain = build_chain_with_roots(e, &self.roots())?;
        let parsed = super::parse_report(report)?;
        super::verify::check_report_basics(&parsed)?;
        verify_report_with_chain(report, &parsed, &chain, now())
    }

    fn crl(
        &self,
        signer: &RsaKeyPair,
        issuer: &str,
        revoked: &[u8],
        this: u64,
        next: u64,
    ) -> Vec<u8> {
        let tbs = TbsCertList {
            version: Version::V2,
            signature: pss_alg(),
            issuer: name(issuer),
            this_update: time(this),
            next_update: Some(time(next)),
            revoked_certificates: if revoked.is_empty() {
                None
            } else {
                Some(
                    revoked
                        .iter()
                        .map(|s| RevokedCert {
                            serial_number: SerialNumber::new(&[*s]).unwrap(),
                            revocation_date: time(this),
                            crl_entry_extensions: None,
                        })
                        .collect(),
                )
            },
            crl_extensions: None,
        };
        let sig = rsa_sign(signer, &tbs.to_der().unwrap());
        CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: pss_alg(),
            signature: BitString::from_bytes(&sig).unwrap(),
        }
        .to_der()
        .unwrap()
    }
}

fn code<T>(r: Result<T, SnpError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.failed_check(),
    }
}

#[test]
fn synthetic_milan_vcek_and_mismatches() {
    let pki = pki(Product::Milan, false);
    let e = pki.endorsements();
    let claims = pki.verify(&pki.report(false, |_| {}), &e).unwrap();
    let s = claims.snp.as_ref().unwrap();
    assert_eq!(s.product, Product::Milan);
    assert_eq!(
        (
            s.reported_tcb.bootloader,
            s.reported_tcb.snp,
            s.reported_tcb.microcode
        ),
        (3, 8, 0xA9)
    );
    assert_eq!(s.reported_tcb.fmc, None);
    assert_eq!(s.current_version, "1.55.40");
    assert_eq!(s.cpuid.unwrap().stepping, 1);

    // Each TCB component of REPORTED_TCB.
    for (byte, component) in [(0, "bootloader"), (1, "tee"), (6, "snp"), (7, "microcode")] {
        let r = pki.report(false, |r| r[0x180 + byte] ^= 0x10);
        let err = pki.verify(&r, &e).unwrap_err();
        assert_eq!(err.failed_check(), "tcb_mismatch", "{component}");
        assert!(err.to_string().contains(component), "{err}");
    }
    // A different chip.
    let r = pki.report(false, |r| r[0x1DF] ^= 1);
    assert_eq!(code(pki.verify(&r, &e)), "chip_id_mismatch");
    // MASK_CHIP_KEY: chip id zeroed, no chip binding.
    let r = pki.report(false, |r| {
        r[0x48] |= 2;
        r[0x1A0..0x1E0].fill(0);
    });
    assert!(pki.verify(&r, &e).unwrap().snp.unwrap().mask_chip_key);
    // Zeroed chip id without the mask bit.
    let r = pki.report(false, |r| r[0x1A0..0x1E0].fill(0));
    assert_eq!(code(pki.verify(&r, &e)), "chip_id_mismatch");
    // CPUID of another product, or an unknown CPU.
    for (fam, model) in [(0x19, 0x11), (0x1A, 0x02), (0x17, 0x31)] {
        let r = pki.report(false, |r| {
            r[0x188] = fam;
            r[0x189] = model;
        });
        assert_eq!(
            code(pki.verify(&r, &e)),
            "product_mismatch",
            "{fam:#x}/{model:#x}"
        );
    }
    // VMPL above 3.
    let r = pki.report(false, |r| r[0x30] = 4);
    assert_eq!(code(pki.verify(&r, &e)), "invalid_vmpl");
    let r = pki.report(false, |r| r[0x30] = 3);
    assert_eq!(pki.verify(&r, &e).unwrap().snp.unwrap().vmpl, 3);
    // SIGNING_KEY = none, or VLEK with a VCEK chain.
    let r = pki.report(false, |r| r[0x48] = 7 << 2);
    assert_eq!(code(pki.verify(&r, &e)), "signing_key_mismatch");
    let r = pki.report(false, |r| r[0x48] = 1 << 2);
    assert_eq!(code(pki.verify(&r, &e)), "signing_key_mismatch");
    // Not valid yet / any more.
    let chain = build_chain_with_roots(&e, &pki.roots()).unwrap();
    assert!(
        chain
            .check_time(DateTime::from_timestamp(T0 as i64 - 1, 0).unwrap())
            .is_err()
    );
    assert!(
        chain
            .check_time(DateTime::from_timestamp(T1 as i64 + 1, 0).unwrap())
            .is_err()
    );
    assert!(
        chain
            .check_time(DateTime::from_timestamp(T1 as i64, 0).unwrap())
            .is_ok()
    );
}

#[test]
fn synthetic_turin_layout() {
    let pki = pki(Product::Turin, false);
    let e = pki.endorsements();
    let claims = pki.verify(&pki.report(false, |_| {}), &e).unwrap();
    let s = claims.snp.as_ref().unwrap();
    assert_eq!(s.product, Product::Turin);
    assert_eq!(s.version, 5);
    let t = &s.reported_tcb;
    assert_eq!(
        (t.fmc, t.bootloader, t.tee, t.snp, t.microcode),
        (Some(2), 3, 1, 8, 0xA9)
    );
    assert_eq!(s.launch_mit_vector, Some(0));
    // The FMC byte is checked; only the first 8 bytes of CHIP_ID are bound on Turin.
    let r = pki.report(false, |r| r[0x180] ^= 1);
    assert_eq!(code(pki.verify(&r, &e)), "tcb_mismatch");
    let r = pki.report(false, |r| r[0x1A7] ^= 1);
    assert_eq!(code(pki.verify(&r, &e)), "chip_id_mismatch");
    let r = pki.report(false, |r| r[0x1A8] ^= 1);
    assert_eq!(code(pki.verify(&r, &e)), "ok");
    // Milan CPUID with a Turin chain.
    let r = pki.report(false, |r| r[0x188] = 0x19);
    assert_eq!(code(pki.verify(&r, &e)), "product_mismatch");
}

#[test]
fn synthetic_vlek() {
    let pki = pki(Product::Genoa, true);
    let e = pki.endorsements();
    let claims = pki.verify(&pki.report(true, |_| {}), &e).unwrap();
    let s = claims.snp.unwrap();
    assert_eq!(s.signing_key, super::SigningKey::Vlek);
    assert_eq!(s.csp_id.as_deref(), Some("cloud.example"));
    assert_eq!(
        code(pki.verify(&pki.report(false, |_| {}), &e)),
        "signing_key_mismatch"
    );
}

#[test]
fn synthetic_chain_errors() {
    let pki = pki(Product::Milan, false);
    let report = pki.report(false, |_| {});
    // The pinned roots do not include this synthetic ARK.
    assert_eq!(
        code(super::verify(&report, &pki.endorsements(), now())),
        "untrusted_root"
    );
    // An ASK whose issuer is not a root.
    let stray = make_cert(
        CertSpec {
            serial: 9,
            subject: &pki.ask_cn,
            issuer: "ARK-Elsewhere",
            spki: rsa_spki(&pki.ask_key),
            extensions: vec![],
            not_before: T0,
            not_after: T1,
        },
        &pki.ark_key,
    );
    let e = Endorsements {
        certs_der: vec![pki.leaf.clone(), stray],
        crls_der: vec![],
    };
    assert_eq!(code(pki.verify(&report, &e)), "untrusted_root");
    // An ASK signed by the wrong key.
    let forged = make_cert(
        CertSpec {
            serial: 2,
            subject: &pki.ask_cn,
            issuer: "ARK-Milan",
            spki: rsa_spki(&pki.ask_key),
            extensions: vec![],
            not_before: T0,
            not_after: T1,
        },
        &pki.ask_key,
    );
    let e = Endorsements {
        certs_der: vec![pki.leaf.clone(), forged],
        crls_der: vec![],
    };
    assert_eq!(code(pki.verify(&report, &e)), "cert_chain_signature");
    // A VCEK without the TCB extensions.
    let bare = make_cert(
        CertSpec {
            serial: 3,
            subject: "SEV-VCEK",
            issuer: &pki.ask_cn,
            spki: ec_spki(&pki.leaf_key),
            extensions: vec![int_ext(certs::OID_BL_SPL, 3)],
            not_before: T0,
            not_after: T1,
        },
        &pki.ask_key,
    );
    let e = Endorsements {
        certs_der: vec![bare, pki.ask.clone()],
        crls_der: vec![],
    };
    assert_eq!(code(pki.verify(&report, &e)), "malformed_certificate");
    // An SPL that does not fit in a byte.
    let wide = make_cert(
        CertSpec {
            serial: 3,
            subject: "SEV-VCEK",
            issuer: &pki.ask_cn,
            spki: ec_spki(&pki.leaf_key),
            extensions: vec![ext(certs::OID_BL_SPL, 300u16.to_der().unwrap())],
            not_before: T0,
            not_after: T1,
        },
        &pki.ask_key,
    );
    let leaf = ParsedCert::parse(&wide, "VCEK").unwrap();
    assert!(leaf.spl(certs::OID_BL_SPL, "blSPL", "VCEK").is_err());
}

#[test]
fn synthetic_crls() {
    let pki = pki(Product::Milan, false);
    let report = pki.report(false, |_| {});
    let with = |crls: Vec<Vec<u8>>| {
        let mut e = pki.endorsements();
        e.crls_der = crls;
        pki.verify(&report, &e)
    };
    let (this, next) = (1_740_000_000, 1_760_000_000);
    // ARK CRL revoking something else: fine. Revoking the ASK (serial 2): revoked.
    assert_eq!(
        code(with(vec![pki.crl(
            &pki.ark_key,
            "ARK-Milan",
            &[7],
            this,
            next
        )])),
        "ok"
    );
    assert_eq!(
        code(with(vec![pki.crl(
            &pki.ark_key,
            "ARK-Milan",
            &[],
            this,
            next
        )])),
        "ok"
    );
    assert_eq!(
        code(with(vec![pki.crl(
            &pki.ark_key,
            "ARK-Milan",
            &[7, 2],
            this,
            next
        )])),
        "certificate_revoked"
    );
    // ASK CRL revoking the VCEK (serial 3).
    assert_eq!(
        code(with(vec![pki.crl(
            &pki.ask_key,
            &pki.ask_cn,
            &[3],
            this,
            next
        )])),
        "certificate_revoked"
    );
    // A CRL naming the ARK as issuer but signed by another key.
    assert_eq!(
        code(with(vec![pki.crl(
            &pki.ask_key,
            "ARK-Milan",
            &[],
            this,
            next
        )])),
        "crl_signature"
    );
    // A CRL of an unrelated issuer cannot revoke anything here and is ignored.
    assert_eq!(
        code(with(vec![pki.crl(
            &pki.ask_key,
            "ARK-Genoa",
            &[2, 3],
            this,
            next
        )])),
        "ok"
    );
}

/// What the revocation claims say: nothing supplied, a current ARK CRL, stale or not yet issued
/// CRLs (reported, not refused), an ASK CRL alone (does not cover the ASK: not checked) and a CRL
/// of another issuer (ignored, not listed).
#[test]
fn synthetic_revocation_claims() {
    let pki = pki(Product::Milan, false);
    let report = pki.report(false, |_| {});
    let revocation = |crls: Vec<Vec<u8>>| {
        let mut e = pki.endorsements();
        e.crls_der = crls;
        pki.verify(&report, &e).unwrap().revocation.unwrap()
    };
    let (this, next) = (1_740_000_000, 1_760_000_000);

    let none = revocation(vec![]);
    assert!(!none.checked && !none.fresh && none.crls.is_empty());

    let ark_crl = pki.crl(&pki.ark_key, "ARK-Milan", &[7], this, next);
    let r = revocation(vec![ark_crl.clone()]);
    assert!(r.checked && r.fresh, "{r:?}");
    assert_eq!(r.crls.len(), 1);
    let c = &r.crls[0];
    assert_eq!(c.issuer, "ARK-Milan");
    assert_eq!(c.this_update, "2025-02-19T21:20:00+00:00");
    assert_eq!(c.next_update.as_deref(), Some("2025-10-09T08:53:20+00:00"));
    assert_eq!(c.sha256, hex::encode(sha2::Sha256::digest(&ark_crl)));
    assert!(c.current);
    assert_eq!(c.number, None);

    // Past its next update, or not yet issued: checked (it verified, it revokes nothing) but not
    // fresh, and the stale CRL is the one marked.
    for (t, n) in [(this - 2_000_000, this), (1_755_000_000, next)] {
        let stale = pki.crl(&pki.ark_key, "ARK-Milan", &[], t, n);
        let r = revocation(vec![stale]);
        assert!(r.checked && !r.fresh, "{r:?}");
        assert!(!r.crls[0].current);
        // A fresh ARK CRL beside a stale ASK CRL: still not fresh (every consulted CRL counts).
        let stale_ask = pki.crl(&pki.ask_key, &pki.ask_cn, &[], t, n);
        let r = revocation(vec![ark_crl.clone(), stale_ask]);
        assert!(r.checked && !r.fresh, "{r:?}");
        assert_eq!(r.crls[1].issuer, format!("ASK {}", pki.ask_cn));
    }

    // Only the ASK's CRL: it can revoke the VCEK but not the ASK, so not checked.
    let r = revocation(vec![pki.crl(&pki.ask_key, &pki.ask_cn, &[], this, next)]);
    assert!(!r.checked && !r.fresh && r.crls.len() == 1, "{r:?}");

    // Another product's CRL is ignored entirely.
    let r = revocation(vec![pki.crl(&pki.ask_key, "ARK-Genoa", &[], this, next)]);
    assert!(!r.checked && r.crls.is_empty(), "{r:?}");

    // The claims serialize as documented (docs/claims.md).
    let claims = {
        let mut e = pki.endorsements();
        e.crls_der = vec![ark_crl];
        pki.verify(&report, &e).unwrap()
    };
    let v = serde_json::to_value(&claims).unwrap();
    assert_eq!(v["revocation"]["checked"], true);
    assert_eq!(v["revocation"]["fresh"], true);
    assert_eq!(v["revocation"]["crls"][0]["issuer"], "ARK-Milan");
    assert!(v["revocation"]["crls"][0].get("number").is_none());
}

#[test]
fn every_failed_check_code_is_documented() {
    let s = String::new;
    let all = [
        SnpError::MalformedReport(s()),
        SnpError::UnsupportedReportVersion { found: 9 },
        SnpError::UnsupportedSignatureAlgorithm { found: 9 },
        SnpError::InvalidVmpl { found: 9 },
        SnpError::MalformedCertificate {
            which: s(),
            reason: s(),
        },
        SnpError::MalformedCertTable(s()),
        SnpError::MalformedCrl(s()),
        SnpError::MissingCertificate(s()),
        SnpError::AmbiguousCertificates(s()),
        SnpError::UntrustedRoot(s()),
        SnpError::CertChainSignature {
            cert: s(),
            reason: s(),
        },
        SnpError::CertificateExpired {
            cert: s(),
            not_before: s(),
            not_after: s(),
            at: s(),
        },
        SnpError::CertificateRevoked {
            cert: s(),
            serial: s(),
            crl_issuer: s(),
        },
        SnpError::CrlSignature(s()),
        SnpError::ProductMismatch {
            expected: s(),
            found: s(),
        },
        SnpError::SigningKeyMismatch {
            report: s(),
            cert: s(),
        },
        SnpError::ReportSignature(s()),
        SnpError::TcbMismatch {
            component: s(),
            report: s(),
            cert: s(),
            cert_kind: s(),
        },
        SnpError::ChipIdMismatch {
            expected: s(),
            found: s(),
        },
    ];
    let doc = include_str!("mod.rs");
    let mut codes: Vec<&str> = all.iter().map(|e| e.failed_check()).collect();
    for c in &codes {
        assert!(
            doc.contains(&format!("//! | `{c}` |")),
            "{c} is not in the module docs"
        );
        assert!(
            c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c}"
        );
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len(), "codes must be distinct");
    assert_eq!(
        doc.matches("//! | `").count(),
        all.len(),
        "documented codes without a variant"
    );
}
