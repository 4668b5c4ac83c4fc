//! The Intel PCS (Provisioning Certification Service, API v4) fetcher; also works against a local
//! PCCS, which serves the same paths. Like the KDS fetcher it is called explicitly, never during
//! verification, and writes into the offline [`Cache`].
//!
//! URLs (`{base}` defaults to `https://api.trustedservices.intel.com`):
//!
//! | resource | URL | issuer chain header |
//! |---|---|---|
//! | TCB info | `{base}/{sgx,tdx}/certification/v4/tcb?fmspc={fmspc}` | `TCB-Info-Issuer-Chain` |
//! | QE identity | `{base}/{sgx,tdx}/certification/v4/qe/identity` | `SGX-Enclave-Identity-Issuer-Chain` |
//! | PCK CRL | `{base}/sgx/certification/v4/pckcrl?ca={platform,processor}&encoding=der` | `SGX-PCK-CRL-Issuer-Chain` |
//! | root CA CRL | `https://certificates.trustedservices.intel.com/IntelSGXRootCA.der` (PCS) or `{base}/sgx/certification/v4/rootcacrl` (PCCS) | none |
//!
//! Issuer chains arrive URL-encoded (PEM) in the headers and are stored decoded. CRLs are accepted
//! as DER or as hex of the DER (as some PCCS versions send them) and stored as DER. Everything is
//! checked to parse and to be what was asked for (TEE, FMSPC, issuer) before it is cached;
//! signatures are checked by the verifier.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use enclava_evidence::dcap::{Collateral, certs::Crl};

use crate::cache::{self, Cache, DcapTee, PckCa, QuoteCollateralKey};
use crate::error::{Error, Result};
use crate::http::{Clock, Fetched, Http, Jitter, Politeness, Sleeper, base_url, percent_decode};
use crate::kds::{Refresh, RefreshReport};

/// Intel's PCS.
pub const DEFAULT_PCS_URL: &str = "https://api.trustedservices.intel.com";
/// Where Intel publishes the SGX Root CA CRL (the root certificate's CRL distribution point).
pub const DEFAULT_ROOT_CRL_URL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

const H_TCB_CHAIN: &str = "TCB-Info-Issuer-Chain";
/// PCS API v3 name of the same header (older PCCS versions).
const H_TCB_CHAIN_V3: &str = "SGX-TCB-Info-Issuer-Chain";
const H_QE_CHAIN: &str = "SGX-Enclave-Identity-Issuer-Chain";
const H_CRL_CHAIN: &str = "SGX-PCK-CRL-Issuer-Chain";

/// Fetches Intel collateral from PCS or a PCCS into a [`Cache`].
#[derive(Debug)]
pub struct PcsFetcher {
    base: String,
    root_crl_url: String,
    http: Http,
    cache: Cache,
}

impl PcsFetcher {
    /// A fetcher for Intel's PCS writing into `cache`, with [`Politeness::intel_pcs`].
    pub fn new(cache: Cache) -> PcsFetcher {
        PcsFetcher {
            base: DEFAULT_PCS_URL.to_string(),
            root_crl_url: DEFAULT_ROOT_CRL_URL.to_string(),
            http: Http::new(Politeness::intel_pcs()),
            cache,
        }
    }

    /// Use another PCS base URL (keeps the root CA CRL URL).
    pub fn with_base_url(mut self, base: &str) -> Result<PcsFetcher> {
        self.base = base_url(base)?;
        Ok(self)
    }

    /// Use a PCCS at `base`: PCS paths under it, and its `/sgx/certification/v4/rootcacrl`.
    pub fn with_pccs(mut self, base: &str) -> Result<PcsFetcher> {
        self.base = base_url(base)?;
        self.root_crl_url = format!("{}/sgx/certification/v4/rootcacrl", self.base);
        Ok(self)
    }

    /// Use another root CA CRL URL.
    pub fn with_root_crl_url(mut self, url: &str) -> Result<PcsFetcher> {
        crate::http::host_of(url)?;
        self.root_crl_url = url.to_string();
        Ok(self)
    }

