//! `enclava audit ...`: verify and export the tamper-evident audit log.
//!
//! `verify` opens the vault's store directly, the SQLite file of a data directory (run it on the
//! server host, ideally on a copy or while the server is stopped) or the PostgreSQL database the
//! replicas share (`--store`), and checks the hash chain and the signed checkpoints. It only
//! reads: the checkpoint key it verifies with is the public key recorded in the store or pinned
//! with `--checkpoint-key`, never a private key.
//! `export` reads either the store directly (`--data-dir`) or the server's audit API.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use enclava_audit::{AuditEntry, ProblemKind, VerifyReport};
use enclava_store::{SqliteStore, Store, Table};
use serde_json::{Value, json};

use super::client::{
    self, CliError, CliResult, Client, ClientOpts, OutputFormat, decode_b64, print_fields, usage,
};

/// The store file inside a data directory.
pub const DB_FILE: &str = "vault.db";

/// Meta key under which the server records the checkpoint public key (SEC1 uncompressed point);
/// the same value as `enclava_server::lifecycle::AUDIT_PUBLIC_META`.
pub const AUDIT_PUBLIC_META: &str = "audit/checkpoint-public-key";

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON entry per line.
    Jsonl,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the audit chain and its signed checkpoints; exits 1 at the first broken entry.
    Verify {
        /// The server's data directory: its vault.db (SQLite), and its signed head file
        /// (audit-head.json), which is also compared with the chain when --store is given.
        #[arg(long, value_name = "DIR", required_unless_present = "store")]
        data_dir: Option<PathBuf>,
        /// Verify the chain in the PostgreSQL database the replicas share instead, e.g.
        /// postgres://enclava:PASSWORD@db1,db2/enclava?target_session_attrs=read-write. Prefer
        /// the environment variable: a flag is visible in the process list.
        #[arg(
            long,
            value_name = "URL",
            env = "ENCLAVA_STORE",
            hide_env_values = true
        )]
        store: Option<enclava_server::StoreUrl>,
        /// PEM CA certificates trusted for the PostgreSQL server's TLS certificate.
        #[arg(long, value_name = "FILE", env = "ENCLAVA_STORE_CA_FILE")]
        store_ca_file: Option<PathBuf>,
        /// The checkpoint signer's public key, pinned from a trusted source (uncompressed P-256
        /// point: file with hex, base64url or raw bytes). Default: the key recorded in the store
        /// itself, which protects against a rewritten log but not against an attacker who can
        /// also replace that key.
        #[arg(long, value_name = "FILE")]
        checkpoint_key: Option<PathBuf>,
    },
    /// Export audit entries.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Read the store in this data directory instead of asking the server.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// First sequence number to export.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Output file (default: standard output).
        #[arg(long, short = 'O', value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn run(args: AuditArgs) -> ExitCode {
    client::finish(run_inner(args))
}

fn run_inner(args: AuditArgs) -> CliResult<()> {
    match args.command {
        AuditCommand::Verify {
            data_dir,
            store,
            store_ca_file,
            checkpoint_key,
        } => {
            let (source, store): (String, Box<dyn Store>) = match (&store, &data_dir) {
                (Some(url), _) => (
                    url.redacted(),
                    Box::new(open_postgres(url, store_ca_file.as_deref())?),
                ),
                (None, Some(dir)) => (dir.display().to_string(), Box::new(open_store(dir)?)),
                (None, None) => return Err(usage("give --data-dir DIR or --store URL")),
            };
            verify(
                store.as_ref(),
                &source,
                data_dir.as_deref(),
                checkpoint_key.as_deref(),
                args.client.output,
            )
        }
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
            data_dir,
            from,
            out,
        } => match data_dir {
            Some(dir) => export_local(&dir, from, out.as_deref()),
            None => export_http(&args.client, from, out.as_deref()),
        },
    }
}

