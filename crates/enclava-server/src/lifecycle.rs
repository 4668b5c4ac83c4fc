//! What happens around seal state changes: loading the token signing key, the audit
//! checkpoint key and the local CA (a service key, [`crate::service_keys`]) after unseal,
//! forgetting them on seal, writing the bootstrap administrator token, and the audit read /
//! verify routes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use enclava_attestation::{PolicyRowKeys, PolicyStore};
use enclava_audit::{CheckpointSigner, EcdsaCheckpointSigner, NewEntry, Outcome};
use enclava_identity::{BOOTSTRAP_ADMIN_META, KeyWrap, RowKeys, TokenKey};
use enclava_store::{Op, Table};
use enclava_vault::Vault;
use serde_json::json;
use zeroize::Zeroizing;

use crate::app::AppState;
use crate::data::Reply;
use crate::error::ApiError;
use crate::service_keys::{self, LocalCa};
use crate::tls::{self, CertSwap, write_private};

/// Meta key of the (wrapped) audit checkpoint signing key.
pub const AUDIT_KEY_META: &str = "audit/checkpoint-key";
/// Meta key of the audit checkpoint public key (SEC1 point, clear: needed to verify while sealed).
pub const AUDIT_PUBLIC_META: &str = "audit/checkpoint-public-key";
/// The bootstrap administrator token file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

pub struct Lifecycle {
    pub data_dir: PathBuf,
    pub dev: bool,
    /// Guards `POST /operator/init` while the vault is not initialized.
    pub init_token: crate::init_token::InitTokenGate,
    /// The local CA's TLS side (`None`: operator TLS or plain HTTP, no local CA).
    local_tls: Option<LocalTls>,
    /// The local CA, open while the vault is unsealed.
    ca: RwLock<Option<Arc<LocalCa>>>,
    /// The certificate issuing CA (issuer `Enclava`), open while the vault is unsealed.
    issuing_ca: RwLock<Option<Arc<enclava_vault::IssuingCa>>>,
}

struct LocalTls {
    hostnames: Vec<String>,
    /// A CA key not sealed yet (new, or from a legacy `ca-key.pem`): sealed at the next unseal.
    /// Only in memory meanwhile, never in the data directory.
    pending_key: Mutex<Option<Zeroizing<Vec<u8>>>>,
    cert_swap: Arc<CertSwap>,
}

impl Lifecycle {
    pub fn new(data_dir: PathBuf, dev: bool) -> Self {
        Lifecycle {
            data_dir,
            dev,
            init_token: Default::default(),
            local_tls: None,
            ca: RwLock::new(None),
            issuing_ca: RwLock::new(None),
        }
    }

    /// The server has a local CA (no operator TLS): `hostnames` are the TLS certificate's,
    /// `pending_key` the CA key [`tls::ensure_tls`] returned unsealed, `cert_swap` the served
    /// certificate.
    pub fn with_local_ca(
        mut self,
        hostnames: Vec<String>,
        pending_key: Option<Zeroizing<Vec<u8>>>,
        cert_swap: Arc<CertSwap>,
    ) -> Self {
        self.local_tls = Some(LocalTls {
            hostnames,
            pending_key: Mutex::new(pending_key),
            cert_swap,
        });
        self
    }

    /// Whether the server has a local CA at all (it may be closed: sealed or unusable).
    pub fn has_local_ca(&self) -> bool {
        self.local_tls.is_some()
    }

