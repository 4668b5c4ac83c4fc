//! TLS material: an operator-provided certificate, or a local CA and server certificate generated
//! on first start (rcgen) and kept in the data directory.
//!
//! Files in the data directory: `ca.pem` (the CA certificate clients trust), `tls-cert.pem`
//! (server certificate followed by the CA) and `tls-key.pem` (0600). The CA's private key is NOT
//! among them: it is a service key sealed in the vault's store ([`crate::service_keys`]); older
//! versions wrote it to `ca-key.pem`, which the first unseal migrates and deletes.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

pub const CA_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const CERT_FILE: &str = "tls-cert.pem";
pub const KEY_FILE: &str = "tls-key.pem";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("{path}: expected {expected}, found {found}")]
    Pem {
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TlsError + 'a {
    move |source| TlsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`ensure_tls`] produced.
pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    /// The CA certificate file clients should trust (`None` with an operator certificate).
    pub ca_path: Option<PathBuf>,
    /// SHA-256 fingerprint of the CA certificate (DER), colon-separated upper-case hex.
    pub ca_fingerprint: Option<String>,
    /// True when the CA was created by this call.
    pub created_ca: bool,
    /// The local CA's private key (PKCS#8 DER) while it is not sealed yet (created by this call,
    /// or read from a legacy `ca-key.pem`): the next unseal seals it.
    pub ca_key_unsealed: Option<Zeroizing<Vec<u8>>>,
    /// The served certificate does not match the host names (or is missing) and the CA key is
    /// sealed: re-issue it after unseal.
    pub reissue_pending: bool,
    /// Swap the served certificate without a restart.
    pub cert_swap: Arc<CertSwap>,
}

