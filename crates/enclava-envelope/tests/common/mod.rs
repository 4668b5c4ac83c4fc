//! Shared helpers for the envelope integration tests.
#![allow(dead_code)]

use enclava_envelope::{
    AesKeyWrap, EncryptOptions, EnvelopeError, FRAME_LEN, Header, TAG_LEN, decrypt, encrypt,
    read_header,
};
use zeroize::Zeroizing;

pub const KID: &str = "https://vault.test/keys/data-key/0123456789abcdef";

/// A local A256KW key-encryption key with a fixed KEK (tests only).
pub fn wrapper() -> AesKeyWrap {
    AesKeyWrap::new(KID, Zeroizing::new([0x42; 32]))
}

/// Deterministic pseudo-random test data (xorshift), no external RNG needed.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn options(chunk_size: u32) -> EncryptOptions {
    EncryptOptions {
        chunk_size,
        ..EncryptOptions::default()
    }
}

pub fn seal(plaintext: &[u8], chunk_size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    encrypt(
        plaintext,
        &mut out,
        &wrapper(),
        &options(chunk_size),
        &mut |_| {},
    )
    .expect("encryption succeeds");
    out
}

/// Decrypts, returning the result and whatever was written to the output.
pub fn open(envelope: &[u8]) -> (Result<Vec<u8>, EnvelopeError>, Vec<u8>) {
    let mut out = Vec::new();
    let result = decrypt(envelope, &mut out, &wrapper(), &mut |_| {});
    match result {
        Ok(_) => (Ok(out.clone()), out),
        Err(e) => (Err(e), out),
    }
}

pub fn header_of(envelope: &[u8]) -> Header {
    let mut reader = envelope;
    read_header(&mut reader).expect("header parses")
}

/// Byte ranges of each chunk (frame word included) in an envelope.
pub fn chunk_ranges(envelope: &[u8]) -> Vec<std::ops::Range<usize>> {
    let header = header_of(envelope);
    let mut pos = header.encoded_len() as usize;
    let mut ranges = Vec::new();
    while pos < envelope.len() {
        let word = u32::from_be_bytes(envelope[pos..pos + 4].try_into().unwrap());
        let len = (word & 0x7fff_ffff) as usize;
        let end = pos + FRAME_LEN + len + TAG_LEN;
        ranges.push(pos..end);
        pos = end;
    }
    assert_eq!(pos, envelope.len(), "chunks tile the payload exactly");
    ranges
}
