//! Round trips through every entry point, at and around chunk boundaries.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use common::{KID, chunk_ranges, data, header_of, open, options, seal, wrapper};
use enclava_envelope::{
    AesKeyWrap, DEFAULT_CHUNK_SIZE, Decryptor, EncryptOptions, Encryptor, EnvelopeError,
    KeyMaterial, MAGIC, VERSION, decrypt, decrypt_with_header, encrypt, encrypt_with_key_material,
    read_header,
};
use proptest::prelude::*;
use zeroize::Zeroizing;

fn roundtrip(len: usize, chunk_size: u32) {
    let plaintext = data(len, len as u64 + u64::from(chunk_size));
    let envelope = seal(&plaintext, chunk_size);
    let (result, _) = open(&envelope);
    assert_eq!(
        result.expect("decrypts"),
        plaintext,
        "len {len} chunk {chunk_size}"
    );
    // Chunk count: an empty input is one empty final chunk, otherwise ceil(len / chunk).
    let expected_chunks = if len == 0 {
        1
    } else {
        len.div_ceil(chunk_size as usize)
    };
    assert_eq!(chunk_ranges(&envelope).len(), expected_chunks);
}

#[test]
fn sizes_around_chunk_boundaries_small_chunks() {
    let chunk = 16u32;
    for len in [0, 1, 15, 16, 17, 31, 32, 33, 16 * 5, 16 * 5 + 3] {
        roundtrip(len, chunk);
    }
}

#[test]
fn sizes_around_chunk_boundaries_default_chunks() {
    let chunk = DEFAULT_CHUNK_SIZE as usize;
    for len in [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        3 * chunk,
        3 * chunk + 12345,
    ] {
        roundtrip(len, DEFAULT_CHUNK_SIZE);
    }
}

#[test]
fn chunk_size_one_works() {
    for len in [0, 1, 2, 7] {
        roundtrip(len, 1);
    }
}

#[test]
fn empty_file_is_one_empty_final_chunk() {
    let envelope = seal(b"", 64);
    let ranges = chunk_ranges(&envelope);
    assert_eq!(ranges.len(), 1);
    let first = &envelope[ranges[0].clone()];
    assert_eq!(first.len(), 4 + 16);
    assert_eq!(&first[..4], &[0x80, 0, 0, 0], "final flag set, length 0");
}

#[test]
fn header_layout_and_contents() {
    let mut metadata = BTreeMap::new();
    metadata.insert("name".to_owned(), "claims.csv".to_owned());
    metadata.insert("media_type".to_owned(), "text/csv".to_owned());
    let opts = EncryptOptions {
        chunk_size: 4096,
        metadata: metadata.clone(),
    };
    let mut envelope = Vec::new();
    let summary = encrypt(&b"hello"[..], &mut envelope, &wrapper(), &opts, &mut |_| {}).unwrap();
    assert_eq!(&envelope[..16], MAGIC);
    assert_eq!(envelope[16], VERSION);
    let json_len = u32::from_be_bytes(envelope[17..21].try_into().unwrap()) as usize;
    let json: serde_json::Value = serde_json::from_slice(&envelope[21..21 + json_len]).unwrap();
    assert_eq!(json["kid"], KID);
    assert_eq!(json["wrap_alg"], "A256KW");
    assert_eq!(json["chunk_size"], 4096);
    assert_eq!(json["metadata"]["name"], "claims.csv");

    let header = header_of(&envelope);
    assert_eq!(header.kid(), KID);
    assert_eq!(header.wrap_alg(), AesKeyWrap::ALG);
    assert_eq!(header.chunk_size(), 4096);
    assert_eq!(header.metadata(), &metadata);
    assert_eq!(header.wrapped_key().len(), 40, "A256KW of a 32-byte key");
    assert_eq!(header.encoded_len() as usize, 21 + json_len + 32);
    assert_eq!(summary.header, header);
    assert_eq!(summary.envelope_bytes as usize, envelope.len());
    assert_eq!(summary.plaintext_bytes, 5);
    assert_eq!(summary.chunks, 1);
}

#[test]
fn fresh_key_material_per_file() {
    let a = seal(b"same plaintext", 64);
    let b = seal(b"same plaintext", 64);
    let (ha, hb) = (header_of(&a), header_of(&b));
    assert_ne!(
        ha.wrapped_key(),
        hb.wrapped_key(),
        "fresh data key per file"
    );
    assert_ne!(ha.json(), hb.json());
    let (ca, cb) = (chunk_ranges(&a), chunk_ranges(&b));
    assert_ne!(&a[ca[0].clone()], &b[cb[0].clone()]);
}

#[test]
fn read_header_then_decrypt_with_header() {
    let plaintext = data(1000, 7);
    let envelope = seal(&plaintext, 100);
    let mut reader = envelope.as_slice();
    let header = read_header(&mut reader).unwrap();
    assert_eq!(header.kid(), KID);
    assert_eq!(
        reader.len(),
        envelope.len() - header.encoded_len() as usize,
        "read_header consumes exactly the header"
    );
    let mut out = Vec::new();
    let summary = decrypt_with_header(header, reader, &mut out, &wrapper(), &mut |_| {}).unwrap();
    assert_eq!(out, plaintext);
    assert_eq!(summary.chunks, 10);
    assert_eq!(summary.envelope_bytes as usize, envelope.len());
}

#[test]
fn progress_reports_cumulative_plaintext_bytes() {
    let plaintext = data(250, 1);
    let mut seen = Vec::new();
    let mut envelope = Vec::new();
    encrypt(
        plaintext.as_slice(),
        &mut envelope,
        &wrapper(),
        &options(100),
        &mut |n| seen.push(n),
    )
    .unwrap();
    assert_eq!(seen, vec![100, 200, 250]);
    let mut seen = Vec::new();
    decrypt(envelope.as_slice(), std::io::sink(), &wrapper(), &mut |n| {
        seen.push(n)
    })
    .unwrap();
    assert_eq!(seen, vec![100, 200, 250]);
}

