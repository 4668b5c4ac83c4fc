//! Wire shapes of the attestation service and of key release, as the server defines them
//! (`enclava-server`'s `/challenge` and `/attest/native` answers, enclava-vault's
//! `keys::release::{ReleaseRequest, ReleaseResult}`), for clients that do not link the vault.
//! `Debug` never prints a token.

use serde::{Deserialize, Serialize};

/// `GET /challenge` -> `{"nonce": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub nonce: String,
}

/// `POST /attest/native` -> `{"token": JWT, ...}` (other fields kept as they came).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AttestationResult {
    pub token: String,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for AttestationResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationResult")
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .finish_non_exhaustive()
    }
}

/// `POST /keys/{name}/{version}/release` body: `{target, nonce?, enc?}`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    /// The attestation token.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc: Option<String>,
}

impl std::fmt::Debug for ReleaseRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseRequest")
            .field("target", &format_args!("<{} bytes>", self.target.len()))
            .field("nonce", &self.nonce)
            .field("enc", &self.enc)
            .finish()
    }
}

/// The release answer `{"value": JWS}` (the key wrapped to the workload's ephemeral key).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResult {
    pub value: String,
}

impl std::fmt::Debug for ReleaseResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseResult")
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .finish()
    }
}

/// One page of a Key Vault collection: `{"value": [...], "nextLink": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}
