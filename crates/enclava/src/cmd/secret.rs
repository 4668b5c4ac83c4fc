//! `enclava secret ...`: secrets over the Key Vault-compatible HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use enclava_client::model::{SecretAttributes, SecretSetParameters, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use super::client::{
    self, CliError, CliResult, Client, ClientOpts, check_name, check_version, id_segment,
    print_fields, print_json, read_input, show, show_time, usage, write_output,
};
use super::object::{Column, Lifecycle, ObjectCli};

#[derive(Debug, clap::Args)]
pub struct SecretArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Set a secret (creates a new version).
    Set(SetArgs),
    /// Show a secret and its value (latest version unless --version).
    #[command(disable_version_flag = true)]
    Get {
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// Print only the value (no trailing newline added), for scripts.
        #[arg(long)]
        value_only: bool,
    },
    /// List secrets (or deleted secrets with --deleted); values are never listed.
    List {
        #[arg(long)]
        deleted: bool,
        /// Items per request (the CLI follows the pages to the end).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: Option<u32>,
    },
    /// List the versions of a secret.
    Versions {
        name: String,
        /// Items per request (the CLI follows the pages to the end).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: Option<u32>,
    },
    /// Soft-delete a secret.
    Delete { name: String },
    /// Recover a soft-deleted secret.
    Recover { name: String },
    /// Permanently remove a soft-deleted secret.
    Purge { name: String },
    /// Write a protected backup of a secret (all versions) to a file.
    Backup {
        name: String,
        #[arg(long, short = 'O', value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a secret from a backup file.
    Restore {
        #[arg(long = "in", short = 'i', value_name = "FILE")]
        input: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["value", "file"])))]
