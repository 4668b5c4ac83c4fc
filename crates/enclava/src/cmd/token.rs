//! `enclava token verify`: verify an attestation token (ES256 / RS256 only; `none` and `HS*` are
//! refused before any key is looked at) against a JWKS (fetched or from a file) or a pinned PEM
//! key, checking `exp` / `nbf` (60 s leeway), the issuer and optionally the audience.
//!
//! Exit codes: 0 valid, 1 invalid (the reason code on stderr, e.g. `bad_signature`,
//! `token_expired`, `wrong_issuer`, `wrong_audience`, `alg_none`, `alg_symmetric`), 2 bad
//! arguments or unusable key input, 3 the JWKS could not be fetched.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use der::Decode;
use enclava_token::{Expectations, Jwk, Jwks, KeySource};
use serde_json::{Value, json};

use super::OutputFormat;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Verify an attestation token's signature and claims.
    ///
    /// Examples:
    ///   enclava token verify "$TOKEN" --jwks-url https://attest.example/certs --issuer https://attest.example
    ///   enclava token verify token.jwt --key signer.pem --issuer https://attest.example --audience my-app
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The token, a file holding it, or `-` for standard input.
    pub token: String,
    /// Fetch the JWKS from this URL (e.g. {issuer}/certs).
    #[arg(long, conflicts_with_all = ["jwks", "key"])]
    pub jwks_url: Option<String>,
    /// A JWKS file ({"keys": [...]}).
    #[arg(long, conflicts_with = "key")]
    pub jwks: Option<PathBuf>,
    /// A pinned public key: PEM SubjectPublicKeyInfo, RSA PUBLIC KEY or certificate.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The expected issuer (`iss`). Without it the issuer is not checked (a warning is printed).
    #[arg(long)]
    pub issuer: Option<String>,
    /// The expected audience (`aud` must be or contain it).
    #[arg(long)]
    pub audience: Option<String>,
    /// CA certificate (PEM) to trust when fetching --jwks-url.
    #[arg(long = "ca-cert", env = "ENCLAVA_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Verify as of this time (RFC 3339; default now).
    #[arg(long)]
    pub at: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

pub fn run(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::Verify(args) => verify(&args),
    }
}

enum Keys {
    Set(Jwks),
    One(Box<Jwk>),
}

fn fail(code: u8, msg: String) -> Result<(), (u8, String)> {
    Err((code, msg))
}

fn verify(args: &VerifyArgs) -> ExitCode {
    match verify_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            if code == 1 && args.output == OutputFormat::Json {
                let (c, r) = msg.split_once(": ").unwrap_or(("invalid", msg.as_str()));
                println!("{}", json!({"valid": false, "code": c, "reason": r}));
            }
            eprintln!(
                "{}",
                if code == 1 {
                    format!("invalid: {msg}")
                } else {
                    format!("error: {msg}")
                }
            );
            ExitCode::from(code)
        }
    }
}

fn verify_inner(args: &VerifyArgs) -> Result<(), (u8, String)> {
    let token = read_token(&args.token).map_err(|e| (2, e))?;
    let now = match &args.at {
        None => Utc::now(),
        Some(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| (2, format!("--at: expected an RFC 3339 time, found {s:?}")))?,
    };
    let keys = if let Some(url) = &args.jwks_url {
        Keys::Set(fetch_jwks(url, args.ca_cert.as_ref())?)
    } else if let Some(p) = &args.jwks {
        let b = std::fs::read(p).map_err(|e| (2, format!("cannot read {}: {e}", p.display())))?;
        Keys::Set(serde_json::from_slice(&b).map_err(|e| {
            (
                2,
                format!("{}: expected a JWKS {{\"keys\": [...]}}: {e}", p.display()),
            )
        })?)
    } else if let Some(p) = &args.key {
        let b = std::fs::read(p).map_err(|e| (2, format!("cannot read {}: {e}", p.display())))?;
        Keys::One(Box::new(
            jwk_from_pem(&b).map_err(|e| (2, format!("{}: {e}", p.display())))?,
        ))
    } else {
        return fail(
            2,
            "no verification key: pass --jwks-url URL, --jwks FILE or --key PEM".into(),
        );
    };
    let issuer = match &args.issuer {
        Some(i) => i.clone(),
        None => {
            eprintln!("warning: no --issuer given: the token's issuer is not checked");
            let (_, claims) = super::attest::decode(&token);
            claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        }
    };
    let mut expect = Expectations::new(issuer, now);
    expect.audience = args.audience.clone();
    let source = match &keys {
        Keys::Set(s) => KeySource::Jwks(s),
        Keys::One(k) => KeySource::Pinned(k.as_ref()),
    };
    match enclava_token::verify(&token, source, &expect) {
        Ok(v) => {
            if args.output == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"valid": true, "header": v.header, "claims": v.claims})
                    )
                    .unwrap_or_default()
                );
            } else {
                println!("valid");
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v.claims).unwrap_or_default()
                );
            }
            Ok(())
        }
        Err(e) => fail(1, format!("{}: {e}", e.code())),
    }
}

