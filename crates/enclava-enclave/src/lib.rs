//! The Enclava enclave runtime: runs a measured WebAssembly workload on data that only that
//! workload, inside an attested TEE, can decrypt.
//!
//! The run protocol (docs/enclave.md), one function per step:
//!
//! | step | function | proves |
//! |---|---|---|
//! | (a) measure | [`enclava_runtime::measure`] | which module and manifest (args, env, dirs, keys, outputs, limits) run |
//! | (b) keys + runtime data | [`EphemeralKeys::generate`], [`RuntimeData::new`], [`report_data`] | the keys and the challenge are bound to this evidence |
//! | (c) evidence, attest, release | [`evidence::collect`], [`run::attest`], [`run::release`] | the attestation service and the key's release policy accept this workload on this TEE |
//! | (d) unwrap, decrypt, run, encrypt | [`keyhsm::unwrap_key_hsm`], [`data::decrypt_input`], [`enclava_runtime::Runtime::run`], [`data::encrypt_output`] | plaintext exists only in memory-backed private directories of this run, and leaves only encrypted to the manifest's recipients |
//! | (e) receipt | [`receipt::sign_receipt`] | a receipt signed by a key that the attestation vouches for |
//!
//! [`run::run`] chains them; `enclava run` is its command-line face. Everything is synchronous.

#![forbid(unsafe_code)]

pub mod client;
pub mod data;
mod error;
pub mod evidence;
pub mod keyhsm;
pub mod keys;
pub mod receipt;
pub mod release_sig;
pub mod run;

pub use client::Connection;
pub use error::{EnclaveError, FailedRule, RefusedBy};
pub use evidence::TeeChoice;
pub use keys::{EphemeralKeys, RuntimeData, report_data};
pub use receipt::{Receipt, SignedReceipt, verify_receipt};
pub use run::{RunReport, RunRequest, Step, run};
