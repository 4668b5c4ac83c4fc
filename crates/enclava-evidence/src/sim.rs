//! Simulated TEE evidence, for development without confidential hardware.
//!
//! **Nothing about this is confidential.** The signing key is fixed and published (below, and
//! derived from a public string), so anyone can produce evidence that verifies here. Verified sim
//! evidence always yields `tee = "sim"` and `debug = true`, and [`crate::Tee::is_hardware`] is
//! false for it; policies must not accept it where hardware is required.
//!
//! # Format, version 1 (all integers big endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 23 | magic `"ENCLAVA-SIM-EVIDENCE-v1"` (ASCII) |
//! | 23 | 48 | measurement |
//! | 71 | 64 | report_data |
//! | 135 | 8 | generated_at: Unix time in seconds (signed) |
//! | 143 | 2 | workload length `n` (at most 4096) |
//! | 145 | n | workload: free-form UTF-8 |
//! | 145 + n | 64 | ECDSA P-256 SHA-256 signature (r ‖ s) over bytes 0 .. 145 + n |
//!
//! The magic cannot be mistaken for any hardware evidence: an SNP report starts with a small
//! little-endian version, a DCAP quote with version 3/4/5 (little endian), an HCL report with
//! "HCLA", JSON with `{`.
//!
//! The key: the P-256 private scalar is SHA-256 of [`SIM_KEY_SEED`]; its public point is
//! [`SIM_PUBLIC_KEY`] (uncompressed SEC1).

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use thiserror::Error;

use crate::{Claims, Tee};

/// Every simulated evidence blob starts with these bytes.
pub const SIM_MAGIC: &[u8; 23] = b"ENCLAVA-SIM-EVIDENCE-v1";
/// Public seed of the simulator key: private scalar = SHA-256(seed). Not a secret, by design.
pub const SIM_KEY_SEED: &[u8] =
    b"ENCLAVA-SIM-EVIDENCE-v1 published simulator signing key (NOT A SECRET)";
/// The simulator's public key (uncompressed SEC1 P-256 point).
pub const SIM_PUBLIC_KEY: [u8; 65] = [
    0x04, 0x89, 0x35, 0x2b, 0xf7, 0x2a, 0x45, 0x5b, 0xc7, 0x24, 0xe2, 0xdb, 0xaf, 0x11, 0x15, 0x7b,
    0xfe, 0x16, 0x4e, 0xf2, 0xf3, 0xc1, 0xf2, 0x8e, 0x01, 0x58, 0x21, 0xcf, 0x94, 0x20, 0xb5, 0x53,
    0x17, 0xe5, 0x1e, 0x6f, 0xb4, 0x23, 0x56, 0xcd, 0x58, 0x25, 0x04, 0x8c, 0xfa, 0x65, 0x16, 0xa8,
    0xa5, 0xc1, 0xfa, 0x0a, 0x4c, 0x31, 0x08, 0xea, 0x1c, 0x30, 0xd8, 0xc8, 0xa4, 0x07, 0xaf, 0xb3,
    0x5c,
];
/// Format version carried by the magic.
pub const SIM_FORMAT_VERSION: u32 = 1;
/// Longest accepted workload string, in bytes.
pub const MAX_WORKLOAD_LEN: usize = 4096;
/// Evidence generated up to this many seconds after the verification time is still accepted
/// (clock skew between the simulated enclave and the verifier).
pub const CLOCK_SKEW_SECONDS: i64 = 300;

const MEASUREMENT_OFFSET: usize = SIM_MAGIC.len();
const REPORT_DATA_OFFSET: usize = MEASUREMENT_OFFSET + 48;
const TIME_OFFSET: usize = REPORT_DATA_OFFSET + 64;
const WORKLOAD_LEN_OFFSET: usize = TIME_OFFSET + 8;
const WORKLOAD_OFFSET: usize = WORKLOAD_LEN_OFFSET + 2;
const SIGNATURE_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimClaims {
    /// Always true: this evidence proves nothing about hardware.
    pub simulated: bool,
    /// When the (simulated) enclave produced the evidence.
    pub generated_at: DateTime<Utc>,
    /// The free-form workload string.
    pub workload: String,
    /// Evidence format version (1).
    pub format_version: u32,
    /// The published simulator key that signed it (hex SEC1 point).
    pub signer: String,
}

#[derive(Debug, Error)]
pub enum SimError {
    #[error("malformed simulated evidence: {0}")]
    Malformed(String),
    #[error("simulated evidence signature does not verify with the published simulator key")]
    Signature,
    #[error(
        "simulated evidence generated at {generated_at} is from the future (verifying as of {at})"
    )]
    FromFuture {
        generated_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

impl crate::error::FailedCheck for SimError {
    fn failed_check(&self) -> &'static str {
        match self {
            SimError::Malformed(_) => "malformed_evidence",
            SimError::Signature => "sim_signature",
            SimError::FromFuture { .. } => "sim_evidence_from_future",
        }
    }
}

