//! Built-in appraisal policies, one per attestation type, plus the `quickstart` example.
//!
//! Hardware policies (`snp`, `tdx`, `sgx`, `azure-snp`, `azure-tdx`) deny when:
//!
//! | rule | claim path | when |
//! |---|---|---|
//! | `tee` | `claims.tee` | the evidence is of another attestation type |
//! | `debug` | `claims.debug` and the hardware debug flag | the TEE is debuggable (or the flag is missing) |
//! | `tcb_revoked` | `claims.tcb_status` | the TCB status is `Revoked` |
//! | `tcb_not_evaluated` | `claims.tcb_status` | DCAP (tdx, sgx, azure-tdx): `NotEvaluated` or absent |
//! | `measurement_not_allowed` | `claims.measurement` | reference sets list `measurements` and this is not one |
//! | `tcb_below_minimum` | `claims.snp.reported_tcb.<field>` | SNP: below a reference `min_tcb` |
//! | `signer_not_allowed` | `claims.sgx.mr_signer` | SGX: reference sets list `signers` and this is not one |
//! | `svn_below_minimum` | `claims.sgx.isv_svn` | SGX: below a reference `min_svn` |
//! | `revocation_checked` | `claims.revocation.checked` | SNP: no CRL of the chain's AMD root (ARK) was checked; the deny names the CRL expected (e.g. "an AMD VCEK CRL for Milan") |
//! | `revocation_fresh` | `claims.revocation.fresh` | SNP: a consulted CRL is not current at the verification time; the deny lists the stale CRLs |
//!
//! Revocation (`require_revocation` in the policy text): the `snp` policy requires it. Without
//! the ARK's CRL nothing says the ASK/ASVK that certified the VCEK/VLEK was not revoked; supply
//! it with the evidence or keep it in the server's collateral cache (`enclava collateral fetch`
//! fetches and refreshes it). The `azure-snp` policy does **not** require it
//! (`require_revocation := false`), by decision: Azure's HCL evidence carries the VCEK that
//! Azure's THIM service hands out and no CRL, Azure keeps revoked platforms out of its fleet, and
//! Microsoft Azure Attestation does not check AMD CRLs either. The claim is still set (it says
//! `checked: true` when the server's collateral supplies the CRL), and a copy of the policy with
//! `require_revocation := true` requires it. DCAP (`tdx`, `sgx`, `azure-tdx`) always checks the
//! Intel CRLs when collateral is present (a stale one fails verification) and without collateral
//! the TCB is `NotEvaluated`, denied by `tcb_not_evaluated`.
//!
//! The `sim` policy always denies with `sim_not_allowed`: simulated evidence proves nothing, and
//! only a policy that says so explicitly (such as `quickstart`) accepts it.
//!
//! The `quickstart` policy accepts simulated or hardware evidence whose measurement is listed in
//! the reference set named `quickstart` (`input.reference.quickstart.measurements`); hardware
//! evidence must in addition pass the debug and TCB rules. Never use it in production with sim
//! evidence: anyone can produce simulated evidence for any measurement.

/// Names of the built-in policies.
pub const NAMES: [&str; 7] = [
    "snp",
    "tdx",
    "sgx",
    "azure-snp",
    "azure-tdx",
    "sim",
    "quickstart",
];

/// The source of a built-in policy by name.
pub fn source(name: &str) -> Option<&'static str> {
    Some(match name {
        "snp" => SNP,
        "tdx" => TDX,
        "sgx" => SGX,
        "azure-snp" => AZURE_SNP,
        "azure-tdx" => AZURE_TDX,
        "sim" => SIM,
        "quickstart" => QUICKSTART,
        _ => return None,
    })
}

macro_rules! header {
    () => {
        r#"package enclava.appraisal

import rego.v1

default allow := false

allow if count(deny) == 0

claim(path) := object.get(input, array.concat(["claims"], path), "missing")

"#
    };
}

