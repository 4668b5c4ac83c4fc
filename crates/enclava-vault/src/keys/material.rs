//! Key material: generation, JWK import, parsing from the sealed at-rest form, and the
//! cryptographic operations (aws-lc-rs throughout; aes-kw for AES-192 key wrap).
//!
//! At-rest plaintext form (sealed by the caller): raw key bytes for `oct`, PKCS#8 DER for RSA and
//! EC.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap, KeyWrapPadded};
use aws_lc_rs::rsa::{
    self, KeyPairComponents, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey,
    PrivateDecryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::b64::Base64Url;
use crate::error::{Result, VaultError};
use crate::model::JsonWebKey;
use crate::util::random_fill;

/// The base key type (without `-HSM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Oct,
    Rsa,
    Ec,
}

impl KeyKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyKind::Oct => "oct",
            KeyKind::Rsa => "RSA",
            KeyKind::Ec => "EC",
        }
    }
}

/// Parse a `kty` (`EC`, `EC-HSM`, `RSA`, `RSA-HSM`, `oct`, `oct-HSM`): kind and HSM flag.
pub(crate) fn parse_kty(kty: &str) -> Result<(KeyKind, bool)> {
    match kty {
        "oct" => Ok((KeyKind::Oct, false)),
        "oct-HSM" => Ok((KeyKind::Oct, true)),
        "RSA" => Ok((KeyKind::Rsa, false)),
        "RSA-HSM" => Ok((KeyKind::Rsa, true)),
        "EC" => Ok((KeyKind::Ec, false)),
        "EC-HSM" => Ok((KeyKind::Ec, true)),
        other => Err(VaultError::bad(format!(
            "invalid kty: expected one of EC, EC-HSM, RSA, RSA-HSM, oct, oct-HSM, found '{}'",
            truncate(other)
        ))),
    }
}

/// Shorten user-supplied identifiers echoed in messages.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The four Key Vault curves. All are aws-lc-rs curves (secp256k1 included), so no second crypto
/// library is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
    /// secp256k1 (`P-256K`, signature algorithm `ES256K`).
    P256K,
}

impl Curve {
    pub(crate) fn parse(crv: &str) -> Result<Curve> {
        match crv {
            "P-256" => Ok(Curve::P256),
            "P-384" => Ok(Curve::P384),
            "P-521" => Ok(Curve::P521),
            "P-256K" => Ok(Curve::P256K),
            other => Err(VaultError::bad(format!(
                "unsupported curve: expected P-256, P-384, P-521 or P-256K, found '{}'",
                truncate(other)
            ))),
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::P256K => "P-256K",
        }
    }
    /// Bytes of a field element / scalar (the fixed length of the JWK `x`, `y` and `d`).
    fn field_len(self) -> usize {
        match self {
            Curve::P256 | Curve::P256K => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
    /// The curve size in bits (what Key Vault reports as the key size: 521 for P-521, not 528).
    fn bits(self) -> usize {
        match self {
            Curve::P256 | Curve::P256K => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }
    /// The one JWS algorithm Key Vault allows per curve.
    fn jws_alg(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P384 => "ES384",
            Curve::P521 => "ES512",
            Curve::P256K => "ES256K",
        }
    }
    fn signing_alg(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
        }
    }
    fn verification_alg(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
            Curve::P256K => &signature::ECDSA_P256K1_SHA256_FIXED,
        }
    }
}

/// The JWK integer decoders of the whole project ([`enclava_token::jwk_int`]), with the field
/// named in the error. Variable-length integers (RSA `n`, `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`):
/// the minimal form; zero is refused.
pub(crate) fn jwk_uint<'a>(field: &str, bytes: &'a [u8]) -> Result<&'a [u8]> {
    enclava_token::jwk_int::jwk_uint(bytes)
        .map_err(|e| VaultError::bad(format!("invalid {field}: {e}")))
}

/// Fixed-length integers (EC `x`, `y`, `d`): exactly `len` bytes (padded or stripped of surplus
/// leading zeros), refused when the value does not fit. Zeroized, since `d` is secret.
pub(crate) fn jwk_fixed(field: &str, bytes: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    enclava_token::jwk_int::jwk_fixed_into(bytes, &mut out)
        .map_err(|e| VaultError::bad(format!("invalid {field}: {e}")))?;
    Ok(out)
}

/// Newly generated or imported material: the sealed-at-rest plaintext plus public parts.
pub(crate) struct NewMaterial {
    pub(crate) kind: KeyKind,
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) public: PublicJwk,
    pub(crate) key_size: Option<u32>,
}

/// Public JWK parts stored in the clear alongside the sealed material.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PublicJwk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) n: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) e: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) x: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) y: Option<Base64Url>,
}

