//! Normalized claims to the claim names Microsoft Azure Attestation (MAA) issues.
//!
//! The mapping reads the serialized form of [`Claims`] by field name (the TEE-specific structs
//! live in `enclava-evidence`); a TEE-specific field that is absent or of another JSON type is
//! left out of the token rather than guessed (a policy testing it then fails, which denies).
//! The common fields (`tee`, `debug`, `measurement`, `report_data`, `tcb_status`,
//! `advisory_ids`) are typed and always used.
//!
//! # Claims
//! Every token: `x-ms-ver` "1.0", `x-ms-attestation-type` ([`attestation_type`]),
//! `x-ms-policy-hash` and `nonce` when given, MAA's deprecated aliases it still emits (`ver`,
//! `tee` = the attestation type, `policy_hash` and `maa-policyHash` = the policy hash), and our own
//! `x-enclava-tee`, `x-enclava-simulated` (true only for `sim`), `x-enclava-is-debuggable`,
//! `x-enclava-measurement`, `x-enclava-tcb-status` (when the TEE has one),
//! `x-enclava-advisory-ids` (array, possibly empty) and `x-enclava-claims` (the full normalized
//! claims). Then per TEE:
//!
//! - **snp** (`sevsnpvm`): `x-ms-sevsnpvm-{authorkeydigest, bootloader-svn, familyId, guestsvn,
//!   hostdata, idkeydigest, imageId, is-debuggable, launchmeasurement, microcode-svn,
//!   migration-allowed, reportdata, reportid, smt-allowed, snpfw-svn, tee-svn, vmpl}`: hex strings;
//!   SVNs (from REPORTED_TCB), guest SVN and VMPL integers; flags booleans.
//! - **tdx** (`tdxvm`): `eat_profile` `"https://aka.ms/maa-eat-profile-tdxvm"`, `dbgstat`
//!   ("enabled"/"disabled"), `intuse` "generic", `attester_tcb_status` / `attester_advisory_ids`
//!   (when the TCB was evaluated), `attester_tcb_date`, `tdx_*` measurements as hex,
//!   `tdx_seamsvn` (integer: TEE_TCB_SVN byte 1 = major, byte 0 = minor), `tdx_td_attributes_*`
//!   booleans, `pce_svn`, `qe_svn`.
//! - **sgx** (`sgx`): `x-ms-sgx-{is-debuggable, product-id, svn, mrenclave, mrsigner, report-data,
//!   config-id, config-svn, isv-extended-product-id, isv-family-id}`, `x-ms-sgx-ehd`
//!   (base64url of the runtime data), and MAA's deprecated aliases (`is-debuggable`,
//!   `sgx-mrenclave`, `sgx-mrsigner`, `product-id`, `svn`, `maa-ehd`, `aas-ehd`). The attestation
//!   service adds `x-ms-sgx-collateral` (and its alias `maa-attestationcollateral`) when it
//!   evaluated the quote with collateral: see [`sgx_collateral_claim`].
//! - **azure-snp / azure-tdx** (`azurevm`): `x-ms-isolation-tee` {`x-ms-attestation-type`
//!   sevsnpvm | tdxvm, `x-ms-compliance-status` (see below), `x-ms-runtime` = the HCL runtime data
//!   (its `keys` hold HCLAkPub / HCLEkPub; `vm-configuration`), and the snp or tdx claims above};
//!   top level `x-ms-azurevm-attested-pcrs` (sorted PCR indices), `x-ms-azurevm-vmid`
//!   (`vm-configuration.vmUniqueId`) and `secureboot` (`vm-configuration.secure-boot`) when present.
//!   Other `x-ms-azurevm-*` claims come from the boot event log, which the evidence does not
//!   carry: they are not issued.
//! - **sim** (`enclava-sim`): `x-enclava-simulated` true, `x-enclava-sim-workload`,
//!   `x-enclava-sim-generated-at`, `x-enclava-sim-report-data`. Never a compliance status.
//!
//! # Runtime and init-time data
//! Caller-supplied data is only put in a token when the evidence binds it; otherwise
//! [`maa_claims`] fails with `data_binding_mismatch`:
//! - runtime data: SHA-256(data) = the first 32 bytes of report_data (sgx, tdx, snp, sim); for
//!   Azure CVMs, = the vTPM quote's extraData (exactly, or followed only by zero bytes).
//! - init-time data: SHA-256(data) = SEV-SNP HOST_DATA, or the first 32 bytes of SGX CONFIGID;
//!   other TEEs have no init-time binding and are refused (`invalid_data`).
//!
//! JSON runtime data (an object) becomes `x-ms-runtime` (top level; for Azure CVMs the caller's
//! data is the top-level one and the HCL data the nested one) — its `keys` JWKs are how a TEE's
//! ephemeral key reaches a key vault's release. A JWK carrying private members (`d`, `p`, `q`,
//! `dp`, `dq`, `qi`, `k`) is refused. Binary runtime data becomes `x-ms-sgx-ehd` for SGX (JSON
//! too) and `x-enclava-runtime-data` (base64url) otherwise. JSON init-time data becomes
//! `x-ms-inittime`, binary `x-enclava-inittime-data`.
//!
//! # Compliance status (our rule)
//! `x-ms-compliance-status` = "azure-compliant-cvm" only for Azure CVM evidence (azure-snp,
//! azure-tdx) that is hardware, not debuggable (top-level `debug` false and the nested hardware
//! debug flag present and false) and whose TCB status is none (SEV-SNP), `UpToDate` or
//! `SWHardeningNeeded`. It sits inside `x-ms-isolation-tee`, as in MAA's azurevm tokens. No other
//! evidence gets a compliance status: MAA's "azure-compliant-uvm" rests on Microsoft's UVM
//! endorsements, which we cannot check.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use enclava_evidence::{Claims, Tee};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{TokenError, shown};

