//! JSON request and response types, serialized exactly like Azure Key Vault's data plane
//! (field names from the REST specs / the Python SDK's generated models).
//!
//! Responses skip absent (`None`) fields. Requests ignore unknown fields and accept `null` for
//! optional ones. Binary fields are base64url ([`Base64Url`], [`SecretBytes`]).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::b64::{Base64Url, SecretBytes, SecretString};
use crate::error::{Result, VaultError};

/// Tags: string to string, at most 15 entries.
pub type Tags = BTreeMap<String, String>;

/// Decode a JSON request body into `T`; any failure is `BadParameter` with a message that names
/// the problem and position but never echoes the submitted values.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let detail = if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
            // These name only the field.
            msg.split(" at line").next().unwrap_or("").to_string()
        } else {
            match e.classify() {
                serde_json::error::Category::Syntax => "malformed JSON".to_string(),
                serde_json::error::Category::Eof => "JSON ended unexpectedly".to_string(),
                serde_json::error::Category::Data => {
                    "a field has the wrong type or an invalid value".to_string()
                }
                serde_json::error::Category::Io => "the body could not be read".to_string(),
            }
        };
        VaultError::BadParameter(format!(
            "invalid request body: {detail} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// A JSON Web Key as Key Vault sends and receives it. Responses carry only public parts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonWebKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<SecretBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hsm: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<Base64Url>,
}

/// Key attributes (`created`, `updated`, `recoverableDays`, `recoveryLevel` are set by the vault).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyAttributes {
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exportable: Option<bool>,
}

/// Secure key release policy attached to an (exportable) key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReleasePolicy {
    #[serde(
        rename = "contentType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// base64url of the policy JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Base64Url>,
}

/// A key version as returned by create / import / get / update / rotate / restore / recover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBundle {
    pub key: JsonWebKey,
    pub attributes: KeyAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_policy: Option<KeyReleasePolicy>,
}

/// A key in a listing (`kid` without version for `GET /keys`, with version for `/versions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyItem {
    pub kid: String,
    pub attributes: KeyAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
}

/// Deletion metadata shared by deleted keys and secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionInfo {
    /// `{base}/deletedkeys/{name}` or `{base}/deletedsecrets/{name}`.
    pub recovery_id: String,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// A soft-deleted key (its latest version) with deletion metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedKeyBundle {
    #[serde(flatten)]
    pub bundle: KeyBundle,
    #[serde(flatten)]
    pub deletion: DeletionInfo,
}

/// A soft-deleted key in a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedKeyItem {
    #[serde(flatten)]
    pub item: KeyItem,
    #[serde(flatten)]
    pub deletion: DeletionInfo,
}

/// `POST /keys/{name}/create` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCreateParameters {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_exponent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<KeyAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_policy: Option<KeyReleasePolicy>,
}

/// `PUT /keys/{name}` (import) body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyImportParameters {
    #[serde(rename = "Hsm", default, skip_serializing_if = "Option::is_none")]
    pub hsm: Option<bool>,
    pub key: JsonWebKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<KeyAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_policy: Option<KeyReleasePolicy>,
}

/// `PATCH /keys/{name}/{version}` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUpdateParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<KeyAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_policy: Option<KeyReleasePolicy>,
}

/// encrypt / decrypt / wrapkey / unwrapkey body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOperationsParameters {
    pub alg: String,
    pub value: Base64Url,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iv: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad: Option<Base64Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Base64Url>,
}

/// sign body: `value` is the digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySignParameters {
    pub alg: String,
    pub value: Base64Url,
}

/// verify body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVerifyParameters {
    pub alg: String,
    pub digest: Base64Url,
    pub value: Base64Url,
}

/// Result of encrypt / decrypt / wrap / unwrap / sign.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOperationResult {
    pub kid: String,
    pub value: Base64Url,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iv: Option<Base64Url>,
    /// Authentication tag (AES-GCM encrypt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Base64Url>,
    /// Additional authenticated data echoed back (AES-GCM encrypt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad: Option<Base64Url>,
}

/// Result of verify.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVerifyResult {
    pub value: bool,
}

/// `POST /rng` body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRandomBytesRequest {
    pub count: u32,
}

/// `POST /rng` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomBytes {
    pub value: Base64Url,
}

/// Backup result and restore body (keys and secrets): `{"value": base64url(blob)}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupBlob {
    pub value: Base64Url,
}

/// Key rotation policy (`GET/PUT /keys/{name}/rotationpolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotationPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_actions: Option<Vec<LifetimeAction>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<KeyRotationPolicyAttributes>,
}

/// One lifetime action of a rotation policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimeAction {
    #[serde(default)]
    pub trigger: LifetimeActionTrigger,
    #[serde(default)]
    pub action: LifetimeActionType,
}

/// When a lifetime action fires: ISO-8601 durations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifetimeActionTrigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_after_create: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_before_expiry: Option<String>,
}

/// What a lifetime action does: `Rotate` or `Notify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimeActionType {
    #[serde(rename = "type", default)]
    pub action_type: String,
}

/// Rotation policy attributes: `expiryTime` (ISO-8601 duration applied to new versions).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotationPolicyAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// Secret attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretAttributes {
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

/// A secret version with its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBundle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<SecretString>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub attributes: SecretAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
}

