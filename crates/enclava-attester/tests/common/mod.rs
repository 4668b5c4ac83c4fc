//! Where the real hardware vectors live. Tests read them in place (never copied into the repo).
#![allow(dead_code)]

pub use enclava_testvectors::read;

/// An SEV-SNP extended-report certificate table (GHCB spec, MSG_REPORT_REQ): 24-byte entries
/// {guid, offset u32 LE, length u32 LE}, an all-zero terminator, then the certificates.
pub fn cert_table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let header = (entries.len() + 1) * 24;
    let mut head = Vec::new();
    let mut data = Vec::new();
    for (guid, cert) in entries {
        head.extend_from_slice(guid);
        head.extend_from_slice(&((header + data.len()) as u32).to_le_bytes());
        head.extend_from_slice(&(cert.len() as u32).to_le_bytes());
        data.extend_from_slice(cert);
    }
    head.extend_from_slice(&[0u8; 24]);
    head.extend_from_slice(&data);
    head
}

const fn guid(hex: &[u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 32 {
        let c = hex[i];
        let v = if c >= b'a' { c - b'a' + 10 } else { c - b'0' };
        out[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        i += 1;
    }
    out
}

/// Certificate table GUIDs (GHCB specification), RFC 4122 byte order.
pub const GUID_VCEK: [u8; 16] = guid(b"63da758de6644564adc5f4b93be8accd");
pub const GUID_ASK: [u8; 16] = guid(b"4ab7b379bbac4fe4a02f05aef327c782");
pub const GUID_ARK: [u8; 16] = guid(b"c0b406a4a803495297433fb6014cd0ae");
