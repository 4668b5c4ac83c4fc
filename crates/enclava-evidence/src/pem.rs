//! The one PEM reader of the project (RFC 7468): certificate chains, CRLs, public and private
//! keys, wherever they come from (evidence, collateral files, request bodies, TLS files, CLI
//! arguments).
//!
//! Tolerant where RFC 7468 asks parsers to be: explanatory text before, between and after blocks
//! is ignored (OpenSSL's `subject=`/`issuer=` lines, published bundles' comments, CRLF line ends,
//! indentation). Strict about what is inside a block: only the base64 alphabet and whitespace,
//! canonical padding, an END line with the same label as the BEGIN line, no encapsulated headers
//! (RFC 1421 `Proc-Type:`, which would mean an encrypted key we cannot use anyway).
//!
//! Written out rather than delegated: it is small, it must behave identically for every caller,
//! and the `pem` crate spent more time splitting a VCEK chain than verifying its report;
//! `rustls-pki-types`' reader silently skips blocks it cannot read.

use base64::Engine;
use zeroize::Zeroizing;

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// Why PEM text was refused: what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("expected at least one -----BEGIN ...----- block, found none")]
    NoBlock,
    #[error("expected a PEM block labelled {expected}, found {found}")]
    NoBlockOfKind { expected: String, found: String },
    #[error("expected a BEGIN line ending in -----, found none")]
    BeginLine,
    #[error("expected a printable ASCII label on the BEGIN line, found other bytes")]
    Label,
    #[error("expected -----END {label}-----, found none")]
    MissingEnd { label: String },
    #[error("expected -----END {expected}-----, found -----END {found}-----")]
    MismatchedEnd { expected: String, found: String },
    #[error("expected only base64 in the {label} block, found encapsulated headers")]
    Headers { label: String },
    #[error("the {label} block is not base64: {reason}")]
    Base64 { label: String, reason: String },
    #[error("expected PEM text or DER, found {0}")]
    NotPemOrDer(String),
}

/// One PEM block: its label and its decoded contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    pub label: &'a str,
    pub contents: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One block before decoding: (label, undecoded body, text after the END line).
type RawBlock<'a> = (&'a str, &'a [u8], &'a [u8]);

/// The next block in `rest`, or `None` when no BEGIN line follows.
fn next_block(rest: &[u8]) -> Option<Result<RawBlock<'_>, PemError>> {
    let start = find(rest, BEGIN)?;
    Some(split_block(rest, start))
}

fn split_block(rest: &[u8], start: usize) -> Result<RawBlock<'_>, PemError> {
    // Every offset below comes from `find` on the same slice, so the `get`s cannot miss.
    let after = rest.get(start + BEGIN.len()..).unwrap_or_default();
    let label_len = find(after, DASHES)
        .filter(|&n| !after.get(..n).unwrap_or_default().contains(&b'\n'))
        .ok_or(PemError::BeginLine)?;
    let label_bytes = after.get(..label_len).unwrap_or_default();
    // RFC 7468 labels are printable ASCII (letters, digits, spaces and hyphens in practice).
    if !label_bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(PemError::Label);
    }
    let label = std::str::from_utf8(label_bytes).map_err(|_| PemError::Label)?;
    let body_and_rest = after.get(label_len + DASHES.len()..).unwrap_or_default();
    // The first dashes after the BEGIN line must start this block's END line: a BEGIN there means
    // the END was left out, another END label means the block is cut and pasted wrongly.
    let Some(dash) = find(body_and_rest, DASHES) else {
        return Err(PemError::MissingEnd {
            label: label.to_string(),
        });
    };
    let body = body_and_rest.get(..dash).unwrap_or_default();
    let tail = body_and_rest.get(dash..).unwrap_or_default();
    let Some(end_label_and_rest) = tail.strip_prefix(END) else {
        return Err(PemError::MissingEnd {
            label: label.to_string(),
        });
    };
    let end_len = find(end_label_and_rest, DASHES)
        .filter(|&n| {
            !end_label_and_rest
                .get(..n)
                .unwrap_or_default()
                .contains(&b'\n')
        })
        .ok_or_else(|| PemError::MissingEnd {
            label: label.to_string(),
        })?;
    let end_label = end_label_and_rest.get(..end_len).unwrap_or_default();
    if end_label != label.as_bytes() {
        return Err(PemError::MismatchedEnd {
            expected: label.to_string(),
            found: String::from_utf8_lossy(end_label)
                .chars()
                .take(64)
                .collect(),
        });
    }
    let after_end = end_label_and_rest
        .get(end_len + DASHES.len()..)
        .unwrap_or_default();
    Ok((label, body, after_end))
}

