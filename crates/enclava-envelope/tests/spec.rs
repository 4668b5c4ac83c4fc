//! The format as specified in docs/envelope.md: an independent decoder written from the
//! specification (aws-lc-rs primitives only, none of this crate's decoding code), a fixed
//! test vector, and strict header parsing.

mod common;

use aws_lc_rs::{aead, hkdf, hmac, key_wrap};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{KID, data, open, options, seal, wrapper};
use enclava_envelope::{Encryptor, EnvelopeError, KeyMaterial, encrypt_with_key_material};
use zeroize::Zeroizing;

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn expand(prk: &hkdf::Prk, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    prk.expand(&[info], Len32).unwrap().fill(&mut out).unwrap();
    out
}

/// Decoder written from docs/envelope.md. Returns the plaintext or a description of the
/// first violation.
fn independent_decode(envelope: &[u8], kek: &[u8; 32]) -> Result<Vec<u8>, String> {
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = envelope.get(*pos..*pos + n).ok_or("truncated")?;
        *pos += n;
        Ok(s)
    };
    let mut pos = 0usize;
    if take(&mut pos, 16)? != b"ENCLAVA-ENVELOPE" {
        return Err("magic".into());
    }
    if take(&mut pos, 1)? != [1] {
        return Err("version".into());
    }
    let n = u32::from_be_bytes(take(&mut pos, 4)?.try_into().unwrap()) as usize;
    let json: serde_json::Value =
        serde_json::from_slice(take(&mut pos, n)?).map_err(|e| e.to_string())?;
    let authenticated = &envelope[..pos];
    let mac = take(&mut pos, 32)?;
    let b64 = |field: &str| {
        URL_SAFE_NO_PAD
            .decode(json[field].as_str().ok_or(format!("{field} missing"))?)
            .map_err(|e| e.to_string())
    };
    assert_eq!(json["wrap_alg"], "A256KW");
    let wrapped = b64("wrapped_key")?;
    let salt = b64("salt")?;
    let chunk_size = json["chunk_size"].as_u64().ok_or("chunk_size")? as usize;

    use key_wrap::KeyWrap;
    let mut dek = vec![0u8; wrapped.len()];
    let dek_len = key_wrap::AesKek::new(&key_wrap::AES_256, kek)
        .unwrap()
        .unwrap(&wrapped, &mut dek)
        .map_err(|_| "unwrap")?
        .len();
    dek.truncate(dek_len);

    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&dek);
    let header_key = expand(&prk, b"enclava-envelope v1 header");
    let payload_key = expand(&prk, b"enclava-envelope v1 payload");
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &header_key),
        authenticated,
        mac,
    )
    .map_err(|_| "header mac")?;
    let key =
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &payload_key).unwrap());

    let mut plaintext = Vec::new();
    let mut index: u64 = 0;
    loop {
        let word_bytes: [u8; 4] = take(&mut pos, 4)?.try_into().unwrap();
        let word = u32::from_be_bytes(word_bytes);
        let last = word >> 31 == 1;
        let len = (word & 0x7fff_ffff) as usize;
        if len > chunk_size || (!last && len != chunk_size) || (last && len == 0 && index > 0) {
            return Err("frame".into());
        }
        let mut nonce = [0u8; 12];
        nonce[3..11].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        let mut chunk = take(&mut pos, len + 16)?.to_vec();
        let opened = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(word_bytes),
                &mut chunk,
            )
            .map_err(|_| format!("chunk {index}"))?;
        plaintext.extend_from_slice(opened);
        index += 1;
        if last {
            break;
        }
    }
    if pos != envelope.len() {
        return Err("trailing data".into());
    }
    Ok(plaintext)
}

#[test]
fn independent_decoder_agrees_with_the_crate() {
    for (len, chunk) in [
        (0usize, 16u32),
        (1, 16),
        (16, 16),
        (17, 16),
        (1000, 64),
        (70000, 65536),
    ] {
        let plaintext = data(len, 3);
        let envelope = seal(&plaintext, chunk);
        assert_eq!(
            independent_decode(&envelope, &[0x42; 32]).unwrap(),
            plaintext,
            "len {len} chunk {chunk}"
        );
        // And a tampered copy is rejected by both.
        let mut tampered = envelope.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(independent_decode(&tampered, &[0x42; 32]).is_err());
        assert!(open(&tampered).0.is_err());
    }
}

