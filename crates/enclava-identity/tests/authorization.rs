//! The full role x action x scope x resource matrix, checked against an expectation written here
//! independently of the implementation's table.

use std::collections::BTreeSet;
use std::sync::Arc;

use enclava_identity::{Action, Identity, IdentityConfig, Resource, Role, RoleAssignment, Scope};
use enclava_store::SqliteStore;

/// An `Identity` with row integrity keys installed (what the server does after unseal).
fn new_identity(store: Arc<dyn enclava_store::Store>, config: IdentityConfig) -> Identity {
    let id = Identity::new(store, config);
    id.set_row_keys(Some(
        enclava_identity::RowKeys::derive(|_| {
            Ok::<_, String>(zeroize::Zeroizing::new([0x5au8; 32]))
        })
        .unwrap(),
    ));
    id
}

/// Every action's wire name. If an action is added, this list (and the expectations) must be
/// updated, which the first test enforces.
const ALL: &[&str] = &[
    "keys/create",
    "keys/import",
    "keys/get",
    "keys/list",
    "keys/versions/list",
    "keys/update",
    "keys/delete",
    "deletedkeys/get",
    "deletedkeys/list",
    "deletedkeys/recover",
    "deletedkeys/purge",
    "keys/backup",
    "keys/restore",
    "keys/rotate",
    "keys/rotationpolicy/get",
    "keys/rotationpolicy/set",
    "keys/encrypt",
    "keys/decrypt",
    "keys/wrapkey",
    "keys/unwrapkey",
    "keys/sign",
    "keys/verify",
    "keys/release",
    "rng",
    "secrets/set",
    "secrets/get",
    "secrets/list",
    "secrets/versions/list",
    "secrets/update",
    "secrets/delete",
    "deletedsecrets/get",
    "deletedsecrets/list",
    "deletedsecrets/recover",
    "deletedsecrets/purge",
    "secrets/backup",
    "secrets/restore",
    "audit/read",
    "roles/manage",
    "principals/manage",
    "operator/seal",
    "policies/manage",
    "service-keys/rotate",
    "certificates/create",
    "certificates/import",
    "certificates/get",
    "certificates/list",
    "certificates/versions/list",
    "certificates/update",
    "certificates/delete",
    "deletedcertificates/get",
    "deletedcertificates/list",
    "deletedcertificates/recover",
    "deletedcertificates/purge",
    "certificates/backup",
    "certificates/restore",
    "certificates/policy/get",
    "certificates/policy/set",
    "certificates/pending/get",
    "certificates/pending/update",
    "certificates/pending/merge",
    "certificates/issuers/get",
    "certificates/issuers/manage",
    "certificates/contacts/get",
    "certificates/contacts/manage",
];

/// Actions not about one named object: need vault scope.
const VAULT_LEVEL: &[&str] = &[
    "keys/list",
    "deletedkeys/list",
    "keys/restore",
    "rng",
    "secrets/list",
    "deletedsecrets/list",
    "secrets/restore",
    "audit/read",
    "roles/manage",
    "principals/manage",
    "operator/seal",
    "policies/manage",
    "service-keys/rotate",
    "certificates/list",
    "deletedcertificates/list",
    "certificates/restore",
    "certificates/issuers/get",
    "certificates/issuers/manage",
    "certificates/contacts/get",
    "certificates/contacts/manage",
];

const CRYPTO_OPS: &[&str] = &[
    "keys/encrypt",
    "keys/decrypt",
    "keys/wrapkey",
    "keys/unwrapkey",
    "keys/sign",
    "keys/verify",
];

