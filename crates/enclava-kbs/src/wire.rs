//! Request and answer bodies of `/kbs/v0/auth` and `/kbs/v0/attest`, as kbs-types 0.18 and
//! guest-components' `kbs_protocol` client write them. Parsing never panics; every refusal names
//! the field, what was expected and what was found.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::PROTOCOL_VERSION;
use crate::binding::{self, HashAlg};
use crate::error::{ErrorKind, KbsError};
use crate::jwk::TeePubKey;

/// Largest `/auth` body accepted.
pub const MAX_AUTH_BYTES: usize = 16 * 1024;
/// Largest `/attest` body accepted (Azure vTPM evidence with its certificates is ~40 KiB).
pub const MAX_ATTEST_BYTES: usize = 1 << 20;
/// Largest init-data TOML accepted.
pub const MAX_INIT_DATA_BYTES: usize = 64 * 1024;

/// The TEEs this server verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum KbsTee {
    #[serde(rename = "snp")]
    Snp,
    #[serde(rename = "tdx")]
    Tdx,
    #[serde(rename = "sgx")]
    Sgx,
    #[serde(rename = "az-snp-vtpm")]
    AzSnpVtpm,
    #[serde(rename = "az-tdx-vtpm")]
    AzTdxVtpm,
    #[serde(rename = "sample")]
    Sample,
}

impl KbsTee {
    pub const ALL: [KbsTee; 6] = [
        KbsTee::Snp,
        KbsTee::Tdx,
        KbsTee::Sgx,
        KbsTee::AzSnpVtpm,
        KbsTee::AzTdxVtpm,
        KbsTee::Sample,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KbsTee::Snp => "snp",
            KbsTee::Tdx => "tdx",
            KbsTee::Sgx => "sgx",
            KbsTee::AzSnpVtpm => "az-snp-vtpm",
            KbsTee::AzTdxVtpm => "az-tdx-vtpm",
            KbsTee::Sample => "sample",
        }
    }

    pub fn parse(s: &str) -> Result<KbsTee, KbsError> {
        KbsTee::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                KbsError::new(
                    ErrorKind::UnsupportedTee,
                    format!(
                        "tee: expected one of snp, tdx, sgx, az-snp-vtpm, az-tdx-vtpm, sample, found {:?}",
                        s.chars().take(32).collect::<String>()
                    ),
                )
            })
    }

    /// Bytes of the report field the binding lands in (vTPM TEEs: the quote's extraData, whose
    /// size the digest decides, so the digest is compared unfitted).
    pub fn report_data_len(self) -> Option<usize> {
        match self {
            KbsTee::AzSnpVtpm | KbsTee::AzTdxVtpm => None,
            _ => Some(64),
        }
    }
}

/// `POST /kbs/v0/auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub tee: KbsTee,
    /// The negotiated binding hash.
    pub hash: HashAlg,
}

fn parse_object(body: &[u8], max: usize) -> Result<Map<String, Value>, KbsError> {
    if body.len() > max {
        return Err(KbsError::invalid(format!(
            "body: expected at most {max} bytes, found {}",
            body.len()
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(KbsError::invalid(
            "body: expected a JSON object, found another JSON type",
        )),
        Err(e) => Err(KbsError::invalid(format!(
            "body: expected JSON, found invalid JSON ({e})"
        ))),
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

fn string<'a>(m: &'a Map<String, Value>, k: &str, path: &str) -> Result<&'a str, KbsError> {
    match m.get(k) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(KbsError::invalid(format!(
            "{path}: expected a string, found {}",
            kind_of(v)
        ))),
        None => Err(KbsError::invalid(format!(
            "{path}: expected a member, found none"
        ))),
    }
}

impl AuthRequest {
    pub fn parse(body: &[u8]) -> Result<AuthRequest, KbsError> {
        let m = parse_object(body, MAX_AUTH_BYTES)?;
        let version = string(&m, "version", "version")?;
        if version != PROTOCOL_VERSION {
            return Err(KbsError::new(
                ErrorKind::ProtocolVersion,
                format!(
                    "version: expected exactly {PROTOCOL_VERSION:?}, found {:?}",
                    version.chars().take(32).collect::<String>()
                ),
            ));
        }
        let tee = KbsTee::parse(string(&m, "tee", "tee")?)?;
        // `extra-params`: an object with `supported-hash-algorithms` (0.4.0 clients), or the empty
        // string older clients send.
        let algs: Vec<String> = match m.get("extra-params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if s.is_empty() => Vec::new(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(p)) => hash_list(&p)?,
                _ => {
                    return Err(KbsError::invalid(
                        "extra-params: expected an object or a JSON object string, found other text",
                    ));
                }
            },
            Some(Value::Object(p)) => hash_list(p)?,
            Some(v) => {
                return Err(KbsError::invalid(format!(
                    "extra-params: expected an object, found {}",
                    kind_of(v)
                )));
            }
        };
        Ok(AuthRequest {
            tee,
            hash: binding::negotiate(&algs)?,
        })
    }
}

fn hash_list(p: &Map<String, Value>) -> Result<Vec<String>, KbsError> {
    match p.get("supported-hash-algorithms") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= 16 => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(KbsError::invalid(format!(
                    "extra-params.supported-hash-algorithms[]: expected a string, found {}",
                    kind_of(other)
                ))),
            })
            .collect(),
        Some(v) => Err(KbsError::invalid(format!(
            "extra-params.supported-hash-algorithms: expected an array of at most 16 names, found {}",
            kind_of(v)
        ))),
    }
}

