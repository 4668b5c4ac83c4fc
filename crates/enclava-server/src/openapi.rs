//! The OpenAPI 3.1 document of the server (`GET /openapi.json`), generated from one table.
//!
//! [`OPERATIONS`] lists every documented (method, path) with its operation id, its auth and the
//! [`Route::operation`](crate::route::Route::operation) the matcher gives it. The tests of this
//! module keep the table and the matchers ([`crate::route::route`], [`crate::attest::route`]) in
//! step both ways: every documented path must route to its operation (with the permission
//! [`crate::app::required_permission`] demands), and every request the matchers accept, over a
//! path vocabulary taken from the matchers' own source, must land on a documented operation. So a
//! route added without a line here fails a test.
//!
//! The document is built per request from constants (bounded, no state, no secrets): the only
//! input is the server's public base URL.

use serde_json::{Map, Value, json};

/// How an operation is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    Anonymous,
    /// A bearer access token whose roles grant this permission (an RBAC action name).
    Bearer(&'static str),
    /// Attestation: anonymous unless `attestation.require_token`; a request with
    /// `draftPolicyForAttestation` needs `policies/manage`.
    AttestOptional,
    /// `Authorization: Bearer <DATA_DIR/init.token>`, the one-time init token.
    InitToken,
    /// OAuth2 client credentials in the form body (the token endpoint itself).
    ClientCredentials,
    /// `X-IDENTITY-HEADER: <identity secret>` (managed identity endpoint).
    IdentityHeader,
}

/// One documented operation. Build with [`op`] and the builder methods, one line per entry.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    /// The OpenAPI path template (placeholders `{name}`, `{version}`, `{tenant}`, `{id}`,
    /// `{type}`, `{scope}`).
    pub path: &'static str,
    /// The OpenAPI `operationId` (unique in the document).
    pub id: &'static str,
    /// What [`crate::route::Route::operation`] says for it (the metrics/audit operation label);
    /// equal to `id` unless several paths share one operation.
    pub route_op: &'static str,
    pub auth: Auth,
    pub summary: &'static str,
    /// Request body schema (a name in `components.schemas`).
    pub body: Option<&'static str>,
    /// Success status and response schema (`None`: no body).
    pub ok: (u16, Option<&'static str>),
    /// Extra query parameters (names in `components.parameters`).
    pub query: &'static [&'static str],
}

/// A documented operation whose `operationId` is the route operation, answering 200 JSON.
pub const fn op(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    auth: Auth,
    summary: &'static str,
) -> Operation {
    Operation {
        method,
        path,
        id,
        route_op: id,
        auth,
        summary,
        body: None,
        ok: (200, None),
        query: &[],
    }
}

impl Operation {
    /// The route operation, when it differs from the operation id (aliases, shared operations).
    pub const fn route_op(mut self, route_op: &'static str) -> Self {
        self.route_op = route_op;
        self
    }
    pub const fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }
    /// 200 with this response schema.
    pub const fn out(mut self, schema: &'static str) -> Self {
        self.ok = (200, Some(schema));
        self
    }
    /// Another success status (201 with a schema, 204 without).
    pub const fn status(mut self, status: u16, schema: Option<&'static str>) -> Self {
        self.ok = (status, schema);
        self
    }
    pub const fn query(mut self, names: &'static [&'static str]) -> Self {
        self.query = names;
        self
    }
}

use Auth::{
    Anonymous as Anon, AttestOptional as Attest, Bearer, ClientCredentials, IdentityHeader,
    InitToken,
};

const PAGED: &[&str] = &["maxresults", "skiptoken"];
const PAGED_PENDING: &[&str] = &["maxresults", "skiptoken", "includePending"];
const ADMIN_PAGED: &[&str] = &["after", "limit"];
const SCOPE: &[&str] = &["scope"];

