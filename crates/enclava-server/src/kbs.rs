//! The Confidential Containers KBS protocol (RCAR 0.4.0) over HTTP: what CoCo guests
//! (guest-components' attestation agent and confidential data hub) speak to fetch resources.
//! Wire shapes and cryptography are [`enclava_kbs`]'s; this module owns sessions, verification
//! (the attestation service's verifiers and appraisal policies), resources (vault secrets) and
//! resource policies.
//!
//! | route | auth |
//! |---|---|
//! | `POST /kbs/v0/auth` | none (rate-limited like `/challenge`) |
//! | `POST /kbs/v0/attest` | the `kbs-session-id` cookie of `/auth` (rate-limited like `/attest`) |
//! | `GET /kbs/v0/resource/{repository}/{resource_type}/{tag}` | the attested session cookie, or `Authorization: Bearer <attestation token>` |
//! | `POST /kbs/v0/resource/{repository}/{resource_type}/{tag}` (body: the raw bytes) | Enclava token, `secrets/set` on the backing secret |
//! | `DELETE /kbs/v0/resource/{repository}/{resource_type}/{tag}` | Enclava token, `secrets/delete` |
//! | `GET /kbs/v0/admin/resource/{repository}/{resource_type}/{tag}` (`{"path", "value": standard base64}`) | Enclava token, `secrets/get` |
//! | `GET /kbs/v0/admin/resources` | Enclava token, `secrets/list` |
//! | `POST /kbs/v0/resource-policy` `{"policy": base64url(rego), "prefix"?: "repo[/type[/tag]]"}` | Enclava token, `policies/manage` |
//! | `GET /kbs/v0/resource-policy[?prefix=...]` | Enclava token, `policies/manage` |
//! | `POST /kbs/v0/admin/resource-policy/test` `{"policy"?: base64url, "path", "claims"}` | Enclava token, `policies/manage` |
//!
//! **Sessions** live in the store's `kbs_sessions` table (any replica continues a handshake):
//! `pending` from `/auth` for [`SESSION_TTL_SECS`], `used` once an `/attest` has spent its nonce
//! (single use, even across replicas: the spend is a conditional write), `attested` after a
//! successful attestation until the token expires. At most [`MAX_SESSIONS`] live at once;
//! expired ones are swept.
//!
//! **Resources** are vault secrets named `kbs-r-<escaped path>` (sealed, versioned, audited and
//! backed up like every secret; value: standard base64 of the bytes). A resource path is three
//! segments of `[A-Za-z0-9._-]`; in the secret name letters and digits stay, every other byte
//! becomes `-XX` (hex). **Resource policies** are secrets `kbs-p-<escaped prefix>` holding the
//! Rego text; a request is decided by the policy of the longest prefix of its path (`""` covers
//! every path); no policy means deny. Both name spaces are reserved ([`reserved_secret_name`]):
//! the `/secrets` data plane refuses them with 400 and hides them from listings, so the secrets
//! roles cannot bypass `policies/manage` or the attested session.
//!
//! **Evidence** (`tee-evidence.primary_evidence`) per TEE: `sample` `{"svn", "report_data"}`;
//! `tdx`, `sgx` `{"quote": base64}` (DCAP collateral from `attestation.collateral_dir`);
//! `az-snp-vtpm`, `az-tdx-vtpm` the vTPM evidence JSON (`version`, `hcl_report`, `tpm_quote`,
//! `vcek` / `td_quote`), the ASK/ARK from the collateral directory; `snp`
//! `{"attestation_report": the 1184-byte report as base64 or a byte array}`, or what
//! guest-components' SNP attester writes: the `sev` crate's structured JSON of the report plus
//! its `cert_chain` ([`enclava_kbs::snp`] rebuilds the signed bytes; the VCEK/VLEK of the chain
//! is used like an extended report's, the ASK/ARK also from the collateral directory). The
//! evidence is verified once: the binding and init-data checks run on the claims of the
//! attestation service's verification, before its appraisal
//! ([`enclava_attestation::AttestationService::attest_checked`]).
//!
//! **Tokens** are the attestation service's (EAR claims in `x-enclava-ear`), with the KBS facts
//! in `x-enclava-kbs`: `{tee, tee-pubkey, init-data?}`. A token is usable as Bearer on
//! `/resource` until it expires (no leeway).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use enclava_attestation::AttestRequest as ServiceRequest;
use enclava_attestation::request::Evidence;
use enclava_evidence::Claims;
use enclava_evidence::azure::AzureEvidence;
use enclava_identity::{Action, Resource};
use enclava_kbs::wire::{AttestRequest, AuthRequest, Challenge, KbsTee, ResourcePath};
use enclava_kbs::{ErrorKind, HashAlg, KbsError, SESSION_COOKIE};
use enclava_policy::kbs::ResourcePolicy;
use enclava_store::{Op, StoreError, Table};
use enclava_vault::{SecretSetParameters, VaultError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::data::Reply;
use crate::error::ApiError;
use crate::route::RouteError;

/// Lifetime of a session between `/auth` and `/attest`.
pub const SESSION_TTL_SECS: i64 = 300;
/// Most live sessions (all states) in the store; `/auth` answers 429 beyond.
pub const MAX_SESSIONS: usize = 10_000;
/// How often a process sweeps expired sessions (and recounts the live ones).
const SWEEP_EVERY_SECS: u64 = 10;
/// Secret name prefix of resources.
pub const RESOURCE_PREFIX: &str = "kbs-r-";
/// Secret name prefix of resource policies.
pub const POLICY_PREFIX: &str = "kbs-p-";
/// Whether a Key Vault secret name belongs to the KBS (a resource or a resource policy). Those
/// names are unreachable from the `/secrets` data plane: a principal with only `secrets/set`
/// must not be able to replace a resource policy (guarded by `policies/manage`) or read a
/// resource around the KBS's own checks. Vault names are case-insensitive, so is this test.
pub fn reserved_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with(RESOURCE_PREFIX) || lower.starts_with(POLICY_PREFIX)
}

/// Content type of a resource secret.
pub const RESOURCE_CONTENT_TYPE: &str = "application/vnd.enclava.kbs-resource+base64";
/// Content type of a resource policy secret.
pub const POLICY_CONTENT_TYPE: &str = "application/vnd.enclava.kbs-policy+rego";
/// The token claim carrying the KBS facts.
pub const KBS_CLAIM: &str = "x-enclava-kbs";

