//! The offline collateral cache: a directory with a fixed layout (see the crate documentation),
//! read on the verification path and written only by the `put_*` methods (by hand-placement
//! tooling or the fetchers), always atomically.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use enclava_evidence::dcap::{self, Collateral};
use enclava_evidence::snp::{self, Endorsements, Product, SigningKey};

use crate::error::{Error, Result};

/// Largest cache file read (TCB info for the largest FMSPCs is tens of kilobytes).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Which DCAP TEE a piece of Intel collateral is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DcapTee {
    Tdx,
    Sgx,
}

impl DcapTee {
    /// `tdx` / `sgx`: the directory name in the cache and the path segment of the PCS API.
    pub fn as_str(self) -> &'static str {
        match self {
            DcapTee::Tdx => "tdx",
            DcapTee::Sgx => "sgx",
        }
    }

    /// The `id` of a TCB info for this TEE.
    pub fn tcb_info_id(self) -> &'static str {
        match self {
            DcapTee::Tdx => "TDX",
            DcapTee::Sgx => "SGX",
        }
    }

    /// The `id` of the QE identity for this TEE.
    pub fn qe_identity_id(self) -> &'static str {
        match self {
            DcapTee::Tdx => "TD_QE",
            DcapTee::Sgx => "QE",
        }
    }
}

impl std::fmt::Display for DcapTee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which Intel PCK CA issued a PCK certificate (and so which PCK CRL applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PckCa {
    Platform,
    Processor,
}

impl PckCa {
    /// `platform` / `processor`: the cache file name and the PCS `ca=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            PckCa::Platform => "platform",
            PckCa::Processor => "processor",
        }
    }

    /// The CA certificate's common name.
    pub fn common_name(self) -> &'static str {
        match self {
            PckCa::Platform => dcap::certs::CN_PLATFORM_CA,
            PckCa::Processor => dcap::certs::CN_PROCESSOR_CA,
        }
    }

    /// The CA named by a PCK certificate's issuer common name.
    pub fn from_common_name(cn: &str) -> Option<PckCa> {
        match cn {
            dcap::certs::CN_PLATFORM_CA => Some(PckCa::Platform),
            dcap::certs::CN_PROCESSOR_CA => Some(PckCa::Processor),
            _ => None,
        }
    }
}

/// Which kind of AMD endorsement key (and so which KDS tree and cache subdirectory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AmdKey {
    Vcek,
    Vlek,
}

impl AmdKey {
    /// `vcek` / `vlek`: the KDS path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            AmdKey::Vcek => "vcek",
            AmdKey::Vlek => "vlek",
        }
    }
}

/// What a quote's PCK certificate says about the collateral it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteCollateralKey {
    pub tee: DcapTee,
    pub fmspc: [u8; 6],
    pub ca: PckCa,
}

/// What a report says about the endorsements it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    pub signing_key: AmdKey,
    /// The product from the report's CPUID (reports v3+), `None` for v2 reports.
    pub product: Option<Product>,
    pub chip_id: [u8; 64],
    pub reported_tcb: u64,
}

/// The KDS hwID of a chip on `product`: the whole 64-byte CHIP_ID, or its first 8 bytes on Turin.
pub fn hwid(product: Product, chip_id: &[u8; 64]) -> &[u8] {
    if product.turin_tcb_layout() {
        &chip_id[..8]
    } else {
        &chip_id[..]
    }
}

/// A TCB_VERSION as the cache names it: its 8 bytes in report (little-endian) order, hex.
pub fn tcb_hex(tcb: u64) -> String {
    hex::encode(tcb.to_le_bytes())
}

/// Parse a report just enough to know which endorsements it needs.
pub fn report_key(report: &[u8]) -> Result<ReportKey> {
    let r = snp::parse_report(report)?;
    let signing_key = match r.key_info.signing_key {
        SigningKey::Vcek => AmdKey::Vcek,
        SigningKey::Vlek => AmdKey::Vlek,
        SigningKey::None => return Err(Error::UnsignedReport),
    };
    let product = match r.cpuid {
        Some(c) => Some(
            Product::from_cpuid(c.family, c.model).ok_or(Error::UnknownProduct {
                family: c.family,
                model: c.model,
            })?,
        ),
        None => None,
    };
    if signing_key == AmdKey::Vcek
        && (r.key_info.mask_chip_key || r.chip_id.iter().all(|&b| b == 0))
    {
        return Err(Error::ChipIdMasked);
    }
    Ok(ReportKey {
        signing_key,
        product,
        chip_id: r.chip_id,
        reported_tcb: r.reported_tcb,
    })
}

