//! Pure request routing: `(method, path)` to a [`Route`], with the route template and operation
//! name used for metrics, logs and audit. Handles the Key Vault path quirks: `GET /keys/{name}/`
//! (empty version = latest), `POST /keys/{name}//release`, a doubled leading slash.

use axum::http::Method;

/// A crypto operation on a key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    Encrypt,
    Decrypt,
    WrapKey,
    UnwrapKey,
    Sign,
    Verify,
}

impl KeyOp {
    fn parse(s: &str) -> Option<KeyOp> {
        Some(match s {
            "encrypt" => KeyOp::Encrypt,
            "decrypt" => KeyOp::Decrypt,
            "wrapkey" => KeyOp::WrapKey,
            "unwrapkey" => KeyOp::UnwrapKey,
            "sign" => KeyOp::Sign,
            "verify" => KeyOp::Verify,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyOp::Encrypt => "encrypt",
            KeyOp::Decrypt => "decrypt",
            KeyOp::WrapKey => "wrapkey",
            KeyOp::UnwrapKey => "unwrapkey",
            KeyOp::Sign => "sign",
            KeyOp::Verify => "verify",
        }
    }
}

/// Every route the server answers. Names and versions are raw path segments (validated later);
/// `version: None` means "latest" (absent or empty segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    /// This server's OpenAPI document ([`crate::openapi`]).
    OpenApi,
    // identity
    Token,
    TenantToken {
        tenant: String,
    },
    ManagedIdentityToken,
    /// OpenID discovery document (MSAL fetches it before the token request).
    OpenIdConfig {
        tenant: Option<String>,
    },
    /// The public keys of our token signer.
    Jwks,
    // operator
    OperatorInit,
    OperatorUnseal,
    OperatorSeal,
    OperatorStatus,
    // native administration
    ListPrincipals,
    CreatePrincipal,
    GetPrincipal {
        id: String,
    },
    DeletePrincipal {
        id: String,
    },
    ListRoleAssignments,
    CreateRoleAssignment,
    GetRoleAssignment {
        id: String,
    },
    DeleteRoleAssignment {
        id: String,
    },
    ReadAudit,
    VerifyAudit,
    // keys
    CreateKey {
        name: String,
    },
    ImportKey {
        name: String,
    },
    GetKey {
        name: String,
        version: Option<String>,
    },
    UpdateKey {
        name: String,
        version: Option<String>,
    },
    ListKeys,
    ListKeyVersions {
        name: String,
    },
    DeleteKey {
        name: String,
    },
    ListDeletedKeys,
    GetDeletedKey {
        name: String,
    },
    PurgeDeletedKey {
        name: String,
    },
    RecoverDeletedKey {
        name: String,
    },
    BackupKey {
        name: String,
    },
    RestoreKey,
    RotateKey {
        name: String,
    },
    GetRotationPolicy {
        name: String,
    },
    SetRotationPolicy {
        name: String,
    },
    KeyOperation {
        name: String,
        version: Option<String>,
        op: KeyOp,
    },
    ReleaseKey {
        name: String,
        version: Option<String>,
    },
    GetKeyAttestation {
        name: String,
        version: Option<String>,
    },
    GetRandomBytes,
    // secrets
    SetSecret {
        name: String,
    },
    GetSecret {
        name: String,
        version: Option<String>,
    },
    UpdateSecret {
        name: String,
        version: Option<String>,
    },
    ListSecrets,
    ListSecretVersions {
        name: String,
    },
    DeleteSecret {
        name: String,
    },
    ListDeletedSecrets,
    GetDeletedSecret {
        name: String,
    },
    PurgeDeletedSecret {
        name: String,
    },
    RecoverDeletedSecret {
        name: String,
    },
    BackupSecret {
        name: String,
    },
    RestoreSecret,
    /// The attestation service (MAA-compatible, native, policies): see [`crate::attest`].
    Attest(crate::attest::AttestRoute),
    /// The Confidential Containers KBS protocol (`/kbs/v0/...`): see [`crate::kbs`].
    Kbs(crate::kbs::KbsRoute),
    /// Key Vault certificates (`/certificates`, `/deletedcertificates`) and the issuing CA's
    /// certificate: see [`crate::certs`].
    Cert(crate::certs::CertRoute),
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The path exists, with other methods.
    MethodNotAllowed {
        allowed: &'static str,
    },
}

