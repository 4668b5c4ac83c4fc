//! Authenticated rows: the envelope that binds a stored row to its table, its key and its
//! content with an HMAC-SHA256 under a key derived from the vault root.
//!
//! Whoever can write the database (a database administrator, a host with access to the data
//! directory) could otherwise edit a security-relevant row (a role assignment, a policy) and have
//! it honoured after a restart. Such rows are stored as an *envelope*:
//!
//! ```text
//! mac1:<64 hex HMAC-SHA256>\n<payload>
//! ```
//!
//! The MAC covers a domain string, the table name, the row key and the payload, each
//! length-prefixed: a valid row copied to another key (another principal, another policy type)
//! no longer verifies, and any edit of the payload is detected. The MAC is over the stored bytes
//! themselves, so no canonical re-serialization is involved. What a MAC cannot show is a deleted
//! row. The key comes from the caller (the server derives one per table with
//! `Vault::derived_key(row_key_purpose(table))`), so it exists only while the vault is unsealed.

use crate::Table;
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

/// Prefix of an authenticated row.
const PREFIX: &[u8] = b"mac1:";
/// Domain separation of the MAC input.
const DOMAIN: &[u8] = b"enclava/v1/row-mac";
/// Hex characters of the tag.
const TAG_HEX: usize = 64;

/// The purpose string under which the server derives the row key of `table` from the root
/// (`Vault::derived_key`).
pub fn row_key_purpose(table: Table) -> String {
    format!("row-integrity/{}", table.name())
}

/// Why a stored row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    /// The row predates integrity protection (no envelope) and was not adopted by the migration.
    Unauthenticated,
    /// The envelope is malformed.
    Malformed,
    /// The MAC does not match: the row was edited, or copied here from another key.
    BadMac,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RowProblem::Unauthenticated => {
                "expected an authenticated row, found one without a MAC (written outside the server, or never migrated)"
            }
            RowProblem::Malformed => "expected a MAC envelope, found a malformed one",
            RowProblem::BadMac => {
                "the MAC does not match the row (edited, or moved here from another key)"
            }
        })
    }
}

/// The HMAC key of one table. Key bytes are zeroized on drop.
pub struct RowKey {
    table: Table,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowKey")
            .field("table", &self.table.name())
            .finish_non_exhaustive()
    }
}

impl RowKey {
    pub fn new(table: Table, key: Zeroizing<[u8; 32]>) -> Self {
        RowKey { table, key }
    }

    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.key.as_ref())
    }

    /// The MAC input: domain, table, row key and payload, each length-prefixed.
    fn message(&self, row_key: &str, payload: &[u8]) -> Vec<u8> {
        let parts = [
            DOMAIN,
            self.table.name().as_bytes(),
            row_key.as_bytes(),
            payload,
        ];
        let mut m = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
        for part in parts {
            m.extend_from_slice(&(part.len() as u64).to_le_bytes());
            m.extend_from_slice(part);
        }
        m
    }

    /// The stored form of `payload` under `row_key`.
    pub fn seal(&self, row_key: &str, payload: &[u8]) -> Vec<u8> {
        let tag = hmac::sign(&self.hmac_key(), &self.message(row_key, payload));
        let mut out = Vec::with_capacity(PREFIX.len() + TAG_HEX + 1 + payload.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(hex::encode(tag.as_ref()).as_bytes());
        out.push(b'\n');
        out.extend_from_slice(payload);
        out
    }

    /// The payload of a stored row, if its MAC verifies for `row_key`.
    pub fn open<'a>(&self, row_key: &str, stored: &'a [u8]) -> Result<&'a [u8], RowProblem> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Err(RowProblem::Unauthenticated);
        };
        let (Some(tag_hex), Some(b'\n')) = (rest.get(..TAG_HEX), rest.get(TAG_HEX)) else {
            return Err(RowProblem::Malformed);
        };
        let tag = hex::decode(tag_hex).map_err(|_| RowProblem::Malformed)?;
        let payload = rest.get(TAG_HEX + 1..).unwrap_or_default();
        // Constant-time comparison inside aws-lc.
        hmac::verify(&self.hmac_key(), &self.message(row_key, payload), &tag)
            .map(|()| payload)
            .map_err(|_| RowProblem::BadMac)
    }
}

