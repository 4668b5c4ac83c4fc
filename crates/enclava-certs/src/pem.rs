//! PEM bundles of a certificate secret: a `PRIVATE KEY` (PKCS #8) block then the `CERTIFICATE`
//! chain, leaf first (Key Vault's `application/x-pem-file`). Read with the project's one PEM
//! reader (`enclava_evidence::pem`), so explanatory text around blocks is allowed and broken
//! blocks are refused the same way everywhere.

use base64::Engine;
use enclava_evidence::pem::{self as evidence_pem, PemError};
use zeroize::Zeroizing;

use crate::keys::{key_spec, pkcs1_to_pkcs8, sec1_to_pkcs8};
use crate::{CertError, KeyAndChain, Result};

/// The PEM text of a key (optional: a non-exportable certificate's secret has none) and its
/// chain. Zeroized when dropped, as it holds the key.
pub fn build(key_pkcs8: Option<&[u8]>, chain: &[Vec<u8>]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    if let Some(key) = key_pkcs8 {
        // Written here rather than with `enclava_evidence::pem::encode` so that no copy of the
        // key's base64 outlives this function unzeroized.
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key));
        out.push_str("-----BEGIN PRIVATE KEY-----\n");
        let mut rest = b64.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            out.push_str(line);
            out.push('\n');
            rest = tail;
        }
        out.push_str("-----END PRIVATE KEY-----\n");
    }
    for cert in chain {
        out.push_str(&evidence_pem::encode("CERTIFICATE", cert));
    }
    out
}

/// Read a PEM bundle: exactly one private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or
/// `EC PRIVATE KEY`, converted to PKCS #8) and at least one `CERTIFICATE`; other blocks (e.g.
/// OpenSSL's `EC PARAMETERS`) are ignored. Encrypted keys are refused. The key must be the
/// public key of one of the certificates, which comes first in the returned chain.
pub fn parse_bundle(text: &[u8]) -> Result<KeyAndChain> {
    let blocks = evidence_pem::parse_all(text).map_err(|e| match e {
        // `Proc-Type: 4,ENCRYPTED` headers: a legacy OpenSSL encrypted key.
        PemError::Headers { label } if label.ends_with("PRIVATE KEY") => CertError::EncryptedKey,
        e => CertError::Pem(e),
    })?;
    let mut keys: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut chain = Vec::new();
    for block in blocks {
        let label = block.label;
        let contents = Zeroizing::new(block.contents);
        match label {
            "PRIVATE KEY" => {
                key_spec(&contents)?;
                keys.push(contents);
            }
            "RSA PRIVATE KEY" => keys.push(pkcs1_to_pkcs8(&contents)?),
            "EC PRIVATE KEY" => keys.push(sec1_to_pkcs8(&contents)?),
            "ENCRYPTED PRIVATE KEY" => return Err(CertError::EncryptedKey),
            "CERTIFICATE" => chain.push(contents.to_vec()),
            _ => {}
        }
    }
    let key = match keys.len() {
        0 => return Err(CertError::NoPrivateKey),
        1 => keys.remove(0),
        n => return Err(CertError::SeveralPrivateKeys(n)),
    };
    let chain = crate::order_chain(&key, chain)?;
    Ok(KeyAndChain {
        key_pkcs8: key,
        chain,
    })
}

/// Certificates given in any of the forms clients send them (Key Vault merge `x5c` elements,
/// CLI files): DER (one or more SEQUENCEs back to back), PEM text (explanatory text allowed), or
/// the base64 text of DER without PEM lines (what Microsoft's SDK samples pass to merge). Each
/// result is checked to be an X.509 certificate.
pub fn certificates_any(input: &[u8]) -> Result<Vec<Vec<u8>>> {
    let certs = if evidence_pem::der_sequences(input).is_some() || evidence_pem::is_pem(input) {
        evidence_pem::pem_or_der(input, "CERTIFICATE")?
    } else {
        let b64: Vec<u8> = input
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .map_err(|_| {
                CertError::Certificate(
                    "expected DER, PEM text or the base64 of DER, found none of them".into(),
                )
            })?;
        evidence_pem::der_sequences(&der)
            .ok_or_else(|| {
                CertError::Certificate(
                    "expected the base64 text to hold DER certificates, found other bytes".into(),
                )
            })?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    };
    for c in &certs {
        crate::ParsedCertificate::from_der(c)?;
    }
    Ok(certs)
}
