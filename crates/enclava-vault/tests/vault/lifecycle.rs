use std::sync::Arc;

use chrono::Duration;
use enclava_store::{SqliteStore, Store, Table};
use enclava_vault::*;

use crate::common::*;

fn policy_blob() -> KeyReleasePolicy {
    let json = br#"{"version":"1.0.0","anyOf":[{"authority":"https://att.example","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"}]}]}"#;
    KeyReleasePolicy {
        content_type: None,
        immutable: None,
        data: Some(Base64Url(json.to_vec())),
    }
}

#[test]
fn bundle_json_shape() {
    let env = env();
    let b = create(&env.vault, "Shape-Key", "EC", None, None);
    let j = serde_json::to_value(&b).unwrap();
    let kid = j["key"]["kid"].as_str().unwrap();
    assert!(
        kid.starts_with("https://vault.test:8443/keys/Shape-Key/"),
        "{kid}"
    );
    assert_eq!(kid.rsplit('/').next().unwrap().len(), 32);
    assert_eq!(j["key"]["kty"], "EC");
    assert_eq!(j["key"]["crv"], "P-256");
    assert!(
        j["key"]["x"].as_str().unwrap().len() == 43,
        "unpadded base64url of 32 bytes"
    );
    assert!(j["key"].get("d").is_none());
    let a = &j["attributes"];
    assert_eq!(a["enabled"], true);
    assert_eq!(a["created"], env.clock.now().timestamp());
    assert_eq!(a["updated"], env.clock.now().timestamp());
    assert_eq!(a["recoverableDays"], 90);
    assert_eq!(a["recoveryLevel"], "Recoverable+Purgeable");
    assert_eq!(a["exportable"], false);
    assert!(a.get("nbf").is_none() && j.get("tags").is_none() && j.get("release_policy").is_none());
    // Names are case-insensitive; the display name is kept.
    assert_eq!(
        env.vault
            .get_key("shape-key", None)
            .unwrap()
            .key
            .kid
            .unwrap(),
        kid
    );
    let d = env.vault.delete_key("SHAPE-KEY").unwrap();
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(
        j["recoveryId"],
        "https://vault.test:8443/deletedkeys/Shape-Key"
    );
    assert_eq!(j["deletedDate"], env.clock.now().timestamp());
    assert_eq!(
        j["scheduledPurgeDate"],
        (env.clock.now() + Duration::days(90)).timestamp()
    );
    assert_eq!(j["key"]["kid"], kid);
}