// ---------------------------------------------------------------------------------------------
// Routes

/// The KBS routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KbsRoute {
    Auth,
    Attest,
    GetResource { path: String },
    SetResource { path: String },
    DeleteResource { path: String },
    AdminGetResource { path: String },
    ListResources,
    GetResourcePolicy,
    SetResourcePolicy,
    TestResourcePolicy,
}

/// Match a KBS route; `None` when the path is not under `/kbs/`.
pub fn route(m: &Method, segs: &[&str]) -> Option<Result<KbsRoute, RouteError>> {
    let only = |want: Method, r: KbsRoute, allowed: &'static str| {
        if *m == want {
            Ok(r)
        } else {
            Err(RouteError::MethodNotAllowed { allowed })
        }
    };
    let rest = match segs {
        ["kbs", "v0", rest @ ..] => rest,
        ["kbs", ..] => return Some(Err(RouteError::NotFound)),
        _ => return None,
    };
    Some(match rest {
        ["auth"] => only(Method::POST, KbsRoute::Auth, "POST"),
        ["attest"] => only(Method::POST, KbsRoute::Attest, "POST"),
        ["resource", r, t, g] => {
            let path = format!("{r}/{t}/{g}");
            match *m {
                Method::GET => Ok(KbsRoute::GetResource { path }),
                Method::POST | Method::PUT => Ok(KbsRoute::SetResource { path }),
                Method::DELETE => Ok(KbsRoute::DeleteResource { path }),
                _ => Err(RouteError::MethodNotAllowed {
                    allowed: "GET, POST, DELETE",
                }),
            }
        }
        ["admin", "resource", r, t, g] => only(
            Method::GET,
            KbsRoute::AdminGetResource {
                path: format!("{r}/{t}/{g}"),
            },
            "GET",
        ),
        ["admin", "resources"] => only(Method::GET, KbsRoute::ListResources, "GET"),
        ["resource-policy"] => match *m {
            Method::GET => Ok(KbsRoute::GetResourcePolicy),
            Method::POST | Method::PUT => Ok(KbsRoute::SetResourcePolicy),
            _ => Err(RouteError::MethodNotAllowed {
                allowed: "GET, POST",
            }),
        },
        ["admin", "resource-policy", "test"] => {
            only(Method::POST, KbsRoute::TestResourcePolicy, "POST")
        }
        _ => Err(RouteError::NotFound),
    })
}

impl KbsRoute {
    pub fn template(&self) -> &'static str {
        match self {
            KbsRoute::Auth => "/kbs/v0/auth",
            KbsRoute::Attest => "/kbs/v0/attest",
            KbsRoute::GetResource { .. }
            | KbsRoute::SetResource { .. }
            | KbsRoute::DeleteResource { .. } => {
                "/kbs/v0/resource/{repository}/{resource_type}/{tag}"
            }
            KbsRoute::AdminGetResource { .. } => {
                "/kbs/v0/admin/resource/{repository}/{resource_type}/{tag}"
            }
            KbsRoute::ListResources => "/kbs/v0/admin/resources",
            KbsRoute::GetResourcePolicy | KbsRoute::SetResourcePolicy => "/kbs/v0/resource-policy",
            KbsRoute::TestResourcePolicy => "/kbs/v0/admin/resource-policy/test",
        }
    }

    pub fn operation(&self) -> &'static str {
        match self {
            KbsRoute::Auth => "KbsAuth",
            KbsRoute::Attest => "KbsAttest",
            KbsRoute::GetResource { .. } => "KbsGetResource",
            KbsRoute::SetResource { .. } => "KbsSetResource",
            KbsRoute::DeleteResource { .. } => "KbsDeleteResource",
            KbsRoute::AdminGetResource { .. } => "KbsAdminGetResource",
            KbsRoute::ListResources => "KbsListResources",
            KbsRoute::GetResourcePolicy => "KbsGetResourcePolicy",
            KbsRoute::SetResourcePolicy => "KbsSetResourcePolicy",
            KbsRoute::TestResourcePolicy => "KbsTestResourcePolicy",
        }
    }

    /// The audited object.
    pub fn object(&self) -> Option<String> {
        match self {
            KbsRoute::GetResource { path }
            | KbsRoute::SetResource { path }
            | KbsRoute::DeleteResource { path }
            | KbsRoute::AdminGetResource { path } => Some(format!(
                "kbs/resource/{}",
                path.chars().take(200).collect::<String>()
            )),
            KbsRoute::GetResourcePolicy
            | KbsRoute::SetResourcePolicy
            | KbsRoute::TestResourcePolicy => Some("kbs/resource-policy".into()),
            _ => None,
        }
    }

    /// Whether the route hands out or changes a resource (its audit entry must be durable).
    pub fn is_sensitive(&self) -> bool {
        !matches!(self, KbsRoute::Auth)
    }
}

// ---------------------------------------------------------------------------------------------
// Per-request context and errors

/// What a KBS request leaves for the pipeline (audit detail, principal, the cookie to set).
#[derive(Debug, Default, Clone)]
pub struct KbsCtx {
    pub principal: Option<String>,
    pub action: Option<&'static str>,
    pub detail: Option<String>,
    pub set_cookie: Option<String>,
}

fn kerr(e: KbsError) -> ApiError {
    let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, e.kind.as_str(), e.detail)
}

fn k(kind: ErrorKind, detail: impl Into<String>) -> ApiError {
    kerr(KbsError::new(kind, detail))
}

