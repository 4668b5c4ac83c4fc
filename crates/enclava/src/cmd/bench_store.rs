//! What `enclava bench vault|attest --store URL [--replicas N]` needs besides the measurements:
//! a fresh database per run on the PostgreSQL cluster the URL names (created at start, dropped
//! at the end, so a second run never meets the first one's state), and replica server processes
//! on one database behind HAProxy.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bench_attest::Scratch;

/// The password never appears in what the bench prints.
pub(super) fn redact(url: &str) -> String {
    enclava_store::postgres::redact_url(url)
}

/// A database created for one bench run in the cluster of the given URL, dropped on drop
/// (`WITH (FORCE)`: servers killed mid-run may leave sessions behind). The name is unique per
/// run, so even a run killed before it could drop its database does not disturb the next one.
/// The URL's role needs `CREATEDB`.
pub(super) struct FreshDatabase {
    admin_url: String,
    name: String,
    pub(super) url: String,
}

impl FreshDatabase {
    pub(super) fn create(base: &str, what: &str) -> Result<FreshDatabase, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // Lower-case letters, digits and `_` only: an identifier that needs no quoting.
        let name = format!("enclava_bench_{what}_{}_{nanos}", std::process::id());
        admin(base, &format!("CREATE DATABASE {name}"))?;
        Ok(FreshDatabase {
            admin_url: base.to_string(),
            url: with_database(base, &name),
            name,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Err(e) = admin(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!(
                "warning: could not drop the bench database {}: {e}",
                self.name
            );
        }
    }
}

/// One statement on the given database. CREATE/DROP DATABASE cannot run in a transaction, and the
/// store has no statement for them, so this is a direct connection. Without TLS: the bench is for
/// a test or staging cluster (`sslmode=disable` or `prefer`); `sslmode=require` is refused by the
/// driver with a clear error.
fn admin(url: &str, sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to {} to create or drop the bench database (the bench \
                     connects without TLS; use a test cluster with sslmode=disable or prefer): {e}",
                    redact(url)
                )
            })?;
        let task = tokio::spawn(conn);
        let result = client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("`{sql}` failed (the role needs CREATEDB): {e}"));
        drop(client);
        let _ = task.await;
        result
    })
}

/// The URL with its database replaced: the path of a `postgres://` URL, or a `dbname=` appended
/// to a `key=value` string (the last occurrence wins).
pub(super) fn with_database(url: &str, name: &str) -> String {
    let url = url.trim();
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return format!("{url} dbname={name}");
    };
    let rest = &url[scheme_end..];
    let authority_end = rest
        .find(['/', '?'])
        .map(|i| scheme_end + i)
        .unwrap_or(url.len());
    let query = url[authority_end..]
        .find('?')
        .map(|i| &url[authority_end + i..])
        .unwrap_or("");
    format!("{}/{name}{query}", &url[..authority_end])
}

/// A free loopback port (bound then released: another process could take it in between, which
/// would make the bench fail loudly, not measure the wrong thing).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Fails with a clear message when HAProxy is not installed (checked before anything starts).
pub(super) fn require_haproxy() -> Result<(), String> {
    match Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`haproxy -v` failed ({s})")),
        Err(e) => Err(format!(
            "--replicas puts the replica processes behind HAProxy, but `haproxy` cannot be run \
             ({e}): install it (Debian: apt-get install haproxy) and make sure it is on PATH"
        )),
    }
}

