//! The attestation policy upload path (`PUT /policies/{type}`): the JWS wrapper
//! (`parse_policy_jws`), then the policy text compiled as the service does (Rego or the MAA
//! language, detected). Never panics; a policy that compiles evaluates without panicking.
#![no_main]

use std::sync::OnceLock;

use enclava_attestation::PolicySigners;
use enclava_attestation::policies::CompiledPolicy;
use enclava_policy::maa::parse_policy_jws;
use libfuzzer_sys::fuzz_target;

fn signers() -> Option<&'static PolicySigners> {
    static S: OnceLock<Option<PolicySigners>> = OnceLock::new();
    S.get_or_init(|| {
        PolicySigners::from_pem(enclava_evidence::snp::roots::ARK_MILAN_PEM.as_bytes()).ok()
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // Mode bit 0: the body is the JWS as sent, or the policy text itself (exercises the compiler
    // without the fuzzer having to find base64url first).
    let policy_text = if mode & 1 == 0 {
        match parse_policy_jws(text) {
            Ok(upload) => {
                // The signature check the server runs next: without trusted signers (unsigned
                // uploads accepted) and with one (an RSA root certificate as the trusted signer;
                // the x5c and RS256 paths run, and nothing the fuzzer signs may verify).
                let _ = PolicySigners::default().check(&upload);
                if let Some(signers) = signers() {
                    let verdict = signers.check(&upload);
                    assert!(
                        !matches!(verdict, Ok(Some(_))),
                        "a fuzzer-made policy signature verified"
                    );
                }
                upload.policy_text
            }
            Err(_) => return,
        }
    } else {
        text.to_string()
    };
    let _ = CompiledPolicy::compile("SevSnpVm", &policy_text);
});
