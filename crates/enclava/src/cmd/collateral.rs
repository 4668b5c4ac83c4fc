//! `enclava collateral fetch`: fill the offline collateral cache from AMD KDS or Intel PCS (or a
//! PCCS) for a given piece of evidence. Run it ahead of time or from a scheduled job: verification
//! only ever reads the cache (`enclava evidence verify --cache DIR`).

use std::path::PathBuf;
use std::process::ExitCode;

use enclava_collateral::{Cache, DcapTee, KdsFetcher, NvidiaFetcher, PcsFetcher, Refresh};

#[derive(Debug, clap::Subcommand)]
pub enum CollateralCommand {
    /// Fetch what the evidence needs into the cache (VCEK + ASK/ARK + the product's AMD CRL for
    /// SNP; TCB info, QE identity and CRLs for TDX/SGX). AMD allows about one request per 10 s: this waits politely.
    ///
    /// NVIDIA (`--tee nvidia-gpu`): the RIMs the evidence names from NVIDIA's RIM service and OCSP
    /// responses for its chain and the RIMs' signing paths; or RIMs by id with `--nvidia-rim`.
    /// Everything is checked before it is cached; `enclava evidence verify --tee nvidia-gpu
    /// --cache DIR` then runs offline.
    ///
    /// Example: enclava collateral fetch --tee snp --evidence report.bin --cache /var/lib/enclava/collateral
    /// Example: enclava collateral fetch --nvidia-rim NV_GPU_DRIVER_GH100_550.144.03 --cache DIR
    Fetch {
        /// snp, tdx, sgx or nvidia-gpu (not needed with only --nvidia-rim).
        #[arg(long, value_parser = ["snp", "tdx", "sgx", "nvidia-gpu"], requires = "evidence")]
        tee: Option<String>,
        #[arg(long, requires = "tee")]
        evidence: Option<PathBuf>,
        /// A RIM id to fetch from NVIDIA's RIM service (may be given more than once), e.g.
        /// NV_GPU_DRIVER_GH100_550.144.03 or NV_GPU_VBIOS_1010_0200_882_96005E0001.
        #[arg(long, value_name = "ID", required_unless_present = "tee")]
        nvidia_rim: Vec<String>,
        /// NVIDIA's RIM service base URL.
        #[arg(long, default_value = enclava_collateral::nvidia::DEFAULT_RIM_URL)]
        rim_url: String,
        /// NVIDIA's OCSP responder URL.
        #[arg(long, default_value = enclava_collateral::nvidia::DEFAULT_OCSP_URL)]
        ocsp_url: String,
        /// nvidia-gpu: fetch RIMs only, no OCSP.
        #[arg(long)]
        no_ocsp: bool,
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
        nvidia_rim,
        rim_url,
        ocsp_url,
        no_ocsp,
        cache,
        kds_url,
        pccs_url,
        force,
    } = cmd;
    let cache = match Cache::create(&cache) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: collateral cache {}: {e}", cache.display());
            return ExitCode::from(2);
        }
    };
    let nvidia = || {
        NvidiaFetcher::new(cache.clone())
            .with_rim_url(&rim_url)
            .and_then(|f| f.with_ocsp_url(&ocsp_url))
    };
    let mut code = ExitCode::SUCCESS;
    if !nvidia_rim.is_empty() {
        let f = match nvidia() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        for id in &nvidia_rim {
            match f.fetch_rim(id) {
                Ok(p) => eprintln!("RIM {id} cached at {}", p.display()),
                Err(e) => {
                    eprintln!("error: RIM {id}: {e}");
                    code = ExitCode::from(3);
                }
            }
        }
    }
    let (Some(tee), Some(evidence)) = (tee, evidence) else {
        return code;
    };
    let bytes = match std::fs::read(&evidence) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read evidence {}: {e}", evidence.display());
            return ExitCode::from(2);
        }
    };
    let result = match tee.as_str() {
        "nvidia-gpu" => {
            let devices = if bytes.trim_ascii_start().starts_with(b"[") {
                enclava_evidence::nvidia::parse_evidence_list(&bytes).map_err(|e| {
                    enclava_collateral::Error::InvalidCollateral {
                        what: "NVIDIA evidence list".into(),
                        reason: e.to_string(),
                    }
                })
            } else {
                Err(enclava_collateral::Error::Config(
                    "nvidia-gpu: expected the JSON evidence list NVIDIA's SDKs produce (each \
                     device with its chain); for one report, fetch its RIMs with --nvidia-rim"
                        .into(),
                ))
            };
            devices.and_then(|d| {
                let r = nvidia()?.fetch_for_evidence(&d, !no_ocsp)?;
                for (id, p) in &r.rims {
                    eprintln!("RIM {id} cached at {}", p.display());
                }
                for (subject, status, p) in &r.ocsp {
                    eprintln!("OCSP {subject}: {status}, cached at {}", p.display());
                }
                for (what, e) in &r.failed {
                    eprintln!("error: {what}: {e}");
                }
                if r.failed.is_empty() {
                    Ok(format!(
                        "{} RIM(s), {} OCSP response(s) cached",
                        r.rims.len(),
                        r.ocsp.len()
                    ))
                } else {
                    Err(enclava_collateral::Error::Config(format!(
                        "{} item(s) could not be fetched",
                        r.failed.len()
                    )))
                }
            })
        }
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
            code
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
