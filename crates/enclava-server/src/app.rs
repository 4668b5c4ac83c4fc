//! The request pipeline: one handler for every route.
//!
//! Order for each request: request id -> route -> (data routes) `api-version` -> sealed check ->
//! body (size limit) -> on a blocking thread: authenticate -> authorize (default deny) -> run ->
//! audit (mutating requests wait until their entry is durable) -> metrics and one log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use enclava_audit::{AuditLog, NewEntry, Outcome};
use enclava_identity::{
    Action, AudienceFamily, AuthError, Identity, IdentityError, ManagedIdentityProof, Principal,
    Resource,
};
use enclava_store::Store;
use enclava_vault::Vault;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;

use crate::apiversion::{self, ApiVersion};
use crate::audit_pipe::AuditSink;
use crate::config::ServerConfig;
use crate::data::{self, LinkCtx, Paging, Reply};
use crate::error::ApiError;
use crate::metrics::{ErrorLabels, LatencyLabels, Metrics, RequestLabels};
use crate::route::{self, Route, RouteError};

/// Shared server state.
pub struct AppState {
    pub config: ServerConfig,
    /// `https://host:port` used in ids, links, the token issuer and the 401 challenge.
    pub base_url: String,
    pub vault: Arc<Vault>,
    pub identity: Arc<Identity>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink<NewEntry>,
    pub audit_log: Arc<AuditLog>,
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    pub attestation: Arc<crate::attest::Attestation>,
    /// Attestation token issuers trusted for secure key release.
    pub trusted_issuers: Arc<enclava_vault::keys::release::TrustedIssuers>,
    /// The parsed release signer, reused while its stored rows are unchanged (`release`).
    pub release_signer: crate::release::SignerCache,
    /// Per-client request rates and failed-login delays (see `ratelimit`).
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
    /// KBS per-process state: session sweeping, compiled resource policies (see `kbs`).
    pub kbs: Arc<crate::kbs::KbsState>,
    /// Counts repetitive anonymous rejections instead of logging each (bounded audit growth).
    pub noise: Arc<enclava_audit::noise::NoiseFilter>,
    /// Lease of the background work and readiness of the database (see `cluster`).
    pub cluster: Arc<crate::cluster::Cluster>,
}

/// Per-request facts gathered along the pipeline (for audit, logs and response headers).
#[derive(Debug, Default, Clone)]
struct Ctx {
    principal: Option<String>,
    action: Option<&'static str>,
    api_note: Option<String>,
    api_version: Option<String>,
    attest: crate::attest::AttestCtx,
    release_detail: Option<String>,
    kbs: crate::kbs::KbsCtx,
    /// The peer's address (rate limits and failed-login delays).
    client_ip: Option<std::net::IpAddr>,
    /// Seconds for a `Retry-After` header (429 answers).
    retry_after: Option<u64>,
    /// The client_id a failed login claimed (never recorded as the principal: anyone can type it).
    claimed_client_id: Option<String>,
    /// What the request's data changes committed with their audit entries.
    scope: Option<enclava_audit::scope::ScopeOutcome>,
    /// A `Location` header for the answer (a certificate create's pending operation).
    location: Option<String>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn sane_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?.trim();
    if s.is_empty()
        || s.len() > 128
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return None;
    }
    Some(s.to_string())
}

/// A random UUID (v4 layout).
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // Fall back to time-based uniqueness; ids are not secrets.
        let n = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        b[..8].copy_from_slice(&n.to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
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

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The route -> (action, resource) table used for authorization.
pub fn required_permission(route: &Route) -> Option<(Action, Resource)> {
    use Action as A;
    use Route as R;
    let key = |n: &String| Resource::Key(n.clone());
    let sec = |n: &String| Resource::Secret(n.clone());
    Some(match route {
        R::CreateKey { name } => (A::KeyCreate, key(name)),
        R::ImportKey { name } => (A::KeyImport, key(name)),
        R::GetKey { name, .. } => (A::KeyGet, key(name)),
        R::UpdateKey { name, .. } => (A::KeyUpdate, key(name)),
        R::ListKeys => (A::KeyList, Resource::Vault),
        R::ListKeyVersions { name } => (A::KeyListVersions, key(name)),
        R::DeleteKey { name } => (A::KeyDelete, key(name)),
        R::ListDeletedKeys => (A::KeyListDeleted, Resource::Vault),
        R::GetDeletedKey { name } => (A::KeyGetDeleted, key(name)),
        R::PurgeDeletedKey { name } => (A::KeyPurge, key(name)),
        R::RecoverDeletedKey { name } => (A::KeyRecover, key(name)),
        R::BackupKey { name } => (A::KeyBackup, key(name)),
        R::RestoreKey => (A::KeyRestore, Resource::Vault),
        R::RotateKey { name } => (A::KeyRotate, key(name)),
        R::GetRotationPolicy { name } => (A::KeyRotationPolicyGet, key(name)),
        R::SetRotationPolicy { name } => (A::KeyRotationPolicySet, key(name)),
        R::KeyOperation { name, op, .. } => {
            let a = match op {
                route::KeyOp::Encrypt => A::KeyEncrypt,
                route::KeyOp::Decrypt => A::KeyDecrypt,
                route::KeyOp::WrapKey => A::KeyWrap,
                route::KeyOp::UnwrapKey => A::KeyUnwrap,
                route::KeyOp::Sign => A::KeySign,
                route::KeyOp::Verify => A::KeyVerify,
            };
            (a, key(name))
        }
        R::ReleaseKey { name, .. } => (A::KeyRelease, key(name)),
        R::GetKeyAttestation { name, .. } => (A::KeyGet, key(name)),
        R::GetRandomBytes => (A::Rng, Resource::Vault),
        R::SetSecret { name } => (A::SecretSet, sec(name)),
        R::GetSecret { name, .. } => (A::SecretGet, sec(name)),
        R::UpdateSecret { name, .. } => (A::SecretUpdate, sec(name)),
        R::ListSecrets => (A::SecretList, Resource::Vault),
        R::ListSecretVersions { name } => (A::SecretListVersions, sec(name)),
        R::DeleteSecret { name } => (A::SecretDelete, sec(name)),
        R::ListDeletedSecrets => (A::SecretListDeleted, Resource::Vault),
        R::GetDeletedSecret { name } => (A::SecretGetDeleted, sec(name)),
        R::PurgeDeletedSecret { name } => (A::SecretPurge, sec(name)),
        R::RecoverDeletedSecret { name } => (A::SecretRecover, sec(name)),
        R::BackupSecret { name } => (A::SecretBackup, sec(name)),
        R::RestoreSecret => (A::SecretRestore, Resource::Vault),
        R::ListPrincipals
        | R::CreatePrincipal
        | R::GetPrincipal { .. }
        | R::DeletePrincipal { .. } => (A::PrincipalManage, Resource::Vault),
        R::ListRoleAssignments
        | R::CreateRoleAssignment
        | R::GetRoleAssignment { .. }
        | R::DeleteRoleAssignment { .. } => (A::RoleManage, Resource::Vault),
        R::ReadAudit | R::VerifyAudit => (A::AuditRead, Resource::Vault),
        R::OperatorSeal => (A::OperatorSeal, Resource::Vault),
        R::Cert(c) => return c.permission(),
        _ => return None,
    })
}

/// The 401 challenge: names the resource a token must be obtained for on this route family.
fn challenge(st: &AppState, family: AudienceFamily, message: String) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let resource = match family {
        AudienceFamily::Vault => st.config.resource.as_str(),
        AudienceFamily::Attestation => st
            .identity
            .audiences_of(family)
            .first()
            .map(String::as_str)
            .unwrap_or(enclava_identity::ATTESTATION_AUDIENCE),
    };
    e.www_authenticate = Some(format!(
        "Bearer authorization=\"{}\", resource=\"{}\"",
        st.base_url, resource
    ));
    e
}

