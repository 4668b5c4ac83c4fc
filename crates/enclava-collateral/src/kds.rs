//! The AMD Key Distribution Service fetcher (AMD "Versioned Chip Endorsement Key (VCEK)
//! Certificate and KDS Interface Specification", #57230). It is called explicitly (a CLI command
//! or a background refresher), never during verification, and writes everything it fetches into
//! the offline [`Cache`], which is all the verification path reads.
//!
//! URLs (`{base}` defaults to `https://kdsintf.amd.com`):
//!
//! | resource | URL |
//! |---|---|
//! | VCEK (DER) | `{base}/vcek/v1/{product}/{hwid}?blSPL={bl}&teeSPL={tee}&snpSPL={snp}&ucodeSPL={ucode}` |
//! | VCEK on Turin | `{base}/vcek/v1/Turin/{hwid}?fmcSPL={fmc}&blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..` |
//! | ASK + ARK (PEM) | `{base}/vcek/v1/{product}/cert_chain` |
//! | ASVK + ARK (PEM) | `{base}/vlek/v1/{product}/cert_chain` |
//! | CRL (DER) | `{base}/vcek/v1/{product}/crl`, `{base}/vlek/v1/{product}/crl` |
//!
//! `{product}` is `Milan`, `Genoa` or `Turin`; `{hwid}` is the report's CHIP_ID in lower-case hex
//! (its first 8 bytes on Turin); SPLs are the REPORTED_TCB components in decimal, two digits at
//! least. Fetched VCEKs are verified up to the pinned AMD root, and their hwID and TCB compared
//! with what was asked for, before they are cached.

use std::path::PathBuf;
use std::sync::Arc;

use enclava_evidence::snp::{self, Endorsements, Product, SigningKey};

use crate::cache::{self, AmdKey, Cache};
use crate::error::{Error, Result};
use crate::http::{Clock, Http, Jitter, Politeness, Sleeper, base_url};

/// AMD's KDS.
pub const DEFAULT_KDS_URL: &str = "https://kdsintf.amd.com";

/// When a cached resource is fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Only when it is not in the cache.
    IfMissing,
    /// When it is not in the cache or no longer current (CRLs, TCB info, QE identity past their
    /// next update; certificates past their validity).
    IfStale,
    /// Always.
    Always,
}

/// What a refresh of the cached collateral did: each entry is a cache file that is now current
/// (checked, and fetched again when stale), or what could not be refreshed and why. A failure
/// leaves the previous file in place.
#[derive(Debug, Default)]
pub struct RefreshReport {
    pub current: Vec<PathBuf>,
    pub failed: Vec<(String, Error)>,
}

impl RefreshReport {
    pub(crate) fn record(&mut self, what: String, r: Result<PathBuf>) {
        match r {
            Ok(p) => self.current.push(p),
            Err(e) => self.failed.push((what, e)),
        }
    }
}

/// Fetches VCEKs, cert chains and CRLs from AMD KDS into a [`Cache`].
#[derive(Debug)]
pub struct KdsFetcher {
    base: String,
    http: Http,
    cache: Cache,
}

impl KdsFetcher {
    /// A fetcher for AMD's KDS writing into `cache`, with [`Politeness::amd_kds`], the system
    /// clock and real sleeping.
    pub fn new(cache: Cache) -> KdsFetcher {
        KdsFetcher {
            base: DEFAULT_KDS_URL.to_string(),
            http: Http::new(Politeness::amd_kds()),
            cache,
        }
    }

    /// Use another KDS base URL (a mirror, a proxy, a test server).
    pub fn with_base_url(mut self, base: &str) -> Result<KdsFetcher> {
        self.base = base_url(base)?;
        Ok(self)
    }

