//! The one error type of this crate.

use std::io;

/// Error type returned by a [`crate::KeyWrapper`] or [`crate::KeyUnwrapper`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while writing or reading an envelope.
///
/// Every variant names what was expected and what was found. No variant ever carries key
/// material or plaintext.
///
/// Decryption errors and partial output: `decrypt` writes each chunk's plaintext only after
/// that chunk authenticated, but a stream can only be known to be *complete* once its final
/// chunk has been read. Whatever was written before an error (in particular
/// [`EnvelopeError::Truncated`]) is an authentic *prefix* of the plaintext at best and must be
/// discarded by the caller (write to a temporary file and rename it only on success).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The version byte after the magic is not one this implementation reads.
    #[error("unsupported envelope version {found}: this implementation reads version 1 only")]
    UnsupportedVersion {
        /// The version byte found in the stream.
        found: u8,
    },

    /// The header is not a well-formed version 1 header (bad magic, bad length, bad JSON,
    /// a field outside its limits, ...). The header was *not* authenticated yet.
    #[error("malformed envelope header: {reason}")]
    MalformedHeader {
        /// What was expected and what was found.
        reason: String,
    },

    /// The header MAC did not verify under the key derived from the unwrapped data key: the
    /// header was altered, or the key unwrapper returned a different data key than the one the
    /// envelope was sealed with.
    #[error(
        "envelope header authentication failed: the header was altered, or the unwrapped data key is not the key this envelope was sealed with"
    )]
    HeaderAuthentication,

    /// The caller's [`crate::KeyUnwrapper`] failed.
    #[error("unwrapping the envelope's data key failed: {0}")]
    KeyUnwrap(#[source] BoxError),

    /// The caller's [`crate::KeyWrapper`] failed.
    #[error("wrapping the envelope's data key failed: {0}")]
    KeyWrap(#[source] BoxError),

    /// The key unwrapper returned something that is not a 32-byte data key.
    #[error("the unwrapped data key has {found} bytes, expected 32")]
    DataKeyLength {
        /// Length of what the unwrapper returned.
        found: usize,
    },

    /// The stream ended before its final chunk (or inside the header). Any plaintext already
    /// written is an incomplete prefix and must be discarded.
    #[error(
        "envelope truncated: the stream ended before the final chunk; plaintext written so far is incomplete and must be discarded"
    )]
    Truncated,

    /// Bytes follow the (authenticated) final chunk.
    #[error("trailing data: the stream continues after the final chunk, expected end of stream")]
    TrailingData,

    /// Chunk `index` (0-based) failed AES-256-GCM authentication: it was altered, reordered,
    /// swapped in from another envelope, or its final-chunk marker was changed.
    #[error(
        "chunk {index} failed authentication: it was altered, reordered, taken from another envelope, or its final-chunk marker was changed"
    )]
    ChunkAuthentication {
        /// 0-based chunk index.
        index: u64,
    },

    /// A chunk frame word is inconsistent with the header (length larger than the chunk size,
    /// a short non-final chunk, an empty final chunk after other chunks).
    #[error("chunk {index} is malformed: {reason}")]
    MalformedChunk {
        /// 0-based chunk index.
        index: u64,
        /// What was expected and what was found.
        reason: String,
    },

    /// The input exceeds what one envelope may hold: [`crate::MAX_CHUNKS`] chunks and at
    /// most [`crate::MAX_PLAINTEXT_BYTES`] bytes.
    #[error("too much data: an envelope with this chunk size holds at most {max_bytes} bytes")]
    TooLarge {
        /// The limit for this envelope's chunk size.
        max_bytes: u64,
    },

    /// Encryption options (or values returned by the key wrapper) outside the format's limits.
    #[error("invalid envelope parameters: {reason}")]
    InvalidParameters {
        /// What was expected and what was found.
        reason: String,
    },

    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// A cryptographic primitive reported an internal failure (not an authentication failure).
    #[error("internal cryptographic failure in {0}")]
    Crypto(&'static str),

    /// Reading the input or writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl EnvelopeError {
    pub(crate) fn malformed_header(reason: impl Into<String>) -> Self {
        EnvelopeError::MalformedHeader {
            reason: reason.into(),
        }
    }

    /// Recovers an [`EnvelopeError`] from an [`io::Error`] produced by
    /// [`crate::Decryptor`]'s or [`crate::Encryptor`]'s `Read`/`Write` implementation.
    ///
    /// Plain I/O errors come back as [`EnvelopeError::Io`].
    pub fn from_io(err: io::Error) -> Self {
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<EnvelopeError>())
        {
            match err
                .into_inner()
                .map(|inner| inner.downcast::<EnvelopeError>())
            {
                Some(Ok(envelope)) => *envelope,
                Some(Err(other)) => EnvelopeError::Io(io::Error::other(other)),
                None => EnvelopeError::Io(io::Error::other("unknown I/O error")),
            }
        } else {
            EnvelopeError::Io(err)
        }
    }

    /// Wraps this error into an [`io::Error`] (kind `InvalidData` for format and
    /// authentication errors), recoverable with [`EnvelopeError::from_io`].
    pub fn into_io(self) -> io::Error {
        match self {
            EnvelopeError::Io(err) => err,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
