//! The run protocol step by step against a real dev server (in-process, HTTPS on loopback):
//! challenge, simulated evidence, native attestation, secure key release, key_hsm unwrap, and
//! the negative paths (stolen token, unbound nonce, replayed challenge, release policy, roles).
//! The full run with the example workload is at the end (skipped with a notice when the wasm is
//! not built and CI is not set).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_enclave::client::Client;
use enclava_enclave::data::{Recipient, ReleasedKeys, SealedInput};
use enclava_enclave::evidence::{self, TeeChoice};
use enclava_enclave::run::{attest, challenge, release};
use enclava_enclave::{
    Connection, EnclaveError, EphemeralKeys, RefusedBy, RunRequest, RuntimeData,
};
use enclava_envelope::{BoxError, EncryptOptions, KeyWrapper};
use enclava_runtime::{Access, Limits, Manifest};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use zeroize::Zeroizing;

struct Dev {
    _dir: tempfile::TempDir,
    data: PathBuf,
    url: String,
    admin: String,
    agent: ureq::Agent,
    _server: enclava_server::RunningServer,
    _rt: tokio::runtime::Runtime,
}

fn agent(ca: &Path) -> ureq::Agent {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for c in <rustls::pki_types::CertificateDer as PemObject>::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = enclava_http::client_config(roots).unwrap();
    enclava_http::pinned_agent_builder(Arc::new(cfg))
        .timeout(Duration::from_secs(30))
        .build()
}

fn start() -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = enclava_server::PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(data.clone()),
        dev: Some(true),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(enclava_server::start(cfg)).unwrap();
    let url = server.local_url.clone();
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let agent = agent(&data.join("ca.pem"));
    Dev {
        _dir: dir,
        data,
        url,
        admin,
        agent,
        _server: server,
        _rt: rt,
    }
}

impl Dev {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = if path.starts_with("/keys") {
            format!("{}{path}{sep}api-version=7.6", self.url)
        } else {
            format!("{}{path}", self.url)
        };
        let req = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("Bearer {}", self.admin));
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    fn set_measurements(&self, m: &[&str]) {
        self.ok(
            "PUT",
            "/enclava/reference-values/default/quickstart",
            Some(json!({ "measurements": m })),
        );
    }

    fn issuer(&self) -> String {
        self.ok("GET", "/.well-known/openid-configuration", None)["issuer"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A workload host identity with `role` on `scope`; its bearer token.
    fn identity(&self, role: &str, scope: &str) -> String {
        let sp = self.ok(
            "POST",
            "/enclava/principals",
            Some(json!({"kind": "service_principal", "display_name": "host"})),
        );
        self.ok(
            "POST",
            "/enclava/role-assignments",
            Some(json!({"principal": sp["principal"]["id"], "role": role, "scope": scope})),
        );
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fvault.azure.net%2F.default",
            sp["client_id"].as_str().unwrap(),
            sp["client_secret"].as_str().unwrap()
        );
        let v: Value = self
            .agent
            .post(&format!("{}/oauth2/token", self.url))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&form)
            .unwrap()
            .into_json()
            .unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    fn conn(&self, token: &str) -> Connection {
        Connection {
            url: self.url.clone(),
            token: Some(Zeroizing::new(token.to_string())),
            ca_cert: Some(self.data.join("ca.pem")),
            timeout: Duration::from_secs(30),
        }
    }

    /// An exportable AES key whose release policy names `measurement`.
    fn data_key(&self, name: &str, measurement: &str) -> String {
        let policy = json!({"version": "1.0.0", "anyOf": [{"authority": self.issuer(), "allOf": [
            {"claim": "x-ms-attestation-type", "equals": "enclava-sim"},
            {"claim": "x-ms-runtime.workload-measurement", "equals": measurement}]}]});
        let v = self.ok(
            "POST",
            &format!("/keys/{name}/create"),
            Some(
                json!({"kty": "oct-HSM", "key_size": 256, "key_ops": ["wrapKey", "unwrapKey"],
                "attributes": {"exportable": true},
                "release_policy": {"data": URL_SAFE_NO_PAD.encode(policy.to_string())}}),
            ),
        );
        v["key"]["kid"].as_str().unwrap().to_string()
    }
}

