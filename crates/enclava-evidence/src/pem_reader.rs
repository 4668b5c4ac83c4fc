//! PEM text (RFC 7468) into its blocks: the one PEM reader of the evidence formats (SNP
//! certificate chains, DCAP PCK / issuer chains and CRLs, Azure VCEK chains).

const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PEM_DASHES: &[u8] = b"-----";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every PEM block of `text` as (label, decoded body), in order. Text between blocks is ignored
/// (tools print `subject=` lines and the like there); a block without its matching END line,
/// encapsulated headers or a body that is not base64 is an error. Written out rather than
/// delegated: the `pem` crate spent more time splitting a VCEK chain than verifying its report.
pub(crate) fn blocks(text: &[u8]) -> Result<Vec<(&str, Vec<u8>)>, String> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, PEM_BEGIN) {
        // Every offset below comes from `find` on the same slice, so the `get`s cannot miss.
        let after = rest.get(start + PEM_BEGIN.len()..).unwrap_or_default();
        let label_len = find(after, PEM_DASHES)
            .filter(|&n| !after.get(..n).unwrap_or_default().contains(&b'\n'))
            .ok_or("expected a BEGIN line ending in -----, found none")?;
        let label = std::str::from_utf8(after.get(..label_len).unwrap_or_default())
            .map_err(|_| "expected an ASCII label on the BEGIN line".to_string())?;
        let body_and_rest = after
            .get(label_len + PEM_DASHES.len()..)
            .unwrap_or_default();
        let end_line = format!("-----END {label}-----");
        let body_len = find(body_and_rest, end_line.as_bytes())
            .ok_or_else(|| format!("expected {end_line}, found none"))?;
        let body = body_and_rest.get(..body_len).unwrap_or_default();
        if body.contains(&b':') {
            return Err(format!(
                "expected only base64 in the {label} block, found encapsulated headers"
            ));
        }
        let b64: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .map_err(|e| format!("the {label} block is not base64: {e}"))?;
        out.push((label, der));
        rest = body_and_rest
            .get(body_len + end_line.len()..)
            .unwrap_or_default();
    }
    if out.is_empty() {
        return Err("expected at least one -----BEGIN ...----- block, found none".into());
    }
    Ok(out)
}
