//! Identities and roles.
