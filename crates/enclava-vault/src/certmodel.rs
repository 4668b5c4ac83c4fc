//! JSON request and response types of the Key Vault certificates data plane (api-version 7.x),
//! serialized exactly as Microsoft's SDKs send and expect them (field names from the REST specs
//! and the generated models of `azure-keyvault-certificates` / `@azure/keyvault-certificates`).
//!
//! As in [`crate::model`]: responses skip absent (`None`) fields, requests ignore unknown fields
//! and accept `null` for optional ones. Certificates (`cer`, `x5c`, `csr`) are STANDARD base64
//! ([`Base64Std`]), unlike the base64url of keys; `x5t` is base64url.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

pub use crate::b64::SecretString;
use crate::model::{KeyReleasePolicy, Tags};

/// Public bytes carried as standard base64 (with padding) in JSON, as Key Vault does for
/// certificates. Input is lenient (standard or url alphabet, padded or not).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64Std(pub Vec<u8>);

impl Base64Std {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Base64Std {
    fn from(v: Vec<u8>) -> Self {
        Base64Std(v)
    }
}

impl std::fmt::Debug for Base64Std {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Base64Std({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Std {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Std {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        // Some tools wrap base64 at 64 or 76 columns.
        let compact: Zeroizing<String> =
            Zeroizing::new(s.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        crate::b64::decode(&compact)
            .map(Base64Std)
            .map_err(serde::de::Error::custom)
    }
}

/// The issuer names with a meaning of their own (any other name refers to an issuer object).
pub mod issuer_names {
    /// Self-signed by the certificate's own key.
    pub const SELF: &str = "Self";
    /// Signed by the vault's own issuing CA (an Enclava service key).
    pub const ENCLAVA: &str = "Enclava";
    /// CSR flow: the operation waits for `merge`.
    pub const UNKNOWN: &str = "Unknown";
}

/// `secret_props.contentType` values.
pub mod content_types {
    pub const PKCS12: &str = "application/x-pkcs12";
    pub const PEM: &str = "application/x-pem-file";
}

/// Certificate attributes (`attributes` of a certificate bundle / item / create request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoverable_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_level: Option<String>,
}

/// `policy.key_props`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exportable: Option<bool>,
    /// `RSA`, `RSA-HSM`, `EC`, `EC-HSM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_key: Option<bool>,
    /// `P-256`, `P-384`, `P-521`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Enclava extension: the certificate's key is released only to attested workloads under
    /// this policy (requires `exportable: true`); the secret then never holds the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_policy: Option<KeyReleasePolicy>,
}

/// `policy.secret_props`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretProperties {
    #[serde(
        rename = "contentType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
}

/// `policy.x509_props.sans`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectAlternativeNames {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upns: Option<Vec<String>>,
}

/// `policy.x509_props`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct X509CertificateProperties {
    /// `"CN=a, O=b"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Extended key usages as dotted OIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ekus: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sans: Option<SubjectAlternativeNames>,
    /// `digitalSignature`, `nonRepudiation`, `keyEncipherment`, `dataEncipherment`,
    /// `keyAgreement`, `keyCertSign`, `cRLSign`, `encipherOnly`, `decipherOnly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_usage: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_months: Option<u32>,
}

/// `lifetime_actions[].trigger`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_percentage: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_before_expiry: Option<u32>,
}

/// `lifetime_actions[].action`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `AutoRenew` or `EmailContacts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<String>,
}

/// One lifetime action of a certificate policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimeAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// `policy.issuer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerParameters {
    /// `Self`, `Enclava`, `Unknown` or the name of an issuer object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_transparency: Option<bool>,
}

/// `policy.attributes` (only `enabled`, `created`, `updated` are meaningful).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<i64>,
}

/// A certificate's management policy (`GET /certificates/{name}/policy`, `policy` of create /
/// import / the latest bundle).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatePolicy {
    /// `{base}/certificates/{name}/policy` (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_props: Option<KeyProperties>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_props: Option<SecretProperties>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_props: Option<X509CertificateProperties>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_actions: Option<Vec<LifetimeAction>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<PolicyAttributes>,
}

/// A certificate version (create-completed / get / update / import / merge / recover / restore).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateBundle {
    /// `{base}/certificates/{name}/{version}`.
    pub id: String,
    /// `{base}/keys/{name}/{version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `{base}/secrets/{name}/{version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// base64url SHA-1 thumbprint of the DER certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<crate::b64::Base64Url>,
    /// The DER certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cer: Option<Base64Std>,
    #[serde(
        rename = "contentType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
    pub attributes: CertificateAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// The certificate's policy (the latest version only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<CertificatePolicy>,
    #[serde(
        rename = "preserveCertOrder",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub preserve_cert_order: Option<bool>,
}

/// A certificate in a listing (`id` without version for `GET /certificates`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateItem {
    pub id: String,
    pub attributes: CertificateAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<crate::b64::Base64Url>,
}

/// A soft-deleted certificate (its latest version) with deletion metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedCertificateBundle {
    #[serde(flatten)]
    pub bundle: CertificateBundle,
    #[serde(flatten)]
    pub deletion: crate::model::DeletionInfo,
}

/// A soft-deleted certificate in a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedCertificateItem {
    #[serde(flatten)]
    pub item: CertificateItem,
    #[serde(flatten)]
    pub deletion: crate::model::DeletionInfo,
}

/// `error` of a failed certificate operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationError {
    pub code: String,
    pub message: String,
}

/// Operation states (`status`).
pub mod operation_status {
    pub const IN_PROGRESS: &str = "inProgress";
    pub const COMPLETED: &str = "completed";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
}