fn opt_version(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

/// The routes of the collection every object kind has (`/keys`, `/secrets`): `GET` lists,
/// `POST /restore` restores, `/{name}` gets / puts / updates / deletes, `/{name}/versions`,
/// `POST /{name}/backup`, and `/{name}/{version}` gets / updates. `extra` routes the kind's own
/// `/{name}/{segment}` operations (keys: create, rotate, crypto, ...) before a segment is taken
/// as a version.
struct ObjectRoutes {
    list: Route,
    restore: Route,
    get: fn(String, Option<String>) -> Route,
    put: fn(String) -> Route,
    update: fn(String, Option<String>) -> Route,
    delete: fn(String) -> Route,
    versions: fn(String) -> Route,
    backup: fn(String) -> Route,
    extra: fn(&str, String, &Method) -> Option<Result<Route, RouteError>>,
}

/// Route the (at most two) segments after an object collection.
fn object_route(rest: &[&str], m: &Method, r: ObjectRoutes) -> Result<Route, RouteError> {
    let not_allowed = |allowed: &'static str| Err(RouteError::MethodNotAllowed { allowed });
    match rest {
        [] | [""] if *m == Method::GET => Ok(r.list),
        [] | [""] => not_allowed("GET"),
        ["restore"] if *m == Method::POST => Ok(r.restore),
        [name] => {
            let name = name.to_string();
            match *m {
                Method::GET => Ok((r.get)(name, None)),
                Method::PUT => Ok((r.put)(name)),
                Method::PATCH => Ok((r.update)(name, None)),
                Method::DELETE => Ok((r.delete)(name)),
                _ => not_allowed("GET, PUT, PATCH, DELETE"),
            }
        }
        [name, x] if !name.is_empty() => {
            let name = name.to_string();
            match (*x, m.clone()) {
                ("versions", Method::GET) => Ok((r.versions)(name)),
                ("versions", _) => not_allowed("GET"),
                ("backup", Method::POST) => Ok((r.backup)(name)),
                ("backup", _) => not_allowed("POST"),
                _ => match (r.extra)(x, name.clone(), m) {
                    Some(routed) => routed,
                    None => match *m {
                        Method::GET => Ok((r.get)(name, opt_version(x))),
                        Method::PATCH => Ok((r.update)(name, opt_version(x))),
                        _ => not_allowed("GET, PATCH"),
                    },
                },
            }
        }
        _ => Err(RouteError::NotFound),
    }
}

/// The key's own `/keys/{name}/{segment}` operations; `None`: the segment is a version.
fn key_route(x: &str, name: String, m: &Method) -> Option<Result<Route, RouteError>> {
    use Route as R;
    let not_allowed = |allowed: &'static str| Err(RouteError::MethodNotAllowed { allowed });
    Some(match (x, m.clone()) {
        ("create", Method::POST) => Ok(R::CreateKey { name }),
        ("create", _) => not_allowed("POST"),
        ("rotate", Method::POST) => Ok(R::RotateKey { name }),
        ("rotate", _) => not_allowed("POST"),
        ("rotationpolicy", Method::GET) => Ok(R::GetRotationPolicy { name }),
        ("rotationpolicy", Method::PUT) => Ok(R::SetRotationPolicy { name }),
        ("rotationpolicy", _) => not_allowed("GET, PUT"),
        // Key attestation of the current version (api-version 7.6). Versions are 32 hex
        // characters, so a version can never be the literal "attestation"; a key *named*
        // "attestation" is `/keys/attestation`, a different segment.
        ("attestation", Method::GET) => Ok(R::GetKeyAttestation {
            name,
            version: None,
        }),
        ("attestation", _) => not_allowed("GET"),
        ("release", Method::POST) => Ok(R::ReleaseKey {
            name,
            version: None,
        }),
        (op, Method::POST) => match KeyOp::parse(op) {
            Some(op) => Ok(R::KeyOperation {
                name,
                version: None,
                op,
            }),
            None => return None,
        },
        _ => return None,
    })
}

/// The routes of the deleted collection every object kind has (`/deleted{keys,secrets}`):
/// `GET` lists, `GET`/`DELETE` `/{name}` gets/purges, `POST /{name}/recover` recovers.
struct DeletedRoutes {
    list: Route,
    get: fn(String) -> Route,
    purge: fn(String) -> Route,
    recover: fn(String) -> Route,
}

/// Route the segments after `deleted{collection}`.
fn deleted_route(rest: &[&str], m: &Method, r: DeletedRoutes) -> Result<Route, RouteError> {
    let not_allowed = |allowed: &'static str| Err(RouteError::MethodNotAllowed { allowed });
    match rest {
        [] | [""] if *m == Method::GET => Ok(r.list),
        [] | [""] => not_allowed("GET"),
        [name] if !name.is_empty() => match *m {
            Method::GET => Ok((r.get)(name.to_string())),
            Method::DELETE => Ok((r.purge)(name.to_string())),
            _ => not_allowed("GET, DELETE"),
        },
        [name, "recover"] if !name.is_empty() && *m == Method::POST => {
            Ok((r.recover)(name.to_string()))
        }
        [name, "recover"] if !name.is_empty() => not_allowed("POST"),
        _ => Err(RouteError::NotFound),
    }
}

/// Match a request. `path` is the URL path without the query string.
pub fn route(method: &Method, path: &str) -> Result<Route, RouteError> {
    // Tolerate a doubled leading slash (`https://vault//secrets/x`, seen in Azure's own docs).
    let trimmed = path.trim_start_matches('/');
    let segs: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    let m = method;
    let not_allowed = |allowed: &'static str| Err(RouteError::MethodNotAllowed { allowed });
    use Route as R;
    if let Some(r) = crate::attest::route(m, &segs) {
        return r.map(R::Attest);
    }
    if let Some(r) = crate::kbs::route(m, &segs) {
        return r.map(R::Kbs);
    }
    if let Some(r) = crate::certs::route(m, &segs) {
        return r.map(R::Cert);
    }
    match segs.as_slice() {
        ["healthz"] => {
            if m == Method::GET {
                Ok(R::Healthz)
            } else {
                not_allowed("GET")
            }
        }
        ["readyz"] => {
            if m == Method::GET {
                Ok(R::Readyz)
            } else {
                not_allowed("GET")
            }
        }
        ["metrics"] => {
            if m == Method::GET {
                Ok(R::Metrics)
            } else {
                not_allowed("GET")
            }
        }
        ["openapi.json"] => {
            if m == Method::GET {
                Ok(R::OpenApi)
            } else {
                not_allowed("GET")
            }
        }
        ["oauth2", "token"] | ["oauth2", "v2.0", "token"] => {
            if m == Method::POST {
                Ok(R::Token)
            } else {
                not_allowed("POST")
            }
        }
        [tenant, "oauth2", "v2.0", "token"] | [tenant, "oauth2", "token"] => {
            if m == Method::POST {
                Ok(R::TenantToken {
                    tenant: tenant.to_string(),
                })
            } else {
                not_allowed("POST")
            }
        }
        [".well-known", "openid-configuration"]
        | ["v2.0", ".well-known", "openid-configuration"] => {
            if m == Method::GET {
                Ok(R::OpenIdConfig { tenant: None })
            } else {
                not_allowed("GET")
            }
        }
        [tenant, ".well-known", "openid-configuration"]
        | [tenant, "v2.0", ".well-known", "openid-configuration"] => {
            if m == Method::GET {
                Ok(R::OpenIdConfig {
                    tenant: Some(tenant.to_string()),
                })
            } else {
                not_allowed("GET")
            }
        }
        [".well-known", "jwks.json"]
        | ["discovery", "keys"]
        | ["discovery", "v2.0", "keys"]
        | [_, "discovery", "keys"]
        | [_, "discovery", "v2.0", "keys"] => {
            if m == Method::GET {
                Ok(R::Jwks)
            } else {
                not_allowed("GET")
            }
        }
        ["metadata", "identity", "oauth2", "token"] => {
            if m == Method::GET || m == Method::POST {
                Ok(R::ManagedIdentityToken)
            } else {
                not_allowed("GET, POST")
            }
        }
        ["operator", "init"] => {
            if m == Method::POST {
                Ok(R::OperatorInit)
            } else {
                not_allowed("POST")
            }
        }
        ["operator", "unseal"] => {
            if m == Method::POST {
                Ok(R::OperatorUnseal)
            } else {
                not_allowed("POST")
            }
        }
        ["operator", "seal"] => {
            if m == Method::POST {
                Ok(R::OperatorSeal)
            } else {
                not_allowed("POST")
            }
        }
        ["operator", "status"] => {
            if m == Method::GET {
                Ok(R::OperatorStatus)
            } else {
                not_allowed("GET")
            }
        }
        ["enclava", "principals"] => match *m {
            Method::GET => Ok(R::ListPrincipals),
            Method::POST => Ok(R::CreatePrincipal),
            _ => not_allowed("GET, POST"),
        },
        ["enclava", "principals", id] if !id.is_empty() => match *m {
            Method::GET => Ok(R::GetPrincipal { id: id.to_string() }),
            Method::DELETE => Ok(R::DeletePrincipal { id: id.to_string() }),
            _ => not_allowed("GET, DELETE"),
        },
        ["enclava", "role-assignments"] => match *m {
            Method::GET => Ok(R::ListRoleAssignments),
            Method::POST => Ok(R::CreateRoleAssignment),
            _ => not_allowed("GET, POST"),
        },
        ["enclava", "role-assignments", id] if !id.is_empty() => match *m {
            Method::GET => Ok(R::GetRoleAssignment { id: id.to_string() }),
            Method::DELETE => Ok(R::DeleteRoleAssignment { id: id.to_string() }),
            _ => not_allowed("GET, DELETE"),
        },
        ["enclava", "audit"] => {
            if m == Method::GET {
                Ok(R::ReadAudit)
            } else {
                not_allowed("GET")
            }
        }
        ["enclava", "audit", "verify"] => {
            if m == Method::GET || m == Method::POST {
                Ok(R::VerifyAudit)
            } else {
                not_allowed("GET, POST")
            }
        }
        ["rng"] => {
            if m == Method::POST {
                Ok(R::GetRandomBytes)
            } else {
                not_allowed("POST")
            }
        }
        ["keys", rest @ ..] if rest.len() <= 2 => object_route(
            rest,
            m,
            ObjectRoutes {
                list: R::ListKeys,
                restore: R::RestoreKey,
                get: |name, version| R::GetKey { name, version },
                put: |name| R::ImportKey { name },
                update: |name, version| R::UpdateKey { name, version },
                delete: |name| R::DeleteKey { name },
                versions: |name| R::ListKeyVersions { name },
                backup: |name| R::BackupKey { name },
                extra: key_route,
            },
        ),
        ["keys", name, version, op] if !name.is_empty() => {
            let (name, version) = (name.to_string(), opt_version(version));
            match (*op, m.clone()) {
                ("release", Method::POST) => Ok(R::ReleaseKey { name, version }),
                ("attestation", Method::GET) => Ok(R::GetKeyAttestation { name, version }),
                (o, Method::POST) => match KeyOp::parse(o) {
                    Some(op) => Ok(R::KeyOperation { name, version, op }),
                    None => Err(RouteError::NotFound),
                },
                (o, _) if KeyOp::parse(o).is_some() || o == "release" => not_allowed("POST"),
                ("attestation", _) => not_allowed("GET"),
                _ => Err(RouteError::NotFound),
            }
        }
        ["deletedkeys", rest @ ..] => deleted_route(
            rest,
            m,
            DeletedRoutes {
                list: R::ListDeletedKeys,
                get: |name| R::GetDeletedKey { name },
                purge: |name| R::PurgeDeletedKey { name },
                recover: |name| R::RecoverDeletedKey { name },
            },
        ),
        ["secrets", rest @ ..] => object_route(
            rest,
            m,
            ObjectRoutes {
                list: R::ListSecrets,
                restore: R::RestoreSecret,
                get: |name, version| R::GetSecret { name, version },
                put: |name| R::SetSecret { name },
                update: |name, version| R::UpdateSecret { name, version },
                delete: |name| R::DeleteSecret { name },
                versions: |name| R::ListSecretVersions { name },
                backup: |name| R::BackupSecret { name },
                extra: |_, _, _| None,
            },
        ),
        ["deletedsecrets", rest @ ..] => deleted_route(
            rest,
            m,
            DeletedRoutes {
                list: R::ListDeletedSecrets,
                get: |name| R::GetDeletedSecret { name },
                purge: |name| R::PurgeDeletedSecret { name },
                recover: |name| R::RecoverDeletedSecret { name },
            },
        ),
        _ => Err(RouteError::NotFound),
    }
}

impl Route {
    /// The route template (a fixed, low-cardinality label).
    pub fn template(&self) -> &'static str {
        use Route as R;
        match self {
            R::Healthz => "/healthz",
            R::Readyz => "/readyz",
            R::Metrics => "/metrics",
            R::OpenApi => "/openapi.json",
            R::Token => "/oauth2/token",
            R::TenantToken { .. } => "/{tenant}/oauth2/v2.0/token",
            R::ManagedIdentityToken => "/metadata/identity/oauth2/token",
            R::OpenIdConfig { .. } => "/{tenant}/v2.0/.well-known/openid-configuration",
            R::Jwks => "/discovery/v2.0/keys",
            R::OperatorInit => "/operator/init",
            R::OperatorUnseal => "/operator/unseal",
            R::OperatorSeal => "/operator/seal",
            R::OperatorStatus => "/operator/status",
            R::ListPrincipals | R::CreatePrincipal => "/enclava/principals",
            R::GetPrincipal { .. } | R::DeletePrincipal { .. } => "/enclava/principals/{id}",
            R::ListRoleAssignments | R::CreateRoleAssignment => "/enclava/role-assignments",
            R::GetRoleAssignment { .. } | R::DeleteRoleAssignment { .. } => {
                "/enclava/role-assignments/{id}"
            }
            R::ReadAudit => "/enclava/audit",
            R::VerifyAudit => "/enclava/audit/verify",
            R::CreateKey { .. } => "/keys/{name}/create",
            R::ImportKey { .. } | R::DeleteKey { .. } => "/keys/{name}",
            R::GetKey { .. } | R::UpdateKey { .. } => "/keys/{name}/{version}",
            R::ListKeys => "/keys",
            R::ListKeyVersions { .. } => "/keys/{name}/versions",
            R::ListDeletedKeys => "/deletedkeys",
            R::GetDeletedKey { .. } | R::PurgeDeletedKey { .. } => "/deletedkeys/{name}",
            R::RecoverDeletedKey { .. } => "/deletedkeys/{name}/recover",
            R::BackupKey { .. } => "/keys/{name}/backup",
            R::RestoreKey => "/keys/restore",
            R::RotateKey { .. } => "/keys/{name}/rotate",
            R::GetRotationPolicy { .. } | R::SetRotationPolicy { .. } => {
                "/keys/{name}/rotationpolicy"
            }
            R::KeyOperation { op, .. } => match op {
                KeyOp::Encrypt => "/keys/{name}/{version}/encrypt",
                KeyOp::Decrypt => "/keys/{name}/{version}/decrypt",
                KeyOp::WrapKey => "/keys/{name}/{version}/wrapkey",
                KeyOp::UnwrapKey => "/keys/{name}/{version}/unwrapkey",
                KeyOp::Sign => "/keys/{name}/{version}/sign",
                KeyOp::Verify => "/keys/{name}/{version}/verify",
            },
            R::ReleaseKey { .. } => "/keys/{name}/{version}/release",
            R::GetKeyAttestation { .. } => "/keys/{name}/{version}/attestation",
            R::GetRandomBytes => "/rng",
            R::SetSecret { .. } | R::DeleteSecret { .. } => "/secrets/{name}",
            R::GetSecret { .. } | R::UpdateSecret { .. } => "/secrets/{name}/{version}",
            R::ListSecrets => "/secrets",
            R::ListSecretVersions { .. } => "/secrets/{name}/versions",
            R::ListDeletedSecrets => "/deletedsecrets",
            R::GetDeletedSecret { .. } | R::PurgeDeletedSecret { .. } => "/deletedsecrets/{name}",
            R::RecoverDeletedSecret { .. } => "/deletedsecrets/{name}/recover",
            R::BackupSecret { .. } => "/secrets/{name}/backup",
            R::RestoreSecret => "/secrets/restore",
            R::Attest(a) => a.template(),
            R::Kbs(k) => k.template(),
            R::Cert(c) => c.template(),
        }
    }

    /// The operation name (Azure's operation ids where they exist).
    pub fn operation(&self) -> &'static str {
        use Route as R;
        match self {
            R::Healthz => "Healthz",
            R::Readyz => "Readyz",
            R::Metrics => "Metrics",
            R::OpenApi => "GetOpenApiDocument",
            R::Token | R::TenantToken { .. } => "GetToken",
            R::ManagedIdentityToken => "GetManagedIdentityToken",
            R::OpenIdConfig { .. } => "GetOpenIdConfiguration",
            R::Jwks => "GetJwks",
            R::OperatorInit => "OperatorInit",
            R::OperatorUnseal => "OperatorUnseal",
            R::OperatorSeal => "OperatorSeal",
            R::OperatorStatus => "OperatorStatus",
            R::ListPrincipals => "ListPrincipals",
            R::CreatePrincipal => "CreatePrincipal",
            R::GetPrincipal { .. } => "GetPrincipal",
            R::DeletePrincipal { .. } => "DeletePrincipal",
            R::ListRoleAssignments => "ListRoleAssignments",
            R::CreateRoleAssignment => "CreateRoleAssignment",
            R::GetRoleAssignment { .. } => "GetRoleAssignment",
            R::DeleteRoleAssignment { .. } => "DeleteRoleAssignment",
            R::ReadAudit => "ReadAudit",
            R::VerifyAudit => "VerifyAudit",
            R::CreateKey { .. } => "CreateKey",
            R::ImportKey { .. } => "ImportKey",
            R::GetKey { .. } => "GetKey",
            R::UpdateKey { .. } => "UpdateKey",
            R::ListKeys => "GetKeys",
            R::ListKeyVersions { .. } => "GetKeyVersions",
            R::DeleteKey { .. } => "DeleteKey",
            R::ListDeletedKeys => "GetDeletedKeys",
            R::GetDeletedKey { .. } => "GetDeletedKey",
            R::PurgeDeletedKey { .. } => "PurgeDeletedKey",
            R::RecoverDeletedKey { .. } => "RecoverDeletedKey",
            R::BackupKey { .. } => "BackupKey",
            R::RestoreKey => "RestoreKey",
            R::RotateKey { .. } => "RotateKey",
            R::GetRotationPolicy { .. } => "GetKeyRotationPolicy",
            R::SetRotationPolicy { .. } => "UpdateKeyRotationPolicy",
            R::KeyOperation { op, .. } => match op {
                KeyOp::Encrypt => "Encrypt",
                KeyOp::Decrypt => "Decrypt",
                KeyOp::WrapKey => "WrapKey",
                KeyOp::UnwrapKey => "UnwrapKey",
                KeyOp::Sign => "Sign",
                KeyOp::Verify => "Verify",
            },
            R::ReleaseKey { .. } => "Release",
            R::GetKeyAttestation { .. } => "GetKeyAttestation",
            R::GetRandomBytes => "GetRandomBytes",
            R::SetSecret { .. } => "SetSecret",
            R::GetSecret { .. } => "GetSecret",
            R::UpdateSecret { .. } => "UpdateSecret",
            R::ListSecrets => "GetSecrets",
            R::ListSecretVersions { .. } => "GetSecretVersions",
            R::DeleteSecret { .. } => "DeleteSecret",
            R::ListDeletedSecrets => "GetDeletedSecrets",
            R::GetDeletedSecret { .. } => "GetDeletedSecret",
            R::PurgeDeletedSecret { .. } => "PurgeDeletedSecret",
            R::RecoverDeletedSecret { .. } => "RecoverDeletedSecret",
            R::BackupSecret { .. } => "BackupSecret",
            R::RestoreSecret => "RestoreSecret",
            R::Attest(a) => a.operation(),
            R::Kbs(k) => k.operation(),
            R::Cert(c) => c.operation(),
        }
    }

    /// Key Vault data-plane routes: need `api-version`, an unsealed vault and a bearer token.
    pub fn is_data(&self) -> bool {
        use Route as R;
        !matches!(
            self,
            R::Healthz
                | R::Readyz
                | R::Metrics
                | R::OpenApi
                | R::Token
                | R::TenantToken { .. }
                | R::ManagedIdentityToken
                | R::OpenIdConfig { .. }
                | R::Jwks
                | R::OperatorInit
                | R::OperatorUnseal
                | R::OperatorSeal
                | R::OperatorStatus
                | R::ListPrincipals
                | R::CreatePrincipal
                | R::GetPrincipal { .. }
                | R::DeletePrincipal { .. }
                | R::ListRoleAssignments
                | R::CreateRoleAssignment
                | R::GetRoleAssignment { .. }
                | R::DeleteRoleAssignment { .. }
                | R::ReadAudit
                | R::VerifyAudit
                | R::Attest(_)
                | R::Kbs(_)
                | R::Cert(crate::certs::CertRoute::IssuingCa)
        )
    }

    /// Native administration routes (bearer token, unsealed vault, no api-version).
    pub fn is_admin(&self) -> bool {
        use Route as R;
        matches!(
            self,
            R::ListPrincipals
                | R::CreatePrincipal
                | R::GetPrincipal { .. }
                | R::DeletePrincipal { .. }
                | R::ListRoleAssignments
                | R::CreateRoleAssignment
                | R::GetRoleAssignment { .. }
                | R::DeleteRoleAssignment { .. }
                | R::ReadAudit
                | R::VerifyAudit
        )
    }

    /// The object name and version the request is about (for audit).
    pub fn object(&self) -> (Option<&str>, Option<&str>) {
        use Route as R;
        match self {
            R::GetKey { name, version }
            | R::UpdateKey { name, version }
            | R::KeyOperation { name, version, .. }
            | R::ReleaseKey { name, version }
            | R::GetKeyAttestation { name, version }
            | R::GetSecret { name, version }
            | R::UpdateSecret { name, version } => (Some(name), version.as_deref()),
            R::CreateKey { name }
            | R::ImportKey { name }
            | R::ListKeyVersions { name }
            | R::DeleteKey { name }
            | R::GetDeletedKey { name }
            | R::PurgeDeletedKey { name }
            | R::RecoverDeletedKey { name }
            | R::BackupKey { name }
            | R::RotateKey { name }
            | R::GetRotationPolicy { name }
            | R::SetRotationPolicy { name }
            | R::SetSecret { name }
            | R::ListSecretVersions { name }
            | R::DeleteSecret { name }
            | R::GetDeletedSecret { name }
            | R::PurgeDeletedSecret { name }
            | R::RecoverDeletedSecret { name }
            | R::BackupSecret { name } => (Some(name), None),
            R::GetPrincipal { id }
            | R::DeletePrincipal { id }
            | R::GetRoleAssignment { id }
            | R::DeleteRoleAssignment { id } => (Some(id), None),
            R::TenantToken { tenant } => (Some(tenant), None),
            R::Attest(a) => (a.object(), None),
            R::Cert(c) => c.object(),
            _ => (None, None),
        }
    }
}