fn expected_actions(role: Role) -> BTreeSet<&'static str> {
    let mut s = BTreeSet::new();
    match role {
        Role::Administrator => s.extend(ALL.iter().copied()),
        Role::CryptoOfficer => {
            s.extend(ALL.iter().copied().filter(|a| {
                (a.starts_with("keys/") || a.starts_with("deletedkeys/")) && *a != "keys/release"
            }));
            s.insert("rng");
        }
        Role::CryptoUser => {
            s.extend(["keys/get", "keys/list", "keys/versions/list", "rng"]);
            s.extend(CRYPTO_OPS.iter().copied());
        }
        Role::ReleaseUser => {
            s.insert("keys/release");
        }
        Role::SecretsOfficer => s.extend(
            ALL.iter()
                .copied()
                .filter(|a| a.starts_with("secrets/") || a.starts_with("deletedsecrets/")),
        ),
        Role::SecretsUser => s.extend(["secrets/get", "secrets/list", "secrets/versions/list"]),
        Role::Auditor => s.extend([
            "audit/read",
            "keys/get",
            "keys/list",
            "keys/versions/list",
            "keys/rotationpolicy/get",
            "deletedkeys/get",
            "deletedkeys/list",
            "secrets/list",
            "secrets/versions/list",
            "deletedsecrets/list",
        ]),
        Role::AttestationContributor => {
            s.insert("policies/manage");
        }
        // Key Vault's Certificates Officer: everything about certificates, issuers and contacts;
        // the private key stays behind secrets/get and the crypto roles.
        Role::CertificatesOfficer => {
            s.extend(ALL.iter().copied().filter(|a| {
                a.starts_with("certificates/") || a.starts_with("deletedcertificates/")
            }))
        }
        Role::CertificateUser => s.extend([
            "certificates/get",
            "certificates/list",
            "certificates/versions/list",
        ]),
    }
    s
}

fn expected_covers(scope: &Scope, action: &str, resource: &Resource) -> bool {
    match scope {
        Scope::Vault => true,
        _ if VAULT_LEVEL.contains(&action) => false,
        Scope::Key(k) => *resource == Resource::Key(k.clone()),
        Scope::Secret(s) => *resource == Resource::Secret(s.clone()),
        Scope::Certificate(c) => *resource == Resource::Certificate(c.clone()),
    }
}

fn identity() -> Identity {
    new_identity(
        Arc::new(SqliteStore::in_memory().unwrap()),
        IdentityConfig::new("https://vault.test"),
    )
}

#[test]
fn action_list_is_complete_and_names_round_trip() {
    let names: BTreeSet<&str> = Action::ALL.iter().map(|a| a.name()).collect();
    let mine: BTreeSet<&str> = ALL.iter().copied().collect();
    assert_eq!(
        names, mine,
        "the test's action list must name every action exactly"
    );
    assert_eq!(Action::ALL.len(), ALL.len());
    for a in Action::ALL {
        assert_eq!(a.name().parse::<Action>().unwrap(), *a);
        assert_eq!(a.is_vault_level(), VAULT_LEVEL.contains(&a.name()), "{a}");
    }
    assert!("keys/explode".parse::<Action>().is_err());
}

#[test]
fn full_matrix_role_action_scope_resource() {
    let id = identity();
    let scopes = [
        Scope::Vault,
        Scope::Key("k1".into()),
        Scope::Secret("s1".into()),
        Scope::Certificate("c1".into()),
    ];
    let resources = [
        Resource::Vault,
        Resource::Key("k1".into()),
        Resource::Key("k2".into()),
        Resource::Secret("s1".into()),
        Resource::Secret("s2".into()),
        Resource::Certificate("c1".into()),
        Resource::Certificate("c2".into()),
    ];
    let mut checked = 0;
    let mut allowed = 0;
    for role in Role::ALL {
        let grants = expected_actions(role);
        for scope in &scopes {
            let (p, _) = id
                .create_service_principal(&format!("{role} at {scope}"), 0)
                .unwrap();
            id.assign_role(&p.id, role, scope.clone(), 0).unwrap();
            for action in Action::ALL {
                for res in &resources {
                    let want = grants.contains(action.name())
                        && expected_covers(scope, action.name(), res);
                    let d = id.authorize(&p, *action, res).unwrap();
                    assert_eq!(
                        d.allowed, want,
                        "role {role} scope {scope} action {action} resource {res:?}: reason {}",
                        d.reason
                    );
                    assert!(!d.reason.is_empty());
                    checked += 1;
                    allowed += usize::from(want);
                }
            }
        }
    }
    assert_eq!(checked, Role::ALL.len() * 4 * ALL.len() * 7);
    assert_eq!(Role::ALL.len(), 10);
    // Sanity: the expectation is neither all-allow nor all-deny.
    assert!(allowed > 0 && allowed < checked);
}

