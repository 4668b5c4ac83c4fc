//! `enclava collateral fetch`: fill the offline collateral cache from AMD KDS or Intel PCS (or a
//! PCCS) for a given piece of evidence. Run it ahead of time or from a scheduled job: verification
//! only ever reads the cache (`enclava evidence verify --cache DIR`).

use std::path::PathBuf;
use std::process::ExitCode;

use enclava_collateral::{Cache, DcapTee, KdsFetcher, PcsFetcher, Refresh};

#[derive(Debug, clap::Subcommand)]
pub enum CollateralCommand {
    /// Fetch what the evidence needs into the cache (VCEK + ASK/ARK + the product's AMD CRL for
    /// SNP; TCB info, QE identity and CRLs for TDX/SGX). AMD allows about one request per 10 s: this waits politely.
    ///
    /// Example: enclava collateral fetch --tee snp --evidence report.bin --cache /var/lib/enclava/collateral
    Fetch {
        /// snp, tdx or sgx.
        #[arg(long, value_parser = ["snp", "tdx", "sgx"])]
        tee: String,
        #[arg(long)]
        evidence: PathBuf,
        /// The cache directory (created if missing).
        #[arg(long, env = "ENCLAVA_COLLATERAL_CACHE")]
        cache: PathBuf,
        /// AMD KDS base URL.
        #[arg(long, default_value = "https://kdsintf.amd.com")]
        kds_url: String,
        /// A PCCS base URL to use instead of Intel PCS.
        #[arg(long)]
        pccs_url: Option<String>,
        /// Refetch TCB info, QE identity and CRLs (AMD's too) even if the cached ones are current.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cmd: CollateralCommand) -> ExitCode {
    let CollateralCommand::Fetch {
        tee,
        evidence,
        cache,
        kds_url,
        pccs_url,
        force,
    } = cmd;
    let bytes = match std::fs::read(&evidence) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read evidence {}: {e}", evidence.display());
            return ExitCode::from(2);
        }
    };
    let cache = match Cache::create(&cache) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: collateral cache {}: {e}", cache.display());
            return ExitCode::from(2);
        }
    };
    let result = match tee.as_str() {
        // The VCEK and chain, then the product's CRL (refreshed when stale, or always with
        // --force): without it revocation cannot be checked and the default snp policy denies.
        "snp" => KdsFetcher::new(cache)
            .with_base_url(&kds_url)
            .and_then(|f| {
                f.fetch_for_report(&bytes, None)?;
                let refresh = if force {
                    Refresh::Always
                } else {
                    Refresh::IfStale
                };
                f.fetch_crl_for_report(&bytes, None, refresh)?;
                f.cache().snp_endorsements(&bytes)
            })
            .map(|e| {
                format!(
                    "{} certificate(s), {} CRL(s) cached",
                    e.certs_der.len(),
                    e.crls_der.len()
                )
            }),
        other => {
            let dcap = if other == "tdx" {
                DcapTee::Tdx
            } else {
                DcapTee::Sgx
            };
            let fetcher = match &pccs_url {
                Some(url) => PcsFetcher::new(cache).with_pccs(url),
                None => Ok(PcsFetcher::new(cache)),
            };
            let refresh = if force {
                Refresh::Always
            } else {
                Refresh::IfStale
            };
            fetcher
                .and_then(|f| f.fetch_for_quote(&bytes, dcap, refresh))
                .map(|_| "TCB info, QE identity and CRLs cached".to_string())
        }
    };
    match result {
        Ok(msg) => {
            eprintln!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