/// The KBS error body `{"type": ".../errors/<Kind>", "detail"}` for an error on a KBS route.
/// Errors raised by the shared pipeline (rate limit, sealed vault, bad token) are given the
/// closest kind.
pub fn error_response(e: ApiError) -> Response {
    let kind = match e.code.as_str() {
        "TooManyRequests" => "TooManyRequests",
        "VaultSealed" | "VaultNotInitialized" | "StorageUnavailable" => "Unavailable",
        "NotFound" => "NotFound",
        "MethodNotAllowed" => "InvalidRequest",
        c if c.chars().next().is_some_and(|ch| ch.is_ascii_uppercase()) => c,
        _ if e.status == StatusCode::UNAUTHORIZED => "Unauthenticated",
        _ if e.status == StatusCode::FORBIDDEN => "Forbidden",
        _ if e.status.is_server_error() => "Internal",
        _ => "InvalidRequest",
    };
    let body = json!({
        "type": format!("{}{kind}", enclava_kbs::error::ERROR_TYPE_PREFIX),
        "detail": e.message,
    });
    let mut resp = (e.status, axum::Json(body)).into_response();
    if let Some(w) = e.www_authenticate
        && let Ok(v) = HeaderValue::from_str(&w)
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn store_err(e: StoreError) -> ApiError {
    if e.is_unavailable() {
        return k(
            ErrorKind::Unavailable,
            "the database is unavailable: retry later",
        );
    }
    ApiError::internal(format!("session storage failed: {e}"))
}

fn vault_err(e: VaultError) -> ApiError {
    ApiError::from(e)
}

// ---------------------------------------------------------------------------------------------
// Sessions

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SessionState {
    Pending,
    Used,
    Attested,
}

/// A stored session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    tee: KbsTee,
    hash: HashAlg,
    nonce: String,
    created: i64,
    expires: i64,
    state: SessionState,
    /// Claims of the issued token (attested sessions): the resource policy's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claims: Option<Value>,
    /// The report-data value this session's evidence must carry, in hex, instead of the JCS
    /// binding digest. No route sets it: only a test that writes the session row itself (to
    /// attest recorded evidence whose report data is a fixed string, see tests/kbs.rs). Whoever
    /// can write the store can already do anything; the check against the evidence still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected_report_data: Option<String>,
}

/// Most compiled resource policies kept per process (the cache starts over beyond).
const MAX_CACHED_POLICIES: usize = 256;

/// Per-process KBS state: session sweep bookkeeping, and compiled resource policies by the
/// SHA-256 of their text (a changed policy has another text, so nothing goes stale; the text
/// itself is read from the vault on every request).
#[derive(Default)]
pub struct KbsState {
    last: Mutex<Option<(Instant, usize)>>,
    policies: Mutex<HashMap<[u8; 32], Arc<ResourcePolicy>>>,
}

impl KbsState {
    fn compiled(&self, text: &str) -> Result<Arc<ResourcePolicy>, ApiError> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
        let mut cache = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(
            ResourcePolicy::compile("resource-policy.rego", text).map_err(|e| {
                ApiError::internal(format!("stored resource policy does not compile: {e}"))
            })?,
        );
        if cache.len() >= MAX_CACHED_POLICIES {
            cache.clear();
        }
        cache.insert(key, p.clone());
        Ok(p)
    }
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

fn new_session_id() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| ApiError::internal("random generator failed"))?;
    Ok(hex::encode(b))
}

