//! Collateral as it comes: a set of files recognized by content, never by name or layout. The
//! one loader of user-supplied collateral directories, for the CLI and the server alike.
//!
//! [`classify`] (pure) tells what one file is: Intel TCB info, QE identity, a dcap-qvl collateral
//! JSON, certificates (PEM with any explanatory text, or DER; one per file or bundles, in any
//! order) or CRLs (PEM, DER or hex), Intel's or AMD's. [`load_files`] (pure) gathers them into the
//! DCAP [`Collateral`] (issuer chains assembled from whatever certificates are present,
//! [`Collateral::from_files`]) and the SEV-SNP [`Endorsements`]. [`read_dir`] is the thin
//! directory reader around it.
//!
//! Files that are not collateral (a README, the evidence itself, a quote in hex, an unrelated
//! key) are skipped with a [`Note`] saying why; a file that is collateral but broken (a TCB info
//! that does not parse, a PEM block with bad base64, a truncated certificate) is an error naming
//! the file: silently skipping it would turn a corrupt directory into a confusing
//! `missing_collateral` later.
//!
//! Nothing here is trusted for being present: the verifier checks every signature up to the
//! roots pinned in code. Roots found in the files are not used as anchors.

use std::path::Path;

use enclava_evidence::dcap::Collateral;
use enclava_evidence::dcap::certs::{CN_PLATFORM_CA, CN_PROCESSOR_CA, CN_ROOT, Cert, Crl};
use enclava_evidence::pem;
use enclava_evidence::snp::Endorsements;

use crate::cache::MAX_FILE_BYTES;
use crate::error::{Error, Result};

/// What a file was recognized as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Intel PCS TCB info (`{"tcbInfo": .., "signature": ..}`).
    TcbInfo,
    /// Intel PCS QE identity (`{"enclaveIdentity": .., "signature": ..}`).
    QeIdentity,
    /// dcap-qvl `QuoteCollateralV3` JSON (everything in one file).
    DcapQvlJson,
    /// Certificates and/or CRLs (PEM or DER): how many of each, Intel's and the rest (AMD's).
    Pki {
        intel_certs: usize,
        other_certs: usize,
        intel_crls: usize,
        other_crls: usize,
    },
}

/// A file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub file: String,
    pub reason: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skipped {}: {}", self.file, self.reason)
    }
}

/// One recognized file.
#[derive(Debug, Clone)]
struct Recognized {
    kind: Kind,
    /// Bytes to hand to [`Collateral::from_files`] (JSON as is; Intel certificates and CRLs as
    /// DER), if the file holds Intel collateral.
    dcap: Vec<Vec<u8>>,
    snp_certs: Vec<Vec<u8>>,
    snp_crls: Vec<Vec<u8>>,
    intel_crls: Vec<Vec<u8>>,
}

/// What a set of files held.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Intel collateral pieces as (file name, bytes), in file order.
    dcap_files: Vec<(String, Vec<u8>)>,
    /// Non-Intel certificates (DER): SEV-SNP VCEK/VLEK, ASK/ASVK, ARK.
    pub snp_certs: Vec<Vec<u8>>,
    /// Non-Intel CRLs (DER): AMD KDS CRLs.
    pub snp_crls: Vec<Vec<u8>>,
    /// Intel CRLs (DER), also part of the DCAP collateral.
    pub intel_crls: Vec<Vec<u8>>,
    /// Every recognized file and what it was.
    pub files: Vec<(String, Kind)>,
    /// Files skipped as not collateral.
    pub notes: Vec<Note>,
}

impl Loaded {
    /// Whether any Intel collateral was found.
    pub fn has_dcap(&self) -> bool {
        !self.dcap_files.is_empty()
    }

    /// The DCAP collateral of all Intel files together (issuer chains assembled by content).
    pub fn dcap(&self) -> Result<Collateral> {
        let refs: Vec<(&str, &[u8])> = self
            .dcap_files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        Ok(Collateral::from_files(&refs)?)
    }

    /// The SEV-SNP endorsements (certificates and CRLs in file order; the verifier builds the
    /// chain by content and up to the pinned ARK).
    pub fn snp(&self) -> Endorsements {
        Endorsements {
            certs_der: self.snp_certs.clone(),
            crls_der: self.snp_crls.clone(),
        }
    }
}

fn corrupt(file: &str, reason: impl Into<String>) -> Error {
    Error::invalid(file, reason)
}

