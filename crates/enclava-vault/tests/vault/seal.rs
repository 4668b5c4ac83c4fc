use std::sync::Arc;

use enclava_store::{SqliteStore, Store};
use enclava_vault::*;

use crate::common::*;

fn fresh() -> (Vault, TestClock) {
    let clock = TestClock::new();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    (Vault::new(store, BASE.into(), clock.clock()), clock)
}

#[test]
fn init_unseal_progress_and_seal() {
    let (v, _) = fresh();
    assert!(!v.is_initialized().unwrap());
    assert!(v.is_sealed());
    assert_eq!(
        v.unseal("ensh1-001-003-00-00000000").unwrap_err(),
        VaultError::NotInitialized
    );
    let out = v.init(5, 3).unwrap();
    assert_eq!(out.shares.len(), 5);
    assert!(format!("{out:?}").contains("redacted"));
    assert!(v.is_initialized().unwrap());
    assert!(v.is_sealed(), "init leaves the vault sealed");
    assert_eq!(v.init(5, 3).unwrap_err(), VaultError::AlreadyInitialized);

    let p = v.unseal(&out.shares[4]).unwrap();
    assert_eq!(
        p,
        UnsealProgress {
            sealed: true,
            progress: 1,
            threshold: 3,
            duplicate: false,
        }
    );
    // The same share again does not count twice, and says so.
    let p = v.unseal(&out.shares[4]).unwrap();
    assert_eq!(p.progress, 1);
    assert!(p.duplicate);
    let p = v.unseal(&out.shares[1]).unwrap();
    assert_eq!(p.progress, 2);
    assert_eq!(v.seal_status().unwrap().progress, 2);
    let p = v.unseal(&out.shares[0]).unwrap();
    assert_eq!(
        p,
        UnsealProgress {
            sealed: false,
            progress: 0,
            threshold: 3,
            duplicate: false,
        }
    );
    assert!(!v.is_sealed());
    let st = v.seal_status().unwrap();
    assert!(st.initialized && !st.sealed && st.threshold == 3 && st.shares == 5 && !st.dev_mode);

    // Data works, then seal makes everything Sealed.
    v.set_secret(
        "s",
        &SecretSetParameters {
            value: "v".into(),
            ..Default::default()
        },
    )
    .unwrap();
    v.seal();
    assert!(v.is_sealed());
    let e = v.get_secret("s", None).unwrap_err();
    assert_eq!(e, VaultError::Sealed);
    assert_eq!(e.http_status(), 503);
    assert_eq!(e.code(), "VaultSealed");
    // Unseal again with a different subset.
    v.unseal(&out.shares[2]).unwrap();
    v.unseal(&out.shares[3]).unwrap();
    let p = v.unseal(&out.shares[0]).unwrap();
    assert!(!p.sealed);
    assert_eq!(
        v.get_secret("s", None).unwrap().value.unwrap().as_str(),
        "v"
    );
}

#[test]
fn wrong_shares_fail_clearly_and_keep_progress() {
    let (v, _) = fresh();
    let out = v.init(3, 2).unwrap();
    let (other, _) = fresh();
    let foreign = other.init(3, 2).unwrap();

    v.unseal(&out.shares[0]).unwrap();
    // A share from another vault with the same parameters parses fine, but does not match the
    // commitment stored at init: refused before use, the good share stays.
    let e = v.unseal(&foreign.shares[1]).unwrap_err();
    assert!(
        matches!(e, VaultError::InvalidShare(ref m) if m.contains("share 2 does not match the share issued at init")),
        "{e:?}"
    );
    assert_eq!(e.http_status(), 400);
    assert!(v.is_sealed());
    assert_eq!(v.seal_status().unwrap().progress, 1, "progress was kept");

    // A mistyped share is rejected before use, and does not count.
    let mut typo: Vec<char> = out.shares[1].chars().collect();
    let i = 20;
    typo[i] = if typo[i] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    let e = v.unseal(&typo).unwrap_err();
    assert!(
        matches!(e, VaultError::InvalidShare(ref m) if m.contains("checksum")),
        "{e:?}"
    );
    assert!(
        !e.to_string().contains(&out.shares[1][14..40]),
        "error must not echo share data"
    );
    assert_eq!(v.seal_status().unwrap().progress, 1);

    // A share with a different threshold is refused.
    let (third, _) = fresh();
    let t3 = third.init(3, 3).unwrap();
    assert!(matches!(
        v.unseal(&t3.shares[0]).unwrap_err(),
        VaultError::InvalidShare(_)
    ));

    // The right share completes the unseal started before the bad ones.
    assert!(!v.unseal(&out.shares[2]).unwrap().sealed);
}

