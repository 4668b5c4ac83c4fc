//! In-memory throughput measurement through the real encrypt/decrypt code path.

use std::io::{self, Read, Write};
use std::time::Instant;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};
use zeroize::Zeroizing;

use crate::error::EnvelopeError;
use crate::header::validate_chunk_size;
use crate::keys::AesKeyWrap;
use crate::stream::{FRAME_LEN, TAG_LEN, aligned_buffer, chunk_nonce};
use crate::{EncryptOptions, decrypt, encrypt};

/// Largest envelope kept in memory for the decryption measurement; larger sizes decrypt the
/// same envelope repeatedly (its data is cache-resident, like `openssl speed`'s buffers).
const MAX_STORED_ENVELOPE: u64 = 8 * 1024 * 1024;

/// A source of `remaining` bytes copied from a fixed pattern (one `memcpy` per read, as a
/// page-cache read would cost).
struct PatternSource {
    pattern: Vec<u8>,
    offset: usize,
    remaining: u64,
}

impl Read for PatternSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() && self.remaining > 0 {
            let from = self.pattern.get(self.offset..).unwrap_or_default();
            let limit = usize::try_from(self.remaining).unwrap_or(usize::MAX);
            let n = from.len().min(buf.len() - written).min(limit);
            if n == 0 {
                self.offset = 0;
                continue;
            }
            if let (Some(dst), Some(src)) = (buf.get_mut(written..written + n), from.get(..n)) {
                dst.copy_from_slice(src);
            }
            written += n;
            self.remaining -= n as u64;
            self.offset = (self.offset + n) % self.pattern.len().max(1);
        }
        Ok(written)
    }
}

/// A sink that counts and discards.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / seconds
    } else {
        f64::INFINITY
    }
}

/// Measures envelope encryption and decryption throughput, in plaintext bytes per second,
/// for `size_bytes` of data in chunks of `chunk_size` bytes, with in-memory input and output
/// (no disk). The measured loops are exactly [`crate::encrypt`] and [`crate::decrypt`]; the
/// key wrap is a local A256KW key. Compare with `openssl speed -evp aes-256-gcm`.
///
/// Returns `(encrypt_bytes_per_s, decrypt_bytes_per_s)`.
pub fn bench_throughput(size_bytes: u64, chunk_size: u32) -> Result<(f64, f64), EnvelopeError> {
    let wrapper = AesKeyWrap::generate("bench://local-a256kw")?;
    let options = EncryptOptions {
        chunk_size,
        ..EncryptOptions::default()
    };
    let mut pattern = vec![0u8; 1024 * 1024];
    aws_lc_rs::rand::fill(&mut pattern).map_err(|_| EnvelopeError::Random)?;

    // Encryption: the whole size in one envelope.
    let source = PatternSource {
        pattern: pattern.clone(),
        offset: 0,
        remaining: size_bytes,
    };
    let mut sink = CountingSink(0);
    let started = Instant::now();
    let summary = encrypt(source, &mut sink, &wrapper, &options, &mut |_| {})?;
    let encrypt_rate = rate(summary.plaintext_bytes, started.elapsed().as_secs_f64());

    // Decryption: one stored envelope of at most MAX_STORED_ENVELOPE plaintext bytes,
    // decrypted as many times as needed to process `size_bytes`.
    let stored_plaintext = size_bytes.min(MAX_STORED_ENVELOPE);
    let mut envelope = Vec::new();
    encrypt(
        PatternSource {
            pattern,
            offset: 0,
            remaining: stored_plaintext,
        },
        &mut envelope,
        &wrapper,
        &options,
        &mut |_| {},
    )?;
    let mut decrypted = 0u64;
    let started = Instant::now();
    loop {
        let mut sink = CountingSink(0);
        let summary = decrypt(envelope.as_slice(), &mut sink, &wrapper, &mut |_| {})?;
        decrypted += summary.plaintext_bytes;
        if decrypted >= size_bytes {
            break;
        }
    }
    let decrypt_rate = rate(decrypted, started.elapsed().as_secs_f64());
    Ok((encrypt_rate, decrypt_rate))
}

