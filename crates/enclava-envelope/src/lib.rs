//! The Enclava data envelope: a versioned, authenticated header carrying a per-file data key
//! wrapped by a vault key, followed by a chunked AES-256-GCM STREAM payload.
//!
//! The byte-exact format is specified in `docs/envelope.md`. In short:
//!
//! ```text
//! "ENCLAVA-ENVELOPE" | 0x01 | u32 N | JSON header (N bytes) | HMAC-SHA256 (32 bytes)
//! chunk 0 | chunk 1 | ... | final chunk
//! chunk = u32 frame (bit 31 final, bits 0..=30 length) | ciphertext | 16-byte tag
//! ```
//!
//! * A fresh random 32-byte data key (DEK) and 32-byte salt per envelope;
//!   HKDF-SHA256(salt, DEK) derives a header MAC key and a payload key. The DEK never encrypts
//!   data itself.
//! * Chunk `i` is sealed with nonce `i (11 bytes BE) || final flag (1 byte)`, AAD = its frame
//!   word. Truncation, reordering, dropping, duplicating and swapping chunks (also between
//!   envelopes) fail authentication or are reported as [`EnvelopeError::Truncated`] /
//!   [`EnvelopeError::TrailingData`].
//! * Key wrapping is delegated to the caller through [`KeyWrapper`] / [`KeyUnwrapper`] (the CLI
//!   uses the vault's `wrapKey` / `unwrapKey`).
//!
//! Decryption never releases plaintext of a chunk before that chunk has authenticated, but a
//! stream is only known to be complete after its final chunk. **Output written before an
//! error must be discarded** (write to a temporary file; rename it only when `decrypt`
//! returned `Ok`).
//!
//! ```
//! use enclava_envelope::{AesKeyWrap, EncryptOptions, decrypt, encrypt, read_header};
//!
//! # fn main() -> Result<(), enclava_envelope::EnvelopeError> {
//! // In the CLI the wrapper/unwrapper call the vault; here a local A256KW key.
//! let kek = AesKeyWrap::generate("https://vault.example/keys/data/1")?;
//! let mut envelope = Vec::new();
//! encrypt(&b"secret rows"[..], &mut envelope, &kek, &EncryptOptions::default(), &mut |_| {})?;
//!
//! // Inspect the key id before unwrapping.
//! let header = read_header(&mut envelope.as_slice())?;
//! assert_eq!(header.kid(), "https://vault.example/keys/data/1");
//!
//! let mut plaintext = Vec::new();
//! decrypt(envelope.as_slice(), &mut plaintext, &kek, &mut |_| {})?;
//! assert_eq!(plaintext, b"secret rows");
//! # Ok(())
//! # }
//! ```
// Parses attacker-supplied input: indexing, slicing and `unwrap` are denied outside tests, so bad
// input is a typed error, never a panic.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bench;
mod error;
mod header;
mod keys;
mod stream;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

pub use bench::{bench_aes_gcm_raw, bench_throughput};
pub use error::{BoxError, EnvelopeError};
pub use header::{
    DEFAULT_CHUNK_SIZE, HEADER_MAC_LEN, Header, MAGIC, MAX_ALG_LEN, MAX_CHUNK_SIZE,
    MAX_HEADER_JSON_LEN, MAX_KID_LEN, MAX_METADATA_ENTRIES, MAX_METADATA_KEY_LEN,
    MAX_WRAPPED_KEY_LEN, MIN_CHUNK_SIZE, VERSION, read_header,
};
pub use keys::{AesKeyWrap, DATA_KEY_LEN, KeyMaterial, KeyUnwrapper, KeyWrapper, SALT_LEN};
pub use stream::{FINAL_FLAG, FRAME_LEN, MAX_CHUNKS, MAX_PLAINTEXT_BYTES, TAG_LEN};

use header::HeaderFields;
use keys::derive_keys;
use stream::{Opener, Sealer, read_full};

