//! The soft-delete lifecycle keys and secrets share: delete moves the object's record from its
//! live table to its deleted table, recover moves it back, purge removes the deleted record and
//! every version row. Each step is one transaction whose `Expect`s make it lose cleanly to a
//! concurrent change (`Conflict`) instead of overwriting it.

use enclava_store::{Op, Table};

use crate::Vault;
use crate::error::{Result, VaultError};

/// The three tables of one object kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tables {
    /// `"key"` or `"secret"`, for messages.
    pub kind: &'static str,
    pub live: Table,
    pub deleted: Table,
    pub versions: Table,
}

pub(crate) const KEYS: Tables = Tables {
    kind: "key",
    live: Table::Keys,
    deleted: Table::DeletedKeys,
    versions: Table::KeyVersions,
};

pub(crate) const SECRETS: Tables = Tables {
    kind: "secret",
    live: Table::Secrets,
    deleted: Table::DeletedSecrets,
    versions: Table::SecretVersions,
};

pub(crate) const CERTIFICATES: Tables = Tables {
    kind: "certificate",
    live: Table::Certificates,
    deleted: Table::DeletedCertificates,
    versions: Table::CertificateVersions,
};

/// Move row `nk` from table `from` (where it must still be `old`) to table `to` (where it must
/// be absent) as `new`.
pub(crate) fn move_row(from: Table, to: Table, nk: &str, old: Vec<u8>, new: Vec<u8>) -> Vec<Op> {
    vec![
        Op::Expect {
            table: from,
            key: nk.to_string(),
            value: Some(old),
        },
        Op::Delete {
            table: from,
            key: nk.to_string(),
        },
        Op::Expect {
            table: to,
            key: nk.to_string(),
            value: None,
        },
        Op::Put {
            table: to,
            key: nk.to_string(),
            value: new,
        },
    ]
}

impl Vault {
    /// Soft delete: the live record `old` becomes the deleted record `deleted`.
    pub(crate) fn soft_delete_row(
        &self,
        t: Tables,
        nk: &str,
        old: Vec<u8>,
        deleted: Vec<u8>,
    ) -> Result<()> {
        self.store
            .transact(move_row(t.live, t.deleted, nk, old, deleted))?;
        Ok(())
    }

    /// Recover: the deleted record `old` becomes the live record `live`.
    pub(crate) fn recover_row(
        &self,
        t: Tables,
        nk: &str,
        old: Vec<u8>,
        live: Vec<u8>,
    ) -> Result<()> {
        self.store
            .transact(move_row(t.deleted, t.live, nk, old, live))?;
        Ok(())
    }

    /// Purge: the deleted record (still `old`) and every version row, in one transaction.
    pub(crate) fn purge_rows(&self, t: Tables, nk: &str, old: Vec<u8>) -> Result<()> {
        let mut ops = vec![
            Op::Expect {
                table: t.deleted,
                key: nk.to_string(),
                value: Some(old),
            },
            Op::Delete {
                table: t.deleted,
                key: nk.to_string(),
            },
        ];
        for k in self.all_row_keys(t.versions, &format!("{nk}/"))? {
            ops.push(Op::Delete {
                table: t.versions,
                key: k,
            });
        }
        self.store.transact(ops)?;
        Ok(())
    }

    /// Refuse a purge under purge protection (Key Vault's `PurgeProtectionEnabled`).
    pub(crate) fn check_purge_allowed(&self, t: Tables, name: &str) -> Result<()> {
        if self.options.purge_protection {
            return Err(VaultError::forbidden(
                format!(
                    "Operation purge is not allowed on {} '{name}': purge protection is enabled for this vault; it will be purged automatically after its scheduled purge date",
                    t.kind
                ),
                "PurgeProtectionEnabled",
            ));
        }
        Ok(())
    }

    /// Purge every deleted object of a kind whose scheduled purge time (`scheduled_purge` of the
    /// stored deleted record) is `<= now`; a row changed concurrently is skipped. Returns how many
    /// were purged.
    pub(crate) fn purge_expired_rows(
        &self,
        t: Tables,
        now: i64,
        scheduled_purge: impl Fn(&[u8]) -> Result<i64>,
        purge: impl Fn(&str, Vec<u8>) -> Result<()>,
    ) -> Result<usize> {
        let mut purged = 0;
        let mut after: Option<String> = None;
        loop {
            let rows = self.store.list(t.deleted, "", after.as_deref(), 200)?;
            let n = rows.len();
            for (k, v) in rows {
                after = Some(k.clone());
                if scheduled_purge(&v)? <= now {
                    match purge(&k, v) {
                        Ok(()) => purged += 1,
                        Err(VaultError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if n < 200 {
                return Ok(purged);
            }
        }
    }
}
