//! The typed client against the real server (in-process, HTTPS on loopback, the dev server's own
//! CA): typed models both ways, typed errors with the server's code and status, paging through
//! nextLink, the pinned CA, and a token that never leaks.

use std::path::PathBuf;
use std::time::Duration;

use enclava_client::model::{KeyAttributes, KeyBundle, KeyCreateParameters, KeyItem};
use enclava_client::{Client, Config, Error};
use enclava_server::{PartialConfig, RunningServer};
use zeroize::Zeroizing;

struct Dev {
    _dir: tempfile::TempDir,
    data: PathBuf,
    server: RunningServer,
    _rt: tokio::runtime::Runtime,
}

fn start_dev() -> Dev {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let config = PartialConfig {
        addr: Some("127.0.0.1:0".into()),
        data_dir: Some(data.clone()),
        dev: Some(true),
        ..Default::default()
    }
    .resolve()
    .expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(enclava_server::start(config))
        .expect("server starts");
    Dev {
        _dir: dir,
        data,
        server,
        _rt: rt,
    }
}

impl Dev {
    fn config(&self, token: Option<&str>) -> Config {
        let mut c = Config::new(self.server.local_url.clone());
        c.ca_cert = Some(self.data.join("ca.pem"));
        c.token = token.map(|t| Zeroizing::new(t.to_string()));
        c.timeout = Duration::from_secs(30);
        c
    }

    fn admin(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string()
    }
}

#[test]
fn typed_requests_errors_and_paging_against_the_real_server() {
    let dev = start_dev();
    let admin = dev.admin();
    let c = Client::new(dev.config(Some(&admin))).expect("client");
    assert!(!format!("{c:?}").contains(&admin), "token in Debug");

    // A typed create and a typed answer: the server's own wire models both ways.
    let mut names = Vec::new();
    for i in 0..3 {
        let name = format!("k{i}");
        let params = KeyCreateParameters {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            attributes: Some(KeyAttributes {
                enabled: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let b: KeyBundle = c
            .send("POST", &format!("/keys/{name}/create"), &[], Some(&params))
            .expect("create");
        assert_eq!(b.key.crv.as_deref(), Some("P-256"));
        assert!(
            b.key
                .kid
                .as_deref()
                .unwrap_or("")
                .contains(&format!("/keys/{name}/"))
        );
        names.push(name);
    }
    let got = c.get_key("k1", None).expect("get");
    assert_eq!(got.key.kty.as_deref(), Some("EC"));
    assert!(
        got.key.d.is_none(),
        "a key read never carries the private part"
    );

    // Paging: one item per page, the client follows nextLink to the end.
    let items: Vec<KeyItem> = c.list("/keys", &[("maxresults", "1")]).expect("list");
    let mut listed: Vec<String> = items
        .iter()
        .map(|i| i.kid.rsplit('/').next().unwrap_or("").to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, names);

    // Typed errors carry the server's status and code.
    match c.get_key("missing", None) {
        Err(Error::Api(e)) => {
            assert_eq!(e.status, 404);
            assert_eq!(e.code, "KeyNotFound", "{e:?}");
            assert!(e.message.is_some());
        }
        other => panic!("expected a 404, found {other:?}"),
    }
    // Names that would change the route are refused before anything is sent.
    assert!(matches!(
        c.get_key("../secrets/x", None),
        Err(Error::Config(_))
    ));

    // Without a token: 401 Unauthorized, typed.
    let anon = Client::new(dev.config(None)).expect("client");
    match anon.get_key("k1", None) {
        Err(Error::Api(e)) => assert_eq!(e.status, 401, "{e:?}"),
        other => panic!("expected a 401, found {other:?}"),
    }

    // The public roots do not trust the dev server's CA: a transport error naming TLS, and the
    // token was never sent (the handshake failed first).
    let mut public = dev.config(Some(&admin));
    public.ca_cert = None;
    let err = Client::new(public)
        .expect("client")
        .get_key("k1", None)
        .unwrap_err();
    match &err {
        Error::Transport(m) => assert!(m.contains("--ca-cert"), "{m}"),
        other => panic!("expected a TLS failure, found {other:?}"),
    }
    assert!(!err.to_string().contains(&admin));

    // The attestation routes through the typed wire shapes.
    let ch = c.challenge().expect("challenge");
    assert!(!ch.nonce.is_empty());
}