#[test]
fn default_deny_without_assignments_and_when_disabled() {
    let id = identity();
    let (p, _) = id.create_service_principal("nobody", 0).unwrap();
    for action in Action::ALL {
        for res in [
            Resource::Vault,
            Resource::Key("k".into()),
            Resource::Secret("s".into()),
        ] {
            assert!(!id.authorize(&p, *action, &res).unwrap().allowed);
        }
    }
    let (admin, _) = id.create_service_principal("admin", 0).unwrap();
    id.assign_role(&admin.id, Role::Administrator, Scope::Vault, 0)
        .unwrap();
    assert!(
        id.authorize(&admin, Action::KeyCreate, &Resource::Key("k".into()))
            .unwrap()
            .allowed
    );
    let admin = id.set_enabled(&admin.id, false).unwrap();
    let d = id
        .authorize(&admin, Action::KeyCreate, &Resource::Key("k".into()))
        .unwrap();
    assert!(!d.allowed);
    assert!(d.reason.contains("disabled"), "{}", d.reason);
}

#[test]
fn multiple_assignments_combine_and_removal_revokes() {
    let id = identity();
    let (p, _) = id.create_service_principal("app", 0).unwrap();
    let a1 = id
        .assign_role(&p.id, Role::CryptoUser, Scope::Key("k1".into()), 0)
        .unwrap();
    id.assign_role(&p.id, Role::SecretsUser, Scope::Secret("s1".into()), 0)
        .unwrap();
    // Idempotent.
    let again = id
        .assign_role(&p.id, Role::CryptoUser, Scope::Key("k1".into()), 5)
        .unwrap();
    assert_eq!(again, a1);
    assert_eq!(
        id.list_assignments(Some(&p.id), None, 100).unwrap().len(),
        2
    );
    assert!(
        id.authorize(&p, Action::KeySign, &Resource::Key("k1".into()))
            .unwrap()
            .allowed
    );
    assert!(
        id.authorize(&p, Action::SecretGet, &Resource::Secret("s1".into()))
            .unwrap()
            .allowed
    );
    let d = id.authorize(&p, Action::KeyList, &Resource::Vault).unwrap();
    assert!(!d.allowed);
    assert!(d.reason.contains("vault scope"), "{}", d.reason);
    id.remove_assignment(&a1.id).unwrap();
    assert!(
        !id.authorize(&p, Action::KeySign, &Resource::Key("k1".into()))
            .unwrap()
            .allowed
    );
    assert!(id.get_assignment(&a1.id).unwrap().is_none());
    // Deleting the principal removes its assignments.
    id.delete_principal(&p.id).unwrap();
    assert!(id.list_assignments(None, None, 100).unwrap().is_empty());
    assert!(id.get_principal(&p.id).unwrap().is_none());
}

#[test]
fn role_and_scope_parsing() {
    for r in Role::ALL {
        assert_eq!(r.id().parse::<Role>().unwrap(), r);
        assert_eq!(r.display_name().parse::<Role>().unwrap(), r);
        assert_eq!(
            format!("Key Vault {}", r.display_name())
                .parse::<Role>()
                .unwrap(),
            r
        );
    }
    assert_eq!(
        "Key Vault Crypto Service Release User"
            .parse::<Role>()
            .unwrap(),
        Role::ReleaseUser
    );
    assert!("Owner".parse::<Role>().is_err());
    // Azure's built-in certificate role names.
    assert_eq!(
        "Key Vault Certificates Officer".parse::<Role>().unwrap(),
        Role::CertificatesOfficer
    );
    assert_eq!(
        "Key Vault Certificate User".parse::<Role>().unwrap(),
        Role::CertificateUser
    );
    assert_eq!(
        "/certificates/c-1".parse::<Scope>().unwrap(),
        Scope::Certificate("c-1".into())
    );
    assert_eq!(
        Scope::Certificate("c".into()).to_string(),
        "/certificates/c"
    );
    assert!("/certificates/bad_name".parse::<Scope>().is_err());
    assert_eq!("/".parse::<Scope>().unwrap(), Scope::Vault);
    assert_eq!(
        "/keys/k-1".parse::<Scope>().unwrap(),
        Scope::Key("k-1".into())
    );
    assert_eq!(
        "/secrets/s1".parse::<Scope>().unwrap(),
        Scope::Secret("s1".into())
    );
    for bad in [
        "",
        "/keys/",
        "/keys/a/b",
        "/keys/a_b",
        "/certificates/",
        "/certificates/a/b",
        "keys/k",
        "/secrets/x y",
    ] {
        assert!(bad.parse::<Scope>().is_err(), "{bad:?} must be rejected");
    }
    for s in [
        Scope::Vault,
        Scope::Key("k".into()),
        Scope::Secret("s".into()),
        Scope::Certificate("c".into()),
    ] {
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);
    }
}

