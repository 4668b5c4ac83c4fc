//! Normalized claims per TEE, built from JSON (the serialized form of `enclava_evidence::Claims`).

use chrono::{DateTime, Utc};
use enclava_evidence::Claims;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const RUNTIME_JSON: &[u8] =
    br#"{"keys":[{"kid":"TpmEphemeralEncryptionKey","kty":"RSA","key_ops":["encrypt"],"n":"sXch","e":"AQAB"}],"client-payload":{"nonce":"abc"}}"#;
pub const INIT_JSON: &[u8] = br#"{"ccePolicy":"cGFja2FnZQ"}"#;

pub fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_750_000_000, 0).unwrap_or_default()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// report_data carrying SHA-256(data) then 32 zero bytes.
pub fn report_data_for(data: &[u8]) -> String {
    format!("{}{}", sha256_hex(data), "00".repeat(32))
}

pub fn claims(v: Value) -> Claims {
    match serde_json::from_value(v) {
        Ok(c) => c,
        Err(e) => panic!("fixture does not deserialize into Claims: {e}"),
    }
}

fn tcb(bootloader: u8, tee: u8, snp: u8, microcode: u8) -> Value {
    let raw = [bootloader, tee, 0, 0, 0, 0, snp, microcode];
    json!({"raw": hex::encode(raw), "bootloader": bootloader, "tee": tee, "snp": snp,
           "microcode": microcode})
}

pub fn snp_section(debug: bool) -> Value {
    let policy_raw: u64 = (1 << 16) | (1 << 17) | if debug { 1 << 19 } else { 0 };
    json!({
        "version": 3,
        "product": "Milan",
        "signing_key": "vcek",
        "chip_id": "cc".repeat(64),
        "reported_tcb": tcb(3, 0, 8, 115),
        "committed_tcb": tcb(3, 0, 8, 115),
        "current_tcb": tcb(3, 0, 8, 115),
        "launch_tcb": tcb(2, 0, 7, 110),
        "policy": {"raw": policy_raw, "abi_minor": 0, "abi_major": 0, "smt": true,
                   "migrate_ma": false, "debug": debug, "single_socket": false,
                   "cxl_allow": false, "mem_aes_256_xts": false, "rapl_dis": false,
                   "ciphertext_hiding": false, "page_swap_disable": false},
        "platform_info": {"raw": 1, "smt_en": true, "tsme_en": false, "ecc_en": false,
                          "rapl_dis": false, "ciphertext_hiding_en": false,
                          "alias_check_complete": false},
        "vmpl": 0,
        "guest_svn": 2,
        "family_id": format!("01{}", "00".repeat(15)),
        "image_id": format!("02{}", "00".repeat(15)),
        "host_data": sha256_hex(INIT_JSON),
        "id_key_digest": "11".repeat(48),
        "author_key_digest": "22".repeat(48),
        "author_key_en": false,
        "mask_chip_key": false,
        "report_id": "33".repeat(32),
        "report_id_ma": "ff".repeat(32),
        "current_version": "1.55.21",
        "committed_version": "1.55.21",
        "cpuid": {"family": 25, "model": 1, "stepping": 1},
        "signer_cert_sha256": "44".repeat(32)
    })
}

pub fn snp(debug: bool) -> Claims {
    claims(json!({
        "tee": "snp",
        "debug": debug,
        "measurement": "aa".repeat(48),
        "report_data": report_data_for(RUNTIME_JSON),
        "snp": snp_section(debug),
    }))
}

pub fn tdx_section(debug: bool) -> Value {
    // TD attributes: SEPT_VE_DISABLE (bit 28), DEBUG (bit 0) when asked; little endian.
    let attrs: u64 = (1 << 28) | u64::from(debug);
    json!({
        "quote_version": 4,
        "body_type": 2,
        "tdx_version": "1.0",
        "mr_td": "a1".repeat(48),
        "rtmr0": "b0".repeat(48),
        "rtmr1": "b1".repeat(48),
        "rtmr2": "b2".repeat(48),
        "rtmr3": "00".repeat(48),
        "mr_config_id": "00".repeat(48),
        "mr_owner": "0e".repeat(48),
        "mr_owner_config": "0c".repeat(48),
        "td_attributes": {"debug": debug, "sept_ve_disable": true, "pks": false, "kl": false,
                          "perfmon": false, "raw": hex::encode(attrs.to_le_bytes())},
        "xfam": "e718060000000000",
        "mr_seam": "5e".repeat(48),
        "mr_signer_seam": "00".repeat(48),
        "seam_attributes": "0000000000000000",
        "tee_tcb_svn": "03010200000000000000000000000000",
        "qe_svn": 8,
        "pce_svn": 13,
        "fmspc": "00806f050000",
        "pce_id": "0000",
        "platform_tcb_status": "UpToDate",
        "tcb_date": "2024-03-13T00:00:00Z",
        "tcb_evaluation_data_number": 17
    })
}

