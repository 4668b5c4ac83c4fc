//! `enclava policy get|set|reset|test|versions --type TYPE`: the attestation appraisal policies
//! (`snp`, `tdx`, `sgx`, `azure-snp`, `azure-tdx`, `sim`, or the MAA names `SevSnpVm`, `TdxVm`,
//! `SgxEnclave`, `OpenEnclave`). Needs a token with `policies/manage` (Administrator).
//!
//! Exit codes: 0 done (for `test`: the draft allows the evidence), 1 refused / the draft denies,
//! 2 bad arguments, 3 server failure.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::{
    CliError, CliResult, Client, ClientOpts, finish, print_fields, print_json, read_input, usage,
};

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
    #[command(flatten)]
    pub client: ClientOpts,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Show the active policy.
    Get(TypeArg),
    /// Every stored version of a policy.
    Versions(TypeArg),
    /// Store a new policy (Rego or MAA policy language; a file, `-` for stdin).
    Set {
        #[command(flatten)]
        ty: TypeArg,
        #[arg(long)]
        file: PathBuf,
    },
    /// Go back to the built-in default policy.
    Reset(TypeArg),
    /// Dry run: evaluate a draft policy against an attest request body (no usable token).
    Test {
        #[command(flatten)]
        ty: TypeArg,
        /// The draft policy file.
        #[arg(long)]
        file: PathBuf,
        /// The attest request body (JSON: the MAA shape for MAA type names, else native).
        #[arg(long)]
        request: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct TypeArg {
    /// The attestation type.
    #[arg(long = "type")]
    pub ty: String,
}

pub fn run(args: PolicyArgs) -> ExitCode {
    finish(policy(args))
}

fn checked_type(t: &str) -> CliResult<&str> {
    let ok =
        !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(t)
    } else {
        Err(usage(format!(
            "invalid --type {t:?}: expected snp, tdx, sgx, azure-snp, azure-tdx, sim or an MAA type name"
        )))
    }
}

fn text_of(p: &std::path::Path) -> CliResult<String> {
    String::from_utf8(read_input(p)?)
        .map_err(|_| usage(format!("{} is not UTF-8 text", p.display())))
}

fn show_policy(client: &Client, v: &Value) {
    if client.json_output() {
        print_json(v);
        return;
    }
    let p = &v["policy"];
    print_fields(&[
        ("type", p["policy_type"].as_str().unwrap_or("").to_string()),
        ("version", p["version"].to_string()),
        ("builtin", p["builtin"].to_string()),
        ("language", p["language"].as_str().unwrap_or("").to_string()),
        ("hash", p["hash"].as_str().unwrap_or("").to_string()),
    ]);
    println!();
    println!("{}", p["text"].as_str().unwrap_or(""));
}

fn policy(args: PolicyArgs) -> CliResult<()> {
    let client = Client::new(&args.client)?;
    match &args.command {
        PolicyCommand::Get(t) => {
            let v = client.call(
                "GET",
                &format!("/policies/{}", checked_type(&t.ty)?),
                &[],
                None,
            )?;
            show_policy(&client, &v);
        }
        PolicyCommand::Versions(t) => {
            let v = client.call(
                "GET",
                &format!("/policies/{}/versions", checked_type(&t.ty)?),
                &[],
                None,
            )?;
            if client.json_output() {
                print_json(&v);
            } else {
                for r in v["value"].as_array().cloned().unwrap_or_default() {
                    println!(
                        "{}\t{}\t{}\t{}",
                        r["version"],
                        r["language"].as_str().unwrap_or(""),
                        r["hash"].as_str().unwrap_or(""),
                        if r["builtin"] == true { "builtin" } else { "" }
                    );
                }
            }
        }
        PolicyCommand::Set { ty, file } => {
            let text = text_of(file)?;
            let v = client.call(
                "PUT",
                &format!("/policies/{}", checked_type(&ty.ty)?),
                &[],
                Some(&json!({ "policy": text })),
            )?;
            show_policy(&client, &v);
        }
        PolicyCommand::Reset(t) => {
            let v = client.call(
                "POST",
                &format!("/policies/{}:reset", checked_type(&t.ty)?),
                &[],
                None,
            )?;
            show_policy(&client, &v);
        }
        PolicyCommand::Test { ty, file, request } => {
            let text = text_of(file)?;
            let req: Value = serde_json::from_slice(&read_input(request)?).map_err(|e| {
                usage(format!(
                    "{}: expected a JSON attest request: {e}",
                    request.display()
                ))
            })?;
            let v = client.call(
                "POST",
                &format!("/policies/{}:test", checked_type(&ty.ty)?),
                &[],
                Some(&json!({"policy": text, "request": req})),
            )?;
            if client.json_output() {
                print_json(&v);
            } else {
                println!("allowed: {}", v["allowed"]);
                for f in v["failed"].as_array().cloned().unwrap_or_default() {
                    println!(
                        "  rule {} on {}: expected {}, found {}",
                        f["rule"].as_str().unwrap_or(""),
                        f["claim_path"].as_str().unwrap_or(""),
                        f["expected"].as_str().unwrap_or(""),
                        f["found"].as_str().unwrap_or("")
                    );
                }
            }
            if v["allowed"] != true {
                return Err(CliError::Negative(
                    "the draft policy denies this evidence".into(),
                ));
            }
        }
    }
    Ok(())
}