fn lib_err(what: &str) -> VaultError {
    VaultError::internal(format!("{what} failed in the crypto library"))
}

/// Generate key material.
pub(crate) fn generate(
    kind: KeyKind,
    key_size: Option<u32>,
    crv: Option<&str>,
    public_exponent: Option<u64>,
) -> Result<NewMaterial> {
    match kind {
        KeyKind::Oct => {
            let bits = key_size.unwrap_or(256);
            if !matches!(bits, 128 | 192 | 256) {
                return Err(VaultError::bad(format!(
                    "invalid key_size for oct: expected 128, 192 or 256, found {bits}"
                )));
            }
            if crv.is_some() {
                return Err(VaultError::bad("crv is not valid for key type oct"));
            }
            let mut k = Zeroizing::new(vec![0u8; bits as usize / 8]);
            random_fill(&mut k)?;
            Ok(NewMaterial {
                kind,
                bytes: k,
                public: PublicJwk::default(),
                key_size: Some(bits),
            })
        }
        KeyKind::Rsa => {
            let bits = key_size.unwrap_or(2048);
            let size = match bits {
                2048 => rsa::KeySize::Rsa2048,
                3072 => rsa::KeySize::Rsa3072,
                4096 => rsa::KeySize::Rsa4096,
                other => {
                    return Err(VaultError::bad(format!(
                        "invalid key_size for RSA: expected 2048, 3072 or 4096, found {other}"
                    )));
                }
            };
            if let Some(e) = public_exponent
                && e != 65537
            {
                return Err(VaultError::bad(format!(
                    "invalid public_exponent: expected 65537, found {e}"
                )));
            }
            if crv.is_some() {
                return Err(VaultError::bad("crv is not valid for key type RSA"));
            }
            let pair = rsa::KeyPair::generate(size).map_err(|_| lib_err("RSA key generation"))?;
            let der = pair.as_der().map_err(|_| lib_err("RSA key encoding"))?;
            let bytes = Zeroizing::new(der.as_ref().to_vec());
            Ok(NewMaterial {
                kind,
                public: rsa_public(&pair),
                bytes,
                key_size: Some(bits),
            })
        }
        KeyKind::Ec => {
            let curve = Curve::parse(crv.unwrap_or("P-256"))?;
            if let Some(size) = key_size {
                let expected = curve.bits() as u32;
                if size != expected {
                    return Err(VaultError::bad(format!(
                        "invalid key_size for curve {}: expected {expected} or none, found {size}",
                        curve.name()
                    )));
                }
            }
            let pair = EcdsaKeyPair::generate(curve.signing_alg())
                .map_err(|_| lib_err("EC key generation"))?;
            let doc = pair.to_pkcs8v1().map_err(|_| lib_err("EC key encoding"))?;
            let bytes = Zeroizing::new(doc.as_ref().to_vec());
            Ok(NewMaterial {
                kind,
                public: ec_public(&pair, curve)?,
                bytes,
                key_size: None,
            })
        }
    }
}

fn rsa_public(pair: &rsa::KeyPair) -> PublicJwk {
    let pk = pair.public_key();
    PublicJwk {
        n: Some(Base64Url(
            pk.modulus().big_endian_without_leading_zero().to_vec(),
        )),
        e: Some(Base64Url(
            pk.exponent().big_endian_without_leading_zero().to_vec(),
        )),
        ..PublicJwk::default()
    }
}

fn ec_public(pair: &EcdsaKeyPair, curve: Curve) -> Result<PublicJwk> {
    let point = pair.public_key().as_ref();
    let len = curve.field_len();
    if point.len() != 1 + 2 * len || point.first() != Some(&4) {
        return Err(lib_err("EC public key encoding"));
    }
    Ok(PublicJwk {
        crv: Some(curve.name().to_string()),
        x: point.get(1..1 + len).map(|s| Base64Url(s.to_vec())),
        y: point.get(1 + len..).map(|s| Base64Url(s.to_vec())),
        ..PublicJwk::default()
    })
}

/// Material from an RSA or EC private key in PKCS#8 DER (a certificate's key): parsed and
/// re-encoded the way [`generate`] stores it.
pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Result<NewMaterial> {
    let bad = || VaultError::bad("expected an RSA or EC (P-256, P-384, P-521) private key");
    if let Ok(pair) = rsa::KeyPair::from_pkcs8(pkcs8) {
        let bits = (pair.public_modulus_len() * 8) as u32;
        if !matches!(bits, 2048 | 3072 | 4096) {
            return Err(VaultError::bad(format!(
                "invalid RSA key size: expected 2048, 3072 or 4096 bits, found {bits}"
            )));
        }
        return Ok(NewMaterial {
            kind: KeyKind::Rsa,
            public: rsa_public(&pair),
            bytes: Zeroizing::new(pkcs8.to_vec()),
            key_size: Some(bits),
        });
    }
    for crv in ["P-256", "P-384", "P-521"] {
        let curve = Curve::parse(crv)?;
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(curve.signing_alg(), pkcs8) {
            let doc = pair.to_pkcs8v1().map_err(|_| lib_err("EC key encoding"))?;
            return Ok(NewMaterial {
                kind: KeyKind::Ec,
                public: ec_public(&pair, curve)?,
                bytes: Zeroizing::new(doc.as_ref().to_vec()),
                key_size: None,
            });
        }
    }
    Err(bad())
}