/// The vault's wrapKey as the data owner's envelope wrapper.
struct VaultWrap<'a> {
    dev: &'a Dev,
    kid: String,
}

impl KeyWrapper for VaultWrap<'_> {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn alg(&self) -> &str {
        "A256KW"
    }
    fn wrap_key(&self, dek: &[u8]) -> Result<Vec<u8>, BoxError> {
        let path = self.kid.strip_prefix(&self.dev.url).unwrap();
        let v = self.dev.ok(
            "POST",
            &format!("{path}/wrapkey"),
            Some(json!({"alg": "A256KW", "value": URL_SAFE_NO_PAD.encode(dek)})),
        );
        Ok(URL_SAFE_NO_PAD.decode(v["value"].as_str().unwrap().trim_end_matches('='))?)
    }
}

fn attested(
    client: &Client,
    keys: &EphemeralKeys,
    m: &[u8; 48],
) -> Result<enclava_enclave::run::Attested, EnclaveError> {
    let nonce = challenge(client)?;
    let rd = RuntimeData::new(keys, m, &nonce)?;
    let ev = evidence::collect(TeeChoice::Sim, Path::new("/"), &rd.report_data(), m)?;
    attest(client, &ev, &rd, &nonce)
}

fn install_quickstart_policy(dev: &Dev) {
    dev.ok(
        "PUT",
        "/policies/sim",
        Some(json!({"policy": enclava_policy::rego::defaults::QUICKSTART})),
    );
}