pub const MAA_VERSION: &str = "1.0";
pub const ATTESTATION_TYPE_SIM: &str = "enclava-sim";
pub const TDX_EAT_PROFILE: &str = "https://aka.ms/maa-eat-profile-tdxvm";
pub const COMPLIANT_CVM: &str = "azure-compliant-cvm";
/// `x-ms-policy-hash` and the deprecated names MAA still emits with the same value.
pub const POLICY_HASH_CLAIMS: &[&str] = &["x-ms-policy-hash", "policy_hash", "maa-policyHash"];
/// `x-ms-sgx-collateral` and its deprecated name, both emitted (SGX).
pub const SGX_COLLATERAL_CLAIMS: &[&str] = &["x-ms-sgx-collateral", "maa-attestationcollateral"];

/// `x-ms-attestation-type` for a TEE.
pub fn attestation_type(tee: Tee) -> &'static str {
    match tee {
        Tee::Snp => "sevsnpvm",
        Tee::Tdx => "tdxvm",
        Tee::Sgx => "sgx",
        Tee::AzureSnp | Tee::AzureTdx => "azurevm",
        Tee::Sim | Tee::Sample => ATTESTATION_TYPE_SIM,
    }
}

/// `x-ms-policy-hash`: base64url(SHA-256(UTF-8(base64url(UTF-8(policy))))), no padding.
pub fn policy_hash(policy_text: &str) -> String {
    let inner = URL_SAFE_NO_PAD.encode(policy_text.as_bytes());
    URL_SAFE_NO_PAD.encode(Sha256::digest(inner.as_bytes()))
}

