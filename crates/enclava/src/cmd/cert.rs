//! `enclava cert ...`: Key Vault certificates over the Key Vault-compatible HTTP API.
//!
//! A certificate owns a key and a secret of the same name and version: `download` reads the
//! secret, which holds the certificate with its private key (PFX or PEM, per the policy's content
//! type) when the key is exportable and has no release policy, otherwise the chain only.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::client::{
    self, CliError, CliResult, Client, ClientOpts, check_name, check_version, id_segment,
    print_fields, print_json, read_input, show, show_time, usage, write_output,
};
use super::object::{Column, Lifecycle, ObjectCli};
use enclava_client::certmodel::{
    Action, Base64Std, CertificateAttributes, CertificateCreateParameters,
    CertificateImportParameters, CertificateMergeParameters, CertificateOperation,
    CertificatePolicy, IssuerParameters, KeyProperties, LifetimeAction, SecretProperties,
    SecretString, SubjectAlternativeNames, Trigger, X509CertificateProperties, operation_status,
};
use enclava_client::model::KeyReleasePolicy;

const PKCS12: &str = "application/x-pkcs12";
const PEM: &str = "application/x-pem-file";

#[derive(Debug, clap::Args)]
pub struct CertArgs {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: CertCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Create a certificate (a new key and a certificate issued by Self, Enclava or Unknown).
    ///
    /// Self and Enclava complete at once and print the certificate; Unknown leaves a pending
    /// operation with a CSR (see --csr-out) to sign elsewhere and `merge`.
    Create(Box<CreateArgs>),
    /// Import a certificate with its private key from a PFX/PKCS#12 or PEM file.
    Import(ImportArgs),
    /// Merge the signed certificate (PEM chain, leaf first) into a pending CSR operation.
    Merge {
        name: String,
        /// PEM file with the signed certificate, then its chain.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Show a certificate (latest version unless --version), or its pending operation.
    #[command(disable_version_flag = true)]
    Get {
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// Show the pending create operation instead (status, CSR).
        #[arg(long, conflicts_with = "version")]
        pending: bool,
    },
    /// Write the certificate with its private key (from its secret) to a PFX or PEM file.
    ///
    /// The key is included only when the policy made it exportable and it has no release policy;
    /// otherwise the file holds the certificate chain alone.
    #[command(disable_version_flag = true)]
    Download {
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// Output format; must match the certificate's content type (default: that type).
        #[arg(long, value_enum)]
        format: Option<DownloadFormat>,
        /// Output file (`-` for standard output); created with mode 0600.
        #[arg(long, short = 'O', value_name = "FILE")]
        out: PathBuf,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List certificates (or deleted certificates with --deleted).
    List {
        #[arg(long)]
        deleted: bool,
        /// Items per request (the CLI follows the pages to the end).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=25))]
        page_size: Option<u32>,
    },
    /// List the versions of a certificate.
    Versions {
        name: String,
        /// Items per request (the CLI follows the pages to the end).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=25))]
        page_size: Option<u32>,
    },
    /// Soft-delete a certificate (with its key and secret).
    Delete { name: String },
    /// Recover a soft-deleted certificate.
    Recover { name: String },
    /// Permanently remove a soft-deleted certificate.
    Purge { name: String },
    /// Write a protected backup of a certificate (all versions, key and secret) to a file.
    Backup {
        name: String,
        #[arg(long, short = 'O', value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a certificate from a backup file.
    Restore {
        #[arg(long = "in", short = 'i', value_name = "FILE")]
        input: PathBuf,
    },
    /// Show or replace a certificate's policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the Enclava issuing CA certificate (PEM), to trust certificates issued by `Enclava`.
    Ca {
        /// Write it to FILE instead of standard output.
        #[arg(long, short = 'O', value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Show the policy.
    Get { name: String },
    /// Update the policy from a JSON file (Key Vault CertificatePolicy; only the fields given
    /// change).
    Set {
        name: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DownloadFormat {
    /// PKCS#12 (binary .pfx/.p12, no password).
    Pfx,
    /// PEM: PKCS#8 PRIVATE KEY then the CERTIFICATE chain, leaf first.
    Pem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    Rsa,
    Ec,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    /// Subject distinguished name, e.g. "CN=api.example.com, O=Example".
    #[arg(long)]
    pub subject: Option<String>,
    /// DNS subject alternative name (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    pub dns_names: Vec<String>,
    /// E-mail subject alternative name (repeatable).
    #[arg(long = "email", value_name = "ADDRESS")]
    pub emails: Vec<String>,
    /// User principal name subject alternative name (repeatable).
    #[arg(long = "upn", value_name = "UPN")]
    pub upns: Vec<String>,
    /// Issuer: Self (self-signed), Enclava (the vault's issuing CA), Unknown (CSR flow).
    #[arg(long, default_value = "Self")]
    pub issuer: String,
    /// Key type.
    #[arg(long, value_enum, default_value_t = KeyType::Rsa)]
    pub kty: KeyType,
    /// RSA key size in bits (2048, 3072, 4096).
    #[arg(long, value_name = "BITS")]
    pub key_size: Option<u32>,
    /// EC curve (P-256, P-384, P-521).
    #[arg(long)]
    pub curve: Option<String>,
    /// Keep the private key in the vault: the secret then holds the chain only.
    #[arg(long)]
    pub not_exportable: bool,
    /// Renewals keep the same key.
    #[arg(long)]
    pub reuse_key: bool,
    /// How the secret holds the certificate.
    #[arg(long, value_enum, default_value_t = DownloadFormat::Pfx)]
    pub content_type: DownloadFormat,
    /// Validity in months.
    #[arg(long, value_name = "MONTHS")]
    pub validity_months: Option<u32>,
    /// Extended key usage OID (repeatable), e.g. 1.3.6.1.5.5.7.3.1 for TLS servers.
    #[arg(long = "eku", value_name = "OID")]
    pub ekus: Vec<String>,
    /// Key usage (repeatable): digitalSignature, keyEncipherment, keyCertSign, ...
    #[arg(long = "key-usage", value_name = "USAGE")]
    pub key_usage: Vec<String>,
    /// Renew automatically this many days before expiry (instead of at 80 % lifetime).
    #[arg(long, value_name = "DAYS", conflicts_with = "renew_at_percent")]
    pub renew_days_before_expiry: Option<u32>,
    /// Renew automatically at this percentage of the lifetime.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=99))]
    pub renew_at_percent: Option<u32>,
    /// Key release policy (JSON file: the Key Vault release policy object, or its `data` alone):
    /// the key is then released only to attested workloads and never put in the secret.
    #[arg(long, value_name = "FILE")]
    pub release_policy: Option<PathBuf>,
    /// Create the certificate disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Tag as KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// For issuer Unknown: write the CSR (PEM) to FILE.
    #[arg(long, value_name = "FILE")]
    pub csr_out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    pub name: String,
    /// PFX/PKCS#12 (binary or base64) or PEM file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// File holding the PFX password (or set ENCLAVA_PFX_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Keep the private key in the vault: the secret then holds the chain only.
    #[arg(long)]
    pub not_exportable: bool,
    /// Import the certificate disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Tag as KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

/// Certificates in the CLI's shared object commands.
const CERTS: ObjectCli = ObjectCli {
    kind: "certificate",
    collection: "certificates",
    print: print_cert,
    id_field: "id",
    columns: &[
        Column {
            header: "ENABLED",
            path: &["attributes", "enabled"],
            time: false,
        },
        Column {
            header: "EXPIRES",
            path: &["attributes", "exp"],
            time: true,
        },
        Column {
            header: "UPDATED",
            path: &["attributes", "updated"],
            time: true,
        },
    ],
};

pub fn run(args: CertArgs) -> ExitCode {
    client::finish(run_inner(args))
}

fn check_version_opt(version: &Option<String>) -> CliResult<()> {
    version
        .as_deref()
        .map(check_version)
        .transpose()
        .map(|_| ())
}

fn validate(cmd: &CertCommand) -> CliResult<()> {
    match cmd {
        CertCommand::Create(a) => check_name("certificate", &a.name),
        CertCommand::Import(a) => check_name("certificate", &a.name),
        CertCommand::Get { name, version, .. } | CertCommand::Download { name, version, .. } => {
            check_name("certificate", name)?;
            check_version_opt(version)
        }
        CertCommand::List { .. } | CertCommand::Restore { .. } | CertCommand::Ca { .. } => Ok(()),
        CertCommand::Merge { name, .. }
        | CertCommand::Versions { name, .. }
        | CertCommand::Delete { name }
        | CertCommand::Recover { name }
        | CertCommand::Purge { name }
        | CertCommand::Backup { name, .. }
        | CertCommand::Policy(PolicyCommand::Get { name })
        | CertCommand::Policy(PolicyCommand::Set { name, .. }) => check_name("certificate", name),
    }
}

fn run_inner(args: CertArgs) -> CliResult<()> {
    validate(&args.command)?;
    // Local input is read and checked before connecting, so bad input exits 2 untouched.
    match args.command {
        CertCommand::Create(a) => {
            let body = create_body(&a)?;
            let c = Client::new(&args.client)?;
            create(&c, &a, &body)
        }
        CertCommand::Import(a) => {
            let body = import_body(&a)?;
            let c = Client::new(&args.client)?;
            let v = c.call_raw("POST", &format!("/certificates/{}/import", a.name), &body)?;
            print_cert(&c, &v);
            Ok(())
        }
        CertCommand::Merge { name, file } => {
            let x5c = chain_from_pem(&file)?;
            let c = Client::new(&args.client)?;
            let body = CertificateMergeParameters {
                x5c,
                ..Default::default()
            };
            let v = c.typed().json(
                "POST",
                &format!("/certificates/{name}/pending/merge"),
                &[],
                Some(&body),
            )?;
            print_cert(&c, &v);
            Ok(())
        }
        CertCommand::Get {
            name,
            version,
            pending,
        } => {
            let c = Client::new(&args.client)?;
            if pending {
                let v = c.call("GET", &format!("/certificates/{name}/pending"), &[], None)?;
                print_operation(&c, &v);
            } else {
                let v = c.call("GET", &cert_path(&name, version.as_deref()), &[], None)?;
                print_cert(&c, &v);
            }
            Ok(())
        }
        CertCommand::Download {
            name,
            version,
            format,
            out,
            force,
        } => {
            // Refuse before any request, so an existing file is never at risk.
            if out.as_os_str() != "-" && !force && out.exists() {
                return Err(usage(format!(
                    "{} exists: pass --force to overwrite it",
                    out.display()
                )));
            }
            let c = Client::new(&args.client)?;
            download(&c, &name, version.as_deref(), format, &out, force)
        }
        CertCommand::List { deleted, page_size } => {
            let c = Client::new(&args.client)?;
            CERTS.run(&c, Lifecycle::List { deleted, page_size })
        }
        CertCommand::Versions { name, page_size } => {
            let c = Client::new(&args.client)?;
            CERTS.run(&c, Lifecycle::Versions { name, page_size })
        }
        CertCommand::Delete { name } => {
            CERTS.run(&Client::new(&args.client)?, Lifecycle::Delete { name })
        }
        CertCommand::Recover { name } => {
            CERTS.run(&Client::new(&args.client)?, Lifecycle::Recover { name })
        }
        CertCommand::Purge { name } => {
            CERTS.run(&Client::new(&args.client)?, Lifecycle::Purge { name })
        }
        CertCommand::Backup { name, out } => {
            CERTS.run(&Client::new(&args.client)?, Lifecycle::Backup { name, out })
        }
        CertCommand::Restore { input } => {
            CERTS.run(&Client::new(&args.client)?, Lifecycle::Restore { input })
        }
        CertCommand::Policy(PolicyCommand::Get { name }) => {
            let c = Client::new(&args.client)?;
            let v = c.call("GET", &format!("/certificates/{name}/policy"), &[], None)?;
            print_policy(&c, &v);
            Ok(())
        }
        CertCommand::Policy(PolicyCommand::Set { name, file }) => {
            let policy: Value = serde_json::from_slice(&read_input(&file)?).map_err(|e| {
                usage(format!(
                    "{}: expected a JSON certificate policy: {e}",
                    file.display()
                ))
            })?;
            if !policy.is_object() {
                return Err(usage(format!(
                    "{}: expected a JSON object (CertificatePolicy), found {}",
                    file.display(),
                    kind_of(&policy)
                )));
            }
            let c = Client::new(&args.client)?;
            let v = c.call(
                "PATCH",
                &format!("/certificates/{name}/policy"),
                &[],
                Some(&policy),
            )?;
            print_policy(&c, &v);
            Ok(())
        }
        CertCommand::Ca { out } => {
            let c = Client::new(&args.client)?;
            let pem = c
                .typed()
                .get_bytes(CA_ROUTE, "application/x-pem-file")
                .map_err(CliError::from)?;
            if !pem.starts_with(b"-----BEGIN CERTIFICATE-----") {
                return Err(CliError::Transport(format!(
                    "GET {CA_ROUTE}: expected a PEM certificate, found {} bytes of something else",
                    pem.len()
                )));
            }
            match out {
                Some(path) => {
                    write_output(&path, &pem)?;
                    if path.as_os_str() != "-" {
                        eprintln!("wrote the Enclava issuing CA to {}", path.display());
                    }
                    Ok(())
                }
                None => write_output(Path::new("-"), &pem),
            }
        }
    }
}

/// How long `create` follows a pending operation, and how often it looks.
const POLL_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The server's route for the Enclava issuing CA certificate (public; PEM).
const CA_ROUTE: &str = "/enclava/certificates/ca";

fn cert_path(name: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/certificates/{name}/{v}"),
        None => format!("/certificates/{name}"),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn content_type(f: DownloadFormat) -> &'static str {
    match f {
        DownloadFormat::Pfx => PKCS12,
        DownloadFormat::Pem => PEM,
    }
}

/// The typed `create` body (the server's own wire model), from the flags; Key Vault's defaults
/// for whatever is not given are the server's.
fn create_body(a: &CreateArgs) -> CliResult<CertificateCreateParameters> {
    if a.subject.is_none() && a.dns_names.is_empty() && a.emails.is_empty() && a.upns.is_empty() {
        return Err(usage(
            "give a --subject (e.g. \"CN=api.example.com\") or at least one --dns/--email/--upn",
        ));
    }
    let mut key_props = KeyProperties {
        kty: Some(
            match a.kty {
                KeyType::Rsa => "RSA",
                KeyType::Ec => "EC",
            }
            .into(),
        ),
        exportable: Some(!a.not_exportable),
        reuse_key: Some(a.reuse_key),
        ..Default::default()
    };
    match (a.kty, a.key_size, &a.curve) {
        (KeyType::Rsa, _, Some(_)) => {
            return Err(usage("--curve applies to --kty ec only"));
        }
        (KeyType::Ec, Some(_), _) => {
            return Err(usage("--key-size applies to --kty rsa only"));
        }
        (KeyType::Rsa, Some(bits), None) => {
            if !matches!(bits, 2048 | 3072 | 4096) {
                return Err(usage(format!(
                    "--key-size: expected 2048, 3072 or 4096, found {bits}"
                )));
            }
            key_props.key_size = Some(bits);
        }
        (KeyType::Ec, None, Some(crv)) => {
            if !matches!(crv.as_str(), "P-256" | "P-384" | "P-521") {
                return Err(usage(format!(
                    "--curve: expected P-256, P-384 or P-521, found {crv:?}"
                )));
            }
            key_props.crv = Some(crv.clone());
        }
        _ => {}
    }
    if let Some(path) = &a.release_policy {
        if a.not_exportable {
            return Err(usage(
                "--release-policy needs an exportable key (drop --not-exportable)",
            ));
        }
        key_props.release_policy = Some(release_policy(path)?);
    }
    let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let sans = SubjectAlternativeNames {
        dns_names: nonempty(&a.dns_names),
        emails: nonempty(&a.emails),
        upns: nonempty(&a.upns),
    };
    if a.validity_months == Some(0) {
        return Err(usage("--validity-months: expected at least 1"));
    }
    let x509 = X509CertificateProperties {
        subject: a.subject.clone(),
        sans: (sans != SubjectAlternativeNames::default()).then_some(sans),
        ekus: nonempty(&a.ekus),
        key_usage: nonempty(&a.key_usage),
        validity_months: a.validity_months,
    };
    let trigger = match (a.renew_days_before_expiry, a.renew_at_percent) {
        (Some(d), _) => Some(Trigger {
            days_before_expiry: Some(d),
            ..Default::default()
        }),
        (None, Some(p)) => Some(Trigger {
            lifetime_percentage: Some(p),
            ..Default::default()
        }),
        (None, None) => None,
    };
    let policy = CertificatePolicy {
        key_props: Some(key_props),
        secret_props: Some(SecretProperties {
            content_type: Some(content_type(a.content_type).into()),
        }),
        x509_props: Some(x509),
        issuer: Some(IssuerParameters {
            name: Some(a.issuer.clone()),
            ..Default::default()
        }),
        lifetime_actions: trigger.map(|t| {
            vec![LifetimeAction {
                trigger: Some(t),
                action: Some(Action {
                    action_type: Some("AutoRenew".into()),
                }),
            }]
        }),
        ..Default::default()
    };
    Ok(CertificateCreateParameters {
        policy: Some(policy),
        attributes: a.disabled.then(|| CertificateAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        tags: client::tag_map(&a.tags)?,
        ..Default::default()
    })
}

/// A release policy file: the Key Vault object `{contentType?, data, immutable?}` (data already
/// base64url), or the policy document itself, which is then encoded into `data`.
fn release_policy(path: &Path) -> CliResult<KeyReleasePolicy> {
    let v: Value = serde_json::from_slice(&read_input(path)?).map_err(|e| {
        usage(format!(
            "--release-policy {}: expected JSON: {e}",
            path.display()
        ))
    })?;
    if !v.is_object() {
        return Err(usage(format!(
            "--release-policy {}: expected a JSON object, found {}",
            path.display(),
            kind_of(&v)
        )));
    }
    let wire = if v.get("data").is_some_and(Value::is_string) {
        v
    } else {
        json!({
            "contentType": "application/json; charset=utf-8",
            "data": client::b64url(v.to_string().as_bytes()),
        })
    };
    serde_json::from_value(wire).map_err(|e| {
        usage(format!(
            "--release-policy {}: not a Key Vault release policy: {e}",
            path.display()
        ))
    })
}

fn create(c: &Client, a: &CreateArgs, body: &CertificateCreateParameters) -> CliResult<()> {
    let path = format!("/certificates/{}/create", a.name);
    let mut raw = c.typed().json("POST", &path, &[], Some(body))?;
    let pending = format!("/certificates/{}/pending", a.name);
    // Key Vault's create reply says inProgress even when the issuer completes at once (Self,
    // Enclava); like the SDK pollers, read the operation until it settles. A CSR operation
    // (issuer Unknown) stays inProgress until `merge`, so it settles as soon as it has its CSR.
    let deadline = std::time::Instant::now() + POLL_LIMIT;
    let mut first = true;
    let op = loop {
        let op: CertificateOperation = serde_json::from_value(raw.clone()).map_err(|e| {
            CliError::Transport(format!(
                "{}: expected a certificate operation: {e}",
                if first { &path } else { &pending }
            ))
        })?;
        if op.status != operation_status::IN_PROGRESS
            || (!first && op.csr.is_some())
            || std::time::Instant::now() >= deadline
        {
            break op;
        }
        if !first {
            std::thread::sleep(POLL_INTERVAL);
        }
        first = false;
        raw = c.call("GET", &pending, &[], None)?;
    };
    if op.status == operation_status::COMPLETED {
        let v = c.call("GET", &cert_path(&a.name, None), &[], None)?;
        print_cert(c, &v);
        return Ok(());
    }
    if let Some(out) = &a.csr_out {
        let csr = op
            .csr
            .as_ref()
            .ok_or_else(|| CliError::Transport("the pending operation carries no CSR".into()))?;
        write_output(
            out,
            pem_block("CERTIFICATE REQUEST", csr.as_slice()).as_bytes(),
        )?;
        if out.as_os_str() != "-" {
            eprintln!("wrote the CSR to {}", out.display());
        }
    }
    print_operation(c, &raw);
    if op.status == operation_status::IN_PROGRESS && op.csr.is_none() {
        eprintln!(
            "the operation is still in progress: see `enclava cert get {} --pending`",
            a.name
        );
    }
    if op.status == operation_status::FAILED {
        return Err(CliError::Negative(format!(
            "creating certificate {} failed: {}",
            a.name,
            op.error.map(|e| e.message).unwrap_or_default()
        )));
    }
    Ok(())
}

/// The `{value, pwd?, policy, attributes?, tags?}` body of `import`, zeroized after the request.
fn import_body(a: &ImportArgs) -> CliResult<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(read_input(&a.file)?);
    let (value, ctype) = classify_import(&bytes).ok_or_else(|| {
        usage(format!(
            "{}: expected a PFX/PKCS#12 file (binary or base64) or PEM with a private key and certificate",
            a.file.display()
        ))
    })?;
    let pwd = match &a.password_file {
        Some(p) => {
            let text = Zeroizing::new(read_input(p)?);
            let s = std::str::from_utf8(&text)
                .map_err(|_| usage(format!("password file {} is not UTF-8", p.display())))?;
            Some(Zeroizing::new(s.trim_end_matches(['\r', '\n']).to_string()))
        }
        None => std::env::var("ENCLAVA_PFX_PASSWORD")
            .ok()
            .map(Zeroizing::new),
    };
    // The typed body keeps the key material and password in zeroizing strings.
    let body = CertificateImportParameters {
        value: SecretString::new(value.to_string()),
        pwd: pwd.map(|p| SecretString::new(p.to_string())),
        policy: Some(CertificatePolicy {
            key_props: Some(KeyProperties {
                exportable: Some(!a.not_exportable),
                ..Default::default()
            }),
            secret_props: Some(SecretProperties {
                content_type: Some(ctype.into()),
            }),
            ..Default::default()
        }),
        attributes: a.disabled.then(|| CertificateAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        tags: client::tag_map(&a.tags)?,
        ..Default::default()
    };
    let encoded = Zeroizing::new(
        serde_json::to_vec(&body).map_err(|e| usage(format!("cannot encode the request: {e}")))?,
    );
    Ok(encoded)
}

/// What an import file holds: PEM text (sent as it is), binary PFX (sent base64) or base64 PFX.
fn classify_import(bytes: &[u8]) -> Option<(Zeroizing<String>, &'static str)> {
    let text = std::str::from_utf8(bytes).ok();
    if let Some(t) = text
        && t.contains("-----BEGIN ")
    {
        return Some((Zeroizing::new(t.to_string()), PEM));
    }
    // DER PKCS#12 starts with a SEQUENCE tag.
    if bytes.first() == Some(&0x30) {
        return Some((Zeroizing::new(STANDARD.encode(bytes)), PKCS12));
    }
    let t = text?.trim();
    let der = Zeroizing::new(client::decode_b64("PFX", t).ok()?);
    if der.first() == Some(&0x30) {
        return Some((Zeroizing::new(STANDARD.encode(&*der)), PKCS12));
    }
    None
}

/// The certificates of a PEM file as `x5c` (DER, in file order).
fn chain_from_pem(path: &Path) -> CliResult<Vec<Base64Std>> {
    let bytes = read_input(path)?;
    let certs = enclava_evidence::pem::certificates(&bytes).map_err(|e| {
        usage(format!(
            "{}: expected PEM certificates (leaf first): {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(usage(format!(
            "{}: expected PEM certificates (leaf first), found none",
            path.display()
        )));
    }
    Ok(certs.into_iter().map(Base64Std::from).collect())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn download(
    c: &Client,
    name: &str,
    version: Option<&str>,
    format: Option<DownloadFormat>,
    out: &Path,
    force: bool,
) -> CliResult<()> {
    let path = match version {
        Some(v) => format!("/secrets/{name}/{v}"),
        None => format!("/secrets/{name}"),
    };
    let v = c.call("GET", &path, &[], None)?;
    let ctype = client::s(&v, &["contentType"]).to_string();
    let value = Zeroizing::new(
        v.get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CliError::Transport("the certificate's secret has no string `value`".into())
            })?
            .to_string(),
    );
    drop(v);
    let have = match ctype.as_str() {
        PKCS12 => DownloadFormat::Pfx,
        PEM => DownloadFormat::Pem,
        other => {
            return Err(CliError::Transport(format!(
                "secret {name} is not a certificate's secret: content type {other:?}, expected {PKCS12} or {PEM}"
            )));
        }
    };
    let want = format.unwrap_or(have);
    if want != have {
        return Err(usage(format!(
            "certificate {name} is stored as {ctype}: use --format {} (or change the policy's content type)",
            match have {
                DownloadFormat::Pfx => "pfx",
                DownloadFormat::Pem => "pem",
            }
        )));
    }
    let bytes = match have {
        DownloadFormat::Pfx => Zeroizing::new(client::decode_b64_response("PFX", &value)?),
        DownloadFormat::Pem => Zeroizing::new(value.as_bytes().to_vec()),
    };
    if out.as_os_str() == "-" {
        return write_output(out, &bytes);
    }
    write_private(out, &bytes, force)?;
    let has_key = match have {
        DownloadFormat::Pem => value.contains("PRIVATE KEY-----"),
        // A PFX's bag types are not parsed here; say what was written.
        DownloadFormat::Pfx => true,
    };
    if have == DownloadFormat::Pem && !has_key {
        eprintln!(
            "wrote certificate {name} (chain only: the key is not exportable or has a release policy) to {}",
            out.display()
        );
    } else {
        eprintln!("wrote certificate {name} to {}", out.display());
    }
    Ok(())
}

/// Write a file that may hold a private key: owner-only permissions, never over an existing
/// file unless `force` (then truncated).
fn write_private(path: &Path, bytes: &[u8], force: bool) -> CliResult<()> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            usage(format!(
                "{} exists: pass --force to overwrite it",
                path.display()
            ))
        } else {
            usage(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    f.write_all(bytes)
        .and_then(|_| f.flush())
        .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))
}

fn print_cert(c: &Client, v: &Value) {
    if c.json_output() {
        print_json(v);
        return;
    }
    let id = client::s(v, &["id"]);
    let mut rows = vec![
        ("name", id_segment(id, 1).to_string()),
        ("version", id_segment(id, 0).to_string()),
        ("id", id.to_string()),
        ("kid", show(v, &["kid"])),
        ("sid", show(v, &["sid"])),
        ("x5t", show(v, &["x5t"])),
        ("enabled", show(v, &["attributes", "enabled"])),
        ("not before", show_time(v, &["attributes", "nbf"])),
        ("expires", show_time(v, &["attributes", "exp"])),
        ("created", show_time(v, &["attributes", "created"])),
        ("updated", show_time(v, &["attributes", "updated"])),
    ];
    if v.get("policy").is_some() {
        rows.push(("subject", show(v, &["policy", "x509_props", "subject"])));
        rows.push(("issuer", show(v, &["policy", "issuer", "name"])));
        rows.push((
            "contentType",
            show(v, &["policy", "secret_props", "contentType"]),
        ));
    }
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

fn print_operation(c: &Client, v: &Value) {
    if c.json_output() {
        print_json(v);
        return;
    }
    let mut rows = vec![
        ("operation", show(v, &["id"])),
        ("status", show(v, &["status"])),
        ("issuer", show(v, &["issuer", "name"])),
    ];
    if v.get("status_details").is_some() {
        rows.push(("details", show(v, &["status_details"])));
    }
    if v.get("error").is_some_and(|e| !e.is_null()) {
        rows.push(("error", show(v, &["error", "message"])));
    }
    if v.get("target").is_some() {
        rows.push(("target", show(v, &["target"])));
    }
    if v.get("csr").is_some() {
        rows.push((
            "csr",
            "present (write it with --csr-out, or --output json)".into(),
        ));
    }
    print_fields(&rows);
}

fn print_policy(c: &Client, v: &Value) {
    if c.json_output() {
        print_json(v);
        return;
    }
    print_fields(&[
        ("id", show(v, &["id"])),
        ("issuer", show(v, &["issuer", "name"])),
        ("subject", show(v, &["x509_props", "subject"])),
        ("sans", show(v, &["x509_props", "sans"])),
        ("kty", show(v, &["key_props", "kty"])),
        ("key size", show(v, &["key_props", "key_size"])),
        ("curve", show(v, &["key_props", "crv"])),
        ("exportable", show(v, &["key_props", "exportable"])),
        ("reuse key", show(v, &["key_props", "reuse_key"])),
        ("contentType", show(v, &["secret_props", "contentType"])),
        (
            "validity months",
            show(v, &["x509_props", "validity_months"]),
        ),
        ("lifetime actions", show(v, &["lifetime_actions"])),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid_under_propagated_version() {
        use clap::{Args, Command};
        let cmd = CertArgs::augment_args(Command::new("cert").version("1").propagate_version(true));
        cmd.debug_assert();
    }

    #[derive(clap::Parser)]
    struct T {
        #[command(subcommand)]
        c: CertCommand,
    }

    fn create_args(args: &[&str]) -> CreateArgs {
        use clap::Parser;
        let mut argv = vec!["t", "create"];
        argv.extend_from_slice(args);
        match T::try_parse_from(argv).expect("parse").c {
            CertCommand::Create(a) => *a,
            _ => unreachable!("create parses as create"),
        }
    }

    #[test]
    fn create_flags_become_the_wire_policy() {
        let a = create_args(&[
            "web",
            "--subject",
            "CN=w",
            "--dns",
            "a.test",
            "--dns",
            "b.test",
            "--kty",
            "ec",
            "--curve",
            "P-384",
            "--issuer",
            "Enclava",
            "--content-type",
            "pem",
            "--renew-days-before-expiry",
            "10",
            "--tag",
            "env=prod",
            "--disabled",
        ]);
        let wire = serde_json::to_value(create_body(&a).unwrap()).unwrap();
        assert_eq!(
            wire,
            json!({
                "policy": {
                    "key_props": {"kty": "EC", "crv": "P-384", "exportable": true, "reuse_key": false},
                    "secret_props": {"contentType": "application/x-pem-file"},
                    "x509_props": {"subject": "CN=w", "sans": {"dns_names": ["a.test", "b.test"]}},
                    "issuer": {"name": "Enclava"},
                    "lifetime_actions": [{"trigger": {"days_before_expiry": 10},
                                          "action": {"action_type": "AutoRenew"}}],
                },
                "attributes": {"enabled": false},
                "tags": {"env": "prod"},
            })
        );
        for bad in [
            vec!["x"],
            vec![
                "x",
                "--subject",
                "CN=x",
                "--kty",
                "ec",
                "--key-size",
                "2048",
            ],
            vec!["x", "--subject", "CN=x", "--curve", "P-256"],
            vec!["x", "--subject", "CN=x", "--validity-months", "0"],
        ] {
            assert!(
                matches!(create_body(&create_args(&bad)), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn import_files_are_recognised() {
        let (v, t) = classify_import(b"-----BEGIN CERTIFICATE-----\nAA==\n").unwrap();
        assert_eq!(t, PEM);
        assert!(v.starts_with("-----BEGIN"));
        let (v, t) = classify_import(&[0x30, 0x82, 0x01, 0x00]).unwrap();
        assert_eq!((v.as_str(), t), ("MIIBAA==", PKCS12));
        let (v, t) = classify_import(b"MIIBAA==\n").unwrap();
        assert_eq!((v.as_str(), t), ("MIIBAA==", PKCS12));
        assert!(classify_import(b"hello").is_none());
        assert!(classify_import(b"").is_none());
    }

    #[test]
    fn pem_blocks_wrap_at_64() {
        let pem = pem_block("CERTIFICATE REQUEST", &[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE REQUEST-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE REQUEST-----"));
    }
}
