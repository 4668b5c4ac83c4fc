//! Key Vault SDK compatibility (issue 10, "Key Vault SDKs" items 1, 2, 3 and 5), checked against
//! independent implementations (RustCrypto `rsa`, `p256`, `p384`, `p521`, `k256`):
//! JWK integers in non-minimal form, the four Key Vault curves, version listings of unknown names
//! and AES-CBC requests that carry `aad`.

use enclava_vault::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rand::rngs::OsRng;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, Oaep, Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::common::*;

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

fn zeros_then(zeros: usize, b: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; zeros];
    v.extend_from_slice(b);
    v
}

/// Prefix `zeros` zero bytes to one JWK integer field (the value stays the same integer).
fn pad_field(jwk: &mut JsonWebKey, field: &str, zeros: usize) {
    let pub_ = |f: &mut Option<Base64Url>| {
        let v = f.as_ref().unwrap().as_slice().to_vec();
        *f = Some(Base64Url(zeros_then(zeros, &v)));
    };
    let sec = |f: &mut Option<SecretBytes>| {
        let v = f.as_ref().unwrap().as_slice().to_vec();
        *f = Some(SecretBytes::new(zeros_then(zeros, &v)));
    };
    match field {
        "n" => pub_(&mut jwk.n),
        "e" => pub_(&mut jwk.e),
        "x" => pub_(&mut jwk.x),
        "y" => pub_(&mut jwk.y),
        "d" => sec(&mut jwk.d),
        "p" => sec(&mut jwk.p),
        "q" => sec(&mut jwk.q),
        "dp" => sec(&mut jwk.dp),
        "dq" => sec(&mut jwk.dq),
        "qi" => sec(&mut jwk.qi),
        other => panic!("no field {other}"),
    }
}

fn import(v: &Vault, name: &str, key: JsonWebKey) -> Result<KeyBundle, VaultError> {
    v.import_key(
        name,
        &KeyImportParameters {
            key,
            ..Default::default()
        },
    )
}

fn sign(v: &Vault, name: &str, alg: &str, digest: &[u8]) -> Vec<u8> {
    v.sign(
        name,
        None,
        &KeySignParameters {
            alg: alg.into(),
            value: Base64Url(digest.to_vec()),
        },
    )
    .unwrap_or_else(|e| panic!("{name} {alg}: {e}"))
    .value
    .as_slice()
    .to_vec()
}

fn vault_verifies(v: &Vault, name: &str, alg: &str, digest: &[u8], sig: &[u8]) -> bool {
    v.verify(
        name,
        None,
        &KeyVerifyParameters {
            alg: alg.into(),
            digest: Base64Url(digest.to_vec()),
            value: Base64Url(sig.to_vec()),
        },
    )
    .unwrap()
    .value
}

const RSA_FIELDS: [&str; 8] = ["n", "e", "d", "p", "q", "dp", "dq", "qi"];