/// Claims every token of ours may carry (for `claims_supported`).
pub const CLAIMS_SUPPORTED: &[&str] = &[
    "iss",
    "iat",
    "nbf",
    "exp",
    "jti",
    "aud",
    "nonce",
    "x-ms-ver",
    "x-ms-attestation-type",
    "x-ms-policy-hash",
    "x-ms-compliance-status",
    "x-ms-runtime",
    "x-ms-inittime",
    "x-ms-isolation-tee",
    "x-ms-azurevm-attested-pcrs",
    "x-ms-azurevm-vmid",
    "secureboot",
    "x-ms-sevsnpvm-authorkeydigest",
    "x-ms-sevsnpvm-bootloader-svn",
    "x-ms-sevsnpvm-familyId",
    "x-ms-sevsnpvm-guestsvn",
    "x-ms-sevsnpvm-hostdata",
    "x-ms-sevsnpvm-idkeydigest",
    "x-ms-sevsnpvm-imageId",
    "x-ms-sevsnpvm-is-debuggable",
    "x-ms-sevsnpvm-launchmeasurement",
    "x-ms-sevsnpvm-microcode-svn",
    "x-ms-sevsnpvm-migration-allowed",
    "x-ms-sevsnpvm-reportdata",
    "x-ms-sevsnpvm-reportid",
    "x-ms-sevsnpvm-smt-allowed",
    "x-ms-sevsnpvm-snpfw-svn",
    "x-ms-sevsnpvm-tee-svn",
    "x-ms-sevsnpvm-vmpl",
    "eat_profile",
    "dbgstat",
    "intuse",
    "attester_tcb_status",
    "attester_advisory_ids",
    "attester_tcb_date",
    "tdx_mrsignerseam",
    "tdx_mrseam",
    "tdx_mrtd",
    "tdx_rtmr0",
    "tdx_rtmr1",
    "tdx_rtmr2",
    "tdx_rtmr3",
    "tdx_mrconfigid",
    "tdx_mrowner",
    "tdx_mrownerconfig",
    "tdx_report_data",
    "tdx_seam_attributes",
    "tdx_tee_tcb_svn",
    "tdx_xfam",
    "tdx_seamsvn",
    "tdx_td_attributes",
    "tdx_td_attributes_debug",
    "tdx_td_attributes_key_locker",
    "tdx_td_attributes_perfmon",
    "tdx_td_attributes_protection_keys",
    "tdx_td_attributes_septve_disable",
    "pce_svn",
    "qe_svn",
    "x-ms-sgx-is-debuggable",
    "x-ms-sgx-product-id",
    "x-ms-sgx-svn",
    "x-ms-sgx-mrenclave",
    "x-ms-sgx-mrsigner",
    "x-ms-sgx-report-data",
    "x-ms-sgx-ehd",
    "x-ms-sgx-config-id",
    "x-ms-sgx-config-svn",
    "x-ms-sgx-isv-extended-product-id",
    "x-ms-sgx-isv-family-id",
    "is-debuggable",
    "sgx-mrenclave",
    "sgx-mrsigner",
    "product-id",
    "svn",
    "tee",
    "maa-ehd",
    "aas-ehd",
    "ver",
    "policy_hash",
    "maa-policyHash",
    "x-ms-sgx-collateral",
    "maa-attestationcollateral",
    "x-enclava-tee",
    "x-enclava-simulated",
    "x-enclava-is-debuggable",
    "x-enclava-measurement",
    "x-enclava-tcb-status",
    "x-enclava-advisory-ids",
    "x-enclava-claims",
    "x-enclava-runtime-data",
    "x-enclava-inittime-data",
    "x-enclava-sim-workload",
    "x-enclava-sim-generated-at",
    "x-enclava-sim-report-data",
    "x-enclava-ear",
];

/// The `/.well-known/openid-configuration` document for an issuer (MAA's shape: issuer,
/// jwks_uri `{issuer}/certs`, response types, signing algorithms, claims).
pub fn openid_configuration(issuer: &str, algs: &[crate::Alg]) -> Value {
    let base = issuer.trim_end_matches('/');
    serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/certs"),
        "response_types_supported": ["token", "none"],
        "id_token_signing_alg_values_supported":
            algs.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "claims_supported": CLAIMS_SUPPORTED,
    })
}

/// `dataType` of MAA runtime / init-time data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Binary,
    Json,
}

impl DataType {
    /// "Binary" or "JSON" (case-insensitive).
    pub fn parse(s: &str) -> Result<DataType, TokenError> {
        if s.eq_ignore_ascii_case("binary") {
            Ok(DataType::Binary)
        } else if s.eq_ignore_ascii_case("json") {
            Ok(DataType::Json)
        } else {
            Err(TokenError::InvalidData {
                what: "dataType".into(),
                reason: format!("expected \"Binary\" or \"JSON\", found {}", shown(s)),
            })
        }
    }
}

