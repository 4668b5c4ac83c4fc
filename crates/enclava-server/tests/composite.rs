//! Composite CPU + GPU attestation over real HTTPS: CPU evidence (simulated, and a real SEV-SNP
//! vector) with real NVIDIA H100 evidence and RIMs through the attestation routes, the token's
//! per-device claims and EAR submodules, the denials (nonce not bound, CC mode not established or
//! stated off, a measurement mismatch naming the index), and a key release policy on GPU claims.
//!
//! GPU vector: nvtrust's complete offline set (`nvidia-gpu/nvtrust/attestationReport.txt`,
//! `gpuAkCertChain.txt`, `Driver_RIM_test_no_gpu.swidtag`, `1010_0200_882_96005E0001_test_no_gpu`),
//! driver 545.00, VBIOS 96.00.5E.00.01, nonce 4cff7f53..., appraised at 2025-06-01 (inside the
//! RIM signers' window and the SNP vectors' time).

mod common;

use std::path::PathBuf;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use common::{Resp, TestServer, snp_without_revocation, start_with};
use enclava_server::PartialConfig;
use enclava_server::attest::AttestationSettings;
use enclava_token::{Expectations, Jwks};
use serde_json::{Value, json};
use sha2::Digest;

const AT: &str = "2025-06-01T00:00:00Z";
const GPU_NONCE: &str = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e";
const NV: &str = "nvidia-gpu/nvtrust";
const DRIVER_RIM: &str = "nvidia-gpu/nvtrust/Driver_RIM_test_no_gpu.swidtag";
const VBIOS_RIM: &str = "nvidia-gpu/nvtrust/1010_0200_882_96005E0001_test_no_gpu.swidtag";
const DRIVER_ID: &str = "NV_GPU_DRIVER_GH100_545.00";
const VBIOS_ID: &str = "NV_GPU_VBIOS_1010_0200_882_96005E0001";

fn vectors() -> Option<PathBuf> {
    enclava_testvectors::dir()
}