macro_rules! common_hardware {
    () => {
        r#"
deny contains {"rule": "tee", "path": "claims.tee", "expected": expected_tee, "found": found} if {
	found := claim(["tee"])
	found != expected_tee
}

deny contains {"rule": "debug", "path": "claims.debug", "expected": false, "found": found} if {
	found := claim(["debug"])
	found != false
}

deny contains {"rule": "debug", "path": concat(".", array.concat(["claims"], debug_flag_path)), "expected": false, "found": found} if {
	found := claim(debug_flag_path)
	found != false
}

deny contains {"rule": "tcb_revoked", "path": "claims.tcb_status", "expected": sprintf("tcb_status not in %v", [sort(rejected_tcb_statuses)]), "found": status} if {
	status := claim(["tcb_status"])
	status == "Revoked"
}

reference_measurements contains lower(m) if {
	some name
	some m in input.reference[name].measurements
	is_string(m)
}

deny contains {"rule": "measurement_not_allowed", "path": "claims.measurement", "expected": sprintf("one of %v", [sort(reference_measurements)]), "found": m} if {
	count(reference_measurements) > 0
	m := claim(["measurement"])
	not measurement_listed(m)
}

measurement_listed(m) if {
	is_string(m)
	lower(m) in reference_measurements
}

at_least(v, min) if {
	is_number(v)
	is_number(min)
	v >= min
}
"#
    };
}

macro_rules! dcap_tcb {
    () => {
        r#"
rejected_tcb_statuses := {"Revoked", "NotEvaluated"}

deny contains {"rule": "tcb_not_evaluated", "path": "claims.tcb_status", "expected": "a TCB status evaluated against collateral (not NotEvaluated or absent)", "found": status} if {
	status := object.get(input, ["claims", "tcb_status"], "absent")
	status in {"NotEvaluated", "absent", null}
}
"#
    };
}

macro_rules! snp_tcb {
    () => {
        r#"
rejected_tcb_statuses := {"Revoked"}

deny contains {"rule": "tcb_below_minimum", "path": concat(".", array.concat(["claims"], array.concat(tcb_path, [field]))), "expected": sprintf(">= %v (reference set %v)", [min, name]), "found": found} if {
	some name
	some field, min in input.reference[name].min_tcb
	found := claim(array.concat(tcb_path, [field]))
	not at_least(found, min)
}
"#
    };
}

macro_rules! snp_revocation {
    () => {
        r#"
revocation := object.get(input, ["claims", "revocation"], {})

revocation_crls := object.get(revocation, "crls", [])

revocation_key := upper(object.get(input, array.concat(["claims"], array.concat(hardware_path, ["signing_key"])), "vcek"))

revocation_product := object.get(input, array.concat(["claims"], array.concat(hardware_path, ["product"])), "its product")

deny contains {"rule": "revocation_checked", "path": "claims.revocation.checked", "expected": sprintf("an AMD %v CRL for %v (AMD KDS %v/v1/%v/crl, issued by ARK-%v)", [revocation_key, revocation_product, lower(revocation_key), revocation_product, revocation_product]), "found": "none"} if {
	require_revocation
	object.get(revocation, "checked", false) != true
	count(revocation_crls) == 0
}

deny contains {"rule": "revocation_checked", "path": "claims.revocation.checked", "expected": sprintf("an AMD %v CRL for %v (AMD KDS %v/v1/%v/crl, issued by ARK-%v)", [revocation_key, revocation_product, lower(revocation_key), revocation_product, revocation_product]), "found": sprintf("only CRLs of %v", [concat(", ", [c.issuer | some c in revocation_crls])])} if {
	require_revocation
	object.get(revocation, "checked", false) != true
	count(revocation_crls) > 0
}

deny contains {"rule": "revocation_fresh", "path": "claims.revocation.fresh", "expected": "every CRL current at the verification time (this_update <= time <= next_update)", "found": sprintf("stale: %v", [concat(", ", stale)])} if {
	require_revocation
	object.get(revocation, "checked", false) == true
	object.get(revocation, "fresh", false) != true
	stale := [sprintf("%v CRL (this_update %v, next_update %v)", [c.issuer, c.this_update, object.get(c, "next_update", "none")]) | some c in revocation_crls; object.get(c, "current", false) != true]
}
"#
    };
}