/// Microsoft's SDK tests import RSA keys whose `n` carries a leading zero byte (the DER form);
/// Azure accepts it. Every component, alone and all together, with one and with several leading
/// zeros: the import succeeds, the stored public key is the minimal form, and the key signs and
/// decrypts interoperably with the independent implementation that generated it.
#[test]
fn rsa_import_accepts_leading_zeros_in_every_component() {
    let env = env();
    let v = &env.vault;
    let sk = RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
    let pk = sk.to_public_key();
    let mut cases: Vec<(String, JsonWebKey)> = vec![("plain".into(), jwk_from_rsa(&sk))];
    for f in RSA_FIELDS {
        let mut jwk = jwk_from_rsa(&sk);
        pad_field(&mut jwk, f, 1);
        cases.push((format!("lz-{f}"), jwk));
    }
    let mut all = jwk_from_rsa(&sk);
    for f in RSA_FIELDS {
        pad_field(&mut all, f, 3);
    }
    cases.push(("lz3-all".into(), all));

    let digest = Sha256::digest(b"leading zeros").to_vec();
    for (name, jwk) in cases {
        let b = import(v, &name, jwk).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            b.key.n.as_ref().unwrap().as_slice(),
            sk.n().to_bytes_be().as_slice(),
            "{name}: the public n is returned in minimal form"
        );
        assert_eq!(b.key.e.as_ref().unwrap().as_slice(), &[1, 0, 1], "{name}");
        let sig = sign(v, &name, "RS256", &digest);
        pk.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
            .unwrap_or_else(|e| panic!("{name}: independent RS256 check: {e}"));
        let ct = pk
            .encrypt(&mut OsRng, Oaep::new::<Sha256>(), b"to the vault")
            .unwrap();
        let pt = v
            .decrypt(&name, None, &op("RSA-OAEP-256", &ct))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pt.value.as_slice(), b"to the vault", "{name}");
    }

    // A component that is zero (only zero bytes) is refused, naming the field.
    let mut zero = jwk_from_rsa(&sk);
    zero.dq = Some(SecretBytes::new(vec![0, 0]));
    let e = import(v, "zero", zero).unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    assert_eq!(
        e.to_string(),
        "invalid key.dq: expected a non-zero big-endian integer, found 2 zero byte(s)"
    );
    // A 2040-bit modulus padded to 256 bytes is still 2040 bits: the size is the integer's.
    let mut short = jwk_from_rsa(&sk);
    short.n = Some(Base64Url(zeros_then(1, &sk.n().to_bytes_be()[1..])));
    let e = import(v, "short", short).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid RSA key: expected a 2048, 3072 or 4096-bit modulus, found 2040 bits"
    );
}

/// The independent side of one curve: key generation and prehash verification.
struct Indep {
    crv: &'static str,
    alg: &'static str,
    len: usize,
    bits: usize,
}

const CURVES: [Indep; 4] = [
    Indep {
        crv: "P-256",
        alg: "ES256",
        len: 32,
        bits: 256,
    },
    Indep {
        crv: "P-384",
        alg: "ES384",
        len: 48,
        bits: 384,
    },
    Indep {
        crv: "P-521",
        alg: "ES512",
        len: 66,
        bits: 521,
    },
    Indep {
        crv: "P-256K",
        alg: "ES256K",
        len: 32,
        bits: 256,
    },
];

impl Indep {
    fn digest(&self, msg: &[u8]) -> Vec<u8> {
        match self.alg {
            "ES384" => Sha384::digest(msg).to_vec(),
            "ES512" => Sha512::digest(msg).to_vec(),
            _ => Sha256::digest(msg).to_vec(),
        }
    }

    /// A fresh key: (d, uncompressed SEC1 point), both fixed-length.
    fn generate(&self) -> (Vec<u8>, Vec<u8>) {
        match self.crv {
            "P-256" => {
                let k = p256::ecdsa::SigningKey::random(&mut OsRng);
                let pt = k.verifying_key().to_encoded_point(false);
                (k.to_bytes().to_vec(), pt.as_bytes().to_vec())
            }
            "P-384" => {
                let k = p384::ecdsa::SigningKey::random(&mut OsRng);
                let pt = k.verifying_key().to_encoded_point(false);
                (k.to_bytes().to_vec(), pt.as_bytes().to_vec())
            }
            "P-521" => {
                let k = p521::ecdsa::SigningKey::random(&mut OsRng);
                let pt = p521::ecdsa::VerifyingKey::from(&k).to_encoded_point(false);
                (k.to_bytes().to_vec(), pt.as_bytes().to_vec())
            }
            _ => {
                let k = k256::ecdsa::SigningKey::random(&mut OsRng);
                let pt = k.verifying_key().to_encoded_point(false);
                (k.to_bytes().to_vec(), pt.as_bytes().to_vec())
            }
        }
    }

