//! NVIDIA collateral: RIMs from NVIDIA's RIM service and OCSP responses from NVIDIA's OCSP
//! responder, into the offline cache. Called explicitly (`enclava collateral fetch
//! --nvidia-rim ID`, `--tee nvidia-gpu --evidence FILE`), never during verification, which only
//! reads the cache.
//!
//! | resource | request |
//! |---|---|
//! | RIM | `GET {rim_base}/v1/rim/{id}`: JSON `{"id", "rim": base64 of the RIM XML, ...}` |
//! | OCSP | `POST {ocsp_url}` with `Content-Type: application/ocsp-request` (RFC 6960 A.1), SHA-384 certID, a fresh 32-byte nonce |
//!
//! Whatever is fetched is checked before it is cached: a RIM must parse and verify (chain to the
//! pinned RIM root, XML-DSig, validity at the fetch time) and be the one asked for (its
//! colloquialVersion ends the id); an OCSP response must verify for the certificate asked about,
//! signed by its issuer or a delegated responder, current, and carry the nonce that was sent.
//! A `revoked` answer is cached too: it is the truth, and verification then fails on it.
//!
//! Cache layout (below the cache directory):
//!
//! ```text
//! nvidia/rim/{id}.xml                    RIM XML, byte for byte as decoded
//! nvidia/ocsp/{issuer}_{serial}.der      DER OCSPResponse; issuer: first 8 bytes of the SHA-256
//!                                        of the issuer certificate (hex), serial: hex
//! ```
//!
//! RIM ids are `NV_GPU_DRIVER_{chip}_{version}`, `NV_GPU_VBIOS_{project}_{sku}_{chip sku}_{hex}`
//! or `NV_SWITCH_BIOS_...` (the claims' `rim_ids` say which a device needs); only ASCII letters,
//! digits, `.`, `_` and `-` are accepted, so an id never names a path outside the cache.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use enclava_evidence::nvidia::{self, DeviceEvidence, ocsp, rim};
use sha2::Digest;

use crate::cache::{self, Cache};
use crate::error::{Error, Result};
use crate::http::{Clock, Http, Jitter, Politeness, Sleeper, base_url};

/// NVIDIA's RIM service.
pub const DEFAULT_RIM_URL: &str = "https://rim.attestation.nvidia.com";
/// NVIDIA's OCSP responder.
pub const DEFAULT_OCSP_URL: &str = "https://ocsp.ndis.nvidia.com";

/// Longest accepted RIM id.
const MAX_ID_LEN: usize = 128;

/// Check a RIM id (see the module documentation).
pub fn check_rim_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "expected a RIM id of at most {MAX_ID_LEN} ASCII letters, digits, '.', '_' or '-' \
             (not starting with '.'), found {id:?}"
        )))
    }
}

impl Cache {
    fn nvidia_dir(&self) -> PathBuf {
        self.root().join("nvidia")
    }

    /// Where the RIM `id` is cached.
    pub fn nvidia_rim_path(&self, id: &str) -> Result<PathBuf> {
        check_rim_id(id)?;
        Ok(self.nvidia_dir().join("rim").join(format!("{id}.xml")))
    }

    /// The cached RIM `id` (XML), or [`Error::MissingFile`].
    pub fn nvidia_rim(&self, id: &str) -> Result<Vec<u8>> {
        let path = self.nvidia_rim_path(id)?;
        cache::read_optional(&path)?.ok_or_else(|| Error::MissingFile {
            what: format!("NVIDIA RIM {id} (enclava collateral fetch --nvidia-rim {id})"),
            expected: vec![path],
        })
    }

    /// Cache a RIM after checking it: it parses, verifies at `at` and is the RIM `id` names.
    pub fn put_nvidia_rim(&self, id: &str, xml: &[u8], at: DateTime<Utc>) -> Result<PathBuf> {
        let path = self.nvidia_rim_path(id)?;
        check_rim(id, xml, at)?;
        cache::write_atomic(&path, xml)?;
        Ok(path)
    }

    /// Where the OCSP response for `cert_der` (issued by `issuer_der`) is cached.
    pub fn nvidia_ocsp_path(&self, cert_der: &[u8], issuer_der: &[u8]) -> Result<PathBuf> {
        let serial = x509_serial(cert_der)?;
        let issuer = sha2::Sha256::digest(issuer_der);
        Ok(self.nvidia_dir().join("ocsp").join(format!(
            "{}_{serial}.der",
            hex::encode(issuer.get(..8).unwrap_or_default())
        )))
    }

    /// Cache an OCSP response after checking it for `cert_der` at `at` (see
    /// [`ocsp::verify_response`]; the nonce, when one was sent, is the fetcher's to check).
    pub fn put_nvidia_ocsp(
        &self,
        cert_der: &[u8],
        issuer_der: &[u8],
        response_der: &[u8],
        at: DateTime<Utc>,
    ) -> Result<PathBuf> {
        let path = self.nvidia_ocsp_path(cert_der, issuer_der)?;
        ocsp::verify_response(response_der, cert_der, issuer_der, None, at)
            .map_err(|e| Error::invalid("NVIDIA OCSP response", e.to_string()))?;
        cache::write_atomic(&path, response_der)?;
        Ok(path)
    }

