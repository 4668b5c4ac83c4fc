//! Intel PCS collateral: loading (dcap-qvl `QuoteCollateralV3` JSON, or a set of PCS files recognized
//! by content) and the TCB info v3 / QE identity v2 JSON schemas (PCS API v4).
//!
//! Signed JSON keeps the exact raw bytes of the signed object (`tcbInfo` / `enclaveIdentity`), since
//! Intel signs those bytes, not a re-serialization.

use serde::Deserialize;

use super::DcapError;
use super::certs::{
    CN_PLATFORM_CA, CN_PROCESSOR_CA, CN_ROOT, CN_TCB_SIGNING, Cert, Crl, parse_pem_chain,
};

/// An Intel-signed JSON object: its exact bytes and the raw r||s ECDSA P-256 signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedJson {
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Intel PCS collateral for one quote (what `verify_*` needs to evaluate the TCB status).
///
/// Everything is optional here; `verify_tdx`/`verify_sgx` report `missing_collateral` for what a
/// verification needs and is absent. Nothing is verified when loading: that happens at verification.
#[derive(Debug, Clone, Default)]
pub struct Collateral {
    pub(crate) tcb_info: Option<SignedJson>,
    pub(crate) qe_identity: Option<SignedJson>,
    /// TCB Signing chain (leaf first) for the TCB info.
    pub(crate) tcb_info_issuer_chain: Vec<Cert>,
    /// TCB Signing chain for the QE identity (PCS uses the same one as for the TCB info).
    pub(crate) qe_identity_issuer_chain: Vec<Cert>,
    /// PCK CA chain that issued the PCK CRL (informational; the CRL is checked against the quote's CA).
    pub(crate) pck_crl_issuer_chain: Vec<Cert>,
    pub(crate) root_ca_crl: Option<Crl>,
    /// PCK CRLs (Platform CA and/or Processor CA).
    pub(crate) pck_crls: Vec<Crl>,
    /// Certificates found loose (separate files, DER or PEM, any order): issuer chains that no
    /// file gave as a chain are assembled from these ([`Collateral::from_files`]).
    pub(crate) loose_certs: Vec<Cert>,
}

fn bad(msg: impl Into<String>) -> DcapError {
    DcapError::MalformedCollateral(msg.into())
}

/// Bytes given as a hex string, a JSON array of numbers, or (for PEM/DER-capable fields) a string.
fn json_bytes(v: &serde_json::Value, field: &str) -> Result<Vec<u8>, DcapError> {
    match v {
        serde_json::Value::String(s) => {
            let t = s.trim();
            let t = t.strip_prefix("0x").unwrap_or(t);
            hex::decode(t)
                .map_err(|e| bad(format!("{field}: expected hex, found invalid hex ({e})")))
        }
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| bad(format!("{field}: expected an array of bytes")))
            })
            .collect(),
        _ => Err(bad(format!("{field}: expected hex string or byte array"))),
    }
}

fn json_str<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<Option<&'a str>, DcapError> {
    match obj.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("{field}: expected a string"))),
    }
}

/// A CRL in dcap-qvl JSON: hex or byte array of the DER, or a PEM string.
fn json_crl(v: &serde_json::Value, field: &str) -> Result<Crl, DcapError> {
    if let Some(text) = v.as_str().filter(|t| crate::pem::is_pem(t.as_bytes())) {
        return parse_crl_any(text.as_bytes()).map_err(|e| bad(format!("{field}: {e}")));
    }
    Crl::from_der(&json_bytes(v, field)?)
}