    /// Verify a raw `r || s` signature over a digest with the independent implementation.
    fn verifies(&self, point: &[u8], digest: &[u8], sig: &[u8]) -> bool {
        match self.crv {
            "P-256" => {
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                p256::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| vk.verify_prehash(digest, &s).is_ok())
            }
            "P-384" => {
                let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                p384::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| vk.verify_prehash(digest, &s).is_ok())
            }
            "P-521" => {
                let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                p521::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| vk.verify_prehash(digest, &s).is_ok())
            }
            _ => {
                let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                // k256 accepts only low-S signatures (BIP 62); ECDSA itself accepts both, and
                // (r, n - s) is valid exactly when (r, s) is.
                k256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| {
                    let s = s.normalize_s().unwrap_or(s);
                    vk.verify_prehash(digest, &s).is_ok()
                })
            }
        }
    }

    fn jwk(&self, d: &[u8], point: &[u8]) -> JsonWebKey {
        let len = self.len;
        JsonWebKey {
            kty: Some("EC".into()),
            crv: Some(self.crv.into()),
            d: Some(SecretBytes::new(d.to_vec())),
            x: Some(Base64Url(point[1..1 + len].to_vec())),
            y: Some(Base64Url(point[1 + len..].to_vec())),
            ..Default::default()
        }
    }
}

fn point_of(b: &KeyBundle) -> Vec<u8> {
    let mut p = vec![4u8];
    p.extend_from_slice(b.key.x.as_ref().unwrap().as_slice());
    p.extend_from_slice(b.key.y.as_ref().unwrap().as_slice());
    p
}

