//! `enclava key ...`: keys over the Key Vault-compatible HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use enclava_client::model::{
    Base64Url, KeyAttributes, KeyCreateParameters, KeyOperationsParameters, KeyReleasePolicy,
    KeySignParameters, KeyUpdateParameters, KeyVerifyParameters,
};
use serde_json::Value;
use sha2::Digest as _;

use super::client::{
    self, CliError, CliResult, Client, ClientOpts, check_name, check_version, decode_b64_arg,
    decode_b64_response, id_segment, print_fields, print_json, read_input, show, show_time, usage,
    write_output,
};
use super::object::{Column, Lifecycle, ObjectCli};

#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kty {
    #[value(name = "RSA", alias = "rsa")]
    Rsa,
    #[value(name = "EC", alias = "ec")]
    Ec,
    #[value(name = "oct", alias = "OCT")]
    Oct,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Create a key (or a new version of an existing key).
    Create(CreateArgs),
    /// Show a key (latest version unless --version).
    Get(NameVersion),
    /// List keys (or deleted keys with --deleted).
    List {
        /// List soft-deleted keys instead.
        #[arg(long)]
        deleted: bool,
        /// Items per request (the CLI follows the pages to the end).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: Option<u32>,
    },
    /// List the versions of a key.
    Versions {
        name: String,
        /// Items per request (the CLI follows the pages to the end).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: Option<u32>,
    },
    /// Change a key version's attributes.
    Update(UpdateArgs),
    /// Soft-delete a key (recoverable until purged or its retention ends).
    Delete { name: String },
    /// Recover a soft-deleted key.
    Recover { name: String },
    /// Permanently remove a soft-deleted key.
    Purge { name: String },
    /// Create a new version of a key with fresh key material.
    Rotate { name: String },
    /// Write a protected backup of a key (all versions) to a file.
    Backup {
        name: String,
        /// Output file (`-` for standard output).
        #[arg(long, short = 'O', value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a key from a backup file.
    Restore {
        /// Backup file (`-` for standard input).
        #[arg(long = "in", short = 'i', value_name = "FILE")]
        input: PathBuf,
    },
    /// Encrypt data with a key.
    Encrypt(CryptoArgs),
    /// Decrypt data with a key.
    Decrypt(CryptoArgs),
    /// Wrap (encrypt) a key with a key.
    Wrap(CryptoArgs),
    /// Unwrap (decrypt) a key with a key.
    Unwrap(CryptoArgs),
    /// Sign data (hashed here with the algorithm's hash) or a digest (--digest).
    Sign(SignArgs),
    /// Verify a signature; exits 1 when it is invalid.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
// `--version` names an object version here, not the program version.
#[command(disable_version_flag = true)]
pub struct NameVersion {
    pub name: String,
    /// A specific version (default: latest).
    #[arg(long)]
    pub version: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    /// Key type.
    #[arg(long, value_enum)]
    pub kty: Kty,
    /// Key size in bits: RSA 2048/3072/4096 (default 2048), oct 128/192/256 (default 256).
    #[arg(long)]
    pub size: Option<u32>,
    /// Elliptic curve for EC keys (default P-256).
    #[arg(long, value_parser = ["P-256", "P-384", "P-521", "P-256K"])]
    pub curve: Option<String>,
    /// Permitted operations (default: all the key type supports).
    #[arg(long, value_delimiter = ',', num_args = 1.., value_parser = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"])]
    pub ops: Vec<String>,
    /// Request a hardware-protected key type (RSA-HSM, EC-HSM, oct-HSM).
    #[arg(long)]
    pub hsm: bool,
    /// Mark the key exportable through secure key release (requires --release-policy).
    #[arg(long, requires = "release_policy")]
    pub exportable: bool,
    /// JSON release policy file (Azure SKR grammar).
    #[arg(long, value_name = "FILE")]
    pub release_policy: Option<PathBuf>,
    /// Create the key disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Tag as KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

#[derive(Debug, clap::Args)]
// `--version` names an object version here, not the program version.
#[command(disable_version_flag = true)]
pub struct UpdateArgs {
    pub name: String,
    #[arg(long)]
    pub version: Option<String>,
    /// Enable the key version.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable the key version.
    #[arg(long)]
    pub disable: bool,
    /// Replace the permitted operations.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_parser = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"])]
    pub ops: Vec<String>,
    /// Replace the tags (KEY=VALUE, repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["input", "value"])))]
// `--version` names an object version here, not the program version.
#[command(disable_version_flag = true)]
pub struct CryptoArgs {
    pub name: String,
    /// Key version (default: the latest, resolved before the operation).
    #[arg(long)]
    pub version: Option<String>,
    /// Algorithm, e.g. RSA-OAEP-256, A256GCM, A256KW, CKM_AES_KEY_WRAP_PAD.
    #[arg(long)]
    pub alg: String,
    /// Read the input bytes from a file (`-` for standard input).
    #[arg(long = "in", short = 'i', value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The input bytes as base64 (standard or URL-safe).
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Initialization vector (base64), for AES-CBC and AES-GCM decryption.
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    pub iv: Option<String>,
    /// Additional authenticated data (base64), for AES-GCM.
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    pub aad: Option<String>,
    /// Authentication tag (base64), for AES-GCM decryption.
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    pub tag: Option<String>,
    /// Write the raw result bytes to a file (`-` for standard output) instead of printing base64.
    #[arg(long, short = 'O', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["input", "value"])))]
// `--version` names an object version here, not the program version.
#[command(disable_version_flag = true)]
pub struct SignArgs {
    pub name: String,
    #[arg(long)]
    pub version: Option<String>,
    /// Signature algorithm: PS256/384/512, RS256/384/512, ES256/384/512, ES256K.
    #[arg(long)]
    pub alg: String,
    /// Read the data from a file (`-` for standard input).
    #[arg(long = "in", short = 'i', value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The data as base64.
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    pub value: Option<String>,
    /// The input already is the digest (do not hash it).
    #[arg(long)]
    pub digest: bool,
    /// Write the raw signature to a file (`-` for standard output).
    #[arg(long, short = 'O', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["input", "value"])))]
#[command(group(clap::ArgGroup::new("sig").required(true).args(["signature", "signature_file"])))]
// `--version` names an object version here, not the program version.
#[command(disable_version_flag = true)]
pub struct VerifyArgs {
    pub name: String,
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long)]
    pub alg: String,
    /// Read the data from a file (`-` for standard input).
    #[arg(long = "in", short = 'i', value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The data as base64.
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    pub value: Option<String>,
    /// The input already is the digest (do not hash it).
    #[arg(long)]
    pub digest: bool,
    /// The signature as base64.
    #[arg(long, value_name = "B64", allow_hyphen_values = true)]
    pub signature: Option<String>,
    /// A file holding the raw signature.
    #[arg(long, value_name = "FILE")]
    pub signature_file: Option<PathBuf>,
}

/// Keys in the CLI's shared object commands.
const KEYS: ObjectCli = ObjectCli {
    kind: "key",
    collection: "keys",
    print: print_key,
    id_field: "kid",
    columns: &[
        Column {
            header: "ENABLED",
            path: &["attributes", "enabled"],
            time: false,
        },
        Column {
            header: "CREATED",
            path: &["attributes", "created"],
            time: true,
        },
        Column {
            header: "UPDATED",
            path: &["attributes", "updated"],
            time: true,
        },
    ],
};

pub fn run(args: KeyArgs) -> ExitCode {
    client::finish(run_inner(args))
}

fn run_inner(args: KeyArgs) -> CliResult<()> {
    // Check everything local before connecting.
    validate(&args.command)?;
    let c = Client::new(&args.client)?;
    match args.command {
        KeyCommand::Create(a) => create(&c, a),
        KeyCommand::Get(a) => {
            let v = c.call("GET", &key_path(&a.name, a.version.as_deref()), &[], None)?;
            print_key(&c, &v);
            Ok(())
        }
        KeyCommand::List { deleted, page_size } => {
            KEYS.run(&c, Lifecycle::List { deleted, page_size })
        }
        KeyCommand::Versions { name, page_size } => {
            KEYS.run(&c, Lifecycle::Versions { name, page_size })
        }
        KeyCommand::Update(a) => update(&c, a),
        KeyCommand::Delete { name } => KEYS.run(&c, Lifecycle::Delete { name }),
        KeyCommand::Recover { name } => KEYS.run(&c, Lifecycle::Recover { name }),
        KeyCommand::Purge { name } => KEYS.run(&c, Lifecycle::Purge { name }),
        KeyCommand::Rotate { name } => {
            let v = c.call("POST", &format!("/keys/{name}/rotate"), &[], None)?;
            print_key(&c, &v);
            Ok(())
        }
        KeyCommand::Backup { name, out } => KEYS.run(&c, Lifecycle::Backup { name, out }),
        KeyCommand::Restore { input } => KEYS.run(&c, Lifecycle::Restore { input }),
        KeyCommand::Encrypt(a) => crypt(&c, "encrypt", a),
        KeyCommand::Decrypt(a) => crypt(&c, "decrypt", a),
        KeyCommand::Wrap(a) => crypt(&c, "wrapkey", a),
        KeyCommand::Unwrap(a) => crypt(&c, "unwrapkey", a),
        KeyCommand::Sign(a) => sign(&c, a),
        KeyCommand::Verify(a) => verify(&c, a),
    }
}

fn validate(cmd: &KeyCommand) -> CliResult<()> {
    let (name, version) = match cmd {
        KeyCommand::Create(a) => (Some(a.name.as_str()), None),
        KeyCommand::Get(a) => (Some(a.name.as_str()), a.version.as_deref()),
        KeyCommand::List { .. } | KeyCommand::Restore { .. } => (None, None),
        KeyCommand::Update(a) => (Some(a.name.as_str()), a.version.as_deref()),
        KeyCommand::Versions { name, .. }
        | KeyCommand::Delete { name }
        | KeyCommand::Recover { name }
        | KeyCommand::Purge { name }
        | KeyCommand::Rotate { name }
        | KeyCommand::Backup { name, .. } => (Some(name.as_str()), None),
        KeyCommand::Encrypt(a)
        | KeyCommand::Decrypt(a)
        | KeyCommand::Wrap(a)
        | KeyCommand::Unwrap(a) => (Some(a.name.as_str()), a.version.as_deref()),
        KeyCommand::Sign(a) => (Some(a.name.as_str()), a.version.as_deref()),
        KeyCommand::Verify(a) => (Some(a.name.as_str()), a.version.as_deref()),
    };
    if let Some(n) = name {
        check_name("key", n)?;
    }
    if let Some(v) = version {
        check_version(v)?;
    }
    Ok(())
}

fn key_path(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/keys/{name}/{v}"),
        None => format!("/keys/{name}"),
    }
}

/// The request body for `key create` (the server's wire model), checked locally so mistakes
/// exit 2 with a clear message.
pub fn create_body(
    a: &CreateArgs,
    release_policy: Option<&[u8]>,
) -> CliResult<KeyCreateParameters> {
    let kty = match (a.kty, a.hsm) {
        (Kty::Rsa, false) => "RSA",
        (Kty::Rsa, true) => "RSA-HSM",
        (Kty::Ec, false) => "EC",
        (Kty::Ec, true) => "EC-HSM",
        (Kty::Oct, false) => "oct",
        (Kty::Oct, true) => "oct-HSM",
    };
    let mut body = KeyCreateParameters {
        kty: kty.into(),
        ..Default::default()
    };
    match a.kty {
        Kty::Rsa => {
            if a.curve.is_some() {
                return Err(usage("--curve applies to EC keys only"));
            }
            let size = a.size.unwrap_or(2048);
            if ![2048, 3072, 4096].contains(&size) {
                return Err(usage(format!(
                    "RSA key size must be 2048, 3072 or 4096 bits, found {size}"
                )));
            }
            body.key_size = Some(size);
        }
        Kty::Ec => {
            if let Some(size) = a.size {
                return Err(usage(format!(
                    "--size applies to RSA and oct keys; EC keys take --curve (found --size {size})"
                )));
            }
            body.crv = Some(a.curve.as_deref().unwrap_or("P-256").to_string());
        }
        Kty::Oct => {
            if a.curve.is_some() {
                return Err(usage("--curve applies to EC keys only"));
            }
            let size = a.size.unwrap_or(256);
            if ![128, 192, 256].contains(&size) {
                return Err(usage(format!(
                    "oct key size must be 128, 192 or 256 bits, found {size}"
                )));
            }
            body.key_size = Some(size);
        }
    }
    if !a.ops.is_empty() {
        body.key_ops = Some(a.ops.clone());
    }
    if a.disabled || a.exportable {
        body.attributes = Some(KeyAttributes {
            enabled: a.disabled.then_some(false),
            exportable: a.exportable.then_some(true),
            ..Default::default()
        });
    }
    body.tags = client::tag_map(&a.tags)?;
    if let Some(policy) = release_policy {
        let parsed: Value = serde_json::from_slice(policy)
            .map_err(|e| usage(format!("release policy is not valid JSON: {e}")))?;
        if !parsed.is_object() {
            return Err(usage(
                "release policy must be a JSON object ({\"version\": \"1.0.0\", \"anyOf\": [...]})",
            ));
        }
        body.release_policy = Some(KeyReleasePolicy {
            content_type: Some("application/json; charset=utf-8".into()),
            data: Some(Base64Url(policy.to_vec())),
            ..Default::default()
        });
    }
    Ok(body)
}

fn create(c: &Client, a: CreateArgs) -> CliResult<()> {
    let policy = match &a.release_policy {
        Some(p) => Some(read_input(p)?),
        None => None,
    };
    let body = create_body(&a, policy.as_deref())?;
    let v = c.typed().json(
        "POST",
        &format!("/keys/{}/create", a.name),
        &[],
        Some(&body),
    )?;
    print_key(c, &v);
    Ok(())
}

fn update(c: &Client, a: UpdateArgs) -> CliResult<()> {
    let body = KeyUpdateParameters {
        attributes: (a.enable || a.disable).then(|| KeyAttributes {
            enabled: Some(a.enable),
            ..Default::default()
        }),
        key_ops: (!a.ops.is_empty()).then(|| a.ops.clone()),
        tags: client::tag_map(&a.tags)?,
        release_policy: None,
    };
    if body == KeyUpdateParameters::default() {
        return Err(usage(
            "nothing to update: pass --enable, --disable, --ops or --tag",
        ));
    }
    let v = c.typed().json(
        "PATCH",
        &key_path(&a.name, a.version.as_deref()),
        &[],
        Some(&body),
    )?;
    print_key(c, &v);
    Ok(())
}

/// `/keys/NAME[/VERSION]/OP`: without a version the server uses the current one (and says which
/// in the response's `kid`).
fn op_path(name: &str, version: Option<&str>, op: &str) -> String {
    match version {
        Some(v) => format!("/keys/{name}/{v}/{op}"),
        None => format!("/keys/{name}/{op}"),
    }
}

fn input_bytes(input: &Option<PathBuf>, value: &Option<String>) -> CliResult<Vec<u8>> {
    match (input, value) {
        (Some(path), None) => read_input(path),
        (None, Some(b64)) => decode_b64_arg("--value", b64),
        _ => Err(usage("give exactly one of --in FILE or --value BASE64")),
    }
}

fn crypt(c: &Client, op: &str, a: CryptoArgs) -> CliResult<()> {
    let data = input_bytes(&a.input, &a.value)?;
    if data.is_empty() {
        return Err(usage("the input is empty"));
    }
    let optional = |field: &str, arg: &Option<String>| -> CliResult<Option<Base64Url>> {
        arg.as_deref()
            .map(|b64| decode_b64_arg(&format!("--{field}"), b64).map(Base64Url))
            .transpose()
    };
    let body = KeyOperationsParameters {
        alg: a.alg.clone(),
        value: Base64Url(data),
        iv: optional("iv", &a.iv)?,
        aad: optional("aad", &a.aad)?,
        tag: optional("tag", &a.tag)?,
    };
    let v = c.typed().json(
        "POST",
        &op_path(&a.name, a.version.as_deref(), op),
        &[],
        Some(&body),
    )?;
    let value = v
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Transport(format!("{op} response has no string `value`")))?;
    if let Some(out) = &a.out {
        let bytes = decode_b64_response("result value", value)?;
        write_output(out, &bytes)?;
        // Whatever else the caller needs to decrypt later goes to stderr when stdout carries data.
        for field in ["iv", "tag", "aad"] {
            if let Some(x) = v.get(field).and_then(Value::as_str) {
                eprintln!("{field}: {x}");
            }
        }
        return Ok(());
    }
    if c.json_output() {
        print_json(&v);
    } else {
        let mut rows = vec![
            ("kid", show(&v, &["kid"])),
            ("alg", a.alg.clone()),
            ("value", value.to_string()),
        ];
        for field in ["iv", "tag", "aad"] {
            if v.get(field).and_then(Value::as_str).is_some() {
                rows.push((field, show(&v, &[field])));
            }
        }
        print_fields(&rows);
    }
    Ok(())
}

/// The digest a signature algorithm signs.
pub fn digest_for(alg: &str, data: &[u8]) -> CliResult<Vec<u8>> {
    let bits = match alg {
        "PS256" | "RS256" | "ES256" | "ES256K" | "HS256" => 256,
        "PS384" | "RS384" | "ES384" | "HS384" => 384,
        "PS512" | "RS512" | "ES512" | "HS512" => 512,
        other => {
            return Err(usage(format!(
                "unknown signature algorithm {other:?}: expected PS256/384/512, RS256/384/512, ES256/384/512 or ES256K"
            )));
        }
    };
    Ok(match bits {
        256 => sha2::Sha256::digest(data).to_vec(),
        384 => sha2::Sha384::digest(data).to_vec(),
        _ => sha2::Sha512::digest(data).to_vec(),
    })
}

fn sign(c: &Client, a: SignArgs) -> CliResult<()> {
    let data = input_bytes(&a.input, &a.value)?;
    let digest = if a.digest {
        data
    } else {
        digest_for(&a.alg, &data)?
    };
    let body = KeySignParameters {
        alg: a.alg.clone(),
        value: Base64Url(digest),
    };
    let v = c.typed().json(
        "POST",
        &op_path(&a.name, a.version.as_deref(), "sign"),
        &[],
        Some(&body),
    )?;
    let sig = v
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Transport("sign response has no string `value`".into()))?;
    if let Some(out) = &a.out {
        return write_output(out, &decode_b64_response("signature", sig)?);
    }
    if c.json_output() {
        print_json(&v);
    } else {
        print_fields(&[
            ("kid", show(&v, &["kid"])),
            ("alg", a.alg.clone()),
            ("signature", sig.to_string()),
        ]);
    }
    Ok(())
}

