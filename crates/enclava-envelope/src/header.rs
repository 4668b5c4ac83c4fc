//! The version 1 header: magic, version, length-prefixed JSON, HMAC-SHA256.
//!
//! ```text
//! offset  size  field
//! 0       16    magic "ENCLAVA-ENVELOPE" (ASCII)
//! 16      1     version = 0x01
//! 17      4     N = length of the JSON header, unsigned big-endian, 1..=65536
//! 21      N     JSON header (UTF-8)
//! 21+N    32    HMAC-SHA256(header MAC key, bytes 0 .. 21+N)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::EnvelopeError;
use crate::keys::SALT_LEN;
use crate::stream::read_full;

/// The 16-byte magic that starts every envelope.
pub const MAGIC: &[u8; 16] = b"ENCLAVA-ENVELOPE";
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Length of the header MAC (HMAC-SHA256).
pub const HEADER_MAC_LEN: usize = 32;
/// Largest JSON header accepted, in bytes.
pub const MAX_HEADER_JSON_LEN: usize = 64 * 1024;
/// Smallest chunk size (plaintext bytes per chunk).
pub const MIN_CHUNK_SIZE: u32 = 1;
/// Largest chunk size (plaintext bytes per chunk): 16 MiB.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Default chunk size: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest `kid`, in bytes.
pub const MAX_KID_LEN: usize = 2048;
/// Largest `wrap_alg`, in bytes.
pub const MAX_ALG_LEN: usize = 64;
/// Largest wrapped key, in bytes (decoded).
pub const MAX_WRAPPED_KEY_LEN: usize = 8192;
/// Most metadata entries.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// Largest metadata key, in bytes.
pub const MAX_METADATA_KEY_LEN: usize = 256;

const PREFIX_LEN: usize = MAGIC.len() + 1 + 4;

/// A parsed (not yet authenticated) envelope header.
///
/// [`crate::read_header`] returns it so a caller can look at the key id before unwrapping.
/// It is authenticated by [`crate::decrypt_with_header`] / [`crate::Decryptor`] once the data
/// key is known. Until then every field is attacker-controlled input.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    kid: String,
    wrap_alg: String,
    wrapped_key: Vec<u8>,
    chunk_size: u32,
    salt: [u8; SALT_LEN],
    metadata: BTreeMap<String, String>,
    /// Bytes 0 .. 21+N: magic, version, length, JSON (the MAC input).
    authenticated_bytes: Vec<u8>,
    mac: [u8; HEADER_MAC_LEN],
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("version", &VERSION)
            .field("kid", &self.kid)
            .field("wrap_alg", &self.wrap_alg)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("chunk_size", &self.chunk_size)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl Header {
    /// Format version (always 1 for a header this crate parsed).
    pub fn version(&self) -> u8 {
        VERSION
    }
    /// Identifier of the key-encryption key that wrapped the data key.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// Key wrapping algorithm name.
    pub fn wrap_alg(&self) -> &str {
        &self.wrap_alg
    }
    /// The wrapped data key.
    pub fn wrapped_key(&self) -> &[u8] {
        &self.wrapped_key
    }
    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Optional content metadata (authenticated, *not* encrypted).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// The raw JSON header text.
    pub fn json(&self) -> &[u8] {
        self.authenticated_bytes
            .get(PREFIX_LEN..)
            .unwrap_or_default()
    }
    /// Encoded size of the whole header, MAC included.
    pub fn encoded_len(&self) -> u64 {
        (self.authenticated_bytes.len() + HEADER_MAC_LEN) as u64
    }
    pub(crate) fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// Verifies the header MAC in constant time.
    pub(crate) fn verify(&self, mac_key: &hmac::Key) -> Result<(), EnvelopeError> {
        hmac::verify(mac_key, &self.authenticated_bytes, &self.mac)
            .map_err(|_| EnvelopeError::HeaderAuthentication)
    }

    pub(crate) fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> Result<(), EnvelopeError> {
        out.write_all(&self.authenticated_bytes)?;
        out.write_all(&self.mac)?;
        Ok(())
    }

    /// Builds and MACs a header for encryption.
    pub(crate) fn build(
        fields: HeaderFields,
        mac_key: &hmac::Key,
    ) -> Result<Header, EnvelopeError> {
        fields
            .validate()
            .map_err(|reason| EnvelopeError::InvalidParameters { reason })?;
        let wire = WireHeader {
            kid: fields.kid.clone(),
            wrap_alg: fields.wrap_alg.clone(),
            wrapped_key: URL_SAFE_NO_PAD.encode(&fields.wrapped_key),
            chunk_size: fields.chunk_size,
            salt: URL_SAFE_NO_PAD.encode(fields.salt),
            metadata: Metadata(fields.metadata.clone()),
        };
        let json = serde_json::to_vec(&wire).map_err(|e| EnvelopeError::InvalidParameters {
            reason: format!("header does not serialize: {e}"),
        })?;
        if json.len() > MAX_HEADER_JSON_LEN {
            return Err(EnvelopeError::InvalidParameters {
                reason: format!(
                    "header JSON is {} bytes, at most {MAX_HEADER_JSON_LEN} allowed (shorten the metadata)",
                    json.len()
                ),
            });
        }
        let json_len = u32::try_from(json.len())
            .map_err(|_| EnvelopeError::Crypto("header length conversion"))?;
        let mut authenticated_bytes = Vec::with_capacity(PREFIX_LEN + json.len());
        authenticated_bytes.extend_from_slice(MAGIC);
        authenticated_bytes.push(VERSION);
        authenticated_bytes.extend_from_slice(&json_len.to_be_bytes());
        authenticated_bytes.extend_from_slice(&json);
        let tag = hmac::sign(mac_key, &authenticated_bytes);
        let mac: [u8; HEADER_MAC_LEN] = tag
            .as_ref()
            .try_into()
            .map_err(|_| EnvelopeError::Crypto("HMAC-SHA256"))?;
        Ok(Header {
            kid: fields.kid,
            wrap_alg: fields.wrap_alg,
            wrapped_key: fields.wrapped_key,
            chunk_size: fields.chunk_size,
            salt: fields.salt,
            metadata: fields.metadata,
            authenticated_bytes,
            mac,
        })
    }
}

