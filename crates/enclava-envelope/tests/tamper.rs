//! Every modification of an envelope is detected, with the documented error, and no
//! unauthenticated plaintext is ever released.

mod common;

use common::{KID, chunk_ranges, data, header_of, open, seal, wrapper};
use enclava_envelope::{
    AesKeyWrap, BoxError, EnvelopeError, KeyMaterial, KeyUnwrapper, decrypt,
    encrypt_with_key_material,
};
use zeroize::Zeroizing;

const CHUNK: u32 = 16;

/// 100 bytes in chunks of 16: six full chunks and a final chunk of 4 bytes.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let plaintext = data(100, 99);
    let envelope = seal(&plaintext, CHUNK);
    (plaintext, envelope)
}

/// 96 bytes in chunks of 16: six chunks, the final one full.
fn sample_full_final() -> (Vec<u8>, Vec<u8>) {
    let plaintext = data(96, 98);
    let envelope = seal(&plaintext, CHUNK);
    (plaintext, envelope)
}

fn assert_prefix_of_whole_chunks(released: &[u8], plaintext: &[u8]) {
    assert!(
        plaintext.starts_with(released),
        "released bytes are not a prefix of the plaintext"
    );
    assert_eq!(
        released.len() % CHUNK as usize,
        0,
        "only whole chunks released"
    );
}

#[test]
fn truncation_anywhere_in_the_payload_is_truncated() {
    for (plaintext, envelope) in [sample(), sample_full_final()] {
        let header_len = header_of(&envelope).encoded_len() as usize;
        for cut in header_len..envelope.len() {
            let (result, released) = open(&envelope[..cut]);
            assert!(
                matches!(result, Err(EnvelopeError::Truncated)),
                "cut at {cut}: {result:?}"
            );
            assert_prefix_of_whole_chunks(&released, &plaintext);
        }
    }
}

#[test]
fn truncation_inside_the_header() {
    let (_, envelope) = sample();
    let header_len = header_of(&envelope).encoded_len() as usize;
    for cut in 0..header_len {
        let (result, released) = open(&envelope[..cut]);
        assert!(released.is_empty());
        match result {
            Err(EnvelopeError::MalformedHeader { .. }) => assert!(cut < 16, "cut {cut}"),
            Err(EnvelopeError::Truncated) => assert!(cut >= 16, "cut {cut}"),
            other => panic!("cut at {cut}: unexpected {other:?}"),
        }
    }
}

#[test]
fn truncation_at_a_boundary_with_a_forged_final_flag_fails_authentication() {
    let (plaintext, envelope) = sample();
    let ranges = chunk_ranges(&envelope);
    for (i, range) in ranges.iter().enumerate().take(ranges.len() - 1) {
        let mut forged = envelope[..range.end].to_vec();
        forged[range.start] |= 0x80;
        let (result, released) = open(&forged);
        assert!(
            matches!(result, Err(EnvelopeError::ChunkAuthentication { index }) if index == i as u64),
            "chunk {i}: {result:?}"
        );
        assert_eq!(released, plaintext[..i * CHUNK as usize]);
    }
}

#[test]
fn clearing_the_final_flag_is_detected() {
    // Full-size final chunk: the frame stays well-formed, authentication fails.
    let (_, mut envelope) = sample_full_final();
    let last = chunk_ranges(&envelope).pop().unwrap();
    envelope[last.start] &= 0x7f;
    let (result, _) = open(&envelope);
    assert!(
        matches!(result, Err(EnvelopeError::ChunkAuthentication { index: 5 })),
        "{result:?}"
    );
    // Short final chunk: a short non-final chunk is malformed.
    let (_, mut envelope) = sample();
    let last = chunk_ranges(&envelope).pop().unwrap();
    envelope[last.start] &= 0x7f;
    let (result, _) = open(&envelope);
    assert!(
        matches!(result, Err(EnvelopeError::MalformedChunk { index: 6, .. })),
        "{result:?}"
    );
}

#[test]
fn trailing_data_after_the_final_chunk() {
    for (plaintext, envelope) in [sample(), sample_full_final()] {
        let ranges = chunk_ranges(&envelope);
        let last = ranges.last().unwrap().clone();
        let extras: Vec<Vec<u8>> = vec![
            vec![0],
            vec![0xff; 40],
            envelope[last.clone()].to_vec(),
            envelope[ranges[0].clone()].to_vec(),
        ];
        for extra in extras {
            let mut tampered = envelope.clone();
            tampered.extend_from_slice(&extra);
            let (result, released) = open(&tampered);
            assert!(
                matches!(result, Err(EnvelopeError::TrailingData)),
                "{result:?}"
            );
            // The final chunk is withheld: only the full chunks before it were released.
            let full_chunks = ranges.len() - 1;
            assert_eq!(released, plaintext[..full_chunks * CHUNK as usize]);
        }
    }
}