fn bearer(headers: &HeaderMap) -> Option<Result<String, ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let s = match v.to_str() {
        Ok(s) => s.trim(),
        Err(_) => return Some(Err(())),
    };
    let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || rest.trim().is_empty() {
        return Some(Err(()));
    }
    Some(Ok(rest.trim().to_string()))
}

/// Authenticate the bearer token of a request to a vault-family route (on a blocking thread).
pub(crate) fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    authenticate_for(st, headers, AudienceFamily::Vault)
}

/// Authenticate the bearer token of a request to a route of `family`: the token's audience must
/// be one of that family's resources (API.md, Identity, "Audiences").
pub(crate) fn authenticate_for(
    st: &AppState,
    headers: &HeaderMap,
    family: AudienceFamily,
) -> Result<Principal, ApiError> {
    match bearer(headers) {
        None => Err(challenge(
            st,
            family,
            "the request has no bearer token: send Authorization: Bearer <access token>"
                .to_string(),
        )),
        Some(Err(())) => Err(challenge(
            st,
            family,
            "the Authorization header is not of the form 'Bearer <access token>'".to_string(),
        )),
        Some(Ok(token)) => match st.identity.authenticate_for(&token, family, now_secs()) {
            Ok(p) => {
                // A change this request makes is committed with an entry naming its principal.
                enclava_audit::scope::set_principal(&p.id);
                Ok(p)
            }
            Err(AuthError::NoSigningKey) => Err(ApiError::sealed()),
            Err(AuthError::Store(_)) => Err(ApiError::internal(
                "identity storage failed while checking the token",
            )),
            // Row integrity: a tampered principal record authenticates nobody.
            Err(e @ AuthError::Integrity(_)) => {
                tracing::error!(error = %e, "refused a principal whose stored record failed its integrity check");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "the caller's stored principal record failed its integrity check",
                )
                .with_inner("IntegrityCheckFailed"))
            }
            Err(e) => Err(challenge(
                st,
                family,
                format!("the bearer token was rejected: {e}"),
            )),
        },
    }
}

pub(crate) fn authorize(
    st: &AppState,
    principal: &Principal,
    action: Action,
    resource: &Resource,
) -> Result<(), ApiError> {
    let d = st
        .identity
        .authorize(principal, action, resource)
        .map_err(|e| ApiError::internal(format!("authorization failed: {}", identity_msg(&e))))?;
    if !d.integrity_failures.is_empty() {
        // Row integrity: those assignments were ignored (they granted nothing).
        tracing::error!(
            principal = %principal.id,
            failures = ?d.integrity_failures,
            "role assignment rows failed their integrity check and were ignored"
        );
    }
    if d.allowed {
        return Ok(());
    }
    tracing::info!(principal = %principal.id, action = %action, reason = %d.reason, "denied");
    let target = match resource {
        Resource::Vault => "the vault".to_string(),
        r => r.object(),
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "the caller is not authorized to perform action '{action}' on {target} (no role assignment grants it)"
        ),
    )
    .with_inner("ForbiddenByRbac"))
}

fn identity_msg(e: &IdentityError) -> String {
    match e {
        // Storage details stay in the logs.
        IdentityError::Store(_) | IdentityError::Corrupt { .. } | IdentityError::Crypto(_) => {
            tracing::error!(error = %e, "identity failure");
            "internal identity failure".to_string()
        }
        IdentityError::Integrity { .. } => {
            tracing::error!(error = %e, "identity row integrity failure");
            e.to_string()
        }
        other => other.to_string(),
    }
}

fn identity_error(e: IdentityError) -> ApiError {
    let msg = identity_msg(&e);
    match e {
        IdentityError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "NotFound", msg),
        IdentityError::AlreadyExists { .. } => ApiError::new(StatusCode::CONFLICT, "Conflict", msg),
        IdentityError::Invalid { .. } | IdentityError::InvalidScope { .. } => {
            ApiError::bad_parameter(msg)
        }
        IdentityError::InvalidClient => {
            ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", msg)
        }
        IdentityError::Disabled { .. } => ApiError::new(StatusCode::FORBIDDEN, "Forbidden", msg),
        IdentityError::NoSigningKey | IdentityError::NoRowKey => ApiError::sealed(),
        IdentityError::Integrity { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "IntegrityCheckFailed",
            msg,
        ),
        _ => ApiError::internal(msg),
    }
}

/// OAuth2-style error answer (token endpoints): `{"error", "error_description"}`.
fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(status, error, description);
    e.oauth = true;
    e
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitBody {
    shares: u8,
    threshold: u8,
}

#[derive(Deserialize)]
struct UnsealBody {
    share: enclava_vault::SecretString,
}

#[derive(Deserialize)]
struct CreatePrincipalBody {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, alias = "displayName", alias = "name")]
    display_name: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    subject: Option<String>,
}

#[derive(Deserialize)]
struct CreateAssignmentBody {
    #[serde(alias = "principal_id", alias = "principalId")]
    principal: String,
    role: String,
    #[serde(default)]
    scope: Option<String>,
}

/// Decode a small JSON body of the native API (errors name the problem, never echo values).
fn native_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_parameter(
            "invalid request body: expected a JSON object, found an empty body",
        ));
    }
    enclava_vault::model::decode(body).map_err(ApiError::from)
}

fn list_params(q: &[(String, String)]) -> Result<(Option<String>, usize), ApiError> {
    let after = get(q, "after").map(str::to_string);
    let limit = match get(q, "limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_parameter(format!(
                    "invalid limit: expected an integer from 1 to 1000, found {:?}",
                    v.chars().take(32).collect::<String>()
                ))
            })?,
    };
    Ok((after, limit))
}

