//! Chain verification (VCEK/VLEK -> ASK/ASVK -> pinned ARK), the report signature and the
//! consistency checks between report and certificates; plus the chain cache of [`SnpVerifier`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED, ParsedPublicKey};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::certs::{self, ParsedCert, ParsedCrl};
use super::report::{AttestationReport, Product, SIGNED_LEN, SigningKey, TcbVersion, parse_report};
use super::{Endorsements, SnpClaims, SnpError, TcbClaims, roots};
use crate::{Claims, CrlClaims, RevocationClaims, Tee};

/// Validity window of one certificate, checked against the verification time on every
/// verification (cached chains included).
#[derive(Debug, Clone)]
struct Window {
    what: String,
    not_before: i64,
    not_after: i64,
}

/// A CRL of this chain that verified under its issuer and revokes nothing in the chain. Its
/// freshness is not a verification failure: it is reported in the revocation claims at each
/// verification time, and policies decide (a stale CRL is no worse than no CRL, which is also
/// only visible in the claims).
#[derive(Debug, Clone)]
struct ChainCrl {
    /// Issued by the ARK: the CRL that can revoke the ASK/ASVK (AMD KDS `.../crl`).
    by_root: bool,
    issuer: String,
    der: Vec<u8>,
    crl: x509_cert::crl::CertificateList,
}

/// A certificate chain that verified up to a pinned ARK (signatures, CRLs; validity times are
/// checked separately against each verification time).
#[derive(Clone)]
pub struct VerifiedChain {
    pub product: Product,
    /// What the leaf is: [`SigningKey::Vcek`] or [`SigningKey::Vlek`].
    pub signing_key: SigningKey,
    /// The TCB the leaf certifies (its SPL extensions).
    pub tcb: TcbVersion,
    /// VCEK only: the hwID extension (64 bytes, 8 on Turin).
    pub hw_id: Option<Vec<u8>>,
    /// VLEK only: the csp_id extension.
    pub csp_id: Option<String>,
    /// The productName extension, when present (e.g. "Milan-B0").
    pub product_name: Option<String>,
    /// SHA-256 of the leaf certificate DER.
    pub leaf_sha256: [u8; 32],
    leaf_key: ParsedPublicKey,
    windows: Vec<Window>,
    crls: Vec<ChainCrl>,
}

impl std::fmt::Debug for VerifiedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedChain")
            .field("product", &self.product)
            .field("signing_key", &self.signing_key)
            .field("tcb", &self.tcb)
            .field("hw_id", &self.hw_id.as_ref().map(hex::encode))
            .field("csp_id", &self.csp_id)
            .field("product_name", &self.product_name)
            .field("leaf_sha256", &hex::encode(self.leaf_sha256))
            .finish()
    }
}

impl VerifiedChain {
    /// Every certificate of the chain must be valid at `at` (CRL freshness is reported by
    /// [`VerifiedChain::revocation`], not enforced here).
    pub fn check_time(&self, at: DateTime<Utc>) -> Result<(), SnpError> {
        let t = at.timestamp();
        for w in &self.windows {
            if t < w.not_before || t > w.not_after {
                let fmt = |s: i64| {
                    DateTime::<Utc>::from_timestamp(s, 0)
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_else(|| s.to_string())
                };
                return Err(SnpError::CertificateExpired {
                    cert: w.what.clone(),
                    not_before: fmt(w.not_before),
                    not_after: fmt(w.not_after),
                    at: at.to_rfc3339(),
                });
            }
        }
        Ok(())
    }

    /// The revocation claims as of `at`: checked when a CRL issued by this chain's ARK (the one
    /// that covers the ASK/ASVK) verified; fresh when, in addition, every consulted CRL is
    /// current at `at`.
    pub fn revocation(&self, at: DateTime<Utc>) -> RevocationClaims {
        let checked = self.crls.iter().any(|c| c.by_root);
        let crls = self
            .crls
            .iter()
            .map(|c| CrlClaims::from_crl(&c.crl, &c.der, c.issuer.clone(), at))
            .collect();
        RevocationClaims::new(checked, crls)
    }
}