/// AMD SEV-SNP (bare metal). Requires revocation checked against a current ARK CRL.
pub const SNP: &str = concat!(
    header!(),
    "expected_tee := \"snp\"\n\ndebug_flag_path := [\"snp\", \"policy\", \"debug\"]\n\ntcb_path := [\"snp\", \"reported_tcb\"]\n\nhardware_path := [\"snp\"]\n\n# Deny unless the AMD CRL of the chain's root was checked and is current.\nrequire_revocation := true\n",
    common_hardware!(),
    snp_tcb!(),
    snp_revocation!()
);

/// Azure confidential VM on SEV-SNP (vTPM + HCL); hardware claims under `claims.azure.hardware`.
/// Does not require revocation (see the module docs for why); set `require_revocation := true`
/// in a copy to require it.
pub const AZURE_SNP: &str = concat!(
    header!(),
    "expected_tee := \"azure-snp\"\n\ndebug_flag_path := [\"azure\", \"hardware\", \"policy\", \"debug\"]\n\ntcb_path := [\"azure\", \"hardware\", \"reported_tcb\"]\n\nhardware_path := [\"azure\", \"hardware\"]\n\n# Azure's HCL evidence carries no CRL and Azure (THIM) vouches for the VCEK: revocation is not\n# required by default (claims.revocation still says whether it was checked). Set to true to\n# require an AMD CRL from the server's collateral.\nrequire_revocation := false\n",
    common_hardware!(),
    snp_tcb!(),
    snp_revocation!()
);

/// Intel TDX (DCAP).
pub const TDX: &str = concat!(
    header!(),
    "expected_tee := \"tdx\"\n\ndebug_flag_path := [\"tdx\", \"td_attributes\", \"debug\"]\n",
    common_hardware!(),
    dcap_tcb!()
);

/// Azure confidential VM on TDX; hardware claims under `claims.azure.hardware`.
pub const AZURE_TDX: &str = concat!(
    header!(),
    "expected_tee := \"azure-tdx\"\n\ndebug_flag_path := [\"azure\", \"hardware\", \"td_attributes\", \"debug\"]\n",
    common_hardware!(),
    dcap_tcb!()
);

/// Intel SGX (DCAP), with optional reference `signers` and `min_svn`.
pub const SGX: &str = concat!(
    header!(),
    "expected_tee := \"sgx\"\n\ndebug_flag_path := [\"sgx\", \"attributes\", \"debug\"]\n",
    common_hardware!(),
    dcap_tcb!(),
    r#"
reference_signers contains lower(s) if {
	some name
	some s in input.reference[name].signers
	is_string(s)
}

deny contains {"rule": "signer_not_allowed", "path": "claims.sgx.mr_signer", "expected": sprintf("one of %v", [sort(reference_signers)]), "found": s} if {
	count(reference_signers) > 0
	s := claim(["sgx", "mr_signer"])
	not signer_listed(s)
}

signer_listed(s) if {
	is_string(s)
	lower(s) in reference_signers
}

deny contains {"rule": "svn_below_minimum", "path": "claims.sgx.isv_svn", "expected": sprintf(">= %v (reference set %v)", [min, name]), "found": svn} if {
	some name
	min := input.reference[name].min_svn
	svn := claim(["sgx", "isv_svn"])
	not at_least(svn, min)
}
"#
);

/// Simulated evidence: always denied. Accepting sim takes a policy that says so explicitly.
pub const SIM: &str = r#"package enclava.appraisal

import rego.v1

default allow := false

