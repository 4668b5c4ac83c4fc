//! Secure key release over HTTP: `POST /keys/{name}/{version}/release` (and the SDK's unversioned
//! `POST /keys/{name}//release`).
//!
//! Both are required: the caller's access token must grant `keys/release` (role Release User or
//! above; checked first, so without it the attestation token is never looked at), and the body's
//! `target` must be an attestation token from a trusted issuer ([`TrustedIssuers`]) that satisfies
//! the key's release policy. The pure logic is [`enclava_vault::Vault::release`].
//!
//! Trusted issuers: `[[trusted_issuers]]` in the configuration file (`issuer` plus `jwks_file` or
//! an inline `jwks` table), `ENCLAVA_TRUSTED_ISSUERS=ISSUER=JWKS_FILE[,ISSUER=JWKS_FILE...]`, and
//! Enclava's own attestation service through [`TrustedIssuers::set_local`].
//!
//! The release response is signed by the release signing key, a service key
//! ([`crate::service_keys`]: RSA-2048, sealed, created on first use, rotated only by an
//! Administrator), with a certificate issued by the local CA (`DATA_DIR/ca.pem`) for the
//! configured host names whose only purpose is release signing
//! ([`enclava_token::eku::RELEASE_SIGNING_EKU`], no serverAuth). `enclava run --ca-cert` checks
//! both the chain and the purpose, so neither the TLS key nor any other certificate of the CA
//! can stand in for it. With an operator-provided TLS certificate (no local CA) the release
//! certificate is self-signed. A missing or unusable signer answers 503 `signer_unavailable`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use enclava_identity::{Action, Resource};
use enclava_store::{Op, Table};
use enclava_vault::VaultError;
use enclava_vault::keys::release::{
    IssuerKeys, Jwks, ReleaseRequest, Rs256Signer, TrustedIssuer, TrustedIssuers,
    unverified_summary,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::data::Reply;
use crate::error::ApiError;
use crate::service_keys::{self, ServiceKeyError};

/// Meta key of the release signing certificate chain (JSON, clear).
pub const RELEASE_CERT_META: &str = "release/signing-cert";
/// The environment variable listing trusted issuers.
pub const ENV_TRUSTED_ISSUERS: &str = "ENCLAVA_TRUSTED_ISSUERS";

/// `[[trusted_issuers]]`: an attestation token issuer whose tokens secure key release accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// The `iss` of its tokens.
    pub issuer: String,
    /// A JSON file with its JWKS (`{"keys":[...]}`) or one pinned JWK.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Its JWKS inline.
    #[serde(default)]
    pub jwks: Option<Jwks>,
}

/// Parse `ENCLAVA_TRUSTED_ISSUERS`: comma-separated `ISSUER=JWKS_FILE` pairs (split at the first
/// `=`).
pub fn parse_env_issuers(v: &str) -> Result<Vec<TrustedIssuerConfig>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once('=') {
            Some((iss, file)) if !iss.trim().is_empty() && !file.trim().is_empty() => {
                Ok(TrustedIssuerConfig {
                    issuer: iss.trim().to_string(),
                    jwks_file: Some(PathBuf::from(file.trim())),
                    jwks: None,
                })
            }
            _ => Err(format!(
                "expected ISSUER=JWKS_FILE, found {:?}",
                item.chars().take(100).collect::<String>()
            )),
        })
        .collect()
}

/// Load the configured issuers (reads the JWKS files).
pub fn load_trusted_issuers(cfgs: &[TrustedIssuerConfig]) -> Result<TrustedIssuers, String> {
    let mut out = Vec::new();
    for c in cfgs {
        if c.issuer.trim().is_empty() {
            return Err("trusted issuer: expected a non-empty issuer URL".into());
        }
        let keys = match (&c.jwks_file, &c.jwks) {
            (Some(p), None) => {
                let bytes = std::fs::read(p).map_err(|e| {
                    format!(
                        "trusted issuer {}: cannot read jwks_file {}: {e}",
                        c.issuer,
                        p.display()
                    )
                })?;
                IssuerKeys::from_json(&bytes)
                    .map_err(|e| format!("trusted issuer {} ({}): {e}", c.issuer, p.display()))?
            }
            (None, Some(j)) if !j.keys.is_empty() => IssuerKeys::Jwks(j.clone()),
            (None, Some(_)) => {
                return Err(format!(
                    "trusted issuer {}: expected a jwks with at least one key, found an empty one",
                    c.issuer
                ));
            }
            _ => {
                return Err(format!(
                    "trusted issuer {}: expected exactly one of jwks_file or jwks",
                    c.issuer
                ));
            }
        };
        out.push(TrustedIssuer::new(c.issuer.trim(), keys));
    }
    Ok(TrustedIssuers::new(out))
}