fn read(rel: &str) -> Vec<u8> {
    let p = vectors().expect("vectors").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn b64u(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// The device list NVIDIA's SDKs produce, for the nvtrust GPU, with an optional stated CC mode.
fn gpu_list(cc_mode: Option<&str>) -> Value {
    let report = hex::decode(
        String::from_utf8(read(&format!("{NV}/attestationReport.txt")))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let chain = read(&format!("{NV}/gpuAkCertChain.txt"));
    let mut e = json!({
        "arch": "HOPPER",
        "nonce": GPU_NONCE,
        "evidence": STANDARD.encode(report),
        "certificate": STANDARD.encode(chain),
    });
    if let Some(m) = cc_mode {
        e["cc_mode"] = json!(m);
    }
    json!([e])
}

/// A dev server verifying as of [`AT`], with the nvtrust RIMs in a RIM directory named by RIM id
/// (a temporary copy; the vectors stay where they are).
fn server(rim_dir: bool) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rims = tempfile::tempdir().unwrap();
    std::fs::write(
        rims.path().join(format!("{DRIVER_ID}.xml")),
        read(DRIVER_RIM),
    )
    .unwrap();
    std::fs::write(
        rims.path().join(format!("{VBIOS_ID}.swidtag")),
        read(VBIOS_RIM),
    )
    .unwrap();
    let cfg = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        dev: Some(true),
        attestation: Some(AttestationSettings {
            verification_time: Some(AT.into()),
            nvidia_rim_dir: rim_dir.then(|| rims.path().to_path_buf()),
            ..Default::default()
        }),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut s = start_with(cfg);
    s.dir = dir;
    (s, rims)
}

fn rego(deny_rules: &str) -> String {
    format!(
        "package enclava.appraisal\n\nimport rego.v1\n\ndefault allow := false\n\nallow if count(deny) == 0\n\n{deny_rules}\n"
    )
}

/// Admit simulated CPU evidence (the default sim policy denies it).
fn allow_sim(s: &TestServer) {
    let policy = rego(
        r#"deny contains {"rule": "tee", "path": "claims.tee", "expected": "sim", "found": input.claims.tee} if input.claims.tee != "sim""#,
    );
    let r = s.call(
        "PUT",
        "/policies/sim",
        Some(&s.admin_token()),
        Some(json!({"policy": policy}).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A native sim request whose runtime data is `runtime` (bound into report_data) plus `extra`.
fn sim_request(runtime: &Value, extra: Value) -> Value {
    let rd = runtime.to_string();
    let mut report_data = [0u8; 64];
    report_data[..32].copy_from_slice(&sha2::Sha256::digest(rd.as_bytes()));
    let ev = enclava_evidence::sim::generate(&[7u8; 48], &report_data, t(AT));
    let mut b = json!({
        "tee": "sim",
        "evidence": b64u(&ev),
        "runtime_data": {"data": b64u(rd.as_bytes()), "dataType": "JSON"},
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
        b.extend(e);
    }
    b
}

fn verify(s: &TestServer, token: &str) -> serde_json::Map<String, Value> {
    let r = s.get("/certs/", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let jwks: Jwks = serde_json::from_value(r.body.clone()).unwrap();
    enclava_token::verify(
        token,
        &jwks,
        &Expectations::new(s.server.base_url.clone(), t(AT)),
    )
    .unwrap_or_else(|e| panic!("token does not verify: {e}"))
    .claims
}

fn failed(r: &Resp) -> Vec<Value> {
    r.body["error"]["failed"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn assert_denied_only(r: &Resp, rule: &str, path: &str) -> Value {
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "attestation_denied", "{}", r.text);
    let f = failed(r);
    assert_eq!(f.len(), 1, "expected only {rule}: {}", r.text);
    assert_eq!(f[0]["rule"], rule, "{}", r.text);
    assert_eq!(f[0]["claim_path"], path, "{}", r.text);
    f[0].clone()
}

#[test]
fn sim_cpu_and_real_gpu_attest_as_one_token_with_device_claims() {
    if vectors().is_none() {
        return;
    }
    let (s, _rims) = server(false);
    allow_sim(&s);
    // The runtime data names the nonce the GPU report was taken with (binding form 2); the RIMs
    // come with the request.
    let body = sim_request(
        &json!({"gpu_nonce": GPU_NONCE}),
        json!({"gpuEvidence": gpu_list(None),
               "gpuRims": [STANDARD.encode(read(DRIVER_RIM)), String::from_utf8(read(VBIOS_RIM)).unwrap()]}),
    );
    let r = s.post("/attest/native", None, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let c = verify(&s, r.body["token"].as_str().unwrap());
    assert_eq!(c["x-enclava-tee"], "sim");
    let gpus = c["x-enclava-gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 1);
    let g = &gpus[0];
    assert_eq!(g["submod"], "gpu0");
    assert_eq!(g["device"], "gpu");
    assert_eq!(g["arch"], "HOPPER");
    assert_eq!(g["hwmodel"], "GH100 A01 GSP BROM");
    assert_eq!(g["driver_version"], "545.00");
    assert_eq!(g["driver_version_code"], 545_000_000);
    assert_eq!(g["vbios_version"], "96.00.5E.00.01");
    assert_eq!(g["oemid"], "5703");
    assert_eq!(g["nonce"], GPU_NONCE);
    assert_eq!(g["nonce_bound"], true);
    assert_eq!(g["measres"], "success");
    assert_eq!(g["cc_mode"], "on");
    assert_eq!(g["revocation_checked"], false);
    assert_eq!(g["nvdec0_status"], "disabled");
    // 32 compared + index 35 skipped (NVDEC0 disabled).
    assert_eq!(g["measurements_compared"], 33);
    assert_eq!(g["rim_ids"], json!([DRIVER_ID, VBIOS_ID]));
    let kinds: Vec<&str> = g["rims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["driver", "vbios"]);
    // The leaf serial as a decimal (NVIDIA's ueid).
    let serial = hex::decode("50948c723fc935c7bd14b7c22833dfbe1dfd1145").unwrap();
    assert_eq!(g["ueid"], decimal(&serial));
    let sum = &c["x-enclava-gpu"];
    assert_eq!(sum["gpu_count"], 1);
    assert_eq!(sum["nvswitch_count"], 0);
    assert_eq!(sum["cc_mode"], "on");
    assert_eq!(sum["all_nonces_bound"], true);
    assert_eq!(sum["min_driver_version"], "545.00");
    assert_eq!(sum["min_driver_version_code"], 545_000_000);
    assert_eq!(sum["measres"], "success");
    assert_eq!(sum["revocation_checked"], false);
    // EAR: one submodule per device.
    let sub = c["x-enclava-ear"]["submods"].as_object().unwrap();
    let names: Vec<&str> = sub.keys().map(String::as_str).collect();
    assert_eq!(names, ["cpu0", "gpu0"], "{sub:?}");
    assert_eq!(sub["gpu0"]["ear.status"], "affirming");
    assert_eq!(
        sub["gpu0"]["ear.trustworthiness-vector"]["configuration"],
        2
    );
    assert_eq!(sub["gpu0"]["x-enclava-nvidia"]["cc_mode"], "on");
    // The simulator is contraindicated in its own submodule, whatever the GPU says.
    assert_eq!(sub["cpu0"]["ear.status"], "contraindicated");

    // Malformed members are client errors naming the member, never ignored.
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &json!({"gpu_nonce": GPU_NONCE}),
            json!({"gpuEvidence": "not base64 !"}),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("gpuEvidence"), "{}", r.text);
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(&json!({}), json!({"gpuRims": ["<x/>"]})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("gpuRims"), "{}", r.text);
}

fn decimal(be: &[u8]) -> String {
    // Big-endian bytes to decimal by repeated division.
    let mut n: Vec<u8> = be.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(char::from(b'0' + rem as u8));
    }
    digits.iter().rev().collect()
}

#[test]
fn rims_from_the_server_rim_directory_and_the_trustee_nonce_form() {
    if vectors().is_none() {
        return;
    }
    let (s, _rims) = server(true);
    allow_sim(&s);
    // No RIMs in the request: both come from attestation.nvidia_rim_dir by RIM id.
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &json!({"gpu_nonce": GPU_NONCE}),
            json!({"gpuEvidence": gpu_list(None)}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let c = verify(&s, r.body["token"].as_str().unwrap());
    assert_eq!(c["x-enclava-gpus"][0]["measres"], "success");
    assert_eq!(c["x-enclava-gpus"][0]["cc_mode"], "on");
    // The evidence as base64 of the JSON list works the same.
    let list = STANDARD.encode(gpu_list(None).to_string());
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &json!({"gpu_nonce": GPU_NONCE}),
            json!({"gpuEvidence": list}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // ATTACK: the GPU report is not bound to this CPU evidence (its runtime data names another
    // nonce, or none): denied, naming the rule, the expected binding and the report's nonce.
    let other = "00".repeat(32);
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &json!({"gpu_nonce": other}),
            json!({"gpuEvidence": gpu_list(None)}),
        ),
    );
    let f = assert_denied_only(&r, "gpu_nonce_binding", "gpus[0].nonce");
    assert_eq!(f["found"], GPU_NONCE, "{}", r.text);
    assert!(
        f["expected"].as_str().unwrap().contains(&other),
        "{}",
        r.text
    );
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(&json!({"keys": []}), json!({"gpuEvidence": gpu_list(None)})),
    );
    assert_denied_only(&r, "gpu_nonce_binding", "gpus[0].nonce");
}

#[test]
fn gpu_not_in_cc_mode_or_with_a_mismatching_measurement_is_denied() {
    if vectors().is_none() {
        return;
    }
    let (s, _rims) = server(false);
    allow_sim(&s);
    let rt = json!({"gpu_nonce": GPU_NONCE});
    let both = json!([
        STANDARD.encode(read(DRIVER_RIM)),
        STANDARD.encode(read(VBIOS_RIM))
    ]);

    // ATTACK: the attester itself reports the GPU in dev-tools mode (NVML): denied, although the
    // evidence verifies.
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &rt,
            json!({"gpuEvidence": gpu_list(Some("devtools")), "gpuRims": both}),
        ),
    );
    let f = assert_denied_only(&r, "gpu_cc_mode", "gpus[0].cc_mode");
    assert!(
        f["found"].as_str().unwrap().starts_with("devtools"),
        "{}",
        r.text
    );

    // ATTACK: CC mode cannot be established (only the VBIOS RIM: the driver's measurements were
    // not compared, and the report has no signed CC-mode field): denied, saying why.
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &rt,
            json!({"gpuEvidence": gpu_list(None), "gpuRims": [STANDARD.encode(read(VBIOS_RIM))]}),
        ),
    );
    let f = assert_denied_only(&r, "gpu_cc_mode", "gpus[0].cc_mode");
    let found = f["found"].as_str().unwrap();
    assert!(
        found.starts_with("unknown: measurements partial"),
        "{found}"
    );
    // ... and with no RIM at all.
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(&rt, json!({"gpuEvidence": gpu_list(None)})),
    );
    let f = assert_denied_only(&r, "gpu_cc_mode", "gpus[0].cc_mode");
    assert!(
        f["found"].as_str().unwrap().contains("not_compared"),
        "{}",
        r.text
    );

    // ATTACK: firmware that is not NVIDIA's golden image for this RIM: the production VBIOS RIM of
    // the same version differs at indices 1, 2, 3 and 9. Refused, naming the check and index.
    let prod = STANDARD.encode(read(&format!("{NV}/1010_0200_882_96005E0001_PROD.swidtag")));
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &rt,
            json!({"gpuEvidence": gpu_list(None), "gpuRims": [STANDARD.encode(read(DRIVER_RIM)), prod]}),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "evidence_invalid", "{}", r.text);
    assert_eq!(r.body["error"]["failed_check"], "measurement", "{}", r.text);
    let msg = r.body["error"]["message"]
        .as_str()
        .unwrap_or(&r.text)
        .to_string();
    assert!(
        msg.contains("GPU evidence entry 0")
            && msg.contains("measurement index 1 (vbios RIM)")
            && msg.contains("mismatching indices: [1,2,3,9]"),
        "{}",
        r.text
    );

    // ATTACK: a RIM altered after signing (the SDK's "incorrect signature" sample is for another
    // version, so use ours with one digit of the signature value changed).
    let mut bad = String::from_utf8(read(DRIVER_RIM)).unwrap();
    let sv = bad.find("SignatureValue>").unwrap() + "SignatureValue>".len();
    let ch = bad.as_bytes()[sv + 10];
    let repl = if ch == b'A' { "B" } else { "A" };
    bad.replace_range(sv + 10..sv + 11, repl);
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(
            &rt,
            json!({"gpuEvidence": gpu_list(None), "gpuRims": [bad, STANDARD.encode(read(VBIOS_RIM))]}),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["failed_check"], "rim_signature",
        "{}",
        r.text
    );

    // ATTACK: a GPU report whose signature does not verify (one byte of it flipped): refused
    // with report_signature.
    let mut list = gpu_list(None);
    let mut report = STANDARD
        .decode(list[0]["evidence"].as_str().unwrap())
        .unwrap();
    let last = report.len() - 1;
    report[last] ^= 1;
    list[0]["evidence"] = json!(STANDARD.encode(&report));
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(&rt, json!({"gpuEvidence": list, "gpuRims": both})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["failed_check"], "report_signature",
        "{}",
        r.text
    );
}

#[test]
fn real_snp_and_real_gpu_through_the_maa_route_as_far_as_the_binding_goes() {
    if vectors().is_none() {
        return;
    }
    let (s, _rims) = server(true);
    // The real SNP vectors come without AMD CRLs: admit them without revocation (as attest.rs).
    let r = common::put_policy(&s, &s.admin_token(), &snp_without_revocation());
    assert_eq!(r.status, 200, "{}", r.text);
    let report = read("sev-snp/trustee/test-report.bin");
    let mut pem = String::new();
    let vcek = read("sev-snp/trustee/test-vcek.der");
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in STANDARD.encode(&vcek).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem.push_str(
        &String::from_utf8(read("sev-snp/google-go-sev-guest/ask_ark_milan.pem")).unwrap(),
    );
    let inner = json!({"SnpReport": b64u(&report), "VcekCertChain": b64u(pem.as_bytes())});
    let snp_only = json!({"report": b64u(inner.to_string().as_bytes())});
    let r = s.post("/attest/SevSnpVm?api-version=2022-08-01", None, &snp_only);
    assert_eq!(r.status, 200, "the SNP vector alone attests: {}", r.text);

    // SNP + the real GPU (RIMs from the RIM directory). Both verify; the vector's fixed
    // report_data cannot commit to this GPU's nonce, so the binding is what refuses it.
    let mut with_gpu = snp_only.clone();
    with_gpu["gpuEvidence"] = gpu_list(None);
    let r = s.post("/attest/SevSnpVm?api-version=2022-08-01", None, &with_gpu);
    let f = assert_denied_only(&r, "gpu_nonce_binding", "gpus[0].nonce");
    assert_eq!(f["found"], GPU_NONCE);
    // A GPU device that does not verify (another GPU's chain) is refused before any policy, on
    // the MAA route too.
    let mut broken = with_gpu.clone();
    let mut list = gpu_list(None);
    list[0]["certificate"] = json!(STANDARD.encode(read("nvidia-gpu/nvtrust/hopperCertChain.txt")));
    broken["gpuEvidence"] = list;
    let r = s.post("/attest/SevSnpVm?api-version=2022-08-01", None, &broken);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["failed_check"], "report_signature",
        "{}",
        r.text
    );
    // With runtime data naming the GPU nonce, the GPU side binds and the CPU report is what
    // refuses the runtime data: the two bindings are checked independently.
    with_gpu["runtimeData"] = json!({"data": b64u(json!({"gpu_nonce": GPU_NONCE}).to_string().as_bytes()), "dataType": "JSON"});
    let r = s.post("/attest/SevSnpVm?api-version=2022-08-01", None, &with_gpu);
    assert_denied_only(&r, "runtime_data_binding", "claims.report_data");
}

// ------------------------------------------------------------------------------------------
// Key release on GPU claims

struct Holder {
    pkcs8: Vec<u8>,
    n: Vec<u8>,
    e: Vec<u8>,
}

fn holder() -> Holder {
    let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pk = aws_lc_rs::signature::KeyPair::public_key(&pair);
    let (n, e) = (
        pk.modulus().big_endian_without_leading_zero().to_vec(),
        pk.exponent().big_endian_without_leading_zero().to_vec(),
    );
    let der: aws_lc_rs::encoding::Pkcs8V1Der = pair.as_der().unwrap();
    Holder {
        pkcs8: der.as_ref().to_vec(),
        n,
        e,
    }
}

fn unwrap_key_hsm(h: &Holder, key_hsm: &str) -> Vec<u8> {
    let kh: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(key_hsm).unwrap()).unwrap();
    let ct = URL_SAFE_NO_PAD
        .decode(kh["ciphertext"].as_str().unwrap())
        .unwrap();
    let (head, tail) = ct.split_at(256);
    let sk =
        OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&h.pkcs8).unwrap()).unwrap();
    let mut aes = vec![0u8; 256];
    let aes = sk
        .decrypt(&OAEP_SHA1_MGF1SHA1, head, &mut aes, None)
        .unwrap()
        .to_vec();
    let kek = AesKek::new(&AES_256, &aes).unwrap();
    let mut out = vec![0u8; tail.len()];
    kek.unwrap_with_padding(tail, &mut out).unwrap().to_vec()
}

