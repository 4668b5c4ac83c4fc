//! How much work opening a PFX costs, checked before any of it is done.
//!
//! A PFX names its own key-derivation work: the MAC's and every encryption's iteration count,
//! and PBES2 may even ask for scrypt with any memory size. An importer (any Certificates Officer)
//! could otherwise send a small file that keeps a server core busy for minutes or makes it
//! allocate gigabytes. So before `p12-keystore` opens the file, this walks it: every iteration
//! count must be at most [`MAX_KDF_ITERATIONS`], all of them together at most
//! [`MAX_TOTAL_ITERATIONS`], scrypt is refused, and at most [`MAX_BAGS`] bags, nested at most
//! [`MAX_DEPTH`] deep. Bags inside an encrypted safe are only visible after decrypting it, so the
//! walk decrypts encrypted safes too (their cost already counted); a safe that does not decrypt
//! is left for `p12-keystore`, whose MAC check or decryption then reports the wrong password.
//!
//! Real files are far below the limits: OpenSSL 3 writes 2048 iterations, Windows 2000, Java
//! and this crate 10 000.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tagged};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::safe_bag::SafeBag;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::{CertError, Result};

/// Most iterations of one key derivation (about a second of CPU at worst in a release build).
pub const MAX_KDF_ITERATIONS: u64 = 1_000_000;
/// Most iterations of all key derivations of one file together.
pub const MAX_TOTAL_ITERATIONS: u64 = 4_000_000;
/// Most safe bags (keys, certificates, CRLs, secrets) in one file.
pub const MAX_BAGS: usize = 64;
/// Deepest nesting of safeContents bags.
pub const MAX_DEPTH: usize = 2;

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const PBE_SHA1_RC2_40: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const SAFE_CONTENTS_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.6");

fn der_err(what: &'static str) -> impl Fn(der::Error) -> CertError {
    move |e| CertError::Pfx(format!("expected DER {what}: {e}"))
}

#[derive(Default)]
struct Budget {
    iterations: u64,
    bags: usize,
}

impl Budget {
    fn spend(&mut self, iterations: u64, what: &str) -> Result<()> {
        if iterations == 0 || iterations > MAX_KDF_ITERATIONS {
            return Err(CertError::Pfx(format!(
                "expected 1 to {MAX_KDF_ITERATIONS} iterations for {what}, found {iterations}"
            )));
        }
        self.iterations = self.iterations.saturating_add(iterations);
        if self.iterations > MAX_TOTAL_ITERATIONS {
            return Err(CertError::Pfx(format!(
                "expected at most {MAX_TOTAL_ITERATIONS} key-derivation iterations in all, found more"
            )));
        }
        Ok(())
    }

    fn bag(&mut self) -> Result<()> {
        self.bags += 1;
        if self.bags > MAX_BAGS {
            return Err(CertError::Pfx(format!(
                "expected at most {MAX_BAGS} bags, found more"
            )));
        }
        Ok(())
    }
}

/// Check the work `pfx` asks for; see the module documentation.
pub(crate) fn check(pfx: &[u8], password: &str) -> Result<()> {
    let pfx = pkcs12::pfx::Pfx::from_der(pfx).map_err(der_err("a PFX"))?;
    let mut budget = Budget::default();
    if let Some(mac) = &pfx.mac_data {
        budget.spend(u64::try_from(mac.iterations).unwrap_or(0), "the MAC")?;
    }
    if pfx.auth_safe.content_type != DATA {
        // p12-keystore refuses it without deriving anything.
        return Ok(());
    }
    let auth_safe = content_octets(&pfx.auth_safe)?;
    let safes =
        Vec::<ContentInfo>::from_der(&auth_safe).map_err(der_err("an authenticated safe"))?;
    for safe in &safes {
        if safe.content_type == DATA {
            bags(&content_octets(safe)?, &mut budget, 0)?;
        } else if safe.content_type == ENCRYPTED_DATA {
            let ed =
                EncryptedData::from_der(&safe.content.to_der().map_err(der_err("encrypted data"))?)
                    .map_err(der_err("encrypted data"))?;
            let alg = &ed.enc_content_info.content_enc_alg;
            spend_for(alg, &mut budget, "an encrypted safe")?;
            if let Some(ct) = &ed.enc_content_info.encrypted_content
                && let Some(plain) = decrypt(alg, ct.as_bytes(), password)
            {
                bags(&plain, &mut budget, 0)?;
            }
        }
    }
    Ok(())
}

fn content_octets(ci: &ContentInfo) -> Result<Vec<u8>> {
    let der = ci.content.to_der().map_err(der_err("content"))?;
    Ok(OctetString::from_der(&der)
        .map_err(der_err("data content"))?
        .into_bytes())
}