/// Runtime or init-time data as sent with an attestation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestData {
    pub data: Vec<u8>,
    pub data_type: DataType,
}

impl AttestData {
    pub fn binary(data: impl Into<Vec<u8>>) -> AttestData {
        AttestData {
            data: data.into(),
            data_type: DataType::Binary,
        }
    }

    pub fn json(data: impl Into<Vec<u8>>) -> AttestData {
        AttestData {
            data: data.into(),
            data_type: DataType::Json,
        }
    }

    /// From MAA's request form `{data: base64url, dataType}` (padding optional).
    pub fn from_request(data_b64url: &str, data_type: &str) -> Result<AttestData, TokenError> {
        let data_type = DataType::parse(data_type)?;
        let data = URL_SAFE_NO_PAD
            .decode(data_b64url)
            .or_else(|_| URL_SAFE.decode(data_b64url))
            .map_err(|_| TokenError::InvalidData {
                what: "data".into(),
                reason: "expected base64url".into(),
            })?;
        Ok(AttestData { data, data_type })
    }

    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.data).into()
    }

    /// The data as a JSON object, with no private key members in `keys`.
    fn json_object(&self, what: &str) -> Result<Map<String, Value>, TokenError> {
        let invalid = |reason: String| TokenError::InvalidData {
            what: what.into(),
            reason,
        };
        let v: Value = serde_json::from_slice(&self.data)
            .map_err(|e| invalid(format!("dataType is JSON but the data is not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(invalid(format!(
                "expected a JSON object, found {}",
                crate::jwt::json_kind(&v)
            )));
        };
        if let Some(keys) = m.get("keys") {
            let Value::Array(keys) = keys else {
                return Err(invalid("expected \"keys\" to be an array of JWKs".into()));
            };
            for (i, k) in keys.iter().enumerate() {
                let Value::Object(k) = k else {
                    return Err(invalid(format!("keys[{i}] is not a JWK object")));
                };
                for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
                    if k.contains_key(private) {
                        return Err(invalid(format!(
                            "keys[{i}] carries private key material ({private:?}): expected public keys only"
                        )));
                    }
                }
            }
        }
        Ok(m)
    }
}

/// Everything [`maa_claims`] maps.
#[derive(Debug, Clone, Copy)]
pub struct MaaInput<'a> {
    pub claims: &'a Claims,
    pub runtime_data: Option<&'a AttestData>,
    pub init_time_data: Option<&'a AttestData>,
    pub nonce: Option<&'a str>,
    /// Already computed with [`policy_hash`].
    pub policy_hash: Option<&'a str>,
}

impl<'a> MaaInput<'a> {
    pub fn new(claims: &'a Claims) -> MaaInput<'a> {
        MaaInput {
            claims,
            runtime_data: None,
            init_time_data: None,
            nonce: None,
            policy_hash: None,
        }
    }
}

fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn put_str(m: &mut Map<String, Value>, name: &str, v: Option<&Value>) {
    if let Some(Value::String(s)) = v {
        m.insert(name.into(), Value::String(s.clone()));
    }
}

fn put_int(m: &mut Map<String, Value>, name: &str, v: Option<&Value>) {
    if let Some(n) = v.and_then(Value::as_u64) {
        m.insert(name.into(), Value::from(n));
    }
}

fn put_bool(m: &mut Map<String, Value>, name: &str, v: Option<&Value>) {
    if let Some(b) = v.and_then(Value::as_bool) {
        m.insert(name.into(), Value::Bool(b));
    }
}

fn section<'v>(cv: &'v Value, key: &str, tee: Tee) -> Result<&'v Value, TokenError> {
    match cv.get(key) {
        Some(v @ Value::Object(_)) => Ok(v),
        _ => Err(TokenError::MalformedClaims(format!(
            "tee is {tee} but the claims have no {key:?} object"
        ))),
    }
}

fn decode_hex(s: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    hex::decode(s).map_err(|e| TokenError::MalformedClaims(format!("{what} is not hex: {e}")))
}

