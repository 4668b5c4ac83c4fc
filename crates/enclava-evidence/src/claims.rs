//! Normalized claims: the contract between verifiers, policies, tokens and the CLI.
//!
//! Every result carries the common fields; exactly one TEE-specific object is set (for Azure CVMs,
//! `azure` is set and holds the nested hardware object). Hex strings are lower case.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tee {
    Snp,
    Tdx,
    Sgx,
    AzureSnp,
    AzureTdx,
    Sim,
    /// Confidential Containers' development TEE (`sample` attester): no hardware, no signature;
    /// treated like `sim` (see [`crate::sample`]).
    Sample,
}

impl Tee {
    pub fn as_str(self) -> &'static str {
        match self {
            Tee::Snp => "snp",
            Tee::Tdx => "tdx",
            Tee::Sgx => "sgx",
            Tee::AzureSnp => "azure-snp",
            Tee::AzureTdx => "azure-tdx",
            Tee::Sim => "sim",
            Tee::Sample => "sample",
        }
    }

    /// Simulated evidence is never hardware, whatever it claims.
    pub fn is_hardware(self) -> bool {
        !matches!(self, Tee::Sim | Tee::Sample)
    }
}

impl std::fmt::Display for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tee {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "snp" => Tee::Snp,
            "tdx" => Tee::Tdx,
            "sgx" => Tee::Sgx,
            "azure-snp" => Tee::AzureSnp,
            "azure-tdx" => Tee::AzureTdx,
            "sim" => Tee::Sim,
            "sample" => Tee::Sample,
            other => {
                return Err(format!(
                    "unknown tee {other:?}: expected one of snp, tdx, sgx, azure-snp, azure-tdx, sim, sample"
                ));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub tee: Tee,
    /// True when the TEE allows a debugger in (SNP policy DEBUG, TD attribute DEBUG, SGX DEBUG) and
    /// always for `sim`.
    pub debug: bool,
    /// SNP launch measurement, TDX MRTD, SGX MRENCLAVE; for sim the simulated measurement (hex).
    pub measurement: String,
    /// The report data as signed by the hardware (hex, full width).
    pub report_data: String,
    /// TCB status where the TEE defines one (DCAP: UpToDate, OutOfDate, ...; SNP: null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcb_status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advisory_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snp: Option<crate::snp::SnpClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdx: Option<crate::dcap::TdxClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sgx: Option<crate::dcap::SgxClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure: Option<crate::azure::AzureClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim: Option<crate::sim::SimClaims>,
    /// Whether the certificates behind the evidence were checked against their issuers' CRLs
    /// (every hardware TEE; absent for `sim`, which has no certificates). Policies decide what
    /// they require of it: the default `snp` policy requires `checked` and `fresh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationClaims>,
}

/// What revocation checking the verifier did. A CRL that lists a certificate of the chain always
/// fails verification (`certificate_revoked`); these claims say whether that check could happen
/// at all, and against what, so that "no CRL supplied" is visible instead of passing silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationClaims {
    /// True when the CRL of the chain's root (the one that can revoke the intermediate: AMD's KDS
    /// `vcek|vlek/v1/{product}/crl`, issued by the ARK; for DCAP the Intel Root CA CRL and the PCK
    /// CA's CRL) was supplied, verified under its issuer and does not list the chain.
    pub checked: bool,
    /// Every CRL of this chain that was verified and consulted (CRLs of other issuers are ignored
    /// and not listed).
    #[serde(default)]
    pub crls: Vec<CrlClaims>,
    /// True when `checked` and every listed CRL is current at the verification time
    /// (`this_update <= time <= next_update`). A stale CRL may hide a recent revocation.
    pub fresh: bool,
}

/// One CRL consulted during verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlClaims {
    /// The issuer's common name (e.g. `ARK-Milan`, `Intel SGX Root CA`).
    pub issuer: String,
    /// The cRLNumber extension (hex of the integer), when the CRL has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// RFC 3339.
    pub this_update: String,
    /// RFC 3339; absent when the CRL has no nextUpdate (then it is never current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update: Option<String>,
    /// SHA-256 of the CRL DER (lower-case hex).
    pub sha256: String,
    /// `this_update <= verification time <= next_update`.
    pub current: bool,
}

impl CrlClaims {
    /// The claims of a parsed CRL as of `at`.
    pub fn from_crl(
        crl: &x509_cert::crl::CertificateList,
        der: &[u8],
        issuer: String,
        at: chrono::DateTime<chrono::Utc>,
    ) -> CrlClaims {
        use sha2::Digest;
        let tbs = &crl.tbs_cert_list;
        let secs = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let rfc = |s: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| s.to_string())
        };
        let this = secs(tbs.this_update);
        let next = tbs.next_update.map(secs);
        let t = at.timestamp();
        CrlClaims {
            issuer,
            number: crl_number(crl),
            this_update: rfc(this),
            next_update: next.map(rfc),
            sha256: hex::encode(sha2::Sha256::digest(der)),
            current: this <= t && next.is_some_and(|n| t <= n),
        }
    }
}

/// The cRLNumber extension (2.5.29.20, an INTEGER) as lower-case hex, when present and well formed.
fn crl_number(crl: &x509_cert::crl::CertificateList) -> Option<String> {
    use der::Decode;
    const OID_CRL_NUMBER: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");
    let ext = crl
        .tbs_cert_list
        .crl_extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == OID_CRL_NUMBER)?;
    let n = der::asn1::UintRef::from_der(ext.extn_value.as_bytes()).ok()?;
    Some(hex::encode(n.as_bytes()))
}

impl RevocationClaims {
    /// Nothing was checked (no CRL of the chain was supplied).
    pub fn unchecked() -> RevocationClaims {
        RevocationClaims::default()
    }

    /// `checked` as given; `fresh` computed from the listed CRLs.
    pub fn new(checked: bool, crls: Vec<CrlClaims>) -> RevocationClaims {
        let fresh = checked && crls.iter().all(|c| c.current);
        RevocationClaims {
            checked,
            crls,
            fresh,
        }
    }
}
