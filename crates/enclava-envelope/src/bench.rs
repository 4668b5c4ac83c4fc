//! In-memory throughput measurement through the real encrypt/decrypt code path.

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::error::EnvelopeError;
use crate::keys::AesKeyWrap;
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