/// The long-running create operation (`/certificates/{name}/pending`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateOperation {
    /// `{base}/certificates/{name}/pending`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerParameters>,
    /// PKCS#10 DER (CSR flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<Base64Std>,
    pub cancellation_requested: bool,
    /// See [`operation_status`].
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// The certificate id once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(
        rename = "preserveCertOrder",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub preserve_cert_order: Option<bool>,
}

/// `POST /certificates/{name}/create` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateCreateParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<CertificatePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<CertificateAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(
        rename = "preserveCertOrder",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub preserve_cert_order: Option<bool>,
}

/// `POST /certificates/{name}/import` body. `value` is base64 PFX or PEM text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateImportParameters {
    pub value: SecretString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<CertificatePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<CertificateAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(
        rename = "preserveCertOrder",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub preserve_cert_order: Option<bool>,
}

/// `POST /certificates/{name}/pending/merge` body: the signed chain, leaf first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateMergeParameters {
    pub x5c: Vec<Base64Std>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<CertificateAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

/// `PATCH /certificates/{name}/{version}` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateUpdateParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<CertificatePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<CertificateAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

/// `PATCH /certificates/{name}/pending` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateOperationUpdateParameter {
    pub cancellation_requested: bool,
}

/// `POST /certificates/restore` body (`value`: base64url backup blob).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRestoreParameters {
    pub value: crate::b64::Base64Url,
}

// ---------------------------------------------------------------------------------------------
// Issuers and contacts
// ---------------------------------------------------------------------------------------------

/// `credentials` of an issuer. The password is accepted, stored sealed and never returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd: Option<SecretString>,
}

/// One administrator in `org_details.admin_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdministratorDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// `org_details` of an issuer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_details: Option<Vec<AdministratorDetails>>,
}

/// `attributes` of an issuer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<i64>,
}

/// An issuer object (`/certificates/issuers/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerBundle {
    /// `{base}/certificates/issuers/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Returned without `pwd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<IssuerCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_details: Option<OrganizationDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<IssuerAttributes>,
}

/// `PUT /certificates/issuers/{name}` body (`provider` required).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateIssuerSetParameters {
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<IssuerCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_details: Option<OrganizationDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<IssuerAttributes>,
}

/// `PATCH /certificates/issuers/{name}` body (only the given fields change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateIssuerUpdateParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<IssuerCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_details: Option<OrganizationDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<IssuerAttributes>,
}

/// An issuer in `GET /certificates/issuers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateIssuerItem {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// One certificate contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(rename = "email", default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// `/certificates/contacts` (PUT body and every reply).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contacts {
    /// `{base}/certificates/contacts` (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "contacts", default, skip_serializing_if = "Option::is_none")]
    pub contact_list: Option<Vec<Contact>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decode;

    #[test]
    fn decodes_sdk_shaped_create_and_import() {
        // As azure-keyvault-certificates 4.x sends `begin_create_certificate`.
        let p: CertificateCreateParameters = decode(
            br#"{"policy":{"key_props":{"exportable":true,"kty":"RSA","key_size":2048,"reuse_key":false},
                 "secret_props":{"contentType":"application/x-pkcs12"},
                 "x509_props":{"subject":"CN=a.example","sans":{"dns_names":["a.example"]},
                   "key_usage":["digitalSignature","keyEncipherment"],"validity_months":12},
                 "lifetime_actions":[{"trigger":{"lifetime_percentage":80},"action":{"action_type":"AutoRenew"}}],
                 "issuer":{"name":"Self"},"attributes":{"enabled":true}},
                 "attributes":{"enabled":true},"tags":{"t":"v"},"unknown":1}"#,
        )
        .unwrap();
        let pol = p.policy.unwrap();
        assert_eq!(pol.key_props.unwrap().key_size, Some(2048));
        assert_eq!(
            pol.secret_props.unwrap().content_type.as_deref(),
            Some(content_types::PKCS12)
        );
        assert_eq!(
            pol.lifetime_actions.unwrap()[0]
                .trigger
                .as_ref()
                .unwrap()
                .lifetime_percentage,
            Some(80)
        );
        let i: CertificateImportParameters =
            decode(br#"{"value":"MIIB","pwd":"hunter2","preserveCertOrder":false}"#).unwrap();
        assert_eq!(i.pwd.unwrap().as_str(), "hunter2");
        let m: CertificateMergeParameters = decode(br#"{"x5c":["AAEC","AwQ="]}"#).unwrap();
        assert_eq!(m.x5c[0].as_slice(), &[0, 1, 2]);
        assert_eq!(m.x5c[1].as_slice(), &[3, 4]);
    }

    #[test]
    fn bundle_and_operation_shapes() {
        let b = CertificateBundle {
            id: "https://v/certificates/c/1".into(),
            x5t: Some(crate::b64::Base64Url(vec![0xfb, 0xff])),
            cer: Some(Base64Std(vec![0xfb, 0xff])),
            content_type: Some(content_types::PEM.into()),
            ..Default::default()
        };
        let j = serde_json::to_value(&b).unwrap();
        assert_eq!(j["x5t"], "-_8");
        assert_eq!(j["cer"], "+/8=");
        assert_eq!(j["contentType"], content_types::PEM);
        assert!(j.get("policy").is_none());
        let o = CertificateOperation {
            id: "https://v/certificates/c/pending".into(),
            status: operation_status::IN_PROGRESS.into(),
            ..Default::default()
        };
        let j = serde_json::to_value(&o).unwrap();
        assert_eq!(j["cancellation_requested"], false);
        assert_eq!(j["status"], "inProgress");
        let c = Contacts {
            id: None,
            contact_list: Some(vec![Contact {
                email_address: Some("a@b".into()),
                ..Default::default()
            }]),
        };
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["contacts"][0]["email"], "a@b");
    }
}
