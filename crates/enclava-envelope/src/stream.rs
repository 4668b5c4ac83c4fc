//! The chunked STREAM payload: framing, nonces, sealing and opening of chunks.
//!
//! ```text
//! chunk i = frame word (4 bytes, big-endian: bit 31 = final flag, bits 0..=30 = plaintext length)
//!           || AES-256-GCM ciphertext (length bytes)
//!           || GCM tag (16 bytes)
//! nonce_i = i as 11-byte big-endian integer || final flag byte (0x00 or 0x01)
//! AAD_i   = the 4-byte frame word
//! ```
//!
//! Both directions use fixed-size buffers allocated when the stream starts (one chunk buffer;
//! the `Read`-driven encryption a second one to read ahead); no allocation happens per chunk
//! and memory use does not depend on the input size. Chunk data is cache-line aligned.

use std::io::{self, Read, Write};

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use zeroize::Zeroizing;

use crate::error::EnvelopeError;

/// Length of a chunk's frame word.
pub const FRAME_LEN: usize = 4;
/// Length of an AES-256-GCM tag.
pub const TAG_LEN: usize = 16;
/// Bit 31 of the frame word marks the final chunk.
pub const FINAL_FLAG: u32 = 0x8000_0000;
/// Most chunks one envelope may hold (chunk indices `0 .. MAX_CHUNKS`).
pub const MAX_CHUNKS: u64 = 1 << 32;
/// Most plaintext bytes an encoder puts into one envelope (2^48 bytes = 256 TiB), which keeps
/// the AES-256-GCM usage of one payload key at or below 2^44 blocks.
pub const MAX_PLAINTEXT_BYTES: u64 = 1 << 48;

/// The plaintext limit of an envelope with `chunk_size`-byte chunks.
pub(crate) fn max_plaintext_bytes(chunk_size: u32) -> u64 {
    (MAX_CHUNKS * u64::from(chunk_size)).min(MAX_PLAINTEXT_BYTES)
}

/// Error for a violated internal buffer invariant (never expected; avoids panicking).
fn bounds() -> EnvelopeError {
    EnvelopeError::Crypto("chunk buffer bounds")
}

/// The 96-bit GCM nonce of chunk `index`: 11-byte big-endian counter, then the final flag.
pub(crate) fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    let counter = index.to_be_bytes();
    // Bytes 0..3 of the 11-byte counter stay zero: index < MAX_CHUNKS <= 2^64.
    for (dst, src) in nonce.iter_mut().skip(3).zip(counter) {
        *dst = src;
    }
    if let Some(flag) = nonce.last_mut() {
        *flag = u8::from(last);
    }
    Nonce::assume_unique_for_key(nonce)
}

fn frame_word(len: usize, last: bool) -> Result<[u8; FRAME_LEN], EnvelopeError> {
    let len = u32::try_from(len).map_err(|_| bounds())?;
    if len & FINAL_FLAG != 0 {
        return Err(bounds());
    }
    Ok((len | if last { FINAL_FLAG } else { 0 }).to_be_bytes())
}

