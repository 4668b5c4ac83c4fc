//! `enclava data encrypt|decrypt|inspect`: protect files for data owners with the Enclava
//! envelope format (docs/envelope.md): a fresh data key per file, wrapped by a vault key through
//! the vault's wrapKey/unwrapKey, then chunked AES-256-GCM that detects truncation, reordering and
//! chunk swaps. Streams with constant memory; output appears only when the whole file succeeded.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_envelope::{BoxError, EncryptOptions, KeyUnwrapper, KeyWrapper};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::client::{CliError, CliResult, Client, ClientOpts, check_name, finish, usage};

#[derive(Debug, clap::Args)]
pub struct DataArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Encrypt a file under a vault key (RSA keys wrap with RSA-OAEP-256, AES keys with A256KW).
    ///
    /// Example: enclava data encrypt --key transactions-key --in tx.csv --out tx.csv.enc
    Encrypt {
        /// The vault key: NAME or NAME/VERSION (latest version when omitted).
        #[arg(long)]
        key: String,
        #[arg(long = "in", value_name = "FILE")]
        in_file: PathBuf,
        #[arg(long = "out", value_name = "FILE")]
        out_file: PathBuf,
        /// Plaintext bytes per authenticated chunk.
        #[arg(long, default_value_t = 64 * 1024)]
        chunk_size: u32,
    },
    /// Decrypt an envelope; the key it names must be usable by the caller (unwrapKey).
    Decrypt {
        #[arg(long = "in", value_name = "FILE")]
        in_file: PathBuf,
        #[arg(long = "out", value_name = "FILE")]
        out_file: PathBuf,
    },
    /// Show an envelope's header (key id, algorithm, chunk size) without decrypting.
    Inspect {
        #[arg(long = "in", value_name = "FILE")]
        in_file: PathBuf,
    },
}

pub fn run(args: DataArgs) -> ExitCode {
    finish(run_inner(args))
}

fn run_inner(args: DataArgs) -> CliResult<()> {
    match args.command {
        DataCommand::Inspect { in_file } => inspect(&in_file, &args.client),
        DataCommand::Encrypt {
            key,
            in_file,
            out_file,
            chunk_size,
        } => {
            let client = Client::new(&args.client)?;
            encrypt(&client, &key, &in_file, &out_file, chunk_size)
        }
        DataCommand::Decrypt { in_file, out_file } => {
            let client = Client::new(&args.client)?;
            decrypt(&client, &in_file, &out_file)
        }
    }
}

fn open_input(path: &Path) -> CliResult<File> {
    File::open(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
}

/// A temporary file beside `out`, renamed over it only on success (and removed otherwise), so an
/// interrupted or failed run never leaves a partial or unauthenticated output behind.
struct PendingOutput {
    tmp: PathBuf,
    out: PathBuf,
    done: bool,
}

impl PendingOutput {
    fn create(out: &Path) -> CliResult<(Self, BufWriter<File>)> {
        let name = out
            .file_name()
            .ok_or_else(|| usage(format!("--out {}: expected a file path", out.display())))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".partial-{}", std::process::id()));
        let tmp = out.with_file_name(tmp_name);
        let file = File::create(&tmp)
            .map_err(|e| usage(format!("cannot create {}: {e}", tmp.display())))?;
        Ok((
            PendingOutput {
                tmp,
                out: out.to_path_buf(),
                done: false,
            },
            BufWriter::with_capacity(1 << 20, file),
        ))
    }

    fn commit(mut self, writer: BufWriter<File>) -> CliResult<()> {
        let file = writer
            .into_inner()
            .map_err(|e| usage(format!("writing {}: {}", self.tmp.display(), e.error())))?;
        file.sync_all()
            .map_err(|e| usage(format!("writing {}: {e}", self.tmp.display())))?;
        std::fs::rename(&self.tmp, &self.out).map_err(|e| {
            usage(format!(
                "cannot move the result to {}: {e}",
                self.out.display()
            ))
        })?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    // Only worth drawing for large files; indicatif hides itself when stderr is not a terminal.
    if total < 16 * 1024 * 1024 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The vault key that wraps data keys, addressed by its full kid.
struct VaultWrapper<'a> {
    client: &'a Client,
    kid: String,
    path: String,
    alg: &'static str,
}