    pub fn with_politeness(mut self, p: Politeness) -> PcsFetcher {
        self.http.agent = crate::http::default_agent(&p);
        self.http.politeness = p;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> PcsFetcher {
        self.http.clock = clock;
        self
    }

    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> PcsFetcher {
        self.http.sleeper = sleeper;
        self
    }

    pub fn with_jitter(mut self, jitter: Arc<dyn Jitter>) -> PcsFetcher {
        self.http.jitter = jitter;
        self
    }

    /// Use a caller-built agent (proxies, a PCCS's own TLS root).
    pub fn with_agent(mut self, agent: ureq::Agent) -> PcsFetcher {
        self.http.agent = agent;
        self
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn tcb_info_url(&self, tee: DcapTee, fmspc: &[u8; 6]) -> String {
        format!(
            "{}/{tee}/certification/v4/tcb?fmspc={}",
            self.base,
            hex::encode(fmspc)
        )
    }

    pub fn qe_identity_url(&self, tee: DcapTee) -> String {
        format!("{}/{tee}/certification/v4/qe/identity", self.base)
    }

    pub fn pck_crl_url(&self, ca: PckCa) -> String {
        format!(
            "{}/sgx/certification/v4/pckcrl?ca={}&encoding=der",
            self.base,
            ca.as_str()
        )
    }

    pub fn root_crl_url(&self) -> &str {
        &self.root_crl_url
    }

    /// Make sure the cache holds everything a quote needs (TCB info for its FMSPC, QE identity,
    /// root CA CRL, the PCK CRL of its CA), fetching according to `refresh`, and return the
    /// collateral as the cache serves it.
    pub fn fetch_for_quote(
        &self,
        quote: &[u8],
        tee: DcapTee,
        refresh: Refresh,
    ) -> Result<Collateral> {
        let key = cache::quote_key(quote, tee)?;
        self.fetch_for(&key, refresh)
    }

    /// Like [`PcsFetcher::fetch_for_quote`] for a known FMSPC and CA.
    pub fn fetch_for(&self, key: &QuoteCollateralKey, refresh: Refresh) -> Result<Collateral> {
        self.fetch_tcb_info(key.tee, &key.fmspc, refresh)?;
        self.fetch_qe_identity(key.tee, refresh)?;
        self.fetch_root_crl(refresh)?;
        self.fetch_pck_crl(key.ca, refresh)?;
        self.cache.dcap_collateral_for(key)
    }

    /// Refresh everything of Intel's already in the cache that is stale (TCB info of every cached
    /// FMSPC, QE identities, root CA and PCK CRLs): what a background refresher calls.
    pub fn refresh_cached(&self) -> Result<RefreshReport> {
        let mut report = RefreshReport::default();
        for tee in [DcapTee::Tdx, DcapTee::Sgx] {
            for fmspc in self.cached_fmspcs(tee)? {
                report.record(
                    format!("{tee} TCB info for FMSPC {}", hex::encode(fmspc)),
                    self.fetch_tcb_info(tee, &fmspc, Refresh::IfStale),
                );
            }
            if self.cache.qe_identity_path(tee).is_file() {
                report.record(
                    format!("{tee} QE identity"),
                    self.fetch_qe_identity(tee, Refresh::IfStale),
                );
            }
        }
        if self.cache.root_crl_path().is_file() {
            report.record(
                "Intel SGX Root CA CRL".into(),
                self.fetch_root_crl(Refresh::IfStale),
            );
        }
        for ca in [PckCa::Platform, PckCa::Processor] {
            if self.cache.pck_crl_path(ca).is_file() {
                report.record(
                    format!("PCK CRL of the {} CA", ca.as_str()),
                    self.fetch_pck_crl(ca, Refresh::IfStale),
                );
            }
        }
        Ok(report)
    }

    /// The FMSPCs with a cached TCB info for `tee` (from the file names).
    fn cached_fmspcs(&self, tee: DcapTee) -> Result<Vec<[u8; 6]>> {
        let probe = self.cache.tcb_info_path(tee, &[0; 6]);
        let Some(dir) = probe.parent() else {
            return Ok(Vec::new());
        };
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir, &e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("list", dir, &e))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(b) = hex::decode(stem)
                && let Ok(fmspc) = <[u8; 6]>::try_from(b.as_slice())
            {
                out.push(fmspc);
            }
        }
        out.sort();
        Ok(out)
    }

    fn needs_fetch(
        &self,
        refresh: Refresh,
        path: &std::path::Path,
        next_update: impl Fn(&[u8]) -> Option<DateTime<Utc>>,
    ) -> Result<bool> {
        Ok(match refresh {
            Refresh::Always => true,
            Refresh::IfMissing => !path.is_file(),
            Refresh::IfStale => match cache::read_optional(path)? {
                None => true,
                Some(bytes) => next_update(&bytes).is_none_or(|n| n <= self.http.now()),
            },
        })
    }