#[test]
fn attestation_release_and_unwrap_step_by_step() {
    let dev = start();
    install_quickstart_policy(&dev);
    let m = [0x11u8; 48];
    let m_hex = hex::encode(m);
    dev.set_measurements(&[&m_hex]);
    let kid = dev.data_key("dataset", &m_hex);
    let host = dev.identity("ReleaseUser", "/keys/dataset");
    let client = Client::new(dev.conn(&host)).unwrap();

    // (b)+(c): the token carries our runtime data.
    let keys = EphemeralKeys::generate().unwrap();
    let att = attested(&client, &keys, &m).unwrap();
    assert_eq!(att.issuer, dev.issuer());
    let rt = &att.claims["x-ms-runtime"];
    assert_eq!(rt["workload-measurement"], m_hex);
    assert_eq!(rt["keys"][0]["kid"], keys.wrapping_kid());
    assert_eq!(att.claims["x-enclava-measurement"], m_hex);

    // (c)+(d): release and unwrap; the released key opens the owner's envelope.
    let rk = release(&client, "dataset", &att, &keys).unwrap();
    assert_eq!(rk.kid, kid);
    assert_eq!(rk.material.len(), 32);
    let mut env = Vec::new();
    enclava_envelope::encrypt(
        &b"tx_id,amount\n1,100\n"[..],
        &mut env,
        &VaultWrap {
            dev: &dev,
            kid: kid.clone(),
        },
        &EncryptOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let keyring = ReleasedKeys::new(vec![rk]);
    let mut plain = Vec::new();
    enclava_envelope::decrypt(&env[..], &mut plain, &keyring, &mut |_| {}).unwrap();
    assert_eq!(plain, b"tx_id,amount\n1,100\n");

    // A stolen token is useless: the vault wraps to the key *in* the token, which another
    // process does not hold.
    let thief = EphemeralKeys::generate().unwrap();
    let e = release(&client, "dataset", &att, &thief).unwrap_err();
    assert!(matches!(e, EnclaveError::Server(_)), "{e}");
    assert!(e.to_string().contains(keys.wrapping_kid()), "{e}");

    // The challenge is single-use: replaying it is refused before verification.
    let nonce = challenge(&client).unwrap();
    let rd = RuntimeData::new(&keys, &m, &nonce).unwrap();
    let ev = evidence::collect(TeeChoice::Sim, Path::new("/"), &rd.report_data(), &m).unwrap();
    attest(&client, &ev, &rd, &nonce).unwrap();
    let e = attest(&client, &ev, &rd, &nonce).unwrap_err();
    assert!(e.to_string().contains("nonce_replayed"), "{e}");

    // Runtime data not bound by the evidence (report data of other runtime data): refused.
    let nonce = challenge(&client).unwrap();
    let rd = RuntimeData::new(&keys, &m, &nonce).unwrap();
    let other = RuntimeData::new(&thief, &m, &nonce).unwrap();
    let ev = evidence::collect(TeeChoice::Sim, Path::new("/"), &other.report_data(), &m).unwrap();
    match attest(&client, &ev, &rd, &nonce).unwrap_err() {
        EnclaveError::Refused { by, failed, .. } => {
            assert_eq!(by, RefusedBy::Attestation);
            assert!(
                failed.iter().any(|f| f.rule == "runtime_data_binding"),
                "{failed:?}"
            );
        }
        e => panic!("expected a refusal, got {e}"),
    }

    // A measurement the attestation policy does not list: refused, naming the rule.
    let m2 = [0x22u8; 48];
    match attested(&client, &keys, &m2).unwrap_err() {
        EnclaveError::Refused { by, failed, .. } => {
            assert_eq!(by, RefusedBy::Attestation);
            assert!(
                failed.iter().any(|f| f.rule == "measurement_not_allowed"
                    && f.claim_path == "claims.measurement"
                    && f.found == hex::encode(m2)),
                "{failed:?}"
            );
        }
        e => panic!("expected a refusal, got {e}"),
    }
    // Admitted by the attestation policy, but not by the key's release policy.
    dev.set_measurements(&[&m_hex, &hex::encode(m2)]);
    let att2 = attested(&client, &keys, &m2).unwrap();
    match release(&client, "dataset", &att2, &keys).unwrap_err() {
        EnclaveError::Refused {
            by, code, failed, ..
        } => {
            assert_eq!(by, RefusedBy::Release);
            assert!(code.contains("ReleasePolicyNotSatisfied"), "{code}");
            assert!(
                failed
                    .iter()
                    .any(|f| f.claim_path == "x-ms-runtime.workload-measurement"
                        && f.found.contains(&hex::encode(m2))),
                "{failed:?}"
            );
        }
        e => panic!("expected a refusal, got {e}"),
    }

    // An identity without the Release User role on the key: refused by the vault.
    let other_key = dev.identity("ReleaseUser", "/keys/someotherkey");
    let c2 = Client::new(dev.conn(&other_key)).unwrap();
    match release(&c2, "dataset", &att, &keys).unwrap_err() {
        EnclaveError::Refused { by, status, .. } => {
            assert_eq!(by, RefusedBy::Release);
            assert_eq!(status, 403);
        }
        e => panic!("expected a refusal, got {e}"),
    }
    // A key that does not exist is bad input (the manifest names it); an identity without a
    // role anywhere gets 403 first (default deny), an administrator the 404.
    let admin = Client::new(dev.conn(&dev.admin)).unwrap();
    assert_eq!(
        release(&admin, "nokey", &att, &keys)
            .unwrap_err()
            .exit_code(),
        2
    );
}

fn wasm() -> Option<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/fraud-workload/target/wasm32-wasip1/release/fraud-workload.wasm");
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!(
                "{} missing: CI builds it first (scripts/build-workload.sh)",
                p.display()
            )
        }
        Err(_) => {
            eprintln!("NOTICE: skipping the full run: {} not built", p.display());
            None
        }
    }
}

