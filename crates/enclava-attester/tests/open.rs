//! Detection and the one entry point, on fake file system trees. No TEE exists on the machines
//! these tests run on, so they check what is looked for, the precedence, the errors, and that the
//! simulator is only ever chosen explicitly.

use std::path::Path;

use chrono::Utc;
use enclava_attester::devices::{SevGuestDevice, TdxGuestDevice};
use enclava_attester::{AttesterError, Interface, Tee, detect, open};

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"").unwrap();
}

fn configfs(root: &Path) {
    std::fs::create_dir_all(root.join("sys/kernel/config/tsm/report")).unwrap();
}

#[test]
fn nothing_found_is_no_tee_and_never_the_simulator() {
    let root = tempfile::tempdir().unwrap();
    let d = detect(root.path());
    assert_eq!(d.tee, None);
    assert!(d.interfaces.is_empty());
    let e = open(root.path(), None).err().expect("no TEE here");
    assert!(matches!(e, AttesterError::NoTee { .. }), "{e}");
    let msg = e.to_string();
    for looked in [
        "sys/kernel/config/tsm/report",
        "dev/sev-guest",
        "dev/tdx_guest",
        "dev/tpmrm0",
        "0x01400001",
        "--tee sim",
    ] {
        assert!(msg.contains(looked), "{looked} missing from: {msg}");
    }
}

#[test]
fn the_simulator_when_asked_for() {
    let root = tempfile::tempdir().unwrap();
    let mut a = open(root.path(), Some(Tee::Sim)).unwrap();
    assert_eq!(a.tee(), Tee::Sim);
    let rd = [0x42; 64];
    let ev = a.evidence(&rd).unwrap();
    assert_eq!(ev.tee, Tee::Sim);
    let claims = enclava_evidence::sim::verify(&ev.bytes, Utc::now()).unwrap();
    assert_eq!(claims.report_data, hex::encode(rd));
    assert!(!claims.tee.is_hardware());
}

#[test]
fn requested_tees_that_are_not_there() {
    let root = tempfile::tempdir().unwrap();
    for tee in [Tee::Snp, Tee::Tdx, Tee::AzureSnp, Tee::AzureTdx, Tee::Sgx] {
        match open(root.path(), Some(tee)) {
            Err(AttesterError::Unavailable { tee: t, reason }) => {
                assert_eq!(t, tee);
                assert!(!reason.is_empty());
            }
            Err(other) => panic!("{tee}: expected Unavailable, got {other}"),
            Ok(_) => panic!("{tee}: expected Unavailable, got an attester"),
        }
    }
}

#[test]
fn detection_lists_every_interface_and_applies_the_precedence() {
    let root = tempfile::tempdir().unwrap();
    configfs(root.path());
    touch(root.path(), "dev/sev-guest");
    touch(root.path(), "dev/tdx_guest");
    touch(root.path(), "dev/tpmrm0");
    let d = detect(root.path());
    assert_eq!(d.interfaces.len(), 4, "{:?}", d.interfaces);
    // A plain file is no TPM: no HCL report, with the reason.
    assert!(matches!(
        &d.interfaces[0],
        Interface::Tpm {
            azure: None,
            note: Some(_),
            ..
        }
    ));
    // A plain directory is no configfs: the provider probe fails (and cleans up after itself).
    match &d.interfaces[1] {
        Interface::ConfigfsTsm { provider, note, .. } => {
            assert_eq!(provider, &None);
            assert!(
                note.as_deref().unwrap_or("").contains("provider"),
                "{note:?}"
            );
        }
        other => panic!("expected configfs-tsm, got {other:?}"),
    }
    assert!(
        std::fs::read_dir(root.path().join("sys/kernel/config/tsm/report"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(matches!(d.interfaces[2], Interface::SevGuest { .. }));
    assert!(matches!(d.interfaces[3], Interface::TdxGuest { .. }));
    // No usable configfs provider and no HCL report: the legacy SNP device comes first.
    assert_eq!(d.tee, Some(Tee::Snp));
    // The detection result serializes (for `enclava evidence detect --json`).
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["tee"], "snp");
    assert_eq!(json["interfaces"][2]["kind"], "sev-guest");

    // The legacy TDX device alone cannot produce a quote.
    match open(root.path(), Some(Tee::Tdx)) {
        Err(AttesterError::Unavailable { reason, .. }) => {
            assert!(reason.contains("quote service"), "{reason}")
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("expected Unavailable"),
    }
}

#[test]
fn tdx_device_only_detects_tdx_but_open_explains_the_missing_quote_path() {
    let root = tempfile::tempdir().unwrap();
    touch(root.path(), "dev/tdx_guest");
    assert_eq!(detect(root.path()).tee, Some(Tee::Tdx));
    let e = open(root.path(), None).err().expect("no quote path");
    assert!(e.to_string().contains("configfs-tsm"), "{e}");
}

#[test]
fn the_ioctls_reach_the_kernel_and_fail_typed_on_a_non_device() {
    // A regular file in place of the device: the kernel answers the ioctl with ENOTTY before
    // looking at the argument. This runs the real ioctl code (the only unsafe code) end to end.
    let root = tempfile::tempdir().unwrap();
    touch(root.path(), "dev/sev-guest");
    touch(root.path(), "dev/tdx_guest");
    let mut a = open(root.path(), None).unwrap();
    assert_eq!(a.tee(), Tee::Snp);
    match a.evidence(&[1; 64]) {
        Err(AttesterError::Ioctl { device, ioctl, .. }) => {
            assert!(device.ends_with("dev/sev-guest"));
            assert_eq!(ioctl, "SNP_GET_EXT_REPORT");
        }
        other => panic!("expected an ioctl error, got {other:?}"),
    }
    let dev = SevGuestDevice::open(root.path()).unwrap();
    assert!(matches!(
        dev.get_report(&[0; 64], 0),
        Err(AttesterError::Ioctl {
            ioctl: "SNP_GET_REPORT",
            ..
        })
    ));
    let dev = TdxGuestDevice::open(root.path()).unwrap();
    assert!(matches!(
        dev.get_tdreport(&[0; 64]),
        Err(AttesterError::Ioctl {
            ioctl: "TDX_CMD_GET_REPORT0",
            ..
        })
    ));
}
