//! X.509 certificates and CRLs of the Intel DCAP PKI: parsing (`x509-cert`/`der`), ECDSA P-256
//! signature checks (aws-lc-rs), chain building to the pinned Intel SGX Root CA, validity windows,
//! revocation, and the Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use chrono::{DateTime, Utc};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Header, Reader, SliceReader, Tag, Tagged};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::name::Name;

use super::DcapError;
use super::roots::INTEL_SGX_ROOT_CA_PEM;

/// ecdsa-with-SHA256.
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// Intel SGX extensions of PCK certificates.
pub const SGX_EXTENSIONS_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1");
const CN_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Common names of the Intel DCAP PKI.
const OID_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const OID_AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");

pub const CN_ROOT: &str = "Intel SGX Root CA";
pub const CN_PLATFORM_CA: &str = "Intel SGX PCK Platform CA";
pub const CN_PROCESSOR_CA: &str = "Intel SGX PCK Processor CA";
pub const CN_TCB_SIGNING: &str = "Intel SGX TCB Signing";

/// How many verified signatures [`SigCache`] remembers before it starts over.
pub const SIG_CACHE_CAPACITY: usize = 4096;

/// A bounded set of (key, message, signature) digests that verified before. Only successes are
/// stored, so a hit can only skip work that would have succeeded again.
#[derive(Debug, Default)]
pub struct SigCache {
    seen: HashSet<[u8; 32]>,
    /// Parsed values keyed by SHA-256 of the exact bytes they were parsed (and, for chains,
    /// verified) from: PCK chains from quotes, TCB info and QE identity bodies.
    pub(super) chains: HashMap<[u8; 32], Arc<Vec<Cert>>>,
    pub(super) tcb_infos: HashMap<[u8; 32], Arc<super::collateral::TcbInfo>>,
    pub(super) qe_identities: HashMap<[u8; 32], Arc<super::collateral::EnclaveIdentity>>,
}

/// Which memo table of [`SigCache`] a value lives in.
pub(super) type MemoSlot<T> = fn(&mut SigCache) -> &mut HashMap<[u8; 32], Arc<T>>;

impl SigCache {
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Verification context: optionally a shared signature cache.
#[derive(Clone, Copy, Default)]
pub struct Ctx<'a> {
    pub cache: Option<&'a Mutex<SigCache>>,
}

#[derive(Clone, Copy)]
enum SigFormat {
    Asn1,
    Fixed,
}

impl Ctx<'_> {
    fn verify(&self, fmt: SigFormat, public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        let key = self.cache.map(|_| {
            let mut h = Sha256::new();
            h.update([fmt as u8]);
            for part in [public_key, msg, sig] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            let out: [u8; 32] = h.finalize().into();
            out
        });
        if let (Some(cache), Some(k)) = (self.cache, key.as_ref())
            && let Ok(guard) = cache.lock()
            && guard.seen.contains(k)
        {
            return true;
        }
        let ok = match fmt {
            SigFormat::Asn1 => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key).verify(msg, sig)
            }
            SigFormat::Fixed => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key).verify(msg, sig)
            }
        }
        .is_ok();
        if ok
            && let (Some(cache), Some(k)) = (self.cache, key)
            && let Ok(mut guard) = cache.lock()
        {
            if guard.seen.len() >= SIG_CACHE_CAPACITY {
                guard.seen.clear();
            }
            guard.seen.insert(k);
        }
        ok
    }

    /// ECDSA P-256 SHA-256 with a DER (ASN.1) signature.
    pub fn verify_asn1(&self, public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        self.verify(SigFormat::Asn1, public_key, msg, sig)
    }

    /// The value made from `bytes` by `make` (parsing, chain verification), remembered in `slot`
    /// when this context has a cache. Only successes are remembered; the same bytes always give
    /// the same value, so a hit is exactly what `make` would return again.
    pub(super) fn memo<T>(
        &self,
        slot: MemoSlot<T>,
        bytes: &[u8],
        make: impl FnOnce() -> Result<T, DcapError>,
    ) -> Result<Arc<T>, DcapError> {
        let Some(cache) = self.cache else {
            return make().map(Arc::new);
        };
        let key: [u8; 32] = Sha256::digest(bytes).into();
        if let Ok(mut guard) = cache.lock()
            && let Some(v) = slot(&mut guard).get(&key)
        {
            return Ok(Arc::clone(v));
        }
        let value = Arc::new(make()?);
        if let Ok(mut guard) = cache.lock() {
            let table = slot(&mut guard);
            if table.len() >= SIG_CACHE_CAPACITY {
                table.clear();
            }
            table.insert(key, Arc::clone(&value));
        }
        Ok(value)
    }

    /// ECDSA P-256 SHA-256 with a raw r||s signature (uncached: quote-specific signatures).
    pub fn verify_fixed_uncached(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
            .verify(msg, sig)
            .is_ok()
    }

    /// ECDSA P-256 SHA-256 with a raw r||s signature (cached: collateral).
    pub fn verify_fixed(&self, public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        self.verify(SigFormat::Fixed, public_key, msg, sig)
    }
}