fn valid_session_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn cookie_session(headers: &HeaderMap) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(text) = v.to_str() else { continue };
        for part in text.split(';') {
            if let Some((name, value)) = part.trim().split_once('=')
                && name.trim() == SESSION_COOKIE
            {
                return Some(value.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

fn set_cookie(st: &AppState, id: &str, expires: i64) -> String {
    let when = chrono::DateTime::<Utc>::from_timestamp(expires, 0)
        .unwrap_or_else(Utc::now)
        .format("%a, %d %b %Y %H:%M:%S GMT");
    let secure = if st.config.insecure_http {
        ""
    } else {
        "; Secure"
    };
    format!(
        "{SESSION_COOKIE}={id}; Expires={when}; Path=/kbs/v0; HttpOnly; SameSite=Strict{secure}"
    )
}

fn load_session(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Session, Vec<u8>), ApiError> {
    let Some(id) = cookie_session(headers) else {
        return Err(k(
            ErrorKind::MissingCookie,
            format!("expected a {SESSION_COOKIE} cookie from POST /kbs/v0/auth, found none"),
        ));
    };
    if !valid_session_id(&id) {
        return Err(k(
            ErrorKind::InvalidCookie,
            format!("{SESSION_COOKIE}: expected 32 hex digits, found another value"),
        ));
    }
    let raw = st
        .store
        .get(Table::KbsSessions, &id)
        .map_err(store_err)?
        .ok_or_else(|| {
            k(
                ErrorKind::InvalidCookie,
                "the session is unknown (never issued, or already expired and removed)",
            )
        })?;
    let s: Session = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::internal(format!("stored KBS session is unreadable: {e}")))?;
    if s.expires <= now_secs() {
        return Err(k(
            ErrorKind::ExpiredCookie,
            "the session expired: start again with POST /kbs/v0/auth",
        ));
    }
    Ok((id, s, raw))
}

impl KbsState {
    /// Remove expired sessions every [`SWEEP_EVERY_SECS`] and return the number still live
    /// (as of the last sweep).
    fn live_sessions(&self, st: &AppState) -> Result<usize, ApiError> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, n)) = *last
            && at.elapsed().as_secs() < SWEEP_EVERY_SECS
        {
            return Ok(n);
        }
        let now = now_secs();
        let mut live = 0usize;
        let mut after: Option<String> = None;
        loop {
            let rows = st
                .store
                .list(Table::KbsSessions, "", after.as_deref(), 1000)
                .map_err(store_err)?;
            if rows.is_empty() {
                break;
            }
            let mut dead = Vec::new();
            for (key, v) in &rows {
                match serde_json::from_slice::<Session>(v) {
                    Ok(s) if s.expires > now => live += 1,
                    _ => dead.push(Op::Delete {
                        table: Table::KbsSessions,
                        key: key.clone(),
                    }),
                }
            }
            if !dead.is_empty() {
                st.store.transact(dead).map_err(store_err)?;
            }
            after = rows.last().map(|(key, _)| key.clone());
            if rows.len() < 1000 || live > MAX_SESSIONS {
                break;
            }
        }
        *last = Some((Instant::now(), live));
        Ok(live)
    }

    fn created(&self) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = last.as_mut() {
            *n += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Run a KBS route (blocking context).
pub fn execute(
    st: &AppState,
    route: &KbsRoute,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    ctx: &mut KbsCtx,
) -> Result<Reply, ApiError> {
    if st.vault.is_sealed() {
        return Err(ApiError::sealed());
    }
    match route {
        KbsRoute::Auth => auth(st, body, ctx),
        KbsRoute::Attest => attest(st, headers, body, ctx),
        KbsRoute::GetResource { path } => get_resource(st, headers, path, query, ctx),
        KbsRoute::SetResource { path } => {
            let path = ResourcePath::parse(path).map_err(kerr)?;
            let name = resource_secret(&path)?;
            admin_auth(
                st,
                headers,
                ctx,
                Action::SecretSet,
                Resource::Secret(name.clone()),
            )?;
            let b = set_secret(st, &name, STANDARD.encode(body), RESOURCE_CONTENT_TYPE)?;
            ctx.detail = Some(format!("resource {path} version {}", version_of(&b.id)));
            Reply::json(&json!({"path": path.to_string(), "version": version_of(&b.id)}))
        }
        KbsRoute::DeleteResource { path } => {
            let path = ResourcePath::parse(path).map_err(kerr)?;
            let name = resource_secret(&path)?;
            admin_auth(
                st,
                headers,
                ctx,
                Action::SecretDelete,
                Resource::Secret(name.clone()),
            )?;
            st.vault
                .delete_secret(&name)
                .map_err(|e| missing(e, &path))?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        KbsRoute::AdminGetResource { path } => {
            let path = ResourcePath::parse(path).map_err(kerr)?;
            let name = resource_secret(&path)?;
            admin_auth(
                st,
                headers,
                ctx,
                Action::SecretGet,
                Resource::Secret(name.clone()),
            )?;
            let bytes = zeroize::Zeroizing::new(read_resource(st, &name, &path)?);
            Reply::json(&json!({"path": path.to_string(), "value": STANDARD.encode(&*bytes)}))
        }
        KbsRoute::ListResources => {
            admin_auth(st, headers, ctx, Action::SecretList, Resource::Vault)?;
            list_resources(st)
        }
        KbsRoute::GetResourcePolicy => {
            admin_auth(st, headers, ctx, Action::PolicyManage, Resource::Vault)?;
            let prefix = query
                .iter()
                .find(|(k, _)| k == "prefix")
                .map_or("", |(_, v)| v.as_str());
            let prefix = policy_prefix(prefix)?;
            match read_policy(st, &prefix)? {
                Some((text, version)) => Reply::json(&json!({
                    "prefix": prefix,
                    "policy": URL_SAFE_NO_PAD.encode(text.as_bytes()),
                    "version": version,
                })),
                // No policy is a state (every path under it is denied), not a missing route.
                None => Reply::json(&json!({"prefix": prefix, "policy": null, "version": null})),
            }
        }
        KbsRoute::SetResourcePolicy => {
            admin_auth(st, headers, ctx, Action::PolicyManage, Resource::Vault)?;
            let req: PolicyBody = serde_json::from_slice(body).map_err(|e| {
                k(
                    ErrorKind::InvalidRequest,
                    format!(
                        "body: expected {{\"policy\": base64url(rego), \"prefix\"?: string}}: {e}"
                    ),
                )
            })?;
            let prefix = policy_prefix(req.prefix.as_deref().unwrap_or(""))?;
            let text = decode_policy(&req.policy)?;
            // Compile before storing: a broken policy is refused, never stored.
            ResourcePolicy::compile("resource-policy.rego", &text)
                .map_err(|e| k(ErrorKind::InvalidRequest, format!("policy: {e}")))?;
            let b = set_secret(st, &policy_secret(&prefix), text, POLICY_CONTENT_TYPE)?;
            ctx.detail = Some(format!(
                "resource policy prefix {prefix:?} version {}",
                version_of(&b.id)
            ));
            Reply::json(&json!({"prefix": prefix, "version": version_of(&b.id)}))
        }
        KbsRoute::TestResourcePolicy => {
            admin_auth(st, headers, ctx, Action::PolicyManage, Resource::Vault)?;
            let req: TestBody = serde_json::from_slice(body).map_err(|e| {
                k(
                    ErrorKind::InvalidRequest,
                    format!(
                        "body: expected {{\"path\": string, \"claims\": object, \"policy\"?: base64url(rego)}}: {e}"
                    ),
                )
            })?;
            let path = ResourcePath::parse(&req.path).map_err(kerr)?;
            let (policy, prefix) = match &req.policy {
                // A draft: compiled for this request only, its errors are the caller's.
                Some(p) => (
                    Arc::new(
                        ResourcePolicy::compile("draft.rego", &decode_policy(p)?)
                            .map_err(|e| k(ErrorKind::InvalidRequest, format!("policy: {e}")))?,
                    ),
                    None,
                ),
                None => match find_policy(st, &path)? {
                    Some((text, prefix)) => (st.kbs.compiled(&text)?, Some(prefix)),
                    None => {
                        return Reply::json(&json!({
                            "allowed": false,
                            "failed": [{"rule": "no_policy", "path": "", "expected": "a resource policy covering the path", "found": "none"}],
                        }));
                    }
                },
            };
            let d = evaluate(&policy, &req.claims, &path, &Map::new())?;
            Reply::json(&json!({
                "allowed": d.allowed,
                "prefix": prefix,
                "failed": d.failed.iter().map(|f| json!({
                    "rule": f.rule, "path": f.claim_path, "expected": f.expected, "found": f.found,
                })).collect::<Vec<_>>(),
            }))
        }
    }
}

#[derive(Deserialize)]
struct PolicyBody {
    policy: String,
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Deserialize)]
struct TestBody {
    path: String,
    claims: Value,
    #[serde(default)]
    policy: Option<String>,
}

fn admin_auth(
    st: &AppState,
    headers: &HeaderMap,
    ctx: &mut KbsCtx,
    action: Action,
    resource: Resource,
) -> Result<(), ApiError> {
    ctx.action = Some(action.name());
    let p = crate::app::authenticate(st, headers)?;
    ctx.principal = Some(p.id.clone());
    crate::app::authorize(st, &p, action, &resource)
}

fn auth(st: &AppState, body: &[u8], ctx: &mut KbsCtx) -> Result<Reply, ApiError> {
    let req = AuthRequest::parse(body).map_err(kerr)?;
    if st.kbs.live_sessions(st)? >= MAX_SESSIONS {
        return Err(k(
            ErrorKind::TooManyRequests,
            format!("{MAX_SESSIONS} KBS sessions are open: retry when some have expired"),
        ));
    }
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| ApiError::internal("random generator failed"))?;
    let nonce = STANDARD.encode(nonce);
    let id = new_session_id()?;
    let now = now_secs();
    let s = Session {
        tee: req.tee,
        hash: req.hash,
        nonce: nonce.clone(),
        created: now,
        expires: now + SESSION_TTL_SECS,
        state: SessionState::Pending,
        claims: None,
        expected_report_data: None,
    };
    let v = serde_json::to_vec(&s).map_err(|e| ApiError::internal(e.to_string()))?;
    st.store
        .transact(vec![Op::Put {
            table: Table::KbsSessions,
            key: id.clone(),
            value: v,
        }])
        .map_err(store_err)?;
    st.kbs.created();
    ctx.set_cookie = Some(set_cookie(st, &id, s.expires));
    ctx.detail = Some(format!(
        "tee={} hash={}",
        req.tee.as_str(),
        req.hash.as_str()
    ));
    Reply::json(&Challenge {
        nonce,
        extra_params: Value::String(String::new()),
    })
}