/// Every documented operation. Adding a route to a matcher without a line here fails
/// `openapi::tests::every_routed_request_is_documented`.
///
#[rustfmt::skip]
pub const OPERATIONS: &[Operation] = &[
    // health and this document
    op("GET", "/healthz", "Healthz", Anon, "Liveness: 200 while the process serves"),
    op("GET", "/readyz", "Readyz", Anon, "Readiness: 200 when the database answers and the vault is unsealed, else 503"),
    op("GET", "/metrics", "Metrics", Anon, "Prometheus/OpenMetrics text"),
    op("GET", "/openapi.json", "GetOpenApiDocument", Anon, "This OpenAPI document"),
    // identity
    op("POST", "/oauth2/token", "GetToken", ClientCredentials, "Access token (client credentials)").body("TokenRequest").out("TokenResponse"),
    op("POST", "/oauth2/v2.0/token", "GetTokenV2", ClientCredentials, "Access token (client credentials), v2.0 path").route_op("GetToken").body("TokenRequest").out("TokenResponse"),
    op("POST", "/{tenant}/oauth2/v2.0/token", "GetTenantToken", ClientCredentials, "Access token (client credentials), MSAL path").route_op("GetToken").body("TokenRequest").out("TokenResponse"),
    op("POST", "/{tenant}/oauth2/token", "GetTenantTokenV1", ClientCredentials, "Access token (client credentials), v1 path").route_op("GetToken").body("TokenRequest").out("TokenResponse"),
    op("GET", "/metadata/identity/oauth2/token", "GetManagedIdentityToken", IdentityHeader, "Managed identity token (azure-identity IDENTITY_ENDPOINT)").query(&["resource", "client_id"]).out("ManagedIdentityTokenResponse"),
    op("POST", "/metadata/identity/oauth2/token", "PostManagedIdentityToken", IdentityHeader, "Managed identity token (POST form)").route_op("GetManagedIdentityToken").query(&["resource", "client_id"]).out("ManagedIdentityTokenResponse"),
    op("GET", "/v2.0/.well-known/openid-configuration", "GetOpenIdConfiguration", Anon, "OpenID discovery of the access-token issuer").out("OpenIdConfiguration"),
    op("GET", "/{tenant}/v2.0/.well-known/openid-configuration", "GetTenantOpenIdConfiguration", Anon, "OpenID discovery of the access-token issuer (MSAL)").route_op("GetOpenIdConfiguration").out("OpenIdConfiguration"),
    op("GET", "/{tenant}/.well-known/openid-configuration", "GetTenantOpenIdConfigurationV1", Anon, "OpenID discovery of the access-token issuer, v1 path").route_op("GetOpenIdConfiguration").out("OpenIdConfiguration"),
    op("GET", "/{tenant}/discovery/v2.0/keys", "GetJwks", Anon, "Access-token signer keys").out("Jwks"),
    op("GET", "/discovery/v2.0/keys", "GetJwksDefault", Anon, "Access-token signer keys (no tenant)").route_op("GetJwks").out("Jwks"),
    op("GET", "/.well-known/jwks.json", "GetJwksWellKnown", Anon, "Access-token signer keys (well-known path)").route_op("GetJwks").out("Jwks"),
    // operator
    op("POST", "/operator/init", "OperatorInit", InitToken, "Initialize the vault: unseal shares, shown once").body("InitRequest").out("InitResponse"),
    op("POST", "/operator/unseal", "OperatorUnseal", Anon, "Give one unseal share").body("UnsealRequest").out("SealStatus"),
    op("POST", "/operator/seal", "OperatorSeal", Bearer("operator/seal"), "Seal the vault").out("SealStatus"),
    op("GET", "/operator/status", "OperatorStatus", Anon, "Initialization and seal state").out("SealStatus"),
    // native administration
    op("GET", "/enclava/principals", "ListPrincipals", Bearer("principals/manage"), "List principals").query(ADMIN_PAGED).out("PrincipalList"),
    op("POST", "/enclava/principals", "CreatePrincipal", Bearer("principals/manage"), "Create a principal (its secret is shown once)").body("PrincipalCreate").status(201, Some("PrincipalCreated")),
    op("GET", "/enclava/principals/{id}", "GetPrincipal", Bearer("principals/manage"), "Get a principal").out("Principal"),
    op("DELETE", "/enclava/principals/{id}", "DeletePrincipal", Bearer("principals/manage"), "Delete a principal").status(204, None),
    op("GET", "/enclava/role-assignments", "ListRoleAssignments", Bearer("roles/manage"), "List role assignments").query(&["principal", "after", "limit"]).out("RoleAssignmentList"),
    op("POST", "/enclava/role-assignments", "CreateRoleAssignment", Bearer("roles/manage"), "Assign a role at a scope").body("RoleAssignmentCreate").status(201, Some("RoleAssignment")),
    op("GET", "/enclava/role-assignments/{id}", "GetRoleAssignment", Bearer("roles/manage"), "Get a role assignment").out("RoleAssignment"),
    op("DELETE", "/enclava/role-assignments/{id}", "DeleteRoleAssignment", Bearer("roles/manage"), "Delete a role assignment").status(204, None),
    op("GET", "/enclava/audit", "ReadAudit", Bearer("audit/read"), "Read the audit log").query(&["from", "limit"]).out("AuditPage"),
    op("GET", "/enclava/audit/verify", "VerifyAudit", Bearer("audit/read"), "Verify the audit chain and the signed head").out("AuditVerification"),
    op("POST", "/enclava/audit/verify", "VerifyAuditPost", Bearer("audit/read"), "Verify the audit chain and the signed head (POST)").route_op("VerifyAudit").out("AuditVerification"),
    // Key Vault keys
    op("GET", "/keys", "GetKeys", Bearer("keys/list"), "List keys").query(PAGED).out("KeyListResult"),
    op("POST", "/keys/{name}/create", "CreateKey", Bearer("keys/create"), "Create a key (or a new version)").body("KeyCreateParameters").out("KeyBundle"),
    op("PUT", "/keys/{name}", "ImportKey", Bearer("keys/import"), "Import a key (JWK)").body("KeyImportParameters").out("KeyBundle"),
    op("GET", "/keys/{name}", "GetKeyLatest", Bearer("keys/get"), "Get the latest version of a key").route_op("GetKey").out("KeyBundle"),
    op("GET", "/keys/{name}/{version}", "GetKey", Bearer("keys/get"), "Get a key version (empty version: latest)").out("KeyBundle"),
    op("PATCH", "/keys/{name}", "UpdateKeyLatest", Bearer("keys/update"), "Update the latest version of a key").route_op("UpdateKey").body("KeyUpdateParameters").out("KeyBundle"),
    op("PATCH", "/keys/{name}/{version}", "UpdateKey", Bearer("keys/update"), "Update a key version").body("KeyUpdateParameters").out("KeyBundle"),
    op("DELETE", "/keys/{name}", "DeleteKey", Bearer("keys/delete"), "Delete a key (soft delete)").out("DeletedKeyBundle"),
    op("GET", "/keys/{name}/versions", "GetKeyVersions", Bearer("keys/versions/list"), "List the versions of a key").query(PAGED).out("KeyListResult"),
    op("POST", "/keys/{name}/backup", "BackupKey", Bearer("keys/backup"), "Back up a key (protected blob)").out("BackupBlob"),
    op("POST", "/keys/restore", "RestoreKey", Bearer("keys/restore"), "Restore a key backup").body("BackupBlob").out("KeyBundle"),
    op("POST", "/keys/{name}/rotate", "RotateKey", Bearer("keys/rotate"), "Create a new version now").out("KeyBundle"),
    op("GET", "/keys/{name}/rotationpolicy", "GetKeyRotationPolicy", Bearer("keys/rotationpolicy/get"), "Get the rotation policy").out("KeyRotationPolicy"),
    op("PUT", "/keys/{name}/rotationpolicy", "UpdateKeyRotationPolicy", Bearer("keys/rotationpolicy/set"), "Set the rotation policy").body("KeyRotationPolicy").out("KeyRotationPolicy"),
    op("POST", "/keys/{name}/{version}/encrypt", "Encrypt", Bearer("keys/encrypt"), "Encrypt (empty version: latest)").body("KeyOperationsParameters").out("KeyOperationResult"),
    op("POST", "/keys/{name}/{version}/decrypt", "Decrypt", Bearer("keys/decrypt"), "Decrypt (empty version: latest)").body("KeyOperationsParameters").out("KeyOperationResult"),
    op("POST", "/keys/{name}/{version}/wrapkey", "WrapKey", Bearer("keys/wrapkey"), "Wrap a key (empty version: latest)").body("KeyOperationsParameters").out("KeyOperationResult"),
    op("POST", "/keys/{name}/{version}/unwrapkey", "UnwrapKey", Bearer("keys/unwrapkey"), "Unwrap a key (empty version: latest)").body("KeyOperationsParameters").out("KeyOperationResult"),
    op("POST", "/keys/{name}/{version}/sign", "Sign", Bearer("keys/sign"), "Sign a digest (empty version: latest)").body("KeySignParameters").out("KeyOperationResult"),
    op("POST", "/keys/{name}/{version}/verify", "Verify", Bearer("keys/verify"), "Verify a signature (empty version: latest)").body("KeyVerifyParameters").out("KeyVerifyResult"),
    op("POST", "/keys/{name}/{version}/release", "Release", Bearer("keys/release"), "Secure key release against an attestation token").body("KeyReleaseParameters").out("KeyReleaseResult"),
    op("POST", "/keys/{name}/release", "ReleaseLatest", Bearer("keys/release"), "Secure key release of the latest version").route_op("Release").body("KeyReleaseParameters").out("KeyReleaseResult"),
    op("GET", "/keys/{name}/{version}/attestation", "GetKeyAttestation", Bearer("keys/get"), "Key attestation (501 NotImplemented in this version)").out("KeyBundle"),
    op("GET", "/keys/{name}/attestation", "GetKeyAttestationLatest", Bearer("keys/get"), "Key attestation of the latest version (501 until implemented)").route_op("GetKeyAttestation"),
    op("GET", "/deletedkeys", "GetDeletedKeys", Bearer("deletedkeys/list"), "List deleted keys").query(PAGED).out("DeletedKeyListResult"),
    op("GET", "/deletedkeys/{name}", "GetDeletedKey", Bearer("deletedkeys/get"), "Get a deleted key").out("DeletedKeyBundle"),
    op("DELETE", "/deletedkeys/{name}", "PurgeDeletedKey", Bearer("deletedkeys/purge"), "Purge a deleted key").status(204, None),
    op("POST", "/deletedkeys/{name}/recover", "RecoverDeletedKey", Bearer("deletedkeys/recover"), "Recover a deleted key").out("KeyBundle"),
    op("POST", "/rng", "GetRandomBytes", Bearer("rng"), "Random bytes (1-1024)").body("GetRandomBytesRequest").out("RandomBytes"),
    // Key Vault secrets
    op("GET", "/secrets", "GetSecrets", Bearer("secrets/list"), "List secrets").query(PAGED).out("SecretListResult"),
    op("PUT", "/secrets/{name}", "SetSecret", Bearer("secrets/set"), "Set a secret (a new version)").body("SecretSetParameters").out("SecretBundle"),
    op("GET", "/secrets/{name}", "GetSecretLatest", Bearer("secrets/get"), "Get the latest version of a secret").route_op("GetSecret").out("SecretBundle"),
    op("GET", "/secrets/{name}/{version}", "GetSecret", Bearer("secrets/get"), "Get a secret version (empty version: latest)").out("SecretBundle"),
    op("PATCH", "/secrets/{name}", "UpdateSecretLatest", Bearer("secrets/update"), "Update the latest version of a secret").route_op("UpdateSecret").body("SecretUpdateParameters").out("SecretBundle"),
    op("PATCH", "/secrets/{name}/{version}", "UpdateSecret", Bearer("secrets/update"), "Update a secret version").body("SecretUpdateParameters").out("SecretBundle"),
    op("DELETE", "/secrets/{name}", "DeleteSecret", Bearer("secrets/delete"), "Delete a secret (soft delete)").out("DeletedSecretBundle"),
    op("GET", "/secrets/{name}/versions", "GetSecretVersions", Bearer("secrets/versions/list"), "List the versions of a secret").query(PAGED).out("SecretListResult"),
    op("POST", "/secrets/{name}/backup", "BackupSecret", Bearer("secrets/backup"), "Back up a secret (protected blob)").out("BackupBlob"),
    op("POST", "/secrets/restore", "RestoreSecret", Bearer("secrets/restore"), "Restore a secret backup").body("BackupBlob").out("SecretBundle"),
    op("GET", "/deletedsecrets", "GetDeletedSecrets", Bearer("deletedsecrets/list"), "List deleted secrets").query(PAGED).out("DeletedSecretListResult"),
    op("GET", "/deletedsecrets/{name}", "GetDeletedSecret", Bearer("deletedsecrets/get"), "Get a deleted secret").out("DeletedSecretBundle"),
    op("DELETE", "/deletedsecrets/{name}", "PurgeDeletedSecret", Bearer("deletedsecrets/purge"), "Purge a deleted secret").status(204, None),
    op("POST", "/deletedsecrets/{name}/recover", "RecoverDeletedSecret", Bearer("deletedsecrets/recover"), "Recover a deleted secret").out("SecretBundle"),
    // Key Vault certificates (each owns a key and a secret of the same name; see API.md)
    op("GET", "/certificates/", "GetCertificates", Bearer("certificates/list"), "List certificates (`GET /certificates` with a Key Vault api-version is the same operation; with an MAA api-version it is MAA's policy management certificates)").query(PAGED_PENDING).out("CertificateListResult"),
    op("POST", "/certificates/{name}/create", "CreateCertificate", Bearer("certificates/create"), "Create a certificate (a new version) from its policy: 202 with the operation (Self and Enclava complete at once; Location = the pending operation)").body("CertificateCreateParameters").status(202, Some("CertificateOperation")),
    op("POST", "/certificates/{name}/import", "ImportCertificate", Bearer("certificates/import"), "Import a certificate with its private key (base64 PFX with optional password, or PEM)").body("CertificateImportParameters").out("CertificateBundle"),
    op("GET", "/certificates/{name}", "GetCertificateLatest", Bearer("certificates/get"), "Get the latest version of a certificate (with its policy)").route_op("GetCertificate").out("CertificateBundle"),
    op("GET", "/certificates/{name}/{version}", "GetCertificate", Bearer("certificates/get"), "Get a certificate version (empty version: latest)").out("CertificateBundle"),
    op("PATCH", "/certificates/{name}", "UpdateCertificateLatest", Bearer("certificates/update"), "Update the latest version of a certificate (attributes, tags)").route_op("UpdateCertificate").body("CertificateUpdateParameters").out("CertificateBundle"),
    op("PATCH", "/certificates/{name}/{version}", "UpdateCertificate", Bearer("certificates/update"), "Update a certificate version (attributes, tags)").body("CertificateUpdateParameters").out("CertificateBundle"),
    op("DELETE", "/certificates/{name}", "DeleteCertificate", Bearer("certificates/delete"), "Delete a certificate with its key and secret (soft delete)").out("DeletedCertificateBundle"),
    op("GET", "/certificates/{name}/versions", "GetCertificateVersions", Bearer("certificates/versions/list"), "List the versions of a certificate").query(PAGED).out("CertificateListResult"),
    op("GET", "/certificates/{name}/policy", "GetCertificatePolicy", Bearer("certificates/policy/get"), "Get the policy of a certificate").out("CertificatePolicy"),
    op("PATCH", "/certificates/{name}/policy", "UpdateCertificatePolicy", Bearer("certificates/policy/set"), "Update the policy of a certificate (the given sections)").body("CertificatePolicy").out("CertificatePolicy"),
    op("GET", "/certificates/{name}/pending", "GetCertificateOperation", Bearer("certificates/pending/get"), "Get the create operation (status, CSR)").out("CertificateOperation"),
    op("PATCH", "/certificates/{name}/pending", "UpdateCertificateOperation", Bearer("certificates/pending/update"), "Request cancellation of the create operation").body("CertificateOperationUpdate").out("CertificateOperation"),
    op("DELETE", "/certificates/{name}/pending", "DeleteCertificateOperation", Bearer("certificates/pending/update"), "Delete the create operation").out("CertificateOperation"),
    op("POST", "/certificates/{name}/pending/merge", "MergeCertificate", Bearer("certificates/pending/merge"), "Merge the signed certificate chain (leaf first) into a CSR-flow operation: 201").body("CertificateMergeParameters").status(201, Some("CertificateBundle")),
    op("POST", "/certificates/{name}/backup", "BackupCertificate", Bearer("certificates/backup"), "Back up a certificate with its key and secret (protected blob)").out("BackupBlob"),
    op("POST", "/certificates/restore", "RestoreCertificate", Bearer("certificates/restore"), "Restore a certificate backup").body("BackupBlob").out("CertificateBundle"),
    op("GET", "/deletedcertificates", "GetDeletedCertificates", Bearer("deletedcertificates/list"), "List deleted certificates").query(PAGED).out("DeletedCertificateListResult"),
    op("GET", "/deletedcertificates/{name}", "GetDeletedCertificate", Bearer("deletedcertificates/get"), "Get a deleted certificate").out("DeletedCertificateBundle"),
    op("DELETE", "/deletedcertificates/{name}", "PurgeDeletedCertificate", Bearer("deletedcertificates/purge"), "Purge a deleted certificate with its key and secret").status(204, None),
    op("POST", "/deletedcertificates/{name}/recover", "RecoverDeletedCertificate", Bearer("deletedcertificates/recover"), "Recover a deleted certificate with its key and secret").out("CertificateBundle"),
    op("GET", "/certificates/issuers", "GetCertificateIssuers", Bearer("certificates/issuers/get"), "List certificate issuers").query(PAGED).out("CertificateIssuerListResult"),
    op("PUT", "/certificates/issuers/{issuer}", "SetCertificateIssuer", Bearer("certificates/issuers/manage"), "Create or replace a certificate issuer (the credentials' password is stored sealed, never returned)").body("CertificateIssuerSetParameters").out("IssuerBundle"),
    op("GET", "/certificates/issuers/{issuer}", "GetCertificateIssuer", Bearer("certificates/issuers/get"), "Get a certificate issuer").out("IssuerBundle"),
    op("PATCH", "/certificates/issuers/{issuer}", "UpdateCertificateIssuer", Bearer("certificates/issuers/manage"), "Update a certificate issuer").body("CertificateIssuerSetParameters").out("IssuerBundle"),
    op("DELETE", "/certificates/issuers/{issuer}", "DeleteCertificateIssuer", Bearer("certificates/issuers/manage"), "Delete a certificate issuer").out("IssuerBundle"),
    op("PUT", "/certificates/contacts", "SetCertificateContacts", Bearer("certificates/contacts/manage"), "Set the certificate contacts").body("Contacts").out("Contacts"),
    op("GET", "/certificates/contacts", "GetCertificateContacts", Bearer("certificates/contacts/get"), "Get the certificate contacts").out("Contacts"),
    op("DELETE", "/certificates/contacts", "DeleteCertificateContacts", Bearer("certificates/contacts/manage"), "Delete the certificate contacts").out("Contacts"),
    op("GET", "/enclava/certificates/ca", "GetCertificateIssuingCa", Anon, "The certificate of the vault's issuing CA (issuer Enclava), PEM; public, never its key; 503 while sealed"),
    // attestation (MAA-compatible and native)
    op("POST", "/attest/SevSnpVm", "AttestSevSnpVm", Attest, "Attest AMD SEV-SNP evidence (MAA shape)").query(SCOPE).body("MaaAttestRequest").out("AttestationResponse"),
    op("POST", "/attest/TdxVm", "AttestTdxVm", Attest, "Attest Intel TDX evidence (MAA shape)").query(SCOPE).body("MaaAttestRequest").out("AttestationResponse"),
    op("POST", "/attest/SgxEnclave", "AttestSgxEnclave", Attest, "Attest an SGX quote (MAA shape)").query(SCOPE).body("MaaAttestRequest").out("AttestationResponse"),
    op("POST", "/attest/OpenEnclave", "AttestOpenEnclave", Attest, "Attest an Open Enclave report (MAA shape)").query(SCOPE).body("MaaAttestRequest").out("AttestationResponse"),
    op("POST", "/attest/native", "AttestNative", Attest, "Attest evidence (native shape)").query(SCOPE).body("NativeAttestRequest").out("NativeAttestResponse"),
    // Confidential Containers KBS protocol (RCAR 0.4.0, see kbs.rs and docs/kbs.md)
    op("POST", "/kbs/v0/auth", "KbsAuth", Anon, "KBS handshake: a nonce and the kbs-session-id cookie"),
    op("POST", "/kbs/v0/attest", "KbsAttest", Anon, "KBS attestation with the session cookie: an attestation token"),
    op("GET", "/kbs/v0/resource/{repository}/{resource_type}/{tag}", "KbsGetResource", Anon, "A resource as a JWE to the tee-pubkey (attested cookie or Bearer attestation token)"),
    op("POST", "/kbs/v0/resource/{repository}/{resource_type}/{tag}", "KbsSetResource", Bearer("secrets/set"), "Upload a resource (raw bytes; a new version)"),
    op("PUT", "/kbs/v0/resource/{repository}/{resource_type}/{tag}", "KbsPutResource", Bearer("secrets/set"), "Upload a resource (raw bytes; a new version), PUT").route_op("KbsSetResource"),
    op("DELETE", "/kbs/v0/resource/{repository}/{resource_type}/{tag}", "KbsDeleteResource", Bearer("secrets/delete"), "Delete a resource (soft delete)").status(204, None),
    op("GET", "/kbs/v0/admin/resource/{repository}/{resource_type}/{tag}", "KbsAdminGetResource", Bearer("secrets/get"), "Read a resource's bytes (administration)"),
    op("GET", "/kbs/v0/admin/resources", "KbsListResources", Bearer("secrets/list"), "List resource paths"),
    op("GET", "/kbs/v0/resource-policy", "KbsGetResourcePolicy", Bearer("policies/manage"), "Get the resource policy of a prefix").query(&["prefix"]),
    op("POST", "/kbs/v0/resource-policy", "KbsSetResourcePolicy", Bearer("policies/manage"), "Set the resource policy of a prefix"),
    op("PUT", "/kbs/v0/resource-policy", "KbsPutResourcePolicy", Bearer("policies/manage"), "Set the resource policy of a prefix, PUT").route_op("KbsSetResourcePolicy"),
    op("POST", "/kbs/v0/admin/resource-policy/test", "KbsTestResourcePolicy", Bearer("policies/manage"), "Evaluate a resource policy for claims and a path"),
    op("GET", "/challenge", "GetChallenge", Attest, "A single-use nonce (5 min)").out("Challenge"),
    op("POST", "/challenge", "PostChallenge", Attest, "A single-use nonce (5 min), POST").route_op("GetChallenge").out("Challenge"),
    op("GET", "/certs", "GetAttestationCerts", Anon, "Attestation token signer keys (current first)").out("Jwks"),
    op("GET", "/.well-known/openid-configuration", "GetAttestationOpenIdMetadata", Anon, "OpenID discovery of the attestation token issuer").out("OpenIdConfiguration"),
    op("GET", "/policies/{type}", "GetPolicy", Bearer("policies/manage"), "Get the appraisal policy (MAA policy token)").out("PolicyResponse"),
    op("PUT", "/policies/{type}", "SetPolicy", Bearer("policies/manage"), "Set the appraisal policy (JWS, JSON or text)").body("PolicyUpload").out("PolicyResponse"),
    op("POST", "/policies/{type}:reset", "ResetPolicy", Bearer("policies/manage"), "Reset the policy to the default (signed in isolated mode)").body("PolicyUpload").out("PolicyResponse"),
    op("POST", "/policies/{type}:test", "TestPolicy", Bearer("policies/manage"), "Evaluate a draft policy (unsigned dry-run token)").body("PolicyTestRequest").out("PolicyTestResponse"),
    op("GET", "/policies/{type}/versions", "GetPolicyVersions", Bearer("policies/manage"), "Policy history").out("PolicyVersions"),
    op("GET", "/certificates", "GetPolicyManagementCertificates", Bearer("policies/manage"), "MAA policy management certificates (with an MAA api-version)").out("AttestationToken"),
    op("POST", "/certificates:add", "AddPolicyManagementCertificate", Bearer("policies/manage"), "Add a policy management certificate (signed JWS body)").body("SignedJws").out("AttestationToken"),
    op("POST", "/certificates:remove", "RemovePolicyManagementCertificate", Bearer("policies/manage"), "Remove a policy management certificate (signed JWS body)").body("SignedJws").out("AttestationToken"),
    op("GET", "/enclava/reference-values/{scope}", "ListReferenceValues", Bearer("policies/manage"), "Reference-value sets of a scope").out("ReferenceValueScope"),
    op("GET", "/enclava/reference-values/{scope}/{name}", "GetReferenceValues", Bearer("policies/manage"), "Get a reference-value set").out("ReferenceValueRecord"),
    op("PUT", "/enclava/reference-values/{scope}/{name}", "SetReferenceValues", Bearer("policies/manage"), "Set a reference-value set").body("ReferenceValues").out("ReferenceValueChange"),
    op("DELETE", "/enclava/reference-values/{scope}/{name}", "DeleteReferenceValues", Bearer("policies/manage"), "Delete a reference-value set").out("ReferenceValueChange"),
    op("GET", "/enclava/reference-values/{scope}/{name}/versions", "GetReferenceValueVersions", Bearer("policies/manage"), "History of a reference-value set").out("ReferenceValueVersions"),
    op("POST", "/enclava/attestation/rotate", "RotateAttestationSignerLegacy", Bearer("service-keys/rotate"), "Rotate the attestation token signer (older path)").route_op("RotateAttestationSigner").out("ServiceKeyRotation"),
    op("POST", "/enclava/service-keys/attestation/rotate", "RotateAttestationSigner", Bearer("service-keys/rotate"), "Rotate the attestation token signer").out("ServiceKeyRotation"),
    op("POST", "/enclava/service-keys/release/rotate", "RotateReleaseSigner", Bearer("service-keys/rotate"), "Rotate the secure key release signer").out("ServiceKeyRotation"),
];