/// Measures raw aws-lc-rs AES-256-GCM on `chunk_size`-byte messages, in plaintext bytes per
/// second over `size_bytes`: the ceiling for [`bench_throughput`], since it is the same cipher
/// call on the same chunk size with the same nonce and AAD shapes, minus everything the
/// envelope adds (reading the source into the chunk buffer, framing, writing, checks).
///
/// Sealing is in place on one cache-line-aligned buffer, as the envelope does. Opening reads
/// one sealed chunk and writes the plaintext to a second buffer (the ciphertext must stay
/// intact to be opened again); both buffers stay cache-resident, as the envelope's one buffer
/// does. The key is random and thrown away: the repeated nonces of this loop protect nothing.
///
/// Returns `(seal_bytes_per_s, open_bytes_per_s)`.
pub fn bench_aes_gcm_raw(size_bytes: u64, chunk_size: u32) -> Result<(f64, f64), EnvelopeError> {
    validate_chunk_size(chunk_size)
        .map_err(|reason| EnvelopeError::InvalidParameters { reason })?;
    let size = chunk_size as usize;
    let mut key_bytes = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(key_bytes.as_mut()).map_err(|_| EnvelopeError::Random)?;
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key_bytes.as_ref())
            .map_err(|_| EnvelopeError::Crypto("AES-256-GCM key setup"))?,
    );
    let chunks = size_bytes.div_ceil(u64::from(chunk_size)).max(1);
    let aad = [0u8; FRAME_LEN];
    let seal_failed = || EnvelopeError::Crypto("AES-256-GCM seal");
    let bounds = || EnvelopeError::Crypto("chunk buffer bounds");

    let (mut buf, start) = aligned_buffer(size, 0);
    let data = buf.get_mut(start..start + size).ok_or_else(bounds)?;
    aws_lc_rs::rand::fill(data).map_err(|_| EnvelopeError::Random)?;
    // Folds every tag into one byte so the seals are observably used.
    let mut tags = 0u8;
    let started = Instant::now();
    for index in 0..chunks {
        let tag = key
            .seal_in_place_separate_tag(chunk_nonce(index, false), Aad::from(aad), data)
            .map_err(|_| seal_failed())?;
        tags ^= tag.as_ref().first().copied().unwrap_or_default();
    }
    std::hint::black_box(tags);
    let seal_rate = rate(
        chunks * u64::from(chunk_size),
        started.elapsed().as_secs_f64(),
    );

    let tag = key
        .seal_in_place_separate_tag(chunk_nonce(0, false), Aad::from(aad), data)
        .map_err(|_| seal_failed())?;
    let mut tag_bytes = [0u8; TAG_LEN];
    tag_bytes.copy_from_slice(tag.as_ref());
    let (mut out, out_start) = aligned_buffer(size, 0);
    let plaintext = out
        .get_mut(out_start..out_start + size)
        .ok_or_else(bounds)?;
    let started = Instant::now();
    for _ in 0..chunks {
        key.open_separate_gather(
            chunk_nonce(0, false),
            Aad::from(aad),
            data,
            &tag_bytes,
            plaintext,
        )
        .map_err(|_| EnvelopeError::ChunkAuthentication { index: 0 })?;
    }
    let open_rate = rate(
        chunks * u64::from(chunk_size),
        started.elapsed().as_secs_f64(),
    );
    Ok((seal_rate, open_rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_cipher_baseline_measures_and_checks_its_arguments() {
        let (seal, open) = bench_aes_gcm_raw(1 << 20, 64 * 1024).unwrap();
        assert!(seal.is_finite() && seal > 0.0, "seal rate {seal}");
        assert!(open.is_finite() && open > 0.0, "open rate {open}");
        // A size below one chunk still measures one chunk.
        assert!(bench_aes_gcm_raw(0, 16).unwrap().0 > 0.0);
        assert!(matches!(
            bench_aes_gcm_raw(1 << 20, 0),
            Err(EnvelopeError::InvalidParameters { .. })
        ));
    }
}