/// A certificate with its exact DER and the raw to-be-signed bytes.
#[derive(Debug, Clone)]
pub struct Cert {
    pub der: Vec<u8>,
    pub tbs: Vec<u8>,
    pub cert: Certificate,
}

/// The first element (the to-be-signed part) of a signed SEQUENCE, as its exact bytes.
fn first_tlv(der: &[u8]) -> Result<Vec<u8>, der::Error> {
    let mut r = SliceReader::new(der)?;
    let header = Header::decode(&mut r)?;
    header.tag.assert_eq(Tag::Sequence)?;
    Ok(r.tlv_bytes()?.to_vec())
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Cert, DcapError> {
        let cert = Certificate::from_der(der).map_err(|e| {
            DcapError::MalformedCertificate(format!("X.509 certificate does not parse: {e}"))
        })?;
        let tbs = first_tlv(der).map_err(|e| {
            DcapError::MalformedCertificate(format!("X.509 certificate does not parse: {e}"))
        })?;
        Ok(Cert {
            der: der.to_vec(),
            tbs,
            cert,
        })
    }

    pub fn subject(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }

    pub fn issuer(&self) -> &Name {
        &self.cert.tbs_certificate.issuer
    }

    pub fn common_name(&self) -> String {
        common_name(self.subject())
    }

    /// The uncompressed EC point of the subject public key.
    pub fn public_key(&self) -> &[u8] {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
    }

    /// The serial number without leading zero bytes.
    pub fn serial(&self) -> Vec<u8> {
        normalize_serial(self.cert.tbs_certificate.serial_number.as_bytes())
    }

    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    pub fn is_self_issued(&self) -> bool {
        names_equal(self.subject(), self.issuer())
    }

    /// The key identifier of the extension `oid` (subject or authority key identifier), if the
    /// certificate carries it and it parses.
    fn key_id(&self, oid: ObjectIdentifier) -> Option<Vec<u8>> {
        use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
        let ext = self
            .cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)?;
        let v = ext.extn_value.as_bytes();
        if oid == OID_SUBJECT_KEY_ID {
            SubjectKeyIdentifier::from_der(v)
                .ok()
                .map(|k| k.0.as_bytes().to_vec())
        } else {
            AuthorityKeyIdentifier::from_der(v)
                .ok()?
                .key_identifier
                .map(|k| k.as_bytes().to_vec())
        }
    }

    /// Whether `parent` may have issued `self` by name and, where both carry them, by key
    /// identifier (authority key id of the child = subject key id of the parent). A candidate
    /// only: the signature is checked when the chain is verified.
    pub fn may_be_issued_by(&self, parent: &Cert) -> bool {
        if !names_equal(self.issuer(), parent.subject()) {
            return false;
        }
        match (
            self.key_id(OID_AUTHORITY_KEY_ID),
            parent.key_id(OID_SUBJECT_KEY_ID),
        ) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        }
    }

    /// Check `self` was signed by `issuer` (names chain and the ECDSA P-256 signature verifies).
    pub fn verify_signed_by(&self, issuer: &Cert, ctx: &Ctx<'_>) -> Result<(), DcapError> {
        if !names_equal(self.issuer(), issuer.subject()) {
            return Err(DcapError::CertChainSignature(format!(
                "certificate {:?}: expected issuer {:?}, found issuer {:?}",
                self.common_name(),
                issuer.common_name(),
                common_name(self.issuer())
            )));
        }
        if self.cert.signature_algorithm.oid != ECDSA_WITH_SHA256 {
            return Err(DcapError::CertChainSignature(format!(
                "certificate {:?}: expected signature algorithm ecdsa-with-SHA256, found {}",
                self.common_name(),
                self.cert.signature_algorithm.oid
            )));
        }
        let sig = self.cert.signature.raw_bytes();
        if !ctx.verify_asn1(issuer.public_key(), &self.tbs, sig) {
            return Err(DcapError::CertChainSignature(format!(
                "certificate {:?}: signature by {:?} does not verify",
                self.common_name(),
                issuer.common_name()
            )));
        }
        Ok(())
    }

    /// Check `not_before <= at <= not_after`.
    pub fn check_validity(&self, at: DateTime<Utc>) -> Result<(), DcapError> {
        let v = &self.cert.tbs_certificate.validity;
        let nb = unix_to_chrono(v.not_before.to_unix_duration());
        let na = unix_to_chrono(v.not_after.to_unix_duration());
        if at < nb || at > na {
            return Err(DcapError::CertificateExpired {
                subject: self.common_name(),
                not_before: nb.to_rfc3339(),
                not_after: na.to_rfc3339(),
                at: at.to_rfc3339(),
            });
        }
        Ok(())
    }
}