/// The tag (document section) of a path.
fn tag(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "healthz" | "readyz" | "metrics" | "openapi.json" => "Health",
        "keys" | "deletedkeys" | "rng" => "Keys",
        "secrets" | "deletedsecrets" => "Secrets",
        // Key Vault certificates; `/certificates` itself and `/certificates:...` are MAA's.
        "certificates" | "deletedcertificates" if path != "/certificates" => "Certificates",
        "operator" => "Operator",
        "attest" | "challenge" | "certs" | "policies" | ".well-known"
            if !path.ends_with("jwks.json") =>
        {
            "Attestation"
        }
        // MAA policy management certificates (`/certificates`, `/certificates:add`, ...).
        c if c.starts_with("certificates") => "Attestation",
        "enclava" if path.starts_with("/enclava/reference-values") => "Attestation",
        "enclava" if path.starts_with("/enclava/service-keys") => "Attestation",
        "enclava" if path.starts_with("/enclava/attestation") => "Attestation",
        "enclava" => "Administration",
        _ => "Identity",
    }
}

/// Which error body the operation answers with.
fn error_schema(o: &Operation) -> &'static str {
    match (o.auth, tag(o.path)) {
        (Auth::ClientCredentials, _) => "OAuthError",
        (_, "Attestation") => "AttestationError",
        _ => "Error",
    }
}