/// Parse a quote just enough to know which collateral it needs: the TEE from the quote, the FMSPC
/// from its PCK certificate's SGX extension and the CA from the PCK certificate's issuer.
pub fn quote_key(quote: &[u8], tee: DcapTee) -> Result<QuoteCollateralKey> {
    let q = dcap::parse_quote(quote)?;
    let found = if q.is_tdx() {
        DcapTee::Tdx
    } else {
        DcapTee::Sgx
    };
    if found != tee {
        return Err(Error::TeeMismatch {
            expected: tee.as_str(),
            found: found.as_str(),
        });
    }
    let chain = dcap::certs::parse_pem_chain(&q.pck_chain_pem)?;
    let leaf = chain.first().ok_or_else(|| {
        Error::invalid(
            "PCK certificate chain",
            "expected at least the PCK certificate, found an empty chain",
        )
    })?;
    let ext = dcap::certs::pck_extension(leaf)?;
    let issuer = dcap::certs::common_name(leaf.issuer());
    let ca = PckCa::from_common_name(&issuer).ok_or_else(|| {
        Error::invalid(
            "PCK certificate",
            format!(
                "expected issuer {:?} or {:?}, found {issuer:?}",
                dcap::certs::CN_PLATFORM_CA,
                dcap::certs::CN_PROCESSOR_CA
            ),
        )
    })?;
    Ok(QuoteCollateralKey {
        tee,
        fmspc: ext.fmspc,
        ca,
    })
}