fn unix_to_chrono(d: std::time::Duration) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub fn normalize_serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default().to_vec()
}

pub fn names_equal(a: &Name, b: &Name) -> bool {
    match (a.to_der(), b.to_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The first CN of a name ("" when there is none).
pub fn common_name(name: &Name) -> String {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == CN_OID {
                return String::from_utf8_lossy(atv.value.value()).into_owned();
            }
        }
    }
    String::new()
}

/// The pinned Intel SGX Root CA.
pub fn pinned_root() -> Result<Cert, DcapError> {
    let blocks = crate::pem::certificates(INTEL_SGX_ROOT_CA_PEM.as_bytes())
        .map_err(|e| DcapError::MalformedCertificate(format!("pinned root: {e}")))?;
    let der = blocks
        .first()
        .ok_or_else(|| DcapError::MalformedCertificate("pinned root: no PEM block".into()))?;
    Cert::from_der(der)
}

/// Parse concatenated PEM certificates (a trailing NUL, as in quotes, is tolerated).
pub fn parse_pem_chain(bytes: &[u8]) -> Result<Vec<Cert>, DcapError> {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let pems = crate::pem::parse_all(bytes.get(..end).unwrap_or_default()).map_err(|e| {
        DcapError::MalformedCertificate(format!("PEM certificate chain does not parse: {e}"))
    })?;
    let certs = pems
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| Cert::from_der(&b.contents))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(DcapError::MalformedCertificate(
            "expected a PEM certificate chain, found no CERTIFICATE block".into(),
        ));
    }
    Ok(certs)
}

/// Build `chain` (leaf first) up to the pinned root and verify every signature. A self-issued last
/// certificate must be byte-identical to the pinned root; otherwise the pinned root is appended.
/// Returns the full chain, root last. Validity windows are checked separately
/// ([`check_chain_validity`]).
pub fn verify_chain(chain: &[Cert], root: &Cert, ctx: &Ctx<'_>) -> Result<Vec<Cert>, DcapError> {
    let Some(last) = chain.last() else {
        return Err(DcapError::MalformedCertificate(
            "expected a certificate chain, found none".into(),
        ));
    };
    let mut full: Vec<Cert> = chain.to_vec();
    if last.is_self_issued() {
        if last.der != root.der {
            return Err(DcapError::UntrustedRoot {
                expected: hex::encode(root.sha256()),
                found: hex::encode(last.sha256()),
            });
        }
    } else {
        if !names_equal(last.issuer(), root.subject()) {
            return Err(DcapError::UntrustedRoot {
                expected: format!("a chain issued by {CN_ROOT:?}"),
                found: format!(
                    "last certificate issued by {:?}",
                    common_name(last.issuer())
                ),
            });
        }
        full.push(root.clone());
    }
    if full.len() > 5 {
        return Err(DcapError::MalformedCertificate(format!(
            "certificate chain: expected at most 5 certificates, found {}",
            full.len()
        )));
    }
    for pair in full.windows(2) {
        if let [child, parent] = pair {
            child.verify_signed_by(parent, ctx)?;
        }
    }
    // The root signs itself.
    root.verify_signed_by(root, ctx)?;
    // Only the root may be self-issued.
    if full
        .split_last()
        .is_some_and(|(_, below_root)| below_root.iter().any(Cert::is_self_issued))
    {
        return Err(DcapError::UntrustedRoot {
            expected: hex::encode(root.sha256()),
            found: "a second self-issued certificate in the chain".into(),
        });
    }
    Ok(full)
}

pub fn check_chain_validity(chain: &[Cert], at: DateTime<Utc>) -> Result<(), DcapError> {
    chain.iter().try_for_each(|c| c.check_validity(at))
}

/// A certificate revocation list with its exact to-be-signed bytes.
#[derive(Debug, Clone)]
pub struct Crl {
    pub der: Vec<u8>,
    pub tbs: Vec<u8>,
    pub crl: CertificateList,
}