fn open_store(data_dir: &Path) -> CliResult<SqliteStore> {
    let db = data_dir.join(DB_FILE);
    if !db.is_file() {
        return Err(usage(format!(
            "no audit store at {} (expected the server's --data-dir, which holds {DB_FILE})",
            db.display()
        )));
    }
    // A running server may hold the write lock for a moment (opening runs idempotent schema
    // statements, which need it): retry briefly instead of failing.
    let mut attempt = 0u32;
    loop {
        match SqliteStore::open(&db) {
            Ok(store) => return Ok(store),
            Err(e) => {
                let msg = e.to_string();
                let busy = msg.contains("locked") || msg.contains("busy");
                if !busy || attempt >= 50 {
                    return Err(CliError::Transport(format!(
                        "cannot open {}: {msg}",
                        db.display()
                    )));
                }
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// Connect to the replicas' PostgreSQL database. Errors name the URL without its password; an
/// unreachable database exits 3 like any other transport failure.
fn open_postgres(
    url: &enclava_server::StoreUrl,
    ca_file: Option<&Path>,
) -> CliResult<enclava_store::PostgresStore> {
    let ca_pem = match ca_file {
        Some(p) => {
            Some(fs::read(p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())))?)
        }
        None => None,
    };
    enclava_store::PostgresStore::connect_with(
        url.expose(),
        enclava_store::PostgresOptions {
            relaxed: false,
            ca_pem,
        },
    )
    .map_err(|e| CliError::Transport(format!("cannot open {}: {e}", url.redacted())))
}

/// Parse a public key: raw 65 bytes, or hex / base64 text of them.
pub fn parse_public_key(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() == 65 && bytes.first() == Some(&4) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| {
            format!(
                "expected 65 raw bytes or hex/base64 text, found {} non-text bytes",
                bytes.len()
            )
        })?
        .trim();
    let decoded = if text.len() == 130 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| format!("bad hex: {e}"))?
    } else {
        decode_b64("checkpoint key", text)?
    };
    if decoded.len() == 65 && decoded.first() == Some(&4) {
        Ok(decoded)
    } else {
        Err(format!(
            "expected an uncompressed P-256 point (65 bytes starting with 0x04), found {} bytes",
            decoded.len()
        ))
    }
}

/// The checkpoint key to verify with, and whether it was pinned by the caller.
fn load_checkpoint_key(
    store: &dyn Store,
    explicit: Option<&Path>,
) -> CliResult<(Option<Vec<u8>>, bool)> {
    let recorded = store.get(Table::Meta, AUDIT_PUBLIC_META).map_err(|e| {
        CliError::Transport(format!("cannot read the recorded checkpoint key: {e}"))
    })?;
    let Some(path) = explicit else {
        return Ok((recorded.filter(|k| !k.is_empty()), false));
    };
    let bytes =
        fs::read(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    let pinned = parse_public_key(&bytes)
        .map_err(|e| usage(format!("checkpoint key {}: {e}", path.display())))?;
    if let Some(r) = &recorded
        && r != &pinned
    {
        eprintln!(
            "warning: the checkpoint key recorded in the store differs from the pinned key {}; \
             verifying with the pinned key",
            path.display()
        );
    }
    Ok((Some(pinned), true))
}

fn kind_name(k: ProblemKind) -> &'static str {
    match k {
        ProblemKind::Modified => "modified",
        ProblemKind::Removed => "removed",
        ProblemKind::Inserted => "inserted",
        ProblemKind::Reordered => "reordered",
    }
}

fn verify(
    store: &dyn Store,
    source: &str,
    data_dir: Option<&Path>,
    key_file: Option<&Path>,
    output: OutputFormat,
) -> CliResult<()> {
    let (key, pinned) = load_checkpoint_key(store, key_file)?;
    // The signed head file (written by the server in its data directory) catches a truncated
    // tail or a rewritten young log that the database's own checkpoints cannot. With several
    // replicas each has its own; it names a point of the one shared chain.
    let head_path = data_dir.map(|d| d.join(enclava_audit::head_file::HEAD_FILE));
    let head = match &head_path {
        Some(p) => enclava_audit::head_file::read(p).map_err(|e| {
            CliError::Negative(format!(
                "the signed audit head {} is unreadable: {e}",
                p.display()
            ))
        })?,
        None => None,
    };
    let report: VerifyReport =
        enclava_audit::verify_with_head(store, key.as_deref().unwrap_or(&[]), head.as_ref())
            .map_err(|e| CliError::Transport(format!("audit verification could not run: {e}")))?;
    let checkpoints_checked = key.is_some();
    let chain_ok = report.first_problem.is_none();
    let checkpoints_ok = !checkpoints_checked
        || (report.checkpoints_ok && report.first_checkpoint_problem.is_none());
    if output == OutputFormat::Json {
        let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("ok".into(), json!(chain_ok && checkpoints_ok));
            m.insert(
                "checkpoint_signatures_checked".into(),
                json!(checkpoints_checked),
            );
        }
        client::print_json(&v);
    } else {
        let mut rows = vec![
            ("entries", report.entries.to_string()),
            ("verified", report.verified.to_string()),
            ("verified head", report.verified_head.clone()),
            ("checkpoints", report.checkpoints.to_string()),
            (
                "signed head",
                match (&head, report.signed_head) {
                    (None, _) => match &head_path {
                        Some(p) => format!("none ({} absent)", p.display()),
                        None => "not checked (no --data-dir)".into(),
                    },
                    (Some(_), Some(seq)) => format!("seq {seq}"),
                    (Some(h), None) => format!("seq {} (signature not verified)", h.seq),
                },
            ),
        ];
        rows.push((
            "checkpoints ok",
            if checkpoints_checked {
                report.checkpoints_ok.to_string()
            } else {
                "not checked (no key)".into()
            },
        ));
        print_fields(&rows);
    }
    if !checkpoints_checked {
        eprintln!(
            "warning: no checkpoint public key is recorded in {source} (and none was given with --checkpoint-key): \
             checkpoint signatures were not checked, so a rewritten tail with recomputed hashes would go unnoticed"
        );
    } else if !pinned {
        eprintln!(
            "note: checkpoints were verified with the key recorded in the store; pin it with --checkpoint-key \
             to also detect an attacker who replaced that key"
        );
    }
    if let Some(p) = &report.first_problem {
        return Err(CliError::Negative(format!(
            "audit chain BROKEN at seq {}: entry {} ({})",
            p.seq,
            kind_name(p.kind),
            p.detail
        )));
    }
    if checkpoints_checked && let Some(cp) = &report.first_checkpoint_problem {
        return Err(CliError::Negative(format!(
            "audit checkpoint at seq {} is BAD: {}",
            cp.seq, cp.detail
        )));
    }
    if !checkpoints_ok {
        return Err(CliError::Negative("audit checkpoints do not verify".into()));
    }
    if output == OutputFormat::Table {
        println!("audit chain intact");
    }
    Ok(())
}