/// The `/auth` answer: `{"nonce": ..., "extra-params": ""}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Challenge {
    pub nonce: String,
    #[serde(rename = "extra-params")]
    pub extra_params: Value,
}

/// `init-data` of an attest request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitData {
    pub format: String,
    pub body: String,
}

/// `POST /kbs/v0/attest`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestRequest {
    pub init_data: Option<InitData>,
    pub nonce: String,
    /// The JWK as sent (the binding hashes it as sent).
    pub tee_pubkey_jwk: Value,
    pub tee_pubkey: TeePubKey,
    /// The TEE-specific evidence JSON.
    pub primary_evidence: Value,
    /// `additional_evidence` as sent (a JSON string; empty when absent).
    pub additional_evidence: String,
}

impl AttestRequest {
    pub fn parse(body: &[u8]) -> Result<AttestRequest, KbsError> {
        let m = parse_object(body, MAX_ATTEST_BYTES)?;
        let init_data = match m.get("init-data") {
            None | Some(Value::Null) => None,
            Some(Value::Object(i)) => {
                let format = string(i, "format", "init-data.format")?;
                if format != "toml" {
                    return Err(KbsError::invalid(format!(
                        "init-data.format: expected \"toml\", found {:?}",
                        format.chars().take(16).collect::<String>()
                    )));
                }
                let body = string(i, "body", "init-data.body")?;
                if body.len() > MAX_INIT_DATA_BYTES {
                    return Err(KbsError::invalid(format!(
                        "init-data.body: expected at most {MAX_INIT_DATA_BYTES} bytes, found {}",
                        body.len()
                    )));
                }
                Some(InitData {
                    format: format.into(),
                    body: body.into(),
                })
            }
            Some(v) => {
                return Err(KbsError::invalid(format!(
                    "init-data: expected an object, found {}",
                    kind_of(v)
                )));
            }
        };
        let rd = match m.get("runtime-data") {
            Some(Value::Object(r)) => r,
            Some(v) => {
                return Err(KbsError::invalid(format!(
                    "runtime-data: expected an object, found {}",
                    kind_of(v)
                )));
            }
            None => {
                return Err(KbsError::invalid(
                    "runtime-data: expected a member, found none",
                ));
            }
        };
        let nonce = string(rd, "nonce", "runtime-data.nonce")?;
        if nonce.len() > 512 {
            return Err(KbsError::invalid(format!(
                "runtime-data.nonce: expected at most 512 bytes, found {}",
                nonce.len()
            )));
        }
        let jwk = rd
            .get("tee-pubkey")
            .ok_or_else(|| {
                KbsError::invalid("runtime-data.tee-pubkey: expected a member, found none")
            })?
            .clone();
        let tee_pubkey = TeePubKey::from_jwk(&jwk)?;
        let (primary_evidence, additional_evidence) = match m.get("tee-evidence") {
            Some(Value::Object(e)) if e.contains_key("primary_evidence") => {
                let primary = match e.get("primary_evidence") {
                    // Some clients send the TEE's evidence as JSON text.
                    Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                        .unwrap_or_else(|_| Value::String(s.clone())),
                    Some(v) => v.clone(),
                    None => Value::Null,
                };
                let additional = match e.get("additional_evidence") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => {
                        return Err(KbsError::invalid(format!(
                            "tee-evidence.additional_evidence: expected a JSON string, found {}",
                            kind_of(v)
                        )));
                    }
                };
                (primary, additional)
            }
            // Pre-composite clients: the evidence itself.
            Some(Value::String(s)) => (
                serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.clone())),
                String::new(),
            ),
            Some(v @ Value::Object(_)) => (v.clone(), String::new()),
            Some(v) => {
                return Err(KbsError::invalid(format!(
                    "tee-evidence: expected an object, found {}",
                    kind_of(v)
                )));
            }
            None => {
                return Err(KbsError::invalid(
                    "tee-evidence: expected a member, found none",
                ));
            }
        };
        Ok(AttestRequest {
            init_data,
            nonce: nonce.into(),
            tee_pubkey_jwk: jwk,
            tee_pubkey,
            primary_evidence,
            additional_evidence,
        })
    }

    /// The binding digest this request's evidence must carry.
    pub fn binding_digest(&self, alg: HashAlg) -> Vec<u8> {
        binding::binding_digest(
            alg,
            &self.tee_pubkey_jwk,
            &self.nonce,
            &self.additional_evidence,
        )
    }
}

/// A resource path `<repository>/<type>/<tag>`: three segments of `[A-Za-z0-9._-]`, none `.` or
/// `..`, at most 64 bytes each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourcePath {
    pub repository: String,
    pub r#type: String,
    pub tag: String,
}