/// The offline collateral cache rooted at one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Open an existing cache directory (it is never created implicitly on the read path).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Cache> {
        let root = dir.into();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(Cache { root }),
            Ok(_) => Err(Error::CacheDir {
                path: root,
                found: "a file".into(),
            }),
            Err(e) => Err(Error::CacheDir {
                path: root,
                found: e.to_string(),
            }),
        }
    }

    /// Open a cache directory, creating it (and its parents) when absent.
    pub fn create(dir: impl Into<PathBuf>) -> Result<Cache> {
        let root = dir.into();
        fs::create_dir_all(&root).map_err(|e| Error::io("create directory", &root, &e))?;
        Cache::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    // ---- layout -------------------------------------------------------------------------------

    fn amd_dir(&self, product: Product) -> PathBuf {
        self.root.join("amd").join(product.as_str())
    }

    /// `amd/{product}/vcek/{hwid_hex}/{tcb_hex}.der`.
    pub fn vcek_path(&self, product: Product, chip_id: &[u8; 64], tcb: u64) -> PathBuf {
        self.amd_dir(product)
            .join("vcek")
            .join(hex::encode(hwid(product, chip_id)))
            .join(format!("{}.der", tcb_hex(tcb)))
    }

    /// `amd/{product}/vlek/{tcb_hex}/`: every `*.der` in it is a candidate VLEK.
    pub fn vlek_dir(&self, product: Product, tcb: u64) -> PathBuf {
        self.amd_dir(product).join("vlek").join(tcb_hex(tcb))
    }

    /// `amd/{product}/cert_chain.pem` (ASK + ARK) or `amd/{product}/vlek_cert_chain.pem`
    /// (ASVK + ARK).
    pub fn amd_cert_chain_path(&self, product: Product, key: AmdKey) -> PathBuf {
        self.amd_dir(product).join(match key {
            AmdKey::Vcek => "cert_chain.pem",
            AmdKey::Vlek => "vlek_cert_chain.pem",
        })
    }

    /// `amd/{product}/crl.der` or `amd/{product}/vlek_crl.der`.
    pub fn amd_crl_path(&self, product: Product, key: AmdKey) -> PathBuf {
        self.amd_dir(product).join(match key {
            AmdKey::Vcek => "crl.der",
            AmdKey::Vlek => "vlek_crl.der",
        })
    }

    fn intel_dir(&self) -> PathBuf {
        self.root.join("intel")
    }

    /// `intel/tcb/{tee}/{fmspc_hex}.json`: the PCS TCB info response body, byte for byte.
    pub fn tcb_info_path(&self, tee: DcapTee, fmspc: &[u8; 6]) -> PathBuf {
        self.intel_dir()
            .join("tcb")
            .join(tee.as_str())
            .join(format!("{}.json", hex::encode(fmspc)))
    }

    /// `intel/tcb/{tee}/{fmspc_hex}.issuer_chain.pem`: the TCB Signing chain (from the
    /// `TCB-Info-Issuer-Chain` header, URL-decoded).
    pub fn tcb_info_chain_path(&self, tee: DcapTee, fmspc: &[u8; 6]) -> PathBuf {
        self.intel_dir()
            .join("tcb")
            .join(tee.as_str())
            .join(format!("{}.issuer_chain.pem", hex::encode(fmspc)))
    }

    /// `intel/qe/{tee}.json`: the PCS QE identity response body, byte for byte.
    pub fn qe_identity_path(&self, tee: DcapTee) -> PathBuf {
        self.intel_dir()
            .join("qe")
            .join(format!("{}.json", tee.as_str()))
    }

    /// `intel/qe/{tee}.issuer_chain.pem`.
    pub fn qe_identity_chain_path(&self, tee: DcapTee) -> PathBuf {
        self.intel_dir()
            .join("qe")
            .join(format!("{}.issuer_chain.pem", tee.as_str()))
    }

    /// `intel/crl/root.der`: the Intel SGX Root CA CRL.
    pub fn root_crl_path(&self) -> PathBuf {
        self.intel_dir().join("crl").join("root.der")
    }

    /// `intel/crl/{platform|processor}.der`: a PCK CRL.
    pub fn pck_crl_path(&self, ca: PckCa) -> PathBuf {
        self.intel_dir()
            .join("crl")
            .join(format!("{}.der", ca.as_str()))
    }

    /// `intel/crl/{platform|processor}.issuer_chain.pem` (optional, informational).
    pub fn pck_crl_chain_path(&self, ca: PckCa) -> PathBuf {
        self.intel_dir()
            .join("crl")
            .join(format!("{}.issuer_chain.pem", ca.as_str()))
    }

    // ---- lookups (the hot path: reads only) ---------------------------------------------------

    /// The endorsements of an SEV-SNP report from the cache: the VCEK for the report's chip and
    /// REPORTED_TCB (or the VLEK for its TCB), plus the product's cert chain and CRL when present.
    /// The product comes from the report's CPUID (v3+); for v2 reports every product is tried and
    /// exactly one must have a matching VCEK.
    pub fn snp_endorsements(&self, report: &[u8]) -> Result<Endorsements> {
        let key = report_key(report)?;
        let products: Vec<Product> = match key.product {
            Some(p) => vec![p],
            None => Product::ALL.to_vec(),
        };
        let (product, leaf) = match key.signing_key {
            AmdKey::Vcek => self.find_vcek(&products, &key)?,
            AmdKey::Vlek => self.find_vlek(&products, key.reported_tcb)?,
        };
        let mut e = Endorsements::default();
        e.certs_der.push(leaf);
        let chain_path = self.amd_cert_chain_path(product, key.signing_key);
        if let Some(pem) = read_optional(&chain_path)? {
            let certs = snp::certs_from_pem_or_der(&pem)
                .map_err(|e| Error::invalid(chain_path.display().to_string(), e.to_string()))?;
            e.certs_der.extend(certs);
        }
        let crl_path = self.amd_crl_path(product, key.signing_key);
        if let Some(der) = read_optional(&crl_path)? {
            let crls = snp::crls_from_pem_or_der(&der)
                .map_err(|e| Error::invalid(crl_path.display().to_string(), e.to_string()))?;
            e.crls_der.extend(crls);
        }
        Ok(e)
    }

    /// The cached AMD CRLs an SEV-SNP report's chain may need: `crl.der` (VCEK) or
    /// `vlek_crl.der` (VLEK) of the report's product (every product for v2 reports, which predate
    /// the CPUID field; the verifier ignores CRLs of other issuers). Empty when none is cached.
    /// Unlike [`Cache::snp_endorsements`] it needs no VCEK in the cache: it serves requests that
    /// bring their own certificates (an extended report, MAA's VcekCertChain, Azure's HCL).
    pub fn snp_crls(&self, report: &[u8]) -> Result<Vec<Vec<u8>>> {
        let r = snp::parse_report(report)?;
        let key = match r.key_info.signing_key {
            SigningKey::Vcek => AmdKey::Vcek,
            SigningKey::Vlek => AmdKey::Vlek,
            SigningKey::None => return Err(Error::UnsignedReport),
        };
        let products: Vec<Product> = match r.cpuid {
            Some(c) => {
                vec![
                    Product::from_cpuid(c.family, c.model).ok_or(Error::UnknownProduct {
                        family: c.family,
                        model: c.model,
                    })?,
                ]
            }
            None => Product::ALL.to_vec(),
        };
        let mut out = Vec::new();
        for product in products {
            let path = self.amd_crl_path(product, key);
            if let Some(der) = read_optional(&path)? {
                out.extend(
                    snp::crls_from_pem_or_der(&der)
                        .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?,
                );
            }
        }
        Ok(out)
    }

    fn find_vcek(&self, products: &[Product], key: &ReportKey) -> Result<(Product, Vec<u8>)> {
        let candidates: Vec<(Product, PathBuf)> = products
            .iter()
            .map(|&p| (p, self.vcek_path(p, &key.chip_id, key.reported_tcb)))
            .collect();
        let mut found = Vec::new();
        for (p, path) in &candidates {
            if let Some(der) = read_optional(path)? {
                found.push((*p, path.clone(), der));
            }
        }
        match found.len() {
            1 => {
                let (p, _, der) = found.swap_remove(0);
                Ok((p, der))
            }
            0 => Err(Error::MissingFile {
                what: format!(
                    "VCEK for chip {} at TCB {}",
                    short_hex(&key.chip_id),
                    tcb_hex(key.reported_tcb)
                ),
                expected: candidates.into_iter().map(|(_, p)| p).collect(),
            }),
            _ => Err(Error::Ambiguous {
                what: "VCEK (the report names no product and several products match)".into(),
                found: found.into_iter().map(|(_, p, _)| p).collect(),
            }),
        }
    }

    fn find_vlek(&self, products: &[Product], tcb: u64) -> Result<(Product, Vec<u8>)> {
        let mut found: Vec<(Product, PathBuf)> = Vec::new();
        let mut dirs = Vec::new();
        for &p in products {
            let dir = self.vlek_dir(p, tcb);
            for path in list_der(&dir)? {
                found.push((p, path));
            }
            dirs.push(dir.join("*.der"));
        }
        match found.len() {
            1 => {
                let (p, path) = found.swap_remove(0);
                let der = read_optional(&path)?.ok_or_else(|| Error::MissingFile {
                    what: "VLEK".into(),
                    expected: vec![path.clone()],
                })?;
                Ok((p, der))
            }
            0 => Err(Error::MissingFile {
                what: format!("VLEK at TCB {} (VLEKs are placed by hand)", tcb_hex(tcb)),
                expected: dirs,
            }),
            _ => Err(Error::Ambiguous {
                what: format!("VLEK at TCB {}", tcb_hex(tcb)),
                found: found.into_iter().map(|(_, p)| p).collect(),
            }),
        }
    }

    /// The Intel collateral for a DCAP quote from the cache: TCB info for the PCK certificate's
    /// FMSPC, QE identity, root CA CRL and the PCK CRL of the CA that issued the PCK certificate,
    /// with their issuer chains. Every file is required.
    pub fn dcap_collateral(&self, quote: &[u8], tee: DcapTee) -> Result<Collateral> {
        let key = quote_key(quote, tee)?;
        self.dcap_collateral_for(&key)
    }

    /// Like [`Cache::dcap_collateral`] for an already known FMSPC and CA.
    pub fn dcap_collateral_for(&self, key: &QuoteCollateralKey) -> Result<Collateral> {
        let fmspc = hex::encode(key.fmspc);
        let required = [
            (
                self.tcb_info_path(key.tee, &key.fmspc),
                format!("{} TCB info for FMSPC {fmspc}", key.tee),
            ),
            (
                self.tcb_info_chain_path(key.tee, &key.fmspc),
                format!("{} TCB info issuer chain for FMSPC {fmspc}", key.tee),
            ),
            (
                self.qe_identity_path(key.tee),
                format!("{} QE identity", key.tee),
            ),
            (
                self.qe_identity_chain_path(key.tee),
                format!("{} QE identity issuer chain", key.tee),
            ),
            (self.root_crl_path(), "Intel SGX Root CA CRL".to_string()),
            (
                self.pck_crl_path(key.ca),
                format!("PCK CRL of the {} CA", key.ca.as_str()),
            ),
        ];
        let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(required.len() + 1);
        for (path, what) in required {
            let bytes = read_optional(&path)?.ok_or_else(|| Error::MissingFile {
                what,
                expected: vec![path.clone()],
            })?;
            files.push((path.display().to_string(), bytes));
        }
        let chain_path = self.pck_crl_chain_path(key.ca);
        if let Some(bytes) = read_optional(&chain_path)? {
            files.push((chain_path.display().to_string(), bytes));
        }
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        Ok(Collateral::from_files(&refs)?)
    }

    // ---- writes (never on the verification path) ----------------------------------------------

    /// Store a VCEK (DER) for a chip and TCB. The certificate must parse; whether it is the right
    /// one is checked at verification (a wrong one fails closed: chip id or TCB mismatch). Use
    /// [`Cache::import_snp_leaf`] to derive the location from a verified certificate instead.
    pub fn put_vcek(
        &self,
        product: Product,
        chip_id: &[u8; 64],
        tcb: u64,
        der: &[u8],
    ) -> Result<PathBuf> {
        one_der_cert(der, "VCEK")?;
        let path = self.vcek_path(product, chip_id, tcb);
        write_atomic(&path, der)?;
        Ok(path)
    }

    /// Store a VLEK (DER) for a TCB (VLEKs come from the cloud provider, never from KDS). The file
    /// is named by the certificate's SHA-256 prefix.
    pub fn put_vlek(&self, product: Product, tcb: u64, der: &[u8]) -> Result<PathBuf> {
        one_der_cert(der, "VLEK")?;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(der);
        let name = format!("{}.der", hex::encode(&digest[..8]));
        let path = self.vlek_dir(product, tcb).join(name);
        write_atomic(&path, der)?;
        Ok(path)
    }

    /// Verify a VCEK or VLEK (DER) up to the pinned AMD roots as of `at` and store it where the
    /// lookups will find it (product, hwID and TCB come from the certificate itself).
    pub fn import_snp_leaf(&self, der: &[u8], at: DateTime<Utc>) -> Result<PathBuf> {
        one_der_cert(der, "VCEK/VLEK")?;
        let chain = snp::verify_chain(
            &Endorsements {
                certs_der: vec![der.to_vec()],
                crls_der: Vec::new(),
            },
            at,
        )?;
        let tcb = encode_tcb(&chain.tcb, chain.product);
        match chain.signing_key {
            SigningKey::Vcek => {
                let hw = chain.hw_id.as_deref().ok_or_else(|| {
                    Error::invalid("VCEK", "expected a hwID extension, found none")
                })?;
                let mut chip_id = [0u8; 64];
                let dst = chip_id.get_mut(..hw.len()).ok_or_else(|| {
                    Error::invalid(
                        "VCEK",
                        format!("expected a hwID of 64 or 8 bytes, found {}", hw.len()),
                    )
                })?;
                dst.copy_from_slice(hw);
                self.put_vcek(chain.product, &chip_id, tcb, der)
            }
            SigningKey::Vlek => self.put_vlek(chain.product, tcb, der),
            SigningKey::None => Err(Error::invalid(
                "VCEK/VLEK",
                "expected a VCEK or VLEK, found neither",
            )),
        }
    }

    /// Store the ASK+ARK (VCEK) or ASVK+ARK (VLEK) chain of a product: PEM with exactly two
    /// certificates, one of which is the pinned ARK of `product`.
    pub fn put_amd_cert_chain(&self, product: Product, key: AmdKey, pem: &[u8]) -> Result<PathBuf> {
        check_amd_chain(product, key, pem)?;
        let path = self.amd_cert_chain_path(product, key);
        write_atomic(&path, pem)?;
        Ok(path)
    }

    /// Store an AMD CRL (DER) of a product; it must parse, be issued by `ARK-{product}` and be
    /// signed by the pinned ARK (a CRL that would fail verification is never cached: it would
    /// fail every attestation of the product until replaced).
    pub fn put_amd_crl(&self, product: Product, key: AmdKey, der: &[u8]) -> Result<PathBuf> {
        let crl = dcap::certs::Crl::from_der(der)
            .map_err(|e| Error::invalid(format!("AMD {product} CRL"), e.to_string()))?;
        let want = format!("ARK-{product}");
        if crl.issuer_cn() != want {
            return Err(Error::invalid(
                format!("AMD {product} CRL"),
                format!("expected issuer {want:?}, found {:?}", crl.issuer_cn()),
            ));
        }
        snp::verify_ark_crl(der, product)
            .map_err(|e| Error::invalid(format!("AMD {product} CRL"), e.to_string()))?;
        let path = self.amd_crl_path(product, key);
        write_atomic(&path, der)?;
        Ok(path)
    }

    /// Store a PCS TCB info response (the exact body) and its issuer chain (PEM). The TCB info
    /// must parse, be for `tee` and `fmspc`, and the chain must start with the TCB Signing
    /// certificate. The chain is written first, the TCB info last.
    pub fn put_tcb_info(
        &self,
        tee: DcapTee,
        fmspc: &[u8; 6],
        body: &[u8],
        issuer_chain_pem: &[u8],
    ) -> Result<PathBuf> {
        check_tcb_signing_chain(issuer_chain_pem, "TCB info issuer chain")?;
        let c = Collateral::from_files(&[("TCB info", body)])?;
        let info = c.tcb_info()?;
        if info.id != tee.tcb_info_id() {
            return Err(Error::invalid(
                "TCB info",
                format!("expected id {:?}, found {:?}", tee.tcb_info_id(), info.id),
            ));
        }
        if !info.fmspc.eq_ignore_ascii_case(&hex::encode(fmspc)) {
            return Err(Error::invalid(
                "TCB info",
                format!(
                    "expected FMSPC {}, found {:?}",
                    hex::encode(fmspc),
                    info.fmspc
                ),
            ));
        }
        write_atomic(&self.tcb_info_chain_path(tee, fmspc), issuer_chain_pem)?;
        let path = self.tcb_info_path(tee, fmspc);
        write_atomic(&path, body)?;
        Ok(path)
    }

    /// Store a PCS QE identity response (the exact body) and its issuer chain (PEM).
    pub fn put_qe_identity(
        &self,
        tee: DcapTee,
        body: &[u8],
        issuer_chain_pem: &[u8],
    ) -> Result<PathBuf> {
        check_tcb_signing_chain(issuer_chain_pem, "QE identity issuer chain")?;
        let c = Collateral::from_files(&[("QE identity", body)])?;
        let id = c.qe_identity()?;
        if id.id != tee.qe_identity_id() {
            return Err(Error::invalid(
                "QE identity",
                format!("expected id {:?}, found {:?}", tee.qe_identity_id(), id.id),
            ));
        }
        write_atomic(&self.qe_identity_chain_path(tee), issuer_chain_pem)?;
        let path = self.qe_identity_path(tee);
        write_atomic(&path, body)?;
        Ok(path)
    }

    /// Store the Intel SGX Root CA CRL (DER).
    pub fn put_root_crl(&self, der: &[u8]) -> Result<PathBuf> {
        check_intel_crl(der, dcap::certs::CN_ROOT, "Intel SGX Root CA CRL")?;
        let path = self.root_crl_path();
        write_atomic(&path, der)?;
        Ok(path)
    }

    /// Store a PCK CRL (DER) and, when given, its issuer chain (PEM).
    pub fn put_pck_crl(
        &self,
        ca: PckCa,
        der: &[u8],
        issuer_chain_pem: Option<&[u8]>,
    ) -> Result<PathBuf> {
        check_intel_crl(der, ca.common_name(), "PCK CRL")?;
        if let Some(chain) = issuer_chain_pem {
            let certs = dcap::certs::parse_pem_chain(chain)?;
            let leaf = certs.first().map(|c| c.common_name()).unwrap_or_default();
            if leaf != ca.common_name() {
                return Err(Error::invalid(
                    "PCK CRL issuer chain",
                    format!("expected leaf {:?}, found {leaf:?}", ca.common_name()),
                ));
            }
            write_atomic(&self.pck_crl_chain_path(ca), chain)?;
        }
        let path = self.pck_crl_path(ca);
        write_atomic(&path, der)?;
        Ok(path)
    }
}