/// The enclava evidence for a CoCo attester's `primary_evidence`.
fn evidence_of(st: &AppState, tee: KbsTee, primary: &Value) -> Result<Evidence, ApiError> {
    let bad = |m: String| k(ErrorKind::InvalidRequest, format!("tee-evidence: {m}"));
    let b64_member = |name: &str| -> Result<Vec<u8>, ApiError> {
        match primary.get(name) {
            Some(Value::String(s)) => STANDARD
                .decode(s)
                .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
                .map_err(|_| bad(format!("{name}: expected base64, found undecodable text"))),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| bad(format!("{name}: expected an array of bytes"))),
            _ => Err(bad(format!(
                "{name}: expected a base64 string, found none ({} evidence)",
                tee.as_str()
            ))),
        }
    };
    Ok(match tee {
        KbsTee::Sample => Evidence::Sample {
            evidence: primary.to_string().into_bytes(),
        },
        KbsTee::Tdx => Evidence::Tdx {
            quote: b64_member("quote")?,
            collateral: None,
        },
        KbsTee::Sgx => Evidence::Sgx {
            quote: b64_member("quote")?,
            collateral: None,
        },
        KbsTee::Snp
            if primary
                .get("attestation_report")
                .is_some_and(Value::is_object) =>
        {
            // guest-components' SNP attester: the `sev` crate's structured JSON, rebuilt into
            // the signed bytes (the signature check proves the rebuild), with its cert table.
            let ev = enclava_kbs::snp::evidence_from_json(primary)
                .map_err(|e| bad(format!("expected the sev crate's SNP evidence JSON: {e}")))?;
            // The attester's VCEK/VLEK first; the ASK/ARK (and a cached VCEK) from the
            // collateral directory, each certificate once.
            let mut certs_der = ev.certs_der;
            for c in st.attestation.snp_certs(&ev.report) {
                if !certs_der.contains(&c) {
                    certs_der.push(c);
                }
            }
            Evidence::Snp {
                report: ev.report,
                certs_der,
                crls_der: Vec::new(),
                uvm_endorsements: None,
            }
        }
        KbsTee::Snp => Evidence::Snp {
            report: b64_member("attestation_report")?,
            certs_der: Vec::new(),
            crls_der: Vec::new(),
            uvm_endorsements: None,
        },
        KbsTee::AzSnpVtpm | KbsTee::AzTdxVtpm => {
            let ev = AzureEvidence::from_coco_json(primary.to_string().as_bytes())
                .map_err(|e| bad(format!("expected Azure vTPM evidence JSON: {e}")))?;
            if tee == KbsTee::AzSnpVtpm {
                // The evidence carries the VCEK only: the ASK and ARK come from the collateral
                // directory (as trustee ships them built in).
                let certs_der = enclava_evidence::azure::parse_hcl_report(&ev.hcl_report)
                    .map(|h| st.attestation.snp_certs(&h.hardware_report))
                    .unwrap_or_default();
                Evidence::AzureSnp {
                    evidence: Box::new(ev),
                    certs_der,
                    crls_der: Vec::new(),
                }
            } else {
                Evidence::AzureTdx {
                    evidence: Box::new(ev),
                    collateral: None,
                }
            }
        }
    })
}

/// The KBS's checks of verified claims: the runtime-data binding (the report field must carry
/// H(JCS(runtime data)), or for a session built by a test around recorded evidence the value
/// stored with it) and the init-data digest in the TEE's launch-time field. Returns the
/// `x-enclava-kbs` claim.
fn kbs_checks(
    tee: KbsTee,
    hash: HashAlg,
    req: &AttestRequest,
    expected: &[u8],
    digest: &[u8],
    claims: &Claims,
) -> Result<Map<String, Value>, ApiError> {
    let field = binding_field(tee, claims)?;
    let binding_ok = match tee.report_data_len() {
        Some(_) => enclava_kbs::binding::check(expected, &field),
        // vTPM: the quote's extraData is exactly the digest.
        None if field.len() == expected.len() => enclava_kbs::binding::check(expected, &field),
        None => Err(KbsError::new(
            ErrorKind::BindingMismatch,
            format!(
                "runtime-data binding: expected the vTPM quote's extraData to be {} ({} of the JCS runtime data), found {}",
                hex::encode(expected),
                hash.as_str(),
                hex::encode(&field)
            ),
        )),
    };
    binding_ok.map_err(kerr)?;

    let mut kbs_claim = Map::new();
    kbs_claim.insert("tee".into(), tee.as_str().into());
    kbs_claim.insert("tee-pubkey".into(), req.tee_pubkey_jwk.clone());
    kbs_claim.insert(
        "runtime-data-hash".into(),
        json!({
            "algorithm": hash.as_str(),
            "digest": hex::encode(digest),
        }),
    );
    if let Some(init) = &req.init_data {
        let d = enclava_kbs::initdata::digest(&init.body).map_err(kerr)?;
        let checked = match init_data_field(claims, &d) {
            Some((name, field, expected)) => {
                enclava_kbs::initdata::check(&expected, &field, name).map_err(kerr)?;
                Some(name)
            }
            None => None,
        };
        kbs_claim.insert(
            "init-data".into(),
            json!({
                "algorithm": d.algorithm.as_str(),
                "digest": hex::encode(&d.digest),
                "checked-against": checked,
            }),
        );
    }
    let mut extra = Map::new();
    extra.insert(KBS_CLAIM.into(), Value::Object(kbs_claim));
    Ok(extra)
}