/// Reads until `buf` is full or the reader reports end of stream; returns the bytes read.
pub(crate) fn read_full<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        let want = rest.len();
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) if n <= want => filled += n,
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("reader returned {n} bytes for a {want}-byte buffer"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Alignment of the chunk data inside the reusable buffers: one cache line. The AES-GCM
/// kernels load and store 32 or 64 bytes at a time; data that starts 4 bytes into a cache line
/// (where the plaintext sat behind the frame word before) splits every other 32-byte access, and
/// every 64-byte access, across two cache lines.
const DATA_ALIGN: usize = 64;

/// A zeroized buffer of `len` usable bytes whose byte `lead` lies on a [`DATA_ALIGN`] boundary.
/// Returns the buffer and the offset of the usable area (so `buf[offset + lead]` is aligned).
/// The vector is never grown, so the alignment holds for its whole life.
pub(crate) fn aligned_buffer(len: usize, lead: usize) -> (Zeroizing<Vec<u8>>, usize) {
    let buf = Zeroizing::new(vec![0u8; len + DATA_ALIGN]);
    let misalignment = (buf.as_ptr().addr() + lead) % DATA_ALIGN;
    let offset = (DATA_ALIGN - misalignment) % DATA_ALIGN;
    (buf, offset)
}

/// Encrypting side: seals chunks in place in one reusable buffer.
pub(crate) struct Sealer {
    key: LessSafeKey,
    /// From `start`: `FRAME_LEN + chunk_size + TAG_LEN` bytes: frame word, plaintext/ciphertext,
    /// tag. The plaintext (at `start + FRAME_LEN`) is cache-line aligned.
    buf: Zeroizing<Vec<u8>>,
    start: usize,
    /// A second buffer of the same shape for the `Read` path, allocated on first use: the
    /// next chunk is read into it while the current one waits to learn whether it is final,
    /// so every read lands at an aligned position (see [`Sealer::next_area`]).
    spare: Option<(Zeroizing<Vec<u8>>, usize)>,
    chunk_size: usize,
    max_bytes: u64,
    index: u64,
    finished: bool,
    plaintext_bytes: u64,
    payload_bytes: u64,
}

impl Sealer {
    pub(crate) fn new(key: LessSafeKey, chunk_size: u32) -> Self {
        let size = chunk_size as usize;
        let (buf, start) = aligned_buffer(FRAME_LEN + size + TAG_LEN, FRAME_LEN);
        Sealer {
            key,
            buf,
            start,
            spare: None,
            chunk_size: size,
            max_bytes: max_plaintext_bytes(chunk_size),
            index: 0,
            finished: false,
            plaintext_bytes: 0,
            payload_bytes: 0,
        }
    }

    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The area where the current chunk's plaintext goes: `chunk_size` bytes, cache-line
    /// aligned.
    pub(crate) fn plaintext_area(&mut self) -> &mut [u8] {
        let from = self.start + FRAME_LEN;
        self.buf
            .get_mut(from..from + self.chunk_size)
            .unwrap_or_default()
    }

    /// The plaintext area of the spare buffer (`chunk_size` bytes, cache-line aligned), where
    /// the `Read` path reads the chunk after the current one. Reading a whole chunk ahead
    /// instead of one lookahead byte keeps every copy from the source aligned: with a carried
    /// lookahead byte, each read started one byte past the aligned position, and large
    /// misaligned copies (`rep movsb`) run at a fraction of the aligned speed on some CPUs.
    pub(crate) fn next_area(&mut self) -> &mut [u8] {
        let size = self.chunk_size;
        let (buf, start) = self
            .spare
            .get_or_insert_with(|| aligned_buffer(FRAME_LEN + size + TAG_LEN, FRAME_LEN));
        let from = *start + FRAME_LEN;
        buf.get_mut(from..from + size).unwrap_or_default()
    }

    /// Makes the spare buffer (filled through [`Sealer::next_area`]) the current one.
    pub(crate) fn swap_buffers(&mut self) {
        if let Some((buf, start)) = self.spare.as_mut() {
            std::mem::swap(&mut self.buf, buf);
            std::mem::swap(&mut self.start, start);
        }
    }

    pub(crate) fn chunks(&self) -> u64 {
        self.index
    }
    pub(crate) fn plaintext_bytes(&self) -> u64 {
        self.plaintext_bytes
    }
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Checks that a chunk of `len` bytes may come next and returns its frame word.
    fn admit(&self, len: usize, last: bool) -> Result<[u8; FRAME_LEN], EnvelopeError> {
        if self.finished || len > self.chunk_size || (!last && len != self.chunk_size) {
            return Err(bounds());
        }
        if self.index >= MAX_CHUNKS
            || (!last && self.index + 1 >= MAX_CHUNKS)
            || self.plaintext_bytes + len as u64 > self.max_bytes
        {
            return Err(EnvelopeError::TooLarge {
                max_bytes: self.max_bytes,
            });
        }
        frame_word(len, last)
    }

    /// Writes the sealed chunk (frame word, `len` bytes of ciphertext, tag) from the buffer
    /// and advances the stream.
    fn write_sealed<W: Write + ?Sized>(
        &mut self,
        len: usize,
        last: bool,
        out: &mut W,
    ) -> Result<(), EnvelopeError> {
        let total = FRAME_LEN + len + TAG_LEN;
        out.write_all(
            self.buf
                .get(self.start..self.start + total)
                .ok_or_else(bounds)?,
        )?;
        self.index += 1;
        self.plaintext_bytes += len as u64;
        self.payload_bytes += total as u64;
        if last {
            self.finished = true;
        }
        Ok(())
    }

    /// Seals the first `len` bytes of the plaintext area in place as the next chunk and
    /// writes the framed chunk to `out`. A non-final chunk must be exactly `chunk_size` bytes.
    pub(crate) fn seal_and_write<W: Write + ?Sized>(
        &mut self,
        len: usize,
        last: bool,
        out: &mut W,
    ) -> Result<(), EnvelopeError> {
        let word = self.admit(len, last)?;
        let (frame, rest) = self
            .buf
            .get_mut(self.start..)
            .and_then(|b| b.split_at_mut_checked(FRAME_LEN))
            .ok_or_else(bounds)?;
        frame.copy_from_slice(&word);
        let (plaintext, after) = rest.split_at_mut_checked(len).ok_or_else(bounds)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(chunk_nonce(self.index, last), Aad::from(word), plaintext)
            .map_err(|_| EnvelopeError::Crypto("AES-256-GCM seal"))?;
        after
            .get_mut(..TAG_LEN)
            .ok_or_else(bounds)?
            .copy_from_slice(tag.as_ref());
        self.write_sealed(len, last, out)
    }

    /// Seals `plaintext` (exactly `chunk_size` bytes, never the final chunk) straight from the
    /// caller's slice into the buffer and writes the framed chunk to `out`: the cipher reads the
    /// source once instead of a copy into the buffer followed by an in-place seal. The
    /// plaintext area is left untouched apart from holding this chunk's ciphertext, so the
    /// caller must not have buffered plaintext in it.
    pub(crate) fn seal_full_chunk_from<W: Write + ?Sized>(
        &mut self,
        plaintext: &[u8],
        out: &mut W,
    ) -> Result<(), EnvelopeError> {
        let len = plaintext.len();
        let word = self.admit(len, false)?;
        let (frame, rest) = self
            .buf
            .get_mut(self.start..)
            .and_then(|b| b.split_at_mut_checked(FRAME_LEN))
            .ok_or_else(bounds)?;
        frame.copy_from_slice(&word);
        let (ciphertext, after) = rest.split_at_mut_checked(len).ok_or_else(bounds)?;
        let tag = after.get_mut(..TAG_LEN).ok_or_else(bounds)?;
        self.key
            .seal_out_of_place_scatter(
                chunk_nonce(self.index, false),
                Aad::from(word),
                plaintext,
                ciphertext,
                &[],
                tag,
            )
            .map_err(|_| EnvelopeError::Crypto("AES-256-GCM seal"))?;
        self.write_sealed(len, false, out)
    }
}

enum OpenerState {
    /// Nothing read yet: the first frame word comes next.
    Start,
    /// The next chunk's frame word has been read.
    Frame([u8; FRAME_LEN]),
    /// The stream ended where the next frame word should have been.
    EndedEarly,
    /// The final chunk has been verified and the stream has ended.
    Done,
    /// An error was returned; it is returned again.
    Failed(FailedWith),
}

#[derive(Clone, Copy)]
enum FailedWith {
    Truncated,
    TrailingData,
    ChunkAuthentication(u64),
    Other,
}

impl FailedWith {
    fn of(err: &EnvelopeError) -> Self {
        match err {
            EnvelopeError::Truncated => FailedWith::Truncated,
            EnvelopeError::TrailingData => FailedWith::TrailingData,
            EnvelopeError::ChunkAuthentication { index } => FailedWith::ChunkAuthentication(*index),
            _ => FailedWith::Other,
        }
    }
    fn replay(self) -> EnvelopeError {
        match self {
            FailedWith::Truncated => EnvelopeError::Truncated,
            FailedWith::TrailingData => EnvelopeError::TrailingData,
            FailedWith::ChunkAuthentication(index) => EnvelopeError::ChunkAuthentication { index },
            FailedWith::Other => EnvelopeError::Io(io::Error::other(
                "the envelope stream already failed; see the first error",
            )),
        }
    }
}

/// Decrypting side: reads, verifies and decrypts chunks in one reusable buffer.
pub(crate) struct Opener {
    key: LessSafeKey,
    /// From `start`: `chunk_size + TAG_LEN + FRAME_LEN` bytes: ciphertext (cache-line
    /// aligned), tag, and the next frame word.
    buf: Zeroizing<Vec<u8>>,
    start: usize,
    chunk_size: usize,
    index: u64,
    state: OpenerState,
    plaintext_bytes: u64,
    payload_bytes: u64,
}

impl Opener {
    pub(crate) fn new(key: LessSafeKey, chunk_size: u32) -> Self {
        let size = chunk_size as usize;
        let (buf, start) = aligned_buffer(size + TAG_LEN + FRAME_LEN, 0);
        Opener {
            key,
            buf,
            start,
            chunk_size: size,
            index: 0,
            state: OpenerState::Start,
            plaintext_bytes: 0,
            payload_bytes: 0,
        }
    }

    pub(crate) fn chunks(&self) -> u64 {
        self.index
    }
    pub(crate) fn plaintext_bytes(&self) -> u64 {
        self.plaintext_bytes
    }
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// The verified plaintext of the chunk last returned by [`Opener::next_chunk`].
    pub(crate) fn plaintext(&self, range: std::ops::Range<usize>) -> &[u8] {
        self.buf
            .get(self.start..)
            .and_then(|b| b.get(range))
            .unwrap_or_default()
    }

    /// Reads, authenticates and decrypts the next chunk. Returns its plaintext length (the
    /// plaintext is `self.plaintext(0..len)`), or `None` once the final chunk has been
    /// returned. The final chunk is only returned after the end of the stream was seen.
    pub(crate) fn next_chunk<R: Read + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<usize>, EnvelopeError> {
        match self.step(reader) {
            Ok(result) => Ok(result),
            Err(err) => {
                self.state = OpenerState::Failed(FailedWith::of(&err));
                Err(err)
            }
        }
    }

    fn step<R: Read + ?Sized>(&mut self, reader: &mut R) -> Result<Option<usize>, EnvelopeError> {
        let word = match self.state {
            OpenerState::Done => return Ok(None),
            OpenerState::Failed(failed) => return Err(failed.replay()),
            OpenerState::EndedEarly => return Err(EnvelopeError::Truncated),
            OpenerState::Frame(word) => word,
            OpenerState::Start => {
                let mut word = [0u8; FRAME_LEN];
                let n = read_full(reader, &mut word)?;
                self.payload_bytes += n as u64;
                if n < FRAME_LEN {
                    return Err(EnvelopeError::Truncated);
                }
                word
            }
        };
        let index = self.index;
        let value = u32::from_be_bytes(word);
        let last = value & FINAL_FLAG != 0;
        let len = (value & !FINAL_FLAG) as usize;
        if len > self.chunk_size {
            return Err(EnvelopeError::MalformedChunk {
                index,
                reason: format!(
                    "the frame declares {len} plaintext bytes, the chunk size is {}",
                    self.chunk_size
                ),
            });
        }
        if !last && len != self.chunk_size {
            return Err(EnvelopeError::MalformedChunk {
                index,
                reason: format!(
                    "a non-final chunk must hold exactly {} bytes, the frame declares {len}",
                    self.chunk_size
                ),
            });
        }
        if last && len == 0 && index > 0 {
            return Err(EnvelopeError::MalformedChunk {
                index,
                reason: "an empty final chunk is only allowed as the only chunk".into(),
            });
        }
        if index >= MAX_CHUNKS || (!last && index + 1 >= MAX_CHUNKS) {
            return Err(EnvelopeError::MalformedChunk {
                index,
                reason: format!("an envelope holds at most {MAX_CHUNKS} chunks"),
            });
        }
        let body = len + TAG_LEN;
        // A non-final chunk is followed by at least the next frame word: read it in the same
        // call, which halves the number of reads per chunk.
        let want = if last { body } else { body + FRAME_LEN };
        let start = self.start;
        let area = self.buf.get_mut(start..start + want).ok_or_else(bounds)?;
        let n = read_full(reader, area)?;
        self.payload_bytes += n as u64;
        if n < body {
            return Err(EnvelopeError::Truncated);
        }
        let (ciphertext, rest) = area.split_at_mut_checked(len).ok_or_else(bounds)?;
        let tag = rest.get(..TAG_LEN).ok_or_else(bounds)?;
        self.key
            .open_in_place_separate_tag(chunk_nonce(index, last), Aad::from(word), tag, ciphertext)
            .map_err(|_| EnvelopeError::ChunkAuthentication { index })?;
        if last {
            let mut probe = [0u8; 1];
            if read_full(reader, &mut probe)? != 0 {
                self.payload_bytes += 1;
                return Err(EnvelopeError::TrailingData);
            }
            self.state = OpenerState::Done;
        } else if n < want {
            self.state = OpenerState::EndedEarly;
        } else {
            let next = self
                .buf
                .get(start + body..start + want)
                .and_then(|s| <[u8; FRAME_LEN]>::try_from(s).ok())
                .ok_or_else(bounds)?;
            self.state = OpenerState::Frame(next);
        }
        self.index += 1;
        self.plaintext_bytes += len as u64;
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_counter_then_final_flag() {
        let n = chunk_nonce(0x0102_0304_0506_0708, true);
        assert_eq!(
            n.as_ref(),
            &[0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1],
            "11-byte big-endian counter, then the flag"
        );
        assert_eq!(chunk_nonce(0, false).as_ref(), &[0u8; 12]);
        assert_eq!(chunk_nonce(1, false).as_ref()[10], 1);
    }

    #[test]
    fn frame_word_encoding() {
        assert_eq!(frame_word(65536, false).unwrap(), [0, 1, 0, 0]);
        assert_eq!(frame_word(6, true).unwrap(), [0x80, 0, 0, 6]);
        assert_eq!(frame_word(0, true).unwrap(), [0x80, 0, 0, 0]);
        assert!(frame_word(0x8000_0000, false).is_err());
    }

    /// A reader that claims to have read more than it was asked for.
    struct Liar;
    impl Read for Liar {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            Ok(buf.len() + 1)
        }
    }

    #[test]
    fn read_full_rejects_lying_readers_and_stops_at_eof() {
        let err = read_full(&mut Liar, &mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut src: &[u8] = b"abc";
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut src, &mut buf).unwrap(), 3);
        assert_eq!(read_full(&mut src, &mut buf).unwrap(), 0);
        assert_eq!(read_full(&mut src, &mut []).unwrap(), 0);
    }

    #[test]
    fn plaintext_limits() {
        assert_eq!(max_plaintext_bytes(1), 1 << 32);
        assert_eq!(max_plaintext_bytes(64 * 1024), 1 << 48);
        assert_eq!(max_plaintext_bytes(16 * 1024 * 1024), 1 << 48);
        let key = LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
        );
        let mut sealer = Sealer::new(key, 4);
        sealer.max_bytes = 8;
        let mut out = Vec::new();
        sealer.seal_and_write(4, false, &mut out).unwrap();
        sealer.seal_and_write(4, false, &mut out).unwrap();
        assert!(matches!(
            sealer.seal_and_write(1, true, &mut out),
            Err(EnvelopeError::TooLarge { max_bytes: 8 })
        ));
    }

    /// The chunk data sits on a cache-line boundary in both directions (a 4-byte offset
    /// behind the frame word split the cipher's wide loads and stores across cache lines).
    #[test]
    fn chunk_data_is_cache_line_aligned() {
        let key = || {
            LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32])
                    .unwrap(),
            )
        };
        for chunk_size in [1u32, 16, 1000, 65536] {
            let mut sealer = Sealer::new(key(), chunk_size);
            let area = sealer.plaintext_area();
            assert_eq!(
                area.as_ptr().addr() % DATA_ALIGN,
                0,
                "sealer, chunk {chunk_size}"
            );
            assert_eq!(area.len(), chunk_size as usize);
            let next = sealer.next_area();
            assert_eq!(
                next.as_ptr().addr() % DATA_ALIGN,
                0,
                "spare, chunk {chunk_size}"
            );
            assert_eq!(next.len(), chunk_size as usize);
            // The frame word directly precedes the plaintext, so one write emits the chunk.
            let mut out = Vec::new();
            sealer.plaintext_area()[..1].copy_from_slice(b"x");
            sealer.seal_and_write(1, true, &mut out).unwrap();
            assert_eq!(out[..FRAME_LEN], [0x80, 0, 0, 1]);
            assert_eq!(out.len(), FRAME_LEN + 1 + TAG_LEN);
            let opener = Opener::new(key(), chunk_size);
            assert_eq!(
                opener.plaintext(0..1).as_ptr().addr() % DATA_ALIGN,
                0,
                "opener, chunk {chunk_size}"
            );
        }
    }

    #[test]
    fn sealer_refuses_to_continue_after_the_final_chunk() {
        let key = LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
        );
        let mut sealer = Sealer::new(key, 4);
        let mut out = Vec::new();
        sealer.seal_and_write(2, true, &mut out).unwrap();
        assert_eq!(out.len(), FRAME_LEN + 2 + TAG_LEN);
        assert!(sealer.seal_and_write(0, true, &mut out).is_err());
        // A short non-final chunk is refused as well.
        let key = LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
        );
        let mut sealer = Sealer::new(key, 4);
        assert!(sealer.seal_and_write(3, false, &mut out).is_err());
    }
}
