//! The simulated TEE: round trip, tamper detection, and never passing for hardware.

use chrono::{DateTime, Duration, TimeZone, Utc};
use enclava_evidence::Tee;
use enclava_evidence::error::FailedCheck;
use enclava_evidence::sim::{self, SIM_MAGIC};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

fn inputs() -> ([u8; 48], [u8; 64]) {
    let mut m = [0u8; 48];
    let mut r = [0u8; 64];
    for (i, b) in m.iter_mut().enumerate() {
        *b = i as u8 ^ 0xa5;
    }
    for (i, b) in r.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7);
    }
    (m, r)
}

#[test]
fn round_trip() {
    let (m, r) = inputs();
    let ev = sim::generate(&m, &r, t0());
    assert!(ev.starts_with(SIM_MAGIC));
    assert_eq!(ev.len(), 23 + 48 + 64 + 8 + 2 + 64);
    let c = sim::verify(&ev, t0() + Duration::hours(1)).unwrap();
    assert_eq!(c.tee, Tee::Sim);
    assert!(!c.tee.is_hardware());
    assert!(c.debug);
    assert_eq!(c.measurement, hex::encode(m));
    assert_eq!(c.report_data, hex::encode(r));
    assert_eq!(c.tcb_status, None);
    assert!(c.snp.is_none() && c.tdx.is_none() && c.sgx.is_none() && c.azure.is_none());
    let s = c.sim.as_ref().unwrap();
    assert!(s.simulated);
    assert_eq!(s.generated_at, t0());
    assert_eq!(s.workload, "");
    assert_eq!(s.format_version, 1);
    assert_eq!(s.signer, hex::encode(sim::SIM_PUBLIC_KEY));
    // Claims survive JSON.
    let back: enclava_evidence::Claims =
        serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);

    let ev = sim::generate_with_workload(&m, &r, "fraud-detector ✓", t0());
    let c = sim::verify(&ev, t0()).unwrap();
    assert_eq!(c.sim.unwrap().workload, "fraud-detector ✓");
}

#[test]
fn published_key_is_consistent() {
    // The private scalar is SHA-256 of the public seed; its public point is SIM_PUBLIC_KEY.
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use sha2::Digest;
    let scalar = sha2::Sha256::digest(sim::SIM_KEY_SEED);
    let kp = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &scalar,
        &sim::SIM_PUBLIC_KEY,
    )
    .unwrap();
    assert_eq!(kp.public_key().as_ref(), &sim::SIM_PUBLIC_KEY[..]);
}

#[test]
fn every_byte_flip_fails() {
    let (m, r) = inputs();
    let ev = sim::generate_with_workload(&m, &r, "wl", t0());
    for i in 0..ev.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = ev.clone();
            b[i] ^= mask;
            let e = sim::verify(&b, t0()).unwrap_err();
            let code = e.failed_check();
            if i < SIM_MAGIC.len() || (143..145).contains(&i) {
                assert_eq!(code, "malformed_evidence", "byte {i}");
            } else {
                assert_eq!(code, "sim_signature", "byte {i}");
            }
        }
    }
    for n in 0..ev.len() {
        assert_eq!(
            sim::verify(&ev[..n], t0()).unwrap_err().failed_check(),
            "malformed_evidence"
        );
    }
    let mut longer = ev.clone();
    longer.push(0);
    assert_eq!(
        sim::verify(&longer, t0()).unwrap_err().failed_check(),
        "malformed_evidence"
    );
}

#[test]
fn from_the_future() {
    let (m, r) = inputs();
    let ev = sim::generate(&m, &r, t0());
    // Within the allowed clock skew.
    sim::verify(&ev, t0() - Duration::seconds(sim::CLOCK_SKEW_SECONDS)).unwrap();
    let e = sim::verify(&ev, t0() - Duration::seconds(sim::CLOCK_SKEW_SECONDS + 1)).unwrap_err();
    assert_eq!(e.failed_check(), "sim_evidence_from_future");
}

#[test]
fn signature_by_another_key_fails() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let (m, r) = inputs();
    let ev = sim::generate(&m, &r, t0());
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let other = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let body = &ev[..ev.len() - 64];
    let mut forged = body.to_vec();
    forged.extend_from_slice(other.sign(&rng, body).unwrap().as_ref());
    assert_eq!(
        sim::verify(&forged, t0()).unwrap_err().failed_check(),
        "sim_signature"
    );
}

#[test]
fn sim_evidence_is_never_hardware() {
    let (m, r) = inputs();
    let at = t0();
    for ev in [
        sim::generate(&m, &r, at),
        sim::generate_with_workload(&m, &r, &"x".repeat(1184 - 209), at),
        sim::generate_with_workload(&m, &r, &"x".repeat(4096), at),
    ] {
        assert!(enclava_evidence::snp::verify(&ev, &Default::default(), at).is_err());
        assert!(enclava_evidence::dcap::verify_tdx(&ev, None, at).is_err());
        assert!(enclava_evidence::dcap::verify_sgx(&ev, None, at).is_err());
        assert!(enclava_evidence::azure::parse_hcl_report(&ev).is_err());
        assert!(enclava_evidence::azure::AzureEvidence::from_coco_json(&ev).is_err());
        if let Ok(az) = enclava_evidence::azure::AzureEvidence::from_parts(&ev, &ev, Vec::new()) {
            assert!(
                enclava_evidence::azure::verify_snp(&az, &Default::default(), None, at).is_err()
            );
            assert!(enclava_evidence::azure::verify_tdx(&az, None, None, at).is_err());
        }
        assert!(enclava_evidence::ccel::replay(&ev).is_err());
        // Its own verifier accepts it only as sim.
        assert_eq!(sim::verify(&ev, at).unwrap().tee, Tee::Sim);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = sim::verify(&b, t0());
        let mut with_magic = SIM_MAGIC.to_vec();
        with_magic.extend_from_slice(&b);
        prop_assert!(sim::verify(&with_magic, t0()).is_err());
    }

    #[test]
    fn round_trip_any(m in proptest::array::uniform32(any::<u8>()), secs in 0i64..4_000_000_000, wl in ".{0,40}") {
        let mut meas = [0u8; 48];
        meas[..32].copy_from_slice(&m);
        let rd = [7u8; 64];
        let at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
        let c = sim::verify(&sim::generate_with_workload(&meas, &rd, &wl, at), at).unwrap();
        prop_assert_eq!(c.measurement, hex::encode(meas));
        prop_assert_eq!(c.sim.unwrap().workload, wl);
    }
}