/// Two replicas (here: threads on one store, the store serializing their transactions) assigning
/// the same role at once end with one assignment, and every caller gets that one; removing it
/// concurrently succeeds once and is "not found" for the others, as one after the other.
#[test]
fn concurrent_assignment_and_removal_end_in_a_serial_order() {
    let id = Arc::new(new_identity(
        Arc::new(SlowWrites(SqliteStore::in_memory().unwrap())),
        IdentityConfig::new("https://vault.test"),
    ));
    let (p, _) = id.create_service_principal("app", 0).unwrap();
    for round in 0..10 {
        let scope = Scope::Key(format!("k{round}"));
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let made: Vec<RoleAssignment> = (0..6)
            .map(|_| {
                let (id, p, scope, barrier) =
                    (id.clone(), p.id.clone(), scope.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    id.assign_role(&p, Role::CryptoUser, scope, round).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(
            made.iter().all(|a| a == &made[0]),
            "round {round}: {made:?}"
        );
        let listed = id.list_assignments(Some(&p.id), None, 100).unwrap();
        assert_eq!(
            listed.iter().filter(|a| a.scope == scope).count(),
            1,
            "round {round}: duplicate assignments {listed:?}"
        );

        let barrier = Arc::new(std::sync::Barrier::new(6));
        let outcomes: Vec<Result<bool, String>> = (0..6)
            .map(|_| {
                let (id, aid, barrier) = (id.clone(), made[0].id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match id.remove_assignment(&aid) {
                        Ok(found) => Ok(found.is_some()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(
            outcomes.iter().filter(|o| matches!(o, Ok(true))).count(),
            1,
            "round {round}: exactly one removal succeeds: {outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(true)) || matches!(o, Err(e) if e.contains("not found"))),
            "round {round}: the others find it gone: {outcomes:?}"
        );
    }
}

/// The real SQLite store, with every write transaction started 20 ms late: wide enough that
/// concurrent callers all read before any of them writes (the window two replicas have).
struct SlowWrites(SqliteStore);

impl enclava_store::Store for SlowWrites {
    fn get(
        &self,
        table: enclava_store::Table,
        key: &str,
    ) -> enclava_store::Result<Option<Vec<u8>>> {
        self.0.get(table, key)
    }
    fn list(
        &self,
        table: enclava_store::Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> enclava_store::Result<Vec<(String, Vec<u8>)>> {
        self.0.list(table, prefix, after, limit)
    }
    fn transact(&self, ops: Vec<enclava_store::Op>) -> enclava_store::Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.0.transact(ops)
    }
    fn append_audit(&self, entries: Vec<Vec<u8>>) -> enclava_store::Result<u64> {
        self.0.append_audit(entries)
    }
    fn transact_audited(
        &self,
        ops: Vec<enclava_store::Op>,
        audit: Vec<Vec<u8>>,
        first_seq: u64,
    ) -> enclava_store::Result<()> {
        std::thread::sleep(std::time::Duration::from_millis(20));
        self.0.transact_audited(ops, audit, first_seq)
    }
    fn audit_range(
        &self,
        from: u64,
        limit: usize,
    ) -> enclava_store::Result<Vec<enclava_store::AuditRow>> {
        self.0.audit_range(from, limit)
    }
    fn audit_head(&self) -> enclava_store::Result<u64> {
        self.0.audit_head()
    }
    fn coherence(&self) -> Arc<enclava_store::Coherence> {
        self.0.coherence()
    }
}
