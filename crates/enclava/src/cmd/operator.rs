//! `enclava operator ...`: initialize, unseal, seal and inspect a vault over HTTP.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::client::{
    self, CliError, CliResult, Client, ClientOpts, print_fields, print_json, show, usage,
};

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: OperatorCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Initialize a new vault: generate the root key and split its unseal key into shares.
    /// The shares are printed once and never stored by the server.
    Init {
        /// Number of unseal shares to create.
        #[arg(long, default_value_t = 5)]
        shares: u8,
        /// Number of shares needed to unseal.
        #[arg(long, default_value_t = 3)]
        threshold: u8,
        /// File holding the one-time init token the server wrote to DATA_DIR/init.token at start
        /// (copy it here when the server runs elsewhere) [default: DATA_DIR/init.token].
        #[arg(long, env = "ENCLAVA_INIT_TOKEN_FILE", value_name = "FILE")]
        init_token_file: Option<PathBuf>,
        /// The server's data directory, where init.token is looked for without --init-token-file
        /// [default: ./enclava-data, the server's default].
        #[arg(long, env = "ENCLAVA_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Submit one unseal share (prompted for, without echo, when not given).
    Unseal {
        /// The share; omit it to be prompted (keeps it out of shell history and the process list).
        share: Option<String>,
    },
    /// Seal the vault: drop the root key from memory until it is unsealed again.
    Seal,
    /// Show whether the vault is initialized and sealed, and the unseal progress.
    Status,
    /// Rotate a service key (Administrator only; audited): the attestation token signer (the
    /// previous keys stay in /certs so their tokens keep verifying) or the release signer.
    RotateServiceKey {
        /// Which service key.
        #[arg(long, value_enum)]
        key: ServiceKeyArg,
    },
}

/// The service keys an operator can rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKeyArg {
    /// The attestation token signer.
    Attestation,
    /// The secure key release answer signer.
    Release,
}

impl ServiceKeyArg {
    fn name(self) -> &'static str {
        match self {
            ServiceKeyArg::Attestation => "attestation",
            ServiceKeyArg::Release => "release",
        }
    }
}

pub fn run(args: OperatorArgs) -> ExitCode {
    client::finish(run_inner(args))
}

/// Check `init` parameters: 1 <= threshold <= shares, and a single share only with threshold 1.
pub fn check_init(shares: u8, threshold: u8) -> CliResult<()> {
    if shares == 0 || threshold == 0 {
        return Err(usage(format!(
            "--shares and --threshold must be at least 1 (found shares={shares}, threshold={threshold})"
        )));
    }
    if threshold > shares {
        return Err(usage(format!(
            "--threshold ({threshold}) cannot exceed --shares ({shares}): the vault could never be unsealed"
        )));
    }
    Ok(())
}

/// The init token: `--init-token-file`, else `DATA_DIR/init.token`. `None` when the default file
/// does not exist (the request then goes without it and the server explains: 409 when already
/// initialized, else 401); an explicit file that cannot be read is a usage error.
fn read_init_token(
    file: Option<&Path>,
    data_dir: Option<&Path>,
) -> CliResult<Option<Zeroizing<String>>> {
    let path = match (file, data_dir) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(d)) => d.join("init.token"),
        (None, None) => Path::new("enclava-data").join("init.token"),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound && file.is_none() => {
            eprintln!(
                "warning: no init token at {} (the server writes DATA_DIR/init.token at start while the vault is not initialized; pass --init-token-file FILE or --data-dir DIR); sending init without it",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => {
            return Err(usage(format!(
                "cannot read the init token file {}: {e}",
                path.display()
            )));
        }
    };
    let token = Zeroizing::new(text.trim().to_string());
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(usage(format!(
            "the init token file {} is empty or holds more than one token",
            path.display()
        )));
    }
    Ok(Some(token))
}