impl KeyWrapper for VaultWrapper<'_> {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn alg(&self) -> &str {
        self.alg
    }
    fn wrap_key(&self, dek: &[u8]) -> Result<Vec<u8>, BoxError> {
        let body = Zeroizing::new(serde_json::to_vec(
            &json!({"alg": self.alg, "value": URL_SAFE_NO_PAD.encode(dek)}),
        )?);
        let resp = self
            .client
            .call_raw("POST", &format!("{}/wrapkey", self.path), &body)?;
        decode_value(&resp).map_err(Into::into)
    }
}

struct VaultUnwrapper<'a> {
    client: &'a Client,
}

impl KeyUnwrapper for VaultUnwrapper<'_> {
    fn unwrap_key(
        &self,
        kid: &str,
        alg: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BoxError> {
        // kid and alg are not authenticated yet: only ever send them to the configured server,
        // at a path we validate ourselves.
        let path = key_path_of(self.client.base(), kid)?;
        let body =
            serde_json::to_vec(&json!({"alg": alg, "value": URL_SAFE_NO_PAD.encode(wrapped)}))?;
        let resp = self
            .client
            .call_raw("POST", &format!("{path}/unwrapkey"), &body)?;
        Ok(Zeroizing::new(decode_value(&resp)?))
    }
}

fn decode_value(resp: &Value) -> CliResult<Vec<u8>> {
    let v = resp.get("value").and_then(Value::as_str).ok_or_else(|| {
        CliError::Transport("expected a `value` in the vault's answer, found none".into())
    })?;
    URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .map_err(|e| CliError::Transport(format!("the vault's `value` is not base64url: {e}")))
}

/// `/keys/NAME/VERSION` for a kid of this server; an envelope sealed by another vault is refused
/// instead of sending its wrapped key somewhere else.
fn key_path_of(base: &str, kid: &str) -> CliResult<String> {
    let rest = kid.strip_prefix(base).and_then(|r| r.strip_prefix("/keys/")).ok_or_else(|| {
        usage(format!("the envelope's key {kid:?} belongs to another vault than {base}: point --url at that vault"))
    })?;
    let mut parts = rest.split('/');
    let (Some(name), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(usage(format!(
            "the envelope's key id {kid:?} is not of the form {base}/keys/NAME/VERSION"
        )));
    };
    check_name("key", name)?;
    super::client::check_version(version)?;
    Ok(format!("/keys/{name}/{version}"))
}

fn encrypt(
    client: &Client,
    key: &str,
    input: &Path,
    output: &Path,
    chunk_size: u32,
) -> CliResult<()> {
    let (name, version) = key.split_once('/').unwrap_or((key, ""));
    check_name("key", name)?;
    if !version.is_empty() {
        super::client::check_version(version)?;
    }
    let bundle = client.call("GET", &format!("/keys/{name}/{version}"), &[], None)?;
    let kid = bundle["key"]["kid"]
        .as_str()
        .ok_or_else(|| CliError::Transport("the vault returned a key without a kid".into()))?
        .to_string();
    let alg = match bundle["key"]["kty"].as_str().unwrap_or("") {
        "RSA" | "RSA-HSM" => "RSA-OAEP-256",
        "oct" | "oct-HSM" => "A256KW",
        other => {
            return Err(usage(format!(
                "key {name:?} is of type {other:?}: expected an RSA or AES (oct) key to wrap data keys"
            )));
        }
    };
    let path = key_path_of(client.base(), &kid)?;
    let wrapper = VaultWrapper {
        client,
        kid,
        path,
        alg,
    };

    let file = open_input(input)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (pending, writer) = PendingOutput::create(output)?;
    let bar = progress_bar(total);
    let options = EncryptOptions {
        chunk_size,
        ..EncryptOptions::default()
    };
    let mut writer = writer;
    let summary = enclava_envelope::encrypt(
        BufReader::with_capacity(1 << 20, file),
        &mut writer,
        &wrapper,
        &options,
        &mut |n| bar.set_position(n),
    )
    .map_err(|e| envelope_error(e, input))?;
    bar.finish_and_clear();
    writer
        .flush()
        .map_err(|e| usage(format!("writing {}: {e}", output.display())))?;
    pending.commit(writer)?;
    report(client, "encrypted", &summary, output);
    Ok(())
}

