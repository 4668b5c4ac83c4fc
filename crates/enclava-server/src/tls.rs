//! TLS material: an operator-provided certificate, or a local CA and server certificate generated
//! on first start (rcgen) and kept in the data directory.
//!
//! Files in the data directory: `ca.pem` (the CA certificate clients trust), `ca-key.pem` (0600),
//! `tls-cert.pem` (server certificate followed by the CA) and `tls-key.pem` (0600).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
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
/// With `operator` (cert, key) PEM files, those are used as they are. Otherwise the local CA in
/// `data_dir` is created if missing, and a server certificate for `hostnames` is issued by it if
/// missing or if the host names changed.
pub fn ensure_tls(
    data_dir: &Path,
    hostnames: &[String],
    operator: Option<&(PathBuf, PathBuf)>,
) -> Result<TlsMaterial, TlsError> {
    if let Some((cert, key)) = operator {
        let chain = fs::read(cert).map_err(io_err("cannot read certificate", cert))?;
        let key_pem =
            Zeroizing::new(fs::read(key).map_err(io_err("cannot read private key", key))?);
        let server_config = rustls_config(&chain, cert, &key_pem, key)?;
        return Ok(TlsMaterial {
            server_config,
            ca_path: None,
            ca_fingerprint: None,
            created_ca: false,
        });
    }
    let ca_path = data_dir.join(CA_FILE);
    let ca_key_path = data_dir.join(CA_KEY_FILE);
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    let hosts_path = data_dir.join("tls-hosts.txt");
    let hosts_line = hostnames.join(",");

    let mut created_ca = false;
    let (ca_cert, ca_key) = if ca_path.exists() && ca_key_path.exists() {
        let key_pem = Zeroizing::new(
            fs::read_to_string(&ca_key_path).map_err(io_err("cannot read", &ca_key_path))?,
        );
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Pem {
            path: ca_key_path.clone(),
            expected: "a PEM private key",
            found: e.to_string(),
        })?;
        // Re-derive the issuer from the same parameters and key: subject and key identifier
        // match the stored ca.pem, so certificates it signs chain to that file.
        let cert = ca_params()
            .self_signed(&key)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        (cert, key)
    } else {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let cert = ca_params()
            .self_signed(&key)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write_private(&ca_key_path, Zeroizing::new(key.serialize_pem()).as_bytes())?;
        write_public(&ca_path, cert.pem().as_bytes())?;
        created_ca = true;
        // Any old server certificate was issued by a different CA.
        let _ = fs::remove_file(&cert_path);
        (cert, key)
    };
    let ca_pem = fs::read(&ca_path).map_err(io_err("cannot read", &ca_path))?;
    let ca_der = first_cert_der(&ca_pem, &ca_path)?;

    let hosts_match = fs::read_to_string(&hosts_path)
        .map(|s| s.trim() == hosts_line)
        .unwrap_or(false);
    if !(cert_path.exists() && key_path.exists() && hosts_match) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let cert = server_params(hostnames)?
            .signed_by(&key, &ca_cert, &ca_key)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write_private(&key_path, Zeroizing::new(key.serialize_pem()).as_bytes())?;
        let mut chain = cert.pem();
        chain.push_str(&String::from_utf8_lossy(&ca_pem));
        write_public(&cert_path, chain.as_bytes())?;
        write_public(&hosts_path, hosts_line.as_bytes())?;
    }
    let chain = fs::read(&cert_path).map_err(io_err("cannot read", &cert_path))?;
    let key_pem = Zeroizing::new(fs::read(&key_path).map_err(io_err("cannot read", &key_path))?);
    let server_config = rustls_config(&chain, &cert_path, &key_pem, &key_path)?;
    Ok(TlsMaterial {
        server_config,
        ca_fingerprint: Some(fingerprint(&ca_der)),
        ca_path: Some(ca_path),
        created_ca,
    })
}

fn first_cert_der(pem: &[u8], path: &Path) -> Result<Vec<u8>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    match rustls::pki_types::CertificateDer::pem_slice_iter(pem).next() {
        Some(Ok(c)) => Ok(c.as_ref().to_vec()),
        Some(Err(e)) => Err(TlsError::Pem {
            path: path.to_path_buf(),
            expected: "a PEM certificate",
            found: e.to_string(),
        }),
        None => Err(TlsError::Pem {
            path: path.to_path_buf(),
            expected: "a PEM certificate",
            found: "no CERTIFICATE block".into(),
        }),
    }
}

/// The process-wide rustls crypto provider (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn rustls_config(
    chain_pem: &[u8],
    chain_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::{self, PemObject};
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: chain_path.to_path_buf(),
            expected: "PEM certificates",
            found: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: chain_path.to_path_buf(),
            expected: "at least one PEM certificate",
            found: "none".into(),
        });
    }
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
            path: key_path.to_path_buf(),
            expected: "a PEM private key",
            found: match e {
                pem::Error::NoItemsFound => "no PRIVATE KEY block".into(),
                e => e.to_string(),
            },
        })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
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
        let a = ensure_tls(dir.path(), &hosts, None).unwrap();
        assert!(a.created_ca);
        let fp = a.ca_fingerprint.clone().unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [CA_KEY_FILE, KEY_FILE] {
                let mode = fs::metadata(dir.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let b = ensure_tls(dir.path(), &hosts, None).unwrap();
        assert!(!b.created_ca);
        assert_eq!(b.ca_fingerprint.unwrap(), fp);
        // New host names: a new server certificate from the same CA.
        let before = fs::read(dir.path().join(CERT_FILE)).unwrap();
        let c = ensure_tls(dir.path(), &["vault.example".to_string()], None).unwrap();
        assert_eq!(c.ca_fingerprint.unwrap(), fp);
        assert_ne!(fs::read(dir.path().join(CERT_FILE)).unwrap(), before);
    }

    #[test]
    fn bad_operator_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "not pem").unwrap();
        fs::write(&key, "not pem").unwrap();
        let e = ensure_tls(dir.path(), &[], Some(&(cert, key)))
            .err()
            .unwrap();
        assert!(e.to_string().contains("c.pem"), "{e}");
    }
}
