//! `enclava run`: run a measured WebAssembly workload inside a TEE on sealed inputs (see
//! docs/enclave.md): measure, attest with an ephemeral key, obtain the released keys, decrypt the
//! inputs into private directories, run with only the declared capabilities, encrypt the outputs
//! to their recipients, sign a receipt.
//!
//! Exit codes: 0 ok; 1 refused (attestation denied or release denied: the failed rules are
//! printed); 2 bad input; 3 server, network or evidence collection failed; 4 the workload failed
//! (trap, limits, non-zero exit, missing output).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use enclava_enclave::data::SealedInput;
use enclava_enclave::{Connection, EnclaveError, RunReport, RunRequest, Step, TeeChoice};
use enclava_runtime::Manifest;
use serde_json::json;
use zeroize::Zeroizing;

use super::client::{ClientOpts, OutputFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TeeArg {
    /// The hardware TEE of this machine: SEV-SNP or TDX (configfs-tsm, /dev/sev-guest) or an Azure
    /// SEV-SNP confidential VM (vTPM).
    Auto,
    /// The simulated TEE: development only, proves nothing (no production policy accepts it).
    Sim,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The workload manifest (JSON; see docs/enclave.md).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The WebAssembly module (WASI preview 1 command) the manifest names by SHA-256.
    #[arg(long, value_name = "FILE.wasm")]
    pub module: PathBuf,
    /// Where evidence comes from.
    #[arg(long, value_enum, default_value_t = TeeArg::Auto)]
    pub tee: TeeArg,
    /// A sealed input: NAME=FILE.enc (decrypted to NAME in the manifest's read-only directory, or
    /// to the guest path NAME when it starts with '/'). Repeatable.
    #[arg(long = "input", value_name = "NAME=FILE.enc")]
    pub inputs: Vec<String>,
    /// Directory for the encrypted outputs (OUTPUT.enc per manifest output).
    #[arg(long, value_name = "DIR", required_unless_present = "measure_only")]
    pub output_dir: Option<PathBuf>,
    /// Only print the workload measurement (SHA-384 of module and manifest) that release
    /// policies name, and exit; nothing is sent.
    #[arg(long)]
    pub measure_only: bool,
    /// Write the signed run receipt here.
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// Where private plaintext directories are created (default /dev/shm, else the temp dir).
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Show each step of the protocol.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Prints a refusal or failure with every failed rule.
pub fn print_error(e: &EnclaveError) {
    eprintln!("error: {e}");
    if let EnclaveError::Refused { failed, .. } = e {
        for f in failed {
            if f.rule.is_empty() {
                eprintln!(
                    "  failed: {}: expected {}, found {}",
                    f.claim_path, f.expected, f.found
                );
            } else {
                eprintln!("  failed: {f}");
            }
        }
    }
}

/// The connection of the enclave runtime from the CLI's client options.
pub fn connection(opts: &ClientOpts) -> Result<Connection, EnclaveError> {
    let url = opts.url.clone().ok_or_else(|| {
        EnclaveError::BadInput("no server URL: pass --url or set ENCLAVA_URL".into())
    })?;
    let token = match (&opts.token, &opts.token_file) {
        (_, Some(path)) => {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                EnclaveError::BadInput(format!("cannot read token file {}: {e}", path.display()))
            })?);
            Some(Zeroizing::new(text.trim().to_string()))
        }
        (Some(t), None) => Some(Zeroizing::new(t.trim().to_string())),
        (None, None) => None,
    };
    Ok(Connection {
        url,
        token,
        ca_cert: opts.ca_cert.clone(),
        timeout: Duration::from_secs(opts.timeout.max(1)),
    })
}

