//! configfs-tsm collection against a fake kernel that replays REAL reports from ../shared/vectors.
//!
//! The fake wraps the real `StdFs` operations on a temporary directory and only adds what the
//! kernel does by itself: mkdir populates the entry's attributes, a write to inblob/privlevel
//! bumps `generation`, rmdir of an entry removes its attributes. Everything else (naming, order of
//! operations, parsing, checks, cleanup) is the production code path.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use common::{GUID_ARK, GUID_ASK, GUID_VCEK};
use enclava_attester::configfs::{ConfigfsOps, ConfigfsTsm, StdFs, TsmProvider};
use enclava_attester::{Attester, AttesterError, ConfigfsAttester, Tee};
use enclava_evidence::snp::{self, Endorsements};

const SNP_DIR: &str = "sev-snp/google-go-sev-guest";
const SNP_MEASUREMENT: &str = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";
const SNP_CHIP_ID: &str = "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d";
const TDX_MR_TD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";

fn snp_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2022, 9, 24, 1, 0, 0).unwrap()
}

fn tdx_at() -> DateTime<Utc> {
    // End of the phala collateral window minus one second (MANIFEST).
    Utc.with_ymd_and_hms(2025, 7, 19, 10, 0, 34).unwrap()
}

/// The report_data of google-go-sev-guest/attestation.bin: 01 02 03 04 05 then zeros.
fn snp_report_data() -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..5].copy_from_slice(&[1, 2, 3, 4, 5]);
    rd
}

/// A minimal emulation of the configfs-tsm kernel side.
struct FakeKernel {
    fs: StdFs,
    provider: Option<String>,
    outblob: Vec<u8>,
    auxblob: Option<Vec<u8>>,
    /// Whether writes advance `generation` (false: a kernel that rejected them).
    advance: bool,
    /// Extra generation bumps per entry (index = entry number): another writer racing us.
    race: Vec<u64>,
    entries: Vec<PathBuf>,
    removed: Vec<PathBuf>,
    writes: Vec<(String, Vec<u8>)>,
}

impl FakeKernel {
    fn new(provider: Option<&str>, outblob: Vec<u8>, auxblob: Option<Vec<u8>>) -> Self {
        FakeKernel {
            fs: StdFs,
            provider: provider.map(str::to_string),
            outblob,
            auxblob,
            advance: true,
            race: Vec::new(),
            entries: Vec::new(),
            removed: Vec::new(),
            writes: Vec::new(),
        }
    }

    fn bump(&mut self, entry: &Path, by: u64) -> std::io::Result<()> {
        let g = entry.join("generation");
        let now: u64 = String::from_utf8_lossy(&std::fs::read(&g)?)
            .trim()
            .parse()
            .unwrap_or(0);
        std::fs::write(&g, format!("{}\n", now + by))
    }
}

impl ConfigfsOps for FakeKernel {
    fn create_dir(&mut self, path: &Path) -> std::io::Result<()> {
        self.fs.create_dir(path)?;
        // The kernel populates a new entry with its attributes.
        std::fs::write(path.join("generation"), "41\n")?;
        std::fs::write(path.join("inblob"), b"")?;
        std::fs::write(path.join("privlevel"), b"")?;
        std::fs::write(path.join("privlevel_floor"), "0\n")?;
        std::fs::write(path.join("outblob"), &self.outblob)?;
        if let Some(p) = &self.provider {
            std::fs::write(path.join("provider"), format!("{p}\n"))?;
        }
        if let Some(a) = &self.auxblob {
            std::fs::write(path.join("auxblob"), a)?;
        }
        self.entries.push(path.to_path_buf());
        Ok(())
    }

    fn remove_dir(&mut self, path: &Path) -> std::io::Result<()> {
        // configfs removes the attributes with the entry; a plain directory needs it done first.
        for f in std::fs::read_dir(path)? {
            std::fs::remove_file(f?.path())?;
        }
        self.fs.remove_dir(path)?;
        self.removed.push(path.to_path_buf());
        Ok(())
    }

    fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.fs.read(path)
    }

    fn write(&mut self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        self.fs.write(path, data)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.writes.push((name, data.to_vec()));
        let entry = path.parent().unwrap_or(path).to_path_buf();
        if self.advance {
            let idx = self.entries.len().saturating_sub(1);
            let extra = self.race.get(idx).copied().unwrap_or(0);
            if let Some(r) = self.race.get_mut(idx) {
                *r = 0; // the other writer wrote once
            }
            self.bump(&entry, 1 + extra)?;
        }
        Ok(())
    }

    fn exists(&mut self, path: &Path) -> bool {
        self.fs.exists(path)
    }
}

