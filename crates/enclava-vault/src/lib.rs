//! Vault logic.