/// Verify the certificate chain of `endorsements` (VCEK/VLEK -> ASK/ASVK -> pinned ARK, CRLs) as
/// of `at`, without a report. Useful for checking a chain ahead of time.
pub fn verify_chain(
    endorsements: &Endorsements,
    at: DateTime<Utc>,
) -> Result<VerifiedChain, SnpError> {
    let chain = build_chain(endorsements)?;
    chain.check_time(at)?;
    Ok(chain)
}

/// Check a CRL before it is cached: it must parse, name the pinned `ARK-{product}` as issuer and
/// carry that ARK's signature (AMD's KDS `vcek|vlek/v1/{product}/crl`). Freshness is not
/// checked here (the verifier reports it in the claims).
pub fn verify_ark_crl(der: &[u8], product: Product) -> Result<(), SnpError> {
    let crl = ParsedCrl::parse(der, 0)?;
    let roots = pinned_roots()?;
    let ark_der = roots
        .iter()
        .find(|(p, _)| *p == product)
        .map(|(_, d)| d)
        .ok_or_else(|| SnpError::UntrustedRoot(format!("pinned ARK-{product} missing")))?;
    let ark = ParsedCert::parse(ark_der, "pinned ARK")?;
    if crl.crl.tbs_cert_list.issuer != ark.cert.tbs_certificate.subject {
        return Err(SnpError::CrlSignature(format!(
            "expected a CRL issued by ARK-{product}, found issuer {}",
            certs::name_string(&crl.crl.tbs_cert_list.issuer)
        )));
    }
    crl.verify_signed_by(&ark.rsa_public_key("ARK")?)
        .map_err(|reason| {
            SnpError::CrlSignature(format!("CRL naming ARK-{product} as issuer: {reason}"))
        })
}

fn leaf_label(cn: &str) -> &'static str {
    match cn {
        "SEV-VLEK" => "VLEK",
        _ => "VCEK",
    }
}

/// The pinned ARKs as DER.
fn pinned_roots() -> Result<Vec<(Product, Vec<u8>)>, SnpError> {
    let mut out = Vec::with_capacity(Product::ALL.len());
    for product in Product::ALL {
        let der = certs::certs_from_pem_or_der(roots::ark_pem(product).as_bytes())?
            .into_iter()
            .next()
            .ok_or_else(|| SnpError::UntrustedRoot(format!("pinned ARK-{product} missing")))?;
        out.push((product, der));
    }
    Ok(out)
}

/// AMD's published ASKs and ASVKs, parsed.
fn pinned_intermediates() -> Result<Vec<ParsedCert>, SnpError> {
    let mut out = Vec::with_capacity(super::intermediates::ALL_PEM.len());
    for pem in super::intermediates::ALL_PEM {
        for der in certs::certs_from_pem_or_der(pem.as_bytes())? {
            out.push(ParsedCert::parse(&der, "pinned AMD intermediate")?);
        }
    }
    Ok(out)
}

/// Everything about the chain that does not depend on the verification time.
fn build_chain(endorsements: &Endorsements) -> Result<VerifiedChain, SnpError> {
    build_chain_with_roots(endorsements, &pinned_roots()?)
}