/// Everything that runs on a blocking thread.
fn execute(
    st: &AppState,
    route: &Route,
    method: &Method,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &[u8],
    ctx: &mut Ctx,
) -> Result<Reply, ApiError> {
    use Route as R;
    match route {
        R::Healthz | R::Metrics => Err(ApiError::internal("handled elsewhere")),
        R::Readyz => {
            // The database first: a replica that cannot reach it serves nothing.
            if let Err(reason) = st.cluster.store_ready() {
                ctx.retry_after = Some(crate::cluster::RETRY_AFTER_SECS);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "StorageUnavailable",
                    format!("the database is unreachable: {reason}"),
                ));
            }
            let s = st.vault.seal_status().map_err(ApiError::from)?;
            st.metrics.set_seal_state(s.initialized, s.sealed);
            if !s.initialized {
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "VaultNotInitialized",
                    "the vault is not initialized: run `enclava operator init`",
                ))
            } else if s.sealed {
                Err(ApiError::sealed())
            } else {
                Reply::json(&json!({"status": "ready"}))
            }
        }
        R::OperatorStatus => {
            let s = st.vault.seal_status().map_err(ApiError::from)?;
            st.metrics.set_seal_state(s.initialized, s.sealed);
            Reply::json(&json!({
                "initialized": s.initialized,
                "sealed": s.sealed,
                "progress": s.progress,
                "threshold": s.threshold,
                "version": env!("CARGO_PKG_VERSION"),
            }))
        }
        R::OperatorInit => {
            if st.vault.is_initialized().map_err(ApiError::from)? {
                return Err(ApiError::from(
                    enclava_vault::VaultError::AlreadyInitialized,
                ));
            }
            // First-come initialization would hand the unseal shares to whoever asks first: the
            // caller proves access to the data directory with the one-time init token.
            st.lifecycle.init_token.check(headers)?;
            let b: InitBody = native_json(body)?;
            if b.threshold == 0 || b.shares == 0 || b.threshold > b.shares {
                return Err(ApiError::bad_parameter(format!(
                    "invalid init parameters: expected 1 <= threshold <= shares <= 255, found shares {} threshold {}",
                    b.shares, b.threshold
                )));
            }
            let out = st
                .vault
                .init(b.shares, b.threshold)
                .map_err(ApiError::from)?;
            if let Err(e) = st.lifecycle.init_token.consume(&st.config.data_dir) {
                // The vault is initialized: the token can no longer initialize anything.
                tracing::warn!(error = %e, "removing the used init token file failed");
            }
            let s = st.vault.seal_status().map_err(ApiError::from)?;
            st.metrics.set_seal_state(s.initialized, s.sealed);
            let shares: Vec<&str> = out.shares.iter().map(|s| s.as_str()).collect();
            Reply::json(&json!({"shares": shares, "threshold": out.threshold}))
        }
        R::OperatorUnseal => {
            let b: UnsealBody = native_json(body)?;
            let p = st.vault.unseal(b.share.as_str()).map_err(ApiError::from)?;
            if !p.sealed {
                st.lifecycle.on_unsealed(st).map_err(|e| {
                    ApiError::internal(format!(
                        "unsealed, but loading the identity key failed: {e}"
                    ))
                })?;
                st.attestation.on_unsealed(st).map_err(|e| {
                    ApiError::internal(format!(
                        "unsealed, but starting the attestation service failed: {e}"
                    ))
                })?;
            }
            let mut answer =
                json!({"sealed": p.sealed, "progress": p.progress, "threshold": p.threshold});
            if p.duplicate {
                answer["duplicate"] = json!(true);
                answer["message"] = json!(
                    "this share was already given in this unseal attempt; it did not count again"
                );
            }
            Reply::json(&answer)
        }
        R::OperatorSeal => {
            if st.vault.is_sealed() {
                let s = st.vault.seal_status().map_err(ApiError::from)?;
                return Reply::json(
                    &json!({"sealed": true, "progress": s.progress, "threshold": s.threshold}),
                );
            }
            let p = authenticate(st, headers)?;
            ctx.principal = Some(p.id.clone());
            ctx.action = Some(Action::OperatorSeal.name());
            authorize(st, &p, Action::OperatorSeal, &Resource::Vault)?;
            st.lifecycle.seal(st);
            st.attestation.on_sealed();
            let s = st.vault.seal_status().map_err(ApiError::from)?;
            Reply::json(&json!({"sealed": true, "progress": s.progress, "threshold": s.threshold}))
        }
        R::Token | R::TenantToken { .. } => token_endpoint(st, route, headers, body, ctx),
        R::ManagedIdentityToken => managed_identity(st, headers, query, ctx),
        R::OpenIdConfig { tenant } => {
            let t = tenant.clone().unwrap_or_else(|| "enclava".to_string());
            if !valid_tenant(&t) {
                return Err(ApiError::bad_parameter(
                    "invalid tenant: expected letters, digits, '-', '_' or '.' (1-128)",
                ));
            }
            let b = &st.base_url;
            Reply::json(&json!({
                "issuer": b,
                "token_endpoint": format!("{b}/{t}/oauth2/v2.0/token"),
                "authorization_endpoint": format!("{b}/{t}/oauth2/v2.0/authorize"),
                "jwks_uri": format!("{b}/{t}/discovery/v2.0/keys"),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "tenant_region_scope": null,
            }))
        }
        R::Attest(a) => {
            let r = crate::attest::execute(st, a, headers, query, body, &mut ctx.attest);
            ctx.principal = ctx.attest.principal.clone();
            ctx.action = ctx.attest.action;
            r
        }
        R::Kbs(k) => {
            let r = crate::kbs::execute(st, k, headers, query, body, &mut ctx.kbs);
            ctx.principal = ctx.kbs.principal.clone();
            ctx.action = ctx.kbs.action;
            r
        }
        R::ReleaseKey { name, version } => {
            ctx.action = Some(Action::KeyRelease.name());
            let api = ctx.api_version.clone().unwrap_or_else(|| "7.6".into());
            let (p, d) = (&mut ctx.principal, &mut ctx.release_detail);
            crate::release::handle(st, name, version.as_deref(), headers, body, &api, p, d)
        }
        R::Cert(crate::certs::CertRoute::IssuingCa) => crate::certs::issuing_ca_pem(st),
        R::Jwks => match st.identity.token_jwks() {
            Some(j) => Reply::json(&j),
            None => Err(ApiError::sealed()),
        },
        _ if route.is_admin() || route.is_data() => {
            let Some((action, resource)) = required_permission(route) else {
                return Err(ApiError::internal("route without a permission"));
            };
            ctx.action = Some(action.name());
            let p = authenticate(st, headers)?;
            ctx.principal = Some(p.id.clone());
            authorize(st, &p, action, &resource)?;
            if route.is_admin() {
                admin(st, route, method, query, body)
            } else {
                let paging = Paging::from_query(query)?;
                let link = LinkCtx {
                    base_url: &st.base_url,
                    api_version: ctx.api_version.as_deref().unwrap_or("7.6"),
                };
                if let R::Cert(c) = route {
                    let r = crate::certs::handle(st, c, &paging, body, &link);
                    if let (crate::certs::CertRoute::Create { name }, Ok(_)) = (c, &r) {
                        ctx.location = Some(crate::certs::pending_location(&link, name));
                    }
                    return r;
                }
                data::handle(&st.vault, route, &paging, body, &link)
            }
        }
        _ => Err(ApiError::internal("unhandled route")),
    }
}

