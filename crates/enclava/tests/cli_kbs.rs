//! `enclava kbs resource|policy` against `enclava server --dev` started from the same binary,
//! configured the way the issue's Contract says (ENCLAVA_URL, ENCLAVA_CA_CERT,
//! ENCLAVA_TOKEN_FILE).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_enclava");

struct Dev {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut child = Command::new(BIN)
        .args(["server", "--dev", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(90);
    let url = loop {
        assert!(Instant::now() < deadline, "server did not become ready");
        let line = lines.next().expect("server output").unwrap();
        if let Some(u) = line.strip_prefix("ready ")
            && u.starts_with("https://")
        {
            break u.trim().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Dev { child, url, dir }
}

impl Dev {
    fn run(&self, args: &[&str]) -> Output {
        let data = self.dir.path().join("data");
        Command::new(BIN)
            .env("ENCLAVA_URL", &self.url)
            .env("ENCLAVA_CA_CERT", data.join("ca.pem"))
            .env("ENCLAVA_TOKEN_FILE", data.join("admin.token"))
            .env_remove("ENCLAVA_TOKEN")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn kbs_resource_and_policy_commands() {
    let s = start();
    let tmp = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0u8..=255).chain(*b"\n\0tail").collect();
    let f = write(tmp.path(), "key.bin", &bytes);
    ok(&s.run(&["kbs", "resource", "set", "default/key/1", "--file", &f]));
    let out = tmp.path().join("out.bin");
    ok(&s.run(&[
        "kbs",
        "resource",
        "get",
        "default/key/1",
        "--file",
        &out.to_string_lossy(),
    ]));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let list = ok(&s.run(&["kbs", "resource", "list", "-o", "json"]));
    assert!(list.contains("default/key/1"), "{list}");

    // Bad path: exit 2 before anything is sent.
    assert_eq!(
        s.run(&["kbs", "resource", "set", "a/b", "--file", &f])
            .status
            .code(),
        Some(2)
    );
    // Unknown resource: the server says no (exit 1).
    assert_eq!(
        s.run(&["kbs", "resource", "get", "default/key/404"])
            .status
            .code(),
        Some(1)
    );

    // Policies: set, get back, test allowed and denied.
    let policy = "package policy\nimport rego.v1\ndefault allow := false\nallow if input.tee == \"sample\"\n";
    let p = write(tmp.path(), "p.rego", policy.as_bytes());
    ok(&s.run(&["kbs", "policy", "set", "--file", &p]));
    assert_eq!(ok(&s.run(&["kbs", "policy", "get"])), policy);
    let yes = write(tmp.path(), "yes.json", br#"{"tee":"sample"}"#);
    let no = write(tmp.path(), "no.json", br#"{"tee":"snp"}"#);
    ok(&s.run(&[
        "kbs",
        "policy",
        "test",
        "--path",
        "default/key/1",
        "--claims",
        &yes,
    ]));
    assert_eq!(
        s.run(&[
            "kbs",
            "policy",
            "test",
            "--path",
            "default/key/1",
            "--claims",
            &no
        ])
        .status
        .code(),
        Some(1)
    );

    ok(&s.run(&["kbs", "resource", "delete", "default/key/1"]));
    assert_eq!(
        s.run(&["kbs", "resource", "get", "default/key/1"])
            .status
            .code(),
        Some(1)
    );
}