pub(super) fn build_chain_with_roots(
    endorsements: &Endorsements,
    roots: &[(Product, Vec<u8>)],
) -> Result<VerifiedChain, SnpError> {
    let parsed: Vec<ParsedCert> = endorsements
        .certs_der
        .iter()
        .enumerate()
        .map(|(i, d)| ParsedCert::parse(d, &format!("endorsement certificate #{i}")))
        .collect::<Result<_, _>>()?;

    // The leaf: the only EC certificate (duplicates of the same DER are fine).
    let mut leaves: Vec<&ParsedCert> = parsed.iter().filter(|c| c.is_ec()).collect();
    leaves.dedup_by(|a, b| a.der == b.der);
    let leaf = match leaves.as_slice() {
        [] => {
            return Err(SnpError::MissingCertificate(format!(
                "expected a VCEK or VLEK (EC P-384) certificate, found none among {} endorsement \
                 certificate(s)",
                parsed.len()
            )));
        }
        [one] => *one,
        many => {
            return Err(SnpError::AmbiguousCertificates(format!(
                "expected exactly one VCEK or VLEK certificate, found {}",
                many.len()
            )));
        }
    };
    let leaf_cn = leaf.subject_cn();
    let leaf_what = leaf_label(&leaf_cn);
    let leaf_key_bytes = leaf.ec_p384_point(leaf_what)?;

    // Its issuer: the ASK (VCEK) or ASVK (VLEK) whose subject is the leaf's issuer.
    let intermediates: Vec<&ParsedCert> = parsed
        .iter()
        .filter(|c| !c.is_ec() && !c.self_issued())
        .collect();
    let leaf_issuer = &leaf.cert.tbs_certificate.issuer;
    // Evidence often carries the leaf alone (Azure, a bare VCEK): then fall back to AMD's
    // published intermediates. They are not anchors: the chain is still verified up to the ARK.
    let pinned = if intermediates.is_empty() {
        pinned_intermediates()?
    } else {
        Vec::new()
    };
    let Some(ask) = intermediates
        .iter()
        .copied()
        .chain(pinned.iter())
        .find(|c| &c.cert.tbs_certificate.subject == leaf_issuer)
    else {
        let want = certs::name_string(leaf_issuer);
        if intermediates.is_empty() {
            return Err(SnpError::MissingCertificate(format!(
                "expected the ASK/ASVK that issued the {leaf_what} ({want}), found no intermediate \
                 certificate"
            )));
        }
        let found: Vec<String> = intermediates.iter().map(|c| c.subject_cn()).collect();
        return Err(SnpError::CertChainSignature {
            cert: leaf_what.into(),
            reason: format!(
                "expected an ASK/ASVK with subject {want} (the {leaf_what}'s issuer), found {}",
                found.join(", ")
            ),
        });
    };
    let ask_cn = ask.subject_cn();
    let (ask_what, kind, ask_product) = match ask_cn.strip_prefix("SEV-VLEK-") {
        Some(p) => ("ASVK", SigningKey::Vlek, p.to_string()),
        None => (
            "ASK",
            SigningKey::Vcek,
            ask_cn.strip_prefix("SEV-").unwrap_or(&ask_cn).to_string(),
        ),
    };
    if matches!(
        (leaf_cn.as_str(), kind),
        ("SEV-VCEK", SigningKey::Vlek) | ("SEV-VLEK", SigningKey::Vcek)
    ) {
        return Err(SnpError::MalformedCertificate {
            which: leaf_what.into(),
            reason: format!(
                "a certificate with CN {leaf_cn} must not be issued by the {ask_what} {ask_cn}"
            ),
        });
    }
    let ask_key = ask.rsa_public_key(ask_what)?;

    // The root: the pinned ARK whose subject is the ASK's issuer.
    let ask_issuer = &ask.cert.tbs_certificate.issuer;
    let mut root = None;
    for (product, der) in roots {
        let ark = ParsedCert::parse(der, "pinned ARK")?;
        if &ark.cert.tbs_certificate.subject == ask_issuer {
            root = Some((*product, ark));
            break;
        }
    }
    let Some((product, ark)) = root else {
        return Err(SnpError::UntrustedRoot(format!(
            "expected the {ask_what} ({ask_cn}) to be issued by a pinned AMD root (ARK-Milan, \
             ARK-Genoa, ARK-Turin), found issuer {}",
            certs::name_string(ask_issuer)
        )));
    };
    // A supplied ARK must be the pinned one.
    for c in parsed.iter().filter(|c| !c.is_ec() && c.self_issued()) {
        if c.cert.tbs_certificate.subject == ark.cert.tbs_certificate.subject && c.der != ark.der {
            return Err(SnpError::UntrustedRoot(format!(
                "expected the supplied {} to be the pinned AMD root (sha256 {}), found sha256 {}",
                c.subject_cn(),
                hex::encode(Sha256::digest(&ark.der)),
                hex::encode(Sha256::digest(&c.der))
            )));
        }
    }
    let ark_key = ark.rsa_public_key("ARK")?;

    ask.verify_signed_by(&ark_key)
        .map_err(|reason| SnpError::CertChainSignature {
            cert: format!("{ask_what} {ask_cn}"),
            reason: format!("not signed by the pinned ARK-{product}: {reason}"),
        })?;
    leaf.verify_signed_by(&ask_key)
        .map_err(|reason| SnpError::CertChainSignature {
            cert: leaf_what.into(),
            reason: format!("not signed by the {ask_what} {ask_cn}: {reason}"),
        })?;

    // Product names: the ASK's CN and the leaf's productName must name the ARK's product.
    if ask_product != product.as_str() {
        return Err(SnpError::ProductMismatch {
            expected: format!("{ask_what} for {product} (issued by ARK-{product})"),
            found: format!("{ask_what} named {ask_cn}"),
        });
    }
    let product_name = leaf.ia5(certs::OID_PRODUCT_NAME, "productName", leaf_what)?;
    if let Some(name) = &product_name {
        let base = name.split('-').next().unwrap_or_default();
        if base != product.as_str() {
            return Err(SnpError::ProductMismatch {
                expected: format!("{leaf_what} productName {product}[-stepping]"),
                found: format!("productName {name}"),
            });
        }
    }

    // TCB extensions.
    let spl = |oid, name: &str| -> Result<u8, SnpError> {
        leaf.spl(oid, name, leaf_what)?
            .ok_or_else(|| SnpError::MalformedCertificate {
                which: leaf_what.into(),
                reason: format!("expected the {name} extension ({oid}), found none"),
            })
    };
    let tcb = TcbVersion {
        bootloader: spl(certs::OID_BL_SPL, "blSPL")?,
        tee: spl(certs::OID_TEE_SPL, "teeSPL")?,
        snp: spl(certs::OID_SNP_SPL, "snpSPL")?,
        microcode: spl(certs::OID_UCODE_SPL, "ucodeSPL")?,
        fmc: if product.turin_tcb_layout() {
            Some(spl(certs::OID_FMC_SPL, "fmcSPL")?)
        } else {
            None
        },
    };
    let _ = leaf.spl(certs::OID_STRUCT_VERSION, "structVersion", leaf_what)?;
    let hw_id = leaf.hw_id(leaf_what)?;
    if kind == SigningKey::Vcek && hw_id.is_none() {
        return Err(SnpError::MalformedCertificate {
            which: leaf_what.into(),
            reason: format!(
                "expected the hwID extension ({}), found none",
                certs::OID_HW_ID
            ),
        });
    }
    let csp_id = leaf.ia5(certs::OID_CSP_ID, "csp_id", leaf_what)?;

    let mut windows = Vec::new();
    for (what, c) in [
        (leaf_what.to_string(), leaf),
        (format!("{ask_what} {ask_cn}"), ask),
        (format!("ARK-{product}"), &ark),
    ] {
        let (nb, na) = c.validity();
        windows.push(Window {
            what,
            not_before: nb,
            not_after: na,
        });
    }
    let mut chain_crls = Vec::new();

    // CRLs issued by this chain's ARK (revoking the ASK/ASVK) or ASK (revoking the leaf); CRLs of
    // other issuers cannot revoke anything here and are skipped.
    for (i, der) in endorsements.crls_der.iter().enumerate() {
        let crl = ParsedCrl::parse(der, i)?;
        let issuer = &crl.crl.tbs_cert_list.issuer;
        let by_root = issuer == &ark.cert.tbs_certificate.subject;
        let (issuer_key, issuer_what, subject) = if by_root {
            (
                &ark_key,
                format!("ARK-{product}"),
                (format!("{ask_what} {ask_cn}"), ask.serial()),
            )
        } else if issuer == &ask.cert.tbs_certificate.subject {
            (
                &ask_key,
                format!("{ask_what} {ask_cn}"),
                (leaf_what.to_string(), leaf.serial()),
            )
        } else {
            continue;
        };
        crl.verify_signed_by(issuer_key).map_err(|reason| {
            SnpError::CrlSignature(format!("CRL #{i} names {issuer_what} as issuer: {reason}"))
        })?;
        if crl.revokes(&subject.1) {
            return Err(SnpError::CertificateRevoked {
                cert: subject.0,
                serial: hex::encode(&subject.1),
                crl_issuer: issuer_what,
            });
        }
        chain_crls.push(ChainCrl {
            by_root,
            issuer: issuer_what,
            der: crl.der,
            crl: crl.crl,
        });
    }

    let leaf_key =
        ParsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &leaf_key_bytes).map_err(|_| {
            SnpError::MalformedCertificate {
                which: leaf_what.into(),
                reason: "expected a valid P-384 public key, found a point that is not on the curve"
                    .into(),
            }
        })?;
    Ok(VerifiedChain {
        product,
        signing_key: kind,
        tcb,
        hw_id,
        csp_id,
        product_name,
        leaf_sha256: Sha256::digest(&leaf.der).into(),
        leaf_key,
        windows,
        crls: chain_crls,
    })
}