/// Key Vault data-plane operations need `api-version`.
fn is_data(o: &Operation) -> bool {
    matches!(tag(o.path), "Keys" | "Secrets" | "Certificates")
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .flat_map(|seg| {
            // `{type}:reset` carries its placeholder before the action suffix.
            seg.strip_prefix('{')
                .and_then(|s| s.split_once('}'))
                .map(|(p, _)| p)
        })
        .collect()
}

fn param_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref(schema)}}
    })
}

fn operation_object(o: &Operation) -> Value {
    let mut params: Vec<Value> = path_params(o.path)
        .into_iter()
        .map(|p| param_ref(&format!("path-{p}")))
        .collect();
    if is_data(o) {
        params.push(param_ref("api-version"));
    } else if tag(o.path) == "Attestation" {
        params.push(param_ref("api-version-maa"));
    }
    params.extend(o.query.iter().map(|q| param_ref(q)));

    let err = error_schema(o);
    let mut responses = Map::new();
    let (status, schema) = o.ok;
    let ok = match (status, schema) {
        (_, Some(s)) => json!({
            "description": "success",
            "content": {"application/json": {"schema": schema_ref(s)}}
        }),
        (_, None) if o.path == "/metrics" => json!({
            "description": "metrics",
            "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}
        }),
        (204, None) => json!({"description": "done, no body"}),
        (_, None) => json!({
            "description": "success",
            "content": {"application/json": {"schema": {"type": "object"}}}
        }),
    };
    responses.insert(status.to_string(), ok);
    if o.path != "/healthz" && o.path != "/metrics" && o.path != "/openapi.json" {
        responses.insert(
            "400".into(),
            error_response("bad request (parameters, body, names)", err),
        );
    }
    match o.auth {
        Auth::Bearer(_) | Auth::InitToken | Auth::AttestOptional | Auth::IdentityHeader => {
            responses.insert(
                "401".into(),
                error_response(
                    "no or rejected credentials (WWW-Authenticate challenge)",
                    err,
                ),
            );
        }
        _ => {}
    }
    if let Auth::Bearer(_) | Auth::AttestOptional = o.auth {
        responses.insert(
            "403".into(),
            error_response("the caller's roles do not grant the permission", err),
        );
    }
    if o.path.contains("{name}") || o.path.contains("{id}") {
        responses.insert("404".into(), error_response("no such object", err));
    }
    if matches!(o.auth, Auth::ClientCredentials | Auth::IdentityHeader)
        || o.path.starts_with("/attest/")
        || o.path == "/challenge"
    {
        responses.insert(
            "429".into(),
            error_response("rate limited (Retry-After)", err),
        );
    }
    if !matches!(
        o.path,
        "/healthz" | "/metrics" | "/openapi.json" | "/operator/status" | "/operator/unseal"
    ) {
        responses.insert(
            "503".into(),
            error_response("vault sealed or a dependency unavailable", err),
        );
    }
    responses.insert("default".into(), error_response("error", err));

    let mut obj = json!({
        "operationId": o.id,
        "summary": o.summary,
        "tags": [tag(o.path)],
        "parameters": params,
        "responses": responses,
        "x-enclava-operation": o.route_op,
    });
    let security = match o.auth {
        Auth::Anonymous | Auth::ClientCredentials => json!([]),
        Auth::Bearer(p) => {
            obj["x-enclava-permission"] = json!(p);
            json!([{"bearer": []}])
        }
        // Anonymous by default; a token (when required, or for a draft policy) is a bearer token.
        Auth::AttestOptional => {
            obj["x-enclava-permission-draft"] = json!("policies/manage");
            json!([{}, {"bearer": []}])
        }
        Auth::InitToken => json!([{"initToken": []}]),
        Auth::IdentityHeader => json!([{"identityHeader": []}]),
    };
    obj["security"] = security;
    if let Some(b) = o.body {
        let content = if b == "TokenRequest" {
            json!({"application/x-www-form-urlencoded": {"schema": schema_ref(b)}})
        } else {
            json!({"application/json": {"schema": schema_ref(b)}})
        };
        obj["requestBody"] = json!({"required": true, "content": content});
    }
    obj
}

