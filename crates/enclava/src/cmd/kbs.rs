//! `enclava kbs ...`: the Confidential Containers KBS resources and resource policies of a server
//! (its `/kbs/v0` admin routes; see the server's `kbs.rs` and docs/kbs.md).
//!
//! ```text
//! enclava kbs resource set    REPO/TYPE/TAG --file F     (secrets/set; F: any bytes, `-` stdin)
//! enclava kbs resource get    REPO/TYPE/TAG [--file OUT] (secrets/get; OUT default `-`: stdout)
//! enclava kbs resource list                              (secrets/list)
//! enclava kbs resource delete REPO/TYPE/TAG              (secrets/delete)
//! enclava kbs policy set  --file P.rego [--prefix REPO[/TYPE[/TAG]]]   (policies/manage)
//! enclava kbs policy get  [--prefix ...]                                (policies/manage)
//! enclava kbs policy test --path REPO/TYPE/TAG --claims C.json [--file P.rego]
//! ```
//! The usual `ENCLAVA_URL`, `ENCLAVA_CA_CERT`, `ENCLAVA_TOKEN` / `ENCLAVA_TOKEN_FILE` settings.
//! Exit codes as every client command (for `policy test`: 0 allowed, 1 denied).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::client::{
    CliError, CliResult, Client, ClientOpts, b64url, finish, print_fields, print_json, print_table,
    read_input, usage, write_output,
};

#[derive(Debug, clap::Args)]
pub struct KbsArgs {
    #[command(subcommand)]
    pub command: KbsCommand,
    #[command(flatten)]
    pub client: ClientOpts,
}