#[test]
fn full_run_with_the_example_workload() {
    let Some(module) = wasm() else { return };
    let dev = start();
    install_quickstart_policy(&dev);
    // Recipient.
    let rk = dev.ok(
        "POST",
        "/keys/results/create",
        Some(json!({"kty": "RSA", "key_size": 2048, "key_ops": ["wrapKey", "unwrapKey"]})),
    );
    let b = |m: &str| {
        URL_SAFE_NO_PAD
            .decode(rk["key"][m].as_str().unwrap().trim_end_matches('='))
            .unwrap()
    };
    let rkid = rk["key"]["kid"].as_str().unwrap().to_string();
    let recipient = Recipient::vault_key_string(&rkid, &b("n"), &b("e")).unwrap();
    let manifest = Manifest {
        name: "fraud-workload".into(),
        module_sha256: enclava_runtime::module_sha256(&module),
        args: ["--input", "/input", "--output", "/output"]
            .map(String::from)
            .to_vec(),
        env: Default::default(),
        dirs: [
            ("/input".to_string(), Access::ReadOnly),
            ("/output".to_string(), Access::ReadWrite),
        ]
        .into(),
        keys: ["dataset".to_string()].into(),
        outputs: [("/output/summary.json".to_string(), recipient)].into(),
        limits: Limits {
            memory_bytes: 256 << 20,
            time_ms: 30_000,
        },
    };
    let m_hex = hex::encode(enclava_runtime::measure(&module, &manifest));
    dev.set_measurements(&[&m_hex]);
    let kid = dev.data_key("dataset", &m_hex);
    let host = dev.identity("ReleaseUser", "/keys/dataset");

    let work = tempfile::tempdir().unwrap();
    let csv = "tx_id,card_id,timestamp,amount_cents,merchant_id,merchant_category,country,card_home_country\n\
               1,10,1700000000,1200,5,5411,US,US\n2,10,1700000100,990000,6,6051,RU,US\n";
    let sealed = work.path().join("tx.enc");
    let mut env = Vec::new();
    enclava_envelope::encrypt(
        csv.as_bytes(),
        &mut env,
        &VaultWrap {
            dev: &dev,
            kid: kid.clone(),
        },
        &EncryptOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    std::fs::write(&sealed, &env).unwrap();
    let out_dir = work.path().join("out");
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let req = RunRequest {
        manifest,
        module,
        tee: TeeChoice::Sim,
        inputs: vec![SealedInput {
            name: "transactions.csv".into(),
            path: sealed,
        }],
        output_dir: out_dir.clone(),
        connection: dev.conn(&host),
        attester_root: PathBuf::from("/"),
        scratch_root: Some(scratch.clone()),
        host_limits: None,
    };
    let mut steps = Vec::new();
    let report = enclava_enclave::run(&req, &mut |s| steps.push(s.to_string())).unwrap();
    assert!(steps.len() >= 10, "{steps:?}");
    let r = &report.receipt.receipt;
    assert_eq!(r.workload.measurement, m_hex);
    assert_eq!(r.keys_released, vec![kid]);
    assert_eq!(r.inputs.len(), 1);
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.outputs[0].recipient_kid, rkid);
    // Only the declared output left, encrypted; the scratch area is empty again.
    let files: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec!["summary.json.enc".to_string()]);
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    // The recipient (vault unwrapKey with the results key) decrypts it.
    struct VaultUnwrap<'a>(&'a Dev);
    impl enclava_envelope::KeyUnwrapper for VaultUnwrap<'_> {
        fn unwrap_key(
            &self,
            kid: &str,
            alg: &str,
            w: &[u8],
        ) -> Result<Zeroizing<Vec<u8>>, BoxError> {
            let path = kid.strip_prefix(&self.0.url).unwrap();
            let v = self.0.ok(
                "POST",
                &format!("{path}/unwrapkey"),
                Some(json!({"alg": alg, "value": URL_SAFE_NO_PAD.encode(w)})),
            );
            Ok(Zeroizing::new(URL_SAFE_NO_PAD.decode(
                v["value"].as_str().unwrap().trim_end_matches('='),
            )?))
        }
    }
    let enc = std::fs::read(out_dir.join("summary.json.enc")).unwrap();
    let mut plain = Vec::new();
    enclava_envelope::decrypt(&enc[..], &mut plain, &VaultUnwrap(&dev), &mut |_| {}).unwrap();
    let summary: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(summary["totals"]["transactions"], 2);
    // The receipt verifies against the token.
    let claims = enclava_token::decode_unverified(&r.attestation.token)
        .unwrap()
        .claims;
    enclava_enclave::verify_receipt(&report.receipt, &claims).unwrap();

    // A workload that fails (memory limit of one page) is exit 4, and nothing leaves.
    let mut slow = req.clone();
    slow.manifest.limits.memory_bytes = 64 * 1024;
    let m_slow = hex::encode(enclava_runtime::measure(&slow.module, &slow.manifest));
    dev.set_measurements(&[&m_hex, &m_slow]);
    // The data key's policy names only the original measurement: release refused (exit 1).
    let e = enclava_enclave::run(&slow, &mut |_| {}).unwrap_err();
    assert_eq!(e.exit_code(), 1, "{e}");
    // With a key (new version) for that measurement and the input sealed under it, the run
    // reaches the workload, which hits its memory limit: exit 4, no output.
    let kid2 = dev.data_key("dataset", &m_slow);
    let mut env2 = Vec::new();
    enclava_envelope::encrypt(
        csv.as_bytes(),
        &mut env2,
        &VaultWrap {
            dev: &dev,
            kid: kid2,
        },
        &EncryptOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let sealed2 = work.path().join("tx2.enc");
    std::fs::write(&sealed2, &env2).unwrap();
    slow.inputs[0].path = sealed2;
    slow.output_dir = work.path().join("out-slow");
    let e = enclava_enclave::run(&slow, &mut |_| {}).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(e.to_string().contains("memory limit"), "{e}");
    assert!(!work.path().join("out-slow/summary.json.enc").exists());
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);

    // All outputs or none: a declared output the workload does not write (sorted after
    // summary.json) fails the run with exit 4 and the summary written before it is removed.
    let mut partial = req.clone();
    let r = partial.manifest.outputs["/output/summary.json"].clone();
    partial
        .manifest
        .outputs
        .insert("/output/zzz-never-written.json".into(), r);
    let m_partial = hex::encode(enclava_runtime::measure(&partial.module, &partial.manifest));
    dev.set_measurements(&[&m_partial]);
    let kid3 = dev.data_key("dataset", &m_partial);
    let mut env3 = Vec::new();
    enclava_envelope::encrypt(
        csv.as_bytes(),
        &mut env3,
        &VaultWrap {
            dev: &dev,
            kid: kid3,
        },
        &EncryptOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let sealed3 = work.path().join("tx3.enc");
    std::fs::write(&sealed3, &env3).unwrap();
    partial.inputs[0].path = sealed3;
    partial.output_dir = work.path().join("out-partial");
    let e = enclava_enclave::run(&partial, &mut |_| {}).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(e.to_string().contains("zzz-never-written"), "{e}");
    assert_eq!(std::fs::read_dir(&partial.output_dir).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
}

/// Issue 9 item 11: the TLS key sits in the data directory (it must, to serve TLS before
/// unseal). Whoever reads it still cannot sign a release answer `enclava run` accepts with the
/// CA pinned: the verifier wants RS256 by a certificate with the release-signing purpose, and the
/// TLS certificate (same CA) has only serverAuth.
#[test]
fn the_tls_key_cannot_sign_a_release_answer_the_run_accepts() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use base64::engine::general_purpose::STANDARD;
    let dev = start();
    let der_certs = |file: &str| -> Vec<Vec<u8>> {
        let pem = std::fs::read(dev.data.join(file)).unwrap();
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &pem,
        )
        .map(|c| c.unwrap().to_vec())
        .collect()
    };
    let ca = der_certs("ca.pem").remove(0);
    let tls_leaf = der_certs("tls-cert.pem").remove(0);
    assert!(!enclava_token::eku::cert_has_eku(
        &tls_leaf,
        enclava_token::eku::RELEASE_SIGNING_EKU
    ));
    let key_pem = std::fs::read(dev.data.join("tls-key.pem")).unwrap();
    let key_der =
        <rustls::pki_types::PrivateKeyDer as rustls::pki_types::pem::PemObject>::from_pem_slice(
            &key_pem,
        )
        .unwrap();
    let tls_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_der.secret_der()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let x5c = json!([STANDARD.encode(&tls_leaf), STANDARD.encode(&ca)]);
    for alg in ["ES256", "RS256"] {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "x5c": x5c}).to_string()),
            URL_SAFE_NO_PAD.encode(r#"{"response":{"key":{}}}"#)
        );
        let sig = tls_key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        let e =
            enclava_enclave::release_sig::verify_release_jws(&jws, std::slice::from_ref(&ca), now)
                .unwrap_err();
        assert!(
            e.to_string().contains("release answer signature"),
            "{alg}: {e}"
        );
    }
}