/// True when `stored` is in the authenticated format (whether or not its MAC verifies).
pub fn is_enveloped(stored: &[u8]) -> bool {
    stored.starts_with(PREFIX)
}

/// What a one-time adoption of rows written before integrity protection did (the identity and
/// attestation stores' `migrate_row_integrity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowMigration {
    /// The rows were already integrity-protected (the store's MAC'd marker verified): nothing done.
    pub already_protected: bool,
    /// Every unauthenticated row adopted (MAC'd) now.
    pub adopted: Vec<String>,
    /// Unauthenticated rows found next to authenticated ones, which are *not* adopted (they stay
    /// refused): the store was protected already, so they were written behind the server's back.
    pub refused: Vec<String>,
}

impl RowMigration {
    /// The report of an adoption pass that wrote its marker: the unauthenticated rows were
    /// adopted (`adopt`: the store had no protected rows yet) or left refused.
    pub fn of_pass(adopt: bool, names: Vec<String>) -> RowMigration {
        if adopt {
            RowMigration {
                adopted: names,
                ..RowMigration::default()
            }
        } else {
            RowMigration {
                refused: names,
                ..RowMigration::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: Table, b: u8) -> RowKey {
        RowKey::new(t, Zeroizing::new([b; 32]))
    }

    #[test]
    fn round_trip_and_every_binding() {
        let k = key(Table::Policies, 1);
        let row = k.seal("a/1", br#"{"role":"Crypto User"}"#);
        assert!(is_enveloped(&row));
        assert_eq!(k.open("a/1", &row).unwrap(), br#"{"role":"Crypto User"}"#);
        // Another row key (a valid row moved elsewhere).
        assert_eq!(k.open("a/2", &row), Err(RowProblem::BadMac));
        // Another table with the same key bytes.
        assert_eq!(
            key(Table::Meta, 1).open("a/1", &row),
            Err(RowProblem::BadMac)
        );
        // Another root.
        assert_eq!(
            key(Table::Policies, 2).open("a/1", &row),
            Err(RowProblem::BadMac)
        );
        // Edited payload, same MAC.
        let mut edited = row.clone();
        let n = edited.len();
        edited.truncate(n - 2);
        edited.extend_from_slice(b"X}");
        assert_eq!(k.open("a/1", &edited), Err(RowProblem::BadMac));
        // Edited MAC.
        let mut bad = row.clone();
        bad[6] = if bad[6] == b'0' { b'1' } else { b'0' };
        assert_eq!(k.open("a/1", &bad), Err(RowProblem::BadMac));
        // Legacy and malformed rows.
        assert_eq!(
            k.open("a/1", br#"{"role":"Administrator"}"#),
            Err(RowProblem::Unauthenticated)
        );
        assert_eq!(k.open("a/1", b"mac1:zz"), Err(RowProblem::Malformed));
        assert_eq!(
            k.open("a/1", format!("mac1:{}", "g".repeat(64)).as_bytes()),
            Err(RowProblem::Malformed)
        );
        // The key/payload boundary is unambiguous (length prefixes): the tag of ("ab", "c")
        // does not authenticate ("a", "bc").
        let mut forged = k.seal("ab", b"c");
        let n = forged.len();
        forged.truncate(n - 1);
        forged.extend_from_slice(b"bc");
        assert_eq!(k.open("a", &forged), Err(RowProblem::BadMac));
    }

    #[test]
    fn empty_payload_is_authenticated_too() {
        let k = key(Table::Meta, 3);
        let row = k.seal("m", b"");
        assert_eq!(k.open("m", &row).unwrap(), b"");
        assert_eq!(k.open("n", &row), Err(RowProblem::BadMac));
    }
}