/// Import a private JWK (BYOK). Returns the kind from the JWK's kty.
pub(crate) fn import(jwk: &JsonWebKey) -> Result<NewMaterial> {
    let kty = jwk
        .kty
        .as_deref()
        .ok_or_else(|| VaultError::bad("key.kty is required for import"))?;
    let (kind, _) = parse_kty(kty)?;
    let missing = |field: &str| {
        VaultError::bad(format!(
            "key.{field} is required to import a {} key",
            kind.name()
        ))
    };
    match kind {
        KeyKind::Oct => {
            let k = jwk.k.as_ref().ok_or_else(|| missing("k"))?;
            let bits = k.as_slice().len() * 8;
            if !matches!(bits, 128 | 192 | 256) {
                return Err(VaultError::bad(format!(
                    "invalid oct key: expected 16, 24 or 32 bytes, found {}",
                    k.as_slice().len()
                )));
            }
            Ok(NewMaterial {
                kind,
                bytes: Zeroizing::new(k.as_slice().to_vec()),
                public: PublicJwk::default(),
                key_size: Some(bits as u32),
            })
        }
        KeyKind::Rsa => {
            // Every component normalised to its minimal form: the size check and aws-lc-rs (which
            // refuses non-minimal encodings) see the same value.
            fn uint<'a>(field: &str, v: Option<&'a [u8]>) -> Result<&'a [u8]> {
                let v = v.ok_or_else(|| {
                    VaultError::bad(format!("key.{field} is required to import a RSA key"))
                })?;
                jwk_uint(&format!("key.{field}"), v)
            }
            let n = uint("n", jwk.n.as_ref().map(|v| v.as_slice()))?;
            let e = uint("e", jwk.e.as_ref().map(|v| v.as_slice()))?;
            let d = uint("d", jwk.d.as_ref().map(|v| v.as_slice()))?;
            let p = uint("p", jwk.p.as_ref().map(|v| v.as_slice()))?;
            let q = uint("q", jwk.q.as_ref().map(|v| v.as_slice()))?;
            let dp = uint("dp", jwk.dp.as_ref().map(|v| v.as_slice()))?;
            let dq = uint("dq", jwk.dq.as_ref().map(|v| v.as_slice()))?;
            let qi = uint("qi", jwk.qi.as_ref().map(|v| v.as_slice()))?;
            let bits = n.len() * 8;
            if !matches!(bits, 2048 | 3072 | 4096) {
                return Err(VaultError::bad(format!(
                    "invalid RSA key: expected a 2048, 3072 or 4096-bit modulus, found {bits} bits"
                )));
            }
            let comps = KeyPairComponents {
                public_key: PublicKeyComponents { n, e },
                d,
                p,
                q,
                dP: dp,
                dQ: dq,
                qInv: qi,
            };
            let pair = rsa::KeyPair::from_components(&comps).map_err(|_| {
                VaultError::bad(
                    "invalid RSA key: the JWK components do not form a consistent RSA private key",
                )
            })?;
            let der = pair.as_der().map_err(|_| lib_err("RSA key encoding"))?;
            Ok(NewMaterial {
                kind,
                public: rsa_public(&pair),
                bytes: Zeroizing::new(der.as_ref().to_vec()),
                key_size: Some(bits as u32),
            })
        }
        KeyKind::Ec => {
            let curve = Curve::parse(jwk.crv.as_deref().ok_or_else(|| missing("crv"))?)?;
            let len = curve.field_len();
            let d = jwk_fixed(
                "key.d",
                jwk.d.as_ref().ok_or_else(|| missing("d"))?.as_slice(),
                len,
            )?;
            let x = jwk_fixed(
                "key.x",
                jwk.x.as_ref().ok_or_else(|| missing("x"))?.as_slice(),
                len,
            )?;
            let y = jwk_fixed(
                "key.y",
                jwk.y.as_ref().ok_or_else(|| missing("y"))?.as_slice(),
                len,
            )?;
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4u8);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let pair =
                EcdsaKeyPair::from_private_key_and_public_key(curve.signing_alg(), &d, &point)
                    .map_err(|_| {
                        VaultError::bad(format!(
                            "invalid EC key: d, x and y do not form a consistent {} key pair",
                            curve.name()
                        ))
                    })?;
            let doc = pair.to_pkcs8v1().map_err(|_| lib_err("EC key encoding"))?;
            Ok(NewMaterial {
                kind,
                public: ec_public(&pair, curve)?,
                bytes: Zeroizing::new(doc.as_ref().to_vec()),
                key_size: None,
            })
        }
    }
}