fn load(args: &RunArgs) -> Result<(Manifest, Vec<u8>), EnclaveError> {
    let manifest_bytes = std::fs::read(&args.manifest).map_err(|e| {
        EnclaveError::BadInput(format!(
            "cannot read --manifest {}: {e}",
            args.manifest.display()
        ))
    })?;
    let manifest = Manifest::from_json(&manifest_bytes).map_err(|e| {
        EnclaveError::BadInput(format!("--manifest {}: {e}", args.manifest.display()))
    })?;
    let module = std::fs::read(&args.module).map_err(|e| {
        EnclaveError::BadInput(format!(
            "cannot read --module {}: {e}",
            args.module.display()
        ))
    })?;
    Ok((manifest, module))
}

fn request(args: &RunArgs) -> Result<RunRequest, EnclaveError> {
    let (manifest, module) = load(args)?;
    let inputs = args
        .inputs
        .iter()
        .map(|s| SealedInput::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RunRequest {
        manifest,
        module,
        tee: match args.tee {
            TeeArg::Auto => TeeChoice::Auto,
            TeeArg::Sim => TeeChoice::Sim,
        },
        inputs,
        output_dir: args.output_dir.clone().unwrap_or_default(),
        connection: connection(&args.client)?,
        attester_root: PathBuf::from("/"),
        scratch_root: args.scratch_dir.clone(),
        host_limits: None,
    })
}

fn execute(args: &RunArgs) -> Result<RunReport, EnclaveError> {
    let req = request(args)?;
    if req.tee == TeeChoice::Sim && args.verbose {
        eprintln!("note: --tee sim: simulated evidence proves nothing; development only");
    }
    let verbose = args.verbose;
    let report = enclava_enclave::run(&req, &mut |s: &Step| {
        if verbose {
            eprintln!("{s}");
        }
    })?;
    if verbose {
        for (name, bytes) in [("stdout", &report.stdout), ("stderr", &report.stderr)] {
            if !bytes.is_empty() {
                eprintln!(
                    "workload {name}:\n{}",
                    String::from_utf8_lossy(bytes).trim_end()
                );
            }
        }
    }
    if let Some(path) = &args.receipt {
        enclava_enclave::run::write_receipt(path, &report.receipt)?;
    }
    Ok(report)
}

/// `--measure-only`: the measurement of a manifest and module that belong together.
fn measure_only(args: &RunArgs) -> Result<String, EnclaveError> {
    let (manifest, module) = load(args)?;
    let digest = enclava_runtime::module_sha256(&module);
    if digest != manifest.module_sha256 {
        return Err(EnclaveError::BadInput(format!(
            "module digest mismatch: the manifest expects sha256 {}, the module has {digest}",
            manifest.module_sha256
        )));
    }
    Ok(hex::encode(enclava_runtime::measure(&module, &manifest)))
}

pub fn run(args: RunArgs) -> ExitCode {
    if args.measure_only {
        return match measure_only(&args) {
            Ok(m) => {
                if args.client.output == OutputFormat::Json {
                    println!("{}", json!({ "measurement": m }));
                } else {
                    println!("{m}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                print_error(&e);
                ExitCode::from(e.exit_code())
            }
        };
    }
    match execute(&args) {
        Ok(report) => {
            let r = &report.receipt.receipt;
            if args.client.output == OutputFormat::Json {
                let v = json!({
                    "ok": true,
                    "measurement": r.workload.measurement,
                    "tee": r.tee,
                    "jti": r.attestation.jti,
                    "keys_released": r.keys_released,
                    "outputs": r.outputs,
                    "receipt": args.receipt,
                });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "workload {} ran in {} ({} ms)",
                    r.workload.name, r.tee, r.workload_ms
                );
                println!("measurement {}", r.workload.measurement);
                for o in &r.outputs {
                    println!(
                        "output {} -> {} (to {})",
                        o.guest_path,
                        args.output_dir
                            .as_deref()
                            .unwrap_or(std::path::Path::new("."))
                            .join(&o.file)
                            .display(),
                        o.recipient_kid
                    );
                }
                if let Some(p) = &args.receipt {
                    println!("receipt {}", p.display());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