pub(super) fn check_report_basics(r: &AttestationReport) -> Result<(), SnpError> {
    if r.vmpl > 3 {
        return Err(SnpError::InvalidVmpl { found: r.vmpl });
    }
    Ok(())
}

/// The report-side checks against an already verified chain.
pub(super) fn verify_report_with_chain(
    raw: &[u8],
    r: &AttestationReport,
    chain: &VerifiedChain,
    at: DateTime<Utc>,
) -> Result<Claims, SnpError> {
    chain.check_time(at)?;
    if r.key_info.signing_key != chain.signing_key {
        return Err(SnpError::SigningKeyMismatch {
            report: r.key_info.signing_key.as_str().into(),
            cert: chain.signing_key.as_str().to_uppercase(),
        });
    }
    let sig = r.signature_fixed_be().ok_or_else(|| {
        SnpError::ReportSignature(
            "expected R and S below 2^384 (upper 24 bytes zero), found larger values".into(),
        )
    })?;
    let signed = raw.get(..SIGNED_LEN).unwrap_or_default();
    chain.leaf_key.verify_sig(signed, &sig).map_err(|_| {
        SnpError::ReportSignature(format!(
            "the ECDSA P-384 signature over bytes 0..0x2A0 does not verify under the {} (sha256 {})",
            chain.signing_key.as_str().to_uppercase(),
            hex::encode(chain.leaf_sha256)
        ))
    })?;

    if let Some(c) = r.cpuid {
        match r.cpuid_product() {
            Some(p) if p == chain.product => {}
            found => {
                return Err(SnpError::ProductMismatch {
                    expected: format!("{} (from the certificate chain)", chain.product),
                    found: format!(
                        "CPUID family {:#04x} model {:#04x} in the report ({})",
                        c.family,
                        c.model,
                        found
                            .map(|p| p.as_str())
                            .unwrap_or("not a known SEV-SNP product")
                    ),
                });
            }
        }
    }

    let reported = AttestationReport::decode_tcb(r.reported_tcb, chain.product);
    let kind = chain.signing_key.as_str().to_uppercase();
    let pairs = [
        ("bootloader", reported.bootloader, chain.tcb.bootloader),
        ("tee", reported.tee, chain.tcb.tee),
        ("snp", reported.snp, chain.tcb.snp),
        ("microcode", reported.microcode, chain.tcb.microcode),
        ("fmc", reported.fmc.unwrap_or(0), chain.tcb.fmc.unwrap_or(0)),
    ];
    for (component, rep, cert) in pairs {
        if rep != cert {
            return Err(SnpError::TcbMismatch {
                component: component.into(),
                report: rep.to_string(),
                cert: cert.to_string(),
                cert_kind: kind.clone(),
            });
        }
    }

    if chain.signing_key == SigningKey::Vcek
        && !r.key_info.mask_chip_key
        && let Some(hw) = &chain.hw_id
        && r.chip_id.get(..hw.len()).unwrap_or_default() != hw.as_slice()
    {
        return Err(SnpError::ChipIdMismatch {
            expected: hex::encode(hw),
            found: hex::encode(r.chip_id),
        });
    }

    Ok(claims(r, chain, at))
}