/// The OpenAPI 3.1 document, for a server reachable at `base_url`.
pub fn document(base_url: &str) -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let item = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        item[o.method.to_ascii_lowercase()] = operation_object(o);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Enclava",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Key Vault- and MAA-compatible routes, identity, operator and administration routes of an Enclava server. See API.md for behaviour.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "servers": [{"url": base_url}],
        "tags": [
            {"name": "Health"}, {"name": "Identity"}, {"name": "Operator"},
            {"name": "Administration"}, {"name": "Keys"}, {"name": "Secrets"},
            {"name": "Attestation"}, {"name": "Certificates"}
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "Access token from the token endpoint; the operation's x-enclava-permission must be granted by a role assignment"},
                "initToken": {"type": "http", "scheme": "bearer",
                    "description": "The one-time init token in DATA_DIR/init.token"},
                "identityHeader": {"type": "apiKey", "in": "header", "name": "X-IDENTITY-HEADER",
                    "description": "The managed identity secret"}
            },
            "parameters": parameters(),
            "schemas": schemas(),
        }
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"},
        "description": description})
}

fn query_param(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema,
        "description": description})
}

fn parameters() -> Value {
    json!({
        "path-name": path_param("name", "object name: 1-127 of [0-9A-Za-z-]"),
        "path-issuer": path_param("issuer", "certificate issuer name: 1-127 of [0-9A-Za-z-]"),
        "path-version": path_param("version", "32 hexadecimal characters; empty: the latest version"),
        "path-tenant": path_param("tenant", "any tenant string (letters, digits, '-', '_', '.')"),
        "path-id": path_param("id", "a principal or role assignment id"),
        "path-type": path_param("type", "snp, tdx, sgx, azure-snp, azure-tdx, sim, sample or an MAA type name (SevSnpVm, TdxVm, SgxEnclave, OpenEnclave)"),
        "path-scope": path_param("scope", "a reference-value scope"),
        "path-repository": path_param("repository", "KBS resource repository: 1-64 of [A-Za-z0-9._-]"),
        "path-resource_type": path_param("resource_type", "KBS resource type: 1-64 of [A-Za-z0-9._-]"),
        "path-tag": path_param("tag", "KBS resource tag: 1-64 of [A-Za-z0-9._-]"),
        "prefix": query_param("prefix", false, json!({"type": "string"}), "KBS resource-policy prefix: repository[/type[/tag]] (default: every path)"),
        "api-version": query_param("api-version", true, json!({"type": "string"}),
            "Key Vault API version (7.0 or later); missing: 400 MissingApiVersionParameter"),
        "api-version-maa": query_param("api-version", false, json!({"type": "string"}),
            "accepted and ignored on attestation routes"),
        "maxresults": query_param("maxresults", false, json!({"type": "integer", "minimum": 1, "maximum": 25}), "page size"),
        "includePending": query_param("includePending", false, json!({"type": "boolean"}), "also list certificates whose create is pending"),
        "skiptoken": query_param("$skiptoken", false, json!({"type": "string"}), "continuation from nextLink"),
        "after": query_param("after", false, json!({"type": "string"}), "continue after this id"),
        "limit": query_param("limit", false, json!({"type": "integer", "minimum": 1, "maximum": 1000}), "page size"),
        "principal": query_param("principal", false, json!({"type": "string"}), "only this principal's assignments"),
        "from": query_param("from", false, json!({"type": "integer", "minimum": 0}), "first sequence number"),
        "scope": query_param("scope", false, json!({"type": "string"}), "reference-value scope (default: default)"),
        "resource": query_param("resource", true, json!({"type": "string"}), "the resource the token is for"),
        "client_id": query_param("client_id", false, json!({"type": "string"}), "which managed identity"),
    })
}

/// An object schema with documented properties (the server's model types; unknown fields follow
/// the model's rules).
fn object(description: &str, props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    json!({"type": "object", "description": description, "properties": p, "required": required})
}

