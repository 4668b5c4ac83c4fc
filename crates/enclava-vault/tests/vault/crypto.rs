//! Every key type x every operation, checked against independent implementations (RustCrypto).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use chrono::Duration;
use enclava_vault::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::common::*;

fn rsa_public(b: &KeyBundle) -> RsaPublicKey {
    RsaPublicKey::new(
        BigUint::from_bytes_be(b.key.n.as_ref().unwrap().as_slice()),
        BigUint::from_bytes_be(b.key.e.as_ref().unwrap().as_slice()),
    )
    .unwrap()
}

fn jwk_from_rsa(sk: &RsaPrivateKey) -> JsonWebKey {
    let be = |x: &BigUint| x.to_bytes_be();
    let primes = sk.primes();
    JsonWebKey {
        kty: Some("RSA".into()),
        n: Some(Base64Url(be(sk.n()))),
        e: Some(Base64Url(be(sk.e()))),
        d: Some(SecretBytes::new(be(sk.d()))),
        p: Some(SecretBytes::new(be(&primes[0]))),
        q: Some(SecretBytes::new(be(&primes[1]))),
        dp: Some(SecretBytes::new(be(sk.dp().unwrap()))),
        dq: Some(SecretBytes::new(be(sk.dq().unwrap()))),
        qi: Some(SecretBytes::new(be(&sk.crt_coefficient().unwrap()))),
        ..Default::default()
    }
}

fn digest_for(alg: &str, msg: &[u8]) -> Vec<u8> {
    match &alg[2..] {
        "256" => Sha256::digest(msg).to_vec(),
        "384" => Sha384::digest(msg).to_vec(),
        _ => Sha512::digest(msg).to_vec(),
    }
}

