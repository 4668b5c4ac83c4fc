//! `enclava policy get|set|reset|test|versions --type TYPE`: the attestation appraisal policies
//! (`snp`, `tdx`, `sgx`, `azure-snp`, `azure-tdx`, `sim`, `sample` (Confidential Containers'
//! development TEE, see `enclava kbs`), or the MAA names `SevSnpVm`, `TdxVm`, `SgxEnclave`,
//! `OpenEnclave`). Needs a token with `policies/manage` (Administrator).
//!
//! Exit codes: 0 done (for `test`: the draft allows the evidence), 1 refused / the draft denies,
//! 2 bad arguments, 3 server failure.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::{
    CliError, CliResult, Client, ClientOpts, b64url, finish, print_fields, print_json, read_input,
    usage,
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
    /// Store a new policy (Rego or MAA policy language; a file, `-` for stdin). With `--sign-key`
    /// and `--sign-cert` it is sent as an MAA policy JWS signed with RS256, as a server with
    /// trusted policy signers (`attestation.policy_signers`) requires.
    Set {
        #[command(flatten)]
        ty: TypeArg,
        #[arg(long)]
        file: PathBuf,
        /// The signer's RSA private key (PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`).
        #[arg(long, requires = "sign_cert")]
        sign_key: Option<PathBuf>,
        /// The signer's certificate (PEM), sent in the JWS `x5c` header.
        #[arg(long, requires = "sign_key")]
        sign_cert: Option<PathBuf>,
    },
    /// Go back to the built-in default policy. A server with trusted policy signers requires the
    /// reset signed (`--sign-key`, `--sign-cert`: an MAA reset JWS over an empty payload).
    Reset {
        #[command(flatten)]
        ty: TypeArg,
        /// The signer's RSA private key (PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`).
        #[arg(long, requires = "sign_cert")]
        sign_key: Option<PathBuf>,
        /// The signer's certificate (PEM), sent in the JWS `x5c` header.
        #[arg(long, requires = "sign_key")]
        sign_cert: Option<PathBuf>,
    },
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
            "invalid --type {t:?}: expected snp, tdx, sgx, azure-snp, azure-tdx, sim, sample or an MAA type name"
        )))
    }
}

fn text_of(p: &std::path::Path) -> CliResult<String> {
    String::from_utf8(read_input(p)?)
        .map_err(|_| usage(format!("{} is not UTF-8 text", p.display())))
}

/// One PEM block of `path` with the given label, decoded.
fn pem_block(path: &std::path::Path, label: &str) -> CliResult<Vec<u8>> {
    let text = zeroize::Zeroizing::new(read_input(path)?);
    enclava_evidence::pem::blocks_labelled(&text, &[label])
        .map_err(|e| usage(format!("{}: expected PEM, found {e}", path.display())))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            usage(format!(
                "{}: expected a -----BEGIN {label}----- block, found none",
                path.display()
            ))
        })
}

/// The MAA policy upload JWS for `text`, signed with RS256 by `key`, `cert` in `x5c`.
fn signed_policy_jws(
    text: &str,
    key: &std::path::Path,
    cert: &std::path::Path,
) -> CliResult<String> {
    let payload = json!({"AttestationPolicy": b64url(text.as_bytes())});
    signed_jws(&payload.to_string(), key, cert)
}

/// A JWS over `payload` (exact text; empty for a reset), signed with RS256 by `key`, `cert` in
/// `x5c`.
fn signed_jws(payload: &str, key: &std::path::Path, cert: &std::path::Path) -> CliResult<String> {
    use base64::Engine;
    use enclava_token::TokenSigner;
    let key_der = zeroize::Zeroizing::new(pem_block(key, "PRIVATE KEY")?);
    let cert_der = pem_block(cert, "CERTIFICATE")?;
    let signer =
        enclava_token::Rs256Signer::from_pkcs8("policy-signer", &key_der).map_err(|e| {
            usage(format!(
                "{}: expected an RSA PKCS#8 private key, found {e}",
                key.display()
            ))
        })?;
    let header = json!({
        "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)],
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload.as_bytes())
    );
    let sig = signer
        .sign(input.as_bytes())
        .map_err(|e| usage(format!("signing the policy failed: {e}")))?;
    Ok(format!("{input}.{}", b64url(&sig)))
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
        PolicyCommand::Set {
            ty,
            file,
            sign_key,
            sign_cert,
        } => {
            let text = text_of(file)?;
            let path = format!("/policies/{}", checked_type(&ty.ty)?);
            let v = match (sign_key, sign_cert) {
                (Some(key), Some(cert)) => {
                    let jws = signed_policy_jws(&text, key, cert)?;
                    client.call_raw("PUT", &path, jws.as_bytes())?
                }
                _ => client.call("PUT", &path, &[], Some(&json!({ "policy": text })))?,
            };
            show_policy(&client, &v);
        }
        PolicyCommand::Reset {
            ty,
            sign_key,
            sign_cert,
        } => {
            let path = format!("/policies/{}:reset", checked_type(&ty.ty)?);
            let v = match (sign_key, sign_cert) {
                (Some(key), Some(cert)) => {
                    let jws = signed_jws("", key, cert)?;
                    client.call_raw("POST", &path, jws.as_bytes())?
                }
                _ => client.call("POST", &path, &[], None)?,
            };
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