/// Undo URL (percent) encoding, as PCS uses for issuer chains in HTTP headers (and as some tools
/// save them). The one decoder of the project: the collateral loader and fetcher use it too.
/// A `%` not followed by two hex digits stays as it is.
pub fn percent_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(s) = std::str::from_utf8(h)
            && let Ok(v) = u8::from_str_radix(s, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A CRL given as DER, PEM (`X509 CRL`) or hex of the DER.
fn parse_crl_any(bytes: &[u8]) -> Result<Crl, DcapError> {
    let trimmed = trim_ascii(bytes);
    if crate::pem::is_pem(trimmed) {
        let blocks = crate::pem::parse_all(trimmed)
            .map_err(|e| bad(format!("PEM CRL does not parse: {e}")))?;
        return match blocks.as_slice() {
            [b] if b.label == "X509 CRL" => Crl::from_der(&b.contents),
            [b] => Err(bad(format!(
                "expected PEM block X509 CRL, found {}",
                b.label
            ))),
            more => Err(bad(format!(
                "expected one PEM block X509 CRL, found {} blocks",
                more.len()
            ))),
        };
    }
    if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let der = hex::decode(trimmed).map_err(|e| bad(format!("hex CRL: {e}")))?;
        return Crl::from_der(&der);
    }
    Crl::from_der(bytes)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace() && *c != 0)
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace() && *c != 0)
        .map_or(start, |i| i + 1);
    b.get(start..end.max(start)).unwrap_or_default()
}