/// Write `data` to `path` with mode 0600 (owner read/write only), replacing any existing file
/// atomically (temporary file + rename).
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io_err("cannot create", &tmp))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io_err("cannot set permissions on", &tmp))?;
        }
        f.write_all(data).map_err(io_err("cannot write", &tmp))?;
        f.sync_all().map_err(io_err("cannot sync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err("cannot rename into place", path))
}

fn write_public(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data).map_err(io_err("cannot write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("cannot rename into place", path))
}

/// SHA-256 fingerprint of DER bytes, `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let d = Sha256::digest(der);
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Enclava");
    dn.push(DnType::CommonName, "Enclava local CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let (y, m, d) = today();
    p.not_before = rcgen::date_time_ymd(y - 1, m, d.min(28));
    p.not_after = rcgen::date_time_ymd(y + 20, m, d.min(28));
    p
}

fn today() -> (i32, u8, u8) {
    use chrono::Datelike;
    let now = chrono::Utc::now().date_naive();
    (
        now.year(),
        u8::try_from(now.month()).unwrap_or(1),
        u8::try_from(now.day()).unwrap_or(1),
    )
}

fn server_params(hostnames: &[String]) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Enclava");
    dn.push(
        DnType::CommonName,
        hostnames
            .first()
            .cloned()
            .unwrap_or_else(|| "localhost".to_string()),
    );
    p.distinguished_name = dn;
    let mut sans = Vec::new();
    for h in hostnames {
        let h = h.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = h.parse::<IpAddr>() {
            sans.push(SanType::IpAddress(ip));
        } else {
            let name = h.to_string().try_into().map_err(|e: rcgen::Error| {
                TlsError::Generate(format!("host name {h:?} is not a valid DNS name: {e}"))
            })?;
            sans.push(SanType::DnsName(name));
        }
    }
    p.subject_alt_names = sans;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let (y, m, d) = today();
    p.not_before = rcgen::date_time_ymd(y - 1, m, d.min(28));
    p.not_after = rcgen::date_time_ymd(y + 2, m, d.min(28));
    Ok(p)
}

/// Make sure TLS material exists and build the rustls configuration.
///
/// With `operator` (cert, key) PEM files, those are used as they are. Otherwise the local CA's
/// certificate (`ca.pem`) and a server certificate for `hostnames` are kept in `data_dir`; the
/// CA's private key is a service key (see [`crate::service_keys`]): it is never written to the
/// data directory, only sealed in the vault's store, because whoever holds it can mint release
/// and attestation-signer certificates that clients trust.
///
/// - No `ca.pem` (first start), or a `ca.pem` whose key is neither sealed (`ca_key_sealed`) nor in
///   a legacy `ca-key.pem`: a new CA is created; its key is returned in
///   [`TlsMaterial::ca_key_unsealed`] and stays in memory until the next unseal seals it. A
///   restart before that unseal loses it, and the next start creates a fresh CA (clients then
///   trust the new `ca.pem`): harmless, since nothing was issued under the lost one that outlives
///   it.
/// - A legacy `ca-key.pem` (written by older versions): read into memory the same way; the next
///   unseal seals it and deletes the file.
/// - The CA key sealed: the existing server certificate is served; when the host names changed
///   (or it is missing) it is re-issued after unseal ([`TlsMaterial::reissue_pending`]) and
///   swapped in through [`TlsMaterial::cert_swap`] without a restart.
pub fn ensure_tls(
    data_dir: &Path,
    hostnames: &[String],
    operator: Option<&(PathBuf, PathBuf)>,
    ca_key_sealed: bool,
) -> Result<TlsMaterial, TlsError> {
    if let Some((cert, key)) = operator {
        let chain = fs::read(cert).map_err(io_err("cannot read certificate", cert))?;
        let key_pem =
            Zeroizing::new(fs::read(key).map_err(io_err("cannot read private key", key))?);
        let (server_config, cert_swap) = rustls_config(&chain, cert, &key_pem, key)?;
        return Ok(TlsMaterial {
            server_config,
            ca_path: None,
            ca_fingerprint: None,
            created_ca: false,
            ca_key_unsealed: None,
            reissue_pending: false,
            cert_swap,
        });
    }
    let ca_path = data_dir.join(CA_FILE);
    let ca_key_path = data_dir.join(CA_KEY_FILE);
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);

    let mut created_ca = false;
    let mut ca_key_unsealed = None;
    let served_exists = cert_path.exists() && key_path.exists();
    let issuer = if ca_path.exists() && ca_key_path.exists() {
        // Legacy layout: the CA key in clear on disk. Keep it in memory until the next unseal
        // moves it into the sealed store (and deletes the file).
        let key_pem = Zeroizing::new(
            fs::read_to_string(&ca_key_path).map_err(io_err("cannot read", &ca_key_path))?,
        );
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Pem {
            path: ca_key_path.clone(),
            expected: "a PEM private key",
            found: e.to_string(),
        })?;
        ca_key_unsealed = Some(Zeroizing::new(key.serialize_der()));
        let cert = ca_issuer(&key)?;
        Some((cert, key))
    } else if ca_path.exists() && ca_key_sealed && served_exists {
        // The CA key is sealed: serve what is there until unseal.
        None
    } else {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let cert = ca_issuer(&key)?;
        write_public(&ca_path, cert.pem().as_bytes())?;
        // A stale key file of an older CA is useless now and must not linger.
        let _ = fs::remove_file(&ca_key_path);
        ca_key_unsealed = Some(Zeroizing::new(key.serialize_der()));
        created_ca = true;
        // Any old server certificate was issued by a different CA.
        let _ = fs::remove_file(&cert_path);
        Some((cert, key))
    };
    let ca_pem = fs::read(&ca_path).map_err(io_err("cannot read", &ca_path))?;
    let ca_der = first_cert_der(&ca_pem, &ca_path)?;

    let mut reissue_pending = false;
    if !server_cert_current(data_dir, hostnames) {
        match &issuer {
            Some((ca_cert, ca_key)) => {
                issue_server_cert(data_dir, hostnames, ca_cert, ca_key, &ca_pem)?
            }
            None => reissue_pending = true,
        }
    }
    let chain = fs::read(&cert_path).map_err(io_err("cannot read", &cert_path))?;
    let key_pem = Zeroizing::new(fs::read(&key_path).map_err(io_err("cannot read", &key_path))?);
    let (server_config, cert_swap) = rustls_config(&chain, &cert_path, &key_pem, &key_path)?;
    Ok(TlsMaterial {
        server_config,
        ca_fingerprint: Some(fingerprint(&ca_der)),
        ca_path: Some(ca_path),
        created_ca,
        ca_key_unsealed,
        reissue_pending,
        cert_swap,
    })
}