#[derive(Serialize, Deserialize)]
struct StoredCert {
    /// What the certificate was issued for (host names, issuer CA, public key).
    binding: String,
    /// Standard base64 DER, leaf first.
    x5c: Vec<String>,
}

/// The parsed release signer of an earlier call, reused while everything it was built from is
/// unchanged. Parsing an RSA-2048 PKCS#8 key (aws-lc validates it and sets up its Montgomery
/// and blinding state on first use) and unsealing the ring cost more per release than the
/// store reads that tell whether the ring or the certificate changed, so only the reads stay
/// per request: a rotation by this or another replica (a new ring row), a re-issued
/// certificate, a new CA or new host names all miss the cache and rebuild the signer.
#[derive(Default)]
pub struct SignerCache(Mutex<Option<CachedSigner>>);

struct CachedSigner {
    /// SHA-256 of the sealed ring row, of the stored certificate row, and of the host names
    /// with the CA certificate: the signer is only valid for exactly these.
    ring_row: [u8; 32],
    cert_row: [u8; 32],
    context: [u8; 32],
    signer: Arc<Rs256Signer>,
}

impl SignerCache {
    fn get(
        &self,
        ring_row: &[u8; 32],
        cert_row: &[u8; 32],
        context: &[u8; 32],
    ) -> Option<Arc<Rs256Signer>> {
        let cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|c| &c.ring_row == ring_row && &c.cert_row == cert_row && &c.context == context)
            .map(|c| c.signer.clone())
    }

    fn put(&self, entry: Option<CachedSigner>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = entry;
    }
}

/// The host names and the CA certificate a release certificate is bound to.
fn signer_context(st: &AppState, ca: Option<&service_keys::LocalCa>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"release-signer-context-v1\0");
    h.update(st.config.hostnames.join(",").as_bytes());
    h.update([0]);
    if let Some(ca) = ca {
        h.update(&ca.der);
    }
    h.finalize().into()
}

/// The release signer: the current version of the release service key
/// ([`crate::service_keys`]) with its certificate chain `[leaf, CA]` (purpose
/// [`enclava_token::eku::RELEASE_SIGNING_EKU`]). The certificate is re-issued when the key, the
/// CA or the host names change. The parsed signer is reused from [`AppState::release_signer`]
/// while the stored ring and certificate rows, the CA and the host names are unchanged; a
/// sealed vault never uses it.
pub fn release_signer(st: &AppState) -> Result<Arc<Rs256Signer>, ServiceKeyError> {
    let ring = service_keys::Ring::Release;
    let err = |reason: String| ServiceKeyError {
        key: ring.meta_key(),
        reason,
    };
    if st.vault.is_sealed() {
        st.release_signer.put(None);
        return build_release_signer(st).map(|(signer, _)| signer);
    }
    let ca = st.lifecycle.local_ca();
    let context = signer_context(st, ca.as_deref());
    let ring_row = service_keys::row_digest(st.store.as_ref(), ring)?;
    let cert_row = st
        .store
        .get(Table::Meta, RELEASE_CERT_META)
        .map_err(|e| err(e.to_string()))?
        .map(|b| <[u8; 32]>::from(Sha256::digest(&b)));
    if let (Some(ring_row), Some(cert_row)) = (&ring_row, &cert_row)
        && let Some(signer) = st.release_signer.get(ring_row, cert_row, &context)
    {
        return Ok(signer);
    }
    let (signer, rows) = build_release_signer(st)?;
    st.release_signer
        .put(rows.map(|(ring_row, cert_row)| CachedSigner {
            ring_row,
            cert_row,
            context,
            signer: signer.clone(),
        }));
    Ok(signer)
}