/// Parsed material ready for operations. aws-lc-rs frees (and cleanses) its key objects on drop;
/// the raw oct bytes are zeroized.
pub(crate) enum Material {
    Oct {
        k: Zeroizing<Vec<u8>>,
        gcm: LessSafeKey,
    },
    Rsa(Box<RsaMaterial>),
    Ec {
        pair: EcdsaKeyPair,
        curve: Curve,
    },
}

pub(crate) struct RsaMaterial {
    pair: rsa::KeyPair,
    oaep_dec: OaepPrivateDecryptingKey,
    pkcs1_dec: Pkcs1PrivateDecryptingKey,
    oaep_enc: OaepPublicEncryptingKey,
    pkcs1_enc: Pkcs1PublicEncryptingKey,
    bits: usize,
}

fn corrupt(kind: KeyKind) -> VaultError {
    VaultError::internal(format!("stored {} key material is corrupt", kind.name()))
}

impl Material {
    /// Parse the at-rest plaintext form.
    pub(crate) fn parse(kind: KeyKind, bytes: &[u8], crv: Option<&str>) -> Result<Material> {
        match kind {
            KeyKind::Oct => {
                let alg = match bytes.len() {
                    16 => &aead::AES_128_GCM,
                    24 => &aead::AES_192_GCM,
                    32 => &aead::AES_256_GCM,
                    _ => return Err(corrupt(kind)),
                };
                let gcm = LessSafeKey::new(UnboundKey::new(alg, bytes).map_err(|_| corrupt(kind))?);
                Ok(Material::Oct {
                    k: Zeroizing::new(bytes.to_vec()),
                    gcm,
                })
            }
            KeyKind::Rsa => {
                let pair = rsa::KeyPair::from_pkcs8(bytes).map_err(|_| corrupt(kind))?;
                let dec = PrivateDecryptingKey::from_pkcs8(bytes).map_err(|_| corrupt(kind))?;
                let public = dec.public_key();
                let bits = dec.key_size_bits();
                Ok(Material::Rsa(Box::new(RsaMaterial {
                    pair,
                    oaep_dec: OaepPrivateDecryptingKey::new(dec.clone())
                        .map_err(|_| corrupt(kind))?,
                    pkcs1_dec: Pkcs1PrivateDecryptingKey::new(dec).map_err(|_| corrupt(kind))?,
                    oaep_enc: OaepPublicEncryptingKey::new(public.clone())
                        .map_err(|_| corrupt(kind))?,
                    pkcs1_enc: Pkcs1PublicEncryptingKey::new(public).map_err(|_| corrupt(kind))?,
                    bits,
                })))
            }
            KeyKind::Ec => {
                let curve = Curve::parse(crv.unwrap_or(""))?;
                let pair = EcdsaKeyPair::from_pkcs8(curve.signing_alg(), bytes)
                    .map_err(|_| corrupt(kind))?;
                Ok(Material::Ec { pair, curve })
            }
        }
    }

    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            Material::Oct { .. } => KeyKind::Oct,
            Material::Rsa(_) => KeyKind::Rsa,
            Material::Ec { .. } => KeyKind::Ec,
        }
    }

    /// Key size in bits for oct and RSA.
    pub(crate) fn bits(&self) -> usize {
        match self {
            Material::Oct { k, .. } => k.len() * 8,
            Material::Rsa(r) => r.bits,
            Material::Ec { curve, .. } => curve.bits(),
        }
    }
}

/// The operations, for key_ops checks and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Encrypt,
    Decrypt,
    WrapKey,
    UnwrapKey,
    Sign,
    Verify,
}

impl Operation {
    pub(crate) fn key_op(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::WrapKey => "wrapKey",
            Operation::UnwrapKey => "unwrapKey",
            Operation::Sign => "sign",
            Operation::Verify => "verify",
        }
    }

    /// Operations that only use the public key of an asymmetric key.
    pub(crate) fn is_public(self, kind: KeyKind) -> bool {
        kind != KeyKind::Oct
            && matches!(
                self,
                Operation::Encrypt | Operation::WrapKey | Operation::Verify
            )
    }
}