#[test]
fn reordered_dropped_and_duplicated_chunks() {
    let (plaintext, envelope) = sample();
    let ranges = chunk_ranges(&envelope);
    let header_end = ranges[0].start;
    let rebuild = |order: &[usize]| {
        let mut out = envelope[..header_end].to_vec();
        for &i in order {
            out.extend_from_slice(&envelope[ranges[i].clone()]);
        }
        out
    };
    let cases: [(&[usize], u64); 5] = [
        (&[1, 0, 2, 3, 4, 5, 6], 0),    // swap first two
        (&[0, 2, 1, 3, 4, 5, 6], 1),    // swap middle
        (&[0, 1, 3, 4, 5, 6], 2),       // drop a chunk
        (&[0, 1, 1, 2, 3, 4, 5, 6], 2), // duplicate a chunk
        (&[0, 1, 2, 3, 4, 6], 5),       // drop the last full chunk
    ];
    for (order, failing) in cases {
        let (result, released) = open(&rebuild(order));
        assert!(
            matches!(result, Err(EnvelopeError::ChunkAuthentication { index }) if index == failing),
            "{order:?}: {result:?}"
        );
        assert_eq!(released, plaintext[..failing as usize * CHUNK as usize]);
    }
    // The original order still decrypts.
    let (result, _) = open(&rebuild(&[0, 1, 2, 3, 4, 5, 6]));
    assert_eq!(result.unwrap(), plaintext);
}

#[test]
fn chunks_swapped_between_envelopes_fail() {
    let plaintext = data(100, 5);
    let a = seal(&plaintext, CHUNK);
    let b = seal(&plaintext, CHUNK);
    let (ra, rb) = (chunk_ranges(&a), chunk_ranges(&b));
    // Chunk 2 of B at position 2 of A (same plaintext, same position, same wrapper).
    let mut spliced = a[..ra[2].start].to_vec();
    spliced.extend_from_slice(&b[rb[2].clone()]);
    spliced.extend_from_slice(&a[ra[2].end..]);
    let (result, _) = open(&spliced);
    assert!(
        matches!(result, Err(EnvelopeError::ChunkAuthentication { index: 2 })),
        "{result:?}"
    );
    // Header of A with the payload of B.
    let mut spliced = a[..ra[0].start].to_vec();
    spliced.extend_from_slice(&b[rb[0].start..]);
    let (result, released) = open(&spliced);
    assert!(
        matches!(result, Err(EnvelopeError::ChunkAuthentication { index: 0 })),
        "{result:?}"
    );
    assert!(released.is_empty());
}

#[test]
fn same_data_key_different_salt_still_separates_payload_keys() {
    let plaintext = data(64, 8);
    let seal_with = |salt: u8| {
        let mut out = Vec::new();
        encrypt_with_key_material(
            plaintext.as_slice(),
            &mut out,
            &wrapper(),
            &common::options(CHUNK),
            KeyMaterial::from_parts(Zeroizing::new([7; 32]), [salt; 32]),
            &mut |_| {},
        )
        .unwrap();
        out
    };
    let (a, b) = (seal_with(1), seal_with(2));
    let (ra, rb) = (chunk_ranges(&a), chunk_ranges(&b));
    let mut spliced = a[..ra[1].start].to_vec();
    spliced.extend_from_slice(&b[rb[1].clone()]);
    spliced.extend_from_slice(&a[ra[1].end..]);
    let (result, _) = open(&spliced);
    assert!(
        matches!(result, Err(EnvelopeError::ChunkAuthentication { index: 1 })),
        "{result:?}"
    );
}

#[test]
fn every_single_bit_flip_is_detected_without_releasing_forged_plaintext() {
    let plaintext = data(40, 4);
    let envelope = seal(&plaintext, CHUNK);
    for pos in 0..envelope.len() {
        for bit in 0..8 {
            let mut tampered = envelope.clone();
            tampered[pos] ^= 1 << bit;
            let (result, released) = open(&tampered);
            assert!(
                result.is_err(),
                "flip of bit {bit} at byte {pos} went undetected"
            );
            assert_prefix_of_whole_chunks(&released, &plaintext);
        }
    }
}