/// The local CA as an rcgen issuer: the same subject and key usages as `ca.pem`, so the
/// certificates it signs carry that file's issuer name and key identifier.
pub fn ca_issuer(key: &KeyPair) -> Result<rcgen::Certificate, TlsError> {
    ca_params()
        .self_signed(key)
        .map_err(|e| TlsError::Generate(e.to_string()))
}

const HOSTS_FILE: &str = "tls-hosts.txt";

/// Whether the server certificate in `data_dir` exists and was issued for `hostnames`.
pub fn server_cert_current(data_dir: &Path, hostnames: &[String]) -> bool {
    let hosts_match = fs::read_to_string(data_dir.join(HOSTS_FILE))
        .map(|s| s.trim() == hostnames.join(","))
        .unwrap_or(false);
    hosts_match && data_dir.join(CERT_FILE).exists() && data_dir.join(KEY_FILE).exists()
}

/// Issue a new server certificate (and key) for `hostnames` under the local CA and write it to
/// `data_dir` (`tls-cert.pem` with the CA appended, `tls-key.pem` 0600, `tls-hosts.txt`).
pub fn issue_server_cert(
    data_dir: &Path,
    hostnames: &[String],
    ca_cert: &rcgen::Certificate,
    ca_key: &KeyPair,
    ca_pem: &[u8],
) -> Result<(), TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = server_params(hostnames)?
        .signed_by(&key, ca_cert, ca_key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(
        &data_dir.join(KEY_FILE),
        Zeroizing::new(key.serialize_pem()).as_bytes(),
    )?;
    let mut chain = cert.pem();
    chain.push_str(&String::from_utf8_lossy(ca_pem));
    write_public(&data_dir.join(CERT_FILE), chain.as_bytes())?;
    write_public(&data_dir.join(HOSTS_FILE), hostnames.join(",").as_bytes())
}

/// The certificate the server presents, replaceable while it runs (a re-issue after unseal).
#[derive(Debug)]
pub struct CertSwap {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertSwap {
    /// Serve the certificate and key now in `data_dir` (after [`issue_server_cert`]).
    pub fn reload(&self, data_dir: &Path) -> Result<(), TlsError> {
        let cert_path = data_dir.join(CERT_FILE);
        let key_path = data_dir.join(KEY_FILE);
        let chain = fs::read(&cert_path).map_err(io_err("cannot read", &cert_path))?;
        let key_pem =
            Zeroizing::new(fs::read(&key_path).map_err(io_err("cannot read", &key_path))?);
        let ck = certified_key(&chain, &cert_path, &key_pem, &key_path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ck);
        Ok(())
    }
}

impl ResolvesServerCert for CertSwap {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

pub fn first_cert_der(pem: &[u8], path: &Path) -> Result<Vec<u8>, TlsError> {
    // The project's one PEM reader (explanatory text tolerated, broken blocks refused).
    let certs = enclava_evidence::pem::certificates(pem).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        expected: "a PEM certificate",
        found: e.to_string(),
    })?;
    certs.into_iter().next().ok_or_else(|| TlsError::Pem {
        path: path.to_path_buf(),
        expected: "a PEM certificate",
        found: "no CERTIFICATE block".into(),
    })
}