    /// Fetch the TCB info for an FMSPC (with its issuer chain) into the cache.
    pub fn fetch_tcb_info(
        &self,
        tee: DcapTee,
        fmspc: &[u8; 6],
        refresh: Refresh,
    ) -> Result<PathBuf> {
        let path = self.cache.tcb_info_path(tee, fmspc);
        let chain_present = self.cache.tcb_info_chain_path(tee, fmspc).is_file();
        if chain_present && !self.needs_fetch(refresh, &path, tcb_info_next_update)? {
            return Ok(path);
        }
        let url = self.tcb_info_url(tee, fmspc);
        let r = self.http.get(&url, &[H_TCB_CHAIN, H_TCB_CHAIN_V3])?;
        let chain = issuer_chain(&r, &[H_TCB_CHAIN, H_TCB_CHAIN_V3], &url)?;
        self.cache.put_tcb_info(tee, fmspc, &r.body, &chain)
    }

    /// Fetch the QE identity (with its issuer chain) into the cache.
    pub fn fetch_qe_identity(&self, tee: DcapTee, refresh: Refresh) -> Result<PathBuf> {
        let path = self.cache.qe_identity_path(tee);
        let chain_present = self.cache.qe_identity_chain_path(tee).is_file();
        if chain_present && !self.needs_fetch(refresh, &path, qe_identity_next_update)? {
            return Ok(path);
        }
        let url = self.qe_identity_url(tee);
        let r = self.http.get(&url, &[H_QE_CHAIN])?;
        let chain = issuer_chain(&r, &[H_QE_CHAIN], &url)?;
        self.cache.put_qe_identity(tee, &r.body, &chain)
    }

    /// Fetch a PCK CRL (with its issuer chain, when sent) into the cache.
    pub fn fetch_pck_crl(&self, ca: PckCa, refresh: Refresh) -> Result<PathBuf> {
        let path = self.cache.pck_crl_path(ca);
        if !self.needs_fetch(refresh, &path, crl_next_update)? {
            return Ok(path);
        }
        let url = self.pck_crl_url(ca);
        let r = self.http.get(&url, &[H_CRL_CHAIN])?;
        let chain = r.header(H_CRL_CHAIN).map(percent_decode);
        self.cache
            .put_pck_crl(ca, &der_or_hex(&r.body), chain.as_deref())
    }

    /// Fetch the Intel SGX Root CA CRL into the cache.
    pub fn fetch_root_crl(&self, refresh: Refresh) -> Result<PathBuf> {
        let path = self.cache.root_crl_path();
        if !self.needs_fetch(refresh, &path, crl_next_update)? {
            return Ok(path);
        }
        let r = self.http.get(&self.root_crl_url, &[])?;
        self.cache.put_root_crl(&der_or_hex(&r.body))
    }
}

fn issuer_chain(r: &Fetched, headers: &[&str], url: &str) -> Result<Vec<u8>> {
    headers
        .iter()
        .find_map(|h| r.header(h))
        .map(percent_decode)
        .ok_or_else(|| {
            Error::invalid(
                format!("response of {url}"),
                format!(
                    "expected an issuer chain in the {} header, found none",
                    headers.join(" or ")
                ),
            )
        })
}

/// A CRL body: DER as is; hex of the DER (whitespace allowed) decoded.
fn der_or_hex(body: &[u8]) -> Vec<u8> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !compact.is_empty()
        && compact.iter().all(u8::is_ascii_hexdigit)
        && let Ok(d) = hex::decode(&compact)
    {
        return d;
    }
    body.to_vec()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn tcb_info_next_update(body: &[u8]) -> Option<DateTime<Utc>> {
    let c = Collateral::from_files(&[("TCB info", body)]).ok()?;
    parse_time(&c.tcb_info().ok()?.next_update)
}

fn qe_identity_next_update(body: &[u8]) -> Option<DateTime<Utc>> {
    let c = Collateral::from_files(&[("QE identity", body)]).ok()?;
    parse_time(&c.qe_identity().ok()?.next_update)
}

fn crl_next_update(der: &[u8]) -> Option<DateTime<Utc>> {
    let crl = Crl::from_der(der).ok()?;
    let next = crl.crl.tbs_cert_list.next_update?;
    DateTime::<Utc>::from_timestamp(i64::try_from(next.to_unix_duration().as_secs()).ok()?, 0)
}
