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
    // Supplied files go through the one collateral loader (by content, PEM or DER, any order);
    // a supplied file that is not a certificate or CRL is an error, not a note.
    let named: Vec<(String, Vec<u8>)> = src
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("supplied file #{i}"), f.clone()))
        .collect();
    let loaded = crate::load::load_files(&named)?;
    if let Some(n) = loaded.notes.first() {
        return Err(Error::invalid(
            n.file.clone(),
            format!("expected certificates or CRLs, found {}", n.reason),
        ));
    }
    // Every supplied CRL is passed on, as before (the verifier uses those its chain issued).
    let file_certs = loaded.snp_certs;
    let mut file_crls = loaded.snp_crls;
    file_crls.extend(loaded.intel_crls);
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
        let loaded = crate::load::load_files(files)?;
        if !loaded.has_dcap() {
            return Err(Error::NoEndorsements(
                "expected Intel collateral among the supplied files, found none".into(),
            ));
        }
        return Ok((loaded.dcap()?, Origin::Files));
    }
    match cache {
        Some(c) => Ok((c.dcap_collateral(quote, tee)?, Origin::Cache)),
        None => Err(Error::NoEndorsements(
            "expected supplied collateral files or a cache, found neither".into(),
        )),
    }
}
