//! Subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod bench_data;
pub mod bench_vault;
pub mod collateral;
pub mod data;
pub mod evidence;
pub mod server;
// BEGIN vault-client commands (CLI helper)
pub mod audit;
pub mod cert;
pub mod client;
pub mod kbs;
pub mod key;
pub mod object;
pub mod operator;
pub mod secret;
// END vault-client commands
// BEGIN attestation commands
pub mod attest;
pub mod bench_attest;
pub mod bench_kbs;
pub mod bench_release;
mod bench_store;
pub mod policy;
pub mod reference;
pub mod token;
// END attestation commands
// BEGIN enclave commands
pub mod quickstart;
pub mod run;
// END enclave commands

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
    /// Keys: create, list, rotate, back up, and encrypt/decrypt/sign/verify/wrap/unwrap with them.
    Key(key::KeyArgs),
    /// Secrets: set, get, list, delete, recover, purge, back up.
    Secret(secret::SecretArgs),
    /// Certificates: create (self-signed, Enclava-issued, CSR), import, download PFX/PEM, list, lifecycle, policy.
    Cert(cert::CertArgs),
    /// Confidential Containers KBS: resources and resource policies (`/kbs/v0`).
    Kbs(kbs::KbsArgs),
    /// Vault operator tasks: init, unseal, seal, status.
    Operator(operator::OperatorArgs),
    /// Audit log: verify the hash chain and signed checkpoints, export entries.
    Audit(audit::AuditArgs),
    /// Verify TEE evidence (SEV-SNP, TDX, SGX, Azure CVM, simulated) offline.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// Fill the offline collateral cache from AMD KDS / Intel PCS (never on the verification path).
    #[command(subcommand)]
    Collateral(collateral::CollateralCommand),
    /// Protect files with vault keys: encrypt, decrypt, inspect (streaming envelope format).
    Data(data::DataArgs),
    /// Benchmarks that print ratios against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Attest evidence with an attestation service and print the token and its claims.
    Attest(attest::AttestArgs),
    /// Attestation tokens: verify signature, expiry, issuer and audience.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Attestation appraisal policies: get, set, reset, test (dry run), versions.
    Policy(policy::PolicyArgs),
    /// Reference values the policies read (allowed measurements, minimum TCB, signers) per scope: list, get, set, delete, versions.
    Reference(reference::ReferenceArgs),
    /// Run a measured WebAssembly workload in a TEE on sealed inputs (attest, release, decrypt, run, encrypt, receipt).
    Run(run::RunArgs),
    /// The whole product in under a minute: dev server, policies, keys, sealed data, a confidential run, a refused tampered workload, audit.
    Quickstart(quickstart::QuickstartArgs),
}

/// How results are printed: a readable table for people, JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Exit codes: 0 success, 1 the operation ran and said no (verification failed, denied),
/// 2 unusable arguments or input, 3 the server or network failed.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Server(args) => server::run(args),
        Command::Evidence(cmd) => evidence::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Data(args) => data::run(args),
        Command::Collateral(cmd) => collateral::run(cmd),
        Command::Key(args) => key::run(args),
        Command::Secret(args) => secret::run(args),
        Command::Cert(args) => cert::run(args),
        Command::Kbs(args) => kbs::run(args),
        Command::Operator(args) => operator::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Attest(args) => attest::run(args),
        Command::Token(cmd) => token::run(cmd),
        Command::Policy(args) => policy::run(args),
        Command::Reference(args) => reference::run(args),
        Command::Run(args) => run::run(args),
        Command::Quickstart(args) => quickstart::run(args),
    }
}
