//! `enclava collateral fetch --nvidia-rim ID` against a loopback RIM service serving the real
//! vector RIM, then `enclava evidence verify --tee nvidia-gpu --cache DIR` offline: the RIM comes
//! from the cache by the id the report names.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

use base64::Engine;
use serde_json::Value;

const SDK: &str = "nvidia-gpu/attestation-sdk";
const SWITCH_RIM_ID: &str = "NV_SWITCH_BIOS_5612_0002_890_9610550001";
const NONCE_931D: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

/// Serves `{"id", "rim"}` for `/v1/rim/{id}`, 404 otherwise; returns the base URL.
fn rim_service(id: &'static str, xml: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                match reader.read_line(&mut h) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if h == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = if target == format!("/v1/rim/{id}") {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
                (200, serde_json::json!({"id": id, "rim": b64}).to_string())
            } else {
                (404, "not found".to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

fn enclava(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_enclava"))
        .args(args)
        .env_remove("ENCLAVA_COLLATERAL_CACHE")
        .output()
        .expect("run enclava");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn nvidia_rim_fetched_into_the_cache_then_used_offline() {
    let Some(v) = enclava_testvectors::dir() else {
        return;
    };
    let rim_path = v.join(format!(
        "{SDK}/testdata/switchVBIOSRim_NV_SWITCH_BIOS_5612_0002_890_9610550001.xml"
    ));
    let xml = std::fs::read(&rim_path).unwrap();
    let base = rim_service(SWITCH_RIM_ID, xml.clone());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().display().to_string();

    let (code, _, err) = enclava(&[
        "collateral",
        "fetch",
        "--nvidia-rim",
        SWITCH_RIM_ID,
        "--rim-url",
        &base,
        "--cache",
        &cache,
    ]);
    // The fetch checks the RIM at the current time; its signing path is valid until
    // 2027-11-02T23:59:59Z (attestation-sdk MANIFEST). After that, the fetch must refuse it.
    let expired = chrono::Utc::now()
        > "2027-11-02T23:59:59Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap();
    if expired {
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("RIM expired"), "{err}");
        return;
    }
    assert_eq!(code, 0, "{err}");
    let cached = dir.path().join(format!("nvidia/rim/{SWITCH_RIM_ID}.xml"));
    assert_eq!(std::fs::read(&cached).unwrap(), xml);

    // An id the service does not have: exit 3, nothing else cached.
    let (code, _, err) = enclava(&[
        "collateral",
        "fetch",
        "--nvidia-rim",
        "NV_SWITCH_BIOS_0000_0000_000_0000000000",
        "--rim-url",
        &base,
        "--cache",
        &cache,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("404"), "{err}");

    let report = v.join(format!("{SDK}/testdata/switchAttestationReport.txt"));
    let chain = v.join(format!("{SDK}/testdata/switchCertChain.txt"));
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "evidence",
            "verify",
            "--output",
            "json",
            "--tee",
            "nvidia-gpu",
            "--evidence",
            report.to_str().unwrap(),
            "--certs",
            chain.to_str().unwrap(),
            "--nonce",
            NONCE_931D,
            "--at",
            "2026-08-01T00:00:00Z",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = enclava(&args);
        (
            code,
            serde_json::from_str::<Value>(&out).unwrap_or(Value::Null),
            err,
        )
    };
    // Offline with the cache: NVSwitch reports name no RIM id (no project/SKU fields), so the
    // id is given; the RIM is taken from the cache.
    let (code, out, err) = verify(&["--cache", &cache]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out["claims"]["measres"], "not_compared");
    let (code, out, err) = verify(&["--cache", &cache, "--rim-id", SWITCH_RIM_ID]);
    assert_eq!(code, 0, "{out} {err}");
    let c = &out["claims"];
    assert_eq!(c["device"], "switch");
    assert_eq!(c["measres"], "success");
    assert_eq!(c["rims"][0]["kind"], "bios");
    assert_eq!(c["rims"][0]["version"], "96.10.55.00.01");
    assert_eq!(c["revocation"]["checked"], false);
    assert_eq!(c["revocation"]["status"], "not_checked");
    // Without the cache: nothing compared.
    let (code, out, _) = verify(&[]);
    assert_eq!(code, 0);
    assert_eq!(out["claims"]["measres"], "not_compared");
    assert_eq!(out["claims"]["revocation"]["checked"], false);
    // An empty cache: the missing RIM is named with the command that fetches it (exit 2).
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = verify(&[
        "--cache",
        &empty.path().display().to_string(),
        "--rim-id",
        SWITCH_RIM_ID,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("--nvidia-rim {SWITCH_RIM_ID}")),
        "{err}"
    );
    // A stapled OCSP response that is not DER OCSP for any of the chains is ignored: still
    // verified, still not checked.
    let junk = dir.path().join("junk.der");
    std::fs::write(&junk, b"\x30\x03\x0a\x01\x00").unwrap();
    let (code, out, err) = verify(&[
        "--cache",
        &cache,
        "--rim-id",
        SWITCH_RIM_ID,
        "--ocsp",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out["claims"]["revocation"]["status"], "not_checked");
    assert_eq!(out["claims"]["revocation"]["chains"][0]["chain"], "device");
}