/// Header fields before encoding.
pub(crate) struct HeaderFields {
    pub(crate) kid: String,
    pub(crate) wrap_alg: String,
    pub(crate) wrapped_key: Vec<u8>,
    pub(crate) chunk_size: u32,
    pub(crate) salt: [u8; SALT_LEN],
    pub(crate) metadata: BTreeMap<String, String>,
}

impl HeaderFields {
    fn validate(&self) -> Result<(), String> {
        validate_kid(&self.kid)?;
        validate_alg(&self.wrap_alg)?;
        validate_wrapped_key_len(self.wrapped_key.len())?;
        validate_chunk_size(self.chunk_size)?;
        validate_metadata(&self.metadata)
    }
}

pub(crate) fn validate_chunk_size(chunk_size: u32) -> Result<(), String> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(format!(
            "chunk_size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, found {chunk_size}"
        ))
    }
}

fn validate_kid(kid: &str) -> Result<(), String> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        return Err(format!(
            "kid must be 1 to {MAX_KID_LEN} bytes, found {} bytes",
            kid.len()
        ));
    }
    if !kid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("kid must consist of visible ASCII characters (0x21..=0x7e)".into());
    }
    Ok(())
}

fn validate_alg(alg: &str) -> Result<(), String> {
    if alg.is_empty() || alg.len() > MAX_ALG_LEN {
        return Err(format!(
            "wrap_alg must be 1 to {MAX_ALG_LEN} bytes, found {} bytes",
            alg.len()
        ));
    }
    if !alg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("wrap_alg must consist of the characters A-Z a-z 0-9 - _ .".into());
    }
    Ok(())
}

fn validate_wrapped_key_len(len: usize) -> Result<(), String> {
    if len == 0 || len > MAX_WRAPPED_KEY_LEN {
        return Err(format!(
            "wrapped_key must be 1 to {MAX_WRAPPED_KEY_LEN} bytes, found {len} bytes"
        ));
    }
    Ok(())
}

pub(crate) fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), String> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(format!(
            "metadata may have at most {MAX_METADATA_ENTRIES} entries, found {}",
            metadata.len()
        ));
    }
    for key in metadata.keys() {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_LEN {
            return Err(format!(
                "metadata keys must be 1 to {MAX_METADATA_KEY_LEN} bytes, found one of {} bytes",
                key.len()
            ));
        }
    }
    Ok(())
}

/// The JSON object, exactly as on the wire.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    kid: String,
    wrap_alg: String,
    wrapped_key: String,
    chunk_size: u32,
    salt: String,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    metadata: Metadata,
}

/// A string-to-string map that rejects duplicate keys when parsed (so that no two decoders
/// can disagree about a header's meaning).
#[derive(Default, Serialize)]
#[serde(transparent)]
struct Metadata(BTreeMap<String, String>);

