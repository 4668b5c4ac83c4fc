//! Step (d), the data half: sealed inputs decrypted with released keys into private directories,
//! outputs encrypted to their recipients, and the plaintext directories wiped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_envelope::{AesKeyWrap, BoxError, EncryptOptions, KeyUnwrapper, KeyWrapper};
use enclava_runtime::{Access, Manifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::EnclaveError;
use crate::keyhsm::ReleasedKey;

// ---------------------------------------------------------------------------------------------
// Inputs

/// `NAME=FILE`: the envelope FILE is decrypted to NAME inside the workload's input directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedInput {
    /// A file name (placed in the manifest's only read-only directory) or an absolute guest path
    /// inside a read-only directory.
    pub name: String,
    pub path: PathBuf,
}

impl SealedInput {
    /// Parses `NAME=FILE`.
    pub fn parse(s: &str) -> Result<SealedInput, EnclaveError> {
        let (name, path) = s.split_once('=').ok_or_else(|| {
            EnclaveError::bad(format!(
                "--input: expected NAME=FILE.enc, found {:?}",
                s.chars().take(200).collect::<String>()
            ))
        })?;
        if name.is_empty() || path.is_empty() {
            return Err(EnclaveError::bad(format!(
                "--input: expected a non-empty NAME and FILE in NAME=FILE, found {:?}",
                s.chars().take(200).collect::<String>()
            )));
        }
        Ok(SealedInput {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

fn file_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Where an input lands: (guest directory, file name).
pub fn input_target(manifest: &Manifest, name: &str) -> Result<(String, String), EnclaveError> {
    let ro: Vec<&String> = manifest
        .dirs
        .iter()
        .filter(|(_, a)| **a == Access::ReadOnly)
        .map(|(d, _)| d)
        .collect();
    if let Some(rest) = name.strip_prefix('/') {
        let (dir, file) = match rest.rsplit_once('/') {
            Some((d, f)) => (format!("/{d}"), f),
            None => ("/".to_string(), rest),
        };
        if !ro.iter().any(|d| **d == dir) || !file_name_ok(file) {
            return Err(EnclaveError::bad(format!(
                "--input {name}: expected a file directly inside a read-only directory of the manifest ({}), found another path",
                ro.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        return Ok((dir, file.to_string()));
    }
    if !file_name_ok(name) {
        return Err(EnclaveError::bad(format!(
            "--input {name:?}: expected a file name of [A-Za-z0-9._-] not starting with '.'"
        )));
    }
    match ro.as_slice() {
        [only] => Ok(((*only).clone(), name.to_string())),
        [] => Err(EnclaveError::bad(
            "--input: the manifest declares no read-only directory to place inputs in",
        )),
        _ => Err(EnclaveError::bad(format!(
            "--input {name}: the manifest has several read-only directories; name the target as /DIR/{name}"
        ))),
    }
}

/// The keys released to this run, as an envelope [`KeyUnwrapper`]: an envelope is opened only
/// when its `kid` is exactly a released key's id, the key is an AES key and `wrap_alg` is A256KW.
pub struct ReleasedKeys {
    keys: Vec<ReleasedKey>,
}

impl std::fmt::Debug for ReleasedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

impl ReleasedKeys {
    pub fn new(keys: Vec<ReleasedKey>) -> ReleasedKeys {
        ReleasedKeys { keys }
    }

    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// Drops (and so zeroizes) every released key.
    pub fn wipe(&mut self) {
        self.keys.clear();
    }
}

impl KeyUnwrapper for ReleasedKeys {
    fn unwrap_key(
        &self,
        kid: &str,
        alg: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BoxError> {
        let Some(k) = self.keys.iter().find(|k| k.kid == kid) else {
            return Err(format!(
                "the envelope's key {kid:?} was not released to this run (released: {})",
                self.kids().join(", ")
            )
            .into());
        };
        if !k.kty.starts_with("oct") {
            return Err(format!(
                "the envelope's key {kid:?} is of type {}: expected an AES (oct) key",
                k.kty
            )
            .into());
        }
        let mut kek = Zeroizing::new([0u8; 32]);
        if k.material.len() != 32 {
            return Err(format!(
                "released key {kid:?}: expected 32 bytes of AES-256 key, found {}",
                k.material.len()
            )
            .into());
        }
        kek.copy_from_slice(&k.material);
        AesKeyWrap::new(kid, kek).unwrap_key(kid, alg, wrapped)
    }
}

/// What one decrypted input was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    pub name: String,
    pub guest_path: String,
    /// The envelope's key id.
    pub kid: String,
    /// SHA-256 of the envelope file, hex.
    pub envelope_sha256: String,
    pub plaintext_bytes: u64,
}

/// A reader that hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Decrypts `input` into `host_dir/file`. A failure leaves no file behind.
pub fn decrypt_input(
    input: &SealedInput,
    guest_dir: &str,
    file: &str,
    host_dir: &Path,
    keys: &ReleasedKeys,
) -> Result<InputRecord, EnclaveError> {
    let f = File::open(&input.path).map_err(|e| {
        EnclaveError::bad(format!(
            "--input {}: cannot read {}: {e}",
            input.name,
            input.path.display()
        ))
    })?;
    let mut reader = HashingReader {
        inner: BufReader::with_capacity(1 << 20, f),
        hash: Sha256::new(),
    };
    let out_path = host_dir.join(file);
    let out = File::create(&out_path).map_err(|e| {
        EnclaveError::internal(format!("cannot create the private input file {file}: {e}"))
    })?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let res = enclava_envelope::decrypt(&mut reader, &mut w, keys, &mut |_| {});
    let flushed = w.flush();
    let summary = match (res, flushed) {
        (Ok(s), Ok(())) => s,
        (Err(e), _) => {
            drop(w);
            let _ = wipe_file(&out_path);
            return Err(EnclaveError::bad(format!(
                "--input {}: {} cannot be decrypted: {e}",
                input.name,
                input.path.display()
            )));
        }
        (Ok(_), Err(e)) => {
            drop(w);
            let _ = wipe_file(&out_path);
            return Err(EnclaveError::internal(format!("writing input {file}: {e}")));
        }
    };
    // Hash whatever trailing bytes the decoder did not need (there are none on success).
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(InputRecord {
        name: input.name.clone(),
        guest_path: if guest_dir == "/" {
            format!("/{file}")
        } else {
            format!("{guest_dir}/{file}")
        },
        kid: summary.header.kid().to_string(),
        envelope_sha256: hex::encode(reader.hash.finalize()),
        plaintext_bytes: summary.plaintext_bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// Recipients and outputs

/// Who an output is encrypted to (the manifest's `outputs` values, measured with the workload).
///
/// * `https://VAULT/keys/NAME/VERSION#spki=BASE64URL(SubjectPublicKeyInfo DER)`: a vault RSA key,
///   its public key pinned in the manifest; the envelope's kid is the key URL, so the recipient
///   decrypts with `enclava data decrypt` (the vault's unwrapKey).
/// * `https://VAULT/keys/NAME/VERSION`: the same, the public key read from the vault at run time
///   (the run's identity needs `keys/get` on it).
/// * a PEM `-----BEGIN PUBLIC KEY-----` (RSA): the envelope's kid is
///   `urn:enclava:spki-sha256:HEX`; the holder of the private key decrypts offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    VaultKey { kid: String, spki: Option<Vec<u8>> },
    Pem { spki: Vec<u8> },
}

impl Recipient {
    pub fn parse(s: &str) -> Result<Recipient, EnclaveError> {
        let t = s.trim();
        if enclava_evidence::pem::is_pem(t.as_bytes()) {
            let spki = enclava_evidence::pem::blocks_labelled(t.as_bytes(), &["PUBLIC KEY"])
                .map_err(|e| EnclaveError::bad(format!("recipient: the PEM public key: {e}")))?
                .into_iter()
                .next()
                .unwrap_or_default();
            check_rsa_spki(&spki)?;
            return Ok(Recipient::Pem { spki });
        }
        if t.starts_with("https://") {
            let (kid, frag) = match t.split_once('#') {
                Some((k, f)) => (k, Some(f)),
                None => (t, None),
            };
            let spki = match frag {
                None => None,
                Some(f) => {
                    let b = f.strip_prefix("spki=").ok_or_else(|| {
                        EnclaveError::bad(format!(
                            "recipient {kid}: expected #spki=BASE64URL after the key URL, found #{}",
                            f.chars().take(20).collect::<String>()
                        ))
                    })?;
                    let der = URL_SAFE_NO_PAD.decode(b).map_err(|_| {
                        EnclaveError::bad(format!("recipient {kid}: #spki is not base64url"))
                    })?;
                    check_rsa_spki(&der)?;
                    Some(der)
                }
            };
            if !kid.contains("/keys/") || kid.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
                return Err(EnclaveError::bad(format!(
                    "recipient: expected https://VAULT/keys/NAME/VERSION, found {:?}",
                    kid.chars().take(100).collect::<String>()
                )));
            }
            return Ok(Recipient::VaultKey {
                kid: kid.to_string(),
                spki,
            });
        }
        Err(EnclaveError::bad(format!(
            "recipient: expected a vault key URL (https://VAULT/keys/NAME/VERSION[#spki=...]) or a PEM public key, found {:?}",
            t.chars().take(60).collect::<String>()
        )))
    }

    /// The manifest string of a vault key with its public key pinned.
    pub fn vault_key_string(kid: &str, n: &[u8], e: &[u8]) -> Result<String, EnclaveError> {
        let spki = spki_from_components(n, e)?;
        Ok(format!("{kid}#spki={}", URL_SAFE_NO_PAD.encode(spki)))
    }
}

fn check_rsa_spki(der: &[u8]) -> Result<(), EnclaveError> {
    let k = PublicEncryptingKey::from_der(der).map_err(|_| {
        EnclaveError::bad("recipient: expected an RSA SubjectPublicKeyInfo, found something else")
    })?;
    if k.key_size_bits() < 2048 {
        return Err(EnclaveError::bad(format!(
            "recipient: expected an RSA key of at least 2048 bits, found {}",
            k.key_size_bits()
        )));
    }
    Ok(())
}

/// SubjectPublicKeyInfo DER of an RSA public key given by modulus and exponent.
pub fn spki_from_components(n: &[u8], e: &[u8]) -> Result<Vec<u8>, EnclaveError> {
    let c = PublicKeyComponents { n, e };
    let der = c
        .as_der()
        .map_err(|_| EnclaveError::bad("recipient: n and e do not form an RSA public key"))?;
    Ok(der.as_ref().to_vec())
}

/// A local RSA-OAEP-256 key wrapper for one recipient.
pub struct RsaOaepWrapper {
    kid: String,
    key: OaepPublicEncryptingKey,
}

impl RsaOaepWrapper {
    pub const ALG: &'static str = "RSA-OAEP-256";

    pub fn new(kid: String, spki: &[u8]) -> Result<RsaOaepWrapper, EnclaveError> {
        let public = PublicEncryptingKey::from_der(spki)
            .map_err(|_| EnclaveError::bad("recipient: unusable RSA public key"))?;
        let key = OaepPublicEncryptingKey::new(public)
            .map_err(|_| EnclaveError::bad("recipient: RSA key not usable for OAEP"))?;
        Ok(RsaOaepWrapper { kid, key })
    }

    /// The envelope kid of a PEM recipient.
    pub fn pem_kid(spki: &[u8]) -> String {
        format!(
            "urn:enclava:spki-sha256:{}",
            hex::encode(Sha256::digest(spki))
        )
    }
}

impl KeyWrapper for RsaOaepWrapper {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn alg(&self) -> &str {
        Self::ALG
    }
    fn wrap_key(&self, dek: &[u8]) -> Result<Vec<u8>, BoxError> {
        let mut out = vec![0u8; self.key.ciphertext_size()];
        let n = self
            .key
            .encrypt(&OAEP_SHA256_MGF1SHA256, dek, &mut out, None)
            .map_err(|_| "RSA-OAEP-256 encryption failed")?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

/// What one encrypted output was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub guest_path: String,
    /// The envelope file written.
    pub file: String,
    /// The recipient's key id as recorded in the envelope.
    pub recipient_kid: String,
    pub envelope_sha256: String,
    pub plaintext_bytes: u64,
}

/// A writer that hashes what passes through.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The envelope file name of an output: its base name plus `.enc`.
pub fn output_file_name(guest_path: &str) -> String {
    let base = guest_path.rsplit('/').next().unwrap_or(guest_path);
    format!("{base}.enc")
}

/// Encrypts the plaintext `src` to `wrapper` into `out_dir/<name>` (atomically: a temporary file
/// renamed on success).
pub fn encrypt_output(
    guest_path: &str,
    src: &Path,
    wrapper: &dyn KeyWrapper,
    out_dir: &Path,
) -> Result<OutputRecord, EnclaveError> {
    let f = File::open(src).map_err(|e| {
        EnclaveError::Workload(format!(
            "the workload did not produce its declared output {guest_path}: {e}"
        ))
    })?;
    let name = output_file_name(guest_path);
    let dest = out_dir.join(&name);
    let tmp = out_dir.join(format!(".{name}.partial-{}", std::process::id()));
    let out = File::create(&tmp).map_err(|e| {
        EnclaveError::bad(format!(
            "cannot create {} in the output directory: {e}",
            tmp.display()
        ))
    })?;
    let mut w = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, out),
        hash: Sha256::new(),
    };
    let mut metadata = BTreeMap::new();
    metadata.insert("enclava.output".to_string(), guest_path.to_string());
    let opts = EncryptOptions {
        metadata,
        ..EncryptOptions::default()
    };
    let res = enclava_envelope::encrypt(BufReader::new(f), &mut w, wrapper, &opts, &mut |_| {})
        .and_then(|s| {
            w.flush()
                .map(|()| s)
                .map_err(enclava_envelope::EnvelopeError::from_io)
        });
    let summary = match res {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(EnclaveError::internal(format!(
                "encrypting output {guest_path}: {e}"
            )));
        }
    };
    std::fs::rename(&tmp, &dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        EnclaveError::bad(format!("cannot write {}: {e}", dest.display()))
    })?;
    Ok(OutputRecord {
        guest_path: guest_path.to_string(),
        file: name,
        recipient_kid: wrapper.kid().to_string(),
        envelope_sha256: hex::encode(w.hash.finalize()),
        plaintext_bytes: summary.plaintext_bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// Private directories

/// A private directory for plaintext (mode 0700), on a memory file system when one is available
/// (`/dev/shm`), wiped (files overwritten with zeros, then removed) when dropped.
pub struct PrivateDir {
    dir: Option<tempfile::TempDir>,
}

impl PrivateDir {
    pub fn new(root: Option<&Path>) -> Result<PrivateDir, EnclaveError> {
        let shm = Path::new("/dev/shm");
        let base: PathBuf = match root {
            Some(r) => r.to_path_buf(),
            None if shm.is_dir() => shm.to_path_buf(),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("enclava-run-")
            .tempdir_in(&base)
            .map_err(|e| {
                EnclaveError::internal(format!(
                    "cannot create a private directory in {}: {e}",
                    base.display()
                ))
            })?;
        Ok(PrivateDir { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// Overwrites every file with zeros and removes the directory.
    pub fn wipe(mut self) -> Result<(), EnclaveError> {
        self.wipe_inner()
    }

    fn wipe_inner(&mut self) -> Result<(), EnclaveError> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        let r = wipe_tree(dir.path(), 0);
        let closed = dir.close();
        r?;
        closed.map_err(|e| EnclaveError::internal(format!("removing a private directory: {e}")))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = self.wipe_inner();
    }
}

fn wipe_tree(dir: &Path, depth: usize) -> Result<(), EnclaveError> {
    if depth > 64 {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir)
        .map_err(|e| EnclaveError::internal(format!("wiping {}: {e}", dir.display())))?;
    for entry in rd.flatten() {
        let p = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => wipe_tree(&p, depth + 1)?,
            Ok(t) if t.is_file() => wipe_file(&p)?,
            _ => {}
        }
    }
    Ok(())
}

fn wipe_file(p: &Path) -> Result<(), EnclaveError> {
    let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(p) {
        let zeros = vec![0u8; 1 << 16];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            if f.write_all(zeros.get(..n).unwrap_or_default()).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = f.sync_all();
    }
    std::fs::remove_file(p)
        .map_err(|e| EnclaveError::internal(format!("wiping {}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn manifest(dirs: &[(&str, Access)]) -> Manifest {
        Manifest {
            name: "w".into(),
            module_sha256: "0".repeat(64),
            args: vec![],
            env: Default::default(),
            dirs: dirs.iter().map(|(d, a)| (d.to_string(), *a)).collect(),
            keys: BTreeSet::new(),
            outputs: Default::default(),
            limits: enclava_runtime::Limits {
                memory_bytes: 1 << 20,
                time_ms: 1000,
            },
        }
    }

    #[test]
    fn inputs_land_in_read_only_dirs_only() {
        let m = manifest(&[("/input", Access::ReadOnly), ("/output", Access::ReadWrite)]);
        assert_eq!(
            input_target(&m, "transactions.csv").unwrap(),
            ("/input".into(), "transactions.csv".into())
        );
        assert_eq!(
            input_target(&m, "/input/a.csv").unwrap(),
            ("/input".into(), "a.csv".into())
        );
        for bad in [
            "/output/a",
            "../x",
            ".hidden",
            "a/b",
            "/input/../x",
            "/input/sub/x",
            "",
        ] {
            assert!(input_target(&m, bad).is_err(), "{bad}");
        }
        let two = manifest(&[("/a", Access::ReadOnly), ("/b", Access::ReadOnly)]);
        assert!(input_target(&two, "x").is_err());
        assert!(input_target(&two, "/b/x").is_ok());
        assert!(SealedInput::parse("x=y").is_ok());
        assert!(SealedInput::parse("x").is_err());
        assert!(SealedInput::parse("=y").is_err());
    }

    #[test]
    fn recipients_parse() {
        let keys = crate::keys::EphemeralKeys::generate().unwrap();
        let spki = keys.wrapping_public_der().to_vec();
        let s = format!(
            "https://v:1/keys/r/abc#spki={}",
            URL_SAFE_NO_PAD.encode(&spki)
        );
        assert_eq!(
            Recipient::parse(&s).unwrap(),
            Recipient::VaultKey {
                kid: "https://v:1/keys/r/abc".into(),
                spki: Some(spki.clone())
            }
        );
        assert!(matches!(
            Recipient::parse("https://v:1/keys/r/abc").unwrap(),
            Recipient::VaultKey { spki: None, .. }
        ));
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        assert_eq!(Recipient::parse(&pem).unwrap(), Recipient::Pem { spki });
        for bad in [
            "analyst",
            "https://v/x",
            "https://v/keys/r/1#k=1",
            "https://v/keys/r/1#spki=AAAA",
        ] {
            assert!(Recipient::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn released_keys_open_only_their_envelopes() {
        let kid = "https://v/keys/data/1";
        let mut kek = Zeroizing::new([0u8; 32]);
        kek[0] = 7;
        let wrapper = AesKeyWrap::new(kid, kek.clone());
        let mut env = Vec::new();
        enclava_envelope::encrypt(
            &b"secret rows"[..],
            &mut env,
            &wrapper,
            &EncryptOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let envf = dir.path().join("in.enc");
        std::fs::write(&envf, &env).unwrap();
        let input = SealedInput {
            name: "t.csv".into(),
            path: envf.clone(),
        };
        let out = tempfile::tempdir().unwrap();

        let keys = ReleasedKeys::new(vec![ReleasedKey {
            kid: kid.into(),
            kty: "oct-HSM".into(),
            material: Zeroizing::new(kek.to_vec()),
        }]);
        let rec = decrypt_input(&input, "/input", "t.csv", out.path(), &keys).unwrap();
        assert_eq!(
            std::fs::read(out.path().join("t.csv")).unwrap(),
            b"secret rows"
        );
        assert_eq!(rec.guest_path, "/input/t.csv");
        assert_eq!(rec.kid, kid);
        assert_eq!(rec.envelope_sha256, hex::encode(Sha256::digest(&env)));
        assert_eq!(rec.plaintext_bytes, 11);

        // Another released key (same bytes, other kid): refused, no file left.
        let other = ReleasedKeys::new(vec![ReleasedKey {
            kid: "https://v/keys/other/1".into(),
            kty: "oct".into(),
            material: Zeroizing::new(kek.to_vec()),
        }]);
        let e = decrypt_input(&input, "/input", "u.csv", out.path(), &other).unwrap_err();
        assert!(e.to_string().contains("not released"), "{e}");
        assert!(!out.path().join("u.csv").exists());
    }

    #[test]
    fn outputs_are_encrypted_to_the_recipient_and_dirs_wiped() {
        let keys = crate::keys::EphemeralKeys::generate().unwrap();
        let spki = keys.wrapping_public_der();
        let pd = PrivateDir::new(None).unwrap();
        let src = pd.path().join("summary.json");
        std::fs::write(&src, b"{\"flagged\":3}").unwrap();
        let out = tempfile::tempdir().unwrap();
        let w = RsaOaepWrapper::new("https://v/keys/r/1".into(), spki).unwrap();
        let rec = encrypt_output("/output/summary.json", &src, &w, out.path()).unwrap();
        assert_eq!(rec.file, "summary.json.enc");
        let env = std::fs::read(out.path().join("summary.json.enc")).unwrap();
        assert_eq!(rec.envelope_sha256, hex::encode(Sha256::digest(&env)));
        let h = enclava_envelope::read_header(&mut &env[..]).unwrap();
        assert_eq!(h.kid(), "https://v/keys/r/1");
        assert_eq!(h.wrap_alg(), "RSA-OAEP-256");
        // The private key holder opens it.
        struct Priv<'a>(&'a crate::keys::EphemeralKeys);
        impl KeyUnwrapper for Priv<'_> {
            fn unwrap_key(
                &self,
                _k: &str,
                _a: &str,
                w: &[u8],
            ) -> Result<Zeroizing<Vec<u8>>, BoxError> {
                Ok(self.0.oaep_decrypt(crate::keys::OaepHash::Sha256, w)?)
            }
        }
        let mut pt = Vec::new();
        enclava_envelope::decrypt(&env[..], &mut pt, &Priv(&keys), &mut |_| {}).unwrap();
        assert_eq!(pt, b"{\"flagged\":3}");
        // A missing output is the workload's failure.
        let e =
            encrypt_output("/output/none", &pd.path().join("none"), &w, out.path()).unwrap_err();
        assert_eq!(e.exit_code(), 4);

        let path = pd.path().to_path_buf();
        std::fs::create_dir(path.join("sub")).unwrap();
        std::fs::write(path.join("sub/x"), b"plain").unwrap();
        pd.wipe().unwrap();
        assert!(!path.exists());
    }
}