fn decrypt(client: &Client, input: &Path, output: &Path) -> CliResult<()> {
    let file = open_input(input)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (pending, mut writer) = PendingOutput::create(output)?;
    let bar = progress_bar(total);
    let unwrapper = VaultUnwrapper { client };
    let summary = enclava_envelope::decrypt(
        BufReader::with_capacity(1 << 20, file),
        &mut writer,
        &unwrapper,
        &mut |n| bar.set_position(n),
    )
    .map_err(|e| envelope_error(e, input))?;
    bar.finish_and_clear();
    pending.commit(writer)?;
    report(client, "decrypted", &summary, output);
    Ok(())
}

fn envelope_error(e: enclava_envelope::EnvelopeError, input: &Path) -> CliError {
    use enclava_envelope::EnvelopeError as E;
    match e {
        // The vault said no (or could not be reached): keep the client's error and its exit code.
        E::KeyUnwrap(inner) | E::KeyWrap(inner) => match inner.downcast::<CliError>() {
            Ok(cli) => *cli,
            Err(other) => CliError::Negative(format!(
                "{}: the data key could not be unwrapped: {other}",
                input.display()
            )),
        },
        E::Io(io) => usage(format!("{}: {io}", input.display())),
        // Authentication failures, truncation, tampering: the file is not what it claims.
        other => CliError::Negative(format!("{}: {other}", input.display())),
    }
}

fn report(client: &Client, what: &str, s: &enclava_envelope::Summary, output: &Path) {
    if client.json_output() {
        super::client::print_json(&json!({
            "result": what,
            "output": output.display().to_string(),
            "kid": s.header.kid(),
            "alg": s.header.wrap_alg(),
            "plaintext_bytes": s.plaintext_bytes,
            "envelope_bytes": s.envelope_bytes,
            "chunks": s.chunks,
        }));
    } else {
        eprintln!(
            "{what} {} bytes ({} chunks) -> {} with key {} ({})",
            s.plaintext_bytes,
            s.chunks,
            output.display(),
            s.header.kid(),
            s.header.wrap_alg()
        );
    }
}

fn inspect(input: &Path, opts: &ClientOpts) -> CliResult<()> {
    let mut file = BufReader::new(open_input(input)?);
    let header = enclava_envelope::read_header(&mut file).map_err(|e| {
        CliError::Negative(format!("{}: not an Enclava envelope: {e}", input.display()))
    })?;
    let v = json!({
        "version": header.version(),
        "kid": header.kid(),
        "alg": header.wrap_alg(),
        "chunk_size": header.chunk_size(),
        "metadata": header.metadata(),
        "note": "the header is authenticated only once the data key is unwrapped",
    });
    if opts.output == super::OutputFormat::Json {
        super::client::print_json(&v);
    } else {
        super::client::print_fields(&[
            ("kid", header.kid().to_string()),
            ("alg", header.wrap_alg().to_string()),
            ("chunk size", header.chunk_size().to_string()),
            ("version", header.version().to_string()),
        ]);
    }
    Ok(())
}