/// `replicas` server processes (this executable's `server --dev`) on one fresh database, and one
/// HAProxy (TCP mode: TLS goes through to the replicas) with two front ends: one sending to the
/// first replica only, one balancing round-robin over all of them. The same proxy hop for both
/// figures, so their ratio is the replicas' and nothing else.
///
/// The first replica initializes the database; the others start from a copy of its data directory
/// (dev unseal key, TLS certificate and CA), which is how a `--dev` replica joins a cluster.
pub(super) struct Replicas {
    children: Vec<Child>,
    haproxy: Option<Child>,
    pub(super) one_url: String,
    pub(super) all_url: String,
    pub(super) ca: PathBuf,
    pub(super) token: String,
    pub(super) count: usize,
    dir: Scratch,
    // Last: dropped after the processes are gone.
    _db: FreshDatabase,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in self.haproxy.iter_mut().chain(self.children.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Replicas {
    /// `config`: TOML for every replica's `--config` file (e.g. an `[attestation]` table), if any.
    pub(super) fn start(
        store: &str,
        count: usize,
        config: Option<&str>,
    ) -> Result<Replicas, String> {
        require_haproxy()?;
        let count = count.max(1);
        let db = FreshDatabase::create(store, "replicas")?;
        let dir = Scratch::new("replicas")?;
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to start replicas: {e}"))?;
        let (one_port, all_port) = (free_port()?, free_port()?);
        // Every replica announces the balanced address (ids in responses, token issuer).
        let public_url = format!("https://127.0.0.1:{all_port}");
        let mut r = Replicas {
            children: Vec::new(),
            haproxy: None,
            one_url: format!("https://127.0.0.1:{one_port}"),
            all_url: public_url.clone(),
            ca: dir.path().join("replica-0").join("ca.pem"),
            token: String::new(),
            count,
            dir,
            _db: db,
        };
        let config_path = match config {
            Some(text) => {
                let p = r.dir.path().join("replica.toml");
                std::fs::write(&p, text).map_err(|e| e.to_string())?;
                Some(p)
            }
            None => None,
        };
        let mut ports = Vec::new();
        for i in 0..count {
            let data = r.dir.path().join(format!("replica-{i}"));
            if i > 0 {
                copy_dir(&r.dir.path().join("replica-0"), &data)?;
            }
            let (child, port) = start_replica(
                &exe,
                &data,
                &r._db.url,
                &public_url,
                config_path.as_deref(),
                i,
            )?;
            r.children.push(child);
            ports.push(port);
            if i == 0 {
                r.token = std::fs::read_to_string(data.join("admin.token"))
                    .map_err(|e| format!("reading the first replica's bootstrap token: {e}"))?
                    .trim()
                    .to_string();
            }
        }
        let cfg = haproxy_config(one_port, all_port, &ports);
        let cfg_path = r.dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(r.dir.path().join("haproxy.log")).map_err(|e| e.to_string())?;
        r.haproxy = Some(
            Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start haproxy: {e}"))?,
        );
        for port in [one_port, all_port] {
            wait_for_port(port, Duration::from_secs(10)).map_err(|e| {
                let log =
                    std::fs::read_to_string(r.dir.path().join("haproxy.log")).unwrap_or_default();
                format!("{e}; haproxy's log:\n{log}")
            })?;
        }
        Ok(r)
    }
}

fn haproxy_config(one_port: u16, all_port: u16, replica_ports: &[u16]) -> String {
    let mut cfg = format!(
        "global\n  maxconn 4096\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n\n\
         frontend one\n  bind 127.0.0.1:{one_port}\n  default_backend one\n\n\
         backend one\n  server r0 127.0.0.1:{}\n\n\
         frontend all\n  bind 127.0.0.1:{all_port}\n  default_backend all\n\n\
         backend all\n  balance roundrobin\n",
        replica_ports.first().copied().unwrap_or_default()
    );
    for (i, p) in replica_ports.iter().enumerate() {
        cfg.push_str(&format!("  server r{i} 127.0.0.1:{p}\n"));
    }
    cfg
}

fn wait_for_port(port: u16, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "nothing listens on 127.0.0.1:{port} after {limit:?}"
    ))
}

/// Starts `enclava server --dev` on the shared database and waits for its `ready URL` line.
/// The database URL goes through the environment (`ENCLAVA_STORE`), not the process list.
fn start_replica(
    exe: &Path,
    data: &Path,
    store: &str,
    public_url: &str,
    config: Option<&Path>,
    index: usize,
) -> Result<(Child, u16), String> {
    let log_path = data.with_extension("log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    if let Some(c) = config {
        cmd.env("ENCLAVA_CONFIG", c);
    } else {
        cmd.env_remove("ENCLAVA_CONFIG");
    }
    let mut child = cmd
        .args([
            "server",
            "--dev",
            "--addr",
            "127.0.0.1:0",
            "--public-url",
            public_url,
        ])
        .arg("--data-dir")
        .arg(data)
        .env("ENCLAVA_STORE", store)
        .env_remove("ENCLAVA_DATA_DIR")
        .env_remove("ENCLAVA_ADDR")
        .env_remove("ENCLAVA_PUBLIC_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start replica {index}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout from the replica")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let failed = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        format!("replica {index} did not start: {why}; its log:\n{log}")
    };
    let line = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(l) => l,
        Err(_) => return Err(failed(&mut child, "no `ready` line within 120 s".into())),
    };
    let port = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|u| u.rsplit(':').next())
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
    match port {
        Some(p) => Ok((child, p)),
        None => Err(failed(
            &mut child,
            format!("unexpected first line {line:?}"),
        )),
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_replaced_in_urls_and_key_value_strings() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "b"),
            "postgres://u:p@h:5432/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u:p@h1,h2", "b"),
            "postgres://u:p@h1,h2/b"
        );
        assert_eq!(
            with_database("postgresql://h?target_session_attrs=read-write", "b"),
            "postgresql://h/b?target_session_attrs=read-write"
        );
        assert_eq!(
            with_database("host=h user=u", "b"),
            "host=h user=u dbname=b"
        );
    }

    #[test]
    fn haproxy_config_has_one_single_and_one_balanced_front_end() {
        let cfg = haproxy_config(1000, 1001, &[2000, 2001]);
        assert!(cfg.contains("bind 127.0.0.1:1000"));
        assert!(cfg.contains("backend one\n  server r0 127.0.0.1:2000\n"));
        assert!(cfg.contains("server r0 127.0.0.1:2000\n  server r1 127.0.0.1:2001\n"));
        assert!(cfg.contains("mode tcp"));
    }
}