#[test]
fn init_parameter_validation() {
    let (v, _) = fresh();
    assert!(matches!(
        v.init(2, 3).unwrap_err(),
        VaultError::BadParameter(_)
    ));
    assert!(matches!(
        v.init(0, 0).unwrap_err(),
        VaultError::BadParameter(_)
    ));
    assert!(!v.is_initialized().unwrap());
    let out = v.init(1, 1).unwrap();
    assert!(!v.unseal(&out.shares[0]).unwrap().sealed);
}

#[test]
fn dev_mode_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unseal.key");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db.sqlite")).unwrap());
    let clock = TestClock::new();
    let v = Vault::new(store.clone(), BASE.into(), clock.clock());
    v.init_or_unseal_dev(&path).unwrap();
    assert!(!v.is_sealed());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(v.seal_status().unwrap().dev_mode);
    v.set_secret(
        "a",
        &SecretSetParameters {
            value: "b".into(),
            ..Default::default()
        },
    )
    .unwrap();
    // A second vault instance over the same store unseals from the file.
    let v2 = Vault::new(store, BASE.into(), clock.clock());
    assert!(v2.is_sealed());
    v2.init_or_unseal_dev(&path).unwrap();
    assert_eq!(
        v2.get_secret("a", None).unwrap().value.unwrap().as_str(),
        "b"
    );
    // Shares are refused for a dev vault; a wrong key file fails clearly.
    v2.seal();
    assert!(v2.unseal("ensh1-001-001-00-00000000").is_err());
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "00".repeat(32)).unwrap();
    let e = v2.unseal_dev(&bad).unwrap_err();
    assert!(matches!(e, VaultError::UnsealFailed(_)), "{e:?}");
    let e = v2.unseal_dev(&dir.path().join("missing.key")).unwrap_err();
    assert!(matches!(e, VaultError::UnsealFailed(_)));
    // init_dev refuses to overwrite an existing file / an initialized vault.
    assert_eq!(
        v2.init_dev(&path).unwrap_err(),
        VaultError::AlreadyInitialized
    );
}

#[test]
fn sealed_vault_refuses_every_data_operation() {
    let env = env();
    let v = &env.vault;
    create(v, "k", "oct", None, None);
    v.set_secret(
        "s",
        &SecretSetParameters {
            value: "x".into(),
            ..Default::default()
        },
    )
    .unwrap();
    v.seal();
    let sealed = |r: Result<(), VaultError>| assert_eq!(r.unwrap_err(), VaultError::Sealed);
    let p = op("A256GCM", b"x");
    sealed(
        v.create_key(
            "k2",
            &KeyCreateParameters {
                kty: "oct".into(),
                ..Default::default()
            },
        )
        .map(|_| ()),
    );
    sealed(
        v.import_key("k2", &KeyImportParameters::default())
            .map(|_| ()),
    );
    sealed(v.get_key("k", None).map(|_| ()));
    sealed(
        v.update_key("k", None, &KeyUpdateParameters::default())
            .map(|_| ()),
    );
    sealed(v.list_keys(None, None).map(|_| ()));
    sealed(v.list_key_versions("k", None, None).map(|_| ()));
    sealed(v.delete_key("k").map(|_| ()));
    sealed(v.get_deleted_key("k").map(|_| ()));
    sealed(v.list_deleted_keys(None, None).map(|_| ()));
    sealed(v.recover_deleted_key("k").map(|_| ()));
    sealed(v.purge_deleted_key("k"));
    sealed(v.purge_expired(env.clock.now()).map(|_| ()));
    sealed(v.backup_key("k").map(|_| ()));
    sealed(v.restore_key(b"x").map(|_| ()));
    sealed(v.rotate_key("k").map(|_| ()));
    sealed(v.get_rotation_policy("k").map(|_| ()));
    sealed(
        v.set_rotation_policy("k", &KeyRotationPolicy::default())
            .map(|_| ()),
    );
    sealed(v.run_due_rotations(env.clock.now()).map(|_| ()));
    sealed(v.encrypt("k", None, &p).map(|_| ()));
    sealed(v.decrypt("k", None, &p).map(|_| ()));
    sealed(v.wrap_key("k", None, &p).map(|_| ()));
    sealed(v.unwrap_key("k", None, &p).map(|_| ()));
    sealed(v.sign("k", None, &KeySignParameters::default()).map(|_| ()));
    sealed(
        v.verify("k", None, &KeyVerifyParameters::default())
            .map(|_| ()),
    );
    sealed(v.rng(16).map(|_| ()));
    sealed(v.releasable_key("k", None).map(|_| ()));
    sealed(
        v.set_secret("s", &SecretSetParameters::default())
            .map(|_| ()),
    );
    sealed(v.get_secret("s", None).map(|_| ()));
    sealed(
        v.update_secret("s", None, &SecretUpdateParameters::default())
            .map(|_| ()),
    );
    sealed(v.list_secrets(None, None).map(|_| ()));
    sealed(v.list_secret_versions("s", None, None).map(|_| ()));
    sealed(v.delete_secret("s").map(|_| ()));
    sealed(v.get_deleted_secret("s").map(|_| ()));
    sealed(v.list_deleted_secrets(None, None).map(|_| ()));
    sealed(v.recover_deleted_secret("s").map(|_| ()));
    sealed(v.purge_deleted_secret("s"));
    sealed(v.backup_secret("s").map(|_| ()));
    sealed(v.restore_secret(b"x").map(|_| ()));
}

