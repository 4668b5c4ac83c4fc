//! `enclava evidence verify`: verify TEE evidence offline and print normalized claims.
//!
//! Exit codes: 0 verified, 1 verification failed (the JSON names the failed check), 2 unusable
//! arguments or unreadable input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use enclava_collateral::DcapTee;
use enclava_evidence::error::FailedCheck;
use enclava_evidence::{Claims, Tee, VerifyError, azure, dcap, sim, snp};
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
    /// Examples:
    ///   enclava evidence verify --tee snp --evidence report.bin --certs vcek.pem --at 2024-01-01T00:00:00Z
    ///   enclava evidence verify --tee tdx --evidence quote.dat --collateral pcs/ --output json
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Which TEE produced the evidence.
    #[arg(long, value_parser = parse_tee)]
    pub tee: Tee,
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
    #[arg(long)]
    pub nonce: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

fn parse_tee(s: &str) -> Result<Tee, String> {
    s.parse()
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
    let raw = read(&args.evidence, "evidence")?;
    let nonce = args.nonce.as_deref().map(parse_nonce).transpose()?;
    Ok(match args.tee {
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
                    let tee = if args.tee == Tee::Tdx {
                        DcapTee::Tdx
                    } else {
                        DcapTee::Sgx
                    };
                    Some(open_cache(dir)?.dcap_collateral(&quote, tee).map_err(|e| {
                        InputError(format!("collateral cache {}: {e}", dir.display()))
                    })?)
                }
                (None, None) => None,
            };
            if args.tee == Tee::Tdx {
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
            if args.tee == Tee::AzureSnp {
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
    })
}
