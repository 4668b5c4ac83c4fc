//! The CLI pieces every versioned vault object kind shares (keys, secrets; certificates next):
//! listing (live or deleted), versions, soft delete, recover, purge, backup and restore. Each kind
//! names its URL collection and how it prints one object or a listing; the requests, paging and
//! messages are written once here.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::client::{
    self, CliError, CliResult, Client, id_segment, print_json, print_table, read_input, show,
    show_time, usage, write_output,
};

/// One object kind as the CLI sees it.
pub struct ObjectCli {
    /// `"key"`: for messages.
    pub kind: &'static str,
    /// `"keys"`: the URL collection (the deleted one is `deleted` + this).
    pub collection: &'static str,
    /// Print one object (a bundle or a deleted bundle, without a value).
    pub print: fn(&Client, &Value),
    /// The field of a listed item holding its id (`kid` for keys, `id` otherwise).
    pub id_field: &'static str,
    /// The listing's columns after the name (or version).
    pub columns: &'static [Column],
}

/// One column of a listing table.
pub struct Column {
    pub header: &'static str,
    /// Where the value is in an item.
    pub path: &'static [&'static str],
    /// A Unix time shown as a date.
    pub time: bool,
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
                self.print_items(c, items, deleted, false);
            }
            Lifecycle::Versions { name, page_size } => {
                let items = c.list_all(
                    &format!("/{coll}/{name}/versions"),
                    &client::page_query(page_size).as_pairs(),
                )?;
                self.print_items(c, items, false, true);
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

    /// Print a listing: the name (or, for `versions`, the version) from the item's id, the
    /// kind's columns, and for `deleted` the purge date.
    fn print_items(&self, c: &Client, items: Vec<Value>, deleted: bool, versions: bool) {
        if c.json_output() {
            print_json(&Value::Array(items));
            return;
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|it| {
                // Items carry `.../{collection}/NAME`, version items `.../NAME/VERSION`.
                let mut row = vec![id_segment(client::s(it, &[self.id_field]), 0).to_string()];
                for col in self.columns {
                    row.push(if col.time {
                        show_time(it, col.path)
                    } else {
                        show(it, col.path)
                    });
                }
                if deleted {
                    row.push(show_time(it, &["scheduledPurgeDate"]));
                }
                row
            })
            .collect();
        let mut headers = vec![if versions { "VERSION" } else { "NAME" }];
        headers.extend(self.columns.iter().map(|c| c.header));
        if deleted {
            headers.push("PURGE AFTER");
        }
        print_table(&headers, &rows);
    }
}
