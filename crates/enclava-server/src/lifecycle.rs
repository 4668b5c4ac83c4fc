//! What happens around seal state changes: loading the token signing key, the audit
//! checkpoint key and the local CA (a service key, [`crate::service_keys`]) after unseal,
//! forgetting them on seal, writing the bootstrap administrator token, and the audit read /
//! verify routes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use enclava_audit::{CheckpointSigner, EcdsaCheckpointSigner};
use enclava_identity::{BOOTSTRAP_ADMIN_META, KeyWrap, TokenKey};
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
    /// The local CA's TLS side (`None`: operator TLS or plain HTTP, no local CA).
    local_tls: Option<LocalTls>,
    /// The local CA, open while the vault is unsealed.
    ca: RwLock<Option<Arc<LocalCa>>>,
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
            local_tls: None,
            ca: RwLock::new(None),
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
        let wrap = VaultKeyWrap::new(&st.vault, "token-signing-key");
        let key = TokenKey::load_or_create(st.store.as_ref(), &wrap)
            .map_err(|e| format!("token signing key: {e}"))?;
        st.identity.set_token_key(Some(key));
        let signer = self.load_or_create_audit_key(st)?;
        st.audit_log.set_signer(Some(Arc::new(signer)));
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
                eprintln!(
                    "enclava: bootstrap Administrator {} created; its token is in {} (mode 0600)",
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
        st.identity.set_token_key(None);
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

fn get<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
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

/// `GET /enclava/audit/verify` -> the verification report.
pub fn verify_audit(st: &AppState) -> Result<Reply, ApiError> {
    let pk = st
        .store
        .get(Table::Meta, AUDIT_PUBLIC_META)
        .map_err(|e| ApiError::internal(format!("reading the checkpoint key failed: {e}")))?
        .unwrap_or_default();
    let report = enclava_audit::verify(st.store.as_ref(), &pk)
        .map_err(|e| ApiError::internal(format!("audit verification failed to run: {e}")))?;
    Reply::json(&json!({
        "report": report,
        "ok": report.first_problem.is_none() && report.checkpoints_ok,
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