    /// Every cached OCSP response (DER), for [`nvidia::verify_with_ocsp`] (which uses each for
    /// the certificates its certIDs name and ignores the rest).
    pub fn nvidia_ocsp_responses(&self) -> Result<Vec<Vec<u8>>> {
        cache::list_der(&self.nvidia_dir().join("ocsp"))?
            .into_iter()
            .filter_map(|p| cache::read_optional(&p).transpose())
            .collect()
    }
}

/// The serial number of a DER certificate (hex), for cache file names.
fn x509_serial(der: &[u8]) -> Result<String> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::invalid("certificate", format!("not DER X.509: {e}")))?;
    Ok(hex::encode(c.tbs_certificate.serial_number.as_bytes()))
}

/// A fetched RIM must parse, verify at `at` and be the RIM `id` asks for.
fn check_rim(id: &str, xml: &[u8], at: DateTime<Utc>) -> Result<rim::CheckedRim> {
    let what = format!("NVIDIA RIM {id}");
    let parsed = rim::parse(xml).map_err(|e| Error::invalid(&what, e.to_string()))?;
    // The id ends with the version: "..._550.144.03" (driver) or "..._96005E0001" (VBIOS, the
    // version without dots).
    let norm = |s: &str| s.replace('.', "").to_ascii_uppercase();
    if !norm(id).ends_with(&norm(&parsed.version)) {
        return Err(Error::invalid(
            &what,
            format!(
                "expected a RIM for {id}, found colloquialVersion {} ({})",
                parsed.version, parsed.tag_id
            ),
        ));
    }
    rim::CheckedRim::check(parsed, at).map_err(|e| Error::invalid(&what, e.to_string()))
}

/// What [`NvidiaFetcher::fetch_for_evidence`] did.
#[derive(Debug, Default)]
pub struct NvidiaFetchReport {
    /// RIMs now in the cache (id, path).
    pub rims: Vec<(String, PathBuf)>,
    /// OCSP responses now in the cache (certificate subject, status, path).
    pub ocsp: Vec<(String, String, PathBuf)>,
    /// What could not be fetched, and why (the rest was still fetched).
    pub failed: Vec<(String, Error)>,
}

/// Fetches RIMs and OCSP responses from NVIDIA into a [`Cache`].
#[derive(Debug)]
pub struct NvidiaFetcher {
    rim_base: String,
    ocsp_url: String,
    http: Http,
    cache: Cache,
}

impl NvidiaFetcher {
    /// A fetcher for NVIDIA's services writing into `cache`, with [`Politeness::intel_pcs`]
    /// (one request per second per host), the system clock and real sleeping.
    pub fn new(cache: Cache) -> NvidiaFetcher {
        NvidiaFetcher {
            rim_base: DEFAULT_RIM_URL.into(),
            ocsp_url: DEFAULT_OCSP_URL.into(),
            http: Http::new(Politeness::intel_pcs()),
            cache,
        }
    }

    /// Another RIM service base URL (a mirror, a test server).
    pub fn with_rim_url(mut self, base: &str) -> Result<NvidiaFetcher> {
        self.rim_base = base_url(base)?;
        Ok(self)
    }

    /// Another OCSP responder URL.
    pub fn with_ocsp_url(mut self, url: &str) -> Result<NvidiaFetcher> {
        self.ocsp_url = base_url(url)?;
        Ok(self)
    }

    pub fn with_politeness(mut self, p: Politeness) -> NvidiaFetcher {
        self.http.agent = crate::http::default_agent(&p);
        self.http.politeness = p;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> NvidiaFetcher {
        self.http.clock = clock;
        self
    }

    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> NvidiaFetcher {
        self.http.sleeper = sleeper;
        self
    }

    pub fn with_jitter(mut self, jitter: Arc<dyn Jitter>) -> NvidiaFetcher {
        self.http.jitter = jitter;
        self
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn rim_url(&self, id: &str) -> Result<String> {
        check_rim_id(id)?;
        Ok(format!("{}/v1/rim/{id}", self.rim_base))
    }

    /// Fetch the RIM `id`, check it and cache it.
    pub fn fetch_rim(&self, id: &str) -> Result<PathBuf> {
        let url = self.rim_url(id)?;
        let f = self.http.get(&url, &[])?;
        let what = format!("NVIDIA RIM service response for {id}");
        let v: serde_json::Value = serde_json::from_slice(&f.body)
            .map_err(|e| Error::invalid(&what, format!("expected JSON, found: {e}")))?;
        if let Some(got) = v.get("id").and_then(|x| x.as_str())
            && got != id
        {
            return Err(Error::invalid(
                &what,
                format!("expected id {id}, found {got}"),
            ));
        }
        let b64 = v
            .get("rim")
            .and_then(|x| x.as_str())
            .ok_or_else(|| Error::invalid(&what, "expected a string field \"rim\", found none"))?;
        let xml = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| Error::invalid(&what, format!("\"rim\" is not base64: {e}")))?;
        self.cache.put_nvidia_rim(id, &xml, self.http.now())
    }

    /// Ask the OCSP responder about `cert_der` (issued by `issuer_der`) with a fresh nonce;
    /// cache the response once it verifies (nonce included). Returns the path and the status.
    pub fn fetch_ocsp(
        &self,
        cert_der: &[u8],
        issuer_der: &[u8],
    ) -> Result<(PathBuf, ocsp::OcspStatus)> {
        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::Config("no randomness for the OCSP nonce".into()))?;
        let req = ocsp::build_request(cert_der, issuer_der, ocsp::CertIdHash::Sha384, Some(&nonce))
            .map_err(|e| Error::invalid("OCSP request", e.to_string()))?;
        let f = self
            .http
            .post(&self.ocsp_url, "application/ocsp-request", &req, &[])?;
        let now = self.http.now();
        let answer = ocsp::verify_response(&f.body, cert_der, issuer_der, Some(&nonce), now)
            .map_err(|e| {
                Error::invalid(
                    format!("OCSP response from {}", self.ocsp_url),
                    e.to_string(),
                )
            })?;
        let path = self
            .cache
            .put_nvidia_ocsp(cert_der, issuer_der, &f.body, now)?;
        Ok((path, answer.status))
    }

