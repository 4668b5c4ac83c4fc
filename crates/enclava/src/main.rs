//! The `enclava` command-line tool. A thin shell: every subcommand parses its arguments and calls
//! a library crate.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    cmd::run(cli)
}