/// The report field the binding lands in, from verified claims.
fn binding_field(tee: KbsTee, c: &Claims) -> Result<Vec<u8>, ApiError> {
    let hex_field = match tee {
        KbsTee::AzSnpVtpm | KbsTee::AzTdxVtpm => c
            .azure
            .as_ref()
            .map(|a| a.nonce.clone())
            .unwrap_or_default(),
        _ => c.report_data.clone(),
    };
    hex::decode(hex_field)
        .map_err(|_| ApiError::internal("verified claims carry report data that is not hex"))
}

/// Where verified claims carry the init-data digest, and the value that field must hold:
/// SNP HOSTDATA and TDX MRCONFIGID the digest itself (fitted to the field); an Azure vTPM's
/// PCR 8 the extension of a zero PCR by it, SHA-256(0^32 || digest fitted to 32 bytes), as
/// CoCo's guests extend it and trustee checks it. `None`: the TEE has no such field (`sample`).
fn init_data_field(
    c: &Claims,
    d: &enclava_kbs::initdata::InitDataDigest,
) -> Option<(&'static str, Vec<u8>, enclava_kbs::initdata::InitDataDigest)> {
    use sha2::Digest;
    let v = serde_json::to_value(c).ok()?;
    let hex_at = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    if let Some(h) = hex_at("/snp/host_data") {
        return hex::decode(h).ok().map(|b| ("HOSTDATA", b, d.clone()));
    }
    if let Some(h) = hex_at("/tdx/mr_config_id") {
        return hex::decode(h).ok().map(|b| ("MRCONFIGID", b, d.clone()));
    }
    if c.azure.is_some() {
        // A PCR 8 the quote does not cover is an empty field: the check then refuses.
        let pcr = hex_at("/azure/pcrs/8")
            .and_then(|h| hex::decode(h).ok())
            .unwrap_or_default();
        let mut input = [0u8; 64];
        input[32..].copy_from_slice(&enclava_kbs::binding::fit(&d.digest, 32));
        let expected = enclava_kbs::initdata::InitDataDigest {
            algorithm: d.algorithm,
            digest: sha2::Sha256::digest(input).to_vec(),
        };
        return Some(("PCR 8", pcr, expected));
    }
    None
}

fn attest(
    st: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &mut KbsCtx,
) -> Result<Reply, ApiError> {
    let (id, session, raw) = load_session(st, headers)?;
    ctx.detail = Some(format!("tee={}", session.tee.as_str()));
    if session.state != SessionState::Pending {
        return Err(k(
            ErrorKind::InvalidNonce,
            "the session's nonce was already used: start again with POST /kbs/v0/auth",
        ));
    }
    let req = AttestRequest::parse(body).map_err(kerr)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        req.nonce.as_bytes(),
        session.nonce.as_bytes(),
    )
    .is_err()
    {
        return Err(k(
            ErrorKind::InvalidNonce,
            "runtime-data.nonce: expected the nonce this session's /auth answered, found another",
        ));
    }
    // Spend the nonce before anything else, conditionally on the row being unchanged: of two
    // attests racing with one nonce (on any replicas), exactly one gets past here.
    let mut used = session.clone();
    used.state = SessionState::Used;
    let used_bytes = serde_json::to_vec(&used).map_err(|e| ApiError::internal(e.to_string()))?;
    match st.store.transact(vec![
        Op::Expect {
            table: Table::KbsSessions,
            key: id.clone(),
            value: Some(raw),
        },
        Op::Put {
            table: Table::KbsSessions,
            key: id.clone(),
            value: used_bytes,
        },
    ]) {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(k(
                ErrorKind::InvalidNonce,
                "the session's nonce was already used: start again with POST /kbs/v0/auth",
            ));
        }
        Err(e) => return Err(store_err(e)),
    }

    let evidence = evidence_of(st, session.tee, &req.primary_evidence)?;
    let a = &st.attestation;
    let svc = a.service(st)?;
    let now = a.config.verification_time.unwrap_or_else(Utc::now);
    let digest = req.binding_digest(session.hash);
    let expected = match &session.expected_report_data {
        Some(h) => hex::decode(h).map_err(|_| ApiError::internal("stored binding is not hex"))?,
        None => digest.clone(),
    };

    // The KBS's own checks run on the claims of the service's one verification of the
    // evidence, before its appraisal. Their error (a KBS error kind) is kept here and the
    // service is told only to stop.
    let mut kbs_err: Option<ApiError> = None;
    let out = {
        let mut check =
            |claims: &Claims| -> Result<Map<String, Value>, enclava_attestation::AttestError> {
                kbs_checks(session.tee, session.hash, &req, &expected, &digest, claims).map_err(
                    |e| {
                        kbs_err = Some(e);
                        enclava_attestation::AttestError::Denied { failed: Vec::new() }
                    },
                )
            };
        let mut sreq = ServiceRequest::new(evidence);
        sreq.nonce = Some(session.nonce.clone());
        svc.attest_checked(&sreq, now, &mut check)
    };
    let out = match (out, kbs_err) {
        (_, Some(e)) => return Err(e),
        (Ok(out), None) => out,
        (Err(e), None) => {
            let failed = e.failed_rules();
            let detail = if let Some(c) = e.failed_check() {
                format!("evidence verification failed ({c}): {e}")
            } else if failed.is_empty() {
                e.to_string()
            } else {
                let d: Vec<String> = failed.iter().map(ToString::to_string).collect();
                format!(
                    "denied by the {} appraisal policy: {}",
                    session.tee.as_str(),
                    d.join("; ")
                )
            };
            return Err(k(ErrorKind::AttestationFailed, detail));
        }
    };
    let exp = out
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(now_secs() + SESSION_TTL_SECS);
    let mut done = used;
    done.state = SessionState::Attested;
    done.expires = exp;
    done.claims = Some(Value::Object(out.claims.clone()));
    st.store
        .transact(vec![Op::Put {
            table: Table::KbsSessions,
            key: id.clone(),
            value: serde_json::to_vec(&done).map_err(|e| ApiError::internal(e.to_string()))?,
        }])
        .map_err(store_err)?;
    ctx.set_cookie = Some(set_cookie(st, &id, exp));
    ctx.detail = Some(format!(
        "tee={} policy={}",
        session.tee.as_str(),
        out.claims
            .get("x-enclava-policy")
            .map(|p| p.to_string())
            .unwrap_or_default()
    ));
    Reply::json(&json!({"token": out.token}))
}