    /// Everything a device's verification can use from NVIDIA: its RIMs (ids from the report)
    /// and OCSP responses for its chain (below the root, without the attestation leaf) and for
    /// each RIM's signing path. The evidence is verified first (without RIMs) so that only a
    /// genuine device's ids and chain are asked about. Failures are collected, not fatal.
    pub fn fetch_for_evidence(
        &self,
        devices: &[DeviceEvidence],
        with_ocsp: bool,
    ) -> Result<NvidiaFetchReport> {
        let mut report = NvidiaFetchReport::default();
        let now = self.http.now();
        let device_root =
            enclava_evidence::pem::certificates(nvidia::roots::DEVICE_ROOT_PEM.as_bytes())
                .ok()
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| {
                    Error::Config("the pinned NVIDIA device root does not parse".into())
                })?;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            let claims = nvidia::verify(&d.report, &d.certs, &[], None, now).map_err(|e| {
                Error::invalid(format!("NVIDIA evidence (device {i})"), e.to_string())
            })?;
            for id in &claims.rim_ids {
                if report.rims.iter().any(|(r, _)| r == id) {
                    continue;
                }
                match self.fetch_rim(id) {
                    Ok(p) => report.rims.push((id.clone(), p)),
                    Err(e) => report.failed.push((format!("RIM {id}"), e)),
                }
            }
            let mut chain = device_chain_der(&d.certs)?;
            if chain.last() != Some(&device_root) {
                chain.push(device_root.clone());
            }
            for w in chain.windows(2).skip(1) {
                if let [c, issuer] = w {
                    pairs.push((c.clone(), issuer.clone()));
                }
            }
        }
        if !with_ocsp {
            return Ok(report);
        }
        for (id, _) in &report.rims {
            let Ok(xml) = self.cache.nvidia_rim(id) else {
                continue;
            };
            let Ok(checked) = check_rim(id, &xml, now) else {
                continue;
            };
            let path = checked.signing_path_der();
            for w in path.windows(2) {
                if let [c, issuer] = w {
                    pairs.push((c.clone(), issuer.clone()));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (c, issuer) in pairs {
            if !seen.insert((c.clone(), issuer.clone())) {
                continue;
            }
            let subject = subject_cn(&c);
            match self.fetch_ocsp(&c, &issuer) {
                Ok((p, status)) => report.ocsp.push((subject, status_name(&status), p)),
                Err(e) => report.failed.push((format!("OCSP for {subject}"), e)),
            }
        }
        Ok(report)
    }
}

fn status_name(s: &ocsp::OcspStatus) -> String {
    match s {
        ocsp::OcspStatus::Good => "good".into(),
        ocsp::OcspStatus::Unknown => "unknown".into(),
        ocsp::OcspStatus::Revoked { reason, .. } => {
            format!(
                "revoked ({})",
                reason.as_deref().unwrap_or("no reason given")
            )
        }
    }
}

fn subject_cn(der: &[u8]) -> String {
    use x509_cert::der::Decode;
    x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate.subject.to_string())
        .unwrap_or_else(|_| "(unparsable certificate)".into())
}

/// The device chain (PEM or DER) as DER certificates, leaf first.
fn device_chain_der(certs: &[u8]) -> Result<Vec<Vec<u8>>> {
    if enclava_evidence::pem::is_pem(certs) {
        enclava_evidence::pem::certificates(certs)
            .map_err(|e| Error::invalid("NVIDIA device chain", format!("invalid PEM: {e}")))
    } else {
        enclava_evidence::pem::der_sequences(certs)
            .map(|v| v.into_iter().map(<[u8]>::to_vec).collect())
            .ok_or_else(|| {
                Error::invalid("NVIDIA device chain", "expected PEM or DER certificates")
            })
    }
}