/// The algorithms valid for an operation on a key.
pub(crate) fn valid_algs(op: Operation, m: &Material) -> Vec<&'static str> {
    match (op, m) {
        (Operation::Encrypt | Operation::Decrypt, Material::Rsa(_))
        | (Operation::WrapKey | Operation::UnwrapKey, Material::Rsa(_)) => {
            vec!["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"]
        }
        (Operation::Encrypt | Operation::Decrypt, Material::Oct { k, .. }) => match k.len() {
            16 => vec!["A128GCM", "A128CBC", "A128CBCPAD"],
            24 => vec!["A192GCM", "A192CBC", "A192CBCPAD"],
            _ => vec!["A256GCM", "A256CBC", "A256CBCPAD"],
        },
        (Operation::WrapKey | Operation::UnwrapKey, Material::Oct { k, .. }) => match k.len() {
            16 => vec!["A128KW", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"],
            24 => vec!["A192KW", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"],
            _ => vec!["A256KW", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"],
        },
        (Operation::Sign | Operation::Verify, Material::Rsa(_)) => {
            vec!["PS256", "PS384", "PS512", "RS256", "RS384", "RS512"]
        }
        (Operation::Sign | Operation::Verify, Material::Ec { curve, .. }) => vec![curve.jws_alg()],
        (Operation::Sign | Operation::Verify, Material::Oct { .. }) => vec![],
        (_, Material::Ec { .. }) => vec![],
    }
}

/// Check `alg` against [`valid_algs`].
pub(crate) fn check_alg(op: Operation, m: &Material, kty: &str, alg: &str) -> Result<()> {
    let valid = valid_algs(op, m);
    if valid.contains(&alg) {
        return Ok(());
    }
    if valid.is_empty() {
        return Err(VaultError::bad(format!(
            "operation {} is not supported for key type '{kty}'",
            op.key_op()
        )));
    }
    Err(VaultError::bad(format!(
        "algorithm '{}' is not valid for {} with key type '{kty}' ({} bits): expected one of {}",
        truncate(alg),
        op.key_op(),
        m.bits(),
        valid.join(", ")
    )))
}

/// Output of encrypt: ciphertext plus GCM iv and tag.
pub(crate) struct Encrypted {
    pub(crate) value: Vec<u8>,
    pub(crate) iv: Option<Vec<u8>>,
    pub(crate) tag: Option<Vec<u8>>,
}

fn decrypt_failed() -> VaultError {
    VaultError::bad("decryption failed: the ciphertext (or iv, tag, aad) does not match this key")
}

fn rsa_oaep_alg(alg: &str) -> Option<&'static rsa::OaepAlgorithm> {
    match alg {
        "RSA-OAEP" => Some(&OAEP_SHA1_MGF1SHA1),
        "RSA-OAEP-256" => Some(&OAEP_SHA256_MGF1SHA256),
        _ => None,
    }
}

impl Material {
    /// RSA encrypt (also used for wrapKey) or AES-GCM encrypt with a fresh 12-byte iv.
    pub(crate) fn encrypt(
        &self,
        alg: &str,
        plaintext: &[u8],
        iv: Option<&[u8]>,
        aad: Option<&[u8]>,
    ) -> Result<Encrypted> {
        match self {
            Material::Rsa(r) => {
                if iv.is_some() || aad.is_some() {
                    return Err(VaultError::bad(format!(
                        "iv and aad are not valid with {alg}"
                    )));
                }
                let mut out = vec![0u8; r.oaep_enc.ciphertext_size()];
                let len = if let Some(oaep) = rsa_oaep_alg(alg) {
                    let max = r.oaep_enc.max_plaintext_size(oaep);
                    if plaintext.len() > max {
                        return Err(VaultError::bad(format!(
                            "plaintext too long for {alg} with a {}-bit key: expected at most {max} bytes, found {}",
                            r.bits,
                            plaintext.len()
                        )));
                    }
                    r.oaep_enc
                        .encrypt(oaep, plaintext, &mut out, None)
                        .map_err(|_| lib_err("RSA-OAEP encryption"))?
                        .len()
                } else {
                    let max = r.pkcs1_enc.max_plaintext_size();
                    if plaintext.len() > max {
                        return Err(VaultError::bad(format!(
                            "plaintext too long for {alg} with a {}-bit key: expected at most {max} bytes, found {}",
                            r.bits,
                            plaintext.len()
                        )));
                    }
                    r.pkcs1_enc
                        .encrypt(plaintext, &mut out)
                        .map_err(|_| lib_err("RSA1_5 encryption"))?
                        .len()
                };
                out.truncate(len);
                Ok(Encrypted {
                    value: out,
                    iv: None,
                    tag: None,
                })
            }
            // `aad` is ignored with AES-CBC, as Key Vault does (CBC has no associated data; the
            // SDKs may send it regardless). It is never folded into the cipher.
            Material::Oct { k, .. } if alg.contains("CBC") => {
                let iv: [u8; 16] = match iv {
                    Some(iv) => iv.try_into().map_err(|_| {
                        VaultError::bad(format!(
                            "invalid iv for {alg}: expected 16 bytes, found {}",
                            iv.len()
                        ))
                    })?,
                    None => {
                        let mut b = [0u8; 16];
                        random_fill(&mut b)?;
                        b
                    }
                };
                let value = aes_cbc(k, alg.ends_with("PAD"), true, &iv, plaintext)?;
                Ok(Encrypted {
                    value: value.to_vec(),
                    iv: Some(iv.to_vec()),
                    tag: None,
                })
            }
            Material::Oct { gcm, .. } => {
                if iv.is_some() {
                    return Err(VaultError::bad(format!(
                        "iv must not be supplied for {alg} encryption: the vault generates a fresh 12-byte iv"
                    )));
                }
                let mut nonce = [0u8; 12];
                random_fill(&mut nonce)?;
                let mut buf = plaintext.to_vec();
                let tag = gcm
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad.unwrap_or(&[])),
                        &mut buf,
                    )
                    .map_err(|_| lib_err("AES-GCM encryption"))?;
                Ok(Encrypted {
                    value: buf,
                    iv: Some(nonce.to_vec()),
                    tag: Some(tag.as_ref().to_vec()),
                })
            }
            Material::Ec { .. } => Err(VaultError::bad("encryption is not supported for EC keys")),
        }
    }

    /// RSA decrypt (also unwrapKey) or AES-GCM decrypt.
    pub(crate) fn decrypt(
        &self,
        alg: &str,
        ciphertext: &[u8],
        iv: Option<&[u8]>,
        aad: Option<&[u8]>,
        tag: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Material::Rsa(r) => {
                let expected = r.bits / 8;
                if ciphertext.len() != expected {
                    return Err(VaultError::bad(format!(
                        "invalid ciphertext for {alg}: expected {expected} bytes for a {}-bit key, found {}",
                        r.bits,
                        ciphertext.len()
                    )));
                }
                let mut out = Zeroizing::new(vec![0u8; r.oaep_dec.min_output_size()]);
                let len = if let Some(oaep) = rsa_oaep_alg(alg) {
                    r.oaep_dec
                        .decrypt(oaep, ciphertext, &mut out, None)
                        .map_err(|_| decrypt_failed())?
                        .len()
                } else {
                    r.pkcs1_dec
                        .decrypt(ciphertext, &mut out)
                        .map_err(|_| decrypt_failed())?
                        .len()
                };
                out.truncate(len);
                Ok(out)
            }
            Material::Oct { k, .. } if alg.contains("CBC") => {
                let iv = iv.ok_or_else(|| {
                    VaultError::bad(format!("iv is required for {alg} decryption"))
                })?;
                let iv: [u8; 16] = iv.try_into().map_err(|_| {
                    VaultError::bad(format!(
                        "invalid iv for {alg}: expected 16 bytes, found {}",
                        iv.len()
                    ))
                })?;
                // `aad` ignored as in encrypt; a `tag` has no meaning for CBC and is refused.
                if tag.is_some() {
                    return Err(VaultError::bad(format!("tag is not valid with {alg}")));
                }
                aes_cbc(k, alg.ends_with("PAD"), false, &iv, ciphertext)
            }
            Material::Oct { gcm, .. } => {
                let iv = iv.ok_or_else(|| {
                    VaultError::bad(format!("iv is required for {alg} decryption"))
                })?;
                let tag = tag.ok_or_else(|| {
                    VaultError::bad(format!("tag is required for {alg} decryption"))
                })?;
                let nonce: [u8; 12] = iv.try_into().map_err(|_| {
                    VaultError::bad(format!(
                        "invalid iv for {alg}: expected 12 bytes, found {}",
                        iv.len()
                    ))
                })?;
                if tag.len() != 16 {
                    return Err(VaultError::bad(format!(
                        "invalid tag for {alg}: expected 16 bytes, found {}",
                        tag.len()
                    )));
                }
                let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len() + 16));
                buf.extend_from_slice(ciphertext);
                buf.extend_from_slice(tag);
                let len = gcm
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad.unwrap_or(&[])),
                        &mut buf,
                    )
                    .map_err(|_| decrypt_failed())?
                    .len();
                buf.truncate(len);
                Ok(buf)
            }
            Material::Ec { .. } => Err(VaultError::bad("decryption is not supported for EC keys")),
        }
    }

    /// Wrap: RSA encryption, or AES key wrap (RFC 3394 / RFC 5649) for oct keys.
    pub(crate) fn wrap(&self, alg: &str, key: &[u8]) -> Result<Vec<u8>> {
        match self {
            Material::Oct { k, .. } => {
                let padded = alg == "CKM_AES_KEY_WRAP_PAD";
                if padded {
                    if key.is_empty() {
                        return Err(VaultError::bad(format!(
                            "invalid key to wrap with {alg}: expected at least 1 byte, found 0"
                        )));
                    }
                } else if key.len() < 16 || !key.len().is_multiple_of(8) {
                    return Err(VaultError::bad(format!(
                        "invalid key to wrap with {alg}: expected a multiple of 8 bytes, at least 16, found {}",
                        key.len()
                    )));
                }
                aes_kw(k, key, padded, true)
            }
            _ => Ok(self.encrypt(alg, key, None, None)?.value),
        }
    }

    /// Unwrap.
    pub(crate) fn unwrap(&self, alg: &str, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            Material::Oct { k, .. } => {
                let padded = alg == "CKM_AES_KEY_WRAP_PAD";
                if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
                    return Err(VaultError::bad(format!(
                        "invalid wrapped key for {alg}: expected a multiple of 8 bytes, at least 16, found {}",
                        wrapped.len()
                    )));
                }
                aes_kw(k, wrapped, padded, false).map(Zeroizing::new)
            }
            _ => self.decrypt(alg, wrapped, None, None, None),
        }
    }

    /// Sign a client-supplied digest. ECDSA signatures are raw `r || s`.
    pub(crate) fn sign(&self, alg: &str, digest_bytes: &[u8]) -> Result<Vec<u8>> {
        let digest = import_digest(alg, digest_bytes)?;
        match self {
            Material::Rsa(r) => {
                let enc: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    _ => {
                        return Err(VaultError::bad(format!(
                            "algorithm '{}' is not valid for RSA signing",
                            truncate(alg)
                        )));
                    }
                };
                let mut sig = vec![0u8; r.pair.public_modulus_len()];
                r.pair
                    .sign_digest(enc, &digest, &mut sig)
                    .map_err(|_| lib_err("RSA signing"))?;
                Ok(sig)
            }
            Material::Ec { pair, .. } => {
                let sig = pair
                    .sign_digest(&digest)
                    .map_err(|_| lib_err("ECDSA signing"))?;
                Ok(sig.as_ref().to_vec())
            }
            Material::Oct { .. } => Err(VaultError::bad("signing is not supported for oct keys")),
        }
    }

    /// Verify a signature over a digest.
    pub(crate) fn verify(&self, alg: &str, digest_bytes: &[u8], sig: &[u8]) -> Result<bool> {
        let digest = import_digest(alg, digest_bytes)?;
        match self {
            Material::Rsa(r) => {
                let params: &'static signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => {
                        return Err(VaultError::bad(format!(
                            "algorithm '{}' is not valid for RSA verification",
                            truncate(alg)
                        )));
                    }
                };
                let pk = UnparsedPublicKey::new(params, r.pair.public_key().as_ref());
                Ok(pk.verify_digest(&digest, sig).is_ok())
            }
            Material::Ec { pair, curve } => {
                let alg = curve.verification_alg();
                let pk = UnparsedPublicKey::new(alg, pair.public_key().as_ref());
                Ok(pk.verify_digest(&digest, sig).is_ok())
            }
            Material::Oct { .. } => Err(VaultError::bad(
                "verification is not supported for oct keys",
            )),
        }
    }

    /// The public JWK parts (for a key restored or recovered from the at-rest form).
    pub(crate) fn public_jwk(&self) -> Result<PublicJwk> {
        match self {
            Material::Oct { .. } => Ok(PublicJwk::default()),
            Material::Rsa(r) => Ok(rsa_public(&r.pair)),
            Material::Ec { pair, curve } => ec_public(pair, *curve),
        }
    }
}