fn claims(r: &AttestationReport, chain: &VerifiedChain, at: DateTime<Utc>) -> Claims {
    let p = chain.product;
    let snp = SnpClaims {
        version: r.version,
        product: p,
        signing_key: chain.signing_key,
        chip_id: hex::encode(r.chip_id),
        reported_tcb: TcbClaims::new(r.reported_tcb, p),
        committed_tcb: TcbClaims::new(r.committed_tcb, p),
        current_tcb: TcbClaims::new(r.current_tcb, p),
        launch_tcb: TcbClaims::new(r.launch_tcb, p),
        policy: r.policy,
        platform_info: r.platform_info,
        vmpl: r.vmpl,
        guest_svn: r.guest_svn,
        family_id: hex::encode(r.family_id),
        image_id: hex::encode(r.image_id),
        host_data: hex::encode(r.host_data),
        id_key_digest: hex::encode(r.id_key_digest),
        author_key_digest: hex::encode(r.author_key_digest),
        author_key_en: r.key_info.author_key_en,
        mask_chip_key: r.key_info.mask_chip_key,
        report_id: hex::encode(r.report_id),
        report_id_ma: hex::encode(r.report_id_ma),
        current_version: r.current_version.to_string(),
        committed_version: r.committed_version.to_string(),
        cpuid: r.cpuid,
        launch_mit_vector: r.launch_mit_vector,
        current_mit_vector: r.current_mit_vector,
        csp_id: chain.csp_id.clone(),
        signer_cert_sha256: hex::encode(chain.leaf_sha256),
    };
    Claims {
        tee: Tee::Snp,
        debug: r.policy.debug,
        measurement: hex::encode(r.measurement),
        report_data: hex::encode(r.report_data),
        tcb_status: None,
        advisory_ids: Vec::new(),
        snp: Some(snp),
        tdx: None,
        sgx: None,
        azure: None,
        sim: None,
        revocation: Some(chain.revocation(at)),
    }
}