fn run_inner(args: OperatorArgs) -> CliResult<()> {
    let init_token = if let OperatorCommand::Init {
        shares,
        threshold,
        init_token_file,
        data_dir,
    } = &args.command
    {
        check_init(*shares, *threshold)?;
        Some(read_init_token(
            init_token_file.as_deref(),
            data_dir.as_deref(),
        )?)
    } else {
        None
    };
    // Connection settings are checked before prompting, so a typo does not cost a typed share.
    let c = match &init_token {
        // Init authenticates with the init token, never with an access token.
        Some(t) => {
            let mut opts = args.client.clone();
            opts.token = t.as_ref().map(|t| t.to_string());
            opts.token_file = None;
            Client::new(&opts)?
        }
        None => Client::new(&args.client)?,
    };
    let share = match &args.command {
        OperatorCommand::Unseal { share: Some(s) } => Some(Zeroizing::new(s.trim().to_string())),
        OperatorCommand::Unseal { share: None } => Some(prompt_share()?),
        _ => None,
    };
    if let Some(s) = &share
        && s.is_empty()
    {
        return Err(usage("the unseal share is empty"));
    }
    match args.command {
        OperatorCommand::Init {
            shares, threshold, ..
        } => {
            let v = c.call(
                "POST",
                "/operator/init",
                &[],
                Some(&json!({ "shares": shares, "threshold": threshold })),
            )?;
            let list: Vec<&str> = v
                .get("shares")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if list.len() != usize::from(shares) {
                return Err(CliError::Transport(format!(
                    "init response holds {} shares, expected {shares}",
                    list.len()
                )));
            }
            eprintln!(
                "WARNING: these {shares} unseal shares are shown ONCE and are not stored anywhere.\n\
                 Give each to a different custodian; any {threshold} of them unseal the vault.\n\
                 Losing more than {} of them makes the vault's data unrecoverable.",
                usize::from(shares) - usize::from(threshold)
            );
            if c.json_output() {
                print_json(&v);
            } else {
                for (i, s) in list.iter().enumerate() {
                    println!("share {}: {s}", i + 1);
                }
                println!("threshold: {}", show(&v, &["threshold"]));
            }
            Ok(())
        }
        OperatorCommand::Unseal { .. } => {
            let share = share.ok_or_else(|| usage("no unseal share"))?;
            let quoted = Zeroizing::new(
                serde_json::to_string(share.as_str())
                    .map_err(|e| usage(format!("cannot encode the share: {e}")))?,
            );
            let body = Zeroizing::new(format!("{{\"share\":{}}}", quoted.as_str()));
            let v = c.call_raw("POST", "/operator/unseal", body.as_bytes())?;
            if c.json_output() {
                print_json(&v);
            } else if v.get("sealed").and_then(Value::as_bool) == Some(false) {
                println!("vault unsealed");
            } else if v.get("duplicate").and_then(Value::as_bool) == Some(true) {
                println!(
                    "this share was already given (it did not count again); progress {}/{} (vault still sealed)",
                    show(&v, &["progress"]),
                    show(&v, &["threshold"])
                );
            } else {
                println!(
                    "share accepted; progress {}/{} (vault still sealed)",
                    show(&v, &["progress"]),
                    show(&v, &["threshold"])
                );
            }
            Ok(())
        }
        OperatorCommand::Seal => {
            let v = c.call("POST", "/operator/seal", &[], None)?;
            if c.json_output() {
                print_json(&if v.is_null() {
                    json!({ "sealed": true })
                } else {
                    v
                });
            } else {
                println!("vault sealed");
            }
            Ok(())
        }
        OperatorCommand::RotateServiceKey { key } => {
            let v = c.call(
                "POST",
                &format!("/enclava/service-keys/{}/rotate", key.name()),
                &[],
                Some(&json!({})),
            )?;
            if c.json_output() {
                print_json(&v);
            } else {
                println!(
                    "{} service key rotated; new kid {}",
                    key.name(),
                    show(&v, &["kid"])
                );
            }
            Ok(())
        }
        OperatorCommand::Status => {
            let v = c.call("GET", "/operator/status", &[], None)?;
            if c.json_output() {
                print_json(&v);
            } else {
                print_fields(&[
                    ("initialized", show(&v, &["initialized"])),
                    ("sealed", show(&v, &["sealed"])),
                    (
                        "unseal progress",
                        format!("{}/{}", show(&v, &["progress"]), show(&v, &["threshold"])),
                    ),
                    ("version", show(&v, &["version"])),
                ]);
            }
            Ok(())
        }
    }
}

/// Turns terminal echo back on when dropped (also on error paths).
struct EchoGuard {
    active: bool,
}

impl EchoGuard {
    fn disable() -> Self {
        let ok = Command::new("stty")
            .arg("-echo")
            .stdin(Stdio::inherit())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        EchoGuard { active: ok }
    }
}

impl Drop for EchoGuard {
    fn drop(&mut self) {
        if self.active {
            let _ = Command::new("stty")
                .arg("echo")
                .stdin(Stdio::inherit())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Read one share from standard input; on a terminal, prompt on stderr with echo off.
fn prompt_share() -> CliResult<Zeroizing<String>> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let guard = if interactive {
        eprint!("Unseal share (input hidden): ");
        let _ = io::stderr().flush();
        let g = EchoGuard::disable();
        if !g.active {
            return Err(usage(
                "cannot turn off terminal echo to read the share; pass it as an argument or pipe it on stdin",
            ));
        }
        Some(g)
    } else {
        None
    };
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    drop(guard);
    if interactive {
        eprintln!();
    }
    match read {
        Ok(0) => Err(usage("no unseal share on standard input")),
        Ok(_) => Ok(Zeroizing::new(line.trim().to_string())),
        Err(e) => Err(usage(format!(
            "cannot read the unseal share from standard input: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid_under_propagated_version() {
        use clap::{Args, Command};
        let cmd =
            OperatorArgs::augment_args(Command::new("x").version("1").propagate_version(true));
        cmd.debug_assert();
    }

    #[test]
    fn init_parameters() {
        assert!(check_init(5, 3).is_ok());
        assert!(check_init(1, 1).is_ok());
        assert!(matches!(check_init(3, 5), Err(CliError::Usage(m)) if m.contains("cannot exceed")));
        assert!(check_init(0, 0).is_err());
        assert!(check_init(3, 0).is_err());
    }
}
