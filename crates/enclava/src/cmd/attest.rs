//! `enclava attest`: send evidence to an Enclava (or MAA-compatible) attestation service and print
//! the attestation token and its claims.
//!
//! The native route (`POST /attest/native`) takes every TEE; `--maa` uses the MAA-shaped routes
//! (`SevSnpVm`, `TdxVm`, `SgxEnclave`), which carry no certificates (SNP: the VCEK chain goes inside
//! the report JSON) and no collateral (the server's collateral directory is used).
//!
//! `--simulate MEASUREMENT_HEX` (with `--tee sim`) generates simulated evidence on the spot whose
//! report data is SHA-256(runtime data) (development only: no default policy accepts it).
//! `--challenge` asks the server for a single-use challenge and, with `--simulate`, puts it into
//! the runtime data (`{"nonce": CHALLENGE, ...}`) so the evidence binds it.
//!
//! `--gpu-evidence FILE` attaches NVIDIA GPU / NVSwitch evidence (the JSON device list NVIDIA's
//! SDKs produce) for composite CPU+GPU attestation, with `--gpu-rim FILE` RIMs (else the server's
//! RIM directory is used) and `--gpu-ocsp FILE` stapled OCSP responses (DER; else only the
//! server's collateral cache is used). With `--simulate`, the list's nonce goes into the runtime data as
//! `gpu_nonce`, which binds the GPU reports to the simulated CPU evidence; `--sim-time` dates the
//! simulated evidence (for a development server verifying on a moved clock).
//!
//! Exit codes: 0 token issued, 1 denied or refused (the error names every failed rule), 2 bad
//! arguments or input, 3 server or network failure.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::client::{CliResult, Client, ClientOpts, finish, print_json, read_input, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataType {
    Json,
    Binary,
}

#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// The TEE: snp, tdx, sgx, azure-snp, azure-tdx, sim.
    #[arg(long)]
    pub tee: String,
    /// The evidence file (report, quote, Azure evidence JSON, simulated evidence; binary or hex).
    #[arg(long, required_unless_present = "simulate")]
    pub evidence: Option<PathBuf>,
    /// Certificates (PEM or DER; VCEK/VLEK + ASK + ARK for SNP). May be repeated.
    #[arg(long)]
    pub certs: Vec<PathBuf>,
    /// DCAP collateral: a dcap-qvl collateral JSON file (TDX/SGX, native route only).
    #[arg(long)]
    pub collateral: Option<PathBuf>,
    /// Runtime data file (bound to the evidence's report data by SHA-256).
    #[arg(long)]
    pub runtime_data: Option<PathBuf>,
    /// How the runtime data is interpreted.
    #[arg(long, value_enum, default_value_t = DataType::Json)]
    pub runtime_data_type: DataType,
    /// Nonce echoed into the token (MAA routes) or a challenge issued by the server (native).
    #[arg(long, conflicts_with = "challenge")]
    pub nonce: Option<String>,
    /// Fetch a single-use challenge from the server and use it as the nonce.
    #[arg(long)]
    pub challenge: bool,
    /// Use the MAA-shaped route of the TEE instead of the native route.
    #[arg(long)]
    pub maa: bool,
    /// The reference-value scope (tenant / workload) to appraise against (default: the server's
    /// `default` scope); the token names it in `x-enclava-reference-scope`.
    #[arg(long)]
    pub scope: Option<String>,
    /// Generate simulated evidence with this 48-byte measurement (hex); --tee sim only.
    #[arg(long, value_name = "MEASUREMENT_HEX")]
    pub simulate: Option<String>,
    /// With --simulate: the simulated evidence's generation time (RFC 3339; default now), for a
    /// development server whose attestation.verification_time is moved.
    #[arg(long, requires = "simulate", value_name = "RFC3339")]
    pub sim_time: Option<String>,
    /// NVIDIA GPU / NVSwitch evidence to attest with the CPU evidence: the JSON device list
    /// NVIDIA's SDKs produce (`[{arch, nonce, evidence, certificate}]`).
    #[arg(long, value_name = "FILE")]
    pub gpu_evidence: Option<PathBuf>,
    /// A RIM (signed SWID tag) for the GPU evidence; may be repeated. Without one, the server's
    /// RIM directory is used.
    #[arg(long, value_name = "FILE", requires = "gpu_evidence")]
    pub gpu_rim: Vec<PathBuf>,
    /// A DER OCSP response for the GPU evidence's device or RIM chains (stapled as `gpuOcsp`);
    /// may be repeated. Without one, the server's collateral cache is used.
    #[arg(long, value_name = "FILE", requires = "gpu_evidence")]
    pub gpu_ocsp: Vec<PathBuf>,
    #[command(flatten)]
    pub client: ClientOpts,
}

pub fn run(args: AttestArgs) -> ExitCode {
    finish(attest(args))
}