fn import_digest(alg: &str, digest_bytes: &[u8]) -> Result<digest::Digest> {
    let (dalg, len): (&'static digest::Algorithm, usize) = match alg {
        "RS256" | "PS256" | "ES256" | "ES256K" => (&digest::SHA256, 32),
        "RS384" | "PS384" | "ES384" => (&digest::SHA384, 48),
        "RS512" | "PS512" | "ES512" => (&digest::SHA512, 64),
        other => {
            return Err(VaultError::bad(format!(
                "invalid signature algorithm: expected one of PS256, PS384, PS512, RS256, RS384, RS512, ES256, ES384, ES512, ES256K, found '{}'",
                truncate(other)
            )));
        }
    };
    if digest_bytes.len() != len {
        return Err(VaultError::bad(format!(
            "invalid digest for {alg}: expected {len} bytes, found {}",
            digest_bytes.len()
        )));
    }
    digest::Digest::import_less_safe(digest_bytes, dalg).map_err(|_| lib_err("digest import"))
}

/// AES key wrap / unwrap (RFC 3394, or RFC 5649 when `padded`).
fn aes_kw(k: &[u8], input: &[u8], padded: bool, wrap: bool) -> Result<Vec<u8>> {
    let unwrap_failed = || {
        VaultError::bad(
            "unwrap failed: the wrapped key does not match this key (integrity check failed)",
        )
    };
    if k.len() == 24 {
        let kek = aes_kw::KekAes192::new(k.into());
        return match (padded, wrap) {
            (false, true) => kek.wrap_vec(input).map_err(|_| lib_err("AES key wrap")),
            (true, true) => kek
                .wrap_with_padding_vec(input)
                .map_err(|_| lib_err("AES key wrap")),
            (false, false) => kek.unwrap_vec(input).map_err(|_| unwrap_failed()),
            (true, false) => kek
                .unwrap_with_padding_vec(input)
                .map_err(|_| unwrap_failed()),
        };
    }
    let cipher = match k.len() {
        16 => &key_wrap::AES_128,
        32 => &key_wrap::AES_256,
        _ => return Err(corrupt(KeyKind::Oct)),
    };
    let kek = AesKek::new(cipher, k).map_err(|_| lib_err("AES key wrap setup"))?;
    let mut out = vec![0u8; input.len() + 16];
    let len = match (padded, wrap) {
        (false, true) => kek
            .wrap(input, &mut out)
            .map_err(|_| lib_err("AES key wrap"))?
            .len(),
        (true, true) => kek
            .wrap_with_padding(input, &mut out)
            .map_err(|_| lib_err("AES key wrap"))?
            .len(),
        (false, false) => kek
            .unwrap(input, &mut out)
            .map_err(|_| unwrap_failed())?
            .len(),
        (true, false) => kek
            .unwrap_with_padding(input, &mut out)
            .map_err(|_| unwrap_failed())?
            .len(),
    };
    out.truncate(len);
    Ok(out)
}

