//! `enclava reference list|get|set|delete|versions --scope SCOPE [--name NAME]`: the named
//! reference-value sets an appraisal policy reads (`measurements`, `min_tcb`, `signers`,
//! `min_svn`, or any JSON a custom policy understands), per scope (a tenant or workload; attest
//! with `?scope=SCOPE`, default `default`). Needs a token with `policies/manage` (Administrator).
//! Every change is versioned and audited by the server.
//!
//! Exit codes: 0 done, 1 refused (not found, not allowed), 2 bad arguments, 3 server failure.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::client::{CliResult, Client, ClientOpts, finish, print_json, read_input, usage};

#[derive(Debug, clap::Args)]
pub struct ReferenceArgs {
    #[command(subcommand)]
    pub command: ReferenceCommand,
    #[command(flatten)]
    pub client: ClientOpts,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetArg {
    /// The scope (tenant / workload): 1 to 128 of [A-Za-z0-9._-].
    #[arg(long, default_value = "default")]
    pub scope: String,
    /// The set's name: 1 to 128 of [A-Za-z0-9._-].
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReferenceCommand {
    /// Every current set of a scope.
    List {
        /// The scope (tenant / workload).
        #[arg(long, default_value = "default")]
        scope: String,
    },
    /// One set, with its version, hash, author and time.
    Get(SetArg),
    /// Store a new version of a set from a JSON file (`-` for stdin), e.g.
    /// `{"measurements": ["a1f3..."], "min_tcb": {"snp": 8}}`.
    Set {
        #[command(flatten)]
        set: SetArg,
        #[arg(long)]
        file: PathBuf,
    },
    /// Delete a set (the history keeps a tombstone version).
    Delete(SetArg),
    /// Every version of a set, oldest first.
    Versions(SetArg),
}

pub fn run(args: ReferenceArgs) -> ExitCode {
    finish(reference(args))
}

/// Scopes and set names as the server accepts them, checked before any request.
pub(super) fn checked(what: &str, s: &str) -> CliResult<String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(usage(format!(
            "invalid {what} {s:?}: expected 1 to 128 characters of [A-Za-z0-9._-]"
        )))
    }
}

fn path_of(set: &SetArg) -> CliResult<String> {
    Ok(format!(
        "/enclava/reference-values/{}/{}",
        checked("scope", &set.scope)?,
        checked("set name", &set.name)?
    ))
}

fn show_record(client: &Client, v: &Value) {
    if client.json_output() {
        print_json(v);
        return;
    }
    println!(
        "{}/{} version {} by {} at {}",
        v["scope"].as_str().unwrap_or(""),
        v["name"].as_str().unwrap_or(""),
        v["version"],
        v["who"].as_str().unwrap_or(""),
        v["at"].as_str().unwrap_or("")
    );
    if !v["value"].is_null() {
        println!(
            "{}",
            serde_json::to_string_pretty(&v["value"]).unwrap_or_default()
        );
    }
}

fn reference(args: ReferenceArgs) -> CliResult<()> {
    let client = Client::new(&args.client)?;
    match &args.command {
        ReferenceCommand::List { scope } => {
            let scope = checked("scope", scope)?;
            let v = client.call(
                "GET",
                &format!("/enclava/reference-values/{scope}"),
                &[],
                None,
            )?;
            if client.json_output() {
                print_json(&v);
            } else {
                let sets = v["value"].as_object().cloned().unwrap_or_default();
                if sets.is_empty() {
                    println!("scope {scope}: no reference sets");
                }
                for (name, value) in sets {
                    println!("{name}\t{value}");
                }
            }
        }
        ReferenceCommand::Get(set) => {
            let v = client.call("GET", &path_of(set)?, &[], None)?;
            show_record(&client, &v);
        }
        ReferenceCommand::Set { set, file } => {
            let value: Value = serde_json::from_slice(&read_input(file)?).map_err(|e| {
                usage(format!(
                    "{}: expected a JSON reference-value set, found invalid JSON ({e})",
                    file.display()
                ))
            })?;
            if value.is_null() {
                return Err(usage(
                    "a reference-value set cannot be null: use `enclava reference delete`",
                ));
            }
            let v = client.call("PUT", &path_of(set)?, &[], Some(&value))?;
            show_change(&client, &v);
        }
        ReferenceCommand::Delete(set) => {
            let v = client.call("DELETE", &path_of(set)?, &[], None)?;
            show_change(&client, &v);
        }
        ReferenceCommand::Versions(set) => {
            let v = client.call("GET", &format!("{}/versions", path_of(set)?), &[], None)?;
            if client.json_output() {
                print_json(&v);
            } else {
                for r in v["value"].as_array().cloned().unwrap_or_default() {
                    println!(
                        "{}\t{}\t{}\t{}",
                        r["version"],
                        r["who"].as_str().unwrap_or(""),
                        r["at"].as_str().unwrap_or(""),
                        if r["value"].is_null() {
                            "deleted".to_string()
                        } else {
                            r["value"].to_string()
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

fn show_change(client: &Client, v: &Value) {
    if client.json_output() {
        print_json(v);
    } else {
        println!(
            "{}/{}: version {} {}",
            v["scope"].as_str().unwrap_or(""),
            v["name"].as_str().unwrap_or(""),
            v["version"],
            v["action"].as_str().unwrap_or("")
        );
    }
}
