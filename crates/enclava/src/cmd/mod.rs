//! Subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod server;

/// Enclava: a self-hosted confidential-computing platform (attestation, key vault, enclave runtime).
#[derive(Debug, Parser)]
#[command(name = "enclava", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Enclava server (HTTPS; Key Vault-compatible API).
    Server(server::ServerArgs),
}

/// Exit codes: 0 success, 1 the operation ran and said no (verification failed, denied),
/// 2 unusable arguments or input, 3 the server or network failed.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Server(args) => server::run(args),
    }
}
