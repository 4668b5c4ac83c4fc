//! The one-time init token that guards `POST /operator/init`.
//!
//! Without it, whoever reaches a fresh production server first initializes it and holds the
//! unseal shares. At start, when the vault is not initialized (and not `--dev`), the server
//! writes a random token to `DATA_DIR/init.token` (mode 0600, reused if it is already there, so
//! a restart or a second process on the same data directory agree on it); `POST /operator/init`
//! then needs `Authorization: Bearer <that token>`. Proving access to the data directory is the
//! proof of being the operator. After a successful init the token is forgotten and the file
//! deleted; on an initialized vault a leftover file is deleted at start.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::ApiError;

/// The init token file in the data directory.
pub const INIT_TOKEN_FILE: &str = "init.token";

/// Random bytes in a token (base64url: 43 characters).
const TOKEN_BYTES: usize = 32;

/// Holds the expected init token while the vault waits for `init`.
#[derive(Default)]
pub struct InitTokenGate {
    /// SHA-256 of the token: compared in constant time, and the token itself is not kept.
    expected: Mutex<Option<[u8; 32]>>,
}

impl std::fmt::Debug for InitTokenGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitTokenGate { expected: <redacted> }")
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A token read from the file: one line of base64url characters, nothing else.
fn well_formed(token: &str) -> bool {
    token.len() >= 32
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl InitTokenGate {
    /// Make sure `DATA_DIR/init.token` holds a token and expect it; returns the file's path.
    /// An existing well-formed token is reused; anything else is replaced by a new one.
    pub fn prepare(&self, data_dir: &Path) -> Result<PathBuf, String> {
        let path = data_dir.join(INIT_TOKEN_FILE);
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let t = text.trim();
                well_formed(t).then(|| digest(t))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let expected = match existing {
            Some(d) => d,
            None => {
                let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
                aws_lc_rs::rand::fill(raw.as_mut())
                    .map_err(|_| "the system random generator failed".to_string())?;
                let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
                let line = Zeroizing::new(format!("{}\n", token.as_str()));
                crate::tls::write_private(&path, line.as_bytes()).map_err(|e| e.to_string())?;
                digest(&token)
            }
        };
        *self.expected.lock().unwrap_or_else(|p| p.into_inner()) = Some(expected);
        Ok(path)
    }

    /// Check the request's `Authorization: Bearer <init token>`; a clear 401 otherwise.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", m);
        let expected = *self.expected.lock().unwrap_or_else(|p| p.into_inner());
        let Some(expected) = expected else {
            return Err(unauthorized(
                "this server holds no init token (it was started with the vault already initialized, or the token was used): restart the server on the uninitialized data directory to get DATA_DIR/init.token",
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .and_then(|s| s.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        let Some(given) = given else {
            return Err(unauthorized(
                "initializing the vault needs the one-time init token: send Authorization: Bearer <contents of DATA_DIR/init.token> (`enclava operator init --init-token-file FILE` does)",
            ));
        };
        if bool::from(digest(given).ct_eq(&expected)) {
            Ok(())
        } else {
            Err(unauthorized(
                "the init token does not match the one in DATA_DIR/init.token of this server",
            ))
        }
    }

    /// After a successful init (or at start on an initialized vault): forget the token and delete
    /// the file. A file that cannot be deleted is reported, but the token is useless by then.
    pub fn consume(&self, data_dir: &Path) -> Result<(), String> {
        *self.expected.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let path = data_dir.join(INIT_TOKEN_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn prepare_check_consume() {
        let dir = tempfile::tempdir().unwrap();
        let gate = InitTokenGate::default();
        assert_eq!(gate.check(&HeaderMap::new()).unwrap_err().status, 401);
        let path = gate.prepare(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert_eq!(token.len(), 43);
        // A second gate (a restart) reuses the file.
        let again = InitTokenGate::default();
        again.prepare(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            token.as_str()
        );
        assert!(again.check(&with_auth(&format!("Bearer {token}"))).is_ok());
        let e = gate.check(&HeaderMap::new()).unwrap_err();
        assert!(e.message.contains("init token"), "{}", e.message);
        let e = gate.check(&with_auth("Bearer nope")).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.message.contains("does not match"), "{}", e.message);
        assert!(gate.check(&with_auth(&format!("Basic {token}"))).is_err());
        assert!(gate.check(&with_auth(&format!("bearer  {token} "))).is_ok());
        gate.consume(dir.path()).unwrap();
        assert!(!path.exists());
        assert!(gate.check(&with_auth(&format!("Bearer {token}"))).is_err());
        // A malformed file is replaced.
        std::fs::write(&path, "short\n").unwrap();
        gate.prepare(dir.path()).unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap().trim(), "short");
    }
}
