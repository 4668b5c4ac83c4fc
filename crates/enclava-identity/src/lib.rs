//! Identities, bearer tokens and the default-deny authorization decision.
//!
//! Enclava's counterpart of Entra ID + Azure RBAC for the Key Vault-compatible API. Pure logic over
//! [`enclava_store::Store`]: synchronous, no HTTP; time (`now`, unix seconds) is passed in.
//!
//! # Principals
//! Kinds ([`PrincipalKind`]):
//! - **service principal**: client id (UUID form, also its principal id) + client secret (32
//!   random bytes, base64url, shown once). Only SHA-256(secret) is stored (the secret is
//!   high-entropy, so a fast hash is right); comparison is constant time. Authenticates with the
//!   OAuth2 client-credentials grant ([`Identity::client_credentials`]).
//! - **managed identity** (a workload): gets an *identity secret* (same format) at creation. The
//!   workload proves who it is by sending that secret in the `X-IDENTITY-HEADER` header (what
//!   azure-identity sends when `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` are set, the App Service
//!   flavour of `ManagedIdentityCredential`) or a `secret` header (the older `MSI_SECRET` flavour)
//!   to `GET /metadata/identity/oauth2/token?resource=...`; optional `client_id` / `object_id`
//!   query parameters must then name the same identity. See [`Identity::managed_identity_token`].
//!   A bare IMDS request (`Metadata: true`, no secret) is **not** authenticated by this crate.
//! - **external OIDC identity**: `(issuer, subject)` registered ahead of time; a token from a
//!   configured external issuer ([`ExternalIssuer`]) authenticates as it. Unregistered subjects are
//!   rejected (default deny).
//! - **bootstrap administrator**: created by [`Identity::bootstrap_admin`]; has no credentials of
//!   its own, only the long-lived token handed out at bootstrap.
//!
//! # Tokens
//! Access tokens are ES256 JWTs signed by a [`TokenKey`] with `iss` = the server base URL,
//! `sub` = `oid` = principal id, `aud` = the requested resource (one of
//! [`IdentityConfig::audiences`], e.g. `https://vault.enclava` or `https://vault.azure.net`, or of
//! [`IdentityConfig::attestation_audiences`], e.g. `https://attest.azure.net`; a token is
//! accepted only by the routes of its resource's [`AudienceFamily`], see
//! [`Identity::authenticate_for`]; the bootstrap administrator's token names both families),
//! `iat`, `nbf`, `exp` (default 1 h), `jti`. **Signing key decision**: the key is *supplied by the
//! server* through [`Identity::set_token_key`], normally loaded with [`TokenKey::load_or_create`]
//! and the vault's root-key [`KeyWrap`] after unseal. It is therefore encrypted at rest; while
//! sealed no token can be issued or verified ([`IdentityError::NoSigningKey`] /
//! [`AuthError::NoSigningKey`]); after unseal the same key returns, so tokens stay valid across
//! seal/unseal until they expire. [`ClearKeyWrap`] (development only) keeps it in clear.
//!
//! # Storage layout
//! `Table::Principals`: `p/{id}` principal record; `mi/{sha256(identity secret)}` -> id;
//! `x/{sha256(issuer NUL subject)}` -> id. `Table::RoleAssignments`: `a/{assignment id}` and
//! `p/{principal id}/{assignment id}` (same record, written and deleted together).
//! `Table::Meta`: [`TOKEN_KEY_META`], [`BOOTSTRAP_ADMIN_META`], [`ROW_INTEGRITY_META`].
//!
//! # Row integrity
//! Every row above except the (AEAD-sealed) token key is stored MAC'd under a root-derived key
//! ([`integrity`]): the MAC binds table, row key and content, so a row edited in the database, or
//! a valid row copied under another key, is refused with [`IdentityError::Integrity`]. A role
//! assignment that fails grants nothing ([`Decision::integrity_failures`] names it); a principal
//! record that fails authenticates nobody. The keys are installed after unseal
//! ([`Identity::set_row_keys`]); while none is loaded, nothing is read or written. Rows written
//! before this existed are adopted once ([`Identity::migrate_row_integrity`]).

mod cache;
pub mod integrity;
mod roles;
mod token;

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use enclava_store::{Op, Store, StoreError, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

pub use integrity::{RowKey, RowKeys, RowMigration, RowProblem, row_key_purpose};
pub use roles::{Action, Decision, ParseError, Resource, Role, Scope, valid_object_name};
pub use token::{Claims, ClearKeyWrap, KeyWrap, MAX_TOKEN_LEN, TOKEN_KEY_META, TokenKey};

use token::{VerifyKey, canon_url, sanitize};

/// Meta key holding the bootstrap administrator's principal id.
pub const BOOTSTRAP_ADMIN_META: &str = "identity/bootstrap-admin";

/// Meta key recording that the identity rows are integrity-protected (written, MAC'd, by the
/// first [`Identity::migrate_row_integrity`]). Once it exists, unauthenticated rows are never
/// adopted again.
pub const ROW_INTEGRITY_META: &str = "identity/row-integrity";

/// Errors of the management and issuance operations.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("invalid {what}: expected {expected}, found {found}")]
    Invalid {
        what: &'static str,
        expected: &'static str,
        found: String,
    },
    /// Unknown client id, wrong secret, or a principal of a kind that cannot use this grant.
    /// Deliberately one variant: the caller learns nothing about which.
    #[error("client authentication failed: unknown client or wrong secret")]
    InvalidClient,
    #[error("principal {id:?} is disabled")]
    Disabled { id: String },
    #[error("unsupported scope/resource {found:?}: expected {expected}")]
    InvalidScope { found: String, expected: String },
    #[error("no token signing key is loaded (is the vault sealed?)")]
    NoSigningKey,
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    /// A stored row failed its integrity check: it grants nothing and is not used.
    #[error("integrity check failed for {table} row {key:?}: {problem}")]
    Integrity {
        table: &'static str,
        key: String,
        problem: RowProblem,
    },
    #[error("no row integrity key is loaded (is the vault sealed?)")]
    NoRowKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a bearer token was rejected. Messages never contain the token; claim values that are shown
/// (issuer, kid, alg) are truncated to 64 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("malformed bearer token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm {alg:?} is not accepted: expected ES256 or RS256")]
    UnsupportedAlgorithm { alg: String },
    #[error("token algorithm {alg:?} does not match the key's algorithm {key_alg}")]
    AlgorithmMismatch { alg: String, key_alg: &'static str },
    #[error("token issuer {issuer:?} is not trusted")]
    UnknownIssuer { issuer: String },
    #[error("no signing key with kid {kid:?} for this issuer")]
    UnknownKey { kid: String },
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("token audience {found:?} is not accepted: expected one of {expected:?}")]
    WrongAudience {
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("token is missing required claim {0:?}")]
    MissingClaim(&'static str),
    #[error("token subject is not a known principal")]
    UnknownPrincipal,
    #[error("principal {id:?} is disabled")]
    Disabled { id: String },
    #[error("no token signing key is loaded (is the vault sealed?)")]
    NoSigningKey,
    /// The principal's stored record failed its integrity check: nobody authenticates as it.
    #[error("the principal's stored record failed its integrity check: {0}")]
    Integrity(String),
    #[error("identity storage error: {0}")]
    Store(String),
}

impl From<IdentityError> for AuthError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NoRowKey => AuthError::NoSigningKey,
            e @ IdentityError::Integrity { .. } => AuthError::Integrity(e.to_string()),
            e => AuthError::Store(e.to_string()),
        }
    }
}