deny contains {
	"rule": "sim_not_allowed",
	"path": "claims.tee",
	"expected": "hardware evidence, or a policy that explicitly allows sim",
	"found": object.get(input, ["claims", "tee"], "missing"),
}
"#;

/// Example: accept the measurements of the reference set `quickstart`, simulated or not.
pub const QUICKSTART: &str = r#"package enclava.appraisal

import rego.v1

# Quickstart example: evidence (simulated or hardware) whose measurement is listed in the
# reference set named "quickstart". Simulated evidence proves nothing about the workload's
# isolation: use this for demos and development only.

default allow := false

allow if count(deny) == 0

claim(path) := object.get(input, array.concat(["claims"], path), "missing")

hardware_tees := {"snp", "tdx", "sgx", "azure-snp", "azure-tdx"}

dcap_tees := {"tdx", "sgx", "azure-tdx"}

quickstart_measurements contains lower(m) if {
	some m in input.reference.quickstart.measurements
	is_string(m)
}

deny contains {"rule": "quickstart_reference_missing", "path": "reference.quickstart.measurements", "expected": "a non-empty list of allowed measurements", "found": found} if {
	count(quickstart_measurements) == 0
	found := object.get(input, ["reference", "quickstart", "measurements"], "missing")
}

deny contains {"rule": "measurement_not_allowed", "path": "claims.measurement", "expected": sprintf("one of %v (reference set quickstart)", [sort(quickstart_measurements)]), "found": m} if {
	count(quickstart_measurements) > 0
	m := claim(["measurement"])
	not measurement_listed(m)
}

measurement_listed(m) if {
	is_string(m)
	lower(m) in quickstart_measurements
}

deny contains {"rule": "tee", "path": "claims.tee", "expected": sprintf("one of %v", [sort(hardware_tees | {"sim"})]), "found": tee} if {
	tee := claim(["tee"])
	not tee in hardware_tees
	tee != "sim"
}

# Hardware evidence must not be debuggable (sim evidence always reports debug = true).
deny contains {"rule": "debug", "path": "claims.debug", "expected": false, "found": found} if {
	claim(["tee"]) in hardware_tees
	found := claim(["debug"])
	found != false
}

deny contains {"rule": "tcb_revoked", "path": "claims.tcb_status", "expected": "tcb_status != Revoked", "found": "Revoked"} if {
	claim(["tee"]) in hardware_tees
	claim(["tcb_status"]) == "Revoked"
}

