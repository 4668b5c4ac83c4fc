//! Key Vault data-plane handlers: synchronous, called on a blocking thread once the request is
//! authenticated and authorized. Bodies are decoded with the vault's model types (whose decode
//! errors never echo submitted values); responses are the Azure JSON shapes.

use axum::http::StatusCode;
use enclava_vault::{
    BackupBlob, GetRandomBytesRequest, KeyCreateParameters, KeyImportParameters,
    KeyOperationsParameters, KeyRotationPolicy, KeySignParameters, KeyUpdateParameters,
    KeyVerifyParameters, Keys, MAX_PAGE_SIZE, Page, SecretSetParameters, SecretUpdateParameters,
    Secrets, Vault, VaultObject,
};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::route::{KeyOp, Route, validate_name};

pub const JSON: &str = "application/json; charset=utf-8";

/// A successful answer: status and JSON body (`None`: empty body).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Vec<u8>>,
    pub content_type: &'static str,
}

impl Reply {
    pub fn json<T: Serialize>(v: &T) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(v)
            .map_err(|e| ApiError::internal(format!("cannot serialize the response: {e}")))?;
        Ok(Reply {
            status: StatusCode::OK,
            body: Some(body),
            content_type: JSON,
        })
    }

    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: None,
            content_type: JSON,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Reply {
        self.status = status;
        self
    }
}

/// Paging parameters from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    pub max_results: Option<u32>,
    pub skip_token: Option<String>,
}