fn read_evidence(path: &std::path::Path) -> CliResult<Vec<u8>> {
    let raw = read_input(path)?;
    let t = raw.trim_ascii();
    if !t.is_empty()
        && t.len() % 2 == 0
        && t.iter().all(u8::is_ascii_hexdigit)
        && let Ok(b) = hex::decode(t)
    {
        return Ok(b);
    }
    Ok(raw)
}

/// Certificates as one PEM text.
fn certs_pem(paths: &[PathBuf]) -> CliResult<String> {
    let mut out = String::new();
    for p in paths {
        let b = read_input(p)?;
        // Through the one PEM reader: PEM (explanatory text allowed) or DER, sent as clean PEM.
        let certs = enclava_evidence::pem::pem_or_der(&b, "CERTIFICATE")
            .map_err(|e| usage(format!("{}: {e}", p.display())))?;
        for der in certs {
            out.push_str(&enclava_evidence::pem::encode("CERTIFICATE", &der));
        }
    }
    Ok(out)
}

fn attest(args: AttestArgs) -> CliResult<()> {
    let client = Client::new(&args.client)?;
    let tee = args.tee.trim().to_ascii_lowercase();
    if !matches!(
        tee.as_str(),
        "snp" | "tdx" | "sgx" | "azure-snp" | "azure-tdx" | "sim"
    ) {
        return Err(usage(format!(
            "unknown --tee {tee:?}: expected snp, tdx, sgx, azure-snp, azure-tdx or sim"
        )));
    }
    let nonce = if args.challenge {
        let c = client.call("GET", "/challenge", &[], None)?;
        Some(
            c.get("nonce")
                .and_then(Value::as_str)
                .ok_or_else(|| usage("the server's challenge answer has no nonce"))?
                .to_string(),
        )
    } else {
        args.nonce.clone()
    };
    let mut runtime_data = match &args.runtime_data {
        Some(p) => Some(read_input(p)?),
        None => None,
    };
    let gpu = match &args.gpu_evidence {
        None => None,
        Some(p) => {
            let list: Value = serde_json::from_slice(&read_input(p)?).map_err(|e| {
                usage(format!(
                    "--gpu-evidence {}: expected the JSON device list: {e}",
                    p.display()
                ))
            })?;
            let nonce = list
                .as_array()
                .and_then(|a| a.first())
                .and_then(|e| e.get("nonce"))
                .and_then(Value::as_str)
                .map(|n| n.trim_start_matches("0x").to_ascii_lowercase())
                .ok_or_else(|| {
                    usage(format!(
                        "--gpu-evidence {}: expected a non-empty list whose entries carry a nonce",
                        p.display()
                    ))
                })?;
            let mut rims = Vec::new();
            for r in &args.gpu_rim {
                rims.push(base64::engine::general_purpose::STANDARD.encode(read_input(r)?));
            }
            let mut ocsp = Vec::new();
            for r in &args.gpu_ocsp {
                ocsp.push(base64::engine::general_purpose::STANDARD.encode(read_input(r)?));
            }
            Some(GpuMembers {
                list,
                nonce,
                rims,
                ocsp,
            })
        }
    };
    let evidence = match (&args.simulate, &args.evidence) {
        (Some(m), _) => {
            if tee != "sim" {
                return Err(usage("--simulate needs --tee sim"));
            }
            let m = hex::decode(m.trim())
                .ok()
                .and_then(|v| <[u8; 48]>::try_from(v).ok())
                .ok_or_else(|| usage("--simulate: expected 96 hex characters (48 bytes)"))?;
            if args.challenge || gpu.is_some() {
                // Bind the challenge ({"nonce": CHALLENGE}) and the GPU nonce ({"gpu_nonce":
                // HEX}): merged into JSON runtime data.
                let mut obj: Map<String, Value> = match &runtime_data {
                    Some(b) => match serde_json::from_slice(b) {
                        Ok(Value::Object(o)) => o,
                        _ => {
                            return Err(usage(
                                "--challenge / --gpu-evidence with --simulate need JSON object runtime data",
                            ));
                        }
                    },
                    None => Map::new(),
                };
                if args.challenge {
                    obj.insert("nonce".into(), json!(nonce));
                }
                if let Some(g) = &gpu {
                    obj.insert("gpu_nonce".into(), json!(g.nonce));
                }
                runtime_data = Some(Value::Object(obj).to_string().into_bytes());
            }
            let mut rd = [0u8; 64];
            if let Some(d) = &runtime_data {
                rd[..32].copy_from_slice(&sha2::Sha256::digest(d));
            }
            let at = match &args.sim_time {
                None => chrono::Utc::now(),
                Some(t) => chrono::DateTime::parse_from_rfc3339(t.trim())
                    .map_err(|_| {
                        usage(format!(
                            "--sim-time {t:?}: expected an RFC 3339 time such as 2025-06-01T00:00:00Z"
                        ))
                    })?
                    .with_timezone(&chrono::Utc),
            };
            enclava_evidence::sim::generate(&m, &rd, at)
        }
        (None, Some(p)) => read_evidence(p)?,
        (None, None) => return Err(usage("--evidence FILE (or --simulate) is required")),
    };
    let data_type = match args.runtime_data_type {
        DataType::Json => "JSON",
        DataType::Binary => "Binary",
    };
    let rd_json = runtime_data
        .as_ref()
        .map(|d| json!({"data": URL_SAFE_NO_PAD.encode(d), "dataType": data_type}));
    let (path, body) = if args.maa {
        let (route, body) = match tee.as_str() {
            "snp" => {
                let inner = json!({
                    "SnpReport": URL_SAFE_NO_PAD.encode(&evidence),
                    "VcekCertChain": URL_SAFE_NO_PAD.encode(certs_pem(&args.certs)?.as_bytes()),
                });
                (
                    "SevSnpVm",
                    json!({"report": URL_SAFE_NO_PAD.encode(inner.to_string().as_bytes())}),
                )
            }
            "tdx" => ("TdxVm", json!({"quote": URL_SAFE_NO_PAD.encode(&evidence)})),
            "sgx" => (
                "SgxEnclave",
                json!({"quote": URL_SAFE_NO_PAD.encode(&evidence)}),
            ),
            other => {
                return Err(usage(format!(
                    "--maa: no MAA route for {other} (use the native route)"
                )));
            }
        };
        if args.collateral.is_some() {
            return Err(usage(
                "--collateral: MAA routes carry no collateral (the server's collateral directory is used); drop --maa",
            ));
        }
        let mut body = body;
        if let Some(r) = rd_json {
            body["runtimeData"] = r;
        }
        attach_gpu(&mut body, gpu.as_ref());
        if let Some(n) = &nonce {
            body["nonce"] = json!(n);
        }
        (format!("/attest/{route}"), body)
    } else {
        let mut body = json!({"tee": tee, "evidence": URL_SAFE_NO_PAD.encode(&evidence)});
        if !args.certs.is_empty() {
            body["certs"] = json!(certs_pem(&args.certs)?);
        }
        if let Some(c) = &args.collateral {
            if c.is_dir() {
                return Err(usage(
                    "--collateral: the native route takes a dcap-qvl collateral JSON file, found a directory",
                ));
            }
            let v: Value = serde_json::from_slice(&read_input(c)?).map_err(|e| {
                usage(format!(
                    "--collateral {}: expected dcap-qvl collateral JSON: {e}",
                    c.display()
                ))
            })?;
            body["collateral"] = v;
        }
        if let Some(r) = rd_json {
            body["runtime_data"] = r;
        }
        if let Some(n) = &nonce {
            body["nonce"] = json!(n);
        }
        attach_gpu(&mut body, gpu.as_ref());
        ("/attest/native".to_string(), body)
    };
    let scope = args
        .scope
        .as_deref()
        .map(|s| super::reference::checked("scope", s))
        .transpose()?;
    let query: Vec<(&str, &str)> = scope.iter().map(|s| ("scope", s.as_str())).collect();
    let answer = client.call("POST", &path, &query, Some(&body))?;
    let token = answer
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| super::client::CliError::Transport("the answer carries no token".into()))?;
    let (header, claims) = decode(token);
    if client.json_output() {
        print_json(&json!({"token": token, "header": header, "claims": claims}));
    } else {
        println!("{token}");
        eprintln!("header: {header}");
        eprintln!(
            "claims: {}",
            serde_json::to_string_pretty(&claims).unwrap_or_default()
        );
    }
    Ok(())
}

/// What `--gpu-evidence`, `--gpu-rim` and `--gpu-ocsp` add to a request.
struct GpuMembers {
    list: Value,
    /// The devices' nonce (hex), for the simulated runtime data.
    nonce: String,
    rims: Vec<String>,
    ocsp: Vec<String>,
}

/// `gpuEvidence` / `gpuRims` / `gpuOcsp` members (the same on the MAA and the native routes).
fn attach_gpu(body: &mut Value, gpu: Option<&GpuMembers>) {
    if let Some(g) = gpu {
        body["gpuEvidence"] = g.list.clone();
        if !g.rims.is_empty() {
            body["gpuRims"] = json!(g.rims);
        }
        if !g.ocsp.is_empty() {
            body["gpuOcsp"] = json!(g.ocsp);
        }
    }
}

/// Decode a compact JWS's header and payload without verifying it (display only).
pub fn decode(token: &str) -> (Value, Value) {
    let part = |i: usize| {
        token
            .split('.')
            .nth(i)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .unwrap_or(Value::Null)
    };
    (part(0), part(1))
}
