//! Choosing where endorsements come from, in a fixed order: what travels with the evidence, then
//! what the user supplied, then the offline cache. Nothing here fetches.

use enclava_evidence::dcap::Collateral;
use enclava_evidence::snp::{self, CertTableKind, Endorsements};

use crate::cache::{Cache, DcapTee};
use crate::error::{Error, Result};

/// Where endorsements were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The extended report's certificate table.
    Evidence,
    /// Files the user supplied.
    Files,
    /// The offline cache.
    Cache,
}

/// The places SEV-SNP endorsements may come from.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnpSources<'a> {
    /// The extended report's certificate table (the `auxblob`), when the evidence carries one.
    pub cert_table: Option<&'a [u8]>,
    /// Supplied files: certificates and CRLs, PEM (any number of blocks) or DER.
    pub files: &'a [Vec<u8>],
    /// The offline cache.
    pub cache: Option<&'a Cache>,
}

/// The endorsements of `report`:
///
/// 1. a certificate table with a VCEK or VLEK entry: its VCEK/VLEK/ASK/ARK entries;
/// 2. else supplied files with at least one certificate: those certificates (plus the table's
///    ASK/ARK entries, if any);
/// 3. else the cache ([`Cache::snp_endorsements`]).
///
/// CRLs among the supplied files are added in every case; when there are none and a cache is
/// given, the cache's AMD CRLs for the report's product ([`Cache::snp_crls`]), so that revocation
/// is checked whichever way the certificates came.
pub fn snp_endorsements(report: &[u8], src: &SnpSources<'_>) -> Result<(Endorsements, Origin)> {
    let table = match src.cert_table {
        Some(t) => snp::parse_cert_table(t)?,
        None => Vec::new(),
    };
    let mut file_certs = Vec::new();
    let mut file_crls = Vec::new();
    for (i, f) in src.files.iter().enumerate() {
        let has = |tag: &[u8]| f.windows(tag.len()).any(|w| w == tag);
        if has(b"-----BEGIN ") {
            let (certs, crls) = (
                has(b"-----BEGIN CERTIFICATE-----"),
                has(b"-----BEGIN X509 CRL-----"),
            );
            if !certs && !crls {
                return Err(Error::invalid(
                    format!("supplied file #{i}"),
                    "expected CERTIFICATE or X509 CRL PEM blocks, found neither",
                ));
            }
            if certs {
                file_certs.extend(snp::certs_from_pem_or_der(f)?);
            }
            if crls {
                file_crls.extend(snp::crls_from_pem_or_der(f)?);
            }
        } else if let Ok(certs) = snp::certs_from_pem_or_der(f) {
            file_certs.extend(certs);
        } else {
            let crls = snp::crls_from_pem_or_der(f).map_err(|e| {
                Error::invalid(
                    format!("supplied file #{i}"),
                    format!("expected DER certificates or a DER CRL, found neither ({e})"),
                )
            })?;
            file_crls.extend(crls);
        }
    }
    let has_leaf = table
        .iter()
        .any(|e| matches!(e.kind, CertTableKind::Vcek | CertTableKind::Vlek));
    let table_certs = table
        .into_iter()
        .filter(|e| e.kind != CertTableKind::Other)
        .map(|e| e.data);
    let (mut e, origin) = if has_leaf {
        (
            Endorsements {
                certs_der: table_certs.collect(),
                crls_der: Vec::new(),
            },
            Origin::Evidence,
        )
    } else if !file_certs.is_empty() {
        let mut certs_der = file_certs;
        certs_der.extend(table_certs);
        (
            Endorsements {
                certs_der,
                crls_der: Vec::new(),
            },
            Origin::Files,
        )
    } else if let Some(cache) = src.cache {
        (cache.snp_endorsements(report)?, Origin::Cache)
    } else {
        return Err(Error::NoEndorsements(
            "expected a VCEK/VLEK in the certificate table, a supplied certificate or a cache, \
             found none of them"
                .into(),
        ));
    };
    e.crls_der.extend(file_crls);
    if e.crls_der.is_empty()
        && origin != Origin::Cache
        && let Some(cache) = src.cache
    {
        e.crls_der = cache.snp_crls(report)?;
    }
    Ok((e, origin))
}

/// The Intel collateral of `quote`: the supplied files (PCS files recognized by content, or a
/// dcap-qvl collateral JSON) when there are any, else the cache.
pub fn dcap_collateral(
    quote: &[u8],
    tee: DcapTee,
    files: &[(String, Vec<u8>)],
    cache: Option<&Cache>,
) -> Result<(Collateral, Origin)> {
    if !files.is_empty() {
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        return Ok((Collateral::from_files(&refs)?, Origin::Files));
    }
    match cache {
        Some(c) => Ok((c.dcap_collateral(quote, tee)?, Origin::Cache)),
        None => Err(Error::NoEndorsements(
            "expected supplied collateral files or a cache, found neither".into(),
        )),
    }
}
