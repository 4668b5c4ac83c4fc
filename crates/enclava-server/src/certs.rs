//! The Key Vault certificates data plane (`/certificates`, `/deletedcertificates`) and the public
//! certificate of the vault's issuing CA (`GET /enclava/certificates/ca`).
//!
//! Routing, authorization (certificate actions of [`enclava_identity::Action`]) and the HTTP
//! shapes live here; the certificate logic (policies, issuance, CSR, import, lifetime actions) is
//! the vault's ([`enclava_vault::Certificates`]). The `Enclava` issuer signs with the sealed
//! issuing CA service key ([`crate::service_keys::load_or_create_issuing_ca`]), handed to the
//! vault per call and never to any route.

use axum::http::{Method, StatusCode};
use enclava_identity::{Action, Resource};
use enclava_vault::certmodel::{
    CertificateCreateParameters, CertificateImportParameters, CertificateIssuerSetParameters,
    CertificateIssuerUpdateParameters, CertificateMergeParameters,
    CertificateOperationUpdateParameter, CertificatePolicy, CertificateUpdateParameters, Contacts,
};
use enclava_vault::{Certificates, Vault};

use crate::app::AppState;
use crate::data::{self, LinkCtx, Paging, Reply, decode, page_json, version_ok};
use crate::error::ApiError;
use crate::route::{Route, RouteError, validate_name};

/// A certificate route. Names and versions are raw path segments (validated in [`handle`]);
/// `version: None` means the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRoute {
    Create {
        name: String,
    },
    Import {
        name: String,
    },
    Get {
        name: String,
        version: Option<String>,
    },
    Update {
        name: String,
        version: Option<String>,
    },
    List,
    Versions {
        name: String,
    },
    Delete {
        name: String,
    },
    ListDeleted,
    GetDeleted {
        name: String,
    },
    Purge {
        name: String,
    },
    Recover {
        name: String,
    },
    Backup {
        name: String,
    },
    Restore,
    GetPolicy {
        name: String,
    },
    UpdatePolicy {
        name: String,
    },
    GetPending {
        name: String,
    },
    UpdatePending {
        name: String,
    },
    DeletePending {
        name: String,
    },
    Merge {
        name: String,
    },
    ListIssuers,
    SetIssuer {
        name: String,
    },
    GetIssuer {
        name: String,
    },
    UpdateIssuer {
        name: String,
    },
    DeleteIssuer {
        name: String,
    },
    SetContacts,
    GetContacts,
    DeleteContacts,
    /// The issuing CA's certificate (PEM), public: clients need it to trust what it issues.
    IssuingCa,
}

