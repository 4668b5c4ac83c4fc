//! Storage interface and embedded backend.