/// Intel's PKI by name: certificates issued by (or being) the Intel SGX Root CA or a PCK CA.
fn is_intel_cert(c: &Cert) -> bool {
    let issuer = enclava_evidence::dcap::certs::common_name(c.issuer());
    [CN_ROOT, CN_PLATFORM_CA, CN_PROCESSOR_CA].contains(&issuer.as_str())
        || c.common_name() == CN_ROOT
}

fn is_intel_crl(c: &Crl) -> bool {
    [CN_ROOT, CN_PLATFORM_CA, CN_PROCESSOR_CA].contains(&c.issuer_cn().as_str())
}

/// Certificates and CRLs (DER) into a [`Recognized`].
fn pki(file: &str, certs: Vec<Vec<u8>>, crls: Vec<Vec<u8>>) -> Result<Recognized> {
    let mut r = Recognized {
        kind: Kind::Pki {
            intel_certs: 0,
            other_certs: 0,
            intel_crls: 0,
            other_crls: 0,
        },
        dcap: Vec::new(),
        snp_certs: Vec::new(),
        snp_crls: Vec::new(),
        intel_crls: Vec::new(),
    };
    let (mut ic, mut oc, mut il, mut ol) = (0, 0, 0, 0);
    for (i, der) in certs.into_iter().enumerate() {
        let c =
            Cert::from_der(&der).map_err(|e| corrupt(file, format!("certificate #{i}: {e}")))?;
        if is_intel_cert(&c) {
            ic += 1;
            r.dcap.push(der);
        } else {
            oc += 1;
            r.snp_certs.push(der);
        }
    }
    for (i, der) in crls.into_iter().enumerate() {
        let c = Crl::from_der(&der).map_err(|e| corrupt(file, format!("CRL #{i}: {e}")))?;
        if is_intel_crl(&c) {
            il += 1;
            r.intel_crls.push(der.clone());
            r.dcap.push(der);
        } else {
            ol += 1;
            r.snp_crls.push(der);
        }
    }
    r.kind = Kind::Pki {
        intel_certs: ic,
        other_certs: oc,
        intel_crls: il,
        other_crls: ol,
    };
    Ok(r)
}

/// What one file is: `Ok(Ok(..))` collateral, `Ok(Err(reason))` not collateral, an error when it
/// is collateral but unusable.
fn recognize(file: &str, bytes: &[u8]) -> Result<std::result::Result<Recognized, String>> {
    let t = bytes.trim_ascii();
    if t.is_empty() {
        return Ok(Err("empty".into()));
    }
    if t.starts_with(b"{") {
        let looks_intel = [
            &b"\"tcbInfo\""[..],
            b"\"enclaveIdentity\"",
            b"\"tcb_info\"",
            b"\"qe_identity\"",
        ]
        .iter()
        .any(|k| t.windows(k.len()).any(|w| w == *k));
        let v: serde_json::Value = match serde_json::from_slice(t) {
            Ok(v) => v,
            Err(e) if looks_intel => {
                return Err(corrupt(
                    file,
                    format!("Intel collateral JSON does not parse: {e}"),
                ));
            }
            Err(_) => return Ok(Err("JSON that is not collateral (does not parse)".into())),
        };
        let kind = if v.get("tcbInfo").is_some() {
            Kind::TcbInfo
        } else if v.get("enclaveIdentity").is_some() {
            Kind::QeIdentity
        } else if v.get("tcb_info").is_some() || v.get("qe_identity").is_some() {
            Kind::DcapQvlJson
        } else {
            return Ok(Err(
                "JSON without tcbInfo, enclaveIdentity or tcb_info: not collateral".into(),
            ));
        };
        // Parsed now so that a broken file is reported here, under its own name.
        Collateral::from_files(&[(file, t)]).map_err(|e| corrupt(file, e.to_string()))?;
        return Ok(Ok(Recognized {
            kind,
            dcap: vec![t.to_vec()],
            snp_certs: Vec::new(),
            snp_crls: Vec::new(),
            intel_crls: Vec::new(),
        }));
    }
    if t.starts_with(b"-----BEGIN%20") {
        return recognize(file, &enclava_evidence::dcap::collateral::percent_decode(t));
    }
    if pem::is_pem(t) {
        let blocks = pem::parse_all(t).map_err(|e| corrupt(file, format!("PEM: {e}")))?;
        let (mut certs, mut crls, mut other) = (Vec::new(), Vec::new(), Vec::new());
        for b in blocks {
            match b.label {
                "CERTIFICATE" => certs.push(b.contents),
                "X509 CRL" => crls.push(b.contents),
                l => other.push(l.to_string()),
            }
        }
        if certs.is_empty() && crls.is_empty() {
            return Ok(Err(format!(
                "PEM without certificates or CRLs (found {})",
                other.join(", ")
            )));
        }
        return pki(file, certs, crls).map(Ok);
    }
    // DER on the untrimmed bytes: a certificate may well end in a byte that is ASCII whitespace.
    if let Some(seqs) = pem::der_sequences(bytes) {
        let (mut certs, mut crls, mut neither) = (Vec::new(), Vec::new(), 0usize);
        for der in seqs {
            if Cert::from_der(der).is_ok() {
                certs.push(der.to_vec());
            } else if Crl::from_der(der).is_ok() {
                crls.push(der.to_vec());
            } else {
                neither += 1;
            }
        }
        if certs.is_empty() && crls.is_empty() {
            return Ok(Err(
                "DER that is neither a certificate nor a CRL (a key, a PKCS #7 bundle?)".into(),
            ));
        }
        if neither > 0 {
            return Err(corrupt(
                file,
                format!(
                    "expected DER certificates and CRLs, found {neither} DER object(s) that are neither"
                ),
            ));
        }
        return pki(file, certs, crls).map(Ok);
    }
    let compact: Vec<u8> = t
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.iter().all(u8::is_ascii_hexdigit)
        && let Ok(der) = hex::decode(&compact)
        && let Ok(crl) = Crl::from_der(&der)
    {
        // dcap-qvl and PCS tooling keep CRLs as hex of the DER.
        return pki(file, Vec::new(), vec![crl.der]).map(Ok);
    }
    Ok(Err(
        "not collateral (not TCB info / QE identity JSON, PEM, DER, or a CRL in hex)".into(),
    ))
}