/// The claims to decide a resource request on: a Bearer attestation token's, else the
/// attested session's.
fn resource_claims(st: &AppState, headers: &HeaderMap) -> Result<Value, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if let Some(token) = bearer {
        let a = &st.attestation;
        let svc = a.service(st)?;
        let jwks = svc
            .jwks()
            .map_err(|e| ApiError::internal(format!("attestation keys unavailable: {e}")))?;
        let now = a.config.verification_time.unwrap_or_else(Utc::now);
        let mut expect = enclava_token::Expectations::new(a.issuer().to_string(), now);
        // The protocol's tokens are short-lived: none is used past its expiry.
        expect.leeway = std::time::Duration::ZERO;
        let v = enclava_token::verify(token, &jwks, &expect).map_err(|e| match e {
            enclava_token::TokenError::Expired { .. } => {
                k(ErrorKind::TokenExpired, format!("attestation token: {e}"))
            }
            other => k(
                ErrorKind::TokenVerificationFailed,
                format!("attestation token: {other}"),
            ),
        })?;
        return Ok(Value::Object(v.claims));
    }
    if cookie_session(headers).is_none() {
        return Err(k(
            ErrorKind::TokenNotFound,
            "expected an attested kbs-session-id cookie or Authorization: Bearer <attestation token>, found neither",
        ));
    }
    let (_, s, _) = load_session(st, headers)?;
    match (s.state, s.claims) {
        (SessionState::Attested, Some(c)) => Ok(c),
        _ => Err(k(
            ErrorKind::UnAuthenticatedCookie,
            "the session has not attested: POST /kbs/v0/attest first",
        )),
    }
}

fn get_resource(
    st: &AppState,
    headers: &HeaderMap,
    path: &str,
    query: &[(String, String)],
    ctx: &mut KbsCtx,
) -> Result<Reply, ApiError> {
    let path = ResourcePath::parse(path).map_err(kerr)?;
    let claims = resource_claims(st, headers)?;
    let jwk = claims
        .pointer(&format!("/{KBS_CLAIM}/tee-pubkey"))
        .cloned()
        .ok_or_else(|| {
            k(
                ErrorKind::TokenVerificationFailed,
                format!("the attestation token carries no {KBS_CLAIM}.tee-pubkey (not issued by /kbs/v0/attest)"),
            )
        })?;
    let key = enclava_kbs::jwk::TeePubKey::from_jwk(&jwk).map_err(kerr)?;
    let q: Map<String, Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let Some((text, prefix)) = find_policy(st, &path)? else {
        ctx.detail = Some("no resource policy".into());
        return Err(k(
            ErrorKind::PolicyDeny,
            format!(
                "no resource policy covers {path}: default deny (set one with `enclava kbs policy set`)"
            ),
        ));
    };
    let d = evaluate(&*st.kbs.compiled(&text)?, &claims, &path, &q)?;
    if !d.allowed {
        let reasons: Vec<String> = d.failed.iter().map(ToString::to_string).collect();
        ctx.detail = Some(format!(
            "policy prefix {prefix:?} denied: {}",
            reasons.join("; ")
        ));
        return Err(k(
            ErrorKind::PolicyDeny,
            format!(
                "resource policy (prefix {prefix:?}) denied {path}: {}",
                reasons.join("; ")
            ),
        ));
    }
    let name = resource_secret(&path)?;
    let bytes = zeroize::Zeroizing::new(read_resource(st, &name, &path)?);
    let jwe = enclava_kbs::jwe::encrypt(&key, &bytes).map_err(kerr)?;
    ctx.detail = Some(format!("released under policy prefix {prefix:?}"));
    Reply::json(&jwe)
}

/// The resource policy's input: the token claims, plus the EAR appraisal (`x-enclava-ear`)
/// lifted to the top level as trustee's tokens carry it (`eat_profile`, `ear.verifier-id`,
/// `submods`), its one submodule also under the name `cpu0` that trustee's policies read
/// (`input.submods.cpu0["ear.status"]`). Claims already at the top level win.
pub fn policy_input(claims: &Value) -> Value {
    let mut input = claims.clone();
    let ear = claims.get(enclava_token::ear::EMBED_CLAIM).cloned();
    if let (Some(Value::Object(ear)), Value::Object(top)) = (ear, &mut input) {
        for (k, v) in ear {
            top.entry(k).or_insert(v);
        }
        if let Some(Value::Object(sub)) = top.get_mut("submods")
            && sub.len() == 1
            && !sub.contains_key("cpu0")
            && let Some(only) = sub.values().next().cloned()
        {
            sub.insert("cpu0".into(), only);
        }
    }
    input
}