fn token_endpoint(
    st: &AppState,
    route: &Route,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &mut Ctx,
) -> Result<Reply, ApiError> {
    if let Route::TenantToken { tenant } = route
        && !valid_tenant(tenant)
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            "tenant must be 1-128 letters, digits, '-', '_' or '.'",
        ));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "expected Content-Type application/x-www-form-urlencoded, found {:?}",
                ct.chars().take(64).collect::<String>()
            ),
        ));
    }
    let form = form_pairs(body);
    match get(&form, "grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!(
                    "grant_type {:?} is not supported: expected client_credentials",
                    other.chars().take(64).collect::<String>()
                ),
            ));
        }
        None => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing grant_type (expected client_credentials)",
            ));
        }
    }
    let (Some(id), Some(secret)) = (get(&form, "client_id"), get(&form, "client_secret")) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id and client_secret are required (client_secret_post)",
        ));
    };
    let scope = get(&form, "scope")
        .or_else(|| get(&form, "resource"))
        .unwrap_or(st.config.resource.as_str())
        .to_string();
    // Scope lists may carry OIDC scopes next to the resource scope; keep only the resource.
    let scope: String = {
        let parts: Vec<&str> = scope
            .split_whitespace()
            .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email"))
            .collect();
        parts.join(" ")
    };
    // Until the secret checks out, the client_id is only a claim: a failed login is recorded as
    // anonymous with the claimed id in the detail, never attributed to that principal.
    ctx.claimed_client_id = Some(id.chars().take(64).collect());
    login_allowed(st, ctx, id)?;
    match st
        .identity
        .client_credentials(id, secret, &scope, now_secs())
    {
        Ok(t) => {
            login_result(st, ctx, id, true);
            ctx.principal = ctx.claimed_client_id.take();
            Reply::json(&t)
        }
        Err(IdentityError::InvalidClient) => {
            login_result(st, ctx, id, false);
            Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed: unknown client or wrong secret",
            ))
        }
        Err(IdentityError::InvalidScope { found, expected }) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("unsupported scope {found:?}: expected {expected}"),
        )),
        Err(IdentityError::Disabled { .. }) => Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client is disabled",
        )),
        Err(IdentityError::NoSigningKey) => Err(oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the vault is sealed: no token can be issued until it is unsealed",
        )),
        Err(e) => Err(oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            identity_msg(&e),
        )),
    }
}

/// Refuse a credential check while the caller's failed-login delay runs (429, `Retry-After`).
fn login_allowed(st: &AppState, ctx: &mut Ctx, client_id: &str) -> Result<(), ApiError> {
    let Some(ip) = ctx.client_ip else {
        return Ok(());
    };
    match st
        .rate_limits
        .login_allowed(ip, client_id, std::time::Instant::now())
    {
        Ok(()) => Ok(()),
        Err(wait) => {
            st.metrics.count_rate_limited("login");
            ctx.retry_after = Some(wait.secs());
            Err(oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                format!(
                    "too many failed logins for this client from this address: retry after {} s",
                    wait.secs()
                ),
            ))
        }
    }
}

fn login_result(st: &AppState, ctx: &Ctx, client_id: &str, ok: bool) {
    if let Some(ip) = ctx.client_ip {
        if ok {
            st.rate_limits.login_succeeded(ip, client_id);
        } else {
            st.rate_limits
                .login_failed(ip, client_id, std::time::Instant::now());
        }
    }
}

/// Which request-rate bucket a route draws from.
fn rate_class(route: &Route) -> Option<crate::ratelimit::Class> {
    use crate::attest::AttestRoute as AR;
    use crate::ratelimit::Class;
    match route {
        Route::Token | Route::TenantToken { .. } | Route::ManagedIdentityToken => {
            Some(Class::Token)
        }
        Route::Attest(AR::Challenge) => Some(Class::Challenge),
        Route::Attest(AR::Maa(_) | AR::Native) => Some(Class::Attest),
        // The KBS handshake: `/auth` is the protocol's challenge, `/attest` its attestation.
        Route::Kbs(crate::kbs::KbsRoute::Auth) => Some(Class::Challenge),
        Route::Kbs(crate::kbs::KbsRoute::Attest) => Some(Class::Attest),
        _ => None,
    }
}

fn managed_identity(
    st: &AppState,
    headers: &HeaderMap,
    query: &[(String, String)],
    ctx: &mut Ctx,
) -> Result<Reply, ApiError> {
    let secret = headers
        .get("x-identity-header")
        .or_else(|| headers.get("secret"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let Some(secret) = secret else {
        // What IMDS answers a request without its Metadata header; azure-identity probes with it.
        let metadata = headers
            .get("metadata")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            if metadata {
                "no identity secret: this endpoint authenticates a workload by the identity secret in the X-IDENTITY-HEADER header (IDENTITY_ENDPOINT / IDENTITY_HEADER)"
            } else {
                "Required metadata header not specified"
            },
        ));
    };
    let Some(resource) = get(query, "resource").or_else(|| get(query, "scope")) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing the resource query parameter (e.g. resource=https://vault.azure.net)",
        ));
    };
    let client_id = get(query, "client_id")
        .or_else(|| get(query, "object_id"))
        .or_else(|| get(query, "principal_id"));
    // Failed identity secrets are throttled like client secrets, under their own key.
    let login_key = format!("managed-identity:{}", client_id.unwrap_or(""));
    login_allowed(st, ctx, &login_key)?;
    let proof = ManagedIdentityProof { secret, client_id };
    match st
        .identity
        .managed_identity_token(resource, proof, now_secs())
    {
        Ok(t) => {
            login_result(st, ctx, &login_key, true);
            ctx.principal = Some(t.client_id.clone());
            Reply::json(&t)
        }
        Err(IdentityError::InvalidClient) => {
            login_result(st, ctx, &login_key, false);
            Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the identity secret does not belong to a managed identity (or client_id names another identity)",
            ))
        }
        Err(IdentityError::InvalidScope { found, expected }) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            format!("unsupported resource {found:?}: expected {expected}"),
        )),
        Err(IdentityError::Disabled { .. }) => Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the managed identity is disabled",
        )),
        Err(IdentityError::NoSigningKey) => Err(oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the vault is sealed: no token can be issued until it is unsealed",
        )),
        Err(e) => Err(oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            identity_msg(&e),
        )),
    }
}