impl ResourcePath {
    pub fn parse(p: &str) -> Result<ResourcePath, KbsError> {
        let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
        let [r, t, g] = segs.as_slice() else {
            return Err(KbsError::invalid(format!(
                "resource path: expected <repository>/<type>/<tag>, found {} segment(s)",
                segs.len()
            )));
        };
        for s in [r, t, g] {
            let ok = !s.is_empty()
                && s.len() <= 64
                && *s != "."
                && *s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(KbsError::invalid(format!(
                    "resource path segment: expected 1-64 characters of [A-Za-z0-9._-], found {:?}",
                    s.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(ResourcePath {
            repository: (*r).into(),
            r#type: (*t).into(),
            tag: (*g).into(),
        })
    }
}

impl std::fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.repository, self.r#type, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_requests() {
        let a = AuthRequest::parse(
            br#"{"version":"0.4.0","tee":"sample","extra-params":{"supported-hash-algorithms":["sha256","sha384"]}}"#,
        )
        .unwrap();
        assert_eq!(a.tee, KbsTee::Sample);
        assert_eq!(a.hash, HashAlg::Sha384);
        let a = AuthRequest::parse(br#"{"version":"0.4.0","tee":"az-snp-vtpm","extra-params":""}"#)
            .unwrap();
        assert_eq!(a.tee, KbsTee::AzSnpVtpm);
        for (body, kind) in [
            (&br#"{"version":"0.1.1","tee":"sample"}"#[..], ErrorKind::ProtocolVersion),
            (br#"{"version":"0.4.0 ","tee":"sample"}"#, ErrorKind::ProtocolVersion),
            (br#"{"tee":"sample"}"#, ErrorKind::InvalidRequest),
            (br#"{"version":"0.4.0","tee":"cca"}"#, ErrorKind::UnsupportedTee),
            (br#"[1]"#, ErrorKind::InvalidRequest),
            (
                br#"{"version":"0.4.0","tee":"tdx","extra-params":{"supported-hash-algorithms":["md5"]}}"#,
                ErrorKind::UnsupportedHashAlgorithm,
            ),
        ] {
            assert_eq!(AuthRequest::parse(body).unwrap_err().kind, kind);
        }
    }

    #[test]
    fn resource_paths() {
        assert_eq!(
            ResourcePath::parse("default/key/1").unwrap().to_string(),
            "default/key/1"
        );
        for bad in ["a/b", "a/b/c/d", "a/../c", "a/b/c d", ""] {
            assert!(ResourcePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attest_request_shapes() {
        let sk =
            aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::ECDH_P256).unwrap();
        let pk = sk.compute_public_key().unwrap();
        let p = pk.as_ref();
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwk = json!({"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":e.encode(&p[1..33]),"y":e.encode(&p[33..])});
        let body = json!({
            "runtime-data": {"nonce": "abc", "tee-pubkey": jwk},
            "tee-evidence": {"primary_evidence": {"svn":"1","report_data":"AA=="}, "additional_evidence": ""},
        });
        let r = AttestRequest::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.nonce, "abc");
        assert_eq!(r.primary_evidence["svn"], "1");
        assert_eq!(r.binding_digest(HashAlg::Sha384).len(), 48);
        let mut b2 = body.clone();
        b2["runtime-data"]["tee-pubkey"]["crv"] = json!("P-521");
        assert!(AttestRequest::parse(b2.to_string().as_bytes()).is_err());
    }
}

#[cfg(test)]
mod robustness {
    //! The parsers on random and mutated input: never a panic (the fuzz target `kbs_request`
    //! does the same coverage-guided; this runs with every `cargo test`).
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn parsers_never_panic_on_mutated_bodies() {
        let seeds: [&[u8]; 3] = [
            br#"{"version":"0.4.0","tee":"sample","extra-params":{"supported-hash-algorithms":["sha384"]}}"#,
            br#"{"init-data":{"format":"toml","body":"version = \"0.1.0\"\nalgorithm = \"sha384\"\n"},"runtime-data":{"nonce":"n","tee-pubkey":{"kty":"RSA","alg":"RSA-OAEP-256","n":"AQAB","e":"AQAB"}},"tee-evidence":{"primary_evidence":{"svn":"1","report_data":"AA=="},"additional_evidence":""}}"#,
            b"default/key/1",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for i in 0..20_000 {
            let mut b = seeds[i % seeds.len()].to_vec();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..b.len().max(1));
                match rng.gen_range(0..3) {
                    0 if !b.is_empty() => b[at] = rng.r#gen(),
                    1 => b.insert(at.min(b.len()), rng.r#gen()),
                    _ if !b.is_empty() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            let _ = AuthRequest::parse(&b);
            if let Ok(r) = AttestRequest::parse(&b) {
                let _ = r.binding_digest(HashAlg::Sha256);
            }
            if let Ok(s) = std::str::from_utf8(&b) {
                let _ = ResourcePath::parse(s);
                let _ = crate::initdata::digest(s);
            }
        }
    }
}