pub fn tdx(debug: bool, tcb_status: &str) -> Claims {
    claims(json!({
        "tee": "tdx",
        "debug": debug,
        "measurement": "a1".repeat(48),
        "report_data": report_data_for(RUNTIME_JSON),
        "tcb_status": tcb_status,
        "advisory_ids": ["INTEL-SA-00837"],
        "tdx": tdx_section(debug),
    }))
}

pub const SGX_RUNTIME: &[u8] = b"\x04binary enclave held data";

pub fn sgx(debug: bool) -> Claims {
    claims(json!({
        "tee": "sgx",
        "debug": debug,
        "measurement": "e1".repeat(32),
        "report_data": report_data_for(SGX_RUNTIME),
        "tcb_status": "SWHardeningNeeded",
        "advisory_ids": ["INTEL-SA-00615", "INTEL-SA-00657"],
        "sgx": {
            "quote_version": 3,
            "mr_enclave": "e1".repeat(32),
            "mr_signer": "51".repeat(32),
            "isv_prod_id": 7,
            "isv_svn": 3,
            "config_id": format!("{}{}", sha256_hex(INIT_JSON), "00".repeat(32)),
            "config_svn": 2,
            "isv_ext_prod_id": "e0".repeat(16),
            "isv_family_id": "f0".repeat(16),
            "cpu_svn": "0f".repeat(16),
            "misc_select": 0,
            "attributes": {"debug": debug, "mode64bit": true, "provision_key": false,
                           "einittoken_key": false, "kss": false,
                           "raw": format!("0{}{}", if debug { "6" } else { "4" }, "00".repeat(15))},
            "qe_svn": 8,
            "pce_svn": 13,
            "fmspc": "00906ed50000",
            "pce_id": "0000",
            "platform_tcb_status": "SWHardeningNeeded"
        }
    }))
}

pub fn hcl_runtime() -> Value {
    json!({
        "keys": [
            {"kid": "HCLAkPub", "kty": "RSA", "key_ops": ["sign"], "n": "q1", "e": "AQAB"},
            {"kid": "HCLEkPub", "kty": "RSA", "key_ops": ["encrypt"], "n": "q2", "e": "AQAB"}
        ],
        "vm-configuration": {"console-enabled": true, "secure-boot": true,
                             "tpm-enabled": true, "vmUniqueId": "6A3F1D4C-0000-4C4C-8A8A-000000000001"},
        "user-data": "00".repeat(64)
    })
}

/// Azure CVM claims; `hw` is the nested hardware object; the TPM nonce is SHA-256(RUNTIME_JSON).
pub fn azure(tee: &str, debug: bool, tcb_status: Option<&str>, hw: Value) -> Claims {
    let rt = hcl_runtime();
    let mut v = json!({
        "tee": tee,
        "debug": debug,
        "measurement": "ab".repeat(48),
        "report_data": report_data_for(b"hcl variable data"),
        "azure": {
            "pcrs": {"0": "00".repeat(32), "1": "01".repeat(32), "10": "0a".repeat(32),
                     "2": "02".repeat(32)},
            "nonce": sha256_hex(RUNTIME_JSON),
            "runtime_data": rt,
            "vm_configuration": rt["vm-configuration"].clone(),
            "user_data": "00".repeat(64),
            "ak_pub": rt["keys"][0].clone(),
            "hcl_version": 2,
            "hardware": hw,
        }
    });
    if let Some(s) = tcb_status {
        v["tcb_status"] = json!(s);
    }
    claims(v)
}

/// Real simulated evidence, verified by enclava-evidence.
pub fn sim(report_data: &[u8; 64]) -> Claims {
    let ev = enclava_evidence::sim::generate_with_workload(&[7u8; 48], report_data, "demo", now());
    match enclava_evidence::sim::verify(&ev, now()) {
        Ok(c) => c,
        Err(e) => panic!("sim evidence does not verify: {e}"),
    }
}

pub fn report_data_bytes(data: &[u8]) -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&Sha256::digest(data));
    rd
}