#[test]
fn rsa_generated_all_operations() {
    let env = env();
    let v = &env.vault;
    let b = create(v, "rsa", "RSA", Some(2048), None);
    assert_eq!(b.key.kty.as_deref(), Some("RSA"));
    assert_eq!(b.key.n.as_ref().unwrap().as_slice().len(), 256);
    assert_eq!(b.key.e.as_ref().unwrap().as_slice(), &[1, 0, 1]);
    assert!(
        b.key.d.is_none() && b.key.p.is_none(),
        "never private parts"
    );
    let pk = rsa_public(&b);
    let mut rng = rand::rngs::OsRng;

    // Client-side encryption with an independent implementation, vault decrypts.
    for (alg, ct) in [
        (
            "RSA-OAEP",
            pk.encrypt(&mut rng, Oaep::new::<sha1::Sha1>(), b"hello")
                .unwrap(),
        ),
        (
            "RSA-OAEP-256",
            pk.encrypt(&mut rng, Oaep::new::<Sha256>(), b"hello")
                .unwrap(),
        ),
        (
            "RSA1_5",
            pk.encrypt(&mut rng, Pkcs1v15Encrypt, b"hello").unwrap(),
        ),
    ] {
        let r = v.decrypt("rsa", None, &op(alg, &ct)).unwrap();
        assert_eq!(r.value.as_slice(), b"hello", "{alg}");
        assert_eq!(r.kid, b.key.kid.clone().unwrap());
        let r = v.unwrap_key("rsa", None, &op(alg, &ct)).unwrap();
        assert_eq!(r.value.as_slice(), b"hello", "{alg}");
        // Vault round trip.
        let enc = v.encrypt("rsa", None, &op(alg, b"round trip")).unwrap();
        assert_eq!(enc.value.as_slice().len(), 256);
        assert!(enc.iv.is_none() && enc.tag.is_none());
        let dec = v
            .decrypt("rsa", Some(&version_of(&b)), &op(alg, enc.value.as_slice()))
            .unwrap();
        assert_eq!(dec.value.as_slice(), b"round trip");
        let w = v.wrap_key("rsa", None, &op(alg, &[7u8; 32])).unwrap();
        let u = v
            .unwrap_key("rsa", None, &op(alg, w.value.as_slice()))
            .unwrap();
        assert_eq!(u.value.as_slice(), &[7u8; 32]);
    }
    // Tampered ciphertext -> BadParameter, no panic.
    let enc = v.encrypt("rsa", None, &op("RSA-OAEP-256", b"x")).unwrap();
    let mut bad = enc.value.as_slice().to_vec();
    bad[10] ^= 1;
    let e = v
        .decrypt("rsa", None, &op("RSA-OAEP-256", &bad))
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    let e = v
        .decrypt("rsa", None, &op("RSA-OAEP-256", &bad[..100]))
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    let e = v
        .encrypt("rsa", None, &op("RSA-OAEP-256", &[0u8; 300]))
        .unwrap_err();
    assert!(e.to_string().contains("at most 190 bytes"), "{e}");

    // Signatures verified independently.
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let digest = digest_for(alg, b"message");
        let sig = v
            .sign(
                "rsa",
                None,
                &KeySignParameters {
                    alg: alg.into(),
                    value: Base64Url(digest.clone()),
                },
            )
            .unwrap();
        let s = sig.value.as_slice();
        let ok = match alg {
            "RS256" => pk.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, s),
            "RS384" => pk.verify(Pkcs1v15Sign::new::<Sha384>(), &digest, s),
            "RS512" => pk.verify(Pkcs1v15Sign::new::<Sha512>(), &digest, s),
            "PS256" => pk.verify(Pss::new::<Sha256>(), &digest, s),
            "PS384" => pk.verify(Pss::new::<Sha384>(), &digest, s),
            _ => pk.verify(Pss::new::<Sha512>(), &digest, s),
        };
        assert!(ok.is_ok(), "{alg} signature must verify independently");
        let vr = v
            .verify(
                "rsa",
                None,
                &KeyVerifyParameters {
                    alg: alg.into(),
                    digest: Base64Url(digest.clone()),
                    value: sig.value.clone(),
                },
            )
            .unwrap();
        assert!(vr.value, "{alg}");
        let mut other = digest.clone();
        other[0] ^= 0xff;
        let vr = v
            .verify(
                "rsa",
                None,
                &KeyVerifyParameters {
                    alg: alg.into(),
                    digest: Base64Url(other),
                    value: sig.value,
                },
            )
            .unwrap();
        assert!(!vr.value, "{alg} must reject a different digest");
    }
    // Digest length must match the algorithm.
    let e = v
        .sign(
            "rsa",
            None,
            &KeySignParameters {
                alg: "RS256".into(),
                value: Base64Url(vec![0; 20]),
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid digest for RS256: expected 32 bytes, found 20"
    );
}

