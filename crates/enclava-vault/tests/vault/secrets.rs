use chrono::Duration;
use enclava_vault::*;

use crate::common::*;

fn set(v: &Vault, name: &str, value: &str) -> SecretBundle {
    v.set_secret(
        name,
        &SecretSetParameters {
            value: value.into(),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn set_get_versions_update() {
    let env = env();
    let v = &env.vault;
    let mut tags = Tags::new();
    tags.insert("a".into(), "b".into());
    let s1 = v
        .set_secret(
            "db-password",
            &SecretSetParameters {
                value: "hunter2".into(),
                content_type: Some("text/plain".into()),
                tags: Some(tags.clone()),
                attributes: None,
            },
        )
        .unwrap();
    let j = serde_json::to_value(&s1).unwrap();
    assert_eq!(j["value"], "hunter2");
    assert_eq!(j["contentType"], "text/plain");
    assert!(
        j["id"]
            .as_str()
            .unwrap()
            .starts_with("https://vault.test:8443/secrets/db-password/")
    );
    assert_eq!(j["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
    assert!(j["attributes"].get("exportable").is_none());
    assert!(
        !format!("{s1:?}").contains("hunter2"),
        "Debug redacts values"
    );

    env.clock.advance(Duration::seconds(5));
    let s2 = set(v, "db-password", "correct horse");
    assert_ne!(s1.id, s2.id);
    assert_eq!(
        v.get_secret("db-password", None)
            .unwrap()
            .value
            .unwrap()
            .as_str(),
        "correct horse"
    );
    let v1 = s1.id.rsplit('/').next().unwrap();
    assert_eq!(
        v.get_secret("DB-PASSWORD", Some(v1))
            .unwrap()
            .value
            .unwrap()
            .as_str(),
        "hunter2"
    );

    // Listings never carry values.
    let list = v.list_secrets(None, None).unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].id,
        "https://vault.test:8443/secrets/db-password"
    );
    let lj = serde_json::to_string(&list.items).unwrap();
    assert!(!lj.contains("correct horse") && !lj.contains("value"));
    assert_eq!(
        v.list_secret_versions("db-password", None, None)
            .unwrap()
            .items
            .len(),
        2
    );

    // Update: disable version 1 -> 403 SecretDisabled; update returns no value.
    let u = v
        .update_secret(
            "db-password",
            Some(v1),
            &SecretUpdateParameters {
                attributes: Some(SecretAttributes {
                    enabled: Some(false),
                    ..Default::default()
                }),
                content_type: Some("application/x-pass".into()),
                tags: None,
            },
        )
        .unwrap();
    assert!(u.value.is_none());
    assert_eq!(u.content_type.as_deref(), Some("application/x-pass"));
    assert_eq!(u.tags, Some(tags));
    let e = v.get_secret("db-password", Some(v1)).unwrap_err();
    assert_eq!(
        (e.http_status(), e.code(), e.inner_code()),
        (403, "Forbidden", Some("SecretDisabled"))
    );
    assert_eq!(
        e.to_string(),
        "Operation get is not allowed on a disabled secret."
    );
    // Latest unaffected.
    v.get_secret("db-password", None).unwrap();

    // Errors.
    let e = v.get_secret("missing", None).unwrap_err();
    assert_eq!((e.http_status(), e.code()), (404, "SecretNotFound"));
    assert_eq!(e.to_string(), "secret 'missing' was not found");
    let e = v.get_secret("db-password", Some("abc")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "secret 'db-password' version 'abc' was not found"
    );
    let e = v
        .set_secret(
            "bad_name",
            &SecretSetParameters {
                value: "x".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "BadParameter");
    let big = "x".repeat(25 * 1024 + 1);
    let e = v
        .set_secret(
            "big",
            &SecretSetParameters {
                value: big.as_str().into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "secret value too large: expected at most 25600 bytes, found 25601"
    );
    assert!(!e.to_string().contains("xxxx"));
    set(v, "max", &"y".repeat(25 * 1024));
    set(v, "empty", "");
    assert_eq!(
        v.get_secret("empty", None).unwrap().value.unwrap().as_str(),
        ""
    );
}

#[test]
fn secret_soft_delete_cycle() {
    let env = env();
    let v = &env.vault;
    let s = set(v, "tmp", "value-123");
    let d = v.delete_secret("tmp").unwrap();
    assert!(d.bundle.value.is_none());
    assert_eq!(d.bundle.id, s.id);
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(
        j["recoveryId"],
        "https://vault.test:8443/deletedsecrets/tmp"
    );
    assert!(j.get("value").is_none());
    assert_eq!(
        v.get_secret("tmp", None).unwrap_err().code(),
        "SecretNotFound"
    );
    let e = v
        .set_secret(
            "tmp",
            &SecretSetParameters {
                value: "new".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.http_status(), 409);
    assert!(e.to_string().contains("deleted but recoverable"));
    assert_eq!(v.list_deleted_secrets(None, None).unwrap().items.len(), 1);
    let r = v.recover_deleted_secret("tmp").unwrap();
    assert!(r.value.is_none());
    assert_eq!(
        v.get_secret("tmp", None).unwrap().value.unwrap().as_str(),
        "value-123"
    );
    v.delete_secret("tmp").unwrap();
    v.purge_deleted_secret("tmp").unwrap();
    assert_eq!(
        v.get_deleted_secret("tmp").unwrap_err().code(),
        "SecretNotFound"
    );
    set(v, "tmp", "fresh");
    assert_eq!(
        v.list_secret_versions("tmp", None, None)
            .unwrap()
            .items
            .len(),
        1
    );
}
