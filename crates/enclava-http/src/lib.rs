//! HTTPS for Enclava's outgoing requests (collateral fetcher, enclave client, CLI).
//!
//! ureq 2's own `tls` feature turns on rustls' *ring* provider. Enclava uses exactly one crypto
//! provider, aws-lc-rs (the server's TLS, every signature and every cipher), so ureq is built
//! without TLS and this crate plugs rustls on aws-lc-rs into it through ureq's [`TlsConnector`]
//! hook: one place that builds client TLS, so no second provider can creep back in.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::{ReadWrite, TlsConnector};

/// The one rustls crypto provider: aws-lc-rs.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration on aws-lc-rs with rustls' safe protocol versions (TLS 1.2 and 1.3),
/// trusting exactly `roots`, without client authentication.
pub fn client_config(roots: RootCertStore) -> Result<ClientConfig, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The public WebPKI roots (Mozilla's list, compiled in: nothing is read or downloaded at run
/// time), what ureq's own TLS used to trust.
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A ureq TLS connector over `config`.
pub fn connector(config: Arc<ClientConfig>) -> Arc<RustlsConnector> {
    Arc::new(RustlsConnector { config })
}

/// A ureq agent builder whose HTTPS trusts the public WebPKI roots (for the internet: AMD KDS,
/// Intel PCS, a server with a publicly trusted certificate).
pub fn agent_builder() -> ureq::AgentBuilder {
    static PUBLIC: OnceLock<Result<Arc<ClientConfig>, rustls::Error>> = OnceLock::new();
    match PUBLIC.get_or_init(|| client_config(webpki_roots()).map(Arc::new)) {
        Ok(config) => pinned_agent_builder(config.clone()),
        // aws-lc-rs supports TLS 1.2 and 1.3, so this does not happen; should it, fail closed:
        // ureq without a TLS connector refuses every https:// URL with a clear error.
        Err(_) => ureq::AgentBuilder::new(),
    }
}

/// A ureq agent builder whose HTTPS uses `config` (typically [`client_config`] over a pinned CA).
pub fn pinned_agent_builder(config: Arc<ClientConfig>) -> ureq::AgentBuilder {
    ureq::AgentBuilder::new().tls_connector(connector(config))
}

/// ureq's [`TlsConnector`] over rustls with a fixed [`ClientConfig`].
pub struct RustlsConnector {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for RustlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsConnector").finish_non_exhaustive()
    }
}

impl TlsConnector for RustlsConnector {
    fn connect(
        &self,
        dns_name: &str,
        mut io: Box<dyn ReadWrite>,
    ) -> Result<Box<dyn ReadWrite>, ureq::Error> {
        // ureq hands IPv6 literals over in URL form ("[::1]"); rustls wants the bare address.
        let host = dns_name
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(dns_name);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TLS server name: expected a DNS name or IP address, found {host:?}: {e}"),
            )
        })?;
        let mut conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| io::Error::other(format!("TLS connection setup failed: {e}")))?;
        // Handshake now, so a certificate error surfaces as the connection error it is.
        conn.complete_io(&mut io)?;
        Ok(Box::new(TlsStream(StreamOwned::new(conn, io))))
    }
}

struct TlsStream(StreamOwned<ClientConnection, Box<dyn ReadWrite>>);

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TlsStream").finish()
    }
}

impl ReadWrite for TlsStream {
    fn socket(&self) -> Option<&TcpStream> {
        self.0.get_ref().socket()
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
