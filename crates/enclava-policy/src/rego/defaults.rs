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

/// AMD SEV-SNP (bare metal).
pub const SNP: &str = concat!(
    header!(),
    "expected_tee := \"snp\"\n\ndebug_flag_path := [\"snp\", \"policy\", \"debug\"]\n\ntcb_path := [\"snp\", \"reported_tcb\"]\n",
    common_hardware!(),
    snp_tcb!()
);

/// Azure confidential VM on SEV-SNP (vTPM + HCL); hardware claims under `claims.azure.hardware`.
pub const AZURE_SNP: &str = concat!(
    header!(),
    "expected_tee := \"azure-snp\"\n\ndebug_flag_path := [\"azure\", \"hardware\", \"policy\", \"debug\"]\n\ntcb_path := [\"azure\", \"hardware\", \"reported_tcb\"]\n",
    common_hardware!(),
    snp_tcb!()
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
}