/// AES-CBC encrypt / decrypt, with PKCS#7 padding when `padded` (A*CBCPAD); without padding the
/// input must be a whole number of 16-byte blocks.
fn aes_cbc(
    k: &[u8],
    padded: bool,
    encrypt: bool,
    iv: &[u8; 16],
    input: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    use aws_lc_rs::cipher::{
        AES_128, AES_192, AES_256, DecryptingKey, DecryptionContext, EncryptingKey,
        EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
    };
    use aws_lc_rs::iv::FixedLength;
    let alg = match k.len() {
        16 => &AES_128,
        24 => &AES_192,
        32 => &AES_256,
        _ => return Err(corrupt(KeyKind::Oct)),
    };
    if !padded && !input.len().is_multiple_of(16) {
        return Err(VaultError::bad(format!(
            "invalid input for AES-CBC without padding: expected a multiple of 16 bytes, found {}",
            input.len()
        )));
    }
    if !encrypt && (input.is_empty() || !input.len().is_multiple_of(16)) {
        return Err(VaultError::bad(format!(
            "invalid AES-CBC ciphertext: expected a non-empty multiple of 16 bytes, found {}",
            input.len()
        )));
    }
    let key = || UnboundCipherKey::new(alg, k).map_err(|_| lib_err("AES-CBC key setup"));
    let mut buf = Zeroizing::new(input.to_vec());
    if encrypt {
        let ctx = EncryptionContext::Iv128(FixedLength::from(*iv));
        if padded {
            let ek = PaddedBlockEncryptingKey::cbc_pkcs7(key()?)
                .map_err(|_| lib_err("AES-CBC key setup"))?;
            ek.less_safe_encrypt(&mut *buf, ctx)
                .map_err(|_| lib_err("AES-CBC encryption"))?;
        } else {
            let ek = EncryptingKey::cbc(key()?).map_err(|_| lib_err("AES-CBC key setup"))?;
            ek.less_safe_encrypt(&mut buf, ctx)
                .map_err(|_| lib_err("AES-CBC encryption"))?;
        }
        Ok(buf)
    } else {
        let ctx = DecryptionContext::Iv128(FixedLength::from(*iv));
        let len = if padded {
            let dk = PaddedBlockDecryptingKey::cbc_pkcs7(key()?)
                .map_err(|_| lib_err("AES-CBC key setup"))?;
            dk.decrypt(&mut buf, ctx)
                .map_err(|_| decrypt_failed())?
                .len()
        } else {
            let dk = DecryptingKey::cbc(key()?).map_err(|_| lib_err("AES-CBC key setup"))?;
            dk.decrypt(&mut buf, ctx)
                .map_err(|_| decrypt_failed())?
                .len()
        };
        buf.truncate(len);
        Ok(buf)
    }
}