/// All four Key Vault curves: create (both kty forms), the JWK round trip (get returns the same
/// crv/x/y at the curve's fixed length), sign (checked independently), verify (accepts the
/// independent implementation's keys' signatures made by the vault, refuses a tampered one), and
/// the one algorithm per curve.
#[test]
fn all_four_curves_create_sign_verify_round_trip() {
    let env = env();
    let v = &env.vault;
    for c in &CURVES {
        for kty in ["EC", "EC-HSM"] {
            let name = format!("{}-{kty}", c.alg.to_lowercase());
            let b = create(v, &name, kty, None, Some(c.crv));
            assert_eq!(b.key.crv.as_deref(), Some(c.crv), "{name}");
            assert_eq!(b.key.x.as_ref().unwrap().as_slice().len(), c.len, "{name}");
            assert_eq!(b.key.y.as_ref().unwrap().as_slice().len(), c.len, "{name}");
            let got = v.get_key(&name, None).unwrap();
            assert_eq!(got.key.crv, b.key.crv, "{name}");
            assert_eq!(got.key.x, b.key.x, "{name}");
            assert_eq!(got.key.y, b.key.y, "{name}");
            let point = point_of(&b);
            let digest = c.digest(name.as_bytes());
            let sig = sign(v, &name, c.alg, &digest);
            assert_eq!(sig.len(), 2 * c.len, "{name}: raw r||s");
            assert!(c.verifies(&point, &digest, &sig), "{name}");
            assert!(vault_verifies(v, &name, c.alg, &digest, &sig), "{name}");
            let mut bad = sig.clone();
            bad[5] ^= 1;
            assert!(!vault_verifies(v, &name, c.alg, &digest, &bad), "{name}");
            assert!(!c.verifies(&point, &digest, &bad), "{name}");
        }
        // key_size, when given, must be the curve's size (521 for P-521).
        let e = v
            .create_key(
                "sized",
                &KeyCreateParameters {
                    kty: "EC".into(),
                    crv: Some(c.crv.into()),
                    key_size: Some(123),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "invalid key_size for curve {}: expected {} or none, found 123",
                c.crv, c.bits
            )
        );
        create_sized(v, c);
    }
    // One algorithm per curve: ES256 is not ES256K (same digest length, different curve).
    let e = v
        .sign(
            "es256k-EC",
            None,
            &KeySignParameters {
                alg: "ES256".into(),
                value: Base64Url(vec![0; 32]),
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "algorithm 'ES256' is not valid for sign with key type 'EC' (256 bits): expected one of ES256K"
    );
    let e = v
        .sign(
            "es512-EC",
            None,
            &KeySignParameters {
                alg: "ES512".into(),
                value: Base64Url(vec![0; 48]),
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid digest for ES512: expected 64 bytes, found 48"
    );
    let e = v
        .create_key(
            "k",
            &KeyCreateParameters {
                kty: "EC".into(),
                crv: Some("SECP256K1".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported curve: expected P-256, P-384, P-521 or P-256K, found 'SECP256K1'"
    );
}

fn create_sized(v: &Vault, c: &Indep) {
    let name = format!("sized-{}", c.alg.to_lowercase());
    v.create_key(
        &name,
        &KeyCreateParameters {
            kty: "EC".into(),
            crv: Some(c.crv.into()),
            key_size: Some(c.bits as u32),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// Importing independently generated keys on every curve, with `d`, `x` and `y` as they come
/// (fixed length), each with a leading zero byte added, and each shortened to its minimal form
/// when its top byte is zero: the vault signs as that key (checked independently) and returns the
/// public key at the curve's fixed length. A value that does not fit the curve is refused.
#[test]
fn ec_import_normalises_fixed_length_fields_on_every_curve() {
    let env = env();
    let v = &env.vault;
    for c in &CURVES {
        let (d, point) = c.generate();
        let mut cases: Vec<(String, JsonWebKey)> = vec![("plain".into(), c.jwk(&d, &point))];
        for f in ["d", "x", "y"] {
            let mut jwk = c.jwk(&d, &point);
            pad_field(&mut jwk, f, 1);
            cases.push((format!("lz-{f}"), jwk));
        }
        let mut all = c.jwk(&d, &point);
        for f in ["d", "x", "y"] {
            pad_field(&mut all, f, 2);
        }
        cases.push(("lz2-all".into(), all));
        // Shortened (minimal) forms: find keys whose d, x or y starts with a zero byte.
        for (i, f) in ["d", "x", "y"].into_iter().enumerate() {
            let Some((d2, p2)) = (0..4000).map(|_| c.generate()).find(|(d2, p2)| match i {
                0 => d2[0] == 0,
                1 => p2[1] == 0,
                _ => p2[1 + c.len] == 0,
            }) else {
                panic!("{}: no key with a leading zero in {f} in 4000 tries", c.crv);
            };
            let mut jwk = c.jwk(&d2, &p2);
            let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect();
            match f {
                "d" => jwk.d = Some(SecretBytes::new(strip(&d2))),
                "x" => jwk.x = Some(Base64Url(strip(&p2[1..1 + c.len]))),
                _ => jwk.y = Some(Base64Url(strip(&p2[1 + c.len..]))),
            }
            cases.push((format!("short-{f}"), jwk));
        }
        for (case, jwk) in cases {
            let name = format!("{}-{case}", c.alg.to_lowercase());
            let point = {
                let x = jwk.x.as_ref().unwrap().as_slice();
                let y = jwk.y.as_ref().unwrap().as_slice();
                let fix = |b: &[u8]| {
                    let b: Vec<u8> = b.iter().skip_while(|x| **x == 0).copied().collect();
                    zeros_then(c.len - b.len(), &b)
                };
                let mut p = vec![4u8];
                p.extend(fix(x));
                p.extend(fix(y));
                p
            };
            let b = import(v, &name, jwk).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(point_of(&b), point, "{name}: fixed-length public key");
            let digest = c.digest(name.as_bytes());
            let sig = sign(v, &name, c.alg, &digest);
            assert!(c.verifies(&point, &digest, &sig), "{name}");
        }
        // Too long: one significant byte more than the curve holds.
        let mut long = c.jwk(&d, &point);
        long.x = Some(Base64Url(vec![1u8; c.len + 1]));
        let e = import(v, "too-long", long).unwrap_err();
        assert_eq!(e.code(), "BadParameter");
        assert_eq!(
            e.to_string(),
            format!(
                "invalid key.x: expected at most {} significant bytes, found {}",
                c.len,
                c.len + 1
            )
        );
        // A point from another key is refused (normalisation does not weaken the pair check).
        let (_, other) = c.generate();
        let e = import(v, "mismatch", c.jwk(&d, &other)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "invalid EC key: d, x and y do not form a consistent {} key pair",
                c.crv
            )
        );
    }
}

/// Key Vault lists the versions of a name that does not exist as an empty page (200), for keys
/// and for secrets; a malformed continuation token is still refused.
#[test]
fn versions_of_unknown_names_are_an_empty_list() {
    let env = env();
    let v = &env.vault;
    let k = v.list_key_versions("no-such-key", None, None).unwrap();
    assert!(k.items.is_empty());
    assert_eq!(k.continuation, None);
    let s = v
        .list_secret_versions("no-such-secret", None, None)
        .unwrap();
    assert!(s.items.is_empty());
    assert_eq!(s.continuation, None);
    assert_eq!(
        v.list_key_versions("no-such-key", None, Some("%%%"))
            .unwrap_err()
            .code(),
        "BadParameter"
    );
    assert_eq!(
        v.list_secret_versions("no-such-secret", None, Some("%%%"))
            .unwrap_err()
            .code(),
        "BadParameter"
    );
    // A deleted key's versions: no live key of that name, so also an empty list.
    create(v, "gone", "EC", None, None);
    v.delete_key("gone").unwrap();
    assert!(
        v.list_key_versions("gone", None, None)
            .unwrap()
            .items
            .is_empty()
    );
}

/// AES-CBC and CBCPAD requests carrying `aad` are served, and the `aad` is ignored (as Key Vault
/// does), not folded into the cipher: the ciphertext equals the one without `aad` for the same
/// iv, and decrypts with any or no `aad`. GCM still binds its `aad`.
#[test]
fn aes_cbc_ignores_aad() {
    let env = env();
    let v = &env.vault;
    for (bits, algs) in [
        (128usize, ["A128CBC", "A128CBCPAD"]),
        (192, ["A192CBC", "A192CBCPAD"]),
        (256, ["A256CBC", "A256CBCPAD"]),
    ] {
        let name = format!("cbc{bits}");
        let k: Vec<u8> = (0..bits / 8).map(|i| i as u8).collect();
        v.import_key(
            &name,
            &KeyImportParameters {
                key: JsonWebKey {
                    kty: Some("oct".into()),
                    k: Some(SecretBytes::new(k)),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        for alg in algs {
            let iv = Base64Url((0u8..16).collect());
            let mut plain = op(alg, b"sixteen byte msg");
            plain.iv = Some(iv.clone());
            let mut with_aad = plain.clone();
            with_aad.aad = Some(Base64Url(b"ignored".to_vec()));
            let a = v.encrypt(&name, None, &plain).unwrap();
            let b = v
                .encrypt(&name, None, &with_aad)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(
                a.value, b.value,
                "{alg}: aad must not change the ciphertext"
            );
            assert_eq!(b.aad, None, "{alg}: no aad echoed for CBC");
            let mut d = op(alg, b.value.as_slice());
            d.iv = Some(iv);
            d.aad = Some(Base64Url(b"something else".to_vec()));
            let pt = v
                .decrypt(&name, None, &d)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(pt.value.as_slice(), b"sixteen byte msg", "{alg}");
            // A tag has no meaning for CBC and is still refused.
            d.tag = Some(Base64Url(vec![0; 16]));
            assert_eq!(
                v.decrypt(&name, None, &d).unwrap_err().to_string(),
                format!("tag is not valid with {alg}")
            );
        }
    }
    // GCM keeps authenticating its aad.
    let key = KeyImportParameters {
        key: JsonWebKey {
            kty: Some("oct".into()),
            k: Some(SecretBytes::new(vec![7; 32])),
            ..Default::default()
        },
        ..Default::default()
    };
    v.import_key("gcm", &key).unwrap();
    let mut p = op("A256GCM", b"msg");
    p.aad = Some(Base64Url(b"bound".to_vec()));
    let r = v.encrypt("gcm", None, &p).unwrap();
    let mut d = op("A256GCM", r.value.as_slice());
    d.iv = r.iv;
    d.tag = r.tag;
    d.aad = Some(Base64Url(b"other".to_vec()));
    assert_eq!(
        v.decrypt("gcm", None, &d).unwrap_err().code(),
        "BadParameter"
    );
}