/// A reader that returns at most `step` bytes per call and an `Interrupted` error every
/// other call.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
    interrupt: bool,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn short_reads_and_interrupts_are_handled() {
    let plaintext = data(777, 3);
    let mut envelope = Vec::new();
    let source = Dribble {
        data: &plaintext,
        step: 3,
        interrupt: false,
    };
    encrypt(source, &mut envelope, &wrapper(), &options(64), &mut |_| {}).unwrap();
    let source = Dribble {
        data: &envelope,
        step: 5,
        interrupt: false,
    };
    let mut out = Vec::new();
    decrypt(source, &mut out, &wrapper(), &mut |_| {}).unwrap();
    assert_eq!(out, plaintext);
}

fn fixed_material(seed: u8) -> KeyMaterial {
    KeyMaterial::from_parts(Zeroizing::new([seed; 32]), [seed ^ 0xff; 32])
}

#[test]
fn encryptor_and_encrypt_produce_identical_bytes() {
    for len in [0usize, 1, 63, 64, 65, 640, 1000] {
        let plaintext = data(len, 11);
        let mut a = Vec::new();
        encrypt_with_key_material(
            plaintext.as_slice(),
            &mut a,
            &wrapper(),
            &options(64),
            fixed_material(9),
            &mut |_| {},
        )
        .unwrap();
        let mut enc =
            Encryptor::with_key_material(Vec::new(), &wrapper(), &options(64), fixed_material(9))
                .unwrap();
        for piece in plaintext.chunks(7) {
            enc.write_all(piece).unwrap();
        }
        let (b, summary) = enc.finish().unwrap();
        assert_eq!(a, b, "len {len}");
        assert_eq!(summary.envelope_bytes as usize, b.len());
        assert_eq!(summary.plaintext_bytes as usize, len);
    }
}

#[test]
fn decryptor_reads_plaintext_and_reports_eof_only_at_the_end() {
    let plaintext = data(5000, 5);
    let envelope = seal(&plaintext, 512);
    let mut dec = Decryptor::new(envelope.as_slice(), &wrapper()).unwrap();
    assert_eq!(dec.header().kid(), KID);
    let mut out = Vec::new();
    let mut buf = [0u8; 333];
    loop {
        let n = dec.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, plaintext);
    assert_eq!(dec.read(&mut buf).unwrap(), 0, "EOF is sticky");
    assert_eq!(dec.plaintext_bytes(), 5000);
}

#[test]
fn decryptor_surfaces_envelope_errors() {
    let envelope = seal(&data(3000, 2), 512);
    let cut = &envelope[..envelope.len() - 600];
    let mut dec = Decryptor::new(cut, &wrapper()).unwrap();
    let mut out = Vec::new();
    let err = dec.read_to_end(&mut out).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(matches!(
        EnvelopeError::from_io(err),
        EnvelopeError::Truncated
    ));
    // Only whole authenticated chunks were released.
    assert_eq!(out.len() % 512, 0);
}

#[test]
fn encryptor_dropped_without_finish_decrypts_as_truncated() {
    let mut out = Vec::new();
    {
        let mut enc = Encryptor::new(&mut out, &wrapper(), &options(16)).unwrap();
        enc.write_all(&data(100, 1)).unwrap();
    }
    let (result, _) = open(&out);
    assert!(
        matches!(result, Err(EnvelopeError::Truncated)),
        "{result:?}"
    );
}

#[test]
fn invalid_options_are_rejected_before_writing() {
    for chunk_size in [0u32, 16 * 1024 * 1024 + 1] {
        let mut out = Vec::new();
        let err = encrypt(
            &b"x"[..],
            &mut out,
            &wrapper(),
            &options(chunk_size),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, EnvelopeError::InvalidParameters { .. }),
            "{err:?}"
        );
        assert!(out.is_empty());
    }
    let bad_kid = AesKeyWrap::new("has space", Zeroizing::new([1; 32]));
    let err = encrypt(&b"x"[..], Vec::new(), &bad_kid, &options(16), &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::InvalidParameters { .. }),
        "{err:?}"
    );
    let mut metadata = BTreeMap::new();
    metadata.insert(String::new(), "v".to_owned());
    let opts = EncryptOptions {
        chunk_size: 16,
        metadata,
    };
    let err = encrypt(&b"x"[..], Vec::new(), &wrapper(), &opts, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::InvalidParameters { .. }),
        "{err:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_sizes_and_chunk_sizes_round_trip(
        len in 0usize..3000,
        chunk_size in 1u32..300,
        seed in any::<u64>(),
        write_step in 1usize..500,
        read_step in 1usize..500,
    ) {
        let plaintext = data(len, seed);
        // encrypt/decrypt
        let envelope = seal(&plaintext, chunk_size);
        let (result, _) = open(&envelope);
        prop_assert_eq!(result.unwrap(), plaintext.clone());
        // Encryptor with arbitrary write sizes, Decryptor with arbitrary read sizes
        let mut enc = Encryptor::new(Vec::new(), &wrapper(), &options(chunk_size)).unwrap();
        for piece in plaintext.chunks(write_step) {
            enc.write_all(piece).unwrap();
        }
        let (envelope, _) = enc.finish().unwrap();
        let mut dec = Decryptor::new(envelope.as_slice(), &wrapper()).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; read_step];
        loop {
            let n = dec.read(&mut buf).unwrap();
            if n == 0 { break; }
            out.extend_from_slice(&buf[..n]);
        }
        prop_assert_eq!(out, plaintext);
    }
}