deny contains {"rule": "tcb_not_evaluated", "path": "claims.tcb_status", "expected": "a TCB status evaluated against collateral (not NotEvaluated or absent)", "found": status} if {
	claim(["tee"]) in dcap_tees
	status := object.get(input, ["claims", "tcb_status"], "absent")
	status in {"NotEvaluated", "absent", null}
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles() {
        for name in NAMES {
            let p = crate::AppraisalPolicy::builtin(name);
            assert!(p.is_ok(), "{name}: {:?}", p.err());
        }
        assert!(crate::AppraisalPolicy::builtin("nope").is_err());
    }

    /// SNP claims that pass every rule but revocation, with `revocation` as given (None: absent).
    fn snp_input(tee: &str, revocation: Option<serde_json::Value>) -> serde_json::Value {
        let hw = serde_json::json!({
            "product": "Milan",
            "signing_key": "vcek",
            "policy": {"debug": false},
            "reported_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
        });
        let mut claims = serde_json::json!({
            "tee": tee, "debug": false, "measurement": "aa", "report_data": "00",
        });
        if tee == "snp" {
            claims["snp"] = hw;
        } else {
            claims["azure"] = serde_json::json!({"hardware": hw});
        }
        if let Some(r) = revocation {
            claims["revocation"] = r;
        }
        serde_json::json!({"claims": claims, "reference": {}})
    }

    fn crl(issuer: &str, current: bool) -> serde_json::Value {
        serde_json::json!({
            "issuer": issuer, "this_update": "2025-01-01T00:00:00+00:00",
            "next_update": "2025-02-01T00:00:00+00:00", "sha256": "ab", "current": current,
        })
    }

    fn failed(policy: &str, input: &serde_json::Value) -> Vec<String> {
        let d = crate::AppraisalPolicy::builtin(policy)
            .unwrap()
            .evaluate(input)
            .unwrap();
        assert_eq!(d.allowed, d.failed.is_empty(), "{d:?}");
        d.failed.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn snp_requires_a_current_ark_crl() {
        let none = "rule revocation_checked on claims.revocation.checked: expected an AMD VCEK CRL \
                    for Milan (AMD KDS vcek/v1/Milan/crl, issued by ARK-Milan), found none";
        // No revocation claim at all (older claims), or checked false with no CRL.
        assert_eq!(
            failed("snp", &snp_input("snp", None)),
            vec![none.to_string()]
        );
        let unchecked = serde_json::json!({"checked": false, "crls": [], "fresh": false});
        assert_eq!(
            failed("snp", &snp_input("snp", Some(unchecked))),
            vec![none.to_string()]
        );
        // Only the ASK's CRL: not the one that covers the ASK.
        let ask_only = serde_json::json!({"checked": false, "crls": [crl("ASK SEV-Milan", true)], "fresh": false});
        let f = failed("snp", &snp_input("snp", Some(ask_only)));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].ends_with("found only CRLs of ASK SEV-Milan"), "{f:?}");
        // A VLEK names the VLEK CRL.
        let mut vlek = snp_input("snp", None);
        vlek["claims"]["snp"]["signing_key"] = "vlek".into();
        vlek["claims"]["snp"]["product"] = "Genoa".into();
        let f = failed("snp", &vlek);
        assert!(
            f[0].contains("expected an AMD VLEK CRL for Genoa (AMD KDS vlek/v1/Genoa/crl"),
            "{f:?}"
        );
        // Checked but stale: revocation_fresh names the stale CRL.
        let stale =
            serde_json::json!({"checked": true, "crls": [crl("ARK-Milan", false)], "fresh": false});
        assert_eq!(
            failed("snp", &snp_input("snp", Some(stale))),
            vec![
                "rule revocation_fresh on claims.revocation.fresh: expected every CRL current at \
                 the verification time (this_update <= time <= next_update), found stale: \
                 ARK-Milan CRL (this_update 2025-01-01T00:00:00+00:00, next_update \
                 2025-02-01T00:00:00+00:00)"
                    .to_string()
            ]
        );
        // Checked and fresh: allowed.
        let ok =
            serde_json::json!({"checked": true, "crls": [crl("ARK-Milan", true)], "fresh": true});
        assert!(failed("snp", &snp_input("snp", Some(ok))).is_empty());
        // A claim that lies about freshness in the other direction still counts as not fresh.
        let odd =
            serde_json::json!({"checked": true, "crls": [crl("ARK-Milan", true)], "fresh": "yes"});
        assert_eq!(failed("snp", &snp_input("snp", Some(odd))).len(), 1);
    }

    #[test]
    fn azure_snp_does_not_require_revocation_by_decision() {
        assert!(failed("azure-snp", &snp_input("azure-snp", None)).is_empty());
        let unchecked = serde_json::json!({"checked": false, "crls": [], "fresh": false});
        assert!(failed("azure-snp", &snp_input("azure-snp", Some(unchecked))).is_empty());
        // The same rules, switched on in a copy, deny it.
        let strict = AZURE_SNP.replace("require_revocation := false", "require_revocation := true");
        let d = crate::AppraisalPolicy::compile("azure-snp", &strict)
            .unwrap()
            .evaluate(&snp_input("azure-snp", None))
            .unwrap();
        assert_eq!(d.failed.len(), 1, "{d:?}");
        assert_eq!(d.failed[0].rule, "revocation_checked");
    }
}