fn opt_version(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Route `segs` (the path split at `/`) if it is a certificate path. `issuers` and `contacts`
/// are matched before `{name}` (they are refused as certificate names).
pub fn route(m: &Method, segs: &[&str]) -> Option<Result<CertRoute, RouteError>> {
    use CertRoute as C;
    let not_allowed = |allowed: &'static str| Err(RouteError::MethodNotAllowed { allowed });
    let n = |s: &str| s.to_string();
    Some(match segs {
        ["enclava", "certificates", "ca"] => match *m {
            Method::GET => Ok(C::IssuingCa),
            _ => not_allowed("GET"),
        },
        ["certificates"] | ["certificates", ""] => match *m {
            Method::GET => Ok(C::List),
            _ => not_allowed("GET"),
        },
        ["certificates", "restore"] if *m == Method::POST => Ok(C::Restore),
        // `issuers` as a certificate name: routed as a create / import so the answer is a clear
        // 400 about the reserved name rather than 405 from the issuer route.
        ["certificates", "issuers", "create"] if *m == Method::POST => {
            Ok(C::Create { name: n("issuers") })
        }
        ["certificates", "issuers", "import"] if *m == Method::POST => {
            Ok(C::Import { name: n("issuers") })
        }
        ["certificates", "issuers"] | ["certificates", "issuers", ""] => match *m {
            Method::GET => Ok(C::ListIssuers),
            _ => not_allowed("GET"),
        },
        ["certificates", "issuers", issuer] => {
            let name = n(issuer);
            match *m {
                Method::PUT => Ok(C::SetIssuer { name }),
                Method::GET => Ok(C::GetIssuer { name }),
                Method::PATCH => Ok(C::UpdateIssuer { name }),
                Method::DELETE => Ok(C::DeleteIssuer { name }),
                _ => not_allowed("GET, PUT, PATCH, DELETE"),
            }
        }
        ["certificates", "contacts"] => match *m {
            Method::PUT => Ok(C::SetContacts),
            Method::GET => Ok(C::GetContacts),
            Method::DELETE => Ok(C::DeleteContacts),
            _ => not_allowed("GET, PUT, DELETE"),
        },
        ["certificates", name] if !name.is_empty() => {
            let name = n(name);
            match *m {
                Method::GET => Ok(C::Get {
                    name,
                    version: None,
                }),
                Method::PATCH => Ok(C::Update {
                    name,
                    version: None,
                }),
                Method::DELETE => Ok(C::Delete { name }),
                _ => not_allowed("GET, PATCH, DELETE"),
            }
        }
        ["certificates", name, x] if !name.is_empty() => {
            let name = n(name);
            match (*x, m.clone()) {
                ("create", Method::POST) => Ok(C::Create { name }),
                ("create", _) => not_allowed("POST"),
                ("import", Method::POST) => Ok(C::Import { name }),
                ("import", _) => not_allowed("POST"),
                ("versions", Method::GET) => Ok(C::Versions { name }),
                ("versions", _) => not_allowed("GET"),
                ("backup", Method::POST) => Ok(C::Backup { name }),
                ("backup", _) => not_allowed("POST"),
                ("policy", Method::GET) => Ok(C::GetPolicy { name }),
                ("policy", Method::PATCH) => Ok(C::UpdatePolicy { name }),
                ("policy", _) => not_allowed("GET, PATCH"),
                ("pending", Method::GET) => Ok(C::GetPending { name }),
                ("pending", Method::PATCH) => Ok(C::UpdatePending { name }),
                ("pending", Method::DELETE) => Ok(C::DeletePending { name }),
                ("pending", _) => not_allowed("GET, PATCH, DELETE"),
                (v, Method::GET) => Ok(C::Get {
                    name,
                    version: opt_version(v),
                }),
                (v, Method::PATCH) => Ok(C::Update {
                    name,
                    version: opt_version(v),
                }),
                _ => not_allowed("GET, PATCH"),
            }
        }
        ["certificates", name, "pending", "merge"] if !name.is_empty() => match *m {
            Method::POST => Ok(C::Merge { name: n(name) }),
            _ => not_allowed("POST"),
        },
        ["certificates", ..] => Err(RouteError::NotFound),
        ["deletedcertificates"] | ["deletedcertificates", ""] => match *m {
            Method::GET => Ok(C::ListDeleted),
            _ => not_allowed("GET"),
        },
        ["deletedcertificates", name] if !name.is_empty() => match *m {
            Method::GET => Ok(C::GetDeleted { name: n(name) }),
            Method::DELETE => Ok(C::Purge { name: n(name) }),
            _ => not_allowed("GET, DELETE"),
        },
        ["deletedcertificates", name, "recover"] if !name.is_empty() => match *m {
            Method::POST => Ok(C::Recover { name: n(name) }),
            _ => not_allowed("POST"),
        },
        ["deletedcertificates", ..] => Err(RouteError::NotFound),
        _ => return None,
    })
}

impl CertRoute {
    /// The route template (a fixed, low-cardinality label).
    pub fn template(&self) -> &'static str {
        use CertRoute as C;
        match self {
            C::Create { .. } => "/certificates/{name}/create",
            C::Import { .. } => "/certificates/{name}/import",
            C::Get { .. } | C::Update { .. } => "/certificates/{name}/{version}",
            C::List => "/certificates",
            C::Versions { .. } => "/certificates/{name}/versions",
            C::Delete { .. } => "/certificates/{name}",
            C::ListDeleted => "/deletedcertificates",
            C::GetDeleted { .. } | C::Purge { .. } => "/deletedcertificates/{name}",
            C::Recover { .. } => "/deletedcertificates/{name}/recover",
            C::Backup { .. } => "/certificates/{name}/backup",
            C::Restore => "/certificates/restore",
            C::GetPolicy { .. } | C::UpdatePolicy { .. } => "/certificates/{name}/policy",
            C::GetPending { .. } | C::UpdatePending { .. } | C::DeletePending { .. } => {
                "/certificates/{name}/pending"
            }
            C::Merge { .. } => "/certificates/{name}/pending/merge",
            C::ListIssuers => "/certificates/issuers",
            C::SetIssuer { .. }
            | C::GetIssuer { .. }
            | C::UpdateIssuer { .. }
            | C::DeleteIssuer { .. } => "/certificates/issuers/{issuer-name}",
            C::SetContacts | C::GetContacts | C::DeleteContacts => "/certificates/contacts",
            C::IssuingCa => "/enclava/certificates/ca",
        }
    }

    /// The operation name (Key Vault's operation ids).
    pub fn operation(&self) -> &'static str {
        use CertRoute as C;
        match self {
            C::Create { .. } => "CreateCertificate",
            C::Import { .. } => "ImportCertificate",
            C::Get { .. } => "GetCertificate",
            C::Update { .. } => "UpdateCertificate",
            C::List => "GetCertificates",
            C::Versions { .. } => "GetCertificateVersions",
            C::Delete { .. } => "DeleteCertificate",
            C::ListDeleted => "GetDeletedCertificates",
            C::GetDeleted { .. } => "GetDeletedCertificate",
            C::Purge { .. } => "PurgeDeletedCertificate",
            C::Recover { .. } => "RecoverDeletedCertificate",
            C::Backup { .. } => "BackupCertificate",
            C::Restore => "RestoreCertificate",
            C::GetPolicy { .. } => "GetCertificatePolicy",
            C::UpdatePolicy { .. } => "UpdateCertificatePolicy",
            C::GetPending { .. } => "GetCertificateOperation",
            C::UpdatePending { .. } => "UpdateCertificateOperation",
            C::DeletePending { .. } => "DeleteCertificateOperation",
            C::Merge { .. } => "MergeCertificate",
            C::ListIssuers => "GetCertificateIssuers",
            C::SetIssuer { .. } => "SetCertificateIssuer",
            C::GetIssuer { .. } => "GetCertificateIssuer",
            C::UpdateIssuer { .. } => "UpdateCertificateIssuer",
            C::DeleteIssuer { .. } => "DeleteCertificateIssuer",
            C::SetContacts => "SetCertificateContacts",
            C::GetContacts => "GetCertificateContacts",
            C::DeleteContacts => "DeleteCertificateContacts",
            C::IssuingCa => "GetCertificateIssuingCa",
        }
    }

    /// Key Vault data-plane routes (api-version, unsealed vault, bearer token): all but the CA.
    pub fn is_data(&self) -> bool {
        !matches!(self, CertRoute::IssuingCa)
    }

    /// The certificate name (or issuer name) the request is about, and its version (for audit).
    pub fn object(&self) -> (Option<&str>, Option<&str>) {
        use CertRoute as C;
        match self {
            C::Get { name, version } | C::Update { name, version } => {
                (Some(name), version.as_deref())
            }
            C::Create { name }
            | C::Import { name }
            | C::Versions { name }
            | C::Delete { name }
            | C::GetDeleted { name }
            | C::Purge { name }
            | C::Recover { name }
            | C::Backup { name }
            | C::GetPolicy { name }
            | C::UpdatePolicy { name }
            | C::GetPending { name }
            | C::UpdatePending { name }
            | C::DeletePending { name }
            | C::Merge { name } => (Some(name), None),
            _ => (None, None),
        }
    }

    /// The audit object: `certificates/{name}`, `certificates/issuers/{name}`,
    /// `certificates/contacts`, or empty.
    pub fn audit_object(&self) -> String {
        use CertRoute as C;
        match self {
            C::SetIssuer { name }
            | C::GetIssuer { name }
            | C::UpdateIssuer { name }
            | C::DeleteIssuer { name } => format!("certificates/issuers/{name}"),
            C::SetContacts | C::GetContacts | C::DeleteContacts => "certificates/contacts".into(),
            _ => match self.object().0 {
                Some(n) => format!("certificates/{n}"),
                None => String::new(),
            },
        }
    }

    /// The action and resource authorization decides on (`None`: the public CA certificate).
    pub fn permission(&self) -> Option<(Action, Resource)> {
        use Action as A;
        use CertRoute as C;
        let cert = |n: &String| Resource::Certificate(n.clone());
        Some(match self {
            C::Create { name } => (A::CertCreate, cert(name)),
            C::Import { name } => (A::CertImport, cert(name)),
            C::Get { name, .. } => (A::CertGet, cert(name)),
            C::Update { name, .. } => (A::CertUpdate, cert(name)),
            C::List => (A::CertList, Resource::Vault),
            C::Versions { name } => (A::CertListVersions, cert(name)),
            C::Delete { name } => (A::CertDelete, cert(name)),
            C::ListDeleted => (A::CertListDeleted, Resource::Vault),
            C::GetDeleted { name } => (A::CertGetDeleted, cert(name)),
            C::Purge { name } => (A::CertPurge, cert(name)),
            C::Recover { name } => (A::CertRecover, cert(name)),
            C::Backup { name } => (A::CertBackup, cert(name)),
            C::Restore => (A::CertRestore, Resource::Vault),
            C::GetPolicy { name } => (A::CertPolicyGet, cert(name)),
            C::UpdatePolicy { name } => (A::CertPolicySet, cert(name)),
            C::GetPending { name } => (A::CertPendingGet, cert(name)),
            C::UpdatePending { name } | C::DeletePending { name } => {
                (A::CertPendingUpdate, cert(name))
            }
            C::Merge { name } => (A::CertMerge, cert(name)),
            C::ListIssuers | C::GetIssuer { .. } => (A::CertIssuersGet, Resource::Vault),
            C::SetIssuer { .. } | C::UpdateIssuer { .. } | C::DeleteIssuer { .. } => {
                (A::CertIssuersManage, Resource::Vault)
            }
            C::GetContacts => (A::CertContactsGet, Resource::Vault),
            C::SetContacts | C::DeleteContacts => (A::CertContactsManage, Resource::Vault),
            C::IssuingCa => return None,
        })
    }

    /// The usual success status (the status the audit entry committed with a change records).
    pub fn success_status(&self) -> u16 {
        match self {
            CertRoute::Create { .. } => 202,
            CertRoute::Merge { .. } => 201,
            CertRoute::Purge { .. } => 204,
            _ => 200,
        }
    }
}

