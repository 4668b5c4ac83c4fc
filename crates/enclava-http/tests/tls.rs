//! The ureq connector against a real rustls server on loopback: a pinned CA connects (IPv4 and
//! IPv6 literals), anything else is refused with the certificate error.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Pki {
    ca_der: CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

/// A CA named `ca_name` and a loopback server certificate it issued.
fn pki(ca_name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "::1".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(enclava_http::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    Pki {
        ca_der: ca.der().clone(),
        server: Arc::new(server),
    }
}

/// Serves one HTTPS connection: answers any request with `200 hello`.
fn serve_once(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return, // the client gave up (e.g. refused our certificate)
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tls
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        tls.conn.send_close_notify();
        let _ = tls.flush();
    })
}

fn pinned(ca: &CertificateDer<'static>) -> ureq::Agent {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = enclava_http::client_config(roots).unwrap();
    enclava_http::pinned_agent_builder(Arc::new(config)).build()
}

#[test]
fn pinned_ca_connects_over_ipv4_and_ipv6() {
    let p = pki("server CA");
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let url4 = format!("https://127.0.0.1:{}/", l4.local_addr().unwrap().port());
    let h = serve_once(l4, p.server.clone());
    let body = pinned(&p.ca_der)
        .get(&url4)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(body, "hello");
    h.join().unwrap();

    // IPv6 literals reach the connector in URL form ("[::1]"); skip where the host has no IPv6.
    if let Ok(l6) = TcpListener::bind("[::1]:0") {
        let url6 = format!("https://[::1]:{}/", l6.local_addr().unwrap().port());
        let h = serve_once(l6, p.server.clone());
        let body = pinned(&p.ca_der)
            .get(&url6)
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert_eq!(body, "hello");
        h.join().unwrap();
    }
}

#[test]
fn an_unpinned_server_is_refused_with_the_certificate_error() {
    let p = pki("server CA");
    let other = pki("another CA");
    // Trusting another CA: the handshake fails on the server's certificate.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}/", l.local_addr().unwrap().port());
    let h = serve_once(l, p.server.clone());
    let err = pinned(&other.ca_der)
        .get(&url)
        .call()
        .unwrap_err()
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    h.join().unwrap();

    // The public WebPKI roots do not include our test CA either.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}/", l.local_addr().unwrap().port());
    let h = serve_once(l, p.server.clone());
    let err = enclava_http::agent_builder()
        .build()
        .get(&url)
        .call()
        .unwrap_err()
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    h.join().unwrap();
}

#[test]
fn plain_ureq_without_the_connector_refuses_https() {
    // Proves ureq is built without its own TLS (which would bring the ring provider): HTTPS
    // works only through enclava-http.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}/", l.local_addr().unwrap().port());
    let accept = thread::spawn(move || {
        let _ = l.accept().map(|(s, _): (TcpStream, _)| s);
    });
    let err = ureq::AgentBuilder::new()
        .build()
        .get(&url)
        .call()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no TLS backend"), "{err}");
    accept.join().unwrap();
}
