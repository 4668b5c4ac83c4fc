//! The CLI pieces every versioned vault object kind shares (keys, secrets; certificates next):
//! listing (live or deleted), versions, soft delete, recover, purge, backup and restore. Each kind
//! names its URL collection and how it prints one object or a listing; the requests, paging and
//! messages are written once here.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::client::{
    self, CliError, CliResult, Client, print_json, read_input, usage, write_output,
};

/// One object kind as the CLI sees it.
pub struct ObjectCli {
    /// `"key"`: for messages.
    pub kind: &'static str,
    /// `"keys"`: the URL collection (the deleted one is `deleted` + this).
    pub collection: &'static str,
    /// Print one object (a bundle or a deleted bundle, without a value).
    pub print: fn(&Client, &Value),
    /// Print a listing: `deleted` adds the purge date, `versions` heads the first column
    /// VERSION instead of NAME.
    pub print_items: fn(&Client, Vec<Value>, bool, bool),
}

/// The lifecycle commands every object kind has, with the same arguments.
pub enum Lifecycle {
    List {
        deleted: bool,
        page_size: Option<u32>,
    },
    Versions {
        name: String,
        page_size: Option<u32>,
    },
    Delete {
        name: String,
    },
    Recover {
        name: String,
    },
    Purge {
        name: String,
    },
    Backup {
        name: String,
        out: PathBuf,
    },
    Restore {
        input: PathBuf,
    },
}

impl ObjectCli {
    /// Run one lifecycle command against the server.
    pub fn run(&self, c: &Client, cmd: Lifecycle) -> CliResult<()> {
        let (kind, coll) = (self.kind, self.collection);
        match cmd {
            Lifecycle::List { deleted, page_size } => {
                let path = if deleted {
                    format!("/deleted{coll}")
                } else {
                    format!("/{coll}")
                };
                let items = c.list_all(&path, &client::page_query(page_size).as_pairs())?;
                (self.print_items)(c, items, deleted, false);
            }
            Lifecycle::Versions { name, page_size } => {
                let items = c.list_all(
                    &format!("/{coll}/{name}/versions"),
                    &client::page_query(page_size).as_pairs(),
                )?;
                (self.print_items)(c, items, false, true);
            }
            Lifecycle::Delete { name } => {
                let v = c.call("DELETE", &format!("/{coll}/{name}"), &[], None)?;
                (self.print)(c, &v);
            }
            Lifecycle::Recover { name } => {
                let v = c.call("POST", &format!("/deleted{coll}/{name}/recover"), &[], None)?;
                (self.print)(c, &v);
            }
            Lifecycle::Purge { name } => {
                let v = c.call("DELETE", &format!("/deleted{coll}/{name}"), &[], None)?;
                if c.json_output() {
                    print_json(&if v.is_null() {
                        json!({ "purged": name })
                    } else {
                        v
                    });
                } else {
                    println!("purged {kind} {name}");
                }
            }
            Lifecycle::Backup { name, out } => {
                let v = c.call("POST", &format!("/{coll}/{name}/backup"), &[], None)?;
                let blob = v.get("value").and_then(Value::as_str).ok_or_else(|| {
                    CliError::Transport("backup response has no string `value`".into())
                })?;
                write_output(&out, blob.as_bytes())?;
                if out.as_os_str() != "-" {
                    eprintln!("wrote backup of {kind} {name} to {}", out.display());
                }
            }
            Lifecycle::Restore { input } => {
                let bytes = read_input(&input)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    usage(format!(
                        "backup file {} is not text (expected the base64 blob `{kind} backup` writes)",
                        input.display()
                    ))
                })?;
                let blob = text.trim();
                if blob.is_empty() {
                    return Err(usage(format!("backup file {} is empty", input.display())));
                }
                let v = c.call(
                    "POST",
                    &format!("/{coll}/restore"),
                    &[],
                    Some(&json!({ "value": blob })),
                )?;
                (self.print)(c, &v);
            }
        }
        Ok(())
    }
}