fn bags(safe_contents: &[u8], budget: &mut Budget, depth: usize) -> Result<()> {
    let list = Vec::<SafeBag>::from_der(safe_contents).map_err(der_err("safe contents"))?;
    for bag in &list {
        budget.bag()?;
        // `pkcs12` decodes bagValue with its explicit [0] tag still on (and encodes without it).
        let wrapped =
            der::asn1::AnyRef::from_der(&bag.bag_value).map_err(der_err("a bag value"))?;
        let explicit_0 = der::Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N0,
        };
        if wrapped.tag() != explicit_0 {
            return Err(CertError::Pfx(format!(
                "expected a bag value tagged [0], found {}",
                wrapped.tag()
            )));
        }
        let value = wrapped.value();
        if bag.bag_id == SHROUDED_KEY_BAG {
            let epki = EncryptedPrivateKeyInfo::from_der(value)
                .map_err(der_err("an encrypted private key"))?;
            spend_for(&epki.encryption_algorithm, budget, "a private key")?;
        } else if bag.bag_id == SAFE_CONTENTS_BAG {
            if depth >= MAX_DEPTH {
                return Err(CertError::Pfx(format!(
                    "expected safe contents nested at most {MAX_DEPTH} deep, found deeper"
                )));
            }
            bags(value, budget, depth + 1)?;
        }
    }
    Ok(())
}

fn params_der(alg: &AlgorithmIdentifierOwned) -> Result<Vec<u8>> {
    alg.parameters
        .as_ref()
        .ok_or_else(|| CertError::Pfx(format!("expected parameters for {}, found none", alg.oid)))?
        .to_der()
        .map_err(der_err("encryption parameters"))
}

/// Count what decrypting with `alg` costs. Unknown schemes cost nothing here: p12-keystore refuses
/// them before deriving a key.
fn spend_for(alg: &AlgorithmIdentifierOwned, budget: &mut Budget, what: &str) -> Result<()> {
    if alg.oid == PBES2 {
        let der = params_der(alg)?;
        let params =
            pkcs5::pbes2::Parameters::from_der(&der).map_err(der_err("PBES2 parameters"))?;
        match params.kdf.pbkdf2() {
            Some(p) => budget.spend(u64::from(p.iteration_count), what),
            None => Err(CertError::Pfx(format!(
                "expected PBKDF2 key derivation for {what}, found scrypt"
            ))),
        }
    } else if alg.oid == PBE_SHA1_3DES || alg.oid == PBE_SHA1_RC2_40 {
        let params =
            Pkcs12PbeParams::from_der(&params_der(alg)?).map_err(der_err("PBE parameters"))?;
        let n = u64::try_from(params.iterations).unwrap_or(0);
        // Two derivations of that many iterations: the key and the IV.
        budget.spend(n, what)?;
        budget.spend(n, what)
    } else {
        Ok(())
    }
}

/// The plaintext of an encrypted safe, or `None` when it does not decrypt (wrong password:
/// reported by p12-keystore) or uses a scheme p12-keystore refuses anyway.
fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    data: &[u8],
    password: &str,
) -> Option<Zeroizing<Vec<u8>>> {
    let der = params_der(alg).ok()?;
    if alg.oid == PBES2 {
        let params = pkcs5::pbes2::Parameters::from_der(&der).ok()?;
        return params
            .decrypt(password.as_bytes(), data)
            .ok()
            .map(Zeroizing::new);
    }
    let params = Pkcs12PbeParams::from_der(&der).ok()?;
    let salt = params.salt.as_bytes();
    let derive = |id, len| {
        pkcs12::kdf::derive_key_utf8::<sha1::Sha1>(password, salt, id, params.iterations, len)
            .ok()
            .map(Zeroizing::new)
    };
    let iv = derive(pkcs12::kdf::Pkcs12KeyType::Iv, 8)?;
    if alg.oid == PBE_SHA1_3DES {
        let key = derive(pkcs12::kdf::Pkcs12KeyType::EncryptionKey, 24)?;
        let c = cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv).ok()?;
        c.decrypt_padded_vec_mut::<Pkcs7>(data)
            .ok()
            .map(Zeroizing::new)
    } else if alg.oid == PBE_SHA1_RC2_40 {
        let key = derive(pkcs12::kdf::Pkcs12KeyType::EncryptionKey, 5)?;
        let c = cbc::Decryptor::<rc2::Rc2>::new_from_slices(&key, &iv).ok()?;
        c.decrypt_padded_vec_mut::<Pkcs7>(data)
            .ok()
            .map(Zeroizing::new)
    } else {
        None
    }
}