impl Paging {
    /// Parse `maxresults` and `$skiptoken` from query pairs.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Paging, ApiError> {
        let mut p = Paging::default();
        for (k, v) in pairs {
            match k.as_str() {
                "maxresults" | "$maxresults" | "maxResults" => {
                    let n: u32 = v.trim().parse().map_err(|_| {
                        ApiError::bad_parameter(format!(
                            "invalid maxresults: expected an integer from 1 to {MAX_PAGE_SIZE}, found {:?}",
                            v.chars().take(32).collect::<String>()
                        ))
                    })?;
                    if n == 0 || n > MAX_PAGE_SIZE {
                        return Err(ApiError::bad_parameter(format!(
                            "invalid maxresults: expected an integer from 1 to {MAX_PAGE_SIZE}, found {n}"
                        )));
                    }
                    p.max_results = Some(n);
                }
                "$skiptoken" | "skiptoken" => {
                    if v.len() > 4096 {
                        return Err(ApiError::bad_parameter(format!(
                            "invalid $skiptoken: expected a token from a nextLink, found {} characters",
                            v.len()
                        )));
                    }
                    p.skip_token = Some(v.clone());
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// Context for building absolute links.
pub struct LinkCtx<'a> {
    pub base_url: &'a str,
    /// The api-version the client sent (echoed into nextLink).
    pub api_version: &'a str,
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `{"value": [...], "nextLink": url|null}`.
pub fn page_json<T: Serialize>(
    page: Page<T>,
    ctx: &LinkCtx<'_>,
    path: &str,
    max_results: Option<u32>,
) -> Result<Reply, ApiError> {
    let next = page.continuation.map(|c| {
        let mut url = format!(
            "{}{}?api-version={}&$skiptoken={}",
            ctx.base_url,
            path,
            enc(ctx.api_version),
            enc(&c)
        );
        if let Some(n) = max_results {
            url.push_str(&format!("&maxresults={n}"));
        }
        url
    });
    #[derive(Serialize)]
    struct Out<T> {
        value: Vec<T>,
        #[serde(rename = "nextLink")]
        next_link: Option<String>,
    }
    Reply::json(&Out {
        value: page.items,
        next_link: next,
    })
}

fn key_name(n: &str) -> Result<(), ApiError> {
    validate_name("key", n).map_err(ApiError::bad_parameter)
}

fn secret_name(n: &str) -> Result<(), ApiError> {
    validate_name("secret", n).map_err(ApiError::bad_parameter)?;
    not_reserved(n)
}

/// Refuse the KBS's secret names on the `/secrets` data plane (see
/// [`crate::kbs::reserved_secret_name`]): 400, whatever the caller's roles.
fn not_reserved(n: &str) -> Result<(), ApiError> {
    if crate::kbs::reserved_secret_name(n) {
        return Err(ApiError::bad_parameter(format!(
            "invalid secret name {n:?}: names starting with {:?} or {:?} are reserved for the KBS \
             (use the /kbs/v0 routes); expected any other name",
            crate::kbs::RESOURCE_PREFIX,
            crate::kbs::POLICY_PREFIX
        )));
    }
    Ok(())
}

/// A listing page without the KBS's reserved secrets (an item's name is the last segment of
/// its `id` or `recoveryId`). The page may come out shorter than asked, as Key Vault's may.
fn without_reserved<T: Serialize>(page: Page<T>) -> Result<Page<serde_json::Value>, ApiError> {
    let mut items = Vec::with_capacity(page.items.len());
    for item in page.items {
        let v = serde_json::to_value(&item)
            .map_err(|_| ApiError::internal("cannot serialize a listing item"))?;
        let name = v
            .get("id")
            .and_then(|i| i.as_str())
            .and_then(|i| i.rsplit('/').next())
            .unwrap_or_default();
        if !crate::kbs::reserved_secret_name(name) {
            items.push(v);
        }
    }
    Ok(Page {
        items,
        continuation: page.continuation,
    })
}

/// Versions are path segments: reject what cannot be a version before the vault sees it.
pub(crate) fn version_ok(kind: &str, v: &Option<String>) -> Result<(), ApiError> {
    if let Some(v) = v
        && (v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(ApiError::bad_parameter(format!(
            "invalid {kind} version {:?}: expected letters and digits (a version id from this vault)",
            v.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_parameter(
            "invalid request body: expected a JSON object, found an empty body",
        ));
    }
    enclava_vault::model::decode(body).map_err(ApiError::from)
}

/// The routes every vault object kind (keys, secrets; certificates next) has, answered the same
/// way for each: listing, versions, soft delete, deleted objects, recover, purge, backup, restore.
pub(crate) enum Lifecycle<'a> {
    List,
    Versions(&'a str),
    Delete(&'a str),
    ListDeleted,
    GetDeleted(&'a str),
    Purge(&'a str),
    Recover(&'a str),
    Backup(&'a str),
    Restore,
}

/// The object kind of a [`Lifecycle`] route.
enum Kind {
    Key,
    Secret,
}

/// The lifecycle routes of every object kind.
fn lifecycle_of(route: &Route) -> Option<(Kind, Lifecycle<'_>)> {
    use Lifecycle as L;
    use Route as R;
    Some(match route {
        R::ListKeys => (Kind::Key, L::List),
        R::ListKeyVersions { name } => (Kind::Key, L::Versions(name)),
        R::DeleteKey { name } => (Kind::Key, L::Delete(name)),
        R::ListDeletedKeys => (Kind::Key, L::ListDeleted),
        R::GetDeletedKey { name } => (Kind::Key, L::GetDeleted(name)),
        R::PurgeDeletedKey { name } => (Kind::Key, L::Purge(name)),
        R::RecoverDeletedKey { name } => (Kind::Key, L::Recover(name)),
        R::BackupKey { name } => (Kind::Key, L::Backup(name)),
        R::RestoreKey => (Kind::Key, L::Restore),
        R::ListSecrets => (Kind::Secret, L::List),
        R::ListSecretVersions { name } => (Kind::Secret, L::Versions(name)),
        R::DeleteSecret { name } => (Kind::Secret, L::Delete(name)),
        R::ListDeletedSecrets => (Kind::Secret, L::ListDeleted),
        R::GetDeletedSecret { name } => (Kind::Secret, L::GetDeleted(name)),
        R::PurgeDeletedSecret { name } => (Kind::Secret, L::Purge(name)),
        R::RecoverDeletedSecret { name } => (Kind::Secret, L::Recover(name)),
        R::BackupSecret { name } => (Kind::Secret, L::Backup(name)),
        R::RestoreSecret => (Kind::Secret, L::Restore),
        _ => return None,
    })
}

/// Answer a [`Lifecycle`] route for the object kind `K`.
pub(crate) fn lifecycle<K: VaultObject>(
    vault: &Vault,
    op: Lifecycle<'_>,
    paging: &Paging,
    body: &[u8],
    ctx: &LinkCtx<'_>,
) -> Result<Reply, ApiError> {
    let (mr, st) = (paging.max_results, paging.skip_token.as_deref());
    let coll = K::COLLECTION;
    // Secrets: the KBS's reserved names are neither addressable nor listed.
    let secrets = K::COLLECTION == "secrets";
    let named = |n: &str| {
        validate_name(K::KIND, n).map_err(ApiError::bad_parameter)?;
        if secrets { not_reserved(n) } else { Ok(()) }
    };
    match op {
        Lifecycle::List if secrets => page_json(
            without_reserved(K::list(vault, mr, st)?)?,
            ctx,
            &format!("/{coll}"),
            mr,
        ),
        Lifecycle::ListDeleted if secrets => page_json(
            without_reserved(K::list_deleted(vault, mr, st)?)?,
            ctx,
            &format!("/deleted{coll}"),
            mr,
        ),
        Lifecycle::List => page_json(K::list(vault, mr, st)?, ctx, &format!("/{coll}"), mr),
        Lifecycle::Versions(name) => {
            named(name)?;
            page_json(
                K::list_versions(vault, name, mr, st)?,
                ctx,
                &format!("/{coll}/{name}/versions"),
                mr,
            )
        }
        Lifecycle::Delete(name) => {
            named(name)?;
            Reply::json(&K::delete(vault, name)?)
        }
        Lifecycle::ListDeleted => page_json(
            K::list_deleted(vault, mr, st)?,
            ctx,
            &format!("/deleted{coll}"),
            mr,
        ),
        Lifecycle::GetDeleted(name) => {
            named(name)?;
            Reply::json(&K::get_deleted(vault, name)?)
        }
        Lifecycle::Purge(name) => {
            named(name)?;
            K::purge(vault, name)?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        Lifecycle::Recover(name) => {
            named(name)?;
            Reply::json(&K::recover(vault, name)?)
        }
        Lifecycle::Backup(name) => {
            named(name)?;
            Reply::json(&K::backup(vault, name)?)
        }
        Lifecycle::Restore => {
            let b: BackupBlob = decode(body)?;
            Reply::json(&K::restore(vault, b.value.as_slice())?)
        }
    }
}

/// Run one data-plane route.
pub fn handle(
    vault: &Vault,
    route: &Route,
    paging: &Paging,
    body: &[u8],
    ctx: &LinkCtx<'_>,
) -> Result<Reply, ApiError> {
    use Route as R;
    if let Some((kind, op)) = lifecycle_of(route) {
        return match kind {
            Kind::Key => lifecycle::<Keys>(vault, op, paging, body, ctx),
            Kind::Secret => lifecycle::<Secrets>(vault, op, paging, body, ctx),
        };
    }
    match route {
        R::CreateKey { name } => {
            key_name(name)?;
            let p: KeyCreateParameters = decode(body)?;
            Reply::json(&vault.create_key(name, &p)?)
        }
        R::ImportKey { name } => {
            key_name(name)?;
            let p: KeyImportParameters = decode(body)?;
            Reply::json(&vault.import_key(name, &p)?)
        }
        R::GetKey { name, version } => {
            key_name(name)?;
            version_ok("key", version)?;
            Reply::json(&vault.get_key(name, version.as_deref())?)
        }
        R::UpdateKey { name, version } => {
            key_name(name)?;
            version_ok("key", version)?;
            let p: KeyUpdateParameters = decode(body)?;
            Reply::json(&vault.update_key(name, version.as_deref(), &p)?)
        }
        R::RotateKey { name } => {
            key_name(name)?;
            Reply::json(&vault.rotate_key(name)?)
        }
        R::GetRotationPolicy { name } => {
            key_name(name)?;
            Reply::json(&vault.get_rotation_policy(name)?)
        }
        R::SetRotationPolicy { name } => {
            key_name(name)?;
            let p: KeyRotationPolicy = decode(body)?;
            Reply::json(&vault.set_rotation_policy(name, &p)?)
        }
        R::KeyOperation { name, version, op } => {
            key_name(name)?;
            version_ok("key", version)?;
            let v = version.as_deref();
            match op {
                KeyOp::Encrypt => {
                    let p: KeyOperationsParameters = decode(body)?;
                    Reply::json(&vault.encrypt(name, v, &p)?)
                }
                KeyOp::Decrypt => {
                    let p: KeyOperationsParameters = decode(body)?;
                    Reply::json(&vault.decrypt(name, v, &p)?)
                }
                KeyOp::WrapKey => {
                    let p: KeyOperationsParameters = decode(body)?;
                    Reply::json(&vault.wrap_key(name, v, &p)?)
                }
                KeyOp::UnwrapKey => {
                    let p: KeyOperationsParameters = decode(body)?;
                    Reply::json(&vault.unwrap_key(name, v, &p)?)
                }
                KeyOp::Sign => {
                    let p: KeySignParameters = decode(body)?;
                    Reply::json(&vault.sign(name, v, &p)?)
                }
                KeyOp::Verify => {
                    let p: KeyVerifyParameters = decode(body)?;
                    Reply::json(&vault.verify(name, v, &p)?)
                }
            }
        }
        R::GetKeyAttestation { name, version } => {
            key_name(name)?;
            version_ok("key", version)?;
            // Key Vault introduced key attestation in api-version 7.6: older versions have no
            // such operation.
            if !crate::apiversion::at_least(ctx.api_version, "7.6") {
                return Err(ApiError::bad_parameter(format!(
                    "key attestation requires api-version 7.6 or later, found {}",
                    ctx.api_version.chars().take(64).collect::<String>()
                )));
            }
            // The key must exist (KeyNotFound as for a get) before the operation is refused.
            vault.get_key(name, version.as_deref())?;
            Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "key attestation (GET /keys/{name}[/{version}]/attestation) is not implemented: \
                 Enclava keys are not HSM-resident, so there is no HSM attestation statement or \
                 certificate chain to return",
            ))
        }
        R::GetRandomBytes => {
            let p: GetRandomBytesRequest = decode(body)?;
            Reply::json(&vault.rng(p.count)?)
        }
        R::SetSecret { name } => {
            secret_name(name)?;
            let p: SecretSetParameters = decode(body)?;
            Reply::json(&vault.set_secret(name, &p)?)
        }
        R::GetSecret { name, version } => {
            secret_name(name)?;
            version_ok("secret", version)?;
            Reply::json(&vault.get_secret(name, version.as_deref())?)
        }
        R::UpdateSecret { name, version } => {
            secret_name(name)?;
            version_ok("secret", version)?;
            let p: SecretUpdateParameters = decode(body)?;
            Reply::json(&vault.update_secret(name, version.as_deref(), &p)?)
        }
        other => Err(ApiError::internal(format!(
            "route {} is not a data-plane route",
            other.template()
        ))),
    }
}

/// Parse query pairs (lenient: invalid percent-encoding is kept as-is by `form_urlencoded`).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The JSON value of a reply body, for tests.
pub fn body_value(r: &Reply) -> Value {
    r.body
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null)
}