fn cert_name(n: &str) -> Result<(), ApiError> {
    validate_name("certificate", n).map_err(ApiError::bad_parameter)?;
    if enclava_vault::certificates::RESERVED_NAMES.contains(&n) {
        return Err(ApiError::bad_parameter(format!(
            "invalid certificate name {n:?}: \"issuers\" and \"contacts\" name the certificate \
             issuers and contacts routes; expected any other name"
        )));
    }
    Ok(())
}

fn issuer_name(n: &str) -> Result<(), ApiError> {
    validate_name("issuer", n).map_err(ApiError::bad_parameter)
}

/// The issuing CA for a create / renewal whose policy names issuer `Enclava`: 503 while it is not
/// open (the server's state, not the client's mistake).
fn issuing_ca_for(
    st: &AppState,
    policy: Option<&CertificatePolicy>,
) -> Result<Option<std::sync::Arc<enclava_vault::IssuingCa>>, ApiError> {
    let wants_enclava = policy
        .and_then(|p| p.issuer.as_ref())
        .and_then(|i| i.name.as_deref())
        .is_some_and(|n| n.eq_ignore_ascii_case("Enclava"));
    let ca = st.lifecycle.issuing_ca();
    if wants_enclava && ca.is_none() {
        return Err(crate::service_keys::unavailable(
            "the certificate issuing CA is unavailable (see the server log): issuer Enclava cannot sign now",
        ));
    }
    Ok(ca)
}

