//! What happens around seal state changes: loading the token signing key and the audit
//! checkpoint key after unseal, forgetting them on seal, writing the bootstrap administrator
//! token, and the audit read / verify routes.

use std::path::PathBuf;
use std::sync::Arc;

use enclava_audit::{CheckpointSigner, EcdsaCheckpointSigner};
use enclava_identity::{BOOTSTRAP_ADMIN_META, KeyWrap, TokenKey};
use enclava_store::{Op, Table};
use enclava_vault::Vault;
use serde_json::json;
use zeroize::Zeroizing;

use crate::app::AppState;
use crate::data::Reply;
use crate::error::ApiError;
use crate::tls::write_private;

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
}

impl Lifecycle {
    pub fn new(data_dir: PathBuf, dev: bool) -> Self {
        Lifecycle {
            data_dir,
            dev,
            init_token: Default::default(),
        }
    }

    /// Called after the vault became unsealed (blocking context).
    pub fn on_unsealed(&self, st: &AppState) -> Result<(), String> {
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