fn admin(
    st: &AppState,
    route: &Route,
    _method: &Method,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Reply, ApiError> {
    use Route as R;
    let id = &st.identity;
    match route {
        R::ListPrincipals => {
            let (after, limit) = list_params(query)?;
            let v = id
                .list_principals(after.as_deref(), limit)
                .map_err(identity_error)?;
            Reply::json(&json!({ "value": v }))
        }
        R::CreatePrincipal => {
            let b: CreatePrincipalBody = native_json(body)?;
            let name = b.display_name.unwrap_or_default();
            let kind = b.kind.unwrap_or_else(|| "service_principal".into());
            let now = now_secs();
            let out = match kind.as_str() {
                "service_principal" | "ServicePrincipal" | "sp" => {
                    let (p, secret) = id
                        .create_service_principal(&name, now)
                        .map_err(identity_error)?;
                    json!({"principal": p, "client_id": p.id, "client_secret": secret.expose()})
                }
                "managed_identity" | "ManagedIdentity" | "mi" => {
                    let (p, secret) = id
                        .create_managed_identity(&name, now)
                        .map_err(identity_error)?;
                    json!({"principal": p, "client_id": p.id, "identity_secret": secret.expose()})
                }
                "external" | "External" => {
                    let (Some(iss), Some(sub)) = (b.issuer.as_deref(), b.subject.as_deref()) else {
                        return Err(ApiError::bad_parameter(
                            "an external identity needs issuer and subject",
                        ));
                    };
                    let p = id
                        .create_external_identity(iss, sub, &name, now)
                        .map_err(identity_error)?;
                    json!({"principal": p})
                }
                other => {
                    return Err(ApiError::bad_parameter(format!(
                        "invalid kind: expected service_principal, managed_identity or external, found {:?}",
                        other.chars().take(64).collect::<String>()
                    )));
                }
            };
            Ok(Reply::json(&out)?.with_status(StatusCode::CREATED))
        }
        R::GetPrincipal { id: pid } => match id.get_principal(pid).map_err(identity_error)? {
            Some(p) => Reply::json(&p),
            None => Err(ApiError::not_found(format!(
                "principal {:?} not found",
                pid.chars().take(64).collect::<String>()
            ))),
        },
        R::DeletePrincipal { id: pid } => {
            id.delete_principal(pid).map_err(identity_error)?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        R::ListRoleAssignments => {
            let (after, limit) = list_params(query)?;
            let v = id
                .list_assignments(get(query, "principal"), after.as_deref(), limit)
                .map_err(identity_error)?;
            Reply::json(&json!({ "value": v }))
        }
        R::CreateRoleAssignment => {
            let b: CreateAssignmentBody = native_json(body)?;
            let role: enclava_identity::Role =
                b.role.parse().map_err(|e: enclava_identity::ParseError| {
                    ApiError::bad_parameter(e.to_string())
                })?;
            let scope: enclava_identity::Scope =
                b.scope.as_deref().unwrap_or("/").parse().map_err(
                    |e: enclava_identity::ParseError| ApiError::bad_parameter(e.to_string()),
                )?;
            let a = id
                .assign_role(&b.principal, role, scope, now_secs())
                .map_err(identity_error)?;
            Ok(Reply::json(&a)?.with_status(StatusCode::CREATED))
        }
        R::GetRoleAssignment { id: aid } => match id.get_assignment(aid).map_err(identity_error)? {
            Some(a) => Reply::json(&a),
            None => Err(ApiError::not_found(format!(
                "role assignment {:?} not found",
                aid.chars().take(64).collect::<String>()
            ))),
        },
        R::DeleteRoleAssignment { id: aid } => {
            id.remove_assignment(aid).map_err(identity_error)?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        R::ReadAudit => crate::lifecycle::read_audit(st, query),
        R::VerifyAudit => crate::lifecycle::verify_audit(st),
        _ => Err(ApiError::internal("not an admin route")),
    }
}

/// How long a client may take to send its request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The most of an oversized body that is read and discarded so the client can see its 413.
const REJECTED_BODY_DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// The largest unread body [`discard_small_body`] reads to keep a connection reusable.
const DISCARD_BODY_LIMIT: u64 = 64 * 1024;

/// How long [`discard_small_body`] waits for the rest of an unread body.
const DISCARD_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Read and drop a request body the answer did not need; whether the connection stays reusable
/// (the whole body was read). Bounded: at most [`DISCARD_BODY_LIMIT`] bytes, announced by
/// `Content-Length`, within [`DISCARD_BODY_TIMEOUT`]; anything else (chunked, larger, slower) is
/// left unread and the connection closes after the answer.
async fn discard_small_body(headers: &HeaderMap, body: Body) -> bool {
    let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        // No length: a bodiless request (GET, DELETE) is reusable; a chunked one is not read.
        return !headers.contains_key(header::TRANSFER_ENCODING);
    };
    if len == 0 {
        return true;
    }
    if len > DISCARD_BODY_LIMIT {
        return false;
    }
    let limit = usize::try_from(DISCARD_BODY_LIMIT).unwrap_or(usize::MAX);
    let collect = http_body_util::Limited::new(body, limit).collect();
    matches!(
        tokio::time::timeout(DISCARD_BODY_TIMEOUT, collect).await,
        Ok(Ok(_))
    )
}

/// Read the body within the limit.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("the request body exceeds the limit of {max} bytes"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        // Read (and discard) a bounded amount of what the client is sending before answering:
        // a client that is still writing its body when the connection closes never sees the 413.
        if len <= REJECTED_BODY_DRAIN_LIMIT {
            let drain = async {
                let mut body = body;
                let mut seen = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if seen > REJECTED_BODY_DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
        }
        return Err(too_large());
    }
    let collect = http_body_util::Limited::new(body, max).collect();
    let collected = match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Ok(r) => r,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                format!(
                    "the request body did not arrive within {} seconds",
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(too_large())
            } else {
                Err(ApiError::bad_parameter(
                    "the request body could not be read completely",
                ))
            }
        }
    }
}

fn path_for_log(p: &str) -> String {
    p.chars().take(200).collect()
}