#[test]
fn aux_secrets_are_sealed_bound_to_their_purpose_and_need_the_unsealed_root() {
    let env = env();
    let secret = b"-----a server signing key in PKCS#8-----";
    let sealed = env.vault.seal_aux("token-signing-key", secret).unwrap();
    assert!(
        !sealed.windows(secret.len()).any(|w| w == secret),
        "the sealed blob must not contain the plaintext"
    );
    let opened = env.vault.open_aux("token-signing-key", &sealed).unwrap();
    assert_eq!(opened.as_slice(), secret);
    // Bound to its purpose: it does not open as another kind of secret.
    assert!(env.vault.open_aux("audit-checkpoint-key", &sealed).is_err());
    // Tampering is detected.
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(env.vault.open_aux("token-signing-key", &flipped).is_err());
    // Sealed: neither operation works.
    env.vault.seal();
    assert!(matches!(
        env.vault.open_aux("token-signing-key", &sealed),
        Err(VaultError::Sealed)
    ));
    assert!(matches!(
        env.vault.seal_aux("token-signing-key", secret),
        Err(VaultError::Sealed)
    ));
    // Another vault (another root) cannot open it.
    let other = crate::common::env();
    assert!(other.vault.open_aux("token-signing-key", &sealed).is_err());
}

#[test]
fn derived_keys_are_bound_to_purpose_and_root_and_need_the_unsealed_vault() {
    let env = env();
    let a = env.vault.derived_key("challenge-mac").unwrap();
    let b = env.vault.derived_key("row-integrity").unwrap();
    assert_ne!(
        a.as_ref(),
        b.as_ref(),
        "distinct purposes give distinct keys"
    );
    assert_eq!(
        env.vault.derived_key("challenge-mac").unwrap().as_ref(),
        a.as_ref(),
        "the same purpose gives the same key"
    );
    let other = crate::common::env();
    assert_ne!(
        other.vault.derived_key("challenge-mac").unwrap().as_ref(),
        a.as_ref(),
        "another root gives another key"
    );
    env.vault.seal();
    assert!(matches!(
        env.vault.derived_key("challenge-mac"),
        Err(VaultError::Sealed)
    ));
}

/// A share in the right format with random data (valid checksum) claiming `index`: what an
/// anonymous attacker can always produce.
fn forged_share(index: u8, threshold: u8) -> String {
    use rand::RngCore;
    let mut data = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut data);
    enclava_vault::seal::shamir::Share {
        index,
        threshold,
        data: zeroize::Zeroizing::new(data.to_vec()),
    }
    .encode()
    .to_string()
}

#[test]
fn forged_shares_neither_reset_progress_nor_squat_an_index() {
    let (v, _) = fresh();
    let out = v.init(5, 3).unwrap();
    assert_eq!(v.unseal(&out.shares[0]).unwrap().progress, 1);
    // Forged share with a real, not yet given index: refused, progress kept.
    let e = v.unseal(&forged_share(2, 3)).unwrap_err();
    assert!(
        matches!(e, VaultError::InvalidShare(ref m) if m.contains("share 2 does not match") && m.contains("(1 of 3) is kept")),
        "{e:?}"
    );
    assert_eq!(v.seal_status().unwrap().progress, 1);
    // Forged share with the index already given: refused, the real one not displaced.
    let e = v.unseal(&forged_share(1, 3)).unwrap_err();
    assert!(matches!(e, VaultError::InvalidShare(_)), "{e:?}");
    assert_eq!(v.seal_status().unwrap().progress, 1);
    // The same real share twice: reported as a duplicate.
    let p = v.unseal(&out.shares[0]).unwrap();
    assert!(p.duplicate && p.sealed && p.progress == 1, "{p:?}");
    // The real share 2 is still accepted (no squatting), and the third real share unseals.
    assert_eq!(v.unseal(&out.shares[1]).unwrap().progress, 2);
    for i in 0..20u8 {
        assert!(v.unseal(&forged_share(3 + i % 3, 3)).is_err());
    }
    assert_eq!(v.seal_status().unwrap().progress, 2);
    assert!(!v.unseal(&out.shares[4]).unwrap().sealed);
}