/// Re-encode a decoded TCB_VERSION into its raw u64 (inverse of `TcbVersion::decode`).
pub(crate) fn encode_tcb(t: &snp::TcbVersion, product: Product) -> u64 {
    let mut b = [0u8; 8];
    if product.turin_tcb_layout() {
        b[0] = t.fmc.unwrap_or(0);
        b[1] = t.bootloader;
        b[2] = t.tee;
        b[3] = t.snp;
    } else {
        b[0] = t.bootloader;
        b[1] = t.tee;
        b[6] = t.snp;
    }
    b[7] = t.microcode;
    u64::from_le_bytes(b)
}

fn short_hex(b: &[u8]) -> String {
    let h = hex::encode(b);
    match h.get(..16) {
        Some(p) if h.len() > 16 => format!("{p}..."),
        _ => h,
    }
}

pub(crate) fn one_der_cert(der: &[u8], what: &str) -> Result<()> {
    let certs = snp::certs_from_pem_or_der(der)
        .map_err(|e| Error::invalid(what.to_string(), e.to_string()))?;
    match certs.as_slice() {
        [one] if one.as_slice() == der => Ok(()),
        _ => Err(Error::invalid(
            what.to_string(),
            format!(
                "expected exactly one DER certificate, found {} certificate(s) in {} bytes",
                certs.len(),
                der.len()
            ),
        )),
    }
}

