//! The PostgreSQL side of the harness: the test cluster's URL (from scripts/postgres-test.sh) and
//! a fresh database per test.

use std::path::Path;
use std::time::Duration;

use super::TestServer;

const URL_VAR: &str = "ENCLAVA_TEST_POSTGRES_URL";

/// The test cluster's URL; `None` (test skipped with a notice) without it, a panic under CI=true.
pub fn postgres_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{URL_VAR} is not set under CI=true: run the tests through scripts/postgres-test.sh"
        ),
        _ => {
            eprintln!(
                "NOTICE: {URL_VAR} not set, PostgreSQL test skipped (run through scripts/postgres-test.sh)"
            );
            None
        }
    }
}

/// Run `sql` (statements that may not run in a transaction block) on the cluster.
pub fn admin_sql(url: &str, sql: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        for statement in sql {
            client.batch_execute(statement).await.unwrap();
        }
        drop(client);
        let _ = task.await;
    });
}

/// The name of test `name`'s database: `{prefix}_{name}_{pid}` (the prefix tells the test files
/// apart, the pid concurrent runs).
pub fn database_name(prefix: &str, name: &str) -> String {
    format!("{prefix}_{name}_{}", std::process::id())
}

/// Create an empty database `database_name(prefix, name)` in the test cluster and return the
/// cluster URL pointing at it.
pub fn fresh_database_url(url: &str, prefix: &str, name: &str) -> String {
    let name = database_name(prefix, name);
    admin_sql(
        url,
        &[
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ],
    );
    // postgres://user:pw@host:port/DB?query -> same with our database.
    let scheme_end = url.find("://").unwrap() + 3;
    let path_start = url[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(url.len());
    let query = url[path_start..]
        .find('?')
        .map(|i| &url[path_start + i..])
        .unwrap_or("");
    format!("{}/{name}{query}", &url[..path_start])
}

/// `TestServer::admin_token` looks in the harness's own directory; a replica's is `data`.
pub fn admin_token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .expect("admin.token")
        .trim()
        .to_string()
}

/// Stop a replica cleanly (its lease given back, its head file written).
pub fn stop(t: TestServer) {
    let TestServer { server, rt, .. } = t;
    rt.block_on(server.run_until(async {}, Duration::from_secs(5)))
        .expect("clean stop");
}