/// Options for writing an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Plaintext bytes per chunk, [`MIN_CHUNK_SIZE`] ..= [`MAX_CHUNK_SIZE`]. Default 64 KiB.
    pub chunk_size: u32,
    /// Optional content metadata (for example a file name or media type). It is stored in the
    /// header **in clear**: authenticated, not encrypted. Never put secrets here.
    pub metadata: BTreeMap<String, String>,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            metadata: BTreeMap::new(),
        }
    }
}

/// What an encryption or decryption processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The envelope's header (authenticated).
    pub header: Header,
    /// Plaintext bytes.
    pub plaintext_bytes: u64,
    /// Envelope bytes, header included.
    pub envelope_bytes: u64,
    /// Number of chunks, final chunk included.
    pub chunks: u64,
}

/// Wraps the data key, builds the header and sets up the payload key.
fn start_encryption(
    wrapper: &dyn KeyWrapper,
    options: &EncryptOptions,
    key_material: KeyMaterial,
) -> Result<(Header, Sealer), EnvelopeError> {
    header::validate_chunk_size(options.chunk_size)
        .map_err(|reason| EnvelopeError::InvalidParameters { reason })?;
    let keys = derive_keys(key_material.dek.as_ref(), &key_material.salt)?;
    let wrapped_key = wrapper
        .wrap_key(key_material.dek.as_ref())
        .map_err(EnvelopeError::KeyWrap)?;
    let header = Header::build(
        HeaderFields {
            kid: wrapper.kid().to_owned(),
            wrap_alg: wrapper.alg().to_owned(),
            wrapped_key,
            chunk_size: options.chunk_size,
            salt: key_material.salt,
            metadata: options.metadata.clone(),
        },
        &keys.header_mac,
    )?;
    let sealer = Sealer::new(keys.payload, options.chunk_size);
    Ok((header, sealer))
}

/// Unwraps the data key, authenticates the header and sets up the payload key.
fn start_decryption(
    header: &Header,
    unwrapper: &dyn KeyUnwrapper,
) -> Result<Opener, EnvelopeError> {
    let dek = unwrapper
        .unwrap_key(header.kid(), header.wrap_alg(), header.wrapped_key())
        .map_err(EnvelopeError::KeyUnwrap)?;
    if dek.len() != DATA_KEY_LEN {
        return Err(EnvelopeError::DataKeyLength { found: dek.len() });
    }
    let keys = derive_keys(&dek, header.salt())?;
    header.verify(&keys.header_mac)?;
    Ok(Opener::new(keys.payload, header.chunk_size()))
}

