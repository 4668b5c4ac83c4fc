//! CCEL replay against real TDX quotes (go-tdx-guest cos-113, trustee quote 4).

mod common;

use base64::Engine;
use enclava_evidence::ccel::{self, EV_NO_ACTION};
use enclava_evidence::error::FailedCheck;
use proptest::prelude::*;

/// RTMR0..3 of a v4 TD quote: 48-byte header, then the TD report body with rtmr0 at body
/// offset 16+48+48+8+8+8+48+48+48+48 = 328.
fn quote_rtmrs(quote: &[u8]) -> [[u8; 48]; 4] {
    assert_eq!(u16::from_le_bytes([quote[0], quote[1]]), 4, "v4 quote");
    let mut out = [[0u8; 48]; 4];
    for (i, r) in out.iter_mut().enumerate() {
        let o = 48 + 328 + 48 * i;
        r.copy_from_slice(&quote[o..o + 48]);
    }
    out
}

#[test]
fn ccel_table() {
    let Some(t) = common::read("tdx/google-go-tdx-guest/ccel_table.dat") else {
        return;
    };
    let table = ccel::parse_ccel_table(&t).unwrap();
    assert_eq!(table.cc_type, 2);
    assert_eq!(table.cc_subtype, 0);
    assert_eq!(table.log_area_minimum_length, 0x40000);
    assert_eq!(table.log_area_start_address, 0xbedb_f000);
    assert_eq!(table.oem_id, "INTEL");
    let data = common::read("tdx/google-go-tdx-guest/ccel_data.dat").unwrap();
    assert_eq!(data.len() as u64, table.log_area_minimum_length);
    let mut b = t.clone();
    b[20] ^= 1;
    assert_eq!(
        ccel::parse_ccel_table(&b).unwrap_err().failed_check(),
        "malformed_ccel_table"
    );
    let mut b = t.clone();
    b[0] = b'X';
    assert_eq!(
        ccel::parse_ccel_table(&b).unwrap_err().failed_check(),
        "malformed_ccel_table"
    );
    for n in 0..t.len() {
        assert!(ccel::parse_ccel_table(&t[..n]).is_err());
    }
}