    /// The open local CA (`None`: no local CA, vault sealed, or its key is unusable).
    pub fn local_ca(&self) -> Option<Arc<LocalCa>> {
        self.ca.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The open certificate issuing CA (`None`: sealed, or its row does not open). Never the
    /// local CA (see [`service_keys`]).
    pub fn issuing_ca(&self) -> Option<Arc<enclava_vault::IssuingCa>> {
        self.issuing_ca
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Open (or create, on the first unseal) the certificate issuing CA. A row that does not open
    /// is logged, not fatal: everything else works, `Enclava`-issued certificates answer 503.
    fn open_issuing_ca(&self, st: &AppState) {
        let ca = match service_keys::load_or_create_issuing_ca(&st.vault, st.store.as_ref()) {
            Ok(ca) => Some(Arc::new(ca)),
            Err(e) => {
                tracing::error!(error = %e, "the certificate issuing CA does not open; issuer Enclava is unavailable");
                None
            }
        };
        *self.issuing_ca.write().unwrap_or_else(|p| p.into_inner()) = ca;
    }

    /// Seal a pending CA key, open the sealed one, and re-issue the TLS certificate if the host
    /// names changed while the CA was sealed. A CA that does not open is logged, not fatal: TLS
    /// keeps working, and what needs the CA (release answers) answers 503 `signer_unavailable`.
    fn open_local_ca(&self, st: &AppState) -> Result<(), String> {
        let Some(l) = &self.local_tls else {
            return Ok(());
        };
        let ca_path = self.data_dir.join(tls::CA_FILE);
        let ca_pem = std::fs::read(&ca_path)
            .map_err(|e| format!("cannot read {}: {e}", ca_path.display()))?;
        let ca_der = tls::first_cert_der(&ca_pem, &ca_path).map_err(|e| e.to_string())?;
        {
            let mut pending = l.pending_key.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(pkcs8) = pending.as_ref() {
                service_keys::store_ca(&st.vault, st.store.as_ref(), pkcs8, &ca_der)
                    .map_err(|e| e.to_string())?;
                *pending = None;
                // Sealed now: a legacy clear copy must go (older versions wrote it).
                let legacy = self.data_dir.join(tls::CA_KEY_FILE);
                if legacy.exists() {
                    std::fs::remove_file(&legacy)
                        .map_err(|e| format!("cannot remove {}: {e}", legacy.display()))?;
                    eprintln!(
                        "enclava: the local CA key moved from {} into the sealed store",
                        legacy.display()
                    );
                }
            }
        }
        let ca = match service_keys::load_ca(&st.vault, st.store.as_ref(), &ca_der) {
            Ok(Some(ca)) => Arc::new(ca),
            Ok(None) => {
                tracing::error!(
                    "no sealed key for the local CA (ca.pem); release answers are unavailable"
                );
                return Ok(());
            }
            Err(e) => {
                tracing::error!(error = %e, "the local CA key does not open; release answers are unavailable");
                return Ok(());
            }
        };
        if !tls::server_cert_current(&self.data_dir, &l.hostnames) {
            let (cert, key) = ca.issuer();
            tls::issue_server_cert(&self.data_dir, &l.hostnames, cert, key, &ca_pem)
                .and_then(|()| l.cert_swap.reload(&self.data_dir))
                .map_err(|e| format!("re-issuing the TLS certificate: {e}"))?;
            eprintln!(
                "enclava: TLS certificate re-issued for {}",
                l.hostnames.join(", ")
            );
        }
        *self.ca.write().unwrap_or_else(|p| p.into_inner()) = Some(ca);
        Ok(())
    }

    /// Called after the vault became unsealed (blocking context).
    pub fn on_unsealed(&self, st: &AppState) -> Result<(), String> {
        self.open_local_ca(st)?;
        self.open_issuing_ca(st);
        let wrap = VaultKeyWrap::new(&st.vault, "token-signing-key");
        let key = TokenKey::load_or_create(st.store.as_ref(), &wrap)
            .map_err(|e| format!("token signing key: {e}"))?;
        st.identity.set_token_key(Some(key));
        let signer = self.load_or_create_audit_key(st)?;
        st.audit_log.set_signer(Some(Arc::new(signer)));
        install_row_integrity(st)?;
        // A vault with no checkpoint yet gets one now (and entries logged while sealed are
        // covered when the interval is over): a chain with no signed head accepts a rewrite with
        // recomputed hashes. Best effort: the timer and the next appends retry.
        if let Err(e) = st.audit_log.checkpoint_if_due(chrono::Utc::now(), false) {
            tracing::error!(error = %e, "signing the first audit checkpoint after unseal failed");
        }
        let first_unseal = st
            .store
            .get(Table::Meta, BOOTSTRAP_ADMIN_META)
            .map_err(|e| format!("reading the bootstrap administrator: {e}"))?
            .is_none();
        if self.dev || first_unseal {
            let (p, token) = st
                .identity
                .bootstrap_admin(chrono::Utc::now().timestamp())
                .map_err(|e| format!("bootstrap administrator: {e}"))?;
            let path = self.data_dir.join(ADMIN_TOKEN_FILE);
            write_private(&path, token.as_bytes()).map_err(|e| e.to_string())?;
            if first_unseal {
                // The bootstrap token is short-lived on purpose (a file an operator may forget
                // about): it is meant to create the real, long-lived principals.
                let hours = st.identity.config().bootstrap_token_lifetime / 3600;
                eprintln!(
                    "enclava: bootstrap Administrator {} created; its token is in {} (mode 0600) and expires in {hours} h. \
                     Use it to create long-lived principals (POST /enclava/principals, then POST /enclava/role-assignments) \
                     that obtain their own tokens with client credentials.",
                    p.id,
                    path.display()
                );
            }
        }
        if let Ok(s) = st.vault.seal_status() {
            st.metrics.set_seal_state(s.initialized, s.sealed);
        }
        Ok(())
    }

    /// Seal the vault and forget every key that depends on it.
    pub fn seal(&self, st: &AppState) {
        st.vault.seal();
        *self.ca.write().unwrap_or_else(|p| p.into_inner()) = None;
        *self.issuing_ca.write().unwrap_or_else(|p| p.into_inner()) = None;
        st.identity.set_token_key(None);
        st.identity.set_row_keys(None);
        st.audit_log.set_signer(None);
        if let Ok(s) = st.vault.seal_status() {
            st.metrics.set_seal_state(s.initialized, s.sealed);
        }
    }

    fn load_or_create_audit_key(&self, st: &AppState) -> Result<EcdsaCheckpointSigner, String> {
        let store = st.store.as_ref();
        let wrap = VaultKeyWrap::new(&st.vault, "audit-checkpoint-key");
        for _ in 0..3 {
            if let Some(wrapped) = store
                .get(Table::Meta, AUDIT_KEY_META)
                .map_err(|e| e.to_string())?
            {
                let pkcs8 = wrap.unwrap(&wrapped)?;
                return EcdsaCheckpointSigner::from_pkcs8(&pkcs8).map_err(|e| e.to_string());
            }
            let pkcs8 = EcdsaCheckpointSigner::generate_pkcs8().map_err(|e| e.to_string())?;
            let signer = EcdsaCheckpointSigner::from_pkcs8(&pkcs8).map_err(|e| e.to_string())?;
            let wrapped = wrap.wrap(&pkcs8)?;
            let res = store.transact(vec![
                Op::Expect {
                    table: Table::Meta,
                    key: AUDIT_KEY_META.into(),
                    value: None,
                },
                Op::Put {
                    table: Table::Meta,
                    key: AUDIT_KEY_META.into(),
                    value: wrapped,
                },
                Op::Put {
                    table: Table::Meta,
                    key: AUDIT_PUBLIC_META.into(),
                    value: signer.public_key(),
                },
            ]);
            match res {
                Ok(()) => return Ok(signer),
                Err(enclava_store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the audit checkpoint key kept changing while loading it".into())
    }
}

/// Row integrity (principals, role assignments, attestation policies, reference values): install
/// the identity row keys (derived from the root: every process unsealed with the same root
/// derives the same keys), then adopt rows written before rows were MAC'd, once (see
/// `Identity::migrate_row_integrity`). The attestation service derives its own keys when it
/// starts (`Attestation::on_unsealed`, which runs after this). Every adoption, and every
/// unauthenticated row that is refused, is logged and audited (`integrity/migrate`). A migration
/// refused because its marker fails its MAC does not stop the unseal: the rows stay refused one by
/// one where they are used, which is failing closed.
fn install_row_integrity(st: &AppState) -> Result<(), String> {
    let derive = |purpose: &str| st.vault.derived_key(purpose);
    let keys = RowKeys::derive(derive)?;
    st.identity.set_row_keys(Some(keys));
    let now = chrono::Utc::now();
    let mut reports = Vec::new();
    match st.identity.migrate_row_integrity(now.timestamp()) {
        Ok(m) => reports.push(("identity", m.adopted, m.refused, None)),
        Err(e @ enclava_identity::IdentityError::Integrity { .. }) => {
            reports.push(("identity", Vec::new(), Vec::new(), Some(e.to_string())))
        }
        Err(e) => return Err(format!("identity row integrity migration: {e}")),
    }
    let policy_keys = Arc::new(PolicyRowKeys::derive(derive)?);
    match PolicyStore::new(st.store.clone())
        .with_row_keys(policy_keys)
        .migrate_row_integrity(now)
    {
        Ok(m) => reports.push(("attestation", m.adopted, m.refused, None)),
        Err(e @ enclava_attestation::AttestError::Integrity { .. }) => {
            reports.push(("attestation", Vec::new(), Vec::new(), Some(e.to_string())))
        }
        Err(e) => return Err(format!("attestation row integrity migration: {e}")),
    }
    let mut entries = Vec::new();
    for (what, adopted, refused, failed) in reports {
        // Refusals are recorded as denials (something wrote rows behind the server's back).
        let (result, detail) = if let Some(f) = failed {
            tracing::error!(rows = what, error = %f, "row integrity marker failed its check; nothing adopted");
            (Outcome::Denied, format!("{what}: nothing adopted: {f}"))
        } else if !refused.is_empty() {
            tracing::error!(
                rows = what,
                refused = ?refused,
                "unauthenticated rows found in an integrity-protected store; they are refused"
            );
            (
                Outcome::Denied,
                format!(
                    "{what}: {} unauthenticated row(s) refused (the store was already protected): {}",
                    refused.len(),
                    names(&refused)
                ),
            )
        } else if !adopted.is_empty() {
            tracing::warn!(rows = what, adopted = ?adopted, "rows written before row integrity were MAC'd once");
            (
                Outcome::Allowed,
                format!(
                    "{what}: {} row(s) written before row integrity adopted: {}",
                    adopted.len(),
                    names(&adopted)
                ),
            )
        } else {
            continue;
        };
        entries.push(NewEntry {
            time: now,
            principal: "system".into(),
            action: "integrity/migrate".into(),
            object: String::new(),
            version: None,
            result,
            status: if result == Outcome::Allowed { 200 } else { 403 },
            request_id: crate::app::new_request_id(),
            client_addr: "internal".into(),
            detail: Some(detail),
        });
    }
    st.audit_log
        .append(entries)
        .map_err(|e| format!("auditing the row integrity migration: {e}"))?;
    Ok(())
}

/// At most 100 row names for an audit entry (the full list is in the log).
fn names(rows: &[String]) -> String {
    let mut s = rows
        .iter()
        .take(100)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if rows.len() > 100 {
        s.push_str(&format!(" and {} more", rows.len() - 100));
    }
    s
}

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Make the entries queued so far durable before reading the log (read-your-writes for the
/// auditor: entries committed with a change do not pass the queue, so without this a queued entry
/// of an earlier request could still be missing from a read that shows a later change).
fn flush_queued(st: &AppState) {
    if let Err(e) = st.audit.flush_blocking() {
        tracing::error!(error = %e, "flushing the audit queue before a read failed");
    }
}

/// `GET /enclava/audit?from=N&limit=M` -> `{"value":[entries], "head": seq, "nextFrom": n|null}`.
pub fn read_audit(st: &AppState, q: &[(String, String)]) -> Result<Reply, ApiError> {
    let num = |k: &str, default: u64, max: u64| -> Result<u64, ApiError> {
        match get(q, k) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_parameter(format!(
                        "invalid {k}: expected an integer from 1 to {max}, found {:?}",
                        v.chars().take(32).collect::<String>()
                    ))
                }),
        }
    };
    let from = num("from", 1, u64::MAX)?;
    let limit = num("limit", 1000, 1000)?;
    flush_queued(st);
    let rows = st
        .store
        .audit_range(from, usize::try_from(limit).unwrap_or(1000))
        .map_err(|e| ApiError::internal(format!("reading the audit log failed: {e}")))?;
    let head = st
        .store
        .audit_head()
        .map_err(|e| ApiError::internal(format!("reading the audit log failed: {e}")))?;
    let next = rows.last().map(|r| r.seq + 1).filter(|n| *n <= head);
    let value: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::from_slice(&r.entry)
                .unwrap_or_else(|_| json!({"seq": r.seq, "corrupt": true}))
        })
        .collect();
    Reply::json(&json!({"value": value, "head": head, "nextFrom": next}))
}

/// `GET /enclava/audit/verify` -> the verification report, comparing the chain with the
/// checkpoints in the database and with the signed head file in the data directory.
pub fn verify_audit(st: &AppState) -> Result<Reply, ApiError> {
    flush_queued(st);
    let pk = st
        .store
        .get(Table::Meta, AUDIT_PUBLIC_META)
        .map_err(|e| ApiError::internal(format!("reading the checkpoint key failed: {e}")))?
        .unwrap_or_default();
    let head_path = st
        .lifecycle
        .data_dir
        .join(enclava_audit::head_file::HEAD_FILE);
    // An unreadable head file is a finding, not a reason to skip the comparison silently.
    let (head, head_problem) = match enclava_audit::head_file::read(&head_path) {
        Ok(h) => (h, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let report = enclava_audit::verify_with_head(st.store.as_ref(), &pk, head.as_ref())
        .map_err(|e| ApiError::internal(format!("audit verification failed to run: {e}")))?;
    Reply::json(&json!({
        "ok": report.first_problem.is_none() && report.checkpoints_ok && head_problem.is_none(),
        "report": report,
        "signedHeadProblem": head_problem,
        "checkpointPublicKey": hex::encode(&pk),
    }))
}

/// The server's own signing keys (access tokens, audit checkpoints) sealed under the vault's root
/// key hierarchy: the database never holds them in clear, and they only open while unsealed.
struct VaultKeyWrap<'a> {
    vault: &'a Vault,
    purpose: &'static str,
}

impl<'a> VaultKeyWrap<'a> {
    fn new(vault: &'a Arc<Vault>, purpose: &'static str) -> Self {
        VaultKeyWrap {
            vault: vault.as_ref(),
            purpose,
        }
    }
}

impl KeyWrap for VaultKeyWrap<'_> {
    fn wrap(&self, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        self.vault
            .seal_aux(self.purpose, plaintext)
            .map_err(|e| e.to_string())
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        self.vault
            .open_aux(self.purpose, wrapped)
            .map_err(|e| e.to_string())
    }
}