#[test]
fn rsa_import_and_decrypt_independently() {
    let env = env();
    let v = &env.vault;
    let mut rng = rand::rngs::OsRng;
    let sk = RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let b = v
        .import_key(
            "imported",
            &KeyImportParameters {
                key: jwk_from_rsa(&sk),
                hsm: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(b.key.kty.as_deref(), Some("RSA-HSM"));
    assert_eq!(
        b.key.n.as_ref().unwrap().as_slice(),
        sk.n().to_bytes_be().as_slice()
    );
    // Vault-encrypted data decrypts with the original private key.
    let enc = v
        .encrypt("imported", None, &op("RSA-OAEP-256", b"secret data"))
        .unwrap();
    assert_eq!(
        sk.decrypt(Oaep::new::<Sha256>(), enc.value.as_slice())
            .unwrap(),
        b"secret data"
    );
    let enc = v
        .encrypt("imported", None, &op("RSA-OAEP", b"secret data"))
        .unwrap();
    assert_eq!(
        sk.decrypt(Oaep::new::<sha1::Sha1>(), enc.value.as_slice())
            .unwrap(),
        b"secret data"
    );
    // Inconsistent components are refused.
    let mut bad = jwk_from_rsa(&sk);
    bad.d = Some(SecretBytes::new(vec![1u8; 256]));
    let e = v
        .import_key(
            "bad",
            &KeyImportParameters {
                key: bad,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    let mut missing = jwk_from_rsa(&sk);
    missing.qi = None;
    let e = v
        .import_key(
            "bad",
            &KeyImportParameters {
                key: missing,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("key.qi is required"), "{e}");
}

#[test]
fn rsa_sizes() {
    let env = env();
    let v = &env.vault;
    let b = create(v, "r3072", "RSA-HSM", Some(3072), None);
    assert_eq!(b.key.n.as_ref().unwrap().as_slice().len(), 384);
    let b = create(v, "r4096", "RSA", Some(4096), None);
    assert_eq!(b.key.n.as_ref().unwrap().as_slice().len(), 512);
    let enc = v
        .encrypt("r4096", None, &op("RSA-OAEP-256", b"big"))
        .unwrap();
    assert_eq!(
        v.decrypt("r4096", None, &op("RSA-OAEP-256", enc.value.as_slice()))
            .unwrap()
            .value
            .as_slice(),
        b"big"
    );
    let e = v
        .create_key(
            "r1024",
            &KeyCreateParameters {
                kty: "RSA".into(),
                key_size: Some(1024),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid key_size for RSA: expected 2048, 3072 or 4096, found 1024"
    );
    let e = v
        .create_key(
            "rexp",
            &KeyCreateParameters {
                kty: "RSA".into(),
                public_exponent: Some(3),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
}

#[test]
fn ec_sign_verify_independently() {
    let env = env();
    let v = &env.vault;
    // P-256
    let b = create(v, "ec256", "EC", None, Some("P-256"));
    assert_eq!(b.key.crv.as_deref(), Some("P-256"));
    assert_eq!(
        b.key.key_ops.as_ref().unwrap(),
        &vec!["sign".to_string(), "verify".to_string()]
    );
    let x = b.key.x.as_ref().unwrap().as_slice();
    let y = b.key.y.as_ref().unwrap().as_slice();
    let point = p256::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
    let vk = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
    let digest = Sha256::digest(b"msg").to_vec();
    let sig = v
        .sign(
            "ec256",
            None,
            &KeySignParameters {
                alg: "ES256".into(),
                value: Base64Url(digest.clone()),
            },
        )
        .unwrap();
    assert_eq!(sig.value.as_slice().len(), 64, "raw r||s");
    let s = p256::ecdsa::Signature::from_slice(sig.value.as_slice()).unwrap();
    vk.verify_prehash(&digest, &s).unwrap();
    assert!(
        v.verify(
            "ec256",
            None,
            &KeyVerifyParameters {
                alg: "ES256".into(),
                digest: Base64Url(digest.clone()),
                value: sig.value.clone()
            }
        )
        .unwrap()
        .value
    );
    // Wrong algorithm for the curve / key type.
    let e = v
        .sign(
            "ec256",
            None,
            &KeySignParameters {
                alg: "ES384".into(),
                value: Base64Url(vec![0; 48]),
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "algorithm 'ES384' is not valid for sign with key type 'EC' (256 bits): expected one of ES256"
    );
    let e = v
        .sign(
            "ec256",
            None,
            &KeySignParameters {
                alg: "RS256".into(),
                value: Base64Url(digest.clone()),
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    // EC keys cannot encrypt (key_ops default excludes it -> Forbidden first).
    let e = v.encrypt("ec256", None, &op("RSA-OAEP", b"x")).unwrap_err();
    assert_eq!(e.http_status(), 403);

    // P-384
    let b = create(v, "ec384", "EC-HSM", None, Some("P-384"));
    let point = p384::EncodedPoint::from_affine_coordinates(
        b.key.x.as_ref().unwrap().as_slice().into(),
        b.key.y.as_ref().unwrap().as_slice().into(),
        false,
    );
    let vk = p384::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
    let digest = Sha384::digest(b"msg").to_vec();
    let sig = v
        .sign(
            "ec384",
            None,
            &KeySignParameters {
                alg: "ES384".into(),
                value: Base64Url(digest.clone()),
            },
        )
        .unwrap();
    assert_eq!(sig.value.as_slice().len(), 96);
    let s = p384::ecdsa::Signature::from_slice(sig.value.as_slice()).unwrap();
    vk.verify_prehash(&digest, &s).unwrap();
    let e = v
        .sign(
            "ec384",
            None,
            &KeySignParameters {
                alg: "ES384".into(),
                value: Base64Url(vec![0; 32]),
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid digest for ES384: expected 48 bytes, found 32"
    );

    // Unsupported curve.
    let e = v
        .create_key(
            "k",
            &KeyCreateParameters {
                kty: "EC".into(),
                crv: Some("P-192".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("expected P-256, P-384, P-521 or P-256K")
    );
}

#[test]
fn ec_import_signs_for_known_key() {
    let env = env();
    let v = &env.vault;
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pt = sk.public_key().to_encoded_point(false);
    let jwk = JsonWebKey {
        kty: Some("EC".into()),
        crv: Some("P-256".into()),
        d: Some(SecretBytes::new(sk.to_bytes().to_vec())),
        x: Some(Base64Url(pt.x().unwrap().to_vec())),
        y: Some(Base64Url(pt.y().unwrap().to_vec())),
        ..Default::default()
    };
    let b = v
        .import_key(
            "ecimp",
            &KeyImportParameters {
                key: jwk.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(b.key.x.as_ref().unwrap().as_slice(), &pt.x().unwrap()[..]);
    let digest = Sha256::digest(b"abc").to_vec();
    let sig = v
        .sign(
            "ecimp",
            None,
            &KeySignParameters {
                alg: "ES256".into(),
                value: Base64Url(digest.clone()),
            },
        )
        .unwrap();
    let vk = p256::ecdsa::VerifyingKey::from(sk.public_key());
    vk.verify_prehash(
        &digest,
        &p256::ecdsa::Signature::from_slice(sig.value.as_slice()).unwrap(),
    )
    .unwrap();
    // Mismatched public point is refused.
    let mut bad = jwk;
    bad.y = Some(Base64Url(vec![1u8; 32]));
    assert_eq!(
        v.import_key(
            "ecbad",
            &KeyImportParameters {
                key: bad,
                ..Default::default()
            }
        )
        .unwrap_err()
        .code(),
        "BadParameter"
    );
}

fn import_oct(v: &Vault, name: &str, k: &[u8]) -> KeyBundle {
    v.import_key(
        name,
        &KeyImportParameters {
            key: JsonWebKey {
                kty: Some("oct".into()),
                k: Some(SecretBytes::new(k.to_vec())),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn aes_gcm_interoperates() {
    let env = env();
    let v = &env.vault;
    let k = [0x42u8; 32];
    import_oct(v, "aes", &k);
    let mut p = op("A256GCM", b"plaintext 1 KiB or so");
    p.aad = Some(Base64Url(b"header".to_vec()));
    let r = v.encrypt("aes", None, &p).unwrap();
    let iv = r.iv.clone().unwrap();
    let tag = r.tag.clone().unwrap();
    assert_eq!(iv.as_slice().len(), 12);
    assert_eq!(tag.as_slice().len(), 16);
    assert_eq!(r.aad.as_ref().unwrap().as_slice(), b"header");
    // Independent decrypt.
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&k).unwrap();
    let mut ct = r.value.as_slice().to_vec();
    ct.extend_from_slice(tag.as_slice());
    let pt = cipher
        .decrypt(
            &<[u8; 12]>::try_from(iv.as_slice()).unwrap().into(),
            Payload {
                msg: &ct,
                aad: b"header",
            },
        )
        .unwrap();
    assert_eq!(pt, b"plaintext 1 KiB or so");
    // Independent encrypt, vault decrypt.
    let nonce = [9u8; 12];
    let ct = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: b"from outside",
                aad: b"",
            },
        )
        .unwrap();
    let (body, t) = ct.split_at(ct.len() - 16);
    let mut d = op("A256GCM", body);
    d.iv = Some(Base64Url(nonce.to_vec()));
    d.tag = Some(Base64Url(t.to_vec()));
    assert_eq!(
        v.decrypt("aes", None, &d).unwrap().value.as_slice(),
        b"from outside"
    );
    // Wrong tag / missing iv / supplied iv on encrypt.
    let mut bad = d.clone();
    bad.tag = Some(Base64Url(vec![0; 16]));
    assert!(
        v.decrypt("aes", None, &bad)
            .unwrap_err()
            .to_string()
            .starts_with("decryption failed")
    );
    let mut noiv = d.clone();
    noiv.iv = None;
    assert_eq!(
        v.decrypt("aes", None, &noiv).unwrap_err().to_string(),
        "iv is required for A256GCM decryption"
    );
    let mut withiv = op("A256GCM", b"x");
    withiv.iv = Some(Base64Url(vec![0; 12]));
    assert_eq!(
        v.encrypt("aes", None, &withiv).unwrap_err().code(),
        "BadParameter"
    );
    // Fresh iv each time.
    let a = v.encrypt("aes", None, &op("A256GCM", b"same")).unwrap();
    let b = v.encrypt("aes", None, &op("A256GCM", b"same")).unwrap();
    assert_ne!(a.iv, b.iv);
    // Wrong alg for size.
    let e = v.encrypt("aes", None, &op("A128GCM", b"x")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "algorithm 'A128GCM' is not valid for encrypt with key type 'oct' (256 bits): expected one of A256GCM, A256CBC, A256CBCPAD"
    );
}

#[test]
fn aes_128_and_192_keys() {
    let env = env();
    let v = &env.vault;
    let b = v
        .create_key(
            "a128",
            &KeyCreateParameters {
                kty: "oct-HSM".into(),
                key_size: Some(128),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(b.key.kty.as_deref(), Some("oct-HSM"));
    assert!(b.key.k.is_none());
    let r = v.encrypt("a128", None, &op("A128GCM", b"x")).unwrap();
    let mut d = op("A128GCM", r.value.as_slice());
    d.iv = r.iv;
    d.tag = r.tag;
    assert_eq!(v.decrypt("a128", None, &d).unwrap().value.as_slice(), b"x");
    v.create_key(
        "a192",
        &KeyCreateParameters {
            kty: "oct".into(),
            key_size: Some(192),
            ..Default::default()
        },
    )
    .unwrap();
    let r = v.encrypt("a192", None, &op("A192GCM", b"y")).unwrap();
    let mut d = op("A192GCM", r.value.as_slice());
    d.iv = r.iv;
    d.tag = r.tag;
    assert_eq!(v.decrypt("a192", None, &d).unwrap().value.as_slice(), b"y");
    let e = v.create_key(
        "a512",
        &KeyCreateParameters {
            kty: "oct".into(),
            key_size: Some(512),
            ..Default::default()
        },
    );
    assert_eq!(e.unwrap_err().code(), "BadParameter");
}

#[test]
fn aes_key_wrap_known_answers() {
    let env = env();
    let v = &env.vault;
    // RFC 3394 4.1: 128-bit KEK, 128-bit key data.
    let kek: Vec<u8> = (0u8..16).collect();
    import_oct(v, "kw128", &kek);
    let data = hex::decode("00112233445566778899AABBCCDDEEFF").unwrap();
    let r = v.wrap_key("kw128", None, &op("A128KW", &data)).unwrap();
    assert_eq!(
        hex::encode_upper(r.value.as_slice()),
        "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
    );
    let r2 = v
        .wrap_key("kw128", None, &op("CKM_AES_KEY_WRAP", &data))
        .unwrap();
    assert_eq!(r2.value, r.value);
    let u = v
        .unwrap_key("kw128", None, &op("A128KW", r.value.as_slice()))
        .unwrap();
    assert_eq!(u.value.as_slice(), data.as_slice());
    // RFC 3394 4.3: 256-bit KEK, 128-bit key data.
    let kek: Vec<u8> = (0u8..32).collect();
    import_oct(v, "kw256", &kek);
    let r = v.wrap_key("kw256", None, &op("A256KW", &data)).unwrap();
    assert_eq!(
        hex::encode_upper(r.value.as_slice()),
        "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"
    );
    // RFC 5649 4: 192-bit KEK, 20 bytes of key data, padded wrap.
    let kek = hex::decode("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8").unwrap();
    import_oct(v, "kwp192", &kek);
    let data = hex::decode("c37b7e6492584340bed12207808941155068f738").unwrap();
    let r = v
        .wrap_key("kwp192", None, &op("CKM_AES_KEY_WRAP_PAD", &data))
        .unwrap();
    assert_eq!(
        hex::encode(r.value.as_slice()),
        "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"
    );
    let u = v
        .unwrap_key(
            "kwp192",
            None,
            &op("CKM_AES_KEY_WRAP_PAD", r.value.as_slice()),
        )
        .unwrap();
    assert_eq!(u.value.as_slice(), data.as_slice());
    // RFC 5649 with a 256-bit generated key round trip, and a 7-byte key.
    create(v, "kwp", "oct", None, None);
    let w = v
        .wrap_key("kwp", None, &op("CKM_AES_KEY_WRAP_PAD", b"7 bytes"))
        .unwrap();
    assert_eq!(
        v.unwrap_key("kwp", None, &op("CKM_AES_KEY_WRAP_PAD", w.value.as_slice()))
            .unwrap()
            .value
            .as_slice(),
        b"7 bytes"
    );
    // Bad lengths and tampering.
    assert_eq!(
        v.wrap_key("kwp", None, &op("A256KW", b"7 bytes"))
            .unwrap_err()
            .code(),
        "BadParameter"
    );
    let mut t = w.value.as_slice().to_vec();
    t[0] ^= 1;
    assert!(
        v.unwrap_key("kwp", None, &op("CKM_AES_KEY_WRAP_PAD", &t))
            .unwrap_err()
            .to_string()
            .starts_with("unwrap failed")
    );
    // Signing is not supported on oct keys.
    let e = v
        .sign(
            "kwp",
            None,
            &KeySignParameters {
                alg: "RS256".into(),
                value: Base64Url(vec![0; 32]),
            },
        )
        .unwrap_err();
    assert_eq!(e.http_status(), 403, "oct keys have no sign key_op");
}

#[test]
fn usability_checks_disabled_expired_nbf_key_ops() {
    let env = env();
    let v = &env.vault;
    let b = create(v, "rsa", "RSA", None, None);
    let ver = version_of(&b);
    let digest = Sha256::digest(b"x").to_vec();
    let sign = KeySignParameters {
        alg: "PS256".into(),
        value: Base64Url(digest.clone()),
    };

    // Disabled: private operations -> 403 KeyDisabled; public ones still work like Azure.
    v.update_key(
        "rsa",
        Some(&ver),
        &KeyUpdateParameters {
            attributes: Some(KeyAttributes {
                enabled: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let e = v.sign("rsa", None, &sign).unwrap_err();
    assert_eq!(
        (e.http_status(), e.code(), e.inner_code()),
        (403, "Forbidden", Some("KeyDisabled"))
    );
    assert_eq!(
        e.to_string(),
        "Operation sign is not allowed on a disabled key."
    );
    let ct = v.encrypt("rsa", None, &op("RSA-OAEP-256", b"x")).unwrap();
    let e = v
        .decrypt("rsa", None, &op("RSA-OAEP-256", ct.value.as_slice()))
        .unwrap_err();
    assert_eq!(e.inner_code(), Some("KeyDisabled"));
    assert!(!v.get_key("rsa", None).unwrap().attributes.enabled.unwrap());
    // Re-enable.
    v.update_key(
        "rsa",
        None,
        &KeyUpdateParameters {
            attributes: Some(KeyAttributes {
                enabled: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    v.sign("rsa", None, &sign).unwrap();

    // Expiry: sign / encrypt refused after exp, decrypt and verify still allowed.
    let now = env.clock.now().timestamp();
    v.update_key(
        "rsa",
        None,
        &KeyUpdateParameters {
            attributes: Some(KeyAttributes {
                exp: Some(now + 60),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let sig = v.sign("rsa", None, &sign).unwrap();
    env.clock.advance(Duration::seconds(61));
    let e = v.sign("rsa", None, &sign).unwrap_err();
    assert_eq!((e.http_status(), e.inner_code()), (403, Some("KeyExpired")));
    assert_eq!(
        v.encrypt("rsa", None, &op("RSA-OAEP", b"x"))
            .unwrap_err()
            .inner_code(),
        Some("KeyExpired")
    );
    assert_eq!(
        v.decrypt("rsa", None, &op("RSA-OAEP-256", ct.value.as_slice()))
            .unwrap()
            .value
            .as_slice(),
        b"x"
    );
    assert!(
        v.verify(
            "rsa",
            None,
            &KeyVerifyParameters {
                alg: "PS256".into(),
                digest: Base64Url(digest.clone()),
                value: sig.value
            }
        )
        .unwrap()
        .value
    );

    // Not before.
    let b2 = create(v, "later", "oct", None, None);
    v.update_key(
        "later",
        Some(&version_of(&b2)),
        &KeyUpdateParameters {
            attributes: Some(KeyAttributes {
                nbf: Some(env.clock.now().timestamp() + 3600),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let e = v.encrypt("later", None, &op("A256GCM", b"x")).unwrap_err();
    assert_eq!(e.inner_code(), Some("KeyNotYetValid"));
    env.clock.advance(Duration::hours(2));
    v.encrypt("later", None, &op("A256GCM", b"x")).unwrap();

    // key_ops restricts operations.
    v.create_key(
        "wraponly",
        &KeyCreateParameters {
            kty: "oct".into(),
            key_ops: Some(vec!["wrapKey".into(), "unwrapKey".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    let e = v
        .encrypt("wraponly", None, &op("A256GCM", b"x"))
        .unwrap_err();
    assert_eq!(
        (e.http_status(), e.code(), e.inner_code()),
        (403, "Forbidden", Some("KeyOperationForbidden"))
    );
    assert_eq!(
        e.to_string(),
        "Operation encrypt is not permitted on this key."
    );
    v.wrap_key("wraponly", None, &op("A256KW", &[1u8; 16]))
        .unwrap();
    // Updating key_ops changes what is allowed (and invalidates the cache).
    v.update_key(
        "wraponly",
        None,
        &KeyUpdateParameters {
            key_ops: Some(vec!["encrypt".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    v.encrypt("wraponly", None, &op("A256GCM", b"x")).unwrap();
    assert_eq!(
        v.wrap_key("wraponly", None, &op("A256KW", &[1u8; 16]))
            .unwrap_err()
            .inner_code(),
        Some("KeyOperationForbidden")
    );
    let e = v
        .update_key(
            "wraponly",
            None,
            &KeyUpdateParameters {
                key_ops: Some(vec!["fly".into()]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid key_ops entry 'fly'"));

    // Unknown key / version.
    let e = v.encrypt("nokey", None, &op("A256GCM", b"x")).unwrap_err();
    assert_eq!((e.http_status(), e.code()), (404, "KeyNotFound"));
    let e = v
        .get_key("rsa", Some("00000000000000000000000000000000"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "key 'rsa' version '00000000000000000000000000000000' was not found"
    );
    let e = v.get_key("bad/name", None).unwrap_err();
    assert_eq!(e.code(), "BadParameter");
}

#[test]
fn rng_bounds() {
    let env = env();
    let v = &env.vault;
    assert_eq!(v.rng(1).unwrap().value.as_slice().len(), 1);
    let a = v.rng(1024).unwrap();
    assert_eq!(a.value.as_slice().len(), 1024);
    assert_ne!(a.value, v.rng(1024).unwrap().value);
    assert_eq!(
        v.rng(0).unwrap_err().to_string(),
        "invalid count: expected 1-1024, found 0"
    );
    assert_eq!(v.rng(1025).unwrap_err().code(), "BadParameter");
}

#[test]
fn versioned_operations_use_the_right_version() {
    let env = env();
    let v = &env.vault;
    let b1 = create(v, "k", "oct", None, None);
    let r1 = v.encrypt("k", None, &op("A256GCM", b"one")).unwrap();
    assert_eq!(r1.kid, b1.key.kid.clone().unwrap());
    let b2 = v.rotate_key("k").unwrap();
    assert_ne!(version_of(&b1), version_of(&b2));
    // Unversioned now uses the new version; old ciphertext needs the old version.
    let r2 = v.encrypt("k", Some(""), &op("A256GCM", b"two")).unwrap();
    assert_eq!(r2.kid, b2.key.kid.clone().unwrap());
    let mut d = op("A256GCM", r1.value.as_slice());
    d.iv = r1.iv.clone();
    d.tag = r1.tag.clone();
    assert!(v.decrypt("k", None, &d).is_err());
    assert_eq!(
        v.decrypt("k", Some(&version_of(&b1)), &d)
            .unwrap()
            .value
            .as_slice(),
        b"one"
    );
}

/// Rough throughput of the vault layer (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn throughput() {
    let env = env();
    let v = &env.vault;
    create(v, "aes", "oct", None, None);
    create(v, "rsa", "RSA", None, None);
    let p = op("A256GCM", &[0u8; 1024]);
    let n = 20_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        v.encrypt("aes", None, &p).unwrap();
    }
    let el = t.elapsed();
    println!(
        "A256GCM 1 KiB encrypt: {:.0}/s",
        n as f64 / el.as_secs_f64()
    );
    let ct = v
        .encrypt("rsa", None, &op("RSA-OAEP-256", &[1u8; 32]))
        .unwrap();
    let d = op("RSA-OAEP-256", ct.value.as_slice());
    let n = 500;
    let t = std::time::Instant::now();
    for _ in 0..n {
        v.decrypt("rsa", None, &d).unwrap();
    }
    println!(
        "RSA-2048 OAEP-256 decrypt: {:.0}/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
}

#[test]
fn aes_cbc_known_answer_and_padding() {
    let env = env();
    let v = &env.vault;
    // NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt), first block.
    let k =
        hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4").unwrap();
    import_oct(v, "cbc", &k);
    let mut p = op(
        "A256CBC",
        &hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap(),
    );
    p.iv = Some(Base64Url(
        hex::decode("000102030405060708090a0b0c0d0e0f").unwrap(),
    ));
    let r = v.encrypt("cbc", None, &p).unwrap();
    assert_eq!(
        hex::encode(r.value.as_slice()),
        "f58c4c04d6e5f1ba779eabfb5f7bfbd6"
    );
    assert_eq!(r.iv, p.iv);
    let mut d = op("A256CBC", r.value.as_slice());
    d.iv = r.iv.clone();
    assert_eq!(
        hex::encode(v.decrypt("cbc", None, &d).unwrap().value.as_slice()),
        "6bc1bee22e409f96e93d7e117393172a"
    );
    // Unpadded CBC needs whole blocks.
    assert_eq!(
        v.encrypt("cbc", None, &op("A256CBC", b"short"))
            .unwrap_err()
            .code(),
        "BadParameter"
    );
    // CBCPAD: vault generates the iv when none is given.
    let r = v
        .encrypt("cbc", None, &op("A256CBCPAD", b"any length"))
        .unwrap();
    assert_eq!(r.value.as_slice().len(), 16);
    assert_eq!(r.iv.as_ref().unwrap().as_slice().len(), 16);
    let mut d = op("A256CBCPAD", r.value.as_slice());
    d.iv = r.iv;
    assert_eq!(
        v.decrypt("cbc", None, &d).unwrap().value.as_slice(),
        b"any length"
    );
    let mut noiv = d.clone();
    noiv.iv = None;
    assert_eq!(
        v.decrypt("cbc", None, &noiv).unwrap_err().code(),
        "BadParameter"
    );
}