/// Skip JSON whitespace.
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// End (exclusive) of the JSON string starting at `i` (which must be `"`).
fn string_end(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    while let Some(c) = s.get(j) {
        match c {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// End (exclusive) of the JSON value starting at `i`.
fn value_end(s: &[u8], i: usize) -> Option<usize> {
    match s.get(i)? {
        b'"' => string_end(s, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(c) = s.get(j) {
                match c {
                    b'"' => {
                        j = string_end(s, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while s
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The exact bytes of the value of top-level key `key` in the JSON object `json` (which must already
/// be known to be valid JSON). Keys are compared on their raw (unescaped-free) spelling.
pub fn raw_member<'a>(json: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(json, i);
        let kend = string_end(json, i)?;
        let k = json.get(i + 1..kend - 1)?;
        i = skip_ws(json, kend);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(json, i + 1);
        let vend = value_end(json, i)?;
        if k == key.as_bytes() {
            return json.get(i..vend);
        }
        i = skip_ws(json, vend);
        match json.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// A PCS response `{"<key>": {...}, "signature": "<hex r||s>"}`.
fn signed_member(json: &[u8], key: &str, name: &str) -> Result<SignedJson, DcapError> {
    let v: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| bad(format!("{name}: JSON does not parse: {e}")))?;
    let sig = v.get("signature").and_then(|s| s.as_str()).ok_or_else(|| {
        bad(format!(
            "{name}: expected a \"signature\" string, found none"
        ))
    })?;
    let signature =
        hex::decode(sig).map_err(|e| bad(format!("{name}: signature: expected hex ({e})")))?;
    let body = raw_member(json, key)
        .ok_or_else(|| bad(format!("{name}: expected object {key:?}, found none")))?;
    if !body.starts_with(b"{") {
        return Err(bad(format!("{name}: expected {key:?} to be an object")));
    }
    Ok(SignedJson {
        body: body.to_vec(),
        signature,
    })
}

/// `leaf` and its issuers from `pool`, leaf first, by name and key identifier, stopping below a
/// self-issued certificate (the root is pinned, never read) and after at most 4 certificates.
fn chain_up(leaf: &Cert, pool: &[Cert]) -> Vec<Cert> {
    let mut chain = vec![leaf.clone()];
    while chain.len() < 4 {
        let Some(cur) = chain.last() else { break };
        let parent = pool.iter().find(|p| {
            !p.is_self_issued() && cur.may_be_issued_by(p) && !chain.iter().any(|c| c.der == p.der)
        });
        match parent {
            Some(p) => chain.push(p.clone()),
            None => break,
        }
    }
    chain
}

impl Collateral {
    /// SHA-256 of each part present, under the names of MAA's `x-ms-sgx-collateral` claim:
    /// `qeidcertshash` / `tcbinfocertshash` over the issuer chain's DER certificates concatenated
    /// (leaf first), `qeidcrlhash` / `tcbinfocrlhash` over the root CA CRL's DER (both chains end
    /// at the root), `qeidhash` / `tcbinfohash` over the exact signed JSON bytes Intel signed.
    /// MAA does not document the exact byte inputs; these are the canonical forms we hold.
    pub fn digests(&self) -> Vec<(&'static str, [u8; 32])> {
        use sha2::{Digest, Sha256};
        let chain = |c: &[Cert]| -> Option<[u8; 32]> {
            if c.is_empty() {
                return None;
            }
            let mut h = Sha256::new();
            for cert in c {
                h.update(&cert.der);
            }
            Some(h.finalize().into())
        };
        let one = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        let crl = self.root_ca_crl.as_ref().map(|c| one(&c.der));
        let mut out = Vec::new();
        let mut push = |name: &'static str, d: Option<[u8; 32]>| {
            if let Some(d) = d {
                out.push((name, d));
            }
        };
        push("qeidcertshash", chain(&self.qe_identity_issuer_chain));
        push("qeidcrlhash", crl);
        push("qeidhash", self.qe_identity.as_ref().map(|j| one(&j.body)));
        push("tcbinfocertshash", chain(&self.tcb_info_issuer_chain));
        push("tcbinfocrlhash", crl);
        push("tcbinfohash", self.tcb_info.as_ref().map(|j| one(&j.body)));
        out
    }

    /// Load dcap-qvl's `QuoteCollateralV3` JSON: `tcb_info` / `qe_identity` are the signed JSON as
    /// strings, signatures and CRLs are hex (or byte arrays), issuer chains PEM.
    pub fn from_dcap_qvl_json(bytes: &[u8]) -> Result<Collateral, DcapError> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("collateral JSON does not parse: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("collateral JSON: expected an object"))?;
        let mut c = Collateral::default();
        if let Some(chain) = json_str(obj, "tcb_info_issuer_chain")? {
            c.tcb_info_issuer_chain = parse_pem_chain(chain.as_bytes())?;
        }
        if let Some(chain) = json_str(obj, "qe_identity_issuer_chain")? {
            c.qe_identity_issuer_chain = parse_pem_chain(chain.as_bytes())?;
        }
        if let Some(chain) = json_str(obj, "pck_crl_issuer_chain")? {
            c.pck_crl_issuer_chain = parse_pem_chain(chain.as_bytes())?;
        }
        if let Some(crl) = obj.get("root_ca_crl").filter(|x| !x.is_null()) {
            c.root_ca_crl = Some(json_crl(crl, "root_ca_crl")?);
        }
        if let Some(crl) = obj.get("pck_crl").filter(|x| !x.is_null()) {
            c.pck_crls.push(json_crl(crl, "pck_crl")?);
        }
        if let Some(body) = json_str(obj, "tcb_info")? {
            let sig = obj
                .get("tcb_info_signature")
                .ok_or_else(|| bad("expected tcb_info_signature, found none"))?;
            c.tcb_info = Some(SignedJson {
                body: body.as_bytes().to_vec(),
                signature: json_bytes(sig, "tcb_info_signature")?,
            });
        }
        if let Some(body) = json_str(obj, "qe_identity")? {
            let sig = obj
                .get("qe_identity_signature")
                .ok_or_else(|| bad("expected qe_identity_signature, found none"))?;
            c.qe_identity = Some(SignedJson {
                body: body.as_bytes().to_vec(),
                signature: json_bytes(sig, "qe_identity_signature")?,
            });
        }
        Ok(c)
    }

    /// Load a directory of Intel PCS files, recognized by content (names are only used in errors):
    /// TCB info (`{"tcbInfo":..,"signature":..}`), QE identity (`{"enclaveIdentity":..}`), CRLs in
    /// DER, PEM or hex (root CA CRL and PCK CRLs told apart by issuer), and PEM issuer chains (TCB
    /// Signing chain; PCK CA chain). A dcap-qvl collateral JSON is accepted too and merged.
    pub fn from_files(files: &[(&str, &[u8])]) -> Result<Collateral, DcapError> {
        let mut c = Collateral::default();
        for (name, bytes) in files {
            c.add_file(name, bytes)?;
        }
        c.assemble_chains();
        Ok(c)
    }

    fn add_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), DcapError> {
        let t = trim_ascii(bytes);
        if t.starts_with(b"{") {
            let v: serde_json::Value = serde_json::from_slice(t)
                .map_err(|e| bad(format!("{name}: JSON does not parse: {e}")))?;
            if v.get("tcbInfo").is_some() {
                set_once(
                    &mut self.tcb_info,
                    signed_member(t, "tcbInfo", name)?,
                    name,
                    "TCB info",
                )?;
            } else if v.get("enclaveIdentity").is_some() {
                set_once(
                    &mut self.qe_identity,
                    signed_member(t, "enclaveIdentity", name)?,
                    name,
                    "QE identity",
                )?;
            } else if v.get("tcb_info").is_some() || v.get("qe_identity").is_some() {
                let other = Collateral::from_dcap_qvl_json(t)?;
                self.merge(other);
            } else {
                return Err(bad(format!(
                    "{name}: expected a TCB info or QE identity JSON (tcbInfo / enclaveIdentity), found neither"
                )));
            }
            return Ok(());
        }
        if t.starts_with(b"-----BEGIN%20") {
            let decoded = percent_decode(t);
            return self.add_file(name, &decoded);
        }
        if crate::pem::is_pem(t) {
            // Certificates and CRLs, any number, any order, explanatory text allowed.
            let blocks = crate::pem::parse_all(t)
                .map_err(|e| bad(format!("{name}: PEM does not parse: {e}")))?;
            let mut chain = Vec::new();
            for b in &blocks {
                match b.label {
                    "CERTIFICATE" => chain.push(Cert::from_der(&b.contents)?),
                    "X509 CRL" => self.add_crl(name, Crl::from_der(&b.contents)?)?,
                    other => {
                        return Err(bad(format!(
                            "{name}: expected CERTIFICATE or X509 CRL PEM blocks, found {other:?}"
                        )));
                    }
                }
            }
            self.add_certs(chain);
            return Ok(());
        }
        // DER on the untrimmed bytes: a certificate may well end in a byte that is whitespace.
        if let Some(seqs) = crate::pem::der_sequences(bytes) {
            // DER: certificates (Intel distributes its root CA so) or a CRL.
            let mut certs = Vec::new();
            for der in seqs {
                match Cert::from_der(der) {
                    Ok(c) => certs.push(c),
                    Err(cert_err) => {
                        let crl = Crl::from_der(der).map_err(|crl_err| {
                            bad(format!(
                                "{name}: expected a DER certificate or CRL, found neither \
                                 ({cert_err}; {crl_err})"
                            ))
                        })?;
                        self.add_crl(name, crl)?;
                    }
                }
            }
            self.add_certs(certs);
            return Ok(());
        }
        let crl = parse_crl_any(bytes).map_err(|e| {
            bad(format!(
                "{name}: not TCB info, QE identity, certificate chain or CRL ({e})"
            ))
        })?;
        self.add_crl(name, crl)
    }

    /// Certificates of one file: a chain led by the TCB Signing or a PCK CA certificate is taken
    /// as that issuer chain (as PCS serves it); every certificate also joins the loose pool.
    fn add_certs(&mut self, chain: Vec<Cert>) {
        if chain.is_empty() {
            return;
        }
        let leaf_cn = chain.first().map(Cert::common_name).unwrap_or_default();
        match leaf_cn.as_str() {
            CN_TCB_SIGNING => {
                if self.tcb_info_issuer_chain.is_empty() {
                    self.tcb_info_issuer_chain = chain.clone();
                }
                if self.qe_identity_issuer_chain.is_empty() {
                    self.qe_identity_issuer_chain = chain.clone();
                }
            }
            CN_PLATFORM_CA | CN_PROCESSOR_CA if self.pck_crl_issuer_chain.is_empty() => {
                self.pck_crl_issuer_chain = chain.clone();
            }
            _ => {}
        }
        for c in chain {
            if !self.loose_certs.iter().any(|p| p.der == c.der) {
                self.loose_certs.push(c);
            }
        }
    }

    fn add_crl(&mut self, name: &str, crl: Crl) -> Result<(), DcapError> {
        match crl.issuer_cn().as_str() {
            CN_ROOT => {
                if self.root_ca_crl.as_ref().is_some_and(|r| r.der != crl.der) {
                    return Err(bad(format!("{name}: a second root CA CRL")));
                }
                self.root_ca_crl = Some(crl);
            }
            CN_PLATFORM_CA | CN_PROCESSOR_CA => {
                if !self.pck_crls.iter().any(|c| c.der == crl.der) {
                    self.pck_crls.push(crl);
                }
            }
            other => {
                return Err(bad(format!(
                    "{name}: expected a CRL issued by {CN_ROOT:?}, {CN_PLATFORM_CA:?} or {CN_PROCESSOR_CA:?}, found {other:?}"
                )));
            }
        }
        Ok(())
    }

    /// The issuer chains no file gave as a chain, built from the loose certificates by
    /// issuer/subject and key identifiers. Self-issued certificates (roots) are never taken from
    /// the files: the chain stops below them and the verifier appends the root pinned in code, so
    /// a root that is merely present proves nothing. Nothing is verified here.
    fn assemble_chains(&mut self) {
        if self.tcb_info_issuer_chain.is_empty() || self.qe_identity_issuer_chain.is_empty() {
            let signers: Vec<&Cert> = self
                .loose_certs
                .iter()
                .filter(|c| c.common_name() == CN_TCB_SIGNING && !c.is_self_issued())
                .collect();
            // Several TCB Signing certificates (an old and a renewed one): prefer the one whose
            // key verifies the signed JSON it is for.
            let pick = |signed: Option<&SignedJson>| -> Option<Vec<Cert>> {
                let chosen = signed
                    .and_then(|s| {
                        signers.iter().copied().find(|c| {
                            super::certs::Ctx::verify_fixed_uncached(
                                c.public_key(),
                                &s.body,
                                &s.signature,
                            )
                        })
                    })
                    .or_else(|| signers.first().copied())?;
                Some(chain_up(chosen, &self.loose_certs))
            };
            let tcb = if self.tcb_info_issuer_chain.is_empty() {
                pick(self.tcb_info.as_ref())
            } else {
                None
            };
            let qe = if self.qe_identity_issuer_chain.is_empty() {
                pick(self.qe_identity.as_ref())
            } else {
                None
            };
            if let Some(chain) = tcb {
                self.tcb_info_issuer_chain = chain;
            }
            if let Some(chain) = qe {
                self.qe_identity_issuer_chain = chain;
            }
        }
        if self.pck_crl_issuer_chain.is_empty() {
            let ca = self.loose_certs.iter().find(|c| {
                let cn = c.common_name();
                (cn == CN_PLATFORM_CA || cn == CN_PROCESSOR_CA) && !c.is_self_issued()
            });
            if let Some(ca) = ca {
                self.pck_crl_issuer_chain = chain_up(ca, &self.loose_certs);
            }
        }
    }

    /// The loose certificates that were read (for callers that report what a directory held).
    pub fn loose_certificates(&self) -> &[Cert] {
        &self.loose_certs
    }

    fn merge(&mut self, o: Collateral) {
        self.tcb_info = self.tcb_info.take().or(o.tcb_info);
        self.qe_identity = self.qe_identity.take().or(o.qe_identity);
        if self.tcb_info_issuer_chain.is_empty() {
            self.tcb_info_issuer_chain = o.tcb_info_issuer_chain;
        }
        if self.qe_identity_issuer_chain.is_empty() {
            self.qe_identity_issuer_chain = o.qe_identity_issuer_chain;
        }
        if self.pck_crl_issuer_chain.is_empty() {
            self.pck_crl_issuer_chain = o.pck_crl_issuer_chain;
        }
        self.root_ca_crl = self.root_ca_crl.take().or(o.root_ca_crl);
        self.pck_crls.extend(o.pck_crls);
        for c in o.loose_certs {
            if !self.loose_certs.iter().any(|p| p.der == c.der) {
                self.loose_certs.push(c);
            }
        }
    }

    /// The signed TCB info JSON bytes, if present.
    pub fn tcb_info_json(&self) -> Option<&[u8]> {
        self.tcb_info.as_ref().map(|s| s.body.as_slice())
    }

    /// The signed QE identity JSON bytes, if present.
    pub fn qe_identity_json(&self) -> Option<&[u8]> {
        self.qe_identity.as_ref().map(|s| s.body.as_slice())
    }

    /// Parse (without verifying) the TCB info.
    pub fn tcb_info(&self) -> Result<TcbInfo, DcapError> {
        let s = self
            .tcb_info
            .as_ref()
            .ok_or_else(|| DcapError::MissingCollateral("expected TCB info, found none".into()))?;
        TcbInfo::parse(&s.body)
    }

    /// Parse (without verifying) the QE identity.
    pub fn qe_identity(&self) -> Result<EnclaveIdentity, DcapError> {
        let s = self.qe_identity.as_ref().ok_or_else(|| {
            DcapError::MissingCollateral("expected QE identity, found none".into())
        })?;
        EnclaveIdentity::parse(&s.body)
    }
}

fn set_once<T>(slot: &mut Option<T>, v: T, name: &str, what: &str) -> Result<(), DcapError> {
    if slot.is_some() {
        return Err(bad(format!("{name}: a second {what}")));
    }
    *slot = Some(v);
    Ok(())
}

/// One component SVN of a TCB level.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TcbComponent {
    pub svn: u16,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Tcb {
    pub sgxtcbcomponents: Vec<TcbComponent>,
    pub pcesvn: u16,
    #[serde(default)]
    pub tdxtcbcomponents: Option<Vec<TcbComponent>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TcbLevel {
    pub tcb: Tcb,
    pub tcb_date: String,
    pub tcb_status: String,
    #[serde(default, rename = "advisoryIDs")]
    pub advisory_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IsvSvn {
    pub isvsvn: u16,
}

/// A TCB level of a QE identity or TDX module identity.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IsvTcbLevel {
    pub tcb: IsvSvn,
    pub tcb_date: String,
    pub tcb_status: String,
    #[serde(default, rename = "advisoryIDs")]
    pub advisory_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TdxModule {
    pub mrsigner: String,
    pub attributes: String,
    pub attributes_mask: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TdxModuleIdentity {
    pub id: String,
    pub mrsigner: String,
    pub attributes: String,
    pub attributes_mask: String,
    pub tcb_levels: Vec<IsvTcbLevel>,
}

/// TCB info v3 (PCS API v4), SGX or TDX.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TcbInfo {
    pub id: String,
    pub version: u32,
    pub issue_date: String,
    pub next_update: String,
    pub fmspc: String,
    pub pce_id: String,
    pub tcb_type: u32,
    pub tcb_evaluation_data_number: u32,
    #[serde(default)]
    pub tdx_module: Option<TdxModule>,
    #[serde(default)]
    pub tdx_module_identities: Option<Vec<TdxModuleIdentity>>,
    pub tcb_levels: Vec<TcbLevel>,
}

impl TcbInfo {
    /// Parse TCB info JSON (the `tcbInfo` object). Only version 3 is accepted.
    pub fn parse(json: &[u8]) -> Result<TcbInfo, DcapError> {
        let t: TcbInfo = serde_json::from_slice(json)
            .map_err(|e| bad(format!("TCB info does not parse: {e}")))?;
        if t.version != 3 {
            return Err(bad(format!(
                "TCB info: expected version 3, found {}",
                t.version
            )));
        }
        if t.id != "SGX" && t.id != "TDX" {
            return Err(bad(format!(
                "TCB info: expected id SGX or TDX, found {:?}",
                t.id
            )));
        }
        Ok(t)
    }
}

/// QE identity v2 (PCS API v4).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnclaveIdentity {
    pub id: String,
    pub version: u32,
    pub issue_date: String,
    pub next_update: String,
    pub tcb_evaluation_data_number: u32,
    pub miscselect: String,
    pub miscselect_mask: String,
    pub attributes: String,
    pub attributes_mask: String,
    pub mrsigner: String,
    pub isvprodid: u16,
    pub tcb_levels: Vec<IsvTcbLevel>,
}

impl EnclaveIdentity {
    /// Parse QE identity JSON (the `enclaveIdentity` object). Only version 2 is accepted.
    pub fn parse(json: &[u8]) -> Result<EnclaveIdentity, DcapError> {
        let t: EnclaveIdentity = serde_json::from_slice(json)
            .map_err(|e| bad(format!("QE identity does not parse: {e}")))?;
        if t.version != 2 {
            return Err(bad(format!(
                "QE identity: expected version 2, found {}",
                t.version
            )));
        }
        Ok(t)
    }
}
