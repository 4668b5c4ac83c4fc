//! Arbitrary input never panics, and a modified envelope never decrypts to anything but
//! an error (or, if unchanged, the original plaintext).

mod common;

use common::{data, open, seal};
use enclava_envelope::bench_throughput;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(open(&bytes).0.is_err());
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prefix_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        keep in 0usize..400,
    ) {
        let envelope = seal(&data(200, 1), 32);
        let mut bytes = envelope[..keep.min(envelope.len())].to_vec();
        bytes.extend_from_slice(&tail);
        let (result, released) = open(&bytes);
        if let Ok(plaintext) = result {
            prop_assert_eq!(plaintext, data(200, 1));
        }
        prop_assert!(data(200, 1).starts_with(&released));
    }

    #[test]
    fn random_edits_are_detected(
        len in 0usize..300,
        chunk_size in 1u32..64,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let plaintext = data(len, len as u64);
        let envelope = seal(&plaintext, chunk_size);
        let mut tampered = envelope.clone();
        for (at, value) in edits {
            let i = at.index(tampered.len());
            tampered[i] = value;
        }
        if let Some(cut) = cut {
            tampered.truncate(cut.index(tampered.len()));
        }
        let (result, released) = open(&tampered);
        if tampered == envelope {
            prop_assert_eq!(result.unwrap(), plaintext);
        } else {
            prop_assert!(result.is_err());
            prop_assert!(plaintext.starts_with(&released));
        }
    }
}

/// Runs the throughput helper once on a small size (debug builds are slow; the numbers are
/// printed, not asserted). `ENCLAVA_BENCH_BYTES` overrides the size.
#[test]
fn bench_throughput_runs() {
    let size = std::env::var("ENCLAVA_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024 * 1024);
    let (enc, dec) = bench_throughput(size, enclava_envelope::DEFAULT_CHUNK_SIZE).unwrap();
    assert!(enc.is_finite() && enc > 0.0, "{enc}");
    assert!(dec.is_finite() && dec > 0.0, "{dec}");
    println!(
        "bench {size} bytes: encrypt {:.1} MB/s, decrypt {:.1} MB/s",
        enc / 1e6,
        dec / 1e6
    );
}