pub(super) fn verify_uncached(
    report: &[u8],
    endorsements: &Endorsements,
    at: DateTime<Utc>,
) -> Result<Claims, SnpError> {
    let r = parse_report(report)?;
    check_report_basics(&r)?;
    let chain = build_chain(endorsements)?;
    verify_report_with_chain(report, &r, &chain, at)
}

/// How many verified chains an [`SnpVerifier`] keeps (oldest evicted first).
pub const CHAIN_CACHE_CAPACITY: usize = 256;

#[derive(Default)]
struct ChainCache {
    map: HashMap<[u8; 32], Arc<VerifiedChain>>,
    order: VecDeque<[u8; 32]>,
}

/// An SEV-SNP verifier that caches verified certificate chains, keyed by the SHA-256 of all
/// endorsement certificates and CRLs (so the VCEK/VLEK, ASK/ASVK and ARK). A repeated verification
/// with the same endorsements costs only the report parse, the validity-time checks and the P-384
/// signature check. The cache is bounded ([`CHAIN_CACHE_CAPACITY`]) and only holds chains that
/// verified; the result is always identical to [`super::verify`].
#[derive(Default)]
pub struct SnpVerifier {
    cache: Mutex<ChainCache>,
}

impl std::fmt::Debug for SnpVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnpVerifier")
            .field("cached_chains", &self.cached_chains())
            .finish()
    }
}

impl SnpVerifier {
    pub fn new() -> SnpVerifier {
        SnpVerifier::default()
    }

    /// Number of chains currently cached.
    pub fn cached_chains(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChainCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn key(endorsements: &Endorsements) -> [u8; 32] {
        let mut h = Sha256::new();
        for (tag, list) in [
            (b'C', &endorsements.certs_der),
            (b'R', &endorsements.crls_der),
        ] {
            for der in list {
                h.update([tag]);
                h.update((der.len() as u64).to_le_bytes());
                h.update(der);
            }
        }
        h.finalize().into()
    }

    /// The verified chain for `endorsements`, from the cache or verified now (not time-checked).
    pub fn chain(&self, endorsements: &Endorsements) -> Result<Arc<VerifiedChain>, SnpError> {
        let key = Self::key(endorsements);
        if let Some(c) = self.lock().map.get(&key) {
            return Ok(Arc::clone(c));
        }
        let chain = Arc::new(build_chain(endorsements)?);
        let mut cache = self.lock();
        if !cache.map.contains_key(&key) {
            while cache.map.len() >= CHAIN_CACHE_CAPACITY {
                match cache.order.pop_front() {
                    Some(old) => {
                        cache.map.remove(&old);
                    }
                    None => break,
                }
            }
            cache.order.push_back(key);
            cache.map.insert(key, Arc::clone(&chain));
        }
        Ok(chain)
    }

    /// Same result as [`super::verify`], with the chain taken from the cache when possible.
    pub fn verify(
        &self,
        report: &[u8],
        endorsements: &Endorsements,
        at: DateTime<Utc>,
    ) -> Result<Claims, SnpError> {
        let r = parse_report(report)?;
        check_report_basics(&r)?;
        let chain = self.chain(endorsements)?;
        verify_report_with_chain(report, &r, &chain, at)
    }
}