/// A secret in a listing (never carries the value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretItem {
    pub id: String,
    pub attributes: SecretAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<bool>,
}

/// A soft-deleted secret (latest version, with value omitted) plus deletion metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedSecretBundle {
    #[serde(flatten)]
    pub bundle: SecretBundle,
    #[serde(flatten)]
    pub deletion: DeletionInfo,
}

/// A soft-deleted secret in a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedSecretItem {
    #[serde(flatten)]
    pub item: SecretItem,
    #[serde(flatten)]
    pub deletion: DeletionInfo,
}

/// `PUT /secrets/{name}` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretSetParameters {
    pub value: SecretString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<SecretAttributes>,
}

/// `PATCH /secrets/{name}/{version}` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretUpdateParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<SecretAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

// ---------------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------------

/// One page of a listing. `continuation` is opaque; pass it back to get the next page (the server
/// turns it into `nextLink`). `None` means this is the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub continuation: Option<String>,
}

/// Default and maximum page size (Azure's `maxresults` limit is 25).
pub const MAX_PAGE_SIZE: u32 = 25;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_sdk_shaped_requests() {
        let p: KeyCreateParameters = decode(
            br#"{"kty":"RSA-HSM","key_size":3072,"public_exponent":65537,"key_ops":["sign"],
                 "attributes":{"enabled":true,"exp":1900000000,"exportable":null},"tags":{"a":"b"},
                 "release_policy":{"data":"eyJ2ZXJzaW9uIjoiMS4wLjAifQ","immutable":true},"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(p.kty, "RSA-HSM");
        assert_eq!(p.key_size, Some(3072));
        assert_eq!(p.attributes.as_ref().unwrap().exp, Some(1_900_000_000));
        assert_eq!(
            p.release_policy.unwrap().data.unwrap().as_slice(),
            br#"{"version":"1.0.0"}"#
        );

        let p: KeyOperationsParameters =
            decode(br#"{"alg":"A256GCM","value":"aGVsbG8=","iv":"AAAAAAAAAAAAAAAA","tag":null}"#)
                .unwrap();
        assert_eq!(p.value.as_slice(), b"hello");
        assert_eq!(p.iv.unwrap().as_slice().len(), 12);
        assert!(p.tag.is_none());

        let p: KeyImportParameters =
            decode(br#"{"Hsm":true,"key":{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODw"}}"#).unwrap();
        assert_eq!(p.hsm, Some(true));
        assert_eq!(p.key.k.unwrap().as_slice().len(), 16);

        let p: SecretSetParameters =
            decode(br#"{"value":"s3cr3t","contentType":"text/plain"}"#).unwrap();
        assert_eq!(p.value.as_str(), "s3cr3t");
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn decode_errors_are_bad_parameter_without_values() {
        let e = decode::<KeyCreateParameters>(br#"{"key_size":1}"#).unwrap_err();
        assert_eq!(e.code(), "BadParameter");
        assert!(e.to_string().contains("missing field `kty`"), "{e}");
        let e = decode::<KeyOperationsParameters>(
            br#"{"alg":"A256GCM","value":"not base64 !!secret!!"}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = decode::<SecretSetParameters>(br#"{"value": 12345678}"#).unwrap_err();
        assert!(!e.to_string().contains("12345678"), "{e}");
        assert!(decode::<KeySignParameters>(b"").is_err());
        assert!(decode::<KeySignParameters>(b"[").is_err());
    }

    #[test]
    fn result_shapes() {
        let r = KeyOperationResult {
            kid: "https://v/keys/k/1".into(),
            value: Base64Url(vec![0xfb, 0xff]),
            iv: Some(Base64Url(vec![1; 12])),
            tag: Some(Base64Url(vec![2; 16])),
            aad: None,
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["value"], "-_8");
        assert_eq!(j["iv"], "AQEBAQEBAQEBAQEB");
        assert!(j.get("aad").is_none());
        let d = DeletedSecretItem {
            item: SecretItem {
                id: "https://v/secrets/s".into(),
                ..Default::default()
            },
            deletion: DeletionInfo {
                recovery_id: "https://v/deletedsecrets/s".into(),
                deleted_date: 1,
                scheduled_purge_date: 2,
            },
        };
        let j = serde_json::to_value(&d).unwrap();
        assert_eq!(j["recoveryId"], "https://v/deletedsecrets/s");
        assert_eq!(j["scheduledPurgeDate"], 2);
        assert_eq!(j["id"], "https://v/secrets/s");
        let p = KeyRotationPolicy {
            id: Some("x".into()),
            lifetime_actions: Some(vec![LifetimeAction {
                trigger: LifetimeActionTrigger {
                    time_after_create: Some("P90D".into()),
                    time_before_expiry: None,
                },
                action: LifetimeActionType {
                    action_type: "Rotate".into(),
                },
            }]),
            attributes: Some(KeyRotationPolicyAttributes {
                expiry_time: Some("P1Y".into()),
                ..Default::default()
            }),
        };
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(
            j["lifetimeActions"][0]["trigger"]["timeAfterCreate"],
            "P90D"
        );
        assert_eq!(j["lifetimeActions"][0]["action"]["type"], "Rotate");
        assert_eq!(j["attributes"]["expiryTime"], "P1Y");
    }
}