pub(crate) fn check_amd_chain(product: Product, key: AmdKey, pem: &[u8]) -> Result<()> {
    let what = format!("AMD {product} {} cert chain", key.as_str());
    let certs =
        snp::certs_from_pem_or_der(pem).map_err(|e| Error::invalid(&what, e.to_string()))?;
    let ark = snp::certs_from_pem_or_der(snp::roots::ark_pem(product).as_bytes())?;
    let ark = ark
        .first()
        .ok_or_else(|| Error::invalid(&what, "pinned ARK missing"))?;
    if certs.len() != 2 || !certs.iter().any(|c| c == ark) {
        return Err(Error::invalid(
            &what,
            format!(
                "expected 2 certificates (ASK/ASVK and the pinned ARK-{product}), found {} \
                 certificate(s){}",
                certs.len(),
                if certs.iter().any(|c| c == ark) {
                    ""
                } else {
                    " without the pinned ARK"
                }
            ),
        ));
    }
    Ok(())
}

fn check_tcb_signing_chain(pem: &[u8], what: &str) -> Result<()> {
    let certs = dcap::certs::parse_pem_chain(pem)?;
    let leaf = certs.first().map(|c| c.common_name()).unwrap_or_default();
    if leaf != dcap::certs::CN_TCB_SIGNING {
        return Err(Error::invalid(
            what,
            format!(
                "expected leaf {:?}, found {leaf:?}",
                dcap::certs::CN_TCB_SIGNING
            ),
        ));
    }
    Ok(())
}

