//! `enclava evidence verify`: verify TEE evidence offline and print normalized claims.
//!
//! Exit codes: 0 verified, 1 verification failed (the JSON names the failed check), 2 unusable
//! arguments or unreadable input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use enclava_collateral::DcapTee;
use enclava_evidence::error::FailedCheck;
use enclava_evidence::{Claims, Tee, VerifyError, azure, dcap, nvidia, sim, snp};
use serde_json::json;

use super::OutputFormat;

#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCommand {
    /// Verify evidence from real hardware (or the simulator) and print its normalized claims.
    ///
    /// Evidence may be binary or hex. Certificates may be PEM or DER, alone or as bundles (VCEK, or
    /// VCEK+ASK+ARK). Intel collateral may be a directory of PCS files (recognized by content) or a
    /// dcap-qvl collateral JSON file. Azure CVM evidence is the JSON that Confidential Containers'
    /// Azure attesters produce.
    ///
    /// NVIDIA GPU / NVSwitch evidence (`--tee nvidia-gpu`) is the SPDM report (binary or hex)
    /// with `--certs` the device chain, or the JSON list NVIDIA's SDKs produce (several devices,
    /// each with its chain); `--rim` adds signed reference manifests (driver, VBIOS, NVSwitch BIOS)
    /// for the measurement comparison.
    ///
    /// Examples:
    ///   enclava evidence verify --tee snp --evidence report.bin --certs vcek.pem --at 2024-01-01T00:00:00Z
    ///   enclava evidence verify --tee tdx --evidence quote.dat --collateral pcs/ --output json
    ///   enclava evidence verify --tee nvidia-gpu --evidence report.txt --certs chain.pem --rim driver.xml --rim vbios.xml --nonce 4cff...
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Which TEE produced the evidence: snp, tdx, sgx, azure-snp, azure-tdx, sim, nvidia-gpu.
    #[arg(long, value_parser = parse_tee)]
    pub tee: TeeArg,
    /// The evidence file (report, quote, Azure evidence JSON, simulated evidence).
    #[arg(long)]
    pub evidence: PathBuf,
    /// Certificates endorsing the evidence (PEM or DER; may be given more than once).
    #[arg(long)]
    pub certs: Vec<PathBuf>,
    /// Collateral: a directory of Intel PCS files or a dcap-qvl JSON file (TDX/SGX); CRLs (SNP).
    #[arg(long)]
    pub collateral: Option<PathBuf>,
    /// Offline collateral cache directory (see `enclava collateral fetch`): used for what the
    /// evidence, --certs and --collateral do not supply.
    #[arg(long, env = "ENCLAVA_COLLATERAL_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Verify as of this time (RFC 3339). Default: now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Azure vTPM evidence: the nonce expected in the TPM quote (hex, or text with `text:` prefix).
    /// NVIDIA evidence: the 32-byte nonce the verifier chose (hex).
    #[arg(long)]
    pub nonce: Option<String>,
    /// NVIDIA evidence: a signed RIM (SWID tag XML) to compare the measurements with (driver,
    /// VBIOS or NVSwitch BIOS; may be given more than once).
    #[arg(long)]
    pub rim: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// `--tee`: a CPU TEE of the claims model, or NVIDIA GPU evidence (verified by its own verifier
/// into its own claims; it is not a `Tee` of the CPU claims model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeeArg {
    Cpu(Tee),
    NvidiaGpu,
}

impl std::fmt::Display for TeeArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TeeArg::Cpu(t) => t.fmt(f),
            TeeArg::NvidiaGpu => f.write_str("nvidia-gpu"),
        }
    }
}

fn parse_tee(s: &str) -> Result<TeeArg, String> {
    if s == "nvidia-gpu" {
        return Ok(TeeArg::NvidiaGpu);
    }
    s.parse()
        .map(TeeArg::Cpu)
        .map_err(|e: String| format!("{e}, nvidia-gpu"))
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("expected an RFC 3339 time like 2024-01-31T12:00:00Z, found {s:?}: {e}")
        })
}

pub fn run(cmd: EvidenceCommand) -> ExitCode {
    match cmd {
        EvidenceCommand::Verify(args) => verify(args),
    }
}

/// Why the input could not even be handed to a verifier (exit code 2).
struct InputError(String);