/// Test vector printed in docs/envelope.md (section "Test vector").
const VECTOR_PLAINTEXT: &[u8] = b"Enclava envelope test vector: 3 chunks";
const VECTOR_HEX: &str = include_str!("vector.hex");

fn vector_material() -> KeyMaterial {
    let mut dek = Zeroizing::new([0u8; 32]);
    let mut salt = [0u8; 32];
    for i in 0..32u8 {
        dek[i as usize] = i;
        salt[i as usize] = 0x80 | i;
    }
    KeyMaterial::from_parts(dek, salt)
}

fn vector_envelope() -> Vec<u8> {
    let mut out = Vec::new();
    encrypt_with_key_material(
        VECTOR_PLAINTEXT,
        &mut out,
        &wrapper(),
        &common::options(16),
        vector_material(),
        &mut |_| {},
    )
    .unwrap();
    out
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn fixed_test_vector_is_stable() {
    let expected = unhex(VECTOR_HEX);
    let produced = vector_envelope();
    if std::env::var_os("PRINT_VECTOR").is_some() {
        let hex: String = produced.iter().map(|b| format!("{b:02x}")).collect();
        for line in hex.as_bytes().chunks(64) {
            println!("{}", std::str::from_utf8(line).unwrap());
        }
    }
    assert_eq!(produced, expected, "the v1 encoding changed");
    assert_eq!(
        independent_decode(&expected, &[0x42; 32]).unwrap(),
        VECTOR_PLAINTEXT
    );
    assert_eq!(open(&expected).0.unwrap(), VECTOR_PLAINTEXT);
}

/// Builds an envelope around an arbitrary JSON header (the MAC is garbage: these headers
/// must be rejected while parsing, before any key is unwrapped).
fn with_json(json: &str) -> Vec<u8> {
    let mut out = b"ENCLAVA-ENVELOPE\x01".to_vec();
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&[0u8; 32]);
    out.extend_from_slice(&[0x80, 0, 0, 0]);
    out.extend_from_slice(&[0u8; 16]);
    out
}