fn evaluate(
    p: &ResourcePolicy,
    claims: &Value,
    path: &ResourcePath,
    query: &Map<String, Value>,
) -> Result<enclava_policy::Decision, ApiError> {
    p.evaluate(
        &policy_input(claims),
        &enclava_policy::kbs::resource_data(&path.to_string(), query),
    )
    .map_err(|e| {
        k(
            ErrorKind::PolicyDeny,
            format!("resource policy failed to evaluate: {e}"),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Resources and policies in the vault

/// Lower-case letters and digits as they are; every other byte `-XX`, upper-case letters included.
/// Vault names compare without regard to case, KBS paths with it: escaping upper case keeps
/// `default/Key/1` and `default/key/1` two objects (otherwise a request for one path would fetch
/// the other's bytes while the policy of its own, differently cased, prefix decides).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            out.push(b as char);
        } else {
            out.push_str(&format!("-{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn resource_secret(path: &ResourcePath) -> Result<String, ApiError> {
    let name = format!("{RESOURCE_PREFIX}{}", escape(&path.to_string()));
    if name.len() > 127 {
        return Err(k(
            ErrorKind::InvalidRequest,
            format!(
                "resource path {path}: too long once stored (expected at most 127 characters of vault name, found {})",
                name.len()
            ),
        ));
    }
    Ok(name)
}

fn policy_secret(prefix: &str) -> String {
    format!("{POLICY_PREFIX}{}", escape(prefix))
}

/// A policy prefix: empty, or one to three path segments.
fn policy_prefix(p: &str) -> Result<String, ApiError> {
    let p = p.trim_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    let segs: Vec<&str> = p.split('/').collect();
    if segs.len() > 3 {
        return Err(k(
            ErrorKind::InvalidRequest,
            "prefix: expected at most repository/type/tag",
        ));
    }
    let mut padded: Vec<&str> = segs.clone();
    while padded.len() < 3 {
        padded.push("x");
    }
    ResourcePath::parse(&padded.join("/")).map_err(kerr)?;
    if policy_secret(p).len() > 127 {
        return Err(k(ErrorKind::InvalidRequest, "prefix: too long"));
    }
    Ok(p.to_string())
}

fn decode_policy(p: &str) -> Result<String, ApiError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(p.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(p))
        .map_err(|_| {
            k(
                ErrorKind::InvalidRequest,
                "policy: expected base64url of the Rego text",
            )
        })?;
    String::from_utf8(bytes).map_err(|_| {
        k(
            ErrorKind::InvalidRequest,
            "policy: expected UTF-8 Rego text",
        )
    })
}

fn version_of(id: &str) -> String {
    id.rsplit('/').next().unwrap_or_default().to_string()
}

fn set_secret(
    st: &AppState,
    name: &str,
    value: String,
    content_type: &str,
) -> Result<enclava_vault::SecretBundle, ApiError> {
    let params = SecretSetParameters {
        value: enclava_vault::b64::SecretString::new(value),
        tags: None,
        content_type: Some(content_type.into()),
        attributes: None,
    };
    match st.vault.set_secret(name, &params) {
        Err(VaultError::Conflict(_)) if st.vault.get_deleted_secret(name).is_ok() => {
            // Deleted earlier (recoverable): bring the history back and add the new version.
            st.vault.recover_deleted_secret(name).map_err(vault_err)?;
            st.vault.set_secret(name, &params).map_err(vault_err)
        }
        other => other.map_err(vault_err),
    }
}

fn missing(e: VaultError, path: &ResourcePath) -> ApiError {
    match e {
        VaultError::SecretNotFound { .. } => k(
            ErrorKind::ResourceNotFound,
            format!("no resource at {path}"),
        ),
        other => vault_err(other),
    }
}

fn read_resource(st: &AppState, name: &str, path: &ResourcePath) -> Result<Vec<u8>, ApiError> {
    let b = st
        .vault
        .get_secret(name, None)
        .map_err(|e| missing(e, path))?;
    let v = b
        .value
        .ok_or_else(|| ApiError::internal("resource secret without a value"))?;
    STANDARD
        .decode(v.as_str())
        .map_err(|_| ApiError::internal("stored resource is not base64"))
}

fn read_policy(st: &AppState, prefix: &str) -> Result<Option<(String, String)>, ApiError> {
    match st.vault.get_secret(&policy_secret(prefix), None) {
        Ok(b) => Ok(b.value.map(|v| (v.as_str().to_string(), version_of(&b.id)))),
        Err(VaultError::SecretNotFound { .. }) => Ok(None),
        Err(e) => Err(vault_err(e)),
    }
}

/// The policy of the longest prefix of `path` that has one: `(text, prefix)`.
fn find_policy(st: &AppState, path: &ResourcePath) -> Result<Option<(String, String)>, ApiError> {
    let candidates = [
        path.to_string(),
        format!("{}/{}", path.repository, path.r#type),
        path.repository.clone(),
        String::new(),
    ];
    for prefix in candidates {
        if let Some((text, _)) = read_policy(st, &prefix)? {
            return Ok(Some((text, prefix)));
        }
    }
    Ok(None)
}

fn list_resources(st: &AppState) -> Result<Reply, ApiError> {
    let mut out = Vec::new();
    let mut cont: Option<String> = None;
    loop {
        let page = st
            .vault
            .list_secrets(Some(25), cont.as_deref())
            .map_err(vault_err)?;
        for item in page.items {
            let name = item.id.rsplit('/').next().unwrap_or_default();
            if let Some(esc) = name.strip_prefix(RESOURCE_PREFIX)
                && let Some(path) = unescape(esc)
            {
                out.push(json!({
                    "path": path,
                    "updated": item.attributes.updated,
                }));
            }
        }
        match page.continuation {
            Some(c) if out.len() < 100_000 => cont = Some(c),
            _ => break,
        }
    }
    Reply::json(&json!({"resources": out}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |m: Method, p: &str| {
            let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            route(&m, &segs)
        };
        assert_eq!(r(Method::POST, "/kbs/v0/auth"), Some(Ok(KbsRoute::Auth)));
        assert_eq!(
            r(Method::GET, "/kbs/v0/resource/default/key/1"),
            Some(Ok(KbsRoute::GetResource {
                path: "default/key/1".into()
            }))
        );
        assert_eq!(
            r(Method::GET, "/kbs/v1/auth"),
            Some(Err(RouteError::NotFound))
        );
        assert!(r(Method::GET, "/keys/x").is_none());
        assert!(matches!(
            r(Method::GET, "/kbs/v0/auth"),
            Some(Err(RouteError::MethodNotAllowed { .. }))
        ));
    }

    #[test]
    fn escaping_round_trips() {
        for p in ["default/key/1", "a.b/c_d/e-f", "x/y/Z9"] {
            let e = escape(p);
            assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            assert_eq!(unescape(&e).as_deref(), Some(p));
        }
        // Paths differing only in case stay distinct vault names (which ignore case).
        for (a, b) in [
            ("default/Key/1", "default/key/1"),
            ("A/b/c", "a/b/c"),
            ("x/y/Z", "x/y/z"),
        ] {
            assert!(!escape(a).eq_ignore_ascii_case(&escape(b)), "{a} vs {b}");
            assert!(
                !policy_secret(a).eq_ignore_ascii_case(&policy_secret(b)),
                "{a} vs {b}"
            );
        }
        assert!(policy_prefix("default").is_ok());
        assert!(policy_prefix("a/b/c/d").is_err());
        assert_eq!(policy_prefix("").unwrap(), "");
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; kbs-session-id=00112233445566778899aabbccddeeff"),
        );
        assert_eq!(
            cookie_session(&h).as_deref(),
            Some("00112233445566778899aabbccddeeff")
        );
    }
}