fn key_pair() -> Option<EcdsaKeyPair> {
    let scalar = sha2::Sha256::digest(SIM_KEY_SEED);
    EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &scalar,
        &SIM_PUBLIC_KEY,
    )
    .ok()
}

/// Produce simulated evidence with an empty workload string.
pub fn generate(measurement: &[u8; 48], report_data: &[u8; 64], at: DateTime<Utc>) -> Vec<u8> {
    generate_with_workload(measurement, report_data, "", at)
}

/// Produce simulated evidence. A workload longer than [`MAX_WORKLOAD_LEN`] bytes is cut at a
/// character boundary. (Signing with the embedded key cannot fail in practice; if it ever did, the
/// signature is left zero and the evidence will not verify.)
pub fn generate_with_workload(
    measurement: &[u8; 48],
    report_data: &[u8; 64],
    workload: &str,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let mut cut = workload.len().min(MAX_WORKLOAD_LEN);
    while !workload.is_char_boundary(cut) {
        cut -= 1;
    }
    let workload = workload.as_bytes().get(..cut).unwrap_or_default();
    let mut out = Vec::with_capacity(WORKLOAD_OFFSET + workload.len() + SIGNATURE_LEN);
    out.extend_from_slice(SIM_MAGIC);
    out.extend_from_slice(measurement);
    out.extend_from_slice(report_data);
    out.extend_from_slice(&at.timestamp().to_be_bytes());
    out.extend_from_slice(&(workload.len() as u16).to_be_bytes());
    out.extend_from_slice(workload);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    match key_pair().and_then(|k| k.sign(&rng, &out).ok()) {
        Some(sig) if sig.as_ref().len() == SIGNATURE_LEN => out.extend_from_slice(sig.as_ref()),
        _ => out.extend_from_slice(&[0u8; SIGNATURE_LEN]),
    }
    out
}

/// Verify simulated evidence as of `at`.
pub fn verify(evidence: &[u8], at: DateTime<Utc>) -> Result<Claims, SimError> {
    let bad = |m: String| SimError::Malformed(m);
    if !evidence.starts_with(SIM_MAGIC) {
        return Err(bad("does not start with \"ENCLAVA-SIM-EVIDENCE-v1\"".into()));
    }
    if evidence.len() < WORKLOAD_OFFSET + SIGNATURE_LEN {
        return Err(bad(format!("{} bytes is too short", evidence.len())));
    }
    let too_short = || bad(format!("{} bytes is too short", evidence.len()));
    let wl = crate::bytes::array_at(evidence, WORKLOAD_LEN_OFFSET)
        .map(u16::from_be_bytes)
        .ok_or_else(too_short)? as usize;
    if wl > MAX_WORKLOAD_LEN {
        return Err(bad(format!(
            "workload is {wl} bytes, at most {MAX_WORKLOAD_LEN}"
        )));
    }
    let signed_len = WORKLOAD_OFFSET + wl;
    if evidence.len() != signed_len + SIGNATURE_LEN {
        return Err(bad(format!(
            "length is {}, expected {} for a {wl}-byte workload",
            evidence.len(),
            signed_len + SIGNATURE_LEN
        )));
    }
    let (signed, signature) = evidence.split_at(signed_len);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &SIM_PUBLIC_KEY[..])
        .verify(signed, signature)
        .map_err(|_| SimError::Signature)?;

    let secs = crate::bytes::array_at(evidence, TIME_OFFSET)
        .map(i64::from_be_bytes)
        .ok_or_else(too_short)?;
    let generated_at = DateTime::<Utc>::from_timestamp(secs, 0)
        .ok_or_else(|| bad(format!("timestamp {secs} is out of range")))?;
    if generated_at.timestamp() > at.timestamp().saturating_add(CLOCK_SKEW_SECONDS) {
        return Err(SimError::FromFuture { generated_at, at });
    }
    let workload = std::str::from_utf8(
        evidence
            .get(WORKLOAD_OFFSET..signed_len)
            .unwrap_or_default(),
    )
    .map_err(|_| bad("workload is not UTF-8".into()))?
    .to_string();

    Ok(Claims {
        tee: Tee::Sim,
        debug: true,
        measurement: hex::encode(
            evidence
                .get(MEASUREMENT_OFFSET..REPORT_DATA_OFFSET)
                .unwrap_or_default(),
        ),
        report_data: hex::encode(
            evidence
                .get(REPORT_DATA_OFFSET..TIME_OFFSET)
                .unwrap_or_default(),
        ),
        tcb_status: None,
        advisory_ids: Vec::new(),
        snp: None,
        tdx: None,
        sgx: None,
        azure: None,
        sim: Some(SimClaims {
            simulated: true,
            generated_at,
            workload,
            format_version: SIM_FORMAT_VERSION,
            signer: hex::encode(SIM_PUBLIC_KEY),
        }),
        revocation: None,
    })
}