fn verify(c: &Client, a: VerifyArgs) -> CliResult<()> {
    let data = input_bytes(&a.input, &a.value)?;
    let digest = if a.digest {
        data
    } else {
        digest_for(&a.alg, &data)?
    };
    let signature = match (&a.signature, &a.signature_file) {
        (Some(b64), None) => decode_b64_arg("--signature", b64)?,
        (None, Some(path)) => read_input(path)?,
        _ => {
            return Err(usage(
                "give exactly one of --signature BASE64 or --signature-file FILE",
            ));
        }
    };
    let body = KeyVerifyParameters {
        alg: a.alg.clone(),
        digest: Base64Url(digest),
        value: Base64Url(signature),
    };
    let v = c.typed().json(
        "POST",
        &op_path(&a.name, a.version.as_deref(), "verify"),
        &[],
        Some(&body),
    )?;
    let valid = v
        .get("value")
        .and_then(Value::as_bool)
        .ok_or_else(|| CliError::Transport("verify response has no boolean `value`".into()))?;
    if c.json_output() {
        print_json(&v);
    } else if valid {
        println!("signature valid");
    }
    if valid {
        Ok(())
    } else {
        let which = match &a.version {
            Some(v) => format!("key {} version {v}", a.name),
            None => format!("the current version of key {}", a.name),
        };
        Err(CliError::Negative(format!("signature INVALID for {which}")))
    }
}

