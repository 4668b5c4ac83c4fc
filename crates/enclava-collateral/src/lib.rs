//! Finding collateral for TEE evidence: an offline cache directory and optional fetchers for AMD
//! KDS and Intel PCS/PCCS that fill it.
//!
//! The verifier (`enclava-evidence`) stays pure and offline: it takes certificates and collateral
//! as values. This crate is the optional layer that finds them:
//!
//! - endorsements that travel with the evidence (the extended report's certificate table) or that
//!   a user supplies come first; [`resolve`] picks, in that order, the evidence, supplied files,
//!   then the cache;
//! - [`Cache`] reads an offline cache directory with the layout below. Lookups derive everything
//!   from the evidence itself: the AMD product from the report's CPUID (v3+; v2 reports try every
//!   product), the chip id and REPORTED_TCB from the report, the FMSPC and PCK CA from the quote's
//!   PCK certificate. This is the only part that may run on the verification path, and it only
//!   reads files;
//! - [`KdsFetcher`] and [`PcsFetcher`] fetch from AMD KDS and Intel PCS (or a PCCS) and write into
//!   the cache. They are called explicitly (a CLI command, a background refresher), never during
//!   verification. They space requests per host (AMD allows roughly one request per 10 s per
//!   address), back off exponentially with jitter on 429 and 5xx, honour `Retry-After`, make a
//!   bounded number of attempts, and check what they fetched before caching it. Time, sleeping
//!   and jitter are injected ([`Clock`], [`Sleeper`], [`Jitter`]). Request spacing is kept per
//!   fetcher instance (slots are reserved under a lock, so threads sharing one fetcher queue up):
//!   use one fetcher per process and service. Integrity never depends on the transport: whatever
//!   is fetched is checked before it is cached and verified against the pinned roots when used.
//!
//! # Cache layout
//!
//! ```text
//! {dir}/
//!   amd/{Milan|Genoa|Turin}/
//!     vcek/{hwid}/{tcb}.der          VCEK (DER). hwid: CHIP_ID in lower-case hex (64 bytes; the
//!                                    first 8 bytes on Turin). tcb: REPORTED_TCB's 8 bytes in
//!                                    report (little-endian) order, lower-case hex, e.g.
//!                                    0200000000000544 for bl=2 tee=0 snp=5 ucode=0x44 (Milan).
//!     vlek/{tcb}/{name}.der          VLEK (DER), placed by hand (VLEKs come from the cloud
//!                                    provider). Exactly one file per TCB directory; put_vlek names
//!                                    it by the first 8 bytes of its SHA-256.
//!     cert_chain.pem                 ASK + ARK (KDS vcek/v1/{product}/cert_chain), optional: the
//!                                    verifier also knows AMD's published ASKs.
//!     vlek_cert_chain.pem            ASVK + ARK (KDS vlek/v1/{product}/cert_chain), optional.
//!     crl.der                        KDS vcek/v1/{product}/crl (DER), optional; fetched with
//!                                    the VCEK and refreshed when past its next update. Checked
//!                                    under the pinned ARK before it is cached; whether it was
//!                                    supplied and is current is in `claims.revocation` (the
//!                                    default snp policy requires both).
//!     vlek_crl.der                   KDS vlek/v1/{product}/crl (DER), optional.
//!   intel/
//!     tcb/{tdx|sgx}/{fmspc}.json               PCS TCB info response body, byte for byte
//!     tcb/{tdx|sgx}/{fmspc}.issuer_chain.pem   its TCB-Info-Issuer-Chain header, URL-decoded
//!     qe/{tdx|sgx}.json                        PCS QE identity response body, byte for byte
//!     qe/{tdx|sgx}.issuer_chain.pem            its SGX-Enclave-Identity-Issuer-Chain header
//!     crl/root.der                             Intel SGX Root CA CRL (DER)
//!     crl/{platform|processor}.der             PCK CRL of that CA (DER)
//!     crl/{platform|processor}.issuer_chain.pem  its SGX-PCK-CRL-Issuer-Chain header (optional)
//!   nvidia/
//!     rim/{id}.xml                   RIM from NVIDIA's RIM service, checked before caching
//!     ocsp/{issuer}_{serial}.der     OCSP response for one certificate (see [`nvidia`])
//! ```
//!
//! `fmspc` is 12 lower-case hex digits. Every write goes to a temporary file in the same
//! directory (`.{name}.tmp.{pid}.{n}`, ignored by lookups), is fsynced and renamed over the
//! target, and the directory is fsynced: a crash leaves the old file or the new one, never half
//! of one. Where a pair belongs together (TCB info and its issuer chain) the chain is written
//! first. Missing files are reported as [`Error::MissingFile`] naming the path(s) expected.
//!
//! Cached collateral is never trusted for being in the cache: the verifier checks every
//! signature up to the pinned AMD and Intel roots and every validity window at its own time.
//! Stale Intel collateral therefore fails verification closed; a stale AMD CRL is reported in the
//! claims (`revocation.fresh: false`), which the default `snp` policy denies. Keep both fresh with
//! the fetchers' [`Refresh::IfStale`] ([`KdsFetcher::refresh_cached`] for the AMD CRLs).

pub mod cache;
pub mod error;
pub mod http;
pub mod kds;
pub mod load;
pub mod nvidia;
pub mod pcs;
pub mod resolve;

pub use cache::{AmdKey, Cache, DcapTee, PckCa, QuoteCollateralKey, ReportKey};
pub use error::{Error, Result};
pub use http::{
    Clock, Jitter, NoJitter, Politeness, RandomJitter, Sleeper, SystemClock, ThreadSleeper,
};
pub use kds::{KdsFetcher, Refresh, RefreshReport};
pub use load::{Loaded, Note};
pub use nvidia::{NvidiaFetchReport, NvidiaFetcher};
pub use pcs::PcsFetcher;
pub use resolve::{Origin, SnpSources};
