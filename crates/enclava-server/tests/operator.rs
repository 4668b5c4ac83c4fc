//! Attacks on the anonymous operator routes of a production server, over real HTTPS: forged
//! unseal shares (progress reset, index squatting), first-come init, and the bootstrap token's
//! lifetime and the data files' modes.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};

fn init_token(t: &TestServer) -> String {
    std::fs::read_to_string(data_dir_of(t).join("init.token"))
        .expect("init.token")
        .trim()
        .to_string()
}

fn init(t: &TestServer, shares: u8, threshold: u8) -> Vec<String> {
    let token = init_token(t);
    let r = t.post(
        "/operator/init",
        Some(&token),
        &json!({"shares": shares, "threshold": threshold}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| s.as_str().expect("share").to_string())
        .collect()
}

/// What an anonymous attacker can always produce: a well-formed share (valid checksum) with
/// random data claiming `index`.
fn forged_share(index: u8, threshold: u8) -> String {
    let mut data = [0u8; 32];
    aws_lc_rs::rand::fill(&mut data).expect("random");
    enclava_vault::seal::shamir::Share {
        index,
        threshold,
        data: zeroize::Zeroizing::new(data.to_vec()),
    }
    .encode()
    .to_string()
}

fn unseal(t: &TestServer, share: &str) -> Resp {
    t.post("/operator/unseal", None, &json!({ "share": share }))
}

fn progress(t: &TestServer) -> Value {
    t.get("/operator/status", None).body["progress"].clone()
}

#[test]
fn forged_shares_neither_reset_progress_nor_squat_an_index() {
    let t = start_prod();
    let shares = init(&t, 5, 3);
    let r = unseal(&t, &shares[0]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["progress"], 1);

    // A forged share with a real index not given yet: 400 naming it, progress kept.
    let r = unseal(&t, &forged_share(2, 3));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "BadParameter");
    let msg = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("share 2 does not match the share issued at init"),
        "{msg}"
    );
    assert_eq!(progress(&t), 1);

    // A forged share with the index already given: refused, the real one is not displaced.
    let r = unseal(&t, &forged_share(1, 3));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(progress(&t), 1);

    // The same real share again: reported as a duplicate, not counted twice.
    let r = unseal(&t, &shares[0]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["duplicate"], true, "{}", r.text);
    assert_eq!(r.body["progress"], 1);
    assert_eq!(r.body["sealed"], true);

    // A burst of forgeries for every index changes nothing.
    for i in 1..=5u8 {
        assert_eq!(unseal(&t, &forged_share(i, 3)).status, 400);
    }
    let r = unseal(&t, &shares[1]);
    assert_eq!(r.body["progress"], 2, "{}", r.text);
    assert!(r.body.get("duplicate").is_none(), "{}", r.text);
    assert_eq!(progress(&t), 2);
    // The remaining real share unseals.
    let r = unseal(&t, &shares[4]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sealed"], false);
    assert_eq!(t.get("/readyz", None).status, 200);
}

#[test]
fn vault_initialized_before_commitments_still_unseals_without_losing_good_progress() {
    let t = start_prod();
    let shares = init(&t, 3, 2);
    // Turn the seal record into the pre-commitment format (1).
    let store = t.server.state.store.clone();
    let raw = store
        .get(enclava_store::Table::Meta, "seal")
        .expect("read")
        .expect("seal record");
    let mut rec: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(rec["format"], 2, "new inits store commitments: {rec}");
    let obj = rec.as_object_mut().expect("object");
    obj.remove("share_commitments");
    obj.insert("format".into(), 1.into());
    store
        .transact(vec![enclava_store::Op::Put {
            table: enclava_store::Table::Meta,
            key: "seal".into(),
            value: serde_json::to_vec(&rec).unwrap(),
        }])
        .expect("write");

    // Without commitments a forgery squats index 1 until the threshold shows it is wrong...
    assert_eq!(unseal(&t, &forged_share(1, 2)).status, 200);
    // ...the real share 1 is reported as a conflict, not silently ignored...
    let r = unseal(&t, &shares[0]);
    assert_eq!(r.status, 409, "{}", r.text);
    // ...a good share at the threshold does not reset anything...
    let r = unseal(&t, &shares[1]);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(progress(&t), 2);
    // ...and the next good share finds the good pair.
    let r = unseal(&t, &shares[2]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sealed"], false);
    // The record was upgraded: forgeries are now refused up front.
    let raw = store
        .get(enclava_store::Table::Meta, "seal")
        .expect("read")
        .expect("seal record");
    let rec: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(rec["format"], 2, "{rec}");
}

#[test]
fn init_needs_the_one_time_init_token() {
    let t = start_prod();
    let path = data_dir_of(&t).join("init.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let body = json!({"shares": 1, "threshold": 1});
    // No token: 401, saying what is needed; and nothing was initialized.
    let r = t.post("/operator/init", None, &body);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("init token"), "{}", r.text);
    // A wrong token (also a well-formed one).
    let r = t.post("/operator/init", Some("not-the-token"), &body);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("does not match"), "{}", r.text);
    let r = t.post("/operator/init", Some(&"A".repeat(43)), &body);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(t.get("/operator/status", None).body["initialized"], false);
    // The right token: initialized, and the file is gone.
    let token = init_token(&t);
    let r = t.post("/operator/init", Some(&token), &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!path.exists(), "init.token must be deleted after init");
    // Replaying it: the vault is initialized (409), and the token is no longer accepted anyway.
    let r = t.post("/operator/init", Some(&token), &body);
    assert_eq!(r.status, 409, "{}", r.text);
}

#[test]
fn bootstrap_token_is_short_lived_and_data_files_are_private() {
    let t = start_prod();
    let shares = init(&t, 1, 1);
    let r = unseal(&t, &shares[0]);
    assert_eq!(r.body["sealed"], false, "{}", r.text);
    let admin = t.admin_token();
    let payload = admin.split('.').nth(1).expect("JWT payload");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    let life = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(life, 24 * 3600, "{claims}");
    // The token works meanwhile.
    let r = t.get("/enclava/principals", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = data_dir_of(&t);
        for name in ["vault.db", "vault.db-wal", "vault.db-shm", "admin.token"] {
            let p = dir.join(name);
            let mode = std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
}