impl Crl {
    pub fn from_der(der: &[u8]) -> Result<Crl, DcapError> {
        let crl = CertificateList::from_der(der).map_err(|e| {
            DcapError::MalformedCollateral(format!("CRL does not parse as DER: {e}"))
        })?;
        let tbs = first_tlv(der).map_err(|e| {
            DcapError::MalformedCollateral(format!("CRL does not parse as DER: {e}"))
        })?;
        Ok(Crl {
            der: der.to_vec(),
            tbs,
            crl,
        })
    }

    pub fn issuer(&self) -> &Name {
        &self.crl.tbs_cert_list.issuer
    }

    pub fn issuer_cn(&self) -> String {
        common_name(self.issuer())
    }

    /// Check the CRL is signed by `issuer`.
    pub fn verify_signed_by(&self, issuer: &Cert, ctx: &Ctx<'_>) -> Result<(), DcapError> {
        if !names_equal(self.issuer(), issuer.subject()) {
            return Err(DcapError::CrlSignature(format!(
                "CRL: expected issuer {:?}, found {:?}",
                issuer.common_name(),
                self.issuer_cn()
            )));
        }
        if self.crl.signature_algorithm.oid != ECDSA_WITH_SHA256 {
            return Err(DcapError::CrlSignature(format!(
                "CRL of {:?}: expected signature algorithm ecdsa-with-SHA256, found {}",
                self.issuer_cn(),
                self.crl.signature_algorithm.oid
            )));
        }
        if !ctx.verify_asn1(
            issuer.public_key(),
            &self.tbs,
            self.crl.signature.raw_bytes(),
        ) {
            return Err(DcapError::CrlSignature(format!(
                "CRL of {:?}: signature does not verify",
                self.issuer_cn()
            )));
        }
        Ok(())
    }

    /// Check `thisUpdate <= at <= nextUpdate` (a CRL without nextUpdate is rejected).
    pub fn check_validity(&self, at: DateTime<Utc>) -> Result<(), DcapError> {
        let t = &self.crl.tbs_cert_list;
        let this = unix_to_chrono(t.this_update.to_unix_duration());
        let next = t.next_update.map(|n| unix_to_chrono(n.to_unix_duration()));
        let ok = at >= this && next.is_some_and(|n| at <= n);
        if !ok {
            return Err(DcapError::CrlExpired {
                issuer: self.issuer_cn(),
                this_update: this.to_rfc3339(),
                next_update: next.map_or_else(|| "none".to_string(), |n| n.to_rfc3339()),
                at: at.to_rfc3339(),
            });
        }
        Ok(())
    }

    /// The revoked serial numbers (leading zeros removed).
    pub fn revoked_serials(&self) -> Vec<Vec<u8>> {
        self.crl
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| normalize_serial(r.serial_number.as_bytes()))
            .collect()
    }
}

/// Fail when `cert`'s serial is in `revoked` (serials normalized by [`normalize_serial`]).
pub fn check_not_revoked(
    cert: &Cert,
    revoked: &[Vec<u8>],
    crl_issuer: &str,
) -> Result<(), DcapError> {
    let serial = cert.serial();
    if revoked.contains(&serial) {
        return Err(DcapError::CertificateRevoked {
            subject: cert.common_name(),
            serial: hex::encode(&serial),
            crl_issuer: crl_issuer.to_string(),
        });
    }
    Ok(())
}

/// The Intel SGX extension of a PCK certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PckExtension {
    pub ppid: Vec<u8>,
    pub comp_svns: [u8; 16],
    pub pce_svn: u16,
    pub cpu_svn: [u8; 16],
    pub pce_id: [u8; 2],
    pub fmspc: [u8; 6],
}

fn ext_err(msg: impl std::fmt::Display) -> DcapError {
    DcapError::MalformedCertificate(format!("PCK certificate SGX extension: {msg}"))
}

/// Split a SEQUENCE { OID, value } element.
fn oid_value(item: &Any) -> Result<(ObjectIdentifier, Any), DcapError> {
    if item.tag() != Tag::Sequence {
        return Err(ext_err(format!("expected SEQUENCE, found {}", item.tag())));
    }
    let mut r = SliceReader::new(item.value()).map_err(ext_err)?;
    let oid = ObjectIdentifier::decode(&mut r).map_err(ext_err)?;
    let value = Any::decode(&mut r).map_err(ext_err)?;
    if !r.is_finished() {
        return Err(ext_err("trailing data after OID and value"));
    }
    Ok((oid, value))
}