fn verify(args: VerifyArgs) -> ExitCode {
    let at = args.at.unwrap_or_else(Utc::now);
    if args.tee == TeeArg::NvidiaGpu {
        return verify_nvidia(&args, at);
    }
    let result = match run_verifier(&args, at) {
        Ok(r) => r,
        Err(InputError(msg)) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    match (result, args.output) {
        (Ok(claims), OutputFormat::Json) => {
            print_json(&json!({"verified": true, "claims": claims}));
            ExitCode::SUCCESS
        }
        (Err(e), OutputFormat::Json) => {
            print_json(
                &json!({"verified": false, "failed_check": e.failed_check(), "reason": e.to_string()}),
            );
            ExitCode::from(1)
        }
        (Ok(claims), OutputFormat::Table) => {
            print_summary(&claims, at);
            ExitCode::SUCCESS
        }
        (Err(e), OutputFormat::Table) => {
            println!(
                "NOT VERIFIED ({} evidence, as of {})",
                args.tee,
                at.to_rfc3339()
            );
            println!("  failed check: {}", e.failed_check());
            println!("  reason:       {e}");
            ExitCode::from(1)
        }
    }
}

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn print_summary(c: &Claims, at: DateTime<Utc>) {
    println!("VERIFIED {} evidence as of {}", c.tee, at.to_rfc3339());
    if !c.tee.is_hardware() {
        println!("  WARNING: simulated evidence, not hardware; no production policy accepts it");
    }
    println!("  measurement:  {}", c.measurement);
    println!("  report_data:  {}", c.report_data);
    println!("  debug:        {}", c.debug);
    if let Some(s) = &c.tcb_status {
        println!("  tcb_status:   {s}");
    }
    if !c.advisory_ids.is_empty() {
        println!("  advisories:   {}", c.advisory_ids.join(", "));
    }
    println!("  (use --output json for every claim)");
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, InputError> {
    std::fs::read(path)
        .map_err(|e| InputError(format!("cannot read {what} {}: {e}", path.display())))
}

/// Binary as is; text that is entirely hex digits (whitespace allowed) is decoded.
fn binary_or_hex(bytes: Vec<u8>) -> Vec<u8> {
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !compact.is_empty()
        && compact.len().is_multiple_of(2)
        && compact.iter().all(u8::is_ascii_hexdigit)
        && let Ok(decoded) = hex::decode(&compact)
    {
        return decoded;
    }
    bytes
}

/// Certificates (and CRLs) from PEM bundles or DER files.
#[derive(Default)]
struct Pki {
    certs: Vec<Vec<u8>>,
    crls: Vec<Vec<u8>>,
}

fn print_notes(loaded: &enclava_collateral::Loaded) {
    for n in &loaded.notes {
        eprintln!("note: {n}");
    }
}

/// `--certs` files and the SEV-SNP part of `--collateral`, read by the one collateral loader
/// (recognized by content: PEM with or without explanatory text, or DER, in any order).
fn read_pki(args: &VerifyArgs) -> Result<Pki, InputError> {
    let mut pki = Pki::default();
    for p in &args.certs {
        let bytes = read(p, "certificates")?;
        let name = p.display().to_string();
        let loaded = enclava_collateral::load::load_files(&[(name.clone(), bytes.clone())])
            .map_err(|e| InputError(format!("--certs {e}")))?;
        if let Some(n) = loaded.notes.first() {
            // DER the loader cannot parse as a certificate still goes to the verifier, which
            // names it (`malformed_certificate`) in its verdict.
            if enclava_evidence::pem::der_sequences(&bytes).is_some() {
                pki.certs.push(bytes);
                continue;
            }
            return Err(InputError(format!(
                "--certs {name}: expected certificates or CRLs, found {}",
                n.reason
            )));
        }
        pki.certs.extend(loaded.snp_certs);
        pki.crls.extend(loaded.snp_crls);
    }
    if let Some(c) = &args.collateral {
        let loaded = read_collateral(c)?;
        pki.certs.extend(loaded.snp_certs);
        pki.crls.extend(loaded.snp_crls);
    }
    Ok(pki)
}

/// A collateral file or directory through the one loader; skipped files are noted on stderr.
fn read_collateral(path: &Path) -> Result<enclava_collateral::Loaded, InputError> {
    let loaded = enclava_collateral::load::read_dir(path)
        .map_err(|e| InputError(format!("collateral {}: {e}", path.display())))?;
    print_notes(&loaded);
    Ok(loaded)
}

fn read_dcap_collateral(path: &Path) -> Result<dcap::Collateral, InputError> {
    let loaded = read_collateral(path)?;
    if !loaded.has_dcap() {
        return Err(InputError(format!(
            "{}: expected Intel collateral (TCB info, QE identity, CRLs, issuer certificates, or a \
             dcap-qvl JSON), found none",
            path.display()
        )));
    }
    loaded.dcap().map_err(|e| {
        InputError(format!(
            "{}: not usable Intel collateral: {e}",
            path.display()
        ))
    })
}

fn open_cache(dir: &Path) -> Result<enclava_collateral::Cache, InputError> {
    enclava_collateral::Cache::open(dir)
        .map_err(|e| InputError(format!("collateral cache {}: {e}", dir.display())))
}

fn parse_nonce(s: &str) -> Result<Vec<u8>, InputError> {
    if let Some(text) = s.strip_prefix("text:") {
        return Ok(text.as_bytes().to_vec());
    }
    hex::decode(s).map_err(|e| {
        InputError(format!(
            "--nonce: expected hex (or text:...), found {s:?}: {e}"
        ))
    })
}

fn run_verifier(
    args: &VerifyArgs,
    at: DateTime<Utc>,
) -> Result<Result<Claims, VerifyError>, InputError> {
    let TeeArg::Cpu(tee) = args.tee else {
        return Err(InputError(
            "nvidia-gpu evidence has its own verifier".into(),
        ));
    };
    let raw = read(&args.evidence, "evidence")?;
    let nonce = args.nonce.as_deref().map(parse_nonce).transpose()?;
    Ok(match tee {
        Tee::Snp => {
            let report = binary_or_hex(raw);
            let pki = read_pki(args)?;
            let mut endorsements = snp::Endorsements {
                certs_der: pki.certs,
                crls_der: pki.crls,
            };
            if endorsements.certs_der.is_empty()
                && let Some(dir) = &args.cache
            {
                endorsements = open_cache(dir)?
                    .snp_endorsements(&report)
                    .map_err(|e| InputError(format!("collateral cache {}: {e}", dir.display())))?;
            }
            snp::verify(&report, &endorsements, at).map_err(VerifyError::from)
        }
        Tee::Tdx | Tee::Sgx => {
            let quote = binary_or_hex(raw);
            let collateral = match (&args.collateral, &args.cache) {
                (Some(path), _) => Some(read_dcap_collateral(path)?),
                (None, Some(dir)) => {
                    let dcap_tee = if tee == Tee::Tdx {
                        DcapTee::Tdx
                    } else {
                        DcapTee::Sgx
                    };
                    Some(
                        open_cache(dir)?
                            .dcap_collateral(&quote, dcap_tee)
                            .map_err(|e| {
                                InputError(format!("collateral cache {}: {e}", dir.display()))
                            })?,
                    )
                }
                (None, None) => None,
            };
            if tee == Tee::Tdx {
                dcap::verify_tdx(&quote, collateral.as_ref(), at).map_err(VerifyError::from)
            } else {
                dcap::verify_sgx(&quote, collateral.as_ref(), at).map_err(VerifyError::from)
            }
        }
        Tee::AzureSnp | Tee::AzureTdx => {
            let evidence = azure::AzureEvidence::from_coco_json(&raw).map_err(|e| {
                InputError(format!(
                    "{}: not Azure CVM evidence JSON: {e}",
                    args.evidence.display()
                ))
            })?;
            if tee == Tee::AzureSnp {
                let pki = read_pki(args)?;
                let endorsements = snp::Endorsements {
                    certs_der: pki.certs,
                    crls_der: pki.crls,
                };
                azure::verify_snp(&evidence, &endorsements, nonce.as_deref(), at)
                    .map_err(VerifyError::from)
            } else {
                let collateral = args
                    .collateral
                    .as_deref()
                    .map(read_dcap_collateral)
                    .transpose()?;
                azure::verify_tdx(&evidence, collateral.as_ref(), nonce.as_deref(), at)
                    .map_err(VerifyError::from)
            }
        }
        Tee::Sim => sim::verify(&raw, at).map_err(VerifyError::from),
        Tee::Sample => enclava_evidence::sample::verify(&raw)
            .map_err(|e| VerifyError::Sim(sim::SimError::Malformed(e.0))),
    })
}

/// `--tee nvidia-gpu`: one SPDM report with `--certs`, or the SDKs' JSON list of devices. The JSON
/// contract is the other TEEs': `verified`, then `claims` or `failed_check` + `reason`; a list adds
/// `devices` (one such object per device) and is verified only if every device is.
fn verify_nvidia(args: &VerifyArgs, at: DateTime<Utc>) -> ExitCode {
    let input = match nvidia_input(args) {
        Ok(i) => i,
        Err(InputError(msg)) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let (devices, rims, nonce, is_list) = input;
    let rims = match rims
        .iter()
        .map(|r| nvidia::rim::parse(r))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(r) => r,
        Err(e) => return nvidia_verdict(args, at, &[Err(e)], false),
    };
    let results: Vec<_> = devices
        .iter()
        .map(|d| nvidia::verify_device(d, &rims, nonce.as_deref(), at))
        .collect();
    nvidia_verdict(args, at, &results, is_list)
}

type NvidiaInput = (
    Vec<nvidia::DeviceEvidence>,
    Vec<Vec<u8>>,
    Option<Vec<u8>>,
    bool,
);

fn nvidia_input(args: &VerifyArgs) -> Result<NvidiaInput, InputError> {
    let raw = read(&args.evidence, "evidence")?;
    let nonce = match args.nonce.as_deref() {
        None => None,
        Some(s) => {
            let n = hex::decode(s).map_err(|e| {
                InputError(format!(
                    "--nonce: expected 32 bytes of hex, found {s:?}: {e}"
                ))
            })?;
            if n.len() != nvidia::spdm::NONCE_LEN {
                return Err(InputError(format!(
                    "--nonce: expected 32 bytes of hex, found {} bytes",
                    n.len()
                )));
            }
            Some(n)
        }
    };
    let rims = args
        .rim
        .iter()
        .map(|p| read(p, "RIM"))
        .collect::<Result<Vec<_>, _>>()?;
    let is_list = raw.trim_ascii_start().starts_with(b"[");
    let devices = if is_list {
        if !args.certs.is_empty() {
            return Err(InputError(
                "--certs: the JSON evidence list carries each device's chain; give no --certs"
                    .into(),
            ));
        }
        nvidia::parse_evidence_list(&raw)
            .map_err(|e| InputError(format!("{}: {e}", args.evidence.display())))?
    } else {
        if args.certs.is_empty() {
            return Err(InputError(
                "--certs: NVIDIA evidence needs the device certificate chain (PEM or DER)".into(),
            ));
        }
        // PEM files are joined with line breaks; DER files are concatenated as they are.
        let mut certs = Vec::new();
        for p in &args.certs {
            let bytes = read(p, "certificates")?;
            let pem = enclava_evidence::pem::is_pem(&bytes);
            certs.extend(bytes);
            if pem {
                certs.push(b'\n');
            }
        }
        vec![nvidia::DeviceEvidence {
            arch: None,
            nonce: None,
            report: binary_or_hex(raw),
            certs,
        }]
    };
    Ok((devices, rims, nonce, is_list))
}

fn nvidia_verdict(
    args: &VerifyArgs,
    at: DateTime<Utc>,
    results: &[Result<nvidia::NvidiaClaims, nvidia::NvidiaError>],
    is_list: bool,
) -> ExitCode {
    let one = |r: &Result<nvidia::NvidiaClaims, nvidia::NvidiaError>| match r {
        Ok(c) => json!({"verified": true, "claims": c}),
        Err(e) => {
            json!({"verified": false, "failed_check": e.failed_check(), "reason": e.to_string()})
        }
    };
    let first_err = results
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.as_ref().err().map(|e| (i, e)));
    match args.output {
        OutputFormat::Json => {
            let v = if is_list {
                let mut v = json!({
                    "verified": first_err.is_none(),
                    "devices": results.iter().map(one).collect::<Vec<_>>(),
                });
                if let Some((i, e)) = first_err {
                    v["failed_check"] = json!(e.failed_check());
                    v["reason"] = json!(format!("device {i}: {e}"));
                }
                v
            } else {
                results.first().map(one).unwrap_or(serde_json::Value::Null)
            };
            print_json(&v);
        }
        OutputFormat::Table => {
            for (i, r) in results.iter().enumerate() {
                match r {
                    Ok(c) => {
                        println!(
                            "VERIFIED nvidia-gpu evidence (device {i}: {} {}) as of {}",
                            c.arch,
                            c.hwmodel,
                            at.to_rfc3339()
                        );
                        println!("  ueid:         {}", c.ueid);
                        if let Some(d) = &c.driver_version {
                            println!("  driver:       {d}");
                        }
                        if let Some(v) = &c.vbios_version {
                            println!("  vbios:        {v}");
                        }
                        println!(
                            "  nonce:        {} (verified: {})",
                            c.nonce, c.nonce_verified
                        );
                        println!("  measurements: {}", c.measres);
                    }
                    Err(e) => {
                        println!(
                            "NOT VERIFIED (nvidia-gpu evidence, device {i}, as of {})",
                            at.to_rfc3339()
                        );
                        println!("  failed check: {}", e.failed_check());
                        println!("  reason:       {e}");
                    }
                }
            }
            println!("  (use --output json for every claim)");
        }
    }
    if first_err.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