fn print_key(c: &Client, v: &Value) {
    if c.json_output() {
        print_json(v);
        return;
    }
    let kid = client::s(v, &["key", "kid"]);
    let mut rows = vec![
        ("name", id_segment(kid, 1).to_string()),
        ("version", id_segment(kid, 0).to_string()),
        ("kid", kid.to_string()),
        ("kty", show(v, &["key", "kty"])),
    ];
    if v.pointer("/key/crv").is_some() {
        rows.push(("curve", show(v, &["key", "crv"])));
    }
    if let Some(n) = v.pointer("/key/n").and_then(Value::as_str)
        && let Ok(bytes) = client::decode_b64("n", n)
    {
        let bits = bytes.iter().skip_while(|b| **b == 0).count() * 8;
        rows.push(("size", format!("{bits} bits")));
    }
    let ops = match v.pointer("/key/key_ops").and_then(Value::as_array) {
        Some(ops) => ops
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        None => "-".into(),
    };
    rows.push(("key_ops", ops));
    rows.push(("enabled", show(v, &["attributes", "enabled"])));
    rows.push(("exportable", show(v, &["attributes", "exportable"])));
    rows.push(("created", show_time(v, &["attributes", "created"])));
    rows.push(("updated", show_time(v, &["attributes", "updated"])));
    if v.get("tags").is_some() {
        rows.push(("tags", show(v, &["tags"])));
    }
    if v.get("recoveryId").is_some() {
        rows.push(("recoveryId", show(v, &["recoveryId"])));
        rows.push(("deleted", show_time(v, &["deletedDate"])));
        rows.push(("purge after", show_time(v, &["scheduledPurgeDate"])));
    }
    print_fields(&rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clap_definition_is_valid_under_propagated_version() {
        use clap::{Args, Command};
        let cmd = KeyArgs::augment_args(Command::new("key").version("1").propagate_version(true));
        cmd.debug_assert();
    }

    #[test]
    fn base64url_values_may_start_with_a_dash() {
        use clap::{Args, Command, FromArgMatches};
        let cmd = KeyArgs::augment_args(Command::new("key"));
        let m = cmd
            .try_get_matches_from([
                "key", "decrypt", "k", "--alg", "A256GCM", "--value", "-abc", "--iv", "-iv",
                "--tag", "-t", "--aad", "-a",
            ])
            .unwrap();
        let args = KeyArgs::from_arg_matches(&m).unwrap();
        let KeyCommand::Decrypt(a) = args.command else {
            panic!("not decrypt")
        };
        assert_eq!(a.value.as_deref(), Some("-abc"));
        assert_eq!(a.iv.as_deref(), Some("-iv"));
        assert_eq!(a.tag.as_deref(), Some("-t"));
        assert_eq!(a.aad.as_deref(), Some("-a"));
    }

    fn args(kty: Kty) -> CreateArgs {
        CreateArgs {
            name: "k".into(),
            kty,
            size: None,
            curve: None,
            ops: vec![],
            hsm: false,
            exportable: false,
            release_policy: None,
            disabled: false,
            tags: vec![],
        }
    }

    #[test]
    fn create_body_defaults_and_checks() {
        let wire = |a: &CreateArgs| serde_json::to_value(create_body(a, None).unwrap()).unwrap();
        assert_eq!(
            wire(&args(Kty::Rsa)),
            json!({"kty": "RSA", "key_size": 2048})
        );
        assert_eq!(wire(&args(Kty::Ec)), json!({"kty": "EC", "crv": "P-256"}));
        let mut o = args(Kty::Oct);
        o.hsm = true;
        assert_eq!(wire(&o), json!({"kty": "oct-HSM", "key_size": 256}));
        let mut bad = args(Kty::Rsa);
        bad.size = Some(1024);
        assert!(matches!(create_body(&bad, None), Err(CliError::Usage(m)) if m.contains("1024")));
        let mut bad = args(Kty::Ec);
        bad.size = Some(256);
        assert!(matches!(create_body(&bad, None), Err(CliError::Usage(_))));
    }

    #[test]
    fn create_body_release_policy_is_base64url_json() {
        let mut a = args(Kty::Rsa);
        a.exportable = true;
        let policy = br#"{"version":"1.0.0","anyOf":[]}"#;
        let b = serde_json::to_value(create_body(&a, Some(policy)).unwrap()).unwrap();
        assert_eq!(b["attributes"], json!({"exportable": true}));
        assert_eq!(
            b["release_policy"]["contentType"],
            "application/json; charset=utf-8"
        );
        let data = b["release_policy"]["data"].as_str().unwrap();
        assert_eq!(client::decode_b64("d", data).unwrap(), policy);
        assert!(matches!(
            create_body(&a, Some(b"not json")),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            create_body(&a, Some(b"[1]")),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn digests_match_the_algorithm() {
        assert_eq!(digest_for("ES256", b"abc").unwrap().len(), 32);
        assert_eq!(digest_for("PS384", b"abc").unwrap().len(), 48);
        assert_eq!(digest_for("RS512", b"abc").unwrap().len(), 64);
        assert_eq!(
            hex::encode(digest_for("RS256", b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(digest_for("XX1", b"abc"), Err(CliError::Usage(_))));
    }
}