/// A temporary root with an (empty) configfs-tsm report directory.
fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/kernel/config/tsm/report")).unwrap();
    dir
}

fn report_dir_is_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join("sys/kernel/config/tsm/report"))
        .unwrap()
        .next()
        .is_none()
}

fn milan_cert_table() -> Option<Vec<u8>> {
    let vcek = common::read(&format!("{SNP_DIR}/vcek.testcer"))?;
    let chain =
        snp::certs_from_pem_or_der(&common::read(&format!("{SNP_DIR}/milan.testcer"))?).unwrap();
    assert_eq!(chain.len(), 2, "milan.testcer is ASK + ARK");
    Some(common::cert_table(&[
        (GUID_VCEK, &vcek),
        (GUID_ASK, &chain[0]),
        (GUID_ARK, &chain[1]),
    ]))
}

#[test]
fn snp_report_round_trips_and_verifies() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let table = milan_cert_table().unwrap();
    let dir = root();
    let kernel = FakeKernel::new(Some("sev_guest"), report.clone(), Some(table));
    let tsm = ConfigfsTsm::with_ops(dir.path(), kernel);
    let mut attester = ConfigfsAttester::new(tsm, Tee::Snp).unwrap();
    let rd = snp_report_data();
    let ev = attester.evidence(&rd).unwrap();

    assert_eq!(ev.tee, Tee::Snp);
    assert_eq!(ev.bytes, report, "outblob must come back byte for byte");
    assert_eq!(ev.endorsements.len(), 3, "VCEK, ASK, ARK from the auxblob");

    // What the collector did to the entry, in order.
    let k = attester.tsm().ops();
    assert_eq!(k.entries.len(), 1);
    assert_eq!(k.removed, k.entries, "the entry is removed afterwards");
    assert_eq!(k.writes, vec![("inblob".to_string(), rd.to_vec())]);
    assert!(report_dir_is_empty(dir.path()));
    let name = k.entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("enclava-"), "{name}");

    // The bytes verify with the endorsements the collector extracted from the auxblob.
    let claims = snp::verify(
        &ev.bytes,
        &Endorsements {
            certs_der: ev.endorsements.clone(),
            crls_der: Vec::new(),
        },
        snp_at(),
    )
    .unwrap();
    assert_eq!(claims.measurement, SNP_MEASUREMENT);
    assert_eq!(claims.report_data, hex::encode(rd));
    assert_eq!(claims.snp.unwrap().chip_id, SNP_CHIP_ID);
}

#[test]
fn snp_report_at_a_privilege_level() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let dir = root();
    let kernel = FakeKernel::new(Some("sev_guest"), report.clone(), None);
    let mut tsm = ConfigfsTsm::with_ops(dir.path(), kernel);
    let r = tsm.get_report(&[1, 2, 3, 4, 5], Some(0)).unwrap();
    assert_eq!(r.provider, TsmProvider::SevGuest);
    assert_eq!(r.outblob, report);
    assert_eq!(r.auxblob, None);
    assert_eq!(
        r.inblob,
        snp_report_data(),
        "short report data is zero padded"
    );
    assert_eq!(r.generation, 43, "41 + inblob + privlevel");
    assert_eq!(r.privlevel, Some(0));
    assert_eq!(
        tsm.ops().writes,
        vec![
            ("inblob".to_string(), snp_report_data().to_vec()),
            ("privlevel".to_string(), b"0\n".to_vec()),
        ]
    );
    let e = tsm.get_report(&[1], Some(4)).unwrap_err().to_string();
    assert!(e.contains("0..=3") && e.contains('4'), "{e}");
    assert!(report_dir_is_empty(dir.path()));
}

#[test]
fn tdx_quote_round_trips_and_verifies() {
    let Some(quote) = common::read("tdx/phala-dcap-qvl/tdx_quote") else {
        return;
    };
    // REPORTDATA of a v4 quote: header (48) + TD report body offset 520.
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&quote[568..632]);
    let dir = root();
    let kernel = FakeKernel::new(Some("tdx_guest"), quote.clone(), None);
    let mut attester =
        ConfigfsAttester::new(ConfigfsTsm::with_ops(dir.path(), kernel), Tee::Tdx).unwrap();
    let ev = attester.evidence(&rd).unwrap();
    assert_eq!(ev.tee, Tee::Tdx);
    assert_eq!(ev.bytes, quote);
    assert!(ev.endorsements.is_empty());
    assert!(report_dir_is_empty(dir.path()));

    let claims = enclava_evidence::dcap::verify_tdx(&ev.bytes, None, tdx_at()).unwrap();
    assert_eq!(claims.measurement, TDX_MR_TD);
    assert_eq!(claims.report_data, hex::encode(rd));
    assert_eq!(claims.tdx.unwrap().mr_td, TDX_MR_TD);
}