#[test]
fn release_policy_on_gpu_claims_is_enforced() {
    if vectors().is_none() {
        return;
    }
    let (s, _rims) = server(true);
    allow_sim(&s);
    let admin = s.admin_token();
    let iss = s.server.base_url.clone();
    let policy = |min_code: u64| {
        let p = json!({"version": "1.0.0", "anyOf": [{"authority": iss, "allOf": [
            {"claim": "x-enclava-gpu.cc_mode", "equals": "on"},
            {"claim": "x-enclava-gpu.gpu_count", "greaterOrEquals": 1},
            {"claim": "x-enclava-gpu.min_driver_version_code", "greaterOrEquals": min_code}]}]});
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap())
    };
    let model_key = [0x5au8; 32];
    for (name, min) in [("model-545", 545_000_000u64), ("model-550", 550_000_000)] {
        let r = s.put(
            &format!("/keys/{name}?api-version=7.6"),
            Some(&admin),
            &json!({"key": {"kty": "oct-HSM", "k": b64u(&model_key)},
                    "attributes": {"exportable": true}, "release_policy": {"data": policy(min)}}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let (id, secret) = s.service_principal(&admin, "inference");
    s.assign(&admin, &id, "ReleaseUser", "/");
    let user = s.token_for(&id, &secret);

    // The CPU+GPU token, with the workload's wrapping key in its runtime data.
    let h = holder();
    let rt = json!({"gpu_nonce": GPU_NONCE, "keys": [{
        "kty": "RSA", "kid": "inference-1", "key_ops": ["encrypt"], "n": b64u(&h.n), "e": b64u(&h.e)}]});
    let r = s.post(
        "/attest/native",
        None,
        &sim_request(&rt, json!({"gpuEvidence": gpu_list(None)})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_string();

    // Driver 545.00 meets "at least 545": released, and the holder unwraps the model key.
    let r = s.post(
        "/keys/model-545//release?api-version=7.6",
        Some(&user),
        &json!({"target": token}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let jws = r.body["value"].as_str().unwrap();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jws.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let key_hsm = payload["response"]["key"]["key"]["key_hsm"]
        .as_str()
        .unwrap();
    assert_eq!(unwrap_key_hsm(&h, key_hsm), model_key);

    // "At least 550": refused, naming the GPU claim, what was required and what was found.
    let r = s.post(
        "/keys/model-550//release?api-version=7.6",
        Some(&user),
        &json!({"target": token}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.text.contains("x-enclava-gpu.min_driver_version_code")
            && r.text.contains("550000000")
            && r.text.contains("545000000"),
        "{}",
        r.text
    );
}