fn check_intel_crl(der: &[u8], issuer_cn: &str, what: &str) -> Result<()> {
    let crl = dcap::certs::Crl::from_der(der).map_err(|e| Error::invalid(what, e.to_string()))?;
    if crl.issuer_cn() != issuer_cn {
        return Err(Error::invalid(
            what,
            format!("expected issuer {issuer_cn:?}, found {:?}", crl.issuer_cn()),
        ));
    }
    Ok(())
}

/// Read a cache file: `None` when it does not exist; a typed error when it cannot be read or is
/// implausibly large.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, &e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, &e))?;
    if !meta.is_file() {
        return Err(Error::io(
            "read",
            path,
            &std::io::Error::other("expected a regular file, found something else"),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
            found: meta.len(),
        });
    }
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", path, &e))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
            found: buf.len() as u64,
        });
    }
    Ok(Some(buf))
}

/// The `*.der` files of a directory (none when it does not exist), sorted, temp files skipped.
pub(crate) fn list_der(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir, &e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("list", dir, &e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".der") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` atomically: a new temporary file in the same directory, fsync, rename
/// over the target, fsync the directory. A crash leaves either the old file or the new one (and
/// at worst a stray `.*.tmp.*` file, which lookups ignore).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Config(format!("{} has no parent directory", path.display())))?;
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, &e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, &e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, &e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, &e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, &e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, &e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    // Directories cannot be opened for fsync here; the rename itself is atomic.
    Ok(())
}