#[test]
fn tdx_v5_quote_report_data_offset() {
    let Some(quote) = common::read("tdx/phala-dcap-qvl/tdx_quote_outdated") else {
        return;
    };
    assert_eq!(u16::from_le_bytes([quote[0], quote[1]]), 5);
    // v5: header (48) + body type (2) + body size (4) + 520.
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&quote[574..638]);
    let dir = root();
    let mut tsm = ConfigfsTsm::with_ops(
        dir.path(),
        FakeKernel::new(Some("tdx_guest"), quote.clone(), None),
    );
    assert_eq!(tsm.get_report(&rd, None).unwrap().outblob, quote);
    let mut other = rd;
    other[0] ^= 0xff;
    assert!(matches!(
        tsm.get_report(&other, None),
        Err(AttesterError::ReportDataMismatch { .. })
    ));
}

#[test]
fn report_data_mismatch_is_an_error() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let dir = root();
    let mut tsm =
        ConfigfsTsm::with_ops(dir.path(), FakeKernel::new(Some("sev_guest"), report, None));
    match tsm.get_report(&[9; 64], None) {
        Err(AttesterError::ReportDataMismatch {
            expected, found, ..
        }) => {
            assert_eq!(expected, hex::encode([9u8; 64]));
            assert_eq!(found, hex::encode(snp_report_data()));
        }
        other => panic!("expected ReportDataMismatch, got {other:?}"),
    }
    assert!(report_dir_is_empty(dir.path()));
}

#[test]
fn missing_provider_is_an_error_and_the_entry_is_removed() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let dir = root();
    let mut tsm = ConfigfsTsm::with_ops(dir.path(), FakeKernel::new(None, report, None));
    let e = tsm.get_report(&[1], None).unwrap_err();
    match &e {
        AttesterError::Io { op, path, .. } => {
            assert_eq!(*op, "read");
            assert!(path.ends_with("provider"), "{}", path.display());
        }
        other => panic!("expected an Io error on provider, got {other:?}"),
    }
    assert_eq!(tsm.ops().removed.len(), 1);
    assert!(report_dir_is_empty(dir.path()));
    assert!(
        tsm.ops().writes.is_empty(),
        "nothing written before the provider is known"
    );
}

#[test]
fn unknown_provider_is_an_error() {
    let dir = root();
    let mut tsm = ConfigfsTsm::with_ops(
        dir.path(),
        FakeKernel::new(Some("cca_guest"), vec![0; 2000], None),
    );
    let e = tsm.get_report(&[1], None).unwrap_err().to_string();
    assert!(
        e.contains("sev_guest or tdx_guest") && e.contains("cca_guest"),
        "{e}"
    );
    assert!(report_dir_is_empty(dir.path()));
}

#[test]
fn generation_not_advancing_is_concurrent_use_after_retries() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let dir = root();
    let mut kernel = FakeKernel::new(Some("sev_guest"), report, None);
    kernel.advance = false;
    let mut tsm = ConfigfsTsm::with_ops(dir.path(), kernel);
    match tsm.get_report(&[1, 2, 3, 4, 5], None) {
        Err(AttesterError::ConcurrentUse {
            before,
            after,
            expected,
            attempts,
            ..
        }) => {
            assert_eq!((before, after, expected, attempts), (41, 41, 42, 3));
        }
        other => panic!("expected ConcurrentUse, got {other:?}"),
    }
    assert_eq!(tsm.ops().entries.len(), 3, "one fresh entry per attempt");
    assert_eq!(tsm.ops().removed, tsm.ops().entries);
    assert!(report_dir_is_empty(dir.path()));
}