/// Builds the release signer from the store (unsealing the ring, issuing the certificate when
/// needed). Also returns the digests of the ring and certificate rows it was built from.
#[allow(clippy::type_complexity)]
fn build_release_signer(
    st: &AppState,
) -> Result<(Arc<Rs256Signer>, Option<([u8; 32], [u8; 32])>), ServiceKeyError> {
    let ring = service_keys::Ring::Release;
    let key_name = ring.meta_key();
    let err = |reason: String| ServiceKeyError {
        key: key_name,
        reason,
    };
    let loaded = service_keys::load_or_create(&st.vault, st.store.as_ref(), ring)?;
    let current = loaded.current();
    let ca = st.lifecycle.local_ca();
    if st.lifecycle.has_local_ca() && ca.is_none() {
        // A release answer must chain to ca.pem; a self-signed one would only be refused.
        return Err(err(
            "expected the local CA to issue its certificate, found the CA key unavailable".into(),
        ));
    }
    let binding = {
        let mut h = Sha256::new();
        h.update(b"release-cert-v3\0");
        h.update(st.config.hostnames.join(",").as_bytes());
        h.update([0]);
        if let Some(ca) = &ca {
            h.update(&ca.der);
        }
        h.update([0]);
        h.update(current.kid.as_bytes());
        hex::encode(h.finalize())
    };
    let stored_row = st
        .store
        .get(Table::Meta, RELEASE_CERT_META)
        .map_err(|e| err(e.to_string()))?;
    let stored: Option<StoredCert> = stored_row
        .as_ref()
        .and_then(|b| serde_json::from_slice(b).ok());
    let (x5c, cert_row) = match stored {
        Some(s) if s.binding == binding && !s.x5c.is_empty() => (s.x5c, stored_row),
        _ => {
            let x5c =
                service_keys::release_x5c(&current.pkcs8, &st.config.hostnames, ca.as_deref())?;
            let v = serde_json::to_vec(&StoredCert {
                binding,
                x5c: x5c.clone(),
            })
            .map_err(|e| err(e.to_string()))?;
            st.store
                .transact(vec![Op::Put {
                    table: Table::Meta,
                    key: RELEASE_CERT_META.into(),
                    value: v.clone(),
                }])
                .map_err(|e| err(e.to_string()))?;
            (x5c, Some(v))
        }
    };
    let leaf = x5c
        .first()
        .and_then(|c| STANDARD.decode(c).ok())
        .unwrap_or_default();
    let kid = enclava_vault::b64::encode(&Sha256::digest(&leaf));
    let signer = Rs256Signer::from_pkcs8(kid, &current.pkcs8)
        .map(|s| Arc::new(s.with_x5c(x5c)))
        .map_err(|e| err(format!("the release signing key does not load: {e}")))?;
    let rows = cert_row.map(|c| (loaded.row_digest, Sha256::digest(&c).into()));
    Ok((signer, rows))
}

fn vault_error(e: VaultError) -> ApiError {
    ApiError::from(e)
}