#[test]
fn header_tampering_is_header_authentication() {
    let (_, envelope) = sample();
    let json_len = u32::from_be_bytes(envelope[17..21].try_into().unwrap()) as usize;
    let json = std::str::from_utf8(&envelope[21..21 + json_len])
        .unwrap()
        .to_owned();
    let edits = [
        ("\"chunk_size\":16", "\"chunk_size\":17"),
        ("\"chunk_size\":16", "\"chunk_size\":32"),
        ("{\"kid\"", "{ \"kid\""),
    ];
    for (from, to) in edits {
        assert!(json.contains(from), "{json}");
        let new_json = json.replacen(from, to, 1);
        let mut tampered = envelope[..17].to_vec();
        tampered.extend_from_slice(&(new_json.len() as u32).to_be_bytes());
        tampered.extend_from_slice(new_json.as_bytes());
        tampered.extend_from_slice(&envelope[21 + json_len..]);
        let (result, released) = open(&tampered);
        assert!(
            matches!(result, Err(EnvelopeError::HeaderAuthentication)),
            "{to}: {result:?}"
        );
        assert!(released.is_empty());
    }
    // Salt: change one base64url character in the middle of the value.
    let salt_at = json.find("\"salt\":\"").unwrap() + 8 + 10;
    let mut tampered = envelope.clone();
    let byte = &mut tampered[21 + salt_at];
    *byte = if *byte == b'A' { b'B' } else { b'A' };
    let (result, _) = open(&tampered);
    assert!(
        matches!(result, Err(EnvelopeError::HeaderAuthentication)),
        "{result:?}"
    );
    // The MAC itself.
    let mut tampered = envelope.clone();
    tampered[21 + json_len + 5] ^= 0x01;
    let (result, _) = open(&tampered);
    assert!(
        matches!(result, Err(EnvelopeError::HeaderAuthentication)),
        "{result:?}"
    );
}

#[test]
fn version_and_magic() {
    let (_, envelope) = sample();
    for version in [0u8, 2, 255] {
        let mut tampered = envelope.clone();
        tampered[16] = version;
        let (result, _) = open(&tampered);
        assert!(
            matches!(result, Err(EnvelopeError::UnsupportedVersion { found }) if found == version),
            "{result:?}"
        );
    }
    let mut tampered = envelope.clone();
    tampered[0] = b'X';
    let (result, _) = open(&tampered);
    assert!(
        matches!(result, Err(EnvelopeError::MalformedHeader { .. })),
        "{result:?}"
    );
    let (result, _) = open(b"");
    assert!(
        matches!(result, Err(EnvelopeError::MalformedHeader { .. })),
        "{result:?}"
    );
}

#[test]
fn wrong_key_encryption_key_fails_to_unwrap() {
    let (_, envelope) = sample();
    let other = AesKeyWrap::new(KID, Zeroizing::new([0x43; 32]));
    let result = decrypt(envelope.as_slice(), Vec::new(), &other, &mut |_| {});
    assert!(
        matches!(result, Err(EnvelopeError::KeyUnwrap(_))),
        "{result:?}"
    );
}

/// An unwrapper that ignores the wrapped key and returns a fixed (wrong) data key.
struct FixedKey(Vec<u8>);

impl KeyUnwrapper for FixedKey {
    fn unwrap_key(&self, _: &str, _: &str, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, BoxError> {
        Ok(Zeroizing::new(self.0.clone()))
    }
}

/// An unwrapper that always fails.
struct Denied;

impl KeyUnwrapper for Denied {
    fn unwrap_key(&self, _: &str, _: &str, _: &[u8]) -> Result<Zeroizing<Vec<u8>>, BoxError> {
        Err("release policy denied the key".into())
    }
}

#[test]
fn wrong_unwrapped_data_key_is_header_authentication() {
    let (_, envelope) = sample();
    let result = decrypt(
        envelope.as_slice(),
        Vec::new(),
        &FixedKey(vec![9; 32]),
        &mut |_| {},
    );
    assert!(
        matches!(result, Err(EnvelopeError::HeaderAuthentication)),
        "{result:?}"
    );
    let result = decrypt(
        envelope.as_slice(),
        Vec::new(),
        &FixedKey(vec![9; 16]),
        &mut |_| {},
    );
    assert!(
        matches!(result, Err(EnvelopeError::DataKeyLength { found: 16 })),
        "{result:?}"
    );
    let result = decrypt(envelope.as_slice(), Vec::new(), &Denied, &mut |_| {});
    match result {
        Err(err @ EnvelopeError::KeyUnwrap(_)) => {
            assert!(err.to_string().contains("release policy denied the key"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn error_messages_never_contain_key_material() {
    let (_, envelope) = sample();
    let dek = [0x5a; 32];
    let result = decrypt(
        envelope.as_slice(),
        Vec::new(),
        &FixedKey(dek.to_vec()),
        &mut |_| {},
    );
    let err = result.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("5a5a") && !text.contains("90, 90"), "{text}");
}