pub struct SetArgs {
    pub name: String,
    /// The value (visible in the process list: prefer --file).
    #[arg(long, allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Read the value from a file (`-` for standard input); must be UTF-8 text.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Content type recorded with the secret (e.g. text/plain, application/x-pem-file).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Store the secret disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Tag as KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

/// Secrets in the CLI's shared object commands (never printed with their value there).
const SECRETS: ObjectCli = ObjectCli {
    kind: "secret",
    collection: "secrets",
    print: |c, v| print_secret(c, v, false),
    id_field: "id",
    columns: &[
        Column {
            header: "CONTENT TYPE",
            path: &["contentType"],
            time: false,
        },
        Column {
            header: "ENABLED",
            path: &["attributes", "enabled"],
            time: false,
        },
        Column {
            header: "UPDATED",
            path: &["attributes", "updated"],
            time: true,
        },
    ],
};

pub fn run(args: SecretArgs) -> ExitCode {
    client::finish(run_inner(args))
}

fn validate(cmd: &SecretCommand) -> CliResult<()> {
    match cmd {
        SecretCommand::Set(a) => check_name("secret", &a.name),
        SecretCommand::Get { name, version, .. } => {
            check_name("secret", name)?;
            version
                .as_deref()
                .map(check_version)
                .transpose()
                .map(|_| ())
        }
        SecretCommand::List { .. } | SecretCommand::Restore { .. } => Ok(()),
        SecretCommand::Versions { name, .. }
        | SecretCommand::Delete { name }
        | SecretCommand::Recover { name }
        | SecretCommand::Purge { name }
        | SecretCommand::Backup { name, .. } => check_name("secret", name),
    }
}

fn run_inner(args: SecretArgs) -> CliResult<()> {
    validate(&args.command)?;
    // Read local input before connecting so bad input exits 2 without touching the server.
    let set_value = match &args.command {
        SecretCommand::Set(a) => Some(secret_value(a)?),
        _ => None,
    };
    let c = Client::new(&args.client)?;
    match args.command {
        SecretCommand::Set(a) => {
            let value = set_value.ok_or_else(|| usage("no secret value"))?;
            // The typed wire body keeps the value in a zeroizing string.
            let body = SecretSetParameters {
                value: SecretString::new(value.to_string()),
                content_type: a.content_type.clone(),
                attributes: a.disabled.then(|| SecretAttributes {
                    enabled: Some(false),
                    ..Default::default()
                }),
                tags: client::tag_map(&a.tags)?,
            };
            let encoded = Zeroizing::new(
                serde_json::to_vec(&body)
                    .map_err(|e| usage(format!("cannot encode the request: {e}")))?,
            );
            let v = c.call_raw("PUT", &format!("/secrets/{}", a.name), &encoded)?;
            print_secret(&c, &v, false);
            Ok(())
        }
        SecretCommand::Get {
            name,
            version,
            value_only,
        } => {
            let path = match &version {
                Some(v) => format!("/secrets/{name}/{v}"),
                None => format!("/secrets/{name}"),
            };
            let v = c.call("GET", &path, &[], None)?;
            if value_only {
                let value = v.get("value").and_then(Value::as_str).ok_or_else(|| {
                    CliError::Transport("secret response has no string `value`".into())
                })?;
                return write_output(std::path::Path::new("-"), value.as_bytes());
            }
            print_secret(&c, &v, true);
            Ok(())
        }
        SecretCommand::List { deleted, page_size } => {
            SECRETS.run(&c, Lifecycle::List { deleted, page_size })
        }
        SecretCommand::Versions { name, page_size } => {
            SECRETS.run(&c, Lifecycle::Versions { name, page_size })
        }
        SecretCommand::Delete { name } => SECRETS.run(&c, Lifecycle::Delete { name }),
        SecretCommand::Recover { name } => SECRETS.run(&c, Lifecycle::Recover { name }),
        SecretCommand::Purge { name } => SECRETS.run(&c, Lifecycle::Purge { name }),
        SecretCommand::Backup { name, out } => SECRETS.run(&c, Lifecycle::Backup { name, out }),
        SecretCommand::Restore { input } => SECRETS.run(&c, Lifecycle::Restore { input }),
    }
}

fn secret_value(a: &SetArgs) -> CliResult<Zeroizing<String>> {
    match (&a.value, &a.file) {
        (Some(v), None) => Ok(Zeroizing::new(v.clone())),
        (None, Some(path)) => {
            let bytes = Zeroizing::new(read_input(path)?);
            let text = std::str::from_utf8(&bytes).map_err(|e| {
                usage(format!(
                    "{} is not UTF-8 text ({e}); secrets are strings: base64-encode binary data first",
                    path.display()
                ))
            })?;
            Ok(Zeroizing::new(text.to_string()))
        }
        _ => Err(usage("give exactly one of --value VALUE or --file FILE")),
    }
}

fn print_secret(c: &Client, v: &Value, with_value: bool) {
    if c.json_output() {
        print_json(v);
        return;
    }
    let id = client::s(v, &["id"]);
    let mut rows = vec![
        ("name", id_segment(id, 1).to_string()),
        ("version", id_segment(id, 0).to_string()),
        ("id", id.to_string()),
        ("contentType", show(v, &["contentType"])),
        ("enabled", show(v, &["attributes", "enabled"])),
        ("created", show_time(v, &["attributes", "created"])),
        ("updated", show_time(v, &["attributes", "updated"])),
    ];
    if v.get("tags").is_some() {
        rows.push(("tags", show(v, &["tags"])));
    }
    if v.get("recoveryId").is_some() {
        rows.push(("recoveryId", show(v, &["recoveryId"])));
        rows.push(("deleted", show_time(v, &["deletedDate"])));
        rows.push(("purge after", show_time(v, &["scheduledPurgeDate"])));
    }
    if with_value {
        rows.push(("value", show(v, &["value"])));
    }
    print_fields(&rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid_under_propagated_version() {
        use clap::{Args, Command};
        let cmd =
            SecretArgs::augment_args(Command::new("secret").version("1").propagate_version(true));
        cmd.debug_assert();
    }
}