fn any_uint(v: &Any) -> Result<u32, DcapError> {
    let der = v.to_der().map_err(ext_err)?;
    u32::from_der(&der).map_err(ext_err)
}

fn any_octets<const N: usize>(v: &Any, what: &str) -> Result<[u8; N], DcapError> {
    let der = v.to_der().map_err(ext_err)?;
    let os = OctetString::from_der(&der).map_err(ext_err)?;
    os.as_bytes().try_into().map_err(|_| {
        ext_err(format!(
            "{what}: expected {N} bytes, found {}",
            os.as_bytes().len()
        ))
    })
}

/// Parse the SGX extension (OID 1.2.840.113741.1.13.1) of a PCK certificate.
pub fn pck_extension(cert: &Cert) -> Result<PckExtension, DcapError> {
    let ext = cert
        .cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == SGX_EXTENSIONS_OID)
        .ok_or_else(|| ext_err("expected extension 1.2.840.113741.1.13.1, found none"))?;
    let items = Vec::<Any>::from_der(ext.extn_value.as_bytes()).map_err(ext_err)?;
    let base = SGX_EXTENSIONS_OID.as_bytes();
    let mut ppid = None;
    let mut tcb = None;
    let mut pce_id = None;
    let mut fmspc = None;
    for item in &items {
        let (oid, value) = oid_value(item)?;
        let arcs = oid.as_bytes();
        // Sub-OIDs 1.2.840.113741.1.13.1.N (N < 128: one more byte).
        let Some(rest) = arcs.strip_prefix(base) else {
            continue;
        };
        match rest {
            [1] => ppid = Some(any_octets::<16>(&value, "PPID")?.to_vec()),
            [2] => tcb = Some(parse_tcb(&value)?),
            [3] => pce_id = Some(any_octets::<2>(&value, "PCE-ID")?),
            [4] => fmspc = Some(any_octets::<6>(&value, "FMSPC")?),
            _ => {}
        }
    }
    let (comp_svns, pce_svn, cpu_svn) =
        tcb.ok_or_else(|| ext_err("expected TCB (.2), found none"))?;
    Ok(PckExtension {
        ppid: ppid.unwrap_or_default(),
        comp_svns,
        pce_svn,
        cpu_svn,
        pce_id: pce_id.ok_or_else(|| ext_err("expected PCE-ID (.3), found none"))?,
        fmspc: fmspc.ok_or_else(|| ext_err("expected FMSPC (.4), found none"))?,
    })
}

type TcbExt = ([u8; 16], u16, [u8; 16]);

fn parse_tcb(value: &Any) -> Result<TcbExt, DcapError> {
    if value.tag() != Tag::Sequence {
        return Err(ext_err("TCB: expected SEQUENCE"));
    }
    let der = value.to_der().map_err(ext_err)?;
    let items = Vec::<Any>::from_der(&der).map_err(ext_err)?;
    let mut tcb_base = SGX_EXTENSIONS_OID.as_bytes().to_vec();
    tcb_base.push(2);
    let mut comps = [None::<u8>; 16];
    let mut pce_svn = None;
    let mut cpu_svn = None;
    for item in &items {
        let (oid, v) = oid_value(item)?;
        let Some(rest) = oid.as_bytes().strip_prefix(tcb_base.as_slice()) else {
            continue;
        };
        match rest {
            [n @ 1..=16] => {
                let svn = any_uint(&v)?;
                let svn = u8::try_from(svn)
                    .map_err(|_| ext_err(format!("TCB comp {n} SVN {svn} > 255")))?;
                if let Some(slot) = comps.get_mut(usize::from(*n) - 1) {
                    *slot = Some(svn);
                }
            }
            [17] => {
                let svn = any_uint(&v)?;
                pce_svn =
                    Some(u16::try_from(svn).map_err(|_| ext_err(format!("PCESVN {svn} > 65535")))?);
            }
            [18] => cpu_svn = Some(any_octets::<16>(&v, "CPUSVN")?),
            _ => {}
        }
    }
    let mut out = [0u8; 16];
    for (i, (o, c)) in out.iter_mut().zip(comps.iter()).enumerate() {
        *o = c.ok_or_else(|| ext_err(format!("TCB: expected comp {} SVN, found none", i + 1)))?;
    }
    Ok((
        out,
        pce_svn.ok_or_else(|| ext_err("TCB: expected PCESVN, found none"))?,
        cpu_svn.ok_or_else(|| ext_err("TCB: expected CPUSVN, found none"))?,
    ))
}