#[test]
fn go_tdx_guest_replay_matches_cos_quote() {
    let Some(log) = common::read("tdx/google-go-tdx-guest/ccel_data.dat") else {
        return;
    };
    let quote = common::read("tdx/google-go-tdx-guest/cos-113-tdx-quote.dat").unwrap();
    let rtmrs = quote_rtmrs(&quote);
    let replayed = ccel::replay(&log).unwrap();
    assert!(replayed.events.len() > 10);
    for (i, quoted) in rtmrs.iter().enumerate() {
        assert_eq!(replayed.rtmrs[i], hex::encode(quoted), "RTMR{i}");
    }
    ccel::check_against(rtmrs, &replayed).unwrap();
    // Every extending event is in RTMR0..3 and its digest is 48 bytes.
    for e in &replayed.events {
        assert_eq!(e.digest_sha384.len(), 96);
        if e.event_type != EV_NO_ACTION {
            assert!((1..=4).contains(&e.mr_index));
        }
    }
    // A changed RTMR is reported with its index.
    for i in 0..4 {
        let mut bad = rtmrs;
        bad[i][0] ^= 1;
        match ccel::check_against(bad, &replayed).unwrap_err() {
            ccel::CcelError::RtmrMismatch {
                rtmr,
                expected,
                found,
            } => {
                assert_eq!(rtmr, i);
                assert_eq!(expected, hex::encode(bad[i]));
                assert_eq!(found, replayed.rtmrs[i]);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn trustee_replay_matches_quote_4_and_expected_claims() {
    let Some(log) = common::read("tdx/trustee/CCEL_data") else {
        return;
    };
    let quote = common::read("tdx/trustee/tdx_quote_4.dat").unwrap();
    let expected: serde_json::Value = serde_json::from_slice(
        &common::read("tdx/trustee/parse_tdx_claims_expected.json").unwrap(),
    )
    .unwrap();
    let rtmrs = quote_rtmrs(&quote);
    // The quote's RTMRs are the ones trustee's parsed claims list.
    for i in 0..4 {
        assert_eq!(
            hex::encode(rtmrs[i]),
            expected["quote"]["body"][format!("rtmr_{i}")]
                .as_str()
                .unwrap()
        );
    }
    let replayed = ccel::replay(&log).unwrap();
    // trustee only parses these two together: the td-shim log is not from the TD that produced
    // quote 4, so the replay must be rejected against it (RTMR0 is the first to differ), while
    // the unextended RTMR2/3 agree (all zero).
    match ccel::check_against(rtmrs, &replayed).unwrap_err() {
        ccel::CcelError::RtmrMismatch { rtmr, .. } => assert_eq!(rtmr, 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(replayed.rtmrs[2], hex::encode([0u8; 48]));
    assert_eq!(replayed.rtmrs[3], hex::encode(rtmrs[3]));
    // Replaying by hand from trustee's event list gives the same registers.
    let mut by_hand = [[0u8; 48]; 4];
    for want in expected["uefi_event_logs"].as_array().unwrap() {
        use sha2::Digest;
        let i = want["index"].as_u64().unwrap() as usize - 1;
        let d = hex::decode(want["digests"][0]["digest"].as_str().unwrap()).unwrap();
        let mut h = sha2::Sha384::new();
        h.update(by_hand[i]);
        h.update(&d);
        by_hand[i].copy_from_slice(&h.finalize());
    }
    for (i, reg) in by_hand.iter().enumerate() {
        assert_eq!(replayed.rtmrs[i], hex::encode(reg), "RTMR{i}");
    }
    ccel::check_against(by_hand, &replayed).unwrap();
    assert_eq!(
        replayed.events.len(),
        expected["uefi_event_logs"].as_array().unwrap().len()
    );

    // Each event trustee lists appears, in order, with the same MR index, digest and data.
    let mut pos = 0;
    for want in expected["uefi_event_logs"].as_array().unwrap() {
        let index = want["index"].as_u64().unwrap() as u32;
        let digest = want["digests"][0]["digest"].as_str().unwrap();
        assert_eq!(want["digests"][0]["alg"], "SHA-384");
        let data = base64::engine::general_purpose::STANDARD
            .decode(want["event"].as_str().unwrap())
            .unwrap();
        let found = replayed.events[pos..]
            .iter()
            .position(|e| {
                e.mr_index == index && e.digest_sha384 == digest && e.data == hex::encode(&data)
            })
            .unwrap_or_else(|| {
                panic!(
                    "event {} / {digest} not found after position {pos}",
                    want["type_name"]
                )
            });
        pos += found + 1;
        let ev = &replayed.events[pos - 1];
        // trustee's digest_matches_event: the digest is SHA-384 of the event data.
        use sha2::Digest;
        let matches = hex::encode(sha2::Sha384::digest(&data)) == ev.digest_sha384;
        assert_eq!(matches, want["digest_matches_event"].as_bool().unwrap());
        let type_code = match want["type_name"].as_str().unwrap() {
            "EV_SEPARATOR" => 4,
            "EV_PLATFORM_CONFIG_FLAGS" => 0xa,
            "EV_EFI_PLATFORM_FIRMWARE_BLOB2" => 0x8000_000a,
            other => panic!("unexpected type {other}"),
        };
        assert_eq!(ev.event_type, type_code);
    }
}

#[test]
fn tampered_logs_fail() {
    let Some(log) = common::read("tdx/google-go-tdx-guest/ccel_data.dat") else {
        return;
    };
    let quote = common::read("tdx/google-go-tdx-guest/cos-113-tdx-quote.dat").unwrap();
    let rtmrs = quote_rtmrs(&quote);
    let good = ccel::replay(&log).unwrap();
    // Flip one byte inside each extending event's digest: replay no longer matches.
    let mut offsets = Vec::new();
    let mut search = 0;
    for e in good
        .events
        .iter()
        .filter(|e| e.event_type != EV_NO_ACTION)
        .take(20)
    {
        let d = hex::decode(&e.digest_sha384).unwrap();
        let at = log[search..]
            .windows(48)
            .position(|w| w == d.as_slice())
            .unwrap()
            + search;
        offsets.push(at + 7);
        search = at + 48;
    }
    for o in offsets {
        let mut b = log.clone();
        b[o] ^= 0x40;
        let r = ccel::replay(&b).unwrap();
        assert_eq!(
            ccel::check_against(rtmrs, &r).unwrap_err().failed_check(),
            "rtmr_mismatch"
        );
    }
    // Not a Spec ID log.
    let mut b = log.clone();
    b[0x20] = b'X';
    assert_eq!(
        ccel::replay(&b).unwrap_err().failed_check(),
        "malformed_event_log"
    );
    assert_eq!(
        ccel::replay(&[]).unwrap_err().failed_check(),
        "malformed_event_log"
    );
}

#[test]
fn truncations_never_panic() {
    let Some(log) = common::read("tdx/google-go-tdx-guest/ccel_data.dat") else {
        return;
    };
    let used = ccel::replay(&log).unwrap();
    // Find the end of the used area (the start of the 0xff/0x00 fill).
    let end = {
        let mut n = log.len();
        while n > 0 && (log[n - 1] == 0xff || log[n - 1] == 0) {
            n -= 1;
        }
        n
    };
    for n in (0..end.min(log.len())).step_by(7) {
        if let Ok(r) = ccel::replay(&log[..n]) {
            assert!(r.events.len() <= used.events.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mutated_logs_never_panic(idx in 0usize..8192, val: u8, cut in 0usize..9000) {
        if let Some(log) = common::read("tdx/google-go-tdx-guest/ccel_data.dat") {
            let mut b = log[..8192].to_vec();
            b[idx] = val;
            b.truncate(cut);
            let _ = ccel::replay(&b);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ccel::replay(&b);
        let _ = ccel::parse_ccel_table(&b);
    }
}
