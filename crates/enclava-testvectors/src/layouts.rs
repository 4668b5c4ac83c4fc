//! The vectors' collateral reshaped, in a temporary directory, into the layouts collateral
//! comes in elsewhere: each certificate in its own file (DER as Intel distributes its root CA,
//! PEM with explanatory text as OpenSSL prints it), PCS responses as served, CRLs as DER or hex,
//! and unrelated files mixed in. Built from the vectors at test time, never stored.
//!
//! PEM is split here with the `pem` crate on purpose: an implementation independent of the
//! reader under test.

use std::path::Path;

/// OpenSSL-style explanatory text before a PEM certificate (`openssl x509 -subject -issuer`).
pub fn with_explanatory_text(pem_text: &str) -> String {
    format!(
        "Bag Attributes\n    friendlyName: collateral\nsubject=CN = reshaped by a test\n\
         issuer=CN = reshaped by a test\n0 s:CN = reshaped by a test\n{pem_text}"
    )
}

/// The DER certificates of a PEM chain, in order.
pub fn pem_chain_ders(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text.as_bytes())
        .expect("vector PEM chain parses")
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect()
}

/// One certificate as PEM.
pub fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

fn hex_of(v: &serde_json::Value, field: &str) -> String {
    v.get(field)
        .and_then(|x| x.as_str())
        .unwrap_or_else(|| panic!("{field}: expected a hex string"))
        .to_string()
}

/// Write a dcap-qvl `QuoteCollateralV3` JSON into `dir` as separate PCS-style files:
///
/// - `tcb_info.json`, `qe_identity.json`: the PCS response bodies (`{"tcbInfo": .., "signature"}`);
/// - `tcb_signing.pem`: the TCB Signing certificate alone, with explanatory text before it;
/// - `Intel_SGX_Root_CA.der`: the root CA, DER (as Intel distributes it);
/// - `pck_ca.cer`: the PCK CA certificate alone, DER; `root_again.pem`: the root once more, PEM;
/// - `rootcrl.der` (DER) and `pckcrl` (hex of the DER, as PCS tooling keeps it);
/// - unrelated files: `README.md`, `quote.dat` (binary), `other.json`, `key.pem` (a PEM block
///   that is neither a certificate nor a CRL).
pub fn split_dcap_qvl(json: &[u8], quote: &[u8], dir: &Path) -> std::io::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(json).expect("dcap-qvl JSON");
    let s = |f: &str| {
        v.get(f)
            .and_then(|x| x.as_str())
            .unwrap_or_else(|| panic!("{f}: expected a string"))
            .to_string()
    };
    std::fs::write(
        dir.join("tcb_info.json"),
        format!(
            "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
            s("tcb_info"),
            hex_of(&v, "tcb_info_signature")
        ),
    )?;
    std::fs::write(
        dir.join("qe_identity.json"),
        format!(
            "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
            s("qe_identity"),
            hex_of(&v, "qe_identity_signature")
        ),
    )?;
    let tcb_chain = pem_chain_ders(&s("tcb_info_issuer_chain"));
    let [signing, root] = tcb_chain.as_slice() else {
        panic!("expected TCB Signing + root in tcb_info_issuer_chain");
    };
    std::fs::write(
        dir.join("tcb_signing.pem"),
        with_explanatory_text(&pem_of(signing)),
    )?;
    std::fs::write(dir.join("Intel_SGX_Root_CA.der"), root)?;
    let pck_chain = pem_chain_ders(&s("pck_crl_issuer_chain"));
    if let Some(ca) = pck_chain.first() {
        std::fs::write(dir.join("pck_ca.cer"), ca)?;
    }
    std::fs::write(dir.join("root_again.pem"), pem_of(root))?;
    std::fs::write(
        dir.join("rootcrl.der"),
        hex::decode(s("root_ca_crl")).expect("root_ca_crl hex"),
    )?;
    std::fs::write(dir.join("pckcrl"), s("pck_crl"))?;
    std::fs::write(
        dir.join("README.md"),
        "Collateral saved by a caching tool.\n",
    )?;
    std::fs::write(dir.join("quote.dat"), quote)?;
    std::fs::write(dir.join("other.json"), "{\"note\": \"not collateral\"}")?;
    std::fs::write(
        dir.join("key.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAEC\n-----END PUBLIC KEY-----\n",
    )?;
    Ok(())
}

/// Write an SNP chain into `dir` as separate files: the VCEK (`vcek.der`), the ASK as PEM with
/// explanatory text (`ask.pem`), the ARK as DER (`ark.cer`), plus `README.md`. `ask_ark_pem` is
/// an AMD `cert_chain` (ASK then ARK).
pub fn split_snp(vcek_der: &[u8], ask_ark_pem: &[u8], dir: &Path) -> std::io::Result<()> {
    let chain = pem_chain_ders(std::str::from_utf8(ask_ark_pem).expect("PEM"));
    let [ask, ark] = chain.as_slice() else {
        panic!("expected ASK + ARK");
    };
    std::fs::write(dir.join("vcek.der"), vcek_der)?;
    std::fs::write(dir.join("ask.pem"), with_explanatory_text(&pem_of(ask)))?;
    std::fs::write(dir.join("ark.cer"), ark)?;
    std::fs::write(dir.join("README.md"), "AMD KDS answers.\n")?;
    Ok(())
}