#[test]
fn a_racing_writer_causes_a_retry_with_a_fresh_entry() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let dir = root();
    let mut kernel = FakeKernel::new(Some("sev_guest"), report.clone(), None);
    kernel.race = vec![1]; // someone else writes the first entry once
    let mut tsm = ConfigfsTsm::with_ops(dir.path(), kernel);
    let r = tsm.get_report(&[1, 2, 3, 4, 5], None).unwrap();
    assert_eq!(r.outblob, report);
    assert_eq!(tsm.ops().entries.len(), 2);
    assert_ne!(
        tsm.ops().entries[0],
        tsm.ops().entries[1],
        "entry names are unique"
    );
    assert!(report_dir_is_empty(dir.path()));

    // With a single attempt the race is reported.
    let mut kernel = FakeKernel::new(Some("sev_guest"), report, None);
    kernel.race = vec![1];
    let mut tsm = ConfigfsTsm::with_ops(dir.path(), kernel).with_attempts(1);
    assert!(matches!(
        tsm.get_report(&[1, 2, 3, 4, 5], None),
        Err(AttesterError::ConcurrentUse {
            before: 41,
            after: 43,
            expected: 42,
            attempts: 1,
            ..
        })
    ));
}

#[test]
fn short_outblobs_are_rejected() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let quote = common::read("tdx/phala-dcap-qvl/tdx_quote").unwrap();
    for (provider, blob, lens) in [
        ("sev_guest", &report, [0, 1, 64, 600, 1000, 1183]),
        // The quote's own length fields say how long it must be (its certification data is
        // several KiB; the file has trailing padding).
        ("tdx_guest", &quote, [0, 1, 64, 600, 1000, 2000]),
    ] {
        for len in lens {
            let dir = root();
            let mut tsm = ConfigfsTsm::with_ops(
                dir.path(),
                FakeKernel::new(Some(provider), blob[..len].to_vec(), None),
            );
            match tsm.get_report(&[1, 2, 3, 4, 5], None) {
                Err(AttesterError::Malformed { found, .. }) => {
                    assert_eq!(found, format!("{len} bytes"), "{provider}")
                }
                other => panic!("{provider} {len}: expected Malformed, got {other:?}"),
            }
            assert!(report_dir_is_empty(dir.path()));
        }
    }
}

#[test]
fn report_data_longer_than_64_bytes_is_refused_before_any_io() {
    let dir = root();
    let mut tsm =
        ConfigfsTsm::with_ops(dir.path(), FakeKernel::new(Some("sev_guest"), vec![], None));
    assert!(matches!(
        tsm.get_report(&[0; 65], None),
        Err(AttesterError::ReportDataTooLong { len: 65 })
    ));
    assert!(tsm.ops().entries.is_empty());
}

#[test]
fn malformed_auxblob_is_an_error() {
    let Some(report) = common::read(&format!("{SNP_DIR}/attestation.bin")) else {
        return;
    };
    let dir = root();
    // An entry pointing past the end of the table.
    let mut table = common::cert_table(&[(GUID_VCEK, &[0x30, 0x00])]);
    table[20] = 0xff;
    let kernel = FakeKernel::new(Some("sev_guest"), report, Some(table));
    let mut attester =
        ConfigfsAttester::new(ConfigfsTsm::with_ops(dir.path(), kernel), Tee::Snp).unwrap();
    let e = attester
        .evidence(&snp_report_data())
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate table"), "{e}");
}

#[test]
fn provider_must_match_the_requested_tee() {
    let Some(quote) = common::read("tdx/phala-dcap-qvl/tdx_quote") else {
        return;
    };
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&quote[568..632]);
    let dir = root();
    let kernel = FakeKernel::new(Some("tdx_guest"), quote, None);
    let mut attester =
        ConfigfsAttester::new(ConfigfsTsm::with_ops(dir.path(), kernel), Tee::Snp).unwrap();
    let e = attester.evidence(&rd).unwrap_err();
    assert!(
        matches!(e, AttesterError::Unavailable { tee: Tee::Snp, .. }),
        "{e}"
    );
    assert!(ConfigfsAttester::new(ConfigfsTsm::new(dir.path()), Tee::AzureSnp).is_err());
}

#[test]
fn the_real_std_fs_path_on_a_plain_directory() {
    // Without a kernel behind it, mkdir yields an empty directory: the collector must fail on the
    // missing provider and still remove the entry. No report directory at all is its own error.
    let dir = root();
    let mut tsm = ConfigfsTsm::new(dir.path());
    let e = tsm.get_report(&[1], None).unwrap_err().to_string();
    assert!(e.contains("provider"), "{e}");
    assert!(report_dir_is_empty(dir.path()));
    assert!(tsm.probe_provider().is_err());
    assert!(report_dir_is_empty(dir.path()));

    let empty = tempfile::tempdir().unwrap();
    let e = ConfigfsTsm::new(empty.path())
        .get_report(&[1], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sys/kernel/config/tsm/report") && e.contains("no such directory"),
        "{e}"
    );
}