#[test]
fn strict_header_parsing() {
    let salt = URL_SAFE_NO_PAD.encode([1u8; 32]);
    let wrapped = URL_SAFE_NO_PAD.encode([2u8; 40]);
    let good = format!(
        r#"{{"kid":"{KID}","wrap_alg":"A256KW","wrapped_key":"{wrapped}","chunk_size":16,"salt":"{salt}"}}"#
    );
    // Well-formed: parses, then fails where the garbage MAC is checked (after unwrapping,
    // which fails first because the wrapped key is garbage).
    let (result, _) = open(&with_json(&good));
    assert!(
        matches!(result, Err(EnvelopeError::KeyUnwrap(_))),
        "{result:?}"
    );

    let bad = [
        good.replace(r#""chunk_size":16"#, r#""chunk_size":16,"extra":1"#),
        good.replace(r#""chunk_size":16"#, r#""chunk_size":16,"chunk_size":16"#),
        good.replace(r#""chunk_size":16"#, r#""chunk_size":0"#),
        good.replace(r#""chunk_size":16"#, r#""chunk_size":16777217"#),
        good.replace(r#""chunk_size":16"#, r#""chunk_size":16.0"#),
        good.replace(r#""chunk_size":16"#, r#""chunk_size":-16"#),
        good.replace(&salt, &URL_SAFE_NO_PAD.encode([1u8; 31])),
        good.replace(&salt, &format!("{salt}=")),
        good.replace(&wrapped, ""),
        good.replace(KID, ""),
        good.replace(KID, "kid with spaces"),
        good.replace("A256KW", "A256KW!"),
        good.replace(r#","salt""#, r#","metadata":{"a":"1","a":"2"},"salt""#),
        good.replace(r#","salt""#, r#","metadata":{"":"1"},"salt""#),
        good.replace(r#","salt""#, r#","metadata":{"a":1},"salt""#),
        good.replace(r#","salt":"#, r#","salt_":"#),
        good.replace('{', "["),
        "null".to_owned(),
        "not json".to_owned(),
        format!("{good} trailing"),
    ];
    for json in &bad {
        let (result, released) = open(&with_json(json));
        assert!(
            matches!(result, Err(EnvelopeError::MalformedHeader { .. })),
            "{json}: {result:?}"
        );
        assert!(released.is_empty());
    }
    // Header length 0 and above the limit.
    let mut envelope = with_json(&good);
    envelope[17..21].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        open(&envelope).0,
        Err(EnvelopeError::MalformedHeader { .. })
    ));
    envelope[17..21].copy_from_slice(&(64 * 1024 + 1u32).to_be_bytes());
    assert!(matches!(
        open(&envelope).0,
        Err(EnvelopeError::MalformedHeader { .. })
    ));
    envelope[17..21].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        open(&envelope).0,
        Err(EnvelopeError::MalformedHeader { .. })
    ));
}

#[test]
fn error_text_from_untrusted_header_is_bounded() {
    let long_field = "x".repeat(10_000);
    let json = format!(r#"{{"{long_field}":1}}"#);
    let (result, _) = open(&with_json(&json));
    let err = result.unwrap_err();
    assert!(matches!(err, EnvelopeError::MalformedHeader { .. }));
    assert!(err.to_string().len() < 400, "{}", err.to_string().len());
}

/// docs/envelope.md prints the same vector; keep the specification honest.
#[test]
fn specification_document_prints_the_test_vector() {
    let doc = include_str!("../../../docs/envelope.md");
    let block = doc
        .split("Complete envelope")
        .nth(1)
        .and_then(|rest| rest.split("```text").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("docs/envelope.md has the complete test vector");
    assert_eq!(unhex(block), unhex(VECTOR_HEX));
    assert_eq!(unhex(block).len(), 370);
}

/// The streaming encryptor seals a whole chunk straight from the caller's slice when nothing is
/// buffered (no copy into the chunk buffer), and the buffers are now cache-line aligned. Neither
/// may change a byte of the format: for every write pattern, the output must be identical to
/// the buffered `Read` path, equal the fixed test vector where it applies, and decode with the
/// independent decoder written from the specification.
#[test]
fn direct_sealing_writes_the_same_bytes_as_the_buffered_path() {
    use std::io::Write;
    let material = || {
        let mut dek = Zeroizing::new([0u8; 32]);
        let mut salt = [0u8; 32];
        for i in 0..32u8 {
            dek[i as usize] = 0x11 ^ i;
            salt[i as usize] = 0x22 ^ i;
        }
        KeyMaterial::from_parts(dek, salt)
    };
    for (len, chunk) in [
        (0usize, 16u32),
        (15, 16),
        (16, 16),
        (17, 16),
        (48, 16),
        (49, 16),
        (1000, 64),
        (200_000, 65536),
        (196_608, 65536),
    ] {
        let plaintext = data(len, 9);
        let mut reference = Vec::new();
        encrypt_with_key_material(
            plaintext.as_slice(),
            &mut reference,
            &wrapper(),
            &options(chunk),
            material(),
            &mut |_| {},
        )
        .unwrap();
        let c = chunk as usize;
        for write in [1, c - 1, c, c + 1, 2 * c + 3, len.max(1)] {
            let mut enc =
                Encryptor::with_key_material(Vec::new(), &wrapper(), &options(chunk), material())
                    .unwrap();
            for piece in plaintext.chunks(write.max(1)) {
                enc.write_all(piece).unwrap();
            }
            let (out, summary) = enc.finish().unwrap();
            assert_eq!(
                out, reference,
                "len {len}, chunk {chunk}, writes of {write} bytes: output differs from the buffered path"
            );
            assert_eq!(summary.envelope_bytes, out.len() as u64);
            assert_eq!(
                independent_decode(&out, &[0x42; 32]).unwrap(),
                plaintext,
                "len {len}, chunk {chunk}, writes of {write} bytes"
            );
        }
    }
    // The fixed vector (3 chunks of at most 16 bytes) written in one call, which takes the
    // direct path for its first two chunks.
    let mut enc =
        Encryptor::with_key_material(Vec::new(), &wrapper(), &options(16), vector_material())
            .unwrap();
    enc.write_all(VECTOR_PLAINTEXT).unwrap();
    let (out, _) = enc.finish().unwrap();
    assert_eq!(
        out,
        unhex(VECTOR_HEX),
        "the encryptor reproduces the fixed vector"
    );
}