/// Rewrite the seal record as a vault initialized before share commitments (format 1).
fn make_legacy(store: &Arc<dyn Store>) {
    let raw = store
        .get(enclava_store::Table::Meta, "seal")
        .unwrap()
        .unwrap();
    let mut rec: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(rec["format"], 2);
    assert_eq!(
        rec["share_commitments"]["values"].as_array().unwrap().len(),
        rec["shares"].as_u64().unwrap() as usize
    );
    let obj = rec.as_object_mut().unwrap();
    obj.remove("share_commitments");
    obj.insert("format".into(), 1.into());
    store
        .transact(vec![enclava_store::Op::Put {
            table: enclava_store::Table::Meta,
            key: "seal".into(),
            value: serde_json::to_vec(&rec).unwrap(),
        }])
        .unwrap();
}

fn seal_format(store: &Arc<dyn Store>) -> u64 {
    let raw = store
        .get(enclava_store::Table::Meta, "seal")
        .unwrap()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    rec["format"].as_u64().unwrap()
}

#[test]
fn legacy_vault_unseals_keeps_good_progress_and_upgrades_to_commitments() {
    let clock = TestClock::new();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let v = Vault::new(store.clone(), BASE.into(), clock.clock());
    let out = v.init(3, 2).unwrap();
    make_legacy(&store);
    assert_eq!(seal_format(&store), 1);

    // Without commitments a forged share is only noticed at the threshold, and good progress
    // is not discarded: the server tries the other combinations and asks for more.
    assert_eq!(v.unseal(&forged_share(1, 2)).unwrap().progress, 1);
    // The real share 1 conflicts with the forged one: reported, not silently ignored.
    let e = v.unseal(&out.shares[0]).unwrap_err();
    assert!(
        matches!(e, VaultError::Conflict(ref m) if m.contains("index 1")),
        "{e:?}"
    );
    assert_eq!(e.http_status(), 409);
    let e = v.unseal(&out.shares[1]).unwrap_err();
    assert!(
        matches!(e, VaultError::UnsealFailed(ref m) if m.contains("all are kept")),
        "{e:?}"
    );
    assert_eq!(v.seal_status().unwrap().progress, 2);
    // Share 3 combines with the kept share 2.
    assert!(!v.unseal(&out.shares[2]).unwrap().sealed);
    // The first unseal upgraded the record: now forged shares are refused up front.
    assert_eq!(seal_format(&store), 2);
    v.seal();
    v.unseal(&out.shares[1]).unwrap();
    let e = v.unseal(&forged_share(1, 2)).unwrap_err();
    assert!(matches!(e, VaultError::InvalidShare(_)), "{e:?}");
    assert_eq!(v.seal_status().unwrap().progress, 1);
    // Every issued share (also those not used at the upgrade) matches its recomputed commitment.
    assert!(!v.unseal(&out.shares[0]).unwrap().sealed);
    v.seal();
    v.unseal(&out.shares[2]).unwrap();
    assert!(!v.unseal(&out.shares[0]).unwrap().sealed);
}

#[test]
fn legacy_vault_with_honest_shares_unseals_and_resets_only_when_every_index_fails() {
    let clock = TestClock::new();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let v = Vault::new(store.clone(), BASE.into(), clock.clock());
    let out = v.init(2, 2).unwrap();
    make_legacy(&store);
    v.unseal(&out.shares[0]).unwrap();
    assert!(!v.unseal(&out.shares[1]).unwrap().sealed);

    // Every index given and nothing fits: start over (nothing else could be added).
    let store2: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let v3 = Vault::new(store2.clone(), BASE.into(), clock.clock());
    let out3 = v3.init(2, 2).unwrap();
    make_legacy(&store2);
    v3.unseal(&forged_share(1, 2)).unwrap();
    let e = v3.unseal(&out3.shares[1]).unwrap_err();
    assert!(
        matches!(e, VaultError::UnsealFailed(ref m) if m.contains("progress was reset")),
        "{e:?}"
    );
    assert_eq!(v3.seal_status().unwrap().progress, 0);
    v3.unseal(&out3.shares[0]).unwrap();
    assert!(!v3.unseal(&out3.shares[1]).unwrap().sealed);
}