/// Run one certificate data-plane route (authenticated and authorized already).
pub fn handle(
    st: &AppState,
    route: &CertRoute,
    paging: &Paging,
    body: &[u8],
    link: &LinkCtx<'_>,
) -> Result<Reply, ApiError> {
    use CertRoute as C;
    use data::Lifecycle as L;
    let v: &Vault = &st.vault;
    let life = |op: L<'_>| data::lifecycle::<Certificates>(v, op, paging, body, link);
    match route {
        C::List => life(L::List),
        C::Versions { name } => {
            cert_name(name)?;
            life(L::Versions(name))
        }
        C::Delete { name } => {
            cert_name(name)?;
            life(L::Delete(name))
        }
        C::ListDeleted => life(L::ListDeleted),
        C::GetDeleted { name } => life(L::GetDeleted(name)),
        C::Purge { name } => life(L::Purge(name)),
        C::Recover { name } => life(L::Recover(name)),
        C::Backup { name } => {
            cert_name(name)?;
            life(L::Backup(name))
        }
        C::Restore => life(L::Restore),
        C::Create { name } => {
            cert_name(name)?;
            let p: CertificateCreateParameters = decode(body)?;
            let ca = issuing_ca_for(st, p.policy.as_ref())?;
            let mut op = Certificates::create(v, name, &p, ca.as_deref())?;
            // Key Vault's create always answers `inProgress`, whatever the issuer did: the SDKs'
            // pollers (azure-core) treat a finished first answer as "nothing to poll" and return
            // no certificate. The real status is the next `GET .../pending`.
            op.status = enclava_vault::certmodel::operation_status::IN_PROGRESS.to_string();
            op.target = None;
            op.error = None;
            Ok(Reply::json(&op)?.with_status(StatusCode::ACCEPTED))
        }
        C::Import { name } => {
            cert_name(name)?;
            let p: CertificateImportParameters = decode(body)?;
            Reply::json(&Certificates::import(v, name, &p)?)
        }
        C::Get { name, version } => {
            cert_name(name)?;
            version_ok("certificate", version)?;
            Reply::json(&Certificates::get(v, name, version.as_deref())?)
        }
        C::Update { name, version } => {
            cert_name(name)?;
            version_ok("certificate", version)?;
            let p: CertificateUpdateParameters = decode(body)?;
            Reply::json(&Certificates::update(v, name, version.as_deref(), &p)?)
        }
        C::GetPolicy { name } => {
            cert_name(name)?;
            Reply::json(&Certificates::get_policy(v, name)?)
        }
        C::UpdatePolicy { name } => {
            cert_name(name)?;
            let p: CertificatePolicy = decode(body)?;
            Reply::json(&Certificates::update_policy(v, name, &p)?)
        }
        C::GetPending { name } => {
            cert_name(name)?;
            Reply::json(&Certificates::get_operation(v, name)?)
        }
        C::UpdatePending { name } => {
            cert_name(name)?;
            let p: CertificateOperationUpdateParameter = decode(body)?;
            Reply::json(&Certificates::update_operation(v, name, &p)?)
        }
        C::DeletePending { name } => {
            cert_name(name)?;
            Reply::json(&Certificates::delete_operation(v, name)?)
        }
        C::Merge { name } => {
            cert_name(name)?;
            let p: CertificateMergeParameters = decode(body)?;
            Ok(Reply::json(&Certificates::merge(v, name, &p)?)?.with_status(StatusCode::CREATED))
        }
        C::ListIssuers => {
            let (mr, token) = (paging.max_results, paging.skip_token.as_deref());
            page_json(
                Certificates::list_issuers(v, mr, token)?,
                link,
                "/certificates/issuers",
                mr,
            )
        }
        C::SetIssuer { name } => {
            issuer_name(name)?;
            let p: CertificateIssuerSetParameters = decode(body)?;
            Reply::json(&Certificates::set_issuer(v, name, &p)?)
        }
        C::GetIssuer { name } => {
            issuer_name(name)?;
            Reply::json(&Certificates::get_issuer(v, name)?)
        }
        C::UpdateIssuer { name } => {
            issuer_name(name)?;
            let p: CertificateIssuerUpdateParameters = decode(body)?;
            Reply::json(&Certificates::update_issuer(v, name, &p)?)
        }
        C::DeleteIssuer { name } => {
            issuer_name(name)?;
            Reply::json(&Certificates::delete_issuer(v, name)?)
        }
        C::SetContacts => {
            let p: Contacts = decode(body)?;
            Reply::json(&Certificates::set_contacts(v, &p)?)
        }
        C::GetContacts => Reply::json(&Certificates::get_contacts(v)?),
        C::DeleteContacts => Reply::json(&Certificates::delete_contacts(v)?),
        C::IssuingCa => issuing_ca_pem(st),
    }
}

