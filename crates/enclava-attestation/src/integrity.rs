//! Integrity of stored attestation policies and reference values.
//!
//! Whoever can write the database could otherwise replace a policy text (say, with one that
//! allows everything) or a reference-value set, and the service would evaluate it. Every row of
//! `Table::Policies` is therefore stored as an *envelope*:
//!
//! ```text
//! mac1:<64 hex HMAC-SHA256>\n<payload bytes>
//! ```
//!
//! The HMAC key is derived from the vault's root key per table (purpose
//! `row-integrity/<table name>`, see [`row_key_purpose`]), so it exists only while the vault is
//! unsealed and every process unsealed with the same root computes the same MAC. The MAC covers
//! the table name, the row key and the exact payload bytes (each length-prefixed): a valid row
//! copied to another key (another policy type, scope or set name) no longer verifies, and any
//! edit of the payload is detected. Rows written before this format existed are adopted once
//! ([`crate::PolicyStore::migrate_row_integrity`]).
//!
//! The envelope itself is [`enclava_store::integrity`] (shared with the other row owners).

use enclava_store::Table;
pub use enclava_store::integrity::{
    RowKey, RowMigration, RowProblem, is_enveloped, row_key_purpose,
};
use zeroize::Zeroizing;

/// The row keys of the attestation tables, derived from the vault root after unseal.
#[derive(Debug)]
pub struct PolicyRowKeys {
    pub(crate) policies: RowKey,
    pub(crate) meta: RowKey,
}

impl PolicyRowKeys {
    /// Derive the keys with `derive(purpose)` (normally `Vault::derived_key`; the purposes are
    /// [`row_key_purpose`] of `policies` and `meta`).
    pub fn derive<E: std::fmt::Display>(
        derive: impl Fn(&str) -> Result<Zeroizing<[u8; 32]>, E>,
    ) -> Result<PolicyRowKeys, String> {
        let one = |t: Table| {
            derive(&row_key_purpose(t))
                .map(|k| RowKey::new(t, k))
                .map_err(|e| format!("deriving the {} row key: {e}", t.name()))
        };
        Ok(PolicyRowKeys {
            policies: one(Table::Policies)?,
            meta: one(Table::Meta)?,
        })
    }
}