#[test]
fn versions_listing_and_paging() {
    let env = env();
    let v = &env.vault;
    let mut versions = Vec::new();
    for _ in 0..7 {
        env.clock.advance(Duration::seconds(1));
        versions.push(version_of(&create(v, "multi", "oct", None, None)));
    }
    assert_eq!(
        version_of(&v.get_key("multi", None).unwrap()),
        versions[6],
        "latest = most recently created"
    );
    assert_eq!(
        version_of(&v.get_key("multi", Some("")).unwrap()),
        versions[6]
    );
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = v
            .list_key_versions("multi", Some(3), token.as_deref())
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        for it in &page.items {
            seen.push(it.kid.rsplit('/').next().unwrap().to_string());
        }
        match page.continuation {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    let mut expected = versions.clone();
    expected.sort();
    assert_eq!(seen, expected);

    for i in 0..30 {
        create(v, &format!("key-{i:02}"), "oct", Some(128), None);
    }
    let p1 = v.list_keys(None, None).unwrap();
    assert_eq!(p1.items.len(), 25);
    assert!(p1.items.iter().all(
        |i| i.kid.rsplit('/').next().unwrap().starts_with("key-") || i.kid.ends_with("/multi")
    ));
    let p2 = v.list_keys(Some(100), p1.continuation.as_deref()).unwrap();
    assert_eq!(p2.items.len(), 6);
    assert!(p2.continuation.is_none());
    assert_eq!(
        v.list_keys(Some(0), None).unwrap_err().code(),
        "BadParameter"
    );
    assert_eq!(
        v.list_keys(None, Some("%%%")).unwrap_err().code(),
        "BadParameter"
    );
    // Key Vault lists the versions of an unknown name as an empty page (tests/vault/kv_compat.rs).
    assert!(
        v.list_key_versions("nope", None, None)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn update_tags_and_attributes() {
    let env = env();
    let v = &env.vault;
    let b = create(v, "k", "RSA", None, None);
    env.clock.advance(Duration::seconds(10));
    let mut tags = Tags::new();
    tags.insert("env".into(), "prod".into());
    let u = v
        .update_key(
            "k",
            Some(&version_of(&b)),
            &KeyUpdateParameters {
                tags: Some(tags.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(u.tags.as_ref(), Some(&tags));
    assert_eq!(
        u.attributes.updated,
        Some(b.attributes.created.unwrap() + 10)
    );
    assert_eq!(u.attributes.created, b.attributes.created);
    // Rotation keeps tags and ops.
    let r = v.rotate_key("k").unwrap();
    assert_eq!(r.tags.as_ref(), Some(&tags));
    assert_eq!(r.key.key_ops, b.key.key_ops);
    assert_eq!(r.key.n.as_ref().unwrap().as_slice().len(), 256);
    assert_ne!(r.key.n, b.key.n);
    // Too many tags.
    let many: Tags = (0..16)
        .map(|i| (format!("t{i}"), "v".to_string()))
        .collect();
    let e = v
        .update_key(
            "k",
            None,
            &KeyUpdateParameters {
                tags: Some(many),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "too many tags: expected at most 15, found 16"
    );
}

#[test]
fn exportable_keys_need_a_release_policy() {
    let env = env();
    let v = &env.vault;
    let params = KeyCreateParameters {
        kty: "RSA".into(),
        attributes: Some(KeyAttributes {
            exportable: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = v.create_key("exp", &params).unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    assert!(
        e.to_string()
            .contains("AKV.SKR.1004 Exportable keys must have release policy")
    );
    let e = v
        .import_key(
            "exp",
            &KeyImportParameters {
                key: JsonWebKey {
                    kty: Some("oct".into()),
                    k: Some(SecretBytes::new(vec![1; 32])),
                    ..Default::default()
                },
                attributes: Some(KeyAttributes {
                    exportable: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("AKV.SKR.1004"));

    let b = v
        .create_key(
            "exp",
            &KeyCreateParameters {
                release_policy: Some(policy_blob()),
                ..params
            },
        )
        .unwrap();
    assert_eq!(b.attributes.exportable, Some(true));
    let rp = b.release_policy.clone().unwrap();
    assert_eq!(
        rp.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(rp.immutable, Some(false));
    assert_eq!(rp.data, policy_blob().data);
    assert_eq!(v.get_key("exp", None).unwrap().release_policy, Some(rp));
    // exportable cannot be changed.
    let e = v
        .update_key(
            "exp",
            None,
            &KeyUpdateParameters {
                attributes: Some(KeyAttributes {
                    exportable: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    assert!(e.to_string().contains("AKV.SKR.1014"));
    // Releasable material is PKCS#8 for RSA.
    let rel = v.releasable_key("exp", None).unwrap();
    assert_eq!(rel.kty, "RSA");
    assert_eq!(rel.material[0], 0x30, "DER SEQUENCE");
    assert!(!format!("{rel:?}").contains("material"));
    // A non-exportable key cannot be released.
    create(v, "plain", "oct", None, None);
    assert_eq!(
        v.releasable_key("plain", None).unwrap_err().http_status(),
        403
    );
    // Garbage policy data is refused.
    let e = v
        .create_key(
            "exp2",
            &KeyCreateParameters {
                kty: "oct".into(),
                attributes: Some(KeyAttributes {
                    exportable: Some(true),
                    ..Default::default()
                }),
                release_policy: Some(KeyReleasePolicy {
                    data: Some(Base64Url(b"not json".to_vec())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    // Immutable policies cannot be replaced.
    let mut imm = policy_blob();
    imm.immutable = Some(true);
    v.create_key(
        "exp3",
        &KeyCreateParameters {
            kty: "oct".into(),
            attributes: Some(KeyAttributes {
                exportable: Some(true),
                ..Default::default()
            }),
            release_policy: Some(imm),
            ..Default::default()
        },
    )
    .unwrap();
    let other = KeyReleasePolicy {
        data: Some(Base64Url(br#"{"version":"1.0.0","anyOf":[]}"#.to_vec())),
        ..Default::default()
    };
    let e = v
        .update_key(
            "exp3",
            None,
            &KeyUpdateParameters {
                release_policy: Some(other),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("immutable"));
}

#[test]
fn rotation_policy_and_due_rotations() {
    let env = env();
    let v = &env.vault;
    create(v, "auto", "EC", None, None);
    create(v, "manual", "oct", None, None);
    // Default policy.
    let p = v.get_rotation_policy("auto").unwrap();
    assert_eq!(
        p.id.as_deref(),
        Some("https://vault.test:8443/keys/auto/rotationpolicy")
    );
    assert_eq!(
        p.lifetime_actions.as_ref().unwrap()[0].action.action_type,
        "Notify"
    );
    // Set a policy: rotate 30 days after creation, new versions expire after 90 days, notify 7 days before expiry.
    let policy: KeyRotationPolicy = serde_json::from_value(serde_json::json!({
        "lifetimeActions": [
            {"trigger": {"timeAfterCreate": "P30D"}, "action": {"type": "rotate"}},
            {"trigger": {"timeBeforeExpiry": "P7D"}, "action": {"type": "Notify"}}
        ],
        "attributes": {"expiryTime": "P90D"}
    }))
    .unwrap();
    let stored = v.set_rotation_policy("auto", &policy).unwrap();
    assert_eq!(
        stored.lifetime_actions.as_ref().unwrap()[0]
            .action
            .action_type,
        "Rotate"
    );
    assert_eq!(
        stored.attributes.as_ref().unwrap().expiry_time.as_deref(),
        Some("P90D")
    );
    assert_eq!(
        stored.attributes.as_ref().unwrap().created,
        Some(env.clock.now().timestamp())
    );
    assert_eq!(v.get_rotation_policy("auto").unwrap(), stored);
    let first = version_of(&v.get_key("auto", None).unwrap());

    // Nothing is due yet.
    env.clock.advance(Duration::days(29));
    assert!(v.run_due_rotations(env.clock.now()).unwrap().is_empty());
    env.clock.advance(Duration::days(1));
    let events = v.run_due_rotations(env.clock.now()).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "auto");
    assert_eq!(events[0].action, RotationAction::Rotate);
    assert_eq!(events[0].version, first);
    let latest = v.get_key("auto", None).unwrap();
    assert_eq!(
        events[0].new_version.as_deref(),
        Some(version_of(&latest).as_str())
    );
    assert_eq!(
        latest.attributes.exp,
        Some((env.clock.now() + Duration::days(90)).timestamp())
    );
    // Idempotent at the same instant.
    assert!(v.run_due_rotations(env.clock.now()).unwrap().is_empty());
    // Manual rotation also applies expiryTime.
    let m = v.rotate_key("auto").unwrap();
    assert_eq!(
        m.attributes.exp,
        Some((env.clock.now() + Duration::days(90)).timestamp())
    );

    // Notify-only policy fires once per version, 7 days before expiry.
    let notify: KeyRotationPolicy = serde_json::from_value(serde_json::json!({
        "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P7D"}, "action": {"type": "Notify"}}],
        "attributes": {}
    }))
    .unwrap();
    v.set_rotation_policy("manual", &notify).unwrap();
    v.update_key(
        "manual",
        None,
        &KeyUpdateParameters {
            attributes: Some(KeyAttributes {
                exp: Some((env.clock.now() + Duration::days(10)).timestamp()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
    env.clock.advance(Duration::days(4));
    let ev = v.run_due_rotations(env.clock.now()).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].name.as_str(), ev[0].action),
        ("manual", RotationAction::Notify)
    );
    assert!(
        v.run_due_rotations(env.clock.now()).unwrap().is_empty(),
        "notify fires once"
    );

    // Validation errors.
    for bad in [
        serde_json::json!({"lifetimeActions": [{"trigger": {"timeAfterCreate": "90D"}, "action": {"type": "Rotate"}}]}),
        serde_json::json!({"lifetimeActions": [{"trigger": {}, "action": {"type": "Rotate"}}]}),
        serde_json::json!({"lifetimeActions": [{"trigger": {"timeAfterCreate": "P1D"}, "action": {"type": "Explode"}}]}),
        serde_json::json!({"lifetimeActions": [{"trigger": {"timeAfterCreate": "P1D"}, "action": {"type": "Notify"}}]}),
        serde_json::json!({"attributes": {"expiryTime": "PT"}}),
    ] {
        let p: KeyRotationPolicy = serde_json::from_value(bad.clone()).unwrap();
        assert_eq!(
            v.set_rotation_policy("auto", &p).unwrap_err().code(),
            "BadParameter",
            "{bad}"
        );
    }
}

#[test]
fn soft_delete_recover_purge() {
    let env = env();
    let v = &env.vault;
    let b = create(v, "gone", "oct", None, None);
    let d = v.delete_key("gone").unwrap();
    assert_eq!(d.bundle.key.kid, b.key.kid);
    assert_eq!(v.get_key("gone", None).unwrap_err().code(), "KeyNotFound");
    assert_eq!(
        v.encrypt("gone", None, &op("A256GCM", b"x"))
            .unwrap_err()
            .code(),
        "KeyNotFound"
    );
    assert_eq!(v.get_deleted_key("gone").unwrap(), d);
    let listed = v.list_deleted_keys(None, None).unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].deletion.recovery_id,
        "https://vault.test:8443/deletedkeys/gone"
    );
    // Name reuse while deleted -> 409.
    let e = v
        .create_key(
            "gone",
            &KeyCreateParameters {
                kty: "oct".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!((e.http_status(), e.code()), (409, "Conflict"));
    assert!(e.to_string().contains("deleted but recoverable state"));
    // Recover.
    let r = v.recover_deleted_key("gone").unwrap();
    assert_eq!(r.key.kid, b.key.kid);
    v.encrypt("gone", None, &op("A256GCM", b"x")).unwrap();
    assert_eq!(v.get_deleted_key("gone").unwrap_err().code(), "KeyNotFound");
    // Delete + purge, then the name is free and old versions are gone.
    v.delete_key("gone").unwrap();
    v.purge_deleted_key("gone").unwrap();
    assert_eq!(v.purge_deleted_key("gone").unwrap_err().http_status(), 404);
    assert!(
        env.store
            .list(Table::KeyVersions, "gone/", None, 10)
            .unwrap()
            .is_empty()
    );
    let again = create(v, "gone", "oct", None, None);
    assert_eq!(
        v.list_key_versions("gone", None, None).unwrap().items.len(),
        1
    );
    assert_ne!(again.key.kid, b.key.kid);
    assert_eq!(v.delete_key("never").unwrap_err().code(), "KeyNotFound");
}

#[test]
fn purge_protection_and_expiry() {
    let env = env_with(VaultOptions {
        purge_protection: true,
        recoverable_days: 7,
        ..Default::default()
    });
    let v = &env.vault;
    let b = create(v, "kept", "oct", None, None);
    assert_eq!(b.attributes.recovery_level.as_deref(), Some("Recoverable"));
    assert_eq!(b.attributes.recoverable_days, Some(7));
    v.set_secret(
        "s",
        &SecretSetParameters {
            value: "x".into(),
            ..Default::default()
        },
    )
    .unwrap();
    v.delete_key("kept").unwrap();
    v.delete_secret("s").unwrap();
    let e = v.purge_deleted_key("kept").unwrap_err();
    assert_eq!((e.http_status(), e.code()), (403, "Forbidden"));
    assert_eq!(v.purge_deleted_secret("s").unwrap_err().http_status(), 403);
    assert_eq!(v.purge_expired(env.clock.now()).unwrap(), 0);
    env.clock.advance(Duration::days(7));
    assert_eq!(v.purge_expired(env.clock.now()).unwrap(), 2);
    assert_eq!(v.get_deleted_key("kept").unwrap_err().code(), "KeyNotFound");
    assert_eq!(
        v.get_deleted_secret("s").unwrap_err().code(),
        "SecretNotFound"
    );
    create(v, "kept", "oct", None, None);
}

/// A second vault sharing the first one's root key: same seal row, its own store.
fn sibling(env: &Env) -> (Vault, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let seal = env.store.get(Table::Meta, "seal").unwrap().unwrap();
    store
        .transact(vec![enclava_store::Op::Put {
            table: Table::Meta,
            key: "seal".into(),
            value: seal,
        }])
        .unwrap();
    let dyn_store: Arc<dyn Store> = store.clone();
    let v = Vault::new(dyn_store, "https://other.test".into(), env.clock.clock());
    v.unseal(&env.shares[1]).unwrap();
    v.unseal(&env.shares[2]).unwrap();
    assert!(!v.is_sealed());
    (v, store)
}

#[test]
fn backup_restore_same_root_and_different_root() {
    let env = env();
    let v = &env.vault;
    let b1 = create(v, "bk", "RSA", None, None);
    let b2 = v.rotate_key("bk").unwrap();
    let blob = v.backup_key("bk").unwrap();
    let ct = v
        .encrypt(
            "bk",
            Some(&version_of(&b1)),
            &op("RSA-OAEP-256", b"old data"),
        )
        .unwrap();
    // Restore into the same vault needs the name free.
    assert_eq!(
        v.restore_key(blob.value.as_slice())
            .unwrap_err()
            .http_status(),
        409
    );

    let (other, _) = sibling(&env);
    let r = other.restore_key(blob.value.as_slice()).unwrap();
    assert_eq!(version_of(&r), version_of(&b2));
    assert!(
        r.key
            .kid
            .unwrap()
            .starts_with("https://other.test/keys/bk/")
    );
    assert_eq!(
        other
            .list_key_versions("bk", None, None)
            .unwrap()
            .items
            .len(),
        2
    );
    // Old version's material came along.
    let d = other
        .decrypt(
            "bk",
            Some(&version_of(&b1)),
            &op("RSA-OAEP-256", ct.value.as_slice()),
        )
        .unwrap();
    assert_eq!(d.value.as_slice(), b"old data");

    // Secrets too.
    v.set_secret(
        "sec",
        &SecretSetParameters {
            value: "v1".into(),
            ..Default::default()
        },
    )
    .unwrap();
    v.set_secret(
        "sec",
        &SecretSetParameters {
            value: "v2".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let sblob = v.backup_secret("sec").unwrap();
    other.restore_secret(sblob.value.as_slice()).unwrap();
    assert_eq!(
        other
            .get_secret("sec", None)
            .unwrap()
            .value
            .unwrap()
            .as_str(),
        "v2"
    );
    assert_eq!(
        other
            .list_secret_versions("sec", None, None)
            .unwrap()
            .items
            .len(),
        2
    );
    // A key backup is not a secret backup.
    assert!(
        other
            .restore_secret(blob.value.as_slice())
            .unwrap_err()
            .to_string()
            .contains("expected a secret backup")
    );

    // A vault with a different root cannot restore.
    let stranger = env_with(VaultOptions::default());
    let e = stranger
        .vault
        .restore_key(blob.value.as_slice())
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    assert!(e.to_string().contains("different root key"), "{e}");
    // Garbage and truncation.
    assert_eq!(
        stranger.vault.restore_key(b"garbage").unwrap_err().code(),
        "BadParameter"
    );
    let cut = &blob.value.as_slice()[..blob.value.as_slice().len() - 1];
    assert_eq!(other.restore_key(cut).unwrap_err().code(), "BadParameter");
}

#[test]
fn cache_is_invalidated_on_delete_and_seal() {
    let env = env();
    let v = &env.vault;
    create(v, "c", "oct", None, None);
    v.encrypt("c", None, &op("A256GCM", b"x")).unwrap();
    v.delete_key("c").unwrap();
    assert_eq!(
        v.encrypt("c", None, &op("A256GCM", b"x"))
            .unwrap_err()
            .code(),
        "KeyNotFound"
    );
    v.recover_deleted_key("c").unwrap();
    v.encrypt("c", None, &op("A256GCM", b"x")).unwrap();
    v.seal();
    assert_eq!(
        v.encrypt("c", None, &op("A256GCM", b"x")).unwrap_err(),
        VaultError::Sealed
    );
}

#[test]
fn concurrent_operations_and_rotation() {
    let env = env();
    let v = &env.vault;
    create(v, "hot", "oct", None, None);
    v.set_secret(
        "sv",
        &SecretSetParameters {
            value: "0".into(),
            ..Default::default()
        },
    )
    .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..200 {
                    let r = v.encrypt("hot", None, &op("A256GCM", b"payload")).unwrap();
                    let ver = r.kid.rsplit('/').next().unwrap().to_string();
                    let mut d = op("A256GCM", r.value.as_slice());
                    d.iv = r.iv;
                    d.tag = r.tag;
                    assert_eq!(
                        v.decrypt("hot", Some(&ver), &d).unwrap().value.as_slice(),
                        b"payload"
                    );
                    if i % 50 == 0 {
                        v.rotate_key("hot").unwrap();
                        v.set_secret(
                            "sv",
                            &SecretSetParameters {
                                value: format!("{t}-{i}").as_str().into(),
                                ..Default::default()
                            },
                        )
                        .unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(
        v.list_key_versions("hot", None, None).unwrap().items.len(),
        17
    );
    assert_eq!(
        v.list_secret_versions("sv", None, None)
            .unwrap()
            .items
            .len(),
        17
    );
    // After all rotations, unversioned operations use the latest version.
    let latest = version_of(&v.get_key("hot", None).unwrap());
    let r = v.encrypt("hot", None, &op("A256GCM", b"x")).unwrap();
    assert!(r.kid.ends_with(&latest));
}