/// Object names: 1-127 characters, ASCII letters, digits and dashes.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(140).collect();
        Err(format!(
            "invalid {kind} name {shown:?}: expected 1-127 characters, each an ASCII letter, digit or dash (found {} characters)",
            name.chars().count()
        ))
    }
}

/// Object versions: 32 lowercase hexadecimal characters (what this vault issues).
pub fn validate_version(kind: &str, version: &str) -> Result<(), String> {
    let ok = version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        let shown: String = version.chars().take(80).collect();
        Err(format!(
            "invalid {kind} version {shown:?}: expected 32 hexadecimal characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Result<Route, RouteError> {
        route(&m, p)
    }

    /// The shared object routers keep every edge of the per-kind routing they replaced.
    #[test]
    fn object_collections_route_alike() {
        use Route as R;
        let n = |s: &str| s.to_string();
        // `restore` is a name unless POSTed; a kind's own segment wins over a version only with
        // its method.
        assert_eq!(
            r(Method::GET, "/keys/restore"),
            Ok(R::GetKey {
                name: n("restore"),
                version: None
            })
        );
        assert_eq!(r(Method::POST, "/secrets/restore"), Ok(R::RestoreSecret));
        assert_eq!(
            r(Method::GET, "/keys/k/release"),
            Ok(R::GetKey {
                name: n("k"),
                version: Some(n("release"))
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/sign"),
            Ok(R::KeyOperation {
                name: n("k"),
                version: None,
                op: KeyOp::Sign
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/nosuchop"),
            Err(RouteError::MethodNotAllowed {
                allowed: "GET, PATCH"
            })
        );
        assert_eq!(
            r(Method::GET, "/secrets/s/create"),
            Ok(R::GetSecret {
                name: n("s"),
                version: Some(n("create"))
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/versions"),
            Err(RouteError::MethodNotAllowed { allowed: "GET" })
        );
        assert_eq!(
            r(Method::GET, "/secrets/s/backup"),
            Err(RouteError::MethodNotAllowed { allowed: "POST" })
        );
        assert_eq!(
            r(Method::POST, "/secrets"),
            Err(RouteError::MethodNotAllowed { allowed: "GET" })
        );
        assert_eq!(
            r(Method::POST, "/secrets/s"),
            Err(RouteError::MethodNotAllowed {
                allowed: "GET, PUT, PATCH, DELETE"
            })
        );
        assert_eq!(r(Method::GET, "/secrets//x"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, "/secrets/s/v/x"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, "/keys/k/v/x/y"), Err(RouteError::NotFound));
        // The deleted collections.
        assert_eq!(r(Method::GET, "/deletedkeys/"), Ok(R::ListDeletedKeys));
        assert_eq!(
            r(Method::DELETE, "/deletedsecrets/s"),
            Ok(R::PurgeDeletedSecret { name: n("s") })
        );
        assert_eq!(
            r(Method::GET, "/deletedkeys/k/recover"),
            Err(RouteError::MethodNotAllowed { allowed: "POST" })
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/s"),
            Err(RouteError::MethodNotAllowed {
                allowed: "GET, DELETE"
            })
        );
        assert_eq!(
            r(Method::POST, "/deletedkeys//recover"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            r(Method::GET, "/deletedkeys/k/other"),
            Err(RouteError::NotFound)
        );
    }

    #[test]
    fn key_quirks() {
        assert_eq!(
            r(Method::GET, "/keys/k/"),
            Ok(Route::GetKey {
                name: "k".into(),
                version: None
            })
        );
        assert_eq!(
            r(Method::GET, "/keys/k"),
            Ok(Route::GetKey {
                name: "k".into(),
                version: None
            })
        );
        assert_eq!(
            r(Method::GET, "/keys/k/abc"),
            Ok(Route::GetKey {
                name: "k".into(),
                version: Some("abc".into())
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k//release"),
            Ok(Route::ReleaseKey {
                name: "k".into(),
                version: None
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k//sign"),
            Ok(Route::KeyOperation {
                name: "k".into(),
                version: None,
                op: KeyOp::Sign
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/v1/wrapkey"),
            Ok(Route::KeyOperation {
                name: "k".into(),
                version: Some("v1".into()),
                op: KeyOp::WrapKey
            })
        );
        assert_eq!(r(Method::POST, "//keys/restore"), Ok(Route::RestoreKey));
        assert_eq!(r(Method::GET, "/keys"), Ok(Route::ListKeys));
        assert_eq!(
            r(Method::POST, "/keys/k/create"),
            Ok(Route::CreateKey { name: "k".into() })
        );
        assert_eq!(
            r(Method::GET, "/keys/k/create"),
            Err(RouteError::MethodNotAllowed { allowed: "POST" })
        );
        assert_eq!(
            r(Method::GET, "/keys/k/rotationpolicy"),
            Ok(Route::GetRotationPolicy { name: "k".into() })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/v/frobnicate"),
            Err(RouteError::NotFound)
        );
        // Key attestation with and without a version; never mistaken for a version or a key name.
        let att = |name: &str, version: Option<&str>| {
            Ok(Route::GetKeyAttestation {
                name: name.into(),
                version: version.map(String::from),
            })
        };
        assert_eq!(r(Method::GET, "/keys/k/attestation"), att("k", None));
        assert_eq!(r(Method::GET, "/keys/k//attestation"), att("k", None));
        assert_eq!(
            r(Method::GET, "/keys/k/v1/attestation"),
            att("k", Some("v1"))
        );
        assert_eq!(
            r(Method::GET, "/keys/attestation/attestation"),
            att("attestation", None)
        );
        assert_eq!(
            r(Method::GET, "/keys/attestation"),
            Ok(Route::GetKey {
                name: "attestation".into(),
                version: None
            })
        );
        assert_eq!(
            r(Method::POST, "/keys/k/attestation"),
            Err(RouteError::MethodNotAllowed { allowed: "GET" })
        );
        assert_eq!(
            r(Method::PUT, "/keys/k/v1/attestation"),
            Err(RouteError::MethodNotAllowed { allowed: "GET" })
        );
        assert_eq!(r(Method::GET, "/nope"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, "/"), Err(RouteError::NotFound));
    }

    #[test]
    fn secrets_identity_operator() {
        assert_eq!(
            r(Method::PUT, "/secrets/s"),
            Ok(Route::SetSecret { name: "s".into() })
        );
        assert_eq!(
            r(Method::GET, "/secrets/s/"),
            Ok(Route::GetSecret {
                name: "s".into(),
                version: None
            })
        );
        assert_eq!(
            r(Method::GET, "/secrets/s/versions"),
            Ok(Route::ListSecretVersions { name: "s".into() })
        );
        assert_eq!(
            r(Method::POST, "/deletedsecrets/s/recover"),
            Ok(Route::RecoverDeletedSecret { name: "s".into() })
        );
        assert_eq!(
            r(Method::POST, "/t1/oauth2/v2.0/token"),
            Ok(Route::TenantToken {
                tenant: "t1".into()
            })
        );
        assert_eq!(r(Method::POST, "/oauth2/token"), Ok(Route::Token));
        assert_eq!(
            r(Method::GET, "/metadata/identity/oauth2/token"),
            Ok(Route::ManagedIdentityToken)
        );
        assert_eq!(r(Method::POST, "/operator/init"), Ok(Route::OperatorInit));
        assert_eq!(
            r(Method::GET, "/operator/status"),
            Ok(Route::OperatorStatus)
        );
        assert!(!Route::OperatorStatus.is_data());
        assert!(Route::ListKeys.is_data());
        assert!(Route::ListPrincipals.is_admin());
    }

    #[test]
    fn names_and_versions() {
        assert!(validate_name("key", "a-B-9").is_ok());
        assert!(validate_name("key", "").is_err());
        assert!(validate_name("key", &"a".repeat(128)).is_err());
        assert!(validate_name("key", &"a".repeat(127)).is_ok());
        let e = validate_name("key", "bad_name").unwrap_err();
        assert!(e.contains("bad_name"), "{e}");
        assert!(validate_version("key", "0123456789abcdef0123456789abcdef").is_ok());
        assert!(validate_version("key", "xyz").is_err());
    }
}