/// The process-wide rustls crypto provider (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certified_key(
    chain_pem: &[u8],
    chain_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    use enclava_evidence::pem::{self, KeyKind, PemError};
    use rustls::pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    };
    let certs: Vec<CertificateDer<'static>> = match pem::certificates(chain_pem) {
        Ok(c) => c.into_iter().map(CertificateDer::from).collect(),
        Err(PemError::NoBlock | PemError::NoBlockOfKind { .. }) => {
            return Err(TlsError::Pem {
                path: chain_path.to_path_buf(),
                expected: "at least one PEM certificate",
                found: "none".into(),
            });
        }
        Err(e) => {
            return Err(TlsError::Pem {
                path: chain_path.to_path_buf(),
                expected: "PEM certificates",
                found: e.to_string(),
            });
        }
    };
    let (kind, mut der) = pem::private_key(key_pem).map_err(|e| TlsError::Pem {
        path: key_path.to_path_buf(),
        expected: "a PEM private key",
        found: match e {
            PemError::NoBlock | PemError::NoBlockOfKind { .. } => "no PRIVATE KEY block".into(),
            e => e.to_string(),
        },
    })?;
    // rustls takes the key bytes over, as it does from its own PEM reader.
    let der = std::mem::take(&mut *der);
    let key = match kind {
        KeyKind::Pkcs8 => PrivateKeyDer::from(PrivatePkcs8KeyDer::from(der)),
        KeyKind::Pkcs1 => PrivateKeyDer::from(PrivatePkcs1KeyDer::from(der)),
        KeyKind::Sec1 => PrivateKeyDer::from(PrivateSec1KeyDer::from(der)),
    };
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Rustls(e.to_string()))
}

fn rustls_config(
    chain_pem: &[u8],
    chain_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Arc<CertSwap>), TlsError> {
    let swap = Arc::new(CertSwap {
        current: RwLock::new(Arc::new(certified_key(
            chain_pem, chain_path, key_pem, key_path,
        )?)),
    });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(swap.clone());
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), swap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let a = ensure_tls(dir.path(), &hosts, None, false).unwrap();
        assert!(a.created_ca);
        assert!(!a.reissue_pending);
        assert!(a.ca_key_unsealed.is_some(), "the new CA key is handed over");
        assert!(
            !dir.path().join(CA_KEY_FILE).exists(),
            "the CA key is never written to the data directory"
        );
        let fp = a.ca_fingerprint.clone().unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The CA key sealed: reused as it is, nothing in clear.
        let b = ensure_tls(dir.path(), &hosts, None, true).unwrap();
        assert!(!b.created_ca);
        assert!(b.ca_key_unsealed.is_none());
        assert_eq!(b.ca_fingerprint.unwrap(), fp);
        // New host names while the CA key is sealed: the old certificate is served until unseal.
        let before = fs::read(dir.path().join(CERT_FILE)).unwrap();
        let c = ensure_tls(dir.path(), &["vault.example".to_string()], None, true).unwrap();
        assert!(c.reissue_pending);
        assert_eq!(c.ca_fingerprint.unwrap(), fp);
        assert_eq!(fs::read(dir.path().join(CERT_FILE)).unwrap(), before);
        // Never sealed (a restart before the first unseal): a fresh CA.
        let d = ensure_tls(dir.path(), &hosts, None, false).unwrap();
        assert!(d.created_ca);
        assert_ne!(d.ca_fingerprint.unwrap(), fp);
    }

    #[test]
    fn a_legacy_ca_key_file_is_read_and_reissues_for_new_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_tls(dir.path(), &["localhost".to_string()], None, false).unwrap();
        let pkcs8 = a.ca_key_unsealed.unwrap();
        let key = KeyPair::try_from(pkcs8.as_slice()).unwrap();
        write_private(
            &dir.path().join(CA_KEY_FILE),
            key.serialize_pem().as_bytes(),
        )
        .unwrap();
        let before = fs::read(dir.path().join(CERT_FILE)).unwrap();
        let b = ensure_tls(dir.path(), &["vault.example".to_string()], None, true).unwrap();
        assert!(!b.created_ca && !b.reissue_pending);
        assert_eq!(b.ca_fingerprint, a.ca_fingerprint);
        assert_eq!(
            b.ca_key_unsealed.as_deref().map(|v| v.as_slice()),
            Some(pkcs8.as_slice())
        );
        assert_ne!(fs::read(dir.path().join(CERT_FILE)).unwrap(), before);
    }

    #[test]
    fn bad_operator_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "not pem").unwrap();
        fs::write(&key, "not pem").unwrap();
        let e = ensure_tls(dir.path(), &[], Some(&(cert, key)), false)
            .err()
            .unwrap();
        assert!(e.to_string().contains("c.pem"), "{e}");
    }
}