impl Metadata {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor;
        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Metadata, A::Error> {
                let mut map = BTreeMap::new();
                while let Some((key, value)) = access.next_entry::<String, String>()? {
                    if map.len() >= MAX_METADATA_ENTRIES {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_METADATA_ENTRIES} metadata entries"
                        )));
                    }
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom("duplicate metadata key"));
                    }
                    map.insert(key, value);
                }
                Ok(Metadata(map))
            }
        }
        deserializer.deserialize_map(MetadataVisitor)
    }
}

/// Shortens an error text from untrusted input so error messages stay bounded.
fn bounded(text: String) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text;
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", text.get(..cut).unwrap_or_default())
}

/// Reads exactly one header from `reader` (and not a byte more).
///
/// The result is *not* authenticated: use it to pick a key, then pass it to
/// [`crate::decrypt_with_header`] or [`crate::Decryptor::with_header`].
pub fn read_header<R: Read + ?Sized>(reader: &mut R) -> Result<Header, EnvelopeError> {
    // Only the magic is read into it; the version and length follow separately.
    let mut prefix = [0u8; MAGIC.len()];
    let n = read_full(reader, &mut prefix)?;
    if n < MAGIC.len() {
        return Err(EnvelopeError::malformed_header(format!(
            "not an Enclava envelope: expected the {}-byte magic \"ENCLAVA-ENVELOPE\", the stream has only {n} bytes",
            MAGIC.len()
        )));
    }
    if &prefix != MAGIC {
        return Err(EnvelopeError::malformed_header(
            "not an Enclava envelope: the stream does not start with the magic \"ENCLAVA-ENVELOPE\"",
        ));
    }
    let mut version = [0u8; 1];
    if read_full(reader, &mut version)? < 1 {
        return Err(EnvelopeError::Truncated);
    }
    if version[0] != VERSION {
        return Err(EnvelopeError::UnsupportedVersion { found: version[0] });
    }
    let mut len_bytes = [0u8; 4];
    if read_full(reader, &mut len_bytes)? < 4 {
        return Err(EnvelopeError::Truncated);
    }
    let json_len = u32::from_be_bytes(len_bytes) as usize;
    if json_len == 0 || json_len > MAX_HEADER_JSON_LEN {
        return Err(EnvelopeError::malformed_header(format!(
            "header length must be 1 to {MAX_HEADER_JSON_LEN} bytes, found {json_len}"
        )));
    }
    let mut authenticated_bytes = Vec::with_capacity(PREFIX_LEN + json_len);
    authenticated_bytes.extend_from_slice(MAGIC);
    authenticated_bytes.push(VERSION);
    authenticated_bytes.extend_from_slice(&len_bytes);
    authenticated_bytes.resize(PREFIX_LEN + json_len, 0);
    let json_area = authenticated_bytes
        .get_mut(PREFIX_LEN..)
        .ok_or(EnvelopeError::Crypto("header buffer"))?;
    if read_full(reader, json_area)? < json_len {
        return Err(EnvelopeError::Truncated);
    }
    let mut mac = [0u8; HEADER_MAC_LEN];
    if read_full(reader, &mut mac)? < HEADER_MAC_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let json = authenticated_bytes.get(PREFIX_LEN..).unwrap_or_default();
    let wire: WireHeader = serde_json::from_slice(json).map_err(|e| {
        EnvelopeError::malformed_header(bounded(format!("header JSON is not valid: {e}")))
    })?;
    let wrapped_key = URL_SAFE_NO_PAD.decode(&wire.wrapped_key).map_err(|e| {
        EnvelopeError::malformed_header(format!("wrapped_key is not unpadded base64url: {e}"))
    })?;
    let salt_bytes = URL_SAFE_NO_PAD.decode(&wire.salt).map_err(|e| {
        EnvelopeError::malformed_header(format!("salt is not unpadded base64url: {e}"))
    })?;
    let salt: [u8; SALT_LEN] = salt_bytes.as_slice().try_into().map_err(|_| {
        EnvelopeError::malformed_header(format!(
            "salt must be {SALT_LEN} bytes, found {} bytes",
            salt_bytes.len()
        ))
    })?;
    let fields = HeaderFields {
        kid: wire.kid,
        wrap_alg: wire.wrap_alg,
        wrapped_key,
        chunk_size: wire.chunk_size,
        salt,
        metadata: wire.metadata.0,
    };
    fields
        .validate()
        .map_err(|reason| EnvelopeError::malformed_header(bounded(reason)))?;
    Ok(Header {
        kid: fields.kid,
        wrap_alg: fields.wrap_alg,
        wrapped_key: fields.wrapped_key,
        chunk_size: fields.chunk_size,
        salt: fields.salt,
        metadata: fields.metadata,
        authenticated_bytes,
        mac,
    })
}