/// Classify one file by content: `Ok(Err(reason))` when it is not collateral, an error when it is
/// collateral but unusable.
pub fn classify(file: &str, bytes: &[u8]) -> Result<std::result::Result<Kind, String>> {
    Ok(recognize(file, bytes)?.map(|r| r.kind))
}

/// Gather `files` (name, bytes): every collateral file is used, others are skipped with a note.
/// The DCAP part is checked to assemble here, so an inconsistent set (two different TCB infos)
/// is reported at load time.
pub fn load_files(files: &[(String, Vec<u8>)]) -> Result<Loaded> {
    let mut out = Loaded::default();
    for (name, bytes) in files {
        match recognize(name, bytes)? {
            Err(reason) => out.notes.push(Note {
                file: name.clone(),
                reason,
            }),
            Ok(r) => {
                for (i, piece) in r.dcap.into_iter().enumerate() {
                    let label = if i == 0 {
                        name.clone()
                    } else {
                        format!("{name} (#{i})")
                    };
                    out.dcap_files.push((label, piece));
                }
                out.snp_certs.extend(r.snp_certs);
                out.snp_crls.extend(r.snp_crls);
                out.intel_crls.extend(r.intel_crls);
                out.files.push((name.clone(), r.kind));
            }
        }
    }
    if out.has_dcap() {
        out.dcap()?;
    }
    Ok(out)
}

/// Read collateral from `path`: one file, or every regular file directly inside a directory
/// (sorted by name; hidden files and the cache's temporary files skipped). A file larger than
/// any collateral is skipped with a note; one that cannot be read is an error naming it.
pub fn read_dir(path: &Path) -> Result<Loaded> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("stat", path, &e))?;
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let mut paths = Vec::new();
    if meta.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|e| Error::io("read directory", path, &e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read directory", path, &e))?;
            let p = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            // Subdirectories are not walked (a cache layout is read by `Cache`).
            if !hidden && p.is_file() {
                paths.push(p);
            }
        }
        paths.sort();
    } else {
        paths.push(path.to_path_buf());
    }
    for p in paths {
        let name = p.display().to_string();
        let len = std::fs::metadata(&p)
            .map_err(|e| Error::io("stat", &p, &e))?
            .len();
        if len > MAX_FILE_BYTES {
            notes.push(Note {
                file: name,
                reason: format!("larger than any collateral ({len} bytes)"),
            });
            continue;
        }
        let bytes = std::fs::read(&p).map_err(|e| Error::io("read", &p, &e))?;
        files.push((name, bytes));
    }
    let mut loaded = load_files(&files)?;
    notes.append(&mut loaded.notes);
    loaded.notes = notes;
    Ok(loaded)
}