/// `GET /enclava/certificates/ca`: the issuing CA's certificate as PEM (public; nothing about its
/// key). 503 while the vault is sealed (the CA opens with the vault).
pub fn issuing_ca_pem(st: &AppState) -> Result<Reply, ApiError> {
    if st.vault.is_sealed() {
        return Err(ApiError::sealed());
    }
    let Some(ca) = st.lifecycle.issuing_ca() else {
        return Err(crate::service_keys::unavailable(
            "the certificate issuing CA is unavailable (see the server log)",
        ));
    };
    let pem = enclava_certs::pem::build(None, std::slice::from_ref(&ca.cert_der));
    Ok(Reply {
        status: StatusCode::OK,
        body: Some(pem.as_bytes().to_vec()),
        content_type: "application/x-pem-file",
    })
}

/// `GET /certificates` is both MAA's "policy management certificates" (the path router gives it
/// to attestation) and Key Vault's certificate listing: a Key Vault api-version makes it the
/// listing (see [`crate::attest::certificates_api`]).
pub fn key_vault_or_maa(
    routed: Result<Route, RouteError>,
    query: &[(String, String)],
) -> Result<Route, RouteError> {
    use crate::attest::{AttestRoute, CertOp, CertificatesApi, certificates_api};
    match routed {
        Ok(Route::Attest(AttestRoute::PolicyCertificates(CertOp::Get)))
            if certificates_api(query) == CertificatesApi::KeyVault =>
        {
            Ok(Route::Cert(CertRoute::List))
        }
        r => r,
    }
}