/// The kind of a principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PrincipalKind {
    ServicePrincipal,
    ManagedIdentity,
    External { issuer: String, subject: String },
    BootstrapAdmin,
}

/// A principal as shown by the API (never carries credential material or hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Principal (object) id, UUID form. For a service principal this is also its client id.
    pub id: String,
    pub kind: PrincipalKind,
    pub display_name: String,
    pub enabled: bool,
    /// Creation time, unix seconds.
    pub created: i64,
}

/// A secret shown exactly once (client secret or managed-identity secret). Zeroized on drop;
/// `Debug` is redacted.
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// The secret text (base64url of 32 random bytes) to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// A role assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub id: String,
    pub principal: String,
    pub role: Role,
    pub scope: Scope,
    pub created: i64,
}

/// OAuth2 token endpoint answer (`POST /oauth2/token`, `POST /{tenant}/oauth2/v2.0/token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    pub expires_in: u64,
    pub ext_expires_in: u64,
}

/// Managed identity endpoint answer (`GET /metadata/identity/oauth2/token`). Numbers are strings,
/// as IMDS / App Service send them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedIdentityTokenResponse {
    pub access_token: String,
    pub expires_in: String,
    /// Unix seconds.
    pub expires_on: String,
    pub resource: String,
    pub token_type: String,
    pub client_id: String,
}

/// What a workload presents to the managed-identity endpoint.
#[derive(Clone, Copy)]
pub struct ManagedIdentityProof<'a> {
    /// The identity secret from `X-IDENTITY-HEADER` (or the `secret` header).
    pub secret: &'a str,
    /// Optional `client_id` / `object_id` / `principal_id` query parameter: must name the same identity.
    pub client_id: Option<&'a str>,
}

impl std::fmt::Debug for ManagedIdentityProof<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedIdentityProof")
            .field("secret", &"<redacted>")
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// A token we issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    /// Unix seconds.
    pub expires_on: i64,
    /// The audience put in the token (canonical: no trailing slash).
    pub audience: String,
}

/// An external OIDC issuer whose tokens are accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalIssuer {
    /// Must equal the token's `iss` (a trailing slash is ignored).
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// The issuer's JWKS document (`{"keys":[...]}`), fetched by the server.
    pub jwks: Value,
}

/// The resource Microsoft's attestation SDKs ask a token for (scope
/// `https://attest.azure.net/.default`): the default attestation audience.
pub const ATTESTATION_AUDIENCE: &str = "https://attest.azure.net";

/// Which family of routes a bearer token is presented to. Each family accepts only tokens whose
/// `aud` is one of its own resources, so a token obtained for one service cannot be replayed at
/// the other (Azure's rule too: a Key Vault token is refused by Azure Attestation and vice versa).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceFamily {
    /// Key Vault data plane, key release and Enclava's own administration API
    /// ([`IdentityConfig::audiences`]).
    Vault,
    /// The attestation service: MAA-compatible attest, policy and reference-value routes
    /// ([`IdentityConfig::attestation_audiences`]).
    Attestation,
}

/// Configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// `iss` of our tokens: the server's base URL, e.g. `https://localhost:8443`.
    pub issuer: String,
    /// Accepted vault-family audiences / resources ([`AudienceFamily::Vault`]). The first is the
    /// default audience.
    pub audiences: Vec<String>,
    /// Accepted attestation-family audiences ([`AudienceFamily::Attestation`]); default
    /// [`ATTESTATION_AUDIENCE`].
    pub attestation_audiences: Vec<String>,
    /// Lifetime of issued access tokens, seconds.
    pub token_lifetime: i64,
    /// Lifetime of the bootstrap administrator's token, seconds.
    pub bootstrap_token_lifetime: i64,
    /// Clock skew tolerated on `exp` / `nbf` / `iat`, seconds.
    pub leeway: i64,
}

impl IdentityConfig {
    /// Defaults: audiences `https://vault.enclava` and `https://vault.azure.net`, attestation
    /// audience `https://attest.azure.net`, 1 h tokens,
    /// 24 h bootstrap token (it only needs to live long enough to create the real principals),
    /// 60 s leeway.
    pub fn new(issuer: impl Into<String>) -> Self {
        IdentityConfig {
            issuer: issuer.into(),
            audiences: vec![
                "https://vault.enclava".into(),
                "https://vault.azure.net".into(),
            ],
            attestation_audiences: vec![ATTESTATION_AUDIENCE.into()],
            token_lifetime: 3600,
            bootstrap_token_lifetime: 24 * 3600,
            leeway: 60,
        }
    }
}

struct ExternalKeys {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<(Option<String>, VerifyKey)>,
}

/// The identity service. Cheap to share (`Arc<Identity>`); all methods take `&self`.
pub struct Identity {
    store: Arc<dyn Store>,
    config: IdentityConfig,
    token_key: RwLock<Option<Arc<TokenKey>>>,
    row_keys: RwLock<Option<Arc<RowKeys>>>,
    external: RwLock<Arc<Vec<ExternalKeys>>>,
    /// Digests of (key, algorithm, signed bytes, signature) of our own tokens whose signature
    /// verified: a bearer token is presented on every request, and its ECDSA check would
    /// otherwise dominate cheap operations. Only successes are kept, so a hit is exactly what a
    /// new verification would say; expiry, audience and the principal are checked every time.
    verified_signatures: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    /// The principal and role-assignment rows read on every request (see [`cache`]).
    reads: cache::ReadCache,
}

/// How many verified token signatures [`Identity`] remembers before it starts over.
const VERIFIED_SIGNATURE_CAPACITY: usize = 16_384;

fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| IdentityError::Crypto("the system random generator failed"))?;
    Ok(b)
}

/// A random UUID (version 4 layout).
fn new_uuid() -> Result<String, IdentityError> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(uuid_text(&b))
}