/// Handle a release request (blocking context). `detail` receives the audit detail (token jti,
/// measurement, issuer): never key material or the token itself.
#[allow(clippy::too_many_arguments)]
pub fn handle(
    st: &AppState,
    name: &str,
    version: Option<&str>,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    api_version: &str,
    principal: &mut Option<String>,
    detail: &mut Option<String>,
) -> Result<Reply, ApiError> {
    // 1. The caller's role, before anything in the body is looked at.
    let p = crate::app::authenticate(st, headers)?;
    *principal = Some(p.id.clone());
    crate::app::authorize(st, &p, Action::KeyRelease, &Resource::Key(name.to_string()))?;
    // 2. The attestation token.
    let req: ReleaseRequest = enclava_vault::model::decode(body).map_err(vault_error)?;
    if req.target.is_empty() {
        return Err(ApiError::bad_parameter(
            "target is required: expected an attestation token",
        ));
    }
    // Our own issuer's keys as currently stored: a signer rotation by another replica (which
    // may have dropped a key from the JWKS) is applied before the token is checked. Sealed or
    // without a signer there is no local issuer to refresh; the verification says so.
    let _ = st.attestation.service(st);
    // A development server verifying on a moved clock (attestation.verification_time, --dev
    // only) dates its own tokens at that time: check release tokens as of the same time, so that
    // recorded evidence can be attested and released in a demo.
    let at = st
        .attestation
        .config
        .verification_time
        .unwrap_or_else(chrono::Utc::now);
    let att = match st.trusted_issuers.verify(&req.target, at) {
        Ok(a) => a,
        Err(e) => {
            *detail = Some(
                unverified_summary(&req.target).unwrap_or_else(|| "token=undecodable".to_string()),
            );
            return Err(vault_error(e));
        }
    };
    *detail = Some(att.audit_summary());
    // 3. Policy, wrapping and signing.
    let signer = release_signer(st).map_err(|e| {
        tracing::error!(error = %e, "release signing key");
        service_keys::unavailable("the release signing key is unavailable; see the server log")
    })?;
    let out = st
        .vault
        .release(name, version, &req, &att, signer.as_ref(), api_version)
        .map_err(vault_error)?;
    Reply::json(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PartialConfig;
    use std::path::Path;

    const JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn toml_inline_and_file_issuers() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("jwks.json");
        std::fs::write(&f, format!(r#"{{"keys":[{JWK}]}}"#)).unwrap();
        let toml = format!(
            r#"
[[trusted_issuers]]
issuer = "https://maa.example/"
jwks = {{ keys = [ {{ kty = "EC", crv = "P-256", kid = "k1", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" }} ] }}

[[trusted_issuers]]
issuer = "https://other.example"
jwks_file = "{}"
"#,
            f.display()
        );
        let c = PartialConfig::from_toml("t.toml", &toml)
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(c.trusted_issuers.len(), 2);
        let t = load_trusted_issuers(&c.trusted_issuers).unwrap();
        assert_eq!(
            t.issuers(),
            vec![
                "https://maa.example/".to_string(),
                "https://other.example".into()
            ]
        );
        // A single JWK file is a pinned key.
        std::fs::write(&f, JWK).unwrap();
        assert!(load_trusted_issuers(&c.trusted_issuers).is_ok());
        // Neither / both / unreadable / empty are errors naming the issuer.
        let mut bad = c.trusted_issuers[0].clone();
        bad.jwks_file = Some(f.clone());
        let e = load_trusted_issuers(&[bad]).unwrap_err();
        assert!(
            e.contains("https://maa.example/") && e.contains("exactly one"),
            "{e}"
        );
        let missing = TrustedIssuerConfig {
            issuer: "https://x".into(),
            jwks_file: Some(dir.path().join("nope.json")),
            jwks: None,
        };
        assert!(
            load_trusted_issuers(&[missing])
                .unwrap_err()
                .contains("cannot read")
        );
        let empty = TrustedIssuerConfig {
            issuer: "https://x".into(),
            jwks_file: None,
            jwks: Some(Jwks::default()),
        };
        assert!(
            load_trusted_issuers(&[empty])
                .unwrap_err()
                .contains("at least one key")
        );
    }

    #[test]
    fn env_issuers() {
        let v =
            parse_env_issuers("https://a.example=/etc/a.json, https://b.example=/b.json").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].issuer, "https://b.example");
        assert_eq!(v[1].jwks_file.as_deref(), Some(Path::new("/b.json")));
        assert!(parse_env_issuers("https://a.example").is_err());
        assert!(parse_env_issuers("=x").is_err());
        let c = PartialConfig::from_env([(ENV_TRUSTED_ISSUERS, "https://a=/a.json")])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(c.trusted_issuers[0].issuer, "https://a");
        assert!(PartialConfig::from_env([(ENV_TRUSTED_ISSUERS, "nonsense")]).is_err());
    }
}
