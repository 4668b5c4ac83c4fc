//! Integration tests of the vault over the real SQLite store.

#[path = "vault/at_rest.rs"]
mod at_rest;
#[path = "vault/certificates.rs"]
mod certificates;
#[path = "vault/common.rs"]
mod common;
#[path = "vault/crypto.rs"]
mod crypto;
#[path = "vault/kv_compat.rs"]
mod kv_compat;
#[path = "vault/lifecycle.rs"]
mod lifecycle;
#[path = "vault/props.rs"]
mod props;
#[path = "vault/release.rs"]
mod release;
#[path = "vault/seal.rs"]
mod seal;
#[path = "vault/secrets.rs"]
mod secrets;