/// The `Location` of a create's operation (`/certificates/{name}/pending`).
pub fn pending_location(link: &LinkCtx<'_>, name: &str) -> String {
    let enc: String = form_urlencoded::byte_serialize(link.api_version.as_bytes()).collect();
    format!(
        "{}/certificates/{name}/pending?api-version={enc}",
        link.base_url
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Result<crate::route::Route, RouteError> {
        crate::route::route(&m, p)
    }

    fn c(m: Method, p: &str) -> Result<CertRoute, RouteError> {
        match r(m, p)? {
            crate::route::Route::Cert(c) => Ok(c),
            other => panic!("{p} routed to {other:?}"),
        }
    }

    #[test]
    fn certificate_paths_route() {
        use CertRoute as C;
        let n = |s: &str| s.to_string();
        assert_eq!(
            c(Method::POST, "/certificates/a/create"),
            Ok(C::Create { name: n("a") })
        );
        assert_eq!(
            c(Method::GET, "/certificates/a/"),
            Ok(C::Get {
                name: n("a"),
                version: None
            })
        );
        assert_eq!(
            c(Method::PATCH, "/certificates/a/0123"),
            Ok(C::Update {
                name: n("a"),
                version: Some(n("0123"))
            })
        );
        assert_eq!(c(Method::GET, "/certificates/"), Ok(C::List));
        // `GET /certificates` is MAA's unless the api-version is Key Vault's.
        let qv = |v: &str| vec![("api-version".to_string(), v.to_string())];
        let list = |v: &str| key_vault_or_maa(r(Method::GET, "/certificates"), &qv(v));
        for v in ["7.6", "2025-07-01", "2026-04-01"] {
            assert_eq!(list(v), Ok(crate::route::Route::Cert(C::List)), "{v}");
        }
        for v in ["2020-10-01", "2022-08-01"] {
            assert!(matches!(list(v), Ok(crate::route::Route::Attest(_))), "{v}");
        }
        assert!(matches!(
            key_vault_or_maa(r(Method::GET, "/certificates"), &[]),
            Ok(crate::route::Route::Attest(_))
        ));
        assert_eq!(c(Method::POST, "/certificates/restore"), Ok(C::Restore));
        assert_eq!(
            c(Method::POST, "/certificates/a/pending/merge"),
            Ok(C::Merge { name: n("a") })
        );
        assert_eq!(
            c(Method::DELETE, "/certificates/a/pending"),
            Ok(C::DeletePending { name: n("a") })
        );
        // issuers and contacts before {name}.
        assert_eq!(c(Method::GET, "/certificates/issuers"), Ok(C::ListIssuers));
        assert_eq!(
            c(Method::PUT, "/certificates/issuers/x"),
            Ok(C::SetIssuer { name: n("x") })
        );
        assert_eq!(c(Method::GET, "/certificates/contacts"), Ok(C::GetContacts));
        assert_eq!(
            c(Method::POST, "/certificates/contacts"),
            Err(RouteError::MethodNotAllowed {
                allowed: "GET, PUT, DELETE"
            })
        );
        assert_eq!(
            c(Method::GET, "/certificates/a/create"),
            Err(RouteError::MethodNotAllowed { allowed: "POST" })
        );
        assert_eq!(
            c(Method::POST, "/deletedcertificates/a/recover"),
            Ok(C::Recover { name: n("a") })
        );
        assert_eq!(
            c(Method::DELETE, "/deletedcertificates/a"),
            Ok(C::Purge { name: n("a") })
        );
        assert_eq!(
            c(Method::GET, "/certificates/a/b/c"),
            Err(RouteError::NotFound)
        );
        assert_eq!(c(Method::GET, "/enclava/certificates/ca"), Ok(C::IssuingCa));
        assert!(!C::IssuingCa.is_data());
        assert!(C::IssuingCa.permission().is_none());
        assert!(C::List.is_data());
    }
}