#[derive(Debug, clap::Subcommand)]
pub enum KbsCommand {
    /// Resources guests fetch with `GET /kbs/v0/resource/REPO/TYPE/TAG`.
    #[command(subcommand)]
    Resource(ResourceCommand),
    /// Resource policies (Rego, `package policy`, `data.policy.allow`).
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum ResourceCommand {
    /// Store a resource (a new version).
    Set {
        /// REPO/TYPE/TAG
        path: String,
        /// The bytes (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Write a resource's bytes to a file (default: standard output).
    Get {
        path: String,
        #[arg(long, value_name = "FILE", default_value = "-")]
        file: PathBuf,
    },
    /// List resource paths.
    List,
    /// Delete a resource (soft delete: its versions stay recoverable as the vault secret).
    Delete { path: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Store the resource policy of a prefix (default: every path).
    Set {
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// REPO, REPO/TYPE or REPO/TYPE/TAG; the longest matching prefix decides a request.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Print the resource policy of a prefix.
    Get {
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Evaluate a policy (the stored one for the path, or --file) for claims and a path.
    Test {
        /// REPO/TYPE/TAG
        #[arg(long)]
        path: String,
        /// JSON file of token claims (e.g. a decoded attestation token's payload).
        #[arg(long, value_name = "FILE")]
        claims: PathBuf,
        /// A draft policy instead of the stored one.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

pub fn run(args: KbsArgs) -> ExitCode {
    finish(kbs(args))
}

/// REPO/TYPE/TAG: three segments of `[A-Za-z0-9._-]` (checked before anything is sent).
fn check_path(p: &str) -> CliResult<&str> {
    let segs: Vec<&str> = p.split('/').collect();
    let ok = segs.len() == 3
        && segs.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 64
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        Ok(p)
    } else {
        Err(usage(format!(
            "resource path: expected REPO/TYPE/TAG (each 1-64 of [A-Za-z0-9._-]), found {p:?}"
        )))
    }
}

fn read_text(path: &Path, what: &str) -> CliResult<String> {
    String::from_utf8(read_input(path)?).map_err(|_| usage(format!("{what}: expected UTF-8 text")))
}

fn kbs(args: KbsArgs) -> CliResult<()> {
    // Local input first: bad input exits 2 without touching the server.
    let c;
    match args.command {
        KbsCommand::Resource(ResourceCommand::Set { path, file }) => {
            check_path(&path)?;
            let bytes = Zeroizing::new(read_input(&file)?);
            c = Client::new(&args.client)?;
            let v = c.call_raw("POST", &format!("/kbs/v0/resource/{path}"), &bytes)?;
            if c.json_output() {
                print_json(&v);
            } else {
                print_fields(&[
                    ("path", path.clone()),
                    ("version", v["version"].as_str().unwrap_or_default().into()),
                    ("bytes", bytes.len().to_string()),
                ]);
            }
            Ok(())
        }
        KbsCommand::Resource(ResourceCommand::Get { path, file }) => {
            check_path(&path)?;
            c = Client::new(&args.client)?;
            let v = c.call("GET", &format!("/kbs/v0/admin/resource/{path}"), &[], None)?;
            let b64 = v["value"]
                .as_str()
                .ok_or_else(|| CliError::Transport("resource response has no `value`".into()))?;
            let bytes = Zeroizing::new(STANDARD.decode(b64).map_err(|_| {
                CliError::Transport("resource response `value` is not base64".into())
            })?);
            write_output(&file, &bytes)
        }
        KbsCommand::Resource(ResourceCommand::List) => {
            c = Client::new(&args.client)?;
            let v = c.call("GET", "/kbs/v0/admin/resources", &[], None)?;
            if c.json_output() {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["resources"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| {
                        vec![
                            r["path"].as_str().unwrap_or_default().to_string(),
                            r["updated"].to_string(),
                        ]
                    })
                    .collect();
                print_table(&["PATH", "UPDATED"], &rows);
            }
            Ok(())
        }
        KbsCommand::Resource(ResourceCommand::Delete { path }) => {
            check_path(&path)?;
            c = Client::new(&args.client)?;
            c.call("DELETE", &format!("/kbs/v0/resource/{path}"), &[], None)?;
            println!("deleted {path}");
            Ok(())
        }
        KbsCommand::Policy(PolicyCommand::Set { file, prefix }) => {
            let text = read_text(&file, "policy")?;
            c = Client::new(&args.client)?;
            let v = c.call(
                "POST",
                "/kbs/v0/resource-policy",
                &[],
                Some(&json!({"policy": b64url(text.as_bytes()), "prefix": prefix})),
            )?;
            if c.json_output() {
                print_json(&v);
            } else {
                print_fields(&[
                    ("prefix", v["prefix"].as_str().unwrap_or_default().into()),
                    ("version", v["version"].as_str().unwrap_or_default().into()),
                ]);
            }
            Ok(())
        }
        KbsCommand::Policy(PolicyCommand::Get { prefix }) => {
            c = Client::new(&args.client)?;
            let v = c.call(
                "GET",
                "/kbs/v0/resource-policy",
                &[("prefix", prefix.as_str())],
                None,
            )?;
            if c.json_output() {
                print_json(&v);
                return Ok(());
            }
            let text = v["policy"]
                .as_str()
                .and_then(|p| super::client::decode_b64("policy", p).ok())
                .ok_or_else(|| CliError::Transport("policy response has no `policy`".into()))?;
            write_output(Path::new("-"), &text)
        }
        KbsCommand::Policy(PolicyCommand::Test { path, claims, file }) => {
            check_path(&path)?;
            let claims: Value = serde_json::from_str(&read_text(&claims, "claims")?)
                .map_err(|e| usage(format!("claims: expected a JSON object: {e}")))?;
            let mut body = json!({"path": path, "claims": claims});
            if let Some(f) = &file {
                body["policy"] = json!(b64url(read_text(f, "policy")?.as_bytes()));
            }
            c = Client::new(&args.client)?;
            let v = c.call(
                "POST",
                "/kbs/v0/admin/resource-policy/test",
                &[],
                Some(&body),
            )?;
            print_json(&v);
            if v["allowed"] == true {
                Ok(())
            } else {
                Err(CliError::Negative(format!("the policy denies {path}")))
            }
        }
    }
}
