//! Integrity of stored identity rows (principals, their index rows, role assignments, the
//! bootstrap administrator pointer).
//!
//! Whoever can write the database (a database administrator, a host with access to the data
//! directory) could otherwise edit a role assignment to `Administrator` at `/` and be granted it
//! after a restart. Every such row is therefore stored as an *envelope*:
//!
//! ```text
//! mac1:<64 hex HMAC-SHA256>\n<payload bytes>
//! ```
//!
//! The HMAC key is derived from the vault's root key per table (purpose
//! `row-integrity/<table name>`, see [`row_key_purpose`]), so it exists only while the vault is
//! unsealed and every process unsealed with the same root computes the same MAC. The MAC covers
//! the table name, the row key and the exact payload bytes (each length-prefixed): a valid row
//! copied to another key (another principal, another assignment) no longer verifies, and any edit
//! of the payload is detected. The MAC is over the stored bytes themselves, so no canonical
//! re-serialization is involved.
//!
//! What a MAC cannot show is a *deleted* row: deleting a role assignment only takes rights away,
//! and deleting a principal makes its tokens fail. Rows written before this format existed are
//! adopted once, at the first unseal after the upgrade ([`crate::Identity::migrate_row_integrity`]).
//!
//! The envelope itself is [`enclava_store::integrity`] (shared with the other row owners).

use enclava_store::Table;
pub use enclava_store::integrity::{
    RowKey, RowMigration, RowProblem, is_enveloped, row_key_purpose,
};
use zeroize::Zeroizing;

/// The row keys of the identity tables, derived from the vault root after unseal.
#[derive(Debug)]
pub struct RowKeys {
    pub(crate) principals: RowKey,
    pub(crate) assignments: RowKey,
    pub(crate) meta: RowKey,
}

impl RowKeys {
    /// Derive the three keys with `derive(purpose)` (normally `Vault::derived_key`; the purposes
    /// are [`row_key_purpose`] of `principals`, `role_assignments` and `meta`).
    pub fn derive<E: std::fmt::Display>(
        derive: impl Fn(&str) -> Result<Zeroizing<[u8; 32]>, E>,
    ) -> Result<RowKeys, String> {
        let one = |t: Table| {
            derive(&row_key_purpose(t))
                .map(|k| RowKey::new(t, k))
                .map_err(|e| format!("deriving the {} row key: {e}", t.name()))
        };
        Ok(RowKeys {
            principals: one(Table::Principals)?,
            assignments: one(Table::RoleAssignments)?,
            meta: one(Table::Meta)?,
        })
    }

    pub(crate) fn for_table(&self, table: Table) -> Option<&RowKey> {
        match table {
            Table::Principals => Some(&self.principals),
            Table::RoleAssignments => Some(&self.assignments),
            Table::Meta => Some(&self.meta),
            _ => None,
        }
    }
}
