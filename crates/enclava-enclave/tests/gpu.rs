//! The enclave runtime's composite CPU + GPU attestation against a real dev server (in-process,
//! HTTPS on loopback): GPU evidence attached to the native request, its nonce carried in the
//! runtime data, the model key released under a policy on the GPU claims and unwrapped.
//!
//! The device is a real NVIDIA NVSwitch (LS10) report with its real BIOS RIM (the NVIDIA
//! attestation SDK's offline NVSwitch set), the one recorded set whose RIM is valid at today's
//! time (until 2027-11-02), so that the simulated CPU evidence (dated now) and the device verify
//! on the same clock. After that date the RIM has expired and the test checks that refusal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_enclave::client::Client;
use enclava_enclave::evidence::{self, GpuAttachment, TeeChoice};
use enclava_enclave::run::{attest_with_gpu, challenge, release};
use enclava_enclave::{Connection, EnclaveError, EphemeralKeys, RefusedBy, RuntimeData};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const SDK: &str = "nvidia-gpu/attestation-sdk";
const RIM_VALID_UNTIL: &str = "2027-11-02T23:59:59Z";

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

fn call(agent: &ureq::Agent, url: &str, admin: &str, method: &str, body: Value) -> Value {
    let r = agent
        .request(method, url)
        .set("Authorization", &format!("Bearer {admin}"))
        .send_json(body);
    match r {
        Ok(r) => r.into_json().unwrap(),
        Err(ureq::Error::Status(s, r)) => {
            panic!("{method} {url}: {s} {}", r.into_string().unwrap())
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

#[test]
fn enclave_runtime_attests_cpu_and_gpu_and_obtains_the_model_key() {
    let Some(vectors) = enclava_testvectors::dir() else {
        return;
    };
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
    let ag = agent(&data.join("ca.pem"));
    let issuer = call(
        &ag,
        &format!("{url}/.well-known/openid-configuration"),
        &admin,
        "GET",
        Value::Null,
    )["issuer"]
        .as_str()
        .unwrap()
        .to_string();
    // Simulated CPU evidence is admitted by an explicit policy (development only).
    call(
        &ag,
        &format!("{url}/policies/sim"),
        &admin,
        "PUT",
        json!({"policy": enclava_policy::rego::defaults::QUICKSTART}),
    );
    let m = [0x33u8; 48];
    call(
        &ag,
        &format!("{url}/enclava/reference-values/default/quickstart"),
        &admin,
        "PUT",
        json!({"measurements": [hex::encode(m)]}),
    );
    // The model key: only for a token whose devices are all in CC mode, with an NVSwitch.
    let policy = json!({"version": "1.0.0", "anyOf": [{"authority": issuer, "allOf": [
        {"claim": "x-enclava-gpu.cc_mode", "equals": "on"},
        {"claim": "x-enclava-gpu.nvswitch_count", "greaterOrEquals": 1}]}]});
    call(
        &ag,
        &format!("{url}/keys/model/create?api-version=7.6"),
        &admin,
        "POST",
        json!({"kty": "oct-HSM", "key_size": 256, "attributes": {"exportable": true},
               "release_policy": {"data": URL_SAFE_NO_PAD.encode(policy.to_string())}}),
    );

    let conn = Connection {
        url: url.clone(),
        token: Some(Zeroizing::new(admin.clone())),
        ca_cert: Some(data.join("ca.pem")),
        timeout: Duration::from_secs(30),
    };
    let client = Client::new(conn).unwrap();
    let list = std::fs::read(vectors.join(format!(
        "{SDK}/serialized_test_evidence/switch_evidence_ls10.json"
    )))
    .unwrap();
    let rim = std::fs::read(vectors.join(format!(
        "{SDK}/testdata/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml"
    )))
    .unwrap();
    let gpu = GpuAttachment::from_json(&list, vec![rim]).unwrap();
    assert_eq!(
        gpu.nonce,
        "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
    );

    let keys = EphemeralKeys::generate().unwrap();
    let attest = |gpu_nonce: Option<&str>| {
        let nonce = challenge(&client)?;
        let rd = RuntimeData::with_gpu_nonce(&keys, &m, &nonce, gpu_nonce)?;
        let ev = evidence::collect(TeeChoice::Sim, Path::new("/"), &rd.report_data(), &m)?;
        attest_with_gpu(&client, &ev, &rd, &nonce, Some(&gpu))
    };
    let valid = chrono::Utc::now()
        < chrono::DateTime::parse_from_rfc3339(RIM_VALID_UNTIL)
            .unwrap()
            .with_timezone(&chrono::Utc);
    if !valid {
        // The recorded RIM has expired: the device is refused, naming the check.
        let e = attest(Some(&gpu.nonce)).unwrap_err();
        assert!(e.to_string().contains("rim_expired"), "{e}");
        return;
    }

    // ATTACK: runtime data that does not name the devices' nonce: refused, naming the rule.
    match attest(None).unwrap_err() {
        EnclaveError::Refused { by, failed, .. } => {
            assert_eq!(by, RefusedBy::Attestation);
            assert!(
                failed
                    .iter()
                    .any(|f| f.rule == "gpu_nonce_binding" && f.claim_path == "gpus[0].nonce"),
                "{failed:?}"
            );
        }
        e => panic!("expected a refusal, got {e}"),
    }

    let att = attest(Some(&gpu.nonce)).unwrap();
    assert_eq!(att.claims["x-ms-runtime"]["gpu_nonce"], gpu.nonce);
    let d = &att.claims["x-enclava-gpus"][0];
    assert_eq!(d["submod"], "nvswitch0");
    assert_eq!(d["arch"], "LS10");
    assert_eq!(d["hwmodel"], "LS_10 A01 FSP BROM");
    assert_eq!(
        d["ueid"],
        "694931143880983876767046803400974855445978836716"
    );
    assert_eq!(d["vbios_version"], "96.10.55.00.01");
    assert_eq!(d["measres"], "success");
    assert_eq!(d["cc_mode"], "on");
    assert_eq!(att.claims["x-enclava-gpu"]["nvswitch_count"], 1);
    assert_eq!(
        att.claims["x-enclava-ear"]["submods"]["nvswitch0"]["ear.status"],
        "affirming"
    );

    // The model key is released to the runtime's wrapping key and unwrapped by it.
    let rk = release(&client, "model", &att, &keys).unwrap();
    assert_eq!(rk.material.len(), 32);
    drop(server);
}