    /// Change the politeness policy (this also rebuilds the HTTP agent with its timeout).
    pub fn with_politeness(mut self, p: Politeness) -> KdsFetcher {
        self.http.agent = crate::http::default_agent(&p);
        self.http.politeness = p;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> KdsFetcher {
        self.http.clock = clock;
        self
    }

    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> KdsFetcher {
        self.http.sleeper = sleeper;
        self
    }

    pub fn with_jitter(mut self, jitter: Arc<dyn Jitter>) -> KdsFetcher {
        self.http.jitter = jitter;
        self
    }

    /// Use a caller-built agent (proxies, custom TLS roots).
    pub fn with_agent(mut self, agent: ureq::Agent) -> KdsFetcher {
        self.http.agent = agent;
        self
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The VCEK URL for a chip and TCB.
    pub fn vcek_url(&self, product: Product, chip_id: &[u8; 64], tcb: u64) -> String {
        let t = snp::TcbVersion::decode(tcb, product.turin_tcb_layout());
        let hwid = hex::encode(cache::hwid(product, chip_id));
        let fmc = match t.fmc {
            Some(f) if product.turin_tcb_layout() => format!("fmcSPL={f:02}&"),
            _ => String::new(),
        };
        format!(
            "{}/vcek/v1/{product}/{hwid}?{fmc}blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
            self.base, t.bootloader, t.tee, t.snp, t.microcode
        )
    }

    /// `{base}/{vcek|vlek}/v1/{product}/cert_chain`.
    pub fn cert_chain_url(&self, product: Product, key: AmdKey) -> String {
        format!("{}/{}/v1/{product}/cert_chain", self.base, key.as_str())
    }

    /// `{base}/{vcek|vlek}/v1/{product}/crl`.
    pub fn crl_url(&self, product: Product, key: AmdKey) -> String {
        format!("{}/{}/v1/{product}/crl", self.base, key.as_str())
    }

    /// Make sure the cache holds the endorsements of `report` (its VCEK and the product's ASK+ARK
    /// chain), fetching what is missing, and return them as the cache serves them. When the
    /// cache can already serve the report, nothing is requested. The product comes from the
    /// report's CPUID (v3+), else from `product`, else Milan then Genoa are tried (v2 reports
    /// predate Turin). The product's CRL is [`KdsFetcher::fetch_crl_for_report`]'s job
    /// (`enclava collateral fetch` does both).
    pub fn fetch_for_report(
        &self,
        report: &[u8],
        product: Option<Product>,
    ) -> Result<Endorsements> {
        let key = cache::report_key(report)?;
        if key.signing_key == AmdKey::Vlek {
            return Err(Error::VlekNotFetchable);
        }
        if let Ok(e) = self.cache.snp_endorsements(report) {
            return Ok(e);
        }
        let products: Vec<Product> = match (key.product, product) {
            (Some(p), _) | (None, Some(p)) => vec![p],
            (None, None) => vec![Product::Milan, Product::Genoa],
        };
        let mut not_found = Vec::new();
        for p in products {
            match self.fetch_vcek(p, &key.chip_id, key.reported_tcb, Refresh::IfMissing) {
                Ok(_) => {
                    return self.cache.snp_endorsements(report);
                }
                Err(Error::NotFound { url }) => not_found.push(url),
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotFound {
            url: not_found.join(" and "),
        })
    }

    /// Make sure the cache holds a current CRL for `report`'s product and key type (KDS
    /// `{vcek|vlek}/v1/{product}/crl`, issued by the ARK: the CRL that can revoke the ASK/ASVK),
    /// fetching it as `refresh` says (the CLI: [`Refresh::IfStale`], or [`Refresh::Always`] with
    /// `--force`), and return its cache path. Without it
    /// the verifier cannot check revocation and the default `snp` policy denies. The product
    /// comes from the report's CPUID (v3+), else from `product`, else from the chain cached for
    /// the report. VLEK reports get the VLEK CRL (the VLEK itself comes from the cloud provider).
    pub fn fetch_crl_for_report(
        &self,
        report: &[u8],
        product: Option<Product>,
        refresh: Refresh,
    ) -> Result<PathBuf> {
        let r = snp::parse_report(report)?;
        let key = match r.key_info.signing_key {
            SigningKey::Vcek => AmdKey::Vcek,
            SigningKey::Vlek => AmdKey::Vlek,
            SigningKey::None => return Err(Error::UnsignedReport),
        };
        let from_cpuid = match r.cpuid {
            Some(c) => Some(Product::from_cpuid(c.family, c.model).ok_or(
                Error::UnknownProduct {
                    family: c.family,
                    model: c.model,
                },
            )?),
            None => None,
        };
        let product = match from_cpuid.or(product) {
            Some(p) => p,
            // A v2 report: the product of the cached chain (validity times do not matter for
            // naming the product).
            None => {
                let e = self.cache.snp_endorsements(report)?;
                snp::SnpVerifier::new()
                    .chain(&e)
                    .map_err(|err| Error::invalid("cached VCEK", err.to_string()))?
                    .product
            }
        };
        self.fetch_crl(product, key, refresh)
    }

    /// Fetch the VCEK of a chip at a TCB into the cache (and the product's cert chain first, when
    /// missing). The certificate is verified up to the pinned ARK as of the clock's now, and its
    /// product, hwID and TCB must be the requested ones.
    pub fn fetch_vcek(
        &self,
        product: Product,
        chip_id: &[u8; 64],
        tcb: u64,
        refresh: Refresh,
    ) -> Result<PathBuf> {
        let path = self.cache.vcek_path(product, chip_id, tcb);
        if refresh != Refresh::Always && path.is_file() {
            return Ok(path);
        }
        let chain_path = self.fetch_cert_chain(product, AmdKey::Vcek, Refresh::IfMissing)?;
        let url = self.vcek_url(product, chip_id, tcb);
        let der = self.http.get(&url, &[])?.body;
        cache::one_der_cert(&der, "VCEK from KDS")?;
        let mut certs_der = vec![der.clone()];
        if let Some(pem) = cache::read_optional(&chain_path)? {
            certs_der.extend(snp::certs_from_pem_or_der(&pem)?);
        }
        let chain = snp::verify_chain(
            &Endorsements {
                certs_der,
                crls_der: Vec::new(),
            },
            self.http.now(),
        )
        .map_err(|e| Error::invalid(format!("VCEK from {url}"), e.to_string()))?;
        let want_tcb = snp::TcbVersion::decode(tcb, product.turin_tcb_layout());
        let want_hwid = cache::hwid(product, chip_id);
        if chain.product != product
            || chain.signing_key != SigningKey::Vcek
            || chain.tcb != want_tcb
            || chain.hw_id.as_deref() != Some(want_hwid)
        {
            return Err(Error::invalid(
                format!("VCEK from {url}"),
                format!(
                    "expected a {product} VCEK for hwID {} at TCB {want_tcb:?}, found a {} {} for \
                     hwID {} at TCB {:?}",
                    hex::encode(want_hwid),
                    chain.product,
                    chain.signing_key,
                    chain.hw_id.as_deref().map(hex::encode).unwrap_or_default(),
                    chain.tcb
                ),
            ));
        }
        self.cache.put_vcek(product, chip_id, tcb, &der)
    }

    /// Fetch the ASK+ARK (or ASVK+ARK) chain of a product into the cache. The chain must contain
    /// the pinned ARK; it is never trusted beyond that (the verifier checks every signature).
    pub fn fetch_cert_chain(
        &self,
        product: Product,
        key: AmdKey,
        refresh: Refresh,
    ) -> Result<PathBuf> {
        let path = self.cache.amd_cert_chain_path(product, key);
        if refresh != Refresh::Always && path.is_file() {
            return Ok(path);
        }
        let url = self.cert_chain_url(product, key);
        let pem = self.http.get(&url, &[])?.body;
        self.cache.put_amd_cert_chain(product, key, &pem)
    }

    /// Refresh what a background refresher should keep current: every CRL already in the cache
    /// (with [`Refresh::IfStale`]; [`KdsFetcher::fetch_for_report`] puts the product's CRL
    /// there). VCEKs and chains do not go stale in practice (years of
    /// validity) and are fetched on demand by [`KdsFetcher::fetch_for_report`].
    pub fn refresh_cached(&self) -> RefreshReport {
        let mut report = RefreshReport::default();
        for product in Product::ALL {
            for key in [AmdKey::Vcek, AmdKey::Vlek] {
                if self.cache.amd_crl_path(product, key).is_file() {
                    report.record(
                        format!("{product} {} CRL", key.as_str()),
                        self.fetch_crl(product, key, Refresh::IfStale),
                    );
                }
            }
        }
        report
    }

    /// Fetch a product's CRL into the cache. With [`Refresh::IfStale`] a cached CRL past its
    /// next update (by the clock) is fetched again.
    pub fn fetch_crl(&self, product: Product, key: AmdKey, refresh: Refresh) -> Result<PathBuf> {
        let path = self.cache.amd_crl_path(product, key);
        let fresh = match refresh {
            Refresh::Always => false,
            Refresh::IfMissing => path.is_file(),
            Refresh::IfStale => cache::read_optional(&path)?.is_some_and(|der| {
                enclava_evidence::dcap::certs::Crl::from_der(&der)
                    .and_then(|c| c.check_validity(self.http.now()))
                    .is_ok()
            }),
        };
        if fresh {
            return Ok(path);
        }
        let url = self.crl_url(product, key);
        let der = self.http.get(&url, &[])?.body;
        self.cache.put_amd_crl(product, key, &der)
    }
}
