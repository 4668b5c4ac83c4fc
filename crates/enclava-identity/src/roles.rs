//! Roles, actions, scopes and the role → action table.
//!
//! The table is modelled on Azure Key Vault's built-in data-plane roles ("Key Vault
//! Administrator", "Key Vault Crypto Officer", ...). It is the single source of truth for
//! [`Role::grants`]; the doc table below mirrors it and the tests check it against an
//! independently written expectation.
//!
//! | role | actions |
//! |---|---|
//! | Administrator | every action, including role / principal / policy management, audit read, operator seal and service key rotation (`service-keys/rotate`, granted by no other role) |
//! | Crypto Officer | all key management (create, import, get, list, list versions, update, delete, get/list deleted, recover, purge, backup, restore, rotate, rotation policy get/set) + crypto ops (encrypt, decrypt, wrap, unwrap, sign, verify) + rng. **Not** release, **not** secrets |
//! | Crypto User | key get, key list, key list versions, encrypt, decrypt, wrap, unwrap, sign, verify, rng |
//! | Release User | key release only |
//! | Secrets Officer | every secret action (set, get, list, list versions, update, delete, get/list deleted, recover, purge, backup, restore) |
//! | Secrets User | secret get (the value), secret list, secret list versions |
//! | Auditor | audit read + metadata reads that never reveal secret values or perform crypto: key get (public part only), key list, key list versions, key rotation policy get, deleted-key get/list, secret list, secret list versions, deleted-secret list. **No** secret get (a secret GET returns the value), **no** deleted-secret get, no crypto, no rng |
//! | Attestation Contributor | attestation policy and reference-value management (`policies/manage`, vault scope) only: Azure's "Attestation Contributor" for the attestation resource (use it with a token for `https://attest.azure.net`) |
//! | Certificates Officer | every certificate action: create, import, get, list, list versions, update, delete, get/list deleted, recover, purge, backup, restore, policy get/set, pending operation get/cancel/delete, merge, issuers and contacts. **Not** the secret value of a certificate (that is `secrets/get`) and no crypto with its key |
//! | Certificate User | certificate get, list, list versions (Key Vault's "Certificate User" reads the certificate; its private key is the secret's value, `secrets/get`) |
//!
//! A certificate owns a key and a secret of the same name: the key's crypto needs a Crypto role and
//! the secret's value needs `secrets/get` (Secrets User), exactly as for any key and secret.
//!
//! Scopes: an assignment applies to the whole vault (`/`), one key (`/keys/{name}`), one secret
//! (`/secrets/{name}`) or one certificate (`/certificates/{name}`). A key scope covers exactly the
//! routes of that key name (all its versions, its deleted form, its crypto operations, its release);
//! a secret scope and a certificate scope likewise. Vault-level
//! actions ([`Action::is_vault_level`]: the list operations, restore (the name is inside the
//! blob), rng, audit, role / principal / policy management, seal) need a vault-scope assignment,
//! whatever resource the caller names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The built-in roles. Exactly these; custom roles are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Administrator,
    CryptoOfficer,
    CryptoUser,
    ReleaseUser,
    SecretsOfficer,
    SecretsUser,
    Auditor,
    /// Manages attestation policies and reference values (`policies/manage`) and nothing else:
    /// Azure's "Attestation Contributor" for the attestation resource.
    AttestationContributor,
    /// Every certificate action (Key Vault's "Certificates Officer").
    CertificatesOfficer,
    /// Certificate get, list and list versions (Key Vault's "Certificate User").
    CertificateUser,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Administrator,
        Role::CryptoOfficer,
        Role::CryptoUser,
        Role::ReleaseUser,
        Role::SecretsOfficer,
        Role::SecretsUser,
        Role::Auditor,
        Role::AttestationContributor,
        Role::CertificatesOfficer,
        Role::CertificateUser,
    ];

    /// The display name ("Crypto Officer").
    pub fn display_name(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::CryptoOfficer => "Crypto Officer",
            Role::CryptoUser => "Crypto User",
            Role::ReleaseUser => "Release User",
            Role::SecretsOfficer => "Secrets Officer",
            Role::SecretsUser => "Secrets User",
            Role::Auditor => "Auditor",
            Role::AttestationContributor => "Attestation Contributor",
            Role::CertificatesOfficer => "Certificates Officer",
            Role::CertificateUser => "Certificate User",
        }
    }

    /// The identifier form ("CryptoOfficer"), also the serde form.
    pub fn id(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::CryptoOfficer => "CryptoOfficer",
            Role::CryptoUser => "CryptoUser",
            Role::ReleaseUser => "ReleaseUser",
            Role::SecretsOfficer => "SecretsOfficer",
            Role::SecretsUser => "SecretsUser",
            Role::Auditor => "Auditor",
            Role::AttestationContributor => "AttestationContributor",
            Role::CertificatesOfficer => "CertificatesOfficer",
            Role::CertificateUser => "CertificateUser",
        }
    }

    /// Whether this role grants `action` (ignoring scope). This match is the role table.
    pub fn grants(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Administrator => true,
            Role::CryptoOfficer => matches!(
                action,
                KeyCreate
                    | KeyImport
                    | KeyGet
                    | KeyList
                    | KeyListVersions
                    | KeyUpdate
                    | KeyDelete
                    | KeyGetDeleted
                    | KeyListDeleted
                    | KeyRecover
                    | KeyPurge
                    | KeyBackup
                    | KeyRestore
                    | KeyRotate
                    | KeyRotationPolicyGet
                    | KeyRotationPolicySet
                    | KeyEncrypt
                    | KeyDecrypt
                    | KeyWrap
                    | KeyUnwrap
                    | KeySign
                    | KeyVerify
                    | Rng
            ),
            Role::CryptoUser => matches!(
                action,
                KeyGet
                    | KeyList
                    | KeyListVersions
                    | KeyEncrypt
                    | KeyDecrypt
                    | KeyWrap
                    | KeyUnwrap
                    | KeySign
                    | KeyVerify
                    | Rng
            ),
            Role::ReleaseUser => matches!(action, KeyRelease),
            Role::SecretsOfficer => matches!(
                action,
                SecretSet
                    | SecretGet
                    | SecretList
                    | SecretListVersions
                    | SecretUpdate
                    | SecretDelete
                    | SecretGetDeleted
                    | SecretListDeleted
                    | SecretRecover
                    | SecretPurge
                    | SecretBackup
                    | SecretRestore
            ),
            Role::SecretsUser => matches!(action, SecretGet | SecretList | SecretListVersions),
            Role::Auditor => matches!(
                action,
                AuditRead
                    | KeyGet
                    | KeyList
                    | KeyListVersions
                    | KeyRotationPolicyGet
                    | KeyGetDeleted
                    | KeyListDeleted
                    | SecretList
                    | SecretListVersions
                    | SecretListDeleted
            ),
            Role::AttestationContributor => matches!(action, PolicyManage),
            Role::CertificatesOfficer => action.is_certificate(),
            Role::CertificateUser => {
                matches!(action, CertGet | CertList | CertListVersions)
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Error parsing a [`Role`], [`Action`] or [`Scope`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: expected {expected}, found {found:?}")]
pub struct ParseError {
    pub what: &'static str,
    pub expected: &'static str,
    pub found: String,
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

impl FromStr for Role {
    type Err = ParseError;
    /// Accepts the id ("CryptoOfficer"), the display name ("Crypto Officer") and the Azure
    /// built-in name ("Key Vault Crypto Officer"), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .strip_prefix("Key Vault ")
            .unwrap_or(s.trim())
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        // Azure spells the release role "Crypto Service Release User".
        let norm = if norm == "cryptoservicereleaseuser" {
            "releaseuser".to_string()
        } else {
            norm
        };
        Role::ALL
            .into_iter()
            .find(|r| r.id().to_ascii_lowercase() == norm)
            .ok_or_else(|| ParseError {
                what: "role",
                expected: "one of Administrator, CryptoOfficer, CryptoUser, ReleaseUser, SecretsOfficer, SecretsUser, Auditor, AttestationContributor, CertificatesOfficer, CertificateUser",
                found: shorten(s),
            })
    }
}

macro_rules! actions {
    ($($(#[$m:meta])* $name:ident => $wire:literal, $vault:literal;)*) => {
        /// Every vault operation that authorization decides on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Action {
            $($(#[$m])* $name,)*
        }

        impl Action {
            /// All actions, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$name,)*];

            /// Stable wire / audit name, e.g. `"keys/create"`.
            pub fn name(self) -> &'static str {
                match self { $(Action::$name => $wire,)* }
            }

            /// Whether the action needs a vault-scope assignment (it is not about one named
            /// object): lists, restore, rng, audit, management, seal.
            pub fn is_vault_level(self) -> bool {
                match self { $(Action::$name => $vault,)* }
            }
        }

        impl FromStr for Action {
            type Err = ParseError;
            /// Accepts the wire name (`keys/create`) or the variant name (`KeyCreate`).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire | stringify!($name) => Ok(Action::$name),)*
                    _ => Err(ParseError { what: "action", expected: "a vault action name such as keys/create", found: shorten(s) }),
                }
            }
        }
    };
}

actions! {
    KeyCreate => "keys/create", false;
    KeyImport => "keys/import", false;
    /// Read a key's metadata and public part (never private material).
    KeyGet => "keys/get", false;
    KeyList => "keys/list", true;
    /// List the versions of one key (`GET /keys/{name}/versions`).
    KeyListVersions => "keys/versions/list", false;
    KeyUpdate => "keys/update", false;
    KeyDelete => "keys/delete", false;
    KeyGetDeleted => "deletedkeys/get", false;
    KeyListDeleted => "deletedkeys/list", true;
    KeyRecover => "deletedkeys/recover", false;
    KeyPurge => "deletedkeys/purge", false;
    KeyBackup => "keys/backup", false;
    /// Restore from a backup blob: the key name is inside the blob, so vault scope is needed.
    KeyRestore => "keys/restore", true;
    KeyRotate => "keys/rotate", false;
    KeyRotationPolicyGet => "keys/rotationpolicy/get", false;
    KeyRotationPolicySet => "keys/rotationpolicy/set", false;
    KeyEncrypt => "keys/encrypt", false;
    KeyDecrypt => "keys/decrypt", false;
    KeyWrap => "keys/wrapkey", false;
    KeyUnwrap => "keys/unwrapkey", false;
    KeySign => "keys/sign", false;
    KeyVerify => "keys/verify", false;
    /// Secure key release (the attestation policy is checked separately by the vault).
    KeyRelease => "keys/release", false;
    Rng => "rng", true;
    SecretSet => "secrets/set", false;
    /// Read a secret including its value.
    SecretGet => "secrets/get", false;
    SecretList => "secrets/list", true;
    SecretListVersions => "secrets/versions/list", false;
    SecretUpdate => "secrets/update", false;
    SecretDelete => "secrets/delete", false;
    /// Read a deleted secret (includes the value).
    SecretGetDeleted => "deletedsecrets/get", false;
    SecretListDeleted => "deletedsecrets/list", true;
    SecretRecover => "deletedsecrets/recover", false;
    SecretPurge => "deletedsecrets/purge", false;
    SecretBackup => "secrets/backup", false;
    SecretRestore => "secrets/restore", true;
    AuditRead => "audit/read", true;
    RoleManage => "roles/manage", true;
    PrincipalManage => "principals/manage", true;
    OperatorSeal => "operator/seal", true;
    /// Manage attestation / release policies.
    PolicyManage => "policies/manage", true;
    /// Rotate a service key (attestation token signer, release signer): an operator action
    /// granted by Administrator only. Service keys themselves are not vault keys: no key action
    /// reaches them.
    ServiceKeyRotate => "service-keys/rotate", true;
    CertCreate => "certificates/create", false;
    CertImport => "certificates/import", false;
    /// Read a certificate (the public certificate and its attributes, never its private key).
    CertGet => "certificates/get", false;
    CertList => "certificates/list", true;
    CertListVersions => "certificates/versions/list", false;
    CertUpdate => "certificates/update", false;
    CertDelete => "certificates/delete", false;
    CertGetDeleted => "deletedcertificates/get", false;
    CertListDeleted => "deletedcertificates/list", true;
    CertRecover => "deletedcertificates/recover", false;
    CertPurge => "deletedcertificates/purge", false;
    CertBackup => "certificates/backup", false;
    /// Restore from a backup blob: the name is inside the blob, so vault scope is needed.
    CertRestore => "certificates/restore", true;
    CertPolicyGet => "certificates/policy/get", false;
    CertPolicySet => "certificates/policy/set", false;
    /// Read the pending create operation (status, CSR).
    CertPendingGet => "certificates/pending/get", false;
    /// Cancel or delete the pending create operation.
    CertPendingUpdate => "certificates/pending/update", false;
    /// Merge an externally signed certificate into the pending operation.
    CertMerge => "certificates/pending/merge", false;
    /// Read the certificate issuers (never their credentials' password).
    CertIssuersGet => "certificates/issuers/get", true;
    CertIssuersManage => "certificates/issuers/manage", true;
    CertContactsGet => "certificates/contacts/get", true;
    CertContactsManage => "certificates/contacts/manage", true;
}

impl Action {
    /// The certificate actions (all of them granted by Certificates Officer).
    pub fn is_certificate(self) -> bool {
        self.name().starts_with("certificates/") || self.name().starts_with("deletedcertificates/")
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an assignment applies to. Text form: `/`, `/keys/{name}`, `/secrets/{name}`,
/// `/certificates/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Vault,
    Key(String),
    Secret(String),
    Certificate(String),
}

/// What a request touches: the vault as a whole, or one named key / secret / certificate (any
/// version).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    Vault,
    Key(String),
    Secret(String),
    Certificate(String),
}

impl Resource {
    /// Object path used in audit entries: `""`, `keys/{name}`, `secrets/{name}`,
    /// `certificates/{name}`.
    pub fn object(&self) -> String {
        match self {
            Resource::Vault => String::new(),
            Resource::Key(n) => format!("keys/{n}"),
            Resource::Secret(n) => format!("secrets/{n}"),
            Resource::Certificate(n) => format!("certificates/{n}"),
        }
    }
}

/// Key Vault object names: 1-127 characters of `[0-9a-zA-Z-]`.
pub fn valid_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Scope {
    /// Whether this scope covers `resource` for `action` (see the module doc).
    pub fn covers(&self, action: Action, resource: &Resource) -> bool {
        match self {
            Scope::Vault => true,
            _ if action.is_vault_level() => false,
            Scope::Key(k) => matches!(resource, Resource::Key(r) if r == k),
            Scope::Secret(s) => matches!(resource, Resource::Secret(r) if r == s),
            Scope::Certificate(c) => matches!(resource, Resource::Certificate(r) if r == c),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Vault => f.write_str("/"),
            Scope::Key(n) => write!(f, "/keys/{n}"),
            Scope::Secret(n) => write!(f, "/secrets/{n}"),
            Scope::Certificate(n) => write!(f, "/certificates/{n}"),
        }
    }
}

impl FromStr for Scope {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError {
            what: "scope",
            expected: "\"/\", \"/keys/{name}\", \"/secrets/{name}\" or \"/certificates/{name}\" with a name of 1-127 characters [0-9a-zA-Z-]",
            found: shorten(s),
        };
        if s == "/" {
            return Ok(Scope::Vault);
        }
        let s2 = s.strip_suffix('/').unwrap_or(s);
        if let Some(n) = s2.strip_prefix("/keys/") {
            return if valid_object_name(n) {
                Ok(Scope::Key(n.to_string()))
            } else {
                Err(err())
            };
        }
        if let Some(n) = s2.strip_prefix("/secrets/") {
            return if valid_object_name(n) {
                Ok(Scope::Secret(n.to_string()))
            } else {
                Err(err())
            };
        }
        if let Some(n) = s2.strip_prefix("/certificates/") {
            return if valid_object_name(n) {
                Ok(Scope::Certificate(n.to_string()))
            } else {
                Err(err())
            };
        }
        Err(err())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The outcome of [`crate::Identity::authorize`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// Why: the granting assignment (`role "Crypto User" at scope "/keys/k1" (assignment ID)`), or
    /// why nothing granted it. Safe to show to the caller and to log.
    pub reason: String,
    /// The principal's assignment rows that failed their integrity check (table, row key and
    /// problem): they were ignored. Not empty means tampering (or a wrong root key): log it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub integrity_failures: Vec<String>,
}