/// Decode a block body: whitespace is dropped, anything else must be canonical base64. The
/// intermediate buffer is zeroized: for a private key it holds the key in another encoding.
fn decode(label: &str, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, PemError> {
    if body.contains(&b':') {
        return Err(PemError::Headers {
            label: label.to_string(),
        });
    }
    let b64: Zeroizing<Vec<u8>> = Zeroizing::new(
        body.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    let mut out = Zeroizing::new(Vec::with_capacity(b64.len() / 4 * 3 + 3));
    base64::engine::general_purpose::STANDARD
        .decode_vec(&*b64, &mut out)
        .map_err(|e| PemError::Base64 {
            label: label.to_string(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// Every PEM block of `text` as (label, decoded contents), in order. Text outside blocks is
/// ignored; a broken block anywhere is an error (never skipped: a bundle that lost a certificate
/// to a copy-and-paste mistake must not verify as a shorter bundle).
pub fn parse_all(text: &[u8]) -> Result<Vec<Block<'_>>, PemError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(next) = next_block(rest) {
        let (label, body, after) = next?;
        let mut contents = decode(label, body)?;
        out.push(Block {
            label,
            contents: std::mem::take(&mut *contents),
        });
        rest = after;
    }
    if out.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(out)
}

/// The contents of every block labelled with one of `labels`; blocks of other kinds are skipped
/// (bundles mix certificates and CRLs), but at least one wanted block must be there.
pub fn blocks_labelled(text: &[u8], labels: &[&str]) -> Result<Vec<Vec<u8>>, PemError> {
    let all = parse_all(text)?;
    let found: Vec<String> = all.iter().map(|b| b.label.to_string()).collect();
    let out: Vec<Vec<u8>> = all
        .into_iter()
        .filter(|b| labels.contains(&b.label))
        .map(|b| b.contents)
        .collect();
    if out.is_empty() {
        return Err(PemError::NoBlockOfKind {
            expected: labels.join(" or "),
            found: found.join(", "),
        });
    }
    Ok(out)
}

/// Every `CERTIFICATE` block (DER contents, in order).
pub fn certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    blocks_labelled(text, &["CERTIFICATE"])
}

/// The kinds of private key block, by label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `PRIVATE KEY`: PKCS #8.
    Pkcs8,
    /// `RSA PRIVATE KEY`: PKCS #1.
    Pkcs1,
    /// `EC PRIVATE KEY`: SEC 1.
    Sec1,
}

/// The first private key block of `text` (other blocks, e.g. a certificate in the same file, are
/// skipped), decoded into a buffer that is zeroized when dropped.
pub fn private_key(text: &[u8]) -> Result<(KeyKind, Zeroizing<Vec<u8>>), PemError> {
    let mut rest = text;
    let mut found = Vec::new();
    while let Some(next) = next_block(rest) {
        let (label, body, after) = next?;
        let kind = match label {
            "PRIVATE KEY" => Some(KeyKind::Pkcs8),
            "RSA PRIVATE KEY" => Some(KeyKind::Pkcs1),
            "EC PRIVATE KEY" => Some(KeyKind::Sec1),
            _ => None,
        };
        if let Some(kind) = kind {
            return Ok((kind, decode(label, body)?));
        }
        // Still decoded: a broken block in a key file is an error, not something to skip.
        decode(label, body)?;
        found.push(label.to_string());
        rest = after;
    }
    if found.is_empty() {
        return Err(PemError::NoBlock);
    }
    Err(PemError::NoBlockOfKind {
        expected: "PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY".into(),
        found: found.join(", "),
    })
}

/// Length of the DER TLV at the start of `b` (tag must be a SEQUENCE), if it is complete.
fn der_sequence_len(b: &[u8]) -> Option<usize> {
    if *b.first()? != 0x30 {
        return None;
    }
    let first = *b.get(1)?;
    let (hdr, len) = if first < 0x80 {
        (2usize, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (2 + n, len)
    };
    let total = hdr.checked_add(len)?;
    (total <= b.len()).then_some(total)
}

/// `input` split into DER SEQUENCEs when it is nothing but complete SEQUENCEs, back to back.
pub fn der_sequences(input: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let len = der_sequence_len(rest)?;
        let (one, tail) = rest.split_at_checked(len)?;
        out.push(one);
        rest = tail;
    }
    (!out.is_empty()).then_some(out)
}

/// Whether `input` is PEM text rather than DER: it holds a BEGIN line, is text (no control
/// bytes but tab, line ends and form feed; trailing NULs of C strings allowed) and is not a run
/// of DER SEQUENCEs. Decided on the whole input, never on its first bytes: explanatory text may
/// come first (and may even start with `0`, the byte of a DER SEQUENCE tag). A binary file that
/// merely embeds PEM (a DCAP quote carries its PCK chain so) is not PEM text.
pub fn is_pem(input: &[u8]) -> bool {
    let end = input.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let text = input.get(..end).unwrap_or_default();
    let textual = !text
        .iter()
        .any(|&c| (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r' | 0x0c)) || c == 0x7f);
    textual && find(text, BEGIN).is_some() && der_sequences(input).is_none()
}

/// Certificates (or CRLs, or whatever `label` names) given either as PEM text (any number of
/// blocks, explanatory text allowed; blocks of other labels skipped) or as DER (one or more
/// SEQUENCEs back to back). The DER is only split here, not parsed.
pub fn pem_or_der(input: &[u8], label: &str) -> Result<Vec<Vec<u8>>, PemError> {
    if let Some(seqs) = der_sequences(input) {
        return Ok(seqs.into_iter().map(<[u8]>::to_vec).collect());
    }
    if find(input, BEGIN).is_some() {
        return blocks_labelled(input, &[label]);
    }
    if input.trim_ascii().is_empty() {
        return Err(PemError::NotPemOrDer("empty input".into()));
    }
    Err(PemError::NotPemOrDer(format!(
        "{} bytes that are neither a -----BEGIN {label}----- block nor DER SEQUENCEs",
        input.len()
    )))
}

/// PEM-encode `contents` under `label` (64-character lines, LF line ends).
pub fn encode(label: &str, contents: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(contents);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARK: &str = crate::snp::roots::ARK_MILAN_PEM;

    #[test]
    fn explanatory_text_anywhere_is_ignored() {
        let der = certificates(ARK.as_bytes()).unwrap();
        assert_eq!(der.len(), 1);
        for text in [
            format!("subject=CN=ARK-Milan\nissuer=CN=ARK-Milan\n{ARK}"),
            format!("0 s:/CN=ARK-Milan\n{ARK}trailing words\n"),
            format!(
                "Bag Attributes\r\n    localKeyID: 01\r\n{}",
                ARK.replace('\n', "\r\n")
            ),
            format!("  {}", ARK.replace('\n', "\n  ")),
        ] {
            assert!(is_pem(text.as_bytes()), "{text}");
            assert_eq!(certificates(text.as_bytes()).unwrap(), der, "{text}");
            assert_eq!(pem_or_der(text.as_bytes(), "CERTIFICATE").unwrap(), der);
        }
        // The same certificate as DER stays DER.
        assert!(!is_pem(&der[0]));
        // PEM embedded in binary (as in a DCAP quote) is not PEM text; a C string's NULs are.
        assert!(!is_pem(format!("\u{1}\u{2}{ARK}").as_bytes()));
        assert!(is_pem(format!("{ARK}\0\0").as_bytes()));
        assert_eq!(pem_or_der(&der[0], "CERTIFICATE").unwrap(), der);
    }

    #[test]
    fn broken_blocks_are_refused() {
        let cases: [(String, &str); 7] = [
            (
                ARK.replace("-----END CERTIFICATE-----", ""),
                "expected -----END CERTIFICATE-----, found none",
            ),
            (
                ARK.replace("-----END CERTIFICATE-----", "-----END X509 CRL-----"),
                "found -----END X509 CRL-----",
            ),
            (
                ARK.replacen('\n', "\nProc-Type: 4,ENCRYPTED\n", 1),
                "encapsulated headers",
            ),
            (ARK.replacen('M', "*", 1), "not base64"),
            // Non-canonical padding / trailing bits.
            (ARK.replacen("==\n", "=\n", 1), "not base64"),
            ("-----BEGIN CERTIFICATE\nAAAA\n".to_string(), "BEGIN line"),
            (
                format!("{}{ARK}", ARK.replace("-----END CERTIFICATE-----\n", "")),
                "expected -----END CERTIFICATE-----, found none",
            ),
        ];
        for (text, why) in cases {
            let e = parse_all(text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
            assert!(certificates(text.as_bytes()).is_err());
        }
        assert_eq!(parse_all(b"no pem here").unwrap_err(), PemError::NoBlock);
        assert!(matches!(
            certificates(b"-----BEGIN X-----\nAAAA\n-----END X-----\n").unwrap_err(),
            PemError::NoBlockOfKind { .. }
        ));
    }

    #[test]
    fn private_keys_by_label() {
        let text = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\nkey:\n\
                    -----BEGIN EC PRIVATE KEY-----\nAAEC\n-----END EC PRIVATE KEY-----\n";
        let (kind, der) = private_key(text.as_bytes()).unwrap();
        assert_eq!((kind, der.as_slice()), (KeyKind::Sec1, &[0u8, 1, 2][..]));
        assert!(
            private_key(b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n").is_err()
        );
        assert!(
            private_key(b"-----BEGIN PRIVATE KEY-----\nAA*C\n-----END PRIVATE KEY-----\n").is_err()
        );
    }

    #[test]
    fn encode_round_trips() {
        let der = certificates(ARK.as_bytes()).unwrap().remove(0);
        let text = encode("CERTIFICATE", &der);
        assert_eq!(text, ARK);
        assert_eq!(certificates(text.as_bytes()).unwrap(), vec![der]);
    }

    #[test]
    fn never_panics_on_prefixes_or_flips() {
        let text = format!("intro\n{ARK}between\n{ARK}");
        let b = text.as_bytes();
        for i in 0..b.len() {
            let _ = parse_all(b.get(..i).unwrap());
            let _ = pem_or_der(b.get(..i).unwrap(), "CERTIFICATE");
            let mut f = b.to_vec();
            if let Some(x) = f.get_mut(i) {
                *x ^= 0x55;
            }
            let _ = parse_all(&f);
        }
    }
}
