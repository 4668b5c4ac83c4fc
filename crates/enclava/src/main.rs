//! The `enclava` command-line tool. A thin shell: every subcommand parses its arguments and calls
//! a library crate.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

// The server allocates many small, short-lived objects on several threads at once (JSON, claims,
// tokens); glibc's malloc spent about a fifth of an attestation's CPU time in its arenas, mimalloc a
// fraction of that (`enclava bench attest`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    cmd::run(cli)
}
