//! `enclava server` (STUB: the server helper replaces this file).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {}

pub fn run(_args: ServerArgs) -> ExitCode {
    eprintln!("enclava server: not implemented yet");
    ExitCode::from(2)
}