fn open_out(out: Option<&Path>) -> CliResult<Box<dyn Write>> {
    Ok(match out {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(BufWriter::new(fs::File::create(p).map_err(|e| {
                usage(format!("cannot create {}: {e}", p.display()))
            })?))
        }
        _ => Box::new(BufWriter::new(io::stdout().lock())),
    })
}

fn export_local(data_dir: &Path, from: u64, out: Option<&Path>) -> CliResult<()> {
    let store = open_store(data_dir)?;
    let mut w = open_out(out)?;
    let n = enclava_audit::export_jsonl(&store, from, &mut w)
        .map_err(|e| CliError::Transport(format!("audit export failed: {e}")))?;
    w.flush()
        .map_err(|e| CliError::Transport(format!("writing the export failed: {e}")))?;
    eprintln!("exported {n} audit entries");
    Ok(())
}

fn export_http(opts: &ClientOpts, from: u64, out: Option<&Path>) -> CliResult<()> {
    let c = Client::new(opts)?;
    let mut w = open_out(out)?;
    let mut next = from.max(1);
    let mut written = 0u64;
    loop {
        let from_s = next.to_string();
        let v = c.call(
            "GET",
            "/enclava/audit",
            &[("from", &from_s), ("limit", "1000")],
            None,
        )?;
        let entries = match v.get("value") {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(CliError::Transport(
                    "audit response has no `value` array".into(),
                ));
            }
        };
        for e in entries {
            // Canonical field order (as stored and hashed) when the entry parses; as-is otherwise.
            let line = match serde_json::from_value::<AuditEntry>(e.clone()) {
                Ok(entry) => entry.to_canonical_json(),
                Err(_) => serde_json::to_vec(e).map_err(|e| CliError::Transport(e.to_string()))?,
            };
            w.write_all(&line)
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| usage(format!("writing the export failed: {e}")))?;
            written += 1;
        }
        match v.get("nextFrom").and_then(Value::as_u64) {
            // The cursor must advance, so a misbehaving server cannot loop us forever.
            Some(n) if n > next && !entries.is_empty() => next = n,
            _ => break,
        }
    }
    w.flush()
        .map_err(|e| usage(format!("writing the export failed: {e}")))?;
    eprintln!("exported {written} audit entries");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid_under_propagated_version() {
        use clap::{Args, Command};
        let cmd = AuditArgs::augment_args(Command::new("x").version("1").propagate_version(true));
        cmd.debug_assert();
    }

    #[test]
    fn public_key_formats() {
        let mut raw = vec![4u8];
        raw.extend([7u8; 64]);
        assert_eq!(parse_public_key(&raw).unwrap(), raw);
        assert_eq!(parse_public_key(hex::encode(&raw).as_bytes()).unwrap(), raw);
        assert_eq!(
            parse_public_key(format!("{}\n", client::b64url(&raw)).as_bytes()).unwrap(),
            raw
        );
        assert!(parse_public_key(b"04abcd").is_err());
        assert!(parse_public_key(&[0xff; 10]).is_err());
    }
}