/// Encrypts `input` into an envelope written to `output`, under a fresh data key wrapped by
/// `wrapper`.
///
/// Memory use is two chunk buffers regardless of the input size. `progress` is called after
/// every chunk with the number of plaintext bytes processed so far. The output is flushed on
/// success; on error the output holds an incomplete envelope (which decrypts to
/// [`EnvelopeError::Truncated`]) and should be deleted.
pub fn encrypt<R: Read, W: Write>(
    input: R,
    output: W,
    wrapper: &dyn KeyWrapper,
    options: &EncryptOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, EnvelopeError> {
    encrypt_with_key_material(
        input,
        output,
        wrapper,
        options,
        KeyMaterial::generate()?,
        progress,
    )
}

/// [`encrypt`] with caller-supplied key material. Only for reproducible test vectors: never
/// use the same [`KeyMaterial`] twice (see its documentation).
pub fn encrypt_with_key_material<R: Read, W: Write>(
    mut input: R,
    mut output: W,
    wrapper: &dyn KeyWrapper,
    options: &EncryptOptions,
    key_material: KeyMaterial,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, EnvelopeError> {
    let (header, mut sealer) = start_encryption(wrapper, options, key_material)?;
    header.write_to(&mut output)?;
    let chunk_size = sealer.chunk_size();
    let mut filled = read_full(&mut input, sealer.plaintext_area())?;
    loop {
        if filled < chunk_size {
            sealer.seal_and_write(filled, true, &mut output)?;
            progress(sealer.plaintext_bytes());
            break;
        }
        // A full chunk is final only if the input ends right after it. Reading the whole next
        // chunk into the second buffer tells, and keeps every read aligned (a one-byte
        // lookahead carried into the next chunk misaligned every later read by one byte).
        let next = read_full(&mut input, sealer.next_area())?;
        sealer.seal_and_write(chunk_size, next == 0, &mut output)?;
        progress(sealer.plaintext_bytes());
        if next == 0 {
            break;
        }
        sealer.swap_buffers();
        filled = next;
    }
    output.flush()?;
    Ok(Summary {
        plaintext_bytes: sealer.plaintext_bytes(),
        envelope_bytes: header.encoded_len() + sealer.payload_bytes(),
        chunks: sealer.chunks(),
        header,
    })
}

/// Decrypts the envelope read from `input`, writing the plaintext to `output`.
///
/// Every chunk is authenticated before its plaintext is written, and the final chunk is only
/// written once the end of the stream was seen (so [`EnvelopeError::TrailingData`] releases
/// nothing of it). **On any error, discard everything written to `output`**: in particular
/// after [`EnvelopeError::Truncated`] the output is an authentic but incomplete prefix.
///
/// Memory use is one chunk buffer regardless of the input size; `progress` is called after
/// every chunk with the plaintext bytes written so far.
pub fn decrypt<R: Read, W: Write>(
    mut input: R,
    output: W,
    unwrapper: &dyn KeyUnwrapper,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, EnvelopeError> {
    let header = read_header(&mut input)?;
    decrypt_with_header(header, input, output, unwrapper, progress)
}

/// [`decrypt`] for a stream whose header was already read with [`read_header`]; `input` is
/// positioned right after the header.
pub fn decrypt_with_header<R: Read, W: Write>(
    header: Header,
    mut input: R,
    mut output: W,
    unwrapper: &dyn KeyUnwrapper,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, EnvelopeError> {
    let mut opener = start_decryption(&header, unwrapper)?;
    while let Some(len) = opener.next_chunk(&mut input)? {
        output.write_all(opener.plaintext(0..len))?;
        progress(opener.plaintext_bytes());
    }
    output.flush()?;
    Ok(Summary {
        plaintext_bytes: opener.plaintext_bytes(),
        envelope_bytes: header.encoded_len() + opener.payload_bytes(),
        chunks: opener.chunks(),
        header,
    })
}

/// Streaming encryption as a [`Write`]r: write plaintext, then call [`Encryptor::finish`].
///
/// Dropping an `Encryptor` without `finish` leaves an envelope without a final chunk, which
/// every decoder rejects as [`EnvelopeError::Truncated`]. Errors from `write` are
/// [`io::Error`]s; [`EnvelopeError::from_io`] recovers the envelope error. After an error the
/// encryptor refuses further writes.
pub struct Encryptor<W: Write> {
    output: W,
    header: Header,
    sealer: Sealer,
    /// Plaintext bytes buffered for the next chunk.
    filled: usize,
    failed: bool,
}

impl<W: Write> Encryptor<W> {
    /// Starts an envelope on `output` under a fresh data key wrapped by `wrapper`; the header
    /// is written immediately.
    pub fn new(
        output: W,
        wrapper: &dyn KeyWrapper,
        options: &EncryptOptions,
    ) -> Result<Self, EnvelopeError> {
        Self::with_key_material(output, wrapper, options, KeyMaterial::generate()?)
    }

    /// [`Encryptor::new`] with caller-supplied key material (test vectors only).
    pub fn with_key_material(
        mut output: W,
        wrapper: &dyn KeyWrapper,
        options: &EncryptOptions,
        key_material: KeyMaterial,
    ) -> Result<Self, EnvelopeError> {
        let (header, sealer) = start_encryption(wrapper, options, key_material)?;
        header.write_to(&mut output)?;
        Ok(Encryptor {
            output,
            header,
            sealer,
            filled: 0,
            failed: false,
        })
    }

    /// The header written at the start of the envelope.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Seals the final chunk, flushes, and returns the output and a summary.
    pub fn finish(mut self) -> Result<(W, Summary), EnvelopeError> {
        if self.failed {
            return Err(EnvelopeError::Io(io::Error::other(
                "the envelope encryptor already failed; the output is incomplete",
            )));
        }
        self.sealer
            .seal_and_write(self.filled, true, &mut self.output)?;
        self.output.flush()?;
        let summary = Summary {
            plaintext_bytes: self.sealer.plaintext_bytes(),
            envelope_bytes: self.header.encoded_len() + self.sealer.payload_bytes(),
            chunks: self.sealer.chunks(),
            header: self.header,
        };
        Ok((self.output, summary))
    }

    fn write_inner(&mut self, data: &[u8]) -> Result<usize, EnvelopeError> {
        let chunk_size = self.sealer.chunk_size();
        let mut consumed = 0usize;
        while let Some(rest) = data.get(consumed..) {
            if rest.is_empty() {
                break;
            }
            if self.filled == chunk_size {
                // More data follows a full chunk, so that chunk is not the final one.
                self.sealer
                    .seal_and_write(chunk_size, false, &mut self.output)?;
                self.filled = 0;
            }
            if self.filled == 0 && rest.len() > chunk_size {
                // A whole chunk with more data behind it (so not the final chunk), and nothing
                // buffered: seal it straight from the caller's slice, without the copy into the
                // chunk buffer. The output bytes are the same as through the buffer.
                let chunk = rest.get(..chunk_size).unwrap_or_default();
                self.sealer.seal_full_chunk_from(chunk, &mut self.output)?;
                consumed += chunk_size;
                continue;
            }
            let take = rest.len().min(chunk_size - self.filled);
            let area = self
                .sealer
                .plaintext_area()
                .get_mut(self.filled..self.filled + take)
                .ok_or(EnvelopeError::Crypto("chunk buffer bounds"))?;
            area.copy_from_slice(rest.get(..take).unwrap_or_default());
            self.filled += take;
            consumed += take;
        }
        Ok(consumed)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(
                "the envelope encryptor already failed; the output is incomplete",
            ));
        }
        self.write_inner(data).map_err(|err| {
            self.failed = true;
            err.into_io()
        })
    }

    /// Flushes the underlying writer. Buffered plaintext of an incomplete chunk stays
    /// buffered until the chunk is full or [`Encryptor::finish`] is called.
    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// Streaming decryption as a [`Read`]er.
///
/// `read` returns plaintext of authenticated chunks only, and returns `Ok(0)` (end of stream)
/// only after the final chunk authenticated and the input ended right after it. Errors are
/// [`io::Error`]s of kind `InvalidData` wrapping an [`EnvelopeError`]
/// ([`EnvelopeError::from_io`] recovers it). **If `read` fails, discard everything read so
/// far.**
pub struct Decryptor<R: Read> {
    input: R,
    header: Header,
    opener: Opener,
    pos: usize,
    end: usize,
}

impl<R: Read> Decryptor<R> {
    /// Reads and authenticates the header of `input` using `unwrapper`.
    pub fn new(mut input: R, unwrapper: &dyn KeyUnwrapper) -> Result<Self, EnvelopeError> {
        let header = read_header(&mut input)?;
        Self::with_header(header, input, unwrapper)
    }

    /// Like [`Decryptor::new`] for a stream whose header was already read with
    /// [`read_header`].
    pub fn with_header(
        header: Header,
        input: R,
        unwrapper: &dyn KeyUnwrapper,
    ) -> Result<Self, EnvelopeError> {
        let opener = start_decryption(&header, unwrapper)?;
        Ok(Decryptor {
            input,
            header,
            opener,
            pos: 0,
            end: 0,
        })
    }

    /// The (authenticated) header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Plaintext bytes of authenticated chunks decrypted so far.
    pub fn plaintext_bytes(&self) -> u64 {
        self.opener.plaintext_bytes()
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.end {
            match self.opener.next_chunk(&mut self.input) {
                Ok(Some(len)) => {
                    self.pos = 0;
                    self.end = len;
                }
                Ok(None) => return Ok(0),
                Err(err) => return Err(err.into_io()),
            }
        }
        let available = self.opener.plaintext(self.pos..self.end);
        let n = available.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}