/// The id of the assignment of `role` at `scope` to `principal`: a UUID (version 8, RFC 9562)
/// from SHA-256 over the three, so the same assignment always gets the same id and concurrent
/// creations of it collide on one row. Assignments made before this scheme keep their random ids
/// (they are found by the existing-assignment check first).
fn assignment_id(principal: &str, role: &Role, scope: &Scope) -> Result<String, IdentityError> {
    let mut input = b"enclava role assignment v1\0".to_vec();
    input.extend_from_slice(principal.as_bytes());
    input.push(0);
    input.extend_from_slice(&to_json(role)?);
    input.push(0);
    input.extend_from_slice(&to_json(scope)?);
    let digest = Sha256::digest(&input);
    let mut b = [0u8; 16];
    b.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(uuid_text(&b))
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

fn new_secret() -> Result<(ClientSecret, [u8; 32]), IdentityError> {
    let raw = Zeroizing::new(random_bytes::<32>()?);
    let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice()));
    let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    Ok((ClientSecret(text), hash))
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Principal ids are UUIDs we generate; accept only that alphabet so ids can be used in keys.
fn valid_principal_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_display_name(name: &str) -> Result<(), IdentityError> {
    if name.trim().is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(IdentityError::Invalid {
            what: "display name",
            expected: "1-256 characters without control characters",
            found: format!("{} characters", name.chars().count()),
        });
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct PrincipalRecord {
    #[serde(flatten)]
    principal: Principal,
    /// Hex SHA-256 of the client secret / identity secret, when the kind has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_sha256: Option<String>,
}

fn pkey(id: &str) -> String {
    format!("p/{id}")
}

fn external_index(issuer: &str, subject: &str) -> String {
    format!(
        "x/{}",
        sha256_hex(&[canon_url(issuer).as_bytes(), b"\0", subject.as_bytes()])
    )
}

fn decode_record(key: &str, bytes: &[u8]) -> Result<PrincipalRecord, IdentityError> {
    serde_json::from_slice(bytes).map_err(|e| IdentityError::Corrupt {
        what: format!("principal {key}"),
        detail: e.to_string(),
    })
}

/// A row key as shown in errors and logs (our keys are ASCII; a tampered one may not be).
fn row_name(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect()
}

/// Decode an (authenticated) assignment payload stored under `key` and check it belongs there:
/// `a/{id}` holds assignment `id`, `p/{principal}/{id}` holds `principal`'s assignment `id`.
fn decode_assignment(key: &str, bytes: &[u8]) -> Result<RoleAssignment, IdentityError> {
    let a: RoleAssignment = serde_json::from_slice(bytes).map_err(|e| IdentityError::Corrupt {
        what: format!("role assignment {key}"),
        detail: e.to_string(),
    })?;
    let belongs = match key.split('/').collect::<Vec<_>>().as_slice() {
        ["a", id] => *id == a.id,
        ["p", principal, id] => *principal == a.principal && *id == a.id,
        _ => false,
    };
    if !belongs {
        return Err(IdentityError::Corrupt {
            what: format!("role assignment {key}"),
            detail: format!(
                "expected the record of the row's own assignment, found assignment {} of principal {}",
                sanitize(&a.id),
                sanitize(&a.principal)
            ),
        });
    }
    Ok(a)
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, IdentityError> {
    serde_json::to_vec(v).map_err(|e| IdentityError::Corrupt {
        what: "record".into(),
        detail: e.to_string(),
    })
}

/// `"https://vault.azure.net/.default"` -> `"https://vault.azure.net"`; ignores OIDC scopes.
fn resource_from_scope(scope: &str) -> Option<&str> {
    let mut found = None;
    for s in scope.split_whitespace() {
        if matches!(s, "openid" | "profile" | "offline_access" | "email") {
            continue;
        }
        if found.is_some() {
            return None; // more than one resource
        }
        found = Some(s.strip_suffix("/.default").unwrap_or(s));
    }
    found
}

impl Identity {
    pub fn new(store: Arc<dyn Store>, config: IdentityConfig) -> Self {
        Identity {
            config,
            token_key: RwLock::new(None),
            row_keys: RwLock::new(None),
            external: RwLock::new(Arc::new(Vec::new())),
            verified_signatures: std::sync::Mutex::new(std::collections::HashSet::new()),
            reads: cache::ReadCache::new(store.coherence()),
            store,
        }
    }

    /// Authorization reads (principal, role assignments) answered from the cache so far: only
    /// on a store shared by several processes, while its change feed is trusted (see
    /// [`enclava_store::coherence`]).
    pub fn authorization_cache_hits(&self) -> u64 {
        self.reads.hits()
    }

    /// Every write of identity rows goes through here: reads cached before it are stale after.
    fn transact(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.reads.write(|| self.store.transact(ops))
    }

    /// Verify our own token's ES256 signature, remembering successes (see `verified_signatures`).
    fn verify_own_signature(&self, point: &[u8], jws: &token::Jws<'_>) -> Result<(), AuthError> {
        let mut h = Sha256::new();
        for part in [point, jws.alg.as_bytes(), jws.signing_input, &jws.signature] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let digest: [u8; 32] = h.finalize().into();
        let cache = || {
            self.verified_signatures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if cache().contains(&digest) {
            return Ok(());
        }
        VerifyKey::Es256 {
            point: point.to_vec(),
        }
        .verify(jws)?;
        let mut seen = cache();
        if seen.len() >= VERIFIED_SIGNATURE_CAPACITY {
            seen.clear();
        }
        seen.insert(digest);
        Ok(())
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Install (after unseal) or remove (on seal) the row integrity keys (see [`integrity`]).
    pub fn set_row_keys(&self, keys: Option<RowKeys>) {
        let mut g = self.row_keys.write().unwrap_or_else(|p| p.into_inner());
        *g = keys.map(Arc::new);
    }

    fn row_keys(&self) -> Result<Arc<RowKeys>, IdentityError> {
        self.row_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(IdentityError::NoRowKey)
    }

    /// The payload of the stored row `table/key`, if its MAC verifies.
    fn open_row(&self, table: Table, key: &str, stored: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let keys = self.row_keys()?;
        let rk = keys.for_table(table).ok_or(IdentityError::NoRowKey)?;
        rk.open(key, stored)
            .map(<[u8]>::to_vec)
            .map_err(|problem| IdentityError::Integrity {
                table: table.name(),
                key: row_name(key),
                problem,
            })
    }

    /// An `Op::Put` of `payload` as the authenticated row `table/key`.
    fn put_row(&self, table: Table, key: String, payload: &[u8]) -> Result<Op, IdentityError> {
        let keys = self.row_keys()?;
        let rk = keys.for_table(table).ok_or(IdentityError::NoRowKey)?;
        let value = rk.seal(&key, payload);
        Ok(Op::Put { table, key, value })
    }

    /// Read and verify `table/key`: `None` when absent.
    fn get_row(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, IdentityError> {
        match self.store.get(table, key)? {
            None => Ok(None),
            Some(stored) => self.open_row(table, key, &stored).map(Some),
        }
    }

    /// Install (after unseal) or remove (on seal) the token signing key.
    pub fn set_token_key(&self, key: Option<TokenKey>) {
        let mut g = self.token_key.write().unwrap_or_else(|p| p.into_inner());
        *g = key.map(Arc::new);
    }

    fn token_key(&self) -> Option<Arc<TokenKey>> {
        self.token_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The public JWKS of our token key (`{"keys":[jwk]}`), `None` while no key is loaded.
    pub fn token_jwks(&self) -> Option<Value> {
        self.token_key()
            .map(|k| serde_json::json!({ "keys": [k.public_jwk()] }))
    }

    /// Replace the set of trusted external OIDC issuers. All-or-nothing: on error nothing changes.
    pub fn set_external_issuers(&self, issuers: Vec<ExternalIssuer>) -> Result<(), IdentityError> {
        let mut parsed = Vec::with_capacity(issuers.len());
        for i in issuers {
            parsed.push(Self::parse_issuer(i)?);
        }
        *self.external.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(parsed);
        Ok(())
    }

    /// Replace the JWKS of one configured external issuer (e.g. after the server re-fetched it).
    pub fn update_external_jwks(&self, issuer: &str, jwks: &Value) -> Result<(), IdentityError> {
        let keys = token::parse_jwks(jwks).map_err(|e| IdentityError::Invalid {
            what: "JWKS",
            expected: "{\"keys\":[RSA (RS256, >= 2048 bits) or EC P-256 JWKs]}",
            found: e,
        })?;
        let mut g = self.external.write().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<ExternalKeys> = g
            .iter()
            .map(|e| ExternalKeys {
                issuer: e.issuer.clone(),
                audiences: e.audiences.clone(),
                keys: e.keys.clone(),
            })
            .collect();
        let entry = list
            .iter_mut()
            .find(|e| canon_url(&e.issuer) == canon_url(issuer))
            .ok_or_else(|| IdentityError::NotFound {
                what: "external issuer",
                id: sanitize(issuer),
            })?;
        entry.keys = keys;
        *g = Arc::new(list);
        Ok(())
    }

    fn parse_issuer(i: ExternalIssuer) -> Result<ExternalKeys, IdentityError> {
        if i.issuer.trim().is_empty() || i.audiences.is_empty() {
            return Err(IdentityError::Invalid {
                what: "external issuer",
                expected: "a non-empty issuer and at least one audience",
                found: format!(
                    "issuer {:?} with {} audiences",
                    sanitize(&i.issuer),
                    i.audiences.len()
                ),
            });
        }
        let keys = token::parse_jwks(&i.jwks).map_err(|e| IdentityError::Invalid {
            what: "JWKS",
            expected: "{\"keys\":[RSA (RS256, >= 2048 bits) or EC P-256 JWKs]}",
            found: e,
        })?;
        Ok(ExternalKeys {
            issuer: i.issuer,
            audiences: i.audiences,
            keys,
        })
    }

    // ----- principals -----

    fn put_new_principal(
        &self,
        record: &PrincipalRecord,
        extra: Vec<Op>,
    ) -> Result<(), IdentityError> {
        let key = pkey(&record.principal.id);
        let mut ops = vec![
            Op::Expect {
                table: Table::Principals,
                key: key.clone(),
                value: None,
            },
            self.put_row(Table::Principals, key, &to_json(record)?)?,
        ];
        ops.extend(extra);
        self.transact(ops).map_err(|e| match e {
            StoreError::Conflict { .. } => IdentityError::AlreadyExists {
                what: "principal",
                id: record.principal.id.clone(),
            },
            e => e.into(),
        })
    }

    /// Create a service principal. Returns it and its client secret (shown once). The client id is
    /// `principal.id`.
    pub fn create_service_principal(
        &self,
        display_name: &str,
        now: i64,
    ) -> Result<(Principal, ClientSecret), IdentityError> {
        check_display_name(display_name)?;
        let (secret, hash) = new_secret()?;
        let principal = Principal {
            id: new_uuid()?,
            kind: PrincipalKind::ServicePrincipal,
            display_name: display_name.to_string(),
            enabled: true,
            created: now,
        };
        let rec = PrincipalRecord {
            principal,
            secret_sha256: Some(hex::encode(hash)),
        };
        self.put_new_principal(&rec, vec![])?;
        Ok((rec.principal, secret))
    }

    /// Create a managed (workload) identity. Returns it and its identity secret (shown once), which
    /// the workload presents in `X-IDENTITY-HEADER`.
    pub fn create_managed_identity(
        &self,
        display_name: &str,
        now: i64,
    ) -> Result<(Principal, ClientSecret), IdentityError> {
        check_display_name(display_name)?;
        let (secret, hash) = new_secret()?;
        let hash_hex = hex::encode(hash);
        let principal = Principal {
            id: new_uuid()?,
            kind: PrincipalKind::ManagedIdentity,
            display_name: display_name.to_string(),
            enabled: true,
            created: now,
        };
        let extra = vec![self.put_row(
            Table::Principals,
            format!("mi/{hash_hex}"),
            principal.id.as_bytes(),
        )?];
        let rec = PrincipalRecord {
            principal,
            secret_sha256: Some(hash_hex),
        };
        self.put_new_principal(&rec, extra)?;
        Ok((rec.principal, secret))
    }

    /// Register an external OIDC identity: tokens from `issuer` with `sub == subject` authenticate
    /// as the returned principal.
    pub fn create_external_identity(
        &self,
        issuer: &str,
        subject: &str,
        display_name: &str,
        now: i64,
    ) -> Result<Principal, IdentityError> {
        check_display_name(display_name)?;
        if issuer.trim().is_empty() || subject.is_empty() || subject.len() > 1024 {
            return Err(IdentityError::Invalid {
                what: "external identity",
                expected: "a non-empty issuer and a subject of 1-1024 bytes",
                found: format!(
                    "issuer {:?}, subject of {} bytes",
                    sanitize(issuer),
                    subject.len()
                ),
            });
        }
        let index = external_index(issuer, subject);
        let principal = Principal {
            id: new_uuid()?,
            kind: PrincipalKind::External {
                issuer: canon_url(issuer).to_string(),
                subject: subject.to_string(),
            },
            display_name: display_name.to_string(),
            enabled: true,
            created: now,
        };
        let extra = vec![
            Op::Expect {
                table: Table::Principals,
                key: index.clone(),
                value: None,
            },
            self.put_row(Table::Principals, index, principal.id.as_bytes())?,
        ];
        let rec = PrincipalRecord {
            principal,
            secret_sha256: None,
        };
        self.put_new_principal(&rec, extra).map_err(|e| match e {
            IdentityError::AlreadyExists { .. } => IdentityError::AlreadyExists {
                what: "external identity",
                id: format!("{} / {}", sanitize(issuer), sanitize(subject)),
            },
            e => e,
        })?;
        Ok(rec.principal)
    }

    fn get_record(&self, id: &str) -> Result<Option<(PrincipalRecord, Vec<u8>)>, IdentityError> {
        self.read_record(id, false)
    }

    /// [`Identity::get_record`] for authenticating a request (`cached`: through the read cache;
    /// management operations read the database, their writes expect what it holds).
    fn read_record(
        &self,
        id: &str,
        cached: bool,
    ) -> Result<Option<(PrincipalRecord, Vec<u8>)>, IdentityError> {
        if !valid_principal_id(id) {
            return Ok(None);
        }
        let key = pkey(id);
        let stored = if cached {
            self.reads.get(Table::Principals, &key, || {
                self.store.get(Table::Principals, &key)
            })?
        } else {
            self.store.get(Table::Principals, &key)?
        };
        match stored {
            None => Ok(None),
            Some(stored) => {
                let payload = self.open_row(Table::Principals, &key, &stored)?;
                let rec = decode_record(&key, &payload)?;
                // Defence in depth: the MAC binds the row key, so this holds for every row we
                // wrote.
                if rec.principal.id != id {
                    return Err(IdentityError::Corrupt {
                        what: format!("principal {key}"),
                        detail: format!(
                            "expected the record of principal {id}, found {}",
                            sanitize(&rec.principal.id)
                        ),
                    });
                }
                Ok(Some((rec, stored)))
            }
        }
    }

    pub fn get_principal(&self, id: &str) -> Result<Option<Principal>, IdentityError> {
        Ok(self.get_record(id)?.map(|(r, _)| r.principal))
    }

    /// Principals in id order, after `after` (an id), at most `limit`.
    pub fn list_principals(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Principal>, IdentityError> {
        let after = after.map(pkey);
        let rows = self
            .store
            .list(Table::Principals, "p/", after.as_deref(), limit)?;
        rows.iter()
            .map(|(k, v)| {
                let payload = self.open_row(Table::Principals, k, v)?;
                decode_record(k, &payload).map(|r| r.principal)
            })
            .collect()
    }

    /// Enable or disable a principal. A disabled principal's tokens stop working at once.
    pub fn set_enabled(&self, id: &str, enabled: bool) -> Result<Principal, IdentityError> {
        let (mut rec, old) = self
            .get_record(id)?
            .ok_or_else(|| IdentityError::NotFound {
                what: "principal",
                id: sanitize(id),
            })?;
        rec.principal.enabled = enabled;
        let key = pkey(id);
        self.transact(vec![
            Op::Expect {
                table: Table::Principals,
                key: key.clone(),
                value: Some(old),
            },
            self.put_row(Table::Principals, key, &to_json(&rec)?)?,
        ])?;
        Ok(rec.principal)
    }

    /// Issue a new secret for a service principal or managed identity; the old one stops working.
    pub fn reset_secret(&self, id: &str) -> Result<ClientSecret, IdentityError> {
        let (mut rec, old) = self
            .get_record(id)?
            .ok_or_else(|| IdentityError::NotFound {
                what: "principal",
                id: sanitize(id),
            })?;
        let (secret, hash) = new_secret()?;
        let hash_hex = hex::encode(hash);
        let key = pkey(id);
        let mut ops = vec![Op::Expect {
            table: Table::Principals,
            key: key.clone(),
            value: Some(old),
        }];
        match rec.principal.kind {
            PrincipalKind::ServicePrincipal => {}
            PrincipalKind::ManagedIdentity => {
                if let Some(prev) = &rec.secret_sha256 {
                    ops.push(Op::Delete {
                        table: Table::Principals,
                        key: format!("mi/{prev}"),
                    });
                }
                ops.push(self.put_row(
                    Table::Principals,
                    format!("mi/{hash_hex}"),
                    id.as_bytes(),
                )?);
            }
            _ => {
                return Err(IdentityError::Invalid {
                    what: "principal kind",
                    expected: "a service principal or managed identity (kinds with a secret)",
                    found: format!("{:?}", rec.principal.kind)
                        .chars()
                        .take(64)
                        .collect(),
                });
            }
        }
        rec.secret_sha256 = Some(hash_hex);
        ops.push(self.put_row(Table::Principals, key, &to_json(&rec)?)?);
        self.transact(ops)?;
        Ok(secret)
    }

    /// Delete a principal, its index rows and all its role assignments, atomically.
    ///
    /// Also the way to clear a principal whose rows failed their integrity check: its record is
    /// then not trusted to name its index rows (those stay behind, pointing at a principal that
    /// no longer exists, so they authenticate nobody), and its assignment rows are found by key.
    pub fn delete_principal(&self, id: &str) -> Result<(), IdentityError> {
        if !valid_principal_id(id) {
            return Err(IdentityError::NotFound {
                what: "principal",
                id: sanitize(id),
            });
        }
        let key = pkey(id);
        let old =
            self.store
                .get(Table::Principals, &key)?
                .ok_or_else(|| IdentityError::NotFound {
                    what: "principal",
                    id: sanitize(id),
                })?;
        let rec = match self.open_row(Table::Principals, &key, &old) {
            Ok(payload) => Some(decode_record(&key, &payload)?),
            Err(IdentityError::Integrity { .. }) => None,
            Err(e) => return Err(e),
        };
        let mut ops = vec![
            Op::Expect {
                table: Table::Principals,
                key: key.clone(),
                value: Some(old),
            },
            Op::Delete {
                table: Table::Principals,
                key,
            },
        ];
        match rec.as_ref().map(|r| &r.principal.kind) {
            Some(PrincipalKind::ManagedIdentity) => {
                if let Some(h) = rec.as_ref().and_then(|r| r.secret_sha256.as_ref()) {
                    ops.push(Op::Delete {
                        table: Table::Principals,
                        key: format!("mi/{h}"),
                    });
                }
            }
            Some(PrincipalKind::External { issuer, subject }) => {
                ops.push(Op::Delete {
                    table: Table::Principals,
                    key: external_index(issuer, subject),
                });
            }
            _ => {}
        }
        let prefix = format!("p/{id}/");
        for row in self.all_keys(Table::RoleAssignments, &prefix)? {
            let aid = row.get(prefix.len()..).unwrap_or_default().to_string();
            let akey = format!("a/{aid}");
            // The `a/` copy goes too, unless it verifies and belongs to someone else (a valid
            // row of another principal copied under this one must not take that one's row).
            let keep = match self.store.get(Table::RoleAssignments, &akey)? {
                None => true,
                Some(stored) => self
                    .open_row(Table::RoleAssignments, &akey, &stored)
                    .and_then(|p| decode_assignment(&akey, &p))
                    .is_ok_and(|a| a.principal != id),
            };
            if !keep {
                ops.push(Op::Delete {
                    table: Table::RoleAssignments,
                    key: akey,
                });
            }
            ops.push(Op::Delete {
                table: Table::RoleAssignments,
                key: row,
            });
        }
        self.transact(ops)?;
        Ok(())
    }

    /// Every row key of `table` under `prefix` (page by page).
    fn all_keys(&self, table: Table, prefix: &str) -> Result<Vec<String>, IdentityError> {
        Ok(self
            .all_rows(table, prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Every row of `table` under `prefix`, as stored (page by page).
    fn all_rows(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, IdentityError> {
        Ok(self.stored_rows(table, prefix)?)
    }

    fn stored_rows(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self.store.list(table, prefix, after.as_deref(), 256)?;
            let n = rows.len();
            after = rows.last().map(|(k, _)| k.clone());
            out.extend(rows);
            if n < 256 {
                return Ok(out);
            }
        }
    }

    // ----- role assignments -----

    /// A principal's assignments whose rows verify, and a description of every row that does not
    /// (those grant nothing).
    fn assignments_of(
        &self,
        principal: &str,
    ) -> Result<(Vec<RoleAssignment>, Vec<String>), IdentityError> {
        self.read_assignments(principal, false)
    }

    /// [`Identity::assignments_of`], through the read cache when `cached` (authorization).
    fn read_assignments(
        &self,
        principal: &str,
        cached: bool,
    ) -> Result<(Vec<RoleAssignment>, Vec<String>), IdentityError> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let prefix = format!("p/{principal}/");
        let rows = if cached {
            self.reads.list(Table::RoleAssignments, &prefix, || {
                self.stored_rows(Table::RoleAssignments, &prefix)
            })?
        } else {
            self.all_rows(Table::RoleAssignments, &prefix)?
        };
        for (k, v) in rows {
            match self
                .open_row(Table::RoleAssignments, &k, &v)
                .and_then(|payload| decode_assignment(&k, &payload))
            {
                Ok(a) => good.push(a),
                Err(e @ (IdentityError::Integrity { .. } | IdentityError::Corrupt { .. })) => {
                    bad.push(e.to_string())
                }
                Err(e) => return Err(e),
            }
        }
        Ok((good, bad))
    }

    /// Assign `role` at `scope` to a principal. Idempotent: an identical existing assignment is
    /// returned unchanged.
    pub fn assign_role(
        &self,
        principal: &str,
        role: Role,
        scope: Scope,
        now: i64,
    ) -> Result<RoleAssignment, IdentityError> {
        let (_, pbytes) = self
            .get_record(principal)?
            .ok_or_else(|| IdentityError::NotFound {
                what: "principal",
                id: sanitize(principal),
            })?;
        // Rows failing their integrity check are not "existing": a fresh, valid one is written.
        if let Some(existing) = self
            .assignments_of(principal)?
            .0
            .into_iter()
            .find(|a| a.role == role && a.scope == scope)
        {
            return Ok(existing);
        }
        let a = RoleAssignment {
            id: assignment_id(principal, &role, &scope)?,
            principal: principal.to_string(),
            role,
            scope,
            created: now,
        };
        let value = to_json(&a)?;
        let akey = format!("a/{}", a.id);
        let written = self.transact(vec![
            // The principal must still exist (not deleted concurrently).
            Op::Expect {
                table: Table::Principals,
                key: pkey(principal),
                value: Some(pbytes),
            },
            // The id is derived from (principal, role, scope): two replicas assigning the same
            // role at once race on this one row, and the loser answers with the winner's
            // assignment (the serial outcome) instead of adding a duplicate.
            Op::Expect {
                table: Table::RoleAssignments,
                key: akey.clone(),
                value: None,
            },
            self.put_row(Table::RoleAssignments, akey.clone(), &value)?,
            self.put_row(
                Table::RoleAssignments,
                format!("p/{principal}/{}", a.id),
                &value,
            )?,
        ]);
        match written {
            Ok(()) => Ok(a),
            Err(StoreError::Conflict { key, .. }) if key == akey => self
                .assignments_of(principal)?
                .0
                .into_iter()
                .find(|existing| existing.role == a.role && existing.scope == a.scope)
                .ok_or_else(|| {
                    IdentityError::Store(StoreError::Conflict {
                        table: Table::RoleAssignments.name(),
                        key: akey,
                        expected: "absent",
                    })
                }),
            Err(e) => Err(e.into()),
        }
    }

    pub fn get_assignment(&self, id: &str) -> Result<Option<RoleAssignment>, IdentityError> {
        if !valid_principal_id(id) {
            return Ok(None);
        }
        let key = format!("a/{id}");
        self.get_row(Table::RoleAssignments, &key)?
            .map(|v| decode_assignment(&key, &v))
            .transpose()
    }

    /// Remove one assignment by id; returns it.
    ///
    /// An assignment whose `a/` row fails its integrity check is removed too (that is the
    /// repair), and `None` is returned: its record is not trusted to name its principal, so every
    /// `p/*/{id}` copy is found by key and deleted with it.
    pub fn remove_assignment(&self, id: &str) -> Result<Option<RoleAssignment>, IdentityError> {
        let not_found = || IdentityError::NotFound {
            what: "role assignment",
            id: sanitize(id),
        };
        let a = match self.get_assignment(id) {
            Ok(Some(a)) => a,
            Ok(None) => return Err(not_found()),
            Err(IdentityError::Integrity { .. }) => {
                let suffix = format!("/{id}");
                let mut ops = vec![Op::Delete {
                    table: Table::RoleAssignments,
                    key: format!("a/{id}"),
                }];
                for key in self.all_keys(Table::RoleAssignments, "p/")? {
                    if key.ends_with(&suffix) {
                        ops.push(Op::Delete {
                            table: Table::RoleAssignments,
                            key,
                        });
                    }
                }
                self.transact(ops)?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let akey = format!("a/{}", a.id);
        let Some(stored) = self.store.get(Table::RoleAssignments, &akey)? else {
            return Err(not_found());
        };
        let removed = self.transact(vec![
            // Exactly one of two concurrent removals wins; the other finds it gone (404), as it
            // would one after the other.
            Op::Expect {
                table: Table::RoleAssignments,
                key: akey.clone(),
                value: Some(stored),
            },
            Op::Delete {
                table: Table::RoleAssignments,
                key: akey,
            },
            Op::Delete {
                table: Table::RoleAssignments,
                key: format!("p/{}/{}", a.principal, a.id),
            },
        ]);
        match removed {
            Ok(()) => Ok(Some(a)),
            Err(StoreError::Conflict { .. }) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// Assignments (of one principal, or all), in id order after `after` (an assignment id).
    pub fn list_assignments(
        &self,
        principal: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RoleAssignment>, IdentityError> {
        let prefix = match principal {
            Some(p) if !valid_principal_id(p) => return Ok(Vec::new()),
            Some(p) => format!("p/{p}/"),
            None => "a/".to_string(),
        };
        let after = after.map(|a| format!("{prefix}{a}"));
        let rows = self
            .store
            .list(Table::RoleAssignments, &prefix, after.as_deref(), limit)?;
        rows.iter()
            .map(|(k, v)| {
                let payload = self.open_row(Table::RoleAssignments, k, v)?;
                decode_assignment(k, &payload)
            })
            .collect()
    }

    /// The default-deny decision: allowed iff the (enabled) principal has an assignment whose role
    /// grants `action` at a scope covering `resource` (see [`Role`], [`Scope::covers`]).
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> Result<Decision, IdentityError> {
        if !principal.enabled {
            return Ok(Decision {
                allowed: false,
                reason: format!("principal {} is disabled", principal.id),
                integrity_failures: Vec::new(),
            });
        }
        let (assignments, integrity_failures) = self.read_assignments(&principal.id, true)?;
        let mut role_ok_elsewhere = None;
        for a in &assignments {
            if !a.role.grants(action) {
                continue;
            }
            if a.scope.covers(action, resource) {
                return Ok(Decision {
                    allowed: true,
                    reason: format!(
                        "role \"{}\" at scope \"{}\" (assignment {}) grants {}",
                        a.role, a.scope, a.id, action
                    ),
                    integrity_failures,
                });
            }
            role_ok_elsewhere.get_or_insert(a);
        }
        let mut reason = match role_ok_elsewhere {
            Some(a) if action.is_vault_level() => format!(
                "{action} needs an assignment at vault scope \"/\"; principal {} has role \"{}\" only at scope \"{}\"",
                principal.id, a.role, a.scope
            ),
            Some(a) => format!(
                "principal {} has role \"{}\" at scope \"{}\", which does not cover {}",
                principal.id,
                a.role,
                a.scope,
                match resource {
                    Resource::Vault => "the vault".to_string(),
                    r => r.object(),
                }
            ),
            None => format!(
                "no role assigned to principal {} grants {action} ({} assignments checked)",
                principal.id,
                assignments.len()
            ),
        };
        if !integrity_failures.is_empty() {
            reason.push_str(&format!(
                "; {} assignment row(s) failed their integrity check and grant nothing",
                integrity_failures.len()
            ));
        }
        Ok(Decision {
            allowed: false,
            reason,
            integrity_failures,
        })
    }

    // ----- tokens -----

    /// The configured audiences of `family`.
    pub fn audiences_of(&self, family: AudienceFamily) -> &[String] {
        match family {
            AudienceFamily::Vault => &self.config.audiences,
            AudienceFamily::Attestation => &self.config.attestation_audiences,
        }
    }

    /// A resource tokens can be issued for: one of either family's audiences (canonical form).
    fn accepted_audience(&self, resource: &str) -> Option<String> {
        [AudienceFamily::Vault, AudienceFamily::Attestation]
            .into_iter()
            .flat_map(|f| self.audiences_of(f).iter())
            .find(|a| canon_url(a) == canon_url(resource))
            .map(|a| canon_url(a).to_string())
    }

    /// Whether `aud` is one of `family`'s audiences.
    fn audience_in(&self, family: AudienceFamily, aud: &str) -> bool {
        self.audiences_of(family)
            .iter()
            .any(|a| canon_url(a) == canon_url(aud))
    }

    fn all_audiences(&self) -> Vec<String> {
        self.config
            .audiences
            .iter()
            .chain(self.config.attestation_audiences.iter())
            .cloned()
            .collect()
    }

    /// Issue an access token for `principal` with audience `resource` (must be an accepted audience;
    /// `None` = the default audience) valid for `lifetime` seconds (`None` = configured lifetime).
    pub fn issue_token(
        &self,
        principal: &Principal,
        resource: Option<&str>,
        lifetime: Option<i64>,
        now: i64,
    ) -> Result<IssuedToken, IdentityError> {
        let key = self.token_key().ok_or(IdentityError::NoSigningKey)?;
        if !principal.enabled {
            return Err(IdentityError::Disabled {
                id: principal.id.clone(),
            });
        }
        let audience = match resource {
            Some(r) => self
                .accepted_audience(r)
                .ok_or_else(|| IdentityError::InvalidScope {
                    found: sanitize(r),
                    expected: format!("one of {:?}", self.all_audiences()),
                })?,
            None => self
                .config
                .audiences
                .first()
                .map(|a| canon_url(a).to_string())
                .ok_or_else(|| IdentityError::InvalidScope {
                    found: String::new(),
                    expected: "a configured audience".into(),
                })?,
        };
        let (token, expires_on) = self.sign_token(
            &key,
            principal,
            Value::String(audience.clone()),
            lifetime,
            now,
        )?;
        Ok(IssuedToken {
            token,
            expires_on,
            audience,
        })
    }

    fn sign_token(
        &self,
        key: &TokenKey,
        principal: &Principal,
        aud: Value,
        lifetime: Option<i64>,
        now: i64,
    ) -> Result<(String, i64), IdentityError> {
        let lifetime = lifetime.unwrap_or(self.config.token_lifetime).max(1);
        let exp = now.saturating_add(lifetime);
        let jti = URL_SAFE_NO_PAD.encode(random_bytes::<16>()?);
        let claims = serde_json::json!({
            "iss": canon_url(&self.config.issuer),
            "sub": principal.id,
            "oid": principal.id,
            "aud": aud,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
        });
        Ok((key.sign_jwt(&claims)?, exp))
    }

    /// OAuth2 client-credentials grant. `scope` is e.g. `https://vault.azure.net/.default` (a bare
    /// resource, as the v1 `resource` parameter, is accepted too).
    pub fn client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: &str,
        now: i64,
    ) -> Result<TokenResponse, IdentityError> {
        let presented: [u8; 32] = Sha256::digest(client_secret.as_bytes()).into();
        let rec = self.get_record(client_id)?.map(|(r, _)| r);
        // Always do the comparison, so unknown ids and wrong secrets take the same time.
        let stored: [u8; 32] = rec
            .as_ref()
            .and_then(|r| r.secret_sha256.as_deref())
            .and_then(|h| hex::decode(h).ok())
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .unwrap_or([0u8; 32]);
        let matches: bool = stored.ct_eq(&presented).into();
        let rec = match rec {
            Some(r) if matches && r.principal.kind == PrincipalKind::ServicePrincipal => r,
            _ => return Err(IdentityError::InvalidClient),
        };
        let resource = resource_from_scope(scope).ok_or_else(|| IdentityError::InvalidScope {
            found: sanitize(scope),
            expected: "exactly one resource scope such as https://vault.azure.net/.default".into(),
        })?;
        let t = self.issue_token(&rec.principal, Some(resource), None, now)?;
        let expires_in = u64::try_from(t.expires_on.saturating_sub(now)).unwrap_or(0);
        Ok(TokenResponse {
            access_token: t.token,
            token_type: "Bearer".into(),
            expires_in,
            ext_expires_in: expires_in,
        })
    }

    /// Managed identity token (`GET /metadata/identity/oauth2/token?resource=...`). `resource` may
    /// carry `/.default`. The workload is identified by its identity secret (see the crate doc).
    pub fn managed_identity_token(
        &self,
        resource: &str,
        proof: ManagedIdentityProof<'_>,
        now: i64,
    ) -> Result<ManagedIdentityTokenResponse, IdentityError> {
        let hash = sha256_hex(&[proof.secret.as_bytes()]);
        let id = self.get_row(Table::Principals, &format!("mi/{hash}"))?;
        let id = id
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(IdentityError::InvalidClient)?;
        let (rec, _) = self.get_record(&id)?.ok_or(IdentityError::InvalidClient)?;
        // Defence in depth: the index row must agree with the record (constant-time compare).
        let agrees: bool = rec
            .secret_sha256
            .as_deref()
            .unwrap_or("")
            .as_bytes()
            .ct_eq(hash.as_bytes())
            .into();
        if !agrees || rec.principal.kind != PrincipalKind::ManagedIdentity {
            return Err(IdentityError::InvalidClient);
        }
        if let Some(cid) = proof.client_id
            && cid != rec.principal.id
        {
            return Err(IdentityError::InvalidClient);
        }
        let res = resource.strip_suffix("/.default").unwrap_or(resource);
        let t = self.issue_token(&rec.principal, Some(res), None, now)?;
        Ok(ManagedIdentityTokenResponse {
            access_token: t.token,
            expires_in: t.expires_on.saturating_sub(now).to_string(),
            expires_on: t.expires_on.to_string(),
            resource: resource.to_string(),
            token_type: "Bearer".into(),
            client_id: rec.principal.id,
        })
    }

    /// Verify a bearer token presented to a vault-family route (see [`Identity::authenticate_for`]).
    pub fn authenticate(&self, bearer: &str, now: i64) -> Result<Principal, AuthError> {
        self.authenticate_for(bearer, AudienceFamily::Vault, now)
    }

    /// Verify a bearer token (ours or a configured external issuer's) presented to a route of
    /// `family` and return its principal. Our own tokens must name one of `family`'s audiences;
    /// an external issuer's tokens are checked against the audiences configured for that issuer
    /// (the operator chose them for this server), whatever the family.
    pub fn authenticate_for(
        &self,
        bearer: &str,
        family: AudienceFamily,
        now: i64,
    ) -> Result<Principal, AuthError> {
        let bearer = bearer.strip_prefix("Bearer ").unwrap_or(bearer).trim();
        let jws = token::decode(bearer)?;
        token::check_alg_supported(&jws.alg)?;
        let iss = match jws.payload.get("iss") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(AuthError::MissingClaim("iss")),
        };
        if canon_url(&iss) == canon_url(&self.config.issuer) {
            let key = self.token_key().ok_or(AuthError::NoSigningKey)?;
            if let Some(kid) = &jws.kid
                && kid != key.kid()
            {
                return Err(AuthError::UnknownKey { kid: sanitize(kid) });
            }
            self.verify_own_signature(key.public_point(), &jws)?;
            let c = token::claims(&jws.payload, now, self.config.leeway)?;
            if !c.aud.iter().any(|a| self.audience_in(family, a)) {
                return Err(AuthError::WrongAudience {
                    found: c.aud.iter().map(|a| sanitize(a)).collect(),
                    expected: self.audiences_of(family).to_vec(),
                });
            }
            let rec = self
                .read_record(&c.sub, true)
                .map_err(AuthError::from)?
                .ok_or(AuthError::UnknownPrincipal)?;
            if !rec.0.principal.enabled {
                return Err(AuthError::Disabled {
                    id: rec.0.principal.id,
                });
            }
            return Ok(rec.0.principal);
        }
        let external = self
            .external
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let issuer = external
            .iter()
            .find(|e| canon_url(&e.issuer) == canon_url(&iss))
            .ok_or_else(|| AuthError::UnknownIssuer {
                issuer: sanitize(&iss),
            })?;
        let key = match &jws.kid {
            Some(kid) => issuer
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid.as_str()))
                .map(|(_, k)| k)
                .ok_or_else(|| AuthError::UnknownKey { kid: sanitize(kid) })?,
            None => match issuer.keys.as_slice() {
                [(_, only)] => only,
                _ => {
                    return Err(AuthError::UnknownKey {
                        kid: "(none in header; the issuer has several keys)".into(),
                    });
                }
            },
        };
        key.verify(&jws)?;
        let c = token::claims(&jws.payload, now, self.config.leeway)?;
        if !c.aud.iter().any(|a| {
            issuer
                .audiences
                .iter()
                .any(|x| canon_url(x) == canon_url(a))
        }) {
            return Err(AuthError::WrongAudience {
                found: c.aud.iter().map(|a| sanitize(a)).collect(),
                expected: issuer.audiences.clone(),
            });
        }
        let index = external_index(&issuer.issuer, &c.sub);
        let id = self
            .reads
            .get(Table::Principals, &index, || {
                self.store.get(Table::Principals, &index)
            })
            .map_err(IdentityError::from)
            .and_then(|stored| match stored {
                Some(stored) => self.open_row(Table::Principals, &index, &stored).map(Some),
                None => Ok(None),
            })
            .map_err(AuthError::from)?
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(AuthError::UnknownPrincipal)?;
        let (rec, _) = self
            .read_record(&id, true)
            .map_err(AuthError::from)?
            .ok_or(AuthError::UnknownPrincipal)?;
        match &rec.principal.kind {
            PrincipalKind::External { issuer: i, subject }
                if canon_url(i) == canon_url(&issuer.issuer) && *subject == c.sub => {}
            _ => return Err(AuthError::UnknownPrincipal),
        }
        if !rec.principal.enabled {
            return Err(AuthError::Disabled {
                id: rec.principal.id,
            });
        }
        Ok(rec.principal)
    }

    /// Create (first call) or reuse (later calls) the bootstrap administrator — an Administrator at
    /// vault scope — and issue it a token valid for [`IdentityConfig::bootstrap_token_lifetime`]
    /// with the default audience. Needs the token key. Used by `--dev` to write `DIR/admin.token`.
    pub fn bootstrap_admin(&self, now: i64) -> Result<(Principal, String), IdentityError> {
        if self.token_key().is_none() {
            return Err(IdentityError::NoSigningKey);
        }
        // The pointer is authenticated, and must name a bootstrap administrator: pointing it at
        // another principal (which would then be made Administrator here) is refused.
        let existing = match self.get_row(Table::Meta, BOOTSTRAP_ADMIN_META)? {
            Some(b) => {
                let id = String::from_utf8(b).map_err(|_| IdentityError::Corrupt {
                    what: BOOTSTRAP_ADMIN_META.into(),
                    detail: "not UTF-8".into(),
                })?;
                match self.get_principal(&id)? {
                    Some(p) if p.kind != PrincipalKind::BootstrapAdmin => {
                        return Err(IdentityError::Corrupt {
                            what: BOOTSTRAP_ADMIN_META.into(),
                            detail: format!(
                                "expected a bootstrap administrator, found principal {} of another kind",
                                p.id
                            ),
                        });
                    }
                    p => p,
                }
            }
            None => None,
        };
        let principal = match existing {
            Some(p) => p,
            None => {
                let principal = Principal {
                    id: new_uuid()?,
                    kind: PrincipalKind::BootstrapAdmin,
                    display_name: "bootstrap administrator".into(),
                    enabled: true,
                    created: now,
                };
                let rec = PrincipalRecord {
                    principal,
                    secret_sha256: None,
                };
                self.put_new_principal(
                    &rec,
                    vec![self.put_row(
                        Table::Meta,
                        BOOTSTRAP_ADMIN_META.into(),
                        rec.principal.id.as_bytes(),
                    )?],
                )?;
                rec.principal
            }
        };
        self.assign_role(&principal.id, Role::Administrator, Scope::Vault, now)?;
        // The administrator of the whole server: its one token is valid for both route families
        // (the default vault audience and every attestation audience), so `--dev`'s admin.token
        // manages keys and attestation policies alike.
        let key = self.token_key().ok_or(IdentityError::NoSigningKey)?;
        let mut aud: Vec<Value> = Vec::new();
        for a in self
            .config
            .audiences
            .iter()
            .take(1)
            .chain(self.config.attestation_audiences.iter())
        {
            let a = Value::String(canon_url(a).to_string());
            if !aud.contains(&a) {
                aud.push(a);
            }
        }
        if aud.is_empty() {
            return Err(IdentityError::InvalidScope {
                found: String::new(),
                expected: "a configured audience".into(),
            });
        }
        let (token, _) = self.sign_token(
            &key,
            &principal,
            Value::Array(aud),
            Some(self.config.bootstrap_token_lifetime),
            now,
        )?;
        Ok((principal, token))
    }
}

impl Identity {
    /// The identity rows that need a MAC: everything in the principals and role-assignment
    /// tables, and the bootstrap administrator pointer.
    fn protected_rows(&self) -> Result<Vec<(Table, String, Vec<u8>)>, IdentityError> {
        let mut out = Vec::new();
        for table in [Table::Principals, Table::RoleAssignments] {
            for (k, v) in self.all_rows(table, "")? {
                out.push((table, k, v));
            }
        }
        if let Some(v) = self.store.get(Table::Meta, BOOTSTRAP_ADMIN_META)? {
            out.push((Table::Meta, BOOTSTRAP_ADMIN_META.to_string(), v));
        }
        Ok(out)
    }

    /// Adopt identity rows written before rows were integrity-protected: MAC them once, and
    /// record that in [`ROW_INTEGRITY_META`] (itself MAC'd), all in one transaction. Called by the
    /// server after every unseal, once the row keys are installed; the caller logs and audits
    /// the result.
    ///
    /// Why adopting is acceptable: before this change nothing about these rows could be verified,
    /// so MAC'ing what is there at the first unseal of the new version trusts nothing that was not
    /// already trusted. After that the marker exists and unauthenticated rows are never adopted:
    /// - marker present and valid: nothing to do (unauthenticated rows stay refused on use);
    /// - marker present but failing its MAC: [`IdentityError::Integrity`], nothing adopted;
    /// - marker absent but some rows already authenticated (the marker was deleted): nothing is
    ///   adopted, the unauthenticated rows are reported in [`RowMigration::refused`], and the
    ///   marker is written again.
    ///
    /// Out of scope: someone who can write the database, deletes the marker *and every*
    /// authenticated identity row (the bootstrap administrator included), and plants
    /// unauthenticated rows before the next unseal gets them adopted; the adoption is then logged
    /// and audited with every row it took.
    pub fn migrate_row_integrity(&self, now: i64) -> Result<RowMigration, IdentityError> {
        let keys = self.row_keys()?;
        for _ in 0..3 {
            let marker = self.store.get(Table::Meta, ROW_INTEGRITY_META)?;
            if let Some(m) = &marker {
                self.open_row(Table::Meta, ROW_INTEGRITY_META, m)?;
                return Ok(RowMigration {
                    already_protected: true,
                    ..RowMigration::default()
                });
            }
            let rows = self.protected_rows()?;
            let (authenticated, legacy): (Vec<_>, Vec<_>) = rows
                .into_iter()
                .partition(|(_, _, v)| integrity::is_enveloped(v));
            let names: Vec<String> = legacy
                .iter()
                .map(|(t, k, _)| format!("{}/{}", t.name(), row_name(k)))
                .collect();
            let adopt = authenticated.is_empty();
            let mut ops = Vec::new();
            if adopt {
                for (table, key, old) in legacy {
                    let rk = keys.for_table(table).ok_or(IdentityError::NoRowKey)?;
                    let value = rk.seal(&key, &old);
                    ops.push(Op::Expect {
                        table,
                        key: key.clone(),
                        value: Some(old),
                    });
                    ops.push(Op::Put { table, key, value });
                }
            }
            let marker_payload = to_json(&serde_json::json!({
                "version": 1,
                "at": now,
                "adopted": if adopt { names.len() } else { 0 },
            }))?;
            ops.push(Op::Expect {
                table: Table::Meta,
                key: ROW_INTEGRITY_META.into(),
                value: None,
            });
            ops.push(self.put_row(Table::Meta, ROW_INTEGRITY_META.into(), &marker_payload)?);
            match self.transact(ops) {
                Ok(()) => {
                    return Ok(RowMigration::of_pass(adopt, names));
                }
                // Another process migrated (or wrote a row) at the same time: look again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdentityError::Store(StoreError::Conflict {
            table: Table::Meta.name(),
            key: ROW_INTEGRITY_META.into(),
            expected: "the identity rows to stop changing during the integrity migration",
        }))
    }
}