/// The compliance status our rule gives (see the module documentation).
pub fn compliance_status(claims: &Claims) -> Option<&'static str> {
    if !matches!(claims.tee, Tee::AzureSnp | Tee::AzureTdx) || !claims.tee.is_hardware() {
        return None;
    }
    if claims.debug {
        return None;
    }
    let hw = claims.azure.as_ref().map(|a| &a.hardware)?;
    let hw_debug = match claims.tee {
        Tee::AzureSnp => at(hw, &["policy", "debug"]),
        _ => at(hw, &["td_attributes", "debug"]),
    };
    if hw_debug != Some(&Value::Bool(false)) {
        return None;
    }
    match claims.tcb_status.as_deref() {
        None if claims.tee == Tee::AzureSnp => Some(COMPLIANT_CVM),
        Some("UpToDate") | Some("SWHardeningNeeded") => Some(COMPLIANT_CVM),
        _ => None,
    }
}

/// MAA's `x-ms-sgx-collateral` object: lowercase hex SHA-256 of the quote (`quotehash`) and of
/// each collateral part the verifier was given, under MAA's names (`qeidcertshash`,
/// `qeidcrlhash`, `qeidhash`, `tcbinfocertshash`, `tcbinfocrlhash`, `tcbinfohash`). `parts` are
/// the collateral digests as [`enclava_evidence::dcap::Collateral::digests`] returns them.
pub fn sgx_collateral_claim(quote: &[u8], parts: &[(&'static str, [u8; 32])]) -> Value {
    let mut o = Map::new();
    o.insert(
        "quotehash".into(),
        hex::encode(Sha256::digest(quote)).into(),
    );
    for (name, digest) in parts {
        o.insert((*name).into(), hex::encode(digest).into());
    }
    Value::Object(o)
}

/// Map normalized claims (and bound runtime / init-time data) to an MAA-style claims map. The
/// registered claims (iss, iat, nbf, exp, jti) are added by [`crate::issue`].
pub fn maa_claims(input: &MaaInput<'_>) -> Result<Map<String, Value>, TokenError> {
    let c = input.claims;
    let cv = serde_json::to_value(c)
        .map_err(|e| TokenError::MalformedClaims(format!("claims do not serialize: {e}")))?;

    let mut m = Map::new();
    m.insert("x-ms-ver".into(), MAA_VERSION.into());
    m.insert(
        "x-ms-attestation-type".into(),
        attestation_type(c.tee).into(),
    );
    // MAA's deprecated names of the two above, which it still emits on every token (its claim
    // sets list `ver` and `tee` as "fully supported and will continue to be included").
    m.insert("ver".into(), MAA_VERSION.into());
    m.insert("tee".into(), attestation_type(c.tee).into());
    if let Some(h) = input.policy_hash {
        for name in POLICY_HASH_CLAIMS {
            m.insert((*name).into(), h.into());
        }
    }
    if let Some(n) = input.nonce {
        m.insert("nonce".into(), n.into());
    }

    // Caller data, checked against the evidence before anything is emitted.
    if let Some(d) = input.runtime_data {
        check_runtime_binding(c, &cv, d)?;
    }
    if let Some(d) = input.init_time_data {
        check_init_binding(c, &cv, d)?;
    }
    let runtime_json = match input.runtime_data {
        Some(d) if d.data_type == DataType::Json => Some(d.json_object("runtime data")?),
        _ => None,
    };
    let init_json = match input.init_time_data {
        Some(d) if d.data_type == DataType::Json => Some(d.json_object("init-time data")?),
        _ => None,
    };

    match c.tee {
        Tee::Snp => snp_into(&mut m, c, section(&cv, "snp", c.tee)?),
        Tee::Tdx => tdx_into(&mut m, c, section(&cv, "tdx", c.tee)?)?,
        Tee::Sgx => sgx_into(&mut m, c, section(&cv, "sgx", c.tee)?, input.runtime_data),
        Tee::Sim => {
            let s = section(&cv, "sim", c.tee)?;
            put_str(&mut m, "x-enclava-sim-workload", s.get("workload"));
            put_str(&mut m, "x-enclava-sim-generated-at", s.get("generated_at"));
            m.insert(
                "x-enclava-sim-report-data".into(),
                c.report_data.clone().into(),
            );
        }
        Tee::AzureSnp | Tee::AzureTdx => azure_into(&mut m, c, section(&cv, "azure", c.tee)?)?,
        Tee::Sample => {
            m.insert(
                "x-enclava-sample-report-data".into(),
                c.report_data.clone().into(),
            );
        }
    }

    if let Some(rt) = runtime_json {
        m.insert("x-ms-runtime".into(), Value::Object(rt));
    } else if let Some(d) = input.runtime_data
        && c.tee != Tee::Sgx
    {
        m.insert(
            "x-enclava-runtime-data".into(),
            URL_SAFE_NO_PAD.encode(&d.data).into(),
        );
    }
    if let Some(it) = init_json {
        m.insert("x-ms-inittime".into(), Value::Object(it));
    } else if let Some(d) = input.init_time_data {
        m.insert(
            "x-enclava-inittime-data".into(),
            URL_SAFE_NO_PAD.encode(&d.data).into(),
        );
    }

    m.insert("x-enclava-tee".into(), c.tee.as_str().into());
    m.insert("x-enclava-simulated".into(), (!c.tee.is_hardware()).into());
    m.insert("x-enclava-is-debuggable".into(), c.debug.into());
    m.insert("x-enclava-measurement".into(), c.measurement.clone().into());
    if let Some(s) = &c.tcb_status {
        m.insert("x-enclava-tcb-status".into(), s.clone().into());
    }
    m.insert(
        "x-enclava-advisory-ids".into(),
        Value::from(c.advisory_ids.clone()),
    );
    m.insert("x-enclava-claims".into(), cv);
    Ok(m)
}

fn snp_into(m: &mut Map<String, Value>, c: &Claims, s: &Value) {
    const P: &str = "x-ms-sevsnpvm-";
    let tcb = s.get("reported_tcb");
    let tcb_field = |f: &str| tcb.and_then(|t| t.get(f));
    put_str(
        m,
        &format!("{P}authorkeydigest"),
        s.get("author_key_digest"),
    );
    put_int(m, &format!("{P}bootloader-svn"), tcb_field("bootloader"));
    put_str(m, &format!("{P}familyId"), s.get("family_id"));
    put_int(m, &format!("{P}guestsvn"), s.get("guest_svn"));
    put_str(m, &format!("{P}hostdata"), s.get("host_data"));
    put_str(m, &format!("{P}idkeydigest"), s.get("id_key_digest"));
    put_str(m, &format!("{P}imageId"), s.get("image_id"));
    let policy_debug = at(s, &["policy", "debug"]).and_then(Value::as_bool);
    m.insert(
        format!("{P}is-debuggable"),
        (c.debug || policy_debug != Some(false)).into(),
    );
    m.insert(
        format!("{P}launchmeasurement"),
        c.measurement.clone().into(),
    );
    put_int(m, &format!("{P}microcode-svn"), tcb_field("microcode"));
    put_bool(
        m,
        &format!("{P}migration-allowed"),
        at(s, &["policy", "migrate_ma"]),
    );
    m.insert(format!("{P}reportdata"), c.report_data.clone().into());
    put_str(m, &format!("{P}reportid"), s.get("report_id"));
    put_bool(m, &format!("{P}smt-allowed"), at(s, &["policy", "smt"]));
    put_int(m, &format!("{P}snpfw-svn"), tcb_field("snp"));
    put_int(m, &format!("{P}tee-svn"), tcb_field("tee"));
    put_int(m, &format!("{P}vmpl"), s.get("vmpl"));
}

fn tdx_into(m: &mut Map<String, Value>, c: &Claims, t: &Value) -> Result<(), TokenError> {
    let attr = |f: &str| at(t, &["td_attributes", f]);
    let td_debug = attr("debug").and_then(Value::as_bool);
    // Unknown debug state counts as debuggable.
    let debug = c.debug || td_debug != Some(false);
    m.insert("eat_profile".into(), TDX_EAT_PROFILE.into());
    m.insert(
        "dbgstat".into(),
        if debug { "enabled" } else { "disabled" }.into(),
    );
    m.insert("intuse".into(), "generic".into());
    if let Some(s) = &c.tcb_status {
        m.insert("attester_tcb_status".into(), s.clone().into());
        m.insert(
            "attester_advisory_ids".into(),
            Value::from(c.advisory_ids.clone()),
        );
    }
    put_str(m, "attester_tcb_date", t.get("tcb_date"));
    put_str(m, "tdx_mrsignerseam", t.get("mr_signer_seam"));
    put_str(m, "tdx_mrseam", t.get("mr_seam"));
    put_str(m, "tdx_mrtd", t.get("mr_td"));
    for i in 0..4 {
        put_str(
            m,
            &format!("tdx_rtmr{i}"),
            t.get(format!("rtmr{i}").as_str()),
        );
    }
    put_str(m, "tdx_mrconfigid", t.get("mr_config_id"));
    put_str(m, "tdx_mrowner", t.get("mr_owner"));
    put_str(m, "tdx_mrownerconfig", t.get("mr_owner_config"));
    m.insert("tdx_report_data".into(), c.report_data.clone().into());
    put_str(m, "tdx_seam_attributes", t.get("seam_attributes"));
    put_str(m, "tdx_tee_tcb_svn", t.get("tee_tcb_svn"));
    if let Some(svn) = t.get("tee_tcb_svn").and_then(Value::as_str) {
        let b = decode_hex(svn, "tee_tcb_svn")?;
        if let (Some(minor), Some(major)) = (b.first(), b.get(1)) {
            m.insert(
                "tdx_seamsvn".into(),
                (u64::from(*major) << 8 | u64::from(*minor)).into(),
            );
        }
    }
    put_str(m, "tdx_xfam", t.get("xfam"));
    put_str(m, "tdx_td_attributes", attr("raw"));
    m.insert("tdx_td_attributes_debug".into(), debug.into());
    put_bool(m, "tdx_td_attributes_key_locker", attr("kl"));
    put_bool(m, "tdx_td_attributes_perfmon", attr("perfmon"));
    put_bool(m, "tdx_td_attributes_protection_keys", attr("pks"));
    put_bool(
        m,
        "tdx_td_attributes_septve_disable",
        attr("sept_ve_disable"),
    );
    put_int(m, "pce_svn", t.get("pce_svn"));
    put_int(m, "qe_svn", t.get("qe_svn"));
    Ok(())
}

fn sgx_into(m: &mut Map<String, Value>, c: &Claims, s: &Value, runtime: Option<&AttestData>) {
    const P: &str = "x-ms-sgx-";
    m.insert(format!("{P}is-debuggable"), c.debug.into());
    put_int(m, &format!("{P}product-id"), s.get("isv_prod_id"));
    put_int(m, &format!("{P}svn"), s.get("isv_svn"));
    put_str(m, &format!("{P}mrenclave"), s.get("mr_enclave"));
    put_str(m, &format!("{P}mrsigner"), s.get("mr_signer"));
    m.insert(format!("{P}report-data"), c.report_data.clone().into());
    put_str(m, &format!("{P}config-id"), s.get("config_id"));
    put_int(m, &format!("{P}config-svn"), s.get("config_svn"));
    put_str(
        m,
        &format!("{P}isv-extended-product-id"),
        s.get("isv_ext_prod_id"),
    );
    put_str(m, &format!("{P}isv-family-id"), s.get("isv_family_id"));
    // MAA's deprecated names, still read by older verifiers.
    m.insert("is-debuggable".into(), c.debug.into());
    put_str(m, "sgx-mrenclave", s.get("mr_enclave"));
    put_str(m, "sgx-mrsigner", s.get("mr_signer"));
    put_int(m, "product-id", s.get("isv_prod_id"));
    put_int(m, "svn", s.get("isv_svn"));
    if let Some(d) = runtime {
        let ehd = URL_SAFE_NO_PAD.encode(&d.data);
        m.insert(format!("{P}ehd"), ehd.clone().into());
        m.insert("maa-ehd".into(), ehd.clone().into());
        m.insert("aas-ehd".into(), ehd.into());
    }
}

fn azure_into(m: &mut Map<String, Value>, c: &Claims, az: &Value) -> Result<(), TokenError> {
    let hw = match az.get("hardware") {
        Some(v @ Value::Object(_)) => v,
        _ => {
            return Err(TokenError::MalformedClaims(format!(
                "tee is {} but azure.hardware is not an object",
                c.tee
            )));
        }
    };
    let mut iso = Map::new();
    let hw_type = if c.tee == Tee::AzureSnp {
        "sevsnpvm"
    } else {
        "tdxvm"
    };
    iso.insert("x-ms-attestation-type".into(), hw_type.into());
    if let Some(cs) = compliance_status(c) {
        iso.insert("x-ms-compliance-status".into(), cs.into());
    }
    if let Some(rt @ Value::Object(_)) = az.get("runtime_data") {
        iso.insert("x-ms-runtime".into(), rt.clone());
    }
    if c.tee == Tee::AzureSnp {
        snp_into(&mut iso, c, hw);
    } else {
        tdx_into(&mut iso, c, hw)?;
    }
    m.insert("x-ms-isolation-tee".into(), Value::Object(iso));

    if let Some(Value::Object(pcrs)) = az.get("pcrs") {
        let mut idx: Vec<u64> = pcrs.keys().filter_map(|k| k.parse().ok()).collect();
        idx.sort_unstable();
        m.insert("x-ms-azurevm-attested-pcrs".into(), Value::from(idx));
    }
    let vmc = az.get("vm_configuration");
    put_str(
        m,
        "x-ms-azurevm-vmid",
        vmc.and_then(|v| v.get("vmUniqueId")),
    );
    put_bool(m, "secureboot", vmc.and_then(|v| v.get("secure-boot")));
    Ok(())
}

fn check_runtime_binding(c: &Claims, cv: &Value, d: &AttestData) -> Result<(), TokenError> {
    let digest = d.sha256();
    let azure = matches!(c.tee, Tee::AzureSnp | Tee::AzureTdx);
    let (target_hex, what) = if azure {
        let n = at(cv, &["azure", "nonce"])
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::MalformedClaims("azure.nonce is missing".into()))?;
        (n.to_string(), "the vTPM quote nonce")
    } else {
        (c.report_data.clone(), "report_data")
    };
    let target = decode_hex(&target_hex, what)?;
    let head = target.get(..32);
    let ok = head == Some(&digest[..])
        && (!azure || target.get(32..).is_some_and(|r| r.iter().all(|&b| b == 0)));
    if ok {
        return Ok(());
    }
    Err(TokenError::DataBinding {
        what: "runtime data".into(),
        expected: format!(
            "SHA-256 {} as the first 32 bytes of {what}{}",
            hex::encode(digest),
            if azure { " (rest zero)" } else { "" }
        ),
        found: hex::encode(head.unwrap_or(&target)),
    })
}

fn check_init_binding(c: &Claims, cv: &Value, d: &AttestData) -> Result<(), TokenError> {
    let digest = d.sha256();
    let (field, what) = match c.tee {
        Tee::Snp => (at(cv, &["snp", "host_data"]), "HOST_DATA"),
        Tee::Sgx => (at(cv, &["sgx", "config_id"]), "CONFIGID"),
        other => {
            return Err(TokenError::InvalidData {
                what: "init-time data".into(),
                reason: format!(
                    "expected SEV-SNP (HOST_DATA) or SGX (CONFIGID) evidence, found {other}"
                ),
            });
        }
    };
    let field = field
        .and_then(Value::as_str)
        .ok_or_else(|| TokenError::MalformedClaims(format!("{what} is missing")))?;
    let target = decode_hex(field, what)?;
    let head = target.get(..32);
    if head == Some(&digest[..]) {
        return Ok(());
    }
    Err(TokenError::DataBinding {
        what: "init-time data".into(),
        expected: format!("SHA-256 {} as {what}", hex::encode(digest)),
        found: hex::encode(head.unwrap_or(&target)),
    })
}