fn read_token(arg: &str) -> Result<String, String> {
    let raw = if arg == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        s
    } else if arg.matches('.').count() == 2 && !std::path::Path::new(arg).is_file() {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg).map_err(|e| format!("cannot read token file {arg}: {e}"))?
    };
    let t = raw.trim().to_string();
    if t.is_empty() {
        return Err("the token is empty".into());
    }
    Ok(t)
}

fn fetch_jwks(url: &str, ca: Option<&PathBuf>) -> Result<Jwks, (u8, String)> {
    if !url.starts_with("https://") {
        return Err((2, format!("--jwks-url must be https://, found {url:?}")));
    }
    // The one root-loading path of every Enclava client (the pinned CA, or the public roots).
    let (b, _) =
        enclava_client::agent_builder(ca.map(PathBuf::as_path)).map_err(|e| (2, e.to_string()))?;
    let b = b.timeout(Duration::from_secs(30)).redirects(0);
    let resp = b
        .build()
        .get(url)
        .call()
        .map_err(|e| (3, format!("fetching the JWKS from {url}: {e}")))?;
    let text = resp
        .into_string()
        .map_err(|e| (3, format!("reading the JWKS from {url}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| (3, format!("{url}: expected a JWKS: {e}")))
}

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// A JWK (without kid: it then matches any token kid) from a PEM public key or certificate.
pub fn jwk_from_pem(bytes: &[u8]) -> Result<Jwk, String> {
    let blocks =
        enclava_evidence::pem::parse_all(bytes).map_err(|e| format!("expected PEM: {e}"))?;
    let block = blocks
        .first()
        .ok_or("expected a PEM PUBLIC KEY or CERTIFICATE block, found none")?;
    let spki = match block.label {
        "PUBLIC KEY" => x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&block.contents)
            .map_err(|e| format!("PUBLIC KEY does not parse: {e}"))?,
        "CERTIFICATE" => {
            x509_cert::Certificate::from_der(&block.contents)
                .map_err(|e| format!("CERTIFICATE does not parse: {e}"))?
                .tbs_certificate
                .subject_public_key_info
        }
        "RSA PUBLIC KEY" => {
            let (n, e) = rsa_components(&block.contents)?;
            let mut j = Jwk::from_rsa_components("", &n, &e);
            j.kid = None;
            return Ok(j);
        }
        other => {
            return Err(format!(
                "expected a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block, found {other:?} (private keys are never read)"
            ));
        }
    };
    let bits = spki.subject_public_key.raw_bytes();
    let mut jwk = match spki.algorithm.oid.to_string().as_str() {
        OID_EC => Jwk::from_p256_point("", bits).map_err(|e| e.to_string())?,
        OID_RSA => {
            let (n, e) = rsa_components(bits)?;
            Jwk::from_rsa_components("", &n, &e)
        }
        other => {
            return Err(format!(
                "expected an EC P-256 or RSA key, found algorithm {other}"
            ));
        }
    };
    jwk.kid = None;
    Ok(jwk)
}

/// One DER TLV: (tag, value, rest).
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let err = || "RSA public key: malformed DER".to_string();
    let (&tag, rest) = b.split_first().ok_or_else(err)?;
    let (&l0, rest) = rest.split_first().ok_or_else(err)?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(err());
        }
        let (lb, rest) = rest.split_at(n);
        (lb.iter().fold(0usize, |a, &x| (a << 8) | x as usize), rest)
    };
    if rest.len() < len {
        return Err(err());
    }
    let (v, rest) = rest.split_at(len);
    Ok((tag, v, rest))
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_components(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (tag, seq, _) = tlv(der)?;
    if tag != 0x30 {
        return Err("RSA public key: expected a SEQUENCE".into());
    }
    let (t1, n, rest) = tlv(seq)?;
    let (t2, e, _) = tlv(rest)?;
    if t1 != 0x02 || t2 != 0x02 {
        return Err("RSA public key: expected two INTEGERs".into());
    }
    Ok((n.to_vec(), e.to_vec()))
}