/// The single axum handler.
pub async fn dispatch(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    // Taken by whatever reads the body; what is still here after the answer is ready was never
    // read (unknown route, wrong method, sealed, bad api-version, rate limited, ...).
    let mut body = Some(body);
    let headers = parts.headers;
    let method = parts.method;
    let path = parts.uri.path().to_string();
    let client_request_id = headers.get(CLIENT_REQUEST_ID).and_then(sane_id);
    let request_id = client_request_id
        .clone()
        .or_else(|| headers.get(X_REQUEST_ID).and_then(sane_id))
        .unwrap_or_else(new_request_id);
    let query = data::query_pairs(parts.uri.query());
    let mut ctx = Ctx {
        client_ip: Some(peer.ip()),
        ..Ctx::default()
    };

    let routed = crate::certs::key_vault_or_maa(route::route(&method, &path), &query);
    let (template, operation) = match &routed {
        Ok(r) => (r.template(), r.operation()),
        Err(_) => ("unmatched", "Unmatched"),
    };
    if let Ok(r) = &routed {
        ctx.action = required_permission(r).map(|(a, _)| a.name());
    }
    // The entry a data change made by this request commits with (see enclava_audit::scope).
    let scope_entry = routed.as_ref().ok().map(|r| {
        let (object, version) = object_of(r);
        NewEntry {
            time: chrono::Utc::now(),
            principal: "anonymous".to_string(),
            action: ctx
                .action
                .map(str::to_string)
                .unwrap_or_else(|| operation.to_string()),
            object,
            version,
            result: Outcome::Allowed,
            status: expected_success_status(r),
            request_id: request_id.clone(),
            client_addr: peer.ip().to_string(),
            detail: Some(format!("{method} {template} {operation}")),
        }
    });

    let outcome: Result<Reply, ApiError> = match &routed {
        Err(RouteError::NotFound) => Err(ApiError::not_found(format!(
            "no route for {method} {}",
            path_for_log(&path)
        ))),
        Err(RouteError::MethodNotAllowed { allowed }) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("method {method} is not allowed here: expected {allowed}"),
        )),
        Ok(Route::Healthz) => Reply::json(&json!({"status": "ok"})),
        // Built from constants and the public base URL: bounded, stateless, nothing secret.
        Ok(Route::OpenApi) => Reply::json(&crate::openapi::document(&st.base_url)),
        Ok(Route::Metrics) => Ok(Reply {
            status: StatusCode::OK,
            body: Some(st.metrics.encode().into_bytes()),
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }),
        Ok(route) => {
            let limited = rate_class(route).and_then(|class| {
                st.rate_limits
                    .check_request(peer.ip(), class, Instant::now())
                    .err()
                    .map(|wait| (class, wait))
            });
            match limited {
                Some((class, wait)) => {
                    st.metrics.count_rate_limited(class.name());
                    ctx.retry_after = Some(wait.secs());
                    let mut e = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        format!(
                            "too many {} requests from this address: retry after {} s",
                            class.name(),
                            wait.secs()
                        ),
                    );
                    e.oauth = class == crate::ratelimit::Class::Token;
                    Err(e)
                }
                None => {
                    let entry = scope_entry.unwrap_or_else(|| system_scope_entry("request", None));
                    process(
                        &st, route, &method, &headers, query, &mut body, entry, &mut ctx,
                    )
                    .await
                }
            }
        }
    };

    let scope_out = ctx.scope.take().unwrap_or_default();
    if !scope_out.committed.is_empty() {
        // Entries committed with a change bypass the group-commit pipe; count them all the same.
        st.metrics
            .audit_entries
            .inc_by(scope_out.committed.len() as u64);
    }
    // A change that failed in storage was not made (its audit entry went with it): say so, as a
    // storage condition, rather than as a generic internal error.
    let mut outcome = match (outcome, scope_out.storage_failure) {
        // The database was out of reach: whatever the handler made of it, the client may retry.
        (Err(e), Some(f @ enclava_audit::scope::StorageFailure::Unavailable))
            if e.status.is_server_error() =>
        {
            ctx.retry_after = Some(crate::cluster::RETRY_AFTER_SECS);
            Err(storage_error(f))
        }
        (Err(e), Some(f)) if e.status == StatusCode::INTERNAL_SERVER_ERROR => Err(storage_error(f)),
        (o, _) => o,
    };
    let status = match &outcome {
        Ok(r) => r.status,
        Err(e) => e.status,
    };
    let error_code = outcome.as_ref().err().map(|e| e.code.clone());

    // Audit every request except the health, readiness and metrics probes.
    let audited = match &routed {
        // The OpenAPI document is static and public, like the probes: hammering it must not
        // grow the audit log.
        // So is the issuing CA's certificate (public, in memory).
        Ok(r) => !matches!(
            r,
            Route::Healthz
                | Route::Metrics
                | Route::Readyz
                | Route::OpenApi
                | Route::Cert(crate::certs::CertRoute::IssuingCa)
        ),
        Err(_) => true,
    };
    if audited {
        let (object, mut version) = match &routed {
            Ok(r) => object_of(r),
            Err(_) => (String::new(), None),
        };
        // Record the version an operation created or touched (e.g. create, rotate, set).
        if version.is_none()
            && !object.is_empty()
            && let Ok(r) = &outcome
        {
            version = version_from_reply(r);
        }
        let result = if status.is_success() {
            Outcome::Allowed
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            Outcome::Denied
        } else {
            Outcome::Error
        };
        let base_detail = format!("{method} {template} {operation}");
        let mut detail = base_detail.clone();
        if let Some(code) = &error_code {
            detail.push_str(" error=");
            detail.push_str(code);
        }
        if let Some(d) = &ctx.attest.audit_detail {
            detail.push(' ');
            detail.push_str(d);
        }
        if let Some(d) = &ctx.release_detail {
            detail.push(' ');
            detail.push_str(d);
        }
        if let Some(d) = &ctx.kbs.detail {
            detail.push(' ');
            detail.push_str(&d.chars().take(2000).collect::<String>());
        }
        if let Some(c) = &ctx.claimed_client_id {
            detail.push_str(&format!(" claimed_client_id={c:?}"));
        }
        let principal = ctx
            .principal
            .clone()
            .unwrap_or_else(|| "anonymous".to_string());
        // The request's changes already committed an entry saying exactly this: nothing to add.
        let already_recorded = !scope_out.committed.is_empty()
            && scope_out.status == status.as_u16()
            && scope_out.principal == principal
            && detail == base_detail;
        if let Some(seq) = scope_out.committed.last()
            && !already_recorded
        {
            detail.push_str(&format!(
                " (final answer; the change was recorded at seq {seq})"
            ));
        }
        let entry = NewEntry {
            time: chrono::Utc::now(),
            principal,
            action: ctx
                .action
                .map(str::to_string)
                .unwrap_or_else(|| operation.to_string()),
            object,
            version,
            result,
            status: status.as_u16(),
            request_id: request_id.clone(),
            client_addr: peer.ip().to_string(),
            detail: Some(detail),
        };
        if already_recorded {
            // Durable already: it committed with the change.
        } else if !scope_out.committed.is_empty() {
            // A follow-up (e.g. an error after the commit): the change itself is already in the
            // log, so a failure here does not change the answer.
            if let Err(e) = st.audit.append_durable(entry).await {
                tracing::error!(request_id = %request_id, error = %e, "audit follow-up append failed");
            }
        } else if is_noise(&routed, &ctx, &headers, status) {
            let key = enclava_audit::noise::NoiseKey {
                client: peer.ip().to_string(),
                route: template.to_string(),
                status: status.as_u16(),
            };
            if st.noise.observe(key) == enclava_audit::noise::Verdict::Record
                && let Err(e) = st.audit.append(entry).await
            {
                tracing::error!(error = %e, "audit queue failed");
            }
        } else if !audit_must_be_durable(&method, &routed) {
            if let Err(e) = st.audit.append(entry).await {
                tracing::error!(error = %e, "audit queue failed");
            }
        } else if let Err(e) = st.audit.append_durable(entry).await {
            // Nothing was changed (every change commits with its own entry) and nothing may be
            // handed out without a durable record: refuse the request.
            tracing::error!(request_id = %request_id, error = %e, "audit append failed");
            outcome = Err(audit_unavailable(&e));
            if outcome
                .as_ref()
                .is_err_and(|e| e.status == StatusCode::SERVICE_UNAVAILABLE)
            {
                ctx.retry_after = Some(crate::cluster::RETRY_AFTER_SECS);
            }
        }
    }

    let status = match &outcome {
        Ok(r) => r.status,
        Err(e) => e.status,
    };
    let elapsed = started.elapsed();
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            route: template.to_string(),
            operation: operation.to_string(),
            method: method.to_string(),
            status: status.as_u16(),
        })
        .inc();
    st.metrics
        .latency
        .get_or_create(&LatencyLabels {
            route: template.to_string(),
            operation: operation.to_string(),
        })
        .observe(elapsed.as_secs_f64());
    if let Err(e) = &outcome {
        st.metrics
            .errors
            .get_or_create(&ErrorLabels {
                route: template.to_string(),
                code: e.code.clone(),
            })
            .inc();
    }
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = template,
        operation,
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        principal = ctx.principal.as_deref().unwrap_or("-"),
        client = %peer.ip(),
        error = outcome.as_ref().err().map(|e| e.code.as_str()).unwrap_or("-"),
        "request"
    );

    let mut resp = match outcome {
        Ok(r) => {
            let mut resp = match r.body {
                Some(b) => (r.status, b).into_response(),
                None => r.status.into_response(),
            };
            if resp.status() != StatusCode::NO_CONTENT {
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(r.content_type),
                );
            }
            resp
        }
        Err(e) => match &routed {
            Ok(Route::Attest(_)) => crate::attest::error_response(e, ctx.attest.error_extra.take()),
            Ok(Route::Kbs(_)) => crate::kbs::error_response(e),
            _ => e.into_response(),
        },
    };
    // An answer given without reading the request body (a 404 or 405 to a POST, a sealed
    // vault, ...) must not leave the body's bytes on a keep-alive connection: the server would
    // close it, and a client that reuses it for its next request (any pooling HTTP client) sees
    // the connection drop. A small body is read and discarded; otherwise the answer says
    // `Connection: close`, so the client knows not to reuse the connection.
    if let Some(unread) = body.take()
        && !discard_small_body(&headers, unread).await
    {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(REQUEST_ID, v);
    }
    if let Some(c) = client_request_id
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        h.insert(CLIENT_REQUEST_ID, v);
    }
    if let Some(note) = ctx.api_note
        && let Ok(v) = HeaderValue::from_str(&note)
    {
        h.insert(HeaderName::from_static(apiversion::NOTE_HEADER), v);
    }
    if let Some(secs) = ctx.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(l) = ctx.location.take()
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        h.insert(header::LOCATION, v);
    }
    if let Some(c) = ctx.kbs.set_cookie.take()
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        h.insert(header::SET_COOKIE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !st.config.insecure_http {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The version segment of `key.kid` or `id` in a JSON reply (`.../{name}/{version}`).
fn version_from_reply(r: &Reply) -> Option<String> {
    let body = r.body.as_deref()?;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    // A certificate create answers with its operation: the version is in `target`.
    let id = v
        .pointer("/key/kid")
        .or_else(|| v.get("id"))
        .and_then(|x| x.as_str())
        .filter(|id| !id.ends_with("/pending"))
        .or_else(|| v.get("target").and_then(|x| x.as_str()))?;
    let mut parts = id.rsplit('/');
    let last = parts.next()?;
    let kind = parts.nth(1)?;
    // A certificate reply's id may end in `pending` or `policy`; only a version id counts.
    let cert_version =
        kind == "certificates" && last.len() == 32 && last.bytes().all(|b| b.is_ascii_hexdigit());
    if (matches!(kind, "keys" | "secrets") || cert_version) && !last.is_empty() {
        Some(last.chars().take(80).collect())
    } else {
        None
    }
}

fn object_of(route: &Route) -> (String, Option<String>) {
    if let Route::Kbs(k) = route {
        return (k.object().unwrap_or_default(), None);
    }
    if let Route::Cert(c) = route {
        let version = c.object().1.map(|v| v.chars().take(80).collect());
        return (c.audit_object().chars().take(300).collect(), version);
    }
    let (name, version) = route.object();
    let obj = match (route, name) {
        (_, None) => String::new(),
        (r, Some(n))
            if r.template().starts_with("/keys") || r.template().starts_with("/deletedkeys") =>
        {
            format!("keys/{n}")
        }
        (r, Some(n))
            if r.template().starts_with("/secrets")
                || r.template().starts_with("/deletedsecrets") =>
        {
            format!("secrets/{n}")
        }
        (r, Some(n)) if r.template().starts_with("/enclava/principals") => {
            format!("principals/{n}")
        }
        (r, Some(n)) if r.template().starts_with("/enclava/role-assignments") => {
            format!("role-assignments/{n}")
        }
        (_, Some(n)) => n.to_string(),
    };
    // Names are bounded in the audit log even when the request carried an invalid, huge one.
    (
        obj.chars().take(300).collect(),
        version.map(|v| v.chars().take(80).collect()),
    )
}

#[allow(clippy::too_many_arguments)]
async fn process(
    st: &Arc<AppState>,
    route: &Route,
    method: &Method,
    headers: &HeaderMap,
    query: Vec<(String, String)>,
    body: &mut Option<Body>,
    scope_entry: NewEntry,
    ctx: &mut Ctx,
) -> Result<Reply, ApiError> {
    if route.is_data() {
        match apiversion::check(get(&query, "api-version")) {
            Ok(ApiVersion::Known(v)) => ctx.api_version = Some(v),
            Ok(ApiVersion::Unknown { version, note }) => {
                ctx.api_version = Some(version);
                ctx.api_note = Some(note);
            }
            Err(e) => return Err(ApiError::bad_parameter(e.message()).with_code(e.code())),
        }
    }
    if (route.is_data() || route.is_admin()) && st.vault.is_sealed() {
        return Err(ApiError::sealed());
    }
    let body = read_body(
        headers,
        body.take().unwrap_or_default(),
        st.config.max_body_bytes,
    )
    .await?;
    // Attestation is a fraction of a millisecond of CPU work whose hot path does no I/O (policies,
    // reference sets, collateral and verified chains are cached in memory): it runs on the worker.
    // Handing it to the blocking pool and back cost about 15% of its throughput. Requests that
    // may carry a draft policy (caller-written Rego) or a challenge nonce (redeeming it is a
    // database write) go to the blocking pool (see `runs_on_worker`).
    if let Route::Attest(a) = route
        && crate::attest::runs_on_worker(a, &body)
    {
        let scope = enclava_audit::scope::enter(scope_entry);
        let r = execute(st, route, method, headers, &query, &body, ctx);
        ctx.scope = Some(scope.finish());
        return r;
    }
    let st2 = st.clone();
    let route2 = route.clone();
    let method2 = method.clone();
    let headers2 = headers.clone();
    let mut ctx2 = ctx.clone();
    let joined = tokio::task::spawn_blocking(move || {
        // Every store change made while handling the request commits with its audit entry.
        let scope = enclava_audit::scope::enter(scope_entry);
        let r = execute(&st2, &route2, &method2, &headers2, &query, &body, &mut ctx2);
        ctx2.scope = Some(scope.finish());
        (r, ctx2)
    })
    .await;
    match joined {
        Ok((r, c)) => {
            *ctx = c;
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            Err(ApiError::internal(
                "the request handler failed unexpectedly",
            ))
        }
    }
}

impl ApiError {
    /// Replace the error code.
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = code.to_string();
        self
    }
}

/// Whether a request's response waits until its audit entry is on disk. Requests that change
/// state or hand out key material wait, so no acknowledged change and no handed-out key or
/// secret is ever missing from the log: writes (their change commits with its entry in one
/// transaction; a request that ends without a change still records its answer durably), secret
/// values (`GET /secrets/{name}`), decrypt and unwrapKey (they return plaintext key material) and
/// release (POST). Other reads and pure computations (metadata GETs, encrypt, wrap, sign,
/// verify, attestation, challenges, random bytes) are queued and group-committed within
/// milliseconds without holding the response: a crash in that window can lose their entries,
/// never a change or a disclosure.
fn audit_must_be_durable(method: &Method, routed: &Result<Route, RouteError>) -> bool {
    use crate::attest::AttestRoute as AR;
    match routed {
        Ok(Route::GetSecret { .. }) => return true,
        // A resource handed out (or changed) is never without a durable record.
        Ok(Route::Kbs(k)) => return k.is_sensitive(),
        Ok(Route::KeyOperation {
            op: route::KeyOp::Decrypt | route::KeyOp::UnwrapKey,
            ..
        }) => return true,
        _ => {}
    }
    if *method == Method::GET || *method == Method::HEAD {
        return false;
    }
    !matches!(
        routed,
        Ok(Route::KeyOperation { .. }
            | Route::GetRandomBytes
            | Route::Attest(
                AR::Maa(_) | AR::Native | AR::Challenge | AR::Certs | AR::OpenIdConfig
            ))
    )
}

/// Whether an answer is repetitive anonymous noise, counted by the [`AppState::noise`] filter
/// instead of logged one by one: nobody was authenticated and the request was turned away
/// before anything ran (unknown route, wrong method, no token, too large, throttled, sealed,
/// bad parameters). Never noise: a rejected bearer token (a forged or stolen-token attempt),
/// logins and managed-identity tokens (failed logins are always kept), attestation, operator
/// routes, and anything authenticated.
fn is_noise(
    routed: &Result<Route, RouteError>,
    ctx: &Ctx,
    headers: &HeaderMap,
    status: StatusCode,
) -> bool {
    if ctx.principal.is_some() || ctx.claimed_client_id.is_some() || status.is_success() {
        return false;
    }
    match routed {
        Err(_) => true,
        Ok(r) if r.is_data() || r.is_admin() => match status.as_u16() {
            401 => !headers.contains_key(header::AUTHORIZATION),
            400 | 404 | 405 | 408 | 411 | 413 | 414 | 415 | 429 | 503 => true,
            _ => false,
        },
        Ok(_) => false,
    }
}

/// The status the entry committed with a change records (the usual success answer of the
/// route). When the final answer differs, a follow-up entry records it.
fn expected_success_status(route: &Route) -> u16 {
    match route {
        Route::CreatePrincipal | Route::CreateRoleAssignment => 201,
        Route::DeletePrincipal { .. } | Route::DeleteRoleAssignment { .. } => 204,
        Route::Cert(c) => c.success_status(),
        _ => 200,
    }
}

/// An entry for the server's own work (maintenance, start-up), also used as the scope entry of
/// its changes.
pub fn system_scope_entry(action: &str, detail: Option<String>) -> NewEntry {
    NewEntry {
        time: chrono::Utc::now(),
        principal: "system".into(),
        action: action.into(),
        object: String::new(),
        version: None,
        result: Outcome::Allowed,
        status: 200,
        request_id: new_request_id(),
        client_addr: "internal".into(),
        detail,
    }
}

/// The answer when a change failed in storage (nothing of it, nor its entry, was written).
fn storage_error(f: enclava_audit::scope::StorageFailure) -> ApiError {
    match f {
        enclava_audit::scope::StorageFailure::Full => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "InsufficientStorage",
            "the server's storage is full: the change was not made (and nothing of it was recorded); retry once space is freed",
        ),
        enclava_audit::scope::StorageFailure::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "StorageUnavailable",
            "the database is unreachable: the request was not carried out (nothing was changed); retry shortly",
        ),
        enclava_audit::scope::StorageFailure::Backend => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "StorageUnavailable",
            "the server's storage failed: the change was not made (and nothing of it was recorded); check the server log",
        ),
    }
}

/// The answer when a request's audit entry could not be made durable: it is refused.
fn audit_unavailable(err: &str) -> ApiError {
    if err.starts_with("storage is full") {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "InsufficientStorage",
            "the server's storage is full, so the audit entry of this request could not be written: the request was refused, nothing was changed or handed out",
        )
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "AuditUnavailable",
            "the audit entry of this request could not be written: the request was refused, nothing was changed or handed out; check the server log",
        )
    }
}