fn s() -> Value {
    json!({"type": "string"})
}
fn b64() -> Value {
    json!({"type": "string", "contentEncoding": "base64url"})
}
fn int() -> Value {
    json!({"type": "integer"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn obj() -> Value {
    json!({"type": "object"})
}
fn r(name: &str) -> Value {
    schema_ref(name)
}
fn list_of(item: &str) -> Value {
    object(
        "a page",
        &[
            ("value", json!({"type": "array", "items": r(item)})),
            ("nextLink", json!({"type": ["string", "null"]})),
        ],
        &["value"],
    )
}

fn schemas() -> Value {
    let jwk = object(
        "JSON Web Key (private members only on import)",
        &[
            ("kid", s()),
            ("kty", s()),
            ("key_ops", json!({"type": "array", "items": s()})),
            ("n", b64()),
            ("e", b64()),
            ("crv", s()),
            ("x", b64()),
            ("y", b64()),
        ],
        &[],
    );
    let key_attributes = object(
        "key attributes",
        &[
            ("enabled", boolean()),
            ("nbf", int()),
            ("exp", int()),
            ("created", int()),
            ("updated", int()),
            ("recoverableDays", int()),
            ("recoveryLevel", s()),
            ("exportable", boolean()),
        ],
        &[],
    );
    let secret_attributes = object(
        "secret attributes",
        &[
            ("enabled", boolean()),
            ("nbf", int()),
            ("exp", int()),
            ("created", int()),
            ("updated", int()),
            ("recoverableDays", int()),
            ("recoveryLevel", s()),
        ],
        &[],
    );
    let tags = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let release_policy = object(
        "key release policy",
        &[
            ("contentType", s()),
            ("immutable", boolean()),
            ("data", b64()),
        ],
        &[],
    );
    let key_bundle = object(
        "a key version",
        &[
            ("key", r("JsonWebKey")),
            ("attributes", r("KeyAttributes")),
            ("tags", tags.clone()),
            ("managed", boolean()),
            ("release_policy", r("KeyReleasePolicy")),
        ],
        &["key", "attributes"],
    );
    let deletion = [
        ("recoveryId", s()),
        ("deletedDate", int()),
        ("scheduledPurgeDate", int()),
    ];
    let mut deleted_key = key_bundle.clone();
    let mut deleted_secret_props = vec![
        ("value", s()),
        ("id", s()),
        ("contentType", s()),
        ("attributes", r("SecretAttributes")),
        ("tags", tags.clone()),
        ("kid", s()),
        ("managed", boolean()),
    ];
    for (k, v) in deletion.iter() {
        deleted_key["properties"][*k] = v.clone();
        deleted_secret_props.push((k, v.clone()));
    }
    deleted_key["description"] = json!("a deleted key");
    let error_body = object(
        "error details",
        &[
            ("code", s()),
            ("message", s()),
            ("innererror", object("inner error", &[("code", s())], &[])),
        ],
        &["code", "message"],
    );
    let list: Vec<(&str, Value)> = vec![
        (
            "Error",
            object("Key Vault error", &[("error", r("ErrorBody"))], &["error"]),
        ),
        ("ErrorBody", error_body),
        (
            "OAuthError",
            object(
                "OAuth2 error (token endpoints)",
                &[("error", s()), ("error_description", s())],
                &["error"],
            ),
        ),
        (
            "AttestationError",
            object(
                "attestation error (also header x-ms-error-code)",
                &[(
                    "error",
                    object(
                        "error",
                        &[
                            ("code", s()),
                            ("message", s()),
                            ("failed_check", s()),
                            (
                                "failed",
                                json!({"type": "array", "items": object("a failed rule", &[("rule", s()), ("claim_path", s()), ("expected", json!({})), ("found", json!({}))], &[])}),
                            ),
                        ],
                        &["code", "message"],
                    ),
                )],
                &["error"],
            ),
        ),
        (
            "TokenRequest",
            object(
                "form: client credentials",
                &[
                    ("grant_type", json!({"const": "client_credentials"})),
                    ("client_id", s()),
                    ("client_secret", s()),
                    ("scope", s()),
                    ("resource", s()),
                ],
                &["grant_type", "client_id", "client_secret"],
            ),
        ),
        (
            "TokenResponse",
            object(
                "access token",
                &[
                    ("access_token", s()),
                    ("token_type", s()),
                    ("expires_in", int()),
                    ("ext_expires_in", int()),
                ],
                &["access_token", "token_type", "expires_in"],
            ),
        ),
        (
            "ManagedIdentityTokenResponse",
            object(
                "managed identity token",
                &[
                    ("access_token", s()),
                    ("expires_in", s()),
                    ("expires_on", s()),
                    ("resource", s()),
                    ("token_type", s()),
                    ("client_id", s()),
                ],
                &["access_token"],
            ),
        ),
        (
            "OpenIdConfiguration",
            object(
                "OpenID discovery",
                &[("issuer", s()), ("jwks_uri", s()), ("token_endpoint", s())],
                &["issuer", "jwks_uri"],
            ),
        ),
        (
            "Jwks",
            object(
                "JSON Web Key Set",
                &[("keys", json!({"type": "array", "items": obj()}))],
                &["keys"],
            ),
        ),
        (
            "InitRequest",
            object(
                "init parameters",
                &[
                    (
                        "shares",
                        json!({"type": "integer", "minimum": 1, "maximum": 255}),
                    ),
                    (
                        "threshold",
                        json!({"type": "integer", "minimum": 1, "maximum": 255}),
                    ),
                ],
                &["shares", "threshold"],
            ),
        ),
        (
            "InitResponse",
            object(
                "unseal shares (shown once)",
                &[
                    ("shares", json!({"type": "array", "items": s()})),
                    ("threshold", int()),
                ],
                &["shares", "threshold"],
            ),
        ),
        (
            "UnsealRequest",
            object("one unseal share", &[("share", s())], &["share"]),
        ),
        (
            "SealStatus",
            object(
                "seal state",
                &[
                    ("initialized", boolean()),
                    ("sealed", boolean()),
                    ("progress", int()),
                    ("threshold", int()),
                    ("version", s()),
                    ("duplicate", boolean()),
                ],
                &["sealed"],
            ),
        ),
        (
            "Principal",
            object(
                "a principal",
                &[
                    ("id", s()),
                    ("kind", s()),
                    ("display_name", s()),
                    ("enabled", boolean()),
                    ("created", int()),
                ],
                &["id", "kind"],
            ),
        ),
        (
            "PrincipalCreate",
            object(
                "a new principal",
                &[
                    (
                        "kind",
                        json!({"enum": ["service_principal", "managed_identity", "external"]}),
                    ),
                    ("display_name", s()),
                    ("issuer", s()),
                    ("subject", s()),
                ],
                &["kind", "display_name"],
            ),
        ),
        (
            "PrincipalCreated",
            object(
                "the new principal and its secret (shown once)",
                &[
                    ("principal", r("Principal")),
                    ("client_id", s()),
                    ("client_secret", s()),
                    ("identity_secret", s()),
                ],
                &["principal"],
            ),
        ),
        (
            "PrincipalList",
            object(
                "principals",
                &[("value", json!({"type": "array", "items": r("Principal")}))],
                &["value"],
            ),
        ),
        (
            "RoleAssignmentCreate",
            object(
                "a role at a scope",
                &[("principal", s()), ("role", s()), ("scope", s())],
                &["principal", "role", "scope"],
            ),
        ),
        (
            "RoleAssignment",
            object(
                "a role assignment",
                &[
                    ("id", s()),
                    ("principal", s()),
                    ("role", s()),
                    ("scope", s()),
                    ("created", int()),
                ],
                &["id", "principal", "role", "scope"],
            ),
        ),
        (
            "RoleAssignmentList",
            object(
                "role assignments",
                &[(
                    "value",
                    json!({"type": "array", "items": r("RoleAssignment")}),
                )],
                &["value"],
            ),
        ),
        (
            "AuditPage",
            object(
                "audit entries",
                &[
                    ("value", json!({"type": "array", "items": obj()})),
                    ("head", int()),
                    ("nextFrom", json!({"type": ["integer", "null"]})),
                ],
                &["value"],
            ),
        ),
        (
            "AuditVerification",
            object(
                "audit chain verification",
                &[
                    ("ok", boolean()),
                    ("report", obj()),
                    ("signedHeadProblem", json!({"type": ["string", "null"]})),
                    ("checkpointPublicKey", s()),
                ],
                &["ok"],
            ),
        ),
        ("JsonWebKey", jwk),
        ("KeyAttributes", key_attributes),
        ("KeyReleasePolicy", release_policy),
        ("KeyBundle", key_bundle),
        ("DeletedKeyBundle", deleted_key),
        ("KeyListResult", list_of("KeyItem")),
        (
            "KeyItem",
            object(
                "a key in a list",
                &[
                    ("kid", s()),
                    ("attributes", r("KeyAttributes")),
                    ("tags", tags.clone()),
                    ("managed", boolean()),
                ],
                &["kid", "attributes"],
            ),
        ),
        ("DeletedKeyListResult", list_of("KeyItem")),
        (
            "KeyCreateParameters",
            object(
                "create a key",
                &[
                    (
                        "kty",
                        json!({"enum": ["EC", "EC-HSM", "RSA", "RSA-HSM", "oct", "oct-HSM"]}),
                    ),
                    ("key_size", int()),
                    ("public_exponent", int()),
                    ("key_ops", json!({"type": "array", "items": s()})),
                    ("attributes", r("KeyAttributes")),
                    ("tags", tags.clone()),
                    ("crv", s()),
                    ("release_policy", r("KeyReleasePolicy")),
                ],
                &["kty"],
            ),
        ),
        (
            "KeyImportParameters",
            object(
                "import a key",
                &[
                    ("Hsm", boolean()),
                    ("key", r("JsonWebKey")),
                    ("attributes", r("KeyAttributes")),
                    ("tags", tags.clone()),
                    ("release_policy", r("KeyReleasePolicy")),
                ],
                &["key"],
            ),
        ),
        (
            "KeyUpdateParameters",
            object(
                "update a key version",
                &[
                    ("key_ops", json!({"type": "array", "items": s()})),
                    ("attributes", r("KeyAttributes")),
                    ("tags", tags.clone()),
                    ("release_policy", r("KeyReleasePolicy")),
                ],
                &[],
            ),
        ),
        (
            "KeyOperationsParameters",
            object(
                "encrypt, decrypt, wrap, unwrap",
                &[
                    ("alg", s()),
                    ("value", b64()),
                    ("iv", b64()),
                    ("aad", b64()),
                    ("tag", b64()),
                ],
                &["alg", "value"],
            ),
        ),
        (
            "KeySignParameters",
            object(
                "sign a digest",
                &[("alg", s()), ("value", b64())],
                &["alg", "value"],
            ),
        ),
        (
            "KeyVerifyParameters",
            object(
                "verify a signature",
                &[("alg", s()), ("digest", b64()), ("value", b64())],
                &["alg", "digest", "value"],
            ),
        ),
        (
            "KeyOperationResult",
            object(
                "operation result",
                &[
                    ("kid", s()),
                    ("value", b64()),
                    ("iv", b64()),
                    ("tag", b64()),
                    ("aad", b64()),
                ],
                &["kid", "value"],
            ),
        ),
        (
            "KeyVerifyResult",
            object("verification result", &[("value", boolean())], &["value"]),
        ),
        (
            "KeyReleaseParameters",
            object(
                "secure key release",
                &[
                    (
                        "target",
                        json!({"type": "string", "description": "an attestation token from a trusted issuer"}),
                    ),
                    ("nonce", s()),
                    ("enc", s()),
                ],
                &["target"],
            ),
        ),
        (
            "KeyReleaseResult",
            object(
                "a JWS signed by the release signer (x5c: leaf, then ca.pem)",
                &[("value", s())],
                &["value"],
            ),
        ),
        (
            "KeyRotationPolicy",
            object(
                "rotation policy",
                &[
                    ("id", s()),
                    ("lifetimeActions", json!({"type": "array", "items": obj()})),
                    ("attributes", obj()),
                ],
                &[],
            ),
        ),
        (
            "GetRandomBytesRequest",
            object(
                "how many bytes",
                &[(
                    "count",
                    json!({"type": "integer", "minimum": 1, "maximum": 1024}),
                )],
                &["count"],
            ),
        ),
        (
            "RandomBytes",
            object("random bytes", &[("value", b64())], &["value"]),
        ),
        (
            "BackupBlob",
            object("a protected backup", &[("value", b64())], &["value"]),
        ),
        ("SecretAttributes", secret_attributes),
        (
            "SecretSetParameters",
            object(
                "set a secret",
                &[
                    ("value", s()),
                    ("tags", tags.clone()),
                    ("contentType", s()),
                    ("attributes", r("SecretAttributes")),
                ],
                &["value"],
            ),
        ),
        (
            "SecretUpdateParameters",
            object(
                "update a secret version",
                &[
                    ("contentType", s()),
                    ("attributes", r("SecretAttributes")),
                    ("tags", tags.clone()),
                ],
                &[],
            ),
        ),
        (
            "SecretBundle",
            object(
                "a secret version",
                &[
                    ("value", s()),
                    ("id", s()),
                    ("contentType", s()),
                    ("attributes", r("SecretAttributes")),
                    ("tags", tags.clone()),
                    ("kid", s()),
                    ("managed", boolean()),
                ],
                &["id", "attributes"],
            ),
        ),
        (
            "DeletedSecretBundle",
            object(
                "a deleted secret",
                &deleted_secret_props,
                &["id", "attributes"],
            ),
        ),
        (
            "SecretItem",
            object(
                "a secret in a list",
                &[
                    ("id", s()),
                    ("attributes", r("SecretAttributes")),
                    ("tags", tags),
                    ("contentType", s()),
                    ("managed", boolean()),
                ],
                &["id", "attributes"],
            ),
        ),
        ("SecretListResult", list_of("SecretItem")),
        ("DeletedSecretListResult", list_of("SecretItem")),
        (
            "MaaAttestRequest",
            object(
                "MAA attestation request",
                &[
                    ("report", s()),
                    ("quote", s()),
                    ("runtimeData", obj()),
                    ("initTimeData", obj()),
                    ("nonce", json!({"type": ["string", "number"]})),
                    ("draftPolicyForAttestation", s()),
                ],
                &[],
            ),
        ),
        (
            "AttestationResponse",
            object("an attestation token", &[("token", s())], &["token"]),
        ),
        (
            "NativeAttestRequest",
            object(
                "native attestation request",
                &[
                    (
                        "tee",
                        json!({"enum": ["snp", "tdx", "sgx", "azure-snp", "azure-tdx", "sim"]}),
                    ),
                    ("evidence", s()),
                    ("certs", json!({})),
                    ("crls", json!({})),
                    ("collateral", json!({})),
                    ("runtime_data", json!({})),
                    ("init_data", json!({})),
                    ("nonce", s()),
                ],
                &["tee", "evidence"],
            ),
        ),
        (
            "NativeAttestResponse",
            object(
                "native attestation answer",
                &[("token", s()), ("dry_run", boolean()), ("policy", obj())],
                &["token"],
            ),
        ),
        (
            "Challenge",
            object(
                "a single-use nonce",
                &[("nonce", s()), ("expires_at", int()), ("expires_in", int())],
                &["nonce"],
            ),
        ),
        (
            "PolicyUpload",
            json!({"description": "an MAA policy JWS (alg none, or RS256 with x5c), {\"policy\": TEXT}, or the policy text",
            "oneOf": [{"type": "string"}, object("policy JSON", &[("policy", s())], &["policy"])]}),
        ),
        (
            "PolicyResponse",
            object(
                "policy token and record",
                &[("token", s()), ("policy", obj()), ("change", obj())],
                &["token"],
            ),
        ),
        (
            "PolicyTestRequest",
            object(
                "draft policy test",
                &[("policy", s()), ("request", obj())],
                &["policy", "request"],
            ),
        ),
        (
            "PolicyTestResponse",
            object(
                "draft policy result (unsigned token)",
                &[
                    ("allowed", boolean()),
                    ("failed", json!({"type": "array", "items": obj()})),
                    ("claims", obj()),
                    ("token", s()),
                ],
                &["allowed"],
            ),
        ),
        (
            "PolicyVersions",
            object(
                "policy history",
                &[("value", json!({"type": "array", "items": obj()}))],
                &["value"],
            ),
        ),
        (
            "ReferenceValues",
            object(
                "a reference-value set (any JSON)",
                &[
                    ("measurements", json!({})),
                    ("min_tcb", json!({})),
                    ("signers", json!({})),
                    ("min_svn", json!({})),
                ],
                &[],
            ),
        ),
        (
            "ReferenceValueScope",
            object(
                "reference-value sets of a scope",
                &[("scope", s()), ("value", obj())],
                &["scope", "value"],
            ),
        ),
        ("ReferenceValueRecord", obj()),
        ("ReferenceValueChange", obj()),
        (
            "ReferenceValueVersions",
            object(
                "history",
                &[("value", json!({"type": "array", "items": obj()}))],
                &["value"],
            ),
        ),
        (
            "ServiceKeyRotation",
            object(
                "the new service key",
                &[
                    ("key", json!({"enum": ["attestation", "release"]})),
                    ("kid", s()),
                    ("jwks", r("Jwks")),
                    ("x5c", json!({"type": "array", "items": s()})),
                ],
                &["key", "kid"],
            ),
        ),
        (
            "CertificatePolicy",
            object(
                "certificate policy (Key Vault's CertificatePolicy; key_props.release_policy is Enclava's extension)",
                &[
                    ("id", s()),
                    ("key_props", obj()),
                    ("secret_props", obj()),
                    ("x509_props", obj()),
                    ("lifetime_actions", json!({"type": "array", "items": obj()})),
                    ("issuer", obj()),
                    ("attributes", obj()),
                ],
                &[],
            ),
        ),
        (
            "CertificateBundle",
            object(
                "a certificate version: ids of its certificate, key and secret, the DER (cer), thumbprint",
                &[
                    ("id", s()),
                    ("kid", s()),
                    ("sid", s()),
                    ("x5t", b64()),
                    ("cer", s()),
                    ("attributes", obj()),
                    ("tags", obj()),
                    ("policy", r("CertificatePolicy")),
                ],
                &["id"],
            ),
        ),
        (
            "DeletedCertificateBundle",
            object(
                "a deleted certificate",
                &[
                    ("id", s()),
                    ("recoveryId", s()),
                    ("deletedDate", int()),
                    ("scheduledPurgeDate", int()),
                    ("cer", s()),
                    ("attributes", obj()),
                ],
                &["id"],
            ),
        ),
        ("CertificateListResult", list_of("CertificateBundle")),
        (
            "DeletedCertificateListResult",
            list_of("DeletedCertificateBundle"),
        ),
        (
            "CertificateCreateParameters",
            object(
                "create parameters",
                &[
                    ("policy", r("CertificatePolicy")),
                    ("attributes", obj()),
                    ("tags", obj()),
                ],
                &[],
            ),
        ),
        (
            "CertificateImportParameters",
            object(
                "import parameters: value = base64 PFX or PEM text, pwd = the PFX password",
                &[
                    ("value", s()),
                    ("pwd", s()),
                    ("policy", r("CertificatePolicy")),
                    ("attributes", obj()),
                    ("tags", obj()),
                ],
                &["value"],
            ),
        ),
        (
            "CertificateUpdateParameters",
            object(
                "update parameters",
                &[
                    ("policy", r("CertificatePolicy")),
                    ("attributes", obj()),
                    ("tags", obj()),
                ],
                &[],
            ),
        ),
        (
            "CertificateMergeParameters",
            object(
                "the signed chain, leaf first (standard base64 DER)",
                &[
                    ("x5c", json!({"type": "array", "items": s()})),
                    ("attributes", obj()),
                    ("tags", obj()),
                ],
                &["x5c"],
            ),
        ),
        (
            "CertificateOperation",
            object(
                "the create operation",
                &[
                    ("id", s()),
                    ("issuer", obj()),
                    ("csr", s()),
                    ("cancellation_requested", boolean()),
                    (
                        "status",
                        json!({"enum": ["inProgress", "completed", "failed", "cancelled"]}),
                    ),
                    ("status_details", s()),
                    ("error", obj()),
                    ("target", s()),
                    ("request_id", s()),
                ],
                &["id", "status"],
            ),
        ),
        (
            "CertificateOperationUpdate",
            object(
                "cancel the operation",
                &[("cancellation_requested", boolean())],
                &["cancellation_requested"],
            ),
        ),
        (
            "CertificateIssuerSetParameters",
            object(
                "an issuer (the credentials' password is never returned)",
                &[
                    ("provider", s()),
                    ("credentials", obj()),
                    ("org_details", obj()),
                    ("attributes", obj()),
                ],
                &[],
            ),
        ),
        (
            "IssuerBundle",
            object(
                "an issuer",
                &[
                    ("id", s()),
                    ("provider", s()),
                    ("credentials", obj()),
                    ("org_details", obj()),
                    ("attributes", obj()),
                ],
                &["id"],
            ),
        ),
        ("CertificateIssuerListResult", list_of("IssuerBundle")),
        (
            "Contacts",
            object(
                "certificate contacts",
                &[
                    ("id", s()),
                    ("contacts", json!({"type": "array", "items": obj()})),
                ],
                &[],
            ),
        ),
        (
            "SignedJws",
            json!({"type": "string", "description": "a JWS signed by a policy management certificate (MAA isolated mode)"}),
        ),
        (
            "AttestationToken",
            object("an MAA-shaped token answer", &[("token", s())], &["token"]),
        ),
    ];
    Value::Object(list.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Route, RouteError, route};
    use axum::http::Method;
    use std::collections::{BTreeSet, HashSet};

    const VERSION: &str = "0123456789abcdef0123456789abcdef";
    const METHODS: [Method; 5] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];

    /// A concrete path for a documented template.
    pub(super) fn sample(path: &str) -> String {
        path.replace("{name}", "k1")
            .replace("{version}", VERSION)
            .replace("{tenant}", "t1")
            .replace("{id}", "p1")
            .replace("{type}", "SevSnpVm")
            .replace("{scope}", "default")
    }

    fn method(m: &str) -> Method {
        Method::from_bytes(m.as_bytes()).expect("table method")
    }

    /// (method, route template, route operation) of every documented operation, routed.
    fn documented() -> HashSet<(Method, &'static str, &'static str)> {
        OPERATIONS
            .iter()
            .map(|o| {
                let r = route(&method(o.method), &sample(o.path)).expect("documented routes");
                (method(o.method), r.template(), r.operation())
            })
            .collect()
    }

    #[test]
    fn every_documented_path_routes_to_its_operation_and_permission() {
        let mut ids = HashSet::new();
        let mut pairs = HashSet::new();
        for o in OPERATIONS {
            assert!(ids.insert(o.id), "operationId {} twice", o.id);
            assert!(
                pairs.insert((o.method, o.path)),
                "{} {} twice",
                o.method,
                o.path
            );
            let p = sample(o.path);
            let r = match route(&method(o.method), &p) {
                Ok(r) => r,
                Err(e) => panic!("{} {} ({p}) does not route: {e:?}", o.method, o.path),
            };
            assert_eq!(
                r.operation(),
                o.route_op,
                "{} {}: expected operation {}, the matcher says {}",
                o.method,
                o.path,
                o.route_op,
                r.operation()
            );
            // The permission in the document is the one the server demands.
            if let Some((action, _)) = crate::app::required_permission(&r) {
                assert_eq!(
                    o.auth,
                    Auth::Bearer(action.name()),
                    "{} {}: permission",
                    o.method,
                    o.path
                );
            }
            // The table's data/admin split agrees with the matcher's.
            assert_eq!(
                is_data(o),
                r.is_data(),
                "{} {}: data route",
                o.method,
                o.path
            );
            if r.is_data() || r.is_admin() {
                assert!(
                    matches!(o.auth, Auth::Bearer(_)),
                    "{} {}: needs a bearer permission",
                    o.method,
                    o.path
                );
            }
        }
    }

    /// Every string literal and template segment in the matchers' source: the vocabulary a new
    /// matcher arm is written in.
    fn vocabulary() -> Vec<String> {
        let mut words = BTreeSet::new();
        let sources = [
            include_str!("route.rs"),
            include_str!("attest.rs"),
            include_str!("certs.rs"),
        ];
        // Lines of match patterns (`["keys", name] =>`, `| [...]`, `("create", Method::POST) =>`)
        // of string tables (`"encrypt" => KeyOp::Encrypt`, the `template()` arms) and of
        // suffix matches (`seg.strip_suffix(":reset")`).
        let pattern_lines = sources.iter().flat_map(|s| s.lines()).filter(|l| {
            let t = l.trim_start();
            t.starts_with('[')
                || t.starts_with('|')
                || t.starts_with('(')
                || t.contains("=>")
                || t.contains("strip_suffix(")
                || t.contains("strip_prefix(")
        });
        for line in pattern_lines {
            for (i, lit) in line.split('"').enumerate() {
                // Odd pieces are inside quotes (close enough: escaped quotes are rare and only
                // add harmless words).
                if i % 2 == 1 && lit.len() <= 60 {
                    for seg in lit.split('/') {
                        let ok = !seg.is_empty()
                            && seg
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"._:-{}$".contains(&b));
                        if ok {
                            words.insert(seg.to_string());
                        }
                    }
                }
            }
        }
        for o in OPERATIONS {
            for seg in o.path.split('/') {
                words.insert(seg.to_string());
            }
        }
        // `{type}:reset` also yields the suffix `:reset`, combined with every word below.
        let split: Vec<String> = words
            .iter()
            .filter_map(|w| w.find(':').filter(|i| *i > 0).map(|i| w[i..].to_string()))
            .collect();
        words.extend(split);
        // Action suffixes (`:reset`) on names and other words.
        let suffixes: Vec<String> = words
            .iter()
            .filter(|w| w.starts_with(':'))
            .cloned()
            .collect();
        let bases: Vec<String> = words
            .iter()
            .filter(|w| !w.starts_with(':'))
            .cloned()
            .collect();
        for sfx in &suffixes {
            for b in &bases {
                words.insert(format!("{b}{sfx}"));
            }
        }
        words.insert(String::new());
        words.insert("x".into());
        words.insert(VERSION.into());
        words.into_iter().collect()
    }

    fn check(
        documented: &HashSet<(Method, &'static str, &'static str)>,
        path: &str,
        missing: &mut BTreeSet<String>,
    ) {
        for m in &METHODS {
            if let Ok(r) = route(m, path)
                && !documented.contains(&(m.clone(), r.template(), r.operation()))
            {
                missing.insert(format!(
                    "{m} {path} -> {} ({})",
                    r.template(),
                    r.operation()
                ));
            }
        }
    }

    #[test]
    fn every_routed_request_is_documented() {
        let doc = documented();
        let words = vocabulary();
        // Plain words only for the cubic part (suffix combinations are covered up to depth 2 and
        // in the mutations below; `{name}` placeholders stand for the same as `x`).
        let short: Vec<&String> = words
            .iter()
            .filter(|w| !w.contains(':') && !w.contains('{'))
            .collect();
        let mut missing = BTreeSet::new();
        let mut walked = 0usize;
        for a in &words {
            check(&doc, &format!("/{a}"), &mut missing);
            for b in &words {
                check(&doc, &format!("/{a}/{b}"), &mut missing);
                walked += 2;
            }
        }
        for a in &short {
            for b in &short {
                for c in &short {
                    check(&doc, &format!("/{a}/{b}/{c}"), &mut missing);
                    walked += 1;
                }
            }
        }
        // Deeper paths: every documented path with one segment replaced, or one appended.
        for o in OPERATIONS {
            let segs: Vec<String> = sample(o.path)
                .trim_start_matches('/')
                .split('/')
                .map(str::to_string)
                .collect();
            for w in &words {
                for i in 0..segs.len() {
                    let mut s = segs.clone();
                    s[i] = w.clone();
                    check(&doc, &format!("/{}", s.join("/")), &mut missing);
                }
                let mut s = segs.clone();
                s.push(w.clone());
                check(&doc, &format!("/{}", s.join("/")), &mut missing);
                walked += segs.len() + 1;
            }
        }
        eprintln!(
            "vocabulary {} ({} plain), walked {walked}",
            words.len(),
            short.len()
        );
        assert!(walked > 100_000, "walked only {walked} paths");
        assert!(
            missing.is_empty(),
            "routes the matchers accept but the OpenAPI table does not document:\n{}",
            missing.into_iter().collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn the_walk_notices_an_undocumented_route() {
        // The check itself must be able to fail: drop one operation and it is reported.
        let mut doc = documented();
        doc.remove(&(Method::GET, "/certs", "GetAttestationCerts"));
        let mut missing = BTreeSet::new();
        check(&doc, "/certs", &mut missing);
        assert_eq!(missing.len(), 1, "{missing:?}");
        // And an unknown path is not a route.
        assert_eq!(route(&Method::GET, "/nope"), Err(RouteError::NotFound));
    }

    #[test]
    fn document_shape() {
        let d = document("https://vault.example:8443");
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["servers"][0]["url"], "https://vault.example:8443");
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        let params = d["components"]["parameters"].as_object().expect("params");
        // Component names as OpenAPI 3.1 allows them (`^[a-zA-Z0-9._-]+$`).
        for name in schemas.keys().chain(params.keys()) {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "component name {name:?}"
            );
        }
        // Every $ref resolves.
        let text = serde_json::to_string(&d).expect("json");
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = piece.split('"').next().unwrap_or("");
            if let Some(n) = target.strip_prefix("#/components/schemas/") {
                assert!(schemas.contains_key(n), "missing schema {n}");
            } else if let Some(n) = target.strip_prefix("#/components/parameters/") {
                assert!(params.contains_key(n), "missing parameter {n}");
            } else {
                panic!("unexpected $ref {target}");
            }
        }
        // Path templates declare exactly their placeholders.
        for o in OPERATIONS {
            let m = o.method.to_ascii_lowercase();
            let opo = &d["paths"][o.path][&m];
            assert_eq!(opo["operationId"], o.id);
            let declared: Vec<String> = opo["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .filter_map(|p| p["$ref"].as_str())
                .filter_map(|p| p.strip_prefix("#/components/parameters/path-"))
                .map(str::to_string)
                .collect();
            let wanted: Vec<String> = path_params(o.path)
                .into_iter()
                .map(str::to_string)
                .collect();
            assert_eq!(declared, wanted, "{} {}", o.method, o.path);
            if let Auth::Bearer(p) = o.auth {
                assert_eq!(opo["x-enclava-permission"], p);
                assert_eq!(opo["security"][0]["bearer"], json!([]));
            }
        }
        // Sections, including those of routes still to come (policy management certificates).
        assert_eq!(tag("/certificates"), "Attestation");
        assert_eq!(tag("/certificates:add"), "Attestation");
        assert_eq!(tag("/.well-known/jwks.json"), "Identity");
        assert_eq!(tag("/.well-known/openid-configuration"), "Attestation");
        assert_eq!(tag("/enclava/principals"), "Administration");
        // The document routes to itself (served by `dispatch`, never by the generic handlers).
        assert!(matches!(
            route(&Method::GET, "/openapi.json"),
            Ok(Route::OpenApi)
        ));
    }
}
